"""Checking derivatives numerically: `check_grads`.

Owns: the comparison of diffprog's forward and reverse modes with central differences in a
random direction, leaf by leaf, recursing to higher order through the transforms themselves
(so order 2 checks graph extension). Built only on the public API below it. Works on CuPy
arguments too: the random directions are drawn on the host and put on each leaf's device,
and the numbers compared are brought to the host explicitly (`.get()`), never by NumPy's
implicit conversion, which CuPy refuses.
Layer L6: imports L0-L5.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from . import tree
from .backend import asarray_like, device_scope, namespace_of
from .core.trace import raw
from .transforms import jvp, vjp

# Per precision: (finite-difference step, rtol). The step balances truncation (eps^2) and
# rounding (ulp/eps); rtol bounds what remains relative to |<adjoint, v>|.
_DEFAULTS = {8: (1e-6, 1e-6), 4: (1e-3, 2e-3), 2: (3e-2, 1e-1)}


def check_grads(
    f: Callable[..., Any],
    args: Sequence[Any],
    order: int = 2,
    modes: Sequence[str] = ("fwd", "rev"),
    eps: float | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    seed: int = 0,
) -> None:
    """Check f's derivatives against central differences, up to `order`.

    For every floating leaf x_k of the arguments and a random direction v_k, compares the
    numerical directional derivative <u, (f(x + eps v_k) - f(x - eps v_k)) / 2 eps> with
    forward mode (<u, J v_k>) and reverse mode (<J^T u, v_k>), u a random output cotangent.
    Complex leaves get random complex directions (real and imaginary parts both moved) and
    <a, b> is Re sum(a * b), so a VJP is checked as the transpose of the R-linear JVP.
    At order > 1 it checks the reverse-mode derivative function itself the same way.
    Tolerances: `rtol` relative to the derivative's size (default 1e-6 in float64, 2e-3 in
    float32: a rule 1% off fails), plus the rounding of f's values over 2 eps, plus `atol`
    (default 10 ulp / eps, the noise floor of an O(1) function).
    Raises AssertionError naming the worst leaf's path with both numbers.

    >>> import numpy as np, diffprog.numpy as dnp
    >>> check_grads(lambda x: dnp.sum(dnp.sin(x) * x), (np.array([0.5, 1.5]),))
    """
    args = tuple(args)
    for mode in modes:
        if mode not in ("fwd", "rev"):
            raise ValueError(f"unknown mode {mode!r}; use 'fwd' and/or 'rev'")
    leaves, _ = tree.flatten(args)
    with device_scope(leaves):  # f runs with its arguments' GPU current, as in the transforms
        _check_grads(f, args, leaves, order, modes, eps, rtol, atol, seed)


def _check_grads(f: Callable[..., Any], args: tuple, leaves: list[Any], order: int,
                 modes: Sequence[str], eps: float | None, rtol: float | None,
                 atol: float | None, seed: int) -> None:  # fmt: skip
    rng = np.random.default_rng(seed)
    float_leaves = [x for x in leaves if _is_float(x)]
    if not float_leaves:
        raise ValueError("check_grads: the arguments have no floating leaf to differentiate")
    itemsize = min(np.dtype(_dtype(x)).itemsize for x in float_leaves)
    step, rel = _DEFAULTS.get(itemsize, _DEFAULTS[8])
    eps = step if eps is None else eps
    rtol = rel if rtol is None else rtol
    # The rounding noise of a central difference of an O(1) function: a floor for derivatives
    # that are zero up to rounding, where the tolerances relative to f's size see nothing.
    atol = 10 * float(np.finfo(np.dtype(f"f{itemsize}")).eps) / eps if atol is None else atol

    out = f(*args)
    u = _random_like(out, rng)
    directions = _random_like(args, rng)
    _check_first_order(f, args, u, directions, modes, eps, rtol, atol, itemsize)
    if order > 1:
        def derivative(*a: Any) -> Any:
            return vjp(f, *a)[1](u)

        check_grads(derivative, args, order - 1, modes, eps, rtol, atol, seed + 1)


def _check_first_order(
    f: Callable[..., Any],
    args: tuple,
    u: Any,
    directions: tuple,
    modes: Sequence[str],
    eps: float,
    rtol: float,
    atol: float,
    itemsize: int,
) -> None:
    leaves, treedef = tree.flatten(args)
    paths = [tree.keystr(p) for p, _ in tree.flatten_with_path(args)[0]]
    v_leaves = tree.leaves(directions)
    adjoints = tree.leaves(vjp(f, *args)[1](u)) if "rev" in modes else None
    ulp = float(np.finfo(np.dtype(f"f{itemsize}")).eps)
    worst = None
    for k, (x, v) in enumerate(zip(leaves, v_leaves)):
        if v is None:
            continue

        def shifted(sign: float, k: int = k, x: Any = x, v: Any = v) -> Any:
            moved = list(leaves)
            moved[k] = _shift(x, v, sign * eps)
            return f(*tree.unflatten(treedef, moved))

        plus, minus = shifted(1.0), shifted(-1.0)
        numeric = (_dot(u, plus) - _dot(u, minus)) / (2 * eps)
        # Rounding in the two evaluations of f, magnified by 1/eps, is allowed for.
        noise = 8 * ulp * (_dot(u, plus, absolute=True) + _dot(u, minus, absolute=True)) / eps
        found = {}
        if adjoints is not None:
            found["rev"] = _dot(adjoints[k], v)
            scale = _norm(adjoints[k]) * _norm(v)
        if "fwd" in modes:
            tangents = tree.unflatten(treedef, [v if i == k else None for i in range(len(leaves))])
            found["fwd"] = _dot(u, jvp(f, args, tangents)[1])
            scale = abs(found["fwd"])
        spread = None  # |numeric - the same difference at step 2 eps|: computed if needed
        for mode, value in found.items():
            tol = atol + rtol * max(scale, abs(numeric), abs(value)) + noise
            err = abs(value - numeric)
            if err > tol and spread is None:
                # The rounding bound above sees only f's output; where f's terms cancel (a
                # derivative that is zero up to rounding) the difference is noisier. Estimate
                # the numerical error itself from a second step size and allow for it.
                wide = (_dot(u, shifted(2.0)) - _dot(u, shifted(-2.0))) / (4 * eps)
                spread = abs(numeric - wide)
            if spread is not None:
                tol += spread
            if err > tol and (worst is None or err / tol > worst[0]):
                worst = (err / tol, mode, paths[k], value, numeric, tol)
    if worst is not None:
        _, mode, path, value, numeric, tol = worst
        raise AssertionError(
            f"{'reverse' if mode == 'rev' else 'forward'}-mode derivative disagrees with central "
            f"differences at args{path}: <derivative, v> = {value!r}, numerical = {numeric!r} "
            f"(difference {abs(value - numeric):.3g} > tolerance {tol:.3g}, eps={eps})"
        )


def _is_float(x: Any) -> bool:
    """A leaf that is differentiated: floating or complex."""
    return type(x) in (float, complex) or getattr(raw(x), "dtype", np.dtype(object)).kind in "fc"


def _dtype(x: Any) -> Any:
    """The real dtype of a differentiated leaf (a complex one's parts)."""
    if type(x) in (float, complex):
        return np.float64
    dtype = raw(x).dtype
    return dtype if dtype.kind == "f" else np.finfo(dtype).dtype


def _random_like(t: Any, rng: np.random.Generator) -> Any:
    """A random normal pytree like `t` on floating leaves, None on the others."""

    def draw(x: Any) -> Any:
        if not _is_float(x):
            return None
        if type(x) is float:
            return float(rng.standard_normal())
        if type(x) is complex:
            return complex(*rng.standard_normal(2))
        r = raw(x)
        sample = rng.standard_normal(r.shape)
        if r.dtype.kind == "c":  # a random direction in the real and imaginary parts
            sample = sample + 1j * rng.standard_normal(r.shape)
        sample = sample.astype(r.dtype)
        if namespace_of((r,)) is np:
            return sample if r.shape else r.dtype.type(sample)
        return asarray_like(sample, r)  # CuPy: on the leaf's own GPU

    return tree.map(draw, t)


def _shift(x: Any, v: Any, amount: float) -> Any:
    if type(x) in (float, complex):
        return x + amount * v
    return (x + amount * v).astype(x.dtype)


def _dot(a: Any, b: Any, absolute: bool = False) -> float:
    """<a, b> = Re sum(a * b) over matching pytrees, in double precision (no conjugation:
    the pairing under which a VJP is the transpose of the R-linear JVP, JAX's convention);
    leaves where either side is None count 0."""
    total = 0.0
    for x, y in zip(tree.leaves(a), tree.leaves(b)):
        if x is None or y is None:
            continue
        product = _as_complex(x) * _as_complex(y)
        total += float(np.sum(np.abs(product) if absolute else product.real))
    return total


def _norm(a: Any) -> float:
    return float(np.sqrt(sum(np.sum(np.abs(_as_complex(x)) ** 2)
                             for x in tree.leaves(a) if x is not None)))


def _as_complex(x: Any) -> Any:
    """A leaf as a host complex128 array (exact for every float and complex dtype)."""
    return np.asarray(_host(x), dtype=np.complex128)


def _host(x: Any) -> Any:
    """`x` as a host value: CuPy arrays are copied with .get(), explicitly."""
    x = raw(x)
    return x.get() if hasattr(x, "get") and not isinstance(x, np.generic) else x
