"""The ``aimc`` entry point: the argument parser, sub-command dispatch and the one error policy.

Each sub-command lives in its own module with a ``register(subparsers)``
function that adds its parser and sets ``func``; :data:`COMMAND_MODULES` lists
them and :func:`build_parser` imports them by name. Conventions (docs/design.md,
"The command line"): ``--arch NAME|PATH`` for the chip description, ``--out
DIR`` for outputs, ``--seed`` wherever random numbers are drawn, ``--network``
for a zoo name or an ONNX/YAML path.

Error policy (here and nowhere else): bad arguments print the usage and one
line ``aimc: error: ...`` and exit with status 2; a user-facing error
(:class:`archmodel.errors.AimcError`, and, until every such error derives
from it, ``ValueError``; an ``OSError`` is the file system's answer) prints one
line ``aimc: error: ...`` and exits with status 1; any other exception is a
bug and prints one line saying so (status 1). ``AIMC_DEBUG=1`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from archmodel import __version__
from archmodel.errors import AimcError

#: Sub-command modules, in the order ``aimc --help`` lists them.
COMMAND_MODULES = (
    "mapping.cli.spec",
    "mapping.cli.drift",
    "mapping.cli.map",
    "mapping.cli.verilog",
    "mapping.cli.cosim",
    "mapping.cli.train",
    "mapping.cli.accuracy",
    "mapping.cli.validate",
)

#: Errors shown to the user as one line (exit status 1). ``ValueError`` stays
#: until every user-facing error derives from ``AimcError`` (issue 21).
USER_ERRORS: tuple[type[BaseException], ...] = (AimcError, ValueError, OSError)


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
        importlib.import_module(name).register(sub)
    return parser


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aimc`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    debug = bool(os.environ.get("AIMC_DEBUG"))
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # output piped into e.g. `head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        print("aimc: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if debug:
            raise
        print(f"aimc: error: {_first_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback only with AIMC_DEBUG=1
        if debug:
            raise
        print(f"aimc: internal error: {type(exc).__name__}: {_first_line(exc)} "
              "(set AIMC_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
