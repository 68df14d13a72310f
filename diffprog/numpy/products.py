"""Products under NumPy's names: matmul, dot, einsum, tensordot, outer, inner, kron, vdot,
cross and vecdot.

Owns: the `matmul` and `einsum` primitives and their rules; the other products are built on
them and on elementwise/shape ops. NumPy's 1-D matmul conventions (a vector operand gains a
unit axis that the result drops) are undone in the rules, and batch broadcasting is summed
away on the edge by the reverse sweep. einsum subscripts are normalised once (ellipses
expanded into letters, implicit outputs made explicit), so its rules see only letters; the
cotangent of operand k is an einsum of g and the other operands, with identity matrices for
its repeated indices and ones for indices only it carries.
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

import math
import string
import warnings
from typing import Any

import numpy

from ..backend import namespace_of
from ..core.edge import broadcast_to
from ..core.primitive import Primitive
from ..ad.batching import example_ndim
from ..core.trace import as_scalar, raw, unwrapped
from ..errors import UnsupportedKeywordError
from ._define import axis_tuple
from .batching import aligned
from .complex_parts import conjugate
from .elementwise import multiply, subtract
from .manipulation import as_array, expand_dims, getitem, moveaxis, reshape, stack, swapaxes, transpose
from .reductions import sum as _sum


def _as_matrices(a: Any, b: Any, g: Any) -> tuple[Any, Any, Any]:
    """a, b and g with the unit axes NumPy's matmul adds for 1-D operands made explicit."""
    if len(b.shape) == 1:  # g gains a trailing unit axis
        b = reshape(b, (b.shape[0], 1))
        g = expand_dims(g, len(g.shape))
    if len(a.shape) == 1:  # and a unit axis before the last
        a = reshape(a, (1, a.shape[0]))
        g = expand_dims(g, len(g.shape) - 1)
    return a, b, g


def _swap_last(x: Any) -> Any:
    """x with its last two axes swapped; `.T` for a matrix (a view, no checks: the hot case)."""
    return x.T if len(x.shape) == 2 else swapaxes(x, -1, -2)


def _matmul_vjp_a(g: Any, ans: Any, a: Any, b: Any) -> Any:
    if len(a.shape) > 1 and len(b.shape) > 1:  # no vector operand (the common case, first)
        return matmul(g, _swap_last(b))
    a2, b2, g2 = _as_matrices(a, b, g)
    ga = matmul(g2, _swap_last(b2))
    return reshape(ga, ga.shape[:-2] + ga.shape[-1:]) if len(a.shape) == 1 else ga


def _matmul_vjp_b(g: Any, ans: Any, a: Any, b: Any) -> Any:
    if len(a.shape) > 1 and len(b.shape) > 1:  # no vector operand (the common case, first)
        return matmul(_swap_last(a), g)
    a2, b2, g2 = _as_matrices(a, b, g)
    gb = matmul(_swap_last(a2), g2)
    return reshape(gb, gb.shape[:-1]) if len(b.shape) == 1 else gb


matmul = Primitive("matmul", lambda xp, a, b: xp.matmul(a, b))
matmul.defvjp(_matmul_vjp_a, _matmul_vjp_b)
matmul.defjvp(lambda t, ans, a, b: matmul(t, b), lambda t, ans, a, b: matmul(a, t))


def _matmul_batch(size: int, batched: tuple, a: Any, b: Any) -> Any:
    """dp.vmap: a batch times a shared matrix is one product of a tall matrix (one GEMM, not
    one per example); otherwise vectors become matrices and NumPy broadcasts the batch."""
    (ba, bb), ra, rb = batched, example_ndim(a, batched[0]), example_ndim(b, batched[1])
    if ba and not bb and rb == 2:
        lead = tuple(a.shape[:-1])
        flat = matmul(reshape(a, (-1, a.shape[-1])), b)
        return reshape(flat, lead + (b.shape[-1],))
    if bb and not ba and ra == 2 and rb == 1:  # (m, k) @ (B, k) = (B, k) @ (k, m)
        return matmul(b, transpose(a))
    if ra == 1:
        a = reshape(a, tuple(a.shape[:-1]) + (1, a.shape[-1]))
    if rb == 1:
        b = reshape(b, tuple(b.shape) + (1,))
    rank = max(ra, rb, 2)
    out = matmul(aligned(a, rank) if ba else a, aligned(b, rank) if bb else b)
    if ra > 1 and rb > 1:
        return out
    shape = list(out.shape)  # drop the unit axes the vectors got
    if rb == 1:
        del shape[-1]
    if ra == 1:
        del shape[-1 if rb == 1 else -2]
    return reshape(out, tuple(shape))


matmul.defbatch(_matmul_batch)


def dot(a: Any, b: Any) -> Any:
    """`numpy.dot`: a product of scalars, vectors and matrices, and for N-D operands a sum
    over the last axis of `a` and the second-to-last of `b`."""
    a, b = as_array(a), as_array(b)
    na, nb = len(a.shape), len(b.shape)
    if na == 0 or nb == 0:
        return multiply(a, b)
    if na <= 2 and nb <= 2:
        return matmul(a, b)
    # N-D: out[i..., j..., m] = sum_k a[i..., k] b[j..., k, m]
    k = a.shape[-1]
    if nb == 1:
        return matmul(a, b)
    b_front = moveaxis(b, -2, 0)  # (k, j..., m)
    out = matmul(reshape(a, (-1, k)), reshape(b_front, (k, -1)))
    return reshape(out, a.shape[:-1] + b_front.shape[1:])


# --- einsum --------------------------------------------------------------------------------
_LETTERS = string.ascii_letters  # NumPy's labels; an integer sublist entry i names _LETTERS[i]


def _split(subscripts: str) -> tuple[list[str], str]:
    lhs, out = subscripts.split("->")
    return lhs.split(","), out


def _einsum_vjp(k: int, g: Any, ans: Any, *ops: Any, subscripts: str, optimize: Any) -> Any:
    ins, out = _split(subscripts)
    target, shape = ins[k], tuple(ops[k].shape)
    r = as_scalar(raw(g))  # a cotangent may be a (traced) Python float
    xp, dtype = namespace_of((r,)), r.dtype
    fresh = iter(c for c in _LETTERS if c not in subscripts)
    subs = [out] + [s for j, s in enumerate(ins) if j != k]
    operands = [g] + [o for j, o in enumerate(ops) if j != k]
    renamed = ""
    for c, n in zip(target, shape):  # a repeated index: a fresh letter tied by an identity
        if c in renamed:
            new = next(fresh)
            subs.append(c + new)
            operands.append(xp.eye(n, dtype=dtype))
            c = new
        renamed += c
    present = "".join(subs)
    for c, n in zip(renamed, shape):  # an index only this operand carries: broadcast by ones
        if c not in present:
            subs.append(c)
            operands.append(xp.ones(n, dtype=dtype))
    opt = "greedy" if isinstance(optimize, (list, tuple)) else optimize  # a path fits one call
    ct = _einsum(*operands, subscripts=",".join(subs) + "->" + renamed, optimize=opt)
    if tuple(ct.shape) != shape:  # a unit axis of another operand broadcast against this one
        full = tuple(max(m, n) for m, n in zip(ct.shape, shape))
        ct = ct if tuple(ct.shape) == full else broadcast_to(ct, shape=full)
    return ct


def _einsum_jvp(k: int, t: Any, ans: Any, *ops: Any, subscripts: str, optimize: Any) -> Any:
    return _einsum(*ops[:k], t, *ops[k + 1 :], subscripts=subscripts, optimize=optimize)


_einsum = Primitive(
    "einsum", lambda xp, *ops, subscripts, optimize: xp.einsum(subscripts, *ops, optimize=optimize)
)
_einsum.defvjp_variadic(_einsum_vjp)
_einsum.defjvp_variadic(_einsum_jvp)


def _einsum_batch(size: int, batched: tuple, *ops: Any, subscripts: str, optimize: Any) -> Any:
    """dp.vmap: one more index, the batch's, on the batched operands and the output."""
    inputs, output = subscripts.split("->")
    label = next(c for c in _LETTERS if c not in subscripts)
    inputs = ",".join(label + s if b else s for s, b in zip(inputs.split(","), batched))
    return _einsum(*ops, subscripts=f"{inputs}->{label}{output}", optimize=optimize)


_einsum.defbatch(_einsum_batch)


def _sublist(labels: Any) -> str:
    return "".join("..." if i is Ellipsis else _LETTERS[i] for i in labels)


def _normalise(subscripts: str, shapes: list[tuple[int, ...]]) -> str:
    """`subscripts` in explicit form with every ellipsis spelled out in letters."""
    subscripts = subscripts.replace(" ", "")
    lhs, arrow, out = subscripts.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: {len(ins)} operand subscripts for {len(shapes)} operands")
    bad = set(subscripts.replace("...", "").replace("->", "").replace(",", "")) - set(_LETTERS)
    if bad:
        raise ValueError(f"einsum: invalid subscript character(s) {sorted(bad)} in {subscripts!r}")
    spans = []
    for s, shape in zip(ins, shapes):
        named = len(s.replace("...", ""))
        if ("..." in s and named > len(shape)) or ("..." not in s and named != len(shape)):
            raise ValueError(f"einsum: subscripts {s!r} do not match an operand of shape {shape}")
        spans.append(len(shape) - named if "..." in s else 0)
    fresh = [c for c in _LETTERS if c not in subscripts]
    width = max(spans, default=0)
    if width > len(fresh):
        raise ValueError("einsum: too many dimensions under '...' for the available letters")
    ell = "".join(fresh[:width])
    if not arrow:  # implicit: the ellipsis, then letters seen once, in ASCII order
        letters = "".join(s.replace("...", "") for s in ins)
        out = ("..." if any("..." in s for s in ins) else "") + "".join(
            sorted(c for c in set(letters) if letters.count(c) == 1)
        )
    ins = [s.replace("...", ell[width - n :]) for s, n in zip(ins, spans)]
    return ",".join(ins) + "->" + out.replace("...", ell)


def einsum(*operands: Any, out: Any = None, dtype: Any = None, order: str = "K",
           casting: str = "safe", optimize: Any = False) -> Any:  # fmt: skip
    """`numpy.einsum`, in the subscript and the interleaved (operand, sublist, ...) forms.

    >>> import numpy as np
    >>> from diffprog.numpy.products import einsum
    >>> float(einsum('ii->', np.eye(3)))
    3.0
    """
    for name, given in (("out", out is not None), ("dtype", dtype is not None),
                        ("order", order != "K"), ("casting", casting != "safe")):  # fmt: skip
        if given:
            raise UnsupportedKeywordError(f"einsum: the {name}= option is not supported")
    if not operands:
        raise ValueError("einsum needs the subscripts and at least one operand")
    if isinstance(operands[0], str):
        subscripts, arrays = operands[0], list(operands[1:])
    else:  # einsum(op0, sublist0, op1, sublist1, ..., [sublistout])
        arrays = list(operands[0::2]) if len(operands) % 2 == 0 else list(operands[:-1:2])
        subscripts = ",".join(_sublist(s) for s in operands[1::2][: len(arrays)])
        if len(operands) % 2:
            subscripts += "->" + _sublist(operands[-1])
    arrays = [as_array(a) for a in arrays]
    shapes = [tuple(a.shape) for a in arrays]
    return _einsum(*arrays, subscripts=_normalise(subscripts, shapes), optimize=optimize)


# --- products built on matmul, einsum and elementwise ops ----------------------------------
def tensordot(a: Any, b: Any, axes: Any = 2) -> Any:
    """`numpy.tensordot`: sum over the last `axes` axes of a and the first of b, or over
    the axes paired in `axes = (axes_a, axes_b)`."""
    a, b = as_array(a), as_array(b)
    na, nb = len(a.shape), len(b.shape)
    if isinstance(axes, int):
        if axes < 0 or axes > min(na, nb):
            raise ValueError(f"tensordot: axes={axes} does not fit operands of {na} and {nb} dims")
        axes_a, axes_b = list(range(na - axes, na)), list(range(axes))
    else:
        axes_a, axes_b = ([x] if isinstance(x, int) else list(x) for x in axes)
        axes_a, axes_b = list(axis_tuple(axes_a, na)), list(axis_tuple(axes_b, nb))
    if len(axes_a) != len(axes_b) or any(a.shape[i] != b.shape[j] for i, j in zip(axes_a, axes_b)):
        raise ValueError(f"tensordot: shape-mismatch for sum ({a.shape} over {axes_a}, "
                         f"{b.shape} over {axes_b})")  # fmt: skip
    free_a = [i for i in range(na) if i not in axes_a]
    free_b = [j for j in range(nb) if j not in axes_b]
    k = math.prod(a.shape[i] for i in axes_a)
    a2 = reshape(transpose(a, free_a + axes_a), (math.prod(a.shape[i] for i in free_a), k))
    b2 = reshape(transpose(b, axes_b + free_b), (k, math.prod(b.shape[j] for j in free_b)))
    shape = tuple(a.shape[i] for i in free_a) + tuple(b.shape[j] for j in free_b)
    return reshape(matmul(a2, b2), shape)


def _ravel(a: Any) -> Any:
    return reshape(a, (math.prod(a.shape),))


def outer(a: Any, b: Any) -> Any:
    """`numpy.outer`: out[i, j] = a.ravel()[i] * b.ravel()[j]."""
    a, b = as_array(a), as_array(b)
    a, b = _ravel(a), _ravel(b)
    return multiply(reshape(a, (a.shape[0], 1)), reshape(b, (1, b.shape[0])))


def inner(a: Any, b: Any) -> Any:
    """`numpy.inner`: a sum over the last axes of a and b (a product when one is 0-d)."""
    a, b = as_array(a), as_array(b)
    if not a.shape or not b.shape:
        return multiply(a, b)
    return tensordot(a, b, axes=([-1], [-1]))


def vdot(a: Any, b: Any) -> Any:
    """`numpy.vdot`: the dot product of the flattened arrays, `a` conjugated if complex."""
    a, b = as_array(a), as_array(b)
    a, b = _ravel(a), _ravel(b)
    if a.shape != b.shape:
        raise ValueError(f"vdot: vectors of sizes {a.shape[0]} and {b.shape[0]} differ")
    return matmul(_conjugated(a), b)


def vecdot(x1: Any, x2: Any, /, *, axis: int = -1) -> Any:
    """`numpy.vecdot`: sum(conj(x1) * x2) along `axis`, broadcasting the rest (of booleans,
    whether some pair is true, as NumPy's)."""
    x1, x2 = as_array(x1), as_array(x2)
    if not (x1.shape and x2.shape):
        raise ValueError("vecdot: an operand has no dimensions; the vectors are along `axis`, "
                         "so each operand must be at least 1-d")
    total = _sum(multiply(_conjugated(x1), x2), axis=axis)
    return total != 0 if unwrapped(x1).dtype == bool and unwrapped(x2).dtype == bool else total


def _conjugated(x: Any) -> Any:
    """conj(x) for a complex x, else x itself (vdot and vecdot conjugate their first operand)."""
    return conjugate(x) if numpy.iscomplexobj(unwrapped(x)) else x


def kron(a: Any, b: Any) -> Any:
    """`numpy.kron`: the Kronecker product (the operand with fewer dims gains leading 1s)."""
    a, b = as_array(a), as_array(b)
    n = max(len(a.shape), len(b.shape))
    sa = (1,) * (n - len(a.shape)) + tuple(a.shape)
    sb = (1,) * (n - len(b.shape)) + tuple(b.shape)
    a2 = reshape(a, tuple(x for m in sa for x in (m, 1)))
    b2 = reshape(b, tuple(x for m in sb for x in (1, m)))
    return reshape(multiply(a2, b2), tuple(m * k for m, k in zip(sa, sb)))


def cross(a: Any, b: Any, axisa: int = -1, axisb: int = -1, axisc: int = -1,
          axis: int | None = None) -> Any:  # fmt: skip
    """`numpy.cross` of 3-vectors (or 2-vectors, z = 0) along an axis, broadcasting the rest."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = moveaxis(a, axisa, -1), moveaxis(b, axisb, -1)
    if a.shape[-1] not in (2, 3) or b.shape[-1] not in (2, 3):
        raise ValueError("incompatible dimensions for cross product (dimension must be 2 or 3)")
    if a.shape[-1] == 2 or b.shape[-1] == 2:
        warnings.warn("Arrays of 2-dimensional vectors are deprecated. Use arrays of "
                      "3-dimensional vectors instead. (deprecated in NumPy 2.0)",
                      DeprecationWarning, stacklevel=2)  # fmt: skip
    ca = [getitem(a, (Ellipsis, i)) for i in range(a.shape[-1])] + [None]
    cb = [getitem(b, (Ellipsis, i)) for i in range(b.shape[-1])] + [None]

    def term(i: int, j: int) -> Any:  # a_i b_j - a_j b_i, with missing z components 0
        p = None if ca[i] is None or cb[j] is None else multiply(ca[i], cb[j])
        q = None if ca[j] is None or cb[i] is None else multiply(ca[j], cb[i])
        return p if q is None else (-q if p is None else subtract(p, q))

    z = term(0, 1)
    if a.shape[-1] == 2 and b.shape[-1] == 2:
        return z
    parts = [term(1, 2), term(2, 0), z]
    shape = tuple(z.shape)
    parts = [p if tuple(p.shape) == shape else broadcast_to(p, shape=shape) for p in parts]
    return moveaxis(stack(parts, axis=-1), -1, axisc)


__all__ = ["matmul", "dot", "einsum", "tensordot", "outer", "inner", "vdot", "vecdot", "kron",
           "cross"]  # fmt: skip
