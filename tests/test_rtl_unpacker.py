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
