"""Complex numbers end to end: JAX's convention checked on closed forms (grad of a real f of
z = x + iy is df/dx - i df/dy; holomorphic=True gives f'(z)), the parts real/imag/conj/angle
and abs of complex values in both modes and to second order, casts both ways, complex
cotangents and tangents, NumPy's functions and the tracer's attributes on complex values,
and check_grads itself catching a wrong complex rule. (The op tables run in complex dtypes
in test_ops.py.)"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from backends import NUMPY, check_jit, on_gpu, under_jit, under_vmap
from diffprog.testing import check_grads

RNG = np.random.default_rng(0)
Z = RNG.normal(size=(2, 3)) + 1j * RNG.normal(size=(2, 3))
DTYPES = [np.complex128, np.complex64]


def test_grad_of_a_real_function_is_df_dx_minus_i_df_dy():
    # JAX's autodiff cookbook: f(z) = x^2 + y^2 at 3 + 4j has grad 6 - 8j = 2 conj(z)
    assert dp.grad(lambda z: dnp.real(z) ** 2 + dnp.imag(z) ** 2)(3 + 4j) == 6 - 8j
    np.testing.assert_allclose(dp.grad(lambda z: dnp.sum(dnp.abs(z) ** 2))(Z), 2 * np.conj(Z))
    np.testing.assert_allclose(dp.grad(lambda z: dnp.sum(z * dnp.conj(z)).real)(Z), 2 * np.conj(Z))
    np.testing.assert_allclose(dp.grad(lambda z: dnp.sum(dnp.real(z)))(Z), np.ones_like(Z))
    np.testing.assert_allclose(dp.grad(lambda z: dnp.sum(dnp.imag(z)))(Z), -1j * np.ones_like(Z))
    # |z|: (x - iy) / |z| = conj(z) / |z|; angle: atan2(y, x) gives (-y - ix) / |z|^2 = -1j / z
    np.testing.assert_allclose(dp.grad(lambda z: dnp.sum(dnp.abs(z)))(Z), np.conj(Z) / np.abs(Z))
    np.testing.assert_allclose(dp.grad(lambda z: dnp.sum(dnp.angle(z)))(Z), -1j / Z)
    np.testing.assert_allclose(dp.grad(lambda z: dnp.sum(dnp.angle(z, deg=True)))(Z),
                               -1j / Z * 180 / np.pi)  # fmt: skip


def test_descending_along_the_conjugate_of_grad_reaches_the_minimum():
    target = np.array([1 - 2j, 0.5j])
    loss = lambda z: dnp.sum(dnp.abs(z - target) ** 2)
    z = np.zeros(2, dtype=complex)
    for _ in range(50):
        z = z - 0.25 * np.conj(dp.grad(loss)(z))
    np.testing.assert_allclose(z, target, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_holomorphic_grad_is_the_complex_derivative(dtype):
    for z in (np.complex128(0.3 + 0.7j).astype(dtype), 0.3 + 0.7j):
        tol = 1e-6 if np.dtype(dtype) == np.complex64 else 1e-13
        for f, d in [(lambda z: z**3, lambda z: 3 * z**2), (dnp.sin, np.cos), (dnp.exp, np.exp),
                     (dnp.log, lambda z: 1 / z), (lambda z: dnp.sqrt(z) / (1 + z),
                     lambda z: (1 - z) / (2 * np.sqrt(z) * (1 + z) ** 2))]:  # fmt: skip
            g = dp.grad(f, holomorphic=True)(z)
            assert type(g) is type(z) and np.isclose(g, d(z), rtol=tol, atol=tol)
    second = dp.grad(dp.grad(lambda z: z**4, holomorphic=True), holomorphic=True)(1j)
    assert second == 12 * (1j) ** 2
    np.testing.assert_allclose(dp.hessian(lambda z: dnp.sum(z**3), holomorphic=True)(Z[0]),
                               np.diag(6 * Z[0]))  # fmt: skip
    np.testing.assert_allclose(dp.jacfwd(dnp.exp, holomorphic=True)(Z[0]), np.diag(np.exp(Z[0])))
    np.testing.assert_allclose(dp.jacrev(dnp.exp, holomorphic=True)(Z[0]), np.diag(np.exp(Z[0])))


def test_jacobians_refuse_complex_values_without_holomorphic():
    with pytest.raises(dp.UnsupportedLeafError, match="jacfwd got a complex input.*holomorphic="):
        dp.jacfwd(lambda z: dnp.abs(z))(Z[0])
    with pytest.raises(dp.UnsupportedLeafError, match="dp.jacrev got a complex output"):
        dp.jacrev(dnp.exp)(Z[0])
    with pytest.raises(dp.UnsupportedLeafError, match=r"jacfwd\(holomorphic=True\) got a real input of dtype float64"):
        dp.jacfwd(dnp.exp, holomorphic=True)(np.ones(2))
    # a real output of complex inputs: grad's rows
    np.testing.assert_allclose(dp.jacrev(dnp.abs)(Z[0]), np.diag(np.conj(Z[0]) / np.abs(Z[0])))


def test_vjp_and_jvp_of_a_holomorphic_function_multiply_by_its_derivative():
    u = RNG.normal(size=Z.shape) + 1j * RNG.normal(size=Z.shape)
    _, pull = dp.vjp(dnp.sin, Z)
    np.testing.assert_allclose(pull(u)[0], u * np.cos(Z))
    np.testing.assert_allclose(dp.jvp(dnp.sin, (Z,), (u,))[1], u * np.cos(Z))
    # a real cotangent or tangent of a complex value is the complex one with zero imaginary part
    np.testing.assert_allclose(pull(np.ones(Z.shape))[0], np.cos(Z))
    np.testing.assert_allclose(dp.jvp(dnp.exp, (Z,), (np.ones(Z.shape),))[1], np.exp(Z))


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")  # NumPy's, untraced
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_casts_both_ways(dtype):
    z = Z.astype(dtype)
    real = np.finfo(dtype).dtype
    x = Z.real.astype(real)
    # complex -> real keeps the real part: the imaginary part gets no cotangent
    g = dp.grad(lambda z: dnp.sum(z.astype(real) ** 2))(z)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, 2 * z.real, rtol=1e-6)
    assert dp.jvp(lambda z: z.astype(real), (z,), (1j * np.ones_like(z),))[1].tolist() == \
        np.zeros(z.shape, real).tolist()  # fmt: skip
    # real -> complex: the real input's cotangent is the real part of the complex one
    g = dp.grad(lambda x: dnp.sum(dnp.abs(x.astype(dtype) * (1 + 1j))))(x)
    assert g.dtype == real
    np.testing.assert_allclose(g, np.sqrt(2) * np.sign(x), rtol=1e-6)
    for f in (lambda z: z.astype(real) * z, lambda x: dnp.exp(1j * x.astype(dtype)) * x,
              lambda z: dnp.real_if_close(z * dnp.conj(z)), lambda z: z.real * z.imag + z.conj()):
        check_grads(f, (z,) if f.__code__.co_varnames[0] == "z" else (x,))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", ["real", "imag", "conj", "conjugate", "angle", "abs", "sign"])
def test_parts_in_both_modes_to_second_order(name, dtype):
    f = getattr(dnp, name)
    check_grads(lambda z: f(z) * z, (Z.astype(dtype),), order=2)
    check_grads(lambda x: f(x * (1 + 2j)) * x, (Z.real.astype(np.finfo(dtype).dtype),), order=2)
    np.testing.assert_allclose(f(Z), getattr(np, name)(Z), rtol=1e-15)  # (sign: z / |z|)


def test_sign_of_infinite_values_is_numpys_when_traced():
    """Traced (under the transforms and dp.jit), sign of an infinite complex value is NumPy's
    (1 at inf + 0j, -1j at -inf j), not inf / inf = NaN; its derivative there is 0, as at 0."""
    z = np.array([complex(np.inf, 0), complex(0, -np.inf), complex(-np.inf, 1), 1e308 + 1e308j,
                  0j, complex(np.nan, 0), 3 - 4j])
    want = np.sign(z)
    t = np.ones_like(z) * (1 + 1j)
    for got in (dp.jvp(dnp.sign, (z,), (t,))[0], dp.jit(dnp.sign)(z), dp.vjp(dnp.sign, z)[0]):
        np.testing.assert_allclose(got, want, rtol=1e-15)
    np.testing.assert_array_equal(dp.jvp(dnp.sign, (z,), (t,))[1][[0, 1, 2, 4, 5]], np.zeros(5))
    # t / |z| - z Re(conj(z) t) / |z|^3 at z = 3 - 4j, t = 1 + 1j: Re((3 + 4j)(1 + 1j)) = -1
    np.testing.assert_allclose(dp.jvp(dnp.sign, (z,), (t,))[1][6], (1 + 1j) / 5 + (3 - 4j) / 125, rtol=1e-15)


def test_numpy_functions_and_tracer_attributes_dispatch():
    def f(z):
        parts = [np.real(z), np.imag(z), np.conj(z), np.conjugate(z), np.angle(z), np.abs(z),
                 z.real, z.imag, z.conj(), z.conjugate(), np.real_if_close(z), abs(z)]
        assert np.iscomplexobj(z) and not np.isrealobj(z) and np.iscomplex(z).all()
        assert not np.isreal(z).any() and dnp.iscomplexobj(z)
        return sum(dnp.sum(p * p) for p in parts)

    check_grads(f, (Z,))
    assert dnp.real_if_close(np.array([1 + 1e-15j])).dtype == np.float64
    assert dnp.real_if_close(np.array([1 + 1e-3j])).dtype == np.complex128
    assert dnp.isrealobj(np.ones(2)) and not dnp.iscomplexobj(1.0) and dnp.iscomplexobj(1j)
    for z in (1 + 2j, np.complex64(1 + 2j), Z):  # untraced: NumPy's result and type
        assert type(dnp.sign(z)) is type(np.sign(z)) and np.array_equal(dnp.sign(z), np.sign(z))


def test_complex_leaves_in_pytrees_and_python_complex():
    params = {"w": Z, "c": 1 + 2j, "x": 0.5, "n": 3}
    g = dp.grad(lambda p: dnp.sum(dnp.abs(p["w"] * p["c"] + p["x"]) ** 2) * p["n"])(params)
    assert type(g["c"]) is complex and type(g["x"]) is float and g["n"] is None
    assert g["w"].dtype == np.complex128 and g["w"].shape == Z.shape
    check_grads(lambda p: dnp.abs(p["w"] * p["c"] + p["x"]) ** 2, (params,))


def test_check_grads_catches_a_wrong_complex_rule():
    """A conj whose VJP forgets to conjugate agrees on real directions only: check_grads,
    moving the imaginary parts too, must catch it."""

    @dp.custom_vjp
    def bad_conj(z):
        return dnp.conj(z)

    bad_conj.defvjp(lambda z: (dnp.conj(z), None), lambda _, g: (g,))
    check_grads(lambda x: bad_conj(x) * x, (Z.real,), order=1, modes=("rev",))  # real: right
    with pytest.raises(AssertionError, match="reverse-mode derivative disagrees"):
        check_grads(lambda z: bad_conj(z) * z, (Z,), order=1, modes=("rev",))


def test_complex_intermediates_warn_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dp.grad(lambda x: dnp.sum(dnp.abs(dnp.exp(1j * x) * x).astype(np.float32)))(np.ones(3))
        dp.jvp(lambda z: dnp.real(z).astype(np.float64), (Z,), (Z,))


OPTIMIZERS = {
    "sgd": lambda: dp.optim.sgd(0.1),
    "sgd_nesterov": lambda: dp.optim.sgd(0.05, momentum=0.9, nesterov=True),
    "adam": lambda: dp.optim.adam(0.05),
    "adamw": lambda: dp.optim.adamw(0.05, weight_decay=1e-3),
    "rmsprop": lambda: dp.optim.rmsprop(0.01),
    "clipped_sgd_schedule": lambda: dp.optim.chain(
        dp.optim.clip_by_global_norm(1.0), dp.optim.sgd(lambda n: 0.1 / (1 + 0.001 * n))),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizers_descend_on_complex_parameters(name):
    target = {"z": np.array([1 - 2j, 0.5j]), "c": 0.3 + 0.1j, "w": np.float32(0.7)}
    loss = lambda p: sum(dnp.sum(dnp.abs(p[k] - target[k]) ** 2) for k in p)
    params = {"z": np.zeros(2, complex), "c": 0j, "w": np.float32(0.0)}
    opt = OPTIMIZERS[name]()
    state = opt.init(params)
    start = float(loss(params))
    for _ in range(300):
        updates, state = opt.update(dp.grad(loss)(params), state, params)
        params = dp.optim.apply_updates(params, updates)
    assert float(loss(params)) < 1e-3 * start
    assert type(params["c"]) is complex and params["z"].dtype == np.complex128
    assert params["w"].dtype == np.float32
    if name == "adam":  # the second moments of complex gradients are real: |g|^2
        assert state[0].nu["z"].dtype == np.float64 and type(state[0].nu["c"]) is float
    # weight decay pulls a complex parameter towards 0 along -p (the step is -lr wd p)
    decay = dp.optim.add_decayed_weights(0.5)
    assert decay.update({"p": 0j}, decay.init(None), {"p": 2 - 4j})[0]["p"] == 1 + 2j
    sgd = dp.optim.sgd(1.0)
    assert sgd.update({"p": 1 + 2j}, sgd.init(None))[0]["p"] == -1 + 2j


def test_save_and_load_round_trip_complex_leaves(tmp_path):
    tree = {"a": Z, "b": Z.astype(np.complex64), "c": 1 + 2j, "d": np.complex64(2j),
            "e": np.zeros((0, 2), complex)}  # fmt: skip
    dp.save(tmp_path / "z.dp", tree)
    for back in (dp.load(tmp_path / "z.dp"), dp.load(tmp_path / "z.dp", like=tree)):
        for k, v in tree.items():
            assert type(back[k]) is type(v) and np.array_equal(back[k], v)
            assert getattr(back[k], "dtype", None) == getattr(v, "dtype", None)


def _hermitian(a):
    return (a + dnp.conj(dnp.swapaxes(a, -1, -2))) / 2


def _svd_product(a):
    u, s, vh = dnp.linalg.svd(a, full_matrices=False)
    return (u * s[..., None, :]) @ vh + dnp.abs(u) ** 2 @ dnp.abs(vh) ** 2


def _eigh_product(a):
    w, v = dnp.linalg.eigh(a)
    return (v * w[..., None, :]) @ dnp.conj(dnp.swapaxes(v, -1, -2)) + dnp.abs(v) ** 2


LA = dnp.linalg


def _eye(a):  # 3 I on a's device
    return 3 * dnp.eye(3, like=dp.stop_gradient(a))
# name -> (function, input shape); phase-invariant functions of eigen/singular vectors
LINALG = {
    "matmul": (lambda a: a @ a.T + dnp.matmul(a, dnp.conj(a)), (3, 3)),
    "einsum": (lambda a: dnp.einsum("...ij,...jk->...ik", a, dnp.conj(a)), (2, 3, 3)),
    "vdot_vecdot": (lambda a: dnp.vdot(a, a * 1j) + dnp.vecdot(a, a[::-1]), (2, 3)),
    "inv": (lambda a: LA.inv(a + _eye(a)), (2, 3, 3)),
    "solve": (lambda a: LA.solve(a + _eye(a), a[..., 0]), (3, 3)),
    "det": (lambda a: LA.det(a), (2, 3, 3)),
    "slogdet": (lambda a: LA.slogdet(a)[0] * LA.slogdet(a)[1], (3, 3)),
    "eigh": (lambda a: _eigh_product(_hermitian(a)), (2, 3, 3)),
    "eigh_upper_triangle": (lambda a: LA.eigh(a, UPLO="U")[0], (3, 3)),
    "eigvalsh": (lambda a: LA.eigvalsh(a), (3, 3)),
    "eig": (lambda a: LA.eigvals(a) + dnp.sum(dnp.abs(LA.eig(a)[1]) ** 2, axis=-2), (3, 3)),
    "svd_tall": (_svd_product, (4, 3)),
    "svd_wide": (_svd_product, (2, 2, 4)),
    "svd_hermitian": (lambda a: LA.svd(_hermitian(a), hermitian=True)[1], (3, 3)),
    "svdvals_norms": (lambda a: LA.svdvals(a) * LA.norm(a, 2) + LA.norm(a, "nuc"), (4, 3)),
    "qr": (lambda a: LA.qr(a)[0] * dnp.sum(LA.qr(a)[1]) + LA.qr(a, mode="r")[0], (4, 3)),
    "cholesky": (lambda a: LA.cholesky(a @ dnp.conj(a.T) + _eye(a)), (3, 3)),
    "cholesky_upper": (lambda a: LA.cholesky(a @ dnp.conj(a.T) + _eye(a), upper=True), (3, 3)),
    "pinv": (lambda a: LA.pinv(a), (3, 4)),
    "pinv_hermitian": (lambda a: LA.pinv(a, hermitian=True), (3, 3)),
    "lstsq": (lambda a: LA.lstsq(a, a[:, 0] + 1j)[0] + LA.lstsq(a, a[:, 1:] * a[:, :2])[1][0],
              (4, 3)),
    "norm_fro_vector": (lambda a: LA.norm(a) + LA.norm(a[0], 3), (3, 3)),
    "matrix_power": (lambda a: LA.matrix_power(a, -2), (3, 3)),
    "setitem_and_gather": (lambda a: _written(a), (3, 4)),
}  # fmt: skip


def _written(a):
    b = dnp.zeros_like(a, shape=(4, 4), dtype=np.result_type(a.dtype, np.complex64))
    b[1:, :] = a * 1j
    b[0] = a[np.array([0, 2]), 1:].ravel()[:4]
    b[np.array([1, 1]), 0] += a[0, 0]
    return b * dnp.conj(b)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(LINALG))
def test_products_linalg_and_indexing_on_complex_matrices(name, dtype, backend=NUMPY):
    f, shape = LINALG[name]
    if name == "pinv_hermitian" and backend.name.startswith("cupy"):
        pytest.skip("CuPy's pinv has no hermitian=")
    rng = np.random.default_rng(len(name))
    a = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(dtype)
    backend.check_grads(f, (a,), order=2 if dtype == np.complex128 else 1)
    backend.check_grads(f, (a.real.copy(),), order=1)  # a real input, complex intermediates


test_products_linalg_and_indexing_on_complex_matrices_on_gpu = on_gpu(
    test_products_linalg_and_indexing_on_complex_matrices)


def test_interp_and_nan_to_num_of_complex_values():
    xp = np.array([0.0, 1.0, 2.5])
    for x in (np.array([0.3, 1.7, -1.0, 3.0]), 0.5):
        np.testing.assert_array_equal(dnp.interp(x, xp, Z[0]), np.interp(x, xp, Z[0]))
    check_grads(lambda x, fp: dnp.interp(x, xp, fp), (np.array([0.3, 1.7, 2.0]), Z[0]))
    bad = np.array([complex(np.nan, 1), complex(2, np.inf), complex(-np.inf, np.nan), 1 - 2j])
    fixed = lambda z: dnp.nan_to_num(z + bad, posinf=7.0, neginf=-7.0)  # noqa: E731
    np.testing.assert_array_equal(fixed(1.0), np.nan_to_num(1 + bad, posinf=7.0, neginf=-7.0))
    # |.|^2 of the kept parts at z = 1: 1^2 (imag), 3^2 (real), 2^2 + (-2)^2: d/dx = 6 + 4,
    # d/dy = 2 - 4, and grad = d/dx - i d/dy
    assert dp.grad(lambda z: dnp.sum(dnp.abs(fixed(z)) ** 2))(1 + 0j) == 10 + 2j


def test_other_transforms_on_complex_values():
    f = lambda z: dnp.sum(dnp.abs(z) ** 4)  # noqa: E731
    v = np.conj(Z[1])
    g = dp.grad(f)
    numeric = (g(Z[0] + 1e-6 * v) - g(Z[0] - 1e-6 * v)) / 2e-6
    np.testing.assert_allclose(dp.hvp(f, (Z[0],), (v,))[1][0], numeric, rtol=1e-6)
    with dp.Tape() as tape:
        w = tape.watch(Z[0])
        y = f(w)
    np.testing.assert_allclose(tape.gradient(y, w), g(Z[0]))

    @dp.custom_jvp
    def conj(z):
        return dnp.conj(z)

    conj.defjvp(lambda p, t: (conj(p[0]), dnp.conj(t[0])))
    check_grads(lambda z: conj(z) * z, (Z,))
    check_grads(dp.checkpoint(lambda z: dnp.exp(z) * dnp.conj(z)), (Z,))
    with dp.debug_nans():
        assert np.all(np.isfinite(dp.grad(lambda z: dnp.sum(dnp.abs(dnp.sqrt(z))))(Z)))
test_products_linalg_and_indexing_on_complex_matrices_under_jit = under_jit(
    test_products_linalg_and_indexing_on_complex_matrices)
test_products_linalg_and_indexing_on_complex_matrices_under_vmap = under_vmap(
    test_products_linalg_and_indexing_on_complex_matrices)


# --- orderings: NumPy orders complex values lexicographically (real part, then imaginary) ---
_W = RNG.normal(size=(3, 4)) + 1j * RNG.normal(size=(3, 4))
_LO, _HI = RNG.normal(size=4) - 1.0 + 1j * RNG.normal(size=4), RNG.normal(size=4) + 1.0 + 0j
ORDERINGS = {  # name: (diffprog's function, NumPy's or SciPy's)
    "max": (lambda z: dnp.max(z, axis=0), lambda z: np.max(z, axis=0)),
    "min": (lambda z: dnp.min(z), np.min),
    "max_where": (lambda z: dnp.max(z, axis=1, where=z.real > 0, initial=-3 + 1j),
                  lambda z: np.max(z, axis=1, where=z.real > 0, initial=-3 + 1j)),
    "ptp": (lambda z: dnp.ptp(z, axis=1), lambda z: np.ptp(z, axis=1)),
    "maximum": (lambda z: dnp.maximum(z, _W), lambda z: np.maximum(z, _W)),
    "minimum": (lambda z: dnp.minimum(_W, z), lambda z: np.minimum(_W, z)),
    "fmax": (lambda z: dnp.fmax(z, _W[0]), lambda z: np.fmax(z, _W[0])),
    "fmin": (lambda z: dnp.fmin(z, 0.1j), lambda z: np.fmin(z, 0.1j)),
    "clip": (lambda z: dnp.clip(z, -0.5 - 1j, 0.5 + 0j), lambda z: np.clip(z, -0.5 - 1j, 0.5 + 0j)),
    "clip_array_bounds": (lambda z: dnp.clip(z, _LO, _HI), lambda z: np.clip(z, _LO, _HI)),
    "relu": (dnp.relu, lambda z: np.maximum(z, 0)),
    "sort": (lambda z: dnp.sort(z, axis=0), lambda z: np.sort(z, axis=0)),
    "partition": (lambda z: dnp.partition(z, 1), lambda z: np.partition(z, 1)),
    "median": (lambda z: dnp.median(z, axis=-1), lambda z: np.median(z, axis=-1)),
    "logsumexp": (lambda z: dnp.logsumexp(z * 3.0, axis=-1),
                  lambda z: scipy_special().logsumexp(z * 3.0, axis=-1)),
    "softmax": (dnp.softmax, lambda z: scipy_special().softmax(z, axis=-1)),
    "log_softmax": (dnp.log_softmax, lambda z: scipy_special().log_softmax(z, axis=-1)),
}


def scipy_special():
    return pytest.importorskip("scipy.special")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(ORDERINGS))
def test_orderings_of_complex_values(name, dtype, backend=NUMPY):
    """NumPy's lexicographic order: values equal NumPy's (SciPy's for logsumexp and softmax:
    logsumexp on the principal branch of log), including ties of the real parts, decided by
    the imaginary ones; derivatives those of the selected values, against central
    differences in both modes to second order (at points without ties)."""
    f, want = ORDERINGS[name]
    z = (RNG.normal(size=(3, 4)) + 1j * RNG.normal(size=(3, 4))).astype(dtype)
    tied = z.copy()
    tied[:, 1] = tied[:, 0].real + 1j * tied[:, 2].imag  # equal real parts in each row,
    tied[2] = tied[0].real + 1j * tied[1].imag  # and in two columns
    for x in (z, tied):
        got, expected = f(x), want(x)
        assert np.asarray(got).dtype == np.asarray(expected).dtype
        np.testing.assert_allclose(got, expected, rtol=1e-12 if dtype == np.complex128 else 1e-6)
    backend.check_grads(f, (z,), order=2 if dtype == np.complex128 else 1)


test_orderings_of_complex_values_under_jit = under_jit(test_orderings_of_complex_values)


def test_positions_of_complex_orderings_are_numpys():
    """argmax/argmin/argsort/argpartition of complex values, traced too (ties of the real
    parts decided by the imaginary ones, as NumPy's)."""
    z = RNG.normal(size=(3, 4)) + 1j * RNG.normal(size=(3, 4))
    z[:, 1] = z[:, 0].real + 1j * z[:, 3].imag
    for name, kw in [("argmax", {"axis": 1}), ("argmin", {}), ("argsort", {"axis": 0}),
                     ("argpartition", {"kth": 2})]:  # fmt: skip
        want = getattr(np, name)(z, **kw)
        np.testing.assert_array_equal(getattr(dnp, name)(z, **kw), want)
        traced = dp.grad(lambda z: (dnp.sum(dnp.abs(z)), getattr(dnp, name)(z, **kw)),
                         has_aux=True)(z)[1]  # fmt: skip
        np.testing.assert_array_equal(traced, want)
        np.testing.assert_array_equal(dp.vmap(lambda z: getattr(dnp, name)(z, **kw))(z[None]), want[None])
test_orderings_of_complex_values_under_vmap = under_vmap(test_orderings_of_complex_values)


def test_jit_takes_python_complex_leaves_as_inputs_and_optimizers_keep_their_type():
    loss = lambda p: dnp.abs(p["c"]) ** 2 * dnp.real(p["c"]) + dnp.sum(dnp.abs(p["z"]) ** 2)  # noqa: E731
    opt = dp.optim.adam(0.1)

    def step(p, state):
        updates, state = opt.update(dp.grad(loss)(p), state, p)
        return dp.optim.apply_updates(p, updates), state

    jitted = dp.jit(step)
    eager = staged = ({"c": 1 + 2j, "z": Z[0]}, opt.init({"c": 1 + 2j, "z": Z[0]}))
    for _ in range(4):
        eager, staged = step(*eager), jitted(*staged)
    assert type(staged[0]["c"]) is complex and staged[0]["c"] == pytest.approx(eager[0]["c"])
    np.testing.assert_allclose(staged[0]["z"], eager[0]["z"], rtol=1e-12)
    assert jitted.stats["recordings"] == 1 and jitted.stats["replays"] == 3


def test_det_of_singular_complex_matrices_gives_the_cofactors():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(3, 3)) + 1j * rng.normal(size=(3, 3))
    a[2] = 0  # rank 2: the cofactors of row 2 are the only non-zero ones
    cofactors = np.array([[(-1) ** (i + j) * np.linalg.det(np.delete(np.delete(a, i, 0), j, 1))
                           for j in range(3)] for i in range(3)])  # fmt: skip
    np.testing.assert_allclose(dp.grad(lambda a: dnp.real(dnp.linalg.det(a)))(a), cofactors,
                               atol=1e-12)  # fmt: skip
    check_grads(dnp.linalg.det, (a,), order=2)
    a[1] = 0  # rank 1: every cofactor is 0, the second derivative is not
    check_grads(dnp.linalg.det, (a,), order=2)


# name -> a write into w (complex, shape (3,)) through its parts, given y (real, shape (3,))
PART_WRITES = {
    "real_slice": lambda w, y: w.real.__setitem__(slice(1, None), y[:2]),
    "imag_item": lambda w, y: w.imag.__setitem__(0, y[1] * y[0]),
    "real_attribute": lambda w, y: setattr(w, "real", y**2),
    "imag_attribute": lambda w, y: setattr(w, "imag", y[0]),
    "real_in_place": lambda w, y: w.real.__imul__(y),
    "np_imag_view": lambda w, y: np.imag(w).__setitem__(slice(None), y),
    "view_sees_base_write": lambda w, y: (lambda r: (w.__setitem__(1, y[0] + 1j),
                                                     r.__imul__(y)))(w.real),  # fmt: skip
}


@pytest.mark.parametrize("name", sorted(PART_WRITES))
def test_writes_through_real_and_imag_views(name):
    """x.real and x.imag of a complex array are views, as in NumPy: writes into them (and
    x.real = v, x.imag = v) reach x, with the derivative of what NumPy computes (a value
    written into the imaginary part enters as 1j * v)."""
    def f(z, y, xp_sum):
        w = z * 1.0
        PART_WRITES[name](w, y)
        return xp_sum(np.abs(w) ** 2) + xp_sum(w.real * y + w.imag), w

    z, y = Z[0].copy(), RNG.normal(size=3)
    want = f(z.copy(), y.copy(), np.sum)
    got = dp.jvp(lambda z, y: f(z, y, dnp.sum), (z, y), (z, y))[0]
    np.testing.assert_allclose(got[0], want[0], rtol=1e-13)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-13)
    loss = lambda z, y: f(z, y, dnp.sum)[0]  # noqa: E731
    check_grads(loss, (z, y), order=2)
    check_jit(loss, (z, y))
    batch = dp.vmap(loss)(np.stack([z, 2 * z]), np.stack([y, -y]))
    np.testing.assert_allclose(batch, [f(z, y, np.sum)[0], f(2 * z, -y, np.sum)[0]], rtol=1e-13)


def test_part_writes_of_real_arrays_are_numpys():
    def f(x, y):
        w = x * 1.0
        w.real = y  # all of a real w
        w.real[0] = 5 * y[1]
        return dnp.sum(w * w)

    x, y = np.array([1.0, 2.0, 3.0]), np.array([4.0, 2.0, -1.0])
    gx, gy = dp.grad(f, argnums=(0, 1))(x, y)  # w = (5 y1, y1, y2): x is overwritten
    assert np.array_equal(gx, np.zeros(3))
    np.testing.assert_allclose(gy, [0.0, 52 * 2.0, -2.0])
    with pytest.raises(TypeError, match="does not have imaginary part to set"):
        dp.grad(lambda x: (setattr(x, "imag", 1.0), dnp.sum(x))[1])(x)
    for scalar in (2.0, np.float64(2.0), 1 + 2j):  # immutable in NumPy (and Python) too
        with pytest.raises(AttributeError, match="'real' of a scalar is not writable"):
            dp.jvp(lambda s: setattr(s * 2.0, "real", 5.0), (scalar,), (scalar,))


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")  # NumPy's, untraced
def test_casts_of_numpy_scalars_stay_scalars():
    """x.astype(dtype) of a NumPy scalar is a scalar, as NumPy's own: traced and under
    dp.jit too (a complex one cast to real keeps its real part)."""
    z = Z[0]
    for f in (lambda z: dnp.vdot(z, z).astype(np.float64),
              lambda z: dnp.sum(z * 1j).astype(np.complex64),
              lambda z: dnp.sum(dnp.abs(z)).astype(np.float32)):  # fmt: skip
        want = f(z)
        assert type(dp.jvp(f, (z,), (z,))[0]) is type(want)
        assert type(dp.jit(f)(z)) is type(want) and type(dp.jit(f)(z)) is type(want)
        check_jit(f, (z,))


def test_in_place_operators_refuse_complex_into_real_as_numpy():
    """x op= y keeps x's dtype; a complex result in a real x is NumPy's TypeError (it would
    drop the imaginary part), traced too, while same-kind casts go through."""
    def f(x, y):
        x = x * 1.0
        x += y
        return x

    x = np.ones(3, np.float32)
    with pytest.raises(TypeError, match="Cannot cast ufunc 'add' output from dtype\\('complex"):
        f(x, Z[0])  # NumPy's own
    with pytest.raises(TypeError, match="Cannot cast ufunc 'add' output from dtype\\('complex"):
        dp.jvp(f, (x, Z[0]), (x, Z[0]))
    assert dp.jvp(f, (x, np.ones(3)), (x, np.ones(3)))[0].dtype == np.float32
    assert dp.jvp(f, (Z[0].astype(np.complex64), Z[1]), (Z[0], Z[1]))[0].dtype == np.complex64


@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")  # NumPy's (unsafe)
def test_copyto_refuses_complex_into_real_as_numpy():
    def f(x, z, casting="same_kind"):
        x = x * 1.0
        np.copyto(x, z, casting=casting)
        return x

    x, z = np.ones(3), Z[0]
    for src in (z, 1j):
        with pytest.raises(TypeError, match="Cannot cast .* according to the rule 'same_kind'"):
            f(x, src)  # NumPy's own
        with pytest.raises(TypeError, match="Cannot cast .* according to the rule 'same_kind'"):
            dp.jvp(lambda x: f(x, src), (x,), (x,))
    want = f(x, z, "unsafe")
    assert np.array_equal(dp.jvp(lambda x: f(x, z, "unsafe"), (x,), (x,))[0], want)
    assert dp.jvp(lambda x: f(x, 2.5), (x.astype(np.float32),), (x,))[0].dtype == np.float32


def test_real_if_close_decides_again_under_jit():
    """real_if_close decides on the value: dp.jit's replay must check that decision (a
    guard), else a call with large imaginary parts silently returned the real parts."""
    f = dp.jit(lambda z: dnp.real_if_close(z) * 2)
    close, far = np.array([1 + 1e-17j, 2 + 0j]), np.array([1 + 1j, 2 + 0j])
    for z in (close, close, far, far, close):
        want = np.real_if_close(z) * 2
        got = f(z)
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert f.stats["guard_failures"] >= 2
    assert dp.vmap(dnp.real_if_close)(np.stack([close, far])).dtype == np.complex128
    assert dp.vmap(dnp.real_if_close)(np.stack([close, close])).dtype == np.float64
