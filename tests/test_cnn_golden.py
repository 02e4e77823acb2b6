"""tb.cnn_golden: the whole-CNN golden on proto equals archmodel's integer network forward, tile by tile.

Independent checks of each piece (not the trace against itself):

- analog layers: the tiles' own array answers (``AnalogMatrix.array_adc_codes`` of each row block = tile, what
  the RTL's array bridges return), summed over the row blocks by ``golden.affine.accumulate_partial_sums``,
  equal the accumulator values of the forward (``mvm_partial_sums_trusted``, another code path); the affine
  unit's golden ``AffineCoefficients.apply`` of them equals the layer's int8 pixel vectors;
- digital layers: ``golden.digital.digital_conv2d`` / ``digital_linear`` of the int8 input with the int8 weights
  equal the accumulator values;
- maxpool (2 x 2 maxima) and global average pool (``(2·sum + hw) // (2·hw)``) by hand-written numpy;
- the scores equal a plain ``NetworkInstance.run`` and the top-1 equals ``predict_labels``;
- one tile's DAC beats by hand (tap-major rows, padding zero).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest

from archmodel import accuracy as acc
from archmodel.datasets import load_digits_split
from archmodel.golden.affine import accumulate_partial_sums
from archmodel.golden.digital import digital_conv2d, digital_linear
from archmodel.network.builder import NetworkBuilder
from archmodel.spec import load_spec
from archmodel.zoo import get_network
from mapping.mapper import MapOptions, map_network
from tb.cnn_golden import cnn_golden, dataflow_plan, model_top1, pixel_vectors, seeded_params, tile_beats

N_IMAGES = 6
#: Weight seeds whose float predictions differ between images (so the top-1 comparison means something).
SEEDS = {"digits-cnn": 1, "digits-resnet": 3}


@cache
def golden(net_name: str):
    spec = load_spec("proto")
    net = get_network(net_name)
    data = load_digits_split(0)
    placement = map_network(spec, net, MapOptions(replicate=False)).placement()
    g = cnn_golden(spec, net, placement, seeded_params(net, SEEDS[net_name]), data.x_test[:N_IMAGES],
                   data.x_train[:256], seed=1, t_inf_s=3600.0)
    return g, data


@pytest.mark.parametrize("net_name", ["digits-cnn", "digits-resnet"])
def test_every_layer_matches_the_integer_forward_tile_by_tile(net_name):
    g, data = golden(net_name)
    spec = g.spec
    p = spec.periphery
    compared = {"analog": 0, "digital": 0, "tiles": 0}
    for lg in g.layers:
        if lg.kind == "analog":
            m = lg.matrix
            assert m.n_row_blocks * m.n_col_blocks == len(lg.tiles) == lg.placement.arrays
            assert sorted(t.tile for t in lg.tiles) == list(range(lg.placement.first_tile,
                                                                  lg.placement.first_tile + len(lg.tiles)))
            for c in range(m.n_col_blocks):
                feeds = sorted((t for t in lg.tiles if t.col_block == c), key=lambda t: t.row_block)
                assert [t.rows for t in feeds] == [(s.start, s.stop) for s in m.row_block_slices()]
                psum = accumulate_partial_sums(np.stack([t.adc_codes for t in feeds]), adc_bits=spec.array.adc_bits,
                                               acc_bits=p.accumulator_bits)
                c0, c1 = feeds[0].cols
                np.testing.assert_array_equal(psum, lg.acc[:, c0:c1])
                compared["tiles"] += len(feeds)
            y = lg.affine.apply(lg.acc, acc_bits=p.accumulator_bits, scale_bits=p.affine_scale_bits,
                                offset_bits=p.affine_offset_bits)
            np.testing.assert_array_equal(y, lg.pixels)
            compared["analog"] += y.size
        elif lg.kind == "digital":
            x = g.trace[lg.inputs[0]]
            layer = g.network[lg.name]
            if layer.op == "conv":
                kh, kw = layer.attrs["kernel_size"]
                w = lg.weights_int8.reshape(kh, kw, layer.in_channels, -1).transpose(3, 2, 0, 1)  # tap-major -> OIHW
                ref = np.stack([digital_conv2d(xi, w, layer.attrs["stride"], layer.attrs["padding"]) for xi in x])
                np.testing.assert_array_equal(pixel_vectors(ref), lg.acc)
            else:
                np.testing.assert_array_equal(digital_linear(x, lg.weights_int8.T), lg.acc)
            y = lg.affine.apply(lg.acc, acc_bits=spec.digital.accumulator_bits, scale_bits=p.affine_scale_bits,
                                offset_bits=p.affine_offset_bits)
            np.testing.assert_array_equal(y, lg.pixels)
            compared["digital"] += y.size
        elif lg.kind == "maxpool":
            x = g.trace[lg.inputs[0]].astype(np.int64)
            b, c, h, w = x.shape
            np.testing.assert_array_equal(x.reshape(b, c, h // 2, 2, w // 2, 2).max(axis=(3, 5)), lg.output)
        elif lg.kind == "global_avgpool":
            x = g.trace[lg.inputs[0]].astype(np.int64)
            hw = x.shape[2] * x.shape[3]
            np.testing.assert_array_equal((2 * x.sum(axis=(2, 3)) + hw) // (2 * hw), lg.output)
    if net_name == "digits-cnn":  # conv2 + conv3 (4x4 pixels x 32) analog; conv1 (8x8 x 16) + fc (10) digital
        assert compared == {"analog": 2 * N_IMAGES * 16 * 32, "digital": N_IMAGES * (64 * 16 + 10), "tiles": 14}
    else:
        assert compared["tiles"] == 25 and any(lg.kind == "add" for lg in g.layers)
    # class scores: a plain run (no trace) and archmodel's predict_labels on the same instance
    np.testing.assert_array_equal(g.instance.run(data.x_test[:N_IMAGES].astype(np.float32)), g.scores)
    np.testing.assert_array_equal(model_top1(g, data.x_test[:N_IMAGES]), g.top1)
    assert len({r.tobytes() for r in g.scores}) == N_IMAGES  # every image's scores differ: the comparison can fail
    if net_name == "digits-cnn":
        assert len(set(g.top1.tolist())) > 1  # and so do the top-1 classes (seeded weights: not a classifier)


def test_tile_beats_by_hand():
    """A 3x3, padding-1 conv on a 2x3 map of C = 8 channels; the tile holding rows [32, 64) gets taps 4..7
    ((1,1), (1,2), (2,0), (2,1)) of each patch, one beat (8 lanes = one pixel's channels) per tap."""
    b = NetworkBuilder("t", (8, 2, 3))
    b.conv("c", b.input, 4, 3, padding=1)
    layer = b.build()["c"]
    x = np.zeros((1, 8, 2, 3), np.int8)
    for yy in range(2):
        for xx in range(3):
            x[0, :, yy, xx] = 10 * (3 * yy + xx) + np.arange(8)  # pixel (y, x), channel c: 10·(3y + x) + c
    rows, p = acc.mvm_rows(layer, x)
    assert p == 6 and rows.shape == (6, 72)
    beats = tile_beats(rows, 32, 64, 8, 8)
    assert beats.shape == (6, 4, 8)
    px = lambda yy, xx: (10 * (3 * yy + xx) + np.arange(8)).tolist()  # noqa: E731
    zero = [0] * 8
    # output pixel (0, 0): taps (1,1)->(0,0), (1,2)->(0,1), (2,0)->(1,-1) padding, (2,1)->(1,0)
    assert beats[0].tolist() == [px(0, 0), px(0, 1), zero, px(1, 0)]
    # output pixel (1, 2) (row 5): (1,1)->(1,2), (1,2)->(1,3) padding, (2,*)->row 2 padding
    assert beats[5].tolist() == [px(1, 2), zero, zero, zero]
    # a partial last block: rows [64, 72) = tap 8 = (2,2), one beat
    assert tile_beats(rows, 64, 72, 8, 8)[0].tolist() == [px(1, 1)]


def test_fc_after_flatten_in_stream_order_and_the_dataflow_plan_of_digits_cnn():
    """digits-cnn on proto, by hand: the fc reads relu3 (32, 4, 4) pixel by pixel, so stream element
    (y·4 + x)·32 + c is IR row c·16 + y·4 + x; with rows and weights permuted alike the sums are the same.
    Routes: host -> digital (conv1); digital -> maxpool -> conv2's tiles 0..4 (the digital node's pool unit and
    proto's 5 digital destination entries: nothing lacking); conv2's home tile 4 -> conv3's tiles 5..13 (9 tile
    entries); conv3's
    home tile 13 -> flatten -> digital (fc); digital -> host."""
    g, _ = golden("digits-cnn")
    fc = g.layer("fc")
    assert fc.stream_order[(1 * 4 + 2) * 32 + 5] == 5 * 16 + 1 * 4 + 2
    np.testing.assert_array_equal(fc.rows[:, fc.stream_order].reshape(-1, 16, 32),
                                  pixel_vectors(g.trace["relu3"]).reshape(-1, 16, 32))
    np.testing.assert_array_equal(fc.rows[:, fc.stream_order] @ fc.weights_int8[fc.stream_order], fc.acc)
    plan = {r.value: r for r in dataflow_plan(g)}
    assert list(plan) == ["input", "relu1", "relu2", "relu3", "fc"]
    assert (plan["input"].producer, plan["input"].consumers) == ("host", ("digital",))
    r = plan["relu1"]
    assert (r.producer, r.ops, r.consumers, r.consumer_layers) == (
        "digital", ("maxpool pool",), tuple(f"tile {t}" for t in range(5)), ("conv2",))
    assert r.needs == ()  # proto: 5 digital destination entries, the digital node's pool unit
    r = plan["relu2"]
    assert (r.producer, r.consumers) == ("tile 4", tuple(f"tile {t}" for t in range(5, 14)))
    assert r.needs == ()  # proto: 9 tile destination entries
    r = plan["relu3"]
    assert (r.producer, r.ops, r.consumers, len(r.needs)) == ("tile 13", ("flatten flatten",), ("digital",), 1)
    assert (plan["fc"].producer, plan["fc"].consumers, plan["fc"].needs) == ("digital", ("host",), ())
