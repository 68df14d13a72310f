"""Matrix-product forms under dp.jit (compile.layout): both forms, forced in turn, give eager's
results to float rounding (float64 and float32, broadcasting, both modes, second order), the
column-major values they make flow through fused kernels and NumPy's ufuncs, readers that
expect the recorded layout and the outputs get it back, and the timing's choice."""

from __future__ import annotations

import numpy as np
import pytest
from backends import assert_fused_close

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.compile import kernels, layout

pytestmark = pytest.mark.skipif(not kernels.AVAILABLE, reason="numba is not installed")


def mlp(p, x):
    """Two tanh layers and a squared loss: products whose results feed elementwise readers
    (bias adds, tanh, the backward pass's products with 1 - h * h)."""
    h = dnp.tanh(x @ p["W1"] + p["b1"])
    h = dnp.tanh(h @ p["W2"] + p["b2"][:, None].T)  # a (1, n) bias: another broadcast
    return dnp.sum((h @ p["W3"]) ** 2)


def problem(dtype):
    rng = np.random.default_rng(0)
    p = {"W1": rng.normal(size=(24, 40)) / 5, "b1": rng.normal(size=40),
         "W2": rng.normal(size=(40, 48)) / 6, "b2": rng.normal(size=48),
         "W3": rng.normal(size=(48, 36)) / 7}  # fmt: skip
    return {k: v.astype(dtype) for k, v in p.items()}, rng.normal(size=(32, 24)).astype(dtype)


def replays_like_eager(f, *args):
    """`f` jitted: a recording and two replays equal eager's results to float rounding, with
    eager's dtypes and C/F contiguity; returns the replay's source and the number of copies
    back to a recorded layout in it."""
    jitted = dp.jit(f)
    want = f(*args)
    for _ in range(3):
        got = jitted(*args)
        for g, w in zip(dp.tree.leaves(got), dp.tree.leaves(want)):
            g, w = np.asarray(g), np.asarray(w)
            assert g.dtype == w.dtype and g.shape == w.shape
            assert g.flags.c_contiguous == w.flags.c_contiguous
            assert g.flags.f_contiguous == w.flags.f_contiguous
            assert_fused_close(g, w)
    assert jitted.stats["replays"] == 2
    lowered = jitted.lower(*args)
    copies = [n for n in lowered.graph.body if n.prim.name == "ascontiguousarray"]
    return lowered.source, len(copies)


@pytest.fixture(autouse=True)
def small_products(monkeypatch):
    """The test's products (~60k-200k flops) count as big enough to choose a form for."""
    monkeypatch.setattr(layout, "MIN_FLOPS", 10_000)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("form", ["plain", "transposed"])
def test_both_forms_equal_eager(monkeypatch, dtype, form):
    monkeypatch.setenv("DIFFPROG_MATMUL_FORM", form)
    p, x = problem(dtype)
    source, copies = replays_like_eager(dp.value_and_grad(mlp), p, x)
    # every product but those whose results are outputs (the dWs); no copy needed
    assert source.count(".T).T") == (5 if form == "transposed" else 0), source
    assert copies == 0


def test_forward_mode_and_second_order_with_transposed_products(monkeypatch):
    monkeypatch.setenv("DIFFPROG_MATMUL_FORM", "transposed")
    p, x = problem(np.float64)
    t = {k: np.cos(np.arange(v.size)).reshape(v.shape) for k, v in p.items()}
    loss = lambda p: mlp(p, x)
    replays_like_eager(lambda p, t: dp.jvp(loss, (p,), (t,)), p, t)
    replays_like_eager(lambda p, t: dp.jvp(dp.grad(loss), (p,), (t,)), p, t)  # an HVP
    eps, k = 1e-6, "W2"  # the HVP against central differences of the jitted gradient
    grad = dp.jit(dp.grad(loss))
    hvp = dp.jit(lambda p, t: dp.jvp(dp.grad(loss), (p,), (t,))[1])(p, t)[k]
    plus = grad({n: v + eps * t[n] for n, v in p.items()})[k]
    minus = grad({n: v - eps * t[n] for n, v in p.items()})[k]
    np.testing.assert_allclose(hvp, (plus - minus) / (2 * eps), rtol=1e-5, atol=1e-7)


def test_other_readers_and_outputs_get_the_recorded_layout(monkeypatch):
    """An F value spreads through elementwise ops; a reshape, a getitem and the outputs read
    it as recorded (one copy each), an elementwise op mixing it with a C array gives C.
    (Products whose F results would reach such readers keep the plain form: made
    candidates here, to test the copies back.)"""
    monkeypatch.setenv("DIFFPROG_MATMUL_FORM", "transposed")
    monkeypatch.setattr(layout, "_stays_inside", lambda *args: True)
    rng = np.random.default_rng(1)
    a, b, c = rng.normal(size=(30, 40)), rng.normal(size=(40, 50)), rng.normal(size=(30, 50))

    def f(a, b, c):
        y = dnp.exp(a @ b * 0.1) + 1.0  # F through a fused kernel
        return y.reshape(-1)[::7], y[3], y * c, dnp.sin(y)

    source, copies = replays_like_eager(f, a, b, c)
    assert ".T).T" in source and copies == 2, source  # one for both views, one for sin(y)


@pytest.mark.parametrize("reader, transposed", [
    (lambda y: (y, dnp.tanh(y)), 0),  # the product is an output
    (lambda y: dnp.exp(dnp.tanh(y) + 1.0), 0),  # an elementwise result of it is
    (lambda y: dnp.sum(dnp.tanh(y).reshape(-1)[::3]), 0),  # a reshape reads one
    (lambda y: dnp.sum(dnp.tanh(y) @ y.T, axis=0), 2)])  # fmt: skip
def test_only_products_whose_f_results_need_no_copy_change_form(monkeypatch, reader, transposed):
    monkeypatch.setenv("DIFFPROG_MATMUL_FORM", "transposed")
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(30, 40)), rng.normal(size=(40, 50))
    source, copies = replays_like_eager(lambda a, b: reader(a @ b), a, b)
    assert source.count(".T).T") == transposed and copies == 0, source


def test_fused_kernel_loops_and_stores_in_f_order(monkeypatch):
    monkeypatch.setenv("DIFFPROG_MATMUL_FORM", "transposed")
    rng = np.random.default_rng(3)
    a, b, v = rng.normal(size=(30, 40)), rng.normal(size=(40, 50)), rng.normal(size=50)

    def f(a, b, v):  # a bias add on an F product, and (backward) its sum over rows
        return dnp.sum((dnp.tanh((a @ b) * 2.0 + v) @ b.T) ** 2)

    f = dp.value_and_grad(f, argnums=(0, 2))
    graph = dp.jit(f).lower(a, b, v).graph
    fused = [n for n in graph.body if type(n.prim).__name__ == "Fused"]
    forward = fused[0].prim.source
    assert fused[0].outs[0].layout == "F" and ".T\n" in forward, forward
    assert forward.index("for i1") < forward.index("for i0"), forward  # rows innermost
    summing = [n.prim.source for n in fused if "acc" in n.prim.source]
    assert summing and all(s.index("acc") < s.index("for i0") for s in summing), summing
    replays_like_eager(f, a, b, v)


def test_timing_chooses_and_caches(monkeypatch):
    monkeypatch.delenv("DIFFPROG_MATMUL_FORM", raising=False)
    monkeypatch.setattr(layout, "_timed", {})
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(64, 80)), rng.normal(size=(80, 96))
    f = lambda a, b: dnp.sum(dnp.tanh(a @ b), axis=0)
    replays_like_eager(f, a, b)
    ((plain, transposed),) = layout._timed.values()
    assert 0 < plain < 1e-3 and 0.1 < transposed / plain < 10
    key = next(iter(layout._timed))
    for forced, marker in ((0.5, True), (2.0, False)):  # known times decide
        layout._timed[key] = (1e-5, forced * 1e-5)
        assert (".T).T" in dp.jit(f).lower(a, b).source) == marker


def test_a_readers_strided_read_is_charged_to_the_form_that_causes_it(monkeypatch):
    """A product multiplied by an F operand of its shape: its transposed form, 10% slower
    here, is kept when reading across rows costs more than that, not when it costs nothing;
    either way the replay equals eager."""
    monkeypatch.delenv("DIFFPROG_MATMUL_FORM", raising=False)
    monkeypatch.setattr(layout, "_timed", {})
    monkeypatch.setattr(layout, "_across", {})
    monkeypatch.setattr(layout, "ACROSS_SAMPLE", 1024)  # 64x96: a 32x32 sample's time, scaled
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(64, 80)), rng.normal(size=(80, 96))
    h = np.asfortranarray(rng.normal(size=(64, 96)))
    f = lambda a, b, h: dnp.sum(dnp.tanh((a @ b) * h), axis=0)
    replays_like_eager(f, a, b, h)
    (key,), (shape_key,) = layout._timed, layout._across  # both measured once
    assert 0 < layout._across[shape_key] < 1e-3
    layout._timed[key] = (1e-5, 1.1e-5)
    for across, transposed in ((1e-5, True), (1e-9, False)):
        layout._across[shape_key] = across
        assert (".T).T" in dp.jit(f).lower(a, b, h).source) == transposed
        replays_like_eager(f, a, b, h)


def test_the_charge_follows_elementwise_results_and_skips_layouts_not_known_yet(monkeypatch):
    """(a @ b + c @ d) * h with h F: the first product's sum meets h one node further on (its
    direct reader meets only the second product, whose layout is not decided yet); the
    second then meets the first. Both take the form h needs when strided reads cost more
    than the form's 5%, both the faster one when they cost nothing."""
    monkeypatch.delenv("DIFFPROG_MATMUL_FORM", raising=False)
    monkeypatch.setattr(layout, "_timed", {})
    monkeypatch.setattr(layout, "_across", {})
    rng = np.random.default_rng(6)
    a, b, c, d = (rng.normal(size=s) for s in ((64, 80), (80, 96), (64, 70), (70, 96)))
    h = np.asfortranarray(rng.normal(size=(64, 96)))
    f = lambda a, b, c, d, h: dnp.sum(dnp.tanh((a @ b + c @ d) * h), axis=0)
    replays_like_eager(f, a, b, c, d, h)
    assert len(layout._timed) == 2 and len(layout._across) == 1
    for key in layout._timed:
        layout._timed[key] = (1e-5, 1.05e-5)
    for across, transposed in ((1e-5, 2), (1e-9, 0)):
        layout._across[next(iter(layout._across))] = across
        assert dp.jit(f).lower(a, b, c, d, h).source.count(".T).T") == transposed
        replays_like_eager(f, a, b, c, d, h)


def test_a_bad_override_is_named(monkeypatch):
    monkeypatch.setenv("DIFFPROG_MATMUL_FORM", "fast")
    a = np.ones((40, 40))
    with pytest.raises(ValueError, match="DIFFPROG_MATMUL_FORM='fast'.*'plain', 'transposed'"):
        dp.jit(lambda a: dnp.tanh(a @ a)).lower(a)


@pytest.mark.parametrize("f", [lambda x: dnp.dot(x, x), lambda x: x @ x * 2.0 + dnp.sum(x),
                               lambda x: dnp.sin(dnp.dot(x, x))])  # fmt: skip
def test_a_product_of_vectors_stays_a_scalar(f):
    """A product whose result has no order (a scalar, a vector) is not given one: its
    'copy back to the recorded layout' (np.ascontiguousarray) made the scalar x @ x an array
    of shape (1,) in every replay."""
    x = np.array([0.3, -0.2, 0.5])
    jitted, want = dp.jit(f), f(x)
    for _ in range(3):
        got = jitted(x)
        assert type(got) is type(want) and np.shape(got) == np.shape(want) == ()
        np.testing.assert_allclose(got, want, rtol=1e-14)
