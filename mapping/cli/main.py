"""The ``aimc`` entry point: the argument parser, sub-command dispatch and the one error policy.

Each sub-command lives in its own module with a ``register(subparsers)``
function that adds its parser and sets ``func``; :data:`COMMANDS` lists them
with their one-line help, and :func:`build_parser` imports only the module of
the command on the command line (the others get a stub parser carrying the
same help line, so ``aimc --help`` is unchanged; importing every command's
dependencies cost ~1 s per run, issue 22). Conventions (docs/design.md,
"The command line"): ``--arch NAME|PATH`` for the chip description, ``--out
DIR`` for outputs, ``--seed`` wherever random numbers are drawn, ``--network``
for a zoo name or an ONNX/YAML path.

Error policy (here and nowhere else): bad arguments print the usage and one
line ``aimc: error: ...`` and exit with status 2; a user-facing error
(:class:`archmodel.errors.AimcError`; an ``OSError`` is the file system's
answer) prints one line ``aimc: error: ...`` (at most :data:`MAX_MESSAGE_CHARS`
characters) and exits with status 1; any other exception, ``ValueError``
included, is a bug and prints one line saying so (status 1). A numeric
warning (overflow, division by zero, invalid value) is turned into an error
(:class:`NumericError`, one line naming the chip description) instead of
leaking to the terminal; an ``OverflowError`` is reported the same way. Ctrl-C
prints ``aimc: interrupted`` and exits 130; SIGTERM (``kill``, ``timeout``) prints ``aimc: terminated`` and
exits 143, both after removing staged outputs and temporary folders. ``AIMC_DEBUG=1`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from archmodel import __version__
from archmodel.errors import AimcError
from mapping.cli.common import COMMANDS

#: Sub-command modules, in the order ``aimc --help`` lists them.
COMMAND_MODULES = tuple(module for module, _ in COMMANDS.values())

#: Errors shown to the user as one line (exit status 1): bad input, and the file system's answers.
USER_ERRORS: tuple[type[BaseException], ...] = (AimcError, OSError)

#: Longest error line printed (a hostile input once produced a 312 MB line).
MAX_MESSAGE_CHARS = 400


class NumericError(AimcError, ArithmeticError):
    """A computation overflowed or produced NaN: some input value is outside the model's range."""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Every ``--help``: prose wrapped to the terminal, indented example lines kept as written, and
    ``(default: X)`` added to each option whose help does not state its default already."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap

        out = []
        for line in text.splitlines():
            if line.startswith(" ") or not line.strip():
                out.append(indent + line)
            else:
                out.append(textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent))
        return "\n".join(out)

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text.lower() or action.default in (None, False, argparse.SUPPRESS)
                or not action.option_strings or isinstance(action, argparse._HelpAction | argparse._VersionAction)):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs["formatter_class"] = HelpFormatter  # one look for every command's --help
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # one line, exit 2, like argparse but with our prefix
        self.print_usage(sys.stderr)
        print(f"aimc: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _command_in(argv: Sequence[str]) -> str | None:
    """The sub-command named on ``argv`` (the first word not starting with ``-``: the top-level parser has no
    option taking a value), or None."""
    for word in argv:
        if not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``aimc`` parser: with ``argv`` (the arguments after the program name), the full parser of the command
    named there only and a stub with the help line for the others (module docstring); without, every command's."""
    wanted = None if argv is None else _command_in(argv)
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
    for name, (module, help_line) in COMMANDS.items():
        if argv is None or name == wanted:
            importlib.import_module(module).register(sub)
        else:
            sub.add_parser(name, help=help_line)
    return parser


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if len(line) <= MAX_MESSAGE_CHARS else line[: MAX_MESSAGE_CHARS - 1] + "…"


def _numeric_error(args: argparse.Namespace, exc: BaseException) -> NumericError:
    what = []
    if getattr(args, "arch", None) is not None:
        what.append(f"chip description '{args.arch}'")
    if getattr(args, "network", None) is not None:
        what.append(f"network '{args.network}'")
    inputs = " and ".join(what) or "the inputs"
    return NumericError(f"numeric error ({_first_line(exc)}) while evaluating {inputs}: a value is outside "
                        "the model's range; check the chip keys against 'aimc spec --arch ...' and docs/design.md")


def _quiet_after_abort() -> None:
    # an aborted RTL export leaves Amaranth elaboratables unused; their warnings, printed when they are
    # garbage-collected at exit, would follow the one error line (six lines after a Ctrl-C of aimc verilog)
    warnings.filterwarnings("ignore", message=r".*created but never used")


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``), raised like Ctrl-C so that staged outputs and temporary folders are
    removed on the way out (Python's default SIGTERM ends the process without running ``finally``)."""


def _terminate_handler(pid: int):
    """The SIGTERM handler of process ``pid``: raise :class:`Terminated` there; in a process forked from it (the
    worker pools of ``--workers``, which ``terminate()`` ends with SIGTERM) end as by default, silently."""
    import signal

    def handler(signum, frame) -> None:
        if os.getpid() != pid:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise Terminated

    return handler


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aimc`` console script; returns the exit status."""
    import signal
    import threading

    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    on_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate_handler(os.getpid())) if on_main else None
    try:
        return _run(args)
    finally:
        if on_main:
            signal.signal(signal.SIGTERM, previous)


def _run(args: argparse.Namespace) -> int:
    debug = bool(os.environ.get("AIMC_DEBUG"))
    try:
        try:
            with warnings.catch_warnings():
                # numpy's overflow / invalid-value warnings become errors instead of leaking to the terminal
                warnings.simplefilter("error", RuntimeWarning)
                return int(args.func(args) or 0)
        except (RuntimeWarning, FloatingPointError, OverflowError) as exc:
            raise _numeric_error(args, exc) from exc
    except BrokenPipeError:  # output piped into e.g. `head`
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        except OSError:
            pass
        return 0
    except KeyboardInterrupt as exc:
        _quiet_after_abort()
        if isinstance(exc, Terminated):
            print("aimc: terminated", file=sys.stderr)
            return 143
        print("aimc: interrupted", file=sys.stderr)
        return 130
    except USER_ERRORS as exc:
        if debug:
            raise
        _quiet_after_abort()
        print(f"aimc: error: {_first_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback only with AIMC_DEBUG=1
        if debug:
            raise
        _quiet_after_abort()
        print(f"aimc: internal error: {type(exc).__name__}: {_first_line(exc)} "
              "(set AIMC_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
