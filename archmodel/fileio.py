"""Writing outputs whole or not at all: the one output-folder mechanism of aimc.

Every command that writes files (``map``, ``train``, ``accuracy``, ``drift``,
``verilog``, ``cosim --build-dir``) goes through :func:`staged_output`:

1. :func:`check_out_dir` (called after the inputs are loaded and validated,
   before the long work) refuses an ``--out`` that is a file, whose parent
   cannot be written, or that is a non-empty folder while ``force`` is false;
2. the command writes into a fresh staging folder *beside* ``--out``
   (``.<name>.aimc-stage-XXXX`` in the same parent, so the final move is a
   rename on one file system);
3. on success the staging folder is renamed to ``--out``; a pre-existing
   ``--out`` (empty, or non-empty with ``force``) is moved aside first and
   removed only after the rename, so the folder is *replaced whole*: no file of
   an earlier run remains next to the new report;
4. on any error or Ctrl-C the staging folder is removed and a pre-existing
   ``--out`` is left untouched.

:func:`write_files_atomic` writes a set of files into an existing folder whole
or not at all (used inside a staging folder and by ``make demo``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import AimcError

__all__ = ["OutputError", "check_out_dir", "staged_output", "write_files_atomic"]

_STAGE_TAG = ".aimc-stage-"


class OutputError(AimcError, OSError):
    """An output folder or file cannot be written (one line naming it)."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _refuse_dangerous(out: Path) -> None:
    # --force replaces the folder whole: never the current folder, one of its
    # ancestors or the home folder (a slip of the keyboard would delete them)
    res = out.resolve()
    cwd = Path.cwd().resolve()
    if res == Path.home().resolve() or res == cwd or res in cwd.parents:
        raise OutputError(f"--out {out}: refusing to replace the current folder, one of its parents or the "
                          "home folder; give a new folder")


def check_out_dir(path: str | os.PathLike[str] | None, *, force: bool = False, flag: str = "--out") -> Path:
    """Check that ``path`` can become an output folder, before any long work.

    Nothing is created: the parent folder must exist or be creatable (its
    nearest existing ancestor writable), ``path`` must not be a file, and an
    existing non-empty folder is accepted only with ``force``.

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    OutputError
        ``"--out DIR: not a writable folder (reason)"``, ``"--out DIR: folder is not empty (...)"``
        or an empty name.
    """
    if path is None or not str(path).strip():
        raise OutputError(f"{flag}: empty folder name; expected a folder path")
    out = Path(path)
    if out.exists() or out.is_symlink():
        if not out.is_dir():
            raise OutputError(f"{flag} {out}: not a writable folder (exists and is not a folder)")
        if any(out.iterdir()):
            if not force:
                raise OutputError(f"{flag} {out}: folder is not empty; give a new or empty folder, or --force "
                                  "to replace it whole when the run succeeds")
            _refuse_dangerous(out)
    parent = out.absolute().parent
    probe_dir = parent
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise OutputError(f"{flag} {out}: not a writable folder (Not a directory)")
    if not os.access(probe_dir, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {out}: not a writable folder (Permission denied)")
    return out


@contextlib.contextmanager
def staged_output(path: str | os.PathLike[str], *, force: bool = False, flag: str = "--out") -> Iterator[Path]:
    """Yield a fresh staging folder; move it to ``path`` when the block succeeds.

    See the module docstring for the whole contract. Call it only after every
    input was loaded and checked: the staging folder is created on entry.

    Raises
    ------
    OutputError
        :func:`check_out_dir` refuses ``path``, or the staging folder cannot be
        created or moved into place.
    """
    out = check_out_dir(path, force=force, flag=flag)
    parent = out.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}{_STAGE_TAG}", dir=parent))
        os.chmod(stage, 0o777 & ~_umask())  # mkdtemp creates 0700; give the usual folder mode
    except OSError as exc:
        raise OutputError(f"{flag} {out}: not a writable folder ({exc.strerror or exc})") from None
    old: Path | None = None
    try:
        yield stage
        if out.exists():
            # re-checked: the folder may have filled while the command ran
            if any(out.iterdir()) and not force:
                raise OutputError(f"{flag} {out}: folder is not empty (it was filled while aimc ran); "
                                  f"nothing written")
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.aimc-old-", dir=parent))
            os.replace(out, old / "x")
        try:
            os.replace(stage, out)
        except OSError as exc:
            if old is not None:  # put the old folder back
                os.replace(old / "x", out)
            raise OutputError(f"{flag} {out}: cannot move the output into place ({exc.strerror or exc})") from None
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_files_atomic(out_dir: Path, files: dict[str, bytes | str]) -> list[Path]:
    """Write several files into ``out_dir`` whole or not at all.

    Every file is first written to a temporary name in ``out_dir`` and only
    renamed into place when all of them were written; on any error the
    temporaries are removed and no file of this call appears.

    Returns
    -------
    list of Path
        The final paths, in the order given.

    Raises
    ------
    OutputError
        A file cannot be written (the message names the final file, not the temporary).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir}: exists and is not a folder")
    staged: list[tuple[Path, Path]] = []
    final = out_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            final = out_dir / name
            data = content.encode() if isinstance(content, str) else content
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=out_dir)
            staged.append((Path(tmp), final))
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual file mode
        for tmp, final in staged:
            os.replace(tmp, final)
    except OSError as exc:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        # name the file the user asked for, not the temporary
        raise OutputError(f"{final}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    return [final for _, final in staged]
