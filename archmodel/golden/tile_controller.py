"""Golden model of the tile controller (rtl/tile_controller.py): DAC codes, port beats, block order.

Contract sections 1-3 of the golden models (see :mod:`archmodel.golden`):

1. **int8 -> DAC code** (:func:`dac_codes`)::

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
   the weight matrix (K rows x N columns) is cut into
   ``n_rb = ceil(K / array_rows)`` row blocks and ``n_cb = ceil(N / array_cols)``
   column blocks; block ``(rb, cb)`` lives in array ``array_index = cb*n_rb + rb``.
   THE order the RTL follows for one input vector is column-block major,
   row-block minor (see :func:`tile_schedule`).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from archmodel.fixedpoint import (
    ACT_BITS,
    COUNT_MAX,
    as_int_array,
    check_int_param,
    check_range,
    round_shift,
    saturate,
)

__all__ = [
    "TileStep",
    "adc_beats",
    "block_counts",
    "dac_beats",
    "dac_codes",
    "tile_schedule",
    "unbeat",
]


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
    lanes = check_int_param(lanes, lanes_name, 1, COUNT_MAX)
    arr = as_int_array(codes, "codes")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"codes must be a non-empty 1-D array, got shape {arr.shape}")
    if max_len is not None:
        max_len = check_int_param(max_len, max_len_name, 1, COUNT_MAX)
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
    n = check_int_param(n, "n", 1, COUNT_MAX)
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
    k_rows = check_int_param(k_rows, "k_rows", 1, COUNT_MAX)
    n_cols = check_int_param(n_cols, "n_cols", 1, COUNT_MAX)
    array_rows = check_int_param(array_rows, "array_rows", 1, COUNT_MAX)
    array_cols = check_int_param(array_cols, "array_cols", 1, COUNT_MAX)
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
    n_rb = check_int_param(n_row_blocks, "n_row_blocks", 1, COUNT_MAX)
    n_cb = check_int_param(n_col_blocks, "n_col_blocks", 1, COUNT_MAX)
    return [TileStep(cb * n_rb + rb, rb, cb) for cb in range(n_cb) for rb in range(n_rb)]
