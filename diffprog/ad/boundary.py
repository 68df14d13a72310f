"""The transform boundary: which leaves are differentiated, and adjoints shaped like them.

Owns: `leaf_kind` (a floating leaf is differentiated; int, bool, str, None, integer arrays
and other objects are constants; complex leaves are differentiated like floating ones (JAX's
convention, see README "Complex numbers"); exotic numbers are refused, and so is an
unregistered dataclass holding floats, also among outputs: `refuse_opaque_floats`), `Watched`
(an argument with every floating leaf wrapped in a tracer of a trace), `own_value` (a tracer of a
given trace back to its primal) and `adjoint_like` (a cotangent turned into exactly the
type, shape and dtype of its primal, real zeros where the output did not reach it).
Errors name the leaf by its key path.
Layer L3: imports L0-L2.
"""

from __future__ import annotations

import dataclasses
import numbers
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import tree
from ..backend import asarray_like, device_scope, host_copy, is_array, zeros_like
from ..core.edge import astype
from ..core.primitive import NonDifferentiable
from ..core.trace import Tracer, raw
from ..errors import StructureError, UnsupportedLeafError

FLOAT, CONSTANT = "float", "constant"

_CONSTANT_TYPES = (bool, int, str, bytes, type(None))


def leaf_kind(leaf: Any) -> str:
    """FLOAT for a differentiable leaf, CONSTANT for one whose adjoint is None; else raise.

    The raised error's message lacks the leaf's path; `Watched` adds it.

    An unregistered dataclass is one opaque leaf to dp.tree. Holding a floating value
    anywhere inside, it is refused: as a constant its adjoint would be None, silently
    dropping what was most likely meant to be differentiated (params). Holding none (a config
    of ints and strings), it is a constant like a string: refusing every dataclass leaf would
    break such configs passed along with the params for no gain.
    """
    value = raw(leaf)  # a tracer of an outer transform is classified by its value
    while isinstance(value, Tracer):  # a value dp.jit stages or dp.vmap batches: by its data
        value = value.value
    t = type(value)
    if t is float or t is complex:
        return FLOAT
    if t in _CONSTANT_TYPES:
        return CONSTANT
    if t is np.ndarray or is_array(value):
        kind = value.dtype.kind
        if kind == "f" or kind == "c":
            return FLOAT
        if kind in "biuUSMm":
            return CONSTANT
        raise UnsupportedLeafError(
            f"array of dtype {value.dtype} cannot be differentiated; use a float dtype"
        )
    if isinstance(value, numbers.Number):
        raise UnsupportedLeafError(
            f"{t.__name__} value {value!r} cannot be differentiated; convert it to float (or a "
            "float array), or mark it constant by passing it through a non-differentiated argument"
        )
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        _refuse_floating_dataclass(value)
    return CONSTANT


def refuse_opaque_floats(leaves: list[Any], out: Any, what: str) -> None:
    """Raise if one of `leaves` (those of `out`: an output, a tape's target) is an unregistered
    dataclass holding floats: traced values inside it are out of the transform's sight."""
    for i, leaf in enumerate(leaves):
        if hasattr(type(leaf), "__dataclass_fields__"):  # a dataclass instance, quickly
            try:
                _refuse_floating_dataclass(leaf)
            except UnsupportedLeafError as e:
                raise UnsupportedLeafError(f"{what}{tree.leaf_paths(out)[i]}: {e}") from None


def _refuse_floating_dataclass(obj: Any) -> None:
    """Raise if the unregistered dataclass `obj` holds a floating value (see `leaf_kind`)."""
    seen = {id(obj)}
    try:
        names = [f.name for f in dataclasses.fields(obj)
                 if _holds_float(getattr(obj, f.name, None), seen)]
    except (StructureError, RecursionError):  # a cycle or a very deep field: a constant
        return
    if names:
        t = type(obj)
        raise UnsupportedLeafError(
            f"unregistered dataclass {t.__qualname__} holds floating values (in {', '.join(names)})"
            " but dp.tree sees it as one opaque leaf, a constant with a None gradient. Register "
            f"it to differentiate its fields: dp.tree.register_dataclass({t.__name__}) once, or "
            "@dp.tree.register_dataclass above @dataclasses.dataclass (fields with "
            "metadata={'static': True} stay constants); or pass it in an argument that is not "
            "differentiated"
        )


def _holds_float(x: Any, seen: set[int]) -> bool:
    """Whether `x` holds a floating leaf, looking into unregistered dataclasses too."""
    for leaf in tree.leaves(x):
        value = raw(leaf)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            if id(value) not in seen:
                seen.add(id(value))
                if any(_holds_float(getattr(value, f.name, None), seen)
                       for f in dataclasses.fields(value)):
                    return True
        elif type(value) in (float, complex) or (is_array(value) and value.dtype.kind in "fc"):
            return True
    return False


class Watched:
    """One differentiated argument: its leaves, its treedef, the tracers that stand in, and
    (reverse mode) the tape slots they had when created: `x[i] = v` rebinds a tracer object to
    a new slot, but the adjoint wanted is the input's."""

    __slots__ = ("leaves", "treedef", "tracers", "slots", "tree")

    def __init__(self, arg: Any, wrap: Callable[[int, Any], Any], where: Callable[[], str],
                 flat: tuple[list[Any], Any] | None = None):
        """`wrap(i, value)` makes the tracer for floating leaf i (a Python float stays one:
        it is weakly typed in NumPy's promotion); `where()` names the argument in errors;
        `flat` is `tree.flatten(arg)` when the caller has it already."""
        leaves, self.treedef = tree.flatten(arg) if flat is None else flat
        tracers = []
        for i, leaf in enumerate(leaves):
            if type(leaf) is np.ndarray and leaf.dtype.kind == "f":  # the common case, first
                tracers.append(wrap(i, leaf))
                continue
            try:
                kind = leaf_kind(leaf)
            except UnsupportedLeafError as e:
                path = tree.keystr(tree.flatten_with_path(arg)[0][i][0])
                raise UnsupportedLeafError(f"{where()}{path}: {e}") from None
            if kind is FLOAT:  # (a Python complex is traced as a complex128 scalar)
                tracers.append(wrap(i, np.complex128(leaf) if type(leaf) is complex else leaf))
            else:
                tracers.append(None)
        self.leaves = leaves
        self.tracers = tracers
        self.slots = [getattr(t, "slot", None) for t in tracers]
        #: the argument rebuilt with tracers in place of its floating leaves
        self.tree = tree.unflatten(
            self.treedef, [leaf if t is None else t for leaf, t in zip(leaves, tracers)]
        )

    def fingerprints(self) -> list[int | None]:
        """Checksums of the argument's NumPy arrays, to detect in-place changes later."""
        return [
            zlib.crc32(np.ascontiguousarray(leaf)) if type(leaf) is np.ndarray else None
            for leaf in self.leaves
        ]

    def check_unchanged(self, fingerprints: list[int | None], where: str) -> None:
        """Raise if an array of the argument changed since `fingerprints` were taken."""
        for i, (leaf, before) in enumerate(zip(self.leaves, fingerprints)):
            if before is not None and zlib.crc32(np.ascontiguousarray(leaf)) != before:
                path = tree.keystr(tree.flatten_with_path(self.tree)[0][i][0])
                raise ValueError(
                    f"{where}{path} was modified in place after it was recorded; values saved "
                    "for the backward pass would be stale and the gradient wrong. Record again "
                    "after modifying it, or modify a copy"
                )

    def adjoint(self, cts: list[Any]) -> Any:
        """The argument's adjoint from the sweep's cotangent list, shaped like the argument."""
        return tree.unflatten(
            self.treedef,
            [
                None if s is None else float_adjoint(cts[s], leaf)
                for leaf, s in zip(self.leaves, self.slots)
            ],
        )


def own_value(trace: Any, x: Any) -> Any:
    """A tracer of `trace` back to its primal value; anything else unchanged."""
    return x.value if isinstance(x, Tracer) and x._trace is trace else x


def adjoint_like(ct: Any, leaf: Any) -> Any:
    """The adjoint of `leaf` from its cotangent `ct` (None = unreached): same type, shape,
    dtype and device as the leaf, real zeros when unreached. Constant leaves get None."""
    return None if leaf_kind(leaf) is CONSTANT else float_adjoint(ct, leaf)


def float_adjoint(ct: Any, leaf: Any) -> Any:
    """`adjoint_like` for a leaf known to be floating."""
    if type(ct) is np.ndarray and type(leaf) is np.ndarray:  # the common case, first
        return ct if ct.flags.writeable else ct.copy()  # broadcast views are read-only
    value = raw(leaf)
    if isinstance(value, Tracer) and not value.batched:  # a leaf dp.jit stages (dp.vmap's
        value = value.value  # stands for one example: its zeros are one example's)
    kind = ("float" if type(value) is float else "complex" if type(value) is complex
            else "scalar" if isinstance(value, np.generic) else "array")
    if ct is None:
        if kind == "array":
            return zeros_like(value)
        return value.dtype.type(0) if kind == "scalar" else 0.0 if kind == "float" else 0j
    if isinstance(ct, Tracer):
        if not ct.opaque or ct.batched:  # graph extension (or dp.vmap's batch): traced
            return ct
        return fit_to_leaf(ct, kind=kind, dtype=value.dtype.str if kind == "scalar" else None)
    if kind == "array" and type(ct) is not type(value):  # a NumPy scalar ct of a 0-d array,
        # or a device ct of a 0-d NumPy array (a host scalar beside device arrays: see backend)
        ct = host_copy(ct) if type(value) is np.ndarray else asarray_like(ct, value)
    with device_scope((ct,)):
        return _fit(None, ct, kind=kind, dtype=value.dtype.str if kind == "scalar" else None)


def _fit(xp: Any, ct: Any, *, kind: str, dtype: str | None) -> Any:
    """A cotangent as its leaf's type: a Python float, a NumPy scalar, or an array that owns
    its memory (a broadcast view is read-only in NumPy and shared in CuPy: copied)."""
    if kind == "float":
        return float(ct)
    if kind == "complex":
        return complex(ct)
    if kind == "scalar":
        return np.dtype(dtype).type(ct)
    if xp is not None and (isinstance(ct, np.generic) or not hasattr(ct, "flags")):
        ct = xp.asarray(ct)  # (staged: a NumPy scalar cotangent of a 0-d array)
    if not getattr(ct.flags, "writeable", True) or (0 in ct.strides and ct.size > 1):
        ct = ct.copy()
    return ct


#: `_fit` as a primitive, for values dp.jit stages (the conversion is then recorded): the
#: adjoints of leaves, an optimizer's update of a Python float parameter
fit_to_leaf = NonDifferentiable("fit_adjoint", _fit)
# dp.vmap: the adjoints of a batch of leaves are one array (of a Python float's: float64)
fit_to_leaf.defbatch(lambda size, batched, ct, *, kind, dtype: fit_to_leaf(
    ct if kind == "array" else astype(ct, dtype=np.dtype(dtype or np.float64)), kind="array",
    dtype=None))  # fmt: skip
