"""Benchmark of the benchmark: how long W3 takes to reach its steady state after other work.

Run: OPENBLAS_NUM_THREADS=1 python benchmarks/warmup.py [--rounds 20] [--calls 40]
For hand-written NumPy and diffprog jit on W3 (glibc's malloc tuned, as run.py does): after
each kind of other work (`gc.collect()`, a 5 ms pure-Python busy loop, a 5 ms sleep, a sum
over 128 MB, nothing), the time of each of the next calls, median over rounds. This is why
`harness.measure` warms each implementation for a while before a sample instead of one call:
the first calls after a gap run slower whatever the gap did, caches untouched included.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import machine
from impls import dnp_mlp_loss
from workloads import mlp_hand, mlp_problem

import diffprog as dp


def _spin(seconds: float) -> None:
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--calls", type=int, default=40)
    args = ap.parse_args()
    machine.tune_malloc()
    params, x, labels, rows, _ = mlp_problem((64, 256, 256, 10), 128, np.float64)
    step = dp.jit(dp.value_and_grad(dnp_mlp_loss(x, labels, rows)))
    impls = {"hand-written NumPy": lambda: mlp_hand(params, x, labels, rows, np),
             "diffprog jit": lambda: step(params)}  # fmt: skip
    big = np.ones(16 << 20)
    gaps = {"gc.collect()": gc.collect, "spin 5 ms": lambda: _spin(5e-3),
            "sleep 5 ms": lambda: time.sleep(5e-3), "sum 128 MB": big.sum,
            "nothing": lambda: None}  # fmt: skip
    for f in impls.values():
        f(), f()
    k = args.calls
    print(f"W3, us per call after each gap: calls 1-8, then the mean of calls 9-{k // 2} and "
          f"{k // 2 + 1}-{k} (median over {args.rounds} rounds)")
    for name, f in impls.items():
        for gap_name, gap in gaps.items():
            times = np.empty((args.rounds, k))
            for r in range(args.rounds):
                for other in impls.values():  # the other implementation ran last, as in run.py
                    if other is not f:
                        other()
                gap()
                for c in range(k):
                    start = time.perf_counter()
                    f()
                    times[r, c] = time.perf_counter() - start
            m = np.median(times, axis=0) * 1e6
            head = " ".join(f"{v:5.0f}" for v in m[:8])
            print(f"{name:19} {gap_name:13} {head} | {m[8:k // 2].mean():5.0f} "
                  f"{m[k // 2:].mean():5.0f}")


if __name__ == "__main__":
    main()
