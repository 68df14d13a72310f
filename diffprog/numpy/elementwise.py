"""Elementwise functions under NumPy's names, with their derivative rules.

Owns: arithmetic (add ... power), unary math (exp, log, sin, ...), maximum/minimum, where,
clip and the comparisons (whose results are constants). Ties in maximum/minimum share the
gradient equally, as JAX does. One row per function; rules are written in diffprog ops.
Layer L4: imports L2 and the L4 helpers.
"""

from __future__ import annotations

from typing import Any

from ..core.primitive import Primitive
from ._define import binary, nondifferentiable, unary

# --- comparisons and other constant-valued functions -------------------------------------
greater = nondifferentiable("greater", lambda xp, x, y: xp.greater(x, y))
greater_equal = nondifferentiable("greater_equal", lambda xp, x, y: xp.greater_equal(x, y))
less = nondifferentiable("less", lambda xp, x, y: xp.less(x, y))
less_equal = nondifferentiable("less_equal", lambda xp, x, y: xp.less_equal(x, y))
equal = nondifferentiable("equal", lambda xp, x, y: xp.equal(x, y))
not_equal = nondifferentiable("not_equal", lambda xp, x, y: xp.not_equal(x, y))
sign = nondifferentiable("sign", lambda xp, x: xp.sign(x))
isfinite = nondifferentiable("isfinite", lambda xp, x: xp.isfinite(x))
isnan = nondifferentiable("isnan", lambda xp, x: xp.isnan(x))
isinf = nondifferentiable("isinf", lambda xp, x: xp.isinf(x))

# --- arithmetic ----------------------------------------------------------------------------
add = Primitive("add", lambda xp, x, y: xp.add(x, y))
add.defvjp(lambda g, ans, x, y: g, lambda g, ans, x, y: g)
add.defjvp(lambda t, ans, x, y: t, lambda t, ans, x, y: t)

subtract = Primitive("subtract", lambda xp, x, y: xp.subtract(x, y))
subtract.defvjp(lambda g, ans, x, y: g, lambda g, ans, x, y: -g)
subtract.defjvp(lambda t, ans, x, y: t, lambda t, ans, x, y: -t)

multiply = binary("multiply", lambda xp, x, y: xp.multiply(x, y),
                  lambda x, y, ans: y, lambda x, y, ans: x)  # fmt: skip

divide = Primitive("divide", lambda xp, x, y: xp.divide(x, y))
divide.defvjp(lambda g, ans, x, y: g / y, lambda g, ans, x, y: -g * ans / y)
divide.defjvp(lambda t, ans, x, y: t / y, lambda t, ans, x, y: -t * ans / y)
true_divide = divide

negative = Primitive("negative", lambda xp, x: xp.negative(x))
negative.defvjp(lambda g, ans, x: -g)
negative.defjvp(lambda t, ans, x: -t)


def _power_dx(x: Any, y: Any, ans: Any) -> Any:
    if isinstance(y, (int, float)):  # the common x ** 2: no where, no wasted branch
        return y * x ** (y - 1) if y != 0 else 0.0 * x
    return where(y == 0, 0.0, y * x ** (y - 1))


def _power_dy(x: Any, y: Any, ans: Any) -> Any:
    # d/dy x**y = x**y log x: 0 where x == 0 (and y > 0), NaN for a negative base (the real
    # derivative does not exist there), as JAX does.
    return ans * log(where(x == 0, 1.0, x))


power = binary("power", lambda xp, x, y: xp.power(x, y), _power_dx, _power_dy)

square = unary("square", lambda xp, x: xp.square(x), lambda x, ans: 2.0 * x)
abs = unary("abs", lambda xp, x: xp.abs(x), lambda x, ans: sign(x))  # noqa: A001
absolute = abs

# --- unary math ----------------------------------------------------------------------------
exp = unary("exp", lambda xp, x: xp.exp(x), lambda x, ans: ans)
log = Primitive("log", lambda xp, x: xp.log(x))
log.defvjp(lambda g, ans, x: g / x)
log.defjvp(lambda t, ans, x: t / x)
sqrt = Primitive("sqrt", lambda xp, x: xp.sqrt(x))
sqrt.defvjp(lambda g, ans, x: g / (2.0 * ans))
sqrt.defjvp(lambda t, ans, x: t / (2.0 * ans))
sin = unary("sin", lambda xp, x: xp.sin(x), lambda x, ans: cos(x))
cos = unary("cos", lambda xp, x: xp.cos(x), lambda x, ans: -sin(x))
tanh = unary("tanh", lambda xp, x: xp.tanh(x), lambda x, ans: 1.0 - ans * ans)


# --- selection -----------------------------------------------------------------------------
def _tie_share(mine: Any, other: Any, g: Any) -> Any:
    """g where `mine` wins, half of g where the two tie, zero elsewhere."""
    return where(mine > other, g, where(mine == other, 0.5 * g, 0.0))


maximum = Primitive("maximum", lambda xp, x, y: xp.maximum(x, y))
maximum.defvjp(lambda g, ans, x, y: _tie_share(x, y, g), lambda g, ans, x, y: _tie_share(y, x, g))
maximum.defjvp(lambda t, ans, x, y: _tie_share(x, y, t), lambda t, ans, x, y: _tie_share(y, x, t))
minimum = Primitive("minimum", lambda xp, x, y: xp.minimum(x, y))
minimum.defvjp(lambda g, ans, x, y: _tie_share(y, x, g), lambda g, ans, x, y: _tie_share(x, y, g))
minimum.defjvp(lambda t, ans, x, y: _tie_share(y, x, t), lambda t, ans, x, y: _tie_share(x, y, t))

_where = Primitive("where", lambda xp, c, x, y: xp.where(c, x, y))
_where.defvjp(
    lambda g, ans, c, x, y: None,  # the condition is a constant
    lambda g, ans, c, x, y: _where(c, g, 0.0),
    lambda g, ans, c, x, y: _where(c, 0.0, g),
)
_where.defjvp(
    lambda t, ans, c, x, y: None,
    lambda t, ans, c, x, y: _where(c, t, 0.0),
    lambda t, ans, c, x, y: _where(c, 0.0, t),
)


def where(condition: Any, x: Any = None, y: Any = None) -> Any:
    """`numpy.where(condition, x, y)`; the one-argument form returns indices (a constant)."""
    if x is None and y is None:
        return nonzero(condition)
    if x is None or y is None:
        raise ValueError("where takes either one argument or three (condition, x, y)")
    return _where(condition, x, y)


nonzero = nondifferentiable("nonzero", lambda xp, x: xp.nonzero(x))

_clip = Primitive("clip", lambda xp, x, lo, hi: xp.clip(x, lo, hi))
_clip.defvjp(
    lambda g, ans, x, lo, hi: where((x >= lo) & (x <= hi), g, 0.0),
    lambda g, ans, x, lo, hi: where(x < lo, g, 0.0),
    lambda g, ans, x, lo, hi: where((x > hi) & (x >= lo), g, 0.0),
)
_clip.defjvp(
    lambda t, ans, x, lo, hi: where((x >= lo) & (x <= hi), t, 0.0),
    lambda t, ans, x, lo, hi: where(x < lo, t, 0.0),
    lambda t, ans, x, lo, hi: where((x > hi) & (x >= lo), t, 0.0),
)


def clip(a: Any, a_min: Any = None, a_max: Any = None, *, min: Any = None, max: Any = None) -> Any:  # noqa: A002
    """`numpy.clip`: values below a_min become a_min, above a_max become a_max (None: no bound;
    NumPy 2's spelling `min=` / `max=` works too).

    The gradient flows to `a` inside the bounds and to the bound that is active outside them.
    """
    if (a_min is not None and min is not None) or (a_max is not None and max is not None):
        raise TypeError("clip: pass each bound once, as a_min/a_max or as min/max")
    a_min = min if a_min is None else a_min
    a_max = max if a_max is None else a_max
    if a_min is None and a_max is None:
        raise ValueError("clip needs at least one of a_min and a_max")
    return _clip(a, float("-inf") if a_min is None else a_min,
                 float("inf") if a_max is None else a_max)  # fmt: skip
