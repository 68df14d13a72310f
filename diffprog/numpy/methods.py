"""Arithmetic, methods and NumPy's protocols on tracers: `x + y`, `x[i]`, `x.sum()`,
`np.exp(x)`.

Owns: the table of tracer methods (installed into core's Tracer by `install`), and the
`__array_ufunc__` / `__array_function__` dispatch that sends NumPy's own functions called on
tracers to their diffprog counterparts, refusing the ones diffprog lacks by name.
Layer L4: imports L0, L2 and the other L4 modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..core.edge import astype as _astype
from ..core.trace import Tracer, install_operators, raw
from ..errors import TracerConversionError


def _astype_method(self: Tracer, dtype: Any, copy: bool = True) -> Any:
    dtype = np.dtype(dtype)
    if dtype.kind != "f":  # an integer / bool view of a traced value is a constant
        return raw(self).astype(dtype)
    return self if dtype == self.dtype else _astype(self, dtype=dtype)


def _array_ufunc(
    ufuncs: dict[str, Callable[..., Any]],
) -> Callable[..., Any]:
    def __array_ufunc__(self: Tracer, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        fn = ufuncs.get(ufunc.__name__)
        if method != "__call__" or fn is None or kwargs:
            what = f"numpy.{ufunc.__name__}" + ("" if method == "__call__" else f".{method}")
            why = (f" with keyword arguments {sorted(kwargs)}" if fn and method == "__call__"
                   else "")  # fmt: skip
            raise TracerConversionError(
                f"{what}{why} is not supported on traced arrays: diffprog cannot differentiate "
                f"it. Use the functions in diffprog.numpy (supported ufuncs: "
                f"{', '.join(sorted(ufuncs))})"
            )
        return fn(*inputs)

    return __array_ufunc__


def _array_function(functions: dict[Any, Callable[..., Any]]) -> Callable[..., Any]:
    def __array_function__(self: Tracer, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        fn = functions.get(func)
        if fn is None:
            raise TracerConversionError(
                f"{func.__module__}.{func.__name__} is not supported on traced arrays: diffprog cannot "
                "differentiate it. Use a function from diffprog.numpy instead (see "
                "diffprog.numpy.__all__), or dp.stop_gradient(x) if x is a constant there"
            )
        return fn(*args, **kwargs)

    return __array_function__


def install(dnp: Any) -> None:
    """Install the tracer methods, built on the functions of the module `dnp`."""
    ufuncs = {
        name: getattr(dnp, name)
        for name in dir(dnp)
        if isinstance(getattr(np, name, None), np.ufunc) and callable(getattr(dnp, name))
    }
    functions = {
        getattr(np, name): getattr(dnp, name)
        for name in dnp.__all__
        if callable(getattr(np, name, None)) and not isinstance(getattr(np, name), np.ufunc)
    }

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
        "__array_ufunc__": _array_ufunc(ufuncs),
        "__array_function__": _array_function(functions),
    }  # fmt: skip
    install_operators(table)
