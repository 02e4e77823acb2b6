"""``aimc drift``: parse the options, run :func:`archmodel.drift.drift_table`, print and write its table."""

from __future__ import annotations

import argparse
import json

from archmodel.drift import (
    DESIGN_FACTOR,
    MAX_DEMO_ARRAY,
    MAX_VECTORS,
    PROBE_DEVICES,
    check_drift_array,
    check_drift_options,
    drift_table,
)
from archmodel.fileio import staged_output, write_files_atomic
from mapping.cli.common import COMMANDS, add_arch, add_out, add_seed, check_out_dir, resolve_arch


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``drift`` sub-command (its options, ``func`` = :func:`run`) to ``sub``."""
    p = sub.add_parser(
        "drift",
        help=COMMANDS["drift"][1],
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
    add_out(p, required=False, help="also write drift.md and drift.json into this folder, all or nothing "
            "(staged beside it, moved into place at the end; a non-empty folder is refused unless --force)")
    p.set_defaults(func=run)


def to_markdown(res: dict) -> str:
    """The Markdown table of a :func:`~archmodel.drift.drift_table` result (printed and written as drift.md)."""
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
              f"docs/design.md gives E[(t/t0)^-nu] = {refs} for the joshi2020 model at scale 1."]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    """``aimc drift`` with parsed ``args``: 0 on success; bad input raises an AimcError (one line, exit 1)."""
    check_drift_options(args.seed, args.vectors)
    spec = resolve_arch(args)
    check_drift_array(spec)
    if args.out is not None:
        check_out_dir(args.out, args.force)
    res = drift_table(spec, args.seed, args.vectors)
    md = to_markdown(res)
    print(md, end="")
    if args.out is not None:
        with staged_output(args.out, force=args.force) as stage:
            write_files_atomic(stage, {"drift.md": md, "drift.json": json.dumps(res, indent=2) + "\n"})
    return 0
