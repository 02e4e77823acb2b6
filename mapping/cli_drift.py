"""``aimc drift``: how a PCM array's weights drift over time, with and without GDC."""

from __future__ import annotations

import argparse
import json

import numpy as np

from archmodel.calibration import gdc_alpha, gdc_calibration_inputs, gdc_reference
from archmodel.tile import AnalogMatrix
from mapping.cli_common import add_arch, add_seed, resolve_arch, write_files_atomic

#: Evaluation times of DESIGN.md (t_inf in s): 1 s, 1 h, 1 day, 1 month (30 d), 1 year (365 d).
TIMES_S = (("1 s", 1.0), ("1 h", 3600.0), ("1 day", 86400.0), ("1 month", 2_592_000.0), ("1 year", 31_536_000.0))


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "drift",
        help="table of PCM weight drift over time (one array, with and without GDC)",
        description="Program a random Gaussian weight matrix of one array's size on the chip's PCM model "
        "and report, at 1 s, 1 h, 1 day, 1 month and 1 year after programming: the mean drift "
        "factor of high-conductance devices, the GDC factor alpha, and the relative RMS error of "
        "the MVM result (through DAC, array and ADC) without and with GDC.",
    )
    add_arch(p)
    add_seed(p)
    p.add_argument("--vectors", type=int, default=64, help="random int8 input vectors per time (default: 64)")
    p.add_argument("--out", default=None, help="also write drift.md and drift.json into this folder")
    p.set_defaults(func=run)


def drift_table(spec, seed: int = 0, n_vectors: int = 64) -> dict:
    """Pure evaluation behind ``aimc drift``; returns a JSON-ready dict."""
    if n_vectors <= 0:
        raise ValueError(f"--vectors must be > 0, got {n_vectors}")
    rng = np.random.default_rng(seed)
    k, n = spec.array.rows, spec.array.cols
    w = rng.standard_normal((k, n))
    x = rng.integers(-127, 128, size=(n_vectors, k))
    ideal = x @ w
    m = AnalogMatrix(spec, noise_seed=seed).program(w, rng)
    cal = gdc_calibration_inputs(spec.calibration.gdc_input, spec.calibration.gdc_vectors, k, seed)
    ref = gdc_reference(m, cal)
    hi = m.devices.g_target_us >= 0.9 * m.device_model.g_max_us
    g_p = m.devices.g_prog_us
    rows = []
    for label, t in TIMES_S:
        m.drift(t, rng)
        g_now = m.device_model.drift(m.devices, t, np.random.default_rng([seed, 1]))  # same model, for the factor
        factor = float(np.mean(g_now[hi] / np.maximum(g_p[hi], 1e-12)))
        alpha = gdc_alpha(m, cal, ref)
        y = m.mvm_partial_sums(x) * m.weight_units_per_code
        err = float(np.sqrt(np.mean((y - ideal) ** 2)) / np.sqrt(np.mean(ideal**2)))
        err_gdc = float(np.sqrt(np.mean((alpha * y - ideal) ** 2)) / np.sqrt(np.mean(ideal**2)))
        rows.append({"time": label, "t_inf_s": t, "mean_drift_factor_high_g": factor, "gdc_alpha": alpha,
                     "mvm_rel_rms_error_no_gdc_pct": 100 * err, "mvm_rel_rms_error_gdc_pct": 100 * err_gdc})
    return {"chip": spec.name, "spec_hash": spec.spec_hash, "seed": seed, "matrix_shape": [k, n],
            "device_model": spec.device.model, "vectors": n_vectors, "rows": rows}


def to_markdown(res: dict) -> str:
    lines = [
        f"PCM weight drift on one {res['matrix_shape'][0]}x{res['matrix_shape'][1]} array of '{res['chip']}' "
        f"(device model {res['device_model']}, seed {res['seed']}, {res['vectors']} input vectors)",
        "",
        "| time | t_inf (s) | mean drift factor, high-g devices | GDC alpha | MVM rel. RMS error, no GDC (%) "
        "| MVM rel. RMS error, GDC (%) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['time']} | {r['t_inf_s']:.0f} | {r['mean_drift_factor_high_g']:.4f} | {r['gdc_alpha']:.4f} | "
            f"{r['mvm_rel_rms_error_no_gdc_pct']:.2f} | {r['mvm_rel_rms_error_gdc_pct']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    spec = resolve_arch(args)
    res = drift_table(spec, args.seed, args.vectors)
    md = to_markdown(res)
    print(md, end="")
    if args.out:
        write_files_atomic(args.out, {"drift.md": md, "drift.json": json.dumps(res, indent=2) + "\n"})
    return 0
