"""ONNX -> network IR, through the ``onnx`` package (parsing, checker, shape inference).

Supported (ONNX domain ``ai.onnx``, 2-D vision models and MLPs, batch axis 0):

=====================================  ==========================================
ONNX op                                IR
=====================================  ==========================================
Conv (group, dilations, pads,          ``conv`` (weight OIHW, optional bias)
strides, auto_pad)
Gemm (transA=0, transB, alpha, beta)   ``linear`` (weight ``alpha·B`` as (out, in), bias ``beta·C``)
MatMul with a constant right operand   ``linear`` (bias from a following constant Add)
BatchNormalization                     ``batchnorm`` (or folded into the preceding conv/linear)
Add / Sum of activations               ``add``; Add of a constant onto a conv/linear: its bias
Concat (axis >= 1)                     ``concat``
MaxPool / AveragePool (2-D)            ``maxpool`` / ``avgpool``
GlobalAveragePool                      ``global_avgpool`` + ``reshape`` to (C, 1, 1)
Flatten (axis 1) / Reshape             ``flatten`` / ``reshape`` (target from shape inference)
Relu, Sigmoid, Tanh, LeakyRelu,        ``activation`` of the matching kind
Softmax, HardSwish, HardSigmoid
(alpha 1/6, beta 1/2), Gelu,
Clip (min 0, max inf or 6)
Identity, Dropout                      passed through (inference)
Constant, ConstantOfShape and any      folded to constants (weights may be produced
node whose inputs are all constant     this way, e.g. ``ConstantOfShape``)
=====================================  ==========================================

Weights come from initializers or from constant-producing nodes; they are loaded
into ``Layer.params`` as float32 (conv ``weight``/``bias``, linear
``weight``/``bias``, batchnorm ``gamma``/``beta``/``mean``/``var``). Batch-norm
is kept as a layer by default (the mapper folds it into the affine unit);
``fold_batchnorm=True`` folds it into the preceding conv/linear when that layer
feeds nothing else: ``W' = W·γ/σ``, ``b' = (b − μ)·γ/σ + β`` with
``σ = sqrt(var + eps)`` (per output channel).

Errors
------
Every problem raises one :class:`~archmodel.network.schema.NetworkError` with one line:
a file that is not ONNX, a model that fails the checker, an operator the mapper
cannot place (naming the node and its op type), a non-constant weight.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from archmodel.network.ir import Layer, Network
from archmodel.network.schema import NetworkError
from archmodel.onnx_ops import ACTIVATION_OPS, DigitalFallback, OpHandlers, f32

__all__ = ["SUPPORTED_OPS", "import_onnx", "import_onnx_model"]

_PASS_OPS = ("Identity", "Dropout")
SUPPORTED_OPS: tuple[str, ...] = tuple(sorted({
    "Conv", "Gemm", "MatMul", "BatchNormalization", "Add", "Sum", "Concat", "MaxPool",
    "AveragePool", "GlobalAveragePool", "Flatten", "Reshape", "Constant", "ConstantOfShape",
    *ACTIVATION_OPS, *_PASS_OPS,
}))
"""ONNX op types the importer understands (others raise NetworkError)."""


def import_onnx(path: str | os.PathLike[str], *, fold_batchnorm: bool = False,
                name: str | None = None,
                input_shapes: Mapping[str, Sequence[int]] | None = None,
                shapes_only: bool = False) -> Network:
    """Read an ONNX file and convert it to a :class:`~archmodel.network.ir.Network`.

    Parameters
    ----------
    path : str or path-like
        The ``.onnx`` file.
    fold_batchnorm : bool
        Fold each BatchNormalization into the conv/linear before it (see module docstring).
    name : str, optional
        Network name (default: the graph name, else the file stem).
    input_shapes : mapping of str to sequence of int, optional
        Shapes of graph inputs by ONNX input name, batch axis first (e.g.
        ``{"data": (1, 3, 224, 224)}``), replacing symbolic or fixed dims before
        shape inference (``aimc map --input-shape``). The batch dim must be 1 (the
        mapper models one inference).
    shapes_only : bool
        For a reader of shapes only (the mapper): float initializers kept in external data files are not
        read (the files need not exist); their ``Layer.params`` are read-only zero arrays of the right shape
        and dtype (``numpy.broadcast_to``, no memory). Everything else is imported as without it.

    Raises
    ------
    NetworkError
        Missing file, not an ONNX model, unsupported operator (node and op named),
        an ``input_shapes`` name that is not a graph input, a rank that differs from
        the declared one, an input whose shape stays unknown (named), ...
    """
    import onnx
    from google.protobuf.message import DecodeError

    p = Path(path)
    if not p.is_file():
        raise NetworkError(f"{p}: no such file; expected an ONNX model (.onnx)")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError, UnicodeDecodeError, OSError, TypeError) as exc:
        raise NetworkError(f"{p}: not an ONNX model (protobuf parse failed: "
                           f"{str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__})") from None
    placeholders = _external_weights_as_inputs(model) if shapes_only else {}
    _load_external_data(model, p)
    if not model.graph.node or model.ir_version <= 0:
        raise NetworkError(f"{p}: not an ONNX model (no graph nodes or no IR version found)")
    return import_onnx_model(model, fold_batchnorm=fold_batchnorm,
                             name=name or model.graph.name or p.stem, origin=str(p),
                             input_shapes=input_shapes, placeholders=placeholders)


def _external_weights_as_inputs(model: Any) -> dict[str, np.ndarray]:
    """Turn each float initializer kept in an external file into a typed graph input (shapes only).

    The checker then no longer looks for the file and shape inference still sees the tensor's shape; returns
    name -> read-only zero array of the initializer's shape and dtype (the importer's constant for it).
    """
    from onnx import TensorProto, helper
    from onnx import external_data_helper as ext

    g = model.graph
    inputs = {i.name for i in g.input}
    keep, out = [], {}
    for t in g.initializer:
        if ext.uses_external_data(t) and t.data_location == TensorProto.EXTERNAL:
            dtype = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type))
            if dtype.kind == "f":
                out[t.name] = np.broadcast_to(np.zeros((), dtype), tuple(int(d) for d in t.dims))
                if t.name not in inputs:
                    g.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
                continue
        keep.append(t)
    if out:
        del g.initializer[:]
        g.initializer.extend(keep)
    return out


def _load_external_data(model: Any, path: Path) -> None:
    """Load the tensors an ONNX file keeps in external files; one line naming the tensor and file if one is missing.

    Raises
    ------
    NetworkError
        A tensor's external data file is missing, outside the model's folder, or unreadable.
    """
    import onnx
    from onnx import external_data_helper as ext

    tensors = [t for t in ext._get_all_tensors(model) if ext.uses_external_data(t)]
    if not tensors:
        return
    for t in tensors:
        info = ext.ExternalDataInfo(t)
        data = path.parent / info.location
        if not data.is_file():
            raise NetworkError(f"{path}: initializer {t.name[:60]!r} keeps its data in the external file "
                               f"{info.location[:120]!r}, which is missing; copy it beside the model")
    try:
        ext.load_external_data_for_model(model, str(path.parent))
    except (onnx.checker.ValidationError, OSError, ValueError) as exc:
        raise NetworkError(f"{path}: cannot load external tensor data: {_one_line(exc)[:160]}") from None


def import_onnx_model(model: Any, *, fold_batchnorm: bool = False, name: str | None = None,
                      origin: str = "<onnx model>",
                      input_shapes: Mapping[str, Sequence[int]] | None = None,
                      placeholders: Mapping[str, np.ndarray] | None = None) -> Network:
    """Convert an in-memory ``onnx.ModelProto`` (see :func:`import_onnx`; ``model`` is not modified).

    ``placeholders``: name -> zero array of float initializers turned into graph inputs by a shapes-only
    load (see ``shapes_only`` of :func:`import_onnx`).
    """
    if input_shapes:
        model = _override_input_shapes(model, input_shapes, origin)
    return _Importer(model, fold_batchnorm, origin, dict(placeholders or {})).run(name or model.graph.name or "onnx")


def _override_input_shapes(model: Any, input_shapes: Mapping[str, Sequence[int]], origin: str) -> Any:
    """A copy of ``model`` whose graph inputs named in ``input_shapes`` have those static dims.

    The copy's ``value_info`` and output shapes are cleared so that shape
    inference recomputes them from the new input shapes (stale exporter shapes
    would otherwise conflict).

    Raises
    ------
    NetworkError
        A name that is not a non-constant graph input (the inputs are listed), a
        rank that differs from the declared one, a dim < 1, or a batch dim != 1.
    """
    import onnx

    inits = {i.name for i in model.graph.initializer}
    inputs = {i.name: i for i in model.graph.input if i.name not in inits}
    for nm, dims in input_shapes.items():
        if nm not in inputs:
            raise NetworkError(f"{origin}: --input-shape names {nm!r}, which is not a graph input "
                               f"(inputs: {', '.join(repr(k) for k in inputs) or 'none'})", key="input_shape")
        dims = tuple(int(d) for d in dims)
        if not dims or any(d < 1 for d in dims):
            raise NetworkError(f"{origin}: --input-shape {nm}: dims must be integers >= 1, got {dims}",
                               key="input_shape")
        if dims[0] != 1:
            raise NetworkError(f"{origin}: --input-shape {nm}: batch dim (first) must be 1, got {dims[0]} "
                               "(the mapper models one inference)", key="input_shape")
        t = inputs[nm].type.tensor_type
        if t.HasField("shape") and len(t.shape.dim) != len(dims):
            declared = "x".join(d.dim_param or str(d.dim_value) if (d.dim_param or d.dim_value) else "?"
                                for d in t.shape.dim)
            raise NetworkError(f"{origin}: --input-shape {nm}: rank {len(dims)} differs from the declared "
                               f"shape {declared} (rank {len(t.shape.dim)})", key="input_shape")
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    for vi in g.input:
        if vi.name in input_shapes:
            vi.type.tensor_type.ClearField("shape")
            for d in input_shapes[vi.name]:
                vi.type.tensor_type.shape.dim.add().dim_value = int(d)
    del g.value_info[:]
    for o in g.output:  # keep the rank (the checker wants a shape), forget the dims
        for d in o.type.tensor_type.shape.dim:
            d.Clear()
    return m


# --------------------------------------------------------------------------------------


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _one_line(exc: BaseException, limit: int = 400) -> str:
    """An exception's whole message on one line (onnx's checker spreads one sentence over lines)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _safe_name(s: str) -> str:
    return re.sub(r"\s+", "_", s) or "node"


class _Importer(OpHandlers):
    def __init__(self, model: Any, fold_batchnorm: bool, origin: str,
                 placeholders: dict[str, np.ndarray] | None = None) -> None:
        import onnx

        self.origin = origin
        self.fold = fold_batchnorm
        try:
            onnx.checker.check_model(model)
        except (onnx.checker.ValidationError, ValueError) as exc:
            raise NetworkError(f"{origin}: ONNX checker: {_one_line(exc)}") from None
        try:
            self.model = onnx.shape_inference.infer_shapes(model)
        except Exception as exc:  # noqa: BLE001 - inference errors vary by onnx version
            raise NetworkError(f"{origin}: ONNX shape inference failed: {_one_line(exc)}") from None
        g = self.model.graph
        self.graph = g
        self.const: dict[str, np.ndarray] = {}
        from onnx import numpy_helper

        for init in g.initializer:
            self.const[init.name] = numpy_helper.to_array(init)
        self.const.update(placeholders or {})  # external weights not read (import_onnx shapes_only)
        self.vi_shapes: dict[str, tuple[int | None, ...]] = {}
        for vi in [*g.value_info, *g.input, *g.output]:
            t = vi.type.tensor_type
            if t.HasField("shape"):
                self.vi_shapes[vi.name] = tuple(
                    d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim)
        self.uses: dict[str, int] = {}
        for node in g.node:
            for i in node.input:
                self.uses[i] = self.uses.get(i, 0) + 1
        for o in g.output:
            self.uses[o.name] = self.uses.get(o.name, 0) + 1
        self.folded_bias = 0
        self.layers: list[dict[str, Any]] = []
        self.by_name: dict[str, dict[str, Any]] = {}
        self.tensor: dict[str, str] = {}            # ONNX tensor -> IR layer name
        self.shape: dict[str, tuple[int, ...]] = {}  # IR layer name -> shape (batch excluded)

    # ---- helpers -------------------------------------------------------------------------

    def _err(self, node: Any, msg: str) -> NetworkError:
        return NetworkError(f"{self.origin}: node {node.name or node.output[0]!r} "
                            f"(op {node.op_type}): {msg}", layer=node.name or None)

    def _const(self, node: Any, idx: int, what: str) -> np.ndarray:
        name = node.input[idx] if idx < len(node.input) else ""
        if not name:
            raise self._err(node, f"missing {what}")
        if name not in self.const:
            raise self._err(node, f"{what} {name!r} is not a constant (initializer, Constant or "
                            "ConstantOfShape); the mapper needs fixed weights")
        return self.const[name]

    def _opt_const(self, node: Any, idx: int) -> np.ndarray | None:
        if idx < len(node.input) and node.input[idx]:
            return self.const.get(node.input[idx])
        return None

    def _src(self, node: Any, idx: int = 0) -> str:
        t = node.input[idx]
        if t not in self.tensor:
            raise self._err(node, f"input {t!r} is neither an activation nor supported here "
                            "(constant operands are only allowed as weights)")
        return self.tensor[t]

    def _new_name(self, base: str) -> str:
        name = _safe_name(base)
        k = 1
        while name in self.by_name:
            k += 1
            name = f"{_safe_name(base)}_{k}"
        return name

    def _add(self, node: Any, op: str, inputs: Sequence[str], attrs: dict[str, Any],
             params: dict[str, np.ndarray] | None = None, out: str | None = None,
             suffix: str = "") -> str:
        name = self._new_name((node.name or node.output[0]) + suffix)
        layer = Layer(name, op, tuple(inputs), attrs)
        from archmodel.network.shapes import infer_output  # shape check as we go

        try:
            layer.input_shapes = tuple(self.shape[i] for i in inputs)
            out_shape = infer_output(layer, layer.input_shapes)
        except NetworkError as exc:
            raise self._err(node, str(exc)) from None
        entry = {"name": name, "op": op, "inputs": tuple(inputs), "attrs": attrs,
                 "params": dict(params or {}), "onnx_out": node.output[0]}
        self.layers.append(entry)
        self.by_name[name] = entry
        self.shape[name] = out_shape
        if out is not None:
            self.tensor[out] = name
        return name

    def _pads(self, node: Any, a: dict[str, Any], in_hw: tuple[int, int], k: Sequence[int],
              s: Sequence[int], d: Sequence[int]) -> tuple[int, int, int, int]:
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else str(auto)
        if auto in ("NOTSET", ""):
            pads = list(a.get("pads", [0, 0, 0, 0]))
            if len(pads) != 4:
                raise self._err(node, f"only 2-D is supported, got pads {pads}")
            return int(pads[0]), int(pads[1]), int(pads[2]), int(pads[3])
        if auto == "VALID":
            return 0, 0, 0, 0
        out = []
        for ax in range(2):
            o = math.ceil(in_hw[ax] / s[ax])
            total = max(0, (o - 1) * s[ax] + d[ax] * (k[ax] - 1) + 1 - in_hw[ax])
            small, big = total // 2, total - total // 2
            out.append((small, big) if auto == "SAME_UPPER" else (big, small))
        return out[0][0], out[1][0], out[0][1], out[1][1]

    # ---- main ----------------------------------------------------------------------------

    def run(self, name: str) -> Network:
        g = self.graph
        data_inputs = [i for i in g.input if i.name not in self.const]
        if not data_inputs:
            raise NetworkError(f"{self.origin}: the graph has no non-constant input")
        shapes = [self._input_shape(i.name) for i in data_inputs]
        inp = data_inputs[0]
        in_name = _safe_name(inp.name)
        input_shape = shapes[0]
        self.layers.append({"name": in_name, "op": "input", "inputs": (), "attrs": {}, "params": {}})
        self.by_name[in_name] = self.layers[0]
        self.shape[in_name] = input_shape
        self.tensor[inp.name] = in_name
        # further data inputs (a BERT export's attention_mask, token_type_ids): read from the global buffer
        # by their consumers, which count those reads; in the IR a zero-cost `digital` layer of kind
        # GraphInput hanging off the first input (the IR has one input layer)
        for other, shp in zip(data_inputs[1:], shapes[1:], strict=True):
            layer = self._new_name(other.name)
            entry = {"name": layer, "op": "digital", "inputs": (in_name,), "params": {}, "onnx_out": other.name,
                     "attrs": {"kind": "GraphInput", "shape": shp, "window": 1, "const_elems": 0, "inner": 0}}
            self.layers.append(entry)
            self.by_name[layer] = entry
            self.shape[layer] = shp
            self.tensor[other.name] = layer
        for node in g.node:
            self._node(node)
        outs = [o.name for o in g.output]
        if len(outs) != 1 or outs[0] not in self.tensor:
            raise NetworkError(f"{self.origin}: expected one graph output produced by a supported "
                               f"node, got {outs}")
        last = self.tensor[outs[0]]
        if self.layers[-1]["name"] != last:
            # keep only what the output needs, output last (topological order is preserved)
            self._prune(last)
        layers = [Layer(e["name"], e["op"], e["inputs"], e["attrs"],
                        params={k: f32(v) for k, v in e["params"].items()})
                  for e in self.layers]
        try:
            net = Network(name, input_shape, layers)
            net.folded_bias_count = self.folded_bias
            return net
        except NetworkError as exc:
            raise NetworkError(f"{self.origin}: {exc}", layer=exc.layer, index=exc.index,
                               key=exc.key) from None

    def _input_shape(self, name: str) -> tuple[int, ...]:
        """Static shape of graph input ``name``, batch axis dropped; NetworkError naming it otherwise."""
        shape = self.vi_shapes.get(name)
        if not shape or len(shape) < 2 or any(d is None or d <= 0 for d in shape[1:]):
            got = "unknown" if not shape else "x".join("?" if d is None else str(d) for d in shape)
            raise NetworkError(f"{self.origin}: input {name!r} has shape {got}, not static; "
                               f"give it with --input-shape {name}=1x3x224x224 (N, C, H, W) "
                               "or =1xF (N, F)", key="input_shape")
        return tuple(int(d) for d in shape[1:])

    def _prune(self, last: str) -> None:
        need = {last}
        for e in reversed(self.layers):
            if e["name"] in need:
                need.update(e["inputs"])
        kept = [e for e in self.layers if e["name"] in need and e["name"] != last]
        self.layers = [*kept, self.by_name[last]]

    def _fold_constant(self, node: Any) -> bool:
        """Evaluate nodes whose inputs are all constants; True when folded."""
        op = node.op_type
        if any(attr.g.node or attr.graphs for attr in node.attribute):  # If, Loop, Scan: never evaluated
            raise self._err(node, "control flow with sub-graphs (If, Loop, Scan) is not supported; "
                                  "export the model with the branch resolved")
        if op == "Constant":
            from onnx import numpy_helper

            a = _attrs(node)
            if "value" in a:
                self.const[node.output[0]] = numpy_helper.to_array(node.attribute[0].t) \
                    if node.attribute[0].name == "value" else np.asarray(a["value"])
            else:
                key, val = next(iter(a.items()))
                self.const[node.output[0]] = np.asarray(val, dtype=np.float32 if "float" in key else np.int64)
            return True
        if op == "ConstantOfShape":
            shape = self._const(node, 0, "shape").astype(np.int64).tolist()
            from onnx import numpy_helper

            value = np.zeros(1, dtype=np.float32)
            for attr in node.attribute:
                if attr.name == "value":
                    value = numpy_helper.to_array(attr.t)
            # a read-only broadcast view: a large constant weight costs no memory
            self.const[node.output[0]] = np.broadcast_to(value.reshape(-1)[:1].reshape(()), shape)
            return True
        if op == "Shape" and node.input[0] in self.tensor:
            s = (1, *self.shape[self.tensor[node.input[0]]])
            self.const[node.output[0]] = np.asarray(s, dtype=np.int64)
            return True
        if node.input and all((not i) or i in self.const for i in node.input):
            from onnx import helper
            from onnx.reference import ReferenceEvaluator

            try:
                feeds = {i: self.const[i] for i in node.input if i}
                ins = [helper.make_tensor_value_info(i, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
                       for i, v in feeds.items()]
                outs_vi = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
                graph = helper.make_graph([node], "fold", ins, outs_vi)
                fold = helper.make_model(graph, opset_imports=list(self.model.opset_import),
                                         ir_version=self.model.ir_version)
                outs = ReferenceEvaluator(fold).run(None, {k: np.ascontiguousarray(v) for k, v in feeds.items()})
            except Exception as exc:  # noqa: BLE001
                detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise self._err(node, f"cannot fold this constant expression: {detail}") from None
            for o, v in zip(node.output, outs, strict=False):
                self.const[o] = np.asarray(v)
            return True
        return False

    def _node(self, node: Any) -> None:
        op = node.op_type
        if node.domain not in ("", "ai.onnx"):
            raise self._err(node, f"operator domain {node.domain!r} is not supported")
        if self._fold_constant(node):
            return
        a = _attrs(node)
        out = node.output[0]
        if op in _PASS_OPS:
            self.tensor[out] = self._src(node)
            return
        handler = getattr(self, f"_op_{op}", None)
        try:
            if op in ACTIVATION_OPS:
                self._activation(node, a)
            elif handler is not None:
                handler(node, a)
            else:
                raise DigitalFallback
        except DigitalFallback:
            self._digital(node, a)
