"""Products (einsum, tensordot, outer, inner, kron, vdot, vecdot, cross) and
diffprog.numpy.linalg: derivatives against central differences (both modes, second order),
values against NumPy's, float64 and float32, batched shapes. Decompositions are sampled
well conditioned (distinct eigenvalues / singular values, SPD for cholesky), symmetric
inputs are symmetrised inside the tested function, and eigen/singular vectors enter only
through sign-invariant functions."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import diffprog as dp
from diffprog.numpy import linalg as la
from diffprog.numpy.products import (
    cross, dot, einsum, inner, kron, matmul, outer, tensordot, vdot, vecdot,
)  # fmt: skip
from backends import NUMPY, on_gpu, under_jit, under_vmap
from diffprog.testing import check_grads

DTYPES = [np.float64, np.float32]
dtype_id = lambda d: np.dtype(d).name  # noqa: E731


# --- samplers ------------------------------------------------------------------------------
def normal(rng, shape):
    return rng.normal(size=shape)


def well_conditioned(rng, shape):
    """Random plus n*I (on the leading square block): far from singular."""
    return rng.normal(size=shape) * 0.5 + shape[-1] * np.eye(*shape[-2:])


def negative_det(rng, shape):
    x = well_conditioned(rng, shape)
    x[..., 0, :] *= -1
    return x


def spd(rng, shape):
    x = rng.normal(size=shape)
    return x @ np.swapaxes(x, -1, -2) + shape[-1] * np.eye(shape[-1])


def _orthonormal(rng, shape):
    return np.linalg.qr(rng.normal(size=shape))[0]


def distinct_eigenvalues(rng, shape):
    """Symmetric, eigenvalues spread over [-2, 2] (gaps >= 4 / n - 0.1)."""
    n = shape[-1]
    q = _orthonormal(rng, shape)
    lam = np.linspace(-2.0, 2.0, n) + rng.uniform(-0.05, 0.05, size=shape[:-1])
    return (q * lam[..., None, :]) @ np.swapaxes(q, -1, -2)


def distinct_singular_values(rng, shape):
    """Rank min(m, n), singular values spread over [1, 3]."""
    m, n = shape[-2:]
    k = min(m, n)
    u = _orthonormal(rng, shape[:-2] + (m, k))
    v = _orthonormal(rng, shape[:-2] + (n, k))
    s = np.linspace(3.0, 1.0, k) + rng.uniform(-0.05, 0.05, size=shape[:-2] + (k,))
    return (u * s[..., None, :]) @ np.swapaxes(v, -1, -2)


def make(rng, sampler, shape, dtype):
    return np.asarray(sampler(rng, shape), dtype=dtype)


def sym(a):
    return (a + la.matrix_transpose(a)) / 2


def weights(n, like):
    """1, 2, ..., n in the dtype of `like`, on its device (`like` may be traced)."""
    return dp.backend.asarray_like(np.arange(1.0, n + 1.0), like, dtype=like.dtype)


# --- einsum --------------------------------------------------------------------------------
EINSUM = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),  # implicit output
    ("bA", [(2, 3)]),  # implicit: ASCII order puts A first
    ("ii->", [(3, 3)]),  # trace
    ("ii->i", [(3, 3)]),  # diagonal
    ("ii", [(3, 3)]),  # implicit trace
    ("iij->ji", [(2, 2, 3)]),
    ("ij->", [(2, 3)]),
    ("ijk->kji", [(2, 3, 4)]),
    ("i,i", [(3,), (3,)]),
    ("i,j,k->ijk", [(2,), (3,), (2,)]),
    ("ii,j->j", [(3, 3), (2,)]),
    ("...ij,...jk->...ik", [(2, 1, 2, 3), (4, 3, 2)]),  # ellipsis with broadcasting
    ("...i,i", [(4, 2, 3), (3,)]),
    ("i...->...", [(3, 2, 4)]),
    ("...ii->...i", [(2, 3, 3)]),
    ("ij,j->i", [(2, 3), (1,)]),  # a unit axis broadcast against a labelled one
    ("ij,ij->ij", [(1, 3), (2, 3)]),
    ("bij,bjk,bkl->bil", [(2, 2, 3), (2, 3, 4), (2, 4, 2)]),
    ("ab,bc,cd,de->ae", [(2, 3), (3, 2), (2, 4), (4, 2)]),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("optimize", [False, "greedy"])
@pytest.mark.parametrize("subscripts,shapes", EINSUM, ids=[s for s, _ in EINSUM])
def test_einsum(subscripts, shapes, optimize, dtype, backend=NUMPY):
    rng = np.random.default_rng(0)
    ops = [make(rng, normal, s, dtype) for s in shapes]
    out = einsum(subscripts, *ops, optimize=optimize)
    expected = np.einsum(subscripts, *ops, optimize=optimize)
    assert out.shape == expected.shape and out.dtype == expected.dtype
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
    backend.check_grads(lambda *o: einsum(subscripts, *o, optimize=optimize), ops, order=2)


test_einsum_on_gpu = on_gpu(test_einsum)


def test_einsum_explicit_path_and_interleaved_form():
    rng = np.random.default_rng(1)
    a, b, c = rng.normal(size=(2, 3)), rng.normal(size=(3, 4)), rng.normal(size=(4, 2))
    path = np.einsum_path("ij,jk,kl->il", a, b, c, optimize="optimal")[0]
    np.testing.assert_allclose(einsum("ij,jk,kl->il", a, b, c, optimize=path), a @ b @ c)
    check_grads(lambda a, b, c: einsum("ij,jk,kl->il", a, b, c, optimize=path), (a, b, c))
    np.testing.assert_allclose(einsum(a, [0, 1], b, [1, 2], [0, 2]), a @ b)
    d = c.T[:, :3].T  # (3, 2): the ellipses of a and d broadcast
    np.testing.assert_allclose(einsum(a, [Ellipsis, 1], d, [1, Ellipsis]), np.diag(a @ d))
    check_grads(lambda a, b: einsum(a, [0, 1], b, [1, 2]), (a, b))


def test_einsum_gradients_are_the_expected_einsums():
    a = np.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(dp.grad(lambda a: einsum("ii->", a))(a), np.eye(3))
    g = dp.grad(lambda a: einsum("ii->i", a) @ np.array([1.0, 2.0, 3.0]))(a)
    np.testing.assert_array_equal(g, np.diag([1.0, 2.0, 3.0]))
    np.testing.assert_array_equal(dp.grad(lambda a: einsum("ij->", a))(a), np.ones((3, 3)))


def test_einsum_errors():
    x = np.ones((2, 3))
    with pytest.raises(NotImplementedError, match="out="):
        einsum("ij->i", x, out=np.empty(2))
    with pytest.raises(NotImplementedError, match="dtype="):
        einsum("ij->i", x, dtype=np.float32)
    with pytest.raises(ValueError, match="do not match"):
        einsum("ijk->i", x)
    with pytest.raises(ValueError, match="2 operand subscripts for 1"):
        einsum("ij,jk->ik", x)
    with pytest.raises(ValueError, match="invalid subscript"):
        einsum("i1->i", x)


# --- other products ------------------------------------------------------------------------
PRODUCTS = {
    "tensordot_2": (tensordot, np.tensordot, [(2, 3, 4), (3, 4, 2)]),
    "tensordot_0": (lambda a, b: tensordot(a, b, 0), lambda a, b: np.tensordot(a, b, 0),
                    [(2, 3), (3,)]),
    "tensordot_1": (lambda a, b: tensordot(a, b, 1), lambda a, b: np.tensordot(a, b, 1),
                    [(2, 3), (3, 2)]),
    "tensordot_pairs": (lambda a, b: tensordot(a, b, ([0, 2], [2, 1])),
                        lambda a, b: np.tensordot(a, b, ([0, 2], [2, 1])), [(2, 3, 4), (3, 4, 2)]),
    "tensordot_int_pair": (lambda a, b: tensordot(a, b, (1, 0)),
                           lambda a, b: np.tensordot(a, b, (1, 0)), [(2, 3), (3, 4)]),
    "outer": (outer, np.outer, [(3,), (2, 2)]),
    "outer_scalar": (outer, np.outer, [(), (3,)]),
    "inner": (inner, np.inner, [(2, 3), (4, 3)]),
    "inner_vectors": (inner, np.inner, [(3,), (3,)]),
    "inner_scalar": (inner, np.inner, [(), (2, 3)]),
    "vdot": (vdot, np.vdot, [(2, 3), (3, 2)]),
    "vecdot": (vecdot, np.vecdot, [(4, 3), (3,)]),
    "vecdot_axis0": (lambda a, b: vecdot(a, b, axis=0), lambda a, b: np.vecdot(a, b, axis=0),
                     [(3, 2), (3, 1)]),
    "kron": (kron, np.kron, [(2, 3), (3, 2)]),
    "kron_mixed_ndim": (kron, np.kron, [(2,), (2, 3, 2)]),
    "cross": (cross, np.cross, [(3,), (3,)]),
    "cross_broadcast": (cross, np.cross, [(4, 3), (3,)]),
    "cross_3_and_2": (cross, np.cross, [(2, 3), (2, 2)]),
    "cross_2_and_3": (cross, np.cross, [(2,), (4, 3)]),
    "cross_axes": (lambda a, b: cross(a, b, axisa=0, axisb=1, axisc=0),
                   lambda a, b: np.cross(a, b, axisa=0, axisb=1, axisc=0), [(3, 4), (4, 3)]),
    "cross_axis": (lambda a, b: cross(a, b, axis=0), lambda a, b: np.cross(a, b, axis=0),
                   [(3, 2), (3, 2)]),
    "matmul_batched": (matmul, np.matmul, [(2, 1, 2, 3), (4, 3, 2)]),
    "dot_nd": (dot, np.dot, [(2, 3), (4, 3, 2)]),
}  # fmt: skip


@pytest.mark.filterwarnings("ignore:Arrays of 2-dimensional vectors:DeprecationWarning")
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", sorted(PRODUCTS))
def test_products(name, dtype, backend=NUMPY):
    fn, np_fn, shapes = PRODUCTS[name]
    rng = np.random.default_rng(2)
    args = [make(rng, normal, s, dtype) for s in shapes]
    out, expected = fn(*args), np_fn(*args)
    assert np.shape(out) == np.shape(expected) and out.dtype == expected.dtype
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
    backend.check_grads(fn, args, order=2)


test_products_on_gpu = on_gpu(test_products)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_cross_of_2_vectors_warns_like_numpy(dtype):
    rng = np.random.default_rng(3)
    a, b = make(rng, normal, (4, 2), dtype), make(rng, normal, (2,), dtype)
    with pytest.warns(DeprecationWarning):
        out = cross(a, b)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        np.testing.assert_allclose(out, np.cross(a, b), rtol=1e-6)
        check_grads(cross, (a, b), order=2)


def test_product_errors():
    with pytest.raises(ValueError, match="dimension must be 2 or 3"):
        cross(np.ones(4), np.ones(3))
    with pytest.raises(ValueError, match="shape-mismatch"):
        tensordot(np.ones((2, 3)), np.ones((2, 3)), 1)
    with pytest.raises(ValueError, match="differ"):
        vdot(np.ones(3), np.ones(4))


# --- linalg: derivatives -------------------------------------------------------------------
SQUARE = [(3, 3), (2, 3, 3)]
RECT = [(3, 3), (4, 3), (3, 4), (2, 4, 3), (2, 3, 4)]
TALL = [(3, 3), (4, 3), (2, 4, 3)]


def _eigh_projection(a):
    w, v = la.eigh(sym(a))
    c = weights(a.shape[-1], a)
    return (v * c) @ la.matrix_transpose(v), w  # sum_i c_i v_i v_i^T: sign-invariant


def _svd_invariants(a):
    u, s, vh = la.svd(a, full_matrices=False)
    c = weights(s.shape[-1], a)
    return (u * c) @ vh, s, (u * u * c).sum(-1), (vh * vh * c[:, None]).sum(-2)


LINALG = {
    # name: (function, samplers of the arguments, extra trailing shapes of the other args)
    "inv": (la.inv, [well_conditioned], SQUARE),
    "det": (la.det, [well_conditioned], SQUARE),
    "det_negative": (la.det, [negative_det], SQUARE),
    "slogdet": (la.slogdet, [negative_det], SQUARE),
    "slogdet_logabsdet": (lambda a: la.slogdet(a).logabsdet, [well_conditioned], SQUARE),
    "cholesky": (lambda a: la.cholesky(sym(a)), [spd], SQUARE),
    "cholesky_upper": (lambda a: la.cholesky(sym(a), upper=True), [spd], SQUARE),
    "eigh": (lambda a: la.eigh(sym(a)).eigenvalues, [distinct_eigenvalues], SQUARE),
    "eigh_upper": (lambda a: la.eigh(sym(a), UPLO="U")[0], [distinct_eigenvalues], SQUARE),
    "eigh_vectors": (_eigh_projection, [distinct_eigenvalues], SQUARE),
    "eigh_vector_squares": (lambda a: (la.eigh(sym(a))[1] ** 2 * weights(3, a)).sum(-1),
                            [distinct_eigenvalues], SQUARE),
    "eigvalsh": (lambda a: la.eigvalsh(sym(a)), [distinct_eigenvalues], SQUARE),
    "svd_vectors": (_svd_invariants, [distinct_singular_values], RECT),
    "svd_values": (lambda a: la.svd(a, compute_uv=False), [distinct_singular_values], RECT),
    "svd_square_full": (lambda a: (lambda u, s, vh: (u * s[..., None, :]) @ vh)(*la.svd(a)),
                        [distinct_singular_values], SQUARE),
    "svdvals": (la.svdvals, [distinct_singular_values], RECT),
    "pinv": (la.pinv, [distinct_singular_values], RECT),
    "qr": (la.qr, [well_conditioned], TALL),
    "qr_r": (lambda a: la.qr(a, mode="r"), [well_conditioned], TALL),
    "matrix_power_3": (lambda a: la.matrix_power(a, 3), [normal], SQUARE),
    "matrix_power_-2": (lambda a: la.matrix_power(a, -2), [well_conditioned], SQUARE),
    "matrix_transpose": (la.matrix_transpose, [normal], [(2, 3), (2, 3, 4)]),
}  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", sorted(LINALG))
def test_linalg_grads(name, dtype, backend=NUMPY):
    fn, samplers, shapes = LINALG[name]
    for shape in shapes:
        rng = np.random.default_rng(4)
        args = [make(rng, s, shape, dtype) for s in samplers]
        backend.check_grads(fn, args, order=2)


test_linalg_grads_on_gpu = on_gpu(test_linalg_grads)


SOLVE_SHAPES = [
    ((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (3,)), ((2, 3, 3), (2, 3, 2)),
    ((2, 3, 3), (3, 2)), ((3, 3), (2, 3, 2)), ((2, 1, 3, 3), (4, 3, 1)),
]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shapes", SOLVE_SHAPES, ids=str)
def test_solve(shapes, dtype, backend=NUMPY):
    rng = np.random.default_rng(5)
    a, b = make(rng, well_conditioned, shapes[0], dtype), make(rng, normal, shapes[1], dtype)
    out, expected = la.solve(a, b), np.linalg.solve(a, b)
    assert out.shape == expected.shape and out.dtype == expected.dtype
    np.testing.assert_allclose(out, expected, rtol=1e-4 if dtype == np.float32 else 1e-12)
    backend.check_grads(la.solve, (a, b), order=2)


test_solve_on_gpu = on_gpu(test_solve)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_multi_dot(dtype):
    rng = np.random.default_rng(6)
    args = [make(rng, normal, s, dtype) for s in [(3,), (3, 4), (4, 2), (2, 5), (5,)]]
    np.testing.assert_allclose(la.multi_dot(args), np.linalg.multi_dot(args), rtol=1e-5)
    check_grads(lambda *xs: la.multi_dot(xs), args, order=2)
    mats = args[1:4]
    np.testing.assert_allclose(la.multi_dot(mats), np.linalg.multi_dot(mats), rtol=1e-5)
    check_grads(lambda *xs: la.multi_dot(xs), mats, order=2)


# --- linalg: values equal to numpy.linalg ------------------------------------------------------
VALUES = [
    ("inv", la.inv, np.linalg.inv, well_conditioned, SQUARE),
    ("det", la.det, np.linalg.det, negative_det, SQUARE),
    ("slogdet", la.slogdet, np.linalg.slogdet, negative_det, SQUARE),
    ("cholesky", la.cholesky, np.linalg.cholesky, spd, SQUARE),
    ("cholesky_upper", lambda a: la.cholesky(a, upper=True),
     lambda a: np.linalg.cholesky(a, upper=True), spd, SQUARE),
    ("eigh", la.eigh, np.linalg.eigh, distinct_eigenvalues, SQUARE),
    ("eigvalsh", la.eigvalsh, np.linalg.eigvalsh, distinct_eigenvalues, SQUARE),
    ("svd", la.svd, np.linalg.svd, normal, RECT),
    ("svd_reduced", lambda a: la.svd(a, full_matrices=False),
     lambda a: np.linalg.svd(a, full_matrices=False), normal, RECT),
    ("svd_values", lambda a: la.svd(a, compute_uv=False),
     lambda a: np.linalg.svd(a, compute_uv=False), normal, RECT),
    ("svdvals", la.svdvals, np.linalg.svdvals, normal, RECT),
    ("pinv", la.pinv, np.linalg.pinv, normal, RECT),
    ("pinv_hermitian", lambda a: la.pinv(a, hermitian=True),
     lambda a: np.linalg.pinv(a, hermitian=True), distinct_eigenvalues, SQUARE),
    ("qr", la.qr, np.linalg.qr, normal, RECT),
    ("qr_complete", lambda a: la.qr(a, mode="complete"),
     lambda a: np.linalg.qr(a, mode="complete"), normal, RECT),
    ("qr_r", lambda a: la.qr(a, mode="r"), lambda a: np.linalg.qr(a, mode="r"), normal, RECT),
    ("matrix_power_0", lambda a: la.matrix_power(a, 0),
     lambda a: np.linalg.matrix_power(a, 0), normal, SQUARE),
    ("matrix_power_5", lambda a: la.matrix_power(a, 5),
     lambda a: np.linalg.matrix_power(a, 5), normal, SQUARE),
    ("matrix_power_-3", lambda a: la.matrix_power(a, -3),
     lambda a: np.linalg.matrix_power(a, -3), well_conditioned, SQUARE),
    ("matrix_transpose", la.matrix_transpose, np.linalg.matrix_transpose, normal, RECT),
]  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name,fn,np_fn,sampler,shapes", VALUES, ids=[v[0] for v in VALUES])
def test_linalg_values_match_numpy(name, fn, np_fn, sampler, shapes, dtype):
    for shape in shapes:
        a = make(np.random.default_rng(7), sampler, shape, dtype)
        out, expected = fn(a), np_fn(a)
        if isinstance(expected, tuple):
            assert isinstance(out, tuple) and len(out) == len(expected)
            if hasattr(expected, "_fields"):
                assert out._fields == expected._fields
        else:
            out, expected = (out,), (expected,)
        for o, e in zip(out, expected):
            assert np.shape(o) == np.shape(e) and o.dtype == e.dtype
            np.testing.assert_allclose(o, e, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                       atol=1e-6 if dtype == np.float32 else 1e-13)  # fmt: skip


# --- known closed forms and behaviours ----------------------------------------------------------
def test_closed_form_gradients():
    rng = np.random.default_rng(8)
    a = well_conditioned(rng, (2, 3, 3))
    g = dp.grad(lambda a: la.slogdet(a).logabsdet.sum())(a)
    np.testing.assert_allclose(g, np.swapaxes(np.linalg.inv(a), -1, -2), rtol=1e-12)
    g = dp.grad(lambda a: la.det(a).sum())(a)
    expected = np.linalg.det(a)[:, None, None] * np.swapaxes(np.linalg.inv(a), -1, -2)
    np.testing.assert_allclose(g, expected, rtol=1e-12)
    x = distinct_singular_values(rng, (4, 3))
    u, _, vh = np.linalg.svd(x, full_matrices=False)
    c = np.array([1.0, -2.0, 0.5])
    g = dp.grad(lambda x: la.svdvals(x) @ c)(x)
    np.testing.assert_allclose(g, (u * c) @ vh, rtol=1e-10, atol=1e-12)
    s = distinct_eigenvalues(rng, (3, 3))
    w, v = np.linalg.eigh(s)
    g = dp.grad(lambda s: la.eigvalsh(s) @ c)(s)
    sym_g = (v * c) @ v.T  # the gradient along symmetric perturbations; eigvalsh reads only
    lower = np.tril(sym_g + sym_g.T) - np.diag(np.diag(sym_g))  # the lower triangle
    np.testing.assert_allclose(g, lower, rtol=1e-10, atol=1e-12)


def test_unused_outputs_cost_nothing(monkeypatch):
    """An output nobody uses gets a None cotangent: the rule skips its terms entirely."""

    def forbidden(*args):
        raise AssertionError("a rule computed the term of an unused output")

    rng = np.random.default_rng(9)
    s = distinct_eigenvalues(rng, (3, 3))
    x = distinct_singular_values(rng, (4, 3))
    monkeypatch.setattr(la, "_gap_inverse", forbidden)
    g = dp.grad(lambda s: la.eigh(s).eigenvalues.sum())(s)
    np.testing.assert_allclose(g, np.eye(3), atol=1e-12)  # sum of eigenvalues = trace
    dp.grad(lambda x: la.svd(x, full_matrices=False).S.sum())(x)
    dp.grad(lambda a: la.slogdet(a).sign.sum())(well_conditioned(rng, (3, 3)))


def test_multi_output_unpacks_like_numpy():
    a = spd(np.random.default_rng(10), (3, 3))
    w, v = la.eigh(a)
    assert la.eigh(a).eigenvectors is not None and w.shape == (3,) and v.shape == (3, 3)
    sign, logabsdet = la.slogdet(a)
    assert sign == 1.0 and np.isclose(logabsdet, np.log(np.linalg.det(a)))
    u, s, vh = la.svd(a)
    q, r = la.qr(a)
    np.testing.assert_allclose((u * s) @ vh, a)
    np.testing.assert_allclose(q @ r, a)


def test_hessian_of_logdet():
    """d2 logdet(A)[E, E] = -tr(A^-1 E A^-1 E), through the rules' own rules."""
    rng = np.random.default_rng(11)
    a, e = spd(rng, (3, 3)), rng.normal(size=(3, 3))
    _, hvp = dp.hvp(lambda a: la.slogdet(a).logabsdet, (a,), (e,))
    ainv = np.linalg.inv(a)
    np.testing.assert_allclose(np.sum(hvp[0] * e), -np.trace(ainv @ e @ ainv @ e), rtol=1e-10)


def test_det_derivatives_of_near_singular_and_overflowing_matrices():
    """The Hessian of a 2 x 2 det is a constant (d2 det[E, F] = e00 f11 + e11 f00 - e01 f10 -
    e10 f01): at condition 4e12 the rule d inv(a)^T kept 4 digits of it (terms of size
    |d| |inv(a)|^2 cancelled), in both second-order modes, under dp.jit and dp.vmap too; and
    the gradient adj(a)^T is finite where det overflows (was inf * 0 = NaN and inf)."""
    a = np.array([[1.0, 1.0], [1.0, 1.0 + 1e-12]])
    t = np.array([[0.3, -0.7], [1.1, 0.4]])
    exact = np.array([[t[1, 1], -t[1, 0]], [-t[0, 1], t[0, 0]]])
    hvp = lambda a: dp.jvp(dp.grad(la.det), (a,), (t,))[1]
    np.testing.assert_allclose(hvp(a), exact, rtol=1e-12)
    np.testing.assert_allclose(dp.vjp(dp.grad(la.det), a)[1](t)[0], exact, rtol=1e-12)
    np.testing.assert_allclose(dp.jit(hvp)(a), exact, rtol=1e-12)
    np.testing.assert_allclose(dp.vmap(hvp)(np.stack([a, np.eye(2), 3 * a])), [exact] * 3, rtol=1e-12)
    big = 1e200 * np.array([[1.0, 2.0], [3.0, 4.0]])
    with np.errstate(over="ignore"):
        assert la.det(big) == -np.inf
        np.testing.assert_allclose(dp.grad(la.det)(big), [[big[1, 1], -big[1, 0]], [-big[0, 1], big[0, 0]]],
                                   rtol=1e-14)  # fmt: skip


@pytest.mark.parametrize("shape", [(3, 3), (4, 2), (2, 4)], ids=str)
def test_pinv_gradient_of_a_tiny_matrix_is_finite(shape):
    """pinv(c a) = pinv(a) / c, so its gradient is c^-2 times a's: finite for c = 1e-130
    (was NaN: the VJP formed P conj(P P^H) g^H, of size |P|^3 = 1e390)."""
    rng = np.random.default_rng(5)
    a, w = rng.normal(size=shape), rng.normal(size=shape[::-1])
    grad = dp.grad(lambda a: dp.numpy.sum(w * la.pinv(a)))
    np.testing.assert_allclose(grad(1e-130 * a), grad(a) * 1e260, rtol=1e-12)
    np.testing.assert_allclose(grad(1e100 * a), grad(a) * 1e-200, rtol=1e-12)


def test_linalg_errors():
    rect = dp.grad(lambda x: la.svd(x)[1].sum())
    with pytest.raises(NotImplementedError, match="full_matrices=False"):
        rect(np.ones((4, 3)))
    with pytest.raises(NotImplementedError, match="wide"):
        dp.grad(lambda x: la.qr(x)[1].sum())(np.ones((2, 3)))
    with pytest.raises(NotImplementedError, match="mode='complete'"):
        dp.grad(lambda x: la.qr(x, mode="complete")[1].sum())(np.eye(3))
    with pytest.raises(ValueError, match="square"):
        la.inv(np.ones((2, 3)))
    with pytest.raises(ValueError, match="square"):
        la.solve(np.ones((2, 3)), np.ones(2))
    with pytest.raises(ValueError, match="UPLO"):
        la.eigh(np.eye(2), UPLO="X")
    with pytest.raises(NotImplementedError, match="out="):
        la.multi_dot([np.eye(2), np.eye(2)], out=np.empty((2, 2)))
    with pytest.raises(np.linalg.LinAlgError):
        la.cholesky(-np.eye(2))

test_einsum_under_jit = under_jit(test_einsum)
test_einsum_under_vmap = under_vmap(test_einsum)
test_products_under_jit = under_jit(test_products)
test_products_under_vmap = under_vmap(test_products)
test_linalg_grads_under_jit = under_jit(test_linalg_grads)
test_linalg_grads_under_vmap = under_vmap(test_linalg_grads)
test_solve_under_jit = under_jit(test_solve)
test_solve_under_vmap = under_vmap(test_solve)
