"""Whole derivatives as nested pytrees: jacrev, jacfwd, jacobian, hessian, hvp.

Owns: assembling Jacobians from one reverse sweep per output element (`jacrev`) or one
forward pass per input element (`jacfwd`), nested as JAX nests them: the output's structure
outside, the input's structure inside, each leaf of shape out_leaf.shape + in_leaf.shape.
`hessian` is forward-over-reverse; `hvp` (reverse-over-forward) never forms the Hessian.
Layer L5: imports L0-L4 and transforms.core.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import numpy as dnp
from .. import tree
from ..backend import device_scope, namespace_of
from ..ad.boundary import FLOAT, leaf_kind
from ..core.trace import raw, unwrapped
from ..errors import UnsupportedLeafError
from .core import _argnums, as_tuples, grad, jvp, stop_gradient, vjp


def jacrev(f: Callable[..., Any], argnums: int | Sequence[int] = 0,
           holomorphic: bool = False) -> Callable[..., Any]:  # fmt: skip
    """The Jacobian of `f` by reverse mode: one backward sweep per output element. Complex
    outputs need `holomorphic=True` (then inputs and outputs are complex and the entries are
    df_i/dz_j), as in JAX; a real output of complex inputs gives grad's rows.

    >>> import numpy as np, diffprog as dp
    >>> dp.jacrev(lambda x: {"y": x ** 2})(np.array([1.0, 2.0]))["y"]
    array([[2., 0.],
           [0., 4.]])
    """

    @functools.wraps(f)
    def jac_f(*args: Any) -> Any:
        nums = _argnums(argnums, f, len(args), "dp.jacrev")
        out, vjp_fn = vjp(_partial(f, args, nums), *(args[i] for i in nums))
        out_leaves, out_def = tree.flatten(out)
        blocks = []
        if holomorphic:
            _check_kinds("dp.jacrev", "input", tree.leaves([args[i] for i in nums]), True)
        _check_kinds("dp.jacrev", "output", out_leaves, holomorphic)
        for k, o in enumerate(out_leaves):
            if not _is_float(o):
                blocks.append(_none_like(args, nums, argnums))
                continue
            rows = []
            for e in _basis(o):
                ct = tree.unflatten(out_def, [e if j == k else None for j in range(len(out_leaves))])
                rows.append(vjp_fn(ct))
            blocks.append(_assemble(rows, _shape(o), args, nums, argnums, out_first=True))
        return tree.unflatten(out_def, blocks)

    return jac_f


def jacfwd(f: Callable[..., Any], argnums: int | Sequence[int] = 0,
           holomorphic: bool = False) -> Callable[..., Any]:  # fmt: skip
    """The Jacobian of `f` by forward mode: one forward pass per input element. Complex
    inputs need `holomorphic=True` (then the entries are df_i/dz_j), as in JAX.

    >>> import numpy as np, diffprog as dp
    >>> dp.jacfwd(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """

    @functools.wraps(f)
    def jac_f(*args: Any) -> Any:
        nums = _argnums(argnums, f, len(args), "dp.jacfwd")
        primals = tuple(args[i] for i in nums)
        g = _partial(f, args, nums)
        flat, in_def = tree.flatten(primals)
        _check_kinds("dp.jacfwd", "input", flat, holomorphic)
        columns: list[list[Any]] = []  # columns[m] = output tangents for input leaf m
        out = None
        for m, leaf in enumerate(flat):
            columns.append([])
            if not _is_float(leaf):
                continue
            for e in _basis(leaf):
                tangents = tree.unflatten(in_def, [e if j == m else None for j in range(len(flat))])
                out, t_out = jvp(g, primals, tangents)
                columns[m].append(t_out)
        if out is None:
            out = g(*primals)
        out_leaves, out_def = tree.flatten(out)
        blocks = []
        for k, o in enumerate(out_leaves):
            per_input = []
            for m, leaf in enumerate(flat):
                if not (_is_float(leaf) and _is_float(o)):
                    per_input.append(None)
                    continue
                cols = [tree.leaves(t)[k] for t in columns[m]]
                per_input.append(_stack(cols, _shape(o), _shape(leaf), out_first=False))
            inner = tree.unflatten(in_def, per_input)
            blocks.append(inner[0] if isinstance(argnums, int) else inner)
        return tree.unflatten(out_def, blocks)

    return jac_f


jacobian = jacrev


def hessian(f: Callable[..., Any], argnums: int | Sequence[int] = 0,
            holomorphic: bool = False) -> Callable[..., Any]:  # fmt: skip
    """The Hessian of a scalar `f`, forward-over-reverse, nested like a Jacobian of the
    gradient: the input's structure, then the input's structure again. Complex inputs need
    `holomorphic=True` (f''(z)).

    >>> import numpy as np, diffprog as dp, diffprog.numpy as dnp
    >>> dp.hessian(lambda x: dnp.sum(x ** 3))(np.array([1.0, 2.0]))
    array([[ 6.,  0.],
           [ 0., 12.]])
    """
    return jacfwd(jacrev(f, argnums, holomorphic), argnums, holomorphic)


def hvp(f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """`(value, hvp)`: f's value and its Hessian applied to `tangents`, without forming the
    Hessian. `primals`, `tangents` and `hvp` are tuples of pytrees; f returns a real scalar.

    Reverse over forward: the gradient of the directional derivative <grad f, v>, which one
    forward-mode pass computes. Forward over reverse (the jvp of the gradient) gives the same
    numbers but also computes the gradient itself, which hvp does not return: on an MLP that is
    one wasted product per weight matrix (the reverse pass's `a.T @ g`).

    >>> import numpy as np, diffprog as dp, diffprog.numpy as dnp
    >>> dp.hvp(lambda x: dnp.sum(x ** 3), (np.array([1.0, 2.0]),), (np.array([1.0, 1.0]),))
    (np.float64(9.0), (array([ 6., 12.]),))
    """
    primals, tangents = as_tuples("dp.hvp", primals, tangents)

    @functools.wraps(f)  # errors about f's output name f
    def directional(*args: Any) -> tuple[Any, Any]:
        value, tangent = jvp(f, args, tangents)
        # A constant output has no tangent: its value (a constant) gets zero adjoints, or the
        # error grad gives for a non-scalar or non-floating output.
        return (stop_gradient(value) if tangent is None else tangent), value

    hvps, value = grad(directional, argnums=tuple(range(len(primals))), has_aux=True)(*primals)
    return value, hvps


# --- assembly helpers ------------------------------------------------------------------------
def _partial(f: Callable[..., Any], args: Sequence[Any], nums: Sequence[int]) -> Callable[..., Any]:
    """f as a function of args[nums] only, the other arguments fixed."""

    def g(*chosen: Any) -> Any:
        full = list(args)
        for i, v in zip(nums, chosen):
            full[i] = v
        return f(*full)

    return g


def _is_float(x: Any) -> bool:
    try:
        return leaf_kind(x) is FLOAT
    except TypeError:
        return False


def _check_kinds(origin: str, what: str, leaves: list[Any], holomorphic: bool) -> None:
    """Complex `what`s (inputs or outputs) need holomorphic=True, which needs complex ones:
    one-hot real seeds would see only the real direction of a complex value."""
    for leaf in leaves:
        if not _is_float(leaf):
            continue
        dtype = np.result_type(unwrapped(leaf))
        if (dtype.kind == "c") != holomorphic:
            fix = ("pass holomorphic=True for a holomorphic f, or differentiate a real function "
                   "of it (dp.grad, dp.jacrev of a real output)") if not holomorphic else (
                   "pass complex values (x.astype(complex)) or drop holomorphic=True")  # fmt: skip
            raise UnsupportedLeafError(
                f"{origin}{'(holomorphic=True)' if holomorphic else ''} got a"
                f"{'' if holomorphic else ' complex'} {what} of dtype {dtype}: {fix}"
            )


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(getattr(x, "shape", ()))


def _basis(x: Any) -> list[Any]:
    """One-hot arrays like `x`, one per element, in C order (a Python float for a float)."""
    if type(x) is float:
        return [1.0]
    r = raw(x)
    xp = namespace_of((r,))
    if not r.shape and xp is np:
        return [r.dtype.type(1)]
    out = []
    with device_scope((r,)):  # on r's GPU; a 0-d CuPy array's seed stays a device array
        for i in range(r.size):
            e = xp.zeros(r.size, dtype=r.dtype)
            e[i] = 1
            out.append(e.reshape(r.shape))
    return out


def _stack(parts: list[Any], outer: tuple, inner: tuple, out_first: bool) -> Any:
    """Stack per-element derivatives into one leaf of shape outer + inner.

    Written in diffprog ops, so a Jacobian taken inside another transform is traced too.
    """
    if not outer and not inner:
        return parts[0]
    stacked = dnp.stack([p if hasattr(p, "shape") else np.float64(p) for p in parts])
    if out_first:  # one part per output element, each shaped like the input leaf
        return dnp.reshape(stacked, outer + inner)
    n_in, n_out = len(inner), len(outer)  # one part per input element, shaped like the output
    perm = tuple(range(n_in, n_in + n_out)) + tuple(range(n_in))
    return dnp.transpose(dnp.reshape(stacked, inner + outer), perm)


def _assemble(
    rows: list[tuple], outer: tuple, args: Sequence[Any], nums: Sequence[int], argnums: Any,
    out_first: bool,
) -> Any:
    """From per-output-element adjoint tuples to one input-structured block."""
    per_arg = []
    for pos, i in enumerate(nums):
        leaves, treedef = tree.flatten(args[i])
        columns = [tree.leaves(r[pos]) for r in rows]
        block = [
            None if not _is_float(leaf)
            else _stack([c[m] for c in columns], outer, _shape(leaf), out_first)
            for m, leaf in enumerate(leaves)
        ]  # fmt: skip
        per_arg.append(tree.unflatten(treedef, block))
    return per_arg[0] if isinstance(argnums, int) else tuple(per_arg)


def _none_like(args: Sequence[Any], nums: Sequence[int], argnums: Any) -> Any:
    blocks = tuple(tree.map(lambda _: None, args[i]) for i in nums)
    return blocks[0] if isinstance(argnums, int) else blocks
