"""Finding the first NaN or infinity: `with dp.debug_nans(): ...`.

Owns: a switch that, while on in a thread, checks the result of every kernel run in that
thread (forward and backward passes alike, and every record a reverse trace makes) and
raises NonFiniteError at the first one that turns finite operands into a NaN or an
infinity, every cotangent of the reverse sweep and every tangent of forward mode, naming
the primitive, the operands' shapes and dtypes, and the line of the user's source that
created the operation (for a backward pass: the line of the forward operation whose
derivative rule produced it).

It costs nothing when off: the checking `Primitive.run` (and a `bind` that calls it), a
record observer (which notes where each record was created and checks its output), the
sweep's cotangent check and forward mode's tangent check are installed only while some
thread has the switch on (the sweep reads its hook once per sweep), and removed when the
last one turns it off. `user_site` is shared with dp.make_graph.
Layer L5: imports L0-L3.
"""

from __future__ import annotations

import contextlib
import linecache
import math
import os
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from .ad import forward, reverse
from .ad.reverse import ReverseTrace
from .backend import namespace_of
from .core.primitive import Primitive, describe_operands
from .core.trace import raw, top_trace
from .errors import NonFiniteError

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_ORIGINAL_RUN = Primitive.run
_ORIGINAL_CALL = Primitive.__call__  # inlines `run` for speed, so it is swapped too
_local = threading.local()
_lock = threading.Lock()
_active_threads = 0
_observation: contextlib.AbstractContextManager | None = None
_sites: dict[int, str] = {}  # id(tape record) -> where the user's code created it


@contextlib.contextmanager
def debug_nans() -> Iterator[None]:
    """Raise at the first NaN or infinity an operation produces from finite operands.

    >>> import numpy as np, diffprog as dp, diffprog.numpy as dnp
    >>> with dp.debug_nans(), np.errstate(invalid="ignore"):
    ...     dp.grad(lambda x: dnp.sum(dnp.log(x)))(np.array([1.0, -1.0]))
    Traceback (most recent call last):
    ...
    diffprog.errors.NonFiniteError: log produced nan ...
    """
    global _active_threads, _observation
    depth = getattr(_local, "depth", 0)
    _local.depth = depth + 1
    if depth == 0:
        with _lock:
            _active_threads += 1
            if _active_threads == 1:
                Primitive.run = _checked_run  # type: ignore[method-assign]
                Primitive.__call__ = _call_via_run  # type: ignore[method-assign]
                reverse.check_cotangent = _check_cotangent
                forward.check_tangent = _check_tangent
                _observation = reverse.observing(_note_site)
                _observation.__enter__()
    try:
        yield
    finally:
        _local.depth = depth
        if depth == 0:
            with _lock:
                _active_threads -= 1
                if _active_threads == 0:
                    Primitive.run = _ORIGINAL_RUN  # type: ignore[method-assign]
                    Primitive.__call__ = _ORIGINAL_CALL  # type: ignore[method-assign]
                    reverse.check_cotangent = None
                    forward.check_tangent = None
                    assert _observation is not None
                    _observation.__exit__(None, None, None)
                    _sites.clear()


def _call_via_run(self: Primitive, *args: Any, **params: Any) -> Any:
    """`bind` that runs kernels through `Primitive.run` (the checking one)."""
    trace = top_trace(args)
    return self.run(args, params) if trace is None else trace.process(self, args, params)


def _checked_run(self: Primitive, args: Any, params: dict) -> Any:
    out = _ORIGINAL_RUN(self, args, params)
    if getattr(_local, "depth", 0) and _nonfinite(out) and not any(_nonfinite(a) for a in args):
        raise NonFiniteError(_report(self, args, params, out))
    return out


def _check_cotangent(c: Any, g: Any, record: Any) -> None:
    """A cotangent computed by the reverse sweep: raise if it is the first non-finite one."""
    if not getattr(_local, "depth", 0) or not _nonfinite(raw(c)):
        return
    prim, params, vals, _, _ = record
    operands = (g if isinstance(g, tuple) else (g,)) + tuple(vals)
    if any(_nonfinite(raw(v)) for v in operands if v is not None):
        return  # not produced here: an operand was already non-finite
    site = _sites.get(id(record), "an unknown line (recorded before debug_nans was on)")
    kind = "nan" if _has_nan(raw(c)) else "inf"
    raise NonFiniteError(
        f"the derivative rule of {prim.name} produced {kind} in the backward pass; the "
        f"operation was created at {site} ({describe_operands(tuple(vals), params or {})}). "
        "Its operands and incoming cotangent were finite: the derivative is infinite there "
        "(e.g. sqrt or log at 0); keep the input away from that point (see docs/reliability.md)"
    )


def _check_tangent(prim: Primitive, vals: list, params: dict, tangents: list, out: Any) -> None:
    """The tangent(s) `out` forward mode's JVP rules computed from `tangents` (None: zero)
    at operands `vals`: raise if they are the first non-finite ones."""
    if not getattr(_local, "depth", 0):
        return
    values = out if isinstance(out, tuple) else (out,)
    bad = [raw(t) for t in values if t is not None and _nonfinite(raw(t))]
    if not bad or any(_nonfinite(raw(v)) for v in (*vals, *tangents) if v is not None):
        return  # all finite, or not produced here: an operand was already non-finite
    kind = "nan" if any(_has_nan(t) for t in bad) else "inf"
    raise NonFiniteError(
        f"the JVP rule of {prim.name} produced {kind} in a forward-mode tangent at "
        f"{user_site(sys._getframe(2))} ({describe_operands(tuple(vals), params or {})}). "
        "Its operands and incoming tangents were finite: the derivative is infinite there "
        "(e.g. sqrt or log at 0); keep the input away from that point (see docs/reliability.md)"
    )


def _note_site(trace: ReverseTrace, slot: int) -> None:
    """Note where a record was made, and check its output: a reverse trace runs the kernels
    of the records it makes itself, not through `Primitive.run`."""
    if not getattr(_local, "depth", 0):
        return
    record = trace.tape[slot]
    _sites[id(record)] = user_site(sys._getframe(1))
    prim, params, vals, _, out = record
    out = tuple(map(raw, out)) if isinstance(out, tuple) else raw(out)
    if _nonfinite(out) and not any(_nonfinite(raw(v)) for v in vals):
        raise NonFiniteError(_report(prim, vals, params or {}, out))


def _nonfinite(x: Any) -> bool:
    if isinstance(x, tuple):
        return any(_nonfinite(v) for v in x)
    if isinstance(x, float):
        return not math.isfinite(x)
    dtype = getattr(x, "dtype", None)
    if dtype is None or dtype.kind not in "fc":
        return False
    return not bool(namespace_of((x,)).isfinite(x).all())


def _has_nan(x: Any) -> bool:
    return bool((x != x).any()) if hasattr(x, "any") else x != x


def _report(prim: Primitive, args: Any, params: dict, out: Any) -> str:
    values = out if isinstance(out, tuple) else (out,)
    kind = "nan" if any(_has_nan(v) for v in values if _nonfinite(v)) else "inf"
    record = _backward_record()
    if record is None:
        where = f"in the forward pass at {user_site(sys._getframe(2))}"
    else:
        site = _sites.get(id(record), "an unknown line (recorded before debug_nans was on)")
        where = f"in the backward pass of {record[0].name}, created at {site}"
    return (
        f"{prim.name} produced {kind} {where} ({describe_operands(tuple(args), params)}). "
        "Its operands were finite; look at the domain of this operation there (log or sqrt "
        "of a non-positive value, a division by zero, an overflow)"
    )


def _backward_record() -> Any:
    """The tape record whose derivative rule is running, if a reverse sweep is on the stack."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        if frame.f_code is reverse._sweep.__code__:
            return frame.f_locals["tape"][frame.f_locals["i"]]
        frame = frame.f_back
    return None


def debug_nans_on() -> bool:
    """Whether dp.debug_nans is on in this thread."""
    return getattr(_local, "depth", 0) > 0


def user_site(frame: FrameType | None) -> str:
    """`file:line in function: source` of the innermost frame outside diffprog."""
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    if frame is None:
        return "an unknown line"
    code = frame.f_code
    source = linecache.getline(code.co_filename, frame.f_lineno).strip()
    return f"{code.co_filename}:{frame.f_lineno} in {code.co_name}: `{source}`"
