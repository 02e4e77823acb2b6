"""Issue 9: the command line at its edges — all-or-nothing output, hostile YAML, the error policy,
bounds on chip keys, contradictory flags, Ctrl-C. Every input is written in the test."""

from __future__ import annotations

import os

import pytest

from mapping.cli.main import main

MAP = ["map", "--arch", "tiny", "--network", "mlp", "--quiet"]


def _sigint_default() -> None:
    """Child side of the Ctrl-C tests: the default SIGINT disposition, whatever the test runner inherited
    (a background job of a non-interactive shell starts with SIGINT ignored, and children inherit that)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)

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
    assert main([*MAP, "--out", str(out), "--plots"]) == 0
    assert "Plots: `energy_breakdown.png`" in (out / "report.md").read_text()
    assert sum(name.endswith(".png") for name in os.listdir(out)) == 3
    assert main([*MAP, "--out", str(out), "--force"]) == 0  # plots are opt-in: the default draws none
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


# --------------------------------------------------------------------------- 2. hostile YAML

_BOMB = ('a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
         + "".join(f'{chr(98 + i)}: &{chr(98 + i)} [{",".join(["*" + chr(97 + i)] * 9)}]\n' for i in range(8))
         + "name: x\n")


@pytest.mark.parametrize(("text", "expected"), [
    (_BOMB, "more than 100,000 values once aliases are expanded (an alias bomb?) under line 6"),
    ("name: " + "[" * 5000 + "]" * 5000 + "\n", "nesting deeper than 32 levels at line 1"),
    ("name: x\narray: &a {rows: *a}\n", "recursive alias at line 2; a value may not contain itself"),
    ("description: " + "x" * 2000 + "\n", "name: missing required key"),
    ("name: x\narray: {rows: '" + "9" * 5000 + "'}\n",
     "array.rows: bad value '" + "9" * 27 + "..." + "9" * 28 + "' (5,000 chars)"),
])
@pytest.mark.parametrize("command", ["spec", "map"])
def test_hostile_chip_yaml_one_short_line(tmp_path, capsys, text, expected, command):
    import time

    chip = tmp_path / "c.yaml"
    chip.write_text(text)
    t = time.perf_counter()
    argv = ["spec", "--arch", str(chip)] if command == "spec" else [*MAP[:1], "--arch", str(chip), *MAP[3:],
                                                                     "--out", str(tmp_path / "o")]
    assert main(argv) == 1
    assert time.perf_counter() - t < 5
    (line,) = _err_lines(capsys)
    assert line.startswith(f"aimc: error: {chip}: {expected}")
    assert len(line) < 300 and not (tmp_path / "o").exists()


def test_hostile_layer_list(tmp_path, capsys):
    net = tmp_path / "n.yaml"
    net.write_text(_BOMB.replace("name: x", "name: n\ninput_shape: [4]\nlayers: *h"))
    assert main([*MAP[:3], "--network", str(net), "--out", str(tmp_path / "o")]) == 1
    (line,) = _err_lines(capsys)
    assert "alias bomb" in line and len(line) < 300
    net.write_text("name: n\ninput_shape: [4]\nlayers:\n- {name: '" + "x" * 10_000 + "', op: linear, out_features: 2}\n")
    assert main([*MAP[:3], "--network", str(net), "--out", str(tmp_path / "o")]) == 1
    (line,) = _err_lines(capsys)
    assert "expected a name of at most 128 characters" in line and len(line) < 300


def test_merge_keys_still_allowed():
    from archmodel.yaml_loader import safe_load_unique

    assert safe_load_unique("b: &b {rows: 64}\narray: {<<: *b, cols: 8}\n")["array"] == {"rows": 64, "cols": 8}


def test_huge_yaml_file_refused_before_reading(tmp_path, capsys):
    from archmodel.yaml_loader import MAX_YAML_CHARS

    chip = tmp_path / "big.yaml"
    with open(chip, "wb") as fh:
        fh.truncate(MAX_YAML_CHARS + 1)  # sparse: costs no disk
    assert main(["spec", "--arch", str(chip)]) == 1
    assert _err_lines(capsys) == [f"aimc: error: {chip}: {MAX_YAML_CHARS + 1:,} bytes; a YAML input may have "
                                  f"at most {MAX_YAML_CHARS:,}"]


# --------------------------------------------------------------------------- 3. error policy


def _onnx_external(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 3), np.float32), "W")
    g = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [w])
    p = tmp_path / "ext.onnx"
    onnx.save_model(helper.make_model(g), str(p), save_as_external_data=True, location="ext.data",
                    size_threshold=0)
    (tmp_path / "ext.data").unlink()
    return p


def _onnx_if(tmp_path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    def branch(name):
        return helper.make_graph([helper.make_node("Identity", ["x"], [name])], name, [],
                                 [helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4])])

    g = helper.make_graph(
        [helper.make_node("If", ["c"], ["z"], then_branch=branch("a"), else_branch=branch("b"), name="if0"),
         helper.make_node("MatMul", ["z", "W"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(np.array(True), "c"), numpy_helper.from_array(np.ones((4, 3), np.float32), "W")])
    p = tmp_path / "if.onnx"
    onnx.save_model(helper.make_model(g), str(p))
    return p


def test_bad_onnx_one_line(tmp_path, capsys):
    from archmodel.network.schema import NetworkError
    from archmodel.onnx_import import import_onnx

    p = _onnx_external(tmp_path)
    # a full import needs the external weights; aimc map reads shapes only and maps the file (issue 22)
    with pytest.raises(NetworkError, match=r"^" + str(p) + ": initializer 'W' keeps its data in the external "
                       "file 'ext.data', which is missing; copy it beside the model$"):
        import_onnx(p)
    assert main([*MAP[:3], "--network", str(p), "--out", str(tmp_path / "ext"), "--no-plots", "--quiet"]) == 0
    p = _onnx_if(tmp_path)
    assert main([*MAP[:3], "--network", str(p), "--out", str(tmp_path / "o")]) == 1
    assert _err_lines(capsys) == [f"aimc: error: {p}: node 'if0' (op If): control flow with sub-graphs (If, Loop, "
                                  "Scan) is not supported; export the model with the branch resolved"]
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("content", [b"", bytes(range(256)) * 8, b"PK\x03\x04garbage"])
def test_bad_npz_one_line_no_pickle_advice(tmp_path, capsys, content):
    w = tmp_path / "w.npz"
    w.write_bytes(content)
    assert main(["accuracy", "--arch", "tiny", "--network", "digits-mlp", "--weights", str(w),
                 "--out", str(tmp_path / "o")]) == 1
    (line,) = _err_lines(capsys)
    assert line == (f"aimc: error: cannot read weights {w}: not an .npz file (a zip archive of arrays, "
                    "as 'aimc train' writes)")
    assert not (tmp_path / "o").exists()


def test_object_npz_no_pickle_advice(tmp_path, capsys):
    import numpy as np

    w = tmp_path / "w.npz"
    np.savez(w, a=np.array([{"x": 1}], dtype=object))
    assert main(["accuracy", "--arch", "tiny", "--network", "digits-mlp", "--weights", str(w),
                 "--out", str(tmp_path / "o")]) == 1
    (line,) = _err_lines(capsys)
    assert "allow_pickle" not in line and "unsafe" not in line and "Python objects" in line


def test_numeric_warning_becomes_one_line_error(monkeypatch, capsys):
    import numpy as np

    import mapping.cli.spec as spec_cmd

    def overflow(args):
        return int(np.float64(1e308) * np.float64(10) > 0)  # RuntimeWarning: overflow

    register = spec_cmd.register
    monkeypatch.setattr(spec_cmd, "register", lambda sub: (register(sub), sub.choices["spec"].set_defaults(
        func=overflow)))
    assert main(["spec", "--arch", "tiny"]) == 1
    assert _err_lines(capsys) == [
        "aimc: error: numeric error (overflow encountered in scalar multiply) while evaluating chip description "
        "'tiny': a value is outside the model's range; check the chip keys against 'aimc spec --arch ...' and "
        "docs/design.md"]


def test_value_error_is_a_bug_now(monkeypatch, capsys):
    import mapping.cli.spec as spec_cmd

    def boom(args):
        raise ValueError("x")

    register = spec_cmd.register
    monkeypatch.setattr(spec_cmd, "register", lambda sub: (register(sub), sub.choices["spec"].set_defaults(
        func=boom)))
    assert main(["spec"]) == 1
    assert _err_lines(capsys) == ["aimc: internal error: ValueError: x (set AIMC_DEBUG=1 for the traceback)"]


# --------------------------------------------------------------------------- 4. bounds, strict types, round trip


@pytest.mark.parametrize(("yaml_text", "expected"), [
    ("technology: {clock_mhz: 1e308}", "technology.clock_mhz: bad value 1e+308: Input should be less than or equal "
                                       "to 10000"),
    ("technology: {clock_mhz: 1e-300}", "technology.clock_mhz: bad value 1e-300: Input should be greater than or "
                                        "equal to 1"),
    ("device: {prog_noise_scale: 1e300}", "device.prog_noise_scale: bad value 1e+300: Input should be less than or "
                                          "equal to 100"),
    ("energy_pj: {dac_per_row_pj: -1}", "energy_pj.dac_per_row_pj: bad value -1: Input should be greater than or "
                                        "equal to 0"),
    ("area_um2: {adc_um2: -1}", "area_um2.adc_um2: bad value -1: Input should be greater than or equal to 0"),
    ("array: {rows: 65536, cols: 65536}", "array.rows: bad value 65536: Input should be less than or equal to 4096"),
    ("tile_grid: {rows: true}", "tile_grid.rows: bad value True: Input should be a valid integer"),
    ("array: {rows: '512'}", "array.rows: bad value '512': Input should be a valid integer"),
])
def test_absurd_chip_values_refused(tmp_path, capsys, yaml_text, expected):
    chip = tmp_path / "c.yaml"
    chip.write_text(f"name: x\n{yaml_text}\n")
    assert main([*MAP[:1], "--arch", str(chip), *MAP[3:], "--out", str(tmp_path / "o")]) == 1
    (line,) = _err_lines(capsys)
    assert line.startswith(f"aimc: error: {chip}: {expected}")
    assert os.listdir(tmp_path) == ["c.yaml"]


@pytest.mark.parametrize("name", ["''", "'   '", "'" + "n" * 129 + "'"])
def test_bad_chip_name_refused(tmp_path, capsys, name):
    chip = tmp_path / "c.yaml"
    chip.write_text(f"name: {name}\n")
    assert main(["spec", "--arch", str(chip)]) == 1
    assert _err_lines(capsys)[0].startswith(f"aimc: error: {chip}: name: bad value")


def test_exponent_floats_without_dot_are_numbers():
    from archmodel.spec import load_spec_text

    spec = load_spec_text("name: x\ndevice: {t_read_s: 5e-7}\ntechnology: {clock_mhz: 1e3}\n")
    assert spec.device.t_read_s == 5e-7 and spec.technology.clock_mhz == 1000.0


@pytest.mark.parametrize("preset", ["fig11", "hermes", "tiny"])
def test_spec_output_loads_back_with_same_hash(tmp_path, capsys, preset):
    from archmodel.spec import load_spec

    assert main(["spec", "--arch", preset]) == 0
    text = capsys.readouterr().out
    mine = tmp_path / "my.yaml"
    mine.write_text(text)
    assert load_spec(mine) == load_spec(preset)
    assert main(["spec", "--arch", str(mine)]) == 0
    assert capsys.readouterr().out == text  # the same description, hash and derived figures


def test_result_sanity_names_the_keys(monkeypatch, capsys, tmp_path):
    import mapping.mapper as mapper

    real = mapper.map_network

    def zero_energy(*a, **k):
        import dataclasses

        return dataclasses.replace(real(*a, **k), tops_per_w=float("inf"))

    monkeypatch.setattr(mapper, "map_network", zero_energy)
    assert main([*MAP, "--out", str(tmp_path / "o")]) == 1
    assert _err_lines(capsys) == ["aimc: error: chip description 'tiny': total tops_per_w = inf (expected a finite "
                                  "number > 0); check the energy_pj.* keys"]
    assert os.listdir(tmp_path) == []


# --------------------------------------------------------------------------- 5. flags


def test_contradictory_flags_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*MAP, "--out", str(tmp_path / "o"), "--replicate", "--no-replicate"])
    assert exc.value.code == 2
    assert _err_lines(capsys)[-1] == "aimc: error: --replicate and --no-replicate contradict each other; give one"
    assert main([*MAP, "--out", str(tmp_path / "o"), "--no-replicate", "--no-replicate", "--no-plots"]) == 0


def test_option_without_effect_refused(tmp_path, capsys):
    assert main([*MAP, "--out", str(tmp_path / "o"), "--fold-batchnorm"]) == 1
    assert _err_lines(capsys) == ["aimc: error: --fold-batchnorm has no effect for network 'mlp': it applies to "
                                  "ONNX files only (zoo and YAML networks keep batch norm as written)"]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("command", ["spec", "drift", "map", "train", "accuracy", "verilog", "cosim"])
def test_help_gives_defaults(capsys, command, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert max(len(line) for line in text.splitlines()) <= 100  # wrapped
    joined = " ".join(text.split())
    assert "--arch NAME|PATH chip description" not in joined or "(default: fig11)" in joined
    if command in ("drift", "accuracy", "train", "cosim"):
        assert "--seed SEED seed of every random draw (default: 0)" in joined


# --------------------------------------------------------------------------- 6. Ctrl-C


def test_ctrl_c_inside_staging_removes_it(tmp_path):
    from archmodel.fileio import staged_output

    out = tmp_path / "o"
    with pytest.raises(KeyboardInterrupt), staged_output(out) as stage:
        (stage / "half.md").write_text("x")
        raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_ctrl_c_train_exits_130_within_a_second(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "t"
    proc = subprocess.Popen([sys.executable, "-m", "mapping.cli", "train", "--network", "digits-mlp",
                             "--epochs", "10000", "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_default)
    time.sleep(3.0)
    assert proc.poll() is None, proc.communicate()  # still training when interrupted
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        _, stderr = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("aimc train did not exit within 5 s of SIGINT")
    assert time.monotonic() - t0 < 2.0  # 0.2-0.3 s measured on an idle machine; headroom for a loaded CI
    assert proc.returncode == 130 and stderr.strip().splitlines() == ["aimc: interrupted"]
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(("sig", "code", "line"), [("SIGINT", 130, "aimc: interrupted"),
                                                   ("SIGTERM", 143, "aimc: terminated")])
def test_ctrl_c_verilog_one_line_nothing_left(tmp_path, sig, code, line):
    # Ctrl-C (or SIGTERM, e.g. `timeout`: stop 13 review, it used to leave the staging folder) during the Verilog
    # export of fig11 (minutes long): exit 130 / 143 within a second, one line (the Amaranth "created but never
    # used" warnings at exit used to follow it), no --out and no staging folder
    import signal
    import subprocess
    import sys
    import time

    proc = subprocess.Popen([sys.executable, "-m", "mapping.cli", "verilog", "--arch", "fig11", "--out",
                             str(tmp_path / "v")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_default)
    time.sleep(6.0)
    assert proc.poll() is None, proc.communicate()
    t0 = time.monotonic()
    proc.send_signal(getattr(signal, sig))
    try:
        _, stderr = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"aimc verilog did not exit within 10 s of {sig}")
    assert time.monotonic() - t0 < 2.0  # 0.2-0.3 s measured on an idle machine; headroom for a loaded CI
    assert proc.returncode == code and stderr.strip().splitlines() == [line]
    assert os.listdir(tmp_path) == []
