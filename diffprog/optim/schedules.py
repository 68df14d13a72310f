"""Learning-rate schedules: functions from the step count (0 for the first update) to a
Python float, with optax's formulas. A count dp.jit stages (a jitted training step) or an
array count (a step count on a GPU) gives a 0-d value computed with diffprog.numpy, branch
free: each phase is selected with where / clip of the count, never with a Python `if` on
it, so a jitted step records once for every phase and has no guard from its schedule (on
CuPy it is captured as one CUDA graph). A zero-length phase (no warm-up) has no formula at
all (its length decides, not the count), and every phase's formula is finite at every
count (its count clipped into the phase), so the phase where() does not select cannot put
a NaN or a warning into the value or into a gradient through it.

Owns: `constant`, `exponential_decay`, `cosine_decay`, `linear_schedule`, `linear_warmup`,
`warmup_cosine_decay`. Pass one as any optimizer's ``learning_rate``; the optimizer keeps
the count in its state. Arguments are checked when the schedule is made, and each schedule
knows the least value its arguments let it take (``.lowest``), which an optimizer checks
when it is made (a rate must be >= 0): a value a jitted step would not read back. As in
optax, ``transition_steps <= 0`` (and an exponential ``decay_rate`` of 0) makes the schedule
the constant ``init_value``, and a negative ``transition_begin`` counts as 0, each said at
INFO level on the ``diffprog.optim`` logger (optax logs the same at INFO).
Layer L6: imports the stdlib, diffprog.numpy and .transforms' argument check.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable
from typing import Any

from .. import numpy as dnp
from .transforms import check_real

__all__ = [
    "constant",
    "cosine_decay",
    "exponential_decay",
    "linear_schedule",
    "linear_warmup",
    "warmup_cosine_decay",
]

Schedule = Callable[[int], float]
_log = logging.getLogger("diffprog.optim")


class _HostMath:
    """The functions a schedule uses, for a count that is a number: Python's, so the
    schedule returns a Python float (optax's value). Both of where's values are computed,
    as dnp.where computes them."""

    cos = staticmethod(math.cos)
    floor = staticmethod(math.floor)
    minimum = staticmethod(min)
    maximum = staticmethod(max)

    @staticmethod
    def where(condition: bool, x: Any, y: Any) -> Any:
        return x if condition else y

    @staticmethod
    def clip(x: Any, lo: Any, hi: Any) -> Any:
        return min(max(x, lo), hi)


def _math(count: Any) -> Any:
    """The functions to compute a schedule of ``count`` with: Python's for a number,
    diffprog.numpy's (staged by dp.jit, no guard) for anything else."""
    return _HostMath if isinstance(count, numbers.Real) else dnp


def _named(fn: Schedule, name: str, lowest: float) -> Schedule:
    fn.__name__ = fn.__qualname__ = name
    fn.lowest = lowest  # type: ignore[attr-defined]
    return fn


def _steps(name: str, value: int, allow_zero: bool = False, lowest: int | None = None) -> int:
    """`value`, a number of steps, checked; with `lowest`, any int, raised to it (optax's
    fallback for its transition arguments)."""
    if isinstance(value, bool) or not isinstance(value, int) and not (
            hasattr(value, "__index__")):
        raise TypeError(f"{name} must be an int (a number of steps), got "
                        f"{type(value).__name__} {value!r}")
    value = int(value)
    if lowest is not None:
        if value < lowest:
            _log.info("%s is %d: it counts as %d, as in optax", name, value, lowest)
        return max(value, lowest)
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value



def _held(name: str, init_value: float, why: str) -> Schedule:
    """optax's schedule for a transition that never starts: the constant `init_value`."""
    _log.info("%s: %s, so the schedule is the constant init_value (as in optax)", name, why)
    return constant(init_value)


def _between(a: float, b: float, t: Any) -> Any:
    """The point a fraction `t` (in [0, 1]) of the way from `a` to `b`, exactly `a` at 0 and
    exactly `b` at 1: `a + (b - a) * t` misses `b` by an ulp for four pairs in ten (0.1 to
    0.01 ends at 0.009999999999999995), a value a schedule then keeps for the rest of
    training; optax's `(a - b) * (1 - t) + b` misses `a` as often."""
    return a * (1.0 - t) + b * t


def constant(value: float) -> Schedule:
    """The same value at every step.

    >>> dp.optim.constant(0.1)(1000)
    0.1
    """
    v = check_real("constant: value", value)
    return _named(lambda count: v, f"constant({v})", v)


def exponential_decay(init_value: float, transition_steps: int, decay_rate: float,
                      transition_begin: int = 0, staircase: bool = False,
                      end_value: float | None = None) -> Schedule:
    """``init_value * decay_rate ** ((count - transition_begin) / transition_steps)``
    (the exponent floored with ``staircase``; ``init_value`` before ``transition_begin``),
    bounded by ``end_value`` if given. Arguments in optax's order.

    >>> s = dp.optim.exponential_decay(1.0, 10, 0.5)
    >>> s(0), s(10), s(15), dp.optim.exponential_decay(1.0, 10, 0.5, staircase=True)(15)
    (1.0, 0.5, 0.35355, 0.5)
    """
    init = check_real("exponential_decay: init_value", init_value)
    rate = check_real("exponential_decay: decay_rate", decay_rate, 0.0, None)
    steps = _steps("exponential_decay: transition_steps", transition_steps, lowest=0)
    if steps == 0 or rate == 0.0:
        return _held("exponential_decay", init, "transition_steps <= 0" if steps == 0
                     else "decay_rate is 0")  # fmt: skip
    begin = _steps("exponential_decay: transition_begin", transition_begin, lowest=0)
    end = None if end_value is None else check_real("exponential_decay: end_value", end_value)
    # two past the exponent where the value crosses end_value (so a floored one is past it
    # too): capping it there keeps a growing rate ** p from overflowing (an OverflowError,
    # or inf and a warning) before the bound applies
    cap = (max(math.log(end / init) / math.log(rate), 0.0) + 2.0
           if end is not None and rate != 1.0 and init > 0.0 and end > 0.0 else math.inf)

    def schedule(count: int) -> float:
        m = _math(count)
        p = m.minimum(m.maximum(count - begin, 0) / steps, cap)
        if staircase:
            p = m.floor(p)
        v = init * rate ** p
        if end is not None:
            v = m.maximum(v, end) if rate < 1.0 else m.minimum(v, end)
        return v

    # from init_value towards 0 (decay) or away from it (growth), bounded by end_value
    toward = 0.0 if rate < 1.0 else init if init >= 0.0 or rate == 1.0 else -math.inf
    lowest = min(init, toward)
    if end is not None:
        lowest = max(lowest, end) if rate < 1.0 else min(lowest, end)
    return _named(schedule, f"exponential_decay({init}, {steps}, {rate})", lowest)


def cosine_decay(init_value: float, decay_steps: int, alpha: float = 0.0,
                 exponent: float = 1.0) -> Schedule:
    """Half a cosine from ``init_value`` down to ``alpha * init_value`` over
    ``decay_steps``, then constant: ``init_value * ((1 - alpha) * c**exponent + alpha)``
    with ``c = (1 + cos(pi * min(count, decay_steps) / decay_steps)) / 2``.

    >>> s = dp.optim.cosine_decay(1.0, 100, alpha=0.1)
    >>> s(0), s(50), s(100), s(500)
    (1.0, 0.55, 0.1, 0.1)
    """
    init = check_real("cosine_decay: init_value", init_value)
    steps = _steps("cosine_decay: decay_steps", decay_steps)
    alpha = check_real("cosine_decay: alpha", alpha)
    exponent = check_real("cosine_decay: exponent", exponent)

    def schedule(count: int) -> float:
        m = _math(count)
        c = 0.5 * (1.0 + m.cos(math.pi * m.clip(count, 0, steps) / steps))
        return init * ((1.0 - alpha) * c ** exponent + alpha)

    return _named(schedule, f"cosine_decay({init}, {steps})", min(init, alpha * init))


def linear_schedule(init_value: float, end_value: float, transition_steps: int,
                    transition_begin: int = 0) -> Schedule:
    """A straight line from ``init_value`` (until ``transition_begin``) to ``end_value``
    (from ``transition_begin + transition_steps`` on).

    >>> s = dp.optim.linear_schedule(1.0, 0.0, 4)
    >>> [s(k) for k in range(6)]
    [1.0, 0.75, 0.5, 0.25, 0.0, 0.0]
    """
    init = check_real("linear_schedule: init_value", init_value)
    end = check_real("linear_schedule: end_value", end_value)
    steps = _steps("linear_schedule: transition_steps", transition_steps, lowest=0)
    if steps == 0:
        return _held("linear_schedule", init, "transition_steps <= 0")
    begin = _steps("linear_schedule: transition_begin", transition_begin, lowest=0)

    def schedule(count: int) -> float:
        return _between(init, end, _math(count).clip(count - begin, 0, steps) / steps)

    return _named(schedule, f"linear_schedule({init}, {end}, {steps})", min(init, end))


def linear_warmup(init_value: float, peak_value: float, warmup_steps: int) -> Schedule:
    """Rise linearly from ``init_value`` to ``peak_value`` over ``warmup_steps``, then stay
    at ``peak_value``.

    >>> s = dp.optim.linear_warmup(0.0, 1.0, 4)
    >>> [s(k) for k in (0, 1, 4, 9)]
    [0.0, 0.25, 1.0, 1.0]
    """
    warmup = _steps("linear_warmup: warmup_steps", warmup_steps, allow_zero=True)
    if warmup == 0:
        return constant(peak_value)
    return linear_schedule(init_value, peak_value, warmup)


def warmup_cosine_decay(init_value: float, peak_value: float, warmup_steps: int,
                        decay_steps: int, end_value: float = 0.0, exponent: float = 1.0
                        ) -> Schedule:
    """Linear warm-up from ``init_value`` to ``peak_value`` over ``warmup_steps``, then a
    cosine decay to ``end_value`` reached at step ``decay_steps`` (which counts the
    warm-up, as in optax), then constant.

    >>> s = dp.optim.warmup_cosine_decay(0.0, 1.0, 10, 110, end_value=0.1)
    >>> s(0), s(5), s(10), s(60), s(110), s(200)
    (0.0, 0.5, 1.0, 0.55, 0.1, 0.1)
    """
    init = check_real("warmup_cosine_decay: init_value", init_value)
    peak = check_real("warmup_cosine_decay: peak_value", peak_value)
    end = check_real("warmup_cosine_decay: end_value", end_value)
    exponent = check_real("warmup_cosine_decay: exponent", exponent)
    warmup = _steps("warmup_cosine_decay: warmup_steps", warmup_steps, allow_zero=True)
    total = _steps("warmup_cosine_decay: decay_steps", decay_steps)
    if total <= warmup:
        raise ValueError(f"warmup_cosine_decay: decay_steps ({total}) counts the warm-up, so "
                         f"it must exceed warmup_steps ({warmup})")
    span = total - warmup

    def schedule(count: int) -> float:
        m = _math(count)
        c = 0.5 * (1.0 + m.cos(math.pi * m.clip(count - warmup, 0, span) / span))
        decay = _between(end, peak, c ** exponent)
        if warmup == 0:  # no warm-up phase (and no division by its length)
            return decay
        rise = _between(init, peak, m.clip(count, 0, warmup) / warmup)
        return m.where(count < warmup, rise, decay)

    return _named(schedule, f"warmup_cosine_decay({init}, {peak}, {warmup}, {total})",
                  min(init if warmup else peak, peak, end))
