"""Every ONNX operator placed and costed: the nine onnx light networks, transformer encoders,
one hand-computed digital operator (issue 10)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from archmodel.network.schema import NetworkError
from archmodel.onnx_import import import_onnx, import_onnx_model
from archmodel.spec import load_spec
from archmodel.zoo import get_network, load_network
from archmodel.zoo_transformers import bert_onnx, vit_onnx
from mapping.costs import DIGITAL_OP_TABLE, ir_op_place
from mapping.mapper import map_network

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
NINE = ("bvlc_alexnet", "densenet121", "inception_v1", "inception_v2", "resnet50", "shufflenet",
        "squeezenet", "vgg19", "zfnet512")


@pytest.fixture(scope="module")
def fig11():
    return load_spec("fig11")


def _onnx_counts(path: Path) -> tuple[int, int]:
    """(weights, MACs) of the Conv/Gemm nodes with onnx alone: weight dims from the shape
    initializer of the ConstantOfShape that produces each weight, output shapes from
    onnx.shape_inference."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    g = model.graph
    inits = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    for n in g.node:  # shapes given by Constant nodes
        if n.op_type == "Constant":
            inits[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in [*g.value_info, *g.output]}

    def count(t: str) -> int:  # elements of a constant tensor
        if t in inits:
            return int(inits[t].size)
        p = producer[t]
        if p.op_type == "ConstantOfShape":
            return math.prod(int(d) for d in inits[p.input[0]])
        assert p.op_type == "Reshape", p.op_type  # e.g. Inception v1's classifier weight
        return count(p.input[0])

    weights = macs = 0
    for n in g.node:
        if n.op_type not in ("Conv", "Gemm"):
            continue
        w = count(n.input[1])
        weights += w
        out = shapes[n.output[0]]
        # Conv: every weight is used once per output pixel; Gemm (batch 1): once
        macs += w * (math.prod(out[2:]) if n.op_type == "Conv" else 1)
    return weights, macs


def _check_digital_costs(result, net=None) -> None:
    """Every operator row that computes has a nonzero time and energy on its unit; with ``net``, every
    computing IR layer (not a matrix layer, input or view) has such a row (issue 10)."""
    for d in result.digital_ops:
        if DIGITAL_OP_TABLE.get(d.kind) == "view":
            continue
        assert d.ops > 0 and d.cycles > 0 and d.latency_ns > 0, d
        if d.unit == "digital":
            assert d.energy_pj["digital"] > 0 and d.energy_pj["sram"] > 0, d
        else:
            assert d.unit == "affine" and d.energy_pj["affine"] > 0 and d.read_elems == 0, d
    if net is not None:
        costed = {d.name for d in result.digital_ops if d.ops > 0}
        for lyr in net.layers:
            if lyr.is_matrix_layer or lyr.op == "input":
                continue
            if lyr.op == "digital":
                computes = DIGITAL_OP_TABLE.get(lyr.attrs["kind"]) != "view"
            else:
                computes = ir_op_place(lyr.op, lyr.attrs.get("kind")) is not None
            assert (lyr.name in costed) == computes, (lyr.name, lyr.op)


@pytest.mark.parametrize("name", NINE)
def test_light_networks_map_with_onnx_counts(name, fig11):
    path = LIGHT / f"light_{name}.onnx"
    weights, macs = _onnx_counts(path)
    net = import_onnx(path)
    r = map_network(fig11, net)
    assert r.weights == weights
    assert abs(r.macs - macs) <= 0.01 * macs
    # analog MACs: the network's MACs less those of the layers fig11 keeps digital (first and last matrix layer)
    mats = net.matrix_layers()
    assert r.analog_macs == sum(lyr.mac_count for lyr in mats[1:-1])
    for x in r.layers:
        assert x.energy_total_pj > 0 and x.cycles > 0, x.name
    _check_digital_costs(r, net)
    kinds = {d.kind for d in r.digital_ops if d.ir_op == "digital"}  # ONNX operators the IR has no op for
    if name in ("bvlc_alexnet", "zfnet512", "inception_v1"):
        assert kinds == {"LRN"} and r.digital_op_count > 0 and 0 < r.digital_time_share < 1
    if name == "shufflenet":
        assert kinds == {"Transpose"}
    if name in ("densenet121", "inception_v2"):
        # the Unsqueeze/Mul/Add per-channel scales fold into the affine unit: nothing digital
        assert not kinds
        assert sum(lyr.op == "scale" for lyr in net.layers) == {"densenet121": 242, "inception_v2": 138}[name]


def test_lrn_hand_computed(fig11):
    # conv 1x1 (4 -> 4) then LRN size 3 on a (4, 4, 4) map: N = 64 outputs.
    # ops = (size + 6)·N = 9·64 = 576 lane ops; fig11: 256 lanes, 1000 MHz ->
    # ceil(576/256) = 3 cycles = 3 ns. Energy (fig11 constants, issue 13: Horowitz 2014 scaled to 14 nm):
    # 0.03419 pJ·576 = 19.69344 pJ (digital), SRAM read 64·8 bit·0.03561 = 18.23232 pJ + write the same
    # -> 56.15808 pJ.
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("LRN", ["c"], ["y"], name="lrn", size=3)]
    w = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")
    graph = helper.make_graph(nodes, "lrn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])], [w])
    net = import_onnx_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    r = map_network(fig11, net)
    (d,) = r.digital_ops
    assert (d.kind, d.ops, d.read_elems, d.write_elems, d.cycles) == ("LRN", 576, 64, 64, 3)
    assert d.latency_ns == pytest.approx(3.0)
    assert d.energy_pj["digital"] == pytest.approx(19.69344)
    assert d.energy_pj["sram"] == pytest.approx(36.46464)
    assert d.energy_total_pj == pytest.approx(56.15808)


def _encoder_counts(s, d, depth, mlp):
    """Matrix weights and biases of the encoder blocks: Q, K, V, out (d x d) + MLP (d x mlp, mlp x d)."""
    return depth * (4 * d * d + 2 * d * mlp), depth * (4 * d + mlp + d)


def test_vit_encoder_counts_and_attention_digital(fig11):
    s, d, depth, heads, mlp, patch, classes = 17, 64, 2, 4, 128, 4, 10
    net = import_onnx_model(vit_onnx(seq_len=s, dim=d, depth=depth, heads=heads, mlp=mlp, patch=patch,
                                     classes=classes))
    r = map_network(fig11, net)
    w_blocks, b_blocks = _encoder_counts(s, d, depth, mlp)
    weights = 3 * patch * patch * d + w_blocks + d * classes
    assert r.weights == weights
    assert r.parameters == weights + d + b_blocks + classes
    # class token + position embedding + 2 LayerNorms per block + the final one (gamma, beta)
    assert r.sram_parameters == d + s * d + (2 * depth + 1) * 2 * d
    dh = d // heads
    mm = [x for x in r.digital_ops if x.kind == "MatMul"]
    assert len(mm) == 2 * depth and all(x.macs == heads * s * s * dh for x in mm)
    assert r.digital_macs == 2 * depth * heads * s * s * dh + sum(x.macs for x in r.layers if x.kind == "digital")
    # analog: patches (s-1) x conv, s tokens x block products, 1 x head
    analog = (s - 1) * 3 * patch * patch * d + s * w_blocks + d * classes
    digital_layers = sum(x.macs for x in r.layers if x.kind == "digital")
    assert r.analog_macs + digital_layers == analog
    assert {"Softmax", "LayerNormalization", "Erf", "Transpose"} <= {x.kind for x in r.digital_ops}
    _check_digital_costs(r, net)
    assert 0 < r.digital_time_share < 1 and 0 < r.digital_energy_share < 1


def test_bert_encoder_counts_and_attention_digital(fig11):
    s, d, depth, heads, mlp, vocab = 16, 32, 2, 2, 64, 100
    net = import_onnx_model(bert_onnx(seq_len=s, dim=d, depth=depth, heads=heads, mlp=mlp, vocab=vocab))
    r = map_network(fig11, net)
    w_blocks, b_blocks = _encoder_counts(s, d, depth, mlp)
    assert r.weights == w_blocks and r.parameters == w_blocks + b_blocks
    # word table + position rows + embedding LayerNorm + 2 per layer
    assert r.sram_parameters == vocab * d + s * d + (1 + 2 * depth) * 2 * d
    gather = [x for x in r.digital_ops if x.kind == "Gather"]
    assert len(gather) == 1 and gather[0].sram_params == vocab * d
    mm = [x for x in r.digital_ops if x.kind == "MatMul"]
    assert len(mm) == 2 * depth and all(x.macs == heads * s * s * (d // heads) for x in mm)
    assert r.analog_macs + sum(x.macs for x in r.layers if x.kind == "digital") == s * w_blocks
    _check_digital_costs(r, net)


def test_zoo_transformers_default_and_seq_len(fig11):
    vit = get_network("vit-tiny")
    # published ViT-Ti/16 (DeiT-Tiny): 5.7 M parameters
    total = vit.parameter_count + vit.sram_param_count
    assert abs(total - 5.7e6) <= 0.01 * 5.7e6
    assert vit.layers[1].op == "conv"
    seq = {lyr.input_shapes[0] for lyr in vit.layers if lyr.op == "linear" and len(lyr.input_shapes[0]) == 2}
    assert seq == {(197, 192), (197, 768)}
    bert = load_network("bert-tiny", seq_len=64)
    seq = {lyr.input_shapes[0][0] for lyr in bert.layers if lyr.op == "linear"}
    assert seq == {64}
    assert bert.weight_count == 2 * (4 * 128 * 128 + 2 * 128 * 512)
    with pytest.raises(NetworkError, match="square"):
        get_network("vit-tiny", seq_len=100)
    with pytest.raises(NetworkError, match="no sequence length"):
        get_network("resnet32", seq_len=10)
