"""Trust at the edges of the reductions, products and linear algebra: Python numbers and
lists as inputs, watched Python floats to second order, einsum with 0-d operands, det at
singular matrices, the derivatives of what hermitian=True / UPLO really compute, logsumexp
over an empty axis, hypot's kink at the origin, and NumPy's initial= / where= keywords."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.numpy import linalg as la
from backends import NUMPY, on_gpu, under_jit, under_vmap
from diffprog.testing import check_grads

DTYPES = [np.float64, np.float32]
dtype_id = lambda d: np.dtype(d).name  # noqa: E731


def assert_same(out, expected):
    """Equal values (NaN where NumPy has NaN), shapes and dtypes."""
    assert np.shape(out) == np.shape(expected)
    assert np.asarray(out).dtype == np.asarray(expected).dtype, (out, expected)
    np.testing.assert_allclose(out, expected, rtol=1e-6 if np.asarray(out).dtype == np.float32
                               else 1e-13)  # fmt: skip


# --- 1, 2: reductions of Python numbers and lists: NumPy's values and dtypes -----------------
PYTHON_INPUTS = [True, 3, 2.5, [1.0, 2.0], [[1, 2], [3, 4]], [[True, False, True]]]
REDUCTIONS = ["sum", "mean", "prod", "std", "var", "cumsum", "cumprod", "max", "min", "amax",
              "amin", "ptp", "nansum", "nanmean", "average", "argmax", "argmin",
              "count_nonzero"]  # fmt: skip


@pytest.mark.parametrize("a", PYTHON_INPUTS, ids=repr)
@pytest.mark.parametrize("name", REDUCTIONS)
def test_reductions_of_python_numbers_and_lists_match_numpy(name, a):
    try:
        expected = getattr(np, name)(a)
    except TypeError as e:  # NumPy's own refusal (ptp of booleans): the same error
        with pytest.raises(TypeError, match=str(e)[:20]):
            getattr(dnp, name)(a)
        return
    assert_same(getattr(dnp, name)(a), expected)
    if np.ndim(a) and name not in ("argmax", "argmin", "count_nonzero", "cumsum", "cumprod"):
        assert_same(getattr(dnp, name)(a, axis=0, keepdims=True),
                    getattr(np, name)(a, axis=0, keepdims=True))  # fmt: skip


@pytest.mark.parametrize("a, expected", [
    (True, 1.0), (3, 3.0), (2.5, 2.5), ([1.0, 2.0], math.log(math.e + math.e**2)),
    ([[1, 2], [3, 4]], math.log(sum(math.exp(k) for k in range(1, 5)))),
    (np.array([1, 2], dtype=np.int8), math.log(math.e + math.e**2)),
])  # fmt: skip
def test_logsumexp_of_python_numbers_and_lists_matches_scipy(a, expected):
    """scipy.special.logsumexp's values; integers and booleans give float64 scalars."""
    out = dnp.logsumexp(a)
    assert type(out) is np.float64 and out == pytest.approx(expected, rel=1e-15)
    assert dnp.logsumexp(a, keepdims=True).shape == np.ndim(a) * (1,)


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int64, np.bool_])
@pytest.mark.parametrize("name", ["softmax", "log_softmax", "logsumexp"])
def test_integer_data_traced_by_jit_or_vmap_is_taken_in_float64(name, dtype):
    """dp.jit and dp.vmap trace integer arrays too: those went into the kernels as they were,
    so uint8's x - max wrapped round (softmax all NaN, in float16), and log_softmax refused
    to subtract in place from an integer array."""
    x = ((np.arange(30).reshape(3, 10) * 7) % 5).astype(dtype)
    f = lambda x: getattr(dnp, name)(x, axis=-1)  # noqa: E731
    want = f(x.astype(np.float64))
    for got in (f(x), dp.jit(f)(x), dp.jit(f, fuse=False)(x), dp.vmap(f)(x[None])[0]):
        assert np.asarray(got).dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-15)


def test_reductions_of_lists_in_a_traced_function():
    """A list of constants beside traced values: reduced as NumPy would."""
    x = np.array([1.0, 3.0])
    f = lambda x: dnp.sum(x) * dnp.max([1.0, 4.0]) + dnp.mean([2, 4]) * dnp.logsumexp(x)
    np.testing.assert_allclose(dp.grad(f)(x), 4.0 + 3.0 * np.exp(x) / np.exp(x).sum())
    check_grads(f, (x,), order=2)


def test_mean_accumulates_like_numpy():
    """Integers are averaged in float64 (no int64 overflow), float16 in float32."""
    big = np.array([2**62, 2**62], dtype=np.int64)
    assert_same(dnp.mean(big), np.mean(big))
    half = np.full(10_000, 10.0, dtype=np.float16)
    assert_same(dnp.mean(half), np.mean(half))


# --- 3: reductions at watched Python floats, first and second order ---------------------------
FLOAT_REDUCTIONS = {
    "sum": dnp.sum, "mean": dnp.mean, "prod": dnp.prod, "max": dnp.max, "min": dnp.min,
    "amax": dnp.amax, "amin": dnp.amin, "ptp": dnp.ptp, "std": dnp.std, "var": dnp.var,
    "cumsum": lambda x: dnp.cumsum(x)[0], "cumprod": lambda x: dnp.cumprod(x)[0],
    "nansum": dnp.nansum, "nanmean": dnp.nanmean, "average": dnp.average,
    "logsumexp": dnp.logsumexp, "norm": dnp.linalg.norm,
    "softmax": lambda x: dnp.softmax(x, None),
    "log_softmax": lambda x: dnp.log_softmax(x, None),
    "max_initial": lambda x: dnp.max(x, initial=-1.0),
    "sum_where": lambda x: dnp.sum(x, where=True),
}  # fmt: skip
# the value and first and second derivatives of x * r(x) at x = 2 when r(x) is x, 0 or 1
SLOPES = {"ptp": 0.0, "std": 0.0, "var": 0.0, "softmax": 1.0, "log_softmax": 0.0}


@pytest.mark.parametrize("name", sorted(FLOAT_REDUCTIONS))
def test_reductions_at_a_watched_python_float_to_second_order(name):
    r = FLOAT_REDUCTIONS[name]
    f = lambda x: x * r(x)
    c = SLOPES.get(name)
    d1, d2 = (4.0, 2.0) if c is None else (c, 0.0)  # d/dx x*x or d/dx c*x
    assert float(dp.grad(f)(2.0)) == d1
    assert float(dp.jvp(f, (2.0,), (1.0,))[1]) == d1
    assert float(dp.grad(dp.grad(f))(2.0)) == d2
    assert float(dp.hessian(f)(2.0)) == d2
    assert float(dp.jvp(dp.grad(f), (2.0,), (1.0,))[1]) == d2
    assert float(dp.grad(lambda x: dp.jvp(f, (x,), (1.0,))[1])(2.0)) == d2
    check_grads(f, (2.0,), order=2)


def test_second_derivative_of_max_at_a_python_float():
    assert dp.grad(dp.grad(lambda x: dnp.max(x)))(2.0) == 0.0
    assert dp.grad(dp.grad(lambda x: dnp.max(x) ** 3))(2.0) == 12.0


# --- 4: einsum with 0-d and Python-float operands, a watched float cotangent -----------------
VEC, MAT = np.array([1.0, -2.0, 0.5]), np.arange(6.0).reshape(2, 3) / 4
EINSUM_SCALARS = {
    "scalar times vector": lambda s: dnp.einsum(",i->i", s, VEC),
    "scalar squared": lambda s: dnp.einsum(",->", s, s),
    "scalar alone": lambda s: dnp.einsum("->", s) * s,
    "matrix times scalar": lambda s: dnp.einsum("ij,->ij", MAT, s) * s,
    "ellipsis": lambda s: dnp.einsum("...,...->...", s, s * VEC),
    "sublists": lambda s: dnp.einsum(s, [], VEC, [0], [0]),
}


@pytest.mark.parametrize("make", [float, np.float64, np.array, np.float32],
                         ids=lambda m: m.__name__)  # fmt: skip
@pytest.mark.parametrize("name", sorted(EINSUM_SCALARS))
def test_einsum_with_scalar_operands_to_second_order(name, make):
    f = EINSUM_SCALARS[name]
    s = make(1.5)
    kw = {"rtol": 2e-2, "atol": 1e-3} if make is np.float32 else {}
    check_grads(f, (s,), order=2, **kw)
    check_grads(lambda s: dnp.sum(f(s) ** 2), (s,), order=3, **kw)


def test_einsum_vjp_of_a_watched_python_float_cotangent():
    """d/dc of vjp(f)(c) with c a Python float: the cotangent is traced into einsum's rule."""
    pull = lambda c: dp.vjp(lambda y: dnp.einsum(",->", y, 3.0), 2.0)[1](c)[0]
    assert dp.grad(pull)(1.0) == 3.0
    assert dp.jvp(pull, (1.0,), (1.0,))[1] == 3.0
    pull = lambda c: dnp.sum(dp.vjp(lambda y: dnp.einsum("i,i->", y, VEC), VEC)[1](c)[0])
    assert dp.grad(pull)(1.0) == VEC.sum()
    pull = lambda c: dp.vjp(lambda y: y[1], VEC)[1](c)[0][1]  # getitem's rule, the same way
    assert dp.grad(pull)(1.0) == 1.0
    check_grads(lambda c: dp.vjp(lambda y: dnp.einsum(",i->", y, VEC), 2.0)[1](c * c)[0], (1.5,),
                order=2)  # fmt: skip


# --- 9: initial= and where= on the reductions ------------------------------------------------
def distinct(rng, shape):
    """Values at least 0.1 apart in [-1.5, 1.5] (max/min stay put under a perturbation)."""
    n = int(np.prod(shape))
    return rng.permutation(np.linspace(-1.5, 1.5, n) + rng.uniform(-0.02, 0.02, n)).reshape(shape)


def dense_mask(rng, shape):
    """A mask selecting at least one entry of every line along every axis."""
    return (rng.random(shape) < 0.5) | (np.indices(shape).sum(axis=0) % 2 == 0)


# name -> (keyword arguments besides where=); max/min need initial= with where= (NumPy's rule)
MASKED = {
    "sum": {}, "sum_initial": {"initial": 1.5}, "prod": {}, "prod_initial": {"initial": 0.5},
    "max": {"initial": -0.55}, "min": {"initial": 0.45}, "amax": {"initial": -5.0},
    "amin": {"initial": 5.0}, "mean": {}, "var": {}, "std": {}, "var_ddof1": {"ddof": 1},
    "nansum": {"initial": 0.25}, "nanmean": {},
}  # fmt: skip
MASKS = {
    "full": lambda rng: dense_mask(rng, (2, 3, 4)), "row": lambda rng: dense_mask(rng, (4,)),
    "column": lambda rng: np.array([[True], [False], [True]]), "all": lambda rng: True,
}  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 2), (1,)], ids=str)
@pytest.mark.parametrize("mask", sorted(MASKS))
@pytest.mark.parametrize("name", sorted(MASKED))
def test_where_and_initial_match_numpy_and_differentiate(name, mask, axis, keepdims, dtype):
    rng = np.random.default_rng(3)
    x, where = distinct(rng, (2, 3, 4)).astype(dtype), MASKS[mask](rng)
    fn, kw = name.split("_")[0], {**MASKED[name], "axis": axis, "keepdims": keepdims}
    kw["where"] = where
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's NaN for an empty group
        expected = getattr(np, fn)(x, **kw)
        out = getattr(dnp, fn)(x, **kw)
    assert_same(out, expected)
    if np.isnan(expected).any():  # an empty group: see test_where_selecting_nothing_...
        return
    tol = {"rtol": 2e-2, "atol": 1e-3} if dtype == np.float32 else {}
    check_grads(lambda x: getattr(dnp, fn)(x, **kw), (x,), order=2, **tol)


@pytest.mark.parametrize("mask", sorted(MASKS))
@pytest.mark.parametrize("name", sorted(MASKED))
def test_where_and_initial_on_every_backend(name, mask, backend=NUMPY):
    rng = np.random.default_rng(4)
    x, where = distinct(rng, (2, 3, 4)), MASKS[mask](rng)
    axis = None if mask == "column" else (0, 2)  # every group selects 2 or more entries
    fn, kw = name.split("_")[0], {**MASKED[name], "axis": axis, "where": where}
    assert_same(getattr(dnp, fn)(x, **kw), getattr(np, fn)(x, **kw))
    backend.check_grads(lambda x: getattr(dnp, fn)(x, **kw), (x,), order=2)  # CuPy vs NumPy


test_where_and_initial_on_every_backend_on_gpu = on_gpu(test_where_and_initial_on_every_backend)


def test_where_zeroes_the_gradient_of_entries_left_out():
    x = np.array([[1.0, 4.0, 2.0], [3.0, -1.0, 0.5]])
    w = np.array([True, False, True])
    for fn in (dnp.sum, dnp.mean, dnp.prod, dnp.var, dnp.std, dnp.nansum, dnp.nanmean):
        g = dp.grad(lambda x: dnp.sum(fn(x, axis=1, where=w)))(x)
        assert (g[:, 1] == 0).all() and (g[:, [0, 2]] != 0).all()
    g = dp.grad(lambda x: dnp.sum(dnp.max(x, axis=1, where=w, initial=-9.0)))(x)
    np.testing.assert_array_equal(g, [[0, 0, 1], [1, 0, 0]])  # 4.0 and -1.0 are left out
    np.testing.assert_array_equal(dp.grad(lambda x: dnp.mean(x, where=w))(x),
                                  [[0.25, 0, 0.25], [0.25, 0, 0.25]])  # fmt: skip


def test_ties_in_max_and_min_with_initial_and_where():
    """k tied candidates share the gradient equally; an initial equal to the result is one
    of them (its share goes nowhere); entries left out by where= are not candidates."""
    grad = lambda f, x: dp.grad(f)(x)
    x = np.array([3.0, 1.0, 3.0, 3.0])
    w = np.array([True, True, False, True])
    np.testing.assert_array_equal(grad(lambda x: dnp.max(x, where=w, initial=0.0), x),
                                  [0.5, 0.0, 0.0, 0.5])  # fmt: skip
    assert dp.jvp(lambda x: dnp.max(x, where=w, initial=0.0), (x,), (np.arange(4.0),))[1] == 1.5
    np.testing.assert_array_equal(grad(lambda x: dnp.max(x, initial=3.0), x),
                                  [0.25, 0.0, 0.25, 0.25])  # fmt: skip
    np.testing.assert_array_equal(grad(lambda x: dnp.min(x, initial=1.0), x), [0, 0.5, 0, 0])
    np.testing.assert_array_equal(grad(lambda x: dnp.max(x, initial=5.0), x), np.zeros(4))
    np.testing.assert_array_equal(grad(lambda x: dnp.max(x, where=False, initial=5.0), x),
                                  np.zeros(4))  # fmt: skip
    np.testing.assert_array_equal(dp.hessian(lambda x: dnp.max(x, where=w, initial=3.0))(x),
                                  np.zeros((4, 4)))  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_initial_over_empty_axes(dtype):
    """NumPy defines max/min/sum/prod of nothing when initial= is given: initial itself."""
    e = np.zeros((0, 3), dtype=dtype)
    for fn, init in (("max", 1.0), ("min", -1.0), ("sum", 2.0), ("prod", 3.0), ("amax", 0.5)):
        for axis, keepdims in ((0, False), (0, True), (None, False), (1, False)):
            out = getattr(dnp, fn)(e, axis=axis, keepdims=keepdims, initial=init)
            assert_same(out, getattr(np, fn)(e, axis=axis, keepdims=keepdims, initial=init))
        f = lambda x: dnp.sum(getattr(dnp, fn)(x, axis=0, initial=init) ** 2)
        assert dp.grad(f)(e).shape == (0, 3) and dp.grad(f)(e).dtype == dtype
        assert dp.jvp(f, (e,), (e,))[1] == 0.0
        check_grads(f, (e,), order=2)
    assert_same(dnp.max([], initial=3.0), np.max([], initial=3.0))


def test_where_selecting_nothing_gives_nan_and_zero_gradient():
    """An empty group: NaN for mean/var/std (as NumPy), initial for max/min/sum/prod, and
    zero gradient to its entries in both modes (no NaN leaks into the other groups)."""
    x = np.array([[1.0, 4.0, 2.0], [3.0, -1.0, 0.5]])
    w = np.array([[True, True, False], [False, False, False]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for fn in (dnp.mean, dnp.var, dnp.std, dnp.nanmean):
            out = fn(x, axis=1, where=w)
            assert np.isnan(out[1]) and not np.isnan(out[0])
            f = lambda x: fn(x, axis=1, where=w)[0]
            g = dp.grad(f)(x)
            assert (g[1] == 0).all() and (g[0, :2] != 0).all()
            t = dp.jvp(f, (x,), (np.ones_like(x),))[1]
            assert np.isfinite(t)
    assert_same(dnp.max(x, axis=1, where=w, initial=-2.0), [4.0, -2.0])
    g = dp.grad(lambda x: dnp.sum(dnp.max(x, 1, where=w, initial=-2.0)))(x)
    np.testing.assert_array_equal(g, [[0, 1, 0], [0, 0, 0]])


def test_where_and_initial_through_numpy_functions_methods_and_ufunc_reduce():
    rng = np.random.default_rng(5)
    x, w = distinct(rng, (2, 3)), np.array([True, False, True])
    cases = [
        (lambda x: np.sum(x, axis=1, where=w, initial=1.0), lambda x: dnp.sum(x, 1, initial=1.0, where=w)),
        (lambda x: np.add.reduce(x, axis=None, where=w, initial=1.0), lambda x: dnp.sum(x, None, initial=1.0, where=w)),
        (lambda x: np.add.reduce(x, where=w), lambda x: dnp.sum(x, 0, where=w)),
        (lambda x: np.multiply.reduce(x, axis=1, where=w), lambda x: dnp.prod(x, 1, where=w)),
        (lambda x: np.maximum.reduce(x, axis=1, where=w, initial=0.0), lambda x: dnp.max(x, 1, initial=0.0, where=w)),
        (lambda x: np.minimum.reduce(x, initial=0.0), lambda x: dnp.min(x, 0, initial=0.0)),
        (lambda x: np.amax(x, 1, None, False, -0.3, w), lambda x: dnp.max(x, 1, initial=-0.3, where=w)),
        (lambda x: np.mean(x, axis=1, where=w[None]), lambda x: dnp.mean(x, 1, where=w[None])),
        (lambda x: np.var(x, axis=1, where=w), lambda x: dnp.var(x, 1, where=w)),
        (lambda x: np.std(x, where=w), lambda x: dnp.std(x, where=w)),
        (lambda x: x.sum(axis=1, where=w), lambda x: dnp.sum(x, 1, where=w)),
        (lambda x: x.max(initial=7.0), lambda x: dnp.max(x, initial=7.0)),
        (lambda x: x.min(1, None, True, 0.2, w), lambda x: dnp.min(x, 1, keepdims=True, initial=0.2, where=w)),
        (lambda x: x.mean(axis=1, where=w), lambda x: dnp.mean(x, 1, where=w)),
        (lambda x: x.prod(initial=2.0, where=w), lambda x: dnp.prod(x, initial=2.0, where=w)),
    ]  # fmt: skip
    for numpy_call, ours in cases:
        assert_same(numpy_call(x), ours(x))  # NumPy on plain arrays
        f = lambda x: dnp.sum(numpy_call(x) ** 2)  # the same call on tracers dispatches to ours
        np.testing.assert_allclose(dp.grad(f)(x), dp.grad(lambda x: dnp.sum(ours(x) ** 2))(x))
        check_grads(f, (x,), order=2)


def test_where_and_initial_errors():
    x = np.ones((2, 3))
    with pytest.raises(ValueError, match="to use a where mask one has to specify 'initial'"):
        dnp.max(x, where=np.array([True, False, True]))
    with pytest.raises(ValueError, match="to use a where mask one has to specify 'initial'"):
        dp.grad(lambda x: np.minimum.reduce(x, axis=None, where=x > 0))(x)
    with pytest.raises(TypeError, match="where= must be a boolean mask, got dtype float64"):
        dnp.sum(x, where=np.array([1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match=r"where= of shape \(2, 1, 3\) does not broadcast"):
        dnp.mean(x, where=np.ones((2, 1, 3), dtype=bool))
    with pytest.raises(ValueError, match="initial= must be a scalar"):
        dnp.sum(x, initial=np.ones(2))
    with pytest.raises(TypeError, match="initial= must be a constant scalar, not a traced value"):
        dp.grad(lambda v: dnp.max(x, initial=v))(1.0)


# --- 8: hypot at the origin: 0 to every order, as norm and std --------------------------------
def test_hypot_at_the_origin_is_zero_to_every_order():
    """hypot(0, 0) takes the subgradient 0 (as linalg.norm(0) and std of a constant), and
    its slope x / hypot is a constant there, so second derivatives are 0 too, in both modes;
    off the origin they are the closed form [[y^2, -xy], [-xy, x^2]] / r^3."""
    f = lambda v: dnp.hypot(v[0], v[1])
    norm = lambda v: dnp.linalg.norm(v)
    origin = np.zeros(2)
    for fn in (f, norm):
        np.testing.assert_array_equal(dp.grad(fn)(origin), [0.0, 0.0])
        assert dp.jvp(fn, (origin,), (np.array([1.0, 2.0]),))[1] == 0.0
        np.testing.assert_array_equal(dp.hessian(fn)(origin), np.zeros((2, 2)))
        np.testing.assert_array_equal(dp.jacfwd(dp.grad(fn))(origin), np.zeros((2, 2)))
        np.testing.assert_array_equal(dp.jvp(dp.grad(fn), (origin,), (np.ones(2),))[1], [0, 0])
    assert dp.grad(dp.grad(lambda x: dnp.hypot(x, 0.0)))(0.0) == 0.0  # |x|, as abs at 0
    x, y = 3.0, -4.0
    np.testing.assert_allclose(dp.hessian(f)(np.array([x, y])),
                               np.array([[y * y, -x * y], [-x * y, x * x]]) / 125.0)  # fmt: skip
    check_grads(f, (np.array([0.3, -0.2]),), order=3)


# --- 5: det's gradient at singular matrices is the adjugate; slogdet's is infinite ------------
def cofactors(a):
    """adj(a)^T by its definition: signed minors (a closed form, independent of diffprog)."""
    n = a.shape[-1]
    out = np.empty_like(a)
    for i in range(n):
        for j in range(n):
            minor = np.delete(np.delete(a, i, axis=0), j, axis=1)
            out[i, j] = (-1) ** (i + j) * (np.linalg.det(minor) if minor.size else 1.0)
    return out


SINGULAR = {
    "rank 1 of 2": np.array([[1.0, 2.0], [2.0, 4.0]]),
    "rank 2 of 3": np.array([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [1.0, 0.0, -1.0]]),
    "diag(1, 1, 0)": np.diag([1.0, 1.0, 0.0]),
    "rank 1 of 3": np.ones((3, 3)),
    "rank 1 of 4": np.outer([1.0, 2.0, 3.0, 4.0], [1.0, -1.0, 2.0, 0.5]),
    "zero 3x3": np.zeros((3, 3)),
    "zero 1x1": np.zeros((1, 1)),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", sorted(SINGULAR))
def test_det_gradient_at_singular_matrices_is_the_adjugate(name, dtype):
    a = SINGULAR[name].astype(dtype)
    assert np.linalg.det(a) == 0.0
    expected = cofactors(a.astype(np.float64))
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-13}
    t = np.random.default_rng(0).normal(size=a.shape).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no LinAlgError, no division by zero on the way
        g = dp.grad(la.det)(a)
        tangent = dp.jvp(la.det, (a,), (t,))[1]
    assert g.dtype == dtype
    np.testing.assert_allclose(g, expected, **tol)
    np.testing.assert_allclose(tangent, np.sum(expected * t), **tol)
    if name in ("rank 1 of 3", "rank 1 of 4", "zero 3x3"):  # rank <= n - 2
        assert np.abs(g).max() < 1e-5 if dtype == np.float32 else np.abs(g).max() < 1e-13
    # second order there too, repeated singular values included (diag(1, 1, 0), zeros)
    check_grads(la.det, (a,), order=2, **({"rtol": 2e-2, "atol": 1e-3} if dtype == np.float32
                                            else {}))  # fmt: skip


def test_det_gradient_in_a_batch_mixing_singular_and_invertible_matrices():
    a = np.stack([SINGULAR["rank 1 of 2"], [[2.0, 1.0], [1.0, 3.0]], np.zeros((2, 2)),
                  np.eye(2)])  # fmt: skip
    g = dp.grad(lambda a: dnp.sum(la.det(a)))(a)
    np.testing.assert_allclose(g, [cofactors(m) for m in a], rtol=1e-12, atol=1e-14)
    t = np.random.default_rng(1).normal(size=a.shape)
    expected = [np.sum(cofactors(m) * u) for m, u in zip(a, t)]
    np.testing.assert_allclose(dp.jvp(la.det, (a,), (t,))[1], expected, atol=1e-14)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
def test_det_second_order_at_invertible_and_singular_matrices(dtype):
    rng = np.random.default_rng(2)
    tol = {"rtol": 2e-2, "atol": 1e-3} if dtype == np.float32 else {}
    for a in (np.eye(3), rng.normal(size=(3, 3)) + 3 * np.eye(3), rng.normal(size=(2, 3, 3))):
        check_grads(la.det, (a.astype(dtype),), order=2, **tol)
    # d2 det(A)[E, E] = det(A) ((tr A^-1 E)^2 - tr(A^-1 E A^-1 E)), here at A = I
    e = rng.normal(size=(3, 3))
    _, hvp = dp.hvp(la.det, (np.eye(3),), (e,))
    np.testing.assert_allclose(np.sum(hvp[0] * e), np.trace(e) ** 2 - np.trace(e @ e), rtol=1e-12)
    # det = ad - bc has a constant Hessian, also at singular 2x2 matrices
    for a in (SINGULAR["rank 1 of 2"], np.zeros((2, 2)), np.eye(2)):
        np.testing.assert_allclose(dp.hessian(la.det)(a).reshape(4, 4),
                                   [[0, 0, 0, 1], [0, 0, -1, 0], [0, -1, 0, 0], [1, 0, 0, 0]],
                                   atol=1e-14)  # fmt: skip


def test_slogdet_gradient_at_a_singular_matrix_is_a_clear_error():
    """d logabsdet = tr(A^-1 dA) is infinite where det(A) = 0: both modes say so."""
    logdet = lambda a: la.slogdet(a).logabsdet
    a = SINGULAR["rank 1 of 2"]
    assert la.slogdet(a) == (0.0, -np.inf)
    for differentiate in (lambda: dp.grad(logdet)(a), lambda: dp.jvp(logdet, (a,), (a,))):
        with pytest.raises(np.linalg.LinAlgError, match="logabsdet at a singular matrix is "
                           "infinite .* differentiate det instead"):  # fmt: skip
            differentiate()
    with pytest.raises(np.linalg.LinAlgError, match=r"batch index \(1,\)"):
        dp.grad(lambda a: dnp.sum(logdet(a)))(np.stack([np.eye(2), a]))
    assert dp.grad(lambda a: la.slogdet(a).sign)(a).tolist() == [[0.0, 0.0], [0.0, 0.0]]


# --- 6: hermitian=True and UPLO: the derivative of the value NumPy computes -------------------
def lower_symmetric_upper_noise(rng, shape, dtype):
    """A matrix whose lower triangle is symmetric-with-distinct-eigenvalues material and whose
    strictly upper triangle is unrelated noise: NumPy's hermitian readers see only the first."""
    n = shape[-1]
    q = np.linalg.qr(rng.normal(size=shape))[0]
    lam = np.array([-2.0, 0.7, 1.6, 2.9][:n]) + rng.uniform(-0.05, 0.05, size=shape[:-1])
    sym = (q * lam[..., None, :]) @ np.swapaxes(q, -1, -2)
    return (np.tril(sym) + np.triu(rng.normal(size=shape), 1)).astype(dtype)


W = np.array([1.0, -0.5, 2.0])
HERMITIAN = {  # name -> (function of the lower-triangle matrix, NumPy's function, triangle)
    "pinv": (lambda a: la.pinv(a, hermitian=True), lambda a: np.linalg.pinv(a, hermitian=True), "L"),
    "svd_values": (lambda a: la.svd(a, hermitian=True).S, lambda a: np.linalg.svd(a, hermitian=True).S, "L"),
    "svd_compute_uv_false": (lambda a: la.svd(a, compute_uv=False, hermitian=True),
                             lambda a: np.linalg.svd(a, compute_uv=False, hermitian=True), "L"),
    "svd_reconstruction": (lambda a: (lambda u, s, vh: (u * s[..., None, :]) @ vh)(*la.svd(a, hermitian=True)),
                           lambda a: (lambda u, s, vh: (u * s[..., None, :]) @ vh)(*np.linalg.svd(a, hermitian=True)), "L"),
    "svd_top_projector": (lambda a: (lambda u, s, vh: u[..., :, :1] @ vh[..., :1, :])(*la.svd(a, hermitian=True)),
                          lambda a: (lambda u, s, vh: u[..., :, :1] @ vh[..., :1, :])(*np.linalg.svd(a, hermitian=True)), "L"),
    "eigh_values_L": (lambda a: la.eigh(a).eigenvalues, lambda a: np.linalg.eigh(a).eigenvalues, "L"),
    "eigh_values_U": (lambda a: la.eigh(a, UPLO="U").eigenvalues,
                      lambda a: np.linalg.eigh(a, UPLO="U").eigenvalues, "U"),
    "eigh_vector_squares_U": (lambda a: la.eigh(a, UPLO="U").eigenvectors ** 2,
                              lambda a: np.linalg.eigh(a, UPLO="U").eigenvectors ** 2, "U"),
    "eigvalsh_L": (la.eigvalsh, np.linalg.eigvalsh, "L"),
    "eigvalsh_U": (lambda a: la.eigvalsh(a, UPLO="U"), lambda a: np.linalg.eigvalsh(a, UPLO="U"), "U"),
}  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", [(3, 3), (2, 3, 3)], ids=str)
@pytest.mark.parametrize("name", sorted(HERMITIAN))
def test_hermitian_readers_differentiate_the_triangle_numpy_reads(name, shape, dtype):
    fn, np_fn, uplo = HERMITIAN[name]
    a = lower_symmetric_upper_noise(np.random.default_rng(4), shape, dtype)
    if uplo == "U":
        a = np.swapaxes(a, -1, -2).copy()
    assert_same(fn(a), np_fn(a))  # NumPy's own value of the non-symmetric input
    tol = {"rtol": 2e-2, "atol": 2e-3} if dtype == np.float32 else {}
    check_grads(fn, (a,), order=2, **tol)  # along every perturbation, not only symmetric ones
    weights = np.linspace(0.5, 1.5, np.size(fn(a))).reshape(np.shape(fn(a)))
    g = dp.grad(lambda a: dnp.sum(fn(a) * weights))(a)
    unread = np.triu(np.ones(shape[-2:]), 1) if uplo == "L" else np.tril(np.ones(shape[-2:]), -1)
    assert (g * unread == 0).all() and (g * (1 - unread) != 0).any()  # the other triangle: 0


# --- 7: logsumexp over an empty axis: -inf, an empty gradient, no warning --------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape, axis", [((0,), None), ((2, 0), 1), ((2, 0), None), ((0, 3), 0),
                                         ((0, 3), 1), ((2, 0, 3), (1, 2))], ids=str)  # fmt: skip
def test_logsumexp_over_an_empty_axis_is_minus_inf(shape, axis, dtype):
    x = np.zeros(shape, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for keepdims in (False, True):
            out = dnp.logsumexp(x, axis=axis, keepdims=keepdims)
            assert out.dtype == dtype and np.shape(out) == np.sum(x, axis, keepdims=keepdims).shape
            assert (np.asarray(out) == -np.inf).all() or np.size(out) == 0
        f = lambda x: dnp.sum(dnp.exp(dnp.logsumexp(x, axis=axis)))  # exp(-inf) = 0: finite
        g = dp.grad(f)(x)
        assert g.shape == shape and g.dtype == dtype
        assert dp.jvp(f, (x,), (x,))[1] == 0.0
        check_grads(f, (x,), order=2)


# --- 5, 6, 7 on every backend -------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(HERMITIAN))
def test_hermitian_readers_on_every_backend(name, backend=NUMPY):
    if name == "pinv" and backend.gpu is not None:
        pytest.skip("CuPy's pinv has no hermitian= option")
    fn = HERMITIAN[name][0]
    a = lower_symmetric_upper_noise(np.random.default_rng(6), (2, 3, 3), np.float64)
    if HERMITIAN[name][2] == "U":
        a = np.swapaxes(a, -1, -2).copy()
    backend.check_grads(fn, (a,), order=2)


test_hermitian_readers_on_every_backend_on_gpu = on_gpu(test_hermitian_readers_on_every_backend)


def test_singular_det_and_empty_logsumexp_on_every_backend(backend=NUMPY):
    b = np.stack([SINGULAR["rank 1 of 2"], [[2.0, 1.0], [1.0, 3.0]], np.zeros((2, 2))])
    backend.check(dp.grad(lambda a: dnp.sum(la.det(a)))(backend.put(b)),
                  np.stack([cofactors(m) for m in b]))  # fmt: skip
    e = np.zeros((2, 0))
    backend.check(dnp.logsumexp(backend.put(e), axis=1), np.full(2, -np.inf))
    backend.check(dp.grad(lambda x: dnp.sum(dnp.exp(dnp.logsumexp(x, axis=1))))(backend.put(e)), e)


test_singular_det_and_empty_logsumexp_on_every_backend_on_gpu = on_gpu(
    test_singular_det_and_empty_logsumexp_on_every_backend
)

test_where_and_initial_on_every_backend_under_jit = under_jit(test_where_and_initial_on_every_backend)
test_where_and_initial_on_every_backend_under_vmap = under_vmap(test_where_and_initial_on_every_backend)
test_hermitian_readers_on_every_backend_under_jit = under_jit(test_hermitian_readers_on_every_backend)
test_hermitian_readers_on_every_backend_under_vmap = under_vmap(test_hermitian_readers_on_every_backend)
