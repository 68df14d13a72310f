"""Primitives and `bind`: the one door every operation on arrays goes through.

Owns: `Primitive` (a name, an implementation on raw arrays through `xp`, one VJP rule and
one JVP rule per positional input, one batching rule for dp.vmap), `JointPrimitive` (rules
over all inputs at once, for primitives of many inputs), `NonDifferentiable` (primitives
whose results are constants: comparisons, argmax...), and `bind`, which is
`Primitive.__call__`: with no tracer among the arguments it runs the kernel; otherwise it
hands the call to the highest-level trace among them, which records it and re-enters `bind`
one level down.
Also the errors of that door: a kernel's error re-raised naming the primitive and its
operands (`raise_named`), a keyword argument diffprog does not implement (`keyword_error`).
Layer L2: imports L0/L1 and core.trace.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NoReturn

import numpy
from numpy import ndarray

from ..backend import run_kernel
from ..errors import UnsupportedKeywordError
from .trace import Tracer, raw, top_trace, tracing

Rule = Callable[..., Any]

#: The errors of a kernel that are re-raised with the primitive and its operands named.
KERNEL_ERRORS = (ValueError, TypeError, IndexError)

#: NumPy's scalar types (a reduction's result, the cotangents derived from it)
NUMPY_SCALAR_TYPES = frozenset(t for t in numpy.sctypeDict.values() if issubclass(t, numpy.generic))
#: The types of argument whose kernels run on NumPy without asking the backend: host arrays,
#: NumPy's scalars and Python numbers
HOST_TYPES = frozenset({ndarray, float, int, bool, complex}) | NUMPY_SCALAR_TYPES


class Primitive:
    """An operation with a kernel and derivative rules, declared once.

    - `impl(xp, *arrays, **static)` computes on raw arrays (`xp` is numpy or cupy).
    - `vjps[i](g, ans, *arrays, **static)` is the cotangent of input i (None = zero),
      written in diffprog ops so that it can itself be traced (graph extension).
    - `jvps[i](t, ans, *arrays, **static)` is the output tangent due to tangent t of input i.
    - `batch(size, batched, *arrays, **static)` is dp.vmap's rule (see `defbatch`).
    Arrays are positional, static parameters keyword-only. Broadcasting and dtype are undone
    on the edge by the reverse sweep, so rules may return cotangents of the broadcast shape.
    """

    __slots__ = ("name", "impl", "vjps", "jvps", "batch", "multiple_results")
    joint = False  # see JointNode
    indexed = False  # see IndexedPrimitive

    def __init__(self, name: str, impl: Callable[..., Any], *, multiple_results: bool = False):
        self.name = name
        self.impl = impl
        self.vjps: Any = _NoRules(name, "reverse-mode (VJP)")
        self.jvps: Any = _NoRules(name, "forward-mode (JVP)")
        self.batch: Rule | None = None  # None: dp.vmap loops over the examples
        self.multiple_results = multiple_results

    def defvjp(self, *rules: Rule | None) -> Primitive:
        """One rule per positional input; None marks an input with no derivative."""
        self.vjps = _rule_table(self.name, "reverse-mode (VJP)", rules)
        return self

    def defjvp(self, *rules: Rule | None) -> Primitive:
        self.jvps = _rule_table(self.name, "forward-mode (JVP)", rules)
        return self

    def defbatch(self, rule: Rule) -> Primitive:
        """dp.vmap's rule: `rule(size, batched, *arrays, **static)` gets the arrays one level
        down, `batched[i]` telling whether array i holds `size` examples along its axis 0
        (the others are shared by every example), and returns the result for every example,
        batch axis first (a tuple of them for a multi-output primitive)."""
        self.batch = rule
        return self

    def defvjp_variadic(self, rule: Callable[..., Any]) -> Primitive:
        """For primitives with any number of inputs: `rule(i, g, ans, *arrays, **static)`."""
        self.vjps = _Indexed(rule)
        return self

    def defjvp_variadic(self, rule: Callable[..., Any]) -> Primitive:
        self.jvps = _Indexed(rule)
        return self

    def __call__(self, *args: Any, **params: Any) -> Any:  # this is `bind`
        trace = None
        host = True  # are all arguments host values (then xp is NumPy)?
        for a in args:
            kind = type(a)
            if kind is ndarray or kind in HOST_TYPES:
                continue
            host = False
            if isinstance(a, Tracer) and (trace is None or a._trace.level > trace.level):
                trace = a._trace
        if trace is None:  # `run`, inlined: this is the hot path of every tape sweep
            try:
                if host:
                    return self.impl(numpy, *args, **params)
                return run_kernel(self.impl, args, params)
            except KERNEL_ERRORS as e:
                self.raise_named(e, args, params)
        return trace.process(self, args, params)

    def run(self, args: tuple | list, params: dict) -> Any:
        """Run the kernel on raw arrays, re-raising NumPy's errors with the operands named.
        (`__call__` inlines this body; dp.debug_nans swaps both.)"""
        try:
            return run_kernel(self.impl, args, params)
        except KERNEL_ERRORS as e:
            self.raise_named(e, args, params)

    def raise_named(self, e: Exception, args: tuple | list, params: dict) -> NoReturn:
        """Raise the kernel's error `e` again, its message naming this primitive (once, also
        when NumPy's own message starts with the name) and its operands; an error already
        named by an inner primitive passes unchanged. A keyword the kernel lacks is an
        UnsupportedKeywordError."""
        if getattr(e, "_diffprog_named", False):
            raise e
        keyword = keyword_error(self.name, self, params) if isinstance(e, TypeError) else None
        if keyword is not None:
            raise keyword from e
        message = str(e)
        if not message.startswith(f"{self.name}:"):
            message = f"{self.name}: {message}"
        err = _rebuilt(e, f"{message} ({describe_operands(args, params)})")
        err._diffprog_named = True  # type: ignore[attr-defined]
        raise err from e

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"


class JointPrimitive(Primitive):
    """A primitive of many inputs whose rules see all of them at once (concatenate).

    - `vjp(g, ans, *arrays, **static)` returns one cotangent per input (None = zero), all
      from one computation;
    - `jvp(tangents, ans, *arrays, **static)` gets every input's tangent (None = zero) and
      returns the output's.
    N inputs then cost O(N), where N one-input rules would each touch the whole output
    (O(N^2)). The reverse sweep calls `pullback`, as for a JointNode; forward mode is
    reached through `Trace.process_joint`. Both rules are written in diffprog ops.
    """

    __slots__ = ("vjp_all", "jvp_all")
    joint = True

    def __init__(self, name: str, impl: Callable[..., Any], *, vjp: Rule, jvp: Rule) -> None:
        super().__init__(name, impl)
        self.vjp_all, self.jvp_all = vjp, jvp

    def pullback(self, g: Any, out: Any, vals: list[Any], **params: Any) -> Any:
        return self.vjp_all(g, out, *vals, **params)

    def __call__(self, *args: Any, **params: Any) -> Any:
        trace = top_trace(args)
        if trace is None:
            return Primitive.__call__(self, *args, **params)  # (dp.debug_nans swaps it)
        return trace.process_joint(self, args, params)


class IndexedPrimitive(Primitive):
    """A primitive whose static params may hold index arrays computed from data (a gather's
    index, a scatter's, a permutation): under dp.jit they are staged values, and the staging
    trace records the call even when no operand is traced (a derivative rule scattering a
    constant cotangent by a staged index); under dp.vmap, batched values (each example's
    index), which the traces above pass down (`params_traced`)."""

    __slots__ = ()
    indexed = True

    def __call__(self, *args: Any, **params: Any) -> Any:
        if params and tracing():  # (no scan in a tape sweep)
            trace = _top_in(params.values())
            if trace is not None:  # the highest trace of all, as for operands (bind)
                top = top_trace(args)
                if top is None or trace.level > top.level:
                    return trace.process(self, args, params)
        return Primitive.__call__(self, *args, **params)


def params_traced(params: dict) -> bool:
    """Whether an IndexedPrimitive's params hold a tracer (an index batched by dp.vmap under
    a trace that differentiates a shared array: that trace must re-enter `bind` with it)."""
    return _top_in(params.values()) is not None


def _top_in(values: Any, top: Any = None) -> Any:
    """The highest trace of the tracers among `values` (in tuples and lists too), or `top`."""
    for v in values:
        kind = type(v)
        if kind is tuple or kind is list:
            top = _top_in(v, top)
        elif isinstance(v, Tracer) and (top is None or v._trace.level > top.level):
            top = v._trace
    return top


class JointNode:
    """A whole function call recorded as one tape node with its own pullback
    (custom_vjp, custom_jvp used in reverse mode, checkpoint).

    `pullback(g, out, vals)` gets the output cotangents (a tuple, None = zero) and returns
    one cotangent per input (None = zero), all at once.
    """

    __slots__ = ("name", "pullback")
    joint = True
    multiple_results = True

    def __init__(self, name: str, pullback: Callable[[tuple, tuple, list], Any]) -> None:
        self.name = name
        self.pullback = pullback

    def __repr__(self) -> str:
        return f"<call {self.name}>"


class NonDifferentiable(Primitive):
    """A primitive whose result is a constant (bool, int, or a derivative-free float).

    Its arguments are stripped of every differentiating tracer layer, nothing is recorded
    by those traces, and the result is a raw array at every level (under dp.jit, a staged
    value: the staging trace records it like any other primitive).
    """

    __slots__ = ()

    def __call__(self, *args: Any, **params: Any) -> Any:
        args = [raw(a) if isinstance(a, Tracer) else a for a in args]
        trace = top_trace(args)  # what is left is a value dp.jit stages: record it there
        return self.run(args, params) if trace is None else trace.process(self, args, params)


def _rebuilt(e: Exception, message: str) -> Exception:
    """An exception of e's class with `message`; when that class cannot be built from a
    message alone (NumPy's _UFuncNoLoopError wants a ufunc and dtypes), an exception of its
    nearest ancestor among KERNEL_ERRORS, which is what callers catch."""
    try:
        err = type(e)(message)
        if str(err) == message:
            return err
    except Exception:  # noqa: BLE001 - any constructor may refuse a lone message
        pass
    return next(c for c in type(e).__mro__ if c in KERNEL_ERRORS)(message)


def accepted_keywords(fn: Any) -> set[str] | None:
    """The keyword arguments `fn` takes (a Primitive: its static parameters); None if any."""
    try:
        sig = inspect.signature(fn.impl if isinstance(fn, Primitive) else fn)
    except (TypeError, ValueError):
        return None
    params = sig.parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    kinds = {inspect.Parameter.KEYWORD_ONLY}
    if not isinstance(fn, Primitive):  # a Primitive's other parameters are xp and the arrays
        kinds.add(inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return {p.name for p in params if p.kind in kinds}


def keyword_error(what: str, fn: Any, kwargs: dict) -> UnsupportedKeywordError | None:
    """The error for calling `fn` (named `what` to the user) with keywords it does not take,
    or None if it takes them all."""
    accepted = accepted_keywords(fn)
    if accepted is None or all(k in accepted for k in kwargs):
        return None
    return unsupported_keywords(what, [k for k in kwargs if k not in accepted], accepted)


def unsupported_keywords(what: str, unknown: list[str], accepted: Any) -> UnsupportedKeywordError:
    listed = ", ".join(f"{k}=" for k in unknown)
    known = ", ".join(f"{k}=" for k in sorted(accepted)) or "none"
    return UnsupportedKeywordError(
        f"{what} with {listed} is not supported: diffprog does not implement this keyword "
        f"argument of NumPy's (the keywords {what} takes in diffprog: {known}). Drop it, or "
        "write what it does with diffprog.numpy functions"
    )


def describe_operands(args: tuple, params: dict) -> str:
    parts = []
    for a in args:
        r = raw(a)
        if hasattr(r, "shape"):
            parts.append(f"shape {tuple(r.shape)} {r.dtype}")
        else:
            parts.append(type(r).__name__)
    text = "operands: " + ", ".join(parts)
    if params:
        text += "; " + ", ".join(f"{k}={v!r}" for k, v in params.items())
    return text


class _Indexed:
    """A variadic rule presented as a table: `table[i]` is the rule for input i."""

    __slots__ = ("rule",)

    def __init__(self, rule: Callable[..., Any]) -> None:
        self.rule = rule

    def __getitem__(self, i: int) -> Rule:
        rule = self.rule
        return lambda *a, **k: rule(i, *a, **k)


class _NoRules:
    """The rule table of a primitive that has none for this mode: a clear error on use."""

    __slots__ = ("name", "mode")

    def __init__(self, name: str, mode: str) -> None:
        self.name, self.mode = name, mode

    def __getitem__(self, i: int) -> Rule:
        raise NotImplementedError(f"{self.name} has no {self.mode} derivative rule yet")


def _rule_table(name: str, mode: str, rules: tuple) -> tuple:
    def missing(i: int) -> Rule:
        def rule(*a: Any, **k: Any) -> Any:
            raise TypeError(f"{name} is not differentiable with respect to argument {i} ({mode})")

        return rule

    return tuple(missing(i) if r is None else r for i, r in enumerate(rules))
