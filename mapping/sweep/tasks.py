"""The pure tasks of a sweep: PPA of one chip and network, training one network, accuracy of one sub-description.

Every task is a module-level function of plain, picklable arguments (a chip
description as its JSON dict, names, numbers) returning plain data, so the same
task runs in-process, in a process pool or on a Dask worker with the same
result. A task never raises for a design that does not work: it returns
``{"ok": False, "reason": "..."}`` (an infeasible point is a row, not a crash).

The accuracy evaluation is called from ONE function, :func:`evaluate_network_accuracy`
(used by the accuracy task and, on a tiny workload, to record which
chip-description fields accuracy reads: :mod:`archmodel.accuracy_key`).
"""

from __future__ import annotations

import io
import os
import time
from typing import Any

import numpy as np

from archmodel.errors import AimcError
from archmodel.spec import ChipSpec

__all__ = ["evaluate_network_accuracy", "ppa_task", "ppa_batch_task", "train_task", "accuracy_task", "accuracy_key", "ppa_totals"]

#: Images of the tiny workload that records the fields accuracy reads.
TRACE_TRAIN_IMAGES = 8
TRACE_TEST_IMAGES = 2


def ppa_totals(spec: ChipSpec, network_name: str, replicate: bool = True, max_chips: int | None = None) -> dict[str, float]:
    """Numeric totals of ``aimc map`` (``report.json`` ``totals``, nested ones flattened with '.') plus ``power_w``.

    ``power_w = energy_per_inference_pj · 1e-12 / (pipeline_interval_ns · 1e-9)``:
    average power when a new inference enters every pipeline interval.

    Raises
    ------
    MappingError, SpecError
        The network does not fit or the description is invalid.
    """
    from archmodel.zoo import load_network

    return _ppa_totals(spec, load_network(network_name), replicate, max_chips)


def _ppa_totals(spec: ChipSpec, net: Any, replicate: bool, max_chips: int | None) -> dict[str, float]:
    from mapping.mapper import MapOptions, map_network
    from mapping.report import report_dict

    result = map_network(spec, net, MapOptions(replicate=replicate, max_chips=max_chips))
    totals = report_dict(result)["totals"]
    out: dict[str, float] = {}
    for k, v in totals.items():
        if isinstance(v, dict):
            out.update({f"{k}.{kk}": float(vv) for kk, vv in v.items()})
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    out["power_w"] = out["energy_per_inference_pj"] * 1e-12 / (out["pipeline_interval_ns"] * 1e-9)
    return out


def _failure(exc: BaseException) -> dict[str, Any]:
    text = str(exc).strip().splitlines()
    return {"ok": False, "reason": text[0] if text else type(exc).__name__, "pid": os.getpid()}


def ppa_task(spec_json: dict[str, Any], network_name: str, replicate: bool, max_chips: int | None) -> dict[str, Any]:
    """PPA of one chip description and one network: ``{"ok", "totals" | "reason", "pid"}``."""
    try:
        spec = ChipSpec.model_validate(spec_json)
        return {"ok": True, "totals": ppa_totals(spec, network_name, replicate, max_chips), "pid": os.getpid()}
    except (AimcError, ValueError) as exc:
        return _failure(exc)


#: Networks loaded by :func:`ppa_batch_task` in this process (name -> network); the zoo and ONNX import are
#: deterministic and a network is only read by the mapper, so a worker loads each network once.
_NETWORKS: dict[str, Any] = {}


def ppa_batch_task(base_json: dict[str, Any], items: list[tuple[str, dict[str, Any]]], network_name: str,
                   replicate: bool, max_chips: int | None) -> dict[str, Any]:
    """PPA of many points for one network, in one task (process and Dask overheads paid once).

    Each point's chip description is built here (``base.replace(**point)``), so the
    parent only hashes the point and the worker does the validation.

    Parameters
    ----------
    base_json : dict
        The base chip description (JSON dict).
    items : list of (key, point)
        ``point``: ``{dotted chip path: value}``.

    Returns
    -------
    dict
        ``{"results": {key: {"ok", "totals" | "reason", "invalid"}}, "pid", "t_import_s", "t_map_s", "cpu_s"}``:
        ``invalid`` is True when the chip description refuses the point (reason ``invalid chip: ...``);
        the time spent loading the network (0 when this process had it already) and building the chip,
        mapping and totals (wall-clock seconds); ``cpu_s``: CPU time of the task (``time.process_time``,
        unaffected by other processes on a shared machine).
    """
    from archmodel.zoo import load_network

    t0, c0 = time.perf_counter(), time.process_time()
    net = _NETWORKS.get(network_name)
    load_error: str | None = None
    if net is None:
        try:
            net = _NETWORKS[network_name] = load_network(network_name)
        except (AimcError, ValueError, OSError) as exc:
            load_error = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    t1 = time.perf_counter()
    base = ChipSpec.model_validate(base_json)
    out: dict[str, Any] = {}
    for key, point in items:
        try:
            spec = base.replace(**point)
        except (AimcError, ValueError) as exc:
            out[key] = {"ok": False, "invalid": True, "reason": "invalid chip: " + str(exc).splitlines()[0]}
            continue
        if load_error is not None:
            out[key] = {"ok": False, "reason": load_error}
            continue
        try:
            out[key] = {"ok": True, "totals": _ppa_totals(spec, net, replicate, max_chips)}
        except (AimcError, ValueError) as exc:
            r = _failure(exc)
            r.pop("pid")
            out[key] = r
    t2 = time.perf_counter()
    return {"results": out, "pid": os.getpid(), "t_import_s": t1 - t0, "t_map_s": t2 - t1,
            "cpu_s": time.process_time() - c0}


def train_task(network_name: str, seed: int, noise: float, epochs: int) -> dict[str, Any]:
    """Train ``network_name`` on the digits split of ``seed``; ``{"ok", "npz": bytes of the params, "pid"}``."""
    from archmodel.digits_experiment import train_on_digits
    from archmodel.zoo import load_network

    try:
        result, _ = train_on_digits(load_network(network_name), seed, noise, epochs, None)
    except (AimcError, ValueError) as exc:
        return _failure(exc)
    flat = {f"{layer}/{name}": v for layer, d in result.params.items() for name, v in d.items()}
    buf = io.BytesIO()
    np.savez(buf, **flat)
    return {"ok": True, "npz": buf.getvalue(), "test_accuracy": float(result.test_accuracy), "pid": os.getpid()}


def _params(npz: bytes) -> dict[str, dict[str, np.ndarray]]:
    params: dict[str, dict[str, np.ndarray]] = {}
    with np.load(io.BytesIO(npz)) as z:
        for k in z.files:
            layer, _, name = k.rpartition("/")
            params.setdefault(layer, {})[name] = z[k]
    return params


def evaluate_network_accuracy(spec: Any, network_name: str, params: dict[str, dict[str, np.ndarray]], seed: int,
                              times: list[str], settings: list[str], draws: int,
                              n_train: int | None = None, n_test: int | None = None) -> dict[str, tuple[float, float]]:
    """THE call of the accuracy evaluation in a sweep (:func:`archmodel.accuracy_experiment.evaluate_accuracy`).

    Parameters
    ----------
    spec : ChipSpec (or a :class:`archmodel.accuracy_key.SpecRecorder`)
    network_name : str
        A digits network of the zoo.
    params : dict
        Trained parameters ``{layer: {name: array}}``.
    seed : int
        Digits split (one fold) and Monte-Carlo seed.
    times : list of str
        Time keys (``1_day``...; :func:`mapping.sweep.config.time_key` of ``TIMES_S`` labels).
    settings : list of str
        ``"<placement>/<compensation>"``.
    draws : int
    n_train, n_test : int, optional
        Use only the first images (the recording workload); default all.

    Returns
    -------
    dict
        ``{"<time>|<setting>": (mean accuracy, standard error)}`` as fractions.
    """
    from archmodel.accuracy import TIMES_S, AccuracyOptions
    from archmodel.accuracy_experiment import evaluate_accuracy
    from archmodel.datasets import load_digits_split
    from archmodel.zoo import load_network
    from mapping.sweep.config import time_key

    data = load_digits_split(seed)
    wanted = [(lbl, t) for lbl, t in TIMES_S if time_key(lbl) in times]
    only = tuple(tuple(s.split("/", 1)) for s in settings)
    opts = AccuracyOptions(times_s=tuple(wanted), draws=draws, only_settings=only)  # type: ignore[arg-type]
    res = evaluate_accuracy(spec, load_network(network_name), params, data.x_train[:n_train], data.x_test[:n_test],
                            data.y_test[:n_test], opts, seed=seed, workers=1)
    out: dict[str, tuple[float, float]] = {}
    for s in settings:
        for lbl, _ in wanted:
            mean, _, se = res.at(s, lbl)
            out[f"{time_key(lbl)}|{s}"] = (mean, se)
    return out


def accuracy_key(spec: ChipSpec, network_name: str, train_key: str, seed: int, times: list[str],
                 settings: list[str], draws: int) -> tuple[str, dict[str, Any]]:
    """(cache key, accuracy sub-description) of one accuracy evaluation.

    The sub-description is recorded by running :func:`evaluate_network_accuracy`
    on a tiny workload (untrained weights, 8 training and 2 test images, one
    draw) with a recording stand-in for ``spec`` (:mod:`archmodel.accuracy_key`);
    the key hashes it with the network, the trained weights' key, seed, times,
    settings and draws.
    """
    from archmodel.accuracy_key import accuracy_subdescription, subdescription_hash
    from archmodel.training import init_params
    from archmodel.zoo import load_network

    params = init_params(load_network(network_name), np.random.default_rng(0))

    def trace(s: Any) -> None:
        evaluate_network_accuracy(s, network_name, params, seed, times, settings, 1, TRACE_TRAIN_IMAGES, TRACE_TEST_IMAGES)

    sub = accuracy_subdescription(spec, trace)
    key = subdescription_hash(sub, network=network_name, train=train_key, seed=seed, times=sorted(times),
                              settings=sorted(settings), draws=draws)
    return key, sub


def accuracy_task(spec_json: dict[str, Any], network_name: str, npz: bytes, seed: int, times: list[str],
                  settings: list[str], draws: int) -> dict[str, Any]:
    """Accuracy of one chip description: ``{"ok", "acc": {"<time>|<setting>": [mean, se]} | "reason", "pid"}``."""
    try:
        spec = ChipSpec.model_validate(spec_json)
        acc = evaluate_network_accuracy(spec, network_name, _params(npz), seed, times, settings, draws)
        return {"ok": True, "acc": {k: [m, s] for k, (m, s) in acc.items()}, "pid": os.getpid()}
    except (AimcError, ValueError) as exc:
        return _failure(exc)
