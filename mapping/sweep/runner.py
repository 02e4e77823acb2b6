"""Running a sweep: points → keyed pure tasks → cached results → one table, its Pareto front, the best chips.

Execution (docs/design.md, "Design-space exploration"):

1. Every point is the base chip with its parameter values (``ChipSpec.replace``);
   a value the chip description refuses makes the point infeasible (a row with
   the reason).
2. Tasks, each keyed by what it depends on (:mod:`mapping.sweep.tasks`): one
   *train* task per accuracy network; one *PPA* task per (chip description,
   network) keyed by ``spec_hash``; one *accuracy* task per distinct accuracy
   sub-description (:func:`mapping.sweep.tasks.accuracy_key`), so points that
   differ only in fields accuracy does not read share one evaluation.
3. Every finished task is stored at once, atomically, under ``OUT/.cache/``
   (``<kind>-<key>.pkl``). A rerun with the same ``--out`` loads what is there
   and runs only the rest (resume); Ctrl-C leaves only whole cache files.
4. Tasks run in-process (1 worker), in a process pool (``workers`` > 1) or on
   a Dask distributed cluster (``scheduler`` address); a task's result does
   not depend on where it ran, so the table is identical.
"""

from __future__ import annotations

import hashlib
import json
import math
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from archmodel.errors import AimcError
from archmodel.fileio import write_files_atomic
from archmodel.spec import ChipSpec
from mapping.sweep.config import SweepFile, sweep_points
from mapping.sweep.pareto import pareto_front
from mapping.sweep.tasks import accuracy_key, accuracy_task, ppa_task, train_task

__all__ = ["SweepResult", "run_sweep", "CACHE_DIR", "accuracy_label"]

#: Folder of the task results inside ``--out``.
CACHE_DIR = ".cache"


@dataclass
class SweepResult:
    """Outcome of :func:`run_sweep`.

    Members
    -------
    sweep : SweepFile
    rows : list of dict
        One per point, in point order: ``point``, the varied keys, ``feasible``,
        ``reason``, every PPA metric, ``<accuracy metric>`` (mean, fraction) and
        ``<accuracy metric>.se``.
    front : list of int
        Row indices of the Pareto front over the objectives (feasible rows).
    best : dict
        Objective metric -> row index of its best feasible point.
    specs : dict
        Row index -> ChipSpec of the point (valid descriptions only).
    pids : set of int
        Process ids that ran tasks in this run (not the cached ones).
    ran, cached : int
        Tasks run now / loaded from the cache.
    """

    sweep: SweepFile
    rows: list[dict[str, Any]]
    front: list[int]
    best: dict[str, int]
    specs: dict[int, ChipSpec]
    pids: set[int] = field(default_factory=set)
    ran: int = 0
    cached: int = 0


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Executor:
    """Runs (fn, args) tasks in-process, in a process pool, or on Dask; yields (tag, result) as they finish."""

    def __init__(self, workers: int, scheduler: str | None) -> None:
        self.workers, self.scheduler = workers, scheduler
        self._pool: Any = None
        self._client: Any = None

    def __enter__(self) -> _Executor:
        if self.scheduler:
            from dask.distributed import Client

            try:
                self._client = Client(self.scheduler, timeout=30)
            except OSError as exc:
                raise AimcError(f"--scheduler {self.scheduler}: cannot connect ({exc})") from None
        elif self.workers > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            ctx = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()

    def run(self, jobs: list[tuple[Any, Callable[..., Any], tuple[Any, ...]]]):
        if not jobs:
            return
        if self._client is not None:
            from dask.distributed import as_completed

            futs = {self._client.submit(fn, *args, pure=False): tag for tag, fn, args in jobs}
            for fut in as_completed(futs):
                yield futs[fut], fut.result()
        elif self._pool is not None:
            from concurrent.futures import as_completed as cf_completed

            futs = {self._pool.submit(fn, *args): tag for tag, fn, args in jobs}
            for fut in cf_completed(futs):
                yield futs[fut], fut.result()
        else:
            for tag, fn, args in jobs:
                yield tag, fn(*args)


def run_sweep(sweep: SweepFile, base: ChipSpec, out: Path, *, workers: int = 1, scheduler: str | None = None,
              progress: bool = False, after_task: Callable[[int], None] | None = None) -> SweepResult:
    """Evaluate every point of ``sweep`` (see the module docstring); writes only ``OUT/.cache/``.

    Parameters
    ----------
    after_task : callable, optional
        Called with the number of tasks finished in this run after each one
        (tests interrupt a run with it).

    Raises
    ------
    AimcError
        Cannot reach the Dask scheduler. A point that does not work is a row
        with ``feasible = False`` and its reason, never an exception.
    """
    out = Path(out)
    cache = out / CACHE_DIR
    points = sweep_points(sweep)
    acc_metrics = sweep.accuracy_metrics()
    acc_nets = list(dict.fromkeys(m.network for m in acc_metrics))
    times = {n: sorted({m.time for m in acc_metrics if m.network == n}) for n in acc_nets}
    settings = {n: sorted({m.setting for m in acc_metrics if m.network == n}) for n in acc_nets}
    a = sweep.accuracy
    results: dict[str, Any] = {}
    stats = {"ran": 0, "cached": 0}
    pids: set[int] = set()

    def load(name: str) -> Any:
        p = cache / f"{name}.pkl"
        if p.is_file():
            with open(p, "rb") as f:
                return pickle.load(f)
        return None

    def run_phase(executor: _Executor, jobs: list[tuple[str, Callable[..., Any], tuple[Any, ...]]], desc: str) -> None:
        todo = []
        for name, fn, args in jobs:
            if name in results:
                continue
            got = load(name)
            if got is not None:
                results[name] = got
                stats["cached"] += 1
            else:
                todo.append((name, fn, args))
        from tqdm import tqdm

        failed = 0
        t0 = time.monotonic()
        with tqdm(total=len(todo), desc=desc, unit="task", file=sys.stderr, disable=not progress or not todo) as bar:
            for name, res in executor.run(todo):
                pid = res.pop("pid", None)
                if pid is not None:
                    pids.add(pid)
                results[name] = res
                write_files_atomic(cache, {f"{name}.pkl": pickle.dumps(res)})
                stats["ran"] += 1
                failed += not res.get("ok", False)
                bar.update(1)
                bar.set_postfix(done=bar.n, failed=failed, elapsed=f"{time.monotonic() - t0:.0f}s")
                if after_task is not None:
                    after_task(stats["ran"])

    # ---- points -> chip descriptions
    specs: dict[int, ChipSpec] = {}
    reasons: dict[int, str] = {}
    for i, p in enumerate(points):
        try:
            specs[i] = base.replace(**p)
        except (AimcError, ValueError) as exc:
            reasons[i] = "invalid chip: " + str(exc).splitlines()[0]

    with _Executor(workers, scheduler) as ex:
        train_names = {n: f"train-{_key(n, sweep.seed, a.noise, a.epochs)}" for n in acc_nets}
        run_phase(ex, [(train_names[n], train_task, (n, sweep.seed, a.noise, a.epochs)) for n in acc_nets], "train")
        jobs: list[tuple[str, Callable[..., Any], tuple[Any, ...]]] = []
        ppa_names: dict[tuple[int, str], str] = {}
        acc_names: dict[tuple[int, str], str] = {}
        key_memo: dict[tuple[str, str], str] = {}
        for i, spec in specs.items():
            sj = spec.model_dump(mode="json")
            for n in sweep.networks:
                name = f"ppa-{_key(spec.spec_hash, n, sweep.map.replicate, sweep.map.max_chips)}"
                ppa_names[(i, n)] = name
                jobs.append((name, ppa_task, (sj, n, sweep.map.replicate, sweep.map.max_chips)))
            for n in acc_nets:
                tr = results[train_names[n]]
                if not tr.get("ok"):
                    continue
                memo = (spec.spec_hash, n)
                if memo not in key_memo:
                    key_memo[memo] = "acc-" + accuracy_key(spec, n, train_names[n], sweep.seed, times[n], settings[n],
                                                           a.draws)[0]
                name = key_memo[memo]
                acc_names[(i, n)] = name
                jobs.append((name, accuracy_task, (sj, n, tr["npz"], sweep.seed, times[n], settings[n], a.draws)))
        uniq = list({name: (name, fn, args) for name, fn, args in jobs}.values())
        run_phase(ex, uniq, "sweep")

    # ---- the table
    single = len(sweep.networks) == 1
    rows: list[dict[str, Any]] = []
    for i, p in enumerate(points):
        row: dict[str, Any] = {"point": i, **p, "feasible": i in specs, "reason": reasons.get(i, "")}
        if i in specs:
            for n in sweep.networks:
                res = results[ppa_names[(i, n)]]
                if not res["ok"]:
                    row["feasible"], row["reason"] = False, f"{n}: {res['reason']}"
                    continue
                for k, v in res["totals"].items():
                    row[k if single else f"{k}.{n}"] = v
            for m in acc_metrics:
                name = acc_names.get((i, m.network))
                res = results.get(name) if name else results[train_names[m.network]]
                metric = f"accuracy.{m.time}.{m.setting}.{m.network}"
                if res is None or not res.get("ok"):
                    row["feasible"] = False
                    row["reason"] = row["reason"] or f"{metric}: {res.get('reason') if res else 'not evaluated'}"
                    continue
                mean, se = res["acc"][f"{m.time}|{m.setting}"]
                row[metric], row[metric + ".se"] = mean, se
        for c in sweep.constraints:
            v = row.get(c.metric, math.nan)
            if row["feasible"] and not ((c.min is None or v >= c.min) and (c.max is None or v <= c.max)):
                bound = " and ".join(x for x in (f">= {c.min}" if c.min is not None else "",
                                                 f"<= {c.max}" if c.max is not None else "") if x)
                row["feasible"], row["reason"] = False, f"constraint {c.metric} {bound} violated ({v:.6g})"
        rows.append(row)
    goals = [o.goal for o in sweep.objectives]
    feas = [i for i, r in enumerate(rows) if r["feasible"]]
    vals = [[float(rows[i].get(o.metric, math.nan)) for o in sweep.objectives] for i in feas]
    front = [feas[j] for j in pareto_front(vals, goals)]
    best: dict[str, int] = {}
    for o in sweep.objectives:
        # among the front first (ties on this objective go to the point better in the others), then all feasible
        cands = [i for i in front if not math.isnan(float(rows[i].get(o.metric, math.nan)))] or \
            [i for i in feas if not math.isnan(float(rows[i].get(o.metric, math.nan)))]
        if cands:
            sgn = 1.0 if o.goal == "min" else -1.0
            best[o.metric] = min(cands, key=lambda i, m=o.metric, s=sgn: (s * rows[i][m], i))  # ties: first point
    return SweepResult(sweep, rows, front, best, {i: specs[i] for i in specs}, pids, stats["ran"], stats["cached"])


def accuracy_label(metric: str) -> str:
    """``accuracy.1_day.digital_first_last/gdc.digits-cnn`` -> ``accuracy: digits-cnn (1 day, digital_first_last/gdc)``."""
    _, t, s, n = metric.split(".", 3)
    return f"accuracy: {n} ({t.replace('_', ' ')}, {s})"

