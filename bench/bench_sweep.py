"""Benchmark: design points per minute of ``aimc sweep`` (PPA), and accuracy points per minute.

Issue 17 target: at least 10,000 PPA design points per minute for
``resnet32-joshi2020`` on 2 cores. The grid gives every point a different
placement: ``array.rows`` × ``array.cols`` (128…1024 step 64) × ``tile_grid.rows``
× ``tile_grid.cols`` (6…12) on the fig11 chip, 11,025 points. Each run starts
from an empty results folder (cache-hit rate 0 %) and ends with the outputs
written (results.csv, results.parquet, front.csv, report.md, report.html
without plots): the rate counts rows written. Runs: 1 worker, 2 workers, a
Dask LocalCluster of 2 worker processes, and a rerun from the cache (100 %
hits). Where the time goes: mapping and network import (summed over the
workers' batches), chip descriptions and keys (parent), storing results in
the cache, writing the outputs, and the rest of the wall time (process
start-up, pickling, scheduling: "overhead" = wall − prep − cache − write −
(map + import) / workers). ``cpu`` is the CPU time of the PPA tasks
(``time.process_time``) and ``pts/cpu-min`` the points per CPU-minute: on a
machine shared with other jobs the wall-clock rate falls with the load, the
CPU rate does not (2 idle cores would give about twice it, less the parent's
share).

Accuracy points per minute: ``digits-cnn``, a few points of distinct accuracy
sub-descriptions (``array.adc_bits``), 3 draws, the training excluded.

    python bench/bench_sweep.py [--points N] [--no-dask]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from archmodel.fileio import write_files_atomic
from mapping.sweep.config import load_sweep
from mapping.sweep.report import render_outputs
from mapping.sweep.runner import run_sweep

ACC = "accuracy.1_day.digital_first_last/gdc.digits-cnn"


def _grid(tmp: Path, points: int) -> Path:
    side = list(range(128, 1025, 64))
    grid = list(range(6, 13))
    n_cols = max(1, min(len(grid), -(-points // (len(side) ** 2 * len(grid)))))
    data = {"name": "bench", "base": "fig11", "networks": ["resnet32-joshi2020"],
            "parameters": {"array.rows": side, "array.cols": side, "tile_grid.rows": grid,
                           "tile_grid.cols": grid[:n_cols]},
            "objectives": [{"metric": "energy_per_inference_pj", "goal": "min"},
                           {"metric": "latency_per_inference_ns", "goal": "min"},
                           {"metric": "area_mm2", "goal": "min"}]}
    p = tmp / "grid.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _run(label: str, sweep_file: Path, out: Path, workers: int = 1, scheduler: str | None = None) -> None:
    sweep, base = load_sweep(sweep_file)
    t0 = time.perf_counter()
    res = run_sweep(sweep, base, out, workers=workers, scheduler=scheduler)
    t1 = time.perf_counter()
    files = render_outputs(res, plots=False)
    write_files_atomic(out, files)
    t2 = time.perf_counter()
    rows = len(str(files["results.csv"]).splitlines()) - 1
    feasible = sum(r["feasible"] for r in res.rows)
    t = res.timings
    wall, write = t2 - t0, t2 - t1
    done = res.ran + res.cached
    n_workers = 2 if scheduler else workers
    overhead = (t1 - t0) - t["prep"] - t["cache"] - (t["map"] + t["import"]) / n_workers
    print(f"{label:<22} {rows:>6} {feasible:>6} {wall:>7.1f} {60 * rows / wall:>11,.0f} "
          f"{100 * res.cached / max(1, done):>6.1f} {int(t['tasks']):>5} {t['map']:>7.1f} {t['import']:>6.2f} "
          f"{t['prep']:>6.1f} {t['cache']:>6.2f} {write:>6.1f} {overhead:>8.1f} {t['cpu']:>6.1f} "
          f"{60 * res.ran / t['cpu'] if t['cpu'] else float('nan'):>12,.0f}")


def _accuracy(tmp: Path, n: int) -> None:
    data = {"name": "acc", "base": "fig11", "networks": ["digits-cnn"],
            "parameters": {"array.adc_bits": list(range(4, 4 + n))},
            "objectives": [{"metric": "energy_per_inference_pj", "goal": "min"}, {"metric": ACC, "goal": "max"}],
            "accuracy": {"draws": 3, "epochs": 10, "noise": 0.05}}
    p = tmp / "acc.yaml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    sweep, base = load_sweep(p)
    t0 = time.perf_counter()
    res = run_sweep(sweep, base, tmp / "acc")
    wall = time.perf_counter() - t0
    acc_s = res.timings["accuracy"]
    print(f"accuracy digits-cnn (fig11, 3 draws, 1 day, digital_first_last/gdc): {n} points of distinct "
          f"sub-descriptions in {acc_s:.1f} s = {60 * n / acc_s:.1f} accuracy points per minute "
          f"(whole run with training {wall:.1f} s)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=10_000, help="grid size (rounded up to whole tile_grid.cols values)")
    ap.add_argument("--no-dask", action="store_true")
    ap.add_argument("--accuracy-points", type=int, default=4)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="aimc-bench-sweep-"))
    try:
        f = _grid(tmp, args.points)
        print("PPA of resnet32-joshi2020 on fig11, grid of array.rows x array.cols x tile_grid (distinct placements); "
              "times in s, map/import summed over workers")
        print(f"{'run':<22} {'rows':>6} {'feas.':>6} {'wall':>7} {'points/min':>11} {'hit %':>6} {'tasks':>5} "
              f"{'map':>7} {'import':>6} {'prep':>6} {'cache':>6} {'write':>6} {'overhead':>8} {'cpu':>6} {'pts/cpu-min':>12}")
        _run("1 worker", f, tmp / "w1", workers=1)
        _run("2 workers (pool)", f, tmp / "w2", workers=2)
        if not args.no_dask:
            from dask.distributed import LocalCluster

            with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
                _run("Dask LocalCluster x2", f, tmp / "dask", scheduler=cluster.scheduler_address)
        _run("rerun from cache", f, tmp / "w2", workers=2)
        if args.accuracy_points:
            _accuracy(tmp, args.accuracy_points)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
