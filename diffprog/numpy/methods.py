"""Arithmetic and methods on tracers: `x + y`, `x[i]`, `x[i] = v`, `x += y`, `x.sum()`, `x.T`.

Owns: the table of tracer methods, installed into core's Tracer by `install` together with
NumPy's protocols from `dispatch`. The methods that make views (`x[i]`, `.T`, `.reshape`,
`.real`, `.imag`...) are view_functions.py's, so they behave like NumPy's views; in-place
operators, `.sort()` and `x.real = v` / `x.imag = v` write through `views.replace` /
`setitem`, so views of the same data see the change.
Layer L4: imports L0, L2 and the other L4 modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..ad.batching import BatchTracer
from ..ad.reverse import NO_PARAMS
from ..ad.staging import StagingTracer, operator_methods
from ..core.edge import astype as _astype
from ..core.primitive import Primitive
from ..core.trace import Tracer, as_scalar, install_operators, raw, unwrapped
from ..errors import TracerConversionError
from . import dispatch, view_functions
from . import manipulation as _manipulation
from .assignment import setitem
from .complex_parts import iscomplexobj
from .elementwise import bitwise_and, bitwise_or, bitwise_xor, invert, left_shift, right_shift
from .elementwise import round as _round
from .inplace import read
from .sorting import sort
from .view_functions import swapaxes
from .views import rebind, replace

_CONTIGUOUS = np.ones(1).flags  # what a Python float's missing flags are taken as


def _astype_method(self: Tracer, dtype: Any, copy: bool = True) -> Any:
    dtype = np.dtype(dtype)  # complex to real keeps the real part (and its derivative)
    if dtype.kind not in "fc":  # an integer / bool view of a traced value is a constant
        value = raw(self)  # (under dp.jit a staged value, whose cast is recorded)
        return _astype(value, dtype=dtype) if isinstance(value, Tracer) else value.astype(dtype)
    return self if dtype == self.dtype else _astype(self, dtype=dtype)


def _round_builtin(self: Tracer, ndigits: int | None = None) -> Any:
    """round(x) is an int, like int(x), for a single value; round(x, n) is dnp.round(x, n).

    Both are piecewise constant in x, so their zero derivative is right almost everywhere
    and nothing is lost (see Tracer's conversions). round(x) follows Python's protocol (an
    int, as NumPy's float64 gives, so `range(round(n))` works); round(x, n) keeps NumPy's
    types and shapes.
    """
    if ndigits is not None:
        return _round(self, decimals=ndigits)
    if self.size != 1:
        raise TracerConversionError(
            f"round(x) of a traced array of shape {self.shape} (NumPy arrays refuse it too); "
            "use dnp.round(x) or x.round() for the rounded array"
        )
    return round(as_scalar(raw(self)).item())


_SAME_AS_FUNCTION = (
    "argmax", "argmin", "argsort", "clip", "cumprod", "cumsum", "diagonal", "dot",
    "max", "mean", "min", "prod", "ravel", "repeat", "round", "squeeze", "std", "sum",
    "swapaxes", "take", "trace", "var",
)  # fmt: skip


def _matrix_transpose(self: Tracer) -> Any:
    if len(self.shape) < 2:
        raise ValueError(f"x.mT needs at least 2 dimensions, got shape {self.shape}")
    return swapaxes(self, -1, -2)


def _in_place(fn: Callable[[Any, Any], Any]) -> Callable[[Tracer, Any], Any]:
    """`x op= y` updates x in place, as on NumPy arrays: every alias of x sees the result,
    which keeps x's shape and dtype. The tape needs no copy: the tracer object is rebound
    to the recorded result (and, where x is a view or has views, the data they share is
    written: views.replace)."""

    def method(self: Tracer, other: Any) -> Any:
        new = fn(self, other)
        if type(self.value) is float or type(new) is not type(self):
            return new  # a Python float is immutable; a result traced elsewhere rebinds the name
        if new.shape != self.shape:
            raise ValueError(
                f"in-place operation: the result's shape {new.shape} does not fit x's shape "
                f"{self.shape} (NumPy refuses this too); write x = x op y instead"
            )
        if new.dtype != self.dtype:
            if not np.can_cast(new.dtype, self.dtype, "same_kind"):  # NumPy's refusal
                name = getattr(fn, "name", None) or getattr(fn, "__name__", "the operation")
                raise TypeError(
                    f"Cannot cast ufunc {name!r} output from {np.dtype(new.dtype)!r} to "
                    f"{np.dtype(self.dtype)!r} with casting rule 'same_kind' (x op= y keeps "
                    "x's dtype; the imaginary part would be lost): write x = x op y instead")
            new = _astype(new, dtype=self.dtype)
        replace(self, new)
        return self

    return method


def _copy(self: Tracer, order: str = "C") -> Tracer:
    """x.copy(): a new tracer object for the same value (later in-place updates of either
    one do not reach the other: inplace.py copies an array held twice before writing it).
    A non-contiguous array is copied at once (a recorded copy), into NumPy's C layout, so
    that reshapes of the copy are views exactly where NumPy's are."""
    if order == "C" and not getattr(unwrapped(self), "flags", _CONTIGUOUS).c_contiguous:
        return read(self, (("copy", None),))
    new = object.__new__(type(self))
    rebind(new, self)
    return new


def _flatten(self: Tracer, order: str = "C") -> Tracer:
    """x.flatten(): always a copy in NumPy, so never a view (writes to either stay apart)."""
    out = _manipulation.ravel(self, order)
    return _copy(out) if out is self else out


def _set_real(self: Tracer, value: Any) -> None:
    """`x.real = v`: v written into the real part (all of x for a real x), as NumPy's."""
    _check_writable_part(self, "real")
    setitem(view_functions.real(self), Ellipsis, value)


def _set_imag(self: Tracer, value: Any) -> None:
    """`x.imag = v`: v written into the imaginary part of a complex x, as NumPy's."""
    _check_writable_part(self, "imag")
    if not iscomplexobj(self):
        raise TypeError("array does not have imaginary part to set (x.imag = v needs a "
                        f"complex x; x has dtype {np.dtype(self.dtype)}: cast it first)")  # fmt: skip
    setitem(view_functions.imag(self), Ellipsis, value)


def _check_writable_part(self: Tracer, part: str) -> None:
    if isinstance(unwrapped(self), (float, complex, np.generic)):  # NumPy's scalars: immutable
        raise AttributeError(f"attribute {part!r} of a scalar is not writable (as of NumPy's "
                             "scalars and Python numbers); build the new value instead")  # fmt: skip


def _sort_in_place(self: Tracer, axis: int = -1, kind: Any = None, order: Any = None) -> None:
    """ndarray.sort sorts in place: the tracer is rebound to its sorted copy."""
    setitem(self, Ellipsis, sort(self, axis=axis, kind=kind, order=order))


def install(dnp: Any) -> None:
    """Install the tracer methods, built on the functions of the module `dnp`."""
    # Primitives are not descriptors: wrap them so that `self` is passed.
    def op(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        if type(fn) is not Primitive:
            return lambda self, other: fn(self, other)

        def method(self: Tracer, other: Any) -> Any:  # bind, knowing self is a tracer
            trace = self._trace
            if isinstance(other, Tracer) and other._trace.level > trace.level:
                trace = other._trace
            return trace.process(fn, (self, other), NO_PARAMS)

        return method

    def flip(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
        return lambda self, other: fn(other, self)

    def unary(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        if type(fn) is Primitive:  # bind, knowing self is the only operand
            return lambda self: self._trace.process(fn, (self,), NO_PARAMS)
        return lambda self: fn(self)

    table: dict[str, Any] = {
        "__add__": op(dnp.add), "__radd__": flip(dnp.add),
        "__sub__": op(dnp.subtract), "__rsub__": flip(dnp.subtract),
        "__mul__": op(dnp.multiply), "__rmul__": flip(dnp.multiply),
        "__truediv__": op(dnp.divide), "__rtruediv__": flip(dnp.divide),
        "__pow__": op(dnp.power), "__rpow__": flip(dnp.power),
        "__matmul__": op(dnp.matmul), "__rmatmul__": flip(dnp.matmul),
        "__mod__": op(dnp.remainder), "__rmod__": flip(dnp.remainder),
        "__floordiv__": op(dnp.floor_divide), "__rfloordiv__": flip(dnp.floor_divide),
        "__divmod__": lambda self, o: (dnp.floor_divide(self, o), dnp.remainder(self, o)),
        "__rdivmod__": lambda self, o: (dnp.floor_divide(o, self), dnp.remainder(o, self)),
        **{f"__i{name}__": _in_place(fn) for name, fn in (
            ("add", dnp.add), ("sub", dnp.subtract), ("mul", dnp.multiply),
            ("truediv", dnp.divide), ("pow", dnp.power), ("matmul", dnp.matmul),
            ("mod", dnp.remainder), ("floordiv", dnp.floor_divide))},
        "copy": _copy,
        "__neg__": unary(dnp.negative), "__pos__": lambda self: self, "__abs__": unary(dnp.abs),
        # Comparisons are constants: compare the values directly (the hot test of `if x > 0`).
        "__lt__": lambda s, o: raw(s) < raw(o), "__le__": lambda s, o: raw(s) <= raw(o),
        "__gt__": lambda s, o: raw(s) > raw(o), "__ge__": lambda s, o: raw(s) >= raw(o),
        "__eq__": lambda s, o: raw(s) == raw(o), "__ne__": lambda s, o: raw(s) != raw(o),
        "__getitem__": dnp.getitem, "__setitem__": dnp.setitem,
        "T": property(lambda self: dnp.transpose(self)),
        "mT": property(_matrix_transpose),
        "reshape": lambda self, *shape, order="C": dnp.reshape(
            self, shape[0] if len(shape) == 1 else shape, order=order
        ),
        "transpose": lambda self, *axes: dnp.transpose(
            self, (axes[0] if len(axes) == 1 and not isinstance(axes[0], int) else axes) or None
        ),
        "flatten": _flatten,
        "nonzero": unary(dnp.nonzero),
        "__round__": _round_builtin,
        "sort": _sort_in_place,
        "astype": _astype_method,
        "real": property(lambda self: dnp.real(self), _set_real),
        "imag": property(lambda self: dnp.imag(self), _set_imag),
        "conj": unary(dnp.conjugate), "conjugate": unary(dnp.conjugate),
        # ndarray methods that are the function of the same name with the array first
        **{name: getattr(dnp, name) for name in _SAME_AS_FUNCTION},
        **dispatch.install(dnp),
    }  # fmt: skip
    install_operators(table)
    # A value dp.jit stages is the array itself to the traces above it: Python's operators on
    # it are recorded as those operators (comparisons and bitwise ones included), and NumPy's
    # reductions of booleans as NumPy's.
    install_operators({**operator_methods(table), "any": lambda s, *a, **k: np.any(s, *a, **k),
                       "all": lambda s, *a, **k: np.all(s, *a, **k)}, StagingTracer)
    # A value dp.vmap batches is one example to the traces above it: its comparisons and
    # masks are batched values too, so they go through the primitives.
    install_operators(_batched_operators(dnp), BatchTracer)


def _batched_operators(dnp: Any) -> dict[str, Any]:
    def method(prim: Any) -> Any:  # (a primitive is no function: it would not bind `self`)
        return lambda s, o: prim(s, o)

    def reflected(prim: Any) -> Any:
        return lambda s, o: prim(o, s)

    return {
        **{f"__{name}__": method(prim) for name, prim in (
            ("lt", dnp.less), ("le", dnp.less_equal), ("gt", dnp.greater),
            ("ge", dnp.greater_equal), ("eq", dnp.equal), ("ne", dnp.not_equal),
            ("and", bitwise_and), ("or", bitwise_or), ("xor", bitwise_xor),
            ("lshift", left_shift), ("rshift", right_shift))},
        **{f"__r{name}__": reflected(prim) for name, prim in (
            ("and", bitwise_and), ("or", bitwise_or), ("xor", bitwise_xor),
            ("lshift", left_shift), ("rshift", right_shift))},
        "__invert__": lambda s: invert(s),
        "any": lambda s, axis=None, keepdims=False: dnp.any(s, axis, keepdims=keepdims),
        "all": lambda s, axis=None, keepdims=False: dnp.all(s, axis, keepdims=keepdims),
    }  # fmt: skip
