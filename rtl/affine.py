"""Affine / normalization unit: partial sums -> scale, offset, ReLU, requantize -> int8.

Contract: :func:`archmodel.golden.affine.accumulate_partial_sums` and
:func:`archmodel.golden.affine.affine_requantize` (bit for bit), per column ``j``::

    p_j = sum over row blocks of the ADC codes          (exact, acc_bits)
    y   = p_j * scale_j + offset_j                      (exact)
    y   = max(y, 0)                                     if relu
    out = saturate(round_shift(y, shift), 8)

Micro-architecture
------------------
::

    col_in ──► [ACC] ──(last row block)──► [FIFO] ──► [SER] ──(+ psum_in)──┬──► psum_out   (chain_out)
                 ▲ │ (other row blocks)                                     └──► [REQUANT] ──► out
                 └─┘ accumulator memory

- **ACC** (1 cycle): one beat of ``cols_per_adc_beat`` ADC codes per cycle,
  read-modify-write of an accumulator memory (:class:`~amaranth.lib.memory.Memory`,
  one word = one column group, ``max_cols / cols_per_adc_beat`` words). The
  first row block overwrites (no clearing pass); the final row block does not
  write back: its sums go to the FIFO.
- **FIFO** (``_ShiftOutFIFO``: cycle for cycle an :class:`~amaranth.lib.fifo.SyncFIFOBuffered`
  whose output register also shifts a group's sums down one slot at a time; one column block of
  column groups): decouples the wide accumulation (one ADC beat per cycle,
  so the tile controller meets ``mvm_cycles``) from the ``L``-columns-per-cycle
  requantization; the next column block's MVMs overlap the emission of this one.
- **SER**: emits the FIFO's column groups ``L = periphery.affine_lanes`` columns
  per cycle, in column order: slot ``s`` of a group carries its columns
  ``s*L .. s*L + L - 1``, read at the output register's lanes 0 .. L-1 after
  ``s`` shifts (``L`` is a power of two dividing ``cols_per_adc_beat``,
  rtl/params.py), so only a group's final slot can be partial (``count < L``).
- **SKID** (zero latency): the join's beat goes to the downstream (``psum_out`` or the requantizer)
  directly, or, when the downstream is not ready, into a skid register that offers it from the next cycle;
  the serializer advances whenever the skid is empty, so its enables hang off flip-flops, not off the
  downstream ready (issue 19, stop 17). The downstream sees the same beats at the same cycles.
- **Chain** (partial sums of row blocks held by other tiles): with
  ``chain_in`` set, every slot waits for one ``psum_in`` beat (``L`` sums) and
  adds its values (the upstream tile has the same lanes and sends its slots in
  the same order, so the join is a plain stream join; a first-column mismatch
  sets ``err_chain``). With
  ``chain_out`` set, the sums leave on ``psum_out`` instead of being
  requantized (a non-home tile of a layer). A layer whose row blocks span
  several tiles is a chain of tiles ending at its home tile; the sum over the
  whole chain must fit ``acc_bits`` (``TileParams.max_chained_row_blocks``),
  as in the golden model.
- **REQUANT** (:class:`Requantizer`, 6 cycles, ``L`` lanes with a multiplier
  each and the coefficient memory in ``L`` banks): coefficient-memory read,
  coefficient register, multiply, add offset, barrel shift, then round +
  saturate + ReLU. One operation per stage, so the unit reaches 128 MHz on an
  ECP5 LFE5U-85F (``aimc fpga --arch tiny``; it was 77 MHz with 3 stages); the three extra stages
  cost latency only.

Latency: the REQUANT pipeline (column in -> int8 out) is 6 cycles (the chip
description's ``periphery.affine_latency_cycles`` must say so: archmodel.timing.AFFINE_LATENCY_CYCLES). From the
``col_in`` beat of the final row block to the first result on ``out``: 9
cycles (ACC 1 + FIFO 2 + REQUANT 6); the following slots of that beat
follow one per cycle. Throughput: one ``col_in`` beat per cycle (while the
FIFO has room), one result beat of ``L`` columns per cycle.

Result and partial-sum beats carry ``L`` columns (:func:`result_layout`,
:func:`psum_layout`: ``column`` = the first, ``count`` = valid lanes; with
``L = 1`` the one-column layouts of before). They are not serialized back to
one column per cycle: :class:`rtl.axis.ResultPacker` packs whole beats into
the next tile's ``act`` beats (``L`` divides ``rows_per_dac_beat``).

Trade-off (for the mapper): a column block of ``cols_used`` columns occupies
the output for ``ceil(cols_used / L)`` cycles (:func:`archmodel.timing.affine_cycles`).
The FIFO holds one column block, so this overlaps the next column block's
MVMs; the tile stalls (back-pressure on ``adc``) only when
``ceil(cols_used / L) > n_row_blocks * mvm_cycles`` in steady state (e.g. one
row block of 32 columns on the tiny preset with ``L = 1``: 32 > 16 cycles;
with ``L = 4``: 8 < 16). Each lane costs a multiplier (DSP) and its share of
the pipeline registers.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from archmodel import timing
from rtl.axis import StreamSlice
from rtl.fixed import relu as relu_fn
from rtl.fixed import round_shift_start
from rtl.params import ACT_BITS, TileParams
from rtl.tile_controller import column_beat_layout, index_shape

__all__ = ["NO_RW_CHECK", "AffineUnit", "Requantizer", "lane_count_shape", "psum_layout", "result_layout", "round_saturate"]


def lane_count_shape(lanes: int) -> unsigned:
    """Shape of a beat's ``count`` field (valid lanes, ``1 .. lanes``)."""
    return unsigned(lanes.bit_length())


def psum_layout(p: TileParams) -> data.StructLayout:
    """Partial-sum beat (mesh chain), ``p.affine_lanes`` columns per beat.

    One lane: ``column``, ``value`` (signed ``acc_bits``), ``last`` (final column of the
    vector). ``L > 1`` lanes: ``column`` (the first, a multiple of ``L``), ``value`` (array of
    ``L`` signed ``acc_bits``), ``count`` (valid lanes, ``1 .. L``; fewer only on a column
    group's final beat), ``last``.
    """
    lanes = p.affine_lanes
    if lanes == 1:
        return data.StructLayout({"column": index_shape(p.max_cols), "value": signed(p.acc_bits), "last": unsigned(1)})
    return data.StructLayout({
        "column": index_shape(p.max_cols),
        "value": data.ArrayLayout(signed(p.acc_bits), lanes),
        "count": lane_count_shape(lanes),
        "last": unsigned(1),
    })


def result_layout(index_shape_: unsigned, lanes: int = 1) -> data.StructLayout:
    """Result beat of ``lanes`` int8 results.

    One lane: ``column`` (or channel), ``data`` (int8), ``last`` (final of the vector).
    ``lanes > 1``: ``column`` (the first, a multiple of ``lanes``), ``data`` (array of
    ``lanes`` int8), ``count`` (valid lanes, ``1 .. lanes``), ``last``.
    """
    if lanes == 1:
        return data.StructLayout({"column": index_shape_, "data": signed(ACT_BITS), "last": unsigned(1)})
    return data.StructLayout({
        "column": index_shape_,
        "data": data.ArrayLayout(signed(ACT_BITS), lanes),
        "count": lane_count_shape(lanes),
        "last": unsigned(1),
    })


def round_saturate(floored, bits: int):
    """``saturate(round_shift_finish(floored, w), bits)`` (:mod:`rtl.fixed`) with a narrow adder.

    ``round_shift_finish`` is ``floor((floored + 1) / 2)``; it lies in the signed ``bits``-bit range
    exactly when ``-2**bits - 1 <= floored <= 2**bits - 2`` (``-257 .. 254`` for int8): then only
    ``floored``'s low ``bits + 2`` bits matter, and the ``+ 1`` is a ``bits + 3``-bit add. The range
    is decided beside it by a reduction of ``floored``'s high bits (all equal: it fits ``bits + 2``
    bits) and two ``bits + 2``-bit constant compares; out of range, the sign picks the end. Same
    result for every ``floored`` as the full-width add followed by saturate (``tests/test_rtl_affine.py``
    checks every value around both ends), but no carry chain as wide as the sum (49 bits on the
    digital datapath) in front of the saturation (stage 6 of :class:`Requantizer`, for Fmax).

    Parameters
    ----------
    floored : signed Value
        :func:`rtl.fixed.round_shift_start`'s result.
    bits : int
        Output width, >= 2.

    Returns
    -------
    signed Value, ``bits`` bits

    Raises
    ------
    TypeError
        ``floored`` is not signed.
    """
    floored = Value.cast(floored)
    if not floored.shape().signed:
        raise TypeError(f"round_saturate needs a signed value, got {floored.shape()!r}")
    nb = bits + 2
    if len(floored) <= nb:
        fits, x = Const(1, 1), floored
    else:
        top = floored[nb - 1:]
        fits = (top == 0) | (top == (1 << len(top)) - 1)
        x = floored[:nb].as_signed()
    in_range = fits & (x >= -(1 << bits) - 1) & (x <= (1 << bits) - 2)
    rounded = ((x + 1) >> 1)[:bits].as_signed()
    lo = Const(-(1 << (bits - 1)), signed(bits))
    hi = Const((1 << (bits - 1)) - 1, signed(bits))
    return Mux(in_range, rounded, Mux(floored[-1], lo, hi)).as_signed()[:bits].as_signed()


#: Memory attribute for yosys: no read-during-write emulation between a memory's ports (``no_rw_check``), for memories
#: whose users never read a word in the cycle it is written, or ignore what such a read returns (issue 19, sixth stop:
#: the emulation compares the read and write addresses into a flip-flop and bypasses the write data, in fabric behind
#: every block RAM). Simulation is unchanged (Amaranth keeps its read-before-write order).
NO_RW_CHECK = {"no_rw_check": 1}

#: Value bits per partial product of the requantizer's multiply when the value is wider than one 18 x 18 DSP
#: multiplier takes (an ECP5 MULT18X18D): the low 16 bits (unsigned, 17 signed) and the rest.
SPLIT_BITS = 16


class Requantizer(wiring.Component):
    """Per-column ``saturate(round_shift(relu?(value*scale + offset), shift), 8)`` pipeline, ``lanes`` columns a beat.

    Shared by :class:`AffineUnit` and :class:`rtl.digital.DigitalDatapath`.
    Python reference: :func:`archmodel.golden.affine.affine_requantize`.

    Parameters
    ----------
    value_bits : int
        Signed width of the incoming sums (``acc_bits``).
    scale_bits, offset_bits : int
        Signed widths of the coefficients.
    depth : int
        Coefficient-memory entries (columns / channels).
    lanes : int
        Columns per beat (``periphery.affine_lanes``), a power of two, 1..64; the
        coefficient memory is split into ``lanes`` banks (column ``c`` in bank
        ``c % lanes`` at ``c // lanes``), so a beat reads ``lanes`` coefficients at once.

    Members
    -------
    i : In(stream.Signature({column: unsigned(ceil(log2(depth))), value, [count,] last: 1}))
        One lane: one sum per beat, ``value`` signed ``value_bits``. ``lanes > 1``:
        ``value`` is an array of ``lanes`` sums of columns ``column .. column + lanes - 1``
        (``column`` a multiple of ``lanes``), ``count`` the valid lanes (passed through;
        lanes at or beyond it are computed and ignored).
    o : Out(stream.Signature(result_layout(..., lanes)))
        int8 results, ``column``, ``count`` and ``last`` passed through.
    coef_addr : In(unsigned(ceil(log2(depth))))
    coef_scale : In(signed(scale_bits))
        Scale with ``shift`` fractional bits.
    coef_offset : In(signed(offset_bits))
        Offset in output LSBs with ``shift`` fractional bits.
    coef_we : In(1)
        Write ``(coef_scale, coef_offset)`` of column ``coef_addr`` (one cycle; do it while idle).
    shift : In(range(value_bits + scale_bits))
        Right shift of the layer, ``0 .. value_bits + scale_bits - 1``; registered on entry (set it at
        least one cycle before the layer's first sum, as every configuration).
    relu : In(1)
        Apply ReLU; registered on entry, as ``shift``.
    busy : Out(1)
        A result is in the pipeline.
    ready_next : Out(1)
        The value ``i.ready`` takes in the next cycle (a function of this cycle's flip-flops and ``o.ready``), so a
        producer can hold its own stall decision in a flip-flop (:class:`rtl.digital.DigitalDatapath`'s ``adv``;
        issue 19, sixth stop).
    busy_next : Out(1)
        The value ``busy`` takes in the next cycle (this cycle's flip-flops, ``i.valid`` and ``o.ready``), likewise
        (the digital datapath's "drained").

    Latency 6 cycles (``i`` accepted in cycle t -> ``o.valid`` in cycle t+6):
    (1) coefficient-memory read, (2) coefficients registered (a block RAM's
    clock-to-out stays out of the multiplier), (3) product, (4) plus offset,
    (5) barrel shift (:func:`~rtl.fixed.round_shift_start`), (6) round,
    saturate and ReLU (:func:`round_saturate`: a narrow round beside a range check); ReLU last gives
    the same int8 as ReLU first. Throughput one beat (``lanes`` results) per
    cycle; a stalled ``o`` stalls the whole pipeline (one enable) once a second
    result waits in the two-beat output FIFO (two registers used in turn, ``o`` the one read next), so the
    enable comes from a flip-flop, not from ``o.ready`` (in context the ready path
    from downstream ends here). Each lane has its own multiplier.

    Raises
    ------
    ValueError
        If a width is out of range, the sum is wider than 64 bits, or ``lanes``
        is not a power of two in 1..64.
    """

    #: Pipeline depth (the stages written out in :meth:`elaborate`), the one figure of the cycle model.
    LATENCY = timing.AFFINE_LATENCY_CYCLES

    def __init__(self, *, value_bits: int, scale_bits: int, offset_bits: int, depth: int, lanes: int = 1):
        for name, v, lo, hi in (("value_bits", value_bits, 2, 63), ("scale_bits", scale_bits, 2, 63),
                                ("offset_bits", offset_bits, 2, 63), ("depth", depth, 1, 1 << 24)):
            if not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"Requantizer: {name} must be an integer in [{lo}, {hi}], got {v!r}")
        if max(value_bits + scale_bits, offset_bits) + 1 > 64:
            raise ValueError("Requantizer: max(value_bits + scale_bits, offset_bits) + 1 exceeds 64 bits")
        if not isinstance(lanes, int) or not 1 <= lanes <= 64 or lanes & (lanes - 1):
            raise ValueError(f"Requantizer: lanes must be a power of two in [1, 64], got {lanes!r}")
        self.value_bits, self.scale_bits, self.offset_bits, self.depth = value_bits, scale_bits, offset_bits, depth
        self.lanes = lanes
        idx = index_shape(depth)
        fields = {"column": idx,
                  "value": signed(value_bits) if lanes == 1 else data.ArrayLayout(signed(value_bits), lanes)}
        if lanes > 1:
            fields["count"] = lane_count_shape(lanes)
        fields["last"] = unsigned(1)
        super().__init__({
            "i": In(stream.Signature(data.StructLayout(fields))),
            "o": Out(stream.Signature(result_layout(idx, lanes))),
            "coef_addr": In(idx),
            "coef_scale": In(signed(scale_bits)),
            "coef_offset": In(signed(offset_bits)),
            "coef_we": In(1),
            "shift": In(range(value_bits + scale_bits)),
            "relu": In(1),
            "busy": Out(1),
            "ready_next": Out(1),
            "busy_next": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        L = self.lanes
        lb = L.bit_length() - 1                  # log2(lanes)
        coef_layout = data.StructLayout({"scale": signed(self.scale_bits), "offset": signed(self.offset_bits)})
        bank_depth = -(-self.depth // L)
        rps = []
        for k in range(L):
            # no_rw_check (yosys): coefficients are written while the unit is idle, so a read never meets a write of
            # its word; without it yosys emulates the read-before-write order of the two block-RAM ports in fabric
            # (an address compare of the read and write ports into a flip-flop: 11.5 ns in context, issue 19)
            mem = Memory(shape=coef_layout, depth=bank_depth, init=[], attrs=NO_RW_CHECK)
            m.submodules["coef" if L == 1 else f"coef{k}"] = mem
            wp, rp = mem.write_port(), mem.read_port()
            bank_hit = 1 if L == 1 else (self.coef_addr[:lb] == k)
            m.d.comb += [
                wp.addr.eq(self.coef_addr >> lb),
                wp.data.scale.eq(self.coef_scale),
                wp.data.offset.eq(self.coef_offset),
                wp.en.eq(self.coef_we & bank_hit),
            ]
            rps.append(rp)

        # shift and relu registered here (sampled every cycle): in context they come from configuration
        # flip-flops across the chip, and shift steers a barrel shifter as wide as the sum (a layer's
        # configuration is written while the pipeline is idle, so a cycle's delay changes no result)
        shift_r = Signal.like(self.shift, name="shift_r")
        self._relu_r = Signal(name="relu_r")
        m.d.sync += [shift_r.eq(self.shift), self._relu_r.eq(self.relu)]

        # One enable for the whole pipeline: every stage moves when the output
        # register is free or taken (a stalled ``o`` stalls all stages).
        # ``advance`` is a register's output (the output FIFO's second entry is free), never ``o.ready``:
        # in context the ready path from downstream ends at the FIFO (see the output FIFO below)
        advance = Signal()
        m.d.comb += self.i.ready.eq(advance)
        w_out = Signal(self.o.payload.shape())     # stage 6 result, into the output FIFO

        def lane_of(view, name, k):
            return getattr(view, name) if L == 1 else getattr(view, name)[k]

        n = self.LATENCY - 1                     # stages before the output register
        valid = [Signal(name=f"v{k}") for k in range(1, n + 1)]
        column = [Signal.like(self.i.payload.column, name=f"col{k}") for k in range(1, n + 1)]
        last = [Signal(name=f"last{k}") for k in range(1, n + 1)]
        count = [Signal(lane_count_shape(L), name=f"count{k}") for k in range(1, n + 1)] if L > 1 else []
        sum_bits = max(self.value_bits + self.scale_bits, self.offset_bits) + 1
        for rp in rps:
            m.d.comb += [rp.addr.eq(self.i.payload.column >> lb), rp.en.eq(advance)]
        data_stages = ()
        f5s = []
        with m.If(advance):
            # column, count, last and valid travel along the stages
            m.d.sync += [valid[0].eq(self.i.valid), column[0].eq(self.i.payload.column),
                         last[0].eq(self.i.payload.last)]
            for k in range(1, n):
                m.d.sync += [valid[k].eq(valid[k - 1]), column[k].eq(column[k - 1]), last[k].eq(last[k - 1])]
            if L > 1:
                m.d.sync += count[0].eq(self.i.payload.count)
                for k in range(1, n):
                    m.d.sync += count[k].eq(count[k - 1])
            for k, rp in enumerate(rps):
                sfx = "" if L == 1 else f"_{k}"
                val1 = Signal(signed(self.value_bits), name=f"val1{sfx}")
                val2 = Signal(signed(self.value_bits), name=f"val2{sfx}")
                scale2 = Signal(signed(self.scale_bits), name=f"scale2{sfx}")
                offset2 = Signal(signed(self.offset_bits), name=f"offset2{sfx}")
                prod3 = Signal(signed(self.value_bits + self.scale_bits), name=f"prod3{sfx}")
                if self.value_bits > SPLIT_BITS + 1 and self.scale_bits <= SPLIT_BITS + 2:
                    # wider than one 18 x 18 DSP multiplier: two registered partial products (low SPLIT_BITS
                    # bits of the value, unsigned, and the rest, signed), summed with the offset in stage 4, so
                    # no fabric adder follows a multiplier inside stage 3 (same exact product)
                    lo3 = Signal(signed(SPLIT_BITS + 1 + self.scale_bits), name=f"prodlo3{sfx}")
                    hi3 = Signal(signed(self.value_bits - SPLIT_BITS + self.scale_bits), name=f"prodhi3{sfx}")
                    m.d.sync += [lo3.eq(val2[:SPLIT_BITS].as_unsigned() * scale2),
                                 hi3.eq(val2[SPLIT_BITS:].as_signed() * scale2)]
                    prod_sum, stage3 = (hi3 << SPLIT_BITS) + lo3, hi3
                else:
                    m.d.sync += prod3.eq(val2 * scale2)
                    prod_sum, stage3 = prod3, prod3
                offset3 = Signal(signed(self.offset_bits), name=f"offset3{sfx}")
                y4 = Signal(signed(sum_bits), name=f"y4{sfx}")
                f5 = Signal(signed(sum_bits + 1), name=f"f5{sfx}")
                m.d.sync += [
                    # 1: coefficient-memory read (the read port's register), sum registered
                    val1.eq(lane_of(self.i.payload, "value", k)),
                    # 2: coefficients registered (a block RAM's clock-to-out stays out of the multiplier)
                    val2.eq(val1), scale2.eq(rp.data.scale), offset2.eq(rp.data.offset),
                    # 3: product (exact)
                    offset3.eq(offset2),
                    # 4: y = value * scale + offset (exact)
                    y4.eq(prod_sum + offset3),
                    # 5: barrel shift, floor(2y / 2**shift)
                    f5.eq(round_shift_start(y4, shift_r)),
                ]
                f5s.append(f5)
                data_stages = (val1, val2, stage3, y4, f5)
        # 6: round, saturate, ReLU -> the output FIFO (its registers are the output). ReLU after rounding
        # and saturation gives the same int8: round_shift and saturate are non-decreasing, map 0 to 0 and
        # negatives to <= 0.
        m.d.comb += [w_out.column.eq(column[-1]), w_out.last.eq(last[-1])]
        if L > 1:
            m.d.comb += w_out.count.eq(count[-1])
        for k, f5 in enumerate(f5s):
            m.d.comb += lane_of(w_out, "data", k).eq(self._relu_int8(round_saturate(f5, ACT_BITS)))
        # output FIFO of two beats, two registers used in turn (rtl.axis.StreamSlice(ping_pong=True), cycle for cycle
        # the FIFO of before: a result leaving stage 6 is on ``o`` the next cycle when the FIFO was empty, so the
        # latency stays LATENCY; a full FIFO stops the pipeline until a result is taken). Issue 19, sixth stop: a read
        # toggles a pointer, so ``o.ready`` (a ready chain through the result packer and the fanout in context)
        # drives four flip-flops instead of choosing every output bit between the tail and stage 6 (10.7 ns)
        m.submodules.ofifo = ofifo = StreamSlice(self.o.payload.shape(), ping_pong=True)
        m.d.comb += [ofifo.i.valid.eq(valid[-1]), ofifo.i.payload.eq(w_out), advance.eq(ofifo.i.ready)]
        wiring.connect(m, ofifo.o, wiring.flipped(self.o))
        # the data registers written out above, plus the output register, must be the pipeline the
        # valid/column/last chain (LATENCY stages) and the cycle model assume
        if len(data_stages) + 1 != timing.AFFINE_LATENCY_CYCLES:
            raise RuntimeError(f"Requantizer: {len(data_stages) + 1} pipeline stages, but "
                               f"archmodel.timing.AFFINE_LATENCY_CYCLES = {timing.AFFINE_LATENCY_CYCLES}")
        # the FIFO's "full" next cycle: cleared when a result is taken, set when one arrives while a result waits and
        # is not taken (rtl.axis.StreamSlice's flags)
        full = ~ofifo.i.ready
        m.d.comb += self.ready_next.eq(~(~(self.o.valid & self.o.ready) & (full | (valid[-1] & self.o.valid))))
        busy = self.o.valid | full
        for v in valid:
            busy = busy | v
        m.d.comb += self.busy.eq(busy)
        # next cycle: the stage flags as they move (one enable), the FIFO's "one entry or more" as the slice sets it
        busy_n = (valid[-1] & ~full) | full | (self.o.valid & ~self.o.ready)
        for k, v in enumerate(valid):
            busy_n = busy_n | Mux(advance, self.i.valid if k == 0 else valid[k - 1], v)
        m.d.comb += self.busy_next.eq(busy_n)
        return m

    def _relu_int8(self, value):
        return Mux(self._relu_r, relu_fn(value), value)


class _ShiftOutFIFO(wiring.Component):
    """:class:`amaranth.lib.fifo.SyncFIFOBuffered` of column groups whose output register also shifts.

    Cycle for cycle ``SyncFIFOBuffered(width=layout.size, depth=depth)`` (the same ``w_rdy``, ``r_rdy``,
    ``level`` and ``r_data`` of a newly read group: a storage of ``depth - 1`` entries read asynchronously into
    one output register, loaded exactly when SyncFIFOBuffered's read port loads), plus ``shift``: while the head
    group is held (no load this cycle) its ``sums`` move down by ``lanes`` lanes (lane ``k`` takes lane
    ``k + lanes``), so the affine unit's serializer reads slot ``s`` of a group at lanes 0 .. ``lanes - 1``
    after ``s`` shifts instead of through a slot multiplexer (issue 19). The other fields do not shift.
    ``r_en`` and ``shift`` are never high together in the affine unit (a slot either ends the group or not):
    ``final`` ("the head's current slot is its last") says which one a take of the head would be, so the caller
    raises ``r_en`` only with ``final`` and ``shift`` only without it; the sums' input multiplexer then selects
    from ``final`` and ``r_rdy`` (flip-flops) instead of from the read handshake (issue 19: that select, fan-out
    128, sat behind the downstream ready with the register's enable).
    ``r_peek`` is the oldest stored group, the one the output register loads next, and ``r_load`` "the output
    register loads it this cycle" (combinational, for a caller's flags computed one cycle ahead).
    """

    def __init__(self, layout: data.StructLayout, depth: int, lanes: int):
        assert depth >= 2
        self.layout, self.depth, self.lanes = layout, depth, lanes
        super().__init__({"w_data": In(layout.size), "w_en": In(1), "w_rdy": Out(1),
                          "r_data": Out(layout.size), "r_en": In(1), "r_rdy": Out(1), "shift": In(1), "final": In(1),
                          "level": Out(range(depth + 1)), "r_peek": Out(layout.size),
                          "r_load": Out(1)})

    def elaborate(self, platform):
        m = Module()
        inner_depth = self.depth - 1
        inner_level = Signal(range(inner_depth + 1))
        storage = m.submodules.storage = Memory(shape=self.layout.size, depth=inner_depth, init=[])
        w_port, r_port = storage.write_port(), storage.read_port(domain="comb")
        produce, consume = Signal(range(inner_depth)), Signal(range(inner_depth))
        # "the storage is not empty" (inner_level != 0) as a flip-flop set with inner_level (issue 19: it sat in front
        # of the output register's enable, fan-out 128, with the downstream ready: chain_out -> r_data 11.7 ns routed
        # on the 1 x 1 top)
        inner_r_rdy = Signal(name="inner_nonempty")
        do_write = self.w_en & self.w_rdy
        do_inner_read = inner_r_rdy & (~self.r_rdy | self.r_en)

        def incr(v):
            return Mux(v == inner_depth - 1, 0, v + 1)

        m.d.comb += [self.w_rdy.eq(inner_level != inner_depth), w_port.addr.eq(produce), self.r_peek.eq(r_port.data),
                     w_port.data.eq(self.w_data), w_port.en.eq(do_write), r_port.addr.eq(consume),
                     self.r_load.eq(do_inner_read),
                     self.level.eq(inner_level + self.r_rdy)]
        with m.If(do_write):
            m.d.sync += produce.eq(incr(produce))
        with m.If(do_inner_read):
            m.d.sync += consume.eq(incr(consume))
        with m.If(do_write & ~do_inner_read):
            m.d.sync += [inner_level.eq(inner_level + 1), inner_r_rdy.eq(1)]
        with m.If(do_inner_read & ~do_write):
            m.d.sync += [inner_level.eq(inner_level - 1), inner_r_rdy.eq(inner_level != 1)]
        with m.If(do_inner_read):
            m.d.sync += self.r_rdy.eq(1)
        with m.Elif(self.r_en):
            m.d.sync += self.r_rdy.eq(0)
        head = data.View(self.layout, self.r_data)
        sums = head.sums.as_value()
        lane_bits = len(sums) // len(head.sums)
        step = self.lanes * lane_bits
        peek = data.View(self.layout, r_port.data)
        peek_sums = peek.sums.as_value()
        rest = [(Value.cast(head[f]), Value.cast(peek[f])) for f, _ in self.layout if f != "sums"]
        with m.If(do_inner_read):
            m.d.sync += [dst.eq(src) for dst, src in rest]
        # sums: loaded (an empty register, or the head's final slot taken) or shifted (another slot taken); the two
        # never coincide, and with the enable high the load is exactly ``~r_rdy | final``
        with m.If(do_inner_read | self.shift):
            m.d.sync += sums.eq(Mux(~self.r_rdy | self.final, peek_sums, sums[step:]))  # zero-fill the top lanes
        return m


class AffineUnit(wiring.Component):
    """Per-tile affine unit (see the module docstring for the micro-architecture).

    Parameters
    ----------
    params : TileParams
        Widths and depths from the chip description.

    Members
    -------
    col_in : In(stream.Signature(column_beat_layout(params)))
        From the tile controller: ``cols_per_adc_beat`` ADC codes per beat with their
        column group, valid lanes and row-block flags. One beat per cycle.
    psum_in : In(stream.Signature(psum_layout(params)))
        Partial sums from the upstream tile of a chain (:func:`psum_layout`: ``affine_lanes``
        columns a beat); consumed one beat per emitted slot when ``chain_in``.
    psum_out : Out(stream.Signature(psum_layout(params)))
        This tile's (plus upstream) partial sums, ``affine_lanes`` columns per beat in
        column order, when ``chain_out``; ``last`` on the vector's final beat.
    out : Out(stream.Signature(result_layout(..., affine_lanes)))
        int8 results (``column`` of the first lane, ``data``, ``count`` when
        ``affine_lanes > 1``, ``last`` on the vector's final beat), ``affine_lanes``
        columns per beat in column order, when not ``chain_out``.
    coef_addr : In(unsigned(ceil(log2(max_cols))))
        Column of the coefficient write.
    coef_scale : In(signed(scale_bits))
        Scale (``shift`` fractional bits).
    coef_offset : In(signed(offset_bits))
        Offset (output LSBs, ``shift`` fractional bits).
    coef_we : In(1)
        Write strobe of the coefficient memory (write while idle).
    shift : In(range(acc_bits + scale_bits))
        Right shift of the layer (fractional bits of scale and offset).
    relu : In(1)
        Apply ReLU.
    chain_in : In(1)
        Add one ``psum_in`` beat to every column before requantizing / forwarding.
    chain_out : In(1)
        Send the sums on ``psum_out`` instead of requantizing.
    clear : In(1)
        Pulse: clear the sticky error flag.
    err_chain : Out(1)
        Sticky: a ``psum_in`` beat's column differed from the column it was added to.
    busy : Out(1)
        Data in flight (accumulate stage, FIFO, serializer or requantizer).

    Latency: 6 cycles in the requantizer (``Requantizer.LATENCY``, the
    figure for ``periphery.affine_latency_cycles``); 9 cycles (``LATENCY``) from a
    final-row-block ``col_in`` beat to its first ``out`` result.
    Throughput: one ``col_in`` beat and one ``out`` / ``psum_out`` beat of
    ``params.affine_lanes`` columns per cycle.

    Raises
    ------
    TypeError
        If ``params`` is not a :class:`TileParams`.
    """

    #: Cycles from accepting a final-row-block ``col_in`` beat to its first ``out`` result.
    LATENCY = 3 + Requantizer.LATENCY

    def __init__(self, params: TileParams):
        if not isinstance(params, TileParams):
            raise TypeError(f"params must be a TileParams, got {params!r}")
        self.params = p = params
        super().__init__({
            "col_in": In(stream.Signature(column_beat_layout(p))),
            "psum_in": In(stream.Signature(psum_layout(p))),
            "psum_out": Out(stream.Signature(psum_layout(p))),
            "out": Out(stream.Signature(result_layout(index_shape(p.max_cols), p.affine_lanes))),
            "coef_addr": In(index_shape(p.max_cols)),
            "coef_scale": In(signed(p.scale_bits)),
            "coef_offset": In(signed(p.offset_bits)),
            "coef_we": In(1),
            "shift": In(range(p.max_shift + 1)),
            "relu": In(1),
            "chain_in": In(1),
            "chain_out": In(1),
            "clear": In(1),
            "err_chain": Out(1),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        p = self.params
        m = Module()
        CPB = p.cols_per_adc_beat
        sums_layout = data.ArrayLayout(signed(p.acc_bits), CPB)

        # ---- ACC: read-modify-write of the accumulator memory
        m.submodules.accmem = accmem = Memory(shape=sums_layout, depth=p.column_groups, init=[])
        wp = accmem.write_port()
        rp = accmem.read_port(transparent_for=(wp,))

        group_layout = data.StructLayout({
            "sums": sums_layout,
            "group": index_shape(p.column_groups),
            "lanes": unsigned(CPB.bit_length()),
            "last_vec": unsigned(1),
        })
        fifo = _ShiftOutFIFO(group_layout, depth=max(2, p.adc_beats_per_block), lanes=p.affine_lanes)
        m.submodules.fifo = fifo

        s1_valid = Signal()
        s1 = Signal(column_beat_layout(p))
        s1_go = Signal()
        m.d.comb += s1_go.eq(~s1.last_rb | fifo.w_rdy)
        m.d.comb += self.col_in.ready.eq(~s1_valid | s1_go)
        m.d.comb += [rp.addr.eq(self.col_in.payload.group), rp.en.eq(self.col_in.ready)]
        with m.If(self.col_in.ready):
            m.d.sync += [s1_valid.eq(self.col_in.valid), s1.eq(self.col_in.payload)]

        sums = Signal(sums_layout)
        for lane in range(CPB):
            m.d.comb += sums[lane].eq(s1.codes[lane] + Mux(s1.first_rb, 0, rp.data[lane]))
        w_group = Signal(group_layout)
        m.d.comb += [
            w_group.sums.eq(sums), w_group.group.eq(s1.group),
            w_group.lanes.eq(s1.lanes), w_group.last_vec.eq(s1.last_vec),
            fifo.w_data.eq(w_group),
            fifo.w_en.eq(s1_valid & s1.last_rb),
            wp.addr.eq(s1.group), wp.data.eq(sums),
            wp.en.eq(s1_valid & ~s1.last_rb),
        ]

        # ---- SER: ``L = affine_lanes`` columns per cycle (L divides cols_per_adc_beat: slot s of a
        # group holds its columns s*L .. s*L + L - 1; only a group's final slot may be partial)
        L = p.affine_lanes
        slots = CPB // L
        # the FIFO's output register shifts the group's sums down by L lanes as each slot leaves, so the current
        # slot is always its lanes 0 .. L-1 (issue 19, seventh stop: the 8-to-1 slot multiplexer in front of the
        # chain join's adder was part of the 10.2 ns path into the requantizer's val1 / the tx_psum buffer)
        r_group = data.View(group_layout, fifo.r_data)
        r_slots = data.View(data.ArrayLayout(data.ArrayLayout(signed(p.acc_bits), L), slots),
                            r_group.sums.as_value())
        slot = Signal(range(slots))
        ser_valid = fifo.r_rdy
        # "the slot is the group's final one" ((slot + 1) * L >= lanes) as a flip-flop computed from the next values of
        # slot and of the head's lanes, the candidates compared in parallel (issue 19, 1 x 1 top: the compare sat with
        # chain_out and the downstream ready in front of the FIFO output register's enable, fan-out 128, 11.7 ns
        # routed); reset: slot 0, lanes 0 -> 1. Same value every cycle.
        ser_last_lane = Signal(init=1, name="ser_last_lane")
        peek = data.View(group_layout, fifo.r_peek)
        take = Signal()
        slot_inc = (slot + 1)[:len(slot)]   # slot's next value on a take (wraps as the register does)
        m.d.sync += ser_last_lane.eq(
            Mux(fifo.r_load,   # a load happens with the group's last take (slot := 0) or with the register empty
                Mux(take, L >= peek.lanes, (slot + 1) * L >= peek.lanes),
                Mux(take, Mux(ser_last_lane, L >= r_group.lanes, (slot_inc + 1) * L >= r_group.lanes), ser_last_lane)))
        ser_col = Signal(index_shape(p.max_cols))
        ser_count = Signal(lane_count_shape(L))
        ser_val = r_slots[0]
        m.d.comb += [
            ser_col.eq(r_group.group * CPB + slot * L),
            ser_count.eq(Mux(ser_last_lane, r_group.lanes - slot * L, L)),
        ]

        # ---- chain join and routing
        def lane(view, name, k):
            return getattr(view, name) if L == 1 else getattr(view, name)[k]

        joined_valid = ser_valid & (~self.chain_in | self.psum_in.valid)
        joined_val = [Signal(signed(p.acc_bits), name=f"joined_val{k}") for k in range(L)]
        for k in range(L):
            m.d.comb += joined_val[k].eq(Mux(self.chain_in, ser_val[k] + lane(self.psum_in.payload, "value", k),
                                             ser_val[k]))
        joined_last = r_group.last_vec & ser_last_lane

        m.submodules.rq = rq = Requantizer(value_bits=p.acc_bits, scale_bits=p.scale_bits,
                                           offset_bits=p.offset_bits, depth=p.max_cols, lanes=L)
        # the requantizer's ``i.ready`` as a flip-flop of this unit, loaded with its next value (``rq.ready_next``):
        # rq.i.ready is the requantizer's pipeline enable (its output FIFO's second entry free), a net with a
        # fan-out of hundreds spread over the requantizer; from it, the take logic and the FIFO output register's
        # enable (fan-out 128) were the 1 x 2 prototype's critical path, 12.81 ns routed (3.72 ns of it the first
        # hop out of that net). The copy feeds only this unit's take logic. Same value every cycle.
        rq_ready = Signal(init=1, name="rq_ready")
        m.d.sync += rq_ready.eq(rq.ready_next)
        down_ready = Mux(self.chain_out, self.psum_out.ready, rq_ready)
        # ---- SKID: a zero-latency skid register between the join and the downstream (psum_out or the
        # requantizer). The serializer takes a slot whenever the skid is empty (a flip-flop), not when the
        # downstream is ready: a slot the downstream does not take waits in the skid, and the downstream sees
        # the skid while it is full, the join otherwise (issue 19, stop 17: the downstream ready -> take -> the
        # FIFO output register's enables, fan-out 128, was the whole prototype's critical path in every tile,
        # 11.0-11.7 ns routed, 4 LUT levels). The downstream sees the same beats at the same cycles as without
        # the skid (a beat stalled at cycle n is offered again at n + 1 from the skid); upstream, the FIFO and
        # psum_in move one slot earlier under back-pressure.
        skid_full = Signal(name="skid_full")
        skid_col = Signal.like(ser_col, name="skid_column")
        skid_last = Signal(name="skid_last")
        skid_val = [Signal(signed(p.acc_bits), name=f"skid_val{k}") for k in range(L)]
        skid_count = Signal.like(ser_count, name="skid_count")
        m.d.comb += take.eq(joined_valid & ~skid_full)
        with m.If(skid_full):
            with m.If(down_ready):
                m.d.sync += skid_full.eq(0)
        with m.Elif(take & ~down_ready):
            m.d.sync += [skid_full.eq(1), skid_col.eq(ser_col), skid_last.eq(joined_last), skid_count.eq(ser_count)]
            m.d.sync += [skid_val[k].eq(joined_val[k]) for k in range(L)]
        d_valid = skid_full | joined_valid
        d_col = Mux(skid_full, skid_col, ser_col)
        d_last = Mux(skid_full, skid_last, joined_last)
        m.d.comb += [
            self.psum_out.valid.eq(d_valid & self.chain_out),
            self.psum_out.payload.column.eq(d_col),
            self.psum_out.payload.last.eq(d_last),
            rq.i.valid.eq(d_valid & ~self.chain_out),
            rq.i.payload.column.eq(d_col),
            rq.i.payload.last.eq(d_last),
            self.psum_in.ready.eq(ser_valid & self.chain_in & ~skid_full),
            fifo.final.eq(ser_last_lane),
            fifo.r_en.eq(take & ser_last_lane),
            fifo.shift.eq(take & ~ser_last_lane),
        ]
        for k in range(L):
            d_val = Mux(skid_full, skid_val[k], joined_val[k])
            m.d.comb += [lane(self.psum_out.payload, "value", k).eq(d_val), lane(rq.i.payload, "value", k).eq(d_val)]
        if L > 1:
            d_count = Mux(skid_full, skid_count, ser_count)
            m.d.comb += [self.psum_out.payload.count.eq(d_count), rq.i.payload.count.eq(d_count)]
        with m.If(take):
            m.d.sync += slot.eq(Mux(ser_last_lane, 0, slot_inc))
            with m.If(self.chain_in & (self.psum_in.payload.column != ser_col)):
                m.d.sync += self.err_chain.eq(1)
        with m.If(self.clear):
            m.d.sync += self.err_chain.eq(0)

        # ---- REQUANT
        wiring.connect(m, rq.o, wiring.flipped(self.out))
        m.d.comb += [
            rq.coef_addr.eq(self.coef_addr), rq.coef_scale.eq(self.coef_scale),
            rq.coef_offset.eq(self.coef_offset), rq.coef_we.eq(self.coef_we),
            rq.shift.eq(self.shift), rq.relu.eq(self.relu),
            self.busy.eq(s1_valid | (fifo.level != 0) | rq.busy),
        ]
        return m
