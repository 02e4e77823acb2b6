"""ONNX import: real networks from the onnx wheel, and a small model checked against onnx's reference runtime."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from archmodel.network.forward import forward
from archmodel.network.schema import NetworkError
from archmodel.onnx_import import import_onnx, import_onnx_model
from archmodel.zoo import load_network

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def _weight_elements_read_directly(path: Path) -> int:
    """Element count of every Conv/Gemm weight tensor, read with onnx only (not the importer)."""
    model = onnx.load(str(path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    shapes = {k: v.shape for k, v in inits.items()}
    for node in model.graph.node:  # weights made by ConstantOfShape(shape initializer)
        if node.op_type == "ConstantOfShape":
            shapes[node.output[0]] = tuple(int(d) for d in inits[node.input[0]])
    total = 0
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm"):
            total += math.prod(shapes[node.input[1]])
    return total


def test_resnet50_macs_and_weights():
    path = LIGHT / "light_resnet50.onnx"
    net = import_onnx(path)
    # ResNet-50: about 4.1 GMACs per 224x224 image (He et al. 2016, Table 1: 3.8e9 FLOPs as mult-adds
    # of conv layers; 4.1 G with the FC and the v1.5/Caffe2 stride placement)
    assert net.mac_count == pytest.approx(4.1e9, rel=0.01)
    assert net.weight_count == _weight_elements_read_directly(path)
    assert net.weight_count == 25_502_912
    assert len(net.matrix_layers()) == 54
    assert net.output_shape == (1000,)
    folded = import_onnx(path, fold_batchnorm=True)
    assert not any(layer.op == "batchnorm" for layer in folded.layers)
    assert folded.mac_count == net.mac_count


def test_vgg19_counts():
    path = LIGHT / "light_vgg19.onnx"
    net = load_network(str(path))
    assert net.weight_count == _weight_elements_read_directly(path) == 143_652_544
    assert net.mac_count == pytest.approx(19.6e9, rel=0.01)  # VGG-19: 19.6 GFLOPs (mult-adds)


def _small_model(opset: int = 15) -> onnx.ModelProto:
    rng = np.random.default_rng(0)

    def init(name, shape, scale=0.3):
        return numpy_helper.from_array(rng.normal(0, scale, shape).astype(np.float32), name)

    inits = [
        init("w1", (8, 2, 3, 3)), init("b1", (8,)),
        init("g", (8,), 0.1), init("beta", (8,)), init("mu", (8,)),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 8).astype(np.float32), "var"),
        init("w2", (8, 8, 3, 3)),
        init("wfc", (5, 8)), init("bfc", (5,)),
        init("wmm", (5, 6)), init("bmm", (6,)),
    ]
    inits[2] = numpy_helper.from_array((1 + rng.normal(0, 0.1, 8)).astype(np.float32), "g")
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], group=2, dilations=[2, 2],
                         pads=[2, 1, 2, 1], strides=[1, 1]),
        helper.make_node("BatchNormalization", ["c1", "g", "beta", "mu", "var"], ["bn"], epsilon=1e-5),
        helper.make_node("Relu", ["bn"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Sigmoid", ["c2"], ["s2"]),
        helper.make_node("Add", ["s2", "p1"], ["a"]),
        helper.make_node("AveragePool", ["a"], ["ap"], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]),
        helper.make_node("GlobalAveragePool", ["ap"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["f"]),
        helper.make_node("Gemm", ["f", "wfc", "bfc"], ["fc"], transB=1),
        helper.make_node("Tanh", ["fc"], ["t"]),
        helper.make_node("MatMul", ["t", "wmm"], ["mm"]),
        helper.make_node("Add", ["mm", "bmm"], ["mmb"]),
        helper.make_node("Softmax", ["mmb"], ["y"], axis=1),
    ]
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 10, 12])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("fold", [False, True])
def test_forward_matches_onnx_reference(fold):
    # opset 15: the reference runtime's opset-9 BatchNormalization applies a momentum update
    model = _small_model()
    net = import_onnx_model(model, fold_batchnorm=fold)
    x = np.random.default_rng(1).normal(size=(3, 4, 10, 12)).astype(np.float32)
    ref = ReferenceEvaluator(model)
    expected = np.concatenate([ref.run(None, {"x": x[i:i + 1]})[0] for i in range(3)])
    got = forward(net, x)
    assert got.shape == (3, 6)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)
    conv = net.matrix_layers()[0]
    assert conv.groups == 2 and conv.attrs["dilation"] == (2, 2)
    assert any(layer.op == "batchnorm" for layer in net.layers) != fold


def test_not_onnx_file(tmp_path):
    p = tmp_path / "bad.onnx"
    p.write_text("this is not a protobuf, it is a text file\n" * 3)
    with pytest.raises(NetworkError) as exc:
        import_onnx(p)
    assert "not an ONNX model" in str(exc.value) and "\n" not in str(exc.value)


def test_unsized_operator_names_node_and_op(tmp_path):
    # Transpose goes to the digital unit; NonZero's output shape depends on the data
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="first"),
             helper.make_node("Transpose", ["r"], ["t"], name="the_transpose", perm=[0, 1, 3, 2]),
             helper.make_node("NonZero", ["t"], ["y"], name="the_nonzero")]
    graph = helper.make_graph(nodes, "t", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [4, "n"])])
    p = tmp_path / "t.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(p))
    with pytest.raises(NetworkError) as exc:
        load_network(str(p))
    msg = str(exc.value)
    assert "the_nonzero" in msg and "NonZero" in msg and "cannot be sized" in msg and "\n" not in msg


def test_unsorted_graph_gives_one_complete_line(tmp_path, capsys):
    # nodes listed consumer first: the onnx checker's message spans three lines;
    # the whole sentence must reach the user on one line.
    from mapping.cli.main import main

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "W")
    nodes = [helper.make_node("Relu", ["h"], ["y"], name="relu"), helper.make_node("MatMul", ["x", "W"], ["h"], name="mm")]
    p = tmp_path / "unsorted.onnx"
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [x], [y], [w]),
                                opset_imports=[helper.make_opsetid("", 13)]), str(p))
    with pytest.raises(NetworkError) as exc:
        import_onnx(p)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{p}: ONNX checker: Nodes in a graph must be topologically sorted")
    assert msg.endswith("input 'h' of node: name: relu OpType: Relu is not output of any previous nodes.")
    assert main(["map", "--arch", "tiny", "--network", str(p), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"aimc: error: {msg}"]
