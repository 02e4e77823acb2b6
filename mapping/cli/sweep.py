"""``aimc sweep``: load a sweep file, evaluate its points (locally or on Dask), write the table, front and report."""

from __future__ import annotations

import argparse
from pathlib import Path

from archmodel.fileio import write_files_atomic
from mapping.cli.common import COMMANDS, add_out, check_int_range, check_out_dir


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``sweep`` sub-command (its options, ``func`` = :func:`run`) to ``sub``."""
    p = sub.add_parser(
        "sweep",
        help=COMMANDS["sweep"][1],
        description=(
            "Evaluate every point of a sweep file (a base chip, networks, dotted chip parameters with lists or "
            "ranges, objectives and constraints on report totals, power_w and accuracy.<time>.<setting>.<network>; "
            "strategy grid, random, lhs or nsga2 (Optuna NSGA-II, by whole generations); optional two-stage "
            "screening (accuracy only where PPA can still put a point on the front). "
            "Writes results.csv, results.parquet, front.csv, best_<objective>.yaml "
            "(chip descriptions that aimc map/accuracy/verilog take as is), report.md and a self-contained "
            "report.html into --out, all or none. Finished tasks are kept under --out/.cache: "
            "a rerun with the same --out resumes (no --force needed) and "
            "leaves only its own outputs there."
        ),
        epilog=("examples:\n"
                "  aimc sweep examples/sweep_resnet32.yaml --out out/sweep\n"
                "  aimc sweep examples/sweep_resnet32.yaml --out out/sweep --workers 2\n"
                "  aimc sweep examples/sweep_resnet32.yaml --out out/sweep --scheduler tcp://10.0.0.5:8786"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("sweep_file", metavar="SWEEP.yaml", help="sweep file (see examples/sweep_resnet32.yaml)")
    add_out(p)
    p.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes (default: 1)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run the tasks on this Dask distributed scheduler (e.g. tcp://host:8786) instead")
    p.add_argument("--no-plots", action="store_true", help="report.html without plots")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no front on stdout")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``aimc sweep`` with parsed ``args``: 0 on success; bad input raises an AimcError (one line, exit 1)."""
    from mapping.sweep.config import load_sweep
    from mapping.sweep.report import render_outputs
    from mapping.sweep.runner import run_sweep

    check_int_range("--workers", args.workers, 1)
    sweep, base = load_sweep(args.sweep_file)
    out = Path(args.out)
    resume = (out / ".cache").is_dir()  # an earlier run's folder: its finished tasks are reused
    check_out_dir(out, force=args.force or resume)
    res = run_sweep(sweep, base, out, workers=args.workers, scheduler=args.scheduler, progress=not args.quiet)
    files = render_outputs(res, plots=not args.no_plots)
    write_files_atomic(out, files)
    if out.is_dir() and (args.force or resume):
        # the folder now holds this run's outputs only (and the cache): no file of an earlier run remains
        for old in out.iterdir():
            if old.name not in files and not old.name.startswith(".") and (old.is_file() or old.is_symlink()):
                old.unlink()
    if not args.quiet:
        md = files["report.md"]
        assert isinstance(md, str)
        print(md.split("## Infeasible points")[0].split("## Screened out")[0].rstrip())
        done = res.ran + res.cached
        print(f"  ({res.ran} evaluations run, {res.cached} from the cache: cache-hit rate "
              f"{100 * res.cached / max(1, done):.1f} %; {len(res.rows)} rows"
              + (f"; {res.screened} points screened out before accuracy" if res.sweep.screening else "") + ")")
        print(f"  report: {args.out}/report.html")
    return 0
