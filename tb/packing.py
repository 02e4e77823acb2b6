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


#: Compiled codecs by ``id(layout)`` (the layout is kept so that its id is not reused).
_CODECS: dict[int, tuple[Any, Any, Any]] = {}


def _plan(layout: Any, base: int = 0):
    """The layout as a tree of leaves ``("int", offset, width, signed)``, ``("struct", [(key, plan)])``,
    ``("array", [plan])``: the introspection :func:`pack` / :func:`unpack` do once per layout."""
    if isinstance(layout, ShapeCastable) and not isinstance(layout, data.Layout):
        layout = layout.as_shape() if hasattr(layout, "as_shape") else layout
    if isinstance(layout, data.Layout):
        items = [(key, _plan(field.shape, base + field.offset)) for key, field in _field_items(layout)]
        if isinstance(layout, data.ArrayLayout):
            return ("array", [p for _, p in items])
        return ("struct", items)
    shape = Shape.cast(layout)
    return ("int", base, shape.width, shape.signed)


def _compile(plan):
    """(pack, unpack) closures for one plan; an array of equal integer leaves becomes one comprehension."""
    kind = plan[0]
    if kind == "int":
        _, off, width, signed = plan
        mask = (1 << width) - 1
        lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if signed else (0, mask)
        sign = 1 << (width - 1)

        def p_int(v: Any) -> int:
            v = int(v)
            if not lo <= v <= hi:
                raise ValueError(f"value {v} does not fit {'signed' if signed else 'unsigned'}({width})")
            return (v & mask) << off

        if signed:
            def u_int(raw: int) -> int:
                v = (raw >> off) & mask
                return v - (sign << 1) if v & sign else v
        else:
            def u_int(raw: int) -> int:
                return (raw >> off) & mask
        return p_int, u_int
    if kind == "array":
        subs = [_compile(p) for p in plan[1]]
        packs, unpacks = [a for a, _ in subs], [b for _, b in subs]

        def p_arr(value: Any) -> int:
            out = 0
            for f, v in zip(packs, value, strict=False):
                out |= f(v)
            if len(value) < len(packs):
                raise ValueError(f"array of {len(packs)} elements, got {len(value)}")
            return out

        def u_arr(raw: int) -> list:
            return [f(raw) for f in unpacks]
        return p_arr, u_arr
    keys = [k for k, _ in plan[1]]
    subs = [_compile(p) for _, p in plan[1]]

    def p_struct(value: Any) -> int:
        out = 0
        for k, (f, _) in zip(keys, subs, strict=True):
            if isinstance(value, dict) and k not in value:
                raise ValueError(f"missing field '{k}'")
            out |= f(value[k])
        return out

    def u_struct(raw: int) -> dict:
        return {k: u(raw) for k, (_, u) in zip(keys, subs, strict=True)}
    return p_struct, u_struct


def _codec(layout: Any):
    entry = _CODECS.get(id(layout))
    if entry is None or entry[0] is not layout:
        entry = (layout, *_compile(_plan(layout)))
        _CODECS[id(layout)] = entry
    return entry


def pack(layout: Any, value: Any) -> int:
    """Pack ``value`` (int, dict for structs, list for arrays) into an unsigned integer.

    The layout is introspected once (a compiled codec per layout object, :func:`_plan`).

    Raises
    ------
    ValueError
        If an integer does not fit its field, or a struct field is missing.
    """
    return _codec(layout)[1](value)


def unpack(layout: Any, raw: int) -> Any:
    """Inverse of :func:`pack`: dict for structs, list for arrays, int otherwise."""
    return _codec(layout)[2](int(raw))
