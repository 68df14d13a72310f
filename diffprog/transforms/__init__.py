"""The transforms users call (layer L5): `core` (grad, value_and_grad, vjp, jvp),
`jacobian` (jacrev, jacfwd, hessian, hvp), `custom` (custom_vjp, custom_jvp,
checkpoint), `tape` (the imperative Tape), `jit` (static graphs: record, optimize, replay)."""

from .core import grad, jvp, stop_gradient, value_and_grad, vjp
from .custom import checkpoint, custom_jvp, custom_vjp
from .jacobian import hessian, hvp, jacfwd, jacobian, jacrev
from .jit import jit
from .tape import Tape

__all__ = [
    "Tape",
    "checkpoint", "custom_jvp", "custom_vjp", "grad", "hessian", "hvp", "jacfwd", "jacobian", "jacrev", "jit", "jvp", "stop_gradient",
    "value_and_grad", "vjp",
]  # fmt: skip
