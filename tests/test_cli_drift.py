"""End-to-end tests of ``aimc drift`` (mapping/cli/drift.py) on the tiny preset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mapping.cli.main import main

TIMES = ["1 s", "1 h", "1 day", "1 month", "1 year"]


def parse_table(md: str) -> dict[str, list[float]]:
    """Rows of the Markdown table, by time label: [t_inf, factor, alpha, err no GDC, err GDC]."""
    rows = {}
    for line in md.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] in TIMES:
            rows[cells[0]] = [float(c) for c in cells[1:]]
    return rows


@pytest.fixture(scope="module")
def drift_run(tmp_path_factory) -> tuple[int, str, str, Path]:
    out = tmp_path_factory.mktemp("drift")
    proc = subprocess.run(
        [sys.executable, "-m", "mapping.cli", "drift", "--arch", "tiny", "--seed", "0", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )
    return proc.returncode, proc.stdout, proc.stderr, out


def test_drift_table(drift_run):
    rc, stdout, stderr, _ = drift_run
    assert rc == 0, stderr
    assert stderr == ""
    rows = parse_table(stdout)
    assert list(rows) == TIMES
    t_inf = [r[0] for r in rows.values()]
    assert t_inf == [1, 3600, 86400, 2592000, 31536000]
    # GDC alpha at 1 day > 1: the drifted conductances read low
    _, factor_1d, alpha_1d, _, _ = rows["1 day"]
    assert alpha_1d > 1.0
    # the table's drift factor is the probe's: docs/design.md gives E[(t/t0)^-nu] = 0.66501 at 1 day
    # (4 decimals printed; the tight check against the SE is in test_drift_probe_matches_design)
    assert abs(factor_1d - 0.66501) < 4 * 2.5e-4 + 5e-5
    # the no-GDC error grows with time, and GDC reduces it from 1 h on
    no_gdc = [r[3] for r in rows.values()]
    assert all(later > earlier for earlier, later in zip(no_gdc[:-1], no_gdc[1:], strict=True)), no_gdc
    for label in TIMES[1:]:
        assert rows[label][4] < rows[label][3]


def test_drift_out_files_whole(drift_run):
    rc, stdout, _, out = drift_run
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["drift.json", "drift.md"]  # no temporaries left
    md = (out / "drift.md").read_text()
    assert md == stdout
    res = json.loads((out / "drift.json").read_text())
    assert res["chip"] == "tiny" and res["seed"] == 0 and res["matrix_shape"] == [32, 32]
    assert [r["time"] for r in res["rows"]] == TIMES
    table = parse_table(md)
    for r in res["rows"]:
        assert round(r["gdc_alpha"], 4) == table[r["time"]][2]
        assert round(r["mvm_rel_rms_error_no_gdc_pct"], 2) == table[r["time"]][3]


def test_drift_probe_matches_design(drift_run):
    # Probe: N = 65,536 devices at g_max (tiny = joshi2020, scales 1). docs/design.md:
    # E[(t/t0)^-nu] = 0.77580 at 1 h and 0.66501 at 1 day; read noise has zero mean,
    # so the mean of g(t)/g_P must lie within 4 standard errors (SE ~ 2.4e-4, from the run).
    _, stdout, _, out = drift_run
    res = json.loads((out / "drift.json").read_text())
    assert res["probe_devices"] == 65536
    assert "N = 65,536 devices programmed at g_max" in stdout
    assert "0.77580 at 1 h, 0.66501 at 1 day" in stdout
    by_time = {r["time"]: r for r in res["rows"]}
    for label, expected in (("1 h", 0.77580), ("1 day", 0.66501)):
        r = by_time[label]
        se = r["mean_drift_factor_g_max_se"]
        assert 1e-4 < se < 4e-4, se  # sigma ~0.06 / sqrt(65536)
        assert abs(r["mean_drift_factor_g_max"] - expected) < 4 * se, (label, r)
    # and it falls with time: 1 s > 1 h > 1 day > 1 month > 1 year
    f = [r["mean_drift_factor_g_max"] for r in res["rows"]]
    assert all(b < a for a, b in zip(f[:-1], f[1:], strict=True)), f


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--vectors", "0"], "aimc: error: --vectors must be in 1..100000, got 0"),
        (["--vectors", "100001"], "aimc: error: --vectors must be in 1..100000, got 100001"),
        (["--seed", "-1"], "aimc: error: --seed must be >= 0, got -1"),
    ],
)
def test_drift_bad_options_one_line(tmp_path, argv, message):
    proc = subprocess.run(
        [sys.executable, "-m", "mapping.cli", "drift", "--arch", "tiny", *argv, "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [message]
    assert not (tmp_path / "o").exists()


def test_drift_refuses_huge_array(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("name: big\narray: {rows: 8192, cols: 512}\n")
    proc = subprocess.run([sys.executable, "-m", "mapping.cli", "drift", "--arch", str(big)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    # since issue 9 the chip description itself bounds arrays at 4096 x 4096 (drift's own limit)
    assert proc.stderr.strip().splitlines() == [
        f"aimc: error: {big}: array.rows: bad value 8192: Input should be less than or equal to 4096 "
        "(Word lines (inputs) per array.)"]


def test_drift_unwritable_out_found_first(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = subprocess.run([sys.executable, "-m", "mapping.cli", "drift", "--arch", "tiny",
                           "--out", str(blocker / "sub")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""  # nothing computed, nothing printed
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"aimc: error: --out {blocker / 'sub'}: not a writable folder (")
    proc = subprocess.run([sys.executable, "-m", "mapping.cli", "drift", "--arch", "tiny", "--out", ""],
                          capture_output=True, text=True, timeout=60)
    # an argument error like map's --out '' (exit 2, usage + one line)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1] == "aimc: error: argument --out: empty folder name; expected a folder path"


def test_drift_is_reproducible_in_process(capsys, drift_run):
    _, stdout, _, _ = drift_run
    assert main(["drift", "--arch", "tiny", "--seed", "0"]) == 0
    assert capsys.readouterr().out == stdout
    assert main(["drift", "--arch", "tiny", "--seed", "1"]) == 0
    assert capsys.readouterr().out != stdout


def test_drift_bad_arch_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mapping.cli", "drift", "--arch", "no_such_chip", "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("aimc: error:") and "no_such_chip" in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
