"""Pytrees to MPI buffers and back, and the check that every rank passed the same tree.

Owns: what each leaf is (`describe`), the fingerprint every rank compares before a collective
(`agree`, which on a mismatch names the first differing key path with both ranks' values), the
packing of a tree's leaves into one contiguous buffer per dtype in `dp.tree.flatten` order
(dict keys sorted, so every rank agrees) and its unpacking into the caller's structure.
Layer L6: imports the standard library, numpy, diffprog.tree, diffprog.backend and
diffprog.errors.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from typing import Any

import numpy as np

from .. import tree as tree_util
from ..backend import is_array, namespace_of
from ..errors import StructureError, UnsupportedLeafError

#: (treedef, leaf descriptions) -> fingerprint bytes; a tree's fingerprint is computed once.
_FINGERPRINTS: dict[Any, bytes] = {}
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


def describe(x: Any) -> tuple[str, str, tuple[int, ...]]:
    """``(kind, dtype name, shape)`` of a leaf: what must match across ranks."""
    if type(x) is np.ndarray:  # the common case first
        return ("array", x.dtype.name, x.shape)
    if x is None:
        return ("none", "", ())
    if isinstance(x, np.generic):  # before float: np.float64 is a float
        return ("scalar", x.dtype.name, ())
    if isinstance(x, bool):
        return ("bool", "bool", ())
    if isinstance(x, int):
        return ("int", "int64", ())
    if isinstance(x, float):
        return ("float", "float64", ())
    if is_array(x):
        return ("array", x.dtype.name, tuple(x.shape))
    return ("object", f"{type(x).__module__}.{type(x).__qualname__}", ())


def spell(meta: tuple[str, str, tuple[int, ...]] | None) -> str:
    """A leaf description for an error message."""
    if meta is None:
        return "nothing"
    kind, dtype, shape = meta
    if kind == "array":
        return f"a {dtype} array of shape {shape}"
    if kind == "scalar":
        return f"a {dtype} scalar"
    if kind == "object":
        return f"a {dtype}"
    return "None" if kind == "none" else f"a Python {kind}"


def path_of(tree: Any, index: int) -> str:
    return tree_util.leaf_paths(tree)[index] or "(the root)"


def _fingerprint(treedef: Any, metas: tuple) -> bytes:
    key = (treedef, metas)
    found = _FINGERPRINTS.get(key)
    if found is None:
        text = _ADDRESS.sub("", f"{treedef}|{metas}")
        found = hashlib.blake2b(text.encode(), digest_size=16).digest()
        if len(_FINGERPRINTS) > 512:
            _FINGERPRINTS.clear()
        _FINGERPRINTS[key] = found
    return found


def agree(comm: Any, what: str, tree: Any, treedef: Any, metas: tuple) -> None:
    """Raise the same StructureError on every rank unless all passed alike trees."""
    if comm is None or comm.Get_size() == 1:
        return
    mine = np.frombuffer(_fingerprint(treedef, metas), dtype=np.uint8)
    every = np.empty((comm.Get_size(), mine.size), dtype=np.uint8)
    comm.Allgather(mine, every)
    if (every == every[0]).all():
        return
    other = int(np.flatnonzero((every != every[0]).any(axis=1))[0])
    pairs, _ = tree_util.flatten_with_path(tree)
    leaves = [(tree_util.keystr(path) or "(the root)", tuple(e.type.__name__ for e in path), m)
              for (path, _), m in zip(pairs, metas)]
    described = comm.allgather((_ADDRESS.sub("", str(treedef)), leaves))
    raise StructureError(f"{what}: {first_difference(described[0], described[other], other)}; "
                         "every rank must pass a tree of the same structure, shapes and dtypes "
                         "(run the same code on every rank, and start from "
                         "dp.distributed.broadcast(params))")


def first_difference(a: tuple, b: tuple, other: int) -> str:
    """Where rank 0's tree description ``a`` and rank ``other``'s ``b`` first differ."""
    (def_a, leaves_a), (def_b, leaves_b) = a, b
    for la, lb in itertools.zip_longest(leaves_a, leaves_b):
        if la == lb:
            continue
        if la is None or lb is None or la[0] != lb[0]:
            there = [x for x in (la, lb) if x is not None]
            path = min(x[0] for x in there)
            has_a = spell(la[2]) if la is not None and la[0] == path else "nothing"
            has_b = spell(lb[2]) if lb is not None and lb[0] == path else "nothing"
            return (f"the trees differ across ranks, first at {path}: rank 0 has {has_a} "
                    f"there, rank {other} has {has_b}")
        if la[1] != lb[1]:
            return (f"the trees differ across ranks, first at {la[0]}: its containers are "
                    f"{' > '.join(la[1])} on rank 0 but {' > '.join(lb[1])} on rank {other}")
        return (f"the trees differ across ranks, first at {la[0]}: rank 0 has {spell(la[2])}, "
                f"rank {other} has {spell(lb[2])}")
    return (f"the trees differ across ranks in their containers: rank 0 has {def_a}, "
            f"rank {other} has {def_b}")


def groups(leaves: list, metas: tuple, packed: set[str]) -> dict[str, list[int]]:
    """Leaf indices by dtype, for the leaves whose kind is in ``packed``; dtypes sorted."""
    found: dict[str, list[int]] = {}
    for i, m in enumerate(metas):
        if m[0] in packed:
            found.setdefault(m[1], []).append(i)
    return dict(sorted(found.items()))


def pack(leaves: list, metas: tuple, idx: list[int], dtype: np.dtype) -> tuple[Any, Any]:
    """``(xp, buffer)``: the leaves ``idx`` raveled into one new contiguous array of ``dtype``
    on the device of the arrays among them (Python and NumPy scalars follow the arrays)."""
    xp = namespace_of([leaves[i] for i in idx if metas[i][0] == "array"])
    parts = [xp.asarray(leaves[i]).reshape(-1) for i in idx]
    buf = xp.concatenate(parts) if parts else xp.empty(0, dtype=dtype)
    return xp, buf.astype(dtype, copy=False)


def unpack(buf: Any, metas: tuple, idx: list[int], dtype: np.dtype, out: list) -> None:
    """Split ``buf`` back into the leaves ``idx`` of ``out``, each of its own kind, dtype and
    shape: arrays as views of ``buf``, Python and NumPy scalars as scalars."""
    offset = 0
    for i in idx:
        kind, _, shape = metas[i]
        n = math.prod(shape)
        piece = buf[offset : offset + n]
        offset += n
        if piece.dtype != dtype:
            piece = piece.astype(dtype)
        if kind == "array":
            out[i] = piece.reshape(shape)
        elif kind == "scalar":
            out[i] = dtype.type(piece.item())
        else:  # a Python float or int
            out[i] = piece.item()


def check_kinds(tree: Any, metas: tuple, codes: str, doc: str, what: str) -> None:
    """Refuse the first leaf that is not None and not a number or array whose dtype kind is
    in ``codes`` (NumPy's kind letters): the collective cannot reduce it."""
    for i, (kind, dtype, _) in enumerate(metas):
        if kind == "none" or (kind in ("float", "int", "scalar", "array")
                              and np.dtype(dtype).kind in codes):
            continue
        raise UnsupportedLeafError(
            f"{what}: the leaf at {path_of(tree, i)} is {spell(metas[i])}; {what} reduces "
            f"{doc} and passes None through (give constants None, or leave them out of the "
            "tree)")
