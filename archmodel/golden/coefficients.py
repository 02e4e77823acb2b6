"""Affine coefficients: the real per-column map of a layer, quantized for the affine unit (offline, float).

The float helpers that produce the integers of :class:`~archmodel.golden.affine.AffineCoefficients`:
:func:`analog_affine_multiplier` / :func:`digital_affine_multiplier` (conductance
scale, DAC/ADC LSBs, GDC alpha, folded batch norm, output scale) and
:func:`folded_offset` (bias and batch norm) give the real multiplier and offset;
:func:`quantize_affine` picks the largest shift at which neither scale nor offset
saturates (clamped to ``[0, max_shift]``; normally set by ``max|multiplier|``).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from archmodel.fixedpoint import (
    ACT_BITS,
    COUNT_MAX,
    check_bool,
    check_int_param,
    fixed_round,
    signed_range,
)
from archmodel.golden.affine import AffineCoefficients

__all__ = [
    "analog_affine_multiplier",
    "digital_affine_multiplier",
    "folded_offset",
    "quantize_affine",
    "weight_abs_max",
]


def _real_array(value: npt.ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr[~np.isfinite(arr)].flat[0]}")
    return arr


def _fits(q: np.ndarray, bits: int) -> bool:
    lo, hi = signed_range(bits)
    return bool(np.all((q >= lo) & (q <= hi)))


def _shift_upper_bound(m: np.ndarray, b: np.ndarray, scale_bits: int, offset_bits: int, max_shift: int) -> int:
    """A shift at or above the largest one at which ``m`` and ``b`` fit (where :func:`quantize_affine` starts).

    A value ``v`` cannot fit a signed ``bits``-bit integer at shift ``s`` once
    ``|v|·2**s > 2**(bits-1) + 1`` (its rounding is then at least ``2**(bits-1) + 1``
    in magnitude), i.e. for ``s > log2((2**(bits-1) + 1) / |v|)``; one more shift
    covers the rounding of ``log2``. Starting the downward search here instead of
    at ``max_shift`` skips only shifts that cannot fit, so the result is the same.
    """
    start = max_shift
    for v, bits in ((m, scale_bits), (b, offset_bits)):
        vmax = float(np.max(np.abs(v))) if v.size else 0.0
        if vmax > 0.0:
            start = min(start, max(0, math.floor(math.log2(((1 << (bits - 1)) + 1) / vmax)) + 1))
    return start


def quantize_affine(multiplier: npt.ArrayLike, offset_real: npt.ArrayLike, *,
                    relu: bool = False, scale_bits: int = 16, offset_bits: int = 32,
                    max_shift: int = 31) -> AffineCoefficients:
    """Quantize a real per-column affine map ``y = p*m + b`` to the affine unit.

    ``shift`` is the largest value in ``[0, max_shift]`` at which
    ``to_fixed(m, shift, scale_bits)`` and ``to_fixed(b, shift, offset_bits)``
    need no saturation (``floor(v*2**shift + 1/2)`` fits the signed width for
    every column), i.e. saturation is never used. Normally the scale decides
    (``max|m| * 2**shift`` just fits ``scale_bits``); the offset lowers the
    shift further only when it would otherwise not fit ``offset_bits``. Then
    ``scale = to_fixed(m, shift, scale_bits)`` and
    ``offset = to_fixed(b, shift, offset_bits)``.

    The error of the integer output against the real ``y`` (before ReLU and
    saturation, both 1-Lipschitz) is at most
    ``1/2 + (|p| + 1) * 2**-(shift+1)`` output LSBs: 1/2 from the final
    rounding, ``|p| * 2**-(shift+1)`` from the scale, ``2**-(shift+1)`` from
    the offset.

    Parameters
    ----------
    multiplier : array_like of float, shape (n_cols,) or scalar
        Real factor from accumulator units to output int8 units, per column
        (:func:`analog_affine_multiplier`, :func:`digital_affine_multiplier`).
    offset_real : array_like of float, shape (n_cols,) or scalar
        Real offset in output int8 units (:func:`folded_offset`).
    relu : bool, default False
        Stored in the result.
    scale_bits : int, default 16
        Signed width of the scale, 2..63.
    offset_bits : int, default 32
        Signed width of the offset, 2..63.
    max_shift : int, default 31
        Largest shift the affine unit supports, 0..62. (It must also satisfy
        ``shift <= acc_bits + scale_bits - 1`` in :func:`affine_requantize`.)

    Returns
    -------
    AffineCoefficients
        ``scale``/``offset`` of shape (n_cols,) (scalars become length 1).

    Raises
    ------
    TypeError, ValueError
        If an input is not finite/real, the shapes do not broadcast to 1-D, a
        width is out of range, or a coefficient does not fit even at shift 0.
    """
    scale_bits = check_int_param(scale_bits, "scale_bits", 2, 63)
    offset_bits = check_int_param(offset_bits, "offset_bits", 2, 63)
    max_shift = check_int_param(max_shift, "max_shift", 0, 62)
    relu = check_bool(relu, "relu")
    m = np.atleast_1d(_real_array(multiplier, "multiplier"))
    b = np.atleast_1d(_real_array(offset_real, "offset_real"))
    try:
        m, b = np.broadcast_arrays(m, b)
    except ValueError:
        raise ValueError(
            f"multiplier {m.shape} and offset_real {b.shape} do not broadcast"
        ) from None
    if m.ndim != 1:
        raise ValueError(f"multiplier and offset_real must be 1-D (n_cols,), got {m.shape}")
    for shift in range(_shift_upper_bound(m, b, scale_bits, offset_bits, max_shift), -1, -1):
        q_scale = fixed_round(m, shift)
        q_offset = fixed_round(b, shift)
        if _fits(q_scale, scale_bits) and _fits(q_offset, offset_bits):
            return AffineCoefficients(q_scale.astype(np.int64), q_offset.astype(np.int64),
                                      shift, relu)
    if not _fits(fixed_round(m, 0), scale_bits):
        raise ValueError(
            f"multiplier: max|multiplier| = {float(np.max(np.abs(m)))} does not fit a "
            f"signed {scale_bits}-bit scale even at shift 0"
        )
    raise ValueError(
        f"offset_real: max|offset_real| = {float(np.max(np.abs(b)))} does not fit a "
        f"signed {offset_bits}-bit offset even at shift 0"
    )


def _positive(value: float, name: str) -> float:
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return v


def weight_abs_max(weights: npt.ArrayLike, weight_scaling: str = "per_layer") -> float | np.ndarray:
    """``max|W|`` that sets the conductance scale ``s = g_max / max|W|`` (``mapping.weight_scaling``).

    ``per_layer``: one maximum over the whole (K, N) matrix (Joshi et al. 2020).
    ``per_column``: one per output column (aihwkit's per-column weight scaling,
    ``weight_scaling_columnwise``); an all-zero column takes the layer's maximum
    (it programs 0 µS at any scale). The scale folds into the affine multiplier
    (:func:`analog_affine_multiplier`), so a column's partial sums keep their own
    LSB. One contract for the tile model (``AnalogMatrix.program``), the accuracy
    path, the register compiler and the co-simulation.

    Parameters
    ----------
    weights : array_like (K, N)
        Real, finite, not all zero.
    weight_scaling : {"per_layer", "per_column"}

    Returns
    -------
    float (per_layer) or ndarray (N,) of float64 > 0 (per_column)

    Raises
    ------
    ValueError
        Not 2-D, not finite, all zero, or an unknown ``weight_scaling``.
    """
    w = _real_array(weights, "weights")
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"weights must be a non-empty 2-D (K, N) matrix, got shape {w.shape}")
    layer = float(np.max(np.abs(w)))
    if layer == 0.0:
        raise ValueError("weights are all zero: the conductance scale g_max / max|W| is undefined")
    if weight_scaling == "per_layer":
        return layer
    if weight_scaling == "per_column":
        col = np.max(np.abs(w), axis=0)
        return np.where(col > 0, col, layer)
    raise ValueError(f"weight_scaling must be 'per_layer' or 'per_column', got {weight_scaling!r}")


def _bn_factor(bn_gamma: npt.ArrayLike | None, bn_var: npt.ArrayLike | None,
               eps: float) -> np.ndarray:
    """``gamma / sqrt(var + eps)``, or 1 when batch norm is absent."""
    if (bn_gamma is None) != (bn_var is None):
        raise ValueError("bn_gamma and bn_var must be given together (or both None)")
    if bn_gamma is None:
        return np.asarray(1.0)
    gamma = _real_array(bn_gamma, "bn_gamma")
    var = _real_array(bn_var, "bn_var")
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    if np.any(var + eps <= 0):
        raise ValueError(f"bn_var + eps must be > 0, got min {float(np.min(var + eps))}")
    return gamma / np.sqrt(var + eps)


def analog_affine_multiplier(*, in_scale: float, out_scale: float, w_abs_max: npt.ArrayLike,
                             g_max_us: float, v_read_v: float, array_rows: int,
                             adc_bits: int, dac_bits: int, adc_full_scale_fraction: float,
                             gdc_alpha: npt.ArrayLike = 1.0,
                             bn_gamma: npt.ArrayLike | None = None,
                             bn_var: npt.ArrayLike | None = None,
                             eps: float = 1e-5) -> np.ndarray:
    """Real per-column multiplier from (accumulated) ADC codes to output int8 units.

    Derivation (all per layer unless noted; equation source: docs/design.md data
    path, constants from the chip description):

    - activation: ``x_real = x_int8 * in_scale``; DAC code
      ``d = dac_codes(x_int8) ~ x_int8 / c`` with ``c = 2**(8 - dac_bits)``;
    - DAC voltage ``V = d * LSB_V``, ``LSB_V = v_read_v / 2**(dac_bits-1)`` [V];
      so ``x_int8 ~ V / LSB_V_eff`` with
      ``LSB_V_eff = LSB_V / c = v_read_v / 2**7`` [V per int8 step];
    - conductances ``G+ - G- = s * W`` with ``s = g_max_us / max|W|``
      [µS per weight unit] (``s_j`` per column with ``mapping.weight_scaling:
      per_column``, :func:`weight_abs_max`); after drift the array reads ``~ s * W / alpha_j``;
    - column current ``I_j = sum_i V_i (G+ - G-)_ij`` [µA];
    - ADC: ``I_fs = adc_full_scale_fraction * array_rows * g_max_us * v_read_v``
      [µA], ``LSB_I = I_fs / 2**(adc_bits-1)``, ``I ~ code * LSB_I``;
      partial sums of row blocks add as integers (same ``s`` and ``LSB_I`` on
      every array of the layer).

    Hence ``(W x_real)_j ~ alpha_j * p_j * LSB_I / (LSB_V_eff * s) * in_scale``
    (``µA / (V * µS)`` is dimensionless), and with folded batch norm and the
    output scale (``y_int8 = y_real / out_scale``)::

        m_j = alpha_j * gamma_j / sqrt(var_j + eps) * LSB_I * c * in_scale
              / (LSB_V * s_j * out_scale)

    The bias and the batch-norm shift go into :func:`folded_offset`.

    Parameters
    ----------
    in_scale : float
        Real value of one input int8 step (> 0).
    out_scale : float
        Real value of one output int8 step (> 0).
    w_abs_max : float or array_like (n_cols,)
        ``max|W|`` that set the conductance scale (> 0), weight units: over the
        layer's whole matrix, or per column (:func:`weight_abs_max`,
        ``mapping.weight_scaling: per_column``; the multiplier is then per column).
    g_max_us : float
        Maximum device conductance, µS (> 0).
    v_read_v : float
        Read voltage at full-scale DAC code, V (> 0).
    array_rows : int
        Physical rows of one crossbar array (sets the ADC full scale), >= 1.
    adc_bits : int
        Signed ADC code width, 2..32.
    dac_bits : int
        Signed DAC code width, 2..8.
    adc_full_scale_fraction : float
        ADC full scale as a fraction of ``array_rows * g_max_us * v_read_v``, (0, 1].
    gdc_alpha : float or array_like, shape (n_cols,), default 1.0
        Global drift compensation factor(s) (> 0).
    bn_gamma, bn_var : array_like, shape (n_cols,), optional
        Batch-norm scale and running variance (both or neither).
    eps : float, default 1e-5
        Batch-norm epsilon.

    Returns
    -------
    numpy.ndarray of float64
        Broadcast shape of ``gdc_alpha``, ``w_abs_max``, ``bn_gamma``, ``bn_var`` (0-d if all
        scalar), output int8 units per accumulator unit.

    Raises
    ------
    TypeError, ValueError
        If a physical quantity is not finite and positive, a width is out of
        range, or the batch-norm arguments are incomplete.
    """
    in_scale = _positive(in_scale, "in_scale")
    out_scale = _positive(out_scale, "out_scale")
    w_abs_max = _real_array(w_abs_max, "w_abs_max")
    if np.any(w_abs_max <= 0):
        raise ValueError(f"w_abs_max must be > 0, got min {float(np.min(w_abs_max))}")
    g_max_us = _positive(g_max_us, "g_max_us")
    v_read_v = _positive(v_read_v, "v_read_v")
    array_rows = check_int_param(array_rows, "array_rows", 1, COUNT_MAX)
    adc_bits = check_int_param(adc_bits, "adc_bits", 2, 32)
    dac_bits = check_int_param(dac_bits, "dac_bits", 2, ACT_BITS)
    frac = _positive(adc_full_scale_fraction, "adc_full_scale_fraction")
    if frac > 1:
        raise ValueError(f"adc_full_scale_fraction must be in (0, 1], got {frac}")
    alpha = _real_array(gdc_alpha, "gdc_alpha")
    if np.any(alpha <= 0):
        raise ValueError(f"gdc_alpha must be > 0, got min {float(np.min(alpha))}")
    bn = _bn_factor(bn_gamma, bn_var, eps)

    i_fs_ua = frac * array_rows * g_max_us * v_read_v
    lsb_i_ua = i_fs_ua / 2 ** (adc_bits - 1)
    lsb_v_v = v_read_v / 2 ** (dac_bits - 1)
    code_scale = 2 ** (ACT_BITS - dac_bits)
    s_us = g_max_us / w_abs_max
    base = lsb_i_ua * code_scale * in_scale / (lsb_v_v * s_us * out_scale)
    return np.asarray(alpha * bn * base, dtype=np.float64)


def digital_affine_multiplier(*, in_scale: float, w_scale: npt.ArrayLike, out_scale: float,
                              bn_gamma: npt.ArrayLike | None = None,
                              bn_var: npt.ArrayLike | None = None,
                              eps: float = 1e-5) -> np.ndarray:
    """Real per-column multiplier of a digital layer (int8 x int8 sums -> int8 output).

    ``m_j = in_scale * w_scale_j * gamma_j / sqrt(var_j + eps) / out_scale``, where
    ``W_real = w_int8 * w_scale`` and ``x_real = x_int8 * in_scale``.

    Parameters
    ----------
    in_scale, out_scale : float
        Real value of one input / output int8 step (> 0).
    w_scale : float or array_like, shape (n_cols,)
        Real value of one weight int8 step (per layer or per output channel, > 0).
    bn_gamma, bn_var : array_like, shape (n_cols,), optional
        Batch-norm scale and running variance (both or neither).
    eps : float, default 1e-5
        Batch-norm epsilon.

    Returns
    -------
    numpy.ndarray of float64, broadcast shape of ``w_scale``, ``bn_gamma``, ``bn_var``

    Raises
    ------
    ValueError
        If a scale is not finite and positive or the batch-norm arguments are
        incomplete.
    """
    in_scale = _positive(in_scale, "in_scale")
    out_scale = _positive(out_scale, "out_scale")
    ws = _real_array(w_scale, "w_scale")
    if np.any(ws <= 0):
        raise ValueError(f"w_scale must be > 0, got min {float(np.min(ws))}")
    bn = _bn_factor(bn_gamma, bn_var, eps)
    return np.asarray(in_scale * ws * bn / out_scale, dtype=np.float64)


def folded_offset(bias: npt.ArrayLike | None = None, bn_gamma: npt.ArrayLike | None = None,
                  bn_beta: npt.ArrayLike | None = None, bn_mean: npt.ArrayLike | None = None,
                  bn_var: npt.ArrayLike | None = None, eps: float = 1e-5, *,
                  out_scale: float) -> np.ndarray:
    """Real per-column offset in output int8 units (bias and batch norm folded).

    ``b_j = (gamma_j * (bias_j - mean_j) / sqrt(var_j + eps) + beta_j) / out_scale``;
    without batch norm ``b_j = bias_j / out_scale``; a missing bias counts as 0.

    Parameters
    ----------
    bias : array_like, shape (n_cols,) or scalar, optional
        Layer bias in real output units.
    bn_gamma, bn_beta, bn_mean, bn_var : array_like, shape (n_cols,), optional
        Batch-norm parameters and running statistics: all four or none.
    eps : float, default 1e-5
        Batch-norm epsilon.
    out_scale : float
        Real value of one output int8 step (> 0). Keyword-only, required.

    Returns
    -------
    numpy.ndarray of float64
        Broadcast shape of the given arrays (0-d if all scalar or absent).

    Raises
    ------
    ValueError
        If ``out_scale`` is not finite and positive, an array is not finite,
        or only some of the batch-norm arguments are given.
    """
    out_scale = _positive(out_scale, "out_scale")
    b = np.asarray(0.0) if bias is None else _real_array(bias, "bias")
    bn_args = (bn_gamma, bn_beta, bn_mean, bn_var)
    n_given = sum(a is not None for a in bn_args)
    if n_given not in (0, 4):
        raise ValueError(
            "bn_gamma, bn_beta, bn_mean and bn_var must be given together (or all None)"
        )
    if n_given == 0:
        return np.asarray(b / out_scale, dtype=np.float64)
    factor = _bn_factor(bn_gamma, bn_var, eps)
    beta = _real_array(bn_beta, "bn_beta")
    mean = _real_array(bn_mean, "bn_mean")
    return np.asarray((factor * (b - mean) + beta) / out_scale, dtype=np.float64)
