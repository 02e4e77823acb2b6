"""PPA reports of a mapping: ``report.md``, ``report.json``, ``layers.csv`` and, opt-in, PNG plots.

:func:`render_report` turns a :class:`~mapping.mapper.MappingResult` into file
contents (``{file name: bytes or str}``); the caller writes them with
:func:`archmodel.fileio.write_files_atomic` (whole or not at all). Output is
byte-identical for the same inputs: no timestamps, no absolute paths, PNGs
without a software/date tag. Every report records the chip description's
hash, the seed (when one was used) and the aimc version. JSON keys are
snake_case with unit suffixes (``_ns``, ``_pj``, ``_um2``, ``_mm2``, ``_per_s``,
``tops_per_w``); CSV and Markdown headers carry their units.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from archmodel import __version__
from mapping.costs import ENERGY_COMPONENTS
from mapping.mapper import LayerMapping, MappingResult

__all__ = ["REPORT_FILES", "digital_op_rows", "layer_rows", "render_report", "report_dict", "totals_lines"]

REPORT_FILES = ("report.md", "report.json", "layers.csv", "energy_breakdown.png",
                "area_breakdown.png", "layer_latency.png")
"""The files one report consists of (the three PNGs only when plots are asked for: ``aimc map --plots``)."""

_LAYER_ENERGY = tuple(c for c in ENERGY_COMPONENTS if c != "leakage")



def _energy_getter(component: str) -> Any:
    return lambda r: r.energy_pj[component]


# (json key, header with unit, getter)
_COLUMNS: list[tuple[str, str, Any]] = [
    ("row", "row", lambda r: r.index),
    ("name", "name", lambda r: r.name),
    ("op", "type", lambda r: r.op),
    ("kind", "analog/digital", lambda r: r.kind),
    ("shape", "shape (kernel/stride in->out)", lambda r: r.shape),
    ("matrix_rows", "matrix rows", lambda r: r.matrix_rows),
    ("matrix_cols", "matrix cols", lambda r: r.matrix_cols),
    ("groups", "groups", lambda r: r.groups),
    ("groups_per_array", "groups per array", lambda r: r.groups_per_array),
    ("weights", "weights", lambda r: r.weights),
    ("macs", "MACs", lambda r: r.macs),
    ("arrays", "arrays per copy", lambda r: r.arrays),
    ("replication", "copies", lambda r: r.replication),
    ("tiles", "tiles", lambda r: r.tiles),
    ("array_utilization_pct", "array utilization (%)", lambda r: 100.0 * r.array_utilization),
    ("mvms", "array MVMs", lambda r: r.mvms),
    ("cycles_per_pixel", "cycles per pixel", lambda r: r.mvm_cycles),
    ("latency_ns", "compute time (ns)", lambda r: r.latency_ns),
    ("stage_time_ns", "stage time per inference (ns)", lambda r: r.stage_time_ns),
    ("done_ns", "first inference done at (ns)", lambda r: r.done_ns),
    ("spill_bits", "weight spill (bits)", lambda r: r.spill_bits),
    ("program_ns", "programming time (ns)", lambda r: r.program_ns),
    ("pcm_devices", "PCM devices", lambda r: r.devices),
    ("activation_bit_hops", "activation bit-hops", lambda r: r.activation_bit_hops),
    ("partial_sum_bit_hops", "partial-sum bit-hops", lambda r: r.partial_sum_bit_hops),
    ("chip_link_bits", "chip-link bits", lambda r: r.chip_link_bits),
    *[(f"energy_{c}_pj", f"{c} (pJ)", _energy_getter(c)) for c in _LAYER_ENERGY],
    ("energy_total_pj", "energy (pJ)", lambda r: r.energy_total_pj),
]


def layer_rows(result: MappingResult) -> list[dict[str, Any]]:
    """Per-layer table as dicts keyed by snake_case names with units."""
    return [{key: get(r) for key, _, get in _COLUMNS} for r in result.layers]


def report_dict(result: MappingResult, seed: int | None = None, *,
                fold_batchnorm: bool = False) -> dict[str, Any]:
    """The ``report.json`` content as a dict.

    ``fold_batchnorm`` only records the import option (``aimc map --fold-batchnorm``):
    the mapper already merges a batch norm into the affine unit's per-column
    scale and offset, so folding it into the weights changes no PPA figure.
    """
    t = result
    return {
        "aimc_version": __version__,
        "chip": t.spec_name,
        "spec_hash": t.spec_hash,
        "network": t.network_name,
        "seed": seed,
        "options": {"replicate": t.replicate, "max_chips": t.max_chips, "fold_batchnorm": fold_batchnorm,
                    "schedule": t.schedule},
        "totals": {
            "latency_per_inference_ns": t.latency_ns,
            "pipeline_interval_ns": t.interval_ns,
            "bottleneck": t.bottleneck,
            "inferences_per_s": t.inferences_per_s,
            "tops": t.tops,
            "tops_per_w": t.tops_per_w,
            "tops_per_mm2": t.tops_per_mm2,
            "energy_per_inference_pj": t.energy_total_pj,
            "energy_per_inference_by_component_pj": {f"{k}_pj": v for k, v in t.energy_pj.items()},
            "area_mm2": t.area_total_mm2,
            "area_by_component_um2": {f"{k}_um2": v for k, v in t.area_um2.items()},
            "chips": t.chips,
            "tiles_per_chip": t.tiles_per_chip,
            "tiles_used": t.tiles_used,
            "arrays_used": t.arrays_used,
            "pcm_devices_used": t.devices_used,
            "weights": t.weights,
            "macs_per_inference": t.macs,
            "ops_per_inference": t.ops,
            "chip_link_bits_per_inference": t.chip_link_bits,
            "parameters": t.parameters,
            "sram_parameters": t.sram_parameters,
            "analog_macs_per_inference": t.analog_macs,
            "digital_macs_per_inference": t.digital_macs,
            "digital_ops_per_inference": t.digital_op_count,
            "affine_unit_ops_per_inference": t.affine_op_count,
            "digital_unit_time_ns": t.digital_time_ns,
            "digital_unit_time_share": t.digital_time_share,
            "digital_unit_energy_pj": t.digital_energy_pj,
            "digital_unit_energy_share": t.digital_energy_share,
            "clock_mhz": t.clock_mhz,
        },
        "digital_ops": digital_op_rows(result),
        "layers": layer_rows(result),
        "sources": [dict(r) for r in result.sources],
    }


_DIGITAL_COLUMNS: list[tuple[str, str, Any]] = [
    ("name", "name", lambda r: r.name),
    ("op", "operator", lambda r: r.kind),
    ("unit", "unit", lambda r: r.unit),
    ("shape", "shape (in->out)", lambda r: r.shape),
    ("ops", "lane ops", lambda r: r.ops),
    ("read_elems", "elements read", lambda r: r.read_elems),
    ("write_elems", "elements written", lambda r: r.write_elems),
    ("sram_params", "SRAM parameters", lambda r: r.sram_params),
    ("cycles", "cycles", lambda r: r.cycles),
    ("latency_ns", "latency (ns)", lambda r: r.latency_ns),
    ("energy_digital_pj", "digital (pJ)", lambda r: r.energy_pj.get("digital", 0.0)),
    ("energy_sram_pj", "sram (pJ)", lambda r: r.energy_pj.get("sram", 0.0)),
    ("energy_affine_pj", "affine (pJ)", lambda r: r.energy_pj.get("affine", 0.0)),
    ("energy_total_pj", "energy (pJ)", lambda r: r.energy_total_pj),
]


def digital_op_rows(result: MappingResult) -> list[dict[str, Any]]:
    """The digital unit's operators as dicts (snake_case keys with units)."""
    return [{key: get(r) for key, _, get in _DIGITAL_COLUMNS} for r in result.digital_ops]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if v == 0:
            return "0"
        if abs(v) >= 100:
            return f"{v:,.1f}"
        return f"{v:.4g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def totals_lines(result: MappingResult) -> list[str]:
    """A few human-readable lines of totals (the demo prints them)."""
    t = result
    return [
        f"{t.network_name} on {t.spec_name} (spec {t.spec_hash}): {t.chips} chip(s), {t.tiles_used} tiles, "
        f"{t.devices_used:,} PCM devices",
        f"  latency {t.latency_ns / 1000:.2f} us/inference, {t.inferences_per_s:,.0f} inferences/s "
        f"(bottleneck: {t.bottleneck})",
        f"  {t.tops:.3f} TOPS, {t.tops_per_w:.3f} TOPS/W, {t.tops_per_mm2:.4f} TOPS/mm2, "
        f"{t.energy_total_pj / 1e6:.3f} uJ/inference, area {t.area_total_mm2:.2f} mm2",
    ] + ([f"  reprogram: {t.program_rounds} rounds, programming {t.program_time_ns / 1000:.2f} us and "
          f"{t.energy_pj.get('programming', 0.0) / 1e6:.3f} uJ per inference"] if t.schedule == "reprogram" else [])


def _markdown(result: MappingResult, seed: int | None, fold_batchnorm: bool = False, plots: bool = True) -> str:
    t = result
    out = [f"# aimc map: `{t.network_name}` on `{t.spec_name}`", "",
           f"aimc {__version__} · chip description hash `{t.spec_hash}` · seed {seed if seed is not None else 'none'} · "
           f"replication {'on' if t.replicate else 'off'} · max chips {t.max_chips or 'no cap'} · "
           f"batch norm {'folded into the weights' if fold_batchnorm else 'kept (merged into the affine unit)'}", "",
           "## Totals", "", "| quantity | value |", "|---|---:|"]
    rows = [
        ("latency per inference (ns)", t.latency_ns), ("pipeline interval (ns)", t.interval_ns),
        ("bottleneck stage", t.bottleneck), ("inferences per second (1/s)", t.inferences_per_s),
        ("throughput (TOPS, 2 ops/MAC)", t.tops), ("efficiency (TOPS/W)", t.tops_per_w),
        ("area efficiency (TOPS/mm²)", t.tops_per_mm2), ("energy per inference (pJ)", t.energy_total_pj),
        ("area (mm²)", t.area_total_mm2), ("chips", t.chips), ("tiles used", t.tiles_used),
        ("tiles available", t.chips * t.tiles_per_chip), ("arrays used", t.arrays_used),
        ("PCM devices used", t.devices_used), ("weights", t.weights), ("MACs per inference", t.macs),
        ("chip-link bits per inference", t.chip_link_bits),
        ("schedule", t.schedule), ("reprogramming rounds per inference", t.program_rounds),
        ("PCM programming time per inference (ns)", t.program_time_ns),
        ("parameters (weights + biases)", t.parameters), ("digital SRAM parameters", t.sram_parameters),
        ("analog MACs per inference", t.analog_macs), ("digital MACs per inference", t.digital_macs),
        ("digital-unit operations per inference", t.digital_op_count),
        ("affine-unit operator passes per inference", t.affine_op_count),
        ("digital-unit share of time (%)", 100 * t.digital_time_share),
        ("digital-unit share of energy (%)", 100 * t.digital_energy_share),
    ]
    out += [f"| {k} | {_fmt(v)} |" for k, v in rows]
    out += ["", "## Energy per inference by component", "", "| component | energy (pJ) | share (%) |",
            "|---|---:|---:|"]
    for k, v in t.energy_pj.items():
        out.append(f"| {k} | {_fmt(v)} | {100 * v / t.energy_total_pj if t.energy_total_pj else 0:.1f} |")
    area_total = sum(t.area_um2.values())
    out += ["", "## Area by component", "", "| component | area (µm²) | share (%) |", "|---|---:|---:|"]
    for k, v in t.area_um2.items():
        out.append(f"| {k} | {_fmt(v)} | {100 * v / area_total if area_total else 0:.1f} |")
    out += ["", "## Layers", "", "Row K is the layer index that `aimc cosim --layer K` takes. "
            "Energies exclude leakage (a total only).", ""]
    cols = [c for c in _COLUMNS if c[0] not in ("activation_bit_hops", "partial_sum_bit_hops", "chip_link_bits")]
    out.append("| " + " | ".join(h for _, h, _ in cols) + " |")
    out.append("|" + "|".join("---" if i < 5 else "---:" for i in range(len(cols))) + "|")
    for r in t.layers:
        out.append("| " + " | ".join(_fmt(get(r)) for _, _, get in cols) + " |")
    if t.digital_ops:
        out += ["", "## Operators outside the matrix layers", "",
                "Ops from the table of `mapping.costs.digital_op_counts`, on the unit of docs/design.md "
                "section 13.1 (the digital unit or the tiles' affine units).", "",
                "| " + " | ".join(h for _, h, _ in _DIGITAL_COLUMNS) + " |",
                "|" + "|".join("---" if i < 4 else "---:" for i in range(len(_DIGITAL_COLUMNS))) + "|"]
        for r in t.digital_ops:
            out.append("| " + " | ".join(_fmt(get(r)) for _, _, get in _DIGITAL_COLUMNS) + " |")
    if t.sources:
        out += ["", "## Sources of the constants", "",
                "Keys of `docs/references.md` plus a locator; `assumed` where no publication gives the figure.", "",
                "| constant | value | source |", "|---|---:|---|"]
        for r in t.sources:
            src = str(r["source"]).replace("|", "/")
            out.append(f"| {r['constant']} | {_fmt(r['value'])} | {src} |")
    if plots:  # name only the files that are written (--no-plots writes none)
        out += ["", "Plots: `energy_breakdown.png`, `area_breakdown.png`, `layer_latency.png`."]
    out.append("")
    return "\n".join(out)


def _csv(result: MappingResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([f"{key}" for key, _, _ in _COLUMNS])
    for r in result.layers:
        w.writerow([repr(v) if isinstance(v, float) else v for v in (get(r) for _, _, get in _COLUMNS)])
    return buf.getvalue()


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    return buf.getvalue()


def _bar(title: str, labels: list[str], values: list[float], xlabel: str, horizontal: bool = True,
         height: float = 4.0) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, height))
    ax = fig.add_subplot()
    if horizontal:
        ax.barh(range(len(values)), values, color="#4477aa")
        ax.set_yticks(range(len(values)), labels, fontsize=7 if len(labels) > 30 else 9)
        ax.invert_yaxis()
        ax.set_xlabel(xlabel)
    ax.set_title(title)
    fig.tight_layout()
    return _png(fig)


def _plots(result: MappingResult) -> dict[str, bytes]:
    t = result
    e = {k: v / 1e6 for k, v in t.energy_pj.items()}
    a = {k: v / 1e6 for k, v in t.area_um2.items()}
    layers: list[LayerMapping] = t.layers
    n = len(layers)
    return {
        "energy_breakdown.png": _bar(f"Energy per inference: {t.network_name} on {t.spec_name}",
                                     list(e), list(e.values()), "energy per inference (µJ)"),
        "area_breakdown.png": _bar(f"Area: {t.chips} chip(s) {t.spec_name}", list(a), list(a.values()),
                                   "area (mm²)"),
        "layer_latency.png": _bar(f"Per-layer stage latency: {t.network_name} on {t.spec_name}",
                                  [f"{r.index} {r.name} ({r.kind[0]})" for r in layers],
                                  [r.latency_ns / 1000 for r in layers], "latency per inference (µs)",
                                  height=max(3.0, min(0.18 * n + 1.5, 14.0))),
    }


def render_report(result: MappingResult, *, seed: int | None = None, plots: bool = False,
                  fold_batchnorm: bool = False) -> dict[str, bytes | str]:
    """File name -> content for one mapping report (see :data:`REPORT_FILES`).

    ``fold_batchnorm`` is recorded in the report's options (see :func:`report_dict`).
    ``plots`` (opt-in, ``aimc map --plots``): also the three PNGs, listed in
    report.md; without it neither the PNGs nor their mention (matplotlib is not imported).
    """
    files: dict[str, bytes | str] = {
        "report.md": _markdown(result, seed, fold_batchnorm, plots),
        "report.json": json.dumps(report_dict(result, seed, fold_batchnorm=fold_batchnorm),
                                  indent=2, ensure_ascii=False) + "\n",
        "layers.csv": _csv(result),
    }
    if plots:
        files.update(_plots(result))
    return files
