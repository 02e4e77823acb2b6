"""Options and option checks shared by the ``aimc`` sub-commands."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from archmodel.errors import AimcError
from archmodel.spec import ChipSpec, list_presets, load_spec


class OptionError(AimcError, ValueError):
    """A command-line option value that is out of range or meaningless (one line, exit status 1)."""


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


def add_out(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument(
        "--out", type=_out_arg, required=required, metavar="DIR", help="output folder (created if missing)"
    )


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


def check_out_dir(path: str | os.PathLike[str] | None) -> Path:
    """Make sure ``--out`` names a writable folder, before any work is done.

    Creates the folder (and its parents) if missing, then creates and removes
    a probe file in it, so that a read-only or impossible path is reported at
    once instead of after a long run.

    Returns
    -------
    Path
        The folder.

    Raises
    ------
    OptionError
        ``path`` is empty (an empty ``--out`` would mean the current folder).
    OSError
        ``"--out DIR: not a writable folder (reason)"``.
    """
    if path is None or not str(path).strip():
        raise OptionError("--out: empty folder name; expected a folder path")
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OSError(f"--out {out}: not a writable folder (exists and is not a folder)")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".aimc-write-test.", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OSError(f"--out {out}: not a writable folder ({exc.strerror or exc})") from None
    return out


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


