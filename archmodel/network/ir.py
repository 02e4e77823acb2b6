"""Network IR: :class:`Layer` and :class:`Network`, a DAG of layers in topological order.

Both the architectural mapper and the accuracy evaluator consume this IR. A
:class:`Network` is an ordered tuple of :class:`Layer` objects; each layer names
the layers it reads (``inputs``), and every input must be defined earlier in the
list (topological order). The first layer is the network input (op ``input``);
the output of the network is the output of the last layer.

Shapes exclude the batch dimension: activations are ``(C, H, W)`` for feature
maps or ``(F,)`` for vectors. Shape inference (:mod:`archmodel.network.shapes`)
runs when a network is built and fills each layer's ``input_shapes`` and
``output_shape``. Ops, attributes and errors: :mod:`archmodel.network.schema`.

Matrix view (im2col)
--------------------
A conv weight ``(C_out, C_in/groups, kh, kw)`` (OIHW) is one matrix per group:
``rows = C_in/groups·kh·kw`` by ``cols = C_out/groups``; group ``g`` holds
``W[g·C_out/groups:(g+1)·C_out/groups].reshape(C_out/groups, -1).T``. Row
``r = (c·kh + i)·kw + j`` holds input channel ``c`` (within the group), kernel
row ``i`` and kernel column ``j``. :func:`im2col` produces its input in the same
order, so group ``g`` reads rows ``g·rows:(g+1)·rows`` of the im2col matrix. One
MVM per output pixel per group. A linear weight ``(out, in)`` is the matrix
``W.T``: ``in`` rows by ``out`` columns, one MVM per input vector. This
channel-major row order is the float reference's (forward, training); the
chip's conv matrices are tap-major, ``r = (i·kw + j)·C + c`` (docs/design.md
§4.8, :func:`archmodel.golden.digital.kernel_matrix`); the shapes are the same.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from archmodel.network.schema import (
    MATRIX_OPS,
    OPS,
    PARAM_NAMES,
    NetworkError,
    Params,
    Shape,
    is_int,
    normalize_attrs,
)
from archmodel.network.shapes import infer_output

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
        self.attrs = normalize_attrs(self.name, self.op, dict(self.attrs))
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
        """Channels (conv: axis 0) or features (linear: last axis) of the input; inferred."""
        self._need_shapes()
        return int(self.input_shapes[0][-1 if self.op == "linear" else 0])

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
        """H_out·W_out for conv; for linear the vectors of the leading axes (1 for a
        vector input, ``S`` for a sequence ``(S, F)``); 0 otherwise."""
        if self.op == "conv":
            shape = self._need_shapes()
            return int(shape[1] * shape[2])
        if self.op == "linear":
            shape = self._need_shapes()
            return int(np.prod(shape[:-1], dtype=np.int64))
        return 0

    @property
    def mvm_count(self) -> int:
        """MVMs per input sample for ONE group: H_out·W_out for conv, 1 for linear, 0 otherwise.

        The total over all groups of a conv is ``groups · mvm_count``.
        """
        return self.output_pixels

    @property
    def mac_count(self) -> int:
        """Multiply-accumulates per sample: conv ``weight_count·H_out·W_out``, linear
        ``in·out`` per input vector."""
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


def expected_param_shapes(layer: Layer) -> dict[str, Shape]:
    """Parameter name -> expected array shape for ``layer`` (conv weight OIHW, linear (out, in), BN per channel)."""
    a = layer.attrs
    if layer.op == "conv":
        kh, kw = a["kernel_size"]
        c_out = a["out_channels"]
        shapes = {"weight": (c_out, layer.input_shapes[0][0] // a["groups"], kh, kw)}
        if a["bias"]:
            shapes["bias"] = (c_out,)
        return shapes
    if layer.op == "linear":
        shapes = {"weight": (a["out_features"], layer.input_shapes[0][-1])}
        if a["bias"]:
            shapes["bias"] = (a["out_features"],)
        return shapes
    if layer.op in ("batchnorm", "scale"):
        c = layer.input_shapes[0][0]
        return {k: (c,) for k in PARAM_NAMES[layer.op]}
    return {}


def check_params(layer: Layer, params: Mapping[str, Any]) -> None:
    """Check ``params`` against :func:`expected_param_shapes`; NetworkError naming the layer, key and shapes."""
    where = f"layer {layer.name!r} ({layer.op})"
    expected = expected_param_shapes(layer)
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


def as_shape(value: Any, what: str) -> Shape:
    """``value`` as a non-empty tuple of positive ints; NetworkError naming ``what`` otherwise."""
    if (not isinstance(value, (list, tuple)) or not value
            or not all(is_int(v) and v > 0 for v in value)):
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


def unknown_input_error(layer: Layer, index: int, missing: str, layers: Sequence[Layer]) -> NetworkError:
    """The NetworkError for input ``index`` of ``layer`` naming ``missing``.

    Says whether ``missing`` is part of a cycle, a later layer, or a typo (with suggestions).
    """
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
        self.input_shape: Shape = as_shape(input_shape, f"network {self.name!r}: input_shape")
        layers = list(layers)
        if not layers or layers[0].op != "input":
            layers.insert(0, Layer("input", "input"))
        self.layers: tuple[Layer, ...] = tuple(layers)
        self.folded_bias_count = 0  # biases created by folding batch norms (set by importers)
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
                        raise unknown_input_error(layer, index, i, self.layers)
                try:
                    in_shapes = tuple(shapes[i] for i in layer.inputs)
                    layer.input_shapes = in_shapes
                    layer.output_shape = infer_output(layer, in_shapes)
                    check_params(layer, layer.params)
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
    def parameter_count(self) -> int:
        """Weights + biases of the matrix layers; biases created by folding a batch norm into
        the preceding layer (``folded_bias_count``) are not counted, as batch norms are not."""
        return self.weight_count + self.bias_count - self.folded_bias_count

    @property
    def sram_param_count(self) -> int:
        """Constant elements held by digital-unit ops (``digital`` ``const_elems``: embedding
        tables, normalization scales), stored in the digital unit's SRAM, not on PCM."""
        return sum(layer.attrs["const_elems"] for layer in self.layers if layer.op == "digital")

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
            check_params(layer, p)
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
# digital-layer selection
# --------------------------------------------------------------------------------------


def resolve_digital_layers(items: Iterable[str], matrix_layers: Sequence[Layer]) -> set[int]:
    """Positions in ``matrix_layers`` of the layers kept digital.

    ``items`` holds ``"first"`` (position 0), ``"last"`` (the last position) or
    layer names (``ChipSpec.digital.digital_layers``, ``AccuracyOptions.digital_layers``).

    Raises
    ------
    NetworkError
        An item that is neither "first", "last" nor the name of one of
        ``matrix_layers``; ``layer`` is that item, ``key`` is ``"digital_layers"``.
        Callers re-raise it with their own context.
    """
    by_name = {layer.name: k for k, layer in enumerate(matrix_layers)}
    out: set[int] = set()
    for item in items:
        if item == "first":
            out.add(0)
        elif item == "last":
            out.add(len(matrix_layers) - 1)
        elif item in by_name:
            out.add(by_name[item])
        else:
            raise NetworkError(f"digital layer {item!r} is not a conv/linear layer; expected 'first', "
                               f"'last' or one of {', '.join(by_name)}", layer=item, key="digital_layers")
    return out
