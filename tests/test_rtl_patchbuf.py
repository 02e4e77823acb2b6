"""rtl.patchbuf: a feature map's pixel beats in, one tile's patch beats out, bit-exact vs archmodel's tap-major rows.

Golden (contract of issue 18, section 3): the beats a tile holding rows ``[r0, r1)`` receives are
``archmodel.accuracy.mvm_rows(layer, x, tap_major=True)[:, r0:r1]`` packed with
``archmodel.golden.tile_controller.dac_beats`` (an independent implementation: numpy windows over a padded map),
``last`` on each output pixel's final beat. Random valid/ready stalls on both sides; at full rate the buffer
moves one beat per cycle on each side.
"""

from __future__ import annotations

import numpy as np
import pytest

from archmodel.accuracy import mvm_rows
from archmodel.golden.tile_controller import dac_beats
from archmodel.network.builder import NetworkBuilder
from rtl.params import PatchParams
from rtl.patchbuf import PatchBuffer, PatchConfigError, patch_config
from tests.rtl_stream_harness import Harness, Sink, Source, simulate

L = 8


def _conv(c, h, w, cout, k, *, stride=1, padding=0, dilation=1):
    b = NetworkBuilder("t", (c, h, w))
    b.conv("c", b.input, cout, k, stride=stride, padding=padding, dilation=dilation)
    return b.build().layer("c")


def _pixel_beats(x):
    """(N, C, H, W) int8 -> pixel beats, raster order, C/L beats per pixel (contract section 2)."""
    n, c, h, w = x.shape
    out = []
    for img in range(n):
        for y in range(h):
            for xx in range(w):
                v = x[img, :, y, xx]
                for cb in range(c // L):
                    out.append({"data": [int(t) for t in v[cb * L:(cb + 1) * L]], "last": int(cb == c // L - 1)})
    return out


def _golden(layer, x, r0, r1):
    rows, _ = mvm_rows(layer, x, tap_major=True)
    out = []
    for row in rows[:, r0:-(-r1 // L) * L]:  # whole beats: the tile controller zeroes the lanes beyond its K
        beats = dac_beats(row, L)
        for bi, b in enumerate(beats):
            out.append(([int(t) for t in b], int(bi == len(beats) - 1)))
    return out


def _run(layer, x, r0, r1, *, words=512, p_valid=1.0, p_ready=1.0, seed=0):
    params = PatchParams(lanes=L, words=words)
    cfg = patch_config(layer, r0, r1, params)
    dut = PatchBuffer(params)
    rng = np.random.default_rng(seed)
    src, snk = Source(dut.i, rng, p_valid), Sink(dut.o, rng, p_ready)
    for b in _pixel_beats(x):
        src.put(b)
    want = _golden(layer, x, r0, r1)
    stats = {}

    async def tb(ctx, rst):
        for name, v in cfg.fields().items():
            ctx.set(getattr(dut, name), v)
        h = Harness({"i": src}, {"o": snk}, rst)
        limit = 20 * (len(want) + len(src.queue)) + 200
        while len(snk.items) < len(want) and h.cycle < limit:
            await h.step(ctx)
        stats["cycles"] = h.cycle
        for _ in range(10):  # nothing more comes out
            await h.step(ctx)

    simulate(dut, tb)
    got = [([int(v) for v in it.data], int(it.last)) for it in snk.items]
    assert len(got) == len(want), (len(got), len(want))
    for n, (g, w) in enumerate(zip(got, want, strict=True)):
        assert g == w, (n, g, w)
    return cfg, stats["cycles"], len(want), src.sent


GEOMS = [
    # (C, H, W, Cout, k, stride, pad, dilation, r0, r1)
    (8, 5, 6, 4, 3, 1, 1, 1, 0, 72),          # 3x3 pad 1, whole patch
    (16, 6, 7, 4, 3, 2, 1, 1, 0, 144),        # stride 2, pad 1, two channel beats per pixel
    (16, 6, 7, 4, 3, 2, 1, 1, 40, 104),       # a row block starting mid-patch (tap 1, channel beat 1)
    (8, 5, 5, 4, 1, 2, 0, 1, 0, 8),           # 1x1 kernel stride 2 (rows 1 and 3 never read)
    (8, 7, 7, 4, 3, 1, 2, 2, 16, 60),         # dilation 2, pad 2, partial last beat
    (8, 4, 4, 4, (2, 3), (1, 2), (0, 1), 1, 0, 48),  # rectangular kernel, stride and padding
]


@pytest.mark.parametrize("geom", GEOMS)
def test_patch_stream_stalls(geom):
    c, h, w, cout, k, s, pad, d, r0, r1 = geom
    layer = _conv(c, h, w, cout, k, stride=s, padding=pad, dilation=d)
    x = np.random.default_rng(1).integers(-128, 128, (2, c, h, w)).astype(np.int8)
    _run(layer, x, r0, r1, p_valid=0.7, p_ready=0.7, seed=sum(map(hash, map(str, geom))) % 1000)


def test_patch_full_rate_and_small_ring():
    """With no stall the output moves one beat per cycle once the first window is in; a 3-row ring (the
    smallest a 3x3 kernel allows) still gives every beat."""
    layer = _conv(8, 6, 6, 4, 3, padding=1)
    x = np.random.default_rng(2).integers(-128, 128, (2, 8, 6, 6)).astype(np.int8)
    cfg, cycles, n_out, n_in = _run(layer, x, 0, 72)
    assert cfg.ring_rows == 6 and n_out == 2 * 36 * 9
    # 648 beats out; the first needs input rows 0 and 1 (12 pixels) first, and the ring lets the writer run
    # ahead, so the run ends a few cycles after the last output beat could at best: <= out + first window + 4
    assert cycles <= n_out + 12 + 4, cycles
    cfg, cycles_small, _, _ = _run(layer, x, 0, 72, words=3 * 6)
    assert cfg.ring_rows == 3
    assert cycles_small >= cycles


def test_patch_config_refusals():
    p = PatchParams(lanes=L, words=512)
    with pytest.raises(PatchConfigError, match="not a multiple of rows_per_dac_beat"):
        patch_config(_conv(4, 5, 5, 4, 3), 0, 36, p)
    with pytest.raises(PatchConfigError, match="does not fit the patch buffer: 3 rows of 64 words needed, "
                                                "128 words held"):
        patch_config(_conv(64, 8, 8, 4, 3), 0, 32, PatchParams(lanes=L, words=128))
    with pytest.raises(PatchConfigError, match="must start on a beat"):
        patch_config(_conv(8, 5, 5, 4, 3), 4, 36, p)
    # a 3-row window on a 2-row map (padding 1): the map, not the SRAM, is the limit (stop 13 review)
    with pytest.raises(PatchConfigError, match="its window spans 3 rows \\(kernel 3, dilation 1\\) but its input "
                                                "map has 2; the patch buffer holds at most the map's rows"):
        patch_config(_conv(8, 2, 2, 4, 3, padding=1), 0, 72, p)
    cfg = patch_config(_conv(16, 6, 7, 4, 3, stride=2, padding=1), 40, 104, p)
    # beat 5 = tap 2 (i 0, j 2), channel beat 1; beats 5..12
    assert (cfg.i0, cfg.j0, cfg.cb0, cfg.n_beats, cfg.ring_rows, cfg.row_words) == (0, 2, 1, 8, 6, 14)
