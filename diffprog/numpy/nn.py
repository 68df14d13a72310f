"""Machine-learning helpers next to NumPy's names: sigmoid, relu, softplus, logsumexp,
softmax, log_softmax.

Owns: these functions and their rules, each finite in value and gradient at inputs of
+-1e3 (no exp of a large argument on the way, but for sigmoid's exp(-x), whose overflow to
inf gives the exact limit 0). logsumexp, softmax and log_softmax
take Python numbers and lists, integers as float64 (SciPy's dtypes).
Layer L4: imports L2 and the other L4 modules.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..core.primitive import Primitive
from ._define import axes_of, kept_shape, unary
from .batching import along_axes, elementwise
from .elementwise import exp, ufunc_where
from .manipulation import as_array
from .reductions import sum_over, rows_first, short_rows, spread

def _sigmoid_impl(xp: Any, x: Any) -> Any:
    """1 / (1 + exp(-x)): within 1.2 ulp of the exact value everywhere, the left tail
    included (sigmoid(-40) = 4.2e-18, so log(sigmoid(x)) = x there), where 0.5 tanh(x / 2)
    + 0.5 gives 0 below x = -37. exp(-x) overflows to inf below x = -709 (-88 in float32),
    which makes the exact limit 0, so that overflow is not reported. Complex z: e^z / (1 + e^z)
    where Re z < 0, so no exp overflows (1 / (1 + e^-z) was inf / inf = NaN below Re z = -709,
    where the value is e^z, or 0)."""
    if xp.iscomplexobj(x):
        left = x.real < 0
        e = xp.exp(xp.where(left, x, -x))  # |e| <= 1
        return xp.where(left, e, 1.0) / (1.0 + e)
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + xp.exp(0.0 - x))  # 0.0 - x: unsigned and bool inputs too


sigmoid = unary("sigmoid", _sigmoid_impl, lambda x, ans: ans * (1.0 - ans))
softplus = unary("softplus", lambda xp, x: xp.logaddexp(0.0, x), lambda x, ans: sigmoid(x))

relu = Primitive("relu", lambda xp, x: xp.maximum(x, 0.0))
relu.defvjp(lambda g, ans, x: ufunc_where(x > 0, g, 0.0))
relu.defjvp(lambda t, ans, x: ufunc_where(x > 0, t, 0.0))


# --- normalisations along an axis: logsumexp, softmax, log_softmax ----------------------------
# Each shifts by the maximum before exponentiating (x - max is exact), so values and
# derivatives are finite and accurate to the last bits at |x| ~ 1e3, in float32 too.
def _shifted(xp: Any, x: Any, axis: tuple[int, ...], real: bool = False) -> tuple[Any, Any]:
    if type(x) is float:  # a watched Python float
        x = xp.asarray(x)
    if x.size == 0:  # an empty reduction has no maximum: no shift
        return x, xp.zeros(kept_shape(x.shape, axis), dtype=x.dtype)
    m = x.max(axis=axis, keepdims=True)  # the method: less wrapper than xp.max
    if real and m.dtype.kind == "c":  # by the largest real part alone (NumPy orders complex
        m = m.real  # values by it first): the phase is kept, so log stays on its principal branch
    if not (type(m) is np.ndarray and m.dtype.kind == "f" and math.isfinite(m.sum())):
        m = xp.where(xp.isfinite(m), m, 0)  # a row of -inf (or an inf): no shift
    return x - m, m


def _rows_first(impl: Any, reduces: bool = False) -> Any:
    """`impl` run on many short trailing rows as columns (reductions.short_rows): NumPy
    reduces and broadcasts along a leading axis one vector operation per element of a row,
    along a last axis with a fixed cost per row (a 128 x 10 log_softmax: 14 -> 11 us)."""

    def run(xp: Any, x: Any, *, axis: tuple[int, ...], **params: Any) -> Any:
        n = short_rows(x, axis)
        if not n:
            return impl(xp, x, axis=axis, **params)
        out = impl(xp, rows_first(x, n), axis=(0,), **params)
        if not reduces:  # softmax, log_softmax: back to x's layout
            return np.ascontiguousarray(out.T).reshape(x.shape)
        lead = x.shape[: x.ndim - len(axis)]
        return out.reshape(lead + (1,) * len(axis) if params["keepdims"] else lead)

    return run


def _logsumexp_impl(xp: Any, x: Any, *, axis: tuple[int, ...], keepdims: bool) -> Any:
    s, m = _shifted(xp, x, axis, real=True)  # (SciPy's value for complex x: the principal log)
    if s.size == 0:  # empty groups: log(0) = -inf, as SciPy (without NumPy's divide warning)
        out = xp.full(m.shape, -xp.inf, dtype=m.dtype)
    else:
        out = xp.log(xp.exp(s).sum(axis=axis, keepdims=True)) + m
    return out if keepdims else xp.squeeze(out, axis=axis)[()]  # 0-d: a scalar, as SciPy


def _softmax_impl(xp: Any, x: Any, *, axis: tuple[int, ...]) -> Any:
    e = xp.exp(_shifted(xp, x, axis)[0])
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax_impl(xp: Any, x: Any, *, axis: tuple[int, ...]) -> Any:
    s = _shifted(xp, x, axis)[0]
    lse = xp.log(xp.exp(s).sum(axis=axis, keepdims=True))
    if s is x:  # empty: no shift was made
        return s - lse
    s -= lse  # s is new: written in place
    return s


_softmax = Primitive("softmax", _rows_first(_softmax_impl))
_softmax.defvjp(lambda g, ans, x, *, axis: ans * (g - sum_over(g * ans, axis=axis, keepdims=True)))
_softmax.defjvp(lambda t, ans, x, *, axis: ans * (t - sum_over(t * ans, axis=axis, keepdims=True)))

_log_softmax = Primitive("log_softmax", _rows_first(_log_softmax_impl))
# Both rules take softmax = exp(log_softmax): one exp instead of a second softmax pass (as
# PyTorch does; exact where it matters, since a softmax entry with a large error in exp is
# vanishingly small).
_log_softmax.defvjp(
    lambda g, ans, x, *, axis: g - exp(ans) * sum_over(g, axis=axis, keepdims=True)
)
_log_softmax.defjvp(
    lambda t, ans, x, *, axis: t - sum_over(t * exp(ans), axis=axis, keepdims=True)
)

_logsumexp = Primitive("logsumexp", _rows_first(_logsumexp_impl, reduces=True))
_logsumexp.defvjp(
    lambda g, ans, x, *, axis, keepdims: spread(g, x, axis, keepdims) * _softmax(x, axis=axis)
)
_logsumexp.defjvp(
    lambda t, ans, x, *, axis, keepdims: sum_over(
        t * _softmax(x, axis=axis), axis=axis, keepdims=keepdims
    )
)

# dp.vmap's rules
elementwise(sigmoid, softplus, relu)
along_axes(_softmax, _log_softmax, _logsumexp)


def logsumexp(a: Any, axis: Any = None, keepdims: bool = False) -> Any:
    """log(sum(exp(a))) along `axis` (all axes by default), without overflow, with
    `scipy.special.logsumexp`'s values and dtypes: integers and booleans give float64, and
    an empty group gives -inf (its entries, none, get no gradient).

    >>> import diffprog.numpy as dnp, numpy as np
    >>> float(dnp.logsumexp(np.array([1000.0, 1000.0])))  # doctest: +ELLIPSIS
    1000.693...
    """
    a = _floating(a)
    # a 0-d `a` with axis 0 or -1: NumPy's sum's rule (SciPy 1.17 takes it as 1-d, so its
    # keepdims=True gives shape (1,) there; diffprog keeps a reduction's shape, ())
    return _logsumexp(a, axis=axes_of(axis, len(a.shape), zero_d="nothing"), keepdims=keepdims)


def softmax(x: Any, axis: Any = -1) -> Any:
    """exp(x) / sum(exp(x)) along `axis`, stable for large |x|."""
    x = _floating(x)
    return _softmax(x, axis=axes_of(axis, len(x.shape), zero_d="nothing"))


def log_softmax(x: Any, axis: Any = -1) -> Any:
    """x - logsumexp(x) along `axis`, stable and accurate for large |x|."""
    x = _floating(x)
    return _log_softmax(x, axis=axes_of(axis, len(x.shape), zero_d="nothing"))


def _floating(a: Any) -> Any:
    """`a` as an array; integers and booleans (constants) as float64, as SciPy computes,
    traced ones too (dp.jit and dp.vmap trace integer arrays: uint8's x - max wrapped
    around, log_softmax's in-place subtraction refused an integer array)."""
    a = as_array(a)
    return a.astype(np.float64) if a.dtype.kind in "biu" else a


__all__ = ["log_softmax", "logsumexp", "relu", "sigmoid", "softmax", "softplus"]
