"""Machine-learning helpers next to NumPy's names: sigmoid, relu, softplus, softmax,
log_softmax (logsumexp lives with the reductions).

Owns: these functions and their rules, each finite in value and gradient at inputs of
+-1e3 (no exp of a large argument anywhere on the way).
Layer L4: imports L2 and the other L4 modules.
"""

from __future__ import annotations

from typing import Any

from ..core.primitive import Primitive
from ._define import axes_of, unary
from .elementwise import where
from .reductions import _sum, logsumexp

sigmoid = unary(
    "sigmoid", lambda xp, x: 0.5 * xp.tanh(0.5 * x) + 0.5, lambda x, ans: ans * (1.0 - ans)
)
softplus = unary("softplus", lambda xp, x: xp.logaddexp(0.0, x), lambda x, ans: sigmoid(x))

relu = Primitive("relu", lambda xp, x: xp.maximum(x, 0.0))
relu.defvjp(lambda g, ans, x: where(x > 0, g, 0.0))
relu.defjvp(lambda t, ans, x: where(x > 0, t, 0.0))


def _softmax_impl(xp: Any, x: Any, *, axis: tuple[int, ...]) -> Any:
    e = xp.exp(x - xp.max(x, axis=axis, keepdims=True))
    return e / xp.sum(e, axis=axis, keepdims=True)


_softmax = Primitive("softmax", _softmax_impl)
_softmax.defvjp(lambda g, ans, x, *, axis: ans * (g - _sum(g * ans, axis=axis, keepdims=True)))
_softmax.defjvp(lambda t, ans, x, *, axis: ans * (t - _sum(t * ans, axis=axis, keepdims=True)))


def softmax(x: Any, axis: Any = -1) -> Any:
    """exp(x) / sum(exp(x)) along `axis`, stable for large |x|."""
    return _softmax(x, axis=axes_of(axis, len(x.shape)))


def log_softmax(x: Any, axis: Any = -1) -> Any:
    """x - logsumexp(x) along `axis`, stable for large |x|."""
    return x - logsumexp(x, axis=axis, keepdims=True)
