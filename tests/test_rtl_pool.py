"""rtl.pool: max / average / global average pooling and the residual add, bit-exact vs archmodel's integer forward.

Golden: ``archmodel.accuracy._pool_int`` (max, and average with round half up of the mean) on a maxpool /
avgpool layer, the global average pool's ``(2·sum + hw) // (2·hw)`` (``archmodel.accuracy``'s forward), and
``archmodel.accuracy.requantize_sum`` for the residual add; random valid/ready stalls on every stream.
"""

from __future__ import annotations

import numpy as np
import pytest

from archmodel.accuracy import _pool_int, requantize_sum
from archmodel.golden.coefficients import quantize_affine
from archmodel.network.builder import NetworkBuilder
from rtl.pool import Pool, ResidualAdd, ResidualJoin
from tests.rtl_stream_harness import Harness, Sink, Source, simulate

L = 8


def _pixels(x):
    """(N, C, H, W) -> pixel beats in raster order (contract section 2)."""
    n, c, h, w = x.shape
    return [{"data": [int(t) for t in x[i, cb * L:(cb + 1) * L, yy, xx]], "last": int(cb == c // L - 1)}
            for i in range(n) for yy in range(h) for xx in range(w) for cb in range(c // L)]


def _run_pool(x, kh, kw, avg, *, p=0.7, seed=0):
    n, c, h, w = x.shape
    oh, ow = h // kh, w // kw
    dut = Pool(L, 16)
    rng = np.random.default_rng(seed)
    src, snk = Source(dut.i, rng, p), Sink(dut.o, rng, p)
    for b in _pixels(x):
        src.put(b)
    n_out = n * oh * ow * (c // L)
    cfg = dict(avg=int(avg), in_h=h, in_w=w, kh=kh, kw=kw, out_h=oh, out_w=ow, c_beats=c // L, count=kh * kw)

    async def tb(ctx, rst):
        for k, v in cfg.items():
            ctx.set(getattr(dut, k), v)
        hs = Harness({"i": src}, {"o": snk}, rst)
        while len(snk.items) < n_out and hs.cycle < 200 * n_out + 500:
            await hs.step(ctx)
        for _ in range(40):
            await hs.step(ctx)

    simulate(dut, tb)
    got = np.array([[int(v) for v in it.data] for it in snk.items])
    assert len(got) == n_out, (len(got), n_out)
    assert [int(it.last) for it in snk.items] == [int(k % (c // L) == c // L - 1) for k in range(n_out)]
    return got.reshape(n, oh, ow, c).transpose(0, 3, 1, 2)


def _pool_layer(kind, c, h, w, k):
    b = NetworkBuilder("p", (c, h, w))
    getattr(b, kind)("p", b.input, k)
    return b.build().layer("p")


@pytest.mark.parametrize(("kind", "c", "h", "w", "k"), [("maxpool", 16, 4, 6, 2), ("avgpool", 8, 5, 4, 2),
                                                         ("avgpool", 8, 6, 6, 3)])
def test_pool_vs_pool_int(kind, c, h, w, k):
    """Max 2 x 2 (two channel beats), average 2 x 2 on an odd-height map (its last row dropped, floor mode)
    and average 3 x 3 (a divisor that is not a power of two); values include the int8 extremes."""
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (2, c, h, w)).astype(np.int8)
    x[0, 0, :2, :2] = -128
    x[1, 0, :2, :2] = 127
    got = _run_pool(x, k, k, kind == "avgpool")
    want = _pool_int(x, _pool_layer(kind, c, h, w, k), kind)
    np.testing.assert_array_equal(got, want)


def test_global_average_pool():
    """Global average pool = one window over the whole 4 x 4 map: (2·sum + 16) // 32 (archmodel's forward)."""
    rng = np.random.default_rng(6)
    x = rng.integers(-128, 128, (3, 8, 4, 4)).astype(np.int8)
    x[2] = -128  # the extreme: -128 exactly
    got = _run_pool(x, 4, 4, True)[:, :, 0, 0]
    want = (2 * x.astype(np.int64).sum(axis=(2, 3)) + 16) // 32
    np.testing.assert_array_equal(got, want)
    assert got[2].tolist() == [-128] * 8


@pytest.mark.parametrize("relu", [False, True])
def test_residual_add_vs_requantize_sum(relu):
    """Residual add of two int8 streams with scales 0.05 and 0.02 into 0.04 (archmodel.accuracy.requantize_sum)."""
    rng = np.random.default_rng(7)
    n = 40
    a = rng.integers(-128, 128, (n, L))
    b = rng.integers(-128, 128, (n, L))
    a[0], b[0] = 127, 127  # saturates
    scale_bits, max_shift = 16, 31
    coef = quantize_affine(np.array([0.05, 0.02]) / 0.04, 0.0, scale_bits=scale_bits, max_shift=max_shift)
    want = requantize_sum([a, b], [0.05, 0.02], 0.04, relu=relu, scale_bits=scale_bits, max_shift=max_shift)
    dut = ResidualAdd(L, scale_bits, max_shift)
    sa, sb = Source(dut.a, rng, 0.7), Source(dut.b, rng, 0.6)
    snk = Sink(dut.o, rng, 0.7)
    for k in range(n):
        sa.put({"data": [int(v) for v in a[k]], "last": int(k % 2)})
        sb.put({"data": [int(v) for v in b[k]], "last": 0})

    async def tb(ctx, rst):
        ctx.set(dut.q0, int(coef.scale[0]))
        ctx.set(dut.q1, int(coef.scale[1]))
        ctx.set(dut.shift, int(coef.shift))
        ctx.set(dut.relu, int(relu))
        hs = Harness({"a": sa, "b": sb}, {"o": snk}, rst)
        while len(snk.items) < n and hs.cycle < 2000:
            await hs.step(ctx)

    simulate(dut, tb)
    got = np.array([[int(v) for v in it.data] for it in snk.items])
    assert got.shape == (n, L)
    np.testing.assert_array_equal(got, want)
    assert [int(it.last) for it in snk.items] == [k % 2 for k in range(n)]
    assert got[0].tolist() == [127] * L  # 0.05/0.04·127 + 0.02/0.04·127 = 222 saturates


def test_residual_join_interleaved_sources():
    """Two producers' beats (tags 5 and 2) interleaved at random on one link, a third tag dropped and flagged;
    the sum of each pair equals requantize_sum (scales 0.03 and 0.05 into 0.06, ReLU), in order."""
    rng = np.random.default_rng(8)
    n, scale_bits, max_shift = 24, 16, 31
    a = rng.integers(-128, 128, (n, L))
    b = rng.integers(-128, 128, (n, L))
    coef = quantize_affine(np.array([0.03, 0.05]) / 0.06, 0.0, scale_bits=scale_bits, max_shift=max_shift)
    want = requantize_sum([a, b], [0.03, 0.05], 0.06, relu=True, scale_bits=scale_bits, max_shift=max_shift)
    order = rng.permutation(np.r_[np.zeros(n, int), np.ones(n, int)])  # 0: next a beat, 1: next b beat
    dut = ResidualJoin(L, scale_bits, max_shift, src_bits=4, depth=8)
    src = Source(dut.i, rng, 0.8)
    snk = Sink(dut.o, rng, 0.7)
    ia = ib = 0
    for k, which in enumerate(order):
        if k == n:
            src.put({"data": [1] * L, "last": 0, "src": 9})  # no queue takes tag 9
        if which == 0:
            src.put({"data": [int(v) for v in a[ia]], "last": int(ia % 3 == 2), "src": 5})
            ia += 1
        else:
            src.put({"data": [int(v) for v in b[ib]], "last": 0, "src": 2})
            ib += 1
    flags = {}

    async def tb(ctx, rst):
        for k, v in dict(src_a=5, src_b=2, q0=int(coef.scale[0]), q1=int(coef.scale[1]), shift=int(coef.shift),
                         relu=1).items():
            ctx.set(getattr(dut, k), v)
        hs = Harness({"i": src}, {"o": snk}, rst)
        while len(snk.items) < n and hs.cycle < 3000:
            await hs.step(ctx)
        flags["err"] = ctx.get(dut.err_src)

    simulate(dut, tb)
    got = np.array([[int(v) for v in it.data] for it in snk.items])
    assert got.shape == (n, L)
    np.testing.assert_array_equal(got, want)
    assert [int(it.last) for it in snk.items] == [int(k % 3 == 2) for k in range(n)]
    assert flags["err"] == 1
