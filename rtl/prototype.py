"""FPGA prototype top: the co-processor with one PCM array emulator behind every array port.

::

    s_axil_* ──► AXI4-Lite splitter ──(addr MSB = 0)──► Coprocessor.s_axil (register map, rtl.regmap)
                        └──────────(addr MSB = 1)──► emulator window: emulator t's register window
                                                     (rtl.emulator), prototype IRQ registers
    s_axis_* ──► Coprocessor.s_axis        Coprocessor.m_axis ──► m_axis_*
    Coprocessor.dac[t] ──► slice ──► ArrayEmulator t ──► slice ──► Coprocessor.adc[t]
    irq ◄── (IRQ_STATUS & IRQ_ENABLE) != 0

The two register slices (:class:`rtl.axis.StreamSlice`, ping-pong) add a cycle each way to an MVM as the
tile sees it (the tile never assumes the array's latency). Only AXI, clock (``clk``), reset (``rst``,
synchronous, active high) and ``irq`` are ports,
all with vendor-style single-underscore names (``s_axil_awaddr``, ``s_axis_tdata``,
``m_axis_tready``, ...), so Vivado / Radiant / Quartus infer the interfaces.

**AXI4-Lite splitter.** One write and one read at a time (each channel independent): a
write is accepted when ``awvalid`` and ``wvalid`` are both high, then either performed in
the window (one cycle) or forwarded to the co-processor (address and data held until
each is accepted, its ``bresp`` returned); a read likewise. Latency: 2 cycles for a
window write, forwarding adds the co-processor's own. Address bit ``A - 1`` (``A`` =
:attr:`Prototype.addr_bits`) selects the window.

**Emulator window** (byte address ``2**(A-1) + 4 * w``): word ``w = (t << E) | e`` is word
``e`` of emulator ``t``'s register window (``E`` = :func:`rtl.emulator.address_map` ``.addr_bits``:
conductance cells and control registers); ``t = tiles`` selects the prototype registers:
``e = 0`` ``IRQ_STATUS`` (bit 0 ``DONE``: the co-processor's ``done`` rose (a run completed,
:class:`rtl.top.Coprocessor`); bit 1 ``ERROR``: the co-processor's ``error`` or an emulator's protocol
``err`` is high; write 1 to clear, a still-high error sets its bit again), ``e = 1`` ``IRQ_ENABLE``
(same bits). Window cells read as 0 (write-only).

**Interrupt.** ``irq = |(IRQ_STATUS & IRQ_ENABLE)``, i.e. ``(done-event & enable[0]) | (error &
enable[1])``, registered: ``irq`` rises 2 cycles after the co-processor's ``done`` / ``error``
(itself registered one cycle after the event), and stays high until the host clears the status bit
(or disables it). ``done`` means: the digital datapath finished its run and the host has taken the
last beat of ``n_pixels`` output vectors from ``m_axis`` (docs/design.md 17.1).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from archmodel.spec import ChipSpec, array_mvm_cycles
from rtl.axis import StreamSlice
from rtl.csr import AXI4LiteSignature
from rtl.emulator import ArrayEmulator, address_map
from rtl.params import TileParams
from rtl.tile_controller import adc_beat_layout, dac_beat_layout
from rtl.top import Coprocessor

__all__ = ["IRQ_DONE", "IRQ_ENABLE", "IRQ_ERROR", "IRQ_STATUS", "PnrHarness", "Prototype", "ResetSync"]

IRQ_STATUS, IRQ_ENABLE = 0, 1
#: Bits of IRQ_STATUS / IRQ_ENABLE.
IRQ_DONE, IRQ_ERROR = 1, 2
_DATA = 32


def _bits(n: int) -> int:
    return max(1, (n - 1).bit_length())


class Prototype(wiring.Component):
    """Co-processor + one :class:`~rtl.emulator.ArrayEmulator` per tile (module docstring).

    Parameters
    ----------
    spec : ChipSpec
    g_bits : int
        Conductance-code width of the emulators (default 8).
    seed : int
        Noise seed of emulator ``t``: ``seed + t``.
    init : list of array_like, optional
        Initial conductance codes per tile, ``(arrays_per_tile, rows, cols)`` each.
    shift : int or sequence of int
        Reset value of the emulators' ADC shift (one for all, or one per tile).
    primitive : {"ecp5", "behavioral"}
        The emulators' and the digital datapath's multipliers (:mod:`rtl.ecp5`): ECP5 MULT18X18D instances with their internal
        registers (default: the LFE5U-85F prototype; a simulator of the Verilog needs
        :func:`rtl.ecp5.write_sim_model`'s file), or Amaranth registers (Amaranth's simulator; any FPGA).
        Same cycles and values either way.

    Members
    -------
    s_axil_* : AXI4-Lite slave, ``addr_bits``-bit byte addresses, 32-bit data.
    s_axis_*, m_axis_* : the co-processor's AXI4-Stream host ports (``tdest`` as there).
    irq : Out(1)
        Level interrupt, ``IRQ_STATUS & IRQ_ENABLE != 0``, registered.

    Raises
    ------
    TypeError
        ``spec`` is not a :class:`ChipSpec`.
    ValueError
        The chip description violates a constraint of an RTL block.
    """

    def __init__(self, spec: ChipSpec, *, g_bits: int = 8, seed: int = 1, init=None, shift: int | list[int] = 0,
                 primitive: str = "ecp5"):
        if not isinstance(spec, ChipSpec):
            raise TypeError(f"spec must be a ChipSpec, got {type(spec).__name__}")
        from rtl.ecp5 import PRIMITIVES

        if primitive not in PRIMITIVES:
            raise ValueError(f"primitive must be one of {PRIMITIVES}, got {primitive!r}")
        self.spec, self.g_bits, self.seed, self.shift, self.primitive = spec, g_bits, seed, shift, primitive
        self.co = Coprocessor(spec, primitive=primitive)
        self.tp = TileParams.from_spec(spec)
        self.tiles = self.co.tiles
        self.init = init
        self.emu_map = address_map(self.tp)
        self.tile_bits = _bits(self.tiles + 1)
        window_words_bits = self.tile_bits + self.emu_map.addr_bits
        self.addr_bits = max(self.co.regmap.addr_bits, window_words_bits + 2) + 1
        members = {}
        for name, mem in AXI4LiteSignature(self.addr_bits).members.items():
            members[f"s_axil_{name}"] = (In if mem.flow == Out else Out)(mem.shape)
        for port in ("s_axis", "m_axis"):  # member flows as seen from the co-processor
            for name, mem in self.co.signature.members[port].signature.members.items():
                members[f"{port}_{name}"] = (Out if mem.flow == Out else In)(mem.shape)
        members["irq"] = Out(1)
        super().__init__(members)

    def window_address(self, tile: int, word: int) -> int:
        """Byte address of word ``word`` of emulator ``tile``'s window (``tile = tiles``: IRQ registers)."""
        return (1 << (self.addr_bits - 1)) | (((tile << self.emu_map.addr_bits) | word) << 2)

    def emulator_writes(self, tile: int, codes, *, shift: int, sigma: int = 0, seed: int | None = None,
                        adc_beats: list[int] | None = None) -> list[tuple[int, int]]:
        """AXI4-Lite writes ``(byte address, data)`` that program emulator ``tile``.

        Parameters
        ----------
        codes : array_like of int, (arrays_per_tile, rows, cols)
            Conductance codes (e.g. :func:`archmodel.golden.emulator.conductance_codes`).
        shift, sigma, seed : int
            ``SHIFT``, ``SIGMA`` and (when given) ``SEED``.
        adc_beats : list of int, optional
            ``ADC_BEATS`` per array (beats per MVM: ``ceil(cols_used / cols_per_adc_beat)``).
        """
        from rtl.emulator import REG_ADC_BEATS, REG_SEED, REG_SHIFT, REG_SIGMA

        am, out = self.emu_map, []
        for a, plane in enumerate(codes):
            for r, row in enumerate(plane):
                out += [(self.window_address(tile, am.cell(a, r, c)), int(v) & 0xFFFFFFFF) for c, v in enumerate(row)]
        out += [(self.window_address(tile, am.reg(REG_SHIFT)), shift),
                (self.window_address(tile, am.reg(REG_SIGMA)), sigma)]
        if seed is not None:
            out.append((self.window_address(tile, am.reg(REG_SEED)), seed & 0xFFFFFFFF))
        for a, beats in enumerate(adc_beats or []):
            out.append((self.window_address(tile, am.reg(REG_ADC_BEATS + a)), beats))
        return out

    def elaborate(self, platform):
        m = Module()
        co = m.submodules.co = self.co
        lat = array_mvm_cycles(self.spec) + 1  # the modelled array's latency (tb/bridge.py)
        emus = []
        for t in range(self.tiles):
            init = None if self.init is None else self.init[t]
            shift = self.shift if isinstance(self.shift, int) else int(self.shift[t])
            emu = m.submodules[f"emu{t}"] = ArrayEmulator(self.tp, g_bits=self.g_bits, seed=self.seed + t,
                                                          min_latency=lat, init=init, shift=shift,
                                                          primitive=self.primitive)
            # a register slice each way (issue 19): in the whole prototype an emulator's logic sits beside its
            # multipliers (32 before the column groups), which fill the die's DSP rows far from its tile, and the
            # tile's adc.ready (a combinational ready chain through the affine unit) reached the emulator's output FIFO over that
            # distance (11.2 ns). Ping-pong slices: the far side's ready drives a pointer and flags only
            dsl = m.submodules[f"dac_slice{t}"] = StreamSlice(dac_beat_layout(self.tp), ping_pong=True)
            asl = m.submodules[f"adc_slice{t}"] = StreamSlice(adc_beat_layout(self.tp), ping_pong=True)
            wiring.connect(m, co.dac[t], dsl.i)
            wiring.connect(m, dsl.o, emu.dac)
            wiring.connect(m, emu.adc, asl.i)
            wiring.connect(m, asl.o, co.adc[t])
            emus.append(emu)
        self.emulators = emus

        # ---- AXI4-Stream pass-through
        for port in ("s_axis", "m_axis"):
            for name, mem in co.signature.members[port].signature.members.items():
                inner, outer = getattr(getattr(co, port), name), getattr(self, f"{port}_{name}")
                if mem.flow == Out:
                    m.d.comb += outer.eq(inner)
                else:
                    m.d.comb += inner.eq(outer)

        a = self.addr_bits
        s = {name: getattr(self, f"s_axil_{name}") for name in AXI4LiteSignature(a).members}
        cax = co.s_axil
        co_bits = self.co.regmap.addr_bits
        E = self.emu_map.addr_bits

        # ---- prototype registers
        irq_status = Signal(2)
        irq_enable = Signal(2)
        wr_en, wr_addr, wr_data = Signal(), Signal(a), Signal(_DATA)
        word = wr_addr[2:a - 1]
        tile_sel = word[E:E + self.tile_bits]
        for t, emu in enumerate(emus):
            m.d.comb += [emu.wr_en.eq(wr_en & (tile_sel == t)), emu.wr_addr.eq(word[:E]), emu.wr_data.eq(wr_data)]
        set_bits = Signal(2)
        done_q = Signal()  # the co-processor's done, one cycle late: its rising edge sets DONE
        m.d.sync += done_q.eq(co.done)
        m.d.comb += set_bits.eq((co.done & ~done_q) | ((co.error | (sum(e.err for e in emus) != 0)) << 1))
        clr = Signal(2)
        with m.If(wr_en & (tile_sel == self.tiles)):
            with m.If(word[:E] == IRQ_STATUS):
                m.d.comb += clr.eq(wr_data[:2])
            with m.If(word[:E] == IRQ_ENABLE):
                m.d.sync += irq_enable.eq(wr_data[:2])
        m.d.sync += [irq_status.eq((irq_status & ~clr) | set_bits), self.irq.eq((irq_status & irq_enable) != 0)]

        # ---- write channel
        aw_done, w_done = Signal(), Signal()
        bresp = Signal(2)
        m.d.sync += wr_en.eq(0)
        with m.FSM(name="wr"):
            with m.State("IDLE"):
                both = s["awvalid"] & s["wvalid"]
                m.d.comb += [s["awready"].eq(both), s["wready"].eq(both)]
                with m.If(both):
                    m.d.sync += [wr_addr.eq(s["awaddr"]), wr_data.eq(s["wdata"]), bresp.eq(0),
                                 aw_done.eq(0), w_done.eq(0)]
                    with m.If(s["awaddr"][a - 1]):
                        m.d.sync += wr_en.eq(1)
                        m.next = "RESP"
                    with m.Else():
                        m.next = "FWD"
            with m.State("FWD"):
                m.d.comb += [cax.awaddr.eq(wr_addr[:co_bits]), cax.awvalid.eq(~aw_done),
                             cax.wdata.eq(wr_data), cax.wstrb.eq(0xF), cax.wvalid.eq(~w_done), cax.bready.eq(1)]
                with m.If(cax.awready):
                    m.d.sync += aw_done.eq(1)
                with m.If(cax.wready):
                    m.d.sync += w_done.eq(1)
                with m.If(cax.bvalid):
                    m.d.sync += bresp.eq(cax.bresp)
                    m.next = "RESP"
            with m.State("RESP"):
                m.d.comb += [s["bvalid"].eq(1), s["bresp"].eq(bresp)]
                with m.If(s["bready"]):
                    m.next = "IDLE"

        # ---- read channel
        rd_addr, rdata, rresp = Signal(a), Signal(_DATA), Signal(2)
        with m.FSM(name="rd"):
            with m.State("IDLE"):
                m.d.comb += s["arready"].eq(1)
                with m.If(s["arvalid"]):
                    m.d.sync += [rd_addr.eq(s["araddr"]), rresp.eq(0), rdata.eq(0)]
                    with m.If(s["araddr"][a - 1]):
                        rword = s["araddr"][2:a - 1]
                        with m.If(rword[E:E + self.tile_bits] == self.tiles):
                            with m.If(rword[:E] == IRQ_STATUS):
                                m.d.sync += rdata.eq(irq_status)
                            with m.If(rword[:E] == IRQ_ENABLE):
                                m.d.sync += rdata.eq(irq_enable)
                        m.next = "RESP"
                    with m.Else():
                        m.next = "FWD"
            with m.State("FWD"):
                m.d.comb += [cax.araddr.eq(rd_addr[:co_bits]), cax.arvalid.eq(~_ar_taken(m, cax)),
                             cax.rready.eq(1)]
                with m.If(cax.rvalid):
                    m.d.sync += [rdata.eq(cax.rdata), rresp.eq(cax.rresp)]
                    m.next = "RESP"
            with m.State("RESP"):
                m.d.comb += [s["rvalid"].eq(1), s["rdata"].eq(rdata), s["rresp"].eq(rresp)]
                with m.If(s["rready"]):
                    m.next = "IDLE"
        return m


def _ar_taken(m: Module, cax) -> Signal:
    """``arvalid`` bookkeeping of a forwarded read: high once the co-processor took the address."""
    done = Signal(name="ar_done")
    with m.If(cax.arvalid & cax.arready):
        m.d.sync += done.eq(1)
    with m.If(cax.rvalid & cax.rready):
        m.d.sync += done.eq(0)
    return done


#: Example LPF for an LFE5U-85F in CABGA381 (LFE5U-85F-6BG381C, -7, -8: one die, package and pin-out; pins of the
#: ULX3S board: its 25 MHz oscillator on G2, button 1 on R1). Clock and reset only: the AXI buses are meant for an
#: on-chip soft CPU (e.g. a LiteX VexRiscv) or a JTAG/UART-to-AXI bridge, not for package pins (the prototype's
#: ~200 AXI bits exceed the 197 user I/O of CABGA381). The FREQUENCY line is the 100 MHz timing target of
#: :func:`rtl.fpga.run_prototype`; the prototype holds no PLL, so on a ULX3S (25 MHz on G2) a board design adds
#: one (an EHXPLLL) and constrains its output instead.
EXAMPLE_LPF = """\
# aimc prototype: example constraints for the LFE5U-85F in CABGA381 (LFE5U-85F-xBG381C; ULX3S pin-out).
# Clock and reset only. The s_axil_* / s_axis_* / m_axis_* buses and the irq output connect on chip
# to a soft CPU (e.g. LiteX + VexRiscv) or a JTAG/UART-to-AXI bridge; they get no pins.
# FREQUENCY is the 100 MHz timing target. The prototype holds no PLL: on a ULX3S, G2 carries the
# board's 25 MHz oscillator, so a board design adds a PLL (EHXPLLL) and constrains its output instead.
LOCATE COMP "clk" SITE "G2";
IOBUF PORT "clk" PULLMODE=NONE IO_TYPE=LVCMOS33;
FREQUENCY PORT "clk" 100 MHZ;
LOCATE COMP "rst" SITE "R1";
IOBUF PORT "rst" PULLMODE=DOWN IO_TYPE=LVCMOS33;
"""


class PnrHarness(wiring.Component):
    """Place-and-route harness: the :class:`Prototype` with its AXI buses kept on chip.

    Every AXI/``irq`` input of the prototype is a bit of a shift register loaded from
    ``tdi``; every output is captured each cycle into a register chain XOR-folded onto
    ``tdo``. Nothing is constant, so synthesis keeps the whole prototype, and the AXI
    nets are internal, registered nets (as with an on-chip CPU), while the package sees
    only ``clk``, ``rst``, ``tdi`` and ``tdo``. Used by :func:`rtl.fpga.run_prototype` only.

    **Reset** (issue 19): the ``rst`` pin is asynchronous to ``clk`` (a button); as a system's
    reset block does for an AXI core, the harness synchronizes it (:data:`RESET_SYNC_STAGES`
    flip-flops, not reset themselves) and distributes the result on a global network (an ECP5
    ``DCCA`` buffer: one of the device's primary clock lines, built for high fan-out) to the
    prototype, whose own reset (``rst``: synchronous, active high) is then a timed path from one
    flip-flop instead of the pin's unconstrained route into every flip-flop. The prototype is
    held in reset from ``RESET_SYNC_STAGES`` cycles after the pin rises until
    ``RESET_SYNC_STAGES`` cycles after it falls. The shift registers need no reset.

    Members
    -------
    tdi : In(1)
    tdo : Out(1)
    """

    def __init__(self, spec: ChipSpec):
        self.proto = Prototype(spec)
        super().__init__({"tdi": In(1), "tdo": Out(1)})

    def elaborate(self, platform):
        from amaranth.hdl import Cat, ClockDomain, ClockSignal, Const, DomainRenamer, Instance, ResetSignal

        m = Module()
        # reset synchronizer -> global buffer -> the prototype's domain (same clock)
        rs = m.submodules.rst_sync = ResetSync()
        m.d.comb += rs.i.eq(ResetSignal())
        m.domains.core = core = ClockDomain("core")
        m.d.comb += core.clk.eq(ClockSignal())
        m.submodules.rst_global = Instance("DCCA", i_CLKI=rs.o, i_CE=Const(1), o_CLKO=core.rst)
        p = m.submodules.proto = DomainRenamer("core")(self.proto)
        ins = [getattr(p, n) for n, mem in p.signature.members.items() if mem.flow == In]
        outs = [getattr(p, n) for n, mem in p.signature.members.items() if mem.flow == Out]
        chain = Signal(sum(len(s) for s in ins), reset_less=True)
        m.d.sync += chain.eq(Cat(self.tdi, chain[:-1]))
        pos = 0
        for sig in ins:
            m.d.comb += sig.eq(chain[pos:pos + len(sig)])
            pos += len(sig)
        cap = Signal(sum(len(s) for s in outs), reset_less=True)
        m.d.sync += cap.eq(Cat(*outs) ^ Cat(cap[1:], 0))
        tdo = Signal(reset_less=True)
        m.d.sync += tdo.eq(cap[0])
        m.d.comb += self.tdo.eq(tdo)
        return m


#: Flip-flops of :class:`PnrHarness`'s reset synchronizer (two: the usual metastability margin).
RESET_SYNC_STAGES = 2


class ResetSync(wiring.Component):
    """Reset synchronizer: ``o`` is ``i`` delayed by :data:`RESET_SYNC_STAGES` flip-flops of the ``sync`` domain.

    The flip-flops are not reset (their input is the reset) and start at 1, so a design comes up held in reset.
    Assertion and release both take ``RESET_SYNC_STAGES`` cycles; a pulse on ``i`` shorter than a cycle may be
    missed (a button's is not).

    Members
    -------
    i : In(1)
        The asynchronous reset (a pin).
    o : Out(1)
        The synchronized reset, a flip-flop.
    """

    def __init__(self):
        super().__init__({"i": In(1), "o": Out(1)})

    def elaborate(self, platform):
        m = Module()
        stages = [Signal(init=1, reset_less=True, name=f"rst_sync{k}") for k in range(RESET_SYNC_STAGES)]
        m.d.sync += [stages[0].eq(self.i)] + [stages[k].eq(stages[k - 1]) for k in range(1, len(stages))]
        m.d.comb += self.o.eq(stages[-1])
        return m
