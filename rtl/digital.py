"""Digital datapath for the layers kept digital: int8 x int8 -> int32 MACs, then requantize.

Contract: :func:`archmodel.golden.digital.digital_conv2d` / :func:`archmodel.golden.digital.digital_linear`
(exact sums), :func:`archmodel.golden.affine.affine_requantize` (requantization, the same
unit as the analog tiles: :class:`rtl.affine.Requantizer`) and the output order of
:func:`archmodel.golden.digital.digital_datapath_order`::

    for pixel in range(n_pixels):                    # im2col column
        for g in range(ceil(c_out / mac_lanes)):     # channel group
            for k in range(K):                       # im2col row order, one cycle each
                lane l: acc[l] += w[k, g*mac_lanes + l] * x[k, pixel]
            emit channels g*mac_lanes .. min((g+1)*mac_lanes, c_out) - 1 in order

Micro-architecture
------------------
- **Input** ``x_in``: the im2col stream, one int8 element ``x[k, pixel]`` per
  beat, K beats per pixel in im2col row order (``last`` on ``k = K-1``,
  checked). Group 0 of a pixel consumes the stream at one element per cycle
  and also writes it into an activation buffer (:class:`~amaranth.lib.memory.Memory`,
  ``max_k`` x int8); groups 1.. replay the buffer, so the source sends each
  pixel's vector once whatever ``c_out`` is.
- **Layer slots**: with ``two_layers`` the datapath holds two layers (the
  network's first and last, docs/design.md) and runs ``n_pixels`` *rounds*, each
  ``n_vectors0`` vectors of slot 0 (one run, no drain between its vectors) then
  ``n_vectors1`` vectors of slot 1, each run draining before the next (the
  requantizer's ``shift`` / ``relu`` follow the slot); the input of each comes from
  :class:`rtl.axis.SourceMerge` (it reads ``slot``). ``n_vectors0 = n_vectors1 = 1``
  (their reset values) is the one-vector alternation of register map v6 and
  earlier; digits-cnn needs 64 / 1 (conv1's 8 x 8 output pixels, then fc's one
  vector of relu3). ``cycles0`` / ``cycles1`` count each slot's busy cycles.

  Why the two slots cannot deadlock at the top level (docs/design.md, "Why the
  merge cannot deadlock"): the node's input link (I/O router east ->
  ``digital_rx`` -> :class:`rtl.axis.SourceMerge`) carries the host's slot-0
  vectors and a home tile's slot-1 vectors in one in-order stream, so a packet
  whose queue is full blocks every packet behind it (head of line). The rule is
  that no packet ever finds its queue full: (1) slot-1 inputs of round ``r``
  exist only after slot 0 ran round ``r`` (they are computed from its results),
  and slot 1 consumes them all before slot 0 starts round ``r + 1``, so a tile's
  queue holds at most one round's slot-1 input, ``n_vectors1 * ceil(elems / L)``
  beats; (2) the host keeps at most ``W`` rounds (images) in flight (it sends
  round ``r``'s input only once round ``r - W``'s results are back: the
  end-to-end credit of ``tb.top_env.TopTestbench.run(credit=W)``), so the host
  queue holds at most ``W * n_vectors0 * ceil(K0 / L)`` beats. The register
  compiler refuses a configuration whose one-round input of any queue exceeds
  ``rtl.regmap.DIGITAL_QUEUE_BEATS`` (``W = 1`` then always fits). With no queue
  ever full, ``digital_rx`` accepts every beat, the link drains, every tile's
  results reach the node and no cycle of waits closes.
- **Weights**: a memory of ``weight_words`` words of ``mac_lanes`` int8 lanes;
  word ``g*K + k``, lane ``l`` holds ``W[k, g*mac_lanes + l]`` (``W`` the
  (K, C_out) weight matrix, :func:`archmodel.golden.digital.weight_matrix` of an OIHW
  kernel, or ``w.T`` of a linear layer; zero for ``channel >= c_out``). It is
  loaded at stream rate from the ``w_in`` stream (at the top level: host flits
  on channel 1 to the digital node, :class:`rtl.top.Coprocessor`): one beat of
  ``w_chunk_lanes`` int8 lanes per cycle (always ready) into an
  auto-incrementing (word, chunk) pointer (``w_load`` sets it to word
  ``w_addr``); ``ceil(mac_lanes / w_chunk_lanes)`` beats per word. Weights
  written during a run change that run's results (the host loads them first).
- **MAC** (4 stages): fetch (issue the weight-word and buffer reads), operand
  register, product register ``w[l] * x``, then
  ``acc[l] = (k == 0 ? 0 : acc[l]) + product[l]`` in ``mac_lanes`` parallel lanes
  (``acc_bits``, exact: ``K * 2**14`` fits, checked at ``start``). After the
  group's last term the sums go to a result register bank.
- **Emission**: the result bank shifts out one channel per cycle into the
  :class:`~rtl.affine.Requantizer` (6 cycles) while the next group
  accumulates. The MAC stalls only when a group finishes before the previous
  group's channels have all left (``K < mac_lanes``).

Cycle count: ``n_pixels * ceil(c_out / mac_lanes) * K`` MAC (fetch) cycles
when ``K >= mac_lanes`` and neither stream stalls; the first result of a
channel group leaves 10 cycles after the group's last fetch cycle (3 MAC, 1
result bank, 6 requantize), its other channels one per cycle after it, so the
last result of a run leaves ``mac_lanes + 9`` cycles after the last fetch.
(Each stage does one thing -- memory read, multiply, add -- so that the
block meets 100 MHz on an ECP5, ``aimc fpga``.)
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from archmodel.timing import DIGITAL_CHECK_CYCLES
from rtl.affine import NO_RW_CHECK, Requantizer, result_layout
from rtl.ecp5 import registered_multiplier
from rtl.params import ACT_BITS, DigitalParams
from rtl.tile_controller import index_shape

__all__ = ["DigitalDatapath", "x_beat_layout"]

#: Width of the ``n_pixels`` configuration port (up to 16 M output pixels per layer).
PIXEL_COUNT_BITS = 24
#: Width of the per-slot vector counts ``n_vectors0`` / ``n_vectors1`` (two 16-bit fields of one register).
VECTOR_COUNT_BITS = 16
#: Default int8 weights per ``w_in`` beat (a 32-bit link flit): a weight word of ``mac_lanes`` lanes is
#: ``ceil(mac_lanes / w_chunk_lanes)`` beats.
W_CHUNK_LANES = 4


def x_beat_layout() -> data.StructLayout:
    """im2col beat: ``data`` (int8 element ``x[k, pixel]``), ``last`` (``k == K-1``)."""
    return data.StructLayout({"data": signed(ACT_BITS), "last": unsigned(1)})


class DigitalDatapath(wiring.Component):
    """int8 x int8 -> int32 MAC array with requantization (module docstring).

    Parameters
    ----------
    params : DigitalParams
        From the chip description (:meth:`DigitalParams.from_spec`).
    w_chunk_lanes : int
        int8 weights per ``w_in`` beat (the top level: ``link_width_bits // 8``), >= 1.
    primitive : {"behavioral", "ecp5"}
        The MAC lanes' multipliers (operand and product registers, :func:`rtl.ecp5.registered_multiplier`):
        Amaranth registers around ``*`` (default), or ECP5 MULT18X18D with their own input and output registers
        (the FPGA prototype, issue 19: the product register behind an unregistered DSP was a 10-11 ns path of
        the whole prototype). Same cycles and values.

    Members
    -------
    x_in : In(stream.Signature(x_beat_layout()))
        im2col stream, one int8 element per beat, K per pixel, ``last`` on the
        pixel's final element. Consumed at one per cycle during channel group 0.
    out : Out(stream.Signature(result_layout(index_shape(max_channels))))
        int8 results ``(column = channel, data, last)``, pixel-major, channel-minor
        (``golden.digital.digital_datapath_order``); ``last`` on the final channel of each pixel.
    w_addr : In(unsigned(ceil(log2(weight_words))))
        First weight word of a load: ``w_load`` copies it into the write pointer.
    w_in : In(stream.Signature(unsigned(8 * w_chunk_lanes)))
        Weight stream, always ready (one beat per cycle): a beat is one chunk of ``w_chunk_lanes`` packed
        weights, byte ``b`` = lane ``c * w_chunk_lanes + b`` (``W[k, g*mac_lanes + c*w_chunk_lanes + b]``) of
        chunk ``c`` of word ``g*K + k``; written at the pointer, which then advances (chunk, then word):
        ``ceil(mac_lanes / w_chunk_lanes)`` beats per word. Beats past the last word are dropped.
    w_load : In(1)
        Pulse: write pointer := (word ``w_addr``, chunk 0).
    coef_addr : In(unsigned(ceil(log2(max_channels))))
    coef_scale : In(signed(scale_bits))
    coef_offset : In(signed(offset_bits))
    coef_we : In(1)
        Per-channel requantization coefficients (as :class:`rtl.affine.AffineUnit`).
    shift : In(range(acc_bits + scale_bits))
        Right shift of the layer.
    relu : In(1)
        Apply ReLU.
    k_terms : In(unsigned(max_k.bit_length()))
        Configuration: K, terms per output, ``1 .. max_k``.
    c_out : In(unsigned(max_channels.bit_length()))
        Configuration: output channels, ``1 .. max_channels``, with
        ``ceil(c_out / mac_lanes) * K <= weight_words``.
    n_pixels : In(unsigned(24))
        Configuration: output pixels of the run (1 for a linear layer), >= 1; with ``two_layers``, rounds.
    n_vectors0, n_vectors1 : In(unsigned(16))
        Configuration with ``two_layers``: vectors of layer slot 0 / slot 1 per round, >= 1 (1 / 1: the
        one-vector alternation); ignored without ``two_layers``.
    two_layers : In(1)
        Configuration: per round run ``n_vectors0`` vectors of layer slot 0 (``k_terms``, ``c_out``, ``shift``,
        ``relu``, weights from word 0, coefficients from 0), then ``n_vectors1`` of layer slot 1 (below); each
        run drains before the next.
    k_terms1, c_out1, shift1, relu1 : In
        Configuration of layer slot 1 (as ``k_terms``, ``c_out``, ``shift``, ``relu``).
    w_base1 : In(unsigned)
        First weight word of layer slot 1.
    coef_base1 : In(unsigned)
        First coefficient entry of layer slot 1 (its channel ``j`` uses entry ``coef_base1 + j``).
    start : In(1)
        Pulse: check the configuration (a 3-stage pipeline: state CHECK, in which ``busy`` is already 1, lasts
        ``archmodel.timing.DIGITAL_CHECK_CYCLES`` = 3 cycles), then sample it and run (ignored while busy). The
        configuration must hold from the start cycle to the run. ``x_in`` is ready
        ``archmodel.timing.digital_start_latency_cycles()`` = ``1 + DIGITAL_CHECK_CYCLES`` cycles after the
        pulse; a bad configuration sets ``err_config`` ``DIGITAL_CHECK_CYCLES`` cycles after it.
    busy : Out(1)
        A run is in progress.
    done : Out(1)
        Sticky: the last run emitted all its results (cleared by ``start``).
    err_config : Out(1)
        Sticky: the configuration at the last ``start`` was out of range; run refused.
    err_x_last : Out(1)
        Sticky (cleared by ``start``): an ``x_in`` beat's ``last`` disagreed with the count from K.
    slot : Out(1)
        Layer slot of the current run (0, or 1 during a slot-1 run with ``two_layers``).
    cycles0, cycles1 : Out(32)
        Cycles the datapath was busy with layer slot 0 / 1 since ``start``, not counting cycles it waited
        for its input vector (performance counters: per-layer cycles against ``archmodel.timing``).

    Latency: 10 cycles from the fetch of a group's last term to its first result
    (``LATENCY``). Throughput: ``mac_lanes`` MACs per cycle; one result per cycle.

    Raises
    ------
    TypeError
        If ``params`` is not a :class:`DigitalParams`.
    ValueError
        If ``w_chunk_lanes`` < 1.
    """

    #: Cycles from the fetch of a channel group's last term to its first result.
    LATENCY = 4 + Requantizer.LATENCY

    def __init__(self, params: DigitalParams, w_chunk_lanes: int = W_CHUNK_LANES, primitive: str = "behavioral"):
        from .ecp5 import PRIMITIVES

        if not isinstance(params, DigitalParams):
            raise TypeError(f"params must be a DigitalParams, got {params!r}")
        if int(w_chunk_lanes) < 1:
            raise ValueError(f"w_chunk_lanes must be >= 1, got {w_chunk_lanes}")
        if primitive not in PRIMITIVES:
            raise ValueError(f"primitive must be one of {PRIMITIVES}, got {primitive!r}")
        self.primitive = primitive
        self.params = p = params
        self.w_chunk_lanes = int(w_chunk_lanes)
        super().__init__({
            "x_in": In(stream.Signature(x_beat_layout())),
            "out": Out(stream.Signature(result_layout(index_shape(p.max_channels)))),
            "w_addr": In(index_shape(p.weight_words)),
            "w_in": In(stream.Signature(unsigned(self.w_chunk_lanes * ACT_BITS))),
            "w_load": In(1),
            "coef_addr": In(index_shape(p.max_channels)),
            "coef_scale": In(signed(p.scale_bits)),
            "coef_offset": In(signed(p.offset_bits)),
            "coef_we": In(1),
            "shift": In(range(p.max_shift + 1)),
            "relu": In(1),
            "k_terms": In(unsigned(p.max_k.bit_length())),
            "c_out": In(unsigned(p.max_channels.bit_length())),
            "n_pixels": In(unsigned(PIXEL_COUNT_BITS)),
            "two_layers": In(1),
            "n_vectors0": In(unsigned(VECTOR_COUNT_BITS)),
            "n_vectors1": In(unsigned(VECTOR_COUNT_BITS)),
            "k_terms1": In(unsigned(p.max_k.bit_length())),
            "c_out1": In(unsigned(p.max_channels.bit_length())),
            "shift1": In(range(p.max_shift + 1)),
            "relu1": In(1),
            "w_base1": In(unsigned(p.weight_words.bit_length())),
            "coef_base1": In(unsigned(p.max_channels.bit_length())),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "err_config": Out(1),
            "err_x_last": Out(1),
            "slot": Out(1),
            "cycles0": Out(32),
            "cycles1": Out(32),
        })

    def elaborate(self, platform):
        p = self.params
        m = Module()
        L = p.mac_lanes
        wlayout = data.ArrayLayout(signed(ACT_BITS), L)

        # no_rw_check (rtl.affine.NO_RW_CHECK): weights are loaded before a run; the activation buffer is written
        # (group 0, at kk) in the cycles whose read of kk the operand multiplexer ignores (it takes the stream)
        m.submodules.wmem = wmem = Memory(shape=wlayout, depth=p.weight_words, init=[], attrs=NO_RW_CHECK)
        w_wp = wmem.write_port(granularity=1)             # one enable per int8 lane (array element)
        w_rp = wmem.read_port()
        m.submodules.xbuf = xbuf = Memory(shape=signed(ACT_BITS), depth=p.max_k, init=[], attrs=NO_RW_CHECK)
        x_wp = xbuf.write_port()
        x_rp = xbuf.read_port()

        # ---- weight loading at stream rate: one w_in beat (a chunk of w_chunk_lanes lanes) per cycle at an
        # auto-incrementing (word, chunk) pointer; the word address increments after its last chunk
        C = self.w_chunk_lanes
        chunks = -(-L // C)
        w_ptr = Signal(range(p.weight_words + 1))
        w_chunk = Signal(range(max(2, chunks)))
        w_we = Signal()
        m.d.comb += [self.w_in.ready.eq(1), w_we.eq(self.w_in.valid)]
        with m.If(self.w_load):
            m.d.sync += [w_ptr.eq(self.w_addr), w_chunk.eq(0)]
        with m.Elif(w_we):
            with m.If(w_chunk == chunks - 1):
                m.d.sync += [w_ptr.eq(w_ptr + 1), w_chunk.eq(0)]
            with m.Else():
                m.d.sync += w_chunk.eq(w_chunk + 1)
        lane_en = Signal(L)
        for lane in range(L):
            m.d.comb += [w_wp.data[lane].eq(self.w_in.payload.word_select(lane % C, ACT_BITS)),
                         lane_en[lane].eq(w_chunk == lane // C)]
        m.d.comb += [w_wp.addr.eq(w_ptr), w_wp.en.eq(Mux(w_we & (w_ptr < p.weight_words), lane_en, 0))]

        # ---- configuration of the two layer slots and its check
        slot = self.slot                      # layer slot of the current run (register)
        two = Signal()                        # sampled two_layers

        def groups_of(c):
            if L & (L - 1) == 0:
                return (c + L - 1) >> (L.bit_length() - 1)
            return (c + L - 1) // L

        # configuration check, a 3-stage pipeline computed every cycle from the configuration ports
        # (archmodel.timing.DIGITAL_CHECK_CYCLES; issue 19: in context the one-stage check, c_out1 -> groups ->
        # MULT18X18D -> compare -> cfg_ok_r, was 17.1 ns routed):
        #   A: the compares on the ports, the channel groups ceil(c / L), K and w_base1 registered
        #   B: groups * K in a multiplier with registered operands and product
        #   C: + w_base1, the compare with weight_words, AND of everything -> cfg_ok_r
        # state CHECK lasts DIGITAL_CHECK_CYCLES cycles and decides in its last one, when cfg_ok_r holds the check
        # of the ports sampled in the start cycle
        simple = Signal()
        m.d.comb += simple.eq(
            (self.k_terms != 0) & (self.k_terms <= p.max_k) & (self.c_out != 0) & (self.c_out <= p.max_channels)
            & (self.n_pixels != 0)
            & (~self.two_layers | ((self.k_terms1 != 0) & (self.k_terms1 <= p.max_k) & (self.c_out1 != 0)
                                   & (self.c_out1 + self.coef_base1 <= p.max_channels)
                                   & (self.n_vectors0 != 0) & (self.n_vectors1 != 0))))
        ga = [Signal.like(self.c_out, name="chk_groups0"), Signal.like(self.c_out1, name="chk_groups1")]
        ka = [Signal.like(self.k_terms, name="chk_k0"), Signal.like(self.k_terms1, name="chk_k1")]
        wba, wbb = Signal.like(self.w_base1, name="chk_wb_a"), Signal.like(self.w_base1, name="chk_wb_b")
        two_a, two_b = Signal(name="chk_two_a"), Signal(name="chk_two_b")
        simple_a, simple_b = Signal(name="chk_simple_a"), Signal(name="chk_simple_b")
        prod = [Signal(len(ga[q]) + len(ka[q]), name=f"chk_words{q}") for q in range(2)]
        m.d.sync += [ga[0].eq(groups_of(self.c_out)), ga[1].eq(groups_of(self.c_out1)),
                     ka[0].eq(self.k_terms), ka[1].eq(self.k_terms1), wba.eq(self.w_base1),
                     two_a.eq(self.two_layers), simple_a.eq(simple)]
        m.d.sync += [prod[0].eq(ga[0] * ka[0]), prod[1].eq(ga[1] * ka[1]), wbb.eq(wba), two_b.eq(two_a),
                     simple_b.eq(simple_a)]
        cfg_ok_r = Signal()
        m.d.sync += cfg_ok_r.eq(simple_b & (prod[0] <= p.weight_words)
                                & (~two_b | (prod[1] + wbb <= p.weight_words)))
        chk = Signal(range(max(2, DIGITAL_CHECK_CYCLES)))   # cycles spent in CHECK
        k_cfg = Signal.like(self.k_terms)
        c_cfg = Signal.like(self.c_out)
        wb_cfg = Signal(range(p.weight_words + 1))
        cb_cfg = Signal(range(p.max_channels + 1))
        seq_left = Signal.like(self.n_pixels)

        # ---- fetch stage (sequencer)
        running = Signal()                       # terms left to issue
        kk = Signal.like(k_cfg)                  # term k
        g0 = Signal()                            # group 0 of the pixel (reads the stream)
        wbase = Signal(range(p.weight_words + 1))
        ch_base = Signal(range(p.max_channels + L + 1))
        ch_left = Signal(range(p.max_channels + L + 1))   # c_out - g*L
        pix_left = Signal.like(self.n_pixels)
        # "the group is the pixel's last" (ch_left <= L) as a flip-flop, set wherever ch_left is (issue 19: a compare
        # in front of the sequencer's next-state logic)
        last_group = Signal(name="last_group")
        pix_one = Signal(name="pix_one")   # pix_left == 1, likewise
        seq_one = Signal(name="seq_one")   # seq_left == 1, likewise
        # "term kk is the group's last" as a flip-flop (issue 19: kk == K - 1 was a compare in front of the
        # sequencer's enables, km1_cfg -> x_in.ready -> ch_base 8.6 ns), set one term ahead: k_last' = (kk == K - 2)
        # on a step, k_one (K == 1) on a group's first term. Sixth stop: no down-counter k_left (its K - 1 at launch
        # and k_left - 1 were merged by yosys into one subtractor behind a multiplexer, which put ``issue`` in front
        # of the carry chain, 12.1 ns in context); K - 2 is sampled at launch (never matched when K == 1)
        km2_cfg = Signal.like(k_cfg)
        k_last = Signal()
        k_one = Signal()
        # "term kk is the run's last" (k_last & last_group & pix_one) as a flip-flop, set from the next values of its
        # three terms wherever they change (issue 19, whole prototype: pix_one -> the AND -> running's next value was
        # 12.9 ns routed; running's next value and ``drained`` now take one flip-flop instead of three)
        run_end = Signal(name="run_end")

        # ---- MAC stage registers
        s1_valid = Signal()
        s1_first = Signal()
        s1_klast = Signal()
        s1_g0 = Signal()
        s1_x = Signal(signed(ACT_BITS))
        s1_base = Signal.like(ch_base)
        s1_lanes = Signal(range(L + 1))
        acc = [Signal(signed(p.acc_bits), name=f"acc{lane}") for lane in range(L)]

        # ---- result bank (emission)
        res = [Signal(signed(p.acc_bits), name=f"res{lane}") for lane in range(L)]
        res_valid = Signal()
        res_base = Signal.like(ch_base)
        res_lanes = Signal(range(L + 1))
        res_lane = Signal(range(L))
        res_col = Signal.like(ch_base)

        m.submodules.rq = rq = Requantizer(value_bits=p.acc_bits, scale_bits=p.scale_bits,
                                           offset_bits=p.offset_bits, depth=p.max_channels)
        # "res_lane is the bank's last lane" (res_lane == res_lanes - 1) as a flip-flop, set as res_lane and
        # res_lanes change (issue 19: res_lane -> compare -> res_free -> adv -> x_in.ready was the datapath's
        # worst path out of context, 9.3 ns; adv also enables the whole fetch .. accumulate pipeline)
        ser_last = Signal(name="ser_last")
        ser_take = res_valid & rq.i.ready

        # operand and product registers between the memories and the accumulators
        # (a block RAM's clock-to-out, the multiplier and the adder in separate
        # cycles); one enable ``adv`` for fetch .. accumulate: the accumulate stage
        # stalls only when its group is done and the result bank is still busy
        s2_valid, s2_first, s2_klast = Signal(), Signal(), Signal()
        s2_base, s2_lanes = Signal.like(s1_base), Signal.like(s1_lanes)
        s3_valid, s3_first, s3_klast = Signal(), Signal(), Signal()
        s3_base, s3_lanes = Signal.like(s1_base), Signal.like(s1_lanes)

        # ``adv`` (was ~s3_valid | s3_done with s3_done = s3_valid & (~s3_klast | res_free)) is a flip-flop computed
        # one cycle ahead from the next values of its inputs (issue 19, sixth stop: the requantizer's input flag ->
        # res_free -> adv -> issue -> the sequencer's counters was 12.1 ns in context, two nets of ~100-250 loads in
        # series); same value every cycle, so the same cycles at every port
        adv = Signal(init=1, name="adv")
        s3_done = s3_valid & adv
        bank_load = s3_done & s3_klast
        s3_valid_n = Mux(adv, s2_valid, s3_valid)
        s3_klast_n = Mux(adv, s2_klast, s3_klast)
        res_valid_n = bank_load | (res_valid & ~(ser_take & ser_last))
        ser_last_n = Mux(bank_load, s3_lanes == 1, Mux(ser_take, res_lane + 2 == res_lanes, ser_last))
        m.d.sync += adv.eq(~s3_valid_n | ~s3_klast_n | ~res_valid_n | (rq.ready_next & ser_last_n))

        issue = Signal()
        m.d.comb += [
            self.x_in.ready.eq(running & g0 & adv),
            issue.eq(running & adv & (~g0 | self.x_in.valid)),
            w_rp.addr.eq(wbase + kk), w_rp.en.eq(adv),
            x_rp.addr.eq(kk), x_rp.en.eq(adv),
            x_wp.addr.eq(kk), x_wp.data.eq(self.x_in.payload.data),
            x_wp.en.eq(self.x_in.valid & self.x_in.ready),
        ]

        # the fetch stage's registers load with the pipeline (adv), not on ``issue``: when adv & ~issue, s1_valid
        # drops and their contents are never used (issue 19, sixth stop: ~35 fewer loads on ``issue``)
        with m.If(adv):
            m.d.sync += [
                s1_valid.eq(issue),
                s1_first.eq(kk == 0), s1_klast.eq(k_last), s1_g0.eq(g0),
                s1_x.eq(self.x_in.payload.data), s1_base.eq(ch_base),
                s1_lanes.eq(Mux(last_group, ch_left, L)),
            ]
        with m.If(issue):
            with m.If(g0 & (self.x_in.payload.last != k_last)):
                m.d.sync += self.err_x_last.eq(1)
        # the sequencer's registers have one enable, ``issue | go`` (a step, or a launch by the run control below:
        # never in the same cycle, a launch needs ~running), and their next values depend on flip-flops only, not
        # on ``issue`` (issue 19, sixth stop: adv -> issue -> a compare's multiplexer -> ch_left was 13.1 ns in
        # context, ~10 ns of it routing); the compares of the launch values are flip-flops (``*_is1``, ``*_le``)
        go = Signal()                                   # launch a run of slot go_sl this cycle (run control)
        go_sl = Signal()
        go_pix = Signal.like(pix_left)                  # its vector count, and "the count is 1"
        go_pix_one = Signal()
        k_is1 = [Signal(name="k0_is1"), Signal(name="k1_is1")]       # k_terms == 1, k_terms1 == 1
        c_le = [Signal(name="c0_le_lanes"), Signal(name="c1_le_lanes")]  # c_out <= L, c_out1 <= L
        c_cfg_le = Signal(name="c_cfg_le_lanes")        # c_cfg <= L, sampled at launch
        m.d.sync += [k_is1[0].eq(self.k_terms == 1), k_is1[1].eq(self.k_terms1 == 1),
                     c_le[0].eq(self.c_out <= L), c_le[1].eq(self.c_out1 <= L)]
        with m.If(issue | go):
            with m.If(go):
                go_k_last, go_last_group = Mux(go_sl, k_is1[1], k_is1[0]), Mux(go_sl, c_le[1], c_le[0])
                m.d.sync += [k_last.eq(go_k_last), running.eq(1), kk.eq(0), g0.eq(1),
                             wbase.eq(Mux(go_sl, self.w_base1, 0)), ch_base.eq(0),
                             ch_left.eq(Mux(go_sl, self.c_out1, self.c_out)),
                             last_group.eq(go_last_group), pix_left.eq(go_pix),
                             pix_one.eq(go_pix_one), run_end.eq(go_k_last & go_last_group & go_pix_one)]
            with m.Elif(k_last):
                m.d.sync += [kk.eq(0), k_last.eq(k_one)]
                with m.If(last_group):                         # next pixel
                    m.d.sync += [g0.eq(1), wbase.eq(wb_cfg), ch_base.eq(0), ch_left.eq(c_cfg),
                                 last_group.eq(c_cfg_le), pix_left.eq(pix_left - 1), pix_one.eq(pix_left == 2),
                                 run_end.eq(k_one & c_cfg_le & (pix_left == 2))]
                with m.Else():                                 # next channel group
                    m.d.sync += [g0.eq(0), wbase.eq(wbase + k_cfg), ch_base.eq(ch_base + L),
                                 ch_left.eq(ch_left - L), last_group.eq(ch_left <= 2 * L),
                                 run_end.eq(k_one & (ch_left <= 2 * L) & pix_one)]
            with m.Else():
                m.d.sync += [kk.eq(kk + 1), k_last.eq(kk == km2_cfg), run_end.eq((kk == km2_cfg) & last_group & pix_one)]
        with m.If(issue & run_end):   # the run's last term (never with go: a launch needs ~running)
            m.d.sync += running.eq(0)

        # ---- MAC: operands (s2), products (s3), accumulate
        x_op = Mux(s1_g0, s1_x, x_rp.data)
        with m.If(adv):
            m.d.sync += [
                s2_valid.eq(s1_valid), s2_first.eq(s1_first), s2_klast.eq(s1_klast),
                s2_base.eq(s1_base), s2_lanes.eq(s1_lanes),
                s3_valid.eq(s2_valid), s3_first.eq(s2_first), s3_klast.eq(s2_klast),
                s3_base.eq(s2_base), s3_lanes.eq(s2_lanes),
            ]
        # operands (s2) and products (s3) of each lane: the registers of one multiplier, enabled by adv
        s3_prod = [registered_multiplier(m, f"prod{lane}", w_rp.data[lane], x_op, ce=adv, width=2 * ACT_BITS,
                                         primitive=self.primitive) for lane in range(L)]
        with m.If(s3_done):
            for lane in range(L):
                total = Mux(s3_first, 0, acc[lane]) + s3_prod[lane]
                m.d.sync += acc[lane].eq(total)
                with m.If(s3_klast):
                    m.d.sync += res[lane].eq(total)
            with m.If(s3_klast):
                m.d.sync += [res_valid.eq(1), res_base.eq(s3_base), res_lanes.eq(s3_lanes), res_lane.eq(0),
                             ser_last.eq(s3_lanes == 1)]

        # ---- emission into the requantizer
        m.d.comb += [
            res_col.eq(res_base + res_lane),
            rq.i.valid.eq(res_valid),
            rq.i.payload.column.eq(res_col + cb_cfg),
            rq.i.payload.value.eq(res[0]),
            rq.i.payload.last.eq(ser_last & (res_base + res_lanes >= c_cfg)),
        ]
        with m.If(ser_take & ~(s3_done & s3_klast)):
            for lane in range(L - 1):
                m.d.sync += res[lane].eq(res[lane + 1])
            m.d.sync += [res_lane.eq(res_lane + 1), ser_last.eq(res_lane + 2 == res_lanes)]
            with m.If(ser_last):
                m.d.sync += res_valid.eq(0)

        wiring.connect(m, rq.o, wiring.flipped(self.out))
        m.d.comb += [
            rq.coef_addr.eq(self.coef_addr), rq.coef_scale.eq(self.coef_scale),
            rq.coef_offset.eq(self.coef_offset), rq.coef_we.eq(self.coef_we),
            rq.shift.eq(Mux(slot, self.shift1, self.shift)), rq.relu.eq(Mux(slot, self.relu1, self.relu)),
        ]

        # ---- run control: one run of n_pixels vectors; with two_layers, per round a run of n_vectors0 vectors of
        # slot 0 then a run of n_vectors1 of slot 1 (each drains before the next: the requantizer's shift/relu
        # follow the slot)
        def launch(sl: int):
            """A run of slot ``sl``: the configuration sampled here, the sequencer's registers loaded above (``go``,
            with the vector count ``go_pix``)."""
            kq = self.k_terms1 if sl else self.k_terms
            cq = self.c_out1 if sl else self.c_out
            wq = self.w_base1 if sl else 0
            return [k_cfg.eq(kq), km2_cfg.eq(kq - 2), k_one.eq(k_is1[sl]),
                    c_cfg.eq(cq), c_cfg_le.eq(c_le[sl]), wb_cfg.eq(wq), cb_cfg.eq(self.coef_base1 if sl else 0),
                    slot.eq(sl)]

        # n_vectors0 == 1, n_vectors1 == 1, n_pixels == 1 as flip-flops (the configuration holds from the start
        # cycle on; the first launch is DIGITAL_CHECK_CYCLES cycles later)
        nv_is1 = [Signal(name="nv0_is1"), Signal(name="nv1_is1")]
        np_is1 = Signal(name="np_is1")
        m.d.sync += [nv_is1[0].eq(self.n_vectors0 == 1), nv_is1[1].eq(self.n_vectors1 == 1),
                     np_is1.eq(self.n_pixels == 1)]
        # "the pipeline is empty" as a flip-flop computed from the next values of its terms (issue 19, sixth stop: it
        # gated the launch of the next slot's run, ``go``, which is in front of the sequencer's enables and next
        # values: requantizer output flag -> busy -> drained -> go -> pix_left was 11.5 ns in context); same value
        # every cycle
        drained = Signal(init=1, name="drained")
        running_n = Mux(go, 1, Mux(issue & run_end, 0, running))
        m.d.sync += drained.eq(~running_n & ~Mux(adv, issue, s1_valid) & ~Mux(adv, s1_valid, s2_valid)
                               & ~s3_valid_n & ~res_valid_n & ~rq.busy_next)
        # ``go`` from four flip-flops in one LUT (issue 19, 1 x 1 top: the FSM state -> its decode (fan-out ~100,
        # 3.1 ns route) -> go -> the sequencer's enables -> pix_left was the critical path, 11.1 ns): chk_last is
        # "state CHECK in its last cycle", go_run_ok "state RUN with another run to launch" (two & ~(slot & seq_one)),
        # both set with the state; same value every cycle as the state decode they replace
        chk_last = Signal(name="chk_last")
        go_run_ok = Signal(name="go_run_ok")
        m.d.comb += [go.eq((chk_last & cfg_ok_r) | (drained & go_run_ok)), go_sl.eq(go_run_ok & ~slot),
                     go_pix.eq(Mux(go_run_ok, Mux(slot, self.n_vectors0, self.n_vectors1),
                                   Mux(self.two_layers, self.n_vectors0, self.n_pixels))),
                     go_pix_one.eq(Mux(go_run_ok, Mux(slot, nv_is1[0], nv_is1[1]),
                                       Mux(self.two_layers, nv_is1[0], np_is1)))]
        with m.FSM(name="ctl"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [chk.eq(0), chk_last.eq(DIGITAL_CHECK_CYCLES == 1)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                # DIGITAL_CHECK_CYCLES cycles; in the last one cfg_ok_r holds the check of the ports sampled at start
                m.d.comb += self.busy.eq(1)
                m.d.sync += [chk.eq(chk + 1), chk_last.eq(chk + 2 == DIGITAL_CHECK_CYCLES)]
                with m.If(~chk_last):                           # (chk != DIGITAL_CHECK_CYCLES - 1)
                    pass
                with m.Elif(cfg_ok_r):
                    m.d.sync += launch(0) + [go_run_ok.eq(self.two_layers),
                        two.eq(self.two_layers), seq_left.eq(self.n_pixels), seq_one.eq(np_is1),
                        self.done.eq(0), self.err_config.eq(0), self.err_x_last.eq(0),
                        self.cycles0.eq(0), self.cycles1.eq(0),
                    ]
                    m.next = "RUN"
                with m.Else():
                    m.d.sync += [self.err_config.eq(1), self.done.eq(0)]
                    m.next = "IDLE"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                with m.If(~(running & g0 & ~self.x_in.valid)):  # not counted: waiting for the input vector
                    with m.If(slot):
                        m.d.sync += self.cycles1.eq(self.cycles1 + 1)
                    with m.Else():
                        m.d.sync += self.cycles0.eq(self.cycles0 + 1)
                with m.If(drained):
                    with m.If(go_run_ok & ~slot):                # two & ~slot
                        m.d.sync += launch(1) + [go_run_ok.eq(~seq_one)]
                    with m.Elif(go_run_ok):                      # two & ~seq_one
                        m.d.sync += launch(0) + [seq_left.eq(seq_left - 1), seq_one.eq(seq_left == 2),
                                                 go_run_ok.eq(1)]
                    with m.Else():
                        m.d.sync += [self.done.eq(1), slot.eq(0)]
                        m.next = "IDLE"
        return m
