"""Fused CuPy kernels under dp.jit (compile.cuda_kernels): fused == unfused on the GPU to
float rounding in float64 and float32 with broadcasting, every operation's C++ form with
NaN, Inf and signed zeros, weak Python scalars, second order, the kernel cache, a replay
without transfers or synchronisations, and a kernel that does not compile left unfused.

All gpu-marked: on a machine without a GPU they run on the simulated CuPy
(tests/test_simulated_gpu.py), whose ElementwiseKernel compiles and runs the generated C++
with the host's g++, so the sources are executed, not compared as text.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from backends import assert_fused_close, require_cupy
from test_fusion import bias_layer, casts, smooth  # the same programs as on the CPU
from test_fusion import check_fused as check_fused_on_host, fused_nodes

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.compile import cuda_kernels

pytestmark = pytest.mark.gpu


@pytest.fixture
def cp():
    return require_cupy()


def check_fused(f, *args, kernels_at_least=1):
    """test_fusion's check on device arrays (their results brought back to compare)."""
    return check_fused_on_host(f, *args, kernels_at_least=kernels_at_least,
                               host=lambda a: a.get())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shapes", [((4, 3), (3,)), ((5, 1), (1, 6)), ((2, 3, 4), (3, 1))], ids=str)
@pytest.mark.parametrize("f", [bias_layer, smooth, casts], ids=lambda f: f.__name__)
def test_fused_equals_unfused_values_and_gradients(cp, f, shapes, dtype):
    rng = np.random.default_rng(0)
    x, b = (cp.asarray(rng.uniform(0.1, 1.0, s).astype(dtype)) for s in shapes)
    check_fused(dp.value_and_grad(f, argnums=(0, 1)), x, b)


SUMS = {
    "sum": lambda x, b: dnp.sum(dnp.tanh(x * b + 1.0)),
    "axes": lambda x, b: dnp.sum(dnp.exp(-x) * b, axis=(0, 2)),
    "keepdims": lambda x, b: dnp.sum(x * b - 1.0, axis=1, keepdims=True),
    "sum_to_shape": lambda x, b: dp.grad(lambda b: dnp.sum(dnp.sin(x * b)))(b),
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", SUMS)
def test_a_group_ending_in_its_one_sum_is_a_reduction_kernel(cp, name, dtype):
    rng = np.random.default_rng(2)
    x = cp.asarray(rng.uniform(0.1, 1.0, (4, 3, 5)).astype(dtype))
    b = cp.asarray(rng.uniform(0.1, 1.0, (3, 1)).astype(dtype))
    graph = check_fused(SUMS[name], x, b)
    reductions = [n for n in fused_nodes(graph) if n.prim.kernel.reduce]
    assert reductions, graph.text()
    assert reductions[0].prim.members[-1].prim.name == ("sum_to_shape" if name == "sum_to_shape" else "sum")


def test_second_order_fused(cp):
    x = cp.asarray(np.linspace(0.1, 1.0, 12).reshape(3, 4))
    t = cp.ones_like(x)
    check_fused(lambda x, t: dp.hvp(lambda x: smooth(x, x + 1.0), (x,), (t,)), x, t)


# every operation a GPU kernel writes, on values that include NaN, +-Inf and signed zeros
SPECIAL = np.array([-np.inf, -2.5, -1.0, -0.5, -0.0, 0.0, 0.3, 0.5, 1.0, 2.0, np.inf, np.nan])
UNARY = ["negative", "positive", "square", "absolute", "fabs", "sqrt", "floor", "ceil", "trunc",
         "rint", "exp", "expm1", "exp2", "log", "log1p", "log2", "log10", "cbrt", "sin", "cos",
         "tan", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh", "arccosh",
         "arctanh", "sign", "reciprocal", "isnan", "isinf", "isfinite", "signbit"]  # fmt: skip
BINARY = ["add", "subtract", "multiply", "divide", "maximum", "minimum", "fmax", "fmin",
          "copysign", "arctan2", "hypot", "power", "less", "less_equal", "greater",
          "greater_equal", "equal", "not_equal"]  # fmt: skip


def test_the_table_covers_every_form():
    assert set(UNARY) | set(BINARY) | {"where"} == set(cuda_kernels._FORMS) | set(cuda_kernels._FUNCTIONS)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_operation_matches_numpy_on_special_values(cp, dtype):
    """All operations in one kernel (one compile), each output compared with NumPy's: the
    same values (NaN where NumPy's is), signed zeros, dtypes."""
    x, y = SPECIAL.astype(dtype), np.roll(SPECIAL, 5).astype(dtype)
    ufuncs = {name: abs if name == "absolute" else getattr(dnp, name)  # dnp.absolute is `abs`
              for name in UNARY + BINARY}  # fmt: skip

    def f(x, y):
        x, y = x * 0.5, y * 0.5  # exact; makes the operations' operands values of the kernel
        return {name: u(x) if name in UNARY else u(x, y) for name, u in ufuncs.items()}

    fused = dp.jit(f)
    graph = fused.lower(cp.asarray(x), cp.asarray(y)).graph
    done = {cuda_kernels.scalar_op(m) for n in fused_nodes(graph) for m in n.prim.members}
    assert set(ufuncs) <= done, f"not fused: {sorted(set(ufuncs) - done)}"
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        fused(cp.asarray(x), cp.asarray(y))  # the recording (eager)
        got = fused(cp.asarray(x), cp.asarray(y))
        want = f(x, y)
    failures = []
    for name, w in want.items():
        g = got[name].get()
        if g.dtype != w.dtype:
            failures.append(f"{name}: dtype {g.dtype}, NumPy's {w.dtype}")
        elif w.dtype == np.bool_:
            if not np.array_equal(g, w):
                failures.append(f"{name}: {g} != {w}")
        elif not (np.allclose(g, w, rtol=1e-5 if dtype == np.float32 else 1e-12, equal_nan=True)
                  and np.array_equal(np.signbit(g[g == 0]), np.signbit(w[g == 0]))):  # fmt: skip
            failures.append(f"{name}: {g} != {w}")
    assert not failures, "\n".join(failures)


def test_weak_python_scalars_and_comparisons_keep_dtypes(cp):
    """A Python float argument combines with float32 as NumPy's weak scalars do; a
    comparison's bool and a where's float32 come out as unfused."""
    x = cp.asarray(np.linspace(-1, 1, 8, dtype=np.float32))

    def f(x, s):
        y = x * s + 0.1
        return y, y > s, dnp.where(y > 0.0, y, s * x)

    graph = check_fused(f, x, 1.7)
    assert any(v.kind == "float" for n in fused_nodes(graph) for v in n.inputs())
    out = dp.jit(f)(x, 2.5)
    assert [o.dtype for o in out] == [np.float32, np.bool_, np.float32]


def test_infinite_and_nan_literals(cp):
    x = cp.asarray(np.array([-1.0, 0.0, 2.0, np.nan], dtype=np.float32))
    check_fused(lambda x: (dnp.where(x * 2.0 > 0.0, x, -np.inf), dnp.minimum(x * 0.5, np.inf),
                           dnp.maximum(x + 1.0, np.nan) * 2.0), x)  # fmt: skip


def test_device_constants_and_zero_d_arrays_fuse(cp):
    e = cp.asarray(np.array([1.0, 2.0, 3.0]))
    check_fused(lambda x: (x * 3.0) ** e + x ** 2, cp.asarray(np.linspace(1.0, 2.0, 3)))
    w = cp.asarray(np.arange(6.0).reshape(2, 3))
    scale = cp.asarray(np.float64(0.5))  # a 0-d device array from outside

    def f(x):
        return dnp.tanh(x * w + scale) * scale - w

    check_fused(f, cp.asarray(np.ones((2, 3))))
    check_fused(lambda s: dnp.exp(s * 2.0) + s, cp.asarray(np.float64(0.25)))


def test_host_number_inputs_with_device_constants_run_on_the_gpu(cp):
    """A function of Python numbers alone that computes with CuPy arrays of its closure is
    replayed on CuPy (fused), not handed to NumPy's kernels."""
    w = cp.asarray(np.linspace(0.1, 1.0, 6))

    def f(s):
        return dnp.tanh(w * s + 1.0) * 2.0

    jitted = dp.jit(f)
    assert fused_nodes(jitted.lower(0.5).graph)
    for s in (0.5, 0.5, 0.7):
        assert_fused_close(jitted(s).get(), f(s).get())
    assert jitted.stats["replays"] == 2 and jitted.stats["eager_calls"] == 0, jitted.last_eager_reason


def test_a_fused_replay_makes_no_transfer_and_no_synchronisation(cp):
    cupyx = pytest.importorskip("cupyx")
    step = dp.jit(dp.value_and_grad(smooth, argnums=(0, 1)))
    x, b = cp.asarray(np.full((4, 3), 0.5)), cp.asarray(np.full(3, 0.25))
    step(x, b)
    sent = dict(getattr(cp, "transfers", {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # allow_synchronize is deprecated
        with cupyx.allow_synchronize(False):
            step(x, b)
    assert getattr(cp, "transfers", {}) == sent
    assert step.stats["replays"] == 1 and step.stats["eager_calls"] == 0


def test_kernels_are_cached_by_source(cp):
    x = cp.asarray(np.ones((3, 2)))

    def f(x):
        return dnp.tanh(x * 3.0 + 1.0) - x

    check_fused(f, x)
    before = dict(cuda_kernels._cache)
    again = dp.jit(lambda x: dnp.tanh(x * 3.0 + 1.0) - x)
    again(x)
    again(cp.asarray(np.ones((7, 5))))  # another size: the same source
    assert cuda_kernels._cache == before


def test_a_kernel_that_does_not_compile_leaves_its_nodes_unfused(cp, monkeypatch):
    monkeypatch.setitem(cuda_kernels._FUNCTIONS, "tanh", "no_such_function")
    monkeypatch.setattr(cuda_kernels, "_cache", {})
    x = cp.asarray(np.linspace(0.1, 1.0, 6))
    graph = check_fused(lambda x: dnp.tanh(x * 2.0 + 1.0) * x - 0.5, x)
    names = [m.prim.name for n in fused_nodes(graph) for m in n.prim.members]
    assert "tanh" not in names and names


def test_unfused_on_request(cp):
    plain = dp.jit(lambda x: dnp.tanh(x * 2.0 + 1.0), fuse=False)
    assert not fused_nodes(plain.lower(cp.asarray(np.ones(3))).graph)


def test_prod_gradient_and_average_count_record_on_cupy(cp):
    """Constants made inside derivative rules and reductions follow the staged CuPy values
    (full_like, not full: NumPy's `full` would make a host array under dp.jit)."""
    x = cp.asarray(np.array([[0.3, 0.5, -0.2], [1.5, -0.7, 0.9]]))

    def f(x):
        avg, count = dnp.average(x, axis=1, returned=True)
        return dnp.sum(dnp.prod(x, axis=1) * count + avg)

    step = dp.value_and_grad(f)
    jitted = dp.jit(step)
    for _ in range(3):
        got, want = jitted(x), step(x)
        for g, w in zip(got, want):
            assert_fused_close(g.get(), w.get())
    assert jitted.stats["replays"] == 2 and jitted.stats["eager_calls"] == 0, jitted.last_eager_reason


def test_a_device_value_read_on_the_host_is_a_guard(cp):
    """A CuPy value the program reads on the host (a roll's shift) is copied there when
    recorded and checked at each replay (a synchronisation: such a replay is no CUDA graph);
    another value records another variant."""
    x = cp.asarray(np.arange(5.0))

    def f(x, s):
        return dnp.roll(x * 2.0, s) + 1.0

    jitted = dp.jit(f)
    for s in (1, 1, 1, 2, 2):
        shift = cp.asarray(np.int64(s))
        np.testing.assert_array_equal(jitted(x, shift).get(), np.roll(np.arange(5.0) * 2.0, s) + 1.0)
    assert jitted.stats["recordings"] == 2 and jitted.stats["replays"] == 3, jitted.stats
    assert jitted.stats["graph_replays"] == 0 and "guard" in jitted.last_uncaptured_reason
