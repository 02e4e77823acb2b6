"""``aimc drift``: how a PCM array's weights drift over time, with and without GDC."""

from __future__ import annotations

import argparse
import json

import numpy as np

from archmodel.analog_matrix import AnalogMatrix, device_model_from_spec
from archmodel.calibration import gdc_alpha, gdc_calibration_inputs, gdc_reference
from mapping.cli_common import (
    add_arch,
    add_seed,
    check_int_range,
    check_out_dir,
    resolve_arch,
    write_files_atomic,
)

#: Evaluation times of DESIGN.md (t_inf in s): 1 s, 1 h, 1 day, 1 month (30 d), 1 year (365 d).
TIMES_S = (("1 s", 1.0), ("1 h", 3600.0), ("1 day", 86400.0), ("1 month", 2_592_000.0), ("1 year", 31_536_000.0))

#: Devices of the drift probe: all programmed at g_max (SE of the mean factor ~1e-4).
PROBE_DEVICES = 65_536

#: Largest --vectors accepted.
MAX_VECTORS = 100_000

#: Largest array (rows or cols) this demo programs as one dense matrix.
MAX_DEMO_ARRAY = 4096

#: DESIGN.md reference: E[(t/t0)^-nu] of a device at g_max (joshi2020, t0 = 20 s).
DESIGN_FACTOR = {"1 h": 0.77580, "1 day": 0.66501}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "drift",
        help="table of PCM weight drift over time (one array, with and without GDC)",
        description="Program a random Gaussian weight matrix of one array's size on the chip's PCM model "
        "and report, at 1 s, 1 h, 1 day, 1 month and 1 year after programming: the mean drift "
        f"factor g(t)/g_P of a probe of {PROBE_DEVICES:,} devices programmed at g_max, the GDC factor "
        "alpha, and the relative RMS error of the MVM result (through DAC, array and ADC) without "
        f"and with GDC. Arrays larger than {MAX_DEMO_ARRAY} x {MAX_DEMO_ARRAY} are refused.",
    )
    add_arch(p)
    add_seed(p)
    p.add_argument("--vectors", type=int, default=64,
                   help=f"random int8 input vectors per time, 1..{MAX_VECTORS} (default: 64)")
    p.add_argument("--out", default=None, help="also write drift.md and drift.json into this folder")
    p.set_defaults(func=run)


def check_drift_args(spec, seed: int, n_vectors: int) -> None:
    """Reject bad options and oversized arrays before any work (one-line ValueError)."""
    check_int_range("--seed", seed, 0)
    check_int_range("--vectors", n_vectors, 1, MAX_VECTORS)
    a = spec.array
    if a.rows > MAX_DEMO_ARRAY or a.cols > MAX_DEMO_ARRAY:
        raise ValueError(
            f"chip '{spec.name}': array {a.rows} x {a.cols} is too big for aimc drift "
            f"(at most {MAX_DEMO_ARRAY} x {MAX_DEMO_ARRAY})"
        )


def drift_table(spec, seed: int = 0, n_vectors: int = 64) -> dict:
    """Pure evaluation behind ``aimc drift``; returns a JSON-ready dict.

    Two independent experiments share the times of :data:`TIMES_S`:

    - drift probe: :data:`PROBE_DEVICES` devices programmed at ``g_max`` with the
      chip's device model (programming noise, drift and read noise as configured);
      per time, the mean and its standard error of ``g(t) / g_P``. With the
      joshi2020 model at scale 1 its expectation is DESIGN.md's
      ``E[(t/t0)^-nu]`` = 0.77580 at 1 h and 0.66501 at 1 day (read noise has
      zero mean).
    - MVM: a Gaussian weight matrix of one array's size, programmed, drifted and
      read through DAC, array and ADC with ``n_vectors`` random int8 inputs,
      without and with GDC.

    Raises
    ------
    ValueError
        Bad ``seed`` / ``n_vectors`` or an array larger than :data:`MAX_DEMO_ARRAY`.
    """
    check_drift_args(spec, seed, n_vectors)
    rng = np.random.default_rng(seed)
    k, n = spec.array.rows, spec.array.cols
    w = rng.standard_normal((k, n))
    x = rng.integers(-127, 128, size=(n_vectors, k))
    ideal = x @ w
    m = AnalogMatrix(spec, noise_seed=seed).program(w, rng)
    cal = gdc_calibration_inputs(spec.calibration.gdc_input, spec.calibration.gdc_vectors, k, seed)
    ref = gdc_reference(m, cal)
    model = device_model_from_spec(spec)
    probe_rng = np.random.default_rng([seed, 2])
    probe = model.program(np.full(PROBE_DEVICES, model.g_max_us), probe_rng)
    g_p = np.maximum(probe.g_prog_us, 1e-12)
    rows = []
    for label, t in TIMES_S:
        m.drift(t, rng)
        factor = model.drift(probe, t, probe_rng) / g_p
        alpha = gdc_alpha(m, cal, ref)
        y = m.mvm_partial_sums(x) * m.weight_units_per_code
        err = float(np.sqrt(np.mean((y - ideal) ** 2)) / np.sqrt(np.mean(ideal**2)))
        err_gdc = float(np.sqrt(np.mean((alpha * y - ideal) ** 2)) / np.sqrt(np.mean(ideal**2)))
        rows.append({"time": label, "t_inf_s": t,
                     "mean_drift_factor_g_max": float(np.mean(factor)),
                     "mean_drift_factor_g_max_se": float(np.std(factor, ddof=1) / np.sqrt(factor.size)),
                     "gdc_alpha": alpha,
                     "mvm_rel_rms_error_no_gdc_pct": 100 * err, "mvm_rel_rms_error_gdc_pct": 100 * err_gdc})
    return {"chip": spec.name, "spec_hash": spec.spec_hash, "seed": seed, "matrix_shape": [k, n],
            "device_model": spec.device.model, "vectors": n_vectors, "probe_devices": PROBE_DEVICES,
            "rows": rows}


def to_markdown(res: dict) -> str:
    lines = [
        f"PCM weight drift on one {res['matrix_shape'][0]}x{res['matrix_shape'][1]} array of '{res['chip']}' "
        f"(device model {res['device_model']}, seed {res['seed']}, {res['vectors']} input vectors; "
        f"drift factor from a probe of N = {res['probe_devices']:,} devices programmed at g_max)",
        "",
        "| time | t_inf (s) | mean drift factor g(t)/g_P at g_max | GDC alpha | MVM rel. RMS error, no GDC (%) "
        "| MVM rel. RMS error, GDC (%) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in res["rows"]:
        lines.append(
            f"| {r['time']} | {r['t_inf_s']:.0f} | {r['mean_drift_factor_g_max']:.4f} | {r['gdc_alpha']:.4f} | "
            f"{r['mvm_rel_rms_error_no_gdc_pct']:.2f} | {r['mvm_rel_rms_error_gdc_pct']:.2f} |"
        )
    refs = ", ".join(f"{v:.5f} at {k}" for k, v in DESIGN_FACTOR.items())
    lines += ["", f"Drift factor: mean of g(t)/g_P over the probe (SE ~ "
              f"{max(r['mean_drift_factor_g_max_se'] for r in res['rows']):.1e}); "
              f"DESIGN.md gives E[(t/t0)^-nu] = {refs} for the joshi2020 model at scale 1."]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    check_int_range("--seed", args.seed, 0)
    check_int_range("--vectors", args.vectors, 1, MAX_VECTORS)
    spec = resolve_arch(args)
    check_drift_args(spec, args.seed, args.vectors)
    if args.out is not None:
        check_out_dir(args.out)
    res = drift_table(spec, args.seed, args.vectors)
    md = to_markdown(res)
    print(md, end="")
    if args.out:
        write_files_atomic(args.out, {"drift.md": md, "drift.json": json.dumps(res, indent=2) + "\n"})
    return 0
