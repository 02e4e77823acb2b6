"""PCM array emulator: a synthesizable stand-in for the analog macro behind one array port (FPGA prototype).

Same array port as the tile (docs/design.md, "The array port"): ``dac`` in (one row group of
signed DAC codes per beat, ``array`` index when ``arrays_per_tile > 1``, ``last``) and ``adc``
out (``cols_per_adc_beat`` signed ADC codes per beat, ``last`` on the final beat). The
arithmetic is :mod:`archmodel.golden.emulator` (the bit-exact model; equations and the
noise model with its variance are there).

Micro-architecture
------------------
The MVM is computed **one column group (ADC beat) at a time** (issue 19, stop 15: 32 multipliers per
emulator, 128 in the tiny prototype, filled the die's DSP rows and their outputs, the 32 accumulators
and the 4-to-1 accumulator-group select dominated nextpnr's congestion).

- **Conductance memory** (:class:`amaranth.lib.memory.Memory`, read asynchronously into the operand
  registers ``c_r``; Yosys merges ``c_r`` into the read port, so on ECP5 it is block RAM, two DP16KD on
  tiny, followed by the operand stage ``c2``): one word per (array, row, column group) holding the
  ``cols_per_adc_beat`` signed ``g_bits`` codes of that row and group (word
  ``(array * rows + row) * groups + col // cols_per_adc_beat``, lane ``col % cols_per_adc_beat``);
  written one code per bus write (``wr_*``, granularity ``g_bits``), optionally initialized from a
  programmed PCM model (:func:`archmodel.golden.emulator.conductance_codes`).
- **LOAD**: ``dac.ready`` = 1; each beat is stored in a DAC buffer (registers); ``last``
  starts the MVM and zeroes the buffer's words not received (more beats than the array has rows set the
  sticky ``err``, the extra beats are dropped).
- **MAC** (6 stages: read, operands, multiplier input register, multiplier output register, product,
  accumulate): for column group ``b = 0 .. ADC_BEATS[array] - 1``, every row of the array (one per
  cycle; rows not received are 0, so a group always takes ``rows`` cycles) through
  ``cols_per_adc_beat`` ``dac_bits x g_bits`` multipliers (a DSP each: one MULT18X18D on ECP5; with
  ``primitive="ecp5"`` its own input and output registers are the pipeline's, :mod:`rtl.ecp5`) whose
  operands come straight from flip-flops (the row's DAC code, one copy per multiplier; the conductance
  codes, registered twice after the memory's read), a fabric product register ``pp``, and
  ``cols_per_adc_beat`` accumulators of ``dac_bits + g_bits + log2(rows) + 1`` bits (a group's first row
  loads them). The DAC buffer rotates by one row per step, so the row's code is always its lowest bits
  and after a group it is back in place (no rows-to-1 multiplexer after the row counter).
- **Hand-over**: a finished group waits in the accumulators or in ``cols_per_adc_beat`` hold registers
  until the ADC pipeline takes it (E0 reads the hold registers if full, else the accumulators); a group
  starts only with fewer than two groups started and not yet taken, so the MAC of group ``b + 1``
  overlaps the ADC of group ``b`` and back-pressure never overwrites a finished group.
- **ADC**: a 7-stage pipeline **without an enable** (it never stalls: stop 16; its enable, the output
  buffer's ``~tail_valid``, fanned out to 1,420 flip-flops, the whole prototype's slowest paths at 74.9 MHz):
  E0 takes the group's accumulators (and the AND-OR of each 4-bit slice with the one-hot of ``shift``),
  E1 picks the round-half-even addend ``2**(shift-1) - 1 + acc[shift]``
  (two registered constants, chosen by ``acc[shift]``, the OR of E0's slices) and sums the 4 bytes of each of the
  ``cols_per_adc_beat`` xorshift32 generators' states (the generators are kept one step ahead of the golden
  model's and step at the end of E1, enabled by a flip-flop), E2 adds the addend (and the noise
  multiplier's input register takes the noise sum and ``sigma``), E3 shifts by ``shift``'s multiple of 4 (the
  multiplier's output register: the noise times ``sigma``), E4 by the rest (the fabric product register
  ``npp``), E5 rounds the noise (and
  clamps the sum to the ADC range widened by the noise's: same result, a short E6 add), E6 adds and
  saturates into the output buffer: the ``adc`` register and, behind it, a FIFO of ``groups - 1`` beats
  (:class:`amaranth.lib.fifo.SyncFIFO`, LUT RAM), so one MVM's beats always fit (the next MVM starts only
  after its last beat is taken). A beat goes straight to the ``adc`` register when it is free and the FIFO
  empty, so without back-pressure the FIFO stays empty and the timing is that of a plain output register.
  One adder or shifter per stage, for Fmax. The noise products have ``cols_per_adc_beat`` multipliers of
  their own, so an emulator has ``2 * cols_per_adc_beat`` multipliers (16 on tiny, was 32):
  sharing the MAC's would forbid the overlap (the MAC runs while the ADC works) and need a select in
  front of the multipliers' operand registers.

Latency (:func:`archmodel.golden.emulator.emulator_latency_cycles`, every beat:
:func:`archmodel.golden.emulator.emulator_beat_cycles`): the first ADC beat is presented
``max(min_latency, rows + 13)`` cycles after the cycle in which ``last`` was accepted (tiny: 45), then
one beat every ``rows`` cycles without back-pressure (tiny, 4 beats: 45, 77, 109, 141; with back-pressure the
beats wait in the output buffer and leave one per cycle once ``adc.ready`` is high); ``min_latency``
defaults to the modelled array's ``array_mvm_cycles + 1`` (tb/bridge.py), so the emulator is never faster
than the modelled array. Throughput: one MVM at a time (no overlap, as the modelled array).

Register window (``wr_addr``, word addresses; :func:`address_map`): bit ``sel_bit`` (``max(cell bits, control bits)``) = 0:
cell ``(array << (rb + cb)) | (row << cb) | col`` (``rb``, ``cb`` = bits of rows, cols), data =
the signed code; bit ``sel_bit`` = 1: control register ``k``: 0 ``SHIFT`` (5 bits), 1
``SIGMA`` (8 bits), 2 ``SEED`` (32 bits; a write restarts the generators), 3 ``CLEAR``
(clears ``err``), ``4 + a`` ``ADC_BEATS[a]`` (beats, i.e. column groups, per MVM of array ``a``,
1 .. ``cols // cols_per_adc_beat``: the MAC computes only those groups; a write of 0 or of more than
the group count sets all groups; reset: all columns).
Writes are meant between MVMs.

Trade-offs: one row and one column group per cycle keeps the multipliers at ``2 * cols_per_adc_beat`` per
emulator (64 of the 156 MULT18X18D of an LFE5U-85F for the tiny prototype's 4 tiles) at the price of
``rows`` cycles per ADC beat (tiny: 141 cycles per full MVM against the modelled 7). The ADC is a
power-of-two shift (no multiplier): the conductance code's LSB absorbs the ADC gain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from archmodel.golden.emulator import ADC_STAGES as _GOLDEN_ADC_STAGES
from archmodel.golden.emulator import NOISE_BYTES, NOISE_SHIFT, PIPELINE_CYCLES, SIGMA_BITS, lane_seed, xorshift32
from rtl.ecp5 import PRIMITIVES, registered_multiplier
from rtl.params import TileParams
from rtl.tile_controller import adc_beat_layout, dac_beat_layout

__all__ = ["ArrayEmulator", "EmulatorAddressMap", "address_map", "REG_SHIFT", "REG_SIGMA", "REG_SEED",
           "REG_CLEAR", "REG_ADC_BEATS"]

REG_SHIFT, REG_SIGMA, REG_SEED, REG_CLEAR, REG_ADC_BEATS = 0, 1, 2, 3, 4
#: MAC pipeline stages after the row counter: read (c_r, d0), operand (c2, d), the multiplier's input
#: register, its output register (rtl.ecp5.registered_multiplier), pp, accumulate.
MAC_STAGES = 6
#: ADC pipeline stages E0 .. E6 (the last one the output FIFO's head).
ADC_STAGES = 7
DATA_BITS = 32


def _bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


@dataclass(frozen=True)
class EmulatorAddressMap:
    """Word-address layout of the emulator's write port (module docstring)."""

    array_bits: int
    row_bits: int
    col_bits: int
    ctrl_bits: int

    @property
    def cell_bits(self) -> int:
        return self.array_bits + self.row_bits + self.col_bits

    @property
    def sel_bit(self) -> int:
        """Address bit selecting the control registers (1) or the cells (0)."""
        return max(self.cell_bits, self.ctrl_bits)

    @property
    def addr_bits(self) -> int:
        return self.sel_bit + 1

    def cell(self, array: int, row: int, col: int) -> int:
        """Word address of one conductance cell."""
        return (array << (self.row_bits + self.col_bits)) | (row << self.col_bits) | col

    def reg(self, k: int) -> int:
        """Word address of control register ``k``."""
        return (1 << self.sel_bit) | k


def address_map(p: TileParams) -> EmulatorAddressMap:
    """The write-port address map of an emulator for tile parameters ``p``."""
    return EmulatorAddressMap(_bits(p.arrays_per_tile) if p.arrays_per_tile > 1 else 0,
                              _bits(p.array_rows), _bits(p.array_cols), _bits(REG_ADC_BEATS + p.arrays_per_tile))


def _xorshift32(x):
    x = x ^ (x << 13)[:32]
    x = x ^ (x >> 17)
    return x ^ (x << 5)[:32]


class ArrayEmulator(wiring.Component):
    """The emulated PCM arrays of one tile (see the module docstring).

    Parameters
    ----------
    params : TileParams
        Array size, beat sizes, DAC/ADC widths, arrays per tile.
    g_bits : int
        Signed conductance-code width, 2..18 (default 8).
    seed : int
        Reset seed of the noise generators (32 bits).
    min_latency : int
        Fewest cycles from accepting ``last`` to presenting the first ADC beat (>= 1).
    init : array_like of int, (arrays_per_tile, rows, cols), optional
        Initial conductance codes (default 0).
    shift, sigma : int
        Reset values of the ``SHIFT`` and ``SIGMA`` registers.
    primitive : {"behavioral", "ecp5"}
        The multipliers (:func:`rtl.ecp5.registered_multiplier`): Amaranth registers around ``*``
        (default; Amaranth's simulator), or ECP5 MULT18X18D instances with their internal input and output
        registers (the FPGA prototype; simulators need :data:`rtl.ecp5.SIM_MODEL`). Same cycles, same values.

    Members
    -------
    dac : In(stream.Signature(dac_beat_layout(params)))
        Array port, from the tile controller. Ready only between MVMs.
    adc : Out(stream.Signature(adc_beat_layout(params)))
        Array port, to the tile controller; ``ADC_BEATS[array]`` beats per MVM.
    wr_en, wr_addr, wr_data : In(1), In(address_map(params).addr_bits), In(32)
        Register window (module docstring), one write per cycle; registered on entry, so a write
        takes effect one cycle after it is presented (``SEED``: two cycles; ``SHIFT``'s rounding
        constants: two cycles).
    err : Out(1)
        Sticky: a DAC burst longer than the array (cleared by ``CLEAR``).

    Raises
    ------
    TypeError
        ``params`` is not a :class:`TileParams`.
    ValueError
        ``g_bits``, ``min_latency``, ``shift``, ``sigma``, ``init`` or ``primitive`` out of range.
    """

    def __init__(self, params: TileParams, *, g_bits: int = 8, seed: int = 1, min_latency: int = 1,
                 init=None, shift: int = 0, sigma: int = 0, primitive: str = "behavioral"):
        if not isinstance(params, TileParams):
            raise TypeError(f"params must be a TileParams, got {params!r}")
        if not 2 <= g_bits <= 18:
            raise ValueError(f"g_bits must be in [2, 18], got {g_bits}")
        if min_latency < 1:
            raise ValueError(f"min_latency must be >= 1, got {min_latency}")
        if not 0 <= shift <= 31 or not 0 <= sigma < (1 << SIGMA_BITS):
            raise ValueError(f"shift must be in [0, 31] and sigma in [0, {(1 << SIGMA_BITS) - 1}]")
        if primitive not in PRIMITIVES:
            raise ValueError(f"primitive must be one of {PRIMITIVES}, got {primitive!r}")
        self.primitive = primitive
        p = self.params = params
        self.g_bits, self.seed, self.min_latency = g_bits, int(seed) & 0xFFFFFFFF, int(min_latency)
        self.shift0, self.sigma0 = shift, sigma
        shape = (p.arrays_per_tile, p.array_rows, p.array_cols)
        codes = np.zeros(shape, dtype=np.int64) if init is None else np.asarray(init, dtype=np.int64)
        lim = 1 << (g_bits - 1)
        if codes.shape != shape or (codes.size and (codes.min() < -lim or codes.max() >= lim)):
            raise ValueError(f"init must be {shape} codes in signed {g_bits} bits")
        self.init = codes
        self.amap = address_map(p)
        super().__init__({
            "dac": In(stream.Signature(dac_beat_layout(p))),
            "adc": Out(stream.Signature(adc_beat_layout(p))),
            "wr_en": In(1),
            "wr_addr": In(self.amap.addr_bits),
            "wr_data": In(DATA_BITS),
            "err": Out(1),
        })

    def word_address(self, array_row, group):
        """Memory word of one row of one column group: ``array_row * groups + group``, ``array_row = array *
        rows + row`` (module docstring), for ints (the init) or Amaranth values (the write and read ports: a
        ``Cat`` when ``groups`` is a power of two, no multiplier). The one place of the word layout."""
        groups = self.params.array_cols // self.params.cols_per_adc_beat
        if isinstance(array_row, int) and isinstance(group, int):
            return array_row * groups + group
        if groups == 1:
            return array_row
        if groups & (groups - 1) == 0:
            return Cat(group[:(groups - 1).bit_length()], array_row)
        return array_row * groups + group

    def _words(self) -> list[int]:
        """Memory init: word :meth:`word_address` ``(a * rows + r, b)`` holds codes ``[a, r, b*cpb : (b+1)*cpb]``."""
        p, gb, cpb = self.params, self.g_bits, self.params.cols_per_adc_beat
        mask = (1 << gb) - 1
        groups = p.array_cols // cpb
        words = [0] * (p.arrays_per_tile * p.array_rows * groups)
        for a in range(p.arrays_per_tile):
            for r in range(p.array_rows):
                for b in range(groups):
                    words[self.word_address(a * p.array_rows + r, b)] = sum(
                        (int(c) & mask) << (gb * j) for j, c in enumerate(self.init[a, r, b * cpb:(b + 1) * cpb]))
        return words

    def elaborate(self, platform):
        p, gb, am = self.params, self.g_bits, self.amap
        m = Module()
        rows, cols, rpb, cpb = p.array_rows, p.array_cols, p.rows_per_dac_beat, p.cols_per_adc_beat
        n_dac_words = rows // rpb
        acc_w = p.dac_bits + gb + _bits(rows) + 1
        full_beats = cols // cpb
        pow2 = full_beats & (full_beats - 1) == 0

        # ---------------------------------------------------------------- memory and registers
        m.submodules.mem = mem = Memory(shape=unsigned(gb * cpb), depth=p.arrays_per_tile * rows * full_beats,
                                        init=self._words())
        self.memory = mem  # the conductance memory (simulation tests read it)
        wp = mem.write_port(granularity=gb)
        # read into the operand registers c_r below (Yosys merges c_r into the read port: block RAM, whose
        # clock-to-out c2 absorbs): every multiplier input comes straight from a flip-flop (a MULT18X18D is 3.9 ns)
        rp = mem.read_port(domain="comb")
        shift = Signal(5, init=min(self.shift0, acc_w))
        sigma = Signal(SIGMA_BITS, init=self.sigma0)
        beats_w = full_beats.bit_length()
        adc_beats = Array(Signal(beats_w, init=full_beats, name=f"adc_beats{a}") for a in range(p.arrays_per_tile))
        # one step ahead of the golden model's state (see the ADC pipeline below)
        lanes = [Signal(32, init=xorshift32(lane_seed(self.seed, lane)), name=f"rng{lane}") for lane in range(cpb)]

        # the register window's inputs registered on entry (a write lands one cycle later): in context they
        # come from the prototype's AXI splitter, shared by every emulator across the chip, and a SEED write
        # steers the cols_per_adc_beat x 32 generator flip-flops
        wr_en, wr_addr, wr_data = Signal(name="wr_en_r"), Signal.like(self.wr_addr, name="wr_addr_r"), \
            Signal.like(self.wr_data, name="wr_data_r")
        m.d.sync += [wr_en.eq(self.wr_en), wr_addr.eq(self.wr_addr), wr_data.eq(self.wr_data)]
        is_reg = wr_addr[am.sel_bit]
        cell_r = wr_addr[am.col_bits:am.col_bits + am.row_bits]
        cell_a = wr_addr[am.col_bits + am.row_bits:am.cell_bits]
        cell_row = cell_a * rows + cell_r if p.arrays_per_tile > 1 else cell_r   # as the read side's sel * rows + r
        cell_col = wr_addr[:am.col_bits]
        # cell (array, row, col) -> word (array * rows + row) * groups + col // cpb, lane col % cpb
        if pow2 and cpb & (cpb - 1) == 0:
            lb = (cpb - 1).bit_length()
            w_lane, w_grp = cell_col[:lb], cell_col[lb:]
        else:
            w_lane, w_grp = cell_col % cpb, cell_col // cpb
        m.d.comb += [wp.addr.eq(self.word_address(cell_row, w_grp)), wp.data.eq(Cat(*[wr_data[:gb]] * cpb))]
        # a cell outside the array (column >= cols, row >= rows: possible when they are not powers of two) is
        # dropped, as before the column groups, instead of landing in another row's word
        in_array = (Const(1, 1) if cols & (cols - 1) == 0 and rows & (rows - 1) == 0
                    else (cell_col < cols) & (cell_r < rows))
        for j in range(cpb):
            m.d.comb += wp.en[j].eq(wr_en & ~is_reg & (w_lane == j) & in_array)
        reg_k = wr_addr[:am.sel_bit]
        seed_hit = Signal()
        clear = Signal()
        # a SEED write decoded into a flip-flop (with its data) before it steers the cols_per_adc_beat x 32
        # generator flip-flops: it restarts them two cycles after it is presented (issue 19: the decode in
        # front of that fan-out was a 10.3-11.7 ns path in context)
        seed_write = Signal()
        seed_data = Signal(DATA_BITS)
        m.d.sync += [seed_write.eq(seed_hit), seed_data.eq(wr_data)]
        with m.If(wr_en & is_reg):
            with m.Switch(reg_k):
                with m.Case(REG_SHIFT):  # shifts >= acc_w all give 0 (|acc| < 2**(acc_w-2)): clamp
                    m.d.sync += shift.eq(Mux(wr_data[:5] > acc_w, acc_w, wr_data[:5]))
                with m.Case(REG_SIGMA):
                    m.d.sync += sigma.eq(wr_data[:SIGMA_BITS])
                with m.Case(REG_SEED):
                    m.d.comb += seed_hit.eq(1)
                with m.Case(REG_CLEAR):
                    m.d.comb += clear.eq(1)
                for a in range(p.arrays_per_tile):
                    with m.Case(REG_ADC_BEATS + a):
                        # 0 or more than the group count: all groups (a larger value would never end the MVM)
                        v = wr_data[:beats_w]
                        m.d.sync += adc_beats[a].eq(Mux((v == 0) | (v > full_beats), full_beats, v))

        # ---------------------------------------------------------------- LOAD: DAC buffer
        dbuf = Array(Signal(p.dac_bits * rpb, name=f"dbuf{w}") for w in range(n_dac_words))
        n_words = Signal(range(n_dac_words + 1))
        sel = Signal(range(max(2, p.arrays_per_tile)))
        lat = Signal(range(self.min_latency + 1))
        # a beat issued when lat = x is presented x + ADC_STAGES + 1 cycles after `last` was accepted:
        # lat_ok == (lat + ADC_STAGES + 1 >= min_latency) at every cycle, held in a flip-flop (set beside lat's
        # update) so that the ADC issue condition is an AND of flip-flops (no adder or compare in front of its fan-out)
        lat0 = ADC_STAGES + 1
        lat_ok = Signal(init=int(lat0 >= self.min_latency))
        with m.If(~lat_ok):
            m.d.sync += [lat.eq(lat + 1), lat_ok.eq(lat + lat0 + 1 >= self.min_latency)]

        # ---------------------------------------------------------------- MAC (one column group at a time)
        # row counter r and the MAC's column group gm; a step reads one memory word (row r, group gm)
        r = Signal(range(rows), name="row")
        gm = Signal(range(max(2, full_beats)), name="mac_group")
        running = Signal()     # groups left to start in this MVM
        r_zero = Signal(init=1)  # r == 0
        # the row counter advances (a word read, a row's products enter the pipeline): a flip-flop, loaded with its
        # next value (below), so its fan-out (the DAC buffer's rows x dac_bits enables, the counters) starts at a
        # flip-flop (issue 19: r_zero -> running -> step LUTs -> DAC buffer enable was the whole prototype's
        # critical path after the ADC's enable went, 12.35 ns routed, the emulator's logic spans the die)
        step = Signal()
        in_flight = Signal(2)  # groups started, not yet issued to the ADC (at most 2: accumulators + hold)
        row_index = sel * rows + r if p.arrays_per_tile > 1 else r
        m.d.comb += rp.addr.eq(self.word_address(row_index, gm))
        v1, first1, last1 = Signal(), Signal(), Signal()
        v1b, first1b, last1b = Signal(), Signal(), Signal()
        v1c, first1c, last1c = Signal(), Signal(), Signal()
        v2, first2, last2, v3, first3, last3 = Signal(), Signal(), Signal(), Signal(), Signal(), Signal()
        # the row's DAC code (beside c2), one copy per multiplier (issue 19: one register fanning out to many
        # MULT18X18D spread over the die's DSP rows was a 10-13 ns path in context). Outside a step a copy takes
        # bits of its own multiplier's conductance code instead: a value never accumulated (v1 is low), it keeps
        # the copies different functions, so synthesis cannot merge them back into one register
        d1 = [Signal(signed(p.dac_bits), name=f"d{j}") for j in range(cpb)]
        d0 = Signal(signed(p.dac_bits))   # the row's DAC code, a cycle later (beside c_r), before the copies
        # every multiplier between the operand registers c2 / d (fabric, after c_r, the memory's read), its own
        # input and output registers (rtl.ecp5.registered_multiplier: on ECP5 the MULT18X18D's, inside the DSP)
        # and pp (fabric): issue 19, a multiplier between fabric registers paid two routes to a far DSP and the
        # multiplier in one cycle (15.2 ns routed; Yosys packs no register into a MULT18X18D); c2 keeps the LUT
        # RAM's read (behind the row counter's fan-out) off that route (10.5-12.1 ns on the 1 x 1 top without it)
        prod2 = [Signal(signed(p.dac_bits + gb), name=f"pp{j}") for j in range(cpb)]
        # reset-less: Yosys merges c_r into the memory's read port (block RAM); a reset would cost a LUT after it
        c_r = [Signal(signed(gb), name=f"c{j}", reset_less=True) for j in range(cpb)]
        c2 = [Signal(signed(gb), name=f"cc{j}") for j in range(cpb)]
        accs = [Signal(signed(acc_w), name=f"acc{j}") for j in range(cpb)]
        # hand-over to the ADC: acc_full (the accumulators hold a finished group), the hold registers h
        acc_full = Signal()
        h = [Signal(signed(acc_w), name=f"h{j}") for j in range(cpb)]
        h_v = Signal()

        # ADC pipeline
        g = Signal(range(full_beats + 1))
        # the ADC pipeline has no enable: it never stalls (issue 19: its enable `adv`, the output buffer's
        # `~tail_valid`, had a fan-out of 1,420 flip-flops spread over the die, 12.4 ns routed; with the noise
        # generators behind it, 13.35 ns, the whole prototype's critical path at 74.9 MHz). A beat that leaves E6
        # while the adc register is full waits in the output FIFO below, which holds a whole MVM's beats, so the
        # issue never waits for the tile's ready
        issue = Signal()
        vld = [Signal(name=f"e{i}v") for i in range(ADC_STAGES - 1)]
        lst = [Signal(name=f"e{i}last") for i in range(ADC_STAGES - 1)]
        sel_r = [Signal(signed(acc_w), name=f"sel{lane}") for lane in range(cpb)]
        a_r = [Signal(signed(acc_w), name=f"a{lane}") for lane in range(cpb)]
        b_r = [Signal(acc_w, name=f"b{lane}") for lane in range(cpb)]
        t_r = [Signal(signed(acc_w + 1), name=f"t{lane}") for lane in range(cpb)]
        s_r = [Signal(signed(11), name=f"s{lane}") for lane in range(cpb)]
        sg_r = [Signal(signed(SIGMA_BITS + 1), name=f"sg{lane}") for lane in range(cpb)]
        q_r = [Signal(signed(acc_w + 1), name=f"q{lane}") for lane in range(cpb)]
        q4_r = [Signal(signed(acc_w), name=f"qd{lane}") for lane in range(cpb)]
        n_r = [Signal(signed(10), name=f"n{lane}") for lane in range(cpb)]
        noise_w = len(s_r[0]) + len(sg_r[0])
        nprod2 = [Signal(signed(noise_w), name=f"npp{lane}") for lane in range(cpb)]
        # E5 clamps the quantized sum to [-lim - N, lim - 1 + N] (N = 2**(len(n) - 1) bounds the noise): the result
        # of E6's add and saturate is unchanged (a sum beyond the clamp saturates whatever the noise), and E6 is
        # an add of len(n) + 1 bits instead of acc_w (issue 19: add + saturate + output FIFO select, 10.5 ns)
        n_lim = 1 << (len(n_r[0]) - 1)
        q_hi, q_lo = (1 << (p.adc_bits - 1)) - 1 + n_lim, -(1 << (p.adc_bits - 1)) - n_lim
        q5_r = [Signal(signed(max(q_hi.bit_length(), (-q_lo - 1).bit_length()) + 1), name=f"qe{lane}")
                for lane in range(cpb)]

        # the DAC buffer rotates by one row per step, so the current row's code is always its lowest dac_bits (no
        # rows-to-1 multiplexer after the row counter); after `rows` steps (one group) it is back in place
        flat = Cat(*[dbuf[w] for w in range(n_dac_words)])
        row_code = flat[:p.dac_bits].as_signed()
        rotated = Cat(flat[p.dac_bits:], flat[:p.dac_bits])
        dw = p.dac_bits * rpb
        arr_beats = adc_beats[sel] if p.arrays_per_tile > 1 else adc_beats[0]
        load_last = Signal()  # the burst's last DAC beat is accepted: the MVM starts
        with m.FSM():
            with m.State("LOAD"):
                m.d.comb += self.dac.ready.eq(1)
                with m.If(self.dac.valid):
                    with m.If(self.dac.payload.last):
                        # the rows not received are 0 (every group iterates all rows)
                        nw = Mux(n_words < n_dac_words, n_words + 1, n_words)
                        for w in range(n_dac_words):
                            with m.If(nw <= w):
                                m.d.sync += dbuf[w].eq(0)
                        m.d.comb += load_last.eq(1)
                        m.d.sync += [r.eq(0), gm.eq(0), lat.eq(0), n_words.eq(0), g.eq(0),
                                     lat_ok.eq(int(lat0 >= self.min_latency))]
                        if p.arrays_per_tile > 1:
                            m.d.sync += sel.eq(self.dac.payload.array)
                        m.next = "RUN"
                    with m.If(n_words < n_dac_words):
                        m.d.sync += dbuf[n_words].eq(self.dac.payload.codes.as_value())
                        with m.If(~self.dac.payload.last):
                            m.d.sync += n_words.eq(n_words + 1)
                    with m.Else():
                        m.d.sync += self.err.eq(1)
            with m.State("RUN"):
                with m.If(self.adc.valid & self.adc.ready & self.adc.payload.last):
                    m.next = "LOAD"

        # a group starts (r == 0) only with fewer than 2 groups in flight: a finished group waits in the
        # accumulators (acc_full) or the hold registers (h_v) until the ADC takes it, and a third could
        # overwrite the accumulators (see the hand-over below)
        # (r_zero == (r == 0), a flip-flop: step, which enables the DAC buffer's rows x dac_bits flip-flops, is one
        # LUT of flip-flops; the 1 x 1 top's run with the compare had it at 10.0 ns)
        # step == running & (~r_zero | ~in_flight[1]) in every cycle, held in a flip-flop: computed from the next
        # values of running, r_zero and in_flight
        start = Signal()
        m.d.comb += start.eq(step & r_zero)
        running_n, r_zero_n, in_flight_n = Signal(), Signal(), Signal(2)
        r_end = r == rows - 1
        m.d.comb += [
            running_n.eq(Mux(load_last, 1, Mux(step & r_end & (gm + 1 == arr_beats), 0, running))),
            r_zero_n.eq(Mux(load_last, 1, Mux(step, r_end, r_zero))),
            in_flight_n.eq(Mux(start & ~issue, in_flight + 1, Mux(~start & issue, in_flight - 1, in_flight))),
        ]
        m.d.sync += [running.eq(running_n), r_zero.eq(r_zero_n), in_flight.eq(in_flight_n),
                     step.eq(running_n & (~r_zero_n | ~in_flight_n[1]))]
        with m.If(step):
            m.d.sync += [dbuf[w].eq(rotated[w * dw:(w + 1) * dw]) for w in range(n_dac_words)]
            with m.If(r_end):
                m.d.sync += [r.eq(0), gm.eq(gm + 1)]
            with m.Else():
                m.d.sync += r.eq(r + 1)

        # MAC pipeline registers: read (c_r, d0) -> operands (c2, d) -> multiplier input -> multiplier output
        # -> pp -> accumulate (the first row of a group loads, the others add)
        m.d.sync += [v1.eq(step), first1.eq(r_zero), last1.eq(r == rows - 1)]
        m.d.sync += [v1b.eq(v1), first1b.eq(first1), last1b.eq(last1 & v1), v1c.eq(v1b), first1c.eq(first1b),
                     last1c.eq(last1b), v2.eq(v1c), first2.eq(first1c), last2.eq(last1c), v3.eq(v2),
                     first3.eq(first2), last3.eq(last2)]
        m.d.sync += d0.eq(row_code)
        for j in range(cpb):
            c = rp.data[j * gb:(j + 1) * gb].as_signed()
            m.d.sync += [c_r[j].eq(c), c2[j].eq(c_r[j]), d1[j].eq(Mux(v1, d0, c2[j].as_unsigned()[:p.dac_bits]))]
            prod = registered_multiplier(m, f"mul{j}", c2[j], d1[j], ce=Const(1, 1), width=len(prod2[j]),
                                         primitive=self.primitive)
            m.d.sync += prod2[j].eq(prod)
            with m.If(v3):
                m.d.sync += accs[j].eq(Mux(first3, prod2[j], accs[j] + prod2[j]))

        # hand-over: E0 takes the hold registers when they are full, else the accumulators; a finished group in
        # the accumulators moves to the hold registers when they are empty (h loads the accumulators in every
        # cycle it is empty: its enable is the flip-flop ~h_v, no decode of issue in front of its 8 x 22
        # enables, which were 10.2-10.7 ns on the 1 x 1 top). Two groups in flight at most (step): when group
        # k+1 starts, group k-1 has been issued, so h is empty when group k finishes, and group k leaves the
        # accumulators (to E0 or to h) in the cycle after its final accumulate, before group k+1's first (>= 1
        # cycle later); when group k+1's start waited for group k-1's issue (cycle X), group k leaves by X + 1,
        # before group k+1's first accumulate (X + 6 at the earliest)
        with m.If(~h_v):
            m.d.sync += [h[j].eq(accs[j]) for j in range(cpb)]
        m.d.sync += [acc_full.eq((v3 & last3) | (acc_full & h_v)), h_v.eq(~issue & (h_v | acc_full))]

        # every input of issue is a flip-flop (lat_ok, h_v, acc_full): one LUT4; it drives the issue count g, the
        # ADC's valid bits and the hand-over (the generators step on E1's valid bit, a flip-flop, below)
        m.d.comb += issue.eq(lat_ok & (h_v | acc_full))
        with m.If(issue):
            m.d.sync += g.eq(g + 1)

        # ADC pipeline (no enable): E0 take the group, E1 the round-half-even addend and the byte sum (and the
        # generators step), E2 add (+ the noise multiplier's input register), E3 shift (+ its output register),
        # E4 (npp, the product's fabric register), E5 noise rounding, E6 add + saturate (the adc register)
        last_beat = Signal()
        m.d.comb += last_beat.eq(g + 1 == arr_beats)
        # round half to even of a / 2**S = (a + 2**(S-1) - 1 + a[S]) >> S  (S >= 1; S = 0: a). The bias and
        # bias + 1 and the one-hot of S are registers of the static SHIFT (a write reaches them a cycle later),
        # so E1 picks the addend with an AND-OR of a's bits and E2 is one two-operand carry chain (issue 19:
        # the three-operand add after a 22-to-1 bit select by S was an 11.6 ns path in context)
        bias_lut = Array(Const(((1 << (k - 1)) - 1) if k else 0, acc_w) for k in range(acc_w + 1))
        s0 = min(self.shift0, acc_w)
        b0 = ((1 << (s0 - 1)) - 1) if s0 else 0
        bias0, bias1 = Signal(acc_w, name="bias0", init=b0), Signal(acc_w, name="bias1", init=b0 + 1)
        # bit k set iff S == k >= 1 (S = 0: no parity bit; S = acc_w: the parity does not change the result)
        shift_1h = Signal(acc_w, name="shift_1h", init=(1 << s0) if 1 <= s0 < acc_w else 0)
        bias1_lut = Array(Const((((1 << (k - 1)) - 1) if k else 0) + 1, acc_w) for k in range(acc_w + 1))
        m.d.sync += [bias0.eq(bias_lut[shift]), bias1.eq(bias1_lut[shift])]  # no adder after the select (11.7 ns)
        m.d.sync += [shift_1h[k].eq(shift == k) for k in range(1, acc_w)]
        lim = 1 << (p.adc_bits - 1)
        # the generators are kept one step ahead (reset, SEED: xorshift32 of the seed; golden: reseed then one
        # step per beat): E1 reads the beat's state from them, and they step at the end of E1's cycle, on E1's
        # valid bit -- a flip-flop (lane_en = vld[0] | seed_write, registered) is their enable, no LUT in front of
        # the cols_per_adc_beat x 32 enables (issue 19: the issue LUT in front of them, 13.35 ns routed). The next
        # beat's E1 is a cycle later at the earliest, after the step.
        lane_en = Signal()
        m.d.sync += lane_en.eq(issue | seed_hit)
        with m.If(lane_en):
            for lane, x in enumerate(lanes):
                m.d.sync += x.eq(Mux(seed_write, _xorshift32((seed_data ^ Const(lane_seed(0, lane) & ~1, 32)) | 1),
                                     _xorshift32(x)))
        w_codes = [Signal(signed(p.adc_bits), name=f"w_code{lane}") for lane in range(cpb)]
        # the noise multipliers' sigma operand: a copy per lane (a static register, from a flip-flop)
        m.d.sync += [sg.eq(Cat(sigma, 0).as_signed()) for sg in sg_r]
        for lane in range(cpb):  # the noise product (E2 input register, E3 output register, E4 npp)
            nprod = registered_multiplier(m, f"nmul{lane}", sg_r[lane], s_r[lane], ce=Const(1, 1), width=noise_w,
                                          primitive=self.primitive)
            m.d.sync += nprod2[lane].eq(nprod)
        m.d.sync += [vld[0].eq(issue), lst[0].eq(issue & last_beat)]
        m.d.sync += [vld[i + 1].eq(vld[i]) for i in range(ADC_STAGES - 2)]
        m.d.sync += [lst[i + 1].eq(lst[i]) for i in range(ADC_STAGES - 2)]
        for lane in range(cpb):
            a = sel_r[lane]
            # a[S] for S >= 1, else 0: E0 registers the AND-OR of each 4-bit slice (from the group's source, beside
            # sel_r) and E1 ORs the slices and picks the bias (issue 19: the 22-bit AND-OR and the pick in E1 alone,
            # 12.0 ns routed in the whole prototype)
            src = Mux(h_v, h[lane], accs[lane]).as_unsigned()
            parts = [Signal(name=f"odd{lane}_{k}") for k in range(0, acc_w, 4)]
            m.d.sync += [pt.eq((src[k * 4:k * 4 + 4] & shift_1h[k * 4:k * 4 + 4]).any()) for k, pt in enumerate(parts)]
            odd = Cat(*parts).any()
            byte_sum = sum(lanes[lane][8 * b:8 * b + 8] for b in range(NOISE_BYTES))
            m.d.sync += [
                # E0 (loads every cycle; the beat's values are those of its issue cycle)
                sel_r[lane].eq(Mux(h_v, h[lane], accs[lane])),
                # E1
                a_r[lane].eq(a),
                b_r[lane].eq(Mux(odd, bias1, bias0)),
                s_r[lane].eq(byte_sum.as_signed() - 510),
                # E2
                t_r[lane].eq(a_r[lane] + b_r[lane]),
                # E3 (E2 .. E4: the noise product's input, output and npp registers)
                # E3 shifts by S's multiple of 4, E4 by the rest (issue 19: a 23-to-1 select per bit in one stage)
                q_r[lane].eq(t_r[lane] >> Cat(Const(0, 2), shift[2:])),
                # E4, E5
                q4_r[lane].eq(q_r[lane] >> shift[:2]),
                q5_r[lane].eq(Mux(q4_r[lane] > q_hi, q_hi, Mux(q4_r[lane] < q_lo, q_lo, q4_r[lane]))),
                n_r[lane].eq((nprod2[lane] + (1 << (NOISE_SHIFT - 1))) >> NOISE_SHIFT),
            ]
        for lane in range(cpb):  # E6: add the noise and saturate, into the adc register or the output FIFO
            tot = q5_r[lane] + n_r[lane]
            m.d.comb += w_codes[lane].eq(Mux(tot > lim - 1, lim - 1, Mux(tot < -lim, -lim, tot)))
        # output buffer: the adc register (head) and a FIFO of full_beats - 1 beats behind it, so a whole MVM's
        # beats fit (the next MVM starts only after the last beat is taken) and the pipeline never waits. A beat
        # leaving E6 goes to the head when the head is free (or taken in this cycle) and the FIFO empty (the
        # same cycle as a plain output register: without back-pressure the FIFO stays empty), else to the FIFO
        head = [self.adc.payload.codes[lane] for lane in range(cpb)]
        w_beat = Cat(*w_codes, lst[-1])
        head_free = ~self.adc.valid | self.adc.ready
        if full_beats > 1:
            m.submodules.ofifo = ofifo = SyncFIFO(width=len(w_beat), depth=full_beats - 1)
            m.d.comb += [ofifo.w_data.eq(w_beat), ofifo.w_en.eq(vld[-1] & (ofifo.r_rdy | ~head_free)),
                         ofifo.r_en.eq(head_free)]
            from_fifo, fifo_beat = ofifo.r_rdy, ofifo.r_data
        else:  # one beat per MVM: the head holds it
            from_fifo, fifo_beat = Const(0, 1), w_beat
        with m.If(head_free):
            with m.If(from_fifo):
                m.d.sync += [self.adc.valid.eq(1), Cat(*head, self.adc.payload.last).eq(fifo_beat)]
            with m.Elif(vld[-1]):
                m.d.sync += [self.adc.valid.eq(1), Cat(*head, self.adc.payload.last).eq(w_beat)]
            with m.Else():
                m.d.sync += self.adc.valid.eq(0)
        with m.If(clear):
            m.d.sync += self.err.eq(0)
        return m

assert PIPELINE_CYCLES == MAC_STAGES + ADC_STAGES and ADC_STAGES == _GOLDEN_ADC_STAGES
