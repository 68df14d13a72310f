"""One SGD training step of an MLP in diffprog against the same step written by hand.

Owns the measurement issue 5 asks for on a GPU: value_and_grad of W3/W4's tanh MLP loss plus
an SGD update of every parameter, in diffprog (`dp.value_and_grad` and `dp.tree.map`) and
written by hand in the same array library (`workloads.mlp_hand` and an explicit update),
timed interleaved in one process (harness.measure, glibc's malloc tuned as by run.py), after
checking that one step of each gives the same parameters. Defaults: 1024 -> 4096 -> 4096 -> 1024 tanh, batch 512, float32.

Run: python benchmarks/train_step.py [--device cpu|gpu] [--sizes 1024,4096,4096,1024]
                                     [--batch 512] [--repeats 20]
Imports: numpy, diffprog and the sibling benchmark modules.
"""

from __future__ import annotations

import argparse
import sys

import machine
import numpy as np
from harness import Impl, format_time, max_rel_error, measure, median, to_numpy
from impls import device_sync, dnp_mlp_loss, hand_name
from workloads import mlp_hand, mlp_problem

import diffprog as dp

LR = 0.01


def steps(params: dict, x, labels, rows, xp) -> list[Impl]:
    """diffprog's step and the hand-written one; each returns the updated parameters."""
    grad_f = dp.value_and_grad(dnp_mlp_loss(x, labels, rows))

    def diffprog_step():
        loss, grads = grad_f(params)
        return dp.tree.map(lambda p, g: p - LR * g, params, grads)

    def hand_step():
        loss, grads = mlp_hand(params, x, labels, rows, xp)
        return {name: {k: params[name][k] - LR * grads[name][k] for k in ("W", "b")}
                for name in params}  # fmt: skip

    sync = device_sync(xp)
    return [Impl(hand_name(xp), hand_step, role="hand", sync=sync),
            Impl("diffprog", diffprog_step, role="tape", sync=sync)]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--sizes", default="1024,4096,4096,1024")
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    machine.tune_malloc()  # as run.py does, for both implementations
    if args.device == "gpu":
        import cupy as xp
    else:
        xp = np
    sizes = tuple(int(n) for n in args.sizes.split(","))
    params, x, labels, rows, _ = mlp_problem(sizes, args.batch, np.float32, xp)
    hand, ours = steps(params, x, labels, rows, xp)
    err, where = max_rel_error(to_numpy(ours.fn()), to_numpy(hand.fn()))
    if not err <= 1e-4:
        print(f"diffprog's step differs from the hand-written one: {err:.2e} at {where}")
        return 1
    times = measure([hand, ours], args.repeats)
    t_hand, t_ours = median(times[hand.name]), median(times[ours.name])
    print(f"one SGD step, MLP {'-'.join(map(str, sizes))} tanh, batch {args.batch}, float32, "
          f"on {args.device} (median of {args.repeats}):")
    print(f"  {hand.name:20} {format_time(t_hand)}")
    print(f"  {'diffprog':20} {format_time(t_ours)}  ({t_ours / t_hand:.3f}x hand-written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
