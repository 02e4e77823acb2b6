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
(listed in :mod:`archmodel.network`, same names, same defaults). ``inputs``
defaults to the previous layer (the first layer reads the network input, a
layer named ``input``); give ``inputs: [a, b]`` for ``add`` and ``concat``. A
list may start with ``{name: x, op: input}`` to name the input differently.
Sizes are integers > 0, pads >= 0; a size may be one integer or a list of two
(height, width); ``padding`` may also be ``[top, left, bottom, right]``. A
number such as ``eps: 1e-5``, which YAML 1.1 (PyYAML) reads as a string, is
accepted as a number. Parameters (weights) are not part of the YAML.

The structure is checked by pydantic models (one per op, selected by ``op``;
unknown keys forbidden), then by the network's own shape inference. Every
problem raises one :class:`~archmodel.network.NetworkError` whose message names
the source, the YAML path (e.g. ``layers[3].kernel_size``), the bad value and
what was expected.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from .network import (
    _ATTR_SPECS,
    _REQUIRED,
    ACTIVATIONS,
    OPS,
    Layer,
    Network,
    NetworkError,
    _as_padding,
    _bool,
    _int_any,
    _pos_int,
    _pos_pair,
    _reshape_target,
)
from .yaml_loader import load_yaml_or_raise

__all__ = ["NetworkSpec", "load_network_yaml", "network_to_yaml"]


# --------------------------------------------------------------------------------------
# field types (the checks are the network module's own, so messages agree)
# --------------------------------------------------------------------------------------


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"bad value {value!r}: expected a non-empty string")
    return value


def _inputs(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(
        isinstance(v, str) and v for v in value
    ):
        raise ValueError(
            f"bad value {value!r}: expected a layer name or a non-empty list of layer names"
        )
    return value


def _shape(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"bad value {value!r}: expected a non-empty list of positive integers")
    for v in value:
        try:
            _pos_int(v)
        except ValueError:
            raise ValueError(
                f"bad value {value!r}: expected a non-empty list of positive integers"
            ) from None
    return value


def _eps(value: Any) -> float:
    # PyYAML (YAML 1.1) reads 1e-5 (no dot) as a string; accept it as a number.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"bad value {value!r}: expected a number > 0") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"bad value {value!r}: expected a number > 0")
    return float(value)


def _number(value: Any) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"bad value {value!r}: expected a number") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"bad value {value!r}: expected a number")
    return float(value)


def _kind(value: Any) -> str:
    if value not in ACTIVATIONS:
        raise ValueError(f"bad value {value!r}: expected one of {', '.join(ACTIVATIONS)}")
    return value


def _approximate(value: Any) -> str:
    if value not in ("none", "tanh"):
        raise ValueError(f"bad value {value!r}: expected 'none' or 'tanh'")
    return value


Name = Annotated[str, BeforeValidator(_name)]
Inputs = Annotated[list[str], BeforeValidator(_inputs)]
PosInt = Annotated[int, BeforeValidator(_pos_int)]
Size2 = Annotated[tuple[int, int], BeforeValidator(_pos_pair)]
Pad4 = Annotated[tuple[int, int, int, int], BeforeValidator(_as_padding)]
Bool = Annotated[bool, BeforeValidator(_bool)]
Eps = Annotated[float, BeforeValidator(_eps)]
Number = Annotated[float, BeforeValidator(_number)]
Int = Annotated[int, BeforeValidator(_int_any)]


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


class ConvSpec(_LayerSpec):
    """2-D convolution; weight (C_out, C_in/groups, kh, kw)."""

    op: Literal["conv"]
    out_channels: PosInt = Field(description="output channels C_out")
    kernel_size: Size2 = Field(description="kernel size k or [kh, kw]")
    stride: Size2 = Field(1, description="stride s or [sh, sw]")
    padding: Pad4 = Field(0, description="zero padding p, [ph, pw] or [top, left, bottom, right]")
    dilation: Size2 = Field(1, description="dilation d or [dh, dw]")
    groups: PosInt = Field(1, description="groups; divides C_in and C_out")
    bias: Bool = Field(True, description="has a bias")
    in_channels: PosInt | None = Field(None, description="optional check of the input channels")


class LinearSpec(_LayerSpec):
    """Fully connected layer on a vector (F,); weight (out, in)."""

    op: Literal["linear"]
    out_features: PosInt = Field(description="output features")
    bias: Bool = Field(True, description="has a bias")
    in_features: PosInt | None = Field(None, description="optional check of the input features")


class BatchNormSpec(_LayerSpec):
    """Batch normalization in inference mode over the channel axis."""

    op: Literal["batchnorm"]
    eps: Eps = Field(1e-5, description="added to the variance")


class ActivationSpec(_LayerSpec):
    """Element-wise activation."""

    op: Literal["activation"]
    kind: Annotated[str, BeforeValidator(_kind)] = Field(description="activation kind")
    alpha: Number | None = Field(None, description="negative slope (leaky_relu only; 0.01)")
    approximate: Annotated[str, BeforeValidator(_approximate)] | None = Field(
        None, description="'none' or 'tanh' (gelu only)"
    )


class MaxPoolSpec(_LayerSpec):
    """Max pooling (ceil_mode False)."""

    op: Literal["maxpool"]
    kernel: Size2 = Field(description="window k or [kh, kw]")
    stride: Size2 | None = Field(None, description="stride; default: the kernel")
    padding: Pad4 = Field(0, description="padding, each side smaller than the kernel")


class AvgPoolSpec(MaxPoolSpec):
    """Average pooling (ceil_mode False)."""

    op: Literal["avgpool"]  # type: ignore[assignment]
    count_include_pad: Bool = Field(False, description="divide by kh·kw (true) or by real cells")


class GlobalAvgPoolSpec(_LayerSpec):
    """Global average pooling (C, H, W) -> (C,)."""

    op: Literal["global_avgpool"]


class AddSpec(_LayerSpec):
    """Element-wise sum of equal-shape inputs."""

    op: Literal["add"]


class ConcatSpec(_LayerSpec):
    """Concatenation along an axis (0 = channels)."""

    op: Literal["concat"]
    axis: Int = Field(0, description="axis, batch excluded")


class FlattenSpec(_LayerSpec):
    """C-order flatten to a vector."""

    op: Literal["flatten"]


class ReshapeSpec(_LayerSpec):
    """Reshape (batch excluded)."""

    op: Literal["reshape"]
    shape: Annotated[tuple[int, ...], BeforeValidator(_reshape_target)] = Field(
        description="target shape, at most one -1"
    )


_SPECS: dict[str, type[BaseModel]] = {
    "input": InputSpec,
    "conv": ConvSpec,
    "linear": LinearSpec,
    "batchnorm": BatchNormSpec,
    "activation": ActivationSpec,
    "maxpool": MaxPoolSpec,
    "avgpool": AvgPoolSpec,
    "global_avgpool": GlobalAvgPoolSpec,
    "add": AddSpec,
    "concat": ConcatSpec,
    "flatten": FlattenSpec,
    "reshape": ReshapeSpec,
}
assert set(_SPECS) == set(OPS)

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


def _path(loc: tuple[Any, ...]) -> str:
    # Drop the discriminator tag pydantic inserts after a list index: layers.3.conv.x.
    parts = list(loc)
    if len(parts) > 2 and parts[0] == "layers" and isinstance(parts[1], int):
        del parts[2]
    out = ""
    for item in parts:
        out += f"[{item}]" if isinstance(item, int) else (f".{item}" if out else str(item))
    return out or "(top level)"


def _format(err: dict[str, Any], data: Any) -> str:
    loc = tuple(err["loc"])
    path = _path(loc)
    value = err.get("input")
    typ = err["type"]
    ctx = err.get("ctx") or {}
    if typ == "union_tag_invalid":
        close = difflib.get_close_matches(str(ctx.get("tag")), OPS, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return (f"{path}.op: bad value {value.get('op')!r}: unknown op; expected one of "
                f"{', '.join(OPS)}{hint}")
    if typ == "union_tag_not_found":
        return f"{path}: missing key 'op'; expected one of {', '.join(OPS)}"
    if typ == "model_attributes_type":
        return f"{path}: bad value {value!r}: expected a mapping such as {{name: ..., op: ...}}"
    if typ == "extra_forbidden":
        key = str(loc[-1])
        model: type[BaseModel] = NetworkSpec
        if len(loc) > 2 and loc[0] == "layers":
            model = _SPECS.get(str(loc[2]), NetworkSpec)
        allowed = [k for k in model.model_fields]
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        what = f" for op {loc[2]!r}" if model is not NetworkSpec else ""
        return (f"{path}: unknown key{what} (value {value!r}); expected one of "
                f"{', '.join(allowed)}{hint}")
    if typ == "missing":
        return f"{path}: missing required key"
    if typ == "too_short" and loc == ("layers",):
        return f"{path}: bad value {value!r}: expected a non-empty list of layers"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        return f"{path}: {msg[len('Value error, '):]}"
    if msg.startswith("Input should be "):
        msg = "expected " + msg[len("Input should be "):]
    return f"{path}: bad value {value!r}: {msg}"


def _validate(data: Any, origin: str) -> NetworkSpec:
    if data is None:
        raise NetworkError(
            f"{origin}: empty network description; expected a YAML mapping with keys {_TOP_KEYS}"
        )
    if isinstance(data, str) and "\n" not in data.strip():
        raise NetworkError(
            f"{origin}: (top level): bad value {data!r}: expected a YAML mapping with keys "
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
        raise NetworkError(f"{origin}: {_format(errors[0], data)}{more}") from None


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
            note = f" (inputs not given: they default to the previous layer {prev!r})"
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
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise NetworkError(f"{origin}: cannot read file: {exc}") from None
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
        spec = _ATTR_SPECS[layer.op]
        for key, value in layer.attrs.items():
            default = spec[key][0]
            if default is _REQUIRED:
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
