"""Drift compensation: global drift calibration (GDC), global and per column.

GDC (docs/design.md; Joshi et al., Nat. Commun. 11, 2473 (2020), "global drift
compensation"; Le Gallo et al. 2023): right after programming, read every
array with fixed calibration inputs through the full periphery (DAC, array,
ADC, partial-sum accumulation) and store ``ref = mean|y|``. At time t, repeat
and apply ``α = ref / mean|y_t|`` digitally after the ADC (folded into the
affine scale). The per-column variant keeps one α per column.

With an ideal periphery (no ADC quantization, no noise) and one drift exponent
ν for every device, every partial sum scales by ``(1 + t_inf/t0)^-ν``, so
``α = (1 + t_inf/t0)^ν`` exactly.

Calibration inputs are int8 activation vectors (they then go through the tile
controller's DAC mapping). They should use the ADC range, or α is quantized
away:

- ``random``: ``n`` vectors of integers uniform in [-127, 127] (drawn from
  ``numpy.random.default_rng(seed)``; fixed, so the same vectors are used at
  t = 0 and at t);
- ``ones``: the largest code, 127, on every row (the int8 image of all-ones);
- ``one_hot``: vector i has 127 on row ``(i · K) // n`` and 0 elsewhere.

Calibration MVMs use output-noise keys from ``CALIBRATION_MVM_INDEX`` on, so
they never share noise with inference MVMs.

The accuracy experiment (:mod:`archmodel.accuracy_experiment`) uses the int8
activations of real calibration images at each layer's input as GDC vectors
(every output pixel of a conv layer is one vector; at least
:data:`MIN_GDC_VECTORS` per layer); the random/ones/one_hot kinds remain for
networks without images (structure-only co-simulation).

**Exact reference** (``reference="exact"``, :func:`gdc_exact_outputs`,
:func:`gdc_alpha_exact`): the chip knows its weights and calibration inputs, so
it can compute the expected outputs ``y_e = d · W · s · n_pp · V_lsb / LSB_I``
(ADC-code units; no programming noise, rounding or output noise) and estimate
``α = Σ y_e² / Σ y_e · y_t`` (regression of the read outputs on the expected
ones; per column: sums over vectors). Zero-mean noise in ``y_t`` drops out of
``Σ y_e · y_t``, so this α is consistent, whereas ``mean|y_t + n| > mean|y_t|``
biases the measured-reference α low (the more, the more drift shrinks ``y_t``
against the noise). The accuracy report gives that bias, ``α_measured /
α_exact − 1``. (Measured at t = 0, the ratio also absorbs programming noise.)

**ADC range** (``calibration.adc_range: per_layer``, :func:`adc_range_from_currents`):
right after programming, the column currents of every row block of a layer are
read for the calibration vectors and the layer's ADC full scale is set to
``ADC_RANGE_SIGMAS · σ`` with ``σ`` the RMS of those currents over every row block,
vector and column (the same full scale for every row block, so partial sums still
add as integers), capped at the largest current an array carries. It is folded
into the affine scale and fixed over time. Assumed: 5σ of a near-Gaussian column
current saturates ~6e-7 of the codes at t = 0 and leaves 2^(adc_bits-1)/5 LSB per σ
(25.6 LSB RMS at 8 bits).
"""

from __future__ import annotations

import numpy as np

from archmodel.analog_matrix import AnalogMatrix
from archmodel.golden.tile_controller import dac_codes

__all__ = ["ADC_RANGE_SIGMAS", "CALIBRATION_MVM_INDEX", "MIN_GDC_VECTORS", "adc_range_from_currents",
           "gdc_alpha", "gdc_alpha_exact", "gdc_calibration_inputs", "gdc_exact_outputs", "gdc_reference"]

#: First output-noise key of calibration MVMs (assumed; far above any inference index).
CALIBRATION_MVM_INDEX = 2**40
#: ADC full scale of ``adc_range: per_layer`` in standard deviations of the column currents (issue 11; assumed).
ADC_RANGE_SIGMAS = 5.0
#: Fewest GDC vectors per layer in the accuracy experiment (per-column α needs many; issue 11).
MIN_GDC_VECTORS = 128


def adc_range_from_currents(matrix: AnalogMatrix, inputs: np.ndarray, sigmas: float = ADC_RANGE_SIGMAS) -> float:
    """Per-layer ADC full scale in µA: ``sigmas ·`` RMS of the column currents of the calibration inputs.

    Call right after programming (module docstring, "ADC range"). The currents are
    those of :meth:`AnalogMatrix.column_currents_ua` (exact, before the ADC) at
    ``CALIBRATION_MVM_INDEX``.

    Parameters
    ----------
    matrix : AnalogMatrix
        Programmed.
    inputs : ndarray of int, (B, K)
        int8 calibration activations (DAC codes are derived here).
    sigmas : float
        Full scale in RMS units (> 0).

    Returns
    -------
    float
        ``I_fs`` in µA, in (0, rows · devices_per_polarity · g_max · V_read]; the
        largest value if every current is 0.
    """
    a = matrix.spec.array
    i_max = a.rows * a.devices_per_polarity * matrix.spec.device.g_max_us * a.v_read_v
    cur = matrix.column_currents_ua(dac_codes(np.asarray(inputs), a.dac_bits), CALIBRATION_MVM_INDEX)
    rms = float(np.sqrt(np.mean(cur * cur)))
    return i_max if rms == 0 else min(i_max, float(sigmas) * rms)


def gdc_exact_outputs(matrix: AnalogMatrix, inputs: np.ndarray) -> np.ndarray:
    """Expected partial sums of the calibration inputs from the target weights, in ADC-code units.

    ``y_e = Σ_row-blocks d · W · s · n_pp · V_lsb / LSB_I`` with ``LSB_I = I_fs / 2^(adc_bits-1)``
    (the data path of :mod:`archmodel.analog_matrix` without noise and rounding).

    Returns
    -------
    ndarray, float64, (B, N)
    """
    d = dac_codes(np.asarray(inputs), matrix.spec.array.dac_bits).astype(np.float64)
    w = np.asarray(matrix.weights) * (matrix.g_scale_us * matrix.n_pp)
    return (d @ w) * (matrix.v_lsb_v * matrix.adc_levels / matrix.i_fs_ua)


def gdc_alpha_exact(matrix: AnalogMatrix, inputs: np.ndarray, y_exact: np.ndarray,
                    per_column: bool = False) -> np.ndarray | float:
    """``α = Σ y_e² / Σ y_e · y_t`` at the matrix's current time (module docstring, "Exact reference").

    Where ``Σ y_e · y_t <= 0`` (a column that reads nothing useful), α is 1.

    Returns
    -------
    float, or ndarray (N,) when ``per_column``
    """
    d = dac_codes(inputs, matrix.spec.array.dac_bits)
    y = np.asarray(matrix.mvm_partial_sums(d, CALIBRATION_MVM_INDEX), dtype=np.float64)
    ye = np.asarray(y_exact, dtype=np.float64)
    num, den = (ye * ye).sum(axis=0), (ye * y).sum(axis=0)
    if per_column:
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
    return float(num.sum() / den.sum()) if den.sum() > 0 else 1.0


def gdc_calibration_inputs(kind: str, n_vectors: int, k: int, seed: int = 0) -> np.ndarray:
    """Fixed int8 calibration vectors.

    Parameters
    ----------
    kind : {"random", "ones", "one_hot"}
    n_vectors : int
        Number of vectors (> 0).
    k : int
        Vector length (the matrix's rows, > 0).
    seed : int
        Seed of the ``random`` kind.

    Returns
    -------
    ndarray of int64, (n_vectors, k), values in [-127, 127]

    Raises
    ------
    ValueError
        Unknown kind or non-positive sizes.
    """
    if n_vectors <= 0 or k <= 0:
        raise ValueError(f"n_vectors and k must be > 0, got {n_vectors} and {k}")
    if kind == "random":
        return np.random.default_rng(seed).integers(-127, 128, size=(n_vectors, k), dtype=np.int64)
    if kind == "ones":
        return np.full((n_vectors, k), 127, dtype=np.int64)
    if kind == "one_hot":
        x = np.zeros((n_vectors, k), dtype=np.int64)
        x[np.arange(n_vectors), (np.arange(n_vectors) * k) // n_vectors] = 127
        return x
    raise ValueError(f"unknown GDC calibration input '{kind}'; expected 'random', 'ones' or 'one_hot'")


def _abs_sums(matrix: AnalogMatrix, codes: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(matrix.mvm_partial_sums(codes, CALIBRATION_MVM_INDEX), dtype=np.float64))


def _mean_abs(matrix: AnalogMatrix, inputs: np.ndarray, per_column: bool) -> np.ndarray | float:
    y = _abs_sums(matrix, dac_codes(inputs, matrix.spec.array.dac_bits))
    return y.mean(axis=0) if per_column else float(y.mean())


def gdc_mean_abs_both(matrix: AnalogMatrix, codes: np.ndarray) -> tuple[float, np.ndarray]:
    """``(mean|y|, per-column mean|y| (N,))`` of ONE MVM of the calibration DAC codes ``codes`` (B, K).

    What :func:`gdc_reference` / :func:`gdc_alpha` measure with ``per_column`` False and True (the same
    partial sums: same inputs, same MVM index ``CALIBRATION_MVM_INDEX``, same conductances), from one MVM
    instead of two; ``codes = golden.tile_controller.dac_codes(inputs, dac_bits)``, computed once by the
    caller. Pass the results to :func:`gdc_alpha_from`. Identical values (issue 22).
    """
    y = _abs_sums(matrix, codes)
    return float(y.mean()), y.mean(axis=0)


def gdc_alpha_from(now: np.ndarray | float, ref: np.ndarray | float, per_column: bool = False) -> np.ndarray | float:
    """``α = ref / now`` (1 where ``now`` is 0): :func:`gdc_alpha` from a measured ``now = mean|y_t|``."""
    if per_column:
        now_a, ref_a = np.asarray(now), np.asarray(ref, dtype=np.float64)
        return np.where(now_a > 0, ref_a / np.where(now_a > 0, now_a, 1.0), 1.0)
    return float(ref) / now if now > 0 else 1.0


def gdc_reference(matrix: AnalogMatrix, inputs: np.ndarray, per_column: bool = False) -> np.ndarray | float:
    """``ref = mean|y|`` of the calibration inputs (call right after programming).

    Returns
    -------
    float, or ndarray (N,) when ``per_column``
        Mean absolute partial sum, in ADC-code units.
    """
    return _mean_abs(matrix, inputs, per_column)


def gdc_alpha(
    matrix: AnalogMatrix, inputs: np.ndarray, ref: np.ndarray | float, per_column: bool = False
) -> np.ndarray | float:
    """``α = ref / mean|y_t|`` at the matrix's current time.

    Where ``mean|y_t|`` is 0 (a column that reads nothing), α is 1.

    Returns
    -------
    float, or ndarray (N,) when ``per_column``
    """
    return gdc_alpha_from(_mean_abs(matrix, inputs, per_column), ref, per_column)
