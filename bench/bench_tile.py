"""Benchmark: throughput of one 512 x 512 PCM tile MVM (DAC codes -> ADC codes).

Chip description ``fig11`` (512 x 512 arrays, 8-bit DAC and ADC, 2 devices
per weight). The matrix is programmed with the full Joshi 2020 device model
(programming noise, drift, 1/f read noise: conductance noise) and read at
1 h; each MVM goes through the whole data path of
:meth:`archmodel.analog_matrix.AnalogMatrix.mvm_adc_codes` (range check of the DAC
codes, exact float64 integration, ADC rounding and saturation). A second case
switches on per-MVM output noise (``array.output_noise_fraction = 0.02``),
drawn from one generator per (seed, array, MVM index). A third case times the
float API :meth:`archmodel.analog_matrix.AnalogMatrix.matmul` (real inputs ->
int8 with the per-call scale max|x|/127 -> the same data path -> real outputs)
against the same floor.

Baseline, measured in the same run on the same data: a bare numpy matmul of
the same shape and dtype, ``(B, 512) float64 @ (512, 512) float64``. Each
figure is the best of several interleaved repeats of CPU time (process time,
single-threaded BLAS: robust against a busy machine). Targets: model / numpy
>= 0.5 at batch 1024 without output noise (issue 2, item 8); >= 0.8 at batch 1
on the codes path (issue 22, item 4: the one-vector use, e.g. the co-simulation
bridge). Consecutive MVM indices, as a one-vector user issues them (output-noise
blocks of 64 MVMs are drawn once and reused).

Run: ``.venv/bin/python bench/bench_tile.py`` (or ``make bench``). Exit 0.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # single-threaded BLAS, before numpy loads it

import numpy as np  # noqa: E402

from archmodel.analog_matrix import AnalogMatrix  # noqa: E402
from archmodel.spec import load_spec  # noqa: E402

BATCHES = (1, 64, 1024)
REPEATS = 7
#: Wall time aimed at by one timed repeat, in s.
REPEAT_S = 0.15
TARGET_RATIO_AT_1024 = 0.5
TARGET_RATIO_AT_1 = 0.8
SEED = 0


def _best_per_call_s(fn: Callable[[], object], n_calls: int) -> float:
    t0 = time.process_time()
    for _ in range(n_calls):
        fn()
    return (time.process_time() - t0) / n_calls


def _measure(model: Callable[[], object], base: Callable[[], object]) -> tuple[float, float]:
    """Best seconds per call of ``model`` and ``base``, interleaved repeats."""
    model()
    base()  # warm-up (allocations, BLAS threads)
    t_one = max(_best_per_call_s(model, 1), 1e-6)
    n_calls = max(1, int(REPEAT_S / t_one))
    t_model, t_base = [], []
    for _ in range(REPEATS):
        t_model.append(_best_per_call_s(model, n_calls))
        t_base.append(_best_per_call_s(base, n_calls))
    return min(t_model), min(t_base)


def main() -> int:
    spec = load_spec("fig11")
    k, n = spec.array.rows, spec.array.cols
    rng = np.random.default_rng(SEED)
    w = rng.standard_normal((k, n))
    cases = []
    for label, s in (
        ("quantization + conductance noise", spec),
        ("... + output noise 2% of I_fs", spec.replace(**{"array.output_noise_fraction": 0.02})),
    ):
        m = AnalogMatrix(s, noise_seed=SEED).program(w, np.random.default_rng(SEED))
        m.drift(3600.0, np.random.default_rng(SEED + 1))
        cases.append((label, m))

    g = np.ascontiguousarray(cases[0][1]._g_eff)  # same shape and dtype as the model's operand
    rows = []
    for label, m in cases:
        for b in BATCHES:
            d = rng.integers(-128, 128, size=(b, k))
            a = d.astype(np.float64)
            codes = m.mvm_adc_codes(d)
            assert codes.shape == (1, b, n) and codes.dtype == np.int64
            counter = iter(range(0, 1 << 62, b))
            t_model, t_base = _measure(lambda m=m, d=d, c=counter: m.mvm_adc_codes(d, next(c)), lambda a=a: a @ g)
            rows.append((label, b, b / t_model, b / t_base, t_base / t_model))

    # the float API (AnalogMatrix.matmul: real inputs -> int8 -> DAC -> arrays -> ADC -> real outputs), same floor
    m = cases[0][1]
    for b in (1, 1024):
        xf = rng.standard_normal((b, k))
        a = rng.integers(-128, 128, size=(b, k)).astype(np.float64)
        assert m.matmul(xf).shape == (b, n)
        counter = iter(range(0, 1 << 62, b))
        t_model, t_base = _measure(lambda xf=xf, c=counter: m.matmul(xf, None, next(c)), lambda a=a: a @ g)
        rows.append(("float API matmul (x float64 -> y)", b, b / t_model, b / t_base, t_base / t_model))

    print(f"512 x 512 tile MVM on '{spec.name}' ({spec.array.dac_bits}-bit DAC -> "
          f"{spec.array.adc_bits}-bit ADC), baseline numpy (B,{k}) float64 @ ({k},{n}) float64, "
          f"best of {REPEATS} interleaved repeats")
    print()
    head = f"| {'case':<34} | {'batch':>5} | {'model MVM/s':>12} | {'numpy MVM/s':>12} | {'ratio':>6} |"
    print(head)
    print("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for label, b, r_model, r_base, ratio in rows:
        print(f"| {label:<34} | {b:>5} | {r_model:>12,.0f} | {r_base:>12,.0f} | {ratio:>5.2f}x |")
    main_1024 = next(r for r in rows if r[0] == cases[0][0] and r[1] == 1024)[4]
    verdict = "met" if main_1024 >= TARGET_RATIO_AT_1024 else "MISSED"
    print()
    print(f"target: ratio >= {TARGET_RATIO_AT_1024} at batch 1024 without output noise: "
          f"{main_1024:.2f}x ({verdict})")
    main_1 = next(r for r in rows if r[0] == cases[0][0] and r[1] == 1)[4]
    print(f"target: ratio >= {TARGET_RATIO_AT_1} at batch 1 without output noise (codes path): "
          f"{main_1:.2f}x ({'met' if main_1 >= TARGET_RATIO_AT_1 else 'MISSED'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
