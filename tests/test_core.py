"""The core machinery: trace levels and identity, dead traces, the flat tape and its sweep,
cotangents dropped as soon as they are consumed, and thread isolation."""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.ad.reverse import INPUT, ReverseTrace, backward
from diffprog.core.trace import Tracer, open_trace


def test_levels_nest_and_ids_are_unique():
    seen = []

    def inner(y):
        seen.append(y._trace)
        return y * y

    def outer(x):
        seen.append(x._trace)
        return dp.grad(inner)(x)

    dp.grad(outer)(1.0)
    dp.grad(outer)(1.0)
    levels = [t.level for t in seen]
    assert levels == [1, 2, 1, 2]
    assert len({t.id for t in seen}) == 4
    assert not any(t.alive for t in seen)  # every trace is closed once its transform returns


def test_trace_is_closed_even_when_the_function_raises():
    kept = []

    def f(x):
        kept.append(x)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        dp.grad(f)(1.0)
    assert not kept[0]._trace.alive
    assert dp.grad(lambda x: x * x)(3.0) == 6.0  # the level counter was restored


def test_tape_is_a_flat_list_in_execution_order():
    with open_trace(ReverseTrace, "test") as trace:
        x = trace.watch(np.array([1.0, 2.0]))
        y = dnp.sin(x)
        z = y * x
    assert trace.tape[0] is INPUT
    assert [record[0].name for record in trace.tape[1:]] == ["sin", "multiply"]
    assert (y.slot, z.slot) == (1, 2)
    cts = backward(trace.tape, [(z.slot, np.ones(2))])
    np.testing.assert_allclose(cts[x.slot], np.cos([1.0, 2.0]) * [1.0, 2.0] + np.sin([1.0, 2.0]))
    assert cts[1:] == [None, None]  # every non-input cotangent was consumed and dropped


def test_constants_are_not_recorded():
    with open_trace(ReverseTrace, "test") as trace:
        x = trace.watch(np.ones(2))
        c = np.exp(np.ones(2)) * 3.0  # plain NumPy: no tracer, nothing recorded
        y = x * c
        flag = x > 0  # a comparison's result is a constant
    assert len(trace.tape) == 2 and isinstance(y, Tracer) and not isinstance(flag, Tracer)


def test_backward_sweep_memory_stays_flat():
    """The sweep holds O(1) cotangents along a chain, not one per record."""
    n, size = 200, 10_000  # 80 kB per array

    def f(x):
        for _ in range(n):
            x = dnp.sin(x)
        return dnp.sum(x)

    with open_trace(ReverseTrace, "test") as trace:
        x = trace.watch(np.ones(size))
        out = f(x)
    tracemalloc.start()
    tracemalloc.reset_peak()
    backward(trace.tape, [(out.slot, np.float64(1.0))])
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 10 * size * 8, f"backward peaked at {peak / 1e6:.1f} MB"


def test_threads_trace_independently():
    errors = []

    def work(k):
        try:
            for _ in range(200):
                x = float(k)
                assert dp.grad(lambda x: x * dp.grad(lambda y: x * y * y)(1.0))(x) == 4 * x
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(1, 5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_graph_extension_records_the_backward_pass():
    """Under an outer trace the inner gradient is a tracer of the outer trace."""
    seen = []

    def outer(x):
        g = dp.grad(lambda y: dnp.sin(y) * x)(x)
        seen.append(g)
        return g

    assert dp.grad(outer)(0.5) == pytest.approx(np.cos(0.5) - 0.5 * np.sin(0.5))
    assert isinstance(seen[0], Tracer) and seen[0]._trace.level == 1


def test_plain_arrays_bypass_tracing():
    """With no tracer among the arguments, an op is just its kernel."""
    x = np.array([1.0, 2.0])
    assert type(dnp.exp(x)) is np.ndarray
    np.testing.assert_array_equal(dnp.exp(x), np.exp(x))
