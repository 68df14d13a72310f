"""The benchmark workloads: their programs, inputs, and hand-written forward + backward.

Owns the math of W1-W6 written once: `chain` (W1, W6) and `loop` (W2) take the array module
as `xp` (diffprog.numpy, NumPy, CuPy, autograd.numpy, jax.numpy or torch all fit), `mlp_loss`
(W3-W5) takes it too. The hand-written versions compute value and gradient (and the MLP's
Hessian-vector product) with explicit NumPy/CuPy calls: one call per forward op and only the
calls each local derivative needs, with no Python bookkeeping: the physical limit of a tape
over the same array library. The diffprog implementations live in `impls.py`, peers in
`peers.py`. Imports: numpy only (the array module comes in as an argument).
"""

from __future__ import annotations

import numpy as np

# --- W1 / W6: a chain of elementwise ops --------------------------------------------------
# One cycle is 8 ops: sin, *2, +1, exp, log, -1, tanh, *0.5. The map x -> 0.5 tanh(2 sin x)
# has a neutral fixed point at 0, so values and the gradient decay only polynomially: after
# 10^6 ops they are still normal floats (a contracting chain would underflow to denormals,
# and time those instead of the tape).
CYCLE = 8


def chain(x, n, xp):
    """`n` elementwise ops (a multiple of 8) on `x`; `xp` is the array module."""
    if n % CYCLE:
        raise ValueError(f"the chain length must be a multiple of {CYCLE}, got {n}")
    for _ in range(n // CYCLE):
        x = xp.sin(x)
        x = x * 2.0
        x = x + 1.0
        x = xp.exp(x)
        x = xp.log(x)
        x = x - 1.0
        x = xp.tanh(x)
        x = x * 0.5
    return x


def chain_input(size, xp=np):
    return xp.asarray(np.linspace(-0.5, 1.0, size))


def chain_hand(x, n, xp):
    """(sum(chain(x)), its gradient), forward and backward written out by hand."""
    saved = []
    for _ in range(n // CYCLE):
        s = x
        x = xp.sin(x)
        x = x * 2.0
        x = x + 1.0
        e = x = xp.exp(x)
        x = xp.log(x)
        x = x - 1.0
        t = x = xp.tanh(x)
        x = x * 0.5
        saved.append((s, e, t))
    value = x.sum()
    g = xp.ones_like(x)
    for s, e, t in reversed(saved):
        g = g * 0.5  # *0.5
        g = g * (1.0 - t * t)  # tanh; -1 passes g through
        g = g / e  # log (its input is exp's output)
        g = g * e  # exp; +1 passes g through
        g = g * 2.0  # *2
        g = g * xp.cos(s)  # sin
    return value, g


# --- W2: a Python loop on a 0-d value with a data-dependent if ----------------------------
# Both branches run about equally often (the orbit of 0.3 crosses 1.5 every few steps) and
# the derivative stays a normal float (about -2e-4 after 1000 iterations).
def loop(x, n, xp):
    """`n` iterations, one op each: sin above 1.5, times 1.5 below."""
    for _ in range(n):
        if x > 1.5:
            x = xp.sin(x)
        else:
            x = x * 1.5
    return x


def loop_input(xp=np):
    return xp.asarray(np.float64(0.3))


def loop_hand(x, n, xp):
    """(loop(x), d loop / dx) by hand: the branch taken is remembered per iteration."""
    saved = []
    for _ in range(n):
        if x > 1.5:
            saved.append(x)
            x = xp.sin(x)
        else:
            saved.append(None)
            x = x * 1.5
    g = xp.ones_like(x)
    for s in reversed(saved):
        g = g * 1.5 if s is None else g * xp.cos(s)
    return x, g


# --- W3 / W4 / W5: a tanh MLP with softmax cross-entropy over dict params ------------------
def layer_names(sizes):
    return [f"layer{i}" for i in range(1, len(sizes))]


def mlp_problem(sizes, batch, dtype, xp=np, seed=0):
    """(params, x, labels, rows, tangent): nested dict params {'layer1': {'W', 'b'}, ...},
    a batch of inputs, integer labels, `arange(batch)` for the gather, and a random
    direction shaped like params (for the HVP)."""
    rng = np.random.default_rng(seed)

    def rand_like_params(scale_w):
        return {
            name: {
                "W": xp.asarray((rng.normal(size=(m, n)) * scale_w(m)).astype(dtype)),
                "b": xp.asarray((0.1 * rng.normal(size=n)).astype(dtype)),
            }
            for name, m, n in zip(layer_names(sizes), sizes[:-1], sizes[1:])
        }

    params = rand_like_params(lambda m: 1.0 / np.sqrt(m))
    x = xp.asarray(rng.normal(size=(batch, sizes[0])).astype(dtype))
    labels = xp.asarray(rng.integers(0, sizes[-1], size=batch))
    rows = xp.asarray(np.arange(batch))
    tangent = rand_like_params(lambda m: 1.0)
    return params, x, labels, rows, tangent


def mlp_loss(params, x, labels, rows, xp, log_softmax):
    """Mean softmax cross-entropy of a tanh MLP; `xp` supplies tanh and mean."""
    names = sorted(params)  # layer1, layer2, ... (fewer than 10 layers)
    h = x
    for name in names[:-1]:
        h = xp.tanh(h @ params[name]["W"] + params[name]["b"])
    z = h @ params[names[-1]]["W"] + params[names[-1]]["b"]
    return -xp.mean(log_softmax(z)[rows, labels])


def _softmax_parts(z, xp):
    m = z.max(axis=1, keepdims=True)
    e = xp.exp(z - m)
    s = e.sum(axis=1, keepdims=True)
    return m, e, s


def _mlp_forward(params, x, xp):
    names = sorted(params)
    acts = [x]
    for name in names[:-1]:
        acts.append(xp.tanh(acts[-1] @ params[name]["W"] + params[name]["b"]))
    z = acts[-1] @ params[names[-1]]["W"] + params[names[-1]]["b"]
    return names, acts, z


def mlp_hand(params, x, labels, rows, xp):
    """(loss, grads): the MLP's forward and its backpropagation written by hand."""
    names, acts, z = _mlp_forward(params, x, xp)
    m, e, s = _softmax_parts(z, xp)
    loss = -(z[rows, labels] - m[:, 0] - xp.log(s[:, 0])).mean()
    d = e / s  # softmax
    d[rows, labels] -= 1.0
    d *= 1.0 / x.shape[0]
    grads = {}
    for i in range(len(names) - 1, -1, -1):
        a, w = acts[i], params[names[i]]["W"]
        grads[names[i]] = {"W": a.T @ d, "b": d.sum(axis=0)}
        if i:  # x is data: no adjoint for it
            d = (d @ w.T) * (1.0 - a * a)
    return loss, {name: grads[name] for name in names}


def mlp_hvp_hand(params, x, labels, rows, v, xp):
    """(loss, H v): the exact Hessian-vector product by Pearlmutter's R-operator, written
    by hand: a forward pass of directional derivatives R{.} alongside the forward pass, then
    the backward pass and its R{.} together."""
    names, acts, z = _mlp_forward(params, x, xp)
    n = len(names)
    # R-forward: Rz_l = Ra_{l-1} W_l + a_{l-1} V_l + v_l, Ra_l = (1 - a_l^2) Rz_l.
    racts = [None]
    for i in range(n):
        rz = acts[i] @ v[names[i]]["W"] + v[names[i]]["b"]
        if i:
            rz = rz + racts[i] @ params[names[i]]["W"]
        if i < n - 1:
            a = acts[i + 1]
            racts.append((1.0 - a * a) * rz)
    m, e, s = _softmax_parts(z, xp)
    loss = -(z[rows, labels] - m[:, 0] - xp.log(s[:, 0])).mean()
    p = e / s
    inv_b = 1.0 / x.shape[0]
    d = p.copy()
    d[rows, labels] -= 1.0
    d *= inv_b
    rd = p * (rz - (p * rz).sum(axis=1, keepdims=True)) * inv_b  # R{softmax} / batch
    hv = {}
    for i in range(n - 1, -1, -1):
        a, ra, w, vw = acts[i], racts[i], params[names[i]]["W"], v[names[i]]["W"]
        rgw = a.T @ rd if ra is None else ra.T @ d + a.T @ rd
        hv[names[i]] = {"W": rgw, "b": rd.sum(axis=0)}
        if i:
            da = d @ w.T
            rda = rd @ w.T + d @ vw.T
            d, rd = da * (1.0 - a * a), rda * (1.0 - a * a) - 2.0 * da * a * ra
    return loss, {name: hv[name] for name in names}
