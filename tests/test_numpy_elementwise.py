"""The elementwise functions of diffprog.numpy.elementwise beyond the basic arithmetic, and the
array-creation functions of diffprog.numpy.creation.

Every differentiable function: both modes to second order against central differences, in
float64 and float32, over shapes with broadcasting, values equal to NumPy's. Constant-valued
functions: values equal NumPy's, results are raw arrays on tracers, and gradients through code
that uses them are right."""

from __future__ import annotations

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.core.trace import Tracer
from diffprog.numpy import creation as C
from diffprog.numpy import elementwise as E
from backends import NUMPY, on_gpu, under_jit, under_jit_on_gpu, under_vmap
from diffprog.testing import check_grads

DTYPES = [np.float64, np.float32]
UNARY_SHAPES = [(), (3,), (2, 3), (2, 1, 4)]
BINARY_SHAPES = [
    ((), ()), ((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3)), ((4, 1, 3), (2, 3)),
]  # fmt: skip
dtype_ids = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)


# --- samplers: inputs away from kinks, branch cuts and singularities -------------------------
def uniform(lo, hi):
    return lambda rng, shape: rng.uniform(lo, hi, size=shape)


def signed(lo, hi):
    """|x| in [lo, hi], either sign."""
    return lambda rng, shape: rng.choice([-1.0, 1.0], size=shape) * rng.uniform(lo, hi, size=shape)


normal = uniform(-1.5, 1.5)
positive = uniform(0.5, 2.0)
away_from_zero = signed(0.3, 1.5)
inside_unit = uniform(-0.8, 0.8)


def distinct(rng, shape):
    """Values at least 0.1 apart, so that a comparison does not flip under a perturbation."""
    n = int(np.prod(shape, dtype=int))
    values = np.linspace(-1.5, 1.5, max(n, 1)) + rng.uniform(-0.02, 0.02, size=max(n, 1))
    return rng.permutation(values)[:n].reshape(shape)


def shifted(rng, shape):
    return distinct(rng, shape) + 0.05


def make(rng, sampler, shape, dtype):
    x = np.asarray(sampler(rng, shape), dtype=dtype)
    return x if shape else dtype(x)  # a 0-d input arrives as a NumPy scalar


UNARY = {
    "expm1": normal, "exp2": normal, "log1p": uniform(-0.5, 2.0), "log2": positive,
    "log10": positive, "reciprocal": away_from_zero, "cbrt": away_from_zero,
    "tan": uniform(-1.2, 1.2), "arcsin": inside_unit, "arccos": inside_unit, "arctan": normal,
    "sinh": normal, "cosh": normal, "arcsinh": normal, "arccosh": uniform(1.3, 3.0),
    "arctanh": inside_unit, "sinc": uniform(-2.5, 2.5), "deg2rad": normal, "rad2deg": normal,
    "radians": normal, "degrees": normal, "positive": normal, "fabs": away_from_zero,
}  # fmt: skip

# x / y stays inside (2.09, 2.95) in absolute value: floor and trunc do not jump.
QUOTIENT = (signed(2.2, 2.8), signed(0.95, 1.05))
BINARY = {
    "arctan2": (away_from_zero, normal),
    "hypot": (away_from_zero, normal),
    "logaddexp": (normal, normal),
    "logaddexp2": (normal, normal),
    "fmax": (distinct, shifted),
    "fmin": (distinct, shifted),
    "float_power": (positive, normal),
    "remainder": QUOTIENT,
    "mod": QUOTIENT,
    "fmod": QUOTIENT,
    "copysign": (away_from_zero, away_from_zero),
}


@dtype_ids
@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name, shape, dtype, backend=NUMPY):
    fn = getattr(E, name)
    x = make(np.random.default_rng(0), UNARY[name], shape, dtype)
    backend.check_grads(fn, (x,), order=2)
    got, want = fn(x), getattr(np, name)(x)
    assert np.array_equal(got, want) and np.result_type(got) == np.result_type(want)


test_unary_on_gpu = on_gpu(test_unary)
test_unary_under_jit_on_gpu = under_jit_on_gpu(test_unary)


@dtype_ids
@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary(name, shapes, dtype, backend=NUMPY):
    fn = getattr(E, name)
    sx, sy = BINARY[name]
    rng = np.random.default_rng(1)
    x, y = make(rng, sx, shapes[0], dtype), make(rng, sy, shapes[1], dtype)
    backend.check_grads(fn, (x, y), order=2)
    got, want = fn(x, y), getattr(np, name)(x, y)
    assert np.array_equal(got, want) and np.result_type(got) == np.result_type(want)


test_binary_on_gpu = on_gpu(test_binary)
test_binary_under_jit_on_gpu = under_jit_on_gpu(test_binary)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_on_python_floats(name):
    x = float(UNARY[name](np.random.default_rng(4), ()))
    check_grads(getattr(E, name), (x,), order=2)
    assert np.array_equal(getattr(E, name)(x), getattr(np, name)(x))


@dtype_ids
def test_gradients_keep_the_input_dtype(dtype):
    """float_power computes in float64; the gradients come back in the inputs' dtype."""
    x, y = np.full(3, 1.5, dtype), np.full(3, 0.5, dtype)
    assert E.float_power(x, y).dtype == np.float64
    gx, gy = dp.grad(lambda x, y: dnp.sum(E.float_power(x, y)), argnums=(0, 1))(x, y)
    assert gx.dtype == dtype and gy.dtype == dtype
    np.testing.assert_allclose(gx, 0.5 * 1.5**-0.5, rtol=1e-6)
    for name, sampler in UNARY.items():
        x = make(np.random.default_rng(2), sampler, (3,), dtype)
        assert dp.grad(lambda x: dnp.sum(getattr(E, name)(x)))(x).dtype == dtype, name


# --- special points ----------------------------------------------------------------------------
def sinc_derivative_reference(x, k):
    """d^k/dx^k sinc(x) = pi^k int_0^1 t^k cos(pi x t + k pi / 2) dt, by Gauss-Legendre."""
    t, w = np.polynomial.legendre.leggauss(60)
    t, w = (t + 1) / 2, w / 2
    x = np.asarray(x, np.float64)[..., None]
    return np.pi**k * np.sum(w * t**k * np.cos(np.pi * x * t + k * np.pi / 2), axis=-1)


SINC_POINTS = np.array([0.0, 1e-12, -1e-8, 1e-5, -1e-3, 0.02, 0.3, -0.63, 0.64, 1.0, 2.5, -7.7])


@dtype_ids
def test_sinc_derivatives_near_zero(dtype):
    """First and second derivatives of sinc at 0 (0 and -pi^2/3) and around it, both modes:
    the quotient rule would cancel catastrophically there."""
    x = SINC_POINTS.astype(dtype)
    rtol, atol = (1e-12, 1e-13) if dtype == np.float64 else (1e-5, 1e-5)

    def d1(x):
        return dp.grad(lambda x: dnp.sum(E.sinc(x)))(x)

    def d1_fwd(x):
        return dp.jvp(E.sinc, (x,), (C.ones_like(x),))[1]

    def d2(x):
        return dp.grad(lambda x: dnp.sum(d1(x)))(x)

    def d2_fwd(x):
        return dp.jvp(d1_fwd, (x,), (C.ones_like(x),))[1]

    for reverse, forward, k in [(d1, d1_fwd, 1), (d2, d2_fwd, 2)]:
        want = sinc_derivative_reference(x, k)
        for got in (reverse(x), forward(x)):
            assert got.dtype == dtype
            np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    assert dp.grad(E.sinc)(0.0) == 0.0
    np.testing.assert_allclose(dp.grad(dp.grad(E.sinc))(0.0), -np.pi**2 / 3, rtol=1e-14)
    check_grads(E.sinc, (np.array([0.0, 1e-7, -1e-3, 0.01], dtype),), order=2)


@dtype_ids
@pytest.mark.parametrize("name", ["arcsin", "arccos", "arctanh"])
def test_inverse_trig_slopes_near_one_are_exact(name, dtype):
    """1/sqrt(1 - x^2) (arcsin, -arccos) and 1/(1 - x^2) (arctanh) to an ulp or two near |x| = 1
    (1 - x * x cancelled x * x's rounding: 2e-9 relative error in float64, 4e-5 in float32),
    both modes, under dp.jit too; the second derivative at x = 1 stays inf."""
    from fractions import Fraction

    x = (1 - np.geomspace(1e-15 if dtype == np.float64 else 1e-7, 0.1, 40)).astype(dtype)
    worst = 0.9999999925913295 if dtype == np.float64 else 0.9998282  # the old rule's worst
    x = np.concatenate([x, -x, np.array([worst], dtype)])
    one_minus_square = np.array([float(1 - Fraction(float(v)) ** 2) for v in x])
    want = {"arcsin": 1 / np.sqrt(one_minus_square), "arccos": -1 / np.sqrt(one_minus_square),
            "arctanh": 1 / one_minus_square}[name]  # fmt: skip
    fn = getattr(E, name)
    rev = dp.grad(lambda x: dnp.sum(fn(x)))
    rtol = 4e-16 if dtype == np.float64 else 2.5e-7
    for got in (rev(x), dp.jvp(fn, (x,), (np.ones_like(x),))[1], dp.jit(rev)(x)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=rtol)
    with np.errstate(divide="ignore", invalid="ignore"):
        assert dp.grad(dp.grad(fn))(1.0) == (-np.inf if name == "arccos" else np.inf)
    check_grads(fn, (np.array([0.3, -0.9, 0.99], dtype),), order=2,
                **({} if dtype == np.float64 else {"rtol": 2e-2, "atol": 1e-3}))


@pytest.mark.parametrize("name", ["power", "float_power"])
def test_power_second_derivatives_at_exponent_zero(name):
    """x ** y at y = 0 is smooth in both arguments: d2/dy dx x**y = x**(y-1) (1 + y log x) is
    1/x there, in either order of differentiation (the slope in x was a constant 0 at y = 0,
    so d/dy of it was lost: 0, an asymmetric Hessian); x ** array(0) is 1, so its second
    derivative is 0 at x = 0 too (was NaN, the 0 * inf behind a where)."""
    fn = getattr(E, name)
    x, y = np.array([0.5, 2.0, 3.0]), np.zeros(3)
    dxdy = dp.grad(lambda y: dnp.sum(dp.grad(lambda x: dnp.sum(fn(x, y)))(x)))(y)
    np.testing.assert_allclose(dxdy, 1 / x, rtol=1e-15)
    hessian = dp.hessian(lambda x, y: fn(x, y), argnums=(0, 1))(0.5, 0.0)
    np.testing.assert_allclose(np.array(hessian, float), [[0.0, 2.0], [2.0, np.log(0.5) ** 2]], rtol=1e-15)
    check_grads(fn, (x, y), order=2)
    for exponent in (np.array(0), np.zeros(3)):
        d2 = dp.grad(lambda x: dnp.sum(dp.grad(lambda x: dnp.sum(fn(x, exponent)))(x)))(np.zeros(3))
        np.testing.assert_array_equal(d2, np.zeros(3))
        d2_fwd = dp.jvp(lambda x: dp.grad(lambda x: dnp.sum(fn(x, exponent)))(x), (np.zeros(3),), (np.ones(3),))[1]
        np.testing.assert_array_equal(d2_fwd, np.zeros(3))


@pytest.mark.parametrize("name", ["logaddexp", "logaddexp2"])
def test_logaddexp_finite_at_large_arguments(name):
    fn = getattr(E, name)
    x, y = np.array([1e3, -1e3, 1e3, -1e3]), np.array([-1e3, 1e3, 1e3, -1e3])
    assert np.array_equal(fn(x, y), getattr(np, name)(x, y))
    gx, gy = dp.grad(lambda x, y: dnp.sum(fn(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [1.0, 0.0, 0.5, 0.5])
    np.testing.assert_array_equal(gy, [0.0, 1.0, 0.5, 0.5])
    hess = dp.grad(lambda x: dnp.sum(dp.grad(lambda x: dnp.sum(fn(x, y)))(x)))(x)
    scale = 1.0 if name == "logaddexp" else np.log(2.0)
    np.testing.assert_allclose(hess, [0.0, 0.0, 0.25 * scale, 0.25 * scale], atol=1e-300)


@pytest.mark.parametrize("name", ["fmax", "fmin"])
def test_fmax_fmin_nan_and_ties(name):
    """A NaN loses: the other argument gets the gradient; ties share it; two NaNs: the first."""
    fn = getattr(E, name)
    x, y = np.array([1.0, np.nan, 2.0, np.nan]), np.array([np.nan, 3.0, 2.0, np.nan])
    assert np.array_equal(fn(x, y), getattr(np, name)(x, y), equal_nan=True)
    gx, gy = dp.grad(lambda x, y: dnp.sum(fn(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [1.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(gy, [0.0, 1.0, 0.5, 0.0])
    tx = dp.jvp(lambda x: fn(x, y), (x,), (np.ones(4),))[1]
    ty = dp.jvp(lambda y: fn(x, y), (y,), (np.ones(4),))[1]
    np.testing.assert_array_equal(tx, [1.0, 0.0, 0.5, 1.0])
    np.testing.assert_array_equal(ty, [0.0, 1.0, 0.5, 0.0])


def test_piecewise_linear_partials():
    x, y = np.array([5.5, -5.5, 5.5, -5.5]), np.array([2.0, 2.0, -2.0, -2.0])
    for name, quotient in [("remainder", np.floor), ("fmod", np.trunc)]:
        gx, gy = dp.grad(lambda x, y: dnp.sum(getattr(E, name)(x, y)), argnums=(0, 1))(x, y)
        np.testing.assert_array_equal(gx, np.ones(4))
        np.testing.assert_array_equal(gy, -quotient(x / y))
    gx, gy = dp.grad(lambda x, y: dnp.sum(E.copysign(x, y)), argnums=(0, 1))(x, y)
    np.testing.assert_array_equal(gx, [1.0, -1.0, -1.0, 1.0])
    np.testing.assert_array_equal(gy, np.zeros(4))


# --- constant-valued functions ---------------------------------------------------------------
def off_integers(rng, shape):
    return rng.integers(-3, 3, size=shape) + rng.uniform(0.15, 0.85, size=shape)


CONSTANT_UNARY = {
    "floor": E.floor, "ceil": E.ceil, "rint": E.rint, "trunc": E.trunc, "fix": E.fix,
    "signbit": E.signbit, "round": E.round, "around": E.around,
}  # fmt: skip


@dtype_ids
@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(CONSTANT_UNARY))
def test_constant_unary(name, shape, dtype, backend=NUMPY):
    fn = CONSTANT_UNARY[name]
    x = make(np.random.default_rng(6), off_integers, shape, dtype)
    got, want = fn(x), getattr(np, name)(x)
    assert np.array_equal(got, want) and np.result_type(got) == np.result_type(want)

    def f(x):
        c = fn(x)
        # a constant at every level (under dp.jit: a staged value, no differentiating tracer)
        assert not isinstance(c, Tracer) or c.opaque
        return c * E.sinh(x) + x * x

    backend.check_grads(f, (x,), order=2)


test_constant_unary_on_gpu = on_gpu(test_constant_unary)


@dtype_ids
def test_round_decimals(dtype):
    x = np.array([0.125, -1.35, 2.5, 1234.5678], dtype)
    for decimals in (0, 1, 2, -1):
        assert np.array_equal(E.round(x, decimals), np.round(x, decimals))
        assert np.array_equal(E.around(x, decimals=decimals), np.around(x, decimals=decimals))
    x = np.array([0.31, -1.37])
    assert np.array_equal(dp.grad(lambda x: dnp.sum(x * E.round(x, 1)))(x), np.round(x, 1))
    with pytest.raises(TypeError, match="out="):
        E.round(x, out=np.empty(2))


@dtype_ids
@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
def test_floor_divide(shapes, dtype, backend=NUMPY):
    rng = np.random.default_rng(7)
    x, y = make(rng, QUOTIENT[0], shapes[0], dtype), make(rng, QUOTIENT[1], shapes[1], dtype)
    assert np.array_equal(E.floor_divide(x, y), np.floor_divide(x, y))
    backend.check_grads(lambda x, y: E.floor_divide(x, y) * x * y, (x, y), order=2)


test_floor_divide_on_gpu = on_gpu(test_floor_divide)


def test_integer_inputs_match_numpy():
    i = np.arange(-3, 4)
    for name in ["floor", "ceil", "rint", "trunc", "fix", "signbit", "positive", "exp2", "cbrt"]:
        got, want = getattr(E, name)(i), getattr(np, name)(i)
        assert np.array_equal(got, want) and got.dtype == want.dtype, name
    assert np.array_equal(E.floor_divide(i, 2), np.floor_divide(i, 2))
    assert np.array_equal(E.remainder(i, 3), np.remainder(i, 3))


# --- NumPy's ufuncs called on tracers --------------------------------------------------------
UFUNC_NAMES = sorted(n for n in E.__all__ if isinstance(getattr(np, n, None), np.ufunc))


def test_every_ufunc_name_resolves_in_the_module():
    """Tracer.__array_ufunc__ looks a ufunc up by its __name__ (np.mod is 'remainder')."""
    for name in UFUNC_NAMES:
        assert callable(getattr(E, getattr(np, name).__name__)), name
    assert {"expm1", "sinc", "fmax", "copysign", "float_power", "signbit"} <= set(E.__all__)


@pytest.mark.parametrize("name", UFUNC_NAMES)
def test_numpy_ufunc_on_tracers(name):
    ufunc = getattr(np, name)
    assert ufunc.__name__ in dnp.__all__, f"{ufunc.__name__} is not exported from diffprog.numpy"
    x = np.array([1.2, 1.3, 1.4]) if name == "arccosh" else np.array([0.6, 0.7, 0.8])
    if name.startswith(("bitwise", "logical")) or name == "invert":  # of masks: a selection
        operands = lambda x: (x > 0.65, np.array([True, False, True]))[:ufunc.nin]  # noqa: E731
        f = lambda x: dnp.where(ufunc(*operands(x)), x, -x)  # noqa: E731  (under vmap x > 0.65
        want = np.where(ufunc(*operands(x)), 1.0, -1.0)  # is traced: NumPy's dispatch)
        np.testing.assert_array_equal(dp.grad(lambda x: dnp.sum(f(x)))(x), want)
        np.testing.assert_array_equal(dp.vmap(f)(x[None]), (want * x)[None])
        np.testing.assert_array_equal(dp.vmap(dp.grad(lambda x: dnp.sum(f(x))))(x[None]), want[None])
        return
    if name.endswith("_shift"):  # of integers: a weight computed from x's selection
        f = lambda x: x * ufunc(np.array([4, 8, 16]), (x > 0.65).astype(np.int64))  # noqa: E731
        want = ufunc(np.array([4, 8, 16]), np.array([0, 1, 1]))
        np.testing.assert_array_equal(dp.grad(lambda x: dnp.sum(f(x)))(x), want)
        np.testing.assert_array_equal(dp.vmap(f)(x[None]), (want * x)[None])
        np.testing.assert_array_equal(dp.vmap(dp.grad(lambda x: dnp.sum(f(x))))(x[None]), want[None])
        return
    want = dp.grad(lambda x: dnp.sum(x * getattr(dnp, ufunc.__name__)(*(x,) * ufunc.nin)))(x)
    got = dp.grad(lambda x: dnp.sum(x * ufunc(*(x,) * ufunc.nin)))(x)
    np.testing.assert_array_equal(got, want)


# --- creation ----------------------------------------------------------------------------------
X32 = np.arange(6, dtype=np.float32).reshape(2, 3)
CREATION = [
    ("zeros_like", (X32,), {}), ("zeros_like", (X32,), {"dtype": np.int32}),
    ("zeros_like", (X32,), {"shape": (4,)}), ("ones_like", (X32,), {}),
    ("ones_like", ([1, 2],), {"dtype": float}), ("full_like", (X32, 2.5), {}),
    ("full_like", (X32, 7), {"dtype": int, "shape": 3}), ("zeros", (3,), {}),
    ("zeros", ((2, 3), np.float32), {}), ("ones", ([2, 1],), {"dtype": bool}),
    ("full", ((2, 2), 3.0), {}), ("full", (2, np.float32(1)), {}), ("full", (3, 4), {}),
    ("arange", (5,), {}), ("arange", (1, 2, 0.25), {}), ("arange", (3,), {"dtype": np.float32}),
    ("arange", (0.5, 3), {}), ("arange", (6, 0, -2), {}), ("linspace", (0.0, 1.0, 5), {}),
    ("linspace", (0, 1, 5), {"endpoint": False}), ("linspace", (-1.0, 2.0, 7), {"retstep": True}),
    ("linspace", ([0.0, 1.0], [2.0, 3.0], 4), {"axis": 1}),
    ("linspace", (0, 10, 4), {"dtype": int}),
    ("linspace", (np.float32(0), np.float32(1), 3), {}), ("linspace", (0.0, 1.0, 1), {}),
    ("eye", (3,), {}), ("eye", (2, 3), {"k": 1, "dtype": np.int8}), ("identity", (3,), {}),
]  # fmt: skip


@pytest.mark.parametrize("name, args, kwargs", CREATION, ids=str)
def test_creation_matches_numpy(name, args, kwargs):
    got, want = getattr(C, name)(*args, **kwargs), getattr(np, name)(*args, **kwargs)
    for g, w in zip(got, want) if kwargs.get("retstep") else [(got, want)]:
        assert np.array_equal(g, w) and np.result_type(g) == np.result_type(w)


def test_empty_shapes_and_dtypes():
    assert C.empty((2, 3)).shape == (2, 3) and C.empty(2, np.float32).dtype == np.float32
    e = C.empty_like(X32, dtype=np.float64, shape=(4, 1))
    assert e.shape == (4, 1) and e.dtype == np.float64
    assert isinstance(C.zeros(3, like=np.ones(1)), np.ndarray)


def test_like_functions_on_tracers_are_constants():
    def f(x):  # inside a transform: constants of its trace, so that writes into them record
        for make_ in (C.zeros_like, C.ones_like, C.empty_like, lambda x: C.full_like(x, 2.0)):
            c = make_(x)
            assert type(c) is type(x) and c.shape == x.shape and c.dtype == x.dtype
        return dnp.sum(x * C.full_like(x, 3.0) + C.zeros_like(x) + x * x * C.ones_like(x))

    x = np.array([0.5, -1.0, 2.0])
    np.testing.assert_array_equal(dp.grad(f)(x), 3.0 + 2.0 * x)
    np.testing.assert_array_equal(dp.grad(lambda x: dnp.sum(dp.grad(f)(x)))(x), np.full(3, 2.0))
    np.testing.assert_array_equal(dp.jvp(f, (x,), (np.ones(3),))[1], np.sum(3.0 + 2.0 * x))
    with pytest.raises(TypeError, match="device="):
        C.zeros_like(x, device="gpu")


@dtype_ids
def test_full_with_a_traced_fill_value(dtype):
    fill = dtype(0.7)
    check_grads(lambda v: C.full_like(np.zeros((2, 3), dtype), v) * np.arange(6.0).reshape(2, 3),
                (fill,), order=2)  # fmt: skip
    check_grads(lambda v: C.full((2, 3), v) ** 2, (np.array([0.5, -1.0, 2.0], dtype),), order=2)
    assert dp.grad(lambda v: dnp.sum(C.full_like(np.zeros(4, np.float32), v)))(1.0) == 4.0
    assert C.full_like(np.zeros(2, np.float32), 1.5).dtype == np.float32


LINSPACE = [  # start shape, stop shape, num, endpoint, axis
    ((), (), 5, True, 0), ((), (), 4, False, 0), ((), (), 1, True, 0), ((), (), 1, False, 0),
    ((), (3,), 4, True, 0), ((2, 1), (3,), 5, True, -1), ((3,), (2, 3), 3, False, 1),
    ((), (), 0, True, 0),
]  # fmt: skip


@dtype_ids
@pytest.mark.parametrize("case", LINSPACE, ids=str)
def test_linspace_differentiable(case, dtype):
    start_shape, stop_shape, num, endpoint, axis = case
    rng = np.random.default_rng(8)
    a, b = make(rng, normal, start_shape, dtype), make(rng, normal, stop_shape, dtype)

    def f(a, b):
        return C.linspace(a, b, num, endpoint=endpoint, axis=axis) ** 2

    if num:
        check_grads(f, (a, b), order=2)
    want = np.linspace(a, b, num, endpoint=endpoint, axis=axis)
    traced = dp.jvp(lambda a: C.linspace(a, b, num, endpoint=endpoint, axis=axis), (a,), (a,))
    traced = traced[0]
    assert np.array_equal(traced, want) and traced.dtype == want.dtype


def test_linspace_partials_and_step():
    ga, gb = dp.jacobian(lambda a, b: C.linspace(a, b, 5), argnums=(0, 1))(1.0, 3.0)
    np.testing.assert_allclose(ga, [1.0, 0.75, 0.5, 0.25, 0.0])
    np.testing.assert_allclose(gb, [0.0, 0.25, 0.5, 0.75, 1.0])
    check_grads(lambda a, b: C.linspace(a, b, 5, retstep=True)[1], (0.5, 2.0), order=2)
    assert dp.grad(lambda a: C.linspace(a, 2.0, 5, endpoint=False, retstep=True)[1])(0.5) == -0.2
    ints = dp.jvp(lambda a: C.linspace(a, 10.0, 4, dtype=int), (0.5,), (1.0,))[0]
    assert ints.dtype == np.int_ and np.array_equal(ints, np.linspace(0.5, 10.0, 4, dtype=int))
    with pytest.raises(ValueError, match="axis"):
        dp.grad(lambda a: dnp.sum(C.linspace(a, 1.0, 3, axis=2)))(0.0)

test_unary_under_jit = under_jit(test_unary)
test_unary_under_vmap = under_vmap(test_unary)
test_binary_under_jit = under_jit(test_binary)
test_binary_under_vmap = under_vmap(test_binary)
test_constant_unary_under_jit = under_jit(test_constant_unary)
test_constant_unary_under_vmap = under_vmap(test_constant_unary)
test_floor_divide_under_jit = under_jit(test_floor_divide)
test_floor_divide_under_vmap = under_vmap(test_floor_divide)
