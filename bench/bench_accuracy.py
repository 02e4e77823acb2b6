"""Benchmark: the default accuracy experiment end to end (issue 6, item 6).

What runs -- exactly what ``aimc accuracy --arch fig11 --network digits-cnn --seed 0
--out DIR`` does without ``--weights``: train ``digits-cnn`` in numpy with 5 %
weight-noise injection (20 epochs) on the scikit-learn digits split of seed 0, then
10 Monte-Carlo draws of analog inference on the ``fig11`` chip (512 × 512 PCM
arrays) at 1 s, 1 h, 1 day, 1 month and 1 year, for 8 settings (all analog /
first-and-last digital × none / GDC / per-column GDC / AdaBS), plus the FP32 and
int8 baselines, the ADC-usage table, the Markdown/JSON report and the PNG plot.

Target: under 3 minutes of wall time on 2 cores. The figure printed is the wall
time of one run and its ratio to the 180 s target (no speed baseline exists for
this experiment). Writes the report into ``build/bench_accuracy/``. Exit 0.

Run: ``.venv/bin/python bench/bench_accuracy.py`` (or ``make bench``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mapping.cli.main import main  # noqa: E402

TARGET_S = 180.0


def run() -> int:
    out = ROOT / "build" / "bench_accuracy"
    t0 = time.perf_counter()
    rc = main(["accuracy", "--arch", "fig11", "--network", "digits-cnn", "--seed", "0", "--out", str(out)])
    wall = time.perf_counter() - t0
    print(f"default accuracy experiment (train + 10 draws x 8 settings x 5 times, fig11): {wall:.1f} s wall "
          f"on {os.cpu_count()} CPUs; target {TARGET_S:.0f} s -> {wall / TARGET_S:.2f} of the target "
          f"({'met' if wall < TARGET_S else 'MISSED'}); exit status {rc}")
    print(f"  report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
