"""The outputs of a sweep: results.csv / results.parquet, front.csv, best-point chip YAMLs, report.html / report.md.

``render_outputs`` returns ``{file name: content}``; the caller writes them all
or none (:func:`archmodel.fileio.write_files_atomic`). The HTML report is one
self-contained file: plots are PNGs embedded as base64 ``data:`` URIs, no
stylesheet, script or font is fetched (no ``http(s)`` URL anywhere). It
records the number of front points drawn on the Pareto scatter in
``<meta name="aimc-front-points" content="N">`` (counted where they are
drawn), next to the front table, so a test can check that every tabulated
front point is plotted.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
from typing import Any

import yaml

from mapping.sweep.config import UNITS
from mapping.sweep.runner import SweepResult, accuracy_label

__all__ = ["render_outputs", "table_columns", "metric_label", "MAX_LISTED", "MAX_ANNOTATED"]

#: Screened-out / infeasible points listed by name in the report (the rest are in results.csv).
MAX_LISTED = 200
#: Above this many points the Pareto scatter labels only the front points.
MAX_ANNOTATED = 200


def _comparison_lines(res: SweepResult) -> list[str]:
    c = res.comparison or {}
    lines = ["## Optimizer front vs exhaustive front", "",
             "Hypervolume on the exhaustive set's normalised scale (each objective mapped to [0, 1] from its best "
             "to its worst value over the grid, reference point 1.1; `mapping/sweep/pareto.py`).", "",
             "| search | points evaluated | distinct points | front points | hypervolume |", "|---|---|---|---|---|"]
    for side in ("exhaustive", "optimizer"):
        d = c[side]
        name = "exhaustive grid" if side == "exhaustive" else \
            f"nsga2 ({res.sweep.population} × {res.sweep.generations}, seed {res.sweep.seed})"
        lines.append(f"| {name} | {d['evaluated']} | {d['unique']} | {d['front']} | {d['hv']:.6g} |")
    lines += ["", f"The optimizer's front reaches {100 * c['hv_ratio']:.2f} % of the exhaustive hypervolume with "
              f"{100 * c['optimizer']['evaluated'] / max(1, c['exhaustive']['evaluated']):.1f} % of the evaluations."]
    return lines


def metric_label(metric: str) -> str:
    """Human label with unit: ``energy_per_inference_pj`` -> ``energy_per_inference_pj [pJ]``; accuracy labelled by network."""
    if metric.startswith("accuracy."):
        return accuracy_label(metric) + " [%]"
    unit = UNITS.get(metric.split(".")[0])
    return f"{metric} [{unit}]" if unit else metric


def table_columns(res: SweepResult) -> list[str]:
    """Columns of results.csv in order: point, varied keys, feasible, reason, then every metric (sorted)."""
    fixed = ["point", *res.sweep.parameters, "feasible", "reason"] + \
        (["screened_out"] if res.sweep.screening is not None else [])
    rest = sorted({k for r in res.rows for k in r} - set(fixed))
    return fixed + rest


def _csv(rows: list[dict[str, Any]], cols: list[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({c: ("" if r.get(c) is None else repr(r[c]) if isinstance(r.get(c), float) else r.get(c, ""))
                    for c in cols})
    return buf.getvalue()


def _parquet(rows: list[dict[str, Any]], cols: list[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    data: dict[str, list[Any]] = {c: [r.get(c) for r in rows] for c in cols}
    arrays = {}
    for c, vals in data.items():
        if all(v is None or isinstance(v, bool) for v in vals) and any(isinstance(v, bool) for v in vals):
            arrays[c] = pa.array(vals, type=pa.bool_())
        elif all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in vals):
            arrays[c] = pa.array([math.nan if v is None else float(v) for v in vals], type=pa.float64()) \
                if any(isinstance(v, float) or v is None for v in vals) else pa.array(vals, type=pa.int64())
        else:
            arrays[c] = pa.array([None if v is None else str(v) for v in vals], type=pa.string())
    buf = io.BytesIO()
    pq.write_table(pa.table(arrays), buf)
    return buf.getvalue()


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _plots(res: SweepResult) -> tuple[list[tuple[str, bytes]], int]:
    """(the PNGs [(name, bytes)], number of front points drawn on the Pareto scatter)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objs = res.sweep.objectives
    ppa = [o.metric for o in objs if not o.metric.startswith("accuracy.")]
    acc = [o.metric for o in objs if o.metric.startswith("accuracy.")]
    feas = [i for i, r in enumerate(res.rows) if r["feasible"]]
    front = set(res.front)
    out = []
    x_m = ppa[0] if ppa else objs[0].metric
    y_m = ppa[1] if len(ppa) > 1 else (acc[0] if acc and acc[0] != x_m else x_m)
    c_m = acc[0] if acc and acc[0] not in (x_m, y_m) else None
    fig, ax = plt.subplots(figsize=(7, 5))

    def val(i: int, m: str) -> float:
        v = float(res.rows[i].get(m, math.nan))
        return 100 * v if m.startswith("accuracy.") else v

    pts = [i for i in feas if not math.isnan(val(i, x_m)) and not math.isnan(val(i, y_m))]
    # points at the same (x, y) (e.g. parameters PPA does not see) are drawn as concentric discs, largest first
    at: dict[tuple[float, float], list[int]] = {}
    for i in pts:
        at.setdefault((val(i, x_m), val(i, y_m)), []).append(i)
    size = {i: 70.0 * (len(g) - k) ** 1.6 for g in at.values() for k, i in enumerate(g)}
    order = sorted(pts, key=lambda i: -size[i])
    xs, ys, ss = [val(i, x_m) for i in order], [val(i, y_m) for i in order], [size[i] for i in order]
    if c_m:
        cs = [val(i, c_m) for i in order]
        sc = ax.scatter(xs, ys, c=cs, s=ss, cmap="viridis", edgecolors="k", zorder=2)
        fig.colorbar(sc, ax=ax, label=metric_label(c_m))
    else:
        ax.scatter(xs, ys, s=ss, edgecolors="k", zorder=2)
    fr = [i for i in pts if i in front]
    ax.scatter([val(i, x_m) for i in fr], [val(i, y_m) for i in fr], s=[size[i] + 120 for i in fr], facecolors="none",
               edgecolors="red", linewidths=2, label="Pareto front", zorder=3)
    for (x, y), g in at.items():
        if len(pts) > MAX_ANNOTATED and not front.intersection(g):
            continue
        ax.annotate(",".join(str(res.rows[i]["point"]) for i in g), (x, y), textcoords="offset points", xytext=(8, 6),
                    fontsize=8)
    ax.set_xlabel(metric_label(x_m))
    ax.set_ylabel(metric_label(y_m))
    ax.set_title(f"{res.sweep.name}: {len(pts)} feasible points, {len(fr)} on the front")
    ax.legend(loc="best")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.append(("pareto", _png(fig)))
    # each parameter's effect on each objective (mean over the other parameters)
    params = list(res.sweep.parameters)
    fig, axes = plt.subplots(len(objs), len(params), figsize=(3.2 * len(params), 2.6 * len(objs)), squeeze=False)
    for r_i, o in enumerate(objs):
        for c_i, p in enumerate(params):
            ax = axes[r_i][c_i]
            groups: dict[Any, list[float]] = {}
            for i in feas:
                v = val(i, o.metric)
                if not math.isnan(v):
                    groups.setdefault(res.rows[i][p], []).append(v)
            keys = sorted(groups, key=lambda k: (isinstance(k, str), k))
            ax.plot([str(k) for k in keys], [sum(groups[k]) / len(groups[k]) for k in keys], "o-")
            ax.set_xlabel(p, fontsize=8)
            if c_i == 0:
                ax.set_ylabel(metric_label(o.metric), fontsize=7)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
    fig.suptitle("Effect of each parameter (mean over the other parameters, feasible points)", fontsize=9)
    fig.tight_layout()
    out.append(("effects", _png(fig)))
    return out, len(fr)


def _fmt(v: Any, metric: str = "") -> str:
    if isinstance(v, float):
        if metric.startswith("accuracy."):
            return f"{100 * v:.2f}"
        return f"{v:.6g}"
    return str(v)


def _front_table(res: SweepResult) -> tuple[list[str], list[list[str]]]:
    objs = [o.metric for o in res.sweep.objectives]
    head = ["point", *res.sweep.parameters]
    for m in objs:
        head.append(metric_label(m))
        if m.startswith("accuracy."):
            head.append("± SE [%]")
    body = []
    for i in res.front:
        r = res.rows[i]
        line = [str(r["point"]), *(_fmt(r[p]) for p in res.sweep.parameters)]
        for m in objs:
            line.append(_fmt(r.get(m, math.nan), m))
            if m.startswith("accuracy."):
                line.append(_fmt(r.get(m + ".se", math.nan), m))
        body.append(line)
    return head, body


def _markdown(res: SweepResult, best_files: dict[str, str]) -> str:
    s = res.sweep
    n_feas = sum(r["feasible"] for r in res.rows)
    lines = [f"# Sweep {s.name}", "",
             f"Base chip `{s.base}`, networks {', '.join(s.networks)}; strategy {s.strategy}, seed {s.seed}; "
             f"{len(res.rows)} points, {n_feas} feasible.", "",
             "Objectives: " + ", ".join(f"{o.goal} {metric_label(o.metric)}" for o in s.objectives), ""]
    if s.constraints:
        lines += ["Constraints: " + ", ".join(
            f"{c.metric} in [{'' if c.min is None else c.min}, {'' if c.max is None else c.max}]"
            for c in s.constraints), ""]
    head, body = _front_table(res)
    lines += [f"## Pareto front ({len(body)} points)", "", "| " + " | ".join(head) + " |",
              "|" + "---|" * len(head)] + ["| " + " | ".join(b) + " |" for b in body] + [""]
    lines += ["## Effect of each parameter", "", "Mean of each objective over the feasible points with that value.", ""]
    objs = [o.metric for o in s.objectives]
    lines += ["| parameter | value | " + " | ".join(metric_label(m) for m in objs) + " |", "|" + "---|" * (2 + len(objs))]
    for p in s.parameters:
        groups: dict[Any, list[dict[str, Any]]] = {}
        for r in res.rows:
            if r["feasible"]:
                groups.setdefault(r[p], []).append(r)
        for v in sorted(groups, key=lambda k: (isinstance(k, str), k)):
            means = []
            for m in objs:
                xs = [float(r[m]) for r in groups[v] if not math.isnan(float(r.get(m, math.nan)))]
                means.append(_fmt(sum(xs) / len(xs), m) if xs else "")
            lines.append(f"| {p} | {v} | " + " | ".join(means) + " |")
    lines += ["", "## Best point per objective", ""]
    for m, i in res.best.items():
        lines.append(f"- {metric_label(m)}: point {i} = {_fmt(res.rows[i][m], m)} → `{best_files[m]}`")
    if res.comparison:
        lines += ["", *_comparison_lines(res), ""]
    if s.screening is not None:
        out = [r for r in res.rows if r.get("screened_out")]
        lines += ["", f"## Screened out ({len(out)} points: PPA only, accuracy not evaluated)", "",
                  f"Screening by {s.screening.by}, neighbourhood {s.screening.neighbourhood}: accuracy was evaluated "
                  f"on {sum(r['feasible'] and not r.get('screened_out') for r in res.rows)} of "
                  f"{sum(r['feasible'] or bool(r.get('screened_out')) for r in res.rows)} PPA-feasible points.", ""]
        lines += [f"- point {r['point']}: {r['screened_out']}" for r in out[:MAX_LISTED]]
        if len(out) > MAX_LISTED:
            lines.append(f"- ... {len(out) - MAX_LISTED} more: column `screened_out` of `results.csv`")
    bad = [r for r in res.rows if not r["feasible"]]
    if bad:
        lines += ["", "## Infeasible points", ""] + [f"- point {r['point']}: {r['reason']}" for r in bad[:MAX_LISTED]]
        if len(bad) > MAX_LISTED:
            lines.append(f"- ... {len(bad) - MAX_LISTED} more: column `reason` of `results.csv`")
    lines += ["", "All points: `results.csv` / `results.parquet`; plots: `report.html`.", ""]
    return "\n".join(lines)


def _html(res: SweepResult, plots: list[tuple[str, bytes]], plotted: int, md_best: list[str]) -> str:
    head, body = _front_table(res)
    e = html.escape
    imgs = "\n".join(f'<h2>{e(t)}</h2><img alt="{e(t)}" src="data:image/png;base64,{base64.b64encode(b).decode()}">'
                     for t, b in (("Pareto scatter" if n == "pareto" else "Parameter effects", b) for n, b in plots))
    table = ("<table><tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>" +
             "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in body) + "</table>")
    s = res.sweep
    infeasible = [r for r in res.rows if not r["feasible"]]
    bad = ("<h2>Infeasible points</h2><ul>" + "".join(f"<li>point {r['point']}: {e(r['reason'])}</li>"
                                                     for r in infeasible[:MAX_LISTED]) + "</ul>") if infeasible else ""
    if len(infeasible) > MAX_LISTED:
        bad += f"<p>... {len(infeasible) - MAX_LISTED} more: column reason of results.csv</p>"
    screened = [r for r in res.rows if r.get("screened_out")]
    if s.screening is not None:
        bad = (f"<h2>Screened out ({len(screened)} points: PPA only, accuracy not evaluated)</h2><ul>"
               + "".join(f"<li>point {r['point']}: {e(r['screened_out'])}</li>" for r in screened[:MAX_LISTED])
               + "</ul>" + (f"<p>... {len(screened) - MAX_LISTED} more: column screened_out of results.csv</p>"
                            if len(screened) > MAX_LISTED else "")) + bad
    if res.comparison:
        cmp_lines = _comparison_lines(res)
        bad = "<h2>Optimizer front vs exhaustive front</h2>" + "".join(
            f"<p>{e(x)}</p>" for x in cmp_lines[2:3] + cmp_lines[-1:]) + "<table>" + "".join(
            "<tr>" + "".join(f"<td>{e(c.strip())}</td>" for c in x.strip("|").split("|")) + "</tr>"
            for x in cmp_lines[4:5] + cmp_lines[6:8]) + "</table>" + bad
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>aimc sweep {e(s.name)}</title>
<meta name="aimc-front-points" content="{plotted}">
<style>body{{font-family:sans-serif;margin:1em;background:#fff}} table{{border-collapse:collapse}}
td,th{{border:1px solid #888;padding:2px 6px;font-size:12px}} img{{max-width:100%}}</style></head>
<body><h1>Sweep {e(s.name)}</h1>
<p>Base chip {e(s.base)}; networks {e(', '.join(s.networks))}; {len(res.rows)} points,
{sum(r['feasible'] for r in res.rows)} feasible; objectives:
{e(', '.join(f'{o.goal} {metric_label(o.metric)}' for o in s.objectives))}.</p>
{imgs}
<h2>Pareto front ({len(body)} points)</h2>
{table}
<h2>Best point per objective</h2><ul>{''.join(f'<li>{e(x)}</li>' for x in md_best)}</ul>
{bad}
</body></html>
"""


def render_outputs(res: SweepResult, plots: bool = True) -> dict[str, bytes | str]:
    """Every output file of a sweep: ``{name: content}`` (see the module docstring)."""
    cols = table_columns(res)
    files: dict[str, bytes | str] = {"results.csv": _csv(res.rows, cols), "results.parquet": _parquet(res.rows, cols),
                                     "front.csv": _csv([res.rows[i] for i in res.front], cols)}
    best_files: dict[str, str] = {}
    best_lines = []
    for m, i in res.best.items():
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in m)
        name = f"best_{safe}.yaml"
        chip = res.specs[i].model_dump(mode="json")
        chip["name"] = f"{res.specs[i].name}-sweep-{res.sweep.name}-p{i}"
        chip["description"] = f"aimc sweep {res.sweep.name}: point {i}, best {m}"
        files[name] = yaml.safe_dump(chip, sort_keys=False)
        best_files[m] = name
        best_lines.append(f"{metric_label(m)}: point {i} = {_fmt(res.rows[i][m], m)} → {name}")
    md = _markdown(res, best_files)
    files["report.md"] = md
    pngs, plotted = _plots(res) if plots else ([], 0)
    files["report.html"] = _html(res, pngs, plotted, best_lines)
    return files
