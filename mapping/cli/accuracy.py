"""``aimc accuracy``: parse the options, get the weights, run the accuracy experiment, write the report."""

from __future__ import annotations

import argparse
import json
import sys

from archmodel.fileio import staged_output, write_files_atomic
from mapping.cli.common import (
    COMMANDS,
    OptionError,
    add_arch,
    add_network,
    add_out,
    add_seed,
    check_int_range,
    check_out_dir,
    resolve_arch,
)
from mapping.cli.train import add_train_options, given_train_flags, train_settings, train_with_progress

#: Largest --draws accepted.
MAX_DRAWS = 10_000


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``accuracy`` sub-command (its options, ``func`` = :func:`run`) to ``sub``."""
    p = sub.add_parser(
        "accuracy",
        help=COMMANDS["accuracy"][1],
        description=(
            "Program every conv/linear layer of a trained digits network on the chip's PCM arrays and "
            "evaluate its test accuracy through the integer data path (int8 activations, DAC, arrays, ADC, "
            "affine unit) at 1 s, 1 h, 1 day, 1 month and 1 year after programming, with no compensation, "
            "global drift calibration (GDC), per-column GDC and AdaBS, all layers analog or first/last "
            "digital; repeated over Monte-Carlo draws. Trains the network first when --weights is not "
            "given. Writes report.md, report.json and accuracy_vs_time.png into --out.\n\n"
            "Networks: the zoo's digits-mlp, digits-cnn, digits-resnet (trained on scikit-learn's digits), or "
            "any .onnx/.yaml network whose layers are conv (no groups), linear, batch-norm, ReLU, max/avg/"
            "global-average pool, add (residual), concat and flatten; batch-norm is kept (AdaBS re-estimates "
            "it). Another op is refused with one line naming the layer and the op.\n"
            "Data: scikit-learn's digits by default; --data FILE.npz with arrays x (N, *input shape; real, no "
            "NaN; fed as is) and y (N,; integer labels 0..classes-1) evaluates a network with trained weights "
            "(an .onnx with initializers, or --weights) on your images; --calib-data FILE.npz (x only) for the "
            "calibration/AdaBS images, default a seeded held-apart slice of --data (never a test image). The "
            "float model's FP32 accuracy on the same test images is reported next to the analog results."
        ),
        epilog=("examples:\n"
                "  aimc accuracy --arch fig11 --network digits-cnn --seed 0 --out out/acc\n"
                "  aimc accuracy --arch fig11 --network digits-resnet --seed 0 --folds 1 --out out/res\n"
                "  aimc accuracy --arch fig11 --network digits-cnn --weights out/train/weights.npz --out out/acc\n"
                "  aimc accuracy --arch fig11 --network model.onnx --data test.npz --out out/mine"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arch(p)
    add_network(p, default="digits-cnn")
    add_seed(p)
    p.set_defaults(seed=None)  # None: the weights file's training seed, else 0
    add_out(p)
    p.add_argument("--weights", default=None, metavar="FILE",
                   help="trained weights: .npz from 'aimc train', or an .onnx file (initializers matched by layer "
                        "name); default: the network's own ONNX weights if any, else train first")
    p.add_argument("--draws", type=int, default=10, help=f"Monte-Carlo draws, 2..{MAX_DRAWS} (default: 10)")
    p.add_argument("--digital-precision", choices=("int8", "fp32"), default="int8",
                   help="precision of the layers kept digital (default: int8, the digital datapath)")
    p.add_argument("--adabs-images", type=int, default=None, metavar="N",
                   help="training images for AdaBS, at most the training split (default: the chip's "
                        "calibration.adabs_images)")
    p.add_argument("--adc-full-scale-fraction", type=float, default=None, metavar="F",
                   help="what-if: override the chip's array.adc_full_scale_fraction (implies --adc-range fixed)")
    p.add_argument("--folds", type=int, default=5, metavar="K",
                   help="when training: k-fold evaluation over all 1,797 images, one network per fold, K >= 2; "
                        "1 = the 70/30 hold-out split of --seed (default: 5)")
    p.add_argument("--adc-range", choices=("per_layer", "fixed"), default=None,
                   help="ADC full scale: 5 sigma of each layer's column currents on calibration images, or the "
                        "chip's fixed array.adc_full_scale_fraction (default: the chip's calibration.adc_range)")
    p.add_argument("--gdc-reference", choices=("measured", "exact"), default="measured",
                   help="GDC reference read at t = 0 (includes noise; the chip's procedure) or exact from the "
                        "target weights (default: measured; its bias is in the report)")
    p.add_argument("--workers", type=int, default=None, help="processes for the draws, >= 1 (default: CPU count)")
    p.add_argument("--data", default=None, metavar="FILE.npz",
                   help="your test data: arrays x (N, *input shape) and y (N,) integer labels; needs trained weights "
                        "(an .onnx network with initializers, or --weights)")
    p.add_argument("--calib-data", default=None, metavar="FILE.npz",
                   help="calibration and AdaBS images (array x) for --data (default: a seeded held-apart slice of "
                        "--data, removed from the test images)")
    p.add_argument("--no-plot", action="store_true", help="skip accuracy_vs_time.png")
    p.add_argument("--quiet", action="store_true", help="no progress bar, no table on stdout")
    add_train_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``aimc accuracy`` with parsed ``args``: 0 on success; bad input raises an AimcError (one line, exit 1)."""
    from tqdm import tqdm

    from archmodel.accuracy import AccuracyOptions
    from archmodel.accuracy_experiment import evaluate_accuracy
    from archmodel.datasets import load_digits_split
    from archmodel.digits_experiment import (
        DigitsExperimentError,
        check_weights_file,
        has_own_weights,
        is_digits_network,
        kfold_accuracy,
        load_weights,
        own_weights,
        weights_split,
    )
    from archmodel.zoo import load_network
    from mapping.accuracy_report import result_to_json

    # every option is checked before any work (one line naming the flag)
    if args.seed is not None:
        check_int_range("--seed", args.seed, 0)
    check_int_range("--folds", args.folds, 1)
    if not 2 <= args.draws <= MAX_DRAWS:
        raise OptionError(f"--draws must be in 2..{MAX_DRAWS} (2 for a standard deviation), got {args.draws}")
    if args.workers is not None:
        check_int_range("--workers", args.workers, 1)
    if args.adabs_images is not None:
        check_int_range("--adabs-images", args.adabs_images, 2)
    train_settings(args)
    if args.weights:
        check_weights_file(args.weights)
    spec = resolve_arch(args)
    if spec.device.model == "none":  # e.g. ReRAM ISAAC: PPA only
        from archmodel.analog_matrix import device_model_from_spec

        device_model_from_spec(spec)  # raises the one-line SpecError
    if args.adc_full_scale_fraction is not None:
        if args.adc_range == "per_layer":
            raise OptionError("--adc-full-scale-fraction sets the fixed ADC range; it has no effect with "
                              "--adc-range per_layer")
        args.adc_range = "fixed"  # the fraction is the fixed range's value
        spec = spec.replace(**{"array.adc_full_scale_fraction": args.adc_full_scale_fraction})
    network = load_network(args.network)
    if args.calib_data and not args.data:
        raise OptionError("--calib-data needs --data (the digits experiment calibrates on its training split)")
    if args.data:
        return _run_user_data(args, spec, network)
    if not is_digits_network(network):
        raise DigitsExperimentError(
            f"network {network.name!r}: input {tuple(network.input_shape)}, output "
            f"{tuple(network.output_shape)}; the digits experiment needs input (1, 8, 8) and output (10,)")
    if args.weights or has_own_weights(network):
        # nothing is trained: a training option would be silently ignored
        given = given_train_flags(args)
        if given:
            why = "with --weights; it was set when training" if args.weights else (
                f"with network {network.name!r}, which carries its own weights (no training)")
            raise OptionError(f"{given[0]} has no effect {why}")
    params = info = None
    folds = 1
    if args.weights:
        params, info = load_weights(args.weights, network)
        seed, data = weights_split(info, args.seed, args.weights)  # a mismatched --seed stops here (one line)
    else:
        seed = 0 if args.seed is None else args.seed
        data = load_digits_split(seed)
        folds = 1 if has_own_weights(network) else args.folds
    n_adabs = args.adabs_images if args.adabs_images is not None else spec.calibration.adabs_images
    if n_adabs > len(data.x_train):
        flag = "--adabs-images" if args.adabs_images is not None else f"chip '{spec.name}' calibration.adabs_images"
        raise OptionError(f"{flag} = {n_adabs} exceeds the {len(data.x_train)} images of the training split")
    check_out_dir(args.out, args.force)
    opts = AccuracyOptions(draws=args.draws, digital_precision=args.digital_precision, adabs_images=args.adabs_images,
                           adc_range=args.adc_range, gdc_reference=args.gdc_reference)
    fold_info = None
    if folds > 1:
        cfg = train_settings(args, network.name)
        noise, epochs, clip_sigma = cfg.noise, cfg.epochs, cfg.clip_sigma
        with tqdm(total=folds * (epochs + args.draws), desc=f"{folds}-fold accuracy {network.name} on {spec.name}",
                  unit="step", file=sys.stderr, disable=True if args.quiet else None) as bar:
            res, fold_info = kfold_accuracy(spec, network, seed, folds, noise, epochs, clip_sigma, opts,
                                            train_progress=lambda f, e, loss: bar.update(1),
                                            draw_progress=lambda d: bar.update(1), workers=args.workers,
                                            lr=cfg.lr, frozen_bn_epochs=cfg.frozen_bn_epochs)
        info = {"source": "trained per fold", "noise": noise, "seed": seed, "epochs": epochs, "lr": cfg.lr,
                "frozen_bn_epochs": cfg.frozen_bn_epochs,
                "clip_sigma": clip_sigma}
        n_test = sum(f["test_images"] for f in fold_info)
    else:
        if params is None and has_own_weights(network):
            params, info = own_weights(network), {"source": "network file"}
        elif params is None:
            cfg = train_settings(args, network.name)
            trained, _ = train_with_progress(network, seed, cfg, args.quiet)
            params, info = trained.params, {"source": "trained", "noise": cfg.noise, "seed": seed,
                                            "epochs": cfg.epochs, "lr": cfg.lr,
                                            "frozen_bn_epochs": cfg.frozen_bn_epochs, "clip_sigma": cfg.clip_sigma,
                                            "fp32_test_accuracy_pct": 100 * trained.test_accuracy}
        with tqdm(total=args.draws, desc=f"accuracy {network.name} on {spec.name}", unit="draw", file=sys.stderr,
                  disable=True if args.quiet else None) as bar:  # None: off when stderr is no terminal
            res = evaluate_accuracy(spec, network, params, data.x_train, data.x_test, data.y_test, opts, seed=seed,
                                    progress=lambda d: bar.update(1), with_adc_usage=True, workers=args.workers,
                                    train_index=data.train_index)
        n_test = len(data.y_test)
    rep = result_to_json(res, spec, network.name, info, n_test=n_test, adabs_images=n_adabs,
                         split=data.meta if folds == 1 else {"dataset": "sklearn-digits", "kind": "kfold",
                                                              "folds": folds, "seed": seed},
                         test_index=data.test_index if folds == 1 else None, folds=fold_info)
    return _write_report(args, rep)


def _run_user_data(args: argparse.Namespace, spec, network) -> int:  # type: ignore[no-untyped-def]
    """``--data``: a network with trained weights on the user's images (one hold-out evaluation)."""
    import numpy as np
    from tqdm import tqdm

    from archmodel.accuracy import AccuracyOptions
    from archmodel.accuracy_experiment import evaluate_accuracy
    from archmodel.datasets import hold_apart, load_user_data
    from archmodel.digits_experiment import has_own_weights, load_weights, own_weights
    from mapping.accuracy_report import result_to_json

    given = given_train_flags(args)
    if given:
        raise OptionError(f"{given[0]} has no effect with --data (nothing is trained; 'aimc train' trains)")
    if not args.weights and not has_own_weights(network):
        raise OptionError(f"--data needs trained weights: network {network.name!r} carries none "
                          "(give an .onnx with initializers, or --weights FILE)")
    if len(network.output_shape) != 1:
        raise OptionError(f"network {network.name!r}: output shape {tuple(network.output_shape)}; --data needs a "
                          "classifier with a vector of class scores")
    classes = int(network.output_shape[0])
    shape = tuple(int(v) for v in network.input_shape)
    data = load_user_data(args.data, shape, classes, flag="--data")
    seed = 0 if args.seed is None else args.seed
    n_adabs = args.adabs_images if args.adabs_images is not None else spec.calibration.adabs_images
    opts = AccuracyOptions(draws=args.draws, digital_precision=args.digital_precision, adabs_images=args.adabs_images,
                           adc_range=args.adc_range, gdc_reference=args.gdc_reference)
    if args.calib_data:
        cal = load_user_data(args.calib_data, shape, classes, flag="--calib-data", need_labels=False)
        x_cal, cal_index = cal.x, None
        x_test, y_test, test_index = data.x, data.y, None
        cal_desc = f"{args.calib_data} ({len(x_cal)} images, sha256 {cal.sha256_16})"
    else:
        cal_index, test_index = hold_apart(len(data.x), max(opts.calibration_images, n_adabs), seed)
        x_cal, x_test, y_test = data.x[cal_index], data.x[test_index], data.y[test_index]  # type: ignore[index]
        cal_desc = f"{len(cal_index)} images held apart from --data (seed {seed})"
    if n_adabs > len(x_cal):
        flag = "--adabs-images" if args.adabs_images is not None else f"chip '{spec.name}' calibration.adabs_images"
        raise OptionError(f"{flag} = {n_adabs} exceeds the {len(x_cal)} calibration images ({cal_desc})")
    if args.weights:
        params, info = load_weights(args.weights, network)
    else:
        params, info = own_weights(network), {"source": "network file"}
    check_out_dir(args.out, args.force)
    with tqdm(total=args.draws, desc=f"accuracy {network.name} on {spec.name}", unit="draw", file=sys.stderr,
              disable=True if args.quiet else None) as bar:
        res = evaluate_accuracy(spec, network, params, x_cal, x_test, y_test, opts, seed=seed,
                                progress=lambda d: bar.update(1), with_adc_usage=True, workers=args.workers,
                                train_index=cal_index)
    split = {"kind": "user", "data": str(args.data), "data_sha256_16": data.sha256_16, "calibration": cal_desc}
    rep = result_to_json(res, spec, network.name, info, n_test=len(y_test), adabs_images=n_adabs, split=None,
                         test_index=test_index)
    rep["split"] = split
    rep["dataset"] = (f"{args.data} ({len(data.x)} images, sha256 {data.sha256_16}); calibration: {cal_desc}")
    if args.calib_data:  # another file: indices mean nothing there; disjoint = no test image repeated byte for byte
        test_rows = {r.tobytes() for r in np.ascontiguousarray(x_test).reshape(len(x_test), -1)}
        rep["calibration"]["calibration_disjoint_from_test"] = not any(
            r.tobytes() in test_rows for r in np.ascontiguousarray(x_cal).reshape(len(x_cal), -1))
    return _write_report(args, rep)


def _write_report(args: argparse.Namespace, rep: dict) -> int:
    """Write report.md, report.json and (unless --no-plot) the plot into --out, whole or not at all; print it."""
    from mapping.accuracy_report import plot_png, to_markdown

    md = to_markdown(rep)
    files: dict[str, bytes | str] = {"report.md": md, "report.json": json.dumps(rep, indent=2) + "\n"}
    if not args.no_plot:
        files["accuracy_vs_time.png"] = plot_png(rep)
    with staged_output(args.out, force=args.force) as stage:
        write_files_atomic(stage, files)
    if not args.quiet:
        print(md, end="")
        print(f"  report: {args.out}/report.md")
    return 0
