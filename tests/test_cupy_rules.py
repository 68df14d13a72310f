"""The rules of CuPy that diffprog relies on, checked against the `cupy` imported.

On a GPU machine that is CuPy itself, so these tests confirm what tests/simulated_gpu claims
to model; in CI (tests/test_simulated_gpu.py) it is the simulator, so they check that it
models them. Each rule is one diffprog depends on: where it fails on a real GPU, the
simulator (and maybe diffprog) is wrong.
"""

import warnings

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from backends import require_cupy

pytestmark = pytest.mark.gpu


def test_no_implicit_conversion_to_numpy():
    cp = require_cupy()
    x = cp.arange(3.0)
    with pytest.raises(TypeError):
        np.asarray(x)
    with pytest.raises(TypeError):
        x + np.ones(3)  # noqa: B018  (a NumPy array is no kernel argument)
    with pytest.raises(TypeError):
        x + np.asarray(2.0)  # noqa: B018  (a 0-d one neither)
    assert isinstance(x * np.float32(2.0), cp.ndarray)  # NumPy scalars are
    assert isinstance(x * 2.0, cp.ndarray)


def test_reductions_give_0d_device_arrays():
    cp = require_cupy()
    s = cp.sum(cp.arange(3.0))
    assert isinstance(s, cp.ndarray) and s.shape == ()
    assert isinstance(cp.arange(3.0).max(), cp.ndarray)


def test_synchronisations_raise_under_allow_synchronize_false():
    cp = require_cupy()
    cupyx = pytest.importorskip("cupyx")
    if not hasattr(cupyx, "allow_synchronize"):
        pytest.skip("this CuPy has no cupyx.allow_synchronize")
    x = cp.arange(3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # deprecated since CuPy 10
        with cupyx.allow_synchronize(False):
            for sync in (lambda: float(x[0]), lambda: x.get(), lambda: x.tolist(),
                         lambda: bool(x[0]), lambda: repr(x)):  # fmt: skip
                with pytest.raises(cupyx.DeviceSynchronized):
                    sync()
            cp.asarray(np.ones(2))  # a host-to-device copy is not a synchronisation


def test_host_index_arrays_and_add_at():
    cp = require_cupy()
    x = cp.arange(4.0)
    assert x[np.array([3, 0])].get().tolist() == [3.0, 0.0]
    assert cp.take_along_axis(x, np.array([1, 1]), 0).get().tolist() == [1.0, 1.0]
    out = cp.zeros(3)
    cp.add.at(out, np.array([0, 0, 2]), cp.ones(3))
    assert out.get().tolist() == [2.0, 0.0, 1.0]


def test_operators_defer_to_tracers():
    """`cupy_array * tracer` must reach the tracer's __array_ufunc__ (CuPy declines types it
    does not know), or rules mixing a raw CuPy array with a traced value would break."""
    cp = require_cupy()
    a = cp.arange(3.0)
    g = dp.grad(lambda t: dnp.sum(a * t + a / t - a ** t))(cp.full(3, 2.0))
    want = np.arange(3.0) * (1 - 1 / 4.0) - np.log(np.arange(3.0) + 1e-300) * np.arange(3.0) ** 2
    np.testing.assert_allclose(g.get()[1:], want[1:], rtol=1e-12)


def test_asarray_copies_to_the_current_gpu_and_kernels_run_there():
    cp = require_cupy(devices=2)
    with cp.cuda.Device(1):
        b = cp.ones(2)
    assert b.device.id == 1
    with cp.cuda.Device(0):
        moved = cp.asarray(b)
        assert moved.device.id == 0
        assert (cp.zeros_like(b)).device.id == 0  # creation: on the current GPU, not b's


def test_elementwise_kernels_type_broadcast_and_allocate():
    """cupy.ElementwiseKernel as compile.cuda_kernels uses it: typed params (an array of
    another dtype is refused, a Python scalar is cast), inputs broadcast, outputs of the
    broadcast shape and the declared dtypes, several returned as a tuple."""
    cp = require_cupy()
    scale = cp.ElementwiseKernel("float32 x, float64 s", "float32 y, bool z",
                                 "y = x * (float)s;\nz = y > 1;", "rules_scale")  # fmt: skip
    host = np.arange(6, dtype=np.float32).reshape(2, 3)
    y, z = scale(cp.asarray(host), 0.5)
    assert (y.dtype, z.dtype, y.shape, z.shape) == (np.float32, np.bool_, (2, 3), (2, 3))
    np.testing.assert_array_equal(y.get(), host * np.float32(0.5))
    np.testing.assert_array_equal(z.get(), host * np.float32(0.5) > 1)
    with pytest.raises(TypeError, match="mismatched"):
        scale(cp.asarray(host, dtype=np.float64), 0.5)
    with pytest.raises(TypeError):
        scale(host, 0.5)  # a NumPy array is no kernel argument
    with pytest.raises(ValueError, match="shape"):
        scale(cp.asarray(host), 0.5, cp.empty(3, np.float32), cp.empty(3, np.bool_))
    add = cp.ElementwiseKernel("float64 a, float64 b", "float64 c", "c = a + b;", "rules_add")
    c = add(cp.ones((3, 1)), cp.arange(4.0))
    assert c.shape == (3, 4)
    np.testing.assert_array_equal(c.get(), 1.0 + np.arange(4.0) + np.zeros((3, 1)))
    broken = cp.ElementwiseKernel("float64 a", "float64 b", "b = no_such_function(a);",
                                  "rules_broken")  # fmt: skip
    with pytest.raises(Exception, match="no_such_function"):
        broken(cp.ones(2))  # compiled on its first call


def test_reduction_kernels_map_broadcast_inputs_and_reduce_over_axes():
    """cupy.ReductionKernel as compile.cuda_kernels uses it: a device function in the
    preamble as the map, inputs broadcast, a double accumulator, axes and keepdims."""
    cp = require_cupy()
    total = cp.ReductionKernel(
        "float32 x, float32 y, float64 s", "float32 r", "scaled(x, y, s)", "a + b",
        "r = (float)a", "0", "rules_total", reduce_type="double",
        preamble="__device__ double scaled(const float x, const float y, const double s) {\n"
                 "return (double)(x * y) * s;\n}\n")  # fmt: skip
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    y = np.linspace(0.5, 1.5, 3, dtype=np.float32).reshape(3, 1)
    want = (x * y).astype(np.float64) * 0.5
    r = total(cp.asarray(x), cp.asarray(y), 0.5)
    assert r.shape == () and r.dtype == np.float32
    np.testing.assert_allclose(r.get(), want.sum(), rtol=1e-6)
    r = total(cp.asarray(x), cp.asarray(y), 0.5, axis=(0, 2), keepdims=True)
    assert r.shape == (1, 3, 1)
    np.testing.assert_allclose(r.get(), want.sum(axis=(0, 2), keepdims=True), rtol=1e-6)
    np.testing.assert_allclose(total(cp.asarray(x), cp.asarray(y), 0.5, axis=(1,)).get(),
                               want.sum(axis=1), rtol=1e-6)  # fmt: skip
