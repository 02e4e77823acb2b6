"""tb.resnet_env: digits-resnet on proto in one run of the chip (issue 18) -- the digital node's input join
registers, the one-run configuration at the Python level against independent numpy, the joins' skew check, the
join switched off by the compiler, and the whole network on Icarus (slow, gated)."""

from __future__ import annotations

import os
from functools import cache

import numpy as np
import pytest

from archmodel.datasets import load_digits_split
from archmodel.golden.digital import digital_linear
from archmodel.spec import load_spec
from archmodel.zoo import get_network
from rtl.regmap import build_regmap

PROTO = load_spec("proto")


@cache
def one_run():
    from mapping.mapper import MapOptions, map_network
    from tb.cnn_env import prepare_cnn
    from tb.cnn_golden import cnn_golden, seeded_params

    net = get_network("digits-resnet")
    data = load_digits_split(0)
    placement = map_network(PROTO, net, MapOptions(replicate=False)).placement()
    g = cnn_golden(PROTO, net, placement, seeded_params(net, 3), data.x_test[:2], data.x_train[:256], seed=1,
                   t_inf_s=3600.0)
    return prepare_cnn(g), g


def _join_by_hand(a, b, q0, q1, shift):
    """requantize_sum written out: ReLU(q0·a + q1·b), round half up by 2^shift, saturate to int8."""
    acc = np.maximum(q0 * np.asarray(a, np.int64) + q1 * np.asarray(b, np.int64), 0)
    return np.clip((acc + (1 << (shift - 1))) >> shift, -128, 127)


def test_digital_join_registers_and_old_addresses():
    """digital.add.* at 0x1C0..0x1CC and digital.ipool.* at 0x1E0..0x1F0 on every chip; tiny's digital NI keeps
    its v5 addresses (hand values); no two registers share an address; the map is version 7."""
    for name in ("tiny", "proto", "fig11"):
        rm = build_regmap(load_spec(name))
        assert [rm.address_of(f"digital.add.{r}") for r in ("en", "q0", "q1", "shift")] == [0x1C0, 0x1C4, 0x1C8,
                                                                                              0x1CC]
        assert [rm.address_of(f"digital.ipool.{r}") for r in ("en", "in", "kernel", "out", "beats")] == \
            [0x1E0, 0x1E4, 0x1E8, 0x1EC, 0x1F0]
        addrs = [r.address for r in rm.registers]
        assert len(addrs) == len(set(addrs))
        assert rm.decode("chip.id", 0x0708A1C0)["version"] == 8
        f = {fl.name: (fl.offset, fl.width) for fl in rm.register("digital.add.en").fields}
        assert f["en"] == (0, 1) and f["relu"] == (1, 1) and f["src_a"][0] == 8 and f["out_src"][0] == 24
    tiny = build_regmap(load_spec("tiny"))
    assert tiny.address_of("digital.out1") == 0x190 and tiny.address_of("digital.src3") == 0x1A0
    assert tiny.address_of("digital.pool.en") == 0x160 and tiny.address_of("tile3.add.en") == 0x13A0


def test_one_run_multicast_joins_and_routes():
    """ONE configuration (the stem and fc both on the digital node, no second phase): the stem reaches 11 tiles
    (b1_conv1 0-4, b2_conv1 10-14, b2_proj 24; proto's grid is 5 wide: tile t at (t % 5, t // 5)); b2_conv1's and
    b2_proj's tiles join tile 9 (b1_conv2's home) with the digital node (tag 26), and their compiled q0 / q1 /
    shift reproduce the golden b1_relu from b1_conv2_bn and stem_relu by hand; b1_conv2's home sends to those 6
    tiles; b2_conv2's home tile 23 and b2_proj's tile 24 send to the digital node (x = cols + 1 = 6) and mirror to
    the host (x = 5, chan 1), both compared as taps (16 pixels x 32 per image); the last layer is fc (digital)
    and the expected output the class scores; the host feeds only the digital node (raw pixels)."""
    rn, g = one_run()
    rm = build_regmap(PROTO)
    f = rn.network
    stem, fc = f.layers[0], f.layers[-1]
    assert stem.tile is None and fc.tile is None and stem.name == "stem" and fc.name == "fc"
    assert [(x, y) for x, y, *_ in stem.dests] == [(t % 5, t // 5) for t in (0, 1, 2, 3, 4, 10, 11, 12, 13, 14, 24)]
    joined = [lyr for lyr in f.layers if getattr(lyr, "join", None) is not None]
    assert sorted(lyr.tile for lyr in joined) == [10, 11, 12, 13, 14, 24]
    a, b = g.trace["b1_conv2_bn"], g.trace["stem_relu"]
    for lyr in joined:
        j = lyr.join
        assert (j.src_a, j.src_b, j.relu) == (9, 26, True)
        words = {w.name: rm.decode(w.name, w.data) for w in f.writes if w.name.startswith(f"tile{lyr.tile}.add.")}
        assert words[f"tile{lyr.tile}.add.en"] == {"en": 1, "relu": 1, "src_a": 9, "src_b": 26}
        got = _join_by_hand(a, b, words[f"tile{lyr.tile}.add.q0"]["q0"], words[f"tile{lyr.tile}.add.q1"]["q1"],
                            words[f"tile{lyr.tile}.add.shift"]["shift"])
        np.testing.assert_array_equal(got, g.trace["b1_relu"])
    home9 = next(lyr for lyr in f.layers if getattr(lyr, "tile", None) == 9)
    assert [(x, y) for x, y, *_ in home9.dests] == [(t % 5, t // 5) for t in (10, 11, 12, 13, 14, 24)]
    for t in (23, 24):
        lyr = next(lyr for lyr in f.layers if getattr(lyr, "tile", None) == t)
        assert lyr.dests == ((6, 0, 0, 0, 0), (5, 0, 0, 0, 1)), (t, lyr.dests)
    assert sorted(f.taps) == [23, 24] and all(v.shape == (2 * 16, 32) for v in f.taps.values())
    np.testing.assert_array_equal(f.taps[23], g.layer("b2_conv2").pixels)
    np.testing.assert_array_equal(f.taps[24], g.layer("b2_proj").pixels)
    np.testing.assert_array_equal(f.expected, g.scores)
    assert f.entry == [0] and list(f.feeds) == [0] and f.host_streams is None
    assert rn.first_reader == "b1_conv1" and rn.residual
    assert rn.layer_names == ["stem", "b1_conv1", "b1_conv2", "b2_conv1", "b2_conv2", "b2_proj", "fc"]
    assert rn.pixels == [64, 64, 64, 16, 16, 16, 1]


def test_one_run_digital_node_vs_numpy():
    """The digital node's writes, decoded: slot 0 = the stem, 64 vectors per round, its patches from the line
    buffer (8 x 8 map, 3 x 3 pad 1, 9 one-element beats), the host's 64 raw pixels per image into queue 0 (host
    tag 25); slot 1 = fc, 1 vector per round, rounds = images, queue 1 = tag 23 with 32 elements; the digital pool
    off; the input join adds tags 23 / 24 into tag 23 with ReLU and a 4 x 4 global average (count 16, 4 beats of
    8 channels). By hand: the stem's tap-major 3 x 3 pad-1 patches of the raw pixels (numpy pad + slicing) = the
    golden's stem rows, and with the stem's weights and coefficients = stem_relu; the join of b2_conv2_bn and
    b2_proj_bn, the global average (2·sum + 16) // 32, fc's int32 sums = digital_linear -> the golden scores."""
    from rtl.params import DigitalParams

    rn, g = one_run()
    rm = build_regmap(PROTO)
    f = rn.network
    w = {x.name: rm.decode(x.name, x.data) for x in f.writes}
    assert w["digital.vectors"] == {"n_vectors0": 64, "n_vectors1": 1} and w["digital.n_pixels"] == {"n_pixels": 2}
    assert w["digital.two_layers"] == {"two_layers": 1} and w["digital.pool.en"]["en"] == 0
    assert w["digital.src0"] == {"src": 25, "en": 1, "slot": 0, "elems": 64}
    assert w["digital.src1"] == {"src": 23, "en": 1, "slot": 1, "elems": 32} and w["digital.src2"]["en"] == 0
    assert w["digital.lb.en"] == {"en": 1} and w["digital.out1"] == {"x": 5, "y": 0, "chan": 0}
    assert all(w[f"digital.dest{e}"]["en"] == 1 for e in range(1, 11))
    assert w["digital.add.en"] == {"en": 1, "relu": 1, "src_a": 23, "src_b": 24, "out_src": 23}
    assert w["digital.ipool.en"] == {"en": 1, "avg": 1}
    assert w["digital.ipool.in"] == {"in_h": 4, "in_w": 4} and w["digital.ipool.kernel"] == {"kh": 4, "kw": 4}
    assert w["digital.ipool.beats"] == {"c_beats": 4, "count": 16} and w["digital.ipool.out"] == {"out_h": 1,
                                                                                                   "out_w": 1}
    # the host sends raw pixels; the stem's patches by hand (tap-major: row (i·3 + j)·C + c, C = 1)
    x = np.asarray(g.x_int8, np.int64)[:, 0]  # (B, 8, 8)
    np.testing.assert_array_equal(f.feeds[0], x.reshape(2, 64))
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    patches = np.stack([xp[:, i:i + 8, j:j + 8] for i in range(3) for j in range(3)], axis=-1).reshape(-1, 9)
    np.testing.assert_array_equal(f.inputs[0], patches)
    dp = DigitalParams.from_spec(PROTO)
    stem, fc = f.layers[0], f.layers[-1]
    np.testing.assert_array_equal(stem.coefs.apply(stem.sums(patches, dp.acc_bits), acc_bits=dp.acc_bits,
                                                   scale_bits=dp.scale_bits, offset_bits=dp.offset_bits),
                                  g.layer("stem").pixels)
    assert (stem.patch.in_h, stem.patch.in_w, stem.patch.kh, stem.patch.pad_t, stem.patch.n_beats) == (8, 8, 3, 1, 9)
    s = _join_by_hand(g.trace["b2_conv2_bn"], g.trace["b2_proj_bn"], w["digital.add.q0"]["q0"],
                      w["digital.add.q1"]["q1"], w["digital.add.shift"]["shift"])
    np.testing.assert_array_equal(s, g.trace["b2_relu"])
    pooled = (2 * s.sum(axis=(2, 3)) + 16) // 32
    np.testing.assert_array_equal(pooled, g.trace["pool"])
    np.testing.assert_array_equal(f.inputs[-1], pooled)
    sums = digital_linear(pooled, fc.w_int8, acc_bits=dp.acc_bits)
    np.testing.assert_array_equal(fc.coefs.apply(sums, acc_bits=dp.acc_bits, scale_bits=dp.scale_bits,
                                                 offset_bits=dp.offset_bits), g.scores)


def test_join_skews_by_hand_and_refusal():
    """join_skew_beats against hand counts. b1_add: b1_conv2_bn's pixel 0 needs b1_conv1's (1, 1), which needs
    stem_relu's (2, 2) = raster index 18, so the shortcut's queue holds pixels 0..18 = 19 pixels x 16 / 8 = 38 beats.
    b2_add: b2_conv2's pixel 0 needs b2_conv1's (1, 1), which (stride 2, pad 1) needs b1_relu's (3, 3) = 27; by then
    b2_proj (1 x 1, stride 2: pixel (i, j) needs (2i, 2j)) has made its pixels with 16i + 2j <= 27: (0, 0..3),
    (1, 0..3) = 8 pixels x 32 / 8 = 32 beats. Both fit rtl.pool.JOIN_DEPTH = 64. A branch of four 3 x 3 pad-1
    convs on an 8-wide map against its shortcut: pixel 0 needs (4, 4) = 36, 37 pixels x 2 = 74 beats > 64: refused
    in one line (residual_join and with_input_join alike); 64 beats passes."""
    from archmodel.network.builder import NetworkBuilder
    from rtl.pool import JOIN_DEPTH
    from rtl.register_compiler import (
        JoinSkewError,
        analog_layer,
        digital_layer,
        join_skew_beats,
        residual_join,
        with_input_join,
    )
    from tb.resnet_env import join_branches

    net = get_network("digits-resnet")
    assert join_skew_beats(PROTO, *join_branches(net, "b1_conv2_bn", "stem_relu")) == 38
    assert join_skew_beats(PROTO, *join_branches(net, "b2_conv2_bn", "b2_proj_bn")) == 32
    assert [x.name for x in join_branches(net, "b1_conv2_bn", "stem_relu")[0]] == [
        "b1_conv1", "b1_conv1_bn", "b1_conv1_relu", "b1_conv2", "b1_conv2_bn"]
    assert join_branches(net, "b1_conv2_bn", "stem_relu")[1] == []
    assert JOIN_DEPTH == 64
    nb = NetworkBuilder("deep", (16, 8, 8))
    x = nb.input
    for i in range(4):
        x = nb.conv(f"c{i}", x, 16, 3, padding=1)
    deep = nb.build()
    skew = join_skew_beats(PROTO, [deep[f"c{i}"] for i in range(4)], [])
    assert skew == 74
    lyr = analog_layer(PROTO, np.ones((16, 16)), tile=1, dest=(0, 0), in_scale=1.0, out_scale=1.0, name="j")
    kw = dict(src_a=1, src_b=26, scale_a=1.0, scale_b=1.0, out_scale=1.0, relu=True)
    with pytest.raises(JoinSkewError, match=r"^residual join 'j': its producers' skew is 74 beats, the join's queue "
                                            r"holds 64 \(rtl.pool.JOIN_DEPTH\)[^\n]*$"):
        residual_join(PROTO, lyr, skew_beats=skew, **kw)
    assert residual_join(PROTO, lyr, skew_beats=64, **kw).join is not None
    d = digital_layer(PROTO, np.ones((16, 10)), dest=(5, 0), in_scale=1.0, out_scale=1.0, name="fc")
    with pytest.raises(JoinSkewError, match="skew is 65 beats"):
        with_input_join(PROTO, d, skew_beats=65, **kw)


def test_join_off_written_and_hand_count():
    """compile_digital_layers switches the digital node's input join off whenever the chip has one and no layer
    uses it. Hand count of one 9 x 16 digital layer on proto: k_terms, c_out, shift, relu (4) + 16 x 4 coefficient
    writes (64) + src0..3 (4) + w_addr, ctrl.w_load (2) + n_pixels, vectors, two_layers (3) + 11 destination
    entries (11) + lb.en, pool.en (2) + add.en, ipool.en (2) = 92, the last two all zero; on tiny-fpga (no dataflow
    units; 4 digital entries) 4 + 64 + 4 + 2 + 3 + 4 = 81, no join write. With an input join (no pool) the two
    off-writes become its 5 writes (ipool.en = 0, q0, q1, shift, add.en) = digital_input_join's. After
    digits-resnet's configuration (join on, tags 23 / 24), digits-cnn's leaves digital.add.en = 0 (replayed as a
    register file: last write wins), so beats tagged 23 / 24 would no longer be captured."""
    from dataclasses import replace

    from rtl.register_compiler import compile_digital_layers, digital_input_join, digital_layer, with_input_join
    from tb.cnn_env import prepare_cnn
    from tests.test_cnn_golden import golden

    d = digital_layer(PROTO, np.ones((9, 16)), dest=(0, 0), in_scale=1.0, out_scale=1.0, name="c")
    rm = build_regmap(PROTO)
    ws = compile_digital_layers(PROTO, [d], regmap=rm)
    assert len(ws) == 92
    assert [(x.name, rm.decode(x.name, x.data)) for x in ws[-2:]] == [
        ("digital.add.en", {"en": 0, "relu": 0, "src_a": 0, "src_b": 0, "out_src": 0}),
        ("digital.ipool.en", {"en": 0, "avg": 0})]
    # with a join: its writes (digital_input_join's, the same alone) end the configuration, no off-write
    kw = dict(src_a=23, src_b=24, scale_a=0.05, scale_b=0.04, out_scale=0.06, relu=True)
    wj = compile_digital_layers(PROTO, [replace(with_input_join(PROTO, d, **kw), sources=((23, 9),))], regmap=rm)
    alone = digital_input_join(PROTO, **kw, regmap=rm)
    assert len(wj) == 92 - 2 + 1 + 4 and wj[-5:] == alone  # ipool.en = 0, q0, q1, shift, add.en
    assert rm.decode("digital.add.en", wj[-1].data) == {"en": 1, "relu": 1, "src_a": 23, "src_b": 24, "out_src": 23}
    fpga = load_spec("tiny-fpga")
    wf = compile_digital_layers(fpga, [d])
    assert len(wf) == 81 and not any(x.name.startswith(("digital.add", "digital.ipool")) for x in wf)
    rn, _ = one_run()
    cnn = prepare_cnn(golden("digits-cnn")[0]).network
    regs = {}
    for x in [*rn.network.writes, *cnn.writes]:
        regs[x.name] = x.data
    assert rm.decode("digital.add.en", regs["digital.add.en"])["en"] == 0
    assert sum(x.name == "digital.add.en" for x in cnn.writes) == 1


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("AIMC_LONG_COSIM") != "1",
                    reason="~20 min each on Icarus at load (the 25-tile proto top, ~3,400 configuration writes): over "
                           "issue 18's make-test budget; run with AIMC_LONG_COSIM=1")
def test_digits_resnet_on_icarus(tmp_path):
    """The whole digits-resnet on proto in ONE run of the chip, 1 image, Icarus (tb.test_resnet_cosim, the driver of
    digits-cnn): the 10 scores after the digital node's b2_add + global pool + fc compared, 0 mismatches;
    b2_conv2_bn and b2_proj_bn (16 x 32 each) mirrored to the host while they go to the digital node, compared,
    0 mismatches; every DAC code of the 25 analog tiles compared, 0 mismatches (b2_conv1's and b2_proj's are
    b1_add's output at their joins); RTL top-1 = the model's; no status flag (asserted inside the test); fc's busy
    cycles = timing.digital_slot_cycles(32, 10, 1) exactly. Then (same build, same process) the stem's weight
    flit 1 negated on its way to the chip: DAC mismatches appear, first (in layer order) at b1_conv1's tiles."""
    from archmodel import timing
    from mapping.mapper import MapOptions, map_network
    from tb.cnn_env import cnn_report_lines, cosim_cnn

    placement = map_network(PROTO, get_network("digits-resnet"), MapOptions(replicate=False)).placement()
    d = cosim_cnn("proto", placement, images=1, sim="icarus", build_dir=tmp_path, fault_test=True)
    ok, lines = cnn_report_lines(d)
    print("\n".join(lines))
    assert d["passed"], d["message"]
    r = d["run"]
    assert r["compared"] == 10 and r["mismatches"] == 0
    assert r["tap_compared"] == 2 * 16 * 32 and r["tap_mismatches"] == 0
    # DAC codes: 64 MVMs x 144 rows (b1_conv1, b1_conv2), 16 x 144 (b2_conv1), 16 x 288 (b2_conv2), 16 x 16 (b2_proj)
    assert r["dac_compared"] == 64 * 144 * 2 + 16 * 144 + 16 * 288 + 16 * 16 and r["dac_mismatches"] == 0
    assert d["top1_rtl"] == d["top1_model"]
    assert d["fc_cycles"] == timing.digital_slot_cycles(PROTO, 32, 10, 1)
    ft = d["fault_test"]  # the stem's weight flit 1 negated: the first wrong DAC codes are b1_conv1's (reads the stem)
    assert ft["passed"], ft["message"]
    assert ft["run"]["dac_mismatches"] > 0 and ft["dac_mismatch_layers"][0] == "b1_conv1", ft
    assert ok, "\n".join(lines)


def test_dataflow_plan_needs_nothing_more_on_proto():
    """With 11 digital destination entries and the digital node's input join + pool, every route of
    digits-resnet on proto needs nothing the RTL lacks; b2's two streams go to the digital node via b2_add and
    the global pool."""
    from tb.cnn_golden import dataflow_plan

    _, g = one_run()
    plan = {r.value: r for r in dataflow_plan(g)}
    assert all(r.needs == () for r in plan.values()), [r.needs for r in plan.values()]
    for v in ("b2_conv2_bn", "b2_proj_bn"):
        assert (plan[v].ops, plan[v].consumers) == (("add b2_add", "global_avgpool pool"), ("digital",))
    assert len(plan["stem_relu"].consumers) == 11


def test_cli_refuses_a_join_skew_before_any_build(monkeypatch):
    """`aimc cosim --images` checks every residual add's skew before building anything: a block of four 3 x 3
    convs against its shortcut on an 8 x 8 map (74 beats, above) is refused in one line naming the add."""
    import argparse

    import archmodel.zoo
    from archmodel.network.builder import NetworkBuilder
    from mapping.cli.cosim import _check_fits_rtl
    from rtl.register_compiler import JoinSkewError

    nb = NetworkBuilder("deep-res", (1, 8, 8))
    s = nb.relu("s_relu", nb.conv("s", nb.input, 16, 3, padding=1))
    x = s
    for i in range(4):
        x = nb.conv(f"c{i}", x, 16, 3, padding=1)
    y = nb.add("join", x, s)
    nb.linear("fc", nb.global_avgpool("gap", y), 10)
    net = nb.build()
    monkeypatch.setattr(archmodel.zoo, "load_network", lambda name: net)
    with pytest.raises(JoinSkewError, match=r"^residual join 'join': its producers' skew is 74 beats[^\n]*$"):
        _check_fits_rtl(argparse.Namespace(arch="proto", network="deep-res"))
