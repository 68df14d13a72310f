"""Array-creation functions under NumPy's names: array, asarray, zeros/ones/full/empty and
their `_like` forms, arange, linspace, eye, identity.

Owns: these functions. Their results are constants, made in the array module of the data
(`namespace_of`; `like=` picks it for the functions that take a shape), so `zeros_like(x)` of
a traced x carries no gradient. Outside every transform they are plain NumPy (or CuPy)
arrays. Inside one, the floating arrays of zeros/ones/empty/full, their `_like` forms, eye
and identity are constants *of the innermost trace* (`_writable`: a tracer with no
derivative), so that "allocate, then fill" works as in PyTorch: `y = dnp.zeros(n);
y[i] = x[i] * 2` records the writes (a plain `np.zeros` cannot hold a traced value, and
writing one into it is refused; under dp.jit they are staged, made anew by every replay).
Some are differentiable: `array`/`asarray` of traced values (or of lists holding them),
`full`/`full_like` with a traced fill value broadcast that value, and `linspace` is a
primitive, linear in traced `start` and `stop`.
Layer L4: imports L0-L3 and other L4 modules.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ..ad.batching import BatchTrace, BatchTracer, example_ndim, shifted
from ..ad.reverse import ReverseTrace, ReverseTracer
from ..ad.staging import StagingTrace, fresh_copy
from ..backend import namespace_of, run_kernel
from ..core.edge import astype
from ..core.primitive import Primitive
from ..core.trace import Tracer, innermost_trace, raw, unwrapped
from .batching import aligned
from .joins import as_ndarray, assemble, cast, holds_arrays
from .manipulation import broadcast_to, expand_dims, reshape
from .reductions import sum_over


def _made(values: tuple, make: Any) -> Any:
    """`make(xp)`, xp the array module of `values` (traced or not), on their device (a CuPy
    array's GPU: CuPy would create on the current one)."""
    return run_kernel(lambda xp, *_: make(xp), tuple(unwrapped(v) for v in values), {})


def _writable(x: Any) -> Any:
    """Inside a transform, the floating (or complex) array `x` as a constant of the innermost
    trace, whose item assignments are recorded (slot -1 in reverse mode, a zero tangent in
    forward mode); outside every transform, or for an integer or boolean array, `x` itself."""
    trace = innermost_trace()
    if trace is None or raw(x).dtype.kind not in "fc" or (isinstance(x, Tracer)
                                                           and x._trace is trace):
        return x
    if isinstance(trace, ReverseTrace):
        return ReverseTracer(trace, x, -1)
    if isinstance(trace, StagingTrace):  # dp.jit: a fresh copy of x at every replay
        return fresh_copy(x)
    if isinstance(trace, BatchTrace):  # dp.vmap: one copy per example, each written alone
        return BatchTracer(trace, broadcast_to(x, (trace.size,) + tuple(x.shape)).copy())
    return trace.lift(x, None)  # type: ignore[attr-defined]  # a JVPTrace


def _check(name: str, device: Any = None, subok: bool = True) -> None:
    if device is not None:
        raise TypeError(f"{name}: the `device=` option is not supported; arrays live where "
                        "their data lives (use like= or dp.to_device)")  # fmt: skip
    if not subok:
        raise TypeError(f"{name}: subok=False is not supported")


def _shape(shape: Any) -> tuple[int, ...]:
    return (int(shape),) if np.ndim(shape) == 0 else tuple(int(n) for n in shape)


def _filled(fill_value: Any, shape: tuple[int, ...], dtype: Any) -> Any:
    """A traced fill value broadcast to `shape` (differentiable), in `dtype` (an array, 0-d
    too, as NumPy's full makes)."""
    value = unwrapped(fill_value)
    if getattr(value, "dtype", None) != dtype or not hasattr(value, "shape"):
        fill_value = astype(fill_value, dtype=dtype)
    return as_ndarray(broadcast_to(fill_value, shape))


# --- from data ----------------------------------------------------------------------------
def array(object: Any, dtype: Any = None, *, copy: Any = True, order: str = "K",  # noqa: A002
          subok: bool = False, ndmin: int = 0, like: Any = None) -> Any:  # fmt: skip
    """`numpy.array`; differentiable in traced values, also inside (nested) lists and tuples.

    >>> import diffprog as dp, diffprog.numpy as dnp
    >>> dp.grad(lambda a, b: dnp.sum(dnp.array([[a, b], [2.0 * b, 1.0]]) ** 2), (0, 1))(1.0, 2.0)
    (2.0, 20.0)
    """
    if isinstance(object, Tracer) or holds_arrays(object):
        if order not in ("K", "A", "C", None):
            raise NotImplementedError(f"array: order={order!r} is not supported for traced values")
        out = as_ndarray(_traced_array(object, dtype))  # (a scalar: NumPy's 0-d array)
        if copy and out is object:
            out = object.copy()  # a new tracer: in-place updates of either leave the other
        return _with_ndmin(out, ndmin)
    out = _made((like, object), lambda xp: _array_kernel(xp, object, dtype, copy, order, ndmin))
    return out if namespace_of((out,)) is np else _with_ndmin(out, ndmin)


def _array_kernel(xp: Any, obj: Any, dtype: Any, copy: Any, order: str, ndmin: int) -> Any:
    """NumPy's own `array`; on a GPU, CuPy's copy or view (ndmin is applied after)."""
    if xp is np:
        return np.array(obj, dtype=dtype, copy=copy, order=order, ndmin=ndmin)
    return xp.array(obj, dtype=dtype, order=order) if copy else xp.asarray(obj, dtype=dtype)


def asarray(a: Any, dtype: Any = None, order: Any = None, *, device: Any = None,
            copy: Any = None, like: Any = None) -> Any:  # fmt: skip
    """`numpy.asarray`; a traced value passes through (cast if `dtype` says so), a list
    holding traced values becomes one differentiable array."""
    _check("asarray", device)
    if isinstance(a, Tracer) or holds_arrays(a):
        return array(a, dtype, copy=bool(copy), order=order)
    return _made((like, a), lambda xp: xp.asarray(raw(a), dtype=dtype, order=order))


def _traced_array(obj: Any, dtype: Any) -> Any:
    if isinstance(obj, Tracer):
        return cast(obj, obj.dtype if dtype is None else np.dtype(dtype))
    return assemble(obj, dtype)


def _with_ndmin(x: Any, ndmin: int) -> Any:
    missing = operator.index(ndmin) - len(x.shape)
    return reshape(x, (1,) * missing + tuple(x.shape)) if missing > 0 else x


# --- from another array ----------------------------------------------------------------------
def zeros_like(a: Any, dtype: Any = None, order: str = "K", subok: bool = True,
               shape: Any = None, *, device: Any = None) -> Any:  # fmt: skip
    """`numpy.zeros_like`; a constant even for a traced `a`.

    >>> import numpy as np
    >>> from diffprog.numpy.creation import zeros_like
    >>> zeros_like(np.ones((2, 2), np.float32), shape=3)
    array([0., 0., 0.], dtype=float32)
    """
    _check("zeros_like", device, subok)
    return _writable(_made((a,), lambda xp: xp.zeros_like(unwrapped(a), dtype=dtype, order=order,
                                                            shape=shape)))


def ones_like(a: Any, dtype: Any = None, order: str = "K", subok: bool = True,
              shape: Any = None, *, device: Any = None) -> Any:  # fmt: skip
    """`numpy.ones_like`; a constant even for a traced `a`."""
    _check("ones_like", device, subok)
    return _writable(_made((a,), lambda xp: xp.ones_like(unwrapped(a), dtype=dtype, order=order,
                                                           shape=shape)))


def empty_like(prototype: Any, dtype: Any = None, order: str = "K", subok: bool = True,
               shape: Any = None, *, device: Any = None) -> Any:  # fmt: skip
    """`numpy.empty_like`: uninitialised; a constant even for a traced `prototype`."""
    _check("empty_like", device, subok)
    return _writable(_made((prototype,), lambda xp: xp.empty_like(unwrapped(prototype), dtype=dtype,
                                                                   order=order, shape=shape)))


def full_like(a: Any, fill_value: Any, dtype: Any = None, order: str = "K", subok: bool = True,
              shape: Any = None, *, device: Any = None) -> Any:  # fmt: skip
    """`numpy.full_like`; differentiable in a traced floating `fill_value`, else a constant."""
    _check("full_like", device, subok)
    out = _made((a, fill_value), lambda xp: xp.full_like(unwrapped(a), raw(fill_value), dtype=dtype,
                                                         order=order, shape=shape))
    if isinstance(fill_value, Tracer) and out.dtype.kind in "fc":
        out = _filled(fill_value, out.shape, out.dtype)
    return _writable(out)


# --- from a shape --------------------------------------------------------------------------
def zeros(shape: Any, dtype: Any = None, order: str = "C", *, device: Any = None,
          like: Any = None) -> Any:  # fmt: skip
    """`numpy.zeros`; `like=` picks the array module (NumPy or CuPy)."""
    _check("zeros", device)
    dtype = float if dtype is None else dtype
    return _writable(_made((like,), lambda xp: xp.zeros(_shape(shape), dtype=dtype, order=order)))


def ones(shape: Any, dtype: Any = None, order: str = "C", *, device: Any = None,
         like: Any = None) -> Any:  # fmt: skip
    """`numpy.ones`; `like=` picks the array module (NumPy or CuPy)."""
    _check("ones", device)
    dtype = float if dtype is None else dtype
    return _writable(_made((like,), lambda xp: xp.ones(_shape(shape), dtype=dtype, order=order)))


def empty(shape: Any, dtype: Any = None, order: str = "C", *, device: Any = None,
          like: Any = None) -> Any:  # fmt: skip
    """`numpy.empty` (uninitialised); `like=` picks the array module (NumPy or CuPy)."""
    _check("empty", device)
    dtype = float if dtype is None else dtype
    return _writable(_made((like,), lambda xp: xp.empty(_shape(shape), dtype=dtype, order=order)))


def full(shape: Any, fill_value: Any, dtype: Any = None, order: str = "C", *,
         device: Any = None, like: Any = None) -> Any:  # fmt: skip
    """`numpy.full`; differentiable in a traced floating `fill_value`, else a constant."""
    _check("full", device)
    if isinstance(fill_value, Tracer):  # (never through NumPy's full: it cannot hold one)
        value = unwrapped(fill_value)
        kind = np.dtype(dtype) if dtype is not None else getattr(value, "dtype", None)
        out = _filled(fill_value, _shape(shape), np.asarray(value).dtype if kind is None else kind)
        return _writable(out if out.dtype.kind in "fc" else raw(out))
    return _writable(_made((like, fill_value),
                           lambda xp: xp.full(_shape(shape), fill_value, dtype=dtype, order=order)))


def eye(N: int, M: int | None = None, k: int = 0, dtype: Any = float, order: str = "C", *,
        device: Any = None, like: Any = None) -> Any:  # noqa: N803  # fmt: skip
    """`numpy.eye`: ones on the k-th diagonal of an N x M matrix."""
    _check("eye", device)
    return _writable(_made((like,), lambda xp: xp.eye(N, M, k, dtype=dtype, order=order)))


def identity(n: int, dtype: Any = None, *, like: Any = None) -> Any:
    """`numpy.identity`: the n x n identity matrix."""
    return _writable(_made((like,), lambda xp: xp.identity(n, dtype=float if dtype is None
                                                           else dtype)))


def arange(start: Any, stop: Any = None, step: Any = None, dtype: Any = None, *,
           device: Any = None, like: Any = None) -> Any:  # fmt: skip
    """`numpy.arange([start,] stop[, step])`; a constant (traced bounds count as constants).

    >>> from diffprog.numpy.creation import arange
    >>> arange(1, 2, 0.25)
    array([1.  , 1.25, 1.5 , 1.75])
    """
    _check("arange", device)
    start, stop, step = raw(start), raw(stop), raw(step)
    return _made((like, start, stop, step),
                 lambda xp: xp.arange(start, stop, 1 if step is None else step, dtype=dtype))


# --- linspace: linear in start and stop ---------------------------------------------------
def _linspace_weights(ans: Any, num: int, endpoint: bool, axis: int) -> Any:
    """Where each sample sits between start (0) and stop (1), shaped to broadcast along
    `axis` of the samples `ans`; a constant."""
    steps = max(num - 1 if endpoint else num, 1)
    w = _made((ans,), lambda xp: xp.arange(num, dtype=ans.dtype)) / steps
    return w.reshape(tuple(num if i == axis else 1 for i in range(ans.ndim)))


def _linspace_rules(at_stop: bool) -> tuple[Any, Any]:
    """The VJP and JVP rules for start (at_stop False) or stop: weights 1 - w or w."""

    def weights(ans: Any, num: int, endpoint: bool, axis: int) -> Any:
        w = _linspace_weights(ans, num, endpoint, axis)
        return w if at_stop else 1.0 - w

    def vjp(g: Any, ans: Any, start: Any, stop: Any, *, num: int, endpoint: bool, dtype: Any,
            axis: int) -> Any:  # fmt: skip
        return sum_over(g * weights(ans, num, endpoint, axis), axis=(axis,), keepdims=False)

    def jvp(t: Any, ans: Any, start: Any, stop: Any, *, num: int, endpoint: bool, dtype: Any,
            axis: int) -> Any:  # fmt: skip
        t = broadcast_to(t, ans.shape[:axis] + ans.shape[axis + 1 :])
        return expand_dims(t, axis) * weights(ans, num, endpoint, axis)

    return vjp, jvp


_linspace = Primitive(
    "linspace",
    lambda xp, start, stop, *, num, endpoint, dtype, axis: xp.linspace(
        start, stop, num, endpoint=endpoint, dtype=dtype, axis=axis
    ),
)
(_start_vjp, _start_jvp), (_stop_vjp, _stop_jvp) = _linspace_rules(False), _linspace_rules(True)
_linspace.defvjp(_start_vjp, _stop_vjp)
_linspace.defjvp(_start_jvp, _stop_jvp)
# dp.vmap: the ends broadcast as in an elementwise operation, the samples' axis after the batch's
_linspace.defbatch(lambda size, batched, start, stop, *, axis, **rest: _linspace(
    *(aligned(v, max(example_ndim(v, b) for v, b in zip((start, stop), batched))) if b else v
      for v, b in zip((start, stop), batched)), axis=shifted(axis, 0), **rest))  # fmt: skip


def linspace(start: Any, stop: Any, num: int = 50, endpoint: bool = True, retstep: bool = False,
             dtype: Any = None, axis: int = 0, *, device: Any = None) -> Any:  # fmt: skip
    """`numpy.linspace`: `num` evenly spaced samples from start to stop (`endpoint`: stop
    included); differentiable in traced start and stop. `retstep` also returns the spacing.

    >>> from diffprog.numpy.creation import linspace
    >>> linspace(0.0, 1.0, 5)
    array([0.  , 0.25, 0.5 , 0.75, 1.  ])
    """
    _check("linspace", device)
    num, endpoint = operator.index(num), bool(endpoint)
    dtype = None if dtype is None else np.dtype(dtype)
    traced = isinstance(start, Tracer) or isinstance(stop, Tracer)
    if not traced or num < 0 or (dtype is not None and dtype.kind not in "fc"):  # a constant
        return _made((start, stop), lambda xp: xp.linspace(raw(start), raw(stop), num, endpoint,
                                                            retstep, dtype, axis))
    ndim = 1 + max(np.ndim(raw(start)), np.ndim(raw(stop)))
    if not -ndim <= axis < ndim:
        raise ValueError(f"linspace: axis {axis} is out of bounds for a result of dimension {ndim}")
    out = _linspace(start, stop, num=num, endpoint=endpoint, dtype=dtype, axis=axis % ndim)
    if not retstep:
        return out
    div = num - 1 if endpoint else num
    return out, (stop - start) / div if div > 0 else (stop - start) * float("nan")


__all__ = [
    "arange", "array", "asarray", "empty", "empty_like", "eye", "full", "full_like", "identity", "linspace",
    "ones", "ones_like", "zeros", "zeros_like",
]  # fmt: skip
