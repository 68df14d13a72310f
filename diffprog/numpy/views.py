"""NumPy's view semantics on traced arrays: a write shows through every view of the same data.

Owns: which tracers are views of which (a `ViewState` in the tracer's `_view` slot: the
tracer it was taken from and the view operations between them, weak references to the
views taken from it, whether its array has been written in place), the view-making
functions under NumPy's names that record it (basic indexing with ints, slices, Ellipsis and
None; reshape, ravel, squeeze, expand_dims and atleast_*d when NumPy returns a view;
transpose, swapaxes, moveaxis, .T and .mT; flip, fliplr, flipud, rot90; the split family;
and NumPy's read-only views diagonal, diag and broadcast_to, through which a write raises as
in NumPy while writes into their base show), `rebind` (a tracer object
made to stand for a new value, as an in-place update does), and the two doors of every
write into a traced array: `assign` (`x[i] = v`, `x.sort()`, `out=`, np.copyto) and
`replace` (`x op= y`).

A write through a view is a write into its root, the array it was (eventually) taken from
that is no view itself, through the chain of view operations between them (one record,
`inplace.write`); then every live view of that root is read again (`inplace.read`). So the
root and all its views see the write, in both directions, as in NumPy: a view taken before a
write into its base sees it, and a write through a view reaches the base and the other
views. Results that NumPy copies (advanced indexing, a reshape that must copy, flatten, a
scalar element) are not views: writes to them and to their source stay apart. Gradients
follow, since every write and every re-read is recorded.

The bookkeeping stays off the hot path: a view-making function called on a tracer adds one
small object and one weak reference; nothing else changes for programs that never write.
A tracer that takes part in views (or was written) has a weak reference to it, which makes
`weakref.getweakrefcount` the cheap test that keeps `x += 1` on other tracers a rebind.
Layer L4: imports L0-L3 and other L4 modules.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..backend import namespace_of
from ..core.trace import Tracer, as_scalar, raw, top_trace
from ..errors import TracerConversionError
from . import indexing, inplace
from . import manipulation as m
from ._define import axes_of
from .inplace import Op


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


def _parent_link(box: Tracer) -> tuple | None:
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
    r = raw(root)
    _refresh(root, state, (), r, _written_region(r, chain, index))


def replace(box: Tracer, new: Tracer) -> None:
    """`box op= y`: `box` holds the result `new` (same shape and dtype), seen by all views."""
    if not weakref.getweakrefcount(box):
        rebind(box, new)  # the common case: no view involved, the result is the new value
        return
    _check_level(box, new)
    if _parent_link(box) is not None:
        assign(box, (Ellipsis,), new)
    else:
        rebind(box, new)
        state = _state(box)
        if type(state) is ViewState:
            _refresh(box, state, (), None, None)


def rebind(x: Tracer, new: Tracer) -> None:
    """Make the tracer object `x` stand for `new` (same trace kind): what in-place updates
    do, so that every alias of `x` sees the new value, as with NumPy arrays. Its view
    bookkeeping (the slots named with `_`) stays with `x`."""
    for cls in type(x).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if name[0] != "_":
                object.__setattr__(x, name, getattr(new, name))


def _root_and_chain(box: Tracer) -> tuple[Tracer, tuple]:
    ops: tuple = ()
    link = _parent_link(box)
    while link is not None:
        box, more = link
        ops = more + ops
        link = _parent_link(box)
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
        ops = _parent_link(view)[1]
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
    if region is None or not _basic(index):  # advanced indices: the whole view, at most
        return region
    return region[(*index, None)]  # (a new axis keeps a single element a view)


def _may_overlap(root: Any, chain: tuple, region: Any) -> bool:
    view = _layout_view(root, chain)
    if view is None or isinstance(view, np.generic):
        return True
    return bool(namespace_of((view,)).may_share_memory(view, region))


def _check_level(root: Tracer, value: Any) -> None:
    trace = top_trace((root, value))
    if trace is not root.trace:
        raise TracerConversionError(
            f"a value traced by {trace.origin} (level {trace.level}) is being written into an "
            f"array of an outer transform, {root.trace.origin} (level {root.trace.level}): the "
            "array would hold a value that dies when the inner transform returns. Build the "
            "new array inside the inner function and return it, or return the value"
        )


# --- view-making functions under NumPy's names -----------------------------------------------
def getitem(x: Any, index: Any) -> Any:
    """`x[index]`; with ints, slices, Ellipsis and None only, a view of `x` (as in NumPy)."""
    if type(index) is int:  # the common case, first
        index, basic = (index,), True
    else:
        index = m.index_tuple(index)
        basic = _basic(index)
    if not isinstance(x, Tracer):
        return m._getitem(x, index=index)
    state = _state(x)
    op = ("index", index)
    if type(state) is ViewState and state.written and state.parent is None:
        out = inplace.read(x, (op,))  # a copy: x's array stays held by x alone
    else:
        out = m._getitem(x, index=index)
    if basic:  # NumPy returns a view, unless the result is a scalar
        value = out.value
        if not isinstance(value if type(value) is np.ndarray else raw(value), np.generic):
            link(out, x, (op,))
    return out


def _basic(index: tuple) -> bool:
    for i in index:
        t = type(i)
        if not (t is int or t is slice or i is None or i is Ellipsis or (t is not bool and isinstance(i, np.integer))):
            return False
    return True


def _reshaped(a: Any, out: Any) -> Any:
    """`out`, a reshape of `a`, recorded as a view of `a` where NumPy's reshape is one."""
    if out is a or not isinstance(a, Tracer):
        return out
    result = _raw(out)
    if _parent_link(a) is None:  # a root: laid out as NumPy's (dense, C for a broadcast
        r = _raw(a)  # fill value, as NumPy's full is)
        shared = inplace.shares_memory(result, r) or (type(r) is np.ndarray and 0 in r.strides)
    else:  # a view: its array may be a copy (refreshed after a write); ask its root's
        like = _numpy_layout(a)
        shared = like is not None and (like.flags.c_contiguous or inplace.shares_memory(
            like.reshape(result.shape), like))
    return link(out, a, (("reshape", tuple(result.shape)),)) if shared else out


def _raw(x: Tracer) -> Any:
    value = x.value
    return raw(value) if isinstance(value, Tracer) else value


def _numpy_layout(a: Tracer) -> Any:
    """A raw array laid out as NumPy's `a` would be: the same view of its root's array (the
    view's own array may be a copy, after a write refreshed it); None if unknown."""
    root, chain = _root_and_chain(a)
    return _layout_view(raw(root), chain)


def reshape(a: Any, shape: Any = None, order: str = "C", *, newshape: Any = None) -> Any:
    """`numpy.reshape` (C order): a view of `a` when NumPy gives one."""
    return _reshaped(a, m.reshape(a, shape, order, newshape=newshape))


def ravel(a: Any, order: str = "C") -> Any:
    """`numpy.ravel` (C order): a view of `a` when NumPy gives one."""
    return _reshaped(a, m.ravel(a, order))


def squeeze(a: Any, axis: int | Sequence[int] | None = None) -> Any:
    """`numpy.squeeze`: a view of `a`."""
    return _reshaped(a, m.squeeze(a, axis))


def expand_dims(a: Any, axis: int | Sequence[int]) -> Any:
    """`numpy.expand_dims`: a view of `a`."""
    return _reshaped(a, m.expand_dims(a, axis))


def _atleast(make: Any, arys: tuple) -> Any:
    out = tuple(_reshaped(a, make(a)) for a in arys)
    return out[0] if len(out) == 1 else out


def atleast_1d(*arys: Any) -> Any:
    """`numpy.atleast_1d`: views of the inputs."""
    return _atleast(m.atleast_1d, arys)


def atleast_2d(*arys: Any) -> Any:
    """`numpy.atleast_2d`: views of the inputs."""
    return _atleast(m.atleast_2d, arys)


def atleast_3d(*arys: Any) -> Any:
    """`numpy.atleast_3d`: views of the inputs."""
    return _atleast(m.atleast_3d, arys)


def _transposed(a: Any, axes: tuple) -> Any:
    if axes == tuple(range(len(axes))):
        return a
    out = m._transpose(a, axes=axes)
    return link(out, a, (("transpose", axes),)) if isinstance(a, Tracer) else out


def transpose(a: Any, axes: Sequence[int] | None = None) -> Any:
    """`numpy.transpose`; `axes=None` reverses the axes. A view of `a`."""
    a = m.as_array(a)
    return _transposed(a, m.transpose_axes(len(a.shape), axes))


def swapaxes(a: Any, axis1: int, axis2: int) -> Any:
    """`numpy.swapaxes`: a view of `a`."""
    return _transposed(a, m.swapaxes_axes(len(a.shape), axis1, axis2))


def moveaxis(a: Any, source: int | Sequence[int], destination: int | Sequence[int]) -> Any:
    """`numpy.moveaxis`: a view of `a`."""
    a = m.as_array(a)
    return _transposed(a, m.moveaxis_axes(len(a.shape), source, destination))


def flip(m_: Any, axis: Any = None) -> Any:
    """`numpy.flip`: a view of the input with the order reversed along `axis` (all axes by
    default)."""
    out = m.flip(m_, axis)
    if out is not m_ and isinstance(m_, Tracer):
        link(out, m_, (_reversed(len(m_.shape), axes_of(axis, len(m_.shape))),))
    return out


def fliplr(m_: Any) -> Any:
    """`numpy.fliplr`: reverse the second axis (a view)."""
    if len(m.as_array(m_).shape) < 2:
        raise ValueError("fliplr: input must be >= 2-d")
    return flip(m_, 1)


def flipud(m_: Any) -> Any:
    """`numpy.flipud`: reverse the first axis (a view)."""
    if len(m.as_array(m_).shape) < 1:
        raise ValueError("flipud: input must be >= 1-d")
    return flip(m_, 0)


def rot90(m_: Any, k: int = 1, axes: Sequence[int] = (0, 1)) -> Any:
    """`numpy.rot90`: a view of the input rotated by 90 degrees `k` times."""
    out = m.rot90(m_, k, axes)
    if out is m_ or not isinstance(m_, Tracer):
        return out
    n = len(m_.shape)
    a0, a1 = m.axis_tuple(tuple(axes), n)
    perm = m.swapaxes_axes(n, a0, a1)
    flip_a1 = _reversed(n, (a1,))
    ops = {1: (flip_a1, ("transpose", perm)), 2: (_reversed(n, (a0, a1)),),
           3: (("transpose", perm), flip_a1)}[k % 4]  # fmt: skip
    return link(out, m_, ops)


def _reversed(n: int, axes: tuple) -> Op:
    return ("index", tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(n)))


def _pieces(ary: Any, pieces: list, axis: int, indices_or_sections: Any) -> list:
    """The pieces of a split, recorded as views of `ary` (slices along `axis`)."""
    if isinstance(ary, Tracer):
        (axis,) = m.axis_tuple(axis, len(ary.shape))
        for piece, (b, e) in zip(pieces, indexing.split_bounds(ary.shape[axis], indices_or_sections)):
            link(piece, ary, (("index", (slice(None),) * axis + (slice(b, e),)),))
    return pieces


def array_split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """`numpy.array_split`: views of `ary`."""
    return _pieces(ary, indexing.array_split(ary, indices_or_sections, axis), axis, indices_or_sections)


def split(ary: Any, indices_or_sections: Any, axis: int = 0) -> list:
    """`numpy.split`: views of `ary`."""
    return _pieces(ary, indexing.split(ary, indices_or_sections, axis), axis, indices_or_sections)


def hsplit(ary: Any, indices_or_sections: Any) -> list:
    """`numpy.hsplit`: views of `ary` along its second axis (the first for 1-D arrays)."""
    pieces = indexing.hsplit(ary, indices_or_sections)
    return _pieces(ary, pieces, 1 if len(ary.shape) > 1 else 0, indices_or_sections)


def vsplit(ary: Any, indices_or_sections: Any) -> list:
    """`numpy.vsplit`: views of `ary` along its first axis."""
    return _pieces(ary, indexing.vsplit(ary, indices_or_sections), 0, indices_or_sections)


def dsplit(ary: Any, indices_or_sections: Any) -> list:
    """`numpy.dsplit`: views of `ary` along its third axis."""
    return _pieces(ary, indexing.dsplit(ary, indices_or_sections), 2, indices_or_sections)


# NumPy's read-only views: writes through them raise, as in NumPy; writes into their base show.
def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Any:
    """`numpy.diagonal`: a read-only view of `a`'s diagonal."""
    out = indexing.diagonal(a, offset, axis1, axis2)
    if isinstance(a, Tracer):
        axis1, axis2 = m.axis_tuple((axis1, axis2), len(a.shape))
        link(out, a, (("diagonal", (int(offset), axis1, axis2)),))
    return out


def diag(v: Any, k: int = 0) -> Any:
    """`numpy.diag`: the k-th diagonal of a 2-D array (a read-only view), or a 1-D array
    placed on the k-th diagonal of a new square matrix."""
    out = indexing.diag(v, k)
    if isinstance(v, Tracer) and len(v.shape) == 2:
        link(out, v, (("diagonal", (int(k), 0, 1)),))
    return out


def broadcast_to(array: Any, shape: Any) -> Any:
    """`numpy.broadcast_to`: a read-only view of `array`."""
    out = m.broadcast_to(array, shape)
    if out is not array and isinstance(array, Tracer):
        link(out, array, (("broadcast", tuple(out.shape)),))
    return out


__all__ = [
    "array_split", "atleast_1d", "atleast_2d", "atleast_3d", "broadcast_to", "diag",
    "diagonal", "dsplit", "expand_dims", "flip", "fliplr", "flipud", "getitem", "hsplit",
    "moveaxis", "ravel", "reshape", "rot90", "split", "squeeze", "swapaxes", "transpose",
    "vsplit",
]  # fmt: skip
