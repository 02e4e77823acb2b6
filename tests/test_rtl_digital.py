"""Amaranth simulation of rtl/digital.py against archmodel.golden, tiny preset.

Each layer (a convolution through ``golden.digital.im2col`` or a linear layer) loads its
weights and coefficients through the configuration ports, streams its im2col
columns with random valid gaps while the output is taken with random ready
gaps, and the checker compares every int8 result, in
``golden.digital.digital_datapath_order``, with ``golden.digital.digital_conv2d`` /
``golden.digital.digital_linear`` followed by ``golden.affine.affine_requantize``; it asserts
how many it compared and that none differed.
"""

from __future__ import annotations

import gc

import numpy as np
import pytest
from amaranth.back import verilog
from rtl_stream_harness import Harness, Sink, Source, simulate

from archmodel import fixedpoint, timing
from archmodel.golden.affine import affine_requantize
from archmodel.golden.digital import digital_conv2d, digital_datapath_order, digital_linear, im2col, weight_matrix
from archmodel.spec import load_spec
from rtl.digital import DigitalDatapath
from rtl.params import DigitalParams

SPEC = load_spec("tiny")
P = DigitalParams.from_spec(SPEC)


def conv_layer(rng, c_in, h, w, c_out, k, stride=1, padding=0, corner=None):
    x = rng.integers(-128, 128, (c_in, h, w))
    wt = rng.integers(-128, 128, (c_out, c_in, k, k))
    if corner == "min":
        x[:] = -128
        wt[:] = -128
    acc = digital_conv2d(x, wt, stride=stride, padding=padding, acc_bits=P.acc_bits)
    cols = im2col(x, k, stride, padding)
    return {"cols": cols, "wm": weight_matrix(wt), "acc": acc.reshape(c_out, -1).T}


def linear_layer(rng, n_in, n_out, corner=None):
    x = rng.integers(-128, 128, (1, n_in))
    wt = rng.integers(-128, 128, (n_out, n_in))
    if corner == "max":
        x[:] = -128
        wt[:] = 127
    return {"cols": x.T, "wm": wt.T, "acc": digital_linear(x, wt, acc_bits=P.acc_bits)}


def coefficients(rng, layer, corner=None):
    c_out = layer["wm"].shape[1]
    lo_s, hi_s = fixedpoint.signed_range(P.scale_bits)
    lo_o, hi_o = fixedpoint.signed_range(P.offset_bits)
    layer["scale"] = rng.integers(lo_s, hi_s + 1, c_out)
    layer["offset"] = rng.integers(lo_o, hi_o + 1, c_out) >> int(rng.integers(0, P.offset_bits))
    layer["shift"] = int(rng.integers(12, 30))
    layer["relu"] = bool(rng.integers(0, 2))
    if corner:
        layer["scale"][::2], layer["scale"][1::2] = lo_s, hi_s
        layer["shift"], layer["relu"] = P.max_shift if corner == "max" else 0, False
    layer["want"] = affine_requantize(layer["acc"], layer["scale"], layer["offset"], layer["shift"],
                                             layer["relu"], acc_bits=P.acc_bits, scale_bits=P.scale_bits,
                                             offset_bits=P.offset_bits)
    return layer


def weight_beats(wm, lanes, chunk):
    """The w_in beats of a (K, C_out) weight matrix: word g*K + k, chunk c -> lanes c*chunk .. (independent of
    rtl.register_compiler.compile_digital_weights: from the matrix, lane by lane)."""
    k, c_out = wm.shape
    beats = []
    for g in range(-(-c_out // lanes)):
        for kk in range(k):
            for c0 in range(0, lanes, chunk):
                beats.append(sum((int(wm[kk, g * lanes + c0 + b]) & 0xFF) << (8 * b)
                                 for b in range(chunk) if c0 + b < lanes and g * lanes + c0 + b < c_out))
    return beats


async def stream_weights(ctx, dut, beats, rng=None, p_valid=1.0, w_addr=0):
    """w_load at ``w_addr``, then the beats on w_in with random valid gaps; returns the cycles ready was low."""
    ctx.set(dut.w_addr, w_addr)
    ctx.set(dut.w_load, 1)
    await ctx.tick()
    ctx.set(dut.w_load, 0)
    not_ready = 0
    for beat in beats:
        while rng is not None and rng.random() > p_valid:
            ctx.set(dut.w_in.valid, 0)
            await ctx.tick()
        ctx.set(dut.w_in.valid, 1)
        ctx.set(dut.w_in.payload, beat)
        not_ready += 1 - ctx.get(dut.w_in.ready)
        await ctx.tick()
    ctx.set(dut.w_in.valid, 0)
    return not_ready


async def load_layer(ctx, dut, layer, rng=None, p_valid=1.0):
    wm = layer["wm"]
    await stream_weights(ctx, dut, weight_beats(wm, P.mac_lanes, dut.w_chunk_lanes), rng, p_valid)
    await load_layer_config(ctx, dut, layer)


async def load_layer_config(ctx, dut, layer):
    k, c_out = layer["wm"].shape
    ctx.set(dut.coef_we, 1)
    for ch in range(c_out):
        ctx.set(dut.coef_addr, ch)
        ctx.set(dut.coef_scale, int(layer["scale"][ch]))
        ctx.set(dut.coef_offset, int(layer["offset"][ch]))
        await ctx.tick()
    ctx.set(dut.coef_we, 0)
    ctx.set(dut.shift, layer["shift"])
    ctx.set(dut.relu, layer["relu"])
    ctx.set(dut.k_terms, k)
    ctx.set(dut.c_out, c_out)
    ctx.set(dut.n_pixels, layer["cols"].shape[1])


async def run_layer(ctx, h, dut, layer, reset_after=None):
    """Start, stream, collect; returns (compared, mismatches, cycles from start to done)."""
    cols = layer["cols"]
    k, n_pix = cols.shape
    for pix in range(n_pix):
        for kk in range(k):
            h.sources["x"].put({"data": int(cols[kk, pix]), "last": int(kk == k - 1)})
    ctx.set(dut.start, 1)
    await h.step(ctx)
    ctx.set(dut.start, 0)
    t0 = h.cycle
    while True:
        done, busy = await h.step(ctx, dut.done, dut.busy)
        if reset_after is not None and len(h.sinks["out"].items) >= reset_after:
            await h.reset(ctx, 1)
            return None
        if done and not busy:
            break
        assert h.cycle - t0 < 50 * cols.size + 500, "run did not finish"
    items = h.sinks["out"].items
    cycles = h.sinks["out"].cycles[-1] - t0 + 1 if items else 0      # start .. last result, inclusive
    order = digital_datapath_order(n_pix, layer["wm"].shape[1], P.mac_lanes)
    want = [(ch, int(layer["want"][pix, ch]), int(ch == layer["wm"].shape[1] - 1)) for pix, ch in order]
    got = [(int(it.column), int(it.data), int(it.last)) for it in items]
    mismatches = (len(got) != len(want)) + sum(g != w for g, w in zip(got, want, strict=False))   # length counted above
    mismatches += ctx.get(dut.err_x_last) + ctx.get(dut.err_config)
    h.sinks["out"].reset()
    return len(want), mismatches, cycles


def _harness(dut, rng, rst, p_valid, p_ready):
    return Harness({"x": Source(dut.x_in, rng, p_valid)}, {"out": Sink(dut.out, rng, p_ready)}, rst)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_digital_layers_random_with_backpressure(seed):
    """Convolutions (stride, padding, K < lanes, partial channel groups), linear layers, corner cases."""
    rng = np.random.default_rng(seed)
    layers = [
        coefficients(rng, conv_layer(rng, 3, 5, 5, 6, 3, padding=1)),               # K=27, 2 groups, 25 px
        coefficients(rng, conv_layer(rng, 2, 4, 4, 5, 1, stride=2)),                # K=2 < 4 lanes
        coefficients(rng, linear_layer(rng, 64, 10)),                               # the last layer
        coefficients(rng, conv_layer(rng, 4, 3, 3, 4, 2, corner="min"), corner="max"),  # -128 x -128
        coefficients(rng, linear_layer(rng, 40, 7, corner="max"), corner="min"),    # saturation
    ]
    dut = DigitalDatapath(P)
    stats = {"compared": 0, "mismatches": 0}

    async def tb(ctx, rst):
        h = _harness(dut, rng, rst, 0.6, 0.6)
        for layer in layers:
            await load_layer(ctx, dut, layer, rng, 0.6)    # weight stream with valid gaps
            compared, mismatches, _ = await run_layer(ctx, h, dut, layer)
            stats["compared"] += compared
            stats["mismatches"] += mismatches

    simulate(dut, tb)
    assert stats["compared"] == sum(layer["want"].size for layer in layers), f"seed {seed}"
    assert stats["mismatches"] == 0, f"seed {seed}"
    saturated = np.concatenate([layers[3]["want"].ravel(), layers[4]["want"].ravel()])
    assert {-128, 127} <= set(saturated.tolist())      # the corner cases do saturate


@pytest.mark.parametrize("chunk", [1, 3, 4, 8])
def test_digital_weight_stream_lands_at_words(chunk):
    """Weights streamed on w_in with random valid gaps land at their words: first a random burst of random length
    (leaves the pointer mid-word when chunk < lanes), then w_load 0 and the layer's weights, ceil(4 / chunk) beats
    per word (chunk 8: one beat per word, the upper lanes dropped); the layer then runs bit-exact, so every word
    g*K + k holds W[k, g*4 .. g*4 + 3]; ready never low."""
    rng = np.random.default_rng(10 + chunk)
    layer = coefficients(rng, linear_layer(rng, 23, 10))              # K = 23, 3 channel groups, 69 words
    dut = DigitalDatapath(P, w_chunk_lanes=chunk)
    res = {}

    async def tb(ctx, rst):
        h = _harness(dut, rng, rst, 0.7, 0.7)
        junk = [int.from_bytes(bytes(row.tolist()), "little")
                for row in rng.integers(0, 256, (69 * -(-4 // chunk) + 5, chunk))]
        res["stalls"] = await stream_weights(ctx, dut, junk, rng, 0.6)
        beats = weight_beats(layer["wm"], P.mac_lanes, chunk)
        res["beats"] = len(beats)
        res["stalls"] += await stream_weights(ctx, dut, beats, rng, 0.6)
        await load_layer_config(ctx, dut, layer)
        res["run"] = await run_layer(ctx, h, dut, layer)

    simulate(dut, tb)
    assert res["beats"] == 69 * -(-4 // chunk)
    assert res["stalls"] == 0
    compared, mismatches, _ = res["run"]
    assert (compared, mismatches) == (10, 0)


def test_digital_cycle_count():
    """No gaps, K >= lanes: n_pixels * ceil(c_out / lanes) * K MAC cycles after the registered configuration check
    (timing.DIGITAL_CHECK_CYCLES = 3: a 3-stage check pipeline, issue 19), the last result lanes + LATENCY - 1
    later."""
    rng = np.random.default_rng(3)
    layer = coefficients(rng, conv_layer(rng, 1, 4, 4, 8, 3))       # K=9, 2 groups, 4 pixels
    dut = DigitalDatapath(P)
    res = {}

    async def tb(ctx, rst):
        h = _harness(dut, rng, rst, 1.0, 1.0)
        await load_layer(ctx, dut, layer)
        res["run"] = await run_layer(ctx, h, dut, layer)

    simulate(dut, tb)
    compared, mismatches, cycles = res["run"]
    assert (compared, mismatches) == (4 * 8, 0)
    assert DigitalDatapath.LATENCY == 10 == timing.DIGITAL_LATENCY_CYCLES
    assert timing.DIGITAL_CHECK_CYCLES == 3
    assert cycles == 3 + 4 * 2 * 9 + P.mac_lanes + DigitalDatapath.LATENCY - 1


def test_digital_reset_mid_transfer_and_config_errors():
    rng = np.random.default_rng(4)
    layer = coefficients(rng, conv_layer(rng, 2, 4, 4, 6, 2))
    dut = DigitalDatapath(P)
    res = {}

    async def tb(ctx, rst):
        h = _harness(dut, rng, rst, 0.8, 0.8)
        await load_layer(ctx, dut, layer)
        await run_layer(ctx, h, dut, layer, reset_after=7)
        await h.step(ctx)
        res["idle"] = (ctx.get(dut.busy), ctx.get(dut.out.valid), ctx.get(dut.x_in.ready))
        res["run"] = await run_layer(ctx, h, dut, layer)       # weights and coefficients survive reset
        errs = []
        for k, c, npix in ((0, 4, 1), (4, 0, 1), (4, 4, 0), (P.max_k + 1, 4, 1), (4, P.max_channels + 1, 1),
                           (P.weight_words, P.mac_lanes + 1, 1)):
            ctx.set(dut.k_terms, k)
            ctx.set(dut.c_out, c)
            ctx.set(dut.n_pixels, npix)
            ctx.set(dut.start, 1)
            await h.step(ctx)
            ctx.set(dut.start, 0)
            for _ in range(timing.DIGITAL_CHECK_CYCLES):  # CHECK decides in its last cycle
                await h.step(ctx)
            errs.append((ctx.get(dut.err_config), ctx.get(dut.busy)))
        res["errs"] = errs

    simulate(dut, tb)
    assert res["idle"] == (0, 0, 0)
    compared, mismatches, _ = res["run"]
    assert compared == layer["want"].size == 9 * 6
    assert mismatches == 0
    assert res["errs"] == [(1, 0)] * 6


@pytest.mark.filterwarnings("ignore:.*created but never used")
def test_digital_params_and_verilog():
    assert P.weight_words == 4096 and P.mac_lanes == 4 and P.acc_bits == 32  # tiny: 16 KiB global buffer / 4 lanes
    with pytest.raises(TypeError, match="DigitalParams"):
        DigitalDatapath(SPEC)
    gc.collect()
    text = verilog.convert(DigitalDatapath(P), name="digital_datapath", emit_src=False)
    assert "module digital_datapath" in text


def test_digital_registered_config_check_start_latency():
    """Issue 19: the datapath's configuration check is a 3-stage pipeline (configuration set in the start cycle).
    x_in.ready rises exactly timing.digital_start_latency_cycles() = 4 cycles after the start pulse (CHECK for
    DIGITAL_CHECK_CYCLES = 3 cycles, then RUN), busy is 1 from the cycle after start; a bad configuration (K = 0)
    sets err_config at the last CHECK cycle's edge and never raises x_in.ready. The x source always offers a
    beat, so ready is the datapath's own."""
    rng = np.random.default_rng(5)
    layer = coefficients(rng, linear_layer(rng, 8, 4))
    dut = DigitalDatapath(P)
    seen = {}

    async def tb(ctx, rst):
        h = _harness(dut, rng, rst, 1.0, 1.0)
        await load_layer(ctx, dut, layer)
        for label, k in (("good", 8), ("bad", 0)):
            h.sources["x"].reset()
            for kk in range(8):
                h.sources["x"].put({"data": 1, "last": int(kk == 7)})
            ctx.set(dut.k_terms, k)
            ctx.set(dut.start, 1)
            trace = []
            for _ in range(6):
                trace.append((ctx.get(dut.busy), ctx.get(dut.x_in.ready), ctx.get(dut.err_config)))
                await h.step(ctx)
                ctx.set(dut.start, 0)
            seen[label] = trace
            for _ in range(40):
                await h.step(ctx)
            h.sinks["out"].reset()

    simulate(dut, tb)
    assert timing.digital_start_latency_cycles() == 4
    # cycle of start, CHECK x 3, RUN (x_in ready), RUN
    assert seen["good"] == [(0, 0, 0), (1, 0, 0), (1, 0, 0), (1, 0, 0), (1, 1, 0), (1, 1, 0)]
    assert seen["bad"] == [(0, 0, 0), (1, 0, 0), (1, 0, 0), (1, 0, 0), (0, 0, 1), (0, 0, 1)]


def _two_slot_case(rng, n0, n1, rounds):
    """Slot 0: a conv (K = 9, 6 channels, as conv1 on a 1-channel map); slot 1: a linear layer (K = 20, 5 outputs);
    per round n0 vectors of slot 0, then n1 of slot 1 (the reference runs each layer on its own vectors)."""
    l0 = coefficients(rng, linear_layer(rng, 9, 6))
    l1 = coefficients(rng, linear_layer(rng, 20, 5))
    x0 = rng.integers(-128, 128, (rounds * n0, 9))
    x1 = rng.integers(-128, 128, (rounds * n1, 20))
    for lyr, x in ((l0, x0), (l1, x1)):
        acc = digital_linear(x, lyr["wm"].T, acc_bits=P.acc_bits)
        lyr["cols"] = x.T
        lyr["want"] = affine_requantize(acc, lyr["scale"], lyr["offset"], lyr["shift"], lyr["relu"],
                                        acc_bits=P.acc_bits, scale_bits=P.scale_bits, offset_bits=P.offset_bits)
    return l0, l1


@pytest.mark.parametrize("n0, n1, rounds, p", [(3, 2, 2, 0.6), (1, 1, 3, 0.6), (4, 1, 2, 1.0)])
def test_digital_two_slots_per_slot_vector_counts(n0, n1, rounds, p):
    """Two layer slots with per-slot vector counts (register map v7, ``n_vectors0`` / ``n_vectors1``): per round
    n0 vectors of slot 0, then n1 of slot 1 (1 / 1: the old alternation). Every result compared in stream order
    with digital_linear + affine_requantize run on each layer's own vectors (an independent reference), with
    random valid / ready gaps (p < 1); ``slot`` is 0 / 1 while each slot's vectors are read. Without gaps the busy
    counters equal ``timing.digital_slot_cycles`` summed over the runs."""
    rng = np.random.default_rng(7 + n0)
    l0, l1 = _two_slot_case(rng, n0, n1, rounds)
    words0 = -(-6 // P.mac_lanes) * 9
    dut = DigitalDatapath(P)
    res = {}

    async def tb(ctx, rst):
        h = _harness(dut, rng, rst, p, p)
        await stream_weights(ctx, dut, weight_beats(l0["wm"], P.mac_lanes, dut.w_chunk_lanes))
        await stream_weights(ctx, dut, weight_beats(l1["wm"], P.mac_lanes, dut.w_chunk_lanes), w_addr=words0)
        ctx.set(dut.coef_we, 1)
        for base, lyr in ((0, l0), (6, l1)):
            for ch in range(lyr["wm"].shape[1]):
                ctx.set(dut.coef_addr, base + ch)
                ctx.set(dut.coef_scale, int(lyr["scale"][ch]))
                ctx.set(dut.coef_offset, int(lyr["offset"][ch]))
                await ctx.tick()
        ctx.set(dut.coef_we, 0)
        for port, v in (("shift", l0["shift"]), ("relu", l0["relu"]), ("k_terms", 9), ("c_out", 6),
                        ("shift1", l1["shift"]), ("relu1", l1["relu"]), ("k_terms1", 20), ("c_out1", 5),
                        ("w_base1", words0), ("coef_base1", 6), ("n_pixels", rounds), ("two_layers", 1),
                        ("n_vectors0", n0), ("n_vectors1", n1)):
            ctx.set(getattr(dut, port), int(v))
        want, slots = [], []
        for r in range(rounds):
            for lyr, n, s in ((l0, n0, 0), (l1, n1, 1)):
                for v in range(r * n, (r + 1) * n):
                    k, c = lyr["cols"].shape[0], lyr["want"].shape[1]
                    for kk in range(k):
                        h.sources["x"].put({"data": int(lyr["cols"][kk, v]), "last": int(kk == k - 1)})
                        slots.append(s)
                    want += [(int(lyr["want"][v, ch]), int(ch == c - 1)) for ch in range(c)]
        ctx.set(dut.start, 1)
        await h.step(ctx)
        ctx.set(dut.start, 0)
        seen = []
        t0 = h.cycle
        while True:
            done, busy, slot, xv, xr = await h.step(ctx, dut.done, dut.busy, dut.slot, dut.x_in.valid, dut.x_in.ready)
            if xv and xr:
                seen.append(slot)
            if done and not busy:
                break
            assert h.cycle - t0 < 20000, "run did not finish"
        res["got"] = [(int(it.data), int(it.last)) for it in h.sinks["out"].items]
        res.update(want=want, slots=slots, seen=seen, c0=ctx.get(dut.cycles0), c1=ctx.get(dut.cycles1),
                   err=ctx.get(dut.err_x_last) + ctx.get(dut.err_config))

    simulate(dut, tb)
    assert len(res["got"]) == rounds * (6 * n0 + 5 * n1) == len(res["want"])
    assert sum(g != w for g, w in zip(res["got"], res["want"], strict=True)) == 0 and res["err"] == 0
    assert res["seen"] == res["slots"]  # slot 0 while slot 0's elements are read, then slot 1
    if p == 1.0:
        assert res["c0"] == rounds * timing.digital_slot_cycles(SPEC, 9, 6, n0)
        assert res["c1"] == rounds * timing.digital_slot_cycles(SPEC, 20, 5, n1)
