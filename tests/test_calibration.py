"""Tests of global drift compensation (archmodel/calibration.py).

docs/design.md ("GDC"): with an ideal periphery (no quantization, no noise) and one
drift exponent ν for every device, every partial sum scales by
``(1 + t_inf/t0)^-ν``, so ``α = (1 + t_inf/t0)^ν`` exactly (checked to 1e-9).
The statistical test states its sample size and its margin in standard errors.
"""

from __future__ import annotations

import numpy as np
import pytest

from archmodel.analog_matrix import AnalogMatrix, device_model_from_spec
from archmodel.calibration import (
    CALIBRATION_MVM_INDEX,
    gdc_alpha,
    gdc_calibration_inputs,
    gdc_reference,
)
from archmodel.spec import load_spec

TINY = load_spec("tiny")
HERMES = load_spec("hermes")
NU = 0.06
TIMES_S = (0.0, 1.0, 3600.0, 86400.0, 2_592_000.0, 31_536_000.0)
KINDS = ("random", "ones", "one_hot")


def fixed_nu_matrix(spec, k, n, seed=0, ideal_periphery=True) -> AnalogMatrix:
    """No programming or read noise, every device drifts with ν = 0.06."""
    quiet = spec.replace(**{"device.prog_noise_scale": 0.0, "device.read_noise_scale": 0.0})
    dm = device_model_from_spec(quiet, fixed_nu=NU)
    assert (dm.prog_noise_scale, dm.read_noise_scale, dm.fixed_nu) == (0.0, 0.0, NU)
    w = np.random.default_rng(seed).standard_normal((k, n))
    return AnalogMatrix(spec, dm, ideal_periphery=ideal_periphery).program(w, np.random.default_rng(seed + 1))


def test_expected_alpha_literals():
    # hand values of (1 + t_inf/20)^0.06, the numbers the exactness test relies on
    assert (1 + 3600 / 20) ** NU == pytest.approx(1.366031501, abs=1e-9)
    assert (1 + 86400 / 20) ** NU == pytest.approx(1.652475602, abs=1e-9)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("spec", [TINY, HERMES], ids=["tiny", "hermes"])
def test_gdc_exact_with_ideal_periphery(spec, kind):
    k = 50 if spec is TINY else 300  # two row blocks on both presets
    n = 40
    m = fixed_nu_matrix(spec, k, n)
    cal = gdc_calibration_inputs(kind, 8, k, seed=3)
    ref = gdc_reference(m, cal)
    ref_col = gdc_reference(m, cal, per_column=True)
    assert isinstance(ref, float) and ref > 0
    assert ref_col.shape == (n,) and np.all(ref_col > 0)
    t0 = spec.device.t0_s  # 20 s (joshi2020) or 300 s (hermes)
    rng = np.random.default_rng(7)
    for t in TIMES_S:
        m.drift(t, rng)
        expected = (1.0 + t / t0) ** NU
        alpha = gdc_alpha(m, cal, ref)
        alpha_col = gdc_alpha(m, cal, ref_col, per_column=True)
        assert abs(alpha - expected) <= 1e-9, (t, alpha, expected)
        assert alpha_col.shape == (n,)
        np.testing.assert_allclose(alpha_col, expected, rtol=0, atol=1e-9)
    assert alpha > 1.6  # 1 year is well away from 1: (1 + 31536000/t0)^0.06


def test_gdc_with_adc_quantization_within_rounding_bound():
    """Real ADC (rounding), fixed ν: α lies inside the interval the ADC rounding allows.

    Each of the n_rb = 2 row-block codes is off by at most 1/2, so every |partial sum|
    is off by at most E = 1 code: α ∈ [(ref − E)/(now + E), (ref + E)/(now − E)] with
    ref and now from the ideal periphery (same devices).
    """
    k, n = 50, 40
    m = fixed_nu_matrix(TINY, k, n, ideal_periphery=False)
    mi = fixed_nu_matrix(TINY, k, n, ideal_periphery=True)
    cal = gdc_calibration_inputs("random", 8, k, seed=3)
    ref, ref_i = gdc_reference(m, cal), gdc_reference(mi, cal)
    e = 1.0 + 1e-6  # + slack for the 2^-24 µS conductance grid of the real periphery
    for t in (3600.0, 86400.0):
        m.drift(t, np.random.default_rng(1))
        mi.drift(t, np.random.default_rng(1))
        codes = m.mvm_adc_codes(cal, CALIBRATION_MVM_INDEX)
        assert np.abs(codes).max() < 127  # no saturation: the bound holds
        now_i = float(np.abs(mi.mvm_partial_sums(cal)).mean())
        alpha = gdc_alpha(m, cal, ref)
        assert (ref_i - e) / (now_i + e) <= alpha <= (ref_i + e) / (now_i - e)
        assert alpha == pytest.approx((1 + t / 20) ** NU, rel=0.05)


def test_calibration_inputs_kinds():
    ones = gdc_calibration_inputs("ones", 3, 5)
    np.testing.assert_array_equal(ones, np.full((3, 5), 127))
    assert ones.dtype == np.int64
    # one_hot: vector i has 127 on row (i * k) // n
    np.testing.assert_array_equal(
        gdc_calibration_inputs("one_hot", 4, 8),
        [[127, 0, 0, 0, 0, 0, 0, 0],
         [0, 0, 127, 0, 0, 0, 0, 0],
         [0, 0, 0, 0, 127, 0, 0, 0],
         [0, 0, 0, 0, 0, 0, 127, 0]],
    )
    np.testing.assert_array_equal(np.argmax(gdc_calibration_inputs("one_hot", 3, 7), axis=1), [0, 2, 4])
    r = gdc_calibration_inputs("random", 64, 512, seed=5)
    assert r.shape == (64, 512) and r.dtype == np.int64
    assert r.min() == -127 and r.max() == 127  # the whole symmetric int8 range, -128 excluded
    np.testing.assert_array_equal(r, gdc_calibration_inputs("random", 64, 512, seed=5))  # fixed
    assert not np.array_equal(r, gdc_calibration_inputs("random", 64, 512, seed=6))
    assert abs(r.mean()) < 4 * 73.6 / np.sqrt(r.size)  # uniform on [-127, 127]: std 73.6, N = 32768
    for bad in (("sobol", 4, 8), ("random", 0, 8), ("ones", 4, 0)):
        with pytest.raises(ValueError):
            gdc_calibration_inputs(*bad)


def test_per_column_alpha_of_an_empty_column_is_one():
    w = np.random.default_rng(0).standard_normal((20, 6))
    w[:, 3] = 0.0  # this column reads nothing
    quiet = TINY.replace(**{"device.prog_noise_scale": 0.0, "device.read_noise_scale": 0.0})
    m = AnalogMatrix(TINY, device_model_from_spec(quiet, fixed_nu=NU), ideal_periphery=True)
    m.program(w, np.random.default_rng(1))
    cal = gdc_calibration_inputs("random", 8, 20)
    ref = gdc_reference(m, cal, per_column=True)
    assert ref[3] == 0.0
    m.drift(86400.0, np.random.default_rng(2))
    alpha = gdc_alpha(m, cal, ref, per_column=True)
    assert alpha[3] == 1.0
    np.testing.assert_allclose(np.delete(alpha, 3), (1 + 86400 / 20) ** NU, rtol=0, atol=1e-9)


N_MATRICES = 100
"""Sample size of the statistical GDC test: independently programmed 64 x 64 matrices."""
K_SE = 4.0
"""Margin of the statistical GDC test in standard errors."""
TOLERANCE = 0.01
"""GDC must restore mean|y| to within 1 % (plus the K_SE margin) at 1 day."""


@pytest.mark.parametrize("per_column", [False, True], ids=["global", "per_column"])
def test_gdc_restores_mean_abs_output_at_one_day(per_column):
    """Real noisy model (programming noise, drift, read noise) on tiny, 2 x 2 arrays.

    For each of N_MATRICES matrices: GDC reference from 16 random calibration vectors
    right after programming; at 1 day, r = mean|α · y_t| / mean|y_0| over 128 other
    input vectors. Assert |mean(r) − 1| <= TOLERANCE + K_SE · SE, and that without
    GDC the same ratio is far below 1 (mean drift factor at 1 day is ~0.67).
    """
    k = n = 64
    ratios, ratios_no_gdc = [], []
    for seed in range(N_MATRICES):
        rng = np.random.default_rng(seed)
        w = rng.standard_normal((k, n))
        x = rng.integers(-127, 128, size=(128, k))
        m = AnalogMatrix(TINY, noise_seed=seed).program(w, rng)
        cal = gdc_calibration_inputs("random", 16, k, seed=1000 + seed)
        ref = gdc_reference(m, cal, per_column=per_column)
        y0 = np.abs(m.mvm_partial_sums(x)).mean(axis=0)
        m.drift(86400.0, rng)
        alpha = gdc_alpha(m, cal, ref, per_column=per_column)
        yt = np.abs(m.mvm_partial_sums(x)).mean(axis=0)
        ratios.append(np.mean(alpha * yt) / np.mean(y0))
        ratios_no_gdc.append(np.mean(yt) / np.mean(y0))
    r, r0 = np.array(ratios), np.array(ratios_no_gdc)
    se = r.std(ddof=1) / np.sqrt(N_MATRICES)
    assert abs(r.mean() - 1.0) <= TOLERANCE + K_SE * se, (r.mean(), se)
    se0 = r0.std(ddof=1) / np.sqrt(N_MATRICES)
    assert r0.mean() + K_SE * se0 < 0.75


# ----------------------------------------------------------------------------- issue 11
def test_exact_reference_gdc_is_unbiased_where_measured_reference_is_not():
    """One drift exponent ν = 0.05, no programming/read noise, per-layer ADC range, 10 % output noise, 1 day:
    the true α is (1 + 86400/20)^0.05 = 1.5198; the exact-reference (regression) α is within 1 % of it,
    the measured-reference α is biased low by more than 5 % (E|y + n| > E|y|)."""
    from archmodel.calibration import adc_range_from_currents, gdc_alpha_exact, gdc_exact_outputs
    from archmodel.pcm import PCMDeviceModel, get_statistics

    spec = load_spec("fig11").replace(**{"array.output_noise_fraction": 0.10})
    dm = PCMDeviceModel(get_statistics("joshi2020"), prog_noise_scale=0.0, read_noise_scale=0.0, fixed_nu=0.05)
    rng = np.random.default_rng(0)
    w = rng.standard_normal((256, 64))
    x = rng.integers(0, 128, size=(512, 256))
    m = AnalogMatrix(spec, dm, noise_seed=1).program(w, np.random.default_rng(1))
    m.set_adc_full_scale(adc_range_from_currents(m, x))
    ref, y_e = gdc_reference(m, x), gdc_exact_outputs(m, x)
    m.drift(86400.0, read_noise_key=(1, 2))
    true = (1 + 86400 / 20) ** 0.05
    assert true == pytest.approx(1.5198, abs=1e-4)
    assert gdc_alpha_exact(m, x, y_e) == pytest.approx(true, rel=0.01)
    assert gdc_alpha(m, x, ref) < 0.95 * true
    per_col = gdc_alpha_exact(m, x, y_e, per_column=True)
    # per column: each α has ~3.4 % noise (noise/signal ≈ 0.76 over 512 vectors), their mean none of the bias
    assert per_col.shape == (64,) and abs(per_col.mean() / true - 1) < 0.02


def test_adc_range_is_five_sigma_of_column_currents():
    # Independent computation: 5 · RMS of x·G·V_lsb over every vector and column (one row block).
    from archmodel.calibration import ADC_RANGE_SIGMAS, adc_range_from_currents

    spec = load_spec("fig11")
    rng = np.random.default_rng(4)
    w = rng.standard_normal((100, 20))
    x = rng.integers(-127, 128, size=(300, 100))
    m = AnalogMatrix(spec, device_model_from_spec(spec, ideal=True)).program(w, rng)
    i = (x.astype(np.float64) @ (w * 25.0 / np.abs(w).max())) * (0.2 / 128)
    assert ADC_RANGE_SIGMAS == 5.0
    assert adc_range_from_currents(m, x) == pytest.approx(5 * np.sqrt(np.mean(i**2)), rel=1e-6)
