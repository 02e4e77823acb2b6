"""rtl.pool.InputJoin: the digital node's source-filtered residual join + global average pool (issue 18).

Independent golden: ``archmodel.accuracy.requantize_sum`` of the two tagged streams, then the global average
pool written out here in numpy, ``(2·sum + hw) // (2·hw)``; the host's (bypassed) beats must come out
untouched and in order. Random valid/ready stalls; one test with a consumer that refuses the join's vector
until it has the host's (the digital datapath's slot order), which a fixed-priority arbiter would deadlock.
"""

from __future__ import annotations

import numpy as np
import pytest

from archmodel.accuracy import requantize_sum
from archmodel.golden.coefficients import quantize_affine
from rtl.pool import InputJoin
from tests.rtl_stream_harness import Harness, Sink, Source, simulate

L, C, H, W, B = 8, 32, 4, 4, 2
SCALE_BITS, MAX_SHIFT = 16, 8 + 16 - 1   # proto's affine_scale_bits; rtl.pool.JOIN_MAX_SHIFT
TAG_A, TAG_B, TAG_HOST = 23, 24, 25


class GatedSink(Sink):
    """Ready at random, and never for a beat tagged ``TAG_A`` (the join's output) before ``per`` host beats
    have been taken for each join vector, ``total`` at most (the consumer reads the host's vector first; with
    ``per`` above the host beats of one image, the join's first vector waits for a host beat that arrives
    behind it)."""

    def __init__(self, stream, rng, p_ready, per, total):
        super().__init__(stream, rng, p_ready)
        self.per, self.total, self.host, self.join = per, total, 0, 0

    def drive(self, ctx) -> None:
        ok = self.rng.random() < self.p_ready
        if ctx.get(self.stream.valid) and ctx.get(self.stream.payload.src) == TAG_A:
            ok = ok and self.host >= min(self.total, self.per * (self.join // (C // L) + 1))
        self.ready = ok
        ctx.set(self.stream.ready, ok)

    def update(self, valid, payload, cycle) -> bool:
        took = super().update(valid, payload, cycle)
        if took:
            if int(payload.src) == TAG_A:
                self.join += 1
            else:
                self.host += 1
        return took


def _run(gated: bool, seed: int):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, (B, C, H, W))
    b = rng.integers(-128, 128, (B, C, H, W))
    a[0, :L] = 127  # saturating sums
    b[0, :L] = 127
    host = rng.integers(-128, 128, (B * 6, L))
    sa, sb, so = 0.04, 0.03, 0.05
    coef = quantize_affine(np.array([sa, sb]) / so, 0.0, scale_bits=SCALE_BITS, max_shift=MAX_SHIFT)
    s = requantize_sum([a, b], [sa, sb], so, relu=True, scale_bits=SCALE_BITS, max_shift=MAX_SHIFT).astype(np.int64)
    want = (2 * s.sum(axis=(2, 3)) + H * W) // (2 * H * W)  # global average pool, (B, C)
    dut = InputJoin(L, SCALE_BITS, MAX_SHIFT, src_bits=5, depth=8)
    src = Source(dut.i, rng, 0.8)
    hk = 0
    held = []  # gated: the input after image 1's first pixel waits until the join offers its first vector
    for i in range(B):
        for y in range(H):
            for x in range(W):
                for cb in range(C // L):
                    for t, m in ((TAG_A, a), (TAG_B, b)):
                        put = held.append if gated and (i, y, x) > (1, 0, 0) else src.put
                        put({"data": [int(v) for v in m[i, cb * L:(cb + 1) * L, y, x]],
                             "last": int(cb == C // L - 1), "src": t})
                if (y * W + x) % 3 == 0 and hk < len(host):  # host beats interleaved on the same link
                    put = held.append if gated and (i, y, x) >= (1, 0, 0) else src.put
                    put({"data": [int(v) for v in host[hk]], "last": int(hk % 2), "src": TAG_HOST})
                    hk += 1
    n_out = B * (C // L) + hk
    snk = GatedSink(dut.o, rng, 0.7, per=7, total=hk) if gated else Sink(dut.o, rng, 0.7)
    cfg = dict(en=1, pool_en=1, src_a=TAG_A, src_b=TAG_B, out_src=TAG_A, q0=int(coef.scale[0]),
               q1=int(coef.scale[1]), shift=int(coef.shift), relu=1, avg=1, in_h=H, in_w=W, kh=H, kw=W, out_h=1,
               out_w=1, c_beats=C // L, count=H * W)

    async def tb(ctx, rst):
        for k, v in cfg.items():
            ctx.set(getattr(dut, k), v)
        hs = Harness({"i": src}, {"o": snk}, rst)
        while len(snk.items) < n_out and hs.cycle < 20000:
            if held and ctx.get(dut.o.valid) and ctx.get(dut.o.payload.src) == TAG_A:
                for bt in held:  # the host's 7th beat now arrives behind the join's offered vector
                    src.put(bt)
                held.clear()
            await hs.step(ctx)
        for _ in range(60):
            await hs.step(ctx)

    simulate(dut, tb)
    items = [(int(it.src), [int(v) for v in it.data], int(it.last)) for it in snk.items]
    assert len(items) == n_out, (len(items), n_out, [t for t, _, _ in items])
    got_host = [(d, la) for t, d, la in items if t == TAG_HOST]
    assert got_host == [([int(v) for v in host[k]], k % 2) for k in range(hk)]  # untouched, in order
    pooled = [(d, la) for t, d, la in items if t == TAG_A]
    assert len(pooled) == B * (C // L) and all(t in (TAG_A, TAG_HOST) for t, _, _ in items)
    got = np.array([d for d, _ in pooled]).reshape(B, C)
    np.testing.assert_array_equal(got, want)
    assert [la for _, la in pooled] == [int(k % (C // L) == C // L - 1) for k in range(len(pooled))]
    return want


@pytest.mark.parametrize("gated", [False, True])
def test_input_join_pool_vs_numpy(gated):
    """b2_add-like join (ReLU, saturating) + 4 x 4 global average pool of 2 images of 32 channels = numpy; host
    beats interleaved on the same link pass untouched and in order. Gated: the consumer refuses the join's
    first vector until it has the host's 7th beat, which is sent only once that vector is offered -- a
    fixed-priority arbiter deadlocks here (checked by hand: 6 of 20 beats out), the alternating one passes."""
    want = _run(gated, seed=3 + gated)
    assert (want == 127).any() or want.max() > 0  # the saturating pixel row is in the average


def test_input_join_off_is_a_wire():
    """``en`` = 0: every beat (any tag) passes untouched, in order, nothing is joined."""
    rng = np.random.default_rng(1)
    dut = InputJoin(L, SCALE_BITS, MAX_SHIFT, src_bits=5, depth=8)
    src, snk = Source(dut.i, rng, 0.8), Sink(dut.o, rng, 0.7)
    beats = [{"data": [int(v) for v in rng.integers(-128, 128, L)], "last": k % 2, "src": int(t)}
             for k, t in enumerate(rng.choice([TAG_A, TAG_B, TAG_HOST], 30))]
    for bt in beats:
        src.put(bt)

    async def tb(ctx, rst):
        ctx.set(dut.src_a, TAG_A)
        ctx.set(dut.src_b, TAG_B)
        hs = Harness({"i": src}, {"o": snk}, rst)
        while len(snk.items) < len(beats) and hs.cycle < 2000:
            await hs.step(ctx)

    simulate(dut, tb)
    assert [{"data": [int(v) for v in it.data], "last": int(it.last), "src": int(it.src)} for it in snk.items] == beats
