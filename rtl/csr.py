"""AXI4-Lite configuration registers generated from a list of register definitions.

Micro-architecture
------------------
:class:`CSRBank` is an AXI4-Lite slave (AMBA AXI4-Lite, ARM IHI 0022: five
channels AW, W, B, AR, R; 32-bit data, byte strobes) in front of a bank of
32-bit registers described as data (:class:`Register`, :class:`Field`), so the
same list generates the hardware, the Markdown register map and the encode
helpers the configuration compiler uses (:mod:`rtl.regmap`).

- **Write path**: AW and W are accepted independently (each has a one-entry
  holding register; ``awready``/``wready`` depend only on that register, never
  on ``valid``), so a manager may send them in either order or together. When
  both are held and no response is pending, the write happens and ``bvalid``
  rises the next cycle: 2 cycles from the last of AW/W to ``bvalid``, one write
  every 3 cycles. ``wstrb`` masks the write byte by byte. The write itself is
  pipelined: the address is decoded into one hit flip-flop per register when AW is
  taken, the write registers a strobe per register and the masked data, and the
  register changes on the next edge, :data:`WRITE_LATENCY` = 1 cycle after
  ``bvalid`` rises (before any later write or read can see it: a read returns
  ``READ_LATENCY`` cycles after its AR).
- **Read path**: AR is accepted when no read is in flight or pending; a
  3-stage pipeline (:data:`READ_LATENCY`): the address is decoded into one hit
  flip-flop per register, then each group of :data:`READ_GROUP` registers
  (address order) ANDs and ORs its hits and words into a register, then the
  groups' OR gives the registered ``rdata``/``rresp`` and ``rvalid``: 3 cycles
  from AR to ``rvalid``. No stage has more than an address decode, an 8-way
  AND-OR, or a ``ceil(registers / 8)``-way OR (a
  one-stage multiplexer of every register, 173 on tiny, was a deep path from
  flip-flops all over the design; AXI4-Lite allows any read latency). Reads
  have no side effects.
- **Responses**: OKAY (``0b00``) for a mapped address, SLVERR (``0b10``) for an
  address no register decodes; such a write changes nothing and such a read
  returns 0. Writes to read-only fields are ignored (OKAY).

Field access kinds (:class:`Access`):

``RW``   read/write; the bank owns the value and drives it out (``Out``).
``RO``   read-only; the value comes in from the design (``In``), or is a
         constant given by ``Field.value`` (no port).
``W1C``  sticky flag owned by the bank: set by a pulse from the design
         (``<field>_set``, ``In``), cleared by writing 1 (set wins when both
         happen in one cycle, so no event is lost).
``W1P``  write 1 to pulse: the ``Out`` is high for exactly one cycle after the
         write; reads return 0 (``start``, ``clear``, memory write strobes).

Trade-off: one outstanding transaction per direction keeps the slave small
(a few hundred flip-flops) at the cost of bandwidth, which configuration does
not need.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ._util import reject

__all__ = ["Access", "Field", "Register", "AXI4LiteSignature", "CSRBank", "READ_GROUP", "READ_LATENCY", "RESP_OKAY",
           "RESP_SLVERR", "WRITE_LATENCY", "ident"]

#: AXI response codes (AMBA AXI, "BRESP/RRESP encoding").
RESP_OKAY = 0b00
RESP_SLVERR = 0b10
DATA_BITS = 32
#: Registers per group of the read pipeline's first multiplexer stage (:class:`CSRBank`, read path).
READ_GROUP = 8
#: Cycles from an accepted AR to ``rvalid`` (:class:`CSRBank`, read path).
READ_LATENCY = 3
#: Cycles from ``bvalid`` rising to the written value on the register's ports (:class:`CSRBank`, write path).
WRITE_LATENCY = 1


def _or_all(words):
    """Bitwise OR of a list of equal-width values (0 for an empty list)."""
    out = Const(0, DATA_BITS)
    for w in words:
        out = out | w
    return out


class Access(str, Enum):
    """Access kind of a register field (see the module docstring)."""

    RW = "RW"
    RO = "RO"
    W1C = "W1C"
    W1P = "W1P"


@dataclass(frozen=True)
class Field:
    """One field of a register.

    Attributes
    ----------
    name : str
        Field name (a Python identifier), unique in its register.
    width : int
        Bits, 1..32.
    offset : int
        Least significant bit in the 32-bit register.
    access : Access
    reset : int
        Value after reset (RW, W1C), unsigned encoding.
    meaning : str
        One line for the register map (units included).
    signed : bool
        The design reads the field as two's complement (encode helpers accept
        negative values).
    value : int or None
        For a constant RO field: its value (no port).
    """

    name: str
    width: int
    offset: int
    access: Access
    reset: int = 0
    meaning: str = ""
    signed: bool = False
    value: int | None = None

    def __post_init__(self):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"field name {self.name!r} must be a lower-case identifier")
        if not 1 <= self.width <= DATA_BITS or not 0 <= self.offset or self.offset + self.width > DATA_BITS:
            raise ValueError(f"field {self.name!r}: bits [{self.offset + self.width - 1}:{self.offset}] do not fit 32 bits")
        if not 0 <= self.reset < 2 ** self.width:
            raise ValueError(f"field {self.name!r}: reset {self.reset} does not fit {self.width} bits")
        if self.value is not None and (self.access != Access.RO or not 0 <= self.value < 2 ** self.width):
            raise ValueError(f"field {self.name!r}: a constant value needs RO access and must fit {self.width} bits")

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.offset

    @property
    def bits(self) -> str:
        """Bit range as in data sheets: ``"7:0"`` or ``"3"``."""
        hi = self.offset + self.width - 1
        return f"{hi}:{self.offset}" if self.width > 1 else f"{self.offset}"

    def encode(self, value: int) -> int:
        """``value`` placed at this field's bits (two's complement when signed).

        Raises
        ------
        ValueError
            If ``value`` does not fit the field.
        """
        lo, hi = (-(1 << (self.width - 1)), (1 << (self.width - 1)) - 1) if self.signed else (0, (1 << self.width) - 1)
        if not isinstance(value, int) or not lo <= value <= hi:
            raise ValueError(f"field {self.name!r}: value {value!r} out of range [{lo}, {hi}]")
        return (value & ((1 << self.width) - 1)) << self.offset

    def decode(self, word: int) -> int:
        raw = (word >> self.offset) & ((1 << self.width) - 1)
        if self.signed and raw >> (self.width - 1):
            raw -= 1 << self.width
        return raw


@dataclass(frozen=True)
class Register:
    """One 32-bit register: a name, a byte address (multiple of 4), fields.

    Raises
    ------
    ValueError
        If the address is not word-aligned, fields overlap or repeat a name.
    """

    name: str
    address: int
    fields: tuple[Field, ...]
    meaning: str = ""

    def __post_init__(self):
        if self.address % 4 or self.address < 0:
            raise ValueError(f"register {self.name!r}: address {self.address:#x} is not a multiple of 4")
        used, names = 0, set()
        for f in self.fields:
            if f.mask & used:
                raise ValueError(f"register {self.name!r}: field {f.name!r} overlaps another field")
            if f.name in names:
                raise ValueError(f"register {self.name!r}: field {f.name!r} appears twice")
            used |= f.mask
            names.add(f.name)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"register {self.name!r} has no field {name!r}; fields: {[f.name for f in self.fields]}")

    @property
    def reset_value(self) -> int:
        return sum(f.reset << f.offset for f in self.fields if f.access in (Access.RW, Access.W1C))


def ident(name: str) -> str:
    """Port-safe identifier of a register name: ``tile0.tc.k_rows`` -> ``tile0_tc_k_rows``."""
    return re.sub(r"[^A-Za-z0-9]", "_", name)


def AXI4LiteSignature(addr_bits: int, data_bits: int = DATA_BITS) -> wiring.Signature:  # noqa: N802
    """AXI4-Lite signature seen from the **manager** (use ``In(...)`` on a slave).

    Members (manager view): ``awaddr``, ``awprot``, ``awvalid``, ``wdata``,
    ``wstrb``, ``wvalid``, ``bready``, ``araddr``, ``arprot``, ``arvalid``,
    ``rready`` are ``Out``; ``awready``, ``wready``, ``bresp``, ``bvalid``,
    ``arready``, ``rdata``, ``rresp``, ``rvalid`` are ``In``.
    """
    return wiring.Signature({
        "awaddr": Out(addr_bits), "awprot": Out(3), "awvalid": Out(1), "awready": In(1),
        "wdata": Out(data_bits), "wstrb": Out(data_bits // 8), "wvalid": Out(1), "wready": In(1),
        "bresp": In(2), "bvalid": In(1), "bready": Out(1),
        "araddr": Out(addr_bits), "arprot": Out(3), "arvalid": Out(1), "arready": In(1),
        "rdata": In(data_bits), "rresp": In(2), "rvalid": In(1), "rready": Out(1),
    })


def _register_signature(reg: Register) -> wiring.Signature | None:
    members = {}
    for f in reg.fields:
        if f.access == Access.RW:
            members[f.name] = Out(unsigned(f.width), init=f.reset)
        elif f.access == Access.W1P:
            members[f.name] = Out(unsigned(f.width))
        elif f.access == Access.W1C:
            members[f.name] = Out(unsigned(f.width), init=f.reset)
            members[f"{f.name}_set"] = In(unsigned(f.width))
        elif f.value is None:
            members[f.name] = In(unsigned(f.width))
    return wiring.Signature(members) if members else None


class CSRBank(wiring.Component):
    """AXI4-Lite slave register bank generated from register definitions.

    Parameters
    ----------
    registers : sequence of Register
        The registers; addresses unique and below ``2**addr_bits``.
    addr_bits : int
        Byte-address width of the AXI4-Lite bus (default 16: 64 KiB window).

    Members
    -------
    bus : In(AXI4LiteSignature(addr_bits))
        AXI4-Lite slave, 32-bit data. Write response 2 cycles after the later
        of AW and W; read data 3 cycles after AR (:data:`READ_LATENCY`). One transaction per
        direction in flight (a write every 3 cycles, a read every 4).
    <register ident> : Out(Signature)
        One member per register with ports (``ident(register.name)``):
        ``<field> : Out(width)`` for RW (registered), W1P (one-cycle pulse) and
        W1C (sticky value); ``<field>_set : In(width)`` for W1C;
        ``<field> : In(width)`` for non-constant RO fields.

    Raises
    ------
    ValueError
        If two registers share an address or a name, or an address does not
        fit ``addr_bits``.
    """

    def __init__(self, registers, *, addr_bits: int = 16):
        self.registers = tuple(registers)
        self.addr_bits = addr_bits
        seen_addr, seen_name = {}, set()
        for r in self.registers:
            if not isinstance(r, Register):
                raise reject(self, TypeError(f"registers must be Register objects, got {r!r}"))
            if r.address in seen_addr:
                raise reject(self, ValueError(f"registers {seen_addr[r.address]!r} and {r.name!r} share address "
                                              f"{r.address:#x}"))
            if ident(r.name) in seen_name:
                raise reject(self, ValueError(f"register name {r.name!r} appears twice"))
            if r.address >= 2 ** addr_bits:
                raise reject(self, ValueError(f"register {r.name!r} at {r.address:#x} does not fit addr_bits={addr_bits}"))
            seen_addr[r.address] = r.name
            seen_name.add(ident(r.name))
        members = {"bus": In(AXI4LiteSignature(addr_bits))}
        for r in self.registers:
            sig = _register_signature(r)
            if sig is not None:
                members[ident(r.name)] = Out(sig)
        super().__init__(members)

    def ports_of(self, name: str):
        """The interface object of register ``name`` (its field ports)."""
        return getattr(self, ident(name))

    def elaborate(self, platform):
        m = Module()
        bus = self.bus

        # ---- write channel holding registers
        aw_held, w_held = Signal(), Signal()
        w_data, w_strb = Signal(DATA_BITS), Signal(DATA_BITS // 8)
        bvalid, bresp = Signal(), Signal(2)
        m.d.comb += [bus.awready.eq(~aw_held), bus.wready.eq(~w_held), bus.bvalid.eq(bvalid), bus.bresp.eq(bresp)]
        with m.If(bus.awvalid & ~aw_held):
            m.d.sync += aw_held.eq(1)
        with m.If(bus.wvalid & ~w_held):
            m.d.sync += [w_held.eq(1), w_data.eq(bus.wdata), w_strb.eq(bus.wstrb)]
        with m.If(bvalid & bus.bready):
            m.d.sync += bvalid.eq(0)

        do_write = Signal()
        m.d.comb += do_write.eq(aw_held & w_held & ~bvalid)
        bitmask = Signal(DATA_BITS)
        for b in range(DATA_BITS // 8):
            m.d.comb += bitmask[8 * b:8 * b + 8].eq(w_strb[b].replicate(8))
        wbits = Signal(DATA_BITS)
        m.d.comb += wbits.eq(w_data & bitmask)

        # the write address decodes to a register: decided from awaddr when AW is taken, into one hit flip-flop
        # per register (one-hot) and hit_any, so neither the response nor the write waits for a decode
        hit_any, aw_decodes = Signal(), Signal()
        with m.Switch(bus.awaddr[2:]):
            for r in self.registers:
                with m.Case(r.address >> 2):
                    m.d.comb += aw_decodes.eq(1)
        with m.If(bus.awvalid & ~aw_held):
            m.d.sync += hit_any.eq(aw_decodes)
        # write pipeline (issue 19): do_write registers a write strobe per register and the masked data
        # (we_<reg>, wr_data, wr_mask); the registers change on the next edge, one cycle after bvalid rises
        # (:data:`WRITE_LATENCY`), so no path runs from the address compare through every register's enable
        wr_data, wr_mask = Signal(DATA_BITS), Signal(DATA_BITS)
        m.d.sync += [wr_data.eq(wbits), wr_mask.eq(bitmask)]
        for r in self.registers:
            aw_hit = Signal(name=f"aw_hit_{ident(r.name)}")
            with m.If(bus.awvalid & ~aw_held):
                m.d.sync += aw_hit.eq(bus.awaddr[2:] == (r.address >> 2))
            hit = Signal(name=f"we_{ident(r.name)}")
            m.d.sync += hit.eq(do_write & aw_hit)
            ports = getattr(self, ident(r.name), None)
            for f in r.fields:
                sl = slice(f.offset, f.offset + f.width)
                if f.access == Access.RW:
                    port = getattr(ports, f.name)
                    with m.If(hit):
                        m.d.sync += port.eq((port & ~wr_mask[sl]) | wr_data[sl])
                elif f.access == Access.W1P:
                    port = getattr(ports, f.name)
                    m.d.sync += port.eq(0)
                    with m.If(hit):
                        m.d.sync += port.eq(wr_data[sl])
                elif f.access == Access.W1C:
                    port = getattr(ports, f.name)
                    set_ = getattr(ports, f"{f.name}_set")
                    clr = Signal(f.width, name=f"clr_{ident(r.name)}_{f.name}")
                    with m.If(hit):
                        m.d.comb += clr.eq(wr_data[sl])
                    m.d.sync += port.eq((port & ~clr) | set_)
        with m.If(do_write):
            m.d.sync += [aw_held.eq(0), w_held.eq(0), bvalid.eq(1)]
            with m.If(~hit_any):
                m.d.sync += bresp.eq(RESP_SLVERR)
            with m.Else():
                m.d.sync += bresp.eq(RESP_OKAY)

        # ---- read channel: a 3-stage pipeline (a multiplexer of every register would be one deep stage:
        # the address decode and a wide OR tree after flip-flops spread over the whole design, in context)
        #   R0: AR accepted -> one hit flip-flop per register (the address decode, one-hot)
        #   R1: per group of READ_GROUP registers (address order), the AND-OR of hits and words
        #   R2: OR of the groups -> rdata, rresp (SLVERR when no register hit), rvalid
        rvalid, rresp, rdata = Signal(), Signal(2), Signal(DATA_BITS)
        r0_valid, r1_valid, r0_any, r1_any = Signal(), Signal(), Signal(), Signal()
        m.d.comb += [bus.arready.eq(~rvalid & ~r0_valid & ~r1_valid), bus.rvalid.eq(rvalid),
                     bus.rresp.eq(rresp), bus.rdata.eq(rdata)]
        with m.If(rvalid & bus.rready):
            m.d.sync += rvalid.eq(0)
        ar_take = bus.arvalid & bus.arready
        m.d.sync += [r0_valid.eq(ar_take), r1_valid.eq(r0_valid), r1_any.eq(r0_any)]
        ordered = sorted(self.registers, key=lambda r: r.address)
        rd_hit = {}
        for r in ordered:
            rd_hit[r.name] = h = Signal(name=f"rd_hit_{ident(r.name)}")
            m.d.sync += h.eq(ar_take & (bus.araddr[2:] == (r.address >> 2)))
        hit_any_rd = Signal()
        with m.Switch(bus.araddr[2:]):
            for r in ordered:
                with m.Case(r.address >> 2):
                    m.d.comb += hit_any_rd.eq(1)
        m.d.sync += r0_any.eq(hit_any_rd)
        groups = [ordered[i:i + READ_GROUP] for i in range(0, len(ordered), READ_GROUP)]
        g_data = [Signal(DATA_BITS, name=f"rd_group{k}") for k in range(len(groups))]
        for grp, gd in zip(groups, g_data, strict=True):
            m.d.sync += gd.eq(_or_all([Mux(rd_hit[r.name], self._read_word(r), 0) for r in grp]))
        with m.If(r1_valid):
            m.d.sync += [rvalid.eq(1), rdata.eq(_or_all(g_data)),
                         rresp.eq(Mux(r1_any, RESP_OKAY, RESP_SLVERR))]
        return m

    def _read_word(self, r: Register):
        ports = getattr(self, ident(r.name), None)
        parts, pos = [], 0
        for f in sorted(r.fields, key=lambda f: f.offset):
            if f.offset > pos:
                parts.append(Const(0, f.offset - pos))
            if f.access == Access.W1P:
                parts.append(Const(0, f.width))
            elif f.value is not None:
                parts.append(Const(f.value, f.width))
            else:
                parts.append(getattr(ports, f.name).as_unsigned()[:f.width])
            pos = f.offset + f.width
        if pos < DATA_BITS:
            parts.append(Const(0, DATA_BITS - pos))
        return Cat(*parts)
