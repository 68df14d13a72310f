"""NumPy parity of diffprog.numpy: where diffprog and NumPy differed silently (a list axis
taken, a 0-d array for NumPy's scalar, a NumPy function missing), each case against the
installed NumPy: value, type (np.ndarray or NumPy scalar), dtype and shape, or NumPy's error
type."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.exceptions import AxisError

import diffprog as dp
import diffprog.numpy as dnp
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
