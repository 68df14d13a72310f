"""The functions under NumPy's names whose results are views of their input, made views.

Owns: basic indexing (ints, slices, Ellipsis, None: `x[i]`, dnp.getitem); real and imag
(`x.real`, `x.imag`: views of a complex array's parts); reshape, ravel,
squeeze, expand_dims and atleast_*d where NumPy's result is a view; transpose, swapaxes,
moveaxis (and so .T, .mT); flip, fliplr, flipud, rot90; the split family; and NumPy's
read-only views diagonal, diag and broadcast_to. Each computes its result with the primitive
of manipulation.py / indexing.py and records it as a view of its input (`views.link`), so
writes show through as in NumPy. diffprog.numpy exports these, and the tracer methods and
NumPy's dispatch use them; diffprog's own rules keep calling the plain functions, which make
no views (and pay nothing for them).
Layer L4: imports L0-L3 and other L4 modules.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core.trace import Tracer, unwrapped
from . import complex_parts, indexing, inplace
from . import manipulation as m
from ._define import axes_of
from .inplace import Op
from .views import basic_index, link, numpy_layout, parent_link, written_root


def getitem(x: Any, index: Any) -> Any:
    """`x[index]`; with ints, slices, Ellipsis and None only, a view of `x` (as in NumPy)."""
    if type(index) is int:  # the common case, first
        index, basic = (index,), True
    else:
        index = m.index_tuple(index)
        basic = basic_index(index)
    if not isinstance(x, Tracer):
        return m._getitem(x, index=index)
    if weakref.getweakrefcount(x) and written_root(x):
        out = inplace.read(x, (("index", index),))  # a copy: x's array stays held by x alone
    else:
        out = m._getitem(x, index=index)
    if basic:  # NumPy returns a view, unless the result is a scalar
        if not isinstance(unwrapped(out), np.generic):
            link(out, x, (("index", index),))
    return out


def _reshaped(a: Any, out: Any, numpy_op: Any = None) -> Any:
    """`out`, a reshape of `a`, recorded as a view of `a` where NumPy's reshape is one
    (`numpy_op`: NumPy's own operation on an array laid out as `a`, where it copies more
    often than reshape: ravel copies whatever is not C-contiguous, a[::-1] too, where
    reshape(-1) gives a view or `a` itself)."""
    if not isinstance(a, Tracer):
        return numpy_op(a) if numpy_op is not None and type(a) is np.ndarray else out
    if out is a and numpy_op is None:
        return out
    root = not weakref.getweakrefcount(a) or parent_link(a) is None
    if numpy_op is not None:
        like = unwrapped(a) if root else numpy_layout(a)
        shared = like is not None and (
            (root and type(like) is np.ndarray and 0 in like.strides)  # (a fill value:
            or inplace.shares_memory(numpy_op(like), like))  # NumPy's is dense, C)
        if out is a:  # the same shape: `a` itself where NumPy's is a view, else a copy
            return out if shared else inplace.read(a, (("copy", None),))
    elif root and type(out.value) is np.ndarray and type(a.value) is np.ndarray:  # common
        r = a.value
        shared = out.value.base is (r if r.base is None else r.base) or 0 in r.strides
    elif root:  # laid out as NumPy's (dense, C for a broadcast fill value, as NumPy's full is)
        result, r = unwrapped(out), unwrapped(a)
        shared = inplace.shares_memory(result, r) or (type(r) is np.ndarray and 0 in r.strides)
    else:  # a view: its array may be a copy (refreshed after a write); ask its root's
        result, like = unwrapped(out), numpy_layout(a)
        shared = like is not None and (like.flags.c_contiguous or inplace.shares_memory(
            like.reshape(result.shape), like))
    # (the shape of `out` itself: under dp.vmap `out.value` may be the whole batch, and a
    # view's ops are each example's)
    return link(out, a, (("reshape", tuple(out.shape)),)) if shared else out


def reshape(a: Any, shape: Any = None, order: str = "C", *, newshape: Any = None) -> Any:
    """`numpy.reshape` (C order): a view of `a` when NumPy gives one."""
    return _reshaped(a, m.reshape(a, shape, order, newshape=newshape))


def ravel(a: Any, order: str = "C") -> Any:
    """`numpy.ravel` (C order): a view of `a` when NumPy gives one."""
    return _reshaped(a, m.ravel(a, order), lambda like: like.ravel(order) if hasattr(
        like, "ravel") else np.ravel(like, order))  # (a watched Python number has no method)


def squeeze(a: Any, axis: int | Sequence[int] | None = None) -> Any:
    """`numpy.squeeze`: a view of `a`."""
    return _reshaped(a, m.squeeze(a, axis))


def expand_dims(a: Any, axis: int | Sequence[int]) -> Any:
    """`numpy.expand_dims`: a view of `a`."""
    return _reshaped(a, m.expand_dims(a, axis))


def _atleast(make: Any, arys: tuple) -> Any:
    out = tuple(_reshaped(a, make(a)) for a in arys)
    return out[0] if len(out) == 1 else out


def atleast_1d(*arys: Any) -> Any:
    """`numpy.atleast_1d`: views of the inputs."""
    return _atleast(m.atleast_1d, arys)


def atleast_2d(*arys: Any) -> Any:
    """`numpy.atleast_2d`: views of the inputs."""
    return _atleast(m.atleast_2d, arys)


def atleast_3d(*arys: Any) -> Any:
    """`numpy.atleast_3d`: views of the inputs."""
    return _atleast(m.atleast_3d, arys)


def _transposed(a: Any, axes: tuple) -> Any:
    if axes == tuple(range(len(axes))):
        return m.as_ndarray(a, numpy_scalars=False)  # (a watched Python number: a 0-d array)
    out = m._transpose(a, axes=axes)
    return link(out, a, (("transpose", axes),)) if isinstance(a, Tracer) else out


def transpose(a: Any, axes: Sequence[int] | None = None) -> Any:
    """`numpy.transpose`; `axes=None` reverses the axes. A view of `a`."""
    a = m.as_array(a)
    return _transposed(a, m.transpose_axes(len(a.shape), axes))


def swapaxes(a: Any, axis1: int, axis2: int) -> Any:
    """`numpy.swapaxes`: a view of `a`."""
    a = m.as_array(a)
    return _transposed(a, m.swapaxes_axes(len(a.shape), axis1, axis2))


def moveaxis(a: Any, source: int | Sequence[int], destination: int | Sequence[int]) -> Any:
    """`numpy.moveaxis`: a view of `a`."""
    a = m.as_array(a)
    return _transposed(a, m.moveaxis_axes(len(a.shape), source, destination))


def flip(m_: Any, axis: Any = None) -> Any:
    """`numpy.flip`: a view of the input with the order reversed along `axis` (all axes by
    default)."""
    out = m.flip(m_, axis)
    if out is not m_ and isinstance(m_, Tracer):
        link(out, m_, (_reversed(len(m_.shape), axes_of(axis, len(m_.shape), sequence=True)),))
    return out


def fliplr(m_: Any) -> Any:
    """`numpy.fliplr`: reverse the second axis (a view)."""
    if len(m.as_array(m_).shape) < 2:
        raise ValueError("fliplr: input must be >= 2-d")
    return flip(m_, 1)


def flipud(m_: Any) -> Any:
    """`numpy.flipud`: reverse the first axis (a view)."""
    if len(m.as_array(m_).shape) < 1:
        raise ValueError("flipud: input must be >= 1-d")
    return flip(m_, 0)


def rot90(m_: Any, k: int = 1, axes: Sequence[int] = (0, 1)) -> Any:
    """`numpy.rot90`: a view of the input rotated by 90 degrees `k` times."""
    out = m.rot90(m_, k, axes)
    if out is m_ or not isinstance(m_, Tracer):
        return out
    n = len(m_.shape)
    a0, a1 = m.axis_tuple(tuple(axes), n)
    perm = m.swapaxes_axes(n, a0, a1)
    flip_a1 = _reversed(n, (a1,))
    ops = {1: (flip_a1, ("transpose", perm)), 2: (_reversed(n, (a0, a1)),),
           3: (("transpose", perm), flip_a1)}[k % 4]  # fmt: skip
    return link(out, m_, ops)


def _reversed(n: int, axes: tuple) -> Op:
    return ("index", tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(n)))


def _pieces(ary: Any, pieces: list, axis: int, indices_or_sections: Any) -> list:
    """The pieces of a split, recorded as views of `ary` (slices along `axis`)."""
    if isinstance(ary, Tracer):
        (axis,) = m.axis_tuple(axis, len(ary.shape))
        bounds = indexing.split_bounds(ary.shape[axis], indices_or_sections)
        for piece, (b, e) in zip(pieces, bounds):
            link(piece, ary, (("index", (slice(None),) * axis + (slice(b, e),)),))
    return pieces


def array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """`numpy.array_split`: views of `ary`."""
    pieces = indexing.array_split(ary, indices_or_sections, axis)
    return _pieces(ary, pieces, axis, indices_or_sections)


def split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """`numpy.split`: views of `ary`."""
    return _pieces(ary, indexing.split(ary, indices_or_sections, axis), axis, indices_or_sections)


def hsplit(ary: Any, indices_or_sections: Any) -> list:
    """`numpy.hsplit`: views of `ary` along its second axis (the first for 1-D arrays)."""
    pieces = indexing.hsplit(ary, indices_or_sections)
    return _pieces(ary, pieces, 1 if len(ary.shape) > 1 else 0, indices_or_sections)


def vsplit(ary: Any, indices_or_sections: Any) -> list:
    """`numpy.vsplit`: views of `ary` along its first axis."""
    return _pieces(ary, indexing.vsplit(ary, indices_or_sections), 0, indices_or_sections)


def dsplit(ary: Any, indices_or_sections: Any) -> list:
    """`numpy.dsplit`: views of `ary` along its third axis."""
    return _pieces(ary, indexing.dsplit(ary, indices_or_sections), 2, indices_or_sections)


def real(val: Any) -> Any:
    """`numpy.real`: the real part; of an array, a view of it (writes show through, as in
    NumPy: `x.real[i] = v`, `x.real = v`)."""
    out = complex_parts.real(val)
    return _part_view(out, val, "real") if isinstance(val, Tracer) else out


def imag(val: Any) -> Any:
    """`numpy.imag`: the imaginary part; of a complex array, a view of it (as NumPy's; of a
    real array, zeros that are no view)."""
    out = complex_parts.imag(val)
    if isinstance(val, Tracer) and complex_parts.iscomplexobj(val):
        return _part_view(out, val, "imag")
    return out


def _part_view(out: Any, val: Tracer, part: str) -> Any:
    if isinstance(unwrapped(out), (float, np.generic)):  # a scalar's part: no view
        return out
    return link(out, val, ((part, None),))


# NumPy's read-only views: writes through them raise, as in NumPy; writes into their base show.
def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """`numpy.diagonal`: a read-only view of `a`'s diagonal."""
    out = indexing.diagonal(a, offset, axis1, axis2)
    if isinstance(a, Tracer):
        axis1, axis2 = m.axis_tuple((axis1, axis2), len(a.shape))
        link(out, a, (("diagonal", (int(offset), axis1, axis2)),))
    return out


def diag(v: Any, k: int = 0) -> Any:
    """`numpy.diag`: the k-th diagonal of a 2-D array (a read-only view), or a 1-D array
    placed on the k-th diagonal of a new square matrix."""
    out = indexing.diag(v, k)
    if isinstance(v, Tracer) and len(v.shape) == 2:
        link(out, v, (("diagonal", (int(k), 0, 1)),))
    return out


def broadcast_to(array: Any, shape: Any) -> Any:
    """`numpy.broadcast_to`: a read-only view of `array`."""
    out = m.broadcast_to(array, shape)
    if out is not array and isinstance(array, Tracer):
        link(out, array, (("broadcast", tuple(out.shape)),))
    return out


__all__ = [
    "array_split", "atleast_1d", "atleast_2d", "atleast_3d", "broadcast_to", "diag",
    "diagonal", "dsplit", "expand_dims", "flip", "fliplr", "flipud", "getitem", "hsplit",
    "imag", "moveaxis", "ravel", "real", "reshape", "rot90", "split", "squeeze", "swapaxes",
    "transpose", "vsplit",
]  # fmt: skip
