"""tb.cnn_env and what it needs from the RTL side: destination entries from the chip, the digital pool unit,
digits-cnn's one run on proto (Python level), and the whole CNN on Icarus (slow)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from archmodel.golden.digital import digital_linear
from archmodel.spec import load_spec
from rtl.register_compiler import compile_digital_layers
from rtl.regmap import build_regmap, dest_entries


def test_dest_entries_from_the_chip_and_tiny_unchanged():
    """tiny keeps 2 / 4 entries at the addresses of register map v5 (hand values; v6 only adds registers); proto has
    9 tile entries
    (8 at the NI offset 0x80, the 9th at the tile controller's spare 0x20) and 11 digital ones (out1, src<q>
    follow them, filling the NI's 64 bytes up to 0x1C0)."""
    tiny, proto = load_spec("tiny"), load_spec("proto")
    assert dest_entries(tiny) == (2, 4) and dest_entries(proto) == (9, 11)
    rm = build_regmap(tiny)
    assert [rm.address_of(f"tile1.ni.dest{e or ''}") for e in range(2)] == [0x1180, 0x1184]
    assert [rm.address_of(f"digital.dest{e or ''}") for e in range(4)] == [0x180, 0x184, 0x188, 0x18C]
    assert rm.address_of("digital.out1") == 0x190 and rm.address_of("digital.src0") == 0x194
    rp = build_regmap(proto)
    assert [rp.address_of(f"tile1.ni.dest{e or ''}") for e in range(9)] == [0x1180 + 4 * e for e in range(8)] + [0x1120]
    assert rp.address_of("digital.dest4") == 0x190 and rp.address_of("digital.dest10") == 0x1A8
    assert rp.address_of("digital.out1") == 0x1AC and rp.address_of("digital.src3") == 0x1BC < 0x1C0
    assert rp.address_of("digital.pool.en") == 0x160 and rp.address_of("digital.pool.beats") == 0x170
    names = [r.address for r in rp.registers]
    assert len(names) == len(set(names))  # no two registers share an address


def test_dest_entries_bounds():
    from archmodel.spec import ChipSpec

    base = load_spec("proto").model_dump()
    for key, bad in (("tile_dest_entries", 17), ("digital_dest_entries", 12), ("tile_dest_entries", 0)):
        d = {**base, "interconnect": {**base["interconnect"], key: bad}}
        with pytest.raises(Exception, match=key):
            ChipSpec.model_validate(d)


@pytest.fixture(scope="module")
def cnn():
    from tb.cnn_env import prepare_cnn
    from tests.test_cnn_golden import golden

    g, _ = golden("digits-cnn")
    return prepare_cnn(g), g


def test_cnn_one_run_against_independent_golden(cnn):
    """conv1 on the digital datapath (host im2col rows x the golden's int8 weights, its coefficients) = the
    golden's relu1; its 2 x 2 max pool by hand = the pool's output; fc with rows permuted to stream order on
    relu3's pixel stream = digital_linear of the CHW-flattened relu3 with the unpermuted weights; the
    multicasts: 5 entries from the digital node (conv2's tiles 0..4), 9 from conv2's home tile 4 (conv3's
    tiles 5..13); conv3's home tile 13 sends relu3 to the digital node (x = cols + 1 = 6) and mirrors it to the host
    (x = 5, chan 1); ONE configuration: slot 0 = conv1 with 64 vectors per round, slot 1 = fc with 1, rounds =
    images, fc's source queue = tile 13's tag with 512 elements, the pool on; conv1's input = the raw pixels, its
    patches from the digital node's patch buffer; the digital node's input join switched off (the two writes
    compile_digital_layers adds after digital.out1, the only change to digits-cnn's writes this stop)."""
    cn, g = cnn
    spec = g.spec
    from rtl.params import DigitalParams

    dp = DigitalParams.from_spec(spec)
    net = cn.network
    d1, d2 = net.layers[0], net.layers[-1]
    y1 = d1.coefs.apply(d1.sums(net.inputs[0], dp.acc_bits), acc_bits=dp.acc_bits,
                        scale_bits=dp.scale_bits, offset_bits=dp.offset_bits)
    np.testing.assert_array_equal(y1, g.layer("conv1").pixels)
    b = g.x_int8.shape[0]
    m = y1.reshape(b, 8, 8, 16)
    pooled = np.maximum.reduce([m[:, i::2, j::2] for i in (0, 1) for j in (0, 1)]).reshape(-1, 16)
    np.testing.assert_array_equal(pooled, g.layer("pool").pixels)
    assert [d[:2] for d in d1.dests] == [(x, y) for y in range(1) for x in range(5)]
    home2, home3 = net.layers[5], net.layers[-2]
    assert home2.tile == 4 and len(home2.dests) == 9
    assert home3.tile == 13 and home3.dests == ((6, 0, 0, 0, 0), (5, 0, 0, 0, 1))
    assert d1.pool is not None and d2.pool is None
    s = d2.sums(net.inputs[-1], dp.acc_bits)
    flat = g.trace["flatten"] if "flatten" in g.trace else g.trace[g.layer("fc").inputs[0]]
    ref = digital_linear(flat, np.asarray(g.layer("fc").weights_int8).T, acc_bits=dp.acc_bits)
    np.testing.assert_array_equal(s, ref)
    np.testing.assert_array_equal(d2.coefs.apply(s, acc_bits=dp.acc_bits, scale_bits=dp.scale_bits,
                                                 offset_bits=dp.offset_bits), g.scores)
    f = {w.name: net.regmap.decode(w.name, w.data) for w in net.writes}
    assert f["digital.vectors"] == {"n_vectors0": 64, "n_vectors1": 1} and f["digital.n_pixels"] == {"n_pixels": b}
    assert f["digital.two_layers"] == {"two_layers": 1} and f["digital.pool.en"] == {"en": 1, "avg": 0}
    assert f["digital.src1"] == {"src": 13, "en": 1, "slot": 1, "elems": 512}
    assert f["digital.out1"] == {"x": 5, "y": 0, "chan": 0}
    assert list(net.taps) == [13] and net.taps[13].shape == (16 * b, 32)
    # conv1's patches on chip: the host sends each image's 64 raw pixels (C = 1) to queue 0 (host tag = 25 tiles),
    # the digital node's patch buffer makes the 3 x 3 pad-1 patches (8 x 8 map, 9 elements per patch)
    np.testing.assert_array_equal(net.feeds[0], g.x_int8.reshape(b, 64))
    assert f["digital.src0"] == {"src": 25, "en": 1, "slot": 0, "elems": 64} and f["digital.lb.en"] == {"en": 1}
    assert d1.patch.in_h == d1.patch.in_w == 8 and (d1.patch.kh, d1.patch.pad_t, d1.patch.n_beats) == (3, 1, 9)
    assert cn.layer_names == ["conv1", "conv2", "conv3", "fc"] and cn.pixels == [64, 16, 16, 1]
    assert cn.first_reader == "conv2" and not cn.residual  # where a fault in conv1 shows first
    # no input join in digits-cnn: the compiler switches the digital node's join off (2 writes, after digital.out1)
    names = [w.name for w in net.writes]
    assert [n for n in names if n.startswith(("digital.add", "digital.ipool"))] == ["digital.add.en", "digital.ipool.en"]
    assert names.index("digital.add.en") == names.index("digital.out1") + 1
    assert f["digital.add.en"]["en"] == 0 and f["digital.ipool.en"]["en"] == 0


def test_digital_two_slots_rounds_and_queue_rule():
    """With two layer slots the compiler writes rounds = n_pixels / n_vectors and the per-slot counts (hand values),
    the pool with slot 0 (slot 1's results bypass it in rtl/top.py), and refuses (one line) counts that give the
    slots different rounds and a round whose input overfills a source queue (128 beats: 64 vectors of K = 9 are
    2 beats each = 128, fits; 65 = 130 does not)."""
    from dataclasses import replace

    from archmodel.zoo import get_network
    from rtl.register_compiler import digital_layer, with_pool

    spec = load_spec("proto")
    rm = build_regmap(spec)
    pool = get_network("digits-cnn")["pool"]
    d = with_pool(spec, pool, digital_layer(spec, np.ones((9, 16)), dest=(0, 0), in_scale=1.0, out_scale=1.0))
    d = replace(d, n_pixels=3 * 64, n_vectors=64)
    fc = replace(digital_layer(spec, np.ones((512, 10)), dest=(5, 0), in_scale=1.0, out_scale=1.0), n_pixels=3,
                 sources=((13, 512),))
    f = {w.name: rm.decode(w.name, w.data) for w in compile_digital_layers(spec, [d, fc], regmap=rm)}
    assert f["digital.n_pixels"] == {"n_pixels": 3} and f["digital.vectors"] == {"n_vectors0": 64, "n_vectors1": 1}
    assert f["digital.pool.en"]["en"] == 1 and f["digital.dest4"]["en"] == 0  # entries 1..4 unused: off
    one = {w.name: rm.decode(w.name, w.data) for w in compile_digital_layers(spec, [replace(d, pool=None)], regmap=rm)}
    assert one["digital.vectors"] == {"n_vectors0": 1, "n_vectors1": 1} and one["digital.pool.en"]["en"] == 0
    with pytest.raises(ValueError, match="not the same number of rounds"):
        compile_digital_layers(spec, [d, replace(fc, n_pixels=4)])
    with pytest.raises(ValueError, match="130 beats, its queue holds 128"):
        compile_digital_layers(spec, [replace(d, n_pixels=3 * 65, n_vectors=65), fc])


def test_too_many_destinations_refused_one_line():
    from rtl.register_compiler import digital_layer

    spec = load_spec("proto")
    d = digital_layer(spec, np.ones((9, 16)), dest=(0, 0), in_scale=1.0, out_scale=1.0)
    from dataclasses import replace

    d = replace(d, dests=tuple((x % 5, x // 5, 0, 0, 0) for x in range(11)) + ((0, 3, 0, 0, 0),))
    with pytest.raises(ValueError, match="12 destinations, the network interface has 11"):
        compile_digital_layers(spec, [d])


@pytest.mark.slow
def test_digits_cnn_on_icarus(tmp_path, monkeypatch):
    """The whole digits-cnn, given as a relative YAML path (``network=``, a name the zoo does not know), on proto in
    ONE run of the chip, 2 images, Icarus (tb.test_top_cosim.test_cnn_network; Icarus because a fresh Verilator
    build of the 25-tile proto top takes several minutes): the 2 x 10 scores compared, 0 mismatches; relu3
    (2 x 16 x 32) mirrored from conv3's home tile to the host while it goes to the digital node, compared,
    0 mismatches; every DAC code of the 14 analog tiles compared (16 MVMs each per image; conv2's tiles hold 144
    rows in all, conv3's 288: 2 x 16 x 432 codes), 0 mismatches; RTL top-1 = the model's; no status flag (asserted
    inside the test); conv1's busy cycles = 2 x timing.digital_slot_cycles(9, 16, 64) and fc's =
    2 x timing.digital_slot_cycles(512, 10, 1) exactly (each image is one round of each slot, drained at its end).
    The RTL-side fault located behind a pool is tests/test_top_cosim.py::test_top_conv_pool_fault_located; the
    whole-CNN fault run is test_digits_cnn_fault_on_icarus (gated, for the make-test budget)."""
    from archmodel import timing
    from archmodel.network.yaml_io import network_to_yaml
    from archmodel.zoo import get_network, load_network
    from mapping.mapper import MapOptions, map_network
    from tb.cnn_env import cnn_report_lines, cosim_cnn

    spec = load_spec("proto")
    # digits-cnn given as a YAML file under a name the zoo does not know: the simulator process must load the
    # network from the path (AIMC_NETWORK), not look it up by name ("unknown network" otherwise)
    yml = tmp_path / "my-cnn.yaml"
    yml.write_text(network_to_yaml(get_network("digits-cnn")).replace("name: digits-cnn", "name: my-cnn", 1))
    placement = map_network(spec, load_network(yml), MapOptions(replicate=False)).placement()
    assert placement.network_name == "my-cnn"
    monkeypatch.chdir(tmp_path)  # a RELATIVE path, as a user types it: made absolute for the simulator process
    d = cosim_cnn("proto", placement, images=2, sim="icarus", build_dir=tmp_path / "build", network="my-cnn.yaml")
    ok, lines = cnn_report_lines(d)
    print("\n".join(lines))
    assert d["passed"], d["message"]
    assert d["network"] == "my-cnn"
    r = d["run"]
    assert r["compared"] == 2 * 10 and r["mismatches"] == 0
    assert r["tap_compared"] == 2 * 16 * 32 and r["tap_mismatches"] == 0
    assert r["dac_compared"] == 2 * 16 * (144 + 288) and r["dac_mismatches"] == 0
    assert d["top1_rtl"] == d["top1_model"] and len(d["top1_rtl"]) == 2 and ok
    # per image: 64 pixels x 4 groups (16 channels on 4 lanes) x 9 = 2304 MAC cycles + 10 + 4 drain;
    # 512 x 3 groups = 1536 + 10 + 2
    assert d["conv1_cycles"] == 2 * timing.digital_slot_cycles(spec, 9, 16, 64) == 2 * 2318
    assert d["fc_cycles"] == 2 * timing.digital_slot_cycles(spec, 512, 10, 1) == 2 * 1548


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("AIMC_LONG_COSIM") != "1",
                    reason="two more runs of the 25-tile proto top on Icarus (~4 min idle): over issue 18's "
                           "make-test budget; run with AIMC_LONG_COSIM=1")
def test_digits_cnn_fault_on_icarus(tmp_path):
    """digits-cnn on proto, 1 image, Icarus, then (same build, same process) conv1's weight flit 1 negated on its
    way to the chip: the clean run has 0 mismatches and the faulty one DAC mismatches, first (in layer order) at
    conv2's tiles (conv2 reads conv1 through the max pool)."""
    from archmodel.zoo import get_network
    from mapping.mapper import MapOptions, map_network
    from tb.cnn_env import cosim_cnn

    spec = load_spec("proto")
    placement = map_network(spec, get_network("digits-cnn"), MapOptions(replicate=False)).placement()
    d = cosim_cnn("proto", placement, images=1, sim="icarus", build_dir=tmp_path, fault_test=True)
    assert d["passed"], d["message"]
    assert d["run"]["mismatches"] == 0 and d["run"]["dac_mismatches"] == 0
    ft = d["fault_test"]  # conv1's weight flit 1 negated: the first wrong DAC codes are conv2's (reads conv1)
    assert ft["passed"], ft["message"]
    assert ft["run"]["dac_mismatches"] > 0 and ft["dac_mismatch_layers"][0] == "conv2", ft
