"""Trust at the edges: conversions, complex intermediates, x.trace(), kernel errors, round(),
unsupported keywords, int arguments, traced jvp tangents. One test (or parametrized case)
per item of the issue, named after it."""

from __future__ import annotations

import logging
import math
import re
import warnings

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.testing import check_grads

HERE = __file__


def raises(kind, *fragments):
    """pytest.raises(kind) whose message must contain every fragment (plain text)."""
    return pytest.raises(kind, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


def run_under(kind, f, x):
    """Run f(x) with x traced by the transform `kind`; returns the derivative it gives."""
    if kind == "grad":
        return dp.grad(lambda v: dnp.sum(f(v)))(x)
    if kind == "vjp":
        out, pull = dp.vjp(f, x)
        return pull(out)[0]
    if kind == "jvp":
        return dp.jvp(f, (x,), (x,))[1]
    if kind == "Tape":
        with dp.Tape() as tape:
            v = tape.watch(x)
            y = f(v)
        return tape.gradient(y, v)
    if kind == "grad of grad":
        return dp.grad(dp.grad(lambda v: dnp.sum(f(v))))(x)
    if kind == "jvp of grad":
        return dp.jvp(dp.grad(lambda v: dnp.sum(f(v))), (x,), (x,))[1]
    raise AssertionError(kind)


KINDS = ["grad", "vjp", "jvp", "Tape", "grad of grad", "jvp of grad"]


# --- 1. silent gradient loss through Python numbers -----------------------------------------
CONVERSIONS = {
    "math.exp": (lambda x: math.exp(x), "math.exp(x)"),
    "math.sqrt times x": (lambda x: math.sqrt(x) * x, "math.sqrt(x) * x"),
    "np.float64": (lambda x: np.float64(x) * x, "np.float64(x) * x"),
    "np.float32": (lambda x: np.float32(x) * x, "np.float32(x) * x"),
    "float(loss)": (lambda x: float(x * x), "float(x * x)"),
    "loss.item()": (lambda x: (x * x).item(), "(x * x).item()"),
    "complex(x)": (lambda x: abs(complex(x)), "abs(complex(x))"),
}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(CONVERSIONS))
def test_1_float_of_a_traced_value_is_refused_naming_the_line(name, kind):
    f, code = CONVERSIONS[name]
    with raises(dp.TracerConversionError, f"{HERE}:", code, "dnp.exp", "dp.stop_gradient"):
        run_under(kind, f, 1.5)
    with raises(dp.TracerConversionError, f"{HERE}:", code):
        run_under(kind, f, np.array(1.5))


def test_1_the_silent_cases_of_the_issue():
    with raises(dp.TracerConversionError, "math.exp(x)", "dp.grad"):
        dp.grad(lambda x: math.exp(x))(1.0)
    with raises(dp.TracerConversionError, "float(loss)"):
        dp.grad(lambda x: float(dnp.sum(x * x)))(np.ones(2))
    with raises(dp.TracerConversionError, "x.item()"):
        dp.grad(lambda x: dnp.sum(x * x).item())(np.ones(2))


def test_1_nested_conversion_of_an_outer_value_is_refused():
    # inner grad; float(y) would drop d/dy: y belongs to the outer, still recording, trace
    with raises(dp.TracerConversionError, "float(y)"):
        dp.grad(lambda y: dp.grad(lambda x: x * float(y))(1.0))(2.0)


def control_flow(x):
    """Everything here reads concrete values and must keep working."""
    steps = 0
    while x < 10.0:  # a comparison steers the loop
        x = x * 3.0
        steps += 1
    if bool(x > 5.0) and x:
        x = x * 1.0
    for _ in range(int(x) // 100 + 1):  # int(x): piecewise constant, allowed
        x = x + 0.0
    k = math.floor(x) + math.ceil(x) + math.trunc(x) + round(x)
    text = f"{x:.3f} {x} {x!r} %.2f %d" % (x, x) + str(x) + "{:.1e}".format(x)
    logging.getLogger("diffprog-test").info("x is %.4f", x)
    c = float(dp.stop_gradient(x)) + dp.stop_gradient(x).item()  # deliberate constants
    assert isinstance(k, int) and "13.500" in text and c == 27.0
    return x * 1.0


@pytest.mark.parametrize("kind", KINDS)
def test_1_control_flow_printing_int_and_constants_keep_working(kind):
    assert float(run_under(kind, control_flow, 0.5)) == pytest.approx(
        {"grad": 27.0, "vjp": 13.5 * 27.0, "jvp": 13.5, "Tape": 27.0}.get(kind, 0.0)
    )


def test_1_a_value_kept_after_its_tape_closed_converts_freely():
    with dp.Tape() as tape:
        x = tape.watch(2.0)
        y = x * x
    assert float(y) == 4.0 and y.item() == 4.0 and math.exp(y) == pytest.approx(math.exp(4.0))
    assert tape.gradient(y, x) == 4.0


def test_1_int_of_a_traced_value_has_the_zero_derivative_of_truncation():
    # int(x) * x = 2 x near 2.5: derivative 2, correct almost everywhere
    assert dp.grad(lambda x: int(x) * x)(2.5) == 2.0
    assert dp.grad(lambda n: dnp.sum(dnp.ones(int(n)) * n))(3.0) == 3.0


# --- 2. complex intermediates in a real function: right, not refused -----------------------
C = np.array([1j, 2.0])
COMPLEX = {  # f, and the derivative of sum(f(x)) in closed form
    "python complex constant": (lambda x: dnp.abs(x * (1 + 1j)), lambda x: np.sqrt(2) * np.sign(x)),
    "complex array constant": (lambda x: dnp.abs(C * x), lambda x: np.abs(C) * np.sign(x)),
    "np ufunc with a complex constant": (lambda x: dnp.abs(np.add(x, 1j)),
                                         lambda x: x / np.sqrt(x * x + 1)),
    "astype complex": (lambda x: dnp.abs(x.astype(np.complex128)), np.sign),
    "complex matmul": (lambda x: dnp.abs(np.eye(2) * 1j @ x), np.sign),
    "phase": (lambda x: dnp.real(dnp.exp(1j * x)), lambda x: -np.sin(x)),
}  # fmt: skip


@pytest.mark.parametrize("name", list(COMPLEX))
def test_2_complex_intermediates_give_the_real_gradient(name):
    f, derivative = COMPLEX[name]
    x = np.array([0.5, -2.0])
    with warnings.catch_warnings():  # the real part is kept without NumPy's ComplexWarning
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        np.testing.assert_allclose(dp.grad(lambda v: dnp.sum(f(v)))(x), derivative(x), rtol=1e-12)
    check_grads(f, (x,))


def test_2_complex_constants_not_touching_a_tracer_are_fine():
    c = np.abs(np.array([3 + 4j]))  # complex math on constants only
    assert dp.grad(lambda x: dnp.sum(x * dnp.abs(np.array([3 + 4j]))))(1.0) == 5.0
    assert dp.grad(lambda x: dnp.sum(x * c))(1.0) == 5.0


# --- 3. x.trace() is NumPy's trace ------------------------------------------------------------
def test_3_trace_method_is_numpys_trace():
    m = np.arange(12.0).reshape(3, 4)
    g = dp.grad(lambda x: x.trace())(m)
    np.testing.assert_array_equal(g, np.eye(3, 4))
    g = dp.grad(lambda x: x.trace(1))(m)
    np.testing.assert_array_equal(g, np.eye(3, 4, k=1))
    t = np.arange(24.0).reshape(2, 3, 4)
    value, _ = dp.value_and_grad(lambda x: dnp.sum(x.trace(0, 1, 2) ** 2))(t)
    assert value == np.sum(t.trace(0, 1, 2) ** 2)
    assert dp.jvp(lambda x: x.trace(), (m,), (np.ones_like(m),))[1] == 3.0
    for dtype in (np.float64, np.float32):
        check_grads(lambda x: x.trace(-1, axis1=2, axis2=0), (t.astype(dtype) / 10,), order=2)


# --- 4 and 5. kernel errors: any exception class, the name once -----------------------------
@pytest.mark.parametrize("traced", [False, True])
def test_4_kernel_error_of_an_unbuildable_numpy_exception_class(traced):
    def f(x):
        return dnp.multiply(x, "abc")

    with pytest.raises(TypeError, match="^multiply: ufunc 'multiply' did not contain") as info:
        dp.grad(lambda x: dnp.sum(f(x)))(np.ones(2)) if traced else f(np.ones(2))
    assert type(info.value) is TypeError  # the nearest builtin: NumPy's class needs a ufunc
    cause = info.value.__cause__  # the chain is kept
    assert type(cause).__module__.startswith("numpy") and "did not contain a loop" in str(cause)
    assert "operands: shape (2,) float64, str" in str(info.value)


@pytest.mark.parametrize("traced", [False, True])
def test_5_an_op_named_by_numpy_is_named_once(traced):
    def f(a):
        return dnp.matmul(a, np.ones((2, 3)))

    with pytest.raises(ValueError) as info:
        dp.grad(lambda a: dnp.sum(f(a)))(np.ones((2, 3))) if traced else f(np.ones((2, 3)))
    message = str(info.value)
    assert message.startswith("matmul: ") and message.count("matmul:") == 1
    assert "operands: shape (2, 3) float64, shape (2, 3) float64" in message
    with pytest.raises(ValueError, match=r"^sum_to_shape: cannot sum") as info:
        dp.core.edge.sum_to_shape(np.ones(2), shape=(3, 2, 1))


# --- 6. round(x) ------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["grad", "jvp", "Tape", "grad of grad"])
def test_6_round_of_a_traced_value(kind):
    seen = []

    def f(x):
        r, r1 = round(x), round(x, 1)
        seen.append((r, type(r), float(r1), type(r1)))
        return r * x + r1 * x  # round's derivative is zero: d/dx = r + r1

    out = run_under(kind, f, 2.46)
    r, r_type, r1, r1_type = seen[0]
    assert (r, r_type, r1) == (2, int, 2.5) and not issubclass(r1_type, dp.core.trace.Tracer)
    assert float(out) == pytest.approx({"grad": 4.5, "jvp": 4.5 * 2.46, "Tape": 4.5}.get(kind, 0.0))
    np.testing.assert_array_equal(
        dp.grad(lambda x: dnp.sum(round(x, 1) * x))(np.array([1.24, 2.56])), [1.2, 2.6]
    )
    with raises(dp.TracerConversionError, "round(x)", "shape (2,)", "dnp.round"):
        dp.grad(lambda x: dnp.sum(round(x) * x))(np.array([1.24, 2.56]))


# --- 7. unsupported keywords ------------------------------------------------------------------
UNSUPPORTED_KEYWORDS = {
    "np.reshape copy= (__array_function__)": (
        lambda x: np.reshape(x, (2,), copy=True), "numpy.reshape", "copy="),
    "np.var correction= (__array_function__)": (
        lambda x: np.var(x, correction=1), "numpy.var", "correction="),
    "np.outer out= (__array_function__)": (
        lambda x: np.outer(x, x, out=np.empty((2, 2))), "numpy.outer", "out="),
    "np.exp casting= (__array_ufunc__)": (
        lambda x: np.exp(x, casting="unsafe"), "numpy.exp", "casting="),
    "np.add.reduce dtype= (__array_ufunc__)": (
        lambda x: np.add.reduce(x, dtype=np.float64), "numpy.add.reduce", "dtype="),
    "dnp.reshape copy=": (
        lambda x: dnp.reshape(x, (2,), copy=True), "diffprog.numpy.reshape", "copy="),
    "dnp.var correction=": (
        lambda x: dnp.var(x, correction=1), "diffprog.numpy.var", "correction="),
    "x.var correction=": (lambda x: x.var(correction=1), "diffprog.numpy.var", "correction="),
    "dnp.exp dtype= (a primitive)": (lambda x: dnp.exp(x, dtype=np.float32), "exp", "dtype="),
}  # fmt: skip


@pytest.mark.parametrize("name", list(UNSUPPORTED_KEYWORDS))
def test_7_unsupported_keyword_is_named(name):
    f, fn, keyword = UNSUPPORTED_KEYWORDS[name]
    with raises(dp.UnsupportedKeywordError, f"{fn} with {keyword} is not supported",
                "diffprog does not implement"):  # fmt: skip
        dp.grad(lambda x: dnp.sum(f(x)))(np.array([1.0, 2.0]))
    if name.startswith("dnp."):  # on plain arrays too
        with raises(dp.UnsupportedKeywordError, f"{fn} with {keyword} is not supported"):
            f(np.array([1.0, 2.0]))
    assert issubclass(dp.UnsupportedKeywordError, TypeError)


def test_7_supported_keywords_and_other_type_errors_pass_through():
    x = np.array([1.0, 2.0])
    g = dp.grad(lambda x: np.sum(np.reshape(x, (2, 1)), axis=0, keepdims=True)[0])(x)
    assert g.tolist() == [1.0, 1.0]
    with pytest.raises(TypeError) as info:  # a missing argument is Python's own error
        dnp.reshape(x)
    assert not isinstance(info.value, dp.UnsupportedKeywordError)


# --- 8. grad of an int argument blames the argument ------------------------------------------
@pytest.mark.parametrize(
    "arg, what, fix",
    [(3, "argument 0 (x) is the Python int 3", "pass 3.0"),
     (np.int64(3), "argument 0 (x) is the NumPy int64 3", "pass a float"),
     (np.arange(3), "argument 0 (x) is an array of dtype int64 and shape (3,)", "float array"),
     ({"n": 3}, "argument 0 (x)['n'] is the Python int 3", "pass 3.0")],
    ids=["int", "numpy int", "int array", "dict of ints"],
)  # fmt: skip
def test_8_grad_of_an_int_argument_blames_it(arg, what, fix):
    def f(x):
        return dnp.sum(dp.tree.leaves(x)[0] * 2)

    with raises(dp.UnsupportedLeafError, "dp.grad", what, fix):
        dp.grad(f)(arg)


def test_8_int_leaves_beside_float_leaves_stay_constants():
    assert dp.grad(lambda p: p["w"] ** 2 * p["n"])({"w": 3.0, "n": 2}) == {"w": 12.0, "n": None}
    assert dp.grad(lambda x, n: x * n, argnums=(0, 1))(2.0, 3) == (3.0, None)
    assert dp.grad(lambda x, mode: x * 2.0, argnums=(0, 1))(1.0, "fast") == (2.0, None)


# --- 9. traced values as jvp tangents ---------------------------------------------------------
def test_9_traced_python_float_as_a_jvp_tangent():
    assert dp.grad(lambda a: dp.jvp(lambda x: x * x, (2.0,), (a,))[1])(1.0) == 4.0


def test_9_traced_array_and_float_tangents_nested():
    def jvp_tangent(a, x0):  # d/da of the JVP of sin at x0 in direction a: cos(x0)
        return dnp.sum(dp.jvp(dnp.sin, (x0,), (a,))[1])

    x0 = np.array([0.3, 1.2])
    np.testing.assert_allclose(dp.grad(jvp_tangent)(np.ones(2), x0), np.cos(x0))
    assert dp.grad(jvp_tangent)(1.0, 0.3) == pytest.approx(math.cos(0.3))
    assert dp.grad(jvp_tangent)(np.float32(1.0), np.float64(0.3)) == pytest.approx(math.cos(0.3))
    # the tangent traced by a tape, and a float32 tangent for a float64 primal
    with dp.Tape() as tape:
        a = tape.watch(1.0)
        _, t = dp.jvp(lambda x: x * x * x, (2.0,), (a,))
    assert tape.gradient(t, a) == 12.0
    with dp.Tape() as tape:
        a = tape.watch(np.float32(1.0))
        _, t = dp.jvp(lambda x: x * x, (np.array(2.0),), (a,))
    assert tape.gradient(t, a) == 4.0
    # forward over forward: the tangent traced by an outer jvp
    outer = dp.jvp(lambda a: dp.jvp(lambda x: x * x, (2.0,), (a,))[1], (1.0,), (1.0,))
    assert outer == (4.0, 4.0)
    check_grads(lambda a: dp.jvp(lambda x: dnp.sin(x) * x, (0.7,), (a,))[1], (1.3,), order=2)
