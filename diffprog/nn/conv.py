"""Convolution and pooling on NCHW images for diffprog.nn: conv2d, max_pool2d, avg_pool2d.

Owns: these functions and the im2col they share. Patches are built from kh * kw strided
slices of the (padded) input, one per kernel offset, stacked into (N, C, kh*kw, Ho, Wo): no
Python loop over the batch or the output pixels. conv2d is then one batched matmul with the
kernel reshaped to (out, C*kh*kw); pooling is one max or mean over the offset axis. Each slice
is a basic index, so the backward pass writes slices too (no scatter-add).
Layer L6: imports diffprog.numpy, diffprog.errors and diffprog.nn._util.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import diffprog.numpy as dnp

from ..errors import StructureError
from ._util import leaf, pair, shape_of

Pads = tuple[tuple[int, int], tuple[int, int]]


def _padding(
    padding: Any,
    size: tuple[int, int],
    kernel: tuple[int, int],
    stride: tuple[int, int],
    where: str,
) -> Pads:
    """((top, bottom), (left, right)) from an int, a pair, a pair of pairs, "valid" or
    "same" (output size ceil(size / stride), the odd pixel going to the bottom/right; an
    empty side is padded to one window, whose output conv2d drops)."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode == "valid":
            return (0, 0), (0, 0)
        if mode == "same":
            pads = []
            for n, k, s in zip(size, kernel, stride):
                total = max((-(-n // s) - 1) * s + k - n, 0) if n else k
                pads.append((total // 2, total - total // 2))
            return pads[0], pads[1]
        raise ValueError(f"{where}: padding {padding!r} is not 'same' or 'valid'")

    def ok(v: Any) -> bool:
        return isinstance(v, (int, np.integer)) and v >= 0

    if ok(padding):
        return (int(padding),) * 2, (int(padding),) * 2
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        if all(ok(v) for v in padding):
            return (int(padding[0]),) * 2, (int(padding[1]),) * 2
        if all(
            isinstance(p, (tuple, list)) and len(p) == 2 and ok(p[0]) and ok(p[1]) for p in padding
        ):
            return (int(padding[0][0]), int(padding[0][1])), (
                int(padding[1][0]),
                int(padding[1][1]),
            )
    raise ValueError(
        f"{where}: `padding` must be 'same', 'valid', a non-negative int, a pair (ph, pw) or "
        f"((top, bottom), (left, right)); got {padding!r}"
    )


def _patches(
    x: Any, kernel: tuple[int, int], stride: tuple[int, int], pads: Pads, where: str
) -> Any:
    """(N, C, kh*kw, Ho, Wo): patch element (i, j) of every output pixel, i major."""
    if any(pads[0]) or any(pads[1]):
        x = dnp.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))
    (kh, kw), (sh, sw) = kernel, stride
    H, W = shape_of(x)[2:]
    if H < kh or W < kw:
        raise ValueError(
            f"{where}: the (padded) input is {H}x{W}, smaller than the "
            f"{kh}x{kw} window; pad it or use a smaller window"
        )
    Ho, Wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    cols = [
        x[:, :, i : i + sh * (Ho - 1) + 1 : sh, j : j + sw * (Wo - 1) + 1 : sw]
        for i in range(kh)
        for j in range(kw)
    ]
    return dnp.stack(cols, axis=2)


def _nchw(x: Any, where: str) -> tuple[int, int, int, int]:
    shape = shape_of(x)
    if len(shape) != 4:
        raise ValueError(f"{where}: x must be a batch of images (N, C, H, W), got shape {shape}")
    return shape  # type: ignore[return-value]


def conv2d(params: dict, x: Any, stride: Any = 1, padding: Any = 0) -> Any:
    """2-D cross-correlation (what deep learning calls convolution) of NCHW images with
    params["W"] of shape (out, C, kh, kw), plus params["b"] (out,): result (N, out, Ho, Wo).

    `stride` is an int or (sh, sw); `padding` is an int, (ph, pw), ((top, bottom), (left,
    right)), "valid" (none) or "same" (output ceil(H / sh) x ceil(W / sw)); zeros are padded.

    >>> from diffprog import nn
    >>> p = {"W": np.ones((1, 1, 2, 2)), "b": np.zeros(1)}
    >>> nn.conv2d(p, np.arange(9.0).reshape(1, 1, 3, 3))
    array([[[[ 8., 12.],
             [20., 24.]]]])
    """
    W = leaf(params, "W", "params", "conv2d")
    b = leaf(params, "b", "params", "conv2d")
    n, c, h, w = _nchw(x, "conv2d")
    ws, bs = shape_of(W), shape_of(b)
    if len(ws) != 4 or ws[1] != c or bs != (ws[0],):
        raise StructureError(
            f"conv2d: x of shape {(n, c, h, w)} (N, C, H, W) does not fit params['W'] of shape "
            f"{ws} and params['b'] of shape {bs}; W must be (out, C, kh, kw) with C = "
            f"x.shape[1] = {c}, and b (out,)"
        )
    out, _, kh, kw = ws
    st = pair(stride, "stride", "conv2d")
    pads = _padding(padding, (h, w), (kh, kw), st, "conv2d")
    cols = _patches(x, (kh, kw), st, pads, "conv2d")  # (N, C, K, Ho, Wo)
    ho, wo = shape_of(cols)[3:]
    cols = dnp.reshape(cols, (n, c * kh * kw, ho * wo))
    y = dnp.matmul(dnp.reshape(W, (out, c * kh * kw)), cols)  # (N, out, Ho*Wo)
    y = dnp.reshape(y, (n, out, ho, wo)) + dnp.reshape(b, (out, 1, 1))
    if not (h and w) and isinstance(padding, str):  # "same" of an empty image: 0 rows/columns
        y = y[:, :, : -(-h // st[0]), : -(-w // st[1])]
    return y


def _pool(x: Any, window: Any, stride: Any, where: str) -> Any:
    _nchw(x, where)
    win = pair(window, "window", where)
    st = win if stride is None else pair(stride, "stride", where)
    return _patches(x, win, st, ((0, 0), (0, 0)), where)


def max_pool2d(x: Any, window: Any, stride: Any = None) -> Any:
    """Maximum over each `window` (int or (wh, ww)) of NCHW images, moved by `stride`
    (default: the window, so windows tile); no padding. Ties share the gradient.

    >>> from diffprog import nn
    >>> nn.max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2)
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    """
    return dnp.max(_pool(x, window, stride, "max_pool2d"), axis=2)


def avg_pool2d(x: Any, window: Any, stride: Any = None) -> Any:
    """Mean over each `window` (int or (wh, ww)) of NCHW images, moved by `stride`
    (default: the window); no padding.

    >>> from diffprog import nn
    >>> nn.avg_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2)
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    """
    return dnp.mean(_pool(x, window, stride, "avg_pool2d"), axis=2)
