"""Cycle-level stream drivers for the Amaranth-simulation tests of rtl/ (not a test module).

One testbench coroutine drives every stream of a DUT each cycle (``Harness.step``):
sources present queued payloads with random valid gaps (a presented beat stays
until accepted, as the stream rules require), sinks raise ``ready`` at random,
and every handshake is judged on the values sampled at the clock edge. A single
coroutine keeps the stimulus reproducible from one seeded generator and makes a
reset in the middle of a transfer easy to model (``Harness.reset``).
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

__all__ = ["Harness", "Sink", "Source", "simulate"]


class Source:
    """Drives ``stream`` (valid/payload) from a queue, valid with probability ``p_valid``."""

    def __init__(self, stream: Any, rng: np.random.Generator, p_valid: float = 1.0):
        self.stream, self.rng, self.p_valid = stream, rng, p_valid
        self.queue: deque = deque()
        self.current: Any = None
        self.sent = 0

    def put(self, payload: Any) -> None:
        self.queue.append(payload)

    def drive(self, ctx) -> None:
        if self.current is None and self.queue and (self.p_valid >= 1 or self.rng.random() < self.p_valid):
            self.current = self.queue.popleft()
            ctx.set(self.stream.payload, self.current)
        ctx.set(self.stream.valid, self.current is not None)

    def signals(self) -> tuple:
        return (self.stream.valid, self.stream.ready)

    def update(self, valid: int, ready: int) -> bool:
        if valid and ready:
            self.current = None
            self.sent += 1
            return True
        return False

    @property
    def idle(self) -> bool:
        return self.current is None and not self.queue

    def reset(self) -> None:
        self.queue.clear()
        self.current = None


class Sink:
    """Accepts ``stream`` beats, ready with probability ``p_ready``; collects payloads."""

    def __init__(self, stream: Any, rng: np.random.Generator, p_ready: float = 1.0):
        self.stream, self.rng, self.p_ready = stream, rng, p_ready
        self.items: list = []
        self.cycles: list[int] = []
        self.ready = False

    def drive(self, ctx) -> None:
        self.ready = self.p_ready >= 1 or self.rng.random() < self.p_ready
        ctx.set(self.stream.ready, self.ready)

    def signals(self) -> tuple:
        return (self.stream.valid, self.stream.payload)

    def update(self, valid: int, payload: Any, cycle: int) -> bool:
        if valid and self.ready:
            self.items.append(payload)
            self.cycles.append(cycle)
            return True
        return False

    def reset(self) -> None:
        self.items.clear()
        self.cycles.clear()


class Harness:
    """Steps a set of sources and sinks one clock cycle at a time."""

    def __init__(self, sources: dict[str, Source], sinks: dict[str, Sink], rst: Any):
        self.sources, self.sinks, self.rst = sources, sinks, rst
        self.cycle = 0
        self.fired: dict[str, bool] = {}

    async def step(self, ctx, *extra) -> tuple:
        """One cycle: drive, tick, judge handshakes; returns the sampled ``extra`` values."""
        for s in self.sources.values():
            s.drive(ctx)
        for k in self.sinks.values():
            k.drive(ctx)
        sigs: list = []
        for s in self.sources.values():
            sigs += s.signals()
        for k in self.sinks.values():
            sigs += k.signals()
        _, rst, *vals = await ctx.tick().sample(*sigs, *extra)
        i = 0
        self.fired = {}
        for name, s in self.sources.items():
            self.fired[name] = (not rst) and s.update(vals[i], vals[i + 1])
            i += 2
        for name, k in self.sinks.items():
            self.fired[name] = (not rst) and k.update(vals[i], vals[i + 1], self.cycle)
            i += 2
        self.cycle += 1
        return tuple(vals[i:])

    async def reset(self, ctx, cycles: int = 1) -> None:
        """Assert the domain reset for ``cycles`` cycles and flush every queue."""
        for s in self.sources.values():
            s.reset()
            ctx.set(s.stream.valid, 0)
        ctx.set(self.rst, 1)
        for _ in range(cycles):
            await ctx.tick()
            self.cycle += 1
        ctx.set(self.rst, 0)
        for k in self.sinks.values():
            k.reset()


def simulate(dut: Any, testbench) -> None:
    """Run ``testbench(ctx, rst)`` on ``dut`` in a ``sync`` domain with a drivable reset."""
    m = Module()
    m.domains.sync = cd = ClockDomain("sync")
    m.submodules.dut = dut
    sim = Simulator(m)
    sim.add_clock(1e-8, domain="sync")

    async def tb(ctx):
        await testbench(ctx, cd.rst)

    sim.add_testbench(tb)
    sim.run()
