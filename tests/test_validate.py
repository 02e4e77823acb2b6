"""Published chips reproduced (issue 13): ISAAC tile/chip roll-up, HERMES peak, and the sources of every
PPA constant of the packaged presets (docs/references.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from archmodel.spec import load_spec
from mapping import validate

REFS = Path(__file__).resolve().parents[1] / "docs" / "references.md"

#: The PPA constants whose source notes are checked: (section, key or None = every key of the section).
PPA_KEYS = [("energy_pj", None), ("area_um2", None), ("leakage", None), ("interconnect", "energy_pj_per_bit_hop"),
            ("chip_link", "energy_pj_per_bit"), ("chip_link", "bandwidth_gbps"), ("array", "v_read_v"),
            ("technology", "node_nm"), ("technology", "supply_v"), ("programming", None)]

#: The constants of the hermes preset (and of fig11, which shares them) that no publication gives (<= 10).
ASSUMED_ALLOW_LIST = {
    "energy_pj.input_duty", "energy_pj.g_mean_fraction", "energy_pj.tile_controller_per_mvm_pj",
    "leakage.tile_leakage_mw", "leakage.digital_leakage_mw", "area_um2.array_per_device_um2",
    "area_um2.programming_per_array_um2", "area_um2.tile_controller_um2", "area_um2.io_um2", "array.v_read_v",
}
#: The PCM (re)programming constants no publication at hand gives (issue 10 moved them from mapping/costs.py into
#: the chip description's ``programming`` section; docs/references.md): allowed on top of the 10 PPA constants
#: above, for every preset (isaac, ReRAM programmed once in shafiee2016, borrows the PCM pulse: assumed too).
PROGRAMMING_ASSUMED = {"programming.iterations", "programming.pulse_energy_pj", "programming.rows_parallel"}
LOCATOR = re.compile(r"(Table \d|Fig\. [\d.]+|Eq\. \d|Sec\. [\dIVX]+|Methods|pp?\. \d)")


def _reference_keys() -> set[str]:
    return set(re.findall(r"^\| `([a-z]+\d{4})` \|", REFS.read_text(encoding="utf-8"), re.M))


def _ppa_sources(name: str) -> dict[str, str]:
    s = load_spec(name)
    out = {}
    for section, key in PPA_KEYS:
        sec = getattr(s, section)
        keys = [key] if key else [k for k in type(sec).model_fields if k != "sources"]
        for k in keys:
            out[f"{section}.{k}"] = sec.sources[k]
    return out


def test_isaac_tile_rollup_within_1_percent():
    p, a = validate.isaac_tile()
    assert sum(p.values()) == pytest.approx(330.0, rel=0.01)
    assert sum(a.values()) / 1e6 == pytest.approx(0.372, rel=0.01)
    # hand check of one component: 96 ADCs x 6.1035 fJ/step x 2^8 x 1.28 GS/s = 192 mW (12 IMAs x 16 mW)
    assert p["adc"] == pytest.approx(96 * 6.103515625e-15 * 256 * 1.28e9 * 1e3, rel=1e-4)
    assert p["adc"] == pytest.approx(192.0, rel=1e-4)
    # 8 x 128 x 128 cells x 12 IMAs at one read per 100 ns, 2.4 mW per IMA
    assert p["array"] == pytest.approx(12 * 2.4, rel=1e-4)


def test_isaac_chip_totals():
    w, mm2 = validate.isaac_chip()
    assert w == pytest.approx(65.8, rel=0.01)
    assert mm2 == pytest.approx(85.4, rel=0.01)


def test_hermes_four_phase_throughput_within_20_percent():
    r = validate.hermes_peak(4)
    assert r.tops == pytest.approx(16.1, rel=0.2)
    # 64 cores x 256 x 256 x 2 ops per MVM of 8 DAC beats + (4 x 128 + 5) ns + 8 ADC beats + 2 = 535 cycles
    assert r.tops == pytest.approx(64 * 256 * 256 * 2 / 535e-9 / 1e12, rel=1e-9)


def test_hermes_one_phase_throughput_within_20_percent():
    r = validate.hermes_peak(1)
    assert r.tops == pytest.approx(63.1, rel=0.2)
    # 2 affine lanes (issue 14): the 151-cycle array MVM (8 DAC beats + 133 + 8 ADC beats + 2) bounds it
    assert r.tops == pytest.approx(64 * 256 * 256 * 2 / 151e-9 / 1e12, rel=1e-9)


@pytest.mark.xfail(strict=True, reason="band missed with sourced constants: ours 39.5 TOPS/W (ratio 4.05), the array "
                   "read V^2*g*t is the largest share; HERMES' CCO-ADCs run during the whole integration window, which "
                   "a SAR-ADC Walden FoM (ISAAC's) underestimates; constants kept, not tuned (issue 13)")
def test_hermes_one_phase_tops_per_w_within_20_percent():
    assert validate.hermes_peak(1).tops_per_w == pytest.approx(9.76, rel=0.2)


def test_hermes_energy_ratio_and_dominant_component_reported():
    r = validate.hermes_peak(1)
    assert r.tops_per_w / 9.76 == pytest.approx(4.05, abs=0.05)  # 2.62 before hermes' 10.35 uS devices (issue 11)
    assert max(r.energy_pj, key=r.energy_pj.get) == "array"


def test_no_hermes_constant_is_the_validated_system_figure():
    for key, note in _ppa_sources("hermes").items():
        assert "9.76" not in note and "TOPS/W" not in note and "calibrated" not in note, key


@pytest.mark.parametrize("name", ["hermes", "fig11", "isaac"])
def test_every_ppa_source_resolves(name):
    refs = _reference_keys()
    assert {"legallo2023", "shafiee2016", "horowitz2014", "stillmaker2017", "walden1999"} <= refs
    assumed = set()
    for key, note in _ppa_sources(name).items():
        if note.startswith("assumed"):
            assumed.add(key)
            continue
        if note.startswith(("not used", "model:")):
            continue
        cited = set(re.findall(r"\b([a-z]+\d{4})\b", note)) & refs
        assert cited, f"{name} {key}: no docs/references.md key in {note!r}"
        assert LOCATOR.search(note), f"{name} {key}: no locator (table/figure/equation/section/page) in {note!r}"
    programming = {k for k in assumed if k.startswith("programming.")}
    assumed -= programming
    assert len(assumed) <= 10, sorted(assumed)  # issue 13: at most 10 "assumed" constants per preset
    if name == "isaac":
        assert assumed == set()
        assert programming == PROGRAMMING_ASSUMED | {"programming.pulse_ns"}
    else:
        assert assumed == ASSUMED_ALLOW_LIST
        assert programming == PROGRAMMING_ASSUMED  # the 4.4 us pulse is sourced (ambrogio2018)


def test_cli_validate_and_isaac_accuracy_refused(tmp_path):
    r = subprocess.run([sys.executable, "-m", "mapping.cli", "validate"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "| isaac | tile power | 330 mW | 329.8 mW | 0.999 |" in r.stdout
    assert "| hermes | TOPS/W (1-phase) | 9.76 TOPS/W |" in r.stdout
    r = subprocess.run([sys.executable, "-m", "mapping.cli", "accuracy", "--arch", "isaac", "--network",
                        "digits-cnn", "--out", str(tmp_path / "a")], capture_output=True, text=True)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "device.model is 'none'" in lines[0]
