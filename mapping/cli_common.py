"""Options and helpers shared by the ``aimc`` subcommands."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from archmodel.spec import ChipSpec, list_presets, load_spec


def add_arch(parser: argparse.ArgumentParser, default: str = "fig11") -> None:
    parser.add_argument(
        "--arch",
        default=default,
        metavar="NAME|PATH",
        help=f"chip description: a preset ({', '.join(list_presets())}) or a YAML file (default: {default})",
    )


def add_out(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--out", type=Path, required=required, metavar="DIR", help="output folder (created if missing)")


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


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_files_atomic(out_dir: Path, files: dict[str, bytes | str]) -> list[Path]:
    """Write several files into ``out_dir`` whole or not at all.

    Every file is first written to a temporary name in ``out_dir`` and only
    renamed into place when all of them were written; on any error the
    temporaries are removed and no file of this call appears.

    Returns
    -------
    list of Path
        The final paths, in the order given.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OSError(f"--out {out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    staged: list[tuple[Path, Path]] = []
    try:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=out_dir)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual file mode
            staged.append((Path(tmp), out_dir / name))
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, final in staged:
        os.replace(tmp, final)
    return [final for _, final in staged]
