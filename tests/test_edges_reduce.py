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
    "max_initial": lambda x: dnp.max(x, initial=-1.0), "sum_where": lambda x: dnp.sum(x, where=True),
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


@pytest.mark.parametrize("make", [float, np.float64, np.array, np.float32], ids=lambda m: m.__name__)
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
