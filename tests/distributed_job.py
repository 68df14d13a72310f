"""A tiny MPI job for tests/test_distributed.py: rank 1 fails while rank 0 waits in a collective.

Run as ``mpiexec -n 2 python tests/distributed_job.py guard|uncaught``; the job must end at
once with a non-zero status and ``rank 1: ...`` and the error in its output.
"""

import sys

import numpy as np

import diffprog as dp

rank, world = dp.distributed.init()
if sys.argv[1] == "guard":
    with dp.distributed.guard():
        if rank == 1:
            raise ValueError("rank 1 fails on purpose inside guard()")
        dp.distributed.allreduce_mean({"w": np.ones(3)})
else:
    if rank == 1:
        raise ValueError("rank 1 fails on purpose, uncaught")
    dp.distributed.allreduce_mean({"w": np.ones(3)})
print(f"rank {rank} got past the collective: the job did not abort")
