"""``aimc train``: parse the options, train with :mod:`archmodel.digits_experiment`, write ``weights.npz``."""

from __future__ import annotations

import argparse
import math
import sys

from archmodel.fileio import staged_output, write_files_atomic
from mapping.cli.common import COMMANDS, OptionError, add_network, add_out, add_seed, check_int_range, check_out_dir

#: Default training options of the CLI (also used by ``aimc accuracy`` when it trains).
DEFAULT_EPOCHS = 20
DEFAULT_NOISE = 0.05
MAX_EPOCHS = 10_000

#: Training options that ``aimc accuracy`` ignores when it does not train (flag -> attribute).
TRAIN_FLAGS = {"--noise": "noise", "--epochs": "epochs", "--clip-sigma": "clip_sigma"}


def add_train_options(p: argparse.ArgumentParser) -> None:
    # defaults are None so that a caller can tell an option given on the command
    # line from its default (see train_settings)
    p.add_argument("--noise", type=float, default=None,
                   help="relative weight noise injected while training, as a fraction of each layer's max|W| "
                        f"(default: {DEFAULT_NOISE}; 0 = no noise)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs, 1..{MAX_EPOCHS} (default: {DEFAULT_EPOCHS})")
    p.add_argument("--clip-sigma", type=float, default=None, metavar="K",
                   help="clip each layer's weights to +-K standard deviations after every update (default: off)")


def given_train_flags(args: argparse.Namespace) -> list[str]:
    """The training flags set on the command line (``--noise`` ...), in order."""
    return [flag for flag, attr in TRAIN_FLAGS.items() if getattr(args, attr, None) is not None]


def train_settings(args: argparse.Namespace) -> tuple[float, int, float | None]:
    """(noise, epochs, clip_sigma) with defaults filled in, checked before any work.

    Raises
    ------
    OptionError
        One line naming the flag, e.g. ``--epochs must be in 1..10000, got 0``.
    """
    noise = DEFAULT_NOISE if args.noise is None else args.noise
    epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
    if not (math.isfinite(noise) and noise >= 0):
        raise OptionError(f"--noise must be a finite number >= 0 (fraction of max|W|), got {noise}")
    check_int_range("--epochs", epochs, 1, MAX_EPOCHS)
    if args.clip_sigma is not None and not (math.isfinite(args.clip_sigma) and args.clip_sigma > 0):
        raise OptionError(f"--clip-sigma must be a finite number > 0, got {args.clip_sigma}")
    return noise, epochs, args.clip_sigma


def train_with_progress(network, seed: int, noise: float, epochs: int, clip_sigma: float | None, quiet: bool = False):
    """:func:`archmodel.digits_experiment.train_on_digits` with a progress bar on stderr; returns (TrainResult, split)."""
    from tqdm import tqdm

    from archmodel.digits_experiment import train_on_digits

    with tqdm(total=epochs, desc=f"train {network.name} (noise {noise:g})", unit="epoch", file=sys.stderr,
              disable=True if quiet else None, leave=False) as bar:  # None: off when stderr is no terminal
        def progress(epoch: int, loss: float) -> None:
            bar.set_postfix(loss=f"{loss:.3f}")
            bar.update(1)

        return train_on_digits(network, seed, noise, epochs, clip_sigma, progress=progress)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``train`` sub-command (its options, ``func`` = :func:`run`) to ``sub``."""
    p = sub.add_parser(
        "train",
        help=COMMANDS["train"][1],
        description=(
            "Train a network on scikit-learn's handwritten digits (1,797 real 8x8 images, stratified "
            "train/test split fixed by --seed) in numpy, with Gaussian weight noise relative to each "
            "layer's max|W| injected in every training forward pass (Joshi et al. 2020). Writes "
            "weights.npz and train.json into --out."
        ),
        epilog=("examples:\n  aimc train --network digits-cnn --noise 0.05 --seed 0 --out out/train\n"
                "  aimc train --network model.onnx --data train.npz --out out/ft   (fine-tunes; writes model.onnx)"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_network(p, default="digits-cnn")
    add_seed(p)
    add_out(p)
    add_train_options(p)
    p.add_argument("--data", default=None, metavar="FILE.npz",
                   help="your training data instead of the digits: arrays x (N, *input shape) and y (N,) integer "
                        "labels; 20 %% (seeded) are held apart for the reported test accuracy; a network that "
                        "carries weights (.onnx) is fine-tuned from them, and model.onnx is written next to "
                        "weights.npz")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``aimc train`` with parsed ``args``: 0 on success; bad input raises an AimcError (one line, exit 1)."""
    import json

    from archmodel import __version__
    from archmodel.weights_io import save_npz_bytes
    from archmodel.zoo import load_network

    check_int_range("--seed", args.seed, 0)
    noise, epochs, clip_sigma = train_settings(args)
    network = load_network(args.network)
    if args.data:
        return _run_user_data(args, network, noise, epochs, clip_sigma)
    check_out_dir(args.out, args.force)
    result, data = train_with_progress(network, args.seed, noise, epochs, clip_sigma, args.quiet)
    meta = {"network": network.name, "noise": noise, "seed": args.seed, "epochs": epochs,
            "clip_sigma": clip_sigma, "train_accuracy_pct": 100 * result.train_accuracy,
            "test_accuracy_pct": 100 * result.test_accuracy, "dataset": "sklearn digits, stratified 70/30 split",
            "split": data.meta,
            "tool_version": __version__}
    with staged_output(args.out, force=args.force) as stage:
        write_files_atomic(stage, {"weights.npz": save_npz_bytes(result.params, meta),
                                   "train.json": json.dumps(meta, indent=2, sort_keys=True) + "\n"})
    if not args.quiet:
        print(f"trained {network.name} (noise {noise:g}, seed {args.seed}, {epochs} epochs): "
              f"FP32 test accuracy {100 * result.test_accuracy:.2f} % on {len(data.y_test)} images")
        print(f"  weights: {args.out}/weights.npz")
    return 0


def _run_user_data(args: argparse.Namespace, network, noise: float, epochs: int,  # type: ignore[no-untyped-def]
                   clip_sigma: float | None) -> int:
    """``--data``: noise fine-tuning (or training) on the user's images; weights.npz, model.onnx, train.json."""
    import json

    from tqdm import tqdm

    from archmodel import __version__
    from archmodel.datasets import hold_apart, load_user_data
    from archmodel.digits_experiment import has_own_weights, own_weights
    from archmodel.onnx_export import network_to_onnx_bytes
    from archmodel.training import TrainConfig, check_trainable, train
    from archmodel.weights_io import save_npz_bytes

    if len(network.output_shape) != 1:
        raise OptionError(f"network {network.name!r}: output shape {tuple(network.output_shape)}; --data needs a "
                          "classifier with a vector of class scores")
    check_trainable(network)
    data = load_user_data(args.data, tuple(int(v) for v in network.input_shape), int(network.output_shape[0]))
    test_i, train_i = hold_apart(len(data.x), len(data.x) // 5, args.seed)
    check_out_dir(args.out, args.force)
    init = own_weights(network) if has_own_weights(network) else None
    y = data.y
    assert y is not None
    with tqdm(total=epochs, desc=f"train {network.name} (noise {noise:g})", unit="epoch", file=sys.stderr,
              disable=True if args.quiet else None, leave=False) as bar:
        result = train(network, data.x[train_i], y[train_i], data.x[test_i], y[test_i],
                       TrainConfig(noise=noise, epochs=epochs, clip_sigma=clip_sigma), seed=args.seed,
                       progress=lambda e, loss: bar.update(1), init=init)
    meta = {"network": network.name, "noise": noise, "seed": args.seed, "epochs": epochs, "clip_sigma": clip_sigma,
            "start": "network's own weights (fine-tuning)" if init else "He-normal initialization",
            "train_accuracy_pct": 100 * result.train_accuracy, "test_accuracy_pct": 100 * result.test_accuracy,
            "dataset": f"{args.data} (sha256 {data.sha256_16}), {len(test_i)} images held apart for the test accuracy",
            "tool_version": __version__}
    with staged_output(args.out, force=args.force) as stage:
        write_files_atomic(stage, {"weights.npz": save_npz_bytes(result.params, meta),
                                   "model.onnx": network_to_onnx_bytes(network, result.params),
                                   "train.json": json.dumps(meta, indent=2, sort_keys=True) + "\n"})
    if not args.quiet:
        print(f"trained {network.name} on {args.data} (noise {noise:g}, seed {args.seed}, {epochs} epochs): "
              f"FP32 accuracy {100 * result.test_accuracy:.2f} % on {len(test_i)} held-apart images")
        print(f"  weights: {args.out}/weights.npz, {args.out}/model.onnx")
    return 0
