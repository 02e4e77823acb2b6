"""Mapper: a one-layer network against hand-computed figures, totals = sums, replication, chips."""

from __future__ import annotations

import pytest

from archmodel.network.builder import NetworkBuilder
from archmodel.spec import load_spec
from archmodel.zoo import get_network
from mapping.costs import ENERGY_COMPONENTS
from mapping.mapper import MapOptions, MappingError, map_network


def one_conv():
    b = NetworkBuilder("one-conv", (16, 8, 8))
    b.conv("conv", b.input, 16, 3, padding=1, bias=False)
    return b.build()


def test_one_layer_hand_computed():
    # tiny preset (archmodel/presets/tiny.yaml), every layer analog. Hand computation:
    # K = 3*3*16 = 144 rows, N = 16 cols; 32x32 arrays -> 5 row blocks (32,32,32,32,16 rows), 1 col block.
    # 5 tiles > 4 per chip -> 2 chips; 8 - 5 = 3 spare tiles < 5 -> no replication.
    # One MVM (32 rows, 16 cols): DAC beats ceil(32/8) = 4, array (40 + 1*20) ns at 100 MHz = 6,
    # ADC beats ceil(16/8) = 2, overhead 2 -> 14 cycles. Each tile's affine unit streams its 16 columns
    # (results or partial sums) at one per cycle -> 16 cycles per pixel = max(14, 16).
    # 64 output pixels -> 1024 cycles = 10240 ns.
    spec = load_spec("tiny").replace(**{"digital.digital_layers": []})
    r = map_network(spec, one_conv())
    (lay,) = r.layers
    assert (lay.row_blocks, lay.col_blocks, lay.arrays, lay.replication) == (5, 1, 5, 1)
    assert lay.mvms == 320
    assert lay.mvm_cycles == 16
    assert lay.cycles == 1024
    assert lay.latency_ns == pytest.approx(10240.0)
    assert r.chips == 2 and r.tiles_used == 5
    assert r.interval_ns == pytest.approx(10240.0)
    assert r.inferences_per_s == pytest.approx(1e9 / 10240)
    # Energy per component (pJ), rows summed over arrays = 144, 64 pixels:
    # dac 1.0*144*64; array 0.01*144*16*2*64; integrator 1.0*16*5*64; adc 4.0*16*5*64; controller 1.0*5*64;
    # affine 2.0 * 16*64 outputs; sram reads 144*64*8 bits * 0.05 + writes 16*8*8*8 bits * 0.06.
    # Mesh (serpentine: tiles at (0,0),(0,1),(1,1),(1,0) on chip 0, (0,0) on chip 1; input at chip 0 (0,0)):
    #   activations 8192 bits * 32/144 * (0+1+2+1) hops; partial sums 16 cols * 16 bits * 64 px = 16384 bits
    #   per tile * (1+2+1) hops -> (7281.777... + 65536) * 0.1 pJ.
    # Chip link: 8192*16/144 activation bits + 16384 partial-sum bits, * 2.0 pJ/bit.
    # Leakage: 2 chips * (4 * 0.05 + 0.5) mW = 1.4 mW over 10240 ns.
    expected = {
        "dac": 9216.0,
        "array": 2949.12,
        "integrator": 5120.0,
        "adc": 20480.0,
        "tile_controller": 320.0,
        "affine": 2048.0,
        "digital": 0.0,
        "sram": 3686.4 + 491.52,
        "interconnect": 7281.777777777778,
        "chip_link": 34588.44444444444,
        "leakage": 14336.0,
    }
    for comp, val in expected.items():
        assert r.energy_pj[comp] == pytest.approx(val, rel=1e-9, abs=1e-9), comp
    # latency: input -> chip-1 tile -> home tile = 2 link crossings * 100 ns, + affine 6 cycles (60 ns),
    # + the first 32-row input vector over a 32-bit mesh link (256 bits = 8 flits = 80 ns, issue 13),
    # then the whole layer (10240 ns).
    assert r.latency_ns == pytest.approx(10580.0)
    assert r.devices_used == 144 * 16 * 2
    assert r.macs == 144 * 16 * 64


def test_digital_layer_cycles_and_energy():
    # the same layer kept digital on tiny: ceil(147456 MACs / 4 lanes) cycles at 100 MHz, 0.1 pJ/MAC
    r = map_network(load_spec("tiny"), one_conv())
    (lay,) = r.layers
    assert lay.kind == "digital" and lay.cycles == 36864 and lay.mvms == 0
    assert r.energy_pj["digital"] == pytest.approx(14745.6)
    assert r.tiles_used == 0 and r.chips == 1


@pytest.mark.parametrize("arch,net", [("fig11", "resnet32-joshi2020"), ("hermes", "vgg8"), ("tiny", "mlp")])
def test_totals_are_sums_of_layers(arch, net):
    r = map_network(load_spec(arch), get_network(net))
    for comp in ENERGY_COMPONENTS:
        if comp != "leakage":
            # matrix layers + the operators outside them (issue 10: affine-unit and digital-unit operators)
            assert r.energy_pj[comp] == pytest.approx(sum(lay.energy_pj[comp] for lay in r.layers)
                                                      + sum(d.energy_pj.get(comp, 0.0) for d in r.digital_ops))
    assert r.energy_total_pj == pytest.approx(sum(r.energy_pj.values()))
    assert r.macs == sum(lay.macs for lay in r.layers)
    assert r.weights == sum(lay.weights for lay in r.layers)
    assert r.devices_used == sum(lay.devices for lay in r.layers)
    assert r.tiles_used == sum(lay.tiles for lay in r.layers)
    assert r.interval_ns == pytest.approx(max(
        [lay.latency_ns for lay in r.layers if lay.kind == "analog"]
        + [sum(lay.latency_ns for lay in r.layers if lay.kind == "digital")
           + sum(d.latency_ns for d in r.digital_ops if d.unit == "digital")]) if r.chips == 1 else r.interval_ns)
    assert r.tops_per_w == pytest.approx(r.ops / r.energy_total_pj)
    assert r.tops == pytest.approx(r.ops * r.inferences_per_s / 1e12)


def test_replication_uses_spare_tiles_and_speeds_up():
    spec, net = load_spec("fig11"), get_network("resnet32-joshi2020")
    plain = map_network(spec, net, MapOptions(replicate=False))
    rep = map_network(spec, net)
    assert plain.tiles_used == 32  # 32 analog layers, each fits one 512x512 array
    assert rep.tiles_used <= 64 and rep.tiles_used > plain.tiles_used
    assert rep.inferences_per_s > plain.inferences_per_s
    # energy per inference of the analog work does not change with replication
    assert rep.energy_pj["adc"] == pytest.approx(plain.energy_pj["adc"])


def test_max_chips_error_names_tiles():
    spec = load_spec("tiny").replace(**{"digital.digital_layers": []})
    with pytest.raises(MappingError) as exc:
        map_network(spec, one_conv(), MapOptions(max_chips=1))
    msg = str(exc.value)
    assert "needs 5 tiles" in msg and "4 tiles" in msg


def test_bad_digital_layer_name():
    spec = load_spec("tiny").replace(**{"digital.digital_layers": ["nope"]})
    net = one_conv()
    with pytest.raises(MappingError) as exc:
        map_network(spec, net)
    names = ", ".join(m.name for m in net.matrix_layers())
    assert str(exc.value) == (
        f"chip 'tiny': digital.digital_layers names 'nope', which is not a conv/linear layer of network "
        f"{net.name!r}; expected 'first', 'last' or one of: {names}")


def test_pure_and_deterministic():
    spec, net = load_spec("hermes"), get_network("resnet32")
    assert map_network(spec, net) == map_network(spec, net)


def test_depthwise_groups_packed_block_diagonally():
    # tiny: 32x32 arrays, 1 array per tile. Depthwise 3x3 on 16 channels: each group is K = 9 rows x N = 1 col;
    # m = min(floor(32/9), floor(32/1), 16) = 3 groups per array -> ceil(16/3) = 6 arrays (5 with 27 x 3 used,
    # the last with 9 x 1) instead of 16. Grouped 1x1 (4 groups of 4 -> 4): K = 4, N = 4, m = min(8, 8, 4) = 4 ->
    # one 16 x 16 block-diagonal array. Grouped 3x3 (4 groups, 16 -> 16): K = 36 > 32 rows: not packed,
    # 4 groups x 2 row blocks = 8 arrays.
    from mapping import costs
    from mapping.mapper import groups_per_array

    b = NetworkBuilder("dw", (16, 8, 8))
    x = b.conv("stem", b.input, 16, 1, bias=False)  # tiny runs its first and last layers digitally
    x = b.conv("dw", x, 16, 3, padding=1, groups=16, bias=False)
    x = b.conv("pw", x, 16, 1, groups=4, bias=False)
    x = b.conv("g3", x, 16, 3, padding=1, groups=4, bias=False)
    b.conv("head", x, 16, 1, bias=False)  # ... and the last
    spec = load_spec("tiny")
    res = map_network(spec, b.build(), MapOptions(replicate=False))
    dw, pw, g3 = res.layers[1:4]
    assert (dw.groups_per_array, dw.arrays, dw.tiles) == (3, 6, 6)
    assert (pw.groups_per_array, pw.arrays) == (4, 1)
    assert (g3.groups_per_array, g3.arrays) == (1, 8)
    assert dw.array_utilization == pytest.approx(144 / (6 * 32 * 32))
    assert dw.mvms == 6 * 64
    # array energy: 5 arrays driven on 27 rows x 3 cols and one on 9 x 1, for each of the 64 output pixels
    e = 64 * (5 * costs.analog_mvm_energy_pj(spec, 27, 3)["array"] + costs.analog_mvm_energy_pj(spec, 9, 1)["array"])
    assert dw.energy_pj["array"] == pytest.approx(e)
    assert res.placement().layer(1).groups_per_array == 3
    assert groups_per_array(9, 1, 1, 32, 32) == 1 and groups_per_array(9, 1, 2, 32, 32) == 2


def test_register_compiler_refuses_packed_groups():
    import numpy as np

    from rtl.register_compiler import analog_layer

    with pytest.raises(ValueError, match=r"layer 'dw': 3 convolution groups packed on one array") as e:
        analog_layer(load_spec("tiny"), np.ones((27, 3)), tile=0, dest=(0, 0), in_scale=1.0, out_scale=1.0,
                     name="dw", groups_per_array=3)
    assert "\n" not in str(e.value)


def test_progress_callback_counts_layers_and_changes_nothing():
    spec, net = load_spec("tiny"), get_network("mlp")
    calls: list[tuple[int, int]] = []
    with_bar = map_network(spec, net, progress=lambda done, total: calls.append((done, total)))
    n = len(calls)  # once per layer costed, the last with (n, n)
    assert calls == [(k, n) for k in range(1, n + 1)] and n >= 2
    assert with_bar == map_network(spec, net)


@pytest.mark.parametrize("arch", ["fig11", "hermes", "tiny", "isaac"])
def test_every_preset_maps_a_zoo_network(arch):
    # each preset the README lists must map a real network end to end (isaac once refused every network:
    # its global buffer was 0.001 KiB); finite, positive totals
    r = map_network(load_spec(arch), get_network("resnet32-joshi2020"))
    assert r.latency_ns > 0 and r.energy_total_pj > 0 and r.area_total_mm2 > 0


def test_digital_matrix_layer_cycles_count_whole_lane_groups():
    """A digital matrix layer costs K · ceil(C_out / mac_lanes) cycles per pixel, as the RTL computes it (mac_lanes
    output channels at a time): digits-mlp on tiny (4 lanes) -- fc1 64 x 64 → 64 · 16 = 1,024; fc3 64 x 10 →
    64 · 3 = 192, not 64 · 10 / 4 = 160 (the co-simulation measures 1,038 and 204 with the RTL's drain)."""
    r = map_network(load_spec("tiny"), get_network("digits-mlp"))
    cyc = {lay.name: lay.cycles for lay in r.layers if lay.kind == "digital"}
    assert cyc == {"fc1": 1024, "fc3": 192}
