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
from diffprog.numpy import inplace
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


def _split_and_rotate(x):
    y = x * 1.0
    left, right = np.split(y, 2, axis=1)
    left[0] = right[1] * x[2, :2]
    top, bottom = np.array_split(y, [1])
    bottom[:, 3] *= top[0, 0]
    r = np.rot90(y)  # rot90 is a view: r[0] is y's last column
    r[0, 1] += x[0, 0] ** 2
    np.rot90(y, 3)[1:3, 0] = x[1, :2]
    return y * x


def _read_only_views_see_their_base(x):
    y = x * 1.0
    d = np.diagonal(y)
    b = np.broadcast_to(y[0], (2, 4))
    y[1, 1] = x[0, 0] * 5.0  # NumPy's read-only views still show writes into their base
    y[0] *= x[2]
    return np.concatenate([d, b.reshape(-1), np.diag(y)]) * x[1, 2]


def _copyto_and_out(x):
    y = x * 1.0
    np.copyto(y[0], x[1] ** 2)
    np.multiply(y[1], x[2], out=y[2])
    np.add.at(y[:, 0], [0, 0, 2], x[0, 1])
    return y


def _reshape_views_follow_numpy_layouts(x):
    c = (x * 1.0).T.copy()  # a copy is C-ordered: its reshape is a view
    c.reshape(-1)[0] = 5.0 * x[0, 0]
    f = dnp.full((4, 3), x[0, :3]) if isinstance(x, Tracer) else np.full((4, 3), x[0, :3])
    f.reshape(12)[1] = x[1, 1] ** 2  # NumPy's full is C-ordered too
    t = (x * 1.0).T
    t.reshape(-1)[2] = 7.0  # a transpose's reshape is a copy: t is unchanged
    return np.concatenate([c.reshape(-1), f.reshape(-1), t.reshape(-1)]) * x[2, 3]


def _many_views_some_written(x):
    y = x * 1.0
    rows = [y[i] for i in range(3)]
    cols = [y[:, j] for j in range(4)]
    for i in range(3):
        y[i, i] = rows[i][3] * x[i, 0]  # only rows[i] and cols[i] see it
    cols[3][1:] = cols[0][:2] ** 2
    return np.concatenate(rows + cols) * x[0, 1]


VIEW_PROGRAMS = [
    _slice_write, _row_iadd, _rows_loop, _reshape_write, _transpose_iadd,
    _view_sees_base_write, _swapaxes_write, _view_of_view, _two_views, _ellipsis_none,
    _element_of_a_row, _view_function_writes, _sort_a_row, _views_across_a_loop,
    _copies_stay_independent, _split_and_rotate, _read_only_views_see_their_base,
    _copyto_and_out, _reshape_views_follow_numpy_layouts, _many_views_some_written,
]  # fmt: skip


@pytest.mark.parametrize("f", VIEW_PROGRAMS, ids=lambda f: f.__name__.strip("_"))
def test_views_follow_numpy_semantics(f):
    expected = f(X34.copy())
    out, vjp_fn = dp.vjp(f, X34)
    np.testing.assert_allclose(out, expected, rtol=1e-14)
    out, _ = dp.jvp(f, (X34,), (np.ones_like(X34),))
    np.testing.assert_allclose(out, expected, rtol=1e-14)
    check_grads(f, (X34,), order=2)


def _random_index(rng, shape):
    """A random basic index for an array of `shape`: ints, slices (steps too), maybe None."""
    index = []
    for n in shape:
        kind = rng.integers(4)
        if kind == 0 and n:
            index.append(int(rng.integers(-n, n)))
        elif kind == 1:
            a = int(rng.integers(0, n + 1))
            index.append(slice(a, int(rng.integers(a, n + 1))))
        elif kind == 2 and n > 1:
            index.append(slice(None, None, -1 if rng.integers(2) else 2))
        else:
            index.append(slice(None))
    if rng.integers(5) == 0:
        index.insert(int(rng.integers(len(index) + 1)), None)
    return tuple(index)


def _random_program(seed, steps=14):
    """Views (indexing, .T, reshape(-1): a copy where NumPy copies), writes, in-place
    products and reads, on a (3, 4) array and the views taken so far."""
    rng = np.random.default_rng(seed)
    program, shapes = [], {"y": np.zeros((3, 4))}
    for k in range(steps):
        names = [name for name, a in shapes.items() if a.ndim and a.size]
        src = names[int(rng.integers(len(names)))]
        a, kind, index = shapes[src], int(rng.integers(6)), _random_index(rng, shapes[src].shape)
        view = None
        if kind == 0 and isinstance(a[index], np.ndarray):
            view = lambda v, index=index: v[index]  # noqa: E731
        elif kind == 1 and a.ndim >= 2:
            view = lambda v: v.T  # noqa: E731
        elif kind == 2:
            view = lambda v: v.reshape(-1)  # noqa: E731
        elif kind in (3, 4) and a[index].size:
            program.append(("write" if kind == 3 else "imul", src, index, (k % 3, k % 4)))
        elif kind == 5:
            program.append(("read", src))
        if view is not None:
            program.append(("view", f"v{k}", src, view))
            shapes[f"v{k}"] = view(a)
    return program


def _run_program(program, x):
    arrays, acc = {"y": x * 1.0}, x[0, 0] * 0.0
    for step in program:
        if step[0] == "view":
            arrays[step[1]] = step[3](arrays[step[2]])
        elif step[0] == "write":
            (i, j) = step[3]
            arrays[step[1]][step[2]] = x[i, j] * x[j % 3, i] + 0.5
        elif step[0] == "imul":
            target = arrays[step[1]]
            target[step[2]] *= x[step[3]]
        else:
            acc = acc + (arrays[step[1]] ** 2).sum()
    return np.concatenate([a.reshape(-1) for a in arrays.values()] + [acc.reshape(1)])


@pytest.mark.parametrize("seed", range(40))
def test_random_view_programs_match_numpy(seed):
    program = _random_program(seed)
    f = lambda x: _run_program(program, x)  # noqa: E731
    expected = f(X34.copy())
    np.testing.assert_allclose(dp.vjp(f, X34)[0], expected, rtol=1e-14)
    np.testing.assert_allclose(dp.jvp(f, (X34,), (X34,))[0], expected, rtol=1e-14)
    check_grads(f, (X34,), order=2 if seed % 8 == 0 else 1)


@pytest.mark.parametrize("write", [lambda y: np.diagonal(y).__setitem__(0, 1.0),
                                   lambda y: np.broadcast_to(y[0], (2, 4)).__setitem__(0, 1.0),
                                   lambda y: np.diag(y).__iadd__(1.0)],
                         ids=["diagonal", "broadcast_to", "diag +="])  # fmt: skip
def test_writing_through_a_read_only_view_raises_as_in_numpy(write):
    with pytest.raises(ValueError, match="read-only"):
        write(X34.copy())
    with pytest.raises(ValueError, match="read-only"):
        dp.grad(lambda x: dnp.sum(write(x * 1.0) or x))(X34)


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


def test_views_and_writes_on_every_backend(backend):
    x = backend.put(X34)
    for f in (_slice_write, _rows_loop, _view_sees_base_write, _transpose_iadd, _reshape_write,
              _view_of_view, _recurrence):  # fmt: skip
        backend.check(dp.vjp(f, x)[0], f(X34.copy()))
        check_grads(f, (x,), order=2)
    fill, row = _fill(lambda x: dnp.zeros_like(x)), backend.put(X34[0])
    backend.check(dp.vjp(fill, row)[0], fill(X34[0].copy()))
    check_grads(fill, (row,), order=2)


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


def test_allocate_then_fill_inside_custom_rules_and_checkpoints():
    def fill(x):
        y = dnp.zeros_like(x)
        for i in range(x.shape[0]):
            y[i] = x[i] * x[i - 1]
        return y

    @dp.custom_vjp
    def f(x):
        return fill(x)

    f.defvjp(lambda x: (fill(x), x), lambda x, g: (dp.vjp(fill, x)[1](g)[0],))

    @dp.custom_jvp
    def h(x):
        return fill(x)

    h.defjvp(lambda p, t: (fill(p[0]), dp.jvp(fill, p, t)[1]))
    x = np.array([0.5, -1.5, 2.0])
    for fn in (f, h, dp.checkpoint(fill)):
        modes = ("rev",) if fn is f else ("fwd", "rev")  # custom_vjp: reverse mode only
        check_grads(lambda x: fn(x) * x, (x,), order=2, modes=modes)
    with dp.Tape() as tape:  # a custom rule's backward pass runs below the open tape
        xt = tape.watch(x)
        loss = dnp.sum(f(xt))
        g = tape.gradient(loss, xt)
    np.testing.assert_allclose(g, dp.grad(lambda x: dnp.sum(fill(x)))(x))


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


@pytest.mark.parametrize("call", [lambda x: np.full(3, x[0]),
                                  lambda x: np.full(3, x[0], dtype=float),
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


@pytest.mark.parametrize("mode", ["grad", "jvp", "grad of grad"])
def test_writes_copy_an_array_at_most_once(mode, monkeypatch):
    """White-box: the forward writes and the backward zeroing of cotangents go in place."""
    copies = []
    copy_of = inplace._copy_of
    monkeypatch.setattr(inplace, "_copy_of", lambda x: copies.append(x.shape) or copy_of(x))
    x = np.linspace(0.1, 1.0, 50)
    if mode == "grad":
        dp.grad(_recurrence)(x)
    elif mode == "jvp":
        dp.jvp(_recurrence, (x,), (x,))
    else:  # (in a recurrence, the second order's sums of cotangents are copied anyway)
        dp.grad(lambda x: dnp.sum(dp.grad(_fill_loop)(x) ** 2))(x)
    assert len(copies) <= 4, copies  # not one per write (49 writes)


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


@pytest.mark.parametrize("view", ["y[::-1]", "y[::2]", "y.reshape(2, 3)[:, ::2]", "y.reshape(3, 2).T"])
def test_ravel_copies_what_is_not_c_contiguous_as_numpy(view):
    """NumPy's ravel is a view of a C-contiguous array only, where reshape(-1) is one more
    often (y[::-1], y[::2]: the same shape, so diffprog returned the view itself): a write
    through the ravel reached y, traced and plain, eager and under dp.jit and dp.vmap."""

    def f(x, m):
        y = x * 1.0
        v = m.ravel(eval(view, {"y": y}))  # noqa: S307  (the parametrized view)
        v[0] = 50.0
        return y * 2.0 + m.sum(v) * x

    x = np.arange(6.0) + 1.0
    want = f(x, np)
    np.testing.assert_array_equal(f(x, dnp), want)
    np.testing.assert_array_equal(dp.jit(lambda x: f(x, dnp))(x), want)
    np.testing.assert_array_equal(dp.vmap(lambda x: f(x, dnp))(x[None])[0], want)
    np.testing.assert_array_equal(dp.jacrev(lambda x: f(x, dnp))(x),
                                  dp.jacfwd(lambda x: f(x, dnp))(x))
    check_grads(lambda x: f(x, dnp), (x,), order=2)
