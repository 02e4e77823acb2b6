"""``aimc map`` end to end: reports written whole, byte-identical, and clear errors with no partial report."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from mapping.cli.main import main
from mapping.report import REPORT_FILES

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def test_map_writes_report_byte_identical(tmp_path, capsys):
    outs = []
    for k in range(2):
        out = tmp_path / f"r{k}"
        assert main(["map", "--arch", "tiny", "--network", "mlp", "--out", str(out), "--plots"]) == 0
        outs.append(out)
    for name in REPORT_FILES:
        a, b = (outs[0] / name).read_bytes(), (outs[1] / name).read_bytes()
        assert a == b, name
        assert len(a) > 0
    data = json.loads((outs[0] / "report.json").read_text())
    t = data["totals"]
    for key in ("latency_per_inference_ns", "inferences_per_s", "tops", "tops_per_w", "tops_per_mm2",
                "energy_per_inference_pj", "area_mm2", "pcm_devices_used", "chips"):
        assert key in t
    assert data["spec_hash"] and data["aimc_version"]
    # matrix layers + the operators outside them (issue 10: ReLUs on the affine unit) + leakage
    assert sum(row["energy_total_pj"] for row in data["layers"]) + sum(
        row["energy_total_pj"] for row in data["digital_ops"]) + t["energy_per_inference_by_component_pj"][
        "leakage_pj"] == pytest.approx(t["energy_per_inference_pj"])
    text = (outs[0] / "report.md").read_text()
    assert str(tmp_path) not in text and "TOPS/W" in text
    assert "TOPS/W" in capsys.readouterr().out


def test_map_onnx_resnet50(tmp_path):
    out = tmp_path / "r50"
    assert main(["map", "--arch", "fig11", "--network", str(LIGHT / "light_resnet50.onnx"), "--out", str(out),
                 "--no-plots", "--quiet"]) == 0
    data = json.loads((out / "report.json").read_text())
    assert data["totals"]["chips"] >= 2
    assert len(data["layers"]) == 54


def _no_report(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("case", ["unknown", "not_onnx", "unsupported", "max_chips"])
def test_bad_inputs_one_error_no_report(tmp_path, capsys, case):
    out = tmp_path / "out"
    arch, net, extra = "fig11", "resnet32-joshi2020", []
    if case == "unknown":
        net = "resnet-99"
    elif case == "not_onnx":
        p = tmp_path / "bad.onnx"
        p.write_bytes(b"\x00\x01 not a model at all \xff" * 10)
        net = str(p)
    elif case == "unsupported":
        from onnx import TensorProto, helper

        # an operator whose output size depends on the data cannot be sized
        node = helper.make_node("NonZero", ["x"], ["y"], name="norm1")
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, [4, "n"])])
        p = tmp_path / "lrn.onnx"
        onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(p))
        net = str(p)
    else:
        net, extra = str(LIGHT / "light_resnet50.onnx"), ["--max-chips", "1"]
    status = main(["map", "--arch", arch, "--network", net, "--out", str(out), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert len(err) == 1 and err[0].startswith("aimc: error: ")
    expect = {"unknown": "resnet-99", "not_onnx": "not an ONNX model", "unsupported": "NonZero",
              "max_chips": "tiles"}[case]
    assert expect in err[0]
    if case == "unsupported":
        assert "norm1" in err[0]
    _no_report(out)


def test_help_mentions_options(capsys):
    with pytest.raises(SystemExit):
        main(["map", "--help"])
    text = capsys.readouterr().out
    for opt in ("--arch", "--network", "--out", "--max-chips", "--replicate", "--no-replicate"):
        assert opt in text


def test_fold_batchnorm_recorded_and_ppa_unchanged(tmp_path):
    # light_resnet50.onnx has 53 BatchNormalization nodes. Folding them into the
    # convs removes the batchnorm layers, but PPA cannot change: a kept batch norm
    # is merged into the affine unit's per-column scale and offset anyway.
    from archmodel.onnx_import import import_onnx

    onnx_path = LIGHT / "light_resnet50.onnx"
    kept, folded = import_onnx(onnx_path), import_onnx(onnx_path, fold_batchnorm=True)
    assert sum(lyr.op == "batchnorm" for lyr in kept.layers) == 53
    assert sum(lyr.op == "batchnorm" for lyr in folded.layers) == 0
    reports = {}
    for flag in ([], ["--fold-batchnorm"]):
        out = tmp_path / ("fold" if flag else "keep")
        assert main(["map", "--arch", "fig11", "--network", str(onnx_path), "--out", str(out),
                     "--no-plots", "--quiet", *flag]) == 0
        reports[bool(flag)] = json.loads((out / "report.json").read_text())
        md = (out / "report.md").read_text()
        assert ("batch norm folded into the weights" in md) == bool(flag)
    assert reports[False]["options"]["fold_batchnorm"] is False
    assert reports[True]["options"]["fold_batchnorm"] is True
    assert reports[True]["totals"] == reports[False]["totals"]


def test_report_md_names_cosim_layer_index(tmp_path):
    out = tmp_path / "r"
    assert main(["map", "--arch", "tiny", "--network", "digits-mlp", "--out", str(out), "--no-plots", "--quiet"]) == 0
    md = (out / "report.md").read_text()
    assert "Rows are the `--layer K` indices" not in md
    assert "Row K is the layer index that `aimc cosim --layer K` takes." in md


def test_empty_out_rejected(tmp_path, capsys, monkeypatch):
    # Path('') is '.', so an empty --out used to write the report into the current folder
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["map", "--arch", "tiny", "--network", "mlp", "--out", "", "--quiet"])
    assert exc.value.code == 2
    assert "aimc: error: argument --out: empty folder name; expected a folder path" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("bad", ["file", "readonly"])
def test_bad_out_found_before_mapping(tmp_path, capsys, bad):
    import os

    if bad == "file":
        (tmp_path / "f").write_text("x")
        out = str(tmp_path / "f" / "sub")
        expected = f"aimc: error: --out {out}: not a writable folder (Not a directory)"
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        out = str(ro)
        if os.geteuid() == 0:
            pytest.skip("running as root: a read-only folder is still writable")
        expected = f"aimc: error: --out {out}: not a writable folder (Permission denied)"
    # --out is checked before the network is loaded: no-such-net would give another error
    assert main(["map", "--arch", "tiny", "--network", "no-such-net", "--out", out, "--quiet"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [expected]


def test_write_error_names_final_file(tmp_path, monkeypatch):
    import os

    from archmodel import fileio

    monkeypatch.setattr(fileio.os, "fdopen", lambda fd, mode: _Failing(fd))
    with pytest.raises(OSError) as exc:
        fileio.write_files_atomic(tmp_path, {"a.md": "x", "b.json": "y"})
    assert str(exc.value) == f"{tmp_path / 'a.md'}: cannot write (No space left on device)"
    assert os.listdir(tmp_path) == []  # the temporary is gone too


class _Failing:
    def __init__(self, fd):
        import os

        os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def write(self, data):
        raise OSError(28, "No space left on device")
