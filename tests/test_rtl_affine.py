"""Amaranth simulation of rtl/affine.py (and rtl/fixed.py) against archmodel.golden, tiny preset.

The checker compares every result with ``golden.affine.accumulate_partial_sums`` +
``golden.affine.affine_requantize`` and asserts how many it compared and that none
differed. Stimulus comes from seeded generators (seed printed in the failure
message): random ADC codes and coefficients, corner cases (all -128 codes,
largest codes, saturating scales, offsets at the limits of their width, shift 0
and the largest shift), random valid/ready gaps on every stream, and a reset in
the middle of a transfer.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import data
from amaranth.sim import Simulator
from rtl_stream_harness import Harness, Sink, Source, simulate

from archmodel import fixedpoint, timing
from archmodel.golden.affine import accumulate_partial_sums, affine_requantize
from archmodel.golden.tile_controller import dac_codes
from archmodel.spec import SpecError, load_spec, load_spec_text
from rtl.affine import AffineUnit, Requantizer, round_saturate
from rtl.fixed import relu, round_shift, saturate, to_dac_code
from rtl.params import TileParams

SPEC = load_spec("tiny")
P1 = TileParams.from_spec(SPEC)
P4 = TileParams.from_spec(SPEC.replace(**{"array.arrays_per_tile": 4}))


# --------------------------------------------------------------------------- rtl/fixed.py


def test_fixed_helpers_exhaustive():
    """round_shift (constant and variable shift), saturate, relu, to_dac_code vs archmodel, all int8."""
    x = Signal(signed(8))
    s = Signal(unsigned(4))
    m = Module()
    rs_var = Signal(signed(9))
    m.d.comb += rs_var.eq(round_shift(x, s))
    rs_const = [Signal(signed(9), name=f"rs{k}") for k in range(11)]
    m.d.comb += [rs_const[k].eq(round_shift(x, k)) for k in range(11)]
    sat = {b: Signal(signed(b), name=f"sat{b}") for b in (1, 4, 7)}
    m.d.comb += [sig.eq(saturate(x, b)) for b, sig in sat.items()]
    rl = Signal(signed(8))
    m.d.comb += rl.eq(relu(x))
    dac = {b: Signal(signed(b), name=f"dac{b}") for b in range(2, 9)}
    m.d.comb += [sig.eq(to_dac_code(x, b)) for b, sig in dac.items()]
    counts = {"compared": 0, "mismatches": 0}

    async def tb(ctx):
        for v in range(-128, 128):
            ctx.set(x, v)
            got, want = [], []
            for sh in range(11):
                ctx.set(s, sh)
                got += [ctx.get(rs_var), ctx.get(rs_const[sh])]
                want += [int(fixedpoint.round_shift(v, sh))] * 2
            got += [ctx.get(sig) for sig in sat.values()] + [ctx.get(rl)]
            want += [int(fixedpoint.saturate(v, b)) for b in sat] + [max(v, 0)]
            got += [ctx.get(sig) for sig in dac.values()]
            want += [int(dac_codes(v, b)) for b in dac]
            counts["compared"] += len(want)
            counts["mismatches"] += sum(g != w for g, w in zip(got, want, strict=True))

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert counts["compared"] == 256 * (22 + 3 + 1 + 7)
    assert counts["mismatches"] == 0


def test_round_saturate_matches_full_width_round_then_saturate():
    """rtl.affine.round_saturate (narrow add, range from the high bits) equals the full-width
    ``floor((f + 1) / 2)`` then saturate to int8 (archmodel.fixedpoint.saturate) for every f around both
    saturation ends (-257/-258, 254/255), across the 10-bit window's edges (+-512) and at the extremes of a
    49-bit value (the digital datapath's f5), and for a value narrower than the window (9 bits)."""
    f49, f9 = Signal(signed(49)), Signal(signed(9))
    o49, o9 = Signal(signed(8)), Signal(signed(8))
    m = Module()
    m.d.comb += [o49.eq(round_saturate(f49, 8)), o9.eq(round_saturate(f9, 8))]
    lo49, hi49 = fixedpoint.signed_range(49)
    vals = sorted({*range(-1100, 1100), *(lo49 + k for k in range(4)), *(hi49 - k for k in range(4)),
                   *(sgn * ((1 << b) + d) for b in range(9, 48) for d in (-1, 0, 1) for sgn in (1, -1))})
    counts = {"compared": 0, "mismatches": 0, "saturated": 0}

    def want(v):
        return int(fixedpoint.saturate((v + 1) >> 1, 8))

    async def tb(ctx):
        for v in vals:
            ctx.set(f49, v)
            counts["compared"] += 1
            counts["mismatches"] += ctx.get(o49) != want(v)
            counts["saturated"] += want(v) in (-128, 127) and v not in (-256, -255, 253, 254)
        for v in range(-256, 256):
            ctx.set(f9, v)
            counts["compared"] += 1
            counts["mismatches"] += ctx.get(o9) != want(v)

    sim = Simulator(m)
    sim.add_testbench(tb)
    sim.run()
    assert want(254) == 127 and want(255) == 127 and want(253) == 127 and want(252) == 126
    assert want(-257) == -128 and want(-258) == -128 and want(-256) == -128 and want(-255) == -127
    assert counts["compared"] == len(vals) + 512 and counts["saturated"] > 100
    assert counts["mismatches"] == 0


def test_fixed_helpers_reject_bad_operands():
    with pytest.raises(TypeError, match="signed"):
        round_shift(Signal(8), 1)
    with pytest.raises(ValueError, match=">= 0"):
        round_shift(Signal(signed(8)), -1)
    with pytest.raises(TypeError, match="signed"):
        saturate(Signal(8), 4)
    with pytest.raises(ValueError, match="dac_bits"):
        to_dac_code(Signal(signed(8)), 9)


# --------------------------------------------------------------------------- Requantizer


@pytest.mark.parametrize("wide", [False, True])
def test_requantizer_bit_exact_and_latency(wide):
    """Random and extreme (value, scale, offset, shift, relu) through the 6-cycle pipeline; ``wide``: 32-bit values
    (the digital datapath's sums), whose product is two registered partial products (rtl.affine.SPLIT_BITS)."""
    seed = 11
    rng = np.random.default_rng(seed)
    acc, sb, ob, depth = (32 if wide else P1.acc_bits), P1.scale_bits, P1.offset_bits, 16
    assert wide == (acc > 17)
    dut = Requantizer(value_bits=acc, scale_bits=sb, offset_bits=ob, depth=depth)
    lo_a, hi_a = fixedpoint.signed_range(acc)
    lo_s, hi_s = fixedpoint.signed_range(sb)
    lo_o, hi_o = fixedpoint.signed_range(ob)
    result = {"compared": 0, "mismatches": 0, "latency": None}

    async def tb(ctx, rst):
        h = Harness({"i": Source(dut.i, rng, 0.8)}, {"o": Sink(dut.o, rng, 0.8)}, rst)
        for trial in range(12):
            scale = rng.integers(lo_s, hi_s + 1, depth)
            offset = rng.integers(lo_o, hi_o + 1, depth) >> int(rng.integers(0, ob))
            scale[:4] = [lo_s, hi_s, 0, 1]
            offset[:4] = [lo_o, hi_o, 0, -1]
            shift = [0, P1.max_shift, 1, 16][trial] if trial < 4 else int(rng.integers(0, P1.max_shift + 1))
            relu_on = bool(trial % 2)
            for j in range(depth):
                ctx.set(dut.coef_addr, j)
                ctx.set(dut.coef_scale, int(scale[j]))
                ctx.set(dut.coef_offset, int(offset[j]))
                ctx.set(dut.coef_we, 1)
                await ctx.tick()
            ctx.set(dut.coef_we, 0)
            ctx.set(dut.shift, shift)
            ctx.set(dut.relu, relu_on)
            cols = rng.integers(0, depth, 64)
            vals = rng.integers(lo_a, hi_a + 1, 64)
            vals[:4] = [lo_a, hi_a, 0, -1]
            for c, v in zip(cols, vals, strict=True):
                h.sources["i"].put({"column": int(c), "value": int(v), "last": 0})
            while len(h.sinks["o"].items) < 64:
                await h.step(ctx)
            want = affine_requantize(vals, scale[cols], offset[cols], shift, relu_on,
                                            acc_bits=acc, scale_bits=sb, offset_bits=ob)
            got = [it.data for it in h.sinks["o"].items]
            got_cols = [it.column for it in h.sinks["o"].items]
            result["compared"] += 64
            result["mismatches"] += int(np.sum(np.array(got) != want)) + int(np.sum(np.array(got_cols) != cols))
            h.sinks["o"].reset()
        # latency with no gaps: accepted in cycle t -> valid in cycle t + LATENCY
        h.sources["i"].p_valid = h.sinks["o"].p_ready = 1.0
        h.sources["i"].put({"column": 0, "value": 5, "last": 1})
        t_in = None
        while not h.sinks["o"].items:
            await h.step(ctx)
            if h.fired["i"]:
                t_in = h.cycle - 1
        result["latency"] = h.sinks["o"].cycles[0] - t_in

    simulate(dut, tb)
    assert result["compared"] == 12 * 64, f"seed {seed}"
    assert result["mismatches"] == 0, f"seed {seed}"
    assert result["latency"] == Requantizer.LATENCY == timing.AFFINE_LATENCY_CYCLES == 6


def test_requantizer_ready_is_a_register():
    """Issue 19 (timing closure in context): i.ready never follows o.ready in the same cycle (the pipeline's enable
    is the two-result output FIFO's fill, a flip-flop), and with o.ready held low the unit takes exactly
    LATENCY - 1 + 2 = 7 results (five pipeline stages + the FIFO's two entries) before i.ready falls; released,
    they leave in order, one per cycle."""
    dut = Requantizer(value_bits=16, scale_bits=16, offset_bits=32, depth=4)
    res = {"taken": 0, "same_cycle": [], "out": []}

    async def tb(ctx):
        ctx.set(dut.coef_addr, 0)
        ctx.set(dut.coef_scale, 1)
        ctx.set(dut.coef_offset, 0)
        ctx.set(dut.coef_we, 1)
        await ctx.tick()
        ctx.set(dut.coef_we, 0)
        ctx.set(dut.shift, 0)
        n = 0
        for _ in range(20):
            ctx.set(dut.i.valid, 1)
            ctx.set(dut.i.payload.value, n + 1)
            pair = []
            for rdy in (1, 0):  # same cycle, o.ready toggled: i.ready must not move
                ctx.set(dut.o.ready, rdy)
                pair.append(ctx.get(dut.i.ready))
            res["same_cycle"].append(pair[0] == pair[1])
            ready = pair[1]
            await ctx.tick()
            n += ready
        res["taken"] = n
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.o.ready, 1)
        for _ in range(12):
            if ctx.get(dut.o.valid):
                res["out"].append(ctx.get(dut.o.payload.data))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert all(res["same_cycle"])
    assert res["taken"] == Requantizer.LATENCY - 1 + 2 == 7
    assert res["out"] == list(range(1, 8))


def test_requantizer_ready_next_predicts_ready():
    """Issue 19, sixth stop: ``ready_next`` and ``busy_next`` (the digital datapath registers its stall and its
    "drained" from them) equal the next cycle's ``i.ready`` and ``busy`` in every cycle, under random valid / ready
    gaps that fill the output FIFO (ready low in a quarter or more of the cycles) and an idle tail (busy low)."""
    rng = np.random.default_rng(19)
    dut = Requantizer(value_bits=32, scale_bits=16, offset_bits=32, depth=4)
    res = {"pairs": [], "low": 0}

    async def tb(ctx, rst):
        h = Harness({"i": Source(dut.i, rng, 0.9)}, {"o": Sink(dut.o, rng, 0.35)}, rst)
        for k in range(120):   # about 350 cycles at the sink's rate, then idle
            h.sources["i"].put({"column": k % 4, "value": k, "last": 0})
        prev = None
        for _ in range(500):
            nxt, rdy, bnxt, busy = await h.step(ctx, dut.ready_next, dut.i.ready, dut.busy_next, dut.busy)
            if prev is not None:
                res["pairs"].append((prev, (rdy, busy)))
            res["low"] += 1 - rdy
            res["idle"] += 1 - busy
            prev = (nxt, bnxt)

    res["idle"] = 0
    simulate(dut, tb)
    assert len(res["pairs"]) == 499
    assert all(a == b for a, b in res["pairs"])
    assert res["low"] >= 100 and res["idle"] >= 100


# --------------------------------------------------------------------------- AffineUnit


def _col_beats(p: TileParams, codes: np.ndarray, rng: np.random.Generator) -> list[dict]:
    """col_in beats of one vector (tile_schedule order); padding lanes hold garbage."""
    n_rb, n = codes.shape
    n_cb = -(-n // p.array_cols)
    cpb, gpb = p.cols_per_adc_beat, p.adc_beats_per_block
    beats = []
    for cb in range(n_cb):
        cols_used = min(p.array_cols, n - cb * p.array_cols)
        na = -(-cols_used // cpb)
        for rb in range(n_rb):
            for a in range(na):
                c0 = cb * p.array_cols + a * cpb
                lanes = min(cpb, cols_used - a * cpb)
                lane_codes = [int(v) for v in codes[rb, c0:c0 + lanes]]
                lane_codes += [int(v) for v in rng.integers(-128, 128, cpb - lanes)]
                beats.append({
                    "codes": lane_codes, "group": cb * gpb + a, "lanes": lanes, "row_block": rb,
                    "first_rb": int(rb == 0), "last_rb": int(rb == n_rb - 1),
                    "last_beat": int(a == na - 1),
                    "last_vec": int(a == na - 1 and rb == n_rb - 1 and cb == n_cb - 1),
                })
    return beats


def _layer(p, rng, n, n_rb, n_vec, *, chain_in=False, chain_out=False, corner=None):
    acc = p.acc_bits
    lo_s, hi_s = fixedpoint.signed_range(p.scale_bits)
    lo_o, hi_o = fixedpoint.signed_range(p.offset_bits)
    half = 1 << (p.adc_bits - 1)
    codes = rng.integers(-half, half, (n_vec, n_rb, n))
    scale = rng.integers(lo_s, hi_s + 1, n)
    offset = rng.integers(lo_o, hi_o + 1, n) >> int(rng.integers(8, p.offset_bits))
    shift = int(rng.integers(0, p.max_shift + 1))
    if corner == "min":        # every code -128: most negative partial sums, extreme scales
        codes[:] = -half
        scale[::2], scale[1::2] = lo_s, hi_s
        shift = 8
    elif corner == "max":      # every code +127, saturating offsets
        codes[:] = half - 1
        offset[::2], offset[1::2] = lo_o, hi_o
        shift = 0
    remote = None
    if chain_in:
        room = (1 << (acc - 1)) - 1 - n_rb * half
        remote = rng.integers(-room, room + 1, (n_vec, n))
        if corner == "min":
            remote[:] = -room
    return {"n": n, "n_rb": n_rb, "codes": codes, "scale": scale, "offset": offset, "shift": shift,
            "relu": bool(rng.integers(0, 2)), "chain_in": chain_in, "chain_out": chain_out, "remote": remote}


def _expected(p, layer):
    codes = layer["codes"]
    sums = np.stack([accumulate_partial_sums(c, p.adc_bits, p.acc_bits) for c in codes])
    if layer["chain_in"]:
        sums = sums + layer["remote"]
    if layer["chain_out"]:
        return sums
    return affine_requantize(sums, layer["scale"], layer["offset"], layer["shift"], layer["relu"],
                                    acc_bits=p.acc_bits, scale_bits=p.scale_bits, offset_bits=p.offset_bits)


def _psum_beats(p: TileParams, remote: np.ndarray) -> list[dict]:
    """psum_in beats of one vector: ``affine_lanes`` columns a beat, from column 0 (rtl/affine.py psum_layout)."""
    n, lanes = len(remote), p.affine_lanes
    if lanes == 1:
        return [{"column": j, "value": int(remote[j]), "last": int(j == n - 1)} for j in range(n)]
    beats = []
    for j0 in range(0, n, lanes):
        cnt = min(lanes, n - j0)
        vals = [int(v) for v in remote[j0:j0 + cnt]] + [0] * (lanes - cnt)
        beats.append({"column": j0, "value": vals, "count": cnt, "last": int(j0 + cnt == n)})
    return beats


def _unpack_lanes(p: TileParams, items, field: str) -> list[tuple[int, int, int]]:
    """(column, value, last) per column of result / partial-sum beats of ``affine_lanes`` lanes."""
    if p.affine_lanes == 1:
        return [(int(it.column), int(getattr(it, field)), int(it.last)) for it in items]
    out = []
    for it in items:
        cnt = int(it.count)
        assert 1 <= cnt <= p.affine_lanes
        for k in range(cnt):
            out.append((int(it.column) + k, int(getattr(it, field)[k]), int(it.last) if k == cnt - 1 else 0))
    return out


def run_affine(p: TileParams, layers: list[dict], seed: int, p_valid: float, p_ready: float,
               reset_layer: int | None = None) -> dict:
    rng = np.random.default_rng(seed)
    dut = AffineUnit(p)
    stats = {"compared": 0, "mismatches": 0, "cycles": [], "latency": [], "err_chain": 0}

    async def tb(ctx, rst):
        h = Harness({"col": Source(dut.col_in, rng, p_valid), "psum": Source(dut.psum_in, rng, p_valid)},
                    {"out": Sink(dut.out, rng, p_ready), "psum_out": Sink(dut.psum_out, rng, p_ready)}, rst)
        for li, layer in enumerate(layers):
            n = layer["n"]
            for j in range(n):
                ctx.set(dut.coef_addr, j)
                ctx.set(dut.coef_scale, int(layer["scale"][j]))
                ctx.set(dut.coef_offset, int(layer["offset"][j]))
                ctx.set(dut.coef_we, 1)
                await ctx.tick()
            ctx.set(dut.coef_we, 0)
            for port in ("shift", "relu", "chain_in", "chain_out"):
                ctx.set(getattr(dut, port), int(layer[port]))

            def enqueue(layer=layer, n=n):
                for v, codes in enumerate(layer["codes"]):
                    for beat in _col_beats(p, codes, rng):
                        h.sources["col"].put(beat)
                    if layer["chain_in"]:
                        for beat in _psum_beats(p, layer["remote"][v]):
                            h.sources["psum"].put(beat)

            sink = h.sinks["psum_out" if layer["chain_out"] else "out"]
            if li == reset_layer:       # reset in the middle of the transfer, then resend it all
                enqueue()
                for _ in range(int(rng.integers(3, 12 + 2 * n))):
                    await h.step(ctx)
                await h.reset(ctx, 1)
            enqueue()
            want = _expected(p, layer)
            t0 = h.cycle
            total = want.size
            while len(sink.items) < -(-total // p.affine_lanes):
                await h.step(ctx)
                assert h.cycle - t0 < 40 * total + 200, f"seed {seed}: timeout in layer {li}"
            stats["cycles"].append(h.cycle - t0)
            for _ in range(8):          # nothing extra comes out
                await h.step(ctx)
            items = _unpack_lanes(p, sink.items, "value" if layer["chain_out"] else "data")
            got = np.array([it[1] for it in items])
            got_cols = np.array([it[0] for it in items])
            got_last = np.array([it[2] for it in items])
            want_cols = np.tile(np.arange(n), len(layer["codes"]))
            want_last = (want_cols == n - 1).astype(int)
            stats["compared"] += total
            stats["mismatches"] += (len(got) != total) + int(np.sum(got[:total] != want.reshape(-1)))
            stats["mismatches"] += int(np.sum(got_cols[:total] != want_cols)) + int(np.sum(got_last[:total] != want_last))
            stats["err_chain"] += ctx.get(dut.err_chain)
            sink.reset()
        stats["busy_at_end"] = ctx.get(dut.busy)

    simulate(dut, tb)
    return stats


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_affine_random_with_backpressure(seed):
    """Random layers (1..4 row blocks, 1..4 column blocks) with random valid/ready gaps on every stream."""
    rng = np.random.default_rng(seed)
    layers = [
        _layer(P4, rng, int(rng.integers(1, P4.max_cols + 1)), int(rng.integers(1, 5)), 2),
        _layer(P4, rng, P4.max_cols, 4, 1),
        _layer(P4, rng, 1, 1, 3),
        _layer(P4, rng, 37, 2, 2, chain_in=True),
        _layer(P4, rng, 21, 3, 2, chain_out=True),
        _layer(P4, rng, 40, 2, 1, chain_in=True, chain_out=True),
    ]
    stats = run_affine(P4, layers, seed, p_valid=0.6, p_ready=0.6)
    n_expected = sum(layer["n"] * len(layer["codes"]) for layer in layers)
    assert stats["compared"] == n_expected, f"seed {seed}"
    assert stats["mismatches"] == 0, f"seed {seed}"
    assert stats["err_chain"] == 0
    assert stats["busy_at_end"] == 0


def _lanes_params(lanes: int, arrays_per_tile: int = 4) -> TileParams:
    return TileParams.from_spec(SPEC.replace(**{"array.arrays_per_tile": arrays_per_tile,
                                                "periphery.affine_lanes": lanes}))


@pytest.mark.parametrize("lanes", [1, 2, 4, 8])
def test_affine_lanes_random_with_backpressure(lanes):
    """``affine_lanes`` 1/2/4/8: random layers (partial column groups, chains) with random valid/ready gaps.

    Every column's result or partial sum is compared with the golden
    ``accumulate_partial_sums`` + ``affine_requantize`` (and its column index and
    ``last`` flag); the count compared is asserted.
    """
    seed = 10 + lanes
    p = _lanes_params(lanes)
    assert p.affine_lanes == lanes
    rng = np.random.default_rng(seed)
    layers = [
        _layer(p, rng, 77, 2, 2),                            # 3 column blocks, final group of 5 columns
        _layer(p, rng, 31, 1, 2, corner="min"),
        _layer(p, rng, 3, 3, 2),                             # one partial slot only
        _layer(p, rng, 45, 2, 2, chain_in=True),
        _layer(p, rng, 21, 1, 2, chain_out=True),
        _layer(p, rng, 40, 2, 1, chain_in=True, chain_out=True),
    ]
    stats = run_affine(p, layers, seed, p_valid=0.6, p_ready=0.5)
    assert stats["compared"] == 2 * (77 + 31 + 3 + 45 + 21) + 40, f"seed {seed}"
    assert stats["mismatches"] == 0, f"seed {seed}"
    assert stats["err_chain"] == 0 and stats["busy_at_end"] == 0


@pytest.mark.parametrize("lanes", [2, 4, 8])
def test_affine_lanes_throughput(lanes):
    """No gaps: ``lanes`` results a cycle -- 6 vectors of 32 columns leave in 6 * 32 / lanes cycles."""
    p = _lanes_params(lanes, 1)
    rng = np.random.default_rng(lanes)
    dut = AffineUnit(p)
    res = {}

    async def tb(ctx, rst):
        h = Harness({"col": Source(dut.col_in, rng)}, {"out": Sink(dut.out, rng)}, rst)
        for _ in range(6):
            for beat in _col_beats(p, rng.integers(-128, 128, (1, 32)), rng):
                h.sources["col"].put(beat)
        while len(h.sinks["out"].items) < 6 * 32 // lanes:
            await h.step(ctx)
        c = h.sinks["out"].cycles
        res["span"] = c[-1] - c[0] + 1
        res["counts"] = {int(it.count) for it in h.sinks["out"].items}

    simulate(dut, tb)
    # the ADC beats (8 columns) arrive one per cycle: the unit is bound by min(8, lanes) columns a cycle
    assert res["span"] == 6 * 32 // lanes if lanes < 8 else 6 * 4
    assert res["counts"] == {lanes}
    per_vector = timing.affine_cycles(SPEC.replace(**{"periphery.affine_lanes": lanes}), 32)
    assert per_vector == 32 // lanes


def test_affine_lanes_refused():
    """A lane count that is not a power of two, or does not divide the array-port beats, is refused in one line."""
    with pytest.raises(SpecError, match="power of two"):
        load_spec_text("name: a\nperiphery: {affine_lanes: 3}")
    with pytest.raises(SpecError, match="must divide array.cols_per_adc_beat=8"):
        load_spec_text("name: a\narray: {cols_per_adc_beat: 8}\nperiphery: {affine_lanes: 16}")


def test_affine_corner_cases_tiny():
    """Most negative / largest codes, extreme scales and offsets, saturation, on the tiny preset itself."""
    seed = 5
    rng = np.random.default_rng(seed)
    layers = [
        _layer(P1, rng, P1.max_cols, 1, 2, corner="min"),
        _layer(P1, rng, P1.max_cols, 1, 2, corner="max"),
        _layer(P1, rng, 13, 1, 2, chain_in=True, corner="min"),
        _layer(P1, rng, 9, 1, 1),
    ]
    stats = run_affine(P1, layers, seed, p_valid=0.7, p_ready=0.5)
    assert stats["compared"] == 2 * 32 + 2 * 32 + 2 * 13 + 9, f"seed {seed}"
    assert stats["mismatches"] == 0, f"seed {seed}"
    # the corner cases really saturate
    want = _expected(P1, layers[1])
    assert np.any(want == 127) and np.any(want == -128) or np.any(want == 0)


def test_affine_reset_mid_transfer():
    """Reset while a vector is half accumulated: the unit returns to idle and the next transfer is exact."""
    seed = 9
    rng = np.random.default_rng(seed)
    layers = [_layer(P4, rng, 70, 3, 2), _layer(P4, rng, 30, 2, 2, chain_in=True)]
    stats = run_affine(P4, layers, seed, p_valid=0.8, p_ready=0.8, reset_layer=0)
    assert stats["compared"] == 70 * 2 + 30 * 2, f"seed {seed}"
    assert stats["mismatches"] == 0, f"seed {seed}"


def test_affine_throughput_and_latency():
    """No gaps: one result per cycle in steady state; 9 cycles from the final beat to the first result."""
    seed = 3
    rng = np.random.default_rng(seed)
    dut = AffineUnit(P1)
    res = {}

    async def tb(ctx, rst):
        h = Harness({"col": Source(dut.col_in, rng)}, {"out": Sink(dut.out, rng)}, rst)
        codes = rng.integers(-128, 128, (1, 8))
        for beat in _col_beats(P1, codes, rng):
            h.sources["col"].put(beat)
        t_in = None
        while not h.sinks["out"].items:
            await h.step(ctx)
            if h.fired["col"]:
                t_in = h.cycle - 1
        res["latency"] = h.sinks["out"].cycles[0] - t_in
        while len(h.sinks["out"].items) < 8:
            await h.step(ctx)
        # 6 full vectors back to back: 6 * 32 results
        h.sinks["out"].reset()
        for _ in range(6):
            for beat in _col_beats(P1, rng.integers(-128, 128, (1, 32)), rng):
                h.sources["col"].put(beat)
        while len(h.sinks["out"].items) < 6 * 32:
            await h.step(ctx)
        c = h.sinks["out"].cycles
        res["span"] = c[-1] - c[0] + 1

    simulate(dut, tb)
    assert res["latency"] == AffineUnit.LATENCY == 9
    assert res["span"] == 6 * 32            # one result every cycle, no bubble


def test_affine_converts_to_verilog():
    for p in (P1, P4, _lanes_params(4)):
        text = verilog.convert(AffineUnit(p), name="affine_unit", emit_src=False)
        assert "module affine_unit" in text


def test_affine_latency_is_one_figure():
    """The RTL pipeline, the RTL parameters and the chip description agree; another figure is refused."""
    assert TileParams.from_spec(load_spec("tiny")).affine_latency_cycles == timing.AFFINE_LATENCY_CYCLES
    with pytest.raises(SpecError, match=r"affine_latency_cycles=3, but the RTL affine unit's pipeline is 6"):
        load_spec_text("name: a\nperiphery: {affine_latency_cycles: 3}")


@pytest.mark.parametrize("depth,lanes", [(2, 1), (4, 1), (5, 2)])
def test_shift_out_fifo_is_sync_fifo_buffered_cycle_for_cycle(depth, lanes):
    """Issue 19 (seventh stop): the affine unit's ``_ShiftOutFIFO`` beside amaranth's ``SyncFIFOBuffered`` (an
    independent implementation) under the same random writes, reads and shifts (a shift only while the head is
    held, as the serializer does): every cycle the same ``w_rdy``, ``r_rdy`` and ``level``, and ``r_data`` equals
    the reference's head with its ``sums`` moved down ``lanes`` lanes per shift since it was loaded (zeros above)."""
    from amaranth.hdl import ClockDomain
    from amaranth.lib.fifo import SyncFIFOBuffered

    from rtl.affine import _ShiftOutFIFO

    lay = data.StructLayout({"sums": data.ArrayLayout(signed(6), 4), "group": unsigned(3)})
    m = Module()
    m.domains.sync = ClockDomain("sync")
    m.submodules.dut = dut = _ShiftOutFIFO(lay, depth, lanes)
    m.submodules.ref = ref = SyncFIFOBuffered(width=lay.size, depth=depth)
    rng = np.random.default_rng(depth * 10 + lanes)
    checked = {"cycles": 0, "held": 0}

    async def tb(ctx):
        shifts = 0
        for _ in range(600):
            w = int(rng.integers(0, 1 << lay.size))
            w_en, r_en = int(rng.random() < 0.6), int(rng.random() < 0.4)
            r_rdy = ctx.get(ref.r_rdy)
            shift = int(r_rdy and not r_en and rng.random() < 0.7 and shifts < 4 // lanes - 1)
            for f in (dut, ref):
                ctx.set(f.w_data, w)
                ctx.set(f.w_en, w_en)
                ctx.set(f.r_en, r_en)
            ctx.set(dut.shift, shift)
            ctx.set(dut.final, int(r_en or (not shift and rng.random() < 0.5)))  # r_en only with final, shift without
            assert [ctx.get(dut.w_rdy), ctx.get(dut.r_rdy), ctx.get(dut.level)] == \
                [ctx.get(ref.w_rdy), r_rdy, ctx.get(ref.level)]
            if r_rdy:
                got, want = ctx.get(dut.r_data), ctx.get(ref.r_data)
                sums = [(want >> (6 * k)) & 63 for k in range(4)][shifts * lanes:]
                assert [(got >> (6 * k)) & 63 for k in range(4)] == sums + [0] * (4 - len(sums))
                assert got >> 24 == want >> 24                      # group: not shifted
                checked["held"] += shifts > 0
            checked["cycles"] += 1
            await ctx.tick()
            shifts = 0 if (r_en or not r_rdy) else shifts + shift

    sim = Simulator(m)
    sim.add_clock(1e-8, domain="sync")
    sim.add_testbench(tb)
    sim.run()
    assert checked["cycles"] == 600 and checked["held"] > 50
