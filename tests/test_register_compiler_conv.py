"""Register compiler and map for conv layers (issue 18): patch-buffer registers, their writes, one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest

from archmodel.network.builder import NetworkBuilder
from archmodel.spec import load_spec
from rtl.patchbuf import PatchConfigError
from rtl.register_compiler import analog_layer, chained_layer, compile_layer, conv_layer
from rtl.regmap import REGMAP_VERSION, TILE_BASE, TILE_STRIDE, build_regmap

TINY = load_spec("tiny")


def _conv(c, h, w, cout, k, **kw):
    b = NetworkBuilder("t", (c, h, w))
    b.conv("c", b.input, cout, k, **kw)
    return b.build().layer("c")


def test_regmap_patch_registers():
    """Version 5; tile t's patch-buffer registers at t's base + 0xC0 .. 0xD8, nothing else before 0xE0."""
    rm = build_regmap(TINY)
    assert REGMAP_VERSION == 8 and rm.decode("chip.id", 0x0708A1C0)["version"] == 8
    for t in range(4):
        base = TILE_BASE + t * TILE_STRIDE
        lb = {r.name: r.address - base for r in rm.registers if r.name.startswith(f"tile{t}.lb.")}
        assert lb == {f"tile{t}.lb.{n}": 0xC0 + 4 * i
                      for i, n in enumerate(("en", "in", "out", "kernel", "tap", "beats", "ring"))}
        others = [r for r in rm.registers if base + 0xC0 <= r.address < base + 0xE0 and ".lb." not in r.name]
        assert others == []
    # tiny: 4 KiB / 8 lanes = 512 words -> 10-bit word counts; 10-bit map sides; 4-bit kernel fields
    assert rm.field("tile0.lb.ring", "row_words").width == 10 and rm.field("tile0.lb.in", "in_w").width == 10
    assert rm.field("tile0.lb.kernel", "pad_l").offset == 28 and rm.field("tile0.lb.kernel", "pad_l").width == 4
    # pool unit at +0xE0, residual join at +0xA0 (the network interface's window, after its destinations)
    assert [rm.address_of(f"tile2.pool.{n}") - TILE_BASE - 2 * TILE_STRIDE for n in ("en", "in", "kernel", "out",
                                                                                     "beats")] == [0xE0 + 4 * i for i in range(5)]
    assert [rm.address_of(f"tile2.add.{n}") - TILE_BASE - 2 * TILE_STRIDE for n in ("en", "q0", "q1", "shift")] == \
        [0xA0, 0xA4, 0xA8, 0xAC]
    assert rm.field("tile0.add.q0", "q0").signed and rm.field("tile0.add.shift", "shift").width == 5  # shift <= 23


def test_conv_chain_patch_writes():
    """conv 8 -> 10, 2 x 3, pad 1 on a 4 x 4 map, K = 48 on the chain 3 -> 1 (32 + 16 rows): tile 1's first beat is
    beat 4 = tap 4 = kernel (1, 1); the writes decode to those values and switch the buffer on."""
    conv = _conv(8, 4, 4, 10, (2, 3), padding=1)
    w = np.random.default_rng(0).standard_normal((48, 10))
    chain = chained_layer(TINY, w, tiles=[3, 1], rows=[32, 16], dest=(2, 0), in_scale=1 / 64, out_scale=0.1)
    up, home = conv_layer(TINY, conv, chain)
    assert (up.patch.i0, up.patch.j0, up.patch.n_beats) == (0, 0, 4)
    assert (home.patch.i0, home.patch.j0, home.patch.cb0, home.patch.n_beats) == (1, 1, 0, 2)
    assert (home.patch.out_h, home.patch.out_w, home.patch.ring_rows, home.patch.row_words) == (5, 4, 4, 4)
    rm = build_regmap(TINY)
    writes = {wr.name: rm.decode(wr.name, wr.data) for wr in compile_layer(TINY, home, regmap=rm)}
    assert writes["tile1.lb.tap"] == {"i0": 1, "j0": 1, "cb0": 0}
    assert writes["tile1.lb.kernel"] == {"kh": 2, "kw": 3, "sh": 1, "sw": 1, "dh": 1, "dw": 1, "pad_t": 1, "pad_l": 1}
    assert writes["tile1.lb.beats"] == {"c_beats": 1, "n_beats": 2} and writes["tile1.lb.en"] == {"en": 1}
    # a linear layer writes one patch-buffer register: lb.en = 0 (bypass; a reconfigured tile keeps no patch
    # buffer of an earlier conv layer), and switches off the pool, the join and its unused entry
    lin = analog_layer(TINY, w[:32], tile=0, dest=(2, 0), in_scale=1 / 64, out_scale=0.1)
    off = [(wr.name, wr.data) for wr in compile_layer(TINY, lin, regmap=rm)
           if wr.name.split(".")[1] in ("lb", "pool", "add") or wr.name.endswith("dest1")]
    assert off == [("tile0.ni.dest1", 0), ("tile0.lb.en", 0), ("tile0.pool.en", 0), ("tile0.add.en", 0)]


@pytest.mark.parametrize(("conv", "rows", "msg"), [
    (dict(c=4, h=5, w=5, cout=4, k=3), [32, 4], "4 input channels is not a multiple of rows_per_dac_beat = 8"),
    (dict(c=64, h=8, w=32, cout=4, k=(3, 1)), [32] * 6,
     "does not fit the patch buffer: 3 rows of 256 words needed, 512 words held (buffers.sram_kib_per_tile)"),
    (dict(c=8, h=8, w=8, cout=4, k=3), [32, 32], "its tiles hold 64 rows, the matrix has K = 72"),
])
def test_conv_refusals_one_line(conv, rows, msg):
    """What the RTL cannot do is refused in one line (C % L != 0; a ring that does not fit 4 KiB)."""
    layer = _conv(conv["c"], conv["h"], conv["w"], conv["cout"], conv["k"])
    k = sum(rows)
    w = np.random.default_rng(1).standard_normal((k, conv["cout"]))
    if len(rows) == 1:
        mapped = [analog_layer(TINY, w, tile=0, dest=(2, 0), in_scale=1 / 64, out_scale=0.1)]
    else:
        mapped = [analog_layer(TINY, w[:r], tile=0, dest=(2, 0), in_scale=1 / 64, out_scale=0.1) for r in rows]
    with pytest.raises(PatchConfigError) as exc:
        conv_layer(TINY, layer, mapped)
    assert msg in str(exc.value) and "\n" not in str(exc.value)


def test_pool_refusals_one_line():
    """The pool unit runs non-overlapping, unpadded windows on a home tile's results; anything else is one line."""
    from rtl.pool import PoolConfigError, pool_config
    from rtl.register_compiler import with_pool

    b = NetworkBuilder("p", (16, 8, 8))
    b.maxpool("over", b.input, 3, stride=2)
    b.avgpool("ok", b.input, 2)
    b.global_avgpool("gap", b.input)
    net = b.build()
    with pytest.raises(PoolConfigError, match="non-overlapping windows without padding") as exc:
        pool_config(net.layer("over"), 8)
    assert "\n" not in str(exc.value)
    ok = pool_config(net.layer("ok"), 8)
    assert (ok.avg, ok.kh, ok.out_h, ok.out_w, ok.count) == (1, 2, 4, 4, 4)
    cfg = pool_config(net.layer("gap"), 8)
    assert (cfg.avg, cfg.kh, cfg.kw, cfg.out_h, cfg.out_w, cfg.c_beats, cfg.count) == (1, 8, 8, 1, 1, 2, 64)
    w = np.random.default_rng(2).standard_normal((64, 16))
    up, _ = chained_layer(TINY, w, tiles=[0, 1], rows=[32, 32], dest=(2, 0), in_scale=1 / 64, out_scale=0.1)
    with pytest.raises(PoolConfigError, match="only a home tile's results can be pooled"):
        with_pool(TINY, net.layer("ok"), up)
