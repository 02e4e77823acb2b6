"""Integer golden models of the digital periphery (the RTL matches these bit for bit).

Everything after the ADC and before the DAC is integer and deterministic (see
DESIGN.md, "Data path of one analog layer"). Each digital block has one
function here; the Amaranth RTL and its cocotb/Amaranth-simulation tests
compare against them bit for bit. Rounding and saturation come from
:mod:`archmodel.fixedpoint` (``round_shift``: round half toward +infinity;
``saturate``: clip to the signed range) and are not redefined here.

Activations are signed int8 everywhere (``ACT_BITS = 8``). All functions take
numpy integer arrays / Python ints / lists, compute in ``numpy.int64``, never
use floating point internally (except the offline coefficient helpers of
section 5, which produce the integers), and validate their inputs:
``ValueError`` names the argument, the bad value and the allowed range.

Contract, in data-path order
----------------------------
1. **Tile controller, int8 -> DAC code** (:func:`dac_codes`)::

       code = x                                               if dac_bits == 8
       code = saturate(round_shift(x, 8 - dac_bits), dac_bits) otherwise

   ``dac_bits`` in [2, 8]. Example at 4 bits: -128 -> -8, 127 ->
   round_shift(127, 4) = 8 -> saturates to 7.

2. **Array-port beats** (:func:`dac_beats`, :func:`adc_beats`, :func:`unbeat`):
   the codes of one row block (DAC) or of one array's columns (ADC) travel in
   beats of ``rows_per_beat`` / ``cols_per_beat`` lanes; element ``i`` goes to
   beat ``i // lanes``, lane ``i % lanes``; the last beat is zero-padded
   (a zero DAC code drives no current). ``n_beats = ceil(n / lanes)``;
   ``last`` is asserted on beat ``n_beats - 1``.

3. **Block sequencing of one layer on one tile** (:func:`tile_schedule`):
   the weight matrix (K rows x N columns, see :func:`weight_matrix`) is cut
   into ``n_rb = ceil(K / array_rows)`` row blocks and
   ``n_cb = ceil(N / array_cols)`` column blocks; block ``(rb, cb)`` holds rows
   ``rb*array_rows ...`` and columns ``cb*array_cols ...`` and lives in array
   ``array_index = cb*n_rb + rb``. THE order the RTL follows for one input
   vector is column-block major, row-block minor::

       for cb in range(n_cb):
           for rb in range(n_rb):
               MVM on array cb*n_rb + rb with the DAC codes of row block rb
               accumulate its ADC codes into the partial sums of column block cb
           emit the outputs of column block cb, columns in increasing order

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
   offset. Coefficients come from :func:`quantize_affine` (largest shift at
   which neither scale nor offset saturates, clamped to ``[0, max_shift]``;
   normally set by ``max|multiplier|``), fed by
   :func:`analog_affine_multiplier` / :func:`digital_affine_multiplier` and
   :func:`folded_offset` (conductance scale, DAC/ADC LSBs, GDC alpha, folded
   batch norm, bias, output scale).

6. **Digital datapath** (layers kept digital): int8 x int8 -> exact int
   products and sums (:func:`digital_conv2d`, :func:`digital_linear`), then the
   same affine unit. The im2col order (:func:`im2col`) is
   ``row = (c*kh + i)*kw + j`` and ``column = oh*W_out + ow``, i.e. the weight
   matrix is ``w.reshape(C_out, -1).T`` of the OIHW (PyTorch/ONNX) kernel.

7. **MAC schedule of the digital datapath** (:func:`digital_datapath_order`):
   the MAC array holds ``mac_lanes`` output channels in parallel; for each
   output pixel (im2col column, in increasing order), for each channel group
   ``[g*mac_lanes, (g+1)*mac_lanes)`` in increasing order, it runs one cycle
   per term ``k = 0 .. K-1`` (im2col row order) and then emits that group's
   channels in increasing channel order. Outputs therefore leave pixel-major,
   channel-minor.

Sources: the data path and the PCM conductance mapping follow DESIGN.md
(after Joshi et al., Nat. Commun. 11, 2473, 2020, and IBM HERMES, Le Gallo et
al., Nat. Electron. 2023); the bit-level rounding/ordering choices are the
project's own ("assumed", decided by the team lead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from archmodel.fixedpoint import (
    as_int_array,
    check_int_param,
    check_range,
    fixed_round,
    round_shift,
    saturate,
    signed_range,
)

__all__ = [
    "ACT_BITS",
    "AffineCoefficients",
    "TileStep",
    "accumulate_partial_sums",
    "adc_beats",
    "affine_requantize",
    "analog_affine_multiplier",
    "block_counts",
    "conv_output_hw",
    "dac_beats",
    "dac_codes",
    "digital_acc_bits",
    "digital_affine_multiplier",
    "digital_conv2d",
    "digital_datapath_order",
    "digital_linear",
    "folded_offset",
    "im2col",
    "partial_sum_acc_bits",
    "quantize_affine",
    "tile_schedule",
    "unbeat",
    "weight_matrix",
]

#: Width of every activation (signed int8), input and output of every layer.
ACT_BITS = 8
#: Largest magnitude of an int8 x int8 product: (-128) * (-128) = 2**14.
_INT8_PRODUCT_MAX = 1 << (2 * (ACT_BITS - 1))
#: Upper bound for counts and lane numbers (sanity limit, not a hardware figure).
_COUNT_MAX = 1 << 31


# --------------------------------------------------------------------------
# 1. Tile controller: int8 activation -> DAC code
# --------------------------------------------------------------------------


def dac_codes(x_int8: npt.ArrayLike, dac_bits: int) -> np.ndarray:
    """Map int8 activations to signed DAC codes (tile controller).

    ``code = x`` when ``dac_bits == 8``, else
    ``code = saturate(round_shift(x, 8 - dac_bits), dac_bits)`` (round half
    toward +infinity, then clip). One DAC LSB then stands for
    ``2**(8 - dac_bits)`` int8 steps.

    Parameters
    ----------
    x_int8 : array_like of int, any shape
        Activations, signed 8 bits: [-128, 127].
    dac_bits : int
        DAC resolution, 2..8 (signed codes).

    Returns
    -------
    numpy.ndarray of int64
        Same shape as ``x_int8``; values in
        ``[-2**(dac_bits-1), 2**(dac_bits-1) - 1]``.

    Raises
    ------
    TypeError
        If ``dac_bits`` is not an integer.
    ValueError
        If ``dac_bits`` is outside [2, 8] or an activation is outside int8.

    Examples
    --------
    -128 -> -128 / -32 / -8 at 8 / 6 / 4 bits; 127 -> 127 / 31 / 7.
    """
    dac_bits = check_int_param(dac_bits, "dac_bits", 2, ACT_BITS)
    x = check_range(x_int8, ACT_BITS, "x_int8")
    if dac_bits == ACT_BITS:
        return np.array(x, dtype=np.int64)
    return saturate(round_shift(x, ACT_BITS - dac_bits), dac_bits)


# --------------------------------------------------------------------------
# 2. Array-port beats
# --------------------------------------------------------------------------


def _to_beats(codes: npt.ArrayLike, lanes: int, lanes_name: str, max_len: int | None,
              max_len_name: str) -> np.ndarray:
    lanes = check_int_param(lanes, lanes_name, 1, _COUNT_MAX)
    arr = as_int_array(codes, "codes")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"codes must be a non-empty 1-D array, got shape {arr.shape}")
    if max_len is not None:
        max_len = check_int_param(max_len, max_len_name, 1, _COUNT_MAX)
        if arr.size > max_len:
            raise ValueError(
                f"codes: length {arr.size} exceeds {max_len_name} = {max_len}"
            )
    n_beats = -(-arr.size // lanes)
    out = np.zeros(n_beats * lanes, dtype=np.int64)
    out[: arr.size] = arr
    return out.reshape(n_beats, lanes)


def dac_beats(codes: npt.ArrayLike, rows_per_beat: int, *,
              array_rows: int | None = None) -> np.ndarray:
    """Pack the DAC codes of one row block into array-port beats.

    Row ``i`` goes to beat ``i // rows_per_beat``, lane ``i % rows_per_beat``;
    the unused lanes of the last beat are 0. ``last`` goes with the final beat.

    Parameters
    ----------
    codes : array_like of int, shape (n,)
        Signed DAC codes of the rows of one row block, ``1 <= n <= array_rows``.
    rows_per_beat : int
        Lanes per beat, >= 1.
    array_rows : int, optional
        If given, ``n`` must not exceed it.

    Returns
    -------
    numpy.ndarray of int64, shape (ceil(n / rows_per_beat), rows_per_beat)

    Raises
    ------
    TypeError, ValueError
        If ``codes`` is not a non-empty 1-D integer array, is longer than
        ``array_rows``, or ``rows_per_beat`` is not a positive integer.
    """
    return _to_beats(codes, rows_per_beat, "rows_per_beat", array_rows, "array_rows")


def adc_beats(codes: npt.ArrayLike, cols_per_beat: int, *,
              array_cols: int | None = None) -> np.ndarray:
    """Pack the ADC codes of one array (its columns) into array-port beats.

    Column ``j`` goes to beat ``j // cols_per_beat``, lane ``j % cols_per_beat``;
    the unused lanes of the last beat are 0. ``last`` goes with the final beat.

    Parameters
    ----------
    codes : array_like of int, shape (n,)
        Signed ADC codes of the columns in use, ``1 <= n <= array_cols``.
    cols_per_beat : int
        Lanes per beat, >= 1.
    array_cols : int, optional
        If given, ``n`` must not exceed it.

    Returns
    -------
    numpy.ndarray of int64, shape (ceil(n / cols_per_beat), cols_per_beat)

    Raises
    ------
    TypeError, ValueError
        As :func:`dac_beats`.
    """
    return _to_beats(codes, cols_per_beat, "cols_per_beat", array_cols, "array_cols")


def unbeat(beats: npt.ArrayLike, n: int) -> np.ndarray:
    """Inverse of :func:`dac_beats` / :func:`adc_beats`: beats -> the first ``n`` codes.

    Parameters
    ----------
    beats : array_like of int, shape (n_beats, lanes)
        Beats in stream order; ``n_beats`` must equal ``ceil(n / lanes)`` and
        the padding lanes of the last beat must be 0 (the contract).
    n : int
        Number of codes carried, >= 1.

    Returns
    -------
    numpy.ndarray of int64, shape (n,)

    Raises
    ------
    TypeError, ValueError
        If ``beats`` is not a 2-D integer array, its beat count does not match
        ``n``, or a padding lane is non-zero.
    """
    arr = as_int_array(beats, "beats")
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise ValueError(f"beats must be 2-D (n_beats, lanes), got shape {arr.shape}")
    n = check_int_param(n, "n", 1, _COUNT_MAX)
    n_beats, lanes = arr.shape
    expected = -(-n // lanes)
    if n_beats != expected:
        raise ValueError(
            f"beats: {n_beats} beats of {lanes} lanes, but n = {n} needs "
            f"ceil({n}/{lanes}) = {expected}"
        )
    flat = arr.reshape(-1)
    padding = flat[n:]
    if np.any(padding != 0):
        lane = int(np.flatnonzero(padding)[0]) + n
        raise ValueError(
            f"beats: padding lane {lane % lanes} of the last beat holds "
            f"{int(flat[lane])}, expected 0"
        )
    return flat[:n].copy()


# --------------------------------------------------------------------------
# 3. Block sequencing of one layer on one tile
# --------------------------------------------------------------------------


class TileStep(NamedTuple):
    """One MVM step of a layer on a tile (compares equal to a plain tuple)."""

    array_index: int
    """Array holding the block: ``col_block * n_row_blocks + row_block``."""
    row_block: int
    """Row block: weight-matrix rows ``[row_block*array_rows, ...)``."""
    col_block: int
    """Column block: weight-matrix columns ``[col_block*array_cols, ...)``."""


def block_counts(k_rows: int, n_cols: int, array_rows: int, array_cols: int) -> tuple[int, int]:
    """Number of row and column blocks of a K x N weight matrix.

    Parameters
    ----------
    k_rows, n_cols : int
        Weight-matrix rows K (terms per output) and columns N (outputs), >= 1.
    array_rows, array_cols : int
        Crossbar array size, >= 1.

    Returns
    -------
    (n_row_blocks, n_col_blocks) : tuple of int
        ``(ceil(K / array_rows), ceil(N / array_cols))``.

    Raises
    ------
    TypeError, ValueError
        If an argument is not a positive integer.
    """
    k_rows = check_int_param(k_rows, "k_rows", 1, _COUNT_MAX)
    n_cols = check_int_param(n_cols, "n_cols", 1, _COUNT_MAX)
    array_rows = check_int_param(array_rows, "array_rows", 1, _COUNT_MAX)
    array_cols = check_int_param(array_cols, "array_cols", 1, _COUNT_MAX)
    return -(-k_rows // array_rows), -(-n_cols // array_cols)


def tile_schedule(n_row_blocks: int, n_col_blocks: int) -> list[TileStep]:
    """THE order of the MVMs of one layer on one tile (the RTL follows it).

    Column-block major, row-block minor::

        for cb in range(n_col_blocks):
            for rb in range(n_row_blocks):
                step (array_index = cb*n_row_blocks + rb, rb, cb)
            # after rb == n_row_blocks - 1: the affine unit emits column
            # block cb's outputs, columns in increasing order

    Parameters
    ----------
    n_row_blocks, n_col_blocks : int
        Block counts (:func:`block_counts`), >= 1.

    Returns
    -------
    list of TileStep
        ``n_row_blocks * n_col_blocks`` steps ``(array_index, row_block,
        col_block)`` in execution order. Example ``(2, 3)``: (0,0,0), (1,1,0),
        (2,0,1), (3,1,1), (4,0,2), (5,1,2).

    Raises
    ------
    TypeError, ValueError
        If a count is not a positive integer.
    """
    n_rb = check_int_param(n_row_blocks, "n_row_blocks", 1, _COUNT_MAX)
    n_cb = check_int_param(n_col_blocks, "n_col_blocks", 1, _COUNT_MAX)
    return [TileStep(cb * n_rb + rb, rb, cb) for cb in range(n_cb) for rb in range(n_rb)]


# --------------------------------------------------------------------------
# 4. Partial-sum accumulation
# --------------------------------------------------------------------------


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
    n_rb = check_int_param(n_row_blocks, "n_row_blocks", 1, _COUNT_MAX)
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


# --------------------------------------------------------------------------
# 5. Affine / normalization unit
# --------------------------------------------------------------------------


def _check_bool(value: object, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__})")
    return bool(value)


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
    relu = _check_bool(relu, "relu")
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
    y = p_arr * scale_arr + offset_arr
    if relu:
        y = np.maximum(y, 0)
    return saturate(round_shift(y, shift), out_bits)


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
        object.__setattr__(self, "relu", _check_bool(self.relu, "relu"))

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
    relu = _check_bool(relu, "relu")
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
    for shift in range(max_shift, -1, -1):
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


def analog_affine_multiplier(*, in_scale: float, out_scale: float, w_abs_max: float,
                             g_max_us: float, v_read_v: float, array_rows: int,
                             adc_bits: int, dac_bits: int, adc_full_scale_fraction: float,
                             gdc_alpha: npt.ArrayLike = 1.0,
                             bn_gamma: npt.ArrayLike | None = None,
                             bn_var: npt.ArrayLike | None = None,
                             eps: float = 1e-5) -> np.ndarray:
    """Real per-column multiplier from (accumulated) ADC codes to output int8 units.

    Derivation (all per layer unless noted; equation source: DESIGN.md data
    path, constants from the chip description):

    - activation: ``x_real = x_int8 * in_scale``; DAC code
      ``d = dac_codes(x_int8) ~ x_int8 / c`` with ``c = 2**(8 - dac_bits)``;
    - DAC voltage ``V = d * LSB_V``, ``LSB_V = v_read_v / 2**(dac_bits-1)`` [V];
      so ``x_int8 ~ V / LSB_V_eff`` with
      ``LSB_V_eff = LSB_V / c = v_read_v / 2**7`` [V per int8 step];
    - conductances ``G+ - G- = s * W`` with ``s = g_max_us / max|W|``
      [µS per weight unit]; after drift the array reads ``~ s * W / alpha_j``;
    - column current ``I_j = sum_i V_i (G+ - G-)_ij`` [µA];
    - ADC: ``I_fs = adc_full_scale_fraction * array_rows * g_max_us * v_read_v``
      [µA], ``LSB_I = I_fs / 2**(adc_bits-1)``, ``I ~ code * LSB_I``;
      partial sums of row blocks add as integers (same ``s`` and ``LSB_I`` on
      every array of the layer).

    Hence ``(W x_real)_j ~ alpha_j * p_j * LSB_I / (LSB_V_eff * s) * in_scale``
    (``µA / (V * µS)`` is dimensionless), and with folded batch norm and the
    output scale (``y_int8 = y_real / out_scale``)::

        m_j = alpha_j * gamma_j / sqrt(var_j + eps) * LSB_I * c * in_scale
              / (LSB_V * s * out_scale)

    The bias and the batch-norm shift go into :func:`folded_offset`.

    Parameters
    ----------
    in_scale : float
        Real value of one input int8 step (> 0).
    out_scale : float
        Real value of one output int8 step (> 0).
    w_abs_max : float
        ``max|W|`` over the layer's whole weight matrix (> 0), weight units.
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
        Broadcast shape of ``gdc_alpha``, ``bn_gamma``, ``bn_var`` (0-d if all
        scalar), output int8 units per accumulator unit.

    Raises
    ------
    TypeError, ValueError
        If a physical quantity is not finite and positive, a width is out of
        range, or the batch-norm arguments are incomplete.
    """
    in_scale = _positive(in_scale, "in_scale")
    out_scale = _positive(out_scale, "out_scale")
    w_abs_max = _positive(w_abs_max, "w_abs_max")
    g_max_us = _positive(g_max_us, "g_max_us")
    v_read_v = _positive(v_read_v, "v_read_v")
    array_rows = check_int_param(array_rows, "array_rows", 1, _COUNT_MAX)
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


# --------------------------------------------------------------------------
# 6. Digital datapath
# --------------------------------------------------------------------------


def _pair(value: int | tuple[int, int], name: str, lo: int) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {value!r}")
        return (check_int_param(value[0], f"{name}[0]", lo, _COUNT_MAX),
                check_int_param(value[1], f"{name}[1]", lo, _COUNT_MAX))
    v = check_int_param(value, name, lo, _COUNT_MAX)
    return v, v


def _pads(padding: int | tuple[int, ...]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) from int, (h, w) or ONNX (top, left, bottom, right)."""
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        top, left, bottom, right = (check_int_param(v, f"padding[{i}]", 0, _COUNT_MAX)
                                    for i, v in enumerate(padding))
        return top, left, bottom, right
    ph, pw = _pair(padding, "padding", 0)
    return ph, pw, ph, pw


def conv_output_hw(h: int, w: int, kernel_hw: int | tuple[int, int],
                   stride: int | tuple[int, int] = 1,
                   padding: int | tuple[int, ...] = 0,
                   dilation: int | tuple[int, int] = 1) -> tuple[int, int]:
    """Output height and width of a 2-D convolution (PyTorch/ONNX formula).

    ``H_out = floor((H + pad_top + pad_bottom - dilation_h*(kh-1) - 1) / stride_h) + 1``,
    same for W.

    Parameters
    ----------
    h, w : int
        Input height and width, >= 1.
    kernel_hw : int or (kh, kw)
        Kernel size, >= 1.
    stride, dilation : int or (h, w)
        >= 1.
    padding : int, (ph, pw) or (top, left, bottom, right)
        Zero padding, >= 0; the 4-tuple is the ONNX ``pads`` order.

    Returns
    -------
    (h_out, w_out) : tuple of int

    Raises
    ------
    TypeError, ValueError
        If a parameter is invalid or the output would be empty.
    """
    h = check_int_param(h, "h", 1, _COUNT_MAX)
    w = check_int_param(w, "w", 1, _COUNT_MAX)
    kh, kw = _pair(kernel_hw, "kernel_hw", 1)
    sh, sw = _pair(stride, "stride", 1)
    dh, dw = _pair(dilation, "dilation", 1)
    top, left, bottom, right = _pads(padding)
    span_h = h + top + bottom - dh * (kh - 1) - 1
    span_w = w + left + right - dw * (kw - 1) - 1
    if span_h < 0 or span_w < 0:
        raise ValueError(
            f"kernel {kh}x{kw} with dilation ({dh}, {dw}) does not fit the padded input "
            f"{h + top + bottom}x{w + left + right}"
        )
    return span_h // sh + 1, span_w // sw + 1


def im2col(x: npt.ArrayLike, kernel_hw: int | tuple[int, int],
           stride: int | tuple[int, int] = 1, padding: int | tuple[int, ...] = 0,
           dilation: int | tuple[int, int] = 1) -> np.ndarray:
    """Unfold a (C, H, W) integer tensor into the im2col matrix (zero padding).

    ``cols[(c*kh + i)*kw + j, oh*W_out + ow] =
    x_pad[c, oh*stride_h + i*dilation_h, ow*stride_w + j*dilation_w]``, where
    ``x_pad`` is ``x`` with zeros added (``pad_top`` rows above, ``pad_left``
    columns to the left). The row index matches ``w.reshape(C_out, -1)`` of an
    OIHW kernel (PyTorch/ONNX), see :func:`weight_matrix`.

    Parameters
    ----------
    x : array_like of int, shape (C, H, W)
        Input feature map (any integer width; int64 internally).
    kernel_hw : int or (kh, kw)
        Kernel size.
    stride, dilation : int or (h, w), default 1
    padding : int, (ph, pw) or (top, left, bottom, right), default 0

    Returns
    -------
    numpy.ndarray of int64, shape (C*kh*kw, H_out*W_out)

    Raises
    ------
    TypeError, ValueError
        If ``x`` is not a 3-D integer array or a parameter is invalid.
    """
    arr = as_int_array(x, "x")
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"x must be a non-empty 3-D array (C, H, W), got shape {arr.shape}")
    c, h, w = arr.shape
    h_out, w_out = conv_output_hw(h, w, kernel_hw, stride, padding, dilation)
    kh, kw = _pair(kernel_hw, "kernel_hw", 1)
    sh, sw = _pair(stride, "stride", 1)
    dh, dw = _pair(dilation, "dilation", 1)
    top, left, bottom, right = _pads(padding)
    xp = np.pad(arr, ((0, 0), (top, bottom), (left, right)))
    cols = np.empty((c, kh, kw, h_out, w_out), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            cols[:, i, j] = xp[:, r0:r0 + sh * (h_out - 1) + 1:sh,
                               c0:c0 + sw * (w_out - 1) + 1:sw]
    return cols.reshape(c * kh * kw, h_out * w_out)


def weight_matrix(w: npt.ArrayLike) -> np.ndarray:
    """Flatten an OIHW convolution kernel to the (K, C_out) weight matrix.

    ``W[(c*kh + i)*kw + j, o] = w[o, c, i, j]``, i.e. ``w.reshape(C_out, -1).T``;
    K = ``C_in/groups * kh * kw`` rows (matching :func:`im2col`), ``C_out`` columns.

    Parameters
    ----------
    w : array_like of int, shape (C_out, C_in/groups, kh, kw)

    Returns
    -------
    numpy.ndarray of int64, shape (C_in/groups*kh*kw, C_out)

    Raises
    ------
    ValueError
        If ``w`` is not a non-empty 4-D integer array.
    """
    arr = as_int_array(w, "w")
    if arr.ndim != 4 or 0 in arr.shape:
        raise ValueError(f"w must be a non-empty 4-D array (O, I, H, W), got shape {arr.shape}")
    return np.ascontiguousarray(arr.reshape(arr.shape[0], -1).T)


def digital_acc_bits(k_terms: int) -> int:
    """Smallest ``acc_bits`` accepted for ``k_terms`` int8 x int8 products.

    The least ``a`` with ``k_terms * 2**14 <= 2**(a-1) - 1``
    (``2**14 = (-128) * (-128)`` is the largest product magnitude).

    Parameters
    ----------
    k_terms : int
        Products summed per output, >= 1.

    Returns
    -------
    int
        Accumulator width in bits.
    """
    k = check_int_param(k_terms, "k_terms", 1, _COUNT_MAX)
    return (k * _INT8_PRODUCT_MAX).bit_length() + 1


def _check_acc(k: int, acc_bits: int) -> None:
    acc_bits = check_int_param(acc_bits, "acc_bits", 2, 64)
    worst = k * _INT8_PRODUCT_MAX
    if worst > (1 << (acc_bits - 1)) - 1:
        raise ValueError(
            f"acc_bits = {acc_bits} can overflow: K = {k} terms x 2**14 = {worst} > "
            f"2**{acc_bits - 1} - 1 = {(1 << (acc_bits - 1)) - 1}; "
            f"need acc_bits >= {digital_acc_bits(k)}"
        )


def digital_conv2d(x_int8: npt.ArrayLike, w_int8: npt.ArrayLike,
                   stride: int | tuple[int, int] = 1, padding: int | tuple[int, ...] = 0,
                   dilation: int | tuple[int, int] = 1, groups: int = 1,
                   acc_bits: int = 32) -> np.ndarray:
    """Exact integer 2-D convolution of the digital datapath (no bias, no requantize).

    ``out[o, oh, ow] = sum_{c,i,j} w[o, c, i, j] * x_pad[g*C_in/groups + c,
    oh*stride_h + i*dilation_h, ow*stride_w + j*dilation_w]`` with
    ``g = o // (C_out/groups)`` — per group, ``weight_matrix(w_g).T @ im2col(x_g)``.
    Exact: refused up front when ``K * 2**14 > 2**(acc_bits-1) - 1``,
    ``K = C_in/groups * kh * kw``.

    Parameters
    ----------
    x_int8 : array_like of int, shape (C_in, H, W)
        Activations, signed 8 bits.
    w_int8 : array_like of int, shape (C_out, C_in/groups, kh, kw)
        Weights, signed 8 bits (OIHW).
    stride, dilation : int or (h, w), default 1
    padding : int, (ph, pw) or (top, left, bottom, right), default 0
    groups : int, default 1
        Channel groups; ``groups == C_in == C_out`` is depthwise.
    acc_bits : int, default 32
        Signed accumulator width, 2..64.

    Returns
    -------
    numpy.ndarray of int64, shape (C_out, H_out, W_out)
        Sums within the signed ``acc_bits`` range.

    Raises
    ------
    TypeError, ValueError
        If an input is outside int8 or has the wrong shape, ``groups`` does
        not divide the channels, a parameter is invalid, or the accumulator
        could overflow.
    """
    x = check_range(x_int8, ACT_BITS, "x_int8")
    w = check_range(w_int8, ACT_BITS, "w_int8")
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"x_int8 must be a non-empty (C_in, H, W) array, got shape {x.shape}")
    if w.ndim != 4 or 0 in w.shape:
        raise ValueError(
            f"w_int8 must be a non-empty (C_out, C_in/groups, kh, kw) array, got shape {w.shape}"
        )
    c_in, h, wd = x.shape
    c_out, c_in_g, kh, kw = w.shape
    groups = check_int_param(groups, "groups", 1, _COUNT_MAX)
    if c_in % groups or c_out % groups:
        raise ValueError(
            f"groups = {groups} must divide C_in = {c_in} and C_out = {c_out}"
        )
    if c_in_g != c_in // groups:
        raise ValueError(
            f"w_int8.shape[1] = {c_in_g} must equal C_in/groups = {c_in // groups}"
        )
    kernel = (kh, kw)
    _check_acc(c_in_g * kh * kw, acc_bits)
    h_out, w_out = conv_output_hw(h, wd, kernel, stride, padding, dilation)
    c_out_g = c_out // groups
    out = np.empty((c_out, h_out * w_out), dtype=np.int64)
    for g in range(groups):
        cols = im2col(x[g * c_in_g:(g + 1) * c_in_g], kernel, stride, padding, dilation)
        wm = weight_matrix(w[g * c_out_g:(g + 1) * c_out_g])
        out[g * c_out_g:(g + 1) * c_out_g] = wm.T @ cols
    return out.reshape(c_out, h_out, w_out)


def digital_linear(x_int8: npt.ArrayLike, w_int8: npt.ArrayLike,
                   acc_bits: int = 32) -> np.ndarray:
    """Exact integer fully connected layer: ``out[..., o] = sum_k w[o, k] * x[..., k]``.

    Refused up front when ``K * 2**14 > 2**(acc_bits-1) - 1`` (K = ``in``).

    Parameters
    ----------
    x_int8 : array_like of int, shape (..., in)
        Activations, signed 8 bits.
    w_int8 : array_like of int, shape (out, in)
        Weights, signed 8 bits (PyTorch/ONNX ``Gemm`` with transB layout).
    acc_bits : int, default 32
        Signed accumulator width, 2..64.

    Returns
    -------
    numpy.ndarray of int64, shape (..., out)

    Raises
    ------
    TypeError, ValueError
        If an input is outside int8, the shapes do not match, or the
        accumulator could overflow.
    """
    x = check_range(x_int8, ACT_BITS, "x_int8")
    w = check_range(w_int8, ACT_BITS, "w_int8")
    if w.ndim != 2 or 0 in w.shape:
        raise ValueError(f"w_int8 must be a non-empty (out, in) array, got shape {w.shape}")
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"x_int8 must have shape (..., {w.shape[1]}) to match w_int8 {w.shape}, "
            f"got {x.shape}"
        )
    _check_acc(w.shape[1], acc_bits)
    return np.asarray(x @ w.T, dtype=np.int64)


# --------------------------------------------------------------------------
# 7. MAC schedule of the digital datapath
# --------------------------------------------------------------------------


def digital_datapath_order(n_pixels: int, c_out: int, mac_lanes: int) -> list[tuple[int, int]]:
    """Order in which the digital datapath emits its outputs (the RTL contract).

    MAC schedule: the MAC array computes ``mac_lanes`` output channels in
    parallel, one term ``k`` per cycle::

        for pixel in range(n_pixels):                 # im2col column oh*W_out + ow
            for g in range(ceil(c_out / mac_lanes)):  # channel group
                for k in range(K):                    # im2col row order
                    lane l: acc[l] += w[g*mac_lanes + l, k] * x[k, pixel]
                emit channels g*mac_lanes ... min((g+1)*mac_lanes, c_out) - 1
                in increasing order (idle lanes of the last group emit nothing)

    So outputs leave pixel-major, channel-minor, whatever ``mac_lanes`` is;
    ``mac_lanes`` sets the cycle count
    (``n_pixels * ceil(c_out / mac_lanes) * K`` MAC cycles), not the order.

    Parameters
    ----------
    n_pixels : int
        Output pixels (``H_out * W_out``; 1 for a linear layer), >= 1.
    c_out : int
        Output channels, >= 1.
    mac_lanes : int
        Parallel MAC lanes, >= 1.

    Returns
    -------
    list of (pixel, channel) tuples, length ``n_pixels * c_out``

    Raises
    ------
    TypeError, ValueError
        If an argument is not a positive integer.
    """
    n_pixels = check_int_param(n_pixels, "n_pixels", 1, _COUNT_MAX)
    c_out = check_int_param(c_out, "c_out", 1, _COUNT_MAX)
    lanes = check_int_param(mac_lanes, "mac_lanes", 1, _COUNT_MAX)
    order: list[tuple[int, int]] = []
    for pixel in range(n_pixels):
        for g in range(-(-c_out // lanes)):
            for ch in range(g * lanes, min((g + 1) * lanes, c_out)):
                order.append((pixel, ch))
    return order
