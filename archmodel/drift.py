"""The drift experiment behind ``aimc drift``: one array's weights and MVM error over time, with and without GDC."""

from __future__ import annotations

import numpy as np

from archmodel.accuracy import TIMES_S
from archmodel.analog_matrix import AnalogMatrix, device_model_from_spec
from archmodel.calibration import gdc_alpha, gdc_calibration_inputs, gdc_reference
from archmodel.errors import AimcError
from archmodel.spec import ChipSpec

__all__ = ["DESIGN_FACTOR", "MAX_DEMO_ARRAY", "MAX_VECTORS", "PROBE_DEVICES", "DriftError",
           "check_drift_array", "check_drift_options", "drift_table"]

#: Devices of the drift probe: all programmed at g_max (SE of the mean factor ~1e-4).
PROBE_DEVICES = 65_536

#: Largest number of input vectors accepted.
MAX_VECTORS = 100_000

#: Largest array (rows or cols) this experiment programs as one dense matrix.
MAX_DEMO_ARRAY = 4096

#: docs/design.md reference: E[(t/t0)^-nu] of a device at g_max (joshi2020, t0 = 20 s).
DESIGN_FACTOR = {"1 h": 0.77580, "1 day": 0.66501}


class DriftError(AimcError, ValueError):
    """A seed, vector count or chip the drift experiment refuses (one line)."""


def check_drift_options(seed: int, n_vectors: int) -> None:
    """Reject a negative seed or a vector count outside 1..:data:`MAX_VECTORS` (one-line DriftError)."""
    if seed < 0:
        raise DriftError(f"--seed must be >= 0, got {seed}")
    if not 1 <= n_vectors <= MAX_VECTORS:
        raise DriftError(f"--vectors must be in 1..{MAX_VECTORS}, got {n_vectors}")


def check_drift_array(spec: ChipSpec) -> None:
    """Reject an array larger than :data:`MAX_DEMO_ARRAY` in rows or columns (one-line DriftError)."""
    a = spec.array
    if a.rows > MAX_DEMO_ARRAY or a.cols > MAX_DEMO_ARRAY:
        raise DriftError(
            f"chip '{spec.name}': array {a.rows} x {a.cols} is too big for aimc drift "
            f"(at most {MAX_DEMO_ARRAY} x {MAX_DEMO_ARRAY})"
        )


def drift_table(spec: ChipSpec, seed: int = 0, n_vectors: int = 64) -> dict:
    """Run the drift experiment; returns a JSON-ready dict.

    Two independent experiments share the times of
    :data:`archmodel.accuracy.TIMES_S`:

    - drift probe: :data:`PROBE_DEVICES` devices programmed at ``g_max`` with the
      chip's device model (programming noise, drift and read noise as configured);
      per time, the mean and its standard error of ``g(t) / g_P``. With the
      joshi2020 model at scale 1 its expectation is docs/design.md's
      ``E[(t/t0)^-nu]`` = 0.77580 at 1 h and 0.66501 at 1 day (read noise has
      zero mean).
    - MVM: a Gaussian weight matrix of one array's size, programmed, drifted and
      read through DAC, array and ADC with ``n_vectors`` random int8 inputs,
      without and with GDC.

    Raises
    ------
    DriftError
        Bad ``seed`` / ``n_vectors`` or an array larger than :data:`MAX_DEMO_ARRAY`.
    """
    check_drift_options(seed, n_vectors)
    check_drift_array(spec)
    rng = np.random.default_rng(seed)
    k, n = spec.array.rows, spec.array.cols
    w = rng.standard_normal((k, n))
    x = rng.integers(-127, 128, size=(n_vectors, k))
    ideal = x @ w
    m = AnalogMatrix(spec, noise_seed=seed).program(w, rng)
    cal = gdc_calibration_inputs(spec.calibration.gdc_input, spec.calibration.gdc_vectors, k, seed)
    ref = gdc_reference(m, cal)
    model = device_model_from_spec(spec)
    probe_rng = np.random.default_rng([seed, 2])
    probe = model.program(np.full(PROBE_DEVICES, model.g_max_us), probe_rng)
    g_p = np.maximum(probe.g_prog_us, 1e-12)
    rows = []
    for label, t in TIMES_S:
        m.drift(t, rng)
        factor = model.drift(probe, t, probe_rng) / g_p
        alpha = gdc_alpha(m, cal, ref)
        y = m.mvm_partial_sums(x) * m.weight_units_per_code
        err = float(np.sqrt(np.mean((y - ideal) ** 2)) / np.sqrt(np.mean(ideal**2)))
        err_gdc = float(np.sqrt(np.mean((alpha * y - ideal) ** 2)) / np.sqrt(np.mean(ideal**2)))
        rows.append({"time": label, "t_inf_s": t,
                     "mean_drift_factor_g_max": float(np.mean(factor)),
                     "mean_drift_factor_g_max_se": float(np.std(factor, ddof=1) / np.sqrt(factor.size)),
                     "gdc_alpha": alpha,
                     "mvm_rel_rms_error_no_gdc_pct": 100 * err, "mvm_rel_rms_error_gdc_pct": 100 * err_gdc})
    return {"chip": spec.name, "spec_hash": spec.spec_hash, "seed": seed, "matrix_shape": [k, n],
            "device_model": spec.device.model, "vectors": n_vectors, "probe_devices": PROBE_DEVICES,
            "rows": rows}
