"""Batching: running a function once on a whole batch of examples (dp.vmap).

Owns: `BatchTrace` and `BatchTracer`. A batch tracer holds every example of a value in one
array, batch axis first; to the user's code (and to every trace above) it is one example,
of shape `value.shape[1:]`. Each primitive applied to batch tracers runs its batching rule
(`Primitive.defbatch`) once on the whole batch: arrays not batched by this trace are shared
by every example. A primitive without a rule runs once per example and the results are
stacked (`install_fallback`: the loop is written with diffprog.numpy's ops, a layer above).
Python control flow on a batched value cannot pick one branch for all examples: bool(x),
int(x), float(x), x.item() and np.asarray(x) raise `BatchedControlFlowError`. Also the
helpers of the rules that need no ops: `ndim`, `example_ndim`, `every`, `shifted`;
`all_examples`, `anywhere` and `everywhere`, for library code that checks a whole stack; and
`per_example`, for library code that draws random numbers as a loop over the examples would.
Layer L3: imports L0-L2.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..backend import namespace_of, register_wrapper
from ..core.edge import broadcast_to
from ..core.primitive import IndexedPrimitive
from ..core.trace import (
    Trace, Tracer, calling_instruction, raw, unwrapped, user_line, visible_traces,
)  # fmt: skip
from ..errors import BatchedControlFlowError


class BatchTracer(Tracer):
    """One example of a batch: `value` holds all of them along axis 0 (a raw array, or a
    tracer of an outer trace)."""

    __slots__ = ()
    opaque = True  # raw() stops here (rebuilt on the raw examples): to the traces above
    batched = True  # this is an array of one example's shape

    def __init__(self, trace: BatchTrace, value: Any) -> None:
        self._trace = trace
        self.value = value

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.value.shape[1:])

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def example(self) -> Any:
        """One example's raw array (its type, dtype and shape; not its values)."""
        whole = unwrapped(self.value)
        if isinstance(whole, np.ndarray):  # (the common case, first)
            return whole[0] if len(whole) else np.empty_like(whole, shape=whole.shape[1:])
        with whole.device:  # a CuPy batch, perhaps on another GPU than the current one
            if len(whole):
                return whole[0]
            return namespace_of((whole,)).empty_like(whole, shape=whole.shape[1:])  # new, empty

    def stripped(self) -> BatchTracer:
        """This batch with every differentiating tracer layer below it removed (`raw`)."""
        value = raw(self.value)
        return self if value is self.value else BatchTracer(self._trace, value)

    # A batched value differs between examples: Python cannot branch on it.
    def __bool__(self) -> bool:
        raise control_flow_error(self, "bool(x) (an `if`, `while`, `and`, `or` on x)")

    def __int__(self) -> int:
        raise control_flow_error(self, "int(x)")

    def __index__(self) -> int:
        raise control_flow_error(self, "using x as an index or a size")

    def __float__(self) -> float:
        if calling_instruction() == "STORE_SUBSCR":  # a[i] = v, `a` a plain NumPy array
            raise store_error(self)
        raise control_flow_error(self, "float(x)")

    def item(self, *args: Any) -> Any:
        raise control_flow_error(self, "x.item()")

    def tolist(self) -> Any:
        raise control_flow_error(self, "x.tolist()")

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        if calling_instruction() == "BINARY_SUBSCR":  # a[i], `a` a plain NumPy array
            raise BatchedControlFlowError(
                f"a plain NumPy array indexed by a value batched by {self._trace.origin} (shape "
                f"{self.shape}, dtype {self.dtype}), at {user_line()}: NumPy's indexing cannot "
                "see the examples: write dnp.take(a, i, axis=0)"
            )
        if calling_instruction() == "STORE_SUBSCR":  # a[i] = v, `a` a plain NumPy array
            raise store_error(self)
        raise control_flow_error(self, "np.asarray(x) (a NumPy function without a diffprog one)")

    def __format__(self, spec: str) -> str:
        return format(raw(self.value), spec)

    def __repr__(self) -> str:
        return f"BatchTracer({raw(self.value)!r}, trace={self._trace!r})"


register_wrapper(BatchTracer, lambda b: b.example)


def store_error(x: BatchTracer) -> BatchedControlFlowError:
    """The error for `a[i] = v` with `a` a plain NumPy array and `i` or `v` batched. Marked
    like the reverse trace's (core.trace.numpy_store_cause): NumPy wraps it in "setting an
    array element with a sequence" when `v` is a scalar, and dp.vmap raises it unwrapped."""
    err = BatchedControlFlowError(
        f"a plain NumPy array written at an index, or with a value, batched by "
        f"{x._trace.origin} (shape {x.shape}, dtype {x.dtype}), at {user_line()}: "
        "NumPy's array cannot hold one result per example. Allocate it inside the "
        "function with dnp.zeros(shape) (one array per example under dp.vmap; copy "
        "shared values in with a[...] = values) and write into that"
    )
    err._diffprog_store = True  # type: ignore[attr-defined]
    return err


def control_flow_error(x: BatchTracer, what: str) -> BatchedControlFlowError:
    return BatchedControlFlowError(
        f"{what} needs one value, but under {x._trace.origin} x (shape {x.shape}, dtype "
        f"{x.dtype}) holds {x._trace.size} examples that may differ, at {user_line()}. "
        "Python control flow cannot take one branch for all examples: compute both branches "
        "and select per example with dnp.where(condition, a, b) (dnp.maximum, dnp.clip for "
        "bounds), or make the value the same for every example (in_axes=None)"
    )


class BatchTrace(Trace):
    """Runs every primitive applied to its tracers once on the whole batch of `size`."""

    __slots__ = ("size",)
    #: the rule of a primitive without its own (installed by diffprog.numpy's batching rules)
    fallback: Any = None

    def __init__(self, level: int, origin: str, size: int) -> None:
        super().__init__(level, origin)
        self.size = size

    def process(self, prim: Any, args: tuple, params: dict) -> Any:
        if not self.alive:
            raise self.escaped_error()
        vals, batched = [], []
        for a in args:
            own = type(a) is BatchTracer and a._trace is self
            vals.append(a.value if own else a)
            batched.append(own)
        rule = prim.batch
        if params and _holds(params.values(), self):  # a batched index array, a mask
            params = {k: _marked(p, self) for k, p in params.items()}
            if not isinstance(prim, IndexedPrimitive):  # (their rules take Batched params)
                rule = None
        if rule is None:
            out = BatchTrace.fallback(prim, self.size, tuple(batched), *vals, **params)
        else:
            out = rule(self.size, tuple(batched), *vals, **params)
        if prim.multiple_results:
            return tuple(BatchTracer(self, o) for o in out)
        return BatchTracer(self, out)


class Batched:
    """A static param's array (an index array, a mask) that holds the batch along axis 0:
    what the rules of IndexedPrimitives, and the loop, get for a tracer of their trace."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def _holds(values: Any, trace: BatchTrace) -> bool:
    """Whether a tracer of `trace` is among `values` (or in the tuples and lists there)."""
    for v in values:
        if type(v) in (tuple, list):
            if _holds(v, trace):
                return True
        elif type(v) is BatchTracer and v._trace is trace:
            return True
    return False


def _marked(p: Any, trace: BatchTrace) -> Any:
    """The param `p` with each tracer of `trace` in it replaced by `Batched(its batch)`."""
    if type(p) in (tuple, list):
        return type(p)(_marked(q, trace) for q in p)
    return Batched(p.value) if type(p) is BatchTracer and p._trace is trace else p


def ndim(v: Any) -> int:
    """The number of axes of `v` (0 for a Python number)."""
    return len(getattr(v, "shape", ()))


def example_ndim(v: Any, batched: bool) -> int:
    """The number of axes of one example of `v`."""
    return ndim(v) - 1 if batched else ndim(v)


def every(v: Any, batched: bool, size: int) -> Any:
    """`v` as a batch: an unbatched `v` repeated for each of `size` examples (a broadcast
    view)."""
    if batched:
        return v
    return broadcast_to(v, shape=(size,) + tuple(getattr(v, "shape", ())))


def shifted(axis: Any, rank: int) -> Any:
    """The axis (an int, a tuple of them, or None = all of one example's `rank` axes) of an
    example as an axis of the batch: negative axes count from the end and stay."""
    if axis is None:
        return tuple(range(1, rank + 1))
    if isinstance(axis, (tuple, list)):
        return tuple(shifted(a, rank) for a in axis)
    return axis + 1 if axis >= 0 else axis


def all_examples(x: Any) -> Any:
    """`x` without its dp.vmap batch layers: the values of every example at once, for
    library code that checks or reads a whole stack (other tracers stay: under dp.jit the
    read is still a guard)."""
    while isinstance(x, Tracer) and x.batched:
        x = x.value
    return x


def anywhere(mask: Any) -> bool:
    """Whether the boolean `mask` is true anywhere, in any example of any batch holding it:
    for library code that checks a whole stack at once (a fast path exact either way, an
    error), where one example's truth cannot steer Python."""
    return bool(all_examples(mask).any())


def everywhere(mask: Any) -> bool:
    """Whether the boolean `mask` is true everywhere, in every example (see `anywhere`)."""
    return bool(all_examples(mask).all())


def on_batches(fn: Any, x: Any) -> Any:
    """`fn(array, lead)` on the raw array under the dp.vmap batches of the raw value `x`
    (`lead` batch axes in front: 0 outside dp.vmap), each of its results made the same
    batches: for library code that computes on raw values with NumPy's own functions (a
    permutation, an index), which cannot see the examples."""
    traces = []
    while isinstance(x, Tracer) and x.batched:
        traces.append(x._trace)
        x = x.value
    out = fn(x, len(traces))
    for trace in reversed(traces):
        out = tuple(BatchTracer(trace, o) for o in out)
    return out


def per_example(draw: Any, shape: tuple[int, ...]) -> Any:
    """`draw(shape)` for each example of every dp.vmap the caller runs in, as a loop over the
    examples would draw, in its order (the outermost vmap's examples first): one call
    `draw(sizes + shape)`, its result made those batches. For library code that draws random
    numbers (a dropout mask), which would otherwise draw once for the whole batch; outside
    dp.vmap, `draw(shape)`."""
    traces = [t for t in visible_traces() if type(t) is BatchTrace]
    out = draw(tuple(t.size for t in traces) + tuple(shape))
    for trace in traces:
        out = BatchTracer(trace, out)
    return out


def install_fallback(rule: Any) -> None:
    """Set the rule of primitives without their own: `rule(prim, size, batched, *arrays,
    **static)` (static params may hold `Batched` arrays)."""
    BatchTrace.fallback = rule
