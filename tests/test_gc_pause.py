"""The rule for pausing Python's cyclic collector (diffprog.core.gc_pause): no pass walks a
live tape between its recording and its pullback (dp.vjp, dp.Tape), and the pause never
leaks: collection is back, and the user's own settings untouched, after every path (a
normal call, an exception, a dropped or never-called pullback, nesting, threads, a fork)."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.core import gc_pause


def chain(x):
    for _ in range(1000):  # thousands of records: far above the collector's threshold
        x = dnp.sin(x) * 0.5
    return x


def expected_pullback(x, ct):
    y, dy = x, ct
    for _ in range(1000):
        dy, y = dy * 0.5 * np.cos(y), 0.5 * np.sin(y)
    return dy


@pytest.fixture
def collector():
    """The collector on, with its default threshold; yields the passes' sizes (objects in
    the generations each pass walked); checks afterwards that no pause is left over."""
    state = gc.isenabled(), gc.get_threshold()
    gc.enable()
    gc.set_threshold(700, 10, 10)
    gc.collect()
    walked = []

    def seen(phase, info):
        if phase == "start":
            walked.append(sum(len(gc.get_objects(i)) for i in range(info["generation"] + 1)))

    gc.callbacks.append(seen)
    try:
        yield walked
        assert gc_pause._pauses == 0 and gc.get_threshold()[0] == 700 and gc.isenabled()
    finally:
        gc.callbacks.remove(seen)
        (gc.enable if state[0] else gc.disable)()
        gc.set_threshold(*state[1])


def allocate():
    """The user's code between recording and pullback: enough allocation for a pass."""
    return [[i] for i in range(3000)]


def test_no_pass_walks_a_vjp_tape_before_its_pullback(collector):
    x = np.linspace(-0.5, 1.0, 4)
    out, vjp_fn = dp.vjp(chain, x)
    allocate()
    assert gc.get_threshold()[0] == 0  # still paused: the pullback holds it
    assert all(n < 2000 for n in collector), collector  # (the live tape: about 6000 objects)
    (g,) = vjp_fn(np.ones(4))  # (its sweep pauses too; a pass after it may walk the tape)
    np.testing.assert_allclose(g, expected_pullback(x, np.ones(4)), rtol=1e-12)
    del vjp_fn


def test_no_pass_walks_a_closed_tape_before_its_gradient(collector):
    x = np.linspace(-0.5, 1.0, 4)
    with dp.Tape() as tape:
        xw = tape.watch(x)
        y = dnp.sum(chain(xw))
    allocate()
    assert all(n < 2000 for n in collector), collector
    g = tape.gradient(y, xw)
    np.testing.assert_allclose(g, expected_pullback(x, np.ones(4)), rtol=1e-12)
    del tape, xw, y


def test_the_pause_ends_at_the_first_pullback_and_later_calls_still_work(collector):
    out, vjp_fn = dp.vjp(lambda x: x * x, np.arange(3.0))
    vjp_fn(np.ones(3))
    assert gc.get_threshold()[0] == 700
    np.testing.assert_array_equal(vjp_fn(np.ones(3))[0], [0.0, 2.0, 4.0])


def test_the_pause_ends_when_the_pullback_raises(collector):
    out, vjp_fn = dp.vjp(lambda x: x * x, np.arange(3.0))
    with pytest.raises(Exception, match="cotangent"):
        vjp_fn(np.ones(4))  # the wrong shape
    assert gc.get_threshold()[0] == 700


def test_the_pause_ends_when_the_pullback_is_dropped_uncalled(collector):
    out, vjp_fn = dp.vjp(lambda x: x * x, np.arange(3.0))
    assert gc.get_threshold()[0] == 0
    del vjp_fn
    with dp.Tape() as tape:
        tape.watch(np.ones(2))
    del tape


def test_the_pause_ends_when_the_recording_raises(collector):
    def bad(x):
        raise ValueError("in f")

    with pytest.raises(ValueError, match="in f"):
        dp.vjp(bad, np.ones(2))
    with pytest.raises(ValueError, match="in f"):
        with dp.Tape() as tape:
            bad(tape.watch(np.ones(2)))
    assert tape._hold is None  # a failed block hands no pause to its gradient


def test_holds_never_keep_the_collector_off_longer_than_the_grace(collector, monkeypatch):
    """A pullback kept and never called, and a loop that always has a fresh one pending
    (each made before the last is dropped), lose their pause after GRACE seconds."""
    monkeypatch.setattr(gc_pause, "GRACE", 0.05)
    with gc_pause._lock:
        gc_pause._wake.notify()  # a watchdog waiting out an earlier 1 s stretch looks again
    kept = dp.vjp(lambda x: x * 2.0, np.ones(2))
    started = time.monotonic()
    resumed = None
    while time.monotonic() - started < 2.0:
        out, vjp_fn = dp.vjp(lambda x: x * 2.0, np.ones(2))  # the last vjp_fn dropped after
        time.sleep(0.005)
        if gc.get_threshold()[0] == 700:  # (kept and vjp_fn are pending)
            resumed = time.monotonic() - started
            break
    assert resumed is not None and resumed >= 0.04, resumed
    assert kept[1](np.ones(2))[0].tolist() == [2.0, 2.0]  # a lapsed pullback still works
    del kept, vjp_fn


def test_nested_recordings_and_pullbacks(collector):
    """A vjp recorded and pulled back inside dp.grad, and a pullback called under another
    recording: both differentiate correctly and leave nothing paused."""

    def inner_vjp(x):
        out, vjp_fn = dp.vjp(dnp.sin, x)
        return dnp.sum(vjp_fn(x)[0])  # sum(x cos x)

    x = np.array([0.3, -1.2])
    np.testing.assert_allclose(dp.grad(inner_vjp)(x), np.cos(x) - x * np.sin(x), rtol=1e-12)
    out, vjp_fn = dp.vjp(dnp.exp, x)
    np.testing.assert_allclose(dp.grad(lambda c: dnp.sum(vjp_fn(c)[0]))(np.ones(2)), np.exp(x))


def test_threads_share_the_pause_and_release_it(collector):
    errors = []

    def work(seed):
        try:
            x = np.random.default_rng(seed).normal(size=3)
            for _ in range(20):
                out, vjp_fn = dp.vjp(dnp.tanh, x)
                np.testing.assert_allclose(vjp_fn(np.ones(3))[0], 1 - np.tanh(x) ** 2)
                with dp.Tape() as tape:
                    xw = tape.watch(x)
                    y = dnp.sum(xw * xw)
                np.testing.assert_allclose(tape.gradient(y, xw), 2 * x)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors


def test_the_users_own_settings_win(collector):
    """gc.disable() before or during a pending pullback stays; a gc.set_threshold made while
    paused is not overwritten."""
    gc.disable()
    out, vjp_fn = dp.vjp(lambda x: x * x, np.arange(3.0))
    vjp_fn(np.ones(3))
    assert not gc.isenabled()
    gc.enable()
    out, vjp_fn = dp.vjp(lambda x: x * x, np.arange(3.0))
    gc.disable()  # while the pullback holds the pause
    vjp_fn(np.ones(3))
    assert not gc.isenabled() and gc.get_threshold()[0] == 700
    gc.enable()
    out, vjp_fn = dp.vjp(lambda x: x * x, np.arange(3.0))
    gc.set_threshold(500)
    vjp_fn(np.ones(3))
    assert gc.get_threshold()[0] == 500
    gc.set_threshold(700)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")
def test_a_forked_child_does_not_inherit_a_pending_pause(collector):
    out, vjp_fn = dp.vjp(lambda x: x * x, np.arange(3.0))
    pid = os.fork()
    if pid == 0:  # the child: no watchdog here, so the pause must be gone already
        os._exit(0 if gc.get_threshold()[0] == 700 and gc_pause._pauses == 0 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    del vjp_fn


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork")
def test_a_child_forked_while_another_thread_records_starts_unpaused(collector):
    """Another thread's pause (a recording, a sweep) does not exist in a forked child: the
    child collects, and its own pauses and pullbacks still pause and resume."""
    entered, leave = threading.Event(), threading.Event()

    def record():
        with gc_pause.gc_paused():
            entered.set()
            leave.wait()

    thread = threading.Thread(target=record)
    thread.start()
    entered.wait()
    try:
        pid = os.fork()
        if pid == 0:
            unpaused = gc.get_threshold()[0] == 700
            out, vjp_fn = dp.vjp(lambda x: x * x, np.arange(3.0))
            held = gc.get_threshold()[0] == 0
            right = np.array_equal(vjp_fn(np.ones(3))[0], 2 * np.arange(3.0))
            os._exit(0 if unpaused and held and right and gc.get_threshold()[0] == 700 else 1)
        _, status = os.waitpid(pid, 0)
    finally:
        leave.set()
        thread.join()
    assert os.waitstatus_to_exitcode(status) == 0


def test_a_script_exits_with_a_pullback_still_held():
    """A pullback kept to the end of a script (a module global) is freed at exit, when the
    watchdog thread may have been stopped holding the pause's lock: the exit must not wait
    for it (it hung 4 times out of 5). Three interpreters at once, each under a timeout."""
    script = "import numpy as np, diffprog as dp, diffprog.numpy as dnp\n" \
             "out, vjp_fn = dp.vjp(dnp.tanh, np.ones(3))\n"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout
    runs = [subprocess.Popen([sys.executable, "-c", script], cwd=root) for _ in range(3)]
    try:
        assert [run.wait(timeout=30) for run in runs] == [0, 0, 0]
    finally:
        for run in runs:
            run.kill()


def test_no_pass_while_jit_records_optimizes_and_compiles(collector, monkeypatch):
    """dp.jit's first call: no collection while it records, optimizes and fuses the graph
    (a pass would walk every node of it); collection is back afterwards, and the value
    equals the eager one."""
    import importlib

    jit_module = importlib.import_module("diffprog.transforms.jit")
    inside = []
    record = jit_module.Jitted._record

    def watched(*args, **kwargs):
        inside.append(len(collector))
        try:
            return record(*args, **kwargs)
        finally:
            inside.append(len(collector))

    monkeypatch.setattr(jit_module.Jitted, "_record", watched)
    jitted = dp.jit(lambda x: dnp.sum(chain(x)))
    x = np.linspace(-1.0, 1.0, 8)
    value = jitted(x)
    assert len(inside) == 2 and inside[0] == inside[1], collector
    np.testing.assert_allclose(value, np.sum(chain(x)), rtol=1e-12)
    assert gc.get_threshold()[0] == 700
