"""Data-parallel training across processes on MPI, exposed as ``dp.distributed``.

Owns: `init`, `rank`, `world_size`; `allreduce_mean` / `allreduce_sum` of gradient pytrees
(one contiguous buffer per dtype, in `dp.tree.flatten` order so every rank agrees, reduced in
place and rebuilt into the caller's structure; `None` adjoints pass through); `broadcast` of
parameters and optimizer state from one rank; `shard`, each rank's slice of an epoch's
permutation; `guard`, which turns an exception on one rank into the end of the whole job.

MPI is the optional extra ``mpi`` (mpi4py and MPICH): importing diffprog never imports
mpi4py, and without it a process that no MPI launcher started is a world of one process, so
a data-parallel script also runs with plain ``python``. Every collective first checks that
all ranks passed trees of the same structure, shapes and dtypes, and otherwise raises the same
`StructureError` on every rank, naming the first differing key path. CuPy arrays are handed
to mpi4py as device buffers (this needs a CUDA-aware MPI). Inside dp.jit a collective runs on
the real values and the jitted function eagerly (a replay would not communicate); inside
dp.grad, dp.vmap and the other transforms it is refused.

Layer L6: imports the standard library, numpy, diffprog.tree, diffprog.backend,
diffprog.errors, diffprog.core.trace (Tracer), diffprog.ad.staging (note_side_effect) and,
inside functions only, mpi4py.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import tree as tree_util
from ..ad.staging import concrete, note_side_effect
from ..core.trace import Tracer
from ..errors import UnsupportedLeafError
from . import _trees
from ._comm import guard, init, mpi, rank, state, world_size

__all__ = ["allreduce_mean", "allreduce_sum", "broadcast", "guard", "init", "rank", "shard",
           "world_size"]  # fmt: skip

_MEAN_DOC = "floating leaves (Python floats, floating or complex arrays and scalars)"
_SUM_DOC = "numbers (Python floats and ints, numeric arrays and scalars)"


def _allreduce(tree: Any, mean: bool, what: str) -> Any:
    st = state()
    leaves, treedef = _untraced(tree, what)
    metas = tuple(_trees.describe(x) for x in leaves)
    if mean:
        _trees.check_kinds(tree, metas, "fc", _MEAN_DOC, what)
    else:
        _trees.check_kinds(tree, metas, "fciu", _SUM_DOC, what)
    _trees.agree(st.comm, what, tree, treedef, metas)
    out = list(leaves)
    for name, idx in _trees.groups(leaves, metas, {"float", "int", "scalar", "array"}).items():
        dtype = np.dtype(name)
        # float16 has no MPI datatype: it travels (and is summed) as float32.
        wire = np.dtype(np.float32) if dtype.kind == "f" and dtype.itemsize < 4 else dtype
        xp, buf = _trees.pack(leaves, metas, idx, wire)
        if st.size > 1 and buf.size:
            _reduce_in_place(st.comm, xp, buf)
            if mean:
                buf /= st.size
        _trees.unpack(buf, metas, idx, dtype, out)
    return tree_util.unflatten(treedef, out)


def _untraced(tree: Any, what: str) -> tuple[list[Any], Any]:
    """``tree``'s leaves and treedef, values dp.jit stages replaced by their real values (the
    recording is then not kept: a replay would not communicate, so the jitted function runs
    eagerly, with a warning). Values another transform traces are refused: a collective has
    no derivative or batching rule here."""
    leaves, treedef = tree_util.flatten(tree)
    if not any(isinstance(x, Tracer) for x in leaves):
        return leaves, treedef
    if note_side_effect(f"dp.distributed.{what}"):
        leaves = [concrete(x) for x in leaves]
    for i, x in enumerate(leaves):
        if isinstance(x, Tracer):
            raise UnsupportedLeafError(
                f"{what}: the leaf at {_trees.path_of(tree, i)} is a value traced by "
                f"{x._trace.origin}; a collective cannot be differentiated or vectorized "
                f"here: call dp.distributed.{what} outside the transformed function, on what "
                f"it returns (e.g. on the gradients dp.grad returns)")
    return leaves, treedef


def _reduce_in_place(comm: Any, xp: Any, buf: Any) -> None:
    MPI = mpi()
    if xp.__name__ == "cupy":  # a device buffer: CUDA-aware MPI reads it after the kernels
        xp.cuda.get_current_stream().synchronize()
    comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)


def allreduce_mean(tree: Any) -> Any:
    """The mean over all ranks of each leaf of ``tree``, in ``tree``'s structure.

    Leaves are Python floats (returned as Python floats), floating NumPy/CuPy arrays and
    scalars (returned with their dtype and shape; float16 is summed in float32) and ``None``
    (passed through: a constant's adjoint). The leaves of each dtype travel as one contiguous
    buffer, summed in place by one MPI Allreduce and divided by the number of ranks; every rank
    gets the same bits. All ranks must pass trees of the same structure, shapes and dtypes.

    >>> g = {'W': np.ones((2, 2), np.float32), 'b': None, 'scale': 0.5}
    >>> dp.distributed.allreduce_mean(g)
    {'W': array([[1., 1.],
           [1., 1.]], dtype=float32), 'b': None, 'scale': 0.5}
    """
    return _allreduce(tree, True, "allreduce_mean")


def allreduce_sum(tree: Any) -> Any:
    """The sum over all ranks of each leaf of ``tree``, in ``tree``'s structure: like
    `allreduce_mean` without the division, and integer leaves (Python ints, integer arrays)
    are allowed too; use it for counts, e.g. correct predictions.

    >>> dp.distributed.allreduce_sum({'correct': 7, 'loss': np.float64(1.5)})
    {'correct': 7, 'loss': np.float64(1.5)}
    """
    return _allreduce(tree, False, "allreduce_sum")


def broadcast(tree: Any, root: int = 0) -> Any:
    """Rank ``root``'s values of ``tree`` on every rank: for initial parameters and optimizer
    state, so every rank starts from the same bits.

    Every rank passes a tree of the same structure, shapes and dtypes (e.g. its own
    initialization); array leaves travel as one buffer per dtype (on the device of the
    arrays: CuPy needs a CUDA-aware MPI) and come back as new arrays, every other leaf (Python
    numbers, strings, NumPy scalars, None) is sent pickled from ``root``.

    >>> state = dp.optim.adam(1e-3).init({'w': np.zeros(2)})
    >>> dp.distributed.broadcast({'w': np.ones(2), 'opt': state})['opt'][0].count
    np.int64(0)
    """
    st = state()
    if not isinstance(root, (int, np.integer)) or not 0 <= root < st.size:
        raise ValueError(f"broadcast: root must be a rank from 0 to {st.size - 1}, got {root!r}")
    leaves, treedef = _untraced(tree, "broadcast")
    metas = tuple(_trees.describe(x) for x in leaves)
    _trees.agree(st.comm, "broadcast", tree, treedef, metas)
    if st.size == 1:
        return tree
    numeric = {i for i, m in enumerate(metas) if m[0] == "array" and m[1] != "object"}
    out = list(leaves)
    for name, idx in _trees.groups(leaves, metas, {"array"}).items():
        if name == "object":
            continue
        dtype = np.dtype(name)
        xp, buf = _trees.pack(leaves, metas, idx, dtype)
        if buf.size:
            if xp.__name__ == "cupy":
                xp.cuda.get_current_stream().synchronize()
            st.comm.Bcast(buf.view(xp.uint8), root=root)
        _trees.unpack(buf, metas, idx, dtype, out)
    rest = [i for i in range(len(leaves)) if i not in numeric]
    if rest:
        values = st.comm.bcast([leaves[i] for i in rest] if st.rank == root else None, root=root)
        for i, value in zip(rest, values):
            out[i] = value
    return tree_util.unflatten(treedef, out)


def shard(order: Any, rank: int | None = None, world_size: int | None = None) -> Any:
    """This rank's slice of an epoch's permutation ``order``: ``order[rank::world_size]``,
    cut to ``len(order) // world_size`` so every rank takes the same number of steps (up to
    ``world_size - 1`` samples of the epoch are left out).

    Every rank must draw the same ``order`` (the same seed). With a global batch ``B`` and a
    local batch ``B // world_size``, step ``s`` of all ranks together covers
    ``order[s*B:(s+1)*B]``: exactly the samples one process takes with batch ``B``, so the
    mean of the ranks' gradients is the whole batch's gradient.

    >>> dp.distributed.shard(np.arange(10), rank=1, world_size=3)
    array([1, 4, 7])
    """
    st = None if rank is not None and world_size is not None else state()
    rank = st.rank if rank is None else rank
    world_size = st.size if world_size is None else world_size
    if not (isinstance(world_size, (int, np.integer)) and world_size >= 1
            and isinstance(rank, (int, np.integer)) and 0 <= rank < world_size):
        raise ValueError(f"shard: need 0 <= rank < world_size, got rank={rank!r}, "
                         f"world_size={world_size!r}")
    return order[rank::world_size][: len(order) // world_size]
