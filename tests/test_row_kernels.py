"""Row kernels under dp.jit (compile.rows): small softmax / log_softmax along trailing axes
as one numba kernel (its exponentials vmath's in a vectorized loop, or libm's in one too
short for it), equal to the NumPy kernel to float rounding in float64 and float32, with
NaN, +-inf and all -inf rows, first and second order; too big, along a leading axis, or a
kernel that disagrees: left to NumPy."""

from __future__ import annotations

import numpy as np
import pytest
from test_fusion import check_fused, fused_nodes

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.compile import kernels, rows

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")

NORMALIZATIONS = {"log_softmax": dnp.log_softmax, "softmax": dnp.softmax}


def row_kernels(graph):
    return [n for n in fused_nodes(graph) if n.prim.members[0].prim.name in NORMALIZATIONS]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, axis", [((16, 10), -1), ((4, 5, 6), (1, 2)), ((7,), 0)], ids=str)
@pytest.mark.parametrize("name", list(NORMALIZATIONS))
def test_row_kernel_equals_numpy_with_gradients(name, shape, axis, dtype):
    x = np.random.default_rng(0).normal(size=shape).astype(dtype) * 20
    w = np.random.default_rng(1).normal(size=shape).astype(dtype)
    f = NORMALIZATIONS[name]
    graph = check_fused(lambda x: f(x, axis=axis), x)
    (node,) = row_kernels(graph)
    assert "(one kernel:)" in graph.text()
    vector = x.size >= kernels.VECTOR_MIN_EXTENT  # the exponentials' flat loop vectorizes
    assert ("vmath.exp" in node.prim.source) == vector != ("np.exp(" in node.prim.source)
    assert ("vmath.log" in node.prim.source) == (vector and name == "log_softmax")
    if dtype == np.float32:  # (the derivatives' kernels compile slowly: float64 only)
        return
    check_fused(dp.value_and_grad(lambda x: dnp.sum(f(x, axis=axis) * w)), x)
    if len(shape) == 2:  # second order
        check_fused(lambda x: dp.hvp(lambda x: dnp.sum(f(x, axis=axis) * w), (x,), (w,)), x)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("name", list(NORMALIZATIONS))
def test_rows_of_nan_and_inf_as_numpy(name):
    x = np.random.default_rng(2).normal(size=(6, 5))
    x[0, 2], x[1, 1], x[2] = np.nan, np.inf, -np.inf
    x[3, :2] = -np.inf
    got = dp.jit(lambda x: NORMALIZATIONS[name](x))(x)
    want = NORMALIZATIONS[name](x)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-13, atol=0)


def test_big_or_leading_axis_normalizations_stay_numpy():
    for big in (np.ones((4, 1024)), np.ones((128, 256))):  # long rows; too many short ones
        assert not row_kernels(dp.jit(dnp.log_softmax).lower(big).graph)
    many = np.ones((1024, 10))  # rows of at most SHORT_ROW: up to SHORT_ROWS_MAX_SIZE
    assert row_kernels(dp.jit(dnp.log_softmax).lower(many).graph)
    leading = np.ones((10, 8))
    assert not row_kernels(dp.jit(lambda x: dnp.softmax(x, axis=0)).lower(leading).graph)


def test_a_row_kernel_that_disagrees_is_refused(monkeypatch):
    real = rows.row_kernel_source
    wrong = lambda *a: real(*a).replace("o[r, j] - ls", "o[r, j] + ls")  # noqa: E731
    monkeypatch.setattr(rows, "row_kernel_source", wrong)
    x = np.linspace(0, 1, 12).reshape(3, 4)
    graph = check_fused(lambda x: dnp.log_softmax(x) * 2.0 + 1.0, x, kernels_at_least=0)
    assert not row_kernels(graph)
