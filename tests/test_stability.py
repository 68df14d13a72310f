"""The ML helpers stay finite and accurate at extreme inputs.

logsumexp, log_softmax, softmax, softplus and sigmoid at |x| = 1e3 (where a naive exp
overflows), in float64 and float32: values, reverse mode (dp.grad), forward mode (dp.jvp)
and second order (dp.grad of dp.grad), each against closed forms, with no overflow or
invalid-value warning on the way. Also logsumexp over an axis that is all -inf.
"""

from __future__ import annotations

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp

# At the extreme inputs, an overflow (exp of a large argument) or an invalid value (inf - inf)
# on the way fails the test.
no_overflow = pytest.mark.filterwarnings("error::RuntimeWarning")

LN2 = np.log(2.0)
DTYPES = [np.float64, np.float32]

# name -> (x, softmax(x), logsumexp(x), sigmoid(x), softplus(x)), all exact in closed form:
# exp(-1e3) and exp(-2e3) underflow to 0 in both dtypes, so softmax is exactly 0, 1/2 or 1.
CASES = {
    "mixed": ([1e3, -1e3, 0.0], [1.0, 0.0, 0.0], 1e3, [1.0, 0.0, 0.5], [1e3, 0.0, LN2]),
    "opposite": ([1e3, -1e3], [1.0, 0.0], 1e3, [1.0, 0.0], [1e3, 0.0]),
    "both large": ([1e3, 1e3], [0.5, 0.5], 1e3 + LN2, [1.0, 1.0], [1e3, 1e3]),
    "both very negative": ([-1e3, -1e3], [0.5, 0.5], -1e3 + LN2, [0.0, 0.0], [0.0, 0.0]),
}  # fmt: skip


def tolerance(dtype):
    """A few ulps of the dtype, relative, with an absolute floor of the same size: shifting by
    the maximum (exact) before exponentiating keeps every result accurate to its last bits."""
    eps = float(np.finfo(dtype).eps)
    return dict(rtol=4 * eps, atol=4 * eps)


class ClosedForm:
    """Closed forms at one case, as float64: the vector functions, and for each helper a
    scalar function F(x) = w . helper(x) with its gradient and Hessian."""

    def __init__(self, case):
        x, p, lse, s, sp = CASES[case]
        self.x, self.p, self.lse = np.array(x), np.array(p), lse
        # log p = x - lse(x), written with the maximum taken out so that it is exact too
        shifted = self.x - self.x.max()
        self.log_p = shifted - np.log(np.sum(np.exp(shifted)))
        self.sigmoid, self.softplus = np.array(s), np.array(sp)
        self.w = np.arange(1.0, len(x) + 1)

    def vector(self, name):
        return {
            "logsumexp": self.lse,
            "log_softmax": self.log_p,
            "softmax": self.p,
            "softplus": self.softplus,
            "sigmoid": self.sigmoid,
        }[name]

    def jacobian(self, name):
        """The Jacobian of the vector helper (a row for logsumexp)."""
        p, s = self.p, self.sigmoid
        return {
            "logsumexp": p,
            "log_softmax": np.eye(len(p)) - p[None, :],
            "softmax": np.diag(p) - np.outer(p, p),
            "softplus": np.diag(s),
            "sigmoid": np.diag(s * (1 - s)),
        }[name]

    def scalar(self, name):
        """(F(x), grad F, Hessian of F) for F = w . helper(x) (logsumexp: F = logsumexp)."""
        p, s, w = self.p, self.sigmoid, self.w
        cov = np.diag(p) - np.outer(p, p)  # the Jacobian of softmax
        if name == "logsumexp":
            return self.lse, p, cov
        if name == "log_softmax":
            return w @ self.log_p, w - p * w.sum(), -w.sum() * cov
        if name == "softmax":
            c = w - w @ p  # centred weights
            hess = np.diag(p * c) - np.outer(p * c, p) - np.outer(p, p * c)
            return w @ p, p * c, hess
        if name == "softplus":
            return w @ self.softplus, w * s, np.diag(w * s * (1 - s))
        return w @ s, w * s * (1 - s), np.diag(w * s * (1 - s) * (1 - 2 * s))  # sigmoid


HELPERS = {
    "logsumexp": dnp.logsumexp,
    "log_softmax": dnp.log_softmax,
    "softmax": dnp.softmax,
    "softplus": dnp.softplus,
    "sigmoid": dnp.sigmoid,
}


def scalar_function(name, w):
    """F(x) = w . helper(x) (logsumexp is already a scalar)."""
    if name == "logsumexp":
        return dnp.logsumexp
    return lambda x: dnp.sum(w * HELPERS[name](x))


def assert_finite_close(actual, expected, dtype, what):
    actual = np.asarray(actual)
    assert np.all(np.isfinite(actual)), f"{what} is not finite: {actual}"
    assert actual.dtype == dtype, f"{what} has dtype {actual.dtype}, expected {np.dtype(dtype)}"
    np.testing.assert_allclose(actual, expected, err_msg=what, **tolerance(dtype))


def extreme(test):
    """Run `test` for every helper, extreme case and dtype, with no overflow warning."""
    test = no_overflow(test)
    test = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)(test)
    test = pytest.mark.parametrize("case", list(CASES))(test)
    return pytest.mark.parametrize("name", list(HELPERS))(test)


@extreme
def test_value_is_finite_and_matches_closed_form(name, case, dtype):
    ref = ClosedForm(case)
    out = HELPERS[name](ref.x.astype(dtype))
    assert_finite_close(out, ref.vector(name), dtype, f"{name}{ref.x.tolist()}")


@extreme
def test_reverse_mode_gradient_is_finite_and_matches_closed_form(name, case, dtype):
    ref = ClosedForm(case)
    x, w = ref.x.astype(dtype), ref.w.astype(dtype)
    value, grad = dp.value_and_grad(scalar_function(name, w))(x)
    expected_value, expected_grad, _ = ref.scalar(name)
    assert_finite_close(value, expected_value, dtype, "value")
    assert_finite_close(grad, expected_grad, dtype, "gradient")


@extreme
def test_forward_mode_is_finite_and_matches_closed_form(name, case, dtype):
    ref = ClosedForm(case)
    x, w = ref.x.astype(dtype), ref.w.astype(dtype)
    v = np.linspace(-1.0, 2.0, x.size).astype(dtype)
    # the vector helper itself: its tangent is J v
    out, tangent = dp.jvp(HELPERS[name], (x,), (v,))
    assert_finite_close(out, ref.vector(name), dtype, "value")
    assert_finite_close(tangent, ref.jacobian(name) @ v.astype(np.float64), dtype, "J v")
    # the scalar function: its tangent is grad . v
    value, tangent = dp.jvp(scalar_function(name, w), (x,), (v,))
    expected_value, expected_grad, _ = ref.scalar(name)
    assert_finite_close(value, expected_value, dtype, "value")
    assert_finite_close(tangent, expected_grad @ v.astype(np.float64), dtype, "tangent")


@extreme
def test_hessian_vector_product_by_grad_of_grad_matches_closed_form(name, case, dtype):
    ref = ClosedForm(case)
    x, w = ref.x.astype(dtype), ref.w.astype(dtype)
    d = np.linspace(-1.0, 2.0, x.size).astype(dtype)
    f = scalar_function(name, w)
    hvp = dp.grad(lambda x: dnp.sum(dp.grad(f)(x) * d))(x)
    _, _, hess = ref.scalar(name)
    assert_finite_close(hvp, hess @ d.astype(np.float64), dtype, "Hessian-vector product")


@extreme
def test_second_derivative_along_a_line_matches_closed_form(name, case, dtype):
    """d^2/ds^2 F(x + s d) at s = 0 is d^T H d: dp.grad(dp.grad(.)) of a scalar function."""
    ref = ClosedForm(case)
    x, w = ref.x.astype(dtype), ref.w.astype(dtype)
    d = np.linspace(-1.0, 2.0, x.size).astype(dtype)
    f = scalar_function(name, w)
    curvature = dp.grad(dp.grad(lambda s: f(x + s * d)))(dtype(0.0))
    _, _, hess = ref.scalar(name)
    d64 = d.astype(np.float64)
    assert_finite_close(curvature, d64 @ hess @ d64, dtype, "second derivative")


# --- scalar inputs: softplus and sigmoid of +-1e3 -------------------------------------------
# x -> (softplus, sigmoid) and their first and second derivatives, exact in closed form
SCALAR_CASES = {
    1e3: ((1e3, 1.0, 0.0), (1.0, 0.0, 0.0)),
    -1e3: ((0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    0.0: ((LN2, 0.5, 0.25), (0.5, 0.25, 0.0)),
}


@no_overflow
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("x", list(SCALAR_CASES))
@pytest.mark.parametrize("name", ["softplus", "sigmoid"])
def test_scalar_value_first_and_second_derivative_match_closed_form(name, x, dtype):
    expected = SCALAR_CASES[x][name == "sigmoid"]
    f = HELPERS[name]
    x = dtype(x)
    assert_finite_close(f(x), expected[0], dtype, "value")
    assert_finite_close(dp.grad(f)(x), expected[1], dtype, "first derivative (reverse)")
    assert_finite_close(dp.jvp(f, (x,), (dtype(1.0),))[1], expected[1], dtype,
                        "first derivative (forward)")  # fmt: skip
    assert_finite_close(dp.grad(dp.grad(f))(x), expected[2], dtype, "second derivative")
    assert_finite_close(dp.jvp(dp.grad(f), (x,), (dtype(1.0),))[1], expected[2], dtype,
                        "second derivative (forward over reverse)")  # fmt: skip


@no_overflow
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_named_closed_forms(dtype):
    """The headline numbers, spelled out."""
    big = np.array([1e3, 1e3], dtype=dtype)
    np.testing.assert_allclose(dnp.logsumexp(big), 1e3 + LN2, rtol=1e-7)
    assert dnp.softplus(dtype(1e3)) == 1e3
    assert 0.0 <= dnp.softplus(dtype(-1e3)) <= np.exp(-1e3)  # exp(-1000) underflows to 0
    assert dnp.sigmoid(dtype(-1e3)) == 0.0 and dnp.sigmoid(dtype(1e3)) == 1.0
    assert dp.grad(dnp.softplus)(dtype(1e3)) == 1.0
    np.testing.assert_array_equal(dnp.log_softmax(np.array([1e3, -1e3], dtype=dtype)), [0.0, -2e3])
    np.testing.assert_array_equal(dnp.softmax(np.array([1e3, -1e3], dtype=dtype)), [1.0, 0.0])


# --- logsumexp over -inf ---------------------------------------------------------------------
# log(0) = -inf is the right answer there; NumPy's divide-by-zero warning about it is not
# what these tests check.
neg_inf = pytest.mark.filterwarnings("ignore:divide by zero encountered in log:RuntimeWarning")
NEG_INF_ROWS = np.array([[-np.inf, -np.inf], [0.0, np.log(3.0)], [-np.inf, 0.0]])
NEG_INF_LSE = np.array([-np.inf, np.log(4.0), 0.0])


@neg_inf
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("layout", ["rows", "columns"])
def test_logsumexp_over_an_all_minus_inf_axis_is_minus_inf_without_nan(layout, keepdims, dtype):
    x = NEG_INF_ROWS.astype(dtype)
    axis = 1
    if layout == "columns":
        x, axis = x.T, 0
    expected = NEG_INF_LSE if not keepdims else np.expand_dims(NEG_INF_LSE, axis)

    def lse(x):
        return dnp.logsumexp(x, axis=axis, keepdims=keepdims)

    for out in (lse(x), dp.vjp(lse, x)[0]):  # plain, and recorded on a tape
        assert not np.any(np.isnan(out)) and out.dtype == dtype
        np.testing.assert_allclose(out, expected, rtol=1e-6)


def test_logsumexp_gradient_of_rows_with_some_minus_inf_is_their_softmax():
    # Rows 1 and 2 have finite entries: their gradient is softmax, exactly 0 at -inf entries.
    x = NEG_INF_ROWS[1:]
    g = dp.grad(lambda x: dnp.sum(dnp.logsumexp(x, axis=1)))(x)
    np.testing.assert_allclose(g, [[0.25, 0.75], [0.0, 1.0]], rtol=1e-15)


@neg_inf
def test_logsumexp_of_all_minus_inf_vector_is_minus_inf():
    out = dnp.logsumexp(np.array([-np.inf, -np.inf, -np.inf]))
    assert out == -np.inf


# --- many short rows (reductions.short_rows: computed with the rows as columns) ----------------
SHORT_ROW_CASES = [  # (shape, axis, how the input is laid out)
    ((64, 10), 1, "C"), ((64, 10), -1, "F"), ((40, 3, 5), (1, 2), "C"), ((2, 40, 7), 2, "strided"),
    ((33, 2), 1, "C"), ((64, 10), 0, "C"), ((8, 10), 1, "C"), ((40, 17), 1, "C"),
]  # fmt: skip


def _laid_out(x, how):
    if how == "F":
        return np.asfortranarray(x)
    if how == "strided":
        wide = np.repeat(x, 2, axis=-1)
        return wide[..., ::2]
    return x


def _reference(name, x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    m[~np.isfinite(m)] = 0.0
    lse = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return {"logsumexp": lse, "log_softmax": x - lse, "softmax": np.exp(x - lse)}[name]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape, axis, how", SHORT_ROW_CASES)
@pytest.mark.parametrize("name", ["logsumexp", "log_softmax", "softmax"])
def test_many_short_rows_match_numpy_and_keep_the_layout(name, shape, axis, how, dtype):
    x = _laid_out(np.random.default_rng(3).normal(size=shape).astype(dtype) * 30, how)
    x[0] = -np.inf  # rows of -inf: logsumexp -inf, no NaN
    keep = {"keepdims": True} if name == "logsumexp" else {}
    with np.errstate(divide="ignore", invalid="ignore"):
        got = getattr(dnp, name)(x, axis=axis, **keep)
        want = _reference(name, x.astype(np.float64), axis)
    assert got.dtype == dtype and got.shape == want.shape and got.flags.c_contiguous
    rows = np.ones(shape, bool)
    rows[0] = False
    if name != "logsumexp":
        tol = 1e-5 if dtype == np.float32 else 1e-13
        np.testing.assert_allclose(got[rows], want[rows], rtol=tol, atol=tol)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == np.float32 else 1e-14)


@pytest.mark.parametrize("name", ["logsumexp", "log_softmax", "softmax"])
def test_many_short_rows_derivatives(name):
    x = np.random.default_rng(4).normal(size=(36, 3))
    w = np.random.default_rng(5).normal(size=(36, 3))
    f = dnp.logsumexp if name == "logsumexp" else getattr(dnp, name)
    dp.testing.check_grads(lambda x: dnp.sum(f(x, axis=1)[:, None] * w), (x,), order=2)


# --- sigmoid's left tail: relative accuracy, not just absolute ------------------------------
@no_overflow
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_sigmoid_left_tail_keeps_relative_accuracy(dtype):
    """sigmoid(x) = e^x / (1 + e^x) and sigmoid'(x) = e^x / (1 + e^x)^2, both computed from
    e^x without cancellation. 0.5 tanh(x / 2) + 0.5 (the old formula) gave exactly 0 below
    -37, so log(sigmoid(x)) was -inf there and softplus'(x) = sigmoid(x) was 0."""
    x = np.array([-30.0, -40.0, -60.0, -80.0] + ([-300.0, -700.0] if dtype == np.float64 else []),
                 dtype=dtype)  # fmt: skip
    tol = 1e-13 if dtype == np.float64 else 2e-7
    e = np.exp(x.astype(np.float64))
    exact, slope = e / (1.0 + e), e / (1.0 + e) ** 2
    np.testing.assert_allclose(dnp.sigmoid(x), exact, rtol=tol)
    np.testing.assert_allclose(dnp.log(dnp.sigmoid(x)), np.log(exact), rtol=tol)
    np.testing.assert_allclose(dp.grad(lambda x: dnp.sum(dnp.softplus(x)))(x), exact, rtol=tol)
    np.testing.assert_allclose(dp.grad(lambda x: dnp.sum(dnp.sigmoid(x)))(x), slope, rtol=tol)
    np.testing.assert_allclose(dp.jit(dnp.sigmoid)(x), exact, rtol=tol)
    np.testing.assert_allclose(dnp.sigmoid(-x), 1.0 / (1.0 + e), rtol=tol)  # the right tail


@no_overflow
def test_complex_sigmoid_far_left_is_finite():
    """sigmoid(z) = e^z / (1 + e^z) for Re z < 0: 1 / (1 + e^-z) overflowed to NaN below
    Re z = -709 (value and derivative); both are e^z there, up to rounding."""
    z = np.array([-800 + 1j, -710 - 2j, -40 + 0.5j, -1 + 1j, 0j, 2 - 3j, 800 + 1j])
    want = 1 / (1 + np.exp(-z[2:-1]))
    got = dnp.sigmoid(z)
    np.testing.assert_array_equal(got[:2], np.exp(z[:2]))
    np.testing.assert_allclose(got[2:-1], want, rtol=1e-15)
    assert got[-1] == 1.0
    slope = dp.grad(lambda z: dnp.sigmoid(z), holomorphic=True)
    np.testing.assert_allclose([slope(v) for v in z[:2]], np.exp(z[:2]), rtol=1e-15)
    dp.testing.check_grads(lambda z: dnp.sigmoid(z), (z[2:],), order=2)
