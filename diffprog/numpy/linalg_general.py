"""Linear algebra of general real matrices, built on linalg's decompositions and re-exported
by diffprog.numpy.linalg: eig and eigvals (non-symmetric eigenproblems with a real
spectrum), lstsq (least squares, any rank) and norm (with the singular-value norms).

Owns: the `eig` and `lstsq` primitives and their rules, in diffprog ops (any order), and
`norm`: 'nuc', 2 and -2 of matrices through svdvals, every other order reductions.norm.
- eig: A V = V diag(w) with unit-norm columns, as NumPy normalises them. With K = V^-1 dA V
  and F_ij = 1 / (w_j - w_i): dw = diag(K), dV = V (F o K) minus each column's component
  along itself (which keeps it unit). Distinct eigenvalues are assumed; eigenvectors are
  defined up to sign (a phase, when complex), so differentiate invariant functions of them.
  The rules hold for complex eigenvalues and matrices (JAX's convention).
- lstsq: x = P b with P the pseudo-inverse (singular values below rcond * the largest one
  count as zero, as in NumPy). The derivative is that of the minimum-norm solution at
  constant rank, dP = -P dA P + P P^T dA^T (I - A P) + (I - P A) dA^T P^T P, every product
  with P being one more lstsq (P^T = pinv(A^T)). Returns (x, residuals, rank, s) as NumPy:
  residuals |b - A x|^2 per column only for rank N and M > N (else empty), s the singular
  values (differentiable, from svdvals).
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import numpy as np

from ..ad.batching import every, everywhere, example_ndim
from ..backend import asarray_like, namespace_of
from ..core.primitive import Primitive
from ..core.trace import Tracer, raw
from .batching import stacked
from .joins import as_array
from .complex_parts import real
from .linalg import (
    _H,
    _cj,
    _diag,
    _diag_embed,
    _gap_inverse,
    _is_complex,
    _mT,
    _square,
    solve,
    svdvals,
)
from .manipulation import expand_dims, moveaxis, reshape
from .products import matmul
from .reductions import max as _max
from .reductions import min as _min
from .reductions import count_nonzero
from .reductions import norm as _entrywise_norm
from .reductions import sum as _sum

EigResult = namedtuple("EigResult", ["eigenvalues", "eigenvectors"])


# --- eig -----------------------------------------------------------------------------------
def _eig_impl(xp: Any, a: Any) -> tuple[Any, Any]:
    if getattr(xp.linalg, "eig", None) is None:
        raise NotImplementedError(f"eig: {xp.__name__} has no general eigensolver "
                                  "(numpy.linalg.eig); move the matrix to the CPU")  # fmt: skip
    w, v = xp.linalg.eig(a)
    if w.dtype.kind == "c" and xp is not np and everywhere(w.imag == 0):
        w, v = w.real, v.real  # NumPy gives real arrays for a real spectrum; CuPy may not
    return w, v


def _unit_columns_tangent(v: Any, dv: Any) -> Any:
    """dv less each column's component along its unit column of v (Re v_k^H dv_k = 0)."""
    return dv - v * expand_dims(_real(_sum(_cj(v) * dv, axis=-2)), -2)


def _unit_columns_cotangent(v: Any, g: Any) -> Any:
    """The transpose of `_unit_columns_tangent` under Re sum(x * y)."""
    return g - _cj(v) * expand_dims(_real(_sum(v * g, axis=-2)), -2)


def _real(x: Any) -> Any:
    return real(x) if _is_complex(x) else x


def _eig_jvp(t: Any, ans: Any, a: Any) -> tuple[Any, Any]:
    w, v = ans
    k = solve(v, matmul(t, v))  # V^-1 dA V
    return _diag(k), _unit_columns_tangent(v, matmul(v, _gap_inverse(w) * k))


def _eig_vjp(g: Any, ans: Any, a: Any) -> Any:
    (gw, gv), (w, v) = g, ans
    inner = None if gw is None else _diag_embed(gw)
    if gv is not None:
        f = _gap_inverse(w) * matmul(_mT(v), _unit_columns_cotangent(v, gv))
        inner = f if inner is None else inner + f
    return solve(_mT(v), matmul(inner, _mT(v)))  # V^-T inner V^T


_eig = Primitive("eig", _eig_impl, multiple_results=True)
_eig.defvjp(_eig_vjp)
_eig.defjvp(_eig_jvp)
stacked(_eig)  # dp.vmap: NumPy's eig maps over leading axes


def eig(a: Any) -> EigResult:
    """`numpy.linalg.eig`, batched: (eigenvalues, eigenvectors) of square matrices, the
    vectors in unit-norm columns. Differentiable for distinct eigenvalues, real or complex
    (eigenvectors are defined up to a phase: differentiate phase-invariant functions of them).

    >>> import numpy as np
    >>> from diffprog.numpy.linalg import eig
    >>> eig(np.array([[2.0, 1.0], [0.0, 3.0]])).eigenvalues
    array([2., 3.])
    """
    a = as_array(a)
    _square("eig", a)
    if not isinstance(a, Tracer):
        return EigResult(*namespace_of((a,)).linalg.eig(a))
    return EigResult(*_eig(a))


def eigvals(a: Any) -> Any:
    """`numpy.linalg.eigvals`: the eigenvalues of square matrices (see `eig`)."""
    return eig(a).eigenvalues


# --- lstsq ---------------------------------------------------------------------------------
def _outer(p: Any, q: Any) -> Any:
    """p q^T for vectors, p @ q^T for matrices (one column per right-hand side)."""
    if len(p.shape) == 1:
        return expand_dims(p, -1) * expand_dims(q, 0)
    return matmul(p, _mT(q))


def _lstsq_jvp_a(t: Any, x: Any, a: Any, b: Any, *, rcond: float) -> Any:
    y = _lstsq(_H(a), x, rcond=rcond)  # P^H x
    w = matmul(_H(t), y)  # dA^H P^H x
    residual = b - matmul(a, x)
    z = _lstsq(_H(a), matmul(_H(t), residual), rcond=rcond) - matmul(t, x) - matmul(a, w)
    return _lstsq(a, z, rcond=rcond) + w  # P (-dA x + P^H dA^H r - A w) + w


def _lstsq_vjp_a(g: Any, x: Any, a: Any, b: Any, *, rcond: float) -> Any:
    """The transpose of the JVP: -P^T g x^T + conj(r) (P P^H conj(g))^T
    + conj(P^H x) conj((I - P A)^T g)^T, conj a no-op for real values."""
    u = _lstsq(_mT(a), g, rcond=rcond)  # P^T g
    y = _lstsq(_H(a), x, rcond=rcond)  # P^H x
    residual = b - matmul(a, x)
    q = g - matmul(_mT(a), u)  # (I - P A)^T g
    return (_outer(_cj(residual), _lstsq(a, _cj(u), rcond=rcond)) + _outer(_cj(y), _cj(q))
            - _outer(u, x))


def _lstsq_impl(xp: Any, a: Any, b: Any, *, rcond: float) -> Any:
    """The minimum-norm least-squares solution; a stack of matrices (dp.vmap's batch, b a
    stack of matrices too) through its SVD, with NumPy's cutoff: singular values at most
    rcond times the largest count as zero."""
    if len(a.shape) == 2:
        return xp.linalg.lstsq(a, b, rcond)[0]
    u, s, vh = xp.linalg.svd(a, full_matrices=False)
    kept = s > rcond * s[..., :1]
    scale = xp.where(kept, 1 / xp.where(kept, s, 1), 0)[..., None]
    return xp.conj(vh).swapaxes(-1, -2) @ (scale * (xp.conj(u).swapaxes(-1, -2) @ b))


def _lstsq_batch(size: int, batched: tuple, a: Any, b: Any, *, rcond: float) -> Any:
    """dp.vmap's rule: a shared matrix solves every example's right-hand sides at once (as
    columns, by NumPy's lstsq); a batch of matrices through the stacked SVD."""
    vector = example_ndim(b, batched[1]) == 1
    if not batched[0]:  # the examples' right-hand sides side by side: (M, K * batch)
        cols = moveaxis(b, 0, -1)
        x = _lstsq(a, reshape(cols, (cols.shape[0], -1)), rcond=rcond)
        return moveaxis(reshape(x, tuple(x.shape[:1]) + tuple(cols.shape[1:])), -1, 0)
    b = every(b, batched[1], size)
    x = _lstsq(a, expand_dims(b, -1) if vector else b, rcond=rcond)
    return reshape(x, tuple(x.shape[:-1])) if vector else x


_lstsq = Primitive("lstsq", _lstsq_impl)
_lstsq.defbatch(_lstsq_batch)
_lstsq.defvjp(_lstsq_vjp_a, lambda g, x, a, b, *, rcond: _lstsq(_mT(a), g, rcond=rcond))
_lstsq.defjvp(_lstsq_jvp_a, lambda t, x, a, b, *, rcond: _lstsq(a, t, rcond=rcond))


def lstsq(a: Any, b: Any, rcond: Any = None) -> tuple[Any, Any, int, Any]:
    """`numpy.linalg.lstsq`: (x, residuals, rank, s) for the least-squares problem
    min |b - a x| (the minimum-norm x when a is rank deficient); a is (M, N), b (M,) or
    (M, K). Differentiable in a and b; the derivative holds the rank fixed.

    >>> import diffprog as dp, numpy as np
    >>> from diffprog.numpy.linalg import lstsq
    >>> a = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]])
    >>> lstsq(a, np.array([1.0, 2.0, 4.0]))[0]
    array([0.83333333, 1.5       ])
    >>> dp.grad(lambda b: lstsq(a, b)[0][1])(np.array([1.0, 2.0, 4.0])).round(12)
    array([-0.5,  0. ,  0.5])
    """
    a, b = as_array(a), as_array(b)
    ra, rb = raw(a), raw(b)
    m, n = ra.shape[-2:] if len(ra.shape) == 2 else (0, 0)
    rcond = float(np.finfo(np.float64).eps * max(m, n)) if rcond is None else float(raw(rcond))
    if any(isinstance(r, Tracer) and r.batched for r in (ra, rb)):
        return _lstsq_of_each_example(a, b, m, n, rcond)
    xp = namespace_of((ra, rb))
    x, residuals, rank, s = xp.linalg.lstsq(ra, rb, rcond)  # NumPy's checks and answers
    if not (isinstance(a, Tracer) or isinstance(b, Tracer)):
        return x, residuals, rank, s
    x = _lstsq(a, b, rcond=rcond)
    if int(rank) == n and m > n:
        residuals = _residuals(a, b, x)
    if isinstance(a, Tracer):
        s = svdvals(a)
    return x, residuals, rank, s


def _residuals(a: Any, b: Any, x: Any) -> Any:
    """NumPy's residuals of lstsq: the squared norm of each column of b - a x ((1,) for a
    vector b)."""
    r = b - matmul(a, x)
    residuals = _sum(_real(r * _cj(r)), axis=0)
    return reshape(residuals, (1,)) if len(b.shape) == 1 else residuals


def _lstsq_of_each_example(a: Any, b: Any, m: int, n: int, rcond: float) -> tuple:
    """lstsq under dp.vmap: the rank is an int array of the batch (each example's count of
    singular values above rcond times the largest, as NumPy's), and the residuals are empty
    unless every example has full column rank (their shape would differ between examples)."""
    x, s = _lstsq(a, b, rcond=rcond), svdvals(a)
    rank = count_nonzero(s > rcond * s[..., :1], axis=-1)
    if m > n and everywhere(rank == n):
        return x, _residuals(a, b, x), rank, s
    if m > n and not everywhere(rank < n):
        raise ValueError(
            f"lstsq under dp.vmap: some examples have full column rank ({n}) and others not, "
            "so NumPy's residuals would be empty for some and not for others; a batch needs "
            "one shape: compute them from the solution x as dnp.sum(dnp.abs(b - a @ x) ** 2, axis=0)")
    dtype = np.finfo(np.result_type(raw(x).dtype)).dtype  # (a complex x: its real type)
    return x, asarray_like(np.empty((0,), dtype), raw(x)), rank, s


# --- norm ----------------------------------------------------------------------------------
_SINGULAR_VALUE_NORMS = {"nuc": _sum, 2: _max, -2: _min}


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A002
    """`numpy.linalg.norm`. Matrix norms of the singular values: 'nuc' (their sum), 2 and -2
    (the largest and the smallest), differentiable through svdvals (distinct singular values
    assumed beyond first order); every other order: see reductions.norm.

    >>> import numpy as np
    >>> from diffprog.numpy.linalg import norm
    >>> norm(np.array([[3.0, 0.0], [0.0, -4.0]]), "nuc")
    np.float64(7.0)
    """
    x = as_array(x)
    nd = len(x.shape)
    axes = tuple(range(nd)) if axis is None and nd == 2 else axis
    pick = _SINGULAR_VALUE_NORMS.get(ord) if isinstance(ord, (str, int, float)) else None
    if pick is None or not isinstance(axes, (tuple, list)) or len(axes) != 2:
        return _entrywise_norm(x, ord, axis, keepdims)
    for i in axes:
        if not -nd <= i < nd:
            raise ValueError(f"norm: axis {i} is out of bounds for an array of dimension {nd}")
    row, col = (int(i) % nd for i in axes)
    if row == col:
        raise ValueError("norm: duplicate axes given")
    if raw(x).dtype.kind not in "fc":
        x = raw(x).astype(np.float64)
    out = pick(svdvals(moveaxis(x, (row, col), (-2, -1))), axis=-1)
    if keepdims:
        out = reshape(out, tuple(1 if i in (row, col) else n for i, n in enumerate(x.shape)))
    return out


__all__ = ["EigResult", "eig", "eigvals", "lstsq", "norm"]
