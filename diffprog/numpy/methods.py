"""Arithmetic and methods on tracers: `x + y`, `x[i]`, `x[i] = v`, `x.sum()`, `x.T`.

Owns: the table of tracer methods, installed into core's Tracer by `install` together with
NumPy's protocols from `dispatch`.
Layer L4: imports L0, L2 and the other L4 modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.edge import astype as _astype
from ..core.trace import Tracer, install_operators, raw
from . import dispatch


def _astype_method(self: Tracer, dtype: Any, copy: bool = True) -> Any:
    dtype = np.dtype(dtype)
    if dtype.kind != "f":  # an integer / bool view of a traced value is a constant
        return raw(self).astype(dtype)
    return self if dtype == self.dtype else _astype(self, dtype=dtype)


def install(dnp: Any) -> None:
    """Install the tracer methods, built on the functions of the module `dnp`."""
    # Primitives are not descriptors: wrap them so that `self` is passed.
    def op(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        return lambda self, other: fn(self, other)

    def flip(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        return lambda self, other: fn(other, self)

    def unary(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        return lambda self: fn(self)

    table: dict[str, Any] = {
        "__add__": op(dnp.add), "__radd__": flip(dnp.add),
        "__sub__": op(dnp.subtract), "__rsub__": flip(dnp.subtract),
        "__mul__": op(dnp.multiply), "__rmul__": flip(dnp.multiply),
        "__truediv__": op(dnp.divide), "__rtruediv__": flip(dnp.divide),
        "__pow__": op(dnp.power), "__rpow__": flip(dnp.power),
        "__matmul__": op(dnp.matmul), "__rmatmul__": flip(dnp.matmul),
        "__neg__": unary(dnp.negative), "__pos__": lambda self: self, "__abs__": unary(dnp.abs),
        "__lt__": op(dnp.less), "__le__": op(dnp.less_equal),
        "__gt__": op(dnp.greater), "__ge__": op(dnp.greater_equal),
        "__eq__": op(dnp.equal), "__ne__": op(dnp.not_equal),
        "__getitem__": op(dnp.getitem), "__setitem__": dnp.setitem,
        "T": property(lambda self: dnp.transpose(self)),
        "mT": property(lambda self: dnp.swapaxes(self, -1, -2)),
        "sum": lambda self, axis=None, keepdims=False: dnp.sum(self, axis, keepdims=keepdims),
        "mean": lambda self, axis=None, keepdims=False: dnp.mean(self, axis, keepdims=keepdims),
        "max": lambda self, axis=None, keepdims=False: dnp.max(self, axis, keepdims=keepdims),
        "min": lambda self, axis=None, keepdims=False: dnp.min(self, axis, keepdims=keepdims),
        "reshape": lambda self, *shape, order="C": dnp.reshape(
            self, shape[0] if len(shape) == 1 else shape, order=order
        ),
        "transpose": lambda self, *axes: dnp.transpose(
            self, (axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes) or None
        ),
        "swapaxes": dnp.swapaxes,
        "squeeze": dnp.squeeze,
        "ravel": lambda self: dnp.reshape(self, (-1,)),
        "flatten": lambda self: dnp.reshape(self, (-1,)),
        "dot": dnp.dot,
        "clip": dnp.clip,
        "astype": _astype_method,
        **dispatch.install(dnp),
    }  # fmt: skip
    install_operators(table)
