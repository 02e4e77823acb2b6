"""``--schedule reprogram``: layers time-multiplexed onto one chip, PCM programming in latency and energy."""

from __future__ import annotations

import pytest

from archmodel.spec import load_spec
from archmodel.zoo import get_network
from mapping import costs
from mapping.mapper import MapOptions, MappingError, map_network


@pytest.fixture(scope="module")
def vgg16_reprogram():
    # tiny's 16 KiB global buffer cannot hold VGG-16's 3x224x224 input: raise it to 1 MiB
    spec = load_spec("tiny").replace(**{"buffers.global_buffer_kib": 1024})
    return spec, map_network(spec, get_network("vgg16"), MapOptions(schedule="reprogram"))


def test_vgg16_on_one_tiny_chip(vgg16_reprogram):
    spec, r = vgg16_reprogram
    assert r.schedule == "reprogram" and r.chips == 1 and r.tiles_used == 4
    # the analog layers' 32x32 arrays, 4 per round (a layer may continue in the next round): 32,775 rounds,
    # the 32,775 chips of the spread mapping (issue 10)
    arrays = sum(lay.arrays for lay in r.layers if lay.kind == "analog")
    assert r.program_rounds == -(-arrays // 4) == 32_775
    assert r.program_time_ns / r.latency_ns > 0.99  # programming dominates
    assert r.bottleneck.startswith("PCM reprogramming")
    assert r.interval_ns == r.latency_ns
    # conv1_2 alone programs 36 arrays at 256,844.8 pJ each (hand value, next test): a lower bound of the total
    assert r.energy_pj["programming"] > 36 * 256_844.8
    assert r.energy_pj["programming"] == max(r.energy_pj.values())  # reprogramming dominates the energy too


def test_one_layer_hand_checked(vgg16_reprogram):
    # conv1_2 (3x3, 64 -> 64): K = 576, N = 64 on 32x32 arrays -> 18 x 2 = 36 full arrays, 4 per round: 9 rounds.
    # One array: 32 rows x 10 iterations x (4400 ns pulse + 130 ns verify: 1-row MVM = 1 DAC beat + 6 array
    # cycles + 4 ADC beats + 2 overhead = 13 cycles at 100 MHz) = 1,449,600 ns -> 9 rounds = 13,046,400 ns.
    # Energy per array: 10 x (32*32*2 devices x 10 pJ + 32 rows x 162.64 pJ verify read
    # (dac 1 + array 0.64 + integrator 32 + adc 128 + tile controller 1)) = 256,844.8 pJ; x 36 = 9,246,412.8 pJ.
    spec, r = vgg16_reprogram
    lay = next(x for x in r.layers if x.name == "conv1_2")
    assert (lay.matrix_rows, lay.matrix_cols, lay.arrays) == (576, 64, 36)
    assert costs.array_program_time_ns(spec, 32, 32) == pytest.approx(1_449_600.0)
    assert lay.program_ns == pytest.approx(13_046_400.0)
    assert lay.energy_pj["programming"] == pytest.approx(9_246_412.8)


def test_auto_picks_by_max_chips():
    spec = load_spec("tiny")
    net = get_network("mlp")
    spread = map_network(spec, net)
    assert spread.chips == 8 and spread.schedule == "spread" and spread.energy_pj["programming"] == 0
    r = map_network(spec, net, MapOptions(schedule="auto", max_chips=2))
    assert r.schedule == "reprogram" and r.chips == 2 and r.program_rounds == 4  # 32 arrays, 8 per round
    assert map_network(spec, net, MapOptions(schedule="auto", max_chips=8)).schedule == "spread"
    with pytest.raises(MappingError, match="or use --schedule reprogram"):
        map_network(spec, net, MapOptions(max_chips=2))
    with pytest.raises(MappingError, match="schedule must be one of"):
        MapOptions(schedule="sometimes")


def test_programming_constants_come_from_the_chip_description():
    # the constants live in the chip description's programming section (issue 10), validated and sourced:
    # tiny, 32 rows, 8 rows at a time x 3 iterations x (1000 ns pulse + 130 ns verify) = 4 x 3 x 1130 = 13,560 ns;
    # energy 3 x (32*32*2 devices x 2 pJ + 32 rows x 162.64 pJ verify read) = 3 x (4096 + 5204.48) = 27,901.44 pJ
    spec = load_spec("tiny").replace(**{"programming.rows_parallel": 8, "programming.iterations": 3,
                                        "programming.pulse_ns": 1000.0, "programming.pulse_energy_pj": 2.0})
    assert costs.array_program_time_ns(spec, 32, 32) == pytest.approx(13_560.0)
    assert costs.array_program_energy_pj(spec, 32, 32) == pytest.approx(27_901.44)
    default = load_spec("fig11").programming
    assert (default.pulse_ns, default.iterations, default.pulse_energy_pj, default.rows_parallel) == (4400.0, 10, 10.0, 1)
    assert "ambrogio2018" in default.sources["pulse_ns"]
    assert any(r["constant"] == "programming.pulse_ns" for r in costs.constant_sources(load_spec("fig11")))
    from archmodel.spec import SpecError
    for key, bad in (("programming.rows_parallel", 33), ("programming.iterations", 0),
                     ("programming.pulse_ns", 0.0), ("programming.pulse_energy_pj", -1.0)):
        with pytest.raises(SpecError, match=key.split(".")[1]):
            load_spec("tiny").replace(**{key: bad})
