"""Statistical model of phase-change-memory (PCM) devices for analog inference.

The model follows docs/design.md, section "PCM device model". It is the phenomenological
PCM model of Joshi et al., "Accurate deep neural network inference using
computational phase-change memory", Nat. Commun. 11, 2473 (2020) (Methods, "PCM
model"), as implemented by IBM aihwkit ``inference/noise/pcm.py``
(``PCMLikeNoiseModel``), with a second set of fitted statistics from the IBM HERMES
chip as implemented by aihwkit ``inference/noise/hermes.py`` (``HermesNoiseModel``,
two devices per weight).

A device goes through two stochastic steps:

1. :meth:`PCMDeviceModel.program` -- programming noise on the target conductance
   ``g_T`` and, once and for all, the device's drift exponent ``nu`` (drawn from the
   *target* conductance);
2. :meth:`PCMDeviceModel.drift` -- power-law drift and accumulated 1/f read noise at
   a time ``t_inf_s`` after programming. It may be called for several times on the
   same programmed devices; each call draws fresh read noise.

Conductances are in µS, times in s. All arrays are float64 and may have any shape;
all randomness comes from an explicit :class:`numpy.random.Generator`.

Draw order (fixed, so that a seed reproduces every array):

- ``program`` draws ``rng.standard_normal(shape)`` twice: first the programming
  noise, then the drift-exponent noise;
- ``drift`` draws ``rng.standard_normal(shape)`` once: the read noise.

The draws happen whatever the noise scales or ``fixed_nu`` are, so the generator's
state after a call depends only on the array shape, and two models that differ only
in their scales, fed the same seed, see the same normal samples.
"""

from __future__ import annotations

import dataclasses
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "NU_X_MIN",
    "STATISTICS",
    "HermesStatistics",
    "Joshi2020Statistics",
    "PCMDeviceModel",
    "PCMStatistics",
    "ProgrammedDevices",
    "drift_factor",
    "get_statistics",
    "read_noise_time_factor",
]

FloatArray = NDArray[np.float64]

NU_X_MIN = 1e-7
"""Lower clip of the normalized conductance ``x`` before taking its logarithm in the
drift-exponent fits (aihwkit ``_ZERO_CLIP``; docs/design.md ``x = max(g_T/g_max, 1e-7)``)."""

_G_TARGET_RTOL = 1e-9
"""Relative tolerance (of ``g_max``) for targets slightly outside ``[0, g_max]``
due to float rounding; such targets are clipped into range (assumed)."""


def _as_float_array(value: ArrayLike) -> FloatArray:
    return np.asarray(value, dtype=np.float64)


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float, np.floating, np.integer)) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")


def _check_t_inf(t_inf_s: ArrayLike) -> FloatArray:
    t = _as_float_array(t_inf_s)
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        raise ValueError(f"t_inf_s must be finite and >= 0 s, got {t_inf_s!r}")
    return t


# --------------------------------------------------------------------------------------
# Pure helpers
# --------------------------------------------------------------------------------------


def drift_factor(nu: ArrayLike, t_inf_s: ArrayLike, t0_s: float) -> FloatArray:
    """Power-law drift factor ``(t / t0) ** (-nu)`` with ``t = t_inf + t0``.

    Source: Joshi et al., Nat. Commun. 11, 2473 (2020), Methods, eq. of the drift
    ``G(t) = G(t0) (t / t0)^(-nu)``; aihwkit ``PCMLikeNoiseModel.apply_drift_noise_to_conductance``.

    Parameters
    ----------
    nu : array_like
        Drift exponents (dimensionless), any shape.
    t_inf_s : array_like
        Time since programming in s (``>= 0``), broadcast against ``nu``.
    t0_s : float
        Drift reference time in s (``> 0``).

    Returns
    -------
    numpy.ndarray
        float64, broadcast shape of ``nu`` and ``t_inf_s``; exactly 1 where
        ``t_inf_s == 0``.

    Raises
    ------
    ValueError
        If ``t_inf_s`` is negative or not finite, or ``t0_s`` is not > 0.
    """
    _check_positive("t0_s", t0_s)
    t_inf = _check_t_inf(t_inf_s)
    ratio = (t_inf + t0_s) / t0_s
    return np.power(ratio, -_as_float_array(nu))


def read_noise_time_factor(t_inf_s: ArrayLike, t0_s: float, t_read_s: float) -> FloatArray:
    """Time factor of the accumulated 1/f read noise, ``sqrt(ln((t + t_read) / (2 t_read)))``.

    With ``t = t_inf + t0``. For the Joshi 2020 set (``t0`` = 20 s, ``t_read`` = 250 ns)
    it is 4.18382 at ``t_inf = 0``.

    Source: Joshi et al., Nat. Commun. 11, 2473 (2020), Methods (1/f noise integrated
    from ``t_read`` to ``t``); aihwkit ``PCMLikeNoiseModel.apply_drift_noise_to_conductance``.

    Parameters
    ----------
    t_inf_s : array_like
        Time since programming in s (``>= 0``), any shape.
    t0_s : float
        Drift reference time in s (``>= t_read_s``).
    t_read_s : float
        Read (integration) time of the 1/f fit in s (``> 0``).

    Returns
    -------
    numpy.ndarray
        float64, shape of ``t_inf_s``.

    Raises
    ------
    ValueError
        If ``t_inf_s`` is negative or not finite, a time parameter is not > 0, or
        ``t0_s < t_read_s`` (the logarithm would be negative).
    """
    _check_positive("t0_s", t0_s)
    _check_positive("t_read_s", t_read_s)
    if t0_s < t_read_s:
        raise ValueError(f"t0_s ({t0_s!r}) must be >= t_read_s ({t_read_s!r})")
    t = _check_t_inf(t_inf_s) + t0_s
    return np.sqrt(np.log((t + t_read_s) / (2.0 * t_read_s)))


# --------------------------------------------------------------------------------------
# Statistics sets
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PCMStatistics(ABC):
    """Fitted statistics of one PCM device technology (base class).

    Subclasses implement the four fitted functions; the time and conductance
    constants are dataclass fields so that they can be overridden with
    :func:`dataclasses.replace` or :func:`get_statistics`.

    Raises
    ------
    ValueError
        If a constant is not finite and > 0, or ``t0_s < t_read_s``.
    """

    name: str
    """Registry name of the set (see :data:`STATISTICS`)."""
    g_max_us: float
    """Maximum programmable conductance in µS; ``x`` is normalized by it."""
    t0_s: float
    """Drift reference time in s (first read after programming)."""
    t_read_s: float
    """Read (integration) time of the 1/f-noise fit in s."""

    prog_coeff_g_max_reference_us: ClassVar[float]
    """g_max (µS) at which the programming-noise polynomial was fitted; the
    polynomial is scaled by ``g_max_us / prog_coeff_g_max_reference_us``."""

    def __post_init__(self) -> None:
        _check_positive("g_max_us", self.g_max_us)
        _check_positive("t0_s", self.t0_s)
        _check_positive("t_read_s", self.t_read_s)
        if self.t0_s < self.t_read_s:
            raise ValueError(f"t0_s ({self.t0_s!r}) must be >= t_read_s ({self.t_read_s!r})")

    @abstractmethod
    def prog_noise_std_us(self, g_target_us: ArrayLike) -> FloatArray:
        """Standard deviation of the programming noise in µS.

        Parameters
        ----------
        g_target_us : array_like
            Target conductances in µS, any shape.

        Returns
        -------
        numpy.ndarray
            float64, same shape, in µS.
        """

    @abstractmethod
    def drift_nu_mean(self, x: ArrayLike) -> FloatArray:
        """Mean drift exponent as a function of ``x = g_T / g_max`` (dimensionless).

        ``x`` is clipped below at :data:`NU_X_MIN` before the logarithm.
        """

    @abstractmethod
    def drift_nu_std(self, x: ArrayLike) -> FloatArray:
        """Standard deviation of the drift exponent, ``x = g_T / g_max``.

        ``x`` is clipped below at :data:`NU_X_MIN` before the logarithm.
        """

    @abstractmethod
    def read_noise_qs(self, x: ArrayLike) -> FloatArray:
        """1/f read-noise amplitude ``Q_s`` (dimensionless), ``x = g_P / g_max``."""


@dataclass(frozen=True)
class Joshi2020Statistics(PCMStatistics):
    """PCM statistics of Joshi et al. (2020) / aihwkit ``PCMLikeNoiseModel``.

    Defaults: ``g_max`` = 25 µS, ``t0`` = 20 s, ``t_read`` = 250 ns (aihwkit
    ``PCMLikeNoiseModel`` defaults; Joshi et al., Nat. Commun. 11, 2473 (2020)).
    """

    name: str = "joshi2020"
    g_max_us: float = 25.0
    t0_s: float = 20.0
    t_read_s: float = 250e-9

    prog_coeff_g_max_reference_us: ClassVar[float] = 25.0

    def prog_noise_std_us(self, g_target_us: ArrayLike) -> FloatArray:
        """``sigma_prog = (0.26348 + 1.9650 x - 1.1731 x**2) * g_max / 25`` µS, ``x = g_T/g_max``.

        Source: Joshi et al., Nat. Commun. 11, 2473 (2020), Methods; coefficients of
        aihwkit ``inference/noise/pcm.py`` (``PCMLikeNoiseModel.prog_coeff``, fitted at
        g_max = 25 µS). Gives 0.952705 µS at ``x = 0.5``.

        Parameters
        ----------
        g_target_us : array_like
            Target conductances in µS, any shape.

        Returns
        -------
        numpy.ndarray
            float64, same shape, in µS.
        """
        x = _as_float_array(g_target_us) / self.g_max_us
        poly = 0.26348 + 1.9650 * x - 1.1731 * x**2
        return poly * (self.g_max_us / self.prog_coeff_g_max_reference_us)

    def drift_nu_mean(self, x: ArrayLike) -> FloatArray:
        """``mu_nu = clip(-0.0155 ln x + 0.0244, 0.049, 0.1)``.

        Source: Joshi et al., Nat. Commun. 11, 2473 (2020), Methods; aihwkit
        ``inference/noise/pcm.py`` ``generate_drift_coefficients``.

        Parameters
        ----------
        x : array_like
            ``g_T / g_max`` (dimensionless), any shape; clipped below at 1e-7.

        Returns
        -------
        numpy.ndarray
            float64, same shape.
        """
        lx = np.log(np.maximum(_as_float_array(x), NU_X_MIN))
        return np.clip(-0.0155 * lx + 0.0244, 0.049, 0.1)

    def drift_nu_std(self, x: ArrayLike) -> FloatArray:
        """``sigma_nu = clip(-0.0125 ln x - 0.0059, 0.008, 0.045)``.

        Source: Joshi et al., Nat. Commun. 11, 2473 (2020), Methods; aihwkit
        ``inference/noise/pcm.py`` ``generate_drift_coefficients``.

        Parameters
        ----------
        x : array_like
            ``g_T / g_max`` (dimensionless), any shape; clipped below at 1e-7.

        Returns
        -------
        numpy.ndarray
            float64, same shape.
        """
        lx = np.log(np.maximum(_as_float_array(x), NU_X_MIN))
        return np.clip(-0.0125 * lx - 0.0059, 0.008, 0.045)

    def read_noise_qs(self, x: ArrayLike) -> FloatArray:
        """``Q_s = min(0.0088 / max(|x|**0.65, 1e-3), 0.2)``.

        Source: Joshi et al., Nat. Commun. 11, 2473 (2020), Methods; aihwkit
        ``inference/noise/pcm.py`` ``apply_drift_noise_to_conductance``.

        Parameters
        ----------
        x : array_like
            ``g_P / g_max`` (dimensionless), any shape.

        Returns
        -------
        numpy.ndarray
            float64, same shape.
        """
        xp = np.power(np.abs(_as_float_array(x)), 0.65)
        return np.minimum(0.0088 / np.maximum(xp, 1e-3), 0.2)


@dataclass(frozen=True)
class HermesStatistics(PCMStatistics):
    """PCM statistics of the IBM HERMES chip, two devices per weight.

    Defaults: ``g_max`` = 20.7 µS, ``t0`` = 300 s, ``t_read`` = 512 ns (aihwkit
    ``inference/noise/hermes.py``, ``HermesNoiseModel(num_devices=2)``; Le Gallo et al.,
    Nat. Electron. 6, 680 (2023)). aihwkit rejects ``g_max`` above the
    characterized 20.7 µS; this model allows it but the fits are then extrapolated.
    """

    name: str = "hermes"
    g_max_us: float = 20.7
    t0_s: float = 300.0
    t_read_s: float = 512e-9

    prog_coeff_g_max_reference_us: ClassVar[float] = 20.7

    def prog_noise_std_us(self, g_target_us: ArrayLike) -> FloatArray:
        """Cubic ``(0.16603222 + 4.71806468 x - 8.48101252 x**2 + 4.68961419 x**3) * g_max/20.7``.

        In µS, ``x = g_T / g_max``. Source: aihwkit ``inference/noise/hermes.py``
        (``HermesNoiseModel.prog_coeff`` for ``num_devices=2``, fitted at 20.7 µS).

        Parameters
        ----------
        g_target_us : array_like
            Target conductances in µS, any shape.

        Returns
        -------
        numpy.ndarray
            float64, same shape, in µS.
        """
        x = _as_float_array(g_target_us) / self.g_max_us
        poly = 0.16603222 + 4.71806468 * x - 8.48101252 * x**2 + 4.68961419 * x**3
        return poly * (self.g_max_us / self.prog_coeff_g_max_reference_us)

    def drift_nu_mean(self, x: ArrayLike) -> FloatArray:
        """``clip(-0.0387 ln x - 0.0182, 0.0720, 0.13)`` for ``x < 0.0945``, else
        ``-0.0436 x**2 - 0.0126 x + 0.0736``.

        Source: aihwkit ``inference/noise/hermes.py`` ``generate_drift_coefficients``.

        Parameters
        ----------
        x : array_like
            ``g_T / g_max`` (dimensionless), any shape; clipped below at 1e-7.

        Returns
        -------
        numpy.ndarray
            float64, same shape.
        """
        x = np.maximum(_as_float_array(x), NU_X_MIN)
        low = np.clip(-0.0387 * np.log(x) - 0.0182, 0.0720, 0.13)
        high = -0.0436 * x**2 - 0.0126 * x + 0.0736
        return np.where(x < 0.0945, low, high)

    def drift_nu_std(self, x: ArrayLike) -> FloatArray:
        """``clip(-0.0117 ln x - 0.0057, 0.0091, 0.04)`` for ``x < 0.3055``, else
        ``-0.0118 x**2 + 0.0093 x + 0.0073``.

        Source: aihwkit ``inference/noise/hermes.py`` ``generate_drift_coefficients``
        (``num_devices=2``).

        Parameters
        ----------
        x : array_like
            ``g_T / g_max`` (dimensionless), any shape; clipped below at 1e-7.

        Returns
        -------
        numpy.ndarray
            float64, same shape.
        """
        x = np.maximum(_as_float_array(x), NU_X_MIN)
        low = np.clip(-0.0117 * np.log(x) - 0.0057, 0.0091, 0.04)
        high = -0.0118 * x**2 + 0.0093 * x + 0.0073
        return np.where(x < 0.3055, low, high)

    def read_noise_qs(self, x: ArrayLike) -> FloatArray:
        """``clip(-0.0117 ln x - 0.0069, 0.015, 0.04)`` for ``x < 0.16``, else
        ``0.0069 x**3 - 0.0280 x**2 + 0.0211 x + 0.0123``.

        Source: aihwkit ``inference/noise/hermes.py``
        ``apply_drift_noise_to_conductance`` (``num_devices=2``). ``|x|`` is clipped
        below at 1e-7 before the logarithm; the low branch is then already at its
        upper clip 0.04, the value aihwkit gets from ``log(0) = -inf``.

        Parameters
        ----------
        x : array_like
            ``g_P / g_max`` (dimensionless), any shape.

        Returns
        -------
        numpy.ndarray
            float64, same shape.
        """
        x = np.maximum(np.abs(_as_float_array(x)), NU_X_MIN)
        low = np.clip(-0.0117 * np.log(x) - 0.0069, 0.015, 0.04)
        high = 0.0069 * x**3 - 0.0280 * x**2 + 0.0211 * x + 0.0123
        return np.where(x < 0.16, low, high)


STATISTICS: dict[str, PCMStatistics] = {
    "joshi2020": Joshi2020Statistics(),
    "hermes": HermesStatistics(),
}
"""Registry of the built-in statistics sets, by name, with their default constants."""


def get_statistics(
    name: str,
    g_max_us: float | None = None,
    t0_s: float | None = None,
    t_read_s: float | None = None,
) -> PCMStatistics:
    """Return the statistics set ``name``, with optional overridden constants.

    Parameters
    ----------
    name : str
        A key of :data:`STATISTICS` (``"joshi2020"`` or ``"hermes"``).
    g_max_us, t0_s, t_read_s : float, optional
        Replace the set's default ``g_max`` (µS), ``t0`` (s) or ``t_read`` (s).

    Returns
    -------
    PCMStatistics

    Raises
    ------
    ValueError
        If ``name`` is unknown (the message lists the valid names) or an override
        is not a positive finite number.
    """
    try:
        base = STATISTICS[name]
    except (KeyError, TypeError):
        valid = ", ".join(repr(k) for k in STATISTICS)
        raise ValueError(f"unknown PCM statistics {name!r}; expected one of {valid}") from None
    overrides = {
        key: value
        for key, value in (("g_max_us", g_max_us), ("t0_s", t0_s), ("t_read_s", t_read_s))
        if value is not None
    }
    return dataclasses.replace(base, **overrides) if overrides else base


# --------------------------------------------------------------------------------------
# Device model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgrammedDevices:
    """State of a set of devices right after programming.

    All three arrays are float64, have the same shape and are read-only copies.

    Raises
    ------
    ValueError
        If the shapes differ.
    """

    g_target_us: FloatArray
    """Target conductances ``g_T`` in µS."""
    g_prog_us: FloatArray
    """Programmed conductances ``g_P`` in µS (``>= 0``), read at ``t0``."""
    nu: FloatArray
    """Drift exponents (dimensionless, ``>= 0``), fixed for the device's lifetime."""

    def __post_init__(self) -> None:
        for field in ("g_target_us", "g_prog_us", "nu"):
            arr = np.array(getattr(self, field), dtype=np.float64, copy=True)
            arr.setflags(write=False)
            object.__setattr__(self, field, arr)
        shapes = {self.g_target_us.shape, self.g_prog_us.shape, self.nu.shape}
        if len(shapes) != 1:
            raise ValueError(
                "g_target_us, g_prog_us and nu must have the same shape, got "
                f"{self.g_target_us.shape}, {self.g_prog_us.shape}, {self.nu.shape}"
            )

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the device arrays."""
        return self.g_target_us.shape


@dataclass(frozen=True)
class PCMDeviceModel:
    """Programming noise, drift and accumulated read noise of PCM devices.

    Equations (docs/design.md "PCM device model"; Joshi et al., Nat. Commun. 11, 2473
    (2020); aihwkit ``inference/noise/pcm.py`` and ``hermes.py``)::

        g_P   = max(g_T + a_p * sigma_prog(g_T) * z1, 0)
        x     = max(g_T / g_max, 1e-7)
        nu    = |a_d * mu_nu(x) + a_d * sigma_nu(x) * z2|      (or fixed_nu)
        t     = t_inf + t0
        g_D   = g_P * (t / t0) ** (-nu)
        sig_r = a_r * Q_s(g_P / g_max) * sqrt(ln((t + t_read) / (2 t_read)))
        g(t)  = max(g_D + |g_D| * sig_r * z3, 0)

    with ``a_p, a_d, a_r`` the three scales and ``z1, z2, z3`` standard normal
    draws (see the module docstring for the draw order).

    Parameters
    ----------
    statistics : PCMStatistics
        Fitted device statistics and constants (see :func:`get_statistics`).
    prog_noise_scale : float
        Multiplies the programming-noise std (``>= 0``; 0 disables).
    drift_scale : float
        Multiplies the drift-exponent mean and std (``>= 0``; 0 disables drift).
        Ignored when ``fixed_nu`` is given.
    read_noise_scale : float
        Multiplies ``Q_s`` (``>= 0``; 0 disables read noise).
    fixed_nu : float or None
        If given, every device gets exactly this drift exponent (``>= 0``), with no
        spread and no scaling -- for tests of global drift compensation.

    Raises
    ------
    TypeError
        If ``statistics`` is not a :class:`PCMStatistics`.
    ValueError
        If a scale or ``fixed_nu`` is negative or not finite.
    """

    statistics: PCMStatistics
    prog_noise_scale: float = 1.0
    drift_scale: float = 1.0
    read_noise_scale: float = 1.0
    fixed_nu: float | None = None

    drift_factor = staticmethod(drift_factor)
    read_noise_time_factor = staticmethod(read_noise_time_factor)

    def __post_init__(self) -> None:
        if not isinstance(self.statistics, PCMStatistics):
            raise TypeError(
                f"statistics must be a PCMStatistics, got {type(self.statistics).__name__}"
            )
        for name in ("prog_noise_scale", "drift_scale", "read_noise_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.number)) and math.isfinite(value)) or (
                value < 0
            ):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if self.fixed_nu is not None and not (
            isinstance(self.fixed_nu, (int, float, np.number))
            and math.isfinite(self.fixed_nu)
            and self.fixed_nu >= 0
        ):
            raise ValueError(f"fixed_nu must be None or a finite number >= 0, got {self.fixed_nu!r}")

    @classmethod
    def ideal(cls, statistics: PCMStatistics) -> PCMDeviceModel:
        """A noiseless, drift-free model: ``g(t) == g_P == g_T`` at every time.

        Parameters
        ----------
        statistics : PCMStatistics
            Supplies ``g_max``, ``t0`` and ``t_read``.

        Returns
        -------
        PCMDeviceModel
            All scales 0 and ``fixed_nu = 0``.
        """
        return cls(
            statistics,
            prog_noise_scale=0.0,
            drift_scale=0.0,
            read_noise_scale=0.0,
            fixed_nu=0.0,
        )

    @property
    def g_max_us(self) -> float:
        """Maximum conductance in µS (from the statistics)."""
        return self.statistics.g_max_us

    @staticmethod
    def _check_rng(rng: np.random.Generator) -> None:
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")

    def program(self, g_target_us: ArrayLike, rng: np.random.Generator) -> ProgrammedDevices:
        """Program devices to target conductances.

        Draws ``rng.standard_normal(shape)`` for the programming noise, then
        ``rng.standard_normal(shape)`` for the drift exponent (both always drawn).

        Parameters
        ----------
        g_target_us : array_like
            Target conductances ``g_T`` in µS, any shape, in ``[0, g_max]``. Values
            outside by at most ``1e-9 * g_max`` (float rounding) are clipped in.
        rng : numpy.random.Generator
            Source of all randomness.

        Returns
        -------
        ProgrammedDevices
            ``g_target_us``, ``g_prog_us`` (µS) and ``nu``, each of shape
            ``np.shape(g_target_us)``.

        Raises
        ------
        ValueError
            If a target is not finite or lies outside ``[0, g_max]``.
        TypeError
            If ``rng`` is not a ``numpy.random.Generator``.
        """
        self._check_rng(rng)
        stats = self.statistics
        g_max = stats.g_max_us
        g_t = _as_float_array(g_target_us)
        tol = _G_TARGET_RTOL * g_max
        if g_t.size and (
            not np.all(np.isfinite(g_t)) or g_t.min() < -tol or g_t.max() > g_max + tol
        ):
            bad = g_t[~np.isfinite(g_t) | (g_t < -tol) | (g_t > g_max + tol)].flat[0]
            raise ValueError(
                f"target conductance {bad!r} µS is outside [0, g_max = {g_max!r}] µS"
            )
        g_t = np.clip(g_t, 0.0, g_max)
        shape = g_t.shape

        z_prog = rng.standard_normal(shape)
        z_nu = rng.standard_normal(shape)

        sigma_prog = self.prog_noise_scale * stats.prog_noise_std_us(g_t)
        g_p = np.maximum(g_t + sigma_prog * z_prog, 0.0)

        if self.fixed_nu is not None:
            nu = np.full(shape, float(self.fixed_nu))
        else:
            x = np.maximum(g_t / g_max, NU_X_MIN)
            mu = self.drift_scale * stats.drift_nu_mean(x)
            sigma = self.drift_scale * stats.drift_nu_std(x)
            nu = np.abs(mu + sigma * z_nu)

        return ProgrammedDevices(g_target_us=g_t, g_prog_us=g_p, nu=nu)

    def drift(
        self, devices: ProgrammedDevices, t_inf_s: float, rng: np.random.Generator
    ) -> FloatArray:
        """Conductances at time ``t_inf_s`` after programming: drift plus read noise.

        Draws ``rng.standard_normal(devices.shape)`` once (the read noise), also when
        ``read_noise_scale`` is 0.

        Parameters
        ----------
        devices : ProgrammedDevices
            Output of :meth:`program`.
        t_inf_s : float
            Time since programming in s (``>= 0``; 0 means no drift, read noise with
            time factor ``read_noise_time_factor(0, t0, t_read)``).
        rng : numpy.random.Generator
            Source of all randomness.

        Returns
        -------
        numpy.ndarray
            float64 conductances ``g(t)`` in µS (``>= 0``), shape ``devices.shape``.

        Raises
        ------
        ValueError
            If ``t_inf_s`` is negative, not finite or not a scalar.
        TypeError
            If ``devices`` is not a ``ProgrammedDevices`` or ``rng`` not a Generator.
        """
        self._check_rng(rng)
        g_d, sigma_us = self.drift_mean(devices, t_inf_s)
        z_read = rng.standard_normal(devices.shape)
        return np.maximum(g_d + sigma_us * z_read, 0.0)

    def drift_mean(self, devices: ProgrammedDevices, t_inf_s: float) -> tuple[FloatArray, FloatArray]:
        """The two parts of :meth:`drift`: drifted conductances and the read-noise standard deviation.

        ``g(t) = max(g_d + sigma · z, 0)`` with ``z`` standard normal (what :meth:`drift`
        draws), ``g_d = g_P · (t/t0)^-ν`` and ``sigma = |g_d| · Q_s(g_P/g_max) ·
        read_noise_time_factor(t)`` (Joshi et al. 2020, Methods; aihwkit
        ``PCMLikeNoiseModel.apply_drift_noise_to_conductance``). Lets a caller redraw
        the read noise per block of MVMs (``archmodel.analog_matrix``) from ``g_d`` and
        ``sigma`` without drawing the drift again.

        Returns
        -------
        (g_d, sigma) : two float64 arrays in µS, shape ``devices.shape``.

        Raises
        ------
        ValueError, TypeError
            As :meth:`drift`.
        """
        if not isinstance(devices, ProgrammedDevices):
            raise TypeError(f"devices must be ProgrammedDevices, got {type(devices).__name__}")
        if np.ndim(t_inf_s) != 0:
            raise ValueError(f"t_inf_s must be a scalar time in s, got shape {np.shape(t_inf_s)}")
        stats = self.statistics
        time_factor = read_noise_time_factor(t_inf_s, stats.t0_s, stats.t_read_s)
        g_p = devices.g_prog_us
        g_d = g_p * drift_factor(devices.nu, t_inf_s, stats.t0_s)
        q_s = self.read_noise_scale * stats.read_noise_qs(g_p / stats.g_max_us)
        return g_d, np.abs(g_d) * (q_s * time_factor)
