"""The co-processor's register map, derived from the RTL's own definitions.

Every configuration and status port of the datapath blocks -- the tile
controller (:class:`rtl.tile_controller.TileController`), the affine unit
(:class:`rtl.affine.AffineUnit`, including its coefficient-memory write port),
the digital datapath (:class:`rtl.digital.DigitalDatapath`) -- becomes register
fields by introspecting the component's :class:`~amaranth.lib.wiring.Signature`
(name, width, signedness, direction) and its docstring's ``Members`` section
(the meaning). Nothing is typed twice: a port added to a block appears in the
map, the generated CSR bank (:class:`rtl.csr.CSRBank`) and the Markdown table.

Rules
-----
- An ``In`` port named in :data:`PULSE_PORTS` (``start``, ``stop``, ``clear``,
  ``coef_we``, ``w_load``) is a **W1P** bit in the block's ``ctrl`` register.
- Any other ``In`` port is **RW**, one register per port (name = port name);
  a port wider than 32 bits spans ``<port>`` (bits 31:0) and ``<port>_hi``.
- ``Out`` ports are **RO** fields packed in order into ``status``,
  ``status1``, ... registers.
- Stream members (the data path) are not registers.
- Added by the top level: the network interfaces' routing destinations
  (``dest`` registers: ``x``, ``y`` of the tile or node the block's results
  go to), the chip identification constants, and the mesh's sticky
  ``misrouted`` flag (W1C).

Address layout (byte addresses, 32-bit registers)
-------------------------------------------------
``0x0000`` chip (id, geometry, status), ``0x0100`` digital datapath,
``0x0180`` digital datapath network interface, ``0x1000 + t * 0x100`` tile
``t`` (row-major, ``t = y * cols + x``): ``+0x00`` tile controller, ``+0x40``
affine unit, ``+0x80`` network interface, ``+0xC0`` patch buffer (``lb``: line
buffer of a conv layer, :func:`_patch_registers`), ``+0xE0`` pool unit on the
tile's output stream (``pool``, :func:`_pool_registers`), ``+0xA0`` residual join before the tile
(``add``, :func:`_join_registers`); ``0x0150`` the digital datapath's per-slot vector counts
(``digital.vectors``), ``0x01C0`` the digital node's input join (``digital.add``), ``0x01E0`` the pool
after it (``digital.ipool``), ``0x0200`` the digital node's patch buffer (``digital.lb``); version 8 (the
dataflow units exist only on chips that have them: :func:`dataflow_units`; ``chip.id.units`` says
which). Addresses are stable for a given
chip description; the map's hash goes into the Markdown so a configuration
compiled for one map is not replayed on another.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from amaranth.hdl import Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import Flow

from archmodel.spec import ChipSpec

from .csr import DATA_BITS, Access, Field, Register
from .router import grid_coord_bits

__all__ = ["DEST_BEAT_BITS", "DIGITAL_ADD_BASE", "DIGITAL_DESTS", "DIGITAL_IPOOL_BASE", "DIGITAL_POOL_BASE",
           "UNIT_KEYS", "dataflow_units", "dest_entries",
           "DIGITAL_QUEUES", "DIGITAL_QUEUE_BEATS", "source_bits", "source_tag",
            "TILE_DESTS", "PULSE_PORTS", "PATCH_REGISTERS", "JOIN_PORTS", "POOL_PORTS", "POOL_REGISTERS", "Binding",
           "RegisterMap", "build_regmap", "regmap_markdown", "block_registers",
           "CHIP_BASE", "DIGITAL_BASE",
           "DIGITAL_VECTORS_ADDR", "DIGITAL_VECTOR_PORTS", "DIGITAL_LB_BASE", "DIGITAL_NI_BASE", "TILE_BASE",
           "TILE_STRIDE", "ID_MAGIC",
           "REGMAP_VERSION", "UNIT_BITS", "units_code"]

#: Input ports that are one-cycle commands rather than levels.
PULSE_PORTS = frozenset({"start", "stop", "clear", "coef_we", "w_load"})
CHIP_BASE, DIGITAL_BASE, DIGITAL_NI_BASE = 0x0000, 0x0100, 0x0180
#: The digital datapath's pool unit (issue 18), in the digital block's spare space before its NI.
DIGITAL_POOL_BASE = 0x0160
#: The digital node's input join (``digital.add.*``) and the pool after it (``digital.ipool.*``): free space
#: after the digital NI's 64 bytes (issue 18, ``digits-resnet``'s b2_add -> global average pool -> fc).
DIGITAL_ADD_BASE, DIGITAL_IPOOL_BASE = 0x01C0, 0x01E0
TILE_BASE, TILE_STRIDE = 0x1000, 0x100
TC_OFFSET, AFFINE_OFFSET, NI_OFFSET, LB_OFFSET, POOL_OFFSET = 0x00, 0x40, 0x80, 0xC0, 0xE0
ID_MAGIC = 0xA1C0
#: 2: destination entries (lo, hi, chan, en; dest1..); 3: two digital layer slots, source queues;
#: 4: digital weights over AXI4-Stream (w_data / w_we gone); 5: the tiles' patch buffers (``tile<t>.lb.*`` at
#: +0xC0; every other register unchanged); 6: the digital node's pool unit (``digital.pool.*`` at 0x160) and
#: destination entries per chip (``interconnect.tile_dest_entries`` / ``digital_dest_entries``; entries 8.. of a
#: tile at +0x20; every other register unchanged); 7: per-slot vector counts of the digital datapath
#: (``digital.vectors`` at 0x150: ``n_vectors0``, ``n_vectors1``, reset 1 = the v6 behaviour), the digital node's
#: input join and pool (``digital.add.*`` at 0x1C0, ``digital.ipool.*`` at 0x1E0) and its patch buffer
#: (``digital.lb.*`` at 0x200, ``en`` = 0: bypass); every other register unchanged; 8: ``chip.id.units`` (bits
#: 24..26, :func:`units_code`), every other register unchanged
REGMAP_VERSION = 8
#: The digital node's patch buffer (``digital.lb.*``, register map v7: conv1's patches on chip), after the NI.
DIGITAL_LB_BASE = 0x0200
#: The digital datapath's per-slot vector counts (register map v7), after its status registers.
DIGITAL_VECTORS_ADDR = 0x0150
#: Digital datapath ports that are not one register each (``digital.vectors`` packs them).
DIGITAL_VECTOR_PORTS = ("n_vectors0", "n_vectors1")


@dataclass(frozen=True)
class Binding:
    """Where a register field goes in the design: ``block``'s port ``port``,
    bits ``port_lsb .. port_lsb + width - 1`` of it (the CSR field's width)."""

    register: str
    field: str
    block: str
    port: str
    port_lsb: int = 0


@dataclass(frozen=True)
class RegisterMap:
    """All registers of one co-processor, as data.

    Attributes
    ----------
    spec_name : str
    registers : tuple of Register
        Sorted by address.
    bindings : tuple of Binding
        Field -> design port, for every field that is not a constant.
    addr_bits : int
        AXI4-Lite byte-address width.
    """

    spec_name: str
    registers: tuple[Register, ...]
    bindings: tuple[Binding, ...]
    addr_bits: int

    def register(self, name: str) -> Register:
        """The register called ``name``; raises ``KeyError`` naming close matches."""
        for r in self.registers:
            if r.name == name:
                return r
        close = [r.name for r in self.registers if name.split(".")[-1] in r.name][:5]
        raise KeyError(f"no register {name!r} in the map of {self.spec_name!r}; similar: {close}")

    def address_of(self, name: str) -> int:
        """Byte address of register ``name`` (e.g. ``"tile0.tc.k_rows"``)."""
        return self.register(name).address

    def field(self, register: str, field: str) -> Field:
        return self.register(register).field(field)

    def encode(self, register: str, **values: int) -> int:
        """32-bit word that writes ``values`` (field name -> value) into ``register``.

        RW fields not given keep their reset value; W1P/W1C fields not given
        are 0 (no pulse, no clear). Raises ``ValueError`` if a value does not
        fit its field, ``KeyError`` for an unknown field.
        """
        reg = self.register(register)
        word = 0
        for f in reg.fields:
            if f.name in values:
                word |= f.encode(values.pop(f.name))
            elif f.access == Access.RW:
                word |= f.reset << f.offset
        if values:
            raise KeyError(f"register {register!r} has no field(s) {sorted(values)}")
        return word

    def write(self, register: str, **values: int) -> tuple[int, int]:
        """``(address, word)`` of one AXI4-Lite write (see :meth:`encode`)."""
        return self.address_of(register), self.encode(register, **values)

    def decode(self, register: str, word: int) -> dict[str, int]:
        """Field values of a word read from ``register``."""
        return {f.name: f.decode(word) for f in self.register(register).fields}

    @property
    def digest(self) -> str:
        """Short hash of the map (addresses, fields, access, resets, constant values)."""
        blob = repr([(r.name, r.address, [(f.name, f.offset, f.width, f.access.value, f.reset, f.value) for f in r.fields])
                     for r in self.registers])
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def markdown(self) -> str:
        return regmap_markdown(self)


def _member_docs(cls) -> dict[str, str]:
    """Port name -> first sentence of its description in ``cls``'s ``Members`` docstring section."""
    doc = cls.__doc__ or ""
    match = re.search(r"\n\s*Members\n\s*-+\n(.*?)(\n\s*\n\s*[A-Z][a-z]+[^\n]*\n\s*-+\n|\Z)", doc, re.S)
    if not match:
        return {}
    out: dict[str, str] = {}
    pending: list[str] = []
    current: list[str] = []
    desc: list[str] = []

    def flush():
        if current:
            text = " ".join(desc).strip()
            text = re.split(r"(?<=[a-z)`]\.)\s+(?=[A-Z])", text)[0] if text else ""
            text = re.sub(r":\w+:`([^`]*)`", r"`\1`", text).replace("``", "`")
            for n in pending + current:
                out[n] = text
    for line in match.group(1).splitlines():
        head = re.match(r"^\s{4}([A-Za-z_][\w, ]*?)\s*:\s*(In|Out)\(", line)
        if head:
            if current and not desc:
                pending.extend(current)  # "a : In(..)" followed directly by "b : In(..)": share b's text
            else:
                flush()
                pending = []
            current = [n.strip() for n in head.group(1).split(",")]
            desc = []
        elif line.strip():
            desc.append(line.strip())
        elif current:
            pass
    flush()
    return out


def block_registers(component: wiring.Component, block: str, base: int, *,
                    docs_from: type | None = None, skip: tuple[str, ...] = ()) -> tuple[list[Register], list[Binding]]:
    """Registers of one block, derived from its signature (module docstring rules).

    Parameters
    ----------
    component : wiring.Component
        The block (only its signature is read; it is not elaborated).
    block : str
        Dotted block name, the register-name prefix (``"tile0.tc"``).
    base : int
        Byte address of the block's first register.
    docs_from : type, optional
        Class whose docstring gives the meanings (default ``type(component)``).
    skip : tuple of str
        Ports mapped elsewhere (packed into a register of their own by the caller).
    """
    docs = _member_docs(docs_from or type(component))
    regs: list[Register] = []
    binds: list[Binding] = []
    addr = base
    pulses: list[Field] = []
    status: list[list[Field]] = [[]]
    status_used = 0
    for name, member in component.signature.members.items():
        if not member.is_port or name in skip:
            continue  # a stream: data path, not configuration (or a port the caller maps)
        shape = Shape.cast(member.shape)
        meaning = docs.get(name, "")
        if member.flow == Flow.In and name in PULSE_PORTS:
            pulses.append(Field(name, shape.width, sum(f.width for f in pulses), Access.W1P, meaning=meaning))
            binds.append(Binding(f"{block}.ctrl", name, block, name))
        elif member.flow == Flow.In:
            for k, lsb in enumerate(range(0, shape.width, DATA_BITS)):
                width = min(DATA_BITS, shape.width - lsb)
                reg_name = f"{block}.{name}" + ("" if k == 0 else f"_hi{k}" if shape.width > 2 * DATA_BITS else "_hi")
                signed = shape.signed and lsb + width == shape.width
                text = meaning if k == 0 else f"bits {lsb + width - 1}:{lsb} of {name}"
                regs.append(Register(reg_name, addr, (Field(name, width, 0, Access.RW, signed=signed, meaning=text),),
                                     meaning=text))
                binds.append(Binding(reg_name, name, block, name, lsb))
                addr += 4
        else:
            if shape.width > DATA_BITS:
                raise ValueError(f"{block}.{name}: status port of {shape.width} bits is wider than a register")
            if status_used + shape.width > DATA_BITS:
                status.append([])
                status_used = 0
            status[-1].append(Field(name, shape.width, status_used, Access.RO, signed=shape.signed, meaning=meaning))
            status_used += shape.width
    if pulses:
        regs.append(Register(f"{block}.ctrl", addr, tuple(pulses), meaning="commands: write 1 to pulse"))
        addr += 4
    for k, fields in enumerate(status):
        if not fields:
            continue
        reg_name = f"{block}.status" + (str(k) if k else "")
        regs.append(Register(reg_name, addr, tuple(fields), meaning="status"))
        binds.extend(Binding(reg_name, f.name, block, f.name) for f in fields)
        addr += 4
    return regs, binds


#: Destination entries of a tile's and of the digital datapath's network interface (rtl.axis.DestFanout)
#: on chips that keep the defaults of ``interconnect.tile_dest_entries`` / ``digital_dest_entries``
#: (the chip's own numbers: :func:`dest_entries`).
TILE_DESTS, DIGITAL_DESTS = 2, 4
#: A tile's destination entries 0..7 sit at its NI offset (0x80, up to the join at 0xA0); entries 8..15 in the
#: tile controller's unused register space from this offset (0x20 .. 0x3C).
TILE_DEST_EXT_OFFSET, TILE_DEST_BLOCK = 0x20, 8


#: The chip description's dataflow units (issue 18) by register block: ``lb`` line buffers, ``pool`` pool units
#: (tiles and digital node), ``add`` residual joins.
UNIT_KEYS = {"lb": "line_buffers", "pool": "pool_units", "add": "residual_joins"}


def dataflow_units(spec: ChipSpec) -> dict[str, bool]:
    """Which dataflow units the chip has: ``{"lb": .., "pool": .., "add": ..}`` from ``interconnect.line_buffers``,
    ``pool_units``, ``residual_joins`` (all default true; ``add`` covers the tiles' joins and the digital node's
    input join with its pool, ``pool`` the pool units on the tiles' and the digital node's results). A chip
    without a unit has neither its hardware (:class:`rtl.top.Coprocessor`) nor its registers; the register
    compiler refuses a layer that needs it."""
    ic = spec.interconnect
    return {block: bool(getattr(ic, key, True)) for block, key in UNIT_KEYS.items()}


#: Bit of each dataflow unit in ``chip.id.units`` (register map v8).
UNIT_BITS = {"lb": 0, "pool": 1, "add": 2}


def units_code(spec: ChipSpec) -> int:
    """``chip.id.units``: bit 0 line buffers, bit 1 pool units, bit 2 residual joins (:func:`dataflow_units`), so
    a driver tells ``tiny`` (0b111) from ``tiny-fpga`` (0b000) without probing for SLVERR."""
    return sum(1 << UNIT_BITS[u] for u, present in dataflow_units(spec).items() if present)


def dest_entries(spec: ChipSpec) -> tuple[int, int]:
    """``(tile, digital)``: destination entries of a tile's and of the digital datapath's network interface.

    From the chip description (``interconnect.tile_dest_entries``, default 2, and
    ``interconnect.digital_dest_entries``, default 4; bounds 1..16 and 1..11 from the register space:
    16 tile entries = 8 at the NI offset + 8 in the tile controller's spare space, 11 digital entries + the
    ``out1`` and 4 source-queue registers fill the digital NI's 64 bytes).
    """
    ic = spec.interconnect
    return int(getattr(ic, "tile_dest_entries", TILE_DESTS)), int(getattr(ic, "digital_dest_entries", DIGITAL_DESTS))
#: Width of the beat-range fields ``lo`` / ``hi`` of a destination entry (up to 255 beats a vector).
DEST_BEAT_BITS = 8
#: Source queues of the digital datapath's input (rtl.axis.SourceMerge) and their depth in ``act`` beats: 128 holds
#: one round of either queue of digits-cnn (conv1's 64 host vectors of 2 beats; relu3's 16 pixels of 4 beats), the
#: no-full-queue rule of rtl/digital.py (was 16, enough for one vector per round).
DIGITAL_QUEUES, DIGITAL_QUEUE_BEATS = 4, 128


def source_tag(spec: ChipSpec, node: int | str) -> int:
    """Source tag a packet carries (``rtl.axis.tagged_layout``): tile ``t`` -> ``t``, ``"host"`` -> tiles,
    ``"digital"`` -> tiles + 1."""
    tiles = spec.tile_grid.rows * spec.tile_grid.cols
    if node == "host":
        return tiles
    if node == "digital":
        return tiles + 1
    if not isinstance(node, int) or not 0 <= node < tiles:
        raise ValueError(f"no source {node!r} on a chip of {tiles} tiles")
    return node


def source_bits(spec: ChipSpec) -> int:
    """Width of the source tag: tiles + 2 sources (the host and the digital datapath)."""
    return (spec.tile_grid.rows * spec.tile_grid.cols + 1).bit_length()


def _digital_ni_registers(spec: ChipSpec, address: int, x_bits: int, y_bits: int,
                          elem_bits: int) -> tuple[list[Register], list[Binding]]:
    """``digital.out1`` (where layer slot 1's results go) and ``digital.src<q>`` (the source queues).

    ``out1``: ``x`` [x_bits at 0], ``chan`` [1 at 6], ``y`` [y_bits at 16] (with ``two_layers``, the
    results of slot 1 go there; slot 0's follow the ``dest`` entries). ``src<q>``: ``src`` [tag at 0],
    ``en`` [1 at 16], ``slot`` [1 at 17], ``elems`` [elem_bits at 18]: queue ``q`` takes the packets
    tagged ``src`` and gives ``elems`` elements of every vector of layer slot ``slot``
    (:class:`rtl.axis.SourceMerge`).
    """
    sb = source_bits(spec)
    if sb > 16 or elem_bits > 14:
        raise ValueError(f"a source-queue register holds a 16-bit tag and 14-bit count, got {sb}, {elem_bits}")
    regs = [Register("digital.out1", address, (
        Field("x", x_bits, 0, Access.RW, meaning="destination column of layer slot 1's results"),
        Field("chan", 1, 6, Access.RW, meaning="sub-port of layer slot 1's results"),
        Field("y", y_bits, 16, Access.RW, meaning="destination row of layer slot 1's results")),
        meaning="routing destination of layer slot 1 (two_layers)")]
    binds = [Binding("digital.out1", f, "digital.ni", f"out1_{f}") for f in ("x", "chan", "y")]
    for q in range(DIGITAL_QUEUES):
        name = f"digital.src{q}"
        fields = (Field("src", sb, 0, Access.RW, meaning="source tag taken by the queue (tile t: t; host: tiles)"),
                  Field("en", 1, 16, Access.RW, meaning="queue enabled"),
                  Field("slot", 1, 17, Access.RW, meaning="layer slot the queue feeds"),
                  Field("elems", elem_bits, 18, Access.RW, meaning="elements of a vector from this source"))
        regs.append(Register(name, address + 4 * (q + 1), fields, meaning=f"source queue {q} of the digital datapath"))
        binds += [Binding(name, f.name, "digital.merge", f"q_{f.name}{q}") for f in fields]
    return regs, binds


def _dest_registers(block: str, address: int, x_bits: int, y_bits: int, what: str, entries: int,
                    ni: str, ext: int | None = None) -> tuple[list[Register], list[Binding]]:
    """``{block}.dest`` (entry 0, always on) and ``{block}.dest1`` .. (entries 1.., with ``en``).

    Fields: ``x`` [x_bits at 0], ``chan`` [1 at 6], ``en`` [1 at 7, entries >= 1],
    ``lo`` [8 at 8], ``y`` [y_bits at 16], ``hi`` [8 at 24]: beat ``b`` of a vector
    goes to every enabled entry with ``lo <= b`` and (``hi == 0`` or ``b < hi``). With ``ext``, entries
    ``TILE_DEST_BLOCK`` .. at ``ext`` (a tile's spare register space).
    """
    if x_bits > 6 or y_bits > 8:
        raise ValueError(f"a destination register holds x up to 6 bits and y up to 8 bits, got {x_bits}, {y_bits}")
    regs, binds = [], []
    for e in range(entries):
        name = f"{block}.dest" + (str(e) if e else "")
        fields = [Field("x", x_bits, 0, Access.RW,
                        meaning=f"destination column of {what} (cols = host, cols+1 = digital datapath)"),
                  Field("chan", 1, 6, Access.RW, meaning="sub-port (reported to the host in m_axis.tdest)")]
        if e:
            fields.append(Field("en", 1, 7, Access.RW, meaning="entry enabled"))
        fields += [Field("lo", DEST_BEAT_BITS, 8, Access.RW, meaning="first beat of a vector sent here"),
                   Field("y", y_bits, 16, Access.RW, meaning=f"destination row of {what}"),
                   Field("hi", DEST_BEAT_BITS, 24, Access.RW, meaning="beat after the last one sent here (0: to the end)")]
        at = address + 4 * e if ext is None or e < TILE_DEST_BLOCK else ext + 4 * (e - TILE_DEST_BLOCK)
        regs.append(Register(name, at, tuple(fields), meaning=f"routing destination {e} of {what}"))
        binds += [Binding(name, f.name, ni, f"{f.name}{e}") for f in fields]
    return regs, binds


#: Patch-buffer registers of a tile: register -> ((field, config port, bit offset), ...); widths from the ports.
PATCH_REGISTERS = {
    "en": (("en", "en", 0),),
    "in": (("in_h", "in_h", 0), ("in_w", "in_w", 16)),
    "out": (("out_h", "out_h", 0), ("out_w", "out_w", 16)),
    "kernel": (("kh", "kh", 0), ("kw", "kw", 4), ("sh", "sh", 8), ("sw", "sw", 12), ("dh", "dh", 16),
               ("dw", "dw", 20), ("pad_t", "pad_t", 24), ("pad_l", "pad_l", 28)),
    "tap": (("i0", "i0", 0), ("j0", "j0", 4), ("cb0", "cb0", 16)),
    "beats": (("c_beats", "c_beats", 0), ("n_beats", "n_beats", 16)),
    "ring": (("ring_rows", "ring_rows", 0), ("row_words", "row_words", 16)),
}


def _patch_registers(block: str, address: int, patch) -> tuple[list[Register], list[Binding]]:
    """``{block}.en`` .. ``{block}.ring``: a tile's patch buffer (:class:`rtl.patchbuf.PatchBuffer`), fields packed
    by :data:`PATCH_REGISTERS`, meanings from :data:`rtl.patchbuf.FIELD_DOCS`.

    Raises
    ------
    ValueError
        If a field does not fit its place (a port wider than the gap to the next field).
    """
    from .patchbuf import CONFIG_FIELDS, FIELD_DOCS

    widths = {"dims": patch.dim_bits, "geo": patch.geo_bits, "words": patch.words.bit_length()}
    regs, binds = [], []
    for k, (reg, fields) in enumerate(PATCH_REGISTERS.items()):
        name = f"{block}.{reg}"
        out = []
        for i, (fname, port, lsb) in enumerate(fields):
            width = 1 if port == "en" else widths[CONFIG_FIELDS[port]]
            end = fields[i + 1][2] if i + 1 < len(fields) else DATA_BITS
            if lsb + width > end:
                raise ValueError(f"{name}.{fname}: {width} bits at {lsb} overlap the next field at {end}")
            out.append(Field(fname, width, lsb, Access.RW, meaning=FIELD_DOCS[port]))
            binds.append(Binding(name, fname, block, port))
        regs.append(Register(name, address + 4 * k, tuple(out), meaning="patch buffer (line buffer) of a conv layer"))
    return regs, binds


#: Pool-unit registers of a tile: register -> ((field, bit offset), ...); widths from rtl.pool.Pool's ports.
POOL_REGISTERS = {
    "en": (("en", 0), ("avg", 1)),
    "in": (("in_h", 0), ("in_w", 16)),
    "kernel": (("kh", 0), ("kw", 16)),
    "out": (("out_h", 0), ("out_w", 16)),
    "beats": (("c_beats", 0), ("count", 12)),
}
#: The residual join's configuration ports (rtl.pool.ResidualJoin; ``en`` is the top level's bypass select).
JOIN_PORTS = ("src_a", "src_b", "q0", "q1", "shift", "relu")
#: Offset of a tile's residual-join registers in its network-interface window.
JOIN_OFFSET = 0x20


def _join_registers(block: str, address: int, spec: ChipSpec) -> tuple[list[Register], list[Binding]]:
    """``{block}.en`` (``en`` [0], ``relu`` [1], ``src_a`` [8..], ``src_b`` [16..]), ``{block}.q0``, ``.q1``
    (signed), ``.shift``: a tile's residual join (:class:`rtl.pool.ResidualJoin`), before its patch buffer."""
    from .params import TileParams
    from .pool import JOIN_MAX_SHIFT

    tp, sb = TileParams.from_spec(spec), source_bits(spec)
    if sb > 8:
        raise ValueError(f"a residual-join register holds 8-bit source tags, got {sb}")
    regs = [Register(f"{block}.en", address, (
        Field("en", 1, 0, Access.RW, meaning="1: the tile's input is the residual add of two producers; 0: bypass"),
        Field("relu", 1, 1, Access.RW, meaning="ReLU before the add's shift"),
        Field("src_a", sb, 8, Access.RW, meaning="source tag of the first addend (q0)"),
        Field("src_b", sb, 16, Access.RW, meaning="source tag of the second addend (q1)")), meaning="residual join")]
    regs += [Register(f"{block}.{q}", address + 4 * (k + 1),
                      (Field(q, tp.scale_bits, 0, Access.RW, signed=True, meaning=f"integer scale of addend {k}"),),
                      meaning="residual join") for k, q in enumerate(("q0", "q1"))]
    regs.append(Register(f"{block}.shift", address + 12, (
        Field("shift", (JOIN_MAX_SHIFT(tp)).bit_length(), 0, Access.RW, meaning="shift of the residual add"),),
        meaning="residual join"))
    binds = [Binding(r.name, f.name, block, f.name) for r in regs for f in r.fields]
    return regs, binds


def _digital_join_registers(address: int, spec: ChipSpec) -> tuple[list[Register], list[Binding]]:
    """``digital.add.en`` (``en`` [0], ``relu`` [1], ``src_a`` [8..], ``src_b`` [16..], ``out_src`` [24..]),
    ``.q0``, ``.q1`` (signed), ``.shift``: the digital node's input join (:class:`rtl.pool.InputJoin`), the
    layout of a tile's ``add`` block (:func:`_join_registers`) plus the tag its results carry."""
    regs, binds = _join_registers("digital.add", address, spec)
    sb = source_bits(spec)
    head = regs[0]
    fields = (Field("en", 1, 0, Access.RW, meaning="1: beats tagged src_a / src_b go to the residual join (other "
                                                   "tags pass); 0: a wire"),
              *head.fields[1:],
              Field("out_src", sb, 24, Access.RW, meaning="source tag of the join's (pooled) results at the source "
                                                          "queues"))
    regs[0] = Register(head.name, head.address, fields, meaning="residual join at the digital node's input")
    binds.append(Binding(head.name, "out_src", "digital.add", "out_src"))
    return regs, binds


#: The pool unit's configuration ports (all but ``en``, which is the top level's bypass select).
POOL_PORTS = ("avg", "in_h", "in_w", "kh", "kw", "out_h", "out_w", "c_beats", "count")

_POOL_DOCS = {
    "en": "1: the tile's results pass through the pool unit; 0: bypass", "avg": "0: max, 1: average",
    "in_h": "height of the map pooled", "in_w": "width of the map pooled", "kh": "window (= stride) height",
    "kw": "window (= stride) width", "out_h": "output height, floor(in_h / kh)", "out_w": "output width",
    "c_beats": "act beats per pixel", "count": "kh * kw (the average's divisor)",
}


def _pool_registers(block: str, address: int, what: str = "the tile's results") -> tuple[list[Register], list[Binding]]:
    """``{block}.en`` .. ``{block}.beats``: a tile's pool unit (:class:`rtl.pool.Pool`), packed by
    :data:`POOL_REGISTERS`."""
    from .pool import Pool

    probe = Pool(1)
    probe._MustUse__silence = True
    regs, binds = [], []
    for k, (reg, fields) in enumerate(POOL_REGISTERS.items()):
        name = f"{block}.{reg}"
        out = []
        for i, (fname, lsb) in enumerate(fields):
            width = 1 if fname == "en" else Shape.cast(probe.signature.members[fname].shape).width
            end = fields[i + 1][1] if i + 1 < len(fields) else DATA_BITS
            if lsb + width > end:
                raise ValueError(f"{name}.{fname}: {width} bits at {lsb} overlap the next field at {end}")
            out.append(Field(fname, width, lsb, Access.RW, meaning=_POOL_DOCS[fname]))
            binds.append(Binding(name, fname, block, fname))
        regs.append(Register(name, address + 4 * k, tuple(out), meaning=f"pool unit on {what}"))
    return regs, binds


def build_regmap(spec: ChipSpec) -> RegisterMap:
    """The register map of ``Coprocessor(spec)`` (module docstring for the layout).

    Raises
    ------
    ValueError
        If the chip description violates a constraint of the RTL blocks, or a
        block has more registers than its address window.
    """
    from .affine import AffineUnit
    from .digital import DigitalDatapath
    from .params import DigitalParams, PatchParams, TileParams
    from .tile_controller import TileController

    tp, dp, pp = TileParams.from_spec(spec), DigitalParams.from_spec(spec), PatchParams.from_spec(spec)
    rows, cols = spec.tile_grid.rows, spec.tile_grid.cols
    x_bits, y_bits = grid_coord_bits(rows, cols)
    regs: list[Register] = []
    binds: list[Binding] = []

    # chip identification and global status
    regs.append(Register("chip.id", CHIP_BASE + 0x0, (
        Field("magic", 16, 0, Access.RO, value=ID_MAGIC, meaning="constant 0xA1C0 (aimc)"),
        Field("version", 8, 16, Access.RO, value=REGMAP_VERSION, meaning="register-map version"),
        Field("units", 3, 24, Access.RO, value=units_code(spec),
              meaning="dataflow units present (bit 0 line buffers, bit 1 pool units, bit 2 residual joins; "
                      "interconnect.line_buffers / pool_units / residual_joins): an absent unit has no registers"),
    ), meaning="identification"))
    regs.append(Register("chip.geometry", CHIP_BASE + 0x4, (
        Field("grid_rows", 8, 0, Access.RO, value=rows, meaning="tile rows (tile_grid.rows)"),
        Field("grid_cols", 8, 8, Access.RO, value=cols, meaning="tile columns (tile_grid.cols)"),
        Field("link_bits", 16, 16, Access.RO, value=spec.interconnect.link_width_bits,
              meaning="flit payload bits (interconnect.link_width_bits)"),
    ), meaning="geometry"))
    regs.append(Register("chip.status", CHIP_BASE + 0x8, (
        Field("misrouted", 1, 0, Access.W1C, meaning="sticky: the mesh dropped a flit with a bad destination"),
    ), meaning="global status"))
    binds.append(Binding("chip.status", "misrouted", "mesh", "misrouted"))

    def add(block_regs, block_binds, base, size):
        if block_regs and block_regs[-1].address >= base + size:
            raise ValueError(f"block at {base:#x} needs more than {size} bytes of registers")
        regs.extend(block_regs)
        binds.extend(block_binds)

    digital = DigitalDatapath(dp)
    digital._MustUse__silence = True  # only its signature is read
    add(*block_registers(digital, "digital", DIGITAL_BASE, skip=DIGITAL_VECTOR_PORTS), DIGITAL_BASE,
        DIGITAL_VECTORS_ADDR - DIGITAL_BASE)
    vbits = Shape.cast(digital.signature.members["n_vectors0"].shape).width
    regs.append(Register("digital.vectors", DIGITAL_VECTORS_ADDR, tuple(
        Field(f, vbits, 16 * i, Access.RW, reset=1, meaning=f"with two_layers: vectors of layer slot {i} per round "
              "(>= 1; reset 1: one vector of each slot per round)") for i, f in enumerate(DIGITAL_VECTOR_PORTS)),
        meaning="per-slot vector counts of the digital datapath (rounds = n_pixels)"))
    binds.extend(Binding("digital.vectors", f, "digital", f) for f in DIGITAL_VECTOR_PORTS)
    units = dataflow_units(spec)
    if units["lb"]:
        from .patchbuf import digital_patch_params
        add(*_patch_registers("digital.lb", DIGITAL_LB_BASE, digital_patch_params(spec)), DIGITAL_LB_BASE, 0x20)
    if units["pool"]:
        add(*_pool_registers("digital.pool", DIGITAL_POOL_BASE, "the digital datapath's results"), DIGITAL_POOL_BASE,
            DIGITAL_NI_BASE - DIGITAL_POOL_BASE)
    tile_dests, digital_dests = dest_entries(spec)
    add(*_dest_registers("digital", DIGITAL_NI_BASE, x_bits, y_bits, "the digital datapath's results", digital_dests,
                         "digital.ni"), DIGITAL_NI_BASE, 0x40)
    add(*_digital_ni_registers(spec, DIGITAL_NI_BASE + 4 * digital_dests, x_bits, y_bits, dp.max_k.bit_length()),
        DIGITAL_NI_BASE, 0x40)
    if units["add"]:  # the digital node's input join and its pool (interconnect.residual_joins)
        add(*_digital_join_registers(DIGITAL_ADD_BASE, spec), DIGITAL_ADD_BASE, DIGITAL_IPOOL_BASE - DIGITAL_ADD_BASE)
        add(*_pool_registers("digital.ipool", DIGITAL_IPOOL_BASE, "the digital node's input join's results"),
            DIGITAL_IPOOL_BASE, 0x20)

    tc, au = TileController(tp), AffineUnit(tp)
    tc._MustUse__silence = au._MustUse__silence = True
    tc_regs, tc_binds = block_registers(tc, "TILE.tc", 0)
    if tile_dests > TILE_DEST_BLOCK and tc_regs[-1].address >= TILE_DEST_EXT_OFFSET:
        raise ValueError(f"{tile_dests} tile destination entries: the tile controller's registers reach "
                         f"{tc_regs[-1].address:#x}, entries {TILE_DEST_BLOCK}.. need {TILE_DEST_EXT_OFFSET:#x} ..")
    au_regs, au_binds = block_registers(au, "TILE.affine", 0)
    for t in range(rows * cols):
        base = TILE_BASE + t * TILE_STRIDE
        for tmpl_regs, tmpl_binds, off in ((tc_regs, tc_binds, TC_OFFSET), (au_regs, au_binds, AFFINE_OFFSET)):
            add([Register(r.name.replace("TILE", f"tile{t}"), base + off + r.address, r.fields, r.meaning)
                 for r in tmpl_regs],
                [Binding(b.register.replace("TILE", f"tile{t}"), b.field, b.block.replace("TILE", f"tile{t}"),
                         b.port, b.port_lsb) for b in tmpl_binds],
                base + off, 0x40)
        add(*_dest_registers(f"tile{t}.ni", base + NI_OFFSET, x_bits, y_bits,
                             "the tile's results (int8; entry 0 also its partial sums, chain_out)", tile_dests,
                             f"tile{t}.ni", ext=base + TC_OFFSET + TILE_DEST_EXT_OFFSET),
            base + NI_OFFSET, JOIN_OFFSET)
        if units["add"]:
            add(*_join_registers(f"tile{t}.add", base + NI_OFFSET + JOIN_OFFSET, spec),
                base + NI_OFFSET + JOIN_OFFSET, LB_OFFSET - NI_OFFSET - JOIN_OFFSET)
        if units["lb"]:
            add(*_patch_registers(f"tile{t}.lb", base + LB_OFFSET, pp), base + LB_OFFSET, POOL_OFFSET - LB_OFFSET)
        if units["pool"]:
            add(*_pool_registers(f"tile{t}.pool", base + POOL_OFFSET), base + POOL_OFFSET,
                TILE_STRIDE - POOL_OFFSET)

    regs.sort(key=lambda r: r.address)
    top = regs[-1].address + 4
    addr_bits = max(16, (top - 1).bit_length())
    return RegisterMap(spec.name, tuple(regs), tuple(binds), addr_bits)


def _units_line(regmap: RegisterMap) -> str:
    """One sentence naming the dataflow units the chip has and the ones it omits (from ``chip.id.units``)."""
    code = next(f.value for f in regmap.register("chip.id").fields if f.name == "units")
    names = {"lb": "line buffers", "pool": "pool units", "add": "residual joins"}
    have = [names[u] for u, b in UNIT_BITS.items() if code >> b & 1]
    lack = [f"{names[u]} (interconnect.{UNIT_KEYS[u]}: false)" for u, b in UNIT_BITS.items() if not code >> b & 1]
    return (f"Dataflow units (`chip.id.units` = {code:#05b}): {', '.join(have) or 'none'}"
            + (f"; absent, with no registers: {', '.join(lack)}." if lack else "."))


def regmap_markdown(regmap: RegisterMap | ChipSpec) -> str:
    """The register map as a Markdown table: address, register, field, bits, access, reset, meaning."""
    if not isinstance(regmap, RegisterMap):
        regmap = build_regmap(regmap)
    lines = [
        f"# Register map — chip description '{regmap.spec_name}'",
        "",
        f"AXI4-Lite, 32-bit registers, {regmap.addr_bits}-bit byte addresses; "
        f"{len(regmap.registers)} registers; map digest `{regmap.digest}`.",
        "Access: RW read/write, RO read-only, W1C write 1 to clear, W1P write 1 to pulse (reads 0). "
        "Unmapped addresses answer SLVERR.",
        _units_line(regmap),
        "",
        "| Address | Register | Field | Bits | Access | Reset | Meaning |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in regmap.registers:
        for f in r.fields:
            reset = f"{f.value:#x}" if f.value is not None else (f"{f.reset:#x}" if f.access != Access.RO else "—")
            meaning = (f.meaning or r.meaning).replace("|", "\\|")
            if f.signed:
                meaning = f"(signed) {meaning}"
            lines.append(f"| `{r.address:#06x}` | `{r.name}` | `{f.name}` | {f.bits} | {f.access.value} | {reset} "
                         f"| {meaning} |")
    return "\n".join(lines) + "\n"
