"""AXI4-Stream boundary adapters and the flit network interfaces.

Micro-architecture
------------------
- :func:`AXIStreamSignature` is the AMBA AXI4-Stream signal set (ARM IHI 0051:
  ``tdata``, ``tvalid``, ``tready``, ``tlast``, optional ``tdest``) seen from the
  transmitter; :class:`rtl.top.Coprocessor` wires its host ports to the I/O
  router directly (0 cycles, full rate: the internal streams already follow
  the AXI handshake rules).
- :class:`BeatToFlits` serializes any stream payload (a ``data`` layout) into
  ``ceil(bits / payload_bits)`` flits, least significant chunk first, ``last``
  on the final flit: one packet per beat, addressed to the ``dest_x`` /
  ``dest_y`` configuration and the constant sub-port ``chan``.
  :class:`FlitsToBeat` reassembles them. Latency 1 cycle each way; throughput
  one flit per cycle (a beat every ``ceil(bits / payload_bits)`` cycles).
- :class:`ResultPacker` gathers int8 results (``column``, ``data``, ``last``)
  into ``act`` beats of ``lanes`` activations, the input format of the next
  tile's controller; a beat leaves when full or on the result's ``last``
  (zero-padded). Latency 1 cycle after the beat's final result. The beat is
  one wide register and a result beat is shifted into place (``fill * 8R``
  bits), one barrel shifter rather than a case statement per lane.
- :class:`DestFanout` sends each beat of a vector to every destination entry
  whose beat range holds it (a split: rows 0..31 to one tile, 32.. to the
  next; a multicast: the same beats to two tiles), ``last`` rewritten to end
  each destination's range. 0 cycles; one output beat per cycle.
- :class:`BeatUnpacker` is its inverse for the digital datapath: ``act`` beats
  -> one int8 element per beat, vectors reassembled by a K count (``last`` on
  element ``K - 1``; the lanes of a vector's final beat beyond K are padding
  and dropped). 0 cycles (combinational), one element per cycle.
- :class:`StreamSlice` is a register slice (skid buffer) for any stream: ``valid``, ``payload``
  **and** ``ready`` registered, 1 cycle, one beat per cycle. The co-processor puts one where a
  path crosses blocks in context (issue 19: the source queues' block-RAM output -> the digital
  datapath's input buffer, 15.7 ns on the placed-and-routed 1 x 1 prototype).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, ResetSignal, Shape, Signal, Value, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["AXIStreamSignature", "BeatToFlits", "BeatUnpacker", "DestFanout", "FlitsToBeat", "ResultPacker",
           "SourceMerge", "StreamSlice", "tagged_layout"]


def AXIStreamSignature(data_bits: int, dest_bits: int = 0) -> wiring.Signature:  # noqa: N802
    """AXI4-Stream from the transmitter's side: ``tdata``, ``tvalid``, ``tlast``,
    ``tdest`` (when ``dest_bits`` > 0) are ``Out``, ``tready`` is ``In``."""
    members = {"tdata": Out(data_bits), "tvalid": Out(1), "tready": In(1), "tlast": Out(1)}
    if dest_bits:
        members["tdest"] = Out(dest_bits)
    return wiring.Signature(members)


class BeatToFlits(wiring.Component):
    """Serialize one stream beat into a packet of flits.

    Parameters
    ----------
    beat : ShapeLike
        Payload shape of the input stream (e.g. an ``act`` beat layout).
    flit : data.StructLayout
        Flit layout (:func:`rtl.router.flit_layout`).
    chan : int or None
        Destination sub-port written into every flit; None: the ``dest_chan``
        input, sampled with each beat.

    Members
    -------
    i : In(stream.Signature(beat))
    o : Out(stream.Signature(flit))
        ``ceil(beat bits / payload bits)`` flits per beat, LS chunk first,
        ``last`` on the final one.
    dest_x, dest_y : In(flit x width), In(flit y width)
        Destination (configuration; sampled with each beat).

    Latency 1 cycle (the beat is registered); throughput one flit per cycle.
    """

    def __init__(self, beat, flit: data.StructLayout, chan: int | None = 0):
        self.beat_bits = Shape.cast(beat).width
        self.flit = flit
        self.payload_bits = Shape.cast(flit["payload"].shape).width
        self.n_flits = -(-self.beat_bits // self.payload_bits)
        self.chan = chan
        members = {"i": In(stream.Signature(beat)), "o": Out(stream.Signature(flit)),
                   "dest_x": In(Shape.cast(flit["x"].shape)), "dest_y": In(Shape.cast(flit["y"].shape))}
        if chan is None:  # the sub-port comes with each beat, like the destination
            members["dest_chan"] = In(Shape.cast(flit["chan"].shape))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        buf = Signal(self.n_flits * self.payload_bits)
        full = Signal()
        index = Signal(range(max(2, self.n_flits)))
        dx, dy = Signal.like(self.dest_x), Signal.like(self.dest_y)
        dc = Signal(self.flit["chan"].shape)
        last_out = Signal()
        # "the flit offered is the beat's final one" (index == n_flits - 1): a constant for one-flit beats, else a
        # flip-flop set with index (issue 19: the compare of a one-flit serializer's index, a register that never
        # leaves 0, was the first LUT of the whole prototype's critical path, tx_psum -> the affine unit's FIFO
        # output register enables, 11.67 ns routed). Same value every cycle.
        if self.n_flits == 1:
            at_last = Const(1)
        else:
            at_last = Signal(name="at_last")
        m.d.comb += self.i.ready.eq(~full | last_out)  # refill in the cycle the final flit leaves
        chunks = [buf[k * self.payload_bits:(k + 1) * self.payload_bits] for k in range(self.n_flits)]
        with m.Switch(index):
            for k, c in enumerate(chunks):
                with m.Case(k):
                    m.d.comb += self.o.payload.payload.eq(c)
        m.d.comb += [self.o.valid.eq(full), self.o.payload.x.eq(dx), self.o.payload.y.eq(dy),
                     self.o.payload.chan.eq(dc if self.chan is None else self.chan),
                     self.o.payload.last.eq(at_last)]
        m.d.comb += last_out.eq(self.o.valid & self.o.ready & at_last)
        with m.If(self.o.valid & self.o.ready):
            with m.If(at_last):
                m.d.sync += full.eq(0)
            with m.Else():
                m.d.sync += index.eq(index + 1)
                if self.n_flits > 1:
                    m.d.sync += at_last.eq(index == self.n_flits - 2)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [buf.eq(self.i.payload.as_value()), full.eq(1), index.eq(0),
                         dx.eq(self.dest_x), dy.eq(self.dest_y)]
            if self.n_flits > 1:
                m.d.sync += at_last.eq(0)
            if self.chan is None:
                m.d.sync += dc.eq(self.dest_chan)
        return m


class StreamSlice(wiring.Component):
    """Register slice (two-entry skid buffer) of a stream: every output and ``i.ready`` come from flip-flops.

    Cycle for cycle an :class:`amaranth.lib.fifo.SyncFIFO` of depth 2 between ``i`` and ``o``: a beat
    accepted at edge ``n`` is offered on ``o`` from cycle ``n + 1`` (1 cycle latency), one beat per cycle
    while ``o.ready`` stays high, ``i.ready`` = "the second entry is free" (a register), so neither the
    payload nor the ready crosses the slice combinationally. The oldest beat sits in a fixed register
    (``o.payload`` has no multiplexer). AXI4-Stream rules hold on both sides (a beat offered on ``o`` is
    held until taken; ``i.ready`` does not depend on ``i.valid``).

    Parameters
    ----------
    shape : ShapeLike
        Payload shape.
    ping_pong : bool
        Hold the two beats in two registers used in turn instead (issue 19): a read toggles a pointer and
        moves no beat, so ``o.ready`` drives four flip-flops, not the enables of a whole beat; ``o.payload``
        is then a 2-to-1 multiplexer of the two registers. Same cycles, same flags.

    Members
    -------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
        Latency 1 cycle, throughput one beat per cycle.
    """

    LATENCY = 1

    def __init__(self, shape, ping_pong: bool = False):
        self.ping_pong = bool(ping_pong)
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        head_valid, tail_valid = Signal(), Signal()
        w = Value.cast(self.i.payload)
        if self.ping_pong:
            ent = [Signal(len(w), name=f"ent{k}") for k in range(2)]
            wp, rp = Signal(), Signal()       # entry written next / read next
            m.d.comb += [self.i.ready.eq(~tail_valid), self.o.valid.eq(head_valid),
                         self.o.payload.eq(Mux(rp, ent[1], ent[0]))]
            for k in range(2):  # entry wp is free whenever the slice is not full
                with m.If(~tail_valid & (wp == k)):
                    m.d.sync += ent[k].eq(w)
            with m.If(~tail_valid & self.i.valid):
                m.d.sync += wp.eq(~wp)
            with m.If(head_valid & self.o.ready):
                m.d.sync += rp.eq(~rp)
            self._flags(m, head_valid, tail_valid)
            return m
        head = Signal(len(w))
        tail = Signal.like(head)
        m.d.comb += [self.i.ready.eq(~tail_valid), self.o.valid.eq(head_valid), self.o.payload.eq(head)]
        # payload enables that do not wait for the input's valid (issue 19: a slice's ~70 enables were the end of
        # long valid chains): the tail captures the input whenever it is empty, the head loads whenever it is
        # empty or read (from the tail if that is full); an entry's payload matters only while it is valid, so
        # the flags below alone decide what the slice holds
        with m.If(~tail_valid):
            m.d.sync += tail.eq(w)
        with m.If(~head_valid | self.o.ready):
            m.d.sync += head.eq(Mux(tail_valid, tail, w))
        self._flags(m, head_valid, tail_valid)
        return m

    def _flags(self, m: Module, head_valid: Signal, tail_valid: Signal) -> None:
        """The fill flags of a two-entry FIFO: one entry or more (``head_valid``), two (``tail_valid``)."""
        do_read = head_valid & self.o.ready
        do_write = ~tail_valid & self.i.valid
        with m.If(do_read):
            with m.If(tail_valid):
                m.d.sync += tail_valid.eq(0)
            with m.Elif(~do_write):
                m.d.sync += head_valid.eq(0)
        with m.Elif(do_write):
            with m.If(head_valid):
                m.d.sync += tail_valid.eq(1)
            with m.Else():
                m.d.sync += head_valid.eq(1)


class FlitsToBeat(wiring.Component):
    """Reassemble a packet of flits into one stream beat (inverse of :class:`BeatToFlits`).

    Parameters
    ----------
    beat : ShapeLike
        Payload shape of the output stream.
    flit : data.StructLayout

    Members
    -------
    i : In(stream.Signature(flit))
        Flits of one packet, LS chunk first; the beat completes on ``last``.
    o : Out(stream.Signature(beat))

    Latency 1 cycle after the packet's last flit; throughput one flit per cycle.
    """

    def __init__(self, beat, flit: data.StructLayout):
        self.beat_bits = Shape.cast(beat).width
        self.payload_bits = Shape.cast(flit["payload"].shape).width
        self.n_flits = -(-self.beat_bits // self.payload_bits)
        super().__init__({"i": In(stream.Signature(flit)), "o": Out(stream.Signature(beat))})

    def elaborate(self, platform):
        m = Module()
        P = self.payload_bits
        buf = Signal(self.n_flits * P)
        index = Signal(range(max(2, self.n_flits)))
        full = Signal()
        m.d.comb += [self.i.ready.eq(~full | self.o.ready), self.o.valid.eq(full),
                     self.o.payload.as_value().eq(buf[:self.beat_bits])]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += full.eq(0)
        # chunk k captures the input whenever it is the next one to fill, flit or not (issue 19: the handshake
        # in front of every chunk's enable was an 11.3-11.9 ns path in the whole prototype): a chunk being
        # filled holds nothing yet, and only chunk 0 can hold a finished beat (index is 0 while full), so only
        # its enable waits for the beat to leave; the port-level behaviour is unchanged
        for k in range(self.n_flits):
            with m.If((index == k) & ((~full | self.o.ready) if k == 0 else 1)):
                m.d.sync += buf[k * P:(k + 1) * P].eq(self.i.payload.payload)
        with m.If(self.i.valid & self.i.ready):
            with m.If(self.i.payload.last | (index == self.n_flits - 1)):
                m.d.sync += [full.eq(1), index.eq(0)]
            with m.Else():
                m.d.sync += index.eq(index + 1)
        return m


class ResultPacker(wiring.Component):
    """int8 result beats (``column``, ``data``, [``count``,] ``last``) -> ``act`` beats of ``lanes`` int8.

    Parameters
    ----------
    result : data.StructLayout
        Layout with ``data`` (signed 8, or an array of ``R`` signed 8 with a
        ``count`` of valid lanes) and ``last`` fields (``rtl.affine.result_layout``).
    act : data.StructLayout
        Layout with ``data`` (array of ``lanes`` signed 8) and ``last``
        (``rtl.tile_controller.act_beat_layout``); ``R`` must divide ``lanes``.

    Members
    -------
    i : In(stream.Signature(result))
    o : Out(stream.Signature(act))
        A beat per ``lanes / R`` result beats, or fewer (zero-padded, also the
        lanes at or beyond a beat's ``count``) ending on ``last``. Only a
        beat carrying ``last`` may have ``count < R``.

    Latency 1 cycle after a beat's final result; throughput one result beat (``R`` results) per cycle.

    Raises
    ------
    ValueError
        If ``R`` does not divide ``lanes``.
    """

    def __init__(self, result: data.StructLayout, act: data.StructLayout):
        self.lanes = act["data"].shape.length
        rshape = result["data"].shape
        self.r = rshape.length if isinstance(rshape, data.ArrayLayout) else 1
        if self.lanes % self.r:
            raise ValueError(f"ResultPacker: {self.r} results per beat do not divide {self.lanes} act lanes")
        self.act = act
        super().__init__({"i": In(stream.Signature(result)), "o": Out(stream.Signature(act))})

    def elaborate(self, platform):
        # The beat buffer is one wide register; an accepted result beat is OR-ed in at bit
        # ``fill * 8R`` (a shift, not a case per lane: one barrel shifter instead of ``lanes`` case
        # statements of ``slots`` arms each). Lanes not written stay 0 (the buffer clears as the
        # beat leaves), which gives the zero padding of a short final beat.
        m = Module()
        R, slots = self.r, self.lanes // self.r
        word = 8 * R                                   # bits of one result beat's data
        buf = Signal(8 * self.lanes)
        count = Signal(range(slots + 1))
        full, last = Signal(), Signal()
        fill = Signal.like(count)  # slot of an accepted result beat: 0 while the full beat leaves
        leave = self.o.valid & self.o.ready
        m.d.comb += [self.i.ready.eq(~full | self.o.ready), self.o.valid.eq(full), self.o.payload.last.eq(last),
                     fill.eq(Mux(full, 0, count)), self.o.payload.data.as_value().eq(buf)]
        if R == 1:
            incoming = Value.cast(self.i.payload.data).as_unsigned()  # unsigned: no sign extension above
        else:  # lanes at or beyond the beat's count are 0
            incoming = Cat(Mux(k < self.i.payload.count, self.i.payload.data[k], 0).as_unsigned()[:8]
                           for k in range(R))
        if word & (word - 1) == 0:  # shift by fill * word: the multiply is a constant left shift
            shamt = Cat(Const(0, word.bit_length() - 1), fill)
        else:
            shamt = fill * word
        placed = Signal(8 * self.lanes)
        m.d.comb += placed.eq((incoming << shamt)[:8 * self.lanes])
        with m.If(leave):
            m.d.sync += [full.eq(0), count.eq(0), buf.eq(0)]
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [buf.eq(Mux(leave, 0, buf) | placed), count.eq(fill + 1)]
            with m.If(self.i.payload.last | (fill == slots - 1)):
                m.d.sync += [full.eq(1), last.eq(self.i.payload.last)]
        return m


class BeatUnpacker(wiring.Component):
    """``act`` beats of ``lanes`` int8 -> one int8 element per beat, vectors of ``k_terms`` elements.

    Parameters
    ----------
    act : data.StructLayout
        Layout with ``data`` (array of ``lanes`` signed 8) and ``last``
        (``rtl.tile_controller.act_beat_layout``).
    elem : data.StructLayout
        Layout with ``data`` (signed 8) and ``last`` (``rtl.digital.x_beat_layout``).
    k_bits : int
        Width of ``k_terms``.

    Members
    -------
    i : In(stream.Signature(act))
        A vector is ``ceil(K / lanes)`` beats; lane ``l`` of beat ``b`` is element
        ``b * lanes + l``; lanes at or beyond K are ignored. The beat's ``last`` is
        not used (the count decides).
    o : Out(stream.Signature(elem))
        Elements in order, ``last`` on element ``K - 1`` of every vector.
    k_terms : In(k_bits)
        Configuration: K, elements per vector (>= 1).

    Combinational (0 cycles latency); throughput one element per cycle.
    """

    def __init__(self, act: data.StructLayout, elem: data.StructLayout, k_bits: int):
        self.lanes = act["data"].shape.length
        super().__init__({"i": In(stream.Signature(act)), "o": Out(stream.Signature(elem)), "k_terms": In(k_bits)})

    def elaborate(self, platform):
        m = Module()
        lane = Signal(range(max(2, self.lanes)))
        k = Signal.like(self.k_terms)
        k_last = Signal()
        beat_end = Signal()
        m.d.comb += [k_last.eq(k + 1 >= self.k_terms), beat_end.eq(k_last | (lane == self.lanes - 1))]
        with m.Switch(lane):
            for j in range(self.lanes):
                with m.Case(j):
                    m.d.comb += self.o.payload.data.eq(self.i.payload.data[j])
        m.d.comb += [self.o.valid.eq(self.i.valid), self.o.payload.last.eq(k_last),
                     self.i.ready.eq(self.o.ready & beat_end)]
        with m.If(self.o.valid & self.o.ready):
            m.d.sync += [k.eq(Mux(k_last, 0, k + 1)), lane.eq(Mux(beat_end, 0, lane + 1))]
        return m


class DestFanout(wiring.Component):
    """Beats of a vector -> (beat, destination) pairs, by per-destination beat ranges.

    Parameters
    ----------
    beat : data.StructLayout
        Beat layout with a ``last`` field (end of vector).
    x_bits, y_bits : int
        Destination field widths.
    entries : int
        Destination entries ``E`` (>= 1).
    beat_bits : int
        Width of the beat-range fields.

    Members
    -------
    i : In(stream.Signature(beat))
    o : Out(stream.Signature(beat))
        Beat ``b`` of a vector (counted from the input's ``last``) leaves once for
        every entry ``e`` with ``en[e]`` and ``lo[e] <= b`` and (``hi[e] == 0`` or
        ``b < hi[e]``), entries in order, with ``dest_x``/``dest_y``/``chan`` of that
        entry; its ``last`` is ``b == hi[e] - 1`` (``hi[e] == 0``: the input's ``last``).
        A beat no entry wants is dropped.
    dest_x, dest_y, dest_chan : Out
        Destination of the beat on ``o`` (valid with it).
    x, y, chan, lo, hi, en : In, arrays of ``E``
        Configuration (``en[0]`` is tied on by :mod:`rtl.top`); ``lo`` / ``hi`` stable from one cycle before a
        vector's first beat (the range flags are flip-flops).

    Combinational (0 cycles); throughput one output beat per cycle.
    """

    def __init__(self, beat: data.StructLayout, x_bits: int, y_bits: int, entries: int, beat_bits: int = 8):
        self.entries = entries
        members = {"i": In(stream.Signature(beat)), "o": Out(stream.Signature(beat)),
                   "dest_x": Out(x_bits), "dest_y": Out(y_bits), "dest_chan": Out(1)}
        for name, w in (("x", x_bits), ("y", y_bits), ("chan", 1), ("lo", beat_bits), ("hi", beat_bits), ("en", 1)):
            members[name] = In(w).array(entries)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        E = self.entries
        b = Signal.like(self.lo[0])
        phase = Signal(range(max(2, E)))
        # per entry "beat b is in range" and "beat b ends the range" (b == hi - 1) as flip-flops, computed from
        # b's next value (issue 19: b -> range compares -> entry pick -> destination multiplexer -> slice was the
        # worst in-context path, 15.7 ns); the candidates (held, + 1, 0) are compared in parallel. Not reset:
        # during reset they take b = 0, so they are right from the first cycle after it; a changed lo / hi
        # reaches them one cycle later (configuration is written long before a run's first beat).
        # b + 1 and (b + 1 mod 2**w) + 1 are flip-flops kept beside b (issue 19, sixth stop: no adder in front of
        # the compares; same values)
        b1 = Signal(len(b) + 1, init=1, name="b_plus1")
        b2 = Signal(len(b) + 1, init=2, name="b_plus2")
        b_inc = Signal.like(b)
        m.d.comb += b_inc.eq(b1[:len(b)])
        at_end = [Signal(name=f"at_end{e}", reset_less=True) for e in range(E)]
        # the current entry: the first wanted entry at or after `phase`
        cur = Signal(range(max(2, E)))
        found = Signal()
        cand = [Signal(name=f"cand{e}") for e in range(E)]   # wanted, at or after `phase`
        # "in range and at or after `phase`" per entry as a flip-flop (issue 19, seventh stop: phase / in-range flags ->
        # candidates -> found / more -> the input's ready was the front of the 10.5 ns paths into the result
        # packer's register and these flags): its next value is "beat b is in range" of b's next value with `phase`'s
        # (0 after the beat leaves or during reset, cur + 1 when a copy is taken and more follow, else held);
        # `en` stays combinational (a changed `en` acts at once, as before)
        ranged = [Signal(name=f"ranged{e}", reset_less=True) for e in range(E)]
        for e in range(E):
            m.d.comb += cand[e].eq(self.en[e] & ranged[e])

        def at_or_after(ph, e):  # (constant comparisons folded here: no CMPCONST in lint)
            return (ph == 0) if e == 0 else (Const(1) if e == E - 1 else ph <= e)

        def flags(v, v1, e, ph_ok=1):     # v1 = v + 1
            r = (v >= self.lo[e]) & ((self.hi[e] == 0) | (v < self.hi[e]))
            return [ranged[e].eq(r & ph_ok), at_end[e].eq(v1 == self.hi[e])]

        step = Signal()   # the input beat leaves this cycle (below)
        for e in range(E):
            with m.If(ResetSignal() | (step & self.i.payload.last)):
                m.d.sync += flags(Const(0, len(b)), Const(1, len(b1)), e)
            with m.Elif(step):
                m.d.sync += flags(b_inc, b2, e)
            with m.Elif(self.i.valid & self.o.ready):     # a copy taken, more follow: phase <- cur + 1
                m.d.sync += flags(b, b1, e, (cur < e) if 0 < e < E - 1 else Const(e > 0))
            with m.Else():
                m.d.sync += flags(b, b1, e, at_or_after(phase, e))
        with m.If(step):
            with m.If(self.i.payload.last):
                m.d.sync += [b1.eq(1), b2.eq(2)]
            with m.Else():
                m.d.sync += [b1.eq(b2), b2.eq(b2[:len(b)] + 1)]
        for e in reversed(range(E)):
            with m.If(cand[e]):
                m.d.comb += [cur.eq(e), found.eq(1)]
        # a wanted entry after `cur` (the first candidate) <=> two candidates or more: from the candidates
        # directly, beside the priority logic (not a compare with `cur` after it)
        more = Signal()
        m.d.comb += more.eq(_any([cand[a] & cand[b] for a in range(E) for b in range(a + 1, E)]))
        m.d.comb += [self.o.payload.eq(self.i.payload), self.o.valid.eq(self.i.valid & found)]
        with m.Switch(cur):
            for e in range(E):
                with m.Case(e):
                    m.d.comb += [self.dest_x.eq(self.x[e]), self.dest_y.eq(self.y[e]), self.dest_chan.eq(self.chan[e]),
                                 self.o.payload.last.eq(Mux(self.hi[e] == 0, self.i.payload.last, at_end[e]))]
        done = Signal()  # the input beat leaves this cycle (last copy accepted, or dropped)
        m.d.comb += [done.eq(Mux(found, self.o.ready & ~more, 1)), self.i.ready.eq(done),
                     step.eq(self.i.valid & done)]
        with m.If(self.i.valid):
            with m.If(done):
                m.d.sync += [phase.eq(0), b.eq(Mux(self.i.payload.last, 0, b_inc))]
            with m.Elif(self.o.ready):
                m.d.sync += phase.eq(cur + 1)
        return m


def _any(terms):
    """OR of a list of 1-bit values (0 when empty)."""
    out = Const(0, 1)
    for t in terms:
        out = out | t
    return out


def tagged_layout(act: data.StructLayout, src_bits: int) -> data.StructLayout:
    """An ``act`` beat with a source tag: ``data``, ``last`` (same bit offsets as ``act``), ``src``.

    The packet payload on the activation mesh (:mod:`rtl.top`): a receiver that
    wants only the ``act`` beat reads the low ``act`` bits; ``src`` sits in the
    otherwise unused bits of the packet's last flit when there are enough of them.
    """
    return data.StructLayout({"data": act["data"].shape, "last": act["last"].shape, "src": unsigned(src_bits)})


class SourceMerge(wiring.Component):
    """Per-source queues and an in-order merge: tagged ``act`` beats -> one int8 element per beat.

    Parameters
    ----------
    tagged : data.StructLayout
        :func:`tagged_layout` of the ``act`` beat.
    elem : data.StructLayout
        Layout with ``data`` (signed 8) and ``last`` (``rtl.digital.x_beat_layout``).
    queues : int
        Queues ``Q`` (>= 1), one per source of a vector.
    depth : int
        Beats each queue holds.
    elem_bits : int
        Width of the ``elems`` configuration.

    Members
    -------
    i : In(stream.Signature(tagged))
        Beats from any source; a beat goes to the first enabled queue whose ``src``
        matches its tag (a beat no queue takes is dropped and flags ``err_src``).
        Accepted whenever that queue has room.
    o : Out(stream.Signature(elem))
        The vector of layer slot ``slot``: the ``elems[q]`` first elements of each
        enabled queue ``q`` with ``slot[q] == slot``, queues in index order (a queue's
        vector starts on a fresh beat; lanes beyond ``elems[q]`` in its last beat are
        padding and dropped); ``last`` on the vector's final element.
    slot : In(1)
        The consumer's current layer slot.
    q_src, q_slot, q_elems, q_en : In, arrays of ``Q``
        Configuration per queue: source tag, layer slot, elements per vector, enabled. The merge's flags
        (``q_elems``: end of vector; ``q_slot``, ``q_en``: the queue pick) are flip-flops computed one cycle
        ahead, so a change reaches the merge one cycle later (configuration is written before a run).
    err_src : Out(1)
        A beat matched no queue (level while such a beat is dropped).

    Latency: ``archmodel.timing.SOURCE_MERGE_CYCLES`` = 4 cycles from an accepted beat to its first
    element (an input :class:`StreamSlice`, 1 cycle: ``i.ready`` is a flip-flop; the queue, an
    ``amaranth.lib.fifo.SyncFIFOBuffered``, 2 cycles; a :class:`StreamSlice` after it, 1: the merge starts
    from flip-flops); the merge is combinational; throughput one element per cycle. A queue holds
    ``depth + 2`` beats (its head slice's two), the input slice two more beats of any queue (a beat whose
    queue is full waits there and holds the link, as it held it at the queue before).
    """

    def __init__(self, tagged: data.StructLayout, elem: data.StructLayout, queues: int, depth: int, elem_bits: int):
        self.lanes = tagged["data"].shape.length
        self.queues, self.depth = queues, depth
        self.act_bits = Shape.cast(tagged).width - Shape.cast(tagged["src"].shape).width
        src_bits = Shape.cast(tagged["src"].shape).width
        super().__init__({"i": In(stream.Signature(tagged)), "o": Out(stream.Signature(elem)), "slot": In(1),
                          "q_src": In(src_bits).array(queues), "q_slot": In(1).array(queues),
                          "q_elems": In(elem_bits).array(queues), "q_en": In(1).array(queues),
                          "err_src": Out(1)})

    def elaborate(self, platform):
        from amaranth.lib.fifo import SyncFIFOBuffered

        m = Module()
        Q, lanes = self.queues, self.lanes
        fifos, heads = [], []
        for q in range(Q):
            f = m.submodules[f"q{q}"] = SyncFIFOBuffered(width=self.act_bits, depth=self.depth)
            # a register slice after each queue's block RAM: the merge multiplexers start from flip-flops, not
            # from the RAM's slow clock-to-out (issue 19: RAM -> merge -> datapath input was 15.7 ns in context)
            # (ping-pong: the merge's pop drives a pointer, not the enables of 64 payload bits; issue 19, the pop
            # into the head enables stayed the worst in-context path after the fifth stop's other changes)
            h = m.submodules[f"q{q}_head"] = StreamSlice(self.act_bits, ping_pong=True)
            m.d.comb += [h.i.payload.eq(f.r_data), h.i.valid.eq(f.r_rdy), f.r_en.eq(h.i.ready)]
            fifos.append(f)
            heads.append(h.o)
        # ---- input slice, then demultiplex by source tag (issue 19: the queue pick by the beat's tag, into the
        # picked queue's room, was the end of the I/O router's ready chain -- merge configuration -> tag compare
        # -> ready -> the router's arbiter -> its input buffer's enables, 12.6 ns in context; the link's ready is
        # now the slice's flip-flop)
        isl = m.submodules.in_slice = StreamSlice(self.i.payload.shape())
        wiring.connect(m, wiring.flipped(self.i), isl.i)
        beat = isl.o
        match = [Signal(name=f"match{q}") for q in range(Q)]
        for q in range(Q):
            m.d.comb += match[q].eq(self.q_en[q] & (beat.payload.src == self.q_src[q]))
        taken = Signal()
        for q in reversed(range(Q)):
            earlier = Cat(*match[:q]).any() if q else Const(0)
            m.d.comb += [fifos[q].w_data.eq(beat.payload.as_value()[:self.act_bits]),
                         fifos[q].w_en.eq(beat.valid & match[q] & ~earlier)]
            with m.If(match[q] & ~earlier):
                m.d.comb += [beat.ready.eq(fifos[q].w_rdy), taken.eq(1)]
        with m.If(~Cat(*match).any()):
            m.d.comb += beat.ready.eq(1)
        m.d.comb += self.err_src.eq(beat.valid & ~Cat(*match).any())
        # ---- in-order merge for the consumer's slot
        qi = Signal(range(max(2, Q)))            # queue being read (the first wanted at or after it)
        e = Signal.like(self.q_elems[0])         # element within the queue's vector
        lane = Signal(range(max(2, lanes)))
        # the queue pick (``cur``: the first queue at or after ``qi`` that the slot wants; ``found``; ``more``: a
        # wanted queue after it) as flip-flops, one set per value of ``slot``, computed from ``qi``'s next value
        # (issue 19, seventh stop: slot -> want -> priority pick -> byte / valid multiplexers was the front of
        # the merge's 10.4-10.6 ns paths into the datapath's input slice and into its own state); ``slot``
        # then picks between two registered sets. The two next values of ``qi`` (held, or the segment end's
        # ``more ? cur + 1 : 0``) are evaluated in parallel and picked by ``fire & seg_last``; a changed
        # ``q_en`` / ``q_slot`` reaches the pick one cycle later (configuration is written before a run).
        cur = Signal(range(max(2, Q)))
        found = Signal()
        more = Signal()
        qi_seg = Signal.like(qi)                  # qi after a segment end
        seg_end = Signal()                        # a queue's segment ends this cycle (fire & seg_last)

        def pick(qv, s):
            """(cur, found, more) for queue index ``qv`` and slot value ``s`` (a Python int)."""
            want = [self.q_en[q] & (self.q_slot[q] == s) for q in range(Q)]
            c, f, mo = Signal.like(cur), Signal(), Signal()
            for q in reversed(range(Q)):
                at_or_after = (qv == 0) if q == 0 else (Const(1) if q == Q - 1 else qv <= q)
                with m.If(at_or_after & want[q]):
                    m.d.comb += [c.eq(q), f.eq(1)]
            for q in range(1, Q):
                with m.If((c < q) & want[q]):
                    m.d.comb += mo.eq(1)
            return c, f, mo

        regs = []
        for s in (0, 1):
            r = (Signal.like(cur, name=f"cur_s{s}"), Signal(name=f"found_s{s}"), Signal(name=f"more_s{s}"))
            regs.append(r)
            held, seg = pick(qi, s), pick(qi_seg, s)
            for k in range(3):
                m.d.sync += r[k].eq(Mux(seg_end, seg[k], held[k]))
        m.d.comb += [cur.eq(Mux(self.slot, regs[1][0], regs[0][0])), found.eq(Mux(self.slot, regs[1][1], regs[0][1])),
                     more.eq(Mux(self.slot, regs[1][2], regs[0][2]))]
        seg_last = Signal()
        beat_end = Signal()
        r_valid = Signal()
        # "the element ends queue q's vector" (e + 1 >= elems[q]) for every queue and "the element is a beat's
        # last lane" (lane == lanes - 1) are flip-flops, computed one element ahead from the counters' next
        # values (issue 19: counter -> compare -> head pop -> 64 enables was the worst in-context path,
        # 16.6 ns); the pop is then a multiplexer of flip-flops. The three next values of e (held, + 1, 0)
        # are compared in parallel and picked by fire / seg_last. A changed q_elems reaches ends one cycle
        # later (configuration is written long before the first element of a run arrives).
        ends = [Signal(name=f"ends{q}") for q in range(Q)]
        lane_last = Signal(name="lane_last", init=int(lanes == 1))
        byte = [Signal(8, name=f"byte{q}") for q in range(Q)]  # lane `lane` of each queue's head
        for q in range(Q):
            with m.Switch(lane):
                for j in range(lanes):
                    with m.Case(j):
                        m.d.comb += byte[q].eq(heads[q].payload[8 * j:8 * j + 8])
        with m.Switch(cur):
            for q in range(Q):
                with m.Case(q):
                    m.d.comb += [r_valid.eq(heads[q].valid), self.o.payload.data.eq(byte[q]),
                                 seg_last.eq(ends[q])]
        m.d.comb += beat_end.eq(seg_last | lane_last)
        m.d.comb += [self.o.valid.eq(found & r_valid), self.o.payload.last.eq(seg_last & ~more)]
        fire = self.o.valid & self.o.ready
        m.d.comb += [seg_end.eq(fire & seg_last), qi_seg.eq(Mux(more, cur + 1, 0))]
        for q in range(Q):
            m.d.comb += heads[q].ready.eq(fire & beat_end & (cur == q))
        lane_next = Signal.like(lane)
        m.d.comb += lane_next.eq(lane)
        for q in range(Q):
            m.d.sync += ends[q].eq(e + 1 >= self.q_elems[q])
        with m.If(fire):
            with m.If(seg_last):
                m.d.comb += lane_next.eq(0)
                m.d.sync += [e.eq(0), qi.eq(qi_seg)]
                m.d.sync += [ends[q].eq(1 >= self.q_elems[q]) for q in range(Q)]
            with m.Else():
                m.d.comb += lane_next.eq(Mux(beat_end, 0, lane + 1))
                m.d.sync += e.eq(e + 1)
                m.d.sync += [ends[q].eq(e + 2 >= self.q_elems[q]) for q in range(Q)]
        m.d.sync += [lane.eq(lane_next), lane_last.eq(lane_next == lanes - 1)]
        return m
