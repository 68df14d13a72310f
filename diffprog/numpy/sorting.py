"""Sorting and order statistics under NumPy's names: sort, partition and median
(differentiable), argsort and argpartition (constants).

Owns: `permute`, a primitive that gathers along one axis by a permutation computed on raw
values (its transpose is the same gather by the inverse permutation, so both rules are one
more `permute`), and sort/argsort, partition/argpartition, median. The sorting permutation
is stable: tied values keep their order and each receives the cotangent of its own output
slot. partition returns exactly NumPy's arrangement (the permutation is recovered from
NumPy's result); median is the mean of the middle one or two sorted values (NaN if the
slice holds a NaN), so its gradient goes to those elements.
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..ad.batching import Batched, every, on_batches, shifted
from ..backend import namespace_of
from ..core.primitive import IndexedPrimitive
from ..core.trace import Tracer, raw
from ._define import axes_of, kept_shape, nondifferentiable, one_axis
from .batching import along_axes
from .elementwise import isnan, ufunc_where
from .joins import as_array
from .manipulation import getitem, reshape, transpose
from .reductions import mean

_KINDS = (None, "quicksort", "mergesort", "heapsort", "stable")

permute = IndexedPrimitive(
    "permute",
    lambda xp, x, *, perm, inverse, axis: xp.take_along_axis(x, perm, axis=axis),
)
permute.defvjp(
    lambda g, ans, x, *, perm, inverse, axis: permute(g, perm=inverse, inverse=perm, axis=axis)
)
permute.defjvp(
    lambda t, ans, x, *, perm, inverse, axis: permute(t, perm=perm, inverse=inverse, axis=axis)
)


_argsort = nondifferentiable("argsort", lambda xp, x, *, axis, options: xp.argsort(
    x, axis=axis, **dict(options)))  # fmt: skip


def _permute_batch(size: int, batched: tuple, x: Any, *, perm: Any, inverse: Any, axis: int) -> Any:
    """dp.vmap: the permutations of each example (Batched) or one for all, along axis + 1."""
    def batch(p: Any) -> Any:
        return p.value if type(p) is Batched else every(p, False, size)

    return permute(every(x, batched[0], size), perm=batch(perm), inverse=batch(inverse),
                   axis=shifted(axis, len(x.shape)))  # fmt: skip


permute.defbatch(_permute_batch)
along_axes(_argsort)


def _options(kind: Any, stable: Any) -> tuple:
    """The sorting options that were given (CuPy takes neither; its sorts are stable)."""
    return tuple((k, v) for k, v in (("kind", kind), ("stable", stable)) if v is not None)


def _prepare(name: str, a: Any, axis: Any, kind: Any, order: Any,
             zero_d: str = "strict") -> tuple[Any, int]:  # fmt: skip
    """`a` and its one `axis` as a non-negative int (for None, `a` flattened); with
    zero_d="one" (argsort) a 0-d `a` is taken as 1-d, as NumPy does (`axes_of`)."""
    if order is not None:
        raise NotImplementedError(f"{name}: the `order` option (structured arrays) is not "
                                  "supported")
    if kind not in _KINDS:
        raise ValueError(f"{name}: kind must be one of {_KINDS[1:]}, got {kind!r}")
    a = as_array(a)
    if axis is None:
        return reshape(a, (-1,)), 0
    axis = one_axis(name, axis, len(a.shape), zero_d)
    return (reshape(a, (1,)) if not a.shape else a), axis


def sort(a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *, stable: Any = None) -> Any:
    """`numpy.sort`; the gradient is routed back through the sorting permutation.

    >>> import diffprog as dp, diffprog.numpy as dnp, numpy as np
    >>> from diffprog.numpy.sorting import sort
    >>> x = np.array([3.0, 1.0, 2.0])
    >>> dp.grad(lambda x: dnp.sum(sort(x) * np.array([1.0, 10.0, 100.0])))(x)
    array([100.,   1.,  10.])
    """
    a, axis = _prepare("sort", a, axis, kind, order)
    r = raw(a)
    xp = namespace_of((r,))
    if not isinstance(a, Tracer):
        return xp.sort(r, axis=axis, **dict(_options(kind, stable)))
    # A stable order (NumPy's default is not; CuPy's always is): ties keep their positions.
    perm = xp.argsort(r, axis=axis, kind="stable") if xp is np else xp.argsort(r, axis=axis)
    return permute(a, perm=perm, inverse=xp.argsort(perm, axis=axis), axis=axis)


def argsort(a: Any, axis: Any = -1, kind: Any = None, order: Any = None, *,
            stable: Any = None) -> Any:  # fmt: skip
    """`numpy.argsort`: the indices that sort `a` along `axis`, a constant int array."""
    a, axis = _prepare("argsort", a, axis, kind, order, zero_d="one")
    return _argsort(a, axis=axis, options=_options(kind, stable))


def _stable_argsort(xp: Any, r: Any, axis: int) -> Any:
    return xp.argsort(r, axis=axis, kind="stable") if xp is np else xp.argsort(r, axis=axis)


def _partition_options(name: str, a: Any, kth: Any, axis: Any, kind: str, order: Any) -> Any:
    if kind != "introselect":
        raise ValueError(f"{name}: kind must be 'introselect', got {kind!r}")
    a, axis = _prepare(name, a, axis, None, order)
    return a, axis, raw(kth)


def partition(a: Any, kth: Any, axis: Any = -1, kind: str = "introselect",
              order: Any = None) -> Any:  # fmt: skip
    """`numpy.partition`: the k-th elements where sorting would put them, smaller ones
    before and larger after, in NumPy's own arrangement; differentiable like sort.

    >>> import diffprog as dp, numpy as np
    >>> from diffprog.numpy.sorting import partition
    >>> dp.grad(lambda x: partition(x, 1)[1])(np.array([3.0, 1.0, 2.0]))
    array([0., 0., 1.])
    """
    a, axis, kth = _partition_options("partition", a, kth, axis, kind, order)
    r = raw(a)
    xp = namespace_of((r,))
    if not isinstance(a, Tracer):
        return xp.partition(r, kth, axis=axis)

    def permutations(r: Any, lead: int) -> tuple[Any, Any]:
        # The permutation taking r to NumPy's arrangement: match both in sorted order.
        ax = axis + lead
        out = xp.partition(r, kth, axis=ax)
        inverse_out = xp.argsort(_stable_argsort(xp, out, ax), axis=ax)
        perm = xp.take_along_axis(_stable_argsort(xp, r, ax), inverse_out, axis=ax)
        return perm, xp.argsort(perm, axis=ax)

    perm, inverse = on_batches(permutations, r)
    return permute(a, perm=perm, inverse=inverse, axis=axis)


_argpartition = nondifferentiable("argpartition", lambda xp, x, *, kth, axis: xp.argpartition(
    x, kth, axis=axis))  # fmt: skip
along_axes(_argpartition)


def argpartition(a: Any, kth: Any, axis: Any = -1, kind: str = "introselect",
                 order: Any = None) -> Any:  # fmt: skip
    """`numpy.argpartition`: the indices that partition `a`, a constant int array."""
    a, axis, kth = _partition_options("argpartition", a, kth, axis, kind, order)
    return _argpartition(a, kth=kth, axis=axis)


def median(a: Any, axis: Any = None, out: Any = None, overwrite_input: bool = False,
           keepdims: bool = False) -> Any:  # fmt: skip
    """`numpy.median` over `axis` (None: all; an int or a sequence): the middle sorted value,
    or the mean of the two middle ones for an even count; NaN where a slice holds a NaN.

    >>> import numpy as np
    >>> from diffprog.numpy.sorting import median
    >>> median(np.array([[4.0, 1.0, 3.0, 2.0], [5.0, 6.0, 7.0, 9.0]]), axis=1)
    array([2.5, 6.5])
    """
    if out is not None:
        raise NotImplementedError("median: the `out` option is not supported")
    a = as_array(a)
    nd = len(a.shape)
    axes = axes_of(axis, nd, sequence=True)
    rest = [i for i in range(nd) if i not in axes]
    x = reshape(transpose(a, rest + list(axes)), tuple(a.shape[i] for i in rest) + (
        math.prod(a.shape[i] for i in axes),))  # (not -1: a length to infer from 0 entries)
    s = sort(x, axis=-1)
    n = s.shape[-1]
    m = mean(getitem(s, (Ellipsis, slice((n - 1) // 2, n // 2 + 1))), axis=-1, keepdims=keepdims)
    if raw(s).dtype.kind == "f" and n:  # NaNs sort last: a NaN anywhere makes the median NaN
        m = ufunc_where(isnan(getitem(s, (Ellipsis, slice(-1, None) if keepdims else -1))),
                        np.nan, m)  # fmt: skip
    # with keepdims an array, as NumPy's, also for a 0-d `a` (reshaped from shape (1,))
    return reshape(m, kept_shape(a.shape, axes)) if keepdims else m


__all__ = ["argpartition", "argsort", "median", "partition", "sort"]
