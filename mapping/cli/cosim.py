"""``aimc cosim``: co-simulate one analog layer's RTL tile (``--layer K``) or the whole network
on the co-processor top level (``--images N``: :mod:`tb.network_env`, the report of
:func:`tb.network_env.report_lines`; exit 1 unless every score matches and the RTL's top-1
equals the model's) against the golden model; with ``--emulate-arrays`` the whole network runs on
the FPGA prototype's Verilog (the PCM array emulators in place of the Python arrays:
:func:`tb.network_env.cosim_prototype`, report :func:`tb.network_env.prototype_report_lines`, or for a
CNN on proto :func:`tb.cnn_env.proto_cnn_report_lines`; exit 1 unless the noise-off (and
``--emulator-sigma``) runs are bit-exact against the emulator golden, the done interrupt (and, for the
MLP, the error interrupt) is seen and the one-code fault is located at the analog layer).

Exports the tile's Verilog (tile controller + affine unit) for the chip
description, runs it in Icarus Verilog or Verilator under cocotb with the
behavioural PCM array behind the array port (weights programmed, drifted to
``--t-inf``, noise keyed by seed and MVM index), feeds the layer's im2col
vectors (random int8 from the seed) and compares every int8 output with the
archmodel golden run of the same seed. Prints MATCH / MISMATCH, the outputs
compared, the seed, how the ADC range was set (the chip's
``calibration.adc_range``; ``per_layer`` on a structure-only network is measured
on the seeded stimulus: 5 sigma of the column currents right after programming,
``archmodel.calibration.adc_range_from_currents``) with the layer's full scale,
the simulated cycles and the mapper's prediction for the layer with their ratio.

Exit status: 0 on a match within 2 % of the mapper's cycles; 1 on a mismatch,
a cycle count more than 2 % away, or an error (a digital layer, a layer index
out of range, a layer that does not fit one tile: one line each).
"""

from __future__ import annotations

import argparse
import math

from archmodel.fileio import check_out_dir, staged_output
from mapping.cli.common import COMMANDS, OptionError, add_arch, add_network, add_seed, check_int_range


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``cosim`` sub-command (its options, ``func`` = :func:`run`) to ``sub``."""
    p = sub.add_parser(
        "cosim",
        help=COMMANDS["cosim"][1],
        description="Co-simulate the generated RTL against the golden model, bit for bit, in Icarus Verilog or "
        "Verilator under cocotb (the PCM arrays as the archmodel tile model, or with --emulate-arrays the prototype's "
        "array emulators). --layer K: one analog layer on one tile (tile controller + affine unit); prints MATCH or "
        "MISMATCH, outputs compared, seed, the ADC range (calibration.adc_range: per_layer is measured on the seeded "
        "stimulus), simulated and mapper-predicted cycles; exits 1 on a mismatch or when the cycle counts differ by "
        "more than 2 %. --images N: the whole network on the co-processor top level, digits images in over "
        "AXI4-Stream and class scores out (networks with digits' input 1 x 8 x 8 and 10 classes: MLPs as digits-mlp "
        "on tiny; CNNs of digits-cnn's or digits-resnet's shape on proto, in one run of the chip); every layer's "
        "values and the scores compared, RTL vs model top-1, simulated vs mapper cycles per layer (differences over "
        "5 % named); exits 1 on a mismatch or a different top-1. A fresh Verilator build of the 25-tile proto top "
        "takes about 15 min on 2 cores (cached in $AIMC_CACHE/sim afterwards); --sim icarus builds in about a "
        "minute but simulates slower.",
    )
    add_arch(p)
    add_network(p)
    p.add_argument("--layer", type=int, default=None, metavar="K",
                   help="0-based row of the map report's layer table (conv/linear layers in order): co-simulate "
                        "that layer alone (one of --layer / --images)")
    p.add_argument("--images", type=int, default=None, metavar="N",
                   help="co-simulate the whole network on the top level with the first N (1..512) digits test images "
                        "(images in over AXI4-Stream, class scores out, digital first/last layers, the analog layers "
                        "on their tiles; a CNN in one run of the chip)")
    p.add_argument("--weights", choices=("trained", "seeded"), default="trained",
                   help="with --images: weights trained on the digits split of --seed (default; 30 epochs, run in "
                        "the simulator process after the build, about a minute) or seeded random")
    p.add_argument("--emulate-arrays", action="store_true",
                   help="with --images: run the FPGA prototype's Verilog (aimc verilog --emulate-arrays: the "
                        "co-processor + one PCM array emulator per array port) with the emulators programmed over "
                        "AXI4-Lite from each tile's conductance codes; checks the scores (and the mirrored analog "
                        "outputs) bit for bit against the golden with the emulator's model in place of the arrays, "
                        "the done interrupt and a one-code fault (digits-mlp on tiny-fpga; digits-cnn on proto in "
                        "one run of the chip, not digits-resnet)")
    p.add_argument("--emulator-sigma", type=int, default=None, metavar="S",
                   help="with --emulate-arrays: also run with the emulators' read noise at scale S (1..255; "
                        "std ≈ 0.144·S ADC LSB) and report the top-1 difference against the noise-off run")
    p.add_argument("--emulator-seed", type=int, default=1, metavar="SEED",
                   help="with --emulator-sigma: noise seed (emulator t gets SEED + t; default 1)")
    add_seed(p)
    p.add_argument("--t-inf", type=float, default=None, metavar="SECONDS",
                   help="drift time after programming in s (GDC alpha folded into the affine scale; default: 0, "
                        "but 3600 for a CNN with --images)")
    p.add_argument("--sim", choices=("icarus", "verilator"), default="verilator",
                   help="simulator (default: verilator)")
    p.add_argument("--waves", action="store_true", help="dump waveforms (kept in --build-dir)")
    p.add_argument("--build-dir", default=None, metavar="DIR",
                   help="build folder to keep, written all or nothing like --out: staged beside it and moved into "
                        "place when the co-simulation ran (match or mismatch); a non-empty folder is refused "
                        "unless --force (default: a temporary folder, removed afterwards)")
    p.add_argument("--force", action="store_true",
                   help="accept a non-empty --build-dir and replace it whole when the run completes")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``aimc cosim`` with parsed ``args``: 0 on success; bad input raises an AimcError (one line, exit 1)."""
    from tb.cosim import cosim_layer

    if (args.layer is None) == (args.images is None):
        raise OptionError("give one of --layer K (one layer on one tile) or --images N (the whole network)")
    if args.emulate_arrays and args.images is None:
        raise OptionError("--emulate-arrays runs the whole network on the prototype: it needs --images N")
    if args.emulator_sigma is not None and not args.emulate_arrays:
        raise OptionError("--emulator-sigma needs --emulate-arrays")
    if args.emulator_seed != 1 and args.emulator_sigma is None:
        raise OptionError("--emulator-seed needs --emulator-sigma S (the noise-off run uses no seed)")
    if args.force and args.build_dir is None:
        raise OptionError("--force has no effect without --build-dir")
    if args.t_inf is not None and (not math.isfinite(args.t_inf) or args.t_inf < 0):
        raise OptionError(f"--t-inf must be finite and >= 0 s, got {args.t_inf}")
    if args.images is not None:
        return _run_network(args)
    args.t_inf = _t_inf(args)
    check_int_range("--seed", args.seed, 0)
    if args.waves and args.build_dir is None:
        raise OptionError("--waves needs --build-dir DIR to keep the waveform file")
    if args.build_dir is not None:
        check_out_dir(args.build_dir, force=args.force, flag="--build-dir")
    placement = _placement(args)
    kwargs = dict(placement=placement, seed=args.seed, t_inf_s=args.t_inf, sim=args.sim, waves=args.waves)
    if args.build_dir is None:
        report = cosim_layer(args.arch, args.network, args.layer, build_dir=None, **kwargs)
    else:
        with staged_output(args.build_dir, force=args.force, flag="--build-dir") as stage:
            report = cosim_layer(args.arch, args.network, args.layer, build_dir=stage, **kwargs)
    for line in report.lines():
        print(line)
    return 0 if report.match and report.cycles_agree else 1



def _placement(args: argparse.Namespace, spec=None):
    """The mapper's placement of ``args.network`` on ``args.arch`` (no replication), as every cosim path uses it."""
    from archmodel.spec import load_spec
    from archmodel.zoo import load_network
    from mapping.mapper import MapOptions, map_network

    spec = load_spec(args.arch) if spec is None else spec
    return map_network(spec, load_network(args.network), MapOptions(replicate=False)).placement()


def _t_inf(args: argparse.Namespace, *, cnn: bool = False) -> float:
    """``--t-inf`` in s, or its default when not given: 0 s, and for a CNN with ``--images``
    :data:`tb.cnn_env.CNN_T_INF_S` (1 h). Validated in :func:`run`."""
    if args.t_inf is not None:
        return float(args.t_inf)
    if cnn:
        from tb.cnn_env import CNN_T_INF_S
        return CNN_T_INF_S
    return 0.0


def _in_build_dir(args: argparse.Namespace, run_in):
    """``run_in(folder)`` in a temporary folder, or (``--build-dir``) in a staged one that replaces it only on success."""
    import tempfile

    if args.build_dir is None:
        with tempfile.TemporaryDirectory(prefix="aimc-cosim-") as tmp:
            return run_in(tmp)
    check_out_dir(args.build_dir, force=args.force, flag="--build-dir")
    with staged_output(args.build_dir, force=args.force, flag="--build-dir") as stage:
        return run_in(stage)

def _run_network(args: argparse.Namespace) -> int:
    """``aimc cosim --images N``: the whole network on the co-processor (tb.network_env)."""

    from archmodel.zoo import load_network
    from tb.network_env import cosim_network, report_lines

    check_int_range("--images", args.images, 1, 512)
    check_int_range("--seed", args.seed, 0)
    if args.waves and args.build_dir is None:
        raise OptionError("--waves needs --build-dir DIR to keep the waveform file")
    if args.emulate_arrays:
        return _run_prototype(args)
    if any(layer.op == "conv" for layer in load_network(args.network).layers):
        return _run_cnn(args)  # a CNN in one run (digits-cnn: tb.cnn_env; digits-resnet: tb.resnet_env)
    placement = _placement(args)
    kwargs = dict(images=args.images, seed=args.seed, sim=args.sim, weights=args.weights, waves=args.waves,
                  network=str(args.network), t_inf_s=_t_inf(args))
    d = _in_build_dir(args, lambda folder: cosim_network(args.arch, placement, build_dir=folder, **kwargs))
    for line in report_lines(d):
        print(line)
    ok = d["passed"] and d["mismatches"] == 0 and d["compared"] == d["expected_outputs"]
    return 0 if ok and d["top1_rtl"] == d["top1_model"] else 1


#: Network operators -> the dataflow unit the RTL runs them on (rtl.regmap.dataflow_units).
_UNIT_OF_OP = {"conv": "lb", "maxpool": "pool", "avgpool": "pool", "global_avgpool": "pool", "add": "add"}


def _check_fits_rtl(args: argparse.Namespace):
    """Refuse, before any build or training, a CNN whose placement needs more than one chip or a dataflow unit
    the chip does not have (one line each); returns the placement.

    Raises
    ------
    tb.cnn_golden.CnnGoldenError
        The placement's analog tiles exceed one chip (the RTL has no chip-to-chip link).
    rtl.register_compiler.MissingUnitError
        A conv / pooling / residual layer on a chip without line buffers / pool units / residual joins.
    rtl.register_compiler.JoinSkewError
        A residual add whose producers' skew overflows the join's queue (``join_skew_beats``).
    """
    from archmodel.spec import load_spec
    from archmodel.zoo import load_network
    from rtl.register_compiler import JoinSkewError, check_join_skew, join_skew_beats, require_unit
    from tb.cnn_golden import CnnGoldenError
    from tb.resnet_env import join_branches

    spec = load_spec(args.arch)
    placement = _placement(args, spec)
    n_tiles = spec.tile_grid.rows * spec.tile_grid.cols
    for lp in placement.layers:
        if lp.kind == "analog" and lp.first_tile + lp.arrays > n_tiles:
            raise CnnGoldenError(f"layer {lp.name!r}: tiles {lp.first_tile}..{lp.first_tile + lp.arrays - 1} "
                                 f"exceed the {n_tiles} tiles of one '{spec.name}' chip (the RTL has no "
                                 "chip-to-chip link)")
    net = load_network(args.network)
    for layer in net.layers:
        if layer.op in _UNIT_OF_OP:
            require_unit(spec, _UNIT_OF_OP[layer.op], layer.name)
        if layer.op == "add" and len(layer.inputs) == 2:  # the join's queue must hold its producers' skew
            if layer.inputs[0] == layer.inputs[1]:
                raise JoinSkewError(f"layer {layer.name!r}: a residual add of {layer.inputs[0]!r} with itself; the "
                                    "RTL's join takes two different producers")
            check_join_skew(layer.name, join_skew_beats(spec, *join_branches(net, *layer.inputs)))
    # the whole chip configuration, compiled once with seeded weights on one image (seconds): a network the RTL
    # run cannot play (shape, chains, pools) is refused here, not after the simulator build
    from archmodel.datasets import load_digits_split
    from archmodel.digits_experiment import DigitsExperimentError, is_digits_network
    from tb.cnn_env import prepare_cnn

    if not is_digits_network(net):
        raise DigitsExperimentError(f"network {net.name!r} has input {tuple(net.input_shape)} and output "
                                    f"{tuple(net.output_shape)}; the whole-network co-simulation feeds digits "
                                    "images: input (1, 8, 8), output (10,)")
    from tb.cnn_golden import cnn_golden, seeded_params

    data = load_digits_split(args.seed)
    prepare_cnn(cnn_golden(spec, net, placement, seeded_params(net, 1), data.x_test[:1], data.x_train[:256],
                           seed=args.seed))
    return placement


def _run_cnn(args: argparse.Namespace) -> int:
    """``aimc cosim --images N`` of a CNN (``--weights``) in one run of the chip: tb.cnn_env (the golden of
    tb.cnn_golden; a residual network's configuration from tb.resnet_env). 0 when everything matched, else 1."""
    from tb.cnn_env import cnn_report_lines as report_lines
    from tb.cnn_env import cosim_cnn as cosim

    placement = _check_fits_rtl(args)
    kwargs = dict(images=args.images, seed=args.seed, sim=args.sim, waves=args.waves, weights=args.weights,
                  network=str(args.network), t_inf_s=_t_inf(args, cnn=True))
    d = _in_build_dir(args, lambda folder: cosim(args.arch, placement, build_dir=folder, **kwargs))
    ok, lines = report_lines(d)
    for line in lines:
        print(line)
    return 0 if ok else 1


def _run_prototype(args: argparse.Namespace) -> int:
    """``aimc cosim --images N --emulate-arrays``: the whole network on the FPGA prototype (tb.network_env)."""

    from archmodel.spec import load_spec
    from archmodel.zoo import load_network
    from tb.network_env import CosimNetworkError, cosim_prototype, prototype_report_lines

    sigma = 0 if args.emulator_sigma is None else args.emulator_sigma
    if args.emulator_sigma is not None:
        check_int_range("--emulator-sigma", sigma, 1, 255)
    check_int_range("--emulator-seed", args.emulator_seed, 0, 2**32 - 1)
    t_inf = _t_inf(args)
    spec = load_spec(args.arch)
    if spec.array.arrays_per_tile != 1:
        raise CosimNetworkError(f"--emulate-arrays: '{spec.name}' has {spec.array.arrays_per_tile} arrays per tile; "
                                "the whole-network co-simulation maps one array per tile")
    net = load_network(args.network)
    if any(layer.op == "conv" for layer in net.layers):
        return _run_prototype_cnn(args, net, sigma)
    placement = _placement(args, spec)
    kinds = [lp.kind for lp in placement.layers]
    if kinds != ["digital", "analog", "digital"]:  # before any build or training: one line
        raise CosimNetworkError(f"--emulate-arrays runs a digital -> analog -> digital network of linear layers "
                                f"(digits-mlp); {args.network} on '{spec.name}' is {kinds}")
    kwargs = dict(images=args.images, seed=args.seed, sim=args.sim, weights=args.weights, waves=args.waves,
                  sigma=sigma, emu_seed=args.emulator_seed, fault=True, irq_error=True, t_inf_s=t_inf,
                  network=str(args.network))
    d = _in_build_dir(args, lambda folder: cosim_prototype(args.arch, placement, build_dir=folder, **kwargs))
    ok, lines = prototype_report_lines(d)
    for line in lines:
        print(line)
    return 0 if ok else 1


def _run_prototype_cnn(args: argparse.Namespace, net, sigma: int) -> int:
    """``aimc cosim --images N --emulate-arrays`` of a CNN (digits-cnn on proto): the whole network on the FPGA
    prototype in one run of the chip (tb.network_env.cosim_prototype with ``cnn``; report
    tb.cnn_env.proto_cnn_report_lines). Refusals before any build or training, one line each."""
    from tb.cnn_env import proto_cnn_report_lines
    from tb.network_env import CosimNetworkError, cosim_prototype

    if any(layer.op == "add" for layer in net.layers):
        raise CosimNetworkError(f"--emulate-arrays plays digits-cnn's shape on the prototype; {args.network} has a "
                                "residual add (digits-resnet: run it with the Python arrays, without --emulate-arrays)")
    placement = _check_fits_rtl(args)  # one chip, the dataflow units, the whole configuration compiled
    kwargs = dict(images=args.images, seed=args.seed, sim=args.sim, weights=args.weights, waves=args.waves,
                  sigma=sigma, emu_seed=args.emulator_seed, fault=True, t_inf_s=_t_inf(args, cnn=True),
                  network=str(args.network), cnn=True)
    d = _in_build_dir(args, lambda folder: cosim_prototype(args.arch, placement, build_dir=folder, **kwargs))
    ok, lines = proto_cnn_report_lines(d)
    for line in lines:
        print(line)
    return 0 if ok else 1
