"""cocotb co-simulation of the co-processor top level against the archmodel golden run (issue 5, top level).

The top level (:class:`rtl.top.Coprocessor`, ``aimc_top``) is built once per
simulator and all scenarios of :mod:`tb.test_top_cosim` run in one simulator
process (:func:`tb.top_env.run_top_scenarios`); each parametrized test then
checks its scenario's JSON: the cocotb test passed (zero mismatches, no
format, protocol, AXI or status-flag error), and the number of outputs and
DAC codes it compared.

Hand-computed figures (tiny preset: 8 rows per DAC beat and 8 lanes per act
beat, 8 columns per ADC beat, array latency 6 cycles; affine unit one result
per cycle):

- 2-layer MLP 30 -> 32 -> 10, 8 vectors: 8 x 10 outputs; DAC codes 8 x (30 + 32);
  the slowest stage is layer 1's affine unit, 32 results per vector (its
  MVM is 4 + 6 + 4 + 2 = 16 cycles), so with no stall the vectors leave
  exactly 32 cycles apart;
- 4-layer MLP 20 -> 28 -> 32 -> 17 -> 12, 12 vectors: 12 x 12 outputs; DAC
  codes 12 x (20 + 28 + 32 + 17).

Affine lanes: Icarus runs the scenarios with ``periphery.affine_lanes`` 1
(the tiny preset) and 4; Verilator runs them with 4 only (one Verilator
build of the top level: its C++ build is the slowest step of the suite). With
4 lanes layer 1's affine unit needs ceil(32 / 4) = 8 cycles per vector, so its
MVM sets the interval: vectors leave exactly 16 cycles apart; layer 2's stage
is its MVM, ceil(32/8) + 6 + ceil(10/8) + 2 = 14 cycles.

Whole network (issue 15, Verilator build only): ``digits-mlp`` from the
mapper's placement on 4 digits images (``test_top_digits_network``) and with
one conductance fault behind a bridge (``test_top_digits_fault_located``):
about 10 s each inside the Verilator process.

Options: ``AIMC_COSIM_SEED`` (default 1), ``AIMC_WAVES=1`` (waveforms in the
build folders). Build and run: about 10 s on Icarus, 90 s on Verilator
(mostly its C++ build) on 2 cores.
"""

from __future__ import annotations

import os

import pytest

from tb.top_env import run_top_scenarios

pytestmark = pytest.mark.cosim

SEED = int(os.environ.get("AIMC_COSIM_SEED", "1"))
WAVES = os.environ.get("AIMC_WAVES", "") not in ("", "0")
TESTS = ["test_mlp_two_tiles", "test_mesh_backpressure", "test_fault_detected"]
#: partial-sum chains (issue 15): run on the builds in CHAIN_BUILDS only
CHAIN_TESTS = ["test_chain_home_first", "test_chain_upstream_first", "test_chain_random", "test_tile_to_digital",
               "test_digital_to_tile", "test_digital_to_chain", "test_digital_weight_fault", "test_conv_chain",
               "test_conv_chain_rate", "test_conv_pool", "test_conv_pool_fault", "test_conv_residual"]
CHAIN_BUILDS = [("icarus", 1), ("verilator", 4)]
#: the whole digits-mlp network from the mapper's placement (issue 15): on the Verilator build only
DIGITS_TESTS = ["test_digits_network", "test_digits_fault"]
DIGITS_BUILDS = [("verilator", 4)]
DIGITS_IMAGES = 4
#: (simulator, periphery.affine_lanes) builds of the top level
BUILDS = [("icarus", 1), ("icarus", 4), ("verilator", 4)]
#: affine lanes -> (stage cycles per vector of the two layers of test_mlp_two_tiles, interval between vectors)
MLP_CYCLES = {1: ([32, 14], 32.0), 4: ([16, 14], 16.0)}

#: scenario -> (outputs compared, DAC codes compared, MVMs per tile)
SCENARIOS = {
    "test_mlp_two_tiles": (8 * 10, 8 * (30 + 32), [8, 8]),
    "test_mesh_backpressure": (12 * 12, 12 * (20 + 28 + 32 + 17), [12] * 4),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    """Builds and runs each simulator once, on first use; returns ``get(sim)``."""
    cache: dict = {}

    def get(sim: str, lanes: int):
        if (sim, lanes) not in cache:
            build = tmp_path_factory.mktemp(f"top-{sim}-lanes{lanes}")
            tests = TESTS + (CHAIN_TESTS if (sim, lanes) in CHAIN_BUILDS else [])
            env = None
            if (sim, lanes) in DIGITS_BUILDS:
                tests += DIGITS_TESTS
                placement_file, network_file = _placement_file(build, {"periphery.affine_lanes": lanes})
                env = {"AIMC_PLACEMENT": str(placement_file), "AIMC_NETWORK": str(network_file),
                       "AIMC_DIGITS_IMAGES": str(DIGITS_IMAGES), "AIMC_DIGITS_WEIGHTS": "trained",
                       "AIMC_FAULT": "none", "AIMC_FAULT_TILE": "1"}
            cache[sim, lanes] = run_top_scenarios(sim, tests, arch="tiny", changes={"periphery.affine_lanes": lanes},
                                                  seed=SEED, build_dir=build, waves=WAVES, extra_env=env)
        return cache[sim, lanes]

    return get


@pytest.mark.parametrize("scenario", list(SCENARIOS))
@pytest.mark.parametrize(("sim", "lanes"), BUILDS)
def test_top_cosim(outcomes, sim, lanes, scenario):
    n_out, n_dac, mvms = SCENARIOS[scenario]
    out = outcomes(sim, lanes)[scenario]
    print(f"{sim} {scenario} (affine_lanes {lanes}): seed {SEED}: {out.data}")
    assert out.passed, f"{sim} {scenario} seed {SEED}: {out.message}"
    d = out.data
    assert d["seed"] == SEED
    assert d["mismatches"] == 0 and d["dac_mismatches"] == 0, f"seed {SEED}: {d['first_mismatches']}"
    assert d["compared"] == d["expected_outputs"] == n_out, f"seed {SEED}: {d}"
    assert d["dac_compared"] == n_dac and d["mvms"] == mvms, f"seed {SEED}: {d}"
    assert d["axil_errors"] == 0 and not any(d["flags"].values()), f"seed {SEED}: {d['flags']}"
    if scenario == "test_mlp_two_tiles":
        assert (d["stage_cycles"], d["interval_cycles"]) == MLP_CYCLES[lanes], f"seed {SEED}: {d}"
        # 26 registers of stop 10 + 8 the compiler now switches off (issue 18's hygiene): tiles 0 and 1 each
        # ni.dest1 (en = 0), lb.en, pool.en, add.en
        assert d["readback_checked"] == 34 and d["readback_mismatches"] == 0
    else:
        assert d["in_stall_cycles"] > 0 and d["out_stall_cycles"] > 0, f"seed {SEED}: {d}"


@pytest.mark.parametrize(("sim", "lanes"), BUILDS)
def test_top_checker_detects_fault(outcomes, sim, lanes):
    out = outcomes(sim, lanes)["test_fault_detected"]
    assert out.passed, f"{sim} seed {SEED}: {out.message}"
    d = out.data
    assert d["compared"] == 80 and 0 < d["mismatches"] <= 8 and d["mismatched_columns"] == [3], f"seed {SEED}: {d}"


def test_top_simulators_agree(outcomes):
    """Icarus and Verilator give the same counts and cycles (the stalls come from one seeded generator)."""
    for test in TESTS:
        a, b = outcomes("icarus", 4)[test].data, outcomes("verilator", 4)[test].data
        assert a and b, test
        for key in ("compared", "mismatches", "cycles", "config_cycles", "interval_cycles", "in_stall_cycles",
                    "out_stall_cycles"):
            assert a[key] == b[key], f"{test}: {key} icarus {a[key]} verilator {b[key]}"


@pytest.mark.parametrize(("sim", "lanes"), CHAIN_BUILDS)
def test_top_conv_chain(outcomes, sim, lanes):
    """conv -> conv through the tiles' patch buffers (issue 18, tb.test_top_cosim.test_conv_chain): conv1 8 -> 8,
    2 x 2, stride 2, pad 1 on a 6 x 6 map (tile 0), conv2 8 -> 10, 2 x 3, pad 1 on the chain 3 -> 1 (K = 32 + 16,
    tile 1's rows from tap (1, 1)), tile 0's pixels multicast to both; 2 images, ready low ~30 % at every
    AXI4-Stream and array port. Hand-counted: 2 x 5 x 4 x 10 = 400 outputs; DAC codes 2 x 16 x 32 (conv1:
    16 output pixels, K = 32) + 2 x 20 x (32 + 16) = 2,944; MVMs [32, 40, 40]."""
    out = outcomes(sim, lanes)["test_conv_chain"]
    assert out.passed, f"{sim} seed {SEED}: {out.message}"
    d = out.data
    assert d["compared"] == d["expected_outputs"] == 400 and d["mismatches"] == 0, f"seed {SEED}: {d}"
    assert d["dac_compared"] == 2944 and d["dac_mismatches"] == 0 and d["mvms"] == [32, 40, 40], f"seed {SEED}: {d}"
    assert d["out_stall_cycles"] > 0 and not any(d["flags"].values()), f"seed {SEED}: {d['flags']}"
    rate = outcomes(sim, lanes)["test_conv_chain_rate"]  # no stall: MVMs exactly archmodel.timing.mvm_cycles apart
    assert rate.passed, f"{sim} seed {SEED}: {rate.message}"
    assert rate.data["stage_cycles"] == [13, 14, 12] and set(rate.data["mvm_gaps"][0]) == {13}, rate.data


@pytest.mark.parametrize(("sim", "lanes"), CHAIN_BUILDS)
def test_top_conv_pool(outcomes, sim, lanes):
    """conv -> max pool 2 -> conv -> global average pool (issue 18, tb.test_top_cosim.test_conv_pool), the pools on
    the tiles' output streams, 3 images, ready low ~30 %. Hand-counted: 3 x 16 outputs (one pixel of 16 channels
    per image); DAC codes 3 x 16 x 32 (conv1: 4 x 4 pixels, K = 32) + 3 x 9 x 32 (conv2 on the pooled 2 x 2 map,
    padding 1: 3 x 3 pixels) = 2,400; MVMs [48, 27]."""
    out = outcomes(sim, lanes)["test_conv_pool"]
    assert out.passed, f"{sim} seed {SEED}: {out.message}"
    d = out.data
    assert d["compared"] == d["expected_outputs"] == 48 and d["mismatches"] == 0, f"seed {SEED}: {d}"
    assert d["dac_compared"] == 2400 and d["dac_mismatches"] == 0 and d["mvms"] == [48, 27], f"seed {SEED}: {d}"
    assert not any(d["flags"].values()), f"seed {SEED}: {d['flags']}"


@pytest.mark.parametrize(("sim", "lanes"), CHAIN_BUILDS)
def test_top_conv_pool_fault_located(outcomes, sim, lanes):
    """An RTL-side fault in a CNN is reported at the expected layer (issue 18, tb.test_top_cosim.test_conv_pool_fault):
    test_conv_pool's network with conv1's ``coef_scale`` of output channel 5 negated in its configuration write (the
    golden run untouched), 2 images. conv1's tile (mapped layer 0) sees no wrong DAC code; conv2's tile (layer 1,
    2 x 2 taps of the 8 max-pooled channels, tap-major rows t·8 + c) sees wrong codes exactly in rows 5, 13, 21,
    29; the 2 x 16 outputs are all compared and some mismatch."""
    out = outcomes(sim, lanes)["test_conv_pool_fault"]
    assert out.passed, f"{sim} seed {SEED}: {out.message}"
    d = out.data
    assert d["compared"] == d["expected_outputs"] == 32 and d["mismatches"] > 0, f"seed {SEED}: {d}"
    # with padding 1 every tap (ti, tj) of the 2 x 2 kernel reads every pooled pixel (i, j), at output pixel
    # (i + 1 - ti, j + 1 - tj): one wrong pooled value of channel 5 shows in all four rows t·8 + 5
    assert sorted(tuple(x) for x in d["dac_mismatch_at"]) == [(1, 5), (1, 13), (1, 21), (1, 29)], d["dac_mismatch_at"]


@pytest.mark.parametrize(("sim", "lanes"), CHAIN_BUILDS)
def test_top_conv_residual(outcomes, sim, lanes):
    """A residual block (issue 18, tb.test_top_cosim.test_conv_residual): conv0 (tile 0) multicast to conv1 (tile 3)
    and to tile 1's residual join, which merges the two producers by source tag and adds them (requantize_sum,
    ReLU) before conv2's patch buffer; 3 images, ready low ~30 %. Hand-counted: 3 x (2 x 2) x 10 = 120 outputs;
    DAC codes 3 x 16 x 24 (conv0, 1 x 3 on 8 channels) + 3 x 16 x 24 (conv1) + 3 x 4 x 32 (conv2) = 2,688;
    MVMs [48, 48, 12]."""
    out = outcomes(sim, lanes)["test_conv_residual"]
    assert out.passed, f"{sim} seed {SEED}: {out.message}"
    d = out.data
    assert d["compared"] == d["expected_outputs"] == 120 and d["mismatches"] == 0, f"seed {SEED}: {d}"
    assert d["dac_compared"] == 2688 and d["dac_mismatches"] == 0 and d["mvms"] == [48, 48, 12], f"seed {SEED}: {d}"
    assert not any(d["flags"].values()), f"seed {SEED}: {d['flags']}"


@pytest.mark.parametrize(("sim", "lanes"), CHAIN_BUILDS)
def test_top_chains(outcomes, sim, lanes):
    """Partial-sum chains K = 32 + 20, N = 24, 8 vectors: 192 outputs each, 0 mismatches.

    ``test_chain_home_first`` is the issue's case (hung after 40 of 192 outputs
    when activations and partial sums shared one mesh); ``test_chain_upstream_first``
    enqueues all upstream halves first (hung at 0 outputs); ``test_chain_random``
    runs 8 chains over random ordered tile pairs, the four host orders, ready
    low on 30 % of cycles at the AXI4-Stream ports and array ports: 8 x 192 outputs.
    """
    got = outcomes(sim, lanes)
    for test in CHAIN_TESTS[:2]:
        out = got[test]
        assert out.passed, f"{sim} {test} seed {SEED}: {out.message}"
        d = out.data
        assert d["compared"] == d["expected_outputs"] == 192 and d["mismatches"] == 0, d
        assert d["dac_compared"] == 8 * 52 and d["dac_mismatches"] == 0 and d["mvms"] == [8, 8], d
        assert not any(d["flags"].values()), d["flags"]
    out = got["test_chain_random"]
    assert out.passed, f"{sim} test_chain_random seed {SEED}: {out.message}"
    runs = out.data["runs"]
    assert len(runs) == 8 and {r["order"] for r in runs} == {"vector", "home_first", "tiles", "random"}
    assert out.data["compared"] == 8 * 192 and out.data["mismatches"] == 0, runs
    assert all(r["compared"] == 192 for r in runs) and sum(r["out_stall_cycles"] for r in runs) > 0, runs


@pytest.mark.parametrize(("sim", "lanes"), CHAIN_BUILDS)
@pytest.mark.parametrize("test", ["test_tile_to_digital", "test_digital_to_tile"])
def test_top_digital_layer(outcomes, sim, lanes, test):
    """Tile -> digital (30 -> 20 analog, 20 -> 10 digital) and digital -> tile (24 -> 16 digital, 16 -> 10
    analog), 6 vectors, ready low on 30 % of cycles: 60 outputs, 0 mismatches, the DAC codes of the analog layer
    (6 x 30, 6 x 16) all compared, no digital-datapath error flag (err_x_last)."""
    out = outcomes(sim, lanes)[test]
    assert out.passed, f"{sim} {test} seed {SEED}: {out.message}"
    d = out.data
    assert d["compared"] == d["expected_outputs"] == 60 and d["mismatches"] == 0, d
    assert d["dac_compared"] == 6 * (30 if test == "test_tile_to_digital" else 16) and d["dac_mismatches"] == 0, d
    assert "digital.err_x_last" in d["flags"] and not any(d["flags"].values()), d["flags"]


@pytest.mark.parametrize(("sim", "lanes"), CHAIN_BUILDS)
def test_top_digital_to_chain(outcomes, sim, lanes):
    """Digital 24 -> 52 split by destination entries over the chain 52 = 32 + 20 -> 24 on tiles 2 -> 3, 6 vectors,
    ready low on 30 % of cycles: 144 outputs and 6 x 52 DAC codes, 0 mismatches, 6 MVMs per tile, no flag."""
    out = outcomes(sim, lanes)["test_digital_to_chain"]
    assert out.passed, f"{sim} seed {SEED}: {out.message}"
    d = out.data
    assert d["compared"] == d["expected_outputs"] == 144 and d["mismatches"] == 0, d
    assert d["dac_compared"] == 6 * 52 and d["dac_mismatches"] == 0 and d["mvms"] == [6, 6], d
    assert not any(d["flags"].values()), d["flags"]


@pytest.mark.parametrize(("sim", "lanes"), CHAIN_BUILDS)
def test_top_fault_located(outcomes, sim, lanes):
    """One digital weight (channel 5, term 3) negated in its streamed flit on the RTL side only (312 flits: 13 channel
    groups of the 52 channels x K 24; the golden run untouched): wrong DAC codes at mapped layer 1
    (the chain tile fed by channels 0..31) in row 5 and nowhere else; the outputs mismatch; 144 compared."""
    out = outcomes(sim, lanes)["test_digital_weight_fault"]
    assert out.passed, f"{sim} seed {SEED}: {out.message}"
    d = out.data
    assert d["compared"] == 144 and d["mismatches"] > 0 and d["dac_mismatch_at"] == [[1, 5]], d
    assert d["weight_flits"] == 13 * 24 and d["weight_cycles"] > 13 * 24, d  # ceil(52 / 4) x K; valid gaps


def _placement_file(build, changes: dict):
    """The mapper's placement of digits-mlp on tiny with ``changes``, as JSON for the testbench, and the network
    as a YAML file under a name the zoo does not know (``my-mlp``): the simulator process must load it from its
    path (``AIMC_NETWORK``), as ``aimc cosim --network FILE.yaml`` passes it, not look it up by name."""
    import dataclasses
    import json

    from archmodel.network.yaml_io import network_to_yaml
    from archmodel.zoo import load_network
    from mapping.mapper import MapOptions, map_network
    from tb.tile_env import resolve_spec

    yml = build / "my-mlp.yaml"
    yml.write_text(network_to_yaml(load_network("digits-mlp")).replace("name: digits-mlp", "name: my-mlp", 1))
    placement = map_network(resolve_spec("tiny", changes), load_network(yml), MapOptions(replicate=False)).placement()
    assert placement.network_name == "my-mlp"
    path = build / "placement.json"
    path.write_text(json.dumps(dataclasses.asdict(placement)))
    return path, yml


@pytest.mark.parametrize(("sim", "lanes"), DIGITS_BUILDS)
def test_top_digits_network(outcomes, sim, lanes):
    """digits-mlp from the mapper's placement on tiny: fc1 digital (slot 0) multicast to the 2 x 2 tiles of fc2
    (two chains of 32 + 32 rows), their home tiles merged in order at the digital datapath for fc3 (slot 1), 4
    digits test images, trained weights, ready low on ~30 % of cycles at m_axis and every array port: 4 x 10 scores
    and 4 x 64 mirrored fc2 outputs compared, 0 mismatches, every DAC code of the 4 tiles (4 x 32 each = fc1's
    outputs) compared, top-1 from the RTL's scores = the model's, per-layer digital cycles = K x ceil(C / 4) MAC
    cycles + the drain (hand-computed: fc1 64 x 16 = 1024, fc3 64 x 3 = 192), no status flag."""
    out = outcomes(sim, lanes)["test_digits_network"]
    assert out.passed, f"{sim} seed {SEED}: {out.message}"
    d = out.data
    assert d["network"] == "my-mlp"  # loaded from its YAML file (AIMC_NETWORK), not looked up by name
    n = DIGITS_IMAGES
    assert d["compared"] == d["expected_outputs"] == n * 10 and d["mismatches"] == 0, d
    assert d["tap_compared"] == n * 64 and d["tap_mismatches"] == 0, d
    assert d["dac_compared"] == n * 4 * 32 and d["dac_mismatches"] == 0 and d["mvms"] == [n] * 4, d
    assert d["top1_rtl"] == d["top1_model"] and len(d["top1_rtl"]) == n
    assert not any(d["flags"].values()), d["flags"]
    # weights over s_axis at stream rate: fc1 64 x 16 + fc3 64 x 3 = 1,216 words = 1,216 flits, one per cycle
    # but for the host's seeded valid gaps (~30 %); the configuration keeps 2 writes for them (w_addr, w_load)
    assert d["weight_flits"] == 1216 and 1216 < d["weight_cycles"] < 1216 / 0.6, d["weight_cycles"]
    fc1, fc3 = (c / n for c in d["digital_cycles"])
    assert 1024 < fc1 <= 1024 + 20 and 192 < fc3 <= 192 + 20, d["digital_cycles"]  # drain <= mac_lanes + 16
    assert d["out_stall_cycles"] > 0


@pytest.mark.parametrize(("sim", "lanes"), DIGITS_BUILDS)
def test_top_digits_fault_located(outcomes, sim, lanes):
    """One conductance code of fc2's tile 0 (column block 0, rows 0..31; the row with the largest mean input, a
    column c whose outputs are neither 0 nor clipped) raised by the largest conductance behind the array bridge only
    (golden untouched): fc1's outputs (DAC codes) all match, fc2's mirrored outputs mismatch in column c of home
    tile 1 and nowhere else, so the fault is located at layer fc2, column c."""
    out = outcomes(sim, lanes)["test_digits_fault"]
    assert out.passed, f"{sim} seed {SEED}: {out.message}"
    d = out.data
    assert d["dac_mismatches"] == 0 and d["dac_compared"] == DIGITS_IMAGES * 128, d
    li, row, col, home_tag = d["fault_at"]
    assert li == 1 and home_tag == 1  # mapped layer 1 = tile 0, its chain's home tile 1
    assert d["tap_mismatches"] > 0 and d["tap_mismatch_at"] == [[home_tag, col]], d
