"""Writes into traced arrays without a copy per write, and the reads that keep it so.

Owns the engine behind item assignment (`views.assign` is the door users come through):
`write(target, chain, index, value, owned)` stores `value` at `index` of `target` seen
through a chain of view operations, and `read(x, ops)` reads such a view of `x` as a fresh
copy. Both work on every level of nested traces at once: on a tracer they record one record
on its trace (reverse mode), carry the tangent along (forward mode) or write every example
of a batch (dp.vmap), then recurse into the value one level down; on raw arrays they run
NumPy's (or CuPy's) own indexing. A write at each example's own positions or mask is a
select (`where`), which every trace differentiates.

Why no copy per write: the derivative of a write needs only shapes (the old array's
cotangent is the output's with the written elements zeroed, the value's is the output's at
those elements), so a write record saves shape-only `placeholder`s, never the arrays. Then
nothing on the tape refers to the array being written, and it can be changed in place --
provided nothing else does either, which `_sole` checks exactly with CPython's reference
count: an array is written in place only when it owns its memory and the tracer holding it
is its only referrer. Anything else that refers to it (an earlier record that saved it as a
residual, `y.copy()` sharing its data, a NumPy view of it, the caller's input array) makes
the write copy first, once; the copy is then held alone and the next writes go in place.
So n writes of k elements into an array of size N cost O(n k + N), not O(n N).

Reads of a written array that would keep it referenced (`y[i - 1]` in a recurrence saves its
input, and NumPy returns a view of it) go through `read`, which saves placeholders for its
input and output (the rules of indexing, reshape and transpose need only shapes) and returns
a copy of the elements read, so the next write still finds the array held alone. The backward pass does the same with cotangents: a write record's pullback first
reads the value's cotangent (a copy), then zeros the written elements of the output's
cotangent in place when the sweep holds it alone, else in a copy; in graph extension the
cotangents are tracers of the outer trace, and the same two functions record on it.
Layer L4: imports L0-L3 and other L4 modules.
"""

from __future__ import annotations

import functools
import sys
from typing import Any

import numpy as np

from ..ad.batching import Batched, BatchTrace, BatchTracer, anywhere, every, everywhere, shifted
from ..ad.forward import JVPTracer
from ..ad.reverse import ReverseTracer
from ..ad.staging import StagingTrace, StagingTracer
from ..backend import device_scope, namespace_of, zeros_like
from ..core.edge import astype, broadcast_to
from ..core.primitive import (
    KERNEL_ERRORS, JointNode, NonDifferentiable, Primitive, describe_operands,
)
from ..core.trace import Tracer, as_scalar, raw, top_trace, unwrapped
from .batching import aligned, elementwise
from .complex_parts import imag, real
from .elementwise import bitwise_and, bitwise_or, equal, greater_equal, less, ufunc_where
from .indexing import _diagonal, take
from .manipulation import _batched_index, _getitem, _is_basic, _reshape, _transpose
from .reductions import count_nonzero, cumsum

#: A view operation: ("index", basic index tuple), ("reshape", shape), ("transpose", axes),
#: the parts ("real", None) and ("imag", None) (of a complex array: views of its memory),
#: NumPy's read-only views ("diagonal", (offset, axis1, axis2)), ("broadcast", shape), and
#: ("copy", None), which is no view: a C-ordered copy (`x.copy()` of a non-contiguous x).
Op = tuple
READ_ONLY = ("diagonal", "broadcast")
_copy = Primitive("copy", lambda xp, x: x.copy())
_copy.defvjp(lambda g, ans, x: g)
_copy.defjvp(lambda t, ans, x: t)
elementwise(_copy)
_PRIMITIVES = {  # kind -> (the primitive that records a read, its parameters from the op's)
    "index": (_getitem, lambda a: {"index": a}), "reshape": (_reshape, lambda a: {"shape": a}),
    "transpose": (_transpose, lambda a: {"axes": a}),
    "diagonal": (_diagonal, lambda a: {"offset": a[0], "axis1": a[1], "axis2": a[2]}),
    "broadcast": (broadcast_to, lambda a: {"shape": a}), "copy": (_copy, lambda a: {}),
    "real": (real, lambda a: {}), "imag": (imag, lambda a: {}),
}  # fmt: skip


def view_of(x: Any, op: Op) -> Any:
    """NumPy's (or CuPy's) result of `op` on the raw array `x`: a view where NumPy makes one."""
    kind, arg = op
    if kind == "index":
        return x[arg]
    if kind == "reshape":
        return x.reshape(arg)
    if kind == "transpose":
        return x.transpose(arg)
    if kind == "diagonal":
        return x.diagonal(*arg)
    if kind == "real":
        return x.real
    if kind == "imag":
        return x.imag
    if kind == "copy":
        with device_scope((x,)):
            return x.copy()
    return namespace_of((x,)).broadcast_to(x, arg)


def shares_memory(a: Any, b: Any) -> bool:
    """Whether the array `a` uses memory of the array `b` (`a` a view of `b`, or `b` of `a`)."""
    if type(a) is np.ndarray and type(b) is np.ndarray:  # NumPy points every view at its owner
        return (a if a.base is None else a.base) is (b if b.base is None else b.base)
    if isinstance(a, (float, np.generic)) or isinstance(b, (float, np.generic)):
        return False
    return bool(namespace_of((a, b)).may_share_memory(a, b))


# --- reading -------------------------------------------------------------------------------
def read(x: Any, ops: tuple) -> Any:
    """The view of `x` through `ops` as a fresh copy, recorded with a placeholder for `x` on
    each trace `x` belongs to (so the read keeps no reference to `x`'s array)."""
    for k, op in enumerate(ops):  # each example's own index arrays (dp.vmap), or a mask
        # dp.jit stages: a gather (the primitive takes them to their trace)
        if op[0] == "index" and any(_batched(e) or type(e) is StagingTracer for e in op[1]):
            return read(_getitem(read(x, ops[:k]), index=op[1]), ops[k + 1 :])
    if not isinstance(x, Tracer):
        return _copied_view(x, ops)
    for op in ops:
        x = _read_one(x, op)
    return x


def _read_one(x: Tracer, op: Op) -> Tracer:
    trace = x._trace
    if not trace.alive:
        raise trace.escaped_error()
    if type(x) is StagingTracer:  # dp.jit: a view op, recorded as it is (its writes copy)
        prim, params = _PRIMITIVES[op[0]]
        return prim(x, **params(op[1]))
    if type(x) is BatchTracer:  # dp.vmap: the same view of every example
        return BatchTracer(trace, read(x.value, (batched_op(op, trace.size),)))
    down = read(x.value, (op,))
    if type(x) is ReverseTracer:  # the rules of these primitives read only x's shape
        prim, params = _PRIMITIVES[op[0]]
        record = (prim, params(op[1]), [placeholder(x.value)], [x.slot], placeholder(down))
        return ReverseTracer(trace, down, trace.append(record))
    assert type(x) is JVPTracer
    return JVPTracer(trace, down, None if x.tangent is None else read(x.tangent, (op,)))


def _copied_view(x: Any, ops: tuple) -> Any:
    v = as_scalar(x)
    for op in ops:
        v = view_of(v, op)
    if isinstance(v, np.generic) or (type(v) is np.ndarray and v.base is None):
        return v  # a NumPy scalar, or a new array (advanced indexing)
    with device_scope((v,)):
        return v.copy()


# --- writing -------------------------------------------------------------------------------
def write(target: Any, chain: tuple, index: tuple, value: Any, owned: bool) -> Any:
    """`target` with `value` stored at `index` of its view through the ops `chain`.

    Returns `target` itself, changed in place, when `owned` (the caller holds it alone and
    may change it) and the levels below are held alone too; else a new array or tracer (the
    levels below that were shared are copied, the others changed in place).
    """
    per_example = [e for e in index if _batched(e)]  # dp.vmap: each example's own positions
    if per_example:
        view = read(target, chain)
        selection = _selection(index, view, value)
        if selection is not None:  # a select, which every trace differentiates
            return write(target, chain, (Ellipsis,), ufunc_where(*selection, view), owned)
    staged = [e for e in index if type(e) is StagingTracer]  # dp.jit: a mask of traced values
    trace = top_trace((target, value, *per_example, *staged))
    if trace is None:
        return _write_raw(target, chain, index, value, owned)
    if not trace.alive:
        raise trace.escaped_error()
    if isinstance(trace, StagingTrace):  # dp.jit: a pure write (a copy), replayed as such
        # (processed here: bind would run it as a constant when only the index is staged)
        new = trace.process(_staged_write, (target, value), {"chain": chain, "index": index})
        if not (owned and type(target) is StagingTracer):
            return new
        target.value, target.var = new.value, new.var  # the target stands for the result
        return target
    own = isinstance(target, Tracer) and target._trace is trace
    if isinstance(trace, BatchTrace):
        return _write_batched(trace, target, own, chain, index, value, owned)
    if type(target if own else value) is ReverseTracer:
        return _write_reverse(trace, target, own, chain, index, value, owned)
    return _write_forward(trace, target, own, chain, index, value, owned)


def _write_reverse(trace: Any, target: Any, own: bool, chain: tuple, index: tuple, value: Any,
                   owned: bool) -> Any:  # fmt: skip
    if type(value) is ReverseTracer and value._trace is trace:
        v_down, v_slot = value.value, value.slot
    else:
        v_down, v_slot = value, -1
    if own:  # check before any local name refers to target.value
        sole = owned and _refs(target.value) == _ONE_HOLDER
        new = write(target.value, chain, index, v_down, sole)
        slot = target.slot
    else:  # a constant of this trace (dnp.zeros), written with a value traced here
        new = write(target, chain, index, v_down, owned)
        slot = -1
    ph = placeholder(new)
    record = (_write_node(chain, index), None, [ph, placeholder(v_down)], [slot, v_slot], (ph,))
    slot = trace.append(record)
    if own and owned:
        target.value, target.slot = new, slot
        return target
    return ReverseTracer(trace, new, slot)


def _write_forward(trace: Any, target: Any, own: bool, chain: tuple, index: tuple, value: Any,
                   owned: bool) -> Any:  # fmt: skip
    if type(value) is JVPTracer and value._trace is trace:
        v_down, v_tangent = value.value, value.tangent
    else:
        v_down, v_tangent = value, None
    if own:
        sole = owned and _refs(target.value) == _ONE_HOLDER
        tangent_sole = owned and _refs(target.tangent) == _ONE_HOLDER
        new = write(target.value, chain, index, v_down, sole)
        tangent = target.tangent
    else:
        new = write(target, chain, index, v_down, owned)
        tangent, tangent_sole = None, True
    if tangent is None and v_tangent is None:
        new_tangent = None
    else:
        if tangent is None:  # a symbolic zero made real, held by nothing else
            tangent, tangent_sole = zeros_like(raw(new)), True
        fill = 0.0 if v_tangent is None else v_tangent
        new_tangent = write(tangent, chain, index, fill, tangent_sole)
    if own and owned:
        target.value, target.tangent = new, new_tangent
        return target
    return JVPTracer(trace, new, new_tangent)


def _batched(e: Any) -> bool:
    r = raw(e)
    return isinstance(r, Tracer) and r.batched


def _selection(index: tuple, view: Any, value: Any) -> tuple[Any, Any] | None:
    """`view[index] = value`, with index holding each example's own positions (dp.vmap), as
    `ufunc_where(mask, value', view)`: (mask, value') for a boolean mask alone (see `_laid_out`),
    for integers and whole axes `:` with a value shaped like the selection, or for any of
    these, slices and boolean masks among them, with a scalar value; else None."""
    n = len(view.shape)
    if len(index) == 1 and index[0].dtype == np.bool_:
        m = index[0]
        _check_mask(m, tuple(view.shape), 0)
        return _reshape(m, shape=tuple(m.shape) + (1,) * (n - len(m.shape))), _laid_out(m, value, n)
    scalar = not getattr(value, "shape", ())
    mask, ints, a = None, [], 0  # a: the axis of the view the next entry indexes
    for e in index:
        if isinstance(e, slice) and e == slice(None):
            a += 1
            continue
        if isinstance(e, slice) and scalar and a < n:
            picked = np.zeros(view.shape[a], bool)
            picked[e] = True
            hit, k = picked.reshape((1,) * a + (-1,) + (1,) * (n - a - 1)), 1
        elif _batched(e) and e.dtype == np.bool_ and scalar and a + len(e.shape) <= n:
            k = len(e.shape)  # each example's own mask over the next k axes
            _check_mask(e, tuple(view.shape), a)
            hit = _reshape(e, shape=(1,) * a + tuple(e.shape) + (1,) * (n - a - k))
        elif (isinstance(e, (int, np.integer)) or _batched(e) and not e.shape
              and e.dtype.kind in "iu") and a < n:  # fmt: skip
            size = view.shape[a]
            if anywhere(bitwise_or(less(e, -size), greater_equal(e, size))):  # as NumPy's
                which = e if isinstance(e, (int, np.integer)) else "of some example"
                raise IndexError(f"index {which} is out of bounds for axis {a} with size {size}")
            positions = np.arange(size).reshape((1,) * a + (-1,) + (1,) * (n - a - 1))
            hit, k = equal(positions, e % size), 1
            ints.append(a)
        else:
            return None
        mask, a = hit if mask is None else bitwise_and(mask, hit), a + k
    shape = tuple(getattr(value, "shape", ()))
    if len(shape) > n - len(ints):
        return None
    full = (1,) * (n - len(ints) - len(shape)) + shape
    for a in ints:  # the value spread over the axes the integers picked from
        full = full[:a] + (1,) + full[a:]
    return mask, value if not shape and not hasattr(value, "shape") else _reshape(value, shape=full)


def _check_mask(mask: Any, shape: tuple, first: int) -> None:
    """NumPy's check of a boolean mask over the axes of `shape` from `first` on."""
    for a, (m, size) in enumerate(zip(mask.shape, shape[first:]), first):
        if m != size:
            raise IndexError(f"boolean index did not match indexed array along axis {a}; size "
                             f"of axis is {size} but size of corresponding boolean axis is {m}")
    if len(mask.shape) > len(shape) - first:
        raise IndexError(f"too many indices for array: array is {len(shape)}-dimensional, "
                         f"but the boolean mask covers {first + len(mask.shape)} axes")


def _laid_out(mask: Any, value: Any, n: int) -> Any:
    """The value of `view[mask] = value` (`mask` each example's own, over the first axes of a
    view of `n` axes) laid out over the mask's axes: as it is when it broadcasts over the
    selected elements; else it lists them in order, and each goes where it is written (every
    example must then select as many as it lists, as NumPy requires)."""
    shape, k = tuple(getattr(value, "shape", ())), len(mask.shape)
    if len(shape) <= n - k:
        return value
    if shape[0] == 1:
        return _reshape(value, shape=shape[1:])
    flat = _reshape(mask, shape=(-1,))
    if not everywhere(equal(count_nonzero(flat), shape[0])):
        raise ValueError(
            f"y[mask] = v under dp.vmap: v lists {shape[0]} values, but the mask (each "
            "example's own) selects another number of elements in some examples (NumPy "
            "cannot assign them either); give a v that broadcasts over the selection, or write "
            "dnp.where(mask, values, y) with values shaped like y")
    order = cumsum(astype(flat, dtype=np.dtype(np.int64))) - 1  # the i-th selected takes v[i]
    return take(value, _reshape(ufunc_where(flat, order, 0), shape=tuple(mask.shape)), axis=0)


def _write_batched(trace: BatchTrace, target: Any, own: bool, chain: tuple, index: tuple,
                   value: Any, owned: bool) -> Any:  # fmt: skip
    """dp.vmap: every example's write at once, into the batch (a target shared by every
    example is first copied once per example; a value shared by every example broadcasts)."""
    size = trace.size
    if own:
        sole = owned and _refs(target.value) == _ONE_HOLDER
        whole = target.value
    else:  # a constant of the function (dnp.zeros), written with a batched value
        sole, whole = True, _copy(every(target, False, size))
    index = tuple(Batched(e.value) if type(e) is BatchTracer and e._trace is trace else e
                  for e in index)  # fmt: skip
    selected = _selected_ndim(target, chain, index)
    plan = _batched_index(size, index, selected[1], whole)
    if plan is None:
        raise NotImplementedError(
            "y[index] = v under dp.vmap with a boolean mask of each example's own among other "
            "indices (or beside None, ...) and an array v: each example selects its own number "
            "of elements; give a scalar v, index with the mask alone, or write "
            "dnp.where(mask, v, y) with v shaped like y")
    new_index, order = plan
    batched = type(value) is BatchTracer and value._trace is trace
    if batched or order:  # (a shared value broadcasts from the right: not past the batch axis)
        value = aligned(value.value if batched else every(value, False, size), selected[0])
    if order:  # the layout of the batch's selection
        value = _transpose(value, axes=tuple(int(i) for i in np.argsort(order(selected[0] + 1))))
    new = write(whole, tuple(batched_op(op, size) for op in chain), new_index, value, sole)
    if own and owned:
        target.value = new
        return target
    return BatchTracer(trace, new)


def _selected_ndim(target: Any, chain: tuple, index: tuple) -> tuple[int, int]:
    """(the number of axes of `target`'s view through `chain` indexed by `index`, and of the
    view), in one example."""
    v = unwrapped(target)
    for op in chain:
        v = view_of(v, op)
    one = tuple(unwrapped(e.value)[0] if type(e) is Batched else unwrapped(e) for e in index)
    return np.ndim(v[one]), np.ndim(v)


def batched_op(op: Op, size: int) -> Op:
    """The view operation `op` of one example as the same view of every example of a batch
    of `size`."""
    kind, arg = op
    if kind == "index":
        return kind, (slice(None),) + tuple(arg)
    if kind in ("reshape", "broadcast"):
        return kind, (size,) + tuple(arg)
    if kind == "transpose":
        return kind, (0,) + tuple(a % len(arg) + 1 for a in arg)
    if kind == "diagonal":
        return kind, (arg[0], shifted(arg[1], 0), shifted(arg[2], 0))
    return op  # a copy


def _write_raw(target: Any, chain: tuple, index: tuple, value: Any, owned: bool) -> Any:
    buf = target if owned and _owns_memory(target) else _copy_of(target)
    try:
        _store(buf, chain, index, value)
    except KERNEL_ERRORS as e:
        raise type(e)(f"index_update: {e} ({describe_operands((buf, value), {})})") from e
    return buf


def _store(buf: Any, chain: tuple, index: tuple, value: Any) -> None:
    """`buf` seen through `chain`, then `[index] = value`, written into `buf`'s memory."""
    whole = not index or (len(index) == 1 and index[0] is Ellipsis)
    if chain and chain[-1][0] == "index" and whole:  # all of an indexed view (a 0-d one too):
        chain, index = chain[:-1], chain[-1][1]  # written through its own index
    v = buf
    for k, op in enumerate(chain):
        w = view_of(v, op)
        if op[0] == "reshape" and not shares_memory(w, v):  # NumPy had to copy: write it back
            _store(w, chain[k + 1 :], index, value)
            v[...] = w.reshape(v.shape)
            return
        v = w
    if type(buf) is np.ndarray:
        v[index] = value
    else:
        with device_scope((buf,)):
            v[index] = value


def _owns_memory(x: Any) -> bool:
    """A NumPy array that owns its memory and may be written. (CuPy arrays are copied before
    a write: other CuPy-like libraries may share memory without a `base`, which would hide
    it from the reference count; the old array is freed at once all the same.)"""
    return type(x) is np.ndarray and x.base is None and x.flags.writeable


def _copy_of(x: Any) -> Any:
    """A new writable array with `x`'s values (a Python float or NumPy scalar: 0-d)."""
    if type(x) is float or isinstance(x, np.generic):
        return np.array(x)
    with device_scope((x,)):  # NumPy's layout kept (a reshape stays a view if it was one);
        return x.copy(order="C" if 0 in x.strides else "K")  # a broadcast: NumPy's full is C


#: A write into a copy of the target, as dp.jit records it: a pure operation (the staged
#: target may be read again), whose replay the code generator may still do in place.
_staged_write = NonDifferentiable(
    "write", lambda xp, target, value, *, chain, index: _write_raw(target, chain, index, value, False)
)


# --- a write's derivative ----------------------------------------------------------------
def _write_node(chain: tuple, index: tuple) -> JointNode:
    """The tape node of one write: inputs (old array, value), one output."""

    def pullback(gs: tuple, out: tuple, vals: list) -> list:
        if gs[0] is None:
            return [None, None]
        owned = _refs(gs[0]) == _ONE_HOLDER  # the sweep's tuple is the only other holder
        g = gs[0]
        picked = read(g, (*chain, ("index", index)))  # read first: then g may be zeroed
        if any(op[0] == "imag" for op in chain):  # v went in as 1j * v: -Im(g) is its part
            picked = -picked
        if not _is_basic(index):  # repeated indices: only the last write reaches the output
            picked = ufunc_where(_last_writes(vals[0], chain, index), picked, 0.0)
        return [write(g, chain, index, 0.0, owned), picked]

    return JointNode("index_update", pullback)


def _last_writes(ph: Any, chain: tuple, index: tuple) -> Any:
    """A boolean array shaped like the written elements: True where that element is the one
    NumPy's assignment leaves in place (for repeated advanced indices, the last write)."""
    for op in chain:
        ph = view_of(ph, op)
    xp = namespace_of((ph,))
    with device_scope((ph,)):
        selected = ph[tuple(unwrapped(e) for e in index)].shape  # (one example's index)
        ids = xp.arange(int(np.prod(selected, dtype=np.int64))).reshape(selected)
        owner_ids = xp.full(ph.shape, -1, dtype=ids.dtype)
    owner_ids = write(owner_ids, (), index, ids, True)  # the same index, the same order
    return equal(read(owner_ids, (("index", index),)), ids)


# --- placeholders and sole references ------------------------------------------------------
def placeholder(x: Any) -> Any:
    """A read-only array with `x`'s shape, dtype and device and (almost) no memory: what a
    record saves when its rules need only the shape of an input."""
    r = raw(x)
    if type(r) is np.ndarray:
        return _host_placeholder(r.shape, r.dtype)
    if type(r) is float or isinstance(r, np.generic):
        return as_scalar(r)
    if not hasattr(r, "shape"):  # a list or a Python number written into an array
        return np.asarray(r)
    with device_scope((r,)):
        zero = namespace_of((r,)).zeros((), r.dtype)
        # zero's own module: for a value dp.jit stages, r's namespace hands functions to
        # NumPy, and zero, a constant of the recording, is none of its staged values
        return namespace_of((zero,)).broadcast_to(zero, r.shape)


@functools.lru_cache(maxsize=256)
def _host_placeholder(shape: tuple, dtype: Any) -> np.ndarray:
    return np.broadcast_to(np.zeros((), dtype), shape)


def _refs(x: Any) -> int:
    """The reference count of `x`, called as `_refs(holder.attr)` or `_refs(holder[0])`."""
    return sys.getrefcount(x)


class _Holder:
    __slots__ = ("value",)


def _one_holder() -> int:
    """What `_refs` reports for an object that exactly one attribute (or item) refers to."""
    holder = _Holder()
    holder.value = np.empty(1)
    return _refs(holder.value)


_ONE_HOLDER = _one_holder()
