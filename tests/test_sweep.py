"""aimc sweep: totals equal separate aimc map runs, Pareto front, accuracy cache keys, workers/Dask identity,
resume, bad sweep files, and the HTML report rendered in headless chromium."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from archmodel.spec import load_spec
from mapping.cli.main import main
from mapping.sweep.config import load_sweep
from mapping.sweep.pareto import pareto_front
from mapping.sweep.runner import run_sweep
from mapping.sweep.tasks import accuracy_key

ACC = "accuracy.1_day.digital_first_last/gdc.digits-mlp"


def _write(tmp: Path, name: str, data: dict) -> Path:
    p = tmp / name
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _ppa_sweep(tmp: Path) -> Path:
    return _write(tmp, "ppa.yaml", {
        "name": "t", "base": "tiny", "networks": ["digits-mlp"],
        "parameters": {"array.adc_bits": [6, 8], "technology.clock_mhz": {"low": 100, "high": 200, "step": 100}},
        "objectives": [{"metric": "energy_per_inference_pj", "goal": "min"},
                       {"metric": "latency_per_inference_ns", "goal": "min"}]})


def _acc_sweep(tmp: Path) -> Path:
    return _write(tmp, "acc.yaml", {
        "name": "a", "base": "tiny", "networks": ["digits-mlp"],
        "parameters": {"array.adc_bits": [6, 8], "tile_grid.rows": [2, 4], "array.cols_per_adc": [1, 2]},
        "objectives": [{"metric": "latency_per_inference_ns", "goal": "min"}, {"metric": ACC, "goal": "max"}],
        "constraints": [{"metric": "area_mm2", "max": 1000}],
        "accuracy": {"draws": 2, "epochs": 2, "noise": 0.05}})


# --------------------------------------------------------------------------- PPA equals aimc map
def test_grid_totals_equal_separate_map_runs(tmp_path: Path) -> None:
    sweep_file = _ppa_sweep(tmp_path)
    assert main(["sweep", str(sweep_file), "--out", str(tmp_path / "s"), "--quiet", "--no-plots"]) == 0
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "s" / "results.parquet").to_pylist()
    assert [(r["array.adc_bits"], r["technology.clock_mhz"]) for r in table] == [(6, 100), (6, 200), (8, 100), (8, 200)]
    base = load_spec("tiny")
    for r in table:
        chip = base.replace(**{"array.adc_bits": r["array.adc_bits"], "technology.clock_mhz": r["technology.clock_mhz"]})
        arch = tmp_path / f"p{r['point']}.yaml"
        arch.write_text(yaml.safe_dump(chip.model_dump(mode="json")))
        out = tmp_path / f"map{r['point']}"
        assert main(["map", "--arch", str(arch), "--network", "digits-mlp", "--out", str(out), "--quiet", "--no-plots"]) == 0
        totals = json.loads((out / "report.json").read_text())["totals"]
        n = 0
        for k, v in totals.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                assert r[k] == float(v), k  # exactly
                n += 1
        assert n >= 18
        assert r["power_w"] == totals["energy_per_inference_pj"] * 1e-12 / (totals["pipeline_interval_ns"] * 1e-9)
    # the recommended chips are taken by aimc map as they are
    for best in sorted((tmp_path / "s").glob("best_*.yaml")):
        assert main(["map", "--arch", str(best), "--network", "digits-mlp", "--out", str(tmp_path / best.stem),
                     "--quiet", "--no-plots"]) == 0
    # ... and by aimc accuracy
    best = tmp_path / "s" / "best_energy_per_inference_pj.yaml"
    assert main(["accuracy", "--arch", str(best), "--network", "digits-mlp", "--draws", "2", "--epochs", "1",
                 "--workers", "1", "--quiet", "--no-plot", "--out", str(tmp_path / "acc")]) == 0
    # the 200 MHz points are faster: latency min is a clock_mhz=200 point
    assert load_spec(str(tmp_path / "s" / "best_latency_per_inference_ns.yaml")).technology.clock_mhz == 200


# --------------------------------------------------------------------------- Pareto front
def test_pareto_front_of_hand_made_table() -> None:
    # (energy min, latency min, accuracy max)
    t = [[1, 5, 0.9],   # 0 front: lowest energy
         [2, 4, 0.9],   # 1 front: trade-off
         [2, 5, 0.9],   # 2 dominated by 1
         [3, 3, 0.8],   # 3 front: lowest latency
         [3, 3, 0.7],   # 4 dominated by 3
         [9, 9, 0.95],  # 5 front: best accuracy
         [1, 5, 0.9],   # 6 equal to 0: kept
         [0, 0, float("nan")]]  # 7 NaN: never on the front
    assert pareto_front(t, ["min", "min", "max"]) == [0, 1, 3, 5, 6]
    assert pareto_front([[1, 2], [2, 1], [2, 2]], ["min", "min"]) == [0, 1]
    assert pareto_front([[1, 2], [2, 1], [2, 2]], ["max", "max"]) == [2]


# --------------------------------------------------------------------------- accuracy cache keys
def test_accuracy_key_hits_and_misses() -> None:
    base = load_spec("tiny")
    args = ("digits-mlp", "train-x", 0, ["1_day"], ["digital_first_last/gdc"], 2)
    k0, sub = accuracy_key(base, *args)
    assert "array.adc_bits" in sub and "device.drift_scale" in sub and "tile_grid.rows" not in sub
    hits = {"tile_grid.rows": 4, "technology.clock_mhz": 200.0, "energy_pj.adc_per_conversion_pj": 9.0,
            "area_um2.adc_um2": 1.0, "array.cols_per_adc": 2, "array.integration_time_ns": 80.0}
    misses = {"array.adc_bits": 6, "device.drift_scale": 0.5, "device.prog_noise_scale": 2.0, "array.rows": 64,
              "array.adc_full_scale_fraction": 0.5, "calibration.adc_range": "fixed", "periphery.accumulator_bits": 20}
    for k, v in hits.items():
        assert accuracy_key(base.replace(**{k: v}), *args)[0] == k0, k
    for k, v in misses.items():
        assert accuracy_key(base.replace(**{k: v}), *args)[0] != k0, k
    # and the other inputs of the evaluation
    assert accuracy_key(base, "digits-mlp", "train-y", 0, ["1_day"], ["digital_first_last/gdc"], 2)[0] != k0
    assert accuracy_key(base, "digits-mlp", "train-x", 0, ["1_h"], ["digital_first_last/gdc"], 2)[0] != k0


# --------------------------------------------------------------------------- execution
def _table(res) -> list[dict]:
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in res.rows]


@pytest.mark.slow
def test_workers_dask_identical_and_resume(tmp_path: Path) -> None:
    sweep, base = load_sweep(_acc_sweep(tmp_path))
    serial = run_sweep(sweep, base, tmp_path / "w1", workers=1)
    rows = _table(serial)
    assert len(rows) == 8 and all(r["feasible"] for r in rows)
    accs = [r[ACC] for r in rows]
    assert all(0.3 < a <= 1 for a in accs)  # computed, not NaN (10 classes: chance is 0.1)
    # 8 points, 2 accuracy evaluations (adc_bits 6 / 8): tile_grid.rows and cols_per_adc share them
    assert serial.ran == 1 + 8 + 2 and len({r[ACC] for r in rows}) == 2
    pooled = run_sweep(sweep, base, tmp_path / "w2", workers=2)
    assert _table(pooled) == rows and len(pooled.pids) >= 2 and os.getpid() not in pooled.pids
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        dsk = run_sweep(sweep, base, tmp_path / "dask", scheduler=cluster.scheduler_address)
    assert _table(dsk) == rows and len(dsk.pids) >= 2, dsk.pids
    # resume: interrupted after 3 tasks, the rerun runs only the rest and equals the uninterrupted run
    def stop(n: int) -> None:
        if n == 3:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_sweep(sweep, base, tmp_path / "r", workers=1, after_task=stop)
    assert len(list((tmp_path / "r" / ".cache").glob("*.pkl"))) == 3
    again = run_sweep(sweep, base, tmp_path / "r", workers=1)
    assert again.cached == 3 and again.ran == serial.ran - 3 and _table(again) == rows


# --------------------------------------------------------------------------- bad sweep files
BAD = [
    ({"parameterz": {}}, "unknown key"),
    ({"parameters": {"array.rows": {"low": 512, "high": 256, "step": 1}}}, "empty range"),
    ({"parameters": {"array.rows": []}}, "empty list"),
    ({"parameters": {"array.rowz": [1]}}, "parameters.array.rowz"),
    ({"objectives": [{"metric": "speed", "goal": "min"}]}, "'speed' is no metric"),
    ({"constraints": [{"metric": "area_um2", "max": 3}]}, "constraints[0].metric"),
    ({"objectives": [{"metric": "accuracy.1_week.digital_first_last/gdc.digits-mlp", "goal": "max"}]}, "time '1_week'"),
]


@pytest.mark.parametrize("change,expected", BAD)
def test_bad_sweep_file_one_line_nothing_written(tmp_path: Path, capsys, change: dict, expected: str) -> None:
    data = yaml.safe_load(_ppa_sweep(tmp_path).read_text())
    data.update(change)
    bad = _write(tmp_path, "bad.yaml", data)
    out = tmp_path / "out"
    assert main(["sweep", str(bad), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("aimc: error: ") and expected in err[0], err
    assert str(bad) in err[0]
    assert not out.exists()


# --------------------------------------------------------------------------- HTML in headless chromium
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_html_report_renders_offline_in_chromium(tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing (apt-get install -y chromium); required under CI=true")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    out = tmp_path / "s"
    assert main(["sweep", str(_ppa_sweep(tmp_path)), "--out", str(out), "--quiet"]) == 0
    page = (out / "report.html").read_text()
    assert not re.search(r"https?://", page)
    plotted = int(re.search(r'name="aimc-front-points" content="(\d+)"', page).group(1))
    table = page.split("<h2>Pareto front")[1].split("</table>")[0]
    assert plotted == table.count("<tr>") - 1 == len((out / "front.csv").read_text().splitlines()) - 1 >= 1
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
                    "--window-size=1000,1400", f"--screenshot={shot}", (out / "report.html").as_uri()],
                   check=True, capture_output=True, timeout=120, env={**os.environ, "HOME": str(tmp_path)})
    import matplotlib.image as mpimg

    img = mpimg.imread(shot)[..., :3]
    plot = img[150:650, 0:700]  # the Pareto scatter (first image, under the title and summary)
    assert plot.std() > 0.05  # not blank
    red = (plot[..., 0] > 0.8) & (plot[..., 1] < 0.3) & (plot[..., 2] < 0.3)
    assert red.sum() > 50  # the red front markers are drawn


# --------------------------------------------------------------------------- random / LHS points
def test_lhs_and_random_points(tmp_path: Path) -> None:
    from mapping.sweep.config import SweepFile, sweep_points

    data = {"base": "tiny", "networks": ["digits-mlp"], "strategy": "lhs", "samples": 8, "seed": 3,
            "parameters": {"device.drift_scale": {"low": 0.0, "high": 2.0}, "array.adc_bits": [4, 5, 6, 7, 8, 9, 10, 11]},
            "objectives": [{"metric": "tops", "goal": "max"}]}
    pts = sweep_points(SweepFile.model_validate(data))
    # Latin hypercube: each of the 8 strata of every parameter holds exactly one point
    assert sorted(int(p["device.drift_scale"] // 0.25) for p in pts) == list(range(8))
    assert sorted(p["array.adc_bits"] for p in pts) == list(range(4, 12))
    assert sweep_points(SweepFile.model_validate(data)) == pts  # seeded
    rnd = sweep_points(SweepFile.model_validate({**data, "strategy": "random"}))
    assert len(rnd) == 8 and all(0 <= p["device.drift_scale"] <= 2 for p in rnd) and rnd != pts


def test_infeasible_points_are_rows_with_reasons(tmp_path: Path) -> None:
    # tiny: 2x2 tiles; digits-cnn with 64-row arrays needs 3 + 5 arrays for conv2, conv3 (first/last digital):
    # with max_chips 1 it fits a 8x2 grid (16 tiles), not the 2x2 grid.
    # array.rows 4 < rows_per_dac_beat 8 is a combination the chip description refuses.
    f = _write(tmp_path, "inf.yaml", {
        "base": "tiny", "networks": ["digits-cnn"], "parameters": {"array.rows": [64, 4], "tile_grid.rows": [2, 8]},
        "objectives": [{"metric": "tops", "goal": "max"}], "map": {"max_chips": 1}})
    sweep, base = load_sweep(f)
    res = run_sweep(sweep, base, tmp_path / "o")
    by = {(r["array.rows"], r["tile_grid.rows"]): r for r in res.rows}
    assert not by[(64, 2)]["feasible"] and "digits-cnn:" in by[(64, 2)]["reason"] and "chip" in by[(64, 2)]["reason"]
    assert by[(64, 8)]["feasible"] and by[(64, 8)]["chips"] == 1.0
    for g in (2, 8):
        assert not by[(4, g)]["feasible"] and by[(4, g)]["reason"].startswith("invalid chip:")
        assert "rows_per_dac_beat" in by[(4, g)]["reason"]
    assert res.front == [by[(64, 8)]["point"]]


def test_cli_rerun_resumes_and_force_replaces(tmp_path: Path, capsys) -> None:
    """A second `aimc sweep` into the same --out resumes from its cache (no --force); --force on a foreign folder
    replaces its files; a foreign non-empty folder without --force is refused with one line and left untouched."""
    f = _ppa_sweep(tmp_path)
    out = tmp_path / "s"
    assert main(["sweep", str(f), "--out", str(out)]) == 0
    first = (out / "results.csv").read_bytes()
    capsys.readouterr()
    (out / "stale.txt").write_text("from an earlier run")
    assert main(["sweep", str(f), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "0 evaluations run" in text and "cache-hit rate 100.0 %" in text, text
    assert (out / "results.csv").read_bytes() == first and not (out / "stale.txt").exists()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    assert main(["sweep", str(f), "--out", str(foreign), "--quiet"]) == 1
    assert "folder is not empty" in capsys.readouterr().err and (foreign / "notes.txt").read_text() == "keep"
    assert main(["sweep", str(f), "--out", str(foreign), "--quiet", "--force"]) == 0
    assert (foreign / "results.csv").read_bytes() == first and not (foreign / "notes.txt").exists()
