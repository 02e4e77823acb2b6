"""Running a sweep: points → keyed pure tasks → cached results → one table, its Pareto front, the best chips.

Execution (docs/design.md, "Design-space exploration"):

1. Every point is the base chip with its parameter values (``ChipSpec.replace``);
   a value the chip description refuses makes the point infeasible (a row with
   the reason).
2. Tasks, each keyed by what it depends on (:mod:`mapping.sweep.tasks`): one
   *train* task per accuracy network; one *PPA* task per (chip description,
   network) keyed by the base description's ``spec_hash`` and the point; one *accuracy* task per distinct accuracy
   sub-description (:func:`mapping.sweep.tasks.accuracy_key`), so points that
   differ only in fields accuracy does not read share one evaluation.
3. Every finished task is stored at once, atomically, under ``OUT/.cache/``
   (``<kind>-<key>.pkl``). A rerun with the same ``--out`` loads what is there
   and runs only the rest (resume); Ctrl-C leaves only whole cache files.
4. Tasks run in-process (1 worker), in a process pool (``workers`` > 1) or on
   a Dask distributed cluster (``scheduler`` address); a task's result does
   not depend on where it ran, so the table is identical.
5. PPA evaluations are batched: one task maps ``batch`` chip descriptions
   (default: enough tasks for 8 per worker, at most 256 evaluations each), so
   process and Dask overheads are paid per batch, and a worker loads each
   network once (:func:`mapping.sweep.tasks.ppa_batch_task`). A batch is one
   cache file ``ppab-<key>.pkl`` holding its evaluations by key.
6. Two stages: PPA for every point first (and the PPA constraints); then, when
   the sweep has ``screening``, accuracy only on the screened-in points
   (:func:`screen`); the others keep NaN accuracy and a ``screened_out`` reason.
7. ``nsga2``: Optuna's NSGA-II sampler asks a whole generation, the generation
   is evaluated like a grid (steps 1–6 for its points), and the values are told
   in point order, so the trials — and the table — do not depend on the
   executor or the number of workers. Infeasible trials are told as failed.
   ``compare_exhaustive`` also evaluates the grid (sharing the cache) and
   compares the two fronts by hypervolume (:func:`compare_fronts`).
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

import numpy as np

from archmodel.errors import AimcError
from archmodel.fileio import write_files_atomic
from archmodel.spec import ChipSpec
from mapping.sweep.config import SweepFile, grid_points, parameter_values, sweep_points
from mapping.sweep.pareto import normalised_hypervolumes, pareto_front
from mapping.sweep.tasks import accuracy_key, accuracy_task, ppa_batch_task, train_task

__all__ = ["SweepResult", "run_sweep", "CACHE_DIR", "accuracy_label", "screen", "compare_fronts", "MAX_BATCH"]

#: Largest automatic PPA batch (evaluations per task).
MAX_BATCH = 256
#: Automatic batching aims at this many PPA tasks per worker (load balance vs per-task overhead).
TASKS_PER_WORKER = 8

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
        Row index -> ChipSpec of the point, for the front and the best points.
    pids : set of int
        Process ids that ran tasks in this run (not the cached ones).
    ran, cached : int
        Evaluations (PPA per point and network, training, accuracy) run now / loaded from the cache.
    timings : dict
        Seconds: ``prep`` (chip descriptions and keys, parent), ``import`` and ``map`` (summed over the
        workers' PPA batches), ``cache`` (storing results, parent), ``accuracy`` (wall-clock of the accuracy
        phases), ``wall`` (all of :func:`run_sweep`), ``cpu`` (CPU time of the PPA tasks, summed); ``tasks``: PPA
        tasks run.
    screened : int
        Feasible points whose accuracy was not evaluated (two-stage screening).
    comparison : dict or None
        ``compare_exhaustive``: :func:`compare_fronts` of the optimizer's rows and the grid's.
    """

    sweep: SweepFile
    rows: list[dict[str, Any]]
    front: list[int]
    best: dict[str, int]
    specs: dict[int, ChipSpec]
    pids: set[int] = field(default_factory=set)
    ran: int = 0
    cached: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    screened: int = 0
    comparison: dict[str, Any] | None = None


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class _Executor:
    """Runs (fn, args) tasks in-process, in a process pool, or on Dask; yields (tag, result) as they finish."""

    def __init__(self, workers: int, scheduler: str | None) -> None:
        self.workers, self.scheduler = workers, scheduler
        self._pool: Any = None
        self._client: Any = None

    @property
    def n_workers(self) -> int:
        """Workers the tasks spread over (Dask: the cluster's workers when connected)."""
        if self._client is not None:
            return max(1, len(self._client.scheduler_info().get("workers", {})))
        return self.workers

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


class _Evaluator:
    """Evaluates lists of points through one executor, sharing the results cache (see the module docstring)."""

    def __init__(self, sweep: SweepFile, base: ChipSpec, cache: Path, ex: _Executor, progress: bool,
                 after_task: Callable[[int], None] | None) -> None:
        self.sweep, self.base, self.cache, self.ex = sweep, base, cache, ex
        self.progress, self.after_task = progress, after_task
        self.acc_metrics = sweep.accuracy_metrics()
        self.acc_nets = list(dict.fromkeys(m.network for m in self.acc_metrics))
        self.times = {n: sorted({m.time for m in self.acc_metrics if m.network == n}) for n in self.acc_nets}
        self.settings = {n: sorted({m.setting for m in self.acc_metrics if m.network == n}) for n in self.acc_nets}
        self.results: dict[str, Any] = {}
        self.stats = {"ran": 0, "cached": 0}
        self.timings = {"prep": 0.0, "import": 0.0, "map": 0.0, "cache": 0.0, "accuracy": 0.0, "tasks": 0.0,
                        "cpu": 0.0}
        self.pids: set[int] = set()
        self.specs: dict[int, ChipSpec] = {}
        self.points: dict[int, dict[str, Any]] = {}
        self.key_memo: dict[tuple[str, str], str] = {}
        self.train_names: dict[str, str] = {}
        self._batches: dict[str, Any] = {}  # evaluation key -> result, from ppab-*.pkl files
        for f in sorted(cache.glob("ppab-*.pkl")) if cache.is_dir() else []:
            with open(f, "rb") as fh:
                self._batches.update(pickle.load(fh))

    # ---------------------------------------------------------------- tasks
    def _load(self, name: str) -> Any:
        if name in self._batches:
            return self._batches[name]
        p = self.cache / f"{name}.pkl"
        if p.is_file():
            with open(p, "rb") as f:
                return pickle.load(f)
        return None

    def _store(self, files: dict[str, Any]) -> None:
        t = time.perf_counter()
        write_files_atomic(self.cache, {k: pickle.dumps(v) for k, v in files.items()})
        self.timings["cache"] += time.perf_counter() - t

    def _not_cached(self, entries: dict[str, tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The entries (keyed by task name, the last of duplicate names wins) whose result is neither
        in memory nor in the cache folder; cached results are loaded into ``self.results`` and counted."""
        todo = []
        for name, entry in entries.items():
            if name in self.results:
                continue
            got = self._load(name)
            if got is not None:
                self.results[name] = got
                self.stats["cached"] += 1
            else:
                todo.append(entry)
        return todo

    def _finished(self, n: int) -> None:
        self.stats["ran"] += n
        if self.after_task is not None:
            self.after_task(self.stats["ran"])

    def run_phase(self, jobs: list[tuple[str, Callable[..., Any], tuple[Any, ...]]], desc: str) -> None:
        """Run single-evaluation tasks (train, accuracy) not in the cache; store each as it finishes."""
        todo = self._not_cached({j[0]: j for j in jobs})
        from tqdm import tqdm

        failed = 0
        t0 = time.monotonic()
        with tqdm(total=len(todo), desc=desc, unit="task", file=sys.stderr,
                  disable=True if (not self.progress or not todo) else None) as bar:  # None: off when stderr is no terminal
            for name, res in self.ex.run(todo):
                pid = res.pop("pid", None)
                if pid is not None:
                    self.pids.add(pid)
                self.results[name] = res
                self._store({f"{name}.pkl": res})
                failed += not res.get("ok", False)
                bar.update(1)
                bar.set_postfix(done=bar.n, failed=failed, elapsed=f"{time.monotonic() - t0:.0f}s")
                self._finished(1)

    def run_ppa(self, items: list[tuple[str, dict[str, Any]]], network: str) -> None:
        """PPA evaluations ``[(key, point)]`` of one network, batched (see the module docstring)."""
        todo = self._not_cached({k: (k, sj) for k, sj in items})
        if not todo:
            return
        size = self.sweep.batch or max(1, min(MAX_BATCH, math.ceil(len(todo) / (TASKS_PER_WORKER * self.ex.n_workers))))
        m = self.sweep.map
        base_json = self.base.model_dump(mode="json")
        jobs = [(k, ppa_batch_task, (base_json, todo[k:k + size], network, m.replicate, m.max_chips))
                for k in range(0, len(todo), size)]
        from tqdm import tqdm

        with tqdm(total=len(todo), desc=f"PPA {network}", unit="point", file=sys.stderr,
                  disable=True if not self.progress else None) as bar:  # None: off when stderr is no terminal
            for _, res in self.ex.run(jobs):
                self.pids.add(res["pid"])
                self.timings["import"] += res["t_import_s"]
                self.timings["map"] += res["t_map_s"]
                self.timings["cpu"] += res["cpu_s"]
                self.timings["tasks"] += 1
                batch = res["results"]
                self.results.update(batch)
                self._store({f"ppab-{_key(sorted(batch))}.pkl": batch})
                bar.update(len(batch))
                self._finished(len(batch))

    def train(self) -> None:
        a = self.sweep.accuracy
        self.train_names = {n: f"train-{_key(n, self.sweep.seed, a.noise, a.epochs)}" for n in self.acc_nets}
        self.run_phase([(self.train_names[n], train_task, (n, self.sweep.seed, a.noise, a.epochs))
                        for n in self.acc_nets], "train")

    # ---------------------------------------------------------------- stages
    def ppa_rows(self, points: list[dict[str, Any]], start: int) -> list[dict[str, Any]]:
        """Stage 1: rows ``start, start+1, ...`` with PPA metrics and the PPA constraints applied."""
        sweep = self.sweep
        t = time.perf_counter()
        names: dict[tuple[int, str], str] = {}
        items: dict[str, list[tuple[str, dict[str, Any]]]] = {n: [] for n in sweep.networks}
        base_hash = self.base.spec_hash
        for j, p in enumerate(points):
            i = start + j
            self.points[i] = p
            for n in sweep.networks:
                # key: the base description's hash and the point (the chip is built by the worker)
                name = f"ppa-{_key(base_hash, sorted(p.items()), n, sweep.map.replicate, sweep.map.max_chips)}"
                names[(i, n)] = name
                if name not in self.results:
                    items[n].append((name, p))
        self.timings["prep"] += time.perf_counter() - t
        for n in sweep.networks:
            self.run_ppa(items[n], n)
        single = len(sweep.networks) == 1
        rows = []
        for j, p in enumerate(points):
            i = start + j
            row: dict[str, Any] = {"point": i, **p, "feasible": True, "reason": ""}
            for n in sweep.networks:
                res = self.results[names[(i, n)]]
                if res.get("invalid"):
                    row["feasible"], row["reason"] = False, res["reason"]
                    break
                if not res["ok"]:
                    row["feasible"], row["reason"] = False, f"{n}: {res['reason']}"
                    continue
                for k, v in res["totals"].items():
                    row[k if single else f"{k}.{n}"] = v
            _constrain(row, [c for c in sweep.constraints if not c.metric.startswith("accuracy.")])
            rows.append(row)
        return rows

    def add_accuracy(self, rows: list[dict[str, Any]], which: list[int]) -> None:
        """Stage 2: accuracy of the rows at positions ``which`` (feasible ones), then the accuracy constraints."""
        if not self.acc_metrics:
            return
        t0 = time.perf_counter()
        sweep, a = self.sweep, self.sweep.accuracy
        acc_names: dict[tuple[int, str], str] = {}
        jobs = []
        for r in which:
            i = rows[r]["point"]
            if not rows[r]["feasible"]:
                continue
            spec = self.spec(i)
            sj = None
            for n in self.acc_nets:
                tr = self.results[self.train_names[n]]
                if not tr.get("ok"):
                    continue
                memo = (spec.spec_hash, n)
                if memo not in self.key_memo:
                    self.key_memo[memo] = "acc-" + accuracy_key(spec, n, self.train_names[n], sweep.seed, self.times[n],
                                                                self.settings[n], a.draws)[0]
                name = self.key_memo[memo]
                acc_names[(r, n)] = name
                sj = sj or spec.model_dump(mode="json")
                jobs.append((name, accuracy_task, (sj, n, tr["npz"], sweep.seed, self.times[n], self.settings[n],
                                                   a.draws)))
        self.run_phase(jobs, "accuracy")
        for r in which:
            row = rows[r]
            if not row["feasible"]:
                continue
            for m in self.acc_metrics:
                name = acc_names.get((r, m.network))
                res = self.results.get(name) if name else self.results[self.train_names[m.network]]
                metric = f"accuracy.{m.time}.{m.setting}.{m.network}"
                if res is None or not res.get("ok"):
                    row["feasible"] = False
                    row["reason"] = row["reason"] or f"{metric}: {res.get('reason') if res else 'not evaluated'}"
                    continue
                mean, se = res["acc"][f"{m.time}|{m.setting}"]
                row[metric], row[metric + ".se"] = mean, se
            _constrain(row, [c for c in sweep.constraints if c.metric.startswith("accuracy.")])
        self.timings["accuracy"] += time.perf_counter() - t0

    def spec(self, i: int) -> ChipSpec:
        """The chip description of point ``i`` (built on demand: the PPA workers build their own)."""
        if i not in self.specs:
            self.specs[i] = self.base.replace(**self.points[i])
        return self.specs[i]

    def accuracy_parameters(self) -> list[str]:
        """The swept parameters the accuracy evaluation reads on the base chip (its recorded sub-description)."""
        a, read = self.sweep.accuracy, set()
        for n in self.acc_nets:
            read |= set(accuracy_key(self.base, n, "-", self.sweep.seed, self.times[n], self.settings[n], a.draws)[1])
        return [k for k in self.sweep.parameters
                if any(k == p or k.startswith(p + ".") or p.startswith(k + ".") for p in read)]

    def evaluate(self, points: list[dict[str, Any]], start: int, accuracy: bool) -> list[dict[str, Any]]:
        rows = self.ppa_rows(points, start)
        if accuracy:
            self.add_accuracy(rows, list(range(len(rows))))
        return rows

    def screen_and_finish(self, rows: list[dict[str, Any]]) -> int:
        """Stage 2 for ``rows`` (all, or the screened-in ones); returns how many were screened out."""
        if not self.acc_metrics:
            return 0
        if self.sweep.screening is None:
            self.add_accuracy(rows, list(range(len(rows))))
            return 0
        keep, why = screen(self.sweep, rows, self.accuracy_parameters())
        self.add_accuracy(rows, keep)
        for r, reason in why.items():
            rows[r]["screened_out"] = reason
        for row in rows:
            row.setdefault("screened_out", "")
        return len(why)


def _constrain(row: dict[str, Any], constraints: list[Any]) -> None:
    for c in constraints:
        v = row.get(c.metric, math.nan)
        if row["feasible"] and not ((c.min is None or v >= c.min) and (c.max is None or v <= c.max)):
            bound = " and ".join(x for x in (f">= {c.min}" if c.min is not None else "",
                                             f"<= {c.max}" if c.max is not None else "") if x)
            row["feasible"], row["reason"] = False, f"constraint {c.metric} {bound} violated ({v:.6g})"


def screen(sweep: SweepFile, rows: list[dict[str, Any]], accuracy_params: list[str]) -> tuple[list[int], dict[int, str]]:
    """Two-stage screening: which feasible rows get an accuracy evaluation.

    Among the feasible rows (PPA known, PPA constraints met), group by
    accuracy class — the values of ``accuracy_params`` for ``by:
    accuracy_class``, one group for ``by: ppa_front`` — and keep each group's
    Pareto front over the PPA objectives, plus every feasible row within
    ``neighbourhood`` index steps (Chebyshev distance over the list / stepped
    parameters; continuous ones must be equal) of a kept one. With
    ``accuracy_class`` this is exact: within a class accuracy is the same, so a
    row PPA-dominated by a row of its class is dominated in every objective.

    Returns
    -------
    (kept row positions in order, {screened-out row position: reason})
    """
    sc = sweep.screening
    assert sc is not None
    ppa_objs = [o for o in sweep.objectives if not o.metric.startswith("accuracy.")]
    feas = [r for r, row in enumerate(rows) if row["feasible"]]
    if not ppa_objs:
        return feas, {}
    group_params = accuracy_params if sc.by == "accuracy_class" else []
    groups: dict[tuple[Any, ...], list[int]] = {}
    for r in feas:
        groups.setdefault(tuple(rows[r][k] for k in group_params), []).append(r)
    goals = [o.goal for o in ppa_objs]
    sign = np.array([1.0 if g == "min" else -1.0 for g in goals])
    kept: set[int] = set()
    front_of: dict[tuple[Any, ...], list[int]] = {}
    for g, members in groups.items():
        vals = [[float(rows[r].get(o.metric, math.nan)) for o in ppa_objs] for r in members]
        front_of[g] = [members[j] for j in pareto_front(vals, goals)]
        kept.update(front_of[g])
    if sc.neighbourhood:
        values = parameter_values(sweep)
        disc = [k for k, v in values.items() if v is not None]
        cont = [k for k, v in values.items() if v is None]
        index = {k: {v: j for j, v in enumerate(values[k] or [])} for k in disc}
        pos = np.array([[index[k].get(rows[r][k], -10**9) for k in disc] for r in feas], dtype=float).reshape(len(feas), -1)
        for f in sorted(kept):
            fp = np.array([index[k].get(rows[f][k], -10**9) for k in disc], dtype=float)
            near = np.max(np.abs(pos - fp), axis=1, initial=0.0) <= sc.neighbourhood
            for j in np.nonzero(near)[0]:
                r = feas[j]
                if all(rows[r][k] == rows[f][k] for k in cont):
                    kept.add(r)
    why: dict[int, str] = {}
    label = ", ".join(o.metric for o in ppa_objs)
    for g, members in groups.items():
        fv = np.array([[float(rows[f][o.metric]) for o in ppa_objs] for f in front_of[g]]) * sign
        for r in members:
            if r in kept:
                continue
            v = np.array([float(rows[r].get(o.metric, math.nan)) for o in ppa_objs]) * sign
            if np.isnan(v).any():
                why[r] = f"a PPA objective ({label}) is missing"
                continue
            dom = np.nonzero(np.all(fv <= v, axis=1) & np.any(fv < v, axis=1))[0]
            by = rows[front_of[g][int(dom[0])]]["point"] if dom.size else "?"
            where = " of the same accuracy class (" + ", ".join(f"{k}={rows[r][k]}" for k in group_params) + ")" \
                if group_params else ""
            why[r] = f"PPA ({label}) dominated by point {by}{where}"
    return sorted(kept), why


def _front_best(sweep: SweepFile, rows: list[dict[str, Any]]) -> tuple[list[int], dict[str, int]]:
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
    return front, best


def compare_fronts(sweep: SweepFile, optimizer_rows: list[dict[str, Any]],
                   exhaustive_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Hypervolume of the optimizer's front vs the exhaustive front (:func:`mapping.sweep.pareto.normalised_hypervolumes`).

    Both on the exhaustive set's normalised scale (ideal 0, nadir 1, reference 1.1).

    Returns
    -------
    dict
        ``{"optimizer": {...}, "exhaustive": {...}, "hv_ratio"}``, each side with ``evaluated`` (points
        asked), ``unique`` (distinct points), ``front`` (distinct front points), ``hv``.
    """
    goals = [o.goal for o in sweep.objectives]
    out: dict[str, Any] = {}
    sets = []
    for side, rows in (("exhaustive", exhaustive_rows), ("optimizer", optimizer_rows)):
        front, _ = _front_best(sweep, rows)
        sets.append([[float(rows[i][o.metric]) for o in sweep.objectives] for i in front])
        uniq = {tuple(r[k] for k in sweep.parameters) for r in rows}
        front_pts = {tuple(rows[i][k] for k in sweep.parameters) for i in front}
        out[side] = {"evaluated": len(rows), "unique": len(uniq), "front": len(front_pts)}
    hv_ex, hv_opt = normalised_hypervolumes(sets, goals, scale_from=0)
    out["exhaustive"]["hv"], out["optimizer"]["hv"] = hv_ex, hv_opt
    out["hv_ratio"] = hv_opt / hv_ex if hv_ex > 0 else math.nan
    return out


def _nsga2(sweep: SweepFile, ev: _Evaluator) -> list[dict[str, Any]]:
    """Ask / evaluate / tell by whole generations (see the module docstring); the rows of every trial in order."""
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    values = parameter_values(sweep)
    dists: dict[str, Any] = {}
    for k, v in sweep.parameters.items():
        vals = values[k]
        if vals is not None:
            dists[k] = IntDistribution(0, len(vals) - 1)  # searched by index: crossover sees the order
        else:
            assert not isinstance(v, list)
            dists[k] = IntDistribution(int(math.ceil(v.low)), int(math.floor(v.high)), log=v.log) if v.integer \
                else FloatDistribution(v.low, v.high, log=v.log)
    screening = sweep.screening is not None and any(not o.metric.startswith("accuracy.") for o in sweep.objectives)
    told = [o for o in sweep.objectives if not (screening and o.metric.startswith("accuracy."))]
    sampler = optuna.samplers.NSGAIISampler(population_size=sweep.population, seed=sweep.seed)
    study = optuna.create_study(directions=["minimize" if o.goal == "min" else "maximize" for o in told],
                                sampler=sampler)
    rows: list[dict[str, Any]] = []
    for _ in range(int(sweep.generations or 1)):
        trials = [study.ask(dists) for _ in range(int(sweep.population or 2))]
        points = [{k: (values[k][t.params[k]] if values[k] is not None else t.params[k]) for k in sweep.parameters}
                  for t in trials]
        gen = ev.evaluate(points, len(rows), accuracy=not screening)
        for t, row in zip(trials, gen, strict=True):
            vals = [float(row.get(o.metric, math.nan)) for o in told]
            if row["feasible"] and all(math.isfinite(x) for x in vals):
                study.tell(t, vals)
            else:
                study.tell(t, state=TrialState.FAIL)
        rows += gen
    return rows


def run_sweep(sweep: SweepFile, base: ChipSpec, out: Path, *, workers: int = 1, scheduler: str | None = None,
              progress: bool = False, after_task: Callable[[int], None] | None = None) -> SweepResult:
    """Evaluate the points of ``sweep`` (see the module docstring); writes only ``OUT/.cache/``.

    Parameters
    ----------
    after_task : callable, optional
        Called with the number of evaluations finished in this run after each task
        (tests interrupt a run with it).

    Raises
    ------
    AimcError
        Cannot reach the Dask scheduler. A point that does not work is a row
        with ``feasible = False`` and its reason, never an exception.
    """
    t0 = time.perf_counter()
    cache = Path(out) / CACHE_DIR
    comparison = None
    with _Executor(workers, scheduler) as ex:
        ev = _Evaluator(sweep, base, cache, ex, progress, after_task)
        ev.train()
        if sweep.strategy == "nsga2":
            rows = _nsga2(sweep, ev)
            screened = ev.screen_and_finish(rows) if sweep.screening is not None else 0
            if sweep.compare_exhaustive:
                sub = _Evaluator(sweep, base, cache, ex, progress, None)
                sub.results, sub.train_names, sub.key_memo = ev.results, ev.train_names, ev.key_memo
                ex_rows = sub.ppa_rows(grid_points(sweep), 0)
                sub.screen_and_finish(ex_rows)
                comparison = compare_fronts(sweep, rows, ex_rows)
                ev.stats["ran"] += sub.stats["ran"]
                ev.pids |= sub.pids
        else:
            rows = ev.ppa_rows(sweep_points(sweep), 0)
            screened = ev.screen_and_finish(rows)
    front, best = _front_best(sweep, rows)
    ev.timings["wall"] = time.perf_counter() - t0
    specs = {i: ev.spec(i) for i in sorted(set(front) | set(best.values()))}
    return SweepResult(sweep, rows, front, best, specs, ev.pids, ev.stats["ran"], ev.stats["cached"], ev.timings,
                       screened, comparison)


def accuracy_label(metric: str) -> str:
    """``accuracy.1_day.digital_first_last/gdc.digits-cnn`` -> ``accuracy: digits-cnn (1 day, digital_first_last/gdc)``."""
    _, t, s, n = metric.split(".", 3)
    return f"accuracy: {n} ({t.replace('_', ' ')}, {s})"

