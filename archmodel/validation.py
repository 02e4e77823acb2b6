"""One-line messages for pydantic validation errors: YAML path, bad value, what was expected.

Both YAML inputs, chip descriptions (:mod:`archmodel.spec`) and network layer
lists (:mod:`archmodel.network.yaml_io`), turn the first pydantic error into one
line with :func:`format_validation_error`. The two inputs keep their historical
wording (``dialect``), which the CLI and tests check byte for byte:

- ``"chip"``: unknown keys list ``expected one of: a, b`` and hint units
  (``did you mean 'g_max_us'?``); a bad value ends with the field description;
- ``"network"``: ``op`` tags, missing keys and empty layer lists have their own
  messages; a normalizer's message (``bad value ...: expected ...``) is used as is.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel

__all__ = ["excerpt", "format_validation_error", "loc_path"]

#: Longest quote of a bad value in an error message, in characters (a hostile
#: file once produced a 312 MB error line).
EXCERPT_CHARS = 60


def excerpt(value: Any, limit: int = EXCERPT_CHARS) -> str:
    """``repr(value)`` cut to at most ``limit`` characters (``'xxx…' (2,003 chars)``).

    Containers are cut while they are rendered (``reprlib``), so a huge value costs
    no more than its excerpt.
    """
    import reprlib

    r = reprlib.Repr()
    r.maxstring = r.maxother = limit
    r.maxlist = r.maxtuple = r.maxdict = r.maxset = 6
    r.maxlevel = 3
    text = r.repr(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if isinstance(value, str) and len(value) > limit:
        text += f" ({len(value):,} chars)"
    return text


def loc_path(loc: Sequence[Any]) -> str:
    """``("layers", 3, "kernel_size")`` -> ``layers[3].kernel_size``; empty -> ``(top level)``."""
    out = ""
    for item in loc:
        out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else str(item))
    return out or "(top level)"


def _strip(msg: str, prefix: str) -> str | None:
    return msg[len(prefix):] if msg.startswith(prefix) else None


def format_validation_error(err: Mapping[str, Any], *, loc: Sequence[Any], model: type[BaseModel] | None,
                            dialect: Literal["chip", "network"], ops: Sequence[str] = (),
                            unknown_key_note: str = "") -> str:
    """One line (without the origin) describing one pydantic error.

    Parameters
    ----------
    err : mapping
        One entry of ``ValidationError.errors()``.
    loc : sequence
        ``err["loc"]`` with the caller's internal tags removed (pydantic's
        ``function-after`` step, the union discriminator after a list index).
    model : pydantic model class or None
        The model that holds the failing key (for the allowed keys and the
        field description); None if unknown.
    dialect : {"chip", "network"}
        Wording, see the module docstring.
    ops : sequence of str
        The allowed ``op`` tags (network dialect).
    unknown_key_note : str
        Inserted after "unknown key" (network dialect), e.g. `` for op 'conv'``.
    """
    loc = tuple(loc)
    path = loc_path(loc)
    value = err.get("input")
    typ = err["type"]
    ctx = err.get("ctx") or {}
    network = dialect == "network"
    if network and typ == "union_tag_invalid":
        close = difflib.get_close_matches(str(ctx.get("tag")), ops, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return (f"{path}.op: bad value {excerpt(value.get('op'))}: unknown op; expected one of "
                f"{', '.join(ops)}{hint}")
    if network and typ == "union_tag_not_found":
        return f"{path}: missing key 'op'; expected one of {', '.join(ops)}"
    if network and typ == "model_attributes_type":
        return f"{path}: bad value {excerpt(value)}: expected a mapping such as {{name: ..., op: ...}}"
    if typ == "extra_forbidden":
        fields = model.model_fields if model is not None else {}
        if network:
            key = str(loc[-1])
            allowed = list(fields)
            close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            return (f"{path}: unknown key{unknown_key_note} (value {excerpt(value)}); expected one of "
                    f"{', '.join(allowed)}{hint}")
        key = str(loc[-1]) if loc else "?"
        valid = [k for k in fields if k != "sources"]
        hint = ""
        unit_like = [k for k in valid if k.startswith(key + "_")]
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
        if unit_like:
            hint = f"; keys carry their unit, did you mean '{unit_like[0]}'?"
        elif close:
            hint = f"; did you mean '{close[0]}'?"
        return f"{path}: unknown key (value {excerpt(value)}); expected one of: {', '.join(valid)}{hint}"
    if typ == "missing":  # never echo the enclosing mapping (once: the whole file on one line)
        return f"{path}: missing required key"
    if network and typ == "too_short" and loc == ("layers",):
        return f"{path}: bad value {excerpt(value)}: expected a non-empty list of layers"
    msg = err["msg"]
    stripped = _strip(msg, "Value error, ")
    if network:
        if stripped is not None:
            return f"{path}: {stripped}"
        expected = _strip(msg, "Input should be ")
        if expected is not None:
            msg = "expected " + expected
        return f"{path}: bad value {excerpt(value)}: {msg}"
    if stripped is not None:
        msg = stripped
    desc = ""
    if model is not None and loc and isinstance(loc[-1], str) and loc[-1] in model.model_fields:
        d = model.model_fields[loc[-1]].description
        if d:
            desc = f" ({d})"
    if isinstance(value, dict) and typ == "value_error":  # a cross-field check: the message names the fields
        return f"{path}: {msg}"
    return f"{path}: bad value {excerpt(value)}: {msg}{desc}"
