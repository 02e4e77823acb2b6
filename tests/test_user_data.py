"""Your own network and data (issue 16): ``aimc accuracy --network model.onnx --data test.npz``.

An ONNX model exported (``archmodel.onnx_export``) from a trained ``digits-cnn``
must score per-draw top-1 within 0.5 % of the native run with the same seed and
images (batch-norm is kept as a layer, so the integer path is the same); bad
``.npz`` files get one line and no report.
"""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pytest

from archmodel.accuracy import AccuracyOptions
from archmodel.accuracy_experiment import evaluate_accuracy
from archmodel.datasets import DataError, hold_apart, load_digits_split, load_user_data
from archmodel.onnx_export import network_to_onnx_bytes
from archmodel.spec import load_spec
from archmodel.training import TrainConfig, accuracy, train
from archmodel.zoo import load_network
from archmodel.zoo_digits import digits_cnn, digits_mlp
from mapping.cli.main import main


@cache
def _trained():
    data = load_digits_split(0)
    res = train(digits_cnn(), data.x_train, data.y_train, data.x_test, data.y_test,
                TrainConfig(noise=0.05, epochs=4), seed=0)
    return res, data


def _onnx(tmp_path):
    res, _ = _trained()
    p = tmp_path / "cnn.onnx"
    p.write_bytes(network_to_onnx_bytes(digits_cnn(), res.params))
    return p


@pytest.mark.slow
def test_exported_onnx_scores_per_draw_like_the_native_run(tmp_path):
    res, data = _trained()
    net = load_network(_onnx(tmp_path))
    own = {l.name: dict(l.params) for l in net.layers if l.params}
    opts = AccuracyOptions(draws=2, times_s=(("1 day", 86400.0),),
                           only_settings=(("digital_first_last", "gdc"), ("digital_first_last", "adabs")))
    spec = load_spec("fig11")
    native = evaluate_accuracy(spec, digits_cnn(), res.params, data.x_train, data.x_test, data.y_test, opts,
                               seed=0, workers=1)
    onnx_run = evaluate_accuracy(spec, net, own, data.x_train, data.x_test, data.y_test, opts, seed=0, workers=1)
    assert onnx_run.fp32_accuracy == pytest.approx(native.fp32_accuracy, abs=1e-12)
    for key, arr in native.draws.items():
        # per-draw top-1 over 540 images: identical, or <= 0.5 % apart (BN-folding rounding)
        assert np.max(np.abs(onnx_run.draws[key] - arr)) <= 0.005, key


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


@pytest.mark.parametrize("arrays, message", [
    ({"x": np.zeros((5, 8, 8), np.float32), "y": np.zeros(5, np.int64)}, "x has shape (5, 8, 8), the network needs (N, 1, 8, 8)"),
    ({"x": np.zeros((5, 1, 8, 8), np.float32), "y": np.array([0, 1, 2, 10, 3])}, "label 10 of image 3 is outside 0..9"),
    ({"x": np.full((5, 1, 8, 8), np.nan, np.float32), "y": np.zeros(5, np.int64)}, "x holds 320 NaN or infinite values"),
    ({"x": np.zeros((5, 1, 8, 8), np.float32)}, "no array 'y'"),
    ({"x": np.zeros((5, 1, 8, 8), np.float32), "y": np.zeros(4, np.int64)}, "y has shape (4,), expected (5,)"),
    ({"x": np.zeros((5, 1, 8, 8), np.float32), "y": np.zeros(5, np.float32)}, "y has dtype float32"),
])
def test_bad_npz_gets_one_line_and_no_report(tmp_path, capsys, arrays, message):
    f = _write_npz(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=None) as exc:
        load_user_data(f, (1, 8, 8), 10)
    assert message in str(exc.value)
    onnx_path = tmp_path / "m.onnx"
    from archmodel.training import init_params
    onnx_path.write_bytes(network_to_onnx_bytes(digits_cnn(), init_params(digits_cnn(), np.random.default_rng(0))))
    out = tmp_path / "rep"
    assert main(["accuracy", "--arch", "fig11", "--network", str(onnx_path), "--data", f, "--draws", "2",
                 "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_hold_apart_is_disjoint_and_seeded():
    cal, test = hold_apart(100, 30, seed=3)
    assert len(cal) == 30 and len(test) == 70 and not set(cal) & set(test)
    assert np.array_equal(cal, hold_apart(100, 30, seed=3)[0])
    assert len(hold_apart(10, 128, seed=0)[0]) == 5  # at most half held apart


def test_cli_onnx_and_npz_end_to_end(tmp_path):
    data = load_digits_split(0)
    res = train(digits_mlp(), data.x_train, data.y_train, data.x_test, data.y_test, TrainConfig(epochs=3), seed=0)
    onnx_path = tmp_path / "mlp.onnx"
    onnx_path.write_bytes(network_to_onnx_bytes(digits_mlp(), res.params))
    f = _write_npz(tmp_path / "test.npz", x=data.x_test, y=data.y_test)
    out = tmp_path / "rep"
    assert main(["accuracy", "--arch", "fig11", "--network", str(onnx_path), "--data", f, "--draws", "2",
                 "--workers", "1", "--no-plot", "--out", str(out), "--quiet"]) == 0
    rep = json.loads((out / "report.json").read_text())
    cal, test = hold_apart(len(data.y_test), 128, seed=0)  # default calibration: 128 held-apart images
    assert rep["test_images"] == len(test) == 540 - 128
    fp32 = accuracy(digits_mlp(), res.params, data.x_test[test], data.y_test[test])
    assert rep["fp32_accuracy_pct"] == pytest.approx(100 * fp32, abs=1e-3)
    assert rep["calibration"]["calibration_disjoint_from_test"] is True
    assert "test.npz" in rep["dataset"] and "FP32" in (out / "report.md").read_text()


def test_cli_train_fine_tunes_an_onnx_model_and_writes_onnx_back(tmp_path):
    data = load_digits_split(0)
    res = train(digits_mlp(), data.x_train, data.y_train, data.x_test, data.y_test, TrainConfig(epochs=3), seed=0)
    onnx_path = tmp_path / "mlp.onnx"
    onnx_path.write_bytes(network_to_onnx_bytes(digits_mlp(), res.params))
    f = _write_npz(tmp_path / "train.npz", x=data.x_train, y=data.y_train)
    out = tmp_path / "ft"
    assert main(["train", "--network", str(onnx_path), "--data", f, "--epochs", "1", "--noise", "0.05",
                 "--out", str(out), "--quiet"]) == 0
    meta = json.loads((out / "train.json").read_text())
    assert meta["start"].startswith("network's own weights") and meta["test_accuracy_pct"] > 85
    from archmodel.weights_io import load_npz
    tuned = load_network(out / "model.onnx")
    npz, _ = load_npz(out / "weights.npz", tuned)
    for layer in tuned.layers:
        for pn, v in layer.params.items():
            np.testing.assert_array_equal(v, npz[layer.name][pn])
    assert not np.array_equal(npz["fc1"]["weight"], res.params["fc1"]["weight"])  # it was trained
    # a bad file: one line, nothing written
    bad = _write_npz(tmp_path / "bad.npz", x=data.x_train[:, 0], y=data.y_train)
    assert main(["train", "--network", str(onnx_path), "--data", bad, "--out", str(tmp_path / "no"), "--quiet"]) == 1
    assert not (tmp_path / "no").exists()


def test_calib_data_needs_data(tmp_path, capsys):
    assert main(["accuracy", "--network", "digits-mlp", "--calib-data", "c.npz", "--out", str(tmp_path / "o"),
                 "--quiet"]) == 1
    assert capsys.readouterr().err.strip() == "aimc: error: --calib-data needs --data (the digits experiment " \
                                              "calibrates on its training split)"


def test_train_data_refuses_an_op_without_onnx_export_before_training(tmp_path):
    """model.onnx is written after training: a sigmoid (trainable, no ONNX export) is refused first, no --out."""
    import argparse

    from archmodel.network.builder import NetworkBuilder
    from archmodel.onnx_export import OnnxExportError
    from mapping.cli import train as cli_train

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "t.npz", x=rng.normal(size=(20, 1, 8, 8)).astype(np.float32), y=rng.integers(0, 10, 20))
    b = NetworkBuilder("sg", (1, 8, 8))
    b.linear("fc", b.flatten("f", b.sigmoid("s", b.conv("c", b.input, 2, 3, padding=1))), 10)
    net = b.build()
    args = argparse.Namespace(data=str(tmp_path / "t.npz"), seed=0, out=str(tmp_path / "o"), force=False, quiet=True,
                              noise=None, epochs=1, lr=None, clip_sigma=None)
    with pytest.raises(OnnxExportError, match="layer 's': op activation sigmoid has no ONNX export"):
        cli_train._run_user_data(args, net, cli_train.train_settings(args, net.name))
    assert not (tmp_path / "o").exists()
