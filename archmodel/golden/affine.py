"""Golden model of the affine unit (rtl/affine.py): exact partial sums, then requantization.

Contract sections 4-5 of the golden models (see :mod:`archmodel.golden`):

4. **Partial-sum accumulation** (:func:`accumulate_partial_sums`): exact
   integer sum of the ADC codes over the row blocks, in row-block order. The
   accumulator width ``acc_bits`` must satisfy
   ``n_rb * 2**(adc_bits-1) <= 2**(acc_bits-1) - 1`` (checked up front), so
   overflow is impossible and no saturation logic exists in hardware.

5. **Affine / normalization unit** (:func:`affine_requantize`), per column j::

       y   = p_j * scale_j + offset_j       exact; p: acc_bits, scale: scale_bits,
                                            offset: offset_bits (all signed)
       y   = max(y, 0)                       if relu
       out = saturate(round_shift(y, shift), out_bits)      out_bits = 8

   ``shift`` (one per layer) is the number of fractional bits of scale and
   offset. The integer coefficients (:class:`AffineCoefficients`) come from
   :mod:`archmodel.golden.coefficients`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from archmodel.fixedpoint import (
    ACT_BITS,
    COUNT_MAX,
    as_int_array,
    check_bool,
    check_int_param,
    check_range,
)
from archmodel.fixedpoint import (
    CLIP_UFUNC as _CLIP,
)

__all__ = [
    "AffineCoefficients",
    "accumulate_partial_sums",
    "affine_requantize",
    "affine_requantize_trusted",
    "partial_sum_acc_bits",
]


def partial_sum_acc_bits(n_row_blocks: int, adc_bits: int) -> int:
    """Smallest ``acc_bits`` accepted by :func:`accumulate_partial_sums`.

    The least ``a`` with ``n_row_blocks * 2**(adc_bits-1) <= 2**(a-1) - 1``.

    Parameters
    ----------
    n_row_blocks : int
        Row blocks summed, >= 1.
    adc_bits : int
        Signed ADC code width, 2..32.

    Returns
    -------
    int
        Accumulator width in bits.
    """
    n_rb = check_int_param(n_row_blocks, "n_row_blocks", 1, COUNT_MAX)
    adc_bits = check_int_param(adc_bits, "adc_bits", 2, 32)
    return (n_rb << (adc_bits - 1)).bit_length() + 1


def accumulate_partial_sums(adc_codes_per_row_block: npt.ArrayLike, adc_bits: int,
                            acc_bits: int) -> np.ndarray:
    """Add the ADC codes of a column block over its row blocks (exact integers).

    ``p = sum_rb codes[rb]`` in row-block order ``rb = 0, 1, ...``. Exact:
    the call is refused up front when
    ``n_row_blocks * 2**(adc_bits-1) > 2**(acc_bits-1) - 1``, so the sum can
    never overflow ``acc_bits`` and the hardware needs no saturation.

    Parameters
    ----------
    adc_codes_per_row_block : array_like of int, shape (n_row_blocks, ...)
        Signed ADC codes, ``adc_bits`` wide; axis 0 is the row block, the other
        axes (typically ``(n_cols,)`` or ``(n_vectors, n_cols)``) are summed
        element-wise.
    adc_bits : int
        Signed ADC code width, 2..32.
    acc_bits : int
        Signed accumulator width, 2..64.

    Returns
    -------
    numpy.ndarray of int64, shape ``adc_codes_per_row_block.shape[1:]``
        Partial sums, within the signed ``acc_bits`` range.

    Raises
    ------
    TypeError, ValueError
        If a width is out of range, the codes are not integers, a code is
        outside the signed ``adc_bits`` range, there is no row block, or the
        accumulator could overflow (the message gives the width needed).
    """
    adc_bits = check_int_param(adc_bits, "adc_bits", 2, 32)
    acc_bits = check_int_param(acc_bits, "acc_bits", 2, 64)
    codes = check_range(adc_codes_per_row_block, adc_bits, "adc_codes_per_row_block")
    if codes.ndim < 1 or codes.shape[0] == 0:
        raise ValueError(
            "adc_codes_per_row_block must have shape (n_row_blocks >= 1, ...), "
            f"got {codes.shape}"
        )
    n_rb = codes.shape[0]
    worst = n_rb << (adc_bits - 1)
    if worst > (1 << (acc_bits - 1)) - 1:
        raise ValueError(
            f"acc_bits = {acc_bits} can overflow: {n_rb} row blocks x 2**{adc_bits - 1} = "
            f"{worst} > 2**{acc_bits - 1} - 1 = {(1 << (acc_bits - 1)) - 1}; "
            f"need acc_bits >= {partial_sum_acc_bits(n_rb, adc_bits)}"
        )
    acc = codes[0].copy()
    for rb in range(1, n_rb):
        acc = acc + codes[rb]
    return np.asarray(acc, dtype=np.int64)


def affine_requantize(p: npt.ArrayLike, scale: npt.ArrayLike, offset: npt.ArrayLike,
                      shift: int, relu: bool, *, acc_bits: int, scale_bits: int = 16,
                      offset_bits: int = 32, out_bits: int = ACT_BITS) -> np.ndarray:
    """Affine unit: per-column scale and offset, optional ReLU, requantize to int8.

    Per column ``j``::

        y   = p * scale_j + offset_j        product: acc_bits + scale_bits bits (exact)
                                            sum: max(acc_bits + scale_bits, offset_bits) + 1 bits
        y   = max(y, 0)                      if relu
        out = saturate(round_shift(y, shift), out_bits)

    ``round_shift`` adds ``2**(shift-1)`` and shifts right arithmetically
    (round half toward +infinity). Because ``shift <= acc_bits + scale_bits - 1``,
    ``y + 2**(shift-1)`` still fits the sum width. ReLU-then-round equals
    round-then-ReLU (and ReLU after saturation): ``round_shift`` and
    ``saturate`` are monotone non-decreasing and map 0 to 0, so
    ``round(max(y, 0)) == max(round(y), 0)``; the RTL may place the ReLU at
    any of these points.

    Parameters
    ----------
    p : array_like of int, shape (..., n_cols)
        Partial sums, signed ``acc_bits``.
    scale : array_like of int, shape (n_cols,) or scalar
        Per-column scale, signed ``scale_bits``, ``shift`` fractional bits.
    offset : array_like of int, shape (n_cols,) or scalar
        Per-column offset, signed ``offset_bits``, ``shift`` fractional bits.
    shift : int
        Per-layer right shift = fractional bits of scale and offset,
        0 .. acc_bits + scale_bits - 1.
    relu : bool
        Apply ReLU.
    acc_bits : int
        Signed width of ``p``, 2..63.
    scale_bits : int, default 16
        Signed width of ``scale``, 2..63.
    offset_bits : int, default 32
        Signed width of ``offset``, 2..63.
    out_bits : int, default 8
        Signed width of the output, 2..32.

    Returns
    -------
    numpy.ndarray of int64, same shape as ``p``
        Values in ``[-2**(out_bits-1), 2**(out_bits-1) - 1]``.

    Raises
    ------
    TypeError
        If a width, ``shift`` or ``relu`` has the wrong type.
    ValueError
        If a width or ``shift`` is out of range, the sum width exceeds 64
        bits, an input is outside its signed width, or ``scale``/``offset``
        do not broadcast to the shape of ``p``.
    """
    acc_bits = check_int_param(acc_bits, "acc_bits", 2, 63)
    scale_bits = check_int_param(scale_bits, "scale_bits", 2, 63)
    offset_bits = check_int_param(offset_bits, "offset_bits", 2, 63)
    out_bits = check_int_param(out_bits, "out_bits", 2, 32)
    sum_bits = max(acc_bits + scale_bits, offset_bits) + 1
    if sum_bits > 64:
        raise ValueError(
            f"affine sum width max(acc_bits + scale_bits, offset_bits) + 1 = {sum_bits} "
            "exceeds 64 bits"
        )
    shift = check_int_param(shift, "shift", 0, acc_bits + scale_bits - 1)
    relu = check_bool(relu, "relu")
    p_arr = check_range(p, acc_bits, "p")
    scale_arr = check_range(scale, scale_bits, "scale")
    offset_arr = check_range(offset, offset_bits, "offset")
    try:
        shape = np.broadcast_shapes(p_arr.shape, scale_arr.shape, offset_arr.shape)
    except ValueError:
        shape = None
    if shape != p_arr.shape:
        raise ValueError(
            f"scale {scale_arr.shape} and offset {offset_arr.shape} must broadcast to "
            f"the shape of p {p_arr.shape} (per-column coefficients on the last axis)"
        )
    return affine_requantize_trusted(p_arr, scale_arr, offset_arr, shift, relu, out_bits)


def affine_requantize_trusted(p: np.ndarray, scale: np.ndarray, offset: np.ndarray, shift: int, relu: bool,
                              out_bits: int = ACT_BITS) -> np.ndarray:
    """The arithmetic of :func:`affine_requantize` without its argument and range checks.

    For callers whose operands are in range by construction (the accuracy
    evaluator: partial sums from the ADC model, coefficients from
    ``golden.coefficients.quantize_affine``); the range checks stay at the
    boundaries (user inputs, values handed to the RTL). Same integer operations
    in the same order: ``y = p * scale + offset``, ReLU, ``round_shift``
    (``(y + 2**(shift-1)) >> shift``), saturate to ``out_bits``.

    Parameters
    ----------
    p : ndarray of int64, (..., n_cols)
    scale, offset : ndarray of int64, (n_cols,)
    shift : int, 0..63
    relu : bool
    out_bits : int

    Returns
    -------
    numpy.ndarray of int64, the shape of ``p``
        Bit-identical to :func:`affine_requantize` for in-range operands whose
        rounding addition does not overflow int64 (guaranteed by the widths
        :func:`affine_requantize` checks).
    """
    # Same integers, fewer passes over the (B, n_cols) array: the rounding term r = 2^(shift-1) is folded
    # into the (n_cols,) offset, and max(y, 0) + r == max(y + r, r) (integers, no overflow within the
    # widths above); after a ReLU and the shift y >= 0, so only the upper saturation bound can bind.
    r = 1 << (shift - 1) if shift > 0 else 0
    hi = (1 << (out_bits - 1)) - 1
    y = p * scale
    y += offset + r
    if relu:
        np.maximum(y, r, out=y)
        if shift > 0:
            y >>= shift
        np.minimum(y, hi, out=y)
        return y
    if shift > 0:
        y >>= shift
    _CLIP(y, -hi - 1, hi, out=y)
    return y


@dataclass(frozen=True, eq=False)
class AffineCoefficients:
    """Integer coefficients of the affine unit for one layer.

    Parameters
    ----------
    scale : array_like of int, shape (n_cols,)
        Per-column scale, ``shift`` fractional bits (signed ``scale_bits``).
    offset : array_like of int, shape (n_cols,)
        Per-column offset in output-LSB units with ``shift`` fractional bits
        (signed ``offset_bits``).
    shift : int
        Per-layer right shift, 0..63.
    relu : bool
        Apply ReLU.

    Raises
    ------
    TypeError, ValueError
        If the arrays are not 1-D integers of the same length, or ``shift`` /
        ``relu`` is invalid. The arrays are stored as read-only int64 copies.
    """

    scale: np.ndarray
    """Per-column scale, int64 array (n_cols,), ``shift`` fractional bits."""
    offset: np.ndarray
    """Per-column offset, int64 array (n_cols,), ``shift`` fractional bits, output LSBs."""
    shift: int
    """Right shift after ``p*scale + offset``; fractional bits of scale and offset."""
    relu: bool
    """Whether the ReLU is applied."""

    def __post_init__(self) -> None:
        scale = np.array(as_int_array(self.scale, "scale"), dtype=np.int64)
        offset = np.array(as_int_array(self.offset, "offset"), dtype=np.int64)
        if scale.ndim != 1 or scale.size == 0 or offset.shape != scale.shape:
            raise ValueError(
                f"scale and offset must be 1-D of the same non-zero length, got "
                f"{scale.shape} and {offset.shape}"
            )
        scale.flags.writeable = False
        offset.flags.writeable = False
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "shift", check_int_param(self.shift, "shift", 0, 63))
        object.__setattr__(self, "relu", check_bool(self.relu, "relu"))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AffineCoefficients):
            return NotImplemented
        return (self.shift == other.shift and self.relu == other.relu
                and np.array_equal(self.scale, other.scale)
                and np.array_equal(self.offset, other.offset))

    __hash__ = None  # type: ignore[assignment]

    @property
    def n_cols(self) -> int:
        """Number of columns."""
        return int(self.scale.size)

    def apply(self, p: npt.ArrayLike, *, acc_bits: int, scale_bits: int = 16,
              offset_bits: int = 32, out_bits: int = ACT_BITS) -> np.ndarray:
        """:func:`affine_requantize` with these coefficients; ``p`` shape (..., n_cols)."""
        return affine_requantize(p, self.scale, self.offset, self.shift, self.relu,
                                 acc_bits=acc_bits, scale_bits=scale_bits,
                                 offset_bits=offset_bits, out_bits=out_bits)
