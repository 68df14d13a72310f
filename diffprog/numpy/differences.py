"""Finite differences under NumPy's names: diff and gradient.

Owns: `diff` (n-th differences along an axis, with prepend/append) and `gradient` (second
order central differences inside, first or second order one-sided ones at the edges, for
unit, scalar or coordinate spacing per axis). Both are compositions of slices and
arithmetic in diffprog ops, so they are differentiable in the array and in traced spacing
(scalars or coordinates), to any order; the formulas and result dtypes are NumPy's.
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ..core.trace import Tracer, raw
from ._define import axis_tuple
from .elementwise import not_equal
from .joins import as_array, as_array_beside, concatenate
from .manipulation import broadcast_to, getitem, reshape

_NO_VALUE = object()  # NumPy's `np._NoValue` for prepend/append: "not given"


def _along(x: Any, axis: int, index: Any) -> Any:
    """x[..., index, ...] with `index` (an int or a slice) along `axis`."""
    return getitem(x, (slice(None),) * axis + (index,))


def diff(a: Any, n: int = 1, axis: int = -1, prepend: Any = _NO_VALUE,
         append: Any = _NO_VALUE) -> Any:  # fmt: skip
    """`numpy.diff`: the n-th discrete difference along `axis`, after joining `prepend` and
    `append` (scalars are broadcast to one slice) to the ends of `a`.

    >>> import numpy as np
    >>> from diffprog.numpy.differences import diff
    >>> diff(np.array([1.0, 4.0, 9.0, 16.0]), n=2, prepend=0.0)
    array([2., 2., 2.])
    """
    n = operator.index(n)
    if n < 0:
        raise ValueError(f"order must be non-negative but got {n!r}")
    a = as_array(a)
    if n == 0:
        return a
    nd = len(a.shape)
    if nd == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    (axis,) = axis_tuple(axis, nd)
    parts = []
    for end in (prepend, a, append):
        if end is a:
            parts.append(a)
        elif end is not _NO_VALUE:
            end = as_array_beside(end, a)
            if len(end.shape) == 0:
                end = broadcast_to(end, a.shape[:axis] + (1,) + a.shape[axis + 1 :])
            parts.append(end)
    if len(parts) > 1:
        a = concatenate(parts, axis)
    boolean = raw(a).dtype == np.bool_
    for _ in range(n):
        later, earlier = _along(a, axis, slice(1, None)), _along(a, axis, slice(None, -1))
        a = not_equal(later, earlier) if boolean else later - earlier
    return a


# --- gradient ------------------------------------------------------------------------------
def _spacings(f: Any, varargs: tuple, axes: tuple[int, ...]) -> list[Any]:
    """Per axis: a scalar step (uniform) or the 1-D steps between coordinates."""
    if not varargs:
        return [1.0] * len(axes)
    if len(varargs) == 1 and len(as_array(varargs[0]).shape) == 0:
        return list(varargs) * len(axes)
    if len(varargs) != len(axes):
        raise TypeError("invalid number of arguments")
    out = []
    for axis, distances in zip(axes, varargs):
        d = as_array(distances)
        if len(d.shape) == 0:
            out.append(d if isinstance(d, Tracer) else distances)
            continue
        if len(d.shape) != 1:
            raise ValueError("distances must be either scalars or 1d")
        if d.shape[0] != f.shape[axis]:
            raise ValueError("when 1d, distances must match the length of the corresponding "
                             "dimension")  # fmt: skip
        if raw(d).dtype.kind in "iub":
            d = raw(d).astype(np.float64)
        steps = diff(d)
        r = raw(steps)
        if not isinstance(steps, Tracer) and r.size and bool((r == r[0]).all()):
            steps = r[0]  # evenly spaced constant coordinates: NumPy's scalar case
        out.append(steps)
    return out


def _one_axis(f: Any, axis: int, h: Any, edge_order: int) -> Any:
    nd = len(f.shape)
    uniform = len(getattr(h, "shape", ())) == 0

    def at(index: Any) -> Any:
        return _along(f, axis, index)

    def col(v: Any) -> Any:  # 1-D coefficients along `axis`, broadcasting over the others
        return reshape(v, tuple(-1 if i == axis else 1 for i in range(nd)))

    if uniform:
        inner = (at(slice(2, None)) - at(slice(None, -2))) / (2.0 * h)
    else:
        dx1, dx2 = getitem(h, slice(0, -1)), getitem(h, slice(1, None))
        a = -dx2 / (dx1 * (dx1 + dx2))
        b = (dx2 - dx1) / (dx1 * dx2)
        c = dx1 / (dx2 * (dx1 + dx2))
        inner = (col(a) * at(slice(None, -2)) + col(b) * at(slice(1, -1))
                 + col(c) * at(slice(2, None)))  # fmt: skip
    first, last = slice(0, 1), slice(-1, None)
    if edge_order == 1:
        h0, hn = (h, h) if uniform else (getitem(h, 0), getitem(h, -1))
        start = (at(slice(1, 2)) - at(first)) / h0
        end = (at(last) - at(slice(-2, -1))) / hn
    else:
        if uniform:
            a, b, c = -1.5 / h, 2.0 / h, -0.5 / h
        else:
            dx1, dx2 = getitem(h, 0), getitem(h, 1)
            a = -(2.0 * dx1 + dx2) / (dx1 * (dx1 + dx2))
            b = (dx1 + dx2) / (dx1 * dx2)
            c = -dx1 / (dx2 * (dx1 + dx2))
        start = a * at(first) + b * at(slice(1, 2)) + c * at(slice(2, 3))
        if uniform:
            a, b, c = 0.5 / h, -2.0 / h, 1.5 / h
        else:
            dx1, dx2 = getitem(h, -2), getitem(h, -1)
            a = dx2 / (dx1 * (dx1 + dx2))
            b = -(dx2 + dx1) / (dx1 * dx2)
            c = (2.0 * dx2 + dx1) / (dx2 * (dx1 + dx2))
        end = a * at(slice(-3, -2)) + b * at(slice(-2, -1)) + c * at(last)
    return concatenate([start, inner, end], axis)


def gradient(f: Any, *varargs: Any, axis: Any = None, edge_order: int = 1) -> Any:
    """`numpy.gradient`: second order central differences inside, one-sided differences of
    order `edge_order` (1 or 2) at the boundaries. Spacing: none (1), one scalar for all
    axes, or per axis a scalar or the coordinates; differentiable in f and traced spacing.
    One array for one axis, else a tuple with one array per axis.

    >>> import numpy as np
    >>> from diffprog.numpy.differences import gradient
    >>> gradient(np.array([1.0, 2.0, 4.0, 7.0, 11.0]), 2.0)
    array([0.5 , 0.75, 1.25, 1.75, 2.  ])
    """
    f = as_array(f)
    nd = len(f.shape)
    axes = tuple(range(nd)) if axis is None else axis_tuple(axis, nd)
    spacing = _spacings(f, varargs, axes)
    if edge_order not in (1, 2):
        raise ValueError("'edge_order' greater than 2 not supported")
    otype = raw(f).dtype
    if otype == bool:  # NumPy's: booleans have no subtraction
        raise TypeError("gradient: numpy boolean subtract is not supported (convert the array "
                        "to a number dtype first)")
    if otype.kind not in "fc":
        f, otype = raw(f).astype(np.float64), np.dtype(np.float64)
    out = []
    for ax, h in zip(axes, spacing):
        if f.shape[ax] < edge_order + 1:
            raise ValueError("Shape of array too small to calculate a numerical gradient, at "
                             "least (edge_order + 1) elements are required.")  # fmt: skip
        g = _one_axis(f, ax, h, edge_order)
        out.append(g if g.dtype == otype else g.astype(otype))
    return out[0] if len(axes) == 1 else tuple(out)


__all__ = ["diff", "gradient"]
