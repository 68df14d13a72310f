"""dp.Tape: the imperative API, pytree sources and targets, persistence, nesting."""

from __future__ import annotations

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp


def test_gradient_over_pytree_sources_keeps_structure_and_types():
    params = {"w": np.array([1.0, 2.0], dtype=np.float32), "b": 0.5, "n": 3, "unused": 2.0}
    with dp.Tape() as tape:
        p = tape.watch(params)
        loss = dnp.sum(p["w"] ** 2) * p["b"] * p["n"]
    g = tape.gradient(loss, p)
    assert list(g) == ["w", "b", "n", "unused"]
    np.testing.assert_allclose(g["w"], 2 * params["w"] * 0.5 * 3)
    assert g["w"].dtype == np.float32
    assert g["b"] == pytest.approx(5.0 * 3) and type(g["b"]) is float
    assert g["n"] is None and g["unused"] == 0.0


def test_pytree_target_and_output_gradients():
    with dp.Tape() as tape:
        x = tape.watch(np.array([1.0, 2.0]))
        target = {"a": x * 2.0, "b": (dnp.sum(x**2),)}
    g = tape.gradient(target, x, output_gradients={"a": np.array([1.0, 0.0]), "b": (3.0,)})
    np.testing.assert_allclose(g, [2.0 + 6.0, 12.0])


def test_persistent_tape_allows_several_gradients():
    with dp.Tape(persistent=True) as tape:
        x = tape.watch(2.0)
        y = x**2
        z = x**3
    assert tape.gradient(y, x) == 4.0
    assert tape.gradient(z, x) == 12.0


def test_non_persistent_tape_refuses_a_second_gradient():
    with dp.Tape() as tape:
        x = tape.watch(2.0)
        y = x**2
    assert tape.gradient(y, x) == 4.0
    with pytest.raises(dp.DiffprogError, match="persistent=True"):
        tape.gradient(y, x)


def test_watch_outside_the_block_is_refused():
    tape = dp.Tape()
    with pytest.raises(dp.DiffprogError, match="with"):
        tape.watch(1.0)
    with tape:
        pass
    with pytest.raises(dp.DiffprogError, match="outside"):
        tape.watch(1.0)


def test_source_not_watched_is_named():
    with dp.Tape() as tape:
        x = tape.watch(1.0)
        y = x * 2.0
    with pytest.raises(dp.DiffprogError, match=r"source\['y'\] was computed on the tape"):
        tape.gradient(y, {"x": x, "y": y})


def test_nested_tapes_give_second_derivatives():
    with dp.Tape() as outer:
        x = outer.watch(3.0)
        with dp.Tape() as inner:
            y = inner.watch(x)
            z = dnp.sin(y) * y**2
        dz = inner.gradient(z, y)
    d2 = outer.gradient(dz, x)
    expected = -np.sin(3.0) * 9 + 4 * 3.0 * np.cos(3.0) + 2 * np.sin(3.0)
    assert d2 == pytest.approx(expected)


@pytest.mark.parametrize("persistent", [False, True])
def test_an_outer_tape_differentiates_what_an_inner_tape_recorded(persistent):
    """A value computed inside a closed inner tape, from a value the outer one watches, is
    a target of the outer tape like any other (its gradient was silently zero)."""
    x0 = np.array([1.0, 2.0])
    with dp.Tape(persistent=persistent) as outer:
        x = outer.watch(x0)
        with dp.Tape() as inner:
            x2 = inner.watch(x)
            y = {"cube": dnp.sum(x2**3), "g": None}
        g = inner.gradient(y["cube"], x2)
        both = (y, dnp.sum(g))
    np.testing.assert_allclose(outer.gradient(both, x), 3.0 * x0**2 + 6.0 * x0)
    if persistent:
        np.testing.assert_allclose(outer.gradient(y["cube"], x), 3.0 * x0**2)


def test_watching_a_value_the_tape_records_already():
    """A watched value watched again stays itself, as in TensorFlow; one computed on the tape
    is refused, named (both made a tracer holding a tracer of the same tape, which the
    backward pass, after the block, refused as an escaped value)."""
    with dp.Tape() as tape:
        x = tape.watch({"a": np.ones(2)})
        again = tape.watch(x)
        y = dnp.sum(again["a"] ** 2) + dnp.sum(x["a"])
        with pytest.raises(dp.DiffprogError, match=r"tape.watch: the value\['b'\] was computed on this tape"):
            tape.watch({"b": x["a"] * 2.0})
    assert again["a"] is x["a"]
    np.testing.assert_array_equal(tape.gradient(y, again)["a"], 3.0 * np.ones(2))


def test_gradient_with_respect_to_a_watched_array_written_in_place():
    """`x[0] = ...` rebinds the watched tracer; the gradient is the input's, as dp.grad's
    (it was refused: \"source was computed on the tape\")."""

    def f(x):
        x[0] = x[1] * 5.0
        return dnp.sum(x**2)

    x0 = np.array([1.0, 2.0, 3.0])
    with dp.Tape() as tape:
        x = tape.watch(x0.copy())
        y = f(x)
    g = tape.gradient(y, x)
    np.testing.assert_array_equal(g, [0.0, 104.0, 6.0])
    np.testing.assert_array_equal(g, dp.grad(f)(x0.copy()))


def test_tape_agrees_with_grad():
    f = lambda p: dnp.sum(dnp.tanh(p["W"] @ p["x"]))  # noqa: E731
    params = {"W": np.arange(6.0).reshape(2, 3) / 10, "x": np.array([1.0, -1.0, 0.5])}
    with dp.Tape() as tape:
        p = tape.watch(params)
        y = f(p)
    g_tape, g_grad = tape.gradient(y, p), dp.grad(f)(params)
    for k in params:
        np.testing.assert_array_equal(g_tape[k], g_grad[k])
