"""Benchmark: dp.vmap against a Python loop of the same diffprog calls.

1. Per-example gradients of a 16-32-32-4 tanh MLP (softmax cross-entropy, an integer label
   per example) at batch 256: `dp.vmap(dp.grad(loss), in_axes=(None, 0, 0))` vs 256 calls
   of `dp.grad(loss)`.
2. The Hessian of a 100-dimensional function: `dp.hessian(f)` (one batched
   forward-over-reverse sweep) vs 100 calls of `dp.hvp(f, (x,), (e_i,))`.
3. Per-example gradients through a write at each example's own index array (`y[k] = v`,
   k with repeats, so the last write wins) at batch 256: one scatter for the batch vs 256
   calls of `dp.grad`.

Each pair is timed side by side in one run (best of `--repeat` rounds, the two
implementations alternating within a round), after checking that the results agree to 1e-10.
BLAS runs on one thread (unless OPENBLAS_NUM_THREADS says otherwise): on a small shared
machine a second BLAS thread waiting for a busy core turns a 0.05 ms product into 15 ms.

Run: python benchmarks/vmap.py [--repeat 7] [--smoke]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # (before NumPy loads its BLAS)

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import diffprog as dp  # noqa: E402
import diffprog.numpy as dnp  # noqa: E402


def mlp_loss(params, x, label):
    """Softmax cross-entropy of one example (x: (16,), label: an int)."""
    h = x
    for w, b in params[:-1]:
        h = dnp.tanh(h @ w + b)
    w, b = params[-1]
    return -dnp.log_softmax(h @ w + b)[label]


def hessian_f(x, a):
    """A smooth 100-dimensional scalar function: softplus of a linear map, plus sin(x) x."""
    return dnp.sum(dnp.logaddexp(0.0, a @ x)) + 0.5 * dnp.sum(dnp.sin(x) * x)


def scatter_loss(w, x, k):
    """One example writes tanh(x @ w) (8 values) at its own 8 positions k of 32 (repeats:
    the last write wins), then a weighted sum."""
    y = dnp.zeros(32)
    y[k] = dnp.tanh(x @ w)
    return dnp.sum(y * dnp.cos(dnp.arange(32.0))) + dnp.sum(w**2)


def per_example_gradients(batch: int):
    rng = np.random.default_rng(0)
    sizes = [16, 32, 32, 4]
    params = [(rng.normal(size=(m, n)) / np.sqrt(m), 0.1 * rng.normal(size=n))
              for m, n in itertools.pairwise(sizes)]  # fmt: skip
    xs, labels = rng.normal(size=(batch, 16)), rng.integers(0, 4, size=batch)
    grad = dp.grad(mlp_loss)
    batched = dp.vmap(grad, in_axes=(None, 0, 0))

    def vmapped():
        return batched(params, xs, labels)

    def looped():
        each = [grad(params, xs[i], labels[i]) for i in range(batch)]
        return dp.tree.map(lambda *g: np.stack(g), *each)

    return vmapped, looped


def scatter_gradients(batch: int):
    rng = np.random.default_rng(2)
    w, xs = rng.normal(size=(16, 8)) / 4, rng.normal(size=(batch, 16))
    ks = rng.integers(0, 32, size=(batch, 8))
    grad = dp.grad(scatter_loss)
    batched = dp.vmap(grad, in_axes=(None, 0, 0))
    return (lambda: batched(w, xs, ks),
            lambda: np.stack([grad(w, xs[i], ks[i]) for i in range(batch)]))  # fmt: skip


def hessians(n: int):
    rng = np.random.default_rng(1)
    a, x = rng.normal(size=(n, n)) / np.sqrt(n), rng.normal(size=n)
    f = lambda x: hessian_f(x, a)  # noqa: E731
    eye = np.eye(n)

    def vmapped():
        return dp.hessian(f)(x)

    def looped():
        return np.stack([dp.hvp(f, (x,), (e,))[1][0] for e in eye])

    return vmapped, looped


def check_equal(got, want, what: str) -> float:
    worst = max(float(np.max(np.abs(g - w))) for g, w in
                zip(dp.tree.leaves(got), dp.tree.leaves(want)))  # fmt: skip
    scale = max(float(np.max(np.abs(w))) for w in dp.tree.leaves(want))
    if worst > 1e-10 * max(scale, 1.0):
        raise AssertionError(f"{what}: dp.vmap and the loop differ by {worst:.3g}")
    return worst


def time_pair(first, second, repeat: int) -> tuple[float, float]:
    """Best seconds per call of each, the two alternating within every round."""
    best = [float("inf"), float("inf")]
    for _ in range(repeat):
        for k, fn in enumerate((first, second)):
            start = time.perf_counter()
            fn()
            best[k] = min(best[k], time.perf_counter() - start)
    return best[0], best[1]


def main(repeat: int = 7, smoke: bool = False) -> dict:
    cases = {
        "per-example gradients, 16-32-32-4 MLP": per_example_gradients(8 if smoke else 256),
        "hessian vs hvp loop": hessians(6 if smoke else 100),
        "per-example gradients through y[k] = v": scatter_gradients(8 if smoke else 256),
    }
    results = {}
    for name, (vmapped, looped) in cases.items():
        error = check_equal(vmapped(), looped(), name)
        t_vmap, t_loop = time_pair(vmapped, looped, 1 if smoke else repeat)
        results[name] = (t_vmap, t_loop)
        print(f"{name}: dp.vmap {t_vmap * 1e3:.2f} ms, loop {t_loop * 1e3:.2f} ms, "
              f"ratio {t_vmap / t_loop:.3f}x (max |difference| {error:.1e})")  # fmt: skip
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks only")
    args = parser.parse_args()
    main(args.repeat, args.smoke)
