"""Jacobians, Hessians and HVPs over pytrees, graph extension to third order, and the
absence of perturbation confusion in every nesting of the two modes."""

from __future__ import annotations

import math

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp

RNG = np.random.default_rng(0)
A = RNG.normal(size=(3, 3))


def test_jacobian_of_linear_map_is_the_matrix():
    x = RNG.normal(size=3)
    for jac in (dp.jacrev, dp.jacfwd, dp.jacobian):
        np.testing.assert_allclose(jac(lambda x: A @ x)(x), A)


def test_jacobian_nesting_output_outside_input_inside():
    def f(p, scale):
        return {"u": p["w"] * scale, "v": (dnp.sum(p["w"] * p["b"]), 7)}

    p = {"w": np.array([1.0, 2.0]), "b": np.array([[3.0, 4.0]]), "k": 3}
    for jac in (dp.jacrev, dp.jacfwd):
        J = jac(f)(p, 2.0)
        assert list(J) == ["u", "v"] and list(J["u"]) == ["w", "b", "k"]
        np.testing.assert_allclose(J["u"]["w"], 2.0 * np.eye(2))
        assert J["u"]["b"].shape == (2, 1, 2) and not J["u"]["b"].any()
        np.testing.assert_allclose(J["v"][0]["w"], [3.0, 4.0])
        np.testing.assert_allclose(J["v"][0]["b"], [[1.0, 2.0]])
        assert J["u"]["k"] is None and J["v"][1] == {"w": None, "b": None, "k": None}
        Jt = jac(f, argnums=(0, 1))(p, 2.0)
        assert isinstance(Jt["u"], tuple) and np.allclose(Jt["u"][1], [1.0, 2.0])


def test_jacrev_and_jacfwd_agree():
    def f(x, y):
        return dnp.tanh(x @ y) * dnp.sum(dnp.exp(x))

    x, y = RNG.normal(size=(2, 3)), RNG.normal(size=(3, 4))
    for n in (0, 1):
        np.testing.assert_allclose(dp.jacrev(f, n)(x, y), dp.jacfwd(f, n)(x, y), rtol=1e-12)


@pytest.mark.parametrize("x", [2.0, np.array(2.0), np.float64(2.0), np.float32(2.0)],
                         ids=["float", "0d", "float64", "float32"])
def test_scalar_jacobian_entries_have_the_input_leafs_type_in_both_modes(x):
    """As grad's adjoints do (jacfwd gave a NumPy scalar for a Python float or a 0-d array)."""
    outputs = [lambda x: x * 3.0, lambda x: dnp.asarray(x * 3.0), lambda x: np.float32(3.0) * x]
    for f in outputs:
        for jac in (dp.jacrev, dp.jacfwd, dp.hessian):
            d = jac(f)(x)
            assert type(d) is type(x) and getattr(d, "dtype", None) == getattr(x, "dtype", None)
    nested = dp.jacfwd(dp.jacrev(dnp.sin))(x), dp.jacrev(dp.jacfwd(dnp.sin))(x)
    assert all(type(d) is type(x) for d in nested)


def test_hessian_closed_form_and_structure():
    x = RNG.normal(size=3)
    np.testing.assert_allclose(dp.hessian(lambda x: x @ A @ x)(x), A + A.T, atol=1e-12)
    H = dp.hessian(lambda p: p["a"] ** 2 * p["b"] ** 3)({"a": 2.0, "b": 3.0})
    assert H == {"a": {"a": 54.0, "b": 108.0}, "b": {"a": 108.0, "b": 72.0}}


def test_hvp_matches_hessian_without_forming_it():
    f = lambda x, y: dnp.sum(dnp.sin(x) * y**2)  # noqa: E731
    x, y = RNG.normal(size=4), RNG.normal(size=4)
    vx, vy = RNG.normal(size=4), RNG.normal(size=4)
    value, (hx, hy) = dp.hvp(f, (x, y), (vx, vy))
    assert value == pytest.approx(f(x, y))
    Hxx, Hxy = dp.hessian(f, argnums=(0, 1))(x, y)[0]
    Hyx, Hyy = dp.hessian(f, argnums=(0, 1))(x, y)[1]
    np.testing.assert_allclose(hx, Hxx @ vx + Hxy @ vy)
    np.testing.assert_allclose(hy, Hyx @ vx + Hyy @ vy)


def test_hvp_pytrees_python_floats_and_closed_form():
    # f = sum(x * y^2): H = [[0, 2 diag(y)], [2 diag(y), 2 sum(x)]] with y a Python float.
    x, vx = np.array([1.0, 2.0]), np.array([1.0, 1.0])
    value, (hx, hy) = dp.hvp(lambda p, y: dnp.sum(p["x"] * y**2), ({"x": x}, 2.0), ({"x": vx}, 1.0))
    assert value == 12.0 and type(hy) is float and hy == 14.0
    assert list(hx) == ["x"] and np.array_equal(hx["x"], [4.0, 4.0])


def test_hvp_of_a_constant_output_is_zero_and_bad_outputs_name_f():
    x, v = np.array([1.0, 2.0]), np.array([1.0, 1.0])
    value, (h,) = dp.hvp(lambda x: 3.0, (x,), (v,))
    assert value == 3.0 and np.array_equal(h, [0.0, 0.0]) and h.dtype == x.dtype

    def vector_valued(x):
        return x**2

    with pytest.raises(dp.NonScalarOutputError, match=r"vector_valued returned an array of shape \(2,\)"):
        dp.hvp(vector_valued, (x,), (v,))
    with pytest.raises(dp.NonScalarOutputError, match="non-floating value"):
        dp.hvp(lambda x: dnp.argmax(x), (x,), (v,))


# --- graph extension to third order, every combination of modes --------------------------------
def f3(x):
    return dnp.sin(x) * x**2  # f''' = -cos(x) x^2 - 6 x sin(x) + 6 cos(x)


def f3_third(x):
    return -math.cos(x) * x**2 - 6 * x * math.sin(x) + 6 * math.cos(x)


def d_rev(f):
    return dp.grad(f)


def d_fwd(f):
    return lambda x: dp.jvp(f, (x,), (1.0,))[1]


@pytest.mark.parametrize("modes", [(a, b, c) for a in "rf" for b in "rf" for c in "rf"], ids="".join)
def test_third_derivative_in_every_mode_order(modes):
    g = f3
    for m in modes:
        g = (d_rev if m == "r" else d_fwd)(g)
    assert float(g(0.7)) == pytest.approx(f3_third(0.7), rel=1e-12)


def test_third_order_jacobians_of_vector_function():
    x = RNG.normal(size=3)
    T = dp.jacfwd(dp.jacrev(dp.jacrev(lambda x: dnp.sum(x**4))))(x)
    np.testing.assert_allclose(T, np.einsum("i,ij,ik->ijk", 24 * x, np.eye(3), np.eye(3)))


def test_grad_of_a_vjp_function():
    x = np.array([0.3, -1.2])
    _, vjp_fn = dp.vjp(lambda x: dnp.sin(x) * 2.0, x)
    # vjp_fn is linear in the cotangent: d/dc sum(vjp_fn(c)) = 2 cos(x)
    np.testing.assert_allclose(dp.grad(lambda c: dnp.sum(vjp_fn(c)[0]))(np.ones(2)), 2 * np.cos(x))
    # and differentiating through the primal of a vjp taken inside grad: d/dx 2cos(x) . 1
    g = dp.grad(lambda x: dnp.sum(dp.vjp(lambda y: dnp.sin(y) * 2.0, x)[1](np.ones(2))[0]))(x)
    np.testing.assert_allclose(g, -2 * np.sin(x))


# --- perturbation confusion ---------------------------------------------------------------------
# d/dx [ x * d/dy (x + y) ] at x = 1 is 1; a confused implementation says 2.
def test_confusion_reverse_in_reverse():
    assert dp.grad(lambda x: x * dp.grad(lambda y: x + y)(1.0))(1.0) == 1.0


def test_confusion_forward_in_forward():
    inner = lambda x: dp.jvp(lambda y: x + y, (1.0,), (1.0,))[1]  # noqa: E731
    assert dp.jvp(lambda x: x * inner(x), (1.0,), (1.0,))[1] == 1.0


def test_confusion_forward_over_reverse():
    assert dp.jvp(lambda x: x * dp.grad(lambda y: x + y)(1.0), (1.0,), (1.0,))[1] == 1.0


def test_confusion_reverse_over_forward():
    inner = lambda x: dp.jvp(lambda y: x + y, (1.0,), (1.0,))[1]  # noqa: E731
    assert dp.grad(lambda x: x * inner(x))(1.0) == 1.0


def test_nested_jvp_closing_over_outer_primal():
    """JAX's documented case: the inner jvp's function closes over the outer primal x;
    d/dx [ d/dy (x * y) |_{y=x} ] = d/dx x = 1."""
    def f(x):
        return dp.jvp(lambda y: x * y, (x,), (1.0,))[1]

    assert dp.jvp(f, (2.0,), (1.0,))[1] == 1.0
    assert dp.grad(f)(2.0) == 1.0


def test_stop_gradient_is_a_constant_everywhere():
    assert dp.grad(lambda x: x * dp.stop_gradient(x))(3.0) == 3.0
    assert dp.jvp(lambda x: x * dp.stop_gradient(x), (3.0,), (1.0,))[1] == 3.0
    g2 = dp.grad(dp.grad(lambda x: x**2 * dp.stop_gradient(x**2)))(2.0)
    assert g2 == 2 * 4.0
    tree = dp.stop_gradient({"a": 1.0, "b": [np.ones(2)]})
    assert tree["a"] == 1.0 and isinstance(tree["b"][0], np.ndarray)


def test_nested_jacobians_of_python_numbers():
    """A random-mode fuzz run's program, minimised: the inner Jacobian's output, a traced
    Python float (f returning its input, or a Python float jacfwd made), had no shape for its
    one-hot seeds: dp.hessian(lambda p: p)(0.1) and jacrev(jacfwd(sin))(0.3) raised
    AttributeError, as a nested holomorphic Jacobian of a Python complex did."""
    third = lambda f: dp.jacrev(dp.jacfwd(dp.jacrev(f)))  # noqa: E731
    for outer, inner in [(dp.jacrev, dp.jacrev), (dp.jacrev, dp.jacfwd), (dp.jacfwd, dp.jacfwd),
                         (dp.jacfwd, dp.jacrev)]:
        hess = lambda f: outer(inner(f))  # noqa: B023, E731
        assert float(hess(lambda p: p)(0.1)) == 0.0
        assert float(hess(dnp.sin)(0.3)) == pytest.approx(-math.sin(0.3), rel=1e-15)
        h = hess(lambda p: {"a": p ** 3, "b": [p]})(0.3)
        assert float(h["a"]) == pytest.approx(1.8, rel=1e-15) and float(h["b"][0]) == 0.0
    assert float(dp.hessian(lambda p: p)(0.1)) == 0.0
    assert float(third(dnp.sin)(0.3)) == pytest.approx(-math.cos(0.3), rel=1e-15)
    cube = lambda z: z * z * z  # noqa: E731
    for jac in (dp.jacrev, dp.jacfwd):
        d2 = dp.jacrev(jac(cube, holomorphic=True), holomorphic=True)(0.3 + 0.2j)
        assert d2 == pytest.approx(6 * (0.3 + 0.2j), rel=1e-15)
