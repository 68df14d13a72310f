"""Reductions under NumPy's names: sum, mean, max, min, logsumexp.

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
from .elementwise import exp, where
from .manipulation import reshape


def _spread(g: Any, x: Any, axes: tuple[int, ...], keepdims: bool) -> Any:
    """A reduction's cotangent `g` broadcast back over the reduced axes of `x`."""
    if not keepdims:
        g = reshape(g, kept_shape(x.shape, axes))
    return broadcast_to(g, shape=x.shape)


_sum = Primitive("sum", lambda xp, x, *, axis, keepdims: xp.sum(x, axis=axis, keepdims=keepdims))
_sum.defvjp(lambda g, ans, x, *, axis, keepdims: _spread(g, x, axis, keepdims))
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
        lambda g, ans, x, *, axis, keepdims: _spread(g, x, axis, keepdims)
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


def _logsumexp_impl(xp: Any, x: Any, *, axis: tuple[int, ...], keepdims: bool) -> Any:
    m = xp.max(x, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0)  # all -inf (or an inf) along the axis: no shift
    out = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else xp.reshape(out, tuple(n for i, n in enumerate(out.shape) if i not in axis))


def _softmax_of(x: Any, ans: Any, axes: tuple[int, ...], keepdims: bool) -> Any:
    return exp(x - (ans if keepdims else reshape(ans, kept_shape(x.shape, axes))))


_logsumexp = Primitive("logsumexp", _logsumexp_impl)
_logsumexp.defvjp(
    lambda g, ans, x, *, axis, keepdims: _spread(g, x, axis, keepdims)
    * _softmax_of(x, ans, axis, keepdims)
)
_logsumexp.defjvp(
    lambda t, ans, x, *, axis, keepdims: _sum(
        t * _softmax_of(x, ans, axis, keepdims), axis=axis, keepdims=keepdims
    )
)


def logsumexp(a: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """log(sum(exp(a))) along `axis`, computed without overflow (finite at |a| ~ 1e3).

    >>> import diffprog.numpy as dnp, numpy as np
    >>> float(dnp.logsumexp(np.array([1000.0, 1000.0])))  # doctest: +ELLIPSIS
    1000.693...
    """
    return _logsumexp(a, axis=axes_of(axis, _ndim(a)), keepdims=keepdims)


def _ndim(a: Any) -> int:
    shape = getattr(a, "shape", None)
    return 0 if shape is None else len(shape)


__all__ = ["sum", "mean", "max", "min", "amax", "amin", "logsumexp", "where"]
