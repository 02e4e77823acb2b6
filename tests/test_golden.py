"""Tests of the fixed-point helpers and the integer golden models.

Expected values are hand-computed literals or come from independent
implementations written here (Fraction arithmetic, nested-loop convolution,
float64 physics of the crossbar).
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from archmodel.fixedpoint import (
    FixedFormat,
    as_int_array,
    check_range,
    from_fixed,
    round_shift,
    saturate,
    to_fixed,
)
from archmodel.golden.affine import (
    AffineCoefficients,
    accumulate_partial_sums,
    affine_requantize,
    partial_sum_acc_bits,
)
from archmodel.golden.coefficients import (
    analog_affine_multiplier,
    digital_affine_multiplier,
    folded_offset,
    quantize_affine,
)
from archmodel.golden.digital import (
    conv_output_hw,
    digital_acc_bits,
    digital_conv2d,
    digital_datapath_order,
    digital_linear,
    im2col,
    weight_matrix,
)
from archmodel.golden.tile_controller import (
    TileStep,
    adc_beats,
    block_counts,
    dac_beats,
    dac_codes,
    tile_schedule,
    unbeat,
)

# --------------------------------------------------------------------------
# fixedpoint
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "shift", "expected"),
    [
        (3, 1, 2),  # 1.5 -> 2 (tie toward +inf)
        (-3, 1, -1),  # -1.5 -> -1 (tie toward +inf, not away from zero)
        (-1, 1, 0),  # -0.5 -> 0
        (1, 1, 1),  # 0.5 -> 1
        (-2, 1, -1),
        (5, 2, 1),  # 1.25 -> 1
        (6, 2, 2),  # 1.5 -> 2
        (-6, 2, -1),  # -1.5 -> -1
        (-7, 2, -2),  # -1.75 -> -2
        (-5, 2, -1),  # -1.25 -> -1
        (7, 0, 7),
        (-128, 4, -8),  # -8.0 exactly: (-128 + 8) >> 4 = -120 >> 4 = -8
        (-120, 4, -7),  # -7.5 -> -7
    ],
)
def test_round_shift_literals(x, shift, expected):
    assert int(round_shift(x, shift)) == expected


def test_round_shift_matches_exact_fraction_reference():
    values = list(range(-70, 71)) + [-(2**40) - 1, 2**40 + 3]
    for shift in range(0, 8):
        got = round_shift(values, shift)
        ref = [math.floor(Fraction(v, 2**shift) + Fraction(1, 2)) for v in values]
        assert got.tolist() == ref, shift


def test_round_shift_rejects_bad_arguments():
    with pytest.raises(ValueError, match="shift must be in"):
        round_shift(5, -1)
    with pytest.raises(ValueError, match="must hold integers"):
        round_shift([1.5], 1)
    with pytest.raises(TypeError, match="shift must be an integer"):
        round_shift(5, 1.0)
    with pytest.raises(ValueError, match="overflows int64"):
        round_shift(2**63 - 1, 1)


def test_saturate_both_ends():
    got = saturate([-200, -129, -128, -1, 0, 127, 128, 300], 8)
    assert got.tolist() == [-128, -128, -128, -1, 0, 127, 127, 127]
    assert saturate([-5, 0, 5], 1).tolist() == [-1, 0, 0]
    assert saturate([-(2**40), 2**40], 16).tolist() == [-32768, 32767]
    assert got.dtype == np.int64


def test_saturate_rejects_floats_and_bad_bits():
    with pytest.raises(ValueError, match="must hold integers"):
        saturate(np.array([1.0, 2.0]), 8)
    with pytest.raises(ValueError, match="bits must be in"):
        saturate([1], 0)


def test_as_int_array_rejects_bool_and_huge():
    with pytest.raises(ValueError, match="dtype bool"):
        as_int_array([True, False], "flags")
    with pytest.raises(ValueError, match="int64 range"):
        as_int_array(2**63, "big")
    assert as_int_array(np.array([1, 2], dtype=np.uint8)).dtype == np.int64


def test_check_range_message_names_argument_value_and_range():
    assert check_range([[-128, 127]], 8, "acts").tolist() == [[-128, 127]]
    with pytest.raises(ValueError) as info:
        check_range([[1, 2], [-129, 3]], 8, "acts")
    msg = str(info.value)
    assert "acts" in msg and "-129" in msg and "(1, 0)" in msg and "[-128, 127]" in msg


def test_to_fixed_rounding_and_saturation():
    vals = [0.5, -0.5, 1.5, -1.5, 0.49999999999999994, -0.5000000000000001, 1000.0, -1000.0,
            np.inf]
    assert to_fixed(vals, 0, 8).tolist() == [1, 0, 2, -1, 0, -1, 127, -128, 127]
    # 0.3 * 2**4 = 4.8 -> 5; -0.3 * 16 = -4.8 -> -5; 0.03125 * 16 = 0.5 -> 1
    assert to_fixed([0.3, -0.3, 0.03125, -0.03125], 4, 8).tolist() == [5, -5, 1, 0]
    with pytest.raises(ValueError, match="NaN"):
        to_fixed([np.nan], 0, 8)


def test_from_fixed_and_fixed_format():
    assert from_fixed([3, -3, -128], 2).tolist() == [0.75, -0.75, -32.0]
    fmt = FixedFormat(total_bits=8, frac_bits=4)
    assert (fmt.min_int, fmt.max_int) == (-128, 127)
    assert (fmt.min, fmt.max, fmt.lsb) == (-8.0, 7.9375, 0.0625)
    assert fmt.to_fixed([7.99, -9.0, 0.0625]).tolist() == [127, -128, 1]
    with pytest.raises(ValueError, match="outside the signed 8-bit range"):
        fmt.from_fixed([128])
    with pytest.raises(ValueError, match="total_bits must be in"):
        FixedFormat(total_bits=0, frac_bits=0)


# --------------------------------------------------------------------------
# 1. DAC codes, 2. beats
# --------------------------------------------------------------------------


def test_dac_codes_extremes_at_8_6_4_2_bits():
    x = [-128, 127, 0]
    assert dac_codes(x, 8).tolist() == [-128, 127, 0]
    # 6 bits: (-128 + 2) >> 2 = -32; (127 + 2) >> 2 = 32 -> saturates to 31
    assert dac_codes(x, 6).tolist() == [-32, 31, 0]
    # 4 bits: (-128 + 8) >> 4 = -8; (127 + 8) >> 4 = 8 -> saturates to 7
    assert dac_codes(x, 4).tolist() == [-8, 7, 0]
    # 2 bits: (-128 + 32) >> 6 = -2; (127 + 32) >> 6 = 2 -> saturates to 1
    assert dac_codes(x, 2).tolist() == [-2, 1, 0]


def test_dac_codes_rounding_ties_at_6_bits():
    # x / 4: 2 -> 0.5 -> 1; 1 -> 0.25 -> 0; -2 -> -0.5 -> 0; -3 -> -0.75 -> -1; 6 -> 1.5 -> 2
    assert dac_codes([2, 1, -2, -3, 6, -6], 6).tolist() == [1, 0, 0, -1, 2, -1]


def test_dac_codes_validation():
    with pytest.raises(ValueError, match="x_int8: value 128"):
        dac_codes([0, 128], 6)
    with pytest.raises(ValueError, match="dac_bits must be in \\[2, 8\\]"):
        dac_codes([0], 9)
    with pytest.raises(ValueError, match="dac_bits must be in \\[2, 8\\]"):
        dac_codes([0], 1)


def test_dac_beats_zero_padded_and_unbeat():
    beats = dac_beats(list(range(1, 11)), 4)
    assert beats.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 0, 0]]
    assert unbeat(beats, 10).tolist() == list(range(1, 11))
    assert adc_beats([-1, 2, -3, 4], 2).tolist() == [[-1, 2], [-3, 4]]
    assert dac_beats([5], 8).tolist() == [[5, 0, 0, 0, 0, 0, 0, 0]]


def test_beats_round_trip_random():
    rng = np.random.default_rng(11)
    for _ in range(50):
        n = int(rng.integers(1, 100))
        lanes = int(rng.integers(1, 17))
        codes = rng.integers(-512, 512, size=n)
        beats = adc_beats(codes, lanes)
        assert beats.shape == (-(-n // lanes), lanes)
        assert beats[np.unravel_index(np.arange(n), beats.shape)].tolist() == codes.tolist()
        assert unbeat(beats, n).tolist() == codes.tolist()


def test_beats_validation():
    with pytest.raises(ValueError, match="exceeds array_rows = 4"):
        dac_beats([1, 2, 3, 4, 5], 2, array_rows=4)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        dac_beats([], 2)
    with pytest.raises(ValueError, match="padding lane 3 of the last beat holds 7"):
        unbeat([[1, 2, 3, 7]], 3)
    with pytest.raises(ValueError, match="needs ceil"):
        unbeat([[1, 2], [3, 4]], 2)


# --------------------------------------------------------------------------
# 3. Tile schedule
# --------------------------------------------------------------------------


def test_tile_schedule_2_by_3():
    steps = tile_schedule(2, 3)
    assert steps == [(0, 0, 0), (1, 1, 0), (2, 0, 1), (3, 1, 1), (4, 0, 2), (5, 1, 2)]
    assert steps[3] == TileStep(array_index=3, row_block=1, col_block=1)


def test_block_counts():
    assert block_counts(1000, 300, 512, 256) == (2, 2)
    assert block_counts(512, 256, 512, 256) == (1, 1)
    assert block_counts(513, 1, 512, 256) == (2, 1)
    assert tile_schedule(*block_counts(16 * 9, 28, 64, 16)) == [
        (0, 0, 0), (1, 1, 0), (2, 2, 0), (3, 0, 1), (4, 1, 1), (5, 2, 1)
    ]


# --------------------------------------------------------------------------
# 4. Partial sums
# --------------------------------------------------------------------------


def test_accumulate_largest_codes():
    codes = [[-128, 127, 5], [-128, 127, -7], [-128, 127, 1]]
    got = accumulate_partial_sums(codes, adc_bits=8, acc_bits=10)
    assert got.tolist() == [-384, 381, -1]


def test_accumulate_overflow_check_boundary():
    # 3 * 2**7 = 384 <= 511 accepted; 4 * 2**7 = 512 > 511 refused at acc_bits = 10
    accumulate_partial_sums(np.zeros((3, 2), dtype=np.int64), adc_bits=8, acc_bits=10)
    with pytest.raises(ValueError, match="need acc_bits >= 11"):
        accumulate_partial_sums(np.zeros((4, 2), dtype=np.int64), adc_bits=8, acc_bits=10)
    assert partial_sum_acc_bits(4, 8) == 11
    assert partial_sum_acc_bits(3, 8) == 10
    assert partial_sum_acc_bits(1, 8) == 9  # 128 <= 255


def test_accumulate_rejects_code_outside_adc_range():
    with pytest.raises(ValueError, match="value 128 .* signed 8-bit"):
        accumulate_partial_sums([[0, 128]], adc_bits=8, acc_bits=16)


# --------------------------------------------------------------------------
# 5. Affine unit
# --------------------------------------------------------------------------


def test_affine_hand_computed():
    # 100*3 + 5 = 305; (305 + 2) >> 2 = 76
    assert affine_requantize([100], [3], [5], 2, False, acc_bits=16).tolist() == [76]
    # y = -6, shift 2: -1.5 -> -1 (tie toward +inf)
    assert affine_requantize([-6], [1], [0], 2, False, acc_bits=16).tolist() == [-1]
    # y = -10, shift 2: -2.5 -> -2
    assert affine_requantize([-10], [1], [0], 2, False, acc_bits=16).tolist() == [-2]


def test_affine_saturation_at_both_ends():
    got = affine_requantize([1000, -1000, 127, -128, 128, -129], 1, 0, 0, False, acc_bits=16)
    assert got.tolist() == [127, -128, 127, -128, 127, -128]
    # 255.5 rounds to 256 -> 127; -256.5 -> -256 -> -128
    got = affine_requantize([511, -513], 1, 0, 1, False, acc_bits=16)
    assert got.tolist() == [127, -128]


def test_affine_relu():
    got = affine_requantize([-5, 5, 0, -1], 1, 0, 0, True, acc_bits=16)
    assert got.tolist() == [0, 5, 0, 0]
    # y = -3, shift 1: -1.5 rounds to -1 without ReLU, 0 with it
    assert affine_requantize([-3], 1, 0, 1, False, acc_bits=16).tolist() == [-1]
    assert affine_requantize([-3], 1, 0, 1, True, acc_bits=16).tolist() == [0]


def test_affine_relu_on_most_negative():
    p = -(2**15)
    args = dict(acc_bits=16, scale_bits=16, offset_bits=32)
    assert affine_requantize([p], [32767], [-(2**31)], 0, True, **args).tolist() == [0]
    assert affine_requantize([p], [32767], [-(2**31)], 0, False, **args).tolist() == [-128]


def test_affine_extreme_product_and_offset():
    # (-2**15) * (-2**15) = 2**30; + 2**31 - 1 = 3*2**30 - 1; (that + 2**30) >> 31 = 1
    got = affine_requantize([-(2**15)], [-(2**15)], [2**31 - 1], 31, False, acc_bits=16)
    assert got.tolist() == [1]


def test_affine_per_column_broadcast():
    p = [[10, 10, 10], [-10, -10, -10]]
    got = affine_requantize(p, [2, -2, 1], [0, 8, -4], 2, False, acc_bits=16)
    # (20+2)>>2=5, (-12+2)>>2=-3, (6+2)>>2=2; (-20+2)>>2=-5, (28+2)>>2=7, (-14+2)>>2=-3
    assert got.tolist() == [[5, -3, 2], [-5, 7, -3]]


def test_affine_validation():
    with pytest.raises(ValueError, match="p: value 32768"):
        affine_requantize([2**15], 1, 0, 0, False, acc_bits=16)
    with pytest.raises(ValueError, match="scale: value 32768"):
        affine_requantize([1], 2**15, 0, 0, False, acc_bits=16)
    with pytest.raises(ValueError, match="shift must be in \\[0, 31\\]"):
        affine_requantize([1], 1, 0, 32, False, acc_bits=16)
    with pytest.raises(TypeError, match="relu must be a bool"):
        affine_requantize([1], 1, 0, 0, 1, acc_bits=16)
    with pytest.raises(ValueError, match="broadcast to the shape of p"):
        affine_requantize([1, 2], [1, 2, 3], 0, 0, False, acc_bits=16)


def test_relu_then_round_equals_round_then_relu():
    rng = np.random.default_rng(3)
    p = rng.integers(-(2**19), 2**19, size=(20, 64))
    scale = rng.integers(-(2**15), 2**15, size=64)
    offset = rng.integers(-(2**31), 2**31, size=64)
    for shift in (0, 1, 7, 20, 34):
        got = affine_requantize(p, scale, offset, shift, True, acc_bits=20)
        y = p * scale + offset
        ref = np.maximum(saturate(round_shift(y, shift), 8), 0)
        assert np.array_equal(got, ref)
        assert np.count_nonzero(got == 0) < got.size  # not trivially all zero


def test_affine_matches_python_int_reference():
    rng = np.random.default_rng(5)
    p = rng.integers(-(2**23), 2**23, size=200)
    scale = rng.integers(-(2**15), 2**15, size=200)
    offset = rng.integers(-(2**31), 2**31, size=200)
    shift = 29
    got = affine_requantize(p, scale, offset, shift, False, acc_bits=24)
    for k in range(200):
        y = int(p[k]) * int(scale[k]) + int(offset[k])
        r = math.floor(Fraction(y, 2**shift) + Fraction(1, 2))
        assert int(got[k]) == min(max(r, -128), 127)


def test_quantize_affine_shift_choice():
    # 0.5 * 2**15 = 16384 fits, 0.5 * 2**16 = 32768 does not -> shift 15
    c = quantize_affine([0.5, -0.25], [0.0, 1.0])
    assert c == AffineCoefficients(np.array([16384, -8192]), np.array([0, 2**15]), 15, False)
    # -1.0 * 2**15 = -32768 fits signed 16 bits; +1.0 needs shift 14
    assert quantize_affine([-1.0], 0.0).shift == 15
    assert quantize_affine([1.0], 0.0).shift == 14
    assert quantize_affine([1.0], 0.0).scale.tolist() == [16384]
    # tiny multipliers: clamped to max_shift
    assert quantize_affine([1e-9], 0.0).shift == 31
    assert quantize_affine([1e-9], 0.0, max_shift=20).shift == 20
    # offset would saturate at the scale's shift 24: lowered to 11 (1e6 * 2**11 < 2**31)
    c = quantize_affine([2.0**-10], [1e6])
    assert c.shift == 11 and c.offset.tolist() == [2048000000]
    assert quantize_affine([0.5], 0.0, relu=True).relu is True


def test_quantize_affine_validation():
    with pytest.raises(ValueError, match="does not fit a signed 16-bit scale even at shift 0"):
        quantize_affine([40000.0], 0.0)
    with pytest.raises(ValueError, match="must be finite"):
        quantize_affine([np.nan], 0.0)
    with pytest.raises(ValueError, match="do not broadcast"):
        quantize_affine([1.0, 2.0], [1.0, 2.0, 3.0])


def test_quantized_affine_within_error_bound():
    rng = np.random.default_rng(2024)
    acc_bits = 20
    for trial in range(20):
        n_cols = 32
        m = rng.normal(size=n_cols) * 10.0 ** rng.uniform(-5, 0)
        b = rng.normal(size=n_cols) * 30.0
        relu = bool(trial % 2)
        coeffs = quantize_affine(m, b, relu=relu)
        assert coeffs.shift <= acc_bits + 16 - 1
        p = rng.integers(-(2**19), 2**19, size=(16, n_cols))
        got = coeffs.apply(p, acc_bits=acc_bits)
        y = p * m + b
        if relu:
            y = np.maximum(y, 0.0)
        y = np.clip(y, -128.0, 127.0)
        bound = 0.5 + (np.abs(p) + 1) * 2.0 ** -(coeffs.shift + 1) + 1e-9
        assert np.all(np.abs(got - y) <= bound)
        # the rounding error is really used: mean error well below 0.5 LSB bound
        assert np.mean(np.abs(got - y)) < 0.3


# --------------------------------------------------------------------------
# 5b. Real-valued coefficients (physics folding)
# --------------------------------------------------------------------------

_PHYS = dict(g_max_us=25.0, v_read_v=0.2, array_rows=256, adc_full_scale_fraction=0.25)


def test_analog_affine_multiplier_literal():
    # I_fs = 0.25*256*25*0.2 = 320 uA, LSB_I = 2.5 uA; LSB_V = 0.2/128 V; s = 50 uS
    # m = 2.5 * 1 * 0.1 / (0.0015625 * 50 * 0.2) = 16
    m = analog_affine_multiplier(in_scale=0.1, out_scale=0.2, w_abs_max=0.5, adc_bits=8,
                                 dac_bits=8, **_PHYS)
    assert float(m) == pytest.approx(16.0, rel=1e-12)
    # dac_bits does not change it (LSB_V_eff = v_read / 2**7); gamma/sqrt(var+eps), alpha do
    m = analog_affine_multiplier(in_scale=0.1, out_scale=0.2, w_abs_max=0.5, adc_bits=8,
                                 dac_bits=4, gdc_alpha=[1.0, 2.0], bn_gamma=[3.0, 1.0],
                                 bn_var=[3.99, 0.99], eps=0.01, **_PHYS)
    assert m.tolist() == pytest.approx([24.0, 32.0], rel=1e-12)


def test_weight_abs_max_and_per_column_multiplier_literal():
    from archmodel.golden.coefficients import weight_abs_max

    w = np.array([[1.0, 0.01, 0.0], [-0.5, -0.02, 0.0]])
    assert weight_abs_max(w) == 1.0 and weight_abs_max(w, "per_layer") == 1.0
    # per column; the all-zero column takes the layer max
    assert weight_abs_max(w, "per_column").tolist() == [1.0, 0.02, 1.0]
    for bad, msg in ((np.zeros((2, 2)), "all zero"), (np.ones(3), "2-D")):
        with pytest.raises(ValueError, match=msg):
            weight_abs_max(bad, "per_column")
    with pytest.raises(ValueError, match="per_layer' or 'per_column"):
        weight_abs_max(w, "per_row")
    # test_analog_affine_multiplier_literal's 16 at max|W| = 0.5; m is proportional to max|W| (1/s): 0.05 -> 1.6
    m = analog_affine_multiplier(in_scale=0.1, out_scale=0.2, w_abs_max=[0.5, 0.05], adc_bits=8, dac_bits=8,
                                 gdc_alpha=[1.0, 2.0], **_PHYS)
    assert m.tolist() == pytest.approx([16.0, 3.2], rel=1e-12)
    with pytest.raises(ValueError, match="w_abs_max must be > 0"):
        analog_affine_multiplier(in_scale=0.1, out_scale=0.2, w_abs_max=[0.5, 0.0], adc_bits=8, dac_bits=8, **_PHYS)


@pytest.mark.parametrize("dac_bits", [8, 6, 4])
def test_analog_affine_multiplier_against_float_crossbar(dac_bits):
    rng = np.random.default_rng(100 + dac_bits)
    k, n, adc_bits = 200, 24, 9
    w = rng.normal(size=(k, n)) * 0.3
    x_int8 = rng.integers(-128, 128, size=(5, k))
    in_scale, out_scale = 0.037, 0.11
    alpha = rng.uniform(1.0, 1.6, size=n)
    gamma, var, eps = rng.uniform(0.5, 2, size=n), rng.uniform(0.1, 3, size=n), 1e-5
    s_us = _PHYS["g_max_us"] / np.max(np.abs(w))
    g_pos = np.clip(w * s_us, 0, None) / alpha  # ideal drift by 1/alpha per column
    g_neg = np.clip(-w * s_us, 0, None) / alpha
    d = dac_codes(x_int8, dac_bits)
    v = d * (_PHYS["v_read_v"] / 2 ** (dac_bits - 1))
    i_ua = v @ (g_pos - g_neg)
    i_fs = (_PHYS["adc_full_scale_fraction"] * _PHYS["array_rows"] * _PHYS["g_max_us"]
            * _PHYS["v_read_v"])
    ideal_code = i_ua / (i_fs / 2 ** (adc_bits - 1))  # unquantized ADC
    m = analog_affine_multiplier(in_scale=in_scale, out_scale=out_scale,
                                 w_abs_max=float(np.max(np.abs(w))), adc_bits=adc_bits,
                                 dac_bits=dac_bits, gdc_alpha=alpha, bn_gamma=gamma,
                                 bn_var=var, eps=eps, **_PHYS)
    # the float reference sees the DAC-quantized activation x = d * 2**(8-dac_bits) * in_scale
    x_real = d * 2 ** (8 - dac_bits) * in_scale
    ref = (x_real @ w) * gamma / np.sqrt(var + eps) / out_scale
    np.testing.assert_allclose(ideal_code * m, ref, rtol=1e-10, atol=1e-9)
    if dac_bits == 8:
        np.testing.assert_allclose(
            ideal_code * m, ((x_int8 * in_scale) @ w) * gamma / np.sqrt(var + eps) / out_scale,
            rtol=1e-10, atol=1e-9)


def test_folded_offset_and_digital_multiplier():
    # (2 * (1 - 0.5) / sqrt(3.99 + 0.01) + 0.5) / 0.25 = (0.5 + 0.5) / 0.25 = 4
    assert float(folded_offset(1.0, 2.0, 0.5, 0.5, 3.99, 0.01, out_scale=0.25)) == \
        pytest.approx(4.0)
    assert folded_offset([3.0, -1.0], out_scale=0.5).tolist() == [6.0, -2.0]
    assert float(folded_offset(None, 2.0, 1.0, 1.0, 0.0, 0.25, out_scale=1.0)) == \
        pytest.approx(2.0 * -1.0 / 0.5 + 1.0)
    with pytest.raises(ValueError, match="must be given together"):
        folded_offset(1.0, bn_gamma=1.0, out_scale=1.0)
    with pytest.raises(ValueError, match="out_scale must be a finite number > 0"):
        folded_offset(1.0, out_scale=0.0)
    # 0.5 * 0.25 * 2/sqrt(4) / 0.125 = 1
    m = digital_affine_multiplier(in_scale=0.5, w_scale=[0.25, 0.5], out_scale=0.125,
                                  bn_gamma=[2.0, 2.0], bn_var=[4.0, 4.0], eps=0.0)
    assert m.tolist() == pytest.approx([1.0, 2.0])


def test_analog_layer_end_to_end_with_quantized_adc():
    """Whole analog path (ideal devices): DAC -> row blocks -> ADC -> sums -> affine."""
    rng = np.random.default_rng(77)
    k, n, array_rows, array_cols, adc_bits, dac_bits = 70, 40, 32, 32, 12, 8
    phys = dict(g_max_us=25.0, v_read_v=0.2, array_rows=array_rows,
                adc_full_scale_fraction=0.5)
    w = rng.normal(size=(k, n)) * 0.05
    bias = rng.normal(size=n) * 0.1
    x_int8 = rng.integers(-128, 128, size=k)
    in_scale, out_scale = 0.02, 0.01
    n_rb, n_cb = block_counts(k, n, array_rows, array_cols)
    assert (n_rb, n_cb) == (3, 2)
    s_us = phys["g_max_us"] / np.max(np.abs(w))
    lsb_v = phys["v_read_v"] / 2 ** (dac_bits - 1)
    lsb_i = (phys["adc_full_scale_fraction"] * array_rows * phys["g_max_us"]
             * phys["v_read_v"]) / 2 ** (adc_bits - 1)
    acc_bits = partial_sum_acc_bits(n_rb, adc_bits)
    m = analog_affine_multiplier(in_scale=in_scale, out_scale=out_scale,
                                 w_abs_max=float(np.max(np.abs(w))), adc_bits=adc_bits,
                                 dac_bits=dac_bits, **phys)
    coeffs = quantize_affine(np.full(n, float(m)), folded_offset(bias, out_scale=out_scale),
                             relu=True)
    out = np.full(n, 999, dtype=np.int64)
    codes_by_cb: dict[int, list[np.ndarray]] = {}
    for _, rb, cb in tile_schedule(n_rb, n_cb):
        rows = slice(rb * array_rows, min((rb + 1) * array_rows, k))
        cols = slice(cb * array_cols, min((cb + 1) * array_cols, n))
        d = unbeat(dac_beats(dac_codes(x_int8[rows], dac_bits), 8), rows.stop - rows.start)
        i_ua = (d * lsb_v) @ (w[rows, cols] * s_us)
        raw = np.floor(i_ua / lsb_i + 0.5).astype(np.int64)  # ideal ADC, test-only model
        assert np.all(np.abs(raw) < 2 ** (adc_bits - 1))  # no ADC clipping in this case
        codes_by_cb.setdefault(cb, []).append(raw)
        if rb == n_rb - 1:
            p = accumulate_partial_sums(codes_by_cb[cb], adc_bits, acc_bits)
            out[cols] = affine_requantize(p, coeffs.scale[cols], coeffs.offset[cols],
                                          coeffs.shift, coeffs.relu, acc_bits=acc_bits)
    assert not np.any(out == 999)  # every column emitted once its column block completed
    y = np.clip(np.maximum(((x_int8 * in_scale) @ w + bias) / out_scale, 0), -128, 127)
    adc_err = n_rb * 0.5 * float(m)
    bound = 0.5 + adc_err + (2**acc_bits) * 2.0 ** -(coeffs.shift + 1)
    assert bound < 1.5
    assert np.all(np.abs(out - y) <= bound)
    assert np.count_nonzero(out) > n // 4  # exercised, not all clipped by ReLU


# --------------------------------------------------------------------------
# 6. Digital datapath
# --------------------------------------------------------------------------

_X33 = np.arange(1, 10).reshape(1, 3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]


def test_im2col_1x3x3_kernel_2x2_by_hand():
    assert im2col(_X33, (2, 2)).tolist() == [
        [1, 2, 4, 5],  # (i, j) = (0, 0)
        [2, 3, 5, 6],  # (0, 1)
        [4, 5, 7, 8],  # (1, 0)
        [5, 6, 8, 9],  # (1, 1)
    ]


def test_im2col_padding_stride_dilation_by_hand():
    # padded 5x5, stride 2: windows at (0,0), (0,2), (2,0), (2,2)
    assert im2col(_X33, 2, stride=2, padding=1).tolist() == [
        [0, 0, 0, 5],
        [0, 0, 4, 6],
        [0, 2, 0, 8],
        [1, 3, 7, 9],
    ]
    assert im2col(_X33, 2, dilation=2).tolist() == [[1], [3], [7], [9]]
    # ONNX pads (top, left, bottom, right) = (0, 1, 0, 0): one zero column on the left
    assert im2col(_X33, (1, 2), padding=(0, 1, 0, 0)).tolist() == [
        [0, 1, 2, 0, 4, 5, 0, 7, 8],
        [1, 2, 3, 4, 5, 6, 7, 8, 9],
    ]


def test_im2col_row_order_multi_channel():
    # tap-major: row (i*kw + j)*C + c, channels innermost (docs/design.md §4.8, "im2col order")
    x = np.stack([_X33[0], 10 * _X33[0]])  # (2, 3, 3)
    cols = im2col(x, 2)
    assert cols.shape == (8, 4)
    assert cols[0].tolist() == [1, 2, 4, 5]      # row (i=0, j=0, c=0)
    assert cols[1].tolist() == [10, 20, 40, 50]  # row (i=0, j=0, c=1)
    assert cols[6].tolist() == [5, 6, 8, 9]      # row (i=1, j=1, c=0)
    assert cols[7].tolist() == [50, 60, 80, 90]  # row (i=1, j=1, c=1)
    # one output pixel's column is its window, pixel by pixel, each pixel's channels contiguous
    assert cols[:, 0].tolist() == [1, 10, 2, 20, 4, 40, 5, 50]


def test_weight_matrix_is_tap_major():
    w = np.arange(2 * 3 * 2 * 2).reshape(2, 3, 2, 2)  # (O, C, kh, kw)
    wm = weight_matrix(w)
    assert wm.shape == (12, 2)
    assert wm[(1 * 2 + 0) * 3 + 2, 1] == w[1, 2, 1, 0] == 22  # row (i=1, j=0, c=2), column 1
    assert wm[:3, 0].tolist() == [0, 4, 8]  # tap (0, 0) of channels 0, 1, 2 of output 0


def test_conv_output_hw():
    assert conv_output_hw(32, 32, 3, 1, 1) == (32, 32)
    assert conv_output_hw(32, 32, 3, 2, 1) == (16, 16)
    assert conv_output_hw(7, 5, (3, 1), (2, 1), (1, 0, 0, 0), (2, 1)) == (2, 5)
    with pytest.raises(ValueError, match="does not fit"):
        conv_output_hw(2, 2, 3)


def test_digital_conv2d_hand_computed():
    # weight [[1, 0], [0, -1]]: out = x[oh, ow] - x[oh+1, ow+1] = -4 everywhere
    w = np.array([[[[1, 0], [0, -1]]]])
    assert digital_conv2d(_X33, w).tolist() == [[[-4, -4], [-4, -4]]]
    # weight [[1, 2], [3, 4]]: 1+4+12+20=37, 2+6+15+24=47, 4+10+21+32=67, 5+12+24+36=77
    w = np.array([[[[1, 2], [3, 4]]]])
    assert digital_conv2d(_X33, w).tolist() == [[[37, 47], [67, 77]]]


def _conv_loop_reference(x, w, stride, pads, dilation, groups):
    """Independent nested-loop convolution in Python ints."""
    c_in, h, wd = x.shape
    c_out, c_in_g, kh, kw = w.shape
    sh, sw = stride
    dh, dw = dilation
    top, left, bottom, right = pads
    h_out = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    w_out = (wd + left + right - dw * (kw - 1) - 1) // sw + 1
    c_out_g = c_out // groups
    out = np.zeros((c_out, h_out, w_out), dtype=np.int64)
    for o in range(c_out):
        g = o // c_out_g
        for oh in range(h_out):
            for ow in range(w_out):
                total = 0
                for c in range(c_in_g):
                    for i in range(kh):
                        for j in range(kw):
                            yy = oh * sh + i * dh - top
                            xx = ow * sw + j * dw - left
                            if 0 <= yy < h and 0 <= xx < wd:
                                total += int(w[o, c, i, j]) * int(x[g * c_in_g + c, yy, xx])
                out[o, oh, ow] = total
    return out


@pytest.mark.parametrize(
    ("c_in", "c_out", "groups", "k", "stride", "pads", "dilation"),
    [
        (3, 4, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
        (4, 6, 2, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
        (4, 4, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),  # depthwise
        (6, 6, 6, (3, 3), (2, 1), (2, 1, 0, 2), (2, 2)),  # depthwise, dilated, asymmetric
        (4, 8, 4, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),  # grouped pointwise, 2 out per group
        (2, 3, 1, (2, 3), (1, 2), (0, 1, 1, 0), (1, 2)),
    ],
)
def test_digital_conv2d_against_loop_reference(c_in, c_out, groups, k, stride, pads, dilation):
    rng = np.random.default_rng(c_in * 100 + c_out * 10 + groups)
    x = rng.integers(-128, 128, size=(c_in, 7, 6))
    w = rng.integers(-128, 128, size=(c_out, c_in // groups, *k))
    got = digital_conv2d(x, w, stride=stride, padding=pads, dilation=dilation, groups=groups)
    ref = _conv_loop_reference(x, w, stride, pads, dilation, groups)
    assert got.shape == ref.shape
    assert np.array_equal(got, ref)


def test_digital_conv2d_groups_differ_from_dense():
    # with groups=2 output channel 0 must ignore input channels 2..3
    x = np.zeros((4, 3, 3), dtype=np.int64)
    x[2:] = 1
    w = np.ones((2, 2, 1, 1), dtype=np.int64)
    got = digital_conv2d(x, w, groups=2)
    assert got[0].tolist() == [[0] * 3] * 3
    assert got[1].tolist() == [[2] * 3] * 3


def test_digital_conv2d_extreme_values_and_overflow_check():
    x = np.full((2, 4, 4), -128)
    w = np.full((1, 2, 3, 3), -128)
    got = digital_conv2d(x, w, acc_bits=20)  # K = 18: 18 * 2**14 = 294912 <= 2**19 - 1
    assert got.tolist() == [[[18 * 16384] * 2] * 2]
    with pytest.raises(ValueError, match="need acc_bits >= 21"):
        digital_conv2d(np.zeros((2, 4, 4), dtype=np.int64),
                       np.zeros((1, 2, 4, 4), dtype=np.int64), acc_bits=20)  # K = 32
    with pytest.raises(ValueError, match="w_int8: value -129"):
        digital_conv2d(x, np.full((1, 2, 3, 3), -129))
    with pytest.raises(ValueError, match="groups = 3 must divide"):
        digital_conv2d(x, np.ones((2, 1, 1, 1), dtype=np.int64), groups=3)


def test_digital_linear():
    w = [[1, 2, 3], [-1, 0, 1]]
    assert digital_linear([1, 1, 1], w).tolist() == [6, 0]
    assert digital_linear([[1, 1, 1], [-128, 0, 127]], w).tolist() == [[6, 0], [253, 255]]
    # K = 31 fits acc_bits = 20 (31 * 2**14 = 507904 <= 524287), K = 32 does not
    digital_linear(np.full(31, -128), np.full((1, 31), -128), acc_bits=20)
    with pytest.raises(ValueError, match="K = 32 terms"):
        digital_linear(np.zeros(32, dtype=np.int64), np.zeros((1, 32), dtype=np.int64),
                       acc_bits=20)
    assert digital_acc_bits(131071) == 32 and digital_acc_bits(131072) == 33
    with pytest.raises(ValueError, match="must have shape"):
        digital_linear([1, 2], w)


def test_digital_linear_against_loop():
    rng = np.random.default_rng(9)
    w = rng.integers(-128, 128, size=(5, 17))
    x = rng.integers(-128, 128, size=(3, 17))
    got = digital_linear(x, w)
    for b in range(3):
        for o in range(5):
            assert int(got[b, o]) == sum(int(w[o, i]) * int(x[b, i]) for i in range(17))


# --------------------------------------------------------------------------
# 7. MAC schedule
# --------------------------------------------------------------------------


def test_digital_datapath_order():
    assert digital_datapath_order(2, 3, 2) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert digital_datapath_order(1, 5, 8) == [(0, c) for c in range(5)]
    with pytest.raises(ValueError, match="mac_lanes must be in"):
        digital_datapath_order(1, 1, 0)
