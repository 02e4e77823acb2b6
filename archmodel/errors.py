"""The one base class of user-facing errors.

Every error that reports bad input (a chip description, a layer list, an ONNX
file, a weights file, command-line arguments) derives from :class:`AimcError`.
The command line prints an ``AimcError`` as one or two lines and exits non-zero;
any other exception is a bug and is reported as one (``AIMC_DEBUG=1`` shows the
traceback).
"""

from __future__ import annotations

__all__ = ["AimcError"]


class AimcError(Exception):
    """Bad input, reported to the user as a short message (no traceback)."""
