"""The primitives the reverse sweep applies on edges: undoing broadcasting and dtype changes.

Owns: `broadcast_to`, `sum_to_shape` (its transpose) and `astype`. A VJP rule may return a
cotangent of the broadcast output's shape or dtype; the sweep brings it back to its input's
shape with `sum_to_shape` and dtype with `astype`, once, centrally, so no rule repeats it
(a real input's cotangent is the real part of a complex one: JAX's convention).
Layer L2: imports core.primitive.
"""

from __future__ import annotations

from typing import Any

import numpy

from .primitive import NUMPY_SCALAR_TYPES, Primitive


def _sum_to_shape(xp: Any, x: Any, *, shape: tuple[int, ...]) -> Any:
    xshape = x.shape
    if xshape == shape:
        return x
    axes = _summed.get((xshape, shape))
    if axes is None:
        axes = _summed_axes(xshape, shape)
    out = x.sum(axis=axes)  # the method: NumPy's and CuPy's, less wrapper than xp.sum
    return out if out.shape == shape else out.reshape(shape)


def _summed_axes(xshape: tuple[int, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axes along which an array of shape `xshape` sums down to `shape` (remembered:
    the same few pairs recur in every sweep, one per broadcast operand)."""
    lead = len(xshape) - len(shape)
    if lead < 0:
        raise ValueError(f"cannot sum an array of shape {xshape} down to shape {shape}")
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and xshape[lead + i] != 1
    )
    if len(_summed) < 4096:
        _summed[xshape, shape] = axes
    return axes


_summed: dict[tuple[tuple[int, ...], tuple[int, ...]], tuple[int, ...]] = {}


def _broadcast_to(xp: Any, x: Any, *, shape: tuple[int, ...]) -> Any:
    if not shape and isinstance(x, numpy.generic):  # a scalar stays a scalar (NumPy's would
        return x  # be a 0-d array, which CuPy refuses beside its arrays: a reduction's VJP)
    t = type(x)
    if (t is numpy.ndarray or t in NUMPY_SCALAR_TYPES) and not x.ndim and x.dtype.kind in "biufc":
        # A reduction's cotangent, a 0-d value: every stride 0. (NumPy's broadcast_to builds
        # an nditer, 3x the time of making the same read-only view here.)
        x = numpy.asarray(x)
        out = numpy.ndarray(shape, x.dtype, x, 0, (0,) * len(shape))
        out.flags.writeable = False
        return out
    return xp.broadcast_to(x, shape)


def _astype(xp: Any, x: Any, *, dtype: Any) -> Any:
    """A cast; complex to real keeps the real part (NumPy would warn): the transpose of
    the embedding of reals in complex numbers, which is how a real input's cotangent is
    brought back from a complex one. A NumPy scalar stays a scalar, as its own astype."""
    scalar = isinstance(x, numpy.generic)
    x = xp.asarray(x)
    if x.dtype.kind == "c" and xp.dtype(dtype).kind != "c":
        x = x.real
    x = x.astype(dtype, copy=False)
    return x[()] if scalar else x


sum_to_shape = Primitive("sum_to_shape", _sum_to_shape)
broadcast_to = Primitive("broadcast_to", _broadcast_to)
astype = Primitive("astype", _astype)

sum_to_shape.defvjp(lambda g, ans, x, *, shape: broadcast_to(g, shape=x.shape))
sum_to_shape.defjvp(lambda t, ans, x, *, shape: sum_to_shape(t, shape=shape))
# The sweep sums the broadcast cotangent back to the input's shape on the edge.
broadcast_to.defvjp(lambda g, ans, x, *, shape: g)
broadcast_to.defjvp(lambda t, ans, x, *, shape: broadcast_to(t, shape=shape))
astype.defvjp(lambda g, ans, x, *, dtype: astype(g, dtype=x.dtype))
astype.defjvp(lambda t, ans, x, *, dtype: astype(t, dtype=dtype))
