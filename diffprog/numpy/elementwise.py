"""Elementwise functions under NumPy's names, with their derivative rules.

Owns: arithmetic (add ... power, float_power, remainder/fmod, copysign), unary math (exp,
log and their variants, the trigonometric and hyperbolic functions and inverses, sinc, ...),
maximum/minimum/fmax/fmin, where, clip, and the constant-valued functions (comparisons,
floor/ceil/round/trunc/fix/rint, signbit, floor_divide, the bitwise and shift
operators on integers). Ties in maximum/minimum/fmax/fmin
share the gradient equally, as JAX does; a NaN loses in fmax/fmin. One row per function;
rules are written in diffprog ops. The holomorphic functions' rules serve complex values
unchanged (g * f'(z): JAX's convention, see complex_parts.py); abs and sign of complex z
have their own.
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.primitive import NonDifferentiable, Primitive
from ..core.trace import Tracer, raw, unwrapped
from ._define import binary, nondifferentiable, unary
from .batching import elementwise
from .complex_parts import PRIMITIVES as _COMPLEX_PARTS
from .complex_parts import conj

# --- comparisons and other constant-valued functions -------------------------------------
greater = nondifferentiable("greater", lambda xp, x, y: xp.greater(x, y))
greater_equal = nondifferentiable("greater_equal", lambda xp, x, y: xp.greater_equal(x, y))
less = nondifferentiable("less", lambda xp, x, y: xp.less(x, y))
less_equal = nondifferentiable("less_equal", lambda xp, x, y: xp.less_equal(x, y))
equal = nondifferentiable("equal", lambda xp, x, y: xp.equal(x, y))
not_equal = nondifferentiable("not_equal", lambda xp, x, y: xp.not_equal(x, y))
_sign = nondifferentiable("sign", lambda xp, x: xp.sign(x))


def sign(x: Any) -> Any:
    """`numpy.sign`: a constant for real x (its derivative is zero almost everywhere);
    z / |z| for complex z, which is differentiable, but where |z| is 0, infinite or NaN:
    there NumPy's value (0 at 0, 1 at inf + 0j, where z / |z| is NaN), a constant (untraced:
    NumPy's own, so a complex scalar gives a scalar)."""
    if _kind(x) != "c" or not isinstance(x, Tracer):
        return _sign(x)
    magnitude = abs(x)
    smooth = (magnitude != 0) & isfinite(magnitude)
    return ufunc_where(smooth, x / ufunc_where(smooth, magnitude, 1.0), _sign(x))


def _kind(x: Any) -> str | None:
    """The dtype kind of x's value ('c' for complex), read without computing on it."""
    value = unwrapped(x)
    return "c" if type(value) is complex else getattr(getattr(value, "dtype", None), "kind", None)


# bitwise and logical operators: raw masks are arrays, but dp.vmap's masks are batched values
# (x > 0 & m; also np_mask & (x > 0), which NumPy's dispatch sends here)
bitwise_and = nondifferentiable("bitwise_and", lambda xp, x, y: xp.bitwise_and(x, y))
bitwise_or = nondifferentiable("bitwise_or", lambda xp, x, y: xp.bitwise_or(x, y))
bitwise_xor = nondifferentiable("bitwise_xor", lambda xp, x, y: xp.bitwise_xor(x, y))
invert = nondifferentiable("invert", lambda xp, x: xp.invert(x))
left_shift = nondifferentiable("left_shift", lambda xp, x, y: xp.left_shift(x, y))
right_shift = nondifferentiable("right_shift", lambda xp, x, y: xp.right_shift(x, y))
logical_and = nondifferentiable("logical_and", lambda xp, x, y: xp.logical_and(x, y))
logical_or = nondifferentiable("logical_or", lambda xp, x, y: xp.logical_or(x, y))
logical_xor = nondifferentiable("logical_xor", lambda xp, x, y: xp.logical_xor(x, y))
logical_not = nondifferentiable("logical_not", lambda xp, x: xp.logical_not(x))
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

multiply = Primitive("multiply", lambda xp, x, y: xp.multiply(x, y))
multiply.defvjp(lambda g, ans, x, y: g * y, lambda g, ans, x, y: g * x)
multiply.defjvp(lambda t, ans, x, y: t * y, lambda t, ans, x, y: t * x)

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
    # y x**(y-1) everywhere but at 0 ** 0, where it is 0 * inf and x**0 (a constant) has
    # slope 0. Only that point is replaced, and its base moved to 1 inside the formula, so
    # the slope's own derivative in y at y = 0, x**-1, survives (d2/dy dx x**y) and no
    # order of derivative meets 0 * inf behind the where.
    origin = (y == 0) & (x == 0)
    return ufunc_where(origin, 0.0, y * ufunc_where(origin, 1.0, x) ** (y - 1))


def _power_dy(x: Any, y: Any, ans: Any) -> Any:
    # d/dy x**y = x**y log x: 0 where x == 0 (and y > 0), NaN for a negative base (the real
    # derivative does not exist there), as JAX does.
    return ans * log(ufunc_where(x == 0, 1.0, x))


power = binary("power", lambda xp, x, y: xp.power(x, y), _power_dx, _power_dy)

square = unary("square", lambda xp, x: xp.square(x), lambda x, ans: 2.0 * x)
def _abs_slope(x: Any, ans: Any) -> Any:
    """d|x|: sign(x) for real x; conj(z) / |z| (0 at 0) for complex z, so that the VJP is
    g conj(z) / |z| and the JVP Re(conj(z) t) / |z| (the sweep keeps the real part)."""
    if _kind(x) != "c":
        return _sign(x)
    nz = ans != 0
    return ufunc_where(nz, conj(x) / ufunc_where(nz, ans, 1.0), 0.0)


abs = unary("abs", lambda xp, x: xp.abs(x), _abs_slope)  # noqa: A001
absolute = abs

# --- unary math ----------------------------------------------------------------------------
# The ops of every model spell their rules out: one call fewer per rule than `unary`'s.
exp = Primitive("exp", lambda xp, x: xp.exp(x))
exp.defvjp(lambda g, ans, x: g * ans)
exp.defjvp(lambda t, ans, x: t * ans)
log = Primitive("log", lambda xp, x: xp.log(x))
log.defvjp(lambda g, ans, x: g / x)
log.defjvp(lambda t, ans, x: t / x)
sqrt = Primitive("sqrt", lambda xp, x: xp.sqrt(x))
sqrt.defvjp(lambda g, ans, x: g / (2.0 * ans))
sqrt.defjvp(lambda t, ans, x: t / (2.0 * ans))
sin = Primitive("sin", lambda xp, x: xp.sin(x))
sin.defvjp(lambda g, ans, x: g * cos(x))
sin.defjvp(lambda t, ans, x: t * cos(x))
cos = Primitive("cos", lambda xp, x: xp.cos(x))
cos.defvjp(lambda g, ans, x: g * -sin(x))
cos.defjvp(lambda t, ans, x: t * -sin(x))
tanh = Primitive("tanh", lambda xp, x: xp.tanh(x))
tanh.defvjp(lambda g, ans, x: g * (1.0 - ans * ans))
tanh.defjvp(lambda t, ans, x: t * (1.0 - ans * ans))


# --- selection -----------------------------------------------------------------------------
def _tie_share(mine: Any, other: Any, g: Any) -> Any:
    """g where `mine` wins, half of g where the two tie, zero elsewhere."""
    return ufunc_where(mine > other, g, ufunc_where(mine == other, 0.5 * g, 0.0))


maximum = Primitive("maximum", lambda xp, x, y: xp.maximum(x, y))
maximum.defvjp(lambda g, ans, x, y: _tie_share(x, y, g), lambda g, ans, x, y: _tie_share(y, x, g))
maximum.defjvp(lambda t, ans, x, y: _tie_share(x, y, t), lambda t, ans, x, y: _tie_share(y, x, t))
minimum = Primitive("minimum", lambda xp, x, y: xp.minimum(x, y))
minimum.defvjp(lambda g, ans, x, y: _tie_share(y, x, g), lambda g, ans, x, y: _tie_share(x, y, g))
minimum.defjvp(lambda t, ans, x, y: _tie_share(y, x, t), lambda t, ans, x, y: _tie_share(x, y, t))


def _ufunc_where_kernel(xp: Any, c: Any, x: Any, y: Any) -> Any:
    """`xp.where`, but a scalar of scalars (as NumPy's ufuncs give; its where gives a 0-d
    array): the rules and functions built on `ufunc_where` keep a host scalar's results and
    derivatives scalars, as NumPy's ufuncs would."""
    r = xp.where(c, x, y)
    if type(r) is np.ndarray and not r.ndim and not any(type(a) is np.ndarray for a in (c, x, y)):
        return r[()]
    return r


#: where with a ufunc's result convention (a scalar of scalars), for diffprog's own rules and
#: functions; `where` below is NumPy's (a 0-d array of scalars), its derivatives ufunc_where's
ufunc_where = Primitive("ufunc_where", _ufunc_where_kernel)
_where = Primitive("where", lambda xp, c, x, y: xp.where(c, x, y))
for _prim in (ufunc_where, _where):
    _prim.defvjp(
        lambda g, ans, c, x, y: None,  # the condition is a constant
        lambda g, ans, c, x, y: ufunc_where(c, g, 0.0),
        lambda g, ans, c, x, y: ufunc_where(c, 0.0, g),
    )
    _prim.defjvp(
        lambda t, ans, c, x, y: None,
        lambda t, ans, c, x, y: ufunc_where(c, t, 0.0),
        lambda t, ans, c, x, y: ufunc_where(c, 0.0, t),
    )


def where(condition: Any, x: Any = None, y: Any = None) -> Any:
    """`numpy.where(condition, x, y)`, exactly (a 0-d array when all three are scalars); the
    one-argument form returns indices (a constant)."""
    if x is None and y is None:
        return nonzero(condition)
    if x is None or y is None:
        raise ValueError("where takes either one argument or three (condition, x, y)")
    return _where(condition, x, y)


nonzero = NonDifferentiable("nonzero", lambda xp, x: xp.nonzero(x), multiple_results=True)  # a tuple

_clip = Primitive("clip", lambda xp, x, lo, hi: xp.clip(x, lo, hi))
# clip(x, lo, hi) = minimum(maximum(x, lo), hi): x passes inside [lo, hi]; lo where x < lo
# (unless lo > hi, when NumPy returns hi everywhere); hi where max(x, lo) > hi.
def _clip_masks(x: Any, lo: Any, hi: Any) -> tuple[Any, Any, Any]:
    ordered = less_equal(lo, hi)  # (NumPy's comparison: Python complex bounds have none)
    return (x >= lo) & (x <= hi), (x < lo) & ordered, (x > hi) | ~ordered


_clip.defvjp(
    lambda g, ans, x, lo, hi: ufunc_where(_clip_masks(x, lo, hi)[0], g, 0.0),
    lambda g, ans, x, lo, hi: ufunc_where(_clip_masks(x, lo, hi)[1], g, 0.0),
    lambda g, ans, x, lo, hi: ufunc_where(_clip_masks(x, lo, hi)[2], g, 0.0),
)
_clip.defjvp(
    lambda t, ans, x, lo, hi: ufunc_where(_clip_masks(x, lo, hi)[0], t, 0.0),
    lambda t, ans, x, lo, hi: ufunc_where(_clip_masks(x, lo, hi)[1], t, 0.0),
    lambda t, ans, x, lo, hi: ufunc_where(_clip_masks(x, lo, hi)[2], t, 0.0),
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
    value = unwrapped(a)  # (no bound: an integer's own extremes, so its dtype is kept)
    dtype = value.dtype if hasattr(value, "dtype") else np.asarray(value).dtype
    lo, hi = (np.iinfo(dtype).min, np.iinfo(dtype).max) if dtype.kind in "iu" else (
        False, True) if dtype == bool else (float("-inf"), float("inf"))  # fmt: skip
    return _clip(a, lo if a_min is None else a_min, hi if a_max is None else a_max)


# === more of NumPy's elementwise functions =================================================
_LN2, _LN10, _D2R = 0.6931471805599453, 2.302585092994046, 0.017453292519943295


def _over(name: str, impl: Any, denom: Any) -> Primitive:
    """An elementwise primitive with f'(x) = 1 / denom(x, f(x)) (one division per rule)."""
    prim = Primitive(name, impl)
    prim.defvjp(lambda g, ans, x: g / denom(x, ans))
    prim.defjvp(lambda t, ans, x: t / denom(x, ans))
    return prim


def _linear(name: str, impl: Any, scale: float) -> Primitive:
    """An elementwise primitive f(x) = scale * x (up to NumPy's rounding)."""
    prim = Primitive(name, impl)
    prim.defvjp(lambda g, ans, x: g if scale == 1.0 else g * scale)
    prim.defjvp(lambda t, ans, x: t if scale == 1.0 else t * scale)
    return prim


# --- exponentials and logarithms -----------------------------------------------------------
expm1 = unary("expm1", lambda xp, x: xp.expm1(x), lambda x, ans: ans + 1.0)
exp2 = unary("exp2", lambda xp, x: xp.exp2(x), lambda x, ans: ans * _LN2)
log1p = _over("log1p", lambda xp, x: xp.log1p(x), lambda x, ans: 1.0 + x)
log2 = _over("log2", lambda xp, x: xp.log2(x), lambda x, ans: x * _LN2)
log10 = _over("log10", lambda xp, x: xp.log10(x), lambda x, ans: x * _LN10)
reciprocal = unary("reciprocal", lambda xp, x: xp.reciprocal(x), lambda x, ans: -(ans * ans))
cbrt = _over("cbrt", lambda xp, x: xp.cbrt(x), lambda x, ans: 3.0 * (ans * ans))

# --- trigonometric and hyperbolic ----------------------------------------------------------
tan = unary("tan", lambda xp, x: xp.tan(x), lambda x, ans: 1.0 + ans * ans)
def _one_minus_square(x: Any) -> Any:
    """1 - x^2 with the value of (1 - x)(1 + x), exact near |x| = 1, where 1 - x * x cancels
    the rounding of x * x (arcsin's slope was 2e-9 off in float64 at x = 1 - 1e-8, 4e-5 in
    float32 at 1 - 2e-4), and the derivatives of 1 - x * x (-2x: finite at |x| = 1 to every
    order, where those of the product meet inf * 0): the difference is added as a constant."""
    r = raw(x)
    return (1.0 - x * x) + ((1.0 - r) * (1.0 + r) - (1.0 - r * r))


arcsin = _over("arcsin", lambda xp, x: xp.arcsin(x), lambda x, ans: sqrt(_one_minus_square(x)))
arccos = _over("arccos", lambda xp, x: xp.arccos(x), lambda x, ans: -sqrt(_one_minus_square(x)))
arctan = _over("arctan", lambda xp, x: xp.arctan(x), lambda x, ans: 1.0 + x * x)
sinh = unary("sinh", lambda xp, x: xp.sinh(x), lambda x, ans: cosh(x))
cosh = unary("cosh", lambda xp, x: xp.cosh(x), lambda x, ans: sinh(x))


def _hypot_slope(x: Any, ans: Any) -> Any:
    """x / hypot(x, y), taken as 0 at the origin: a constant there, so every higher
    derivative at the origin is 0 too (as for linalg.norm; see docs/reliability.md)."""
    nz = ans != 0
    return ufunc_where(nz, x / ufunc_where(nz, ans, 1.0), 0.0)


hypot = binary("hypot", lambda xp, x, y: xp.hypot(x, y),
               lambda x, y, ans: _hypot_slope(x, ans), lambda x, y, ans: _hypot_slope(y, ans))
arcsinh = _over("arcsinh", lambda xp, x: xp.arcsinh(x),  # sqrt(1 + x^2); hypot is real only
                lambda x, ans: sqrt(1.0 + x * x) if _kind(x) == "c" else hypot(1.0, x))
arccosh = _over("arccosh", lambda xp, x: xp.arccosh(x),
                lambda x, ans: sqrt(x - 1.0) * sqrt(x + 1.0))  # fmt: skip
arctanh = _over("arctanh", lambda xp, x: xp.arctanh(x), lambda x, ans: _one_minus_square(x))
arctan2 = binary("arctan2", lambda xp, y, x: xp.arctan2(y, x),
                 lambda y, x, ans: x / (x * x + y * y),
                 lambda y, x, ans: -y / (x * x + y * y))  # fmt: skip
deg2rad = _linear("deg2rad", lambda xp, x: xp.deg2rad(x), _D2R)
rad2deg = _linear("rad2deg", lambda xp, x: xp.rad2deg(x), 1.0 / _D2R)
radians = _linear("radians", lambda xp, x: xp.radians(x), _D2R)
degrees = _linear("degrees", lambda xp, x: xp.degrees(x), 1.0 / _D2R)
positive = _linear("positive", lambda xp, x: xp.positive(x), 1.0)
fabs = unary("fabs", lambda xp, x: xp.fabs(x), lambda x, ans: _sign(x))

# --- log-sum-exp pairs: the partials are sigmoids of x - y, accurate in both tails ----------
def _logaddexp_partial(mine: Any, other: Any, exp_: Any) -> Any:
    """sigmoid(mine - other) (in exp_'s base) as exp(min(d, 0)) / (1 + exp(-|d|)): no
    overflow at any |d|, no cancellation in the tails, the right slope at a tie."""
    d = mine - other
    e = exp_(ufunc_where(d >= 0, -d, d))
    return ufunc_where(d >= 0, 1.0, e) / (1.0 + e)


logaddexp = binary("logaddexp", lambda xp, x, y: xp.logaddexp(x, y),
                   lambda x, y, ans: _logaddexp_partial(x, y, exp),
                   lambda x, y, ans: _logaddexp_partial(y, x, exp))  # fmt: skip
logaddexp2 = binary("logaddexp2", lambda xp, x, y: xp.logaddexp2(x, y),
                    lambda x, y, ans: _logaddexp_partial(x, y, exp2),
                    lambda x, y, ans: _logaddexp_partial(y, x, exp2))  # fmt: skip
float_power = binary("float_power", lambda xp, x, y: xp.float_power(x, y), _power_dx, _power_dy)


# --- sinc: NumPy's normalised sin(pi x) / (pi x), every derivative accurate near 0 ---------
def _sinc_derivative_impl(xp: Any, x: Any, *, k: int) -> Any:
    """d^k/dx^k sinc(x) = pi^k f^(k)(pi x) with f(u) = sin(u) / u: its Taylor series for
    |u| < 2, else the recurrence u f^(j) + j f^(j-1) = sin^(j)(u)."""
    u = xp.asarray(x) * 3.141592653589793
    small = xp.abs(u) < 2.0
    us = xp.where(small, u, 0.0)
    taylor, first = 0.0, (k + 1) // 2  # f(u) = sum_n (-1)^n u^2n / (2n + 1)!
    for n in range(first, first + 16):
        c = (-1.0) ** n / math.factorial(2 * n + 1) * math.perm(2 * n, k)
        taylor = taylor + c * us ** (2 * n - k)
    ul = xp.where(small, 1.0, u)
    s, c = xp.sin(ul), xp.cos(ul)
    f = s / ul
    for j in range(1, k + 1):
        f = ((s, c, -s, -c)[j % 4] - j * f) / ul
    return 3.141592653589793**k * xp.where(small, taylor, f)


_sinc_derivative = Primitive("sinc_derivative", _sinc_derivative_impl)
_sinc_derivative.defvjp(lambda g, ans, x, *, k: g * _sinc_derivative(x, k=k + 1))
_sinc_derivative.defjvp(lambda t, ans, x, *, k: t * _sinc_derivative(x, k=k + 1))
sinc = unary("sinc", lambda xp, x: xp.sinc(x), lambda x, ans: _sinc_derivative(x, k=1))


# --- fmax / fmin: like maximum / minimum, but a NaN loses (the other argument gets g) ------
def _nan_share(mine: Any, other: Any, g: Any, wins: Any, first: bool) -> Any:
    m, o = raw(mine), raw(other)
    won = wins(m, o) | (isnan(o) & (first | ~isnan(m)))  # both NaN: the first one
    return ufunc_where(won, g, ufunc_where(m == o, 0.5 * g, 0.0))


def _fselect(name: str, wins: Any) -> Primitive:
    prim = Primitive(name, lambda xp, x, y: getattr(xp, name)(x, y))
    prim.defvjp(lambda g, ans, x, y: _nan_share(x, y, g, wins, True),
                lambda g, ans, x, y: _nan_share(y, x, g, wins, False))  # fmt: skip
    prim.defjvp(lambda t, ans, x, y: _nan_share(x, y, t, wins, True),
                lambda t, ans, x, y: _nan_share(y, x, t, wins, False))  # fmt: skip
    return prim


fmax = _fselect("fmax", lambda m, o: m > o)
fmin = _fselect("fmin", lambda m, o: m < o)

# --- functions with a zero derivative almost everywhere: constants ------------------------
floor = nondifferentiable("floor", lambda xp, x: xp.floor(x))
ceil = nondifferentiable("ceil", lambda xp, x: xp.ceil(x))
rint = nondifferentiable("rint", lambda xp, x: xp.rint(x))
trunc = nondifferentiable("trunc", lambda xp, x: xp.trunc(x))
signbit = nondifferentiable("signbit", lambda xp, x: xp.signbit(x))
floor_divide = nondifferentiable("floor_divide", lambda xp, x, y: xp.floor_divide(x, y))
_fix = nondifferentiable("fix", lambda xp, x: xp.fix(x))
_round = nondifferentiable("round", lambda xp, x, *, decimals: xp.round(x, decimals))
_trunc_quotient = nondifferentiable("trunc_quotient", lambda xp, x, y: xp.trunc(x / y))


def round(a: Any, decimals: int = 0, out: Any = None) -> Any:  # noqa: A001
    """`numpy.round` (half to even, `decimals` places); a constant, its derivative is zero.

    >>> import numpy as np
    >>> from diffprog.numpy.elementwise import round
    >>> round(np.array([0.5, 1.5, 2.25]), decimals=1)
    array([0.5, 1.5, 2.2])
    """
    _no_out("round", out)
    return _round(a, decimals=int(decimals))


around = round


def fix(x: Any, out: Any = None) -> Any:
    """`numpy.fix`: round towards zero; a constant, its derivative is zero."""
    _no_out("fix", out)
    return _fix(x)


def _no_out(name: str, out: Any) -> None:
    if out is not None:
        raise TypeError(f"{name}: the `out=` option is not supported (diffprog never writes "
                        "in place)")  # fmt: skip


# --- remainders and signs: piecewise linear --------------------------------------------------
remainder = Primitive("remainder", lambda xp, x, y: xp.remainder(x, y))
remainder.defvjp(lambda g, ans, x, y: g, lambda g, ans, x, y: -g * floor_divide(x, y))
remainder.defjvp(lambda t, ans, x, y: t, lambda t, ans, x, y: -t * floor_divide(x, y))
mod = remainder
fmod = Primitive("fmod", lambda xp, x, y: xp.fmod(x, y))
fmod.defvjp(lambda g, ans, x, y: g, lambda g, ans, x, y: -g * _trunc_quotient(x, y))
fmod.defjvp(lambda t, ans, x, y: t, lambda t, ans, x, y: -t * _trunc_quotient(x, y))
copysign = Primitive("copysign", lambda xp, x, y: xp.copysign(x, y))
copysign.defvjp(lambda g, ans, x, y: ufunc_where(signbit(x) == signbit(y), g, -g),
                lambda g, ans, x, y: None)  # fmt: skip
copysign.defjvp(lambda t, ans, x, y: ufunc_where(signbit(x) == signbit(y), t, -t),
                lambda t, ans, x, y: None)  # fmt: skip

# dp.vmap: every primitive declared here is elementwise, but nonzero (its result's shape is
# the data's); so are complex_parts' (batching.py is above that module)
elementwise(*{id(p): p for p in globals().values() if isinstance(p, Primitive)
              and p.impl.__module__ == __name__ and p is not nonzero}.values(), *_COMPLEX_PARTS)  # fmt: skip

__all__ = [
    "abs", "absolute", "add", "arccos", "arccosh", "arcsin", "arcsinh", "arctan", "arctan2",
    "arctanh", "around", "bitwise_and", "bitwise_or", "bitwise_xor", "cbrt", "ceil", "clip", "copysign", "cos", "cosh", "deg2rad", "degrees",
    "divide", "equal", "exp", "exp2", "expm1", "fabs", "fix", "float_power", "floor",
    "floor_divide", "fmax", "fmin", "fmod", "greater", "greater_equal", "hypot", "isfinite",
    "invert", "isinf", "isnan", "left_shift", "less", "less_equal", "log", "log10", "log1p", "log2",
    "logaddexp", "logaddexp2", "logical_and", "logical_not", "logical_or", "logical_xor", "maximum", "minimum", "mod", "multiply", "negative", "nonzero", "not_equal",
    "positive", "power", "rad2deg", "radians", "reciprocal", "remainder", "right_shift", "rint", "round",
    "sign", "signbit", "sin", "sinc", "sinh", "sqrt", "square", "subtract", "tan", "tanh",
    "true_divide", "trunc", "where",
]  # fmt: skip
