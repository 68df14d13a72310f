"""Forward mode: tracers that carry a tangent beside their value, one pass, no tape.

Owns: `JVPTrace` and `JVPTracer`. Each primitive applied to its tracers computes its value
one level down and the output tangent as the sum of the primitive's JVP rules over the
perturbed inputs (None is a symbolic zero: unperturbed inputs cost nothing). As in the
reverse sweep, a tangent is brought to the output's shape and dtype once, here, so no rule
repeats it. The rules are diffprog ops, so forward mode composes with every other trace.
Layer L3: imports L0-L2.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numpy import ndarray

from ..backend import host_scalars, on_device
from ..core.edge import astype, broadcast_to
from ..core.primitive import params_traced
from ..core.trace import Trace, Tracer, as_scalar


#: None, or a function (primitive, values, params, input tangents, output tangent(s)) called
#: on every output tangent the JVP rules compute; dp.debug_nans installs one.
check_tangent: Callable[[Any, list, dict, list, Any], None] | None = None


class JVPTracer(Tracer):
    """A traced value with its tangent; None is a symbolic zero (an input the caller did not
    perturb stays a tracer, so code behaves the same whichever inputs are perturbed)."""

    __slots__ = ("tangent",)

    def __init__(self, trace: JVPTrace, value: Any, tangent: Any) -> None:
        self._trace = trace
        self.value = value
        self.tangent = tangent


class JVPTrace(Trace):
    """Pushes tangents forward through every primitive applied to its tracers."""

    __slots__ = ()

    def lift(self, value: Any, tangent: Any) -> JVPTracer:
        return JVPTracer(self, value, tangent)

    def split(self, args: Any) -> tuple[list[Any], list[Any]]:
        """Values one level down and tangents (None = zero) of `args`."""
        if not self.alive:
            raise self.escaped_error()
        own = [isinstance(a, JVPTracer) and a._trace is self for a in args]
        return ([a.value if o else a for a, o in zip(args, own)],
                [a.tangent if o else None for a, o in zip(args, own)])  # fmt: skip

    def process(self, prim: Any, args: tuple, params: dict) -> Any:
        if not self.alive:
            raise self.escaped_error()
        vals = []
        tangents = []
        nested = False  # does a value one level down still hold an (outer) tracer?
        weak = False  # is a perturbed input a Python float (weakly typed, as NumPy treats it)?
        for a in args:
            if type(a) is JVPTracer and a._trace is self:
                v = a.value
                tangents.append(a.tangent)
                if type(v) is float:
                    weak = True
            else:
                v = a
                tangents.append(None)
            if isinstance(v, Tracer):
                nested = True
            vals.append(v)
        if nested or (prim.indexed and params_traced(params)):  # (an IndexedPrimitive's
            out = prim(*vals, **params)  # params may hold a value dp.vmap batches)
        else:
            out = prim.run(vals, params)
            if type(out) is not ndarray and on_device(vals):  # 0-d NumPy arrays as scalars,
                # as the rules' raw arithmetic must see them beside CuPy arrays
                vals, tangents = host_scalars(vals), host_scalars(tangents)
        if weak:  # the kernel saw the Python float; rules see a NumPy scalar (shape, dtype)
            vals = [as_scalar(v) for v in vals]
        rules = prim.jvps
        if prim.multiple_results:
            total: list[Any] = [None] * len(out)
            for j, t in enumerate(tangents):
                if t is not None:
                    for k, c in enumerate(rules[j](t, out, *vals, **params)):
                        total[k] = _accumulate(total[k], c)
            if check_tangent is not None:
                check_tangent(prim, vals, params, tangents, tuple(total))
            return tuple(self.wrap(o, t) for o, t in zip(out, total))
        t_out = None
        j = -1
        for t in tangents:  # (a counter and the sum inlined: this loop runs once per edge)
            j += 1
            if t is not None:
                c = rules[j](t, out, *vals, **params)
                if c is not None:
                    t_out = c if t_out is None else t_out + c
        if check_tangent is not None:
            check_tangent(prim, vals, params, tangents, t_out)
        return self.wrap(out, t_out)

    def process_joint(self, prim: Any, args: tuple, params: dict) -> Any:
        """A JointPrimitive: one call of its JVP rule with every input's tangent."""
        vals, tangents = self.split(args)
        if any(isinstance(v, Tracer) for v in vals):
            out = prim(*vals, **params)
        else:
            out = prim.run(vals, params)
        if all(t is None for t in tangents):
            return self.wrap(out, None)
        vals = [as_scalar(v) for v in vals]
        t_out = prim.jvp_all(tangents, out, *vals, **params)
        if check_tangent is not None:
            check_tangent(prim, vals, params, tangents, t_out)
        return self.wrap(out, t_out)

    def wrap(self, value: Any, tangent: Any) -> Any:
        if tangent is None:  # a symbolic zero: nothing to broadcast or cast
            return JVPTracer(self, value, None)
        like = as_scalar(value) if type(value) is float else value
        if tangent.shape != like.shape:
            tangent = broadcast_to(tangent, shape=like.shape)
        if tangent.dtype != like.dtype:
            tangent = astype(tangent, dtype=like.dtype)
        return JVPTracer(self, value, tangent)


def _accumulate(total: Any, c: Any) -> Any:
    if c is None:
        return total
    return c if total is None else total + c
