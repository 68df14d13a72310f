"""Reverse mode: the tape (a Wengert list) and the backward sweep over it.

Owns: `ReverseTrace`, which appends one record per primitive call to a flat list in
execution order (already a topological order; `append` takes the ready-made records of item
assignment, diffprog.numpy.inplace), `ReverseTracer` (a value plus its slot on the tape;
slot -1 is a constant, such as an array dnp.zeros allocates), `backward`, the non-recursive
reverse sweep that drops every cotangent as soon as it is consumed, and `observing`, the hook
through which tools watch records being made.

The same rule code serves both strategies. With nothing tracing outside, residuals and
cotangents are raw arrays and each rule runs straight on its kernels (tape backprop). When
an outer transform is tracing, residuals are its tracers, so the sweep is itself recorded by
the outer trace (graph extension) and the gradient can be differentiated again.
Layer L3: imports L0-L2.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy
from numpy import ndarray

from ..backend import device_scope, host_scalars, run_kernel
from ..core.edge import astype, sum_to_shape
from ..core.gc_pause import gc_paused
from ..core.primitive import HOST_TYPES, KERNEL_ERRORS, params_traced
from ..core.trace import Trace, Tracer, as_scalar, hidden, raw

# A tape record is a tuple (prim, params, input values, input slots, output), or one of:
INPUT = None  # a watched input: its cotangent is kept, not consumed
EXTRA_OUTPUT = ()  # a further output of the multi-output record just before it
NO_PARAMS: dict = {}  # the params of every record without static parameters (never mutated)


class ReverseTracer(Tracer):
    """A traced value; `slot` is the index of the record that produced it."""

    __slots__ = ("slot",)

    def __init__(self, trace: ReverseTrace, value: Any, slot: int) -> None:
        self._trace = trace
        self.value = value
        self.slot = slot


class ReverseTrace(Trace):
    """Records every primitive applied to its tracers on `tape`."""

    __slots__ = ("tape",)

    def __init__(self, level: int, origin: str) -> None:
        super().__init__(level, origin)
        self.tape: list[Any] = []

    def watch(self, value: Any) -> ReverseTracer:
        """A new tracer for an input whose adjoint is wanted."""
        self.tape.append(INPUT)
        return ReverseTracer(self, value, len(self.tape) - 1)

    def process(self, prim: Any, args: tuple, params: dict) -> Any:
        """Run `prim` on the values under args and record it. The common call (one or two
        arguments, no static parameters, one output, NumPy arrays, Python float constants:
        `2.0 * x`) takes a short path that saves tuples; every other call takes
        `_process_any`."""
        n = len(args)
        if n > 2 or params or not self.alive or prim.multiple_results or prim.indexed:
            return self._process_any(prim, args, params)
        a = args[0]
        if type(a) is ReverseTracer and a._trace is self:
            va, sa = a.value, a.slot
        else:
            va, sa = a, -1
        t = type(va)
        if t is not ndarray and (t is not float or sa >= 0 or n == 1):  # (a watched float
            return self._process_any(prim, args, params)  # is weakly typed: the long path)
        if n == 1:
            vals: Any = (va,)
            slots: Any = (sa,)
        else:
            b = args[1]
            if type(b) is ReverseTracer and b._trace is self:
                vb, sb = b.value, b.slot
            else:
                vb, sb = b, -1
            t = type(vb)
            if t is not ndarray and (t is not float or sb >= 0):  # (a watched float is weak)
                return self._process_any(prim, args, params)
            vals, slots = (va, vb), (sa, sb)
        try:
            out = prim.impl(numpy, va) if n == 1 else prim.impl(numpy, va, vb)
        except KERNEL_ERRORS as e:
            prim.raise_named(e, vals, params)
        tape = self.tape
        slot = len(tape)
        tape.append((prim, NO_PARAMS, vals, slots, out))
        return ReverseTracer(self, out, slot)

    def _process_any(self, prim: Any, args: tuple, params: dict) -> Any:
        """`process` for any call: values of any kind, static parameters, several outputs."""
        if not self.alive:
            raise self.escaped_error()
        vals = []
        slots = []
        nested = False  # does a value one level down still hold an (outer) tracer?
        weak = False  # is a watched input a Python float (weakly typed, as NumPy treats it)?
        host = True  # are all values host values (then xp is NumPy)?
        for a in args:  # (NumPy arrays, the common case, leave each branch first)
            t = type(a)
            if t is ReverseTracer and a._trace is self:
                v = a.value
                slots.append(a.slot)
                t = type(v)
                if t is ndarray:
                    vals.append(v)
                    continue
                if t is float:
                    weak = True
            else:  # a constant here (perhaps a tracer of an outer trace)
                v = a
                slots.append(-1)
                if t is ndarray:
                    vals.append(v)
                    continue
            vals.append(v)
            if t not in HOST_TYPES:
                host = False
                if isinstance(v, Tracer):
                    nested = True
        if nested or (prim.indexed and params_traced(params)):  # re-enter bind one level
            out = prim(*vals, **params)  # down, where an outer trace is watching
        else:  # Primitive.run, inlined (the hot path); dp.debug_nans checks records instead
            try:
                if host:
                    out = prim.impl(numpy, *vals, **params) if params else prim.impl(numpy, *vals)
                else:
                    out = run_kernel(prim.impl, vals, params)
                    vals = host_scalars(vals)  # on CuPy, as its rules must see them
            except KERNEL_ERRORS as e:
                prim.raise_named(e, vals, params)
        if weak:  # the kernel saw the Python float; rules see a NumPy scalar (shape, dtype)
            vals = [as_scalar(v) for v in vals]
        tape = self.tape
        slot = len(tape)
        tape.append((prim, params or NO_PARAMS, vals, slots, out))  # one shared empty dict
        if prim.multiple_results:
            tape.extend([EXTRA_OUTPUT] * (len(out) - 1))
            return tuple(ReverseTracer(self, o, slot + i) for i, o in enumerate(out))
        return ReverseTracer(self, out, slot)

    def record_call(self, node: Any, args: list[Any], run: Callable[[list[Any]], Any]) -> list[Any]:
        """Record one call of a whole function as the single node `node` (a JointNode).

        `run(vals)` computes the call's output leaves from the inputs one level down, so
        nothing inside it is recorded here; floating outputs come back as tracers.
        """
        if not self.alive:
            raise self.escaped_error()
        vals = []
        slots = []
        for a in args:
            if isinstance(a, ReverseTracer) and a._trace is self:
                vals.append(a.value)
                slots.append(a.slot)
            else:
                vals.append(a)
                slots.append(-1)
        with hidden(self):  # run's code allocates (dnp.zeros) one level down
            out = tuple(run(vals))
        vals = [as_scalar(v) for v in vals]  # the pullback and the sweep read shapes
        tape = self.tape
        slot = len(tape)
        tape.append((node, None, vals, slots, out))
        tape.extend([EXTRA_OUTPUT] * (len(out) - 1))
        for observer in _observers:
            observer(self, slot)
        return [
            ReverseTracer(self, o, slot + i) if is_floating(o) else o for i, o in enumerate(out)
        ]


    def append(self, record: tuple) -> int:
        """Append a ready-made single-output record and return its slot: item assignment's
        (diffprog.numpy.inplace), whose inputs are saved as shape-only placeholders."""
        if not self.alive:
            raise self.escaped_error()
        tape = self.tape
        tape.append(record)
        slot = len(tape) - 1
        for observer in _observers:
            observer(self, slot)
        return slot


_observers: list[Callable[[ReverseTrace, int], None]] = []
_observers_lock = threading.Lock()
_plain_process = ReverseTrace.process


def _observed_process(self: ReverseTrace, prim: Any, args: tuple, params: dict) -> Any:
    out = _plain_process(self, prim, args, params)
    slot = (out[0] if isinstance(out, tuple) else out).slot
    for observer in _observers:
        observer(self, slot)
    return out


@contextlib.contextmanager
def observing(observer: Callable[[ReverseTrace, int], None]) -> Iterator[None]:
    """Call `observer(trace, slot)` after every record any reverse trace appends, while on.

    For tools (dp.debug_nans, dp.make_graph), not the hot path: the observing version of
    `ReverseTrace.process` is installed only while at least one observer is registered.
    Observers see every thread's records and filter for themselves.
    """
    with _observers_lock:
        _observers.append(observer)
        ReverseTrace.process = _observed_process  # type: ignore[method-assign]
    try:
        yield
    finally:
        with _observers_lock:
            _observers.remove(observer)
            if not _observers:
                ReverseTrace.process = _plain_process  # type: ignore[method-assign]


def is_floating(x: Any) -> bool:
    """True for a Python float or complex, or a floating or complex array / tracer (a value
    that can be traced)."""
    value = raw(x)
    t = type(value)
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    return t is float or t is complex or kind == "f" or kind == "c"


#: None, or a function (cotangent, output cotangent, record) called on every cotangent the
#: sweep computes; dp.debug_nans installs one.
check_cotangent: Callable[[Any, Any, Any], None] | None = None


_sweeps = threading.local()


def sweeping() -> bool:
    """Whether this thread is inside a backward sweep (for tools that label what the
    derivative rules record: dp.jit's graphs)."""
    return getattr(_sweeps, "depth", 0) > 0


def backward(tape: list[Any], seeds: list[tuple[int, Any]]) -> list[Any]:
    """Sweep `tape` once in reverse from `seeds` (slot, cotangent) pairs, with Python's
    cyclic collector paused (see core.gc_pause), on the GPU of the seeds (the rules
    compute on raw arrays, which CuPy would run on the current GPU). A seed at slot -1 (a
    constant tracer, e.g. an output made by dnp.zeros) reaches nothing and is dropped."""
    seeds = [(slot, ct) for slot, ct in seeds if slot >= 0]  # slot -1: a constant (dnp.zeros)
    depth = getattr(_sweeps, "depth", 0)
    _sweeps.depth = depth + 1
    try:
        with gc_paused(), device_scope(ct for _, ct in seeds):
            return _sweep(tape, seeds)
    finally:
        _sweeps.depth = depth


def _to_shape(c: Any, shape: tuple[int, ...]) -> Any:
    """`sum_to_shape(c, shape=shape)`; on a NumPy cotangent its kernel straight away (the
    tape-mode hot case: a broadcast operand's cotangent), otherwise bound as a primitive."""
    if type(c) is not ndarray:
        return sum_to_shape(c, shape=shape)
    try:
        return sum_to_shape.impl(numpy, c, shape=shape)
    except KERNEL_ERRORS as e:
        sum_to_shape.raise_named(e, (c,), {"shape": shape})


def _sweep(tape: list[Any], seeds: list[tuple[int, Any]]) -> list[Any]:
    """The sweep itself. Returns the cotangent list: entries of INPUT records hold their
    adjoints (None where the seeds do not reach them); every other entry has been consumed
    and dropped."""
    check = check_cotangent  # set by dp.debug_nans while it is on; read once per sweep
    cts: list[Any] = [None] * len(tape)
    for slot, ct in seeds:
        cts[slot] = ct if cts[slot] is None else cts[slot] + ct
    for i in range(len(tape) - 1, -1, -1):
        g = cts[i]
        record = tape[i]
        if not record:  # INPUT or EXTRA_OUTPUT
            continue
        prim, params, vals, slots, out = record
        if prim.multiple_results:
            n = len(out)
            g: Any = tuple(cts[i : i + n])
            if not any(c is not None for c in g):
                continue
            cts[i : i + n] = [None] * n
        else:
            if g is None:
                continue
            cts[i] = None
            if type(g) not in HOST_TYPES:  # a CuPy g meets a host value's 0-d NumPy arrays
                vals = host_scalars(vals)  # (as scalars, which CuPy takes beside its arrays)
        joint = prim.joint
        if joint:  # a JointNode (its params are None) or a JointPrimitive
            if params is None:
                pulled = prim.pullback(g, out, vals)
            else:
                pulled = prim.pullback(g, out, vals, **params)
        else:
            rules = prim.vjps
        j = -1
        for s in slots:  # (a counter, not enumerate: this loop runs once per tape edge)
            j += 1
            if s < 0:
                continue
            if joint:
                c = pulled[j]
            elif params is NO_PARAMS:  # most records: a call without ** is cheaper
                c = rules[j](g, out, *vals)
            else:
                c = rules[j](g, out, *vals, **params)
            if c is None:
                continue
            x = vals[j]
            if c.shape != x.shape:
                c = _to_shape(c, x.shape)
            if c.dtype is not x.dtype and c.dtype != x.dtype:
                c = astype(c, dtype=x.dtype)
            if check is not None:
                check(c, g, record)
            prev = cts[s]
            cts[s] = c if prev is None else prev + c
        if joint:  # hold nothing a pullback returned: then a later pullback may find its
            pulled = c = None  # cotangent held by the sweep alone and reuse it (inplace.py)
    return cts
