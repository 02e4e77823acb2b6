"""Benchmark: digits-mlp on the FPGA prototype with emulated PCM arrays, noise off vs on (issue 19, item 4).

What runs: :func:`tb.network_env.cosim_prototype` -- the Verilog of ``aimc verilog --arch tiny-fpga
--emulate-arrays`` (the co-processor + one ``ArrayEmulator`` per array port) in Verilator, the emulators
programmed over AXI4-Lite with the conductance codes of each tile's programmed matrix (t = 0 s), ``N`` digits
test images (weights trained on the digits split of seed 1), every class score and every mirrored fc2 output
compared with the golden run whose analog layer takes its ADC codes from the emulator model -- once with the
emulators' read noise off and, for each ``sigma``, with it on (same seed in RTL and model, so also bit-exact).
Reports per sigma: outputs compared and mismatches, top-1 accuracy noise off / on and the difference, images
whose top-1 changed, the top-1 of the same network with the Python arrays (``AnalogMatrix``, information),
cycles per image and the wall time.

Run: ``.venv/bin/python bench/bench_proto_cosim.py [--images N] [--sigma S ...]`` (or ``make bench``).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=32)
    ap.add_argument("--sigma", type=int, nargs="+", default=[8, 20, 60])
    ap.add_argument("--sim", choices=("verilator", "icarus"), default="verilator")
    args = ap.parse_args()
    import numpy as np

    from archmodel.golden.emulator import noise_variance
    from archmodel.spec import load_spec
    from archmodel.zoo import load_network
    from mapping.mapper import MapOptions, map_network
    from tb.network_env import cosim_prototype

    placement = map_network(load_spec("tiny-fpga"), load_network("digits-mlp"), MapOptions(replicate=False)).placement()
    n = args.images
    print(f"digits-mlp on the tiny-fpga prototype ({args.sim}), {n} images, seed 1, emulator noise seed 1 + tile")
    print("| sigma | noise std (ADC LSB) | scores compared / mismatches (off; on) | fc2 outputs compared / mismatches "
          "(off; on) | top-1 off | top-1 on | difference | top-1 changed | top-1 Python arrays | cycles per image (off) "
          "| wall s |")
    print("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|")
    ok = True
    for sigma in args.sigma:
        with tempfile.TemporaryDirectory(prefix="aimc-bench-proto-") as tmp:
            t0 = time.perf_counter()
            d = cosim_prototype("tiny-fpga", placement, images=n, seed=1, sim=args.sim, build_dir=Path(tmp), sigma=sigma)
            wall = time.perf_counter() - t0
        r = d["test_proto_network"]
        if "off" not in r or "on" not in r:
            print(f"sigma {sigma}: co-simulation failed: {r['message']}")
            return 1
        off, on = r["off"], r["on"]
        labels = np.asarray(r["labels"])
        a_off = float(np.mean(np.asarray(off["top1_rtl"]) == labels))
        a_on = float(np.mean(np.asarray(on["top1_rtl"]) == labels))
        changed = int((np.asarray(off["top1_rtl"]) != np.asarray(on["top1_rtl"])).sum())
        a_py = float(np.mean(np.asarray(r["top1_analog_model"]) == labels))  # the model with the Python arrays
        ok &= r["passed"] and off["mismatches"] == 0 and on["mismatches"] == 0 and off["tap_mismatches"] == 0 \
            and on["tap_mismatches"] == 0 and off["compared"] == on["compared"] == n * 10
        print(f"| {sigma} | {math.sqrt(noise_variance(sigma)):.2f} | {off['compared']} / {off['mismatches']}; "
              f"{on['compared']} / {on['mismatches']} | {off['tap_compared']} / {off['tap_mismatches']}; "
              f"{on['tap_compared']} / {on['tap_mismatches']} | {a_off:.4f} | {a_on:.4f} | {a_on - a_off:+.4f} | "
              f"{changed}/{n} | {a_py:.4f} | {off['cycles'] / n:.1f} | {wall:.0f} |")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
