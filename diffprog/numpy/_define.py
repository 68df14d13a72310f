"""Shortcuts that declare a primitive and both its rules from one derivative.

Owns: `unary(name, impl, d)` and `binary(name, impl, dx, dy)` for elementwise ops, where the
derivative `d(x, ans)` (or `dx(x, y, ans)`) is written in diffprog ops; the VJP is `g * d` and
the JVP `t * d`. Also `axes_of`, the one place reduction axes are normalised (sorted), and
`axis_tuple` (in the order given; NumPy's AxisError when out of bounds).
Layer L4: imports L2.
"""

from __future__ import annotations

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


def axes_of(axis: Any, ndim: int) -> tuple[int, ...]:
    """`axis` (None, an int or a sequence, negatives allowed) as sorted non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < ndim:
            raise ValueError(f"axis {a} is out of bounds for an array of dimension {ndim}")
        out.append(a % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"repeated axis in {axis!r}")
    return tuple(sorted(out))


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
