"""Fused kernels under dp.jit (compile.fusion, compile.kernels): the partition (no cycles,
sealed groups, siblings, sums, guards), fused == unfused to float rounding in float64 and
float32 with broadcasting, NaN/Inf, second order, the disk cache in a second process, and
the fallbacks (no numba, a kernel numba cannot compile)."""

from __future__ import annotations

import hashlib
import importlib
import math
import pathlib
import platform
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from backends import assert_fused_close, check_jit

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.compile import kernels, partition
from diffprog.compile.ir import Fused

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")


def fused_nodes(graph):
    return [n for n in graph.body if type(n).__name__ == "Node" and type(n.prim) is Fused]


def member_names(node):
    return [m.prim.name if m.prim.name != "operator" else m.params["op"] for m in node.prim.members]


def check_fused(f, *args, kernels_at_least=1, host=lambda a: a):
    """f jitted with and without fusion, on a recording and a replay: the same results to
    float rounding (bools exactly), of the same types and dtypes; `host` brings a result to
    NumPy (device arrays: their `.get()`). Returns the fused graph."""
    fused, plain = dp.jit(f), dp.jit(f, fuse=False)
    graph = fused.lower(*args).graph
    assert len(fused_nodes(graph)) >= kernels_at_least, graph.text()
    for _ in range(2):
        got, want = fused(*args), plain(*args)
        for g, w in zip(dp.tree.leaves(got), dp.tree.leaves(want)):
            assert type(g) is type(w) and np.shape(g) == np.shape(w), (type(g), type(w))
            g, w = host(g), host(w)
            assert np.result_type(g) == np.result_type(w)
            if np.result_type(w) == np.bool_:
                np.testing.assert_array_equal(g, w)
            else:
                assert_fused_close(g, w)
    assert fused.stats["replays"] == 1
    return graph


# --- numerics ---------------------------------------------------------------------------------
def bias_layer(x, b):
    return dnp.sum(dnp.where(x + b > 0.5, (x + b) * 2.0 - 1.0, -(x * b) / 3.0))


def smooth(x, b):
    return dnp.sum(dnp.tanh(x * b + 1.0) ** 2 + dnp.exp(-x) * dnp.sqrt(b * b + 1.0))


def casts(x, b):
    y = (x * b).astype(np.float32) * 1.5 + 0.25
    return dnp.sum(dnp.maximum(y, 0.0) - dnp.minimum(y, 0.5) * (y < 1.0))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shapes", [((4, 3), (3,)), ((5, 1), (1, 6)), ((2, 3, 4), (3, 1))],
                         ids=str)  # fmt: skip
@pytest.mark.parametrize("f", [bias_layer, smooth, casts], ids=lambda f: f.__name__)
def test_fused_equals_unfused_values_and_gradients(f, shapes, dtype):
    rng = np.random.default_rng(0)
    x, b = (rng.uniform(0.1, 1.0, s).astype(dtype) for s in shapes)
    check_fused(dp.value_and_grad(f, argnums=(0, 1)), x, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_arithmetic_fuses_and_libm_stays_numpy(dtype):
    x = np.linspace(-1, 1, 4096).astype(dtype)
    graph = check_fused(lambda x: dnp.sin(x * 2.0 + 1.0) * 3.0 - dnp.log(x + 2.0), x)
    names = [name for n in fused_nodes(graph) for name in member_names(n)]
    assert "sin" not in names and "log" not in names and "mul" in names  # NumPy's are faster


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_exp_and_tanh_fuse_where_vmath_is_faster(dtype):
    x = np.linspace(-3, 3, 4096).astype(dtype)
    graph = check_fused(lambda x: dnp.exp(x * 2.0 + 1.0) * 3.0 - dnp.tanh(x + 0.5), x)
    names = [name for n in fused_nodes(graph) for name in member_names(n)]
    # compile.vmath's exp and tanh beat NumPy's SIMD loops in float64; in float32 only exp
    assert "exp" in names and ("tanh" in names) == (dtype == np.float64) and "mul" in names


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_nan_and_inf_propagate():
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e308, -2.0, 5e-324])
    graph = check_fused(lambda x: (dnp.maximum(x, 0.5) * x - x / 3.0, dnp.sqrt(x) + dnp.log(x)), x)
    assert len(fused_nodes(graph)) >= 1


def test_second_order_fused():
    def f(x):
        return dnp.sum(dnp.sin(x) * x * x + x / (1.0 + x * x))

    x = np.linspace(-2, 2, 7)
    check_fused(lambda x: dp.hvp(f, (x,), (np.ones_like(x),)), x)
    check_jit(f, (x,), fuse=True)


def test_scalars_keep_their_types():
    """NumPy scalars, 0-d arrays and Python floats come out as unfused replays give them."""
    f = lambda x, y: (x * 2.0 + y, dnp.sum(x * x * y), dnp.where(x > 0.5, y, 0.0) * 3.0)
    x = np.linspace(0, 1, 12).reshape(3, 4).astype(np.float32)
    check_fused(f, x, np.float32(0.5))
    check_fused(lambda a, b: (a * b + 1.0) * a - b, np.asarray(2.0), 0.5)


# --- the partition ----------------------------------------------------------------------------
def test_no_cycle_through_an_unfused_node():
    """a = f(x); m = a @ w (not fusible); c = g(a, m): c cannot join a's group (m depends on
    it), so two kernels, scheduled around the matmul."""
    def f(x, w):
        a = x * 2.0 + 1.0 - x * x
        m = a @ w
        return (a * m + m) * a - 1.0

    x = np.linspace(0, 1, 9).reshape(3, 3)
    graph = check_fused(f, x, np.eye(3) * 0.5, kernels_at_least=2)
    matmul = next(i for i, n in enumerate(graph.body) if n.params.get("op") == "matmul")
    first, second = (i for i, n in enumerate(graph.body) if type(n.prim) is Fused)
    assert first < matmul < second


def test_sealed_group_gains_no_new_dependency():
    """A group read from outside (the matmul reads `a`) takes no node that would make it
    depend on something new (`m`), even one that only reads `a` and `m`."""
    def f(x, w):
        a = x * 3.0 - x * x
        m = a @ w
        return a + m

    x = np.linspace(0, 1, 16).reshape(4, 4)
    graph = check_fused(f, x, np.eye(4))
    (node,) = fused_nodes(graph)
    assert "add" not in member_names(node)


def test_backward_siblings_share_one_kernel():
    f = lambda x: dnp.sum(x * x * 3.0 + x / (x + 2.0))
    graph = check_fused(dp.value_and_grad(f), np.linspace(0.5, 2.0, 10))
    (node,) = fused_nodes(graph)
    assert any(m.backward for m in node.prim.members) and not all(m.backward for m in node.prim.members)
    assert "sum" in member_names(node)
    assert "(one kernel:)" in graph.text()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_lone_broadcasting_op_over_a_big_loop_is_a_kernel(dtype):
    """NumPy pays per row of a broadcast (a bias add: 2x a loop's time); a lone op without
    a broadcast array, or over a small loop, stays NumPy's."""
    rng = np.random.default_rng(1)
    x, b, col = (rng.normal(size=s).astype(dtype) for s in ((64, 32), (32,), (64, 1)))
    for f, args in ((lambda x, b: x + b, (x, b)), (lambda x, c: x * c, (x, col))):
        (node,) = fused_nodes(check_fused(f, *args))
        assert len(node.prim.members) == 1
    for f, args in ((lambda x: x * 2.0, (x,)), (lambda x, b: x - b, (x[:8], b))):
        assert not fused_nodes(dp.jit(f).lower(*args).graph)


def test_a_big_loop_takes_no_sibling_it_shares_no_operand_with():
    """`1 - c*c` shares no operand with `a`'s group: it is fused with its reader (after the
    matmul) instead of being computed and stored early beside `a`'s group."""
    def f(a, c, w):
        u = a * 3.0 - a * a
        m = u @ w
        return u, (1.0 - c * c) * m

    a, c = (np.linspace(-1, 1, 64 * 32).reshape(64, 32) * k for k in (1.0, 0.5))
    graph = check_fused(f, a, c, np.eye(32) * 0.5, kernels_at_least=2)
    first, second = fused_nodes(graph)
    assert member_names(first) == ["mul", "mul", "sub"]
    assert member_names(second) == ["mul", "sub", "mul"]


def test_reductions_end_groups():
    """A bias gradient (sum_to_shape), a sum over one axis kept, and a total."""
    def f(x, b):
        y = x * b + 2.0 * b
        return dnp.sum(dnp.sum(y * y, axis=1, keepdims=True) * x) + dnp.sum(dnp.abs(y))

    x = np.linspace(-1, 1, 12).reshape(4, 3)
    graph = check_fused(dp.value_and_grad(f, argnums=(0, 1)), x, np.array([0.5, -1.0, 2.0]))
    names = [name for n in fused_nodes(graph) for name in member_names(n)]
    assert "sum_to_shape" in names and names.count("sum") >= 2


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("order", ["C", "F"])
def test_sums_along_the_innermost_loop(order, dtype):
    """A sum along the loop's innermost dimension (column sums of F arrays, row sums of C
    ones, totals) accumulates in a register whose adds may be reordered (SIMD lanes): equal
    to NumPy's sums to rounding, odd extents included; NaN and inf reach their sums."""
    rng = np.random.default_rng(1)
    x, y = (np.asarray(rng.uniform(-1, 1, (67, 33)), dtype, order=order) for _ in range(2))
    x[5, 3], x[60, 7], x[6, 7], x[9, 8] = np.nan, np.inf, -np.inf, np.inf

    def f(x, y):
        z = x * y * 2.0 - y
        return z, dnp.sum(z * x, axis=0), dnp.sum(z * y, axis=1), dnp.sum(z - x)

    graph = check_fused(f, x, y)
    (node,) = fused_nodes(graph)
    assert "accumulate(" in node.prim.source and node.outs[0].layout[:1] == order

def test_an_adjoint_a_kernel_made_needs_no_fitting():
    """A kernel's result is a new writable array: no `fit_adjoint` node is left after it,
    and the gradients still own their memory."""
    f = lambda x, b: dnp.sum(dnp.tanh(x * b + 1.0) * x * 3.0)
    x, b = np.linspace(-1, 1, 12).reshape(4, 3), np.array([0.5, -1.0, 2.0])
    graph = check_fused(dp.value_and_grad(f, argnums=(0, 1)), x, b)
    made = {o.id for n in fused_nodes(graph) for o in n.outs}
    fits = [n for n in graph.body if n.prim.name == "fit_adjoint" and n.args[0].id in made]
    assert not fits, graph.text()
    _, (gx, gb) = dp.jit(dp.value_and_grad(f, argnums=(0, 1)))(x, b)
    assert gx.flags.writeable and gb.flags.writeable and not np.shares_memory(gx, gb)


def test_guards_inside_a_scalar_kernel():
    """The loop of W2: a 0-d value and an `if` on it per step; the guards are checked in the
    kernel and a path not taken fails as unfused (the call records anew)."""
    def f(x):
        for _ in range(12):
            x = dnp.sin(x) + 1.0 if x > 1.5 else x * 1.5 - 0.01
        return x

    jitted = dp.jit(dp.value_and_grad(f))
    graph = jitted.lower(np.asarray(0.3)).graph
    (node,) = fused_nodes(graph)
    assert len(node.prim.guards) == 12 and len(graph.guards()) == 12
    for x in (0.3, 0.3, 0.31, 1.4, 0.3):
        got, want = jitted(np.asarray(x)), dp.value_and_grad(f)(np.asarray(x))
        for g, w in zip(got, want):
            assert type(g) is type(w)
            assert_fused_close(g, w)
    assert jitted.stats["guard_failures"] >= 1 and jitted.stats["recordings"] >= 2


def _failed_guard(jitted, x):
    """The index of the first guard the (one) recorded variant's replay finds failing at x,
    or None when they all hold."""
    from diffprog.compile.codegen import GuardFailed

    (entry,) = jitted.cache.values()
    try:
        entry.variants[0].replay([np.asarray(x)])
    except GuardFailed as e:
        return e.index
    return None


def test_a_scalar_kernel_reports_its_first_failed_guard():
    """The kernel checks its guards without branching (cheaper for numba to compile) and
    still names the first one that fails, as the unfused replay does, when several fail."""
    def f(x):
        for _ in range(12):
            x = dnp.sin(x) + 1.0 if x > 1.5 else x * 1.5 - 0.01
        return x

    fused, unfused = dp.jit(f), dp.jit(f, fuse=False)
    fused(np.asarray(0.3)), unfused(np.asarray(0.3))
    assert fused_nodes(fused.lower(np.asarray(0.3)).graph)
    seen = [_failed_guard(fused, x) for x in np.linspace(-2.0, 3.0, 41)]
    assert seen == [_failed_guard(unfused, x) for x in np.linspace(-2.0, 3.0, 41)]
    assert None in seen and len({i for i in seen if i is not None}) >= 3, seen


def test_a_guard_on_a_floats_truth_inside_a_scalar_kernel():
    """`if z:` of a float 0-d value: 0.0 is false, 0.5 and NaN are true, in the kernel as in
    Python; recorded false, a true value fails the guard (the same one as unfused) and the
    call records anew, with results equal to eager."""
    def f(x):
        for _ in range(3):
            z = dnp.floor(x * 0.5) * 0.5 + x * 0.0
            x = x * 1.1 + 0.05 if z else x - 0.01
        return x

    fused, unfused = dp.jit(f), dp.jit(f, fuse=False)
    fused(np.asarray(0.3)), unfused(np.asarray(0.3))
    assert fused_nodes(fused.lower(np.asarray(0.3)).graph)
    xs = (0.3, 2.5, 3.0, np.nan, -0.2, 0.9, 5.0)
    seen = [_failed_guard(fused, x) for x in xs]
    assert seen == [_failed_guard(unfused, x) for x in xs]
    assert all(type(i) in (int, type(None)) for i in seen)
    assert seen[0] is None and seen[1] is not None and seen[3] is not None, seen
    for x in xs:
        np.testing.assert_array_equal(fused(np.asarray(x)), f(np.asarray(x)))


def test_graph_order_is_kept_where_it_can_be():
    f = lambda x: dnp.sum(x * 2.0 + 1.0) * dnp.sum(dnp.cumsum(x) * x * 3.0 - x)
    check_fused(dp.grad(f), np.linspace(0, 1, 8))


# --- caching and fallbacks --------------------------------------------------------------------
def test_a_big_forward_kernel_takes_no_backward_node():
    """tanh's derivative 1 - t*t reads only the forward kernel's t: over a big loop it is
    computed by the backward pass's kernel, not stored by the forward one long before."""
    def loss(b, x, w):
        return dnp.sum(dnp.tanh(x + b) @ w)

    x, b, w = np.linspace(-2, 2, 64 * 32).reshape(64, 32), np.linspace(0, 1, 32), np.eye(32)
    graph = check_fused(dp.value_and_grad(loss), b, x, w, kernels_at_least=2)
    forward, backward = fused_nodes(graph)[:2]
    assert not any(m.backward for m in forward.prim.members) and "tanh" in member_names(forward)
    assert all(m.backward for m in backward.prim.members) and "sub" in member_names(backward)


def test_a_kernel_calling_vmath_names_its_version():
    """numba's disk cache checks only the kernel's own file: the kernel's source carries a
    hash of compile.vmath's, so a changed vmath makes new kernel files."""
    x = np.linspace(0.5, 2.0, 4096)
    (node,) = fused_nodes(check_fused(lambda x: dnp.exp(x * 2.0) - x, x))
    text = (pathlib.Path(kernels.__file__).parent / "vmath.py").read_bytes()
    version = hashlib.sha256(text).hexdigest()[:16]
    assert f"from diffprog.compile import vmath  # version {version}" in node.prim.source


@pytest.mark.parametrize("shape, vector", [((16,), True), ((4,), False), ((512, 4), False),
                                           ((4, 512), True), ((3, 8), True)], ids=str)
def test_vmath_where_the_innermost_loop_vectorizes(shape, vector):
    """vmath's functions beat libm's calls only on SIMD registers: in a loop whose innermost
    extent fills a vector; a shorter one runs in the vector loop's scalar remainder."""
    x = np.linspace(0.5, 2.0, math.prod(shape)).reshape(shape)
    (node,) = fused_nodes(check_fused(lambda x: dnp.exp(x * 2.0) - dnp.tanh(x), x))
    calls = ("vmath.exp(", "vmath.tanh(") if vector else ("np.exp(", "np.tanh(")
    assert all(c in node.prim.source for c in calls) and ("vmath" in node.prim.source) == vector


@pytest.mark.parametrize("results, vector", [(15, True), (16, False)])
def test_a_loop_storing_too_many_arrays_calls_libm(results, vector):
    """LLVM checks each stored array against each other one it touches before running a
    loop on SIMD registers, and gives up beyond kernels.MEMORY_CHECKS_MAX checks: a kernel
    storing 16 results (with one load: 136 checks) stays scalar, and calls libm (W1)."""

    def steps(x):
        out = []
        for _ in range(results):
            x = dnp.exp(x * -0.5)
            out.append(x)
        return out

    x = np.linspace(0.5, 2.0, 16)
    (node,) = fused_nodes(check_fused(steps, x))
    assert node.prim.source.count("vmath.exp(") == (results if vector else 0)


def _packed_instructions(source, args):
    """How many packed (SIMD) float64 multiplications numba's code of `source`'s kernel has."""
    import numba

    namespace = {}
    exec(source, namespace)  # noqa: S102 - a kernel's source
    kernel = numba.njit(error_model="numpy")(namespace["kernel"])
    kernel(*args)
    (asm,) = kernel.inspect_asm().values()
    return len(re.findall(r"^\s*v?mulpd\s", asm, re.MULTILINE))


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="x86 assembly")
@pytest.mark.parametrize("shape, stores, loads, rows, order", [
    ((32,), 15, 1, 0, "C"), ((32,), 16, 1, 0, "C"), ((32,), 10, 6, 0, "C"), ((32,), 10, 9, 0, "C"),
    ((4, 32), 14, 1, 1, "C"), ((4, 32), 15, 1, 1, "C"), ((32, 4), 15, 1, 0, "F"),
    ((32, 4), 16, 1, 0, "F")], ids=str)  # fmt: skip
def test_llvm_vectorizes_a_loop_as_kernels_vectorizes_predicts(shape, stores, loads, rows, order):
    """The premise of `kernels.vectorizes`, checked on this numba: a kernel's loop runs on
    SIMD registers exactly when its runtime overlap checks are at most MEMORY_CHECKS_MAX
    (`loads` arrays of the loop's shape, `rows` of its last dimension's, broadcast; the
    results stored in `order`)."""
    f64 = np.dtype(np.float64)
    inputs = [(shape, f64, k, None) for k in range(loads)]
    inputs += [((shape[-1],), f64, loads + k, None) for k in range(rows)]
    loop = kernels.Loop(shape, inputs=inputs, outputs=stores, alone=set(range(stores)),
                        fortran=set(range(stores)) if order == "F" else set())
    loop.lines = ["t0 = " + " + ".join(f"x{k}" for k in range(loads + rows))]
    loop.lines += [f"t{k + 1} = (t{k} * 0.5)" for k in range(stores)]
    loop.stores = [(k, f"t{k + 1}", shape, f64) for k in range(stores)]
    args = [np.ones(shape, order=order)] * loads + [np.ones(shape[-1])] * rows
    packed = _packed_instructions(kernels.kernel_source(loop), args)
    assert (packed > 0) == kernels.vectorizes(loop)


def test_a_second_process_loads_the_compiled_kernel(tmp_path):
    script = textwrap.dedent("""
        import numpy as np, diffprog as dp, diffprog.numpy as dnp
        from diffprog.compile.ir import Fused
        f = dp.jit(lambda x: dnp.sum(x * 2.0 + x * x - dnp.exp(x), axis=1))  # (accumulate
        x = np.arange(10.0).reshape(2, 5)  # and vmath calls)
        want = np.sum(x * 2.0 + x * x - np.exp(x), axis=1)
        np.testing.assert_allclose(f(x), want, rtol=1e-14)
        (node,) = [n for n in f.lower(x).graph.body if type(n.prim) is Fused]
        print(sum(node.prim.kernel.stats.cache_hits.values()))
    """)
    env = {**__import__("os").environ, "DIFFPROG_CACHE_DIR": str(tmp_path)}
    runs = [subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, check=True).stdout.split()[-1] for _ in range(2)]  # fmt: skip
    assert runs == ["0", "1"]
    assert len(list(tmp_path.glob("diffprog_kernel_*.py"))) == 1


def test_without_numba_replays_unfused_and_warns_once(monkeypatch):
    jit_module = importlib.import_module("diffprog.transforms.jit")

    monkeypatch.setattr(kernels, "AVAILABLE", False)
    monkeypatch.setattr(jit_module, "_warned_no_numba", False)
    x = np.linspace(0, 1, 6)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for g in (lambda x: x * 2.0 + x * x - 1.0, lambda x: x / 3.0 - x * x * x):
            jitted = dp.jit(g)
            assert not fused_nodes(jitted.lower(x).graph)
            np.testing.assert_array_equal(jitted(x), g(x))
    messages = [str(w.message) for w in caught if "numba" in str(w.message)]
    assert len(messages) == 1 and "diffprog[jit]" in messages[0]


def test_a_kernel_numba_cannot_make_leaves_its_nodes_unfused(monkeypatch):
    real = kernels.compile_kernel
    monkeypatch.setattr(kernels, "compile_kernel", lambda src: None if "np.sin" in src else real(src))
    f = lambda x: dnp.sin(x * 2.0 + 1.0) * x - x * x * 0.5
    graph = check_fused(f, np.linspace(0, 1, 5))
    assert all("sin" not in member_names(n) for n in fused_nodes(graph))
    assert any(n.prim.name == "sin" for n in graph.body)


def test_wrong_kernel_is_refused(monkeypatch):
    """A kernel that disagrees with NumPy on sample data is never used."""
    monkeypatch.setitem(kernels._FORMS, "subtract", "({0} + {1})")
    monkeypatch.setattr(kernels, "_compiled", {})
    f = lambda x: (x * 2.0 - 1.0) * x + 3.0
    graph = dp.jit(f).lower(np.linspace(0, 1, 5)).graph
    assert not fused_nodes(graph)


def test_debug_nans_runs_eagerly():
    jitted = dp.jit(lambda x: dnp.log(x * 2.0 - 1.0) * x + x)
    with dp.debug_nans(), pytest.raises(FloatingPointError):
        jitted(np.array([0.25, 1.0, 2.0]))
    assert jitted.stats["recordings"] == 0


def test_max_ops_caps_a_kernel(monkeypatch):
    monkeypatch.setattr(partition, "MAX_OPS", 8)

    def f(x):
        for _ in range(6):
            x = x * 1.01 + 0.5
        return x

    graph = check_fused(f, np.ones(3), kernels_at_least=2)
    assert all(len(n.prim.members) <= 8 for n in fused_nodes(graph))


def test_small_outputs_come_back_stacked(monkeypatch):
    """A forward kernel's values saved for the backward pass come back as one stack per
    shape and dtype (numba boxes each array it returns), which the backward kernels read
    as it is (no row taken out of it in the replay)."""
    monkeypatch.setattr(partition, "MAX_OPS", 20)  # forward and backward in separate kernels

    def f(x):
        for _ in range(4):
            x = dnp.tanh(dnp.sin(x) * 2.0 + 1.0) * 0.5
        return dnp.sum(x)

    graph = check_fused(dp.value_and_grad(f), np.linspace(-0.5, 1.0, 16))
    nodes = fused_nodes(graph)
    jitted = dp.jit(dp.value_and_grad(f))
    value, grad = [jitted(np.linspace(-0.5, 1.0, 16)) for _ in range(2)][1]  # a replay
    assert grad.flags.writeable
    stacks = {o.id for n in nodes for group, o in zip(n.prim.bundles, n.outs) if len(group) > 1}
    assert stacks and any(a.id in stacks for n in nodes for a in n.args if type(a).__name__ == "Var")
    assert not any(n.prim.name == "row" for n in graph.body)


def test_rows_of_a_stack_for_other_readers(monkeypatch):
    """A stacked output that an unfused node (cumsum) or the caller reads is taken out as a
    row of its own; fused readers take the stack."""
    monkeypatch.setattr(partition, "MAX_OPS", 6)

    def f(x):
        a = x * 2.0 + 1.0
        b = a * a - x
        c = b * 3.0 + a
        return dnp.sum(dnp.cumsum(a) * b + c * c - a * b), b

    graph = check_fused(f, np.linspace(0, 1, 16), kernels_at_least=2)
    assert any(n.prim.name == "row" for n in graph.body), graph.text()
    jitted = dp.jit(f)
    b = [jitted(np.linspace(0, 1, 16)) for _ in range(2)][1][1]  # a replay
    assert b.flags.writeable and not isinstance(b.base, np.ndarray)  # not a stack's row


def test_an_unwritable_cache_folder_compiles_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("DIFFPROG_CACHE_DIR", str(blocker / "kernels"))  # under a file
    monkeypatch.setattr(kernels, "_compiled", {})
    check_fused(lambda x: x * 2.0 + x * x - 1.0, np.linspace(0, 1, 5))


def test_a_power_of_a_constant_array_fuses():
    """An exponent that is a constant array (not the number 2) is an operand like any other."""
    e = np.array([1.0, 2.0, 3.0])
    check_fused(lambda x: dnp.sum((x * 3.0) ** e + x ** 2), np.linspace(1.0, 2.0, 3))


def test_a_kernel_that_only_checks_guards_beside_a_leaf_adjoint_it_makes():
    """A while loop's conditions on reductions fuse into one scalar kernel with guards and
    no result; dropping the `fit_adjoint` of another kernel's result (the leaf's adjoint)
    read that kernel's first result (IndexError at the first call). Found by a fuzzed
    program (float32, a loop over rows, a while loop)."""

    def f(p):
        v1 = dnp.square(p[2])
        v4 = 0.0 * v1[0]
        for row in v1:
            v4 = v4 + dnp.sin(row) * row
        v7 = dnp.sqrt((dnp.softmax(v1, axis=1) * v4) ** 2 + 1.0)
        while dnp.max(dnp.abs(v7)) > 0.28933:
            v7 = v7 * 0.5 + 0.1 * dnp.tanh(v7)
        return dnp.sin(v4)

    x = np.array([[-0.8127, 0.2364], [-0.7479, -0.0928], [-0.4854, 0.0509]], dtype=np.float32)
    check_jit(f, (("b", 3, x),), fuse=True)
