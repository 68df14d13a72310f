"""NumPy parity of diffprog.numpy: where diffprog and NumPy differed silently (a list axis
taken, a 0-d array for NumPy's scalar, a NumPy function missing), each case against the
installed NumPy: value, type (np.ndarray or NumPy scalar), dtype and shape, or NumPy's error
type."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from numpy.exceptions import AxisError

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.numpy.dispatch import supported
from diffprog.testing import check_grads


def assert_same(got, want):
    """`got` is `want`: the same type (ndarray or which NumPy scalar), dtype, shape, values."""
    assert type(got) is type(want), (type(got), type(want))
    assert (np.asarray(got).dtype, np.shape(got)) == (np.asarray(want).dtype, np.shape(want))
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)


@pytest.mark.parametrize("name", ["left_shift", "right_shift"])
def test_shifts_are_numpys_on_integers_and_dispatch(name):
    theirs, ours = getattr(np, name), getattr(dnp, name)
    a, b = np.array([[1, 8, -16], [3, 5, 7]], np.int32), np.array([1, 2, 3], np.int8)
    for args in [(a, b), (a, 2), (5, 1), (np.int16(5), np.uint8(2)), (True, 1), ([1, 2], [3, 0])]:
        assert_same(ours(*args), theirs(*args))
    with pytest.raises(TypeError):  # floats have no shifts (NumPy's UFuncTypeError)
        ours(np.ones(2), 1)
    x = np.linspace(0.5, 1.0, 3)  # a traced float, an integer array shifted by a constant
    g = dp.grad(lambda x: dnp.sum(x * theirs(np.array([1, 2, 3]), 1)))(x)
    np.testing.assert_array_equal(g, theirs(np.array([1, 2, 3]), 1))
    shifted = dp.vmap(lambda k: ours(k, 1))(np.array([[1, 2], [3, 4]]))
    np.testing.assert_array_equal(shifted, theirs(np.array([[1, 2], [3, 4]]), 1))


AXIS_LISTS = ["sum", "mean", "max", "min", "prod", "var", "std", "ptp", "nansum", "nanmean",
              "nanmax", "nanvar", "count_nonzero", "any", "all", "argmax", "cumsum", "squeeze",
              "flip", "median", "average", "expand_dims"]  # fmt: skip


@pytest.mark.parametrize("name", AXIS_LISTS)
@pytest.mark.parametrize("axis", [[0, 1], [1], np.array([0, 1]), range(1), np.array(1)], ids=repr)
def test_a_list_axis_as_numpy(name, axis):
    """NumPy's ufunc reductions take an int or a tuple (a list is their TypeError); flip,
    median, average and expand_dims take any sequence: diffprog takes what NumPy takes."""
    x = np.arange(1.0, 7.0).reshape(2, 3, 1)
    try:
        want = getattr(np, name)(x, axis=axis)
    except (TypeError, ValueError) as e:
        with pytest.raises(type(e)):
            getattr(dnp, name)(x, axis=axis)
        with pytest.raises(type(e)):  # the same on a traced array
            dp.grad(lambda x: dnp.sum(getattr(np, name)(x, axis=axis)))(x)
        return
    assert_same(getattr(dnp, name)(x, axis=axis), want)


@pytest.mark.parametrize("x", [np.array(1.5), 1.5, np.float32(2.0), np.array(3), np.array([1.0, 2.0])],
                         ids=repr)  # fmt: skip
@pytest.mark.parametrize("axis", [None, (), [], 0, (0,), -1])
def test_flip_of_a_0d_array_is_numpys_scalar(x, axis):
    try:
        want = np.flip(x, axis=axis)
    except AxisError:
        with pytest.raises(AxisError):
            dnp.flip(x, axis=axis)
        return
    assert_same(dnp.flip(x, axis=axis), want)
    if np.asarray(x).dtype.kind == "f":  # traced: the primal, and the gradient (the identity)
        out, vjp = dp.vjp(lambda x: dnp.flip(x, axis=axis), x)
        assert_same(out, want)
        assert_same(vjp(np.ones_like(want))[0], type(x)(1) if np.ndim(x) == 0 and
                    not isinstance(x, np.ndarray) else np.ones_like(x))  # fmt: skip
        assert_same(dp.jit(lambda x: dnp.flip(x, axis=axis) * 2)(x), want * 2)


@pytest.mark.parametrize("axis", [(1,), [1], (-1,), np.array([0]), 1, True, (), (0, 1), 1.0, (5,)],
                         ids=repr)  # fmt: skip
def test_unstack_takes_an_axis_as_numpy(axis):
    """numpy.unstack takes its axis as moveaxis's source: one axis, given as an int or a
    sequence of one (NumPy 2.4)."""
    x = np.arange(6.0).reshape(2, 3)
    try:
        want = np.unstack(x, axis=axis)
    except (TypeError, ValueError) as e:
        with pytest.raises(type(e)):
            dnp.unstack(x, axis=axis)
        return
    got = dnp.unstack(x, axis=axis)
    assert len(got) == len(want) and all(map(assert_same, got, want)) is not None
    weights = np.arange(1.0, 1.0 + x.size).reshape(x.shape)
    g = dp.grad(lambda x: sum(dnp.sum(p * q) for p, q in zip(dnp.unstack(x, axis=axis),
                                                              np.unstack(weights, axis=axis))))(x)
    np.testing.assert_array_equal(g, weights)


@pytest.mark.parametrize("name", ["var", "std", "nanvar", "nanstd"])
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_variance_of_complex_values_is_real_as_numpy(name, axis):
    """NumPy's var of complex values is the mean of |deviation|**2, a real number (it was
    the mean of deviation**2, a complex one); its derivatives are central differences'."""
    z = np.array([[1 + 2j, 3 - 1j, 0.5j], [-1 + 0.5j, 2 + 0j, 1 - 1j]])
    assert_same(getattr(dnp, name)(z, axis=axis), getattr(np, name)(z, axis=axis))
    assert_same(getattr(dnp, name)(z, axis=axis, ddof=1), getattr(np, name)(z, axis=axis, ddof=1))
    check_grads(lambda re, im: getattr(dnp, name)(re + 1j * im, axis=axis), (z.real, z.imag),
                order=2)


@pytest.mark.parametrize("name", ["sum", "prod", "mean", "cumsum", "cumprod", "nansum", "nanprod",
                                  "nanmean"])  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
def test_reductions_take_dtype_as_numpy(name, dtype):
    """dtype= casts the entries before the reduction, as NumPy's (it was refused): the value
    is NumPy's, and the gradient reaches the input in the input's own dtype."""
    x = np.array([[0.5, -1.25, 2.0], [1.5, np.nan, -0.75]], np.float32)
    x = x if name.startswith("nan") else np.nan_to_num(x, nan=0.25)
    ours, theirs = getattr(dnp, name), getattr(np, name)
    assert_same(ours(x, dtype=dtype), theirs(x, dtype=dtype))
    assert_same(ours(x, axis=1, dtype=dtype), theirs(x, axis=1, dtype=dtype))
    f = lambda x: dnp.real(dnp.sum(ours(x, axis=0, dtype=dtype) * np.array([1.0, -2.0, 0.5])))  # noqa: E731
    g = dp.grad(f)(x)
    assert g.dtype == np.float32 and np.all(np.isfinite(g))
    if dtype is not np.float32:  # (central differences through float32 rounding: too coarse)
        check_grads(f, (np.nan_to_num(x, nan=0.25).astype(np.float64),), order=2)
    if name in ("sum", "prod", "cumsum", "cumprod"):  # an integer dtype casts every entry
        assert_same(ours(x, dtype=np.int64), theirs(x, dtype=np.int64))
    with pytest.raises(dp.UnsupportedKeywordError, match="dtype"):
        ours(x, dtype=bool)


# --- the sweep: every function NumPy dispatches to diffprog, on every kind of argument ---------
M = np.array([[0.25, -0.5, 0.75], [0.5, 0.125, -0.25]])
S = np.array([[2.0, 0.5, 0.25], [0.5, 3.0, -0.5], [0.25, -0.5, 1.5]])  # symmetric, positive
KINDS = {  # the array_like NumPy takes, of each kind (values in (-1, 1): every domain holds)
    "pyfloat": 0.25, "pyint": 3, "pybool": True, "pycomplex": 0.5 - 0.25j, "0d": np.array(0.25),
    "f64": np.float64(0.25), "f32": np.float32(0.25), "i64": np.int64(3), "list": M.tolist(),
    "int": np.array([[1, -2, 3], [4, 0, -1]]), "bool": M > 0, "float32": M.astype(np.float32),
    "float64": M, "complex": M + 0.5j * M[::-1], "empty": np.zeros((0, 3)),
}  # fmt: skip
SQUARE = {"float64": S, "float32": S.astype(np.float32), "list": S.tolist(), "int": np.eye(3, dtype=int),
          "complex": S + 0.25j * np.eye(3), "stack": np.stack([S, 2 * S]), "empty": np.zeros((0, 3, 3))}
TRACED = {"pyfloat", "0d", "f64", "f32", "float32", "float64", "complex", "stack"}  # (float leaves)
JITTED = {"0d", "f64", "float64", "stack"}
LIKE_ONLY = {"arange", "array", "asarray", "empty", "eye", "full", "identity", "ones", "zeros"}


def axis_calls(keepdims=True, dtype=False):
    """A reduction's calls: no axis, negative, tuple, None with keepdims, out of range."""
    calls = [lambda f, x: f(x), lambda f, x: f(x, axis=-1), lambda f, x: f(x, axis=(0, -1)),
             lambda f, x: f(x, axis=2)]  # fmt: skip
    if keepdims:
        calls += [lambda f, x: f(x, axis=0, keepdims=True), lambda f, x: f(x, None, keepdims=True)]
    if dtype:
        calls += [lambda f, x: f(x, dtype=np.float32), lambda f, x: f(x, axis=0, dtype=np.int64)]
    return calls


def one_axis_calls(*extra):
    return [lambda f, x: f(x, *extra), lambda f, x: f(x, *extra, axis=0),
            lambda f, x: f(x, *extra, axis=-1), lambda f, x: f(x, *extra, axis=5)]


def ufunc_calls(name):
    if getattr(np, name).nin == 1:
        return [lambda f, x: f(x), lambda f, x: f(x, dtype=np.float64)]
    return [lambda f, x: f(x, x), lambda f, x: f(x, 2), lambda f, x: f(0.5, x),
            lambda f, x: f(x, x, dtype=np.float64)]


_T = np.transpose
CALLS = {
    **{n: axis_calls(dtype=True) for n in ("sum", "prod", "mean", "var", "std", "nansum", "nanprod",
                                           "nanmean", "nanvar", "nanstd")},
    **{n: axis_calls() for n in ("max", "min", "amax", "amin", "ptp", "nanmax", "nanmin", "median",
                                 "count_nonzero", "any", "all")},
    **{n: axis_calls()[:4] + [lambda f, x: f(x, axis=0, keepdims=True)] for n in ("argmax", "argmin")},
    "average": axis_calls() + [lambda f, x: f(x, weights=np.ones_like(x), axis=None)],
    **{n: one_axis_calls() + [lambda f, x: f(x, axis=None)] for n in ("sort", "argsort")},
    **{n: one_axis_calls() + [lambda f, x: f(x, axis=None), lambda f, x: f(x, dtype=np.float32),
                              lambda f, x: f(x, 0, np.int64)] for n in ("cumsum", "cumprod")},
    **{n: one_axis_calls(1) for n in ("partition", "argpartition")},
    "flip": one_axis_calls() + [lambda f, x: f(x, axis=(0, 1)), lambda f, x: f(x, axis=())],
    "squeeze": [lambda f, x: f(x), lambda f, x: f(np.reshape(x, (1,) + np.shape(x)), axis=0)],
    "expand_dims": [lambda f, x: f(x, 0), lambda f, x: f(x, -1), lambda f, x: f(x, (0, 2)),
                    lambda f, x: f(x, 9)],
    "diff": one_axis_calls() + [lambda f, x: f(x, n=2, axis=-1), lambda f, x: f(x, prepend=0.0)],
    "roll": [lambda f, x: f(x, 1), lambda f, x: f(x, -1, axis=0), lambda f, x: f(x, (1, 1), axis=(0, 1))],
    "repeat": [lambda f, x: f(x, 2), lambda f, x: f(x, 2, axis=0), lambda f, x: f(x, 2, axis=-1)],
    "take": [lambda f, x: f(x, [0, -1]), lambda f, x: f(x, [0, 1], axis=-1), lambda f, x: f(x, 0)],
    "take_along_axis": [lambda f, x: f(x, np.zeros_like(x, dtype=int), axis=0),
                        lambda f, x: f(x, np.zeros(np.size(x), int), axis=None)],
    "reshape": [lambda f, x: f(x, (-1,)), lambda f, x: f(x, (1, -1)), lambda f, x: f(x, ())],
    "ravel": [lambda f, x: f(x)], "transpose": [lambda f, x: f(x), lambda f, x: f(x, (-1, 0))],
    "swapaxes": [lambda f, x: f(x, 0, -1)], "moveaxis": [lambda f, x: f(x, 0, -1)],
    "rollaxis": [lambda f, x: f(x, -1)], "broadcast_to": [lambda f, x: f(x, (4,) + np.shape(x))],
    **{n: [lambda f, x: f(x), lambda f, x: f(x, x)] for n in ("atleast_1d", "atleast_2d", "atleast_3d")},
    "tile": [lambda f, x: f(x, 2), lambda f, x: f(x, (2, 1))], "fliplr": [lambda f, x: f(x)],
    "flipud": [lambda f, x: f(x)], "rot90": [lambda f, x: f(x), lambda f, x: f(x, 3)],
    "diag": [lambda f, x: f(x), lambda f, x: f(x, 1)], "diagonal": [lambda f, x: f(x), lambda f, x: f(x, 1)],
    "trace": [lambda f, x: f(x), lambda f, x: f(x, dtype=np.float32)], "tril": [lambda f, x: f(x)],
    "triu": [lambda f, x: f(x, 1)], "pad": [lambda f, x: f(x, 1), lambda f, x: f(x, 1, mode="edge")],
    **{n: [lambda f, x: f(x, 2), lambda f, x: f(x, [1])] for n in ("split", "array_split", "hsplit",
                                                                    "vsplit", "dsplit")},
    **{n: [lambda f, x: f([x, x]), lambda f, x: f((x, x), dtype=np.float32)]
       for n in ("hstack", "vstack", "dstack", "column_stack")},
    "concatenate": [lambda f, x: f([x, x]), lambda f, x: f([x, x], axis=None), lambda f, x: f([x, x], axis=-1)],
    "stack": [lambda f, x: f([x, x]), lambda f, x: f([x, x], axis=-1)],
    "unstack": [lambda f, x: f(x), lambda f, x: f(x, axis=-1)],
    "append": [lambda f, x: f(x, x), lambda f, x: f(x, x, axis=0)],
    "where": [lambda f, x: f(np.real(x) > 0, x, 0.0), lambda f, x: f(True, x, 1)],
    "clip": [lambda f, x: f(x, -0.3, 0.3), lambda f, x: f(x, None, 0)],
    "nan_to_num": [lambda f, x: f(x), lambda f, x: f(x, nan=1.0)],
    "around": [lambda f, x: f(x), lambda f, x: f(x, 1)], "round": [lambda f, x: f(x, 1)],
    "fix": [lambda f, x: f(x)], "sinc": [lambda f, x: f(x)], "angle": [lambda f, x: f(x)],
    **{n: [lambda f, x: f(x)] for n in ("real", "imag", "iscomplex", "isreal", "iscomplexobj",
                                        "isrealobj", "real_if_close", "ndim", "shape", "size", "nonzero")},
    **{n: [lambda f, x: f(x), lambda f, x: f(x, dtype=np.float32)] for n in ("zeros_like", "ones_like", "empty_like")},
    "full_like": [lambda f, x: f(x, 2), lambda f, x: f(x, 0.5, dtype=np.float32)],
    "select": [lambda f, x: f([np.real(x) > 0], [x], 1.0)],
    "interp": [lambda f, x: f(x, [-1.0, 1.0], [0.0, 2.0])],
    "gradient": [lambda f, x: f(x, axis=-1)], "linspace": [lambda f, x: f(x, 1.0, 3)],
    **{n: [lambda f, x: f(x, _T(x))] for n in ("dot", "inner", "vdot", "kron", "outer")},
    "matmul": [lambda f, x: f(x, _T(x))], "vecdot": [lambda f, x: f(x, x)],
    "tensordot": [lambda f, x: f(x, _T(x), 1), lambda f, x: f(x, x, ((0, 1), (0, 1)))],
    "einsum": [lambda f, x: f("ij->j", x), lambda f, x: f("...,...", x, x)],
    "cross": [lambda f, x: f(x, x[::-1] if np.ndim(x) else x)],
    "linalg.norm": [lambda f, x: f(x), lambda f, x: f(x, axis=-1), lambda f, x: f(x, 1, axis=0),
                    lambda f, x: f(x, keepdims=True)],
    "linalg.matrix_transpose": [lambda f, x: f(x)], "linalg.vecdot": [lambda f, x: f(x, x)],
    "linalg.cross": [lambda f, x: f(x, x[..., ::-1] if np.ndim(x) else x)],
    "linalg.matmul": [lambda f, x: f(x, _T(x))], "linalg.tensordot": [lambda f, x: f(x, _T(x), 1)],
    "linalg.multi_dot": [lambda f, x: f([x, _T(x), x])], "linalg.svdvals": [lambda f, x: f(x)],
    "linalg.svd": [lambda f, x: f(x, compute_uv=False)], "linalg.pinv": [lambda f, x: f(x)],
    "linalg.lstsq": [lambda f, x: f(_T(x), np.ones(np.shape(_T(x))[:1]), rcond=None)[0]],
    **{f"fft.{n}": [lambda f, x: f(x), lambda f, x: f(x, norm="ortho")] for n in (
        "fft", "ifft", "rfft", "ihfft", "fft2", "ifft2", "fftn", "ifftn", "rfft2", "rfftn")},
    **{f"fft.{n}": [lambda f, x: f(x), lambda f, x: f(x, 4)] for n in ("irfft", "hfft")},
    **{f"fft.{n}": [lambda f, x: f(x)] for n in ("irfft2", "irfftn", "fftshift", "ifftshift")},
    **{f"fft.{n}": [lambda f, x: f(4, x), lambda f, x: f(3, d=x)] for n in ("fftfreq", "rfftfreq")},
    "row_stack": [lambda f, x: f([x, x])],
    "copyto": [lambda f, x: (lambda dst: (f(dst, x, casting="unsafe"), dst)[1])(np.zeros_like(x))],
    **{n: [lambda f, x: f(x), lambda f, x: f(x, dtype=np.float32), lambda f, x: f(x, ndmin=2)]
       for n in ("array", "asarray")},
    **{n: [lambda f, x: f(np.shape(x)), lambda f, x: f(np.shape(x), np.int32)]
       for n in ("zeros", "ones", "empty")},
    "full": [lambda f, x: f(np.shape(x), x), lambda f, x: f(3, x, dtype=np.float32)],
    **{n: [lambda f, x: f(np.size(x)), lambda f, x: f(2, dtype=np.float32)] for n in ("eye", "identity")},
    "arange": [lambda f, x: f(x), lambda f, x: f(-1, x, 0.5)],
}  # fmt: skip
SQUARE_CALLS = {  # linalg of square matrices: on SQUARE's kinds
    **{f"linalg.{n}": [lambda f, x: f(x)] for n in ("inv", "det", "slogdet", "cholesky", "eigh",
                                                    "eigvalsh", "eigvals", "qr")},
    "linalg.eig": [lambda f, x: f(x)[0]],
    "linalg.solve": [lambda f, x: f(x, x)], "linalg.matrix_power": [lambda f, x: f(x, 2)],
}  # fmt: skip
UFUNCS = sorted(n for n in dnp.__all__ if isinstance(getattr(np, n, None), np.ufunc))
FUNCTIONS = sorted(set(CALLS) | set(SQUARE_CALLS) | set(UFUNCS))


def _resolve(namespace, name):
    for part in name.split("."):
        namespace = getattr(namespace, part)
    return namespace


def _outcome(call, f, x):
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return call(f, x), None
        except Exception as e:  # noqa: BLE001  (compared with NumPy's below)
            return None, e


def _same_error(ours, theirs):
    """Ours is NumPy's error type: AxisError as AxisError, otherwise the builtin class NumPy's
    error derives from (NumPy's UFuncTypeError is a TypeError); UnsupportedKeywordError is
    diffprog's word for a keyword it does not implement."""
    if isinstance(ours, dp.UnsupportedKeywordError) or type(ours) is type(theirs):
        return True
    if isinstance(ours, (AttributeError, ZeroDivisionError)):  # a crash, never a refusal
        return False
    if _accidental(theirs):
        return isinstance(ours, (TypeError, ValueError, IndexError))
    if isinstance(theirs, AxisError):
        return isinstance(ours, AxisError)
    base = next(c for c in type(theirs).__mro__ if c.__module__ == "builtins")
    return isinstance(ours, base)


def _same_layout(got, want):
    """`_mismatch` of type, dtype and shape alone (empty_like's values are the memory's)."""
    return _mismatch(np.zeros_like(got), np.zeros_like(want))


def _accidental(error):
    """Whether NumPy's `error` is an accident of its implementation on input it does not take
    (a number where it reads .ndim, an index past a shape it assumed), not a refusal it
    chose: diffprog refuses such input with a TypeError, ValueError or IndexError naming
    the problem (docs/reliability.md)."""
    return isinstance(error, (AttributeError, IndexError, ZeroDivisionError)) or any(
        text in str(error) for text in ("has no len()", "missing 1 required", "not enough values",
                                        "positional argument"))  # fmt: skip


def _mismatch(got, want):
    """Why `got` is not `want` (type, dtype, shape, value, or tuple structure), or None."""
    if isinstance(want, (tuple, list)):  # (a named tuple: of NumPy's name and fields)
        if (type(got).__name__, getattr(got, "_fields", None), len(got)) != (
                type(want).__name__, getattr(want, "_fields", None), len(want)):
            return f"{type(got).__name__} of {len(got)} for {type(want).__name__} of {len(want)}"
        return next((m for m in map(_mismatch, got, want) if m), None)
    if type(got) is not type(want):
        return f"type {type(got).__name__} for NumPy's {type(want).__name__}"
    if np.asarray(got).dtype != np.asarray(want).dtype or np.shape(got) != np.shape(want):
        return f"{np.asarray(got).dtype}{np.shape(got)} for {np.asarray(want).dtype}{np.shape(want)}"
    try:
        rtol = 1e-5 if np.asarray(want).dtype in (np.float32, np.complex64) else 1e-9
        np.testing.assert_allclose(got, want, rtol=rtol, atol=1e-12, equal_nan=True)
    except AssertionError:
        return f"value {got!r} for {want!r}"
    except TypeError:  # not numbers (NumPy's ndim, shape, ...): the very value
        return None if got == want else f"value {got!r} for {want!r}"
    return None


def sweep(name, calls, kinds):
    """The failures of diffprog's `name` against NumPy's on every call and argument kind:
    eagerly, and for float arguments NumPy's function on a traced one (inside dp.vjp: the
    primal) and diffprog's under dp.jit (a recording and a replay)."""
    theirs, ours, failures, count = _resolve(np, name), _resolve(dnp, name), [], 0
    for (i, call), (kind, x) in itertools.product(enumerate(calls), kinds.items()):
        want, error = _outcome(call, theirs, x)
        got, raised = _outcome(call, ours, x)
        count += 1
        if isinstance(raised, dp.UnsupportedKeywordError):  # refused by name: never ignored
            continue
        if error is not None and raised is None and _accidental(error):  # (array_like taken)
            continue
        if error is not None or raised is not None:
            if error is None or raised is None or not _same_error(raised, error):
                failures.append(f"{name} call {i} on {kind}: NumPy {error!r}, diffprog {raised!r}")
            continue
        compare = _same_layout if name in ("empty_like", "empty") else _mismatch
        why = compare(got, want)
        mine = ours if name in LIKE_ONLY else theirs  # (NumPy's hands diffprog only like=)
        runs = [("traced", lambda x: dp.vjp(lambda x: call(mine, x), x)[0])] if (
            kind in TRACED and name not in ("arange", "copyto")) else []  # (constants; a write)
        if (kind in JITTED and isinstance(want, (np.ndarray, np.generic)) and
                want.dtype.kind in "fc"):  # fmt: skip
            jitted = dp.jit(lambda x: call(ours, x), fuse=False)
            runs += [("jit", jitted), ("jit replay", jitted)]
        for mode, run in runs if why is None else ():
            got, raised = _outcome(lambda _, x: run(x), None, x)
            why = f"{mode}: {raised!r}" if raised is not None else compare(got, want)
            why = why and f"{mode}: {why}"
        if why:
            failures.append(f"{name} call {i} on {kind}: {why}")
    return failures, count


#: deliberate differences (docs/reliability.md): function -> what diffprog says instead
DELIBERATE = {
    # NumPy's fftn / ifftn of a 0-d array transform no axis and return the input as it is
    # (a real array from the complex transform): diffprog refuses
    "fft.fftn": "no axes to transform", "fft.ifftn": "no axes to transform",
}


@pytest.mark.parametrize("name", FUNCTIONS)
def test_numpy_parity_sweep(name):
    """diffprog's function has NumPy's value, result type, dtype and shape, or raises NumPy's
    error type, on every kind of argument (and axis and keyword) in the tables above, except
    where the difference is deliberate (DELIBERATE: each still occurs, on 0-d input only)."""
    calls, kinds = (SQUARE_CALLS[name], SQUARE) if name in SQUARE_CALLS else (
        CALLS.get(name) or ufunc_calls(name), KINDS)
    failures, _ = sweep(name, calls, kinds)
    if name in DELIBERATE:
        expected = [f for f in failures if DELIBERATE[name] in f]
        assert expected and all(np.ndim(KINDS[f.split(" on ")[1].split(":")[0]]) == 0
                                for f in expected)  # fmt: skip
        failures = [f for f in failures if f not in expected]
    assert not failures, "\n".join(failures)


def test_the_sweep_covers_every_function_numpy_dispatches():
    """Every NumPy function docs/numpy_coverage.md marks `yes` has a row in the sweep."""
    ufuncs, functions = supported(dnp)
    names = set(ufuncs) | {f"{f.__module__.split('.')[1]}.{f.__name__}" if f.__module__.startswith(
        ("numpy.linalg", "numpy.fft")) else f.__name__ for f in functions}  # fmt: skip
    assert names - set(FUNCTIONS) == set()


# --- what the sweep found under dp.jit --------------------------------------------------------
def test_average_with_weights_under_jit():
    """(average's zero-weights guard reads a value folded from constants: the optimizer kept the
    guard on a variable it had removed, and the code generator found no slot for it)"""
    x = np.array([[0.25, 0.5], [0.125, 0.75]])
    for fuse in (False, True):
        jitted = dp.jit(lambda x: dnp.average(x, weights=np.ones_like(x), axis=None), fuse=fuse)
        for _ in range(2):  # the recording, then a replay
            assert_same(jitted(x), np.average(x, weights=np.ones_like(x), axis=None))
        assert jitted.stats["replays"] == 1 and jitted.stats["eager_calls"] == 0


def test_nan_to_num_of_a_0d_array_under_jit_is_numpys_scalar():
    """(diffprog's nan_to_num decided on the staged value's type, not the array's under it)"""
    jitted = dp.jit(lambda x: dnp.nan_to_num(x), fuse=False)
    x = np.array(0.25)
    assert_same(jitted(x), np.float64(0.25))
    assert_same(jitted(x), np.float64(0.25))
