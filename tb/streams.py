"""cocotb drivers and monitors for the ``amaranth.lib.stream`` ports of exported Verilog.

Amaranth exports a stream member ``x`` as three ports: ``x__valid``,
``x__ready`` and ``x__payload`` (the payload layout flattened to one vector,
see :mod:`tb.packing`). The classes here drive and sample them with one
timing discipline, the same for Icarus and Verilator:

- values are **written right after a rising clock edge** (cocotb applies them
  in that time step's ReadWrite phase, long before the next edge);
- values are **sampled in the ReadOnly phase** of the same time step, when the
  design has settled; a beat with ``valid & ready`` there is transferred at the
  next rising edge. "Cycle ``t``" is the interval after edge ``t``; a beat
  sampled in cycle ``t`` is *accepted in cycle t*.

Idle waits do not wake up every cycle: a source whose beat is not accepted
sleeps until ``ready`` rises, a monitor with nothing to see until ``valid``
rises (cheap on long array latencies or stalled streams). Random gaps
(``p_valid`` / ``p_ready`` < 1) come from a seeded ``numpy.random.Generator``
and cost one wake-up per cycle while in use.

Cycle numbers come from the simulation time (:class:`Clock` period), so no
coroutine has to count edges.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np
from cocotb.simtime import get_sim_time
from cocotb.triggers import ReadOnly, RisingEdge

from tb.packing import pack, unpack

__all__ = ["CycleClock", "StreamPort", "StreamSink", "StreamSource"]


class CycleClock:
    """The testbench clock: its handle, period, and the current cycle number.

    Parameters
    ----------
    clk : cocotb handle
        The design's clock input.
    period_ns : int
        Period of the :class:`cocotb.clock.Clock` driving it (started high at
        time 0, so edge ``t`` is at ``t * period_ns``).
    """

    def __init__(self, clk: Any, period_ns: int = 10):
        self.clk = clk
        self.period_ns = int(period_ns)
        self.edge = RisingEdge(clk)

    def cycle(self) -> int:
        """Number of the current cycle (the last rising edge's index)."""
        return int(get_sim_time("ns")) // self.period_ns


class StreamPort:
    """Handles and payload layout of one exported stream ``<name>__{valid,ready,payload}``.

    Parameters
    ----------
    dut : cocotb handle
        The top-level design.
    name : str
        Stream member name (``act``, ``dac``, ...).
    layout : amaranth.lib.data.Layout
        The payload layout, taken from the component's own signature.
    """

    def __init__(self, dut: Any, name: str, layout: Any):
        self.name = name
        self.layout = layout
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.valid_rise = RisingEdge(self.valid)
        self.ready_rise = RisingEdge(self.ready)

    def write(self, value: Any) -> None:
        """Drive the payload with a Python value (dict / list / int, see :func:`tb.packing.pack`)."""
        self.payload.value = pack(self.layout, value)

    def read(self) -> Any:
        """The payload as a Python value (see :func:`tb.packing.unpack`)."""
        return unpack(self.layout, self.payload.value.to_unsigned())


class StreamSource:
    """Drives a design input stream from a queue of payloads (testbench -> design).

    Parameters
    ----------
    port : StreamPort
    clock : CycleClock
    rng : numpy.random.Generator, optional
        Draws the valid gaps when ``p_valid < 1``.
    p_valid : float
        Probability that a queued beat is presented in a given cycle.
    on_accept : callable(payload, cycle), optional
        Called for every accepted beat.

    Members
    -------
    sent : int
        Beats accepted so far.
    """

    def __init__(self, port: StreamPort, clock: CycleClock, rng: np.random.Generator | None = None,
                 p_valid: float = 1.0, on_accept: Callable[[Any, int], None] | None = None):
        self.port, self.clock = port, clock
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.p_valid = float(p_valid)
        self.on_accept = on_accept
        self.queue: deque = deque()
        self.sent = 0

    def put(self, payload: Any) -> None:
        self.queue.append(payload)

    @property
    def idle(self) -> bool:
        return not self.queue

    async def run(self) -> None:
        """Present the queued beats (call after a rising edge); returns when the queue is empty."""
        port, clock = self.port, self.clock
        while self.queue:
            if self.p_valid < 1.0 and self.rng.random() >= self.p_valid:
                port.valid.value = 0
                await clock.edge
                continue
            item = self.queue[0]
            port.write(item)
            port.valid.value = 1
            while True:
                await ReadOnly()
                if port.ready.value:
                    self.queue.popleft()
                    self.sent += 1
                    if self.on_accept is not None:
                        self.on_accept(item, clock.cycle())
                    await clock.edge
                    break
                await port.ready_rise
        port.valid.value = 0


class StreamSink:
    """Accepts a design output stream and collects its beats (design -> testbench).

    Parameters
    ----------
    port : StreamPort
    clock : CycleClock
    rng : numpy.random.Generator, optional
        Draws ``ready`` when ``p_ready < 1`` (random back-pressure).
    p_ready : float
        Probability of ``ready`` in a given cycle.
    on_beat : callable(payload, cycle), optional
        Called for every accepted beat (else beats go to ``items``).

    Members
    -------
    items : list
        ``(payload, cycle)`` of every accepted beat when no ``on_beat`` is given.
    """

    def __init__(self, port: StreamPort, clock: CycleClock, rng: np.random.Generator | None = None,
                 p_ready: float = 1.0, on_beat: Callable[[Any, int], None] | None = None):
        self.port, self.clock = port, clock
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.p_ready = float(p_ready)
        self.on_beat = on_beat
        self.items: list[tuple[Any, int]] = []

    async def run(self) -> None:
        """Accept beats forever (start with ``cocotb.start_soon`` after a rising edge)."""
        port, clock = self.port, self.clock
        steady = self.p_ready >= 1.0
        port.ready.value = 1
        while True:
            if not steady:
                ready = int(self.rng.random() < self.p_ready)
                port.ready.value = ready
            else:
                ready = 1
            await ReadOnly()
            if port.valid.value:
                if ready:
                    beat = port.read()
                    if self.on_beat is not None:
                        self.on_beat(beat, clock.cycle())
                    else:
                        self.items.append((beat, clock.cycle()))
                await clock.edge
            elif steady:
                await port.valid_rise
            else:
                await clock.edge
