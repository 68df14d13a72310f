"""Reductions under NumPy's names: sum, mean, max, min (logsumexp lives in nn).

Owns: the reduction primitives and their rules. Public functions normalise `axis` once
(`axes_of`), so rules always see a sorted tuple of non-negative axes; the cotangent is
brought back to the input's shape by reshaping to the kept-dims shape and broadcasting.
Ties in max/min share the gradient equally.
Layer L4: imports L2 and the L4 helpers.
"""

from __future__ import annotations

from typing import Any

from ..core.edge import broadcast_to
from ..core.primitive import Primitive
from ..core.trace import raw
from ._define import axes_of, kept_shape
from .manipulation import reshape


def spread(g: Any, x: Any, axes: tuple[int, ...], keepdims: bool) -> Any:
    """A reduction's cotangent `g` broadcast back over the reduced axes of `x`."""
    if not keepdims:
        g = reshape(g, kept_shape(x.shape, axes))
    return broadcast_to(g, shape=x.shape)


_sum = Primitive("sum", lambda xp, x, *, axis, keepdims: xp.sum(x, axis=axis, keepdims=keepdims))
_sum.defvjp(lambda g, ans, x, *, axis, keepdims: spread(g, x, axis, keepdims))
_sum.defjvp(lambda t, ans, x, *, axis, keepdims: _sum(t, axis=axis, keepdims=keepdims))


def sum(a: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """`numpy.sum(a, axis=None, keepdims=False)`.

    >>> import diffprog.numpy as dnp, numpy as np
    >>> dnp.sum(np.ones((2, 3)), axis=1)
    array([3., 3.])
    """
    return _sum(a, axis=axes_of(axis, _ndim(a)), keepdims=keepdims)


def mean(a: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """`numpy.mean(a, axis=None, keepdims=False)`."""
    axes = axes_of(axis, _ndim(a))
    count = 1
    for i in axes:
        count *= a.shape[i]
    return _sum(a, axis=axes, keepdims=keepdims) / count


def _extremum_share(x: Any, ans: Any, axes: tuple[int, ...], keepdims: bool) -> Any:
    """Where x attains its max (or min): 1/count of ties, elsewhere 0 (a constant array)."""
    x, ans = raw(x), raw(ans)
    hit = x == (ans if keepdims else ans.reshape(kept_shape(x.shape, axes)))
    return (hit / hit.sum(axis=axes, keepdims=True)).astype(x.dtype)


def _extremum(name: str, kernel: str) -> Primitive:
    prim = Primitive(
        name, lambda xp, x, *, axis, keepdims: getattr(xp, kernel)(x, axis=axis, keepdims=keepdims)
    )
    prim.defvjp(
        lambda g, ans, x, *, axis, keepdims: spread(g, x, axis, keepdims)
        * _extremum_share(x, ans, axis, keepdims)
    )
    prim.defjvp(
        lambda t, ans, x, *, axis, keepdims: _sum(
            t * _extremum_share(x, ans, axis, keepdims), axis=axis, keepdims=keepdims
        )
    )
    return prim


_max = _extremum("max", "max")
_min = _extremum("min", "min")


def max(a: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """`numpy.max`; ties share the gradient equally."""
    return _max(a, axis=axes_of(axis, _ndim(a)), keepdims=keepdims)


def min(a: Any, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A001
    """`numpy.min`; ties share the gradient equally."""
    return _min(a, axis=axes_of(axis, _ndim(a)), keepdims=keepdims)


amax, amin = max, min


def _ndim(a: Any) -> int:
    shape = getattr(a, "shape", None)
    return 0 if shape is None else len(shape)


__all__ = ["sum", "mean", "max", "min", "amax", "amin"]
