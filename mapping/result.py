"""Results and options of :func:`mapping.mapper.map_network`: plain dataclasses (units in the names).

:class:`MapOptions` (replication, chip cap, schedule), the per-layer row :class:`LayerMapping`, the
operator row :class:`DigitalOpMapping` (an operator outside the matrix layers, on the digital unit or
the tiles' affine units) and the totals :class:`MappingResult`; :class:`MappingError` is the one-line
error of the mapper. docs/design.md sections 12-13.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from archmodel.errors import AimcError
from archmodel.placement import LayerPlacement, Placement

__all__ = ["MAX_SPILL_BYTES", "SCHEDULES", "DigitalOpMapping", "LayerMapping", "MapOptions", "MappingError",
           "MappingResult"]


class MappingError(AimcError, ValueError):
    """The network cannot be mapped on the chip description (one clear line)."""


#: Largest off-chip memory (bytes) digital-layer weights may spill to (assumed: 1 TiB).
MAX_SPILL_BYTES = 2 ** 40


#: ``MapOptions.schedule`` values (``aimc map --schedule``).
SCHEDULES = ("spread", "reprogram", "auto")


@dataclass(frozen=True)
class MapOptions:
    """Options of :func:`map_network`.

    Attributes
    ----------
    replicate : bool
        Replicate the slowest analog layers onto spare tiles (default True).
    max_chips : int or None
        Cap on the number of chips; None = no cap.
    schedule : str
        ``"spread"`` (default): every layer resident, on as many chips as needed (an error beyond
        ``max_chips``). ``"reprogram"``: ``max_chips`` chips (default 1) hold the layers in rounds,
        reprogramming the PCM arrays between rounds, every inference (see the module docstring).
        ``"auto"``: spread when the network fits ``max_chips`` chips (or there is no cap), else
        reprogram on ``max_chips`` chips.
    """

    replicate: bool = True
    max_chips: int | None = None
    schedule: str = "spread"

    def __post_init__(self) -> None:
        if self.max_chips is not None and (not isinstance(self.max_chips, int) or self.max_chips < 1):
            raise MappingError(f"max_chips must be a positive integer, got {self.max_chips!r}")
        if self.schedule not in SCHEDULES:
            raise MappingError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")


@dataclass
class LayerMapping:
    """One row of the per-layer table (a conv or linear layer). Units in the names."""

    index: int
    name: str
    op: str
    kind: str  # "analog" or "digital"
    shape: str
    matrix_rows: int
    matrix_cols: int
    groups: int
    groups_per_array: int
    weights: int
    macs: int
    row_blocks: int
    col_blocks: int
    arrays: int  # per copy
    replication: int
    tiles: int  # all copies
    array_utilization: float
    mvms: int  # array MVMs per inference
    mvm_cycles: int  # cycles per output pixel (t_pixel)
    cycles: int  # stage time per inference
    latency_ns: float  # compute time per inference (cycles in ns)
    devices: int
    activation_bit_hops: float
    partial_sum_bit_hops: float
    chip_link_bits: float
    first_tile: int  # global tile index of the first copy's home tile (-1: digital unit)
    chips_spanned: tuple[int, ...]
    energy_pj: dict[str, float] = field(default_factory=dict)
    stage_time_ns: float = 0.0  # busy time per inference: compute, mesh/chip-link serialization, weight spill
    done_ns: float = 0.0  # when the first inference's last output of this layer is ready (pipeline fill)
    spill_bits: float = 0.0  # digital weights streamed from off-chip memory per inference (global buffer full)
    program_ns: float = 0.0  # --schedule reprogram: time to program this layer's arrays (its rounds), per inference

    @property
    def energy_total_pj(self) -> float:
        return sum(self.energy_pj.values())


@dataclass
class DigitalOpMapping:
    """One operator of the global digital unit (an IR ``digital`` layer). Units in the names."""

    name: str
    kind: str  # the operator (ONNX op type)
    shape: str
    ops: int  # lane ops (mapping.costs.digital_op_counts)
    macs: int  # of a MatMul between two activations, else 0
    read_elems: int
    write_elems: int
    sram_params: int  # constant elements held in the digital unit's SRAM
    cycles: int
    latency_ns: float
    energy_pj: dict[str, float] = field(default_factory=dict)
    unit: str = "digital"  # "digital" (the global digital unit) or "affine" (the tiles' affine units)
    ir_op: str = "digital"  # the IR op it comes from ("digital" = an ONNX operator the IR has no op for)

    @property
    def energy_total_pj(self) -> float:
        return sum(self.energy_pj.values())


@dataclass
class MappingResult:
    """Result of :func:`map_network`: per-layer table and totals (units in the names)."""

    spec_name: str
    spec_hash: str
    network_name: str
    replicate: bool
    max_chips: int | None
    layers: list[LayerMapping]
    chips: int
    tiles_per_chip: int
    tiles_used: int
    arrays_used: int
    devices_used: int
    weights: int
    macs: int
    ops: int
    interval_ns: float
    bottleneck: str
    latency_ns: float
    inferences_per_s: float
    tops: float
    energy_pj: dict[str, float]
    energy_total_pj: float
    tops_per_w: float
    area_um2: dict[str, float]
    area_total_mm2: float
    tops_per_mm2: float
    chip_link_bits: float
    clock_mhz: float
    digital_ops: list[DigitalOpMapping] = field(default_factory=list)
    parameters: int = 0  # weights + biases of the matrix layers (folded BN not counted)
    sram_parameters: int = 0  # constants of digital-unit ops (embedding tables, norm scales)
    analog_macs: int = 0
    digital_macs: int = 0  # digital matrix layers + MatMuls between activations
    digital_op_count: int = 0  # lane ops of the digital-unit operators
    affine_op_count: int = 0  # requantizer passes of the operators run by the tiles' affine units
    digital_time_ns: float = 0.0  # digital unit busy time per inference
    digital_time_share: float = 0.0  # of the summed stage times (analog layers + digital unit)
    digital_energy_pj: float = 0.0  # digital matrix layers + digital-unit operators
    digital_energy_share: float = 0.0  # of the energy per inference
    sources: list[dict[str, Any]] = field(default_factory=list)  # mapping.costs.constant_sources
    schedule: str = "spread"  # "spread" or "reprogram" (MapOptions.schedule after "auto" is resolved)
    program_rounds: int = 0  # reprogram: rounds of array programming per inference
    program_time_ns: float = 0.0  # reprogram: programming time per inference (sum over rounds)

    def placement(self) -> Placement:
        """The placement as plain data (:mod:`archmodel.placement`) for the testbenches and co-simulation."""
        return Placement(self.spec_name, self.network_name, self.replicate, tuple(
            LayerPlacement(index=r.index, name=r.name, shape=r.shape, kind=r.kind, matrix_rows=r.matrix_rows,
                           matrix_cols=r.matrix_cols, groups=r.groups, groups_per_array=r.groups_per_array,
                           row_blocks=r.row_blocks,
                           col_blocks=r.col_blocks, arrays=r.arrays, first_tile=r.first_tile,
                           vector_cycles=r.mvm_cycles, cycles=r.cycles)
            for r in self.layers))

    def totals(self) -> dict[str, Any]:
        """The totals as a flat dict (snake_case keys with unit suffixes)."""
        d = asdict(self)
        d.pop("layers")
        d.pop("digital_ops")
        d.pop("sources")
        return d
