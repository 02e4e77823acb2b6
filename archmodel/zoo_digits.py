"""Built-in networks for the scikit-learn digits set (1×8×8 inputs, 10 classes).

Both are sequential chains of IR layers (:mod:`archmodel.network`) without
parameters; :mod:`archmodel.training` trains them. Every flattened weight matrix
fits one 512-row array of the ``fig11`` preset (the largest has 512 rows), as in
Joshi et al. 2020 where every ResNet-32 layer fits 512 rows.

``digits-mlp``
    flatten → fc1 64→64 → ReLU → fc2 64→64 → ReLU → fc3 64→10.
``digits-cnn``
    conv1 1→16 3×3 → BN → ReLU → maxpool 2 → conv2 16→32 3×3 → BN → ReLU →
    conv3 32→32 3×3 → BN → ReLU → flatten → fc 512→10. Convs have padding 1 and
    no bias (batch-norm follows); conv1 runs at 8×8, conv2 and conv3 at 4×4.
    Matrix shapes (rows × cols): conv1 9×16, conv2 144×32, conv3 288×32,
    fc 512×10; MVMs per image: 64 + 16 + 16 + 1. With the first and last layers
    kept digital, conv2 and conv3 run on PCM.
"""

from __future__ import annotations

from collections.abc import Callable

from archmodel.network.builder import NetworkBuilder
from archmodel.network.ir import Network

__all__ = ["DIGITS_NETWORKS", "digits_cnn", "digits_mlp"]


def digits_mlp() -> Network:
    """Three-layer perceptron for 1×8×8 digits (see module docstring)."""
    b = NetworkBuilder("digits-mlp", (1, 8, 8))
    x = b.flatten("flatten", b.input)
    x = b.linear("fc1", x, 64)
    x = b.relu("relu1", x)
    x = b.linear("fc2", x, 64)
    x = b.relu("relu2", x)
    b.linear("fc3", x, 10)
    return b.build()


def digits_cnn() -> Network:
    """Small CNN with batch-norm for 1×8×8 digits (see module docstring)."""
    b = NetworkBuilder("digits-cnn", (1, 8, 8))
    x = b.conv("conv1", b.input, 16, 3, padding=1, bias=False)
    x = b.batchnorm("bn1", x)
    x = b.relu("relu1", x)
    x = b.maxpool("pool", x, 2)
    x = b.conv("conv2", x, 32, 3, padding=1, bias=False)
    x = b.batchnorm("bn2", x)
    x = b.relu("relu2", x)
    x = b.conv("conv3", x, 32, 3, padding=1, bias=False)
    x = b.batchnorm("bn3", x)
    x = b.relu("relu3", x)
    x = b.flatten("flatten", x)
    b.linear("fc", x, 10)
    return b.build()


#: Zoo entries of this module: name -> constructor (networks without parameters).
DIGITS_NETWORKS: dict[str, Callable[[], Network]] = {
    "digits-mlp": digits_mlp,
    "digits-cnn": digits_cnn,
}
