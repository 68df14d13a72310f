"""Every op against central differences: both modes, to second order (the gradient of the
gradient goes through graph extension), over shapes with broadcasting, float64 and float32.
Each table runs per case on NumPy and, in one gpu-marked test per table, on CuPy (values and
gradients compared with NumPy's; see tests/backends.py)."""

from __future__ import annotations

import numpy as np
import pytest

import diffprog.numpy as dnp
from backends import NUMPY, on_gpu, under_jit, under_jit_on_gpu, under_vmap
from diffprog.testing import check_grads
from samplers import away_from_zero, distinct, make, normal, positive

DTYPES = [np.float64, np.float32]
UNARY_SHAPES = [(), (3,), (2, 3), (2, 1, 4)]
BINARY_SHAPES = [
    ((), ()), ((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3)), ((4, 1, 3), (2, 3)),
]  # fmt: skip


UNARY = {
    "negative": (dnp.negative, normal),
    "abs": (dnp.abs, away_from_zero),
    "exp": (dnp.exp, normal),
    "log": (dnp.log, positive),
    "sqrt": (dnp.sqrt, positive),
    "sin": (dnp.sin, normal),
    "cos": (dnp.cos, normal),
    "tanh": (dnp.tanh, normal),
    "square": (dnp.square, normal),
    "sigmoid": (dnp.sigmoid, normal),
    "relu": (dnp.relu, away_from_zero),
    "softplus": (dnp.softplus, normal),
    "power_const": (lambda x: x**3, normal),
    "power_float_const": (lambda x: x**1.5, positive),
    "rpower": (lambda x: 2.0**x, normal),
    "clip": (lambda x: dnp.clip(x, -0.5, 0.7), away_from_zero),
    "getitem_neg_index": (lambda x: x[..., -1] if dnp.ndim(x) else x, normal),
}

BINARY = {
    "add": (dnp.add, normal, normal),
    "subtract": (dnp.subtract, normal, normal),
    "multiply": (dnp.multiply, normal, normal),
    "divide": (dnp.divide, normal, away_from_zero),
    "power": (dnp.power, positive, normal),
    "maximum": (dnp.maximum, distinct, lambda rng, s: distinct(rng, s) + 0.05),
    "minimum": (dnp.minimum, distinct, lambda rng, s: distinct(rng, s) + 0.05),
    "where": (lambda x, y: dnp.where(x > 0, x, y), away_from_zero, normal),
    "clip_bounds": (lambda lo, x: dnp.clip(x, lo, lo + 1.0), distinct, lambda rng, s: distinct(rng, s) * 0.9 + 0.33),
    "matmul_broadcast_elementwise_via_operators": (lambda x, y: (x + 1.0) * y - x / (y * y + 1.0), normal, normal),
}  # fmt: skip


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(name, shape, dtype, backend=NUMPY):
    fn, sampler = UNARY[name]
    x = make(np.random.default_rng(0), sampler, shape, dtype)
    backend.check_grads(fn, (x,), order=2)


test_unary_on_gpu = on_gpu(test_unary)
test_unary_under_jit_on_gpu = under_jit_on_gpu(test_unary)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary(name, shapes, dtype, backend=NUMPY):
    fn, sx, sy = BINARY[name]
    rng = np.random.default_rng(1)
    x, y = make(rng, sx, shapes[0], dtype), make(rng, sy, shapes[1], dtype)
    backend.check_grads(fn, (x, y), order=2)


test_binary_on_gpu = on_gpu(test_binary)
test_binary_under_jit_on_gpu = under_jit_on_gpu(test_binary)


REDUCTIONS = {
    "sum": (dnp.sum, normal),
    "mean": (dnp.mean, normal),
    "max": (dnp.max, distinct),
    "min": (dnp.min, distinct),
    "logsumexp": (dnp.logsumexp, normal),
}
AXES = [None, 0, -1, (0, 2), (1,)]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_reduction(name, axis, keepdims, dtype, backend=NUMPY):
    fn, sampler = REDUCTIONS[name]
    x = make(np.random.default_rng(2), sampler, (2, 3, 4), dtype)
    backend.check_grads(lambda x: fn(x, axis=axis, keepdims=keepdims), (x,), order=2)


test_reduction_on_gpu = on_gpu(test_reduction)
test_reduction_under_jit_on_gpu = under_jit_on_gpu(test_reduction)


SHAPE_OPS = {
    "reshape": (lambda x: dnp.reshape(x, (4, -1)), [(2, 3, 2)]),
    "reshape_method": (lambda x: x.reshape(3, 4) * x.reshape(-1).reshape((3, 4)), [(12,)]),
    "transpose": (lambda x: dnp.transpose(x, (2, 0, 1)), [(2, 3, 4)]),
    "T": (lambda x: x.T, [(2, 3)]),
    "broadcast_to": (lambda x: dnp.broadcast_to(x, (2, 3, 4)), [(3, 1)]),
    "expand_dims": (lambda x: dnp.expand_dims(x, (0, 2)), [(2, 3)]),
    "squeeze": (lambda x: dnp.squeeze(x, 1), [(2, 1, 3)]),
    "swapaxes": (lambda x: dnp.swapaxes(x, 0, 2), [(2, 3, 4)]),
    "moveaxis": (lambda x: dnp.moveaxis(x, 0, -1), [(2, 3, 4)]),
    "concatenate": (lambda x, y: dnp.concatenate([x, y, x], axis=1), [(2, 3), (2, 1)]),
    "stack": (lambda x, y: dnp.stack([x, y], axis=-1), [(2, 3), (2, 3)]),
    "getitem_basic": (lambda x: x[1:, ::2, None, 0], [(3, 4, 2)]),
    "getitem_advanced_repeats": (lambda x: x[np.array([0, 2, 0, 0]), 1:], [(3, 4)]),
    "getitem_list": (lambda x: x[[1, 1, 0]], [(3, 2)]),
    "getitem_boolean": (lambda x: x[np.array([True, False, True])], [(3, 2)]),
    "getitem_mask_from_values": (lambda x: x[x > 0], [(4, 3)]),
    "matmul": (dnp.matmul, [(2, 3), (3, 4)]),
    "matmul_batched_broadcast": (lambda a, b: a @ b, [(5, 1, 2, 3), (4, 3, 2)]),
    "matmul_vector_left": (dnp.matmul, [(3,), (2, 3, 4)]),
    "matmul_vector_right": (dnp.matmul, [(2, 4, 3), (3,)]),
    "matmul_vectors": (dnp.matmul, [(3,), (3,)]),
    "dot_matrix": (dnp.dot, [(2, 3), (3,)]),
    "dot_scalar": (dnp.dot, [(), (2, 3)]),
    "dot_nd": (dnp.dot, [(2, 3, 4), (5, 4, 2)]),
    "softmax": (lambda x: dnp.softmax(x, axis=-1), [(3, 4)]),
    "softmax_axis0": (lambda x: dnp.softmax(x, axis=0), [(3, 4)]),
    "log_softmax": (lambda x: dnp.log_softmax(x, axis=-1), [(3, 4)]),
    "iterate_rows": (lambda x: sum(row * row for row in x), [(3, 2)]),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(SHAPE_OPS))
def test_shape_and_products(name, dtype, backend=NUMPY):
    fn, shapes = SHAPE_OPS[name]
    rng = np.random.default_rng(3)
    args = tuple(make(rng, normal, s, dtype) for s in shapes)
    backend.check_grads(fn, args, order=2)


test_shape_and_products_on_gpu = on_gpu(test_shape_and_products)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_on_python_floats(name):
    fn, sampler = UNARY[name]
    check_grads(fn, (float(sampler(np.random.default_rng(4), ())),), order=2)


def test_results_match_numpy(backend):
    """The kernels compute what NumPy computes (on plain arrays nothing is traced), on every
    backend."""
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(3, 4)), rng.uniform(0.5, 2, size=(3, 4))
    gx, gy, ones = backend.put((x, y, np.ones((2, 3, 4))))
    check = backend.check
    check(dnp.sum(gx, axis=1), np.sum(x, axis=1))
    check(dnp.logsumexp(gx, axis=0), np.log(np.sum(np.exp(x), axis=0)))
    check(dnp.softmax(gx), np.exp(x) / np.exp(x).sum(-1, keepdims=True))
    check(dnp.log_softmax(gx), x - np.log(np.exp(x).sum(-1, keepdims=True)))
    check(dnp.sigmoid(gx), 1 / (1 + np.exp(-x)))
    check(dnp.softplus(gx), np.log1p(np.exp(x)))
    check(dnp.relu(gx), np.maximum(x, 0))
    check(dnp.power(gy, gx), np.power(y, x))
    other = np.ones((5, 4, 2))
    check(dnp.dot(ones, backend.put(other)), np.dot(np.ones((2, 3, 4)), other))
    check(dnp.clip(gx, -0.5, None), np.clip(x, -0.5, None))
    if backend.name == "numpy":  # bit for bit where NumPy runs the same kernels
        assert np.array_equal(dnp.sum(x, axis=1), np.sum(x, axis=1))
        assert np.array_equal(dnp.power(y, x), np.power(y, x))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_float32_stays_float32(dtype):
    """Results and gradients keep the input's dtype, Python constants do not promote."""
    import diffprog as dp

    x = np.linspace(-1, 1, 6, dtype=dtype).reshape(2, 3)

    def f(x):
        return dnp.sum(dnp.logsumexp(2.0 * x + 1, axis=1) ** 2) / 3

    assert f(x).dtype == dtype
    assert dp.grad(f)(x).dtype == dtype
    assert dp.grad(lambda x: dnp.sum(dp.grad(f)(x)))(x).dtype == dtype

# --- the same tables in complex64 / complex128, for the ops NumPy defines on complex values
# (not relu, softplus, clip, maximum, minimum, max, min, logsumexp, softmax: orderings) ------
COMPLEX_DTYPES = [np.complex128, np.complex64]
REAL_ONLY = {"relu", "softplus", "clip", "sigmoid", "maximum", "minimum", "clip_bounds", "max",
             "min", "logsumexp", "softmax", "softmax_axis0", "log_softmax", "where",
             "getitem_mask_from_values"}  # fmt: skip


@pytest.mark.parametrize("dtype", COMPLEX_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", UNARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(set(UNARY) - REAL_ONLY))
def test_unary_complex(name, shape, dtype, backend=NUMPY):
    test_unary(name, shape, dtype, backend)


@pytest.mark.parametrize("dtype", COMPLEX_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shapes", BINARY_SHAPES, ids=str)
@pytest.mark.parametrize("name", sorted(set(BINARY) - REAL_ONLY))
def test_binary_complex(name, shapes, dtype, backend=NUMPY):
    test_binary(name, shapes, dtype, backend)


@pytest.mark.parametrize("dtype", COMPLEX_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("axis", AXES, ids=str)
@pytest.mark.parametrize("name", sorted(set(REDUCTIONS) - REAL_ONLY))
def test_reduction_complex(name, axis, keepdims, dtype, backend=NUMPY):
    test_reduction(name, axis, keepdims, dtype, backend)


@pytest.mark.parametrize("dtype", COMPLEX_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(set(SHAPE_OPS) - REAL_ONLY))
def test_shape_and_products_complex(name, dtype, backend=NUMPY):
    test_shape_and_products(name, dtype, backend)


test_unary_complex_on_gpu = on_gpu(test_unary_complex)
test_binary_complex_on_gpu = on_gpu(test_binary_complex)
test_reduction_complex_on_gpu = on_gpu(test_reduction_complex)
test_shape_and_products_complex_on_gpu = on_gpu(test_shape_and_products_complex)


@pytest.mark.parametrize("name", sorted(set(UNARY) - REAL_ONLY))
def test_unary_on_python_complex(name):
    fn, sampler = UNARY[name]
    rng = np.random.default_rng(4)
    check_grads(fn, (complex(float(sampler(rng, ())), float(sampler(rng, ()))),), order=2)


test_unary_under_jit = under_jit(test_unary)
test_unary_under_vmap = under_vmap(test_unary)
test_binary_under_jit = under_jit(test_binary)
test_binary_under_vmap = under_vmap(test_binary)
test_reduction_under_jit = under_jit(test_reduction)
test_reduction_under_vmap = under_vmap(test_reduction)
test_shape_and_products_under_jit = under_jit(test_shape_and_products)
test_unary_complex_under_jit = under_jit(test_unary_complex)
test_binary_complex_under_jit = under_jit(test_binary_complex)
test_reduction_complex_under_jit = under_jit(test_reduction_complex)
test_shape_and_products_complex_under_jit = under_jit(test_shape_and_products_complex)
test_shape_and_products_under_vmap = under_vmap(test_shape_and_products)
test_unary_complex_under_vmap = under_vmap(test_unary_complex)
test_binary_complex_under_vmap = under_vmap(test_binary_complex)
test_reduction_complex_under_vmap = under_vmap(test_reduction_complex)
test_shape_and_products_complex_under_vmap = under_vmap(test_shape_and_products_complex)
