"""``--input-shape``: a symbolic batch/spatial ONNX input made static (issue 10, item 6)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from archmodel.network.schema import NetworkError
from archmodel.onnx_import import import_onnx_model
from mapping.cli.main import main


def _symbolic_model() -> onnx.ModelProto:
    """x: (N, 3, H, W) symbolic -> Conv 3x3 pad 1 (8 filters) -> Relu -> GlobalAveragePool -> Flatten -> Gemm 8->4."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w")
    fc = numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "fc")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["g"], name="gap"),
             helper.make_node("Flatten", ["g"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fc"], ["y"], name="fc", transB=1)]
    graph = helper.make_graph(nodes, "sym", [x], [y], [w, fc])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_input_shape_makes_symbolic_dims_static():
    model = _symbolic_model()
    net = import_onnx_model(model, input_shapes={"x": (1, 3, 20, 12)})
    assert net.input_shape == (3, 20, 12)
    # hand count: 20*12 output pixels x 8 filters x 27 taps + the 8->4 Gemm
    assert net.mac_count == 20 * 12 * 8 * 27 + 8 * 4
    assert model.graph.input[0].type.tensor_type.shape.dim[2].dim_param == "H"  # caller's model untouched


def test_unknown_shape_names_the_input():
    with pytest.raises(NetworkError, match=r"input 'x' has shape \?x3x\?x\?.*--input-shape x="):
        import_onnx_model(_symbolic_model())


@pytest.mark.parametrize("shapes, match", [
    ({"z": (1, 3, 8, 8)}, r"names 'z', which is not a graph input \(inputs: 'x'\)"),
    ({"x": (1, 3, 8)}, r"rank 3 differs from the declared shape Nx3xHxW"),
    ({"x": (2, 3, 8, 8)}, r"batch dim \(first\) must be 1"),
])
def test_bad_overrides_one_line(shapes, match):
    with pytest.raises(NetworkError, match=match) as e:
        import_onnx_model(_symbolic_model(), input_shapes=shapes)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("value, match", [
    ("x1x3x8x8", "expected NAME=D1xD2x"),
    ("x=1x3xHx8", "expected NAME=D1xD2x"),
    ("x=1x0x8x8", "expected NAME=D1xD2x"),
    ("z=1x3x8x8", "not a graph input"),
])
def test_cli_input_shape_errors(tmp_path, capsys, value, match):
    p = tmp_path / "sym.onnx"
    onnx.save(_symbolic_model(), str(p))
    assert main(["map", "--arch", "tiny", "--network", str(p), "--out", str(tmp_path / "o"),
                 "--input-shape", value, "--quiet", "--no-plots"]) == 1
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_cli_input_shape_maps(tmp_path):
    p = tmp_path / "sym.onnx"
    onnx.save(_symbolic_model(), str(p))
    assert main(["map", "--arch", "tiny", "--network", str(p), "--out", str(tmp_path / "o"),
                 "--input-shape", "x=1x3x16x16", "--quiet", "--no-plots"]) == 0
    import json
    rep = json.loads((tmp_path / "o" / "report.json").read_text())
    macs = rep["totals"]["macs_per_inference"]
    assert macs == 16 * 16 * 8 * 27 + 8 * 4
