"""grad / value_and_grad / vjp / jvp over structured arguments: closed forms, exact adjoint
structure, leaf types, control flow, higher order and the errors users see."""

from __future__ import annotations

import collections
import dataclasses
import math

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp

Point = collections.namedtuple("Point", ["x", "y"])


@dp.tree.register_dataclass
@dataclasses.dataclass
class Layer:
    W: np.ndarray
    b: np.ndarray
    name: str = dataclasses.field(default="layer", metadata={"static": True})


# --- closed forms over nested structures with loops, ifs and recursion ----------------------
def test_nested_dict_list_tuple_namedtuple_dataclass_closed_form():
    params = {
        "z": [2.0, (np.array([1.0, 2.0]), Point(x=3.0, y=np.float32(4.0)))],
        "a": Layer(W=np.array([[1.0, 2.0], [3.0, 4.0]]), b=np.array([0.5, -0.5])),
        "count": 3,
    }

    def f(p):
        s, (v, pt) = p["z"]
        total = 0.0
        for _ in range(p["count"]):  # loop over a constant leaf
            total = total + s * dnp.sum(v * v)
        if pt.x > 2.0:  # an if on a traced value
            total = total + pt.x * pt.y
        else:
            total = total - pt.x
        return total + dnp.sum(p["a"].W @ p["a"].b)

    g = dp.grad(f)(params)
    s, v, x, y = 2.0, np.array([1.0, 2.0]), 3.0, 4.0
    W, b = params["a"].W, params["a"].b
    assert list(g) == ["z", "a", "count"]
    assert g["count"] is None
    assert isinstance(g["z"], list) and isinstance(g["z"][1], tuple)
    assert g["z"][0] == pytest.approx(3 * np.sum(v * v)) and type(g["z"][0]) is float
    np.testing.assert_allclose(g["z"][1][0], 3 * 2 * s * v)
    assert type(g["z"][1][1]) is Point
    assert g["z"][1][1].x == pytest.approx(y) and type(g["z"][1][1].x) is float
    assert g["z"][1][1].y == pytest.approx(x) and type(g["z"][1][1].y) is np.float32
    assert type(g["a"]) is Layer and g["a"].name == "layer"
    np.testing.assert_allclose(g["a"].W, np.outer(np.ones(2), b))
    np.testing.assert_allclose(g["a"].b, W.sum(axis=0))


def test_recursion_closed_form():
    def power(x, n):
        return 1.0 if n == 0 else x * power(x, n - 1)

    assert dp.grad(power)(1.5, 5) == pytest.approx(5 * 1.5**4)
    assert dp.grad(dp.grad(power))(1.5, 5) == pytest.approx(20 * 1.5**3)


def test_while_loop_on_concrete_values():
    def f(x):
        steps = 0
        while x < 10.0:
            x = x * 3.0
            steps += 1
        return x

    assert dp.grad(f)(0.5) == pytest.approx(27.0)  # 0.5 * 3^3 = 13.5 >= 10


def test_branch_taken_is_what_is_differentiated():
    f = lambda x: dnp.sin(x) if x > 0 else x**2  # noqa: E731
    assert dp.grad(f)(0.5) == pytest.approx(math.cos(0.5))
    assert dp.grad(f)(-0.5) == pytest.approx(-1.0)


# --- exact adjoint structure and leaf types --------------------------------------------------
def test_dict_key_order_is_the_callers():
    params = {"zeta": 1.0, "alpha": 2.0, "mid": {"y": 3.0, "b": 4.0}}
    g = dp.grad(lambda p: p["zeta"] * p["alpha"] + p["mid"]["y"] * p["mid"]["b"])(params)
    assert list(g) == ["zeta", "alpha", "mid"] and list(g["mid"]) == ["y", "b"]
    assert g == {"zeta": 2.0, "alpha": 1.0, "mid": {"y": 4.0, "b": 3.0}}


def test_ordered_dict_and_defaultdict_keep_their_type():
    od = collections.OrderedDict([("b", 1.0), ("a", 2.0)])
    dd = collections.defaultdict(list, {"q": 3.0, "p": 4.0})
    g = dp.grad(lambda t: t[0]["b"] * t[0]["a"] + t[1]["q"] * t[1]["p"])((od, dd))
    assert type(g[0]) is collections.OrderedDict and list(g[0]) == ["b", "a"]
    assert type(g[1]) is collections.defaultdict and g[1].default_factory is list
    assert list(g[1]) == ["q", "p"] and g[1]["q"] == 4.0


@pytest.mark.parametrize(
    "leaf, kind",
    [
        (2.0, float),
        (np.float32(2.0), np.float32),
        (np.float64(2.0), np.float64),
        (np.array(2.0), np.ndarray),
        (np.array([2.0, 3.0], dtype=np.float32), np.ndarray),
        (np.array([[2.0]], dtype=np.float16), np.ndarray),
    ],
    ids=["float", "f32 scalar", "f64 scalar", "0-d", "f32 array", "f16 array"],
)
def test_floating_leaf_adjoint_has_its_type_shape_and_dtype(leaf, kind):
    g = dp.grad(lambda p: dnp.sum(p["x"] * p["x"]))({"x": leaf, "other": leaf})
    for adj, expected in [(g["x"], 2 * np.asarray(leaf)), (g["other"], 0 * np.asarray(leaf))]:
        assert type(adj) is kind
        assert np.shape(adj) == np.shape(leaf)
        assert np.asarray(adj).dtype == np.asarray(leaf).dtype
        np.testing.assert_allclose(np.asarray(adj, dtype=np.float64), expected)
    assert g["other"] is not leaf and np.all(np.asarray(g["other"]) == 0)  # real zeros


@pytest.mark.parametrize(
    "constant", [3, True, "name", None, np.arange(3), np.array([True, False]), object()],
    ids=["int", "bool", "str", "None", "int array", "bool array", "object"],
)
def test_constant_leaves_get_none(constant):
    g = dp.grad(lambda p: p["w"] * 2.0)({"w": 1.0, "c": constant})
    assert g == {"w": 2.0, "c": None}


def test_gradient_arrays_are_writeable_and_owned():
    g = dp.grad(lambda x: dnp.sum(x))(np.ones((2, 3)))  # the VJP is a broadcast view inside
    g += 1.0
    np.testing.assert_array_equal(g, 2 * np.ones((2, 3)))


def test_argnums_and_has_aux():
    def f(x, y, z):
        return x * y * z, {"xy": x * y}

    gx, gz = dp.grad(f, argnums=(0, 2), has_aux=True)(2.0, 3.0, 4.0)[0]
    assert (gx, gz) == (12.0, 6.0)
    (value, aux), g = dp.value_and_grad(f, argnums=-2, has_aux=True)(2.0, 3.0, 4.0)
    assert value == 24.0 and g == 8.0
    assert aux == {"xy": 6.0} and not isinstance(aux["xy"], dp.core.trace.Tracer)
    assert dp.grad(lambda x, scale=1.0: x * scale)(2.0, scale=3.0) == 3.0  # kwargs pass through


def test_vjp_with_pytree_output_and_cotangent():
    def f(x, y):
        return {"sum": x + y, "prod": (x * y, 7)}

    x, y = np.array([1.0, 2.0]), np.array([3.0, 4.0])
    out, vjp_fn = dp.vjp(f, x, y)
    np.testing.assert_array_equal(out["prod"][0], x * y)
    ct = {"sum": np.array([1.0, 0.0]), "prod": (np.array([0.0, 1.0]), None)}
    gx, gy = vjp_fn(ct)
    np.testing.assert_array_equal(gx, [1.0, 4.0])
    np.testing.assert_array_equal(gy, [1.0, 2.0])
    gx2, _ = vjp_fn(ct)  # vjp_fn may be called again
    np.testing.assert_array_equal(gx2, gx)


def test_identity_and_repeated_outputs():
    _, vjp_fn = dp.vjp(lambda x: (x, x), np.array([1.0, 2.0]))
    np.testing.assert_array_equal(vjp_fn((np.ones(2), np.ones(2)))[0], [2.0, 2.0])


def test_jvp_over_pytrees():
    f = lambda p: {"a": p["x"] * p["y"], "n": 3}  # noqa: E731
    out, t = dp.jvp(f, ({"x": 2.0, "y": np.array([1.0, 3.0])},), ({"x": 1.0, "y": None},))
    np.testing.assert_array_equal(out["a"], [2.0, 6.0])
    np.testing.assert_array_equal(t["a"], [1.0, 3.0])
    assert t["n"] is None


# --- higher order and nesting -----------------------------------------------------------------
def test_third_order_closed_forms():
    assert dp.grad(dp.grad(dp.grad(lambda x: x**4)))(1.5) == pytest.approx(24 * 1.5)
    assert dp.grad(dp.grad(dp.grad(dnp.sin)))(0.3) == pytest.approx(-math.cos(0.3))
    x = np.array([0.2, -0.4])
    h = dp.grad(lambda x: dnp.sum(dp.grad(lambda y: dnp.sum(dnp.exp(y) * y))(x)))(x)
    np.testing.assert_allclose(h, np.exp(x) * (x + 2))


def test_no_perturbation_confusion_reverse_in_reverse():
    assert dp.grad(lambda x: x * dp.grad(lambda y: x * y)(2.0))(1.0) == 2.0


def test_no_perturbation_confusion_forward_in_forward():
    f = lambda x: x * dp.jvp(lambda y: x * y, (2.0,), (1.0,))[1]  # noqa: E731
    assert dp.jvp(f, (1.0,), (1.0,))[1] == 2.0


def test_no_perturbation_confusion_forward_over_reverse_and_back():
    inner = lambda x: dp.grad(lambda y: x * y * y)(1.0)  # 2x  # noqa: E731
    assert dp.jvp(lambda x: x * inner(x), (3.0,), (1.0,))[1] == 12.0  # d/dx 2x^2
    inner_fwd = lambda x: dp.jvp(lambda y: x * y * y, (1.0,), (1.0,))[1]  # noqa: E731
    assert dp.grad(lambda x: x * inner_fwd(x))(3.0) == 12.0


def test_long_chain_has_no_recursion_limit():
    def f(x):
        for _ in range(100_000):
            x = x * 1.0000001
        return x

    assert dp.grad(f)(1.0) == pytest.approx(1.0000001**100_000)


def test_gradient_through_escaped_tracer_raises():
    leaked = []

    def f(x):
        leaked.append(x * 2.0)
        return x

    dp.grad(f)(1.0)
    with pytest.raises(dp.EscapedTracerError, match="after dp.grad returned"):
        dp.grad(lambda y: y * leaked[0])(1.0)
    with pytest.raises(dp.EscapedTracerError):
        leaked[0] + 1.0


# --- errors ----------------------------------------------------------------------------------
def test_non_scalar_output_error_gives_shape_and_hint():
    with pytest.raises(dp.NonScalarOutputError, match=r"shape \(3,\).*dp.vjp"):
        dp.grad(lambda x: x * 2.0)(np.ones(3))
    with pytest.raises(dp.NonScalarOutputError, match="returned a tuple"):
        dp.grad(lambda x: (x, x))(1.0)
    with pytest.raises(dp.NonScalarOutputError, match="non-floating"):
        dp.grad(lambda x: x > 0)(1.0)
    assert dp.grad(lambda x: dnp.sum(x, keepdims=True))(np.ones(2)).tolist() == [1.0, 1.0]


def test_complex_leaves_get_complex_adjoints_of_their_type():
    g = dp.grad(lambda p: 1.0)({"w": [1.0, np.ones(2, dtype=np.complex64)]})
    assert g["w"][0] == 0.0 and g["w"][1].dtype == np.complex64 and not g["w"][1].any()
    g = dp.grad(lambda z: dnp.real(z) * dnp.imag(z))(2 + 3j)
    assert type(g) is complex and g == 3 - 2j  # d/dx - i d/dy of x y


def test_unsupported_leaf_type_names_key_path():
    from fractions import Fraction

    with pytest.raises(dp.UnsupportedLeafError, match=r"p\['lr'\]: Fraction"):
        dp.grad(lambda p: p["w"])({"w": 1.0, "lr": Fraction(1, 3)})
    with pytest.raises(dp.UnsupportedLeafError, match=r"argument 0\[0\]: array of dtype object"):
        dp.grad(lambda *a: 1.0)([np.array([1.0, None])])


def test_incompatible_shapes_show_both_shapes():
    with pytest.raises(ValueError, match=r"add: .*shape \(3,\) float64, shape \(4,\) float64"):
        dp.grad(lambda x: dnp.sum(x + np.ones(4)))(np.ones(3))
    with pytest.raises(ValueError, match=r"matmul: .*shape \(2, 3\) float64, shape \(2, 3\)"):
        dp.grad(lambda x: dnp.sum(x @ x))(np.ones((2, 3)))


def test_vjp_cotangent_mismatch_errors():
    _, vjp_fn = dp.vjp(lambda x: {"a": x, "b": x}, np.ones(2))
    with pytest.raises(dp.StructureError, match="structure"):
        vjp_fn({"a": np.ones(2)})
    with pytest.raises(dp.StructureError, match=r"output\['b'\] has shape \(3,\), but the output\['b'\] has shape \(2,\)"):
        vjp_fn({"a": np.ones(2), "b": np.ones(3)})


def test_bad_argnums_and_has_aux():
    with pytest.raises(ValueError, match="argnums=2"):
        dp.grad(lambda x, y: x * y, argnums=2)(1.0, 2.0)
    with pytest.raises(TypeError, match="pair"):
        dp.grad(lambda x: x, has_aux=True)(1.0)


# --- values saved for the backward pass -------------------------------------------------------
def test_vjp_outputs_are_copies_so_mutating_them_is_safe():
    x = np.array([1.0, 2.0])
    out, vjp_fn = dp.vjp(dnp.exp, x)  # exp saves its output for the backward pass
    out -= 100.0
    np.testing.assert_allclose(vjp_fn(np.ones(2))[0], np.exp(x))


def test_vjp_refuses_an_input_changed_in_place():
    params = {"W": np.ones(3), "b": 2.0}
    _, vjp_fn = dp.vjp(lambda p: p["W"] * p["W"] * p["b"], params)
    params["W"][0] = 5.0
    with pytest.raises(ValueError, match=r"primal 0\['W'\] was modified in place"):
        vjp_fn(np.ones(3))


def test_jvp_treats_unperturbed_inputs_like_perturbed_ones():
    """An input with a None tangent is still traced, so the same code runs either way."""

    def f(x, v):
        y = x * 1.0
        y[0] = v  # item assignment needs a traced y
        return y

    out, t = dp.jvp(f, (np.ones(2), 3.0), (None, 1.0))
    np.testing.assert_array_equal(out, [3.0, 1.0])
    np.testing.assert_array_equal(t, [1.0, 0.0])


def test_the_collector_does_not_walk_the_live_tape_between_recording_and_the_sweep():
    """value_and_grad keeps Python's cyclic collector paused until its tape is freed: resumed
    between recording and the sweep, the collector's next pass walked every record (16-42 ms
    of a 300 ms gradient of a 100,000-op chain). A pass after the tape is freed is cheap."""
    import gc

    walked = []  # how many objects each pass of the collector found to walk

    def seen(phase: str, info: dict) -> None:
        if phase == "start":
            walked.append(sum(len(gc.get_objects(i)) for i in range(info["generation"] + 1)))

    def f(x):
        for _ in range(1000):  # thousands of records: far above the collector's threshold
            x = dnp.sin(x) * 0.5
        return dnp.sum(x)

    x = np.linspace(-0.5, 1.0, 4)
    was_enabled = gc.isenabled()
    gc.enable()
    gc.collect()
    gc.callbacks.append(seen)
    try:
        value, g = dp.value_and_grad(f)(x)
    finally:
        gc.callbacks.remove(seen)
        if not was_enabled:
            gc.disable()
    assert all(n < 2000 for n in walked), walked  # (the live tape: about 6000 objects)
    y, dy = x, np.ones_like(x)
    for _ in range(1000):
        dy, y = dy * 0.5 * np.cos(y), 0.5 * np.sin(y)
    np.testing.assert_allclose(value, y.sum())
    np.testing.assert_allclose(g, dy, rtol=1e-12)
