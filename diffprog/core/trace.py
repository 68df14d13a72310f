"""Traces and tracers: who is recording, at which nesting depth, and the values they hold.

Owns: `Trace` (a level = nesting depth, a unique id, alive until closed), `open_trace` (the
per-thread nesting counter and stack of open traces), `innermost_trace` / `hidden` (which
trace the user's code runs under: where `dnp.zeros` allocates), `Tracer` (an array-like
stand-in that belongs to one trace; its `_view` slot and weak references are diffprog.numpy's
view bookkeeping, off every hot path) and its conversions to Python values (which may steer
control flow but never silently drop a gradient), `raw` (strip every tracer layer),
`user_line` (where in the user's code an error arose), the operator table through which
layer L4 installs arithmetic on tracers, so that this layer never imports the ops, and the
errors for a traced value stored into a plain NumPy array or hidden from NumPy's dispatch.
Layer L2: imports L0/L1 only.
"""

from __future__ import annotations

import dis
import itertools
import linecache
import math
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np

from ..backend import register_wrapper
from ..errors import EscapedTracerError, TracerConversionError
from .gc_pause import gc_paused

_ids = itertools.count(1)
_depth = threading.local()


class Trace:
    """One recording context. Subclasses decide what `process` records."""

    __slots__ = ("level", "id", "alive", "origin")

    def __init__(self, level: int, origin: str) -> None:
        self.level = level
        self.id = next(_ids)
        self.alive = True
        self.origin = origin

    def process(self, prim: Any, args: tuple, params: dict) -> Any:
        raise NotImplementedError

    def process_joint(self, prim: Any, args: tuple, params: dict) -> Any:
        """`process` for a JointPrimitive. By default the same: a reverse trace records it
        (its sweep calls the joint pullback); forward mode passes all tangents at once."""
        return self.process(prim, args, params)

    def escaped_error(self) -> EscapedTracerError:
        if self.origin == "dp.Tape":  # an imperative block, not a function that returns
            return EscapedTracerError(
                f"a value recorded by a dp.Tape (trace level {self.level}, id {self.id}) was "
                "used after the tape's `with` block closed, where nothing records it. Compute "
                "with it inside the block; an outer tape's gradient() still takes it as its "
                "target, and gradient() itself works after the block."
            )
        return EscapedTracerError(
            f"a traced value of {self.origin} (trace level {self.level}, id {self.id}) was used "
            f"after {self.origin} returned. This happens when a value computed inside the "
            "differentiated function is kept in a global, a closure or an object attribute and "
            "used later. Return it from the function instead (has_aux=True returns extra values)."
        )

    def __repr__(self) -> str:
        state = "alive" if self.alive else "closed"
        return f"<{type(self).__name__} of {self.origin}, level {self.level}, id {self.id}, {state}>"


T = TypeVar("T", bound=Trace)


class open_trace:  # noqa: N801 - used like a function: `with open_trace(cls, origin) as t:`
    """Open a trace one level deeper than the innermost open one; close it on exit.

    A closed trace is dead: any later operation on its tracers raises EscapedTracerError.
    A class, not a generator context manager: every transform enters one per call.
    """

    __slots__ = ("make", "trace", "stack")

    def __init__(self, cls: type[T], origin: str, *args: Any) -> None:
        self.make = (cls, origin, args)

    def __enter__(self) -> Any:
        cls, origin, args = self.make
        level = getattr(_depth, "level", 0) + 1
        trace = self.trace = cls(level, origin, *args)
        _depth.level = level
        self.stack = _open_stack()
        self.stack.append(trace)
        _PAUSE.__enter__()
        return trace

    def __exit__(self, *exc: Any) -> None:
        trace = self.trace
        _PAUSE.__exit__()
        trace.alive = False
        _depth.level = trace.level - 1
        self.stack.remove(trace)  # the last entry, unless contexts were exited out of order


def _open_stack() -> list[Any]:
    """This thread's open traces (and `hidden` marks), innermost last."""
    stack = getattr(_depth, "stack", None)
    if stack is None:
        stack = _depth.stack = []
    return stack


class _Hidden:
    """A mark on the stack: traces of this level and above are not the user's, below it."""

    __slots__ = ("level",)

    def __init__(self, level: int) -> None:
        self.level = level


def innermost_trace() -> Trace | None:
    """The trace the running user code is recorded by: the innermost open one, skipping those
    hidden by `hidden` (None outside every transform)."""
    bound = sys.maxsize
    for entry in reversed(getattr(_depth, "stack", ())):
        if type(entry) is _Hidden:
            bound = min(bound, entry.level)
        elif entry.level < bound and entry.alive:
            return entry
    return None


def visible_traces() -> list[Trace]:
    """Every open trace the running user code is recorded by, outermost first: those
    `innermost_trace` would find if the ones inside them were closed."""
    found, bound = [], sys.maxsize
    for entry in reversed(getattr(_depth, "stack", ())):
        if type(entry) is _Hidden:
            bound = min(bound, entry.level)
        elif entry.level < bound and entry.alive:
            found.append(entry)
    return found[::-1]


@contextmanager
def hidden(trace: Trace) -> Iterator[None]:
    """Run code one level below `trace`: a custom rule's or checkpoint's function on values one
    level down, or a backward sweep while its trace is still open (dp.Tape); allocations made
    there belong to the traces below."""
    stack = _open_stack()
    mark = _Hidden(trace.level)
    stack.append(mark)
    try:
        yield
    finally:
        stack.remove(mark)


def outermost_trace() -> Trace | None:
    """The outermost open trace of this thread, hidden or not (a dp.jit recording's staging
    trace, when one is open: it is always the outermost); None outside every transform."""
    for entry in getattr(_depth, "stack", ()):
        if type(entry) is not _Hidden and entry.alive:
            return entry
    return None


def tracing() -> bool:
    """Whether a transform is recording in this thread (some trace is open)."""
    return getattr(_depth, "level", 0) > 0


_PAUSE = gc_paused()


class Tracer:
    """An array-like value recorded by a trace; `value` is the primal (raw or an outer tracer)
    and `_trace` the Trace that records it (not `trace`, which is ndarray's method).

    Arithmetic, indexing and NumPy's protocols are installed by diffprog.numpy through
    `install_operators`.
    """

    __slots__ = ("value", "_trace", "_view", "__weakref__")
    __array_priority__ = 1000.0
    #: True for the values dp.jit stages and dp.vmap batches: `raw` stops at them (see
    #: ad.staging, ad.batching)
    opaque = False
    #: True for dp.vmap's values (ad.batching): `value` holds every example, batch axis first
    batched = False

    value: Any
    _trace: Trace

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        register_wrapper(cls, raw)

    # A watched Python float stays a Python float (weakly typed in NumPy's promotion rules),
    # so shape and dtype are read through as_scalar.
    @property
    def shape(self) -> tuple[int, ...]:
        value = self.value
        return value.shape if type(value) is np.ndarray else as_scalar(value).shape

    @property
    def dtype(self) -> Any:
        value = self.value
        return value.dtype if type(value) is np.ndarray else as_scalar(value).dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return as_scalar(raw(self)).size

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d (scalar) traced array")
        return self.shape[0]

    def __iter__(self) -> Iterator[Any]:
        for i in range(len(self)):
            yield self[i]  # type: ignore[index]

    # --- conversions to Python values -----------------------------------------------------
    # Concrete values steer Python control flow; the tape records only what ran. A
    # conversion whose result is piecewise constant in x (bool(x), x > 0, int(x),
    # math.floor(x), round(x)) has the zero derivative that is correct almost everywhere, so
    # it is allowed. float(x) is not piecewise constant: math.exp(x), np.float64(x) * x or
    # `return float(loss)` would drop the gradient without a word, so, as in JAX, it raises
    # while x's trace records, naming the user's line. Printing and formatting still work.
    def __bool__(self) -> bool:
        value = raw(self)
        if getattr(value, "size", 1) != 1:
            raise ValueError(
                f"the truth value of a traced array with {value.size} elements is ambiguous; "
                "reduce it first: x.any(), x.all(), or compare a scalar such as x.sum() > 0"
            )
        return bool(value)

    def __float__(self) -> float:
        """float(x), and what calls it: math.exp(x), np.float64(x), complex(x)...: refused
        while x's trace records (its gradient would be lost), except for `"%f" % x`."""
        _refuse_silent_store(self)
        if recording_trace(self) is not None and not _percent_formatting():
            refuse_conversion(self, "float(x) (or math.*, np.float64(x), complex(x))")
        return float(raw(self))

    def item(self, *args: Any) -> Any:
        """x.item(): refused like float(x) while x's trace records."""
        refuse_conversion(self, "x.item()")
        return raw(self).item(*args)

    def __int__(self) -> int:
        """int(x) works: it truncates, a piecewise-constant function whose derivative, zero,
        is right almost everywhere (and `range(int(n))` is how loops get their bounds)."""
        _refuse_silent_store(self, integer=True)
        return int(raw(self))

    # math.floor / ceil / trunc: piecewise constant like int(x), so allowed like it.
    def __floor__(self) -> int:
        return math.floor(as_scalar(raw(self)).item())

    def __ceil__(self) -> int:
        return math.ceil(as_scalar(raw(self)).item())

    def __trunc__(self) -> int:
        return math.trunc(as_scalar(raw(self)).item())

    def __format__(self, spec: str) -> str:
        return format(raw(self), spec)

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        instruction = calling_instruction()
        if instruction == "BINARY_SUBSCR":
            raise TracerConversionError(
                f"a traced array (shape {self.shape}, dtype {self.dtype}) was used as an index "
                "into a plain NumPy array; indices must be integer or boolean constants, and a "
                "traced float array cannot index. Use dnp.take / integer indices, or index a "
                f"traced array (at {user_line()})"
            )
        if instruction == "STORE_SUBSCR":
            raise _store_error(self, dtype is not None and np.dtype(dtype).kind in "biu")
        frame = numpy_frame()
        if frame is not None:  # NumPy's own code was given the tracer: say which function
            if frame.f_code.co_name in ("full", "full_like"):
                raise full_error(frame.f_code.co_name)
            what = f"a traced array (shape {self.shape}, dtype {self.dtype})"
            raise TracerConversionError(_hidden_tracer_message(what, frame))
        raise TracerConversionError(
            f"cannot convert a traced array (shape {self.shape}, dtype {self.dtype}) to a NumPy "
            "array or scalar (np.asarray(x), np.float64(x), np.float32(x), ...): the value "
            f"would leave the tape and its gradient would be silently lost, at {user_line()}. "
            + _CONVERSION_HINT + ". A list of traced values becomes one array with dnp.array([...]). "
            + _STORE_HINT
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({raw(self)!r}, trace={self._trace!r})"

    __hash__ = None  # type: ignore[assignment]  # like NumPy arrays: mutable-looking, unhashable


_CONVERSION_HINT = (
    "Use diffprog.numpy functions on traced values (dnp.exp(x), dnp.sqrt(x), dnp.log(x), ... "
    "instead of math.exp, math.sqrt, np.float64(x)) and return the traced value itself (not "
    "float(loss) or loss.item()); write float(dp.stop_gradient(x)) if a constant is meant. "
    "Comparisons (if x > 0:), bool(x), int(x) and printing work as usual"
)
_STORE_HINT = (
    "If this came from `a[i] = x` with `a` a plain NumPy array, allocate `a` with dnp.zeros / "
    "dnp.empty / dnp.zeros_like (inside a transform they make arrays whose item assignments "
    "are recorded), or build it from traced pieces (dnp.stack, dnp.concatenate, dnp.where)."
)


def recording_trace(x: Any) -> Trace | None:
    """The innermost trace still recording among x's tracer layers (None once all closed:
    a value kept after its transform returned converts freely)."""
    while isinstance(x, Tracer):
        if x._trace.alive:
            return x._trace
        x = x.value
    return None


def refuse_conversion(x: Tracer, what: str) -> None:
    """Raise TracerConversionError if `what` would turn x, still recorded, into a Python
    number (which carries no gradient)."""
    trace = recording_trace(x)
    if trace is None:
        return
    raise TracerConversionError(
        f"{what} turns a value traced by {trace.origin} (shape {x.shape}, dtype {x.dtype}) "
        f"into a Python number, which would silently drop its gradient, at {user_line()}. "
        + _CONVERSION_HINT
    )


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _in_package(filename: str) -> bool:
    """Whether code of `filename` is diffprog's own. Asked per frame of every recorded op,
    so kept per absolute file name (os.path.abspath took a fifth of a recording's time); a
    relative one depends on the working directory."""
    inside = _inside.get(filename)
    if inside is None:
        inside = os.path.abspath(filename).startswith(_PACKAGE_DIR)
        if os.path.isabs(filename) and len(_inside) < 10_000:
            _inside[filename] = inside
    return inside


_inside: dict[str, bool] = {}


def user_line(code: bool = True) -> str:
    """`file:line: code` of the innermost frame outside the diffprog package: the line of the
    user's code an error is about (without the code, which is read from the file, if not
    `code`)."""
    frame = sys._getframe(1)
    while frame.f_back is not None and _in_package(frame.f_code.co_filename):
        frame = frame.f_back
    filename, lineno = frame.f_code.co_filename, frame.f_lineno
    text = linecache.getline(filename, lineno).strip() if code else ""
    return f"{filename}:{lineno}" + (f": `{text}`" if text else "")


def user_stacklevel() -> int:
    """The `stacklevel` that makes a `warnings.warn` in the caller of this function name the
    innermost frame outside the diffprog package: the user's line."""
    frame, level = sys._getframe(1), 1
    while frame is not None and _in_package(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level


def numpy_frame() -> Any:
    """The outermost frame of the NumPy Python code that called into diffprog (diffprog's own
    frames skipped): the NumPy function given a traced value (`np.std([a, b])`, `np.full`);
    None when the caller is not NumPy's."""
    frame: Any = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("diffprog."):
        frame = frame.f_back
    outer = None
    while frame is not None and frame.f_globals.get("__name__", "").partition(".")[0] == "numpy":
        outer, frame = frame, frame.f_back
    return outer


def _hidden_tracer_message(what: str, frame: Any) -> str:
    """Why NumPy's function (running in `frame`) cannot take a traced value, and what to use."""
    owner = type(frame.f_locals.get("self")).__name__
    if owner in ("RClass", "CClass"):  # numpy.r_[...] / numpy.c_[...]
        name = owner[0].lower() + "_"
        return (f"numpy.{name}[...] was given {what} and would make it a plain NumPy array, "
                f"silently dropping its gradient; use diffprog.numpy.{name}[...] (dnp.{name}), "
                "which builds the same array differentiably")  # fmt: skip
    module = frame.f_globals["__name__"].split(".")
    public = ".".join(m for m in module[: next((i for i, m in enumerate(module) if
                                                m.startswith("_")), len(module))])  # fmt: skip
    name = f"{public}.{frame.f_code.co_name}"
    return (
        f"{name} was given {what} where NumPy's dispatch cannot see it (inside a list or "
        "tuple: NumPy hands to diffprog only arrays passed directly) and would make it a plain "
        "NumPy array, silently dropping its gradient. Use diffprog.numpy's function of that "
        f"name ({name.replace('numpy', 'dnp', 1)}), which accepts lists holding traced values, "
        "or make the list one array first with dnp.array([...]) or dnp.stack"
    )


def _store_error(x: Tracer, integer: bool = False) -> TracerConversionError:
    """The error for `a[i] = x`, `a` a plain NumPy array (`integer`: of an integer dtype)."""
    if integer:  # (dnp.zeros(n, dtype=int) is such an array: integers carry no derivative)
        err = TracerConversionError(
            f"a traced value (shape {x.shape}, dtype {x.dtype}) is being written into a plain "
            "NumPy integer array with `a[i] = x`, which would truncate it and keep no trace "
            "of it. Write a[i] = dp.stop_gradient(x) (or int(x) of a scalar) if integers are "
            "meant; to differentiate through `a`, make it a floating array (inside a "
            "transform, dnp.zeros(n) makes one whose writes are recorded)."
        )
        err._diffprog_store = True  # type: ignore[attr-defined]  # see numpy_store_cause
        return err
    err = TracerConversionError(
        f"a traced value (shape {x.shape}, dtype {x.dtype}) is being written into a plain "
        "NumPy array with `a[i] = x`, which would keep its value but silently drop its "
        "gradient. " + _STORE_HINT
        + " Write float(dp.stop_gradient(x)) if a constant is meant."
    )
    err._diffprog_store = True  # type: ignore[attr-defined]  # see numpy_store_cause
    return err


def full_error(name: str) -> TracerConversionError:
    """The error for numpy.full / full_like given a traced fill value."""
    on, instead = (("`like=`", "or np.full(shape, x, like=x)") if name == "full" else
                   ("its prototype", "or make the prototype a traced array"))  # fmt: skip
    return TracerConversionError(
        f"numpy.{name} with a traced fill value: NumPy's {name} hands diffprog only {on}, so "
        "it cannot return a traced array and the fill value's gradient would be lost. Use "
        f"dnp.{name} with the same arguments (differentiable in the fill value), {instead}"
    )


def numpy_store_cause(e: BaseException) -> BaseException | None:
    """The TracerConversionError behind NumPy's "setting an array element with a sequence".

    For `a[i] = x` (a plain NumPy array, x a traced scalar) NumPy converts x with float(),
    which `_refuse_silent_store` refuses; seeing that a tracer has `__getitem__` (so it looks
    like a sequence to NumPy's C API), NumPy then replaces our error with its own ValueError,
    keeping ours as the cause. The transforms raise ours instead (None for other errors)."""
    cause = e.__cause__
    if isinstance(e, ValueError) and getattr(cause, "_diffprog_store", False):
        return cause
    return None


class numpy_store_unwrapped:  # noqa: N801 - used like a function: `with numpy_store_unwrapped():`
    """Runs a transform's function, raising our refusal of `a[i] = x` itself where NumPy
    wrapped it in its ValueError (see numpy_store_cause). A class, not a generator context
    manager: every transform enters one per call."""

    __slots__ = ()

    def __enter__(self) -> None:
        pass

    def __exit__(self, kind: Any, e: Any, tb: Any) -> None:
        cause = numpy_store_cause(e) if kind is not None else None
        if cause is not None:
            raise cause.with_traceback(tb) from None


def calling_instruction(depth: int = 2) -> str:
    """The bytecode instruction of the Python code that made NumPy convert a tracer (the
    frame `depth` levels above this function)."""
    frame = sys._getframe(depth)
    return dis.opname[frame.f_code.co_code[frame.f_lasti]]


#: BINARY_OP's arguments for `%` and `%=` (Python >= 3.11; before, BINARY_MODULO)
_PERCENT_OPS = {i for i, (_, sym) in enumerate(getattr(dis, "_nb_ops", ())) if sym in ("%", "%=")}


def _percent_formatting() -> bool:
    """Is the code that called our caller (a conversion method) running `"%f" % x`? (A `%`
    whose right operand converts with float() can only be string formatting: on numbers,
    `%` reaches the tracer's __rmod__.)"""
    frame = sys._getframe(2)
    code, i = frame.f_code.co_code, frame.f_lasti
    op = dis.opname[code[i]]
    return op == "BINARY_MODULO" or (op == "BINARY_OP" and code[i + 1] in _PERCENT_OPS)


def _refuse_silent_store(x: Tracer, integer: bool = False) -> None:
    """`a[i] = x` into a plain NumPy array converts x with float() or int() (`integer`: an
    integer array's): refuse, since the gradient would be dropped without a word (even once
    x's trace has closed)."""
    if calling_instruction(3) == "STORE_SUBSCR":
        raise _store_error(x, integer)


def top_trace(values: Any) -> Trace | None:
    """The highest-level trace among the tracers in `values` (None if there are none)."""
    trace = None
    for a in values:
        if isinstance(a, Tracer) and (trace is None or a._trace.level > trace.level):
            trace = a._trace
    return trace


def differentiating_trace(values: Any) -> Trace | None:
    """`top_trace` among the tracers of differentiating transforms in `values` (a value
    dp.jit stages is an array to them, not a tracer)."""
    return top_trace(v for v in values if not (isinstance(v, Tracer) and v.opaque))


def as_scalar(x: Any) -> Any:
    """A Python float (complex) as a NumPy float64 (complex128) scalar, which has .shape and
    .dtype; else `x`."""
    t = type(x)
    return np.float64(x) if t is float else np.complex128(x) if t is complex else x


def raw(x: Any) -> Any:
    """The array under every differentiating tracer layer: a concrete array, or an `opaque`
    tracer, which stands for the array to everything above it: a value being staged by
    dp.jit, or one batched by dp.vmap (rebuilt on the raw values of its examples)."""
    while isinstance(x, Tracer):
        if x.opaque:
            return x.stripped() if x.batched else x
        x = x.value
    return x


def unwrapped(x: Any) -> Any:
    """The concrete array under every tracer layer, values dp.jit stages included (of a value
    dp.vmap batches, one example): for reading a value's type, shape and dtype. Data read through it escapes dp.jit's graph:
    compute on `raw(x)` instead."""
    while isinstance(x, Tracer):
        x = x.example if x.batched else x.value  # (one example of a dp.vmap batch)
    return x


def install_operators(table: dict[str, Callable[..., Any]], cls: type = Tracer) -> None:
    """Install methods (`__add__`, `sum`, `__array_ufunc__`, ...) on every tracer type (or on
    the tracer type `cls` and its subclasses)."""
    for name, fn in table.items():
        if name in Tracer.__slots__:
            raise ValueError(f"the tracer method {name!r} would hide the tracer's own attribute")
        setattr(cls, name, fn)
