"""Per-op cost of diffprog on a chain of elementwise ops, side by side with raw NumPy.

A chain of N elementwise ops (sin, *c, +c, tanh, repeated) over a small float64 array; all
variants run in one process, interleaved, best of R repeats, so ratios are meaningful on a
noisy machine. Run: python benchmarks/chain.py [--ops 1000] [--size 16] [--repeats 7]
"""

from __future__ import annotations

import argparse
import platform
import timeit

import numpy as np

import diffprog as dp
import diffprog.numpy as dnp


def chain(x, n, xp):
    """N elementwise ops written once; `xp` is numpy (raw) or diffprog.numpy (traced)."""
    for _ in range(n // 4):
        x = xp.sin(x)
        x = x * 1.01
        x = x + 0.1
        x = xp.tanh(x)
    return x


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ops", type=int, default=1000)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    n, x = args.ops, np.linspace(-1.0, 1.0, args.size)

    loss = lambda x: dnp.sum(chain(x, n, dnp))  # noqa: E731
    grad = dp.grad(loss)
    hvp = lambda x: dp.jvp(grad, (x,), (np.ones_like(x),))[1]  # noqa: E731
    variants = {
        "raw NumPy, forward only": lambda: chain(x, n, np),
        "diffprog ops on plain arrays (no trace)": lambda: chain(x, n, dnp),
        "diffprog forward + backward (dp.grad)": lambda: grad(x),
        "diffprog 2nd order (jvp of grad: HVP)": lambda: hvp(x),
    }
    # Sanity: the gradient is right (against a forward-mode directional derivative).
    e0 = np.zeros_like(x)
    e0[0] = 1.0
    assert np.isclose(grad(x)[0], dp.jvp(loss, (x,), (e0,))[1])

    best = {name: float("inf") for name in variants}
    for _ in range(args.repeats):  # interleave the variants so drift hits them all alike
        for name, fn in variants.items():
            best[name] = min(best[name], min(timeit.repeat(fn, number=1, repeat=3)))

    base = best["raw NumPy, forward only"]
    print(f"chain of {n} elementwise ops on {args.size} float64 elements; best of "
          f"{args.repeats}x3 runs; Python {platform.python_version()}, NumPy {np.__version__}")
    print(f"{'variant':44} {'us/op':>8} {'x raw NumPy':>12}")
    for name, t in best.items():
        print(f"{name:44} {t / n * 1e6:8.2f} {t / base:12.1f}")


if __name__ == "__main__":
    main()
