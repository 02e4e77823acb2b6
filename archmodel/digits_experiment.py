"""The weights of a digits experiment: train a network on the digits split, or load its trained weights.

Used by ``aimc train`` (training) and ``aimc accuracy`` (a weights file, the
network's own weights, or training first); progress display and file writing
stay with the command line.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from archmodel.accuracy import AccuracyOptions
from archmodel.accuracy_experiment import AccuracyResult, evaluate_accuracy
from archmodel.datasets import DIGITS_INPUT_SHAPE, DigitsSplit, load_digits_fold, load_digits_split, split_from_meta
from archmodel.errors import AimcError
from archmodel.network.ir import Network
from archmodel.spec import ChipSpec
from archmodel.training import Params, TrainConfig, TrainResult, train
from archmodel.weights_io import load_npz, load_onnx_params
from archmodel.zoo_digits import train_recipe

__all__ = ["DIGITS_OUTPUT_SHAPE", "DigitsExperimentError", "check_weights_file", "has_own_weights", "is_digits_network",
           "kfold_accuracy", "load_weights", "own_weights", "train_on_digits", "weights_split"]

#: Output shape of a digits classifier (10 classes).
DIGITS_OUTPUT_SHAPE = (10,)


class DigitsExperimentError(AimcError, ValueError):
    """A network or weights file a digits experiment cannot use (one line)."""


def is_digits_network(network: Network) -> bool:
    """Whether ``network`` takes a digits image (1, 8, 8) and gives 10 class scores."""
    return tuple(network.input_shape) == DIGITS_INPUT_SHAPE and tuple(network.output_shape) == DIGITS_OUTPUT_SHAPE


def has_own_weights(network: Network) -> bool:
    """Whether ``network`` carries a weight for every conv/linear layer (e.g. loaded from ONNX)."""
    own = {l.name: l.params for l in network.layers if l.params}
    return bool(own) and all("weight" in own.get(l.name, {}) for l in network.layers if l.is_matrix_layer)


def own_weights(network: Network) -> Params:
    """The parameters ``network`` carries, by layer name."""
    return {l.name: dict(l.params) for l in network.layers if l.params}


def check_weights_file(path: str | Path) -> Path:
    """``path`` as a Path if it is a file, else a one-line DigitsExperimentError ``"--weights PATH: no such file"``."""
    path = Path(path)
    if not path.is_file():
        raise DigitsExperimentError(f"--weights {path}: no such file")
    return path


def load_weights(path: str | Path, network: Network) -> tuple[Params, dict[str, Any]]:
    """(params, info) from an ``.npz`` of ``aimc train`` or an ``.onnx`` file (initializers by layer name).

    ``info`` records the source, the first 16 hex digits of the file's SHA-256
    and, for an ``.npz``, the noise, seed and epochs it was trained with.

    Raises
    ------
    DigitsExperimentError
        ``"--weights PATH: no such file"``.
    """
    path = check_weights_file(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    if path.suffix.lower() == ".onnx":
        return load_onnx_params(path, network), {"source": "onnx", "sha256_16": digest}
    params, meta = load_npz(path, network)
    return params, {"source": "npz", "sha256_16": digest,
                    **{k: meta[k] for k in ("noise", "seed", "epochs", "split") if k in meta}}


def weights_split(info: dict[str, Any], seed: int | None, path: str | Path = "") -> tuple[int, DigitsSplit]:
    """(seed, split) to evaluate weights described by ``info`` (:func:`load_weights`) on.

    A weights file that records its training seed is evaluated on the split it was
    trained with (its ``split`` description, or the 70/30 hold-out split of its
    seed for files written before the description existed); otherwise (ONNX,
    network's own weights) on the hold-out split of ``seed`` (default 0).

    Raises
    ------
    DigitsExperimentError
        ``seed`` given and different from the file's training seed: its test
        images would include training images (one line).
    """
    if "seed" not in info:
        s = 0 if seed is None else int(seed)
        return s, load_digits_split(s)
    s = int(info["seed"])
    if seed is not None and int(seed) != s:
        raise DigitsExperimentError(
            f"--seed {seed}: weights {path} were trained with seed {s} (another seed's test images include "
            f"their training images); drop --seed or pass --seed {s}")
    return s, (split_from_meta(info["split"]) if "split" in info else load_digits_split(s))


def train_on_digits(network: Network, seed: int, noise: float, epochs: int, clip_sigma: float | None,
                    progress: Callable[[int, float], None] | None = None,
                    split: DigitsSplit | None = None, lr: float | None = None,
                    frozen_bn_epochs: int | None = None) -> tuple[TrainResult, DigitsSplit]:
    """Train ``network`` on a digits split with weight-noise injection; returns (result, split).

    ``split`` defaults to the 70/30 hold-out split of ``seed``; ``lr`` (initial
    Adam learning rate) and ``frozen_bn_epochs`` (:class:`archmodel.training.TrainConfig`)
    to the network's recipe (:func:`archmodel.zoo_digits.train_recipe`).

    Raises
    ------
    DigitsExperimentError
        ``network`` does not take (1, 8, 8) images to 10 classes.
    """
    if not is_digits_network(network):
        raise DigitsExperimentError(
            f"network {network.name!r} has input {tuple(network.input_shape)} and output "
            f"{tuple(network.output_shape)}; training on digits needs input (1, 8, 8) and output (10,)")
    recipe = train_recipe(network.name)
    cfg = TrainConfig(noise=noise, epochs=epochs, clip_sigma=clip_sigma, lr=recipe.lr if lr is None else lr,
                      frozen_bn_epochs=recipe.frozen_bn_epochs(epochs) if frozen_bn_epochs is None else frozen_bn_epochs)
    data = split if split is not None else load_digits_split(seed)
    result = train(network, data.x_train, data.y_train, data.x_test, data.y_test, cfg, seed=seed, progress=progress)
    return result, data


def kfold_accuracy(spec: ChipSpec, network: Network, seed: int, folds: int, noise: float, epochs: int,
                   clip_sigma: float | None, options: AccuracyOptions, *,
                   train_progress: Callable[[int, int, float], None] | None = None,
                   draw_progress: Callable[[int], None] | None = None,
                   workers: int | None = None, lr: float | None = None,
                   frozen_bn_epochs: int | None = None) -> tuple[AccuracyResult, list[dict[str, Any]]]:
    """k-fold accuracy over all 1,797 digits images: train on k−1 folds, evaluate on the held-out fold.

    Fold ``f`` (:func:`archmodel.datasets.load_digits_fold`) trains its own network
    (seed ``seed``) and runs :func:`archmodel.accuracy_experiment.evaluate_accuracy`
    on its test fold with the same draws; draw ``d``'s accuracy of a cell is the
    fraction of all images classified right, ``Σ_f n_f · acc_f,d / Σ_f n_f``, so the
    mean, std and SE over draws are those of the pooled accuracy. FP32 and int8
    baselines pool the same way. ADC usage and the GDC bias are those of fold 0.

    Parameters
    ----------
    train_progress : callable, optional
        ``(fold, epoch, loss)`` after every epoch.
    lr, frozen_bn_epochs : optional
        Training options (default: the network's recipe, :func:`train_on_digits`).
    draw_progress : callable, optional
        Called with the draw index after every draw of every fold.

    Returns
    -------
    (AccuracyResult, list of dict)
        Pooled result; per fold: ``fold``, ``test_images``, ``fp32_accuracy_pct``,
        ``calibration_index``, ``adabs_index`` (data-set indices, disjoint from
        the fold's ``test_index``), ``test_index``.
    """
    results, info = [], []
    for f in range(int(folds)):
        data = load_digits_fold(seed, folds, f)
        tp = None if train_progress is None else (lambda e, loss, f=f: train_progress(f, e, loss))
        trained, _ = train_on_digits(network, seed, noise, epochs, clip_sigma, progress=tp, split=data, lr=lr,
                                      frozen_bn_epochs=frozen_bn_epochs)
        r = evaluate_accuracy(spec, network, trained.params, data.x_train, data.x_test, data.y_test, options,
                              seed=seed, progress=draw_progress, with_adc_usage=(f == 0), workers=workers,
                              train_index=data.train_index)
        results.append((len(data.y_test), r))
        info.append({"fold": f, "test_images": len(data.y_test), "fp32_accuracy_pct": 100 * r.fp32_accuracy,
                     "calibration_index": r.calibration_index, "adabs_index": r.adabs_index,
                     "test_index": [int(i) for i in data.test_index]})  # type: ignore[union-attr]
    n_all = sum(n for n, _ in results)
    r0 = results[0][1]
    pooled = {key: sum(n * r.draws[key] for n, r in results) / n_all for key in r0.draws}
    fp32 = sum(n * r.fp32_accuracy for n, r in results) / n_all
    int8 = sum(n * r.int8_accuracy for n, r in results) / n_all
    res = AccuracyResult(r0.times, {k: np.asarray(v) for k, v in pooled.items()}, float(fp32), float(int8),
                         r0.options, int(seed), r0.adc, r0.adc_range, r0.calibration_index, r0.adabs_index,
                         r0.gdc_bias)
    return res, info
