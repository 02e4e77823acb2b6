"""rtl.axis network-interface adapters: packets and beats intact, and the documented full rate.

Tiny-preset shapes: an ``act`` beat is 8 int8 lanes + ``last`` = 65 bits, so
3 flits of 32 payload bits. At full rate (no stall anywhere) the documented
throughput is one flit per cycle (``BeatToFlits``, ``FlitsToBeat``) and one
result per cycle (``ResultPacker``): N items leave in N consecutive cycles.
With random valid/ready gaps the items must still arrive whole and in order.
"""

from __future__ import annotations

import numpy as np
import pytest

from archmodel.spec import load_spec
from rtl.affine import result_layout
from rtl.axis import BeatToFlits, FlitsToBeat, ResultPacker, StreamSlice
from rtl.params import TileParams
from rtl.router import flit_layout
from rtl.tile_controller import act_beat_layout, index_shape
from tests.rtl_stream_harness import Harness, Sink, Source, simulate

P = TileParams.from_spec(load_spec("tiny"))
ACT = act_beat_layout(P)
FLIT = flit_layout(2, 1, 32)
RESULT = result_layout(index_shape(P.max_cols))


def _bits(layout, value) -> int:
    return int(layout.const(value).as_bits()) if isinstance(value, dict) else int(value.as_bits())


def _beats(rng, n):
    return [{"data": [int(v) for v in rng.integers(-128, 128, 8)], "last": int(k % 3 == 2)} for k in range(n)]


def _run(dut, src, snk, n_out, limit=400):
    async def tb(ctx, rst):
        h = Harness({"i": src}, {"o": snk}, rst)
        while len(snk.items) < n_out and h.cycle < limit:
            await h.step(ctx)
    simulate(dut, tb)


class _JunkSource(Source):
    """A source whose payload is random bits whenever ``valid`` is low (FlitsToBeat's chunks capture their input
    whether a flit is there or not: junk must never reach a beat)."""

    def drive(self, ctx) -> None:
        super().drive(ctx)
        if self.current is None:
            width = len(self.stream.payload.as_value())
            ctx.set(self.stream.payload.as_value(), int(self.rng.integers(0, 1 << 62)) % (1 << width))


@pytest.mark.parametrize("p", [1.0, 0.5])
def test_beat_to_flits_to_beat(p):
    rng = np.random.default_rng(3)
    beats = _beats(rng, 6)
    tx = BeatToFlits(ACT, FLIT, chan=1)
    src, snk = Source(tx.i, rng, p), Sink(tx.o, rng, p)
    for b in beats:
        src.put(b)

    async def tb(ctx, rst):
        ctx.set(tx.dest_x, 2)
        ctx.set(tx.dest_y, 1)
        h = Harness({"i": src}, {"o": snk}, rst)
        while len(snk.items) < 18 and h.cycle < 400:
            await h.step(ctx)
    simulate(tx, tb)
    assert len(snk.items) == 18
    flits = [(int(f.payload), int(f.last), int(f.x), int(f.y), int(f.chan)) for f in snk.items]
    assert [f[1] for f in flits] == [0, 0, 1] * 6
    assert all(f[2:] == (2, 1, 1) for f in flits)
    for k, b in enumerate(beats):
        raw = sum(flits[3 * k + j][0] << (32 * j) for j in range(3))
        assert raw == _bits(ACT, b)
    if p == 1.0:  # one flit per cycle, back to back (the 1-cycle latency aside)
        assert snk.cycles == list(range(snk.cycles[0], snk.cycles[0] + 18))

    rx = FlitsToBeat(ACT, FLIT)
    src, snk = _JunkSource(rx.i, rng, p), Sink(rx.o, rng, p)
    for f in flits:
        src.put({"x": f[2], "y": f[3], "chan": f[4], "payload": f[0], "last": f[1]})
    _run(rx, src, snk, 6)
    assert [_bits(ACT, b) for b in snk.items] == [_bits(ACT, b) for b in beats]
    if p == 1.0:  # one flit per cycle in: a beat every 3 cycles
        assert np.all(np.diff(snk.cycles) == 3)


@pytest.mark.parametrize("p", [1.0, 0.5])
def test_result_packer(p):
    rng = np.random.default_rng(4)
    n_vec, n = 3, 20                          # 20 results per vector: beats of 8, 8, 4 (+ 4 zero lanes)
    vals = rng.integers(-128, 128, (n_vec, n))
    pack = ResultPacker(RESULT, ACT)
    src, snk = Source(pack.i, rng, p), Sink(pack.o, rng, p)
    for v in range(n_vec):
        for j in range(n):
            src.put({"column": j, "data": int(vals[v, j]), "last": int(j == n - 1)})
    accepted: list[int] = []

    async def tb(ctx, rst):
        h = Harness({"i": src}, {"o": snk}, rst)
        while len(snk.items) < 3 * n_vec and h.cycle < 400:
            await h.step(ctx)
            if h.fired["i"]:
                accepted.append(h.cycle)
    simulate(pack, tb)
    assert len(snk.items) == 3 * n_vec
    for v in range(n_vec):
        lanes = [x for b in snk.items[3 * v:3 * v + 3] for x in (int(d) for d in b.data)]
        assert lanes == list(vals[v]) + [0] * 4
        assert [int(b.last) for b in snk.items[3 * v:3 * v + 3]] == [0, 0, 1]
    if p == 1.0:  # one result per cycle, no bubble between beats
        assert accepted == list(range(accepted[0], accepted[0] + n_vec * n))


def test_result_packer_lanes_shifted_into_place():
    # 4 results per beat into 8-lane act beats (2 slots); 10 results per vector: beats of 4, 4, 2 (count 2,
    # lanes 2, 3 of that beat are garbage on the wire and must come out 0) -> act beats [r0..r7], [r8, r9, 0 x 6]
    rng = np.random.default_rng(7)
    res4 = result_layout(index_shape(P.max_cols), 4)
    vals = rng.integers(-128, 128, (2, 10))
    pack = ResultPacker(res4, ACT)
    src, snk = Source(pack.i, rng, 0.7), Sink(pack.o, rng, 0.7)
    for v in range(2):
        for b in range(3):
            lanes = [int(x) for x in vals[v, 4 * b:4 * b + 4]]
            lanes += [int(x) for x in rng.integers(-128, 128, 4 - len(lanes))]  # beyond count: not zero
            src.put({"column": 4 * b, "data": lanes, "count": min(4, 10 - 4 * b), "last": int(b == 2)})
    _run(pack, src, snk, 4)
    got = [[int(d) for d in b.data] for b in snk.items]
    assert got == [list(vals[0, :8]), list(vals[0, 8:]) + [0] * 6, list(vals[1, :8]), list(vals[1, 8:]) + [0] * 6]
    assert [int(b.last) for b in snk.items] == [0, 1, 0, 1]


@pytest.mark.parametrize("p", [1.0, 0.6])
def test_stream_slice(p):
    """StreamSlice (issue 19): the beats leave whole and in order under random valid/ready gaps; at full rate
    40 beats leave in 40 consecutive cycles, the first one cycle after it entered (LATENCY = 1); ``i.ready``
    is a register: with ``o.ready`` held low it is 1, 1, then 0 once both entries are full."""
    rng = np.random.default_rng(7)
    beats = _beats(rng, 40)
    dut = StreamSlice(ACT)
    src, snk = Source(dut.i, rng, p), Sink(dut.o, rng, p)
    for b in beats:
        src.put(b)
    _run(dut, src, snk, 40)
    assert [_bits(ACT, x) for x in snk.items] == [_bits(ACT, b) for b in beats]
    if p == 1.0:
        assert snk.cycles == list(range(StreamSlice.LATENCY, StreamSlice.LATENCY + 40))

    dut2 = StreamSlice(ACT)

    async def tb(ctx, rst):  # o.ready low, a beat offered every cycle: i.ready 1, 1 (tail free), then 0 (full)
        seen = []
        ctx.set(dut2.i.payload, ACT.const(beats[0]))
        ctx.set(dut2.i.valid, 1)
        ctx.set(dut2.o.ready, 0)
        for _ in range(3):
            _, _, rdy = await ctx.tick().sample(dut2.i.ready)
            seen.append(rdy)
        assert seen == [1, 1, 0]
    simulate(dut2, tb)


@pytest.mark.parametrize("p", [1.0, 0.5])
def test_stream_slice_ping_pong_same_cycles(p):
    """StreamSlice(ping_pong=True) (issue 19, the merge's queue heads): the same 40 beats, in order, in the same
    cycles as the default slice under the same seeded valid / ready gaps (an independent structure: two
    registers used in turn against a head and a tail register)."""
    got = []
    for pp in (False, True):
        rng = np.random.default_rng(21)
        beats = _beats(rng, 40)
        dut = StreamSlice(ACT, ping_pong=pp)
        src, snk = Source(dut.i, rng, p), Sink(dut.o, rng, p)
        for b in beats:
            src.put(b)
        _run(dut, src, snk, 40)
        assert [_bits(ACT, x) for x in snk.items] == [_bits(ACT, b) for b in beats]
        got.append(list(snk.cycles))
    assert len(got[0]) == 40 and got[1] == got[0]
    if p == 1.0:
        assert got[1] == list(range(StreamSlice.LATENCY, StreamSlice.LATENCY + 40))
