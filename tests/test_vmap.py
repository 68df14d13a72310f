"""dp.vmap: batched results equal a Python loop over the examples, stacked (values and
derivatives, float64 and float32, broadcasting shapes); in_axes/out_axes conventions;
nesting and composition with the other transforms; the errors."""

from __future__ import annotations

import functools

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


_MASKED = {"sum": lambda a, m: dnp.sum(a, axis=-1, where=m),
           "mean": lambda a, m: dnp.mean(a, where=m),
           "max": lambda a, m: dnp.max(a, axis=0, where=m, initial=-0.5),
           "min": lambda a, m: dnp.min(a, where=m, initial=0.5),
           "prod": lambda a, m: dnp.prod(a, axis=(0, 1), keepdims=True, where=m),
           "var": lambda a, m: dnp.var(a, axis=-1, ddof=1, where=m),
           "std": lambda a, m: dnp.std(a, where=m),
           "nanmean": lambda a, m: dnp.nanmean(a, axis=-1, where=m)}  # fmt: skip


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", _MASKED)
def test_reductions_with_a_where_mask_of_each_examples_own(name, dtype):
    """where= masks that differ between examples, on an array shared by every example or
    batched too, the mask as large as one example or broadcasting over it: values and both
    modes in both orders equal the loop; against central differences in float64."""
    f, rtol = _MASKED[name], 1e-12 if dtype == np.float64 else 1e-5
    xs = rng.uniform(0.5, 1.5, size=(3, 4, 5)).astype(dtype)
    full = rng.random((3, 4, 5)) > 0.3
    full[:, :, :2] = True  # (every group of the reductions keeps at least two entries)
    for x, in_axes in ((xs[0], (None, 0)), (xs, (0, 0))):
        for m in (full, full[:, 0]):  # one example's mask: (4, 5), or (5,) broadcast over (4, 5)
            grad = dp.grad(lambda a, m: dnp.sum(f(a, m) ** 2))
            assert_batched_equal(f, (x, m), in_axes, rtol)
            assert_batched_equal(grad, (x, m), in_axes, rtol)
            batch_grad = dp.grad(lambda a: dnp.sum(dp.vmap(f, in_axes)(a, m) ** 2))(x)
            per_example = looped(grad, (x, m), in_axes)
            np.testing.assert_allclose(batch_grad, per_example if in_axes[0] == 0 else
                                       per_example.sum(0), rtol=rtol * 10, atol=1e-6)  # fmt: skip
            tangent = dp.jvp(lambda a: dp.vmap(f, in_axes)(a, m), (x,), (dnp.cos(x),))[1]
            np.testing.assert_allclose(tangent, looped(
                lambda a, m: dp.jvp(lambda a: f(a, m), (a,), (dnp.cos(a),))[1], (x, m), in_axes),
                rtol=rtol * 10, atol=1e-6)  # fmt: skip
            if dtype == np.float64:
                check_grads(lambda a: dp.vmap(f, in_axes)(a, m), (x,), order=1)
    with pytest.raises(TypeError, match="where= must be a boolean mask, got dtype int64"):
        dp.vmap(f, in_axes=(None, 0))(xs[0], full.astype(np.int64))
    with pytest.raises(ValueError, match=r"where= of shape \(3,\) does not broadcast"):
        dp.vmap(f, in_axes=(None, 0))(xs[0], full[:, 0, :3])


def test_primitive_without_rule_loops():
    """The fallback: a primitive with no rule runs once per example, results stacked (its
    derivative rules then run batched, in both modes)."""
    from diffprog.core.primitive import Primitive

    cube = Primitive("cube_of_first", lambda xp, x, *, k: x[:k] ** 3)
    cube.defvjp(lambda g, ans, x, *, k: dnp.pad(3.0 * x[:k] ** 2 * g, (0, x.shape[0] - k)))
    cube.defjvp(lambda t, ans, x, *, k: 3.0 * x[:k] ** 2 * t[:k])
    assert cube.batch is None
    x = rng.normal(size=(4, 6))
    assert_batched_equal(lambda a: cube(a, k=2), (x,))
    assert_batched_equal(lambda a: dp.grad(lambda b: dnp.sum(cube(b, k=3)))(a), (x,))
    assert_batched_equal(lambda a: dp.jvp(lambda b: cube(b, k=3), (a,), (a,))[1], (x,))
    with pytest.raises(ValueError, match=r"nonzero gives results of shapes \[\(1,\), \(2,\)\]"):
        dp.vmap(lambda a: dnp.nonzero(a > 0)[0])(np.array([[1.0, -1.0], [1.0, 1.0]]))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_linspace_between_each_examples_ends(axis):
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 2, 4))
    assert_batched_equal(lambda a, b: dnp.linspace(a, b, 5, axis=axis), (a, b))
    assert_batched_equal(lambda a, b: dnp.linspace(a, b, 5, axis=axis), (a[0], b), (None, 0))
    assert_batched_equal(dp.grad(lambda a, b: dnp.sum(dnp.linspace(a, b, 5, axis=axis) ** 2),
                                 argnums=(0, 1)), (a, b))  # fmt: skip


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
    with pytest.raises(ValueError, match=r"keyword argument scale has shape \(\) \(float\), but "
                       r"keyword arguments are batched along axis 0 .*pass it by position"):
        dp.vmap(lambda x, scale=1.0: x * scale)(np.ones(3), scale=2.0)
    with pytest.raises(dp.StructureError, match="in_axes has 1 entries"):
        dp.vmap(lambda x, y: x, in_axes=(0,))(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match="no argument is batched"):
        dp.vmap(lambda x: x, in_axes=None)(np.ones(3))
    with pytest.raises(ValueError, match=r"out_axes is None for the output\[0\]"):
        dp.vmap(lambda x: (x,), out_axes=None)(np.ones(3))


# --- real rules beyond the families: indexing, writes, products, linalg --------------------------
INDICES = [(1,), (slice(1, 3),), (Ellipsis, 2), (None, 0, slice(None)), (np.array([0, 2, 2]),),
           (slice(None), np.array([[1, 0], [3, 3]])), (np.array([0, 1]), slice(None), np.array([2, 3])),
           (0, slice(None), np.array([1, 2])), (np.array([True, False, True, False, True]),),
           (Ellipsis, np.array([1, 2]), 3)]  # fmt: skip


@pytest.mark.parametrize("index", INDICES, ids=range(len(INDICES)))
def test_indexing_with_a_shared_index(index):
    x = rng.normal(size=(3, 5, 6, 7))
    assert_batched_equal(lambda a: a[index], (x,))
    assert_batched_equal(lambda a: dp.grad(lambda b: dnp.sum(dnp.sin(b[index])))(a), (x,))


@pytest.mark.parametrize("pick", [lambda a, i: a[i], lambda a, i: a[:, i], lambda a, i: a[i, 2],
                                  lambda a, i: a[..., i], lambda a, i: a[1, :, i],
                                  lambda a, i: a[i, i]])  # fmt: skip
def test_indexing_with_each_examples_own_index(pick):
    """An index batched with the data (a label per example): one gather for the batch."""
    x = rng.normal(size=(3, 5, 5, 5))
    for i in (rng.integers(0, 5, size=3), rng.integers(0, 5, size=(3, 2))):
        assert_batched_equal(pick, (x, i))
        assert_batched_equal(lambda a, i: dp.grad(lambda b: dnp.sum(dnp.sin(pick(b, i))))(a),
                             (x, i))
        assert_batched_equal(lambda a, i: dp.grad(lambda b: dnp.sum(pick(b, i) ** 2))(a),
                             (x[0], i), (None, 0))  # the data shared, the index not
        of_batch = dp.grad(lambda b: dnp.sum(dp.vmap(lambda i: pick(b, i) ** 2)(i)))(x[0])
        np.testing.assert_allclose(of_batch, looped(  # grad of vmap: the shared data's adjoint
            dp.grad(lambda b, i: dnp.sum(pick(b, i) ** 2)), (x[0], i), (None, 0)).sum(0),
            rtol=1e-12)  # fmt: skip
    with pytest.raises(dp.BatchedControlFlowError, match=r"dnp\.take"):
        dp.vmap(lambda i: np.arange(5.0)[i])(np.array([0, 1]))  # NumPy's own indexing


def test_writes_of_examples_own_values_into_a_shared_array_say_what_to_do():
    """y shared by every example (a plain NumPy array, or a value of an outer transform)
    cannot take one write per example in place: the errors say to allocate y per example
    with dnp.zeros, which works (checked against the loop, the gradient too)."""
    w, xs, i = rng.normal(size=(6, 4)), rng.normal(size=(5, 4)), np.array([0, 2, 5, 2, 1])

    def shared(w, x, i):
        y = w * 1.0
        y[i] = x
        return dnp.sum(dnp.sin(y))

    def own(w, x, i):
        y = dnp.zeros(w.shape)
        y[...] = w * 1.0
        y[i] = x
        return dnp.sum(dnp.sin(y))

    with pytest.raises(dp.BatchedControlFlowError, match=r"plain NumPy array written .*dnp\.zeros"):
        dp.vmap(shared, in_axes=(None, 0, 0))(w, xs, i)
    with pytest.raises(dp.TracerConversionError, match=r"one array shared by all of them.*dnp\.zeros"):
        dp.grad(lambda w: dnp.sum(dp.vmap(shared, in_axes=(None, 0, 0))(w, xs, i)))(w)
    assert_batched_equal(own, (w, xs, i), (None, 0, 0))
    np.testing.assert_allclose(dp.grad(lambda w: dnp.sum(dp.vmap(own, in_axes=(None, 0, 0))(w, xs, i)))(w),
                               looped(dp.grad(own), (w, xs, i), (None, 0, 0)).sum(0), rtol=1e-12)  # fmt: skip


def test_a_batched_scalar_written_into_a_plain_numpy_array_says_what_to_do():
    """NumPy converts a scalar with float() and wraps our refusal in its own "setting an
    array element with a sequence"; dp.vmap raises ours, naming the line and dnp.zeros."""

    def f(v):
        y = np.zeros(3)
        y[0] = v
        return y.sum()

    with pytest.raises(dp.BatchedControlFlowError, match=r"plain NumPy array written .*`y\[0\] = v`.*dnp\.zeros"):
        dp.vmap(f)(np.ones(4))
    with pytest.raises(dp.BatchedControlFlowError, match=r"plain NumPy array written"):
        dp.grad(lambda v: dnp.sum(dp.vmap(f)(v)))(np.ones(4))


def test_item_assignment():
    x = rng.normal(size=(3, 4, 5))

    def fill(a):  # into an array allocated inside
        y = dnp.zeros((4, 5))
        y[1] = a[0] * 2
        y[:, 2] = dnp.sin(a[:, 1])
        y[np.array([0, 3]), 1:3] = 7.0
        return y

    def through_views(a):
        y = a * 1.0
        y[0, 0] = 5.0
        v = y[1]
        v[2:] = a[2, 2:] ** 2
        y.T[3] = 1.0
        y[y > 0.5] = 0.25  # each example's own mask: a select
        return y

    def recurrence(a):
        y = dnp.ones(5)
        for i in range(1, 5):
            y[i] = y[i - 1] * a[0, i]
        return y

    for f in (fill, through_views, recurrence):
        assert_batched_equal(f, (x,))
        assert_batched_equal(lambda a, f=f: dp.grad(lambda a: dnp.sum(f(a) ** 2))(a), (x,))
        assert_batched_equal(lambda a, f=f: dp.jvp(f, (a,), (dnp.cos(a),))[1], (x,))

    def at_own_index(a, i, j):  # each example's own positions: a select
        y = a * 1.0
        y[i, 1] = a[0, 0]
        y[:, j] = dnp.sin(a[:, 0])
        z = dnp.zeros((4, 5))
        z[i] = y[1] * 2.0
        return z

    i, j = np.array([0, 2, -1]), np.array([1, 4, 0])
    for f in (at_own_index, lambda a, i, j: dp.grad(lambda a: dnp.sum(at_own_index(a, i, j) ** 2))(a),
              lambda a, i, j: dp.jvp(lambda a: at_own_index(a, i, j), (a,), (dnp.cos(a),))[1]):
        assert_batched_equal(f, (x, i, j))
    with pytest.raises(IndexError, match="out of bounds for axis 0 with size 4"):  # as NumPy:
        dp.vmap(at_own_index)(x, np.array([0, 4, -1]), j)  # not wrapped around to position 0



def test_writes_at_each_examples_own_boolean_mask_with_array_values():
    """y[mask] = v with a mask per example: v broadcast over the selected elements, or
    listing them in order (every example selecting as many as v lists, as NumPy requires)."""
    x, v = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 2, 5))
    mask = np.array([[1, 0, 0, 1], [1, 1, 1, 0], [0, 0, 0, 0]], bool)  # 2, 3 and 0 rows
    pairs = np.zeros((3, 4), bool)
    pairs[0, [0, 2]] = pairs[1, [1, 3]] = pairs[2, [3, 0]] = True

    def f(a, m, p, v):
        y = a * 1.0
        y[m] = dnp.sin(a[0])       # a (5,) row for each selected row
        y[m[::-1]] = a[1:2] * 2.0  # (1, 5)
        y[p] = v * a[0]            # a listing: v[i] goes to the i-th selected row
        return y

    args = (x, mask, pairs, v)
    assert_batched_equal(f, args)
    assert_batched_equal(dp.grad(lambda a, m, p, v: dnp.sum(dnp.sin(f(a, m, p, v))), argnums=(0, 3)), args)
    assert_batched_equal(lambda a, m, p, v: dp.jvp(lambda a, v: f(a, m, p, v), (a, v), (a, v))[1], args)
    check_grads(lambda a, v: dp.vmap(f)(a, mask, pairs, v), (x, v))
    with pytest.raises(ValueError, match="v lists 2 values, but the mask"):
        dp.vmap(f)(x, mask, mask, v)
    with pytest.raises(IndexError, match="along axis 0; size of axis is 4 but size of "
                                         "corresponding boolean axis is 1"):  # NumPy's check,
        dp.vmap(f)(x, mask[:, :1], pairs, v)  # where a broadcast of the mask would be silent

    def among_others(a, m, n, i):  # a mask or a position among other indices: a scalar value
        y = a * 1.0
        y[:, n] = a[0, 0]
        y[m, 2] = 0.5
        y[1:3, n[::-1]] = dnp.sin(a[1, 1])
        y[i, 1:4] = a[2, 0] ** 2
        return y

    args = (x, mask, np.array([[1, 0, 1, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], bool),
            np.array([0, 3, -1]))  # fmt: skip
    assert_batched_equal(among_others, args)
    assert_batched_equal(dp.grad(lambda a, m, n, i: dnp.sum(dnp.sin(among_others(a, m, n, i)))), args)


def _at_own_index_arrays(a, k, v):
    """Writes at each example's own index arrays: repeated indices (the last write wins),
    a value broadcast over the selection, a slice before the index, a shared index beside
    it, through a view, into an array allocated inside."""
    y = a * 1.0
    y[k] = v * a[0]                    # v: (2, 5) per example, k: (2,) with repeats
    y[:, k[::-1]] = dnp.cos(a[:2, 0])  # the value broadcast over the selection
    y[k, np.array([4, 0])] = v[:, 1] ** 2
    y.T[1, k] = 3.0 * a[3, 3]          # through a view
    z = dnp.zeros((4, 5), dtype=a.dtype)
    z[k] = y[1:3] * v
    return z + y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_derivatives_of_writes_at_each_examples_own_index_arrays(dtype):
    x = rng.normal(size=(3, 4, 5)).astype(dtype)
    v = rng.normal(size=(3, 2, 5)).astype(dtype)
    k = np.array([[0, 1], [2, 2], [3, -1]])  # example 1 writes position 2 twice
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    loss = lambda a, k, v: dnp.sum(dnp.sin(_at_own_index_arrays(a, k, v)) ** 2)  # noqa: E731
    assert_batched_equal(_at_own_index_arrays, (x, k, v), rtol=rtol)
    per_example = dp.grad(loss, argnums=(0, 2))
    assert_batched_equal(per_example, (x, k, v), rtol=rtol)             # vmap of grad
    of_batch = dp.grad(lambda a, v: dnp.sum(dp.vmap(loss)(a, k, v)), argnums=(0, 1))(x, v)
    for got, want in zip(of_batch, looped(per_example, (x, k, v))):    # grad of vmap
        np.testing.assert_allclose(got, want, rtol=rtol, atol=0 if dtype == np.float64 else 1e-6)
    tangents = (dnp.cos(x), v)
    tangent = lambda a, k, v, ta, tv: dp.jvp(  # noqa: E731
        lambda a, v: _at_own_index_arrays(a, k, v), (a, v), (ta, tv))[1]
    assert_batched_equal(tangent, (x, k, v, *tangents), rtol=rtol)     # vmap of jvp
    np.testing.assert_allclose(                                         # jvp of vmap
        dp.jvp(lambda a, v: dp.vmap(_at_own_index_arrays)(a, k, v), (x, v), tangents)[1],
        looped(tangent, (x, k, v, *tangents)), rtol=rtol, atol=0 if dtype == np.float64 else 1e-6)
    if dtype == np.float64:  # against central differences, to second order
        check_grads(lambda a, v: dp.vmap(_at_own_index_arrays)(a, k, v), (x, v))
        check_grads(lambda a, v: dp.vmap(per_example)(a, k, v), (x, v), order=1)


@pytest.mark.parametrize("sa", [(3,), (2, 3), (4, 2, 3), (5, 1, 3)])
@pytest.mark.parametrize("sb", [(3,), (3, 4), (5, 3, 2), (1, 3, 2)])
def test_matmul_every_batching(sa, sb):
    try:
        np.matmul(np.ones(sa), np.ones(sb))
    except ValueError:
        pytest.skip("not a product NumPy takes")
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    aa, bb = rng.normal(size=(3,) + sa), rng.normal(size=(3,) + sb)
    grad = dp.grad(lambda x, y: dnp.sum(dnp.sin(x @ y)), argnums=(0, 1))
    for f in (lambda x, y: x @ y, grad):
        assert_batched_equal(f, (aa, b), (0, None))
        assert_batched_equal(f, (a, bb), (None, 0))
        assert_batched_equal(f, (aa, bb), (0, 0))


def test_einsum_and_linalg():
    for subs, shapes in [("ij,jk->ik", [(2, 3), (3, 4)]), ("i,i->", [(3,), (3,)]),
                         ("ii->i", [(3, 3)]), ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)])]:
        ops = tuple(rng.normal(size=(3,) + s) for s in shapes)
        product = functools.partial(dnp.einsum, subs)
        assert_batched_equal(product, ops)
        assert_batched_equal(product, (ops[0],) + tuple(o[0] for o in ops[1:]),
                             (0,) + (None,) * (len(ops) - 1))
    a = rng.normal(size=(3, 4, 4)) + 4 * np.eye(4)
    L = dnp.linalg
    for f in (L.inv, L.det, lambda m: L.slogdet(m)[1], lambda m: L.svd(m)[1], L.pinv,
              lambda m: L.qr(m)[1], lambda m: L.eigh(m @ m.T)[0], lambda m: L.cholesky(m @ m.T)):
        assert_batched_equal(f, (a,), rtol=1e-9)
        assert_batched_equal(lambda m, f=f: dp.grad(lambda m: dnp.sum(f(m) ** 2))(m), (a,), rtol=1e-8)
    v, m = rng.normal(size=(3, 4)), rng.normal(size=(3, 4, 2))
    for args, axes in [((a, v[0]), (0, None)), ((a[0], v), (None, 0)), ((a, m), (0, 0))]:
        assert_batched_equal(L.solve, args, axes, rtol=1e-9)


def test_lstsq_of_each_example():
    """lstsq under dp.vmap: x, residuals and singular values equal the loop's, the rank is
    an int per example; residuals are empty unless every example has full column rank."""
    L, tall, wide = dnp.linalg, rng.normal(size=(3, 5, 3)), rng.normal(size=(3, 2, 4))
    deficient = rng.normal(size=(3, 5, 2)) @ rng.normal(size=(3, 2, 3))
    b, bs = rng.normal(size=(3, 5)), rng.normal(size=(3, 5, 2))
    for args, axes in [((tall, b), 0), ((tall[0], b), (None, 0)), ((tall, bs[0]), (0, None)),
                       ((tall, bs), 0), ((tall[0], bs), (None, 0)), ((deficient, b), 0),
                       ((deficient[0], bs), (None, 0)), ((wide, b[:, :2]), 0)]:
        got, want = dp.vmap(L.lstsq, in_axes=axes)(*args), looped(np.linalg.lstsq, args, axes)
        for g, w in zip(got, want):
            assert np.shape(g) == w.shape and np.asarray(g).dtype.kind == w.dtype.kind
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-12)
        f = lambda a, b: dnp.sum(L.lstsq(a, b)[0] ** 2) + dnp.sum(L.lstsq(a, b)[3])  # noqa: E731
        assert_batched_equal(dp.grad(f, argnums=(0, 1)), args, axes, rtol=1e-8)
    solve = lambda a, b: L.lstsq(a, b)[0]  # noqa: E731  (against central differences:)
    check_grads(dp.vmap(solve), (tall + 0.1 * deficient, bs))  # the stacked solve
    check_grads(dp.vmap(solve, in_axes=(None, 0)), (tall[0], b), order=1)  # one for all
    with pytest.raises(ValueError, match=r"some examples have full column rank \(3\) and others not"):
        dp.vmap(L.lstsq)(np.concatenate([tall[:2], deficient[:1]]), b)


def test_random_numbers_are_drawn_once_per_call():
    """A NumPy Generator that f itself calls is called once for the whole batch: every
    example sees the same draw (as jax.vmap with a shared key). Each example's own numbers:
    draw them for the batch outside and pass them batched."""
    x = np.ones((4, 6))
    same = dp.vmap(lambda r: r * np.random.default_rng(3).random(6))(x)
    assert (same == same[0]).all()
    keep = np.random.default_rng(3).random((4, 6)) >= 0.5
    own = dp.vmap(lambda r, k: dnp.where(k, r * 2.0, 0.0))(x, keep)
    np.testing.assert_array_equal(own, np.where(keep, 2.0, 0.0))


def test_dropout_draws_each_examples_mask_as_a_loop_would():
    """dp.nn.dropout under dp.vmap: each example its own mask, the very numbers a loop over
    the examples draws from the same Generator (it drew one mask for the whole batch: every
    example was dropped alike), nested vmaps in their loops' order, a shared x too, and the
    per-example gradients the loop's."""
    loop = lambda f, xs: np.stack([f(x) for x in xs])  # noqa: E731
    drop = lambda g: (lambda r: dp.nn.dropout(r, 0.5, g, train=True))  # noqa: E731
    x = np.arange(1.0, 25.0).reshape(4, 6)
    got = dp.vmap(drop(np.random.default_rng(3)))(x)
    np.testing.assert_array_equal(got, loop(drop(np.random.default_rng(3)), x))
    assert not (got == got[0]).all()
    xs = x.reshape(2, 2, 6)
    g = np.random.default_rng(4)
    want = np.stack([loop(drop(g), block) for block in xs])
    np.testing.assert_array_equal(dp.vmap(dp.vmap(drop(np.random.default_rng(4))))(xs), want)
    shared = dp.vmap(lambda w, s: drop(g)(w) * s, in_axes=(None, 0))
    g = np.random.default_rng(5)
    got = shared(np.ones(6), np.arange(3.0))
    g = np.random.default_rng(5)
    np.testing.assert_array_equal(got, loop(lambda s: drop(g)(np.ones(6)) * s, np.arange(3.0)))
    loss = lambda w, r: dnp.sum(drop(g)(r * w) ** 2)  # noqa: E731
    g = np.random.default_rng(6)
    got = dp.vmap(dp.grad(loss), in_axes=(None, 0))(np.ones(6), x)
    g = np.random.default_rng(6)
    np.testing.assert_array_equal(got, loop(lambda r: dp.grad(loss)(np.ones(6), r), x))


# --- composition with the other transforms -----------------------------------------------------
@dp.custom_vjp
def _softclip(x):
    return dnp.tanh(x) * 2.0


_softclip.defvjp(lambda x: (_softclip(x), x), lambda x, g: (g * 2.0 * (1 - dnp.tanh(x) ** 2),))


@dp.custom_jvp
def _logcosh(x):
    return dnp.logaddexp(x, -x) - np.log(2.0)


@_logcosh.defjvp
def _logcosh_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _logcosh(x), dnp.tanh(x) * t


_smooth = dp.checkpoint(lambda a: dnp.sin(a) * a)
COMPOSED = {
    "custom_vjp": lambda a: dnp.sum(_softclip(a) ** 2),
    "custom_jvp": lambda a: dnp.sum(_logcosh(a) * a),
    "checkpoint": lambda a: dnp.sum(_smooth(a) ** 2),
}


@pytest.mark.parametrize("name", COMPOSED)
def test_custom_rules_and_checkpoint_both_orders(name):
    f, xs = COMPOSED[name], rng.normal(size=(4, 3))
    assert_batched_equal(f, (xs,))
    assert_batched_equal(dp.grad(f), (xs,))
    g = dp.grad(lambda a: dnp.sum(dp.vmap(f)(a)))(xs)
    np.testing.assert_allclose(g, looped(dp.grad(f), (xs,)), rtol=1e-12)
    if name != "custom_vjp":  # (which has no forward mode)
        assert_batched_equal(lambda a: dp.jvp(f, (a,), (a,))[1], (xs,))
        assert_batched_equal(dp.hessian(f), (xs,), rtol=1e-9)
        v = rng.normal(size=3)
        assert_batched_equal(lambda a: dp.hvp(f, (a,), (v,))[1][0], (xs,))


def test_tape_and_jit_both_orders():
    xs = rng.normal(size=(4, 3))
    f = lambda a: dnp.sum(dnp.sin(a) * a)  # noqa: E731
    want = np.cos(xs) * xs + np.sin(xs)

    def tape_grad(a):
        with dp.Tape() as tape:
            w = tape.watch(a)
            y = f(w)
        return tape.gradient(y, w)

    np.testing.assert_allclose(dp.vmap(tape_grad)(xs), want, rtol=1e-12)
    with dp.Tape() as tape:
        w = tape.watch(xs)
        y = dnp.sum(dp.vmap(f)(w))
    np.testing.assert_allclose(tape.gradient(y, w), want, rtol=1e-12)
    jitted = dp.jit(dp.vmap(dp.grad(f)))
    for scale in (1.0, 1.0, 0.5):
        np.testing.assert_allclose(jitted(xs * scale), looped(dp.grad(f), (xs * scale,)), rtol=1e-12)
    assert jitted.stats["replays"] >= 1
    np.testing.assert_allclose(dp.vmap(dp.jit(dp.grad(f)))(xs), want, rtol=1e-12)


def test_jit_of_vmap_with_a_shared_argument_runs_the_rules(monkeypatch):
    """Under dp.jit, an argument shared by every example is a staged value: Python's
    operators between it and a batch go to the batching rules, not once per example."""
    from diffprog.ad.batching import BatchTrace

    def no_loop(prim, *args, **params):
        raise AssertionError(f"{prim.name} ran once per example")

    monkeypatch.setattr(BatchTrace, "fallback", no_loop)
    s, xs = rng.uniform(0.5, 1.5, size=3), rng.normal(size=(4, 3))
    f = lambda s, x: (s + x) * s - (s > 0) @ x + s @ x - (x < s) * (s**x)  # noqa: E731
    jitted = dp.jit(dp.vmap(f, in_axes=(None, 0)), fuse=False)  # (no kernel to compile)
    for _ in range(2):  # staged, then replayed
        np.testing.assert_allclose(jitted(s, xs), looped(f, (s, xs), (None, 0)), rtol=1e-12)
    assert jitted.stats["replays"] >= 1


def test_jacobians_and_hessians_are_one_batched_sweep():
    """jacrev/jacfwd run each leaf's one-hot seeds as one dp.vmap batch: f runs once per
    leaf, not once per element; the results are those of the per-element loop."""
    calls = []

    def f(p):
        calls.append(1)
        return {"y": dnp.tanh(p["w"] @ p["x"]), "s": dnp.sum(p["w"] ** 3)}

    p = {"w": rng.normal(size=(3, 4)), "x": rng.normal(size=4)}
    for jac in (dp.jacrev, dp.jacfwd):
        calls.clear()
        got = jac(f)(p)
        assert len(calls) <= 2, (jac, len(calls))  # (jacfwd: one pass per input leaf)
        want = dp.jacrev(f)(p) if jac is dp.jacfwd else dp.jacfwd(f)(p)
        for g, w in zip(dp.tree.leaves(got), dp.tree.leaves(want)):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
    x = rng.normal(size=5)
    h = dp.hessian(lambda x: dnp.sum(dnp.sin(x) * x[::-1]))(x)
    rows = [dp.hvp(lambda x: dnp.sum(dnp.sin(x) * x[::-1]), (x,), (e,))[1][0] for e in np.eye(5)]
    np.testing.assert_allclose(h, np.stack(rows), rtol=1e-12, atol=1e-14)


def test_an_empty_batch_and_jacobians_of_empty_outputs():
    """A batch of no examples gives empty results of the right shape and dtype in every
    composition; so does jacrev of an empty output, which is one (found: both raised
    IndexError making an example of an empty batch)."""
    f = lambda x: dnp.sum(x**3)  # noqa: E731
    for dtype in (np.float64, np.float32):
        xs = np.ones((0, 3), dtype)
        for program, shape in ((dp.grad(f), (0, 3)), (dp.hessian(f), (0, 3, 3)),
                               (dp.jacrev(lambda x: x * 2.0), (0, 3, 3)), (f, (0,))):  # fmt: skip
            out = dp.vmap(program)(xs)
            assert out.shape == shape and out.dtype == dtype, (program, out.shape, out.dtype)
        assert dp.grad(lambda x: dnp.sum(dp.vmap(f)(x)))(xs).shape == (0, 3)
    params = {"p": np.ones(3), "q": 2.0}
    for jac in (dp.jacrev, dp.jacfwd):
        J = jac(lambda d: {"a": d["p"][:0] * d["q"], "b": d["p"] * d["q"]})(params)
        assert J["a"]["p"].shape == (0, 3) and J["a"]["q"].shape == (0,), jac
        np.testing.assert_array_equal(J["b"]["p"], 2.0 * np.eye(3))
        assert jac(lambda x: x * 2.0)(np.ones(0)).shape == (0, 0)


# --- dp.nn under vmap ----------------------------------------------------------------------------
_CONV = dp.nn.conv2d_init(np.random.default_rng(4), 1, 2, 3, dtype=np.float64)
NN = {
    "conv2d": lambda x: dp.nn.conv2d(_CONV, x, padding="same"),
    "max_pool2d": lambda x: dp.nn.max_pool2d(x, 2),
    "avg_pool2d": lambda x: dp.nn.avg_pool2d(x, 2),
    "flatten_gelu": lambda x: dp.nn.gelu(dp.nn.flatten(x)),
    "layer_norm": lambda x: dp.nn.layer_norm({"scale": np.ones(6), "bias": np.zeros(6)}, x),
    "mse": lambda x: dp.nn.mse(x, x * 0.5),
    "sigmoid_bce": lambda x: dp.nn.sigmoid_binary_cross_entropy(x, (x > 0) * 1.0),
}


@pytest.mark.parametrize("name", NN)
def test_nn_layers_and_losses(name):
    f, x = NN[name], rng.normal(size=(3, 2, 1, 6, 6))
    assert_batched_equal(f, (x,), rtol=1e-10)
    assert_batched_equal(lambda x: dp.grad(lambda x: dnp.sum(f(x) ** 2))(x), (x,), rtol=1e-10)


def test_nn_classification_with_a_label_per_example():
    p = dp.nn.mlp_init(rng, [4, 5, 3], dtype=np.float64)
    xs, labels = rng.normal(size=(6, 4)), rng.integers(0, 3, size=6)

    def loss(p, x, y):
        return dp.nn.softmax_cross_entropy(dp.nn.mlp(p, x[None]), y[None])

    got = dp.vmap(dp.grad(loss), in_axes=(None, 0, 0))(p, xs, labels)
    want = looped(dp.grad(loss), (p, xs, labels), (None, 0, 0))
    for g, w in zip(dp.tree.leaves(got), dp.tree.leaves(want)):
        np.testing.assert_allclose(g, w, rtol=1e-12)
    assert_batched_equal(lambda i: dp.nn.embedding({"table": xs}, i), (labels[:4].reshape(2, 2),))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):  # every example checked
        dp.vmap(loss, in_axes=(None, 0, 0))(p, xs, labels + 3)


def test_custom_rules_are_kept_when_vmap_is_inside_the_derivative():
    """grad(vmap(f)) of a custom rule uses the rule (not the derivative of f's body): the
    function and its rules run over the whole batch; an argument shared by every example
    gets the sum of their adjoints."""

    @dp.custom_vjp
    def clip_gradient(x):
        return x * 1.0

    clip_gradient.defvjp(lambda x: (x * 1.0, None), lambda res, g: (dnp.clip(g, -1.0, 1.0),))
    xs = rng.normal(size=(3, 2))
    f = lambda x: dnp.sum(5.0 * clip_gradient(x))  # noqa: E731
    np.testing.assert_array_equal(dp.grad(lambda x: dnp.sum(dp.vmap(f)(x)))(xs), np.ones((3, 2)))

    @dp.custom_vjp
    def scaled_product(a, b):  # a deliberately "wrong" rule: 10x the true VJP
        return a * b

    scaled_product.defvjp(lambda a, b: (a * b, (a, b)),
                          lambda res, g: (10.0 * g * res[1], 10.0 * g * res[0]))  # fmt: skip
    w = rng.normal(size=2)
    got = dp.grad(lambda w: dnp.sum(dp.vmap(lambda x: scaled_product(x, w))(xs)))(w)
    np.testing.assert_allclose(got, 10.0 * xs.sum(0), rtol=1e-12)

    @dp.custom_jvp
    def sin7(x):
        return dnp.sin(x)

    sin7.defjvp(lambda p, t: (sin7(p[0]), 7.0 * t[0]))
    np.testing.assert_array_equal(dp.grad(lambda x: dnp.sum(dp.vmap(sin7)(x)))(xs), np.full((3, 2), 7.0))
    np.testing.assert_array_equal(dp.jvp(dp.vmap(sin7), (xs,), (np.ones_like(xs),))[1],
                                  np.full((3, 2), 7.0))  # fmt: skip


@functools.partial(dp.custom_vjp, nondiff_argnums=(0, 2))
def _scaled_sin(activation, x, scale):  # a deliberately "wrong" rule: scale * 10 x the true VJP
    return activation(x) * scale


_scaled_sin.defvjp(lambda act, x, s: (act(x) * s, x),
                   lambda act, s, x, g: (10.0 * g * s * dnp.cos(x),))  # fmt: skip


@functools.partial(dp.custom_jvp, nondiff_argnums=(1,))
def _shifted_exp(x, shift):  # its rule: 3 x the true JVP
    return dnp.exp(x - shift)


_shifted_exp.defjvp(lambda shift, p, t: (_shifted_exp(p[0], shift), 3.0 * t[0] * dnp.exp(p[0] - shift)))


def test_custom_rules_with_a_nondiff_argument_of_each_examples_own():
    """A nondiff argument that differs between examples reaches the function and its rules
    batched, like every value under dp.vmap, in every order with grad and jvp; a rule that
    branches on it in Python gets an error naming the function and the argument."""
    xs, scales = rng.normal(size=(3, 2)), np.array([1.0, -2.0, 0.5])
    f = lambda x, s: dnp.sum(_scaled_sin(dnp.sin, x, s) + _shifted_exp(x, s))  # noqa: E731
    want = 10.0 * scales[:, None] * np.cos(xs) + 3.0 * np.exp(xs - scales[:, None])  # the rules'
    assert_batched_equal(f, (xs, scales))
    np.testing.assert_allclose(dp.vmap(dp.grad(f))(xs, scales), want, rtol=1e-12)
    np.testing.assert_allclose(dp.grad(lambda x: dnp.sum(dp.vmap(f)(x, scales)))(xs), want, rtol=1e-12)
    jvp = lambda x, s: dp.jvp(lambda x: _shifted_exp(x, s), (x,), (dnp.ones_like(x),))[1]  # noqa: E731
    np.testing.assert_allclose(dp.vmap(jvp)(xs, scales), 3.0 * np.exp(xs - scales[:, None]), rtol=1e-12)
    np.testing.assert_allclose(dp.jvp(lambda x: dp.vmap(_shifted_exp)(x, scales), (xs,),
                                      (np.ones_like(xs),))[1], 3.0 * np.exp(xs - scales[:, None]),
                               rtol=1e-12)  # fmt: skip

    @functools.partial(dp.custom_vjp, nondiff_argnums=(1,))
    def power(x, n):
        return x**n

    power.defvjp(lambda x, n: (x**n, x), lambda n, x, g: (g * int(n) * x ** (n - 1),))
    for order in (lambda f: dp.vmap(dp.grad(f)), lambda f: dp.grad(lambda x, n: dnp.sum(dp.vmap(f)(x, n)))):
        with pytest.raises(dp.BatchedControlFlowError,
                           match=r"power: argument 1 \(in nondiff_argnums\).*int\(x\).*once per example"):
            order(lambda x, n: dnp.sum(power(x, n)))(xs, np.array([1, 2, 3]))


# --- library functions that compute on raw values (permutations, searches, checks) --------------
_V, _M = rng.normal(size=(3, 5)), rng.normal(size=(3, 4, 4))
_GRID = np.linspace(-2, 2, 7)
LIBRARY = {
    "interp": (lambda a: dnp.interp(a, _GRID, np.sin(_GRID)), _V),
    "interp_batched_points": (lambda a: dnp.interp(np.array([0.1, 0.5]), dnp.sort(a), a * 2), _V),
    "partition": (lambda a: dnp.partition(a, 2), _V),
    "median": (dnp.median, _V),
    "take_along_axis": (lambda a: dnp.take_along_axis(a, dnp.argsort(a, axis=-1), axis=-1), _M),
    "average": (lambda a: dnp.average(a, weights=np.arange(1.0, 6.0)), _V),
    "std_var": (lambda a: dnp.std(a, axis=0) + dnp.var(a), _M),
    "norm": (lambda a: dnp.linalg.norm(a, axis=-1), _M),
    "matrix_power": (lambda a: dnp.linalg.matrix_power(a, 3), _M),
    "eigvals": (lambda a: dnp.real(dnp.linalg.eigvals(a @ a.T)), _M),
    "fft": (lambda a: dnp.real(dnp.fft.fft(a)), _V),
    "r_": (lambda a: dnp.r_[a, a[:2]], _V),
    "tril_trace_kron": (lambda a: dnp.tril(a, -1) + dnp.trace(a) + dnp.kron(a[:2, :2], a[2:, 2:]), _M),
}


@pytest.mark.parametrize("name", LIBRARY)
def test_library_functions(name):
    f, x = LIBRARY[name]
    assert_batched_equal(f, (x,), rtol=1e-9)
    assert_batched_equal(dp.grad(lambda a: dnp.sum(f(a) ** 2)), (x,), rtol=1e-8)


def test_a_reshape_of_a_reshape_of_each_example():
    """A random-mode fuzz run's program, minimised: under dp.vmap a reshape recorded the
    whole batch's shape as its view's, so any reshape (ravel, squeeze) of it raised 'cannot
    reshape array of size 1 into shape (3,1,1)'; writes through two reshapes too."""
    x = np.random.default_rng(0).random((3, 2, 2))
    chains = [lambda v: dnp.ravel(v.reshape((1, -1))), lambda v: v.reshape((-1, 1)).ravel(),
              lambda v: dnp.squeeze(v.reshape(1, -1, 1)).reshape(-1, 1)[::2]]
    for f in chains:
        np.testing.assert_array_equal(dp.vmap(f)(x), np.stack([f(e) for e in x]))

    def write(e):
        y = dnp.zeros(4) + 0.0 * e[0, 0]
        v = y.reshape(2, 2)
        v[0, 1] = e[0, 1] * 3.0
        v.reshape(4)[3] = e[1, 0]
        return y * 1.0

    np.testing.assert_array_equal(dp.vmap(write)(x), np.stack([write(e) for e in x]))
    jac = dp.jacrev(dp.vmap(write))(x)
    assert jac[1, 1, 1, 0, 1] == 3.0 and jac[2, 3, 2, 1, 0] == 1.0 and np.count_nonzero(jac) == 6
