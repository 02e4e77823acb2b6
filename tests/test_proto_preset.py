"""The ``proto`` preset (issue 18): tiny's arrays, tiles and clock on a grid that holds a whole digits CNN on one chip.

Hand-checked mapping (one 32 x 32 array per tile, tap-major K = kh·kw·C rows, docs/design.md §4.8):

- digits-cnn: conv1 and fc digital (``digital.digital_layers`` first/last); conv2 K = 3·3·16 = 144 rows x 32
  columns -> ceil(144/32) = 5 row blocks x 1 column block = 5 tiles; conv3 K = 3·3·32 = 288 -> 9 tiles;
  14 tiles on 1 chip (tiny: 4 chips of 2 x 2 tiles).
- digits-resnet: stem and fc digital; b1_conv1 / b1_conv2 144 x 16 -> 5 + 5; b2_conv1 144 x 32 -> 5;
  b2_conv2 288 x 32 -> 9; b2_proj 1x1, 16 x 32 -> 1: 25 tiles, the whole 5 x 5 grid, 1 chip.
"""

from __future__ import annotations

import pytest

from archmodel.spec import load_spec
from archmodel.zoo import get_network
from mapping.mapper import MapOptions, map_network

PROTO = load_spec("proto")


def test_proto_is_tiny_on_a_5x5_grid():
    tiny = load_spec("tiny")
    assert (PROTO.tile_grid.rows, PROTO.tile_grid.cols) == (5, 5) and (tiny.tile_grid.rows, tiny.tile_grid.cols) == (2, 2)
    for section in ("array", "periphery", "device", "digital", "calibration"):
        assert getattr(PROTO, section) == getattr(tiny, section), section
    # the interconnect differs only in the destination entries of the network interfaces (issue 18 multicast)
    a, b = (dict(ic.model_dump(), sources=None) for ic in (PROTO.interconnect, tiny.interconnect))
    assert a == dict(b, tile_dest_entries=9, digital_dest_entries=11)
    assert PROTO.technology.clock_mhz == tiny.technology.clock_mhz == 100


@pytest.mark.parametrize("net,tiles", [
    ("digits-cnn", {"conv2": 5, "conv3": 9}),
    ("digits-resnet", {"b1_conv1": 5, "b1_conv2": 5, "b2_conv1": 5, "b2_conv2": 9, "b2_proj": 1}),
])
def test_digits_cnns_map_onto_one_proto_chip(net, tiles):
    r = map_network(PROTO, get_network(net), MapOptions(replicate=False))
    assert r.chips == 1
    assert {lay.name: lay.tiles for lay in r.layers if lay.kind == "analog"} == tiles
    assert r.tiles_used == sum(tiles.values()) <= 25
    assert {lay.name for lay in r.layers if lay.kind == "digital"} == ({"conv1", "fc"} if net == "digits-cnn"
                                                                        else {"stem", "fc"})
    if net == "digits-cnn":
        assert map_network(load_spec("tiny"), get_network(net), MapOptions(replicate=False)).chips == 4


@pytest.mark.parametrize("net", ["digits-cnn", "digits-resnet"])
def test_proto_buffers_hold_every_line_buffer_and_the_digital_weights(net):
    """Each analog conv's line buffer, (dilation·(kh−1)+1) rows x in_w x C bytes (docs/design.md §11), fits the
    tile SRAM, and so does its whole input map; its channels fill whole act beats (contract §2); the digital
    layers' weight words, ceil(C_out / mac_lanes) · K, fit the global buffer (digits-cnn: 4·9 + 3·512 = 1,572 of
    8 KiB / 4 lanes = 2,048 words)."""
    network = get_network(net)
    r = map_network(PROTO, network, MapOptions(replicate=False))
    analog = {lay.name for lay in r.layers if lay.kind == "analog"}
    sram = PROTO.buffers.sram_kib_per_tile * 1024
    lanes = PROTO.array.rows_per_dac_beat
    line = {}
    for layer in network.layers:
        if layer.name in analog and layer.op == "conv":
            c, h, w = layer.input_shapes[0]
            kh, dh = layer.attrs["kernel_size"][0], layer.attrs["dilation"][0]
            line[layer.name] = (dh * (kh - 1) + 1) * w * c
            assert c * h * w <= sram and c % lanes == 0, layer.name
    assert max(line.values()) == 384 <= sram
    words = sum(-(-layer.out_channels // PROTO.digital.mac_lanes) * layer.matrix_shape[0]
                for layer in network.layers if layer.is_matrix_layer and layer.name not in analog)
    assert words == (4 * 9 + 3 * 512 if net == "digits-cnn" else 4 * 9 + 3 * 32)
    assert words <= PROTO.buffers.global_buffer_kib * 1024 // PROTO.digital.mac_lanes == 2048
