"""Benchmark: the default accuracy experiment end to end, as a ratio to the FP32 forward pass of the same images.

What runs -- exactly what ``aimc accuracy --arch fig11 --network digits-cnn --seed 0
--out DIR`` does without ``--weights`` (issue 11): 5-fold evaluation over all 1,797
digits images -- per fold, train ``digits-cnn`` in numpy with 5 % weight-noise
injection (20 epochs) on the other folds, then 10 Monte-Carlo draws of analog
inference on the ``fig11`` chip (per-layer ADC ranging, GDC from calibration
activations, read noise redrawn per block of MVMs) at 1 s, 1 h, 1 day, 1 month
and 1 year for 8 settings, plus the FP32 and int8 baselines, the ADC-usage and
GDC-bias tables, the Markdown/JSON report and the PNG plot.

Figures printed: the wall time of that run; the wall time of one FP32 forward
pass (:func:`archmodel.network.forward.forward`) of the same 1,797 images in the
same process, and their ratio; and where the time goes: one fold's training
(timed separately, times 5) against the rest (draws: 5 folds x 10 draws x 5 times
x 8 settings of the integer data path, each a full pass over the fold's test
images, plus AdaBS passes). Writes the report into ``build/bench_accuracy/``. Exit 0.

Run: ``.venv/bin/python bench/bench_accuracy.py`` (or ``make bench``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archmodel.datasets import load_digits_fold  # noqa: E402
from archmodel.digits_experiment import train_on_digits  # noqa: E402
from archmodel.network.forward import forward  # noqa: E402
from archmodel.zoo import load_network  # noqa: E402
from mapping.cli.main import main  # noqa: E402

FOLDS = 5


def run() -> int:
    out = ROOT / "build" / "bench_accuracy"
    t0 = time.perf_counter()
    rc = main(["accuracy", "--arch", "fig11", "--network", "digits-cnn", "--seed", "0", "--out", str(out), "--quiet"])
    wall = time.perf_counter() - t0
    net = load_network("digits-cnn")
    data = load_digits_fold(0, FOLDS, 0)
    t1 = time.perf_counter()
    trained, _ = train_on_digits(net, 0, 0.05, 20, None, split=data)
    train_s = time.perf_counter() - t1
    x_all = np.concatenate([data.x_train, data.x_test])
    t2 = time.perf_counter()
    forward(net, x_all, trained.params)
    fp32_s = time.perf_counter() - t2
    print(f"default accuracy experiment ({FOLDS}-fold over {len(x_all)} images, 10 draws x 8 settings x 5 times, "
          f"fig11): {wall:.1f} s wall on {os.cpu_count()} CPUs; exit status {rc}")
    print(f"FP32 forward of the same {len(x_all)} images: {fp32_s * 1e3:.1f} ms -> ratio {wall / fp32_s:,.0f}")
    print(f"where the time goes: training ~{FOLDS} x {train_s:.1f} s = {FOLDS * train_s:.1f} s "
          f"({100 * FOLDS * train_s / wall:.0f} %), analog draws and reports ~{wall - FOLDS * train_s:.1f} s")
    print(f"  report: {out / 'report.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
