"""Benchmark: compile.vmath's functions in a numba loop against NumPy's ufuncs (SIMD loops).

Run: OPENBLAS_NUM_THREADS=1 python benchmarks/vmath_speed.py [--sizes 32768 64]
Per function, dtype and size: microseconds per call of a numba loop over the array calling
the vmath function, of NumPy's ufunc (out= given), and of the loop calling numba's libm
function (what a fused kernel did before vmath); all timed interleaved in one process
(harness.measure: rotating order, medians). A fused kernel's size rule
(compile.kernels.VMATH_BIG) follows the ratio at the big size.
`--rule`: instead, a fused kernel's chain of 24 exp, log and tanh over 16 elements, with vmath
and with libm, storing its last value (a loop that vectorizes) or all 24 (too many stores to
check for overlap: a scalar loop); what compile.kernels.vectorizes predicts, and nanoseconds
per function call: the rule that picks vmath only for loops that vectorize.
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

from diffprog.compile import kernels, vmath

DOMAIN = {
    "exp": (-5, 5),
    "expm1": (-5, 5),
    "log": (0.01, 100),
    "log1p": (-0.5, 100),
    "tanh": (-3, 3),
}


def loop(f, dtype):
    """A numba loop `out[i] = f(a[i])` (rounded to float32 for float32 arrays)."""
    if dtype == np.float32:

        def body(a, out):
            for i in range(a.size):
                out[i] = np.float32(f(a[i]))
    else:

        def body(a, out):
            for i in range(a.size):
                out[i] = f(a[i])

    return numba.njit(error_model="numpy")(body)


def chain_kernel(stores: int, vector: bool, size: int = 16, steps: int = 24):
    """A fused kernel (compile.kernels' source) computing `steps` of exp, log and tanh in
    a chain over `size` elements, storing the last `stores` values (one stacked array); and
    whether kernels.vectorizes says it runs on SIMD registers."""
    f64 = np.dtype(np.float64)
    forms = ["exp({} * -0.5)", "log({} + 1.0)", "tanh({} * 2.0)"]
    lib = "vmath." if vector else "np."
    lines = ["t0 = x0"] + [f"t{k + 1} = {lib}{forms[k % 3].format(f't{k}')}" for k in range(steps)]
    loop = kernels.Loop((size,), inputs=[((size,), f64, 0, None)], lines=lines, outputs=stores)
    loop.stores = [(k, f"t{steps - k}", (size,), f64) for k in range(stores)]
    namespace: dict = {}
    exec(kernels.kernel_source(loop), namespace)  # noqa: S102 - our own source
    return numba.njit(error_model="numpy")(namespace["kernel"]), kernels.vectorizes(loop)


def rule(repeats: int) -> None:
    x = np.linspace(0.5, 2.0, 16)
    print(f"{'stores':>6s} {'vectorizes':>10s} {'vmath':>9s} {'libm':>9s}  ns per call")
    for stores in (1, 24):
        (mine, vector), (libm, _) = chain_kernel(stores, True), chain_kernel(stores, False)
        impls = [Impl("vmath", lambda k=mine: k(x)), Impl("libm", lambda k=libm: k(x))]
        t = {k: median(v) * 1e9 / (24 * 16) for k, v in measure(impls, repeats).items()}
        print(f"{stores:6d} {vector!s:>10s} {t['vmath']:9.2f} {t['libm']:9.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[32768, 64])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--rule", action="store_true", help="the vectorized-loop rule's chain")
    args = parser.parse_args()
    if args.rule:
        return rule(args.repeats)
    rng = np.random.default_rng(0)
    print(
        f"{'function':8s} {'dtype':8s} {'n':>6s} {'vmath':>9s} {'numpy':>9s} {'libm':>9s}  vmath/numpy"
    )
    for dtype in (np.float64, np.float32):
        for name in sorted(vmath.FUNCTIONS):
            ufunc = getattr(np, name)
            fn = kernels.VMATH_FLOAT32.get(name, name) if dtype == np.float32 else name
            mine, libm = loop(getattr(vmath, fn), dtype), loop(ufunc, dtype)
            for n in args.sizes:
                x = rng.uniform(*DOMAIN[name], n).astype(dtype)
                out = np.empty_like(x)
                impls = [Impl("vmath", lambda m=mine, x=x, o=out: m(x, o)),
                         Impl("numpy", lambda u=ufunc, x=x, o=out: u(x, out=o)),
                         Impl("libm", lambda m=libm, x=x, o=out: m(x, o))]  # fmt: skip
                t = {k: median(v) * 1e6 for k, v in measure(impls, args.repeats).items()}
                print(f"{name:8s} {np.dtype(dtype).name:8s} {n:6d} {t['vmath']:9.2f} {t['numpy']:9.2f} "
                      f"{t['libm']:9.2f}  {t['vmath'] / t['numpy']:.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
