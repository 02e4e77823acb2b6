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

from archmodel.datasets import DIGITS_INPUT_SHAPE, DigitsSplit, load_digits_split
from archmodel.errors import AimcError
from archmodel.network.ir import Network
from archmodel.training import Params, TrainConfig, TrainResult, train
from archmodel.weights_io import load_npz, load_onnx_params

__all__ = ["DIGITS_OUTPUT_SHAPE", "DigitsExperimentError", "check_weights_file", "has_own_weights", "is_digits_network",
           "load_weights", "own_weights", "train_on_digits"]

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
    return params, {"source": "npz", "sha256_16": digest, **{k: meta[k] for k in ("noise", "seed", "epochs") if k in meta}}


def train_on_digits(network: Network, seed: int, noise: float, epochs: int, clip_sigma: float | None,
                    progress: Callable[[int, float], None] | None = None) -> tuple[TrainResult, DigitsSplit]:
    """Train ``network`` on the digits split of ``seed`` with weight-noise injection; returns (result, split).

    Raises
    ------
    DigitsExperimentError
        ``network`` does not take (1, 8, 8) images to 10 classes.
    """
    if not is_digits_network(network):
        raise DigitsExperimentError(
            f"network {network.name!r} has input {tuple(network.input_shape)} and output "
            f"{tuple(network.output_shape)}; training on digits needs input (1, 8, 8) and output (10,)")
    cfg = TrainConfig(noise=noise, epochs=epochs, clip_sigma=clip_sigma)
    data = load_digits_split(seed)
    result = train(network, data.x_train, data.y_train, data.x_test, data.y_test, cfg, seed=seed, progress=progress)
    return result, data
