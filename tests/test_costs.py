"""Component models of mapping/costs.py and the chip keys that must do what their names say (issue 13)."""

from __future__ import annotations

import pytest

from archmodel.network.builder import NetworkBuilder
from archmodel.spec import SpecError, load_spec
from mapping import costs
from mapping.mapper import MappingError, map_network
from mapping.report import report_dict


def _one_conv():
    b = NetworkBuilder("one-conv", (16, 8, 8))
    b.conv("conv", b.input, 16, 3, padding=1, bias=False)
    return b.build()


def _dense(n_in: int, n_out: int):
    b = NetworkBuilder("dense", (n_in,))
    b.linear("fc", b.input, n_out, bias=False)
    return b.build()


def test_stillmaker_scaling_hand_computed():
    # Stillmaker & Baas 2017 Table 5: E(65 nm, 1.2 V) = 3.755*1.44 - 4.398*1.2 + 1.975 = 2.1046;
    # E(14 nm, 0.8 V) = 0.2363*0.64 - 0.09675*0.8 + 0.02239 = 0.096222
    assert costs.energy_scale(65, 1.2, 14, 0.8) == pytest.approx(2.1046 / 0.096222, rel=1e-6)
    assert costs.area_scale(65, 14) == pytest.approx(0.23 / 0.027)
    fig11 = load_spec("fig11")
    old = fig11.replace(**{"technology.node_nm": 65, "technology.supply_v": 1.2})
    assert costs.digital_mac_energy_pj(old, 1000) == pytest.approx(
        costs.digital_mac_energy_pj(fig11, 1000) * 2.1046 / 0.096222, rel=1e-6)
    a0, a1 = costs.chip_area_um2(fig11, 1), costs.chip_area_um2(old, 1)
    assert a1["adc"] == pytest.approx(a0["adc"] * 0.23 / 0.027)
    assert a1["array"] == a0["array"]  # device pitch is not CMOS-scaled
    r0, r1 = map_network(fig11, _one_conv()), map_network(old, _one_conv())
    assert r1.energy_pj["array"] == pytest.approx(r0.energy_pj["array"])  # V^2 g t: physics
    assert r1.energy_pj["adc"] == pytest.approx(r0.energy_pj["adc"] * 2.1046 / 0.096222, rel=1e-6)
    assert r1.area_total_mm2 > r0.area_total_mm2
    with pytest.raises(SpecError, match="outside the 7..130 nm range"):
        map_network(fig11.replace(**{"technology.node_nm": 200}), _one_conv())


def test_component_models_hand_computed():
    s = load_spec("hermes")
    # array: V^2 * g_mean_fraction * g_max * duty * t_int = 0.04 V^2 * 0.25 * 10.35 uS * 0.5 * 128 ns = 0.006624 pJ
    # (hermes: 10.35 uS per device, two devices per polarity = aihwkit's 20.7 uS per polarity; issue 11)
    assert costs.device_read_energy_pj(s) == pytest.approx(0.006624)
    # ADC: Walden FoM 1.0851 fJ/step * 2^8
    assert costs.adc_conversion_energy_pj(s) == pytest.approx(1.0851e-3 * 256)
    assert costs.adc_conversion_energy_pj(s.replace(**{"array.adc_bits": 7})) == pytest.approx(1.0851e-3 * 128)
    e = costs.analog_mvm_energy_pj(s, 256, 256)
    # PWM DAC: 0.06945 pJ per row-step x 256 rows x 0.5 x 127 steps
    assert e["dac"] == pytest.approx(0.06945 * 256 * 63.5)
    assert e["array"] == pytest.approx(0.006624 * 256 * 256 * 4)
    assert e["integrator"] == 0.0  # the CCO-ADC integrates
    # PWM energy scales with the input duration; a 4-phase read repeats the window but converts once
    short = costs.analog_mvm_energy_pj(s.replace(**{"energy_pj.input_duty": 0.25}), 256, 256)
    assert short["dac"] == pytest.approx(e["dac"] / 2) and short["array"] == pytest.approx(e["array"] / 2)
    four = costs.analog_mvm_energy_pj(s.replace(**{"array.read_phases": 4}), 256, 256)
    assert four["dac"] == pytest.approx(4 * e["dac"]) and four["array"] == pytest.approx(4 * e["array"])
    assert four["adc"] == pytest.approx(e["adc"])
    # bit-serial: one DAC event per bit, one conversion per pass
    bs = s.replace(**{"array.dac_scheme": "bit_serial", "array.dac_bits": 4})
    e_bs = costs.analog_mvm_energy_pj(bs, 256, 256)
    assert e_bs["dac"] == pytest.approx(0.06945 * 256 * 4)
    assert e_bs["adc"] == pytest.approx(4 * e["adc"])


def test_isaac_slices_and_shift_add():
    s = load_spec("isaac")
    e = costs.analog_mvm_energy_pj(s, 128, 16)
    # 16 weight columns x 8 slices x 16 passes = 2048 conversions of 6.1035 fJ x 256 = 1.5625 pJ each
    assert costs.adc_conversions(s, 16) == 2048
    assert e["adc"] == pytest.approx(2048 * 1.5625)
    assert e["affine"] == pytest.approx(2048 * 0.01953125, rel=1e-5)  # 0.2 mW / (8 x 1.28 GS/s), 6 digits


def test_mesh_link_width_sets_serialization():
    tiny = load_spec("tiny").replace(**{"digital.digital_layers": []})
    narrow = tiny.replace(**{"interconnect.link_width_bits": 1})
    r, rn = map_network(tiny, _one_conv()), map_network(narrow, _one_conv())
    # largest destination share: 8192 input bits x 32/144 rows = 1820.4 bits -> 1821 one-bit flits at 100 MHz
    assert rn.interval_ns == pytest.approx(18210.0)
    assert rn.layers[0].stage_time_ns == pytest.approx(18210.0)
    assert r.interval_ns == pytest.approx(10240.0)
    # first vector: 32 rows x 8 bits = 256 flits instead of 8: + 2480 ns of latency at least
    assert rn.latency_ns >= r.latency_ns + 2480.0


def test_tile_sram_too_small_is_refused():
    tiny = load_spec("tiny").replace(**{"digital.digital_layers": [], "buffers.sram_kib_per_tile": 0.001})
    with pytest.raises(MappingError, match="line buffer needs .* KiB but buffers.sram_kib_per_tile = 0.001 KiB"):
        map_network(tiny, _one_conv())


def test_global_buffer_spill_costs_and_refusal():
    fig11 = load_spec("fig11").replace(**{"buffers.global_buffer_kib": 1.0})
    r = map_network(fig11, _dense(64, 64))  # one layer: first = last = digital
    (lay,) = r.layers
    # 8192 bits of buffer - (64 + 64) x 8 bits of input and output = 7168 bits; weights 4096 x 8 = 32768 bits
    assert lay.spill_bits == pytest.approx(32768 - 7168)
    assert lay.energy_pj["chip_link"] == pytest.approx(25600 * 50.78)
    assert lay.stage_time_ns == pytest.approx(25600 / 51.2)
    assert r.interval_ns == pytest.approx(25600 / 51.2)
    assert r.bottleneck == "weight spill of fc"
    with pytest.raises(MappingError, match="do not fit the global buffer"):
        map_network(load_spec("fig11"), _dense(100_000_000, 100_000_000))
    big_buffer = load_spec("fig11").replace(**{"buffers.global_buffer_kib": 1e6})
    with pytest.raises(MappingError, match="off-chip memory the mapper assumes"):
        map_network(big_buffer, _dense(10_000_000, 10_000_000))


def test_report_lists_the_sources_and_stage_times():
    r = map_network(load_spec("hermes"), _one_conv())
    d = report_dict(r)
    src = {row["constant"]: row["source"] for row in d["sources"]}
    assert src["energy_pj.adc_fom_fj_per_step"].startswith("derived: shafiee2016 Table 2")
    assert src["array read energy model"].startswith("V_read^2 * g * t with default g")
    row = d["layers"][0]
    assert row["stage_time_ns"] == pytest.approx(r.layers[0].stage_time_ns) and row["stage_time_ns"] > 0
    assert row["stage_time_ns"] >= row["latency_ns"] and row["done_ns"] >= row["stage_time_ns"]
