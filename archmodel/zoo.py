"""The built-in network zoo: networks by name, and one loader for every network source.

``--network`` takes one namespace (docs/design.md, "The command line"): a zoo name,
a path to an ONNX file (``.onnx``) or a YAML layer list (``.yaml``/``.yml``).
:func:`load_network` resolves all three.

Zoo networks (structure only; no trained weights; batch excluded from shapes)
-----------------------------------------------------------------------------
``resnet32``
    ResNet-32 for CIFAR-10 (He et al., CVPR 2016, Sec. 4.2): 3×32×32 input, a
    3×3 stem conv, 3 stages of 5 basic blocks with widths 16/32/64, global
    average pool, FC 64→10 with bias. Where the shape changes the shortcut is a
    1×1 projection conv + batch-norm (He et al.'s option B; option A's
    zero-padding shortcut has no op in the IR).
``resnet32-joshi2020``
    The seed paper's network (Joshi et al., Nat. Commun. 11, 2473, 2020,
    Methods): as ``resnet32`` with stage widths 16/28/56 so every flattened
    layer fits 512 rows (the largest, 3×3×56 = 504 rows), 1×1 projection
    shortcuts where the shape changes, FC 56→10 with bias. Conv and FC weights
    plus the FC bias: 361,722, the count Joshi et al. publish.
``resnet18``
    ResNet-18 for ImageNet (He et al. 2016, Table 1): 3×224×224 input, 7×7/2
    stem, 3×3/2 max pool, 4 stages of 2 basic blocks (64/128/256/512), 1×1/2
    projection shortcuts, FC 512→1000.
``vgg8``
    VGG-8 for CIFAR-10 after IBM aihwkit's example ``11_vgg8_training.py``
    (channel base 48): conv 48, 48, pool, 96, 96, pool, 144, 144, pool (each
    3×3 conv followed by batch-norm and ReLU), FC 2304→384, FC 384→10.
``vgg16``
    VGG-16 (configuration D of Simonyan & Zisserman, ICLR 2015) for ImageNet:
    13 3×3 convs with bias, 5 max pools, FC 25088→4096→4096→1000.
``mlp``
    A 784-256-128-10 multilayer perceptron with ReLU (MNIST-sized; assumed).
``lstm``
    A 2-layer LSTM (input 128, hidden 256, T = 32 timesteps, 10 classes;
    assumed sizes) written as its matrix products. Each LSTM layer computes
    per timestep ``[i f g o] = W · [x_t; h_{t-1}] + b``, one matrix of
    ``(X + H)`` rows × ``4H`` columns; over T timesteps that is T MVMs on the
    same weights. In the IR the sequence is a ``(features, 1, T)`` map and the
    gate matrix a 1×1 conv (bias), so ``mvm_count = T`` and the weights are
    counted once (weight-stationary). The element-wise cell update
    (``c_t = f⊙c_{t-1} + i⊙g``, ``h_t = o⊙tanh(c_t)``) is not a matrix
    product; it runs in the digital periphery and is stood in by a sigmoid and
    an average pool with the right shapes ((4H,1,T) → (H,1,T)). The IR is a
    DAG, so the recurrent operand ``h_{t-1}`` is part of the network input for
    layer 1 and, for layer 2, stood in by a same-shape copy of ``h1`` (a
    concat): the matrix products and their MVM counts are exact, the data are
    not. The head reads the final step (a stand-in pool over T) into FC H→10.

``vit-tiny``
    ViT-Ti/16 (DeiT-Tiny: Touvron et al., ICML 2021, Table 1; Steiner et al.,
    "How to train your ViT", 2021): 224×224 image, 16×16 patches (196 + class
    token = 197 tokens), D = 192, 12 pre-LN blocks of 3 heads, MLP 768, 1000
    classes. 5,647,872 matrix weights (patch conv, Q/K/V/out, MLP, head),
    21,928 biases and 47,616 digital SRAM parameters (class token, position
    embedding, LayerNorms): 5.72 M, the published 5.7 M. ``seq_len`` (default
    197) = patches + 1 must be a square + 1.
``bert-tiny``
    BERT-Tiny (Turc et al., "Well-Read Students Learn Better", 2019; the
    ``google/bert_uncased_L-2_H-128_A-2`` checkpoint): L = 2 post-LN layers,
    H = 128, 2 heads, FFN 512, WordPiece vocabulary 30,522, sequence 128 by
    default. 393,216 matrix weights + 2,304 biases on tiles; the word embedding
    table (3,906,816), the position embedding rows used (S·128) and the
    LayerNorms (1,280) are digital SRAM parameters. The published 4.4 M also
    counts all 512 position rows, the token-type table and the pooler (not
    built here: no pooler, one segment).

Transformers are built as ONNX graphs (:mod:`archmodel.zoo_transformers`) and
imported, so their non-matrix operators land on the digital unit as a user's
export would.

Digits networks (``digits-mlp``, ``digits-cnn``) come from
:mod:`archmodel.zoo_digits` when that module is present.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

from archmodel.network.builder import NetworkBuilder
from archmodel.network.ir import Network
from archmodel.network.schema import NetworkError

__all__ = ["SEQUENCE_NETWORKS", "ZOO", "bert_tiny", "get_network", "vit_tiny", "list_networks", "load_network"]


# --------------------------------------------------------------------------------------
# ResNets
# --------------------------------------------------------------------------------------


def _conv_bn(b: NetworkBuilder, name: str, x: str, c: int, k: int, stride: int = 1,
             relu: bool = True) -> str:
    y = b.conv(name, x, c, k, stride=stride, padding=k // 2, bias=False)
    y = b.batchnorm(f"{name}_bn", y)
    return b.relu(f"{name}_relu", y) if relu else y


def _basic_block(b: NetworkBuilder, name: str, x: str, c_out: int, stride: int) -> str:
    """He et al. 2016 basic block; 1×1 projection shortcut where the shape changes."""
    c_in = b.shape(x)[0]
    y = _conv_bn(b, f"{name}_conv1", x, c_out, 3, stride)
    y = _conv_bn(b, f"{name}_conv2", y, c_out, 3, 1, relu=False)
    short = x
    if stride != 1 or c_in != c_out:
        short = _conv_bn(b, f"{name}_proj", x, c_out, 1, stride, relu=False)
    y = b.add(f"{name}_add", y, short)
    return b.relu(f"{name}_relu", y)


def _cifar_resnet(name: str, widths: tuple[int, int, int], blocks: int = 5,
                  classes: int = 10) -> Network:
    b = NetworkBuilder(name, (3, 32, 32))
    x = _conv_bn(b, "conv1", b.input, widths[0], 3)
    for s, w in enumerate(widths):
        for k in range(blocks):
            x = _basic_block(b, f"s{s + 1}b{k + 1}", x, w, 2 if (s > 0 and k == 0) else 1)
    x = b.global_avgpool("gap", x)
    b.linear("fc", x, classes, bias=True)
    return b.build()


def resnet32() -> Network:
    """ResNet-32 on CIFAR-10, widths 16/32/64 (He et al. 2016), projection shortcuts."""
    return _cifar_resnet("resnet32", (16, 32, 64))


def resnet32_joshi2020() -> Network:
    """ResNet-32 of Joshi et al. 2020: widths 16/28/56, 361,722 weights (incl. FC bias)."""
    return _cifar_resnet("resnet32-joshi2020", (16, 28, 56))


def resnet18() -> Network:
    """ResNet-18 on ImageNet, 3×224×224 (He et al. 2016, Table 1)."""
    b = NetworkBuilder("resnet18", (3, 224, 224))
    x = _conv_bn(b, "conv1", b.input, 64, 7, 2)
    x = b.maxpool("pool1", x, 3, stride=2, padding=1)
    for s, w in enumerate((64, 128, 256, 512)):
        for k in range(2):
            x = _basic_block(b, f"s{s + 1}b{k + 1}", x, w, 2 if (s > 0 and k == 0) else 1)
    x = b.global_avgpool("gap", x)
    b.linear("fc", x, 1000)
    return b.build()


# --------------------------------------------------------------------------------------
# VGGs, MLP, LSTM
# --------------------------------------------------------------------------------------


def vgg8() -> Network:
    """VGG-8 on CIFAR-10 after aihwkit's example 11 (channel base 48)."""
    b = NetworkBuilder("vgg8", (3, 32, 32))
    x = b.input
    for s, c in enumerate((48, 96, 144)):
        for k in range(2):
            x = _conv_bn(b, f"conv{s + 1}_{k + 1}", x, c, 3)
        x = b.maxpool(f"pool{s + 1}", x, 2)
    x = b.flatten("flatten", x)
    x = b.relu("fc1_relu", b.linear("fc1", x, 384))
    b.linear("fc2", x, 10)
    return b.build()


def vgg16() -> Network:
    """VGG-16 (configuration D, Simonyan & Zisserman 2015) on ImageNet 3×224×224."""
    b = NetworkBuilder("vgg16", (3, 224, 224))
    x = b.input
    for s, (c, n) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))):
        for k in range(n):
            x = b.relu(f"conv{s + 1}_{k + 1}_relu", b.conv(f"conv{s + 1}_{k + 1}", x, c, 3, padding=1))
        x = b.maxpool(f"pool{s + 1}", x, 2)
    x = b.flatten("flatten", x)
    x = b.relu("fc6_relu", b.linear("fc6", x, 4096))
    x = b.relu("fc7_relu", b.linear("fc7", x, 4096))
    b.linear("fc8", x, 1000)
    return b.build()


def mlp() -> Network:
    """784-256-128-10 MLP with ReLU (assumed sizes, MNIST-like)."""
    b = NetworkBuilder("mlp", (784,))
    x = b.relu("fc1_relu", b.linear("fc1", b.input, 256))
    x = b.relu("fc2_relu", b.linear("fc2", x, 128))
    b.linear("fc3", x, 10)
    return b.build()


#: LSTM sizes (assumed): input features, hidden units, timesteps, classes.
LSTM_INPUT, LSTM_HIDDEN, LSTM_STEPS, LSTM_CLASSES = 128, 256, 32, 10


def lstm() -> Network:
    """2-layer LSTM as its matrix products (see the module docstring)."""
    x_dim, h_dim, steps = LSTM_INPUT, LSTM_HIDDEN, LSTM_STEPS
    b = NetworkBuilder("lstm", (x_dim + h_dim, 1, steps), input_name="x_h")

    def cell(name: str, gates: str) -> str:
        y = b.sigmoid(f"{name}_act", gates)
        y = b.reshape(f"{name}_split", y, (1, 4 * h_dim, steps))
        y = b.avgpool(f"{name}_cell", y, (4, 1))          # stand-in: (4H,1,T) -> (H,1,T)
        return b.reshape(f"{name}_h", y, (h_dim, 1, steps))

    h1 = cell("lstm1", b.conv("lstm1_gates", b.input, 4 * h_dim, 1))
    x2 = b.concat("lstm2_in", h1, h1)                     # [h1_t; h2_{t-1}] stand-in
    h2 = cell("lstm2", b.conv("lstm2_gates", x2, 4 * h_dim, 1))
    last = b.flatten("last_step", b.avgpool("last_step_pool", h2, (1, steps)))
    b.linear("fc", last, LSTM_CLASSES)
    return b.build()


def vit_tiny(seq_len: int | None = None) -> Network:
    """ViT-Ti/16 (see the module docstring); ``seq_len`` tokens (default 197)."""
    from archmodel.onnx_import import import_onnx_model
    from archmodel.zoo_transformers import vit_onnx

    try:
        model = vit_onnx(seq_len=seq_len or 197, name="vit-tiny")
    except ValueError as exc:
        raise NetworkError(f"vit-tiny: {exc}", key="seq_len") from None
    return import_onnx_model(model, name="vit-tiny", origin="vit-tiny")


def bert_tiny(seq_len: int | None = None) -> Network:
    """BERT-Tiny (see the module docstring); ``seq_len`` tokens (default 128)."""
    from archmodel.onnx_import import import_onnx_model
    from archmodel.zoo_transformers import bert_onnx

    try:
        model = bert_onnx(seq_len=seq_len or 128, name="bert-tiny")
    except ValueError as exc:
        raise NetworkError(f"bert-tiny: {exc}", key="seq_len") from None
    return import_onnx_model(model, name="bert-tiny", origin="bert-tiny")


SEQUENCE_NETWORKS: dict[str, Callable[..., Network]] = {"vit-tiny": vit_tiny, "bert-tiny": bert_tiny}
"""Zoo networks that take ``seq_len``."""

ZOO: dict[str, Callable[[], Network]] = {
    "resnet32": resnet32,
    "resnet32-joshi2020": resnet32_joshi2020,
    "resnet18": resnet18,
    "vgg8": vgg8,
    "vgg16": vgg16,
    "mlp": mlp,
    "lstm": lstm,
    "vit-tiny": vit_tiny,
    "bert-tiny": bert_tiny,
}
"""Built-in networks: name -> builder (no arguments) returning a fresh :class:`Network`."""


def _registry() -> dict[str, Callable[[], Network]]:
    """ZOO plus the digits networks when :mod:`archmodel.zoo_digits` is there (lazy import)."""
    reg = dict(ZOO)
    try:
        from archmodel.zoo_digits import DIGITS_NETWORKS
    except ModuleNotFoundError as exc:
        if exc.name != "archmodel.zoo_digits":
            raise
        return reg
    for name, fn in DIGITS_NETWORKS.items():
        reg.setdefault(name, fn)
    return reg


def list_networks() -> list[str]:
    """Names of every zoo network, sorted."""
    return sorted(_registry())


def get_network(name: str, seq_len: int | None = None) -> Network:
    """A fresh instance of zoo network ``name``; ``seq_len`` for a transformer
    (:data:`SEQUENCE_NETWORKS`), None = its default.

    Raises
    ------
    NetworkError
        Unknown name (the message lists the zoo names and a close match);
        ``seq_len`` given for a network without a sequence, or invalid for it.
    """
    reg = _registry()
    if name not in reg:
        close = difflib.get_close_matches(name, list(reg), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise NetworkError(
            f"unknown network {name!r}{hint}: expected a zoo name ({', '.join(sorted(reg))}) "
            "or a path to an .onnx or .yaml file")
    if name in SEQUENCE_NETWORKS:
        return SEQUENCE_NETWORKS[name](seq_len)
    if seq_len is not None:
        raise NetworkError(f"network {name!r} has no sequence length; --seq-len applies to "
                           f"{', '.join(SEQUENCE_NETWORKS)}", key="seq_len")
    return reg[name]()


def load_network(name_or_path: str | Path, seq_len: int | None = None, **onnx_options: object) -> Network:
    """Load a network from a zoo name, an ONNX file or a YAML layer list.

    Parameters
    ----------
    name_or_path : str or Path
        A zoo name (:func:`list_networks`), a ``.onnx`` path or a ``.yaml``/``.yml`` path.
    seq_len : int, optional
        Sequence length of a zoo transformer (:func:`get_network`); an error for files.
    **onnx_options
        Passed to :func:`archmodel.onnx_import.import_onnx` for ONNX files
        (e.g. ``fold_batchnorm=True``).

    Raises
    ------
    NetworkError
        Unknown zoo name, missing file, a file of another kind, or any problem
        the importer or the YAML loader reports (one line).
    """
    s = str(name_or_path)
    path = Path(s)
    suffix = path.suffix.lower()
    if isinstance(name_or_path, Path) or suffix in (".onnx", ".yaml", ".yml") or "/" in s:
        if seq_len is not None:
            raise NetworkError(f"{s}: --seq-len applies to the zoo transformers "
                               f"({', '.join(SEQUENCE_NETWORKS)}), not to files", key="seq_len")
        if not path.is_file():
            raise NetworkError(f"{s}: no such file; expected a zoo name ({', '.join(list_networks())}) "
                               "or a path to an .onnx or .yaml file")
        if suffix in (".yaml", ".yml"):
            from archmodel.network.yaml_io import load_network_yaml

            return load_network_yaml(path)
        from archmodel.onnx_import import import_onnx

        return import_onnx(path, **onnx_options)  # type: ignore[arg-type]
    return get_network(s, seq_len)
