"""Published chips reproduced through the mapper's component models (``aimc validate``).

Two chips (docs/references.md):

- **HERMES** (Le Gallo et al., Nat. Electron. 2023 [legallo2023]): the peak workload -- 64 dense
  256x256 layers, one per core, every layer analog -- mapped by :func:`mapping.mapper.map_network`
  on the ``hermes`` preset with ``array.read_phases`` 1 and 4; throughput, TOPS/W and TOPS/mm² beside
  the published 63.1 TOPS at 9.76 TOPS/W (1-phase) and 16.1 TOPS at 2.48 TOPS/W (4-phase). No
  constant of the ``hermes`` preset is derived from these system figures (tests/test_validate.py).
- **ISAAC** (Shafiee et al., ISCA 2016 [shafiee2016], Table 2): one tile at full activity. Each
  component's power is ``count × (energy of one event from mapping.costs) × (events per second)``:
  every array runs MVMs back to back (one MVM = ``dac_bits`` passes of ``integration_time_ns``; the
  ADC converts the previous pass meanwhile), so a component's power is ``arrays_per_tile ·
  E_MVM / t_MVM`` with ``E_MVM`` from :func:`mapping.costs.analog_mvm_energy_pj`; the buffers and the
  router carry one input bit per row per pass (:func:`mapping.costs.sram_energy_pj`,
  :func:`mapping.costs.hop_energy_pj`, one hop); the sigmoid / max-pool units handle one output per
  weight column per MVM (:func:`mapping.costs.digital_mac_energy_pj`). Area is
  :func:`mapping.costs.tile_area_um2` plus the tile's share of the digital unit. Chip totals add
  168 tiles and the HyperTransport links (:func:`mapping.costs.chip_link_energy_pj` at full
  bandwidth). Published: 330 mW and 0.372 mm² per tile; 65.8 W and 85.4 mm² per chip.
"""

from __future__ import annotations

from dataclasses import dataclass

from archmodel.network.builder import NetworkBuilder
from archmodel.spec import ChipSpec, load_spec
from mapping import costs
from mapping.mapper import MappingResult, map_network

__all__ = ["HERMES_PUBLISHED", "ISAAC_PUBLISHED", "Row", "format_table", "hermes_peak", "isaac_chip", "isaac_tile",
           "validation_rows"]

#: (read phases) -> (TOPS, TOPS/W, TOPS/mm²) published by Le Gallo et al. 2023; the TOPS/mm² figures
#: are 0.40 (as quoted in issue 13) and 16.1 TOPS over the same die area for 4 phases.
HERMES_PUBLISHED = {1: (63.1, 9.76, 0.40), 4: (16.1, 2.48, 0.40 * 16.1 / 63.1)}

#: Shafiee et al. 2016, Table 2: tile power (mW) and area (mm²); chip power (W) and area (mm²).
ISAAC_PUBLISHED = {"tile_mw": 330.0, "tile_mm2": 0.372, "chip_w": 65.8, "chip_mm2": 85.4}


@dataclass(frozen=True)
class Row:
    """One line of the validation table."""

    chip: str
    figure: str
    unit: str
    published: float
    ours: float
    note: str = ""

    @property
    def ratio(self) -> float:
        """ours / published."""
        return self.ours / self.published


def _peak_network(spec: ChipSpec):  # one dense rows x cols layer per tile
    a = spec.array
    b = NetworkBuilder(f"dense-{a.rows}x{spec.tile_grid.tiles}", input_shape=(a.rows,))
    x = b.input
    for i in range(spec.tile_grid.tiles):
        x = b.linear(f"fc{i}", x, a.cols, bias=False)
    return b.build()


def hermes_peak(read_phases: int = 1, spec: ChipSpec | None = None) -> MappingResult:
    """The HERMES peak workload mapped on ``hermes`` (every layer analog) with ``read_phases``."""
    spec = spec or load_spec("hermes")
    spec = spec.replace(**{"digital.digital_layers": [], "array.read_phases": read_phases})
    return map_network(spec, _peak_network(spec))


def isaac_tile(spec: ChipSpec | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """(power in mW, area in µm²) of one ISAAC tile at full activity, by component (module docstring)."""
    spec = spec or load_spec("isaac")
    a = spec.array
    n = a.arrays_per_tile
    t_mvm_ns = a.dac_passes * a.read_phases * a.integration_time_ns
    e = costs.analog_mvm_energy_pj(spec, a.rows, a.cols)
    in_bits = a.rows * a.dac_passes * a.read_phases  # one input bit per row per pass
    e["sram"] = costs.sram_energy_pj(spec, in_bits, 0)
    e["interconnect"] = costs.hop_energy_pj(spec, in_bits)
    e["digital"] = costs.digital_mac_energy_pj(spec, a.cols)
    power = {k: n * v / t_mvm_ns for k, v in e.items()}  # pJ/ns = mW
    area = costs.tile_area_um2(spec)
    area["digital"] = costs.chip_area_um2(spec, 1)["digital"] / spec.tile_grid.tiles
    return power, area


def isaac_chip(spec: ChipSpec | None = None) -> tuple[float, float]:
    """(power in W, area in mm²) of one ISAAC chip: tiles at full activity plus its HyperTransport links
    at full bandwidth (``chip_link.bandwidth_gbps`` bit/ns x ``energy_pj_per_bit``)."""
    spec = spec or load_spec("isaac")
    p, ar = isaac_tile(spec)
    t = spec.tile_grid.tiles
    link_mw = costs.chip_link_energy_pj(spec, spec.chip_link.bandwidth_gbps)  # pJ per ns = mW
    area_um2 = sum(costs.chip_area_um2(spec, 1).values()) + spec.area_um2.chip_link_um2
    return (t * sum(p.values()) + link_mw) / 1e3, area_um2 / 1e6


def _dominant(energy: dict[str, float]) -> str:
    tot = sum(energy.values())
    k = max(energy, key=lambda c: energy[c])
    return f"largest: {k} {100 * energy[k] / tot:.0f} %"


def validation_rows() -> list[Row]:
    """Every published figure beside ours (the ``aimc validate`` table)."""
    rows: list[Row] = []
    for phases in (1, 4):
        r = hermes_peak(phases)
        tops, tpw, tpmm = HERMES_PUBLISHED[phases]
        tag = f"{phases}-phase"
        lanes = load_spec("hermes").periphery.affine_lanes
        affine_bound = r.layers[0].mvm_cycles == -(-r.layers[0].matrix_cols // lanes)  # timing.affine_cycles
        rows.append(Row("hermes", f"peak TOPS ({tag})", "TOPS", tops, r.tops,
                        f"{r.layers[0].mvm_cycles} cycles per MVM: " + (
                            "affine-unit bound" if affine_bound else "array-port bound")))
        rows.append(Row("hermes", f"TOPS/W ({tag})", "TOPS/W", tpw, r.tops_per_w, _dominant(r.energy_pj)))
        rows.append(Row("hermes", f"TOPS/mm2 ({tag})", "TOPS/mm2", tpmm, r.tops_per_mm2,
                        f"{r.area_total_mm2:.1f} mm2; {_dominant(r.area_um2)}"))
    p, ar = isaac_tile()
    rows.append(Row("isaac", "tile power", "mW", ISAAC_PUBLISHED["tile_mw"], sum(p.values()), _dominant(p)))
    rows.append(Row("isaac", "tile area", "mm2", ISAAC_PUBLISHED["tile_mm2"], sum(ar.values()) / 1e6,
                    _dominant(ar)))
    cw, cmm = isaac_chip()
    rows.append(Row("isaac", "chip power", "W", ISAAC_PUBLISHED["chip_w"], cw, "168 tiles + 4 HyperTransport links"))
    rows.append(Row("isaac", "chip area", "mm2", ISAAC_PUBLISHED["chip_mm2"], cmm, "168 tiles + 4 HyperTransport links"))
    return rows


def format_table(rows: list[Row]) -> str:
    """The rows as a Markdown table."""
    out = ["| chip | figure | published | ours | ours/published | note |", "|---|---|---:|---:|---:|---|"]
    for r in rows:
        out.append(f"| {r.chip} | {r.figure} | {r.published:.4g} {r.unit} | {r.ours:.4g} {r.unit} | "
                   f"{r.ratio:.3f} | {r.note} |")
    return "\n".join(out)
