"""2-D mesh router: five ports, XY routing, wormhole switching, round-robin.

Micro-architecture
------------------
One router sits beside every tile (docs/design.md, "The Fig. 11 co-processor").
It has five ports -- ``local`` (the tile), ``north``, ``east``, ``south`` and
``west`` -- each a pair of :mod:`amaranth.lib.stream` streams of *flits*
(:func:`flit_layout`): the destination ``x``, ``y`` (and ``chan``, the
sub-port at the destination node), a ``payload`` of ``link_width_bits`` and
``last`` on the final flit of a packet.

Coordinates: ``x`` is the tile column and grows to the **east**; ``y`` is the
tile row and grows to the **south** (row 0 is the north edge), as in the
mapper's placement and in ``tile_grid``.

Per input port a chain of ``latency_cycles`` two-entry FIFO stages buffers
the flits (cycle for cycle a :class:`amaranth.lib.fifo.SyncFIFO` of depth 2,
built from two registers used in turn: a read toggles a pointer and moves no
flit, so the crossbar's transfer decision drives a few flip-flops, not the
enables of a whole flit; a 2-to-1 multiplexer sits in front of the crossbar).
Each stage adds one cycle, so a
flit crossing one router without contention takes exactly ``latency_cycles``
cycles -- the chip description's ``hop_latency_ns`` in cycles
(``spec.cycles``), the same figure the mapper charges per hop. The depth-2
stage keeps one flit per cycle per port *and* registers the ``ready`` going
upstream (``w_rdy`` depends on the stage's fill only), so no combinational
path crosses more than one router: Fmax does not fall with the mesh size.
The last stage also computes the XY route of a flit as it is written and
keeps it, one-hot, beside the flit, so the arbiters start from registers.
With ``latency_cycles >= 2`` (tiny's and tiny-fpga's hop is 2 cycles) the
last of those stages sits behind the crossbar instead, one per *output*
(issue 19, sixth stop): the arbiter writes the granted flit into it, so a
port's ``valid`` and ``payload`` come from flip-flops and the arbitration
ends at a register instead of running into the next block; a flit still
takes ``latency_cycles`` cycles per hop without contention, and the
throughput stays one flit per cycle per port. Under contention the flits
wait in the input stages (one fewer per input) and in the output stage.

The router's own position arrives on two input ports, ``x`` and ``y``, which
the mesh ties to constants: every router of a grid is then the same logic
(one Verilog module, synthesized once, whatever the grid size), at the cost of
two magnitude comparators per coordinate on each input instead of comparisons
with constants; a flat synthesis folds the constants back in. Only the routers
of the last column (``edge_column``, below) differ.

The head flit of an input chooses its output by XY (dimension-ordered)
routing: first along X (east if ``dest.x`` > ``x``, west if smaller), then
along Y (south if ``dest.y`` > ``y``, north if smaller), then ``local``. The
crossbar is built only for the turns XY routing can take (an input from the
west goes east, north, south or local; an input from the north goes south or
local; ...), which removes logic and every combinational loop between routers.

Each output has a round-robin arbiter: among the inputs whose head flit wants
that output it grants the first one after the last winner, so every input is
served within four packets of the others (starvation-free). Once an output is
granted to an input, it stays locked to it until the flit with ``last`` has
passed (**wormhole** switching): the flits of two packets never interleave on
an output, so a packet arrives contiguous at its destination and needs no
re-assembly buffer. The grant is also held while ``valid`` is up and ``ready``
is low, so an output never withdraws or changes a flit it offers (AXI4-Stream
and ``amaranth.lib.stream`` rules).

Why XY routing is deadlock-free
-------------------------------
A wormhole packet holds the links it has acquired while waiting for the next
one; deadlock needs a cycle of packets, each waiting for a link held by the
next. Under XY routing a packet takes all its X hops before any Y hop, so the
turns it may make are only X -> Y (east/west -> north/south), never Y -> X.
Number every link: eastward links by ``x``, westward links by ``cols - x``,
then all Y links after all X links, southward by ``y`` and northward by
``rows - y``. Every packet acquires links in strictly increasing order of that
number, so a waiting chain can never close into a cycle (Dally and Seitz's
channel-dependency argument; Dally & Towles, *Principles and Practices of
Interconnection Networks*, 2004, sec. 14.1). The argument needs the local
output to drain: the consumer behind it must not wait for another packet that
can only arrive through this same network behind the blocked one. The
co-processor guarantees it by giving each message class its own mesh
(activations, partial sums: :mod:`rtl.top`, docs/design.md "Deadlock-free
transport"), so every chain ends. Trade-off: XY is oblivious -- it cannot route around a hot
link -- but needs no virtual channels, no routing tables and one flit of
state per output.

Destinations outside the grid
-----------------------------
The ``x`` field also holds ``cols`` (and ``cols + 1``), beyond the *east edge*: a flit
addressed to ``(cols, y)`` leaves the mesh through the east port of the last
router of row ``y``, where the co-processor attaches its I/O node (host
gateway and digital datapath, :mod:`rtl.top`). Such a flit travels east along
its source row to the last column, moves along Y there, then turns east:
the routers of the last column (``edge_column``) take that one Y -> X turn.
It keeps the network deadlock-free: the edge output is a sink outside the
mesh, so in the link numbering above the edge links come after every Y link
and the order stays strictly increasing. An edge port cannot address the
east edge (that is a U-turn); the node there switches such traffic itself.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from ._util import reject

__all__ = ["PORTS", "LOCAL", "NORTH", "EAST", "SOUTH", "WEST", "flit_layout", "FlitStream", "MeshRouter", "xy_route"]

#: Port names, in the order of their index (also the round-robin order).
PORTS = ("local", "north", "east", "south", "west")
LOCAL, NORTH, EAST, SOUTH, WEST = range(5)

#: Outputs an input may reach under XY routing (no U-turns, no Y -> X turns).
_LEGAL = {
    LOCAL: (LOCAL, NORTH, EAST, SOUTH, WEST),
    WEST: (LOCAL, NORTH, EAST, SOUTH),   # arrived from the west: travelling east
    EAST: (LOCAL, NORTH, SOUTH, WEST),   # travelling west
    NORTH: (LOCAL, SOUTH),               # arrived from the north: travelling south
    SOUTH: (LOCAL, NORTH),               # travelling north
}


def flit_layout(x_bits: int, y_bits: int, payload_bits: int, chan_bits: int = 1) -> data.StructLayout:
    """Layout of one flit (a :class:`amaranth.lib.data.StructLayout`).

    Fields, least significant first: ``x`` (``x_bits``, destination column),
    ``y`` (``y_bits``, destination row), ``chan`` (``chan_bits``, sub-port at
    the destination node, e.g. 0 = activations, 1 = partial sums), ``payload``
    (``payload_bits``) and ``last`` (1 bit, final flit of a packet).

    Raises
    ------
    ValueError
        If a width is not a positive integer.
    """
    for name, val in (("x_bits", x_bits), ("y_bits", y_bits), ("payload_bits", payload_bits), ("chan_bits", chan_bits)):
        if not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive integer, got {val!r}")
    return data.StructLayout({
        "x": x_bits,
        "y": y_bits,
        "chan": chan_bits,
        "payload": payload_bits,
        "last": 1,
    })


def grid_coord_bits(rows: int, cols: int) -> tuple[int, int]:
    """Widths of the ``x`` and ``y`` flit fields for a ``rows`` x ``cols`` grid.

    ``x`` also holds ``cols`` and ``cols + 1`` (the co-processor's I/O router
    and digital datapath beyond the east edge, :mod:`rtl.top`); ``y`` holds
    ``rows - 1``.
    """
    if not isinstance(rows, int) or rows < 1 or not isinstance(cols, int) or cols < 1:
        raise ValueError(f"grid must be at least 1 x 1 tiles, got rows={rows!r}, cols={cols!r}")
    return bits_for(cols + 1), max(1, bits_for(rows - 1))


def FlitStream(layout: data.StructLayout) -> stream.Signature:  # noqa: N802 - reads like a type
    """``stream.Signature`` carrying flits of ``layout`` (valid/ready, no always_*)."""
    return stream.Signature(layout)


def xy_route(x: int, y: int, dest_x: int, dest_y: int, edge_column: bool = False) -> int:
    """Python reference of the routing decision: the output port index.

    XY (X first, then Y); in the last column (``edge_column``) a flit for the
    east edge moves along Y first, then leaves east.
    """
    if edge_column and dest_x > x and dest_y != y:
        return SOUTH if dest_y > y else NORTH
    if dest_x > x:
        return EAST
    if dest_x < x:
        return WEST
    if dest_y > y:
        return SOUTH
    if dest_y < y:
        return NORTH
    return LOCAL


def _legal(inp: int, edge_column: bool) -> tuple[int, ...]:
    """Outputs input ``inp`` may use; the last column also turns Y -> east (edge-bound flits)."""
    if edge_column and inp in (NORTH, SOUTH):
        return _LEGAL[inp] + (EAST,)
    return _LEGAL[inp]


def _any(terms):
    out = Const(0)
    for t in terms:
        out = out | t
    return out


class _FlitBuffer(wiring.Component):
    """Two-entry FIFO of two fixed registers used in turn (a ping-pong buffer).

    Cycle for cycle the same as :class:`amaranth.lib.fifo.SyncFIFO` of depth 2
    (``w_rdy`` = not full, ``r_rdy`` = not empty, a write is readable the next
    cycle, a full buffer takes no write even while it is read; ``w_rdy`` and ``r_rdy``
    are flip-flops), and an optional ``tag`` computed from the written data (the route of
    a flit) is stored beside each entry, so the crossbar logic starts from registers.

    Issue 19: a read only toggles the read pointer and the fill flags; no entry moves, so the
    crossbar's transfer (``r_en``, the end of the output's ready chain) drives four flip-flops
    instead of the enables of a whole flit (~40 in context: 11-12.6 ns routed). The entry being
    written captures ``w_data`` whenever the buffer is not full (the enables depend on the
    buffer's own flip-flops only, not on ``w_en``); ``r_data`` / ``r_tag`` are a 2-to-1
    multiplexer of the two entries by the read pointer.
    """

    def __init__(self, width: int, tag_fn=None, tag_width: int = 0):
        self._tag_fn = tag_fn
        super().__init__({
            "w_data": In(width), "w_en": In(1), "w_rdy": Out(1),
            "r_data": Out(width), "r_en": In(1), "r_rdy": Out(1),
            "r_tag": Out(max(1, tag_width)),
            "r_tag_next": Out(max(1, tag_width)),
            "r_tag_read": Out(max(1, tag_width)),
            "r_tag_stay": Out(max(1, tag_width)),
        })

    def elaborate(self, platform):
        m = Module()
        head_valid, tail_valid = Signal(), Signal()   # one entry or more / two entries
        ent = [Signal.like(self.w_data, name=f"ent{k}") for k in range(2)]
        tag = [Signal.like(self.r_tag, name=f"tag{k}") for k in range(2)]
        wp, rp = Signal(), Signal()                    # entry written next / read next
        w_tag = Signal.like(self.r_tag)
        if self._tag_fn is not None:
            m.d.comb += w_tag.eq(self._tag_fn(self.w_data))
        m.d.comb += [self.w_rdy.eq(~tail_valid), self.r_rdy.eq(head_valid),
                     self.r_data.eq(Mux(rp, ent[1], ent[0])), self.r_tag.eq(Mux(rp, tag[1], tag[0]))]
        do_read = head_valid & self.r_en
        do_write = ~tail_valid & self.w_en
        for k in range(2):  # entry wp is free whenever the buffer is not full
            with m.If(~tail_valid & (wp == k)):
                m.d.sync += [ent[k].eq(self.w_data), tag[k].eq(w_tag)]
        # r_tag of the next cycle (the entries' tags and the read pointer as written here)
        tag_n = [Mux(~tail_valid & (wp == k), w_tag, tag[k]) for k in range(2)]
        m.d.comb += self.r_tag_next.eq(Mux(rp ^ do_read, tag_n[1], tag_n[0]))
        # the same with a read this cycle (r_tag_read) and without one (r_tag_stay), for a caller that picks
        # between them late (the router's route flip-flops)
        m.d.comb += [self.r_tag_read.eq(Mux(~rp, tag_n[1], tag_n[0])), self.r_tag_stay.eq(Mux(rp, tag_n[1], tag_n[0]))]
        with m.If(do_write):
            m.d.sync += wp.eq(~wp)
        with m.If(do_read):
            m.d.sync += rp.eq(~rp)
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
        return m


class MeshRouter(wiring.Component):
    """Five-port wormhole router with XY routing and round-robin arbitration.

    Parameters
    ----------
    x_bits, y_bits : int
        Widths of the destination fields (see :func:`grid_coord_bits`).
    payload_bits : int
        Payload bits per flit (``interconnect.link_width_bits``).
    chan_bits : int
        Width of the destination sub-port field (default 1).
    latency_cycles : int
        Cycles a flit spends in this router without contention (>= 1): one
        two-entry FIFO stage per cycle on every input
        (``spec.cycles(interconnect.hop_latency_ns)``).
    edge_column : bool
        True for the routers of the last column: flits for the east edge
        (``x`` beyond this column) take their Y hops here, then leave east.

    Members
    -------
    x : In(x_bits)
        Column of this router in the grid; ``y : In(y_bits)``, its row. Ports, held constant by the
        mesh (:class:`rtl.mesh.Mesh`), so that every router of a mesh is the same module (one Verilog
        module, synthesized once); a flat synthesis folds them back into constants.
    local_i, north_i, east_i, south_i, west_i : In(FlitStream(layout))
        Flits arriving at this router (``ready`` is registered).
    local_o, north_o, east_o, south_o, west_o : Out(FlitStream(layout))
        Flits leaving this router; ``valid`` and ``payload`` hold until
        accepted.
    misrouted : Out(1)
        Pulse, one cycle per dropped flit: a flit asked for a turn XY routing never takes (a U-turn or a
        Y -> X turn: its destination was wrong for where it entered) and was
        dropped rather than left to block its input.

    Latency ``latency_cycles`` cycles per hop (head flit, no contention);
    throughput one flit per cycle per output, up to five flits per cycle in
    total when the packets use disjoint outputs.

    Raises
    ------
    ValueError
        If a width or ``latency_cycles`` is not positive.
    """

    def __init__(self, *, x_bits: int, y_bits: int, payload_bits: int,
                 chan_bits: int = 1, latency_cycles: int = 1, edge_column: bool = False):
        try:
            self.layout = flit_layout(x_bits, y_bits, payload_bits, chan_bits)
        except ValueError as exc:
            raise reject(self, exc) from None
        if not isinstance(latency_cycles, int) or latency_cycles < 1:
            raise reject(self, ValueError(f"latency_cycles must be an integer >= 1, got {latency_cycles!r}"))
        self.edge_column = bool(edge_column)
        self.latency_cycles = latency_cycles
        #: With two or more cycles per hop, one of the two-entry stages sits behind the crossbar (issue 19, sixth stop).
        self.out_reg = latency_cycles >= 2
        members = {"x": In(x_bits), "y": In(y_bits)}
        for name in PORTS:
            members[f"{name}_i"] = In(FlitStream(self.layout))
            members[f"{name}_o"] = Out(FlitStream(self.layout))
        members["misrouted"] = Out(1)
        super().__init__(members)

    def port_i(self, index: int) -> stream.Interface:
        return getattr(self, f"{PORTS[index]}_i")

    def port_o(self, index: int) -> stream.Interface:
        return getattr(self, f"{PORTS[index]}_o")

    def elaborate(self, platform):
        m = Module()
        width = self.layout.size
        n = len(PORTS)

        # ---- XY route of a flit, one-hot over the five outputs (illegal turns included,
        # to flag them); computed as a flit enters an input's last buffer stage, so the
        # crossbar below starts from registers
        def xy_onehot(bits):
            flit = data.View(self.layout, bits)
            east, west = flit.x > self.x, flit.x < self.x
            south, north = flit.y > self.y, flit.y < self.y
            if self.edge_column:
                # last column: a flit for the east edge (x = cols) first moves
                # along Y to its row, then leaves east (see "Destinations outside the grid")
                rules = [(east & south, SOUTH), (east & north, NORTH), (east, EAST), (west, WEST),
                         (south, SOUTH), (north, NORTH)]
            else:
                rules = [(east, EAST), (west, WEST), (south, SOUTH), (north, NORTH)]
            onehot = Const(1 << LOCAL, n)
            for cond, port in reversed(rules):
                onehot = Mux(cond, Const(1 << port, n), onehot)
            return onehot

        # ---- input buffers: latency_cycles two-entry stages per input, one of them moved behind the crossbar
        # (an output register) when latency_cycles >= 2
        in_stages = self.latency_cycles - (1 if self.out_reg else 0)
        heads = []  # (valid, ready, payload view, XY route one-hot) of the oldest flit of each input
        bufs = []   # the last stage of each input
        for i in range(n):
            port = self.port_i(i)
            prev_valid, prev_ready, prev_data = port.valid, port.ready, port.payload.as_value()
            for s in range(in_stages):
                final = s == in_stages - 1
                buf = _FlitBuffer(width, xy_onehot if final else None, n if final else 0)
                m.submodules[f"{PORTS[i]}_buf{s}"] = buf
                m.d.comb += [buf.w_data.eq(prev_data), buf.w_en.eq(prev_valid), prev_ready.eq(buf.w_rdy)]
                prev_valid, prev_ready, prev_data = buf.r_rdy, buf.r_en, buf.r_data
            heads.append((prev_valid, prev_ready, data.View(self.layout, prev_data), buf.r_tag))
            bufs.append(buf)

        # ---- per input: route of the head flit (locked while a packet is in flight), a flip-flop computed from
        # the next values of the lock and of the head's tag (issue 19, sixth stop: the arbiters start one or two
        # LUT levels earlier; same value every cycle)
        in_busy = [Signal(name=f"{PORTS[i]}_busy") for i in range(n)]
        in_out = [Signal(n, name=f"{PORTS[i]}_bound") for i in range(n)]     # one-hot
        route = [Signal(n, name=f"{PORTS[i]}_route") for i in range(n)]      # one-hot
        in_busy_n = [Signal(name=f"{PORTS[i]}_busy_next") for i in range(n)]
        in_out_n = [Signal(n, name=f"{PORTS[i]}_bound_next") for i in range(n)]
        # The route's next value as a last-level choice between candidates computed beside the arbitration
        # (issue 19, seventh stop: transfer -> lock / read pointer -> tag multiplexer -> route was 10.1-10.4 ns):
        # with no transfer from input i, the lock holds and the head moves only on a bad-turn drop (its
        # r_tag_next); with a transfer to output o, the route is o while the packet goes on, else the tag of the
        # flit after the head (r_tag_next with a read). Same values as Mux(in_busy_n, in_out_n, r_tag_next).
        route_hold = [Signal(n, name=f"{PORTS[i]}_route_hold") for i in range(n)]
        route_read = [Signal(n, name=f"{PORTS[i]}_route_read") for i in range(n)]
        take_any = [Signal(name=f"{PORTS[i]}_taken") for i in range(n)]
        take_vec = [Signal(n, name=f"{PORTS[i]}_take_vec") for i in range(n)]
        for i in range(n):
            m.d.comb += [in_busy_n[i].eq(in_busy[i]), in_out_n[i].eq(in_out[i])]
            m.d.sync += [in_busy[i].eq(in_busy_n[i]), in_out[i].eq(in_out_n[i]),
                         route[i].eq(Mux(take_any[i], Mux(heads[i][2].last, route_read[i], take_vec[i]),
                                         route_hold[i]))]

        # request[i][o]: input i has a flit for output o (only legal turns exist)
        request = [[Const(0) for _ in range(n)] for _ in range(n)]
        legal = {i: _legal(i, self.edge_column) for i in range(n)}
        for i in range(n):
            for o in legal[i]:
                r = Signal(name=f"req_{PORTS[i]}_{PORTS[o]}")
                m.d.comb += r.eq(heads[i][0] & route[i][o])
                request[i][o] = r

        # ---- per output: round-robin grant, locked until `last`. One-hot state and
        # grants: ``offer[i]`` (input i's flit is on this output) comes from the
        # request bits in two or three LUT levels, and ``valid`` does not wait for it
        take = [[Const(0) for _ in range(n)] for _ in range(n)]  # transfer from i to o this cycle
        for o in range(n):
            out = self.port_o(o)
            if self.out_reg:
                # output register: a two-entry stage (the same _FlitBuffer as the inputs) between the crossbar and
                # the port, so the port's valid / payload and the arbiter's ready are flip-flops (plus the 2-to-1
                # read multiplexer); the arbiter below writes into it as it wrote into the port
                obuf = _FlitBuffer(width)
                m.submodules[f"{PORTS[o]}_obuf"] = obuf
                m.d.comb += [out.valid.eq(obuf.r_rdy), out.payload.eq(obuf.r_data), obuf.r_en.eq(out.ready)]
                out = SimpleNamespace(valid=obuf.w_en, ready=obuf.w_rdy,
                                      payload=data.View(self.layout, obuf.w_data))
            sources = [i for i in range(n) if o in legal[i]]
            busy = Signal(name=f"{PORTS[o]}_locked")
            owner = Signal(n, name=f"{PORTS[o]}_owner")                          # one-hot

            # Round robin: free, the output goes to the first requester after the last winner, in cyclic order.
            # The order is held as a priority matrix of flip-flops, ``ahead[j, i]`` = "j comes before i after the
            # last winner", rewritten from the new winner whenever the last winner changes, so a grant is
            # request_i and no request_j ahead of it: one AND-OR fewer than selecting the order by a one-hot last
            # winner (issue 19: arbitration -> payload AND-OR -> output entry was a slowest path outside the
            # emulator, 12.22 ns routed in the whole prototype). Same grants every cycle.
            def ahead_of(lw, i, sources=sources):
                order = [j for j in ((lw + k) % n for k in range(1, n + 1)) if j in sources]
                return order[:order.index(i)]

            ahead = {(j, i): Signal(name=f"{PORTS[o]}_rr_{PORTS[j]}_{PORTS[i]}",
                                    init=int(j in ahead_of(n - 1, i)))   # the last winner at reset: port n - 1
                     for i in sources for j in sources if j != i}
            offer = Signal(n, name=f"{PORTS[o]}_offer")
            for i in sources:
                first = ~_any(request[j][o] & ahead[j, i] for j in sources if j != i)
                m.d.comb += offer[i].eq(request[i][o] & Mux(busy, owner[i], first))

            valid = Signal(name=f"{PORTS[o]}_valid")
            m.d.comb += valid.eq(Mux(busy, _any(owner[i] & request[i][o] for i in sources),
                                     _any(request[i][o] for i in sources)))
            payload = Const(0, width)
            for i in sources:
                payload = payload | (heads[i][2].as_value() & offer[i].replicate(width))
            m.d.comb += [out.valid.eq(valid), out.payload.eq(payload)]

            for i in sources:
                t = Signal(name=f"take_{PORTS[i]}_{PORTS[o]}")
                m.d.comb += t.eq(offer[i] & out.ready)
                take[i][o] = t

            # lock on offer (valid held until accepted), release after `last`
            with m.If(valid):
                with m.If(out.ready & out.payload.last):
                    m.d.sync += busy.eq(0)
                with m.Else():
                    m.d.sync += [busy.eq(1), owner.eq(offer)]
                with m.If(~busy):   # offer: the new last winner (one-hot)
                    m.d.sync += [ahead[j, i].eq(_any(offer[w] for w in sources if j in ahead_of(w, i)))
                                 for (j, i) in ahead]

        misrouted = Const(0)
        # ---- per input: pop the FIFO on transfer, bind to the output until `last`;
        # a flit asking for a turn XY routing never takes (a U-turn or Y -> X,
        # i.e. a bad destination) is dropped and flagged instead of blocking the port
        for i in range(n):
            popped = Signal(name=f"{PORTS[i]}_pop")
            m.d.comb += popped.eq(0)
            illegal = [o for o in range(n) if o not in legal[i]]
            if illegal:
                bad = Signal(name=f"{PORTS[i]}_bad_turn")
                m.d.comb += bad.eq(heads[i][0] & ~in_busy[i] & _any(heads[i][3][o] for o in illegal))
                with m.If(bad):
                    m.d.comb += popped.eq(1)
                misrouted = misrouted | bad
            for o in legal[i]:
                with m.If(take[i][o]):
                    m.d.comb += [popped.eq(1), in_busy_n[i].eq(~heads[i][2].last), in_out_n[i].eq(1 << o)]
            m.d.comb += heads[i][1].eq(popped)
            m.d.comb += [take_any[i].eq(_any(take[i][o] for o in legal[i])),
                         take_vec[i].eq(Cat(*[take[i][o] for o in range(n)])),
                         route_read[i].eq(bufs[i].r_tag_read),
                         route_hold[i].eq(Mux(in_busy[i], in_out[i],
                                              Mux(bad if illegal else 0, bufs[i].r_tag_read, bufs[i].r_tag_stay)))]
        m.d.comb += self.misrouted.eq(misrouted)
        return m
