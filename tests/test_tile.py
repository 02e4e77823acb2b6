"""Tests of the crossbar tile model (archmodel/analog_matrix.py) and its cycle model (archmodel/timing.py).

Expected values are hand-computed from docs/design.md ("Data path of one analog
layer", "PCM device model") with the figures of the presets:

- tiny: 32 x 32 arrays, V_read = 0.2 V, 8-bit DAC and ADC, g_max = 25 µS,
  1 device per polarity, ADC full scale I_fs = 0.25 · 32 · 1 · 25 µS · 0.2 V = 40 µA;
- fig11: 512 x 512 arrays, I_fs = 0.125 · 512 · 1 · 25 · 0.2 = 320 µA;
- hermes: 256 x 256 arrays, 2 devices per polarity, g_max = 10.35 µS per device (20.7 µS per polarity,
  aihwkit HermesNoiseModel), I_fs = 0.125 · 256 · 2 · 10.35 · 0.2 = 132.48 µA.

With 8-bit DAC, V_lsb = 0.2 V / 128 = 1.5625 mV, and an ADC code is
``rint(I / I_fs · 128)`` saturated to [-128, 127].
"""

from __future__ import annotations

import numpy as np
import pytest

from archmodel.analog_matrix import G_GRID_US, AnalogMatrix, device_model_from_spec
from archmodel.pcm import PCMDeviceModel, get_statistics
from archmodel.spec import load_spec
from archmodel.timing import MVM_OVERHEAD_CYCLES, adc_beats, dac_beats, mvm_cycles

TINY = load_spec("tiny")
FIG11 = load_spec("fig11")
HERMES = load_spec("hermes")

W2 = np.array([[1.0, -2.0], [0.5, 4.0]])
"""Tiny hand example: max|W| = 4."""


def ideal(spec):
    return device_model_from_spec(spec, ideal=True)


def programmed(spec, w, seed=0, model=None, **kw) -> AnalogMatrix:
    dm = ideal(spec) if model is None else model
    return AnalogMatrix(spec, dm, **kw).program(w, np.random.default_rng(seed))


# ----------------------------------------------------------------------------- programming


def test_program_targets_tiny_hand_computed():
    m = programmed(TINY, W2)
    # s = g_max / max|W| = 25 / 4 = 6.25 µS per weight unit
    assert m.g_scale_us == 6.25
    # G+ = clip(W s, 0, 25) · 1 device; G- = clip(-W s, 0, 25) · 1 device
    np.testing.assert_array_equal(m.g_pos_us, [[6.25, 0.0], [3.125, 25.0]])
    np.testing.assert_array_equal(m.g_neg_us, [[0.0, 12.5], [0.0, 0.0]])
    assert m.shape == (2, 2) and m.n_arrays == 1
    np.testing.assert_array_equal(m.weights, W2)
    assert not m.weights.flags.writeable


def test_program_targets_hermes_two_devices_per_polarity():
    m = programmed(HERMES, W2)
    # s = 10.35 / 4 = 2.5875; each side is the sum of its 2 devices: 2 · clip(W s, 0, 10.35)
    assert m.g_scale_us == pytest.approx(2.5875, rel=1e-15)
    np.testing.assert_allclose(m.g_pos_us, [[5.175, 0.0], [2.5875, 20.7]], rtol=0, atol=2 * G_GRID_US)
    np.testing.assert_allclose(m.g_neg_us, [[0.0, 10.35], [0.0, 0.0]], rtol=0, atol=2 * G_GRID_US)
    # device array: (polarity, device, K, N), both devices of a side share the target
    assert m.devices.shape == (2, 2, 2, 2)
    np.testing.assert_array_equal(m.devices.g_target_us[0, 0], m.devices.g_target_us[0, 1])
    # conductances live on the 2^-24 µS grid
    assert np.all(m.g_pos_us / G_GRID_US == np.round(m.g_pos_us / G_GRID_US))


def test_program_with_noise_is_seeded_and_drift_moves_conductances():
    w = np.random.default_rng(3).standard_normal((20, 12))
    a = programmed(TINY, w, seed=7, model=device_model_from_spec(TINY))
    b = programmed(TINY, w, seed=7, model=device_model_from_spec(TINY))
    c = programmed(TINY, w, seed=8, model=device_model_from_spec(TINY))
    np.testing.assert_array_equal(a.g_pos_us, b.g_pos_us)
    assert not np.array_equal(a.g_pos_us, c.g_pos_us)
    g0 = a.g_pos_us.copy()
    a.drift(86400.0, np.random.default_rng(1))
    assert a.t_inf_s == 86400.0
    # drift at 1 day lowers the mean conductance (E[(t/t0)^-nu] < 0.8 for every device)
    assert a.g_pos_us.sum() < 0.85 * g0.sum()
    a.drift(0.0, np.random.default_rng(1))  # t_inf = 0 is valid: read noise only
    assert a.t_inf_s == 0.0
    assert abs(a.g_pos_us.sum() / g0.sum() - 1.0) < 0.05


# ----------------------------------------------------------------------------- ADC codes


def test_adc_code_one_row_hand_computed():
    m = programmed(TINY, [[1.0]])
    # I = 127 · 1.5625 mV · 25 µS · 1 = 4.9609375 µA; code = rint(4.9609375 / 40 · 128) = rint(15.875) = 16
    np.testing.assert_array_equal(m.column_currents_ua([127]), [[[4.9609375]]])
    np.testing.assert_array_equal(m.mvm_adc_codes([127]), [[[16]]])
    # -128: I = -5 µA -> code -16
    np.testing.assert_array_equal(m.mvm_adc_codes([-128]), [[[-16]]])
    assert m.mvm_adc_codes([127]).dtype == np.int64


def test_adc_code_four_rows_hand_computed():
    # G = 25 · W = [25, 25, 12.5, -25] µS; Σ d·G = 127·25 + 127·25 + 127·12.5 + 128·25 = 11137.5
    # I = 11137.5 · 1.5625 mV = 17.40234375 µA; code = rint(17.40234375 / 40 · 128) = rint(55.6875) = 56
    m = programmed(TINY, [[1.0], [1.0], [0.5], [-1.0]])
    np.testing.assert_allclose(m.column_currents_ua([127, 127, 127, -128]), [[[17.40234375]]], rtol=1e-15)
    np.testing.assert_array_equal(m.mvm_adc_codes([127, 127, 127, -128]), [[[56]]])


def test_adc_saturation_at_both_ends():
    m = programmed(TINY, np.ones((32, 1)))
    # 32 rows at code 127: I = 32 · 4.9609375 = 158.75 µA -> 508 -> saturates at +127
    np.testing.assert_array_equal(m.mvm_adc_codes(np.full(32, 127)), [[[127]]])
    # 32 rows at code -128: I = -160 µA -> -512 -> saturates at -128
    np.testing.assert_array_equal(m.mvm_adc_codes(np.full(32, -128)), [[[-128]]])
    # 10 rows at 127: 49.609375 µA -> 158.75 -> still +127; 8 rows: 39.6875 µA -> 127.0 exactly
    np.testing.assert_array_equal(m.mvm_adc_codes(np.r_[np.full(10, 127), np.zeros(22, int)]), [[[127]]])
    np.testing.assert_array_equal(m.mvm_adc_codes(np.r_[np.full(8, -128), np.zeros(24, int)]), [[[-128]]])
    # ideal periphery: no saturation, the unrounded code comes back
    mi = programmed(TINY, np.ones((32, 1)), ideal_periphery=True)
    np.testing.assert_allclose(mi.mvm_adc_codes(np.full(32, 127)), [[[508.0]]], rtol=1e-14)


def test_adc_code_hermes_hand_computed():
    m = programmed(HERMES, [[1.0]])
    # G = 2 devices · 10.35 µS = 20.7 µS; I = 127 · 1.5625 mV · 20.7 = 4.10765625 µA
    # code = rint(4.10765625 / 132.48 · 128) = rint(3.96875) = 4
    # 10.35 µS is not on the 2^-24 µS grid: each of the 2 devices is off by <= 2^-25 µS
    grid_atol_ua = 127 * (0.2 / 128) * 2 * G_GRID_US / 2
    np.testing.assert_allclose(m.column_currents_ua([127]), [[[4.10765625]]], rtol=0, atol=grid_atol_ua)
    np.testing.assert_array_equal(m.mvm_adc_codes([127]), [[[4]]])


def test_dac_bits_below_8():
    spec = TINY.replace(**{"array.dac_bits": 4})
    m = programmed(spec, [[1.0]])
    # V_lsb = 0.2 / 8 = 25 mV; code 7: I = 7 · 25 mV · 25 µS = 4.375 µA -> 4.375 / 40 · 128 = 14
    np.testing.assert_array_equal(m.mvm_adc_codes([7]), [[[14]]])
    np.testing.assert_array_equal(m.mvm_adc_codes([-8]), [[[-16]]])
    with pytest.raises(ValueError, match="dac_codes"):
        m.mvm_adc_codes([8])  # outside the signed 4-bit range
    # int8 127 -> DAC round_shift(127, 4) = 8 -> saturates to 7; -128 -> -8
    # weight units per code = I_fs / 128 / (V_lsb · s · n_pp) · 2^(8-4) = 40/128 / 0.625 · 16 = 8
    assert m.weight_units_per_code == 8.0
    np.testing.assert_array_equal(m.matmul([127.0], in_scale=1.0), [14 * 8.0])
    np.testing.assert_array_equal(m.matmul([-128.0], in_scale=1.0), [-16 * 8.0])


def test_weight_units_per_code_hand_computed():
    # tiny, W = [[1.0]]: s = 25, 8-bit DAC: I_fs / 128 / (1.5625 mV · 25 µS · 1) = 0.3125 / 0.0390625 = 8
    assert programmed(TINY, [[1.0]]).weight_units_per_code == 8.0
    # W2: s = 6.25 -> 32
    assert programmed(TINY, W2).weight_units_per_code == 32.0


# ----------------------------------------------------------------------------- several arrays


def _integer_weights(rng, k, n):
    """Integer weights in [-8, 8] with max |W| = 8: s = 25/8 = 3.125 µS, G = 3.125 W exactly."""
    w = rng.integers(-8, 9, size=(k, n)).astype(float)
    w[0, 0] = 8.0
    return w


def test_two_by_two_arrays_partial_sums():
    rng = np.random.default_rng(11)
    k, n = 50, 40  # tiny: 2 row blocks (32 + 18) x 2 column blocks (32 + 8)
    w = _integer_weights(rng, k, n)
    m = programmed(TINY, w)
    assert (m.n_row_blocks, m.n_col_blocks, m.n_arrays) == (2, 2, 4)
    d = rng.integers(-128, 128, size=(6, k))
    codes = m.mvm_adc_codes(d)
    assert codes.shape == (2, 6, n)
    # independent implementation: integer dot products per row block, then the ADC
    for r, rows in enumerate((slice(0, 32), slice(32, 50))):
        s_int = d[:, rows] @ w[rows].astype(np.int64)  # exact integers
        i_ua = s_int * 3.125 * (0.2 / 128)
        expected = np.clip(np.rint(i_ua / 40.0 * 128), -128, 127)
        np.testing.assert_array_equal(codes[r], expected)
    psum = m.mvm_partial_sums(d)
    assert psum.dtype == np.int64
    np.testing.assert_array_equal(psum, codes[0] + codes[1])
    # a row block sees only its own rows: zeroing the other block's codes leaves it unchanged
    d0 = d.copy()
    d0[:, 32:] = 0
    c0 = m.mvm_adc_codes(d0)
    np.testing.assert_array_equal(c0[0], codes[0])
    np.testing.assert_array_equal(c0[1], 0)


def test_column_blocks_are_independent():
    rng = np.random.default_rng(12)
    k, n = 50, 40
    w = _integer_weights(rng, k, n)
    w2 = w.copy()
    w2[:, 32:] = -w2[:, 32:] // 2  # change column block 1 only (max|W| = 8 stays in block 0)
    noisy = device_model_from_spec(TINY)
    a = programmed(TINY, w, seed=5, model=noisy)
    b = programmed(TINY, w2, seed=5, model=noisy)
    d = rng.integers(-128, 128, size=(8, k))
    ca, cb = a.mvm_adc_codes(d), b.mvm_adc_codes(d)
    np.testing.assert_array_equal(ca[:, :, :32], cb[:, :, :32])
    assert not np.array_equal(ca[:, :, 32:], cb[:, :, 32:])


# ----------------------------------------------------------------------------- determinism


def _batched_vs_single(m: AnalogMatrix, d: np.ndarray, first: int) -> np.ndarray:
    batched = m.mvm_adc_codes(d, mvm_index=first)
    single = np.stack([m.mvm_adc_codes(d[b], mvm_index=first + b)[:, 0] for b in range(len(d))], axis=1)
    np.testing.assert_array_equal(batched, single)
    np.testing.assert_array_equal(
        m.mvm_partial_sums(d, mvm_index=first),
        np.concatenate([m.mvm_partial_sums(d[b : b + 1], mvm_index=first + b) for b in range(len(d))]),
    )
    return batched


@pytest.mark.parametrize("noise_fraction", [0.0, 0.02])
def test_batched_equals_one_at_a_time_tiny_2x2(noise_fraction):
    spec = TINY.replace(**{"array.output_noise_fraction": noise_fraction})
    rng = np.random.default_rng(21)
    w = rng.standard_normal((50, 40))
    m = AnalogMatrix(spec, noise_seed=9).program(w, np.random.default_rng(1))
    m.drift(3600.0, np.random.default_rng(2))  # conductance noise: programming + drift + read noise
    d = rng.integers(-128, 128, size=(12, 50))
    batched = _batched_vs_single(m, d, first=5)
    assert batched.shape == (2, 12, 40)
    # the comparison is not vacuous: codes vary and the output noise changes them
    assert len(np.unique(batched)) > 20
    clean = AnalogMatrix(TINY).program(w, np.random.default_rng(1)).drift(3600.0, np.random.default_rng(2))
    n_diff = np.count_nonzero(clean.mvm_adc_codes(d) != batched)
    if noise_fraction == 0.0:
        assert n_diff == 0
    else:
        # σ = 0.02 · 128 = 2.56 codes: most of the 960 codes move
        assert n_diff > 480
        # the noise is keyed by the MVM index and the seed
        assert not np.array_equal(m.mvm_adc_codes(d, mvm_index=6), batched)
        other = AnalogMatrix(spec, noise_seed=10).program(w, np.random.default_rng(1))
        other.drift(3600.0, np.random.default_rng(2))
        assert not np.array_equal(other.mvm_adc_codes(d, mvm_index=5), batched)


def test_batched_equals_one_at_a_time_fig11_512_rows():
    spec = FIG11.replace(**{"array.output_noise_fraction": 0.02})
    rng = np.random.default_rng(31)
    w = rng.standard_normal((512, 64))
    m = AnalogMatrix(spec, noise_seed=4).program(w, np.random.default_rng(3))
    m.drift(86400.0, np.random.default_rng(4))
    d = rng.integers(-128, 128, size=(10, 512))
    batched = _batched_vs_single(m, d, first=1000)
    assert batched.shape == (1, 10, 64)
    # the 512-row sums are exact, so the order of the batch does not matter either
    perm = rng.permutation(10)
    np.testing.assert_array_equal(
        m.column_currents_ua(d[perm]), m.column_currents_ua(d)[:, perm]
    )


# ----------------------------------------------------------------------------- float API


def test_matmul_against_numpy_ideal_device():
    rng = np.random.default_rng(41)
    k, n, b = 50, 40, 16
    w = rng.standard_normal((k, n))
    m = programmed(TINY, w)
    in_scale = 0.01
    x = rng.integers(-127, 128, size=(b, k)) * in_scale  # exactly representable in int8 steps
    y = m.matmul(x, in_scale=in_scale)
    codes = m.mvm_adc_codes(np.rint(x / in_scale).astype(np.int64))
    assert np.abs(codes).max() < 127  # no saturation, so the bound below holds
    # error bound: ADC rounding, at most 1/2 code per row block, n_rb = 2 row blocks, one code is
    # weight_units_per_code · in_scale; plus the 2^-24 µS conductance grid (< 1e-6 of a code here)
    bound = (0.5 * m.n_row_blocks + 1e-6) * m.weight_units_per_code * in_scale
    err = np.abs(y - x @ w)
    assert err.max() <= bound
    assert err.max() > 0.2 * bound  # the bound is not loose by orders of magnitude
    # 1-D input gives a 1-D output equal to the first row
    np.testing.assert_array_equal(m.matmul(x[0], in_scale=in_scale), y[0])
    # default in_scale = max|x| / 127
    np.testing.assert_array_equal(m.matmul(x), m.matmul(x, in_scale=float(np.abs(x).max()) / 127))
    np.testing.assert_array_equal(m.matmul(np.zeros(k)), np.zeros(n))


def test_hermes_preset_runs():
    rng = np.random.default_rng(51)
    k, n = 300, 100  # 2 row blocks of 256 rows
    w = rng.standard_normal((k, n))
    m = AnalogMatrix(HERMES, noise_seed=1).program(w, np.random.default_rng(2))
    assert m.devices.shape == (2, 2, k, n)  # 4 devices per weight: 2 per polarity
    assert m.n_row_blocks == 2
    m.drift(86400.0, np.random.default_rng(3))
    x = rng.standard_normal((8, k))
    codes = m.mvm_adc_codes(np.clip(np.rint(x / np.abs(x).max() * 127), -128, 127).astype(np.int64))
    assert codes.shape == (2, 8, n)
    assert codes.min() >= -128 and codes.max() <= 127
    y = m.matmul(x)
    ref = x @ w
    # drifted by ~25 % (HERMES nu ~ 0.07 at 1 day after t0 = 300 s) plus noise: strongly
    # correlated with x @ W, but smaller
    corr = np.corrcoef(y.ravel(), ref.ravel())[0, 1]
    assert corr > 0.9
    assert 0.5 < np.linalg.norm(y) / np.linalg.norm(ref) < 1.0


# ----------------------------------------------------------------------------- errors


def test_errors():
    m = AnalogMatrix(TINY)
    for call in (lambda: m.mvm_adc_codes([1]), lambda: m.drift(1.0, np.random.default_rng(0)),
                 lambda: m.shape, lambda: m.weight_units_per_code, lambda: m.matmul([1.0])):
        with pytest.raises(RuntimeError, match="program"):
            call()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="all zero"):
        m.program(np.zeros((3, 2)), rng)
    with pytest.raises(ValueError, match="2-D"):
        m.program(np.ones(3), rng)
    with pytest.raises(ValueError, match="2-D"):
        m.program(np.ones((0, 3)), rng)
    with pytest.raises(ValueError, match="NaN or inf"):
        m.program([[1.0, np.nan]], rng)
    m.program(W2, rng)
    with pytest.raises(ValueError, match=r"shape \(B, 2\)"):
        m.mvm_adc_codes([1, 2, 3])
    with pytest.raises(ValueError, match=r"shape \(B, 2\)"):
        m.mvm_adc_codes(np.ones((2, 3), dtype=int))
    with pytest.raises(ValueError, match="outside the signed 8-bit range"):
        m.mvm_adc_codes([128, 0])
    with pytest.raises(ValueError, match="outside the signed 8-bit range"):
        m.mvm_adc_codes([0, -129])
    with pytest.raises(ValueError):
        m.mvm_adc_codes([0.5, 1.0])  # DAC codes are integers
    with pytest.raises(ValueError, match="t_inf_s"):
        m.drift(-1.0, rng)


def test_device_model_from_spec():
    dm = device_model_from_spec(TINY.replace(**{"device.prog_noise_scale": 0.5}), fixed_nu=0.06)
    assert isinstance(dm, PCMDeviceModel)
    assert dm.statistics == get_statistics("joshi2020")
    assert (dm.prog_noise_scale, dm.fixed_nu) == (0.5, 0.06)
    h = device_model_from_spec(HERMES, ideal=True)
    assert h.statistics.name == "hermes" and h.g_max_us == 10.35
    assert (h.prog_noise_scale, h.drift_scale, h.read_noise_scale, h.fixed_nu) == (0.0, 0.0, 0.0, 0.0)


# ----------------------------------------------------------------------------- timing


def test_mvm_cycles_hand_computed():
    # tiny at 100 MHz: PWM integration 40 ns + 1 column/ADC x 20 ns = 60 ns -> 6 cycles;
    # 32 rows / 8 per DAC beat = 4 beats; 32 columns / 8 per ADC beat = 4 beats; + 2 overhead
    assert MVM_OVERHEAD_CYCLES == 2
    assert (dac_beats(TINY, 32), adc_beats(TINY, 32)) == (4, 4)
    assert mvm_cycles(TINY, 32, 32) == 4 + 6 + 4 + 2 == 16
    assert mvm_cycles(TINY, 9, 1) == 2 + 6 + 1 + 2 == 11
    # bit-serial: 8 passes x 40 ns + 20 ns = 340 ns -> 34 cycles
    assert mvm_cycles(TINY.replace(**{"array.dac_scheme": "bit_serial"}), 32, 32) == 4 + 34 + 4 + 2
    # fig11 at 1 GHz: 128 + 20 ns = 148 cycles; 512 / 64 = 8 beats each way
    assert mvm_cycles(FIG11, 512, 512) == 8 + 148 + 8 + 2 == 166
    for rows, cols in ((0, 1), (33, 1), (1, 0), (1, 33)):
        with pytest.raises(ValueError, match="out of range"):
            mvm_cycles(TINY, rows, cols)


@pytest.mark.parametrize("noise", [0.0, 0.02])
def test_array_adc_codes_equal_slices_of_batched_mvm(noise):
    # The co-simulation bridge asks one array at a time; it must see exactly the batched codes.
    spec = load_spec("tiny").replace(**{"array.output_noise_fraction": noise})
    rng = np.random.default_rng(11)
    m = AnalogMatrix(spec, noise_seed=5).program(rng.standard_normal((70, 40)), rng).drift(3600.0, rng)
    d = rng.integers(-128, 128, size=(6, 70))
    full = m.mvm_adc_codes(d, mvm_index=100)
    compared = 0
    for cb in range(m.n_col_blocks):
        for rb, sl in enumerate(m.row_block_slices()):
            c0, c1 = cb * 32, min(cb * 32 + 32, 40)
            for j in range(6):
                got = m.array_adc_codes(rb, cb, d[j, sl], mvm_index=100 + j)
                np.testing.assert_array_equal(got[0], full[rb, j, c0:c1])
                compared += got.size
    assert compared == 6 * 3 * 40
    with pytest.raises(ValueError, match="out of range"):
        m.array_adc_codes(3, 0, d[0, :32])


def test_output_noise_key_scheme_independent_and_across_block_boundary():
    # Output noise of MVM m on array a is row m % 64 of SeedSequence([seed, a, m // 64]) normals
    # (module docstring); batches that straddle a 64-MVM block boundary must agree with single MVMs.
    spec = load_spec("tiny").replace(**{"array.output_noise_fraction": 0.05})
    rng = np.random.default_rng(3)
    w = rng.standard_normal((32, 8))
    m = AnalogMatrix(spec, noise_seed=9).program(w, rng)
    d = rng.integers(-128, 128, size=(10, 32))
    batched = m.mvm_adc_codes(d, mvm_index=60)[0]  # MVMs 60..69 straddle blocks 0 and 1
    single = np.stack([m.array_adc_codes(0, 0, d[j], mvm_index=60 + j)[0] for j in range(10)])
    np.testing.assert_array_equal(batched, single)
    # independent reconstruction of the codes of MVM 65 (block 1, row 1)
    z = np.random.Generator(np.random.PCG64(np.random.SeedSequence([9, 0, 1]))).standard_normal((64, 8))[1]
    i_ua = (d[5].astype(np.float64) @ (m.g_pos_us - m.g_neg_us)) * m.v_lsb_v + 0.05 * m.i_fs_ua * z
    expected = np.clip(np.rint(i_ua * 128 / m.i_fs_ua), -128, 127)
    np.testing.assert_array_equal(batched[5], expected)


# ----------------------------------------------------------------------------- issue 11: keyed read noise, ADC range


def test_keyed_read_noise_batched_equals_single_across_block_boundary():
    # Read noise keyed by (key, MVM // 1024): a batch straddling MVM 1024 equals one MVM at a time,
    # through mvm_adc_codes and array_adc_codes, and the two blocks see different read noise.
    from archmodel.analog_matrix import READ_NOISE_BLOCK_MVMS

    assert READ_NOISE_BLOCK_MVMS == 1024
    spec = TINY.replace(**{"array.output_noise_fraction": 0.02})
    rng = np.random.default_rng(8)
    w = rng.standard_normal((50, 40))
    m = AnalogMatrix(spec, noise_seed=3).program(w, np.random.default_rng(1))
    m.drift(86400.0, read_noise_key=(7, 0, 1, 3, 2))
    d = rng.integers(-128, 128, size=(8, 50))
    first = 1020  # MVMs 1020..1027: blocks 0 and 1
    batched = _batched_vs_single(m, d, first=first)
    for rb, sl in enumerate(m.row_block_slices()):
        for j in range(8):
            np.testing.assert_array_equal(m.array_adc_codes(rb, 1, d[j, sl], mvm_index=first + j)[0],
                                          batched[rb, j, 32:40])
    # the same input in two blocks reads different conductances (fresh read noise), same in one block
    i_a = m.column_currents_ua(d[0], mvm_index=1022)
    i_b = m.column_currents_ua(d[0], mvm_index=1023)
    i_c = m.column_currents_ua(d[0], mvm_index=1024)
    np.testing.assert_array_equal(i_a, i_b)
    assert not np.array_equal(i_a, i_c)
    # independent reconstruction of block 1's conductances from drift_mean and the documented key
    g_d, sigma = m.device_model.drift_mean(m.devices, 86400.0)
    z = np.random.Generator(np.random.PCG64(np.random.SeedSequence([7, 0, 1, 3, 2, 1]))).standard_normal(g_d.shape)
    g = np.round(np.maximum(g_d + sigma * z, 0.0) / G_GRID_US) * G_GRID_US
    g_eff = g[0].sum(axis=0) - g[1].sum(axis=0)
    np.testing.assert_array_equal(i_c[0, 0], (d[0, :32].astype(np.float64) @ g_eff[:32]) * m.v_lsb_v)


def test_drift_with_rng_unchanged_by_drift_mean_split():
    # PCMDeviceModel.drift = max(g_d + sigma z, 0) with drift_mean's parts and one rng draw (wave-1 values).
    m = AnalogMatrix(FIG11).program(np.random.default_rng(0).standard_normal((20, 6)), np.random.default_rng(1))
    g = m.device_model.drift(m.devices, 3600.0, np.random.default_rng(5))
    g_d, sigma = m.device_model.drift_mean(m.devices, 3600.0)
    z = np.random.default_rng(5).standard_normal(g_d.shape)
    np.testing.assert_array_equal(g, np.maximum(g_d + sigma * z, 0.0))


def test_set_adc_full_scale_hand_computed():
    # fig11: rows·n_pp·g_max·V_read = 512·1·25·0.2 = 2560 µA; I_fs = 64 µA -> fraction 0.025.
    # One row, weight 1 (G = 25 µS), DAC code 127: I = 127 · 1.5625 mV · 25 µS = 4.9609375 µA
    # -> code rint(4.9609375 / 64 · 128) = rint(9.921875) = 10 (at the fixed 320 µA: rint(1.984) = 2).
    m = programmed(FIG11, np.array([[1.0]]))
    assert m.mvm_adc_codes(np.array([127]))[0, 0, 0] == 2
    m.set_adc_full_scale(64.0)
    assert m.adc_full_scale_fraction == pytest.approx(0.025)
    assert m.mvm_adc_codes(np.array([127]))[0, 0, 0] == 10
    with pytest.raises(ValueError, match="ADC full scale"):
        m.set_adc_full_scale(2561.0)


def test_cosim_prepare_adc_range_per_layer_and_fixed():
    """tb.tile_env.prepare honours calibration.adc_range: per_layer = 5 sigma (RMS over row blocks, vectors and
    columns) of the column currents of the job's own seeded inputs right after programming, recomputed here by hand
    from the programmed conductances; fixed = tiny's 0.25 x 32 rows x 25 uS x 0.2 V = 40 uA exactly, and the coefficients
    and expected outputs are wave 1's (recorded from main before this change)."""
    import hashlib

    from archmodel.golden.tile_controller import dac_codes
    from tb.tile_env import conv_job, prepare

    fixed = prepare(conv_job("tiny", 3, 16, 8, 1, changes={"calibration.adc_range": "fixed"}, t_inf_s=None))
    assert fixed.adc_range == "fixed" and fixed.matrix.i_fs_ua == 40.0 and fixed.adc_full_scale_fraction == 0.25
    # pinned (seed 1): scale 24196 >> 13. Re-pinned by issue 18's tap-major rows (docs/design.md §4.8): the
    # programming noise is drawn in matrix order, so the weights meet other draws (wave 1: 23972, sum 14786)
    assert fixed.coefs.shift == 13 and np.all(fixed.coefs.scale == 24196)
    assert int(fixed.expected.astype(np.int64).sum()) == 15022
    assert hashlib.sha256(fixed.expected.astype(np.int64).tobytes()).hexdigest()[:16] == "a8c347285d65305c"
    pj = prepare(conv_job("tiny", 3, 16, 8, 1, t_inf_s=None))       # tiny's default: per_layer
    assert pj.adc_range == "per_layer"
    g = pj.matrix.g_pos_us - pj.matrix.g_neg_us                        # as programmed (no drift, no read noise)
    cur = dac_codes(pj.job.x, 8).astype(float) @ g * (0.2 / 128)       # K = 27 < 32 rows: one row block
    assert pj.matrix.i_fs_ua == pytest.approx(5 * np.sqrt(np.mean(cur**2)), rel=1e-12)
    assert pj.adc_full_scale_fraction == pytest.approx(pj.matrix.i_fs_ua / 40.0 * 0.25, rel=1e-12)
    # the psums the reference uses are ADC codes at that full scale: RMS ~ 128 / 5 = 25.6 LSB
    assert 20 < np.sqrt(np.mean(pj.psums.astype(float) ** 2)) < 30


# ----------------------------------------------------------------------------- mapping.weight_scaling


def test_weight_scaling_per_column_hand_computed_and_lower_error():
    """per_column: s_j = g_max / max_i |W_ij| (aihwkit's per-column scaling). On two columns 100x apart the small
    column uses the whole conductance range instead of 1 % of it, so its programmed weight error drops; the large
    column (the layer max) is programmed identically (same scale, same draws)."""
    pc = TINY.replace(**{"mapping.weight_scaling": "per_column"})
    w = np.array([[1.0, 0.01], [-0.5, -0.005]])
    m = programmed(pc, w)
    np.testing.assert_allclose(m.g_scale_us, [25.0, 2500.0], rtol=1e-15)      # 25 / 1, 25 / 0.01
    np.testing.assert_allclose(m.w_abs_max, [1.0, 0.01], rtol=0)
    np.testing.assert_allclose(m.g_pos_us, [[25.0, 25.0], [0.0, 0.0]], atol=G_GRID_US)
    np.testing.assert_allclose(m.g_neg_us, [[0.0, 0.0], [12.5, 12.5]], atol=G_GRID_US)
    assert programmed(TINY, w).g_scale_us == 25.0                                # per_layer: one scale
    # ADC-code-to-weight factor per column: I_fs / 128 / (V_lsb s_j) = 40 / 128 / (0.0015625 s_j) = [8, 0.08]
    np.testing.assert_allclose(m.weight_units_per_code, [8.0, 0.08], rtol=1e-12)

    rng = np.random.default_rng(5)
    w = rng.standard_normal((32, 32))
    w /= np.max(np.abs(w), axis=0)                                              # every column's max|W| = 1
    w[:, 16:] *= 0.01                                                           # columns 100x apart
    err = {}
    for scaling in ("per_layer", "per_column"):
        mm = AnalogMatrix(TINY.replace(**{"mapping.weight_scaling": scaling})).program(w, np.random.default_rng(6))
        w_hat = (mm.g_pos_us - mm.g_neg_us) / (mm.g_scale_us * mm.n_pp)         # programmed weights
        err[scaling] = np.sqrt(np.mean((w_hat - w) ** 2, axis=0) / np.mean(w**2, axis=0))  # per column
        err[scaling + "_g"] = mm.g_pos_us[:, :16]
    np.testing.assert_array_equal(err["per_layer_g"], err["per_column_g"])      # large columns: identical
    np.testing.assert_allclose(err["per_layer"][:16], err["per_column"][:16], rtol=1e-12)
    # small columns: per_layer maps them to <= 1 % of g_max, where programming noise (~0.3-1 uS) dominates
    assert np.mean(err["per_column"][16:]) < np.mean(err["per_layer"][16:]) / 10
    assert np.mean(err["per_layer"][16:]) > 1.0 > 0.2 > np.mean(err["per_column"][16:])


def test_weight_scaling_per_column_batched_equals_one_at_a_time():
    """Per-column scales keep the conductances on the 2^-24 uS grid: batched == one MVM at a time, bit for bit,
    with keyed read noise and output noise (2 x 2 arrays)."""
    spec = TINY.replace(**{"array.output_noise_fraction": 0.02, "mapping.weight_scaling": "per_column"})
    rng = np.random.default_rng(21)
    w = rng.standard_normal((50, 40)) * np.logspace(0, 2, 40)
    m = AnalogMatrix(spec, noise_seed=9).program(w, np.random.default_rng(1))
    m.drift(3600.0, read_noise_key=(1, 2, 3))
    d = rng.integers(-128, 128, size=(12, 50))
    batched = _batched_vs_single(m, d, first=1018)
    assert len(np.unique(batched)) > 20
    # the float API: x @ W of the 10 smallest columns (100x below the largest) is lost under per_layer scaling
    x = rng.standard_normal((64, 50))
    corr = {}
    for scaling in ("per_layer", "per_column"):
        mm = AnalogMatrix(spec.replace(**{"mapping.weight_scaling": scaling}), noise_seed=9).program(
            w, np.random.default_rng(1)).drift(3600.0, read_noise_key=(1, 2, 3))
        y, ref = mm.matmul(x), x @ w
        corr[scaling] = np.mean([np.corrcoef(y[:, j], ref[:, j])[0, 1] for j in range(10)])
    print(corr)
    assert corr["per_column"] > 0.8 > corr["per_layer"]
