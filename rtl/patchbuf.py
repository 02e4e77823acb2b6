"""Patch buffer (line buffer): a feature map's pixel vectors in, one tile's beats of every output pixel's patch out.

The contract (docs/design.md section 11.2, issue 18): a conv layer's input map arrives as one vector per pixel,
pixels in raster order (y then x), images back to back; a pixel's ``C`` channels are ``c_beats = C / L`` ``act``
beats of ``L`` = ``rows_per_dac_beat`` int8 lanes (channel ``c`` in beat ``c // L``, lane ``c % L``). The layer's
matrix rows are in tap-major order, row ``(i·kw + j)·C + c`` = kernel row ``i``, kernel column ``j``, channel
``c`` (:func:`archmodel.accuracy.mvm_rows` with ``tap_major=True``), so beat ``b`` of an output pixel's patch
vector is channel beat ``b % c_beats`` of tap ``t = b // c_beats`` (``i, j = divmod(t, kw)``): one stored word.
A tile holding rows ``[r0, r1)`` receives, for every output pixel in raster order, beats
``[r0 / L, ceil(r1 / L))`` of that vector (zero words where the tap falls in the padding), ``last`` on the final
one: exactly the ``act`` vectors its tile controller expects.

Micro-architecture
------------------
A ring of ``ring_rows`` input rows (``ring_rows · in_w · c_beats`` words of one :class:`amaranth.lib.memory.Memory`
of :attr:`rtl.params.PatchParams.words` words; the register compiler chooses ``ring_rows``).

- **Writer**: stores each input beat at the next address of the ring (sequential, wrapping), one per cycle.
  Input row ``y`` of an image may be written only when it overwrites a row no longer needed: ``y < low_y +
  ring_rows`` with ``low_y`` the first input row of the reader's current output row (``max(0, oy·sh − pad_t)``;
  ``in_h`` once the reader has finished the image). ``ahead`` = 1 when the writer is already in the next image
  (then the test is ``in_h + y < low_y + ring_rows``); the writer never finishes a second image ahead.
- **Reader**: walks output pixels (raster order) and, per pixel, the taps of its beat range; it issues a beat
  only when the writer has completed the pixel that ends the window (``(min(oy·sh − pad_t + (kh−1)·dh,
  in_h − 1), min(ox·sw − pad_l + (kw−1)·dw, in_w − 1))`` in raster order) or is in the next image. The tap's
  ring slot is ``low_slot + (y − low_y)`` (mod ``ring_rows``), its address ``slot · in_w · c_beats + x ·
  c_beats + cb``; a padding tap reads nothing useful and is emitted as zeros. One registered output stage
  (the memory's synchronous read port, enabled only when the stage advances, so back-pressure holds it).

Why no deadlock: the window of the reader's pixel spans ``(kh−1)·dh + 1 <= ring_rows`` rows starting at ``low_y``,
so the pixel it waits for always satisfies the writer's test; and a finished reader (``low_y = in_h``) lets the
writer complete the image.

Throughput: one beat per cycle on each side while data and room are available (tested with no stall:
``tests/test_rtl_patchbuf.py``). Latency: a beat leaves one cycle after the reader issues it.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from archmodel.errors import AimcError
from rtl.params import ACT_BITS, PatchParams

__all__ = ["CONFIG_FIELDS", "FIELD_DOCS", "PatchBuffer", "PatchConfig", "PatchConfigError", "beat_layout",
           "digital_patch_params", "patch_config"]

#: Configuration ports of :class:`PatchBuffer`, in register order (``dims`` = ``dim_bits`` wide, ``geo`` =
#: ``geo_bits``, ``words`` = a word count or index).
CONFIG_FIELDS: dict[str, str] = {
    "in_h": "dims", "in_w": "dims", "out_h": "dims", "out_w": "dims",
    "kh": "geo", "kw": "geo", "sh": "geo", "sw": "geo", "dh": "geo", "dw": "geo",
    "pad_t": "geo", "pad_l": "geo", "i0": "geo", "j0": "geo",
    "c_beats": "words", "cb0": "words", "n_beats": "words", "ring_rows": "dims", "row_words": "words",
}


#: Meaning of every configuration port (and the tile's ``en``), for the register map.
FIELD_DOCS: dict[str, str] = {
    "en": "1: act carries pixel vectors through the patch buffer (conv layer); 0: bypass (linear layer)",
    "in_h": "input map height (pixels)", "in_w": "input map width (pixels)",
    "out_h": "output map height", "out_w": "output map width",
    "kh": "kernel height", "kw": "kernel width", "sh": "vertical stride", "sw": "horizontal stride",
    "dh": "vertical dilation", "dw": "horizontal dilation", "pad_t": "top padding", "pad_l": "left padding",
    "i0": "kernel row of the tile's first beat", "j0": "kernel column of the tile's first beat",
    "c_beats": "act beats per pixel, C / rows_per_dac_beat", "cb0": "channel beat of the tile's first beat",
    "n_beats": "beats per output pixel sent to the tile controller, ceil(r1 / L) - r0 / L",
    "ring_rows": "input rows the ring holds", "row_words": "words of one input row, in_w * c_beats",
}


class PatchConfigError(AimcError, ValueError):
    """A conv layer (or row block) the patch buffer cannot run; the message is one line naming why."""


def beat_layout(lanes: int) -> data.StructLayout:
    """One ``act`` beat: ``data`` = ``lanes`` int8, ``last`` (same layout as :func:`rtl.tile_controller.act_beat_layout`)."""
    return data.StructLayout({"data": data.ArrayLayout(signed(ACT_BITS), lanes), "last": unsigned(1)})


@dataclass(frozen=True)
class PatchConfig:
    """Register values of one tile's patch buffer (:data:`CONFIG_FIELDS`); see :func:`patch_config`."""

    in_h: int
    in_w: int
    out_h: int
    out_w: int
    kh: int
    kw: int
    sh: int
    sw: int
    dh: int
    dw: int
    pad_t: int
    pad_l: int
    i0: int
    j0: int
    c_beats: int
    cb0: int
    n_beats: int
    ring_rows: int
    row_words: int

    def fields(self) -> dict[str, int]:
        """The register values by :data:`CONFIG_FIELDS` name."""
        return {k: getattr(self, k) for k in CONFIG_FIELDS}


def patch_config(layer, r0: int, r1: int, params: PatchParams) -> PatchConfig:
    """Patch-buffer configuration of the tile holding rows ``[r0, r1)`` of conv ``layer``'s tap-major matrix.

    Parameters
    ----------
    layer : archmodel.network.Layer
        A ``conv`` layer with inferred shapes (``input_shapes[0] = (C, H, W)``).
    r0, r1 : int
        The tile's row block, ``0 <= r0 < r1 <= kh·kw·C``, ``r0 % L == 0`` (contract section 3).
    params : PatchParams

    Returns
    -------
    PatchConfig
        ``beat_lo = r0 / L`` split into tap ``(i0, j0)`` and channel beat ``cb0``; ``n_beats = ceil(r1 / L) −
        beat_lo``; ``ring_rows = min(H, floor(words / (W·C/L)))``.

    Raises
    ------
    PatchConfigError
        One line: not a conv; ``C % L != 0`` (a beat would mix pixels); ``r0`` not on a beat; a size beyond the
        register widths; or the ring does not fit ``buffers.sram_kib_per_tile`` (fewer rows than the window's
        ``(kh−1)·dh + 1`` or the stride).
    """
    lanes = params.lanes
    if layer.op != "conv":
        raise PatchConfigError(f"layer {layer.name!r} ({layer.op}): the patch buffer runs conv layers only")
    c, h, w = layer.input_shapes[0]
    _, ho, wo = layer.output_shape
    a = layer.attrs
    kh, kw = a["kernel_size"]
    sh, sw = a["stride"]
    dh, dw = a["dilation"]
    pt, pl, _, _ = a["padding"]
    k = kh * kw * c
    if c % lanes:
        raise PatchConfigError(f"layer {layer.name!r}: {c} input channels is not a multiple of "
                               f"rows_per_dac_beat = {lanes} (one act beat must hold one pixel's channels)")
    if not (0 <= r0 < r1 <= k) or r0 % lanes:
        raise PatchConfigError(f"layer {layer.name!r}: row block [{r0}, {r1}) must start on a beat "
                               f"({lanes} rows) within K = {k}")
    geo = {"kernel": max(kh, kw), "stride": max(sh, sw), "dilation": max(dh, dw), "padding": max(pt, pl)}
    for name, v in geo.items():
        if v >= 1 << params.geo_bits:
            raise PatchConfigError(f"layer {layer.name!r}: {name} {v} exceeds the patch buffer's "
                                   f"{(1 << params.geo_bits) - 1}")
    if max(h, w, ho, wo) >= 1 << params.dim_bits:
        raise PatchConfigError(f"layer {layer.name!r}: a {h}x{w} map exceeds the patch buffer's "
                               f"{(1 << params.dim_bits) - 1} pixels per side")
    cb = c // lanes
    row_words = w * cb
    rows = min(h, params.words // row_words)
    need = max((kh - 1) * dh + 1, min(sh, h))
    if h < need:  # the ring holds at most the map's rows: more SRAM would not help
        raise PatchConfigError(f"layer {layer.name!r}: its window spans {need} rows (kernel {kh}, dilation {dh}) "
                               f"but its input map has {h}; the patch buffer holds at most the map's rows")
    if rows < need:
        raise PatchConfigError(f"layer {layer.name!r} does not fit the patch buffer: {need} rows of "
                               f"{row_words} words needed, {params.words} words held "
                               f"(buffers.sram_kib_per_tile)")
    b0, b1 = r0 // lanes, -(-r1 // lanes)
    t0, cb0 = divmod(b0, cb)
    i0, j0 = divmod(t0, kw)
    return PatchConfig(in_h=h, in_w=w, out_h=ho, out_w=wo, kh=kh, kw=kw, sh=sh, sw=sw, dh=dh, dw=dw,
                       pad_t=pt, pad_l=pl, i0=i0, j0=j0, c_beats=cb, cb0=cb0, n_beats=b1 - b0,
                       ring_rows=rows, row_words=row_words)


def digital_patch_params(spec) -> PatchParams:
    """Sizes of the digital node's patch buffer (``digital.lb``, :mod:`rtl.top`): one int8 lane per word (the
    digital datapath reads one element per beat, so any ``C`` works: ``C % 1 == 0``), ``words`` =
    ``buffers.sram_kib_per_tile · 1024`` (assumed: the node has a tile's activation SRAM; ``proto``: 1,024
    words, digits-cnn's conv1 ring is 8 rows x 8 = 64), at most :data:`DIGITAL_PATCH_MAX_WORDS` (the
    ``digital.lb`` registers pack two 16-bit fields; fig11's 64 KiB would need 17 bits).

    Raises
    ------
    ValueError
        If the SRAM holds no word.
    """
    return PatchParams(lanes=1, words=min(int(spec.buffers.sram_kib_per_tile * 1024), DIGITAL_PATCH_MAX_WORDS))


#: Largest digital-node line buffer in words (one int8 each): 2**15 keeps every ``digital.lb`` field within the
#: 16 bits its register packing gives it.
DIGITAL_PATCH_MAX_WORDS = 1 << 15


class PatchBuffer(wiring.Component):
    """Line buffer of one tile (module docstring for the micro-architecture).

    Parameters
    ----------
    params : PatchParams

    Members
    -------
    i : In(stream.Signature(beat_layout(lanes)))
        Input pixel beats (``c_beats`` per pixel, raster order; ``last`` ignored).
    o : Out(stream.Signature(beat_layout(lanes)))
        Patch beats, ``n_beats`` per output pixel, ``last`` on each pixel's final beat.
    clear : In(1)
        Pulse: forget everything (both sides restart at pixel 0 of an image). The configuration must be
        stable from ``clear`` on.
    in_h, in_w, out_h, out_w, kh, kw, sh, sw, dh, dw, pad_t, pad_l, i0, j0, c_beats, cb0, n_beats, ring_rows,
    row_words : In
        Configuration (:func:`patch_config`; widths by :data:`CONFIG_FIELDS`).

    Raises
    ------
    TypeError
        If ``params`` is not a :class:`PatchParams`.
    """

    def __init__(self, params: PatchParams):
        if not isinstance(params, PatchParams):
            raise TypeError(f"params must be a PatchParams, got {params!r}")
        self.params = p = params
        widths = {"dims": p.dim_bits, "geo": p.geo_bits, "words": p.words.bit_length()}
        members = {"i": In(stream.Signature(beat_layout(p.lanes))),
                   "o": Out(stream.Signature(beat_layout(p.lanes))),
                   "clear": In(1)}
        for name, kind in CONFIG_FIELDS.items():
            members[name] = In(unsigned(widths[kind]))
        super().__init__(members)

    def elaborate(self, platform):
        p = self.params
        m = Module()
        lanes = p.lanes
        sw_ = p.dim_bits + p.geo_bits + 2  # signed coordinate width: oy·sh − pad_t and the taps
        coord = signed(sw_)
        aw = max(1, (p.words - 1).bit_length())
        m.submodules.mem = mem = Memory(shape=data.ArrayLayout(signed(ACT_BITS), lanes), depth=p.words, init=[])
        wp = mem.write_port()
        rp = mem.read_port(domain="sync")

        in_h, in_w = self.in_h, self.in_w
        ring = self.ring_rows

        # ---- writer state
        px = Signal(p.dim_bits)
        py = Signal(p.dim_bits)
        pcb = Signal(self.c_beats.shape())
        wslot = Signal(p.dim_bits)
        waddr = Signal(aw)
        ahead = Signal(1, init=1)          # reset: the reader "finished" image -1, the writer is in image 0
        next_base = Signal(p.dim_bits)

        # ---- reader state
        done = Signal(1, init=1)
        oy = Signal(p.dim_bits)
        ox = Signal(p.dim_bits)
        ybase = Signal(coord)
        xbase = Signal(coord)
        low_slot = Signal(p.dim_bits)
        k = Signal(self.n_beats.shape())
        ti = Signal(p.geo_bits)
        tj = Signal(p.geo_bits)
        tcb = Signal(self.c_beats.shape())
        ty = Signal(coord)
        tx = Signal(coord)

        low_y = Signal(coord)
        m.d.comb += low_y.eq(Mux(done, in_h, Mux(ybase < 0, 0, ybase)))

        # ---- writer
        row_end = (pcb == self.c_beats - 1) & (px == in_w - 1)
        img_end = row_end & (py == in_h - 1)
        lhs = Signal(p.dim_bits + 1)
        m.d.comb += lhs.eq(Mux(ahead, in_h + py, py))
        ok_w = (lhs < low_y + ring) & ~(ahead & img_end)
        m.d.comb += self.i.ready.eq(ok_w)
        fire_w = self.i.valid & ok_w
        m.d.comb += [wp.addr.eq(waddr), wp.data.eq(self.i.payload.data), wp.en.eq(fire_w)]
        prod_wrap = Signal()
        m.d.comb += prod_wrap.eq(fire_w & img_end)
        with m.If(fire_w):
            m.d.sync += pcb.eq(pcb + 1)
            m.d.sync += waddr.eq(waddr + 1)
            with m.If(pcb == self.c_beats - 1):
                m.d.sync += [pcb.eq(0), px.eq(px + 1)]
                with m.If(px == in_w - 1):
                    m.d.sync += [px.eq(0), py.eq(py + 1)]
                    last_slot = wslot == ring - 1
                    m.d.sync += wslot.eq(Mux(last_slot, 0, wslot + 1))
                    with m.If(last_slot):
                        m.d.sync += waddr.eq(0)
                    with m.If(py == in_h - 1):
                        m.d.sync += [py.eq(0), next_base.eq(Mux(last_slot, 0, wslot + 1))]

        # ---- reader: is the window's last pixel written?
        span_h = Signal(2 * p.geo_bits)
        span_w = Signal(2 * p.geo_bits)
        m.d.comb += [span_h.eq((self.kh - 1) * self.dh), span_w.eq((self.kw - 1) * self.dw)]
        need_y, need_x = Signal(coord), Signal(coord)
        ey, ex = ybase + span_h, xbase + span_w
        m.d.comb += [need_y.eq(Mux(ey > in_h - 1, in_h - 1, ey)), need_x.eq(Mux(ex > in_w - 1, in_w - 1, ex))]
        pys, pxs = Signal(coord), Signal(coord)
        m.d.comb += [pys.eq(py), pxs.eq(px)]
        avail = ahead | (pys > need_y) | ((pys == need_y) & (pxs > need_x))
        gen_ok = ~done & avail

        pad = (ty < 0) | (ty >= in_h) | (tx < 0) | (tx >= in_w)
        slot0 = Signal(p.dim_bits + 1)
        slot = Signal(p.dim_bits)
        m.d.comb += [slot0.eq(low_slot + (ty - low_y)[:p.dim_bits]),
                     slot.eq(Mux(slot0 >= ring, slot0 - ring, slot0))]
        raddr = Signal(aw)
        m.d.comb += raddr.eq(slot * self.row_words + tx[:p.dim_bits] * self.c_beats + tcb)

        s1_valid, s1_pad, s1_last = Signal(), Signal(), Signal()
        advance = ~s1_valid | self.o.ready
        m.d.comb += [rp.en.eq(advance), rp.addr.eq(raddr), self.o.valid.eq(s1_valid),
                     self.o.payload.last.eq(s1_last)]
        for lane in range(lanes):
            m.d.comb += self.o.payload.data[lane].eq(Mux(s1_pad, 0, rp.data[lane]))
        last_beat = k == self.n_beats - 1
        with m.If(advance):
            m.d.sync += [s1_valid.eq(gen_ok), s1_pad.eq(pad), s1_last.eq(last_beat)]

        i0dh, j0dw = self.i0 * self.dh, self.j0 * self.dw
        take = Signal()
        m.d.comb += take.eq(done & ahead)
        with m.If(take):
            m.d.sync += [done.eq(0), oy.eq(0), ox.eq(0), ybase.eq(-self.pad_t), xbase.eq(-self.pad_l),
                         low_slot.eq(next_base), k.eq(0), ti.eq(self.i0), tj.eq(self.j0), tcb.eq(self.cb0),
                         ty.eq(i0dh - self.pad_t), tx.eq(j0dw - self.pad_l)]
        with m.Elif(advance & gen_ok):
            with m.If(~last_beat):
                m.d.sync += k.eq(k + 1)
                with m.If(tcb == self.c_beats - 1):
                    m.d.sync += tcb.eq(0)
                    with m.If(tj == self.kw - 1):
                        m.d.sync += [tj.eq(0), ti.eq(ti + 1), tx.eq(xbase), ty.eq(ty + self.dh)]
                    with m.Else():
                        m.d.sync += [tj.eq(tj + 1), tx.eq(tx + self.dw)]
                with m.Else():
                    m.d.sync += tcb.eq(tcb + 1)
            with m.Else():
                m.d.sync += [k.eq(0), ti.eq(self.i0), tj.eq(self.j0), tcb.eq(self.cb0)]
                with m.If(ox == self.out_w - 1):
                    m.d.sync += [ox.eq(0), xbase.eq(-self.pad_l), tx.eq(j0dw - self.pad_l)]
                    with m.If(oy == self.out_h - 1):
                        m.d.sync += done.eq(1)
                    with m.Else():
                        ny = Signal(coord)
                        m.d.comb += ny.eq(ybase + self.sh)
                        new_low = Mux(ny < 0, 0, ny)
                        s2 = Signal(p.dim_bits + 1)
                        m.d.comb += s2.eq(low_slot + (new_low - low_y)[:p.dim_bits])
                        m.d.sync += [oy.eq(oy + 1), ybase.eq(ny), ty.eq(ny + i0dh),
                                     low_slot.eq(Mux(s2 >= ring, s2 - ring, s2))]
                with m.Else():
                    nx = Signal(coord)
                    m.d.comb += nx.eq(xbase + self.sw)
                    m.d.sync += [ox.eq(ox + 1), xbase.eq(nx), tx.eq(nx + j0dw), ty.eq(ybase + i0dh)]
        m.d.sync += ahead.eq(ahead + prod_wrap - take)

        with m.If(self.clear):
            m.d.sync += [px.eq(0), py.eq(0), pcb.eq(0), wslot.eq(0), waddr.eq(0), ahead.eq(1), next_base.eq(0),
                         done.eq(1), s1_valid.eq(0)]
        return m
