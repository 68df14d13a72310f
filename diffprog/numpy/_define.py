"""Shortcuts that declare a primitive and both its rules from one derivative.

Owns: `unary(name, impl, d)` and `binary(name, impl, dx, dy)` for elementwise ops, where the
derivative `d(x, ans)` (or `dx(x, y, ans)`) is written in diffprog ops; the VJP is `g * d` and
the JVP `t * d`. Also `axes_of`, the one place reduction axes are normalised (sorted), with
NumPy's rules for an axis of a 0-d array, `one_axis` (one int axis: cumsum, sort,
concatenate, repeat; NumPy's TypeError for True), `index_axis` (one axis as NumPy's
normalize_axis_index takes it: stack, unstack, roll; True is 1), and `axis_tuple` (in the
order given; NumPy's AxisError when out of bounds).
Layer L4: imports L2.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.exceptions import AxisError

from ..core.primitive import NonDifferentiable, Primitive


def unary(name: str, impl: Callable[..., Any], d: Callable[[Any, Any], Any]) -> Primitive:
    """An elementwise primitive f with f'(x) = d(x, f(x))."""
    prim = Primitive(name, impl)
    prim.defvjp(lambda g, ans, x: g * d(x, ans))
    prim.defjvp(lambda t, ans, x: t * d(x, ans))
    return prim


def binary(
    name: str,
    impl: Callable[..., Any],
    dx: Callable[[Any, Any, Any], Any],
    dy: Callable[[Any, Any, Any], Any],
) -> Primitive:
    """A broadcasting elementwise primitive with partials dx(x, y, ans), dy(x, y, ans)."""
    prim = Primitive(name, impl)
    prim.defvjp(lambda g, ans, x, y: g * dx(x, y, ans), lambda g, ans, x, y: g * dy(x, y, ans))
    prim.defjvp(lambda t, ans, x, y: t * dx(x, y, ans), lambda t, ans, x, y: t * dy(x, y, ans))
    return prim


def nondifferentiable(name: str, impl: Callable[..., Any]) -> NonDifferentiable:
    """A primitive whose result is a constant (comparisons, sign, argmax, ...)."""
    return NonDifferentiable(name, impl)


def axes_of(axis: Any, ndim: int, zero_d: str = "strict", sequence: bool = False
            ) -> tuple[int, ...]:
    """`axis` (None, an int or a sequence, negatives allowed) as sorted non-negative ints;
    NumPy's AxisError (a ValueError) when one is out of bounds, a ValueError when repeated.

    `zero_d` is NumPy's rule for an int axis 0 or -1 given with a 0-d array (`ndim` 0):
    "strict" refuses it (as numpy.mean, var, std, median, sort, flip do); "nothing" takes it
    as no axis at all (ufunc reductions: numpy.sum, prod, max, min, any, all, nansum,
    nanmean, count_nonzero keep this "for backwards compatibility", so
    `np.sum(np.array(1.0), axis=0)` is 1.0, and so do diffprog's logsumexp, softmax and
    log_softmax, which SciPy's take axis 0 for; a tuple axis is still refused); "one"
    checks the axis as for a 1-d array, since the caller takes the 0-d array as shape (1,)
    (numpy.cumsum, cumprod, argsort, argmax do: `np.cumsum(np.array(1.0), axis=0)` is [1.]).

    Several axes come as a tuple, as NumPy's ufunc reductions take them (a list is their
    TypeError); with `sequence` any sequence of ints is taken, as NumPy's normalize_axis_tuple
    does (numpy.flip, median, average, quantile)."""
    if type(axis) is int and -ndim <= axis < ndim:  # the common case, first (not 0-d)
        return (axis % ndim,)
    if ndim == 0 and zero_d == "one":
        ndim = 1
    if axis is None:
        return tuple(range(ndim))
    integer = _is_int(axis)
    if ndim == 0 and zero_d == "nothing" and integer and axis in (0, -1):
        return ()
    if not (integer or isinstance(axis, tuple) or sequence and hasattr(axis, "__iter__")):
        raise TypeError(f"'{type(axis).__name__}' object cannot be interpreted as an integer "
                        "(axis must be an int or a tuple of ints)")
    axes = (axis,) if integer else tuple(axis)
    out = []
    for a in axes:
        if not _is_int(a):  # NumPy's TypeError (True would pass for 1)
            raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
        if not -ndim <= a < ndim:
            raise AxisError(f"axis {a} is out of bounds for an array of dimension {ndim}")
        out.append(operator.index(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis!r}")
    return tuple(sorted(out))


def _is_int(axis: Any) -> bool:
    """Whether `axis` is one integer axis: an int, a NumPy integer or a 0-d integer array
    (NumPy takes anything with __index__), not a boolean."""
    if isinstance(axis, (int, np.integer)):
        return not isinstance(axis, (bool, np.bool_))
    return getattr(axis, "ndim", None) == 0 and getattr(axis, "dtype", np.dtype(bool)).kind in "iu"


def one_axis(name: str, axis: Any, ndim: int, zero_d: str = "strict") -> int:
    """An int `axis` of function `name` as a non-negative int (`axes_of`); NumPy's TypeError
    for a tuple or another type (numpy.cumsum, argsort and sort take one axis only)."""
    if not _is_int(axis):
        raise TypeError(f"{name}: axis must be an int or None, got {axis!r}")
    return axes_of(axis, ndim, zero_d)[0]


def index_axis(axis: Any, ndim: int) -> int:
    """One `axis` as a non-negative int, as NumPy's normalize_axis_index takes it (stack,
    unstack, roll, ...): anything with __index__ (True too), NumPy's TypeError for a tuple
    or a float, AxisError when out of bounds."""
    try:
        return axis_tuple(operator.index(axis), ndim)[0]
    except TypeError:
        raise TypeError(f"axis must be an int (one axis), got {axis!r}") from None


def kept_shape(shape: tuple[int, ...], axes: tuple[int, ...]) -> tuple[int, ...]:
    """`shape` after a reduction over `axes` with keepdims=True."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def axis_tuple(axis: Any, ndim: int) -> tuple[int, ...]:
    """`axis` (an int or a sequence) as non-negative ints in the order given."""
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise AxisError(int(a), ndim)
        out.append(int(a) % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis!r}")
    return tuple(out)
