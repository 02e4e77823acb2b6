"""The Fig. 11 co-processor: N x M PCM tiles on a mesh, a digital datapath, AXI at the edge.

Micro-architecture
------------------
::

             AXI4-Lite ──► CSRBank (rtl.regmap) ──► configuration / status of every block
                                                              (x = cols)          (x = cols + 1)
    tile (0,0) ─ tile (1,0) ─ ... ─ tile (cols-1,0) ─ east ─ I/O router ─ east ─ digital datapath
        |            |                   |                    local |
    tile (0,1) ─ tile (1,1) ─ ...        ...            AXI4-Stream in / out (host)
        ...

- **Tile** ``t = y * cols + x`` (docs/design.md, "The Fig. 11 co-processor"): a
  :class:`~rtl.tile.Tile` (tile controller -> affine unit, the same component
  the tile-level co-simulation runs) and a :class:`~rtl.router.MeshRouter` (in
  :class:`~rtl.mesh.Mesh`). Its array port (``dac[t]`` out, ``adc[t]`` in) is a
  top-level port: the analog macro is outside (docs/design.md, "The array port").
- **Network interface** of a tile: activations travel on the activation
  mesh, partial sums on a second, identical **partial-sum mesh** (a dedicated
  network per message class, so neither can block the other: docs/design.md
  "Deadlock-free transport"). Arriving flits are reassembled into ``act``
  beats for the tile controller and into partial sums for the affine unit
  (:class:`~rtl.axis.FlitsToBeat`). The affine unit's int8 results are packed
  into ``act`` beats (:class:`~rtl.axis.ResultPacker`) -- the input format of
  the next tile -- and sent as one packet per beat on the activation mesh, its
  partial sums (``chain_out``) on the partial-sum mesh, both to the tile or
  node in the tile's ``ni.dest`` register (:class:`~rtl.axis.BeatToFlits`).
- **I/O router** at ``(cols, 0)``, east of the last tile of row 0: its local
  port is the host (AXI4-Stream in: ``tdest`` = the flit's ``x``, ``y``,
  ``chan``; AXI4-Stream out: ``tdest`` = ``chan``; flits to the digital node
  on ``chan`` 1 are weights, written into its weight memory at one flit per
  cycle, :attr:`DigitalDatapath.w_in`), its east port the
  **digital datapath** node at ``(cols + 1, 0)``
  (:class:`~rtl.digital.DigitalDatapath`: flits -> source-tagged ``act`` beats
  -> an optional residual join + pool of two tagged sources (:class:`~rtl.pool.InputJoin`, ``digital.add`` /
  ``digital.ipool``; other sources pass) -> per-source queues -> one element per beat, each layer slot's vector read
  in queue order (:class:`~rtl.axis.SourceMerge`), results -> ``act`` beats ->
  flits to ``digital.dest`` .. ``dest<e>`` (slot 0, through the pool unit when
  ``digital.pool.en``) or ``digital.out1`` (slot 1, with ``two_layers``: the
  packer's output vectors are counted, ``n_vectors0`` of slot 0 then
  ``n_vectors1`` of slot 1 per round, and slot 1's bypass the pool)). Layers kept digital (first and last) thus sit between
  the host and the tiles, and every transfer -- host -> digital -> tiles -> ...
  -> digital -> host -- is a routed packet.
- **Source tags**: every activation packet carries its sender
  (:func:`rtl.regmap.source_tag`) in the spare bits of its last flit
  (:func:`rtl.axis.tagged_layout`; the flit format is unchanged).
- **Configuration**: one :class:`~rtl.csr.CSRBank` generated from
  :func:`rtl.regmap.build_regmap`; its ``bindings`` wire each field to the
  block port it came from.

Latency: one router hop costs ``spec.cycles(interconnect.hop_latency_ns)``
cycles; the network interfaces add 1 cycle on each side; block latencies are
in their own docstrings. Throughput: one flit per cycle per link.

Trade-offs: host traffic and digital-layer traffic share one mesh entry
point (the I/O router), which bounds the input bandwidth to one flit per
cycle -- enough for the int8 images of the first layer; a wider chip would
add I/O routers on more rows. The per-beat packet format wastes the unused
part of the last flit of a beat in exchange for stateless reassembly.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, ResetSignal, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from archmodel import timing
from archmodel.spec import ChipSpec

from ._util import reject
from .axis import (
    AXIStreamSignature,
    BeatToFlits,
    DestFanout,
    FlitsToBeat,
    ResultPacker,
    SourceMerge,
    StreamSlice,
    tagged_layout,
)
from .csr import AXI4LiteSignature, CSRBank, Field, ident
from .mesh import Mesh
from .patchbuf import CONFIG_FIELDS as PATCH_CONFIG_FIELDS
from .patchbuf import PatchBuffer, digital_patch_params
from .pool import INPUT_JOIN_PORTS, JOIN_DEPTH, JOIN_MAX_SHIFT, InputJoin, Pool, ResidualJoin
from .regmap import (
    DEST_BEAT_BITS,
    DIGITAL_QUEUE_BEATS,
    DIGITAL_QUEUES,
    JOIN_PORTS,
    POOL_PORTS,
    RegisterMap,
    build_regmap,
    dataflow_units,
    dest_entries,
    source_bits,
    source_tag,
)
from .router import MeshRouter

__all__ = ["Coprocessor"]

CHAN_ACT, CHAN_PSUM = 0, 1
#: Channel of a flit to the digital node that carries weights (docs/design.md, "Weight loading").
CHAN_WEIGHT = 1


def _slot_counter(m: Module, dd, name: str, vector_end, clear) -> tuple[Signal, Signal]:
    """The digital datapath's layer-slot sequence counted on a stream's vectors: ``n_vectors0`` vectors of slot 0,
    then ``n_vectors1`` of slot 1, per round (``rtl.digital``, ``two_layers``); returns the slot of the next
    vector and that flip-flop's next value (combinational: what it holds from the next cycle on).
    ``vector_end``: a vector's last beat is taken this cycle; ``clear`` (priority): back to slot 0.

    "This vector ends the slot's run" (``count + 1 >= n_vectors[slot]``) is a flip-flop computed from the
    counter's next value (issue 19: a 16-bit compare in front of the counter's enables); not reset, so it is
    right from the first cycle after reset; a changed ``n_vectors0`` / ``n_vectors1`` reaches it one cycle later.
    """
    slot = Signal(name=f"{name}slot")
    cnt = Signal.like(dd.n_vectors0, name=f"{name}cnt")
    wrap = Signal(name=f"{name}wrap", reset_less=True)

    def ends(c, s):
        return wrap.eq(c + 1 >= Mux(s, dd.n_vectors1, dd.n_vectors0))

    slot_next = Signal(name=f"{name}slot_next")
    m.d.comb += slot_next.eq(Mux(clear, 0, Mux(vector_end & wrap, ~slot, slot)))
    with m.If(vector_end):
        with m.If(wrap):
            m.d.sync += [cnt.eq(0), slot.eq(~slot)]
        with m.Else():
            m.d.sync += cnt.eq(cnt + 1)
    with m.If(clear):
        m.d.sync += [cnt.eq(0), slot.eq(0)]
    with m.If(ResetSignal() | clear):
        m.d.sync += ends(Const(0, len(cnt)), Const(0))
    with m.Elif(vector_end & wrap):
        m.d.sync += ends(Const(0, len(cnt)), ~slot)
    with m.Elif(vector_end):
        m.d.sync += ends(cnt + 1, slot)
    with m.Else():
        m.d.sync += ends(cnt, slot)
    return slot, slot_next


class Coprocessor(wiring.Component):
    """Top level: ``tile_grid.rows x tile_grid.cols`` tiles, mesh, digital datapath, AXI.

    Parameters
    ----------
    spec : ChipSpec
        The chip description; every width, depth and latency comes from it.
    primitive : {"behavioral", "ecp5"}
        The digital datapath's MAC multipliers (:class:`rtl.digital.DigitalDatapath`): portable registers around
        ``*`` (default) or ECP5 MULT18X18D with their own registers (the FPGA prototype). Same cycles and values.

    Members
    -------
    s_axil : In(AXI4LiteSignature(regmap.addr_bits))
        Configuration (32-bit AXI4-Lite slave; map: :func:`rtl.regmap.build_regmap`).
    s_axis : In(AXIStreamSignature(link_width_bits, x_bits + y_bits + 1))
        Host -> chip flits: ``tdata`` = payload, ``tdest`` = ``{chan, y, x}``
        (x in the LSBs) of the destination, ``tlast`` = end of packet.
    m_axis : Out(AXIStreamSignature(link_width_bits, 1))
        Chip -> host flits (packets addressed to ``(cols, 0)``), ``tdest`` = ``chan``.
    dac : Out(stream.Signature(dac_beat_layout)).array(tiles)
        Array port of tile ``t``: DAC codes to the analog macro.
    adc : In(stream.Signature(adc_beat_layout)).array(tiles)
        Array port of tile ``t``: ADC codes from the analog macro.
    done : Out(1)
        Run complete (registered, level): the digital datapath's run is done (its sticky ``done``:
        ``n_pixels`` vectors through every layer slot) **and** the host has taken (``m_axis``
        handshake, ``tdest`` chan 0) the final beat (act ``last`` = 1) of ``n_pixels`` output
        vectors since the datapath's ``start`` (which clears the count, so ``done`` falls). A run
        whose last layer is on a tile (no digital datapath run) never raises it
        (docs/design.md 17.1, "Interrupt").
    error : Out(1)
        Any block's error flag (registered; a tile's flags and the drops are registered once more
        first, so ``error`` follows them by 2 cycles): a tile controller's ``err_config`` / ``err_act_last`` /
        ``err_adc_last``, an affine unit's ``err_chain``, the digital datapath's ``err_config`` /
        ``err_x_last`` (sticky, as in their status registers: a level), or a flit dropped as misrouted
        (a pulse per drop; ``chip.status.misrouted`` keeps it).

    Raises
    ------
    TypeError
        If ``spec`` is not a :class:`ChipSpec`.
    ValueError
        If the chip description violates a constraint of an RTL block.
    """

    def __init__(self, spec: ChipSpec, *, primitive: str = "behavioral"):
        if not isinstance(spec, ChipSpec):
            raise reject(self, TypeError(f"spec must be a ChipSpec, got {type(spec).__name__}"))
        from .ecp5 import PRIMITIVES

        if primitive not in PRIMITIVES:
            raise reject(self, ValueError(f"primitive must be one of {PRIMITIVES}, got {primitive!r}"))
        self.primitive = primitive
        from .affine import psum_layout
        from .digital import x_beat_layout
        from .params import DigitalParams, PatchParams, TileParams
        from .tile_controller import act_beat_layout, adc_beat_layout, dac_beat_layout

        self.spec = spec
        try:
            self.tp, self.dp = TileParams.from_spec(spec), DigitalParams.from_spec(spec)
            self.pp = PatchParams.from_spec(spec)
            self.regmap: RegisterMap = build_regmap(spec)
            self.tile_dests, self.digital_dests = dest_entries(spec)
            self.units = dataflow_units(spec)  # line buffers, pool units, residual joins (issue 18; optional)
        except ValueError as exc:
            raise reject(self, exc) from None
        self.rows, self.cols = spec.tile_grid.rows, spec.tile_grid.cols
        self.tiles = self.rows * self.cols
        self.hop_cycles = timing.hop_cycles(spec)
        probe = Mesh(self.rows, self.cols, payload_bits=spec.interconnect.link_width_bits)
        probe._MustUse__silence = True
        self.flit = probe.layout
        self.x_bits, self.y_bits = probe.x_bits, probe.y_bits
        act = act_beat_layout(self.tp)
        self.layouts = SimpleNamespace(act=act, psum=psum_layout(self.tp), x=x_beat_layout(),
                                       dac=dac_beat_layout(self.tp), adc=adc_beat_layout(self.tp),
                                       tag=tagged_layout(act, source_bits(spec)))
        link = spec.interconnect.link_width_bits
        if link % 8:
            raise reject(self, ValueError(f"interconnect.link_width_bits = {link}: the weight stream packs int8 "
                                          "lanes into flits, a multiple of 8 bits is needed"))
        super().__init__({
            "s_axil": In(AXI4LiteSignature(self.regmap.addr_bits)),
            "s_axis": In(AXIStreamSignature(link, self.x_bits + self.y_bits + 1)),
            "m_axis": Out(AXIStreamSignature(link, 1)),
            "dac": Out(stream.Signature(self.layouts.dac)).array(self.tiles),
            "adc": In(stream.Signature(self.layouts.adc)).array(self.tiles),
            "done": Out(1),
            "error": Out(1),
        })

    def elaborate(self, platform):
        from .digital import DigitalDatapath
        from .tile import Tile

        m = Module()
        spec, L = self.spec, self.layouts
        link = spec.interconnect.link_width_bits
        mesh = m.submodules.mesh = Mesh(self.rows, self.cols, payload_bits=link, latency_cycles=self.hop_cycles)
        # partial-sum mesh: tile -> tile only (chains); its east edge has no node (drop and flag)
        pmesh = m.submodules.psum_mesh = Mesh(self.rows, self.cols, payload_bits=link,
                                              latency_cycles=self.hop_cycles)
        for y in range(self.rows):
            m.d.comb += [pmesh.edge_o[y].ready.eq(1), pmesh.edge_i[y].valid.eq(0)]
        blocks: dict[str, object] = {}

        # ---- tiles
        for t in range(self.tiles):
            # with a patch buffer (issue 18) unless the chip has no line buffers
            tile = m.submodules[f"tile{t}"] = Tile(self.tp, self.pp if self.units["lb"] else None)
            wiring.connect(m, tile.dac, wiring.flipped(self.dac[t]))
            wiring.connect(m, wiring.flipped(self.adc[t]), tile.adc)
            # receive: activations over the activation mesh, partial sums over the partial-sum mesh
            # (two physical networks: neither message class can block the other, docs/design.md
            # "Deadlock-free transport")
            rx_act = m.submodules[f"tile{t}_rx_act"] = FlitsToBeat(L.tag, self.flit)
            rx_psum = m.submodules[f"tile{t}_rx_psum"] = FlitsToBeat(L.psum, self.flit)
            wiring.connect(m, mesh.local_o[t], rx_act.i)
            wiring.connect(m, pmesh.local_o[t], rx_psum.i)
            # residual add of two producers before the tile (issue 18): join_en = 0 is a wire
            if self.units["add"]:
                join = m.submodules[f"tile{t}_join"] = ResidualJoin(
                    self.tp.rows_per_dac_beat, self.tp.scale_bits, JOIN_MAX_SHIFT(self.tp), source_bits(spec),
                    JOIN_DEPTH)
                join_en = Signal(name=f"tile{t}_join_en")
                m.d.comb += [join.i.payload.eq(rx_act.o.payload), join.i.valid.eq(join_en & rx_act.o.valid),
                             tile.act.payload.data.eq(Mux(join_en, join.o.payload.data.as_value(),
                                                          rx_act.o.payload.data.as_value())),
                             tile.act.payload.last.eq(Mux(join_en, join.o.payload.last, rx_act.o.payload.last)),
                             tile.act.valid.eq(Mux(join_en, join.o.valid, rx_act.o.valid)),
                             rx_act.o.ready.eq(Mux(join_en, join.i.ready, tile.act.ready)),
                             join.o.ready.eq(join_en & tile.act.ready)]
                blocks[f"tile{t}.add"] = SimpleNamespace(en=join_en, **{f: getattr(join, f) for f in JOIN_PORTS})
            else:
                m.d.comb += [tile.act.payload.data.eq(rx_act.o.payload.data.as_value()),
                             tile.act.payload.last.eq(rx_act.o.payload.last),
                             tile.act.valid.eq(rx_act.o.valid), rx_act.o.ready.eq(tile.act.ready)]
            wiring.connect(m, rx_psum.o, tile.psum_in)
            # send: results (as act beats) on the activation mesh, partial sums on the partial-sum mesh
            pack = m.submodules[f"tile{t}_pack"] = ResultPacker(tile.out.payload.shape(), L.act)
            fan = m.submodules[f"tile{t}_fan"] = self._fanout(self.tile_dests)
            tx_act = m.submodules[f"tile{t}_tx_act"] = BeatToFlits(L.tag, self.flit, chan=None)
            tx_psum = m.submodules[f"tile{t}_tx_psum"] = BeatToFlits(L.psum, self.flit, chan=CHAN_PSUM)
            wiring.connect(m, tile.out, pack.i)
            # pool unit between the packer and the destinations (issue 18): pool_en = 0 is a wire
            if self.units["pool"]:
                pool = m.submodules[f"tile{t}_pool"] = Pool(self.tp.rows_per_dac_beat)
                pool_en = Signal(name=f"tile{t}_pool_en")
                m.d.comb += [pool.i.payload.eq(pack.o.payload), pool.i.valid.eq(pool_en & pack.o.valid),
                             fan.i.payload.eq(Mux(pool_en, pool.o.payload.as_value(), pack.o.payload.as_value())),
                             fan.i.valid.eq(Mux(pool_en, pool.o.valid, pack.o.valid)),
                             pack.o.ready.eq(Mux(pool_en, pool.i.ready, fan.i.ready)),
                             pool.o.ready.eq(pool_en & fan.i.ready), pool.clear.eq(tile.start)]
                blocks[f"tile{t}.pool"] = SimpleNamespace(en=pool_en, **{f: getattr(pool, f) for f in POOL_PORTS})
            else:
                wiring.connect(m, pack.o, fan.i)
            self._to_tx(m, fan, tx_act, source_tag(spec, t), f"tile{t}_tx_slice")
            m.d.comb += [tx_psum.dest_x.eq(fan.x[0]), tx_psum.dest_y.eq(fan.y[0])]  # partial sums: entry 0
            wiring.connect(m, tile.psum_out, tx_psum.i)
            wiring.connect(m, tx_act.o, mesh.local_i[t])
            wiring.connect(m, tx_psum.o, pmesh.local_i[t])
            ni = self._fan_ports(fan)
            m.d.comb += fan.en[0].eq(1)  # entry 0 always on (also the partial sums' destination)
            blocks.update({f"tile{t}.tc": tile.block_ports("tc"), f"tile{t}.affine": tile.block_ports("affine"),
                           f"tile{t}.ni": ni})
            if self.units["lb"]:
                blocks[f"tile{t}.lb"] = tile.block_ports("lb")

        # ---- I/O router (host) and the digital datapath beyond the east edge of row 0
        io = m.submodules.io_router = MeshRouter(x_bits=self.x_bits, y_bits=self.y_bits,
                                                 payload_bits=link, latency_cycles=self.hop_cycles)
        m.d.comb += [io.x.eq(self.cols), io.y.eq(0)]
        wiring.connect(m, mesh.edge_o[0], io.west_i)
        wiring.connect(m, io.west_o, mesh.edge_i[0])
        for y in range(1, self.rows):  # east edges of the other rows: no node; drop and flag
            m.d.comb += [mesh.edge_o[y].ready.eq(1), mesh.edge_i[y].valid.eq(0)]
        m.d.comb += [io.north_o.ready.eq(1), io.south_o.ready.eq(1), io.north_i.valid.eq(0), io.south_i.valid.eq(0)]
        drops = [mesh.misrouted, pmesh.misrouted, io.misrouted, io.north_o.valid, io.south_o.valid]
        drops += [mesh.edge_o[y].valid for y in range(1, self.rows)]
        drops += [pmesh.edge_o[y].valid for y in range(self.rows)]
        misrouted = Signal()
        blocks["mesh"] = SimpleNamespace(misrouted=misrouted)

        dd = m.submodules.digital = DigitalDatapath(self.dp, w_chunk_lanes=link // 8, primitive=self.primitive)
        d_rx = m.submodules.digital_rx = FlitsToBeat(L.tag, self.flit)
        merge = m.submodules.digital_merge = SourceMerge(L.tag, L.x, DIGITAL_QUEUES, DIGITAL_QUEUE_BEATS,
                                                         self.dp.max_k.bit_length())
        d_pack = m.submodules.digital_pack = ResultPacker(dd.out.payload.shape(), L.act)
        d_fan = m.submodules.digital_fan = self._fanout(self.digital_dests)
        d_tx = m.submodules.digital_tx = BeatToFlits(L.tag, self.flit, chan=None)
        # flits to the digital node: channel 0 = activations (-> source queues), channel 1 = weights (-> the
        # weight memory at stream rate, one flit = link_width_bits // 8 int8 lanes per cycle; always ready)
        east, wchan = io.east_o, io.east_o.payload.chan == CHAN_WEIGHT
        m.d.comb += [d_rx.i.valid.eq(east.valid & ~wchan), d_rx.i.payload.eq(east.payload),
                     dd.w_in.valid.eq(east.valid & wchan), dd.w_in.payload.eq(east.payload.payload),
                     east.ready.eq(Mux(wchan, dd.w_in.ready, d_rx.i.ready))]
        # residual join + pool in front of the source queues (issue 18: digits-resnet's b2_add -> global average
        # pool -> fc): beats tagged digital.add.src_a / src_b are joined (and pooled, digital.ipool.en) and enter
        # the queues tagged out_src; other sources pass (rtl.pool.InputJoin; digital.add.en = 0 is a wire)
        # (only on chips with residual joins: interconnect.residual_joins)
        if self.units["add"]:
            d_join = m.submodules.digital_join = InputJoin(self.tp.rows_per_dac_beat, self.tp.scale_bits,
                                                           JOIN_MAX_SHIFT(self.tp), source_bits(spec), JOIN_DEPTH)
            wiring.connect(m, d_rx.o, d_join.i)
            wiring.connect(m, d_join.o, merge.i)
            m.d.comb += d_join.clear.eq(dd.start)
            blocks["digital.add"] = SimpleNamespace(**{f: getattr(d_join, f) for f in INPUT_JOIN_PORTS})
            blocks["digital.ipool"] = SimpleNamespace(en=d_join.pool_en, **{f: getattr(d_join, f) for f in POOL_PORTS})
        else:
            wiring.connect(m, d_rx.o, merge.i)
        if self.units["lb"]:
            # patch buffer between the merge and the datapath, layer slot 0 only (digital.lb.en; issue 18: conv1's
            # patches built on chip from the host's raw pixels, one element per beat; en = 0: a wire)
            d_lb = m.submodules.digital_lb = PatchBuffer(digital_patch_params(spec))
            d_lb_en = Signal(name="digital_lb_en")
            use_lb = d_lb_en & ~dd.slot
            m.d.comb += [d_lb.i.payload.data[0].eq(merge.o.payload.data), d_lb.i.payload.last.eq(1),
                         d_lb.i.valid.eq(use_lb & merge.o.valid),
                         merge.o.ready.eq(Mux(use_lb, d_lb.i.ready, dd.x_in.ready)),
                         dd.x_in.valid.eq(Mux(use_lb, d_lb.o.valid, merge.o.valid)),
                         dd.x_in.payload.data.eq(Mux(use_lb, d_lb.o.payload.data[0], merge.o.payload.data)),
                         dd.x_in.payload.last.eq(Mux(use_lb, d_lb.o.payload.last, merge.o.payload.last)),
                         d_lb.o.ready.eq(use_lb & dd.x_in.ready), d_lb.clear.eq(dd.start)]
            blocks["digital.lb"] = SimpleNamespace(en=d_lb_en, **{f: getattr(d_lb, f) for f in PATCH_CONFIG_FIELDS})
        else:
            # no patch buffer (the FPGA prototype's chip, tiny-fpga): a register slice between the merge and the
            # datapath (archmodel.timing.digital_input_slice_cycles; issue 19: the datapath's x_in.ready ran
            # through the merge's queue pick into every queue head's enables, and the pick and byte select into
            # the datapath's operand register, 15.6 ns routed in context). The slice may hold elements of the next
            # vector while the datapath drains, so the merge follows its own slot: mslot, the datapath's slot
            # sequence (n_vectors0 vectors of slot 0, then n_vectors1 of slot 1, per round, with two_layers)
            # counted on the vectors the merge emits; the merge runs only while the datapath is busy, and the
            # count restarts while the datapath is idle with nothing emitted ahead. A ping-pong slice (issue 19,
            # sixth stop): the merge's pick writes an entry directly, not through the head's tail-or-input
            # multiplexer (merge pick -> x_in payload register was 11.6 ns in context); same cycles.
            x_sl = m.submodules.digital_x_slice = StreamSlice(L.x, ping_pong=True)
            mslot, _ = _slot_counter(m, dd, "digital_m",
                                  merge.o.valid & merge.o.ready & merge.o.payload.last & dd.two_layers,
                                  ~dd.busy & ~x_sl.o.valid)  # idle, nothing emitted ahead: a run starts at slot 0
            m.d.comb += [x_sl.i.payload.eq(merge.o.payload), x_sl.i.valid.eq(merge.o.valid & dd.busy),
                         merge.o.ready.eq(x_sl.i.ready & dd.busy), merge.slot.eq(mslot)]
            wiring.connect(m, x_sl.o, dd.x_in)
        if self.units["lb"]:
            m.d.comb += merge.slot.eq(dd.slot)
        wiring.connect(m, dd.out, d_pack.i)
        # pool unit between the result packer and the destinations (issue 18: digits-cnn's digital conv1 ->
        # maxpool): digital.pool.en = 0 is a wire
        # with two_layers the packer's output vectors are n_vectors0 of slot 0, then n_vectors1 of slot 1, per
        # round (rtl/digital.py): pslot counts them; only slot 0's go through the pool (digits-cnn: conv1 ->
        # maxpool; fc's scores bypass it); the fanout takes whole vectors from the pool or the bypass
        pslot, pslot_next = _slot_counter(m, dd, "digital_p",
                              d_pack.o.valid & d_pack.o.ready & d_pack.o.payload.last & dd.two_layers,
                              dd.start | (~dd.busy & ~dd.two_layers))
        sel = Signal(name="digital_fan_sel")   # 1: the packer's output (bypass), 0: the pool's
        if self.units["pool"]:
            d_pool = m.submodules.digital_pool = Pool(self.tp.rows_per_dac_beat)
            d_pool_en = Signal(name="digital_pool_en")
            pool_path = d_pool_en & ~pslot
            lock, lsel = Signal(name="digital_fan_lock"), Signal(name="digital_fan_lsel")
            m.d.comb += sel.eq(Mux(lock, lsel, ~d_pool.o.valid))
            with m.If(d_fan.i.valid & d_fan.i.ready):
                m.d.sync += [lock.eq(~d_fan.i.payload.last), lsel.eq(sel)]
            m.d.comb += [d_pool.i.payload.eq(d_pack.o.payload), d_pool.i.valid.eq(pool_path & d_pack.o.valid),
                         d_fan.i.payload.eq(Mux(sel, d_pack.o.payload.as_value(), d_pool.o.payload.as_value())),
                         d_fan.i.valid.eq(Mux(sel, ~pool_path & d_pack.o.valid, d_pool.o.valid)),
                         d_pack.o.ready.eq(Mux(pool_path, d_pool.i.ready, sel & d_fan.i.ready)),
                         d_pool.o.ready.eq(~sel & d_fan.i.ready), d_pool.clear.eq(dd.start)]
            blocks["digital.pool"] = SimpleNamespace(en=d_pool_en, **{f: getattr(d_pool, f) for f in POOL_PORTS})
        else:  # no pool unit: every vector is the bypass
            wiring.connect(m, d_pack.o, d_fan.i)
            m.d.comb += sel.eq(1)
        self._to_tx(m, d_fan, d_tx, source_tag(spec, "digital"), "digital_tx_slice")
        wiring.connect(m, d_tx.o, io.east_i)
        # destination registers -> fanout: slot 1's vectors (counted by pslot, they come from the bypass) go to
        # out1 only
        oslot = Signal()
        m.d.comb += oslot.eq(sel & pslot)
        # without a pool unit (sel = 1) the entries' enables (en & ~oslot) are flip-flops computed from pslot's
        # next value (issue 19, seventh stop: pslot -> en -> the fanout's entry pick -> its ready -> the packer's
        # register and the fanout's flags was the 1 x 1 top's worst path after step 1, 10.4 ns); a written
        # dni_en reaches the fanout one cycle later (configuration is written before a run)
        en_ahead = not self.units["pool"]
        ports = {}
        for e in range(self.digital_dests):
            for f in ("x", "y", "chan", "lo", "hi", "en"):
                reg = ports[f"{f}{e}"] = Signal.like(getattr(d_fan, f)[e], name=f"dni_{f}{e}")
                if e == 0:
                    one = {"x": None, "y": None, "chan": None, "lo": 0, "hi": 0, "en": None}[f]
                    if f in ("x", "y", "chan"):
                        alt = ports.setdefault(f"out1_{f}", Signal.like(reg, name=f"dni_out1_{f}"))
                        m.d.comb += getattr(d_fan, f)[e].eq(Mux(oslot, alt, reg))
                    elif f == "en":
                        m.d.comb += d_fan.en[0].eq(1)
                    else:
                        m.d.comb += getattr(d_fan, f)[e].eq(Mux(oslot, one, reg))
                elif f == "en" and en_ahead:
                    en_r = Signal(name=f"digital_fan_en{e}")
                    m.d.sync += en_r.eq(reg & ~pslot_next)
                    m.d.comb += d_fan.en[e].eq(en_r)
                elif f == "en":
                    m.d.comb += d_fan.en[e].eq(reg & ~oslot)
                else:
                    m.d.comb += getattr(d_fan, f)[e].eq(reg)
        d_ni = SimpleNamespace(**ports)
        mports = {}
        for q in range(DIGITAL_QUEUES):
            for f in ("src", "slot", "elems", "en"):
                mports[f"q_{f}{q}"] = getattr(merge, f"q_{f}")[q]
        blocks.update({"digital": dd, "digital.ni": d_ni, "digital.merge": SimpleNamespace(**mports)})
        merge_err = merge.err_src

        # (a packet no source queue takes: dropped). Registered: the drops are combinational router outputs from
        # across the chip (issue 19: into `error` and the status flag, 11.5-12.1 ns in the whole prototype)
        m.d.sync += misrouted.eq(Cat(*drops, merge_err).any())

        # ---- host AXI4-Stream <-> I/O router local port
        xb, yb = self.x_bits, self.y_bits
        sin, sout = self.s_axis, self.m_axis
        m.d.comb += [
            io.local_i.valid.eq(sin.tvalid), sin.tready.eq(io.local_i.ready),
            io.local_i.payload.payload.eq(sin.tdata), io.local_i.payload.last.eq(sin.tlast),
            io.local_i.payload.x.eq(sin.tdest[:xb]), io.local_i.payload.y.eq(sin.tdest[xb:xb + yb]),
            io.local_i.payload.chan.eq(sin.tdest[xb + yb:]),
        ]
        # a register slice between the I/O router and m_axis (archmodel.timing.HOST_OUT_SLICE_CYCLES; issue 19: the
        # host's tready ran into the router's arbiter and the router's arbitration into the output vector count,
        # 11.8 ns in context): every m_axis output and the router's local ready are flip-flops
        hsl = m.submodules.host_out_slice = StreamSlice(io.local_o.payload.shape())
        wiring.connect(m, io.local_o, hsl.i)
        m.d.comb += [
            sout.tvalid.eq(hsl.o.valid), hsl.o.ready.eq(sout.tready),
            sout.tdata.eq(hsl.o.payload.payload), sout.tlast.eq(hsl.o.payload.last),
            sout.tdest.eq(hsl.o.payload.chan),
        ]

        # ---- run-complete and error outputs (interrupt sources; docs/design.md 17.1)
        last_off = L.tag["last"].offset  # the act beat's `last` bit: flit last_off // link, bit last_off % link
        flit_i = Signal(range(max(2, -(-L.tag.size // link))), name="out_flit")
        out_vectors = Signal.like(dd.n_pixels, name="out_vectors")
        with m.If(sout.tvalid & sout.tready):
            m.d.sync += flit_i.eq(Mux(sout.tlast, 0, flit_i + 1))
            with m.If((sout.tdest == CHAN_ACT) & (flit_i == last_off // link) & sout.tdata[last_off % link]):
                m.d.sync += out_vectors.eq(out_vectors + 1)
        with m.If(dd.start):
            m.d.sync += out_vectors.eq(0)
        m.d.sync += self.done.eq(dd.done & (out_vectors == dd.n_pixels))
        # each tile's flags ORed into a flip-flop of its own first (the flags are levels across the whole chip:
        # one OR of all of them was a 12.1 ns path in the whole prototype), so `error` is 2 cycles after a flag
        errs = [misrouted, dd.err_config, dd.err_x_last]
        for t in range(self.tiles):
            tc, af = blocks[f"tile{t}.tc"], blocks[f"tile{t}.affine"]
            tile_err = Signal(name=f"tile{t}_error")
            m.d.sync += tile_err.eq(Cat(tc.err_config, tc.err_act_last, tc.err_adc_last, af.err_chain).any())
            errs.append(tile_err)
        m.d.sync += self.error.eq(Cat(*errs).any())

        # ---- configuration registers
        csr = m.submodules.csr = CSRBank(self.regmap.registers, addr_bits=self.regmap.addr_bits)
        wiring.connect(m, wiring.flipped(self.s_axil), csr.bus)
        self._bind_csr(m, csr, blocks)
        return m

    def _to_tx(self, m: Module, fan: DestFanout, tx: BeatToFlits, tag: int, name: str) -> None:
        """A network interface's fanout -> its flit serializer through a :class:`~rtl.axis.StreamSlice` that carries
        the beat (tagged with source ``tag``, ``rtl.axis.tagged_layout``) and its destination
        (``archmodel.timing.NI_SLICE_CYCLES``; issue 19: the serializer's ``ready`` no longer runs through the
        fanout's entry logic into the result packer and the vector counters, and the destination registers
        reach the serializer through a flip-flop)."""
        layout = data.StructLayout({"beat": self.layouts.tag, "x": self.x_bits, "y": self.y_bits, "chan": 1})
        sl = m.submodules[name] = StreamSlice(layout)
        m.d.comb += [sl.i.valid.eq(fan.o.valid), fan.o.ready.eq(sl.i.ready),
                     sl.i.payload.beat.data.eq(fan.o.payload.data), sl.i.payload.beat.last.eq(fan.o.payload.last),
                     sl.i.payload.beat.src.eq(tag), sl.i.payload.x.eq(fan.dest_x), sl.i.payload.y.eq(fan.dest_y),
                     sl.i.payload.chan.eq(fan.dest_chan),
                     tx.i.valid.eq(sl.o.valid), sl.o.ready.eq(tx.i.ready), tx.i.payload.eq(sl.o.payload.beat),
                     tx.dest_x.eq(sl.o.payload.x), tx.dest_y.eq(sl.o.payload.y), tx.dest_chan.eq(sl.o.payload.chan)]

    def _fanout(self, entries: int) -> DestFanout:
        return DestFanout(self.layouts.act, self.x_bits, self.y_bits, entries, DEST_BEAT_BITS)

    @staticmethod
    def _fan_ports(fan: DestFanout) -> SimpleNamespace:
        """CSR targets of a network interface's destination entries (``x0``, ``lo1``, ... ``en1``)."""
        ports = {}
        for e in range(fan.entries):
            for f in ("x", "y", "chan", "lo", "hi", "en"):
                ports[f"{f}{e}"] = getattr(fan, f)[e]
        return SimpleNamespace(**ports)

    def _bind_csr(self, m: Module, csr: CSRBank, blocks: dict) -> None:
        """Wire every register field to its block port through one copy register
        (``archmodel.timing.CONFIG_COPY_CYCLES``): bank -> copy -> block for RW / W1P fields, block -> copy
        -> bank for RO / W1C. The copy is a flip-flop of its own per binding, so the placer puts it between
        the bank and the block (issue 19: in context, bank -> block logic was the critical path). Every
        field is delayed alike: a W1P pulse still meets the RW data written with or before it."""
        from .csr import Access
        for b in self.regmap.bindings:
            reg = self.regmap.register(b.register)
            f: Field = reg.field(b.field)
            ports = getattr(csr, ident(reg.name))
            target = getattr(blocks[b.block], b.port)
            part = target[b.port_lsb:b.port_lsb + f.width] if (b.port_lsb or f.width < len(target)) else target
            name = f"cfg_{ident(reg.name)}_{f.name}"
            if f.access in (Access.RW, Access.W1P):
                copy = Signal(f.width, init=f.reset if f.access == Access.RW else 0, name=name)
                m.d.sync += copy.eq(getattr(ports, f.name))
                m.d.comb += part.eq(copy)
            elif f.access == Access.RO:
                copy = Signal(len(target), name=name)
                m.d.sync += copy.eq(target)
                m.d.comb += getattr(ports, f.name).eq(copy)
            elif f.access == Access.W1C:
                copy = Signal(len(target), name=name)
                m.d.sync += copy.eq(target)
                m.d.comb += getattr(ports, f"{f.name}_set").eq(copy)
