"""dp.vmap: a function of one example, run once on a whole batch of them.

Owns: `vmap` and its conventions (JAX's): `in_axes` says, per argument, which axis of each
leaf holds the examples (an int, negative allowed, None for an argument shared by all
examples, or a pytree of them that is a prefix of the argument's structure); keyword
arguments are batched along axis 0; `out_axes` says where the batch axis goes in each
output leaf (None: an output that is the same for every example). Also the errors of
mismatched batch sizes, naming the leaves (key paths) and their sizes.
The work is done by the batching trace (ad/batching.py) and each primitive's rule.
Layer L5: imports L0-L4.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import numpy as dnp
from .. import tree
from ..ad.batching import BatchTrace, BatchTracer
from ..backend import device_scope, is_array
from ..core.trace import Tracer, numpy_store_unwrapped, open_trace, raw
from ..errors import StructureError


def vmap(f: Callable[..., Any], in_axes: Any = 0, out_axes: Any = 0,
         axis_size: int | None = None) -> Callable[..., Any]:  # fmt: skip
    """f mapped over a batch axis of its arguments: one call on the whole batch, with the
    result of each example stacked along `out_axes`. f is written for one example.

    >>> import numpy as np, diffprog as dp, diffprog.numpy as dnp
    >>> dp.vmap(lambda x, w: dnp.sum(x * w), in_axes=(0, None))(np.ones((3, 2)), np.ones(2))
    array([2., 2., 2.])

    Composes with every transform: `dp.vmap(dp.grad(loss), in_axes=(None, 0))(params, batch)`
    gives per-example gradients. `axis_size` is needed only when no argument is batched.
    """

    @functools.wraps(f)
    def batched_f(*args: Any, **kwargs: Any) -> Any:
        axes = _in_axes(in_axes, args, kwargs)
        leaves_with_paths, treedef = tree.flatten_with_path((args, kwargs))
        size = _batch_size(leaves_with_paths, axes, axis_size)
        with device_scope(leaf for _, leaf in leaves_with_paths), \
                open_trace(BatchTrace, "dp.vmap", size) as trace:  # (on the arguments' GPU)
            leaves = [_batched(trace, leaf, axis) for (_, leaf), axis in zip(leaves_with_paths, axes)]
            args_b, kwargs_b = tree.unflatten(treedef, leaves)
            with numpy_store_unwrapped():
                out = f(*args_b, **kwargs_b)
            return _outputs(trace, out, out_axes)

    return batched_f


def _in_axes(in_axes: Any, args: tuple, kwargs: dict) -> list[Any]:
    """One axis (or None) per leaf of (args, kwargs), kwargs batched along axis 0."""
    if isinstance(in_axes, list):
        in_axes = tuple(in_axes)
    if isinstance(in_axes, tuple) and len(in_axes) != len(args):
        raise StructureError(
            f"dp.vmap: in_axes has {len(in_axes)} entries but the function got {len(args)} "
            "positional argument(s); give one entry per positional argument (or one int or None "
            "for all of them)"
        )
    spec = (in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args),
            {k: 0 for k in kwargs})  # fmt: skip
    for a in tree.leaves(spec):
        if a is not None and not isinstance(a, (int, np.integer)) or isinstance(a, bool):
            raise TypeError(f"dp.vmap: in_axes holds {a!r}; each entry must be an int or None "
                            "(or a pytree of them, a prefix of the argument's structure)")  # fmt: skip
    try:
        return tree.broadcast_prefix(spec, (args, kwargs))
    except ValueError as e:
        raise StructureError(
            f"dp.vmap: in_axes={in_axes!r} is not a prefix of the arguments' structure "
            f"{tree.structure(args)} ({e}); give an int or None per argument, or a pytree of "
            "them shaped like the argument's containers"
        ) from None


def _batch_size(leaves_with_paths: list, axes: list, axis_size: int | None) -> int:
    """The one batch size of the batched leaves (checked against `axis_size`)."""
    sizes = {}
    for (path, leaf), axis in zip(leaves_with_paths, axes):
        if axis is None or leaf is None:
            continue
        shape = tuple(getattr(leaf, "shape", ()))
        where = _argument_name(path)
        if not -len(shape) <= axis < len(shape):
            if path[0].entry == 1:  # a keyword argument: in_axes cannot name its axis
                raise ValueError(
                    f"dp.vmap: {where} has shape {shape} ({type(leaf).__name__}), but keyword "
                    "arguments are batched along axis 0 (in_axes covers the positional ones); "
                    "pass it by position with in_axes None if every example shares it, or "
                    "close over it (functools.partial)"
                )
            raise ValueError(
                f"dp.vmap: in_axes asks for axis {axis} of {where}, which has shape {shape} "
                f"({type(leaf).__name__}); give an axis it has, or None if every example "
                "shares it"
            )
        sizes[where] = shape[axis]
    found = set(sizes.values()) | ({axis_size} if axis_size is not None else set())
    if len(found) > 1:
        listed = ", ".join(f"{w}: {n}" for w, n in sizes.items())
        given = f"; axis_size={axis_size}" if axis_size is not None else ""
        raise ValueError(
            f"dp.vmap: the batched arguments disagree on the batch size ({listed}{given}); "
            "every batched axis must have the same length"
        )
    if not found:
        raise ValueError("dp.vmap: no argument is batched (in_axes is None for all of them); "
                         "pass axis_size=n to run the function for n examples")  # fmt: skip
    return found.pop()


def _argument_name(path: tuple) -> str:
    """How errors name a leaf of (args, kwargs): `argument 0['w']`, `keyword x`."""
    kind, key = (e.entry for e in path[:2])
    return f"{'keyword argument' if kind else 'argument'} {key}{tree.keystr(path[2:])}"


def _batched(trace: BatchTrace, leaf: Any, axis: int | None) -> Any:
    if axis is None or leaf is None:
        return leaf
    if axis != 0 and axis != -len(leaf.shape):
        leaf = dnp.moveaxis(leaf, axis, 0)
    return BatchTracer(trace, leaf)


def _outputs(trace: BatchTrace, out: Any, out_axes: Any) -> Any:
    """f's outputs with the batch axis of each leaf at its place in `out_axes`."""
    try:
        axes = tree.broadcast_prefix(out_axes, out)
    except ValueError as e:
        raise StructureError(f"dp.vmap: out_axes={out_axes!r} is not a prefix of the output's "
                             f"structure {tree.structure(out)} ({e})") from None  # fmt: skip
    leaves_with_paths, treedef = tree.flatten_with_path(out)
    done = []
    for (path, leaf), axis in zip(leaves_with_paths, axes):
        ours = isinstance(leaf, BatchTracer) and leaf._trace is trace
        if axis is None:
            if ours:
                raise ValueError(
                    f"dp.vmap: out_axes is None for the output{tree.keystr(path)}, but it "
                    "differs between examples; give the axis where its examples go"
                )
            done.append(leaf)
            continue
        if ours:
            value = leaf.value
        elif is_array(leaf) or isinstance(leaf, (float, int, Tracer)) and not isinstance(leaf, bool):
            value = _repeated(leaf, trace.size)
        else:  # None, a string: no array to stack
            done.append(leaf)
            continue
        rank = len(value.shape)
        if not -rank <= axis < rank:
            raise ValueError(f"dp.vmap: out_axes asks for axis {axis} of the output"
                             f"{tree.keystr(path)}, which has {rank - 1} axes per example")  # fmt: skip
        done.append(value if axis % rank == 0 else dnp.moveaxis(value, 0, axis))
    return tree.unflatten(treedef, done)


def _repeated(x: Any, size: int) -> Any:
    """An output the same for every example, repeated `size` times along a new axis 0."""
    if isinstance(x, Tracer):
        return dnp.broadcast_to(x, (size,) + tuple(x.shape))
    r = np.asarray(raw(x)) if isinstance(x, (float, int, np.generic)) else x
    return dnp.broadcast_to(r, (size,) + r.shape).copy()
