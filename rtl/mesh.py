"""2-D mesh generator: ``rows`` x ``cols`` :class:`~rtl.router.MeshRouter` s.

Micro-architecture
------------------
Router ``(x, y)`` (column ``x``, row ``y``; ``y`` grows to the south) gets
its position as constants on its ``x`` / ``y`` ports (so all routers but
those of the last column are one and the same module) and links its
``east`` port to the ``west`` port of router ``(x + 1, y)`` and its ``south``
port to the ``north`` port of ``(x, y + 1)``. Each tile gets one local port
pair (``local_i[t]`` into the mesh, ``local_o[t]`` out of it, tile index
``t = y * cols + x``, row-major as in the mapper's placement).

The east ports of the last column are exposed as *edge ports*
(``edge_i[y]`` / ``edge_o[y]``): a flit addressed to ``x = cols`` leaves the
mesh there, and a flit injected there enters as if it came from a router
further east. The co-processor hangs its host gateway and its digital
datapath on them (:mod:`rtl.top`).

Edge-to-edge traffic would need a U-turn, which XY routing never takes: the
node on the edge switches such traffic itself (the co-processor's I/O node
does). The west, north and south edges have no neighbour: their inputs never carry
a flit, and their outputs accept and drop whatever reaches them -- only a flit
with an out-of-range ``y`` (a configuration error) can get there -- and pulse
``misrouted`` (kept as a sticky, write-1-to-clear flag in the CSR), so a
bad destination register shows up in a
status register instead of stalling the mesh.

Latency ``latency_cycles`` per router crossed (head flit, no contention), so
``(hops + 1) * latency_cycles`` cycles from a local input to a local output
``hops`` links away; throughput one flit per cycle per link.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from archmodel import timing

from ._util import reject
from .router import FlitStream, MeshRouter, flit_layout, grid_coord_bits

__all__ = ["Mesh"]


class Mesh(wiring.Component):
    """A ``rows`` x ``cols`` mesh of XY wormhole routers.

    Parameters
    ----------
    rows, cols : int
        Grid size in tiles (``tile_grid.rows``, ``tile_grid.cols``).
    payload_bits : int
        Payload bits per flit (``interconnect.link_width_bits``).
    chan_bits : int
        Width of the destination sub-port field (default 1).
    latency_cycles : int
        Router latency in cycles (``spec.cycles(interconnect.hop_latency_ns)``,
        at least 1).

    Members
    -------
    local_i : In(FlitStream(layout)).array(rows * cols)
        Flits a tile injects, tile index ``y * cols + x``.
    local_o : Out(FlitStream(layout)).array(rows * cols)
        Flits delivered to a tile.
    edge_i : In(FlitStream(layout)).array(rows)
        Flits entering at the east edge of row ``y``.
    edge_o : Out(FlitStream(layout)).array(rows)
        Flits addressed to ``(x = cols, y)``.
    misrouted : Out(1)
        Pulse, one cycle per dropped flit (the CSR keeps the sticky flag): a
        flit reached the west, north or south edge, or asked a router for a
        turn XY routing never takes (e.g. an edge port addressing the east
        edge), and was dropped.

    Raises
    ------
    ValueError
        If the grid or a width is not positive.
    """

    def __init__(self, rows: int, cols: int, *, payload_bits: int, chan_bits: int = 1, latency_cycles: int = 1):
        self.rows, self.cols = rows, cols
        try:
            self.x_bits, self.y_bits = grid_coord_bits(rows, cols)
            self.layout = flit_layout(self.x_bits, self.y_bits, payload_bits, chan_bits)
        except ValueError as exc:
            raise reject(self, exc) from None
        if not isinstance(latency_cycles, int) or latency_cycles < 1:
            raise reject(self, ValueError(f"latency_cycles must be an integer >= 1, got {latency_cycles!r}"))
        self.payload_bits, self.chan_bits = payload_bits, chan_bits
        self.latency_cycles = latency_cycles
        super().__init__({
            "local_i": In(FlitStream(self.layout)).array(rows * cols),
            "local_o": Out(FlitStream(self.layout)).array(rows * cols),
            "edge_i": In(FlitStream(self.layout)).array(rows),
            "edge_o": Out(FlitStream(self.layout)).array(rows),
            "misrouted": Out(1),
        })

    @classmethod
    def from_spec(cls, spec) -> Mesh:
        """The mesh of a chip description (tile grid, link width, hop latency)."""
        return cls(spec.tile_grid.rows, spec.tile_grid.cols,
                   payload_bits=spec.interconnect.link_width_bits,
                   latency_cycles=timing.hop_cycles(spec))

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols
        routers = {}
        for y in range(R):
            for x in range(C):
                r = MeshRouter(x_bits=self.x_bits, y_bits=self.y_bits, payload_bits=self.payload_bits,
                               chan_bits=self.chan_bits, latency_cycles=self.latency_cycles,
                               edge_column=(x == C - 1))
                routers[x, y] = m.submodules[f"router_{x}_{y}"] = r
                m.d.comb += [r.x.eq(x), r.y.eq(y)]  # its position: constants on ports (one router module)
                t = y * C + x
                wiring.connect(m, wiring.flipped(self.local_i[t]), r.local_i)
                wiring.connect(m, r.local_o, wiring.flipped(self.local_o[t]))

        dropped = []  # one-cycle drop pulses, OR-reduced at the end
        for (x, y), r in routers.items():
            dropped.append(r.misrouted)
            # east / west
            if x + 1 < C:
                wiring.connect(m, r.east_o, routers[x + 1, y].west_i)
                wiring.connect(m, routers[x + 1, y].west_o, r.east_i)
            else:
                wiring.connect(m, wiring.flipped(self.edge_i[y]), r.east_i)
                wiring.connect(m, r.east_o, wiring.flipped(self.edge_o[y]))
            # south / north
            if y + 1 < R:
                wiring.connect(m, r.south_o, routers[x, y + 1].north_i)
                wiring.connect(m, routers[x, y + 1].north_o, r.south_i)
            else:
                m.d.comb += r.south_o.ready.eq(1)
                dropped.append(r.south_o.valid)
            if x == 0:
                m.d.comb += r.west_o.ready.eq(1)
                dropped.append(r.west_o.valid)
            if y == 0:
                m.d.comb += r.north_o.ready.eq(1)
                dropped.append(r.north_o.valid)
            # unconnected inputs (west of column 0, north of row 0, south of the last row) stay idle
            for port, cond in ((r.west_i, x == 0), (r.north_i, y == 0), (r.south_i, y + 1 == R)):
                if cond:
                    m.d.comb += port.valid.eq(0)
        m.d.comb += self.misrouted.eq(Cat(*dropped).any())
        return m
