"""The integer accuracy path is bit-identical to the implementation before the speed work (issue 22).

Golden digests computed on the unchanged tree (commit 036fcbc, before the
accuracy fast path): SHA-256 over every logits array that
:meth:`archmodel.accuracy.NetworkInstance.run` returns during one
:func:`archmodel.accuracy_experiment.evaluate_draw` (every setting, every time,
AdaBS passes included), in call order. A digest changes if any int8 code of any
layer of any run changes, so this pins the whole data path: im2col windows, DAC,
keyed read noise, output noise, ADC, partial sums, affine coefficients, pools,
residual adds. Cases cover multi-block arrays (tiny preset: 32x32 arrays), a
6-bit DAC, output noise, the fixed ADC range, FP32 digital layers, per-column
weight scaling and a residual net. Seeded random weights and batch-norm
statistics (no training), 48 digits images: ~1-2 s in all.

Re-pinned once, by design (issue 18): conv matrices changed from the channel-major
row order ``(c·kh + i)·kw + j`` to the chip's tap-major ``(i·kw + j)·C + c``
(docs/design.md §4.8, "im2col order"). All three digests changed: programming
noise is drawn in matrix order, so every conv weight meets another draw
(statistically the same), and on tiny's 32-row arrays a conv matrix's row blocks
(one ADC per block) hold other rows. With ideal devices the logits of fig11 (one
row block per conv) were checked unchanged and those of tiny changed.

Pinned to one BLAS kernel (issue 19's last stop): the FP32 digital layers are float64 matrix products
(OpenBLAS dgemm), whose rounding depends on the kernel OpenBLAS picks for the CPU; the
``tiny-dac6-noise-fixed-fp32`` digest was recorded on an AVX-512 machine (``0112451043b1…``) and differed on
an AMD EPYC without AVX-512 (Haswell kernel; the Sandybridge and Prescott kernels give two more digests),
while the integer-path cases agree on every kernel tried. The digests are computed in a subprocess with
``OPENBLAS_CORETYPE=Haswell`` (any x86-64 CPU with AVX2 runs that kernel), and that case is re-pinned to the
Haswell kernel's digest; the code under test is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from archmodel import accuracy as acc
from archmodel.accuracy import AccuracyOptions, prepare
from archmodel.accuracy_experiment import evaluate_draw
from archmodel.datasets import load_digits_split
from archmodel.spec import load_spec
from archmodel.zoo_digits import digits_cnn, digits_resnet
from tb.cnn_golden import seeded_params  # the seeded-parameter recipe (one place; tb/cnn_golden.py)

TIMES = (("1 s", 1.0), ("1 day", 86400.0))
N_TEST = 48


def draw_digest(case: str) -> str:
    data = load_digits_split(0)
    if case == "fig11-cnn":
        spec, net, opts = load_spec("fig11"), digits_cnn(), AccuracyOptions(draws=1, times_s=TIMES)
    elif case == "tiny-dac6-noise-fixed-fp32":
        spec = load_spec("tiny").replace(**{"array.dac_bits": 6, "array.output_noise_fraction": 0.02})
        net = digits_cnn()
        opts = AccuracyOptions(draws=1, times_s=TIMES, adc_range="fixed", digital_precision="fp32")
    elif case == "fig11-resnet-per-column":
        spec = load_spec("fig11").replace(**{"mapping.weight_scaling": "per_column"})
        net = digits_resnet()
        opts = AccuracyOptions(draws=1, times_s=TIMES[1:])
    else:
        raise KeyError(case)
    prep = prepare(spec, net, seeded_params(net, 5), data.x_train[:256], opts)
    h = hashlib.sha256()
    original = acc.NetworkInstance.run

    def spy(self, x, **kw):
        out = original(self, x, **kw)
        h.update(np.ascontiguousarray(out, dtype=np.float64).tobytes())
        return out

    acc.NetworkInstance.run = spy  # type: ignore[method-assign]
    try:
        res = evaluate_draw(prep, data.x_test[:N_TEST], data.y_test[:N_TEST], seed=3, draw=1)
    finally:
        acc.NetworkInstance.run = original  # type: ignore[method-assign]
    h.update(repr(sorted(res.items())).encode())
    return h.hexdigest()


GOLDEN = {
    "fig11-cnn": "7fc11e29bacdfdd101936338704d6144a3fb5b9ca1eb7f8a93cc362b7b52634c",
    "tiny-dac6-noise-fixed-fp32": "1d8cc7c7d07aac1a50a417d6bfa99babbc71aa5d2f1ad04d9c1c9ccd0ba54974",
    "fig11-resnet-per-column": "0f26b1d256ae16eadc461ceb3be8df9995aa291ffe355306f44896103e04ed5c",
}


BLAS_KERNEL = "Haswell"  # OpenBLAS' AVX2 kernel: the FP32 layers' dgemm rounding is the kernel's (docstring)


@pytest.fixture(scope="module")
def digests() -> dict:
    """Every case's digest, computed in one subprocess with OpenBLAS pinned to :data:`BLAS_KERNEL`."""
    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip(f"the digests are pinned to OpenBLAS' x86-64 {BLAS_KERNEL} kernel; this is {platform.machine()}")
    here = Path(__file__).resolve().parent
    env = os.environ | {"OPENBLAS_CORETYPE": BLAS_KERNEL,
                        "PYTHONPATH": os.pathsep.join([str(here.parent), str(here), os.environ.get("PYTHONPATH", "")])}
    code = "import json, test_accuracy_golden as t; print(json.dumps({c: t.draw_digest(c) for c in t.GOLDEN}))"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", sorted(GOLDEN))
def test_draw_bit_identical_to_before_the_fast_path(case, digests):
    assert digests[case] == GOLDEN[case]


if __name__ == "__main__":
    for c in ("fig11-cnn", "tiny-dac6-noise-fixed-fp32", "fig11-resnet-per-column"):
        print(f'    "{c}": "{draw_digest(c)}",')
