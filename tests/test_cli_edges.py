"""Issue 9: the command line at its edges — all-or-nothing output, hostile YAML, the error policy,
bounds on chip keys, contradictory flags, Ctrl-C. Every input is written in the test."""

from __future__ import annotations

import os

import pytest

from mapping.cli.main import main

MAP = ["map", "--arch", "tiny", "--network", "mlp", "--quiet"]


def _err_lines(capsys) -> list[str]:
    return capsys.readouterr().err.strip().splitlines()


# --------------------------------------------------------------------------- 1. output all or nothing


def test_failed_run_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "o"
    # the network is loaded after --out is checked: before issue 9 an empty folder 'o' remained
    assert main(["map", "--arch", "tiny", "--network", "no-such-net", "--out", str(out)]) == 1
    assert os.listdir(tmp_path) == []
    assert len(_err_lines(capsys)) == 1


def test_error_after_work_leaves_nothing_and_old_out_untouched(tmp_path, monkeypatch, capsys):
    import mapping.report as report

    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(report, "render_report", boom)
    assert main([*MAP, "--out", str(out), "--force"]) == 130
    assert _err_lines(capsys) == ["aimc: interrupted"]
    assert sorted(os.listdir(tmp_path)) == ["o"] and os.listdir(out) == ["keep.txt"]


def test_non_empty_out_refused_without_force(tmp_path, capsys):
    out = tmp_path / "o"
    assert main([*MAP, "--out", str(out)]) == 0
    before = {p: p.read_bytes() for p in out.iterdir()}
    # `map` then `accuracy` (or another map) into one folder used to overwrite report.md silently
    assert main([*MAP, "--out", str(out), "--no-plots"]) == 1
    assert _err_lines(capsys) == [f"aimc: error: --out {out}: folder is not empty; give a new or empty folder, "
                                  "or --force to replace it whole when the run succeeds"]
    assert {p: p.read_bytes() for p in out.iterdir()} == before


def test_force_replaces_whole_and_no_plots_lists_no_plots(tmp_path):
    out = tmp_path / "o"
    assert main([*MAP, "--out", str(out)]) == 0
    assert "Plots: `energy_breakdown.png`" in (out / "report.md").read_text()
    assert main([*MAP, "--out", str(out), "--no-plots", "--force"]) == 0
    # no PNG of the earlier run remains beside a report that does not list plots
    assert sorted(os.listdir(out)) == ["layers.csv", "report.json", "report.md"]
    assert "png" not in (out / "report.md").read_text()
    assert os.listdir(tmp_path) == ["o"]  # no staging folder left beside it


def test_empty_existing_out_accepted(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    assert main([*MAP, "--out", str(out), "--no-plots"]) == 0
    assert sorted(os.listdir(out)) == ["layers.csv", "report.json", "report.md"]


def test_force_refuses_current_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x").write_text("x")
    assert main([*MAP, "--out", ".", "--force"]) == 1
    assert "refusing to replace the current folder" in _err_lines(capsys)[0]
    assert os.listdir(tmp_path) == ["x"]


def test_drift_out_staged(tmp_path, capsys):
    out = tmp_path / "d"
    assert main(["drift", "--arch", "tiny", "--vectors", "1", "--out", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["drift.json", "drift.md"]
    assert main(["drift", "--arch", "tiny", "--vectors", "1", "--out", str(out)]) == 1
    assert "folder is not empty" in _err_lines(capsys)[-1]
