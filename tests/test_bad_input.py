"""The catalog of user mistakes: each raises a precise error type whose message says what
was wrong, where (key path, shapes, dtypes, the function) and what to do instead.

Tests marked xfail(strict=True, reason="message unclear: ...") hold the message diffprog
should give; those marked "bug: ..." are mistakes diffprog does not catch at all (it
returns a wrong or silently truncated result).
"""

from __future__ import annotations

import dataclasses
import re
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp


def raises(kind, *fragments):
    """pytest.raises(kind) whose message must contain every fragment (plain text)."""
    return pytest.raises(kind, match="(?s)" + "".join(f"(?=.*{re.escape(f)})" for f in fragments))


# --- transforms: outputs, arguments, aux ---------------------------------------------------------
def test_grad_of_a_non_scalar_output():
    with raises(dp.NonScalarOutputError, "returned an array of shape (3,)", "real scalar",
                "dnp.sum", "dp.vjp / dp.jacrev"):  # fmt: skip
        dp.grad(lambda x: x * 2.0)(np.ones(3))


def test_grad_of_a_tuple_output():
    with raises(dp.NonScalarOutputError, "returned a tuple", "real scalar", "dp.vjp"):
        dp.grad(lambda x: (x, x))(1.0)


@pytest.mark.parametrize(
    "f, what",
    [(lambda x: 3, "non-floating value (a Python int)"), (lambda x: dnp.argmax(x), "non-floating value (dtype int64)"),
     (lambda x: dnp.sum(x) > 0, "non-floating value (dtype bool)"), (lambda x: None, "returned a NoneType")],
    ids=["int", "int array (argmax)", "bool", "None"],
)  # fmt: skip
def test_grad_of_an_integer_valued_output(f, what):
    with raises(dp.NonScalarOutputError, what, "real scalar"):
        dp.grad(f)(np.ones(3))


def test_grad_with_respect_to_an_int_argument_is_none():
    """Not an error: an int argument beside a float one is a constant, its adjoint is None
    (API.md). (`dp.grad(f)(3)`, with nothing floating to differentiate, is refused: see
    test_edges_core.py.)"""
    assert dp.grad(lambda x, n: x * n, argnums=(0, 1))(2.0, 3) == (3.0, None)
    assert dp.grad(lambda p: dnp.sum(p["w"] * p["n"]))({"w": 2.0, "n": np.arange(3)})["n"] is None


@pytest.mark.parametrize("jac", [dp.jacrev, dp.jacfwd, dp.hessian], ids=lambda j: j.__name__)
def test_jacobians_refuse_arguments_without_a_float_as_grad_does(jac):
    """An integer argument, or an unregistered dataclass holding floats, with nothing
    floating beside it: refused, named (jacfwd returned None for both, jacrev and hessian
    for the integer)."""

    @dataclasses.dataclass
    class Opaque:
        w: np.ndarray

    with raises(dp.UnsupportedLeafError, f"dp.{jac.__name__}: argument 0 (x) is an array of dtype int64",
                "x.astype(float)"):  # fmt: skip
        jac(lambda x: dnp.sum(x**2))(np.arange(3))
    with raises(dp.UnsupportedLeafError, "argument 0", "unregistered dataclass", "register_dataclass"):
        jac(lambda d: dnp.sum(d.w**2))(Opaque(np.ones(2)))
    # beside a float leaf an integer is a constant, its blocks None
    blocks = jac(lambda x, n: dnp.sum(x**2) * n, argnums=(0, 1))(np.ones(2), 3)[1]
    assert blocks == ((None, None) if jac is dp.hessian else None)


def test_complex_output_of_grad_is_refused_naming_the_ways_out():
    with raises(dp.NonScalarOutputError, "complex value (dtype complex128)", "dnp.abs(z) ** 2",
                "holomorphic=True"):  # fmt: skip
        dp.grad(lambda z: z * z)(1j)
    with raises(dp.NonScalarOutputError, "holomorphic=True", "complex scalar", "float64"):
        dp.grad(lambda z: dnp.abs(z), holomorphic=True)(1j)
    with raises(dp.UnsupportedLeafError, "holomorphic=True", "['w'][1]", "is real (dtype float64)",
                "astype(complex)"):  # fmt: skip
        dp.grad(lambda p: p["w"][0] * p["w"][1], holomorphic=True)({"w": [1j, np.ones(())]})


@pytest.mark.parametrize(
    "leaf, path, what",
    [(Fraction(1, 3), "p['lr']", "Fraction value Fraction(1, 3)"),
     ([Decimal("0.1")], "p['lr'][0]", "Decimal value Decimal('0.1')")],
    ids=["Fraction", "Decimal"],
)  # fmt: skip
def test_unsupported_number_leaf_names_its_key_path(leaf, path, what):
    with raises(dp.UnsupportedLeafError, path, what, "convert it to float"):
        dp.grad(lambda p: p["w"])({"w": 1.0, "lr": leaf})


def test_object_array_leaf_names_its_key_path():
    with raises(dp.UnsupportedLeafError, "params['w'][0]", "dtype object", "use a float dtype"):
        dp.grad(lambda params: 1.0)({"w": [np.array([1.0, None])]})


def test_argnums_out_of_range():
    with raises(ValueError, "dp.grad", "argnums=2", "has 2 positional argument(s)"):
        dp.grad(lambda x, y: x * y, argnums=2)(1.0, 2.0)


def test_argnums_repeated():
    with raises(ValueError, "argnums=(0, 0)", "names an argument twice"):
        dp.grad(lambda x, y: x * y, argnums=(0, 0))(1.0, 2.0)


def test_argnums_of_the_wrong_type():
    with raises(TypeError, "argnums=0.5", "int"):
        dp.grad(lambda x, y: x * y, argnums=0.5)(1.0, 2.0)


def test_differentiated_argument_passed_by_keyword():
    with raises(ValueError, "argnums=0", "pass it positionally"):
        dp.grad(lambda x, y: x * y)(x=1.0, y=2.0)


@pytest.mark.parametrize("transform", [dp.grad, dp.value_and_grad])
def test_has_aux_with_a_non_pair_return(transform):
    with raises(TypeError, "has_aux=True", "return a pair (output, aux)", "returned ReverseTracer"):
        transform(lambda x: x, has_aux=True)(1.0)
    with raises(TypeError, "return a pair (output, aux)", "returned tuple"):
        transform(lambda x: (x, 1, 2), has_aux=True)(1.0)


def test_vjp_and_jvp_has_aux_with_a_non_pair_return():
    with raises(TypeError, "dp.vjp(f, has_aux=True)", "pair (output, aux)"):
        dp.vjp(lambda x: x, 1.0, has_aux=True)
    with raises(TypeError, "dp.jvp(f, has_aux=True)", "pair (output, aux)"):
        dp.jvp(lambda x: x, (1.0,), (1.0,), has_aux=True)


# --- vjp cotangents and jvp tangents -------------------------------------------------------------
def test_vjp_cotangent_of_the_wrong_structure():
    _, vjp_fn = dp.vjp(lambda x: {"a": x, "b": x}, np.ones(2))
    with raises(dp.StructureError, "cotangent passed to vjp_fn", "{'a': *}", "{'a': *, 'b': *}", "must match"):
        vjp_fn({"a": np.ones(2)})
    _, vjp_fn = dp.vjp(lambda x: (x, x), 1.0)
    with raises(dp.StructureError, "[*, *]", "(*, *)"):  # a list is not a tuple
        vjp_fn([1.0, 1.0])


def test_vjp_cotangent_of_the_wrong_shape():
    _, vjp_fn = dp.vjp(lambda x: {"a": x, "b": x}, np.ones(2))
    with raises(dp.StructureError, "output['b'] has shape (3,)", "the output['b'] has shape (2,)"):
        vjp_fn({"a": np.ones(2), "b": np.ones(3)})


def test_complex_cotangent_of_a_real_output_and_tangent_of_a_real_primal_are_refused():
    _, vjp_fn = dp.vjp(lambda x: {"y": x * 2.0}, np.ones(2))
    with raises(dp.UnsupportedLeafError, "output['y'] is complex", "real (dtype float64)"):
        vjp_fn({"y": np.ones(2) * (1 + 1j)})
    _, vjp_fn = dp.vjp(lambda x: x * 2.0, np.ones(2))  # one output: no path to name
    with raises(dp.UnsupportedLeafError, "vjp_fn is complex but the output is real"):
        vjp_fn(np.ones(2) * 1j)
    with raises(dp.UnsupportedLeafError, "primal 0 is complex", "real (dtype float64)"):
        dp.jvp(lambda x: x * 2.0, (np.ones(2),), (np.ones(2) * 1j,))


def test_jvp_tangent_of_the_wrong_shape_names_the_leaf():
    with raises(dp.StructureError, "tangent for primal 0['b']", "shape (2,)", "primal has shape (3,)"):
        dp.jvp(lambda p: p["b"] * 2.0, ({"a": 1.0, "b": np.ones(3)},), ({"a": 1.0, "b": np.ones(2)},))


def test_jvp_tangent_of_the_wrong_structure():
    with raises(dp.StructureError, "tangent for primal 0 has structure", "{'b': *}", "{'a': *}"):
        dp.jvp(lambda p: p["a"], ({"a": 1.0},), ({"b": 1.0},))


def test_jvp_primal_and_tangent_counts_differ():
    with raises(dp.StructureError, "2 primal(s) but 1 tangent(s)", "one tangent pytree per primal"):
        dp.jvp(lambda x, y: x * y, (1.0, 2.0), (1.0,))


def test_jvp_and_hvp_need_tuples():
    with raises(TypeError, "tuple", "(x,)"):
        dp.jvp(lambda x: x * 2.0, np.ones(2), np.ones(2))
    with raises(TypeError, "tuple", "(x,)"):
        dp.hvp(lambda x: dnp.sum(x**3), np.ones(2), np.ones(2))


def test_hvp_of_a_non_scalar_function_names_hvp():
    """(The error named grad, which the user had not called.)"""
    with raises(dp.NonScalarOutputError, "dp.hvp: ", "<lambda> returned an array of shape (3,)",
                "dp.hessian"):
        dp.hvp(lambda x: x**2, (np.ones(3),), (np.ones(3),))


@pytest.mark.parametrize("bad, what", [("x", "a str ('x')"), (object(), "an object"),
                                       (np.array([1, "a"], dtype=object), "an array of dtype object")])  # fmt: skip
def test_tangents_and_cotangents_that_are_not_numbers_name_their_leaf(bad, what):
    """(They raised NumPy's ValueError, or an AttributeError, naming nothing.)"""
    f = lambda p: {"a": p["w"] * p["s"], "b": p["s"]}  # noqa: E731
    p = {"w": np.ones(2), "s": 1.0}
    _, vjp_fn = dp.vjp(f, p)
    with raises(dp.UnsupportedLeafError, f"vjp_fn: the entry for output['b'] is {what}", "not numbers"):
        vjp_fn({"a": np.ones(2), "b": bad})
    with raises(dp.UnsupportedLeafError, f"dp.jvp: the tangent for primal 0['s'] is {what}", "not numbers"):
        dp.jvp(f, (p,), ({"w": np.ones(2), "s": bad},))
    with raises(dp.UnsupportedLeafError, f"dp.hvp: the tangent for primal 0['s'] is {what}"):
        dp.hvp(lambda p: dnp.sum(f(p)["a"]), (p,), ({"w": np.ones(2), "s": bad},))
    with dp.Tape() as tape:
        x = tape.watch(np.ones(2))
        y = x * 2.0
    with raises(dp.UnsupportedLeafError, f"output_gradients is {what}", "not numbers"):
        tape.gradient(y, x, output_gradients=bad)


# --- custom rules ----------------------------------------------------------------------------------
def _custom_vjp(bwd, fun=lambda x: dnp.sum(x)):
    f = dp.custom_vjp(fun)
    f.defvjp(lambda *a: (fun(*a), None), bwd)
    return f


def test_custom_vjp_bwd_returns_the_wrong_count():
    f = dp.custom_vjp(lambda x, y: x * y)
    f.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (g * res[1],))
    with raises(dp.StructureError, "<lambda>: bwd must return a tuple with one adjoint per "
                "differentiable argument (2)", "tuple of length 1"):  # fmt: skip
        dp.grad(f)(2.0, 3.0)
    g = _custom_vjp(lambda res, g: np.ones(2))
    with raises(dp.StructureError, "one adjoint per differentiable argument (1)", "got ndarray"):
        dp.grad(g)(np.ones(2))


def test_custom_vjp_bwd_returns_the_wrong_structure():
    f = _custom_vjp(lambda res, g: ({"b": g},), fun=lambda p: p["a"] * 2.0)
    with raises(dp.StructureError, "bwd returned for argument 0", "{'b': *}", "argument's structure", "{'a': *}"):
        dp.grad(f)({"a": 1.0})


def test_custom_vjp_bwd_returns_the_wrong_shape_and_dtype():
    with raises(dp.StructureError, "bwd adjoint for argument 0 has shape (3,), expected (2,)"):
        dp.grad(_custom_vjp(lambda res, g: (np.ones(3),)))(np.ones(2))
    with raises(dp.StructureError, "bwd adjoint for argument 0 has dtype float32, expected float64"):
        dp.grad(_custom_vjp(lambda res, g: (np.ones(2, np.float32),)))(np.ones(2))
    f = _custom_vjp(lambda res, g: ({"w": np.ones(3)},), fun=lambda p: dnp.sum(p["w"]))
    with raises(dp.StructureError, "argument 0['w'] has shape (3,), expected (2,)"):
        dp.grad(f)({"w": np.ones(2)})


def test_custom_rules_not_defined():
    with raises(TypeError, "has no VJP rule", "call .defvjp(fwd, bwd) first"):
        dp.grad(dp.custom_vjp(lambda x: x))(1.0)
    with raises(TypeError, "has no JVP rule", "call .defjvp(rule) first"):
        dp.grad(dp.custom_jvp(lambda x: x))(1.0)


def test_forward_mode_through_custom_vjp():
    f = dp.custom_vjp(lambda x, y: x * y)
    f.defvjp(lambda x, y: (x * y, (x, y)), lambda res, g: (g * res[1], g * res[0]))
    for call in (lambda: dp.jvp(f, (2.0, 3.0), (1.0, 0.0)), lambda: dp.jacfwd(f)(2.0, 3.0)):
        with raises(TypeError, "dp.custom_vjp function", "no forward-mode rule", "dp.custom_jvp"):
            call()


def _custom_jvp(tangent):
    f = dp.custom_jvp(lambda x: dnp.sin(x))
    f.defjvp(lambda p, t: (f(p[0]), tangent(p[0], t[0])))
    return f


def test_custom_jvp_rule_with_the_wrong_tangent_structure_shape_dtype_in_forward_mode():
    with raises(dp.StructureError, "JVP rule's tangent output has structure", "(*,)", "primal output has structure"):
        dp.jvp(_custom_jvp(lambda x, t: (dnp.cos(x) * t,)), (1.0,), (1.0,))
    with raises(dp.StructureError, "JVP rule's tangent output has shape (3,), expected (2,)"):
        dp.jvp(_custom_jvp(lambda x, t: dnp.concatenate([t, t[:1]])), (np.ones(2),), (np.ones(2),))
    with raises(dp.StructureError, "JVP rule's tangent output has dtype float32, expected float64"):
        dp.jvp(_custom_jvp(lambda x, t: t.astype(np.float32)), (np.ones(2),), (np.ones(2),))


def test_custom_jvp_rule_with_the_wrong_tangent_in_reverse_mode():
    with raises(dp.StructureError, "<lambda>: the JVP rule's tangent output has structure"):
        dp.grad(_custom_jvp(lambda x, t: (dnp.cos(x) * t,)))(1.0)
    with raises(dp.StructureError, "JVP rule's tangent output has shape (3,), expected (2,)"):
        dp.grad(lambda x: dnp.sum(_custom_jvp(lambda x, t: dnp.concatenate([t, t[:1]]))(x)))(np.ones(2))


def test_custom_jvp_rule_must_return_a_pair():
    f = dp.custom_jvp(lambda x: dnp.sin(x))
    f.defjvp(lambda p, t: dnp.cos(p[0]) * t[0])
    with raises(TypeError, "rule", "pair (out, tangent_out)"):
        dp.jvp(f, (1.0,), (1.0,))


def test_nondiff_argnums_holding_a_tracer():
    f = dp.custom_vjp(lambda x, scale: x * scale, nondiff_argnums=(1,))
    f.defvjp(lambda x, s: (x * s, s), lambda s, res, g: (g * res,))
    with raises(TypeError, "argument 1 is listed in nondiff_argnums but holds a traced value",
                "dp.stop_gradient"):  # fmt: skip
        dp.grad(lambda x: f(x, x))(2.0)


# --- traced values leaving the tape ---------------------------------------------------------------
@pytest.mark.parametrize("convert", [np.asarray, np.array], ids=["np.asarray", "np.array"])
def test_tracer_converted_to_numpy(convert):
    with raises(dp.TracerConversionError, "cannot convert a traced array (shape (2,), dtype float64)",
                "gradient would be silently lost", "dp.stop_gradient"):  # fmt: skip
        dp.grad(lambda x: convert(x).sum())(np.ones(2))


def test_a_tape_value_used_after_its_block_says_so():
    """(The message told of a function returning, and of has_aux.)"""
    with dp.Tape() as outer:
        x = outer.watch(2.0)
        with dp.Tape() as inner:
            y = inner.watch(x) ** 3
        with raises(dp.EscapedTracerError, "recorded by a dp.Tape", "after the tape's `with` block closed",
                    "inside the block"):  # fmt: skip
            y * 2.0
    assert outer.gradient(y, x) == 12.0


def test_escaped_tracer():
    leaked = []
    dp.grad(lambda x: leaked.append(x * 2.0) or x)(1.0)
    with raises(dp.EscapedTracerError, "used after dp.grad returned", "global, a closure",
                "Return it from the function instead (has_aux=True"):  # fmt: skip
        dp.grad(lambda y: y * leaked[0])(1.0)


def test_unsupported_numpy_function_on_a_tracer():
    with raises(dp.TracerConversionError, "numpy.percentile is not supported on traced arrays",
                "diffprog.numpy", "dp.stop_gradient"):  # fmt: skip
        dp.grad(lambda x: np.percentile(x, 50.0))(np.ones(3))


@pytest.mark.parametrize(
    "f, what",
    [(lambda x: np.add.outer(x, x), "numpy.add.outer is not supported"),
     (lambda x: np.subtract.reduce(x), "numpy.subtract.reduce is not supported"),
     (lambda x: np.heaviside(x, 0.5), "numpy.heaviside is not supported")],
    ids=["outer", "reduce", "ufunc"],
)  # fmt: skip
def test_ufunc_method_or_option_refused(f, what):
    with raises(dp.TracerConversionError, what, "Supported: calls of the ufuncs", "diffprog.numpy"):
        dp.grad(lambda x: dnp.sum(f(x)))(np.ones(3))


def test_ufunc_option_refused():  # an UnsupportedKeywordError since "Trust at the edges"
    with raises(dp.UnsupportedKeywordError, "numpy.exp with where= is not supported",
                "diffprog.numpy"):  # fmt: skip
        dp.grad(lambda x: dnp.sum(np.exp(x, where=x > 0)))(np.ones(3))


def test_ufunc_out_into_a_plain_array():
    with raises(dp.TracerConversionError, "numpy.exp(..., out=a)", "plain NumPy array", "drop out="):
        dp.grad(lambda x: dnp.sum(np.exp(x, out=np.ones(3))))(np.ones(3))
    with raises(dp.TracerConversionError, "numpy.add(..., out=a)"):  # a += x, a plain
        dp.grad(lambda x: np.zeros(3).__iadd__(x).sum())(np.ones(3))


def test_scalar_tracer_assigned_into_a_plain_array():
    def f(x):
        a = np.zeros(2)
        a[0] = x  # NumPy converts x with float(): diffprog refuses instead of dropping the gradient
        return dnp.sum(a) + 0.0 * x

    # NumPy replaces our error with "setting an array element with a sequence"; the
    # transform raises ours again
    with pytest.raises(dp.TracerConversionError) as info:
        dp.grad(f)(3.0)
    assert "`a[i] = x`" in str(info.value) and "silently drop its gradient" in str(info.value)
    assert "dnp.zeros" in str(info.value)


def test_traced_float_array_used_as_an_index():
    with raises(IndexError, "integer or boolean type", "traced float64 array of shape (2,)"):
        dp.grad(lambda x: dnp.sum(x[x]))(np.array([0.0, 1.0]))
    with raises(IndexError, "getitem", "integer (or boolean) type", "shape (3,) float64"):
        dp.grad(lambda x: dnp.sum(x[np.array([0.0, 1.0])]))(np.ones(3))


def test_traced_float_array_indexing_a_plain_array():
    with raises((IndexError, dp.TracerConversionError), "index", "integer"):
        dp.grad(lambda x: dnp.sum(np.ones(3)[x]))(np.array([0.0, 1.0]))


def test_truth_value_of_a_traced_array():
    with raises(ValueError, "truth value of a traced array with 3 elements is ambiguous", "x.any()"):
        dp.grad(lambda x: dnp.sum(x) if x else 0.0)(np.ones(3))


# --- shapes in each op family --------------------------------------------------------------------
def test_elementwise_incompatible_shapes():
    with raises(ValueError, "add:", "could not be broadcast", "shape (3,) float64, shape (4,) float64"):
        dp.grad(lambda x: dnp.sum(x + np.ones(4)))(np.ones(3))
    with raises(ValueError, "where:", "shape (2,) bool, shape (3,) float64"):
        dp.grad(lambda x: dnp.sum(dnp.where(np.array([True, False]), x, 0.0)))(np.ones(3))


def test_matmul_incompatible_shapes():
    with raises(ValueError, "matmul:", "mismatch in its core dimension", "shape (2, 3) float64, shape (2, 3) float64"):
        dp.grad(lambda x: dnp.sum(x @ x))(np.ones((2, 3)))
    with raises(ValueError, "matmul:", "shape (2, 3) float64, shape (4,) float64"):
        dp.grad(lambda x: dnp.sum(dnp.dot(x, np.ones(4))))(np.ones((2, 3)))
    with raises(ValueError, "tensordot: shape-mismatch", "(2, 3) over [1], (4, 2) over [0]"):
        dp.grad(lambda x: dnp.sum(dnp.tensordot(x, np.ones((4, 2)), axes=1)))(np.ones((2, 3)))


def test_concatenate_and_stack_incompatible_shapes():
    with raises(ValueError, "concatenate:", "along dimension 1", "shape (2, 2) float64, shape (3, 3) float64; axis=0"):
        dp.grad(lambda x: dnp.sum(dnp.concatenate([x, np.ones((3, 3))])))(np.ones((2, 2)))
    with raises(ValueError, "same number of dimensions", "shape (2, 2) float64, shape (3,) float64"):
        dp.grad(lambda x: dnp.sum(dnp.concatenate([x, np.ones(3)])))(np.ones((2, 2)))
    with raises(ValueError, "must have the same shape", "[(2,), (3,)]"):
        dp.grad(lambda x: dnp.sum(dnp.stack([x, np.ones(3)])))(np.ones(2))


def test_axis_out_of_range_in_concatenate_and_expand_dims():
    with pytest.raises(ValueError, match="axis 2 is out of bounds"):
        dnp.concatenate([np.ones((2, 2)), np.ones((2, 2))], axis=2)
    with pytest.raises(ValueError, match="axis 5 is out of bounds"):
        dp.grad(lambda x: dnp.sum(dnp.expand_dims(x, 5)))(np.ones((2, 3)))


def test_reshape_incompatible_sizes():
    with raises(ValueError, "reshape:", "cannot reshape array of size 6 into shape (4,2)", "shape (6,) float64"):
        dp.grad(lambda x: dnp.sum(dnp.reshape(x, (4, 2))))(np.ones(6))
    with raises(ValueError, "cannot reshape an array of shape (6,) into shape (-1, -1)"):
        dp.grad(lambda x: dnp.sum(x.reshape(-1, -1)))(np.ones(6))
    with raises(ValueError, "broadcast_to:", "requested shape (2,4)", "shape (3,) float64"):
        dp.grad(lambda x: dnp.sum(dnp.broadcast_to(x, (2, 4))))(np.ones(3))


@pytest.mark.parametrize(
    "f, message",
    [(lambda x: dnp.sum(x, axis=2), "axis 2 is out of bounds for an array of dimension 2"),
     (lambda x: dnp.max(x, axis=-3), "axis -3 is out of bounds for an array of dimension 2"),
     (lambda x: dnp.mean(x, axis=(0, 0)), "repeated axis in (0, 0)"),
     (lambda x: dnp.sum(dnp.softmax(x, axis=2)), "axis 2 is out of bounds"),
     (lambda x: dnp.logsumexp(x, axis=4), "axis 4 is out of bounds"),
     (lambda x: dnp.sum(dnp.cumsum(x, axis=2)), "axis 2 is out of bounds")],
    ids=["sum", "max", "mean repeated", "softmax", "logsumexp", "cumsum"],
)  # fmt: skip
def test_reduction_axis_out_of_range(f, message):
    with raises(ValueError, message):
        dp.grad(f)(np.ones((2, 3)))


@pytest.mark.parametrize(
    "f, message",
    [(lambda x: x[5], "getitem: index 5 is out of bounds for axis 0 with size 3"),
     (lambda x: dnp.sum(x[[0, 4]]), "index 4 is out of bounds for axis 0 with size 3"),
     (lambda x: x[0, 0], "too many indices for array"),
     (lambda x: dnp.sum(x[np.array([True, False])]), "boolean index did not match"),
     (lambda x: dnp.sum(dnp.take(x, [5])), "index 5 is out of bounds")],
    ids=["int", "list", "too many", "mask", "take"],
)  # fmt: skip
def test_indexing_out_of_bounds(f, message):
    with raises(IndexError, message, "shape (3,) float64"):
        dp.grad(f)(np.ones(3))


def test_item_assignment_out_of_bounds():
    def f(x):
        y = x * 1.0
        y[5] = 1.0
        return dnp.sum(y)

    with raises(IndexError, "index_update: index 5 is out of bounds for axis 0 with size 3", "shape (3,) float64"):
        dp.grad(f)(np.ones(3))


def test_einsum_mistakes():
    with raises(ValueError, "einsum:", "could not be broadcast", "subscripts='ij,jk->'", "shape (4, 2) float64"):
        dp.grad(lambda x: dnp.einsum("ij,jk->", x, np.ones((4, 2))))(np.ones((2, 3)))
    with raises(ValueError, "einsum: 2 operand subscripts for 1 operands"):
        dp.grad(lambda x: dnp.einsum("ij,jk->", x))(np.ones((2, 3)))
    with raises(ValueError, "einsum: subscripts 'ijk' do not match an operand of shape (2, 3)"):
        dp.grad(lambda x: dnp.einsum("ijk->", x))(np.ones((2, 3)))


def test_clip_with_no_bounds():
    with raises(ValueError, "clip needs at least one of a_min and a_max"):
        dp.grad(lambda x: dnp.sum(dnp.clip(x)))(np.ones(3))


def test_squeeze_of_a_non_unit_axis():
    with raises(ValueError, "cannot squeeze axis 0 of shape (2, 3): its length is not 1"):
        dp.grad(lambda x: dnp.sum(dnp.squeeze(x, 0)))(np.ones((2, 3)))


def test_squeeze_axis_out_of_range():
    with raises(ValueError, "axis 3 is out of bounds"):
        dp.grad(lambda x: dnp.sum(dnp.squeeze(x, 3)))(np.ones((1, 3)))


def test_swapaxes_out_of_range_and_matrix_transpose_of_a_vector():
    with raises((ValueError, IndexError), "axis 3 is out of bounds"):
        dp.grad(lambda x: dnp.sum(dnp.swapaxes(x, 0, 3)))(np.ones((2, 3)))
    with raises((ValueError, IndexError), "x.mT needs at least 2 dimensions", "shape (3,)"):
        dp.grad(lambda x: dnp.sum(x.mT))(np.ones(3))


def test_transpose_with_bad_axes():
    with raises(ValueError, "axes (0, 0) do not match an array of dimension 2"):
        dp.grad(lambda x: dnp.sum(dnp.transpose(x, (0, 0))))(np.ones((2, 3)))


def test_linear_algebra_mistakes():
    with raises(ValueError, "inv: last 2 dimensions of the array must be square, got (2, 3)"):
        dp.grad(lambda x: dnp.sum(dnp.linalg.inv(x)))(np.ones((2, 3)))
    with raises(np.linalg.LinAlgError, "solve: Singular matrix", "shape (2, 2) float64"):
        dp.grad(lambda x: dnp.sum(dnp.linalg.solve(x, np.ones(2))))(np.zeros((2, 2)))


def test_unsupported_options():
    with raises(NotImplementedError, "sum: the `out` option is not supported"):
        dp.grad(lambda x: dnp.sum(x, out=np.ones(())))(np.ones(3))
    with raises(NotImplementedError, "reshape supports order='C' only"):
        dp.grad(lambda x: dnp.sum(dnp.reshape(x, (3,), order="F")))(np.ones(3))


# --- the tape --------------------------------------------------------------------------------------
def test_second_gradient_on_a_non_persistent_tape():
    with dp.Tape() as tape:
        x = tape.watch(np.ones(2))
        y = dnp.sum(x * x)
    tape.gradient(y, x)
    with raises(dp.DiffprogError, "not persistent", "already taken", "dp.Tape(persistent=True)"):
        tape.gradient(y, x)


def test_tape_watch_outside_its_block():
    tape = dp.Tape()
    with tape:
        pass
    for t in (tape, dp.Tape()):
        with raises(dp.DiffprogError, "tape.watch() was called outside the tape's `with` block",
                    "with dp.Tape() as tape: x = tape.watch(x)"):  # fmt: skip
            t.watch(np.ones(2))


def test_tape_misuse():
    with raises(dp.DiffprogError, "tape.gradient() needs a tape that recorded something"):
        dp.Tape().gradient(1.0, 1.0)
    with dp.Tape(persistent=True) as tape:
        x = tape.watch({"w": np.ones(2)})
        constant = np.ones(2) * 3.0
        y = x["w"] * 2.0
        z = dnp.sum(y * constant)
    with raises(dp.DiffprogError, "source['b'] was not watched by this tape", "tape.watch(...)"):
        tape.gradient(z, {"b": constant})
    with raises(dp.DiffprogError, "source was computed on the tape, not watched"):
        tape.gradient(z, y)
    with raises(dp.DiffprogError, "a dp.Tape can be entered once; make a new Tape"):
        tape.__enter__()


def test_tape_output_gradients_of_the_wrong_shape():
    with dp.Tape() as tape:
        x = tape.watch(np.ones(2))
        y = x * 2.0
    with raises(dp.StructureError, "output_gradients has shape (3,)", "target has shape (2,)"):
        tape.gradient(y, x, output_gradients=np.ones(3))


# --- containers ------------------------------------------------------------------------------------
def test_unregistered_dataclass_holding_floats_is_refused():
    """An unregistered dataclass is one opaque leaf: holding floats, it would get a None
    adjoint, so it is refused with the fix (register it); holding none, it is a constant."""

    @dataclasses.dataclass
    class Params:
        w: np.ndarray

    with raises(dp.UnsupportedLeafError, "p: unregistered dataclass", "Params holds floating",
                "dp.tree.register_dataclass(Params)"):
        dp.grad(lambda p: dnp.sum(p.w))(Params(np.ones(2)))
    assert dp.grad(lambda p, x: dnp.sum(x))(Params(np.arange(2)), np.ones(2)) is None

