"""Integer fixed-point helpers: THE rounding and saturation of the aimc chip.

Every digital block of the periphery (tile controller, partial-sum
accumulator, affine unit, digital datapath) rounds and saturates with the two
functions defined here, and the Amaranth RTL reproduces them bit for bit.
There is no ``amaranth.lib.fixed`` in Amaranth 0.5; this module is the Python
reference of our own small fixed-point helper.

Contract (decided once, for the whole project)
----------------------------------------------
Signed integers are two's complement; an ``n``-bit signed value lies in
``[-2**(n-1), 2**(n-1) - 1]``.

``saturate(x, bits)``
    Clip ``x`` to the signed ``bits``-bit range.
``round_shift(x, shift)``
    For ``shift > 0``: ``(x + (1 << (shift - 1))) >> shift`` with an
    arithmetic (floor) right shift, i.e. ``floor(x / 2**shift + 1/2)``:
    round to nearest, ties toward +infinity (``round_shift(3, 1) == 2``,
    ``round_shift(-3, 1) == -1``, ``round_shift(-1, 1) == 0``).
    ``shift == 0`` returns ``x`` unchanged; ``shift < 0`` raises
    ``ValueError``. In hardware: one adder (constant ``1 << (shift - 1)``)
    and a wire-select; no sign handling.
``to_fixed(value, frac_bits, total_bits)``
    Real -> signed integer: ``floor(value * 2**frac_bits + 1/2)`` evaluated
    exactly (no double rounding in the ``+ 1/2``), then
    ``saturate(., total_bits)``. Used offline (coefficient quantization),
    never inside the RTL.
``from_fixed(q, frac_bits)``
    Signed integer -> float64 ``q * 2**-frac_bits`` (exact for ``|q| < 2**53``).
``fixed_round(value, frac_bits)``
    The rounding step of ``to_fixed`` without saturation (float64 integers),
    for callers that must test a fit first.
``check_range(x, bits, name)``
    ``ValueError`` naming ``name``, the first bad value, its index and the
    allowed range if any value lies outside the signed ``bits``-bit range.

All integer functions take numpy integer arrays, Python ints or (nested)
lists of ints, compute in ``numpy.int64`` and never go through floating
point. Floats, bools and integers that do not fit int64 are rejected with
``ValueError``.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

#: ``np.clip`` as the bare ufunc ``clip(x, lo, hi, out)`` (the ``np.clip`` Python wrapper costs ~1.5 µs per call,
#: the per-call cost of one-vector paths); ``minimum(maximum())`` where numpy has no such ufunc. Same results.
CLIP_UFUNC = getattr(getattr(getattr(np, "_core", None), "umath", None), "clip", None) or (
    lambda x, lo, hi, out: np.minimum(np.maximum(x, lo, out=out), hi, out=out))

__all__ = [
    "CLIP_UFUNC",
    "ACT_BITS",
    "COUNT_MAX",
    "INT64_MAX",
    "INT64_MIN",
    "FixedFormat",
    "as_int_array",
    "check_bool",
    "check_int_param",
    "check_range",
    "fixed_round",
    "from_fixed",
    "round_shift",
    "saturate",
    "signed_range",
    "to_fixed",
]

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1

#: Largest total width the int64 reference can represent.
MAX_BITS = 64
#: Largest rounding shift / number of fractional bits supported.
MAX_SHIFT = 63

#: Width of every activation (signed int8), input and output of every layer: THE one
#: definition (golden models, RTL parameters and testbenches import it).
ACT_BITS = 8
#: Upper bound for counts and lane numbers (sanity limit, not a hardware figure).
COUNT_MAX = 1 << 31


def check_bool(value: object, name: str) -> bool:
    """Validate a flag: a Python or numpy bool, returned as ``bool``; else ``TypeError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r} ({type(value).__name__})")
    return bool(value)


def check_int_param(value: object, name: str, lo: int, hi: int) -> int:
    """Validate a scalar integer parameter (a bit width, a shift, a count).

    Parameters
    ----------
    value : int
        Python int or numpy integer (``bool`` is rejected).
    name : str
        Parameter name used in the error message.
    lo, hi : int
        Inclusive allowed range.

    Returns
    -------
    int
        ``value`` as a Python int.

    Raises
    ------
    TypeError
        If ``value`` is not an integer.
    ValueError
        If ``value`` is outside ``[lo, hi]``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def signed_range(bits: int) -> tuple[int, int]:
    """Inclusive range ``(-2**(bits-1), 2**(bits-1) - 1)`` of a signed ``bits``-bit integer.

    Parameters
    ----------
    bits : int
        Width in bits, 1..64.

    Raises
    ------
    TypeError, ValueError
        If ``bits`` is not an integer in ``[1, 64]``.
    """
    bits = check_int_param(bits, "bits", 1, MAX_BITS)
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def as_int_array(x: npt.ArrayLike, name: str = "x") -> np.ndarray:
    """Convert integer data to a ``numpy.int64`` array, refusing anything else.

    Parameters
    ----------
    x : array_like of int
        Python int, (nested) list of ints, or numpy integer array of any shape.
    name : str
        Argument name used in error messages.

    Returns
    -------
    numpy.ndarray of int64
        Same shape as ``x`` (0-d for a scalar). A new array when a conversion
        was needed; ``x`` itself is never modified by the functions here.

    Raises
    ------
    ValueError
        If ``x`` holds floats, bools, complex or other non-integer data, or
        integers outside the int64 range.
    """
    try:
        arr = np.asarray(x)
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"{name}: cannot convert to an integer array ({exc})") from None
    kind = arr.dtype.kind
    if arr.size == 0 and not isinstance(x, np.ndarray):
        return arr.astype(np.int64)  # an empty list carries no dtype
    if kind == "i":
        return arr.astype(np.int64, copy=False)
    if kind == "u":
        if arr.size and int(arr.max()) > INT64_MAX:
            raise ValueError(
                f"{name}: value {int(arr.max())} outside the int64 range "
                f"[{INT64_MIN}, {INT64_MAX}]"
            )
        return arr.astype(np.int64)
    if kind == "O" and arr.size and all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in arr.flat
    ):
        for v in arr.flat:
            if not INT64_MIN <= int(v) <= INT64_MAX:
                raise ValueError(
                    f"{name}: value {int(v)} outside the int64 range [{INT64_MIN}, {INT64_MAX}]"
                )
        return arr.astype(np.int64)
    raise ValueError(
        f"{name} must hold integers (int8..int64 or Python int), got dtype {arr.dtype}"
    )


def check_range(x: npt.ArrayLike, bits: int, name: str = "x") -> np.ndarray:
    """Check that every value of ``x`` fits a signed ``bits``-bit integer.

    Parameters
    ----------
    x : array_like of int, any shape
    bits : int
        Signed width, 1..64: allowed range ``[-2**(bits-1), 2**(bits-1) - 1]``.
    name : str
        Argument name used in the error message.

    Returns
    -------
    numpy.ndarray of int64
        ``x`` converted (same shape), for chaining.

    Raises
    ------
    ValueError
        If ``x`` is not integer data, or if a value is out of range; the
        message names ``name``, the first bad value, its index, the number of
        bad values and the allowed range.
    """
    lo, hi = signed_range(bits)
    arr = as_int_array(x, name)
    bad = (arr < lo) | (arr > hi)
    if np.any(bad):
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        value = int(arr[idx])
        n_bad = int(np.count_nonzero(bad))
        where = f" at index {idx}" if arr.ndim else ""
        raise ValueError(
            f"{name}: value {value}{where} outside the signed {bits}-bit range "
            f"[{lo}, {hi}] ({n_bad} value(s) out of range)"
        )
    return arr


def saturate(x: npt.ArrayLike, bits: int) -> np.ndarray:
    """Clip to the signed two's-complement range of ``bits`` bits.

    ``out = min(max(x, -2**(bits-1)), 2**(bits-1) - 1)``.

    Parameters
    ----------
    x : array_like of int, any shape
        Input integers (int64 range).
    bits : int
        Output width, 1..64.

    Returns
    -------
    numpy.ndarray of int64
        Same shape as ``x``; every value fits ``bits`` signed bits.

    Raises
    ------
    TypeError, ValueError
        If ``bits`` is not an integer in ``[1, 64]`` or ``x`` is not integer data.
    """
    lo, hi = signed_range(bits)
    arr = as_int_array(x, "x")
    return np.asarray(np.clip(arr, lo, hi), dtype=np.int64)


def round_shift(x: npt.ArrayLike, shift: int) -> np.ndarray:
    """Divide by ``2**shift`` and round to nearest, ties toward +infinity.

    ``out = (x + (1 << (shift - 1))) >> shift`` (arithmetic shift) for
    ``shift > 0``; ``out = x`` for ``shift == 0``. Equivalent to
    ``floor(x / 2**shift + 1/2)``. Examples: ``round_shift(3, 1) == 2``,
    ``round_shift(-3, 1) == -1``, ``round_shift(-1, 1) == 0``,
    ``round_shift(-6, 2) == -1``. The result needs ``w - shift + 1`` bits for
    a ``w``-bit input (one more than the plain shift, only for the largest
    positive inputs); callers saturate afterwards.

    Parameters
    ----------
    x : array_like of int, any shape
        Input integers; ``x + 2**(shift-1)`` must not exceed the int64 maximum.
    shift : int
        Number of bits to drop, 0..63.

    Returns
    -------
    numpy.ndarray of int64
        Same shape as ``x``.

    Raises
    ------
    TypeError
        If ``shift`` is not an integer.
    ValueError
        If ``shift`` is negative or larger than 63, if ``x`` is not integer
        data, or if the rounding addition would overflow int64.
    """
    shift = check_int_param(shift, "shift", 0, MAX_SHIFT)
    arr = as_int_array(x, "x")
    if shift == 0:
        return np.array(arr, dtype=np.int64)
    half = 1 << (shift - 1)
    if arr.size and int(arr.max()) > INT64_MAX - half:
        raise ValueError(
            f"x: value {int(arr.max())} + 2**{shift - 1} overflows int64 in round_shift"
        )
    return np.asarray((arr + half) >> shift, dtype=np.int64)


def fixed_round(value: npt.ArrayLike, frac_bits: int) -> np.ndarray:
    """Exact ``floor(value * 2**frac_bits + 1/2)``, unsaturated, as float64 integers.

    The rounding step of :func:`to_fixed` without the saturation, for callers
    that must check a fit first (e.g. choosing a shift).

    Parameters
    ----------
    value : array_like of float, any shape
    frac_bits : int
        Number of fractional bits, 0..63.

    Returns
    -------
    numpy.ndarray of float64
        Same shape; integral values (``+-inf`` stay infinite).

    Raises
    ------
    TypeError, ValueError
        If ``frac_bits`` is out of range or ``value`` is NaN or not real.
    """
    frac_bits = check_int_param(frac_bits, "frac_bits", 0, MAX_SHIFT)
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu" or arr.dtype == np.bool_:
        raise ValueError(f"value must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if np.any(np.isnan(arr)):
        raise ValueError("value contains NaN; cannot convert to fixed point")
    scaled = np.ldexp(arr, frac_bits)  # exact: multiplication by a power of two
    with np.errstate(invalid="ignore"):
        floor = np.floor(scaled)
        # scaled - floor is exact for finite values, so the tie test is exact
        # (adding 0.5 first would round 0.49999999999999994 + 0.5 up to 1.0).
        frac = scaled - floor
    return np.where(np.isfinite(scaled), floor + (frac >= 0.5), scaled)


def to_fixed(value: npt.ArrayLike, frac_bits: int, total_bits: int) -> np.ndarray:
    """Quantize real numbers to signed fixed point with round-half-up and saturation.

    ``q = saturate(floor(value * 2**frac_bits + 1/2), total_bits)``, evaluated
    exactly (``value * 2**frac_bits`` is exact in float64; the tie test does
    not add 1/2 in floating point). ``+-inf`` saturate; NaN is an error.

    Parameters
    ----------
    value : array_like of float, any shape
        Real values.
    frac_bits : int
        Number of fractional bits, 0..63 (LSB = ``2**-frac_bits``).
    total_bits : int
        Signed width of the result, 1..63.

    Returns
    -------
    numpy.ndarray of int64
        Same shape as ``value``; range ``[-2**(total_bits-1), 2**(total_bits-1) - 1]``.

    Raises
    ------
    TypeError, ValueError
        If ``frac_bits`` or ``total_bits`` is out of range, or ``value`` is
        NaN or not real.
    """
    frac_bits = check_int_param(frac_bits, "frac_bits", 0, MAX_SHIFT)
    total_bits = check_int_param(total_bits, "total_bits", 1, MAX_BITS - 1)
    rounded = fixed_round(value, frac_bits)
    limit = math.ldexp(1.0, total_bits - 1)  # exactly representable
    clipped = np.clip(rounded, -limit, limit).astype(np.int64)
    return saturate(clipped, total_bits)


def from_fixed(q: npt.ArrayLike, frac_bits: int) -> np.ndarray:
    """Signed fixed point to float64: ``q * 2**-frac_bits``.

    Parameters
    ----------
    q : array_like of int, any shape
        Fixed-point integers (exact when ``|q| < 2**53``).
    frac_bits : int
        Number of fractional bits, 0..63.

    Returns
    -------
    numpy.ndarray of float64
        Same shape as ``q``.

    Raises
    ------
    TypeError, ValueError
        If ``frac_bits`` is out of range or ``q`` is not integer data.
    """
    frac_bits = check_int_param(frac_bits, "frac_bits", 0, MAX_SHIFT)
    arr = as_int_array(q, "q")
    return np.ldexp(arr.astype(np.float64), -frac_bits)


@dataclass(frozen=True)
class FixedFormat:
    """A signed fixed-point format: ``total_bits`` wide, ``frac_bits`` fractional.

    A value ``q`` (signed integer) stands for the real number
    ``q * 2**-frac_bits``.

    Parameters
    ----------
    total_bits : int
        Signed width in bits including the sign, 1..63.
    frac_bits : int
        Number of fractional bits, 0..63 (may exceed ``total_bits``).

    Raises
    ------
    TypeError, ValueError
        If a width is not an integer in its range.
    """

    total_bits: int
    """Signed width in bits including the sign bit, 1..63."""
    frac_bits: int
    """Number of fractional bits, 0..63; the LSB weighs ``2**-frac_bits``."""

    def __post_init__(self) -> None:
        check_int_param(self.total_bits, "total_bits", 1, MAX_BITS - 1)
        check_int_param(self.frac_bits, "frac_bits", 0, MAX_SHIFT)

    @property
    def min_int(self) -> int:
        """Most negative integer code, ``-2**(total_bits-1)``."""
        return -(1 << (self.total_bits - 1))

    @property
    def max_int(self) -> int:
        """Most positive integer code, ``2**(total_bits-1) - 1``."""
        return (1 << (self.total_bits - 1)) - 1

    @property
    def lsb(self) -> float:
        """Real value of one LSB, ``2**-frac_bits``."""
        return math.ldexp(1.0, -self.frac_bits)

    @property
    def min(self) -> float:
        """Most negative representable real value, ``min_int * lsb``."""
        return math.ldexp(float(self.min_int), -self.frac_bits)

    @property
    def max(self) -> float:
        """Most positive representable real value, ``max_int * lsb``."""
        return math.ldexp(float(self.max_int), -self.frac_bits)

    def to_fixed(self, value: npt.ArrayLike) -> np.ndarray:
        """``to_fixed(value, frac_bits, total_bits)``: real -> int64 codes."""
        return to_fixed(value, self.frac_bits, self.total_bits)

    def from_fixed(self, q: npt.ArrayLike) -> np.ndarray:
        """``from_fixed(q, frac_bits)`` after checking ``q`` fits ``total_bits``."""
        check_range(q, self.total_bits, "q")
        return from_fixed(q, self.frac_bits)

    def check(self, q: npt.ArrayLike, name: str = "q") -> np.ndarray:
        """``check_range(q, total_bits, name)``."""
        return check_range(q, self.total_bits, name)
