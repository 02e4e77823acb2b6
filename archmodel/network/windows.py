"""Sliding windows of feature maps: the one im2col / strided-window unfolding (and its adjoint).

Every conv, pool and im2col in the project (float reference forward, training,
integer accuracy evaluator, golden models, testbenches) unfolds its input with
:func:`window_view`, so the window and row orders cannot drift apart:

- :func:`window_view` -- a read-only strided view ``(..., H_out, W_out, kh, kw)``
  of an already padded ``(..., Hp, Wp)`` array (no copy);
- :func:`strided_windows` -- the same windows as a contiguous copy in the
  layout ``(..., kh, kw, H_out, W_out)`` (what pools reduce over);
- :func:`im2col` -- a batch ``(N, C, H, W)`` unfolded to MVM input columns
  ``(N, C·kh·kw, H_out·W_out)``, row ``r = (c·kh + i)·kw + j``, column
  ``p = h_out·W_out + w_out`` (the row order of
  :attr:`archmodel.network.ir.Layer.matrix_shape`);
- :func:`add_windows` -- the adjoint: window values added back onto the padded
  input (col2im, pool gradients).

All are pure gathers/scatters (no arithmetic on the data except the additions
of :func:`add_windows`), so integer inputs give exact integer results.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from archmodel.network.schema import as_padding, pos_pair
from archmodel.network.shapes import conv_output_size

__all__ = ["add_windows", "im2col", "strided_windows", "window_view"]


def window_view(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                dilation: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Sliding windows of a padded ``(..., Hp, Wp)`` array as a view ``(..., H_out, W_out, kh, kw)``.

    Window ``(oh, ow)``, tap ``(i, j)`` is ``xp[..., oh·sh + i·dh, ow·sw + j·dw]``.
    ``out_hw`` must be the conv output size of ``xp`` (no padding added here).
    """
    (kh, kw), (sh, sw), (dh, dw), (ho, wo) = kernel, stride, dilation, out_hw
    win = np.lib.stride_tricks.sliding_window_view(xp, (dh * (kh - 1) + 1, dw * (kw - 1) + 1),
                                                   axis=(-2, -1))
    return win[..., : sh * (ho - 1) + 1 : sh, : sw * (wo - 1) + 1 : sw, ::dh, ::dw]


def strided_windows(xp: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int],
                    dilation: tuple[int, int], out_hw: tuple[int, int]) -> np.ndarray:
    """Sliding windows of a padded ``(..., Hp, Wp)`` array as a contiguous ``(..., kh, kw, H_out, W_out)``."""
    view = window_view(xp, kernel, stride, dilation, out_hw)
    return np.ascontiguousarray(np.moveaxis(view, (-2, -1), (-4, -3)))


def add_windows(win: np.ndarray, padded_hw: tuple[int, int], stride: tuple[int, int],
                dilation: tuple[int, int] = (1, 1)) -> np.ndarray:
    """Adjoint of :func:`strided_windows`: add ``(..., kh, kw, H_out, W_out)`` windows onto a zero
    ``(..., Hp, Wp)`` array (overlapping windows add up, taps in row-major order)."""
    kh, kw, ho, wo = win.shape[-4:]
    (sh, sw), (dh, dw) = stride, dilation
    out = np.zeros(win.shape[:-4] + tuple(padded_hw), dtype=win.dtype)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            out[..., r0:r0 + sh * (ho - 1) + 1:sh, c0:c0 + sw * (wo - 1) + 1:sw] += win[..., i, j, :, :]
    return out


def im2col(x: np.ndarray, kernel_size: int | Sequence[int], *,
           stride: int | Sequence[int] = 1, padding: int | Sequence[int] = 0,
           dilation: int | Sequence[int] = 1) -> np.ndarray:
    """Unfold a batch of feature maps into MVM input columns.

    Parameters
    ----------
    x : numpy.ndarray, shape (N, C, H, W)
    kernel_size, stride, dilation : int or (h, w)
    padding : int, (ph, pw) or (top, left, bottom, right); zero padding

    Returns
    -------
    numpy.ndarray, shape (N, C·kh·kw, H_out·W_out), dtype of ``x``
        Row ``r = (c·kh + i)·kw + j`` (the row order of ``Layer.matrix_shape``),
        column ``p = h_out·W_out + w_out``. For a conv with ``groups`` groups,
        group ``g`` uses rows ``g·(C/groups)·kh·kw`` to ``(g+1)·(C/groups)·kh·kw``.

    Raises
    ------
    ValueError
        ``x`` not 4-D, bad sizes, or a kernel larger than the padded input.
    """
    x = np.asarray(x)
    if x.ndim != 4:
        raise ValueError(f"im2col expects x of shape (N, C, H, W), got {x.shape}")
    k, s, d = pos_pair(kernel_size), pos_pair(stride), pos_pair(dilation)
    pt, pl, pb, pr = as_padding(padding)
    n, c, h, w = x.shape
    ho = conv_output_size(h, k[0], s[0], pt, pb, d[0])
    wo = conv_output_size(w, k[1], s[1], pl, pr, d[1])
    if ho <= 0 or wo <= 0:
        raise ValueError(f"kernel {k} (dilation {d}) larger than the padded input "
                         f"{(h + pt + pb, w + pl + pr)}")
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    return strided_windows(xp, k, s, d, (ho, wo)).reshape(n, c * k[0] * k[1], ho * wo)
