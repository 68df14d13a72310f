"""CUDA-graph replays under dp.jit (compile.cuda_graphs): captured at the second replay and
relaunched on new inputs with the same results as eager; no capture (and why) for graphs
with guards, Python-number inputs, `cuda_graph=False`, or a replay CUDA refuses; no
host-device copy or synchronisation in a graph replay; and CuPy's capture rules as the
simulated CuPy models them (a synchronisation or a default-pool allocation during a capture
raises, a graph re-runs its kernels on its buffers, a graph outlives no pool).

All gpu-marked: without a GPU they run on the simulated CuPy (tests/test_simulated_gpu.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from backends import assert_fused_close, require_cupy

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.compile.cuda_graphs import GraphReplay

pytestmark = pytest.mark.gpu


@pytest.fixture
def cp():
    return require_cupy()


def simulated(cp):
    if "simulated" not in cp.__version__:
        pytest.skip("a rule the simulated CuPy enforces more strictly than a GPU does")


def loss(w, x):
    return dnp.mean(dnp.tanh(x @ w + 0.5) ** 2)


def calls(jitted, f, inputs):
    """Each call's jitted result checked against eager, after all calls (a result must not
    be overwritten by a later call)."""
    results = [(jitted(*args), f(*args)) for args in inputs]
    for got, want in results:
        for g, w in zip(dp.tree.leaves(got), dp.tree.leaves(want)):
            assert type(g) is type(w) and g.dtype == w.dtype and g.shape == w.shape
            assert_fused_close(g.get(), w.get())


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_graph_replays_new_inputs_like_eager(cp, dtype):
    rng = np.random.default_rng(0)
    step = dp.value_and_grad(loss)
    jitted = dp.jit(step)
    inputs = [(cp.asarray(rng.normal(size=(3, 2)).astype(dtype)),
               cp.asarray(rng.normal(size=(4, 3)).astype(dtype))) for _ in range(5)]  # fmt: skip
    calls(jitted, step, inputs)
    assert jitted.stats["replays"] == 4 and jitted.stats["graph_replays"] == 3, jitted.stats
    assert jitted.last_uncaptured_reason == ""


@pytest.mark.parametrize("state_from", ["init on the GPU params", "moved to the GPU"])
def test_a_training_step_as_a_graph(cp, state_from):
    """Adam's state made by opt.init from CuPy params keeps its step count on their GPU, so
    the jitted step is captured without moving the state first (dp.to_device works too)."""
    opt = dp.optim.adam(1e-2)

    def step(params, state, x):
        value, grads = dp.value_and_grad(lambda p: loss(p["W"], x) + dnp.sum(p["b"] ** 2))(params)
        updates, state = opt.update(grads, state, params)
        return dp.optim.apply_updates(params, updates), state, value

    rng = np.random.default_rng(1)
    host = {"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}
    params = dp.to_device(host, "gpu")
    if state_from == "moved to the GPU":
        state = dp.to_device(opt.init(host), "gpu")
    else:
        state = opt.init(params)
        assert type(state[0].count) is cp.ndarray and state[0].count.dtype == np.int64
    want = (host, opt.init(host))
    assert type(want[1][0].count) is np.int64  # host params: a host count, as before
    jitted = dp.jit(step)
    for _ in range(5):
        x = rng.normal(size=(4, 3))
        params, state, value = jitted(params, state, dp.to_device(x, "gpu"))
        *want, want_value = step(*want, x)
        assert_fused_close(value.get(), want_value)
        assert_fused_close(params["W"].get(), want[0]["W"])
    assert jitted.stats["graph_replays"] == 3, (jitted.stats, jitted.last_uncaptured_reason)
    assert int(state[0].count) == 5 and jitted.last_uncaptured_reason == ""


@pytest.mark.parametrize("schedule", [
    dp.optim.warmup_cosine_decay(0.0, 1e-2, 3, 8, end_value=1e-3),
    dp.optim.exponential_decay(1e-2, 3, 0.5, staircase=True, end_value=2e-3),
    lambda count: 1e-2 / (1.0 + count),
], ids=["warmup_cosine_decay", "staircase", "user's"])  # fmt: skip
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_step_with_a_schedule_is_one_graph_for_every_phase(cp, schedule, dtype):
    """A schedule's count lives on the params' GPU (opt.init) and its phases are chosen by
    where, not guards: the jitted step records once, is captured at its second replay and
    launched at every later step across every phase, with NumPy's eager params, and a
    launch makes no host-device copy or synchronisation."""
    cupyx = pytest.importorskip("cupyx")
    opt = dp.optim.adam(schedule)

    def step(params, state, x):
        updates, state = opt.update(dp.grad(lambda p: loss(p["W"], x))(params), state, params)
        return dp.optim.apply_updates(params, updates), state

    rng = np.random.default_rng(2)
    host, x = {"W": rng.normal(size=(3, 2)).astype(dtype)}, rng.normal(size=(4, 3)).astype(dtype)
    want = (host, opt.init(host))
    got, gpu_x = (dp.to_device(host, "gpu"), opt.init(dp.to_device(host, "gpu"))), cp.asarray(x)
    assert type(got[1][1].count) is cp.ndarray
    jitted = dp.jit(step)
    for i in range(12):
        want = step(*want, x)
        if i < 3:
            got = jitted(*got, gpu_x)
            continue
        sent = dict(getattr(cp, "transfers", {}))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # allow_synchronize is deprecated
            with cupyx.allow_synchronize(False):
                got = jitted(*got, gpu_x)
        assert getattr(cp, "transfers", {}) == sent
        assert got[0]["W"].dtype == dtype
        assert_fused_close(got[0]["W"].get(), want[0]["W"])
    assert int(got[1][1].count) == 12
    stats = jitted.stats
    assert (stats["recordings"], stats["replays"], stats["graph_replays"]) == (1, 11, 10), (
        stats, jitted.last_uncaptured_reason)
    assert jitted.last_uncaptured_reason == ""


def test_a_graph_replay_makes_no_transfer_and_no_synchronisation(cp):
    cupyx = pytest.importorskip("cupyx")
    jitted = dp.jit(dp.value_and_grad(loss))
    w, x = cp.asarray(np.ones((3, 2))), cp.asarray(np.full((4, 3), 0.1))
    jitted(w, x)
    jitted(w, x)
    sent = dict(getattr(cp, "transfers", {}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # allow_synchronize is deprecated
        with cupyx.allow_synchronize(False):
            jitted(w, x)  # captures, then launches
            jitted(w * 2.0, x)  # launches
    assert getattr(cp, "transfers", {}) == sent
    assert jitted.stats["graph_replays"] == 2


def test_guards_python_numbers_and_the_switch_keep_replays_uncaptured(cp):
    x = cp.asarray(np.linspace(-1, 1, 6))

    def branchy(x):
        return dnp.sin(x) if float(dnp.sum(x)) > -10 else dnp.cos(x)

    def scaled(x, s):
        return dnp.tanh(x * s)

    cases = [(dp.jit(branchy), (x,), "guard"), (dp.jit(scaled), (x, 1.5), "Python float"),
             (dp.jit(scaled), (x, np.float64(1.5)), "NumPy float64 scalar"),
             (dp.jit(scaled, cuda_graph=False), (x, cp.asarray(1.5)), "cuda_graph=False")]  # fmt: skip
    for jitted, args, reason in cases:
        for _ in range(4):
            out = jitted(*args)
        assert_fused_close(out.get(), jitted.f(*args).get())
        assert jitted.stats["graph_replays"] == 0 and jitted.stats["replays"] == 3
        assert reason in jitted.last_uncaptured_reason, jitted.last_uncaptured_reason


def test_a_replay_cuda_refuses_to_capture_runs_uncaptured(cp):
    """A replay that synchronises (here made to: read a value on the host) cannot be
    captured: the capture fails, the call and later ones replay uncaptured, and say why."""
    jitted = dp.jit(lambda x: dnp.exp(x) * 2.0)
    x = cp.asarray(np.arange(3.0))
    jitted(x)
    (variant,) = next(iter(jitted.cache.values())).variants
    plain = variant.replay
    variant.replay = lambda inputs: (float(inputs[0][0]), plain(inputs))[1]
    for _ in range(3):
        np.testing.assert_allclose(jitted(x).get(), np.exp(np.arange(3.0)) * 2.0)
    assert jitted.stats["graph_replays"] == 0
    assert jitted.last_uncaptured_reason.startswith("capturing it raised"), jitted.last_uncaptured_reason


# --- CuPy's capture rules, as compile.cuda_graphs relies on them --------------------------------
def test_a_graph_reruns_its_kernels_on_its_buffers(cp):
    x = cp.asarray(np.arange(4.0))
    captured = GraphReplay(lambda inputs: [cp.exp(inputs[0]) * 2.0 + inputs[0]], cp, [x])
    for k in range(3):
        y = x + k
        np.testing.assert_allclose(captured([y])[0].get(), np.exp(y.get()) * 2.0 + y.get())


def test_a_synchronisation_during_a_capture_is_refused(cp):
    x = cp.asarray(np.arange(3.0))
    with pytest.raises(Exception, match="(?i)captur"):
        GraphReplay(lambda inputs: [inputs[0] * float(inputs[0].sum())], cp, [x])
    np.testing.assert_allclose((x * 2.0).get(), [0.0, 2.0, 4.0])  # CuPy works on afterwards


def test_the_simulated_capture_refuses_default_pool_allocations(cp):
    simulated(cp)
    x = cp.asarray(np.arange(3.0))
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        with pytest.raises(RuntimeError, match="default memory pool"):
            x * 2.0
        with pytest.raises(RuntimeError, match="Invalidated"):
            stream.end_capture()


def test_the_simulated_capture_leaves_garbage_until_launched(cp):
    simulated(cp)
    x = cp.asarray(np.arange(3.0))
    pool = cp.cuda.MemoryPool()
    stream = cp.cuda.Stream(non_blocking=True)
    with cp.cuda.using_allocator(pool.malloc), stream:
        stream.begin_capture()
        y = x * 2.0
        graph = stream.end_capture()
    assert np.isnan(y.get()).all()  # captured, not run
    graph.launch()
    np.testing.assert_array_equal(y.get(), [0.0, 2.0, 4.0])
    del pool
    with pytest.raises(RuntimeError, match="pool"):
        graph.launch()  # its memory may belong to others now


def test_a_call_on_another_stream_waits_for_the_last_launch(cp, monkeypatch):
    """Launches share the graph's buffers: a call on a new stream first waits for the work
    of the last call, on its stream."""
    waits = []
    monkeypatch.setattr(type(cp.cuda.get_current_stream()), "wait_event",
                        lambda self, event: waits.append(self.ptr), raising=True)  # fmt: skip
    x = cp.asarray(np.arange(4.0))
    captured = GraphReplay(lambda inputs: [inputs[0] * 3.0], cp, [x])
    captured([x])
    captured([x + 1.0])
    assert waits == []  # the same stream: ordered already
    other = cp.cuda.Stream(non_blocking=True)
    with other:
        got = captured([x + 2.0])[0].get()  # read on its stream
    assert waits == [other.ptr]
    np.testing.assert_array_equal(got, (np.arange(4.0) + 2.0) * 3.0)
