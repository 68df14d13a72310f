"""NumPy's own functions on tracers: `np.exp(x)`, `np.sum(x, axis=0)`, `np.add.at(x, i, v)`.

Owns: the tracer's `__array_ufunc__` and `__array_function__`, which send NumPy functions to
their diffprog.numpy counterparts of the same name (ufunc calls, `reduce` and `accumulate`
where a counterpart exists, `np.add.at`, `out=` when it names a tracer), and refuse, by name
and with what to use instead, everything diffprog cannot differentiate. `supported()` lists
what is dispatched, for the coverage table in the docs. Also `keyword_checked`: a NumPy
keyword a function does not implement, passed either way (`np.sum(x, dtype=...)` or
`dnp.sum(x, dtype=...)`), is refused by name, not with Python's bare TypeError.
Layer L4: imports L0, L2 and other L4 modules.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from .. import tree
from ..ad.staging import stage_numpy_call
from ..core.primitive import keyword_error, unsupported_keywords
from ..core.trace import Tracer
from ..errors import TracerConversionError, UnsupportedKeywordError
from .assignment import setitem
from .manipulation import broadcast_to, getitem, index_add, index_tuple

# ufunc.reduce / ufunc.accumulate -> the diffprog.numpy function that computes it
_REDUCE = {"add": "sum", "multiply": "prod", "maximum": "max", "minimum": "min",
           "logaddexp": "logsumexp"}  # fmt: skip
_ACCUMULATE = {"add": "cumsum", "multiply": "cumprod"}


def supported(dnp: ModuleType) -> tuple[dict[str, Callable[..., Any]], dict[Any, Callable[..., Any]]]:
    """(ufunc name -> function, NumPy function -> function) for what dispatch sends on."""
    ufuncs = {
        name: getattr(dnp, name)
        for name in dir(dnp)
        if isinstance(getattr(np, name, None), np.ufunc) and callable(getattr(dnp, name))
    }
    functions = {}
    for namespace, ours in ((np, dnp), (np.linalg, getattr(dnp, "linalg", None)),
                            (np.fft, getattr(dnp, "fft", None))):
        for name in getattr(ours, "__all__", ()):
            theirs = getattr(namespace, name, None)
            if callable(theirs) and not isinstance(theirs, np.ufunc):
                functions[theirs] = inspect.unwrap(getattr(ours, name))
    return ufuncs, functions


def keyword_checked(fn: Callable[..., Any], what: str) -> Callable[..., Any]:
    """`fn`, raising UnsupportedKeywordError (naming `what` and the keyword) when it is
    called with a keyword argument it does not take. Nothing is checked on a good call."""

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if not kwargs:  # nothing to check: fn itself (the common call, one frame fewer)
            return fn(*args)
        return call(what, fn, args, kwargs)

    return checked


def call(what: str, fn: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> Any:
    """`fn(*args, **kwargs)`; a keyword fn lacks is an UnsupportedKeywordError naming `what`."""
    try:
        return fn(*args, **kwargs)
    except TypeError as e:
        error = keyword_error(what, fn, kwargs) if kwargs else None
        if error is None:
            raise
        raise error from e


def install(dnp: ModuleType) -> dict[str, Any]:
    """The protocol methods for the tracer class, built on the functions of `dnp`."""
    ufuncs, functions = supported(dnp)

    def __array_ufunc__(self: Tracer, ufunc: Any, method: str, *inputs: Any, **kwargs: Any) -> Any:
        name = ufunc.__name__
        out = kwargs.pop("out", None)
        if method == "at" and name == "add" and len(inputs) == 3 and not kwargs and out is None:
            return _add_at(*inputs)
        fn, keywords = _counterpart(dnp, ufuncs, name, method)
        if fn is None or any(k not in keywords for k in kwargs):
            if not _staged_only(self, (inputs, kwargs)) or method == "at":
                if fn is None:
                    raise _refusal(name, method, kwargs, out, dnp, sorted(ufuncs))
                what = f"numpy.{name}" + ("" if method == "__call__" else f".{method}")
                raise unsupported_keywords(what, [k for k in kwargs if k not in keywords], keywords)
            result = stage_numpy_call(name, method, inputs, kwargs)
        elif method == "__call__":
            result = fn(*inputs)
        else:  # ufunc.reduce / accumulate work along axis 0 by default
            result = fn(inputs[0], **{"axis": 0, **kwargs})
        if out is None:
            return result
        target = out[0] if isinstance(out, tuple) and len(out) == 1 else out
        if not isinstance(target, Tracer):
            raise TracerConversionError(
                f"numpy.{name}(..., out=a) with `a` a plain NumPy array cannot hold a traced "
                "result (its gradient would be lost); drop out= and use the return value"
            )
        setitem(target, Ellipsis, result)
        return target

    def __array_function__(self: Tracer, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        what = f"{func.__module__}.{func.__name__}"
        fn = functions.get(func)
        staged = _staged_only(self, (args, kwargs)) and func.__name__ not in _MUTATING
        if fn is None:
            if staged:
                return stage_numpy_call(what.partition(".")[2], "__call__", args, kwargs)
            raise TracerConversionError(
                f"{what} is not supported on traced arrays: diffprog cannot differentiate it. "
                "Use a function from diffprog.numpy instead (see diffprog.numpy.__all__ and "
                "docs/numpy_coverage.md), or dp.stop_gradient(x) if x is a constant there"
            )
        if not staged:
            return call(what, fn, args, kwargs)
        running = _running()
        if func in running:  # diffprog's function computing with NumPy's own on raw values
            return stage_numpy_call(what.partition(".")[2], "__call__", args, kwargs)
        running.add(func)
        try:
            return call(what, fn, args, kwargs)
        except UnsupportedKeywordError:
            return stage_numpy_call(what.partition(".")[2], "__call__", args, kwargs)
        finally:
            running.discard(func)

    return {"__array_ufunc__": __array_ufunc__, "__array_function__": __array_function__}


#: the keywords of ufunc.reduce / accumulate that diffprog's counterparts implement
_KEYWORDS = {"reduce": ("axis", "keepdims", "initial", "where"), "accumulate": ("axis",)}


def _staged_only(x: Tracer, args: Any) -> bool:
    """Whether `x` is a value dp.jit stages and no differentiating tracer is among `args` (in
    lists too): raw-level code (a derivative rule's masks, index arithmetic) running under
    dp.jit, whose NumPy calls diffprog has no function for are recorded as they are."""
    return x.opaque and not x.batched and not any(
        isinstance(leaf, Tracer) and not leaf.opaque for leaf in tree.leaves(args)
    )


_local = threading.local()


def _running() -> set:
    """The NumPy functions whose diffprog counterpart runs on staged values in this thread."""
    running = getattr(_local, "running", None)
    if running is None:
        running = _local.running = set()
    return running


#: NumPy functions that write into an argument: never recorded as they are (a replay would
#: write into a value other operations read)
_MUTATING = {"put", "place", "putmask", "fill_diagonal", "put_along_axis", "copyto"}


def _counterpart(
    dnp: ModuleType, ufuncs: dict[str, Any], name: str, method: str
) -> tuple[Callable[..., Any] | None, tuple[str, ...]]:
    """The diffprog.numpy function computing `numpy.<name>.<method>` and the keywords it
    takes there; (None, ()) if diffprog has none."""
    if method == "__call__":
        return ufuncs.get(name), ()
    table = {"reduce": _REDUCE, "accumulate": _ACCUMULATE}.get(method, {})
    fn = getattr(dnp, table.get(name, "-"), None)
    if fn is None:
        return None, ()
    keywords = _KEYWORDS[method]
    if name == "logaddexp":  # logsumexp takes neither initial= nor where=
        keywords = tuple(k for k in keywords if k not in ("initial", "where"))
    return fn, keywords


def _add_at(a: Any, index: Any, b: Any) -> None:
    """np.add.at(a, index, b) on a traced `a`: unbuffered, so repeated indices accumulate."""
    if not isinstance(a, Tracer):
        raise TracerConversionError(
            "numpy.add.at(a, index, b) with `a` a plain NumPy array and `b` traced would drop "
            "b's gradient; make `a` traced (e.g. a = x * 0.0) or use dnp functions"
        )
    index = index_tuple(index)
    picked_shape = getitem(a, index).shape
    increment = index_add(broadcast_to(b, picked_shape), index=index, shape=a.shape)
    setitem(a, Ellipsis, a + increment)


def _refusal(
    name: str, method: str, kwargs: dict, out: Any, dnp: ModuleType, names: list[str]
) -> Exception:
    what = f"numpy.{name}" + ("" if method == "__call__" else f".{method}")
    extra = [k for k in kwargs] + (["out"] if out is not None else [])
    detail = f" with {', '.join(extra)}=" if extra else ""
    return TracerConversionError(
        f"{what}{detail} is not supported on traced arrays: diffprog cannot differentiate it. "
        f"Supported: calls of the ufuncs {', '.join(names)}; "
        f"reduce of {_available(_REDUCE, dnp)}; accumulate of {_available(_ACCUMULATE, dnp)}; "
        "numpy.add.at; out= naming a traced array. Otherwise use diffprog.numpy's functions"
    )


def _available(table: dict[str, str], dnp: ModuleType) -> str:
    return ", ".join(sorted(k for k, v in table.items() if hasattr(dnp, v)))
