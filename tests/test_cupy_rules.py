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
