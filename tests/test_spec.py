"""Chip description: presets, validation errors, derived figures, `aimc spec`."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from archmodel.spec import (
    ChipSpec,
    SpecError,
    array_mvm_cycles,
    array_mvm_latency_ns,
    list_presets,
    load_spec,
    load_spec_text,
    ns_to_cycles,
)
from mapping.cli.main import main


def test_presets_listed():
    assert list_presets() == ["fig11", "hermes", "isaac", "proto", "tiny", "tiny-fpga"]


@pytest.mark.parametrize("name", ["fig11", "hermes", "isaac", "proto", "tiny", "tiny-fpga"])
def test_every_preset_constant_has_a_source(name):
    spec = load_spec(name)
    missing = []
    for section_name in ChipSpec.model_fields:
        section = getattr(spec, section_name)
        if not hasattr(section, "sources"):
            continue
        for key in type(section).model_fields:
            if key != "sources" and key not in section.sources:
                missing.append(f"{section_name}.{key}")
    assert missing == []


def test_fig11_figures():
    s = load_spec("fig11")
    assert (s.array.rows, s.array.cols, s.array.devices_per_weight) == (512, 512, 2)
    assert s.tile_grid.tiles == 64
    assert s.digital.digital_layers == ("first", "last")
    # full scale: 0.125 * 512 rows * 25 uS * 0.2 V = 320 uA
    assert s.adc_full_scale_ua == pytest.approx(320.0)


def test_hermes_peak_throughput_matches_published_figure():
    # Le Gallo et al. 2023: 63.1 TOPS (1-phase). 64 cores x 256 x 256 weights x 2 ops per MVM.
    s = load_spec("hermes")
    t_ns = array_mvm_latency_ns(s)
    assert t_ns == pytest.approx(133.0)
    tops = s.tile_grid.tiles * s.array.rows * s.array.cols * 2 / (t_ns * 1e-9) / 1e12
    assert tops == pytest.approx(63.1, rel=0.01)


def test_ns_to_cycles():
    assert ns_to_cycles(100, 1000) == 100
    assert ns_to_cycles(60, 100) == 6
    assert ns_to_cycles(61, 100) == 7
    assert ns_to_cycles(0.1, 100) == 1
    assert ns_to_cycles(0, 100) == 0
    assert array_mvm_cycles(load_spec("tiny")) == 6  # (40 + 20) ns at 100 MHz
    with pytest.raises(ValueError, match="time must be"):
        ns_to_cycles(-1, 100)


def test_bit_serial_latency():
    s = load_spec("tiny").replace(**{"array.dac_scheme": "bit_serial", "array.dac_bits": 4})
    assert array_mvm_latency_ns(s) == pytest.approx(4 * 40 + 20)


def test_sources_and_plain_values_mix():
    s = load_spec_text("name: x\narray: {rows: {value: 64, source: 'paper A'}, cols: 64, "
                       "rows_per_dac_beat: 8, cols_per_adc_beat: 8}")
    assert s.array.rows == 64 and s.array.sources == {"rows": "paper A"}


def test_hash_stable_and_sensitive():
    a, b = load_spec("tiny"), load_spec("tiny")
    assert a.spec_hash == b.spec_hash
    assert a.replace(**{"array.adc_bits": 6}).spec_hash != a.spec_hash


def test_immutable():
    s = load_spec("tiny")
    with pytest.raises(ValidationError, match="frozen"):
        s.array.rows = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: a\ntechnology: {clock: 500}", r"technology\.clock: unknown key .*did you mean 'clock_mhz'"),
        ("name: a\narray: {rowz: 5}", r"array\.rowz: unknown key .*did you mean 'rows'"),
        ("name: a\nbogus: 1", r"bogus: unknown key"),
        ("name: a\narray: {rows: -5}", r"array\.rows: bad value -5: .*greater than 0"),
        ("name: a\narray: {rows: 0}", r"array\.rows: bad value 0"),
        ("name: a\narray: {cols: abc}", r"array\.cols: bad value 'abc': .*integer"),
        ("name: a\narray: {dac_scheme: analog}", r"array\.dac_scheme: bad value 'analog': .*'pwm' or 'bit_serial'"),
        ("name: a\narray: {dac_bits: 17}", r"array\.dac_bits: bad value 17: .*less than or equal to 16"),
        ("name: a\narray: {dac_bits: 12}", r"dac_bits=12 with dac_scheme 'pwm'; expected <= 8"),
        ("name: a\narray: {rows: 16}", r"rows_per_dac_beat=32 exceeds rows=16"),
        ("name: a\narray: 5", r"array: bad value 5"),
        ("name: [a", r"YAML does not parse at line 1"),
        ("", r"empty chip description"),
        ("- 1\n- 2", r"expected a YAML mapping"),
        ("technology: {}", r"name: missing required key"),
        ("name: a\nperiphery: {accumulator_bits: 8}", r"accumulator_bits=8 must exceed array\.adc_bits=8"),
    ],
)
def test_bad_descriptions(text, expected):
    with pytest.raises(SpecError, match=expected):
        load_spec_text(text, origin="t.yaml")


def test_error_names_origin():
    with pytest.raises(SpecError, match=r"^t\.yaml: array\.rows"):
        load_spec_text("name: a\narray: {rows: -1}", origin="t.yaml")


def test_unknown_preset_and_missing_file(tmp_path):
    with pytest.raises(SpecError, match="unknown chip description 'nope'.*fig11, hermes, isaac, proto, tiny"):
        load_spec("nope")
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "missing.yaml")


def test_cli_spec_ok(capsys):
    assert main(["spec", "--arch", "tiny", "--format", "json"]) == 0
    out = capsys.readouterr().out
    assert '"array_mvm_cycles": 6' in out and '"rows": 32' in out


def test_cli_bad_file_one_line_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\narray: {rows: -3}\n")
    r = subprocess.run([sys.executable, "-m", "mapping.cli", "spec", "--arch", str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert r.stdout == ""
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"aimc: error: {bad}: array.rows: bad value -3: "
                                             "Input should be greater than 0 (Word lines (inputs) per array.)"]


def test_cli_bad_argument_exit_2():
    r = subprocess.run([sys.executable, "-m", "mapping.cli", "spec", "--nope"], capture_output=True, text=True)
    assert r.returncode == 2 and "unrecognized arguments: --nope" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(("name", "per_array_um2"), [("fig11", 160000.0), ("hermes", 100000.0), ("tiny", 1000.0)])
def test_preset_array_area_totals_kept(name, per_array_um2):
    # The presets used to give one fixed area per array; the per-device figure
    # must reproduce those totals exactly at the preset's own array size.
    from mapping.costs import chip_area_um2

    s = load_spec(name)
    n_arrays = s.tile_grid.tiles * s.array.arrays_per_tile
    assert chip_area_um2(s, 1)["array"] == n_arrays * per_array_um2
    assert "derived from" in s.area_um2.sources["array_per_device_um2"]


def test_array_area_scales_with_array_size():
    from mapping.costs import chip_area_um2

    s = load_spec("tiny")  # 2x2 tiles of 32x32 arrays, 2 devices per weight, 0.48828125 um^2 per device
    big = s.replace(**{"array.rows": 64, "array.cols": 128})
    # 4 tiles * 64 * 128 * 2 devices * 0.48828125 um^2 = 32000 um^2 (hand-computed)
    assert chip_area_um2(big, 1)["array"] == pytest.approx(32000.0)
    assert chip_area_um2(s, 1)["array"] == pytest.approx(4000.0)
    four = s.replace(**{"array.devices_per_weight": 4})
    assert chip_area_um2(four, 1)["array"] == pytest.approx(8000.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: a\ntechnology: {clock_mhz: .inf}", r"technology\.clock_mhz: bad value inf: .*finite"),
        ("name: a\ndevice: {g_max_us: .nan}", r"device\.g_max_us: bad value nan: .*finite"),
        ("name: a\narea_um2: {adc_um2: -.inf}", r"area_um2\.adc_um2: bad value -inf"),
        ("name: a\nenergy_pj: {adc_per_conversion_pj: {value: .inf, source: x}}",
         r"energy_pj\.adc_per_conversion_pj: bad value inf: .*finite"),
        ("name: a\narray: {rows: 4097}", r"array\.rows: bad value 4097: .*less than or equal to 4096"),
        ("name: a\narray: {cols: 100000000}", r"array\.cols: bad value 100000000: .*4096"),
        ("name: a\ntile_grid: {rows: 1025}", r"tile_grid\.rows: bad value 1025: .*less than or equal to 1024"),
        ("name: a\ntile_grid: {cols: 4096}", r"tile_grid\.cols: bad value 4096: .*1024"),
        ("name: a\narray: {arrays_per_tile: 2000}", r"array\.arrays_per_tile: bad value 2000"),
    ],
)
def test_non_finite_and_oversized_rejected(text, expected):
    with pytest.raises(SpecError, match=expected):
        load_spec_text(text, origin="t.yaml")


def test_cli_map_infinite_clock_one_line(tmp_path):
    bad = tmp_path / "inf.yaml"
    bad.write_text("name: x\ntechnology: {clock_mhz: .inf}\n")
    r = subprocess.run([sys.executable, "-m", "mapping.cli", "map", "--arch", str(bad), "--network", "resnet32",
                        "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"aimc: error: {bad}: technology.clock_mhz: bad value inf: Input should be a finite number "
        "(Digital clock frequency in MHz (1 MHz .. 10 GHz).)"
    ]
    assert not (tmp_path / "o" / "report.json").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: a\narray:\n  rows: 64\n  cols: 64\n  rows: 128\n",
         r"^t\.yaml: array\.rows: duplicate key at line 5 \(first given at line 3\); each key may appear only once$"),
        ("name: a\nname: b\n", r"^t\.yaml: name: duplicate key at line 2 \(first given at line 1\)"),
        ("name: a\narray: {rows: 64}\narray: {cols: 64}\n", r"^t\.yaml: array: duplicate key at line 3"),
        ("name: a\nenergy_pj: {adc_per_conversion_pj: {value: 1, value: 2}}\n",
         r"^t\.yaml: energy_pj\.adc_per_conversion_pj\.value: duplicate key at line 2"),
        ("name: a\ndigital: {digital_layers: [{x: 1, x: 2}]}\n",
         r"^t\.yaml: digital\.digital_layers\[0\]\.x: duplicate key"),
    ],
)
def test_duplicate_keys_rejected(text, expected):
    with pytest.raises(SpecError, match=expected):
        load_spec_text(text, origin="t.yaml")


def test_yaml_merge_keys_may_be_overridden():
    # '<<' merges are not duplicates: a key given next to the merge overrides it (YAML 1.1).
    from archmodel.yaml_loader import safe_load_unique

    data = safe_load_unique("base: &b {rows: 64, cols: 64}\narray: {<<: *b, rows: 128}\n")
    assert data["array"] == {"rows": 128, "cols": 64}


def test_cross_field_error_is_one_short_line():
    # a model-level check must name the fields, not dump the whole section or file
    with pytest.raises(SpecError) as exc:
        load_spec_text("name: a\nperiphery: {accumulator_bits: 8}", origin="t.yaml")
    msg = str(exc.value)
    assert "{" not in msg and "accumulator_bits=8 must exceed array.adc_bits=8" in msg
    assert len(msg) < 200


def test_affine_latency_default_matches_rtl():
    # rtl/affine.py Requantizer.LATENCY is 6; the default and every preset must say so
    from rtl.affine import Requantizer

    assert load_spec_text("name: a").periphery.affine_latency_cycles == Requantizer.LATENCY == 6
    for name in list_presets():
        assert load_spec(name).periphery.affine_latency_cycles == Requantizer.LATENCY
