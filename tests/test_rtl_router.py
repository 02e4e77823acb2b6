"""MeshRouter in Amaranth simulation: XY routing, wormhole order, back-pressure.

Five drivers inject random packets (1..4 flits) on all inputs, only with
destinations XY routing may send from that input; five monitors accept with
random back-pressure. Checks: every flit leaves on the output the Python XY
reference (``xy_route``) names, exactly once, in order per (input, output);
the flits of a packet are contiguous on their output (wormhole); ``valid`` and
the payload hold until accepted; the number of flits compared is asserted.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Elaboratable, Module
from amaranth.sim import Simulator

from archmodel import timing
from archmodel.spec import load_spec
from rtl.router import EAST, LOCAL, NORTH, PORTS, SOUTH, WEST, MeshRouter, flit_layout, xy_route
from rtl.streamsim import drive_stream, monitor_stream

SPEC = load_spec("tiny")
PAYLOAD_BITS = SPEC.interconnect.link_width_bits
LATENCY = timing.hop_cycles(SPEC)
# A router in the middle of a 3 x 3 coordinate space so that every output is reachable.
RX, RY, XB, YB = 1, 1, 2, 2


def _placed(dut: MeshRouter, x: int = RX, y: int = RY) -> Elaboratable:
    """``dut`` with its position ports tied to ``(x, y)``, as the mesh ties them."""
    class Placed(Elaboratable):
        def elaborate(self, platform):
            m = Module()
            m.submodules.router = dut
            m.d.comb += [dut.x.eq(x), dut.y.eq(y)]
            return m
    return Placed()


def _legal_dests(inp: int) -> list[tuple[int, int]]:
    """Destinations an input may carry under XY routing (it never turns Y -> X nor U-turns)."""
    out = []
    for x in range(3):
        for y in range(3):
            o = xy_route(RX, RY, x, y)
            if inp == WEST and (x < RX):
                continue
            if inp == EAST and (x > RX):
                continue
            if inp == NORTH and (x != RX or y < RY):
                continue
            if inp == SOUTH and (x != RX or y > RY):
                continue
            del o
            out.append((x, y))
    return out


def _make_packets(rng, src: int, n_packets: int):
    """Flit dicts of n_packets random packets from input `src`; payload = src | packet | index."""
    dests = _legal_dests(src)
    flits = []
    for p in range(n_packets):
        x, y = dests[rng.integers(len(dests))]
        length = int(rng.integers(1, 5))
        for k in range(length):
            flits.append({"x": x, "y": y, "chan": int(rng.integers(2)),
                          "payload": (src << 24) | (p << 8) | k, "last": int(k == length - 1)})
    return flits


def _run(seed: int, n_packets: int, ready_prob: float, idle_prob: float):
    rng = np.random.default_rng(seed)
    dut = MeshRouter(x_bits=XB, y_bits=YB, payload_bits=PAYLOAD_BITS, latency_cycles=LATENCY)
    layout = flit_layout(XB, YB, PAYLOAD_BITS)
    sent = {i: _make_packets(rng, i, n_packets) for i in range(5)}
    received = {o: [] for o in range(5)}
    done = []

    sim = Simulator(_placed(dut))
    sim.add_clock(1e-8)
    for i in range(5):
        async def driver(ctx, i=i, key=(seed, i)):
            rng = np.random.default_rng(key)
            await drive_stream(ctx, dut.port_i(i), [layout.const(f) for f in sent[i]], rng, idle_prob=idle_prob)
            done.append(i)
        sim.add_testbench(driver)
    for o in range(5):
        async def monitor(ctx, o=o, key=(seed, 10 + o)):
            rng = np.random.default_rng(key)
            await monitor_stream(ctx, dut.port_o(o), received[o], rng, ready_prob=ready_prob)
        sim.add_testbench(monitor, background=True)

    async def drain(ctx):
        while len(done) < 5:
            await ctx.tick()
        await ctx.tick().repeat(200)
    sim.add_testbench(drain)
    sim.run()
    return sent, received


def _check(sent, received) -> int:
    # every received flit is on the XY output; group by source
    got = {(i, o): [] for i in range(5) for o in range(5)}
    for o, flits in received.items():
        current = None  # (src, packet) of the packet in flight on this output
        for f in flits:
            assert xy_route(RX, RY, f.x, f.y) == o, f"flit {f.payload:#x} to ({f.x},{f.y}) left on {PORTS[o]}"
            src, pkt = f.payload >> 24, (f.payload >> 8) & 0xFFFF
            if current is not None:
                assert current == (src, pkt), f"packets interleaved on {PORTS[o]}: {current} and {(src, pkt)}"
            current = None if f.last else (src, pkt)
            got[src, o].append((f.x, f.y, f.chan, f.payload, f.last))
        assert current is None, f"packet cut short on {PORTS[o]}"
    compared = 0
    for i, flits in sent.items():
        for o in range(5):
            want = [(f["x"], f["y"], f["chan"], f["payload"], f["last"]) for f in flits
                    if xy_route(RX, RY, f["x"], f["y"]) == o]
            assert got[i, o] == want, f"{PORTS[i]} -> {PORTS[o]}: order, loss or duplicate"
            compared += len(want)
    return compared


@pytest.mark.parametrize("seed, ready_prob, idle_prob", [(1, 0.6, 0.3), (2, 1.0, 0.0), (3, 0.25, 0.5)])
def test_router_delivers_in_order_with_backpressure(seed, ready_prob, idle_prob):
    sent, received = _run(seed, n_packets=25, ready_prob=ready_prob, idle_prob=idle_prob)
    total = sum(len(v) for v in sent.values())
    compared = _check(sent, received)
    assert compared == total == sum(len(v) for v in received.values())
    assert total > 5 * 25  # packets of 1..4 flits


def test_router_zero_load_latency_and_full_throughput():
    """One packet west -> east: head after LATENCY cycles, then one flit per cycle."""
    dut = MeshRouter(x_bits=XB, y_bits=YB, payload_bits=PAYLOAD_BITS, latency_cycles=LATENCY)
    layout = flit_layout(XB, YB, PAYLOAD_BITS)
    n = 8
    arrivals = []

    async def bench(ctx):
        ctx.set(dut.east_o.ready, 1)
        cycle = 0
        for k in range(n):
            ctx.set(dut.west_i.payload, layout.const({"x": 2, "y": 1, "payload": k, "last": int(k == n - 1)}))
            ctx.set(dut.west_i.valid, 1)
            _, _, ready = await ctx.tick().sample(dut.west_i.ready)
            assert ready, "input back-pressured an idle router"
            cycle += 1  # clock edges so far
            if ctx.get(dut.east_o.valid):
                arrivals.append((cycle, ctx.get(dut.east_o.payload).payload))
        ctx.set(dut.west_i.valid, 0)
        for _ in range(LATENCY + 2):
            await ctx.tick()
            cycle += 1
            if ctx.get(dut.east_o.valid):
                arrivals.append((cycle, ctx.get(dut.east_o.payload).payload))

    sim = Simulator(_placed(dut))
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    # flit k is accepted at edge k + 1 and visible at the output LATENCY edges later
    assert arrivals == [(k + LATENCY, k) for k in range(n)]
    assert LATENCY == 2  # tiny: 20 ns hop at 100 MHz


def test_router_rejects_bad_parameters():
    with pytest.raises(ValueError, match="latency_cycles"):
        MeshRouter(x_bits=1, y_bits=1, payload_bits=8, latency_cycles=0)
    with pytest.raises(ValueError, match="x_bits"):
        MeshRouter(x_bits=0, y_bits=1, payload_bits=8)
    with pytest.raises(ValueError, match="payload_bits"):
        MeshRouter(x_bits=1, y_bits=1, payload_bits=0)


def test_xy_reference():
    assert xy_route(1, 1, 2, 0) == EAST
    assert xy_route(1, 1, 0, 2) == WEST
    assert xy_route(1, 1, 1, 2) == SOUTH
    assert xy_route(1, 1, 1, 0) == NORTH
    assert xy_route(1, 1, 1, 1) == LOCAL


def test_router_position_is_a_port():
    """One router module, any position: a local flit leaves on the port ``xy_route`` names for every
    position and destination of a 3 x 3 grid (positions set on the ``x``/``y`` ports, no re-elaboration)."""
    dut = MeshRouter(x_bits=XB, y_bits=YB, payload_bits=PAYLOAD_BITS, latency_cycles=LATENCY)
    layout = flit_layout(XB, YB, PAYLOAD_BITS)
    seen = []

    async def bench(ctx):
        for o in range(5):
            ctx.set(dut.port_o(o).ready, 1)
        for px in range(3):
            for py in range(3):
                ctx.set(dut.x, px)
                ctx.set(dut.y, py)
                for dx in range(3):
                    for dy in range(3):
                        ctx.set(dut.local_i.payload, layout.const({"x": dx, "y": dy, "payload": 7, "last": 1}))
                        ctx.set(dut.local_i.valid, 1)
                        await ctx.tick()
                        ctx.set(dut.local_i.valid, 0)
                        outs = []
                        for _ in range(LATENCY + 1):
                            outs += [o for o in range(5) if ctx.get(dut.port_o(o).valid)]
                            await ctx.tick()
                        seen.append(((px, py, dx, dy), outs))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert len(seen) == 81
    for (px, py, dx, dy), outs in seen:
        assert outs == [xy_route(px, py, dx, dy)], f"router at ({px},{py}), flit to ({dx},{dy}): left on {outs}"
    # all five outputs are used somewhere (the comparisons are not constant)
    assert {o for _, outs in seen for o in outs} == {LOCAL, NORTH, EAST, SOUTH, WEST}
