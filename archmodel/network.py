"""Network IR: a DAG of layers in topological order, shape inference, counts, reference forward.

Both the architectural mapper and the accuracy evaluator consume this IR. A
:class:`Network` is an ordered tuple of :class:`Layer` objects; each layer names
the layers it reads (``inputs``), and every input must be defined earlier in the
list (topological order). The first layer is the network input (op ``input``);
the output of the network is the output of the last layer.

Shapes exclude the batch dimension: activations are ``(C, H, W)`` for feature
maps or ``(F,)`` for vectors. Shape inference runs when a network is built and
fills each layer's ``input_shapes`` and ``output_shape``.

Ops and their attributes (canonical form after normalization)
-------------------------------------------------------------
``input``
    none (the shape is ``Network.input_shape``).
``conv``
    ``out_channels`` (int), ``kernel_size`` (kh, kw), ``stride`` (sh, sw) = 1,
    ``padding`` (top, left, bottom, right) = 0 (an int or a symmetric pair
    (ph, pw) is accepted; the 4-tuple follows the ONNX ``pads`` order),
    ``dilation`` (dh, dw) = 1, ``groups`` = 1, ``bias`` = True (the PyTorch
    default), ``in_channels`` = None (optional; checked against the input).
``linear``
    ``out_features`` (int), ``bias`` = True, ``in_features`` = None (optional,
    checked). The input must be a vector ``(F,)``; insert a ``flatten`` first.
``batchnorm``
    ``eps`` = 1e-5. Inference mode over axis 0 (channels) of ``(C, ...)``.
``activation``
    ``kind`` in :data:`ACTIVATIONS`; ``alpha`` = 0.01 for ``leaky_relu``;
    ``approximate`` in {"none", "tanh"} = "none" for ``gelu``.
``maxpool``, ``avgpool``
    ``kernel`` (kh, kw), ``stride`` = kernel, ``padding`` (top, left, bottom,
    right) = 0, every pad smaller than the kernel; ``avgpool`` also takes
    ``count_include_pad`` = False (the ONNX default: padded cells are excluded
    from the divisor; PyTorch's ``AvgPool2d`` default is True). ``ceil_mode`` is
    always False.
``global_avgpool``
    none; ``(C, H, W) -> (C,)`` (no trailing 1×1, so a ``linear`` may follow).
``add``
    two or more inputs of equal shape (no broadcasting).
``concat``
    ``axis`` = 0 (the channel axis; axes exclude the batch dimension, negative
    axes count from the end).
``flatten``
    none; C-order, ``(C, H, W) -> (C·H·W,)``.
``reshape``
    ``shape`` (a tuple of positive ints, at most one -1).

Output size of conv and pools (ceil_mode False, as PyTorch and ONNX)::

    H_out = floor((H + pad_top + pad_bottom - dilation·(k - 1) - 1) / stride) + 1

Matrix view (im2col)
--------------------
A conv weight ``(C_out, C_in/groups, kh, kw)`` (OIHW) is one matrix per group:
``rows = C_in/groups·kh·kw`` by ``cols = C_out/groups``; group ``g`` holds
``W[g·C_out/groups:(g+1)·C_out/groups].reshape(C_out/groups, -1).T``. Row
``r = (c·kh + i)·kw + j`` holds input channel ``c`` (within the group), kernel
row ``i`` and kernel column ``j``. :func:`im2col` produces its input in the same
order, so group ``g`` reads rows ``g·rows:(g+1)·rows`` of the im2col matrix. One
MVM per output pixel per group. A linear weight ``(out, in)`` is the matrix
``W.T``: ``in`` rows by ``out`` columns, one MVM per input vector.

Errors
------
Every structural problem raises :class:`NetworkError` (a ``ValueError``) whose
message names the layer and the problem; the exception also carries ``layer``
(name), ``index`` (position in ``Network.layers``) and ``key`` (the attribute,
``"inputs"``, ``"name"`` or a parameter name) so that loaders can point at the
source, e.g. the YAML path ``layers[3].kernel_size``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "OPS",
    "Layer",
    "Network",
    "NetworkBuilder",
    "NetworkError",
    "conv_output_size",
    "forward",
    "im2col",
    "random_params",
]

OPS: tuple[str, ...] = (
    "input",
    "conv",
    "linear",
    "batchnorm",
    "activation",
    "maxpool",
    "avgpool",
    "global_avgpool",
    "add",
    "concat",
    "flatten",
    "reshape",
)
"""The op names a :class:`Layer` may have."""

ACTIVATIONS: tuple[str, ...] = (
    "relu",
    "relu6",
    "leaky_relu",
    "sigmoid",
    "hardsigmoid",
    "tanh",
    "gelu",
    "silu",
    "hardswish",
    "softmax",
    "identity",
)
"""Activation kinds. ``hardsigmoid`` is PyTorch's ``relu6(x + 3) / 6`` (ONNX's
``HardSigmoid`` defaults differ: alpha 0.2, beta 0.5); ``softmax`` runs over
axis 0 (channels) of one sample."""

MATRIX_OPS = ("conv", "linear")

Shape = tuple[int, ...]
Params = Mapping[str, Mapping[str, Any]]


class NetworkError(ValueError):
    """A network is malformed: unknown op or input, bad attribute, shape mismatch, ...

    Attributes
    ----------
    layer : str or None
        Name of the offending layer.
    index : int or None
        Its position in ``Network.layers`` (the input layer is 0), when known.
    key : str or None
        The attribute, ``"inputs"``, ``"name"``, ``"op"`` or parameter name at fault.
    """

    def __init__(
        self,
        message: str,
        *,
        layer: str | None = None,
        index: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.layer = layer
        self.index = index
        self.key = key


# --------------------------------------------------------------------------------------
# attribute normalization (plain ValueError "expected ..." messages; Layer adds context)
# --------------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int(value: Any, minimum: int) -> int:
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if not _is_int(value) or value < minimum:
        raise ValueError(f"bad value {value!r}: expected {what}")
    return int(value)


def _pos_int(value: Any) -> int:
    return _int(value, 1)


def _opt_pos_int(value: Any) -> int | None:
    return None if value is None else _int(value, 1)


def _as_pair(value: Any, minimum: int = 1) -> tuple[int, int]:
    """An int or a sequence of 2 ints (each >= minimum) as a pair."""
    word = "positive integer" if minimum == 1 else "non-negative integer"
    expected = f"expected a {word} or a list of 2 {word}s"
    if _is_int(value):
        items: list[Any] = [value, value]
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        items = list(value)
    else:
        raise ValueError(f"bad value {value!r}: {expected}")
    if not all(_is_int(v) and v >= minimum for v in items):
        raise ValueError(f"bad value {value!r}: {expected}")
    return int(items[0]), int(items[1])


def _pos_pair(value: Any) -> tuple[int, int]:
    return _as_pair(value, 1)


def _as_padding(value: Any) -> tuple[int, int, int, int]:
    """Padding as (top, left, bottom, right) from an int, (ph, pw) or a 4-sequence."""
    expected = (
        "expected a non-negative integer, a pair [pad_h, pad_w] or "
        "[top, left, bottom, right] of non-negative integers"
    )
    if _is_int(value):
        items: list[Any] = [value] * 4
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        items = [value[0], value[1], value[0], value[1]]
    elif isinstance(value, (list, tuple)) and len(value) == 4:
        items = list(value)
    else:
        raise ValueError(f"bad value {value!r}: {expected}")
    if not all(_is_int(v) and v >= 0 for v in items):
        raise ValueError(f"bad value {value!r}: {expected}")
    return int(items[0]), int(items[1]), int(items[2]), int(items[3])


def _bool(value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"bad value {value!r}: expected true or false")
    return bool(value)


def _pos_float(value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"bad value {value!r}: expected a number > 0")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"bad value {value!r}: expected a number > 0")
    return float(value)


def _float(value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"bad value {value!r}: expected a number")
    return float(value)


def _int_any(value: Any) -> int:
    if not _is_int(value):
        raise ValueError(f"bad value {value!r}: expected an integer")
    return int(value)


def _kind(value: Any) -> str:
    if value not in ACTIVATIONS:
        raise ValueError(f"bad value {value!r}: expected one of {', '.join(ACTIVATIONS)}")
    return str(value)


def _approximate(value: Any) -> str:
    if value not in ("none", "tanh"):
        raise ValueError(f"bad value {value!r}: expected 'none' or 'tanh'")
    return str(value)


def _reshape_target(value: Any) -> tuple[int, ...]:
    expected = "expected a list of positive integers with at most one -1"
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"bad value {value!r}: {expected}")
    if not all(_is_int(v) and (v > 0 or v == -1) for v in value):
        raise ValueError(f"bad value {value!r}: {expected}")
    if sum(1 for v in value if v == -1) > 1:
        raise ValueError(f"bad value {value!r}: {expected}")
    return tuple(int(v) for v in value)


_REQUIRED = object()

# op -> {attribute: (default, normalizer)}; defaults pass through the normalizer.
_ATTR_SPECS: dict[str, dict[str, tuple[Any, Callable[[Any], Any]]]] = {
    "input": {},
    "conv": {
        "out_channels": (_REQUIRED, _pos_int),
        "kernel_size": (_REQUIRED, _pos_pair),
        "stride": (1, _pos_pair),
        "padding": (0, _as_padding),
        "dilation": (1, _pos_pair),
        "groups": (1, _pos_int),
        "bias": (True, _bool),
        "in_channels": (None, _opt_pos_int),
    },
    "linear": {
        "out_features": (_REQUIRED, _pos_int),
        "bias": (True, _bool),
        "in_features": (None, _opt_pos_int),
    },
    "batchnorm": {"eps": (1e-5, _pos_float)},
    "activation": {
        "kind": (_REQUIRED, _kind),
        "alpha": (0.01, _float),
        "approximate": ("none", _approximate),
    },
    "maxpool": {
        "kernel": (_REQUIRED, _pos_pair),
        "stride": (None, _pos_pair),
        "padding": (0, _as_padding),
    },
    "avgpool": {
        "kernel": (_REQUIRED, _pos_pair),
        "stride": (None, _pos_pair),
        "padding": (0, _as_padding),
        "count_include_pad": (False, _bool),
    },
    "global_avgpool": {},
    "add": {},
    "concat": {"axis": (0, _int_any)},
    "flatten": {},
    "reshape": {"shape": (_REQUIRED, _reshape_target)},
}

# Activation attributes that apply to only one kind.
_KIND_ATTRS = {"alpha": "leaky_relu", "approximate": "gelu"}

_PARAM_NAMES = {
    "conv": ("weight", "bias"),
    "linear": ("weight", "bias"),
    "batchnorm": ("gamma", "beta", "mean", "var"),
}


def _normalize_attrs(name: str, op: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    spec = _ATTR_SPECS[op]
    where = f"layer {name!r} ({op})"
    for key in attrs:
        if key not in spec:
            allowed = ", ".join(spec) or "none"
            close = difflib.get_close_matches(str(key), list(spec), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise NetworkError(
                f"{where}: unknown attribute {key!r}; allowed: {allowed}{hint}",
                layer=name,
                key=str(key),
            )
    if op == "activation":
        kind = attrs.get("kind")
        for key, owner in _KIND_ATTRS.items():
            if key in attrs and kind != owner:
                raise NetworkError(
                    f"{where}: attribute {key!r} applies only to kind {owner!r}, not {kind!r}",
                    layer=name,
                    key=key,
                )
    out: dict[str, Any] = {}
    for key, (default, norm) in spec.items():
        if op == "activation" and key in _KIND_ATTRS and attrs.get("kind") != _KIND_ATTRS[key]:
            continue
        if key in attrs:
            value = attrs[key]
        elif default is _REQUIRED:
            raise NetworkError(f"{where}: missing attribute {key!r}", layer=name, key=key)
        else:
            value = default
        if value is None and key == "stride":
            out[key] = out["kernel"]
            continue
        try:
            out[key] = norm(value)
        except ValueError as exc:
            raise NetworkError(f"{where}: {key}: {exc}", layer=name, key=key) from None
    return out


# --------------------------------------------------------------------------------------
# Layer
# --------------------------------------------------------------------------------------


@dataclass(eq=False)
class Layer:
    """One node of the network DAG.

    Parameters
    ----------
    name : str
        Unique name within the network.
    op : str
        One of :data:`OPS`.
    inputs : tuple of str
        Names of the layers this one reads (empty for ``input``; two or more for
        ``add``; one or more for ``concat``; exactly one otherwise). A single
        string is accepted.
    attrs : dict
        Op attributes (see the module docstring); normalized on construction to
        the canonical form with defaults filled in.
    input_shapes : tuple of shapes
        Filled by shape inference (batch dimension excluded).
    output_shape : shape or None
        Filled by shape inference.
    params : dict of str to numpy.ndarray
        Optional trained parameters: conv ``weight`` (C_out, C_in/groups, kh, kw)
        (OIHW) and ``bias`` (C_out,); linear ``weight`` (out, in) and ``bias``
        (out,); batchnorm ``gamma``, ``beta``, ``mean``, ``var`` (C,).

    Raises
    ------
    NetworkError
        Empty name, unknown op, unknown/missing/bad attribute.
    """

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    attrs: dict[str, Any] = field(default_factory=dict)
    input_shapes: tuple[Shape, ...] = ()
    output_shape: Shape | None = None
    params: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise NetworkError(
                f"layer name must be a non-empty string, got {self.name!r}", key="name"
            )
        if self.op not in OPS:
            close = difflib.get_close_matches(str(self.op), OPS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise NetworkError(
                f"layer {self.name!r}: unknown op {self.op!r}; expected one of "
                f"{', '.join(OPS)}{hint}",
                layer=self.name,
                key="op",
            )
        inputs = (self.inputs,) if isinstance(self.inputs, str) else tuple(self.inputs)
        for i in inputs:
            if not isinstance(i, str) or not i:
                raise NetworkError(
                    f"layer {self.name!r} ({self.op}): input names must be non-empty strings, "
                    f"got {i!r}",
                    layer=self.name,
                    key="inputs",
                )
        self.inputs = inputs
        self.attrs = _normalize_attrs(self.name, self.op, dict(self.attrs))
        self.params = dict(self.params)

    # ---- helpers -----------------------------------------------------------------------

    def _need_shapes(self) -> Shape:
        if self.output_shape is None or not (self.input_shapes or self.op == "input"):
            raise NetworkError(
                f"layer {self.name!r} ({self.op}): shapes are not inferred yet; "
                "add the layer to a Network (or NetworkBuilder) first",
                layer=self.name,
            )
        return self.output_shape

    @property
    def is_matrix_layer(self) -> bool:
        """True for ``conv`` and ``linear`` (the layers that run as MVMs)."""
        return self.op in MATRIX_OPS

    @property
    def groups(self) -> int:
        """Number of independent weight matrices: conv ``groups``, 1 for linear, 0 otherwise."""
        if self.op == "conv":
            return int(self.attrs["groups"])
        return 1 if self.op == "linear" else 0

    @property
    def in_channels(self) -> int:
        """Channels (conv) or features (linear) of the input; inferred."""
        self._need_shapes()
        return int(self.input_shapes[0][0])

    @property
    def out_channels(self) -> int:
        """Output channels (conv) or features (linear)."""
        if self.op == "conv":
            return int(self.attrs["out_channels"])
        if self.op == "linear":
            return int(self.attrs["out_features"])
        raise NetworkError(
            f"layer {self.name!r} ({self.op}) is not a matrix layer", layer=self.name
        )

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """(rows, cols) of the flattened weight matrix of ONE group.

        conv: ``(C_in/groups·kh·kw, C_out/groups)`` with :attr:`groups` copies, row
        ``r = (c·kh + i)·kw + j`` (OIHW ``reshape(C_out/groups, -1).T`` per group);
        linear: ``(in_features, out_features)``.
        """
        self._need_shapes()
        if self.op == "conv":
            kh, kw = self.attrs["kernel_size"]
            g = self.groups
            return self.in_channels // g * kh * kw, self.out_channels // g
        if self.op == "linear":
            return self.in_channels, self.out_channels
        raise NetworkError(
            f"layer {self.name!r} ({self.op}) has no weight matrix", layer=self.name
        )

    @property
    def weight_count(self) -> int:
        """Number of weights (bias excluded): conv ``C_out·C_in/groups·kh·kw``, linear ``out·in``."""
        if not self.is_matrix_layer:
            return 0
        rows, cols = self.matrix_shape
        return rows * cols * self.groups

    @property
    def bias_count(self) -> int:
        """Number of bias terms (C_out or out_features when ``bias``, else 0)."""
        if not self.is_matrix_layer or not self.attrs["bias"]:
            return 0
        return self.out_channels

    @property
    def output_pixels(self) -> int:
        """H_out·W_out for conv, 1 for linear, 0 otherwise."""
        if self.op == "conv":
            shape = self._need_shapes()
            return int(shape[1] * shape[2])
        return 1 if self.op == "linear" else 0

    @property
    def mvm_count(self) -> int:
        """MVMs per input sample for ONE group: H_out·W_out for conv, 1 for linear, 0 otherwise.

        The total over all groups of a conv is ``groups · mvm_count``.
        """
        return self.output_pixels

    @property
    def mac_count(self) -> int:
        """Multiply-accumulates per sample: conv ``weight_count·H_out·W_out``, linear ``in·out``."""
        if not self.is_matrix_layer:
            return 0
        return self.weight_count * self.output_pixels

    @property
    def op_count(self) -> int:
        """Operations per sample, ``2·mac_count`` (one multiply and one add per MAC)."""
        return 2 * self.mac_count

    def weight_matrix(self, group: int = 0, weight: np.ndarray | None = None) -> np.ndarray:
        """The flattened weight matrix of one group, shape :attr:`matrix_shape`.

        Parameters
        ----------
        group : int
            Group index, ``0 <= group < groups``.
        weight : numpy.ndarray, optional
            A weight to flatten instead of ``params['weight']``.

        Raises
        ------
        NetworkError
            Not a matrix layer, no weight, or a bad group index.
        """
        rows, cols = self.matrix_shape
        w = self.params.get("weight") if weight is None else weight
        if w is None:
            raise NetworkError(
                f"layer {self.name!r} ({self.op}) has no 'weight' parameter",
                layer=self.name,
                key="weight",
            )
        w = np.asarray(w)
        if not 0 <= group < self.groups:
            raise NetworkError(
                f"layer {self.name!r}: group {group} out of range 0..{self.groups - 1}",
                layer=self.name,
            )
        if self.op == "linear":
            return w.T
        return w[group * cols : (group + 1) * cols].reshape(cols, rows).T

    def spec(self) -> tuple[str, str, tuple[str, ...], dict[str, Any]]:
        """(name, op, inputs, attrs): the structure without shapes or parameters."""
        return self.name, self.op, self.inputs, dict(self.attrs)


# --------------------------------------------------------------------------------------
# shape inference
# --------------------------------------------------------------------------------------


def conv_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int,
                     dilation: int = 1) -> int:
    """Output length of a conv or pool along one axis (ceil_mode False).

    ``floor((size + pad_begin + pad_end - dilation·(kernel - 1) - 1) / stride) + 1``
    (PyTorch ``Conv2d``/``MaxPool2d`` docs, ONNX ``Conv``). May be <= 0 when the
    dilated kernel is larger than the padded input.
    """
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


def _window_out(layer: Layer, shape: Shape, kernel: tuple[int, int],
                dilation: tuple[int, int], key: str) -> tuple[int, int]:
    where = f"layer {layer.name!r} ({layer.op})"
    _, h, w = shape
    pt, pl, pb, pr = layer.attrs["padding"]
    sh, sw = layer.attrs["stride"]
    eff = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
    padded = (h + pt + pb, w + pl + pr)
    if eff[0] > padded[0] or eff[1] > padded[1]:
        dil = ""
        if dilation != (1, 1):
            dil = f" with dilation {dilation[0]}x{dilation[1]} (spanning {eff[0]}x{eff[1]})"
        raise NetworkError(
            f"{where}: kernel {kernel[0]}x{kernel[1]}{dil} is larger "
            f"than the padded input {padded[0]}x{padded[1]} (input {h}x{w}, padding "
            f"top/left/bottom/right {pt}/{pl}/{pb}/{pr})",
            layer=layer.name,
            key=key,
        )
    return (conv_output_size(h, kernel[0], sh, pt, pb, dilation[0]),
            conv_output_size(w, kernel[1], sw, pl, pr, dilation[1]))


def _need_rank(layer: Layer, shape: Shape, rank: int, what: str, hint: str = "") -> None:
    if len(shape) != rank:
        raise NetworkError(
            f"layer {layer.name!r} ({layer.op}): expects {what} input, got shape "
            f"{shape} from {layer.inputs[0]!r}{hint}",
            layer=layer.name,
            key="inputs",
        )


def _infer_output(layer: Layer, shapes: Sequence[Shape]) -> Shape:
    """Output shape of ``layer`` given its input shapes; raises NetworkError."""
    op, a, name = layer.op, layer.attrs, layer.name
    where = f"layer {name!r} ({op})"
    n = len(shapes)
    if op == "input":
        raise AssertionError("input layers are handled by the caller")
    if op == "add":
        if n < 2:
            raise NetworkError(f"{where}: expects 2 or more inputs, got {n}",
                               layer=name, key="inputs")
    elif op == "concat":
        if n < 1:
            raise NetworkError(f"{where}: expects 1 or more inputs, got 0",
                               layer=name, key="inputs")
    elif n != 1:
        raise NetworkError(f"{where}: expects exactly 1 input, got {n}",
                           layer=name, key="inputs")
    x = shapes[0]

    if op == "conv":
        _need_rank(layer, x, 3, "a (C, H, W)")
        c = x[0]
        g = a["groups"]
        if a["in_channels"] is not None and a["in_channels"] != c:
            raise NetworkError(
                f"{where}: channel mismatch: in_channels is {a['in_channels']} but input "
                f"{layer.inputs[0]!r} has {c} channels (shape {x})",
                layer=name, key="in_channels")
        if c % g or a["out_channels"] % g:
            raise NetworkError(
                f"{where}: groups={g} must divide both the input channels ({c}) and "
                f"out_channels ({a['out_channels']})",
                layer=name, key="groups")
        ho, wo = _window_out(layer, x, a["kernel_size"], a["dilation"], "kernel_size")
        return (a["out_channels"], ho, wo)
    if op == "linear":
        _need_rank(layer, x, 1, "a vector (F,)", "; add a flatten layer before it")
        if a["in_features"] is not None and a["in_features"] != x[0]:
            raise NetworkError(
                f"{where}: feature mismatch: in_features is {a['in_features']} but input "
                f"{layer.inputs[0]!r} has {x[0]} features",
                layer=name, key="in_features")
        return (a["out_features"],)
    if op in ("batchnorm", "activation"):
        return x
    if op in ("maxpool", "avgpool"):
        _need_rank(layer, x, 3, "a (C, H, W)")
        kh, kw = a["kernel"]
        pt, pl, pb, pr = a["padding"]
        if max(pt, pb) >= kh or max(pl, pr) >= kw:
            raise NetworkError(
                f"{where}: padding top/left/bottom/right {pt}/{pl}/{pb}/{pr} must be smaller "
                f"than the kernel {kh}x{kw} (a window must not lie wholly in the padding)",
                layer=name, key="padding")
        ho, wo = _window_out(layer, x, a["kernel"], (1, 1), "kernel")
        return (x[0], ho, wo)
    if op == "global_avgpool":
        _need_rank(layer, x, 3, "a (C, H, W)")
        return (x[0],)
    if op == "add":
        for i, s in zip(layer.inputs[1:], shapes[1:], strict=True):
            if s != x:
                raise NetworkError(
                    f"{where}: shape mismatch: {layer.inputs[0]!r} gives {x} but {i!r} "
                    f"gives {s} (add needs equal shapes)",
                    layer=name, key="inputs")
        return x
    if op == "concat":
        rank = len(x)
        axis = a["axis"]
        if not -rank <= axis < rank:
            raise NetworkError(
                f"{where}: axis {axis} out of range for rank-{rank} inputs {x} "
                "(axes exclude the batch dimension)",
                layer=name, key="axis")
        axis %= rank
        total = 0
        for i, s in zip(layer.inputs, shapes, strict=True):
            if len(s) != rank or any(s[d] != x[d] for d in range(rank) if d != axis):
                raise NetworkError(
                    f"{where}: shape mismatch: {layer.inputs[0]!r} gives {x} but {i!r} gives "
                    f"{s} (concat along axis {axis} needs the other axes equal)",
                    layer=name, key="inputs")
            total += s[axis]
        return x[:axis] + (total,) + x[axis + 1:]
    if op == "flatten":
        return (math.prod(x),)
    if op == "reshape":
        target = a["shape"]
        size = math.prod(x)
        known = math.prod(v for v in target if v != -1)
        if -1 in target:
            if size % known:
                raise NetworkError(
                    f"{where}: cannot reshape {x} ({size} elements) to {target}",
                    layer=name, key="shape")
            target = tuple(size // known if v == -1 else v for v in target)
        elif known != size:
            raise NetworkError(
                f"{where}: cannot reshape {x} ({size} elements) to {target} ({known} elements)",
                layer=name, key="shape")
        return target
    raise AssertionError(op)  # pragma: no cover


def _expected_param_shapes(layer: Layer) -> dict[str, Shape]:
    a = layer.attrs
    if layer.op == "conv":
        kh, kw = a["kernel_size"]
        c_out = a["out_channels"]
        shapes = {"weight": (c_out, layer.input_shapes[0][0] // a["groups"], kh, kw)}
        if a["bias"]:
            shapes["bias"] = (c_out,)
        return shapes
    if layer.op == "linear":
        shapes = {"weight": (a["out_features"], layer.input_shapes[0][0])}
        if a["bias"]:
            shapes["bias"] = (a["out_features"],)
        return shapes
    if layer.op == "batchnorm":
        c = layer.input_shapes[0][0]
        return {k: (c,) for k in _PARAM_NAMES["batchnorm"]}
    return {}


def _check_params(layer: Layer, params: Mapping[str, Any]) -> None:
    where = f"layer {layer.name!r} ({layer.op})"
    expected = _expected_param_shapes(layer)
    for key, value in params.items():
        if key not in expected:
            allowed = ", ".join(expected) or "none"
            extra = ""
            if key == "bias" and layer.is_matrix_layer:
                extra = " (the layer has bias=False)"
            raise NetworkError(
                f"{where}: unexpected parameter {key!r}{extra}; expected: {allowed}",
                layer=layer.name, key=key)
        shape = tuple(np.shape(value))
        if shape != expected[key]:
            what = ""
            if key == "weight" and layer.op == "conv":
                what = (f" (C_out, C_in/groups, kh, kw); channel mismatch if C_in/groups differs "
                        f"from the input's {layer.input_shapes[0][0]} channels / "
                        f"{layer.attrs['groups']} groups")
            raise NetworkError(
                f"{where}: parameter {key!r} has shape {shape}, expected {expected[key]}{what}",
                layer=layer.name, key=key)


def _as_shape(value: Any, what: str) -> Shape:
    if (not isinstance(value, (list, tuple)) or not value
            or not all(_is_int(v) and v > 0 for v in value)):
        raise NetworkError(f"{what} must be a non-empty list of positive integers, got {value!r}",
                           key="input_shape")
    return tuple(int(v) for v in value)


def _find_cycle(layers: Sequence[Layer]) -> list[str] | None:
    deps = {layer.name: layer.inputs for layer in layers}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in deps.get(n, ()):
            if m not in deps:
                continue
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for layer in layers:
        if layer.name not in state:
            found = visit(layer.name)
            if found:
                return found
    return None


def _unknown_input(layer: Layer, index: int, missing: str, layers: Sequence[Layer]) -> NetworkError:
    where = f"layer {layer.name!r} ({layer.op})"
    all_names = [lyr.name for lyr in layers]
    if missing in all_names:
        cycle = _find_cycle(layers)
        if cycle:
            msg = (f"{where}: input {missing!r} closes a cycle "
                   f"({' <- '.join(cycle)}); a network must be a DAG")
        else:
            msg = (f"{where}: input {missing!r} is defined after this layer; layers must "
                   "be listed in topological order (every input before its readers)")
    else:
        before = all_names[:index]
        close = difflib.get_close_matches(missing, before, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        shown = ", ".join(before[-8:])
        if len(before) > 8:
            shown = "..., " + shown
        msg = f"{where}: unknown input {missing!r}{hint} (defined before it: {shown})"
    return NetworkError(msg, layer=layer.name, index=index, key="inputs")


# --------------------------------------------------------------------------------------
# Network
# --------------------------------------------------------------------------------------


class Network:
    """A network: named layers in topological order, with inferred shapes.

    Parameters
    ----------
    name : str
        Network name.
    input_shape : sequence of int
        Shape of one input sample, batch excluded: ``(C, H, W)`` or ``(F,)``.
    layers : iterable of Layer
        Layers in topological order. If the first is not an ``input`` layer, one
        named ``"input"`` is prepended. The last layer is the output.

    Raises
    ------
    NetworkError
        Duplicate names, an ``input`` layer other than the first, unknown inputs,
        cycles or non-topological order, shape mismatches, bad parameters.
    """

    def __init__(self, name: str, input_shape: Sequence[int], layers: Iterable[Layer]) -> None:
        self.name = str(name)
        self.input_shape: Shape = _as_shape(input_shape, f"network {self.name!r}: input_shape")
        layers = list(layers)
        if not layers or layers[0].op != "input":
            layers.insert(0, Layer("input", "input"))
        self.layers: tuple[Layer, ...] = tuple(layers)
        self._by_name: dict[str, Layer] = {}
        self.validate()

    # ---- validation --------------------------------------------------------------------

    def validate(self) -> None:
        """Check the structure, infer every layer's shapes and check parameters.

        Raises
        ------
        NetworkError
            See the class docstring.
        """
        by_name: dict[str, Layer] = {}
        shapes: dict[str, Shape] = {}
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, Layer):
                raise NetworkError(f"network {self.name!r}: layers[{index}] is not a Layer, "
                                   f"got {type(layer).__name__}", index=index)
            if layer.name in by_name:
                raise NetworkError(
                    f"layer {layer.name!r} ({layer.op}): duplicate name: an earlier layer "
                    f"({by_name[layer.name].op}) has the same name; layer names must be unique",
                    layer=layer.name, index=index, key="name")
            if layer.op == "input":
                if index != 0:
                    raise NetworkError(
                        f"layer {layer.name!r} (input): only the first layer may be an input "
                        f"layer (found at position {index})",
                        layer=layer.name, index=index, key="op")
                if layer.inputs:
                    raise NetworkError(
                        f"layer {layer.name!r} (input): an input layer takes no inputs",
                        layer=layer.name, index=index, key="inputs")
                layer.input_shapes = ()
                layer.output_shape = self.input_shape
            else:
                for i in layer.inputs:
                    if i not in shapes:
                        raise _unknown_input(layer, index, i, self.layers)
                try:
                    in_shapes = tuple(shapes[i] for i in layer.inputs)
                    layer.input_shapes = in_shapes
                    layer.output_shape = _infer_output(layer, in_shapes)
                    _check_params(layer, layer.params)
                except NetworkError as exc:
                    exc.index = index
                    raise
            by_name[layer.name] = layer
            shapes[layer.name] = layer.output_shape
        self._by_name = by_name

    # ---- access ------------------------------------------------------------------------

    def __getitem__(self, name: str) -> Layer:
        try:
            return self._by_name[name]
        except KeyError:
            raise NetworkError(f"network {self.name!r} has no layer {name!r}",
                               layer=name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __iter__(self) -> Iterator[Layer]:
        return iter(self.layers)

    def __len__(self) -> int:
        return len(self.layers)

    def __repr__(self) -> str:
        return (f"Network({self.name!r}, input_shape={self.input_shape}, "
                f"{len(self.layers)} layers, output_shape={self.output_shape})")

    def layer(self, name: str) -> Layer:
        """The layer called ``name``; raises :class:`NetworkError` if there is none."""
        return self[name]

    def index(self, name: str) -> int:
        """Position of layer ``name`` in :attr:`layers`."""
        return self.layers.index(self[name])

    @property
    def input_name(self) -> str:
        """Name of the input layer (``layers[0]``)."""
        return self.layers[0].name

    @property
    def output_layer(self) -> Layer:
        """The last layer, whose output is the network's output."""
        return self.layers[-1]

    @property
    def output_shape(self) -> Shape:
        """Shape of the network output (batch excluded)."""
        shape = self.layers[-1].output_shape
        assert shape is not None
        return shape

    def consumers(self, name: str) -> list[str]:
        """Names of the layers that read layer ``name``, in order."""
        self[name]
        return [layer.name for layer in self.layers if name in layer.inputs]

    def matrix_layers(self) -> list[Layer]:
        """The conv and linear layers, in network order."""
        return [layer for layer in self.layers if layer.is_matrix_layer]

    # ---- totals ------------------------------------------------------------------------

    @property
    def weight_count(self) -> int:
        """Total weights of all matrix layers (biases excluded)."""
        return sum(layer.weight_count for layer in self.layers)

    @property
    def bias_count(self) -> int:
        """Total bias terms of all matrix layers."""
        return sum(layer.bias_count for layer in self.layers)

    @property
    def mac_count(self) -> int:
        """Total MACs per input sample."""
        return sum(layer.mac_count for layer in self.layers)

    @property
    def op_count(self) -> int:
        """Total operations per input sample (2·MACs)."""
        return 2 * self.mac_count

    # ---- parameters --------------------------------------------------------------------

    def set_params(self, params: Params) -> None:
        """Attach parameters, ``{layer name: {param name: array}}``, as float32 copies.

        Raises
        ------
        NetworkError
            Unknown layer, unexpected parameter name or wrong shape.
        """
        for lname, p in params.items():
            layer = self[lname]
            _check_params(layer, p)
        for lname, p in params.items():
            layer = self[lname]
            layer.params.update({k: np.array(v, dtype=np.float32) for k, v in p.items()})

    # ---- report ------------------------------------------------------------------------

    def summary(self) -> str:
        """A text table: name, op, output shape, weights, MACs, and a total row."""
        header = ("name", "op", "output shape", "weights", "MACs")
        rows = []
        for layer in self.layers:
            op = layer.op
            if op == "activation":
                op = f"activation:{layer.attrs['kind']}"
            shape = str(tuple(layer.output_shape or ()))
            rows.append((layer.name, op, shape, f"{layer.weight_count:,}",
                         f"{layer.mac_count:,}"))
        total = ("total", "", "", f"{self.weight_count:,}", f"{self.mac_count:,}")
        widths = [max(len(r[i]) for r in [header, *rows, total]) for i in range(5)]

        def fmt(r: Sequence[str]) -> str:
            left = [r[i].ljust(widths[i]) for i in range(3)]
            right = [r[i].rjust(widths[i]) for i in range(3, 5)]
            return "  ".join(left + right).rstrip()

        rule = "  ".join("-" * w for w in widths)
        lines = [
            f"network {self.name!r}: input {self.input_shape}, output {self.output_shape}, "
            f"{len(self.matrix_layers())} matrix layers",
            fmt(header), rule, *(fmt(r) for r in rows), rule, fmt(total),
        ]
        return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# builder
# --------------------------------------------------------------------------------------


class NetworkBuilder:
    """Write a network in Python; each method adds one layer and returns its name.

    Shapes are inferred as layers are added, so a mistake raises
    :class:`NetworkError` at the line that makes it.

    Examples
    --------
    >>> b = NetworkBuilder("tiny", input_shape=(3, 8, 8))
    >>> x = b.conv("c1", b.input, 16, 3, padding=1, bias=False)
    >>> x = b.relu("r1", b.batchnorm("bn1", x))
    >>> x = b.linear("fc", b.global_avgpool("gap", x), 10)
    >>> b.build().output_shape
    (10,)
    """

    def __init__(self, name: str, input_shape: Sequence[int], input_name: str = "input") -> None:
        self.name = name
        self.input_shape = _as_shape(input_shape, f"network {name!r}: input_shape")
        first = Layer(input_name, "input", input_shapes=(), output_shape=self.input_shape)
        self._layers: list[Layer] = [first]
        self._shapes: dict[str, Shape] = {input_name: self.input_shape}

    @property
    def input(self) -> str:
        """Name of the input layer."""
        return self._layers[0].name

    @property
    def last(self) -> str:
        """Name of the most recently added layer."""
        return self._layers[-1].name

    def shape(self, name: str) -> Shape:
        """Inferred output shape of layer ``name``."""
        if name not in self._shapes:
            raise NetworkError(f"network {self.name!r}: no layer {name!r} yet", layer=name)
        return self._shapes[name]

    def layer(self, name: str, op: str, inputs: str | Sequence[str], *,
              params: Mapping[str, Any] | None = None, **attrs: Any) -> str:
        """Add a layer of any op; ``attrs`` as in the module docstring. Returns ``name``."""
        layer = Layer(name, op, (inputs,) if isinstance(inputs, str) else tuple(inputs),
                      attrs, params=dict(params or {}))
        index = len(self._layers)
        if name in self._shapes:
            raise NetworkError(f"layer {name!r} ({op}): duplicate name; layer names must be "
                               "unique", layer=name, index=index, key="name")
        if op == "input":
            raise NetworkError(f"layer {name!r}: a network has exactly one input layer",
                               layer=name, index=index, key="op")
        for i in layer.inputs:
            if i not in self._shapes:
                raise _unknown_input(layer, index, i, [*self._layers, layer])
        try:
            layer.input_shapes = tuple(self._shapes[i] for i in layer.inputs)
            layer.output_shape = _infer_output(layer, layer.input_shapes)
            _check_params(layer, layer.params)
        except NetworkError as exc:
            exc.index = index
            raise
        self._layers.append(layer)
        self._shapes[name] = layer.output_shape
        return name

    def conv(self, name: str, x: str, out_channels: int, kernel_size: int | Sequence[int], *,
             stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
             dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True) -> str:
        """2-D convolution (cross-correlation, as PyTorch/ONNX)."""
        return self.layer(name, "conv", x, out_channels=out_channels, kernel_size=kernel_size,
                          stride=stride, padding=padding, dilation=dilation, groups=groups,
                          bias=bias)

    def linear(self, name: str, x: str, out_features: int, *, bias: bool = True) -> str:
        """Fully connected layer on a vector input."""
        return self.layer(name, "linear", x, out_features=out_features, bias=bias)

    def batchnorm(self, name: str, x: str, *, eps: float = 1e-5) -> str:
        """Batch normalization (inference mode) over the channel axis."""
        return self.layer(name, "batchnorm", x, eps=eps)

    def activation(self, name: str, x: str, kind: str, **attrs: Any) -> str:
        """Element-wise activation of ``kind`` (see :data:`ACTIVATIONS`)."""
        return self.layer(name, "activation", x, kind=kind, **attrs)

    def relu(self, name: str, x: str) -> str:
        """ReLU."""
        return self.activation(name, x, "relu")

    def relu6(self, name: str, x: str) -> str:
        """ReLU6, ``min(max(x, 0), 6)``."""
        return self.activation(name, x, "relu6")

    def sigmoid(self, name: str, x: str) -> str:
        """Logistic sigmoid."""
        return self.activation(name, x, "sigmoid")

    def tanh(self, name: str, x: str) -> str:
        """Hyperbolic tangent."""
        return self.activation(name, x, "tanh")

    def gelu(self, name: str, x: str, *, approximate: str = "none") -> str:
        """GELU (exact erf form, or the tanh approximation)."""
        return self.activation(name, x, "gelu", approximate=approximate)

    def maxpool(self, name: str, x: str, kernel: int | Sequence[int], *,
                stride: int | Sequence[int] | None = None,
                padding: int | Sequence[int] = 0) -> str:
        """Max pooling (stride defaults to the kernel)."""
        return self.layer(name, "maxpool", x, kernel=kernel, stride=stride, padding=padding)

    def avgpool(self, name: str, x: str, kernel: int | Sequence[int], *,
                stride: int | Sequence[int] | None = None, padding: int | Sequence[int] = 0,
                count_include_pad: bool = False) -> str:
        """Average pooling (stride defaults to the kernel; pads excluded from the divisor)."""
        return self.layer(name, "avgpool", x, kernel=kernel, stride=stride, padding=padding,
                          count_include_pad=count_include_pad)

    def global_avgpool(self, name: str, x: str) -> str:
        """Global average pooling, ``(C, H, W) -> (C,)``."""
        return self.layer(name, "global_avgpool", x)

    def add(self, name: str, *xs: str) -> str:
        """Element-wise sum of two or more equal-shape inputs."""
        return self.layer(name, "add", xs)

    def concat(self, name: str, *xs: str, axis: int = 0) -> str:
        """Concatenation along ``axis`` (0 = channels; batch excluded)."""
        return self.layer(name, "concat", xs, axis=axis)

    def flatten(self, name: str, x: str) -> str:
        """C-order flatten to a vector."""
        return self.layer(name, "flatten", x)

    def reshape(self, name: str, x: str, shape: Sequence[int]) -> str:
        """Reshape (batch excluded; at most one -1)."""
        return self.layer(name, "reshape", x, shape=tuple(shape))

    def build(self) -> Network:
        """The finished :class:`Network` (validated once more)."""
        return Network(self.name, self.input_shape, list(self._layers))


# --------------------------------------------------------------------------------------
# reference forward pass (float32 numpy)
# --------------------------------------------------------------------------------------


def _windows(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Sliding windows of a padded (N, C, Hp, Wp) array as (N, C, kh, kw, H_out, W_out)."""
    n, c = xp.shape[:2]
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    out = np.empty((n, c, kh, kw, ho, wo), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            out[:, :, i, j] = xp[:, :, r0:r0 + sh * (ho - 1) + 1:sh, c0:c0 + sw * (wo - 1) + 1:sw]
    return out


def im2col(x: np.ndarray, kernel_size: int | Sequence[int], *,
           stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
           dilation: int | Sequence[int] = 1) -> np.ndarray:
    """Unfold a batch of feature maps into MVM input columns.

    Parameters
    ----------
    x : numpy.ndarray, shape (N, C, H, W)
    kernel_size, stride, dilation : int or (h, w)
    padding : int, (ph, pw) or (top, left, bottom, right); zero padding

    Returns
    -------
    numpy.ndarray, shape (N, C·kh·kw, H_out·W_out), dtype of ``x``
        Row ``r = (c·kh + i)·kw + j`` (the row order of :attr:`Layer.matrix_shape`),
        column ``p = h_out·W_out + w_out``. For a conv with ``groups`` groups,
        group ``g`` uses rows ``g·(C/groups)·kh·kw`` to ``(g+1)·(C/groups)·kh·kw``.

    Raises
    ------
    ValueError
        ``x`` not 4-D, bad sizes, or a kernel larger than the padded input.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"im2col expects x of shape (N, C, H, W), got {x.shape}")
    k, s, d = _pos_pair(kernel_size), _pos_pair(stride), _pos_pair(dilation)
    pt, pl, pb, pr = _as_padding(padding)
    n, c, h, w = x.shape
    ho = conv_output_size(h, k[0], s[0], pt, pb, d[0])
    wo = conv_output_size(w, k[1], s[1], pl, pr, d[1])
    if ho <= 0 or wo <= 0:
        raise ValueError(f"kernel {k} (dilation {d}) larger than the padded input "
                         f"{(h + pt + pb, w + pl + pr)}")
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    return _windows(xp, k, s, d, (ho, wo)).reshape(n, c * k[0] * k[1], ho * wo)


def _erf(x: np.ndarray) -> np.ndarray:
    """erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7, below float32 resolution near 1)."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                         + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def _activation(x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
    kind = attrs["kind"]
    if kind == "relu":
        return np.maximum(x, 0)
    if kind == "relu6":
        return np.clip(x, 0, 6)
    if kind == "leaky_relu":
        return np.where(x >= 0, x, x * np.float32(attrs["alpha"]))
    if kind == "sigmoid":
        return 0.5 * (1 + np.tanh(0.5 * x))
    if kind == "hardsigmoid":
        return np.clip(x + 3, 0, 6) / 6
    if kind == "tanh":
        return np.tanh(x)
    if kind == "gelu":
        if attrs["approximate"] == "tanh":
            c = np.float32(math.sqrt(2 / math.pi))
            return 0.5 * x * (1 + np.tanh(c * (x + np.float32(0.044715) * x ** 3)))
        return 0.5 * x * (1 + _erf(x / np.float32(math.sqrt(2))))
    if kind == "silu":
        return x * (0.5 * (1 + np.tanh(0.5 * x)))
    if kind == "hardswish":
        return x * np.clip(x + 3, 0, 6) / 6
    if kind == "softmax":
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if kind == "identity":
        return x
    raise AssertionError(kind)  # pragma: no cover


def _param(layer: Layer, merged: Mapping[str, Any], key: str) -> np.ndarray:
    if key not in merged:
        raise NetworkError(
            f"layer {layer.name!r} ({layer.op}) has no parameter {key!r}; set it with "
            "Network.set_params, pass params= to forward(), or use random_params()",
            layer=layer.name, key=key)
    return np.asarray(merged[key], dtype=np.float32)


def _eval_layer(layer: Layer, xs: list[np.ndarray], p: Mapping[str, Any]) -> np.ndarray:
    op, a = layer.op, layer.attrs
    x = xs[0]
    n = x.shape[0]
    if op == "conv":
        w = _param(layer, p, "weight")
        g = a["groups"]
        c_out = a["out_channels"]
        _, ho, wo = layer.output_shape
        cols = im2col(x, a["kernel_size"], stride=a["stride"], padding=a["padding"],
                      dilation=a["dilation"])
        rows = cols.shape[1] // g
        y = np.matmul(w.reshape(g, c_out // g, rows), cols.reshape(n, g, rows, ho * wo))
        y = y.reshape(n, c_out, ho, wo)
        if a["bias"]:
            y = y + _param(layer, p, "bias")[:, None, None]
        return y
    if op == "linear":
        y = x @ _param(layer, p, "weight").T
        if a["bias"]:
            y = y + _param(layer, p, "bias")
        return y
    if op == "batchnorm":
        tail = (1,) * (x.ndim - 2)
        gamma, beta, mean, var = (_param(layer, p, k).reshape(-1, *tail)
                                  for k in ("gamma", "beta", "mean", "var"))
        scale = gamma / np.sqrt(var + np.float32(a["eps"]))
        return (x - mean) * scale + beta
    if op == "activation":
        return _activation(x, a)
    if op in ("maxpool", "avgpool"):
        pt, pl, pb, pr = a["padding"]
        _, ho, wo = layer.output_shape
        k, s = a["kernel"], a["stride"]
        pad = ((0, 0), (0, 0), (pt, pb), (pl, pr))
        if op == "maxpool":
            xp = np.pad(x, pad, constant_values=-np.inf)
            return _windows(xp, k, s, (1, 1), (ho, wo)).max(axis=(2, 3))
        total = _windows(np.pad(x, pad), k, s, (1, 1), (ho, wo)).sum(axis=(2, 3))
        if a["count_include_pad"]:
            return total / np.float32(k[0] * k[1])
        ones = np.pad(np.ones((1, 1) + x.shape[2:], dtype=x.dtype), pad)
        count = _windows(ones, k, s, (1, 1), (ho, wo)).sum(axis=(2, 3))
        return total / count
    if op == "global_avgpool":
        return x.mean(axis=(2, 3))
    if op == "add":
        y = xs[0]
        for other in xs[1:]:
            y = y + other
        return y
    if op == "concat":
        return np.concatenate(xs, axis=a["axis"] % (x.ndim - 1) + 1)
    if op == "flatten":
        return x.reshape(n, -1)
    if op == "reshape":
        return x.reshape((n,) + layer.output_shape)
    raise AssertionError(op)  # pragma: no cover


def forward(network: Network, x: np.ndarray, params: Params | None = None, *,
            return_all: bool = False) -> np.ndarray | dict[str, np.ndarray]:
    """Float32 reference forward pass of a batch through every layer.

    Parameters
    ----------
    network : Network
    x : array_like, shape (N, \\*input_shape)
        Input batch; cast to float32.
    params : mapping, optional
        ``{layer name: {param name: array}}`` used instead of (on top of) the
        layers' own ``params``. Shapes are checked.
    return_all : bool
        Return ``{layer name: output}`` for every layer (input included)
        instead of only the last layer's output.

    Returns
    -------
    numpy.ndarray of shape (N, \\*network.output_shape), or a dict of such arrays.

    Notes
    -----
    conv: im2col + matmul, zero padding, groups and dilation. batchnorm:
    ``(x - mean)·gamma/sqrt(var + eps) + beta``. maxpool pads with -inf; avgpool
    excludes padded cells from the divisor unless ``count_include_pad`` (ONNX
    default). gelu uses erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7).

    Raises
    ------
    NetworkError
        Wrong input shape, a missing or mis-shaped parameter.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.shape[1:] != network.input_shape or x.ndim < 2:
        raise NetworkError(
            f"network {network.name!r}: input batch has shape {x.shape}, expected "
            f"(N, {', '.join(str(s) for s in network.input_shape)})")
    params = params or {}
    for lname in params:
        network[lname]
    last_use: dict[str, int] = {}
    for k, layer in enumerate(network.layers):
        for i in layer.inputs:
            last_use[i] = k
    outputs: dict[str, np.ndarray] = {network.input_name: x}
    for k, layer in enumerate(network.layers[1:], start=1):
        merged = {**layer.params, **params.get(layer.name, {})}
        if layer.name in params:
            _check_params(layer, merged)
        y = _eval_layer(layer, [outputs[i] for i in layer.inputs], merged)
        outputs[layer.name] = np.asarray(y, dtype=np.float32)
        if not return_all:
            for i in set(layer.inputs):
                if last_use[i] <= k and i != network.layers[-1].name:
                    del outputs[i]
    if return_all:
        return outputs
    return outputs[network.layers[-1].name]


def random_params(network: Network, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Random float32 parameters for every conv, linear and batchnorm layer (for tests).

    conv/linear weights are He-normal, ``N(0, 2/fan_in)`` with ``fan_in = rows``
    of the matrix; biases ``N(0, 0.1²)``; batchnorm gamma ``1 + N(0, 0.1²)``,
    beta and mean ``N(0, 0.1²)``, var ``U(0.5, 1.5)`` (all assumed).

    Returns
    -------
    dict
        ``{layer name: {param name: array}}``, suitable for
        :meth:`Network.set_params` and ``forward(params=...)``.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for layer in network.layers:
        shapes = _expected_param_shapes(layer)
        if not shapes:
            continue
        p: dict[str, np.ndarray] = {}
        if layer.is_matrix_layer:
            rows = layer.matrix_shape[0]
            p["weight"] = rng.normal(0.0, math.sqrt(2.0 / rows), shapes["weight"])
            if "bias" in shapes:
                p["bias"] = rng.normal(0.0, 0.1, shapes["bias"])
        else:
            c = shapes["gamma"]
            p["gamma"] = 1.0 + rng.normal(0.0, 0.1, c)
            p["beta"] = rng.normal(0.0, 0.1, c)
            p["mean"] = rng.normal(0.0, 0.1, c)
            p["var"] = rng.uniform(0.5, 1.5, c)
        out[layer.name] = {k: v.astype(np.float32) for k, v in p.items()}
    return out
