"""``make demo``: the main job — map real networks on the Fig. 11 co-processor and print the totals.

Runs ``aimc map`` three times and writes the reports under ``out/demo/``:

1. ``resnet32-joshi2020`` (the seed paper's network) on ``fig11``;
2. the ONNX ResNet-50 shipped in the onnx wheel (``light_resnet50.onnx``) on ``fig11``;
3. ``resnet32-joshi2020`` on the ``hermes`` preset, next to the published HERMES
   figures (Le Gallo et al., Nat. Electron. 2023: 63.1 TOPS at 9.76 TOPS/W,
   1-phase read) for comparison.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mapping.cli import main

OUT = Path("out/demo")


def resnet50_onnx() -> Path:
    """Path of ``light_resnet50.onnx`` inside the installed onnx wheel."""
    import onnx

    return Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"


RUNS = (
    ("fig11", "resnet32-joshi2020", "fig11-resnet32-joshi2020"),
    ("fig11", None, "fig11-resnet50-onnx"),
    ("hermes", "resnet32-joshi2020", "hermes-resnet32-joshi2020"),
)


def run_demo(out: Path = OUT) -> int:
    for arch, network, folder in RUNS:
        net = network or str(resnet50_onnx())
        print(f"== aimc map --arch {arch} --network {network or 'light_resnet50.onnx'} --out {out / folder}")
        status = main(["map", "--arch", arch, "--network", net, "--out", str(out / folder)])
        if status:
            return status
    print("== published HERMES (Le Gallo et al. 2023): 63.1 TOPS at 9.76 TOPS/W (1-phase read), "
          "16.1 TOPS at 2.48 TOPS/W (4-phase)")
    return 0


if __name__ == "__main__":
    sys.exit(run_demo(Path(sys.argv[1]) if len(sys.argv) > 1 else OUT))
