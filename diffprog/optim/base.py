"""The optimizer protocol and the leafwise helpers every update rule shares.

Owns: `GradientTransformation` (optax's `(init, update)` pair), `EmptyState`, `chain`,
`identity`, `apply_updates`, `global_norm`, and the private helpers that compare a gradient
tree with the tree it must match (naming the key path on a mismatch), tell floating leaves
from constants, and cast results back to a leaf's own type and dtype.
Layer L6: imports only diffprog.tree, diffprog.backend, diffprog.errors, numpy and the stdlib.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from .. import tree
from ..ad.boundary import fit_to_leaf
from ..ad.staging import StagingTracer
from ..backend import asarray_like, device_scope, is_array, namespace_of
from ..backend import zeros_like as device_zeros_like
from ..errors import DeviceMismatchError, StructureError

__all__ = [
    "EmptyState",
    "GradientTransformation",
    "apply_updates",
    "chain",
    "global_norm",
    "identity",
]


class GradientTransformation(NamedTuple):
    """An update rule: ``init(params) -> state`` and ``update(updates, state, params=None)
    -> (updates, state)``, as in optax.

    >>> opt = dp.optim.sgd(0.1)
    >>> state = opt.init({'w': 1.0})
    >>> opt.update({'w': 2.0}, state)[0]
    {'w': -0.2}
    """

    init: Callable[[Any], Any]
    update: Callable[..., tuple[Any, Any]]


def transformation(init: Callable[[Any], Any], update: Callable[..., tuple[Any, Any]]
                   ) -> GradientTransformation:
    """`GradientTransformation(init, update)` with both run on the GPU of the first CuPy
    leaf they are given (the rules' arithmetic is CuPy's own, which runs on the current GPU;
    a no-op for NumPy)."""

    def scoped_init(params: Any) -> Any:
        with device_scope(tree.leaves(params)):
            return init(params)

    def scoped_update(updates: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        with device_scope(tree.leaves(updates)):
            return update(updates, state, params)

    return GradientTransformation(scoped_init, scoped_update)


class EmptyState(NamedTuple):
    """The state of a rule that keeps none (stateless rules still return one).

    >>> dp.optim.identity().init({'w': 1.0})
    EmptyState()
    """


# ----------------------------------------------------------------------------- leaves


def is_float_leaf(x: Any) -> bool:
    """True for Python floats and complex numbers, floating and complex NumPy/CuPy arrays or
    scalars: the leaves an optimizer updates. Everything else (ints, bools, strings, None,
    integer arrays) is constant."""
    dtype = getattr(x, "dtype", None)
    if dtype is not None:
        return getattr(dtype, "kind", None) in ("f", "c")
    return isinstance(x, (float, complex))


def is_complex_leaf(x: Any) -> bool:
    """True for a complex number or a complex array / scalar (traced or not)."""
    dtype = getattr(x, "dtype", None)
    return isinstance(x, complex) if dtype is None else getattr(dtype, "kind", None) == "c"


def abs_squared(g: Any) -> Any:
    """|g|^2 elementwise, real (g * g for a real g): the second moments of complex gradients."""
    return (g * g.conjugate()).real if is_complex_leaf(g) else g * g


def real_zeros_like(x: Any) -> Any:
    """`zeros_like(x)` in x's real dtype (float64 for complex128): state holding |g|^2."""
    z = zeros_like(x)
    if z is None or not is_complex_leaf(z):
        return z
    r = z.real
    return r.copy() if is_array(r) else r


def zeros_like(x: Any) -> Any:
    """Zeros of ``x``'s type, shape and dtype for a floating leaf; None for a constant."""
    if not is_float_leaf(x):
        return None
    if isinstance(x, np.generic):
        return x.dtype.type(0)
    if getattr(x, "dtype", None) is None:
        return 0j if isinstance(x, complex) else 0.0
    return device_zeros_like(x)


def moment_zeros_like(x: Any, real: bool = False) -> Any:
    """Zeros for an adaptive rule's moment of leaf ``x`` (Adam's mu and nu, RMSProp's nu):
    in ``x``'s dtype (its real dtype with ``real``), but float32 for float16: a float16 nu
    underflows (``0.001 * g**2`` is 0 for every ``|g| < 8e-3``), and ``g / (sqrt(0) + eps)``
    then makes a step of up to 1e5, inf in float16. None for a constant."""
    z = real_zeros_like(x) if real else zeros_like(x)
    return None if z is None else widen(z)


def zero_count(params: Any) -> Any:
    """A step count's 0 where ``params`` live: a 0-d int64 CuPy array on their GPU when
    their arrays are all CuPy arrays on one GPU (a jitted step then keeps it there: no host
    value among its inputs, so it can be captured as a CUDA graph), else a NumPy int64."""
    arrays = [x for x in tree.leaves(params) if is_array(x) and not isinstance(x, np.generic)]
    if not arrays or any(isinstance(x, np.ndarray) for x in arrays):
        return np.int64(0)
    try:
        namespace_of(arrays)  # one GPU?
    except DeviceMismatchError:
        return np.int64(0)
    return asarray_like(0, arrays[0], dtype=np.int64)


def cast_like(x: Any, ref: Any) -> Any:
    """``x`` as a value of ``ref``'s kind: a Python float (complex) for a Python float
    (complex), else an array
    (or NumPy scalar) of ``ref``'s dtype on ``ref``'s device. A traced ``x`` (an optimizer
    step being differentiated) stays traced, cast to ``ref``'s dtype: float() would drop its
    gradient."""
    if isinstance(ref, StagingTracer):  # under dp.jit: the conversion is recorded
        return _staged_like(x, ref.value)
    dtype = getattr(ref, "dtype", None)
    if dtype is not None and type(x) is type(ref) and getattr(x, "dtype", None) == dtype:
        return x
    if not (isinstance(x, numbers.Number) or is_array(x)):  # a tracer
        return x if dtype is None or x.dtype == dtype else x.astype(dtype)
    if dtype is None:
        return complex(x) if isinstance(ref, complex) else float(x)
    if isinstance(ref, np.generic):
        return dtype.type(x)
    return asarray_like(x, ref, dtype=dtype)


def _staged_like(x: Any, value: Any) -> Any:
    """`cast_like` of a value dp.jit stages, for a leaf `value`: a 0-d array's replay would
    otherwise give a NumPy scalar (NumPy's arithmetic on 0-d arrays does) and a NumPy
    scalar's an array, unlike the eager step."""
    if type(value) in (float, complex):
        return fit_to_leaf(x, kind=type(value).__name__, dtype=None)
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(x, "dtype", dtype) != dtype:
        x = x.astype(dtype)
    if isinstance(value, np.generic):
        return fit_to_leaf(x, kind="scalar", dtype=dtype.str)
    if type(value) is np.ndarray and value.ndim == 0:
        return fit_to_leaf(x, kind="array", dtype=None)
    return x


def widen(x: Any) -> Any:
    """``x`` in float32 if it is a narrower float array (float16), else ``x`` itself: the
    dtype to divide in, so that ``eps`` does not round to 0 and make 0/0 a NaN."""
    dtype = getattr(x, "dtype", None)
    if dtype is not None and dtype.kind == "f" and dtype.itemsize < 4:
        return x.astype(namespace_of((x,)).float32)
    return x


def sqrt(x: Any) -> Any:
    """Square root of a Python number or of an array, in the data's own array module."""
    if getattr(x, "dtype", None) is None:
        return math.sqrt(x)
    return namespace_of((x,)).sqrt(x)


# ------------------------------------------------------------------------- structure


def _describe_mismatch(name: str, x: Any, ref_name: str, ref: Any) -> str:
    mine, theirs = tree.leaf_paths(x), tree.leaf_paths(ref)
    mine_set, theirs_set = set(mine), set(theirs)
    missing = [p for p in theirs if p not in mine_set]
    extra = [p for p in mine if p not in theirs_set]
    parts = []
    if missing:
        shown = ", ".join(ref_name + p for p in missing[:3])
        parts.append(f"{name} lack {shown}{' ...' if len(missing) > 3 else ''}")
    if extra:
        shown = ", ".join(name + p for p in extra[:3])
        parts.append(f"{name} have {shown}{' ...' if len(extra) > 3 else ''}, "
                     f"which {ref_name} lack")
    if not parts:
        parts.append(f"the containers differ: {name} are {tree.structure(x)}, "
                     f"{ref_name} are {tree.structure(ref)}")
    return (f"{name} do not have the structure of {ref_name}: " + "; ".join(parts) +
            f". Pass {name} with exactly the structure of {ref_name} (same containers and "
            f"keys; a None leaf marks a constant), e.g. the output of dp.grad(loss)(params)")


def flatten_like(x: Any, ref: Any, name: str = "grads", ref_name: str = "params",
                 shapes: bool = True) -> tuple[list[Any], list[Any], tree.TreeDef]:
    """Flatten ``x`` and ``ref``, checking that they have one structure and (``shapes``)
    that the shapes of leaves present in both agree; returns ``(x_leaves, ref_leaves,
    x_treedef)``."""
    x_leaves, x_def = tree.flatten(x)
    ref_leaves, ref_def = tree.flatten(ref)
    if x_def != ref_def:
        raise StructureError(_describe_mismatch(name, x, ref_name, ref))
    for i, (a, b) in enumerate(zip(x_leaves, ref_leaves) if shapes else ()):
        if a is None or b is None:
            continue
        sa, sb = getattr(a, "shape", ()), getattr(b, "shape", ())
        if tuple(sa) != tuple(sb):
            path = tree.leaf_paths(ref)[i]
            raise StructureError(f"{name}{path} has shape {tuple(sa)} but {ref_name}{path} "
                                 f"has shape {tuple(sb)}; a gradient must have the shape "
                                 f"of its parameter")
    return x_leaves, ref_leaves, x_def


def require_fields(state: Any, cls: type, rule: str) -> None:
    """Check that ``state`` carries ``cls``'s fields (it need not be the same class: a
    state restored by dp.load may be rebuilt from its field names)."""
    if not all(hasattr(state, f) for f in cls._fields):  # type: ignore[attr-defined]
        raise TypeError(f"{rule}.update: expected the state made by its init(), a "
                        f"{cls.__name__} with fields {cls._fields}, got "  # type: ignore[attr-defined]
                        f"{type(state).__name__}; pass the state returned by the same "
                        f"optimizer's init() or previous update()")


# ------------------------------------------------------------------------ combinators


def identity() -> GradientTransformation:
    """The rule that returns its updates unchanged.

    >>> opt = dp.optim.identity()
    >>> opt.update({'w': 2.0}, opt.init({'w': 1.0}))
    ({'w': 2.0}, EmptyState())
    """

    def init(params: Any) -> EmptyState:
        return EmptyState()

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, EmptyState]:
        if params is not None:
            flatten_like(updates, params)
        return updates, EmptyState()

    return transformation(init, update)


def chain(*transforms: GradientTransformation) -> GradientTransformation:
    """Apply ``transforms`` one after another; the state is a tuple of their states.

    >>> opt = dp.optim.chain(dp.optim.clip_by_global_norm(1.0), dp.optim.sgd(0.5))
    >>> opt.update({'w': 4.0}, opt.init({'w': 0.0}))[0]
    {'w': -0.5}
    """
    for i, t in enumerate(transforms):
        if not (callable(getattr(t, "init", None)) and callable(getattr(t, "update", None))):
            raise TypeError(f"chain: argument {i} is {type(t).__name__}, not a "
                            f"GradientTransformation (an object with init and update)")

    def init(params: Any) -> tuple[Any, ...]:
        return tuple(t.init(params) for t in transforms)

    def update(updates: Any, state: Any, params: Any = None) -> tuple[Any, tuple[Any, ...]]:
        if not isinstance(state, tuple) or len(state) != len(transforms):
            raise TypeError(f"chain.update: expected the state made by its init(), a tuple "
                            f"of {len(transforms)} states, got {type(state).__name__}"
                            f"{f' of length {len(state)}' if isinstance(state, tuple) else ''}")
        new_state = []
        for t, s in zip(transforms, state):
            updates, s = t.update(updates, s, params)
            new_state.append(s)
        return updates, tuple(new_state)

    return transformation(init, update)


# --------------------------------------------------------------------------- helpers


def apply_updates(params: Any, updates: Any) -> Any:
    """``params + updates`` leafwise; a None update leaves its leaf unchanged, and every
    result keeps its parameter's type and dtype.

    >>> dp.optim.apply_updates({'w': 1.0, 'n': 3}, {'w': -0.25, 'n': None})
    {'w': 0.75, 'n': 3}
    """
    u_leaves, p_leaves, _ = flatten_like(updates, params, "updates", "params")
    _, p_def = tree.flatten(params)
    out = []
    with device_scope(p_leaves):
        for i, (p, u) in enumerate(zip(p_leaves, u_leaves)):
            out.append(_updated(params, i, p, u))
    return tree.unflatten(p_def, out)


def _updated(params: Any, i: int, p: Any, u: Any) -> Any:
    """Leaf `i` of params, `p`, moved by its update `u`."""
    if u is None:
        return p
    if not is_float_leaf(p):
        path = tree.leaf_paths(params)[i]
        raise TypeError(f"apply_updates: params{path} is a constant "
                        f"({type(p).__name__}{f' of dtype {p.dtype}' if hasattr(p, 'dtype') else ''}) "
                        f"but its update is not None; only floating leaves are trained, "
                        f"so give constants a None gradient")
    return cast_like(p + u, p)


def global_norm(updates: Any) -> Any:
    """The Euclidean norm of all leaves of ``updates`` together (None leaves skipped); a
    Python float when every leaf is one, else a 0-d value of the data's array module.

    >>> float(dp.optim.global_norm({'a': np.array([3.0]), 'b': [4.0, None]}))
    5.0
    """
    leaves = tree.leaves(updates)
    with device_scope(leaves):
        return sqrt(_squared_norm(leaves))


def squared_global_norm(updates: Any) -> Any:
    """`global_norm` squared, without the square root (whose derivative at 0 is infinite:
    clip_by_global_norm compares this, so a zero gradient tree has a finite derivative)."""
    leaves = tree.leaves(updates)
    with device_scope(leaves):
        return _squared_norm(leaves)


def _squared_norm(leaves: list[Any]) -> Any:
    total: Any = 0.0
    for g in leaves:
        if g is None:
            continue
        if getattr(g, "dtype", None) is None:
            total = total + abs(g) ** 2
        else:
            xp = namespace_of((g,))
            g = g.astype(xp.result_type(g.dtype, xp.float32), copy=False)
            total = total + xp.sum(abs_squared(g))
    return total
