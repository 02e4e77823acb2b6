"""``aimc map``: parse the options, map the network with :mod:`mapping.mapper`, write its PPA report."""

from __future__ import annotations

import argparse
import sys

from archmodel.fileio import staged_output, write_files_atomic
from mapping.cli.common import (
    COMMANDS,
    OnceBooleanAction,
    OptionError,
    add_arch,
    add_network,
    add_out,
    check_int_range,
    check_out_dir,
    resolve_arch,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``map`` sub-command (its options, ``func`` = :func:`run`) to ``sub``."""
    p = sub.add_parser(
        "map",
        help=COMMANDS["map"][1],
        description=(
            "Flatten every conv/linear layer to a matrix (im2col), split it over crossbar arrays, "
            "replicate the slowest layers onto spare tiles, place tiles on the mesh, route activations "
            "and partial sums (XY routing), spread over several chips when one is not enough, and "
            "report latency, throughput, energy and area per layer and in total. Writes report.md, "
            "report.json and layers.csv into --out (and three PNG plots with --plots), all or none."
        ),
        epilog=(
            "examples:\n"
            "  aimc map --arch fig11 --network resnet32-joshi2020 --out out/r32 --plots\n"
            "  aimc map --arch hermes --network model.onnx --out out/onnx --max-chips 4\n"
            "  aimc map --arch my_chip.yaml --network layers.yaml --out out/mine --no-replicate\n"
            "  aimc map --arch tiny --network vgg16 --out out/vgg --schedule reprogram --max-chips 1"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arch(p)
    add_network(p)
    add_out(p)
    p.add_argument("--max-chips", type=int, default=None, metavar="N",
                   help="at most N chips; a network needing more tiles is an error (default: no cap)")
    p.add_argument("--schedule", choices=("spread", "reprogram", "auto"), default="spread",
                   help="spread: every layer resident, on as many chips as needed (default); reprogram: "
                   "--max-chips chips (default 1) run the layers in rounds, reprogramming the PCM arrays "
                   "between rounds every inference (programming time and energy reported); auto: spread if "
                   "the network fits --max-chips chips, else reprogram")
    p.add_argument("--replicate", action=OnceBooleanAction, default=True,
                   help="replicate the slowest analog layers onto spare tiles (default: on)")
    p.add_argument("--fold-batchnorm", action="store_true",
                   help="ONNX input only (refused for a zoo or YAML network): fold batch-norm into the "
                   "preceding conv/linear. Changes no PPA "
                   "figure: a kept batch norm is merged into the affine unit's per-column scale and "
                   "offset anyway; recorded in report.json options")
    p.add_argument("--seq-len", type=int, default=None, metavar="S",
                   help="sequence length of a zoo transformer (default: 197 for vit-tiny, "
                   "128 for bert-tiny)")
    p.add_argument("--input-shape", action="append", default=None, metavar="NAME=1x3x224x224",
                   help="ONNX input only: static shape of graph input NAME, batch first (batch must be 1); "
                   "replaces symbolic dims before shape inference. Repeatable, one per input")
    plots = p.add_mutually_exclusive_group()
    plots.add_argument("--plots", dest="plots", action="store_true", default=False,
                       help="also draw energy_breakdown.png, area_breakdown.png and layer_latency.png "
                       "(matplotlib; ~0.9 s for ResNet-50) and list them in report.md")
    plots.add_argument("--no-plots", dest="plots", action="store_false",
                       help="no PNG plots (the default; kept for scripts)")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=run)


#: Totals that must be finite and > 0, and the chip keys that drive them (named in the error).
SANE_TOTALS = {
    "latency_ns": "technology.clock_mhz, array.integration_time_ns, array.adc_conversion_time_ns",
    "energy_total_pj": "the energy_pj.* keys",
    "area_total_mm2": "the area_um2.* keys",
    "tops": "technology.clock_mhz and the array timing keys",
    "tops_per_w": "the energy_pj.* keys",
    "tops_per_mm2": "the area_um2.* keys",
}


def check_totals(result, arch: str) -> None:
    """Refuse a mapping whose totals overflowed or rounded to zero (one line naming the total and its keys).

    Raises
    ------
    MappingError
        A total of :data:`SANE_TOTALS` is inf, NaN or <= 0.
    """
    import math

    from mapping.mapper import MappingError

    for total, keys in SANE_TOTALS.items():
        v = float(getattr(result, total))
        if not (math.isfinite(v) and v > 0):
            raise MappingError(f"chip description '{arch}': total {total} = {v!r} (expected a finite number > 0); "
                               f"check {keys}")


def parse_input_shapes(values: list[str] | None) -> dict[str, tuple[int, ...]]:
    """``["data=1x3x224x224", ...]`` -> ``{"data": (1, 3, 224, 224)}`` (the ``--input-shape`` values).

    Raises
    ------
    OptionError
        A value that is not ``NAME=D1xD2...`` with integer dims >= 1, or a name given twice.
    """
    out: dict[str, tuple[int, ...]] = {}
    for v in values or ():
        name, sep, dims = v.rpartition("=")
        parts = dims.lower().split("x")
        if not sep or not name or not all(p.strip().isdigit() and int(p) >= 1 for p in parts):
            raise OptionError(f"--input-shape {v!r}: expected NAME=D1xD2x... with integer dims >= 1, "
                              "e.g. --input-shape data=1x3x224x224")
        if name in out:
            raise OptionError(f"--input-shape names input {name!r} twice")
        out[name] = tuple(int(p) for p in parts)
    return out


def run(args: argparse.Namespace) -> int:
    """``aimc map`` with parsed ``args``: 0 on success; bad input raises an AimcError (one line, exit 1)."""
    from archmodel.zoo import load_network
    from mapping.mapper import MapOptions, MappingError, map_network
    from mapping.report import render_report, totals_lines

    if args.max_chips is not None:
        try:
            check_int_range("--max-chips", args.max_chips, 1)
        except ValueError as exc:
            raise MappingError(str(exc)) from None
    spec = resolve_arch(args)
    check_out_dir(args.out, args.force)
    if args.fold_batchnorm and not str(args.network).lower().endswith(".onnx"):
        raise OptionError(f"--fold-batchnorm has no effect for network '{args.network}': it applies to ONNX "
                          "files only (zoo and YAML networks keep batch norm as written)")
    # the mapper reads shapes only: an ONNX file's external weight files are not read (nor required)
    opts: dict[str, object] = {"shapes_only": True, **({"fold_batchnorm": True} if args.fold_batchnorm else {})}
    input_shapes = parse_input_shapes(args.input_shape)
    if input_shapes:
        if not str(args.network).lower().endswith(".onnx"):
            raise OptionError(f"--input-shape has no effect for network '{args.network}': it applies to "
                              "ONNX files only")
        opts["input_shapes"] = input_shapes
    if args.seq_len is not None:
        try:
            check_int_range("--seq-len", args.seq_len, 1)
        except ValueError as exc:
            raise MappingError(str(exc)) from None
    network = load_network(args.network, seq_len=args.seq_len, **opts)
    options = MapOptions(replicate=args.replicate, max_chips=args.max_chips, schedule=args.schedule)
    # a bar only on a terminal, and only for runs over 2 s (a network spread over thousands of chips);
    # tqdm (~10 ms to import) only when a bar can show: its disable=None is this same isatty test
    isatty = getattr(sys.stderr, "isatty", None)
    if args.quiet or (isatty is not None and not isatty()):
        result = map_network(spec, network, options)
    else:
        from tqdm import tqdm

        with tqdm(desc=f"mapping {network.name}", unit="layer", file=sys.stderr, delay=2.0) as bar:
            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.update(done - bar.n)

            result = map_network(spec, network, options, progress=progress)
    check_totals(result, args.arch)
    files = render_report(result, plots=args.plots, fold_batchnorm=args.fold_batchnorm)
    with staged_output(args.out, force=args.force) as stage:
        write_files_atomic(stage, files)
    if not args.quiet:
        print("\n".join(totals_lines(result)))
        print(f"  report: {args.out}/report.md")
    return 0
