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
images, plus AdaBS passes). Writes the report into ``build/bench_accuracy/``.

One draw against its BLAS bound (issue 22), in the same process: draw 1 of fold 0
(:func:`archmodel.accuracy_experiment.evaluate_draw`, every setting and time, CPU
time, best of 3) against the bare float64 matmuls of the same shapes as every
matmul that draw executes (analog MVMs of every layer incl. GDC and AdaBS, int8
digital layers; recorded from draw 0, timed on random data, best of 3) -- and the
float32 figure of the same shapes. Target: the draw within 3x of the float64
bound. BLAS single-threaded (``OPENBLAS_NUM_THREADS=1``) so the CPU times compare. Exit 0.

Run: ``.venv/bin/python bench/bench_accuracy.py`` (or ``make bench``).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # single-threaded BLAS, before numpy loads it

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archmodel.datasets import load_digits_fold  # noqa: E402
from archmodel.digits_experiment import train_on_digits  # noqa: E402
from archmodel.network.forward import forward  # noqa: E402
from archmodel.zoo import load_network  # noqa: E402
from mapping.cli.main import main  # noqa: E402

FOLDS = 5
DRAW_TARGET = 3.0


def draw_vs_blas_bound(prep, x_test, y_test) -> tuple[float, float, float, float]:
    """(draw CPU s, float64 bound s, float32 bound s, MACs) of one draw (module docstring)."""
    from archmodel import accuracy as acc
    from archmodel.accuracy_experiment import evaluate_draw
    from archmodel.analog_matrix import AnalogMatrix

    shapes: list[tuple[int, int, int]] = []
    currents, accumulate = AnalogMatrix._currents, acc.NetworkInstance._accumulate_now

    def spy_currents(self, v, *a, **kw):
        shapes.append((v.shape[0], v.shape[1], self.shape[1]))
        return currents(self, v, *a, **kw)

    def spy_accumulate(self, k, st, x, index):
        out, p = accumulate(self, k, st, x, index)
        if self.modes[k] != "analog":
            shapes.append((out.shape[0], st.layer.matrix_shape[0], out.shape[1]))
        return out, p

    AnalogMatrix._currents, acc.NetworkInstance._accumulate_now = spy_currents, spy_accumulate
    try:
        evaluate_draw(prep, x_test, y_test, 0, 0)
    finally:
        AnalogMatrix._currents, acc.NetworkInstance._accumulate_now = currents, accumulate
    draw = []
    for _ in range(3):
        t = time.process_time()
        evaluate_draw(prep, x_test, y_test, 0, 1)
        draw.append(time.process_time() - t)
    rng = np.random.default_rng(0)
    ops = {s: (rng.standard_normal(s[:2]), rng.standard_normal(s[1:])) for s in set(shapes)}

    def bound(dtype) -> float:
        mats = {s: (a.astype(dtype), b.astype(dtype)) for s, (a, b) in ops.items()}
        best = []
        for _ in range(3):
            t = time.process_time()
            for s in shapes:
                a, b = mats[s]
                a @ b
            best.append(time.process_time() - t)
        return min(best)

    return min(draw), bound(np.float64), bound(np.float32), float(sum(b * k * n for b, k, n in shapes))


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
    from archmodel.accuracy import AccuracyOptions, prepare
    from archmodel.spec import load_spec

    prep = prepare(load_spec("fig11"), net, trained.params, data.x_train, AccuracyOptions(),
                   train_index=data.train_index)
    draw, b64, b32, macs = draw_vs_blas_bound(prep, data.x_test, data.y_test)
    print(f"one draw (fold 0, {len(data.y_test)} test images, 8 settings x 5 times): {draw:.3f} s CPU; BLAS bound of "
          f"its {macs / 1e9:.2f} G MACs (same matmul shapes): float64 {b64:.3f} s -> {draw / b64:.2f}x, "
          f"float32 {b32:.3f} s -> {draw / b32:.2f}x; target <= {DRAW_TARGET}x of float64: "
          f"{'met' if draw / b64 <= DRAW_TARGET else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run())
