"""User-defined derivative rules and rematerialisation: custom_vjp, custom_jvp, checkpoint.

Owns: functions whose call is recorded as one node of the innermost differentiating trace,
with a pullback supplied by the user (`custom_vjp`), derived from the user's JVP rule by
transposing it (`custom_jvp` in reverse mode: the VJP is the reverse-mode derivative of the
rule's tangent output with respect to the tangents, which is linear), or computed by
re-running the function (`checkpoint`, whose intermediates are therefore not stored).
Outer traces see the function's own operations (fwd, the rule, the recomputation), so every
one of these composes with higher order, as in JAX. Conventions are JAX's.
Layer L5: imports L0-L4 and transforms.core.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .. import tree
from .. import numpy as dnp
from ..ad.batching import BatchTracer
from ..ad.forward import JVPTrace
from ..ad.reverse import ReverseTrace, is_floating
from ..backend import zeros_like
from ..core.edge import astype
from ..core.primitive import JointNode
from ..core.trace import Tracer, differentiating_trace, hidden, raw, top_trace, unwrapped
from ..errors import BatchedControlFlowError, StructureError
from .core import _direction_like, _name, vjp
from .random_streams import draw_state, generators_of, set_draw_state
from .vmap import vmap


class _Custom:
    """What custom_vjp and custom_jvp share: the function, nondiff_argnums, and the split of
    a call's arguments into differentiated leaves and the rest."""

    def __init__(self, fun: Callable[..., Any], nondiff_argnums: Sequence[int] = ()) -> None:
        functools.update_wrapper(self, fun)
        if "__name__" not in vars(self):  # a functools.partial, a callable object: errors name
            self.__name__ = _name(fun)  # it (they raised AttributeError instead)
        self.fun = fun
        self.nondiff_argnums = tuple(nondiff_argnums)
        self.batched_argnums: tuple[int, ...] = ()  # (over a batch: the nondiff ones batched)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs:  # the rules take arguments by position
            args = _by_position(self.fun, self.__name__, args, kwargs)
        with self._noted([args[i] for i in self.nondiff_argnums if i < len(args)]):
            return self._call(*args)

    def _call(self, *args: Any) -> Any:
        raise NotImplementedError

    def _noted(self, nondiff: list[Any]) -> contextlib.AbstractContextManager:
        """Where nondiff arguments hold each example's own value (dp.vmap), a context that
        names them in the error of a rule branching on one."""
        batched = [i for i, a in zip(self.nondiff_argnums, nondiff)
                   if any(isinstance(x, Tracer) and x.batched for x in tree.leaves(a))]  # fmt: skip
        batched = batched or list(self.batched_argnums)
        return _named_in_errors(self.__name__, batched) if batched else contextlib.nullcontext()

    def _split(self, args: tuple) -> tuple[list[Any], list[int], list[Any], Any]:
        nondiff = [args[i] for i in self.nondiff_argnums]
        for i, a in zip(self.nondiff_argnums, nondiff):  # (one batched by dp.vmap alone is data)
            if any(isinstance(x, Tracer) and not (x.batched and raw(x) is x) for x in tree.leaves(a)):
                raise TypeError(
                    f"{self.__name__}: argument {i} is listed in nondiff_argnums but holds a "
                    "traced value, whose derivative would be lost; remove it from "
                    "nondiff_argnums or pass dp.stop_gradient(value)"
                )
        diff_idx = [i for i in range(len(args)) if i not in self.nondiff_argnums]
        leaves, treedef = tree.flatten(tuple(args[i] for i in diff_idx))
        return nondiff, diff_idx, leaves, treedef

    def _split_axes(self, axes: tuple) -> tuple[tuple, tuple]:
        """The in_axes of the nondiff arguments (a batched one: each example's own value,
        which the rules then see batched), and of the differentiable ones."""
        return (tuple(axes[i] for i in self.nondiff_argnums),
                tuple(a for i, a in enumerate(axes) if i not in self.nondiff_argnums))  # fmt: skip

    @staticmethod
    def _merge(args: tuple, diff_idx: list[int], diff_args: tuple) -> tuple:
        full = list(args)
        for i, a in zip(diff_idx, diff_args):
            full[i] = a
        return tuple(full)


class custom_vjp(_Custom):
    """A function with a user-defined reverse-mode rule, JAX's conventions.

    >>> import diffprog as dp, diffprog.numpy as dnp
    >>> @dp.custom_vjp
    ... def clip_gradient(x):
    ...     return x
    >>> clip_gradient.defvjp(lambda x: (x, None), lambda res, g: (dnp.clip(g, -1.0, 1.0),))
    >>> dp.grad(lambda x: 5.0 * clip_gradient(x))(2.0)
    1.0

    `fwd(*args) -> (out, residuals)`; `bwd(*nondiff_args, residuals, g) -> tuple` with one
    adjoint per differentiable argument, each with that argument's structure (None = zero).
    """

    def __init__(self, fun: Callable[..., Any], nondiff_argnums: Sequence[int] = ()) -> None:
        super().__init__(fun, nondiff_argnums)
        self.fwd: Callable[..., Any] | None = None
        self.bwd: Callable[..., Any] | None = None

    def defvjp(self, fwd: Callable[..., Any], bwd: Callable[..., Any]) -> None:
        self.fwd, self.bwd = fwd, bwd

    def _call(self, *args: Any) -> Any:
        if self.fwd is None or self.bwd is None:
            raise TypeError(f"{self.__name__} has no VJP rule: call .defvjp(fwd, bwd) first")
        nondiff, diff_idx, leaves, treedef = self._split(args)
        trace = differentiating_trace(leaves)
        batched = _through_batch(args, leaves, trace, self._batched)
        if batched is not None:
            return batched
        if trace is None:
            return self.fun(*args)
        if isinstance(trace, JVPTrace):
            raise TypeError(
                f"{self.__name__} is a dp.custom_vjp function, which has no forward-mode rule, "
                f"so forward mode cannot differentiate it (here under {trace.origin}; dp.jvp, "
                "dp.jacfwd, dp.hessian and dp.hvp all take f's forward-mode derivative). Define "
                "it with dp.custom_jvp (f.defjvp(rule)) instead; its rule serves reverse mode too"
            )
        saved: dict[str, Any] = {}

        def run(vals: list[Any]) -> list[Any]:
            out, saved["res"] = self.fwd(*self._merge(args, diff_idx, tree.unflatten(treedef, vals)))
            out_leaves, saved["out_def"] = tree.flatten(out)
            return out_leaves

        def pullback(g: tuple, out: tuple, vals: list[Any]) -> list[Any]:
            with self._noted(nondiff):
                cts = self.bwd(*nondiff, saved["res"], tree.unflatten(saved["out_def"], _zeros_for(g, out)))
            primals = tree.unflatten(treedef, vals)
            return _as_cotangents(_checked_adjoints(self.__name__, "bwd", cts, primals, diff_idx,
                                                    weak), vals)

        weak = [w is float for w in _python_number_types(leaves)]  # Python floats (staged too)

        outs = trace.record_call(JointNode(self.__name__, pullback), leaves, run)
        return tree.unflatten(saved["out_def"], outs)

    def _batched(self, axes: tuple) -> custom_vjp:
        """This function over a batch (`axes`: each argument's in_axes), its rules too; an
        argument shared by every example gets the sum of their adjoints."""
        assert self.fwd is not None and self.bwd is not None
        fwd, bwd = self.fwd, self.bwd
        nondiff_axes, diff_axes = self._split_axes(axes)
        batched = custom_vjp(vmap(self.fun, in_axes=axes), self.nondiff_argnums)
        batched.batched_argnums = _batched_argnums(self.nondiff_argnums, nondiff_axes)

        res_def: list[Any] = []  # the residuals' structure, known once fwd has run

        def fwd_split(*args: Any) -> tuple:
            """fwd, its Python-number residuals (staged too: never batched, so shared by every
            example) kept apart: vmap would stack them into float64 arrays, and bwd's
            `b * x32` would be float64."""
            out, res = fwd(*args)
            leaves, treedef = tree.flatten(res)
            res_def[:] = [treedef]
            shared = [type(unwrapped(r)) in (float, complex) for r in leaves]  # (staged too)
            return out, ([None if s else r for r, s in zip(leaves, shared)],
                         [r if s else None for r, s in zip(leaves, shared)])  # fmt: skip

        def bwd_one(nondiff: tuple, res: tuple, g: Any) -> Any:
            leaves = [r if s is None else s for r, s in zip(*res)]
            return bwd(*nondiff, tree.unflatten(res_def[0], leaves), g)

        def bwd_b(*rest: Any) -> tuple:
            *nondiff, res, g = rest
            cts = vmap(bwd_one, in_axes=(nondiff_axes, (0, None), 0))(tuple(nondiff), res, g)
            return tuple(None if ct is None else tree.map(
                lambda c, a: c if c is None or a == 0 else dnp.sum(c, axis=0), ct, ax,
                is_leaf=lambda x: x is None) for ct, ax in zip(cts, diff_axes))  # fmt: skip

        batched.defvjp(vmap(fwd_split, in_axes=axes, out_axes=(0, (0, None))), bwd_b)
        return batched


class custom_jvp(_Custom):
    """A function with a user-defined forward-mode rule, used by reverse mode too.

    >>> import diffprog as dp, diffprog.numpy as dnp
    >>> @dp.custom_jvp
    ... def f(x, y):
    ...     return dnp.sin(x) * y
    >>> @f.defjvp
    ... def f_jvp(primals, tangents):
    ...     (x, y), (dx, dy) = primals, tangents
    ...     return f(x, y), dnp.cos(x) * dx * y + dnp.sin(x) * dy
    >>> round(dp.grad(f)(2.0, 3.0), 6)  # reverse mode transposes the rule
    -1.248441

    `rule(*nondiff_args, primals, tangents) -> (out, tangent_out)` with primals and tangents
    tuples over the differentiable arguments. An unperturbed floating argument's tangent is
    zeros; a non-floating argument's (an int, a bool, an integer array, a string) is None,
    where JAX passes float0 zeros: put such arguments in nondiff_argnums, or leave their
    tangents out of the rule's arithmetic.
    """

    def __init__(self, fun: Callable[..., Any], nondiff_argnums: Sequence[int] = ()) -> None:
        super().__init__(fun, nondiff_argnums)
        self.rule: Callable[..., Any] | None = None

    def defjvp(self, rule: Callable[..., Any]) -> Callable[..., Any]:
        self.rule = rule
        return rule

    def _call(self, *args: Any) -> Any:
        if self.rule is None:
            raise TypeError(f"{self.__name__} has no JVP rule: call .defjvp(rule) first")
        nondiff, diff_idx, leaves, treedef = self._split(args)
        trace = differentiating_trace(leaves)
        batched = _through_batch(args, leaves, trace, self._batched)
        if batched is not None:
            return batched
        if trace is None:
            return self.fun(*args)
        if isinstance(trace, JVPTrace):
            return self._forward(trace, nondiff, leaves, treedef)
        assert isinstance(trace, ReverseTrace)
        saved: dict[str, Any] = {}

        def run(vals: list[Any]) -> list[Any]:  # the lower traces apply the rule themselves
            out = self(*self._merge(args, diff_idx, tree.unflatten(treedef, vals)))
            out_leaves, saved["out_def"] = tree.flatten(out)
            return out_leaves

        weak = _python_number_types(leaves)

        def pullback(g: tuple, out: tuple, vals: list[Any]) -> list[Any]:
            primals = tree.unflatten(treedef, _as_python_numbers(vals, weak))
            zeros = tree.unflatten(treedef, [w(0) if w else _zeros(v) for v, w in zip(vals, weak)])

            def tangent_out(tangents: tuple) -> Any:
                with self._noted(nondiff):
                    return self._apply_rule(nondiff, primals, tangents)[1]

            _, transpose = vjp(tangent_out, zeros)
            (cts,) = transpose(tree.unflatten(saved["out_def"], _zeros_for(g, out)))
            return _as_cotangents(tree.leaves(cts), vals)

        outs = trace.record_call(JointNode(self.__name__, pullback), leaves, run)
        return tree.unflatten(saved["out_def"], outs)

    def _batched(self, axes: tuple) -> custom_jvp:
        """This function over a batch (`axes`: each argument's in_axes), its rule too (the
        tangent of an argument shared by every example is shared too)."""
        assert self.rule is not None
        rule, (nondiff_axes, diff_axes) = self.rule, self._split_axes(axes)
        batched = custom_jvp(vmap(self.fun, in_axes=axes), self.nondiff_argnums)
        batched.batched_argnums = _batched_argnums(self.nondiff_argnums, nondiff_axes)
        batched.defjvp(lambda *rest: vmap(lambda nondiff, p, t: rule(*nondiff, p, t),
                                          in_axes=(nondiff_axes, diff_axes, diff_axes))(
                                              rest[:-2], *rest[-2:]))  # fmt: skip
        return batched

    def _apply_rule(self, nondiff: list[Any], primals: Any, tangents: Any) -> tuple[Any, Any]:
        """The user's rule, with its result checked: a pair whose tangent output has the
        primal output's structure, shapes and dtypes."""
        result = self.rule(*nondiff, primals, tangents)
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise TypeError(
                f"{self.__name__}: the JVP rule must return a pair (out, tangent_out), "
                f"got {type(result).__name__}"
            )
        out, t_out = result
        out_def, t_def = tree.structure(out), tree.structure(t_out)
        if t_def != out_def:
            raise StructureError(
                f"{self.__name__}: the JVP rule's tangent output has structure {t_def}, but its "
                f"primal output has structure {out_def}"
            )
        for (path, o), t in zip(tree.flatten_with_path(out)[0], tree.leaves(t_out)):
            _check_leaf(self.__name__, "JVP rule's tangent output", tree.keystr(path), t, o)
        return out, t_out

    def _forward(self, trace: JVPTrace, nondiff: list[Any], leaves: list[Any], treedef: Any) -> Any:
        vals, tangents = trace.split(leaves)
        tangents = [_zeros(v) if t is None else t for v, t in zip(vals, tangents)]
        weak = _python_number_types(leaves)
        vals, tangents = _as_python_numbers(vals, weak), _as_python_numbers(tangents, weak)
        with hidden(trace):  # the rule runs on values one level down
            out, t_out = self._apply_rule(
                nondiff, tree.unflatten(treedef, vals), tree.unflatten(treedef, tangents)
            )
        out_leaves, out_def = tree.flatten(out)
        t_leaves = _as_cotangents(tree.leaves(t_out), out_leaves)  # (tangents, as arrays too)
        return tree.unflatten(
            out_def,
            [trace.wrap(o, t) if t is not None and is_floating(o) else o for o, t in zip(out_leaves, t_leaves)],
        )


def checkpoint(f: Callable[..., Any]) -> Callable[..., Any]:
    """`f`, with its intermediates recomputed in the backward pass instead of stored.

    Reverse mode keeps only f's inputs and outputs; the backward pass re-runs f under its
    own trace. Gradients are identical; memory drops for deep chains of checkpointed blocks.

    >>> import diffprog as dp, diffprog.numpy as dnp
    >>> block = dp.checkpoint(lambda x: dnp.sin(dnp.sin(x)))
    >>> round(float(dp.grad(block)(0.5)), 6)
    0.778644
    """

    @functools.wraps(f)
    def checkpointed(*args: Any, **kwargs: Any) -> Any:
        if kwargs:  # differentiated like the positional arguments
            return checkpoint(functools.wraps(f)(lambda args, kwargs: f(*args, **kwargs)))(args, kwargs)
        leaves, treedef = tree.flatten(args)
        trace = differentiating_trace(leaves)
        batched = _through_batch(args, leaves, trace, lambda axes: checkpoint(vmap(f, in_axes=axes)))
        if batched is not None:
            return batched
        if not isinstance(trace, ReverseTrace):
            return f(*args)  # nothing to save: plain evaluation, or forward mode (no tape)
        saved: dict[str, Any] = {}
        weak = _python_number_types(leaves)
        generators = generators_of(f, leaves)
        drawn_from = [draw_state(g) for g in generators]

        def run(vals: list[Any]) -> list[Any]:  # lower traces checkpoint too
            out_leaves, saved["out_def"] = tree.flatten(checkpointed(*tree.unflatten(treedef, vals)))
            return out_leaves

        def pullback(g: tuple, out: tuple, vals: list[Any]) -> list[Any]:
            now = [draw_state(g) for g in generators]
            for gen, state in zip(generators, drawn_from):  # the recomputation draws the
                set_draw_state(gen, state)  # forward pass's random numbers again
            try:
                _, vjp_fn = vjp(f, *tree.unflatten(treedef, _as_python_numbers(vals, weak)))
            finally:
                for gen, state in zip(generators, now):
                    set_draw_state(gen, state)
            cts = vjp_fn(tree.unflatten(saved["out_def"], _zeros_for(g, out)))
            return _as_cotangents(tree.leaves(cts), vals)

        outs = trace.record_call(JointNode(getattr(f, "__name__", "checkpoint"), pullback), leaves, run)
        return tree.unflatten(saved["out_def"], outs)

    return checkpointed


# --- helpers -----------------------------------------------------------------------------------
def _by_position(fun: Callable[..., Any], name: str, args: tuple, kwargs: dict) -> tuple:
    """A call's arguments all by position, as if the keyword ones had been passed so (with
    the defaults of any they skip): fwd, bwd and the JVP rule take arguments by position."""
    try:
        bound = inspect.signature(fun).bind(*args, **kwargs)
    except TypeError as e:
        raise TypeError(f"{name}: {e}") from None
    if bound.kwargs:  # a keyword after a skipped default
        bound.apply_defaults()
    if bound.kwargs:
        raise TypeError(
            f"{name}: keyword-only argument(s) {', '.join(map(repr, bound.kwargs))} cannot reach "
            "its custom rules, which take arguments by position; make them positional, or close "
            "over them"
        )
    return bound.args


def _through_batch(args: tuple, leaves: list[Any], trace: Any,
                   batched: Callable[[tuple], Any]) -> Any:  # fmt: skip
    """dp.vmap inside a differentiating transform (`trace`, or one whose tracers its batch
    hides): the call is made on the whole batch, by `batched(in_axes)` (the function and
    its rules vmapped), so the transform still sees the custom rule. None when no batch is
    above the differentiating trace (or, with none found, hides one)."""
    batch = top_trace(x for x in leaves if isinstance(x, Tracer) and x.batched
                      and (x._trace.level > trace.level if trace else raw(x) is not x))  # fmt: skip
    if batch is None:
        return None
    own = lambda x: isinstance(x, Tracer) and x.batched and x._trace is batch  # noqa: E731
    axes = tuple(tree.map(lambda x: 0 if own(x) else None, a) for a in args)
    values = tree.map(lambda x: x.value if own(x) else x, args)
    out = batched(axes)(*values)
    return tree.map(lambda o: BatchTracer(batch, o) if hasattr(o, "shape") else o, out)


def _batched_argnums(argnums: tuple[int, ...], axes: tuple) -> tuple[int, ...]:
    """The positions among `argnums` whose in_axes batch something."""
    return tuple(i for i, a in zip(argnums, axes) if any(x is not None for x in tree.leaves(a)))


@contextlib.contextmanager
def _named_in_errors(name: str, argnums: list[int]) -> Iterator[None]:
    """Prefixes a BatchedControlFlowError raised inside with the batched nondiff arguments."""
    try:
        yield
    except BatchedControlFlowError as e:
        if getattr(e, "_diffprog_nondiff", False):  # named already, by a call inside
            raise
        which = ", ".join(map(str, argnums))
        err = BatchedControlFlowError(
            f"{name}: argument {which} (in nondiff_argnums) holds each example's own value under "
            f"dp.vmap, so {name}, its rules included, gets it batched: {e}. If a rule needs it as "
            f"a Python number, call {name} once per example in a Python loop"
        )
        err._diffprog_nondiff = True  # type: ignore[attr-defined]
        raise err from e


def _zeros(v: Any) -> Any:
    """A constant zero tangent / cotangent like value `v` (None for a non-floating value)."""
    if not is_floating(v):
        return None
    r = raw(v)
    return zeros_like(r) if hasattr(r, "shape") else 0.0


def _zeros_for(g: tuple, out: tuple) -> list[Any]:
    """Output cotangents with symbolic zeros made real, as user rules expect."""
    return [_zeros(o) if c is None else c for c, o in zip(g, out)]


def _python_number_types(leaves: list[Any]) -> list[type | None]:
    """Per leaf, float or complex where the call got a Python number (staged too), else None:
    NumPy promotes those weakly (float32 stays float32), NumPy scalars not."""
    return [t if (t := type(unwrapped(leaf))) in (float, complex) else None for leaf in leaves]


def _as_python_numbers(vals: list[Any], types: list[type | None]) -> list[Any]:
    """The values a rule or a recomputation sees, those of Python-number arguments as Python
    numbers again where concrete (a 0-d host value): the tape holds them as NumPy scalars
    (for their shape and dtype), with which `c * x32` would be float64, not the call's
    float32 (and a JVP rule's tangent float64, refused)."""
    return [t(v) if t is not None and type(v) in _HOST_SCALARS and v.ndim == 0 else v
            for v, t in zip(vals, types)]  # fmt: skip


_HOST_SCALARS = (np.float64, np.complex128, np.ndarray)  # (0-d: a tangent jacfwd seeds)


def _as_cotangents(cts: list[Any], vals: list[Any]) -> list[Any]:
    """A pullback's cotangents as the reverse sweep adds them, arrays: a Python number (what
    dp.vjp, and a user's rule, give for a Python float argument) as a scalar of its value's
    dtype, on its device."""
    return [c if c is None or hasattr(c, "shape") else
            _direction_like(c, raw(v), getattr(v, "dtype", None))
            for c, v in zip(cts, vals)]  # fmt: skip


def _checked_adjoints(name: str, what: str, cts: Any, primals: tuple, diff_idx: list[int],
                      weak: list[bool]) -> list[Any]:  # fmt: skip
    """The adjoints `cts` (one per differentiable argument) checked against the primals,
    flattened; those of Python floats (`weak`, per leaf) may have any real floating dtype,
    as NumPy lets a Python float take an array's (they are cast to float64)."""
    if not isinstance(cts, (tuple, list)) or len(cts) != len(primals):
        raise StructureError(
            f"{name}: {what} must return a tuple with one adjoint per differentiable argument "
            f"({len(primals)}), got {type(cts).__name__}"
            + (f" of length {len(cts)}" if isinstance(cts, (tuple, list)) else "")
        )
    flat = []
    for i, ct, p in zip(diff_idx, cts, primals):
        p_paths = tree.flatten_with_path(p)[0]
        if ct is None:  # a whole argument with zero adjoint
            flat += [None] * len(p_paths)
            continue
        ct_leaves, ct_def = tree.flatten(ct)
        if ct_def != tree.structure(p):
            raise StructureError(
                f"{name}: {what} returned for argument {i} an adjoint of structure {ct_def}, "
                f"expected the argument's structure {tree.structure(p)}"
            )
        for (path, leaf), c in zip(p_paths, ct_leaves):
            flat.append(_check_leaf(name, f"{what} adjoint for argument {i}", tree.keystr(path), c,
                                    leaf, weak[len(flat)]))  # fmt: skip
    return flat


def _check_leaf(name: str, what: str, path: str, got: Any, like: Any, weak: bool = False) -> Any:
    """`got` (a derivative for `like`) if its shape and dtype are like's, or cast to like's
    dtype where like is a Python float (`weak`) and got is real floating; else raise."""
    if got is None or not is_floating(like):
        return got
    shape, expected = tuple(getattr(got, "shape", ())), tuple(getattr(like, "shape", ()))
    if shape != expected:
        raise StructureError(f"{name}: {what}{path} has shape {shape}, expected {expected}")
    dtype, want = getattr(got, "dtype", None), getattr(raw(like), "dtype", None)
    if dtype is not None and want is not None and dtype != want:
        if weak and dtype.kind == "f":
            return astype(got, dtype=want)
        raise StructureError(f"{name}: {what}{path} has dtype {dtype}, expected {want}")
    return got
