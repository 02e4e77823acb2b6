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
Raw Verilator floor (issue 22): the same tile Verilog (``rtl.export.write_verilog``,
``cosim_tile``) Verilated with the same lint waivers into a plain C++ executable
(``verilator --cc --exe --build -O3``) whose ``main`` clocks it for the cycles the
co-simulation simulated, with every handshake held ready/valid, start pulsed each
cycle and random 513-bit payloads redrawn every cycle: the Verilated model's own
evaluation cost for that many cycles, without cocotb, the VPI, the testbench or
the golden model (an approximation of the real stimulus: the job configuration
and the beat protocol are not replayed). Its build CPU is printed separately.

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


RAW_MAIN = r"""
#include "Vcosim_tile.h"
#include "verilated.h"
#include <cstdio>
#include <cstdlib>
#include <cstdint>
int main(int argc, char** argv) {
    Verilated::commandArgs(argc, argv);
    long cycles = std::atol(argv[1]);
    Vcosim_tile* t = new Vcosim_tile;
    uint64_t x = 88172645463325252ull, acc = 0;
    t->k_rows = 144; t->n_cols = 16; t->n_row_blocks = 1; t->n_col_blocks = 1;
    t->dac___05Fready = 1; t->psum_out___05Fready = 1; t->out___05Fready = 1;
    t->rst = 1; t->clk = 0; t->eval(); t->clk = 1; t->eval(); t->rst = 0;
    for (long c = 0; c < cycles; ++c) {
        for (int w = 0; w < 17; ++w) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            t->act___05Fpayload[w] = (uint32_t)x; t->adc___05Fpayload[w] = (uint32_t)(x >> 32);
        }
        t->act___05Fvalid = 1; t->adc___05Fvalid = 1; t->start = (c % 200) == 0;
        t->clk = 0; t->eval(); t->clk = 1; t->eval();
        acc += t->out___05Fvalid + t->busy;
    }
    std::printf("%llu\n", (unsigned long long)acc);
    t->final(); delete t; return 0;
}
"""


def raw_verilator(repo: Path, cycles: int) -> tuple[float, float] | None:
    """(build CPU s, run CPU s) of the raw Verilated tile clocked ``cycles`` times; None without Verilator."""
    code = ("import sys; from archmodel.spec import load_spec; from rtl.export import write_verilog; "
            "from rtl.params import TileParams; from rtl.tile import Tile; s = load_spec(sys.argv[1]); "
            "print(write_verilog(Tile(TileParams.from_spec(s)), 'cosim_tile', sys.argv[2], s))")
    env = {**os.environ, "PYTHONPATH": str(repo)}
    try:
        from rtl.export import LINT_WAIVERS
        from rtl.toolchain import verilator_bin_dir
        vbin = verilator_bin_dir()
    except ImportError:
        return None
    if not vbin:
        return None
    env["PATH"] = f"{vbin}{os.pathsep}{env.get('PATH', '')}"
    with tempfile.TemporaryDirectory(prefix="aimc-bench-rawv-") as tmp:
        src = subprocess.run([sys.executable, "-c", code, ARCH, tmp], cwd=repo, env=env, check=True,
                             capture_output=True, text=True).stdout.strip()
        (Path(tmp) / "main.cpp").write_text(RAW_MAIN)
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        built = subprocess.run(["verilator", "--cc", "--exe", "--build", "-O3", "-j", "2", "--top-module", "cosim_tile",
                        "-Wno-fatal", *[f"-Wno-{w}" for w in LINT_WAIVERS], "--Mdir", f"{tmp}/obj", src,
                        f"{tmp}/main.cpp"], cwd=tmp, env=env, capture_output=True, text=True)
        if built.returncode:
            raise SystemExit(f"raw Verilator build failed:\n{built.stdout[-1500:]}\n{built.stderr[-1500:]}")
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run([f"{tmp}/obj/Vcosim_tile", str(int(cycles))], cwd=tmp, check=True, capture_output=True)
        r2 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = lambda a, b: (b.ru_utime - a.ru_utime) + (b.ru_stime - a.ru_stime)  # noqa: E731
    return cpu(r0, r1), cpu(r1, r2)


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
        cycles = int(warm[0].get("total_cycles") or warm[0]["mvms"] * warm[0]["simulated_cycles"])
        raw = raw_verilator(a.repo.resolve(), cycles)
        if raw is None:
            print("raw Verilator floor: Verilator not installed")
        else:
            b, r = raw
            print(f"raw Verilator floor (same tile Verilated without cocotb, C++ main, {cycles} "
                  f"cycles, free-running stimulus): run {r:.2f} s CPU (build {b:.1f} s, not counted); "
                  f"warm co-simulation CPU / raw run = {warm[0]['cpu_s'] / max(r, 1e-9):.1f}x, "
                  f"its simulator process / raw run = {warm[0]['children_cpu_s'] / max(r, 1e-9):.1f}x")
        c = warm[0]["cpu_s"]
        print(f"\ntarget: the layer on Verilator <= {TARGET_CPU_S:.0f} s CPU on a warm cache: {c:.1f} s, "
              f"{'met' if c <= TARGET_CPU_S else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
