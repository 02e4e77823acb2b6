"""Pack and unpack Python values to/from the flat bit vectors of Amaranth layouts.

Amaranth exports a stream payload shaped by an ``amaranth.lib.data`` layout as
one Verilog port (``<stream>__payload``). Testbenches drive and sample that
port as an integer; these helpers convert between the integer and nested
Python values (dicts for structs, lists for arrays, signed ints for signed
shapes) using the layout itself, so the testbench never hard-codes a bit
offset.
"""

from __future__ import annotations

from typing import Any

from amaranth.hdl import Shape, ShapeCastable
from amaranth.lib import data

__all__ = ["pack", "unpack", "width_of"]


def width_of(layout: Any) -> int:
    """Bit width of a layout or shape."""
    return Shape.cast(layout).width


def _field_items(layout: data.Layout):
    if isinstance(layout, data.ArrayLayout):
        for i in range(layout.length):
            yield i, layout[i]
    else:
        yield from iter(layout)


def pack(layout: Any, value: Any) -> int:
    """Pack ``value`` (int, dict for structs, list for arrays) into an unsigned integer.

    Raises
    ------
    ValueError
        If an integer does not fit its field, or a struct field is missing.
    """
    if isinstance(layout, ShapeCastable) and not isinstance(layout, data.Layout):
        layout = layout.as_shape() if hasattr(layout, "as_shape") else layout
    if isinstance(layout, data.Layout):
        out = 0
        for key, field in _field_items(layout):
            if isinstance(value, dict):
                if key not in value:
                    raise ValueError(f"missing field '{key}'")
                v = value[key]
            else:
                v = value[key]
            out |= pack(field.shape, v) << field.offset
        return out
    shape = Shape.cast(layout)
    v = int(value)
    lo, hi = (-(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1) if shape.signed else (0, (1 << shape.width) - 1)
    if not lo <= v <= hi:
        raise ValueError(f"value {v} does not fit {shape}")
    return v & ((1 << shape.width) - 1)


def unpack(layout: Any, raw: int) -> Any:
    """Inverse of :func:`pack`: dict for structs, list for arrays, int otherwise."""
    raw = int(raw)
    if isinstance(layout, data.Layout):
        items = [(key, unpack(field.shape, raw >> field.offset)) for key, field in _field_items(layout)]
        if isinstance(layout, data.ArrayLayout):
            return [v for _, v in items]
        return dict(items)
    shape = Shape.cast(layout)
    v = raw & ((1 << shape.width) - 1)
    if shape.signed and v >> (shape.width - 1):
        v -= 1 << shape.width
    return v
