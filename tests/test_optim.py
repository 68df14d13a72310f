"""dp.optim: update rules against hand computations, schedules against closed forms, pytree
semantics (None leaves, dtypes, structure and key order), errors, and convergence."""

from __future__ import annotations

import collections
import math
import re
import warnings

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog import optim
from backends import require_cupy
from diffprog.errors import StructureError


def run(opt, params, grads_seq):
    """Apply ``opt`` with a fixed sequence of gradients; returns the params after each step."""
    state = opt.init(params)
    history = []
    for g in grads_seq:
        updates, state = opt.update(g, state, params)
        params = optim.apply_updates(params, updates)
        history.append(params)
    return history, state


# ------------------------------------------------------------------------ update rules


def test_adam_two_steps_by_hand():
    lr, eps = 0.1, 1e-8
    opt = optim.adam(lr)  # b1=0.9, b2=0.999
    params = {"w": np.array([1.0, -2.0])}
    state = opt.init(params)
    u1, state = opt.update({"w": np.array([0.5, -1.0])}, state, params)
    adam_state = state[0]
    assert adam_state.count == 1
    np.testing.assert_allclose(adam_state.mu["w"], [0.05, -0.1], rtol=1e-14)
    np.testing.assert_allclose(adam_state.nu["w"], [0.00025, 0.001], rtol=1e-12)
    # bias correction makes m̂ = g, v̂ = g², so the first step is -lr * g / (|g| + eps)
    np.testing.assert_allclose(u1["w"], [-0.1 * 0.5 / (0.5 + eps), 0.1 * 1.0 / (1.0 + eps)],
                               rtol=1e-14)
    params = optim.apply_updates(params, u1)
    u2, state = opt.update({"w": np.array([0.25, 2.0])}, state, params)
    # mu = 0.9 mu + 0.1 g = [0.07, 0.11]; nu = 0.999 nu + 0.001 g² = [0.00031225, 0.004999]
    np.testing.assert_allclose(state[0].mu["w"], [0.07, 0.11], rtol=1e-13)
    np.testing.assert_allclose(state[0].nu["w"], [0.00031225, 0.004999], rtol=1e-12)
    c1, c2 = 1 - 0.9**2, 1 - 0.999**2  # 0.19, 0.001999
    expected = [-lr * (0.07 / c1) / (math.sqrt(0.00031225 / c2) + eps),
                -lr * (0.11 / c1) / (math.sqrt(0.004999 / c2) + eps)]
    np.testing.assert_allclose(u2["w"], expected, rtol=1e-12)
    np.testing.assert_allclose(expected, [-0.0932180, -0.0366104], rtol=1e-5)
    assert state[0].count == 2 and state[1] == optim.EmptyState()


@pytest.mark.parametrize("nesterov, expected", [
    (False, [0.9, 0.61, 0.449]),    # v = g + 0.9 v: 1, 2.9, 1.61; p -= 0.1 v
    (True, [0.81, 0.349, 0.3041]),  # p -= 0.1 (g + 0.9 v): 1.9, 4.61, 0.449
])
def test_sgd_momentum_three_steps_by_hand(nesterov, expected):
    opt = optim.sgd(0.1, momentum=0.9, nesterov=nesterov)
    history, state = run(opt, {"p": 1.0}, [{"p": 1.0}, {"p": 2.0}, {"p": -1.0}])
    np.testing.assert_allclose([h["p"] for h in history], expected, rtol=1e-13)
    assert state[0].trace["p"] == pytest.approx(1.61)


def test_plain_sgd_by_hand_and_stateless():
    history, state = run(optim.sgd(0.5), {"p": 1.0}, [{"p": 1.0}, {"p": 3.0}])
    assert [h["p"] for h in history] == [0.5, -1.0]
    assert dp.tree.leaves(state) == []


def test_a_mask_has_one_bool_per_parameter_of_any_shape():
    """adamw's mask (optax's) is one bool per parameter: it was checked as if it were a
    gradient, so a True for an array parameter raised 'mask['w'] has shape ()'."""
    params = {"w": np.array([2.0, -1.0]), "b": np.array([[3.0]], np.float32), "n": 7}
    grads = {"w": np.array([0.5, 0.5]), "b": np.array([[1.0]], np.float32), "n": None}
    plain = optim.adam(0.1)
    want, _ = plain.update(grads, plain.init(params), params)
    for mask in ({"w": True, "b": np.False_, "n": False},
                 lambda p: dp.tree.map(lambda x: getattr(x, "ndim", 0) == 1, p)):
        opt = optim.adamw(0.1, weight_decay=0.5, mask=mask)
        step = dp.jit(lambda g, s, p: opt.update(g, s, p)[0])  # noqa: B023
        for u in (opt.update(grads, opt.init(params), params)[0],
                  step(grads, opt.init(params), params)):
            np.testing.assert_allclose(u["w"], want["w"] - 0.1 * 0.5 * params["w"], rtol=1e-14)
            np.testing.assert_array_equal(u["b"], want["b"])
    opt = optim.adamw(0.1, mask={"w": np.array([True, False]), "b": True, "n": False})
    with pytest.raises(TypeError, match=r"mask\['w'\] is ndarray .* one True or False per"):
        opt.update(grads, opt.init(params), params)


def test_adamw_decoupled_decay_and_mask():
    eps, lr, wd = 1e-8, 0.1, 0.5
    params = {"w": 2.0, "b": 2.0, "n": 7}
    grads = {"w": 1.0, "b": 1.0, "n": None}
    adam_dir = 1.0 / (1.0 + eps)  # first Adam step: g / (|g| + eps)
    u, _ = optim.adamw(lr, weight_decay=wd).update(grads, optim.adamw(lr).init(params), params)
    assert u["w"] == pytest.approx(-lr * (adam_dir + wd * 2.0), rel=1e-14)
    assert u["b"] == pytest.approx(-lr * (adam_dir + wd * 2.0), rel=1e-14)
    assert u["n"] is None
    for mask in ({"w": True, "b": False, "n": False}, lambda p: {k: k == "w" for k in p}):
        opt = optim.adamw(lr, weight_decay=wd, mask=mask)
        u, _ = opt.update(grads, opt.init(params), params)
        assert u["w"] == pytest.approx(-lr * (adam_dir + wd * 2.0), rel=1e-14)
        assert u["b"] == pytest.approx(-lr * adam_dir, rel=1e-14)
    # weight_decay=0 is Adam
    ua, _ = optim.adam(lr).update(grads, optim.adam(lr).init(params), params)
    uw, _ = optim.adamw(lr, weight_decay=0.0).update(grads, optim.adamw(lr).init(params), params)
    assert ua == uw
    with pytest.raises(TypeError, match="needs the parameters"):
        opt = optim.adamw(lr)
        opt.update(grads, opt.init(params))


def test_rmsprop_by_hand_with_and_without_momentum():
    lr, eps = 0.01, 1e-8
    u1 = -lr * 2.0 / math.sqrt(0.4 + eps)    # nu = 0.1 * 4
    u2 = -lr * 1.0 / math.sqrt(0.46 + eps)   # nu = 0.9 * 0.4 + 0.1 * 1
    history, state = run(optim.rmsprop(lr), {"p": 0.0}, [{"p": 2.0}, {"p": 1.0}])
    assert history[0]["p"] == pytest.approx(u1, rel=1e-13)
    assert history[1]["p"] == pytest.approx(u1 + u2, rel=1e-13)
    assert state[0].nu["p"] == pytest.approx(0.46, rel=1e-14)
    history, _ = run(optim.rmsprop(lr, momentum=0.5), {"p": 0.0}, [{"p": 2.0}, {"p": 1.0}])
    assert history[1]["p"] == pytest.approx(u1 + (u2 + 0.5 * u1), rel=1e-13)


def test_clip_by_global_norm_over_a_nested_tree():
    g = {"a": np.array([3.0, 0.0]), "b": {"c": [np.array([[4.0]], np.float32), None],
                                          "d": 12.0}}
    assert float(optim.global_norm(g)) == 13.0  # sqrt(9 + 16 + 144), all leaves together
    opt = optim.clip_by_global_norm(6.5)
    u, state = opt.update(g, opt.init(g))
    np.testing.assert_array_equal(u["a"], [1.5, 0.0])
    assert u["b"]["c"][0].dtype == np.float32 and u["b"]["c"][0][0, 0] == 2.0
    assert u["b"]["c"][1] is None and u["b"]["d"] == 6.0 and type(u["b"]["d"]) is float
    for max_norm in (13.0, 100.0):  # at or under the bound: unchanged
        u, _ = optim.clip_by_global_norm(max_norm).update(g, state)
        np.testing.assert_array_equal(u["a"], g["a"])
        assert u["b"]["d"] == 12.0


def test_chain_applies_in_order():
    clip_then_scale = optim.chain(optim.clip_by_global_norm(1.0), optim.scale(2.0))
    scale_then_clip = optim.chain(optim.scale(2.0), optim.clip_by_global_norm(1.0))
    assert clip_then_scale.update({"w": 3.0}, clip_then_scale.init({"w": 0.0}))[0] == {"w": 2.0}
    assert scale_then_clip.update({"w": 3.0}, scale_then_clip.init({"w": 0.0}))[0] == {"w": 1.0}
    state = optim.chain(optim.trace(0.5), optim.scale_by_adam()).init({"w": 0.0})
    assert isinstance(state, tuple) and len(state) == 2
    assert isinstance(state[0], optim.TraceState) and isinstance(state[1], optim.ScaleByAdamState)


# ------------------------------------------------------------------------- schedules


def test_schedules_against_closed_forms():
    steps = [0, 1, 7, 10, 25, 99, 100, 101, 1000]
    c = optim.constant(0.3)
    assert [c(k) for k in steps] == [0.3] * len(steps)
    e = optim.exponential_decay(0.5, 20, 0.1)
    es = optim.exponential_decay(0.5, 20, 0.1, staircase=True)
    cd = optim.cosine_decay(2.0, 100, alpha=0.25)
    lw = optim.linear_warmup(0.1, 1.0, 10)
    wc = optim.warmup_cosine_decay(0.0, 1.0, 10, 100, end_value=0.2)
    for k in steps:
        assert e(k) == pytest.approx(0.5 * 0.1 ** (k / 20), rel=1e-12)
        assert es(k) == pytest.approx(0.5 * 0.1 ** (k // 20), rel=1e-12)
        cos = 0.5 * (1 + math.cos(math.pi * min(k, 100) / 100))
        assert cd(k) == pytest.approx(2.0 * (0.75 * cos + 0.25), rel=1e-12)
        assert lw(k) == pytest.approx(0.1 + 0.9 * min(k, 10) / 10, rel=1e-12)
        if k < 10:
            want = k / 10
        else:
            want = 0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * min(k - 10, 90) / 90))
        assert wc(k) == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert (cd(0), cd(50), cd(100), cd(1000)) == pytest.approx((2.0, 1.25, 0.5, 0.5))
    assert (wc(0), wc(5), wc(10), wc(55), wc(100)) == pytest.approx((0.0, 0.5, 1.0, 0.6, 0.2))
    assert optim.exponential_decay(1.0, 1, 0.5, end_value=0.2)(10) == 0.2
    assert optim.exponential_decay(1.0, 10, 0.5, transition_begin=5)(5) == 1.0


def test_schedule_as_learning_rate_uses_the_count_in_the_state():
    seen = []
    opt = optim.sgd(lambda count: seen.append(count) or 0.1 * (count + 1))
    history, state = run(opt, {"p": 0.0}, [{"p": 1.0}] * 3)
    assert seen == [0, 1, 2] and state[0].count == 3
    np.testing.assert_allclose([h["p"] for h in history], [-0.1, -0.3, -0.6], rtol=1e-14)
    opt = optim.adam(optim.cosine_decay(0.1, 2))
    history, _ = run(opt, {"p": 0.0}, [{"p": 1.0}] * 3)
    # Adam's direction is 1/(1+eps) each step here; rates 0.1, 0.05, 0
    np.testing.assert_allclose([h["p"] for h in history], [-0.1, -0.15, -0.15], rtol=1e-7)


# -------------------------------------------------------------------- pytree semantics

OPTIMIZERS = {
    "sgd": lambda: optim.sgd(0.1),
    "momentum": lambda: optim.sgd(0.1, momentum=0.9),
    "nesterov": lambda: optim.sgd(0.1, momentum=0.9, nesterov=True),
    "adam": lambda: optim.adam(0.1),
    "adamw": lambda: optim.adamw(0.1, weight_decay=0.01),
    "rmsprop": lambda: optim.rmsprop(0.1, momentum=0.5),
    "clip+adam": lambda: optim.chain(optim.clip_by_global_norm(1.0), optim.adam(0.1)),
    "scheduled": lambda: optim.adam(optim.warmup_cosine_decay(0.0, 0.1, 2, 10)),
}


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_none_leaves_and_constants_untouched(name):
    idx, act = np.arange(3), "relu"
    params = {"w": np.ones(2), "frozen": np.ones(2), "n": 3, "act": act, "idx": idx, "x": None}
    grads = {"w": np.full(2, 0.5), "frozen": None, "n": None, "act": None, "idx": None,
             "x": None}
    opt = OPTIMIZERS[name]()
    state = opt.init(params)
    for leaf in dp.tree.leaves(state):  # arrays, NumPy int counts, floats and None
        assert leaf is None or isinstance(leaf, (np.integer, float, np.ndarray)), type(leaf)
    for _ in range(2):
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates)
    assert all(updates[k] is None for k in ("frozen", "n", "act", "idx", "x"))
    assert params["n"] == 3 and params["act"] is act and params["idx"] is idx
    assert params["x"] is None
    np.testing.assert_array_equal(params["frozen"], np.ones(2))
    assert np.all(params["w"] < 1.0)
    for sub in state:
        for tree_ in (getattr(sub, f) for f in getattr(sub, "_fields", ())):
            if isinstance(tree_, dict):  # moments: None for constants, still zero if frozen
                assert all(tree_[k] is None for k in ("n", "act", "idx", "x"))
                np.testing.assert_array_equal(tree_["frozen"], np.zeros(2))


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_dtype_preserved(name, dtype):
    params = {"w": np.array([1.0, -1.0], dtype), "s": dtype(0.5), "f": 2.0}
    grads = {"w": np.array([0.5, 0.25], dtype), "s": dtype(1.0), "f": 1.0}
    opt = OPTIMIZERS[name]()
    state = opt.init(params)
    for _ in range(2):
        updates, state = opt.update(grads, state, params)
        params = optim.apply_updates(params, updates)
    for tree_ in (params, updates):
        assert tree_["w"].dtype == dtype and type(tree_["w"]) is np.ndarray
        assert type(tree_["s"]) is dtype
        assert type(tree_["f"]) is float
    for sub in state:
        # Adam's and RMSProp's moments of float16 parameters are float32 (they underflow)
        adaptive = isinstance(sub, (optim.ScaleByAdamState, optim.ScaleByRmsState))
        want = np.float32 if adaptive and dtype == np.float16 else dtype
        for tree_ in (getattr(sub, f) for f in getattr(sub, "_fields", ())):
            if isinstance(tree_, dict):
                assert tree_["w"].dtype == want and type(tree_["s"]) is want
                assert type(tree_["f"]) is float



@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_jitted_step_keeps_the_kinds_of_leaves(name):
    """Under dp.jit a step gives every parameter, update and state leaf the type, dtype and
    shape the eager step gives (a 0-d array stays one, not a NumPy scalar: that also made
    each step's signature new), with the same values."""
    params = {"w": np.array([1.0, -1.0]), "z": np.array(0.5), "h": np.array(0.25, np.float32),
              "s": np.float32(0.5), "f": 2.0}  # fmt: skip
    opt = OPTIMIZERS[name]()

    def loss(p):
        return dnp.sum(p["w"] ** 2) * p["z"] + p["h"] * p["s"] + p["f"] ** 2 * p["z"]

    def step(p, state):
        updates, state = opt.update(dp.grad(loss)(p), state, p)
        return optim.apply_updates(p, updates), updates, state

    jitted = dp.jit(step)
    eager = got = (params, None, opt.init(params))
    for _ in range(3):
        eager, got = step(eager[0], eager[2]), jitted(got[0], got[2])
        for a, b in zip(dp.tree.leaves(got), dp.tree.leaves(eager)):
            assert type(a) is type(b) and np.shape(a) == np.shape(b), (type(a), type(b))
            assert np.result_type(a) == np.result_type(b)
            np.testing.assert_allclose(a, b, rtol=1e-6)
    # one recording per phase of a schedule (warm-up, then decay), not one per step
    assert jitted.stats["recordings"] == 1, jitted.stats


#: every phase of each is crossed within 12 steps; edge cases: zero-length warm-ups, a
#: transition that begins late, a bound reached by a floored exponent, a growing rate capped
#: by end_value (its power would overflow long before step 10**6), a user's schedule in dnp
SCHEDULES = {
    "cosine_decay": lambda: optim.cosine_decay(0.1, 5, alpha=0.1),
    "cosine_decay**2": lambda: optim.cosine_decay(0.1, 4, exponent=2.0),
    "exponential_decay": lambda: optim.exponential_decay(0.1, 3, 0.5, transition_begin=2),
    "staircase": lambda: optim.exponential_decay(0.1, 3, 0.5, staircase=True, end_value=0.02),
    "growth": lambda: optim.exponential_decay(0.01, 2, 3.0, end_value=0.05),
    "staircase growth": lambda: optim.exponential_decay(0.01, 2, 2.0, staircase=True,
                                                        end_value=0.04),
    "linear_schedule": lambda: optim.linear_schedule(0.1, 0.0, 4, transition_begin=2),
    "linear_warmup(0)": lambda: optim.linear_warmup(0.0, 0.1, 0),
    "warmup_cosine_decay": lambda: optim.warmup_cosine_decay(0.0, 0.1, 3, 8, end_value=0.01),
    "warmup_cosine_decay(0)": lambda: optim.warmup_cosine_decay(0.0, 0.1, 0, 5, exponent=1.5),
    "user's": lambda: (lambda count: 0.1 / (count + 2) + 0.01 * (1 + dnp.cos(count))),
}
#: the first count from which each is constant (None: never)
ENDS = {"cosine_decay": 5, "cosine_decay**2": 4, "exponential_decay": None, "staircase": 9,
        "growth": 3, "staircase growth": 4, "linear_schedule": 6, "linear_warmup(0)": 0,
        "warmup_cosine_decay": 8, "warmup_cosine_decay(0)": 5, "user's": None}  # fmt: skip


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_a_jitted_schedule_is_branch_free_and_equals_the_eager_one(schedule):
    """A count dp.jit stages gives a staged value with no guard (phases chosen by where and
    clip), equal to the Python float of a Python int count at every count: before, on and
    after each phase boundary and far past the end, with no warning (no overflow, no
    division by a zero-length phase)."""
    s = SCHEDULES[schedule]()
    jitted = dp.jit(s)
    counts = list(range(-1, 13)) + [10**6]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = [jitted(np.int64(k)) for k in counts]
        want = [s(k) for k in counts]
    assert schedule == "user's" or all(type(w) is float for w in want), [type(w) for w in want]
    assert min(want) >= getattr(s, "lowest", -math.inf)
    np.testing.assert_allclose(np.array(got, float), want, rtol=1e-15, atol=0)  # cos, pow
    assert jitted.stats["recordings"] == 1 and jitted.stats["eager_calls"] == 0, jitted.stats
    assert jitted.lower(np.int64(0)).graph.guards() == []
    if ENDS[schedule] is not None:
        assert s(10**6) == s(ENDS[schedule])


def test_schedules_reach_their_end_points_exactly():
    """A linear phase starts at its first value and ends at its last one exactly, eager and
    jitted: `init + (end - init) * 1` missed end_value by an ulp for pairs such as 0.1 to 0.01
    (0.009999999999999995 for the rest of training)."""
    rng = np.random.default_rng(0)
    for a, b in [(0.1, 0.01), (1e-4, 1e-3), *(rng.random((20, 2)) * [[1e-2, 1e-3]]).tolist()]:
        lin = optim.linear_schedule(a, b, 4, transition_begin=2)
        warm = optim.linear_warmup(a, b, 3)
        wcd = optim.warmup_cosine_decay(a, b, 3, 7, end_value=a / 3)
        for s, first, last, peak_at in [(lin, a, b, None), (warm, a, b, None),
                                        (wcd, a, a / 3, 3)]:
            jitted = dp.jit(s)
            for k, want in [(0, first), (7, last), (100, last)] + [(peak_at, b)] * bool(peak_at):
                assert s(k) == want and float(jitted(np.int64(k))) == want, (s, k, s(k), want)


@pytest.mark.parametrize("schedule", [k for k in SCHEDULES if k != "user's"])
def test_gradients_through_a_schedule_are_finite_at_every_count(schedule):
    """Differentiated in a float count, a schedule's derivative is the selected phase's,
    never a NaN from the phase where() leaves out; central differences agree inside phases."""
    s = SCHEDULES[schedule]()
    for k in [-1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 8.0, 12.0, 1e6]:
        assert math.isfinite(dp.grad(s)(k)), (schedule, k)
    for k in [0.5, 1.5, 2.5, 3.5, 4.5, 7.5]:
        numeric = (s(k + 1e-6) - s(k - 1e-6)) / 2e-6
        assert dp.grad(s)(k) == pytest.approx(numeric, rel=1e-6, abs=1e-9), (schedule, k)


def _sgd_step(opt):
    def step(p, state):
        updates, state = opt.update(dp.grad(lambda p: dnp.sum(p["w"] ** 2))(p), state, p)
        return optim.apply_updates(p, updates), state

    return step


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("make", [optim.adam, optim.sgd], ids=["adam", "sgd"])
@pytest.mark.parametrize("schedule", SCHEDULES)
def test_a_jitted_step_with_a_schedule_records_once_for_every_phase(schedule, make, dtype):
    """A jitted training step with a schedule records once and replays at every later step,
    across every phase, with no guard, and gives the eager step's params: float32 ones
    exactly (the staged rate is rounded to float32 as eager's Python float is; multiplied in
    float64 instead, a param in three is one float32 ulp off), float64 ones within the few
    ulp another cos or pow (NumPy's SIMD loops, a fused kernel's) may give the rate."""
    opt = make(SCHEDULES[schedule]())
    step = _sgd_step(opt)
    jitted = dp.jit(step)
    params = {"w": np.array([1.0, -2.0, 3.0], dtype)}
    eager = got = (params, opt.init(params))
    for _ in range(12):
        eager, got = step(*eager), jitted(*got)
        assert got[0]["w"].dtype == dtype
        np.testing.assert_allclose(got[0]["w"], eager[0]["w"], rtol=1e-15 if dtype == np.float64
                                   else 0)  # fmt: skip
    assert got[1][-1].count == 12
    stats = jitted.stats
    assert (stats["recordings"], stats["replays"], stats["guard_failures"],
            stats["eager_calls"]) == (1, 11, 0, 0), stats  # fmt: skip
    assert jitted.lower(*got).graph.guards() == []


def test_a_bad_scheduled_rate_makes_a_jitted_step_nan_not_a_guard():
    """Eagerly a negative rate raises (test_bad_learning_rates_and_schedules); a jitted step
    does not read the rate back to check it (a guard at every step), so the update is NaN."""
    opt = optim.sgd(lambda count: 0.1 - 0.1 * count)
    jitted = dp.jit(_sgd_step(opt))
    got = ({"w": np.array([1.0, 2.0])}, opt.init({"w": np.zeros(2)}))
    for _ in range(2):
        got = jitted(*got)
    assert np.all(np.isfinite(got[0]["w"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = jitted(*got)
    assert np.all(np.isnan(got[0]["w"])) and jitted.stats["recordings"] == 1
    assert jitted.lower(*got).graph.guards() == []


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop", "clip+adam"])
@pytest.mark.parametrize("g", [1e-3, 1e-5, 1e-7])
def test_small_gradients_in_float16_step_as_in_float32(name, g):
    # nu = 0.001 * g**2 underflowed in a float16 state: Adam's first step at g = 1e-3 was
    # -inf (adamw NaN), at 1e-5 -303 instead of -0.1, at 1e-7 0; RMSProp's 10% off.
    opt = OPTIMIZERS[name]()
    runs = {}
    for dtype in (np.float16, np.float32):
        params = {"w": np.zeros(2, dtype), "s": dtype(0)}
        grads = {"w": np.full(2, g, np.float16).astype(dtype), "s": dtype(np.float16(g))}
        state = opt.init(params)
        for _ in range(3):
            updates, state = opt.update(grads, state, params)
            params = optim.apply_updates(params, updates)
        runs[dtype] = params
    assert runs[np.float16]["w"].dtype == np.float16 and type(runs[np.float16]["s"]) is np.float16
    for key in ("w", "s"):
        np.testing.assert_allclose(np.float32(runs[np.float16][key]), runs[np.float32][key],
                                   rtol=2e-3)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_zero_gradients_in_float16_give_zero_updates_not_nan(name):
    params = {"w": np.ones(3, np.float16)}
    opt = OPTIMIZERS[name]()
    updates, _ = opt.update({"w": np.zeros(3, np.float16)}, opt.init(params), params)
    expected = -0.1 * 0.01 * 1.0 if name == "adamw" else 0.0  # adamw still decays
    np.testing.assert_allclose(updates["w"], expected, rtol=1e-2)
    assert updates["w"].dtype == np.float16


Pair = collections.namedtuple("Pair", "left right")


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_structure_and_key_order_preserved(name):
    params = {"z": np.ones(2), "a": [1.0, (np.zeros(1), 2)], "m": Pair(3.0, {"y": 1.0, "b": 0.0})}
    grads = dp.tree.map(lambda p: 0.5 * p if isinstance(p, (float, np.ndarray)) else None,
                        params)
    opt = OPTIMIZERS[name]()
    state = opt.init(params)
    updates, state = opt.update(grads, state, params)
    new = optim.apply_updates(params, updates)
    for tree_ in (updates, new):
        assert list(tree_) == ["z", "a", "m"] and list(tree_["m"].right) == ["y", "b"]
        assert type(tree_["a"]) is list and type(tree_["a"][1]) is tuple
        assert type(tree_["m"]) is Pair
    assert dp.tree.structure(new) == dp.tree.structure(params)
    for sub in state:
        for tree_ in (getattr(sub, f) for f in getattr(sub, "_fields", ())):
            if isinstance(tree_, dict):
                assert list(tree_) == ["z", "a", "m"] and type(tree_["m"]) is Pair
                assert list(tree_["m"].right) == ["y", "b"]


@pytest.mark.parametrize("make", [
    lambda: optim.chain(optim.clip_by_global_norm(1.0), optim.adamw(0.1)),
    lambda: optim.sgd(optim.cosine_decay(0.1, 10), momentum=0.9, nesterov=True),
    lambda: optim.rmsprop(0.1, momentum=0.5),
])
def test_state_survives_save_and_load(tmp_path, make):
    io = pytest.importorskip("diffprog.io")  # dp.save / dp.load
    params = {"w": np.array([1.0, 2.0], np.float32), "n": 3, "f": 1.5}
    grads = {"w": np.array([0.5, -1.0], np.float32), "n": None, "f": 0.5}
    opt = make()
    state = opt.update(grads, opt.init(params), params)[1]
    io.save(tmp_path / "state.ckpt", state)
    loaded = io.load(tmp_path / "state.ckpt")
    assert dp.tree.structure(loaded) == dp.tree.structure(state)
    a, sa = opt.update(grads, state, params)
    b, sb = opt.update(grads, loaded, params)
    np.testing.assert_array_equal(a["w"], b["w"])
    assert a["f"] == b["f"] and b["w"].dtype == np.float32
    for x, y in zip(dp.tree.leaves(sa), dp.tree.leaves(sb)):
        np.testing.assert_array_equal(x, y)


@pytest.mark.gpu
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_cupy_arrays_stay_on_the_gpu_and_match_numpy(name):
    cp = require_cupy()
    host = {"w": np.array([1.0, -2.0, 0.5], np.float32), "b": np.zeros(()),
            "f": 1.5, "n": 3}
    grads = [{"w": np.array([0.5, -1.0, 2.0], np.float32), "b": np.ones(()), "f": 0.25,
              "n": None}] * 3
    to_gpu = lambda t: dp.tree.map(lambda x: cp.asarray(x) if isinstance(x, np.ndarray) else x, t)
    want, _ = run(OPTIMIZERS[name](), host, grads)
    got, state = run(OPTIMIZERS[name](), to_gpu(host), [to_gpu(g) for g in grads])
    for leaf in dp.tree.leaves((got[-1], state)):
        assert not isinstance(leaf, np.ndarray), type(leaf)
    assert type(got[-1]["w"]) is cp.ndarray and got[-1]["w"].dtype == np.float32
    np.testing.assert_allclose(got[-1]["w"].get(), want[-1]["w"], rtol=1e-6)
    np.testing.assert_allclose(got[-1]["b"].get(), want[-1]["b"], rtol=1e-12)
    assert got[-1]["f"] == pytest.approx(want[-1]["f"], rel=1e-12) and got[-1]["n"] == 3


@pytest.mark.gpu
def test_a_scheduled_rate_on_the_gpu_is_not_read_back():
    """With CuPy params the schedule's count is on their GPU and so is its value: an eager
    step does not wait for the GPU to check the rate, and a negative one makes it NaN."""
    cp = require_cupy()
    params = {"w": cp.asarray(np.array([1.0, 2.0], np.float32))}
    opt = optim.sgd(lambda count: 0.1 - 0.1 * count)
    state = opt.init(params)
    assert type(state[0].count) is cp.ndarray
    history = []
    for _ in range(3):
        updates, state = opt.update({"w": params["w"] * 0.5}, state, params)
        params = optim.apply_updates(params, updates)
        history.append(params["w"].get())
    assert params["w"].dtype == np.float32 and int(state[0].count) == 3
    np.testing.assert_array_equal(history[1], np.float32([0.95, 1.9]))
    assert np.all(np.isnan(history[2]))


@pytest.mark.gpu
def test_a_state_made_from_cupy_params_counts_on_their_gpu_and_checkpoints(tmp_path):
    """opt.init of CuPy params keeps Adam's step count on their GPU (a jitted step then has
    no host input); checkpoints move between host and GPU states either way."""
    cp = require_cupy()
    host = {"w": np.array([1.0, -2.0, 0.5], np.float32)}
    gpu = {"w": cp.asarray(host["w"])}
    opt = optim.adam(0.1)
    state = opt.init(gpu)
    assert type(state[0].count) is cp.ndarray and state[0].count.shape == ()
    assert type(opt.init(host)[0].count) is np.int64
    assert type(opt.init({"w": host["w"], "v": gpu["w"]})[0].count) is np.int64  # mixed
    for _ in range(2):
        _, state = opt.update({"w": gpu["w"] * 0.5}, state, gpu)
    dp.save(tmp_path / "gpu.ckpt", state)
    back = dp.load(tmp_path / "gpu.ckpt", like=opt.init(gpu))
    assert type(back[0].count) is cp.ndarray and int(back[0].count) == 2
    on_host = dp.load(tmp_path / "gpu.ckpt", like=opt.init(host))
    assert type(on_host[0].count) is np.int64 and on_host[0].count == 2
    dp.save(tmp_path / "host.ckpt", on_host)
    again = dp.load(tmp_path / "host.ckpt", like=opt.init(gpu))
    assert type(again[0].count) is cp.ndarray and int(again[0].count) == 2
    a = opt.update({"w": gpu["w"]}, again, gpu)[0]["w"].get()
    b = opt.update({"w": host["w"]}, on_host, host)[0]["w"]
    np.testing.assert_allclose(a, b, rtol=1e-6)


# ---------------------------------------------------------------------------- errors


def test_structure_mismatch_names_the_key_path():
    opt = optim.adam(0.1)
    params = {"layers": [{"W": np.ones(2), "b": np.ones(2)}]}
    state = opt.init(params)
    with pytest.raises(StructureError, match=r"\['layers'\]\[0\]\['b'\]"):
        opt.update({"layers": [{"W": np.ones(2)}]}, state, params)
    with pytest.raises(StructureError, match=r"grads\['layers'\]\[0\]\['W'\] has shape \(3,\)"):
        opt.update({"layers": [{"W": np.ones(3), "b": np.ones(2)}]}, state, params)
    with pytest.raises(StructureError, match=r"\['extra'\]"):
        optim.sgd(0.1).update({"w": 1.0, "extra": 1.0}, (optim.EmptyState(),), {"w": 1.0})
    with pytest.raises(StructureError, match="updates"):
        optim.apply_updates({"w": 1.0}, {"v": 1.0})


@pytest.mark.parametrize("make, why", [
    (lambda: optim.exponential_decay(0.3, 0, 0.5), "transition_steps <= 0"),
    (lambda: optim.exponential_decay(0.3, -4, 0.5, transition_begin=2), "transition_steps <= 0"),
    (lambda: optim.exponential_decay(0.3, 10, 0.0), "decay_rate is 0"),
    (lambda: optim.linear_schedule(0.3, 0.0, 0), "transition_steps <= 0"),
    (lambda: optim.linear_schedule(0.3, 0.0, -1, transition_begin=5), "transition_steps <= 0"),
])  # fmt: skip
def test_schedules_that_never_start_hold_init_value_as_optax(make, why, caplog):
    """optax's documented behaviour: transition_steps <= 0 (or a decay_rate of 0) disables
    the transition, the value is init_value at every count (said at INFO, as optax logs it),
    for a host count and a jitted one, and an optimizer takes it."""
    with caplog.at_level("INFO", logger="diffprog.optim"):
        schedule = make()
    assert why in caplog.text and "init_value" in caplog.text
    assert [schedule(k) for k in (0, 1, 7, 1000)] == [0.3] * 4 and schedule.lowest == 0.3
    opt = optim.sgd(schedule)
    step = dp.jit(lambda g, s: opt.update(g, s))
    state = opt.init({"w": 0.0})
    for _ in range(3):
        updates, state = step({"w": 1.0}, state)
        assert updates["w"] == pytest.approx(-0.3)


@pytest.mark.parametrize("make, same", [
    (lambda: optim.exponential_decay(1.0, 10, 0.5, transition_begin=-3),
     lambda: optim.exponential_decay(1.0, 10, 0.5)),
    (lambda: optim.linear_schedule(1.0, 0.0, 4, transition_begin=-1),
     lambda: optim.linear_schedule(1.0, 0.0, 4)),
])  # fmt: skip
def test_a_negative_transition_begin_counts_as_0_as_optax(make, same, caplog):
    with caplog.at_level("INFO", logger="diffprog.optim"):
        schedule = make()
    assert "transition_begin is -" in caplog.text
    assert [schedule(k) for k in range(12)] == [same()(k) for k in range(12)]


def test_bad_learning_rates_and_schedules():
    with pytest.raises(ValueError, match="learning_rate must be .*>= 0"):
        optim.adam(-1e-3)
    with pytest.raises(TypeError, match="learning_rate must be a real number"):
        optim.sgd("0.1")
    opt = optim.sgd(lambda count: "fast")
    with pytest.raises(TypeError, match="returned str 'fast' at step 0"):
        opt.update({"w": 1.0}, opt.init({"w": 0.0}))
    opt = optim.sgd(lambda count: 0.1 - 0.1 * count)
    state = opt.update({"w": 1.0}, opt.init({"w": 0.0}))[1]
    state = opt.update({"w": 1.0}, state)[1]
    with pytest.raises(ValueError, match="at step 2"):
        opt.update({"w": 1.0}, state)
    bad = [optim.constant(-1.0), optim.linear_schedule(0.1, -0.1, 10),
           optim.exponential_decay(-1.0, 10, 2.0),
           optim.exponential_decay(0.1, 10, 2.0, end_value=-1.0),
           optim.cosine_decay(0.1, 10, alpha=-0.5), optim.warmup_cosine_decay(-0.1, 1.0, 5, 10)]
    for schedule in bad:  # a built-in schedule knows how low it goes: refused when made
        with pytest.raises(ValueError, match=rf"schedule {re.escape(schedule.__name__)} takes "
                                             r"values down to -"):  # fmt: skip
            optim.adam(schedule)
    optim.sgd(optim.exponential_decay(0.1, 10, 0.5, end_value=-1.0))  # never below 0
    optim.sgd(optim.warmup_cosine_decay(-0.1, 1.0, 0, 10))  # no warm-up: init_value unused
    with pytest.raises(ValueError, match="must exceed warmup_steps"):
        optim.warmup_cosine_decay(0.0, 1.0, 10, 10)
    with pytest.raises(ValueError, match="decay_steps must be > 0"):
        optim.cosine_decay(1.0, 0)  # (optax's cosine_decay_schedule refuses it too)
    assert optim.sgd(np.float32(0.5)).update({"w": 2.0}, (optim.EmptyState(),))[0] == {"w": -1.0}
    assert optim.sgd(np.array(0.5)).update({"w": 2.0}, (optim.EmptyState(),))[0] == {"w": -1.0}
    with pytest.raises(ValueError, match="b1"):
        optim.adam(0.1, b1=1.0)


def test_wrong_state_and_gradients_of_constants():
    opt = optim.adam(0.1)
    with pytest.raises(TypeError, match="ScaleByAdamState"):
        opt.update({"w": 1.0}, (optim.EmptyState(), optim.EmptyState()), {"w": 1.0})
    with pytest.raises(TypeError, match="tuple of 2 states"):
        opt.update({"w": 1.0}, optim.sgd(0.1).init({"w": 1.0}), {"w": 1.0})
    with pytest.raises(TypeError, match=r"params\['n'\] is a constant"):
        opt.update({"n": 1.0}, opt.init({"n": 3}), {"n": 3})
    with pytest.raises(TypeError, match=r"params\['n'\] is a constant"):
        optim.apply_updates({"n": 3}, {"n": 0.5})


# ----------------------------------------------------------------------- convergence


@pytest.mark.parametrize("name, make, steps", [
    ("sgd", lambda: optim.sgd(0.3), 300),
    ("momentum", lambda: optim.sgd(0.1, momentum=0.9), 300),
    ("nesterov", lambda: optim.sgd(0.1, momentum=0.9, nesterov=True), 300),
    ("adam", lambda: optim.adam(optim.cosine_decay(0.2, 1000)), 1000),
    ("adamw", lambda: optim.adamw(optim.cosine_decay(0.2, 1000), weight_decay=1e-4), 1000),
    ("rmsprop", lambda: optim.rmsprop(optim.cosine_decay(0.05, 1000)), 1000),
    ("clip+sgd", lambda: optim.chain(optim.clip_by_global_norm(1.0), optim.sgd(0.3)), 400),
    ("warmup", lambda: optim.sgd(optim.warmup_cosine_decay(0.0, 0.3, 20, 400, 0.01)), 400),
])
def test_linear_regression_converges(name, make, steps):
    x = np.linspace(-1.0, 1.0, 32)
    y = 3.0 * x + 2.0

    def loss(p):
        return dnp.mean((p["w"] * x + p["b"] - y) ** 2)

    params = {"w": np.zeros(()), "b": 0.0, "name": "line"}
    opt = make()
    state = opt.init(params)
    grad = dp.grad(loss)
    for _ in range(steps):
        updates, state = opt.update(grad(params), state, params)
        params = optim.apply_updates(params, updates)
    assert abs(float(params["w"]) - 3.0) < 1e-2 and abs(params["b"] - 2.0) < 1e-2, params
    assert type(params["b"]) is float and params["name"] == "line"
    assert float(loss(params)) < 1e-4


# ------------------------------------------------------------- a traced learning rate


def _unrolled_loss(lr, make, steps=4):
    """The loss after `steps` updates of `make(lr)` from fixed params (meta-learning)."""
    a = np.array([[1.0, 2.0], [0.5, -1.0], [2.0, 0.3]])
    y = np.array([1.0, -2.0, 0.5])
    loss = lambda p: dnp.sum((a @ p["w"] - y) ** 2) + 0.3 * p["s"] ** 2  # noqa: E731
    params = {"w": np.array([0.2, -0.4]), "s": 0.7, "n": 3}
    opt = make(lr)
    state = opt.init(params)
    for _ in range(steps):
        updates, state = opt.update(dp.grad(loss)(params), state, params)
        params = optim.apply_updates(params, updates)
    return loss(params)


@pytest.mark.parametrize("make", [
    lambda lr: optim.sgd(lr, momentum=0.9),
    lambda lr: optim.adam(lr),
    lambda lr: optim.adamw(lr, weight_decay=0.1),
    lambda lr: optim.rmsprop(lr, momentum=0.3),
    lambda lr: optim.chain(optim.clip_by_global_norm(1.0), optim.scale(-1.0), optim.scale(lr)),
], ids=["sgd_momentum", "adam", "adamw", "rmsprop", "clip_scale"])
def test_gradient_with_respect_to_the_learning_rate_matches_central_differences(make):
    # dp.grad through sgd(lr) used to raise TracerConversionError (float() of the rate).
    h = 1e-6
    fd = (_unrolled_loss(0.05 + h, make) - _unrolled_loss(0.05 - h, make)) / (2 * h)
    got = dp.grad(lambda lr: _unrolled_loss(lr, make))(0.05)
    assert type(got) is float
    np.testing.assert_allclose(got, fd, rtol=1e-6)


def test_a_batch_of_learning_rates_and_a_jitted_rate_argument():
    # dp.vmap refused the batched rate; dp.jit recorded once per rate (a guard on float(lr)).
    def step(lr, p):
        opt = optim.adam(lr)
        updates, _ = opt.update({"w": np.full(3, 2.0, np.float32)}, opt.init(p), p)
        return optim.apply_updates(p, updates)

    p = {"w": np.zeros(3, np.float32)}
    batch = dp.vmap(step, in_axes=(0, None))(np.array([0.1, 0.2]), p)
    np.testing.assert_array_equal(batch["w"], [step(0.1, p)["w"], step(0.2, p)["w"]])
    jitted = dp.jit(step)
    for lr in (0.1, 0.2, 0.3):
        got, want = jitted(lr, p)["w"], step(lr, p)["w"]
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, want)
    assert jitted.stats["recordings"] == 1 and jitted.stats["replays"] == 2
    assert np.isnan(jitted(-0.1, p)["w"]).all()  # a traced rate is not read back: NaN
    with pytest.raises(TypeError, match="learning_rate must be a real number, got a traced "
                       r"value of shape \(2,\)"):
        dp.grad(lambda lr: optim.sgd(lr).update({"w": 1.0}, ())[0]["w"])(np.ones(2))


def test_gradient_through_clipping_a_zero_gradient_tree_is_finite():
    # Below max_norm clipping is the identity, at a zero tree too; its derivative there was
    # NaN: sqrt's infinite derivative at a norm of 0 times 0 in where's unselected branch.
    clip = optim.clip_by_global_norm(1.0)

    def clipped_sum(w):
        updates, _ = clip.update({"w": w, "f": np.zeros(2, np.float32)}, ())
        return dnp.sum(updates["w"])

    np.testing.assert_array_equal(dp.grad(clipped_sum)(np.zeros(3)), np.ones(3))
    np.testing.assert_array_equal(dp.jit(dp.grad(clipped_sum))(np.zeros(3)), np.ones(3))
    np.testing.assert_allclose(dp.grad(clipped_sum)(np.array([3.0, 4.0, 0.0])),
                               [0.032, -0.024, 0.2])  # above: 1/|w| - sum(w) w / |w|**3


@pytest.mark.parametrize("make", [
    lambda h: optim.adamw(0.05, weight_decay=h),
    lambda h: optim.sgd(0.05, momentum=h),
    lambda h: optim.sgd(0.05, momentum=h, nesterov=True),
    lambda h: optim.rmsprop(0.05, momentum=h),
    lambda h: optim.chain(optim.add_decayed_weights(h, mask={"w": True, "s": False, "n": False}),
                          optim.sgd(0.05)),
], ids=["adamw_weight_decay", "sgd_momentum", "nesterov", "rmsprop_momentum", "masked_decay"])
def test_gradient_with_respect_to_momentum_and_weight_decay(make):
    # float() of the traced hyperparameter raised TracerConversionError, as for the rate.
    h = 1e-6
    fd = (_unrolled_loss(0.3 + h, make) - _unrolled_loss(0.3 - h, make)) / (2 * h)
    np.testing.assert_allclose(dp.grad(lambda v: _unrolled_loss(v, make))(0.3), fd, rtol=1e-6)
    batch = dp.vmap(lambda v: _unrolled_loss(v, make))(np.array([0.1, 0.3]))
    np.testing.assert_allclose(batch, [_unrolled_loss(0.1, make), _unrolled_loss(0.3, make)])
    jitted = dp.jit(lambda v: _unrolled_loss(v, make))
    for v in (0.1, 0.2, 0.3):
        np.testing.assert_allclose(jitted(v), _unrolled_loss(v, make), rtol=1e-12)
    assert jitted.stats["recordings"] == 1
    assert np.isnan(jitted(-0.1))  # a traced value below 0 is not read back: NaN
