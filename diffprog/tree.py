"""Pytrees: nested containers of values, exposed to users as ``dp.tree``.

This module owns the one rule the rest of diffprog relies on: *containers are
structure, leaves are values*.  A pytree is any nesting of ``dict``, ``list``,
``tuple``, ``namedtuple``, ``OrderedDict``, ``defaultdict``, registered
dataclasses and registered custom nodes; everything else (arrays, numbers,
strings and ``None``) is a leaf.  It provides flatten / unflatten / map, leaf
paths for error messages, and registration of new container types.

Conventions follow JAX: plain dicts are traversed in sorted key order (so equal
dicts flatten alike) but are rebuilt in the caller's key order; OrderedDict
keeps insertion order; ``None`` is a leaf.  The work is done by optree (C++)
in its own registry namespace ``"diffprog"``, always with ``none_is_leaf=True``.

Layer L0: imports only the standard library, optree and typing_extensions.
Docstring examples assume ``import diffprog as dp``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable, Iterable

import optree
from optree import PyTreeSpec as TreeDef

from .errors import StructureError

__all__ = [
    "TreeDef", "flatten", "unflatten", "leaves", "structure", "map",
    "flatten_with_path", "keystr", "leaf_paths", "register_node", "register_dataclass",
    "broadcast_prefix",
]

#: How deep containers may nest: the C++ flattener's recursion limit.
MAX_DEPTH = 1000

NAMESPACE = "diffprog"
_OPTS = {"none_is_leaf": True, "namespace": NAMESPACE}


def _depth_limited(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the flattener's RecursionError into an error that says what to do."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RecursionError:
            raise StructureError(
                f"pytree nested deeper than {MAX_DEPTH} levels (or a container that contains "
                "itself); keep deep chains in one list instead of lists inside lists"
            ) from None

    return wrapper


@_depth_limited
def flatten(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> tuple[list[Any], TreeDef]:
    """Split ``tree`` into its leaves (in traversal order) and its structure.

    >>> dp.tree.flatten({'b': 1, 'a': (2, None)})
    ([2, None, 1], PyTreeSpec({'a': (*, *), 'b': *}, NoneIsLeaf))
    """
    return optree.tree_flatten(tree, is_leaf, **_OPTS)


def unflatten(treedef: TreeDef, leaves: Iterable[Any]) -> Any:
    """Rebuild a tree from its structure and leaves; inverse of :func:`flatten`.

    >>> leaves, treedef = dp.tree.flatten({'b': 1, 'a': 2})
    >>> dp.tree.unflatten(treedef, [10, 20])
    {'b': 20, 'a': 10}
    """
    if not isinstance(treedef, TreeDef):
        raise TypeError(f"unflatten(treedef, leaves): expected a treedef as first argument, "
                        f"got {type(treedef).__name__} (arguments swapped?)")
    if type(leaves) is not list:
        leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:
        raise ValueError(f"unflatten: structure {treedef} expects {treedef.num_leaves} "
                         f"leaves, got {len(leaves)}")
    return treedef.unflatten(leaves)  # (optree.tree_unflatten's body)


@_depth_limited
def leaves(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list[Any]:
    """The leaves of ``tree`` in traversal order.

    >>> dp.tree.leaves([1, {'y': None, 'x': 'a'}])
    [1, 'a', None]
    """
    return optree.tree_leaves(tree, is_leaf, **_OPTS)


@_depth_limited
def structure(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> TreeDef:
    """The structure (treedef) of ``tree``, without its leaves.

    >>> dp.tree.structure({'w': 0.5, 'b': [1, 2]}).num_leaves
    3
    """
    return optree.tree_structure(tree, is_leaf, **_OPTS)


@_depth_limited
def map(f: Callable[..., Any], tree: Any, *rest: Any,
        is_leaf: Callable[[Any], bool] | None = None) -> Any:
    """Apply ``f`` leafwise; ``rest`` trees must have exactly the structure of ``tree``.

    >>> dp.tree.map(lambda x, y: x + y, {'a': 1, 'b': [2]}, {'a': 10, 'b': [20]})
    {'a': 11, 'b': [22]}
    """
    if not rest:
        return optree.tree_map(f, tree, is_leaf=is_leaf, **_OPTS)
    first, treedef = flatten(tree, is_leaf)
    columns = [first]
    for i, other in enumerate(rest, start=1):
        other_leaves, other_def = flatten(other, is_leaf)
        if other_def != treedef:
            raise ValueError(f"map: tree argument {i} has structure {other_def}, "
                             f"but the first tree has structure {treedef}")
        columns.append(other_leaves)
    return optree.tree_unflatten(treedef, [f(*xs) for xs in zip(*columns)])


@_depth_limited
def flatten_with_path(tree: Any, is_leaf: Callable[[Any], bool] | None = None
                      ) -> tuple[list[tuple[tuple[Any, ...], Any]], TreeDef]:
    """Like :func:`flatten`, but each leaf comes with its path (a tuple of key entries).

    >>> pairs, _ = dp.tree.flatten_with_path({'layers': [{'W': 1}]})
    >>> [(dp.tree.keystr(p), x) for p, x in pairs]
    [("['layers'][0]['W']", 1)]
    """
    paths, leaves_, treedef = optree.tree_flatten_with_accessor(tree, is_leaf, **_OPTS)
    return list(zip(paths, leaves_)), treedef


@_depth_limited
def broadcast_prefix(prefix: Any, tree: Any) -> list[Any]:
    """One leaf of ``prefix`` per leaf of ``tree``: each leaf of ``prefix`` stands for the
    whole subtree of ``tree`` at its place (as dp.vmap's in_axes do). Raises ValueError when
    ``prefix`` is not a prefix of ``tree``'s structure.

    >>> dp.tree.broadcast_prefix((0, None), ([1, 2], {'a': 3}))
    [0, 0, None]
    """
    return optree.broadcast_prefix(prefix, tree, **_OPTS)


def keystr(path: Iterable[Any]) -> str:
    """Spell a path the JAX way: ``['key']`` / ``[0]`` for items, ``.name`` for fields.

    >>> pairs, _ = dp.tree.flatten_with_path({'p': [0, 1]})
    >>> dp.tree.keystr(pairs[1][0])
    "['p'][1]"
    """
    return "".join(e.codify("") if isinstance(e, optree.PyTreeEntry) else f"[{e!r}]"
                   for e in path)


@_depth_limited
def leaf_paths(tree: Any, is_leaf: Callable[[Any], bool] | None = None) -> list[str]:
    """:func:`keystr` of every leaf's path, in flatten order (for error messages).

    >>> dp.tree.leaf_paths({'b': (1, 2), 'a': None})
    ["['a']", "['b'][0]", "['b'][1]"]
    """
    accessors = optree.tree_accessors(tree, is_leaf, **_OPTS)
    return [a.codify("") for a in accessors]


def register_node(cls: type, flatten: Callable[[Any], tuple[Iterable[Any], Any]],
                  unflatten: Callable[[Any, Iterable[Any]], Any], *,
                  path_entry_type: type = optree.AutoEntry) -> type:
    """Register ``cls`` as a container: ``flatten(x) -> (children, aux)``,
    ``unflatten(aux, children) -> x``.  ``aux`` is structure (compared and hashed
    with the treedef); children are subtrees.  Returns ``cls``.

    >>> class Pair:
    ...     def __init__(self, a, b): self.a, self.b = a, b
    >>> _ = dp.tree.register_node(Pair, lambda p: ((p.a, p.b), None),
    ...                           lambda aux, ch: Pair(*ch))
    >>> dp.tree.leaves(Pair(1, [2, 3]))
    [1, 2, 3]
    """
    if not isinstance(cls, type):
        raise TypeError(f"register_node: expected a class, got {cls!r}")
    if not (callable(flatten) and callable(unflatten)):
        raise TypeError(f"register_node({cls.__name__}): flatten and unflatten must be callable")
    try:
        optree.register_pytree_node(cls, flatten, unflatten,
                                    path_entry_type=path_entry_type, namespace=NAMESPACE)
    except ValueError as e:
        raise ValueError(f"register_node: cannot register {cls.__module__}.{cls.__qualname__} "
                         f"as a pytree node: {e}") from None
    return cls


def register_dataclass(cls: type) -> type:
    """Register a dataclass as a pytree node (usable as a decorator).

    Fields with ``metadata={'static': True}`` are structure (must be hashable);
    all other fields are children, with paths ``.field``.  Unflattening rebuilds
    the object without calling ``__init__``/``__post_init__`` (frozen classes work).
    Unregistered, a dataclass is one opaque leaf: the transforms refuse one that holds
    floats (its gradient would silently be None) and treat one without floats as a constant.

    >>> import dataclasses
    >>> @dp.tree.register_dataclass
    ... @dataclasses.dataclass(frozen=True)
    ... class Dense:
    ...     W: float
    ...     b: float
    ...     act: str = dataclasses.field(default='relu', metadata={'static': True})
    >>> dp.tree.leaf_paths(Dense(1.0, 0.0)), dp.tree.leaves(Dense(1.0, 0.0))
    (['.W', '.b'], [1.0, 0.0])
    """
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"register_dataclass: expected a dataclass type, got {cls!r}")
    fields = dataclasses.fields(cls)
    children = tuple(f.name for f in fields if not f.metadata.get("static", False))
    static = tuple(f.name for f in fields if f.metadata.get("static", False))

    def flatten_dc(obj: Any) -> tuple[tuple[Any, ...], tuple[Any, ...], tuple[str, ...]]:
        aux = tuple(getattr(obj, n) for n in static)
        try:
            hash(aux)
        except TypeError:
            bad = next(n for n, v in zip(static, aux) if not _hashable(v))
            raise TypeError(f"{cls.__qualname__}.{bad}: static field value "
                            f"{getattr(obj, bad)!r} is unhashable; static fields are part "
                            f"of the tree structure and must be hashable") from None
        return tuple(getattr(obj, n) for n in children), aux, children

    def unflatten_dc(aux: tuple[Any, ...], values: Iterable[Any]) -> Any:
        obj = cls.__new__(cls)
        for name, value in zip(static, aux):
            object.__setattr__(obj, name, value)
        for name, value in zip(children, values):
            object.__setattr__(obj, name, value)
        return obj

    return register_node(cls, flatten_dc, unflatten_dc, path_entry_type=optree.DataclassEntry)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True
