"""Benchmark: aimc side by side with its peers (issue 22), where they are installed.

Peers (never dependencies of aimc, never installed by ``make bench``; they pull in
torch and pandas): ZigZag-IMC (``zigzag-dse``: an analytical cost model that
searches temporal mappings, against ``aimc map``'s analytical placement), CrossSim
(Sandia, ``simulator``: an analog MVM simulator) and IBM aihwkit (its pure-torch
PCM inference tile), both against the aimc tile MVM. They live in their own
environment, named by ``AIMC_PEER_PYTHON`` (default ``.benchvenv/bin/python`` in the
checkout); ``bench/peer_worker.py`` runs there (it imports no aimc module) and
reports CPU seconds as JSON. Installing them: docs/design.md, "Benchmarks and peers".

Figures (CPU time, single-threaded BLAS/torch, each peer in its own process, ours
in this one, all in the same run):

* mapping: ZigZag-IMC's ``get_hardware_performance_zigzag(..., in_memory_compute=True)``
  on its bundled IMC accelerator (``inputs/hardware/aimc.yaml``, ``default_imc.yaml``
  mapping, EDP, ``lpf_limit`` = ``--zigzag-lpf``, default 2: its default 6 costs
  ~4 CPU min for ResNet-18 alone) against aimc's ``import_onnx`` + ``map_network``
  on ``fig11`` of the same ONNX file (ZigZag's ``resnet18.onnx``; onnx's
  ``light_resnet50.onnx`` with ``--resnet50``). Different outputs (ZigZag: energy
  and latency of its searched mappings; aimc: placement, cycles and energy of its
  analytical mapping): the ratio is of the time to an answer for the same network.
  (ZigZag 3.9's parser refuses ``light_resnet50.onnx``: "No more than 2 layer
  predecessors expected"; that row then reads "failed".)
* tile MVM, 512 x 512, 8-bit DAC/ADC, PCM noise (programming, drift, read noise at
  1 h): aimc ``AnalogMatrix.mvm_adc_codes`` (fig11) against CrossSim
  ``AnalogCore.matvec``/``matmat`` (8-bit quantizer DAC/ADC, read noise) and
  aihwkit ``AnalogLinear`` with ``TorchInferenceRPUConfig`` (PCM-like noise model,
  8-bit input/output resolution), CPU seconds per MVM at batch 1 and 1024; ratio =
  peer / aimc (> 1: aimc faster).

Run: ``.venv/bin/python bench/bench_peers.py [--resnet50] [--zigzag-lpf N]`` (or ``make bench``). Exit 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # single-threaded BLAS, before numpy loads it

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_worker import _per_call  # noqa: E402  (one timing rule for aimc and the peers)

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "bench" / "peer_worker.py"
BATCHES = (1, 1024)


def peer_python() -> str | None:
    """The peers' interpreter: ``$AIMC_PEER_PYTHON`` or ``.benchvenv/bin/python``; None when absent."""
    cand = os.environ.get("AIMC_PEER_PYTHON") or str(ROOT / ".benchvenv" / "bin" / "python")
    return cand if Path(cand).is_file() and os.access(cand, os.X_OK) else None


def run_peer(py: str, *args: str, timeout: float = 3600.0) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)  # the peers' environment only
    try:
        p = subprocess.run([py, str(WORKER), *args], capture_output=True, text=True, timeout=timeout, env=env,
                           cwd=str(ROOT / "build") if (ROOT / "build").is_dir() else None)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return {"error": f"exit {p.returncode}: {(p.stderr.strip().splitlines() or ['no output'])[-1]}"}
    return json.loads(lines[-1])


def ours_tile() -> dict:
    from archmodel.analog_matrix import AnalogMatrix
    from archmodel.spec import load_spec

    spec = load_spec("fig11")
    k, n = spec.array.rows, spec.array.cols
    rng = np.random.default_rng(0)
    m = AnalogMatrix(spec, noise_seed=0).program(rng.standard_normal((k, n)), np.random.default_rng(0))
    m.drift(3600.0, np.random.default_rng(1))
    out = {}
    for b in BATCHES:
        d = rng.integers(-128, 128, size=(b, k))
        out[f"mvm_s_b{b}"] = _per_call(lambda d=d: m.mvm_adc_codes(d)) / b
    return out


def ours_map(onnx_path: Path) -> float:
    """CPU seconds of import_onnx (shapes only, as `aimc map` reads it) + map_network on fig11 (best of 3)."""
    from archmodel.onnx_import import import_onnx
    from archmodel.spec import load_spec
    from mapping.mapper import map_network

    spec = load_spec("fig11")
    return _per_call(lambda: map_network(spec, import_onnx(str(onnx_path), shapes_only=True)), min_s=0.2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resnet50", action="store_true", help="also map onnx's light ResNet-50 with ZigZag (minutes)")
    ap.add_argument("--zigzag-lpf", type=int, default=2, help="ZigZag's lpf_limit (its default is 6; slow)")
    args = ap.parse_args(argv)
    py = peer_python()
    if py is None:
        print("peers: no peer environment (set AIMC_PEER_PYTHON or create .benchvenv; docs/design.md, "
              "'Benchmarks and peers'): ZigZag-IMC, CrossSim, aihwkit not installed")
        return 0
    print(f"peers' interpreter: {py}")
    # ---- tile MVM
    ours = ours_tile()
    print()
    print("| tile MVM 512x512, CPU s per MVM | batch | aimc | peer | peer / aimc |")
    print("|---|---|---|---|---|")
    for label, peer in (("CrossSim AnalogCore", "crosssim"), ("aihwkit torch inference tile", "aihwkit")):
        res = run_peer(py, peer, *map(str, BATCHES))
        if "error" in res:
            print(f"| {label} | - | - | {res['error'][:80]} | not installed or failed |")
            continue
        for b in BATCHES:
            a, p = ours[f"mvm_s_b{b}"], res[f"mvm_s_b{b}"]
            print(f"| {label} {res.get('version', '')} | {b} | {a * 1e6:.1f} µs | {p * 1e6:.1f} µs | {p / a:.1f}x |")
    # ---- mapping
    import importlib.util

    zz_dir = None
    probe = subprocess.run([py, "-c", "import importlib.util,os;s=importlib.util.find_spec('zigzag');"
                            "print(os.path.dirname(s.origin) if s else '')"], capture_output=True, text=True)
    zz_dir = probe.stdout.strip()
    print()
    if not zz_dir:
        print("ZigZag-IMC not installed")
        return 0
    nets = [("ResNet-18 (ZigZag's resnet18.onnx)", Path(zz_dir) / "inputs" / "workload" / "resnet18.onnx")]
    if args.resnet50:
        onnx_spec = importlib.util.find_spec("onnx")
        nets.append(("ResNet-50 (onnx light_resnet50.onnx)", Path(onnx_spec.origin).parent / "backend" / "test"
                     / "data" / "light" / "light_resnet50.onnx"))
    print(f"| mapping, CPU s | aimc import+map (fig11) | ZigZag-IMC (aimc.yaml, lpf_limit={args.zigzag_lpf}) "
          "| ZigZag / aimc |")
    print("|---|---|---|---|")
    for label, path in nets:
        a = ours_map(path)
        res = run_peer(py, "zigzag", str(path), str(args.zigzag_lpf))
        if "error" in res:
            print(f"| {label} | {a * 1e3:.1f} ms | {res['error'][:80]} | failed |")
            continue
        print(f"| {label} | {a * 1e3:.1f} ms | {res['run_s']:.1f} s (+{res['import_s']:.1f} s import) "
              f"| {res['run_s'] / a:,.0f}x |")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
