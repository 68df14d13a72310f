"""NumPy's view semantics on traced arrays: a write shows through every view of the same data.

Owns: which tracers are views of which (a `ViewState` in the tracer's `_view` slot: the
tracer it was taken from and the view operations between them, weak references to the
views taken from it, whether its array has been written in place), the view-making
functions under NumPy's names that record it (basic indexing with ints, slices, Ellipsis and
None; reshape, ravel, squeeze, expand_dims and atleast_*d when NumPy returns a view;
transpose, swapaxes, moveaxis, .T and .mT; flip, fliplr, flipud), `rebind` (a tracer object
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

from . import inplace
from . import manipulation as m
from ._define import axes_of
from ..core.trace import Tracer, as_scalar, raw, top_trace
from ..errors import TracerConversionError


class ViewState:
    """The view bookkeeping of one tracer: the tracer it is a view of (None for a root) and
    the ops from it, the live views taken from this tracer, and (roots) whether its array
    has been written in place, after which reads of single elements copy (inplace.read)."""

    __slots__ = ("parent", "ops", "children", "prune_at", "written", "ref")

    def __init__(self, box: Tracer, parent: Tracer | None, ops: tuple) -> None:
        self.parent = parent
        self.ops = ops
        self.children: list[weakref.ref] = []
        self.prune_at = 16
        self.written = False
        self.ref = weakref.ref(box)  # also what makes getweakrefcount(box) nonzero
        box._view = self


def state_of(box: Any) -> ViewState | None:
    """The view bookkeeping of a tracer, None if it never took part in a view or a write."""
    return getattr(box, "_view", None) if weakref.getweakrefcount(box) else None


def link(view: Tracer, parent: Tracer, ops: tuple) -> Tracer:
    """Record that `view` is `parent` seen through `ops` (as NumPy's view, sharing data)."""
    kids = (state_of(parent) or ViewState(parent, None, ())).children
    kids.append(ViewState(view, parent, ops).ref)
    if len(kids) > parent._view.prune_at:  # dead views' references are dropped now and then
        kids[:] = [r for r in kids if r() is not None]
        parent._view.prune_at = 2 * len(kids) + 16
    return view


# --- writes ------------------------------------------------------------------------------------
def assign(box: Tracer, index: tuple, value: Any) -> None:
    """`box[index] = value` with NumPy's semantics: into the root of `box`, seen by all views."""
    root, chain = _root_and_chain(box)
    _check_level(root, value)
    inplace.write(root, chain, index, value, owned=True)
    state = state_of(root) or ViewState(root, None, ())
    state.written = True
    _refresh(root, state)


def replace(box: Tracer, new: Tracer) -> None:
    """`box op= y`: `box` holds the result `new` (same shape and dtype), seen by all views."""
    state = state_of(box)
    if state is None:
        rebind(box, new)  # the common case: no view involved, the result is the new value
        return
    _check_level(box, new)
    if state.parent is not None:
        assign(box, (Ellipsis,), new)
    else:
        rebind(box, new)
        _refresh(box, state)


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
    state = state_of(box)
    while state is not None and state.parent is not None:
        ops = state.ops + ops
        box = state.parent
        state = state_of(box)
    return box, ops


def _refresh(box: Tracer, state: ViewState) -> None:
    """Read every live view of `box` again, recursively, after `box` changed."""
    alive = []
    for ref in state.children:
        view = ref()
        if view is not None:
            alive.append(ref)
            rebind(view, inplace.read(box, view._view.ops))
            _refresh(view, view._view)
    state.children = alive
    state.prune_at = 2 * len(alive) + 16


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
    index = m.index_tuple(index)
    if not isinstance(x, Tracer):
        return m._getitem(x, index=index)
    state = state_of(x)
    op = ("index", index)
    if state is not None and state.written and state.parent is None:
        out = inplace.read(x, (op,))  # a copy: x's array stays held by x alone
    else:
        out = m._getitem(x, index=index)
    if _basic(index) and not isinstance(raw(out), np.generic):
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
    like = _numpy_layout(a)
    if like.flags.c_contiguous or inplace.owner(like.reshape(out.shape)) is inplace.owner(like):
        link(out, a, (("reshape", tuple(out.shape)),))
    return out


def _numpy_layout(a: Tracer) -> Any:
    """A raw array laid out as NumPy's `a` would be: for a view, the same view of its root's
    array (the view's own array may be a copy, after a write refreshed it)."""
    root, chain = _root_and_chain(a)
    r = as_scalar(raw(root))
    for op in chain:
        r = inplace.view_of(r, op)
    return r


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
    out = m.transpose(a, axes)
    if out is not a and isinstance(a, Tracer):
        link(out, a, (("transpose", axes),))
    return out


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
        axes = axes_of(axis, len(m_.shape))
        reverse = slice(None, None, -1)
        link(out, m_, (("index", tuple(reverse if i in axes else slice(None) for i in range(len(m_.shape)))),))
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


__all__ = [
    "atleast_1d", "atleast_2d", "atleast_3d", "expand_dims", "flip", "fliplr", "flipud",
    "getitem", "moveaxis", "ravel", "reshape", "squeeze", "swapaxes", "transpose",
]  # fmt: skip
