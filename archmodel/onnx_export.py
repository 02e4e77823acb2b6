"""Network IR + trained parameters -> an ONNX model (``onnx.helper``), the inverse of :mod:`archmodel.onnx_import`.

Written for ``aimc train --network model.onnx`` (fine-tuned weights back to
ONNX) and for tests that compare an exported network with the native run.
Opset 13, batch axis symbolic (``N``). Initializer names are
``<layer>.weight`` / ``<layer>.bias`` and, for batch norm, ``<layer>.weight``
(γ), ``<layer>.bias`` (β), ``<layer>.running_mean``, ``<layer>.running_var`` --
the PyTorch export names :func:`archmodel.weights_io.load_onnx_params` matches.

Ops: ``conv`` → Conv, ``linear`` → Gemm (transB = 1), ``batchnorm`` →
BatchNormalization, ``activation`` relu/identity → Relu/Identity, ``maxpool`` /
``avgpool`` → MaxPool/AveragePool, ``global_avgpool`` → GlobalAveragePool +
Flatten, ``flatten`` → Flatten, ``reshape`` → Reshape, ``add`` → Add (Sum for more
than two), ``concat`` → Concat (axis + 1 for the batch axis).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from archmodel.errors import AimcError
from archmodel.network.ir import Network

__all__ = ["OnnxExportError", "network_to_onnx_bytes"]

OPSET = 13


class OnnxExportError(AimcError, ValueError):
    """A layer the exporter has no ONNX form for (one line naming layer and op)."""


def network_to_onnx_bytes(network: Network, params: Mapping[str, Mapping[str, np.ndarray]]) -> bytes:
    """Serialized ONNX model of ``network`` with ``params`` as initializers (see the module docstring).

    Raises
    ------
    OnnxExportError
        A layer of another op, or a missing parameter.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes, inits = [], []

    def init(name: str, arr: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(arr, dtype=np.float32), name))
        return name

    def param(ln: str, pn: str) -> np.ndarray:
        try:
            return np.asarray(params[ln][pn])
        except KeyError:
            raise OnnxExportError(f"layer {ln!r}: no parameter {pn!r} to export") from None

    for layer in network.layers[1:]:
        a, ln, xs = layer.attrs, layer.name, list(layer.inputs)
        if layer.op == "conv":
            ins = xs + [init(f"{ln}.weight", param(ln, "weight"))]
            if a["bias"]:
                ins.append(init(f"{ln}.bias", param(ln, "bias")))
            pt, pl, pb, pr = a["padding"]
            nodes.append(helper.make_node("Conv", ins, [ln], name=ln, kernel_shape=list(a["kernel_size"]),
                                          strides=list(a["stride"]), pads=[pt, pl, pb, pr],
                                          dilations=list(a["dilation"]), group=int(a["groups"])))
        elif layer.op == "linear":
            ins = xs + [init(f"{ln}.weight", param(ln, "weight"))]
            if a["bias"]:
                ins.append(init(f"{ln}.bias", param(ln, "bias")))
            nodes.append(helper.make_node("Gemm", ins, [ln], name=ln, transB=1))
        elif layer.op == "batchnorm":
            ins = xs + [init(f"{ln}.weight", param(ln, "gamma")), init(f"{ln}.bias", param(ln, "beta")),
                        init(f"{ln}.running_mean", param(ln, "mean")), init(f"{ln}.running_var", param(ln, "var"))]
            nodes.append(helper.make_node("BatchNormalization", ins, [ln], name=ln, epsilon=float(a["eps"])))
        elif layer.op == "activation" and a["kind"] in ("relu", "identity"):
            nodes.append(helper.make_node("Relu" if a["kind"] == "relu" else "Identity", xs, [ln], name=ln))
        elif layer.op in ("maxpool", "avgpool"):
            pt, pl, pb, pr = a["padding"]
            kw = {"kernel_shape": list(a["kernel"]), "strides": list(a["stride"]), "pads": [pt, pl, pb, pr]}
            if layer.op == "avgpool":
                kw["count_include_pad"] = int(bool(a["count_include_pad"]))
            nodes.append(helper.make_node("MaxPool" if layer.op == "maxpool" else "AveragePool", xs, [ln],
                                          name=ln, **kw))
        elif layer.op == "global_avgpool":
            nodes.append(helper.make_node("GlobalAveragePool", xs, [f"{ln}__4d"], name=f"{ln}__gap"))
            nodes.append(helper.make_node("Flatten", [f"{ln}__4d"], [ln], name=ln, axis=1))
        elif layer.op == "flatten":
            nodes.append(helper.make_node("Flatten", xs, [ln], name=ln, axis=1))
        elif layer.op == "reshape":
            shape = init(f"{ln}.shape", np.zeros(0))  # replaced below by an int64 tensor
            inits.pop()
            inits.append(numpy_helper.from_array(np.array((-1,) + tuple(layer.output_shape), np.int64), shape))
            nodes.append(helper.make_node("Reshape", xs + [shape], [ln], name=ln))
        elif layer.op == "add":
            nodes.append(helper.make_node("Add" if len(xs) == 2 else "Sum", xs, [ln], name=ln))
        elif layer.op == "concat":
            axis = a["axis"] % len(layer.output_shape) + 1
            nodes.append(helper.make_node("Concat", xs, [ln], name=ln, axis=axis))
        else:
            kind = f" {a['kind']}" if layer.op == "activation" else ""
            raise OnnxExportError(f"layer {ln!r}: op {layer.op}{kind} has no ONNX export")
    inp = network.layers[0]
    out = network.layers[-1]
    graph = helper.make_graph(
        nodes, network.name,
        [helper.make_tensor_value_info(inp.name, TensorProto.FLOAT, ["N", *inp.output_shape])],
        [helper.make_tensor_value_info(out.name, TensorProto.FLOAT, ["N", *out.output_shape])],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="aimc")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()
