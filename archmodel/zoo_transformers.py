"""Transformer encoders (ViT-style, BERT-style) as ONNX graphs built with ``onnx.helper``.

Structure only: every weight is a ``ConstantOfShape`` of zeros (no trained values,
no memory for large tables), as in the ``onnx`` wheel's light models. The graphs
use the operators a PyTorch export of these encoders uses (opset 17): MatMul with
a constant right operand + Add (bias) for every projection, Reshape/Transpose for
the heads, MatMul of two activations for Q·Kᵀ and A·V, Div by √d_head, Softmax
over the last axis, LayerNormalization, GELU as ``x·0.5·(1 + erf(x/√2))``
(PyTorch's exact form before opset 20) and residual Adds. They are mapped through
:func:`archmodel.onnx_import.import_onnx_model`.

``vit_onnx``: input image ``(1, 3, P·g, P·g)``, patch embedding = Conv P×P/P
(3 → D, bias) → Reshape (1, D, g²) → Transpose (1, g², D) → Concat with the class
token (a constant (1, 1, D)) → Add the position embedding (a constant (1, S, D)),
``S = g² + 1``; ``depth`` pre-LN blocks; final LayerNorm; Gather token 0; Gemm
D → classes (bias).

``bert_onnx``: input token ids ``(1, S)`` (int64) → Gather from the word-embedding
table (V, D) → Add position (+ token type) embedding (a constant (1, S, D): the
first S rows of the position table) → LayerNorm; ``depth`` post-LN blocks
(x = LN(x + attention(x)); x = LN(x + FFN(x))). No pooler.

Sizes of the zoo entries: :func:`archmodel.zoo.vit_tiny`, :func:`archmodel.zoo.bert_tiny`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["bert_onnx", "vit_onnx"]


class _G:
    """A tiny graph writer: nodes, constants as ConstantOfShape, unique names."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self.k = 0

    def name(self, base: str) -> str:
        self.k += 1
        return f"{base}_{self.k}"

    def node(self, op: str, inputs: list[str], base: str, **attrs: Any) -> str:
        from onnx import helper

        out = self.name(base)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def ints(self, values: list[int], base: str = "shape") -> str:
        from onnx import numpy_helper

        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(values, dtype=np.int64), n))
        return n

    def scalar(self, value: float, base: str = "c") -> str:
        from onnx import numpy_helper

        n = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), n))
        return n

    def weight(self, shape: list[int], base: str) -> str:
        """A float constant of ``shape``: ConstantOfShape(zeros) of a shape initializer."""
        return self.node("ConstantOfShape", [self.ints(shape)], base)

    def linear(self, x: str, d_in: int, d_out: int, base: str) -> str:
        y = self.node("MatMul", [x, self.weight([d_in, d_out], base + "_w")], base)
        return self.node("Add", [y, self.weight([d_out], base + "_b")], base + "_bias")

    def layernorm(self, x: str, d: int, base: str) -> str:
        return self.node("LayerNormalization", [x, self.weight([d], base + "_g"),
                                                self.weight([d], base + "_b")], base, axis=-1)

    def gelu(self, x: str) -> str:
        e = self.node("Erf", [self.node("Div", [x, self.scalar(math.sqrt(2.0))], "gelu_div")], "gelu_erf")
        h = self.node("Mul", [self.node("Add", [e, self.scalar(1.0)], "gelu_add"), self.scalar(0.5)], "gelu_half")
        return self.node("Mul", [x, h], "gelu")

    def attention(self, x: str, s: int, d: int, heads: int, base: str, mask: str | None = None) -> str:
        dh = d // heads

        def split(t: str, perm: list[int]) -> str:
            r = self.node("Reshape", [t, self.ints([1, s, heads, dh])], base + "_split")
            return self.node("Transpose", [r], base + "_heads", perm=perm)

        q = split(self.linear(x, d, d, base + "_q"), [0, 2, 1, 3])
        k = split(self.linear(x, d, d, base + "_k"), [0, 2, 3, 1])
        v = split(self.linear(x, d, d, base + "_v"), [0, 2, 1, 3])
        scores = self.node("Div", [self.node("MatMul", [q, k], base + "_qk"), self.scalar(math.sqrt(dh))],
                           base + "_scale")
        if mask is not None:  # the extended attention mask (1, 1, 1, S), broadcast over heads and queries
            scores = self.node("Add", [scores, mask], base + "_mask")
        probs = self.node("Softmax", [scores], base + "_softmax", axis=-1)
        ctx = self.node("Transpose", [self.node("MatMul", [probs, v], base + "_av")], base + "_merge",
                        perm=[0, 2, 1, 3])
        ctx = self.node("Reshape", [ctx, self.ints([1, s, d])], base + "_concat")
        return self.linear(ctx, d, d, base + "_out")

    def mlp(self, x: str, d: int, hidden: int, base: str) -> str:
        return self.linear(self.gelu(self.linear(x, d, hidden, base + "_fc1")), hidden, d, base + "_fc2")

    def model(self, name: str, inp: Any, out: str, out_shape: list[int], dtype: int) -> Any:
        from onnx import helper

        inputs = list(inp) if isinstance(inp, (list, tuple)) else [inp]
        graph = helper.make_graph(self.nodes, name, inputs, [helper.make_tensor_value_info(out, dtype, out_shape)],
                                  initializer=self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def vit_onnx(*, seq_len: int = 197, dim: int = 192, depth: int = 12, heads: int = 3, mlp: int = 768,
             patch: int = 16, classes: int = 1000, name: str = "vit") -> Any:
    """A ViT encoder as an ``onnx.ModelProto`` (see the module docstring).

    ``seq_len`` = patches + 1 (class token); ``seq_len − 1`` must be a square ``g²``
    (the image is ``(3, patch·g, patch·g)``; 197 → 224×224 at patch 16).

    Raises
    ------
    ValueError
        ``seq_len − 1`` not a positive square, or ``dim`` not divisible by ``heads``.
    """
    from onnx import TensorProto, helper

    g = math.isqrt(seq_len - 1) if seq_len > 1 else 0
    if g < 1 or g * g != seq_len - 1:
        raise ValueError(f"ViT seq_len {seq_len}: seq_len - 1 must be a square number of patches (e.g. 197 = 14² + 1)")
    if dim % heads:
        raise ValueError(f"dim {dim} is not divisible by heads {heads}")
    b = _G()
    side = patch * g
    x = b.node("Conv", ["image", b.weight([dim, 3, patch, patch], "patch_w"), b.weight([dim], "patch_b")],
               "patch_embed", kernel_shape=[patch, patch], strides=[patch, patch])
    x = b.node("Reshape", [x, b.ints([1, dim, g * g])], "patch_flat")
    x = b.node("Transpose", [x], "patch_tokens", perm=[0, 2, 1])
    x = b.node("Concat", [b.weight([1, 1, dim], "cls_token"), x], "cls_concat", axis=1)
    x = b.node("Add", [x, b.weight([1, seq_len, dim], "pos_embed")], "pos_add")
    for i in range(depth):
        x = b.node("Add", [x, b.attention(b.layernorm(x, dim, f"b{i}_ln1"), seq_len, dim, heads, f"b{i}_attn")],
                   f"b{i}_res1")
        x = b.node("Add", [x, b.mlp(b.layernorm(x, dim, f"b{i}_ln2"), dim, mlp, f"b{i}_mlp")], f"b{i}_res2")
    x = b.layernorm(x, dim, "ln_final")
    x = b.node("Gather", [x, b.ints([0], "cls_index")], "cls_pick", axis=1)
    x = b.node("Reshape", [x, b.ints([1, dim])], "cls_flat")
    x = b.node("Gemm", [x, b.weight([dim, classes], "head_w"), b.weight([classes], "head_b")], "head")
    inp = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, side, side])
    return b.model(name, inp, x, [1, classes], TensorProto.FLOAT)


def bert_onnx(*, seq_len: int = 128, dim: int = 128, depth: int = 2, heads: int = 2, mlp: int = 512,
              vocab: int = 30522, name: str = "bert", three_inputs: bool = False, type_vocab: int = 2) -> Any:
    """A BERT encoder as an ``onnx.ModelProto`` (see the module docstring).

    ``three_inputs=True`` gives the graph inputs of a Hugging Face BERT export: ``input_ids``,
    ``attention_mask`` and ``token_type_ids`` (each int64 ``(1, seq_len)``). The token types
    Gather rows of a ``(type_vocab, dim)`` table added to the embeddings; the mask becomes the
    extended mask ``(1 − Cast(Unsqueeze(mask, [1, 2]))) · −10000`` of shape ``(1, 1, 1, S)``,
    added to every layer's attention scores before the Softmax.

    Raises
    ------
    ValueError
        ``seq_len`` < 1 or ``dim`` not divisible by ``heads``.
    """
    from onnx import TensorProto, helper

    if seq_len < 1 or dim % heads:
        raise ValueError(f"BERT needs seq_len >= 1 and dim divisible by heads, got {seq_len}, {dim}/{heads}")
    b = _G()
    x = b.node("Gather", [b.weight([vocab, dim], "word_embeddings"), "input_ids"], "word_embed", axis=0)
    x = b.node("Add", [x, b.weight([1, seq_len, dim], "position_embeddings")], "pos_add")
    mask = None
    inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, seq_len])]
    if three_inputs:
        types = b.node("Gather", [b.weight([type_vocab, dim], "token_type_embeddings"), "token_type_ids"],
                       "type_embed", axis=0)
        x = b.node("Add", [x, types], "type_add")
        m = b.node("Unsqueeze", ["attention_mask", b.ints([1, 2], "mask_axes")], "mask_unsqueeze")
        m = b.node("Cast", [m], "mask_cast", to=TensorProto.FLOAT)
        m = b.node("Sub", [b.scalar(1.0), m], "mask_invert")
        mask = b.node("Mul", [m, b.scalar(-10000.0)], "mask_extended")
        inputs += [helper.make_tensor_value_info(n, TensorProto.INT64, [1, seq_len])
                   for n in ("attention_mask", "token_type_ids")]
    x = b.layernorm(x, dim, "emb_ln")
    for i in range(depth):
        x = b.layernorm(b.node("Add", [x, b.attention(x, seq_len, dim, heads, f"l{i}_attn", mask)], f"l{i}_res1"),
                        dim, f"l{i}_ln1")
        x = b.layernorm(b.node("Add", [x, b.mlp(x, dim, mlp, f"l{i}_ffn")], f"l{i}_res2"), dim, f"l{i}_ln2")
    return b.model(name, inputs, x, [1, seq_len, dim], TensorProto.FLOAT)
