"""End-to-end tests of ``aimc drift`` (mapping/cli_drift.py) on the tiny preset."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mapping.cli import main

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
    # mean drift factor of high-g devices at 1 day: DESIGN.md gives E[(t/t0)^-nu] = 0.66501
    # (the table's figure comes from one 32 x 32 draw: within 0.03)
    assert abs(factor_1d - 0.66501) < 0.03
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
