"""Sorting under NumPy's names: sort (differentiable) and argsort (a constant).

Owns: `permute`, a primitive that gathers along one axis by a permutation computed on raw
values (its transpose is the same gather by the inverse permutation, so both rules are one
more `permute`), and sort/argsort. The sorting permutation is stable: tied values keep their
order and each receives the cotangent of its own output slot.
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import namespace_of
from ..core.primitive import Primitive
from ..core.trace import Tracer, raw
from ._define import axes_of, nondifferentiable
from .joins import as_array
from .manipulation import reshape

_KINDS = (None, "quicksort", "mergesort", "heapsort", "stable")

permute = Primitive(
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


def _options(kind: Any, stable: Any) -> tuple:
    """The sorting options that were given (CuPy takes neither; its sorts are stable)."""
    return tuple((k, v) for k, v in (("kind", kind), ("stable", stable)) if v is not None)


def _prepare(name: str, a: Any, axis: Any, kind: Any, order: Any) -> tuple[Any, int]:
    if order is not None:
        raise NotImplementedError(f"{name}: the `order` option (structured arrays) is not "
                                  "supported")
    if kind not in _KINDS:
        raise ValueError(f"{name}: kind must be one of {_KINDS[1:]}, got {kind!r}")
    a = as_array(a)
    if axis is None:
        return reshape(a, (-1,)), 0
    return a, axes_of(axis, len(a.shape))[0]


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
    a, axis = _prepare("argsort", a, axis, kind, order)
    return _argsort(a, axis=axis, options=_options(kind, stable))


__all__ = ["sort", "argsort"]
