"""``python -m mapping.cli``: run the ``aimc`` command line."""

from __future__ import annotations

from mapping.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
