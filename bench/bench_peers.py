"""Benchmark: the peer tools of issue 22, side by side where installed in this environment.

Peers: ZigZag-IMC (``zigzag``, mapping cost model: against ``aimc map``),
CrossSim (``simulator``, Sandia's analog MVM simulator: against the tile model),
IBM aihwkit (``aihwkit``, its torch PCM inference tile: against the accuracy draw).
They are not dependencies of aimc and are never installed by ``make bench``
(aihwkit and CrossSim pull in torch); each one found is reported with its
version, each one missing as "not installed". No side-by-side timing is
implemented yet: an installed peer is reported, not timed (the ratios quoted in
issue 22 were measured by hand in a separate environment). Exit 0.

Run: ``.venv/bin/python bench/bench_peers.py`` (or ``make bench``).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util

#: (label, import name, distribution name, compared with)
PEERS = (
    ("ZigZag-IMC", "zigzag", "zigzag-dse", "aimc map (bench_map.py)"),
    ("CrossSim", "simulator", "crosssim", "tile MVM (bench_tile.py)"),
    ("aihwkit", "aihwkit", "aihwkit", "accuracy draw (bench_accuracy.py)"),
)


def main() -> int:
    for label, module, dist, against in PEERS:
        if importlib.util.find_spec(module) is None:
            print(f"{label:11s} not installed (would be compared with: {against})")
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown version"
        print(f"{label:11s} installed ({version}); side-by-side timing not implemented here -- "
              f"compare with {against} by hand")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
