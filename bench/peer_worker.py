"""Peer-side half of bench/bench_peers.py: runs INSIDE the peers' own environment (not aimc's).

Imports no aimc module. One JSON object on the last stdout line: CPU seconds per call of each peer
operation (process time, single-threaded BLAS/torch), or {"error": "..."} for a peer that failed.

Usage: ``PEER_PYTHON bench/peer_worker.py zigzag ONNX LPF_LIMIT`` |
``... crosssim BATCH [BATCH ...]`` | ``... aihwkit BATCH [BATCH ...]``.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

K = N = 512  # the fig11 tile: 512 x 512
REPEAT_S = 0.3


def _per_call(fn, min_s: float = REPEAT_S) -> float:
    """Best of 3 repeats of CPU seconds per call."""
    fn()
    t = time.process_time()
    fn()
    one = max(time.process_time() - t, 1e-6)
    n = max(1, int(min_s / one))
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        for _ in range(n):
            fn()
        best = min(best, (time.process_time() - t) / n)
    return best


def zigzag(onnx_path: str, lpf_limit: int) -> dict:
    import logging
    import tempfile

    logging.disable(logging.CRITICAL)
    t0 = time.process_time()
    import onnx
    import zigzag as zz
    from zigzag.api import get_hardware_performance_zigzag

    t1 = time.process_time()
    base = os.path.join(os.path.dirname(zz.__file__), "inputs")
    with tempfile.TemporaryDirectory() as dump:
        # ZigZag needs the value types of every tensor: a shape-inferred copy (onnx's light models have none)
        inferred = os.path.join(dump, "inferred.onnx")
        onnx.save(onnx.shape_inference.infer_shapes(onnx.load(onnx_path, load_external_data=False)), inferred)
        energy, latency, *_ = get_hardware_performance_zigzag(
            workload=inferred, accelerator=os.path.join(base, "hardware", "aimc.yaml"),
            mapping=os.path.join(base, "mapping", "default_imc.yaml"), opt="EDP", dump_folder=dump,
            in_memory_compute=True, loma_show_progress_bar=False, lpf_limit=lpf_limit)
    t2 = time.process_time()
    return {"import_s": t1 - t0, "run_s": t2 - t1, "energy_pj": float(energy), "latency_cycles": float(latency)}


def crosssim(batches: list[int]) -> dict:
    import numpy as np
    from simulator import AnalogCore, CrossSimParameters

    rng = np.random.default_rng(0)
    w = rng.uniform(-1, 1, (N, K))  # CrossSim's convention: matrix (rows = outputs) @ vector
    params = CrossSimParameters()
    params.core.rows_max, params.core.cols_max = K, N
    params.xbar.device.read_noise.enable = True  # conductance (read) noise per MVM
    params.xbar.device.read_noise.model = "IdealDevice"
    params.xbar.device.read_noise.magnitude = 0.01
    params.xbar.adc.mvm.model = "QuantizerADC"
    params.xbar.adc.mvm.bits = 8
    params.xbar.adc.mvm.calibrated_range = [-K / 8, K / 8]  # a fixed full scale (as aimc's fixed ADC range)
    params.xbar.dac.mvm.model = "QuantizerDAC"
    params.xbar.dac.mvm.bits = 8
    params.xbar.dac.mvm.input_bitslicing = False
    core = AnalogCore(w, params)
    out = {"version": _version("CrossSim")}
    for b in batches:
        x = rng.uniform(-1, 1, (K, b)) if b > 1 else rng.uniform(-1, 1, K)
        fn = (lambda x=x: core.matvec(x)) if b == 1 else (lambda x=x: core.matmat(x))
        out[f"mvm_s_b{b}"] = _per_call(fn) / b
    return out


def aihwkit(batches: list[int]) -> dict:
    import torch

    torch.set_num_threads(1)
    from aihwkit.inference import PCMLikeNoiseModel
    from aihwkit.nn import AnalogLinear
    try:  # the pure-torch inference tile (no C++ RPU extension: that needs the torch it was built against)
        from aihwkit.simulator.configs import TorchInferenceRPUConfig as InferenceRPUConfig
    except ImportError:
        from aihwkit.simulator.configs import InferenceRPUConfig

    cfg = InferenceRPUConfig()
    cfg.noise_model = PCMLikeNoiseModel(g_max=25.0)
    cfg.forward.inp_res = 1 / 127  # 8-bit DAC
    cfg.forward.out_res = 1 / 127  # 8-bit ADC
    layer = AnalogLinear(K, N, bias=False, rpu_config=cfg)
    layer.eval()
    layer.program_analog_weights()
    layer.drift_analog_weights(3600.0)  # PCM programming noise, drift and read noise at 1 h
    out = {"version": _version("aihwkit"), "torch": torch.__version__}
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for b in batches:
            x = torch.rand((b, K), generator=g) * 2 - 1
            out[f"mvm_s_b{b}"] = _per_call(lambda x=x: layer(x)) / b
    return out


def _version(dist: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def main(argv: list[str]) -> int:
    what = argv[0]
    try:
        if what == "zigzag":
            res = zigzag(argv[1], int(argv[2]))
        elif what == "crosssim":
            res = crosssim([int(b) for b in argv[1:]])
        elif what == "aihwkit":
            res = aihwkit([int(b) for b in argv[1:]])
        else:
            res = {"error": f"unknown peer {what!r}"}
    except Exception as exc:  # report, never crash the benchmark
        res = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
