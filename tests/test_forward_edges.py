"""Forward mode at its edges: tangents of constant (integer, bool, string) primal leaves in
dp.jvp, dp.hvp, dp.jacfwd, under dp.vmap and dp.jit; then forward mode through writes,
custom rules, checkpoint, jit and vmap, leaf types and dtypes of the output tangents, each
against central differences or a closed form."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from test_bad_input import raises

import diffprog as dp
import diffprog.numpy as dnp

# --- tangents of constant primal leaves ---------------------------------------------------------
# (primal leaf, a nonzero tangent for it, how the error names the primal, the fix it names)
CONSTANTS = {
    "python int": (3, 1, "the Python int 3", "pass it as a float (3.0)"),
    "python bool": (True, 1.0, "the Python bool True", "pass it as a float (1.0)"),
    "numpy int": (np.int32(2), np.float32(0.5), "a NumPy int32 (dtype int32)", "(2.0)"),
    "int array": (np.arange(3), np.array([0.0, 0.0, 1e-300]),
                  "an array of dtype int64 and shape (3,)", "x.astype(float)"),
    "bool array": (np.array([True, False]), np.array([0, 2]),
                   "an array of dtype bool and shape (2,)", "x.astype(float)"),
}  # fmt: skip


def _mixed(p):
    return p["w"] * dnp.sum(p["n"] * 1.0)


@pytest.mark.parametrize("name", sorted(CONSTANTS))
def test_a_nonzero_tangent_for_a_constant_leaf_is_refused_naming_it(name):
    """(It was ignored without a word: jvp gave the tangent as if it were zero.)"""
    n, t, what, fix = CONSTANTS[name]
    p, v = {"w": 2.0, "n": n}, {"w": 1.0, "n": t}
    with raises(dp.UnsupportedLeafError, "dp.jvp: the tangent for primal 0['n'] is nonzero",
                what, "a constant", "Pass None (or zeros)", fix):
        dp.jvp(_mixed, (p,), (v,))
    with raises(dp.UnsupportedLeafError, "dp.hvp: the tangent for primal 0['n'] is nonzero", what):
        dp.hvp(lambda p: _mixed(p) ** 2, (p,), (v,))


@pytest.mark.parametrize("name", sorted(CONSTANTS))
def test_none_or_zeros_for_a_constant_leaf_are_accepted(name):
    n, t, _, _ = CONSTANTS[name]
    p = {"w": 2.0, "n": n}
    want = dp.jvp(_mixed, (p,), ({"w": 1.0, "n": None},))
    zero = np.zeros_like(t) if isinstance(t, np.ndarray) else type(t)(0)
    assert dp.jvp(_mixed, (p,), ({"w": 1.0, "n": zero},)) == want
    assert want[1] == float(np.sum(n))
    value, (h,) = dp.hvp(lambda p: _mixed(p) ** 2, (p,), ({"w": 1.0, "n": zero},))
    assert h["n"] is None and h["w"] == 2 * float(np.sum(n)) ** 2


def test_a_constant_leafs_tangent_must_be_numbers_of_its_shape():
    p = {"w": 2.0, "n": np.arange(3), "s": "a"}
    with raises(dp.UnsupportedLeafError, "primal 0['s'] is a str ('b'), not numbers",
                "primal 0['s'] is a str ('a'), a constant: pass None"):
        dp.jvp(lambda p: p["w"] * 2, (p,), ({"w": 1.0, "n": None, "s": "b"},))
    with raises(dp.UnsupportedLeafError, "primal 0['s'] is nonzero", "Pass None (or zeros)"):
        dp.jvp(lambda p: p["w"] * 2, (p,), ({"w": 1.0, "n": None, "s": 1.0},))
    with raises(dp.StructureError, "primal 0['n'] has shape (2,), but the primal has shape (3,)"):
        dp.jvp(lambda p: p["w"] * 2, (p,), ({"w": 1.0, "n": np.zeros(2), "s": None},))
    out = dp.jvp(lambda p: p["w"] * 2, (p,), ({"w": 1.0, "n": np.zeros(3, int), "s": 0},))
    assert out == (4.0, 2.0)


def test_vmap_of_jvp_checks_every_examples_tangent_of_a_constant_leaf():
    f = lambda x, n: x * n  # noqa: E731
    x, n = np.ones(3), np.arange(3)
    jvp_n = dp.vmap(lambda u: dp.jvp(f, (x, n), (x, u)))
    _, t = jvp_n(np.zeros((2, 3), int))
    np.testing.assert_array_equal(t, np.stack([n, n]))
    with raises(dp.UnsupportedLeafError, "the tangent for primal 1 is nonzero (dtype int64)"):
        jvp_n(np.array([[0, 0, 0], [0, 1, 0]]))  # the second example's


def test_jit_of_jvp_guards_the_zero_tangent_of_a_constant_leaf():
    f = lambda x, n: x * n  # noqa: E731
    step = dp.jit(lambda x, n, t, u: dp.jvp(f, (x, n), (t, u)))
    x, n = np.ones(3), np.arange(3)
    for _ in range(2):  # recorded, then replayed
        np.testing.assert_array_equal(step(x, n, x, np.zeros(3, int))[1], n)
    assert step.stats["replays"] == 1
    with raises(dp.UnsupportedLeafError, "the tangent for primal 1 is nonzero"):
        step(x, n, x, np.ones(3, int))


def test_jacfwd_perturbs_floating_leaves_only():
    jac = dp.jacfwd(lambda p: p[0] ** 3 * p[1] * dnp.sum(p[2] * 1.0))((2.0, 3, np.arange(2)))
    assert jac == (36.0, None, None)


# --- writes -------------------------------------------------------------------------------------
def _written(x, y, own):
    """sum(z * z), z = x with z[0] = y * x[1]: z made from x alone, or the inner function's own."""
    if own:
        z = dnp.empty_like(x)
        z[...] = x
    else:
        z = x * 1.0
    z[0] = y * x[1]
    return dnp.sum(z * z)


X, Y = np.array([0.3, -1.2]), 0.7
NESTED = {  # the outer transform over x, the inner one over y, and the closed form
    "jvp of jvp": (lambda own: dp.jvp(lambda x: dp.jvp(lambda y: _written(x, y, own), (Y,), (1.0,))[1],
                                      (X,), (np.array([0.0, 1.0]),))[1], 4 * Y * X[1]),
    "grad of grad": (lambda own: dp.grad(lambda x: dp.grad(lambda y: _written(x, y, own))(Y))(X)[1],
                     4 * Y * X[1]),
    "jit of jvp": (lambda own: dp.jit(lambda x: dp.jvp(lambda y: _written(x, y, own), (Y,),
                                                       (1.0,))[1])(X), 2 * Y * X[1] ** 2),
    "vmap of jvp": (lambda own: dp.vmap(lambda x: dp.jvp(lambda y: _written(x, y, own), (Y,),
                                                         (1.0,))[1])(np.stack([X, X]))[1],
                    2 * Y * X[1] ** 2),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(NESTED))
def test_an_inner_value_written_into_an_outer_array_says_how_to_make_it_the_inner_ones(name):
    """(The error said to build the array inside the inner function, which `z = x * 1.0`
    inside it had done: only an array made by a creation function there is the inner one's.)"""
    program, want = NESTED[name]
    with raises(dp.TracerConversionError, "y[...] = v at", "belongs to an outer transform",
                "x.copy(), x * 1.0", "y = dnp.empty_like(x); y[...] = x; y[i] = v"):
        program(False)
    assert np.isclose(program(True), want, rtol=1e-12)


# --- custom rules -------------------------------------------------------------------------------
def test_hvp_through_a_custom_vjp_says_forward_mode_is_the_cause():
    """(The error named dp.jvp and dp.jacfwd only, which the user of dp.hvp had not called.)"""
    f = dp.custom_vjp(lambda x: dnp.sin(x))
    f.defvjp(lambda x: (dnp.sin(x), x), lambda x, g: (g * dnp.cos(x),))
    with raises(TypeError, "dp.custom_vjp function", "here under dp.hvp", "dp.hvp", "dp.custom_jvp"):
        dp.hvp(lambda x: dnp.sum(f(x)), (np.ones(2),), (np.ones(2),))


def test_a_custom_jvp_rule_gets_zeros_for_unperturbed_floats_and_none_for_ints():
    seen = []
    f = dp.custom_jvp(lambda x, y, n: x * y * n)

    @f.defjvp
    def _(primals, tangents):
        (x, y, n), (tx, ty, tn) = primals, tangents
        seen.append((ty, tn))
        return f(x, y, n), (tx * y + x * ty) * n

    assert dp.jvp(lambda x: f(x, np.full(2, 3.0), 2), (np.ones(2),), (np.ones(2),))[1].tolist() == [6.0, 6.0]
    (ty, tn), = seen
    np.testing.assert_array_equal(ty, np.zeros(2))
    assert tn is None


class _Doubler:
    def __call__(self, x):
        return x * 2.0


@pytest.mark.parametrize("fun", [functools.partial(lambda x, k: x * k, k=2.0), _Doubler()],
                         ids=["partial", "callable object"])
def test_custom_rules_of_a_function_without_a_name(fun):
    """(Their errors, and their use in forward mode, raised AttributeError: __name__.)"""
    for custom, what in ((dp.custom_jvp, "no JVP rule"), (dp.custom_vjp, "no VJP rule")):
        with raises(TypeError, what):
            dp.jvp(custom(fun), (1.0,), (1.0,))
    f = dp.custom_jvp(fun)
    f.defjvp(lambda p, t: (f(*p), t[0] * 2.0))
    assert dp.jvp(f, (1.5,), (1.0,)) == (3.0, 2.0) and dp.grad(f)(1.5) == 2.0


@pytest.mark.gpu
def test_a_constant_leafs_tangent_on_the_gpu():
    """On CuPy: None costs nothing; zeros are read back to be checked (a synchronisation, as
    the README says); nonzero ones are refused, and so are zeros on another device."""
    from backends import require_cupy

    cp = require_cupy()
    cupyx = pytest.importorskip("cupyx")
    x, n = dp.to_device((np.ones(3), np.arange(3)), "gpu")
    f = lambda x, n: x * n  # noqa: E731
    with cupyx.allow_synchronize(False):
        _, t = dp.jvp(f, (x, n), (x, None))
    np.testing.assert_array_equal(cp.asnumpy(t), np.arange(3))
    with cupyx.allow_synchronize(False), pytest.raises(Exception, match="[Ss]ynchroni"):
        dp.jvp(f, (x, n), (x, cp.zeros(3, int)))
    np.testing.assert_array_equal(cp.asnumpy(dp.jvp(f, (x, n), (x, cp.zeros(3, int)))[1]), np.arange(3))
    with raises(dp.UnsupportedLeafError, "the tangent for primal 1 is nonzero"):
        dp.jvp(f, (x, n), (x, cp.ones(3, int)))
    with raises(dp.DeviceMismatchError, "the tangent for primal 1 is on the CPU (NumPy)"):
        dp.jvp(f, (x, n), (x, np.zeros(3, int)))


def _into_ints(x, v, whole):
    y = dnp.zeros(3, dtype=int)  # a plain integer array, even inside a transform
    if whole:
        y[:2] = v[:2]
    else:
        y[0] = v[0]
    return y * x


@pytest.mark.parametrize("whole", [False, True], ids=["y[0] = x[0]", "y[:2] = x[:2]"])
def test_a_traced_float_written_into_an_integer_array_says_so(whole):
    """(The error said to allocate the array with dnp.zeros, which the user had done: with an
    integer dtype it is a plain array, and the value would be truncated.)"""
    x = np.array([1.5, 2.5, 3.5])
    for run in (lambda: dp.jvp(lambda x: _into_ints(x, x, whole), (x,), (np.ones(3),)),
                lambda: dp.grad(lambda x: dnp.sum(_into_ints(x, x, whole)))(x)):
        with raises(dp.TracerConversionError, "plain NumPy integer array", "truncate",
                    "a[i] = dp.stop_gradient(x)", "floating array"):
            run()
    truncated = lambda x: dnp.sum(_into_ints(x, dp.stop_gradient(x), whole))  # noqa: E731
    assert dp.grad(truncated)(x).tolist() == ([1.0, 2.0, 0.0] if whole else [1.0, 0.0, 0.0])


def test_hvp_without_a_floating_primal_names_hvp():
    """(The error named dp.grad, which hvp calls.)"""
    with raises(dp.UnsupportedLeafError, "dp.hvp: argument 0 (n) is the Python int 3", "pass 3.0"):
        dp.hvp(lambda n: n * 2.0, (3,), (None,))


def test_writes_into_arguments_stay_inside_the_transform():
    """docs/reliability.md: the caller's arrays are not written, and two arguments sharing
    memory are two inputs (eager NumPy would see the write through both)."""
    def f(p):
        p[0][1] = 5.0
        return p[1] * 1.0

    c = np.arange(3.0)
    out, t = dp.jvp(f, ((c, c[1:]),), ((np.ones(3), np.ones(2)),))
    assert out.tolist() == [1.0, 2.0] and t.tolist() == [1.0, 1.0] and c.tolist() == [0.0, 1.0, 2.0]
    assert dp.jit(f)((c, c[1:])).tolist() == [1.0, 2.0] and c.tolist() == [0.0, 1.0, 2.0]
    assert f((c, c[1:])).tolist() == [5.0, 2.0]  # eager NumPy
