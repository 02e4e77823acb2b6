"""Writing output files whole or not at all (the one atomic-write helper)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["write_files_atomic"]


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
    final = out_dir
    try:
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
        raise OSError(f"{final}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)
        raise
    return [final for _, final in staged]
