"""Golden model of the digital datapath (rtl/digital.py): int8 conv/linear and its MAC order.

Contract sections 6-7 of the golden models (see :mod:`archmodel.golden`):

6. **Digital datapath** (layers kept digital): int8 x int8 -> exact int
   products and sums (:func:`digital_conv2d`, :func:`digital_linear`), then the
   affine unit. The im2col order (:func:`im2col`) is tap-major,
   ``row = (i*kw + j)*C + c`` and ``column = oh*W_out + ow``, i.e. the weight
   matrix is ``w.transpose(2, 3, 1, 0).reshape(-1, C_out)`` of the OIHW
   (PyTorch/ONNX) kernel (:func:`kernel_matrix`): the chip's row order of every
   conv matrix, analog or digital (docs/design.md §4.8, "im2col order": a
   feature map streams pixel by pixel with its channels contiguous, so a run of
   rows is a run of one pixel's channels).

7. **MAC schedule** (:func:`digital_datapath_order`): the MAC array holds
   ``mac_lanes`` output channels in parallel; for each output pixel (im2col
   column, in increasing order), for each channel group
   ``[g*mac_lanes, (g+1)*mac_lanes)`` in increasing order, it runs one cycle
   per term ``k = 0 .. K-1`` (im2col row order) and then emits that group's
   channels in increasing channel order. Outputs leave pixel-major, channel-minor.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from archmodel.fixedpoint import (
    ACT_BITS,
    COUNT_MAX,
    as_int_array,
    check_int_param,
    check_range,
)
from archmodel.network.shapes import conv_output_size
from archmodel.network.windows import strided_windows

__all__ = [
    "conv_output_hw",
    "digital_acc_bits",
    "digital_conv2d",
    "digital_datapath_order",
    "digital_linear",
    "im2col",
    "kernel_matrix",
    "weight_matrix",
]

#: Largest magnitude of an int8 x int8 product: (-128) * (-128) = 2**14.
_INT8_PRODUCT_MAX = 1 << (2 * (ACT_BITS - 1))


def _pair(value: int | tuple[int, int], name: str, lo: int) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} must be an int or a pair (h, w), got {value!r}")
        return (check_int_param(value[0], f"{name}[0]", lo, COUNT_MAX),
                check_int_param(value[1], f"{name}[1]", lo, COUNT_MAX))
    v = check_int_param(value, name, lo, COUNT_MAX)
    return v, v


def _pads(padding: int | tuple[int, ...]) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) from int, (h, w) or ONNX (top, left, bottom, right)."""
    if isinstance(padding, (tuple, list)) and len(padding) == 4:
        top, left, bottom, right = (check_int_param(v, f"padding[{i}]", 0, COUNT_MAX)
                                    for i, v in enumerate(padding))
        return top, left, bottom, right
    ph, pw = _pair(padding, "padding", 0)
    return ph, pw, ph, pw


def conv_output_hw(h: int, w: int, kernel_hw: int | tuple[int, int],
                   stride: int | tuple[int, int] = 1,
                   padding: int | tuple[int, ...] = 0,
                   dilation: int | tuple[int, int] = 1) -> tuple[int, int]:
    """Output height and width of a 2-D convolution (PyTorch/ONNX formula).

    ``H_out = floor((H + pad_top + pad_bottom - dilation_h*(kh-1) - 1) / stride_h) + 1``,
    same for W.

    Parameters
    ----------
    h, w : int
        Input height and width, >= 1.
    kernel_hw : int or (kh, kw)
        Kernel size, >= 1.
    stride, dilation : int or (h, w)
        >= 1.
    padding : int, (ph, pw) or (top, left, bottom, right)
        Zero padding, >= 0; the 4-tuple is the ONNX ``pads`` order.

    Returns
    -------
    (h_out, w_out) : tuple of int

    Raises
    ------
    TypeError, ValueError
        If a parameter is invalid or the output would be empty.
    """
    h = check_int_param(h, "h", 1, COUNT_MAX)
    w = check_int_param(w, "w", 1, COUNT_MAX)
    kh, kw = _pair(kernel_hw, "kernel_hw", 1)
    sh, sw = _pair(stride, "stride", 1)
    dh, dw = _pair(dilation, "dilation", 1)
    top, left, bottom, right = _pads(padding)
    h_out = conv_output_size(h, kh, sh, top, bottom, dh)
    w_out = conv_output_size(w, kw, sw, left, right, dw)
    if h_out <= 0 or w_out <= 0:
        raise ValueError(
            f"kernel {kh}x{kw} with dilation ({dh}, {dw}) does not fit the padded input "
            f"{h + top + bottom}x{w + left + right}"
        )
    return h_out, w_out


def im2col(x: npt.ArrayLike, kernel_hw: int | tuple[int, int],
           stride: int | tuple[int, int] = 1, padding: int | tuple[int, ...] = 0,
           dilation: int | tuple[int, int] = 1) -> np.ndarray:
    """Unfold a (C, H, W) integer tensor into the im2col matrix (zero padding), tap-major rows.

    ``cols[(i*kw + j)*C + c, oh*W_out + ow] =
    x_pad[c, oh*stride_h + i*dilation_h, ow*stride_w + j*dilation_w]``, where
    ``x_pad`` is ``x`` with zeros added (``pad_top`` rows above, ``pad_left``
    columns to the left): kernel tap ``(i, j)`` outermost, the input channel
    innermost (docs/design.md §4.8, "im2col order"). The row index matches
    :func:`weight_matrix` / :func:`kernel_matrix` of an OIHW kernel (PyTorch/ONNX).

    Parameters
    ----------
    x : array_like of int, shape (C, H, W)
        Input feature map (any integer width; int64 internally).
    kernel_hw : int or (kh, kw)
        Kernel size.
    stride, dilation : int or (h, w), default 1
    padding : int, (ph, pw) or (top, left, bottom, right), default 0

    Returns
    -------
    numpy.ndarray of int64, shape (C*kh*kw, H_out*W_out)

    Raises
    ------
    TypeError, ValueError
        If ``x`` is not a 3-D integer array or a parameter is invalid.
    """
    arr = as_int_array(x, "x")
    if arr.ndim != 3 or 0 in arr.shape:
        raise ValueError(f"x must be a non-empty 3-D array (C, H, W), got shape {arr.shape}")
    c, h, w = arr.shape
    h_out, w_out = conv_output_hw(h, w, kernel_hw, stride, padding, dilation)
    kh, kw = _pair(kernel_hw, "kernel_hw", 1)
    sh, sw = _pair(stride, "stride", 1)
    dh, dw = _pair(dilation, "dilation", 1)
    top, left, bottom, right = _pads(padding)
    xp = np.pad(arr, ((0, 0), (top, bottom), (left, right)))
    cols = strided_windows(xp, (kh, kw), (sh, sw), (dh, dw), (h_out, w_out))  # (C, kh, kw, H_out, W_out)
    cols = np.ascontiguousarray(cols.transpose(1, 2, 0, 3, 4))                # (kh, kw, C, H_out, W_out)
    return cols.astype(np.int64, copy=False).reshape(kh * kw * c, h_out * w_out)


def kernel_matrix(w: np.ndarray) -> np.ndarray:
    """An OIHW kernel (any dtype) as its (K, C_out) matrix in the tap-major row order of :func:`im2col`.

    ``W[(i*kw + j)*C_g + c, o] = w[o, c, i, j]`` with ``C_g = w.shape[1]``
    (``C_in/groups``), i.e. ``w.transpose(2, 3, 1, 0).reshape(-1, C_out)``; no
    range check (float weights of the analog layers use it too;
    :func:`weight_matrix` is the int8-checked form).

    Parameters
    ----------
    w : ndarray, shape (C_out, C_in/groups, kh, kw)

    Returns
    -------
    ndarray, shape (kh*kw*C_in/groups, C_out), dtype of ``w``
    """
    w = np.asarray(w)
    if w.ndim != 4 or 0 in w.shape:
        raise ValueError(f"w must be a non-empty 4-D array (O, I, H, W), got shape {w.shape}")
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0).reshape(-1, w.shape[0]))


def weight_matrix(w: npt.ArrayLike) -> np.ndarray:
    """Flatten an OIHW integer convolution kernel to the (K, C_out) weight matrix (tap-major).

    ``W[(i*kw + j)*C_g + c, o] = w[o, c, i, j]`` (:func:`kernel_matrix`);
    K = ``C_in/groups * kh * kw`` rows (matching :func:`im2col`), ``C_out`` columns.

    Parameters
    ----------
    w : array_like of int, shape (C_out, C_in/groups, kh, kw)

    Returns
    -------
    numpy.ndarray of int64, shape (C_in/groups*kh*kw, C_out)

    Raises
    ------
    ValueError
        If ``w`` is not a non-empty 4-D integer array.
    """
    arr = as_int_array(w, "w")
    if arr.ndim != 4 or 0 in arr.shape:
        raise ValueError(f"w must be a non-empty 4-D array (O, I, H, W), got shape {arr.shape}")
    return kernel_matrix(arr)


def digital_acc_bits(k_terms: int) -> int:
    """Smallest ``acc_bits`` accepted for ``k_terms`` int8 x int8 products.

    The least ``a`` with ``k_terms * 2**14 <= 2**(a-1) - 1``
    (``2**14 = (-128) * (-128)`` is the largest product magnitude).

    Parameters
    ----------
    k_terms : int
        Products summed per output, >= 1.

    Returns
    -------
    int
        Accumulator width in bits.
    """
    k = check_int_param(k_terms, "k_terms", 1, COUNT_MAX)
    return (k * _INT8_PRODUCT_MAX).bit_length() + 1


def _check_acc(k: int, acc_bits: int) -> None:
    acc_bits = check_int_param(acc_bits, "acc_bits", 2, 64)
    worst = k * _INT8_PRODUCT_MAX
    if worst > (1 << (acc_bits - 1)) - 1:
        raise ValueError(
            f"acc_bits = {acc_bits} can overflow: K = {k} terms x 2**14 = {worst} > "
            f"2**{acc_bits - 1} - 1 = {(1 << (acc_bits - 1)) - 1}; "
            f"need acc_bits >= {digital_acc_bits(k)}"
        )


def digital_conv2d(x_int8: npt.ArrayLike, w_int8: npt.ArrayLike,
                   stride: int | tuple[int, int] = 1, padding: int | tuple[int, ...] = 0,
                   dilation: int | tuple[int, int] = 1, groups: int = 1,
                   acc_bits: int = 32) -> np.ndarray:
    """Exact integer 2-D convolution of the digital datapath (no bias, no requantize).

    ``out[o, oh, ow] = sum_{c,i,j} w[o, c, i, j] * x_pad[g*C_in/groups + c,
    oh*stride_h + i*dilation_h, ow*stride_w + j*dilation_w]`` with
    ``g = o // (C_out/groups)`` — per group, ``weight_matrix(w_g).T @ im2col(x_g)``.
    Exact: refused up front when ``K * 2**14 > 2**(acc_bits-1) - 1``,
    ``K = C_in/groups * kh * kw``.

    Parameters
    ----------
    x_int8 : array_like of int, shape (C_in, H, W)
        Activations, signed 8 bits.
    w_int8 : array_like of int, shape (C_out, C_in/groups, kh, kw)
        Weights, signed 8 bits (OIHW).
    stride, dilation : int or (h, w), default 1
    padding : int, (ph, pw) or (top, left, bottom, right), default 0
    groups : int, default 1
        Channel groups; ``groups == C_in == C_out`` is depthwise.
    acc_bits : int, default 32
        Signed accumulator width, 2..64.

    Returns
    -------
    numpy.ndarray of int64, shape (C_out, H_out, W_out)
        Sums within the signed ``acc_bits`` range.

    Raises
    ------
    TypeError, ValueError
        If an input is outside int8 or has the wrong shape, ``groups`` does
        not divide the channels, a parameter is invalid, or the accumulator
        could overflow.
    """
    x = check_range(x_int8, ACT_BITS, "x_int8")
    w = check_range(w_int8, ACT_BITS, "w_int8")
    if x.ndim != 3 or 0 in x.shape:
        raise ValueError(f"x_int8 must be a non-empty (C_in, H, W) array, got shape {x.shape}")
    if w.ndim != 4 or 0 in w.shape:
        raise ValueError(
            f"w_int8 must be a non-empty (C_out, C_in/groups, kh, kw) array, got shape {w.shape}"
        )
    c_in, h, wd = x.shape
    c_out, c_in_g, kh, kw = w.shape
    groups = check_int_param(groups, "groups", 1, COUNT_MAX)
    if c_in % groups or c_out % groups:
        raise ValueError(
            f"groups = {groups} must divide C_in = {c_in} and C_out = {c_out}"
        )
    if c_in_g != c_in // groups:
        raise ValueError(
            f"w_int8.shape[1] = {c_in_g} must equal C_in/groups = {c_in // groups}"
        )
    kernel = (kh, kw)
    _check_acc(c_in_g * kh * kw, acc_bits)
    h_out, w_out = conv_output_hw(h, wd, kernel, stride, padding, dilation)
    c_out_g = c_out // groups
    out = np.empty((c_out, h_out * w_out), dtype=np.int64)
    for g in range(groups):
        cols = im2col(x[g * c_in_g:(g + 1) * c_in_g], kernel, stride, padding, dilation)
        wm = weight_matrix(w[g * c_out_g:(g + 1) * c_out_g])
        out[g * c_out_g:(g + 1) * c_out_g] = wm.T @ cols
    return out.reshape(c_out, h_out, w_out)


def digital_linear(x_int8: npt.ArrayLike, w_int8: npt.ArrayLike,
                   acc_bits: int = 32) -> np.ndarray:
    """Exact integer fully connected layer: ``out[..., o] = sum_k w[o, k] * x[..., k]``.

    Refused up front when ``K * 2**14 > 2**(acc_bits-1) - 1`` (K = ``in``).

    Parameters
    ----------
    x_int8 : array_like of int, shape (..., in)
        Activations, signed 8 bits.
    w_int8 : array_like of int, shape (out, in)
        Weights, signed 8 bits (PyTorch/ONNX ``Gemm`` with transB layout).
    acc_bits : int, default 32
        Signed accumulator width, 2..64.

    Returns
    -------
    numpy.ndarray of int64, shape (..., out)

    Raises
    ------
    TypeError, ValueError
        If an input is outside int8, the shapes do not match, or the
        accumulator could overflow.
    """
    x = check_range(x_int8, ACT_BITS, "x_int8")
    w = check_range(w_int8, ACT_BITS, "w_int8")
    if w.ndim != 2 or 0 in w.shape:
        raise ValueError(f"w_int8 must be a non-empty (out, in) array, got shape {w.shape}")
    if x.ndim < 1 or x.shape[-1] != w.shape[1]:
        raise ValueError(
            f"x_int8 must have shape (..., {w.shape[1]}) to match w_int8 {w.shape}, "
            f"got {x.shape}"
        )
    _check_acc(w.shape[1], acc_bits)
    return np.asarray(x @ w.T, dtype=np.int64)


# --------------------------------------------------------------------------
# 7. MAC schedule of the digital datapath
# --------------------------------------------------------------------------


def digital_datapath_order(n_pixels: int, c_out: int, mac_lanes: int) -> list[tuple[int, int]]:
    """Order in which the digital datapath emits its outputs (the RTL contract).

    MAC schedule: the MAC array computes ``mac_lanes`` output channels in
    parallel, one term ``k`` per cycle::

        for pixel in range(n_pixels):                 # im2col column oh*W_out + ow
            for g in range(ceil(c_out / mac_lanes)):  # channel group
                for k in range(K):                    # im2col row order
                    lane l: acc[l] += w[g*mac_lanes + l, k] * x[k, pixel]
                emit channels g*mac_lanes ... min((g+1)*mac_lanes, c_out) - 1
                in increasing order (idle lanes of the last group emit nothing)

    So outputs leave pixel-major, channel-minor, whatever ``mac_lanes`` is;
    ``mac_lanes`` sets the cycle count
    (``n_pixels * ceil(c_out / mac_lanes) * K`` MAC cycles), not the order.

    Parameters
    ----------
    n_pixels : int
        Output pixels (``H_out * W_out``; 1 for a linear layer), >= 1.
    c_out : int
        Output channels, >= 1.
    mac_lanes : int
        Parallel MAC lanes, >= 1.

    Returns
    -------
    list of (pixel, channel) tuples, length ``n_pixels * c_out``

    Raises
    ------
    TypeError, ValueError
        If an argument is not a positive integer.
    """
    n_pixels = check_int_param(n_pixels, "n_pixels", 1, COUNT_MAX)
    c_out = check_int_param(c_out, "c_out", 1, COUNT_MAX)
    lanes = check_int_param(mac_lanes, "mac_lanes", 1, COUNT_MAX)
    order: list[tuple[int, int]] = []
    for pixel in range(n_pixels):
        for g in range(-(-c_out // lanes)):
            for ch in range(g * lanes, min((g + 1) * lanes, c_out)):
                order.append((pixel, ch))
    return order
