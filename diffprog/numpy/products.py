"""Matrix products under NumPy's names: matmul (batched, 1-D operands too) and dot.

Owns: the `matmul` primitive and its rules; `dot` is built on matmul and multiply. NumPy's
1-D conventions (a vector operand gains a unit axis that the result drops) are undone in
the rules, and batch broadcasting is summed away on the edge by the reverse sweep.
Layer L4: imports L2 and the L4 helpers.
"""

from __future__ import annotations

from typing import Any

from ..core.primitive import Primitive
from .elementwise import multiply
from .manipulation import expand_dims, moveaxis, reshape, swapaxes


def _as_matrices(a: Any, b: Any, g: Any) -> tuple[Any, Any, Any]:
    """a, b and g with the unit axes NumPy's matmul adds for 1-D operands made explicit."""
    if len(a.shape) == 1:
        a = reshape(a, (1, a.shape[0]))
        g = expand_dims(g, -2)
    if len(b.shape) == 1:
        b = reshape(b, (b.shape[0], 1))
        g = expand_dims(g, -1)
    return a, b, g


def _matmul_vjp_a(g: Any, ans: Any, a: Any, b: Any) -> Any:
    a2, b2, g2 = _as_matrices(a, b, g)
    ga = matmul(g2, swapaxes(b2, -1, -2))
    return reshape(ga, ga.shape[:-2] + ga.shape[-1:]) if len(a.shape) == 1 else ga


def _matmul_vjp_b(g: Any, ans: Any, a: Any, b: Any) -> Any:
    a2, b2, g2 = _as_matrices(a, b, g)
    gb = matmul(swapaxes(a2, -1, -2), g2)
    return reshape(gb, gb.shape[:-1]) if len(b.shape) == 1 else gb


matmul = Primitive("matmul", lambda xp, a, b: xp.matmul(a, b))
matmul.defvjp(_matmul_vjp_a, _matmul_vjp_b)
matmul.defjvp(lambda t, ans, a, b: matmul(t, b), lambda t, ans, a, b: matmul(a, t))


def dot(a: Any, b: Any) -> Any:
    """`numpy.dot`: a product of scalars, vectors and matrices, and for N-D operands a sum
    over the last axis of `a` and the second-to-last of `b`."""
    na, nb = len(a.shape), len(b.shape)
    if na == 0 or nb == 0:
        return multiply(a, b)
    if na <= 2 and nb <= 2:
        return matmul(a, b)
    # N-D: out[i..., j..., m] = sum_k a[i..., k] b[j..., k, m]
    k = a.shape[-1]
    if nb == 1:
        return matmul(a, b)
    b_front = moveaxis(b, -2, 0)  # (k, j..., m)
    out = matmul(reshape(a, (-1, k)), reshape(b_front, (k, -1)))
    return reshape(out, a.shape[:-1] + b_front.shape[1:])
