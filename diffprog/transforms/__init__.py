"""The transforms users call (layer L5): `core` (grad, value_and_grad, vjp, jvp),
`jacobian` (jacrev, jacfwd, hessian, hvp), `custom` (custom_vjp, custom_jvp,
checkpoint), `tape` (the imperative Tape), `jit` (static graphs: record, optimize, replay),
`vmap` (one call on a batch of examples)."""

from .core import grad, jvp, stop_gradient, value_and_grad, vjp
from .custom import checkpoint, custom_jvp, custom_vjp
from .jacobian import hessian, hvp, jacfwd, jacobian, jacrev
from .jit import jit
from .tape import Tape
from .vmap import vmap

__all__ = [
    "Tape",
    "checkpoint", "custom_jvp", "custom_vjp", "grad", "hessian", "hvp", "jacfwd", "jacobian", "jacrev", "jit", "jvp", "stop_gradient",
    "value_and_grad", "vjp", "vmap",
]  # fmt: skip
