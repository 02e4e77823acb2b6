"""NetworkBuilder: write a network in Python, one method call per layer, shapes checked as you go."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from archmodel.network.ir import Layer, Network, as_shape, check_params, unknown_input_error
from archmodel.network.schema import NetworkError, Shape
from archmodel.network.shapes import infer_output


class NetworkBuilder:
    """Write a network in Python; each method adds one layer and returns its name.

    Shapes are inferred as layers are added, so a mistake raises
    :class:`NetworkError` at the line that makes it.

    Examples
    --------
    >>> b = NetworkBuilder("tiny", input_shape=(3, 8, 8))
    >>> x = b.conv("c1", b.input, 16, 3, padding=1, bias=False)
    >>> x = b.relu("r1", b.batchnorm("bn1", x))
    >>> x = b.linear("fc", b.global_avgpool("gap", x), 10)
    >>> b.build().output_shape
    (10,)
    """

    def __init__(self, name: str, input_shape: Sequence[int], input_name: str = "input") -> None:
        self.name = name
        self.input_shape = as_shape(input_shape, f"network {name!r}: input_shape")
        first = Layer(input_name, "input", input_shapes=(), output_shape=self.input_shape)
        self._layers: list[Layer] = [first]
        self._shapes: dict[str, Shape] = {input_name: self.input_shape}

    @property
    def input(self) -> str:
        """Name of the input layer."""
        return self._layers[0].name

    @property
    def last(self) -> str:
        """Name of the most recently added layer."""
        return self._layers[-1].name

    def shape(self, name: str) -> Shape:
        """Inferred output shape of layer ``name``."""
        if name not in self._shapes:
            raise NetworkError(f"network {self.name!r}: no layer {name!r} yet", layer=name)
        return self._shapes[name]

    def layer(self, name: str, op: str, inputs: str | Sequence[str], *,
              params: Mapping[str, Any] | None = None, **attrs: Any) -> str:
        """Add a layer of any op; ``attrs`` as in the module docstring. Returns ``name``."""
        layer = Layer(name, op, (inputs,) if isinstance(inputs, str) else tuple(inputs),
                      attrs, params=dict(params or {}))
        index = len(self._layers)
        if name in self._shapes:
            raise NetworkError(f"layer {name!r} ({op}): duplicate name; layer names must be "
                               "unique", layer=name, index=index, key="name")
        if op == "input":
            raise NetworkError(f"layer {name!r}: a network has exactly one input layer",
                               layer=name, index=index, key="op")
        for i in layer.inputs:
            if i not in self._shapes:
                raise unknown_input_error(layer, index, i, [*self._layers, layer])
        try:
            layer.input_shapes = tuple(self._shapes[i] for i in layer.inputs)
            layer.output_shape = infer_output(layer, layer.input_shapes)
            check_params(layer, layer.params)
        except NetworkError as exc:
            exc.index = index
            raise
        self._layers.append(layer)
        self._shapes[name] = layer.output_shape
        return name

    def conv(self, name: str, x: str, out_channels: int, kernel_size: int | Sequence[int], *,
             stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
             dilation: int | Sequence[int] = 1, groups: int = 1, bias: bool = True) -> str:
        """2-D convolution (cross-correlation, as PyTorch/ONNX)."""
        return self.layer(name, "conv", x, out_channels=out_channels, kernel_size=kernel_size,
                          stride=stride, padding=padding, dilation=dilation, groups=groups,
                          bias=bias)

    def linear(self, name: str, x: str, out_features: int, *, bias: bool = True) -> str:
        """Fully connected layer on a vector input."""
        return self.layer(name, "linear", x, out_features=out_features, bias=bias)

    def batchnorm(self, name: str, x: str, *, eps: float = 1e-5) -> str:
        """Batch normalization (inference mode) over the channel axis."""
        return self.layer(name, "batchnorm", x, eps=eps)

    def activation(self, name: str, x: str, kind: str, **attrs: Any) -> str:
        """Element-wise activation of ``kind`` (see :data:`ACTIVATIONS`)."""
        return self.layer(name, "activation", x, kind=kind, **attrs)

    def relu(self, name: str, x: str) -> str:
        """ReLU."""
        return self.activation(name, x, "relu")

    def relu6(self, name: str, x: str) -> str:
        """ReLU6, ``min(max(x, 0), 6)``."""
        return self.activation(name, x, "relu6")

    def sigmoid(self, name: str, x: str) -> str:
        """Logistic sigmoid."""
        return self.activation(name, x, "sigmoid")

    def tanh(self, name: str, x: str) -> str:
        """Hyperbolic tangent."""
        return self.activation(name, x, "tanh")

    def gelu(self, name: str, x: str, *, approximate: str = "none") -> str:
        """GELU (exact erf form, or the tanh approximation)."""
        return self.activation(name, x, "gelu", approximate=approximate)

    def maxpool(self, name: str, x: str, kernel: int | Sequence[int], *,
                stride: int | Sequence[int] | None = None,
                padding: int | Sequence[int] = 0) -> str:
        """Max pooling (stride defaults to the kernel)."""
        return self.layer(name, "maxpool", x, kernel=kernel, stride=stride, padding=padding)

    def avgpool(self, name: str, x: str, kernel: int | Sequence[int], *,
                stride: int | Sequence[int] | None = None, padding: int | Sequence[int] = 0,
                count_include_pad: bool = False) -> str:
        """Average pooling (stride defaults to the kernel; pads excluded from the divisor)."""
        return self.layer(name, "avgpool", x, kernel=kernel, stride=stride, padding=padding,
                          count_include_pad=count_include_pad)

    def global_avgpool(self, name: str, x: str) -> str:
        """Global average pooling, ``(C, H, W) -> (C,)``."""
        return self.layer(name, "global_avgpool", x)

    def add(self, name: str, *xs: str) -> str:
        """Element-wise sum of two or more equal-shape inputs."""
        return self.layer(name, "add", xs)

    def concat(self, name: str, *xs: str, axis: int = 0) -> str:
        """Concatenation along ``axis`` (0 = channels; batch excluded)."""
        return self.layer(name, "concat", xs, axis=axis)

    def flatten(self, name: str, x: str) -> str:
        """C-order flatten to a vector."""
        return self.layer(name, "flatten", x)

    def reshape(self, name: str, x: str, shape: Sequence[int]) -> str:
        """Reshape (batch excluded; at most one -1)."""
        return self.layer(name, "reshape", x, shape=tuple(shape))

    def build(self) -> Network:
        """The finished :class:`Network` (validated once more)."""
        return Network(self.name, self.input_shape, list(self._layers))
