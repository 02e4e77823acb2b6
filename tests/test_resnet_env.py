"""tb.resnet_env: digits-resnet on proto (issue 18) -- the digital node's input join registers, the two phases
at the Python level against independent numpy, and the whole network on Icarus (slow)."""

from __future__ import annotations

import os
from functools import cache

import numpy as np
import pytest

from archmodel.datasets import load_digits_split
from archmodel.golden.digital import digital_linear
from archmodel.spec import load_spec
from archmodel.zoo import get_network
from rtl.regmap import build_regmap

PROTO = load_spec("proto")


@cache
def phases():
    from mapping.mapper import MapOptions, map_network
    from tb.cnn_golden import cnn_golden, seeded_params
    from tb.resnet_env import prepare_resnet

    net = get_network("digits-resnet")
    data = load_digits_split(0)
    placement = map_network(PROTO, net, MapOptions(replicate=False)).placement()
    g = cnn_golden(PROTO, net, placement, seeded_params(net, 3), data.x_test[:2], data.x_train[:256], seed=1,
                   t_inf_s=3600.0)
    return prepare_resnet(g), g


def _join_by_hand(a, b, q0, q1, shift):
    """requantize_sum written out: ReLU(q0·a + q1·b), round half up by 2^shift, saturate to int8."""
    acc = np.maximum(q0 * np.asarray(a, np.int64) + q1 * np.asarray(b, np.int64), 0)
    return np.clip((acc + (1 << (shift - 1))) >> shift, -128, 127)


def test_digital_join_registers_and_old_addresses():
    """digital.add.* at 0x1C0..0x1CC and digital.ipool.* at 0x1E0..0x1F0 on every chip; tiny's digital NI keeps
    its v5 addresses (hand values); no two registers share an address; the map is version 7."""
    for name in ("tiny", "proto", "fig11"):
        rm = build_regmap(load_spec(name))
        assert [rm.address_of(f"digital.add.{r}") for r in ("en", "q0", "q1", "shift")] == [0x1C0, 0x1C4, 0x1C8,
                                                                                              0x1CC]
        assert [rm.address_of(f"digital.ipool.{r}") for r in ("en", "in", "kernel", "out", "beats")] == \
            [0x1E0, 0x1E4, 0x1E8, 0x1EC, 0x1F0]
        addrs = [r.address for r in rm.registers]
        assert len(addrs) == len(set(addrs))
        assert rm.decode("chip.id", 0x7A1C0)["version"] == 7
        f = {fl.name: (fl.offset, fl.width) for fl in rm.register("digital.add.en").fields}
        assert f["en"] == (0, 1) and f["relu"] == (1, 1) and f["src_a"][0] == 8 and f["out_src"][0] == 24
    tiny = build_regmap(load_spec("tiny"))
    assert tiny.address_of("digital.out1") == 0x190 and tiny.address_of("digital.src3") == 0x1A0
    assert tiny.address_of("digital.pool.en") == 0x160 and tiny.address_of("tile3.add.en") == 0x13A0


def test_phase1_multicast_and_joins():
    """The stem reaches 11 tiles (b1_conv1 0-4, b2_conv1 10-14, b2_proj 24; proto's grid is 5 wide: tile t at
    (t % 5, t // 5)); b2_conv1's and b2_proj's tiles join tile 9 (b1_conv2's home) with the digital node (tag
    26), and their compiled q0 / q1 / shift reproduce the golden b1_relu from b1_conv2_bn and stem_relu by hand;
    b1_conv2's home sends to those 6 tiles; b2_proj's tile sends to the host on chan 1 (the tap)."""
    ph, g = phases()
    rm = build_regmap(PROTO)
    f = ph.features
    stem = f.layers[0]
    assert [(x, y) for x, y, *_ in stem.dests] == [(t % 5, t // 5) for t in (0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 24)]
    joined = [lyr for lyr in f.layers if getattr(lyr, "join", None) is not None]
    assert sorted(lyr.tile for lyr in joined) == [10, 11, 12, 13, 14, 24]
    a, b = g.trace["b1_conv2_bn"], g.trace["stem_relu"]
    for lyr in joined:
        j = lyr.join
        assert (j.src_a, j.src_b, j.relu) == (9, 26, True)
        words = {w.name: rm.decode(w.name, w.data) for w in f.writes if w.name.startswith(f"tile{lyr.tile}.add.")}
        assert words[f"tile{lyr.tile}.add.en"] == {"en": 1, "relu": 1, "src_a": 9, "src_b": 26}
        got = _join_by_hand(a, b, words[f"tile{lyr.tile}.add.q0"]["q0"], words[f"tile{lyr.tile}.add.q1"]["q1"],
                            words[f"tile{lyr.tile}.add.shift"]["shift"])
        np.testing.assert_array_equal(got, g.trace["b1_relu"])
    home9 = next(lyr for lyr in f.layers if getattr(lyr, "tile", None) == 9)
    assert [(x, y) for x, y, *_ in home9.dests] == [(t % 5, t // 5) for t in (10, 11, 12, 13, 14, 24)]
    t24 = next(lyr for lyr in f.layers if getattr(lyr, "tile", None) == 24)
    assert t24.dests == ((5, 0, 0, 0, 1),) and set(f.taps) == {24}
    assert f.layers[-1].tile == 23 and f.expected.shape == (2 * 16, 32)


def test_phase2_join_pool_fc_vs_numpy():
    """Phase 2's writes: the stem's entries 1..10 and the digital pool off; digital.add joins tags 23 / 24 into
    tag 23 with ReLU; digital.ipool is a 4 x 4 global average (count 16, 4 beats of 8 channels). By hand: the join
    (as above) of b2_conv2_bn and b2_proj_bn, the global average (2·sum + 16) // 32, fc's int32 sums =
    digital_linear, its coefficients -> the golden scores; the host streams are those two maps, tagged 23, 24."""
    ph, g = phases()
    rm = build_regmap(PROTO)
    c = ph.classifier
    w = {x.name: rm.decode(x.name, x.data) for x in c.writes}
    assert all(w[f"digital.dest{e}"]["en"] == 0 for e in range(1, 11)) and w["digital.pool.en"]["en"] == 0
    assert w["digital.add.en"] == {"en": 1, "relu": 1, "src_a": 23, "src_b": 24, "out_src": 23}
    assert w["digital.ipool.en"] == {"en": 1, "avg": 1}
    assert w["digital.ipool.in"] == {"in_h": 4, "in_w": 4} and w["digital.ipool.kernel"] == {"kh": 4, "kw": 4}
    assert w["digital.ipool.beats"] == {"c_beats": 4, "count": 16} and w["digital.ipool.out"] == {"out_h": 1,
                                                                                                   "out_w": 1}
    assert w["digital.src0"]["src"] == 23 and w["digital.src0"]["elems"] == 32 and w["digital.src1"]["en"] == 0
    s = _join_by_hand(g.trace["b2_conv2_bn"], g.trace["b2_proj_bn"], w["digital.add.q0"]["q0"],
                      w["digital.add.q1"]["q1"], w["digital.add.shift"]["shift"])
    np.testing.assert_array_equal(s, g.trace["b2_relu"])
    pooled = (2 * s.sum(axis=(2, 3)) + 16) // 32
    np.testing.assert_array_equal(pooled, g.trace["pool"])
    d = c.layers[0]
    from rtl.params import DigitalParams

    dp = DigitalParams.from_spec(PROTO)
    sums = digital_linear(pooled, d.w_int8, acc_bits=dp.acc_bits)
    np.testing.assert_array_equal(d.coefs.apply(sums, acc_bits=dp.acc_bits, scale_bits=dp.scale_bits,
                                                offset_bits=dp.offset_bits), g.scores)
    (l0, t0, x0), (l1, t1, x1) = c.host_streams
    assert (l0, t0, l1, t1) == (0, 23, 0, 24)
    np.testing.assert_array_equal(x0, g.layer("b2_conv2").pixels)
    np.testing.assert_array_equal(x1, g.layer("b2_proj").pixels)


def test_one_phase_refused_until_per_slot_counts():
    from tb.cnn_env import CnnCosimError
    from tb.resnet_env import prepare_resnet

    _, g = phases()
    with pytest.raises(CnnCosimError, match="per-slot vector counts"):
        prepare_resnet(g, one_phase=True)


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("AIMC_LONG_COSIM") != "1",
                    reason="~20 min each on Icarus at load (the 25-tile proto top, ~3,400 configuration writes): over "
                           "issue 18's make-test budget; run with AIMC_LONG_COSIM=1")
def test_digits_resnet_on_icarus(tmp_path):
    """The whole digits-resnet on proto in ONE run of the chip, 1 image, Icarus (tb.test_resnet_cosim, the driver of
    digits-cnn): the 10 scores after the digital node's b2_add + global pool + fc compared, 0 mismatches;
    b2_conv2_bn and b2_proj_bn (16 x 32 each) mirrored to the host while they go to the digital node, compared,
    0 mismatches; every DAC code of the 25 analog tiles compared, 0 mismatches (b2_conv1's and b2_proj's are
    b1_add's output at their joins); RTL top-1 = the model's; no status flag (asserted inside the test); fc's busy
    cycles = timing.digital_slot_cycles(32, 10, 1) exactly. Then (same build, same process) the stem's weight
    flit 1 negated on its way to the chip: DAC mismatches appear, first (in layer order) at b1_conv1's tiles."""
    from archmodel import timing
    from mapping.mapper import MapOptions, map_network
    from tb.cnn_env import cnn_report_lines, cosim_cnn

    placement = map_network(PROTO, get_network("digits-resnet"), MapOptions(replicate=False)).placement()
    d = cosim_cnn("proto", placement, images=1, sim="icarus", build_dir=tmp_path, fault_test=True)
    ok, lines = cnn_report_lines(d)
    print("\n".join(lines))
    assert d["passed"], d["message"]
    r = d["run"]
    assert r["compared"] == 10 and r["mismatches"] == 0
    assert r["tap_compared"] == 2 * 16 * 32 and r["tap_mismatches"] == 0
    # DAC codes: 64 MVMs x 144 rows (b1_conv1, b1_conv2), 16 x 144 (b2_conv1), 16 x 288 (b2_conv2), 16 x 16 (b2_proj)
    assert r["dac_compared"] == 64 * 144 * 2 + 16 * 144 + 16 * 288 + 16 * 16 and r["dac_mismatches"] == 0
    assert d["top1_rtl"] == d["top1_model"]
    assert d["fc_cycles"] == timing.digital_slot_cycles(PROTO, 32, 10, 1)
    ft = d["fault_test"]  # the stem's weight flit 1 negated: the first wrong DAC codes are b1_conv1's (reads the stem)
    assert ft["passed"], ft["message"]
    assert ft["run"]["dac_mismatches"] > 0 and ft["dac_mismatch_layers"][0] == "b1_conv1", ft
    assert ok, "\n".join(lines)


def test_dataflow_plan_needs_nothing_more_on_proto():
    """With 11 digital destination entries and the digital node's input join + pool, every route of
    digits-resnet on proto needs nothing the RTL lacks; b2's two streams go to the digital node via b2_add and
    the global pool."""
    from tb.cnn_golden import dataflow_plan

    _, g = phases()
    plan = {r.value: r for r in dataflow_plan(g)}
    assert all(r.needs == () for r in plan.values()), [r.needs for r in plan.values()]
    for v in ("b2_conv2_bn", "b2_proj_bn"):
        assert (plan[v].ops, plan[v].consumers) == (("add b2_add", "global_avgpool pool"), ("digital",))
    assert len(plan["stem_relu"].consumers) == 11
