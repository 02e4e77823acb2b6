"""``make demo``: the main job (placeholder until the mapper lands)."""

from __future__ import annotations

import sys

from mapping.cli import main

if __name__ == "__main__":
    status = main(["spec", "--arch", "fig11", "--no-sources"])
    if status == 0:
        status = main(["drift", "--arch", "fig11", "--seed", "0"]) if "drift" in sys.argv or True else 0
    raise SystemExit(status)
