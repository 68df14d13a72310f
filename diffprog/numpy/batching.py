"""The shapes of dp.vmap's batching rules, derived once, and the loop for the rest.

Owns: `aligned` (unit axes after the batch axis, for broadcasting), the rule families
(`elementwise`: broadcasting operands, the batch axis kept in front; `along_axes`: an
operation on one array whose static params name its axes, shifted past the batch axis;
`stacked`: NumPy's linalg, which maps over leading axes), the rules of the edge primitives
broadcast_to and astype (core cannot import the ops they need; sum_to_shape's is in
reductions), and `loop`, the rule of a primitive without one: it runs the primitive on
each example and stacks the results (correct, not fast; docs/vmap_coverage.md lists the
primitives that use it). A rule gets the arrays one level down and which of them hold the
batch (axis 0); see `Primitive.defbatch`. Every other rule is declared beside its
primitive, in that primitive's module.
Layer L4: imports L0-L3 and other L4 modules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..ad.batching import Batched, example_ndim, install_fallback, ndim, shifted
from ..core.edge import astype, broadcast_to
from ..core.primitive import Primitive


def aligned(v: Any, rank: int) -> Any:
    """The batch `v` with unit axes after its batch axis, so that one example has `rank`
    axes: it then broadcasts against unbatched operands of up to `rank` axes."""
    shape = tuple(v.shape)
    missing = rank - (len(shape) - 1)
    return v if missing <= 0 else manipulation._reshape(v, shape=shape[:1] + (1,) * missing + shape[1:])


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


def stacked(*prims: Primitive) -> None:
    """Primitives of one array that already map over its leading axes (NumPy's linalg): the
    batch axis is one more of them."""
    for prim in prims:
        prim.defbatch(_stacked_rule(prim))


def _stacked_rule(prim: Primitive) -> Callable[..., Any]:
    return lambda size, batched, x, **params: prim(x, **params)


# --- the edge primitives (core/edge.py) ----------------------------------------------------
def _broadcast_to_rule(size: int, batched: tuple, x: Any, *, shape: tuple) -> Any:
    return broadcast_to(aligned(x, len(shape)), shape=(size,) + tuple(shape))


broadcast_to.defbatch(_broadcast_to_rule)
elementwise(astype)


# --- the loop --------------------------------------------------------------------------------
def loop(prim: Primitive, size: int, batched: tuple, *vals: Any, **params: Any) -> Any:
    """`prim` on each example in turn (its batched arrays, and the `Batched` arrays among its
    params, indexed by the example), the results stacked."""
    if size == 0:
        raise ValueError(f"dp.vmap: {prim.name} has no batching rule, and a batch of 0 "
                         "examples gives nothing to stack; use a batch of at least one")  # fmt: skip
    outs = []
    for i in range(size):
        args = [manipulation._getitem(v, index=(i,)) if b else v for v, b in zip(vals, batched)]
        outs.append(prim(*args, **{k: _example(p, i) for k, p in params.items()}))
    columns = list(zip(*outs)) if prim.multiple_results else [outs]
    for parts in columns:
        shapes = sorted({np.shape(p) for p in parts})
        if len(shapes) > 1:
            raise ValueError(
                f"dp.vmap: {prim.name} gives results of shapes {shapes} for different examples "
                "(the shape depends on the data); a batch needs one shape for every example. "
                "Keep shapes fixed: a mask with dnp.where instead of the selected elements")
    stacked = tuple(joins.stack(list(parts)) for parts in columns)
    return stacked if prim.multiple_results else stacked[0]


def _example(p: Any, i: int) -> Any:
    """The static param `p` for example i (a `Batched` array in it is indexed by i)."""
    if type(p) in (tuple, list):
        return type(p)(_example(q, i) for q in p)
    if type(p) is Batched:
        return manipulation._getitem(p.value, index=(i,))
    return p


install_fallback(loop)

# Used at call time; imported last, since both declare their rules with the families above.
from . import joins, manipulation
