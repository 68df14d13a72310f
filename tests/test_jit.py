"""dp.jit: every replay equals the eager call (values, gradients, second order), guards
follow the program's path, and the errors and counters users rely on."""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from backends import _directions, check_jit, require_cupy
from diffprog.errors import EscapedTracerError
from test_edges_views import ALLOCATORS, VIEW_PROGRAMS, X34, _fill, _random_program, _run_program


def assert_same(a, b, rtol=1e-12):
    la, ta = dp.tree.flatten(a)
    lb, tb = dp.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb):
        assert type(x) is type(y), (type(x), type(y))
        np.testing.assert_allclose(x, y, rtol=rtol, atol=0)


def check_replays(f, *calls, **kw):
    """jit(f) on each call's args equals f's eager result; the calls after the first replay."""
    jitted = dp.jit(f, **kw)
    for args in calls:
        assert_same(jitted(*args), f(*args))
    return jitted


def loss(params, x):
    h = dnp.tanh(x @ params["W"] + params["b"])
    return dnp.mean((h @ params["v"]) ** 2) + 0.1 * params["scale"] ** 2


def make_params(rng):
    return {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4), "v": rng.normal(size=4),
            "scale": 0.7}  # fmt: skip


def test_value_and_grad_replays_and_matches_eager():
    rng = np.random.default_rng(0)
    calls = [(make_params(rng), rng.normal(size=(5, 3))) for _ in range(3)]
    jitted = check_replays(dp.value_and_grad(loss), *calls)
    assert jitted.stats["recordings"] == 1
    assert jitted.stats["replays"] == 2


def test_python_float_leaf_gradient_stays_a_python_float():
    jitted = dp.jit(dp.grad(lambda p: p["a"] ** 3 * p["n"]))
    for a in (1.5, 2.0):
        g = jitted({"a": a, "n": 2})
        assert type(g["a"]) is float and g["a"] == pytest.approx(6 * a * a)
        assert g["n"] is None


def test_second_order_under_jit():
    f = lambda x: dnp.sum(dnp.sin(x) * x**2)  # noqa: E731
    rng = np.random.default_rng(1)
    check_replays(dp.hessian(f), (rng.normal(size=3),), (rng.normal(size=3),))
    check_replays(dp.grad(dp.grad(lambda x: x**4)), (1.5,), (2.5,))


def test_hvp_vjp_jvp_under_jit():
    f = lambda x: dnp.sum(dnp.exp(x) * x)  # noqa: E731
    rng = np.random.default_rng(2)
    xs = [rng.normal(size=4) for _ in range(3)]
    check_replays(lambda x, v: dp.hvp(f, (x,), (v,)), *[(x, x + 1) for x in xs])
    check_replays(lambda x, v: dp.jvp(dnp.sin, (x,), (v,)), *[(x, x * 2) for x in xs])
    check_replays(lambda x, ct: dp.vjp(dnp.tanh, x)[1](ct), *[(x, x - 1) for x in xs])


def test_a_branch_that_changes_between_calls_is_guarded():
    def f(x):
        if dnp.sum(x) > 0:
            return dnp.sum(dnp.sin(x))
        return dnp.sum(dnp.cos(x)) * 3.0

    jitted = check_replays(dp.value_and_grad(f), (np.ones(3),), (-np.ones(3),), (np.ones(3) * 2,),
                           (-np.ones(3) * 2,))  # fmt: skip
    assert jitted.stats["recordings"] == 2  # one per path
    assert jitted.stats["guard_failures"] >= 1
    assert jitted.stats["replays"] == 2


def test_a_loop_whose_trip_count_depends_on_data():
    def f(x):
        while x < 10.0:
            x = x * 2.0
        return x

    check_replays(dp.value_and_grad(f), (1.0,), (1.5,), (3.0,), (1.2,))


def test_comparisons_are_staged_not_constants():
    f = lambda x: dnp.sum(dnp.where(x > 0, x, 0.0) * (x < 0.5))  # noqa: E731
    rng = np.random.default_rng(3)
    jitted = check_replays(dp.value_and_grad(f), *[(rng.normal(size=6),) for _ in range(4)])
    assert jitted.stats["recordings"] == 1


def test_int_array_inputs_index_without_guards():
    def f(logits, labels):
        return -dnp.mean(dnp.take_along_axis(dnp.log_softmax(logits), labels[:, None], axis=1))

    rng = np.random.default_rng(4)
    calls = [(rng.normal(size=(6, 3)), rng.integers(0, 3, size=6)) for _ in range(3)]
    jitted = check_replays(dp.value_and_grad(f), *calls)
    assert jitted.stats["recordings"] == 1


def test_too_many_paths_warn_once_and_run_eagerly():
    def f(x):
        n = int(x)  # a new loop bound every call
        return sum(x * i for i in range(n))

    jitted = dp.jit(dp.grad(f), max_variants=2)
    with pytest.warns(RuntimeWarning, match=r"int\(\) of a traced value at .*test_jit.py"):
        for x in (1.0, 2.0, 3.0, 4.0, 5.0):
            assert jitted(x) == dp.grad(f)(x)
    assert jitted.stats["recordings"] == 2
    assert jitted.stats["eager_calls"] >= 2


def test_static_argnums_and_decorator_forms():
    @dp.jit(static_argnums=1)
    def power(x, n):
        return x**n

    assert power(2.0, 3) == 8.0 and power(2.0, 2) == 4.0
    assert power.stats["recordings"] == 2

    @dp.jit
    def double(x):
        return x * 2.0

    np.testing.assert_array_equal(double(np.ones(2)), 2 * np.ones(2))

    with pytest.raises(TypeError, match="static argument 1 is a list.*not hashable"):
        power(2.0, [3])


def test_nested_jit_and_grad_of_jit_run_inline():
    inner = dp.jit(lambda x: dnp.sin(x) * x)
    outer = dp.jit(lambda x: dnp.sum(inner(x)))
    x = np.linspace(0.1, 1, 4)
    assert_same(outer(x), dnp.sum(dnp.sin(x) * x))
    assert_same(dp.grad(outer)(x), dp.grad(lambda x: dnp.sum(dnp.sin(x) * x))(x))


def test_a_training_step_with_an_optimizer_under_one_jit():
    opt = dp.optim.adam(1e-2)

    def step(params, state, x):
        value, grads = dp.value_and_grad(loss)(params, x)
        updates, state = opt.update(grads, state, params)
        return dp.optim.apply_updates(params, updates), state, value

    rng = np.random.default_rng(5)
    params = make_params(rng)
    eager_params, eager_state = params, opt.init(params)
    jit_params, jit_state = params, opt.init(params)
    jitted = dp.jit(step)
    for _ in range(4):
        x = rng.normal(size=(5, 3))
        eager_params, eager_state, v1 = step(eager_params, eager_state, x)
        jit_params, jit_state, v2 = jitted(jit_params, jit_state, x)
        assert_same((jit_params, v2), (eager_params, v1))
    assert jitted.stats["recordings"] == 1


def test_a_staged_value_kept_past_the_call_is_an_escaped_tracer():
    kept = []

    @dp.jit
    def f(x):
        kept.append(x * 2.0)
        return x

    f(np.ones(2))
    with pytest.raises(EscapedTracerError):
        kept[0] + 1.0


@pytest.mark.parametrize("n", [3, 600_000])  # a copy of its bytes; past 4 MiB of them: a CRC
def test_a_captured_array_changed_in_place_is_seen(n):
    w = np.ones(n)
    jitted = dp.jit(lambda x: dnp.sum(x * w))
    assert jitted(np.ones(n)) == n
    assert jitted(np.ones(n)) == n
    w[-1] = 2.0
    assert jitted(np.ones(n)) == n + 1
    assert jitted.stats["recordings"] == 2 and jitted.stats["replays"] == 1


@pytest.mark.parametrize("shape", [(), (1,)])
def test_a_captured_scalar_array_changed_in_place_is_seen(shape):
    """A 0-d or one-element array read from outside, in a fused chain (whose kernel took
    its value when compiled): changed in place, the next call records anew rather than
    replay the old value (it did, silently, for arrays of one element)."""
    w = np.full(shape, 2.0)
    f = lambda x: dnp.exp(x) * w + 1.0  # noqa: E731
    g = dp.grad(lambda x: dnp.sum(f(x) * w))
    jitted_f, jitted_g = dp.jit(f), dp.jit(g)
    x = np.linspace(0.1, 1.0, 2000)
    for _ in range(2):
        jitted_f(x), jitted_g(x)
    w[...] = 5.0
    assert_same(jitted_f(x), f(x))
    assert_same(jitted_g(x), g(x))


def test_static_argnums_count_from_the_end_when_negative():
    """static_argnums=-1 names the last positional argument, as in Python's indexing: it
    reaches f as it is (a Python float f may hand to math), not staged."""
    jitted = dp.jit(lambda x, rate: x * math.exp(rate), static_argnums=-1)
    np.testing.assert_allclose(jitted(np.ones(2), 0.5), np.exp(0.5))
    np.testing.assert_allclose(jitted(np.ones(2), 1.0), np.exp(1.0))
    assert jitted.stats["recordings"] == 2
    with pytest.raises(TypeError, match="static argument 1 is a dict"):
        jitted(np.ones(2), {"rate": 1.0})


def test_a_static_argument_stays_static_passed_by_position_or_by_keyword():
    """static_argnums and static_argnames name the same parameters, as in JAX: a static
    argument passed by keyword, or a static name passed by position, reaches f as it is, a
    constant of the recording (it was staged, an input read through guards)."""
    seen = []

    def f(x, rate=0.0):
        seen.append(type(rate))
        return x * math.exp(rate)

    for jitted in (dp.jit(f, static_argnums=1), dp.jit(f, static_argnames="rate")):
        np.testing.assert_allclose(jitted(np.ones(2), 0.5), np.exp(0.5))
        np.testing.assert_allclose(jitted(np.ones(2), rate=1.0), np.exp(1.0))
        np.testing.assert_allclose(jitted(np.ones(2)), 1.0)
        np.testing.assert_allclose(jitted(np.ones(2), rate=1.0), np.exp(1.0))
        assert jitted.stats["recordings"] == 3 and jitted.stats["guard_failures"] == 0
    assert set(seen) == {float}


def test_static_arguments_equal_in_value_but_not_in_type_are_told_apart():
    """1, 1.0 and True (and tuples of them) are equal and hash alike: as static arguments
    they shared one recording, so f(x, 3.0) replayed f(x, 3)'s path."""
    f = lambda x, n: x * (n // 2) if type(n) is int else x * 100.0  # noqa: E731
    g = lambda x, shape: (x, type(shape[0]).__name__)  # noqa: E731
    jitted_f, jitted_g = dp.jit(f, static_argnums=1), dp.jit(g, static_argnames="shape")
    for n in (3, 3.0, True, 3):
        np.testing.assert_array_equal(jitted_f(np.ones(2), n), f(np.ones(2), n))
    for shape in ((1, 2), (1.0, 2.0), (True, 2)):
        assert jitted_g(np.ones(2), shape=shape)[1] == type(shape[0]).__name__


def test_jit_decorates_a_method():
    """`@dp.jit` on a method binds like a function: the instance is the first argument (a
    constant of the recording, keyed by its hash; a registered dataclass is a pytree)."""

    class Scaled:
        def __init__(self, w):
            self.w = w

        @dp.jit
        def __call__(self, x):
            return dnp.sum(self.w * x)

    a, b = Scaled(np.full(2, 2.0)), Scaled(np.full(2, 3.0))
    assert a(np.ones(2)) == 4.0 and b(np.ones(2)) == 6.0 and a(np.ones(2)) == 4.0
    assert Scaled.__call__.stats == {**Scaled.__call__.stats, "recordings": 2, "replays": 1}
    assert dp.grad(a)(np.ones(2)).tolist() == [2.0, 2.0]


def test_outputs_alias_inputs_and_each_other_only_where_eager_ones_do():
    """A replay's output that is an input, or another output, where eager's was a new array
    (the optimizer removed `x * 1.0`, merged a repeated `x * 2.0`, found d sum(x * y) / dx =
    y) is copied: writing into it changed the caller's input, or the other output."""
    y = np.arange(3.0)
    step = dp.jit(dp.value_and_grad(lambda x, y: dnp.sum(x * y)))
    twice = dp.jit(lambda x: (x * 2.0, (x * 2.0).reshape(3, 1), x * 1.0))
    same = dp.jit(lambda x: (x, x[1:], x * 2.0))  # eager's own aliases are kept
    for _ in range(3):
        _, g = step(np.ones(3), y)
        assert not np.shares_memory(g, y)
        a, b, c = twice(y)
        assert not np.shares_memory(a, b) and not np.shares_memory(c, y)
        a, b, _ = same(y)
        assert a is y and np.shares_memory(b, y)
    g[0] = 77.0
    assert y[0] == 0.0
    assert step.stats["replays"] == twice.stats["replays"] == same.stats["replays"] == 2


def test_returned_constant_arrays_are_fresh_each_call():
    jitted = dp.jit(dp.grad(lambda x, y: dnp.sum(y), argnums=0))
    g1 = jitted(np.ones(2), np.ones(2))
    g1 += 5.0
    np.testing.assert_array_equal(jitted(np.ones(2), np.ones(2)), np.zeros(2))


def test_lower_shows_the_optimized_graph_and_its_replay():
    lowered = dp.jit(dp.value_and_grad(lambda x: dnp.sum(dnp.sin(x) * 1.0))).lower(np.ones(3))
    text = lowered.text()
    assert "sin(v0)" in text and "cos(v0)" in text and "(backward)" in text
    assert "multiply" not in text  # x * 1.0 and the ones of sum's rule are gone
    assert "def replay" in lowered.source
    assert lowered.to_dot().startswith("digraph")


def test_replay_errors_come_from_an_eager_run():
    jitted = dp.jit(lambda a: dnp.linalg.inv(a))
    jitted(np.eye(2))
    with pytest.raises(np.linalg.LinAlgError):
        jitted(np.zeros((2, 2)))


def test_dead_forward_values_are_eliminated():
    def f(x):
        unused = dnp.exp(x) * 3.0  # noqa: F841 - dead
        return dnp.sum(x * x)

    lowered = dp.jit(dp.grad(f)).lower(np.ones(2))
    assert "exp" not in lowered.text()


def test_common_subexpressions_are_shared():
    lowered = dp.jit(lambda x: dnp.sin(x) + dnp.sin(x)).lower(np.ones(2))
    assert lowered.text().count("sin(") == 1


def test_memory_planning_writes_dead_buffers_in_place():
    f = lambda x: dnp.sum(dnp.exp(dnp.sin(dnp.cos(x))))  # noqa: E731
    lowered = dp.jit(f).lower(np.ones(5000))
    assert "out=" in lowered.source
    jitted = dp.jit(f)
    x = np.linspace(0, 1, 5000)
    before = x.copy()
    for _ in range(2):
        assert_same(jitted(x), f(x))
    np.testing.assert_array_equal(x, before)  # inputs are never written


def test_views_are_written_as_methods_and_their_base_is_not_reused():
    def f(x):
        y = dnp.sin(x) * 2.0  # a buffer the replay made; t views it past y's last use
        t = dnp.transpose(y)
        z = dnp.exp(t * 3.0)  # may not be written into y's memory
        return z + t.reshape(4096)[::-1].reshape(64, 64)

    lowered = dp.jit(f, fuse=False).lower(np.ones((64, 64)))
    assert ".transpose(p" in lowered.source and ".reshape(p" in lowered.source
    assert re.search(r"= s\d+\[p\d+\]", lowered.source)  # getitem: a subscript
    x = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    jitted = dp.jit(f, fuse=False)
    for _ in range(2):
        assert_same(jitted(x), f(x))
    assert jitted.stats["replays"] == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_means_and_constant_gathers_are_written_lean(dtype):
    """A mean of a float array is written `u_add_reduce(x, ...) / n`, a gather at one
    constant integer array per dimension `x.take(flat positions)`: equal to eager bit for
    bit, with eager's types (keepdims, several axes, a total; negative and broadcast
    indices), gradients included. Other subscripts stay subscripts."""
    rows, cols, planes = np.arange(6), np.array([0, -1, 2, 3, -4, 1]), np.array([[1], [-2]])

    def f(x):
        g = x[rows, cols, planes]  # (2, 6): broadcast indices
        return (g, dnp.mean(x, axis=(0, 2), keepdims=True), dnp.mean(g), dnp.mean(g, axis=1),
                x[1:, rows[:4] % 5, 0])  # fmt: skip

    def loss(x):
        return dnp.mean(x[rows, cols, planes] ** 2) + dnp.sum(dnp.mean(x, axis=(0, 2)) ** 3)

    x = np.random.default_rng(3).normal(size=(6, 5, 4)).astype(dtype)
    source = dp.jit(f).lower(x).source
    assert source.count("u_add_reduce(") == 3 and source.count(".take(p") == 1, source
    for g in (f, dp.value_and_grad(loss)):
        jitted = dp.jit(g)
        for _ in range(2):
            for got, want in zip(dp.tree.leaves(jitted(x)), dp.tree.leaves(g(x))):
                assert type(got) is type(want) and np.result_type(got) == np.result_type(want)
                np.testing.assert_array_equal(got, want)
        assert jitted.stats["replays"] == 1


@pytest.mark.parametrize("idtype", [np.int8, np.uint8, np.int16, np.uint64])
def test_constant_gathers_with_narrow_index_dtypes(idtype):
    """Small integer index arrays into dimensions longer than their dtype's range gather as
    eager does (wrapping a negative index must not overflow the index dtype), and out of
    bounds ones raise IndexError as NumPy does."""
    x = np.random.default_rng(4).normal(size=(3, 40000))
    lo = max(np.iinfo(idtype).min, -3)
    top = min(np.iinfo(idtype).max, 39999)
    rows, cols = np.array([0, 2, lo, 1], idtype), np.array([5, top, 0, 7], idtype)
    for g in (lambda x: x[rows, cols] * 2.0, dp.grad(lambda x: dnp.sum(x[rows, cols] ** 2))):
        for fuse in (True, False):
            np.testing.assert_array_equal(dp.jit(g, fuse=fuse)(x), g(x))
    far = np.array([0, 3], idtype)
    with pytest.raises(IndexError):
        dp.jit(lambda x: x[far, far] * 2.0)(x)



def test_shapes_decided_by_the_data_are_guarded():
    """A boolean mask's selection and nonzero's indices have the shape the data gives them;
    the nodes recorded after them assumed it: a replay with another count records again
    (the fused kernel broadcast one selected element where eager broadcasts it against
    three: a silently short result). dnp.where(cond) and dnp.nonzero are staged."""
    y = np.array([10.0, 20.0, 30.0])
    programs = [lambda x: dnp.tanh(x[x > 0]) * y + 1.0, lambda x: x[dnp.where(x > 0)] * y,
                lambda x: x[dnp.nonzero(x > 0)[0]] * y,
                dp.grad(lambda x: dnp.sum(dnp.tanh(x[x > 0]) * y))]  # fmt: skip
    calls = [np.array([1.0, -2.0, 3.0, 4.0]), np.array([1.0, -2.0, -3.0, -4.0]),
             np.array([-1.0, 2.0, 3.0, 4.0])]  # fmt: skip
    for f in programs:
        for fuse in (True, False):
            jitted = dp.jit(f, fuse=fuse)
            for x in calls:
                np.testing.assert_array_equal(jitted(x), f(x))
            assert jitted.stats["replays"] == 1 and jitted.stats["recordings"] == 2

def test_warning_free_on_ordinary_use():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jitted = dp.jit(dp.value_and_grad(loss))
        rng = np.random.default_rng(6)
        for _ in range(3):
            jitted(make_params(rng), rng.normal(size=(5, 3)))


# --- NumPy's write semantics under dp.jit ----------------------------------------------------
@pytest.mark.parametrize("f", VIEW_PROGRAMS, ids=lambda f: f.__name__.strip("_"))
def test_view_programs_under_jit(f):
    check_jit(f, (X34,))


def test_random_view_programs_under_jit():
    for seed in range(40):
        program = _random_program(seed)
        check_jit(lambda x: _run_program(program, x), (X34,))


@pytest.mark.parametrize("name", ALLOCATORS)
def test_allocate_then_fill_under_jit(name):
    check_jit(_fill(ALLOCATORS[name]), (np.array([0.5, -1.5, 2.0, 0.25]),))


def test_random_draws_inside_are_never_replayed():
    rng = np.random.default_rng(0)

    def noisy(x, rng):
        return x + rng.normal(size=x.shape)

    jitted = dp.jit(noisy)
    with pytest.warns(RuntimeWarning, match="drew random numbers"):
        a = jitted(np.zeros(2), rng)
    b = jitted(np.zeros(2), rng)
    assert not np.array_equal(a, b)  # new draws every call, as eagerly
    assert jitted.stats["replays"] == 0
    with pytest.warns(RuntimeWarning, match="drew random numbers"):
        g = dp.jit(lambda x: x * np.random.uniform())
        g(1.0)
    closure_rng = np.random.default_rng(1)
    for jitted in (dp.jit(noisy, static_argnums=1), dp.jit(lambda x: x * closure_rng.normal()),
                   dp.jit(lambda x: x * GLOBAL_RNG.normal())):  # fmt: skip
        args = (np.zeros(2) + 1.0, rng) if jitted.static_argnums else (np.ones(1),)
        with pytest.warns(RuntimeWarning, match="drew random numbers"):
            a = jitted(*args)
        assert not np.array_equal(a, jitted(*args)) and jitted.stats["replays"] == 0
    noise = rng.normal(size=2)  # the supported way: draws come in as an argument
    passed = dp.jit(lambda x, noise: x + noise)
    passed(np.zeros(2), noise)
    np.testing.assert_array_equal(passed(np.zeros(2), noise + 1), noise + 1)
    assert passed.stats["replays"] == 1


GLOBAL_RNG = np.random.default_rng(2)


# --- on the GPU -------------------------------------------------------------------------------
def test_a_jitted_training_step_on_every_backend(backend):
    """The replay runs CuPy kernels on the arrays' own GPU, results equal NumPy's, and
    replays make no host <-> device copy and no synchronisation."""
    opt = dp.optim.adam(1e-2)

    def step(params, state, x):
        value, grads = dp.value_and_grad(lambda p: dnp.mean(dnp.tanh(x @ p["W"] + p["b"]) ** 2))(params)
        updates, state = opt.update(grads, state, params)
        return dp.optim.apply_updates(params, updates), state, value

    rng = np.random.default_rng(8)
    host = {"W": rng.normal(size=(3, 4)), "b": rng.normal(size=4)}
    xs = [rng.normal(size=(5, 3)) for _ in range(3)]
    params, state = backend.put(host), backend.put(opt.init(host))
    want_params, want_state = host, opt.init(host)
    jitted = dp.jit(step)
    for i, x in enumerate(xs):
        want_params, want_state, want_value = step(want_params, want_state, x)
        if i == 2 and backend.gpu is not None:  # a replay: no transfer, no synchronisation
            cp, cupyx = backend.xp, pytest.importorskip("cupyx")
            moved = backend.put(x)
            sent = dict(getattr(cp, "transfers", {}))  # the simulator's host <-> device counts
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # allow_synchronize is deprecated
                with cupyx.allow_synchronize(False):
                    params, state, value = jitted(params, state, moved)
            assert getattr(cp, "transfers", {}) == sent, "a host <-> device copy in a replay"
        else:
            params, state, value = jitted(params, state, backend.put(x))
        backend.check((params, value), (want_params, want_value))
    assert jitted.stats["replays"] == 2 and jitted.stats["recordings"] == 1


@pytest.mark.gpu
def test_on_cupy_staged_constants_are_made_on_the_device_and_float_tangents_are_scalars():
    """Staged CuPy code: the masks and zeros of tril/triu are CuPy's (NumPy's creation
    functions have no operand to dispatch on, so they made host arrays that the recording's
    `where` refused), and the jvp tangent of a Python float argument is a scalar where dp.jit
    stages the argument (a 0-d NumPy array does not mix with CuPy's arrays)."""
    cp = require_cupy()
    host = lambda tree: dp.tree.map(lambda a: cp.asnumpy(a) if isinstance(a, cp.ndarray) else a,
                                    tree)  # noqa: E731
    x = cp.asarray(np.arange(6.0).reshape(3, 2))
    f = lambda a: dnp.sum(dnp.tril(a) ** 2 + dnp.triu(a, 1))  # noqa: E731
    g = lambda s: dnp.sum(x * dnp.tanh(s))  # noqa: E731
    cases = [(f, x), (dp.grad(f), x), (lambda a: dp.jvp(f, (a,), (a,)), x),
             (lambda s: dp.hvp(g, (s,), (0.3,)), -0.27), (dp.grad(g), -0.27)]
    for program, arg in cases:
        jitted = dp.jit(program)
        for _ in range(3):
            got, want = host(jitted(arg)), host(program(arg))
            for a, b in zip(dp.tree.leaves(got), dp.tree.leaves(want)):
                np.testing.assert_allclose(a, b, rtol=1e-12)
        assert jitted.stats["replays"] == 2 and jitted.stats["eager_calls"] == 0


@pytest.mark.gpu
def test_on_cupy_item_assignment_under_jit_has_device_placeholders():
    """The reverse record of `y[0] = v` saves shape-only placeholders; for a value dp.jit
    stages on CuPy, one was CuPy's zero handed to NumPy's broadcast_to (found by the fuzzed
    programs on CuPy)."""
    cp = require_cupy()

    def f(x, s):
        y = x * 1.0
        y[0] = dnp.sin(s)
        return y

    x, u = cp.asarray(np.arange(3.0)), cp.asarray(np.array([0.5, -1.0, 2.0]))
    program = lambda x, s: dp.vjp(f, x, s)[1](u)  # noqa: E731
    jitted = dp.jit(program)
    for s in (0.4, 0.4, -0.7):
        (gx, gs), (wx, ws) = jitted(x, s), program(x, s)
        np.testing.assert_array_equal(cp.asnumpy(gx), cp.asnumpy(wx))
        assert gs == pytest.approx(ws, rel=1e-12) and ws == pytest.approx(0.5 * np.cos(s))
    assert jitted.stats["replays"] >= 1


@pytest.mark.gpu
def test_on_cupy_a_python_float_cotangent_of_a_host_scalar_output_replays():
    """vjp_fn(0.3) for an output of host scalars alone: its seed was a 0-d NumPy array, a
    constant that the replay on CuPy (chosen by the CuPy argument) refused, so every call ran
    eagerly (found by the fuzzed programs on CuPy)."""
    cp = require_cupy()
    w = cp.asarray(np.arange(3.0))
    program = lambda s, w: dp.vjp(lambda s, w: (w * 2.0, (s * s + 0.5) ** 1.5), s, w)[1](  # noqa: E731
        (cp.ones(3), 0.3))
    jitted = dp.jit(program)
    for s in (0.57, 0.57, -0.2):
        (gs, gw), (ws, ww) = jitted(s, w), program(s, w)
        assert type(gs) is type(ws) is float and gs == pytest.approx(ws, rel=1e-12)
        assert ws == pytest.approx(0.3 * 1.5 * (s * s + 0.5) ** 0.5 * 2 * s, rel=1e-12)
        np.testing.assert_array_equal(cp.asnumpy(gw), cp.asnumpy(ww))
    assert jitted.stats["replays"] == 2 and jitted.stats["eager_calls"] == 0, jitted.stats


@pytest.mark.gpu
def test_on_cupy_a_mask_of_traced_values_indexes_constants_under_jit():
    """`y[y > c] = 0.5` under dp.jit: the staged mask also indexes constants (a symbolic zero
    tangent made real, a cotangent), whose write and read the staging trace must record; run
    as constants, CuPy met the staged mask (found by the fuzzed programs on CuPy)."""
    cp = require_cupy()

    def f(p):
        y = p["a"] * 1.0
        y[y > -0.27] = 0.5
        return dnp.sum(p["b"] * y)

    params = {"a": cp.asarray(np.array([1.25, -0.5, 0.1])), "b": -1.02}
    hvp = lambda p: dp.hvp(f, (p,), ({"a": cp.ones(3), "b": 0.3},))  # noqa: E731
    for program in (dp.grad(f), hvp):
        jitted = dp.jit(program)
        for _ in range(2):
            got, want = jitted(params), program(params)
            for g, w in zip(dp.tree.leaves(got), dp.tree.leaves(want)):
                np.testing.assert_array_equal(cp.asnumpy(g), cp.asnumpy(w))
        assert jitted.stats["replays"] == 1, (jitted.stats, jitted.last_eager_reason)
    np.testing.assert_array_equal(cp.asnumpy(dp.grad(f)(params)["a"]), [0.0, -1.02, 0.0])


@pytest.mark.gpu
def test_on_cupy_a_numpy_scalar_cotangent_through_a_reduction_of_host_scalars_replays():
    """sum/mean's VJP broadcasts a NumPy scalar cotangent to shape (): it was a 0-d NumPy
    array, a constant the replay on CuPy refused (found by the fuzzed programs on CuPy)."""
    cp = require_cupy()
    f = lambda p: dnp.sum(dnp.sin(p[1])) + dnp.mean(dnp.tanh(p[1])) + dnp.sum(p[0])  # noqa: E731
    program = lambda p: dp.vjp(f, p)[1](np.float64(0.3))  # noqa: E731
    params = [cp.asarray(np.arange(3.0)), 1.19]
    jitted = dp.jit(program)
    for _ in range(2):
        ((gx, gs),), ((wx, ws),) = jitted(params), program(params)
        assert type(gs) is type(ws) is float and gs == pytest.approx(ws, rel=1e-12)
        np.testing.assert_array_equal(cp.asnumpy(gx), cp.asnumpy(wx))
    assert ws == pytest.approx(0.3 * (np.cos(1.19) + 1.0 - np.tanh(1.19) ** 2), rel=1e-12)
    assert jitted.stats["replays"] == 1, (jitted.stats, jitted.last_eager_reason)


def test_check_jit_draws_fresh_directions_for_each_case():
    """check_jit's cotangent of a scalar output is drawn for each case (it was the first
    draw of one seed, 0.00123, for every scalar program) and is at least 0.5 in size, so a
    wrong sign or scale of the scalar path shows; the same case draws the same directions."""
    x = np.linspace(0.5, 1.5, 3)
    cases = [(lambda x: dnp.sum(x), x), (lambda x: dnp.sum(x * x), x), (lambda x: dnp.sum(x), 2 * x),
             (lambda x: dnp.max(x), x)]  # fmt: skip
    cotangents = [float(_directions(f, (a,))[0]) for f, a in cases]
    assert len(set(cotangents)) == len(cases) and min(map(abs, cotangents)) >= 0.5
    assert float(_directions(*cases[0][:1], (x,))[0]) == cotangents[0]
    tangent = _directions(cases[1][0], (x,))[1][0]
    assert tangent.shape == x.shape and np.all(np.abs(tangent) >= 0.5)
