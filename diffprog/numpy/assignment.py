"""Item assignment on traced arrays: `x[index] = v` and `x[index] += v`.

Owns: the `index_update` primitive (a copy of x with x[index] replaced by v; the original is
never written, so every value saved for the backward pass stays intact) and `setitem`, which
rebinds the tracer object itself to the updated value, as Python's mutation syntax asks.
Repeated advanced indices follow NumPy: the last write wins, and only the winning elements
of v receive gradient.
Layer L4: imports L1, L2 and other L4 modules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import device_scope, namespace_of, zeros_like
from ..core.primitive import Primitive
from ..core.trace import Tracer, raw
from .elementwise import where
from .manipulation import _is_basic, getitem, index_tuple


def _update_impl(xp: Any, x: Any, v: Any, *, index: tuple) -> Any:
    out = xp.array(x, copy=True)
    out[index] = v
    return out


def _winners(x: Any, index: tuple) -> Any:
    """A boolean array shaped like x[index]: True where that element is the one NumPy's
    assignment leaves in place (for repeated advanced indices, the last write)."""
    if _is_basic(index):
        return None  # no element can be written twice
    r = raw(x)
    xp = namespace_of((r,))
    with device_scope((r,)):
        selected = r[index].shape
        ids = xp.arange(int(np.prod(selected, dtype=np.int64))).reshape(selected)
        owner = xp.full(r.shape, -1, dtype=ids.dtype)
        owner[index] = ids  # the same index, the same write order as the assignment itself
        return owner[index] == ids


def _grad_v(g: Any, x: Any, index: tuple) -> Any:
    picked = getitem(g, index)
    won = _winners(x, index)
    return picked if won is None else where(won, picked, 0.0)


index_update = Primitive("index_update", _update_impl)
index_update.defvjp(
    lambda g, ans, x, v, *, index: index_update(g, 0.0, index=index),
    lambda g, ans, x, v, *, index: _grad_v(g, x, index),
)
index_update.defjvp(
    lambda t, ans, x, v, *, index: index_update(t, 0.0, index=index),
    lambda t, ans, x, v, *, index: index_update(zeros_like(raw(ans)), t, index=index),
)


def setitem(x: Tracer, index: Any, value: Any) -> None:
    """`x[index] = value` on a tracer: rebinds `x` to a recorded, updated copy."""
    index = index_tuple(index)
    new = index_update(x, value, index=index)
    if type(new) is not type(x):
        raise TypeError(
            f"x[...] = v: v is traced by a different kind of transform than x "
            f"({type(new).__name__} vs {type(x).__name__}); build the new array functionally "
            "instead, e.g. with dnp.where or dnp.concatenate"
        )
    rebind(x, new)


def rebind(x: Tracer, new: Tracer) -> None:
    """Make the tracer object `x` stand for `new` (same trace kind): what in-place updates
    do, so that every alias of `x` sees the new value, as with NumPy arrays."""
    for cls in type(x).__mro__:
        for name in getattr(cls, "__slots__", ()):
            object.__setattr__(x, name, getattr(new, name))
