"""ONNX operator handlers of the importer (:mod:`archmodel.onnx_import`): one method per ONNX op type.

:class:`OpHandlers` is a mixin of :class:`archmodel.onnx_import._Importer`, which owns the graph
state (constants, shapes, the IR layers built so far) and the helpers the handlers call (``_add``,
``_src``, ``_const``, ``_err``, ``_pads``). A handler turns one node into IR layers or raises
:class:`DigitalFallback`, which places the node on the digital unit as a ``digital`` layer
(:meth:`OpHandlers._digital`, sized by ONNX shape inference; docs/design.md section 13.1).
Errors are one-line :class:`~archmodel.network.schema.NetworkError`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["ACTIVATION_OPS", "DigitalFallback", "OpHandlers", "f32", "opset_version"]

ACTIVATION_OPS = {
    "Relu": "relu",
    "Sigmoid": "sigmoid",
    "Tanh": "tanh",
    "LeakyRelu": "leaky_relu",
    "Softmax": "softmax",
    "HardSwish": "hardswish",
    "HardSigmoid": "hardsigmoid",
    "Gelu": "gelu",
    "Clip": "relu",
}
"""ONNX activation op type -> IR activation kind."""


class DigitalFallback(Exception):
    """Raised by an op handler: this node is not an IR op; place it on the digital unit."""


_WINDOW_ATTR = {"LRN": "size"}
_POOL_FALLBACK = ("MaxPool", "AveragePool", "LpPool")


def f32(v: np.ndarray) -> np.ndarray:
    """float32 without copying a float32 (possibly broadcast, read-only) array."""
    return v if isinstance(v, np.ndarray) and v.dtype == np.float32 else np.asarray(v, dtype=np.float32)


def opset_version(model: Any) -> int:
    """The model's opset of the default ONNX domain (1 when it names none)."""
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 1


class OpHandlers:
    """The per-op-type methods of the ONNX importer (a mixin; state and helpers in ``_Importer``)."""

    # provided by the importer class
    const: dict[str, np.ndarray]
    tensor: dict[str, str]
    shape: dict[str, tuple[int, ...]]
    vi_shapes: dict[str, tuple[int | None, ...]]

    def _digital(self, node: Any, a: dict[str, Any]) -> None:
        """Place ``node`` on the digital unit as a ``digital`` IR layer (one per output).

        Activation inputs become the layer's inputs; constant inputs count as
        ``const_elems`` (SRAM parameters); output shapes come from ONNX shape
        inference (batch axis 0 dropped). A node without a static output shape
        or without an activation input cannot be sized (one-line NetworkError).
        """
        op = node.op_type
        xs = [self.tensor[i] for i in node.input if i and i in self.tensor]
        consts = [i for i in node.input if i and i not in self.tensor and i in self.const]
        missing = [i for i in node.input if i and i not in self.tensor and i not in self.const]
        if missing or not xs:
            raise self._err(node, f"operator {op!r} cannot be sized: input {(missing or [''])[0]!r} is "
                            "neither an activation nor a constant" if missing else
                            f"operator {op!r} cannot be sized: it reads no activation")
        # stored parameters: float constants with more than one element (embedding tables,
        # normalization scales); shapes, axes, indices and scalars are not
        const_elems = int(sum(int(self.const[i].size) for i in consts
                              if self.const[i].dtype.kind == "f" and self.const[i].size > 1))
        in0 = self.shape[xs[0]]
        window = 1
        inner = 0
        if op in _WINDOW_ATTR:
            window = int(a.get(_WINDOW_ATTR[op], 1))
        elif op in _POOL_FALLBACK and "kernel_shape" in a:
            window = int(math.prod(int(v) for v in a["kernel_shape"]))
        elif op in ("MatMul", "Gemm", "Einsum") and len(xs) >= 1:
            inner = int(in0[-1]) if in0 else 1
        elif op == "Gather":
            window = self._gather_row(node, a)
        for k, o in enumerate(out for out in node.output if out):
            vs = self.vi_shapes.get(o)
            if not vs or any(d is None or d <= 0 for d in vs) or vs[0] != 1:
                raise self._err(node, f"operator {op!r} cannot be sized: output {o!r} has no static "
                                f"shape with batch axis 1 from ONNX shape inference (got {vs})")
            shape = tuple(int(d) for d in vs[1:]) or (1,)
            self._add(node, "digital", xs, {"kind": op, "shape": shape, "window": window,
                                            "const_elems": const_elems if k == 0 else 0,
                                            "inner": inner},
                      out=o, suffix="" if k == 0 else f"/{k}")

    def _gather_row(self, node: Any, a: dict[str, Any]) -> int:
        """Elements of one gathered row of a Gather (``prod(data.shape[axis+1:])``, batch axis included
        for an activation ``data``): ``digital_op_counts`` costs one row read per index."""
        data = node.input[0]
        full = tuple(self.const[data].shape) if data in self.const else (1, *self.shape[self.tensor[data]])
        axis = int(a.get("axis", 0))
        axis = axis + len(full) if axis < 0 else axis
        return max(1, int(math.prod(full[axis + 1:])))

    # ---- ops -----------------------------------------------------------------------------

    def _activation(self, node: Any, a: dict[str, Any]) -> None:
        op = node.op_type
        kind = ACTIVATION_OPS[op]
        attrs: dict[str, Any] = {"kind": kind}
        x = self._src(node)
        rank = len(self.shape[x]) + 1
        if op == "LeakyRelu":
            attrs["alpha"] = float(a.get("alpha", 0.01))
        elif op == "Gelu":
            approx = a.get("approximate", b"none")
            attrs["approximate"] = approx.decode() if isinstance(approx, bytes) else str(approx)
        elif op == "HardSigmoid":
            if not (math.isclose(a.get("alpha", 0.2), 1 / 6, rel_tol=1e-4)
                    and math.isclose(a.get("beta", 0.5), 0.5, rel_tol=1e-4)):
                raise DigitalFallback
        elif op == "Softmax":
            axis = int(a.get("axis", -1 if opset_version(self.model) >= 13 else 1))
            if axis % rank != 1 or math.prod(self.shape[x][1:]) != 1:
                raise DigitalFallback
        elif op == "Clip":
            lo = a.get("min", None)
            hi = a.get("max", None)
            c1, c2 = self._opt_const(node, 1), self._opt_const(node, 2)
            lo = float(c1) if c1 is not None else (float(lo) if lo is not None else -math.inf)
            hi = float(c2) if c2 is not None else (float(hi) if hi is not None else math.inf)
            if lo == 0 and hi == 6:
                attrs["kind"] = "relu6"
            elif not (lo == 0 and math.isinf(hi)):
                raise DigitalFallback
        self._add(node, "activation", [x], attrs, out=node.output[0])

    def _op_Conv(self, node: Any, a: dict[str, Any]) -> None:
        x = self._src(node)
        w = self._const(node, 1, "weight")
        if w.ndim != 4:
            raise self._err(node, f"only 2-D convolutions are supported, weight has shape {w.shape}")
        b = self._opt_const(node, 2)
        if len(node.input) > 2 and node.input[2] and b is None:
            raise self._err(node, f"bias {node.input[2]!r} is not a constant")
        k = tuple(int(v) for v in a.get("kernel_shape", w.shape[2:]))
        s = tuple(int(v) for v in a.get("strides", (1, 1)))
        d = tuple(int(v) for v in a.get("dilations", (1, 1)))
        in_shape = self.shape[x]
        if len(in_shape) != 3:
            raise self._err(node, f"expects a (N, C, H, W) input, got (N, {in_shape})")
        pads = self._pads(node, a, in_shape[1:], k, s, d)
        params = {"weight": w}
        if b is not None:
            params["bias"] = b.reshape(-1)
        self._add(node, "conv", [x], {
            "out_channels": int(w.shape[0]), "kernel_size": k, "stride": s, "padding": pads,
            "dilation": d, "groups": int(a.get("group", 1)), "bias": b is not None,
        }, params, out=node.output[0])

    def _vector_input(self, node: Any, x: str) -> str:
        if len(self.shape[x]) != 1:
            raise self._err(node, f"expects a (N, F) input, got (N, {self.shape[x]}); "
                            "add a Flatten before it")
        return x

    def _op_Gemm(self, node: Any, a: dict[str, Any]) -> None:
        if int(a.get("transA", 0)) or node.input[1] not in self.const:
            raise DigitalFallback
        x = self._vector_input(node, self._src(node))
        bm = f32(self._const(node, 1, "weight B"))
        w = bm if int(a.get("transB", 0)) else bm.T
        if float(a.get("alpha", 1.0)) != 1.0:
            w = w * np.float32(a["alpha"])
        c = self._opt_const(node, 2)
        params = {"weight": w}
        if c is not None:
            params["bias"] = np.broadcast_to(c.astype(np.float32) * np.float32(a.get("beta", 1.0)),
                                             (1, w.shape[0])).reshape(-1).copy()
        self._add(node, "linear", [x], {"out_features": int(w.shape[0]), "bias": c is not None},
                  params, out=node.output[0])

    def _op_MatMul(self, node: Any, a: dict[str, Any]) -> None:
        if node.input[1] not in self.const:
            raise DigitalFallback  # a product of two activations (attention): not weight-stationary
        x = self._src(node)
        if len(self.shape[x]) > 2:
            x = self._vector_input(node, x)
        bm = self._const(node, 1, "weight B")
        if bm.ndim != 2:
            raise self._err(node, f"only (F, out) constant right operands are supported, got {bm.shape}")
        self._add(node, "linear", [x], {"out_features": int(bm.shape[1]), "bias": False},
                  {"weight": bm.T}, out=node.output[0])

    def _op_BatchNormalization(self, node: Any, a: dict[str, Any]) -> None:
        x = self._src(node)
        gamma, beta, mean, var = (self._const(node, i, w).astype(np.float32).reshape(-1)
                                  for i, w in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var")))
        eps = float(a.get("epsilon", 1e-5))
        prev = self.by_name[x]
        if (self.fold and prev["op"] in ("conv", "linear") and self.uses.get(prev["onnx_out"], 0) == 1
                and "weight" in prev["params"]):
            factor = gamma / np.sqrt(var + np.float32(eps))
            w = prev["params"]["weight"].astype(np.float32)
            prev["params"]["weight"] = w * factor.reshape(-1, *([1] * (w.ndim - 1)))
            if "bias" not in prev["params"]:
                self.folded_bias += int(mean.size)  # a bias made by folding: not a parameter
            b0 = prev["params"].get("bias", np.zeros_like(mean))
            prev["params"]["bias"] = (b0 - mean) * factor + beta
            prev["attrs"] = {**prev["attrs"], "bias": True}
            self.tensor[node.output[0]] = x
            return
        self._add(node, "batchnorm", [x], {"eps": eps},
                  {"gamma": gamma, "beta": beta, "mean": mean, "var": var}, out=node.output[0])

    def _op_Add(self, node: Any, a: dict[str, Any]) -> None:
        consts = [i for i in node.input if i in self.const]
        if not consts:
            self._op_Sum(node, a)
            return
        if len(node.input) != 2 or len(consts) != 1:
            raise DigitalFallback
        other = node.input[0] if node.input[1] in self.const else node.input[1]
        src = self.tensor.get(other)
        prev = self.by_name.get(src) if src else None
        c = self.const[consts[0]].astype(np.float32)
        if (prev is None or prev["op"] not in ("conv", "linear") or prev["attrs"]["bias"]
                or self.uses.get(other, 0) != 1):
            self._scale(node, other, shift=c)
            return
        n_out = prev["attrs"].get("out_channels", prev["attrs"].get("out_features"))
        if c.size != n_out:
            self._scale(node, other, shift=c)
            return
        prev["params"]["bias"] = c.reshape(-1)
        prev["attrs"] = {**prev["attrs"], "bias": True}
        self.tensor[node.output[0]] = src  # type: ignore[assignment]

    def _per_channel(self, shape: tuple[int, ...], c: np.ndarray) -> bool:
        """True when constant ``c`` broadcasts along axis 0 only of an activation ``(C, ...)``
        (ONNX shape ``(C, 1, ..)`` or ``(1, C, 1, ..)``, or a scalar)."""
        if c.size == 1:
            return True
        rank = len(shape) + 1
        cs = c.shape
        if len(cs) == rank - 1:
            cs = (1, *cs)
        if len(cs) != rank or cs[0] != 1:
            return False
        return cs[1] == shape[0] and all(d == 1 for d in cs[2:])

    def _scale(self, node: Any, other: str, *, scale: np.ndarray | None = None,
               shift: np.ndarray | None = None) -> None:
        """Fold a per-channel constant Mul/Add that follows an analog layer (directly or via a
        batch-norm or another such scale) into a ``scale`` layer (affine unit), else go digital."""
        src = self.tensor.get(other)
        prev = self.by_name.get(src) if src else None
        c = scale if scale is not None else shift
        assert c is not None
        if (prev is None or prev["op"] not in ("conv", "linear", "batchnorm", "scale")
                or self.uses.get(other, 0) != 1 or not self._per_channel(self.shape[src], c)):
            raise DigitalFallback
        n = self.shape[src][0]
        vals = np.broadcast_to(np.asarray(c, dtype=np.float32).reshape(-1), (n,)).copy()
        params = {"scale": vals if scale is not None else np.ones(n, np.float32),
                  "shift": vals if shift is not None else np.zeros(n, np.float32)}
        self._add(node, "scale", [src], {}, params, out=node.output[0])

    def _op_Mul(self, node: Any, a: dict[str, Any]) -> None:
        consts = [i for i in node.input if i in self.const]
        if len(node.input) != 2 or len(consts) != 1:
            raise DigitalFallback
        other = node.input[0] if node.input[1] in self.const else node.input[1]
        self._scale(node, other, scale=self.const[consts[0]])

    def _op_Sum(self, node: Any, a: dict[str, Any]) -> None:
        if any(i in self.const for i in node.input):
            raise DigitalFallback
        xs = [self._src(node, i) for i in range(len(node.input))]
        if len({self.shape[x] for x in xs}) > 1:
            raise DigitalFallback  # broadcasting
        if len(xs) == 1:
            self.tensor[node.output[0]] = xs[0]
            return
        self._add(node, "add", xs, {}, out=node.output[0])

    def _op_Concat(self, node: Any, a: dict[str, Any]) -> None:
        if any(i in self.const for i in node.input):
            raise DigitalFallback
        xs = [self._src(node, i) for i in range(len(node.input))]
        rank = len(self.shape[xs[0]]) + 1
        axis = int(a["axis"]) % rank
        if axis == 0 or any(i in self.const for i in node.input):
            raise DigitalFallback
        self._add(node, "concat", xs, {"axis": axis - 1}, out=node.output[0])

    def _pool(self, node: Any, a: dict[str, Any], op: str) -> None:
        x = self._src(node)
        k = tuple(int(v) for v in a["kernel_shape"])
        if len(k) != 2 or any(int(v) != 1 for v in a.get("dilations", (1, 1))):
            raise DigitalFallback
        s = tuple(int(v) for v in a.get("strides", (1, 1)))
        in_shape = self.shape[x]
        if len(in_shape) != 3:
            raise self._err(node, f"expects a (N, C, H, W) input, got (N, {in_shape})")
        pads = self._pads(node, a, in_shape[1:], k, s, (1, 1))
        if int(a.get("ceil_mode", 0)):
            # accepted only where ceil and floor agree
            for ax, (p0, p1) in enumerate(((pads[0], pads[2]), (pads[1], pads[3]))):
                span = in_shape[1 + ax] + p0 + p1 - k[ax]
                if span % s[ax]:
                    raise DigitalFallback
        attrs: dict[str, Any] = {"kernel": k, "stride": s, "padding": pads}
        if op == "avgpool":
            attrs["count_include_pad"] = bool(int(a.get("count_include_pad", 0)))
        self._add(node, op, [x], attrs, out=node.output[0])

    def _op_MaxPool(self, node: Any, a: dict[str, Any]) -> None:
        if len(node.output) > 1 and node.output[1]:
            raise DigitalFallback
        self._pool(node, a, "maxpool")

    def _op_AveragePool(self, node: Any, a: dict[str, Any]) -> None:
        self._pool(node, a, "avgpool")

    def _op_GlobalAveragePool(self, node: Any, a: dict[str, Any]) -> None:
        x = self._src(node)
        if len(self.shape[x]) != 3:
            raise self._err(node, f"expects a (N, C, H, W) input, got (N, {self.shape[x]})")
        y = self._add(node, "global_avgpool", [x], {})
        c = self.shape[y][0]
        self._add(node, "reshape", [y], {"shape": (c, 1, 1)}, out=node.output[0], suffix="/4d")

    def _op_Flatten(self, node: Any, a: dict[str, Any]) -> None:
        x = self._src(node)
        if int(a.get("axis", 1)) != 1:
            raise DigitalFallback
        if len(self.shape[x]) == 1:
            self.tensor[node.output[0]] = x
            return
        self._add(node, "flatten", [x], {}, out=node.output[0])

    def _op_Reshape(self, node: Any, a: dict[str, Any]) -> None:
        x = self._src(node)
        in_shape = self.shape[x]
        target = self._opt_const(node, 1)
        if target is not None:
            t = [int(v) for v in target.reshape(-1)]
            full = (1, *in_shape)
            t = [full[i] if (v == 0 and not int(a.get("allowzero", 0))) else v for i, v in enumerate(t)]
            if -1 in t:
                known = math.prod(v for v in t if v != -1)
                t = [math.prod(full) // known if v == -1 else v for v in t]
            out = tuple(t)
        else:
            vs = self.vi_shapes.get(node.output[0])
            if not vs or any(d is None for d in vs[1:]):
                raise self._err(node, "target shape is neither constant nor known from shape inference")
            out = (1, *[int(d) for d in vs[1:]])
        if not out or out[0] != 1 or math.prod(out) != math.prod(in_shape):
            raise DigitalFallback
        rest = tuple(out[1:])
        if rest == in_shape:
            self.tensor[node.output[0]] = x
        elif len(rest) == 1:
            self._add(node, "flatten", [x], {}, out=node.output[0])
        else:
            self._add(node, "reshape", [x], {"shape": rest}, out=node.output[0])
