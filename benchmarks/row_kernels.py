"""Benchmark: compile.rows' kernels (softmax and log_softmax along the last axis) against
NumPy's computation of them, per shape and dtype.

Run: OPENBLAS_NUM_THREADS=1 python benchmarks/row_kernels.py [--shapes 128x10 64x64]
Microseconds per call (harness.measure: interleaved, rotating order, medians) of the row
kernel with its exponentials in compile.vmath's vectorized loop ("vmath"), the same kernel
calling libm's exp per element ("libm") and diffprog.numpy's kernel on NumPy ("numpy").
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numba
from harness import Impl, measure, median

import diffprog.numpy as dnp
from diffprog.compile import rows

SHAPES = ["1x10", "128x10", "2048x10", "64x64", "16x1024", "2x32768"]


def row_kernel(name: str, dtype: np.dtype, vector: bool):
    namespace: dict = {}
    exec(rows.row_kernel_source(name, 1, dtype, vector), namespace)  # noqa: S102 - our source
    return numba.njit(error_model="numpy", nogil=True)(namespace["kernel"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shapes", nargs="+", default=SHAPES)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(
        f"{'function':12s} {'dtype':8s} {'shape':>8s} {'vmath':>9s} {'libm':>9s} {'numpy':>9s}"
        "  vmath/numpy"
    )
    for dtype in (np.dtype(np.float64), np.dtype(np.float32)):
        for name in ("log_softmax", "softmax"):
            vector, libm = row_kernel(name, dtype, True), row_kernel(name, dtype, False)
            eager = getattr(dnp, name)
            for text in args.shapes:
                shape = tuple(int(n) for n in text.split("x"))
                x = (rng.normal(size=shape) * 5).astype(dtype)
                impls = [Impl("vmath", lambda x=x, k=vector: k(x)),
                         Impl("libm", lambda x=x, k=libm: k(x)),
                         Impl("numpy", lambda x=x, k=eager: k(x))]  # fmt: skip
                t = {k: median(v) * 1e6 for k, v in measure(impls, args.repeats).items()}
                print(f"{name:12s} {dtype.name:8s} {text:>8s} {t['vmath']:9.2f} {t['libm']:9.2f} "
                      f"{t['numpy']:9.2f}  {t['vmath'] / t['numpy']:.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
