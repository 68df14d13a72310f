"""NumPy's view semantics on traced arrays: a write shows through every view of the same data.

Owns: which tracers are views of which (the tracer's `_view` slot: a view's `(parent, ops)`,
or a `ViewState` for a tracer that has views or was written: weak references to the views
taken from it, whether its array was written in place), `link` (called by the view-making
functions of view_functions.py), `rebind` (a tracer object made to stand for a new value, as
an in-place update does), and the two doors of every write into a traced array: `assign`
(`x[i] = v`, `x.sort()`, `out=`, np.copyto) and `replace` (`x op= y`).

A write through a view is a write into its root, the array it was (eventually) taken from
that is no view itself, through the chain of view operations between them (one record,
`inplace.write`); then every live view of that root whose memory may overlap the written
elements is read again (`inplace.read`). So the root and all its views see the write, in
both directions, as in NumPy: a view taken before a write into its base sees it, and a write
through a view reaches the base and the other views. Results that NumPy copies (advanced
indexing, a reshape that must copy, flatten, a scalar element) are not views: writes to them
and to their source stay apart. Through NumPy's read-only views (diagonal, broadcast_to) a
write raises, as in NumPy. Gradients follow, since every write and every re-read is recorded.

The bookkeeping stays off the hot path: a view-making function called on a tracer adds a
tuple and a weak reference; nothing else changes for programs that never write. A tracer
that takes part in views (or was written) has a weak reference to it, which makes
`weakref.getweakrefcount` the cheap test that keeps `x += 1` on other tracers a rebind.
Layer L4: imports L0-L3 and other L4 modules.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from ..ad.batching import BatchTrace
from ..backend import namespace_of
from ..core.trace import Tracer, as_scalar, top_trace, unwrapped, user_line
from ..errors import TracerConversionError
from . import inplace


class ViewState:
    """The view bookkeeping of a tracer that has views or was written: the tracer it is a
    view of (None for a root) and the ops from it, weak references to the views taken from
    it, and (roots) whether its array was written in place, after which element reads copy
    (inplace.read). A view that has no views of its own keeps just `(parent, ops)`."""

    __slots__ = ("parent", "ops", "children", "prune_at", "written", "ref")

    def __init__(self, box: Tracer) -> None:
        link = _state(box)
        self.parent, self.ops = (None, ()) if link is None else link
        self.children: list[weakref.ref] = []
        self.prune_at = 16
        self.written = False
        self.ref = weakref.ref(box)  # what makes getweakrefcount(box) nonzero for a root
        box._view = self


def _state(box: Any) -> ViewState | tuple | None:
    """The `_view` slot: a ViewState, a view's (parent, ops), or None (never involved). A
    tracer with one has a weak reference to it, so most tracers are told apart cheaply."""
    return getattr(box, "_view", None) if weakref.getweakrefcount(box) else None


def _node(box: Tracer) -> ViewState:
    state = _state(box)
    return state if type(state) is ViewState else ViewState(box)


def parent_link(box: Tracer) -> tuple | None:
    """(the tracer `box` is a view of, the ops from it), or None for a root."""
    state = _state(box)
    if type(state) is ViewState:
        return None if state.parent is None else (state.parent, state.ops)
    return state


def link(view: Tracer, parent: Tracer, ops: tuple) -> Tracer:
    """Record that `view` is `parent` seen through `ops` (NumPy's view, sharing its data)."""
    state = _state(parent)
    if type(state) is not ViewState:
        state = ViewState(parent)
    view._view = (parent, ops)
    kids = state.children
    kids.append(weakref.ref(view))
    if len(kids) > state.prune_at:  # the references of dead views are dropped now and then
        kids[:] = [r for r in kids if r() is not None]
        state.prune_at = 2 * len(kids) + 16
    return view


# --- writes ------------------------------------------------------------------------------------
def assign(box: Tracer, index: tuple, value: Any) -> None:
    """`box[index] = value` with NumPy's semantics: into the root of `box`, seen by all views."""
    root, chain = _root_and_chain(box)
    if any(op[0] in inplace.READ_ONLY for op in chain):  # NumPy's words, NumPy's type
        raise ValueError("assignment destination is read-only (a view made by np.diagonal, "
                         "np.diag or np.broadcast_to); write into a copy instead")
    _check_level(root, value)
    inplace.write(root, chain, index, value, owned=True)
    state = _node(root)
    state.written = True
    if state.children:
        r = unwrapped(root)  # its layout only
        _refresh(root, state, (), r, _written_region(r, chain, index))


def replace(box: Tracer, new: Tracer) -> None:
    """`box op= y`: `box` holds the result `new` (same shape and dtype), seen by all views."""
    if not weakref.getweakrefcount(box):
        rebind(box, new)  # the common case: no view involved, the result is the new value
        return
    _check_level(box, new)
    if parent_link(box) is not None:
        assign(box, (Ellipsis,), new)
    else:
        rebind(box, new)
        state = _state(box)
        if type(state) is ViewState:
            _refresh(box, state, (), None, None)


def rebind(x: Tracer, new: Tracer) -> None:
    """Make the tracer object `x` stand for `new` (same trace kind): what in-place updates
    do, so that every alias of `x` sees the new value, as with NumPy arrays. Its view
    bookkeeping (`_view`, and the weak references to it) stays with `x`."""
    names = _CONTENT.get(type(x))
    if names is None:
        names = _CONTENT[type(x)] = tuple(
            name for cls in type(x).__mro__ for name in getattr(cls, "__slots__", ())
            if name not in _BOOKKEEPING
        )  # fmt: skip
    for name in names:
        object.__setattr__(x, name, getattr(new, name))


_CONTENT: dict[type, tuple[str, ...]] = {}  # tracer type -> the slots that hold its value
_BOOKKEEPING = ("_view", "__weakref__")


def _root_and_chain(box: Tracer) -> tuple[Tracer, tuple]:
    ops: tuple = ()
    link = parent_link(box)
    while link is not None:
        box, more = link
        ops = more + ops
        link = parent_link(box)
    return box, ops


def _refresh(box: Tracer, state: ViewState, chain: tuple, root: Any, region: Any) -> None:
    """Read again every live view of `box` (the root seen through `chain`; `root` is the
    root's raw array) that may overlap the written `region` of `root` (None: all of it), and
    recursively their views. A view that misses the region keeps its value and its older
    record, which are still right: its elements are the same before and after the write."""
    alive = []
    for ref in state.children:
        view = ref()
        if view is None:
            continue
        alive.append(ref)
        ops = parent_link(view)[1]
        if region is not None and not _may_overlap(root, chain + ops, region):
            continue
        rebind(view, inplace.read(box, ops))
        view_state = view._view
        if type(view_state) is ViewState:
            _refresh(view, view_state, chain + ops, root, region)
    state.children = alive
    state.prune_at = 2 * len(alive) + 16


def _layout_view(root: Any, chain: tuple) -> Any:
    """The raw `root` seen through `chain` as a view of its memory, None if it is none."""
    r = as_scalar(root)
    for op in chain:
        v = inplace.view_of(r, op)
        if op[0] == "reshape" and not inplace.shares_memory(v, r):
            return None
        r = v
    return r


def _written_region(root: Any, chain: tuple, index: tuple) -> Any:
    """The part of the raw `root` that a write through `chain` at `index` changed, as a view
    of its memory (only its bounds are looked at), or None where it is not one."""
    region = _layout_view(root, chain)
    if region is None or not basic_index(index):  # advanced indices: the whole view, at most
        return region
    return region[(*index, None)]  # (a new axis keeps a single element a view)


def _may_overlap(root: Any, chain: tuple, region: Any) -> bool:
    view = _layout_view(root, chain)
    if view is None or isinstance(view, np.generic):
        return True
    return bool(namespace_of((view,)).may_share_memory(view, region))


def _check_level(root: Tracer, value: Any) -> None:
    trace = top_trace((root, value))
    if trace is not root._trace:
        if isinstance(trace, BatchTrace):  # (a batched y of its own is written as a batch)
            raise TracerConversionError(
                f"y[...] = v under {trace.origin}: v differs between the examples, but y (shape "
                f"{root.shape}) is one array shared by all of them (it was computed from shared "
                "values only), and a write in place cannot make it one array per example. Make "
                "y each example's own before writing: y = dnp.zeros(shape); y[...] = shared; "
                "y[i] = v (dnp.zeros inside dp.vmap gives one array per example)")
        raise TracerConversionError(
            f"y[...] = v at {user_line()}: v is traced by {trace.origin} (level {trace.level}), "
            f"but y (shape {root.shape}) belongs to an outer transform, {root._trace.origin} "
            f"(level {root._trace.level}): it was made outside the inner function, or inside it "
            "from that transform's values only (x.copy(), x * 1.0, dnp.array(x) of an outer x), "
            "and would hold a value that dies when the inner transform returns. Make y the "
            "inner function's own before writing: y = dnp.empty_like(x); y[...] = x; y[i] = v "
            "(dnp.zeros, dnp.empty_like and the other creation functions make arrays of the "
            "innermost transform), or build the result without writing (dnp.where, "
            "dnp.concatenate)"
        )


def basic_index(index: tuple) -> bool:
    """Whether `x[index]` is a view in NumPy: ints, slices, Ellipsis and None only."""
    for i in index:
        t = type(i)
        if not (t is int or t is slice or i is None or i is Ellipsis
                or (t is not bool and isinstance(i, np.integer))):  # fmt: skip
            return False
    return True


def numpy_layout(a: Tracer) -> Any:
    """A raw array laid out as NumPy's `a` would be: the same view of its root's array (the
    view's own array may be a copy, after a write refreshed it); None if unknown."""
    root, chain = _root_and_chain(a)
    return _layout_view(unwrapped(root), chain)


def written_root(x: Tracer) -> bool:
    """Whether `x` is no view and its array was written in place (read it by copying)."""
    state = _state(x)
    return type(state) is ViewState and state.written and state.parent is None

