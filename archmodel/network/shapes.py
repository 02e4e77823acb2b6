"""Shape inference: the output shape of a layer from its input shapes (and conv/pool sizes)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from archmodel.network.schema import NetworkError, Shape

if TYPE_CHECKING:
    from archmodel.network.ir import Layer


def conv_output_size(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int,
                     dilation: int = 1) -> int:
    """Output length of a conv or pool along one axis (ceil_mode False).

    ``floor((size + pad_begin + pad_end - dilation·(kernel - 1) - 1) / stride) + 1``
    (PyTorch ``Conv2d``/``MaxPool2d`` docs, ONNX ``Conv``). May be <= 0 when the
    dilated kernel is larger than the padded input.
    """
    return (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1


def _window_out(layer: Layer, shape: Shape, kernel: tuple[int, int],
                dilation: tuple[int, int], key: str) -> tuple[int, int]:
    where = f"layer {layer.name!r} ({layer.op})"
    _, h, w = shape
    pt, pl, pb, pr = layer.attrs["padding"]
    sh, sw = layer.attrs["stride"]
    eff = (dilation[0] * (kernel[0] - 1) + 1, dilation[1] * (kernel[1] - 1) + 1)
    padded = (h + pt + pb, w + pl + pr)
    if eff[0] > padded[0] or eff[1] > padded[1]:
        dil = ""
        if dilation != (1, 1):
            dil = f" with dilation {dilation[0]}x{dilation[1]} (spanning {eff[0]}x{eff[1]})"
        raise NetworkError(
            f"{where}: kernel {kernel[0]}x{kernel[1]}{dil} is larger "
            f"than the padded input {padded[0]}x{padded[1]} (input {h}x{w}, padding "
            f"top/left/bottom/right {pt}/{pl}/{pb}/{pr})",
            layer=layer.name,
            key=key,
        )
    return (conv_output_size(h, kernel[0], sh, pt, pb, dilation[0]),
            conv_output_size(w, kernel[1], sw, pl, pr, dilation[1]))


def _need_rank(layer: Layer, shape: Shape, rank: int, what: str, hint: str = "") -> None:
    if len(shape) != rank:
        raise NetworkError(
            f"layer {layer.name!r} ({layer.op}): expects {what} input, got shape "
            f"{shape} from {layer.inputs[0]!r}{hint}",
            layer=layer.name,
            key="inputs",
        )


def infer_output(layer: Layer, shapes: Sequence[Shape]) -> Shape:
    """Output shape of ``layer`` given its input shapes; raises NetworkError."""
    op, a, name = layer.op, layer.attrs, layer.name
    where = f"layer {name!r} ({op})"
    n = len(shapes)
    if op == "input":
        raise AssertionError("input layers are handled by the caller")
    if op == "add":
        if n < 2:
            raise NetworkError(f"{where}: expects 2 or more inputs, got {n}",
                               layer=name, key="inputs")
    elif op in ("concat", "digital"):
        if n < 1:
            raise NetworkError(f"{where}: expects 1 or more inputs, got 0",
                               layer=name, key="inputs")
    elif n != 1:
        raise NetworkError(f"{where}: expects exactly 1 input, got {n}",
                           layer=name, key="inputs")
    x = shapes[0]

    if op == "conv":
        _need_rank(layer, x, 3, "a (C, H, W)")
        c = x[0]
        g = a["groups"]
        if a["in_channels"] is not None and a["in_channels"] != c:
            raise NetworkError(
                f"{where}: channel mismatch: in_channels is {a['in_channels']} but input "
                f"{layer.inputs[0]!r} has {c} channels (shape {x})",
                layer=name, key="in_channels")
        if c % g or a["out_channels"] % g:
            raise NetworkError(
                f"{where}: groups={g} must divide both the input channels ({c}) and "
                f"out_channels ({a['out_channels']})",
                layer=name, key="groups")
        ho, wo = _window_out(layer, x, a["kernel_size"], a["dilation"], "kernel_size")
        return (a["out_channels"], ho, wo)
    if op == "linear":
        if len(x) == 3:
            _need_rank(layer, x, 1, "a vector (F,)",
                       "; add a flatten layer before it (a sequence (S, F) is also accepted)")
        if a["in_features"] is not None and a["in_features"] != x[-1]:
            raise NetworkError(
                f"{where}: feature mismatch: in_features is {a['in_features']} but input "
                f"{layer.inputs[0]!r} has {x[-1]} features",
                layer=name, key="in_features")
        return (*x[:-1], a["out_features"])
    if op == "digital":
        return tuple(a["shape"])
    if op in ("batchnorm", "activation", "scale"):
        return x
    if op in ("maxpool", "avgpool"):
        _need_rank(layer, x, 3, "a (C, H, W)")
        kh, kw = a["kernel"]
        pt, pl, pb, pr = a["padding"]
        if max(pt, pb) >= kh or max(pl, pr) >= kw:
            raise NetworkError(
                f"{where}: padding top/left/bottom/right {pt}/{pl}/{pb}/{pr} must be smaller "
                f"than the kernel {kh}x{kw} (a window must not lie wholly in the padding)",
                layer=name, key="padding")
        ho, wo = _window_out(layer, x, a["kernel"], (1, 1), "kernel")
        return (x[0], ho, wo)
    if op == "global_avgpool":
        _need_rank(layer, x, 3, "a (C, H, W)")
        return (x[0],)
    if op == "add":
        for i, s in zip(layer.inputs[1:], shapes[1:], strict=True):
            if s != x:
                raise NetworkError(
                    f"{where}: shape mismatch: {layer.inputs[0]!r} gives {x} but {i!r} "
                    f"gives {s} (add needs equal shapes)",
                    layer=name, key="inputs")
        return x
    if op == "concat":
        rank = len(x)
        axis = a["axis"]
        if not -rank <= axis < rank:
            raise NetworkError(
                f"{where}: axis {axis} out of range for rank-{rank} inputs {x} "
                "(axes exclude the batch dimension)",
                layer=name, key="axis")
        axis %= rank
        total = 0
        for i, s in zip(layer.inputs, shapes, strict=True):
            if len(s) != rank or any(s[d] != x[d] for d in range(rank) if d != axis):
                raise NetworkError(
                    f"{where}: shape mismatch: {layer.inputs[0]!r} gives {x} but {i!r} gives "
                    f"{s} (concat along axis {axis} needs the other axes equal)",
                    layer=name, key="inputs")
            total += s[axis]
        return x[:axis] + (total,) + x[axis + 1:]
    if op == "flatten":
        return (math.prod(x),)
    if op == "reshape":
        target = a["shape"]
        size = math.prod(x)
        known = math.prod(v for v in target if v != -1)
        if -1 in target:
            if size % known:
                raise NetworkError(
                    f"{where}: cannot reshape {x} ({size} elements) to {target}",
                    layer=name, key="shape")
            target = tuple(size // known if v == -1 else v for v in target)
        elif known != size:
            raise NetworkError(
                f"{where}: cannot reshape {x} ({size} elements) to {target} ({known} elements)",
                layer=name, key="shape")
        return target
    raise AssertionError(op)  # pragma: no cover
