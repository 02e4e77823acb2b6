"""Benchmark: the whole-network co-simulation (digits-mlp on tiny) on Verilator vs Icarus.

What runs: :func:`tb.network_env.cosim_network` -- the mapper's placement of
``digits-mlp`` on ``tiny`` compiled to AXI4-Lite writes (and its digital weights to an AXI4-Stream packet), ``N`` digits images in
over AXI4-Stream, class scores out, every layer compared bit for bit, ready low
on ~30 % of cycles at ``m_axis`` and every array port (the test
``test_digits_network``). Each simulator runs once on a warm build cache
(a first run fills it; its time is reported as the build).

Figures per simulator: wall time of the co-simulation run (configuration +
images, from :meth:`tb.top_env.TopTestbench.run`), split into the
AXI4-Lite configuration and the images; images per second and simulated
cycles per second of the image phase; and, from a second run with cProfile
on inside the simulator process (``AIMC_PROFILE``; not the timed run), where
the Python time goes: own time
of functions in cocotbext-axi, cocotb, the testbench (``tb/``), numpy and
archmodel, the rest; the simulator's own (C / C++) time is what cProfile
does not see: wall minus profiled Python.

Run: ``.venv/bin/python bench/bench_network_cosim.py [--images N]`` (or ``make bench``).
"""

from __future__ import annotations

import argparse
import pstats
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GROUPS = (("cocotbext-axi", "cocotbext/axi"), ("cocotb", "/cocotb/"), ("testbench (tb/)", "/tb/"),
          ("numpy", "/numpy/"), ("archmodel", "/archmodel/"))


def profile_shares(path: Path) -> dict[str, float]:
    """Own (tottime) seconds of the profiled functions, grouped by package."""
    st = pstats.Stats(str(path))
    out = {g: 0.0 for g, _ in GROUPS} | {"other Python": 0.0}
    for (file, _line, _fn), (_cc, _nc, tt, _ct, _callers) in st.stats.items():
        for g, key in GROUPS:
            if key in file.replace("\\", "/"):
                out[g] += tt
                break
        else:
            out["other Python"] += tt
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=8)
    args = ap.parse_args()
    from archmodel.spec import load_spec
    from archmodel.zoo import load_network
    from mapping.mapper import MapOptions, map_network
    from tb.network_env import cosim_network

    placement = map_network(load_spec("tiny"), load_network("digits-mlp"), MapOptions(replicate=False)).placement()
    rows = []
    for sim in ("verilator", "icarus"):
        with tempfile.TemporaryDirectory(prefix=f"aimc-bench-{sim}-") as tmp:
            prof = Path(tmp) / "profile.pstats"
            t0 = time.perf_counter()
            d = cosim_network("tiny", placement, images=args.images, seed=1, sim=sim, build_dir=Path(tmp) / "b")
            total = time.perf_counter() - t0
            if not d["passed"] or d["mismatches"]:
                print(f"{sim}: co-simulation failed: {d['message']}")
                return 1
            # a second, profiled run for the shares (cProfile slows the Python side: not timed)
            dp = cosim_network("tiny", placement, images=args.images, seed=1, sim=sim, build_dir=Path(tmp) / "p",
                               profile=prof)
            shares = profile_shares(prof) if prof.exists() else {}
            d["profiled_wall_s"] = dp["run_wall_s"]
        rows.append((sim, d, total, shares))
    n = args.images
    print(f"digits-mlp on tiny, {n} images, seed 1 (warm build cache; times in s)")
    print(f"{'simulator':10s} {'task':>7s} {'config':>7s} {'images':>7s} {'images/s':>9s} {'cycles/s':>9s}  "
          "(config: AXI4-Lite writes; images: from the first input to the last score)")
    for sim, d, total, _ in rows:
        run = d["run_wall_s"] - d["config_wall_s"]
        print(f"{sim:10s} {total:7.1f} {d['config_wall_s']:7.1f} {run:7.1f} {n / run:9.2f} {d['cycles'] / run:9.0f}"
              f"  ({d['writes']} writes / {d['config_cycles']} cycles; {d['cycles']} image cycles)")
    print("where the Python time of the run goes (cProfile own time, s; the simulator's own time is not profiled):")
    for sim, d, _, shares in rows:
        tot = sum(shares.values()) or 1.0
        parts = ", ".join(f"{g} {v:.1f} ({v / tot:.0%})" for g, v in sorted(shares.items(), key=lambda kv: -kv[1]))
        print(f"  {sim}: {tot:.1f} s of Python in {d['profiled_wall_s']:.1f} s wall (profiled run): {parts}")
    v, i = rows[0][1], rows[1][1]
    rv = v["run_wall_s"] - v["config_wall_s"]
    ri = i["run_wall_s"] - i["config_wall_s"]
    print(f"Verilator / Icarus speed (images phase): {ri / rv:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
