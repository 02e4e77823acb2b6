"""Fixed-point helpers for Amaranth (combinational, on Values).

Amaranth 0.5 has no ``amaranth.lib.fixed``; these few functions build the
rounding and saturation logic of the digital periphery. Their Python reference
is :mod:`archmodel.fixedpoint` (``round_shift``, ``saturate``), which defines
rounding and saturation for the whole project; ``tests/test_rtl_affine.py``
checks them exhaustively against it on small widths.

All functions take signed :class:`~amaranth.hdl.Value` operands and return a
new (combinational) Value; none registers anything. Amaranth arithmetic widens
(``a + b`` is one bit wider than the wider operand), so the results are wide
enough to be exact; narrow explicitly with :func:`saturate`.
"""

from __future__ import annotations

from amaranth.hdl import Const, Mux, Value, ValueLike, signed

__all__ = ["relu", "round_shift", "round_shift_finish", "round_shift_start", "saturate", "to_dac_code"]


def round_shift(value: ValueLike, shift: ValueLike | int) -> Value:
    """Divide by ``2**shift`` and round half toward +infinity (exact).

    Python reference: :func:`archmodel.fixedpoint.round_shift`,
    ``(x + 2**(shift-1)) >> shift`` for ``shift > 0``, ``x`` for ``shift == 0``.

    For a constant ``shift`` the hardware is that add-then-arithmetic-shift.
    For a variable ``shift`` it is ``(((x << 1) >> shift) + 1) >> 1``, which
    gives the same integer for every ``shift >= 0`` (``floor((floor(a) + 1)/2)
    == floor((a + 1)/2)`` with ``a = x / 2**(shift-1)``) without a
    ``2**(shift-1)`` constant as wide as the shifter, and needs no special
    case for ``shift == 0``.

    Parameters
    ----------
    value : signed Value, ``w`` bits
        The number to round.
    shift : int or unsigned Value
        Bits to drop (a constant ``>= 0`` or a variable amount).

    Returns
    -------
    signed Value
        ``w + 1`` bits (one more than a plain shift: the largest positive
        inputs round up); callers saturate afterwards.

    Raises
    ------
    TypeError
        If ``value`` is not signed.
    ValueError
        If a constant ``shift`` is negative.
    """
    value = Value.cast(value)
    if not value.shape().signed:
        raise TypeError(f"round_shift needs a signed value, got {value.shape()!r}")
    width = value.shape().width
    if isinstance(shift, int):
        if shift < 0:
            raise ValueError(f"round_shift: shift must be >= 0, got {shift}")
        if shift == 0:
            return value
        return ((value + (1 << (shift - 1))) >> shift).as_signed()
    return round_shift_finish(round_shift_start(value, shift), width)


def round_shift_start(value: ValueLike, shift: ValueLike) -> Value:
    """First half of a variable :func:`round_shift`: ``floor(2 * value / 2**shift)``.

    The barrel shifter alone, so that a pipeline can register between it and
    :func:`round_shift_finish` (``round_shift(x, s) ==
    round_shift_finish(round_shift_start(x, s), len(x))``).

    Returns
    -------
    signed Value, ``w + 1`` bits
        (``w`` the width of ``value``).

    Raises
    ------
    TypeError
        If ``value`` is not signed or ``shift`` is signed.
    """
    value = Value.cast(value)
    if not value.shape().signed:
        raise TypeError(f"round_shift needs a signed value, got {value.shape()!r}")
    shift = Value.cast(shift)
    if shift.shape().signed:
        raise TypeError(f"round_shift needs an unsigned shift amount, got {shift.shape()!r}")
    doubled = (value << 1).as_signed()                  # w + 1 bits, exact
    return (doubled >> shift).as_signed()               # arithmetic: floor(2x / 2**shift)


def round_shift_finish(floored: ValueLike, width: int) -> Value:
    """Second half of a variable :func:`round_shift`: ``floor((floored + 1) / 2)``.

    Parameters
    ----------
    floored : signed Value
        The result of :func:`round_shift_start` (``width + 1`` bits).
    width : int
        Width of the value given to :func:`round_shift_start`.

    Returns
    -------
    signed Value, ``width + 1`` bits
    """
    floored = Value.cast(floored)
    if not floored.shape().signed:
        raise TypeError(f"round_shift_finish needs a signed value, got {floored.shape()!r}")
    return ((floored + 1) >> 1)[:width + 1].as_signed()


def saturate(value: ValueLike, bits: int) -> Value:
    """Clip a signed value to the signed ``bits``-bit range.

    Python reference: :func:`archmodel.fixedpoint.saturate`,
    ``min(max(x, -2**(bits-1)), 2**(bits-1) - 1)``.

    Parameters
    ----------
    value : signed Value
    bits : int
        Output width, >= 1.

    Returns
    -------
    signed Value, ``bits`` bits

    Raises
    ------
    TypeError
        If ``value`` is not signed.
    ValueError
        If ``bits`` < 1.
    """
    value = Value.cast(value)
    if not value.shape().signed:
        raise TypeError(f"saturate needs a signed value, got {value.shape()!r}")
    if bits < 1:
        raise ValueError(f"saturate: bits must be >= 1, got {bits}")
    if value.shape().width <= bits:
        return value.as_signed()
    lo = Const(-(1 << (bits - 1)), signed(bits))
    hi = Const((1 << (bits - 1)) - 1, signed(bits))
    # in range <=> bits [bits-1:] are all equal (all sign): a reduction, no
    # magnitude comparators (two carry chains); out of range, the sign picks the end
    top = value[bits - 1:]
    in_range = (top == 0) | (top == (1 << len(top)) - 1)
    clipped = Mux(in_range, value[:bits], Mux(value[-1], lo, hi))
    return clipped[:bits].as_signed()


def relu(value: ValueLike) -> Value:
    """``max(value, 0)`` of a signed value (same width, still signed)."""
    value = Value.cast(value)
    if not value.shape().signed:
        raise TypeError(f"relu needs a signed value, got {value.shape()!r}")
    return Mux(value[-1], 0, value).as_signed()[:value.shape().width].as_signed()


def to_dac_code(act: ValueLike, dac_bits: int, act_bits: int = 8) -> Value:
    """Map a signed ``act_bits`` activation to a signed ``dac_bits`` DAC code.

    Python reference: :func:`archmodel.golden.tile_controller.dac_codes`: identity when
    ``dac_bits == act_bits``, else ``saturate(round_shift(x, act_bits - dac_bits), dac_bits)``.

    Returns
    -------
    signed Value, ``dac_bits`` bits

    Raises
    ------
    ValueError
        If ``dac_bits`` is not in ``[2, act_bits]``.
    """
    if not 2 <= dac_bits <= act_bits:
        raise ValueError(f"to_dac_code: dac_bits must be in [2, {act_bits}], got {dac_bits}")
    act = Value.cast(act)
    if dac_bits == act_bits:
        return act.as_signed()
    return saturate(round_shift(act.as_signed(), act_bits - dac_bits), dac_bits)
