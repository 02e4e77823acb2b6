"""Analog inference of trained digits networks on PCM over time (archmodel.accuracy) and the CLI.

The statistical tests follow issue 6 for seeds 0..4. Each evaluates the
noise-trained ``digits-cnn`` (σ_rel = 0.10 of max|W|, 12 epochs) and the same
network trained without noise on the ``fig11`` preset (512-row arrays, the
experiment's chip; faster here than ``tiny``, whose 32-row arrays split every
layer into many row blocks), with ``DRAWS`` Monte-Carlo draws on the 540 test
images. SE = standard error of a mean over draws (std/√draws, ddof = 1); the
SE of a difference of two means is ``sqrt(SE_a² + SE_b²)`` (conservative: the
draws are paired).
"""

from __future__ import annotations

import json
import math
from functools import cache

import numpy as np
import pytest

from archmodel import accuracy as acc
from archmodel.accuracy import AccuracyError, AccuracyOptions, prepare
from archmodel.accuracy_experiment import evaluate_accuracy, evaluate_draw
from archmodel.datasets import load_digits_split
from archmodel.golden.digital import digital_conv2d, im2col
from archmodel.network.builder import NetworkBuilder
from archmodel.spec import load_spec
from archmodel.training import TrainConfig, init_params, train
from archmodel.weights_io import save_npz
from archmodel.zoo_digits import digits_cnn, digits_mlp
from mapping.cli.main import main

SEEDS = [0, 1, 2, 3, 4]
DRAWS = 8
NOISE = 0.10
EPOCHS = 12
TIMES = (("1 s", 1.0), ("1 day", 86400.0), ("1 year", 31_536_000.0))
DFL, AA = "digital_first_last", "all_analog"


def _sigint_default() -> None:
    """Child side of the Ctrl-C tests: the default SIGINT disposition, whatever the test runner inherited
    (a background job of a non-interactive shell starts with SIGINT ignored, and children inherit that)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


@cache
def trained(seed: int, noise: float):
    data = load_digits_split(seed)
    res = train(digits_cnn(), data.x_train, data.y_train, data.x_test, data.y_test,
                TrainConfig(noise=noise, epochs=EPOCHS), seed=seed)
    return res, data


@cache
def experiment(seed: int, noise: float, settings, times):
    res, data = trained(seed, noise)
    opts = AccuracyOptions(draws=DRAWS, times_s=times, only_settings=settings)
    return evaluate_accuracy(load_spec("fig11"), digits_cnn(), res.params, data.x_train, data.x_test, data.y_test,
                             opts, seed=seed, workers=2)


DAY = (("1 day", 86400.0),)


def uncompensated(seed: int):
    """Noise-trained network, no compensation, both placements, at 1 s, 1 day and 1 year."""
    return experiment(seed, NOISE, ((DFL, "none"), (AA, "none")), TIMES)


def compensated(seed: int):
    """Noise-trained network at 1 day: GDC and AdaBS (first/last digital), GDC (all analog)."""
    return experiment(seed, NOISE, ((DFL, "gdc"), (DFL, "adabs"), (AA, "gdc")), DAY)


def se2(ra, a: str, rb, b: str, t: str = "1 day") -> float:
    """SE of the difference of two means (unpaired formula)."""
    return math.hypot(ra.at(a, t)[2], rb.at(b, t)[2])


# ----------------------------------------------------------------------------- issue 6, seeds 0..4
#: Measured with issue 11's per-layer ADC range (fig11, 8 draws, 540 test images; loss against each network's own
#: FP32, all analog, GDC, 1 day, points; SE of the difference):
#:   seed 0: noise-trained 0.49, noise-free 1.23 (SE 0.24)    seed 1: 0.83, 1.76 (0.22)    seed 2: 1.34, 0.90 (0.22)
#:   seed 3: 0.05, 0.60 (0.26)    seed 4: 0.35, 0.88 (0.20)    mean over seeds 0-4: 0.61, 1.07 (SE 0.10)
#: Seed 2 violates the per-seed inequality by 2 SE the other way (its noise-trained network has the higher FP32,
#: 98.89 vs 98.33 %). The wave-1 margin came largely from ADC rounding at the fixed range (1-5 LSB RMS), which
#: noise training absorbs; the per-seed test keeps seed 2 as a strict xfail (the recorded violation), and
#: test_noise_training_reduces_mean_loss_over_seeds_at_1_day_with_gdc tests the benefit where it is resolved.
NOISE_TRAINING_VIOLATIONS = {2}


@pytest.mark.slow
@pytest.mark.parametrize("seed", [pytest.param(s, marks=pytest.mark.xfail(
    strict=True, reason="issue 11: with per-layer ADC ranging noise training does not beat noise-free on seed 2"))
    if s in NOISE_TRAINING_VIOLATIONS else s for s in SEEDS])
def test_noise_training_reduces_loss_at_1_day_with_gdc(seed):
    """Mean loss against FP32, all layers analog, GDC, 1 day: noise-trained < trained without noise, by > 1 SE."""
    rn = compensated(seed)
    r0 = experiment(seed, 0.0, ((AA, "gdc"),), DAY)
    loss_n = rn.fp32_accuracy - rn.at(f"{AA}/gdc", "1 day")[0]
    loss_0 = r0.fp32_accuracy - r0.at(f"{AA}/gdc", "1 day")[0]
    se = se2(rn, f"{AA}/gdc", r0, f"{AA}/gdc")
    assert loss_n + se < loss_0, f"seed {seed}: loss noise-trained {loss_n:.4f}, noise-free {loss_0:.4f}, SE {se:.4f}"


@pytest.mark.slow
def test_noise_training_reduces_mean_loss_over_seeds_at_1_day_with_gdc():
    """Issue 11's form of the inequality under per-layer ADC ranging: mean over seeds 0-4 of the loss against FP32
    (all analog, GDC, 1 day), noise-trained < trained without noise by > 2 SE of the difference of the means
    (measured 0.61 vs 1.07 points, SE 0.10). Reuses the per-seed test's cached experiments."""
    ln, l0, var = [], [], 0.0
    for seed in SEEDS:
        rn, r0 = compensated(seed), experiment(seed, 0.0, ((AA, "gdc"),), DAY)
        ln.append(rn.fp32_accuracy - rn.at(f"{AA}/gdc", "1 day")[0])
        l0.append(r0.fp32_accuracy - r0.at(f"{AA}/gdc", "1 day")[0])
        var += se2(rn, f"{AA}/gdc", r0, f"{AA}/gdc") ** 2
    se = math.sqrt(var) / len(SEEDS)
    assert np.mean(ln) + 2 * se < np.mean(l0), (f"mean loss noise-trained {100 * np.mean(ln):.2f}, noise-free "
                                                f"{100 * np.mean(l0):.2f} points, SE {100 * se:.2f}")


#: (seed, placement) whose drift loss at 1 day is not above 3 SE (so the test has nothing to measure). Recorded
#: with issue 18's tap-major conv rows, which redraw every conv weight's programming noise (drawn in matrix order):
#: seed 1, first/last digital: drift loss 0.39 points, 3 SE 0.66 (before: 0.67 vs 0.40; GDC at 1 day 97.69 vs
#: 97.71 % before -- the compensation is unchanged, the 1 s reference moved 97.85 -> 97.62 %).
NO_DRIFT_LOSS = {(1, DFL)}


@pytest.mark.slow
@pytest.mark.parametrize("seed,placement", [
    pytest.param(s, p, marks=pytest.mark.xfail(strict=True, reason="issue 18: drift loss below 3 SE on this draw"))
    if (s, p) in NO_DRIFT_LOSS else (s, p) for s in SEEDS for p in (DFL, AA)])
def test_gdc_recovers_half_the_drift_loss_at_1_day(seed, placement):
    """Drift loss = A_none(1 s) - A_none(1 day) (> 3 SE, so there is one); GDC gets back >= half of it."""
    ru, rc = uncompensated(seed), compensated(seed)
    s1, none = ru.at(f"{placement}/none", "1 s")[0], ru.at(f"{placement}/none", "1 day")[0]
    gdc = rc.at(f"{placement}/gdc", "1 day")[0]
    se = se2(ru, f"{placement}/none", rc, f"{placement}/gdc")
    assert s1 - none > 3 * se, f"seed {seed}: drift loss {s1 - none:.4f} not above 3 SE ({3 * se:.4f})"
    assert gdc - none >= 0.5 * (s1 - none), f"seed {seed}: 1 s {s1:.4f}, 1 day none {none:.4f}, GDC {gdc:.4f}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_adabs_at_least_gdc_minus_2se_at_1_day(seed):
    r = compensated(seed)
    a, g = r.at(f"{DFL}/adabs", "1 day")[0], r.at(f"{DFL}/gdc", "1 day")[0]
    se = se2(r, f"{DFL}/adabs", r, f"{DFL}/gdc")
    assert a >= g - 2 * se, f"seed {seed}: AdaBS {a:.4f}, GDC {g:.4f}, SE {se:.4f}"


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
def test_first_last_digital_at_least_all_analog_minus_2se(seed):
    r = compensated(seed)
    d, a = r.at(f"{DFL}/gdc", "1 day")[0], r.at(f"{AA}/gdc", "1 day")[0]
    se = se2(r, f"{DFL}/gdc", r, f"{AA}/gdc")
    assert d >= a - 2 * se, f"seed {seed}: first/last digital {d:.4f}, all analog {a:.4f}, SE {se:.4f}"


@pytest.mark.slow
@pytest.mark.parametrize("placement", [DFL, AA])
@pytest.mark.parametrize("seed", SEEDS)
def test_no_compensation_1_year_below_1_s_by_3se(seed, placement):
    r = uncompensated(seed)
    s1, y1 = r.at(f"{placement}/none", "1 s")[0], r.at(f"{placement}/none", "1 year")[0]
    se = math.hypot(r.at(f"{placement}/none", "1 s")[2], r.at(f"{placement}/none", "1 year")[2])
    assert y1 < s1 - 3 * se, f"seed {seed}: 1 s {s1:.4f}, 1 year {y1:.4f}, SE {se:.4f}"


# ----------------------------------------------------------------------------- unit tests
def _tiny_ideal():
    """tiny preset with a 14-bit ADC (ideal-ish periphery; 32-bit accumulator so 16 row blocks still add exactly)."""
    return load_spec("tiny").replace(**{"array.adc_bits": 14, "periphery.accumulator_bits": 32,
                                        "array.adc_full_scale_fraction": 0.25})


@pytest.mark.parametrize("scaling", ["per_layer", "per_column"])
def test_ideal_device_reproduces_fp32(scaling):
    """Ideal PCM + 14-bit ADC, all layers analog: within 1.0 % of FP32 (only int8 activations remain); also with
    mapping.weight_scaling per_column (per-column conductance scales and affine multipliers in the accuracy path)."""
    res, data = trained(0, NOISE)
    opts = AccuracyOptions(draws=2, times_s=(("1 day", 86400.0),), only_settings=((AA, "none"), (AA, "gdc")),
                           ideal_device=True)
    spec = _tiny_ideal().replace(**{"mapping.weight_scaling": scaling})
    r = evaluate_accuracy(spec, digits_cnn(), res.params, data.x_train, data.x_test, data.y_test, opts,
                          seed=0, workers=1)
    for key in r.draws:
        assert np.all(np.abs(r.draws[key] - r.fp32_accuracy) <= 0.010), (key, r.draws[key], r.fp32_accuracy)
        assert np.ptp(r.draws[key]) == 0  # nothing random left
    assert abs(r.int8_accuracy - r.fp32_accuracy) <= 0.010


def test_rows_follow_golden_im2col_order():
    net = digits_cnn()
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(3, 16, 4, 4)).astype(np.int8)
    layer = net["conv2"]
    rows, p = acc.mvm_rows(layer, x)
    assert p == 16 and rows.shape == (3 * 16, 144)
    for b in range(3):
        ref = im2col(x[b], 3, 1, 1)  # (K, P)
        np.testing.assert_array_equal(rows[b * 16:(b + 1) * 16], ref.T)


@pytest.mark.parametrize("groups,stride,pad,dilation", [(1, (2, 1), (1, 0, 2, 1), (2, 1)), (2, (1, 1), (1, 1, 1, 1), (1, 1)),
                                                     (4, (1, 2), (0, 0, 0, 0), (1, 2))])
def test_tap_major_matrix_times_rows_is_the_integer_conv(groups, stride, pad, dilation):
    """mvm_rows (tap-major) @ _full_matrix (block-diagonal over groups) == golden digital_conv2d, exactly."""
    rng = np.random.default_rng(7)
    b = NetworkBuilder("t", (4, 7, 6))
    b.conv("c", b.input, 8, (3, 2), stride=stride, padding=pad, dilation=dilation, groups=groups, bias=False)
    layer = b.build()["c"]
    x = rng.integers(-128, 128, size=(2, 4, 7, 6)).astype(np.int8)
    w = rng.integers(-128, 128, size=(8, 4 // groups, 3, 2))
    rows, p = acc.mvm_rows(layer, x, np.float64)
    mat = acc._full_matrix(layer, w)
    assert mat.shape == (3 * 2 * 4, 8) and rows.shape == (2 * p, 24)
    got = acc.mvm_unrows(layer, rows @ mat, 2)
    for n in range(2):
        np.testing.assert_array_equal(got[n], digital_conv2d(x[n], w, stride, pad, dilation, groups))
    if groups == 2:  # row (i, j, c) = (0, 1, 3) of output 5 (group 1): w[5, 3 - 2, 0, 1]; output 0 (group 0): 0
        assert mat[(0 * 2 + 1) * 4 + 3, 5] == w[5, 1, 0, 1] and mat[(0 * 2 + 1) * 4 + 3, 0] == 0
    perm = acc.tap_major_order(layer)  # channel-major (float reference) -> tap-major
    np.testing.assert_array_equal(acc.mvm_rows(layer, x, tap_major=False)[0][:, perm], acc.mvm_rows(layer, x)[0])
    if groups == 1:
        np.testing.assert_array_equal(layer.weight_matrix(weight=w)[perm], mat)


def test_digital_int8_layers_match_golden_digital_conv2d_bit_for_bit():
    res, data = trained(0, NOISE)
    prep = prepare(load_spec("tiny"), digits_cnn(), res.params, data.x_train, AccuracyOptions(draws=1))
    inst = acc.NetworkInstance(prep, ["int8"] * 4, [None] * 4, [1.0] * 4)
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, size=(4, 16, 4, 4)).astype(np.int8)
    st = [s for s in prep.stages if s.kind == "matrix"][1]  # conv2
    acc_sum, p = inst._accumulate(1, st, x, 0)
    w_int8 = inst.w_int8[1][0].astype(np.int64)  # (K, N)
    w_oihw = w_int8.reshape(3, 3, 16, 32).transpose(3, 2, 0, 1)  # tap-major rows (i, j, c) -> OIHW
    compared = 0
    for b in range(4):
        ref = digital_conv2d(x[b], w_oihw, padding=1)  # (C_out, H, W)
        np.testing.assert_array_equal(acc_sum[b * p:(b + 1) * p], ref.reshape(32, -1).T)
        compared += ref.size
    assert compared == 4 * 32 * 16


def test_evaluate_draw_covers_every_setting_and_time():
    """Default options: 2 placements x 4 compensations, 5 times, accuracies in [0, 1] (tiny preset, 50 images)."""
    res, data = trained(0, NOISE)
    spec = load_spec("tiny")
    prep = prepare(spec, digits_cnn(), res.params, data.x_train, AccuracyOptions(draws=1))
    draw = evaluate_draw(prep, data.x_test[:50], data.y_test[:50], seed=3, draw=0)
    assert set(draw) == {f"{p}/{c}" for p in acc.PLACEMENTS for c in acc.COMPENSATIONS}
    assert all(len(v) == 5 and all(0 <= a <= 1 for a in v) for v in draw.values())


def test_draw_is_a_pure_function_and_workers_do_not_matter():
    res, data = trained(0, NOISE)
    spec = load_spec("fig11")
    opts = AccuracyOptions(draws=2, times_s=(("1 day", 86400.0),), only_settings=((DFL, "gdc"), (DFL, "adabs")))
    x, y = data.x_test[:120], data.y_test[:120]
    a = evaluate_accuracy(spec, digits_cnn(), res.params, data.x_train, x, y, opts, seed=7, workers=1)
    b = evaluate_accuracy(spec, digits_cnn(), res.params, data.x_train, x, y, opts, seed=7, workers=2)
    c = evaluate_accuracy(spec, digits_cnn(), res.params, data.x_train, x, y, opts, seed=8, workers=1)
    for k in a.draws:
        np.testing.assert_array_equal(a.draws[k], b.draws[k])
    assert any(not np.array_equal(a.draws[k], c.draws[k]) for k in a.draws)


def test_mlp_without_batchnorm_runs_every_setting():
    data = load_digits_split(0)
    r = train(digits_mlp(), data.x_train, data.y_train, data.x_test, data.y_test, TrainConfig(epochs=10), seed=0)
    out = evaluate_accuracy(load_spec("fig11"), digits_mlp(), r.params, data.x_train, data.x_test[:100],
                            data.y_test[:100], AccuracyOptions(draws=2, times_s=(("1 s", 1.0),)), seed=0, workers=1)
    assert out.fp32_accuracy > 0.85
    assert out.at(f"{DFL}/gdc", "1 s")[0] > 0.8


def test_unsupported_networks_are_refused_with_one_line():
    b = NetworkBuilder("sm", (1, 8, 8))  # residual adds and element-wise activations are supported (issue 16)
    c1 = b.conv("c1", b.input, 4, 3, padding=1)
    b.activation("sm", c1, "softmax")  # over channels: not element-wise
    net = b.build()
    params = init_params(digits_cnn(), np.random.default_rng(0))
    with pytest.raises(AccuracyError, match="layer 'sm': activation softmax is not supported"):
        prepare(load_spec("tiny"), net, params, np.zeros((2, 1, 8, 8)))
    with pytest.raises(AccuracyError, match="unknown compensation"):
        AccuracyOptions(compensations=("magic",))
    with pytest.raises(AccuracyError, match="digital layer 'nope'"):
        prepare(load_spec("tiny"), digits_cnn(), params, np.zeros((2, 1, 8, 8)),
                AccuracyOptions(digital_layers=("nope",)))


# ----------------------------------------------------------------------------- CLI
@pytest.mark.slow
def test_cli_train_then_accuracy(tmp_path, capsys):
    assert main(["train", "--network", "digits-cnn", "--noise", "0.05", "--seed", "0", "--epochs", "2",
                 "--out", str(tmp_path / "t"), "--quiet"]) == 0
    w = tmp_path / "t" / "weights.npz"
    assert w.is_file() and json.loads((tmp_path / "t" / "train.json").read_text())["noise"] == 0.05
    assert main(["accuracy", "--arch", "fig11", "--network", "digits-cnn", "--weights", str(w), "--seed", "0",
                 "--draws", "2", "--workers", "1", "--out", str(tmp_path / "a"), "--quiet"]) == 0
    rep = json.loads((tmp_path / "a" / "report.json").read_text())
    assert [t["t_inf_s"] for t in rep["times"]] == [1.0, 3600.0, 86400.0, 2_592_000.0, 31_536_000.0]
    assert len(rep["settings"]) == 8 and rep["draws"] == 2
    md = (tmp_path / "a" / "report.md").read_text()
    assert "FP32 baseline" in md and "first/last digital, AdaBS" in md
    assert (tmp_path / "a" / "accuracy_vs_time.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_accuracy_errors_are_one_line(tmp_path, capsys):
    assert main(["accuracy", "--arch", "tiny", "--weights", str(tmp_path / "missing.npz"),
                 "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file" in err[0]
    params = init_params(digits_mlp(), np.random.default_rng(0))
    save_npz(tmp_path / "mlp.npz", params)
    assert main(["accuracy", "--arch", "tiny", "--network", "digits-cnn", "--weights", str(tmp_path / "mlp.npz"),
                 "--out", str(tmp_path / "o")]) == 1
    assert "has no parameters" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--seed", "-1"], "--seed must be >= 0, got -1"),
        (["--draws", "0"], "--draws must be in 2..10000 (2 for a standard deviation), got 0"),
        (["--draws", "10001"], "--draws must be in 2..10000 (2 for a standard deviation), got 10001"),
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--adabs-images", "1"], "--adabs-images must be >= 2, got 1"),
        # 1,797 images, 30 % test (540, sklearn rounds up): 1,257 training images for seed 0
        (["--adabs-images", "1258"], "--adabs-images = 1258 exceeds the 1257 images of the training split"),
        (["--epochs", "0"], "--epochs must be in 1..10000, got 0"),
        (["--noise", "-0.1"], "--noise must be a finite number >= 0 (fraction of max|W|), got -0.1"),
        (["--noise", "nan"], "--noise must be a finite number >= 0 (fraction of max|W|), got nan"),
        (["--clip-sigma", "0"], "--clip-sigma must be a finite number > 0, got 0.0"),
        (["--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
        (["--lr", "inf"], "--lr must be a finite number > 0, got inf"),
    ],
)
def test_cli_accuracy_bad_options_before_any_work(tmp_path, capsys, argv, message):
    out = tmp_path / "o"
    assert main(["accuracy", "--arch", "tiny", "--network", "digits-mlp", *argv, "--out", str(out), "--quiet"]) == 1
    cap = capsys.readouterr()
    assert cap.err.strip().splitlines() == [f"aimc: error: {message}"]
    assert cap.out == ""
    assert not out.exists()  # rejected before --out is even created, so before any training


@pytest.mark.parametrize("flag", [["--noise", "0.1"], ["--epochs", "3"], ["--clip-sigma", "2.5"], ["--lr", "0.01"]])
def test_cli_accuracy_training_flags_with_weights_rejected(tmp_path, capsys, flag):
    w = tmp_path / "mlp.npz"
    save_npz(w, init_params(digits_mlp(), np.random.default_rng(0)))
    out = tmp_path / "o"
    assert main(["accuracy", "--arch", "tiny", "--network", "digits-mlp", "--weights", str(w), *flag,
                 "--out", str(out), "--quiet"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"aimc: error: {flag[0]} has no effect with --weights; it was set when training"]
    assert not out.exists()


def test_cli_train_bad_options_one_line(tmp_path, capsys):
    for argv, message in ((["--seed", "-1"], "--seed must be >= 0, got -1"),
                          (["--epochs", "-2"], "--epochs must be in 1..10000, got -2"),
                          (["--noise", "inf"], "--noise must be a finite number >= 0 (fraction of max|W|), got inf"),
                          (["--lr", "-0.001"], "--lr must be a finite number > 0, got -0.001"),
                          (["--lr", "nan"], "--lr must be a finite number > 0, got nan")):
        assert main(["train", "--network", "digits-mlp", *argv, "--out", str(tmp_path / "t"), "--quiet"]) == 1
        assert capsys.readouterr().err.strip().splitlines() == [f"aimc: error: {message}"]
        assert not (tmp_path / "t").exists()


def test_cli_train_lr_reaches_the_trainer(tmp_path, capsys):
    """``--lr`` is in the help, recorded in train.json and trains exactly as TrainConfig(lr=...) does."""
    from archmodel.weights_io import load_npz

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--lr LR" in capsys.readouterr().out
    out = tmp_path / "t"
    assert main(["train", "--network", "digits-mlp", "--epochs", "1", "--lr", "0.02", "--out", str(out), "--quiet"]) == 0
    meta = json.loads((out / "train.json").read_text())
    assert (meta["lr"], meta["noise"], meta["frozen_bn_epochs"]) == (0.02, 0.05, 0)
    got, _ = load_npz(out / "weights.npz", digits_mlp())
    data = load_digits_split(0)
    ref = train(digits_mlp(), data.x_train, data.y_train, data.x_test, data.y_test,
                TrainConfig(noise=0.05, epochs=1, lr=0.02), seed=0).params
    default = train(digits_mlp(), data.x_train, data.y_train, data.x_test, data.y_test,
                    TrainConfig(noise=0.05, epochs=1), seed=0).params
    np.testing.assert_array_equal(got["fc1"]["weight"], ref["fc1"]["weight"])
    assert not np.array_equal(got["fc1"]["weight"], default["fc1"]["weight"])


def test_cli_accuracy_ctrl_c_stops_promptly(tmp_path):
    # SIGINT ~3 s into a run of many draws over 2 worker processes: the pool is
    # terminated, the CLI exits 130 within 5 s and writes no file.
    import signal
    import subprocess
    import sys
    import time

    w = tmp_path / "mlp.npz"
    save_npz(w, init_params(digits_mlp(), np.random.default_rng(0)))
    out = tmp_path / "o"
    proc = subprocess.Popen([sys.executable, "-m", "mapping.cli", "accuracy", "--arch", "tiny", "--network",
                             "digits-mlp", "--weights", str(w), "--draws", "2000", "--workers", "2",
                             "--out", str(out), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_sigint_default)
    time.sleep(3.0)
    assert proc.poll() is None, proc.communicate()  # still working when interrupted
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        stdout, stderr = proc.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("aimc accuracy did not exit within 5 s of SIGINT")
    assert time.monotonic() - t0 < 5
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["aimc: interrupted"]
    assert not out.exists() or list(out.iterdir()) == []


def test_progress_bars_off_when_stderr_is_not_a_terminal(tmp_path):
    # no --quiet, stderr piped: tqdm (disable=None) must print no bar, so stderr stays empty
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "mapping.cli", "train", "--network", "digits-mlp", "--epochs", "1",
                        "--out", str(tmp_path / "t")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert "trained digits-mlp (noise 0.05, seed 0, 1 epochs, lr 0.003)" in r.stdout


# ----------------------------------------------------------------------------- issue 11
@pytest.mark.slow
def test_per_layer_adc_range_1_day_within_1_point_of_fp32():
    """fig11 (noise scales 1.0, 8-bit DAC/ADC), calibration.adc_range per_layer (the default), noise-trained
    digits-cnn, first/last digital: 1-day accuracy with GDC and with AdaBS >= FP32 on the same test images
    - 1.0 point, mean over seeds 0..4 (issue 11; the wave-1 fixed range lost 1-2.6 points)."""
    spec = load_spec("fig11")
    assert spec.calibration.adc_range == "per_layer" and spec.array.adc_bits == 8 and spec.array.dac_bits == 8
    assert (spec.device.prog_noise_scale, spec.device.drift_scale, spec.device.read_noise_scale) == (1.0, 1.0, 1.0)
    for comp in ("gdc", "adabs"):
        losses = [compensated(s).fp32_accuracy - compensated(s).at(f"{DFL}/{comp}", "1 day")[0] for s in SEEDS]
        assert np.mean(losses) <= 0.010, f"{comp}: 1-day losses {np.round(100 * np.array(losses), 2)} points"


@pytest.mark.slow
def test_12_bit_adc_matches_8_bit_with_paired_draws():
    """With per-layer ranging the PCM, not the ADC, limits accuracy: a 12-bit ADC is within max(2 SE, 0.3 points)
    of the 8-bit one (same seed and draws, so the same devices and read noise: paired differences)."""
    seed = 0
    res, data = trained(seed, NOISE)
    key = f"{DFL}/gdc"
    opts = AccuracyOptions(draws=DRAWS, times_s=DAY, only_settings=((DFL, "gdc"),))
    r12 = evaluate_accuracy(load_spec("fig11").replace(**{"array.adc_bits": 12}), digits_cnn(), res.params,
                            data.x_train, data.x_test, data.y_test, opts, seed=seed, workers=2)
    r8 = compensated(seed)
    d = r12.draws[key][:, 0] - r8.draws[key][:, 0]
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert abs(d.mean()) <= max(2 * se, 0.003), f"12-bit - 8-bit {100 * d.mean():.2f} points, SE {100 * se:.2f}"


def test_calibration_images_disjoint_from_test_and_enough_gdc_vectors():
    data = load_digits_split(2)
    params = init_params(digits_mlp(), np.random.default_rng(0))
    prep = prepare(load_spec("fig11"), digits_mlp(), params, data.x_train, AccuracyOptions(draws=2),
                   train_index=data.train_index)
    np.testing.assert_array_equal(prep.calibration_index, data.train_index[:128])
    np.testing.assert_array_equal(prep.adabs_index, data.train_index[:128])
    assert not set(prep.calibration_index.tolist()) & set(data.test_index.tolist())
    assert len(set(data.train_index.tolist()) | set(data.test_index.tolist())) == 1797
    assert prep.adc_range == "per_layer"
    assert [len(r) for r in prep.cal_rows] == [128, 128, 128]  # one GDC vector per image per linear layer
    with pytest.raises(AccuracyError, match="calibration_images must be >= 128"):
        AccuracyOptions(calibration_images=64)


def test_weights_seed_mismatch_refused_with_one_line_and_no_report(tmp_path, capsys):
    from archmodel.weights_io import save_npz as save

    w = tmp_path / "w.npz"
    save(w, init_params(digits_mlp(), np.random.default_rng(0)),
         {"seed": 3, "split": load_digits_split(3).meta})
    out = tmp_path / "o"
    assert main(["accuracy", "--arch", "fig11", "--network", "digits-mlp", "--weights", str(w), "--seed", "0",
                 "--out", str(out), "--quiet"]) == 1
    cap = capsys.readouterr()
    assert cap.err.strip().splitlines() == [
        f"aimc: error: --seed 0: weights {w} were trained with seed 3 (another seed's test images include "
        "their training images); drop --seed or pass --seed 3"]
    assert not out.exists()
    # without --seed the file's seed and split are used
    assert main(["accuracy", "--arch", "fig11", "--network", "digits-mlp", "--weights", str(w), "--draws", "2",
                 "--workers", "1", "--out", str(out), "--quiet", "--no-plot"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["seed"] == 3 and rep["split"] == load_digits_split(3).meta and rep["test_images"] == 540
    assert rep["calibration"]["calibration_disjoint_from_test"] is True


@pytest.mark.slow
def test_kfold_covers_every_image_and_pools_the_folds():
    """k = 2 on digits-mlp: the test folds cover all 1,797 images once; each draw's pooled accuracy is the
    image-weighted mean of the folds' accuracies, recomputed here fold by fold."""
    from archmodel.datasets import load_digits_fold
    from archmodel.digits_experiment import kfold_accuracy, train_on_digits

    spec, net = load_spec("fig11"), digits_mlp()
    opts = AccuracyOptions(draws=2, times_s=DAY, only_settings=((AA, "gdc"),))
    res, folds = kfold_accuracy(spec, net, 1, 2, 0.05, 3, None, opts, workers=1)
    idx = np.concatenate([f["test_index"] for f in folds])
    assert sorted(idx.tolist()) == list(range(1797))
    for f in folds:
        assert not (set(f["calibration_index"]) | set(f["adabs_index"])) & set(f["test_index"])
    correct = np.zeros(2)
    for f in range(2):
        data = load_digits_fold(1, 2, f)
        tr, _ = train_on_digits(net, 1, 0.05, 3, None, split=data)
        r = evaluate_accuracy(spec, net, tr.params, data.x_train, data.x_test, data.y_test, opts, seed=1, workers=1)
        correct += r.draws[f"{AA}/gdc"][:, 0] * len(data.y_test)
    np.testing.assert_allclose(res.draws[f"{AA}/gdc"][:, 0], correct / 1797, rtol=0, atol=1e-12)
    assert res.se(f"{AA}/gdc")[0] >= 0
