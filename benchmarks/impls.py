"""diffprog's and the hand-written implementations of each workload, as `harness.Impl`s.

Owns the three ways diffprog is timed:
- plain tape mode: `dp.value_and_grad(f)(x)`, a first-order backward pass over raw arrays;
- graph-extension mode: the same call made while an outer `dp.Tape` watches the inputs, so
  the inner backward pass runs on traced values and is itself recorded, as when the gradient
  is later differentiated again. The outer tape's gradient is never taken (that would be a
  second backward pass, not the cost of recording the first): what is measured is exactly
  "the gradient computed with its backward pass recorded". `dp.Tape` rather than `dp.vjp`,
  because vjp copies its outputs, a cost that is not part of recording;
- static replay: `dp.jit(dp.value_and_grad(f))(x)` after its first call, which records,
  optimizes and compiles the graph (that first call's time is reported, `first_call_s`); on
  CuPy also with `cuda_graph=False` (role 'jit_ops': one launch per kernel, no CUDA graph).
Imports: numpy, diffprog and the sibling benchmark modules.
"""

from __future__ import annotations

import time
from typing import Any

from harness import Impl
from workloads import chain, chain_hand, loop, loop_hand, mlp_hand, mlp_hvp_hand, mlp_loss

import diffprog as dp
import diffprog.numpy as dnp


def device_sync(xp: Any):
    """The `Impl.sync` for arrays of module `xp`: a stream synchronize on CuPy, else none."""
    if xp.__name__ != "cupy":
        return lambda out: None
    stream = xp.cuda.get_current_stream
    return lambda out: stream().synchronize()


def hand_name(xp: Any) -> str:
    return "hand-written CuPy" if xp.__name__ == "cupy" else "hand-written NumPy"


def _recorded(value_and_grad_f, *args: Any) -> Any:
    """value_and_grad_f(*args) with its backward pass recorded by an outer tape."""
    with dp.Tape() as outer:
        watched = outer.watch(args)
        out = value_and_grad_f(*watched)
    return dp.stop_gradient(out)


def jitted(fn, *args: Any, cuda_graph: bool = True) -> tuple[Any, dict]:
    """`dp.jit(fn)` after its first call on `args`, and what to report of it: that call's
    time (record, optimize, compile), and on CuPy whether its replays launch a CUDA graph
    (two replays made here: the second captures it) or why not."""
    j = dp.jit(fn, cuda_graph=cuda_graph)
    start = time.perf_counter()
    j(*args)
    info: dict[str, Any] = {"first_call_s": time.perf_counter() - start}
    leaf = next(iter(dp.tree.leaves(args)), None)
    if type(leaf).__module__.startswith("cupy") and cuda_graph:
        j(*args)
        j(*args)
        info["cuda_graph"] = "launched" if j.stats["graph_replays"] else j.last_uncaptured_reason
    return j, info


def diffprog_pair(f, args: tuple, xp: Any, jit: bool = True) -> list[Impl]:
    """diffprog in plain tape mode, in graph-extension mode and (if `jit`) replayed by dp.jit,
    on value_and_grad(f)(*args)."""
    vg = dp.value_and_grad(f)
    sync = device_sync(xp)
    pair = [
        Impl("diffprog tape", lambda: vg(*args), role="tape", sync=sync),
        Impl("diffprog graph extension", lambda: _recorded(vg, *args), role="graph", sync=sync),
    ]
    if not jit:
        return pair
    jvg, info = jitted(vg, *args)
    pair.append(Impl("diffprog jit", lambda: jvg(*args), role="jit", sync=sync, info=info))
    if xp.__name__ == "cupy":  # the same replay launched op by op: what the CUDA graph saves
        plain, _ = jitted(vg, *args, cuda_graph=False)
        pair.append(Impl("diffprog jit, no CUDA graph", lambda: plain(*args), role="jit_ops",
                         sync=sync))  # fmt: skip
    return pair


def w1(x: Any, n: int, xp: Any, jit: bool = True) -> list[Impl]:
    sync = device_sync(xp)
    hand = Impl(hand_name(xp), lambda: chain_hand(x, n, xp), role="hand", sync=sync)
    return [hand, *diffprog_pair(lambda x: dnp.sum(chain(x, n, dnp)), (x,), xp, jit)]


def w2(x: Any, n: int, xp: Any) -> list[Impl]:
    sync = device_sync(xp)
    hand = Impl(hand_name(xp), lambda: loop_hand(x, n, xp), role="hand", sync=sync)
    return [hand, *diffprog_pair(lambda x: loop(x, n, dnp), (x,), xp)]


def dnp_mlp_loss(x: Any, labels: Any, rows: Any):
    return lambda p: mlp_loss(p, x, labels, rows, dnp, dnp.log_softmax)


def w3(problem: tuple, xp: Any) -> list[Impl]:
    params, x, labels, rows, _ = problem
    sync = device_sync(xp)
    hand = Impl(hand_name(xp), lambda: mlp_hand(params, x, labels, rows, xp), role="hand",
                sync=sync)
    return [hand, *diffprog_pair(dnp_mlp_loss(x, labels, rows), (params,), xp)]


def _tree_vdot(a: Any, b: Any) -> Any:
    return sum(dnp.sum(u * w) for u, w in zip(dp.tree.leaves(a), dp.tree.leaves(b)))


def w5(problem: tuple, xp: Any) -> list[Impl]:
    """HVPs and, for each, the gradient it is compared with (`pair`)."""
    params, x, labels, rows, v = problem
    sync = device_sync(xp)
    loss = dnp_mlp_loss(x, labels, rows)
    vg = dp.value_and_grad(loss)
    # Reverse over reverse: the gradient of <grad loss(p), v>, whose inner backward pass is
    # recorded (graph extension) and then differentiated.
    rr = dp.grad(lambda p: _vdot_and_loss(loss, p, v), has_aux=True)
    jit_hvp, info = jitted(lambda p, v: _value_hvp(loss, p, v), params, v)
    jit_vg, _ = jitted(vg, params)
    hand = hand_name(xp)
    return [
        Impl(f"{hand} HVP (R-op)", lambda: mlp_hvp_hand(params, x, labels, rows, v, xp),
             role="hand", sync=sync, pair=f"{hand} gradient"),
        Impl(f"{hand} gradient", lambda: mlp_hand(params, x, labels, rows, xp),
             role="grad", sync=sync),
        Impl("diffprog dp.hvp (rev-over-fwd)", lambda: _value_hvp(loss, params, v),
             role="tape", sync=sync, pair="diffprog gradient"),
        Impl("diffprog rev-over-rev (graph extension)", lambda: _swap(rr(params)),
             role="graph", sync=sync, pair="diffprog gradient"),
        Impl("diffprog gradient", lambda: vg(params), role="grad", sync=sync),
        Impl("diffprog jit dp.hvp", lambda: jit_hvp(params, v), role="jit", sync=sync,
             pair="diffprog jit gradient", info=info),
        Impl("diffprog jit gradient", lambda: jit_vg(params), role="grad", sync=sync),
    ]


def _value_hvp(loss, params: Any, v: Any) -> Any:
    value, (hv,) = dp.hvp(loss, (params,), (v,))
    return value, hv


def _vdot_and_loss(loss, p: Any, v: Any) -> tuple[Any, Any]:
    value, g = dp.value_and_grad(loss)(p)
    return _tree_vdot(g, v), value  # the loss rides along as aux, reported like other HVPs


def _swap(pair: tuple) -> tuple:
    hv, value = pair
    return value, hv
