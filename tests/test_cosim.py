"""cocotb co-simulation of the exported Verilog against the archmodel golden model (issue 5, tile level).

Each (simulator, design) pair is built once and all its scenarios run in one
simulator process (:func:`tb.cosim.run_scenarios`); every parametrized test
then checks its own scenario: the cocotb test passed (zero mismatches, no
protocol error, no error flag), and the number of outputs it compared and --
where the stream never stalls -- the array-port cycles equal the hand-computed
figures below (tiny preset: 32 x 32 arrays, 8 rows per DAC beat, 8 columns per
ADC beat, array latency ceil((40 + 20) ns * 100 MHz) = 6 cycles, so one MVM is
``ceil(rows/8) + 6 + ceil(cols/8) + 2`` cycles).

Options: ``AIMC_COSIM_SEED`` (default 1) picks the stimulus; ``AIMC_WAVES=1``
dumps waveforms into the build folders. The ResNet-32 layer (fig11 geometry,
1,024 MVMs) is ``slow`` and runs on Verilator only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tb.cosim import cosim_layer, run_scenarios


def _placement(arch: str, network: str):
    """The mapper's placement without replication (what ``aimc cosim`` hands to :func:`cosim_layer`)."""
    from archmodel.spec import load_spec
    from archmodel.zoo import load_network
    from mapping.mapper import MapOptions, map_network

    return map_network(load_spec(arch), load_network(network), MapOptions(replicate=False)).placement()

pytestmark = pytest.mark.cosim

SEED = int(os.environ.get("AIMC_COSIM_SEED", "1"))
WAVES = os.environ.get("AIMC_WAVES", "") not in ("", "0")
SIMULATORS = ("icarus", "verilator")
A4 = {"array.arrays_per_tile": 4}

#: design -> (design kind, chip-description changes, cocotb tests run in one process)
DESIGNS = {
    "tiny": ("tile", {}, ["test_one_mvm", "test_full_layer", "test_backpressure", "test_reset_mid_transfer",
                          "test_invalid_config", "test_fault_detected"]),
    "tiny-a4": ("tile", A4, ["test_blocks_2x2"]),
    "digital": ("digital", {}, ["test_digital_first_layer"]),
}

#: scenario -> (design, cocotb test, outputs compared, array-port cycles or None when stalls are random)
SCENARIOS = {
    # one vector on one full 32 x 32 array: 32 outputs; 4 + 6 + 4 + 2 = 16 cycles
    "one_mvm": ("tiny", "test_one_mvm", 32, 16),
    # 3x3 conv 3 -> 8 on 8x8 (pad 1): 64 vectors x 8 outputs; K = 27: 4 + 6 + 1 + 2 = 13 cycles per MVM
    "full_layer": ("tiny", "test_full_layer", 64 * 8, 64 * 13),
    # 50 x 40 on 2 x 2 arrays, 6 vectors: MVMs of 32x32, 18x32, 32x8, 18x8 = 16 + 15 + 13 + 12 cycles
    "blocks_2x2": ("tiny-a4", "test_blocks_2x2", 6 * 40, 6 * (16 + 15 + 13 + 12)),
    # 29 x 27, 6 vectors, random gaps on every stream
    "backpressure": ("tiny", "test_backpressure", 6 * 27, None),
    # after the reset: 27 x 25, 3 vectors
    "reset_mid_transfer": ("tiny", "test_reset_mid_transfer", 3 * 25, None),
    # after the refused configurations: 20 x 12, 2 vectors: 3 + 6 + 2 + 2 = 13 cycles per MVM
    "invalid_config": ("tiny", "test_invalid_config", 2 * 12, 2 * 13),
    # digital datapath, 3x3 conv 3 -> 16 on 8x8: 64 pixels x 16 channels
    "digital_first_layer": ("digital", "test_digital_first_layer", 64 * 16, None),
}
#: the checker checked: a fault injected into one MVM's ADC codes (32 x 16, 4 vectors) is reported
FAULT = ("tiny", "test_fault_detected", 4 * 16)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Runs each (simulator, design) once, on first use; returns ``get(sim, design)``."""
    cache: dict = {}

    def get(sim: str, design: str):
        key = (sim, design)
        if key not in cache:
            kind, changes, tests = DESIGNS[design]
            build = tmp_path_factory.mktemp(f"cosim-{sim}-{design}")
            cache[key] = run_scenarios(sim, tests, arch="tiny", changes=changes, seed=SEED, t_inf_s=0.0,
                                       build_dir=build, design=kind, waves=WAVES)
        return cache[key]

    return get


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize("sim", SIMULATORS)
def test_tile_cosim(outcomes, sim, scenario):
    design, test, n_outputs, cycles = SCENARIOS[scenario]
    out = outcomes(sim, design)[test]
    assert out.passed, f"{sim} {scenario} seed {SEED}: {out.message}"
    d = out.data
    assert d["seed"] == SEED
    assert d["mismatches"] == 0, f"seed {SEED}"
    assert d["compared"] == d["expected_outputs"] == n_outputs, f"seed {SEED}: {d}"
    if cycles is not None:
        assert d["array_cycles"] == d["predicted_cycles"] == cycles, f"seed {SEED}: {d}"
    if scenario == "digital_first_layer":
        # the mapper's ceil(MACs / mac_lanes) = 64 * 27 * 16 / 4; the RTL adds its pipeline latency
        assert d["predicted_cycles"] == 6912
        assert 6912 <= d["cycles"] <= 6912 * 1.02, f"seed {SEED}: {d}"


@pytest.mark.parametrize("sim", SIMULATORS)
def test_checker_detects_fault(outcomes, sim):
    design, test, n_outputs = FAULT
    out = outcomes(sim, design)[test]
    assert out.passed, f"{sim} seed {SEED}: {out.message}"
    assert out.data["compared"] == n_outputs
    assert 0 < out.data["mismatches"] <= 16       # only vector 2 (16 outputs) can differ


def test_simulators_agree(outcomes):
    """Icarus and Verilator give the same counts and cycles in every scenario (stalls come from one seeded generator)."""
    for design, test, _, _ in SCENARIOS.values():
        a, b = outcomes("icarus", design)[test].data, outcomes("verilator", design)[test].data
        assert a and b
        for key in ("compared", "array_cycles", "total_cycles", "cycles"):
            assert a.get(key) == b.get(key), f"{test}: {key} icarus {a.get(key)} verilator {b.get(key)}"


def _aimc(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mapping.cli", "cosim", *args], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, timeout=600)


def test_cli_cosim_layer_and_errors(tmp_path):
    """``aimc cosim`` on a layer of a tiny variant (2 x 2 arrays per tile), and its one-line errors."""
    tiny4 = tmp_path / "tiny4.yaml"
    from archmodel.spec import load_spec

    text = (Path(load_spec.__code__.co_filename).parent / "presets" / "tiny.yaml").read_text()
    tiny4.write_text(text.replace("arrays_per_tile: {value: 1,", "arrays_per_tile: {value: 4,"))
    r = _aimc("--arch", str(tiny4), "--network", "digits-mlp", "--layer", "1", "--seed", str(SEED), "--sim", "icarus")
    assert r.returncode == 0, r.stdout + r.stderr
    # fc2 (64 x 64) on 2 x 2 arrays; its one input vector run TIMING_VECTORS = 4 times (a steady state)
    assert "MATCH: 256/256 int8 outputs compared, 0 mismatches, 16 MVMs, 4 vectors" in r.stdout
    # per vector 4 MVMs of 4 + 6 + 4 + 2 = 16 cycles = 64; the affine unit's 2 x 32 columns also take 64
    assert "simulated cycles: 64 per vector" in r.stdout and "mapper predicted cycles: 64 per vector" in r.stdout
    assert "ratio simulated/predicted: 1.0000 (within 2 %)" in r.stdout
    assert f"seed: {SEED} " in r.stdout
    # tiny's calibration.adc_range is per_layer: a structure-only network ranges on the seeded stimulus
    assert "ADC range: per_layer, measured on the seeded stimulus (no calibration images)" in r.stdout
    for args, msg in (
        (("--arch", "tiny", "--network", "digits-mlp", "--layer", "0"), "runs on the digital datapath"),
        (("--arch", "tiny", "--network", "digits-mlp", "--layer", "3"), "out of range"),
        (("--arch", "tiny", "--network", "digits-mlp", "--layer", "1"), "does not fit one tile"),
    ):
        r = _aimc(*args)
        assert r.returncode == 1
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0] and lines[0].startswith("aimc: error:"), r.stderr


@pytest.mark.slow
def test_resnet32_layer_verilator(tmp_path):
    """ResNet-32 (Joshi 2020) layer 1: 3x3 conv 16 -> 16 on 32x32, K = 144 rows of a 512-row array (fig11)."""
    rep = cosim_layer("fig11", "resnet32-joshi2020", 1, placement=_placement("fig11", "resnet32-joshi2020"),
                      seed=SEED, t_inf_s=3600.0, sim="verilator",
                      waves=WAVES, build_dir=tmp_path)
    assert rep.match, "\n".join(rep.lines())
    assert rep.outputs_compared == rep.outputs_expected == 1024 * 16
    assert rep.mismatches == 0 and rep.mvms == 1024
    # 1,024 MVMs of ceil(144/64) + ceil(148 ns * 1 GHz) + ceil(16/64) + 2 = 3 + 148 + 1 + 2 = 154 cycles
    assert rep.predicted_cycles == 154 and rep.array_cycles == 1024 * 154
    assert rep.simulated_cycles == rep.predicted_cycles
    assert rep.gdc_alpha > 1.0              # one hour of drift: the calibration raises the scale


@pytest.mark.parametrize(("adc_range", "scaling"),
                         [("per_layer", "per_layer"), ("fixed", "per_layer"), ("per_layer", "per_column")])
def test_adc_range_cosim_icarus(tmp_path, adc_range, scaling):
    """``calibration.adc_range`` in the tile co-simulation: 3x3 conv 3 -> 16 on 8x8 (64 vectors x 16 = 1,024 outputs)
    after one day of drift (GDC), 0 mismatches; per_layer sets the matrix's full scale on the seeded stimulus
    (the bridge answers with it) and the affine coefficients use its fraction, fixed keeps tiny's 0.25.
    ``mapping.weight_scaling: per_column``: one conductance scale and affine multiplier per column, still exact."""
    from tb.tile_env import conv_job, prepare

    changes = {"calibration.adc_range": adc_range, "mapping.weight_scaling": scaling}
    job = conv_job("tiny", 3, 16, 8, SEED, changes=changes, t_inf_s=86400.0)
    pj = prepare(job)
    if scaling == "per_column":     # 16 different column scales reach the coefficients
        assert len(np.unique(pj.matrix.g_scale_us)) == 16 and len(np.unique(pj.coefs.scale)) > 8
    out = run_scenarios("icarus", ["test_job"], arch="tiny", changes=job.changes, seed=SEED, t_inf_s=86400.0,
                        build_dir=tmp_path, job=job.save(tmp_path / "job.npz"))["test_job"]
    assert out.passed, out.message
    d = out.data
    assert d["compared"] == d["expected_outputs"] == 1024 and d["mismatches"] == 0, d
    assert d["adc_range"] == adc_range
    assert d["adc_full_scale_fraction"] == pytest.approx(pj.adc_full_scale_fraction, rel=1e-12)
    if adc_range == "fixed":
        assert d["adc_full_scale_fraction"] == 0.25 and d["adc_full_scale_ua"] == pytest.approx(40.0)
    else:   # 5 sigma of this stimulus's currents: about half of the fixed full scale (19.40 uA at seed 1)
        assert 0.05 < d["adc_full_scale_fraction"] < 0.25


def _write_yaml(path: Path, doc: dict) -> str:
    import yaml

    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)


def _arch_with_lanes(tmp_path: Path, preset: str, lanes: int, *, all_analog: bool = False) -> str:
    from archmodel.spec import load_spec

    chip = load_spec(preset).model_dump(mode="json")
    chip["name"] = f"{preset}-lanes{lanes}"
    chip["periphery"]["affine_lanes"] = lanes
    if all_analog:
        chip["digital"]["digital_layers"] = []
    return _write_yaml(tmp_path / f"{preset}-lanes{lanes}.yaml", chip)


@pytest.mark.parametrize(("lanes", "predicted"), [
    (1, 32),    # affine-bound: 32 columns at one a cycle > one MVM of 4 + 6 + 4 + 2 = 16 cycles
    (4, 16),    # array-bound: ceil(32 / 4) = 8 < 16
])
def test_cycle_check_tiny_32_columns(tmp_path, lanes, predicted):
    """``aimc cosim``'s cycle check on tiny's 32 x 32 layer: simulated stage time per vector = the mapper's."""
    arch = _arch_with_lanes(tmp_path, "tiny", lanes)
    net = _write_yaml(tmp_path / "mlp32.yaml", {"name": "mlp-32x3", "input_shape": [32], "layers": [
        {"name": f"fc{i}", "op": "linear", "out_features": 32, "bias": False} for i in range(3)]})
    rep = cosim_layer(arch, net, 1, placement=_placement(arch, net), seed=SEED, sim="icarus", build_dir=tmp_path / "b")
    print("\n".join(rep.lines()))
    assert rep.match and rep.mismatches == 0
    assert rep.vectors == 4 and rep.outputs_compared == rep.outputs_expected == 4 * 32 and rep.mvms == 4
    assert rep.predicted_cycles == predicted
    assert rep.simulated_cycles == predicted and rep.cycles_agree     # ratio 1.0000


@pytest.mark.parametrize(("lanes", "predicted"), [
    (2, 151),   # the hermes preset: one MVM of 256/32 + ceil(133 ns * 1 GHz) + 256/32 + 2 = 151 > 256/2
    (1, 256),   # one lane: affine-bound, 256 columns at one a cycle
])
def test_cycle_check_hermes_peak_layer(tmp_path, lanes, predicted):
    """The HERMES peak workload (64 dense 256 x 256 layers, ``aimc demo``) co-simulated on 4 MVMs of one layer.

    The cycles per vector the mapper uses for the peak TOPS (its placement's
    ``vector_cycles``) are the ones the RTL tile takes at steady state.
    """
    from mapping.cli.demo import _peak_inputs

    arch, net = (str(p) for p in _peak_inputs(tmp_path))
    if lanes != 2:
        arch = _arch_with_lanes(tmp_path, "hermes", lanes, all_analog=True)
    rep = cosim_layer(arch, net, 5, placement=_placement(arch, net), seed=SEED, sim="icarus", build_dir=tmp_path / "b")
    print("\n".join(rep.lines()))
    assert rep.match and rep.mismatches == 0
    assert rep.vectors == 4 and rep.outputs_compared == rep.outputs_expected == 4 * 256 and rep.mvms == 4
    assert rep.predicted_cycles == predicted
    assert rep.simulated_cycles == predicted and rep.cycles_agree
    # the mapper's peak: 64 layers x 2 x 256 x 256 ops every `predicted` cycles at 1 GHz (all 64 cores busy)
    from archmodel.spec import load_spec
    from archmodel.zoo import load_network
    from mapping.mapper import MapOptions, map_network

    res = map_network(load_spec(arch), load_network(net), MapOptions())
    assert res.interval_ns == pytest.approx(predicted)
    assert res.tops == pytest.approx(64 * 2 * 256 * 256 / predicted / 1e3)   # 55.554 TOPS at 2 lanes, 32.768 at 1


@pytest.mark.parametrize(("args", "message"), [
    (["--t-inf", "nan"], "--t-inf must be finite and >= 0 s, got nan"),
    (["--t-inf", "inf"], "--t-inf must be finite and >= 0 s, got inf"),
    (["--seed", "-3"], "--seed must be >= 0, got -3"),
    # stop 13 (review): --t-inf reaches the whole-network paths too (it was ignored with --images)
    (["--t-inf", "-1", "--images", "1"], "--t-inf must be finite and >= 0 s, got -1.0"),
    (["--t-inf", "nan", "--images", "1", "--arch", "proto", "--network", "digits-cnn"],
     "--t-inf must be finite and >= 0 s, got nan"),
])
def test_cosim_cli_rejects_bad_options_up_front(args, message):
    layer = [] if "--images" in args else ["--layer", "1"]
    r = subprocess.run([sys.executable, "-m", "mapping.cli", "cosim", "--arch", "tiny", "--network", "digits-mlp",
                        *layer, *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"aimc: error: {message}"]
