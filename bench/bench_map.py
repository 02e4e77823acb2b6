"""Benchmark: import + map + report of the ONNX ResNet-50, and the mapping alone.

Figures (median of several runs, wall time) and ratios to the baseline measured
in the same run on the same file: ``onnx.load`` + ``onnx.shape_inference.infer_shapes``.
Targets (issue 3): mapping alone under 100 ms, the whole command under 3 s.
Issue 10: import + map of the largest of the nine onnx light networks (by file size,
DenseNet-121) as a ratio to onnx.load + shape inference of the same file.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnx

from archmodel.onnx_import import import_onnx
from archmodel.spec import load_spec
from mapping.cli.main import main
from mapping.mapper import map_network

MODEL = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"


def _median(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def run() -> int:
    spec = load_spec("fig11")
    baseline = _median(lambda: onnx.shape_inference.infer_shapes(onnx.load(str(MODEL))), 7)
    net = import_onnx(MODEL)
    map_only = _median(lambda: map_network(spec, net), 15)
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(100))

        def whole() -> None:
            out = Path(tmp) / f"r{next(counter)}"
            status = main(["map", "--arch", "fig11", "--network", str(MODEL), "--out", str(out), "--quiet"])
            assert status == 0

        whole()  # warm-up: imports matplotlib once
        command = _median(whole, 5)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "mapping.cli", "map", "--arch", "fig11", "--network", str(MODEL),
                        "--out", str(Path(tmp) / "cold"), "--quiet"], check=True)
        cold = time.perf_counter() - t0
    print(f"baseline onnx.load + infer_shapes (light_resnet50.onnx): {baseline * 1e3:8.2f} ms")
    print(f"map_network alone (fig11, imported ResNet-50):       {map_only * 1e3:8.2f} ms  "
          f"ratio {map_only / baseline:6.2f}x baseline  (target < 100 ms)")
    print(f"aimc map: import + map + report (incl. PNGs):        {command * 1e3:8.2f} ms  "
          f"ratio {command / baseline:6.2f}x baseline  (target < 3000 ms)")
    print(f"aimc map in a fresh process (interpreter start included): {cold * 1e3:8.2f} ms  "
          f"ratio {cold / baseline:6.2f}x baseline  (target < 3000 ms)")
    light = MODEL.parent
    largest = max(light.glob("light_*.onnx"), key=lambda p: p.stat().st_size)
    base_l = _median(lambda: onnx.shape_inference.infer_shapes(onnx.load(str(largest))), 5)
    both = _median(lambda: map_network(spec, import_onnx(largest)), 5)
    print(f"largest light network {largest.name}: onnx.load + infer_shapes {base_l * 1e3:8.2f} ms, "
          f"import + map {both * 1e3:8.2f} ms, ratio {both / base_l:6.2f}x")
    ok = map_only < 0.1 and cold < 3.0
    print("targets met" if ok else "targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(run())
