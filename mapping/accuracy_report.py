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


def result_to_json(res: AccuracyResult, spec: ChipSpec, network_name: str, weights: dict[str, Any],
                   n_test: int, adabs_images: int) -> dict:
    """JSON-ready report (snake_case keys, units in names, no timestamps or paths).

    ``weights`` says where the weights came from; ``n_test`` is the number of
    test images and ``adabs_images`` the AdaBS calibration images used.
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
    return {
        "tool_version": __version__, "chip": spec.name, "spec_hash": spec.spec_hash, "seed": res.seed,
        "network": network_name, "weights": weights, "dataset": "sklearn digits (1,797 8x8 images), stratified 70/30 split",
        "test_images": int(n_test),
        "draws": int(next(iter(res.draws.values())).shape[0]),
        "digital_precision": o.digital_precision, "adabs_images": adabs_images,
        "adc_full_scale_fraction": spec.array.adc_full_scale_fraction,
        "times": [{"label": lbl, "t_inf_s": t} for lbl, t in res.times],
        "fp32_accuracy_pct": round(100 * res.fp32_accuracy, 4),
        "int8_digital_accuracy_pct": round(100 * res.int8_accuracy, 4),
        "settings": settings, "adc_usage": res.adc,
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
        "Top-1 test accuracy in %, mean ± standard deviation over draws (standard error = std/√draws "
        "in report.json):",
        "",
        "| setting | " + " | ".join(times) + " |",
        "|---|" + "---:|" * len(times),
    ]
    for s in rep["settings"]:
        cells = [f"{m:.2f} ± {sd:.2f}" for m, sd in zip(s["accuracy_mean_pct"], s["accuracy_std_pct"], strict=True)]
        lines.append(f"| {SETTING_TITLES.get(s['setting'], s['setting'])} | " + " | ".join(cells) + " |")
    lines.append("| FP32 baseline | " + " | ".join(f"{rep['fp32_accuracy_pct']:.2f}" for _ in times) + " |")
    if rep["adc_usage"]:
        lines += ["", "ADC range use right after programming (all layers analog, 64 test images; full scale = "
                  f"{rep['adc_full_scale_fraction']} × rows × g_max × V_read):", "",
                  "| layer | rows | cols | row blocks | RMS ADC code (LSB) | saturated codes (%) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for a in rep["adc_usage"]:
            lines.append(f"| {a['layer']} | {a['rows']} | {a['cols']} | {a['row_blocks']} | "
                         f"{a['adc_rms_code_lsb']:.2f} of {a['adc_full_scale_code']} | {a['adc_saturated_pct']:.3f} |")
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
