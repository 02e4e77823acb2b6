"""Reports of ``aimc accuracy``: ``report.json``, ``report.md`` and ``accuracy_vs_time.png`` of an accuracy result.

Output is byte-identical for the same inputs: no timestamps, no paths, the PNG
without a software tag.
"""

from __future__ import annotations

import io
from typing import Any

from archmodel import __version__
from archmodel.accuracy_experiment import AccuracyResult
from archmodel.spec import ChipSpec

__all__ = ["SETTING_TITLES", "plot_png", "result_to_json", "to_markdown"]

#: Table/legend title of each setting ``"<placement>/<compensation>"``.
SETTING_TITLES = {
    "all_analog/none": "all analog, no compensation",
    "all_analog/gdc": "all analog, GDC",
    "all_analog/gdc_per_column": "all analog, GDC per column",
    "all_analog/adabs": "all analog, AdaBS",
    "digital_first_last/none": "first/last digital, no compensation",
    "digital_first_last/gdc": "first/last digital, GDC",
    "digital_first_last/gdc_per_column": "first/last digital, GDC per column",
    "digital_first_last/adabs": "first/last digital, AdaBS",
}


def _ranges(idx: Any) -> str:
    """Sorted indices as compact ranges, ``"0-3, 7, 9-12"``."""
    v = sorted(int(i) for i in idx)
    out, i = [], 0
    while i < len(v):
        j = i
        while j + 1 < len(v) and v[j + 1] == v[j] + 1:
            j += 1
        out.append(str(v[i]) if i == j else f"{v[i]}-{v[j]}")
        i = j + 1
    return ", ".join(out)


def result_to_json(res: AccuracyResult, spec: ChipSpec, network_name: str, weights: dict[str, Any],
                   n_test: int, adabs_images: int, split: dict | None = None, test_index: Any = None,
                   folds: list[dict] | None = None) -> dict:
    """JSON-ready report (snake_case keys, units in names, no timestamps or paths).

    ``weights`` says where the weights came from; ``n_test`` is the number of
    test images and ``adabs_images`` the AdaBS calibration images used; ``split``
    describes the data split (``archmodel.datasets.DigitsSplit.meta``),
    ``test_index`` its test images' data-set indices; ``folds`` the per-fold
    records of ``archmodel.digits_experiment.kfold_accuracy``.
    """
    settings = []
    for key, arr in res.draws.items():
        placement, comp = key.split("/")
        settings.append({
            "setting": key, "placement": placement, "compensation": comp,
            "accuracy_mean_pct": [round(100 * v, 4) for v in res.mean(key)],
            "accuracy_std_pct": [round(100 * v, 4) for v in res.std(key)],
            "accuracy_se_pct": [round(100 * v, 4) for v in res.se(key)],
            "accuracy_draws_pct": [[round(100 * v, 4) for v in row] for row in arr],
        })
    o = res.options
    if folds:
        cal_sets = [(f["calibration_index"], f["adabs_index"], f["test_index"]) for f in folds]
    else:
        cal_sets = [(res.calibration_index, res.adabs_index, [] if test_index is None else list(test_index))]
    disjoint = all(not (set(c) | set(a)) & set(t) for c, a, t in cal_sets)
    calib = {
        "adc_range": res.adc_range,
        "adc_range_rule": ("5 sigma (RMS) of the column currents of every row block on the calibration images' int8 "
                           "activations, right after programming; fixed over time"
                           if res.adc_range == "per_layer" else
                           f"fixed: {spec.array.adc_full_scale_fraction} x rows x devices_per_polarity x g_max x V_read"),
        "gdc_vectors": "int8 activations of the calibration images at each layer's input (every conv output pixel "
                       "is one vector; at most 2048, evenly spaced)",
        "gdc_reference": o.gdc_reference,
        "gdc_alpha_bias_vs_exact": res.gdc_bias,
        "read_noise": "redrawn per block of 1,024 MVMs, keyed by (seed, draw, layer, time, MVM block)",
        "adabs": "batch-norm statistics on the AdaBS images through the drifted network, with read and output "
                 "noise independent of the test images' draws",
        "calibration_images": len(res.calibration_index),
        "per_fold" if folds else "index": [
            {"calibration_index": _ranges(c), "adabs_index": _ranges(a)} for c, a, _ in cal_sets],
        "calibration_disjoint_from_test": bool(disjoint),
    }
    return {
        "tool_version": __version__, "chip": spec.name, "spec_hash": spec.spec_hash, "seed": res.seed,
        "network": network_name, "weights": weights, "dataset": "sklearn digits (1,797 8x8 images), " + (
            f"stratified {split['folds']}-fold evaluation" if split and split.get("kind") == "kfold" else
            f"stratified hold-out split ({round(100 * split['test_fraction'])} % test)" if split else
            "stratified 70/30 split"),
        "test_images": int(n_test),
        "draws": int(next(iter(res.draws.values())).shape[0]),
        "digital_precision": o.digital_precision, "adabs_images": adabs_images,
        "adc_full_scale_fraction": spec.array.adc_full_scale_fraction,
        "times": [{"label": lbl, "t_inf_s": t} for lbl, t in res.times],
        "fp32_accuracy_pct": round(100 * res.fp32_accuracy, 4),
        "int8_digital_accuracy_pct": round(100 * res.int8_accuracy, 4),
        "settings": settings, "adc_usage": res.adc, "calibration": calib, "split": split,
        "folds": [{k: v for k, v in f.items() if k not in ("calibration_index", "adabs_index", "test_index")}
                  for f in folds] if folds else None,
    }


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def to_markdown(rep: dict) -> str:
    """``report.md`` of a :func:`result_to_json` report."""
    times = [t["label"] for t in rep["times"]]
    lines = [
        f"# Accuracy over time: {rep['network']} on '{rep['chip']}' PCM",
        "",
        f"Chip description hash {rep['spec_hash']}, seed {rep['seed']}, aimc {rep['tool_version']}; "
        f"{rep['draws']} Monte-Carlo draws; {rep['dataset']}, {rep['test_images']} test images. "
        f"Weights: {', '.join(f'{k} {_fmt(v)}' for k, v in rep['weights'].items())}.",
        "",
        f"FP32 baseline (same weights): **{rep['fp32_accuracy_pct']:.2f} %**; every layer on the int8 digital "
        f"datapath (no PCM): {rep['int8_digital_accuracy_pct']:.2f} %. Digital layers of the first/last placement: "
        f"{rep['digital_precision']}. AdaBS calibration images: {rep['adabs_images']}.",
        "",
        "Top-1 test accuracy in %, mean ± standard deviation over draws [standard error = std/√draws]:",
        "",
        "| setting | " + " | ".join(times) + " |",
        "|---|" + "---:|" * len(times),
    ]
    for s in rep["settings"]:
        cells = [f"{m:.2f} ± {sd:.2f} [{se:.2f}]" for m, sd, se in
                 zip(s["accuracy_mean_pct"], s["accuracy_std_pct"], s["accuracy_se_pct"], strict=True)]
        lines.append(f"| {SETTING_TITLES.get(s['setting'], s['setting'])} | " + " | ".join(cells) + " |")
    lines.append("| FP32 baseline | " + " | ".join(f"{rep['fp32_accuracy_pct']:.2f}" for _ in times) + " |")
    cal = rep.get("calibration")
    if cal:
        lines += ["", f"Calibration: ADC range {cal['adc_range']} ({cal['adc_range_rule']}); GDC vectors: "
                  f"{cal['gdc_vectors']}; GDC reference {cal['gdc_reference']}; read noise {cal['read_noise']}; "
                  f"AdaBS: {cal['adabs']}. Calibration images (ADC ranging and GDC): {cal['calibration_images']}, "
                  f"disjoint from the test images: {'yes' if cal['calibration_disjoint_from_test'] else 'NO'}."]
    if rep.get("split"):
        lines += ["", "Split: " + ", ".join(f"{k} {v}" for k, v in rep["split"].items())
                  + (" (one network trained per fold; the test folds cover every image once)"
                     if rep["split"].get("kind") == "kfold" else "") + "."]
    if rep.get("folds"):
        lines += ["", "| fold | test images | FP32 (%) |", "|---:|---:|---:|"]
        lines += [f"| {f['fold']} | {f['test_images']} | {f['fp32_accuracy_pct']:.2f} |" for f in rep["folds"]]
    if rep["adc_usage"]:
        lines += ["", "ADC range use right after programming (draw 0, all layers analog, 64 test images"
                  + (", fold 0" if rep.get("folds") else "") + "; full scale as a fraction of rows × "
                  "devices per polarity × g_max × V_read):", "",
                  "| layer | rows | cols | row blocks | full scale | RMS ADC code (LSB) | saturated codes (%) | GDC vectors |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for a in rep["adc_usage"]:
            lines.append(f"| {a['layer']} | {a['rows']} | {a['cols']} | {a['row_blocks']} | "
                         f"{a.get('adc_full_scale_fraction', rep['adc_full_scale_fraction']):.4g} | "
                         f"{a['adc_rms_code_lsb']:.2f} of {a['adc_full_scale_code']} | {a['adc_saturated_pct']:.3f} | "
                         f"{a.get('gdc_vectors', '')} |")
    if cal and cal["gdc_alpha_bias_vs_exact"]:
        lines += ["", "Bias of the measured-reference GDC α against the exact reference (draw 0, %, "
                  "α_measured/α_exact − 1):", "", "| layer | " + " | ".join(times) + " |",
                  "|---|" + "---:|" * len(times)]
        for b in cal["gdc_alpha_bias_vs_exact"]:
            lines.append(f"| {b['layer']} | " + " | ".join(f"{v:+.2f}" for v in b["alpha_bias_pct"]) + " |")
    if cal:
        for i, ix in enumerate(cal.get("per_fold") or cal.get("index") or []):
            where = f"fold {i}" if cal.get("per_fold") else "data-set"
            lines += ["", f"Image indices ({where}) for ADC ranging and GDC: {ix['calibration_index']}; "
                      f"AdaBS: {ix['adabs_index']}."]
    lines += ["", "Times are after programming (t_inf); 1 month = 2,592,000 s, 1 year = 31,536,000 s. "
              "GDC: global drift calibration (one α per layer, or per column); AdaBS: batch-norm statistics "
              "re-estimated on training images through the drifted analog network (with global GDC).", ""]
    return "\n".join(lines)


def plot_png(rep: dict) -> bytes:
    """``accuracy_vs_time.png``: accuracy vs time per setting, FP32 baseline dashed (no software/date tag)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [x["t_inf_s"] for x in rep["times"]]
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    markers = "osD^v<>p"
    for i, s in enumerate(rep["settings"]):
        ls = "-" if s["placement"] == "digital_first_last" else "--"
        ax.errorbar(t, s["accuracy_mean_pct"], yerr=s["accuracy_std_pct"], marker=markers[i % len(markers)],
                    ls=ls, capsize=3, ms=4, label=SETTING_TITLES.get(s["setting"], s["setting"]))
    ax.axhline(rep["fp32_accuracy_pct"], color="k", lw=1.2, ls=":", label=f"FP32 baseline ({rep['fp32_accuracy_pct']:.2f} %)")
    ax.set_xscale("log")
    ax.set_xticks(t, [x["label"] for x in rep["times"]])
    ax.set_xlabel("time after programming t_inf (log scale)")
    ax.set_ylabel("top-1 test accuracy (%)")
    ax.set_title(f"{rep['network']} on '{rep['chip']}' PCM ({rep['draws']} draws, mean ± std)")
    lo = min(min(s["accuracy_mean_pct"]) for s in rep["settings"])
    ax.set_ylim(max(0.0, min(lo - 5, rep["fp32_accuracy_pct"] - 10)), 100.5)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
