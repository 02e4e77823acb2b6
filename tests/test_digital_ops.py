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
                src = lyr
                while src.op in ("batchnorm", "scale"):  # merged into a matrix layer's affine coefficients
                    src = net[src.inputs[0]]
                computes = computes and not src.is_matrix_layer
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


def test_fused_and_pool_ops_hand_computed(fig11):
    # conv 1x1 (4 -> 4) on (4, 4, 4), Relu, residual Add with the input, MaxPool 2x2/2 -> (4, 2, 2).
    # fig11: affine_op_pj 0.0114 pJ (horowitz2014 32-bit add at 14 nm), 1 affine lane, 512 columns, 256 digital
    # lanes, 1000 MHz, digital_mac_pj 0.03419, SRAM 0.03561 pJ/bit read and write, 8-bit activations.
    # Relu (affine unit): N = 64 ops, 0.0114 * 64 = 0.7296 pJ; 16 pixels x ceil(4 / 1) = 64 cycles = 64 ns.
    # Add (affine unit): the same 64 ops, 0.7296 pJ, 64 cycles.
    # MaxPool (digital unit): window 4 x N 16 = 64 ops, ceil(64 / 256) = 1 cycle = 1 ns;
    # digital 0.03419 * 64 = 2.18816 pJ, SRAM (64 read + 16 written) * 8 bit * 0.03561 = 22.7904 pJ.
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Add", ["r", "x"], ["a"], name="res"),
             helper.make_node("MaxPool", ["a"], ["y"], name="pool", kernel_shape=[2, 2], strides=[2, 2])]
    w = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")
    graph = helper.make_graph(nodes, "fused", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 2, 2])], [w])
    net = import_onnx_model(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))
    r = map_network(fig11, net)
    rows = {d.ir_op: d for d in r.digital_ops}
    assert set(rows) == {"activation", "add", "maxpool"}
    for ir_op in ("activation", "add"):
        d = rows[ir_op]
        assert (d.unit, d.ops, d.cycles, d.read_elems, d.write_elems) == ("affine", 64, 64, 0, 0)
        assert d.latency_ns == pytest.approx(64.0) and d.energy_pj == {"affine": pytest.approx(0.7296)}
    p = rows["maxpool"]
    assert (p.unit, p.kind, p.ops, p.cycles, p.read_elems, p.write_elems) == ("digital", "MaxPool", 64, 1, 64, 16)
    assert p.energy_pj["digital"] == pytest.approx(2.18816) and p.energy_pj["sram"] == pytest.approx(22.7904)
    # the totals: affine-unit passes and digital-unit lane ops separated; the pool is on the digital unit's path
    assert r.affine_op_count == 128 and r.digital_op_count == 64
    assert r.digital_time_ns == pytest.approx(
        sum(x.latency_ns for x in r.layers if x.kind == "digital") + 1.0)
    assert r.energy_pj["affine"] == pytest.approx(sum(x.energy_pj["affine"] for x in r.layers) + 2 * 0.7296)


def test_gather_costs_one_row_per_index(fig11):
    # Gather of S = 16 token ids from a (100, 32) table: 16 row reads of 32 elements -> ops 16,
    # read 16 indices + 16 * 32 = 528 elements, write 512; not one op per output element (512).
    net = import_onnx_model(bert_onnx(seq_len=16, dim=32, depth=1, heads=2, mlp=64, vocab=100))
    (g,) = [d for d in map_network(fig11, net).digital_ops if d.kind == "Gather"]
    assert (g.ops, g.read_elems, g.write_elems, g.sram_params) == (16, 528, 512, 3200)
    assert g.cycles == 1 and g.energy_pj["sram"] == pytest.approx((528 + 512) * 8 * 0.03561)
    # ViT's class-token pick: one row of D = 64 from the (17, 64) activation: ops 1, read 1 + 64
    vit = import_onnx_model(vit_onnx(seq_len=17, dim=64, depth=1, heads=4, mlp=128, patch=4, classes=10))
    (c,) = [d for d in map_network(fig11, vit).digital_ops if d.kind == "Gather"]
    assert (c.ops, c.read_elems, c.write_elems) == (1, 65, 64)


def test_bert_three_inputs_map(fig11):
    # a Hugging Face-style BERT graph: input_ids, attention_mask, token_type_ids (int64, (1, S))
    s, d, depth, heads, mlp, vocab, types = 16, 32, 2, 2, 64, 100, 2
    model = bert_onnx(seq_len=s, dim=d, depth=depth, heads=heads, mlp=mlp, vocab=vocab, three_inputs=True)
    assert [i.name for i in model.graph.input] == ["input_ids", "attention_mask", "token_type_ids"]
    net = import_onnx_model(model)
    r = map_network(fig11, net)
    w_blocks, b_blocks = _encoder_counts(s, d, depth, mlp)
    assert r.weights == w_blocks and r.parameters == w_blocks + b_blocks
    # word table + token-type table + position rows + embedding LayerNorm + 2 per layer
    assert r.sram_parameters == vocab * d + types * d + s * d + (1 + 2 * depth) * 2 * d
    assert r.analog_macs + sum(x.macs for x in r.layers if x.kind == "digital") == s * w_blocks
    assert r.digital_macs - sum(x.macs for x in r.layers if x.kind == "digital") == \
        2 * depth * heads * s * s * (d // heads)
    ops = {x.name: x for x in r.digital_ops}
    # every graph input is a layer; integer ids feed the two Gathers; the mask path runs on the digital unit
    assert {n for n, x in ops.items() if x.kind == "GraphInput"} == {"attention_mask", "token_type_ids"}
    assert [x.read_elems for x in r.digital_ops if x.kind == "Gather"] == [s + s * d, s + s * d]
    mask = [x for x in r.digital_ops if x.name.startswith(("mask_", "l0_attn_mask", "l1_attn_mask"))]
    assert {x.kind for x in mask} == {"Unsqueeze", "Cast", "Sub", "Mul", "Add"}
    assert all(x.unit == "digital" for x in mask)
    assert [x.ops for x in mask if x.kind == "Add"] == [heads * s * s] * depth  # scores + mask, per layer
    _check_digital_costs(r, net)
    with pytest.raises(NetworkError, match="attention_mask"):  # a dynamic second input is named
        m2 = bert_onnx(seq_len=s, dim=d, depth=1, heads=heads, mlp=mlp, vocab=vocab, three_inputs=True)
        m2.graph.input[1].type.tensor_type.shape.dim[1].dim_param = "seq"
        import_onnx_model(m2)
    # and given with input_shapes it maps
    m3 = bert_onnx(seq_len=s, dim=d, depth=1, heads=heads, mlp=mlp, vocab=vocab, three_inputs=True)
    m3.graph.input[1].type.tensor_type.shape.dim[1].dim_param = "seq"
    assert map_network(fig11, import_onnx_model(m3, input_shapes={"attention_mask": (1, s)})).weights > 0
