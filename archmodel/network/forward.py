"""Float32 reference forward pass of a Network (numpy), and random parameters for tests."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from archmodel.network.ir import Layer, Network, check_params, expected_param_shapes
from archmodel.network.schema import NetworkError, Params
from archmodel.network.windows import im2col, strided_windows


def _erf(x: np.ndarray) -> np.ndarray:
    """erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7, below float32 resolution near 1)."""
    t = 1.0 / (1.0 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027
                                                                         + t * 1.061405429))))
    return np.sign(x) * (1.0 - poly * np.exp(-x * x))


def _activation(x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
    kind = attrs["kind"]
    if kind == "relu":
        return np.maximum(x, 0)
    if kind == "relu6":
        return np.clip(x, 0, 6)
    if kind == "leaky_relu":
        return np.where(x >= 0, x, x * np.float32(attrs["alpha"]))
    if kind == "sigmoid":
        return 0.5 * (1 + np.tanh(0.5 * x))
    if kind == "hardsigmoid":
        return np.clip(x + 3, 0, 6) / 6
    if kind == "tanh":
        return np.tanh(x)
    if kind == "gelu":
        if attrs["approximate"] == "tanh":
            c = np.float32(math.sqrt(2 / math.pi))
            return 0.5 * x * (1 + np.tanh(c * (x + np.float32(0.044715) * x ** 3)))
        return 0.5 * x * (1 + _erf(x / np.float32(math.sqrt(2))))
    if kind == "silu":
        return x * (0.5 * (1 + np.tanh(0.5 * x)))
    if kind == "hardswish":
        return x * np.clip(x + 3, 0, 6) / 6
    if kind == "softmax":
        e = np.exp(x - x.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    if kind == "identity":
        return x
    raise AssertionError(kind)  # pragma: no cover


def activation(x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
    """The element-wise (or channel-softmax) activation ``attrs['kind']`` of an IR ``activation`` layer, float."""
    return _activation(x, attrs)


def _param(layer: Layer, merged: Mapping[str, Any], key: str) -> np.ndarray:
    if key not in merged:
        raise NetworkError(
            f"layer {layer.name!r} ({layer.op}) has no parameter {key!r}; set it with "
            "Network.set_params, pass params= to forward(), or use random_params()",
            layer=layer.name, key=key)
    return np.asarray(merged[key], dtype=np.float32)


def _eval_layer(layer: Layer, xs: list[np.ndarray], p: Mapping[str, Any]) -> np.ndarray:
    op, a = layer.op, layer.attrs
    x = xs[0]
    n = x.shape[0]
    if op == "conv":
        w = _param(layer, p, "weight")
        g = a["groups"]
        c_out = a["out_channels"]
        _, ho, wo = layer.output_shape
        cols = im2col(x, a["kernel_size"], stride=a["stride"], padding=a["padding"],
                      dilation=a["dilation"])
        rows = cols.shape[1] // g
        y = np.matmul(w.reshape(g, c_out // g, rows), cols.reshape(n, g, rows, ho * wo))
        y = y.reshape(n, c_out, ho, wo)
        if a["bias"]:
            y = y + _param(layer, p, "bias")[:, None, None]
        return y
    if op == "linear":
        y = x @ _param(layer, p, "weight").T
        if a["bias"]:
            y = y + _param(layer, p, "bias")
        return y
    if op == "scale":
        tail = (1,) * (x.ndim - 2)
        return (x * _param(layer, p, "scale").reshape(-1, *tail)
                + _param(layer, p, "shift").reshape(-1, *tail))
    if op == "digital":
        raise NetworkError(f"layer {layer.name!r} (digital {a['kind']}): no float forward for "
                           "digital-unit operators (the mapper costs them; accuracy needs the "
                           "IR ops)", layer=layer.name)
    if op == "batchnorm":
        tail = (1,) * (x.ndim - 2)
        gamma, beta, mean, var = (_param(layer, p, k).reshape(-1, *tail)
                                  for k in ("gamma", "beta", "mean", "var"))
        scale = gamma / np.sqrt(var + np.float32(a["eps"]))
        return (x - mean) * scale + beta
    if op == "activation":
        return _activation(x, a)
    if op in ("maxpool", "avgpool"):
        pt, pl, pb, pr = a["padding"]
        _, ho, wo = layer.output_shape
        k, s = a["kernel"], a["stride"]
        pad = ((0, 0), (0, 0), (pt, pb), (pl, pr))
        if op == "maxpool":
            xp = np.pad(x, pad, constant_values=-np.inf)
            return strided_windows(xp, k, s, (1, 1), (ho, wo)).max(axis=(2, 3))
        total = strided_windows(np.pad(x, pad), k, s, (1, 1), (ho, wo)).sum(axis=(2, 3))
        if a["count_include_pad"]:
            return total / np.float32(k[0] * k[1])
        ones = np.pad(np.ones((1, 1) + x.shape[2:], dtype=x.dtype), pad)
        count = strided_windows(ones, k, s, (1, 1), (ho, wo)).sum(axis=(2, 3))
        return total / count
    if op == "global_avgpool":
        return x.mean(axis=(2, 3))
    if op == "add":
        y = xs[0]
        for other in xs[1:]:
            y = y + other
        return y
    if op == "concat":
        return np.concatenate(xs, axis=a["axis"] % (x.ndim - 1) + 1)
    if op == "flatten":
        return x.reshape(n, -1)
    if op == "reshape":
        return x.reshape((n,) + layer.output_shape)
    raise AssertionError(op)  # pragma: no cover


def forward(network: Network, x: np.ndarray, params: Params | None = None, *,
            return_all: bool = False) -> np.ndarray | dict[str, np.ndarray]:
    """Float32 reference forward pass of a batch through every layer.

    Parameters
    ----------
    network : Network
    x : array_like, shape (N, \\*input_shape)
        Input batch; cast to float32.
    params : mapping, optional
        ``{layer name: {param name: array}}`` used instead of (on top of) the
        layers' own ``params``. Shapes are checked.
    return_all : bool
        Return ``{layer name: output}`` for every layer (input included)
        instead of only the last layer's output.

    Returns
    -------
    numpy.ndarray of shape (N, \\*network.output_shape), or a dict of such arrays.

    Notes
    -----
    conv: im2col + matmul, zero padding, groups and dilation. batchnorm:
    ``(x - mean)·gamma/sqrt(var + eps) + beta``. maxpool pads with -inf; avgpool
    excludes padded cells from the divisor unless ``count_include_pad`` (ONNX
    default). gelu uses erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7).

    Raises
    ------
    NetworkError
        Wrong input shape, a missing or mis-shaped parameter.
    """
    x = np.asarray(x, dtype=np.float32)
    if x.shape[1:] != network.input_shape or x.ndim < 2:
        raise NetworkError(
            f"network {network.name!r}: input batch has shape {x.shape}, expected "
            f"(N, {', '.join(str(s) for s in network.input_shape)})")
    params = params or {}
    for lname in params:
        network[lname]
    last_use: dict[str, int] = {}
    for k, layer in enumerate(network.layers):
        for i in layer.inputs:
            last_use[i] = k
    outputs: dict[str, np.ndarray] = {network.input_name: x}
    for k, layer in enumerate(network.layers[1:], start=1):
        merged = {**layer.params, **params.get(layer.name, {})}
        if layer.name in params:
            check_params(layer, merged)
        y = _eval_layer(layer, [outputs[i] for i in layer.inputs], merged)
        outputs[layer.name] = np.asarray(y, dtype=np.float32)
        if not return_all:
            for i in set(layer.inputs):
                if last_use[i] <= k and i != network.layers[-1].name:
                    del outputs[i]
    if return_all:
        return outputs
    return outputs[network.layers[-1].name]


def random_params(network: Network, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Random float32 parameters for every conv, linear and batchnorm layer (for tests).

    conv/linear weights are He-normal, ``N(0, 2/fan_in)`` with ``fan_in = rows``
    of the matrix; biases ``N(0, 0.1²)``; batchnorm gamma ``1 + N(0, 0.1²)``,
    beta and mean ``N(0, 0.1²)``, var ``U(0.5, 1.5)`` (all assumed).

    Returns
    -------
    dict
        ``{layer name: {param name: array}}``, suitable for
        :meth:`Network.set_params` and ``forward(params=...)``.
    """
    out: dict[str, dict[str, np.ndarray]] = {}
    for layer in network.layers:
        shapes = expected_param_shapes(layer)
        if not shapes:
            continue
        p: dict[str, np.ndarray] = {}
        if layer.is_matrix_layer:
            rows = layer.matrix_shape[0]
            p["weight"] = rng.normal(0.0, math.sqrt(2.0 / rows), shapes["weight"])
            if "bias" in shapes:
                p["bias"] = rng.normal(0.0, 0.1, shapes["bias"])
        else:
            c = shapes["gamma"]
            p["gamma"] = 1.0 + rng.normal(0.0, 0.1, c)
            p["beta"] = rng.normal(0.0, 0.1, c)
            p["mean"] = rng.normal(0.0, 0.1, c)
            p["var"] = rng.uniform(0.5, 1.5, c)
        out[layer.name] = {k: v.astype(np.float32) for k, v in p.items()}
    return out
