"""Tile controller: int8 activations -> DAC beats -> (array) -> ADC beats -> affine unit.

Micro-architecture
------------------
The controller runs one analog layer (a K x N weight matrix cut into
``n_row_blocks x n_col_blocks`` blocks, one per array of the tile) on a
sequence of input vectors, following :func:`archmodel.golden.tile_controller.tile_schedule`::

    for each input vector:
        for cb in range(n_col_blocks):
            for rb in range(n_row_blocks):
                MVM on array cb*n_row_blocks + rb with the DAC codes of row block rb
                forward its ADC codes (column group, lanes, row-block flags) to the affine unit

Two independent halves share an input-vector memory
(:class:`amaranth.lib.memory.Memory`, two banks of ``max_rows / rows_per_dac_beat``
words, one word = the DAC codes of one row group = one ``dac`` beat):

- the **loader** accepts ``act`` beats (one row group of int8 activations per
  beat), maps every lane to its DAC code exactly as
  :func:`archmodel.golden.tile_controller.dac_codes` (via :func:`rtl.fixed.to_dac_code`),
  zeroes the lanes beyond K (the contract's zero padding) and writes the word
  into the free bank; the final beat of a vector (counted from K, not taken
  from ``last``) marks the bank full. With two banks the next vector loads
  while the current one runs its MVMs (ping-pong);
- the **sequencer** replays the full bank once per column block: PREP (one
  cycle: issue the read of the row block's first word), DAC (one beat per
  cycle, ``last`` on the row block's final beat), ADC (wait for ``adc.valid``
  -- the array's latency is never assumed -- and move each ADC beat into the
  ``col_out`` output register, tagged with its column group, valid lanes and
  row-block flags), DRAIN (the MVM ends when its last ADC beat has left the
  output register), then the next step. The read port of the memory is
  enabled only when the ``dac`` beat is accepted, so back-pressure on ``dac``
  holds the payload stable.

Cycle count of one MVM (``archmodel.timing.mvm_cycles``): let ``L`` be the
number of cycles from the cycle in which the array accepts the ``last`` DAC
beat to the cycle in which it presents its first ADC beat (an array that
integrates and converts for ``array_mvm_cycles`` cycles starting in the next
cycle has ``L = array_mvm_cycles + 1``). With ``dac``, ``adc`` and ``col_out``
never stalling, the first DAC beat of MVM ``i+1`` leaves
``dac_beats + L + adc_beats + 1`` cycles after the first DAC beat of MVM
``i`` (DRAIN and PREP take one cycle each, the DAC phase ``dac_beats``, the
ADC phase ``adc_beats`` ending with the last ADC beat), which is exactly
``mvm_cycles = dac_beats + array_mvm_cycles + adc_beats + 2`` for such an
array: one overhead cycle to start the array, one to hand the last ADC beat to
the affine unit. The same holds across vectors when the next vector is
already loaded (otherwise the sequencer waits in WAIT for the loader).

Trade-offs
----------
- ADC beats go through one output register (``adc.ready = ~col_out.valid |
  col_out.ready``): one cycle of latency, full rate; the affine unit accepts
  one ADC beat per cycle.
- The ``act`` stream carries a whole row group per beat so that loading a
  vector takes ``ceil(K / rows_per_dac_beat)`` cycles, like sending it.
- Block counts are configuration (computed by the mapper with
  :func:`archmodel.golden.tile_controller.block_counts`), checked against K and N at ``start``
  (no divider in hardware).
- Input ``last`` and ADC ``last`` are checked, not trusted: a mismatch sets a
  sticky error flag; a vector always has ``ceil(K / rows_per_dac_beat)``
  beats, and an MVM ends on the counted final ADC beat or on ``adc.last``,
  whichever comes first, so a short ADC burst cannot hang the controller.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from rtl.fixed import to_dac_code
from rtl.params import ACT_BITS, TileParams

__all__ = [
    "ActivationPacker",
    "TileController",
    "act_beat_layout",
    "adc_beat_layout",
    "column_beat_layout",
    "dac_beat_layout",
    "index_shape",
]


def index_shape(n: int) -> unsigned:
    """Unsigned shape holding ``0 .. n-1`` (at least one bit, so no zero-width ports)."""
    return unsigned(max(1, (n - 1).bit_length()))


def act_beat_layout(p: TileParams) -> data.StructLayout:
    """``act`` beat: ``data`` = ``rows_per_dac_beat`` int8 activations (lane ``i`` =
    element ``beat*rows_per_dac_beat + i`` of the input vector), ``last`` = final beat."""
    return data.StructLayout({
        "data": data.ArrayLayout(signed(ACT_BITS), p.rows_per_dac_beat),
        "last": unsigned(1),
    })


def dac_beat_layout(p: TileParams) -> data.StructLayout:
    """Array-port ``dac`` beat: ``codes`` (``rows_per_dac_beat`` signed ``dac_bits`` codes),
    ``array`` (array index, only when ``arrays_per_tile > 1``), ``last``."""
    fields = {"codes": data.ArrayLayout(signed(p.dac_bits), p.rows_per_dac_beat)}
    if p.arrays_per_tile > 1:
        fields["array"] = index_shape(p.arrays_per_tile)
    fields["last"] = unsigned(1)
    return data.StructLayout(fields)


def adc_beat_layout(p: TileParams) -> data.StructLayout:
    """Array-port ``adc`` beat: ``codes`` (``cols_per_adc_beat`` signed ``adc_bits`` codes), ``last``."""
    return data.StructLayout({
        "codes": data.ArrayLayout(signed(p.adc_bits), p.cols_per_adc_beat),
        "last": unsigned(1),
    })


def column_beat_layout(p: TileParams) -> data.StructLayout:
    """Tile controller -> affine unit beat (one ADC beat with its place in the layer).

    Fields
    ------
    codes : ``cols_per_adc_beat`` x signed(adc_bits)
        The ADC codes; lane ``l`` is layer column ``group * cols_per_adc_beat + l``.
    group : unsigned
        Column group (``column // cols_per_adc_beat``), ``0 .. max_cols/cols_per_adc_beat - 1``.
    lanes : unsigned
        Valid lanes, ``1 .. cols_per_adc_beat`` (the rest is padding).
    row_block : unsigned
        Row block ``rb`` of this MVM.
    first_rb : 1 bit
        ``rb == 0``: the accumulator starts from this beat.
    last_rb : 1 bit
        ``rb == n_row_blocks - 1``: the partial sums of these columns are complete.
    last_beat : 1 bit
        Final ADC beat of this MVM.
    last_vec : 1 bit
        Final beat of the input vector (last beat of the last MVM).
    """
    return data.StructLayout({
        "codes": data.ArrayLayout(signed(p.adc_bits), p.cols_per_adc_beat),
        "group": index_shape(p.column_groups),
        "lanes": unsigned(p.cols_per_adc_beat.bit_length()),
        "row_block": index_shape(p.arrays_per_tile),
        "first_rb": unsigned(1),
        "last_rb": unsigned(1),
        "last_beat": unsigned(1),
        "last_vec": unsigned(1),
    })


class TileController(wiring.Component):
    """Sequencer of one tile's MVMs (see the module docstring for the micro-architecture).

    Parameters
    ----------
    params : TileParams
        Widths and depths from the chip description (:meth:`TileParams.from_spec`).

    Members
    -------
    act : In(stream.Signature(act_beat_layout(params)))
        Input activations, one row group (``rows_per_dac_beat`` x int8) per beat;
        ``ceil(K / rows_per_dac_beat)`` beats per vector, ``last`` on the final one
        (checked). Lanes beyond K are ignored. Throughput: one beat per cycle while
        a bank is free.
    dac : Out(stream.Signature(dac_beat_layout(params)))
        Array port, DAC codes (signed ``dac_bits``) of one row group per beat,
        ``array`` = ``cb * n_row_blocks + rb`` (only when ``arrays_per_tile > 1``),
        ``last`` on the row block's final beat (the MVM starts when it is accepted).
        One beat per cycle.
    adc : In(stream.Signature(adc_beat_layout(params)))
        Array port, ADC codes (signed ``adc_bits``) of ``cols_per_adc_beat`` columns
        per beat, ``ceil(cols_used / cols_per_adc_beat)`` beats, ``last`` on the final
        one (checked). Ready only in the ADC phase, when the output register is free.
    col_out : Out(stream.Signature(column_beat_layout(params)))
        To the affine unit: each ADC beat one cycle after it was accepted (output
        register), with its column group, valid lanes and row-block flags.
    k_rows : In(unsigned(max_rows.bit_length()))
        Configuration, rows in use K (terms per output), 1 .. ``max_rows``.
    n_cols : In(unsigned(max_cols.bit_length()))
        Configuration, columns in use N (outputs), 1 .. ``max_cols``.
    n_row_blocks, n_col_blocks : In(unsigned(arrays_per_tile.bit_length()))
        Configuration, ``golden.tile_controller.block_counts(K, N, rows, cols)``; their product
        must not exceed ``arrays_per_tile``.
    mode : In(1)
        Configuration: 0 = one input vector per ``start``; 1 = continuous (vectors
        back to back until ``stop``).
    start : In(1)
        Pulse: check the configuration (registered: the result is used in the next cycle, state
        CHECK, in which ``busy`` is already 1), then run (ignored while busy). The configuration
        must stay stable from ``start`` on while ``busy``.
    stop : In(1)
        Pulse (continuous mode): accept no new vector; finish the vectors already
        started, then go idle with ``done``.
    busy : Out(1)
        A run is in progress.
    done : Out(1)
        Sticky: the last run finished (cleared by ``start``).
    err_config : Out(1)
        Sticky: the configuration at the last ``start`` was out of range (K or N
        zero or larger than the tile holds, block counts zero, inconsistent with
        K/N, or needing more than ``arrays_per_tile`` arrays); the run was refused.
    err_act_last : Out(1)
        Sticky (cleared by ``start``): an ``act`` beat's ``last`` disagreed with the
        count from K.
    err_adc_last : Out(1)
        Sticky (cleared by ``start``): an ``adc`` beat's ``last`` disagreed with the
        count from N.
    vector_count : Out(16)
        Input vectors completed since ``start`` (wraps).

    Latency: ``act`` is ready ``1 + archmodel.timing.START_CHECK_CYCLES`` cycles after the
    ``start`` pulse (the registered configuration check); the first DAC beat of an idle
    controller leaves 3 cycles after the final ``act`` beat of the vector is accepted (bank
    full, WAIT, PREP); an ADC beat reaches ``col_out`` 1 cycle after it is accepted.
    Throughput: see the module docstring (one MVM per ``mvm_cycles``).

    Raises
    ------
    TypeError
        If ``params`` is not a :class:`TileParams`.
    """

    def __init__(self, params: TileParams):
        if not isinstance(params, TileParams):
            raise TypeError(f"params must be a TileParams, got {params!r}")
        self.params = p = params
        cnt_w = p.arrays_per_tile.bit_length()
        super().__init__({
            "act": In(stream.Signature(act_beat_layout(p))),
            "dac": Out(stream.Signature(dac_beat_layout(p))),
            "adc": In(stream.Signature(adc_beat_layout(p))),
            "col_out": Out(stream.Signature(column_beat_layout(p))),
            "k_rows": In(unsigned(p.max_rows.bit_length())),
            "n_cols": In(unsigned(p.max_cols.bit_length())),
            "n_row_blocks": In(unsigned(cnt_w)),
            "n_col_blocks": In(unsigned(cnt_w)),
            "mode": In(1),
            "start": In(1),
            "stop": In(1),
            "busy": Out(1),
            "done": Out(1),
            "err_config": Out(1),
            "err_act_last": Out(1),
            "err_adc_last": Out(1),
            "vector_count": Out(16),
        })

    def elaborate(self, platform):
        p = self.params
        m = Module()
        R, C = p.array_rows, p.array_cols
        RPB, CPB = p.rows_per_dac_beat, p.cols_per_adc_beat
        words = p.input_words

        # ---- input-vector memory: two banks of row-group words of DAC codes
        word_layout = data.ArrayLayout(signed(p.dac_bits), RPB)
        m.submodules.vmem = vmem = Memory(shape=word_layout, depth=2 * words, init=[])
        wp = vmem.write_port()
        rp = vmem.read_port()

        # ---- latched configuration
        k_cfg = Signal.like(self.k_rows)
        n_cfg = Signal.like(self.n_cols)
        nrb_cfg = Signal.like(self.n_row_blocks)
        ncb_cfg = Signal.like(self.n_col_blocks)
        mode_cfg = Signal()

        # ---- configuration check, registered: computed every cycle from the input ports into
        # cfg_ok_r, so that the multiply/compare path ends at a flip-flop and the start logic (state
        # CHECK, the cycle after start) sees one register (archmodel.timing.START_CHECK_CYCLES)
        k, n = self.k_rows, self.n_cols
        nrb, ncb = self.n_row_blocks, self.n_col_blocks
        cfg_ok = Signal()
        cfg_ok_r = Signal()
        m.d.sync += cfg_ok_r.eq(cfg_ok)
        m.d.comb += cfg_ok.eq(
            (k != 0) & (k <= p.max_rows) & (n != 0) & (n <= p.max_cols)
            & (nrb != 0) & (ncb != 0) & (nrb * ncb <= p.arrays_per_tile)
            & (k <= nrb * R) & (k > (nrb - 1) * R)
            & (n <= ncb * C) & (n > (ncb - 1) * C)
        )

        # ---- loader state
        accepting = Signal()
        stop_req = Signal()
        wbank = Signal()
        wword = Signal(range(words))
        in_left = Signal.like(self.k_rows)          # rows of the vector not yet loaded
        full = Signal(2)

        # ---- sequencer state
        rbank = Signal()
        rb = Signal.like(self.n_row_blocks)
        cb = Signal.like(self.n_col_blocks)
        step = Signal(range(max(2, p.arrays_per_tile)))
        rb_base = Signal(range(words + 1))          # first word of row block rb
        rd_word = Signal(range(words + 1))          # word shown on dac this cycle
        blk_rows_left = Signal.like(self.k_rows)    # K - rb*R
        dac_left = Signal.like(self.k_rows)         # rows of this row block not yet sent
        grp_base = Signal(range(p.column_groups + 1))
        grp = Signal(range(p.column_groups + 1))
        blk_cols_left = Signal.like(self.n_cols)    # N - cb*C
        adc_left = Signal.like(self.n_cols)         # columns of this MVM not yet received

        # ---- loader: act -> DAC codes -> memory
        final_in = in_left <= RPB
        m.d.comb += self.act.ready.eq(accepting & ~full.bit_select(wbank, 1) & ~(stop_req & (wword == 0)))
        act_fire = self.act.valid & self.act.ready
        codes_in = Signal(word_layout)
        for lane in range(RPB):
            m.d.comb += codes_in[lane].eq(Mux(in_left > lane, to_dac_code(self.act.payload.data[lane], p.dac_bits), 0))
        m.d.comb += [
            wp.addr.eq(Mux(wbank, words, 0) + wword),
            wp.data.eq(codes_in),
            wp.en.eq(act_fire),
        ]
        with m.If(act_fire):
            with m.If(self.act.payload.last != final_in):
                m.d.sync += self.err_act_last.eq(1)
            with m.If(final_in):
                m.d.sync += [wword.eq(0), in_left.eq(k_cfg), wbank.eq(~wbank)]
                m.d.sync += full.bit_select(wbank, 1).eq(1)
                with m.If(~mode_cfg | stop_req):
                    m.d.sync += accepting.eq(0)
            with m.Else():
                m.d.sync += [wword.eq(wword + 1), in_left.eq(in_left - RPB)]
        with m.Elif(stop_req & (wword == 0)):
            m.d.sync += accepting.eq(0)
        with m.If(self.stop & self.busy):
            m.d.sync += stop_req.eq(1)

        # ---- sequencer
        last_rb = rb == nrb_cfg - 1
        last_cb = cb == ncb_cfg - 1
        bank_base = Mux(rbank, words, 0)
        final_dac = dac_left <= RPB
        final_adc = adc_left <= CPB

        dac_p = self.dac.payload
        m.d.comb += [
            dac_p.codes.eq(rp.data),
            dac_p.last.eq(final_dac),
        ]
        if p.arrays_per_tile > 1:
            m.d.comb += dac_p.array.eq(step)

        # col_out is an output register (one cycle: "hand the ADC beat to the affine unit")
        out_free = ~self.col_out.valid | self.col_out.ready
        adc_end = final_adc | self.adc.payload.last
        adc_fire = self.adc.valid & self.adc.ready
        col = self.col_out.payload
        with m.If(self.col_out.ready):
            m.d.sync += self.col_out.valid.eq(0)
        with m.If(adc_fire):
            m.d.sync += [
                self.col_out.valid.eq(1),
                col.codes.eq(self.adc.payload.codes),
                col.group.eq(grp),
                col.lanes.eq(Mux(final_adc, adc_left, CPB)),
                col.row_block.eq(rb),
                col.first_rb.eq(rb == 0),
                col.last_rb.eq(last_rb),
                col.last_beat.eq(adc_end),
                col.last_vec.eq(adc_end & last_rb & last_cb),
            ]
        vec_end = Signal()

        with m.FSM(name="seq"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "CHECK"

            with m.State("CHECK"):
                # one cycle after start: cfg_ok_r holds the check of the ports sampled at start
                m.d.comb += self.busy.eq(1)
                with m.If(cfg_ok_r):
                    m.d.sync += [
                        k_cfg.eq(k), n_cfg.eq(n), nrb_cfg.eq(nrb), ncb_cfg.eq(ncb),
                        mode_cfg.eq(self.mode),
                        accepting.eq(1), stop_req.eq(self.stop),
                        wbank.eq(0), rbank.eq(0), wword.eq(0), in_left.eq(k), full.eq(0),
                        self.done.eq(0), self.err_config.eq(0),
                        self.err_act_last.eq(0), self.err_adc_last.eq(0),
                        self.vector_count.eq(0),
                    ]
                    m.next = "WAIT"
                with m.Else():
                    m.d.sync += [self.err_config.eq(1), self.done.eq(0)]
                    m.next = "IDLE"

            with m.State("WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(full.bit_select(rbank, 1)):
                    m.d.sync += [
                        rb.eq(0), cb.eq(0), step.eq(0), rb_base.eq(0), grp_base.eq(0),
                        blk_rows_left.eq(k_cfg), blk_cols_left.eq(n_cfg),
                    ]
                    m.next = "PREP"
                with m.Elif(~accepting & (wword == 0)):
                    m.d.sync += self.done.eq(1)
                    m.next = "IDLE"

            with m.State("PREP"):
                m.d.comb += [
                    self.busy.eq(1),
                    rp.addr.eq(bank_base + rb_base),
                    rp.en.eq(1),
                ]
                m.d.sync += [
                    rd_word.eq(rb_base),
                    dac_left.eq(Mux(blk_rows_left > R, R, blk_rows_left)),
                ]
                m.next = "DAC"

            with m.State("DAC"):
                m.d.comb += [
                    self.busy.eq(1),
                    self.dac.valid.eq(1),
                    rp.addr.eq(bank_base + rd_word + 1),
                    rp.en.eq(self.dac.ready),
                ]
                with m.If(self.dac.ready):
                    m.d.sync += [rd_word.eq(rd_word + 1), dac_left.eq(dac_left - RPB)]
                    with m.If(final_dac):
                        m.d.sync += [
                            adc_left.eq(Mux(blk_cols_left > C, C, blk_cols_left)),
                            grp.eq(grp_base),
                        ]
                        m.next = "ADC"

            with m.State("ADC"):
                m.d.comb += [self.busy.eq(1), self.adc.ready.eq(out_free)]
                with m.If(adc_fire):
                    m.d.sync += [adc_left.eq(adc_left - CPB), grp.eq(grp + 1)]
                    with m.If(self.adc.payload.last != final_adc):
                        m.d.sync += self.err_adc_last.eq(1)
                    with m.If(adc_end):
                        m.d.sync += vec_end.eq(0)
                        with m.If(last_rb):
                            with m.If(last_cb):
                                m.d.sync += [
                                    full.bit_select(rbank, 1).eq(0),
                                    rbank.eq(~rbank),
                                    self.vector_count.eq(self.vector_count + 1),
                                    vec_end.eq(1),
                                ]
                            with m.Else():
                                m.d.sync += [
                                    cb.eq(cb + 1), rb.eq(0), rb_base.eq(0), step.eq(step + 1),
                                    grp_base.eq(grp_base + p.adc_beats_per_block),
                                    blk_cols_left.eq(blk_cols_left - C),
                                    blk_rows_left.eq(k_cfg),
                                ]
                        with m.Else():
                            m.d.sync += [
                                rb.eq(rb + 1), step.eq(step + 1),
                                rb_base.eq(rb_base + p.dac_beats_per_block),
                                blk_rows_left.eq(blk_rows_left - R),
                            ]
                        m.next = "DRAIN"

            with m.State("DRAIN"):
                # the MVM ends when its last ADC beat has left the output register
                m.d.comb += self.busy.eq(1)
                with m.If(out_free):
                    with m.If(~vec_end):
                        m.next = "PREP"
                    with m.Elif(full.bit_select(rbank, 1)):
                        # next vector already loaded: start it without a WAIT cycle
                        m.d.sync += [
                            rb.eq(0), cb.eq(0), step.eq(0), rb_base.eq(0), grp_base.eq(0),
                            blk_rows_left.eq(k_cfg), blk_cols_left.eq(n_cfg),
                        ]
                        m.next = "PREP"
                    with m.Else():
                        m.next = "WAIT"

        return m


class ActivationPacker(wiring.Component):
    """Packs a stream of single int8 activations into ``act`` row-group beats.

    An adapter for sources narrower than a row group (an AXI4-Stream byte lane,
    a mesh link): element ``i`` of a vector goes to lane ``i % rows_per_dac_beat``;
    a beat leaves when its last lane is filled or the element carries ``last``
    (end of the vector; the lanes after it hold stale values, which the tile
    controller ignores beyond K).

    Parameters
    ----------
    params : TileParams

    Members
    -------
    i : In(stream.Signature({data: signed(8), last: 1}))
        One activation per beat, ``last`` on the vector's final element.
    o : Out(stream.Signature(act_beat_layout(params)))
        Row-group beats for :attr:`TileController.act`.

    Latency 1 cycle (the beat is registered); throughput one activation per cycle.

    Raises
    ------
    TypeError
        If ``params`` is not a :class:`TileParams`.
    """

    def __init__(self, params: TileParams):
        if not isinstance(params, TileParams):
            raise TypeError(f"params must be a TileParams, got {params!r}")
        self.params = params
        super().__init__({
            "i": In(stream.Signature(data.StructLayout({"data": signed(ACT_BITS), "last": unsigned(1)}))),
            "o": Out(stream.Signature(act_beat_layout(params))),
        })

    def elaborate(self, platform):
        m = Module()
        rpb = self.params.rows_per_dac_beat
        lane = Signal(range(rpb))
        m.d.comb += self.i.ready.eq(~self.o.valid | self.o.ready)
        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += self.o.payload.data[lane].eq(self.i.payload.data)
            with m.If((lane == rpb - 1) | self.i.payload.last):
                m.d.sync += [lane.eq(0), self.o.valid.eq(1), self.o.payload.last.eq(self.i.payload.last)]
            with m.Else():
                m.d.sync += lane.eq(lane + 1)
        return m
