"""The layer vocabulary of the network IR: ops, their attribute schema, and NetworkError.

One schema serves both the IR (:class:`archmodel.network.ir.Layer` normalizes its
attributes with :func:`normalize_attrs`) and the YAML loader
(:mod:`archmodel.network.yaml_io` builds its pydantic models from
:data:`ATTR_SPECS`), so the two cannot disagree on names, defaults or checks.

Ops and their attributes (canonical form after normalization)
-------------------------------------------------------------
``input``
    none (the shape is ``Network.input_shape``).
``conv``
    ``out_channels`` (int), ``kernel_size`` (kh, kw), ``stride`` (sh, sw) = 1,
    ``padding`` (top, left, bottom, right) = 0 (an int or a symmetric pair
    (ph, pw) is accepted; the 4-tuple follows the ONNX ``pads`` order),
    ``dilation`` (dh, dw) = 1, ``groups`` = 1, ``bias`` = True (the PyTorch
    default), ``in_channels`` = None (optional; checked against the input).
``linear``
    ``out_features`` (int), ``bias`` = True, ``in_features`` = None (optional,
    checked). Acts on the last axis: ``(..., F) -> (..., out)``, one MVM per
    vector of the leading axes (a token sequence ``(S, F)`` takes ``S`` MVMs).
    A feature map ``(C, H, W)`` needs a ``flatten`` first.
``batchnorm``
    ``eps`` = 1e-5. Inference mode over axis 0 (channels) of ``(C, ...)``.
``activation``
    ``kind`` in :data:`ACTIVATIONS`; ``alpha`` = 0.01 for ``leaky_relu``;
    ``approximate`` in {"none", "tanh"} = "none" for ``gelu``.
``maxpool``, ``avgpool``
    ``kernel`` (kh, kw), ``stride`` = kernel, ``padding`` (top, left, bottom,
    right) = 0, every pad smaller than the kernel; ``avgpool`` also takes
    ``count_include_pad`` = False (the ONNX default: padded cells are excluded
    from the divisor; PyTorch's ``AvgPool2d`` default is True). ``ceil_mode`` is
    always False.
``global_avgpool``
    none; ``(C, H, W) -> (C,)`` (no trailing 1×1, so a ``linear`` may follow).
``add``
    two or more inputs of equal shape (no broadcasting).
``concat``
    ``axis`` = 0 (the channel axis; axes exclude the batch dimension, negative
    axes count from the end).
``flatten``
    none; C-order, ``(C, H, W) -> (C·H·W,)``.
``reshape``
    ``shape`` (a tuple of positive ints, at most one -1).
``scale``
    none; a per-channel constant affine ``y = x·scale + shift`` over axis 0
    (params ``scale`` and ``shift``, shape ``(C,)``): the Unsqueeze/Mul/Add
    scales ONNX exporters emit after a batch-norm. Folded into the affine unit.
``digital``
    ``kind`` (the operator, e.g. the ONNX op type ``"LRN"``), ``shape`` (the
    output shape, batch excluded), ``window`` = 1 (input elements read per
    output element: pool kernel ``kh·kw``, LRN ``size``; for a Gather the
    elements of one gathered row), ``const_elems`` = 0
    (elements of constant operands held in the digital unit's SRAM, e.g. an
    embedding table), ``inner`` = 0 (the contracted length of a MatMul between
    two activations). An operator of the digital unit, costed by
    :func:`mapping.costs.digital_op_counts`; no float forward.

Output size of conv and pools (ceil_mode False, as PyTorch and ONNX)::

    H_out = floor((H + pad_top + pad_bottom - dilation·(k - 1) - 1) / stride) + 1

Errors
------
Every structural problem raises :class:`NetworkError` (a ``ValueError``) whose
message names the layer and the problem; the exception also carries ``layer``
(name), ``index`` (position in ``Network.layers``) and ``key`` (the attribute,
``"inputs"``, ``"name"`` or a parameter name) so that loaders can point at the
source, e.g. the YAML path ``layers[3].kernel_size``.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from archmodel.errors import AimcError

OPS: tuple[str, ...] = (
    "input",
    "conv",
    "linear",
    "batchnorm",
    "activation",
    "maxpool",
    "avgpool",
    "global_avgpool",
    "add",
    "concat",
    "flatten",
    "reshape",
    "scale",
    "digital",
)
"""The op names a :class:`Layer` may have."""

ACTIVATIONS: tuple[str, ...] = (
    "relu",
    "relu6",
    "leaky_relu",
    "sigmoid",
    "hardsigmoid",
    "tanh",
    "gelu",
    "silu",
    "hardswish",
    "softmax",
    "identity",
)
"""Activation kinds. ``hardsigmoid`` is PyTorch's ``relu6(x + 3) / 6`` (ONNX's
``HardSigmoid`` defaults differ: alpha 0.2, beta 0.5); ``softmax`` runs over
axis 0 (channels) of one sample."""

MATRIX_OPS = ("conv", "linear")

Shape = tuple[int, ...]
Params = Mapping[str, Mapping[str, Any]]


class NetworkError(AimcError, ValueError):
    """A network is malformed: unknown op or input, bad attribute, shape mismatch, ...

    Attributes
    ----------
    layer : str or None
        Name of the offending layer.
    index : int or None
        Its position in ``Network.layers`` (the input layer is 0), when known.
    key : str or None
        The attribute, ``"inputs"``, ``"name"``, ``"op"`` or parameter name at fault.
    """

    def __init__(
        self,
        message: str,
        *,
        layer: str | None = None,
        index: int | None = None,
        key: str | None = None,
    ) -> None:
        super().__init__(message)
        self.layer = layer
        self.index = index
        self.key = key


# --------------------------------------------------------------------------------------
# attribute normalization (plain ValueError "expected ..." messages; Layer adds context)
# --------------------------------------------------------------------------------------


def is_int(value: Any) -> bool:
    """True for a Python or numpy integer that is not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int(value: Any, minimum: int) -> int:
    what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    if not is_int(value) or value < minimum:
        raise ValueError(f"bad value {value!r}: expected {what}")
    return int(value)


def pos_int(value: Any) -> int:
    """``value`` as an int >= 1; ValueError ("bad value …: expected …") otherwise."""
    return _int(value, 1)


def opt_pos_int(value: Any) -> int | None:
    """None, or ``value`` as an int >= 1; ValueError otherwise."""
    return None if value is None else _int(value, 1)


def _as_pair(value: Any, minimum: int = 1) -> tuple[int, int]:
    """An int or a sequence of 2 ints (each >= minimum) as a pair."""
    word = "positive integer" if minimum == 1 else "non-negative integer"
    expected = f"expected a {word} or a list of 2 {word}s"
    if is_int(value):
        items: list[Any] = [value, value]
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        items = list(value)
    else:
        raise ValueError(f"bad value {value!r}: {expected}")
    if not all(is_int(v) and v >= minimum for v in items):
        raise ValueError(f"bad value {value!r}: {expected}")
    return int(items[0]), int(items[1])


def pos_pair(value: Any) -> tuple[int, int]:
    """An int or a pair of ints >= 1 as ``(h, w)``; ValueError otherwise."""
    return _as_pair(value, 1)


def as_padding(value: Any) -> tuple[int, int, int, int]:
    """Padding as (top, left, bottom, right) from an int, (ph, pw) or a 4-sequence."""
    expected = (
        "expected a non-negative integer, a pair [pad_h, pad_w] or "
        "[top, left, bottom, right] of non-negative integers"
    )
    if is_int(value):
        items: list[Any] = [value] * 4
    elif isinstance(value, (list, tuple)) and len(value) == 2:
        items = [value[0], value[1], value[0], value[1]]
    elif isinstance(value, (list, tuple)) and len(value) == 4:
        items = list(value)
    else:
        raise ValueError(f"bad value {value!r}: {expected}")
    if not all(is_int(v) and v >= 0 for v in items):
        raise ValueError(f"bad value {value!r}: {expected}")
    return int(items[0]), int(items[1]), int(items[2]), int(items[3])


def as_bool(value: Any) -> bool:
    """``value`` if it is a bool (no int coercion); ValueError otherwise."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"bad value {value!r}: expected true or false")
    return bool(value)


def pos_float(value: Any) -> float:
    """``value`` as a finite float > 0 (bools refused); ValueError otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"bad value {value!r}: expected a number > 0")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"bad value {value!r}: expected a number > 0")
    return float(value)


def as_float(value: Any) -> float:
    """``value`` as a float (bools refused); ValueError otherwise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise ValueError(f"bad value {value!r}: expected a number")
    return float(value)


def any_int(value: Any) -> int:
    """``value`` as an int (bools refused); ValueError otherwise."""
    if not is_int(value):
        raise ValueError(f"bad value {value!r}: expected an integer")
    return int(value)


def activation_kind(value: Any) -> str:
    """One of :data:`ACTIVATIONS`; ValueError otherwise."""
    if value not in ACTIVATIONS:
        raise ValueError(f"bad value {value!r}: expected one of {', '.join(ACTIVATIONS)}")
    return str(value)


def gelu_approximate(value: Any) -> str:
    """GELU approximation, ``'none'`` or ``'tanh'`` (ONNX Gelu ``approximate``); ValueError otherwise."""
    if value not in ("none", "tanh"):
        raise ValueError(f"bad value {value!r}: expected 'none' or 'tanh'")
    return str(value)


def nonneg_int(value: Any) -> int:
    """``value`` as an int >= 0; ValueError otherwise."""
    return _int(value, 0)


def op_kind(value: Any) -> str:
    """A non-empty operator name (the ONNX op type of a ``digital`` layer); ValueError otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"bad value {value!r}: expected a non-empty operator name")
    return value


def shape_tuple(value: Any) -> tuple[int, ...]:
    """A list of positive ints as a shape tuple (no batch axis); ValueError otherwise."""
    if (not isinstance(value, (list, tuple))
            or not all(is_int(v) and v > 0 for v in value)):
        raise ValueError(f"bad value {value!r}: expected a list of positive integers")
    return tuple(int(v) for v in value)


def reshape_target(value: Any) -> tuple[int, ...]:
    """A reshape target: positive ints with at most one -1 (inferred); ValueError otherwise."""
    expected = "expected a list of positive integers with at most one -1"
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError(f"bad value {value!r}: {expected}")
    if not all(is_int(v) and (v > 0 or v == -1) for v in value):
        raise ValueError(f"bad value {value!r}: {expected}")
    if sum(1 for v in value if v == -1) > 1:
        raise ValueError(f"bad value {value!r}: {expected}")
    return tuple(int(v) for v in value)


REQUIRED = object()

# op -> {attribute: (default, normalizer)}; defaults pass through the normalizer.
ATTR_SPECS: dict[str, dict[str, tuple[Any, Callable[[Any], Any]]]] = {
    "input": {},
    "conv": {
        "out_channels": (REQUIRED, pos_int),
        "kernel_size": (REQUIRED, pos_pair),
        "stride": (1, pos_pair),
        "padding": (0, as_padding),
        "dilation": (1, pos_pair),
        "groups": (1, pos_int),
        "bias": (True, as_bool),
        "in_channels": (None, opt_pos_int),
    },
    "linear": {
        "out_features": (REQUIRED, pos_int),
        "bias": (True, as_bool),
        "in_features": (None, opt_pos_int),
    },
    "batchnorm": {"eps": (1e-5, pos_float)},
    "activation": {
        "kind": (REQUIRED, activation_kind),
        "alpha": (0.01, as_float),
        "approximate": ("none", gelu_approximate),
    },
    "maxpool": {
        "kernel": (REQUIRED, pos_pair),
        "stride": (None, pos_pair),
        "padding": (0, as_padding),
    },
    "avgpool": {
        "kernel": (REQUIRED, pos_pair),
        "stride": (None, pos_pair),
        "padding": (0, as_padding),
        "count_include_pad": (False, as_bool),
    },
    "global_avgpool": {},
    "add": {},
    "concat": {"axis": (0, any_int)},
    "flatten": {},
    "reshape": {"shape": (REQUIRED, reshape_target)},
    "scale": {},
    "digital": {
        "kind": (REQUIRED, op_kind),
        "shape": (REQUIRED, shape_tuple),
        "window": (1, pos_int),
        "const_elems": (0, nonneg_int),
        "inner": (0, nonneg_int),
    },
}

# Activation attributes that apply to only one kind.
KIND_ATTRS = {"alpha": "leaky_relu", "approximate": "gelu"}

PARAM_NAMES = {
    "conv": ("weight", "bias"),
    "linear": ("weight", "bias"),
    "batchnorm": ("gamma", "beta", "mean", "var"),
    "scale": ("scale", "shift"),
}


def normalize_attrs(name: str, op: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Check and normalize the attributes of one layer against :data:`ATTR_SPECS` (defaults filled in).

    Returns
    -------
    dict
        Attribute name -> normalized value (pairs as tuples, padding as 4-tuples).

    Raises
    ------
    NetworkError
        An unknown or missing attribute, or a bad value, named with the layer and op
        (``layer 'c1' (conv): kernel_size: bad value …: expected …``).
    """
    spec = ATTR_SPECS[op]
    where = f"layer {name!r} ({op})"
    for key in attrs:
        if key not in spec:
            allowed = ", ".join(spec) or "none"
            close = difflib.get_close_matches(str(key), list(spec), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise NetworkError(
                f"{where}: unknown attribute {key!r}; allowed: {allowed}{hint}",
                layer=name,
                key=str(key),
            )
    if op == "activation":
        kind = attrs.get("kind")
        for key, owner in KIND_ATTRS.items():
            if key in attrs and kind != owner:
                raise NetworkError(
                    f"{where}: attribute {key!r} applies only to kind {owner!r}, not {kind!r}",
                    layer=name,
                    key=key,
                )
    out: dict[str, Any] = {}
    for key, (default, norm) in spec.items():
        if op == "activation" and key in KIND_ATTRS and attrs.get("kind") != KIND_ATTRS[key]:
            continue
        if key in attrs:
            value = attrs[key]
        elif default is REQUIRED:
            raise NetworkError(f"{where}: missing attribute {key!r}", layer=name, key=key)
        else:
            value = default
        if value is None and key == "stride":
            out[key] = out["kernel"]
            continue
        try:
            out[key] = norm(value)
        except ValueError as exc:
            raise NetworkError(f"{where}: {key}: {exc}", layer=name, key=key) from None
    return out


# --------------------------------------------------------------------------------------
# Layer
# --------------------------------------------------------------------------------------
