"""Chip description: YAML -> validated, typed, immutable objects.

One chip description drives everything: the behavioural PCM model, the
mapper's costs, the RTL generator's parameters and the testbenches
(docs/design.md, "The one-spec principle").

Format
------
A chip description is a YAML mapping with one key per section (``technology``,
``device``, ``array``, ...). Every physical quantity carries its unit in its
key (``clock_mhz``, ``g_max_us``, ``integration_time_ns``, ``energy_pj``...).
Any value may be written either plainly or with its source note::

    clock_mhz: {value: 1000, source: "assumed; HERMES runs at 1 GHz"}

The source notes of a section are collected in that section's ``sources``
mapping (key -> note), which may also be written out directly. Packaged
presets give a source for every constant (a test checks it).

Errors
------
Every problem (YAML that does not parse, an empty file, an unknown key, a key
without its unit, a wrong type, a zero or negative size, an inconsistent
combination) raises :class:`SpecError` whose message names the YAML path, the
bad value and what was expected.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    model_validator,
)

from .errors import AimcError
from .validation import excerpt, format_validation_error
from .yaml_loader import load_yaml_or_raise, read_yaml_file

__all__ = [
    "SpecError",
    "ChipSpec",
    "load_spec",
    "load_spec_text",
    "list_presets",
    "ns_to_cycles",
    "array_mvm_latency_ns",
    "array_mvm_cycles",
]

#: Upper bounds on sizes (assumed: far beyond any published PCM chip, small
#: enough that derived figures and allocations stay sane). Arrays: the largest
#: published PCM crossbars are 1024 x 1024 (HERMES: 256 x 256; Fig. 11: 512 x
#: 512); 4096 x 4096 keeps line resistance and IR drop, which the model ignores,
#: at least plausible. Every bound of every key, with its reason, is listed in
#: docs/design.md ("Bounds of the chip keys").
MAX_ARRAY_SIZE = 4096
MAX_ARRAYS_PER_TILE = 1024
MAX_DEVICES_PER_WEIGHT = 64
MAX_TILE_GRID = 1024


class SpecError(AimcError, ValueError):
    """A chip description is malformed; the message names the YAML path."""


def ns_to_cycles(t_ns: float, clock_mhz: float) -> int:
    """Convert a time in ns to clock cycles: ``ceil(t_ns * clock_mhz / 1000)``.

    The one helper every part of aimc uses (docs/design.md, one-spec principle).
    A tiny tolerance (1e-9 cycles) absorbs float error so that, e.g., 100 ns at
    1000 MHz is exactly 100 cycles.

    Raises
    ------
    ValueError
        If ``t_ns`` is negative or ``clock_mhz`` is not positive.
    """
    if t_ns < 0:
        raise ValueError(f"time must be >= 0 ns, got {t_ns} ns")
    if clock_mhz <= 0:
        raise ValueError(f"clock must be > 0 MHz, got {clock_mhz} MHz")
    return int(math.ceil(t_ns * clock_mhz / 1000.0 - 1e-9))


class _Section(BaseModel):
    """Base of every section: frozen, unknown keys forbidden, source notes."""

    # allow_inf_nan=False: '.inf' / '.nan' are rejected for every float field
    # (an infinite clock used to pass validation and crash the mapper).
    # strict=True: no silent coercion (a boolean is not an integer: `rows: true` used to mean 1; a
    # quoted "512" is not a number); floats still accept integers.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False,
                              strict=True)

    sources: dict[str, str] = Field(
        default_factory=dict,
        description="Source note (paper and table, or 'assumed') per key of this section.",
    )

    @model_validator(mode="before")
    @classmethod
    def _unwrap_sources(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        out: dict[str, Any] = {}
        raw = data.get("sources")
        sources: dict[str, Any] = dict(raw) if isinstance(raw, dict) else {}
        for key, val in data.items():
            if key == "sources":
                continue
            if isinstance(val, dict) and "value" in val and set(val) <= {"value", "source"}:
                if "source" in val:
                    sources[key] = str(val["source"])
                out[key] = val["value"]
            else:
                out[key] = val
        # a non-mapping 'sources' is passed through so that validation names it
        out["sources"] = sources if (raw is None or isinstance(raw, dict)) else raw
        return out


class Technology(_Section):
    """CMOS technology of the periphery."""

    node_nm: float = Field(14, ge=1, le=1000, description="CMOS node in nm (1 .. 1000).")
    clock_mhz: float = Field(1000, ge=1, le=10_000, description="Digital clock frequency in MHz (1 MHz .. 10 GHz).")
    supply_v: float = Field(0.8, ge=0.1, le=5, description="Digital supply voltage in V (0.1 .. 5).")


class Device(_Section):
    """PCM device model and its parameters (docs/design.md, PCM device model)."""

    model: Literal["joshi2020", "hermes", "none"] = Field(
        "joshi2020", description="Statistics set: 'joshi2020' (aihwkit PCMLikeNoiseModel), 'hermes', or 'none' "
        "(no PCM device model applies, e.g. ReRAM ISAAC: PPA only, accuracy refused)."
    )
    g_max_us: float = Field(25.0, ge=0.01, le=1000, description="Largest programmed conductance in µS (0.01 .. 1000).")
    t0_s: float = Field(20.0, ge=1e-6, le=1e6, description="Drift reference time t0 in s (1 µs .. 1e6 s).")
    t_read_s: float = Field(250e-9, ge=1e-12, le=1,
                            description="Duration of one read in s (1/f noise; 1 ps .. 1 s).")
    prog_noise_scale: float = Field(1.0, ge=0, le=100,
                                    description="Multiplier on programming-noise std (1 = as published; 0 .. 100).")
    drift_scale: float = Field(1.0, ge=0, le=10, description="Multiplier on drift-exponent mean and std (0 .. 10).")
    read_noise_scale: float = Field(1.0, ge=0, le=100, description="Multiplier on the 1/f read-noise Q_s (0 .. 100).")
    drift_bookkeeping: Literal["per_device", "net_weight_resplit"] = Field(
        "per_device",
        description=("'per_device': every programmed device drifts and reads its own noise (G+ and G- separately); "
                     "'net_weight_resplit': aihwkit's inference tile -- the programmed net weight is re-split onto "
                     "one device of its sign before drift and read noise (archmodel.analog_matrix)."),
    )


class Array(_Section):
    """One PCM crossbar array with its DACs and ADCs."""

    rows: PositiveInt = Field(512, le=MAX_ARRAY_SIZE, description="Word lines (inputs) per array.")
    cols: PositiveInt = Field(512, le=MAX_ARRAY_SIZE, description="Bit lines (outputs) per array.")
    arrays_per_tile: PositiveInt = Field(
        1, le=MAX_ARRAYS_PER_TILE, description="Arrays behind one tile controller and affine unit."
    )
    devices_per_weight: PositiveInt = Field(
        2, le=MAX_DEVICES_PER_WEIGHT, description="PCM devices per weight (2 = differential pair G+ - G-)."
    )
    v_read_v: float = Field(0.2, ge=0.001, le=5, description="Read voltage at full DAC code in V (1 mV .. 5 V).")
    dac_bits: int = Field(8, ge=2, le=16, description="Signed DAC resolution in bits (2..8 PWM, 2..16 bit-serial).")
    dac_scheme: Literal["pwm", "bit_serial"] = Field(
        "pwm", description="'pwm': one pulse of 2^(bits-1)-1 steps; 'bit_serial': one pass per bit."
    )
    rows_per_dac_beat: PositiveInt = Field(32, le=MAX_ARRAY_SIZE,
                                           description="Rows whose DAC codes travel in one array-port beat.")
    adc_bits: int = Field(8, ge=2, le=16, description="Signed ADC resolution in bits.")
    adc_full_scale_fraction: float = Field(
        0.25, gt=0, le=1, description="ADC full scale as a fraction of rows * g_max * V_read."
    )
    cols_per_adc: PositiveInt = Field(1, le=MAX_ARRAY_SIZE, description="Columns multiplexed onto one ADC.")
    cols_per_adc_beat: PositiveInt = Field(32, le=MAX_ARRAY_SIZE,
                                           description="Columns whose ADC codes travel in one array-port beat.")
    integration_time_ns: float = Field(
        100.0, ge=0.01, le=1e6,
        description="Column integration time of one MVM (PWM window or one bit pass) in ns (0.01 .. 1e6).",
    )
    adc_conversion_time_ns: float = Field(30.0, ge=0.01, le=1e6, description="One ADC conversion in ns (0.01 .. 1e6).")
    output_noise_fraction: float = Field(
        0.0, ge=0, le=1,
        description="Std of additive per-MVM output noise as a fraction of the ADC full scale (0 .. 1).",
    )
    read_phases: PositiveInt = Field(
        1, le=16, description="Integration phases per MVM (HERMES: 1-phase or 4-phase read, Le Gallo et al. "
        "2023); each phase repeats the input window, the ADC converts once."
    )
    weight_slices: PositiveInt = Field(
        1, le=16, description="Device columns one weight is sliced over, recombined by shift-and-add after "
        "the ADC (ISAAC: 16-bit weights over 8 two-bit cells); every slice is converted."
    )

    @model_validator(mode="after")
    def _check_beats(self) -> Array:
        if self.rows_per_dac_beat > self.rows:
            raise ValueError(
                f"rows_per_dac_beat={self.rows_per_dac_beat} exceeds rows={self.rows}; expected <= rows"
            )
        if self.cols_per_adc_beat > self.cols:
            raise ValueError(
                f"cols_per_adc_beat={self.cols_per_adc_beat} exceeds cols={self.cols}; expected <= cols"
            )
        if self.devices_per_weight % 2:
            raise ValueError(
                f"devices_per_weight={self.devices_per_weight} must be even (pairs of G+ and G- devices)"
            )
        if self.cols_per_adc > self.cols:
            raise ValueError(f"cols_per_adc={self.cols_per_adc} exceeds cols={self.cols}; expected <= cols")
        if self.dac_scheme == "pwm" and self.dac_bits > 8:
            raise ValueError(f"dac_bits={self.dac_bits} with dac_scheme 'pwm'; expected <= 8 (bit_serial allows 16)")
        return self

    @property
    def adc_count(self) -> int:
        """ADCs per array: ``ceil(cols / cols_per_adc)``."""
        return -(-self.cols // self.cols_per_adc)

    @property
    def devices_per_polarity(self) -> int:
        """PCM devices on each side (G+ or G-) of a weight: ``devices_per_weight // 2``."""
        return self.devices_per_weight // 2

    @property
    def dac_passes(self) -> int:
        """Integration passes per MVM: 1 for PWM, ``dac_bits`` for bit-serial."""
        return 1 if self.dac_scheme == "pwm" else self.dac_bits


class Periphery(_Section):
    """Digital periphery of a tile: accumulator and affine unit widths (bits)."""

    accumulator_bits: int = Field(24, ge=8, le=48, description="Partial-sum accumulator width in bits (signed).")
    affine_scale_bits: int = Field(16, ge=4, le=32, description="Per-column scale coefficient width in bits (signed).")
    affine_offset_bits: int = Field(32, ge=4, le=48, description="Per-column offset coefficient width in bits (signed).")
    activation_bits: Literal[8] = Field(8, description="Activation width in bits (int8 in and out).")
    affine_latency_cycles: PositiveInt = Field(
        6, le=1024, description="Pipeline latency of the affine unit in cycles (the RTL requantizer: 6)."
    )
    affine_lanes: PositiveInt = Field(
        1, le=64,
        description="Columns the affine unit accumulates, requantizes and emits per cycle (rtl/affine.py): a power "
                    "of two dividing array.cols_per_adc_beat and array.rows_per_dac_beat (checked by ChipSpec). "
                    "The affine-bound time of a column block is ceil(cols_used / affine_lanes) cycles "
                    "(archmodel.timing.affine_cycles).",
    )

    @model_validator(mode="after")
    def _check_affine_latency(self) -> Periphery:
        from .timing import AFFINE_LATENCY_CYCLES  # timing imports this module

        if self.affine_latency_cycles != AFFINE_LATENCY_CYCLES:
            raise ValueError(f"affine_latency_cycles={self.affine_latency_cycles}, but the RTL affine unit's "
                             f"pipeline is {AFFINE_LATENCY_CYCLES} cycles (archmodel.timing.AFFINE_LATENCY_CYCLES)")
        return self


class TileGrid(_Section):
    """The 2-D grid of tiles on one chip."""

    rows: PositiveInt = Field(8, le=MAX_TILE_GRID, description="Tile rows on the chip.")
    cols: PositiveInt = Field(8, le=MAX_TILE_GRID, description="Tile columns on the chip.")

    @property
    def tiles(self) -> int:
        """Tiles per chip."""
        return self.rows * self.cols


class Interconnect(_Section):
    """On-chip routing network between tiles."""

    topology: Literal["mesh"] = Field("mesh", description="Network topology (2-D mesh with XY routing).")
    link_width_bits: PositiveInt = Field(64, le=4096, description="Payload bits per flit / link per cycle.")
    hop_latency_ns: float = Field(2.0, gt=0, le=1e6, description="Latency of one router hop in ns (> 0 .. 1e6).")
    energy_pj_per_bit_hop: float = Field(0.1, gt=0, le=1e6,
                                         description="Energy to move one bit one hop in pJ (> 0 .. 1e6).")
    tile_dest_entries: int = Field(2, ge=1, le=16, description=(
        "Destination entries of a tile's network interface (multicast of its results; 1 .. 16; rtl.regmap: "
        "entries 0..7 at the tile's NI offset, 8..15 in the tile's spare register space)."))
    digital_dest_entries: int = Field(4, ge=1, le=11, description=(
        "Destination entries of the digital datapath's network interface (multicast of its results; 1 .. 11)."))
    line_buffers: bool = Field(True, description=(
        "Each tile and the digital node have a line buffer (rtl.patchbuf.PatchBuffer: conv patches from a pixel "
        "stream, tile.lb.* / digital.lb.*); "
        "false: no line buffers, no conv layer on an analog tile (the chip's Verilog and register map omit them)."))
    pool_units: bool = Field(True, description=(
        "Each tile and the digital node have a pool unit on their results (rtl.pool.Pool, tile.pool.* / "
        "digital.pool.*); false: none (pooling layers cannot be placed on the chip, except the global pool of the "
        "digital node's input join, which comes with residual_joins)."))
    residual_joins: bool = Field(True, description=(
        "Each tile has a residual join at its input (rtl.pool.ResidualJoin, tile.add.*) and the digital node an input "
        "join with its pool (rtl.pool.InputJoin, digital.add.* / digital.ipool.*); false: none (residual "
        "adds cannot be placed on the chip)."))


class ChipLink(_Section):
    """Chip-to-chip link used when a network spreads over several chips."""

    bandwidth_gbps: float = Field(100.0, ge=1e-3, le=1e5, description="Link bandwidth in Gbit/s (1 Mbit/s .. 100 Tbit/s).")
    latency_ns: float = Field(20.0, gt=0, le=1e9, description="Link latency in ns (> 0 .. 1 s).")
    energy_pj_per_bit: float = Field(5.0, gt=0, le=1e6, description="Energy per bit crossing the link in pJ (> 0 .. 1e6).")


class Digital(_Section):
    """Digital datapath for the layers kept digital."""

    mac_lanes: PositiveInt = Field(64, le=1 << 20, description="int8 x int8 MAC lanes working in parallel.")
    precision_bits: Literal[8] = Field(8, description="Operand precision in bits.")
    accumulator_bits: int = Field(32, ge=16, le=48, description="MAC accumulator width in bits.")
    digital_layers: tuple[str, ...] = Field(
        strict=False,  # a YAML list becomes the tuple
        default=("first", "last"),
        description="Matrix layers kept digital: 'first', 'last', or layer names. Empty = all analog.",
    )


class Buffers(_Section):
    """On-chip SRAM buffers."""

    sram_kib_per_tile: float = Field(64.0, gt=0, le=1 << 20, description="Activation SRAM per tile in KiB (> 0 .. 1 GiB).")
    global_buffer_kib: float = Field(1024.0, gt=0, le=1 << 24, description="Global (digital unit) SRAM in KiB (> 0 .. 16 GiB).")


class Calibration(_Section):
    """Drift compensation used by default (docs/design.md, GDC and AdaBS)."""

    method: Literal["none", "gdc", "gdc_per_column", "adabs"] = Field("gdc", description="Compensation method.")
    gdc_input: Literal["random", "ones", "one_hot"] = Field("random", description="GDC calibration inputs.")
    gdc_vectors: PositiveInt = Field(8, le=100_000, description="Number of GDC calibration vectors.")
    adabs_images: PositiveInt = Field(128, le=1_000_000, description="Training images used by AdaBS.")
    adc_range: Literal["per_layer", "fixed"] = Field(
        "per_layer",
        description=("ADC full scale: 'per_layer' = 5 sigma of the layer's column currents on calibration images "
                     "right after programming (archmodel.calibration); 'fixed' = array.adc_full_scale_fraction."),
    )


class Mapping(_Section):
    """How a layer's weights map onto conductances (docs/design.md 4.2)."""

    weight_scaling: Literal["per_layer", "per_column"] = Field(
        "per_layer",
        description=("Conductance scale g_max / max|W|: 'per_layer' = one max over the layer's matrix; 'per_column' "
                     "= one per output column (as aihwkit's weight scaling per column), folded into the affine scale."),
    )


class EnergyPj(_Section):
    """Per-event energies of each component in pJ.

    Every energy is >= 0 (0 = the component is absent or replaced by a
    component model, e.g. HERMES' CCO-ADC is its own integrator) and at most
    1e6 pJ (1 µJ per event, orders of magnitude above any published figure).
    A chip whose energies sum to zero is refused by the result check of
    ``aimc map`` (a zero total once printed a 300-digit TOPS/W).
    """

    dac_per_row_pj: float = Field(0.5, ge=0, le=1e6, description="One DAC row driver for one MVM (per integration pass).")
    array_per_device_pj: float | None = Field(
        0.02, ge=0, le=1e6, description="Read energy of one PCM device in one MVM pass; None = V_read^2 * g * t model.")
    integrator_per_col_pj: float = Field(0.2, ge=0, le=1e6, description="Column integration of one MVM pass.")
    adc_per_conversion_pj: float = Field(2.0, ge=0, le=1e6, description="One ADC conversion.")
    affine_per_output_pj: float = Field(
        1.0, ge=0, le=1e6, description="Affine unit: one output column (accumulate, scale, requantize).")
    affine_op_pj: float = Field(
        0.1, ge=0, le=1e6, description="One element-wise operation of an operator run by the affine unit (a ReLU "
        "clamp, a folded scale, a residual-add or concat requantization: one 32-bit add/compare per element).")
    digital_mac_pj: float = Field(0.2, ge=0, le=1e6, description="One int8 MAC in the digital datapath.")
    sram_read_pj_per_bit: float = Field(0.05, ge=0, le=1e6, description="SRAM read per bit.")
    sram_write_pj_per_bit: float = Field(0.06, ge=0, le=1e6, description="SRAM write per bit.")
    tile_controller_per_mvm_pj: float = Field(2.0, ge=0, le=1e6, description="Tile controller sequencing of one MVM.")
    # ---- component models (mapping/costs.py; docs/design.md, "Cost model"); None = the per-event figure above
    reference_node_nm: float | None = Field(
        None, gt=0, le=1000,
        description="CMOS node at which the CMOS energies of this section are given (None = technology.node_nm); "
        "technology.node_nm and supply_v rescale them by Stillmaker & Baas 2017.")
    reference_supply_v: float | None = Field(
        None, gt=0, le=10, description="Supply at which the CMOS energies are given (None = technology.supply_v).")
    dac_per_row_step_pj: float | None = Field(
        None, ge=0, description="Row driver energy per PWM time step (per bit pass for bit-serial); when set it "
        "replaces dac_per_row_pj: DAC energy scales with the input duration.")
    input_duty: float = Field(
        0.5, gt=0, le=1, description="Mean input magnitude as a fraction of full scale (PWM pulse length, or "
        "fraction of 1-bits for bit-serial) when no calibration inputs are given.")
    g_mean_fraction: float = Field(
        0.25, gt=0, le=1, description="Mean read conductance of a device as a fraction of device.g_max_us "
        "(array read energy V_read^2 * g * t when array_per_device_pj is not set).")
    adc_fom_fj_per_step: float | None = Field(
        None, ge=0, description="ADC Walden figure of merit in fJ per conversion step; when set, one conversion "
        "costs fom * 2^adc_bits and replaces adc_per_conversion_pj.")
    shift_add_pj: float = Field(0.0, ge=0, description="Shift-and-add of one ADC output into its weight's sum.")


class AreaUm2(_Section):
    """Area of each component in µm².

    Every area is >= 0 (0 = the component is absent, e.g. no separate
    integrator beside a CCO-ADC) and at most 1e9 µm² (1,000 mm², a full
    reticle is ~858 mm²); a zero total is refused by the result check of
    ``aimc map``.
    """

    array_per_device_um2: float = Field(
        0.19073486328125,
        ge=0,
        le=1e9,
        description=(
            "One PCM device with its selector; an array covers "
            "rows · cols · devices_per_weight of them."
        ),
    )
    dac_per_row_um2: float = Field(20.0, ge=0, le=1e9, description="DAC / row driver per row.")
    adc_um2: float = Field(300.0, ge=0, le=1e9, description="One ADC.")
    integrator_per_col_um2: float = Field(10.0, ge=0, le=1e9, description="Column integrator per column.")
    affine_unit_um2: float = Field(20000.0, ge=0, le=1e9, description="One affine unit (per tile).")
    tile_controller_um2: float = Field(10000.0, ge=0, le=1e9, description="One tile controller.")
    router_um2: float = Field(15000.0, ge=0, le=1e9, description="One mesh router (per tile).")
    sram_um2_per_kib: float = Field(1500.0, ge=0, le=1e9, description="SRAM per KiB.")
    digital_per_mac_lane_um2: float = Field(500.0, ge=0, le=1e9, description="Digital datapath per MAC lane.")
    chip_link_um2: float = Field(500000.0, ge=0, le=1e9, description="Chip-to-chip link PHY (per chip).")
    reference_node_nm: float | None = Field(
        None, gt=0, le=1000,
        description="CMOS node at which the CMOS areas of this section are given (None = technology.node_nm).")
    programming_per_array_um2: float = Field(
        0.0, ge=0, description="PCM programming circuitry (write drivers, verify) per array.")
    io_um2: float = Field(0.0, ge=0, description="Pads and I/O ring per chip.")


class Leakage(_Section):
    """Static power."""

    tile_leakage_mw: float = Field(0.5, ge=0, le=1e6, description="Leakage of one tile's periphery in mW.")
    digital_leakage_mw: float = Field(5.0, ge=0, le=1e6, description="Leakage of the digital unit and global buffer in mW.")


class Programming(_Section):
    """PCM weight (re)programming: program-and-verify of the arrays (``aimc map --schedule reprogram``).

    One array's ``r × c`` block takes ``ceil(r / rows_parallel) · iterations · (pulse_ns + t_verify)``
    and ``iterations · (r·c·devices_per_weight · pulse_energy_pj + r · E(1-row read))``
    (:func:`mapping.costs.array_program_time_ns`, docs/design.md section 12 step 4).
    """

    pulse_ns: float = Field(4400.0, gt=0, le=1e9, description="Duration of one programming pulse in ns (> 0 .. 1 s).")
    iterations: PositiveInt = Field(10, le=10_000, description="Program-and-verify iterations per device (1 .. 10,000).")
    pulse_energy_pj: float = Field(
        10.0, ge=0, le=1e6, description="Energy of one programming pulse on one device in pJ (0 .. 1e6; a device "
        "figure, not CMOS-scaled).")
    rows_parallel: PositiveInt = Field(
        1, le=4096, description="Word lines of one array programmed at the same time (1 .. array.rows).")


class ChipSpec(BaseModel):
    """A complete, validated chip description (immutable).

    Load it with :func:`load_spec`. Sections are documented in their classes;
    every field carries its unit in its name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=128, pattern=r"\S",
                      description="Short name of the chip description (1 .. 128 characters, not blank).")
    description: str = Field("", max_length=10_000, description="Free text (at most 10,000 characters).")
    technology: Technology = Field(default_factory=Technology)
    device: Device = Field(default_factory=Device)
    array: Array = Field(default_factory=Array)
    periphery: Periphery = Field(default_factory=Periphery)
    tile_grid: TileGrid = Field(default_factory=TileGrid)
    interconnect: Interconnect = Field(default_factory=Interconnect)
    chip_link: ChipLink = Field(default_factory=ChipLink)
    digital: Digital = Field(default_factory=Digital)
    buffers: Buffers = Field(default_factory=Buffers)
    calibration: Calibration = Field(default_factory=Calibration)
    mapping: Mapping = Field(default_factory=Mapping)
    energy_pj: EnergyPj = Field(default_factory=EnergyPj)
    area_um2: AreaUm2 = Field(default_factory=AreaUm2)
    leakage: Leakage = Field(default_factory=Leakage)
    programming: Programming = Field(default_factory=Programming)

    @model_validator(mode="after")
    def _check_cross(self) -> ChipSpec:
        a, p = self.array, self.periphery
        # Partial sums of every row block of the largest matrix that fits one
        # chip must add exactly (golden.affine.accumulate_partial_sums contract).
        if a.adc_bits + 1 > p.accumulator_bits:
            raise ValueError(
                f"periphery.accumulator_bits={p.accumulator_bits} must exceed array.adc_bits={a.adc_bits}"
            )
        return self

    @model_validator(mode="after")
    def _check_programming(self) -> ChipSpec:
        if self.programming.rows_parallel > self.array.rows:
            raise ValueError(f"programming.rows_parallel={self.programming.rows_parallel} must be at most "
                             f"array.rows={self.array.rows}")
        return self

    @model_validator(mode="after")
    def _check_affine_lanes(self) -> ChipSpec:
        # rtl/params.py: the affine unit emits whole L-column slots of an ADC beat, and its result
        # beats fill the next tile's act beats (rows_per_dac_beat int8) exactly
        lanes, a = self.periphery.affine_lanes, self.array
        if lanes & (lanes - 1):
            raise ValueError(f"periphery.affine_lanes={lanes} must be a power of two (1, 2, 4, ...)")
        for name in ("cols_per_adc_beat", "rows_per_dac_beat"):
            if getattr(a, name) % lanes:
                raise ValueError(f"periphery.affine_lanes={lanes} must divide array.{name}={getattr(a, name)}")
        return self

    # ---- derived figures (one place, used by model, mapper, RTL, testbench)
    @property
    def adc_full_scale_ua(self) -> float:
        """ADC full-scale column current in µA.

        ``adc_full_scale_fraction · rows · devices_per_polarity · g_max_us · v_read_v``:
        a fraction of the largest possible column signal, so it means the same at
        every array size (docs/design.md, data path).
        """
        a = self.array
        return a.adc_full_scale_fraction * a.rows * a.devices_per_polarity * self.device.g_max_us * a.v_read_v

    @property
    def clock_mhz(self) -> float:
        return self.technology.clock_mhz

    def cycles(self, t_ns: float) -> int:
        """``ns_to_cycles(t_ns, technology.clock_mhz)``."""
        return ns_to_cycles(t_ns, self.technology.clock_mhz)

    @cached_property
    def spec_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the canonical JSON of this description."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def replace(self, **changes: Any) -> ChipSpec:
        """A validated copy with dotted-path changes, e.g. ``replace(**{"array.rows": 256})``."""
        data = self.model_dump(mode="python")
        for dotted, value in changes.items():
            node = data
            keys = dotted.split(".")
            for k in keys[:-1]:
                if k not in node or not isinstance(node[k], dict):
                    raise SpecError(f"{dotted}: unknown section '{k}'")
                node = node[k]
            if keys[-1] not in node:
                raise SpecError(f"{dotted}: unknown key '{keys[-1]}'")
            node[keys[-1]] = value
        return _validate(data, origin=f"{self.name} (modified)")


def array_mvm_latency_ns(spec: ChipSpec) -> float:
    """Latency of one array MVM (integration + conversion) in ns.

    ``read_phases · dac_passes · integration_time_ns + cols_per_adc · adc_conversion_time_ns``
    where ``dac_passes`` is 1 for PWM and ``dac_bits`` for bit-serial, ``read_phases``
    repeats the integration window (HERMES 4-phase read), and one
    ADC converts its ``cols_per_adc`` columns one after another (assumed: the
    ADC conversions of successive columns are not overlapped with integration).
    The co-simulation bridge and the mapper both use this figure.
    """
    a = spec.array
    return a.read_phases * a.dac_passes * a.integration_time_ns + a.cols_per_adc * a.adc_conversion_time_ns


def array_mvm_cycles(spec: ChipSpec) -> int:
    """:func:`array_mvm_latency_ns` in clock cycles (``ns_to_cycles``)."""
    return spec.cycles(array_mvm_latency_ns(spec))


# --------------------------------------------------------------------------- loading

_SECTION_MODELS: dict[str, type[BaseModel]] = {
    name: field.annotation  # type: ignore[misc]
    for name, field in ChipSpec.model_fields.items()
    if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)
}


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] | None = ChipSpec
    for item in loc[:-1]:
        if model is None or not isinstance(item, str):
            return None
        field = model.model_fields.get(item)
        ann = field.annotation if field else None
        model = ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None
    return model


def _format_error(err: dict[str, Any], origin: str) -> str:
    loc = tuple(x for x in err["loc"] if x not in ("function-after",))
    return f"{origin}: " + format_validation_error(err, loc=loc, model=_model_at(loc), dialect="chip")


def _validate(data: Any, origin: str) -> ChipSpec:
    if data is None:
        raise SpecError(f"{origin}: empty chip description; expected a YAML mapping with at least 'name'")
    if not isinstance(data, dict):
        raise SpecError(
            f"{origin}: (top level): bad value {excerpt(data)}: expected a YAML mapping of sections"
        )
    try:
        return ChipSpec.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        first = _format_error(errors[0], origin)
        more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
        raise SpecError(first + more) from None


def list_presets() -> list[str]:
    """Names of the packaged chip-description presets."""
    root = resources.files("archmodel.presets")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_spec_text(text: str, origin: str = "<string>") -> ChipSpec:
    """Parse and validate a chip description from YAML text.

    Raises
    ------
    SpecError
        YAML that does not parse, empty text, or any validation problem.
    """
    data = load_yaml_or_raise(text, origin, SpecError)
    return _validate(data, origin)


def load_spec(name_or_path: str | Path) -> ChipSpec:
    """Load a chip description by preset name (``fig11``, ``hermes``, ``tiny``) or by path.

    Raises
    ------
    SpecError
        Unknown preset, unreadable file, or an invalid description.
    """
    if isinstance(name_or_path, ChipSpec):
        return name_or_path
    s = str(name_or_path)
    path = Path(s)
    looks_like_path = path.suffix in (".yaml", ".yml") or "/" in s or path.exists()
    if not looks_like_path:
        presets = list_presets()
        if s not in presets:
            raise SpecError(
                f"unknown chip description '{s}': expected a preset name ({', '.join(presets)}) "
                "or a path to a YAML file"
            )
        text = resources.files("archmodel.presets").joinpath(f"{s}.yaml").read_text()
        origin = f"preset '{s}'"  # packaged text: libyaml parses it (same values as load_spec_text)
        return _validate(load_yaml_or_raise(text, origin, SpecError, trusted=True), origin)
    if not path.is_file():
        raise SpecError(f"{s}: no such file; expected a chip-description YAML file or a preset name")
    return load_spec_text(read_yaml_file(path, s, SpecError), origin=s)
