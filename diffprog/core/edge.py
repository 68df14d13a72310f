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

from .primitive import Primitive


def _sum_to_shape(xp: Any, x: Any, *, shape: tuple[int, ...]) -> Any:
    xshape = x.shape
    if xshape == shape:
        return x
    lead = len(xshape) - len(shape)
    if lead < 0:
        raise ValueError(f"cannot sum an array of shape {xshape} down to shape {shape}")
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and xshape[lead + i] != 1
    )
    out = x.sum(axis=axes)  # the method: NumPy's and CuPy's, less wrapper than xp.sum
    return out if out.shape == shape else out.reshape(shape)


def _broadcast_to(xp: Any, x: Any, *, shape: tuple[int, ...]) -> Any:
    if not shape and isinstance(x, numpy.generic):  # a scalar stays a scalar (NumPy's would
        return x  # be a 0-d array, which CuPy refuses beside its arrays: a reduction's VJP)
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
