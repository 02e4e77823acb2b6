"""The accuracy-over-time experiment: Monte-Carlo draws of the analog network (archmodel.accuracy).

**Monte Carlo.** Each draw programs every layer afresh. A draw is a pure
   function of (spec, network, weights, options, seed, draw index): every layer
   ``i`` programs with ``Generator(PCG64(SeedSequence([seed, draw, i, 0])))``;
   at time index ``k`` its read noise is redrawn per block of MVMs from
   ``SeedSequence([seed, draw, i, 3, k, MVM block])`` (``archmodel.analog_matrix``,
   "Read noise per block of MVMs"), so test images, AdaBS images (image indices
   from ``ADABS_IMAGE_INDEX``) and calibration vectors (``CALIBRATION_MVM_INDEX``)
   see independent read and output noise. Both placements and all compensations
   of one draw share the same devices (paired comparisons).

**Calibration right after programming** (``archmodel.calibration``): with
   ``adc_range: per_layer`` every analog layer's ADC full scale is set to 5σ of
   its column currents on the calibration images' int8 activations
   (``PreparedNetwork.cal_rows``); the same activations (at most
   ``MAX_GDC_VECTORS`` rows, evenly spaced) are the GDC vectors, with a measured
   or exact reference (``AccuracyOptions.gdc_reference``). Results: mean, standard deviation (ddof = 1) and
   standard error (std/√draws) of the top-1 accuracy over draws, next to the FP32
   accuracy of the same weights and the all-digital int8 accuracy.

Times, settings, stages and the integer data path: :mod:`archmodel.accuracy`.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from archmodel.accuracy import (
    ADABS_IMAGE_INDEX,
    AccuracyOptions,
    NetworkInstance,
    PreparedNetwork,
    layer_inputs,
    predict_labels,
    prepare,
    setting_label,
)
from archmodel.analog_matrix import AnalogMatrix, device_model_from_spec
from archmodel.calibration import (
    adc_range_from_currents,
    gdc_alpha,
    gdc_alpha_exact,
    gdc_alpha_from,
    gdc_exact_outputs,
    gdc_mean_abs_both,
    gdc_reference,
)
from archmodel.golden.tile_controller import dac_codes
from archmodel.network.forward import forward
from archmodel.network.ir import Network
from archmodel.spec import ChipSpec

__all__ = [
    "AccuracyResult",
    "adc_usage",
    "drifted_float_params",
    "evaluate_accuracy",
    "evaluate_draw",
    "fp32_accuracy",
    "gdc_bias",
    "int8_digital_accuracy",
    "program_layer",
]

#: Most GDC vectors per layer (evenly spaced rows of the calibration activations; bounds the cost).
MAX_GDC_VECTORS = 2048


# ----------------------------------------------------------------------------- draws
def _layer_seed(seed: int, draw: int, layer: int, *rest: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), int(draw), int(layer), *rest])))


def gdc_vectors(rows: np.ndarray) -> np.ndarray:
    """The GDC vectors of a layer: its calibration rows, at most MAX_GDC_VECTORS of them, evenly spaced."""
    if len(rows) <= MAX_GDC_VECTORS:
        return rows
    return rows[np.linspace(0, len(rows) - 1, MAX_GDC_VECTORS).round().astype(np.int64)]


def program_layer(prep: PreparedNetwork, k: int, seed: int, draw: int) -> AnalogMatrix:
    """Program matrix layer ``k`` for one draw and range its ADC (``adc_range: per_layer``)."""
    spec = prep.spec
    dev = device_model_from_spec(spec, ideal=prep.options.ideal_device)
    noise_seed = int(np.random.SeedSequence([int(seed), int(draw), k, 2]).generate_state(1)[0])
    m = AnalogMatrix(spec, dev, noise_seed=noise_seed).program(prep.matrices[k], _layer_seed(seed, draw, k, 0))
    if prep.adc_range == "per_layer":
        m.set_adc_full_scale(adc_range_from_currents(m, prep.cal_rows[k]))
    return m


def _read_key(seed: int, draw: int, k: int, ti: int) -> tuple[int, ...]:
    return (int(seed), int(draw), int(k), 3, int(ti))


def evaluate_draw(prep: PreparedNetwork, x_test: np.ndarray, y_test: np.ndarray, seed: int, draw: int) -> dict[str, list[float]]:
    """One Monte-Carlo draw: program, then evaluate every setting at every time.

    A pure function of (prepared network, test data, seed, draw).

    Returns
    -------
    dict
        ``{setting label: [accuracy (fraction) at each time of options.times_s]}``.
    """
    opts = prep.options
    n_mat = len(prep.matrices)
    placements = list(dict.fromkeys(p for p, _ in opts.settings))
    used_analog = set()
    for placement in placements:
        used_analog |= {k for k in range(n_mat) if placement == "all_analog" or k not in prep.digital}
    mats: list[AnalogMatrix | None] = [None] * n_mat
    refs: dict[int, tuple[np.ndarray, float, np.ndarray]] = {}
    for k in sorted(used_analog):
        m = program_layer(prep, k, seed, draw)
        cal = gdc_vectors(prep.cal_rows[k])
        if opts.gdc_reference == "exact":
            y_e = gdc_exact_outputs(m, cal)
            refs[k] = (cal, y_e, y_e)
        else:
            # gdc_reference(m, cal) and gdc_reference(m, cal, per_column=True) from one MVM; the DAC codes
            # of the calibration vectors once per layer (they are the same at every time)
            cal = dac_codes(cal, prep.spec.array.dac_bits)
            refs[k] = (cal, *gdc_mean_abs_both(m, cal))
        mats[k] = m
    out: dict[str, list[float]] = {setting_label(p, c): [] for p, c in opts.settings}
    y_test = np.asarray(y_test)
    for ti, (_, t) in enumerate(opts.times_s):
        memo: dict = {}  # accumulator values at this time (conductances fixed), shared by the settings
        alpha_g: dict[int, float] = {}
        alpha_c: dict[int, np.ndarray] = {}
        for k in sorted(used_analog):
            m = mats[k]
            m.drift(t, read_noise_key=_read_key(seed, draw, k, ti))  # type: ignore[union-attr]
            cal, ref_g, ref_c = refs[k]
            if opts.gdc_reference == "exact":
                alpha_g[k] = float(gdc_alpha_exact(m, cal, ref_g))  # type: ignore[arg-type]
                alpha_c[k] = np.asarray(gdc_alpha_exact(m, cal, ref_c, per_column=True))  # type: ignore[arg-type]
            else:  # gdc_alpha(m, cal, ref_g) and gdc_alpha(m, cal, ref_c, per_column=True) from one MVM
                now_g, now_c = gdc_mean_abs_both(m, cal)  # cal: the DAC codes (above)
                alpha_g[k] = float(gdc_alpha_from(now_g, ref_g))
                alpha_c[k] = np.asarray(gdc_alpha_from(now_c, ref_c, per_column=True))
        for placement in placements:
            modes = ["analog" if (placement == "all_analog" or k not in prep.digital) else opts.digital_precision
                     for k in range(n_mat)]
            for comp in [c for p, c in opts.settings if p == placement]:
                alphas: list[np.ndarray | float] = []
                for k in range(n_mat):
                    if modes[k] != "analog" or comp == "none":
                        alphas.append(1.0)
                    elif comp == "gdc_per_column":
                        alphas.append(alpha_c[k])
                    else:
                        alphas.append(alpha_g[k])
                inst = NetworkInstance(prep, modes, mats, alphas, memo)
                if comp == "adabs":
                    inst.run(prep.x_adabs, adapt_bn=True, image_index=ADABS_IMAGE_INDEX)
                pred = predict_labels(inst, x_test)
                out[setting_label(placement, comp)].append(float(np.mean(pred == y_test)))
    return out


def fp32_accuracy(network: Network, params: Mapping[str, Mapping[str, np.ndarray]], x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy of the float32 reference forward pass (:func:`archmodel.network.forward.forward`)."""
    logits = forward(network, x, params)
    return float(np.mean(np.asarray(logits).argmax(axis=1) == np.asarray(y)))


def drifted_float_params(spec: ChipSpec, network: Network, params: Mapping[str, Mapping[str, np.ndarray]],
                         layers: list[str], t_inf_s: float, *, gdc: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """The FP-drift-only experiment: float weights scaled by their devices' mean drift at ``t_inf_s``.

    Each weight ``w`` of the named matrix layers becomes ``w · E[(t/t0)^−ν]`` with
    ``t = t_inf + t0``, ``ν ~ N(a_d·μ_ν(x), (a_d·σ_ν(x))²)`` at ``x = |w| / max|W|``
    (docs/design.md section 8; the log-normal mean ``exp(−μL + σ²L²/2)``,
    ``L = ln(t/t0)``; the fold ``|ν|`` is ignored: ``μ_ν ≥ 6σ_ν`` for joshi2020).
    No programming or read noise, no quantization, batch-norm statistics unchanged:
    what drift alone does to the float network (docs/design.md, "Why digits-resnet
    collapses without compensation"). With ``gdc`` every layer is then multiplied
    by its exact global drift compensation ``α = Σ w² / Σ w·w_t``.

    Returns
    -------
    dict
        A copy of ``params`` with the drifted weights (float32).
    """
    model = device_model_from_spec(spec)
    stats = model.statistics
    log_t = math.log((float(t_inf_s) + stats.t0_s) / stats.t0_s)
    out = {k: dict(v) for k, v in params.items()}
    for name in layers:
        w = np.asarray(params[name]["weight"], np.float64)
        w_max = float(np.max(np.abs(w)))
        x = np.maximum(np.abs(w) / (w_max if w_max > 0 else 1.0), 1e-7)
        if model.fixed_nu is not None:
            f = np.full(w.shape, math.exp(-model.fixed_nu * log_t))
        else:
            mu = model.drift_scale * np.asarray(stats.drift_nu_mean(x))
            sd = model.drift_scale * np.asarray(stats.drift_nu_std(x))
            f = np.exp(-mu * log_t + 0.5 * (sd * log_t) ** 2)
        wt = w * f
        if gdc and np.any(wt):
            wt = wt * (np.sum(w * w) / np.sum(w * wt))
        out[name]["weight"] = wt.astype(np.float32)
    return out


def int8_digital_accuracy(prep: PreparedNetwork, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy with every matrix layer on the int8 digital datapath (no PCM)."""
    inst = NetworkInstance(prep, ["int8"] * len(prep.matrices), [None] * len(prep.matrices), [1.0] * len(prep.matrices))
    return float(np.mean(predict_labels(inst, x) == np.asarray(y)))


def adc_usage(prep: PreparedNetwork, x: np.ndarray, seed: int = 0) -> list[dict[str, Any]]:
    """How much of the ADC range each analog layer uses, right after programming (draw 0, all analog).

    Returns
    -------
    list of dict
        Per matrix layer: ``layer``, ``rows``, ``cols``, ``row_blocks``,
        ``adc_rms_code_lsb`` (RMS of the ADC codes of every array, in LSB),
        ``adc_saturated_pct`` (codes at either end of the range),
        ``adc_full_scale_code`` (2^(adc_bits-1)), ``adc_full_scale_fraction`` (the
        layer's full scale over rows · n_pp · g_max · V_read), ``gdc_vectors``.
    """
    spec = prep.spec
    n_mat = len(prep.matrices)
    mats: list[AnalogMatrix | None] = [program_layer(prep, k, seed, 0) for k in range(n_mat)]
    captured = layer_inputs(prep, x, ["analog"] * n_mat, mats)
    rows_out: list[dict[str, Any]] = []
    levels = 2 ** (spec.array.adc_bits - 1)
    for k, st in enumerate([s for s in prep.stages if s.kind == "matrix"]):
        rows = captured[k]
        codes = mats[k].mvm_adc_codes(dac_codes(rows, spec.array.dac_bits))  # type: ignore[union-attr]
        sat = np.mean((codes >= levels - 1) | (codes <= -levels))
        rows_out.append({"layer": st.layer.name, "rows": int(rows.shape[1]), "cols": int(codes.shape[2]),
                         "row_blocks": int(codes.shape[0]),
                         "adc_rms_code_lsb": float(np.sqrt(np.mean(codes.astype(np.float64) ** 2))),
                         "adc_saturated_pct": float(100 * sat), "adc_full_scale_code": levels,
                         "adc_full_scale_fraction": float(mats[k].adc_full_scale_fraction),  # type: ignore[union-attr]
                         "gdc_vectors": int(len(gdc_vectors(prep.cal_rows[k])))})
    return rows_out


def gdc_bias(prep: PreparedNetwork, seed: int = 0) -> list[dict[str, Any]]:
    """Bias of the measured-reference global GDC α against the exact reference, draw 0, every analog layer.

    Returns
    -------
    list of dict
        Per matrix layer: ``layer`` and ``alpha_bias_pct`` (one per time of
        ``options.times_s``): ``100 · (α_measured / α_exact − 1)``.
    """
    out = []
    for k, layer in enumerate(prep.matrix_layers):
        m = program_layer(prep, k, seed, 0)
        cal = gdc_vectors(prep.cal_rows[k])
        ref_m, y_e = gdc_reference(m, cal), gdc_exact_outputs(m, cal)
        bias = []
        for ti, (_, t) in enumerate(prep.options.times_s):
            m.drift(t, read_noise_key=_read_key(seed, 0, k, ti))
            bias.append(100 * (float(gdc_alpha(m, cal, ref_m)) / float(gdc_alpha_exact(m, cal, y_e)) - 1))
        out.append({"layer": layer.name, "alpha_bias_pct": bias})
    return out


# ----------------------------------------------------------------------------- experiment
@dataclass
class AccuracyResult:
    """Outcome of :func:`evaluate_accuracy`.

    Members
    -------
    times : list of (label, seconds)
    draws : dict
        ``{setting label: ndarray (draws, times)}`` accuracies (fractions).
    fp32_accuracy : float
        Same weights, float32 reference forward pass.
    int8_accuracy : float
        Every layer on the int8 digital datapath (no PCM).
    options : AccuracyOptions
    seed : int
    """

    times: list[tuple[str, float]]
    draws: dict[str, np.ndarray]
    fp32_accuracy: float
    int8_accuracy: float
    options: AccuracyOptions
    seed: int
    adc: list[dict[str, Any]] = field(default_factory=list)
    adc_range: str = "fixed"
    calibration_index: list[int] = field(default_factory=list)
    adabs_index: list[int] = field(default_factory=list)
    gdc_bias: list[dict[str, Any]] = field(default_factory=list)

    def mean(self, setting: str) -> np.ndarray:
        return self.draws[setting].mean(axis=0)

    def std(self, setting: str) -> np.ndarray:
        d = self.draws[setting]
        return d.std(axis=0, ddof=1) if d.shape[0] > 1 else np.zeros(d.shape[1])

    def se(self, setting: str) -> np.ndarray:
        return self.std(setting) / math.sqrt(self.draws[setting].shape[0])

    def at(self, setting: str, time_label: str) -> tuple[float, float, float]:
        """(mean, std, SE) of a setting at a time label."""
        i = [lbl for lbl, _ in self.times].index(time_label)
        return float(self.mean(setting)[i]), float(self.std(setting)[i]), float(self.se(setting)[i])


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _indexed_draw(job: tuple[Any, ...]) -> tuple[int, dict[str, list[float]]]:
    return job[4], evaluate_draw(*job)


def evaluate_accuracy(spec: ChipSpec, network: Network, params: Mapping[str, Mapping[str, np.ndarray]],
                      x_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                      options: AccuracyOptions | None = None, seed: int = 0,
                      progress: Callable[[int], None] | None = None,
                      with_adc_usage: bool = False, workers: int | None = None,
                      train_index: np.ndarray | None = None) -> AccuracyResult:
    """The whole experiment: FP32 and int8 baselines, then ``options.draws`` Monte-Carlo draws.

    Parameters
    ----------
    progress : callable, optional
        Called with the draw index after every draw (progress bars).
    with_adc_usage : bool
        Also measure :func:`adc_usage` on 64 test images and :func:`gdc_bias`.
    train_index : ndarray of int, optional
        Data-set index of every training image (see :func:`archmodel.accuracy.prepare`).
    workers : int, optional
        Processes for the draws (default: the CPU count; 1 = serial). The
        result does not depend on it.

    Returns
    -------
    AccuracyResult
    """
    opts = options or AccuracyOptions()
    prep = prepare(spec, network, params, x_train, opts, train_index=train_index)
    fp32 = fp32_accuracy(network, prep.params, x_test, y_test)
    int8 = int8_digital_accuracy(prep, x_test, y_test)
    per: dict[str, list[list[float]]] = {setting_label(p, c): [] for p, c in opts.settings}
    n_workers = max(1, min(int(workers if workers is not None else (os.cpu_count() or 1)), opts.draws))
    results: list[dict[str, list[float]] | None] = [None] * opts.draws
    if n_workers == 1:
        for d in range(opts.draws):
            results[d] = evaluate_draw(prep, x_test, y_test, seed, d)
            if progress is not None:
                progress(d)
    else:
        # Draws are pure functions of their arguments: fan them out over processes
        # (results are identical to the serial loop; collected in draw order).
        # multiprocessing.Pool rather than ProcessPoolExecutor: leaving the
        # ``with`` block (normally, on an error or on Ctrl-C) calls terminate(),
        # which kills the workers at once instead of letting queued draws run on.
        # Workers ignore SIGINT so that a terminal Ctrl-C reaches only the parent.
        ctx = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
        jobs = [(prep, x_test, y_test, seed, d) for d in range(opts.draws)]
        with ctx.Pool(n_workers, initializer=_ignore_sigint) as pool:
            for d, res in pool.imap_unordered(_indexed_draw, jobs):
                results[d] = res
                if progress is not None:
                    progress(d)
    for res in results:
        for key, accs in res.items():  # type: ignore[union-attr]
            per[key].append(accs)
    adc = adc_usage(prep, x_test[:64], seed) if with_adc_usage else []
    bias = gdc_bias(prep, seed) if with_adc_usage and opts.gdc_reference == "measured" else []
    return AccuracyResult(list(opts.times_s), {k: np.asarray(v) for k, v in per.items()}, fp32, int8, opts, int(seed),
                          adc, prep.adc_range, [int(i) for i in prep.calibration_index],
                          [int(i) for i in prep.adabs_index], bias)
