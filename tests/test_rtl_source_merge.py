"""rtl.axis.SourceMerge: per-source queues and the in-order merge at the digital node (issue 15).

Tiny shapes: 8 lanes per act beat, 3-bit source tags. Queue 0 takes tag 5 (the
host) for layer slot 0, 20 elements a vector (beats of 8, 8, 4 + 4 padding
lanes); queues 1 and 2 take tags 1 and 3 (two home tiles) for slot 1, 12
(8 + 4 + padding) and 8 elements; queue 3 is off. Per vector pair the packets
arrive interleaved and out of order -- tile 3's beat before tile 1's, tile 1's
second beat last -- with a packet of an unknown tag (6) among them. The merge
must give, per pair, the host's 20 elements (slot 0), then tile 1's 12 and
tile 3's 8 (slot 1), ``last`` only on the 20th element of each, drop the
padding lanes and the unknown packet (``err_src`` seen), with random stalls
on both sides.
"""

from __future__ import annotations

import numpy as np
import pytest

from archmodel.spec import load_spec
from rtl.axis import SourceMerge, tagged_layout
from rtl.digital import x_beat_layout
from rtl.params import TileParams
from rtl.tile_controller import act_beat_layout
from tests.rtl_stream_harness import Harness, Sink, Source, simulate

TAG = tagged_layout(act_beat_layout(TileParams.from_spec(load_spec("tiny"))), 3)


def _beats(vals, tag):
    out = []
    for b in range(0, len(vals), 8):
        lanes = [int(x) for x in vals[b:b + 8]]
        lanes += [77] * (8 - len(lanes))  # padding: must not come out
        out.append({"data": lanes, "last": int(b + 8 >= len(vals)), "src": tag})
    return out


@pytest.mark.parametrize("p", [1.0, 0.6])
def test_source_merge_in_order(p):
    rng = np.random.default_rng(7)
    n = 3
    host = rng.integers(-128, 128, (n, 20))
    t1 = rng.integers(-128, 128, (n, 12))
    t3 = rng.integers(-128, 128, (n, 8))
    dut = SourceMerge(TAG, x_beat_layout(), queues=4, depth=4, elem_bits=8)
    src, snk = Source(dut.i, rng, p), Sink(dut.o, rng, p)
    for v in range(n):
        h, a, b = _beats(host[v], 5), _beats(t1[v], 1), _beats(t3[v], 3)
        for beat in [h[0], b[0], h[1], a[0], {"data": [9] * 8, "last": 1, "src": 6}, h[2], a[1]]:
            src.put(beat)
    conf = [(5, 0, 20, 1), (1, 1, 12, 1), (3, 1, 8, 1), (0, 0, 0, 0)]  # src slot elems en
    seen_err = []

    async def tb(ctx, rst):
        for q, (tag, slot, elems, en) in enumerate(conf):
            ctx.set(dut.q_src[q], tag)
            ctx.set(dut.q_slot[q], slot)
            ctx.set(dut.q_elems[q], elems)
            ctx.set(dut.q_en[q], en)
        hns = Harness({"i": src}, {"o": snk}, rst)
        slot = 0
        while len(snk.items) < 2 * n * 20 and hns.cycle < 2000:
            ctx.set(dut.slot, slot)
            seen_err.append(ctx.get(dut.err_src))
            count = len(snk.items)
            await hns.step(ctx)
            if len(snk.items) > count and snk.items[-1].last:
                slot ^= 1  # the consumer alternates slot 0, slot 1 per vector (rtl.digital two_layers)
        for _ in range(20):
            await hns.step(ctx)
    simulate(dut, tb)
    want = []
    for v in range(n):
        want += [int(x) for x in host[v]] + [int(x) for x in t1[v]] + [int(x) for x in t3[v]]
    assert len(snk.items) == 2 * n * 20
    assert [int(e.data) for e in snk.items] == want
    assert [int(e.last) for e in snk.items] == ([0] * 19 + [1]) * (2 * n)
    assert any(seen_err)


def test_source_merge_latency():
    """Issue 19: a beat accepted at the input edge n offers its first element on ``o`` in cycle
    n + timing.SOURCE_MERGE_CYCLES (= 4: the input register slice, 1; the queue's FIFO, 2 cycles as on main before
    the slices; the register slice after it, 1), then one element per cycle (the 8 lanes of a beat in 8
    consecutive cycles)."""
    from archmodel import timing

    rng = np.random.default_rng(2)
    dut = SourceMerge(TAG, x_beat_layout(), queues=2, depth=4, elem_bits=8)
    src, snk = Source(dut.i, rng, 1.0), Sink(dut.o, rng, 1.0)
    vals = [int(x) for x in rng.integers(-128, 128, 8)]
    src.put(_beats(vals, 5)[0])
    taken = []

    async def tb(ctx, rst):
        ctx.set(dut.q_src[0], 5)
        ctx.set(dut.q_elems[0], 8)
        ctx.set(dut.q_en[0], 1)
        hns = Harness({"i": src}, {"o": snk}, rst)
        while len(snk.items) < 8 and hns.cycle < 40:
            await hns.step(ctx)
            if hns.fired["i"]:
                taken.append(hns.cycle - 1)
    simulate(dut, tb)
    assert [int(e.data) for e in snk.items] == vals
    assert snk.cycles == [taken[0] + timing.SOURCE_MERGE_CYCLES + k for k in range(8)] and timing.SOURCE_MERGE_CYCLES == 4


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_source_merge_random_configs(seed):
    """Issue 19 (the end-of-vector and last-lane flags are flip-flops set one element ahead): random queue
    configurations -- 1 to 24 elements per vector (1, 8 and 16 included: vectors that end on a beat's first or
    last lane), queues on or off, either slot -- and random valid / ready gaps on both sides (probabilities
    0.3 to 1). Per round the consumer reads slot 0's vector (the enabled slot-0 queues in index order) then
    slot 1's; the model is that concatenation, ``last`` on each vector's final element only."""
    rng = np.random.default_rng(seed)
    rounds = 6
    while True:
        en = rng.integers(0, 2, 4)
        slot = rng.integers(0, 2, 4)
        if any(en[q] and slot[q] == 0 for q in range(4)) and any(en[q] and slot[q] == 1 for q in range(4)):
            break
    elems = [int(rng.choice([1, 8, 16, int(rng.integers(1, 25))])) for _ in range(4)]
    tags = [int(t) for t in rng.permutation(8)[:4]]
    dut = SourceMerge(TAG, x_beat_layout(), queues=4, depth=4, elem_bits=8)
    src = Source(dut.i, rng, float(rng.uniform(0.3, 1.0)))
    snk = Sink(dut.o, rng, float(rng.uniform(0.3, 1.0)))
    want, want_last = [], []
    for _ in range(rounds):
        vals = {q: [int(x) for x in rng.integers(-128, 128, elems[q])] for q in range(4) if en[q]}
        for s in (0, 1):
            vec = [x for q in range(4) if en[q] and slot[q] == s for x in vals[q]]
            want += vec
            want_last += [0] * (len(vec) - 1) + [1]
        beats = [(q, b) for q in vals for b in _beats(vals[q], tags[q])]
        order = rng.permutation(len(beats))
        per_q = {q: [b for qq, b in beats if qq == q] for q in vals}  # keep each queue's beats in order
        for k in order:
            q = beats[k][0]
            src.put(per_q[q].pop(0))

    async def tb(ctx, rst):
        for q in range(4):
            ctx.set(dut.q_src[q], tags[q])
            ctx.set(dut.q_slot[q], int(slot[q]))
            ctx.set(dut.q_elems[q], elems[q])
            ctx.set(dut.q_en[q], int(en[q]))
        hns = Harness({"i": src}, {"o": snk}, rst)
        cur = 0
        while len(snk.items) < len(want) and hns.cycle < 20 * len(want) + 200:
            ctx.set(dut.slot, cur)
            count = len(snk.items)
            await hns.step(ctx)
            if len(snk.items) > count and snk.items[-1].last:
                cur ^= 1
    simulate(dut, tb)
    assert len(want) > 0 and len(snk.items) == len(want), (seed, elems, en, slot)
    assert [int(e.data) for e in snk.items] == want
    assert [int(e.last) for e in snk.items] == want_last
