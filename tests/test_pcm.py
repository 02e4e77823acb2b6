"""Tests of the PCM device model (archmodel/pcm.py) against docs/design.md.

Reference values are hand-computed or published in docs/design.md ("PCM device model").
Statistical checks state their sample size N and accept a deviation of at most
K_SE = 4 standard errors (false-failure probability about 6e-5 per check).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from archmodel.pcm import (
    STATISTICS,
    HermesStatistics,
    Joshi2020Statistics,
    PCMDeviceModel,
    PCMStatistics,
    ProgrammedDevices,
    drift_factor,
    get_statistics,
    read_noise_time_factor,
)

N = 200_000
"""Sample size of every statistical check."""
K_SE = 4.0
"""Accepted deviation, in standard errors."""

T_1H_S = 3600.0
T_1D_S = 86_400.0
T_1Y_S = 31_536_000.0

JOSHI = STATISTICS["joshi2020"]
HERMES = STATISTICS["hermes"]


def rng(seed: int = 1234) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------------------
# Registry and constants
# --------------------------------------------------------------------------------------


def test_registry_constants() -> None:
    assert set(STATISTICS) == {"joshi2020", "hermes"}
    assert isinstance(JOSHI, Joshi2020Statistics)
    assert (JOSHI.name, JOSHI.g_max_us, JOSHI.t0_s, JOSHI.t_read_s) == (
        "joshi2020",
        25.0,
        20.0,
        250e-9,
    )
    assert isinstance(HERMES, HermesStatistics)
    assert (HERMES.name, HERMES.g_max_us, HERMES.t0_s, HERMES.t_read_s) == (
        "hermes",
        20.7,
        300.0,
        512e-9,
    )


def test_get_statistics_overrides() -> None:
    assert get_statistics("joshi2020") == JOSHI
    s = get_statistics("hermes", g_max_us=10.0, t0_s=60.0, t_read_s=1e-6)
    assert isinstance(s, HermesStatistics)
    assert (s.g_max_us, s.t0_s, s.t_read_s) == (10.0, 60.0, 1e-6)
    # registry untouched
    assert HERMES.g_max_us == 20.7


def test_unknown_statistics_name_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="joshi2020") as excinfo:
        get_statistics("joshi")
    assert "hermes" in str(excinfo.value)
    assert "'joshi'" in str(excinfo.value)


def test_statistics_validation() -> None:
    with pytest.raises(ValueError, match="g_max_us"):
        get_statistics("joshi2020", g_max_us=-1.0)
    with pytest.raises(ValueError, match="t0_s"):
        get_statistics("joshi2020", t0_s=1e-9)  # t0 < t_read
    with pytest.raises(TypeError):
        PCMStatistics("x", 1.0, 1.0, 1e-9)  # abstract


def test_statistics_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        JOSHI.g_max_us = 10.0  # type: ignore[misc]


# --------------------------------------------------------------------------------------
# Joshi 2020 set: formulas and docs/design.md reference values
# --------------------------------------------------------------------------------------


def test_joshi_prog_noise_std_reference() -> None:
    # docs/design.md: sigma_prog at x = 0.5 is 0.952705 µS
    assert float(JOSHI.prog_noise_std_us(12.5)) == pytest.approx(0.952705, abs=1e-6)
    # ends of the range: 0.26348 and 0.26348 + 1.9650 - 1.1731 = 1.05538
    np.testing.assert_allclose(JOSHI.prog_noise_std_us([0.0, 25.0]), [0.26348, 1.05538], 1e-12)
    # g_max override scales the polynomial by g_max / 25
    s50 = get_statistics("joshi2020", g_max_us=50.0)
    assert float(s50.prog_noise_std_us(25.0)) == pytest.approx(2 * 0.952705, abs=2e-6)


def test_joshi_drift_and_read_noise_functions() -> None:
    x = np.array([1e-3, 1e-2, 0.1, 1.0])
    # clip(-0.0155 ln x + 0.0244, 0.049, 0.1): 0.13147 -> 0.1; 0.0957801; 0.0600901; 0.0244 -> 0.049
    np.testing.assert_allclose(
        JOSHI.drift_nu_mean(x), [0.1, 0.0957801379, 0.0600900689, 0.049], atol=1e-9
    )
    # clip(-0.0125 ln x - 0.0059, 0.008, 0.045): 0.0516 -> 0.045; 0.0228823; 0.00276 -> 0.008
    x = np.array([1e-2, 0.1, 0.5, 1.0])
    np.testing.assert_allclose(
        JOSHI.drift_nu_std(x), [0.045, 0.0228823137, 0.008, 0.008], atol=1e-9
    )
    # x below 1e-7 is clipped: same as 1e-7 (both saturate)
    assert float(JOSHI.drift_nu_mean(0.0)) == 0.1
    assert float(JOSHI.drift_nu_std(0.0)) == 0.045
    # min(0.0088 / max(x^0.65, 1e-3), 0.2)
    x = np.array([0.0, 0.005, 0.02, 0.5, 1.0])
    np.testing.assert_allclose(
        JOSHI.read_noise_qs(x), [0.2, 0.2, 0.1118956427, 0.0138086801, 0.0088], atol=1e-9
    )


def test_read_noise_time_factor_reference() -> None:
    # docs/design.md: sqrt(ln((0 + 20 + 2.5e-7) / 5e-7)) = 4.18382
    f0 = float(read_noise_time_factor(0.0, JOSHI.t0_s, JOSHI.t_read_s))
    assert f0 == pytest.approx(4.18382, abs=1e-5)
    # 1 day: sqrt(ln((86420 + 2.5e-7) / 5e-7)) = sqrt(ln(1.7284e11)) = 5.1364
    f1d = float(read_noise_time_factor(T_1D_S, JOSHI.t0_s, JOSHI.t_read_s))
    assert f1d == pytest.approx(math.sqrt(math.log(1.7284e11)), abs=1e-6)
    assert PCMDeviceModel.read_noise_time_factor is read_noise_time_factor


def test_drift_factor_helper() -> None:
    # (1 + 3600/20)^-0.05 = 181^-0.05
    assert float(drift_factor(0.05, T_1H_S, 20.0)) == pytest.approx(181.0**-0.05, rel=1e-12)
    np.testing.assert_array_equal(drift_factor(np.array([0.0, 0.1, 1.0]), 0.0, 20.0), 1.0)
    with pytest.raises(ValueError, match="t_inf_s"):
        drift_factor(0.05, -1.0, 20.0)
    assert PCMDeviceModel.drift_factor is drift_factor


def test_programming_noise_empirical_std() -> None:
    # g_T = 12.5 µS (x = 0.5), sigma = 0.952705 µS; N = 200,000 draws.
    # SE of a sample std ~ sigma / sqrt(2N) = 1.5e-3 µS; SE of the mean = sigma / sqrt(N).
    sigma = 0.952705
    dev = PCMDeviceModel(JOSHI).program(np.full(N, 12.5), rng(7))
    assert dev.g_prog_us.shape == (N,)
    std = float(np.std(dev.g_prog_us, ddof=1))
    assert abs(std - sigma) < K_SE * sigma / math.sqrt(2 * N)
    assert abs(float(np.mean(dev.g_prog_us)) - 12.5) < K_SE * sigma / math.sqrt(N)


@pytest.mark.parametrize(
    ("t_inf_s", "expected"),
    [(T_1H_S, 0.77580), (T_1D_S, 0.66501)],
    ids=["1h", "1day"],
)
def test_mean_drift_factor_high_conductance(t_inf_s: float, expected: float) -> None:
    # docs/design.md: E[(t/t0)^-nu] of a device at g_T = g_max (mu_nu = 0.049, sigma_nu = 0.008).
    # Measured through drift() with programming and read noise off, so g / g_max is the
    # drift factor. N = 200,000 devices; margin K_SE standard errors of the mean.
    model = PCMDeviceModel(JOSHI, prog_noise_scale=0.0, read_noise_scale=0.0)
    r = rng(11)
    dev = model.program(np.full(N, JOSHI.g_max_us), r)
    factor = model.drift(dev, t_inf_s, r) / JOSHI.g_max_us
    se = float(np.std(factor, ddof=1)) / math.sqrt(N)
    assert 0 < se < 1e-3
    assert abs(float(np.mean(factor)) - expected) < K_SE * se
    # the exponents themselves: mean 0.049, std 0.008 (SE of mean 0.008/sqrt(N))
    assert abs(float(np.mean(dev.nu)) - 0.049) < K_SE * 0.008 / math.sqrt(N)
    assert abs(float(np.std(dev.nu, ddof=1)) - 0.008) < K_SE * 0.008 / math.sqrt(2 * N)


def test_read_noise_empirical_at_t0() -> None:
    # g_T = g_max, no programming noise: Q_s(1) = 0.0088, sigma_read = 0.0088 * 4.18382
    # = 0.0368176 (relative). t_inf = 0 -> no drift, so g / g_max - 1 ~ N(0, 0.0368176).
    # N = 200,000; margin K_SE standard errors of the sample std.
    model = PCMDeviceModel(JOSHI, prog_noise_scale=0.0)
    r = rng(3)
    dev = model.program(np.full(N, JOSHI.g_max_us), r)
    rel = model.drift(dev, 0.0, r) / JOSHI.g_max_us - 1.0
    sigma = 0.0088 * 4.18382
    assert abs(float(np.std(rel, ddof=1)) - sigma) < K_SE * sigma / math.sqrt(2 * N)
    assert abs(float(np.mean(rel))) < K_SE * sigma / math.sqrt(N)


# --------------------------------------------------------------------------------------
# HERMES set: piecewise functions on both sides of each breakpoint
# --------------------------------------------------------------------------------------


def test_hermes_prog_noise_std() -> None:
    # 0.16603222 + 4.71806468/2 - 8.48101252/4 + 4.68961419/8 = 0.99101320375
    assert float(HERMES.prog_noise_std_us(20.7 / 2)) == pytest.approx(0.99101320375, abs=1e-9)
    # x = 0 and x = 1: 0.16603222 and sum of the coefficients 1.09269857
    np.testing.assert_allclose(
        HERMES.prog_noise_std_us([0.0, 20.7]), [0.16603222, 1.09269857], atol=1e-9
    )
    # g_max 10.35 halves sigma at the same x
    s = get_statistics("hermes", g_max_us=10.35)
    assert float(s.prog_noise_std_us(10.35 / 2)) == pytest.approx(0.99101320375 / 2, abs=1e-9)


def test_hermes_drift_nu_mean_breakpoint() -> None:
    x = np.array([1e-3, 0.05, 0.0944, 0.0945, 0.5, 1.0])
    expected = [
        0.13,  # -0.0387 ln 1e-3 - 0.0182 = 0.2491 -> clipped to 0.13
        0.0977348390,  # -0.0387 ln 0.05 - 0.0182, inside [0.072, 0.13]
        0.0731402898,  # -0.0387 ln 0.0944 - 0.0182 (last point of the log branch)
        0.0720199411,  # -0.0436 * 0.0945^2 - 0.0126 * 0.0945 + 0.0736 (quadratic branch)
        0.0564,  # -0.0436/4 - 0.0126/2 + 0.0736
        0.0174,  # -0.0436 - 0.0126 + 0.0736
    ]
    np.testing.assert_allclose(HERMES.drift_nu_mean(x), expected, atol=1e-9)


def test_hermes_drift_nu_std_breakpoint() -> None:
    x = np.array([1e-4, 0.1, 0.3054, 0.3055, 1.0])
    expected = [
        0.04,  # -0.0117 ln 1e-4 - 0.0057 = 0.1021 -> 0.04
        0.0212402456,  # -0.0117 ln 0.1 - 0.0057
        0.0091,  # -0.0117 ln 0.3054 - 0.0057 = 0.00819 -> clipped to 0.0091
        0.00903985305,  # -0.0118 * 0.3055^2 + 0.0093 * 0.3055 + 0.0073 (quadratic branch)
        0.0048,  # -0.0118 + 0.0093 + 0.0073
    ]
    np.testing.assert_allclose(HERMES.drift_nu_std(x), expected, atol=1e-9)


def test_hermes_read_noise_qs_breakpoint() -> None:
    x = np.array([0.0, 0.01, 0.05, 0.1, 0.15, 0.159, 0.16, 0.5, 1.0])
    expected = [
        0.04,  # log branch saturates at its upper clip (x = 0 handled without -inf)
        0.04,  # -0.0117 ln 0.01 - 0.0069 = 0.0470 -> 0.04
        0.0281500676,  # -0.0117 ln 0.05 - 0.0069
        0.0200402456,  # -0.0117 ln 0.1 - 0.0069
        0.0152963038,  # -0.0117 ln 0.15 - 0.0069
        0.015,  # -0.0117 ln 0.159 - 0.0069 = 0.01461 -> clipped to 0.015
        0.0149874624,  # 0.0069*0.16^3 - 0.028*0.16^2 + 0.0211*0.16 + 0.0123 (cubic branch)
        0.0167125,  # 0.0069/8 - 0.028/4 + 0.0211/2 + 0.0123
        0.0123,  # 0.0069 - 0.028 + 0.0211 + 0.0123
    ]
    np.testing.assert_allclose(HERMES.read_noise_qs(x), expected, atol=1e-9)


def test_hermes_model_uses_hermes_times() -> None:
    # t0 = 300 s: at t_inf = 300 s the drift factor is 2^-nu; fixed nu, no noise.
    model = PCMDeviceModel(HERMES, prog_noise_scale=0.0, read_noise_scale=0.0, fixed_nu=0.1)
    r = rng(5)
    dev = model.program(np.array([5.0, 20.7]), r)
    np.testing.assert_allclose(model.drift(dev, 300.0, r), np.array([5.0, 20.7]) * 2**-0.1)
    # t_read = 512 ns, t0 = 300 s: sqrt(ln((300 + 5.12e-7) / 1.024e-6)) = sqrt(19.49558) = 4.41538
    f0 = float(read_noise_time_factor(0.0, HERMES.t0_s, HERMES.t_read_s))
    assert f0 == pytest.approx(math.sqrt(math.log(300.000000512 / 1.024e-6)), rel=1e-12)
    assert f0 == pytest.approx(4.41538, abs=1e-5)


# --------------------------------------------------------------------------------------
# Draw order, clamps, shapes
# --------------------------------------------------------------------------------------


def test_documented_draw_order() -> None:
    # program: z1 (programming noise), then z2 (drift exponent); drift: z3 (read noise).
    g_t = np.array([[0.0, 3.0, 12.5], [20.0, 25.0, 7.5]])
    model = PCMDeviceModel(JOSHI)
    r = rng(99)
    dev = model.program(g_t, r)
    g = model.drift(dev, T_1H_S, r)

    ref = rng(99)
    z1 = ref.standard_normal(g_t.shape)
    z2 = ref.standard_normal(g_t.shape)
    z3 = ref.standard_normal(g_t.shape)
    x = g_t / 25.0
    g_p = np.maximum(g_t + (0.26348 + 1.9650 * x - 1.1731 * x**2) * z1, 0.0)
    lx = np.log(np.maximum(x, 1e-7))
    mu = np.clip(-0.0155 * lx + 0.0244, 0.049, 0.1)
    sd = np.clip(-0.0125 * lx - 0.0059, 0.008, 0.045)
    nu = np.abs(mu + sd * z2)
    g_d = g_p * (3620.0 / 20.0) ** -nu
    q_s = np.minimum(0.0088 / np.maximum((g_p / 25.0) ** 0.65, 1e-3), 0.2)
    g_ref = np.maximum(g_d + np.abs(g_d) * q_s * math.sqrt(math.log(3620.00000025 / 5e-7)) * z3, 0)

    np.testing.assert_allclose(dev.g_prog_us, g_p, rtol=1e-13)
    np.testing.assert_allclose(dev.nu, nu, rtol=1e-13)
    np.testing.assert_allclose(g, g_ref, rtol=1e-12)
    assert g.dtype == np.float64 and g.shape == g_t.shape


def test_draws_do_not_depend_on_scales() -> None:
    # Stream position after program/drift depends only on the shape.
    g_t = np.linspace(0, 25.0, 50)
    for model in (PCMDeviceModel(JOSHI), PCMDeviceModel.ideal(JOSHI)):
        r = rng(8)
        model.drift(model.program(g_t, r), T_1D_S, r)
        ref = rng(8)
        ref.standard_normal(150)
        assert r.standard_normal() == ref.standard_normal()


def test_zero_targets_stay_non_negative() -> None:
    # Devices programmed to 0 get noise (sigma 0.26348 µS) clamped at 0: P(g_P = 0) = 1/2.
    # N = 200,000; margin K_SE * sqrt(0.25 / N).
    model = PCMDeviceModel(JOSHI)
    r = rng(21)
    dev = model.program(np.zeros(N), r)
    assert np.all(dev.g_prog_us >= 0)
    frac_zero = float(np.mean(dev.g_prog_us == 0.0))
    assert abs(frac_zero - 0.5) < K_SE * math.sqrt(0.25 / N)
    g = model.drift(dev, T_1Y_S, r)
    assert np.all(g >= 0)
    # a device at exactly 0 stays exactly 0 (g_D = 0, read noise relative to |g_D|)
    assert np.all(g[dev.g_prog_us == 0.0] == 0.0)


def test_read_noise_clamp_is_exercised() -> None:
    # Low conductances: Q_s = 0.2, time factor at 1 year ~ 5.9 -> relative sigma > 1,
    # so a sizable fraction would go negative without the clamp.
    model = PCMDeviceModel(JOSHI, prog_noise_scale=0.0)
    r = rng(4)
    dev = model.program(np.full(10_000, 0.1), r)
    g = model.drift(dev, T_1Y_S, r)
    assert g.min() == 0.0
    assert np.mean(g == 0.0) > 0.1
    assert np.all(g >= 0)


def test_t_inf_zero_no_drift() -> None:
    model = PCMDeviceModel(JOSHI, read_noise_scale=0.0)
    r = rng(2)
    dev = model.program(np.linspace(0.0, 25.0, 1001), r)
    assert np.any(dev.nu > 0)
    np.testing.assert_array_equal(model.drift(dev, 0.0, r), dev.g_prog_us)


def test_ideal_model_is_exact() -> None:
    g_t = np.linspace(0.0, 25.0, 101).reshape(1, 101)
    model = PCMDeviceModel.ideal(JOSHI)
    r = rng(0)
    dev = model.program(g_t, r)
    np.testing.assert_array_equal(dev.g_prog_us, g_t)
    np.testing.assert_array_equal(dev.nu, 0.0)
    for t in (0.0, T_1H_S, T_1Y_S):
        np.testing.assert_array_equal(model.drift(dev, t, r), g_t)


def test_fixed_nu_gives_one_exponent() -> None:
    # Every device drifts by exactly (1 + t_inf / t0)^-nu: the GDC alpha is its inverse.
    model = PCMDeviceModel(JOSHI, prog_noise_scale=0.0, read_noise_scale=0.0, fixed_nu=0.06)
    r = rng(6)
    g_t = np.array([0.0, 1.0, 12.5, 25.0])
    dev = model.program(g_t, r)
    np.testing.assert_array_equal(dev.nu, 0.06)
    g = model.drift(dev, T_1D_S, r)
    np.testing.assert_allclose(g, g_t * (1 + T_1D_S / 20.0) ** -0.06, rtol=1e-14)


def test_drift_scale_scales_nu() -> None:
    g_t = np.linspace(0.0, 25.0, 1000)
    nu1 = PCMDeviceModel(JOSHI).program(g_t, rng(12)).nu
    nu2 = PCMDeviceModel(JOSHI, drift_scale=2.0).program(g_t, rng(12)).nu
    np.testing.assert_allclose(nu2, 2 * nu1, rtol=1e-14)


def test_shapes_preserved_and_scalar_input() -> None:
    model = PCMDeviceModel(JOSHI)
    r = rng(1)
    g_t = np.full((2, 3, 4), 10.0)
    dev = model.program(g_t, r)
    assert dev.shape == dev.g_prog_us.shape == dev.nu.shape == (2, 3, 4)
    assert model.drift(dev, 1.0, r).shape == (2, 3, 4)
    dev0 = model.program(5.0, r)
    assert dev0.shape == ()
    assert model.drift(dev0, 1.0, r).shape == ()


def test_target_within_float_tolerance_is_clipped() -> None:
    dev = PCMDeviceModel.ideal(JOSHI).program([25.0 * (1 + 1e-15), -1e-14], rng())
    np.testing.assert_array_equal(dev.g_target_us, [25.0, 0.0])


def test_programmed_devices_are_read_only() -> None:
    dev = PCMDeviceModel(JOSHI).program(np.ones(4), rng())
    with pytest.raises(ValueError):
        dev.g_prog_us[0] = 1.0
    with pytest.raises(ValueError, match="same shape"):
        ProgrammedDevices(np.ones(3), np.ones(3), np.ones(4))


# --------------------------------------------------------------------------------------
# Determinism
# --------------------------------------------------------------------------------------


def test_same_seed_same_arrays_different_seed_different() -> None:
    model = PCMDeviceModel(HERMES)
    g_t = np.linspace(0.0, 20.7, 500)

    def run(seed: int) -> tuple[ProgrammedDevices, np.ndarray]:
        r = rng(seed)
        dev = model.program(g_t, r)
        return dev, model.drift(dev, T_1D_S, r)

    dev_a, g_a = run(42)
    dev_b, g_b = run(42)
    dev_c, g_c = run(43)
    np.testing.assert_array_equal(dev_a.g_prog_us, dev_b.g_prog_us)
    np.testing.assert_array_equal(dev_a.nu, dev_b.nu)
    np.testing.assert_array_equal(g_a, g_b)
    assert not np.array_equal(dev_a.g_prog_us, dev_c.g_prog_us)
    assert not np.array_equal(dev_a.nu, dev_c.nu)
    assert not np.array_equal(g_a, g_c)


def test_repeated_drift_calls_redraw_read_noise() -> None:
    model = PCMDeviceModel(JOSHI)
    r = rng(10)
    dev = model.program(np.full(100, 10.0), r)
    assert not np.array_equal(model.drift(dev, T_1H_S, r), model.drift(dev, T_1H_S, r))


# --------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------


def test_negative_t_inf_rejected() -> None:
    model = PCMDeviceModel(JOSHI)
    r = rng()
    dev = model.program(np.ones(3), r)
    with pytest.raises(ValueError, match="t_inf_s"):
        model.drift(dev, -1.0, r)
    with pytest.raises(ValueError, match="t_inf_s"):
        model.drift(dev, float("nan"), r)
    with pytest.raises(ValueError, match="t_inf_s"):
        read_noise_time_factor(-1e-3, 20.0, 250e-9)


@pytest.mark.parametrize("bad", [25.001, -0.01, float("nan"), float("inf")])
def test_target_outside_range_rejected(bad: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        PCMDeviceModel(JOSHI).program(np.array([1.0, bad, 2.0]), rng())


def test_target_above_overridden_g_max_rejected() -> None:
    model = PCMDeviceModel(get_statistics("joshi2020", g_max_us=10.0))
    model.program([10.0], rng())
    with pytest.raises(ValueError, match="g_max"):
        model.program([12.0], rng())


@pytest.mark.parametrize("field", ["prog_noise_scale", "drift_scale", "read_noise_scale"])
def test_negative_scale_rejected(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        PCMDeviceModel(JOSHI, **{field: -0.1})


def test_bad_arguments_rejected() -> None:
    with pytest.raises(ValueError, match="fixed_nu"):
        PCMDeviceModel(JOSHI, fixed_nu=-0.01)
    with pytest.raises(TypeError, match="statistics"):
        PCMDeviceModel("joshi2020")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Generator"):
        PCMDeviceModel(JOSHI).program([1.0], 42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Generator"):
        PCMDeviceModel(JOSHI).program([1.0], np.random.RandomState(0))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- issue 11: drift bookkeeping
def test_net_weight_resplit_drifts_the_programmed_net_weight_on_one_device():
    """device.drift_bookkeeping net_weight_resplit (aihwkit's inference tile): the programmed net g+ - g- is put on
    the device of its sign before drift and read noise; recomputed here from drift_mean's equations."""
    from archmodel.analog_matrix import G_GRID_US, AnalogMatrix
    from archmodel.pcm import drift_factor, read_noise_time_factor
    from archmodel.spec import load_spec

    spec = load_spec("fig11").replace(**{"device.drift_bookkeeping": "net_weight_resplit"})
    w = np.random.default_rng(0).standard_normal((30, 7))
    m = AnalogMatrix(spec).program(w, np.random.default_rng(1))
    dev = m.devices
    net = dev.g_prog_us[0, 0] - dev.g_prog_us[1, 0]
    m.drift(86400.0, np.random.default_rng(2))
    z = np.random.default_rng(2).standard_normal(dev.shape)
    st = m.device_model.statistics
    tf = read_noise_time_factor(86400.0, st.t0_s, st.t_read_s)
    out = []
    for side, g in ((0, np.maximum(net, 0.0)), (1, np.maximum(-net, 0.0))):
        g_d = g * drift_factor(dev.nu[side, 0], 86400.0, st.t0_s)
        out.append(np.maximum(g_d + np.abs(g_d) * st.read_noise_qs(g / st.g_max_us) * tf * z[side, 0], 0.0))
    expected = np.round(out[0] / G_GRID_US) * G_GRID_US - np.round(out[1] / G_GRID_US) * G_GRID_US
    np.testing.assert_array_equal(m.g_pos_us - m.g_neg_us, expected)
    # per_device (the default) differs: both programmed devices drift and read noise separately
    d = AnalogMatrix(load_spec("fig11")).program(w, np.random.default_rng(1)).drift(86400.0, np.random.default_rng(2))
    assert load_spec("fig11").device.drift_bookkeeping == "per_device"
    assert not np.array_equal(d.g_pos_us - d.g_neg_us, expected)


# --------------------------------------------------------------------------------------
# hermes preset against aihwkit's HermesNoiseModel (issue 11)
# --------------------------------------------------------------------------------------

# Literals copied from aihwkit, file src/aihwkit/inference/noise/hermes.py, class HermesNoiseModel:
# __init__ with num_devices = 2 (the default): g_max = 20.7 uS (the pair of devices of one polarity, fitted
# as one device) and prog_coeff = [0.16603222, 4.71806468, -8.48101252, 4.68961419] with
# prog_coeff_g_max_reference = 20.7; apply_programming_noise_to_conductance: sigma_prog = sum_i c_i (g_t/g_max)^i
# * g_max / reference; apply_drift_noise_to_conductance: read noise |g_drift| * Q_s(|g_prog| / g_max) * sqrt(ln(...)).
AIHWKIT_HERMES_G_MAX_US = 20.7
AIHWKIT_HERMES_PROG_COEFF = (0.16603222, 4.71806468, -8.48101252, 4.68961419)


def _aihwkit_hermes_sigma_prog_us(g_target_us: np.ndarray) -> np.ndarray:
    """aihwkit ``HermesNoiseModel.apply_programming_noise_to_conductance``'s sigma (num_devices = 2, g_max 20.7)."""
    x = np.asarray(g_target_us, float) / AIHWKIT_HERMES_G_MAX_US
    return sum(c * x**i for i, c in enumerate(AIHWKIT_HERMES_PROG_COEFF))


def test_hermes_preset_matches_aihwkit_hermes_noise_model() -> None:
    """The hermes preset's polarity (2 devices) has aihwkit's conductance range, programming noise and read noise."""
    from archmodel.analog_matrix import AnalogMatrix, device_model_from_spec
    from archmodel.spec import load_spec

    spec = load_spec("hermes")
    n_pp, g_dev = spec.array.devices_per_polarity, spec.device.g_max_us
    assert n_pp == 2                                           # the chip's 4-device unit cell stays
    assert n_pp * g_dev == pytest.approx(AIHWKIT_HERMES_G_MAX_US, rel=1e-15)   # 20.7 uS per polarity, not 41.4
    dm = device_model_from_spec(spec)
    x = np.linspace(0.0, 1.0, 11)
    # programming noise of a polarity: n_pp independent devices at x * g_dev add in quadrature
    sig_pol = math.sqrt(n_pp) * dm.prog_noise_scale * dm.statistics.prog_noise_std_us(x * g_dev)
    np.testing.assert_allclose(sig_pol, _aihwkit_hermes_sigma_prog_us(x * AIHWKIT_HERMES_G_MAX_US), rtol=1e-12)
    # read noise: per device |g| Q_s(x) at g = x * g_dev, in quadrature, = aihwkit's |g| Q_s(x) at g = x * 20.7
    q = dm.statistics.read_noise_qs(x)
    np.testing.assert_allclose(math.sqrt(n_pp) * dm.read_noise_scale * q * x * g_dev,
                               q * x * AIHWKIT_HERMES_G_MAX_US, rtol=1e-12)
    # drift exponent: the same x = g_T / g_max per device as aihwkit's pair, so the same mean nu
    assert dm.drift_scale == 1.0
    # Monte Carlo through the tile model: weights at x = 0.5 of the polarity range; sigma(G+) = aihwkit's
    # sigma_prog(10.35 uS) = 0.99101320375 uS (test_hermes_prog_noise_std), 65,535 samples: SE 0.3 %
    w = np.full((256, 256), 0.5)
    w[0, 0] = 1.0
    m = AnalogMatrix(spec, dm).program(w, rng(11))
    g_pos = m.g_pos_us.ravel()[1:]
    assert float(np.mean(g_pos)) == pytest.approx(0.5 * AIHWKIT_HERMES_G_MAX_US, rel=0.002)
    assert float(np.std(g_pos)) == pytest.approx(0.99101320375, rel=K_SE * 0.003)
