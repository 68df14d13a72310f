"""Long runs and large programs: memory stays flat, nothing is left behind by a gradient
call or an exception, threads do not interfere, and deep or wide programs differentiate."""

from __future__ import annotations

import gc
import threading
import tracemalloc
import weakref

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.core.trace import raw


def mlp_loss(params, x, y):
    h = x
    for layer in params["layers"]:
        h = dnp.tanh(h @ layer["W"] + layer["b"])
    return dnp.mean((h @ params["out"] - y) ** 2)


def small_mlp(seed=0):
    rng = np.random.default_rng(seed)
    params = {
        "layers": [{"W": rng.normal(size=(4, 8)) * 0.5, "b": np.zeros(8)},
                   {"W": rng.normal(size=(8, 8)) * 0.3, "b": np.zeros(8)}],
        "out": rng.normal(size=8) * 0.3,
    }  # fmt: skip
    return params, rng.normal(size=(16, 4)), rng.normal(size=16)


def test_memory_is_flat_over_10000_gradient_steps():
    params, x, y = small_mlp()
    step = dp.value_and_grad(mlp_loss)

    def train(n, params):
        for _ in range(n):
            _, g = step(params, x, y)
            params = dp.tree.map(lambda p, g: p - 0.01 * g, params, g)
        return params

    tracemalloc.start()
    params = train(200, params)  # warm-up under tracing: caches, interned objects
    gc.collect()  # also empties CPython's free lists, which tracemalloc counts as in use
    before = tracemalloc.get_traced_memory()[0]
    params = train(10_000, params)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert after - before < 64_000, f"grew by {after - before} bytes over 10,000 steps"
    print(f"memory growth over 10,000 steps: {after - before} bytes")


def test_a_gradient_call_leaves_no_reference_cycles():
    params, x, y = small_mlp()
    dp.grad(mlp_loss)(params, x, y)  # warm-up
    gc.collect()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        dp.grad(mlp_loss)(params, x, y)
        dp.grad(dp.grad(lambda w: dnp.sum(dnp.sin(w) ** 3)))(np.float64(0.3))
        dp.jvp(dp.grad(lambda w: dnp.sum(w**3)), (np.ones(3),), (np.ones(3),))
        gc.collect()
        garbage = list(gc.garbage)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert garbage == []


def test_tape_and_saved_arrays_are_freed_when_the_gradient_returns():
    saved = []

    def f(x):
        y = dnp.exp(x)  # exp keeps its output for the backward pass
        saved.append(weakref.ref(raw(y)))
        return dnp.sum(y)

    dp.grad(f)(np.ones(1000))
    assert saved[0]() is None  # freed by reference counting alone, no gc needed


def test_an_exception_inside_a_traced_function_leaves_nothing_behind():
    saved = []

    def f(x):
        y = dnp.exp(x)
        saved.append(weakref.ref(raw(y)))
        raise KeyError("user bug")

    try:
        dp.grad(f)(np.ones(10))
    except KeyError:
        pass
    assert saved[0]() is None
    seen = []
    dp.grad(lambda x: seen.append(x._trace.level) or x * 1.0)(1.0)
    assert seen == [1]  # no trace was left open


def _workloads():
    params, x, y = small_mlp(1)
    return {
        "mlp grad": lambda k: dp.grad(mlp_loss)(params, x * k, y),
        "hessian": lambda k: dp.hessian(lambda p: dnp.sum(dnp.sin(p["a"]) * p["b"] ** 2))(
            {"a": np.linspace(0, 1, 3) * k, "b": 1.5 + k}
        ),
        "nested grad": lambda k: dp.grad(lambda x: x * dp.grad(lambda y: x * y * y)(k))(k + 0.5),
        "jvp": lambda k: dp.jvp(lambda t: (t[0] * t[1], dnp.exp(t[0])), ((k, np.ones(2) * k),),
                                ((1.0, np.ones(2)),)),  # fmt: skip
        "tape": lambda k: _tape_grad(k),
        "vjp": lambda k: dp.vjp(lambda d: dnp.tanh(d["v"]) * k, {"v": np.arange(3.0)})[1](np.ones(3)),
    }


def _tape_grad(k):
    with dp.Tape() as tape:
        x = tape.watch(np.array([k, 2 * k]))
        y = dnp.sum(dnp.log1p(x * x))
    return tape.gradient(y, x)


def test_eight_threads_give_exactly_the_serial_results():
    workloads = _workloads()
    names = sorted(workloads)
    serial = {(name, i): workloads[name](0.1 * i) for name in names for i in range(50)}
    results: dict = {}
    errors = []

    def run(t):
        try:
            for i in range(50):
                name = names[(t + i) % len(names)]
                results[(name, i, t)] = workloads[name](0.1 * i)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for (name, i, _), value in results.items():
        for a, b in zip(dp.tree.leaves(value), dp.tree.leaves(serial[(name, i)])):
            np.testing.assert_array_equal(a, b)


def test_a_million_op_chain_differentiates():
    def f(x):
        for _ in range(1_000_000):
            x = x * 0.9999999 + 1e-9
        return x

    assert dp.grad(f)(1.0) == pytest.approx(0.9999999**1_000_000 * 1.0, rel=1e-9)


def test_a_pytree_with_100000_leaves_differentiates():
    params = {f"p{i}": float(i) for i in range(100_000)}
    g = dp.grad(lambda p: sum(v * v for v in p.values()))(params)
    assert list(g) == list(params) and g["p99999"] == 2 * 99_999.0


def test_nesting_beyond_the_limit_says_so():
    deep = 1.0
    for _ in range(dp.tree.MAX_DEPTH + 10):
        deep = [deep]
    with pytest.raises(dp.StructureError, match="nested deeper than 1000 levels"):
        dp.grad(lambda t: 1.0)(deep)
    ok = 1.0
    for _ in range(dp.tree.MAX_DEPTH - 1):
        ok = [ok]
    assert dp.tree.leaves(dp.grad(lambda t: dp.tree.leaves(t)[0] * 2.0)(ok)) == [2.0]
