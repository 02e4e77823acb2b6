"""Weight files: trained parameters to and from ``.npz`` files, and from ONNX initializers.

:func:`save_npz` writes ``"<layer>/<param>"`` arrays plus a ``__meta__`` JSON
string (network name, noise level, seed, the split it was trained on -- ``split``, an
:attr:`archmodel.datasets.DigitsSplit.meta` -- and accuracies); :func:`load_npz` reads them
back. :func:`load_onnx_params` takes trained weights from an ONNX file's
initializers, matched by layer name (see its docstring).
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from archmodel.network.ir import Network
from archmodel.training import Params, TrainingError, init_params

__all__ = ["load_npz", "load_onnx_params", "save_npz", "save_npz_bytes"]


def save_npz_bytes(params: Mapping[str, Mapping[str, np.ndarray]], meta: Mapping[str, Any] | None = None) -> bytes:
    """The ``.npz`` file content of :func:`save_npz` (for atomic writes)."""
    arrays: dict[str, np.ndarray] = {}
    for ln, p in params.items():
        for pn, v in p.items():
            if "/" in ln or "/" in pn:
                raise TrainingError(f"layer or parameter name {ln!r}/{pn!r} contains '/'")
            arrays[f"{ln}/{pn}"] = np.asarray(v, dtype=np.float32)
    arrays["__meta__"] = np.array(json.dumps(dict(meta or {}), sort_keys=True))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save_npz(path: str | Path, params: Mapping[str, Mapping[str, np.ndarray]],
             meta: Mapping[str, Any] | None = None) -> Path:
    """Write parameters as ``.npz``: arrays ``"<layer>/<param>"`` and a ``__meta__`` JSON string."""
    path = Path(path)
    path.write_bytes(save_npz_bytes(params, meta))
    return path


def load_npz(path: str | Path, network: Network | None = None) -> tuple[Params, dict[str, Any]]:
    """Read a file of :func:`save_npz`.

    Parameters
    ----------
    path : path
    network : Network, optional
        If given, every parameter is checked against it (layer names and shapes),
        and every parameter the network needs must be present.

    Returns
    -------
    (params, meta)

    Raises
    ------
    TrainingError
        Unreadable file, unknown layer, wrong shape or missing parameter.
    """
    import zipfile

    if not zipfile.is_zipfile(path):  # np.load would try a pickle and advise loading it "unsafely"
        raise TrainingError(f"cannot read weights {path}: not an .npz file (a zip archive of arrays, as "
                            "'aimc train' writes)")
    try:
        with np.load(path, allow_pickle=False) as z:
            params: Params = {}
            meta: dict[str, Any] = {}
            for key in z.files:
                if key == "__meta__":
                    meta = json.loads(str(z[key]))
                    continue
                ln, _, pn = key.partition("/")
                params.setdefault(ln, {})[pn] = np.asarray(z[key], dtype=np.float32)
    except ValueError as exc:
        if "pickle" in str(exc):  # object arrays; never suggest allow_pickle for an untrusted file
            raise TrainingError(f"cannot read weights {path}: it holds Python objects, not numeric arrays "
                                "('aimc train' writes numeric arrays only)") from None
        raise TrainingError(f"cannot read weights {path}: {str(exc)[:120]}") from None
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        raise TrainingError(f"cannot read weights {path}: corrupt .npz ({type(exc).__name__}: "
                            f"{str(exc)[:100]})") from None
    if network is not None:
        _check_against(network, params, str(path))
    return params, meta


def _check_against(network: Network, params: Params, where: str) -> None:
    reference = init_params(network, np.random.default_rng(0))
    for ln, p in params.items():
        if ln not in reference:
            raise TrainingError(f"{where}: layer {ln!r} has no parameters in network {network.name!r}")
        for pn, v in p.items():
            if pn not in reference[ln]:
                raise TrainingError(f"{where}: layer {ln!r} has no parameter {pn!r}")
            if v.shape != reference[ln][pn].shape:
                raise TrainingError(f"{where}: {ln}/{pn} has shape {v.shape}, network expects {reference[ln][pn].shape}")
    for ln, p in reference.items():
        for pn in p:
            if pn not in params.get(ln, {}):
                raise TrainingError(f"{where}: missing parameter {ln}/{pn} of network {network.name!r}")


#: ONNX initializer suffixes tried for each IR parameter, in order (PyTorch export names first).
ONNX_PARAM_NAMES: dict[str, dict[str, tuple[str, ...]]] = {
    "conv": {"weight": ("weight", "W"), "bias": ("bias", "B")},
    "linear": {"weight": ("weight", "W"), "bias": ("bias", "B")},
    "batchnorm": {"gamma": ("weight", "gamma", "scale"), "beta": ("bias", "beta", "B"),
                  "mean": ("running_mean", "mean", "input_mean"), "var": ("running_var", "var", "input_var")},
}


def load_onnx_params(path: str | Path, network: Network) -> Params:
    """Trained parameters from an ONNX file's initializers, matched by layer name.

    For layer ``L`` and IR parameter ``p`` the initializer names tried are
    ``L.s`` and ``L/s`` and ``L_s`` for each suffix ``s`` in
    :data:`ONNX_PARAM_NAMES` (PyTorch export: ``conv1.weight``,
    ``bn1.running_mean``...). A linear weight stored as ``(in, out)`` (``Gemm``
    without transB) is transposed when that is the only shape that fits.

    Raises
    ------
    TrainingError
        Unreadable file, or a parameter the network needs has no initializer.
    """
    try:
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - onnx raises several types
        raise TrainingError(f"cannot read ONNX file {path}: {exc}") from None
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    reference = init_params(network, np.random.default_rng(0))
    params: Params = {}
    for ln, ref in reference.items():
        op = network[ln].op
        for pn, ref_arr in ref.items():
            found = None
            for suffix in ONNX_PARAM_NAMES[op][pn]:
                for sep in (".", "/", "_"):
                    if f"{ln}{sep}{suffix}" in inits:
                        found = np.asarray(inits[f"{ln}{sep}{suffix}"], dtype=np.float32)
                        break
                if found is not None:
                    break
            if found is None:
                raise TrainingError(f"ONNX file {path}: no initializer for {ln}/{pn} "
                                    f"(tried {ln}.{ONNX_PARAM_NAMES[op][pn][0]} and similar)")
            if found.shape != ref_arr.shape:
                if op == "linear" and pn == "weight" and found.T.shape == ref_arr.shape:
                    found = np.ascontiguousarray(found.T)
                else:
                    raise TrainingError(f"ONNX file {path}: {ln}/{pn} has shape {found.shape}, "
                                        f"network expects {ref_arr.shape}")
            params.setdefault(ln, {})[pn] = found
    return params
