"""Whole derivatives as nested pytrees: jacrev, jacfwd, jacobian, hessian, hvp.

Owns: assembling Jacobians from reverse sweeps (`jacrev`) or forward passes (`jacfwd`), each
leaf's one-hot cotangents or tangents run as one batch (dp.vmap), nested as JAX nests them: the output's structure
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
from ..ad.boundary import FLOAT, float_adjoint, leaf_kind, refuse_opaque_floats
from ..core.trace import raw, unwrapped
from ..errors import NonScalarOutputError, UnsupportedLeafError
from .core import (
    _argnums, _name, as_tuples, grad, jvp, refuse_integer_arguments, run_jvp, stop_gradient, vjp,
)  # fmt: skip
from .vmap import vmap


def jacrev(f: Callable[..., Any], argnums: int | Sequence[int] = 0,
           holomorphic: bool = False) -> Callable[..., Any]:  # fmt: skip
    """The Jacobian of `f` by reverse mode: one batched backward sweep per output leaf. Complex
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
        _refuse_no_float(f, args, nums, "dp.jacrev")
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
            def at_k(v: Any, k: int = k) -> Any:  # the cotangent tree: v at output leaf k
                return tree.unflatten(out_def, [v if j == k else None for j in range(len(out_leaves))])

            if _size(o) == 1:  # one sweep: no batch (and a Python float stays one)
                rows = [vjp_fn(at_k(e)) for e in _basis(o)]
            else:  # every one-hot cotangent of leaf k in one batched sweep
                rows = vmap(vjp_fn, in_axes=(at_k(0),))(at_k(_one_hots(o)))
            blocks.append(_assemble(rows, _shape(o), args, nums, argnums, out_first=True))
        return tree.unflatten(out_def, blocks)

    return jac_f


def jacfwd(f: Callable[..., Any], argnums: int | Sequence[int] = 0,
           holomorphic: bool = False) -> Callable[..., Any]:  # fmt: skip
    """The Jacobian of `f` by forward mode: one batched forward pass per floating input leaf
    (the entries of integer, bool and string leaves, constants, are None). Complex inputs
    need `holomorphic=True` (then the entries are df_i/dz_j), as in JAX.

    >>> import numpy as np, diffprog as dp
    >>> dp.jacfwd(lambda x: x ** 2)(np.array([1.0, 2.0]))
    array([[2., 0.],
           [0., 4.]])
    """

    @functools.wraps(f)
    def jac_f(*args: Any) -> Any:
        nums = _argnums(argnums, f, len(args), "dp.jacfwd")
        _refuse_no_float(f, args, nums, "dp.jacfwd")
        primals = tuple(args[i] for i in nums)
        g = _partial(f, args, nums)
        flat, in_def = tree.flatten(primals)
        _check_kinds("dp.jacfwd", "input", flat, holomorphic)
        columns: list[Any] = []  # columns[m]: output tangents for input leaf m (batched?, them)
        out = None
        for m, leaf in enumerate(flat):
            columns.append(None)
            if not _is_float(leaf):
                continue

            def at_m(v: Any, m: int = m) -> Any:  # the tangent tree: v at input leaf m
                return tree.unflatten(in_def, [v if j == m else None for j in range(len(flat))])

            if _size(leaf) == 1:  # one pass: no batch (and a Python float stays one)
                out, t_out = jvp(g, primals, at_m(_basis(leaf)[0]))
                columns[m] = (False, t_out)
            else:  # every one-hot tangent of leaf m in one batched pass
                out, t_out = vmap(lambda t: jvp(g, primals, t), in_axes=(at_m(0),),
                                  out_axes=(None, 0))(at_m(_one_hots(leaf)))  # fmt: skip
                columns[m] = (True, t_out)
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
                batched, t_out = columns[m]
                parts = tree.leaves(t_out)[k] if batched else [tree.leaves(t_out)[k]]
                entry = _stack(parts, _shape(o), _shape(leaf), out_first=False)
                if not _shape(o) and not _shape(leaf):  # a scalar entry: the input leaf's
                    entry = float_adjoint(entry, leaf)  # type, as jacrev's (and grad's)
                per_input.append(entry)
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
    of_gradient = jacfwd(jacrev(f, argnums, holomorphic), argnums, holomorphic)

    @functools.wraps(f)
    def hess_f(*args: Any) -> Any:
        _refuse_no_float(f, args, _argnums(argnums, f, len(args), "dp.hessian"), "dp.hessian")
        return of_gradient(*args)

    return hess_f


def hvp(f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any]) -> tuple[Any, Any]:
    """`(value, hvp)`: f's value and its Hessian applied to `tangents`, without forming the
    Hessian. `primals`, `tangents` and `hvp` are tuples of pytrees; f returns a real scalar.
    Tangents are as in `jvp` (None or zeros for a constant leaf, whose entry is None).

    Reverse over forward: the gradient of the directional derivative <grad f, v>, which one
    forward-mode pass computes. Forward over reverse (the jvp of the gradient) gives the same
    numbers but also computes the gradient itself, which hvp does not return: on an MLP that is
    one wasted product per weight matrix (the reverse pass's `a.T @ g`).

    >>> import numpy as np, diffprog as dp, diffprog.numpy as dnp
    >>> dp.hvp(lambda x: dnp.sum(x ** 3), (np.array([1.0, 2.0]),), (np.array([1.0, 1.0]),))
    (np.float64(9.0), (array([ 6., 12.]),))
    """
    primals, tangents = as_tuples("dp.hvp", primals, tangents)
    _refuse_no_float(f, primals, tuple(range(len(primals))), "dp.hvp")  # (grad's would say dp.grad)

    @functools.wraps(f)  # errors about f's output name f
    def directional(*args: Any) -> tuple[Any, Any]:
        value, tangent = run_jvp(f, args, tangents, False, "dp.hvp")
        size = getattr(unwrapped(value), "size", 1)
        if size != 1:  # (grad's own error would name grad)
            raise NonScalarOutputError(
                f"dp.hvp: {_name(f)} returned an array of "
                f"shape {tuple(unwrapped(value).shape)}; dp.hvp needs f to return a real "
                "scalar (size 1). Reduce the output first (e.g. dnp.sum), or use "
                "dp.hessian(f) (any output: one Hessian per output entry)"
            )
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


def _refuse_no_float(f: Callable[..., Any], args: Sequence[Any], nums: Sequence[int], origin: str) -> None:
    """As dp.grad: arguments without a floating leaf are refused, naming an integer one or an
    unregistered dataclass holding floats (the Jacobian was silently all None)."""
    chosen = [args[i] for i in nums]
    if not any(_is_float(leaf) for leaf in tree.leaves(chosen)):
        for arg, i in zip(chosen, nums):
            refuse_opaque_floats(tree.leaves(arg), arg, f"{origin}: argument {i}")
        refuse_integer_arguments(f, chosen, nums, origin)


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
                f" {'real' if holomorphic else 'complex'} {what} of dtype {dtype}: {fix}"
            )


def _shape(x: Any) -> tuple[int, ...]:
    return tuple(getattr(x, "shape", ()))


def _basis(x: Any) -> list[Any]:
    """One-hot arrays like `x`, one per element, in C order (a Python float for a float)."""
    r = raw(x)
    if type(r) in (float, complex):  # (a traced Python number too: a nested Jacobian's)
        return [type(r)(1)]
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


def _size(x: Any) -> int:
    return int(np.prod(_shape(x), dtype=np.int64))


def _one_hots(x: Any) -> Any:
    """The one-hot arrays like `x` (`_basis`), stacked along a new axis 0: (size, *shape)."""
    r = raw(x)
    xp = namespace_of((r,))
    with device_scope((r,)):
        return xp.eye(r.size, dtype=r.dtype).reshape((r.size,) + tuple(r.shape))


def _stack(parts: Any, outer: tuple, inner: tuple, out_first: bool) -> Any:
    """Stack per-element derivatives (a list, or one array already stacked along axis 0)
    into one leaf of shape outer + inner.

    Written in diffprog ops, so a Jacobian taken inside another transform is traced too.
    """
    if isinstance(parts, list) and not outer and not inner:
        return parts[0]
    stacked = parts if not isinstance(parts, list) else dnp.stack(
        [p if hasattr(p, "shape") else np.float64(p) for p in parts])  # fmt: skip
    if out_first:  # one part per output element, each shaped like the input leaf
        return dnp.reshape(stacked, outer + inner)
    n_in, n_out = len(inner), len(outer)  # one part per input element, shaped like the output
    perm = tuple(range(n_in, n_in + n_out)) + tuple(range(n_in))
    return dnp.transpose(dnp.reshape(stacked, inner + outer), perm)


def _assemble(
    rows: list[tuple] | tuple, outer: tuple, args: Sequence[Any], nums: Sequence[int], argnums: Any,
    out_first: bool,
) -> Any:
    """From per-output-element adjoint tuples (or one tuple of batched adjoints) to one
    input-structured block."""
    per_arg = []
    for pos, i in enumerate(nums):
        leaves, treedef = tree.flatten(args[i])
        if isinstance(rows, list):
            columns = [tree.leaves(r[pos]) for r in rows]
            parts = [[c[m] for c in columns] for m in range(len(leaves))]
        else:  # one batched sweep: each leaf already stacked
            parts = tree.leaves(rows[pos])
        block = [None if not _is_float(leaf) else _stack(parts[m], outer, _shape(leaf), out_first)
                 for m, leaf in enumerate(leaves)]  # fmt: skip
        per_arg.append(tree.unflatten(treedef, block))
    return per_arg[0] if isinstance(argnums, int) else tuple(per_arg)


def _none_like(args: Sequence[Any], nums: Sequence[int], argnums: Any) -> Any:
    blocks = tuple(tree.map(lambda _: None, args[i]) for i in nums)
    return blocks[0] if isinstance(argnums, int) else blocks
