"""Design-space search (issue 17): hypervolume and Pareto front against independent implementations, NSGA-II
against the exhaustive front, two-stage screening against evaluating every point, batching, executor identity."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from mapping.cli.main import main
from mapping.sweep.config import load_sweep
from mapping.sweep.pareto import hypervolume, normalised_hypervolumes, pareto_front
from mapping.sweep.runner import run_sweep, screen

ACC = "accuracy.1_day.digital_first_last/gdc.digits-mlp"


def _write(tmp: Path, name: str, data: dict) -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _table(res) -> list[dict]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in res.rows]


# --------------------------------------------------------------------------- hypervolume, Pareto front
def test_hypervolume_hand_computed() -> None:
    # staircase (1,3), (2,2), (3,1) under ref (4,4): strips x∈[1,2]: 1, [2,3]: 2, [3,4]: 3 -> 6
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4]) == pytest.approx(6.0)
    assert hypervolume([[1, 3], [2, 2], [3, 1], [3, 3], [5, 0]], [4, 4]) == pytest.approx(6.0)  # dominated / outside
    assert hypervolume([[0, 0, 0]], [1, 2, 3]) == pytest.approx(6.0)
    # two boxes [0,2]x[0,1]x[0,1] and [0,1]x[0,2]x[0,1] (ref 2,2,1 after shift): 2 + 2 - 1 = 3
    assert hypervolume([[0, 1, 0], [1, 0, 0]], [2, 2, 1]) == pytest.approx(3.0)
    assert hypervolume([], [1, 1]) == 0.0


@pytest.mark.parametrize("m", [2, 3, 4])
def test_hypervolume_equals_optuna_wfg(m: int) -> None:
    from optuna._hypervolume import compute_hypervolume  # an independent implementation (WFG)

    rng = np.random.default_rng(m)
    for _ in range(5):
        pts = rng.random((30, m))
        pts = pts[pareto_front(pts.tolist(), ["min"] * m)]
        ref = np.full(m, 1.1)
        assert hypervolume(pts, ref) == pytest.approx(compute_hypervolume(pts, ref), rel=1e-12)


def test_pareto_front_equals_brute_force() -> None:
    rng = np.random.default_rng(1)
    vals = rng.integers(0, 6, size=(300, 3)).astype(float)  # many ties and equal rows
    vals[:, 2] = 8 - vals[:, 0] - rng.integers(0, 3, size=300)  # energy/latency-like trade-off: a wide front
    vals[::37, 1] = np.nan
    goals = ["min", "max", "min"]
    sign = np.array([1, -1, 1])

    def dominated(i: int) -> bool:
        a = vals[i] * sign
        return any(np.all(vals[j] * sign <= a) and np.any(vals[j] * sign < a)
                   for j in range(len(vals)) if j != i and not np.isnan(vals[j]).any())

    brute = [i for i in range(len(vals)) if not np.isnan(vals[i]).any() and not dominated(i)]
    assert pareto_front(vals.tolist(), goals) == brute and len(brute) >= 5


def test_normalised_hypervolume_scale() -> None:
    ex = [[0.0, 10.0], [10.0, 0.0], [5.0, 5.0]]
    # normalised: (0,1), (1,0), (0.5,0.5), ref 1.1: 0.1·1.1 + 0.5·0.6 + 0.5·0.1... computed as strips:
    # x∈[0,0.5]: 1.1-1 = 0.1 -> 0.05; x∈[0.5,1]: 1.1-0.5 -> 0.3; x∈[1,1.1]: 1.1 -> 0.11
    hv_ex, hv_sub = normalised_hypervolumes([ex, ex[:2]], ["min", "min"])
    assert hv_ex == pytest.approx(0.05 + 0.3 + 0.11)
    assert hv_sub == pytest.approx(0.05 + 0.05 + 0.11)


# --------------------------------------------------------------------------- NSGA-II vs exhaustive
def _nsga_sweep(tmp: Path, **extra) -> Path:
    data = {"name": "hv", "base": "tiny", "networks": ["digits-mlp"],
            "parameters": {"array.adc_bits": [4, 5, 6, 7, 8], "array.cols_per_adc": [1, 2, 4, 8],
                           "technology.clock_mhz": [100, 200, 400, 800], "array.rows": [32, 64, 128, 256],
                           "array.cols": [16, 32, 64, 128]},
            "strategy": "nsga2", "population": 32, "generations": 10, "seed": 0, "compare_exhaustive": True,
            "objectives": [{"metric": "energy_per_inference_pj", "goal": "min"},
                           {"metric": "latency_per_inference_ns", "goal": "min"},
                           {"metric": "area_mm2", "goal": "min"}]}
    data.update(extra)
    return _write(tmp, "nsga.yaml", data)


def test_nsga2_front_reaches_exhaustive_hypervolume(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert main(["sweep", str(_nsga_sweep(tmp_path)), "--out", str(out), "--quiet", "--no-plots"]) == 0
    sweep, base = load_sweep(_nsga_sweep(tmp_path))
    res = run_sweep(sweep, base, out)  # from the cache
    c = res.comparison
    assert c["exhaustive"]["evaluated"] == 5 * 4 ** 4 == 1280
    assert c["optimizer"]["evaluated"] == 320 <= c["exhaustive"]["evaluated"] / 4
    assert c["hv_ratio"] >= 0.95, c
    # hv_ratio recomputed independently of the runner: the exhaustive rows from a plain grid sweep of the same
    # space, both fronts normalised by hand (ideal 0, nadir 1 on the exhaustive set), hypervolumes by Optuna's WFG
    from optuna._hypervolume import compute_hypervolume

    data = yaml.safe_load(_nsga_sweep(tmp_path).read_text())
    data.update(strategy="grid", compare_exhaustive=False, population=None, generations=None)
    grid, grid_base = load_sweep(_write(tmp_path, "grid.yaml", data))
    ex_rows = run_sweep(grid, grid_base, tmp_path / "g").rows
    keys = [o["metric"] for o in data["objectives"]]
    ex = np.array([[r[k] for k in keys] for r in ex_rows if r["feasible"]], dtype=float)
    opt = np.array([[r[k] for k in keys] for r in res.rows if r["feasible"]], dtype=float)
    lo, hi = ex.min(axis=0), ex.max(axis=0)

    def hv(v: np.ndarray) -> float:
        v = (v - lo) / (hi - lo)
        nd = [i for i in range(len(v)) if not any(np.all(v[j] <= v[i]) and np.any(v[j] < v[i]) for j in range(len(v)))]
        return compute_hypervolume(np.unique(v[nd], axis=0), np.full(len(keys), 1.1))

    assert c["hv_ratio"] == pytest.approx(hv(opt) / hv(ex), rel=1e-9)
    assert len(res.rows) == 320 and [r["point"] for r in res.rows] == list(range(320))
    md = (out / "report.md").read_text()
    assert "## Optimizer front vs exhaustive front" in md and f"{100 * c['hv_ratio']:.2f} %" in md
    assert res.ran == 0 and res.cached > 0  # second run: everything from the cache
    # the optimizer's rows equal what `aimc map` gives for the same chip (spot-check one point through the CLI)
    import json

    r = res.rows[-1]
    chip = base.replace(**{k: r[k] for k in sweep.parameters})
    arch = tmp_path / "point.yaml"
    arch.write_text(yaml.safe_dump(chip.model_dump(mode="json")))
    assert main(["map", "--arch", str(arch), "--network", "digits-mlp", "--out", str(tmp_path / "m"), "--quiet",
                 "--no-plots"]) == 0
    totals = json.loads((tmp_path / "m" / "report.json").read_text())["totals"]
    for k in ("energy_per_inference_pj", "latency_per_inference_ns", "area_mm2"):
        assert r[k] == float(totals[k]), k


@pytest.mark.slow
def test_nsga2_identical_for_workers_and_dask(tmp_path: Path) -> None:
    f = _nsga_sweep(tmp_path, population=8, generations=3, compare_exhaustive=False, batch=2)
    sweep, base = load_sweep(f)
    one = run_sweep(sweep, base, tmp_path / "w1", workers=1)
    two = run_sweep(sweep, base, tmp_path / "w2", workers=2)
    assert _table(one) == _table(two) and len(two.pids) >= 2
    assert two.timings["tasks"] >= 4  # batched 2 per task: several tasks spread over the workers
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dsk = run_sweep(sweep, base, tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert _table(dsk) == _table(one)
    other = run_sweep(sweep.model_copy(update={"seed": 1}), base, tmp_path / "s1")
    assert _table(other) != _table(one)  # the seed matters


def test_batched_equals_unbatched_and_resumes(tmp_path: Path) -> None:
    data = yaml.safe_load(_nsga_sweep(tmp_path).read_text())
    data.update(strategy="grid", compare_exhaustive=False, population=None, generations=None)
    data = {k: v for k, v in data.items() if v is not None}
    data["parameters"] = {"array.adc_bits": [4, 8], "array.rows": [32, 64, 128], "tile_grid.rows": [1, 2]}
    s1, base = load_sweep(_write(tmp_path, "b1.yaml", {**data, "batch": 1}))
    s5, _ = load_sweep(_write(tmp_path, "b5.yaml", {**data, "batch": 5}))
    a = run_sweep(s1, base, tmp_path / "a")
    b = run_sweep(s5, base, tmp_path / "b")
    assert _table(a) == _table(b) and a.timings["tasks"] == 12 and b.timings["tasks"] == 3  # ceil(12 / 5)
    assert len(list((tmp_path / "b" / ".cache").glob("ppab-*.pkl"))) == 3
    again = run_sweep(s1, base, tmp_path / "b")  # other batching, same evaluation keys: all cached
    assert again.ran == 0 and again.cached == 12 and _table(again) == _table(a)


# --------------------------------------------------------------------------- two-stage screening
def test_screen_accuracy_class_is_exact_on_random_tables() -> None:
    """Synthetic rows: accuracy depends only on 'a'; the front of the screened-in rows equals the full front."""
    from mapping.sweep.config import SweepFile

    sweep = SweepFile.model_validate({
        "base": "tiny", "networks": ["digits-mlp"], "parameters": {"a": [0, 1, 2], "b": list(range(20))},
        "objectives": [{"metric": "e", "goal": "min"}, {"metric": "l", "goal": "min"}, {"metric": ACC, "goal": "max"}],
        "screening": {"by": "accuracy_class"}})
    rng = np.random.default_rng(7)
    goals = ["min", "min", "max"]
    for trial in range(20):
        acc = rng.random(3)
        rows = [{"point": i, "a": a, "b": b, "feasible": True, "e": float(rng.integers(0, 8)),
                 "l": float(rng.integers(0, 8)), ACC: float(acc[a])} for i, (a, b) in
                enumerate((a, b) for a in range(3) for b in range(20))]
        full = pareto_front([[r["e"], r["l"], r[ACC]] for r in rows], goals)
        kept, why = screen(sweep, rows, ["a"])
        assert set(kept) | set(why) == set(range(60)) and not set(kept) & set(why)
        masked = [[r["e"], r["l"], r[ACC] if i in kept else math.nan] for i, r in enumerate(rows)]
        assert pareto_front(masked, goals) == full, trial
        assert len(kept) < 60
        for r, reason in why.items():  # the reason names a kept point of the same class that dominates it
            j = int(reason.split("dominated by point ")[1].split()[0])
            assert j in kept and rows[j]["a"] == rows[r]["a"]
            assert rows[j]["e"] <= rows[r]["e"] and rows[j]["l"] <= rows[r]["l"]
    # the global PPA front (by: ppa_front) keeps fewer points, and neighbourhood 1 adds the index neighbours
    ppa = sweep.model_copy(update={"screening": sweep.screening.model_copy(update={"by": "ppa_front"})})
    kept_ppa, _ = screen(ppa, rows, ["a"])
    assert kept_ppa == pareto_front([[r["e"], r["l"]] for r in rows], ["min", "min"])
    near = ppa.model_copy(update={"screening": ppa.screening.model_copy(update={"neighbourhood": 1})})
    kept_near, _ = screen(near, rows, ["a"])
    expect = {r for r in range(60) if any(abs(rows[r]["a"] - rows[k]["a"]) <= 1 and abs(rows[r]["b"] - rows[k]["b"]) <= 1
                                          for k in kept_ppa)}
    assert set(kept_near) == expect


@pytest.mark.slow
def test_two_stage_finds_the_same_front_as_every_point(tmp_path: Path) -> None:
    data = {"name": "two", "base": "tiny", "networks": ["digits-mlp"],
            "parameters": {"array.adc_bits": [6, 8], "tile_grid.rows": [2, 4], "array.cols_per_adc": [1, 2],
                           "technology.clock_mhz": [100, 200]},
            "objectives": [{"metric": "latency_per_inference_ns", "goal": "min"},
                           {"metric": "power_w", "goal": "min"}, {"metric": ACC, "goal": "max"}],
            "accuracy": {"draws": 2, "epochs": 2, "noise": 0.05}}
    full_s, base = load_sweep(_write(tmp_path, "full.yaml", data))
    two_s, _ = load_sweep(_write(tmp_path, "two.yaml", {**data, "screening": {"by": "accuracy_class"}}))
    full = run_sweep(full_s, base, tmp_path / "o")
    two = run_sweep(two_s, base, tmp_path / "o")  # same cache: PPA, training and accuracy results are reused
    assert [full.rows[i]["point"] for i in full.front] == [two.rows[i]["point"] for i in two.front]
    assert len(full.front) >= 2
    screened = [r for r in two.rows if r["screened_out"]]
    assert two.screened == len(screened) >= 4
    for r in screened:
        assert ACC not in r and "dominated by point" in r["screened_out"] and "array.adc_bits=" in r["screened_out"]
    assert all(ACC in r for r in two.rows if not r["screened_out"])
    out = tmp_path / "rep"
    assert main(["sweep", str(tmp_path / "two.yaml"), "--out", str(out), "--quiet", "--no-plots"]) == 0
    md = (out / "report.md").read_text()
    assert f"## Screened out ({len(screened)} points" in md
    assert "screened_out" in (out / "results.csv").read_text().splitlines()[0]


@pytest.mark.slow
def test_nsga2_with_screening_and_accuracy(tmp_path: Path) -> None:
    """NSGA-II told the PPA objectives, then accuracy on the screened-in trials only (CLI, report)."""
    data = {"name": "ns", "base": "tiny", "networks": ["digits-mlp"],
            "parameters": {"array.adc_bits": [6, 8], "tile_grid.rows": [2, 4], "array.cols_per_adc": [1, 2],
                           "technology.clock_mhz": [100, 200, 400]},
            "strategy": "nsga2", "population": 6, "generations": 3, "seed": 0,
            "screening": {"by": "ppa_front", "neighbourhood": 0},
            "objectives": [{"metric": "latency_per_inference_ns", "goal": "min"},
                           {"metric": "power_w", "goal": "min"}, {"metric": ACC, "goal": "max"}],
            "accuracy": {"draws": 2, "epochs": 2, "noise": 0.05}}
    f = _write(tmp_path, "ns.yaml", data)
    out = tmp_path / "o"
    assert main(["sweep", str(f), "--out", str(out), "--quiet", "--no-plots"]) == 0
    sweep, base = load_sweep(f)
    res = run_sweep(sweep, base, out)
    assert res.ran == 0 and len(res.rows) == 18
    kept = [r for r in res.rows if r["feasible"] and not r["screened_out"]]
    ppa_front = pareto_front([[r["latency_per_inference_ns"], r["power_w"]] for r in res.rows], ["min", "min"])
    assert sorted(r["point"] for r in kept) == ppa_front  # by: ppa_front keeps exactly the PPA front
    assert all(ACC in r for r in kept) and all(ACC not in r for r in res.rows if r["screened_out"])
    assert res.screened == 18 - len(kept) > 0
    assert f"## Screened out ({res.screened} points" in (out / "report.md").read_text()
