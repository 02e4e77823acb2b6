"""``aimc train``: parse the options, train with :mod:`archmodel.digits_experiment`, write ``weights.npz``."""

from __future__ import annotations

import argparse
import math
import sys
from typing import TYPE_CHECKING

from archmodel.fileio import staged_output, write_files_atomic
from mapping.cli.common import COMMANDS, OptionError, add_network, add_out, add_seed, check_int_range, check_out_dir

if TYPE_CHECKING:
    from archmodel.training import TrainConfig

#: Largest --epochs.
MAX_EPOCHS = 10_000

#: Training options that ``aimc accuracy`` ignores when it does not train (flag -> attribute).
TRAIN_FLAGS = {"--noise": "noise", "--epochs": "epochs", "--clip-sigma": "clip_sigma", "--lr": "lr"}


def _recipes_help() -> str:
    from archmodel.zoo_digits import DEFAULT_RECIPE, TRAIN_RECIPES

    own = "; ".join(f"{name}: noise {r.noise:g}, {r.epochs} epochs, lr {r.lr:g}"
                    + (f", the last {100 * r.frozen_bn_fraction:g} %% of the epochs with frozen batch norm"
                       if r.frozen_bn_fraction else "") for name, r in TRAIN_RECIPES.items())
    return (f"defaults per network: noise {DEFAULT_RECIPE.noise:g}, {DEFAULT_RECIPE.epochs} epochs, "
            f"lr {DEFAULT_RECIPE.lr:g}" + (f" ({own})" if own else ""))


def add_train_options(p: argparse.ArgumentParser) -> None:
    # defaults are None so that a caller can tell an option given on the command
    # line from its default (see train_settings); the default depends on the network
    recipes = _recipes_help()
    p.add_argument("--noise", type=float, default=None,
                   help="relative weight noise injected while training, as a fraction of each layer's max|W| "
                        f"(0 = no noise; {recipes})")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs, 1..{MAX_EPOCHS} (default: the network's, see --noise)")
    p.add_argument("--lr", type=float, default=None,
                   help="initial Adam learning rate, a finite number > 0, cosine decay to 0 over the epochs "
                        "(default: the network's, see --noise)")
    p.add_argument("--clip-sigma", type=float, default=None, metavar="K",
                   help="clip each layer's weights to +-K standard deviations after every update (default: off)")


def given_train_flags(args: argparse.Namespace) -> list[str]:
    """The training flags set on the command line (``--noise`` ...), in order."""
    return [flag for flag, attr in TRAIN_FLAGS.items() if getattr(args, attr, None) is not None]


def train_settings(args: argparse.Namespace, network_name: str = "") -> TrainConfig:
    """The training options: the command line's, else ``network_name``'s recipe; checked before any work.

    Defaults: :func:`archmodel.zoo_digits.train_recipe` (noise, epochs, lr).

    Raises
    ------
    OptionError
        One line naming the flag, e.g. ``--epochs must be in 1..10000, got 0``.
    """
    from archmodel.training import TrainConfig
    from archmodel.zoo_digits import train_recipe

    recipe = train_recipe(network_name)
    noise = recipe.noise if args.noise is None else args.noise
    epochs = recipe.epochs if args.epochs is None else args.epochs
    lr = recipe.lr if getattr(args, "lr", None) is None else args.lr
    if not (math.isfinite(noise) and noise >= 0):
        raise OptionError(f"--noise must be a finite number >= 0 (fraction of max|W|), got {noise}")
    check_int_range("--epochs", epochs, 1, MAX_EPOCHS)
    if not (math.isfinite(lr) and lr > 0):
        raise OptionError(f"--lr must be a finite number > 0, got {lr}")
    if args.clip_sigma is not None and not (math.isfinite(args.clip_sigma) and args.clip_sigma > 0):
        raise OptionError(f"--clip-sigma must be a finite number > 0, got {args.clip_sigma}")
    return TrainConfig(noise=noise, epochs=epochs, lr=lr, clip_sigma=args.clip_sigma,
                       frozen_bn_epochs=recipe.frozen_bn_epochs(epochs))


def train_with_progress(network, seed: int, cfg: TrainConfig, quiet: bool = False):
    """:func:`archmodel.digits_experiment.train_on_digits` with a progress bar on stderr; returns (TrainResult, split)."""
    from tqdm import tqdm

    from archmodel.digits_experiment import train_on_digits

    with tqdm(total=cfg.epochs, desc=f"train {network.name} (noise {cfg.noise:g})", unit="epoch", file=sys.stderr,
              disable=True if quiet else None, leave=False) as bar:  # None: off when stderr is no terminal
        def progress(epoch: int, loss: float) -> None:
            bar.set_postfix(loss=f"{loss:.3f}")
            bar.update(1)

        return train_on_digits(network, seed, cfg.noise, cfg.epochs, cfg.clip_sigma, progress=progress, lr=cfg.lr,
                               frozen_bn_epochs=cfg.frozen_bn_epochs)


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
    train_settings(args)  # flags checked before the network is loaded
    network = load_network(args.network)
    cfg = train_settings(args, network.name)
    if args.data:
        return _run_user_data(args, network, cfg)
    check_out_dir(args.out, args.force)
    result, data = train_with_progress(network, args.seed, cfg, args.quiet)
    noise, epochs = cfg.noise, cfg.epochs
    meta = {"network": network.name, "noise": noise, "seed": args.seed, "epochs": epochs, "lr": cfg.lr,
            "frozen_bn_epochs": cfg.frozen_bn_epochs, "clip_sigma": cfg.clip_sigma,
            "train_accuracy_pct": 100 * result.train_accuracy,
            "test_accuracy_pct": 100 * result.test_accuracy, "dataset": "sklearn digits, stratified 70/30 split",
            "split": data.meta,
            "tool_version": __version__}
    with staged_output(args.out, force=args.force) as stage:
        write_files_atomic(stage, {"weights.npz": save_npz_bytes(result.params, meta),
                                   "train.json": json.dumps(meta, indent=2, sort_keys=True) + "\n"})
    if not args.quiet:
        print(f"trained {network.name} (noise {noise:g}, seed {args.seed}, {epochs} epochs, lr {cfg.lr:g}): "
              f"FP32 test accuracy {100 * result.test_accuracy:.2f} % on {len(data.y_test)} images")
        print(f"  weights: {args.out}/weights.npz")
    return 0


def _run_user_data(args: argparse.Namespace, network, cfg: TrainConfig) -> int:  # type: ignore[no-untyped-def]
    """``--data``: noise fine-tuning (or training) on the user's images; weights.npz, model.onnx, train.json."""
    import json

    import numpy as np
    from tqdm import tqdm

    from archmodel import __version__
    from archmodel.datasets import hold_apart, load_user_data
    from archmodel.digits_experiment import has_own_weights, own_weights
    from archmodel.onnx_export import network_to_onnx_bytes
    from archmodel.training import check_trainable, init_params, train
    from archmodel.weights_io import save_npz_bytes

    if len(network.output_shape) != 1:
        raise OptionError(f"network {network.name!r}: output shape {tuple(network.output_shape)}; --data needs a "
                          "classifier with a vector of class scores")
    check_trainable(network)
    data = load_user_data(args.data, tuple(int(v) for v in network.input_shape), int(network.output_shape[0]))
    test_i, train_i = hold_apart(len(data.x), len(data.x) // 5, args.seed)
    check_out_dir(args.out, args.force)
    init = own_weights(network) if has_own_weights(network) else None
    # model.onnx is written after training: an op without ONNX export is refused now, in one line
    network_to_onnx_bytes(network, init if init is not None else init_params(network, np.random.default_rng(0)))
    y = data.y
    assert y is not None
    noise, epochs = cfg.noise, cfg.epochs
    with tqdm(total=epochs, desc=f"train {network.name} (noise {noise:g})", unit="epoch", file=sys.stderr,
              disable=True if args.quiet else None, leave=False) as bar:
        result = train(network, data.x[train_i], y[train_i], data.x[test_i], y[test_i], cfg, seed=args.seed,
                       progress=lambda e, loss: bar.update(1), init=init)
    meta = {"network": network.name, "noise": noise, "seed": args.seed, "epochs": epochs, "lr": cfg.lr,
            "frozen_bn_epochs": cfg.frozen_bn_epochs, "clip_sigma": cfg.clip_sigma,
            "start": "network's own weights (fine-tuning)" if init else "He-normal initialization",
            "train_accuracy_pct": 100 * result.train_accuracy, "test_accuracy_pct": 100 * result.test_accuracy,
            "dataset": f"{args.data} (sha256 {data.sha256_16}), {len(test_i)} images held apart for the test accuracy",
            "tool_version": __version__}
    with staged_output(args.out, force=args.force) as stage:
        write_files_atomic(stage, {"weights.npz": save_npz_bytes(result.params, meta),
                                   "model.onnx": network_to_onnx_bytes(network, result.params),
                                   "train.json": json.dumps(meta, indent=2, sort_keys=True) + "\n"})
    if not args.quiet:
        print(f"trained {network.name} on {args.data} (noise {noise:g}, seed {args.seed}, {epochs} epochs, lr {cfg.lr:g}): "
              f"FP32 accuracy {100 * result.test_accuracy:.2f} % on {len(test_i)} held-apart images")
        print(f"  weights: {args.out}/weights.npz, {args.out}/model.onnx")
    return 0
