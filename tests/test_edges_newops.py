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

    sys.settrace(calls)
    try:
        fn()
    finally:
        sys.settrace(None)
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


@pytest.mark.parametrize("dtype", DTYPES, ids=dtype_id)
@pytest.mark.parametrize("name", sorted(LIST_CASES))
def test_lists_of_traced_values(name, dtype):
    fn, shapes = LIST_CASES[name]
    args = _args(np.random.default_rng(1), shapes, dtype)
    check_grads(lambda *a: fn(dnp, *a), args, order=2)
    _same(_value_traced(lambda *a: fn(dnp, *a), args), fn(np, *args))
    _same(fn(dnp, *args), fn(np, *args))  # untraced: NumPy's own result


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
def test_r_and_c(name, dtype):
    fn, shapes = INDEX_TRICK_CASES[name]
    args = _args(np.random.default_rng(2), shapes, dtype)
    if name == "r_linspace_traced_ends":
        args = (dtype(0.5), dtype(2.0))
    check_grads(lambda *a: fn(dnp, *a), args, order=2)
    _same(_value_traced(lambda *a: fn(dnp, *a), args), fn(np, *args))
    _same(fn(dnp, *args), fn(np, *args))


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
