"""Gathers, diagonals, triangles, padding and splits under NumPy's names, with their rules.

Owns: take, take_along_axis (gathers through `getitem`, so repeated indices accumulate),
diag, diagonal and trace (the `diagonal` primitive and its transpose, `_diag_embed`),
triu and tril (a constant mask), pad (mode 'constant' is a primitive whose transpose is a
slice; 'edge', 'reflect', 'symmetric' and 'wrap' are gathers along each padded axis), and
split, array_split, hsplit, vsplit, dsplit (consecutive pieces are one `split` record, the
transpose of concatenate). All are linear in the array.
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ad.batching import shifted
from ..backend import namespace_of
from ..core.edge import astype
from ..core.primitive import Primitive
from ..errors import UnsupportedKeywordError
from ..core.trace import Tracer, raw
from .batching import along_axes
from .elementwise import ufunc_where
from .joins import _split, as_ndarray
from .manipulation import (
    as_array,
    axis_tuple,
    broadcast_to,
    getitem,
    on_device_of,
    ravel,
    reshape,
)
from .reductions import sum as _sum


# --- gathers -------------------------------------------------------------------------------
def _indices(a: Any, indices: Any, name: str, *, bool_as_int: bool = False) -> Any:
    """Integer indices as a raw array on `a`'s device (a list or number becomes one)."""
    r = raw(indices)
    if not hasattr(r, "dtype"):
        r = np.asarray(r)
        r = r.astype(np.intp) if r.size == 0 else r
    if r.dtype.kind == "b" and bool_as_int:  # NumPy's take casts booleans to 0 and 1
        r = r.astype(np.intp)
    if r.dtype.kind not in "iu":
        raise IndexError(f"{name}: indices must be an integer array, got dtype {r.dtype}")
    return on_device_of(a, r)


def take(
    a: Any, indices: Any, axis: int | None = None, out: Any = None, mode: str = "raise"
) -> Any:
    """`numpy.take`: elements at `indices` along `axis` (of the flattened array when None);
    repeated indices accumulate their gradients.

    >>> import numpy as np
    >>> from diffprog.numpy.indexing import take
    >>> take(np.array([[1.0, 2.0], [3.0, 4.0]]), [1, 1, 0], axis=1)
    array([[2., 2., 1.],
           [4., 4., 3.]])
    """
    if out is not None:
        raise NotImplementedError("take: the out= option is not supported")
    if mode != "raise":
        raise NotImplementedError(f"take supports mode='raise' only, not mode={mode!r}")
    a = as_array(a)
    if axis is None:
        a, axis = ravel(a), 0
    (axis,) = axis_tuple(axis, len(a.shape))
    return getitem(a, (slice(None),) * axis + (_indices(a, indices, "take", bool_as_int=True),))


def take_along_axis(arr: Any, indices: Any, axis: int | None = -1) -> Any:
    """`numpy.take_along_axis`: pick along `axis` with an index array of arr's dimension
    (e.g. the result of argsort); the other axes broadcast."""
    arr = as_array(arr)
    index = _indices(arr, indices, "take_along_axis")
    if axis is None:
        if len(index.shape) != 1:
            raise ValueError("take_along_axis: with axis=None, `indices` must be 1-D")
        arr, axis = ravel(arr), 0
    n = len(arr.shape)
    if len(index.shape) != n:
        raise ValueError("take_along_axis: `indices` and `arr` must have the same number of dims")
    (axis,) = axis_tuple(axis, n)
    parts = []
    for i, size in enumerate(arr.shape):
        line = _xp(arr).arange(size).reshape((1,) * i + (size,) + (1,) * (n - i - 1))
        parts.append(index if i == axis else line)
    return getitem(arr, tuple(parts))


# --- diagonals and triangles ---------------------------------------------------------------
def _diagonal_impl(xp: Any, x: Any, *, offset: int, axis1: int, axis2: int) -> Any:
    return xp.diagonal(x, offset, axis1, axis2)


def _embed_impl(xp: Any, v: Any, *, offset: int, axis1: int, axis2: int, shape: tuple) -> Any:
    out = xp.zeros(shape, dtype=v.dtype)
    i = xp.arange(v.shape[-1])
    xp.moveaxis(out, (axis1, axis2), (-2, -1))[..., i + max(-offset, 0), i + max(offset, 0)] = v
    return out


_diagonal = Primitive("diagonal", _diagonal_impl)
_diag_embed = Primitive("diag_embed", _embed_impl)  # the transpose: v placed on a diagonal
_diagonal.defvjp(lambda g, ans, x, **k: _diag_embed(g, shape=tuple(x.shape), **k))
_diagonal.defjvp(lambda t, ans, x, **k: _diagonal(t, **k))
_diag_embed.defvjp(lambda g, ans, v, *, shape, **k: _diagonal(g, **k))
_diag_embed.defjvp(lambda t, ans, v, **k: _diag_embed(t, **k))
along_axes(_diagonal, names=("axis1", "axis2"))
_diag_embed.defbatch(lambda size, batched, v, *, offset, axis1, axis2, shape: _diag_embed(
    v, offset=offset, axis1=shifted(axis1, len(shape)), axis2=shifted(axis2, len(shape)),
    shape=(size,) + tuple(shape)))  # fmt: skip


def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """`numpy.diagonal`: the `offset` diagonal of the planes (axis1, axis2), as the last axis."""
    a = as_array(a)
    if len(a.shape) < 2:
        raise ValueError("diagonal requires an array of at least two dimensions")
    if len({axis1 % len(a.shape), axis2 % len(a.shape)}) == 1:
        raise ValueError("diagonal: axis1 and axis2 cannot be the same")
    axis1, axis2 = axis_tuple((axis1, axis2), len(a.shape))
    return _diagonal(a, offset=int(offset), axis1=axis1, axis2=axis2)


def diag(v: Any, k: int = 0) -> Any:
    """`numpy.diag`: a 1-D array placed on the k-th diagonal of a square matrix, or the k-th
    diagonal of a 2-D array.

    >>> import numpy as np
    >>> from diffprog.numpy.indexing import diag
    >>> diag(np.array([1.0, 2.0]), k=1)
    array([[0., 1., 0.],
           [0., 0., 2.],
           [0., 0., 0.]])
    """
    v = as_array(v)
    if len(v.shape) == 2:
        return _diagonal(v, offset=int(k), axis1=0, axis2=1)
    if len(v.shape) != 1:
        raise ValueError("diag: input must be 1- or 2-d")
    n = v.shape[0] + abs(int(k))
    return _diag_embed(v, offset=int(k), axis1=0, axis2=1, shape=(n, n))


def trace(
    a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1, dtype: Any = None, out: Any = None
) -> Any:
    """`numpy.trace`: the sum along a diagonal (of each plane (axis1, axis2))."""
    if dtype is not None or out is not None:
        raise UnsupportedKeywordError("trace: the dtype= and out= options are not supported")
    return _sum(diagonal(a, offset, axis1, axis2), axis=-1)


def tril(m: Any, k: int = 0) -> Any:
    """`numpy.tril`: the elements above the k-th diagonal of the last two axes set to zero
    (a 1-D input is taken as the rows of a square matrix, as NumPy does)."""
    m = as_array(m)
    return ufunc_where(_tri(m, k), m, _zero(m))


def triu(m: Any, k: int = 0) -> Any:
    """`numpy.triu`: the elements below the k-th diagonal of the last two axes set to zero."""
    m = as_array(m)
    return ufunc_where(_tri(m, k - 1), _zero(m), m)


def _tri(m: Any, k: int) -> Any:
    """The constant mask `numpy.tri` of the last two axes (of (N, N) for a 1-D m)."""
    if len(m.shape) < 1:
        raise ValueError("tril/triu: input must be at least 1-d")
    rows, cols = m.shape[-2:] if len(m.shape) > 1 else m.shape * 2
    return _xp(m).tri(rows, cols, int(k), dtype=bool)


def _zero(m: Any) -> Any:
    return _xp(m).zeros((), dtype=m.dtype)


def _xp(a: Any) -> Any:
    return namespace_of((raw(a),))


# --- padding -------------------------------------------------------------------------------
def _pad_slice(g: Any, x: Any, width: tuple) -> Any:
    return getitem(g, tuple(slice(b, b + n) for (b, _), n in zip(width, x.shape)))


_pad = Primitive("pad", lambda xp, x, *, width, value: xp.pad(x, width, constant_values=value))
_pad.defvjp(lambda g, ans, x, *, width, value: _pad_slice(g, x, width))
_pad.defjvp(lambda t, ans, x, *, width, value: _pad(t, width=width, value=0))
_pad.defbatch(lambda size, batched, x, *, width, value: _pad(  # no padding on the batch axis
    x, width=((0, 0),) + tuple(width), value=value if np.ndim(value) == 0 else (
        (0, 0),) + tuple(value)))  # fmt: skip
_PAD_OPTIONS = {"constant": {"constant_values"}, "edge": set(), "wrap": set(),
                "reflect": {"reflect_type"}, "symmetric": {"reflect_type"}}  # fmt: skip


def _pairs(x: Any, ndim: int) -> tuple:
    """NumPy's broadcasting of pad_width / constant_values to one (before, after) per axis."""
    x = np.asarray(x)
    if x.size == 1:
        return ((x.item(),) * 2,) * ndim
    if x.size == 2 and x.shape != (2, 1):
        return (tuple(x.reshape(-1).tolist()),) * ndim
    return tuple(map(tuple, np.broadcast_to(x, (ndim, 2)).tolist()))


def pad(array: Any, pad_width: Any, mode: str = "constant", **kwargs: Any) -> Any:
    """`numpy.pad` with mode 'constant' (constant_values, which may be traced), 'edge',
    'reflect', 'symmetric' or 'wrap'; the gradient with respect to the array is its interior
    plus, for the other modes, what the copies in the border carried."""
    if mode not in _PAD_OPTIONS:
        raise NotImplementedError(f"pad: mode={mode!r} is not supported; use one of "
                                  f"{sorted(_PAD_OPTIONS)}")  # fmt: skip
    if set(kwargs) - _PAD_OPTIONS[mode]:
        raise ValueError(f"pad: unsupported keyword arguments for mode {mode!r}: {set(kwargs)}")
    if kwargs.get("reflect_type", "even") != "even":
        raise NotImplementedError("pad: reflect_type='odd' is not supported")
    x = as_array(array)
    n = len(x.shape)
    if np.asarray(pad_width).dtype.kind not in "iu":
        raise TypeError("pad: `pad_width` must be of integral type")
    width = _pairs(pad_width, n)
    if min((w for pair in width for w in pair), default=0) < 0:
        raise ValueError(f"pad: negative pad widths {pad_width!r}")
    if not any(w for pair in width for w in pair):
        return as_ndarray(x)  # (NumPy's: an array, 0-d too)
    if mode == "constant":
        value = kwargs.get("constant_values", 0)
        if isinstance(value, Tracer):
            return _pad(x, width=width, value=0) + _traced_border(x, width, value)
        return _pad(x, width=width, value=_pairs(value, n))
    for i, (before, after) in enumerate(width):
        if before or after:
            if x.shape[i] == 0:
                raise ValueError(f"pad: can't extend empty axis {i} using mode {mode!r}")
            index = np.pad(np.arange(x.shape[i]), (before, after), mode=mode)
            x = getitem(x, (slice(None),) * i + (on_device_of(x, index),))
    return x


def _traced_border(x: Any, width: tuple, value: Any) -> Any:
    """The border of a constant pad whose values are traced: each (axis, side) value times
    the constant mask of the cells NumPy fills with it (later axes win the corners)."""
    n, xp = len(x.shape), _xp(x)
    if value.size == 1:
        value = reshape(value, (1, 1))
    elif value.size == 2 and tuple(value.shape) != (2, 1):
        value = reshape(value, (1, 2))
    value = broadcast_to(value, (n, 2))
    if value.dtype != x.dtype:
        value = astype(value, dtype=x.dtype)
    zeros, total = xp.zeros(x.shape, dtype=x.dtype), 0.0
    for i in range(n):
        for side in range(2):
            if width[i][side]:
                onehot = [[int((i, side) == (j, s)) for s in range(2)] for j in range(n)]
                mask = xp.pad(zeros, width, constant_values=onehot)
                total = total + getitem(value, (i, side)) * mask
    return total


# --- splitting: consecutive pieces are one `split` (joins.py), others slices -------------
def array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """`numpy.array_split`: a list of sub-arrays; `sections` need not divide the axis evenly.
    Each piece is differentiable on its own."""
    ary = as_array(ary)
    (axis,) = axis_tuple(axis, len(ary.shape))
    total = ary.shape[axis]
    bounds = split_bounds(total, indices_or_sections)
    starts, stops = [b for b, _ in bounds], [e for _, e in bounds]
    if starts == [0] + stops[:-1] and stops[-1] == total:  # consecutive: one record
        return list(_split(ary, axis=axis, bounds=bounds))
    # decreasing split points: pieces overlap or come out of order
    return [getitem(ary, (slice(None),) * axis + (slice(b, e),)) for b, e in bounds]


def split_bounds(total: int, indices_or_sections: Any) -> tuple:
    """(start, stop) of each piece `array_split` cuts from an axis of length `total`."""
    try:
        points = [0, *(int(i) for i in indices_or_sections), total]
    except TypeError:  # a number of sections
        sections = int(indices_or_sections)
        if sections <= 0:
            raise ValueError("array_split: the number of sections must be larger than 0") from None
        each, extras = divmod(total, sections)
        points = [0]
        for i in range(sections):
            points.append(points[-1] + each + (i < extras))
    bounds = []
    for b, e in zip(points, points[1:]):
        start, stop, _ = slice(b, e).indices(total)
        bounds.append((start, max(start, stop)))
    return tuple(bounds)


def split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """`numpy.split`: like `array_split`, but a number of sections must divide the axis.

    >>> import numpy as np
    >>> from diffprog.numpy.indexing import split
    >>> split(np.arange(6.0), 3)
    [array([0., 1.]), array([2., 3.]), array([4., 5.])]
    """
    if isinstance(indices_or_sections, (int, np.integer)):
        ary = as_array(ary)
        (ax,) = axis_tuple(axis, len(ary.shape))
        if indices_or_sections > 0 and ary.shape[ax] % indices_or_sections:
            raise ValueError("array split does not result in an equal division")
    return array_split(ary, indices_or_sections, axis)


def hsplit(ary: Any, indices_or_sections: Any) -> list:
    """`numpy.hsplit`: split along the second axis (the first for 1-D arrays)."""
    ary = as_array(ary)
    n = len(ary.shape)
    if n == 0:
        raise ValueError("hsplit only works on arrays of 1 or more dimensions")
    return split(ary, indices_or_sections, 1 if n > 1 else 0)


def vsplit(ary: Any, indices_or_sections: Any) -> list:
    """`numpy.vsplit`: split along the first axis of an array of 2 or more dimensions."""
    if len(as_array(ary).shape) < 2:
        raise ValueError("vsplit only works on arrays of 2 or more dimensions")
    return split(ary, indices_or_sections, 0)


def dsplit(ary: Any, indices_or_sections: Any) -> list:
    """`numpy.dsplit`: split along the third axis of an array of 3 or more dimensions."""
    if len(as_array(ary).shape) < 3:
        raise ValueError("dsplit only works on arrays of 3 or more dimensions")
    return split(ary, indices_or_sections, 2)


__all__ = [
    "array_split", "diag", "diagonal", "dsplit", "hsplit", "pad", "split", "take",
    "take_along_axis", "trace", "tril", "triu", "vsplit",
]  # fmt: skip
