"""Benchmark: co-simulation of the ResNet-32 layer on Verilator and Icarus, cold and warm build cache.

Layer: ResNet-32 of Joshi et al. 2020 (zoo ``resnet32-joshi2020``), layer 1
(``s1b1_conv1``: 3x3 convolution, 16 -> 16 channels, 32x32 input), on the
``fig11`` chip description (512 x 512 arrays, 64 rows / columns per array-port
beat, 1 GHz): K = 144 rows, 1,024 MVMs of 154 cycles, 16,384 int8 outputs,
every one compared with the golden model (:func:`tb.cosim.cosim_layer`,
seed 0, drift time 0 s).

Each configuration runs in a fresh process (``--repo DIR`` times another
checkout, e.g. a ``git worktree`` of the base commit, for before -> after).
Figures: CPU time of the whole task (that process and every child it waited
for: Verilog export, Verilator/C++ or Icarus build, simulator), split into the
Python process itself (imports, mapping, Verilog export, job file) and its
children (build and simulator; on a warm cache the simulator alone: the floor
of the task, cocotb and the testbench included), and wall times (cocotb's own
test time is the simulation's wall time); ratios to the floor. ``cold`` uses an empty build cache
(``AIMC_CACHE``, :mod:`tb.runner`), ``warm`` the cache the cold run filled.
Target (issue 22): the layer on Verilator <= 10 s CPU on a warm cache.
Not measured: raw Verilator without cocotb (needs a C++ driver of the tile).

Run: ``.venv/bin/python bench/bench_cosim.py`` (or ``make bench``). Exit 0
(the target is reported, not enforced; a mismatch exits 1).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARCH, NETWORK, LAYER, SEED = "fig11", "resnet32-joshi2020", 1, 0
TARGET_CPU_S = 10.0
REPO = Path(__file__).resolve().parent.parent

CHILD = """
import json, resource, sys
from archmodel.spec import load_spec
from archmodel.zoo import load_network
from mapping.mapper import MapOptions, map_network
from tb.cosim import cosim_layer
arch, net, layer, seed, sim, build = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6]
placement = map_network(load_spec(arch), load_network(net), MapOptions(replicate=False)).placement()
rep = cosim_layer(arch, net, layer, placement=placement, seed=seed, t_inf_s=0.0, sim=sim, build_dir=build)
print("RESULT " + json.dumps({k: getattr(rep, k) for k in ("match", "layer_name", "shape", "mvms", "outputs_compared",
      "simulated_cycles", "predicted_cycles", "total_cycles", "wall_s", "sim_wall_s")}
      | {"self_cpu_s": sum(resource.getrusage(resource.RUSAGE_SELF)[:2]),
         "children_cpu_s": sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])}))
"""


def run_one(repo: Path, sim: str, cache: str) -> dict:
    """One co-simulation in a fresh process; its report fields plus ``cpu_s`` and ``proc_wall_s``."""
    env = {**os.environ, "PYTHONPATH": str(repo), "AIMC_CACHE": cache}
    with tempfile.TemporaryDirectory(prefix=f"aimc-bench-cosim-{sim}-") as tmp:
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, ARCH, NETWORK, str(LAYER), str(SEED), sim, tmp],
                             cwd=repo, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
    if out.returncode or not line:
        raise SystemExit(f"co-simulation failed ({sim}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    rep = json.loads(line[-1][len("RESULT "):])
    rep["cpu_s"] = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    rep["proc_wall_s"] = wall
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout to time (default: this one)")
    ap.add_argument("--sims", default="verilator,icarus")
    ap.add_argument("--cache", default=None, help="build cache folder to use (default: a fresh one, removed after)")
    a = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="aimc-bench-cache-") as tmp_cache:
        cache = a.cache or tmp_cache
        for sim in a.sims.split(","):
            for state in ("cold", "warm"):
                rep = run_one(a.repo.resolve(), sim, cache)
                if not rep["match"]:
                    print(json.dumps(rep), file=sys.stderr)
                    return 1
                rows.append((sim, state, rep))
    v = rows[0][2]
    print(f"co-simulation of {NETWORK} layer {LAYER} ({v['layer_name']}, {v['shape']}) on '{ARCH}', seed {SEED}, "
          f"checkout {a.repo}: {v['mvms']} MVMs, {v['outputs_compared']} outputs compared, MATCH everywhere; "
          f"simulated cycles {v['simulated_cycles']} (mapper {v['predicted_cycles']})")
    print()
    floor = {s: r["children_cpu_s"] for s, st, r in rows if st == "warm"}
    print("| simulator | build cache | CPU s | of which Python process | of which build + simulator | "
          "CPU / floor | wall s | simulation wall s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for sim, state, rep in rows:
        fl = floor.get(sim, float("nan"))
        print(f"| {sim} | {state} | {rep['cpu_s']:.1f} | {rep['self_cpu_s']:.1f} | {rep['children_cpu_s']:.1f} | "
              f"{rep['cpu_s'] / fl:.2f}x | {rep['proc_wall_s']:.1f} | {rep['sim_wall_s']:.1f} |")
    print("floor: the simulator process alone on a warm cache (children CPU of the warm run)")
    warm = [r for s, st, r in rows if s == "verilator" and st == "warm"]
    if warm:
        c = warm[0]["cpu_s"]
        print(f"\ntarget: the layer on Verilator <= {TARGET_CPU_S:.0f} s CPU on a warm cache: {c:.1f} s, "
              f"{'met' if c <= TARGET_CPU_S else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
