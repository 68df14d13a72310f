"""Reductions, statistics, norms and sorting: values against NumPy, derivatives against
central differences (both modes, second order, float64 and float32), closed forms where the
inputs hold zeros, and the constant-valued argmax/argmin/count_nonzero/argsort."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.numpy.reductions import (
    argmax, argmin, average, count_nonzero, cumprod, cumsum, norm, prod, ptp, std, var,
)  # fmt: skip
from diffprog.numpy.nan_reductions import (
    nanmax, nanmean, nanmin, nanprod, nanstd, nansum, nanvar,
)  # fmt: skip
from diffprog.numpy.sorting import argsort, median, partition, sort
from backends import NUMPY, on_gpu, under_jit, under_jit_on_gpu, under_vmap
from diffprog.testing import check_grads
from samplers import away_from_zero, distinct, make, normal, positive

DTYPES = [np.float64, np.float32]
SHAPES = [(), (3,), (2, 3), (2, 1, 4)]
AXES = [None, 0, -1, (0, 2), (1,)]  # on a (2, 3, 4) input


def distinct_abs(rng, shape):
    """Distinct absolute values, no zero (for max/min of |x|), random signs."""
    n = int(np.prod(shape, dtype=int))
    values = np.linspace(0.3, 1.5, max(n, 1)) + rng.uniform(-0.01, 0.01, size=max(n, 1))
    signs = rng.choice([-1.0, 1.0], size=max(n, 1))
    return rng.permutation(values * signs)[:n].reshape(shape)


def with_nans(rng, shape):
    x = rng.normal(size=shape)
    if x.size > 1:
        x.reshape(-1)[::5] = np.nan  # never a whole slice along any axis
    return x


# --- every differentiable function over axes and keepdims, against central differences ------
AXIS_FUNCS = {
    "sum": (dnp.sum, np.sum, normal),
    "mean": (dnp.mean, np.mean, normal),
    "prod": (prod, np.prod, away_from_zero),
    "var": (var, np.var, normal),
    "var_ddof1": (lambda x, axis, keepdims: var(x, axis, ddof=1, keepdims=keepdims),
                  lambda x, axis, keepdims: np.var(x, axis, ddof=1, keepdims=keepdims), normal),
    "std": (std, np.std, normal),
    "std_ddof1": (lambda x, axis, keepdims: std(x, axis, ddof=1, keepdims=keepdims),
                  lambda x, axis, keepdims: np.std(x, axis, ddof=1, keepdims=keepdims), normal),
    "ptp": (ptp, np.ptp, distinct),
    "nansum": (nansum, np.nansum, normal),
    "nansum_with_nans": (nansum, np.nansum, with_nans),
    "nanmean": (nanmean, np.nanmean, normal),
    "nanmean_with_nans": (nanmean, np.nanmean, with_nans),
    "nanprod_with_nans": (nanprod, np.nanprod, with_nans),
    "nanmax_with_nans": (nanmax, np.nanmax, with_nans),
    "nanmin_with_nans": (nanmin, np.nanmin, with_nans),
    "nanvar_with_nans": (nanvar, np.nanvar, with_nans),
    "nanstd_ddof1_with_nans": (lambda x, axis, keepdims: nanstd(x, axis, ddof=1, keepdims=keepdims),
                               lambda x, axis, keepdims: np.nanstd(x, axis, ddof=1, keepdims=keepdims),
                               with_nans),
    "average": (lambda x, axis, keepdims: average(x, axis, keepdims=keepdims),
                lambda x, axis, keepdims: np.average(x, axis, keepdims=keepdims), normal),
    "median": (median, np.median, distinct),
}  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", sorted(AXIS_FUNCS))
def test_reduction_grads_and_values(name, axis, keepdims, dtype, backend=NUMPY):
    fn, np_fn, sampler = AXIS_FUNCS[name]
    x = make(np.random.default_rng(2), sampler, (2, 3, 4), dtype)
    out = fn(x, axis=axis, keepdims=keepdims)
    expected = np_fn(x, axis=axis, keepdims=keepdims)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-12)
    backend.check_grads(lambda x: fn(x, axis=axis, keepdims=keepdims), (x,), order=2)


test_reduction_grads_and_values_on_gpu = on_gpu(test_reduction_grads_and_values)
test_reduction_grads_and_values_under_jit_on_gpu = under_jit_on_gpu(test_reduction_grads_and_values)


SHAPE_FUNCS = {
    "prod": (prod, np.prod, away_from_zero),
    "var": (var, np.var, normal),
    "std": (std, np.std, normal),
    "cumsum": (cumsum, np.cumsum, normal),
    "cumprod": (cumprod, np.cumprod, away_from_zero),
    "nansum": (nansum, np.nansum, normal),
    "nanmean": (nanmean, np.nanmean, normal),
    "ptp": (ptp, np.ptp, distinct),
    "norm": (norm, np.linalg.norm, normal),
    "sort_flat": (lambda x: sort(x, axis=None), lambda x: np.sort(x, axis=None), distinct),
    "median": (median, np.median, distinct),
    "partition_flat": (lambda x: partition(x, 0, axis=None),
                       lambda x: np.partition(x, 0, axis=None), distinct),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(SHAPE_FUNCS))
def test_default_axis_over_shapes(name, shape, dtype, backend=NUMPY):
    fn, np_fn, sampler = SHAPE_FUNCS[name]
    x = make(np.random.default_rng(3), sampler, shape, dtype)
    np.testing.assert_allclose(fn(x), np_fn(x), rtol=1e-5 if dtype == np.float32 else 1e-12)
    assert np.asarray(fn(x)).dtype == np.asarray(np_fn(x)).dtype
    if name in ("std",) and x.size == 1:
        return  # zero variance: a kink, covered by test_std_and_norm_at_zero
    backend.check_grads(fn, (x,), order=2)


test_default_axis_over_shapes_on_gpu = on_gpu(test_default_axis_over_shapes)


CUMULATIVE_AXES = [0, 1, -1, 2]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("axis", CUMULATIVE_AXES, ids=str)
@pytest.mark.parametrize("name", ["cumsum", "cumprod"])
def test_cumulative_along_axes(name, axis, dtype, backend=NUMPY):
    fn, np_fn = (cumsum, np.cumsum) if name == "cumsum" else (cumprod, np.cumprod)
    x = make(np.random.default_rng(4), away_from_zero, (3, 5, 2), dtype)
    np.testing.assert_array_equal(fn(x, axis), np_fn(x, axis))
    backend.check_grads(lambda x: fn(x, axis=axis), (x,), order=2)


test_cumulative_along_axes_on_gpu = on_gpu(test_cumulative_along_axes)


# --- a 0-d array given an axis: NumPy's (and SciPy's) rules, not one of our own ----------------
def _softmax_model(x, axis):  # scipy.special.softmax's formula, with its own axis handling
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return e / np.sum(e, axis=axis, keepdims=True)


ZERO_D = {  # name: (diffprog's, NumPy's or a model of SciPy's, differentiable, keepdims)
    **{name: (getattr(dnp, name), getattr(np, name), True, True)
       for name in ("sum", "prod", "max", "min", "amax", "amin", "ptp", "nansum", "nanmean",
                    "nanprod", "nanmax", "nanmin", "nanvar", "nanstd", "mean", "var", "std",
                    "median")},
    "average": (average, np.average, True, True),
    "cumsum": (cumsum, np.cumsum, True, False),
    "cumprod": (cumprod, np.cumprod, True, False),
    "sort": (sort, np.sort, True, False),
    "argsort": (argsort, np.argsort, False, False),
    "argmax": (argmax, np.argmax, False, True),
    "argmin": (argmin, np.argmin, False, True),
    "count_nonzero": (count_nonzero, np.count_nonzero, False, True),
    "any": (dnp.any, np.any, False, True),
    "all": (dnp.all, np.all, False, True),
    # (SciPy 1.17's logsumexp takes a 0-d array as 1-d: its keepdims=True gives shape (1,))
    "logsumexp": (dnp.logsumexp, lambda x, axis, **kw: np.log(np.sum(np.exp(x), axis=axis, **kw)),
                  True, True),
    "softmax": (dnp.softmax, _softmax_model, True, False),
    "log_softmax": (dnp.log_softmax, lambda x, axis: np.log(_softmax_model(x, axis)), True, False),
}  # fmt: skip
ZERO_D_INPUTS = {"float64": np.array(0.7), "float32": np.array(0.7, np.float32), "float": 0.7}
ZERO_D_AXES = [(0, False), (-1, False), (0, True), ((0,), False), (1, False), ((), True),
               (None, True)]  # fmt: skip


@pytest.mark.parametrize("given", sorted(ZERO_D_INPUTS))
@pytest.mark.parametrize("axis, keepdims", ZERO_D_AXES, ids=str)
@pytest.mark.parametrize("name", sorted(ZERO_D))
def test_a_0d_array_with_an_axis_as_numpy(name, axis, keepdims, given, backend=NUMPY):
    """What NumPy gives for a 0-d array (or scalar) and an axis, diffprog gives (value, type,
    dtype, shape) or refuses alike: ufunc reductions (sum, prod, max, min, nansum, nanmean,
    count_nonzero, logsumexp, softmax) take an int axis 0 or -1 as none, numpy.mean, var,
    std, median and sort refuse it, cumsum, cumprod, argsort and argmax take the 0-d array as
    1-d; derivatives as central differences, and the Tape's as grad's."""
    fn, reference, differentiable, takes_keepdims = ZERO_D[name]
    if keepdims and not takes_keepdims:
        return
    x = ZERO_D_INPUTS[given]
    kw = {"keepdims": True} if keepdims else {}
    try:
        want = reference(x, axis=axis, **kw)
    except (TypeError, ValueError) as e:  # (NumPy's AxisError is a ValueError)
        with pytest.raises(type(e)):
            fn(x, axis=axis, **kw)
        return
    got = fn(x, axis=axis, **kw)
    assert (type(got), np.shape(got)) == (type(want), np.shape(want)), (got, want)
    assert np.asarray(got).dtype == np.asarray(want).dtype, (got, want)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    if not differentiable:
        return
    f = lambda x: fn(x, axis=axis, **kw)  # noqa: E731
    if name != "std":  # (std of one entry: at its kink, covered by test_std_and_norm_at_zero)
        backend.check_grads(f, (x,), order=2)
    if backend is NUMPY:
        scalar = lambda x: dnp.sum(f(x) * 1.5)  # noqa: E731
        with dp.Tape() as tape:
            w = tape.watch(x)
            y = scalar(w)
        np.testing.assert_array_equal(tape.gradient(y, w), dp.grad(scalar)(x))


@pytest.mark.parametrize("axis", [True, np.bool_(False), (True,), 1.0, (0, 1.0)], ids=repr)
@pytest.mark.parametrize("name", ["sum", "mean", "max", "var", "cumsum", "sort", "argsort"])
def test_an_axis_that_is_not_an_int_is_numpys_type_error(name, axis):
    if (name, axis) != ("sort", True):  # (numpy.sort alone takes True for 1)
        with pytest.raises(TypeError):
            getattr(np, name)(np.ones((2, 3)), axis=axis)
    with pytest.raises(TypeError, match="axis must be an int"):
        getattr(dnp, name)(np.ones((2, 3)), axis=axis)

@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17])
def test_cumprod_lengths(n):
    """The doubling scan in cumprod's rules at every length around powers of two."""
    x = away_from_zero(np.random.default_rng(n), (n,))
    check_grads(cumprod, (x,), order=2)
    jac = np.array(dp.jacrev(cumprod)(x))
    expected = np.array([[np.prod(np.delete(x[: k + 1], j)) if j <= k else 0.0
                          for j in range(n)] for k in range(n)])  # fmt: skip
    np.testing.assert_allclose(jac, expected, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(np.array(dp.jacfwd(cumprod)(x)), expected, rtol=1e-13, atol=1e-15)


# --- zeros: closed forms for prod and cumprod -------------------------------------------------
def prod_hessian(x):
    """d2 prod / dx_i dx_j = product of all but x_i and x_j (i != j), 0 on the diagonal."""
    n = len(x)
    return np.array([[np.prod(np.delete(x, [i, j])) if i != j else 0.0 for j in range(n)]
                     for i in range(n)])  # fmt: skip


def cumprod_jacobian(x):
    n = len(x)
    return np.array([[np.prod(np.delete(x[: k + 1], j)) if j <= k else 0.0 for j in range(n)]
                     for k in range(n)])  # fmt: skip


ZERO_CASES = {
    "one_zero": np.array([1.5, -2.0, 0.0, 0.5, 3.0]),
    "one_zero_first": np.array([0.0, -2.0, 1.3, 0.5]),
    "two_zeros": np.array([1.5, 0.0, 2.0, 0.0, -0.5]),
    "three_zeros": np.array([0.0, 1.5, 0.0, 2.0, 0.0]),
}


@pytest.mark.parametrize("case", sorted(ZERO_CASES))
def test_prod_with_zeros_closed_form(case):
    x = ZERO_CASES[case]
    others = np.array([np.prod(np.delete(x, i)) for i in range(len(x))])
    assert np.count_nonzero(others) == (1 if case.startswith("one") else 0)
    np.testing.assert_array_equal(dp.grad(prod)(x), others)
    v = np.random.default_rng(0).normal(size=x.shape)
    np.testing.assert_allclose(dp.jvp(prod, (x,), (v,))[1], others @ v, rtol=1e-14)
    hess = prod_hessian(x)
    np.testing.assert_allclose(np.array(dp.hessian(prod)(x)), hess, rtol=1e-14)  # fwd over rev
    np.testing.assert_allclose(np.array(dp.jacrev(dp.grad(prod))(x)), hess, rtol=1e-14)
    np.testing.assert_allclose(np.array(dp.jacfwd(dp.jacfwd(prod))(x)), hess, rtol=1e-14)
    assert np.all(np.isfinite(dp.grad(prod)(x)))
    if case.startswith("one"):  # smooth and away from degenerate differences: numeric check too
        check_grads(prod, (x,), order=2)


@pytest.mark.parametrize("case", sorted(ZERO_CASES))
def test_prod_with_zeros_along_an_axis(case):
    """Rows with none, one and several zeros in one call: each row its own closed form."""
    z = ZERO_CASES[case]
    x = np.stack([z, np.linspace(0.5, 1.5, len(z)), z[::-1]])
    g = dp.grad(lambda x: dnp.sum(prod(x, axis=1) * np.array([1.0, 2.0, 3.0])))(x)
    expected = np.array([[w * np.prod(np.delete(row, i)) for i in range(len(z))]
                         for w, row in zip([1.0, 2.0, 3.0], x)])  # fmt: skip
    np.testing.assert_array_equal(g, expected)
    gt = dp.grad(lambda x: dnp.sum(prod(x.T, axis=0) * np.array([1.0, 2.0, 3.0])))(x)
    np.testing.assert_array_equal(gt, expected)


@pytest.mark.parametrize("case", sorted(ZERO_CASES))
def test_cumprod_with_zeros_closed_form(case):
    x = ZERO_CASES[case]
    jac = cumprod_jacobian(x)
    np.testing.assert_allclose(np.array(dp.jacrev(cumprod)(x)), jac, rtol=1e-14)
    np.testing.assert_allclose(np.array(dp.jacfwd(cumprod)(x)), jac, rtol=1e-14)
    # Second order: the Hessian of cumprod(x)[k] is prod_hessian of x[:k+1], padded.
    for k in range(len(x)):
        hess = np.zeros((len(x), len(x)))
        hess[: k + 1, : k + 1] = prod_hessian(x[: k + 1]) if k else 0.0
        np.testing.assert_allclose(np.array(dp.hessian(lambda x: cumprod(x)[k])(x)), hess,
                                   rtol=1e-14)  # fmt: skip
        np.testing.assert_allclose(np.array(dp.jacrev(dp.grad(lambda x: cumprod(x)[k]))(x)),
                                   hess, rtol=1e-14)  # fmt: skip
    check_grads(cumprod, (x,), order=2)


# --- var / std / norm at their kinks ----------------------------------------------------------
def test_std_and_norm_at_zero():
    """Zero variance / a zero vector: gradient 0 by convention (the derivative does not
    exist), finite in both modes and at second order; NaN elsewhere would spread."""
    c = np.full((3, 4), 0.5)  # the mean is exact: the variance is exactly 0
    for f in (std, lambda x: std(x, ddof=1), lambda x: dnp.sum(std(x, axis=0))):
        assert np.array_equal(dp.grad(f)(c), np.zeros_like(c))
        assert np.array_equal(dp.jvp(f, (c,), (np.ones_like(c),))[1], 0.0)
        assert np.all(np.isfinite(np.array(dp.hessian(f)(c))))
    z = np.zeros((2, 3))
    for f in (norm, lambda x: norm(x, "fro"), lambda x: dnp.sum(norm(x, axis=1)),
              lambda x: norm(x, 3.0, axis=1)[0]):  # fmt: skip
        assert np.array_equal(dp.grad(f)(z), np.zeros_like(z))
        assert np.array_equal(dp.jvp(f, (z,), (np.ones_like(z),))[1], 0.0)
        assert np.all(np.isfinite(np.array(dp.hessian(f)(z))))
    # One zero row beside a nonzero one: the nonzero row keeps its exact gradient x / |x|.
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    np.testing.assert_allclose(dp.grad(lambda x: dnp.sum(norm(x, axis=1)))(x),
                               [[0.0, 0.0], [0.6, 0.8]], rtol=1e-15)  # fmt: skip


@pytest.mark.parametrize("ddof", [0, 1, 2])
@pytest.mark.parametrize("axis", [None, 0, 1, -1, (0, 2), (0, 1, 2)], ids=str)
def test_var_std_closed_form(ddof, axis):
    x = normal(np.random.default_rng(5), (3, 4, 5))
    n = x.size if axis is None else int(np.prod([x.shape[a] for a in np.atleast_1d(axis)]))
    centered = x - np.mean(x, axis=axis, keepdims=True)
    np.testing.assert_allclose(dp.grad(lambda x: dnp.sum(var(x, axis, ddof=ddof)))(x),
                               2 * centered / (n - ddof), rtol=1e-12)  # fmt: skip
    s = np.std(x, axis=axis, ddof=ddof, keepdims=True)
    np.testing.assert_allclose(dp.grad(lambda x: dnp.sum(std(x, axis, ddof=ddof)))(x),
                               centered / ((n - ddof) * s), rtol=1e-12)  # fmt: skip
    np.testing.assert_allclose(var(x, axis, ddof=ddof), np.var(x, axis, ddof=ddof), rtol=1e-13)
    np.testing.assert_allclose(std(x, axis, ddof=ddof), np.std(x, axis, ddof=ddof), rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.complex128, np.complex64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("axis", [None, 1, (0, 2)], ids=str)
def test_var_std_of_complex_values_are_real(axis, dtype):
    """NumPy's var of complex z is the mean of |z - mean|^2 (real); its gradient (JAX's
    convention) is 2 conj(z - mean) / (n - ddof); std's is conj(z - mean) / ((n - ddof) std)."""
    z = make(np.random.default_rng(9), normal, (3, 4, 2), dtype)
    tol = 1e-5 if dtype == np.complex64 else 1e-13
    for ddof in (0, 1):
        for f, np_f in ((var, np.var), (std, np.std)):
            out, expected = f(z, axis, ddof=ddof, keepdims=True), np_f(z, axis, ddof=ddof, keepdims=True)
            assert out.dtype == expected.dtype and out.shape == expected.shape
            np.testing.assert_allclose(out, expected, rtol=tol)
        n = z.size if axis is None else int(np.prod([z.shape[a] for a in np.atleast_1d(axis)]))
        centered = z - np.mean(z, axis=axis, keepdims=True)
        s = np.std(z, axis=axis, ddof=ddof, keepdims=True)
        np.testing.assert_allclose(dp.grad(lambda z: dnp.sum(var(z, axis, ddof=ddof)))(z),
                                   2 * np.conj(centered) / (n - ddof), rtol=tol * 10)  # fmt: skip
        np.testing.assert_allclose(dp.grad(lambda z: dnp.sum(std(z, axis, ddof=ddof)))(z),
                                   np.conj(centered) / ((n - ddof) * s), rtol=tol * 10)  # fmt: skip
    check_grads(lambda z: std(z, axis), (z,), order=2 if dtype == np.complex128 else 1)


# --- norm: every ord, values against numpy.linalg.norm and derivatives ------------------------
VECTOR_ORDS = [None, 2, 1, np.inf, -np.inf, 0, 3, 0.5, -1, 2.5]
MATRIX_ORDS = [None, "fro", 1, -1, np.inf, -np.inf]


@pytest.mark.parametrize("dtype", DTYPES + [np.complex128], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1, 1, (1,)], ids=str)
@pytest.mark.parametrize("ord", VECTOR_ORDS, ids=str)
def test_vector_norm(ord, axis, keepdims, dtype):
    shape = (5,) if axis is None else (3, 4)
    x = make(np.random.default_rng(6), distinct_abs, shape, dtype)
    out = norm(x, ord, axis, keepdims)
    expected = np.linalg.norm(x, ord, axis, keepdims)
    assert out.dtype == expected.dtype and np.shape(out) == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-13)
    if ord == 0:  # a count: a constant, zero derivative
        kept = norm(x, 0, axis, True)
        g = dp.grad(lambda x: dnp.sum(dnp.real(norm(x, 0, axis, True) * x)))(x)
        assert np.array_equal(g, np.broadcast_to(kept, x.shape))
        return
    check_grads(lambda x: norm(x, ord, axis, keepdims), (x,), order=2)


@pytest.mark.parametrize("dtype", DTYPES + [np.complex128], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, (0, 1), (1, 0), (2, 0), (-1, 1)], ids=str)
@pytest.mark.parametrize("ord", MATRIX_ORDS, ids=str)
def test_matrix_norm(ord, axis, keepdims, dtype):
    shape = (3, 4) if axis is None else (3, 2, 4)
    x = make(np.random.default_rng(7), distinct_abs, shape, dtype)
    out = norm(x, ord, axis, keepdims)
    expected = np.linalg.norm(x, ord, axis, keepdims)
    assert out.dtype == expected.dtype and np.shape(out) == np.shape(expected)
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-13)
    check_grads(lambda x: norm(x, ord, axis, keepdims), (x,), order=2)


def test_norm_closed_forms_and_flattening():
    x = np.array([[3.0, -4.0], [1.0, 2.0]])
    # axis=None, ord=None: the 2-norm of the flattened array, whatever the dimension.
    y = normal(np.random.default_rng(8), (2, 3, 4))
    np.testing.assert_allclose(norm(y), np.linalg.norm(y), rtol=1e-14)
    np.testing.assert_allclose(dp.grad(norm)(y), y / np.linalg.norm(y), rtol=1e-14)
    np.testing.assert_allclose(dp.grad(lambda x: norm(x, 1))(x), [[0, -1], [0, 1]])  # column 1
    np.testing.assert_allclose(dp.grad(lambda x: norm(x, np.inf))(x), [[1, -1], [0, 0]])
    np.testing.assert_allclose(dp.grad(lambda x: norm(x, 1, axis=1)[0])(x), [[1, -1], [0, 0]])
    np.testing.assert_allclose(dp.grad(lambda x: norm(x, -np.inf, axis=0)[1])(x), [[0, 0], [0, 1]])
    np.testing.assert_allclose(norm([3, 4]), 5.0)  # integers: float64, as in NumPy
    assert norm(np.array([3, 4])).dtype == np.float64


def test_norm_errors():
    x = np.ones((2, 3))
    for ord in ("nuc", 2, -2):
        with pytest.raises(NotImplementedError, match="ord="):
            norm(x, ord)
    with pytest.raises(ValueError, match="invalid norm order"):
        norm(x, 3)
    with pytest.raises(ValueError, match="invalid norm order"):
        norm(np.ones(3), "fro")
    with pytest.raises(ValueError, match="improper number of dimensions"):
        norm(np.ones((2, 2, 2)), 1)
    with pytest.raises(ValueError, match="duplicate"):
        norm(x, 1, axis=(0, -2))
    with pytest.raises(ValueError, match="out of bounds"):
        norm(x, axis=2)


# --- average ----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize(
    "axis,wshape", [(None, (2, 3, 4)), (1, (2, 3, 4)), ((0, 2), (2, 3, 4)), (1, (3,)),
                    (-1, (4,)), (0, (2,))], ids=str)  # fmt: skip
def test_average_weights(axis, wshape, keepdims, dtype):
    rng = np.random.default_rng(9)
    a, w = make(rng, normal, (2, 3, 4), dtype), make(rng, positive, wshape, dtype)
    out = average(a, axis, w, keepdims=keepdims)
    expected = np.average(a, axis, w, keepdims=keepdims)
    assert out.dtype == expected.dtype and out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == np.float32 else 1e-13)
    check_grads(lambda a, w: average(a, axis, w, keepdims=keepdims), (a, w), order=2)
    avg, scale = average(a, axis, w, returned=True, keepdims=keepdims)
    e_avg, e_scale = np.average(a, axis, w, returned=True, keepdims=keepdims)
    np.testing.assert_allclose(scale, e_scale, rtol=1e-6)
    assert scale.shape == e_scale.shape


def test_average_closed_form_and_errors():
    a, w = np.array([1.0, 2.0, 4.0]), np.array([1.0, 1.0, 2.0])
    # d/dw_i sum(a w)/sum(w) = (a_i - avg) / sum(w)
    np.testing.assert_allclose(dp.grad(lambda w: average(a, weights=w))(w), (a - 11 / 4) / 4)
    np.testing.assert_allclose(dp.grad(lambda a: average(a, weights=w))(a), w / 4)
    avg, n = average(np.ones((2, 3)), axis=1, returned=True)
    assert np.array_equal(n, [3.0, 3.0]) and np.array_equal(avg, [1.0, 1.0])
    with pytest.raises(ZeroDivisionError):
        average(a, weights=np.array([1.0, -1.0, 0.0]))
    with pytest.raises(TypeError, match="axis must be specified if"):
        average(np.ones((2, 3)), weights=np.ones(3))
    with pytest.raises(ValueError, match="1-D"):
        average(np.ones((2, 3)), axis=0, weights=np.ones(3))


# --- nan functions ----------------------------------------------------------------------------
def test_nan_functions_gradients():
    x = np.array([[1.0, np.nan, 2.0], [np.nan, np.nan, 3.0], [np.nan] * 3])
    g = dp.grad(lambda x: dnp.sum(nansum(x, axis=1) * np.array([1.0, 2.0, 3.0])))(x)
    np.testing.assert_array_equal(g, [[1, 0, 1], [0, 0, 2], [0, 0, 0]])
    with np.errstate(invalid="ignore", divide="ignore"), pytest.warns(RuntimeWarning):
        np.testing.assert_array_equal(nanmean(x, axis=1), np.nanmean(x, axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        g = dp.grad(lambda x: dnp.sum(nanmean(x[:2], axis=1)))(x)
        np.testing.assert_array_equal(g[:2], [[0.5, 0, 0.5], [0, 0, 1]])
        gf = dp.jvp(lambda x: nanmean(x[:2], axis=1), (x,), (np.ones_like(x),))[1]
        np.testing.assert_array_equal(gf, [1.0, 1.0])
    assert nansum(np.array([1, 2])).dtype == np.sum(np.array([1, 2])).dtype  # ints stay ints


ALL_NAN = [  # (function, keywords, NumPy's warning for the all-NaN row, or None)
    (nanmax, {}, "All-NaN slice"), (nanmin, {}, "All-NaN slice"), (nanprod, {}, None),
    (nanvar, {}, "Degrees of freedom"), (nanstd, {}, "Degrees of freedom"),
    (nanvar, {"ddof": 2}, "Degrees of freedom"), (nanstd, {"ddof": 1.5}, "Degrees of freedom"),
    (nanmax, {"initial": -5.0}, None), (nanprod, {"initial": 2.0}, None),
    (nanmin, {"initial": 9.0, "where": np.array([True, False, True, True])}, None),
]  # fmt: skip


@pytest.mark.parametrize("fn, kw, warning", ALL_NAN, ids=lambda v: getattr(v, "__name__", str(v)))
@pytest.mark.parametrize("keepdims", [False, True])
def test_nan_reductions_of_all_nan_slices_as_numpy(fn, kw, warning, keepdims):
    """An all-NaN row (and rows with one entry left, below ddof) gives NumPy's value, with
    NumPy's RuntimeWarning, and zero gradient, in both modes and to second order; the NaN
    entries of the other rows get zero gradient, the rest central differences'."""
    x = np.array([[1.0, np.nan, 2.0, -0.5], [np.nan] * 4, [np.nan, 0.7, np.nan, np.nan],
                  [0.3, -1.2, 0.9, 2.0]])  # fmt: skip
    reference = getattr(np, fn.__name__)
    f = lambda x: fn(x, axis=1, keepdims=keepdims, **kw)  # noqa: E731
    with warnings.catch_warnings(record=True) as theirs:
        warnings.simplefilter("always")
        want = reference(x, axis=1, keepdims=keepdims, **kw)
    with warnings.catch_warnings(record=True) as ours:
        warnings.simplefilter("always")
        got = f(x)
    np.testing.assert_array_equal(got, want)
    assert (got.dtype, got.shape) == (want.dtype, want.shape)
    assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]
    if warning is not None:
        assert warning in str(ours[0].message) and ours[0].category is RuntimeWarning
        assert ours[0].filename == __file__  # (the caller's line, as NumPy's)
    finite = np.isfinite(want).ravel()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        weights = np.where(finite, 1.0 + np.arange(4), 0.0).reshape(want.shape)
        g = dp.grad(lambda x: dnp.sum(dnp.where(np.isfinite(want), f(x), 0.0) * weights))(x)
        assert np.all(np.isfinite(g)) and np.all(g[np.isnan(x)] == 0)
        assert np.all(g[~finite] == 0)  # rows whose result is NaN
        t = dp.jvp(f, (x,), (np.where(np.isnan(x), 1.0, 0.0),))[1]  # along the NaN entries
        np.testing.assert_array_equal(np.where(np.isnan(want), 0.0, t), 0.0)
        for i in np.flatnonzero(finite):  # rows with a value: central differences, to order 2
            check_grads(lambda r: fn(np.where(np.isnan(x[i]), np.nan, 0.0) + r, axis=0, **kw),
                        (np.nan_to_num(x[i]),), order=2)


# --- sort and argsort -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("axis", [None, 0, 1, -1], ids=str)
def test_sort(axis, dtype):
    x = make(np.random.default_rng(10), distinct, (3, 4, 5), dtype)
    np.testing.assert_array_equal(sort(x, axis), np.sort(x, axis))
    np.testing.assert_array_equal(argsort(x, axis), np.argsort(x, axis))
    check_grads(lambda x: sort(x, axis), (x,), order=2)
    # Through a tracer the value is NumPy's too.
    out, _ = dp.vjp(lambda x: sort(x, axis), x)
    np.testing.assert_array_equal(out, np.sort(x, axis))


def test_sort_gradient_routes_through_the_permutation():
    x = np.array([[3.0, 1.0, 2.0], [0.5, -1.0, 9.0]])
    w = np.array([1.0, 10.0, 100.0])
    g = dp.grad(lambda x: dnp.sum(sort(x) * w))(x)
    np.testing.assert_array_equal(g, [[100.0, 1.0, 10.0], [10.0, 1.0, 100.0]])
    v = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    np.testing.assert_array_equal(dp.jvp(sort, (x,), (v,))[1], [[2.0, 3.0, 1.0], [5.0, 4.0, 6.0]])
    # Ties: a stable order, each tied element gets its own slot's cotangent.
    t = np.array([2.0, 1.0, 2.0, 1.0])
    np.testing.assert_array_equal(dp.grad(lambda x: dnp.sum(sort(x) * np.arange(4.0)))(t),
                                  [2.0, 0.0, 3.0, 1.0])  # fmt: skip
    # A second derivative through sort: d2/dx2 sum(sort(x)**3 * w) = 6 x w[rank].
    xs = np.array([0.3, -1.2, 2.0])
    h = np.array(dp.hessian(lambda x: dnp.sum(sort(x) ** 3 * w))(xs))
    np.testing.assert_allclose(h, np.diag(6 * xs * w[np.argsort(np.argsort(xs))]))


def test_sort_options():
    x = np.array([3.0, 1.0, 2.0])
    assert np.array_equal(sort(x, kind="stable"), np.sort(x))
    assert np.array_equal(argsort(x, stable=True), np.argsort(x, stable=True))
    with pytest.raises(NotImplementedError, match="order"):
        sort(x, order="a")
    with pytest.raises(ValueError, match="kind"):
        sort(x, kind="bubble")
    assert np.array_equal(sort([3, 1, 2]), [1, 2, 3])


# --- argmax, argmin, count_nonzero: constants -------------------------------------------------
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, 1, -1], ids=str)
def test_arg_functions_match_numpy(axis, keepdims):
    x = np.round(normal(np.random.default_rng(11), (3, 4, 5)), 1) * (np.arange(5) % 2)
    for fn, np_fn in [(argmax, np.argmax), (argmin, np.argmin)]:
        out, expected = fn(x, axis, keepdims=keepdims), np_fn(x, axis, keepdims=keepdims)
        assert np.array_equal(out, expected) and np.asarray(out).dtype == expected.dtype
    out = count_nonzero(x, axis, keepdims=keepdims)
    expected = np.count_nonzero(x, axis, keepdims=keepdims)
    assert np.array_equal(out, expected) and np.shape(out) == np.shape(expected)
    assert np.asarray(out).dtype == np.asarray(expected).dtype


ANY_ALL_INPUTS = {
    "floats": np.array([[0.0, 1.5, -2.0], [0.0, 0.0, 0.0]]),
    "nan": np.array([[np.nan, 0.0], [np.nan, 1.0]]),  # NaN is nonzero
    "bools": np.array([[True, False], [True, True]]),
    "empty": np.zeros((0, 3)),  # any: False, all: True
    "0-d": np.array(0.0),
}


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", [None, 0, -1, (0, 1)], ids=str)
@pytest.mark.parametrize("given", sorted(ANY_ALL_INPUTS))
@pytest.mark.parametrize("name", ["any", "all"])
def test_any_and_all_match_numpy_through_the_transforms(name, given, axis, keepdims):
    """dnp.any / dnp.all give NumPy's value, type, shape and dtype, eagerly, under dp.jit (a
    guard on the replayed outcome) and per example under dp.vmap; a program branching on them
    differentiates along the branch taken."""
    x = ANY_ALL_INPUTS[given]
    if x.ndim < 2 and axis not in (None, 0, -1):
        return
    fn, reference = getattr(dnp, name), getattr(np, name)
    want = reference(x, axis, keepdims=keepdims)
    got = fn(x, axis, keepdims=keepdims)
    assert (type(got), np.shape(got), np.asarray(got).dtype) == (type(want), np.shape(want),
                                                                 np.asarray(want).dtype)  # fmt: skip
    assert np.array_equal(got, want)
    jitted = dp.jit(lambda x: fn(x, axis, keepdims=keepdims))
    for _ in range(2):
        assert np.array_equal(jitted(x), want) and np.asarray(jitted(x)).dtype == np.bool_
    if x.ndim == 2 and x.shape[0]:
        batched = dp.vmap(lambda r: fn(r, None, keepdims=keepdims))(x)
        assert np.array_equal(batched, [reference(r, keepdims=keepdims) for r in x])
    if x.dtype.kind == "f" and x.size and np.all(np.isfinite(x)):
        f = lambda x: dnp.sum(x**2) if fn(x > 1.0) else dnp.sum(3.0 * x)  # noqa: E731
        branch = reference(x > 1.0)
        np.testing.assert_allclose(dp.grad(f)(x), 2 * x if branch else np.full_like(x, 3.0))
        np.testing.assert_allclose(dp.jit(dp.grad(f))(x), dp.grad(f)(x))


def test_gradients_through_constant_valued_functions():
    x = np.array([[0.5, 2.0, -1.0], [3.0, 0.25, 1.5]])

    def f(x):
        i = argmax(x, axis=1)  # a raw int array even on tracers
        j = argmin(x, axis=1)
        n = count_nonzero(x, axis=1)
        assert isinstance(i, np.ndarray) and i.dtype.kind == "i"
        rows = np.arange(2)
        shuffled = sort(x, axis=None)[argsort(x, None)]  # a permutation of x's entries
        return dnp.sum(x[rows, i] ** 2 * n + x[rows, j]) + dnp.sum(shuffled)

    g = dp.grad(f)(x)
    expected = np.zeros_like(x)
    expected[0, 1], expected[1, 0] = 2 * 2.0 * 3, 2 * 3.0 * 3
    expected[0, 2], expected[1, 1] = 1.0, 1.0
    np.testing.assert_array_equal(g, expected + 1.0)  # a permutation of sort(x): every x once
    check_grads(f, (x,), order=2)


# --- options, dtypes --------------------------------------------------------------------------
def test_unsupported_options_are_named():
    x = np.ones(3)
    for fn in (var, std):  # (prod, cumsum, cumprod, nansum, nanmean take dtype=: test_numpy_parity)
        with pytest.raises(NotImplementedError, match="dtype"):
            fn(x, None, np.float32)
    for fn in (prod, cumsum, cumprod, var, std, nansum, nanmean):
        with pytest.raises(NotImplementedError, match="out"):
            fn(x, out=np.ones(()))
    for fn in (argmax, argmin, ptp):
        with pytest.raises(NotImplementedError, match="out"):
            fn(x, out=np.ones(()))


@pytest.mark.parametrize(
    "fn", [prod, cumsum, cumprod, var, std, ptp, nansum, nanmean, average, norm,
           lambda x: norm(x, 3, axis=0), lambda x: norm(x, np.inf), sort],
    ids=lambda f: getattr(f, "__name__", "lambda"))  # fmt: skip
def test_float32_stays_float32(fn):
    x = np.linspace(0.5, 1.5, 6, dtype=np.float32).reshape(2, 3)
    assert fn(x).dtype == np.float32
    g = dp.grad(lambda x: dnp.sum(fn(x)))(x)
    assert g.dtype == np.float32
    g2 = dp.grad(lambda x: dnp.sum(dp.grad(lambda x: dnp.sum(fn(x)))(x) * x))(x)
    assert g2.dtype == np.float32


def test_method_and_python_inputs():
    assert prod([1.0, 2.0, 3.0]) == 6.0
    assert cumsum(2.0).shape == (1,)
    assert var(3.0) == 0.0
    for shape, axis in itertools.product([(4,), (2, 2)], [None, 0]):
        x = np.arange(1.0, 5.0).reshape(shape)
        np.testing.assert_array_equal(prod(x, axis), np.prod(x, axis))

test_reduction_grads_and_values_under_jit = under_jit(test_reduction_grads_and_values)
test_reduction_grads_and_values_under_vmap = under_vmap(test_reduction_grads_and_values)
test_default_axis_over_shapes_under_jit = under_jit(test_default_axis_over_shapes)
test_default_axis_over_shapes_under_vmap = under_vmap(test_default_axis_over_shapes)
test_cumulative_along_axes_under_jit = under_jit(test_cumulative_along_axes)
test_cumulative_along_axes_under_vmap = under_vmap(test_cumulative_along_axes)
test_a_0d_array_with_an_axis_as_numpy_under_jit = under_jit(test_a_0d_array_with_an_axis_as_numpy)


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("name", ["max", "min"])
@pytest.mark.parametrize("shape, axis", [((64, 10), 1), ((40, 3, 5), (1, 2)), ((50, 2), -1)])
def test_max_min_of_many_short_rows_are_numpys_with_shared_ties(shape, axis, name, keepdims):
    # reduced as the columns of a transposed copy (reductions.short_rows): the same values
    x = np.round(np.random.default_rng(6).normal(size=shape), 1)  # ties within rows
    x[1] = np.nan
    f = getattr(dnp, name)
    with np.errstate(invalid="ignore"):
        got = f(x, axis=axis, keepdims=keepdims)
        np.testing.assert_array_equal(got, getattr(np, name)(x, axis=axis, keepdims=keepdims))
    x[1] = 0.5
    g = dp.grad(lambda x: dnp.sum(f(x, axis=axis) ** 2))(x)
    want = getattr(np, name)(x, axis=axis, keepdims=True)
    hits = x == want
    np.testing.assert_allclose(g, hits * 2 * want / hits.sum(axis=axis, keepdims=True), rtol=1e-15)
