"""The building blocks optimizers are chained from, with optax's names and formulas.

Owns: `scale`, `scale_by_learning_rate`, `scale_by_schedule`, `trace` (momentum),
`scale_by_adam`, `scale_by_rms`, `add_decayed_weights`, `clip_by_global_norm`, and their
state namedtuples (module-level, so a checkpoint can rebuild them). States mirror params:
same containers and keys, each moment in its parameter's dtype (Adam's and RMSProp's in
float32 for a float16 parameter: base.moment_zeros_like), None for constant leaves.
A None update stays None and leaves its moments untouched. Every step is plain arithmetic on
the data's own array module; a schedule's value may be traced (a count dp.jit stages), and
is then checked without reading it back (a bad rate makes the update NaN: see `_rate`).
Layer L6: imports diffprog.tree, diffprog.backend, diffprog.errors (through .base),
diffprog.numpy's where, and the stdlib.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .. import tree
from ..backend import namespace_of
from ..core.trace import Tracer
from ..errors import StructureError
from ..numpy import where
from .base import (
    EmptyState,
    GradientTransformation,
    abs_squared,
    cast_like,
    flatten_like,
    squared_global_norm,
    is_complex_leaf,
    is_float_leaf,
    moment_zeros_like,
    require_fields,
    sqrt,
    transformation,
    widen,
    zero_count,
    zeros_like,
)

__all__ = [
    "ScaleByAdamState",
    "ScaleByRmsState",
    "ScaleByScheduleState",
    "TraceState",
    "add_decayed_weights",
    "clip_by_global_norm",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "scale_by_schedule",
    "trace",
]


class ScaleByScheduleState(NamedTuple):
    count: Any  # updates done so far, where the params live (base.zero_count)


class TraceState(NamedTuple):
    trace: Any  # the momentum buffer, shaped like params


class ScaleByAdamState(NamedTuple):
    count: Any  # updates done so far, where the params live (base.zero_count)
    mu: Any  # first moment, shaped like params
    nu: Any  # second moment


class ScaleByRmsState(NamedTuple):
    nu: Any  # running mean of squared gradients


def real_or_traced(name: str, value: Any, lo: float | None = None) -> Any:
    """A hyperparameter as `check_real` checks it (finite, >= ``lo``), or, traced (one being
    differentiated, a dp.vmap batch of them, a dp.jit argument), the traced real scalar
    itself: float() of it would drop its gradient, refuse a batch, or guard on its value
    under dp.jit (one recording per value). A traced one is not read back to be checked:
    below ``lo`` or not finite, it is NaN (so is every update then, as with `_rate`)."""
    if not isinstance(value, Tracer):
        return check_real(name, value, lo)
    if value.shape != () or value.dtype.kind not in "fiu" or value.dtype == np.bool_:
        raise TypeError(f"{name} must be a real number, got a traced value of shape "
                        f"{value.shape} and dtype {value.dtype}")
    if lo is None:
        return value
    return where((value >= lo) & (value < math.inf), value, math.nan)


def is_zero(value: Any) -> bool:
    """Whether a hyperparameter is the number 0 (a traced one is not read: never)."""
    return not isinstance(value, Tracer) and value == 0.0


def check_real(name: str, value: Any, lo: float | None = None, hi: float | None = None,
                lo_open: bool = False, hi_open: bool = False) -> float:
    """``value`` as a float, checked to be a finite real number within the given bounds
    (hyperparameters); raises TypeError / ValueError naming ``name`` otherwise."""
    is_0d = getattr(value, "shape", None) == () and getattr(value.dtype, "kind", "") in "fiu"
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) or is_0d):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    v = float(value)
    bad = (not math.isfinite(v) or (lo is not None and (v < lo or (lo_open and v == lo)))
           or (hi is not None and (v > hi or (hi_open and v == hi))))
    if bad:
        rng = (f"{'(' if lo_open else '['}{'-inf' if lo is None else lo}, "
               f"{'inf' if hi is None else hi}{')' if hi_open else ']'}")
        raise ValueError(f"{name} must be a finite number in {rng}, got {value!r}")
    return v


def _schedule_value(fn: Callable[[int], Any], count: int, what: str) -> float:
    value = fn(count)
    ok = (isinstance(value, numbers.Real) and not isinstance(value, bool)) or (
        getattr(value, "shape", None) == () and getattr(value.dtype, "kind", "") in "fiu")
    if not ok:
        raise TypeError(f"{what}: the schedule {getattr(fn, '__name__', fn)!r} returned "
                        f"{type(value).__name__} {value!r} at step {count}; a schedule must "
                        f"return a real number (a float) for every step count")
    # staged by dp.jit or on a GPU, float() would guard on the value or wait for the GPU
    return float(value) if _on_host(value) else value


def _on_host(value: Any) -> bool:
    """Whether `value` is a number or a NumPy array (not traced, not on a GPU): one that
    can be read at no cost."""
    return isinstance(value, (numbers.Number, np.ndarray))


def _rate(value: Any, count: Any) -> Any:
    """``value``, checked to be a finite rate >= 0: a ValueError if it is on the host; NaN
    if it is traced (a schedule of a count dp.jit stages) or on a GPU (a count kept there),
    where raising would read it back at every step (a guard, or a wait for the GPU: a step
    that waits, and cannot be captured as a CUDA graph). A NaN rate makes every update NaN
    (dp.debug_nans stops there; with a host count it raises the ValueError)."""
    if not _on_host(value):
        return where((value >= 0) & (value < math.inf), value, math.nan)
    if not (value >= 0 and value < math.inf):
        at = "" if count is None else f" (the schedule's value at step {count})"
        raise ValueError(f"learning_rate must be a finite number >= 0, got {value!r}{at}; "
                         f"updates already point downhill (minus the gradient), so use a "
                         f"positive rate")
    return value


def _scaled(updates: Any, factor: Any, conjugate: bool = False) -> Any:
    """Each update times `factor`; with `conjugate`, complex ones conjugated first (a
    gradient in JAX's convention, df/dx - i df/dy, turned into a step: see
    scale_by_learning_rate)."""
    def one(g: Any) -> Any:
        if g is None:
            return None
        if conjugate and is_complex_leaf(g):
            g = g.conjugate()
        return cast_like(g * _in_precision_of(factor, g), g)

    return tree.map(one, updates)


def _in_precision_of(factor: Any, g: Any) -> Any:
    """`factor` rounded to `g`'s (real) precision, as NumPy rounds a Python float factor:
    a schedule's traced 0-d float64 value would otherwise compute a float32 update in
    float64, rounding it once more than the eager step does."""
    dtype = getattr(g, "dtype", None)
    if isinstance(factor, numbers.Number) or dtype is None or dtype.kind not in "fc":
        return factor
    real = np.finfo(dtype).dtype
    return factor if factor.dtype == real else factor.astype(real)


def scale(step_size: float) -> GradientTransformation:
    """Multiply every update by ``step_size``.

    >>> opt = dp.optim.scale(-2.0)
    >>> opt.update({'w': 1.5, 'c': None}, opt.init(None))[0]
    {'w': -3.0, 'c': None}
    """
    step_size = real_or_traced("scale: step_size", step_size)
    return _scale(step_size, conjugate=False)


def _scale(step_size: float, conjugate: bool) -> GradientTransformation:
    def init(params: Any) -> EmptyState:
        return EmptyState()

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, EmptyState]:
        if params is not None:
            flatten_like(updates, params)
        return _scaled(updates, step_size, conjugate), EmptyState()

    return transformation(init, update)


def scale_by_schedule(step_size_fn: Callable[[int], Any]) -> GradientTransformation:
    """Multiply updates by ``step_size_fn(count)``, where ``count`` (kept in the state)
    is the number of updates done before this one.

    >>> opt = dp.optim.scale_by_schedule(lambda count: 1.0 / (count + 1))
    >>> state = opt.init({'w': 0.0})
    >>> u, state = opt.update({'w': 1.0}, state)
    >>> opt.update({'w': 1.0}, state)[0], opt.update({'w': 1.0}, state)[1].count
    ({'w': 0.5}, np.int64(2))
    """
    if not callable(step_size_fn):
        raise TypeError(f"scale_by_schedule: expected a function of the step count, got "
                        f"{type(step_size_fn).__name__}")
    return _schedule_transform(step_size_fn, lambda v, c: v, "scale_by_schedule")


def _schedule_transform(fn: Callable[[int], Any], post: Callable[[float, int], float],
                        rule: str, conjugate: bool = False) -> GradientTransformation:
    def init(params: Any) -> ScaleByScheduleState:
        return ScaleByScheduleState(count=zero_count(params))

    def update(updates: Any, state: Any, params: Any = None
               ) -> tuple[Any, ScaleByScheduleState]:
        require_fields(state, ScaleByScheduleState, rule)
        count = state.count
        if params is not None:
            flatten_like(updates, params)
        factor = post(_schedule_value(fn, count, rule), count)
        return _scaled(updates, factor, conjugate), ScaleByScheduleState(count=count + 1)

    return transformation(init, update)


def scale_by_learning_rate(learning_rate: float | Callable[[int], Any]
                           ) -> GradientTransformation:
    """Multiply updates by ``-learning_rate`` (a float, or a schedule: a function of the
    step count, or a traced scalar: differentiate through the steps with respect to the
    rate, give each example of a dp.vmap its own, pass it to a jitted step as an argument
    without one recording per value). Rates must be >= 0 (a traced one below 0 makes the
    update NaN, as a staged schedule's does: see `_rate`). Complex updates are conjugated
    too: dp.grad gives df/dx - i df/dy for a complex parameter (JAX's convention), whose
    conjugate is the steepest-ascent direction, so every optimizer built on this descends.

    >>> opt = dp.optim.scale_by_learning_rate(0.1)
    >>> opt.update({'w': 3.0}, opt.init({'w': 0.0}))[0]
    {'w': -0.30000000000000004}
    """
    if callable(learning_rate):
        lowest = getattr(learning_rate, "lowest", 0.0)  # known for dp.optim's schedules
        if not lowest >= 0:
            raise ValueError(f"learning_rate: the schedule {learning_rate.__name__} takes "
                             f"values down to {lowest} (so its arguments say), but a rate "
                             f"must be >= 0: updates already point downhill (minus the "
                             f"gradient), so give it positive values")
        return _schedule_transform(learning_rate, lambda v, c: -_rate(v, c),
                                   "scale_by_learning_rate", conjugate=True)
    lr = real_or_traced("learning_rate", learning_rate)
    return _scale(-_rate(lr, None), conjugate=True)


def trace(decay: float, nesterov: bool = False) -> GradientTransformation:
    """Momentum: ``t = g + decay * t``; the update is ``t``, or ``g + decay * t`` with
    ``nesterov`` (optax's `trace`, PyTorch's SGD momentum without dampening).

    >>> opt = dp.optim.trace(0.5)
    >>> u, s = opt.update({'w': 1.0}, opt.init({'w': 0.0}))
    >>> opt.update({'w': 1.0}, s)[0]
    {'w': 1.5}
    """
    decay = real_or_traced("trace: decay (momentum)", decay, 0.0)

    def init(params: Any) -> TraceState:
        return TraceState(trace=tree.map(zeros_like, params))

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, TraceState]:
        require_fields(state, TraceState, "trace")
        g_leaves, t_leaves, treedef = flatten_like(updates, state.trace, "grads", "the state")
        out, new_t = [], []
        for i, (g, t) in enumerate(zip(g_leaves, t_leaves)):
            if g is None:
                out.append(None)
                new_t.append(t)
                continue
            _require_state(t, i, state.trace, "trace")
            t = cast_like(g + decay * t, t)
            new_t.append(t)
            out.append(cast_like(g + decay * t, g) if nesterov else cast_like(t, g))
        return tree.unflatten(treedef, out), TraceState(trace=tree.unflatten(treedef, new_t))

    return transformation(init, update)


def _require_state(s: Any, i: int, state_tree: Any, rule: str) -> None:
    if s is None:
        path = tree.leaf_paths(state_tree)[i]
        raise TypeError(f"{rule}: grads{path} is not None, but params{path} is a constant "
                        f"(not a floating leaf), so it has no optimizer state; give "
                        f"constants a None gradient (dp.grad does)")


def scale_by_adam(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
                  eps_root: float = 0.0) -> GradientTransformation:
    """Adam's direction: ``m̂ / (sqrt(v̂ + eps_root) + eps)`` with bias-corrected moments
    ``m̂ = mu / (1 - b1**t)``, ``v̂ = nu / (1 - b2**t)``.

    >>> opt = dp.optim.scale_by_adam()
    >>> u, state = opt.update({'w': 0.5}, opt.init({'w': 1.0}))
    >>> round(u['w'], 6), state.count
    (1.0, np.int64(1))
    """
    b1 = check_real("scale_by_adam: b1", b1, 0.0, 1.0, hi_open=True)
    b2 = check_real("scale_by_adam: b2", b2, 0.0, 1.0, hi_open=True)
    eps = check_real("scale_by_adam: eps", eps, 0.0, None)
    eps_root = check_real("scale_by_adam: eps_root", eps_root, 0.0, None)

    def init(params: Any) -> ScaleByAdamState:
        return ScaleByAdamState(count=zero_count(params), mu=tree.map(moment_zeros_like, params),
                                nu=tree.map(lambda p: moment_zeros_like(p, real=True), params))

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, ScaleByAdamState]:
        require_fields(state, ScaleByAdamState, "scale_by_adam")
        g_leaves, mu_leaves, treedef = flatten_like(updates, state.mu, "grads", "the state")
        nu_leaves, nu_def = tree.flatten(state.nu)
        if nu_def != treedef:
            raise StructureError("scale_by_adam: the state's mu and nu differ in structure; "
                                 "the state is corrupt (pass the one init()/update() made)")
        count = state.count + 1
        c1, c2 = 1.0 - b1 ** count, 1.0 - b2 ** count
        out, new_mu, new_nu = [], [], []
        for i, (g, mu, nu) in enumerate(zip(g_leaves, mu_leaves, nu_leaves)):
            if g is None:
                out.append(None)
                new_mu.append(mu)
                new_nu.append(nu)
                continue
            _require_state(mu, i, state.mu, "scale_by_adam")
            g = widen(g)  # (float16: its moments are float32, see moment_zeros_like)
            mu = cast_like(b1 * mu + (1.0 - b1) * g, mu)
            nu = cast_like(b2 * nu + (1.0 - b2) * abs_squared(g), nu)
            new_mu.append(mu)
            new_nu.append(nu)
            out.append(cast_like((mu / c1) / (sqrt(nu / c2 + eps_root) + eps), g_leaves[i]))
        return tree.unflatten(treedef, out), ScaleByAdamState(
            count=count, mu=tree.unflatten(treedef, new_mu), nu=tree.unflatten(treedef, new_nu))

    return transformation(init, update)


def scale_by_rms(decay: float = 0.9, eps: float = 1e-8, initial_scale: float = 0.0
                 ) -> GradientTransformation:
    """RMSProp's direction, optax's formula (eps inside the root):
    ``nu = decay * nu + (1 - decay) * g**2``, update ``g / sqrt(nu + eps)``.

    >>> opt = dp.optim.scale_by_rms(decay=0.75, eps=0.0)
    >>> opt.update({'w': 3.0}, opt.init({'w': 1.0}))[0]
    {'w': 2.0}
    """
    decay = check_real("scale_by_rms: decay", decay, 0.0, 1.0)
    eps = check_real("scale_by_rms: eps", eps, 0.0, None)
    initial_scale = check_real("scale_by_rms: initial_scale", initial_scale, 0.0, None)

    def first(p: Any) -> Any:
        z = moment_zeros_like(p, real=True)
        return z if z is None or initial_scale == 0.0 else cast_like(z + initial_scale, z)

    def init(params: Any) -> ScaleByRmsState:
        return ScaleByRmsState(nu=tree.map(first, params))

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, ScaleByRmsState]:
        require_fields(state, ScaleByRmsState, "scale_by_rms")
        g_leaves, nu_leaves, treedef = flatten_like(updates, state.nu, "grads", "the state")
        out, new_nu = [], []
        for i, (g, nu) in enumerate(zip(g_leaves, nu_leaves)):
            if g is None:
                out.append(None)
                new_nu.append(nu)
                continue
            _require_state(nu, i, state.nu, "scale_by_rms")
            wide = widen(g)  # (float16: its nu is float32, see moment_zeros_like)
            nu = cast_like(decay * nu + (1.0 - decay) * abs_squared(wide), nu)
            new_nu.append(nu)
            out.append(cast_like(wide / sqrt(nu + eps), g))
        return tree.unflatten(treedef, out), ScaleByRmsState(nu=tree.unflatten(treedef, new_nu))

    return transformation(init, update)


def add_decayed_weights(weight_decay: float = 0.0, mask: Any = None) -> GradientTransformation:
    """Add ``weight_decay * params`` to each update (decoupled weight decay once scaled by
    the learning rate; ``weight_decay * conj(params)`` for complex ones, the gradient of
    ``weight_decay / 2 * |params|^2`` in dp.grad's convention). ``mask`` (a tree of bools
    with params' structure, one per parameter whatever its shape, or a function of params
    returning one) picks the leaves to decay; the others pass unchanged.

    >>> opt = dp.optim.add_decayed_weights(0.1, mask={'w': True, 'b': False})
    >>> p = {'w': 2.0, 'b': 2.0}
    >>> opt.update({'w': 1.0, 'b': 1.0}, opt.init(p), p)[0]
    {'w': 1.2, 'b': 1.0}
    """
    weight_decay = real_or_traced("add_decayed_weights: weight_decay", weight_decay, 0.0)

    def init(params: Any) -> EmptyState:
        return EmptyState()

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, EmptyState]:
        if params is None:
            raise TypeError("add_decayed_weights (weight decay, e.g. in adamw) needs the "
                            "parameters: call opt.update(grads, state, params)")
        g_leaves, p_leaves, treedef = flatten_like(updates, params)
        if mask is None:
            m_leaves = [True] * len(p_leaves)
        else:
            m = mask(params) if callable(mask) else mask
            m_leaves, _, _ = flatten_like(m, params, "mask", "params", shapes=False)
            _require_bools(m, m_leaves)
        out = []
        for g, p, m_ in zip(g_leaves, p_leaves, m_leaves):
            if g is None or not m_ or not is_float_leaf(p) or is_zero(weight_decay):
                out.append(g)
            else:
                decay = p.conjugate() if is_complex_leaf(p) else p
                out.append(cast_like(g + weight_decay * decay, g))
        return tree.unflatten(treedef, out), EmptyState()

    return transformation(init, update)


def _require_bools(mask: Any, leaves: list[Any]) -> None:
    """Check that a mask's leaves are each one bool (one per parameter, whatever its
    shape, as optax's masks)."""
    for i, m in enumerate(leaves):
        if not (isinstance(m, (bool, np.bool_)) or getattr(m, "shape", None) == ()
                and getattr(m, "dtype", None) == np.bool_):
            raise TypeError(f"add_decayed_weights: mask{tree.leaf_paths(mask)[i]} is "
                            f"{type(m).__name__} {m!r}; a mask has one True or False per "
                            f"parameter (True: decay it), whatever the parameter's shape")


def clip_by_global_norm(max_norm: float) -> GradientTransformation:
    """Scale all updates by ``max_norm / norm`` when their global norm (over every leaf
    together, see `global_norm`) exceeds ``max_norm``; otherwise leave them as they are.

    >>> opt = dp.optim.clip_by_global_norm(1.0)
    >>> opt.update({'a': 3.0, 'b': [4.0]}, opt.init(None))[0]
    {'a': 0.6, 'b': [0.8]}
    """
    max_norm = check_real("clip_by_global_norm: max_norm", max_norm, 0.0, None, lo_open=True)
    _squared_cap = min(max_norm, 1e150) ** 2  # (no OverflowError; a larger norm is above it)

    def init(params: Any) -> EmptyState:
        return EmptyState()

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, EmptyState]:
        if params is not None:
            flatten_like(updates, params)
        squared = squared_global_norm(updates)
        if getattr(squared, "dtype", None) is None:
            norm = sqrt(squared)
            factor: Any = 1.0 if norm <= max_norm else max_norm / norm
        else:  # stay on the data's device: no host round trip
            xp = namespace_of((squared,))
            # the root of at least max_norm**2: its derivative is finite where the norm is 0
            # (0 * inf in where's unselected branch made a zero gradient tree's gradient NaN)
            root = xp.sqrt(xp.maximum(squared, _squared_cap))
            factor = xp.where(xp.sqrt(squared) <= max_norm, 1.0, max_norm / root)
        return _scaled(updates, factor), EmptyState()

    return transformation(init, update)
