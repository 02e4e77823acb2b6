"""The ``aimc`` command line: one console script, one subcommand per job.

Subcommands live in their own modules (``mapping/cli_<name>.py``), each with a
``register(subparsers)`` function that adds its parser and sets ``func``. A
module that is not there yet is simply skipped, so the CLI grows with the
project. Conventions (DESIGN.md, "The command line"): ``--arch NAME|PATH`` for
the chip description, ``--out DIR`` for outputs, ``--seed`` wherever random
numbers are drawn, ``--network`` for a zoo name or an ONNX/YAML path.

Errors: every known error (bad chip description, bad network, bad arguments)
prints one line ``aimc: error: ...`` on stderr and exits with status 2 (usage)
or 1 (anything else). No traceback reaches the user unless ``AIMC_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from archmodel import __version__

#: Subcommand modules, in the order ``aimc --help`` lists them.
COMMAND_MODULES = (
    "mapping.cli_spec",
    "mapping.cli_drift",
    "mapping.cli_map",
    "mapping.cli_verilog",
    "mapping.cli_cosim",
    "mapping.cli_train",
    "mapping.cli_accuracy",
    "mapping.cli_sweep",
)


class CLIError(Exception):
    """An error to show the user as one line (exit status 1)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like argparse but with our prefix
        self.print_usage(sys.stderr)
        print(f"aimc: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="aimc",
        description=(
            "aimc: RTL-verified architecture model of a hybrid digital-analog PCM "
            "in-memory-computing DNN accelerator (Sebastian et al. 2018, Fig. 11)."
        ),
        epilog="Run 'aimc COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"aimc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # that subcommand has not landed yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aimc`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        result = args.func(args)
        return int(result or 0)
    except BrokenPipeError:  # output piped into e.g. `head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        print("aimc: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, OSError) as exc:
        if os.environ.get("AIMC_DEBUG"):
            raise
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"aimc: error: {msg}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - last line of defence: never a traceback
        if os.environ.get("AIMC_DEBUG"):
            raise
        print(
            f"aimc: internal error: {type(exc).__name__}: {exc} (set AIMC_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
