"""Time `allreduce_mean` of a gradient-sized tree: ``mpiexec -n 2 python -m diffprog.distributed``.

Owns only this measurement: a tree of ``--params`` float32 (or ``--dtype``) values split over
``--leaves`` arrays, reduced ``--repeats`` times after a warm-up, against one bare MPI
Allreduce of a buffer of the same size; rank 0 prints the medians.
Layer L6: imports the standard library, numpy and diffprog.distributed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from . import allreduce_mean, init, mpi, state


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m diffprog.distributed", description=__doc__)
    parser.add_argument("--params", type=int, default=10_000_000)
    parser.add_argument("--leaves", type=int, default=8)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    rank, size = init()
    sizes = np.diff(np.linspace(0, args.params, args.leaves + 1).astype(np.int64))
    rng = np.random.default_rng(rank)
    tree = {f"layer{i}": {"W": rng.standard_normal(int(n), dtype=np.float64).astype(args.dtype)}
            for i, n in enumerate(sizes)}
    comm = state().comm

    def timed(fn) -> float:
        fn()  # warm-up
        seconds = []
        for _ in range(args.repeats):
            if comm is not None:
                comm.Barrier()
            tick = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - tick)
        return float(np.median(seconds))

    tree_s = timed(lambda: allreduce_mean(tree))
    buf = np.ones(args.params, dtype=args.dtype)
    bare_s = timed(lambda: comm.Allreduce(mpi().IN_PLACE, buf, op=mpi().SUM)) if comm else 0.0
    megabytes = args.params * np.dtype(args.dtype).itemsize / 1e6
    if rank == 0:
        print(f"{size} processes, {args.params:,} {args.dtype} parameters in {args.leaves} "
              f"leaves ({megabytes:.0f} MB): allreduce_mean {1e3 * tree_s:.1f} ms per call "
              f"(median of {args.repeats}), bare MPI Allreduce of one buffer "
              f"{1e3 * bare_s:.1f} ms")
    return {"allreduce_mean_s": tree_s, "bare_allreduce_s": bare_s}


if __name__ == "__main__":
    main()
