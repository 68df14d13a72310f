"""The derivatives diffprog gives where the function has none: kinks, ties, singular points
and the where-NaN trap. These are conventions (docs/reliability.md, "Kinks"), asserted as
exact values, so that any change of convention is caught here and documented on purpose.
Both modes are checked: reverse (grad) and forward (jvp) agree everywhere below, except for
the where-NaN case, where they differ as they do in JAX."""

from __future__ import annotations

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.testing import check_grads


def both_modes(f, *args):
    """(reverse-mode gradient, forward-mode derivatives one argument at a time)."""
    rev = dp.grad(f, argnums=tuple(range(len(args))))(*args)
    fwd = tuple(
        dp.jvp(f, args, tuple(1.0 if j == i else 0.0 for j in range(len(args))))[1]
        for i in range(len(args))
    )
    return rev, fwd


# --- one-argument kinks: the subgradient 0 --------------------------------------------------
@pytest.mark.parametrize("fn", [dnp.relu, dnp.abs, dnp.fabs, abs], ids=["relu", "abs", "fabs", "builtin abs"])
def test_kink_at_zero_has_derivative_zero(fn):
    assert both_modes(fn, 0.0) == ((0.0,), (0.0,))
    assert both_modes(fn, -0.0) == ((0.0,), (0.0,))


def test_relu_and_abs_around_zero_in_both_modes():
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_array_equal(dp.grad(lambda x: dnp.sum(dnp.relu(x)))(x), [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(dp.jvp(dnp.relu, (x,), (np.ones(3),))[1], [0.0, 0.0, 1.0])
    np.testing.assert_array_equal(dp.grad(lambda x: dnp.sum(dnp.abs(x)))(x), [-1.0, 0.0, 1.0])
    np.testing.assert_array_equal(dp.jvp(dnp.abs, (x,), (np.ones(3),))[1], [-1.0, 0.0, 1.0])
    assert dp.grad(dp.grad(dnp.relu))(0.0) == 0.0 and dp.grad(dp.grad(dnp.abs))(0.0) == 0.0
    assert dp.grad(lambda x: dnp.maximum(x, 0.0))(0.0) == 0.5  # relu spelled as a tie: 1/2


def test_complex_abs_and_sign_at_zero_have_derivative_zero():
    z = np.array([0j, 3 - 4j])
    np.testing.assert_allclose(dp.grad(lambda z: dnp.sum(dnp.abs(z)))(z), [0, 0.6 + 0.8j], atol=0)
    np.testing.assert_allclose(dp.jvp(dnp.abs, (z,), (np.ones(2) * (1 + 1j),))[1], [0, -0.2], atol=0)
    np.testing.assert_array_equal(dp.jvp(dnp.sign, (z,), (np.ones(2) * 1j,))[1][0], 0)
    assert dp.grad(lambda z: dnp.real(dnp.sign(z)))(0j) == 0
    assert dp.jvp(dp.grad(dnp.abs), (0j,), (1 + 1j,))[1] == 0  # second order


# --- ties: shared equally ----------------------------------------------------------------------
@pytest.mark.parametrize("fn", [dnp.maximum, dnp.minimum, dnp.fmax, dnp.fmin])
def test_binary_ties_split_half_and_half(fn):
    assert both_modes(fn, 1.0, 1.0) == ((0.5, 0.5), (0.5, 0.5))
    assert both_modes(fn, 2.0, 1.0)[0] == ((1.0, 0.0) if fn in (dnp.maximum, dnp.fmax) else (0.0, 1.0))


def test_binary_ties_with_broadcasting():
    g = dp.grad(lambda x: dnp.sum(dnp.maximum(x, np.array([[0.0], [1.0]]))))(np.array([0.0, 1.0]))
    np.testing.assert_array_equal(g, [0.5, 1.5])  # x[0] ties row 0; x[1] wins row 0, ties row 1


@pytest.mark.parametrize(
    "fn, x, expected",
    [
        (dnp.max, [1.0, 3.0, 3.0, 3.0], [0.0, 1 / 3, 1 / 3, 1 / 3]),
        (dnp.min, [1.0, 1.0, 3.0], [0.5, 0.5, 0.0]),
        (dnp.amax, [2.0, 2.0], [0.5, 0.5]),
        (dnp.ptp, [1.0, 1.0, 3.0], [-0.5, -0.5, 1.0]),
        (lambda x: x.max(), [5.0, 5.0, 5.0, 5.0], [0.25, 0.25, 0.25, 0.25]),
    ],
    ids=["max", "min", "amax", "ptp", "max method"],
)
def test_reduction_ties_split_equally(fn, x, expected):
    x = np.array(x)
    np.testing.assert_allclose(dp.grad(fn)(x), expected, rtol=1e-15)
    # forward mode: the mean of the tied entries' tangents
    t = np.arange(1.0, len(x) + 1)
    np.testing.assert_allclose(dp.jvp(fn, (x,), (t,))[1], np.dot(expected, t), rtol=1e-15)


def test_reduction_ties_along_an_axis():
    x = np.array([[1.0, 1.0], [2.0, 0.0]])
    np.testing.assert_array_equal(dp.grad(lambda x: dnp.sum(dnp.max(x, axis=1)))(x), [[0.5, 0.5], [1.0, 0.0]])


def test_sort_ties_follow_the_stable_order():
    """sort does not split ties: each tied value gets the slot of the stable argsort."""
    w = np.array([1.0, 2.0, 3.0])
    g = dp.grad(lambda x: dnp.sum(dnp.sort(x) * w))(np.array([2.0, 1.0, 2.0]))
    np.testing.assert_array_equal(g, [2.0, 1.0, 3.0])


# --- clip: inclusive bounds --------------------------------------------------------------------
@pytest.mark.parametrize(
    "x, expected",
    [(-1.0, (0.0, 1.0, 0.0)), (0.0, (1.0, 0.0, 0.0)), (0.5, (1.0, 0.0, 0.0)),
     (1.0, (1.0, 0.0, 0.0)), (2.0, (0.0, 0.0, 1.0))],
    ids=["below", "at lower", "inside", "at upper", "above"],
)  # fmt: skip
def test_clip_gradient_goes_to_x_on_the_closed_interval(x, expected):
    rev, fwd = both_modes(lambda x, lo, hi: dnp.clip(x, lo, hi), x, 0.0, 1.0)
    assert rev == expected and fwd == expected


def test_clip_one_sided_and_degenerate_interval():
    assert dp.grad(lambda x: dnp.clip(x, 0.0, None))(0.0) == 1.0
    assert dp.grad(lambda x: dnp.clip(x, None, 0.0))(0.0) == 1.0
    assert dp.grad(lambda x: dnp.clip(x, 0.0, 0.0))(0.0) == 1.0


def test_clip_with_crossed_bounds_differentiates_the_bound_returned():
    f = lambda x, lo, hi: dnp.clip(x, lo, hi)
    assert f(0.5, 1.0, 0.0) == 0.0  # NumPy: minimum(maximum(x, lo), hi) = hi
    assert dp.grad(f, argnums=(0, 1, 2))(0.5, 1.0, 0.0) == (0.0, 0.0, 1.0)


# --- singular points: inf, as in JAX and PyTorch -----------------------------------------------
@pytest.mark.parametrize(
    "fn, x, expected",
    [(dnp.sqrt, 0.0, np.inf), (lambda x: x**0.5, 0.0, np.inf), (dnp.cbrt, 0.0, np.inf),
     (dnp.log, 0.0, np.inf), (dnp.arcsin, 1.0, np.inf), (lambda x: 1.0 / x, 0.0, -np.inf)],
    ids=["sqrt", "pow 0.5", "cbrt", "log", "arcsin", "reciprocal"],
)  # fmt: skip
def test_infinite_slopes_give_inf(fn, x, expected):
    with np.errstate(divide="ignore", invalid="ignore"):  # NumPy warns: divide by zero
        assert dp.grad(fn)(x) == expected
        assert dp.jvp(fn, (x,), (1.0,))[1] == expected


def test_second_derivative_of_sqrt_at_zero():
    with np.errstate(divide="ignore", invalid="ignore"):
        assert dp.grad(dp.grad(dnp.sqrt))(0.0) == -np.inf


def test_powers_at_zero():
    assert dp.grad(lambda x: x**2)(0.0) == 0.0
    assert dp.grad(lambda x: x**1.0)(0.0) == 1.0
    assert dp.grad(lambda x: x**0.0)(0.0) == 0.0  # x**0 = 1 everywhere
    assert dp.grad(lambda y: dnp.power(0.0, y))(2.0) == 0.0  # 0**y log 0 taken as 0 for y > 0


@pytest.mark.parametrize(
    "fn, x",
    [(dnp.std, np.ones(3)), (dnp.linalg.norm, np.zeros(3)), (lambda x: dnp.hypot(x[0], x[1]), np.zeros(2))],
    ids=["std of a constant", "norm at 0", "hypot at 0"],
)  # fmt: skip
def test_square_root_kinks_of_norms_give_zero(fn, x):
    """std, norm and hypot take the subgradient 0 where their sqrt would give inf or NaN."""
    np.testing.assert_array_equal(dp.grad(fn)(x), np.zeros_like(x))


# --- the where-NaN trap and the safe idiom ---------------------------------------------------
def unsafe(x):
    return dnp.where(x > 0, dnp.sqrt(x), 0.0)


def safe(x):
    return dnp.where(x > 0, dnp.sqrt(dnp.where(x > 0, x, 1.0)), 0.0)


def test_where_nan_in_reverse_mode():
    """The branch not taken is still differentiated: sqrt'(-1) is NaN and 0 * NaN = NaN,
    in diffprog as in JAX and PyTorch. At x = 0 sqrt'(0) = inf gives NaN the same way."""
    with np.errstate(invalid="ignore", divide="ignore"):
        assert unsafe(-1.0) == 0.0
        assert np.isnan(dp.grad(unsafe)(-1.0))
        g = dp.grad(lambda x: dnp.sum(unsafe(x)))(np.array([-1.0, 0.0, 4.0]))
    assert np.isnan(g[0]) and np.isnan(g[1]) and g[2] == 0.25


def test_where_nan_forward_mode_selects_the_tangent():
    """Forward mode selects the tangent of the branch taken, so it gives 0, not NaN."""
    with np.errstate(invalid="ignore", divide="ignore"):
        assert dp.jvp(unsafe, (-1.0,), (1.0,))[1] == 0.0


def test_safe_where_idiom_gives_finite_correct_gradients():
    x = np.array([-1.0, 0.0, 4.0, 0.25])
    with np.errstate(all="raise"):  # nothing is even evaluated at a bad point
        np.testing.assert_array_equal(safe(x), [0.0, 0.0, 2.0, 0.5])
        g = dp.grad(lambda x: dnp.sum(safe(x)))(x)
        np.testing.assert_array_equal(g, [0.0, 0.0, 0.25, 1.0])
        np.testing.assert_array_equal(dp.jvp(safe, (x,), (np.ones(4),))[1], [0.0, 0.0, 0.25, 1.0])
        h = dp.grad(lambda x: dnp.sum(dp.grad(lambda y: dnp.sum(safe(y)))(x)))(x)
        np.testing.assert_array_equal(h, [0.0, 0.0, -1 / 32, -2.0])  # -x^(-3/2) / 4
    check_grads(lambda x: safe(x), (np.array([-1.0, 0.5, 4.0]),), order=2)


def test_where_with_log_has_the_same_trap():
    with np.errstate(invalid="ignore", divide="ignore"):
        assert np.isnan(dp.grad(lambda x: dnp.where(x > 0, dnp.log(x), 0.0))(0.0))
    assert dp.grad(lambda x: dnp.where(x > 0, dnp.log(dnp.where(x > 0, x, 1.0)), 0.0))(0.0) == 0.0
