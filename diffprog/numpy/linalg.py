"""diffprog.numpy.linalg: NumPy's linear algebra with derivative rules, batched over leading
dimensions as numpy.linalg is.

Owns: inv, solve, det, slogdet, cholesky, eigh, eigvalsh, svd, svdvals, pinv, qr, and the
composites matrix_power, multi_dot, matrix_transpose. Built on these in linalg_general.py
and re-exported: eig, eigvals, lstsq and norm (whose vector and entrywise orders live in
reductions). Every rule
is written in diffprog ops (matmul, solve, inv, einsum, where ...), so derivatives of any
order work. Multi-output functions return namedtuples spelled as NumPy's; an unused output's
cotangent arrives as None and costs nothing.

What is differentiated is what NumPy computes: eigh, eigvalsh and the hermitian=True forms
of svd and pinv read one triangle of the input (eigh's UPLO, the lower one for hermitian=True),
so only that triangle gets a gradient (the other one does not change the value), and
svd(hermitian=True) is differentiated through eigh, as NumPy computes it.
Assumptions of the rules, as in JAX and PyTorch:
- cholesky: the input is symmetric and only the symmetric part of a perturbation counts (the
  gradient returned is symmetric);
- eigh: distinct eigenvalues; svd: distinct, non-zero singular values (the eigenvector and
  singular-vector derivatives divide by their gaps); eigenvectors and singular vectors are
  defined up to sign, so differentiate sign-invariant functions of them;
- pinv: the rank is constant near the input (e.g. full rank); qr: mode='reduced', M >= N,
  full rank; slogdet: invertible (at a singular matrix its gradient is infinite: an error).
det's gradient is the cofactor matrix adj(a)^T everywhere: det(a) inv(a)^T where a is well
conditioned, from the SVD where it is near singular or singular (rank n - 1; zero at rank
<= n - 2), with a derivative of its own that needs no distinct singular values (second order
is exact there too).
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

import functools
import types
from collections import namedtuple
from typing import Any

import numpy as np

from ..ad.batching import all_examples, anywhere, everywhere, example_ndim
from ..backend import namespace_of
from ..core.primitive import Primitive
from ..core.trace import Tracer, raw, unwrapped
from ..errors import UnsupportedKeywordError
from .batching import aligned, stacked
from .complex_parts import conjugate, imag, real
from .elementwise import abs as _abs
from .elementwise import ufunc_where
from .indexing import take_along_axis
from .joins import as_array
from .manipulation import expand_dims, getitem, swapaxes
from .products import cross, einsum, matmul, vecdot
from .products import tensordot as _tensordot
from .reductions import prod as _prod
from .reductions import product_of_others
from .reductions import sum as _sum

EighResult = namedtuple("EighResult", ["eigenvalues", "eigenvectors"])
SlogdetResult = namedtuple("SlogdetResult", ["sign", "logabsdet"])
SVDResult = namedtuple("SVDResult", ["U", "S", "Vh"])
QRResult = namedtuple("QRResult", ["Q", "R"])


# --- helpers (diffprog ops; constants built on raw values) ---------------------------------
def matrix_transpose(x: Any, /) -> Any:
    """`numpy.linalg.matrix_transpose`: swap the last two axes."""
    if len(x.shape) < 2:
        raise ValueError("matrix_transpose needs an array of at least 2 dimensions")
    return swapaxes(x, -1, -2)


_mT = matrix_transpose


def _sym(x: Any) -> Any:
    return 0.5 * (x + _mT(x))


def _is_complex(x: Any) -> bool:
    return bool(np.iscomplexobj(unwrapped(x)))


def _cj(x: Any) -> Any:
    """conj(x) for a complex x, else x itself (no operation recorded)."""
    return conjugate(x) if _is_complex(x) else x


def _H(x: Any) -> Any:  # the conjugate transpose (the transpose of a real x)
    return _cj(_mT(x))


def _herm(x: Any) -> Any:  # the Hermitian part (the symmetric part of a real x)
    return 0.5 * (x + _H(x))


def _const(x: Any, make: Any) -> Any:
    """A constant array `make(xp, dtype)` on x's device with x's (floating) dtype."""
    r = raw(x)
    return make(namespace_of((r,)), r.dtype)


def _eye(x: Any, n: int) -> Any:
    return _const(x, lambda xp, dt: xp.eye(n, dtype=dt))


def _tril(x: Any, n: int, k: int = 0) -> Any:  # 0/1 mask: diagonal k and below
    return _const(x, lambda xp, dt: xp.tril(xp.ones((n, n), dtype=dt), k))


def _diag(x: Any) -> Any:  # the diagonals of a stack of square matrices
    return einsum("...ii->...i", x)


def _diag_embed(v: Any) -> Any:  # a stack of diagonal matrices
    return expand_dims(v, -2) * _eye(v, v.shape[-1])


def _trace_of_product(x: Any, y: Any) -> Any:  # trace(x @ y) over stacks
    return _sum(x * _mT(y), axis=(-2, -1))


def _gap_inverse(w: Any) -> Any:
    """F with F_ij = 1 / (w_j - w_i) off the diagonal and 0 on it."""
    off = _const(w, lambda xp, dt: ~xp.eye(w.shape[-1], dtype=bool))
    gaps = expand_dims(w, -2) - expand_dims(w, -1)
    return ufunc_where(off, 1.0 / ufunc_where(off, gaps, 1.0), 0.0)


def _weighted(u: Any, vh: Any, g: Any) -> Any:
    """U diag(g) Vh for a stack of g (Vh = U^T when vh is None)."""
    return matmul(u * expand_dims(g, -2), _mT(u) if vh is None else vh)


def _proj_diag(u: Any, vh: Any, t: Any) -> Any:
    """diag(U^T t V) for stacks (V = U when vh is None)."""
    return _sum(u * matmul(t, u if vh is None else _mT(vh)), axis=-2)


def _mv(a: Any, x: Any) -> Any:
    """A stack of matrix-vector products (x batched like a, never a 1-D matmul special)."""
    return getitem(matmul(a, expand_dims(x, -1)), (Ellipsis, 0))


def _square(name: str, a: Any, uplo: str = "L") -> None:
    shape = tuple(a.shape)
    if len(shape) < 2 or shape[-1] != shape[-2]:
        raise ValueError(f"{name}: last 2 dimensions of the array must be square, got {shape}")
    if uplo not in ("L", "U"):
        raise ValueError(f"{name}: UPLO must be 'L' or 'U', got {uplo!r}")


# --- inv, solve, det, slogdet --------------------------------------------------------------
_inv = Primitive("inv", lambda xp, a: xp.linalg.inv(a))
_inv.defvjp(lambda g, ans, a: -matmul(_mT(ans), matmul(g, _mT(ans))))
_inv.defjvp(lambda t, ans, a: -matmul(ans, matmul(t, ans)))
stacked(_inv)  # dp.vmap: NumPy's linalg maps over leading axes


def inv(a: Any) -> Any:
    """`numpy.linalg.inv`, batched.

    >>> import numpy as np, diffprog.numpy.linalg as la
    >>> la.inv(np.array([[2.0, 0.0], [0.0, 4.0]]))
    array([[0.5 , 0.  ],
           [0.  , 0.25]])
    """
    _square("inv", a)
    return _inv(a)


def _solve_impl(xp: Any, a: Any, b: Any, *, vector: bool) -> Any:
    if vector and (len(b.shape) > 1 or len(a.shape) > 2):
        return xp.linalg.solve(a, b[..., None])[..., 0]
    return xp.linalg.solve(a, b)


def _solve_vjp_a(g: Any, x: Any, a: Any, b: Any, *, vector: bool) -> Any:
    gb = _solve(_mT(a), g, vector=vector)
    if vector:
        return -(expand_dims(gb, -1) * expand_dims(x, -2))
    return -matmul(gb, _mT(x))


def _solve_jvp_a(t: Any, x: Any, a: Any, b: Any, *, vector: bool) -> Any:
    return _solve(a, -(_mv(t, x) if vector else matmul(t, x)), vector=vector)


_solve = Primitive("solve", _solve_impl)
_solve.defvjp(_solve_vjp_a, lambda g, x, a, b, *, vector: _solve(_mT(a), g, vector=vector))
_solve.defjvp(_solve_jvp_a, lambda t, x, a, b, *, vector: _solve(a, t, vector=vector))


def _solve_batch(size: int, batched: tuple, a: Any, b: Any, *, vector: bool) -> Any:
    """dp.vmap: NumPy's solve broadcasts stacks of systems; each example's own stack axes
    are aligned first (a vector b has one core axis, a matrix two)."""
    core = 1 if vector else 2
    stack = max(example_ndim(a, batched[0]) - 2, example_ndim(b, batched[1]) - core)
    return _solve(aligned(a, stack + 2) if batched[0] else a,
                  aligned(b, stack + core) if batched[1] else b, vector=vector)  # fmt: skip


_solve.defbatch(_solve_batch)


def solve(a: Any, b: Any) -> Any:
    """`numpy.linalg.solve` with NumPy 2's batching: b is a vector only when it is 1-D."""
    _square("solve", a)
    return _solve(a, b, vector=len(b.shape) == 1)


def _cofactors_impl(xp: Any, a: Any) -> Any:
    """adj(a)^T = det(U) det(Vh) conj(U) diag(products of the other singular values)
    conj(Vh) (U diag(...) V^T for a real a): no division, so exact at singular matrices
    (rank n - 1; zero at rank <= n - 2)."""
    u, s, vh = xp.linalg.svd(a)
    others = xp.where(xp.eye(s.shape[-1], dtype=bool), 1, s[..., None, :]).prod(axis=-1)
    phase = _unit(xp, xp.linalg.det(u) * xp.linalg.det(vh))
    if u.dtype.kind == "c":
        u, vh = u.conj(), vh.conj()
    return phase[..., None, None] * ((u * others[..., None, :]) @ vh)


def _unit(xp: Any, d: Any) -> Any:
    """d / |d|: the sign of a real d, the phase of a complex one (|d| is 1 up to rounding)."""
    return d / xp.abs(d)


def _cofactors_derivative(a: Any, t: Any) -> Any:
    """The derivative of adj(a)^T along t (and, the map being self-adjoint, its transpose):
    c conj(U) L(U^H t V) conj(Vh) with c = det(U) det(Vh) (the sign U L(U^T t V) V^T of a real
    a), L(P) = diag(Q diag(P)) - Q * P^T, Q_ij the product of the singular values other than
    s_i and s_j (Q_ii = 0). No gap of singular values divides, so it is exact at every
    matrix, singular or not, repeated singular values included."""
    u, s, vh = _svd(a, full_matrices=False, hermitian=False)
    xp = namespace_of((raw(u),))
    sign = _unit(xp, xp.linalg.det(raw(u)) * xp.linalg.det(raw(vh)))
    diagonal = _const(s, lambda xp, dt: xp.eye(s.shape[-1], dtype=bool))
    q = ufunc_where(diagonal, 0.0, product_of_others(ufunc_where(diagonal, 1.0, expand_dims(s, -2)),
                                               (len(s.shape),)))  # fmt: skip
    p = matmul(_H(u), matmul(t, _H(vh)))
    inner = _diag_embed(_sum(q * expand_dims(_diag(p), -2), axis=-1)) - q * _mT(p)
    return expand_dims(sign, (-2, -1)) * matmul(_cj(u), matmul(inner, _cj(vh)))


_adjugate_t = Primitive("cofactors", _cofactors_impl)
_adjugate_t.defvjp(lambda g, ans, a: _cofactors_derivative(a, g))
_adjugate_t.defjvp(lambda t, ans, a: _cofactors_derivative(a, t))
stacked(_adjugate_t)


def _near_singular(a: Any, d: Any) -> Any:
    """Where d inv(a)^T's derivative would lose digits: |det(a)| at most 1e-4 of Hadamard's
    bound (the product of the row norms), so a's condition number is 1e4 or more and the
    second derivative's terms, of size |d| |inv(a)|^2, cancel (at a 2 x 2 of condition 4e12
    it kept 4 digits of a constant Hessian). Singular, underflowing and overflowing
    determinants are among them."""
    ra, rd = raw(a), raw(d)
    bound = _prod(_sum(real(ra * conjugate(ra)), axis=-1), axis=-1)
    return real(rd * conjugate(rd)) <= 1e-8 * bound


def _cofactors(a: Any, d: Any) -> Any:
    """adj(a)^T, the gradient of d = det(a), for a stack of square matrices: d inv(a)^T where
    a is well conditioned, the SVD's formula where it is near singular or singular (exact
    there to second order). One look at a and d decides (on a GPU, a wait)."""
    singular = _near_singular(a, d)
    if not anywhere(singular):
        return expand_dims(d, (-2, -1)) * _mT(inv(a))
    n = a.shape[-1]
    if everywhere(singular):
        return _adjugate_t(a)
    # each branch gets a harmless stand-in for the members it does not serve (a zero
    # cotangent times a NaN from a derivative that is not needed would still be NaN)
    mask = expand_dims(singular, (-2, -1))
    spread = _const(a, lambda xp, dt: xp.diag(xp.arange(1, n + 1, dtype=dt)))
    regular = expand_dims(d, (-2, -1)) * _mT(inv(ufunc_where(mask, _eye(a, n), a)))
    return ufunc_where(mask, _adjugate_t(ufunc_where(mask, a, spread)), regular)


_det = Primitive("det", lambda xp, a: xp.linalg.det(a))
_det.defvjp(lambda g, ans, a: expand_dims(g, (-2, -1)) * _cofactors(a, ans))
_det.defjvp(lambda t, ans, a: _sum(_cofactors(a, ans) * t, axis=(-2, -1)))
stacked(_det)


def det(a: Any) -> Any:
    """`numpy.linalg.det`, batched; its gradient is the cofactor matrix adj(a)^T, also where
    a is singular (the rank n - 1 adjugate; zero at rank <= n - 2), as in JAX and PyTorch."""
    _square("det", a)
    return _det(a)


def _logdet_inverse(a: Any, ans: Any) -> Any:
    """inv(a), the derivative of logabsdet, or an error where a is singular (it is infinite)."""
    singular = raw(ans[0]) == 0
    if anywhere(singular):
        where_ = "" if not singular.shape else f" (batch index {_first(singular)})"
        raise np.linalg.LinAlgError(
            f"slogdet: the derivative of logabsdet at a singular matrix{where_} is infinite "
            "(logabsdet is -inf there); differentiate det instead (its gradient there is the "
            "adjugate), or move the matrix off the singularity (e.g. a + eps * I)"
        )
    return inv(a)


def _first(mask: Any) -> tuple[int, ...]:
    mask = all_examples(mask)  # (under dp.vmap, the index in the whole batch)
    return tuple(int(i[0]) for i in namespace_of((mask,)).nonzero(mask))


def _slogdet_vjp(g: Any, ans: Any, a: Any) -> Any:
    """With tau = tr(inv(a) da): d logabsdet = Re tau; d sign = i Im(tau) sign, which is 0
    for a real a (its sign is piecewise constant): g_l + i Im(g_s sign) times inv(a)^T."""
    (gs, gl), sign = g, ans[0]
    weight = gl
    if gs is not None and _is_complex(sign):
        spin = 1j * imag(gs * sign)
        weight = spin if weight is None else weight + spin
    return None if weight is None else expand_dims(weight, (-2, -1)) * _mT(_logdet_inverse(a, ans))


def _slogdet_jvp(t: Any, ans: Any, a: Any) -> tuple[Any, Any]:
    tau = _trace_of_product(_logdet_inverse(a, ans), t)
    if not _is_complex(tau):
        return None, tau
    return 1j * imag(tau) * ans[0], real(tau)


_slogdet = Primitive("slogdet", lambda xp, a: tuple(xp.linalg.slogdet(a)), multiple_results=True)
_slogdet.defvjp(_slogdet_vjp)
_slogdet.defjvp(_slogdet_jvp)
stacked(_slogdet)


def slogdet(a: Any) -> SlogdetResult:
    """`numpy.linalg.slogdet`: (sign, logabsdet); the gradient of logabsdet is inv(a)^T, and
    at a singular matrix, where it is infinite, differentiating raises LinAlgError."""
    _square("slogdet", a)
    return SlogdetResult(*_slogdet(a))


# --- cholesky ------------------------------------------------------------------------------
def _phi(x: Any) -> Any:  # the lower triangle of x with its diagonal halved
    n = x.shape[-1]
    return x * (_tril(x, n) - 0.5 * _eye(x, n))


def _cholesky_jvp(t: Any, ans: Any, a: Any, *, upper: bool) -> Any:
    low = _H(ans) if upper else ans
    # dL = L phi(L^-1 herm(dA) L^-H)
    dl = matmul(low, _phi(solve(low, _H(solve(low, _herm(t))))))
    return _H(dl) if upper else dl


def _cholesky_vjp(g: Any, ans: Any, a: Any, *, upper: bool) -> Any:
    low, gl = (_H(ans), _H(g)) if upper else (ans, g)
    left = solve(_mT(low), _phi(matmul(_mT(low), gl)))  # L^-T phi(L^T gL)
    return _herm(_mT(solve(_H(low), _mT(left))))  # herm(L^-T phi(L^T gL) conj(L^-1))


_cholesky = Primitive(
    "cholesky",  # U = L^H (CuPy's cholesky has no `upper`)
    lambda xp, a, *, upper: xp.conj(xp.linalg.cholesky(a).swapaxes(-1, -2)) if upper
    else xp.linalg.cholesky(a)
)  # fmt: skip
_cholesky.defvjp(_cholesky_vjp)
_cholesky.defjvp(_cholesky_jvp)
stacked(_cholesky)


def cholesky(a: Any, /, *, upper: bool = False) -> Any:
    """`numpy.linalg.cholesky`: L with a = L L^T (or U = L^T with upper=True), batched."""
    _square("cholesky", a)
    return _cholesky(a, upper=bool(upper))


# --- eigh, eigvalsh ------------------------------------------------------------------------
def _eigh_vjp(g: Any, ans: Any, a: Any, *, UPLO: str) -> Any:
    """The transpose of the JVP below: herm(conj(V) (diag(gw) + F * (V^T gV)) V^T)."""
    (gw, gv), (w, v) = g, ans
    inner = None if gw is None else _diag_embed(gw)
    if gv is not None:
        f = _gap_inverse(w) * matmul(_mT(v), gv)
        inner = f if inner is None else inner + f
    return _herm(matmul(_cj(v), matmul(inner, _mT(v))))


def _eigh_jvp(t: Any, ans: Any, a: Any, *, UPLO: str) -> tuple[Any, Any]:
    """P = V^H herm(dA) V: dw = diag(P) (real), dV = V (F * P) (JAX's phase convention:
    V^H dV has a zero diagonal)."""
    w, v = ans
    vtv = matmul(_H(v), matmul(_herm(t), v))
    return _diag(vtv), matmul(v, _gap_inverse(w) * vtv)


_eigh = Primitive(
    "eigh", lambda xp, a, *, UPLO: tuple(xp.linalg.eigh(a, UPLO=UPLO)), multiple_results=True
)
_eigh.defvjp(_eigh_vjp)
_eigh.defjvp(_eigh_jvp)
stacked(_eigh)


def _read_triangle(a: Any, uplo: str) -> Any:
    """The symmetric (Hermitian) matrix NumPy reads from `a` with UPLO='L' (its lower
    triangle mirrored, conjugated, the diagonal's imaginary part dropped) or 'U': what to
    differentiate, since the other triangle does not change the value."""
    if not isinstance(a, Tracer):  # plain arrays: NumPy reads the triangle itself
        return a
    n = a.shape[-1]
    lower = _const(a, lambda xp, dt: xp.tri(n, dtype=bool))  # the diagonal and below
    mirrored = ufunc_where(lower if uplo == "L" else _mT(lower), a, _H(a))
    return _herm(mirrored) if _is_complex(a) else mirrored


def eigh(a: Any, UPLO: str = "L") -> EighResult:
    """`numpy.linalg.eigh`: (eigenvalues, eigenvectors) of symmetric matrices, batched; the
    derivative assumes distinct eigenvalues. As NumPy, it reads only the UPLO triangle, which
    alone gets a gradient."""
    _square("eigh", a, UPLO)
    return EighResult(*_eigh(_read_triangle(a, UPLO), UPLO=UPLO))


# The eigenvectors are recomputed in the rules: conj(V) diag(g) V^T and diag(V^H dA V).
_eigvalsh = Primitive("eigvalsh", lambda xp, a, *, UPLO: xp.linalg.eigvalsh(a, UPLO=UPLO))
_eigvalsh.defvjp(lambda g, ans, a, *, UPLO: _weighted(*_conj_pair(_eigh(a, UPLO=UPLO)[1]), g))
_eigvalsh.defjvp(lambda t, ans, a, *, UPLO: _proj_diag(*_conj_pair(_eigh(a, UPLO=UPLO)[1]), t))
stacked(_eigvalsh)


def _conj_pair(v: Any) -> tuple[Any, Any]:
    """(conj(V), V^T): U and Vh of `_weighted` / `_proj_diag` for V diag(.) V^H."""
    return _cj(v), _mT(v)


def eigvalsh(a: Any, UPLO: str = "L") -> Any:
    """`numpy.linalg.eigvalsh`: eigenvalues of symmetric matrices (ascending), batched; as
    NumPy, it reads only the UPLO triangle, which alone gets a gradient."""
    _square("eigvalsh", a, UPLO)
    return _eigvalsh(_read_triangle(a, UPLO), UPLO=UPLO)


# --- svd, svdvals, pinv --------------------------------------------------------------------
def _svd_impl(xp: Any, a: Any, *, full_matrices: bool, hermitian: bool) -> tuple:
    extra = {"hermitian": True} if hermitian else {}
    return tuple(xp.linalg.svd(a, full_matrices=full_matrices, **extra))


def _svd_jvp(t: Any, ans: Any, a: Any, **_: Any) -> tuple[Any, Any, Any]:
    """P = U^H dA V: ds = Re diag(P); dU = U (F * (P S + S P^H) + i Im diag(P) / S) and
    dV = V (F * (S P + P^H S)), plus the parts outside the spans for non-square a; JAX's
    phase convention (the plain transposes of a real a)."""
    u, s, vh = ans
    m, n, k = a.shape[-2], a.shape[-1], s.shape[-1]
    v, f = _H(vh), _gap_inverse(s * s)  # F_ij = 1 / (s_j^2 - s_i^2)
    tv = matmul(t, v)
    dp = matmul(_H(u), tv)  # U^H dA V
    dps, sdp = dp * expand_dims(s, -2), expand_dims(s, -1) * dp
    core = f * (dps + _H(dps))
    if _is_complex(dp):  # the phase of U's columns follows the imaginary diagonal of P
        core = core + _diag_embed(1j * imag(_diag(dp)) / s)
    du = matmul(u, core)
    dv = matmul(v, f * (sdp + _H(sdp)))
    if m > k:  # (I - U U^H) dA V S^-1
        du = du + (tv - matmul(u, dp)) / expand_dims(s, -2)
    if n > k:  # (I - V V^H) dA^H U S^-1
        dv = dv + (matmul(_H(t), u) - matmul(v, _H(dp))) / expand_dims(s, -2)
    return du, _diag(dp), _H(dv)


def _svd_vjp(g: Any, ans: Any, a: Any, **_: Any) -> Any:
    """The transpose of `_svd_jvp` under Re sum(x * y): conj(U) inner conj(Vh) plus the
    parts outside the spans."""
    (gu, gs, gvh), (u, s, vh) = g, ans
    m, n, k = a.shape[-2], a.shape[-1], s.shape[-1]
    row, col = expand_dims(s, -2), expand_dims(s, -1)
    uc, vhc = _cj(u), _cj(vh)
    inner = None if gs is None else _diag_embed(gs)
    out = None
    if gu is not None:
        utg = matmul(_mT(u), gu)
        j = _gap_inverse(s * s) * utg
        term = (j + _H(j)) * row
        if _is_complex(utg):
            term = term + _diag_embed(1j * imag(_diag(utg)) / s)
        inner = term if inner is None else inner + term
        if m > k:
            out = matmul((gu - matmul(uc, utg)) / row, vhc)
    if gvh is not None:
        gv = _H(gvh)
        vtg = matmul(vhc, gv)  # V^T gV
        j = _gap_inverse(s * s) * vtg
        term = col * (j + _H(j))
        inner = term if inner is None else inner + term
        if n > k:
            extra = matmul(uc, _H((gv - matmul(_mT(vh), vtg)) / row))
            out = extra if out is None else out + extra
    core = matmul(uc, matmul(inner, vhc))
    return core if out is None else core + out


_svd = Primitive("svd", _svd_impl, multiple_results=True)
_svd.defvjp(_svd_vjp)
_svd.defjvp(_svd_jvp)
stacked(_svd)


def _uvh(a: Any) -> tuple[Any, Any]:
    u, _, vh = _svd(a, full_matrices=False, hermitian=False)
    return u, vh


def _hermitian_svd(a: Any, compute_uv: bool) -> Any:
    """NumPy's svd(a, hermitian=True) in diffprog ops, so that its derivative is that of the
    value computed: eigh of the lower triangle, |eigenvalues| in descending order, their
    signs moved into Vh."""
    w, v = eigh(a) if compute_uv else (eigvalsh(a), None)  # as NumPy (their roundings differ)
    r = raw(w)
    xp = namespace_of((r,))
    order = xp.argsort(xp.abs(r), axis=-1)[..., ::-1]  # NumPy's sort of the same values
    s = take_along_axis(_abs(w), order, axis=-1)
    if not compute_uv:
        return s
    u = take_along_axis(v, order[..., None, :], axis=-1)
    sign = xp.take_along_axis(xp.copysign(1.0, r), order, axis=-1).astype(r.dtype)
    return SVDResult(u, s, _H(u * expand_dims(sign, -2)))


# The singular vectors are recomputed in the rules: U diag(g) V^T and diag(U^T dA V) for a
# real a; conj(U diag(g) Vh) and Re diag(U^H dA V) for a complex one (distinct singular values).
_svdvals = Primitive("svdvals", lambda xp, a: xp.linalg.svd(a, compute_uv=False))
_svdvals.defvjp(lambda g, ans, a: _weighted(*map(_cj, _uvh(a)), g))
_svdvals.defjvp(lambda t, ans, a: _proj_diag(*map(_cj, _uvh(a)), t))
stacked(_svdvals)


def svdvals(x: Any, /) -> Any:
    """`numpy.linalg.svdvals`: singular values (descending), batched; the gradient is
    U diag(g) V^T (distinct singular values assumed)."""
    if len(x.shape) < 2:
        raise ValueError(f"svdvals needs an array of at least 2 dimensions, got {x.shape}")
    return _svdvals(x)


def svd(a: Any, full_matrices: bool = True, compute_uv: bool = True,
        hermitian: bool = False) -> Any:  # fmt: skip
    """`numpy.linalg.svd`: (U, S, Vh), batched. Differentiating a non-square matrix needs
    full_matrices=False; the derivative assumes distinct, non-zero singular values (with
    hermitian=True: distinct, non-zero eigenvalues of the lower triangle, as NumPy reads it)."""
    if len(a.shape) < 2:
        raise ValueError(f"svd needs an array of at least 2 dimensions, got {a.shape}")
    if hermitian:
        _square("svd", a)
        return _hermitian_svd(a, compute_uv)
    if not compute_uv:
        return svdvals(a)
    m, n = a.shape[-2:]
    if full_matrices and m != n and isinstance(a, Tracer):
        raise NotImplementedError(
            "svd: differentiating full_matrices=True is not supported for a non-square "
            f"matrix (shape {tuple(a.shape)}); pass full_matrices=False"
        )
    return SVDResult(*_svd(a, full_matrices=bool(full_matrices), hermitian=bool(hermitian)))


def _pinv_jvp(t: Any, p: Any, a: Any, **_: Any) -> Any:
    # dP = -P dA P + P P^H dA^H (I - A P) + (I - P A) dA^H P^H P
    tt = _H(t)
    z = matmul(p, matmul(_H(p), tt))
    w = matmul(tt, matmul(_H(p), p))
    return -matmul(p, matmul(t, p)) + z - matmul(matmul(z, a), p) + w - matmul(p, matmul(a, w))


def _pinv_vjp(g: Any, p: Any, a: Any, **_: Any) -> Any:
    # the transpose of the JVP: -P^T g P^T + conj(I - A P) g^H conj(P P^H)
    #                                      + conj(P^H P) g^H conj(I - P A)
    # conj(A P) and conj(P A) are formed first: of size 1, where P conj(P P^H) g^H, of size
    # |P|^3, overflowed for singular values below 1e-103 (a NaN gradient of size |P|^2)
    pt, pc, ac, gh = _mT(p), _cj(p), _cj(a), _H(g)
    z = matmul(gh, matmul(pc, pt))
    w = matmul(matmul(pt, pc), gh)
    return (-matmul(pt, matmul(g, pt)) + z - matmul(matmul(ac, pc), z) + w
            - matmul(w, matmul(pc, ac)))


_pinv = Primitive("pinv", lambda xp, a, **options: xp.linalg.pinv(
    a, **{k: v for k, v in options.items() if v is not None}))
_pinv.defvjp(_pinv_vjp)
_pinv.defjvp(_pinv_jvp)
stacked(_pinv)


def pinv(a: Any, rcond: Any = None, hermitian: bool = False, *, rtol: Any = None) -> Any:
    """`numpy.linalg.pinv`, batched; the derivative assumes the rank is locally constant.
    With hermitian=True NumPy reads only the lower triangle, which alone gets a gradient."""
    if len(a.shape) < 2:
        raise ValueError(f"pinv needs an array of at least 2 dimensions, got {a.shape}")
    if hermitian:
        _square("pinv", a)
        a = _read_triangle(a, "L")
    return _pinv(a, rcond=rcond, hermitian=hermitian or None, rtol=rtol)


# --- qr ------------------------------------------------------------------------------------
def _qr_jvp(t: Any, ans: Any, a: Any, *, mode: str) -> tuple[Any, Any]:
    """C = Q^H dA R^-1 and Omega = the skew-Hermitian part of C's strict lower triangle,
    plus i Im diag(C) for a complex a (JAX's phase convention): dQ = Q (Omega - C) + dA R^-1,
    dR = (C - Omega) R."""
    q, r = ans
    b = _mT(solve(_mT(r), _mT(t)))  # dA R^-1
    c = matmul(_H(q), b)
    low = c * _tril(c, c.shape[-1], -1)
    skew = low - _H(low)
    if _is_complex(c):
        skew = skew + _diag_embed(1j * imag(_diag(c)))
    return matmul(q, skew - c) + b, matmul(c - skew, r)


def _qr_vjp(g: Any, ans: Any, a: Any, *, mode: str) -> Any:
    """The transpose of `_qr_jvp` under Re sum(x * y)."""
    (gq, gr), (q, r) = g, ans
    n = r.shape[-1]
    nn = None if gr is None else matmul(gr, _mT(r))
    if gq is not None:
        nn = -matmul(_mT(q), gq) if nn is None else nn - matmul(_mT(q), gq)
    strict = _tril(nn, n, -1)
    gc = nn * (1.0 - strict) + _H(nn) * strict  # N's upper triangle, conj(N^T) below it
    if _is_complex(nn):  # and the real part of its diagonal
        gc = gc - _diag_embed(1j * imag(_diag(nn)))
    gb = matmul(_cj(q), gc) if gq is None else gq + matmul(_cj(q), gc)
    return _mT(solve(r, _mT(gb)))  # gB R^-T


_qr = Primitive("qr", lambda xp, a, *, mode: tuple(xp.linalg.qr(a, mode=mode)),
                multiple_results=True)  # fmt: skip
_qr.defvjp(_qr_vjp)
_qr.defjvp(_qr_jvp)
stacked(_qr)


def qr(a: Any, mode: str = "reduced") -> Any:
    """`numpy.linalg.qr`, batched; differentiable for mode='reduced' (and 'r') with M >= N."""
    if len(a.shape) < 2:
        raise ValueError(f"qr needs an array of at least 2 dimensions, got {a.shape}")
    if isinstance(a, Tracer):
        if mode not in ("reduced", "r"):
            raise NotImplementedError(f"qr: differentiating mode={mode!r} is not supported; "
                                      "use mode='reduced'")  # fmt: skip
        if a.shape[-2] < a.shape[-1]:
            raise NotImplementedError(
                f"qr: differentiating a wide matrix (shape {tuple(a.shape)}, M < N) is not "
                "supported"
            )
        q, r = _qr(a, mode="reduced")
        return r if mode == "r" else QRResult(q, r)
    if mode in ("r", "raw"):  # no derivative: NumPy's own result on a plain array
        return namespace_of((a,)).linalg.qr(a, mode=mode)
    return QRResult(*_qr(a, mode=mode))


# --- composites ----------------------------------------------------------------------------
def matrix_power(a: Any, n: int) -> Any:
    """`numpy.linalg.matrix_power`: a @ a @ ... (n times; inv(a) for n < 0), batched."""
    _square("matrix_power", a)
    if int(n) != n:
        raise TypeError("matrix_power: the exponent must be an integer")
    n = int(n)
    if n == 0:
        r = raw(a)
        xp = namespace_of((r,))
        return xp.broadcast_to(xp.eye(r.shape[-1], dtype=r.dtype), r.shape).copy()
    if n < 0:
        a, n = inv(a), -n
    result = base = None
    while n > 0:  # binary powering, as NumPy does
        base = a if base is None else matmul(base, base)
        n, bit = divmod(n, 2)
        if bit:
            result = base if result is None else matmul(result, base)
    return result


def tensordot(x1: Any, x2: Any, /, *, axes: Any = 2) -> Any:
    """`numpy.linalg.tensordot`: numpy.tensordot, `axes` given by keyword (NumPy 2's array API
    signature)."""
    return _tensordot(x1, x2, axes)


def multi_dot(arrays: Any, *, out: Any = None) -> Any:
    """`numpy.linalg.multi_dot`: a chain of matrix products (first/last may be 1-D)."""
    if out is not None:
        raise UnsupportedKeywordError("multi_dot: the out= option is not supported")
    arrays = list(arrays)
    if len(arrays) < 2:
        raise ValueError("multi_dot: expecting at least two arrays")
    if any(len(x.shape) != 2 for x in arrays[1:-1]) or not all(
        1 <= len(x.shape) <= 2 for x in (arrays[0], arrays[-1])
    ):
        raise ValueError("multi_dot: the inner arrays must be 2-D, the first and last 1-D or 2-D")
    result = arrays[0]
    for x in arrays[1:]:
        result = matmul(result, x)
    return result


__all__ = [
    "cholesky", "cross", "det", "eig", "eigh", "eigvals", "eigvalsh", "inv", "lstsq",
    "matmul", "matrix_power", "matrix_transpose", "multi_dot", "norm", "pinv", "qr", "slogdet",
    "solve", "svd", "svdvals", "tensordot", "vecdot", "EigResult", "EighResult", "QRResult",
    "SlogdetResult", "SVDResult",
]  # fmt: skip

# eig, eigvals, lstsq and norm are built on the functions above, so they are imported last.
from .linalg_general import EigResult, eig, eigvals, lstsq, norm  # noqa: E402, F401


def _taking_array_likes(fn: Any, arrays: int) -> Any:
    """`fn` with its first `arrays` positional arguments taken as NumPy takes array_like
    ones (a nested list, a number: `as_array`), and multi_dot's list of them each."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if arrays == 0 and args:  # (multi_dot)
            args = ([as_array(a) for a in args[0]],) + args[1:]
        return fn(*(as_array(a) if i < arrays else a for i, a in enumerate(args)), **kwargs)

    return wrapped


for _name in __all__:
    if isinstance(globals()[_name], types.FunctionType):  # (not the result types, primitives)
        globals()[_name] = _taking_array_likes(globals()[_name], 2 if _name in (
            "cross", "lstsq", "matmul", "solve", "tensordot", "vecdot") else
            0 if _name == "multi_dot" else 1)  # fmt: skip
