"""The cycle model (one job): every clock-cycle figure the mapper predicts and the RTL realises.

The mapper, the RTL parameters, the testbenches and the co-simulation all take
their cycle counts from here; nothing else computes one.

One array MVM through the tile controller (shared contract):

The mapper predicts, and the RTL and its co-simulation realise, the same
sequence for one MVM on one array (docs/design.md, "The array port"):

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

The affine unit (rtl/affine.py) emits ``periphery.affine_lanes`` (``L``)
columns -- int8 results, or partial sums of a mesh chain -- per cycle, in
slots of ``L`` columns of an ADC beat's column group (``L`` divides
``cols_per_adc_beat``, so only the final group of a column block has a partial
slot): a column block of ``cols_used`` columns occupies it for
``ceil(cols_used / L)`` cycles (:func:`affine_cycles`). Its result beats carry
``L`` int8 each; the tile's network interface (rtl/axis.py ``ResultPacker``)
packs whole beats into the next tile's ``act`` beats, ``L`` results per cycle,
so nothing downstream serializes them back to one column per cycle.

Stage time per input vector of a tile (:func:`tile_vector_cycles`): the
slower of its array port and its affine unit. In the co-simulation
(tb/cosim.py) it is the steady-state spacing of successive vectors' last
outputs with no stall, which is what this function predicts.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable

from archmodel.spec import ChipSpec, array_mvm_cycles

__all__ = ["AFFINE_LATENCY_CYCLES", "CONFIG_COPY_CYCLES", "MVM_OVERHEAD_CYCLES", "HOST_OUT_SLICE_CYCLES",
           "NI_SLICE_CYCLES", "SOURCE_MERGE_CYCLES",
           "START_CHECK_CYCLES", "DIGITAL_CHECK_CYCLES", "adc_beats", "affine_cycles",
           "cycles_to_ns", "dac_beats", "DIGITAL_LATENCY_CYCLES", "digital_layer_cycles", "digital_matrix_cycles",
           "digital_slot_cycles", "hop_cycles",
           "layer_mvm_cycles", "mvm_cycles", "digital_input_slice_cycles", "digital_start_latency_cycles",
           "start_latency_cycles", "tile_vector_cycles"]

#: Handshake turn-around cycles per MVM (assumed; see module docstring).
MVM_OVERHEAD_CYCLES = 2

#: Cycles the registered configuration check adds between a ``start`` pulse and the run (issue 19), in the
#: tile controller (rtl/tile_controller.py; the digital datapath: ``DIGITAL_CHECK_CYCLES``): the check (multiplies
#: and compares on the configuration registers) is computed into a flip-flop every cycle and the start logic
#: uses it one cycle later (state CHECK), so the critical path no longer runs from a configuration register
#: through the check into the start logic.
START_CHECK_CYCLES = 1

#: Cycles of the digital datapath's configuration check (rtl/digital.py, state CHECK; issue 19): a 3-stage
#: pipeline (compares and channel groups; groups x K in a multiplier with registered operands and product;
#: + w_base1 and the compare with the weight memory), so no stage holds more than one of them: in context the
#: one-stage check (configuration copy -> groups -> MULT18X18D -> compare -> flip-flop) was 17.1 ns routed.
DIGITAL_CHECK_CYCLES = 3

#: Cycles from an AXI4-Lite register write in the co-processor's CSR bank to the block port it drives, and
#: from a block's status port to the register the host reads, beyond the bank's own (issue 19): every
#: configuration / status field passes one copy register between the bank and its block (rtl/top.py
#: ``Coprocessor._bind_csr``), so no path runs from the bank's flip-flops across the device into a block's
#: logic. The same for every field, so fields written in one order still arrive in that order (a W1P
#: ``start`` after its configuration). Adds ``CONFIG_COPY_CYCLES`` to the start of a run after the host's
#: ``start`` write; nothing per vector.
CONFIG_COPY_CYCLES = 1

#: Cycles from a beat accepted by the digital node's source merge (rtl/axis.py ``SourceMerge``) to its first
#: element on the merge's output: a register slice at the input (1 cycle, issue 19, fifth stop: the link's
#: ``ready`` is a flip-flop, not the tag compare and queue pick; was 12.6 ns into the I/O router in context),
#: the queue's block-RAM FIFO (``amaranth.lib.fifo.SyncFIFOBuffered``, 2 cycles, measured) and a register slice
#: after it (1 cycle, issue 19: the merge multiplexers start from flip-flops, not from the RAM's slow
#: clock-to-out). Measured in tests/test_rtl_source_merge.py::test_source_merge_latency. Once per vector element
#: in flight; the throughput stays one element per cycle.
SOURCE_MERGE_CYCLES = 4

#: Cycles of the register slice between a network interface's destination fanout and its flit serializer
#: (rtl/top.py ``Coprocessor._to_tx``, rtl/axis.py ``StreamSlice``; issue 19): every result beat of a tile or
#: of the digital datapath enters the mesh one cycle later; the throughput stays one beat per cycle.
NI_SLICE_CYCLES = 1

#: Cycles of the register slice between the I/O router's local output and the co-processor's ``m_axis`` (rtl/top.py;
#: issue 19, fifth stop: the host's ``tready`` no longer runs into the router's arbiter, nor the arbitration into
#: the output vector count): every beat reaches the host one cycle later; the throughput stays one flit per cycle;
#: ``done`` still rises 2 cycles after the host takes the last score (the count is taken at ``m_axis``).
HOST_OUT_SLICE_CYCLES = 1


def digital_input_slice_cycles(spec: ChipSpec) -> int:
    """Cycles of the register slice between the digital node's source merge and the datapath's ``x_in``
    (rtl/top.py; issue 19): 1 on chips without line buffers (``interconnect.line_buffers`` false, e.g.
    tiny-fpga, the FPGA prototype's chip), 0 with them (the patch buffer sits there, combinational merge).
    Once per vector element in flight; the throughput stays one element per cycle."""
    return 0 if spec.interconnect.line_buffers else 1


#: Pipeline latency of the affine unit's requantizer in cycles (column in -> int8 out): coefficient read,
#: coefficient register, multiply, add offset, shift, round/saturate/ReLU. ``rtl.affine.Requantizer`` is
#: built with exactly this many stages and checks it at elaboration; a chip description must say the same
#: (``periphery.affine_latency_cycles``, checked by :mod:`archmodel.spec`).
AFFINE_LATENCY_CYCLES = 6



def affine_cycles(spec: ChipSpec, cols_used: int) -> int:
    """Cycles the RTL affine unit spends on one column block of one vector: ``ceil(cols_used / affine_lanes)``.

    ``periphery.affine_lanes`` columns (results or partial sums) leave per cycle
    (rtl/affine.py; module docstring). Raises ValueError if ``cols_used`` is not in
    ``[1, array.cols]``.
    """
    _check(spec.array.cols, cols_used, "cols_used")
    return -(-cols_used // spec.periphery.affine_lanes)


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


def layer_mvm_cycles(spec: ChipSpec, k: int, n: int) -> int:
    """Array-port cycles of one input vector of a ``k x n`` matrix on one tile.

    :func:`mvm_cycles` summed over the matrix's ``ceil(k/rows) x ceil(n/cols)``
    row and column blocks (the arrays of one tile run one after another).
    """
    a = spec.array
    return sum(mvm_cycles(spec, min(a.rows, k - rb * a.rows), min(a.cols, n - cb * a.cols))
               for rb in range(-(-k // a.rows)) for cb in range(-(-n // a.cols)))


def tile_vector_cycles(spec: ChipSpec, blocks: Iterable[tuple[Hashable, int, int]]) -> int:
    """Cycles per input vector of one tile: its slower resource, the array port or the affine unit.

    ``blocks`` are the tile's arrays as ``(column key, rows_used, cols_used)``;
    the column key names the output columns an array feeds (arrays of one
    column block share it). ``max(sum of mvm_cycles, sum of affine_cycles)``,
    where each distinct column key streams its ``cols_used`` columns once,
    ``affine_lanes`` per cycle.
    """
    array_port = 0
    cols_streamed: dict[Hashable, int] = {}
    cache: dict[tuple[int, int], int] = {}
    for key, ru, cu in blocks:
        if (ru, cu) not in cache:
            cache[(ru, cu)] = mvm_cycles(spec, ru, cu)
        array_port += cache[(ru, cu)]
        cols_streamed[key] = cu
    return max(array_port, sum(affine_cycles(spec, cu) for cu in cols_streamed.values()))


def digital_layer_cycles(spec: ChipSpec, macs: int) -> int:
    """``ceil(macs / digital.mac_lanes)`` cycles on the digital datapath (an operator's element work)."""
    return -(-macs // spec.digital.mac_lanes)


def digital_matrix_cycles(spec: ChipSpec, k: int, n: int, vectors: int = 1, groups: int = 1) -> int:
    """Cycles of a matrix layer (K terms, N outputs per group) on the digital datapath.

    ``vectors · groups · K · ceil(N / digital.mac_lanes)``: the RTL (rtl/digital.py) computes
    ``mac_lanes`` output channels at a time, one term per cycle, so a last partial channel group
    costs a whole group (N = 10 on 4 lanes: 3 groups, not 2.5). The pipeline drain after each run
    (MAC and requantizer stages, ~12-14 cycles) is not counted.
    """
    return vectors * groups * k * -(-n // spec.digital.mac_lanes)


def hop_cycles(spec: ChipSpec) -> int:
    """Cycles of one mesh-router hop in the RTL: ``max(1, spec.cycles(interconnect.hop_latency_ns))``."""
    return max(1, spec.cycles(spec.interconnect.hop_latency_ns))


def cycles_to_ns(spec: ChipSpec, cycles: float) -> float:
    """``cycles · 1000 / technology.clock_mhz`` (ns)."""
    return cycles * 1000.0 / spec.technology.clock_mhz


def _check(limit: int, value: int, name: str) -> None:
    if not (1 <= value <= limit):
        raise ValueError(f"{name}={value} out of range; expected 1..{limit}")


def start_latency_cycles() -> int:
    """Cycles from a tile controller's ``start`` pulse to the first input ready: ``1 + START_CHECK_CYCLES``.

    The tile controller's ``act.ready`` (the CHECK cycle, then WAIT with ``accepting`` set;
    rtl/tile_controller.py; the digital datapath: :func:`digital_start_latency_cycles`).
    A one-off cost per run, not part of the per-vector stage time (:func:`tile_vector_cycles`)."""
    return 1 + START_CHECK_CYCLES


def digital_start_latency_cycles() -> int:
    """Cycles from the digital datapath's ``start`` pulse to its first ``x_in`` ready: ``1 + DIGITAL_CHECK_CYCLES``
    (state CHECK for ``DIGITAL_CHECK_CYCLES`` cycles, then RUN; rtl/digital.py). A one-off cost per run, not part
    of :func:`digital_matrix_cycles` (the busy-cycle counters start after the check)."""
    return 1 + DIGITAL_CHECK_CYCLES


#: Cycles from the fetch of a channel group's last term to its first result on the digital datapath
#: (rtl/digital.py ``DigitalDatapath.LATENCY``: fetch, operand, product, accumulate; 6 requantizer stages).
DIGITAL_LATENCY_CYCLES = 10


def digital_slot_cycles(spec: ChipSpec, k: int, n: int, vectors: int) -> int:
    """Busy cycles of one run of a layer slot on the digital datapath (its ``cycles0`` / ``cycles1`` counter per run,
    no input or output stalls): :func:`digital_matrix_cycles` ``(k, n, vectors)`` plus the drain once per run
    (a slot's ``vectors`` of one round are one run, rtl/digital.py): ``DIGITAL_LATENCY_CYCLES`` + the last
    channel group's channels ``(n - 1) % mac_lanes + 1`` (they leave the result bank one per cycle). Measured
    equal in tests/test_rtl_digital.py::test_digital_two_slots_per_slot_vector_counts (K = 9, N = 6 on 4 lanes:
    72 + 12; K = 20, N = 5: 40 + 11 per run)."""
    return digital_matrix_cycles(spec, k, n, vectors) + DIGITAL_LATENCY_CYCLES + (n - 1) % spec.digital.mac_lanes + 1
