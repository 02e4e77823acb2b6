"""``aimc accuracy``: accuracy of a trained network on the chip's PCM arrays over time (report + plot)."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
from typing import Any

from mapping.cli_common import (
    add_arch,
    add_network,
    add_out,
    add_seed,
    check_int_range,
    check_out_dir,
    resolve_arch,
    write_files_atomic,
)
from mapping.cli_train import add_train_options, given_train_flags, resolve_network, train_network, train_settings

#: Largest --draws accepted.
MAX_DRAWS = 10_000

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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "accuracy",
        help="accuracy of a trained network on PCM at 1 s .. 1 year (GDC, AdaBS, digital first/last)",
        description=(
            "Program every conv/linear layer of a trained digits network on the chip's PCM arrays and "
            "evaluate its test accuracy through the integer data path (int8 activations, DAC, arrays, ADC, "
            "affine unit) at 1 s, 1 h, 1 day, 1 month and 1 year after programming, with no compensation, "
            "global drift calibration (GDC), per-column GDC and AdaBS, all layers analog or first/last "
            "digital; repeated over Monte-Carlo draws. Trains the network first when --weights is not "
            "given. Writes report.md, report.json and accuracy_vs_time.png into --out."
        ),
        epilog=("examples:\n"
                "  aimc accuracy --arch fig11 --network digits-cnn --seed 0 --out out/acc\n"
                "  aimc accuracy --arch fig11 --network digits-cnn --weights out/train/weights.npz --out out/acc"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arch(p)
    add_network(p, default="digits-cnn")
    add_seed(p)
    add_out(p)
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="trained weights: .npz from 'aimc train', or an .onnx file (initializers matched by layer "
                        "name); default: the network's own ONNX weights if any, else train first")
    p.add_argument("--draws", type=int, default=10, help=f"Monte-Carlo draws, 2..{MAX_DRAWS} (default: 10)")
    p.add_argument("--digital-precision", choices=("int8", "fp32"), default="int8",
                   help="precision of the layers kept digital (default: int8, the digital datapath)")
    p.add_argument("--adabs-images", type=int, default=None, metavar="N",
                   help="training images for AdaBS, at most the training split (default: the chip's "
                        "calibration.adabs_images)")
    p.add_argument("--adc-full-scale-fraction", type=float, default=None, metavar="F",
                   help="what-if: override the chip's array.adc_full_scale_fraction")
    p.add_argument("--workers", type=int, default=None, help="processes for the draws, >= 1 (default: CPU count)")
    p.add_argument("--no-plot", action="store_true", help="skip accuracy_vs_time.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no table on stdout")
    add_train_options(p)
    p.set_defaults(func=run)


def _has_own_weights(network) -> bool:
    own = {l.name: l.params for l in network.layers if l.params}
    return bool(own) and all("weight" in own.get(l.name, {}) for l in network.layers if l.is_matrix_layer)


def _weights(args: argparse.Namespace, network) -> tuple[dict, dict[str, Any]]:
    """(params, info) from --weights, the network's own weights, or training."""
    from pathlib import Path

    from archmodel.weights_io import load_npz, load_onnx_params

    if args.weights:
        path = Path(args.weights)
        if not path.is_file():
            raise ValueError(f"--weights {path}: no such file")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
        if path.suffix.lower() == ".onnx":
            return load_onnx_params(path, network), {"source": "onnx", "sha256_16": digest}
        params, meta = load_npz(path, network)
        return params, {"source": "npz", "sha256_16": digest, **{k: meta[k] for k in ("noise", "seed", "epochs") if k in meta}}
    if _has_own_weights(network):
        return {l.name: dict(l.params) for l in network.layers if l.params}, {"source": "network file"}
    noise, epochs, clip_sigma = train_settings(args)
    result, _ = train_network(network, args.seed, noise, epochs, clip_sigma, args.quiet)
    return result.params, {"source": "trained", "noise": noise, "seed": args.seed, "epochs": epochs,
                           "clip_sigma": clip_sigma, "fp32_test_accuracy_pct": 100 * result.test_accuracy}


def result_to_json(res, spec, network_name: str, weights: dict[str, Any], elapsed: dict[str, Any] | None = None) -> dict:
    """JSON-ready report (snake_case keys, units in names, no timestamps or paths)."""
    from archmodel import __version__

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
        "test_images": int(res.n_test) if hasattr(res, "n_test") else None,
        "draws": int(next(iter(res.draws.values())).shape[0]),
        "digital_precision": o.digital_precision, "adabs_images": res.adabs_images if hasattr(res, "adabs_images") else None,
        "adc_full_scale_fraction": spec.array.adc_full_scale_fraction,
        "times": [{"label": lbl, "t_inf_s": t} for lbl, t in res.times],
        "fp32_accuracy_pct": round(100 * res.fp32_accuracy, 4),
        "int8_digital_accuracy_pct": round(100 * res.int8_accuracy, 4),
        "settings": settings, "adc_usage": res.adc,
    }


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def to_markdown(rep: dict) -> str:
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


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from archmodel.accuracy import AccuracyOptions
    from archmodel.accuracy_experiment import evaluate_accuracy
    from archmodel.datasets import DIGITS_INPUT_SHAPE, load_digits_split

    # every option is checked before any work (one line naming the flag)
    check_int_range("--seed", args.seed, 0)
    if not 2 <= args.draws <= MAX_DRAWS:
        raise ValueError(f"--draws must be in 2..{MAX_DRAWS} (2 for a standard deviation), got {args.draws}")
    if args.workers is not None:
        check_int_range("--workers", args.workers, 1)
    if args.adabs_images is not None:
        check_int_range("--adabs-images", args.adabs_images, 2)
    train_settings(args)
    if args.weights and not os.path.isfile(args.weights):
        raise ValueError(f"--weights {args.weights}: no such file")
    spec = resolve_arch(args)
    if args.adc_full_scale_fraction is not None:
        spec = spec.replace(**{"array.adc_full_scale_fraction": args.adc_full_scale_fraction})
    network = resolve_network(args.network)
    if tuple(network.input_shape) != DIGITS_INPUT_SHAPE or tuple(network.output_shape) != (10,):
        raise ValueError(f"network {network.name!r}: input {tuple(network.input_shape)}, output "
                         f"{tuple(network.output_shape)}; the digits experiment needs input (1, 8, 8) and output (10,)")
    if args.weights or _has_own_weights(network):
        # nothing is trained: a training option would be silently ignored
        given = given_train_flags(args)
        if given:
            why = "with --weights; it was set when training" if args.weights else (
                f"with network {network.name!r}, which carries its own weights (no training)")
            raise ValueError(f"{given[0]} has no effect {why}")
    data = load_digits_split(args.seed)
    n_adabs = args.adabs_images if args.adabs_images is not None else spec.calibration.adabs_images
    if n_adabs > len(data.x_train):
        flag = "--adabs-images" if args.adabs_images is not None else f"chip '{spec.name}' calibration.adabs_images"
        raise ValueError(f"{flag} = {n_adabs} exceeds the {len(data.x_train)} images of the training split")
    check_out_dir(args.out)
    params, info = _weights(args, network)
    opts = AccuracyOptions(draws=args.draws, digital_precision=args.digital_precision, adabs_images=args.adabs_images)
    with tqdm(total=args.draws, desc=f"accuracy {network.name} on {spec.name}", unit="draw", file=sys.stderr,
              disable=True if args.quiet else None) as bar:  # None: off when stderr is no terminal
        res = evaluate_accuracy(spec, network, params, data.x_train, data.x_test, data.y_test, opts, seed=args.seed,
                                progress=lambda d: bar.update(1), with_adc_usage=True, workers=args.workers)
    res.n_test = len(data.y_test)
    res.adabs_images = args.adabs_images if args.adabs_images is not None else spec.calibration.adabs_images
    rep = result_to_json(res, spec, network.name, info)
    md = to_markdown(rep)
    files: dict[str, bytes | str] = {"report.md": md, "report.json": json.dumps(rep, indent=2) + "\n"}
    if not args.no_plot:
        files["accuracy_vs_time.png"] = plot_png(rep)
    write_files_atomic(args.out, files)
    if not args.quiet:
        print(md, end="")
        print(f"  report: {args.out}/report.md")
    return 0
