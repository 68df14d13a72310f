"""Loading into a given structure: ``dp.load(path, like=tree)``.

Owns `fit(loaded, like, file)`: the tree read from a checkpoint, rebuilt with exactly `like`'s
structure (container types, dict key order, namedtuple types, dataclass static fields) and
with each array on its `like` leaf's device, after checking the two node by node from the root
down, in `like`'s traversal order: the same kind of container (a namedtuple by its name and
fields, a dataclass by its class and static fields), the same dict keys (in any order), the
same lengths; then leaves of the same kind (a Python float for a Python float, a NumPy scalar
of the same dtype, an array of the same dtype and shape, in like's byte order; a NumPy
scalar and a 0-d array of one dtype are one value, given like's kind: an optimizer's step
count is a NumPy int64 for host params and a 0-d CuPy array for CuPy ones, and checkpoints
move between the two). The first difference raises StructureError naming its key path (as
`dp.tree.keystr` spells it) and both sides.

Layer L6: imports diffprog.tree, .errors, .backend and numpy.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from .. import tree
from ..backend import asarray_like, is_array
from ..errors import StructureError

__all__ = ["fit"]

_PYTHON = (bool, int, float, complex, str)


def fit(loaded: Any, like: Any, file: str) -> Any:
    """``loaded`` with ``like``'s structure and devices; StructureError at the first mismatch."""
    leaves: list[Any] = []
    _match(loaded, like, "", leaves, file)
    return tree.unflatten(tree.structure(like), leaves)


def _match(got: Any, like: Any, where: str, out: list[Any], file: str) -> None:
    """Check ``got`` against ``like`` and append got's leaves, placed like like's, to ``out``."""
    got_kids, like_kids = _children(got), _children(like)
    if got_kids is None or like_kids is None:
        if not (got_kids is None and like_kids is None and _same_leaf(got, like)):
            raise _mismatch(file, where, _describe(got), _describe(like))
        out.append(_placed(got, like))
        return
    if isinstance(like, dict) and type(got) is type(like):
        for k in like:
            if k not in got:
                raise _mismatch(file, f"{where}[{k!r}]", "no such key", _describe(like[k]))
        for k in got:
            if k not in like:
                raise _mismatch(file, f"{where}[{k!r}]", _describe(got[k]), "no such key")
        got_kids = [(path, got[path[0].entry]) for path, _ in like_kids]
    elif not _same_node(got, like):
        raise _mismatch(file, where, _describe(got), _describe(like))
    for (path, like_kid), (_, got_kid) in zip(like_kids, got_kids):
        _match(got_kid, like_kid, where + tree.keystr(path), out, file)


def _children(x: Any) -> list[tuple[Any, Any]] | None:
    """``x``'s children one level down as (path, child) pairs; None if ``x`` is a leaf."""
    pairs, _ = tree.flatten_with_path(x, is_leaf=lambda y: y is not x)
    return None if len(pairs) == 1 and pairs[0][1] is x and not pairs[0][0] else pairs


def _one_level(x: Any) -> Any:
    return tree.structure(x, is_leaf=lambda y: y is not x)


def _is_namedtuple(t: type) -> bool:
    return issubclass(t, tuple) and isinstance(getattr(t, "_fields", None), tuple)


def _same_node(got: Any, like: Any) -> bool:
    """Same container kind and shape, children not compared (dicts are compared by keys)."""
    if _is_namedtuple(type(like)):  # a namedtuple the file could not find is rebuilt: by name
        return (_is_namedtuple(type(got)) and type(got).__name__ == type(like).__name__
                and got._fields == like._fields)
    if type(got) is not type(like):
        return False
    if type(like) in (list, tuple):
        return len(got) == len(like)
    return _one_level(got) == _one_level(like)  # dataclasses: class, static fields, fields


def _same_leaf(got: Any, like: Any) -> bool:
    if _is_0d(got) and _is_0d(like):  # a NumPy scalar or a 0-d array: one value
        return got.dtype == _native(like.dtype)
    if isinstance(like, np.generic) or not is_array(like):  # Python values and NumPy scalars
        return type(got) is type(like)
    return (type(got) is np.ndarray and got.dtype == _native(like.dtype)
            and got.shape == tuple(like.shape))


def _native(dtype: Any) -> Any:
    """``dtype`` in this machine's byte order: the file holds a big-endian array's values in
    it, as they load (a like leaf of either order matches)."""
    return dtype.newbyteorder("=") if isinstance(dtype, np.dtype) else dtype


def _is_0d(x: Any) -> bool:
    return isinstance(x, np.generic) or (is_array(x) and tuple(x.shape) == ())


def _placed(got: Any, like: Any) -> Any:
    """A matching leaf read from the file (host values) as like's kind, on like's device."""
    if isinstance(like, np.generic):
        return got[()] if isinstance(got, np.ndarray) else got
    if is_array(like) and not _on_host(like):
        return asarray_like(got, like)
    if isinstance(like, np.ndarray):  # like's kind and byte order
        return np.asarray(got).astype(like.dtype, copy=False)
    return got


def _on_host(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.generic))


def _describe(x: Any) -> str:
    if isinstance(x, np.generic):
        return f"a NumPy {x.dtype} scalar"
    if is_array(x):
        return f"a {x.dtype} {'' if _on_host(x) else 'CuPy '}array of shape {tuple(x.shape)}"
    t = type(x)
    if _children(x) is None:
        if x is None or t in _PYTHON:
            return "None" if x is None else f"a Python {t.__name__}"
        return f"a {t.__module__}.{t.__qualname__}"
    if _is_namedtuple(t):
        return f"a namedtuple {t.__name__}{tuple(x._fields)}"
    if isinstance(x, dict):
        keys = list(x)
        return f"a {t.__name__} with keys {keys[:8]}{' ...' if len(keys) > 8 else ''}"
    if t in (list, tuple):
        return f"a {t.__name__} of length {len(x)}"
    if dataclasses.is_dataclass(x):
        static = ", ".join(f"{f.name}={getattr(x, f.name)!r}" for f in dataclasses.fields(x)
                           if f.metadata.get("static", False))
        return f"a {t.__qualname__} dataclass" + (f" ({static})" if static else "")
    return f"a {t.__qualname__} node"


def _mismatch(file: str, where: str, got: str, like: str) -> StructureError:
    return StructureError(f"{file}: the checkpoint does not match like= at "
                          f"{where or 'the root'}: the file has {got}, like has {like}")
