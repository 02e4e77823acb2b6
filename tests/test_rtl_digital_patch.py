"""The digital node's patch buffer (``digital.lb``): digits-cnn's conv1 patches built on chip from raw pixels.

:class:`rtl.patchbuf.PatchBuffer` with one int8 lane per word (:func:`rtl.patchbuf.digital_patch_params`), fed one
pixel (C = 1) per beat, must give the digital datapath exactly the tap-major im2col rows the host used to send:
``archmodel.accuracy.mvm_rows(conv1, x, tap_major=True)`` (an independent implementation: numpy windows over a
zero-padded map), one element per beat, ``last`` on each patch's 9th element. Random valid / ready stalls.
"""

from __future__ import annotations

import numpy as np
import pytest

from archmodel.accuracy import mvm_rows
from archmodel.network.builder import NetworkBuilder
from archmodel.spec import load_spec
from rtl.patchbuf import PatchBuffer, digital_patch_params, patch_config
from tests.rtl_stream_harness import Harness, Sink, Source, simulate


def _conv1(c=1, h=8, w=8, k=3, padding=1, stride=1):
    b = NetworkBuilder("t", (c, h, w))
    b.conv("c", b.input, 16, k, stride=stride, padding=padding)
    return b.build().layer("c")


@pytest.mark.parametrize("c, stride, p", [(1, 1, 0.6), (1, 1, 1.0), (3, 2, 0.6)])
def test_digital_patch_buffer_builds_conv1_patches(c, stride, p):
    """2 images of 8 x 8 x C, 3 x 3 pad 1 (digits-cnn's conv1: C = 1, stride 1; and C = 3, stride 2, which a tile's
    8-lane patch buffer refuses): every element of every patch compared with mvm_rows' tap-major rows, in order,
    ``last`` exactly on each patch's final element; the ring (proto: 1,024 one-byte words) holds the whole map. At
    full rate (p = 1) the 2 x 64 x 9 = 1,152 elements leave in at most 1,152 + 2 x 64 + 20 cycles (one element per
    cycle once the window's pixels are in)."""
    spec = load_spec("proto")
    pp = digital_patch_params(spec)
    assert (pp.lanes, pp.words) == (1, 1024)
    layer = _conv1(c=c, stride=stride)
    k = 9 * c
    cfg = patch_config(layer, 0, k, pp)
    assert (cfg.c_beats, cfg.n_beats, cfg.ring_rows) == (c, k, 8)
    rng = np.random.default_rng(5 + c)
    x = rng.integers(-128, 128, (2, c, 8, 8))
    rows, _ = mvm_rows(layer, x, tap_major=True)
    want = [(int(v), int(j == k - 1)) for row in rows for j, v in enumerate(row)]
    dut = PatchBuffer(pp)
    src, snk = Source(dut.i, rng, p), Sink(dut.o, rng, p)
    for img in x:
        for pix in img.transpose(1, 2, 0).reshape(-1):
            src.put({"data": [int(pix)], "last": 1})
    stats = {}

    async def tb(ctx, rst):
        for name, v in cfg.fields().items():
            ctx.set(getattr(dut, name), v)
        h = Harness({"i": src}, {"o": snk}, rst)
        while len(snk.items) < len(want) and h.cycle < 20 * len(want):
            await h.step(ctx)
        stats["cycles"] = h.cycle
        for _ in range(10):
            await h.step(ctx)

    simulate(dut, tb)
    got = [(int(it.data[0]), int(it.last)) for it in snk.items]
    assert len(got) == len(want) == rows.shape[0] * k == 2 * (64 if stride == 1 else 16) * k
    assert sum(g != w for g, w in zip(got, want, strict=True)) == 0
    if p == 1.0:
        assert stats["cycles"] <= len(want) + 2 * 64 + 20, stats
