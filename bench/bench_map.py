"""Benchmark: ``aimc map`` of the ONNX ResNet-50 against its floor, and the mapping alone.

Floor (issue 22), measured in the same run on the same file: a fresh Python
process that runs ``import onnx; onnx.shape_inference.infer_shapes(onnx.load(f))``
— what any tool that reads the ONNX file's shapes pays. The command is timed the
same way: a fresh ``python -m mapping.cli map`` process (interpreter start,
imports, ONNX import, mapping, report): the default (no plots since issue 22:
plots are opt-in), ``--no-plots`` and ``--plots`` (the three PNGs; skipped for a
checkout that predates the option, whose default drew them). Figures: median over
runs (the processes alternate, so a load burst on this shared machine hits both;
one untimed warm-up round first) of CPU time (user + system of the child) and of wall time; ratios to the floor.
Target: the default command within 1.3x of the floor.

In-process figures (issue 3 / issue 10): ``map_network`` alone on the imported
ResNet-50 (target < 100 ms) and import + map of the largest onnx light network,
each as a ratio to ``onnx.load`` + shape inference of the same file in the same
process.

Bytecode: by default every child (floor included) reads compiled bytecode from a
temporary ``PYTHONPYCACHEPREFIX`` cache filled by the warm-up round, as an installed
package does; ``--inherit-bytecode`` keeps the environment's setting instead (with
``PYTHONDONTWRITEBYTECODE=1`` the checkout's ~40 modules are then compiled from source
in every run, ~50-70 ms, while onnx's bytecode comes from site-packages).

``--before DIR`` also times the default command of another checkout in the same
runs (before -> after against one floor). ``--repo DIR`` times the command of another checkout (e.g. a ``git worktree``
of the base commit, for before -> after figures) against the same floor.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import onnx

from archmodel.onnx_import import import_onnx
from archmodel.spec import load_spec
from mapping.mapper import map_network

MODEL = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"
REPO = Path(__file__).resolve().parent.parent
TARGET = 1.3


def _median(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


#: Folder of the children's bytecode caches (``PYTHONPYCACHEPREFIX``), or None to inherit the environment.
_PYCACHE: str | None = None


def _child(cmd: list[str], cwd: Path) -> tuple[float, float]:
    """(CPU s, wall s) of one fresh process."""
    env = {**os.environ, "PYTHONPATH": str(cwd), "MPLBACKEND": "Agg"}
    if _PYCACHE is not None:  # every process reads compiled bytecode, as an installed package (and onnx) does
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = _PYCACHE
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime), wall


def fresh_process_figures(repo: Path, runs: int, before: Path | None = None) -> dict[str, tuple[float, float]]:
    """Median (CPU s, wall s) of the floor and of ``aimc map`` with and without plots, fresh processes;
    ``before``: also the default ``aimc map`` of that checkout, interleaved with the others (key "before")."""
    floor = [sys.executable, "-c", "import sys, onnx; onnx.shape_inference.infer_shapes(onnx.load(sys.argv[1]))",
             str(MODEL)]
    samples: dict[str, list[tuple[float, float]]] = {"floor": [], "map": [], "map --no-plots": [], "python": [],
                                                     "map --plots": [], "before": []}
    has_plots_flag = "--plots" in subprocess.run(
        [sys.executable, "-m", "mapping.cli", "map", "--help"], cwd=repo, capture_output=True, text=True,
        env={**os.environ, "PYTHONPATH": str(repo)}).stdout
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(-1, runs):  # i = -1: untimed warm-up (file cache; bytecode cache when on)
            if i == 0:
                samples = {k: [] for k in samples}
            base = [sys.executable, "-m", "mapping.cli", "map", "--arch", "fig11", "--network", str(MODEL), "--quiet"]
            samples["python"].append(_child([sys.executable, "-c", "pass"], repo))
            samples["floor"].append(_child(floor, repo))
            samples["map"].append(_child([*base, "--out", f"{tmp}/p{i}"], repo))
            if before is not None:
                samples["before"].append(_child([*base, "--out", f"{tmp}/b{i}"], before))
            samples["map --no-plots"].append(_child([*base, "--out", f"{tmp}/n{i}", "--no-plots"], repo))
            if has_plots_flag:
                samples["map --plots"].append(_child([*base, "--out", f"{tmp}/g{i}", "--plots"], repo))
    return {k: (statistics.median(c for c, _ in v), statistics.median(w for _, w in v)) for k, v in samples.items()
            if v}


def run(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repo", type=Path, default=REPO, help="checkout whose 'aimc map' is timed (default: this one)")
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--before", type=Path, default=None,
                    help="another checkout whose default 'aimc map' is timed in the same runs (before -> after)")
    ap.add_argument("--fresh-only", action="store_true", help="only the fresh-process figures")
    ap.add_argument("--inherit-bytecode", action="store_true",
                    help="children inherit PYTHONDONTWRITEBYTECODE from the environment (then the checkout's "
                         "modules are compiled from source in every run while onnx's come from site-packages' "
                         "bytecode); default: every child reads bytecode from a shared temporary cache")
    a = ap.parse_args(argv)
    global _PYCACHE
    if not a.inherit_bytecode:
        _PYCACHE = tempfile.mkdtemp(prefix="bench_map_pycache_")
    try:
        fig = fresh_process_figures(a.repo.resolve(), a.runs, a.before.resolve() if a.before else None)
    finally:
        if _PYCACHE is not None:
            shutil.rmtree(_PYCACHE, ignore_errors=True)
    fc, fw = fig["floor"]
    print(f"aimc map of {MODEL.name} on fig11, fresh processes, median of {a.runs} (checkout {a.repo}; "
          f"{'bytecode as the environment says' if a.inherit_bytecode else 'bytecode cached for every process'}):")
    print(f"  {'':36s} {'CPU s':>7s} {'ratio':>6s}   {'wall s':>7s} {'ratio':>6s}")
    names = {"python": "python -c pass (interpreter start)", "floor": "floor: import onnx + load + infer",
             "map": "aimc map (default)", "map --no-plots": "aimc map --no-plots",
             "map --plots": "aimc map --plots (3 PNGs)"}
    if a.before:
        names["before"] = "aimc map (default), --before"
    for k in ("python", "floor", *(("before",) if a.before else ()), "map", "map --no-plots", "map --plots"):
        if k not in fig:
            print(f"  {names[k]:36s} (option not in this checkout; its default draws the plots)")
            continue
        c, w = fig[k]
        print(f"  {names[k]:36s} {c:7.3f} {c / fc:5.2f}x   {w:7.3f} {w / fw:5.2f}x")
    ratio = fig["map"][0] / fc
    print(f"target: aimc map (default) within {TARGET}x of the floor in CPU time: {ratio:.2f}x, "
          f"{'met' if ratio <= TARGET else 'NOT met'}")
    if a.fresh_only:
        return 0
    spec = load_spec("fig11")
    baseline = _median(lambda: onnx.shape_inference.infer_shapes(onnx.load(str(MODEL))), 7)
    net = import_onnx(MODEL)
    map_only = _median(lambda: map_network(spec, net), 15)
    print(f"in process: onnx.load + infer_shapes {baseline * 1e3:8.2f} ms; map_network alone {map_only * 1e3:8.2f} ms "
          f"({map_only / baseline:5.2f}x; target < 100 ms)")
    light = MODEL.parent
    largest = max(light.glob("light_*.onnx"), key=lambda p: p.stat().st_size)
    base_l = _median(lambda: onnx.shape_inference.infer_shapes(onnx.load(str(largest))), 5)
    both = _median(lambda: map_network(spec, import_onnx(largest, shapes_only=True)), 5)
    print(f"largest light network {largest.name}: onnx.load + infer_shapes {base_l * 1e3:8.2f} ms, "
          f"import (shapes only) + map {both * 1e3:8.2f} ms, ratio {both / base_l:6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(run())
