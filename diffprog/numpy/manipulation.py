"""Shape and indexing functions under NumPy's names, with their derivative rules.

Owns: reshape, ravel, transpose (and swapaxes/moveaxis/rollaxis), expand_dims, squeeze,
atleast_*d, broadcast_to, tile, repeat, flip (fliplr/flipud), roll, rot90, the composite
joins (hstack, vstack, dstack, column_stack, append; the join primitives: joins.py), and
indexing: `getitem` (basic, advanced and boolean) whose transpose `index_add` accumulates
repeated indices (gathers and splits: indexing.py), with their dp.vmap rules: a shared
index keeps the batch axis, each example's own index becomes one gather or scatter for the
batch (`_batched_index`).
All of these are linear, so each JVP applies the same function to the tangent.
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.exceptions import AxisError

from ..ad.batching import Batched, every, example_ndim
from ..backend import asarray_like
from ..core.edge import broadcast_to as _broadcast_to
from ..core.primitive import IndexedPrimitive, Primitive
from ..errors import UnsupportedKeywordError
from ..core.trace import Tracer, raw, unwrapped
from ._define import axes_of, axis_tuple, index_axis, one_axis
from .batching import aligned, along_axes, loop
from .elementwise import positive
from .joins import as_array, as_array_beside, as_ndarray, concatenate, stack  # noqa: F401

_reshape = Primitive("reshape", lambda xp, x, *, shape: xp.reshape(x, shape))
_reshape.defvjp(lambda g, ans, x, *, shape: _reshape(g, shape=x.shape))
_reshape.defjvp(lambda t, ans, x, *, shape: _reshape(t, shape=shape))


def reshape(a: Any, shape: Any = None, order: str = "C", *, newshape: Any = None) -> Any:
    """`numpy.reshape` (C order); one dimension may be -1. `newshape=` is NumPy 1's name."""
    if (shape is None) == (newshape is None):
        raise TypeError("reshape needs the new shape once, as `shape` (or `newshape`)")
    a = as_array(a)
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
        return as_ndarray(a, numpy_scalars=False)
    return _reshape(a, shape=shape)


def broadcast_to(array: Any, shape: Any) -> Any:
    """`numpy.broadcast_to`; the gradient sums over the broadcast axes."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    array = as_array(array)
    return array if shape == array.shape else _broadcast_to(array, shape=shape)


_transpose = Primitive("transpose", lambda xp, x, *, axes: xp.transpose(x, axes))
_transpose.defvjp(
    lambda g, ans, x, *, axes: _transpose(g, axes=tuple(int(i) for i in np.argsort(axes)))
)
_transpose.defjvp(lambda t, ans, x, *, axes: _transpose(t, axes=axes))


def transpose(a: Any, axes: Sequence[int] | None = None) -> Any:
    """`numpy.transpose`; `axes=None` reverses the axes."""
    a = as_array(a)
    axes = transpose_axes(len(a.shape), axes)
    if axes == tuple(range(len(axes))):
        return as_ndarray(a, numpy_scalars=False)
    return _transpose(a, axes=axes)


def swapaxes(a: Any, axis1: int, axis2: int) -> Any:
    """`numpy.swapaxes`."""
    a = as_array(a)
    return transpose(a, swapaxes_axes(len(a.shape), axis1, axis2))


def moveaxis(a: Any, source: int | Sequence[int], destination: int | Sequence[int]) -> Any:
    """`numpy.moveaxis`: move one axis, or a sequence of axes, to new positions."""
    a = as_array(a)
    return transpose(a, moveaxis_axes(len(a.shape), source, destination))


def transpose_axes(n: int, axes: Sequence[int] | None) -> tuple[int, ...]:
    """The permutation `transpose(a, axes)` applies to an array of dimension `n`."""
    if axes is None:
        return tuple(range(n))[::-1]
    perm = tuple(axis_tuple(i, n)[0] for i in axes)  # (NumPy's AxisError out of bounds)
    if sorted(perm) != list(range(n)):
        raise ValueError(f"axes {tuple(axes)} do not match an array of dimension {n}")
    return perm


def swapaxes_axes(n: int, axis1: int, axis2: int) -> tuple[int, ...]:
    """The permutation of `swapaxes(a, axis1, axis2)` for an array of dimension `n`."""
    (axis1,), (axis2,) = axis_tuple(axis1, n), axis_tuple(axis2, n)
    perm = list(range(n))
    perm[axis1], perm[axis2] = perm[axis2], perm[axis1]
    return tuple(perm)


def moveaxis_axes(n: int, source: Any, destination: Any) -> tuple[int, ...]:
    """The permutation of `moveaxis(a, source, destination)` for an array of dimension `n`."""
    src, dst = axis_tuple(source, n), axis_tuple(destination, n)
    if len(src) != len(dst):
        raise ValueError("moveaxis: `source` and `destination` must have the same number of axes")
    perm = [i for i in range(n) if i not in src]
    for d, s in sorted(zip(dst, src)):
        perm.insert(d, s)
    return tuple(perm)


def rollaxis(a: Any, axis: int, start: int = 0) -> Any:
    """`numpy.rollaxis`: move `axis` to lie before position `start` (prefer moveaxis)."""
    a = as_array(a)
    n = len(a.shape)
    (axis,) = axis_tuple(axis, n)
    given = operator.index(start)
    start = given + n if given < 0 else given
    if not 0 <= start < n + 1:
        raise AxisError(f"rollaxis: 'start' must satisfy {-n} <= start < {n + 1}, got {given}")
    if axis < start:
        start -= 1
    perm = [i for i in range(n) if i != axis]
    perm.insert(start, axis)
    return transpose(a, perm)


def expand_dims(a: Any, axis: int | Sequence[int]) -> Any:
    """`numpy.expand_dims`: `axis` an int or a tuple or list of them, as NumPy takes it."""
    a = as_array(a)
    axes = [operator.index(i) for i in (axis if type(axis) in (tuple, list) else (axis,))]
    axes = tuple(sorted(axis_tuple(axes, len(a.shape) + len(axes))))
    shape = list(a.shape)
    for i in axes:
        shape.insert(i, 1)
    return _reshape(a, shape=tuple(shape))


def squeeze(a: Any, axis: int | Sequence[int] | None = None) -> Any:
    """`numpy.squeeze`; squeezing an axis whose length is not 1 raises."""
    a = as_array(a)
    shape = a.shape
    if axis is None:
        axes = {i for i, n in enumerate(shape) if n == 1}
    else:
        axes = set(axes_of(axis, len(shape)))  # (an int or a tuple, as NumPy takes it)
        bad = [i for i in sorted(axes) if shape[i] != 1]
        if bad:
            raise ValueError(f"cannot squeeze axis {bad[0]} of shape {shape}: its length is not 1")
    return _reshape(a, shape=tuple(n for i, n in enumerate(shape) if i not in axes))


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
    out = xp.zeros(shape, dtype=np.float64 if type(g) is float else g.dtype)  # a watched float
    if _is_basic(index):
        out[index] = g
    elif out.dtype.kind == "c" and xp is not np:  # CuPy's atomic adds are real: part by part
        xp.add.at(out.real, index, xp.real(g))
        xp.add.at(out.imag, index, xp.imag(g))
    else:
        xp.add.at(out, index, g)  # unbuffered: repeated indices accumulate
    return out


_getitem = IndexedPrimitive("getitem", lambda xp, x, *, index: x[index])
index_add = IndexedPrimitive("index_add", _index_add_impl)
_getitem.defvjp(lambda g, ans, x, *, index: index_add(g, index=index, shape=x.shape))
_getitem.defjvp(lambda t, ans, x, *, index: _getitem(t, index=index))
index_add.defvjp(lambda g, ans, x, *, index, shape: _getitem(g, index=index))
index_add.defjvp(lambda t, ans, x, *, index, shape: index_add(t, index=index, shape=shape))


# dp.vmap: the batch axis (0) goes in front of every shape and permutation
_reshape.defbatch(lambda size, batched, x, *, shape: _reshape(x, shape=(size,) + tuple(shape)))
_transpose.defbatch(lambda size, batched, x, *, axes: _transpose(
    x, axes=(0,) + tuple(a % (len(x.shape) - 1) + 1 for a in axes)))  # fmt: skip


def _getitem_batch(size: int, batched: tuple, x: Any, *, index: tuple) -> Any:
    plan = _batched_index(size, index, example_ndim(x, batched[0]), x)
    if plan is None:
        return loop(_getitem, size, batched, x, index=index)
    new_index, order = plan
    out = _getitem(every(x, batched[0], size), index=new_index)
    return _transpose(out, axes=order(len(out.shape))) if order else out


def _index_add_batch(size: int, batched: tuple, g: Any, *, index: tuple, shape: tuple) -> Any:
    plan = _batched_index(size, index, len(shape), g)
    if plan is None:
        return loop(index_add, size, batched, g, index=index, shape=shape)
    new_index, order = plan
    g = every(g, batched[0], size)
    if order:  # the layout the batched gather would have made
        g = _transpose(g, axes=tuple(int(i) for i in np.argsort(order(len(g.shape)))))
    return index_add(g, index=new_index, shape=(size,) + tuple(shape))


def _batched_index(size: int, index: tuple, ndim: int, ref: Any) -> Any:
    """How to index a batch (axis 0) as `index` indexes one example of `ndim` axes (on the
    device of the array `ref`):
    (the batch's index, order) where order(n) is the permutation that brings the batched
    result (of n axes) to batch axis first, then one example's result (None: no need), or
    None where the loop must do it (a batched boolean mask: each example's own count)."""
    kinds = [_index_kind(e) for e in index]
    arrays = [k for k in kinds if k in ("array", "bool", "batched")]
    advanced = [i for i, k in enumerate(kinds) if k in ("array", "bool", "batched")
                or (k == "int" and arrays)]  # fmt: skip
    together = advanced == list(range(advanced[0], advanced[-1] + 1)) if advanced else True
    if "batched" not in kinds:  # a shared index: keep the batch axis as it is
        if together:
            return (slice(None),) + index, None
        n = max(1 if k == "bool" else len(e.shape) for e, k in zip(index, kinds) if k != "int"
                and k in ("array", "bool"))  # fmt: skip
        return (slice(None),) + index, lambda rank: (n,) + tuple(range(n)) + tuple(
            range(n + 1, rank))  # NumPy put the advanced axes first, then the batch axis
    if "bool" in kinds or any(k == "batched" and e.value.dtype.kind == "b"
                              for e, k in zip(index, kinds)):  # fmt: skip
        return None
    rank = max(len(e.value.shape) - 1 if k == "batched" else len(getattr(e, "shape", ()))
               for e, k in zip(index, kinds) if k in ("array", "batched", "int"))  # fmt: skip
    examples = on_device_of(ref, np.arange(size).reshape((size,) + (1,) * rank))
    new_index = (examples,) + tuple(
        aligned(e.value, rank) if k == "batched" else e for e, k in zip(index, kinds))
    start = advanced[0]
    if not together or start == 0:  # the advanced axes (the batch's among them) come first
        return new_index, None
    before = sum(1 for e in index[:start] if e is None or isinstance(e, slice))
    if any(e is Ellipsis for e in index[:start]):
        before += ndim - sum(1 for e in index if e is not None and e is not Ellipsis)
    return new_index, lambda n: (0,) + tuple(range(rank + 1, rank + 1 + before)) + tuple(
        range(1, rank + 1)) + tuple(range(rank + 1 + before, n))


def _index_kind(e: Any) -> str:
    if type(e) is Batched:
        return "batched"
    if e is None or e is Ellipsis or isinstance(e, slice):
        return "basic"
    if isinstance(e, (int, np.integer)):
        return "int"
    return "bool" if getattr(e, "dtype", None) == np.bool_ else "array"


_getitem.defbatch(_getitem_batch)
index_add.defbatch(_index_add_batch)


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


# --- helpers -------------------------------------------------------------------------------
def host_index(x: Any) -> Any:
    """An index-like value (list, number, array, traced integers) as a NumPy array on the host."""
    x = raw(x)
    return np.asarray(x.get() if type(x).__module__.startswith("cupy") else x)


def on_device_of(a: Any, index: Any) -> Any:
    """A host index array moved to the array module of `a` (a no-op for NumPy), on a CuPy
    array's own GPU. (An index computed from data is already there: under dp.jit a staged
    value, which stays one.)"""
    if isinstance(index, Tracer):
        return index
    return asarray_like(index, raw(a))


# --- reshaping and repeating ---------------------------------------------------------------
def ravel(a: Any, order: str = "C") -> Any:
    """`numpy.ravel` (C order): the elements as a 1-D array."""
    if order != "C":
        raise NotImplementedError("ravel supports order='C' only")
    return reshape(as_array(a), (-1,))


def _atleast(arys: tuple, shape_of: Any) -> Any:
    out = tuple(reshape(a, shape_of(tuple(a.shape))) for a in map(as_array, arys))
    return out[0] if len(out) == 1 else out


def atleast_1d(*arys: Any) -> Any:
    """`numpy.atleast_1d`: a 0-d input becomes shape (1,); several inputs give a tuple."""
    return _atleast(arys, lambda s: s or (1,))


def atleast_2d(*arys: Any) -> Any:
    """`numpy.atleast_2d`: () -> (1, 1), (N,) -> (1, N); several inputs give a tuple."""
    return _atleast(arys, lambda s: (1,) * (2 - len(s)) + s if len(s) < 2 else s)


def atleast_3d(*arys: Any) -> Any:
    """`numpy.atleast_3d`: () -> (1, 1, 1), (N,) -> (1, N, 1), (M, N) -> (M, N, 1)."""
    return _atleast(arys, lambda s: {0: (1, 1, 1), 1: (1, *s, 1), 2: (*s, 1)}.get(len(s), s))


def tile(A: Any, reps: Any) -> Any:
    """`numpy.tile`: the whole array repeated `reps` times along each axis.

    >>> import numpy as np
    >>> from diffprog.numpy.manipulation import tile
    >>> tile(np.array([1.0, 2.0]), (2, 2))
    array([[1., 2., 1., 2.],
           [1., 2., 1., 2.]])
    """
    A = as_array(A)
    reps = (int(reps),) if isinstance(reps, (int, np.integer)) else tuple(int(r) for r in reps)
    d = max(len(reps), len(A.shape))
    reps = (1,) * (d - len(reps)) + reps
    shape = (1,) * (d - len(A.shape)) + tuple(A.shape)
    if min(reps, default=0) < 0:
        raise ValueError(f"tile: negative repetitions {reps} are not allowed")
    if all(r == 1 for r in reps):
        return reshape(A, shape)
    # (1, a0, 1, a1, ...) broadcast to (r0, a0, r1, a1, ...): the VJP sums the copies
    spread = broadcast_to(reshape(A, [n for s in shape for n in (1, s)]),
                          [n for r, s in zip(reps, shape) for n in (r, s)])  # fmt: skip
    return reshape(spread, tuple(r * s for r, s in zip(reps, shape)))


def repeat(a: Any, repeats: Any, axis: int | None = None) -> Any:
    """`numpy.repeat`: each element repeated `repeats` times (an int, or one count per element
    along `axis`; the flattened array when `axis` is None)."""
    a = as_array(a)
    if axis is not None and not a.shape:  # NumPy takes a 0-d array as 1-d here
        one_axis("repeat", axis, 0, zero_d="one")
        axis = None
    if axis is None:
        a, axis = ravel(a), 0
    axis = one_axis("repeat", axis, len(a.shape))
    counts = host_index(repeats)
    if counts.dtype.kind not in "biu":
        raise TypeError(f"repeat: `repeats` must be integers, got dtype {counts.dtype}")
    shape, length = tuple(a.shape), a.shape[axis]
    if counts.size != 1:  # one count per element: a gather with repeated indices
        index = np.repeat(np.arange(length), counts)
        return getitem(a, (slice(None),) * axis + (on_device_of(a, index),))
    r = int(counts.reshape(-1)[0])
    if r < 0:
        raise ValueError(f"repeat: negative repeats ({r}) are not allowed")
    head, tail = shape[: axis + 1], shape[axis + 1 :]
    spread = broadcast_to(reshape(a, head + (1,) + tail), head + (r,) + tail)
    return reshape(spread, shape[:axis] + (length * r,) + tail)


# --- reversing, rolling, rotating ----------------------------------------------------------
_flip = Primitive("flip", lambda xp, x, *, axis: xp.flip(x, axis))
_flip.defvjp(lambda g, ans, x, *, axis: _flip(g, axis=axis))
_flip.defjvp(lambda t, ans, x, *, axis: _flip(t, axis=axis))
_roll = Primitive("roll", lambda xp, x, *, shift, axis: xp.roll(x, shift, axis))
_roll.defvjp(lambda g, ans, x, *, shift, axis: _roll(g, shift=tuple(-s for s in shift), axis=axis))
_roll.defjvp(lambda t, ans, x, *, shift, axis: _roll(t, shift=shift, axis=axis))
along_axes(_flip, _roll)


def flip(m: Any, axis: Any = None) -> Any:
    """`numpy.flip`: the order of elements reversed along `axis` (all axes by default); a 0-d
    array gives a scalar, as NumPy's `m[()]` does."""
    m = as_array(m)
    axes = axes_of(axis, len(m.shape), sequence=True)
    if axes:
        return _flip(m, axis=axes)
    value = unwrapped(m)
    if len(m.shape) or isinstance(value, np.generic):
        return m
    return positive(m) if isinstance(value, (float, complex)) else getitem(m, ())  # (a watched
    # Python number is no array: NumPy's scalar of it)


def fliplr(m: Any) -> Any:
    """`numpy.fliplr`: reverse the second axis."""
    if len(as_array(m).shape) < 2:
        raise ValueError("fliplr: input must be >= 2-d")
    return flip(m, 1)


def flipud(m: Any) -> Any:
    """`numpy.flipud`: reverse the first axis."""
    if len(as_array(m).shape) < 1:
        raise ValueError("flipud: input must be >= 1-d")
    return flip(m, 0)


def roll(a: Any, shift: Any, axis: Any = None) -> Any:
    """`numpy.roll`: elements shifted cyclically along `axis` (the flattened array when None);
    `shift` and `axis` may be sequences, broadcast against each other."""
    a = as_array(a)
    if axis is None:
        return reshape(roll(ravel(a), shift, 0), a.shape)
    n, net = len(a.shape), {}
    one = np.ndim(axis) == 0  # one axis (an int: NumPy's TypeError for a float; True is 1)
    axes = [index_axis(ax, n) for ax in ([axis] if one else axis)]
    for s, ax in np.broadcast(host_index(shift), axes[0] if one else axes):
        net[ax] = net.get(ax, 0) + int(s)
    pairs = [(ax, s % a.shape[ax]) for ax, s in sorted(net.items()) if a.shape[ax]]
    pairs = [(ax, s) for ax, s in pairs if s]
    if not pairs:
        return a
    return _roll(a, shift=tuple(s for _, s in pairs), axis=tuple(ax for ax, _ in pairs))


def rot90(m: Any, k: int = 1, axes: Sequence[int] = (0, 1)) -> Any:
    """`numpy.rot90`: rotated by 90 degrees `k` times, from the first of `axes` towards the
    second."""
    m = as_array(m)
    if len(tuple(axes)) != 2:
        raise ValueError("rot90: len(axes) must be 2")
    a0, a1 = axis_tuple(tuple(axes), len(m.shape))
    k %= 4
    if k == 0:
        return m
    if k == 2:
        return flip(m, (a0, a1))
    perm = list(range(len(m.shape)))
    perm[a0], perm[a1] = a1, a0
    return transpose(flip(m, a1), perm) if k == 1 else flip(transpose(m, perm), a1)


# --- joining -------------------------------------------------------------------------------
def _plain(name: str, dtype: Any, casting: str) -> None:
    if dtype is not None or casting != "same_kind":
        raise UnsupportedKeywordError(f"{name}: the dtype= and casting= options are not supported")


def hstack(tup: Sequence[Any], *, dtype: Any = None, casting: str = "same_kind") -> Any:
    """`numpy.hstack`: join along the second axis (the first for 1-D arrays)."""
    _plain("hstack", dtype, casting)
    arrays = [atleast_1d(a) for a in tup]
    return concatenate(arrays, axis=0 if arrays and len(arrays[0].shape) == 1 else 1)


def vstack(tup: Sequence[Any], *, dtype: Any = None, casting: str = "same_kind") -> Any:
    """`numpy.vstack`: join along the first axis, 1-D arrays as rows."""
    _plain("vstack", dtype, casting)
    return concatenate([atleast_2d(a) for a in tup], axis=0)


row_stack = vstack


def dstack(tup: Sequence[Any]) -> Any:
    """`numpy.dstack`: join along the third axis (after `atleast_3d`)."""
    return concatenate([atleast_3d(a) for a in tup], axis=2)


def append(arr: Any, values: Any, axis: int | None = None) -> Any:
    """`numpy.append`: `values` joined after `arr` along `axis` (both flattened when None)."""
    arr = as_array(arr)
    values = as_array_beside(values, arr)
    if axis is None:
        return concatenate([ravel(arr), ravel(values)], axis=0)
    return concatenate([arr, values], axis=axis)


def column_stack(tup: Sequence[Any]) -> Any:
    """`numpy.column_stack`: 1-D arrays become columns, then join along the second axis."""
    arrays = [as_array(a) for a in tup]
    return concatenate([reshape(a, (-1, 1)) if len(a.shape) < 2 else a for a in arrays], axis=1)


__all__ = [
    "append", "atleast_1d", "atleast_2d", "atleast_3d", "broadcast_to", "column_stack",
    "dstack", "expand_dims", "flip", "fliplr", "flipud", "getitem", "hstack", "moveaxis",
    "ravel", "repeat", "reshape", "roll", "rollaxis", "rot90", "row_stack", "squeeze",
    "swapaxes", "tile", "transpose", "vstack",
]  # fmt: skip
