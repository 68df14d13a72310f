"""The transforms users call (layer L5): `core` (grad, value_and_grad, vjp, jvp),
`jacobian` (jacrev, jacfwd, hessian, hvp)."""

from .core import grad, jvp, stop_gradient, value_and_grad, vjp
from .jacobian import hessian, hvp, jacfwd, jacobian, jacrev

__all__ = [
    "grad", "hessian", "hvp", "jacfwd", "jacobian", "jacrev", "jvp", "stop_gradient",
    "value_and_grad", "vjp",
]  # fmt: skip
