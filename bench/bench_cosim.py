"""Benchmark: co-simulation speed of the ResNet-32 layer on Verilator and on Icarus Verilog.

Layer: ResNet-32 of Joshi et al. 2020 (zoo ``resnet32-joshi2020``), layer 1
(``s1b1_conv1``: 3x3 convolution, 16 -> 16 channels, 32x32 input), on the
``fig11`` chip description (512 x 512 arrays, 64 rows / columns per array-port
beat, 1 GHz): K = 144 rows, 1,024 MVMs of 154 cycles, 16,384 int8 outputs,
every one compared with the golden model (:func:`tb.cosim.cosim_layer`,
seed 0, drift time 0 s).

Figures per simulator: wall time of the whole task (Verilog export, build,
simulation) and of the simulation alone (cocotb's test time), and simulated
cycles per second of simulation wall time. The baseline is Icarus, measured
in the same run on the same layer and seed: the table gives Verilator's
speed-up over it. Target (issue 5, item 5): the layer co-simulates in under
60 s on Verilator, build included.

Run: ``.venv/bin/python bench/bench_cosim.py`` (or ``make bench``). Exit 0
(the target is reported, not enforced; a mismatch exits 1).
"""

from __future__ import annotations

import sys
import tempfile

from archmodel.spec import load_spec
from archmodel.zoo import load_network
from mapping.mapper import MapOptions, map_network
from tb.cosim import cosim_layer

ARCH, NETWORK, LAYER, SEED = "fig11", "resnet32-joshi2020", 1, 0
TARGET_S = 60.0


def main() -> int:
    rows = {}
    placement = map_network(load_spec(ARCH), load_network(NETWORK), MapOptions(replicate=False)).placement()
    for sim in ("verilator", "icarus"):
        with tempfile.TemporaryDirectory(prefix=f"aimc-bench-cosim-{sim}-") as tmp:
            rep = cosim_layer(ARCH, NETWORK, LAYER, placement=placement, seed=SEED, t_inf_s=0.0, sim=sim,
                              build_dir=tmp)
        rows[sim] = rep
        if not rep.match:
            print("\n".join(rep.lines()), file=sys.stderr)
            return 1
    v, i = rows["verilator"], rows["icarus"]
    print(f"co-simulation of {NETWORK} layer {LAYER} ({v.layer_name}, {v.shape}) on '{ARCH}', seed {SEED}: "
          f"{v.mvms} MVMs, {v.outputs_compared} outputs compared, MATCH on both simulators")
    print(f"simulated cycles {v.simulated_cycles} (mapper {v.predicted_cycles}, ratio {v.cycle_ratio:.4f}); "
          f"{v.total_cycles} from start to the last output")
    print()
    print("| simulator | total wall s | simulation wall s | simulated cycles/s | speed-up vs Icarus |")
    print("|---|---:|---:|---:|---:|")
    for sim, rep in rows.items():
        cps = rep.total_cycles / rep.sim_wall_s if rep.sim_wall_s else float("nan")
        base = i.total_cycles / i.sim_wall_s if i.sim_wall_s else float("nan")
        print(f"| {sim} | {rep.wall_s:.1f} | {rep.sim_wall_s:.1f} | {cps:,.0f} | {cps / base:.2f} |")
    print()
    verdict = "met" if v.wall_s < TARGET_S else "NOT met"
    print(f"target: the layer co-simulates in under {TARGET_S:.0f} s on Verilator (build included): "
          f"{v.wall_s:.1f} s, {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
