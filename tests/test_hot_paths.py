"""The short paths of the plain tape (recording, the sweep's edges, the transform boundary)
give exactly what the general paths give: values, types, dtypes, flags and errors."""

from __future__ import annotations

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.ad.reverse import ReverseTrace
from diffprog.core.edge import broadcast_to, sum_to_shape
from diffprog.core.trace import open_trace
from diffprog.errors import TracerConversionError
from diffprog.numpy._define import axes_of


@pytest.mark.parametrize("value", [np.float64(2.5), np.array(-1.5), np.float32(3.0),
                                   np.complex128(1 - 2j), np.array(True), np.int64(7)])
@pytest.mark.parametrize("shape", [(3,), (2, 3), (0, 4), ()])
def test_broadcast_of_a_0d_value_is_numpys_read_only_view(value, shape):
    ours, numpys = broadcast_to(value, shape=shape), np.broadcast_to(value, shape)
    if not shape and isinstance(value, np.generic):  # a scalar stays a scalar
        assert ours is value
        return
    assert type(ours) is np.ndarray and ours.shape == numpys.shape
    assert ours.dtype == numpys.dtype and np.array_equal(ours, numpys)
    assert not ours.flags.writeable and ours.strides == numpys.strides


def test_broadcast_of_arrays_and_bad_shapes_is_numpys():
    row = np.arange(3.0)
    assert np.array_equal(broadcast_to(row, shape=(2, 3)), np.broadcast_to(row, (2, 3)))
    with pytest.raises(ValueError):
        broadcast_to(row, shape=(2, 4))


def test_sum_to_shape_remembers_axes_and_still_refuses_bad_shapes():
    x = np.arange(24.0).reshape(2, 3, 4)
    for _ in range(2):  # the second call finds the axes remembered
        assert np.array_equal(sum_to_shape(x, shape=(4,)), x.sum(axis=(0, 1)))
        assert np.array_equal(sum_to_shape(x, shape=(3, 1)), x.sum(axis=(0, 2))[:, None])
        with pytest.raises(ValueError, match="cannot sum"):
            sum_to_shape(x, shape=(1, 1, 1, 4))


@pytest.mark.parametrize("axis, ndim, zero_d, expected", [
    (-1, 2, "strict", (1,)), (0, 3, "strict", (0,)), (2, 3, "strict", (2,)),
    (0, 0, "nothing", ()), (-1, 0, "one", (0,)), (None, 2, "strict", (0, 1)),
])
def test_axes_of_an_int_axis(axis, ndim, zero_d, expected):
    assert axes_of(axis, ndim, zero_d) == expected


@pytest.mark.parametrize("axis, ndim", [(2, 2), (-3, 2), (0, 0)])
def test_axes_of_an_int_axis_out_of_bounds(axis, ndim):
    with pytest.raises(ValueError):
        axes_of(axis, ndim)


def test_axes_of_refuses_a_bool_axis():
    with pytest.raises(TypeError):
        axes_of(True, 2)


def test_a_float_constant_first_is_recorded_like_any_constant():
    x = np.array([0.5, 2.0])
    g = dp.grad(lambda x: dnp.sum(2.0 * x + (1.0 - x) ** 2 - 3.0 / x))(x)
    assert np.allclose(g, 2.0 - 2 * (1.0 - x) + 3.0 / x**2)
    with open_trace(ReverseTrace, "test") as trace:
        t = trace.watch(np.array([1.0, 2.0], dtype=np.float32))
        y = 2.0 * t  # a Python float is weak: float32 stays float32
        assert y.dtype == np.float32 and trace.tape[-1][2][0] == 2.0
        assert list(trace.tape[-1][3]) == [-1, t.slot]


def test_a_watched_float_first_keeps_its_weak_type():
    assert dp.grad(lambda a: a * np.float32(3.0))(2.0) == 3.0
    value, g = dp.value_and_grad(lambda a: (a * np.ones(2, np.float32)).sum())(2.0)
    assert value.dtype == np.float32 and type(g) is float and g == 2.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_the_seed_of_a_numpy_scalar_output_has_its_dtype(dtype):
    x = np.arange(1.0, 4.0, dtype=dtype)
    value, g = dp.value_and_grad(lambda x: dnp.mean(x * x))(x)
    assert type(value) is dtype and g.dtype == dtype
    assert np.allclose(g, 2 * x.astype(np.float64) / 3, rtol=1e-3)


def test_a_store_into_a_numpy_array_is_still_refused_by_name():
    def f(x):
        a = np.zeros(2)
        a[0] = x
        return x

    with pytest.raises(TracerConversionError, match="silently drop its gradient"):
        dp.grad(f)(1.0)
