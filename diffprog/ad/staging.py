"""Staging: running a program once, eagerly, while recording it as a graph (for dp.jit).

Owns: `StagingTrace`, which computes every primitive applied to its tracers on the real data
(so Python control flow sees real values) and appends one `Node` to a graph per primitive,
and `StagingTracer`, a value of that graph. Each time Python reads a concrete value out of a
staged one (`bool(x)` behind an `if`, `int(x)` behind a loop bound, `float(x)`, `x.item()`,
`np.asarray(x)`), the read is recorded as a `Guard`: the replay checks it and gives up when
the program would go another way. So is a shape the data decides (a boolean mask's
selection, nonzero's indices): the graph's later nodes were recorded for that shape.
Code that does something a replay would not do again (dp.load reading a file, dp.save
writing one, a collective of dp.distributed) says so with `note_side_effect`, and dp.jit then
keeps no recording; such code takes the real values of staged ones (`concrete`).

A staging trace is always the outermost trace: dp.jit inside another transform runs its
function inline. So to every trace above it a staged value is what a raw array is to them
(`raw` stops at it, `StagingTracer.opaque`), and whatever they compute from raw values
(derivative rules, masks, index arrays, optimizer updates) is recorded too. Comparisons and
every non-differentiable primitive are staged (NonDifferentiable routes them here), so no
value computed from the inputs leaves the graph as a constant. Static params that hold
staged values (an index tuple with a staged index array) are recorded with their variables.
Layer L3: imports L0-L2 and compile.ir.
"""

from __future__ import annotations

import itertools
import operator
from typing import Any

import numpy as np

from .. import tree
from ..backend import host_copy, register_staged, register_wrapper, run_kernel
from ..compile.ir import Const, Guard, Node, Var, substitute
from ..core.primitive import NonDifferentiable
from ..core.trace import Trace, Tracer, as_scalar, innermost_trace, outermost_trace, user_line
from . import reverse


class StagingTracer(Tracer):
    """A value of the graph being recorded: `value` is the real array, `var` its variable."""

    __slots__ = ("var",)
    opaque = True  # raw() stops here: to the traces above, this is the array

    def __init__(self, trace: StagingTrace, value: Any, var: Var) -> None:
        self._trace = trace
        self.value = value
        self.var = var

    @property
    def size(self) -> int:
        return as_scalar(self.value).size

    # Concrete reads: each is a guard of the recorded path.
    def __bool__(self) -> bool:
        return self._trace.read(self, "bool", bool(self.value))

    def __int__(self) -> int:
        return self._trace.read(self, "int", int(self.value))

    def __index__(self) -> int:
        return self._trace.read(self, "index", operator.index(self.value))

    def __float__(self) -> float:
        return self._trace.read(self, "float", float(self.value))

    def item(self, *args: Any) -> Any:
        value = self.value.item(*args) if not args and hasattr(self.value, "item") else None
        if value is None:
            return self._trace.read(self, "value", host_copy(self.value)).item(*args)
        how = "bool" if type(value) is bool else "int" if type(value) is int else "float"
        return self._trace.read(self, how, value)

    def tolist(self) -> Any:
        return self._trace.read(self, "value", host_copy(self.value)).tolist()

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        value = self._trace.read(self, "value", host_copy(self.value))
        return value if dtype is None else value.astype(dtype)

    # Printing is not a read of the path: it shows the recording's value (as jax.jit does).
    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __repr__(self) -> str:
        return f"StagingTracer({self.value!r}, {self.var!r})"


register_wrapper(StagingTracer, lambda s: s.value)
register_staged(StagingTracer)

#: A copy of a constant array, made at every replay: an array allocated inside the program
#: (dnp.zeros under dp.jit), which a replay must not share between calls
_fresh = NonDifferentiable("fresh_copy", lambda xp, x: x.copy())


def fresh_copy(x: Any) -> StagingTracer:
    """The constant array `x` as a staged value of the innermost (staging) trace, copied
    anew at every replay."""
    trace = innermost_trace()
    assert isinstance(trace, StagingTrace)
    return trace.process(_fresh, (x,), {})


# --- Python's operators on staged values ---------------------------------------------------
#: A Python operator applied to values as the eager program applies it: on arrays it is the
#: ufunc, on NumPy scalars NumPy's scalar arithmetic, on Python floats Python's (a Python
#: float stays one), so a replay gives the eager result bit for bit.
apply_operator = NonDifferentiable("operator", lambda xp, *operands, op: getattr(operator, op)(*operands))
_BINARY = ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and_", "or_",
           "xor", "lshift", "rshift")  # fmt: skip
_COMPARISONS = ("lt", "le", "gt", "ge", "eq", "ne")
_UNARY = ("neg", "pos", "abs", "invert")


def operator_methods(fallback: dict[str, Any]) -> dict[str, Any]:
    """The operator methods of a staged value: each records the Python operator itself,
    unless an operand is a differentiating tracer or a dp.vmap batch, which `fallback[name]`
    (the tracer's own method, a diffprog primitive) hands to its trace (a batch: its rule). In-place operators on arrays rebind
    (`fallback`); on Python and NumPy scalars `x += y` is `x = x + y`, as in Python."""
    methods: dict[str, Any] = {}
    for op in _BINARY + _COMPARISONS:
        name = op.rstrip("_")
        methods[f"__{name}__"] = _binary(op, fallback.get(f"__{name}__"), swap=False)
        if op not in _COMPARISONS:
            methods[f"__r{name}__"] = _binary(op, fallback.get(f"__r{name}__"), swap=True)
            methods[f"__i{name}__"] = _in_place(methods[f"__{name}__"], fallback.get(f"__i{name}__"))
    for op in _UNARY:
        methods[f"__{op}__"] = lambda self, op=op: apply_operator(self, op=op)
    return methods


def _binary(op: str, fallback: Any, swap: bool) -> Any:
    def method(self: StagingTracer, other: Any) -> Any:
        if isinstance(other, Tracer) and (not other.opaque or other.batched):
            if fallback is None:
                return NotImplemented
            return fallback(self, other)
        return apply_operator(other, self, op=op) if swap else apply_operator(self, other, op=op)

    return method


def _in_place(binary: Any, fallback: Any) -> Any:
    def method(self: StagingTracer, other: Any) -> Any:
        if fallback is not None and type(self.value) is not float and not isinstance(self.value, np.generic):
            return fallback(self, other)  # an array: updated in place, as in NumPy
        return binary(self, other)

    return method


class StagingTrace(Trace):
    """Records a program as a graph: `inputs`, then `body` (nodes and guards, in order)."""

    __slots__ = ("inputs", "body", "ids", "frames", "side_effects")

    def __init__(self, level: int, origin: str) -> None:
        super().__init__(level, origin)
        self.inputs: list[Var] = []
        self.body: list[Any] = []
        self.ids = itertools.count()
        #: what the program did besides computing (see `note_side_effect`): a replay would not
        self.side_effects: list[str] = []

    def new_input(self, value: Any) -> StagingTracer:
        var = Var(next(self.ids), value)
        self.inputs.append(var)
        return StagingTracer(self, value, var)

    def process(self, prim: Any, args: tuple, params: dict) -> Any:
        if not self.alive:
            raise self.escaped_error()
        vals, refs = [], []
        for a in args:
            if type(a) is StagingTracer:
                self.check_own(a)
                vals.append(a.value)
                refs.append(a.var)
            elif isinstance(a, Tracer):
                raise a._trace.escaped_error()
            else:
                vals.append(a)
                refs.append(Const(a))
        recorded = params
        if params and _holds_staged(params):
            recorded = {k: substitute(v, self.var_of, StagingTracer) for k, v in params.items()}
            params = {k: substitute(v, self.value_of, StagingTracer) for k, v in params.items()}
        out = prim.run(vals, params)
        outs = [self.wrap(o) for o in out] if prim.multiple_results else [self.wrap(out)]
        self.record(prim, recorded, refs, [o.var for o in outs])
        if prim.name == "nonzero" or (prim.name == "getitem" and _selects_by_mask(recorded)):
            for o in outs:  # a shape read off the data: the replay checks it (see Guard)
                self.body.append(Guard(o.var, "shape", o.var.shape, user_line(code=False)))
        return tuple(outs) if prim.multiple_results else outs[0]

    def wrap(self, value: Any) -> StagingTracer:
        return StagingTracer(self, value, Var(next(self.ids), value))

    def record(self, prim: Any, params: dict, refs: list, outs: list[Var]) -> None:
        self.body.append(Node(prim, params, refs, outs, user_line(code=False), reverse.sweeping()))

    def read(self, x: StagingTracer, how: str, value: Any) -> Any:
        """Python read `value` out of `x`: a guard of the path (returns `value`)."""
        self.check_own(x)
        self.body.append(Guard(x.var, how, value, user_line(code=False)))
        return value

    def check_own(self, x: StagingTracer) -> None:
        if x._trace is not self or not self.alive:
            raise x._trace.escaped_error()

    def var_of(self, x: StagingTracer) -> Var:
        self.check_own(x)
        return x.var

    @staticmethod
    def value_of(x: StagingTracer) -> Any:
        return x.value


def note_side_effect(what: str) -> bool:
    """Tell the dp.jit recording in progress, if any, that the program calls `what` (which
    reads or writes a file, communicates, ...): something a replay of straight-line array
    operations would not do again, so the recording is not kept (its signature runs
    eagerly). Whether a recording is in progress (outside dp.jit, a no-op: False)."""
    trace = outermost_trace()
    if isinstance(trace, StagingTrace):
        trace.side_effects.append(what)
        return True
    return False


def concrete(x: Any) -> Any:
    """`x`'s real value if it is a value the dp.jit recording in progress stages, else `x`:
    for code that has noted a side effect (the recording is not kept, so no read of it need
    be guarded)."""
    return x.value if type(x) is StagingTracer and x._trace.alive else x


def _selects_by_mask(params: dict) -> bool:
    """Whether a getitem's index holds a staged boolean mask: its result's shape is the
    mask's count of True, a property of the data."""
    index = params.get("index")
    parts = index if type(index) is tuple else (index,)
    return any(type(i) is Var and i.dtype == np.bool_ for i in parts)


def _holds_staged(params: dict) -> bool:
    return any(_staged_inside(v) for v in params.values())


def _staged_inside(value: Any) -> bool:
    t = type(value)
    if t is StagingTracer:
        return True
    if t is tuple or t is list:
        return any(_staged_inside(v) for v in value)
    if t is slice:
        return _staged_inside((value.start, value.stop, value.step))
    if t is dict:
        return any(_staged_inside(v) for v in value.values())
    return False


# --- NumPy's own functions on staged values ------------------------------------------------
def _numpy_impl(xp: Any, *arrays: Any, function: str, method: str, treedef: Any, leaves: tuple,
                slots: tuple) -> tuple:  # fmt: skip
    """Call NumPy's (CuPy's) `function` (a dotted name; `method` of a ufunc) on the call's
    arguments rebuilt from the constant `leaves` with `arrays` put back at `slots`; the
    results as a tuple of arrays (a Python number becomes a 0-d array)."""
    return tuple(o if hasattr(o, "dtype") else np.asarray(o)
                 for o in _results(_numpy_call_once(xp, arrays, function, method, treedef,
                                                    leaves, slots)))  # fmt: skip


def _numpy_call_once(xp: Any, arrays: Any, function: str, method: str, treedef: Any,
                     leaves: tuple, slots: tuple) -> Any:  # fmt: skip
    filled = list(leaves)
    for slot, a in zip(slots, arrays):
        filled[slot] = a
    args, kwargs = tree.unflatten(treedef, filled)
    fn = xp
    for part in function.split("."):
        fn = getattr(fn, part)
    if method != "__call__":
        fn = getattr(fn, method)
    return fn(*args, **kwargs)


def _results(out: Any) -> tuple:
    return tuple(out) if isinstance(out, (tuple, list)) else (out,)


_numpy_call = NonDifferentiable("numpy", _numpy_impl, multiple_results=True)


def stage_numpy_call(function: str, method: str, args: tuple, kwargs: dict) -> Any:
    """`numpy.<function>[.<method>](*args, **kwargs)` on staged values (and constants),
    recorded as one node that makes the same call at replay.

    For code that computes on raw values (the masks and index arithmetic of derivative
    rules): under dp.jit those values are staged, and replaying the very NumPy call the
    eager program makes gives its result. A Python number in the result (the
    bool of np.array_equal) is a concrete read: a guard.
    """
    leaves, treedef = tree.flatten((args, kwargs))
    slots = tuple(i for i, leaf in enumerate(leaves) if type(leaf) is StagingTracer)
    staged = [leaves[i] for i in slots]
    trace = staged[0]._trace
    for a in staged:
        trace.check_own(a)
    params = {"function": function, "method": method, "treedef": treedef,
              "leaves": tuple(None if i in slots else v for i, v in enumerate(leaves)),
              "slots": slots}  # fmt: skip
    values = [a.value for a in staged]
    out = run_kernel(lambda xp, *arrays: _numpy_call_once(xp, arrays, **params), values, {})
    results = _results(out)
    outs = [trace.wrap(o if hasattr(o, "dtype") else np.asarray(o)) for o in results]
    trace.record(_numpy_call, params, [a.var for a in staged], [o.var for o in outs])
    final = []
    for o, r in zip(outs, results):
        if hasattr(r, "dtype"):
            final.append(o)
        else:
            how = {bool: "bool", int: "int", float: "float"}.get(type(r), "value")
            trace.read(o, how, r if how != "value" else o.value)
            final.append(r)
    return type(out)(final) if isinstance(out, (tuple, list)) else final[0]
