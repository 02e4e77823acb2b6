"""Pooling and the residual add on the feature-map stream (issue 18; docs/design.md section 11.2).

Both blocks take and give the stream of the contract (one vector per pixel, raster order, images back to back,
``c_beats`` ``act`` beats of ``L`` int8 lanes per pixel, ``last`` on a pixel's final beat), so either can sit
anywhere on it. The arithmetic is :mod:`archmodel.accuracy`'s integer forward exactly:

- :class:`Pool`: max or average over non-overlapping ``kh x kw`` windows (kernel = stride, no padding,
  floor mode: rows/columns past ``out_h·kh`` / ``out_w·kw`` are dropped), which covers ``maxpool 2`` /
  ``avgpool 2`` and the global average pool (kernel = the whole map). Max: ``max`` of the window
  (``_pool_int``); average: ``(2·sum + count) // (2·count)`` (round half up of the mean, ``count = kh·kw``;
  ``_pool_int`` and the global average pool of ``archmodel.accuracy``), by a restoring divider.
- :class:`ResidualAdd`: ``saturate(round_shift(max?(q0·a + q1·b, 0), shift), 8)`` lane by lane
  (:func:`archmodel.accuracy.requantize_sum`: ``q0``, ``q1``, ``shift`` from
  :func:`archmodel.golden.coefficients.quantize_affine` of the two scale ratios).

Micro-architecture of :class:`Pool`: one accumulator word (``L`` lanes of ``acc_bits``) per output column and
channel beat (``out_w · c_beats`` words of a :class:`amaranth.lib.memory.Memory`); an input beat is read-modify-
written in two cycles (READ: the word's read is issued; UPDATE: first tap of the window = the beat, else
max / sum with it; written back, or, on the window's last tap, sent out). Throughput: one input beat per 2
cycles, 3 on a window's last tap (max) or ``4 + acc_bits + 2`` (average: the divider and its sign step) -- a pool follows a tile
that produces one pixel per MVM (tens of cycles), so it never limits the pipeline it sits in.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from archmodel.errors import AimcError
from rtl.fixed import round_shift, saturate
from rtl.params import ACT_BITS
from rtl.patchbuf import beat_layout

__all__ = ["INPUT_JOIN_PORTS", "JOIN_DEPTH", "JOIN_MAX_SHIFT", "POOL_DIM_BITS", "POOL_WORDS", "InputJoin", "Pool",
           "PoolConfig", "PoolConfigError", "ResidualAdd", "ResidualJoin", "pool_config"]

#: Accumulator words of a tile's pool unit (largest ``out_w · c_beats``), assumed: digits-cnn's pool needs 4 · 2 = 8.
POOL_WORDS = 64
#: Width of the pool unit's map and kernel sizes.
POOL_DIM_BITS = 10
#: Beats per queue of a tile's residual join: must hold the skew between the two producers. Derived from
#: digits-resnet's b1_add at b2_conv1's / b2_proj's tiles: the shortcut (stem_relu) leads the residual branch by
#: two 3 x 3 (padding 1) convs' look-ahead on an 8-wide map, 2 x (8 + 1) = 18 pixels x 2 beats = 36 beats; 64 =
#: the next power of two (was 32, assumed, which that skew overflows).
JOIN_DEPTH = 64


def JOIN_MAX_SHIFT(tp) -> int:  # noqa: N802 - a derived constant
    """Largest shift of a tile's residual add: ``ACT_BITS + periphery.affine_scale_bits - 1`` (the add's
    ``q·x`` sums need ``ACT_BITS + scale_bits + 1`` bits)."""
    return ACT_BITS + tp.scale_bits - 1


class PoolConfigError(AimcError, ValueError):
    """A pooling layer the pool unit cannot run; the message is one line naming why."""


@dataclass(frozen=True)
class PoolConfig:
    """Register values of a tile's pool unit (:class:`Pool`'s configuration ports); see :func:`pool_config`."""

    avg: int
    in_h: int
    in_w: int
    kh: int
    kw: int
    out_h: int
    out_w: int
    c_beats: int
    count: int

    def fields(self) -> dict[str, int]:
        """The configuration port values by name."""
        return dict(self.__dict__)


def pool_config(layer, lanes: int, *, words: int = POOL_WORDS, dim_bits: int = POOL_DIM_BITS) -> PoolConfig:
    """Pool-unit configuration of a ``maxpool`` / ``avgpool`` / ``global_avgpool`` layer (inferred shapes).

    Raises
    ------
    PoolConfigError
        One line: another op; a window that overlaps or pads (stride != kernel, padding); ``C % lanes != 0``;
        ``out_w · C / lanes`` above ``words``; a size beyond ``dim_bits``.
    """
    c, h, w = layer.input_shapes[0]
    if layer.op == "global_avgpool":
        kh, kw, avg = h, w, 1
    elif layer.op in ("maxpool", "avgpool"):
        kh, kw = layer.attrs["kernel"]
        if tuple(layer.attrs["stride"]) != (kh, kw) or any(layer.attrs["padding"]):
            raise PoolConfigError(f"layer {layer.name!r}: the pool unit runs non-overlapping windows without padding "
                                  f"(stride = kernel), got kernel {(kh, kw)}, stride {tuple(layer.attrs['stride'])}, "
                                  f"padding {tuple(layer.attrs['padding'])}")
        avg = int(layer.op == "avgpool")
    else:
        raise PoolConfigError(f"layer {layer.name!r} ({layer.op}) is not a pooling layer")
    if c % lanes:
        raise PoolConfigError(f"layer {layer.name!r}: {c} channels is not a multiple of rows_per_dac_beat = {lanes}")
    oh, ow = h // kh, w // kw
    if ow * (c // lanes) > words:
        raise PoolConfigError(f"layer {layer.name!r} does not fit the pool unit: {ow * (c // lanes)} accumulator "
                              f"words needed, {words} held")
    if max(h, w) >= 1 << dim_bits:
        raise PoolConfigError(f"layer {layer.name!r}: a {h}x{w} map exceeds the pool unit's {(1 << dim_bits) - 1}")
    return PoolConfig(avg=avg, in_h=h, in_w=w, kh=kh, kw=kw, out_h=oh, out_w=ow, c_beats=c // lanes, count=kh * kw)


class Pool(wiring.Component):
    """Max / average pooling over non-overlapping windows (module docstring).

    Parameters
    ----------
    lanes : int
        int8 lanes per beat (``rows_per_dac_beat``).
    words : int
        Accumulator words: the largest ``out_w · c_beats``.
    dim_bits : int, default 10
        Width of map sizes and kernel sizes (a global pool's kernel is the map).

    Members
    -------
    i : In(stream.Signature(beat_layout(lanes)))
        Input pixel beats.
    o : Out(stream.Signature(beat_layout(lanes)))
        Pooled pixel beats (``c_beats`` per output pixel, ``last`` on the final one).
    clear : In(1)
        Pulse: restart at pixel 0 of an image.
    avg : In(1)
        Configuration: 0 = max, 1 = average.
    in_h, in_w, kh, kw, out_h, out_w : In(dim_bits)
        Configuration: map, window (= stride) and output sizes (``out = floor(in / k)``).
    c_beats : In(range(words + 1))
        Configuration: beats per pixel.
    count : In(2 * dim_bits)
        Configuration: ``kh · kw`` (the average's divisor).

    Raises
    ------
    ValueError
        If a size is not a positive integer.
    """

    def __init__(self, lanes: int, words: int = POOL_WORDS, dim_bits: int = POOL_DIM_BITS):
        for name, v in (("lanes", lanes), ("words", words), ("dim_bits", dim_bits)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"Pool.{name} must be a positive integer, got {v!r}")
        self.lanes, self.words, self.dim_bits = lanes, words, dim_bits
        self.acc_bits = ACT_BITS + 2 * dim_bits + 1
        super().__init__({
            "i": In(stream.Signature(beat_layout(lanes))),
            "o": Out(stream.Signature(beat_layout(lanes))),
            "clear": In(1), "avg": In(1),
            "in_h": In(dim_bits), "in_w": In(dim_bits), "kh": In(dim_bits), "kw": In(dim_bits),
            "out_h": In(dim_bits), "out_w": In(dim_bits),
            "c_beats": In(unsigned(words.bit_length())), "count": In(2 * dim_bits),
        })

    def elaborate(self, platform):
        m = Module()
        lanes, db = self.lanes, self.dim_bits
        acc_t = signed(self.acc_bits)
        m.submodules.mem = mem = Memory(shape=data.ArrayLayout(acc_t, lanes), depth=self.words, init=[])
        wp, rp = mem.write_port(), mem.read_port(domain="sync")

        x, y, wx, wy, ox, oy = (Signal(db, name=n) for n in ("x", "y", "wx", "wy", "ox", "oy"))
        cb = Signal(self.c_beats.shape())
        beat = Signal(data.ArrayLayout(signed(ACT_BITS), lanes))
        addr = Signal(max(1, (self.words - 1).bit_length()))
        m.d.comb += addr.eq(ox * self.c_beats + cb)

        # divider: floor((2·sum + count) / (2·count)) per lane, restoring, on magnitudes
        nbits = self.acc_bits + 2
        div_n = [Signal(nbits, name=f"div_n{k}") for k in range(lanes)]   # numerator magnitude -> quotient
        div_r = [Signal(nbits + 1, name=f"div_r{k}") for k in range(lanes)]
        div_neg = [Signal(name=f"div_neg{k}") for k in range(lanes)]
        div_d = Signal(2 * db + 1)
        div_i = Signal(range(nbits + 1))

        out_data = Signal(data.ArrayLayout(signed(ACT_BITS), lanes))
        out_last = Signal()
        m.d.comb += [self.o.payload.data.eq(out_data), self.o.payload.last.eq(out_last)]

        first = (wx == 0) & (wy == 0)
        complete = (wx == self.kw - 1) & (wy == self.kh - 1)
        inside = (ox < self.out_w) & (oy < self.out_h)
        new = [Signal(acc_t, name=f"new{k}") for k in range(lanes)]
        for k in range(lanes):
            a, v = rp.data[k], beat[k]
            m.d.comb += new[k].eq(Mux(first, v, Mux(self.avg, a + v, Mux(v > a, v, a))))
        m.d.comb += [wp.addr.eq(addr), rp.addr.eq(addr)]
        for k in range(lanes):
            m.d.comb += wp.data[k].eq(new[k])

        def advance():
            """Step the input counters past the beat just used."""
            m.d.sync += cb.eq(cb + 1)
            with m.If(cb == self.c_beats - 1):
                m.d.sync += [cb.eq(0), x.eq(x + 1), wx.eq(wx + 1)]
                with m.If(wx == self.kw - 1):
                    m.d.sync += [wx.eq(0), ox.eq(ox + 1)]
                with m.If(x == self.in_w - 1):
                    m.d.sync += [x.eq(0), wx.eq(0), ox.eq(0), y.eq(y + 1), wy.eq(wy + 1)]
                    with m.If(wy == self.kh - 1):
                        m.d.sync += [wy.eq(0), oy.eq(oy + 1)]
                    with m.If(y == self.in_h - 1):
                        m.d.sync += [y.eq(0), wy.eq(0), oy.eq(0)]

        with m.FSM():
            with m.State("READ"):
                m.d.comb += [self.i.ready.eq(1), rp.en.eq(1)]
                with m.If(self.i.valid):
                    m.d.sync += beat.eq(self.i.payload.data)
                    m.next = "UPDATE"
            with m.State("UPDATE"):
                advance()
                m.d.sync += out_last.eq(cb == self.c_beats - 1)
                with m.If(inside & complete):
                    with m.If(self.avg):
                        m.d.sync += [div_d.eq(self.count << 1), div_i.eq(0)]
                        for k in range(lanes):
                            two = Signal(signed(nbits + 1), name=f"two{k}")
                            m.d.comb += two.eq((new[k] << 1) + self.count)
                            m.d.sync += [div_neg[k].eq(two < 0), div_r[k].eq(0),
                                         # floor for a negative numerator: -ceil(|n| / d) = -((|n| + d - 1) // d)
                                         div_n[k].eq(Mux(two < 0, -two + (self.count << 1) - 1, two))]
                        m.next = "DIVIDE"
                    with m.Else():
                        for k in range(lanes):
                            m.d.sync += out_data[k].eq(new[k])
                        m.next = "OUT"
                with m.Else():
                    m.d.comb += wp.en.eq(inside)
                    m.next = "READ"
            with m.State("DIVIDE"):  # one quotient bit per cycle, MSB first
                for k in range(lanes):
                    r2 = (div_r[k] << 1) | div_n[k][nbits - 1]
                    fits = r2 >= div_d
                    m.d.sync += [div_r[k].eq(Mux(fits, r2 - div_d, r2)),
                                 div_n[k].eq((div_n[k] << 1) | fits)]
                m.d.sync += div_i.eq(div_i + 1)
                with m.If(div_i == nbits - 1):
                    m.next = "SIGN"
            with m.State("SIGN"):
                for k in range(lanes):
                    q = Signal(signed(nbits + 1), name=f"q{k}")
                    m.d.comb += q.eq(Mux(div_neg[k], -div_n[k], div_n[k]))
                    m.d.sync += out_data[k].eq(q)
                m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += self.o.valid.eq(1)
                with m.If(self.o.ready):
                    m.next = "READ"
        with m.If(self.clear):
            m.d.sync += [x.eq(0), y.eq(0), wx.eq(0), wy.eq(0), ox.eq(0), oy.eq(0), cb.eq(0)]
        return m


class ResidualAdd(wiring.Component):
    """Residual add of two pixel streams, requantized as :func:`archmodel.accuracy.requantize_sum`.

    Parameters
    ----------
    lanes : int
        int8 lanes per beat.
    scale_bits : int
        Signed width of ``q0``, ``q1`` (``periphery.affine_scale_bits``).
    max_shift : int
        Largest ``shift`` (``acc`` width: ``ACT_BITS + scale_bits + 1``).

    Members
    -------
    a, b : In(stream.Signature(beat_layout(lanes)))
        The two addends, beat for beat (the same pixel order); ``last`` taken from ``a``.
    o : Out(stream.Signature(beat_layout(lanes)))
        ``saturate(round_shift(relu?(q0·a + q1·b), shift), 8)`` per lane, one beat per cycle (registered).
    q0, q1 : In(signed(scale_bits))
        Configuration: the integer scales of ``a`` and ``b``.
    shift : In(range(max_shift + 1))
        Configuration: the common shift.
    relu : In(1)
        Configuration: ReLU before the shift.
    """

    def __init__(self, lanes: int, scale_bits: int, max_shift: int):
        self.lanes, self.scale_bits = lanes, scale_bits
        super().__init__({
            "a": In(stream.Signature(beat_layout(lanes))),
            "b": In(stream.Signature(beat_layout(lanes))),
            "o": Out(stream.Signature(beat_layout(lanes))),
            "q0": In(signed(scale_bits)), "q1": In(signed(scale_bits)),
            "shift": In(range(max_shift + 1)), "relu": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        take = ~self.o.valid | self.o.ready
        both = self.a.valid & self.b.valid
        m.d.comb += [self.a.ready.eq(take & both), self.b.ready.eq(take & both)]
        with m.If(take):
            m.d.sync += self.o.valid.eq(both)
        with m.If(take & both):
            m.d.sync += self.o.payload.last.eq(self.a.payload.last)
            for k in range(self.lanes):
                acc = Signal(signed(ACT_BITS + self.scale_bits + 1), name=f"acc{k}")
                m.d.comb += acc.eq(self.q0 * self.a.payload.data[k] + self.q1 * self.b.payload.data[k])
                r = Mux(self.relu & (acc < 0), 0, acc)
                m.d.sync += self.o.payload.data[k].eq(saturate(round_shift(r.as_signed(), self.shift), ACT_BITS))
        return m


class ResidualJoin(wiring.Component):
    """Merge of two producers by source tag into a :class:`ResidualAdd` (a consuming tile's receive path).

    Source-tagged beats (``rtl.axis.tagged_layout``: ``data``, ``last``, ``src``) arrive interleaved in any
    order on one link; a beat tagged ``src_a`` goes to queue A, ``src_b`` to queue B (``depth`` beats each),
    any other tag is dropped and sets ``err_src``; the queues' heads are added beat for beat. Deadlock-free
    as long as neither queue fills while the other waits for a beat behind it on the link: the queue must
    hold the skew between the producers (the shortcut's beats that arrive before the matching beats of the
    residual branch), which the compiler has to bound (``depth``); a head-of-line block otherwise.

    Parameters
    ----------
    lanes, scale_bits, max_shift : int
        As :class:`ResidualAdd`.
    src_bits : int
        Width of the source tag.
    depth : int
        Beats per queue.

    Members
    -------
    i : In(stream.Signature(tagged beat))
    o : Out(stream.Signature(beat_layout(lanes)))
    src_a, src_b : In(src_bits)
        Configuration: the tags of the two addends.
    q0, q1, shift, relu : In
        Configuration of the add (:class:`ResidualAdd`).
    err_src : Out(1)
        Sticky: a beat with another tag was dropped.
    """

    def __init__(self, lanes: int, scale_bits: int, max_shift: int, src_bits: int, depth: int = 16):
        self.lanes, self.scale_bits, self.max_shift, self.depth = lanes, scale_bits, max_shift, depth
        self.tagged = data.StructLayout({"data": data.ArrayLayout(signed(ACT_BITS), lanes), "last": unsigned(1),
                                         "src": unsigned(src_bits)})
        super().__init__({
            "i": In(stream.Signature(self.tagged)),
            "o": Out(stream.Signature(beat_layout(lanes))),
            "src_a": In(src_bits), "src_b": In(src_bits),
            "q0": In(signed(scale_bits)), "q1": In(signed(scale_bits)),
            "shift": In(range(max_shift + 1)), "relu": In(1),
            "err_src": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        beat = beat_layout(self.lanes)
        m.submodules.qa = qa = SyncFIFOBuffered(width=beat.size, depth=self.depth)
        m.submodules.qb = qb = SyncFIFOBuffered(width=beat.size, depth=self.depth)
        m.submodules.add = add = ResidualAdd(self.lanes, self.scale_bits, self.max_shift)
        src = self.i.payload.src
        to_a, to_b = src == self.src_a, src == self.src_b
        word = Signal(beat)
        m.d.comb += [word.data.eq(self.i.payload.data), word.last.eq(self.i.payload.last),
                     qa.w_data.eq(word.as_value()), qb.w_data.eq(word.as_value()),
                     qa.w_en.eq(self.i.valid & to_a), qb.w_en.eq(self.i.valid & to_b & ~to_a),
                     self.i.ready.eq(Mux(to_a, qa.w_rdy, Mux(to_b, qb.w_rdy, 1)))]
        with m.If(self.i.valid & ~to_a & ~to_b):
            m.d.sync += self.err_src.eq(1)
        for q, s in ((qa, add.a), (qb, add.b)):
            m.d.comb += [s.valid.eq(q.r_rdy), s.payload.eq(q.r_data), q.r_en.eq(s.ready)]
        m.d.comb += [add.q0.eq(self.q0), add.q1.eq(self.q1), add.shift.eq(self.shift), add.relu.eq(self.relu)]
        wiring.connect(m, add.o, wiring.flipped(self.o))
        return m


#: Configuration ports of :class:`InputJoin` beyond its pool's (``rtl.regmap``: ``digital.add.*``).
INPUT_JOIN_PORTS = ("en", "pool_en", "src_a", "src_b", "out_src", "q0", "q1", "shift", "relu")


class InputJoin(wiring.Component):
    """Source-filtered residual join and pool in front of a consumer that reads tagged beats (the digital node).

    ``digits-resnet``'s ``b2_add`` (tile 23's ``b2_conv2_bn`` + tile 24's ``b2_proj_bn``, ReLU) and its global
    average pool feed the digital datapath's ``fc`` (issue 18), while the same link also carries the host's stem
    input. With ``en``, a beat tagged ``src_a`` or ``src_b`` goes into a :class:`ResidualJoin` (its queues
    A / B, ``depth`` beats each; requantize_sum arithmetic), whose sums go through a :class:`Pool` when
    ``pool_en`` (``(2·sum + count) // (2·count)`` for the global average pool) and leave tagged ``out_src``;
    a beat with any other tag passes untouched (bypass, no buffer). ``en`` = 0: a wire (``i`` -> ``o``).

    Arbitration onto ``o`` between the bypass beat (at ``i``'s head) and the join/pool output: when both are
    valid, the offer alternates every cycle (``turn``), whatever ``o.ready`` did; so ``o`` may withdraw a
    beat it offered (``o``'s consumer, :class:`rtl.axis.SourceMerge`, takes a beat whenever its queue has room
    and keeps no state between offers).

    Why no head-of-line deadlock: (1) a bypass beat never waits behind the join: the join's queues and pool
    are a separate path from ``i`` to ``o``, and the bypass beat is offered at least every other cycle;
    (2) the join/pool output never waits behind a bypass beat the consumer refuses (its queue full because
    the consumer first needs the join's vector): it is offered every other cycle too, so whichever of the two
    the consumer can take is taken within 2 cycles; (3) ``i`` stalls only while a beat for the join finds
    its queue full, i.e. while the other addend's producer lags by more than ``depth`` beats -- the join's
    own skew bound (:class:`ResidualJoin`), which the host (phase 2 of ``tb.resnet_env``: the two streams
    interleaved pixel by pixel) and the tiles' pipeline respect. The pool never stalls the join except through
    ``o``.

    Parameters
    ----------
    lanes, scale_bits, max_shift, src_bits, depth : int
        As :class:`ResidualJoin`.
    words : int
        The pool's accumulator words (:class:`Pool`).

    Members
    -------
    i : In(stream.Signature(tagged beat))
        Tagged ``act`` beats from the node's receive path (``rtl.axis.tagged_layout``).
    o : Out(stream.Signature(tagged beat))
        To the consumer: bypassed beats and the join's (pooled) beats tagged ``out_src``.
    clear : In(1)
        Pulse: the pool restarts at pixel 0 (the digital datapath's ``start``).
    en, pool_en : In(1)
        Configuration: join on; pool after it.
    src_a, src_b, out_src : In(src_bits)
        Configuration: tags of the two addends, tag of the result.
    q0, q1, shift, relu : In
        Configuration of the add (:class:`ResidualAdd`).
    avg, in_h, in_w, kh, kw, out_h, out_w, c_beats, count : In
        Configuration of the pool (:class:`Pool`).
    """

    def __init__(self, lanes: int, scale_bits: int, max_shift: int, src_bits: int, depth: int = JOIN_DEPTH,
                 words: int = POOL_WORDS):
        self.lanes = lanes
        self.join = ResidualJoin(lanes, scale_bits, max_shift, src_bits, depth)
        self.pool = Pool(lanes, words)
        tagged = self.join.tagged
        members = {"i": In(stream.Signature(tagged)), "o": Out(stream.Signature(tagged)), "clear": In(1),
                   "en": In(1), "pool_en": In(1), "src_a": In(src_bits), "src_b": In(src_bits),
                   "out_src": In(src_bits), "q0": In(signed(scale_bits)), "q1": In(signed(scale_bits)),
                   "shift": In(range(max_shift + 1)), "relu": In(1)}
        for f in ("avg", "in_h", "in_w", "kh", "kw", "out_h", "out_w", "c_beats", "count"):
            members[f] = In(self.pool.signature.members[f].shape)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        join, pool = m.submodules.join, m.submodules.pool = self.join, self.pool
        for f in ("src_a", "src_b", "q0", "q1", "shift", "relu"):
            m.d.comb += getattr(join, f).eq(getattr(self, f))
        for f in ("avg", "in_h", "in_w", "kh", "kw", "out_h", "out_w", "c_beats", "count", "clear"):
            m.d.comb += getattr(pool, f).eq(getattr(self, f))
        src = self.i.payload.src
        to_join = self.en & ((src == self.src_a) | (src == self.src_b))
        m.d.comb += [join.i.payload.eq(self.i.payload), join.i.valid.eq(self.i.valid & to_join)]
        # join -> pool (pool_en) -> jo
        jo_valid, jo_ready = Signal(), Signal()
        jo = Signal(beat_layout(self.lanes))
        m.d.comb += [pool.i.payload.eq(join.o.payload), pool.i.valid.eq(self.pool_en & join.o.valid),
                     join.o.ready.eq(Mux(self.pool_en, pool.i.ready, jo_ready)),
                     pool.o.ready.eq(self.pool_en & jo_ready),
                     jo.eq(Mux(self.pool_en, pool.o.payload.as_value(), join.o.payload.as_value())),
                     jo_valid.eq(Mux(self.pool_en, pool.o.valid, join.o.valid))]
        # arbitration: alternate between the bypass beat and the join's output when both wait
        byp_valid = self.i.valid & ~to_join
        turn = Signal()
        m.d.sync += turn.eq(~turn)
        sel_j = jo_valid & (~byp_valid | turn)
        m.d.comb += [self.o.valid.eq(Mux(sel_j, 1, byp_valid)),
                     self.o.payload.data.eq(Mux(sel_j, jo.data.as_value(), self.i.payload.data.as_value())),
                     self.o.payload.last.eq(Mux(sel_j, jo.last, self.i.payload.last)),
                     self.o.payload.src.eq(Mux(sel_j, self.out_src, self.i.payload.src)),
                     jo_ready.eq(sel_j & self.o.ready),
                     self.i.ready.eq(Mux(to_join, join.i.ready, ~sel_j & self.o.ready))]
        return m
