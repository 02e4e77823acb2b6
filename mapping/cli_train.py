"""``aimc train``: train a digits network in numpy with weight-noise injection; write its ``.npz``."""

from __future__ import annotations

import argparse
import math
import sys

from mapping.cli_common import add_network, add_out, add_seed, check_int_range, check_out_dir, write_files_atomic

#: Default training options of the CLI (also used by ``aimc accuracy`` when it trains).
DEFAULT_EPOCHS = 20
DEFAULT_NOISE = 0.05
MAX_EPOCHS = 10_000

#: Training options that ``aimc accuracy`` ignores when it does not train (flag -> attribute).
TRAIN_FLAGS = {"--noise": "noise", "--epochs": "epochs", "--clip-sigma": "clip_sigma"}


def resolve_network(name: str):
    """A network by zoo name or path: ``archmodel.zoo.load_network`` when present, else the digits zoo."""
    try:
        from archmodel.zoo import load_network
    except ModuleNotFoundError as exc:
        if exc.name != "archmodel.zoo":
            raise
        from archmodel.zoo_digits import DIGITS_NETWORKS

        if name not in DIGITS_NETWORKS:
            raise ValueError(f"unknown network {name!r}; expected one of {', '.join(DIGITS_NETWORKS)}") from None
        return DIGITS_NETWORKS[name]()
    return load_network(name)


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
    ValueError
        One line naming the flag, e.g. ``--epochs must be in 1..10000, got 0``.
    """
    noise = DEFAULT_NOISE if args.noise is None else args.noise
    epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
    if not (math.isfinite(noise) and noise >= 0):
        raise ValueError(f"--noise must be a finite number >= 0 (fraction of max|W|), got {noise}")
    check_int_range("--epochs", epochs, 1, MAX_EPOCHS)
    if args.clip_sigma is not None and not (math.isfinite(args.clip_sigma) and args.clip_sigma > 0):
        raise ValueError(f"--clip-sigma must be a finite number > 0, got {args.clip_sigma}")
    return noise, epochs, args.clip_sigma


def train_network(network, seed: int, noise: float, epochs: int, clip_sigma: float | None, quiet: bool = False):
    """Train ``network`` on the digits split of ``seed``; returns (TrainResult, split)."""
    from tqdm import tqdm

    from archmodel.datasets import DIGITS_INPUT_SHAPE, load_digits_split
    from archmodel.training import TrainConfig, train

    if tuple(network.input_shape) != DIGITS_INPUT_SHAPE or tuple(network.output_shape) != (10,):
        raise ValueError(f"network {network.name!r} has input {tuple(network.input_shape)} and output "
                         f"{tuple(network.output_shape)}; training on digits needs input (1, 8, 8) and output (10,)")
    cfg = TrainConfig(noise=noise, epochs=epochs, clip_sigma=clip_sigma)
    data = load_digits_split(seed)
    with tqdm(total=epochs, desc=f"train {network.name} (noise {noise:g})", unit="epoch", file=sys.stderr,
              disable=True if quiet else None, leave=False) as bar:  # None: off when stderr is no terminal
        def progress(epoch: int, loss: float) -> None:
            bar.set_postfix(loss=f"{loss:.3f}")
            bar.update(1)

        result = train(network, data.x_train, data.y_train, data.x_test, data.y_test, cfg, seed=seed, progress=progress)
    return result, data


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a digits network (numpy) with weight-noise injection and write weights.npz",
        description=(
            "Train a network on scikit-learn's handwritten digits (1,797 real 8x8 images, stratified "
            "train/test split fixed by --seed) in numpy, with Gaussian weight noise relative to each "
            "layer's max|W| injected in every training forward pass (Joshi et al. 2020). Writes "
            "weights.npz and train.json into --out."
        ),
        epilog="example:\n  aimc train --network digits-cnn --noise 0.05 --seed 0 --out out/train",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_network(p, default="digits-cnn")
    add_seed(p)
    add_out(p)
    add_train_options(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar, no summary")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json

    from archmodel import __version__
    from archmodel.weights_io import save_npz_bytes

    check_int_range("--seed", args.seed, 0)
    noise, epochs, clip_sigma = train_settings(args)
    network = resolve_network(args.network)
    check_out_dir(args.out)
    result, data = train_network(network, args.seed, noise, epochs, clip_sigma, args.quiet)
    meta = {"network": network.name, "noise": noise, "seed": args.seed, "epochs": epochs,
            "clip_sigma": clip_sigma, "train_accuracy_pct": 100 * result.train_accuracy,
            "test_accuracy_pct": 100 * result.test_accuracy, "dataset": "sklearn digits, stratified 70/30 split",
            "tool_version": __version__}
    write_files_atomic(args.out, {"weights.npz": save_npz_bytes(result.params, meta),
                                  "train.json": json.dumps(meta, indent=2, sort_keys=True) + "\n"})
    if not args.quiet:
        print(f"trained {network.name} (noise {noise:g}, seed {args.seed}, {epochs} epochs): "
              f"FP32 test accuracy {100 * result.test_accuracy:.2f} % on {len(data.y_test)} images")
        print(f"  weights: {args.out}/weights.npz")
    return 0
