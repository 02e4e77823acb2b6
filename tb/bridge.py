"""The PCM-array bridge: the behavioural crossbar behind one RTL array port (co-simulation).

The digital periphery ends at the array port (docs/design.md, "The array port"):
a ``dac`` stream out of the tile controller and an ``adc`` stream back into
it. :class:`PCMArrayBridge` stands where the analog macro would be. For every
MVM it

1. accepts the ``dac`` beats up to the one carrying ``last`` (one row group
   of signed DAC codes per beat; optional random back-pressure);
2. finds which array and which input vector the MVM belongs to: MVM ``m`` of
   the run is step ``m mod S`` of :func:`archmodel.golden.tile_controller.tile_schedule`
   (``S = n_row_blocks * n_col_blocks``) for input vector ``v = m div S``; it
   checks the beat count, the zero padding beyond the block's rows
   (:func:`archmodel.golden.tile_controller.unbeat`) and, when the tile holds several arrays,
   the beat's ``array`` field against the schedule (a mismatch counts as a
   protocol error);
3. asks the programmed :class:`archmodel.analog_matrix.AnalogMatrix` for the ADC codes
   of that one array, :meth:`~archmodel.analog_matrix.AnalogMatrix.array_adc_codes`
   ``(row_block, col_block, codes, mvm_index=v)`` -- the output-noise key is
   the input-vector index, as in the batched reference;
4. waits the array latency and returns the codes on ``adc`` in
   :func:`archmodel.golden.tile_controller.adc_beats`, ``last`` on the final beat, honouring
   ``ready`` (optional random valid gaps).

Latency (the figure the mapper uses, ``archmodel.timing``): the array
integrates and converts for ``array_mvm_cycles(spec)`` cycles starting in the
cycle after it accepted the ``last`` DAC beat, so its first ADC beat is
presented ``L = array_mvm_cycles(spec) + 1`` cycles after the cycle in which
``last`` was accepted. With no stalls one MVM then takes exactly
``archmodel.timing.mvm_cycles`` cycles of the tile controller (see
:mod:`rtl.tile_controller`).

The bridge records the cycle of every accepted DAC and ADC beat, so the
testbench can measure the array-port busy time of a run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from cocotb.triggers import ReadOnly, Timer

from archmodel.analog_matrix import AnalogMatrix
from archmodel.golden.tile_controller import adc_beats, block_counts, tile_schedule, unbeat
from archmodel.spec import ChipSpec, array_mvm_cycles
from rtl.params import TileParams
from rtl.tile_controller import adc_beat_layout, dac_beat_layout
from tb.streams import CycleClock, StreamPort

__all__ = ["BridgeStats", "PCMArrayBridge", "array_latency_cycles"]


def array_latency_cycles(spec: ChipSpec) -> int:
    """Cycles from accepting the ``last`` DAC beat to presenting the first ADC beat: ``array_mvm_cycles + 1``."""
    return array_mvm_cycles(spec) + 1


@dataclass
class BridgeStats:
    """What one bridge saw: MVMs served, protocol errors, beat cycles."""

    mvms: int = 0
    protocol_errors: int = 0
    errors: list[str] = field(default_factory=list)
    first_dac_cycle: int | None = None
    last_adc_cycle: int | None = None
    mvm_start_cycles: list[int] = field(default_factory=list)

    def error(self, msg: str) -> None:
        self.protocol_errors += 1
        if len(self.errors) < 20:
            self.errors.append(msg)


class PCMArrayBridge:
    """The behavioural PCM crossbar on one array port (see the module docstring).

    Parameters
    ----------
    dut : cocotb handle
        Design with ``dac__*`` and ``adc__*`` stream ports.
    clock : CycleClock
    spec : ChipSpec
        Chip description (array latency, beat sizes).
    matrix : AnalogMatrix
        The layer's programmed (and drifted) matrix, shape (K, N).
    rng : numpy.random.Generator, optional
        Draws back-pressure on ``dac`` and gaps on ``adc``.
    p_dac_ready, p_adc_valid : float
        Probabilities of ``dac.ready`` / presenting the next ``adc`` beat in a
        cycle (1.0: never stall, the timing contract).
    latency_cycles : int, optional
        Override of :func:`array_latency_cycles` (tests of the RTL's
        independence from the latency).
    dac_prefix, adc_prefix : str
        Port names (default ``dac`` / ``adc``).
    fault_mvm : int, optional
        Fault injection (checks the checker): the answer to MVM number
        ``fault_mvm`` of the run has every ADC code negated (saturating).
    """

    def __init__(self, dut: Any, clock: CycleClock, spec: ChipSpec, matrix: AnalogMatrix, *,
                 rng: np.random.Generator | None = None, p_dac_ready: float = 1.0,
                 p_adc_valid: float = 1.0, latency_cycles: int | None = None,
                 dac_prefix: str = "dac", adc_prefix: str = "adc", fault_mvm: int | None = None):
        self.params = p = TileParams.from_spec(spec)
        self.spec, self.matrix, self.clock = spec, matrix, clock
        self.dac = StreamPort(dut, dac_prefix, dac_beat_layout(p))
        self.adc = StreamPort(dut, adc_prefix, adc_beat_layout(p))
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.p_dac_ready, self.p_adc_valid = float(p_dac_ready), float(p_adc_valid)
        self.latency = array_latency_cycles(spec) if latency_cycles is None else int(latency_cycles)
        if self.latency < 1:
            raise ValueError(f"latency_cycles must be >= 1, got {self.latency}")
        k, n = matrix.shape
        self.k, self.n = k, n
        self.n_rb, self.n_cb = block_counts(k, n, p.array_rows, p.array_cols)
        if self.n_rb * self.n_cb > p.arrays_per_tile:
            raise ValueError(f"a {k} x {n} matrix needs {self.n_rb} x {self.n_cb} arrays; the tile has "
                             f"array.arrays_per_tile = {p.arrays_per_tile}")
        self.schedule = tile_schedule(self.n_rb, self.n_cb)
        self.stats = BridgeStats()
        self.fault_mvm = fault_mvm

    # ------------------------------------------------------------------ model
    def answer(self, beats: list[dict], mvm: int) -> list[dict]:
        """ADC beats for the DAC beats of MVM number ``mvm`` of the run (protocol checked)."""
        p = self.params
        step = self.schedule[mvm % len(self.schedule)]
        vector = mvm // len(self.schedule)
        rows = min(p.array_rows, self.k - step.row_block * p.array_rows)
        cols = min(p.array_cols, self.n - step.col_block * p.array_cols)
        if p.arrays_per_tile > 1:
            bad = [b["array"] for b in beats if b["array"] != step.array_index]
            if bad:
                self.stats.error(f"MVM {mvm}: dac.array {bad[0]} != array {step.array_index} of the schedule")
        try:
            codes = unbeat(np.array([b["codes"] for b in beats], dtype=np.int64), rows)
        except ValueError as exc:
            self.stats.error(f"MVM {mvm} (row block {step.row_block}): {exc}")
            codes = np.array([c for b in beats for c in b["codes"]][:rows], dtype=np.int64)
            codes = np.pad(codes, (0, rows - codes.size))
        adc = self.matrix.array_adc_codes(step.row_block, step.col_block, codes, mvm_index=vector)[0]
        assert adc.size == cols
        if mvm == self.fault_mvm:
            half = 1 << (p.adc_bits - 1)
            adc = np.clip(-adc, -half, half - 1)
        out = adc_beats(adc, p.cols_per_adc_beat)
        return [{"codes": [int(c) for c in b], "last": int(i == len(out) - 1)} for i, b in enumerate(out)]

    # ------------------------------------------------------------------ coroutine
    async def run(self) -> None:
        """Serve MVMs forever (start with ``cocotb.start_soon`` right after a rising edge)."""
        dac, adc, clock, st = self.dac, self.adc, self.clock, self.stats
        steady = self.p_dac_ready >= 1.0
        adc.valid.value = 0
        dac.ready.value = 1
        while True:
            # ---- 1. collect one MVM's DAC beats
            beats: list[dict] = []
            while True:
                if not steady:
                    ready = int(self.rng.random() < self.p_dac_ready)
                    dac.ready.value = ready
                else:
                    ready = 1
                await ReadOnly()
                if dac.valid.value:
                    if ready:
                        beat = dac.read()
                        cycle = clock.cycle()
                        if not beats:
                            st.mvm_start_cycles.append(cycle)
                            if st.first_dac_cycle is None:
                                st.first_dac_cycle = cycle
                        beats.append(beat)
                        if beat["last"]:
                            break
                    await clock.edge
                elif steady:
                    await dac.valid_rise
                else:
                    await clock.edge
            # ---- 2./3. the array's answer (zero simulated time)
            answer = self.answer(beats, st.mvms)
            st.mvms += 1
            # ---- 4. latency, then the ADC beats
            # one Timer for the array latency (not a wake-up per clock): to mid-cycle before edge
            # c + latency, then that edge: the ADC beat is written after it, as with ClockCycles(latency)
            await Timer(self.latency * clock.period_ns - clock.period_ns / 2, "ns")
            await clock.edge
            if not steady:
                dac.ready.value = 0
            for payload in answer:
                while self.p_adc_valid < 1.0 and self.rng.random() >= self.p_adc_valid:
                    adc.valid.value = 0
                    await clock.edge
                adc.write(payload)
                adc.valid.value = 1
                while True:
                    await ReadOnly()
                    if adc.ready.value:
                        st.last_adc_cycle = clock.cycle()
                        await clock.edge
                        break
                    await adc.ready_rise
            adc.valid.value = 0
