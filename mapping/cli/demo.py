"""``make demo``: the main job — map real networks on the Fig. 11 co-processor and print the totals.

Runs ``aimc map`` four times and writes the reports under ``out/demo/``:

1. ``resnet32-joshi2020`` (the seed paper's network) on ``fig11``;
2. the ONNX ResNet-50 shipped in the onnx wheel (``light_resnet50.onnx``) on ``fig11``;
3. ``resnet32-joshi2020`` on the ``hermes`` preset;
4. HERMES at its peak: a YAML layer list of 64 dense 256x256 layers (one per
   core, every array fully used) on ``hermes`` with every layer analog (a YAML
   chip description derived from the preset), next to the published HERMES
   figures (Le Gallo et al., Nat. Electron. 2023: 63.1 TOPS at 9.76 TOPS/W,
   1-phase read);
5. the example design-space sweep ``examples/sweep_resnet32.yaml`` (``aimc sweep``:
   ADC bits x ADC sharing x array rows for ``resnet32-joshi2020`` on ``fig11``, with
   the 1-day accuracy of ``digits-cnn`` as an objective); prints its Pareto front.
"""

from __future__ import annotations

import sys
from pathlib import Path

from archmodel.fileio import write_files_atomic
from mapping.cli.main import main

OUT = Path("out/demo")
#: The example sweep file (in the repository, next to the packages).
EXAMPLE_SWEEP = Path(__file__).resolve().parents[2] / "examples" / "sweep_resnet32.yaml"


def resnet50_onnx() -> Path:
    """Path of ``light_resnet50.onnx`` inside the installed onnx wheel."""
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"


RUNS = (
    ("fig11", "resnet32-joshi2020", "fig11-resnet32-joshi2020"),
    ("fig11", None, "fig11-resnet50-onnx"),
    ("hermes", "resnet32-joshi2020", "hermes-resnet32-joshi2020"),
)


def _peak_inputs(out: Path) -> tuple[Path, Path]:
    """Write the all-analog HERMES description and the 64 x (256 -> 256) layer list."""
    import yaml

    from archmodel.spec import load_spec

    chip = load_spec("hermes").model_dump(mode="json")
    chip["name"] = "hermes-all-analog"
    chip["digital"]["digital_layers"] = []
    chip["digital"]["sources"]["digital_layers"] = "peak workload: every layer on PCM"
    layers = [{"name": f"fc{i}", "op": "linear", "out_features": 256, "bias": False} for i in range(64)]
    net = {"name": "dense-256x64", "input_shape": [256], "layers": layers}
    arch_path, net_path = write_files_atomic(out, {"hermes-all-analog.yaml": yaml.safe_dump(chip, sort_keys=False),
                                                   "dense-256x64.yaml": yaml.safe_dump(net, sort_keys=False)})
    return arch_path, net_path


def run_demo(out: Path = OUT) -> int:
    arch_peak, net_peak = _peak_inputs(out)
    runs = (*RUNS, (str(arch_peak), str(net_peak), "hermes-peak-dense-256x64"))
    for arch, network, folder in runs:
        net = network or str(resnet50_onnx())
        print(f"== aimc map --arch {arch} --network {network or 'light_resnet50.onnx'} --out {out / folder}")
        status = main(["map", "--arch", arch, "--network", net, "--out", str(out / folder), "--force", "--plots"])
        if status:
            return status
    print("== published HERMES (Le Gallo et al. 2023): 63.1 TOPS at 9.76 TOPS/W (1-phase read), "
          "16.1 TOPS at 2.48 TOPS/W (4-phase)")
    print(f"== aimc sweep {EXAMPLE_SWEEP.relative_to(EXAMPLE_SWEEP.parents[1])} --out {out / 'sweep'} --workers 2")
    return main(["sweep", str(EXAMPLE_SWEEP), "--out", str(out / "sweep"), "--workers", "2"])


if __name__ == "__main__":
    sys.exit(run_demo(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
