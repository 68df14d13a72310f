"""The shapes of dp.vmap's batching rules, derived once, and the loop for the rest.

Owns: the helpers every batching rule uses (`example_ndim`, `aligned`, `every`,
`shifted`), the rule families (`elementwise`: broadcasting operands with the batch axis
kept in front; `along_axes`: an operation on one array whose static params name its axes,
shifted past the batch axis), the rules of the edge primitives broadcast_to and astype
(core cannot import the ops they need; sum_to_shape's is in reductions) and `loop`, the rule of a primitive without
one: it runs the primitive on each example and stacks the results (correct, not fast;
docs/vmap_coverage.md lists the primitives that use it).
A rule gets the arrays one level down and which of them hold the batch (axis 0); see
`Primitive.defbatch`.
Layer L4: imports L0-L3 and other L4 modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..ad.batching import BatchTracer, install_fallback
from ..core.edge import astype, broadcast_to
from ..core.primitive import Primitive
from .joins import stack
from .manipulation import _getitem, _reshape


def ndim(v: Any) -> int:
    """The number of axes of `v` (0 for a Python number)."""
    return len(getattr(v, "shape", ()))


def example_ndim(v: Any, batched: bool) -> int:
    """The number of axes of one example of `v`."""
    return ndim(v) - 1 if batched else ndim(v)


def aligned(v: Any, rank: int) -> Any:
    """The batch `v` with unit axes after its batch axis, so that one example has `rank`
    axes: it then broadcasts against unbatched operands of up to `rank` axes."""
    shape = tuple(v.shape)
    missing = rank - (len(shape) - 1)
    return v if missing <= 0 else _reshape(v, shape=shape[:1] + (1,) * missing + shape[1:])


def every(v: Any, batched: bool, size: int) -> Any:
    """`v` as a batch: an unbatched `v` repeated for each of `size` examples (a broadcast
    view)."""
    if batched:
        return v
    return broadcast_to(v, shape=(size,) + tuple(getattr(v, "shape", ())))


def shifted(axis: Any, rank: int) -> Any:
    """The axis (an int, a tuple of them, or None = all of one example's `rank` axes) of an
    example as an axis of the batch: negative axes count from the end and stay."""
    if axis is None:
        return tuple(range(1, rank + 1))
    if isinstance(axis, (tuple, list)):
        return tuple(shifted(a, rank) for a in axis)
    return axis + 1 if axis >= 0 else axis


# --- families ------------------------------------------------------------------------------
def elementwise(*prims: Primitive) -> None:
    """Broadcasting elementwise primitives: batched operands get unit axes after the batch
    axis up to the widest example, unbatched ones broadcast from the right as they are."""
    for prim in prims:
        prim.defbatch(_elementwise_rule(prim))


def _elementwise_rule(prim: Primitive) -> Callable[..., Any]:
    def rule(size: int, batched: tuple, *vals: Any, **params: Any) -> Any:
        rank = max(example_ndim(v, b) for v, b in zip(vals, batched))
        return prim(*(aligned(v, rank) if b else v for v, b in zip(vals, batched)), **params)

    return rule


def along_axes(*prims: Primitive, names: tuple[str, ...] = ("axis",)) -> None:
    """Primitives of one batched array whose params `names` are axes of it (None: all of
    them): the axes are shifted past the batch axis."""
    for prim in prims:
        prim.defbatch(_along_axes_rule(prim, names))


def _along_axes_rule(prim: Primitive, names: tuple[str, ...]) -> Callable[..., Any]:
    def rule(size: int, batched: tuple, x: Any, **params: Any) -> Any:
        rank = ndim(x) - 1
        for name in names:
            params[name] = shifted(params[name], rank)
        return prim(x, **params)

    return rule


# --- the edge primitives (core/edge.py) ----------------------------------------------------
def _broadcast_to_rule(size: int, batched: tuple, x: Any, *, shape: tuple) -> Any:
    return broadcast_to(aligned(x, len(shape)), shape=(size,) + tuple(shape))


broadcast_to.defbatch(_broadcast_to_rule)
elementwise(astype)


# --- the loop --------------------------------------------------------------------------------
def loop(trace: Any, prim: Primitive, batched: tuple, *vals: Any, **params: Any) -> Any:
    """`prim` on each example in turn (its batched arrays, and the batched values among its
    params, indexed by the example), the results stacked."""
    if trace.size == 0:
        raise ValueError(f"dp.vmap: {prim.name} has no batching rule, and a batch of 0 "
                         "examples gives nothing to stack; use a batch of at least one")  # fmt: skip
    outs = []
    for i in range(trace.size):
        args = [_getitem(v, index=(i,)) if b else v for v, b in zip(vals, batched)]
        outs.append(prim(*args, **{k: _example(p, trace, i) for k, p in params.items()}))
    if prim.multiple_results:
        return tuple(stack(list(parts)) for parts in zip(*outs))
    return stack(outs)


def _example(p: Any, trace: Any, i: int) -> Any:
    """The static param `p` for example i (a tracer of `trace` in it is indexed by i)."""
    if type(p) in (tuple, list):
        return type(p)(_example(q, trace, i) for q in p)
    if type(p) is BatchTracer and p._trace is trace:
        return _getitem(p.value, index=(i,))
    return p


install_fallback(loop)
