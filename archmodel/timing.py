"""Cycle model of one array MVM through the tile controller (shared contract).

The mapper predicts, and the RTL and its co-simulation realise, the same
sequence for one MVM on one array (DESIGN.md, "The array port"):

1. the tile controller sends the DAC codes of the ``rows_used`` rows in
   ``ceil(rows_used / rows_per_dac_beat)`` beats, one beat per cycle;
2. the array integrates and converts for ``array_mvm_cycles(spec)`` cycles
   after it accepted the beat carrying ``last``;
3. the array returns the ADC codes of ``cols_used`` columns in
   ``ceil(cols_used / cols_per_adc_beat)`` beats, one beat per cycle;
4. successive MVMs on the same array do not overlap (assumed: one
   integration capacitor per column, no double buffering).

``MVM_OVERHEAD_CYCLES`` covers the handshake turn-around between the phases
(assumed 2 cycles: one to start the array after ``last``, one to hand the
last ADC beat to the affine unit). The RTL tile controller is built to meet
this figure; the co-simulation checks it within 2 %.
"""

from __future__ import annotations

import math

from archmodel.spec import ChipSpec, array_mvm_cycles

__all__ = ["MVM_OVERHEAD_CYCLES", "adc_beats", "dac_beats", "mvm_cycles"]

#: Handshake turn-around cycles per MVM (assumed; see module docstring).
MVM_OVERHEAD_CYCLES = 2


def dac_beats(spec: ChipSpec, rows_used: int) -> int:
    """Array-port DAC beats of one MVM: ``ceil(rows_used / rows_per_dac_beat)``."""
    _check(spec.array.rows, rows_used, "rows_used")
    return math.ceil(rows_used / spec.array.rows_per_dac_beat)


def adc_beats(spec: ChipSpec, cols_used: int) -> int:
    """Array-port ADC beats of one MVM: ``ceil(cols_used / cols_per_adc_beat)``."""
    _check(spec.array.cols, cols_used, "cols_used")
    return math.ceil(cols_used / spec.array.cols_per_adc_beat)


def mvm_cycles(spec: ChipSpec, rows_used: int, cols_used: int) -> int:
    """Clock cycles of one MVM on one array, from the first DAC beat to the last ADC beat.

    ``dac_beats + array_mvm_cycles(spec) + adc_beats + MVM_OVERHEAD_CYCLES``.

    Raises
    ------
    ValueError
        If ``rows_used`` or ``cols_used`` is not in ``[1, array size]``.
    """
    return dac_beats(spec, rows_used) + array_mvm_cycles(spec) + adc_beats(spec, cols_used) + MVM_OVERHEAD_CYCLES


def _check(limit: int, value: int, name: str) -> None:
    if not (1 <= value <= limit):
        raise ValueError(f"{name}={value} out of range; expected 1..{limit}")
