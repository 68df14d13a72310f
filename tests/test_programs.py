"""Whole user programs (loops, recursion, dicts, dataclasses, custom rules, checkpointed
blocks), their derivatives checked from outside: central differences, closed forms, and
the same program under each transform that applies (grad, jit, vmap, hessian, Tape)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp


def fd_grad(f, tree_, eps=1e-6):
    """Central differences of a scalar f w.r.t. every float leaf of tree_ (None elsewhere)."""
    leaves, struct = dp.tree.flatten(tree_)

    def at(i, value):
        return float(f(dp.tree.unflatten(struct, leaves[:i] + [value] + leaves[i + 1:])))

    out = []
    for i, leaf in enumerate(leaves):
        if isinstance(leaf, float):
            out.append((at(i, leaf + eps) - at(i, leaf - eps)) / (2 * eps))
        elif isinstance(leaf, np.ndarray) and leaf.dtype.kind == "f":
            g = np.zeros(leaf.shape)
            for j in np.ndindex(leaf.shape):
                e = np.zeros(leaf.shape)
                e[j] = eps
                g[j] = (at(i, leaf + e) - at(i, leaf - e)) / (2 * eps)
            out.append(g)
        else:
            out.append(None)
    return dp.tree.unflatten(struct, out)


def assert_tree_close(got, want, rtol=1e-7, atol=1e-10):
    got_leaves, got_def = dp.tree.flatten(got)
    want_leaves, want_def = dp.tree.flatten(want)
    assert got_def == want_def
    for g, w in zip(got_leaves, want_leaves):
        if w is None:
            assert g is None
        else:
            np.testing.assert_allclose(np.asarray(g, np.float64), np.asarray(w, np.float64),
                                       rtol=rtol, atol=atol)


def assert_leaf_types(grad, like):
    """README's rules: a Python float gets a Python float, an array an array of its dtype
    and shape, a constant None; containers and dataclasses as the input's."""
    got_leaves, got_def = dp.tree.flatten(grad)
    like_leaves, like_def = dp.tree.flatten(like)
    assert got_def == like_def
    for g, x in zip(got_leaves, like_leaves):
        if isinstance(x, float):
            assert type(g) is float
        elif isinstance(x, np.ndarray) and x.dtype.kind == "f":
            assert type(g) is np.ndarray and g.dtype == x.dtype and g.shape == x.shape
        else:
            assert g is None


# --- regressions: a pullback's cotangent for a Python float argument -----------------------
# dp.checkpoint and the custom rules pull back through dp.vjp or the user's rule, which give
# a Python float argument a Python float; the reverse sweep read its .shape and crashed.

def test_checkpoint_under_jit_python_float_argument_with_constant_cotangent():
    block = dp.checkpoint(lambda a, c: c * a)
    f = lambda a: 0.1 * block(a, 0.0)  # (d/da = 0.1 * 0.0, known when recorded)
    assert dp.grad(f)(0.9) == 0.0
    assert dp.jit(dp.grad(f))(0.9) == 0.0


def test_custom_vjp_rule_may_return_a_python_float():
    @dp.custom_vjp
    def double(x):
        return x * 2.0

    double.defvjp(lambda x: (double(x), None), lambda res, g: (2.0,))
    for x in (1.5, np.array(1.5), np.float32(1.5)):
        for grad in (dp.grad(double), dp.jit(dp.grad(double))):
            g = grad(x)
            assert g == 2.0 and type(g) is type(x) and np.result_type(g) == np.result_type(x)


def test_hessian_of_custom_jvp_function_of_python_floats():
    @dp.custom_jvp
    def f(x, y):
        return 2.0 * x + y ** 3

    f.defjvp(lambda p, t: (f(*p), 2.0 * t[0] + 3.0 * p[1] ** 2 * t[1]))  # x's part: constant
    h = dp.hessian(f, argnums=(0, 1))(1.5, 2.0)
    assert type(h[1][1]) is float
    assert_tree_close(h, ((0.0, 0.0), (0.0, 12.0)), rtol=1e-12)


# The tape holds a Python float argument as a NumPy float64 scalar; a recomputation or rule
# that saw that instead of the Python float promoted float32 values to float64 (checkpoint's
# gradients were not the forward pass's; a JVP rule's tangent was refused as float64).

def test_checkpoint_recomputes_with_python_floats_as_the_forward_pass_did():
    block = lambda x, c: c * x
    x = np.array([0.9, 0.3], np.float32)
    for f in (block, dp.checkpoint(block)):
        loss = lambda x, c, f=f: dnp.sum(f(x, c) ** 2)
        for grad in (dp.grad(loss, argnums=(0, 1)), dp.jit(dp.grad(loss, argnums=(0, 1)))):
            gx, gc = grad(x, 0.7)
            assert gx.dtype == np.float32 and type(gc) is float
            assert gc == float(np.sum(2 * (np.float32(0.7) * x) * x))  # float32 all through


def test_custom_jvp_rule_sees_python_float_primal_and_tangent_weakly_typed():
    @dp.custom_jvp
    def scale(x, c):
        return c * x

    scale.defjvp(lambda p, t: (scale(*p), p[1] * t[0] + t[1] * p[0]))  # float32 with a float
    x = np.array([0.9, 0.3], np.float32)
    custom = lambda x, c: dnp.sum(scale(x, c) ** 2)
    plain = lambda x, c: dnp.sum((c * x) ** 2)
    _, tangent = dp.jvp(custom, (x, 0.7), (np.ones(2, np.float32), 1.0))
    assert tangent.dtype == np.float32
    for transform in (lambda f: dp.grad(f, argnums=(0, 1)), lambda f: dp.jit(dp.grad(f, argnums=(0, 1))),
                      lambda f: dp.jit(dp.hessian(f, argnums=(0, 1)))):
        assert_tree_close(transform(custom)(x, 0.7), transform(plain)(x, 0.7), rtol=1e-6)
    assert type(dp.grad(custom, argnums=1)(x, 0.7)) is float


def test_custom_vjp_under_vmap_keeps_a_shared_python_float_residual_weakly_typed():
    """vmap(fwd) stacked the Python-float residual b into a float64 array, so bwd's
    2 * g * b * x was float64 for a float32 x and refused."""
    @dp.custom_vjp
    def scaled_norm(b, x):
        return b * dnp.sum(x ** 2)

    scaled_norm.defvjp(lambda b, x: (scaled_norm(b, x), (b, x)),
                       lambda res, g: (g * dnp.sum(res[1] ** 2), 2 * g * res[0] * res[1]))
    xs = np.arange(6, dtype=np.float32).reshape(2, 3) / 4
    batch = lambda b, xs: dnp.sum(dp.vmap(scaled_norm, in_axes=(None, 0))(b, xs))
    for grad in (dp.grad(batch, argnums=(0, 1)), dp.jit(dp.grad(batch, argnums=(0, 1)))):
        gb, gx = grad(0.5, xs)
        assert type(gb) is float and gx.dtype == np.float32
        assert gb == pytest.approx(float(np.sum(xs.astype(np.float64) ** 2)), rel=1e-6)
        np.testing.assert_allclose(gx, xs, rtol=1e-6)


# --- programs --------------------------------------------------------------------------------
RNG = np.random.default_rng(0)


def test_rnn_over_variable_length_sequences_with_checkpointed_dict_state():
    """A length-1 sequence makes the checkpointed cell's Python-float state a constant."""
    H = 3
    params = {"Wh": RNG.normal(size=(H, H)) * 0.4, "Wx": RNG.normal(size=(2, H)),
              "b": np.zeros(H), "v": RNG.normal(size=H), "decay": 0.9}
    seqs = [RNG.normal(size=(n, 2)) for n in (2, 1, 3)]

    def cell(p, state, x, *, gain=1.0):
        h = dnp.tanh(state["h"] @ p["Wh"] + x @ p["Wx"] + p["b"]) * gain
        return {"h": h, "c": state["c"] * p["decay"] + dnp.sum(h ** 2), "n": state["n"] + 1}

    def run(p, gain, step):
        total = 0.0
        for s in seqs:
            state = {"h": dnp.zeros(H), "c": 0.0, "n": 0}
            for t in range(len(s)):
                state = step(p, state, s[t], gain=gain)
            assert state["n"] == len(s)
            total = total + (state["h"] @ p["v"]) ** 2 + 0.1 * state["c"]
        return total

    plain = dp.grad(run, argnums=(0, 1))(params, 1.3, cell)
    assert_leaf_types(plain, (params, 1.3))
    want = (fd_grad(lambda p: run(p, 1.3, cell), params),
            fd_grad(lambda g: run(params, g, cell), 1.3))
    assert_tree_close(plain, want, rtol=1e-6)
    checkpointed = dp.grad(run, argnums=(0, 1))
    assert_tree_close(checkpointed(params, 1.3, dp.checkpoint(cell)), plain, rtol=1e-12)
    jitted = dp.jit(checkpointed, static_argnums=2)
    for _ in range(2):  # recorded, then replayed
        got = jitted(params, 1.3, dp.checkpoint(cell))
        assert_leaf_types(got, (params, 1.3))
        assert_tree_close(got, plain, rtol=1e-12)


def test_maml_second_order_and_first_order():
    params = {"w": RNG.normal(size=3), "b": 0.3, "n": 2}
    xs, ys, xq, yq = RNG.normal(size=(5, 3)), RNG.normal(size=5), RNG.normal(size=(4, 3)), RNG.normal(size=4)

    def loss(p, x, y):
        return dnp.mean((dnp.tanh(x @ p["w"] + p["b"]) - y) ** 2)

    def adapt(p, first_order):
        for _ in range(3):
            g = dp.grad(loss)(p, xs, ys)
            if first_order:
                g = dp.stop_gradient(g)
            p = {k: p[k] if g[k] is None else p[k] - 0.1 * g[k] for k in p}
        return p

    maml = lambda p, first_order=False: loss(adapt(p, first_order), xq, yq)
    g = dp.grad(maml)(params)
    assert_leaf_types(g, params)
    assert_tree_close(g, fd_grad(maml, params), rtol=1e-6)
    assert_tree_close(dp.grad(maml)(params, True), dp.grad(loss)(adapt(params, False), xq, yq))
    step = dp.jit(dp.grad(maml))
    step(params)
    assert_tree_close(step(params), g, rtol=1e-12)


def test_implicit_fixed_point_custom_vjp_matches_unrolled():
    n = 4
    A = RNG.normal(size=(n, n)) * 0.2

    def solve(theta, A):
        x = dnp.zeros(n)
        while True:  # a Python loop on the values: not differentiated through by the rule
            new = dnp.tanh(A @ x + theta)
            if dnp.max(dnp.abs(new - x)) < 1e-14:
                return new
            x = new

    @dp.custom_vjp
    def fixed_point(theta, A):
        return solve(dp.stop_gradient(theta), dp.stop_gradient(A))

    def fwd(theta, A):
        x = fixed_point(theta, A)
        return x, (x, theta, A)

    def bwd(res, g):  # x = tanh(A x + theta): (I - A^T D) u = g
        x, theta, A = res
        d = 1 - dnp.tanh(A @ x + theta) ** 2
        w = d * dnp.linalg.solve(dnp.eye(n) - A.T * d[None, :], g)
        return w, dnp.outer(w, x)

    fixed_point.defvjp(fwd, bwd)
    c, theta = RNG.normal(size=n), RNG.normal(size=n)
    implicit = lambda t, A: dnp.sum(c * fixed_point(t, A) + fixed_point(t, A) ** 2)
    unrolled = lambda t, A: dnp.sum(c * solve(t, A) + solve(t, A) ** 2)
    g = dp.grad(implicit, argnums=(0, 1))(theta, A)
    assert_tree_close(g, dp.grad(unrolled, argnums=(0, 1))(theta, A), rtol=1e-9, atol=1e-12)
    assert_tree_close(g[0], fd_grad(lambda t: unrolled(t, A), theta), rtol=1e-6)
    hess = dp.jacrev(dp.grad(implicit))(theta, A)  # reverse over reverse: a custom_vjp
    assert_tree_close(hess, dp.hessian(unrolled)(theta, A), rtol=1e-7, atol=1e-10)


@dp.tree.register_dataclass
@dataclasses.dataclass(frozen=True)
class Dense:
    W: np.ndarray
    b: np.ndarray
    scale: float
    depth: int = dataclasses.field(default=2, metadata={"static": True})


def test_dataclass_model_gradient_mirrors_its_input():
    model = {"layer": Dense(RNG.normal(size=(3, 3)) * 0.5, np.zeros(3, np.float32), 1.5),
             "head": (RNG.normal(size=3), 7)}
    x, y = RNG.normal(size=(4, 3)), RNG.normal(size=4)

    def loss(m):
        h = x
        for _ in range(m["layer"].depth):
            h = dnp.tanh(h @ m["layer"].W + m["layer"].b) * m["layer"].scale
        return dnp.mean((h @ m["head"][0] - y) ** 2)

    g = dp.grad(loss)(model)
    assert type(g["layer"]) is Dense and g["layer"].depth == 2
    assert_leaf_types(g, model)
    assert_tree_close(g, fd_grad(loss, model), rtol=1e-5, atol=1e-7)
    step = dp.jit(dp.grad(loss))
    step(model)
    assert_tree_close(step(model), g, rtol=1e-12)
    deeper = {**model, "layer": dataclasses.replace(model["layer"], depth=3)}  # a new signature
    assert_tree_close(step(deeper), dp.grad(loss)(deeper), rtol=1e-12)


def test_gaussian_process_marginal_likelihood_closed_form():
    X = np.sort(RNG.uniform(-2, 2, size=8))
    y = np.sin(X) + 0.1 * RNG.normal(size=8)

    def nll(h):
        ell, sf, sn = dnp.exp(h["log_ell"]), dnp.exp(h["log_sf"]), dnp.exp(h["log_sn"])
        d = X[:, None] - X[None, :]
        K = sf ** 2 * dnp.exp(-0.5 * d ** 2 / ell ** 2) + sn ** 2 * dnp.eye(8)
        L = dnp.linalg.cholesky(K)
        alpha = dnp.linalg.solve(L.T, dnp.linalg.solve(L, y))
        return 0.5 * y @ alpha + dnp.sum(dnp.log(dnp.diagonal(L)))

    h = {"log_ell": 0.1, "log_sf": -0.2, "log_sn": np.array(-1.5)}
    g = dp.grad(nll)(h)
    assert_leaf_types(g, h)
    ell, sf, sn = np.exp(0.1), np.exp(-0.2), np.exp(-1.5)
    d = X[:, None] - X[None, :]
    Kf = sf ** 2 * np.exp(-0.5 * d ** 2 / ell ** 2)
    Kinv = np.linalg.inv(Kf + sn ** 2 * np.eye(8))
    M = np.outer(Kinv @ y, Kinv @ y) - Kinv  # d nll / d theta = -tr(M dK/dtheta) / 2
    dK = {"log_ell": Kf * d ** 2 / ell ** 2, "log_sf": 2 * Kf, "log_sn": 2 * sn ** 2 * np.eye(8)}
    assert_tree_close(g, {k: -0.5 * np.sum(M * dK[k]) for k in dK}, rtol=1e-9)
    dp.testing.check_grads(nll, (h,), order=2)


def test_newton_solve_with_jacfwd_inside_matches_implicit_function_theorem():
    def F(x, a):
        return dnp.array([x[0] ** 3 + x[1] - a, x[0] - dnp.sin(x[1]) * a - 0.5])

    def newton(a):
        x = np.array([1.0, 0.0])
        for _ in range(50):
            dx = dnp.linalg.solve(dp.jacfwd(F)(x, a), -F(x, a))
            x = x + dx
            if dnp.max(dnp.abs(dx)) < 1e-13:
                break
        return x

    a = 1.7
    x = newton(a)
    ift = -np.linalg.solve(dp.jacfwd(F)(x, a), dp.jacfwd(F, argnums=1)(x, a))
    np.testing.assert_allclose(dp.jacrev(newton)(a), ift, rtol=1e-8)
    np.testing.assert_allclose(dp.jacfwd(newton)(a), ift, rtol=1e-8)
    L = lambda a: dnp.sum(newton(a) ** 2)
    g = dp.grad(L)(a)
    assert type(g) is float
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        step = dp.jit(dp.grad(L))
        step(a)
        assert step(a) == pytest.approx(g, rel=1e-10)
        assert step(1.9) == pytest.approx(dp.grad(L)(1.9), rel=1e-10)  # another path's guards


def test_bouncing_ball_jacobian_matches_central_differences_and_jit_guards():
    """Walls as `if` on the state, written in place: away from event times the Jacobian of
    the final position is the finite-difference one; jit replays take each path's guards."""
    def simulate(v0, dt=0.01, steps=150, e=0.9):
        x = dnp.array([0.5, 0.5])
        v = dnp.zeros(2)
        v[...] = v0
        for _ in range(steps):
            v[1] = v[1] - dt * 9.81
            x = x + dt * v
            for k in range(2):
                if x[k] < 0.0:
                    x[k], v[k] = -x[k], -e * v[k]
                elif x[k] > 1.0:
                    x[k], v[k] = 2.0 - x[k], -e * v[k]
        return x

    v0 = np.array([1.3, 2.1])
    J = dp.jacrev(simulate)(v0)
    fd = np.stack([(simulate(v0 + 1e-7 * d) - simulate(v0 - 1e-7 * d)) / 2e-7 for d in np.eye(2)],
                  axis=1)
    np.testing.assert_allclose(J, fd, rtol=1e-5)
    np.testing.assert_allclose(dp.jacfwd(simulate)(v0), J, rtol=1e-10)
    step = dp.jit(dp.jacrev(simulate))
    for v in (v0, np.array([0.2, 0.1]), v0):  # another path, then the first one replayed
        np.testing.assert_allclose(step(v), dp.jacrev(simulate)(v), rtol=1e-10)


def test_dp_sgd_per_example_gradients_vmap_equal_a_python_loop():
    params = {"W1": RNG.normal(size=(4, 5)) * 0.5, "b1": np.zeros(5),
              "W2": RNG.normal(size=(5, 3)) * 0.5, "b2": np.zeros(3)}
    xs, labels = RNG.normal(size=(10, 4)), RNG.integers(0, 3, size=10)
    noise = dp.tree.map(lambda a: RNG.normal(size=a.shape), params)

    def loss(p, x, label):
        logits = dnp.maximum(x @ p["W1"] + p["b1"], 0.0) @ p["W2"] + p["b2"]
        return -dp.nn.log_softmax(logits)[label]

    def private_grad(p, xs, labels, noise, clip=1.0):
        each = dp.vmap(dp.grad(loss), in_axes=(None, 0, 0))(p, xs, labels)
        norms = dnp.sqrt(sum(dnp.sum(a.reshape(len(xs), -1) ** 2, axis=1) for a in each.values()))
        scale = dnp.minimum(1.0, clip / norms)
        return {k: (dnp.sum(a * scale.reshape((-1,) + (1,) * (a.ndim - 1)), axis=0) + noise[k])
                / len(xs) for k, a in each.items()}

    want = dp.tree.map(np.zeros_like, params)
    for x, label in zip(xs, labels):
        g = dp.grad(loss)(params, x, label)
        norm = np.sqrt(sum(np.sum(a ** 2) for a in g.values()))
        want = {k: want[k] + g[k] * min(1.0, 1.0 / norm) for k in want}
    want = {k: (want[k] + noise[k]) / len(xs) for k in want}
    assert_tree_close(private_grad(params, xs, labels, noise), want, rtol=1e-12)
    step = dp.jit(private_grad)
    step(params, xs, labels, noise)
    assert_tree_close(step(params, xs, labels, noise), want, rtol=1e-12)


def test_gan_alternating_updates_jit_equal_eager():
    G = {"W": RNG.normal(size=(2, 2)), "b": np.zeros(2)}
    D = {"w": RNG.normal(size=2), "c": 0.0}
    real, z = RNG.normal(size=(16, 2)) + 2.0, RNG.normal(size=(16, 2))
    disc = lambda D, x: dnp.tanh(x @ D["w"] + D["c"])
    fake = lambda G: z @ G["W"] + G["b"]

    def d_loss(D, G):
        return (dnp.mean(dnp.logaddexp(0.0, -disc(D, real)))
                + dnp.mean(dnp.logaddexp(0.0, disc(D, dp.stop_gradient(fake(G))))))

    def g_loss(G, D):
        return dnp.mean(dnp.logaddexp(0.0, -disc(D, fake(G))))

    assert_tree_close(dp.grad(d_loss)(D, G), fd_grad(lambda d: d_loss(d, G), D), rtol=1e-6)
    assert_tree_close(dp.grad(g_loss)(G, D), fd_grad(lambda g: g_loss(g, D), G), rtol=1e-6)
    assert_tree_close(dp.grad(d_loss, argnums=1)(D, G), dp.tree.map(np.zeros_like, G))
    opt_d, opt_g = dp.optim.adam(1e-2), dp.optim.sgd(1e-2, momentum=0.9)

    def step(G, D, state_g, state_d):
        updates, state_d = opt_d.update(dp.grad(d_loss)(D, G), state_d, D)
        D = dp.optim.apply_updates(D, updates)
        updates, state_g = opt_g.update(dp.grad(g_loss)(G, D), state_g, G)
        return dp.optim.apply_updates(G, updates), D, state_g, state_d

    eager = jitted = (G, D, opt_g.init(G), opt_d.init(D))
    jit_step = dp.jit(step)
    for _ in range(4):
        eager, jitted = step(*eager), jit_step(*jitted)
    assert_tree_close(jitted, eager, rtol=1e-12)
    assert type(jitted[1]["c"]) is float
