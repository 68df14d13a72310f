"""Trust at the edges, new operations: arrays built from lists of traced values (dnp.array,
every array_like argument), dnp.r_ / dnp.c_, the new functions under NumPy's names (append,
diff, gradient, partition, rollaxis, select, nan_to_num, median, interp, linalg.eig,
linalg.lstsq, linalg.norm(ord='nuc'), the constants), and joins that cost O(N) in N pieces.
Derivatives against central differences (both modes, second order, float64 and float32);
values against NumPy's."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from backends import NUMPY, on_gpu, under_jit, under_vmap
from diffprog.testing import check_grads

DTYPES = [np.float64, np.float32]
dtype_id = lambda d: np.dtype(d).name  # noqa: E731
PACKAGE = os.path.dirname(dp.__file__)


def _same(ours, theirs):
    """Equal values, shapes and dtypes (through tuples and lists)."""
    if isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b)
        return
    assert np.shape(ours) == np.shape(theirs)
    assert np.asarray(ours).dtype == np.asarray(theirs).dtype, (np.asarray(ours).dtype, np.asarray(theirs).dtype)
    np.testing.assert_array_equal(ours, theirs)


# --- item 4: joining N pieces costs O(N) ---------------------------------------------------
def _lines_run(fn):
    """How many lines of diffprog's own code run during fn(): the interpreter's share of the
    work, which a loop over the pieces inside each piece's rule makes grow as N^2."""
    count = 0

    def local(frame, event, arg):
        nonlocal count
        count += event == "line"
        return local

    def calls(frame, event, arg):
        return local if frame.f_code.co_filename.startswith(PACKAGE) else None

    previous = sys.gettrace()  # e.g. a coverage tool's: restored afterwards
    sys.settrace(calls)
    try:
        fn()
    finally:
        sys.settrace(previous)
    return count


def _join_transforms(join, n):
    xs = tuple(np.linspace(0.1, 1.0, 3) * (i + 1) for i in range(n))
    f = lambda *xs: dnp.sum(join(list(xs)) ** 3)  # noqa: E731
    every = tuple(range(n))
    return {
        "jvp": lambda: dp.jvp(f, xs, xs),
        "jvp_one_tangent": lambda: dp.jvp(lambda x: f(x, *xs[1:]), (xs[0],), (xs[0],)),
        "grad": lambda: dp.grad(f, argnums=every)(*xs),
        "grad_of_grad": lambda: dp.grad(lambda *xs: dnp.sum(dp.grad(f)(*xs)), argnums=every)(*xs),
        "hvp": lambda: dp.hvp(f, xs, xs),
    }


@pytest.mark.parametrize("mode", ["jvp", "jvp_one_tangent", "grad", "grad_of_grad", "hvp"])
@pytest.mark.parametrize("join", ["concatenate", "stack", "array"])
def test_joining_n_pieces_is_linear_in_n(join, mode):
    """Eight times the pieces, about eight times the work (a quadratic join: ~64x)."""
    fn = getattr(dnp, join)
    small = _lines_run(_join_transforms(fn, 40)[mode])
    large = _lines_run(_join_transforms(fn, 320)[mode])
    assert large < 11 * small, f"{join} {mode}: {small} lines for 40 pieces, {large} for 320"


@pytest.mark.parametrize("join", [dnp.concatenate, dnp.stack])
def test_joins_second_order_with_some_constant_pieces(join):
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3)), rng.normal(size=(2, 3))
    c = rng.normal(size=(2, 3))
    f = lambda a, b: join([a, c, b * a, c], axis=1) ** 2  # noqa: E731
    for dtype in DTYPES:
        check_grads(f, (a.astype(dtype), b.astype(dtype)), order=2)
    check_grads(lambda a: dnp.unstack(a * a, axis=1)[2], (a,), order=2)


# --- item 1: arrays from lists of traced values; array_like arguments holding them --------
def _value_traced(f, args):
    """f's value with every argument traced (forward mode): what a traced call returns."""
    return dp.jvp(f, tuple(args), tuple(np.zeros_like(a) for a in args))[0]


def _args(rng, shapes, dtype):
    return tuple(np.asarray(rng.normal(size=s), dtype=dtype) for s in shapes)


# name: (f(m, *args) with m = dnp or np, argument shapes)
LIST_CASES = {
    "array_flat_mixed": (lambda m, a, b: m.array([a, 2.0 * b, 1.0]), [(), ()]),
    "array_nested_2x2": (lambda m, a, b, c, d: m.array([[a, b], [c, d]]), [(), (), (), ()]),
    "array_nested_arrays": (lambda m, a, b: m.array([[a, b], [b, a]]), [(3,), (3,)]),
    "array_list_beside_array": (lambda m, a, b: m.array([[a, 1.0], b]), [(), (2,)]),
    "array_tuple": (lambda m, a, b: m.array(((a, b * b), [b, a])), [(), ()]),
    "array_ndmin": (lambda m, a, b: m.array([a, b], ndmin=3), [(), ()]),
    "array_of_tracer": (lambda m, a: m.array(a * 1.0), [(2, 3)]),
    "asarray_list": (lambda m, a, b: m.asarray([[a], [b]]), [(2,), (2,)]),
    "std": (lambda m, a, b, c: m.std([a, b, c]), [(), (), ()]),
    "var_axis": (lambda m, a, b: m.var([a, b], axis=0, ddof=1), [(3,), (3,)]),
    "norm": (lambda m, a, b: m.linalg.norm([a, b, 3.0]), [(), ()]),
    "norm_matrix": (lambda m, a, b: m.linalg.norm([[a, b], [b, 1.0]], "fro"), [(), ()]),
    "sum": (lambda m, a, b: m.sum([a, b], axis=0), [(2,), (2,)]),
    "mean": (lambda m, a, b: m.mean((a, b)), [(), ()]),
    "max": (lambda m, a, b: m.max([a, b + 10.0]), [(), ()]),
    "prod": (lambda m, a, b: m.prod([a, b, 2.0]), [(), ()]),
    "cumsum": (lambda m, a, b: m.cumsum([a, b, a]), [(), ()]),
    "sort": (lambda m, a, b: m.sort([a, b - 5.0, 1.0]), [(), ()]),
    "reshape": (lambda m, a, b: m.reshape([a, b, a, 1.0], (2, 2)), [(), ()]),
    "transpose": (lambda m, a, b: m.transpose([[a, b, 1.0]]), [(), ()]),
    "concatenate": (lambda m, a, b: m.concatenate([[a, b], b * np.ones(2)]), [(), ()]),
    "stack": (lambda m, a, b: m.stack([[a, b], [b, a]], axis=1), [(), ()]),
    "take": (lambda m, a, b: m.take([a, b, 1.0], [2, 0, 0]), [(), ()]),
    "where": (lambda m, a, b: m.where([True, False], m.array([a, b]), 0.0), [(), ()]),
    "dot": (lambda m, a, b: m.dot([[a, b], [1.0, a]], [b, 2.0]), [(), ()]),
}  # fmt: skip


# Cases with a host constant (a NumPy array or list beside a GPU array is refused by design)
HOST_CONSTANTS = {"concatenate", "where", "interp", "interp_left_right", "interp_period",
                  "interp_scalar", "gradient_per_axis", "gradient_axis_coords",
                  "gradient_edge2_coords", "select_broadcast"}  # fmt: skip


def _check(name, fn, args, backend):
    """Derivatives (both modes, second order) on `backend`; on NumPy also the values, traced
    and untraced, equal to NumPy's (on a GPU the backend compares them with NumPy's)."""
    if backend is not NUMPY and name in HOST_CONSTANTS:
        pytest.skip("a NumPy constant beside GPU arrays")
    with np.errstate(divide="ignore", invalid="ignore"):
        backend.check_grads(lambda *a: fn(dnp, *a), args, order=2)
        if backend is NUMPY:
            _same(_value_traced(lambda *a: fn(dnp, *a), args), fn(np, *args))
            _same(fn(dnp, *args), fn(np, *args))  # untraced: NumPy's own result


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", sorted(LIST_CASES))
def test_lists_of_traced_values(name, dtype, backend=NUMPY):
    fn, shapes = LIST_CASES[name]
    _check(name, fn, _args(np.random.default_rng(1), shapes, dtype), backend)


test_lists_of_traced_values_on_gpu = on_gpu(test_lists_of_traced_values)


def test_array_promotes_like_numpy():
    """A float32 traced value beside a Python float gives float64, as np.array does; dtype=
    casts (differentiably to floats, a constant to integers)."""
    x = np.float32(1.5)
    out = _value_traced(lambda x: dnp.array([x, 1.0]), (x,))
    assert out.dtype == np.array([x, 1.0]).dtype == np.float64
    out = _value_traced(lambda x: dnp.array([x, x], dtype=np.float32) * 2.0, (np.float64(1.5),))
    assert out.dtype == np.float32
    g = dp.grad(lambda x: dnp.sum(dnp.array([x, 2.0 * x], dtype=np.float32)))(1.5)
    assert g == 3.0
    ints = dp.grad(lambda x: dnp.sum(dnp.array([x, x], dtype=int) * x))(1.5)
    assert ints == 2.0  # the integer entries are constants (1 + 1)


def test_array_copies_and_asarray_does_not():
    def f(x):
        y, z = dnp.array(x), dnp.asarray(x)
        x += 1.0  # in place: reaches the alias z, not the copy y
        return y * 10.0 + z
    assert dp.grad(lambda x: dnp.sum(f(x)))(np.ones(2)).tolist() == [11.0, 11.0]
    assert _value_traced(f, (np.ones(2),)).tolist() == [12.0, 12.0]


@pytest.mark.parametrize(
    "call, words",
    [
        (lambda a: np.std([a, 1.0]), "numpy.std .*dnp.std"),
        (lambda a: np.var((a, a)), "numpy.var .*dnp.var"),
        (lambda a: np.linalg.norm([a, 2.0]), r"numpy.linalg.norm .*dnp.linalg.norm"),
        (lambda a: np.asarray([a, 2.0]), r"dnp.array\(\[...\]\)"),
        (lambda a: dnp.exp([a, 2.0]), r"dnp.array\(\[...\]\)"),
    ],
)  # fmt: skip
def test_numpy_functions_on_lists_of_traced_values_say_what_to_use(call, words):
    def f(a):
        with pytest.raises(dp.errors.TracerConversionError, match=words):
            call(a)
        return a
    dp.grad(f)(1.0)


def test_inhomogeneous_list_is_refused():
    def f(a):
        with pytest.raises(ValueError, match="different shapes"):
            dnp.array([a, [a, a]])
        with pytest.raises(ValueError, match="different shapes"):
            dnp.std([a * np.ones(2), a])
        return a
    dp.grad(f)(1.0)


# --- item 2: r_ and c_ ---------------------------------------------------------------------
INDEX_TRICK_CASES = {
    "r_scalars": (lambda m, a, b: m.r_[a, b * b, 1.0], [(), ()]),
    "r_array_scalar_range": (lambda m, x: m.r_[x, 0.0, 0:3], [(3,)]),
    "r_linspace_traced_ends": (lambda m, a, b: m.r_[a:b:5j, 2.0], [(), ()]),
    "r_axis_ndmin": (lambda m, x, y: m.r_["0,2", x, y], [(3,), (3,)]),
    "r_axis_ndmin_trans1d": (lambda m, x, y: m.r_["1,2,0", x, y * y], [(3,), (3,)]),
    "r_axis_only": (lambda m, x, y: m.r_["-1", x, y], [(2, 3), (2, 1)]),
    "r_ndmin3_trans1d": (lambda m, x, y: m.r_["2,3,1", x, y], [(3,), (3, 2)]),
    "c_columns": (lambda m, x, y: m.c_[x, y], [(3,), (3,)]),
    "c_rows_and_scalars": (lambda m, x, y: m.c_[x, 0, 0, y], [(1, 3), (1, 3)]),
    "c_list_with_traced": (lambda m, x, a, b: m.c_[x, [a, b, 1.0]], [(3,), (), ()]),
}  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", sorted(INDEX_TRICK_CASES))
def test_r_and_c(name, dtype, backend=NUMPY):
    fn, shapes = INDEX_TRICK_CASES[name]
    args = _args(np.random.default_rng(2), shapes, dtype)
    if name == "r_linspace_traced_ends":
        args = (np.asarray(0.5, dtype), np.asarray(2.0, dtype))
    _check(name, fn, args, backend)


test_r_and_c_on_gpu = on_gpu(test_r_and_c)


def test_r_and_c_errors():
    with pytest.raises(NotImplementedError, match="numpy.matrix"):
        dnp.r_["r", [1.0, 2.0]]
    with pytest.raises(NotImplementedError, match="matrix"):
        dnp.r_["1, 2; 3, 4"]
    with pytest.raises(ValueError, match="first entry"):
        dnp.r_[np.ones(2), "0"]
    with pytest.raises(ValueError, match="unknown special directive"):
        dnp.c_["a,b", np.ones(2)]

    def f(a):
        with pytest.raises(dp.errors.TracerConversionError, match=r"numpy.r_.*dnp.r_"):
            np.r_[a, 1.0]
        with pytest.raises(dp.errors.TracerConversionError, match=r"numpy.c_.*dnp.c_"):
            np.c_[np.ones(2), a * np.ones(2)]
        return a
    dp.grad(f)(1.0)


# --- item 3: new functions under NumPy's names ---------------------------------------------
def _spaced(rng, n):
    """Increasing, unevenly spaced coordinates."""
    return np.cumsum(rng.uniform(0.5, 1.5, size=n))


def _distinct(rng, shape):
    n = int(np.prod(shape, dtype=int))
    return rng.permutation(np.linspace(-1.5, 1.5, n) + rng.uniform(-0.02, 0.02, n)).reshape(shape)


R = np.random.default_rng(5)
XP = np.array([-1.2, -0.4, 0.1, 0.9, 1.7])  # interp's sample points
COORDS = _spaced(R, 4)
# name: (f(m, *args) with m = dnp or np, argument shapes, sampler or None for normal)
NEW_CASES = {
    "diff": (lambda m, x: m.diff(x), [(2, 5)], None),
    "diff_n_axis": (lambda m, x: m.diff(x, n=2, axis=0), [(4, 3)], None),
    "diff_prepend_append_scalars": (lambda m, x: m.diff(x, prepend=0.5, append=2.0), [(2, 3)], None),
    "diff_prepend_append_arrays": (lambda m, x, p: m.diff(x, 3, 0, prepend=p, append=p * p), [(3, 2), (1, 2)], None),
    "diff_n0": (lambda m, x: m.diff(x, n=0), [(3,)], None),
    "gradient_1d": (lambda m, x: m.gradient(x), [(5,)], None),
    "gradient_2d": (lambda m, x: m.gradient(x), [(3, 4)], None),
    "gradient_scalar_spacing": (lambda m, x: m.gradient(x, 0.5), [(3, 4)], None),
    "gradient_per_axis": (lambda m, x: m.gradient(x, 2.0, COORDS), [(3, 4)], None),
    "gradient_axis_coords": (lambda m, x: m.gradient(x, COORDS, axis=-1), [(2, 4)], None),
    "gradient_edge2": (lambda m, x: m.gradient(x, edge_order=2), [(4, 3)], None),
    "gradient_edge2_coords": (lambda m, x: m.gradient(x, 1.5, COORDS, edge_order=2), [(3, 4)], None),
    "gradient_edge2_length3": (lambda m, x: m.gradient(x, edge_order=2, axis=0), [(3, 2)], None),
    "gradient_traced_step": (lambda m, x, h: m.gradient(x * x, h * h + 1.0), [(5,), ()], None),
    "gradient_traced_coords": (lambda m, x, c: m.gradient(x, c, edge_order=2), [(5,), (5,)], "coords"),
    "partition": (lambda m, x: m.partition(x, 2), [(3, 5)], _distinct),
    "partition_kths_axis": (lambda m, x: m.partition(x, [0, 3], axis=0), [(5, 2)], _distinct),
    "partition_flat": (lambda m, x: m.partition(x, -1, axis=None), [(2, 3)], _distinct),
    "select": (lambda m, x, y: m.select([x < 0, y > 0.5], [x * y, y], 2.0), [(2, 3), (2, 3)], None),
    "select_traced_default": (lambda m, x, d: m.select([x > 0], [x], d), [(4,), ()], None),
    "select_broadcast": (lambda m, x, y: m.select([x > 0, np.array([True, False, True])], [x, y]), [(2, 3), (3,)], None),
    "nan_to_num": (lambda m, x: m.nan_to_num(x / (x > 0) - 1.0 / (x < -0.5), posinf=3.0, neginf=-4.0), [(3, 4)], None),
    "nan_to_num_values": (lambda m, x: m.nan_to_num(x / (x > 0), nan=-1.0, posinf=5.0), [(5,)], None),
    "nan_to_num_finite": (lambda m, x: m.nan_to_num(x), [(2, 3)], None),
    "nan_to_num_traced_values": (lambda m, x, v: m.nan_to_num(x / (x > 0), nan=v, neginf=v), [(5,), ()], None),
    "median_odd": (lambda m, x: m.median(x), [(5,)], _distinct),
    "median_even_axis": (lambda m, x: m.median(x, axis=1), [(3, 4)], _distinct),
    "median_axes_keepdims": (lambda m, x: m.median(x, axis=(0, 2), keepdims=True), [(2, 3, 3)], _distinct),
    "interp": (lambda m, x, fp: m.interp(x, XP, fp), [(4, 3), (5,)], "interp"),
    "interp_left_right": (lambda m, x, fp, lr: m.interp(x, XP, fp, left=lr, right=lr * lr), [(4, 3), (5,), ()], "interp"),
    "interp_traced_xp": (lambda m, x, xp: m.interp(x, xp, xp * xp), [(6,), (5,)], "interp_xp"),
    "interp_period": (lambda m, x, fp: m.interp(x, XP, fp, period=2.5), [(6,), (5,)], "interp"),
    "interp_scalar": (lambda m, x, fp: m.interp(x, XP, fp), [(), (5,)], "interp"),
}  # fmt: skip


def _new_case_args(name, shapes, sampler, dtype):
    rng = np.random.default_rng(6)
    if sampler == "coords":
        return (np.asarray(rng.normal(size=shapes[0]), dtype), np.asarray(_spaced(rng, shapes[1][0]), dtype))
    if sampler in ("interp", "interp_xp"):
        x = rng.uniform(-2.0, 2.0, size=shapes[0])
        x = np.where(np.min(np.abs(x[..., None] - XP), axis=-1) < 0.05, 0.5, x)  # off the kinks
        if sampler == "interp_xp":
            return (np.asarray(x, dtype), np.asarray(XP, dtype))
        return (np.asarray(x, dtype),) + tuple(np.asarray(rng.normal(size=s), dtype) for s in shapes[1:])
    sample = sampler or (lambda rng, s: rng.normal(size=s))
    return tuple(np.asarray(sample(rng, s), dtype) for s in shapes)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", sorted(NEW_CASES))
def test_new_functions(name, dtype, backend=NUMPY):
    fn, shapes, sampler = NEW_CASES[name]
    _check(name, fn, _new_case_args(name, shapes, sampler, dtype), backend)


test_new_functions_on_gpu = on_gpu(test_new_functions)


@pytest.mark.parametrize("name", sorted(NEW_CASES))
def test_numpy_dispatches_new_functions(name):
    """np.<func>(traced) reaches diffprog.numpy's function (and differentiates)."""
    fn, shapes, sampler = NEW_CASES[name]
    args = _new_case_args(name, shapes, sampler, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        _same(_value_traced(lambda *a: fn(np, *a), args), fn(np, *args))
        ours = dp.grad(lambda *a: dnp.sum(dp.tree.leaves(fn(dnp, *a))[0] ** 2))(*args)
        theirs = dp.grad(lambda *a: dnp.sum(dp.tree.leaves(fn(np, *a))[0] ** 2))(*args)
    np.testing.assert_array_equal(ours, theirs)


def test_nan_to_num_defaults_and_integers():
    for dtype in DTYPES:
        x = np.array([np.nan, np.inf, -np.inf, 1.5, -0.0], dtype)
        _same(dnp.nan_to_num(x), np.nan_to_num(x))
        _same(_value_traced(dnp.nan_to_num, (x,)), np.nan_to_num(x))
        g = dp.grad(lambda x: dnp.sum(dnp.nan_to_num(x) * 0.5))(x)
        assert g.dtype == dtype and g.tolist() == [0.0, 0.0, 0.0, 0.5, 0.5]
    ints = np.array([1, -2])
    _same(dnp.nan_to_num(ints), np.nan_to_num(ints))


def test_median_gradient_goes_to_the_middle_values():
    odd = np.array([3.0, -1.0, 7.0, 2.0, 5.0])
    assert dp.grad(dnp.median)(odd).tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    even = np.array([[4.0, 1.0, 3.0, 2.0], [8.0, 5.0, 6.0, 7.0]])
    g = dp.grad(lambda x: dnp.sum(dnp.median(x, axis=1) * np.array([1.0, 10.0])))(even)
    assert g.tolist() == [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 5.0, 5.0]]
    with_nan = np.array([[1.0, np.nan, 2.0], [1.0, 3.0, 2.0]])
    _same(_value_traced(lambda x: dnp.median(x, axis=1), (with_nan,)), np.median(with_nan, axis=1))
    _same(dnp.median(np.arange(6)), np.median(np.arange(6)))  # integers: a float64 mean


def test_partition_and_argpartition():
    x = np.array([[5.0, 1.0, 4.0, 2.0, 3.0], [0.5, -1.0, 2.0, 0.0, 9.0]])
    _same(dnp.argpartition(x, 2), np.argpartition(x, 2))
    _same(_value_traced(lambda x: dnp.argpartition(x, [1, 3]), (x,)), np.argpartition(x, [1, 3]))
    g = dp.grad(lambda x: dnp.partition(x, 2)[:, 2].sum())(x)  # the third smallest of each row
    assert g.tolist() == [[0.0, 0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0, 0.0]]
    with pytest.raises(ValueError, match="introselect"):
        dnp.partition(x, 1, kind="quicksort")


def test_interp_closed_forms():
    xp, fp = np.array([0.0, 1.0, 3.0]), np.array([1.0, 3.0, 2.0])
    x = np.array([-1.0, 0.25, 1.0, 2.0, 3.0, 4.0])
    gx = dp.grad(lambda x: dnp.sum(dnp.interp(x, xp, fp)))(x)
    # 0 outside; the segment's slope inside; at a sample point the slope to its right (the
    # last segment's at xp[-1])
    assert gx.tolist() == [0.0, 2.0, -0.5, -0.5, -0.5, 0.0]
    gfp = dp.grad(lambda fp: dnp.interp(np.float64(2.0), xp, fp))(fp)
    assert gfp.tolist() == [0.0, 0.5, 0.5]
    glr = dp.grad(lambda l, r: dnp.interp(x, xp, fp, left=l, right=r).sum(), (0, 1))(0.0, 0.0)
    assert glr == (1.0, 1.0)
    assert dnp.interp(2.0, xp, fp).dtype == np.float64  # float64, as NumPy computes
    assert _value_traced(lambda x: dnp.interp(x, xp, fp), (np.float32(0.5),)).dtype == np.float64


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: dnp.interp(1.0, [0.0, 1.0], [1.0]), ValueError, "same length"),
        (lambda: dnp.interp(1.0, [], []), ValueError, "empty"),
        (lambda: dnp.interp(1.0, [0.0, 1.0], [1.0, 2.0], period=0.0), ValueError, "non-zero"),
        (lambda: dnp.interp(1j, [0.0, 1.0], np.array([1.0, 2j])), TypeError, "x must be real"),
        (lambda: dnp.diff(np.ones(3), n=-1), ValueError, "non-negative"),
        (lambda: dnp.diff(np.float64(1.0)), ValueError, "at least one dimensional"),
        (lambda: dnp.gradient(np.ones(3), edge_order=3), ValueError, "edge_order"),
        (lambda: dnp.gradient(np.ones(2), edge_order=2), ValueError, "too small"),
        (lambda: dnp.gradient(np.ones((2, 2)), 1.0, 2.0, 3.0), TypeError, "number of arguments"),
        (lambda: dnp.gradient(np.ones(3), np.ones(2)), ValueError, "match the length"),
        (lambda: dnp.gradient(np.ones(3), np.ones((3, 1))), ValueError, "scalars or 1d"),
        (lambda: dnp.select([np.ones(2) > 0], []), ValueError, "same length"),
        (lambda: dnp.select([], []), ValueError, "empty condition"),
        (lambda: dnp.select([np.ones(2)], [np.ones(2)]), TypeError, "boolean"),
        (lambda: dnp.median(np.ones(3), out=np.ones(())), NotImplementedError, "out"),
    ],
)  # fmt: skip
def test_new_function_errors(call, error, words):
    with pytest.raises(error, match=words):
        call()


# --- item 3: linalg.eig, linalg.lstsq, linalg.norm(ord='nuc') -------------------------------
def real_spectrum(rng, shape):
    """P diag(w) P^-1, eigenvalues spread over [-2, 2]: real and distinct."""
    n = shape[-1]
    p = rng.normal(size=shape) * 0.3 + np.eye(n)
    w = np.linspace(-2.0, 2.0, n) + rng.uniform(-0.05, 0.05, size=shape[:-1])
    return np.linalg.solve(np.swapaxes(p, -1, -2), np.swapaxes(p * w[..., None, :], -1, -2))


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shape", [(3, 3), (2, 4, 4)], ids=str)
def test_eig(shape, dtype):
    a = real_spectrum(np.random.default_rng(7), shape).astype(dtype)
    weights = np.random.default_rng(8).normal(size=shape)
    check_grads(lambda a: dnp.linalg.eig(a).eigenvalues, (a,), order=2)
    # eigenvectors up to sign: differentiate a sign-invariant function of them
    check_grads(lambda a: dnp.linalg.eig(a).eigenvectors ** 2 * weights, (a,), order=2)
    check_grads(lambda a: dnp.linalg.eigvals(a * a), (a,), order=2)
    _same(_value_traced(lambda a: tuple(dnp.linalg.eig(a)), (a,)), tuple(np.linalg.eig(a)))
    _same(_value_traced(lambda a: tuple(np.linalg.eig(a)), (a,)), tuple(np.linalg.eig(a)))
    _same(tuple(dnp.linalg.eig(a)), tuple(np.linalg.eig(a)))
    w, v = dnp.linalg.eig(a)  # the result unpacks and names its fields like NumPy's
    assert w is dnp.linalg.eig(a).eigenvalues or np.array_equal(w, dnp.linalg.eig(a).eigenvalues)


def test_eig_closed_form_and_complex_spectrum():
    a = np.array([[2.0, 1.0], [0.0, 3.0]])  # w = (2, 3), left eigenvectors known
    g = dp.grad(lambda a: dnp.linalg.eigvals(a)[1])(a)  # dw/dA = u v^T / (u^T v)
    u, v = np.array([0.0, 1.0]), np.array([1.0, 1.0]) / np.sqrt(2.0)
    np.testing.assert_allclose(g, np.outer(u, v) / (u @ v), atol=1e-12)
    rotation = np.array([[0.0, -1.0], [1.0, 0.0]])  # eigenvalues +-i
    _same(tuple(dnp.linalg.eig(rotation)), tuple(np.linalg.eig(rotation)))  # a constant: NumPy's
    # a complex spectrum: sum(w) = trace(a), prod(w) = det(a) (gradient: the cofactors)
    g = dp.grad(lambda a: dnp.real(dnp.linalg.eigvals(a).sum()))(rotation)
    np.testing.assert_allclose(g, np.eye(2), atol=1e-12)
    g = dp.grad(lambda a: dnp.real(dnp.prod(dnp.linalg.eigvals(a))))(rotation)
    np.testing.assert_allclose(g, rotation, atol=1e-12)
    check_grads(lambda a: dnp.abs(dnp.linalg.eig(a)[1]) ** 2, (rotation + 0.1 * np.eye(2)[::-1],))


def _rank_two(rng, m, n):
    return rng.normal(size=(m, 2)) @ rng.normal(size=(2, n))


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("shapes", [((5, 3), (5,)), ((5, 3), (5, 2)), ((3, 5), (3, 2)), ((4, 4), (4,))], ids=str)
def test_lstsq_full_rank(shapes, dtype):
    rng = np.random.default_rng(9)
    a, b = (np.asarray(rng.normal(size=s), dtype) for s in shapes)
    check_grads(lambda a, b: dnp.linalg.lstsq(a, b)[0], (a, b), order=2)
    if shapes[0][0] > shapes[0][1]:
        check_grads(lambda a, b: dnp.linalg.lstsq(a, b)[1], (a, b), order=2)  # residuals
    check_grads(lambda a: dnp.linalg.lstsq(a, b)[3], (a,), order=2)  # singular values
    ours, theirs = _value_traced(lambda a, b: dnp.linalg.lstsq(a, b), (a, b)), np.linalg.lstsq(a, b)
    _same(ours[0], theirs[0])
    assert ours[2] == theirs[2]
    for o, t in zip((ours[1], ours[3]), (theirs[1], theirs[3])):  # recomputed: to rounding
        assert o.shape == t.shape and o.dtype == t.dtype
        np.testing.assert_allclose(o, t, rtol=1e-4 if dtype == np.float32 else 1e-10)
    _same(dnp.linalg.lstsq(a, b), np.linalg.lstsq(a, b))  # constants: NumPy's own


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("m, n", [(5, 4), (3, 4)])
def test_lstsq_rank_deficient_minimum_norm(m, n, dtype):
    """At constant rank (a = l @ r of rank 2, perturbed as a product) the derivative of the
    minimum-norm solution; with rcond above the perturbations' singular values, any
    direction."""
    rng = np.random.default_rng(10)
    l, r = np.asarray(rng.normal(size=(m, 2)), dtype), np.asarray(rng.normal(size=(2, n)), dtype)
    b = np.asarray(rng.normal(size=(m, 2)), dtype)
    # float32's rounding leaves l @ r of full rank to float64's default rcond: cut it off
    rcond = None if dtype == np.float64 else 1e-5
    check_grads(lambda l, r, b: dnp.linalg.lstsq(l @ r, b, rcond)[0], (l, r, b), order=2)
    a = l @ r
    check_grads(lambda a, b: dnp.linalg.lstsq(a, b, rcond=1e-2)[0], (a, b), order=2, eps=1e-4 if dtype == np.float64 else None)
    x, residuals, rank, s = _value_traced(lambda a: dnp.linalg.lstsq(a, b, rcond), (a,))
    assert rank == 2 and residuals.shape == (0,)
    pinv = np.linalg.pinv(a.astype(np.float64), rcond=rcond or 1e-15)
    np.testing.assert_allclose(x, pinv @ b, rtol=1e-3 if dtype == np.float32 else 1e-9)


def test_lstsq_closed_form():
    a, b, c = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0]]), np.array([1.0, 2.0, 4.0]), np.array([1.0, -2.0])
    gb = dp.grad(lambda b: dnp.sum(dnp.linalg.lstsq(a, b)[0] * c))(b)
    np.testing.assert_allclose(gb, np.linalg.pinv(a).T @ c, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("ord", ["nuc", 2, -2])
@pytest.mark.parametrize("axis, keepdims", [(None, False), ((0, 1), True), ((2, 0), False), ((-1, -2), True)], ids=str)
def test_singular_value_norms(ord, axis, keepdims, dtype):
    rng = np.random.default_rng(11)
    shape = (3, 4) if axis is None else (3, 4, 2)
    x = np.asarray(rng.normal(size=shape), dtype)
    f = lambda x: dnp.linalg.norm(x, ord, axis, keepdims)  # noqa: E731
    check_grads(f, (x,), order=2)
    _same(f(x), np.linalg.norm(x, ord, axis, keepdims))
    _same(_value_traced(f, (x,)), np.linalg.norm(x, ord, axis, keepdims))
    _same(_value_traced(lambda x: np.linalg.norm(x, ord, axis, keepdims), (x,)), np.linalg.norm(x, ord, axis, keepdims))


def test_nuclear_norm_closed_form():
    x = np.random.default_rng(12).normal(size=(4, 3))
    u, _, vh = np.linalg.svd(x, full_matrices=False)
    np.testing.assert_allclose(dp.grad(lambda x: dnp.linalg.norm(x, "nuc"))(x), u @ vh, atol=1e-12)


def test_constants():
    assert (dnp.pi, dnp.e, dnp.inf) == (np.pi, np.e, np.inf) and np.isnan(dnp.nan)
    assert dnp.newaxis is None
    assert dp.grad(lambda x: dnp.sum(x[:, dnp.newaxis] * dnp.pi))(np.ones(2)).tolist() == [dnp.pi] * 2
    assert {"e", "inf", "nan", "newaxis", "pi"} <= set(dnp.__all__)


@pytest.mark.parametrize(
    "call",
    [
        lambda x: np.append(x, x[:1]),
        lambda x: np.rollaxis(x.reshape(2, 3), 1),
        lambda x: np.unstack(x.reshape(2, 3))[1],
        lambda x: np.argpartition(x, 2) * x,
        lambda x: np.linalg.eig(x[:4].reshape(2, 2) * [[1.0, 1.0], [0.2, 1.0]] + [[3.0, 0.0], [0.0, 0.0]]).eigenvalues,
        lambda x: np.linalg.eigvals(x[:4].reshape(2, 2) * [[1.0, 1.0], [0.2, 1.0]] + [[3.0, 0.0], [0.0, 0.0]]),
        lambda x: np.linalg.lstsq(x.reshape(3, 2), x[:3])[0],
        lambda x: np.linalg.norm(x.reshape(2, 3), "nuc"),
    ],
)  # fmt: skip
def test_numpy_dispatches_more_new_functions(call):
    x = np.array([0.5, -1.0, 2.0, 1.5, 0.25, -0.75])
    check_grads(call, (x,), order=1)

test_lists_of_traced_values_under_jit = under_jit(test_lists_of_traced_values)
test_lists_of_traced_values_under_vmap = under_vmap(test_lists_of_traced_values)
test_r_and_c_under_jit = under_jit(test_r_and_c)
test_r_and_c_under_vmap = under_vmap(test_r_and_c)
test_new_functions_under_jit = under_jit(test_new_functions)
test_new_functions_under_vmap = under_vmap(test_new_functions)
