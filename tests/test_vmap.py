"""dp.vmap: batched results equal a Python loop over the examples, stacked (values and
derivatives, float64 and float32, broadcasting shapes); in_axes/out_axes conventions;
nesting and composition with the other transforms; the errors."""

from __future__ import annotations

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.testing import check_grads


def looped(f, args, in_axes=0):
    """What dp.vmap(f, in_axes)(*args) must return: f on each example, stacked on axis 0."""
    axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
    size = next(np.shape(a)[ax] for a, ax in zip(args, axes) if ax is not None)
    outs = [f(*(a if ax is None else np.take(a, i, axis=ax) for a, ax in zip(args, axes)))
            for i in range(size)]
    return dp.tree.map(lambda *xs: np.stack([np.asarray(x) for x in xs]), *outs)


def assert_batched_equal(f, args, in_axes=0, rtol=1e-12):
    got = dp.vmap(f, in_axes=in_axes)(*args)
    want = looped(f, args, in_axes)
    assert dp.tree.structure(got) == dp.tree.structure(want)
    for g, w in zip(dp.tree.leaves(got), dp.tree.leaves(want)):
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=0 if rtol < 1e-8 else 1e-6)


rng = np.random.default_rng(0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shapes,in_axes", [
    (((5, 3), (3,)), (0, None)),          # a batched vector beside a shared one
    (((5,), (2, 3)), (0, None)),          # a batched scalar beside a shared matrix
    (((3, 5), (5, 2, 3)), (1, 0)),        # both batched, on different axes
    (((2, 3, 5), (2, 1)), (-1, None)),    # a negative axis; the shared one broadcasts
])
def test_elementwise_broadcasting(dtype, shapes, in_axes):
    x, y = (rng.normal(size=s).astype(dtype) for s in shapes)
    rtol = 1e-12 if dtype == np.float64 else 1e-6
    assert_batched_equal(lambda a, b: dnp.exp(a) * b - dnp.maximum(a, b) / 2.0, (x, y), in_axes,
                         rtol)
    assert_batched_equal(lambda a, b: dnp.where(a > b, dnp.sin(a), b ** 2), (x, y), in_axes, rtol)


@pytest.mark.parametrize("axis", [None, 0, -1, (0, 1)])
@pytest.mark.parametrize("keepdims", [False, True])
def test_reductions(axis, keepdims):
    x = rng.normal(size=(4, 3, 2))
    for fn in (dnp.sum, dnp.mean, dnp.max, dnp.min, dnp.prod, dnp.logsumexp):
        assert_batched_equal(lambda a, fn=fn: fn(a, axis=axis, keepdims=keepdims), (x,))
    assert_batched_equal(lambda a: dnp.argmax(a, axis=None if axis is None else -1), (x,))
    assert_batched_equal(lambda a: dnp.cumsum(a, axis=None if axis is None else -1), (x,))
    assert_batched_equal(lambda a: dnp.softmax(a, axis=-1), (x,))


def test_primitive_without_rule_loops():
    """The fallback: a primitive with no rule runs once per example, results stacked."""
    from diffprog.numpy.joins import _split
    assert _split.batch is None  # (if this gains a rule, pick another primitive here)
    x = rng.normal(size=(4, 6))
    assert_batched_equal(lambda a: dnp.split(a, 3), (x,))
    assert_batched_equal(lambda a: dp.grad(lambda b: dnp.sum(dnp.split(b, 2)[1] ** 2))(a), (x,))


def test_pytrees_in_axes_out_axes_and_kwargs():
    params = {"w": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    xs = rng.normal(size=(3, 7))

    def f(p, x, *, scale):
        return {"y": dnp.tanh(x @ p["w"] + p["b"]) * scale, "n": dnp.sum(x)}

    scale = rng.normal(size=(7, 1))
    out = dp.vmap(f, in_axes=({"w": None, "b": None}, 1), out_axes={"y": -1, "n": 0})(
        params, xs, scale=scale)
    for i in range(7):
        want = f(params, xs[:, i], scale=scale[i])
        np.testing.assert_allclose(out["y"][..., i], want["y"], rtol=1e-12)
        np.testing.assert_allclose(out["n"][i], want["n"], rtol=1e-12)
    # an output that is the same for every example: repeated, or left alone with None
    got = dp.vmap(lambda x, c: (x * 2.0, c + 1.0, c), in_axes=(0, None), out_axes=(0, 0, None))(
        np.arange(3.0), 5.0)
    np.testing.assert_array_equal(got[1], [6.0, 6.0, 6.0])
    assert got[2] == 5.0
    assert dp.vmap(lambda: 1.0, axis_size=4)().shape == (4,)


def test_per_example_gradients_and_composition():
    w = rng.normal(size=(3, 2))
    xs, ys = rng.normal(size=(6, 3)), rng.normal(size=(6, 2))

    def loss(w, x, y):
        return dnp.sum((dnp.tanh(x @ w) - y) ** 2)

    per_example = dp.vmap(dp.grad(loss), in_axes=(None, 0, 0))(w, xs, ys)
    np.testing.assert_allclose(per_example, looped(dp.grad(loss), (w, xs, ys), (None, 0, 0)),
                               rtol=1e-12)
    total = dp.grad(lambda w: dnp.sum(dp.vmap(loss, in_axes=(None, 0, 0))(w, xs, ys)))(w)
    np.testing.assert_allclose(total, per_example.sum(0), rtol=1e-12)
    # forward mode both ways, and second order through vmap
    t = rng.normal(size=(6, 3))
    jv = dp.vmap(lambda x, t: dp.jvp(lambda x: loss(w, x, ys[0]), (x,), (t,))[1])(xs, t)
    np.testing.assert_allclose(jv, looped(lambda x, t: dp.jvp(lambda x: loss(w, x, ys[0]),
                                                              (x,), (t,))[1], (xs, t)))
    check_grads(lambda x: dp.vmap(loss, in_axes=(None, 0, 0))(w, x, ys), (xs,), order=2)


def test_nested_vmap_and_vmap_of_grad_of_vmap():
    x = rng.normal(size=(4, 5, 3))
    inner = dp.vmap(lambda r: dnp.sum(dnp.sin(r) * r))  # over the 5 rows of one example
    np.testing.assert_allclose(dp.vmap(inner)(x), np.sum(np.sin(x) * x, axis=-1), rtol=1e-12)
    np.testing.assert_allclose(dp.vmap(dp.vmap(dnp.outer, in_axes=(0, None)), in_axes=(None, 0))(
        x[0], x[1]).shape, (5, 5, 3, 3))
    g = dp.vmap(dp.grad(lambda m: dnp.sum(inner(m) ** 2)))(x)
    s = np.sum(np.sin(x) * x, axis=-1, keepdims=True)
    np.testing.assert_allclose(g, 2 * s * (np.cos(x) * x + np.sin(x)), rtol=1e-12)


def test_control_flow_on_a_batched_value_is_an_error():
    def f(x):
        if x > 0:  # cannot pick one branch for every example
            return x
        return -x

    with pytest.raises(dp.BatchedControlFlowError, match=r"dnp\.where.*") as info:
        dp.vmap(f)(np.array([1.0, -2.0]))
    assert "if x > 0:" in str(info.value) and "test_vmap.py" in str(info.value)
    with pytest.raises(dp.BatchedControlFlowError, match="int"):
        dp.vmap(lambda n: dnp.zeros(int(n)))(np.array([1.0, 2.0]))
    # shared values still steer Python as usual
    out = dp.vmap(lambda x, c: x if c > 0 else -x, in_axes=(0, None))(np.array([1.0, -2.0]), 1.0)
    np.testing.assert_array_equal(out, [1.0, -2.0])


def test_errors_name_the_leaves():
    with pytest.raises(ValueError, match=r"argument 0\['a'\]: 3, argument 1: 4"):
        dp.vmap(lambda p, x: p["a"] * x)({"a": np.ones(3)}, np.ones(4))
    with pytest.raises(ValueError, match=r"axis 2 of argument 0, which has shape \(3, 2\)"):
        dp.vmap(lambda x: x, in_axes=2)(np.ones((3, 2)))
    with pytest.raises(dp.StructureError, match="in_axes has 1 entries"):
        dp.vmap(lambda x, y: x, in_axes=(0,))(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="no argument is batched"):
        dp.vmap(lambda x: x, in_axes=None)(np.ones(3))
    with pytest.raises(ValueError, match=r"out_axes is None for the output\[0\]"):
        dp.vmap(lambda x: (x,), out_axes=None)(np.ones(3))
