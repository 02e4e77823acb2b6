"""YAML layer lists: a network sketched by hand, validated, turned into a :class:`Network`.

Format::

    name: example-cnn
    input_shape: [3, 32, 32]          # batch excluded: (C, H, W) or (F,)
    layers:
      - {name: conv1, op: conv, out_channels: 16, kernel_size: 3, padding: 1}
      - {name: bn1, op: batchnorm}
      - {name: relu1, op: activation, kind: relu}
      - {name: pool, op: global_avgpool}
      - {name: fc, op: linear, out_features: 10}

Every layer has ``name`` and ``op``; its other keys are the op's attributes
(listed in :mod:`archmodel.network.schema`, same names, same defaults). ``inputs``
defaults to the previous layer (the first layer reads the network input, a
layer named ``input``); give ``inputs: [a, b]`` for ``add`` and ``concat``. A
list may start with ``{name: x, op: input}`` to name the input differently.
Sizes are integers > 0, pads >= 0; a size may be one integer or a list of two
(height, width); ``padding`` may also be ``[top, left, bottom, right]``. A
number such as ``eps: 1e-5``, which YAML 1.1 (PyYAML) reads as a string, is
accepted as a number. Parameters (weights) are not part of the YAML.

The structure is checked by pydantic models (one per op, selected by ``op``;
unknown keys forbidden), then by the network's own shape inference. Every
problem raises one :class:`~archmodel.network.schema.NetworkError` whose message names
the source, the YAML path (e.g. ``layers[3].kernel_size``), the bad value and
what was expected.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

from archmodel.network.ir import Layer, Network
from archmodel.network.schema import (
    ATTR_SPECS,
    KIND_ATTRS,
    OPS,
    REQUIRED,
    NetworkError,
    as_float,
    pos_float,
    pos_int,
)
from archmodel.validation import excerpt, format_validation_error
from archmodel.yaml_loader import load_yaml_or_raise, read_yaml_file

__all__ = ["NetworkSpec", "load_network_yaml", "network_to_yaml"]


# --------------------------------------------------------------------------------------
# field types: the schema's own normalizers (archmodel.network.schema), so messages agree
# --------------------------------------------------------------------------------------


#: Longest layer or network name (assumed; names are quoted in every message about the layer).
MAX_NAME_CHARS = 128


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"bad value {excerpt(value)}: expected a non-empty string")
    if len(value) > MAX_NAME_CHARS:
        raise ValueError(f"bad value {excerpt(value)}: expected a name of at most {MAX_NAME_CHARS} characters")
    return value


def _inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(
        isinstance(v, str) and v for v in value
    ):
        raise ValueError(
            f"bad value {excerpt(value)}: expected a layer name or a non-empty list of layer names"
        )
    return value


def _shape(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"bad value {excerpt(value)}: expected a non-empty list of positive integers")
    for v in value:
        try:
            pos_int(v)
        except ValueError:
            raise ValueError(
                f"bad value {excerpt(value)}: expected a non-empty list of positive integers"
            ) from None
    return value


def _yaml_check(key: str, default: Any, norm: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """The schema normalizer of one attribute, as the YAML reads it.

    PyYAML (YAML 1.1) reads ``1e-5`` (no dot) as a string: number attributes accept
    numeric strings. ``null`` is accepted where the schema's default is ``None``
    and for the kind-specific activation attributes (the IR then reports them).
    """
    allow_none = default is None or key in KIND_ATTRS
    number = norm in (pos_float, as_float)

    def check(value: Any) -> Any:
        if value is None and allow_none:
            return None
        if number and isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                pass
        return norm(value)

    return check


Name = Annotated[str, BeforeValidator(_name)]
Inputs = Annotated[list[str], BeforeValidator(_inputs)]


class _LayerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="unique layer name")
    inputs: Inputs | None = Field(
        None, description="input layer names; default: the previous layer"
    )


class InputSpec(BaseModel):
    """The network input (optional first entry, to give the input a name)."""

    model_config = ConfigDict(extra="forbid")
    name: Name
    op: Literal["input"]


def _layer_model(op: str) -> type[BaseModel]:
    """The pydantic model of one op, generated from :data:`archmodel.network.schema.ATTR_SPECS`."""
    fields: dict[str, Any] = {"op": (Literal[op], ...)}
    for key, (default, norm) in ATTR_SPECS[op].items():
        typ = Annotated[Any, BeforeValidator(_yaml_check(key, default, norm))]
        fields[key] = (typ, ... if default is REQUIRED else None)
    title = "".join(part.capitalize() for part in op.split("_")) + "Spec"
    return create_model(title, __base__=_LayerSpec, **fields)


_SPECS: dict[str, type[BaseModel]] = {
    op: InputSpec if op == "input" else _layer_model(op) for op in OPS
}

LayerSpec = Annotated[
    Union[tuple(_SPECS.values())],  # noqa: UP007 - a runtime tuple of classes
    Field(discriminator="op"),
]


class NetworkSpec(BaseModel):
    """Top level of a network YAML file."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="network name")
    input_shape: Annotated[list[int], BeforeValidator(_shape)] = Field(
        description="input sample shape, batch excluded: [C, H, W] or [F]"
    )
    layers: list[LayerSpec] = Field(min_length=1, description="layers in topological order")


_TOP_KEYS = ", ".join(NetworkSpec.model_fields)


# --------------------------------------------------------------------------------------
# error formatting
# --------------------------------------------------------------------------------------


def _format(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    model: type[BaseModel] = NetworkSpec
    if err["type"] == "extra_forbidden" and len(loc) > 2 and loc[0] == "layers":
        model = _SPECS.get(str(loc[2]), NetworkSpec)
    note = f" for op {excerpt(loc[2])}" if model is not NetworkSpec else ""
    # Drop the discriminator tag pydantic inserts after a list index: layers.3.conv.x.
    if len(loc) > 2 and loc[0] == "layers" and isinstance(loc[1], int):
        loc = loc[:2] + loc[3:]
    return format_validation_error(err, loc=loc, model=model, dialect="network", ops=OPS,
                                   unknown_key_note=note)


def _validate(data: Any, origin: str) -> NetworkSpec:
    if data is None:
        raise NetworkError(
            f"{origin}: empty network description; expected a YAML mapping with keys {_TOP_KEYS}"
        )
    if isinstance(data, str) and "\n" not in data.strip():
        raise NetworkError(
            f"{origin}: (top level): bad value {excerpt(data)}: expected a YAML mapping with keys "
            f"{_TOP_KEYS} (if this is a file path, no such file exists)"
        )
    if not isinstance(data, dict):
        raise NetworkError(
            f"{origin}: (top level): bad value of type {type(data).__name__}: expected a YAML "
            f"mapping with keys {_TOP_KEYS}"
        )
    try:
        return NetworkSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise NetworkError(f"{origin}: {_format(errors[0])}{more}") from None


# --------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------


def _build(spec: NetworkSpec, origin: str) -> Network:
    layers: list[Layer] = []
    implicit: list[bool] = []
    specs = list(spec.layers)
    offset = 0
    if not isinstance(specs[0], InputSpec):
        layers.append(Layer("input", "input"))
        offset = 1
    for i, ls in enumerate(specs):
        where = f"{origin}: layers[{i}]"
        if isinstance(ls, InputSpec):
            if i:
                raise NetworkError(f"{where}.op: an input layer may only be the first entry",
                                   layer=ls.name, index=i + offset, key="op")
            layers.append(Layer(ls.name, "input"))
            implicit.append(False)
            continue
        if offset and ls.name == "input":
            raise NetworkError(
                f"{where}.name: bad value 'input': the name is reserved for the network input "
                "(start the list with {name: ..., op: input} to rename it)",
                layer=ls.name, index=i + offset, key="name")
        fields = ls.model_dump(exclude_unset=True)
        name, op = fields.pop("name"), fields.pop("op")
        inputs = fields.pop("inputs", None)
        implicit.append(inputs is None)
        if inputs is None:
            inputs = [layers[-1].name]
        try:
            layers.append(Layer(name, op, tuple(inputs), fields))
        except NetworkError as exc:
            raise NetworkError(f"{where}.{exc.key or 'op'}: {exc}", layer=name,
                               index=i + offset, key=exc.key) from None
    try:
        return Network(spec.name, tuple(spec.input_shape), layers)
    except NetworkError as exc:
        if exc.index is None or exc.index < offset:
            raise NetworkError(f"{origin}: {exc}") from None
        i = exc.index - offset
        key = exc.key or "op"
        note = ""
        if key == "inputs" and implicit[i]:
            prev = layers[exc.index - 1].name
            note = f" (inputs not given: they default to the previous layer {excerpt(prev)})"
        raise NetworkError(f"{origin}: layers[{i}].{key}: {exc}{note}", layer=exc.layer,
                           index=i, key=key) from None


def load_network_yaml(source: str | os.PathLike[str], *, origin: str | None = None) -> Network:
    """Load a network from a YAML layer list (a file path or the YAML text itself).

    Parameters
    ----------
    source : str or path-like
        A ``pathlib.Path``/``os.PathLike``, or a string: a one-line string that
        ends in ``.yaml``/``.yml`` or names an existing file is read as a path,
        anything else is YAML text.
    origin : str, optional
        Name used in error messages; default: the path, or ``<yaml text>``.

    Returns
    -------
    Network

    Raises
    ------
    NetworkError
        One message naming the origin, the YAML path (e.g. ``layers[3].kernel_size``),
        the bad value and what was expected: unreadable file, YAML that does not
        parse, empty document, unknown op or key, wrong type, size <= 0, unknown
        input name, shape mismatch, ...
    """
    if isinstance(source, os.PathLike) or (
        isinstance(source, str) and "\n" not in source
        and (source.endswith((".yaml", ".yml")) or Path(source).is_file())
    ):
        path = Path(source)
        origin = origin or str(path)
        if not path.is_file():
            raise NetworkError(f"{origin}: no such file; expected a network YAML file")
        text = read_yaml_file(path, origin, NetworkError)
    elif isinstance(source, str):
        text = source
        origin = origin or "<yaml text>"
    else:
        raise NetworkError(f"load_network_yaml expects a path or YAML text, got "
                           f"{type(source).__name__}")
    data = load_yaml_or_raise(text, origin, NetworkError)
    return _build(_validate(data, origin), origin)


# --------------------------------------------------------------------------------------
# dumping
# --------------------------------------------------------------------------------------


def _compact(key: str, value: Any) -> Any:
    if key == "padding":
        t, left, b, r = value
        if t == left == b == r:
            return t
        if (t, left) == (b, r):
            return [t, left]
        return [t, left, b, r]
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == value[1] and key != "shape":
            return value[0]
        return list(value)
    return value


def network_to_yaml(net: Network) -> str:
    """The YAML layer list of ``net`` (structure only, no parameters).

    Attributes equal to their defaults are left out, as are ``inputs`` equal to
    the previous layer; ``load_network_yaml(network_to_yaml(net))`` gives a
    network with the same names, ops, inputs and attributes.
    """
    lines = [yaml.safe_dump({"name": net.name}, sort_keys=False).rstrip(),
             f"input_shape: [{', '.join(str(s) for s in net.input_shape)}]",
             "layers:"]
    prev = None
    for layer in net.layers:
        if layer.op == "input":
            if layer.name != "input":
                d = {"name": layer.name, "op": "input"}
                lines.append("  - " + yaml.safe_dump(d, default_flow_style=True,
                                                     sort_keys=False, width=1 << 16).strip())
            prev = layer.name
            continue
        d: dict[str, Any] = {"name": layer.name, "op": layer.op}
        if layer.inputs != (prev,):
            d["inputs"] = list(layer.inputs)
        spec = ATTR_SPECS[layer.op]
        for key, value in layer.attrs.items():
            default = spec[key][0]
            if default is REQUIRED:
                d[key] = _compact(key, value)
                continue
            if default is None and key == "stride":
                default = layer.attrs["kernel"]
            elif default is not None:
                default = spec[key][1](default)
            if value != default:
                d[key] = _compact(key, value)
        lines.append("  - " + yaml.safe_dump(d, default_flow_style=True, sort_keys=False,
                                             width=1 << 16).strip())
        prev = layer.name
    return "\n".join(lines) + "\n"
