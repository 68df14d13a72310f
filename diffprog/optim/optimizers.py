"""The ready-made optimizers: `sgd`, `adam`, `adamw`, `rmsprop`, each a `chain` of the
building blocks in .transforms with optax's formulas and defaults.

``learning_rate`` is a float >= 0 or a schedule (a function of the step count, e.g.
``dp.optim.cosine_decay(1e-3, 1000)``); updates already carry the minus sign, so
``apply_updates(params, updates)`` descends. The rate, ``momentum`` and ``weight_decay`` may
also be traced scalars (differentiated, batched by dp.vmap, dp.jit arguments).
Layer L6: imports only .base and .transforms (diffprog.tree, backend, errors beneath them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .base import GradientTransformation, chain
from .transforms import (
    add_decayed_weights,
    is_zero,
    real_or_traced,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_rms,
    trace,
)

__all__ = ["adam", "adamw", "rmsprop", "sgd"]


def sgd(learning_rate: float | Callable[[int], Any], momentum: float = 0.0,
        nesterov: bool = False) -> GradientTransformation:
    """Stochastic gradient descent, optionally with (Nesterov) momentum:
    ``v = g + momentum * v``; ``p -= lr * v`` (or ``lr * (g + momentum * v)`` with
    ``nesterov``), as PyTorch without dampening and optax.

    >>> opt = dp.optim.sgd(0.1, momentum=0.9)
    >>> params = {'w': 1.0}
    >>> state = opt.init(params)
    >>> updates, state = opt.update({'w': 2.0}, state, params)
    >>> dp.optim.apply_updates(params, updates)
    {'w': 0.8}
    """
    momentum = real_or_traced("sgd: momentum", momentum, 0.0)
    if is_zero(momentum):
        return chain(scale_by_learning_rate(learning_rate))
    return chain(trace(momentum, nesterov=nesterov), scale_by_learning_rate(learning_rate))


def adam(learning_rate: float | Callable[[int], Any], b1: float = 0.9, b2: float = 0.999,
         eps: float = 1e-8) -> GradientTransformation:
    """Adam (Kingma & Ba): ``p -= lr * m̂ / (sqrt(v̂) + eps)`` with bias-corrected moments.

    >>> opt = dp.optim.adam(0.1)
    >>> params = {'w': np.array([1.0, 2.0], dtype=np.float32)}
    >>> updates, state = opt.update({'w': np.array([3.0, -1.0], np.float32)},
    ...                             opt.init(params), params)
    >>> dp.optim.apply_updates(params, updates)
    {'w': array([0.9, 2.1], dtype=float32)}
    """
    return chain(scale_by_adam(b1, b2, eps), scale_by_learning_rate(learning_rate))


def adamw(learning_rate: float | Callable[[int], Any], b1: float = 0.9, b2: float = 0.999,
          eps: float = 1e-8, weight_decay: float = 1e-4, mask: Any = None
          ) -> GradientTransformation:
    """Adam with decoupled weight decay (Loshchilov & Hutter), optax's form:
    ``p -= lr * (m̂ / (sqrt(v̂) + eps) + weight_decay * p)``. ``mask`` (a tree of bools
    like params, or a function of params returning one) picks the leaves to decay; by
    default all floating leaves are. ``update`` needs ``params``.

    >>> opt = dp.optim.adamw(0.1, weight_decay=0.5)
    >>> params = {'w': 2.0}
    >>> updates, _ = opt.update({'w': 1.0}, opt.init(params), params)
    >>> round(updates['w'], 6)  # -0.1 * (1 + 0.5 * 2)
    -0.2
    """
    return chain(scale_by_adam(b1, b2, eps), add_decayed_weights(weight_decay, mask),
                 scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate: float | Callable[[int], Any], decay: float = 0.9,
            eps: float = 1e-8, momentum: float = 0.0, nesterov: bool = False
            ) -> GradientTransformation:
    """RMSProp, optax's form: ``nu = decay * nu + (1 - decay) * g**2``,
    ``u = lr * g / sqrt(nu + eps)``; with ``momentum``, ``v = u + momentum * v`` and
    ``p -= v``.

    >>> opt = dp.optim.rmsprop(0.1, decay=0.75, eps=0.0)
    >>> opt.update({'w': 3.0}, opt.init({'w': 1.0}))[0]
    {'w': -0.2}
    """
    momentum = real_or_traced("rmsprop: momentum", momentum, 0.0)
    parts = [scale_by_rms(decay, eps), scale_by_learning_rate(learning_rate)]
    if not is_zero(momentum):
        parts.append(trace(momentum, nesterov=nesterov))
    return chain(*parts)
