"""Shape and indexing functions under NumPy's names, with their derivative rules.

Owns: reshape, transpose (and swapaxes/moveaxis), expand_dims, squeeze, broadcast_to,
concatenate, stack, and indexing: `getitem` (basic, advanced and boolean) whose transpose
`index_add` accumulates repeated indices. All of these are linear, so each JVP applies the
same function to the tangent.
Layer L4: imports L1, L2 and the L4 helpers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import namespace_of
from ..core.edge import broadcast_to as _broadcast_to
from ..core.primitive import Primitive
from ..core.trace import Tracer, raw

_reshape = Primitive("reshape", lambda xp, x, *, shape: xp.reshape(x, shape))
_reshape.defvjp(lambda g, ans, x, *, shape: _reshape(g, shape=x.shape))
_reshape.defjvp(lambda t, ans, x, *, shape: _reshape(t, shape=shape))


def reshape(a: Any, shape: Any = None, order: str = "C", *, newshape: Any = None) -> Any:
    """`numpy.reshape` (C order); one dimension may be -1. `newshape=` is NumPy 1's name."""
    if (shape is None) == (newshape is None):
        raise TypeError("reshape needs the new shape once, as `shape` (or `newshape`)")
    newshape = shape if newshape is None else newshape
    if order != "C":
        raise NotImplementedError("reshape supports order='C' only")
    shape = (newshape,) if isinstance(newshape, int) else tuple(newshape)
    if -1 in shape:
        known = math.prod(n for n in shape if n != -1)
        size = math.prod(a.shape)
        if shape.count(-1) > 1 or known == 0 or size % known:
            raise ValueError(f"cannot reshape an array of shape {a.shape} into shape {shape}")
        shape = tuple(size // known if n == -1 else n for n in shape)
    if shape == a.shape:
        return a
    return _reshape(a, shape=shape)


def broadcast_to(array: Any, shape: Any) -> Any:
    """`numpy.broadcast_to`; the gradient sums over the broadcast axes."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return array if shape == array.shape else _broadcast_to(array, shape=shape)


_transpose = Primitive("transpose", lambda xp, x, *, axes: xp.transpose(x, axes))
_transpose.defvjp(
    lambda g, ans, x, *, axes: _transpose(g, axes=tuple(int(i) for i in np.argsort(axes)))
)
_transpose.defjvp(lambda t, ans, x, *, axes: _transpose(t, axes=axes))


def transpose(a: Any, axes: Sequence[int] | None = None) -> Any:
    """`numpy.transpose`; `axes=None` reverses the axes."""
    n = len(a.shape)
    axes = tuple(range(n))[::-1] if axes is None else tuple(i % n for i in axes)
    if sorted(axes) != list(range(n)):
        raise ValueError(f"axes {axes} do not match an array of dimension {n}")
    return a if axes == tuple(range(n)) else _transpose(a, axes=axes)


def swapaxes(a: Any, axis1: int, axis2: int) -> Any:
    """`numpy.swapaxes`."""
    perm = list(range(len(a.shape)))
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return transpose(a, perm)


def moveaxis(a: Any, source: int, destination: int) -> Any:
    """`numpy.moveaxis` for one axis."""
    n = len(a.shape)
    perm = [i for i in range(n) if i != source % n]
    perm.insert(destination % n, source % n)
    return transpose(a, perm)


def expand_dims(a: Any, axis: int | Sequence[int]) -> Any:
    """`numpy.expand_dims`."""
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    n = len(a.shape) + len(axes)
    axes = tuple(sorted(i % n for i in axes))
    shape = list(a.shape)
    for i in axes:
        shape.insert(i, 1)
    return _reshape(a, shape=tuple(shape))


def squeeze(a: Any, axis: int | Sequence[int] | None = None) -> Any:
    """`numpy.squeeze`; squeezing an axis whose length is not 1 raises."""
    shape = a.shape
    if axis is None:
        axes = {i for i, n in enumerate(shape) if n == 1}
    else:
        axes = {i % len(shape) for i in ((axis,) if isinstance(axis, int) else axis)}
        bad = [i for i in axes if shape[i] != 1]
        if bad:
            raise ValueError(f"cannot squeeze axis {bad[0]} of shape {shape}: its length is not 1")
    return _reshape(a, shape=tuple(n for i, n in enumerate(shape) if i not in axes))


def _concatenate_vjp(i: int, g: Any, ans: Any, *arrays: Any, axis: int) -> Any:
    start = 0
    for a in arrays[:i]:
        start += a.shape[axis]
    index = (slice(None),) * axis + (slice(start, start + arrays[i].shape[axis]),)
    return getitem(g, index)


_concatenate = Primitive("concatenate", lambda xp, *arrays, axis: xp.concatenate(arrays, axis))
def _concatenate_jvp(i: int, t: Any, ans: Any, *arrays: Any, axis: int) -> Any:
    zeros = [_zeros_like(a) for a in arrays]
    zeros[i] = t
    return _concatenate(*zeros, axis=axis)


def _zeros_like(a: Any) -> Any:
    r = raw(a)
    return namespace_of((r,)).zeros_like(r)


_concatenate.defvjp_variadic(_concatenate_vjp)
_concatenate.defjvp_variadic(_concatenate_jvp)


def concatenate(arrays: Sequence[Any], axis: int = 0) -> Any:
    """`numpy.concatenate((a, b, ...), axis=0)`."""
    arrays = tuple(arrays)
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    ndim = len(arrays[0].shape)
    if ndim == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    return _concatenate(*arrays, axis=axis % ndim)


def stack(arrays: Sequence[Any], axis: int = 0) -> Any:
    """`numpy.stack`: join arrays of one shape along a new axis."""
    arrays = tuple(arrays)
    if not arrays:
        raise ValueError("need at least one array to stack")
    shapes = {tuple(a.shape) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"all input arrays must have the same shape, got {sorted(shapes)}")
    return concatenate([expand_dims(a, axis) for a in arrays], axis=axis)


# --- indexing ------------------------------------------------------------------------------
def _is_basic(index: tuple) -> bool:
    """True when no element can be selected twice (ints, slices, None, ..., boolean masks)."""
    for i in index:
        if not (
            i is None
            or i is Ellipsis
            or isinstance(i, (int, slice, np.integer))
            or getattr(i, "dtype", None) == np.bool_
        ):
            return False
    return True


def _index_add_impl(xp: Any, g: Any, *, index: tuple, shape: tuple[int, ...]) -> Any:
    out = xp.zeros(shape, dtype=g.dtype)
    if _is_basic(index):
        out[index] = g
    elif xp is np:
        np.add.at(out, index, g)
    else:  # CuPy spells unbuffered scatter-add differently
        import cupyx

        cupyx.scatter_add(out, index, g)
    return out


_getitem = Primitive("getitem", lambda xp, x, *, index: x[index])
index_add = Primitive("index_add", _index_add_impl)
_getitem.defvjp(lambda g, ans, x, *, index: index_add(g, index=index, shape=x.shape))
_getitem.defjvp(lambda t, ans, x, *, index: _getitem(t, index=index))
index_add.defvjp(lambda g, ans, x, *, index, shape: _getitem(g, index=index))
index_add.defjvp(lambda t, ans, x, *, index, shape: index_add(t, index=index, shape=shape))


def getitem(x: Any, index: Any) -> Any:
    """`x[index]` with NumPy's basic, advanced and boolean indexing; repeated indices
    accumulate their gradients."""
    return _getitem(x, index=index_tuple(index))


def index_tuple(index: Any) -> tuple:
    """`index` as the tuple the indexing primitives record: lists become arrays, traced
    integer/boolean arrays their values; a traced float array is refused."""
    index = index if isinstance(index, tuple) else (index,)
    parts = []
    for i in index:
        if isinstance(i, Tracer):
            r = raw(i)
            if r.dtype.kind == "f":
                raise IndexError(
                    f"arrays used as indices must be of integer or boolean type, got a traced "
                    f"{r.dtype} array of shape {r.shape}"
                )
            i = r
        elif isinstance(i, list):
            i = np.asarray(i)
        parts.append(i)
    return tuple(parts)
