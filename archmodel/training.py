"""Digital training with weight-noise injection (numpy only).

Hardware-aware training after Joshi et al., Nat. Commun. 11, 2473 (2020),
"Training with noise injection": during every forward pass of training, each
matrix layer (conv, linear) uses ``W + σ_rel · max|W| · N(0, 1)`` -- Gaussian
noise relative to that layer's largest weight magnitude, drawn afresh for every
mini-batch; the gradient computed with the noisy weights updates the clean
weights (``max|W|`` is a constant for the gradient). The paper reports that
training starts to suffer above about 8 % (σ_rel = 0.08). Optionally the weights
are clipped after every update to ``clip_sigma`` standard deviations of the layer
(Joshi et al. clip weights too, which raises the typical |W| against max|W| and so
the signal-to-noise ratio on PCM; off by default, ``--clip-sigma``).

Ops with a numpy forward *and* backward pass here; the network may branch and
merge (residual and Inception-style graphs): every layer reads the outputs of
earlier layers, the gradient of a layer read by several others is the sum of
their gradients, and the logits are the last layer's output:

- ``conv`` (any groups, stride, padding, dilation) via im2col
  (``archmodel.network.windows.im2col``; row order ``(c·kh + i)·kw + j``, group
  ``g`` reading its own rows -- a float matmul operand only: the chip's matrices
  are tap-major, docs/design.md §4.8; weight noise is drawn on the OIHW kernel,
  so no order enters the training) and its adjoint col2im;
- ``linear``; ``batchnorm`` in training mode (batch statistics over N, H, W;
  running statistics with momentum 0.1 and unbiased running variance, as
  PyTorch ``BatchNorm2d``), inference mode otherwise;
- ``activation``: every element-wise kind of the IR (relu, relu6, leaky_relu,
  sigmoid, hardsigmoid, tanh, gelu, silu, hardswish, identity; :func:`activation_grad`),
  not the channel softmax; ``maxpool``, ``avgpool``
  (``count_include_pad`` False); ``global_avgpool``; ``flatten``; ``reshape``;
- ``add`` (element-wise sum of equal shapes; the gradient goes to every addend
  unchanged) and ``concat`` (along a channel/feature axis; the gradient is split
  back into the inputs' slices).

Loss: softmax cross-entropy (mean over the batch). Optimizers: Adam (default,
β = 0.9, 0.999, ε = 1e-8) and SGD with momentum. Initialization: He-normal
weights (``N(0, 2/fan_in)``), zero biases, BN γ = 1, β = 0, mean 0, var 1.

Parameters are a dict ``{layer name: {param name: ndarray}}`` with the names of
:class:`archmodel.network.ir.Layer` (conv/linear ``weight`` OIHW / (out, in),
``bias``; batchnorm ``gamma``, ``beta``, ``mean``, ``var``).

Weight files (save and load): :mod:`archmodel.weights_io`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from archmodel.errors import AimcError
from archmodel.network.forward import activation
from archmodel.network.ir import Layer, Network
from archmodel.network.windows import add_windows, im2col, strided_windows

__all__ = [
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "accuracy",
    "backward",
    "cross_entropy",
    "forward_train",
    "init_params",
    "predict",
    "recalibrate_bn",
    "train",
]

Params = dict[str, dict[str, np.ndarray]]

_TRAIN_OPS = ("input", "conv", "linear", "batchnorm", "activation", "maxpool", "avgpool", "global_avgpool", "flatten",
              "reshape", "add", "concat")
#: Element-wise activations with a backward pass here (softmax over channels has none).
_ACTIVATIONS = ("relu", "relu6", "leaky_relu", "sigmoid", "hardsigmoid", "tanh", "gelu", "silu", "hardswish",
                "identity")


class TrainingError(AimcError, ValueError):
    """A network, option or weight file the trainer cannot handle (one clear line)."""


# ----------------------------------------------------------------------------- checks
def check_trainable(network: Network) -> None:
    """Raise :class:`TrainingError` unless every layer is supported here (see module docstring)."""
    for layer in network.layers:
        if layer.op not in _TRAIN_OPS:
            raise TrainingError(f"layer {layer.name!r}: op {layer.op!r} is not supported by the numpy trainer "
                                f"(supported: {', '.join(_TRAIN_OPS)})")
        if layer.op == "activation" and layer.attrs["kind"] not in _ACTIVATIONS:
            raise TrainingError(f"layer {layer.name!r}: activation {layer.attrs['kind']!r} is not supported "
                                f"(supported: {', '.join(_ACTIVATIONS)})")


def init_params(network: Network, rng: np.random.Generator, dtype: Any = np.float32) -> Params:
    """He-normal weights, zero biases, identity batch-norm (see module docstring)."""
    params: Params = {}
    for layer in network.layers:
        if layer.is_matrix_layer:
            rows, _ = layer.matrix_shape
            if layer.op == "conv":
                kh, kw = layer.attrs["kernel_size"]
                shape: tuple[int, ...] = (layer.out_channels, layer.in_channels // layer.groups, kh, kw)
            else:
                shape = (layer.out_channels, layer.in_channels)
            p = {"weight": rng.normal(0.0, math.sqrt(2.0 / rows), shape).astype(dtype)}
            if layer.attrs["bias"]:
                p["bias"] = np.zeros(layer.out_channels, dtype=dtype)
            params[layer.name] = p
        elif layer.op == "batchnorm":
            c = layer.input_shapes[0][0]
            params[layer.name] = {"gamma": np.ones(c, dtype), "beta": np.zeros(c, dtype),
                                  "mean": np.zeros(c, dtype), "var": np.ones(c, dtype)}
    return params


# ----------------------------------------------------------------------------- ops
def activation_grad(x: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
    """Derivative of the element-wise activation ``attrs['kind']`` at ``x`` (same shape).

    The forward functions are :func:`archmodel.network.forward.activation` (PyTorch
    definitions); derivatives by hand: sigmoid ``σ(1−σ)``, tanh ``1−tanh²``,
    SiLU ``σ(1 + x(1−σ))``, GELU (erf) ``Φ(x) + x·φ(x)``, GELU (tanh)
    ``0.5(1+T) + 0.5x(1−T²)·c(1 + 3·0.044715x²)``, ``T = tanh(c(x + 0.044715x³))``,
    ``c = √(2/π)``; hard kinds piecewise (derivative 0 at the kinks' outer side).
    A finite-difference test checks every kind (``tests/test_training.py``).
    """
    kind = attrs["kind"]
    x = np.asarray(x)
    one = np.ones_like(x)
    if kind == "relu":
        return (x > 0).astype(x.dtype)
    if kind == "relu6":
        return ((x > 0) & (x < 6)).astype(x.dtype)
    if kind == "leaky_relu":
        return np.where(x >= 0, one, np.float32(attrs["alpha"]) * one)
    if kind == "sigmoid":
        sg = 0.5 * (1 + np.tanh(0.5 * x))
        return sg * (1 - sg)
    if kind == "hardsigmoid":
        return ((x > -3) & (x < 3)).astype(x.dtype) / 6
    if kind == "tanh":
        return 1 - np.tanh(x) ** 2
    if kind == "silu":
        sg = 0.5 * (1 + np.tanh(0.5 * x))
        return sg * (1 + x * (1 - sg))
    if kind == "hardswish":
        return np.where(x <= -3, 0 * one, np.where(x >= 3, one, (2 * x + 3) / 6))
    if kind == "gelu":
        if attrs["approximate"] == "tanh":
            c = math.sqrt(2 / math.pi)
            t = np.tanh(c * (x + 0.044715 * x ** 3))
            return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * 0.044715 * x * x)
        cdf = activation(x, {"kind": "gelu", "approximate": "none"}) / np.where(x == 0, 1, x)
        cdf = np.where(x == 0, 0.5, cdf)
        return cdf + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
    if kind == "identity":
        return one
    raise TrainingError(f"activation {kind!r} has no backward pass")  # check_trainable refuses it first


def _col2im(cols: np.ndarray, x_shape: tuple[int, ...], layer: Layer) -> np.ndarray:
    """Adjoint of ``im2col``: (N, C·kh·kw, Ho·Wo) -> (N, C, H, W), overlapping windows added."""
    n, c, h, w = x_shape
    kh, kw = layer.attrs["kernel_size"]
    pt, pl, pb, pr = layer.attrs["padding"]
    _, ho, wo = layer.output_shape
    xp = add_windows(cols.reshape(n, c, kh, kw, ho, wo), (h + pt + pb, w + pl + pr), layer.attrs["stride"],
                     layer.attrs["dilation"])
    return xp[:, :, pt:pt + h, pl:pl + w]


def _pool_windows(x: np.ndarray, layer: Layer, fill: float) -> np.ndarray:
    pt, pl, pb, pr = layer.attrs["padding"]
    _, ho, wo = layer.output_shape
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=fill)
    return strided_windows(xp, layer.attrs["kernel"], layer.attrs["stride"], (1, 1), (ho, wo))


def _pool_scatter(dwin: np.ndarray, x_shape: tuple[int, ...], layer: Layer) -> np.ndarray:
    """Add window gradients (N, C, kh, kw, Ho, Wo) back onto the input (N, C, H, W)."""
    n, c, h, w = x_shape
    pt, pl, pb, pr = layer.attrs["padding"]
    dxp = add_windows(dwin, (h + pt + pb, w + pl + pr), layer.attrs["stride"])
    return dxp[:, :, pt:pt + h, pl:pl + w]


def _noisy_weight(w: np.ndarray, noise: float, rng: np.random.Generator | None) -> np.ndarray:
    if noise <= 0 or rng is None:
        return w
    w_max = float(np.max(np.abs(w)))
    return w + (noise * w_max * rng.standard_normal(w.shape)).astype(w.dtype)


def forward_train(network: Network, params: Mapping[str, Mapping[str, np.ndarray]], x: np.ndarray, *,
                  training: bool = False, noise: float = 0.0, rng: np.random.Generator | None = None,
                  momentum: float = 0.1) -> tuple[np.ndarray, list[Any]]:
    """Forward pass keeping what the backward pass needs.

    Parameters
    ----------
    network : Network
        Network of supported ops (:func:`check_trainable`).
    params : mapping
        ``{layer: {param: array}}``; in training mode the batch-norm running
        ``mean``/``var`` arrays are updated in place.
    x : ndarray, (N, \\*input_shape)
    training : bool
        Batch-norm uses batch statistics (and updates the running ones).
    noise : float
        Relative weight noise σ_rel (``σ = σ_rel · max|W|`` per layer); needs ``rng``.
    rng : numpy.random.Generator, optional
        Draws the weight noise.
    momentum : float
        Running-statistics momentum (PyTorch convention).

    Returns
    -------
    (logits, cache)
        ``logits`` (N, classes); ``cache`` is opaque, for :func:`backward`.
    """
    vals: dict[str, np.ndarray] = {
        network.input_name: np.asarray(x, dtype=next(iter(next(iter(params.values())).values())).dtype)}
    cache: list[Any] = []
    for layer in network.layers[1:]:
        op, a = layer.op, layer.attrs
        p = params.get(layer.name, {})
        h = vals[layer.inputs[0]]
        if op == "add":
            h = vals[layer.inputs[0]]
            for other in layer.inputs[1:]:
                h = h + vals[other]
            cache.append(None)
        elif op == "concat":
            xs = [vals[i] for i in layer.inputs]
            axis = a["axis"] % (xs[0].ndim - 1) + 1
            cache.append((axis, [v.shape[axis] for v in xs]))
            h = np.concatenate(xs, axis=axis)
        elif op == "conv":
            w = _noisy_weight(p["weight"], noise, rng)
            cols = im2col(h, a["kernel_size"], stride=a["stride"], padding=a["padding"], dilation=a["dilation"])
            g_ = a["groups"]
            w2 = w.reshape(g_, w.shape[0] // g_, -1)  # (groups, Cout/groups, Cin/groups·kh·kw)
            if g_ == 1:
                y = np.matmul(w2[0], cols)  # (N, Cout, P)
            else:  # group g: output channels g·Cout/G.., input rows g·(Cin/G)·kh·kw.. (im2col order)
                y = np.einsum("gok,ngkp->ngop", w2, cols.reshape(len(cols), g_, w2.shape[2], -1),
                              optimize=True).reshape(len(cols), w.shape[0], -1)
            if a["bias"]:
                y = y + p["bias"][:, None]
            cache.append((cols, w2, h.shape))
            h = y.reshape((h.shape[0],) + layer.output_shape)
        elif op == "linear":
            w = _noisy_weight(p["weight"], noise, rng)
            y = h @ w.T
            if a["bias"]:
                y = y + p["bias"]
            cache.append((h, w))
            h = y
        elif op == "batchnorm":
            axes = (0,) + tuple(range(2, h.ndim))
            shape = (1, -1) + (1,) * (h.ndim - 2)
            eps = a["eps"]
            if training:
                mean = h.mean(axis=axes)
                var = h.var(axis=axes)
                m = h.size // h.shape[1]
                p["mean"][...] = (1 - momentum) * p["mean"] + momentum * mean
                p["var"][...] = (1 - momentum) * p["var"] + momentum * var * (m / max(m - 1, 1))
            else:
                mean, var = p["mean"], p["var"]
            inv = 1.0 / np.sqrt(var + eps)
            xhat = (h - mean.reshape(shape)) * inv.reshape(shape)
            cache.append((xhat, inv, training, axes, shape))
            h = xhat * p["gamma"].reshape(shape) + p["beta"].reshape(shape)
        elif op == "activation":
            if a["kind"] == "relu":
                mask = h > 0
                cache.append(mask)
                h = h * mask
            elif a["kind"] == "identity":
                cache.append(None)
            else:
                cache.append(activation_grad(h, a))
                h = activation(h, a).astype(h.dtype)
        elif op == "maxpool":
            win = _pool_windows(h, layer, -np.inf)
            n, c, kh, kw, ho, wo = win.shape
            flat = win.reshape(n, c, kh * kw, ho, wo)
            arg = flat.argmax(axis=2)
            cache.append((arg, h.shape))
            h = np.take_along_axis(flat, arg[:, :, None], axis=2)[:, :, 0]
        elif op == "avgpool":
            ones = np.ones((1, 1) + h.shape[2:], dtype=h.dtype)
            count = _pool_windows(ones, layer, 0.0).sum(axis=(2, 3))
            if a["count_include_pad"]:
                count = np.full_like(count, a["kernel"][0] * a["kernel"][1])
            cache.append((count, h.shape))
            h = _pool_windows(h, layer, 0.0).sum(axis=(2, 3)) / count
        elif op == "global_avgpool":
            cache.append(h.shape)
            h = h.mean(axis=(2, 3))
        elif op == "flatten":
            cache.append(h.shape)
            h = h.reshape(h.shape[0], -1)
        elif op == "reshape":
            cache.append(h.shape)
            h = h.reshape((h.shape[0],) + tuple(layer.output_shape))
        else:  # pragma: no cover - check_trainable refuses it
            raise TrainingError(f"layer {layer.name!r}: op {op!r} not supported")
        vals[layer.name] = h
    return vals[network.layers[-1].name], cache


def backward(network: Network, params: Mapping[str, Mapping[str, np.ndarray]], cache: list[Any],
             dout: np.ndarray) -> Params:
    """Gradients of a scalar loss w.r.t. every weight, bias, γ and β, given ``dL/dlogits``.

    Weight gradients are taken at the (noisy) weights used in the forward pass.

    Returns
    -------
    dict
        ``{layer: {param: gradient}}`` (no entries for running statistics).
    """
    grads: Params = {}
    layers = network.layers[1:]
    gsum: dict[str, np.ndarray] = {network.layers[-1].name: dout}
    for layer, c in zip(reversed(layers), reversed(cache), strict=True):
        op, a = layer.op, layer.attrs
        if layer.name not in gsum:  # output not used by the logits
            continue
        g = gsum.pop(layer.name)
        if op == "add":
            for i in layer.inputs:
                _add_grad(gsum, i, g)
            continue
        if op == "concat":
            axis, sizes = c
            for i, part in zip(layer.inputs, np.split(g, np.cumsum(sizes)[:-1], axis=axis), strict=True):
                _add_grad(gsum, i, part)
            continue
        if op == "conv":
            cols, w2, x_shape = c
            n = x_shape[0]
            ng, og, kg = w2.shape
            gy = g.reshape(n, ng, og, -1)
            colg = cols.reshape(n, ng, kg, -1)
            gw = np.einsum("ngop,ngkp->gok", gy, colg, optimize=True)
            grads[layer.name] = {"weight": gw.reshape(params[layer.name]["weight"].shape)}
            if a["bias"]:
                grads[layer.name]["bias"] = gy.sum(axis=(0, 3)).reshape(-1)
            gcols = np.einsum("gok,ngop->ngkp", w2, gy, optimize=True).reshape(cols.shape)
            g = _col2im(gcols, x_shape, layer)
        elif op == "linear":
            x, w = c
            grads[layer.name] = {"weight": g.T @ x}
            if a["bias"]:
                grads[layer.name]["bias"] = g.sum(axis=0)
            g = g @ w
        elif op == "batchnorm":
            xhat, inv, training, axes, shape = c
            gamma = params[layer.name]["gamma"]
            grads[layer.name] = {"gamma": (g * xhat).sum(axis=axes), "beta": g.sum(axis=axes)}
            gx = g * gamma.reshape(shape)
            if training:
                m = g.size // g.shape[1]
                g = (inv.reshape(shape) / m) * (m * gx - gx.sum(axis=axes).reshape(shape)
                                                 - xhat * (gx * xhat).sum(axis=axes).reshape(shape))
            else:
                g = gx * inv.reshape(shape)
        elif op == "activation":
            if c is not None:
                g = g * c  # ReLU mask or the activation's derivative at its input
        elif op == "maxpool":
            arg, x_shape = c
            kh, kw = a["kernel"]
            n, ch, ho, wo = g.shape
            dflat = np.zeros((n, ch, kh * kw, ho, wo), dtype=g.dtype)
            np.put_along_axis(dflat, arg[:, :, None], g[:, :, None], axis=2)
            g = _pool_scatter(dflat.reshape(n, ch, kh, kw, ho, wo), x_shape, layer)
        elif op == "avgpool":
            count, x_shape = c
            kh, kw = a["kernel"]
            gw_ = np.broadcast_to((g / count)[:, :, None, None], g.shape[:2] + (kh, kw) + g.shape[2:])
            g = _pool_scatter(np.ascontiguousarray(gw_), x_shape, layer)
        elif op == "global_avgpool":
            x_shape = c
            g = np.broadcast_to(g[:, :, None, None] / (x_shape[2] * x_shape[3]), x_shape).copy()
        elif op in ("flatten", "reshape"):
            g = g.reshape(c)
        _add_grad(gsum, layer.inputs[0], g)
    return grads


def _add_grad(gsum: dict[str, np.ndarray], name: str, g: np.ndarray) -> None:
    """Accumulate the gradient ``g`` of the layer ``name`` (read by several layers: the sum)."""
    gsum[name] = gsum[name] + g if name in gsum else g


#: Most training images :func:`recalibrate_bn` measures (one batch; bounds the memory).
RECALIBRATION_IMAGES = 4096


def recalibrate_bn(network: Network, params: Mapping[str, Mapping[str, np.ndarray]], x: np.ndarray) -> None:
    """Set every batch-norm's running mean and variance to those of ``x[:RECALIBRATION_IMAGES]``, clean weights.

    One training-mode forward pass without weight noise and with momentum 1
    (layer after layer, each BN measured on the output of the re-estimated ones
    before it); the variance is the unbiased one, as the running statistics of
    training (PyTorch ``BatchNorm2d``). ``params`` is updated in place.
    """
    forward_train(network, params, np.asarray(x[:RECALIBRATION_IMAGES]), training=True, momentum=1.0)


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy and its gradient w.r.t. the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    n = logits.shape[0]
    loss = float(-np.mean(np.log(p[np.arange(n), labels] + 1e-12)))
    d = p.copy()
    d[np.arange(n), labels] -= 1.0
    return loss, d / n


def predict(network: Network, params: Mapping[str, Mapping[str, np.ndarray]], x: np.ndarray,
            batch_size: int = 1024) -> np.ndarray:
    """Logits in inference mode (running batch-norm statistics, no noise)."""
    out = [forward_train(network, params, x[i:i + batch_size])[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(out)


def accuracy(network: Network, params: Mapping[str, Mapping[str, np.ndarray]], x: np.ndarray,
             y: np.ndarray) -> float:
    """Top-1 accuracy (fraction) in inference mode."""
    return float(np.mean(predict(network, params, x).argmax(axis=1) == y))


# ----------------------------------------------------------------------------- training loop
@dataclass(frozen=True)
class TrainConfig:
    """Options of :func:`train`.

    Members
    -------
    noise : float
        Relative weight-noise level σ_rel (fraction of each layer's max|W|), >= 0.
    epochs : int
        Passes over the training set.
    batch_size : int
        Mini-batch size.
    lr : float
        Initial learning rate (cosine decay to 0 over the epochs).
    optimizer : str
        ``"adam"`` or ``"sgd"`` (momentum 0.9).
    weight_decay : float
        L2 penalty on conv/linear weights (decoupled for Adam, as AdamW).
    clip_sigma : float or None
        Clip each matrix layer's weights to ±clip_sigma·std(W) after every update.
    frozen_bn_epochs : int
        The last ``frozen_bn_epochs`` epochs run batch norm in inference mode: its
        running statistics are first re-estimated on the training images with the
        clean weights (:func:`recalibrate_bn`) and then held, so the weight noise's
        per-channel offsets reach the loss (in training mode the batch mean removes
        them; docs/design.md, "digits-resnet: the GDC gap"). The statistics are
        re-estimated once more at the end. 0 = off.
    """

    noise: float = 0.0
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    optimizer: str = "adam"
    weight_decay: float = 1e-4
    clip_sigma: float | None = None
    frozen_bn_epochs: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise TrainingError(f"noise must be a number >= 0 (fraction of max|W|), got {self.noise}")
        if self.epochs < 1 or self.batch_size < 1:
            raise TrainingError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise TrainingError(f"lr must be a finite number > 0, got {self.lr}")
        if self.optimizer not in ("adam", "sgd"):
            raise TrainingError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if not 0 <= self.frozen_bn_epochs <= self.epochs:
            raise TrainingError(f"frozen_bn_epochs must be in 0..epochs ({self.epochs}), got {self.frozen_bn_epochs}")
        if self.clip_sigma is not None and not self.clip_sigma > 0:
            raise TrainingError(f"clip_sigma must be > 0, got {self.clip_sigma}")


@dataclass
class TrainResult:
    """Trained parameters and their history.

    Members
    -------
    params : dict
        ``{layer: {param: float32 array}}``.
    train_accuracy, test_accuracy : float
        Final FP32 top-1 accuracy (fraction), inference mode, no noise.
    loss_history : list of float
        Mean training loss of every epoch.
    config : TrainConfig
    seed : int
    """

    params: Params
    train_accuracy: float
    test_accuracy: float
    loss_history: list[float] = field(default_factory=list)
    config: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0


def train(network: Network, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
          config: TrainConfig | None = None, seed: int = 0,
          progress: Callable[[int, float], None] | None = None,
          init: Mapping[str, Mapping[str, np.ndarray]] | None = None) -> TrainResult:
    """Train ``network`` with weight-noise injection; a pure function of its arguments.

    Parameters
    ----------
    network : Network
        Network of supported ops (:func:`check_trainable`); its own params are not touched.
    x_train, y_train, x_test, y_test : ndarray
        Images (N, \\*input_shape) and integer labels.
    config : TrainConfig, optional
    seed : int
        Seeds initialization, shuffling and noise (``numpy.random.default_rng(seed)``).
    progress : callable, optional
        Called as ``progress(epoch, mean_loss)`` after every epoch.
    init : mapping, optional
        Starting parameters (fine-tuning, e.g. of an imported ONNX model), copied as
        float32; default He-normal initialization (:func:`init_params`).

    Returns
    -------
    TrainResult

    Notes
    -----
    BLAS runs single-threaded inside (``threadpoolctl.threadpool_limits(1, "blas")``): a multi-threaded
    OpenBLAS splits a large matmul's sums differently with 1 and 2 threads, so the trained weights depended on
    the machine's core count (found in stop 12: digits-cnn, 2 epochs, different parameters with
    OPENBLAS_NUM_THREADS=1 and 2).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _train(network, x_train, y_train, x_test, y_test, config, seed, progress, init)


def _train(network, x_train, y_train, x_test, y_test, config, seed, progress, init) -> TrainResult:
    """:func:`train`'s body, BLAS already limited to one thread."""
    cfg = config or TrainConfig()
    check_trainable(network)
    rng = np.random.default_rng([int(seed), 0x7A1])
    params = init_params(network, rng)
    if init is not None:
        for ln, p in params.items():
            for pn in p:
                if pn not in init.get(ln, {}):
                    raise TrainingError(f"initial parameters: missing {ln}/{pn}")
                p[pn] = np.array(init[ln][pn], dtype=p[pn].dtype).reshape(p[pn].shape)
    trainable = [(ln, pn) for ln, p in params.items() for pn in p if pn not in ("mean", "var")]
    m1 = {k: np.zeros_like(params[k[0]][k[1]]) for k in trainable}
    m2 = {k: np.zeros_like(params[k[0]][k[1]]) for k in trainable}
    n = len(x_train)
    steps_per_epoch = -(-n // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    step = 0
    history: list[float] = []
    x_train = np.asarray(x_train, dtype=np.float32)
    first_frozen = cfg.epochs - cfg.frozen_bn_epochs
    for epoch in range(cfg.epochs):
        if epoch == first_frozen:
            recalibrate_bn(network, params, x_train)
        order = rng.permutation(n)
        losses = []
        for b0 in range(0, n, cfg.batch_size):
            idx = order[b0:b0 + cfg.batch_size]
            if len(idx) < 2:
                continue
            logits, cache = forward_train(network, params, x_train[idx], training=epoch < first_frozen,
                                          noise=cfg.noise, rng=rng)
            loss, dlogits = cross_entropy(logits, y_train[idx])
            grads = backward(network, params, cache, dlogits.astype(np.float32))
            losses.append(loss)
            lr = 0.5 * cfg.lr * (1 + math.cos(math.pi * step / total))
            step += 1
            for k in trainable:
                ln, pn = k
                p, g = params[ln][pn], grads[ln][pn]
                decay = cfg.weight_decay if pn == "weight" else 0.0
                if cfg.optimizer == "adam":
                    m1[k] = 0.9 * m1[k] + 0.1 * g
                    m2[k] = 0.999 * m2[k] + 0.001 * g * g
                    mh = m1[k] / (1 - 0.9**step)
                    vh = m2[k] / (1 - 0.999**step)
                    p -= (lr * (mh / (np.sqrt(vh) + 1e-8) + decay * p)).astype(p.dtype)
                else:
                    m1[k] = 0.9 * m1[k] + g + decay * p
                    p -= (lr * m1[k]).astype(p.dtype)
            if cfg.clip_sigma is not None:
                for ln, p in params.items():
                    if "weight" in p and network[ln].is_matrix_layer:
                        lim = cfg.clip_sigma * float(np.std(p["weight"]))
                        np.clip(p["weight"], -lim, lim, out=p["weight"])
        history.append(float(np.mean(losses)))
        if progress is not None:
            progress(epoch, history[-1])
    if cfg.frozen_bn_epochs:
        recalibrate_bn(network, params, x_train)
    return TrainResult(params, accuracy(network, params, x_train, y_train), accuracy(network, params, x_test, y_test),
                       history, cfg, int(seed))
