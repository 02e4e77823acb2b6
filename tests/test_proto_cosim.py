"""The FPGA prototype (issue 19): digits-mlp on ``aimc_prototype`` with PCM array emulators, the done/error
interrupt, init codes from a trained network, and the option errors of the two CLI entries.

The co-simulation (Icarus; ``tb/test_proto_cosim.py``, :func:`tb.network_env.cosim_prototype`) runs once per
module on 2 digits images: noise off (bit-exact against the golden run whose analog layer takes its ADC codes
from :class:`archmodel.golden.emulator.EmulatorModel`), a one-code fault written over the bus, and a
configuration error; the noise-on run over more images is in ``bench/bench_proto_cosim.py`` (and
``aimc cosim --emulate-arrays --emulator-sigma S``).
"""

from __future__ import annotations

import numpy as np
import pytest

from archmodel.spec import load_spec

IMAGES = 2
SEED = 1


@pytest.fixture(scope="module")
def proto_run(tmp_path_factory):
    from archmodel.zoo import load_network
    from mapping.mapper import MapOptions, map_network
    from tb.network_env import cosim_prototype

    placement = map_network(load_spec("tiny-fpga"), load_network("digits-mlp"), MapOptions(replicate=False)).placement()
    return cosim_prototype("tiny-fpga", placement, images=IMAGES, seed=SEED, sim="icarus",
                           build_dir=tmp_path_factory.mktemp("proto"), sigma=0, fault=True, irq_error=True)


@pytest.mark.slow
def test_proto_digits_bit_exact_with_emulators(proto_run):
    """Noise off: every class score (2 x 10) and every mirrored fc2 output (2 x 64) of the prototype equals the
    golden run with the emulator model's ADC codes; no status flag; the RTL's top-1 = the golden's."""
    d = proto_run["test_proto_network"]
    assert d["passed"], d["message"]
    o = d["off"]
    assert o["compared"] == o["expected_outputs"] == IMAGES * 10 and o["mismatches"] == 0, o
    assert o["tap_compared"] == IMAGES * 64 and o["tap_mismatches"] == 0, o
    assert o["extra_outputs"] == 0 and o["format_errors"] == 0 and o["axil_errors"] == 0, o
    assert not any(o["flags"].values()), o["flags"]
    assert o["top1_rtl"] == o["top1_model"]
    # 4 tiles x 32 x 32 cells + SHIFT, SIGMA, SEED each, all over AXI4-Lite; tiny's shift 9 (hand-derived in
    # tests/test_emulator.py::test_conductance_codes_default_shift_fills_range)
    assert d["emulator_writes"] == 4 * (32 * 32 + 3) and set(d["shifts"].values()) == {9}


@pytest.mark.slow
def test_proto_done_interrupt_after_last_score(proto_run):
    """irq (IRQ_ENABLE = DONE | ERROR) rises 3 cycles after the cycle in which the host took the last score
    (docs/design.md 17: done -> IRQ_STATUS -> irq, registered), IRQ_STATUS reads DONE, a W1C clear drops irq."""
    o = proto_run["test_proto_network"]["off"]
    assert o["irq_rise_after_last_score"] == 3, o
    assert o["irq_status"] == 1 and o["irq_level"] == 1
    assert o["irq_after_clear"] == 0 and o["irq_status_after_clear"] == 0


@pytest.mark.slow
def test_proto_fault_in_one_emulated_weight_located_at_fc2(proto_run):
    """One conductance code of tile 0 (fc2's column block 0, upstream tile of the chain 0 -> 1; the row with the
    largest mean input, a column neither 0 nor clipped) changed over the bus after programming, golden untouched:
    fc2's mirrored outputs mismatch in that column of home tile 1 only (located at fc2)."""
    f = proto_run["test_proto_network"]["fault"]
    assert f["tile"] == 0 and f["home_tag"] == 1 and f["code"][0] != f["code"][1]
    assert f["tap_mismatches"] > 0 and f["tap_mismatch_at"] == [[1, f["col"]]], f
    assert f["compared"] == IMAGES * 10


@pytest.mark.slow
def test_proto_error_interrupt_on_configuration_error(proto_run):
    """Tile 0 started with K = 0: err_config, irq (IRQ_ENABLE = ERROR) high 6 cycles after the start write's
    response, IRQ_STATUS = ERROR; clearing the bit
    while the flag is set leaves irq high; after a good start and a clear irq is low."""
    e = proto_run["test_proto_irq_error"]
    assert e["passed"], e["message"]
    assert e["irq_before"] == 0 and e["status_before"] == 0
    assert e["tc_status"]["err_config"] == 1 and e["irq_level"] == 1 and e["status"] == 2
    assert e["irq_rise_after_start_write"] == 6  # docs/design.md 17: the per-tile error register, error, irq
    assert e["irq_after_clear_with_flag"] == 1 and e["irq_after_good_start_and_clear"] == 0 and e["status_after"] == 0


def test_emulated_golden_equals_hand_mac():
    """prepare_placed(emulate=...): each tile's golden ADC codes are round_half_even(d @ c / 2**shift) saturated to
    8 bits (written out here with numpy integer floor division, independent of EmulatorModel), the home tile adds
    its upstream tile's codes, and fc2's outputs are the affine coefficients applied to those sums."""
    from archmodel.golden.tile_controller import dac_codes
    from archmodel.zoo import load_network
    from mapping.mapper import MapOptions, map_network
    from tb.network_env import EmulatedArrays, digits_images, prepare_placed

    spec = load_spec("tiny")
    net = load_network("digits-mlp")
    placement = map_network(spec, net, MapOptions(replicate=False)).placement()
    x, labels, _ = digits_images(3, SEED)
    emu = EmulatedArrays()
    placed = prepare_placed(spec, placement, net, x, seed=SEED, labels=labels, emulate=emu)
    pn = placed.pn
    assert sorted(emu.codes) == [0, 1, 2, 3] and set(emu.shifts.values()) == {9}
    tp = pn.params

    def hand(tile: int, inputs: np.ndarray) -> np.ndarray:
        acc = dac_codes(inputs, spec.array.dac_bits) @ emu.codes[tile][0][:inputs.shape[1]]
        s = emu.shifts[tile]
        q, r = acc // 2**s, acc % 2**s
        q = q + ((r > 2**(s - 1)) | ((r == 2**(s - 1)) & (q % 2 == 1)))
        return np.clip(q, -128, 127)

    for c in range(2):  # column block c: mapped layers 1 + 2c (upstream) and 2 + 2c (home)
        up, home = pn.layers[1 + 2 * c], pn.layers[2 + 2 * c]
        psum = hand(up.tile, pn.inputs[1 + 2 * c]) + hand(home.tile, pn.inputs[2 + 2 * c])
        want = home.coefs.apply(psum, acc_bits=tp.acc_bits, scale_bits=tp.scale_bits, offset_bits=tp.offset_bits)
        assert np.array_equal(pn.taps[home.tile], want)
    # the emulator's integer weights track the analog model: the same class on most images
    analog = prepare_placed(spec, placement, net, x, seed=SEED, labels=labels).pn
    assert analog.expected.shape == pn.expected.shape == (3, 10)
    assert np.mean(np.abs(analog.layer_outputs[1] - pn.layer_outputs[1])) < 4  # int8 fc2 outputs, ~100 full scale


def test_emulated_codes_drift_with_t_inf():
    """prepare_placed(emulate=..., t_inf_s=3600): each tile's emulator codes come from its matrix drifted to 1 h
    (the MLP path drifts with an rng, which moves the stored conductances): the mean |code| over the 4 tiles falls
    to 0.70..0.85 of the t = 0 codes (E[(t/t0)^-nu] = 0.7758 at 1 h, docs/design.md; the shift is the same)."""
    from archmodel.zoo import load_network
    from mapping.mapper import MapOptions, map_network
    from tb.network_env import EmulatedArrays, digits_images, prepare_placed

    spec = load_spec("tiny")
    net = load_network("digits-mlp")
    placement = map_network(spec, net, MapOptions(replicate=False)).placement()
    x, labels, _ = digits_images(2, SEED)
    mean = {}
    for t in (0.0, 3600.0):
        emu = EmulatedArrays()
        prepare_placed(spec, placement, net, x, seed=SEED, labels=labels, emulate=emu, t_inf_s=t)
        assert set(emu.shifts.values()) == {9}
        mean[t] = np.mean([np.abs(emu.codes[k]).mean() for k in sorted(emu.codes)])
    assert 0.70 < mean[3600.0] / mean[0.0] < 0.85, mean


@pytest.mark.parametrize(("args", "message"), [
    (["--layer", "1", "--emulate-arrays"], "--emulate-arrays runs the whole network on the prototype: it needs "
                                           "--images N"),
    (["--images", "2", "--emulator-sigma", "10"], "--emulator-sigma needs --emulate-arrays"),
    (["--images", "2", "--emulate-arrays", "--emulator-sigma", "0"], "--emulator-sigma must be in 1..255, got 0"),
    (["--images", "2", "--emulate-arrays", "--emulator-sigma", "256"], "--emulator-sigma must be in 1..255, got 256"),
    (["--images", "2", "--emulate-arrays", "--emulator-seed", "5"], "--emulator-seed needs --emulator-sigma S "
                                                                    "(the noise-off run uses no seed)"),
    (["--images", "2", "--emulate-arrays", "--t-inf", "-1"], "--t-inf must be finite and >= 0 s, got -1.0"),
])
def test_cosim_emulate_arrays_option_errors(args, message, capsys):
    from mapping.cli.main import main

    assert main(["cosim", "--arch", "tiny", "--network", "digits-mlp", *args]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"aimc: error: {message}"]


@pytest.mark.parametrize(("args", "message"), [
    (["--network", "digits-mlp"], "--network needs --emulate-arrays (it sets the emulators' initial conductance "
                                  "codes)"),
    (["--weights", "w.npz"], "--weights needs --emulate-arrays --network NAME"),
    (["--emulate-arrays", "--network", "digits-cnn"], "--network digits-cnn: the emulators' codes come from a "
                                                      "digital -> analog -> digital placement of linear layers; on "
                                                      "'tiny' it is ['digital', 'analog', 'analog', 'digital']"),
    (["--emulate-arrays", "--network", "digits-mlp", "--weights", "BAD"],
     "BAD: fc1/weight has shape (3, 3), network expects (64, 64)"),
])
def test_verilog_emulator_init_option_errors(args, message, tmp_path, capsys):
    from archmodel.weights_io import save_npz
    from mapping.cli.main import main

    bad = tmp_path / "bad.npz"
    save_npz(bad, {"fc1": {"weight": np.zeros((3, 3))}})
    args = [str(bad) if a == "BAD" else a for a in args]
    message = message.replace("BAD", str(bad))
    assert main(["verilog", "--arch", "tiny", "--out", str(tmp_path / "out"), *args]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [f"aimc: error: {message}"]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_verilog_emulator_init_from_trained_npz(tmp_path, monkeypatch):
    """``aimc verilog --emulate-arrays --network digits-mlp --weights W.npz``: emulator_codes.npz holds, per tile,
    conductance_codes of the matrix the co-simulation programs (same weights, seed, t_inf: recomputed here), and
    aimc_prototype.v carries them as the emulators' memory init (row 0 of tile 0 as 4 packed hex words, one per
    column group)."""
    from archmodel.weights_io import save_npz
    from archmodel.zoo import load_network
    from mapping.mapper import MapOptions, map_network
    from tb.network_env import EmulatedArrays, digits_images, prepare_placed

    spec = load_spec("tiny")
    net = load_network("digits-mlp")
    placement = map_network(spec, net, MapOptions(replicate=False)).placement()
    rng = np.random.default_rng(7)
    params = {lp.name: {"weight": rng.standard_normal((lp.matrix_cols, lp.matrix_rows)) * 0.2,
                        "bias": rng.normal(0, 0.1, lp.matrix_cols)} for lp in placement.layers}
    w = tmp_path / "w.npz"
    save_npz(w, params)
    out = tmp_path / "v"
    import rtl.export
    from mapping.cli.main import main

    # the per-block files are tests/test_verilog_export.py's: skipped here (≈ 10 s of make test)
    monkeypatch.setattr(rtl.export, "export_verilog", lambda spec, out, **kw: [])
    assert main(["verilog", "--arch", "tiny", "--out", str(out), "--emulate-arrays", "--network", "digits-mlp",
                 "--weights", str(w), "--t-inf", "3600", "--seed", "2"]) == 0
    got = np.load(out / "emulator_codes.npz")
    x, labels, _ = digits_images(4, 2)
    emu = EmulatedArrays()
    prepare_placed(spec, placement, net, x, seed=2, params=params, labels=labels, t_inf_s=3600.0, emulate=emu)
    assert got["codes"].shape == (4, 1, 32, 32)
    for t in range(4):
        assert np.array_equal(got["codes"][t], emu.codes[t])
    assert list(got["shifts"]) == [emu.shifts[t] for t in range(4)] and float(got["t_inf_s"]) == 3600.0
    assert np.abs(got["codes"]).max() > 16  # not all zeros
    text = (out / "aimc_prototype.v").read_text()
    for b in range(4):  # one memory word per row and column group of 8 codes (rtl/emulator.py)
        word = sum((int(c) & 0xFF) << (8 * j) for j, c in enumerate(emu.codes[0][0, 0, 8 * b:8 * b + 8]))
        assert f"{word:016x}" in text
