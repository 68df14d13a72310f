"""Joining and splitting arrays, and array_like values (lists holding tracers) made arrays.

Owns: the primitives `concatenate` and `stack` and their transposes `split` and `unstack`
(each of a pair is the other's transpose). The joins are JointPrimitives: their rules see
every piece at once (the VJP splits the cotangent once, the JVP joins the tangents once,
one shared zeros array standing for the symbolic zeros of each shape), so joining N pieces
costs O(N) in both modes and at every order. Public: concatenate, stack, unstack. Also
`as_array` / `as_arrays` / `as_array_beside`, the one path by which functions taking
array_like turn lists and numbers into arrays (beside a GPU array: on its device), with
`assemble` for (nested) lists and tuples that hold traced values (or GPU arrays): built like
`numpy.array` builds them, differentiable in each entry.
Layer L4: imports L0-L2 and _define.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..ad.batching import every
from ..backend import asarray_like, namespace_of, run_kernel
from ..core.edge import astype
from ..core.primitive import JointPrimitive, Primitive
from ..core.trace import Tracer, raw, unwrapped
from ._define import index_axis, one_axis


# --- the primitives ------------------------------------------------------------------------
def _zeros_for(pieces: Sequence[Any], refs: Sequence[Any]) -> list[Any]:
    """`pieces` with each None (a symbolic zero) replaced by zeros shaped like its `ref`:
    one zeros array per distinct shape and dtype, made on the refs' device."""
    made: dict[tuple, Any] = {}
    out = []
    for p, ref in zip(pieces, refs):
        if p is None:
            r = raw(ref)
            key = (tuple(r.shape), r.dtype)
            if key not in made:
                made[key] = run_kernel(lambda xp, r: xp.zeros(r.shape, dtype=r.dtype), (r,), {})
            p = made[key]
        out.append(p)
    return out


def _bounds(arrays: Sequence[Any], axis: int) -> tuple[tuple[int, int], ...]:
    """Where each of `arrays` lies along `axis` of their concatenation."""
    bounds, start = [], 0
    for a in arrays:
        stop = start + a.shape[axis]
        bounds.append((start, stop))
        start = stop
    return tuple(bounds)


def _split_impl(xp: Any, x: Any, *, axis: int, bounds: tuple) -> tuple:
    return tuple(x[(slice(None),) * axis + (slice(b, e),)] for b, e in bounds)


def _unstack_impl(xp: Any, x: Any, *, axis: int) -> tuple:
    return tuple(x[(slice(None),) * axis + (i,)] for i in range(x.shape[axis]))


_concatenate = JointPrimitive(
    "concatenate", lambda xp, *arrays, axis: xp.concatenate(arrays, axis),
    vjp=lambda g, ans, *arrays, axis: _split(g, axis=axis, bounds=_bounds(arrays, axis)),
    jvp=lambda ts, ans, *arrays, axis: _concatenate(*_zeros_for(ts, arrays), axis=axis),
)  # fmt: skip
_stack = JointPrimitive(
    "stack", lambda xp, *arrays, axis: xp.stack(arrays, axis),
    vjp=lambda g, ans, *arrays, axis: _unstack(g, axis=axis),
    jvp=lambda ts, ans, *arrays, axis: _stack(*_zeros_for(ts, arrays), axis=axis),
)  # fmt: skip
# `split` cuts the whole axis into consecutive pieces (bounds from `_bounds`).
_split = Primitive("split", _split_impl, multiple_results=True)
_split.defvjp(lambda g, ans, x, *, axis, bounds: _concatenate(*_zeros_for(g, ans), axis=axis))
_split.defjvp(lambda t, ans, x, *, axis, bounds: _split(t, axis=axis, bounds=bounds))
_unstack = Primitive("unstack", _unstack_impl, multiple_results=True)
_unstack.defvjp(lambda g, ans, x, *, axis: _stack(*_zeros_for(g, ans), axis=axis))
_unstack.defjvp(lambda t, ans, x, *, axis: _unstack(t, axis=axis))
# dp.vmap: every piece made a batch, the axis shifted past the batch axis
_concatenate.defbatch(lambda size, batched, *arrays, axis: _concatenate(
    *(every(a, b, size) for a, b in zip(arrays, batched)), axis=axis + 1))
_stack.defbatch(lambda size, batched, *arrays, axis: _stack(
    *(every(a, b, size) for a, b in zip(arrays, batched)), axis=axis + 1))
_split.defbatch(lambda size, batched, x, *, axis, bounds: _split(x, axis=axis + 1, bounds=bounds))
_unstack.defbatch(lambda size, batched, x, *, axis: _unstack(x, axis=axis + 1))


# --- public --------------------------------------------------------------------------------
def concatenate(arrays: Sequence[Any], axis: int = 0) -> Any:
    """`numpy.concatenate((a, b, ...), axis=0)`; each entry may be a list holding traced
    values; axis=None joins them flattened."""
    arrays = as_arrays(arrays)
    if not arrays:
        raise ValueError("need at least one array to concatenate")
    if axis is None:  # NumPy's: the arrays flattened, then joined
        arrays, axis = [a.reshape(-1) for a in arrays], 0  # (the tracer's method: dnp.reshape)
    ndim = len(arrays[0].shape)
    if ndim == 0:
        raise ValueError("zero-dimensional arrays cannot be concatenated")
    return _concatenate(*arrays, axis=one_axis("concatenate", axis, ndim))


def stack(arrays: Sequence[Any], axis: int = 0) -> Any:
    """`numpy.stack`: join arrays of one shape along a new axis."""
    arrays = as_arrays(arrays)
    if not arrays:
        raise ValueError("need at least one array to stack")
    shapes = {tuple(a.shape) for a in arrays}
    if len(shapes) != 1:
        raise ValueError(f"all input arrays must have the same shape, got {sorted(shapes)}")
    return _stack(*arrays, axis=index_axis(axis, len(arrays[0].shape) + 1))


def unstack(x: Any, /, *, axis: int = 0) -> tuple:
    """`numpy.unstack`: the slices of `x` along `axis`, as a tuple (the inverse of stack).
    `axis` may also be a sequence of one axis, as NumPy takes it (moveaxis's `source`)."""
    x = as_array(x)
    if len(x.shape) == 0:
        raise ValueError("Input array must be at least 1-d.")
    try:
        axis = operator.index(axis)
    except TypeError:
        axes = tuple(axis)  # (NumPy's TypeError when it is neither an int nor a sequence)
        if len(axes) != 1:
            raise ValueError("unstack: axis must be one axis; `source` and `destination` "
                             f"arguments must have the same number of elements (got {axis!r})")
        axis = axes[0]
    return tuple(_unstack(x, axis=index_axis(axis, len(x.shape))))


# --- array_like values as arrays -----------------------------------------------------------
def as_array(a: Any) -> Any:
    """`a` itself if it is an array or a tracer; a (nested) list or tuple holding traced
    values or GPU arrays `assemble`d; anything else (lists, numbers) `numpy.asarray(a)`."""
    if type(a) is np.ndarray or isinstance(a, Tracer):  # the common cases, first
        return a
    if isinstance(a, (list, tuple)):
        try:
            return np.asarray(a)
        except TypeError:  # a traced value (TracerConversionError) or a CuPy array inside
            if not holds_arrays(a):
                raise
        return assemble(a)
    return a if hasattr(a, "shape") and hasattr(a, "dtype") else np.asarray(a)


def as_ndarray(a: Any, numpy_scalars: bool = True) -> Any:
    """`as_array(a)`, a scalar (a watched Python number; a NumPy scalar unless not
    `numpy_scalars`) made a 0-d array as NumPy's asarray makes it: for the functions whose
    result NumPy builds on asarray(a) even when they change nothing (pad by 0,
    real_if_close of reals; reshape to the same shape and transpose of a 0-d array, which
    keep a NumPy scalar: NumPy calls its method)."""
    a = as_array(a)
    value = unwrapped(a)
    numpy_scalar = isinstance(value, np.generic)  # (np.float64 is a float too)
    if not (numpy_scalar and numpy_scalars or not numpy_scalar and isinstance(value, (float, complex))):
        return a
    return _to_array(a) if isinstance(a, Tracer) else np.asarray(a)


# the identity from a scalar to its 0-d array (a batched value is an array already)
_to_array = Primitive("to_array", lambda xp, x: xp.asarray(x))
_to_array.defvjp(lambda g, ans, x: g)
_to_array.defjvp(lambda t, ans, x: _to_array(t))
_to_array.defbatch(lambda size, batched, x: x)


def as_array_beside(a: Any, ref: Any) -> Any:
    """`a` as an array to be used with the array `ref`: arrays and traced values (also in
    lists) as `as_array` makes them, other host data (numbers, lists) made on ref's device."""
    if isinstance(a, Tracer) or holds_arrays(a):
        return as_array(a)
    if hasattr(a, "shape") and hasattr(a, "dtype") and not isinstance(a, np.generic):
        return a
    return asarray_like(a, raw(ref))


def as_arrays(values: Sequence[Any]) -> tuple[Any, ...]:
    """`values` as arrays to be joined: lists and numbers beside arrays become arrays of
    the first array's module and device (a CuPy array's GPU), else NumPy arrays; lists
    holding traced values are `assemble`d."""
    values = [assemble(v) if holds_arrays(v) else v for v in values]
    ref = next((a for a in values if hasattr(a, "shape") and hasattr(a, "dtype")), None)
    if ref is None:
        return tuple(map(np.asarray, values))
    return tuple(a if hasattr(a, "shape") and hasattr(a, "dtype") else asarray_like(a, ref)
                 for a in values)  # fmt: skip


def holds_arrays(obj: Any) -> bool:
    """True for a (nested) list or tuple with a tracer or a non-NumPy (GPU) array inside."""
    return isinstance(obj, (list, tuple)) and any(map(_is_device_leaf, _leaves(obj)))


def assemble(obj: Any, dtype: Any = None) -> Any:
    """A (nested) list or tuple as one array, as `numpy.array(obj, dtype)` would build it:
    one dtype for all (NumPy's promotion of the entries' dtypes, unless given), one shape
    (entries of different shapes are refused), differentiable in every traced entry (each
    sub-list holding tracers is one `stack`). Numbers and constant sub-lists go to the
    device of the first traced or GPU entry.

    >>> import numpy as np, diffprog as dp
    >>> from diffprog.numpy.joins import assemble
    >>> dp.grad(lambda a, b: (assemble([[a, 2.0 * b], [1.0, a]]) ** 2).sum(), (0, 1))(1.0, 3.0)
    (4.0, 24.0)
    """
    leaves = list(_leaves(obj))
    if dtype is not None:
        want = np.dtype(dtype)
    elif leaves:
        want = np.result_type(*(_dtype_of(x) for x in leaves))
    else:
        want = np.dtype(np.float64)
    ref = next((raw(x) for x in leaves if _is_device_leaf(x)), None)
    return _built(obj, want, ref)


def cast(x: Tracer, dtype: np.dtype) -> Any:
    """A traced value in `dtype`: differentiable to a floating or complex dtype, a constant
    otherwise."""
    if dtype.kind not in "fc":  # an integer / bool view of a traced value is a constant
        return np.asarray(raw(x)).astype(dtype) if type(raw(x)) is float else raw(x).astype(dtype)
    return x if x.dtype == dtype else astype(x, dtype=dtype)


def _built(obj: Any, dtype: np.dtype, ref: Any) -> Any:
    if isinstance(obj, Tracer):
        return cast(obj, dtype)
    if not holds_arrays(obj):  # a constant: an array stays where it is, host data moves
        if hasattr(obj, "shape") and not isinstance(obj, np.generic):  # to the device of ref
            return obj if obj.dtype == dtype else obj.astype(dtype)
        return np.asarray(obj, dtype=dtype) if ref is None else asarray_like(obj, ref, dtype)
    parts = [_built(o, dtype, ref) for o in obj]
    shapes = sorted({tuple(p.shape) for p in parts})
    if len(shapes) > 1:
        raise ValueError(
            f"cannot make one array of a list whose entries have different shapes {shapes} "
            "(NumPy refuses such an inhomogeneous list too); give every entry one shape"
        )
    return _stack(*parts, axis=0)


def _leaves(obj: Any) -> Iterator[Any]:
    """The entries of nested lists and tuples, depth first (an iterative walk)."""
    stack = [obj]
    while stack:
        x = stack.pop()
        if isinstance(x, (list, tuple)):
            stack.extend(reversed(x))
        else:
            yield x


def _is_device_leaf(x: Any) -> bool:
    """A tracer, or an array NumPy cannot take into a list (a CuPy array)."""
    if isinstance(x, Tracer):
        return True
    return hasattr(x, "shape") and hasattr(x, "dtype") and namespace_of((x,)) is not np


def _dtype_of(x: Any) -> np.dtype:
    """The dtype NumPy gives an entry of a list: its own, or a Python number's default."""
    d = getattr(x, "dtype", None)
    return np.dtype(d) if d is not None else np.asarray(x).dtype


__all__ = ["concatenate", "stack", "unstack"]
