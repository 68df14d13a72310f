"""Optimizers over pytrees of parameters, exposed to users as ``dp.optim`` (optax's API).

>>> opt = dp.optim.adam(1e-3)
>>> params = {'w': np.zeros(3, np.float32), 'n_layers': 2}
>>> state = opt.init(params)
>>> grads = dp.grad(lambda p: dnp.sum((p['w'] - 1.0) ** 2))(params)
>>> updates, state = opt.update(grads, state, params)
>>> params = dp.optim.apply_updates(params, updates)
>>> params['w'], params['n_layers']
(array([0.001, 0.001, 0.001], dtype=float32), 2)

An optimizer is a `GradientTransformation`: ``init(params) -> state`` and
``update(grads, state, params=None) -> (updates, state)``; ``apply_updates`` adds the
updates. States are namedtuples (and tuples of them, for `chain`) whose trees mirror params:
same containers and keys, each moment in its parameter's dtype (Adam's and RMSProp's in
float32 for float16 parameters, whose squared gradients underflow), None for constant leaves
(ints, strings, integer arrays). A None gradient leaves its parameter and moments unchanged.
``learning_rate`` is a float >= 0, a schedule (a function of the step count), or a traced
scalar: ``dp.grad`` of the loss after k unrolled steps with respect to the rate, a ``dp.vmap``
batch of rates, a jitted step's argument (recorded once for every value); so may ``momentum``
and ``weight_decay`` be (hypergradients of the decay, ...).

Owns the package's public names; the work is in .base (protocol, chain, apply_updates),
.transforms (building blocks), .optimizers (sgd, adam, adamw, rmsprop) and .schedules.
Layer L6: built only on diffprog.tree, diffprog.backend, diffprog.errors, numpy, stdlib.
"""

from .base import EmptyState, GradientTransformation, apply_updates, chain, global_norm, identity
from .optimizers import adam, adamw, rmsprop, sgd
from .schedules import (
    constant,
    cosine_decay,
    exponential_decay,
    linear_schedule,
    linear_warmup,
    warmup_cosine_decay,
)
from .transforms import (
    ScaleByAdamState,
    ScaleByRmsState,
    ScaleByScheduleState,
    TraceState,
    add_decayed_weights,
    clip_by_global_norm,
    scale,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_rms,
    scale_by_schedule,
    trace,
)

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "ScaleByAdamState",
    "ScaleByRmsState",
    "ScaleByScheduleState",
    "TraceState",
    "adam",
    "adamw",
    "add_decayed_weights",
    "apply_updates",
    "chain",
    "clip_by_global_norm",
    "constant",
    "cosine_decay",
    "exponential_decay",
    "global_norm",
    "identity",
    "linear_schedule",
    "linear_warmup",
    "rmsprop",
    "scale",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "scale_by_schedule",
    "sgd",
    "trace",
    "warmup_cosine_decay",
]
