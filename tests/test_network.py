"""Tests of the network IR (archmodel.network) and its YAML layer lists (archmodel.network.yaml_io).

Counts are hand-computed literals; forward() is checked against hand-computed
numbers for tiny inputs and against an independent nested-loop convolution.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from archmodel.network.builder import NetworkBuilder
from archmodel.network.forward import forward, random_params
from archmodel.network.ir import Layer, Network
from archmodel.network.schema import NetworkError
from archmodel.network.shapes import conv_output_size
from archmodel.network.windows import im2col
from archmodel.network.yaml_io import load_network_yaml, network_to_yaml

EXAMPLE = Path(__file__).resolve().parents[1] / "archmodel" / "presets" / "networks" / "example_cnn.yaml"


def one_conv(input_shape, *args, **kwargs) -> Layer:
    b = NetworkBuilder("t", input_shape)
    b.conv("c", b.input, *args, **kwargs)
    return b.build()["c"]


# --------------------------------------------------------------------------------------
# counts
# --------------------------------------------------------------------------------------


def test_conv_3x3_16_to_16_counts():
    layer = one_conv((16, 8, 8), 16, 3, padding=1, bias=False)
    assert layer.output_shape == (16, 8, 8)
    assert layer.weight_count == 2_304  # 16·16·3·3
    assert layer.bias_count == 0
    assert layer.mac_count == 147_456  # 2304·8·8
    assert layer.op_count == 294_912
    assert layer.matrix_shape == (144, 16)  # 16·3·3 rows, 16 cols
    assert layer.groups == 1
    assert layer.mvm_count == 64
    assert layer.is_matrix_layer


def test_conv_bias_counted_separately():
    layer = one_conv((16, 8, 8), 16, 3, padding=1)  # bias=True is the default
    assert layer.weight_count == 2_304
    assert layer.bias_count == 16


def test_depthwise_conv_counts():
    # 32 channels, 3x3, stride 2, pad 1 on 16x16 -> 8x8
    layer = one_conv((32, 16, 16), 32, 3, stride=2, padding=1, groups=32, bias=False)
    assert layer.output_shape == (32, 8, 8)
    assert layer.weight_count == 288  # 32·1·3·3
    assert layer.mac_count == 18_432  # 288·64
    assert layer.matrix_shape == (9, 1)
    assert layer.groups == 32
    assert layer.mvm_count == 64  # per group


def test_grouped_conv_counts():
    layer = one_conv((16, 6, 6), 32, 3, groups=4, bias=False)
    assert layer.output_shape == (32, 4, 4)
    assert layer.weight_count == 1_152  # 32·(16/4)·9
    assert layer.matrix_shape == (36, 8)  # 4·9 rows, 32/4 cols
    assert layer.mac_count == 18_432  # 1152·16


def test_linear_counts():
    b = NetworkBuilder("t", (64,))
    b.linear("fc", b.input, 10)
    layer = b.build()["fc"]
    assert layer.weight_count == 640
    assert layer.bias_count == 10
    assert layer.mac_count == 640
    assert layer.op_count == 1_280
    assert layer.matrix_shape == (64, 10)
    assert layer.mvm_count == 1
    assert layer.groups == 1


def test_non_matrix_layers_count_zero():
    b = NetworkBuilder("t", (4, 4, 4))
    x = b.batchnorm("bn", b.input)
    x = b.maxpool("mp", b.relu("r", x), 2)
    net = b.build()
    for name in ("bn", "r", "mp"):
        assert net[name].weight_count == 0
        assert net[name].mac_count == 0
        assert net[name].mvm_count == 0
        assert not net[name].is_matrix_layer
    assert net["mp"].output_shape == (4, 2, 2)


def test_output_shape_formula_stride_dilation_padding():
    # H: floor((32 + 2 + 3 - 2·4 - 1) / 3) + 1 = floor(28/3) + 1 = 10
    # W: floor((32 + 1 + 0 - 2·4 - 1) / 3) + 1 = floor(24/3) + 1 = 9
    layer = one_conv((3, 32, 32), 8, 5, stride=3, dilation=2, padding=(2, 1, 3, 0))
    assert layer.output_shape == (8, 10, 9)
    assert layer.attrs["padding"] == (2, 1, 3, 0)
    assert conv_output_size(32, 5, 3, 2, 3, 2) == 10
    assert conv_output_size(7, 3, 2, 1, 1) == 4  # floor((7+2-3)/2)+1
    # symmetric pair padding (ph, pw) and rectangular kernels
    layer = one_conv((1, 10, 12), 2, (3, 1), stride=(1, 2), padding=(1, 0))
    assert layer.attrs["padding"] == (1, 0, 1, 0)
    assert layer.output_shape == (2, 10, 6)


def test_pool_output_shapes():
    b = NetworkBuilder("t", (8, 7, 7))
    b.maxpool("mp", b.input, 3, stride=2, padding=1)  # floor((7+2-3)/2)+1 = 4
    b.avgpool("ap", "mp", 2)  # stride = kernel: floor((4-2)/2)+1 = 2
    b.global_avgpool("gap", "ap")
    net = b.build()
    assert net["mp"].output_shape == (8, 4, 4)
    assert net["ap"].output_shape == (8, 2, 2)
    assert net["ap"].attrs["stride"] == (2, 2)
    assert net["gap"].output_shape == (8,)


def test_network_totals_and_summary():
    net = load_network_yaml(EXAMPLE)
    assert net.input_name == "input"
    assert [layer.name for layer in net.matrix_layers()] == ["conv1", "conv2", "conv3", "conv4", "fc"]
    # conv1 3->16: 432 w, ·1024 px; conv2/3 16->16: 2304 w, ·1024; conv4 16->32 s2: 4608 w, ·256;
    # fc 32->10: 320
    assert net.weight_count == 432 + 2 * 2_304 + 4_608 + 320 == 9_968
    assert net.mac_count == 432 * 1024 + 2 * 2_304 * 1024 + 4_608 * 256 + 320 == 6_340_928
    assert net.bias_count == 10
    assert net.output_shape == (10,)
    assert net.consumers("relu1") == ["conv2", "add1"]
    text = net.summary()
    assert "conv2" in text and "2,304" in text and "2,359,296" in text
    assert text.splitlines()[-1].split()[-2:] == ["9,968", "6,340,928"]


# --------------------------------------------------------------------------------------
# structural errors (Python API)
# --------------------------------------------------------------------------------------


def test_error_unknown_input():
    b = NetworkBuilder("t", (3, 8, 8))
    b.conv("conv1", b.input, 4, 3)
    with pytest.raises(NetworkError, match=r"layer 'r' \(activation\): unknown input 'conv2'.*'conv1'") as e:
        b.relu("r", "conv2")
    assert (e.value.layer, e.value.key) == ("r", "inputs")


def test_error_add_shape_mismatch():
    layers = [Layer("c", "conv", ("input",), {"out_channels": 4, "kernel_size": 1}),
              Layer("a", "add", ("c", "input"))]
    with pytest.raises(NetworkError, match=r"layer 'a' \(add\): shape mismatch.*\(4, 8, 8\).*\(3, 8, 8\)") as e:
        Network("t", (3, 8, 8), layers)
    assert e.value.index == 2


def test_error_conv_channel_mismatch():
    w = np.zeros((4, 5, 3, 3), np.float32)  # expects C_in = 3
    with pytest.raises(NetworkError, match=r"'weight' has shape \(4, 5, 3, 3\), expected \(4, 3, 3, 3\)"):
        Network("t", (3, 8, 8), [Layer("c", "conv", ("input",), {"out_channels": 4, "kernel_size": 3},
                                       params={"weight": w})])


def test_error_conv_in_channels_attr():
    b = NetworkBuilder("t", (3, 8, 8))
    with pytest.raises(NetworkError, match=r"channel mismatch: in_channels is 5 but input 'input' has 3"):
        b.layer("c", "conv", b.input, out_channels=4, kernel_size=3, in_channels=5)


def test_error_groups_not_dividing():
    with pytest.raises(NetworkError, match=r"groups=4 must divide both the input channels \(6\)") as e:
        one_conv((6, 8, 8), 8, 3, groups=4)
    assert e.value.key == "groups"


def test_error_kernel_larger_than_padded_input():
    with pytest.raises(NetworkError, match=r"kernel 5x5 is larger than the padded input 3x3") as e:
        one_conv((1, 3, 3), 1, 5)
    assert e.value.key == "kernel_size"
    assert one_conv((1, 3, 3), 1, 5, padding=1).output_shape == (1, 1, 1)
    with pytest.raises(NetworkError, match=r"dilation 2x2 \(spanning 5x5\)"):
        one_conv((1, 4, 4), 1, 3, dilation=2)


def test_error_cycle_and_order():
    relu = Layer("r", "activation", ("c",), {"kind": "relu"})
    conv = Layer("c", "conv", ("r",), {"out_channels": 1, "kernel_size": 1})
    with pytest.raises(NetworkError, match=r"closes a cycle \(r <- c <- r\)"):
        Network("t", (1, 2, 2), [relu, conv])
    relu = Layer("r", "activation", ("c",), {"kind": "relu"})
    conv = Layer("c", "conv", ("input",), {"out_channels": 1, "kernel_size": 1})
    with pytest.raises(NetworkError, match=r"input 'c' is defined after this layer; .*topological"):
        Network("t", (1, 2, 2), [relu, conv])


def test_error_duplicate_name_unknown_op_unknown_attr():
    with pytest.raises(NetworkError, match=r"layer 'x' \(activation\): duplicate name"):
        Network("t", (4,), [Layer("x", "activation", ("input",), {"kind": "relu"}),
                            Layer("x", "activation", ("x",), {"kind": "relu"})])
    with pytest.raises(NetworkError, match=r"unknown op 'conv2d'.*did you mean 'conv'"):
        Layer("x", "conv2d", ("input",))
    with pytest.raises(NetworkError, match=r"unknown attribute 'strides'.*did you mean 'stride'"):
        Layer("x", "conv", ("input",), {"out_channels": 1, "kernel_size": 1, "strides": 2})
    with pytest.raises(NetworkError, match=r"expects a vector \(F,\) input.*add a flatten"):
        b = NetworkBuilder("t", (3, 4, 4))
        b.linear("fc", b.input, 10)


def test_counts_need_inferred_shapes():
    layer = Layer("c", "conv", ("input",), {"out_channels": 4, "kernel_size": 3})
    with pytest.raises(NetworkError, match="shapes are not inferred yet"):
        _ = layer.weight_count


# --------------------------------------------------------------------------------------
# YAML
# --------------------------------------------------------------------------------------

HEAD = "name: t\ninput_shape: [3, 8, 8]\nlayers:\n"
CONV = "  - {name: c1, op: conv, out_channels: 4, kernel_size: 3, padding: 1}\n"


@pytest.mark.parametrize(
    "text, needles",
    [
        pytest.param(HEAD + "  - {name: c1, op: conv, out_channels: 4\n",
                     ["YAML does not parse", "line 5"], id="does-not-parse"),
        pytest.param("", ["empty network description"], id="empty"),
        pytest.param("# nothing here\n", ["empty network description"], id="only-comment"),
        pytest.param(HEAD + CONV + "  - {name: c2, op: convolution, out_channels: 4}\n",
                     ["layers[1].op", "'convolution'", "expected one of input, conv"], id="unknown-op"),
        pytest.param(HEAD + "  - {name: c1, op: conv, out_channels: 4, kernel_size: 3, strides: 2}\n",
                     ["layers[0].strides", "unknown key", "did you mean 'stride'"], id="unknown-key"),
        pytest.param(HEAD + "  - {name: c1, op: conv, out_channels: sixteen, kernel_size: 3}\n",
                     ["layers[0].out_channels", "'sixteen'", "expected a positive integer"], id="wrong-type"),
        pytest.param(HEAD + CONV + CONV.replace("c1", "c2") + CONV.replace("c1", "c3")
                     + "  - {name: c4, op: conv, out_channels: 4, kernel_size: 0}\n",
                     ["layers[3].kernel_size", "bad value 0", "positive integer"], id="zero-size"),
        pytest.param(HEAD + "  - {name: c1, op: conv, out_channels: -4, kernel_size: 3}\n",
                     ["layers[0].out_channels", "-4", "positive integer"], id="negative-size"),
        pytest.param(HEAD + CONV + "  - {name: a, op: add, inputs: [c1, c9]}\n",
                     ["layers[1].inputs", "unknown input 'c9'"], id="unknown-input"),
        pytest.param(HEAD + CONV + "  - {name: a, op: add, inputs: [c1, input]}\n",
                     ["layers[1].inputs", "shape mismatch", "(4, 8, 8)", "(3, 8, 8)"], id="shape-mismatch"),
        pytest.param(HEAD + "  - {name: c1, op: conv, out_channels: 4, kernel_size: 3, groups: 2}\n",
                     ["layers[0].groups", "groups=2"], id="groups"),
        pytest.param(HEAD + "  - {name: c1, op: conv, out_channels: 4, kernel_size: 11}\n",
                     ["layers[0].kernel_size", "larger than the padded input 8x8"], id="kernel-too-big"),
        pytest.param(HEAD + CONV + "  - {name: c1, op: batchnorm}\n",
                     ["layers[1].name", "duplicate name"], id="duplicate"),
        pytest.param(HEAD + "  - {name: c1, op: conv, kernel_size: 3}\n",
                     ["layers[0].out_channels", "missing"], id="missing-key"),
        pytest.param(HEAD + "  - {name: fc, op: linear, out_features: 10}\n",
                     ["layers[0].inputs", "flatten", "default to the previous layer 'input'"], id="linear-on-map"),
        pytest.param(HEAD + "  - {name: r, op: activation, kind: relu, alpha: 0.2}\n",
                     ["layers[0].alpha", "leaky_relu"], id="alpha-for-relu"),
        pytest.param(HEAD + "  - {name: c1, op: conv, out_channels: 4, kernel_size: 3, padding: [1, 2, 3]}\n",
                     ["layers[0].padding", "[1, 2, 3]", "[top, left, bottom, right]"], id="padding-3"),
        pytest.param("name: t\ninput_shape: [3, 0, 8]\nlayers: [{name: f, op: flatten}]\n",
                     ["input_shape", "[3, 0, 8]"], id="input-shape"),
        pytest.param(HEAD + "  - conv\n", ["layers[0]", "expected a mapping"], id="layer-not-mapping"),
        pytest.param("- 1\n", ["top level", "expected a YAML mapping"], id="top-level-list"),
        pytest.param(HEAD + CONV + "  - {name: c2, op: conv, out_channels: 4, kernel_size: 3, out_channels: 8}\n",
                     ["layers[1].out_channels: duplicate key at line 5 (first given at line 5)"],
                     id="duplicate-key-in-layer"),
        pytest.param(HEAD + CONV + "  - name: c2\n    op: conv\n    out_channels: 4\n    kernel_size: 3\n"
                     "    kernel_size: 5\n",
                     ["layers[1].kernel_size: duplicate key at line 9 (first given at line 8)"],
                     id="duplicate-key-block"),
        pytest.param(HEAD + CONV + "name: u\n", ["<yaml text>: name: duplicate key at line 5 (first given at line 1)"],
                     id="duplicate-top-level-key"),
    ],
)
def test_yaml_errors_name_the_path(text, needles):
    with pytest.raises(NetworkError) as e:
        load_network_yaml(text)
    msg = str(e.value)
    assert msg.startswith("<yaml text>: ")
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, (needle, msg)


def test_yaml_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(HEAD + "  - {name: c1, op: conv, out_channels: 4, kernel_size: 0}\n")
    with pytest.raises(NetworkError, match=r"bad\.yaml: layers\[0\]\.kernel_size: bad value 0"):
        load_network_yaml(bad)
    with pytest.raises(NetworkError, match=r"bad\.yaml: layers\[0\]\.kernel_size"):
        load_network_yaml(str(bad))
    with pytest.raises(NetworkError, match="no such file"):
        load_network_yaml(str(tmp_path / "missing.yaml"))


def test_yaml_defaults_inputs_and_example():
    net = load_network_yaml(HEAD + CONV + "  - {name: r, op: activation, kind: relu}\n"
                            "  - {name: a, op: add, inputs: [r, c1]}\n"
                            "  - {name: b, op: batchnorm, eps: 1e-3}\n")
    assert net["c1"].inputs == ("input",)
    assert net["r"].inputs == ("c1",)
    assert net["a"].inputs == ("r", "c1")
    assert net["b"].attrs["eps"] == pytest.approx(1e-3)  # PyYAML reads 1e-3 as a string
    assert net["c1"].attrs == {"out_channels": 4, "kernel_size": (3, 3), "stride": (1, 1),
                               "padding": (1, 1, 1, 1), "dilation": (1, 1), "groups": 1,
                               "bias": True, "in_channels": None}


def round_trip_network() -> Network:
    b = NetworkBuilder("rt-net", (6, 9, 9), input_name="image")
    x = b.conv("c1", b.input, 12, (3, 2), stride=(2, 1), padding=(1, 0, 2, 1), dilation=(1, 2),
               groups=3, bias=False)
    x = b.batchnorm("bn", x, eps=1e-3)
    x = b.activation("lr", x, "leaky_relu", alpha=0.2)
    y = b.avgpool("ap", x, 3, stride=1, padding=1, count_include_pad=True)
    z = b.maxpool("mp", x, (2, 3), stride=(1, 1), padding=(1, 0, 0, 1))
    x = b.concat("cat", y, x, axis=-3)
    x = b.gelu("g", x, approximate="tanh")
    x = b.reshape("rs", x, (-1, 5))
    x = b.flatten("fl", x)
    x = b.linear("fc", x, 7)
    b.relu6("r6", x)
    # c1: H (9+1+2-2-1)//2+1 = 5, W (9+0+1-3-1)+1 = 8; mp: H 5+1-2+1 = 5, W 8+1-3+1 = 7
    assert b.shape(x) == (7,) and b.shape("c1") == (12, 5, 8) and b.shape(z) == (12, 5, 7)
    return b.build()


def test_yaml_round_trip():
    net = round_trip_network()
    text = network_to_yaml(net)
    again = load_network_yaml(text)
    assert again.name == net.name and again.input_shape == net.input_shape
    assert [layer.spec() for layer in again] == [layer.spec() for layer in net]
    assert [layer.output_shape for layer in again] == [layer.output_shape for layer in net]
    assert network_to_yaml(again) == text
    assert "{name: image, op: input}" in text
    assert "padding: [1, 0, 2, 1]" in text
    # the packaged example round-trips and keeps its layer lines
    example = load_network_yaml(EXAMPLE)
    assert [layer.spec() for layer in load_network_yaml(network_to_yaml(example))] == [
        layer.spec() for layer in example
    ]
    assert "  - {name: add1, op: add, inputs: [bn3, relu1]}" in network_to_yaml(example)


# --------------------------------------------------------------------------------------
# forward: hand-computed values
# --------------------------------------------------------------------------------------

X33 = np.arange(1, 10, dtype=np.float32).reshape(1, 1, 3, 3)  # [[1,2,3],[4,5,6],[7,8,9]]


def run_single(input_shape, op_method, x, params=None, *args, **kwargs):
    b = NetworkBuilder("t", input_shape)
    getattr(b, op_method)("l", b.input, *args, **kwargs)
    net = b.build()
    return forward(net, x, {"l": params} if params else None)


def test_forward_conv_2x2_ones_hand():
    w = np.ones((1, 1, 2, 2), np.float32)
    y = run_single((1, 3, 3), "conv", X33, {"weight": w}, 1, 2, bias=False)
    np.testing.assert_array_equal(y[0, 0], [[12, 16], [24, 28]])
    # padding 1, stride 2: windows see 1 | 2+3 / 4+7 | 5+6+8+9
    y = run_single((1, 3, 3), "conv", X33, {"weight": w}, 1, 2, stride=2, padding=1, bias=False)
    np.testing.assert_array_equal(y[0, 0], [[1, 5], [11, 28]])
    # dilation 2: the four corners, 1+3+7+9
    y = run_single((1, 3, 3), "conv", X33, {"weight": w}, 1, 2, dilation=2, bias=False)
    np.testing.assert_array_equal(y[0, 0], [[20]])
    # bias and a non-uniform kernel [[1, 0], [0, -1]]: x[i,j] - x[i+1,j+1] + 0.5 = -3.5 everywhere
    w2 = np.array([[[[1, 0], [0, -1]]]], np.float32)
    y = run_single((1, 3, 3), "conv", X33, {"weight": w2, "bias": np.array([0.5], np.float32)}, 1, 2)
    np.testing.assert_array_equal(y[0, 0], [[-3.5, -3.5], [-3.5, -3.5]])


def test_forward_depthwise_hand():
    x = np.concatenate([X33, -X33], axis=1)  # 2 channels
    w = np.array([2, 3], np.float32).reshape(2, 1, 1, 1)
    y = run_single((2, 3, 3), "conv", x, {"weight": w}, 2, 1, groups=2, bias=False)
    np.testing.assert_array_equal(y[0, 0], 2 * X33[0, 0])
    np.testing.assert_array_equal(y[0, 1], -3 * X33[0, 0])


def test_forward_pools_hand():
    y = run_single((1, 3, 3), "maxpool", X33, None, 2, stride=1)
    np.testing.assert_array_equal(y[0, 0], [[5, 6], [8, 9]])
    y = run_single((1, 3, 3), "maxpool", -X33, None, 2, stride=2, padding=1)  # pads never win
    np.testing.assert_array_equal(y[0, 0], [[-1, -2], [-4, -5]])
    # avg 2x2 stride 2 pad 1, pads excluded: 1/1, (2+3)/2, (4+7)/2, (5+6+8+9)/4
    y = run_single((1, 3, 3), "avgpool", X33, None, 2, stride=2, padding=1)
    np.testing.assert_array_equal(y[0, 0], [[1, 2.5], [5.5, 7]])
    y = run_single((1, 3, 3), "avgpool", X33, None, 2, stride=2, padding=1, count_include_pad=True)
    np.testing.assert_array_equal(y[0, 0], [[0.25, 1.25], [2.75, 7]])
    y = run_single((1, 3, 3), "global_avgpool", X33, None)
    np.testing.assert_array_equal(y, [[5]])


def test_forward_batchnorm_linear_hand():
    x = np.array([[1, 3], [5, -1]], np.float32)  # batch of 2 vectors (F = 2)
    bn = {"gamma": [3, 1], "beta": [0.5, 0], "mean": [1, 0], "var": [4, 1]}
    b = NetworkBuilder("t", (2,))
    b.batchnorm("bn", b.input, eps=1e-12)
    b.linear("fc", "bn", 2)
    net = b.build()
    fc = {"weight": [[1, 2], [3, 4]], "bias": [1, -1]}
    out = forward(net, x, {"bn": bn, "fc": fc}, return_all=True)
    # bn: ch0 (x-1)/2·3+0.5 -> 0.5, 6.5 ; ch1 x -> 3, -1
    np.testing.assert_allclose(out["bn"], [[0.5, 3], [6.5, -1]], rtol=1e-6)
    # fc: [0.5+6+1, 1.5+12-1] = [7.5, 12.5]; [6.5-2+1, 19.5-4-1] = [5.5, 14.5]
    np.testing.assert_allclose(out["fc"], [[7.5, 12.5], [5.5, 14.5]], rtol=1e-6)
    assert set(out) == {"input", "bn", "fc"}
    # batchnorm on feature maps, default eps 1e-5: (x - 1)/sqrt(1 + 1e-5)
    y = run_single((1, 3, 3), "batchnorm", X33, {"gamma": [1], "beta": [0], "mean": [1], "var": [1]})
    np.testing.assert_allclose(y[0, 0], (X33[0, 0] - 1) / math.sqrt(1 + 1e-5), rtol=1e-6)


def test_forward_activations_hand():
    x = np.array([[-4, -1, 0, 1, 7]], np.float32)
    expect = {
        "relu": [0, 0, 0, 1, 7],
        "relu6": [0, 0, 0, 1, 6],
        "hardswish": [0, -1 / 3, 0, 2 / 3, 7],
        "hardsigmoid": [0, 1 / 3, 0.5, 2 / 3, 1],
        "identity": [-4, -1, 0, 1, 7],
        "tanh": np.tanh([-4, -1, 0, 1, 7]),
        "sigmoid": 1 / (1 + np.exp(-np.array([-4.0, -1, 0, 1, 7]))),
        # GELU(x) = x·Φ(x); Φ(1) = 0.8413447461, Φ(-1) = 0.1586552539, Φ(-4) = 3.167124e-5
        "gelu": [-4 * 3.1671242e-5, -0.1586552539, 0, 0.8413447461, 7 * (1 - 1.279813e-12)],
    }
    for kind, want in expect.items():
        y = run_single((5,), "activation", x, None, kind)
        np.testing.assert_allclose(y[0], want, rtol=2e-6, atol=2e-7, err_msg=kind)
    y = run_single((5,), "activation", x, None, "leaky_relu", alpha=0.1)
    np.testing.assert_allclose(y[0], [-0.4, -0.1, 0, 1, 7], rtol=1e-6)
    y = run_single((5,), "activation", x, None, "softmax")
    e = np.exp([-4.0, -1, 0, 1, 7])
    np.testing.assert_allclose(y[0], e / e.sum(), rtol=1e-6)


def test_forward_shape_ops_hand():
    b = NetworkBuilder("t", (1, 3, 3))
    neg = b.activation("neg_id", b.input, "identity")
    cat = b.concat("cat", b.input, neg)
    fl = b.flatten("fl", cat)
    rs = b.reshape("rs", fl, (3, -1))
    b.add("sum", rs, rs, rs)
    net = b.build()
    out = forward(net, X33, return_all=True)
    assert net["cat"].output_shape == (2, 3, 3)
    assert net["rs"].output_shape == (3, 6)
    np.testing.assert_array_equal(out["fl"][0], list(range(1, 10)) * 2)
    np.testing.assert_array_equal(out["rs"][0], [[1, 2, 3, 4, 5, 6], [7, 8, 9, 1, 2, 3], [4, 5, 6, 7, 8, 9]])
    np.testing.assert_array_equal(out["sum"], 3 * out["rs"])
    assert out["sum"].dtype == np.float32


# --------------------------------------------------------------------------------------
# forward vs an independent nested-loop convolution
# --------------------------------------------------------------------------------------


def conv_nested_loops(x, w, b, stride, pad, dilation, groups):
    """Direct definition of 2-D cross-correlation, float64, zero padding by bounds checks."""
    n_batch, c_in, h, wd = x.shape
    c_out, cg, kh, kw = w.shape
    (sh, sw), (pt, pl, pb, pr), (dh, dw) = stride, pad, dilation
    og = c_out // groups
    ho = 0
    while ho * sh + dh * (kh - 1) < h + pt + pb:
        ho += 1
    wo = 0
    while wo * sw + dw * (kw - 1) < wd + pl + pr:
        wo += 1
    y = np.zeros((n_batch, c_out, ho, wo))
    for n in range(n_batch):
        for o in range(c_out):
            g = o // og
            for r in range(ho):
                for c in range(wo):
                    acc = 0.0 if b is None else float(b[o])
                    for ci in range(cg):
                        for i in range(kh):
                            for j in range(kw):
                                rr = r * sh + i * dh - pt
                                cc = c * sw + j * dw - pl
                                if 0 <= rr < h and 0 <= cc < wd:
                                    acc += float(x[n, g * cg + ci, rr, cc]) * float(w[o, ci, i, j])
                    y[n, o, r, c] = acc
    return y


@pytest.mark.parametrize(
    "c_in, c_out, k, stride, pad, dilation, groups, bias",
    [
        (3, 4, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1, True),
        (4, 6, (3, 2), (2, 1), (1, 0, 2, 1), (2, 1), 2, True),
        (6, 6, (3, 3), (2, 2), (2, 2, 2, 2), (2, 2), 6, False),  # depthwise, dilated
        (4, 8, (1, 1), (1, 2), (0, 0, 0, 0), (1, 1), 4, False),
    ],
)
def test_forward_conv_matches_nested_loops(c_in, c_out, k, stride, pad, dilation, groups, bias):
    rng = np.random.default_rng(1234)
    x = rng.normal(size=(2, c_in, 7, 6)).astype(np.float32)
    w = rng.normal(size=(c_out, c_in // groups, *k)).astype(np.float32)
    bvec = rng.normal(size=c_out).astype(np.float32) if bias else None
    b = NetworkBuilder("t", (c_in, 7, 6))
    b.conv("c", b.input, c_out, k, stride=stride, padding=pad, dilation=dilation, groups=groups, bias=bias)
    net = b.build()
    params = {"weight": w} | ({"bias": bvec} if bias else {})
    y = forward(net, x, {"c": params})
    ref = conv_nested_loops(x, w, bvec, stride, pad, dilation, groups)
    assert y.shape == ref.shape == (2, *net["c"].output_shape)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)

    # the mapper's view: im2col rows of group g times weight_matrix(g) give the same outputs
    layer = net["c"]
    layer.params.update(params)
    cols = im2col(x, k, stride=stride, padding=pad, dilation=dilation)
    rows, cols_per_group = layer.matrix_shape
    assert cols.shape[1] == rows * groups
    ho, wo = layer.output_shape[1:]
    for g in range(groups):
        part = np.einsum("nrp,rc->ncp", cols[:, g * rows:(g + 1) * rows], layer.weight_matrix(g))
        want = ref[:, g * cols_per_group:(g + 1) * cols_per_group].reshape(2, cols_per_group, ho * wo)
        if bias:
            want = want - bvec[g * cols_per_group:(g + 1) * cols_per_group, None]
        np.testing.assert_allclose(part, want, rtol=1e-5, atol=1e-5)


def test_im2col_row_order():
    # 2 channels, 2x2 kernel on a 2x3 input: row r = (c·kh + i)·kw + j, column p = h_out·W_out + w_out
    x = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)
    cols = im2col(x, 2)
    assert cols.shape == (1, 8, 2)
    # window at (0,0): channel 0 -> 0,1,3,4 ; channel 1 -> 6,7,9,10
    np.testing.assert_array_equal(cols[0, :, 0], [0, 1, 3, 4, 6, 7, 9, 10])
    np.testing.assert_array_equal(cols[0, :, 1], [1, 2, 4, 5, 7, 8, 10, 11])
    w = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    b = NetworkBuilder("t", (2, 2, 3))
    b.conv("c", b.input, 1, 2, bias=False)
    layer = b.build()["c"]
    np.testing.assert_array_equal(layer.weight_matrix(0, w)[:, 0], np.arange(8))


# --------------------------------------------------------------------------------------
# residual block, parameters, forward errors
# --------------------------------------------------------------------------------------


def residual_block() -> Network:
    b = NetworkBuilder("resblock", (4, 6, 6))
    x = b.conv("conv1", b.input, 4, 3, padding=1, bias=False)
    x = b.relu("relu1", b.batchnorm("bn1", x))
    x = b.batchnorm("bn2", b.conv("conv2", x, 4, 3, padding=1, bias=False))
    x = b.add("add", x, b.input)
    b.relu("relu2", x)
    return b.build()


def test_residual_block_builds_and_runs():
    net = residual_block()
    assert [layer.op for layer in net] == ["input", "conv", "batchnorm", "activation", "conv",
                                           "batchnorm", "add", "activation"]
    assert net.weight_count == 2 * 144 == 288
    assert net.mac_count == 288 * 36 == 10_368
    rng = np.random.default_rng(7)
    params = random_params(net, rng)
    assert set(params) == {"conv1", "bn1", "conv2", "bn2"}
    x = rng.normal(size=(3, 4, 6, 6)).astype(np.float32)
    y = forward(net, x, params)

    def bn(v, p):
        s = p["gamma"] / np.sqrt(p["var"] + 1e-5)
        return (v - p["mean"][:, None, None]) * s[:, None, None] + p["beta"][:, None, None]

    pad = (1, 1, 1, 1)
    h = np.maximum(bn(conv_nested_loops(x, params["conv1"]["weight"], None, (1, 1), pad, (1, 1), 1),
                      params["bn1"]), 0)
    h = bn(conv_nested_loops(h, params["conv2"]["weight"], None, (1, 1), pad, (1, 1), 1), params["bn2"])
    ref = np.maximum(h + x, 0)
    assert y.shape == (3, 4, 6, 6)
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5)

    # with conv2 zeroed and bn2 the identity, the block is relu(x)
    net.set_params(params)
    net.set_params({"conv2": {"weight": np.zeros((4, 4, 3, 3))},
                    "bn2": {"gamma": np.ones(4), "beta": np.zeros(4), "mean": np.zeros(4),
                            "var": np.ones(4) - 1e-5}})
    np.testing.assert_allclose(forward(net, x), np.maximum(x, 0), rtol=1e-6, atol=1e-6)


def test_forward_errors():
    net = residual_block()
    with pytest.raises(NetworkError, match=r"input batch has shape \(4, 6, 6\), expected \(N, 4, 6, 6\)"):
        forward(net, np.zeros((4, 6, 6)))
    with pytest.raises(NetworkError, match=r"layer 'conv1' \(conv\) has no parameter 'weight'"):
        forward(net, np.zeros((1, 4, 6, 6)))
    with pytest.raises(NetworkError, match=r"'weight' has shape \(4, 4, 3\), expected \(4, 4, 3, 3\)"):
        net.set_params({"conv1": {"weight": np.zeros((4, 4, 3))}})
    with pytest.raises(NetworkError, match=r"unexpected parameter 'bias' \(the layer has bias=False\)"):
        net.set_params({"conv1": {"bias": np.zeros(4)}})
    with pytest.raises(NetworkError, match="has no layer 'nope'"):
        net.set_params({"nope": {}})


def test_packaging_lists_every_package_with_data():
    # setuptools warned "Package 'archmodel.presets.networks' is absent from the `packages`
    # configuration": every folder of the shipped packages must be a listed package
    # (with an __init__.py), so that its data files (example_cnn.yaml) are installed.
    from importlib import resources

    import tomllib

    root = Path(__file__).resolve().parents[1]
    cfg = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = set(cfg["packages"])
    found = set()
    for top in ("archmodel", "mapping", "rtl", "tb"):
        for d in [root / top, *(p for p in (root / top).rglob("*") if p.is_dir() and p.name != "__pycache__")]:
            if any(f.is_file() and f.suffix in (".py", ".yaml") for f in d.iterdir()):
                found.add(".".join(d.relative_to(root).parts))
    assert found - packages == set()
    assert "archmodel.presets.networks" in packages
    assert (root / "archmodel" / "presets" / "networks" / "__init__.py").is_file()
    assert "networks/*.yaml" in cfg["package-data"]["archmodel.presets"]
    assert resources.files("archmodel.presets.networks").joinpath("example_cnn.yaml").is_file()


def _loop_windows(xp, kernel, stride, dilation, out_hw):
    """The explicit-loop unfolding every copy used before archmodel.network.windows."""
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    out = np.empty(xp.shape[:-2] + (kh, kw, ho, wo), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            out[..., i, j, :, :] = xp[..., r0:r0 + sh * (ho - 1) + 1:sh, c0:c0 + sw * (wo - 1) + 1:sw]
    return out


@pytest.mark.parametrize("kernel,stride,dilation,pad", [
    ((3, 3), (1, 1), (1, 1), (1, 1, 1, 1)), ((2, 3), (2, 1), (1, 2), (0, 1, 2, 0)),
    ((1, 1), (3, 2), (1, 1), (0, 0, 0, 0)), ((3, 2), (2, 3), (2, 1), (2, 0, 1, 1))])
def test_windows_bit_identical_to_explicit_loops(kernel, stride, dilation, pad):
    from archmodel.golden.digital import im2col as golden_im2col
    from archmodel.network.windows import add_windows, strided_windows, window_view

    rng = np.random.default_rng(7)
    pt, pl, pb, pr = pad
    for x in (rng.integers(-128, 128, (2, 3, 9, 8)).astype(np.int8),
              rng.standard_normal((2, 3, 9, 8)).astype(np.float32)):
        n, c, h, w = x.shape
        ho = conv_output_size(h, kernel[0], stride[0], pt, pb, dilation[0])
        wo = conv_output_size(w, kernel[1], stride[1], pl, pr, dilation[1])
        xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
        ref = _loop_windows(xp, kernel, stride, dilation, (ho, wo))
        got = strided_windows(xp, kernel, stride, dilation, (ho, wo))
        assert got.dtype == ref.dtype and got.flags.c_contiguous
        assert np.array_equal(got, ref)
        assert np.array_equal(np.moveaxis(window_view(xp, kernel, stride, dilation, (ho, wo)), (-2, -1), (2, 3)), ref)
        assert np.array_equal(im2col(x, kernel, stride=stride, padding=pad, dilation=dilation),
                              ref.reshape(n, -1, ho * wo))
        if x.dtype == np.int8:
            g = golden_im2col(x[1], kernel, stride, pad, dilation)
            tap_major = ref[1].transpose(1, 2, 0, 3, 4).reshape(-1, ho * wo)  # rows (i, j, c): docs/design.md §4.8
            assert g.dtype == np.int64 and np.array_equal(g, tap_major)
        # adjoint: the loop scatter-add, same order of additions (bit-identical in float)
        dwin = rng.standard_normal(ref.shape).astype(x.dtype if x.dtype != np.int8 else np.float32)
        acc = np.zeros(xp.shape, dtype=dwin.dtype)
        for i in range(kernel[0]):
            for j in range(kernel[1]):
                r0, c0 = i * dilation[0], j * dilation[1]
                acc[..., r0:r0 + stride[0] * (ho - 1) + 1:stride[0],
                    c0:c0 + stride[1] * (wo - 1) + 1:stride[1]] += dwin[..., i, j, :, :]
        assert np.array_equal(add_windows(dwin, xp.shape[-2:], stride, dilation), acc)
