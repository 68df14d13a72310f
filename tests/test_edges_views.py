"""Trust at the edges: writes into arrays behave as in NumPy, with right gradients.

1. Views: writing through a NumPy-style view (basic index, reshape, transpose, swapaxes and
   the other view functions) changes its base and every other live view, and writing into a
   base changes its live views, exactly as NumPy does; results that NumPy copies (advanced
   indexing, a reshape that must copy, flatten, a scalar element) stay independent. Every
   program runs on plain NumPy arrays for the expected values and is differentiated with
   `check_grads` to second order in both modes.
2. Allocate then fill: `y = dnp.zeros(n); y[i] = traced` works in every transform (reverse,
   forward, dp.Tape, nested); outside any transform dnp.zeros is a plain NumPy array; a plain
   `np.zeros` written with a traced value is refused with a TracerConversionError.
3. `dnp.full` / `dnp.full_like` with a traced fill value are differentiable; `np.full`, which
   NumPy does not dispatch on its fill value, is refused naming dnp.full.
4. n writes into an n-array cost O(n) memory (a tracemalloc-based check), and the in-place
   fast path keeps gradients right with residuals, aliases, shared cotangents, views, forward
   mode and graph extension.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.core.trace import Tracer
from diffprog.testing import check_grads

X34 = np.linspace(-1.0, 1.2, 12).reshape(3, 4) + 0.1 * np.arange(12).reshape(3, 4) ** 1.5


# --- 1. NumPy's view semantics ---------------------------------------------------------------
def _slice_write(x):
    y = x * 1.0
    v = y[:2]
    v[0] = 10.0
    v[1, 1:3] = x[2, :2] * x[0, :2]
    return y * x


def _row_iadd(x):
    a = x * 1.0
    row = a[1]
    row += x[0] * x[2]
    return a * a


def _rows_loop(x):
    a = x * 1.0
    for row in a:
        row *= x[0]
    return dnp.sin(a)


def _reshape_write(x):
    y = x * 1.0
    r = y.reshape(2, 6)
    r[0, 0] = 5.0
    r[1] *= r[0]
    return y**2


def _transpose_iadd(x):
    y = x * 1.0
    t = y.T
    t[0] += 1.0
    t[1] *= y[0, 0]
    return y * x


def _view_sees_base_write(x):
    y = x * 1.0
    v = y[:2]
    y[0] = 10.0
    y[1, 0] = x[2, 2] ** 2
    return v * v


def _swapaxes_write(x):
    y = x * 1.0
    s = np.swapaxes(y, 0, 1)
    s[1:3] = 0.5 * s[1:3] ** 2
    return y


def _view_of_view(x):
    y = x * 1.0
    a = y[1:]
    b = a[:, ::-1]
    b[0, 0] = x[0, 0] * 3.0
    y[2, 0] = b[0, 1] ** 2
    return y * a.sum() + b[0, 0]


def _two_views(x):
    y = x * 1.0
    v1, v2 = y[0], y[:, 1]
    v1[1] = 7.0 * x[1, 1]
    v2[2] = v1[0] * v2[0]
    return v2 * v2 + y[2, 1]


def _ellipsis_none(x):
    y = x * 1.0
    v = y[..., None, 1:3]
    v[...] = v**2
    return y


def _element_of_a_row(x):
    y = x * 1.0
    y[0][1] = x[1, 1] ** 2
    y[2][1:][::2] = y[0][1] * x[2, 0]
    return y


def _view_function_writes(x):
    y = x * 1.0
    np.ravel(y)[0] = x[2, 3] ** 2  # contiguous: ravel is a view
    np.expand_dims(y, 0)[0, 1, 1] = x[0, 0] * 2.0
    np.flip(y, 0)[0, 2] = y[1, 1] * 3.0  # y[-1, 2]
    np.moveaxis(y, 0, -1)[3] *= x[1, 0]  # column 3
    y.squeeze()[1] += 1.0
    y.reshape(1, 12, 1).transpose(1, 0, 2)[5:7, 0, 0] = x[0, :2]
    return y * x


def _sort_a_row(x):
    y = x[::-1, ::-1] * 1.0  # rows in decreasing order
    y[0].sort()
    row = y[1]
    row.sort()
    return y * x


def _views_across_a_loop(x):
    y = x * 1.0
    keep = [y[i] for i in range(3)]
    for i in range(1, 3):
        keep[i] += keep[i - 1] * 0.5
        y[i - 1, 0] = keep[i][1] ** 2
    return dnp.stack(keep) + y


def _copies_stay_independent(x):
    y = x * 1.0
    r = y.T.reshape(-1)  # NumPy must copy: r is not a view of y
    r[0] = 100.0
    a = y[[0, 2]]  # advanced indexing copies
    a[0] = 5.0
    s = y[0, 0]  # a scalar, not a view
    s += 1.0
    f = y.flatten()  # always a copy
    f[1] = 9.0
    c = y.copy()
    c[2] = 0.0
    y[1, 1] = x[0, 1] ** 2
    return np.concatenate([y.reshape(-1), r, a.reshape(-1), f, c.reshape(-1)]) * s


VIEW_PROGRAMS = [
    _slice_write, _row_iadd, _rows_loop, _reshape_write, _transpose_iadd,
    _view_sees_base_write, _swapaxes_write, _view_of_view, _two_views, _ellipsis_none,
    _element_of_a_row, _view_function_writes, _sort_a_row, _views_across_a_loop,
    _copies_stay_independent,
]  # fmt: skip


@pytest.mark.parametrize("f", VIEW_PROGRAMS, ids=lambda f: f.__name__.strip("_"))
def test_views_follow_numpy_semantics(f):
    expected = f(X34.copy())
    out, vjp_fn = dp.vjp(f, X34)
    np.testing.assert_allclose(out, expected, rtol=1e-14)
    out, _ = dp.jvp(f, (X34,), (np.ones_like(X34),))
    np.testing.assert_allclose(out, expected, rtol=1e-14)
    check_grads(f, (X34,), order=2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_views_under_a_tape_and_in_float32(dtype):
    x = X34.astype(dtype)
    with dp.Tape() as tape:
        xt = tape.watch(x)
        y = _row_iadd(xt)
        loss = dnp.sum(y * y)
    g = tape.gradient(loss, xt)
    assert g.dtype == dtype
    want = dp.grad(lambda x: dnp.sum(_row_iadd(x) ** 2))(x)
    np.testing.assert_allclose(g, want, rtol=1e-6)
    check_grads(_transpose_iadd, (x,), order=2)


def test_writing_an_inner_traced_value_into_an_outer_array_is_refused():
    def outer(x):
        y = x * 1.0
        dp.grad(lambda z: _store(y, z))(2.0)
        return y

    def _store(y, z):
        y[0] = z * z  # y belongs to the outer transform
        return z

    with pytest.raises(dp.DiffprogError, match="outer"):
        dp.grad(lambda x: dnp.sum(outer(x)))(np.ones(3))


# --- 2. allocate then fill -------------------------------------------------------------------
ALLOCATORS = {
    "zeros": lambda x: dnp.zeros(x.shape[0]),
    "ones": lambda x: dnp.ones((x.shape[0],), dtype=x.dtype),
    "empty": lambda x: dnp.empty(x.shape[0], dtype=x.dtype),
    "full": lambda x: dnp.full(x.shape[0], 3.0, dtype=x.dtype),
    "zeros_like": lambda x: dnp.zeros_like(x),
    "ones_like": lambda x: np.ones_like(x),  # dispatched to dnp.ones_like
    "empty_like": lambda x: dnp.empty_like(x),
    "full_like": lambda x: dnp.full_like(x, 2.0),
    "eye": lambda x: dnp.eye(x.shape[0], dtype=x.dtype)[0],
}


def _fill(alloc):
    def f(x):
        y = alloc(x)
        for i in range(x.shape[0]):
            y[i] = x[i] * x[i - 1]
        y[1:3] *= x[0]
        return y

    return f


@pytest.mark.parametrize("name", ALLOCATORS)
def test_allocate_then_fill_in_every_transform(name):
    f = _fill(ALLOCATORS[name])
    x = np.array([0.5, -1.5, 2.0, 0.25])
    expected = np.roll(x, 1) * x
    expected[1:3] *= x[0]
    np.testing.assert_allclose(dp.vjp(f, x)[0], expected)
    np.testing.assert_allclose(dp.jvp(f, (x,), (np.ones(4),))[0], expected)
    with dp.Tape() as tape:
        xt = tape.watch(x)
        loss = dnp.sum(f(xt) ** 2)
    np.testing.assert_allclose(tape.gradient(loss, xt), dp.grad(lambda x: dnp.sum(f(x) ** 2))(x))
    check_grads(f, (x,), order=2)
    check_grads(f, (x.astype(np.float32),), order=2)


def test_allocation_outside_transforms_is_plain_numpy():
    for make in (lambda: dnp.zeros(3), lambda: dnp.ones(2), lambda: dnp.empty(2),
                 lambda: dnp.full(2, 1.5), lambda: dnp.zeros_like(np.ones(2)),
                 lambda: dnp.eye(2)):  # fmt: skip
        assert type(make()) is np.ndarray
    seen = []
    dp.grad(lambda x: seen.append(type(dnp.zeros(2, dtype=int))) or dnp.sum(x))(np.ones(2))
    assert seen == [np.ndarray]  # an integer array carries no gradient: stays plain


def test_allocation_is_a_constant_of_the_innermost_transform():
    def f(x):
        y = dnp.zeros(2)
        y[0] = x * x
        y[1] = dp.grad(lambda z: _inner(z, x))(x)
        return dnp.sum(y)

    def _inner(z, x):
        w = dnp.zeros(2)
        w[0] = z * x
        w[1] = z**3
        return dnp.sum(w)

    # f(x) = x^2 + (x + 3 x^2), f'(x) = 2x + 1 + 6x
    assert dp.grad(f)(2.0) == pytest.approx(2 * 2.0 + 1 + 6 * 2.0)
    check_grads(f, (2.0,), order=2)


@pytest.mark.parametrize("where", ["element", "slice"])
def test_writing_a_traced_value_into_plain_numpy_names_dnp_zeros(where):
    def f(x):
        y = np.zeros(4)
        if where == "element":
            y[1] = x[1] * 2.0
        else:
            y[1:3] = x[1:3] * 2.0
        return dnp.sum(x) + y[0]

    with pytest.raises(dp.TracerConversionError, match="dnp.zeros"):
        dp.grad(f)(np.ones(4))


# --- 3. full with a traced fill value ----------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_full_with_a_traced_fill_value(dtype):
    v = np.array([0.5, -1.0, 2.0], dtype)
    check_grads(lambda v: dnp.full((2, 3), v) ** 2, (v,), order=2)
    check_grads(lambda v: dnp.full_like(np.zeros((4, 3), dtype), v) * v, (v,), order=2)
    check_grads(lambda v: np.full((2, 3), v, like=v) ** 2, (v,), order=2)

    def filled(v):
        y = dnp.full((2, 3), v[0])
        y[1] = v * 2.0  # and written into afterwards
        return y * y

    check_grads(filled, (v,), order=2)


@pytest.mark.parametrize("call", [lambda x: np.full(3, x[0]), lambda x: np.full(3, x[0], dtype=float),
                                  lambda x: np.full_like(np.zeros(3), x[0])],
                         ids=["full", "full dtype", "full_like"])  # fmt: skip
def test_numpy_full_with_a_traced_fill_value_names_dnp_full(call):
    with pytest.raises(dp.TracerConversionError, match=r"dnp\.full"):
        dp.grad(lambda x: dnp.sum(call(x)))(np.ones(3))


# --- 4. linear-time writes -------------------------------------------------------------------
def _fill_loop(x):
    y = dnp.zeros(x.shape[0])
    for i in range(x.shape[0]):
        y[i] = x[i] * 2.0
    return dnp.sum(y * y)


def _recurrence(x):
    y = x * 0.0
    for i in range(1, x.shape[0]):
        y[i] = y[i - 1] * 0.5 + x[i]
    return dnp.sum(y * y)


def _peak_bytes(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("program", [_fill_loop, _recurrence], ids=["fill", "recurrence"])
@pytest.mark.parametrize("mode", ["grad", "jvp"])
def test_n_writes_take_linear_memory(program, mode):
    n = 3000  # copying the array per write would keep n * n * 8 / 2 = 36 MB at least
    x = np.linspace(0.0, 1.0, n)
    run = (lambda: dp.grad(program)(x)) if mode == "grad" else (lambda: dp.jvp(program, (x,), (x,)))
    run()
    assert _peak_bytes(run) < 12 * 2**20


def test_in_place_writes_keep_saved_values_and_aliases_right():
    def f(x):
        y = x * 1.0
        s = y * y  # saves y for the backward pass
        z = y  # an alias: the same array
        z[0] = 5.0
        c = y.copy()
        y[1] = x[2] ** 3
        c[2] = 7.0
        w = dnp.exp(y)  # saves its output
        w[0] = 0.0
        return s + y * c + w

    x = np.array([0.5, -1.5, 2.0])
    expected = f(x.copy())
    np.testing.assert_allclose(dp.vjp(f, x)[0], expected)
    check_grads(f, (x,), order=2)


def test_shared_cotangents_are_never_written():
    def f(x):
        a = x * 1.0
        a[0] = 1.0
        b = x * 1.0
        b[1] = a[2] * 2.0
        return a + b, a  # add hands one cotangent to both a and b

    x = np.array([0.5, -1.5, 2.0])
    _, vjp_fn = dp.vjp(f, x)
    ct = (np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0]))
    kept = tuple(c.copy() for c in ct)
    (g1,) = vjp_fn(ct)
    (g2,) = vjp_fn(ct)  # twice: the tape is unchanged by the first sweep
    for c, k in zip(ct, kept):
        np.testing.assert_array_equal(c, k)
    np.testing.assert_allclose(g1, g2)
    # a = [1, x1, x2], b = [x0, 2 x2, x2]: d/dx = [1, 2 + 5, 2 * 2 + 2 * 3 + 6]
    np.testing.assert_allclose(g1, [1.0, 7.0, 16.0])
    check_grads(f, (x,), order=2)


def test_persistent_tape_after_in_place_writes():
    x = np.array([0.5, -1.5, 2.0])
    with dp.Tape(persistent=True) as tape:
        xt = tape.watch(x)
        y = dnp.zeros(3)
        for i in range(3):
            y[i] = xt[i] * xt[i - 1]
        loss = dnp.sum(y**2)
    g1 = tape.gradient(loss, xt)
    g2 = tape.gradient(loss, xt)
    np.testing.assert_allclose(g1, g2)
    np.testing.assert_allclose(g1, dp.grad(lambda x: dnp.sum((x * np.roll(x, 1)) ** 2))(x))


def test_write_loops_to_second_order():
    x = np.linspace(0.1, 1.0, 7)
    check_grads(_fill_loop, (x,), order=2)
    check_grads(_recurrence, (x,), order=2)
    check_grads(_rows_loop, (X34,), order=2)
    h = dp.hessian(_recurrence)(x)
    np.testing.assert_allclose(h, h.T, atol=1e-12)
