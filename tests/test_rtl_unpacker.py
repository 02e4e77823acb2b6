"""rtl.axis.BeatUnpacker: act beats -> one int8 element per beat, vectors cut by the K count (issue 15).

Tiny shapes: 8 lanes per act beat. K = 20 gives beats of 8, 8, 4 (+ 4 padding
lanes, here non-zero so a leak shows): 20 elements per vector, ``last`` on
element 19 only, at one element per cycle when nothing stalls; with K = 8 (a
vector is exactly one beat) and K = 3 (5 padding lanes) likewise.
"""

from __future__ import annotations

import numpy as np
import pytest

from archmodel.spec import load_spec
from rtl.axis import BeatUnpacker
from rtl.digital import x_beat_layout
from rtl.params import TileParams
from rtl.tile_controller import act_beat_layout
from tests.rtl_stream_harness import Harness, Sink, Source, simulate

ACT = act_beat_layout(TileParams.from_spec(load_spec("tiny")))


@pytest.mark.parametrize(("k", "p"), [(20, 1.0), (20, 0.5), (8, 0.6), (3, 0.7)])
def test_beat_unpacker(k, p):
    rng = np.random.default_rng(k)
    n_vec = 3
    vals = rng.integers(-128, 128, (n_vec, k))
    nb = -(-k // 8)
    dut = BeatUnpacker(ACT, x_beat_layout(), 8)
    src, snk = Source(dut.i, rng, p), Sink(dut.o, rng, p)
    for v in range(n_vec):
        for b in range(nb):
            lanes = [int(x) for x in vals[v, 8 * b:8 * b + 8]]
            lanes += [77] * (8 - len(lanes))  # padding: must not come out
            src.put({"data": lanes, "last": int(b == nb - 1)})

    async def tb(ctx, rst):
        ctx.set(dut.k_terms, k)
        h = Harness({"i": src}, {"o": snk}, rst)
        while len(snk.items) < n_vec * k and h.cycle < 600:
            await h.step(ctx)
        for _ in range(20):  # nothing more comes out
            await h.step(ctx)
    simulate(dut, tb)
    assert len(snk.items) == n_vec * k
    assert [int(e.data) for e in snk.items] == [int(x) for x in vals.ravel()]
    assert [int(e.last) for e in snk.items] == ([0] * (k - 1) + [1]) * n_vec
    if p == 1.0:
        assert snk.cycles == list(range(snk.cycles[0], snk.cycles[0] + n_vec * k))


@pytest.mark.parametrize("p", [1.0, 0.6])
def test_dest_fanout_split_and_multicast(p):
    """Vectors of 7 beats; entry 0 beats 0..3 to (0, 0), entry 1 beats 4.. to (1, 0), entry 2 beats 2..4 to (1, 1)
    (chan 1), entry 3 disabled: per vector 4 + 3 + 3 = 10 beats, in beat order with entries in order per beat,
    ``last`` on beat 3 (entry 0), beat 6 (entry 1, the input's last) and beat 4 (entry 2)."""
    from rtl.axis import DestFanout

    rng = np.random.default_rng(5)
    dut = DestFanout(ACT, 2, 1, 4)
    src, snk = Source(dut.i, rng, p), Sink(dut.o, rng, p)
    n_vec = 3
    for v in range(n_vec):
        for b in range(7):
            src.put({"data": [v * 16 + b] + [0] * 7, "last": int(b == 6)})
    conf = [(0, 0, 0, 0, 4, 1), (1, 0, 0, 4, 0, 1), (1, 1, 1, 2, 5, 1), (0, 0, 0, 0, 0, 0)]  # x y chan lo hi en
    dests: list[tuple[int, int, int]] = []

    async def tb(ctx, rst):
        for e, (x, y, chan, lo, hi, en) in enumerate(conf):
            for name, val in (("x", x), ("y", y), ("chan", chan), ("lo", lo), ("hi", hi), ("en", en)):
                ctx.set(getattr(dut, name)[e], val)
        await ctx.tick()  # the entries' range flags are flip-flops: configuration one cycle before the first beat
        h = Harness({"i": src}, {"o": snk}, rst)
        while len(snk.items) < 10 * n_vec and h.cycle < 600:
            d = (ctx.get(dut.dest_x), ctx.get(dut.dest_y), ctx.get(dut.dest_chan))
            n = len(snk.items)
            await h.step(ctx)
            if len(snk.items) > n:
                dests.append(d)
    simulate(dut, tb)
    want = []
    for v in range(n_vec):
        for b in range(7):
            if b < 4:
                want.append((v * 16 + b, int(b == 3), (0, 0, 0)))
            if b >= 4:
                want.append((v * 16 + b, int(b == 6), (1, 0, 0)))
            if 2 <= b < 5:
                want.append((v * 16 + b, int(b == 4), (1, 1, 1)))
    got = [(int(it.data[0]), int(it.last), d) for it, d in zip(snk.items, dests, strict=True)]
    assert got == want
