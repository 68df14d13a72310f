"""Batching: running a function once on a whole batch of examples (dp.vmap).

Owns: `BatchTrace` and `BatchTracer`. A batch tracer holds every example of a value in one
array, batch axis first; to the user's code (and to every trace above) it is one example,
of shape `value.shape[1:]`. Each primitive applied to batch tracers runs its batching rule
(`Primitive.defbatch`) once on the whole batch: arrays not batched by this trace are shared
by every example. A primitive without a rule runs once per example and the results are
stacked (`install_fallback`: the loop is written with diffprog.numpy's ops, a layer above).
Python control flow on a batched value cannot pick one branch for all examples: bool(x),
int(x), float(x), x.item() and np.asarray(x) raise `BatchedControlFlowError`.
Layer L3: imports L0-L2.
"""

from __future__ import annotations

import math
from typing import Any

from ..backend import register_wrapper
from ..core.trace import Trace, Tracer, raw, unwrapped, user_line
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
        return whole[0] if len(whole) else whole.reshape(whole.shape[1:] + (0,))[..., 0]

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
        raise control_flow_error(self, "float(x)")

    def item(self, *args: Any) -> Any:
        raise control_flow_error(self, "x.item()")

    def tolist(self) -> Any:
        raise control_flow_error(self, "x.tolist()")

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        raise control_flow_error(self, "np.asarray(x) (a NumPy function without a diffprog one)")

    def __format__(self, spec: str) -> str:
        return format(raw(self.value), spec)

    def __repr__(self) -> str:
        return f"BatchTracer({raw(self.value)!r}, trace={self._trace!r})"


register_wrapper(BatchTracer, lambda b: b.example)


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
        if rule is None or any(isinstance(v, Tracer) and v._trace is self for v in _flat(params)):
            rule = BatchTrace.fallback  # (a rule of its own never sees this trace's tracers)
            out = rule(self, prim, tuple(batched), *vals, **params)
        else:
            out = rule(self.size, tuple(batched), *vals, **params)
        if prim.multiple_results:
            return tuple(BatchTracer(self, o) for o in out)
        return BatchTracer(self, out)


def _flat(values: Any) -> list[Any]:
    """The values in `values` (a dict's values, tuples and lists in them, flattened)."""
    found = []
    for v in values.values() if isinstance(values, dict) else values:
        if type(v) in (tuple, list):
            found += _flat(v)
        else:
            found.append(v)
    return found


def install_fallback(rule: Any) -> None:
    """Set the rule of primitives without their own: `rule(trace, prim, batched, *arrays,
    **static)` (static parameters may hold the trace's tracers: a batched index array)."""
    BatchTrace.fallback = rule
