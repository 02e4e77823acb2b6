"""Residual and branching networks (issue 16): training gradients, the integer add/concat rule, digits-resnet.

The integer path of a tiny residual network is checked against an independent
implementation written here from the golden functions (``golden.digital``,
``golden.coefficients``, ``golden.affine``) and exact rational arithmetic for
the add/concat rule of docs/design.md ("Residual adds and concat").
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from archmodel.accuracy import AccuracyOptions, NetworkInstance, prepare, requantize_sum
from archmodel.accuracy_experiment import drifted_float_params, evaluate_accuracy, fp32_accuracy
from archmodel.datasets import load_digits_split
from archmodel.errors import AimcError
from archmodel.golden.affine import affine_requantize
from archmodel.golden.coefficients import digital_affine_multiplier, folded_offset, quantize_affine
from archmodel.golden.digital import digital_conv2d, digital_linear
from archmodel.network.builder import NetworkBuilder
from archmodel.spec import load_spec
from archmodel.training import TrainConfig, backward, cross_entropy, forward_train, init_params, train
from archmodel.zoo_digits import digits_resnet, train_recipe


def _tiny_residual():
    """input (2,4,4) → c1 conv 3×3 → add(input, c1) → ReLU → concat(relu, c2 1×1 of input) → flatten → fc 10."""
    b = NetworkBuilder("tiny-res", (2, 4, 4))
    c1 = b.conv("c1", b.input, 2, 3, padding=1)
    r = b.relu("r", b.add("sum", b.input, c1))
    c2 = b.conv("c2", b.input, 3, 1, bias=False)
    x = b.flatten("flat", b.concat("cat", r, c2))
    b.linear("fc", x, 10)
    return b.build()



def _int8_weights(weight: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-layer int8 weights and their scale, written out independently of archmodel (docs/design.md 4.7)."""
    w = weight.astype(np.float64)
    ws = float(np.max(np.abs(w))) / 127
    return np.clip(np.floor(w / ws + 0.5), -128, 127).astype(np.int64), ws

def test_training_gradients_of_a_branching_network_match_finite_differences():
    net = _tiny_residual()
    rng = np.random.default_rng(3)
    params = init_params(net, rng, np.float64)
    params["c1"]["bias"][...] = rng.normal(0, 0.3, 2)
    x, y = rng.normal(size=(5, 2, 4, 4)), np.array([0, 3, 9, 3, 1])
    logits, cache = forward_train(net, params, x)
    grads = backward(net, params, cache, cross_entropy(logits, y)[1])
    for ln, pn, idx in [("c1", "weight", (1, 0, 2, 1)), ("c1", "bias", (0,)), ("c2", "weight", (2, 1, 0, 0)),
                        ("fc", "weight", (3, 17)), ("fc", "weight", (7, 40))]:
        p = params[ln][pn]
        old, eps = p[idx], 1e-6
        p[idx] = old + eps
        lp = cross_entropy(forward_train(net, params, x)[0], y)[0]
        p[idx] = old - eps
        lm = cross_entropy(forward_train(net, params, x)[0], y)[0]
        p[idx] = old
        assert grads[ln][pn][idx] == pytest.approx((lp - lm) / (2 * eps), rel=1e-5, abs=1e-9)


def test_requantize_sum_hand_values():
    kw = {"scale_bits": 16, "max_shift": 31}
    # multipliers 0.1/0.2 = 1/2 and 0.05/0.2 = 1/4 (exact at any shift): 100/2 - 40/4 = 40; 3/2 + 1/4 = 1.75 -> 2;
    # -3/2 + 1/4 = -1.25 -> -1; 127/2 + 127/4 = 95.25 -> 95
    a = np.array([100, 3, -3, 127], np.int8)
    b = np.array([-40, 1, 1, 127], np.int8)
    assert requantize_sum([a, b], [0.1, 0.05], 0.2, relu=False, **kw).tolist() == [40, 2, -1, 95]
    # ReLU after the sum; saturation at 127 (scales 1 -> 0.5: x2)
    assert requantize_sum([a, b], [0.1, 0.05], 0.2, relu=True, **kw).tolist() == [40, 2, 0, 95]
    assert requantize_sum([a], [1.0], 0.5, relu=False, **kw).tolist() == [127, 6, -6, 127]
    # round half up: 1/2 of 1 = 0.5 -> 1, of -1 = -0.5 -> 0
    assert requantize_sum([np.array([1, -1], np.int8)], [0.1], 0.2, relu=False, **kw).tolist() == [1, 0]


def _requant_ref(xs, scales, out_scale, relu, scale_bits=16, max_shift=31):
    """Independent: the shift is the largest with every fixed_round(m·2^s) in scale_bits; exact rationals."""
    ms = [s / out_scale for s in scales]
    for shift in range(max_shift, -1, -1):
        qs = [int(np.floor(m * 2**shift + 0.5)) for m in ms]
        if all(-(2 ** (scale_bits - 1)) <= q < 2 ** (scale_bits - 1) for q in qs):
            break
    acc = sum(q * x.astype(object) for q, x in zip(qs, xs, strict=True))
    out = np.vectorize(lambda v: max(-128, min(127, int(np.floor(Fraction(max(v, 0) if relu else v, 2**shift)
                                                                    + Fraction(1, 2))))))(acc)
    return out.astype(np.int64)


def _affine(acc, mult, off, relu, spec):
    c = quantize_affine(mult, off, relu=relu, scale_bits=spec.periphery.affine_scale_bits,
                        offset_bits=spec.periphery.affine_offset_bits,
                        max_shift=min(31, spec.digital.accumulator_bits + spec.periphery.affine_scale_bits - 1))
    return affine_requantize(acc, c.scale, c.offset, c.shift, relu, acc_bits=spec.digital.accumulator_bits,
                             scale_bits=spec.periphery.affine_scale_bits,
                             offset_bits=spec.periphery.affine_offset_bits)


def test_integer_path_of_a_tiny_residual_net_equals_an_independent_computation():
    net = _tiny_residual()
    rng = np.random.default_rng(7)
    params = init_params(net, rng)
    params["c1"]["bias"][...] = rng.normal(0, 0.2, 2).astype(np.float32)
    params["fc"]["bias"][...] = rng.normal(0, 0.2, 10).astype(np.float32)
    x = rng.normal(size=(6, 2, 4, 4)).astype(np.float32)
    spec = load_spec("fig11")
    opts = AccuracyOptions(digital_layers=("c1", "c2", "fc"))
    prep = prepare(spec, net, params, x, opts)
    inst = NetworkInstance(prep, ["int8"] * 3, [None] * 3, [1.0] * 3)
    got = inst.run(x)
    sc = prep.scales
    kinds = [(st.kind, st.relu, st.out_name) for st in prep.stages]
    assert kinds == [("matrix", False, "c1"), ("add", True, "r"), ("matrix", False, "c2"), ("concat", False, "cat"),
                     ("flatten", False, "flat"), ("matrix", False, "fc")]  # the ReLU is fused into the add

    def w8(name):
        return _int8_weights(params[name]["weight"])

    ref = []
    for img in x:
        xi = np.clip(np.floor(img.astype(np.float64) / sc["input"] + 0.5), -128, 127).astype(np.int64)
        w1, ws1 = w8("c1")
        a1 = digital_conv2d(xi, w1, padding=1).transpose(1, 2, 0)  # (H, W, C)
        m1 = digital_affine_multiplier(in_scale=sc["input"], w_scale=ws1, out_scale=sc["c1"])
        y1 = _affine(a1, m1, folded_offset(params["c1"]["bias"], out_scale=sc["c1"]), False, spec).transpose(2, 0, 1)
        r = _requant_ref([xi, y1], [sc["input"], sc["c1"]], sc["r"], relu=True)
        w2, ws2 = w8("c2")
        a2 = digital_conv2d(xi, w2).transpose(1, 2, 0)
        m2 = digital_affine_multiplier(in_scale=sc["input"], w_scale=ws2, out_scale=sc["c2"])
        y2 = _affine(a2, m2, np.zeros(3), False, spec).transpose(2, 0, 1)
        cat = np.concatenate([_requant_ref([r], [sc["r"]], sc["cat"], False),
                              _requant_ref([y2], [sc["c2"]], sc["cat"], False)])
        w3, ws3 = w8("fc")
        a3 = digital_linear(cat.reshape(-1), w3)
        m3 = digital_affine_multiplier(in_scale=sc["cat"], w_scale=ws3, out_scale=sc["fc"])
        ref.append(_affine(a3, m3, folded_offset(params["fc"]["bias"], out_scale=sc["fc"]), False, spec))
    assert len(np.unique(got)) > 10  # not a degenerate all-saturated or all-zero output
    np.testing.assert_array_equal(got, np.array(ref, dtype=np.float64))


#: The digits-resnet recipe (zoo_digits.train_recipe: noise, frozen batch norm for the last quarter of the
#: epochs), shortened to fit the test budget: 6 epochs at lr 0.01 instead of 20 at 0.003; 2 draws.
RESNET_EPOCHS, RESNET_LR, RESNET_DRAWS = 6, 0.01, 2
RESNET_ANALOG = ["b1_conv1", "b1_conv2", "b2_conv1", "b2_conv2", "b2_proj"]  # first (stem) / last (fc) digital


@pytest.mark.slow
def test_digits_resnet_one_day_accuracy_with_per_layer_adc_ranging_is_within_one_point_of_fp32():
    """Issue 16: mean over seeds 0-4 of the 1-day accuracy (first/last digital, GDC and AdaBS) >= FP32 - 1.0 point.

    Trained with the network's recipe shortened (see RESNET_EPOCHS); 2 draws on the 540 test
    images of each seed's 70/30 split. Also, seed 0: drift alone collapses the float network
    (every analog layer's weights times its devices' mean drift at 1 day, BN unchanged: < 30 %),
    and one exact GDC α per layer restores it to within 1 point of FP32 -- the collapse without
    compensation is physics, not the integer path (docs/design.md, "Why digits-resnet collapses").
    """
    spec = load_spec("fig11")
    recipe = train_recipe("digits-resnet")
    cfg = TrainConfig(noise=recipe.noise, epochs=RESNET_EPOCHS, lr=RESNET_LR,
                      frozen_bn_epochs=recipe.frozen_bn_epochs(RESNET_EPOCHS))
    assert cfg.frozen_bn_epochs == 2
    opts = AccuracyOptions(draws=RESNET_DRAWS, times_s=(("1 day", 86400.0),), adc_range="per_layer",
                           only_settings=(("digital_first_last", "gdc"), ("digital_first_last", "adabs")))
    fp32, gdc, adabs = [], [], []
    for seed in range(5):
        data = load_digits_split(seed)
        res = train(digits_resnet(), data.x_train, data.y_train, data.x_test, data.y_test, cfg, seed=seed)
        r = evaluate_accuracy(spec, digits_resnet(), res.params, data.x_train, data.x_test, data.y_test, opts,
                              seed=seed, workers=1)
        assert r.adc_range == "per_layer"
        fp32.append(r.fp32_accuracy)
        gdc.append(float(r.mean("digital_first_last/gdc")[0]))
        adabs.append(float(r.mean("digital_first_last/adabs")[0]))
        if seed == 0:
            net = digits_resnet()
            drifted = fp32_accuracy(net, drifted_float_params(spec, net, res.params, RESNET_ANALOG, 86400.0),
                                    data.x_test, data.y_test)
            compensated = fp32_accuracy(net, drifted_float_params(spec, net, res.params, RESNET_ANALOG, 86400.0,
                                                                  gdc=True), data.x_test, data.y_test)
            print(f"seed 0, float, drift only at 1 day: {100 * drifted:.1f} %, with GDC {100 * compensated:.1f} %")
            assert drifted < 0.30
            assert compensated >= r.fp32_accuracy - 0.010
    print(f"digits-resnet 1 day: FP32 {100 * np.mean(fp32):.2f} %, GDC {100 * np.mean(gdc):.2f} %, "
          f"AdaBS {100 * np.mean(adabs):.2f} %")
    assert np.mean(fp32) > 0.95
    assert np.mean(adabs) >= np.mean(fp32) - 0.010
    assert np.mean(gdc) >= np.mean(fp32) - 0.010


def _grouped_dilated_net(kind):
    """input (4,6,6) → c1 conv 3×3 groups 2 dilation 2 → activation ``kind`` → c2 depthwise 3×3 → flatten → fc 10."""
    b = NetworkBuilder(f"grouped-{kind}", (4, 6, 6))
    x = b.conv("c1", b.input, 4, 3, padding=2, dilation=2, groups=2)
    x = b.activation("act", x, kind)
    x = b.conv("c2", x, 4, 3, padding=1, groups=4, bias=False)
    b.linear("fc", b.flatten("flat", x), 10)
    return b.build()


_FLOAT_ACT = {"sigmoid": lambda v: 1 / (1 + np.exp(-v)), "tanh": np.tanh,
              "hardswish": lambda v: v * min(max(v + 3, 0), 6) / 6}


@pytest.mark.parametrize("kind", sorted(_FLOAT_ACT))
def test_integer_path_of_grouped_dilated_conv_and_activation_table_equals_an_independent_computation(kind):
    """Issue 16: grouped/dilated convs (block-diagonal matrix) and an activation as a 256-entry table.

    Independent: ``golden.digital.digital_conv2d`` with ``groups``/``dilation`` on the
    OIHW weights, the golden affine unit, and the activation in Python floats per element
    (``round_half_up(f(c·s_in)/s_out)``, saturated).
    """
    net = _grouped_dilated_net(kind)
    rng = np.random.default_rng(11)
    params = init_params(net, rng)
    params["c1"]["bias"][...] = rng.normal(0, 0.3, 4).astype(np.float32)
    x = rng.normal(size=(5, 4, 6, 6)).astype(np.float32)
    spec = load_spec("fig11")
    prep = prepare(spec, net, params, x, AccuracyOptions(digital_layers=("c1", "c2", "fc")))
    assert [st.kind for st in prep.stages] == ["matrix", "lut", "matrix", "flatten", "matrix"]
    got = NetworkInstance(prep, ["int8"] * 3, [None] * 3, [1.0] * 3).run(x)
    sc = prep.scales
    f = np.vectorize(_FLOAT_ACT[kind])

    def w8(name):
        return _int8_weights(params[name]["weight"])

    ref = []
    for img in x:
        xi = np.clip(np.floor(img.astype(np.float64) / sc["input"] + 0.5), -128, 127).astype(np.int64)
        w1, ws1 = w8("c1")
        a1 = digital_conv2d(xi, w1, padding=2, dilation=2, groups=2).transpose(1, 2, 0)
        m1 = digital_affine_multiplier(in_scale=sc["input"], w_scale=ws1, out_scale=sc["c1"])
        y1 = _affine(a1, m1, folded_offset(params["c1"]["bias"], out_scale=sc["c1"]), False, spec).transpose(2, 0, 1)
        z = np.clip(np.floor(f(y1 * sc["c1"]) / sc["act"] + 0.5), -128, 127).astype(np.int64)
        w2, ws2 = w8("c2")
        a2 = digital_conv2d(z, w2, padding=1, groups=4).transpose(1, 2, 0)
        m2 = digital_affine_multiplier(in_scale=sc["act"], w_scale=ws2, out_scale=sc["c2"])
        y2 = _affine(a2, m2, np.zeros(4), False, spec).transpose(2, 0, 1)
        w3, ws3 = w8("fc")
        a3 = digital_linear(y2.reshape(-1), w3)
        m3 = digital_affine_multiplier(in_scale=sc["c2"], w_scale=ws3, out_scale=sc["fc"])
        ref.append(_affine(a3, m3, folded_offset(params["fc"]["bias"], out_scale=sc["fc"]), False, spec))
    assert len(np.unique(got)) > 10
    np.testing.assert_array_equal(got, np.array(ref, dtype=np.float64))


def test_an_op_the_evaluator_cannot_run_gets_one_line_naming_node_and_op():
    b = NetworkBuilder("sm", (1, 4, 4))
    x = b.conv("c1", b.input, 3, 3, padding=1)
    x = b.activation("probs", x, "softmax")
    b.linear("fc", b.flatten("flat", x), 10)
    net = b.build()
    params = init_params(net, np.random.default_rng(0))
    with pytest.raises(AimcError) as e:
        prepare(load_spec("fig11"), net, params, np.zeros((2, 1, 4, 4), np.float32))
    assert str(e.value) == "layer 'probs': activation softmax is not supported by the int8 accuracy evaluation"
