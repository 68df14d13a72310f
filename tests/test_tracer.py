"""Tracers behave like NumPy arrays inside dp.grad / dp.vjp / dp.jvp.

Covers the operators (with tracers, Python floats, NumPy scalars and NumPy arrays on either
side), comparisons (constants, plain NumPy booleans), indexing (basic, advanced with repeats,
boolean), attributes and methods, the concrete conversions that let Python control flow run,
NumPy's dispatch protocols, and the errors for what is refused (unsupported NumPy functions,
np.asarray, item assignment, hashing). Values and derivatives are compared with closed forms.
"""

from __future__ import annotations

import operator
from collections.abc import Hashable

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.testing import check_grads
from diffprog.core.trace import Tracer

X = np.array([0.5, -1.5, 2.0])  # a vector with both signs, no zeros
P = np.array([0.5, 1.5, 2.0])  # positive: a base for real powers and logarithms
C = np.array([2.0, 3.0, 0.5])  # a constant NumPy array operand
M = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # a 2 x 3 matrix, distinct entries
LN2 = np.log(2.0)


def assert_derivatives(f, x, value, jac):
    """f(x) == value, and both modes agree with the Jacobian `jac` (out.size x x.size).

    Reverse mode gives J^T u and forward mode J v for fixed, non-trivial u and v.
    """
    value = np.asarray(value, dtype=float)
    jac = np.asarray(jac, dtype=float).reshape(value.size, np.size(x))
    u = np.linspace(1.0, 2.0, value.size).reshape(value.shape)
    v = np.linspace(-1.0, 0.5, np.size(x)).reshape(np.shape(x))

    out, vjp_fn = dp.vjp(f, x)
    np.testing.assert_allclose(out, value, rtol=1e-13)
    (adjoint,) = vjp_fn(u)
    assert adjoint.shape == np.shape(x) and adjoint.dtype == np.asarray(x).dtype
    np.testing.assert_allclose(adjoint, (jac.T @ u.ravel()).reshape(np.shape(x)), rtol=1e-13)

    out, tangent = dp.jvp(f, (x,), (v,))
    np.testing.assert_allclose(out, value, rtol=1e-13)
    np.testing.assert_allclose(tangent, (jac @ v.ravel()).reshape(value.shape), rtol=1e-13)


# --- arithmetic operators --------------------------------------------------------------------
# name -> (f, x, value, elementwise derivative)
ELEMENTWISE = {
    "x + float": (lambda x: x + 2.0, X, X + 2.0, np.ones(3)),
    "float + x": (lambda x: 2.0 + x, X, 2.0 + X, np.ones(3)),
    "x - float": (lambda x: x - 2.0, X, X - 2.0, np.ones(3)),
    "float - x": (lambda x: 2.0 - x, X, 2.0 - X, -np.ones(3)),
    "x * float": (lambda x: x * 3.0, X, 3.0 * X, np.full(3, 3.0)),
    "float * x": (lambda x: 3.0 * x, X, 3.0 * X, np.full(3, 3.0)),
    "int * x": (lambda x: 3 * x, X, 3.0 * X, np.full(3, 3.0)),
    "x / float": (lambda x: x / 4.0, X, X / 4.0, np.full(3, 0.25)),
    "float / x": (lambda x: 4.0 / x, X, 4.0 / X, -4.0 / X**2),
    "np.float64 * x": (lambda x: np.float64(2.0) * x, X, 2.0 * X, np.full(3, 2.0)),
    "np.float64 + x": (lambda x: np.float64(2.0) + x, X, 2.0 + X, np.ones(3)),
    "np.float64 - x": (lambda x: np.float64(2.0) - x, X, 2.0 - X, -np.ones(3)),
    "np.float64 / x": (lambda x: np.float64(2.0) / x, X, 2.0 / X, -2.0 / X**2),
    "np.ones(3) * x": (lambda x: np.ones(3) * x, X, X, np.ones(3)),
    "np.ones(3) + x": (lambda x: np.ones(3) + x, X, 1.0 + X, np.ones(3)),
    "array * x": (lambda x: C * x, X, C * X, C),
    "array - x": (lambda x: C - x, X, C - X, -np.ones(3)),
    "array / x": (lambda x: C / x, X, C / X, -C / X**2),
    "x * array": (lambda x: x * C, X, C * X, C),
    "x / array": (lambda x: x / C, X, X / C, 1.0 / C),
    "-x": (lambda x: -x, X, -X, -np.ones(3)),
    "+x": (lambda x: +x, X, X, np.ones(3)),
    "abs(x)": (lambda x: abs(x), X, np.abs(X), np.sign(X)),
    "x * x": (lambda x: x * x, X, X**2, 2.0 * X),
    "x ** 2": (lambda x: x**2, X, X**2, 2.0 * X),
    "x ** 3": (lambda x: x**3, X, X**3, 3.0 * X**2),
    "x ** 0": (lambda x: x**0, X, np.ones(3), np.zeros(3)),
    "x ** -1": (lambda x: x**-1, X, 1.0 / X, -1.0 / X**2),
    "x ** 0.5": (lambda x: x**0.5, P, np.sqrt(P), 0.5 / np.sqrt(P)),
    "x ** array": (lambda x: x**C, P, P**C, C * P ** (C - 1.0)),
    "2.0 ** x": (lambda x: 2.0**x, X, 2.0**X, 2.0**X * LN2),
    "np.float64 ** x": (lambda x: np.float64(2.0) ** x, X, 2.0**X, 2.0**X * LN2),
    "array ** x": (lambda x: C**x, X, C**X, C**X * np.log(C)),
}  # fmt: skip


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_operator_values_and_derivatives(name):
    f, x, value, d = ELEMENTWISE[name]
    assert_derivatives(f, x, value, np.diag(d))


@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_operator_returns_a_tracer(name):
    """Whichever side the constant is on, the result is recorded (a tracer), never a bare
    NumPy array that has silently dropped the derivative."""
    f, x, _, _ = ELEMENTWISE[name]
    seen = []
    dp.grad(lambda x: (seen.append(f(x)), dnp.sum(f(x)))[1])(x)
    assert isinstance(seen[0], Tracer)


# name -> (f(x, y), value, d/dx, d/dy), at x = P, y = C (elementwise)
BINARY = {
    "x + y": (operator.add, P + C, np.ones(3), np.ones(3)),
    "x - y": (operator.sub, P - C, np.ones(3), -np.ones(3)),
    "x * y": (operator.mul, P * C, C, P),
    "x / y": (operator.truediv, P / C, 1.0 / C, -P / C**2),
    "x ** y": (operator.pow, P**C, C * P ** (C - 1.0), P**C * np.log(P)),
}


@pytest.mark.parametrize("name", list(BINARY))
def test_operator_between_two_tracers_differentiates_both_sides(name):
    f, value, dx, dy = BINARY[name]
    out, (gx, gy) = dp.value_and_grad(lambda x, y: dnp.sum(f(x, y)), argnums=(0, 1))(P, C)
    np.testing.assert_allclose(out, value.sum(), rtol=1e-13)
    np.testing.assert_allclose(gx, dx, rtol=1e-13)
    np.testing.assert_allclose(gy, dy, rtol=1e-13)


MATMUL = {
    # name -> (f, x, value, Jacobian)
    "matrix @ tracer": (lambda x: M @ x, X, M @ X, M),
    "tracer @ matrix": (lambda x: x @ M.T, X, X @ M.T, M),
    "tracer @ tracer": (lambda x: x @ x, X, X @ X, 2.0 * X[None, :]),
    "vector @ tracer matrix": (lambda w: C[:2] @ w, M, C[:2] @ M, np.kron(C[:2], np.eye(3))),
    "tracer matrix @ vector": (lambda w: w @ C, M, M @ C, np.kron(np.eye(2), C)),
}  # fmt: skip


@pytest.mark.parametrize("name", list(MATMUL))
def test_matmul_operator_values_and_derivatives(name):
    f, x, value, jac = MATMUL[name]
    assert_derivatives(f, x, value, jac)


def test_operators_on_numpy_operands_compose_to_second_order():
    def f(x):
        y = np.float64(0.5) * x**3 - np.ones(3) / (1.0 + x * x) + C * abs(x)
        return dnp.sum(M @ (2.0**y) + (-y) @ M.T)

    dp.testing.check_grads(f, (X,), order=2)


# --- comparisons -----------------------------------------------------------------------------
COMPARISONS = [operator.lt, operator.le, operator.gt, operator.ge, operator.eq, operator.ne]
OPERANDS = {
    "tracer vs float": (lambda x: x, lambda x: 0.5),
    "float vs tracer": (lambda x: 0.5, lambda x: x),
    "numpy scalar vs tracer": (lambda x: np.float64(0.5), lambda x: x),
    "tracer vs array": (lambda x: x, lambda x: C - 2.5),
    "array vs tracer": (lambda x: C - 2.5, lambda x: x),
    "tracer vs tracer": (lambda x: x, lambda x: x * x - 1.0),
}


def _run_in(mode, f, x):
    """Run f on x's tracer under the transform `mode` (the result itself is not used)."""
    if mode == "grad":
        dp.grad(lambda x: (f(x), dnp.sum(x))[1])(x)
    elif mode == "jvp":
        dp.jvp(lambda x: (f(x), x)[1], (x,), (np.ones_like(x),))
    else:  # grad of grad: the inner tracer's value is itself an outer tracer
        dp.grad(lambda x: dnp.sum(dp.grad(lambda y: (f(y), dnp.sum(y**3))[1])(x)))(x)


@pytest.mark.parametrize("mode", ["grad", "jvp", "grad of grad"])
@pytest.mark.parametrize("operands", list(OPERANDS))
@pytest.mark.parametrize("op", COMPARISONS, ids=lambda op: op.__name__)
def test_comparison_returns_a_plain_numpy_bool_array(op, operands, mode):
    left, right = OPERANDS[operands]
    seen = []
    _run_in(mode, lambda x: seen.append(op(left(x), right(x))), X)
    expected = op(left(X), right(X))
    assert type(seen[0]) is np.ndarray and seen[0].dtype == np.bool_
    np.testing.assert_array_equal(seen[0], expected)


def test_comparison_carries_no_gradient():
    # (x > 0) is a constant mask: d/dx sum(x * mask) = mask, and sum(mask * 1.0) is constant.
    np.testing.assert_array_equal(dp.grad(lambda x: dnp.sum(x * (x > 0)))(X), [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(dp.grad(lambda x: dnp.sum((x > 0) * 1.0))(X), np.zeros(3))
    g = dp.grad(lambda x: dnp.sum((x > 0) * 1.0) + 0.0 * dnp.sum(x))(X)
    np.testing.assert_array_equal(g, np.zeros(3))


def test_comparison_mask_in_where_selects_the_branch_gradient():
    value, g = dp.value_and_grad(lambda x: dnp.sum(dnp.where(x > 0, x**2, 3.0 * x)))(X)
    np.testing.assert_allclose(value, 0.25 - 4.5 + 4.0)
    np.testing.assert_allclose(g, [1.0, 3.0, 4.0])


@pytest.mark.parametrize("x, value, derivative", [(2.0, 4.0, 4.0), (-2.0, -6.0, 3.0)])
def test_comparison_in_python_if_picks_the_branch(x, value, derivative):
    def f(x):
        if x > 0:
            return x**2
        return 3.0 * x

    assert dp.value_and_grad(f)(x) == (value, derivative)


# --- indexing --------------------------------------------------------------------------------
A3 = np.arange(24.0).reshape(2, 3, 4) - 10.0  # both signs, distinct
MASK_ROWS = np.array([True, False, True])
INDEXES = {
    "int": (X, 1),
    "negative int": (X, -1),
    "numpy int": (X, np.int64(2)),
    "slice": (X, slice(1, None)),
    "negative step": (X, slice(None, None, -1)),
    "negative step 3-d": (A3, (slice(None), slice(None, None, -2), slice(3, 0, -1))),
    "ints and slices": (A3, (1, slice(None, None, -1), -1)),
    "None": (A3, (None, 0, None)),
    "Ellipsis": (A3, (Ellipsis, 2)),
    "Ellipsis, None, int": (A3, (1, Ellipsis, None, -1)),
    "list with repeats": (X, [0, 0, 1]),
    "array with repeats": (X, np.array([2, 0, 2, 2])),
    "2-d index array with repeats": (X, np.array([[0, 0], [2, 0]])),
    "paired index arrays with repeats": (M, ([0, 0, 1], [1, 1, 2])),
    "advanced and slice": (A3, (np.array([1, 1, 0]), slice(1, 3))),
    "bool array": (X, np.array([True, False, True])),
    "bool list": (X, [True, False, True]),
    "bool mask of the same shape": (M, M > 2.5),
    "bool rows and slice": (np.arange(12.0).reshape(3, 4), (MASK_ROWS, slice(1, None))),
}  # fmt: skip


def _scatter_add(shape, index, g):
    """NumPy's own definition of the adjoint of x[index]: g added back, repeats accumulating."""
    out = np.zeros(shape)
    np.add.at(out, index, g)
    return out


@pytest.mark.parametrize("name", list(INDEXES))
def test_indexing_values_and_gradient(name):
    x, index = INDEXES[name]
    expected = x[index]
    g = np.arange(1.0, np.size(expected) + 1).reshape(np.shape(expected))
    out, vjp_fn = dp.vjp(lambda x: x[index], x)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(vjp_fn(g)[0], _scatter_add(x.shape, index, g))
    _, tangent = dp.jvp(lambda x: x[index], (x,), (x * 2.0,))
    np.testing.assert_array_equal(tangent, 2.0 * expected)


def test_repeated_indices_accumulate_the_gradient():
    np.testing.assert_array_equal(dp.grad(lambda x: dnp.sum(x[[0, 0, 1]]))(X), [2.0, 1.0, 0.0])


def test_mask_computed_from_the_tracer_selects_and_differentiates():
    value, g = dp.value_and_grad(lambda x: dnp.sum(x[x > 0] ** 2))(X)
    assert value == 0.25 + 4.0
    np.testing.assert_array_equal(g, [1.0, 0.0, 4.0])
    g = dp.grad(lambda w: dnp.sum(w[w > 2.5] * 2.0))(M)
    np.testing.assert_array_equal(g, [[0.0, 0.0, 2.0], [2.0, 2.0, 2.0]])


def test_integer_array_computed_from_the_tracer_is_a_constant_index():
    # x.astype(int) is a constant: indexing with it differentiates x only through x[...].
    g = dp.grad(lambda x: dnp.sum(x[(x * 0.0 + 1.0).astype(int)]))(X)
    np.testing.assert_array_equal(g, [0.0, 3.0, 0.0])


@pytest.mark.parametrize(
    "f",
    [lambda x, y: x[y], lambda x, y: x[x], lambda x, y: x[(0 * x).clip(0.0, 1.0)],
     lambda x, y: x[None, y]],
    ids=["traced float argument", "the tracer itself", "computed float", "in a tuple"],
)  # fmt: skip
def test_traced_float_array_as_index_raises_index_error(f):
    with pytest.raises(IndexError, match="integer or boolean"):
        dp.grad(lambda x, y: dnp.sum(f(x, y)), argnums=(0, 1))(X, np.array([0.0, 1.0]))


# --- attributes and iteration ----------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", [(), (3,), (2, 3), (2, 3, 4)], ids=str)
@pytest.mark.parametrize("mode", ["grad", "jvp", "grad of grad"])
def test_attributes_match_the_primal(mode, shape, dtype):
    x = np.ones(shape, dtype=dtype)
    seen = []
    _run_in(mode, lambda t: seen.append((t.shape, t.ndim, t.dtype, t.size)), x)
    assert seen == [(shape, len(shape), np.dtype(dtype), x.size)]


def test_len_is_the_first_axis_and_refused_on_a_scalar():
    seen = []
    dp.grad(lambda x: (seen.append(len(x)), dnp.sum(x))[1])(M)
    assert seen == [2]
    with pytest.raises(TypeError, match="len"):
        dp.grad(lambda x: len(x))(1.0)


def test_iteration_yields_rows_with_their_gradients():
    def f(w):
        rows = list(w)
        assert len(rows) == 2 and all(isinstance(r, Tracer) for r in rows)
        return sum((i + 1.0) * dnp.sum(row**2) for i, row in enumerate(w))

    value, g = dp.value_and_grad(f)(M)
    np.testing.assert_allclose(value, 14.0 + 2.0 * 77.0)
    np.testing.assert_allclose(g, 2.0 * M * np.array([[1.0], [2.0]]))


def axis_permutation_jacobian(shape, perm):
    """The Jacobian of x -> x.transpose(perm) for x of `shape`: a permutation matrix."""
    n, k = int(np.prod(shape)), len(shape)
    return np.eye(n).reshape(shape + shape).transpose(*perm, *range(k, 2 * k)).reshape(n, n)


@pytest.mark.parametrize(
    "f, x, perm",
    [(lambda w: w.T, M, (1, 0)), (lambda w: w.mT, M, (1, 0)), (lambda a: a.T, A3, (2, 1, 0)),
     (lambda a: a.mT, A3, (0, 2, 1)), (lambda x: x.T, X, (0,))],
    ids=["matrix.T", "matrix.mT", "3-d .T", "3-d .mT", "vector .T"],
)  # fmt: skip
def test_transpose_attributes(f, x, perm):
    assert_derivatives(f, x, x.transpose(perm), axis_permutation_jacobian(x.shape, perm))


# --- methods ---------------------------------------------------------------------------------
ONE_HOT_MAX = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
# name -> (f, value, cotangent, adjoint), all at M = [[1, 2, 3], [4, 5, 6]]
METHODS = {
    "sum()": (lambda w: w.sum(), 21.0, 2.0, np.full((2, 3), 2.0)),
    "sum(axis=0)": (lambda w: w.sum(axis=0), [5.0, 7.0, 9.0], np.array([1.0, 2.0, 3.0]),
                    [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]),
    "sum(1)": (lambda w: w.sum(1), [6.0, 15.0], np.array([1.0, 2.0]),
               [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]),
    "sum(axis=1, keepdims=True)": (lambda w: w.sum(axis=1, keepdims=True), [[6.0], [15.0]],
                                   np.array([[1.0], [2.0]]), [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]),
    "sum(axis=(0, 1))": (lambda w: w.sum(axis=(0, 1)), 21.0, 3.0, np.full((2, 3), 3.0)),
    "mean()": (lambda w: w.mean(), 3.5, 6.0, np.ones((2, 3))),
    "mean(axis=1)": (lambda w: w.mean(axis=1), [2.0, 5.0], np.array([3.0, 6.0]),
                     [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]),
    "mean(axis=0, keepdims=True)": (lambda w: w.mean(axis=0, keepdims=True), [[2.5, 3.5, 4.5]],
                                    np.array([[2.0, 4.0, 6.0]]),
                                    [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]]),
    "max()": (lambda w: w.max(), 6.0, 1.0, ONE_HOT_MAX),
    "max(axis=0)": (lambda w: w.max(axis=0), [4.0, 5.0, 6.0], np.array([1.0, 2.0, 3.0]),
                    [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]),
    "max(axis=1, keepdims=True)": (lambda w: w.max(axis=1, keepdims=True), [[3.0], [6.0]],
                                   np.array([[1.0], [2.0]]), [[0.0, 0.0, 1.0], [0.0, 0.0, 2.0]]),
    "min()": (lambda w: w.min(), 1.0, 1.0, ONE_HOT_MAX[::-1, ::-1]),
    "min(axis=1)": (lambda w: w.min(axis=1), [1.0, 4.0], np.array([1.0, 2.0]),
                    [[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]]),
    "reshape(3, 2)": (lambda w: w.reshape(3, 2), M.reshape(3, 2), np.arange(6.0).reshape(3, 2),
                      np.arange(6.0).reshape(2, 3)),
    "reshape((3, 2))": (lambda w: w.reshape((3, 2)), M.reshape(3, 2), np.arange(6.0).reshape(3, 2),
                        np.arange(6.0).reshape(2, 3)),
    "ravel().reshape(2, 3)": (lambda w: w.ravel().reshape(2, 3), M, np.arange(6.0).reshape(2, 3),
                              np.arange(6.0).reshape(2, 3)),
    "reshape(-1, 2)": (lambda w: w.reshape(-1, 2), M.reshape(3, 2), np.arange(6.0).reshape(3, 2),
                       np.arange(6.0).reshape(2, 3)),
    "ravel()": (lambda w: w.ravel(), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], np.arange(6.0),
                np.arange(6.0).reshape(2, 3)),
    "transpose()": (lambda w: w.transpose(), M.T, np.arange(6.0).reshape(3, 2),
                    np.arange(6.0).reshape(3, 2).T),
    "transpose(1, 0)": (lambda w: w.transpose(1, 0), M.T, np.arange(6.0).reshape(3, 2),
                        np.arange(6.0).reshape(3, 2).T),
    "transpose((1, 0))": (lambda w: w.transpose((1, 0)), M.T, np.arange(6.0).reshape(3, 2),
                          np.arange(6.0).reshape(3, 2).T),
    "dot(vector)": (lambda w: w.dot(np.array([1.0, 0.0, -1.0])), [-2.0, -2.0], np.array([1.0, 2.0]),
                    [[1.0, 0.0, -1.0], [2.0, 0.0, -2.0]]),
    "row.dot(row)": (lambda w: w[0].dot(w[1]), 32.0, 1.0, [[4.0, 5.0, 6.0], [1.0, 2.0, 3.0]]),
    "clip(1.5, 4.5)": (lambda w: w.clip(1.5, 4.5), [[1.5, 2.0, 3.0], [4.0, 4.5, 4.5]],
                       np.arange(1.0, 7.0).reshape(2, 3), [[0.0, 2.0, 3.0], [4.0, 0.0, 0.0]]),
    "clip(min=1.5, max=4.5)": (lambda w: w.clip(min=1.5, max=4.5),
                               [[1.5, 2.0, 3.0], [4.0, 4.5, 4.5]],
                               np.arange(1.0, 7.0).reshape(2, 3),
                               [[0.0, 2.0, 3.0], [4.0, 0.0, 0.0]]),
    "astype(np.float64)": (lambda w: w.astype(np.float64), M, np.ones((2, 3)), np.ones((2, 3))),
}  # fmt: skip


@pytest.mark.parametrize("name", list(METHODS))
def test_method_values_and_gradient(name):
    f, value, cotangent, adjoint = METHODS[name]
    out, vjp_fn = dp.vjp(f, M)
    np.testing.assert_allclose(out, value, rtol=1e-14)
    assert np.shape(out) == np.shape(value)
    np.testing.assert_allclose(vjp_fn(cotangent)[0], adjoint, rtol=1e-14)


def test_astype_float32_rounds_the_value_and_returns_a_float64_gradient():
    x = np.array([1.0 + 1e-12, 2.0, -3.0])  # sums to 1e-12 in float64, to 0 in float32
    seen = []

    def f(x):
        y = x.astype(np.float32)
        seen.append((isinstance(y, Tracer), y.dtype))
        return dnp.sum(3.0 * y)

    value, g = dp.value_and_grad(f)(x)
    assert seen == [(True, np.dtype(np.float32))]
    assert value == np.float32(0.0) and value.dtype == np.float32
    assert g.dtype == np.float64
    np.testing.assert_array_equal(g, [3.0, 3.0, 3.0])
    _, tangent = dp.jvp(lambda x: x.astype(np.float32), (x,), (np.array([1.0, 2.0, 3.0]),))
    assert tangent.dtype == np.float32
    np.testing.assert_array_equal(tangent, [1.0, 2.0, 3.0])


@pytest.mark.parametrize("dtype", [int, np.int32, bool])
def test_astype_to_a_non_float_dtype_is_a_constant(dtype):
    x = np.array([0.5, 1.5, 2.5])
    seen = []

    def f(x):
        k = x.astype(dtype)
        seen.append(k)
        return dnp.sum(x * k)

    g = dp.grad(f)(x)
    assert type(seen[0]) is np.ndarray and seen[0].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(seen[0], x.astype(dtype))
    np.testing.assert_array_equal(g, x.astype(dtype))  # d/dx (x * k) = k, k constant


def test_item_gives_a_python_number():
    """Of a constant: x.item() of a recorded value is refused (see test_edges_core.py)."""
    seen = []
    dp.grad(lambda w: (seen.append(dp.stop_gradient(w)[1, 2].item()), dnp.sum(w))[1])(M)
    assert seen == [6.0] and type(seen[0]) is float


# --- concrete values drive Python control flow ----------------------------------------------
def doubling_loop(x):
    while x < 100:
        x = x * 2
    return x


@pytest.mark.parametrize("x, value, derivative", [(3.0, 192.0, 64.0), (0.75, 192.0, 256.0),
                                                  (150.0, 150.0, 1.0)])  # fmt: skip
def test_while_loop_on_float_of_the_tracer(x, value, derivative):
    out, g = dp.value_and_grad(doubling_loop)(x)
    assert (out, g) == (value, derivative)
    assert dp.jvp(doubling_loop, (x,), (1.0,)) == (value, derivative)


def power(x, n):
    """x ** n by recursion."""
    return 1.0 if n == 0 else x * power(x, n - 1)


@pytest.mark.parametrize("n", [1, 2, 5])
def test_recursion_differentiates_through_every_level(n):
    out, g = dp.value_and_grad(power)(1.5, n)
    np.testing.assert_allclose([out, g], [1.5**n, n * 1.5 ** (n - 1)], rtol=1e-15)
    np.testing.assert_allclose(dp.grad(dp.grad(power))(1.5, n), n * (n - 1) * 1.5 ** max(n - 2, 0))


def halve_until_small(x):
    """Recursion steered by the tracer's value: each halving multiplies the slope by 3/2."""
    return x if bool(abs(x) < 1.0) else 3.0 * halve_until_small(x / 2.0)


def test_recursion_steered_by_the_tracer_value():
    # 12 -> 6 -> 3 -> 1.5 -> 0.75: four levels, value 3**4 * 12 / 2**4, slope (3/2)**4
    out, g = dp.value_and_grad(halve_until_small)(12.0)
    np.testing.assert_allclose([out, g], [81.0 * 0.75, 1.5**4], rtol=1e-15)


def sum_sign_branch(x):
    if x.sum() > 0:
        return dnp.sum(x**2)
    return dnp.sum(x**3)


@pytest.mark.parametrize("x, value, gradient", [(X, 6.5, 2.0 * X), (-X, -(X**3).sum(), 3.0 * X**2)])
def test_if_on_the_sum_of_the_tracer(x, value, gradient):
    out, g = dp.value_and_grad(sum_sign_branch)(x)
    np.testing.assert_allclose(out, value, rtol=1e-15)
    np.testing.assert_allclose(g, gradient, rtol=1e-15)


@pytest.mark.parametrize("mode", ["grad", "jvp", "grad of grad"])
def test_bool_float_int_give_python_values(mode):
    seen = []

    def probe(x):  # float(x) of a recorded value is refused: see test_edges_core.py
        seen.append((bool(x), float(dp.stop_gradient(x)), int(x), bool(x * 0.0)))

    _run_in(mode, probe, np.float64(2.75))
    assert seen == [(True, 2.75, 2, False)]
    assert [type(v) for v in seen[0]] == [bool, float, int, bool]


def test_bool_of_a_multi_element_tracer_is_ambiguous_like_numpy():
    with pytest.raises(ValueError, match="ambiguous"):
        dp.grad(lambda x: dnp.sum(x) if x else 0.0)(X)


# --- NumPy's functions called on tracers -----------------------------------------------------
# name -> (f, x, value, cotangent, adjoint)
NUMPY_DISPATCH = {
    "np.exp": (np.exp, X, np.exp(X), C, C * np.exp(X)),
    "np.sin": (np.sin, X, np.sin(X), C, C * np.cos(X)),
    "np.sum(axis=0)": (lambda w: np.sum(w, axis=0), M, [5.0, 7.0, 9.0], C,
                       np.stack([C, C])),
    "np.sum(axis=1, keepdims=True)": (lambda w: np.sum(w, axis=1, keepdims=True), M,
                                      [[6.0], [15.0]], np.array([[1.0], [2.0]]),
                                      [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]),
    "np.mean": (np.mean, M, 3.5, 6.0, np.ones((2, 3))),
    "np.maximum(x, 0)": (lambda x: np.maximum(x, 0), X, [0.5, 0.0, 2.0], C, [2.0, 0.0, 0.5]),
    "np.maximum(x, 0.0)": (lambda x: np.maximum(x, 0.0), X, [0.5, 0.0, 2.0], C, [2.0, 0.0, 0.5]),
    "np.concatenate([x, x])": (lambda x: np.concatenate([x, x]), X, np.concatenate([X, X]),
                               np.arange(6.0), [3.0, 5.0, 7.0]),
    "np.concatenate(axis=1)": (lambda w: np.concatenate([w, 2.0 * w], axis=1), M,
                               np.concatenate([M, 2.0 * M], axis=1), np.ones((2, 6)),
                               np.full((2, 3), 3.0)),
    "np.where(x > 0, x, 0)": (lambda x: np.where(x > 0, x, 0), X, [0.5, 0.0, 2.0], C,
                              [2.0, 0.0, 0.5]),
    "np.matmul(matrix, x)": (lambda x: np.matmul(M, x), X, M @ X, np.array([1.0, 2.0]),
                             [9.0, 12.0, 15.0]),
    "np.matmul(x, x)": (lambda x: np.matmul(x, x), X, X @ X, 2.0, 4.0 * X),
    "np.dot(w, w.T)": (lambda w: np.dot(w, w.T), M, M @ M.T, np.eye(2), 2.0 * M),
    "np.transpose": (np.transpose, M, M.T, np.arange(6.0).reshape(3, 2),
                     np.arange(6.0).reshape(3, 2).T),
    "np.reshape(w, (3, 2))": (lambda w: np.reshape(w, (3, 2)), M, M.reshape(3, 2),
                              np.arange(6.0).reshape(3, 2), np.arange(6.0).reshape(2, 3)),
    "np.reshape(w, shape=(3, 2))": (lambda w: np.reshape(w, shape=(3, 2)), M, M.reshape(3, 2),
                                    np.arange(6.0).reshape(3, 2), np.arange(6.0).reshape(2, 3)),
    "np.clip(x, -1.0, 1.0)": (lambda x: np.clip(x, -1.0, 1.0), X, [0.5, -1.0, 1.0], C,
                              [2.0, 0.0, 0.0]),
    "np.clip(x, min=-1.0, max=1.0)": (lambda x: np.clip(x, min=-1.0, max=1.0), X,
                                      [0.5, -1.0, 1.0], C, [2.0, 0.0, 0.0]),
}  # fmt: skip


@pytest.mark.parametrize("name", list(NUMPY_DISPATCH))
def test_numpy_function_on_a_tracer_differentiates(name):
    f, x, value, cotangent, adjoint = NUMPY_DISPATCH[name]
    out, vjp_fn = dp.vjp(f, x)
    np.testing.assert_allclose(out, value, rtol=1e-14)
    np.testing.assert_allclose(vjp_fn(cotangent)[0], adjoint, rtol=1e-14)


UNSUPPORTED_FUNCTIONS = {
    "numpy.nanmedian": np.nanmedian,
    "numpy.unique": np.unique,
    "numpy.linalg.cond": np.linalg.cond,  # (a submodule function: its full name)
    "numpy.linalg.matrix_rank": np.linalg.matrix_rank,
}


@pytest.mark.parametrize("qualname", list(UNSUPPORTED_FUNCTIONS))
def test_unsupported_numpy_function_raises_naming_it(qualname):
    fn = UNSUPPORTED_FUNCTIONS[qualname]
    with pytest.raises(dp.TracerConversionError) as info:
        dp.grad(lambda x: dnp.sum(fn(x)))(X)
    message = str(info.value)
    assert f"{qualname} " in message  # the function's full name, not its module's
    assert "diffprog.numpy" in message


UNSUPPORTED_UFUNC_CALLS = {
    "numpy.multiply.outer": lambda x: np.multiply.outer(x, x),
    "numpy.maximum.accumulate": lambda x: np.maximum.accumulate(x),
    "numpy.add with where=": lambda x: np.add(x, x, where=x > 0),
    "numpy.add.reduce with dtype=": lambda x: np.add.reduce(x, dtype=np.float32),
    "numpy.logaddexp.reduce with initial=": lambda x: np.logaddexp.reduce(x, initial=1.0),
    "numpy.exp(..., out=a) with `a` a plain NumPy array": lambda x: np.exp(x, out=np.empty(3)),
}


@pytest.mark.parametrize("what", list(UNSUPPORTED_UFUNC_CALLS))
def test_unsupported_ufunc_call_raises_a_clear_error(what):
    with pytest.raises((dp.TracerConversionError, dp.UnsupportedKeywordError)) as info:
        dp.grad(lambda x: dnp.sum(UNSUPPORTED_UFUNC_CALLS[what](x)))(X)
    message = str(info.value)
    assert what in message and ("diffprog.numpy" in message or "return value" in message)


def _ufunc_methods(x, v):
    y = x * 1.0
    np.add.at(y, np.array([0, 0, 2]), v)  # unbuffered: the repeated index accumulates
    total = np.add.reduce(y * y, axis=0) + np.maximum.reduce(y) + np.minimum.reduce(y)
    out = y * 0.0
    np.multiply(y, v, out=out)  # out= naming a traced array rebinds it
    return total + np.sum(out)


def test_supported_ufunc_methods_match_numpy_and_differentiate():
    x, v = np.array([1.0, 2.0, 3.0]), np.array([0.5, 0.25, 1.0])
    y = x.copy()
    np.add.at(y, np.array([0, 0, 2]), v)
    expected = np.sum(y * y) + y.max() + y.min() + np.sum(y * v)
    assert dp.value_and_grad(_ufunc_methods)(x, v)[0] == pytest.approx(expected)
    check_grads(_ufunc_methods, (x, v), order=2)


def test_add_at_into_a_numpy_array_with_a_traced_value_is_refused():
    with pytest.raises(dp.TracerConversionError, match="numpy.add.at"):
        dp.grad(lambda x: np.add.at(np.zeros(3), [0, 0], x[0]))(X)


@pytest.mark.parametrize("convert", [np.asarray, np.array, np.asanyarray], ids=lambda f: f.__name__)
@pytest.mark.parametrize("mode", ["grad", "jvp", "grad of grad"])
def test_converting_a_tracer_to_a_numpy_array_is_refused(mode, convert):
    with pytest.raises(dp.TracerConversionError, match="leave the tape"):
        _run_in(mode, convert, X)


# --- item assignment ---------------------------------------------------------------------------
@pytest.mark.parametrize("index", [0, slice(0, 2), np.array([True, False, True]), (Ellipsis, 1),
                                   np.array([2, 0, 2])],
                         ids=["int", "slice", "mask", "ellipsis", "repeated"])  # fmt: skip
def test_item_assignment_is_recorded_like_numpy(index):
    def f(x, v):
        y = x * 1.0
        y[index] = v * 3.0
        return y

    x, v = np.arange(1.0, 7.0).reshape(3, 2), 0.5
    expected = x.copy()
    expected[index] = v * 3.0
    np.testing.assert_array_equal(f(x, v), expected)
    # traced: the same values, and gradients checked to second order in both modes
    np.testing.assert_array_equal(dp.vjp(f, x, v)[0], expected)
    check_grads(f, (x, v), order=2)


def test_repeated_indices_last_write_wins_and_alone_gets_gradient():
    def f(v):
        y = 0.0 * v  # a traced buffer
        y[np.array([1, 1, 0])] = v
        return y

    v = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(dp.vjp(f, v)[0], [3.0, 2.0, 0.0])
    g = dp.grad(lambda v: dnp.sum(f(v) * np.array([10.0, 100.0, 1000.0])))(v)
    np.testing.assert_array_equal(g, [0.0, 100.0, 10.0])


def test_augmented_assignment_adds_once_like_numpy():
    def f(x):
        x[np.array([0, 0, 1])] += 1.0  # NumPy adds once per distinct index
        return x * x

    x = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(dp.vjp(f, x)[0], [4.0, 9.0, 9.0])
    np.testing.assert_array_equal(dp.grad(lambda x: dnp.sum(f(x)))(x), [4.0, 6.0, 6.0])


def test_assignment_leaves_saved_values_intact():
    def f(x):
        y = dnp.exp(x)  # exp saves its output for the backward pass
        z = y * 1.0
        z[0] = 0.0
        return dnp.sum(y) + dnp.sum(z)

    x = np.array([0.5, 1.0])
    np.testing.assert_allclose(dp.grad(f)(x), [np.exp(0.5), 2 * np.exp(1.0)])


def test_writing_a_tracer_into_a_plain_numpy_array_explains_what_to_do():
    def f(x):
        buf = np.zeros(4)
        buf[:2] = x
        return buf

    with pytest.raises(dp.TracerConversionError, match="dnp.stack"):
        dp.grad(lambda x: f(x)[0])(np.ones(2))


@pytest.mark.parametrize("mode", ["grad", "jvp", "grad of grad"])
def test_tracers_are_unhashable(mode):
    seen = []

    def probe(x):
        seen.append(isinstance(x, Hashable))
        for use in (hash, lambda t: {t}, lambda t: {t: 1}):
            with pytest.raises(TypeError, match="unhashable"):
                use(x)

    _run_in(mode, probe, X)
    assert seen == [False]


@pytest.mark.parametrize("mode", ["grad", "jvp", "grad of grad"])
def test_repr_shows_the_type_and_the_value(mode):
    seen = []
    _run_in(mode, lambda x: seen.append((type(x).__name__, repr(x), str(x))), X)
    name, text, as_str = seen[0]
    assert text.startswith(name + "(") and "Tracer" in name
    assert repr(X) in text and repr(X) in as_str


def test_ndarray_methods_forward_to_the_functions():
    def f(x):
        y = x * 1.0
        y.sort()  # in place, as ndarray.sort: the tracer is rebound to the sorted copy
        return (y.cumsum() * y.var(ddof=1)).sum(axis=0) + x.prod() + x.std() + y.take([0, 0]).sum()

    x = np.array([3.0, 1.0, 2.0])
    y = np.sort(x)
    expected = (y.cumsum() * y.var(ddof=1)).sum(axis=0) + x.prod() + x.std() + y.take([0, 0]).sum()
    assert dp.value_and_grad(f)(x)[0] == pytest.approx(expected)
    check_grads(f, (x,), order=2)
    # argmax is a constant index: d/dx [argmax(x) * sum(x)] = argmax(x)
    np.testing.assert_array_equal(dp.grad(lambda x: x.argmax() * x.sum())(np.array([1.0, 3.0, 2.0])), [1.0] * 3)
