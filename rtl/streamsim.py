"""Simulation helpers for ``amaranth.lib.stream`` ports (drivers and monitors).

Async testbench coroutines for :class:`amaranth.sim.Simulator`
(``sim.add_testbench``): a driver that offers a list of payloads with random
idle cycles, and a monitor that accepts with random back-pressure and records
every transfer. Randomness comes from an explicit ``numpy.random.Generator``.
They are used by the RTL unit tests; nothing here is synthesized.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["drive_stream", "monitor_stream"]


async def drive_stream(ctx, port, payloads: Sequence[Any], rng: np.random.Generator, *,
                       idle_prob: float = 0.3, on_sent: Callable[[Any], None] | None = None) -> None:
    """Offer ``payloads`` on the source side of ``port`` one transfer each.

    Between transfers the driver idles for a cycle with probability
    ``idle_prob``. ``valid`` and ``payload`` hold until ``ready`` (stream
    rules). ``on_sent(p)`` is called after each transfer.
    """
    for p in payloads:
        while rng.random() < idle_prob:
            ctx.set(port.valid, 0)
            await ctx.tick()
        ctx.set(port.payload, p)
        ctx.set(port.valid, 1)
        await ctx.tick().until(port.ready)
        if on_sent is not None:
            on_sent(p)
    ctx.set(port.valid, 0)


async def monitor_stream(ctx, port, received: list, rng: np.random.Generator, *,
                         ready_prob: float = 0.7, check_hold: bool = True) -> None:
    """Accept transfers on the sink side of ``port`` forever, appending payloads.

    ``ready`` is drawn each cycle with probability ``ready_prob``. With
    ``check_hold`` it also asserts the source rule: once ``valid`` is offered
    it stays, with the same payload, until accepted. Run it as a background
    testbench (``add_testbench(..., background=True)``).
    """
    pending = None  # payload offered but not accepted yet
    while True:
        ctx.set(port.ready, int(rng.random() < ready_prob))
        _, _, valid, ready, payload = await ctx.tick().sample(port.valid, port.ready, port.payload)
        if check_hold and pending is not None:
            assert valid, "stream source withdrew valid before the transfer"
            assert _as_int(payload) == pending, "stream source changed its payload before the transfer"
        if valid and ready:
            received.append(payload)
            pending = None
        elif valid:
            pending = _as_int(payload)


def _as_int(value) -> int:
    as_value = getattr(value, "as_value", None)
    if as_value is not None:
        return as_value().value
    return int(value)
