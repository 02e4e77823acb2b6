"""``import_onnx(..., shapes_only=True)`` (what ``aimc map`` uses): external weight files are neither read nor
required, and the mapping report is the one of the full import, byte for byte (issue 22)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from archmodel.network.schema import NetworkError  # noqa: E402
from archmodel.onnx_import import import_onnx  # noqa: E402
from archmodel.spec import load_spec  # noqa: E402
from mapping.mapper import map_network  # noqa: E402
from mapping.report import render_report  # noqa: E402


def _model(path):
    """Conv 3->8 (3x3, pad 1) + BN + Relu + Flatten + Gemm 512->10 on 3x8x8; weights in ``w.bin`` beside it."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal(s).astype(np.float32), n) for n, s in (
        ("W", (8, 3, 3, 3)), ("g", (8,)), ("b", (8,)), ("m", (8,)), ("v", (8,)), ("F", (10, 512)), ("c", (10,)))]
    inits[4] = numpy_helper.from_array(rng.uniform(0.5, 1.5, 8).astype(np.float32), "v")
    nodes = [helper.make_node("Conv", ["x", "W"], ["c1"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("BatchNormalization", ["c1", "g", "b", "m", "v"], ["bn"], name="bn"),
             helper.make_node("Relu", ["bn"], ["r"], name="relu"),
             helper.make_node("Flatten", ["r"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "F", "c"], ["y"], transB=1, name="fc")]
    g = helper.make_graph(nodes, "probe", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(m, str(path), save_as_external_data=True, location="w.bin", size_threshold=0)
    return path


def _report(net) -> dict:
    return render_report(map_network(load_spec("fig11"), net), plots=False)


@pytest.mark.parametrize("fold", [False, True])
def test_shapes_only_maps_like_the_full_import_and_needs_no_weight_file(tmp_path, fold):
    path = _model(tmp_path / "m.onnx")
    full = import_onnx(path, fold_batchnorm=fold)
    shapes = import_onnx(path, fold_batchnorm=fold, shapes_only=True)
    assert [(lyr.name, lyr.op, lyr.output_shape) for lyr in shapes.layers] == \
           [(lyr.name, lyr.op, lyr.output_shape) for lyr in full.layers]
    w = shapes["conv"].params["weight"]
    assert w.shape == (8, 3, 3, 3) and w.dtype == np.float32 and (fold or not w.any())  # zeros, not the file
    assert np.abs(full["conv"].params["weight"]).sum() > 0
    expected = _report(full)
    assert _report(shapes) == expected
    (tmp_path / "w.bin").unlink()
    assert _report(import_onnx(path, fold_batchnorm=fold, shapes_only=True)) == expected
    with pytest.raises(NetworkError, match="keeps its data in the external file 'w.bin', which is missing"):
        import_onnx(path, fold_batchnorm=fold)
