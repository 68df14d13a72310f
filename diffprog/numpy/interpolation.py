"""Piecewise-linear interpolation under NumPy's name: interp.

Owns: `interp`, built in diffprog ops from NumPy's own formula, fp[j] + s (x - xp[j]) with
s = (fp[j+1] - fp[j]) / (xp[j+1] - xp[j]) on the segment xp[j] <= x < xp[j+1] (found on
raw values, a constant), so its values are NumPy's and it is differentiable in x, fp, xp,
left, right and period. Derivatives in x are one-sided at the sample points: the slope of
the segment to the right (of the last segment at xp[-1]), 0 outside [xp[0], xp[-1]].
Computed in float64 (complex128 for complex fp), as NumPy does.
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ad.batching import anywhere
from ..backend import namespace_of
from ..core.trace import Tracer, raw
from .elementwise import ufunc_where
from .indexing import take
from .joins import as_array, cast, concatenate
from .manipulation import broadcast_to, expand_dims, getitem
from .reductions import count_nonzero


def _double(v: Any, name: str) -> Any:
    """`v` in float64, or complex128 for complex sample values `fp` (as NumPy computes)."""
    if v.dtype.kind == "c" and name != "fp":
        raise TypeError(f"interp: {name} must be real (dtype {v.dtype}); only fp may be complex")
    dtype = np.dtype(np.complex128 if v.dtype.kind == "c" else np.float64)
    if isinstance(v, Tracer):
        return cast(v, dtype)
    return v.astype(dtype)


def _periodic(x: Any, xp: Any, fp: Any, period: Any) -> tuple[Any, Any, Any]:
    """NumPy's periodic form: everything modulo the period, the samples sorted and one
    period's neighbour added at each end."""
    if float(raw(period)) == 0:
        raise ValueError("period must be a non-zero value")
    period = abs(period)
    x, xp = x % period, xp % period
    order = namespace_of((raw(xp),)).argsort(raw(xp))
    xp, fp = take(xp, order), take(fp, order)
    xp = concatenate([getitem(xp, slice(-1, None)) - period, xp, getitem(xp, slice(0, 1)) + period])
    fp = concatenate([getitem(fp, slice(-1, None)), fp, getitem(fp, slice(0, 1))])
    return x, xp, fp


def interp(x: Any, xp: Any, fp: Any, left: Any = None, right: Any = None,
           period: Any = None) -> Any:  # fmt: skip
    """`numpy.interp`: the piecewise-linear interpolant through (xp, fp) at x (xp
    increasing; `left`/`right` below/above it, fp[0]/fp[-1] by default; `period` for
    periodic x-coordinates).

    >>> import diffprog as dp, numpy as np
    >>> from diffprog.numpy.interpolation import interp
    >>> interp(np.array([0.5, 1.5, 3.0]), np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 3.0]))
    array([1. , 2.5, 3. ])
    >>> dp.grad(interp)(1.5, np.array([0.0, 1.0, 2.0]), np.array([0.0, 2.0, 3.0]))
    1.0
    """
    x, xp, fp = as_array(x), as_array(xp), as_array(fp)
    if len(xp.shape) != 1 or len(fp.shape) != 1:
        raise ValueError(f"interp: xp and fp must be 1-D, got shapes {xp.shape} and {fp.shape}")
    if fp.shape[0] != xp.shape[0]:
        raise ValueError("fp and xp are not of the same length.")
    if xp.shape[0] == 0:
        raise ValueError("array of sample points is empty")
    x, xp, fp = _double(x, "x"), _double(xp, "xp"), _double(fp, "fp")
    if period is not None:
        x, xp, fp = _periodic(x, xp, fp, period)
        left = right = None
    left = getitem(fp, 0) if left is None else left
    right = getitem(fp, -1) if right is None else right
    kr = raw(xp)
    mod = namespace_of((kr,))
    xr, n = _raw_array(mod, x), kr.shape[0]
    if n == 1:
        y = broadcast_to(fp, xr.shape) if xr.shape else getitem(fp, 0)
    else:
        j = _segment(mod, kr, xr)  # xp[j] <= x < xp[j + 1]
        s, a = mod.clip(j, 0, n - 2), mod.clip(j, 0, n - 1)
        xs, fs, fs1 = take(xp, s), take(fp, s), take(fp, s + 1)
        slope = (fs1 - fs) / (take(xp, s + 1) - xs)
        y = slope * (x - take(xp, a)) + take(fp, a)
        y = _non_finite_cases(y, x, xp, fp, slope, j, a, s)
    y = ufunc_where(xr < kr[0], left, y)
    return ufunc_where(xr > kr[-1], right, y)


def _raw_array(mod: Any, x: Any) -> Any:
    """raw(x) as an array of `mod` (a value batched by dp.vmap stays one: one example)."""
    r = raw(x)
    return r if isinstance(r, Tracer) else mod.asarray(r)


def _segment(mod: Any, kr: Any, xr: Any) -> Any:
    """j with kr[j] <= xr < kr[j + 1] (-1 before the first): NumPy's searchsorted, which
    cannot see the examples of a batch (under dp.vmap: a count of the sample points <= x)."""
    if not any(isinstance(v, Tracer) and v.batched for v in (kr, xr)):
        return mod.searchsorted(kr, xr, side="right") - 1
    return count_nonzero(expand_dims(xr, -1) >= kr, axis=-1) - 1


def _non_finite_cases(y: Any, x: Any, xp: Any, fp: Any, slope: Any, j: Any, a: Any,
                      s: Any) -> Any:  # fmt: skip
    """NumPy's answers where the formula gives NaN from infinite values: fp[j] at a sample
    point; inside a segment the formula from its right end, else fp[j] if both ends agree."""
    kr, fr = raw(xp), raw(fp)
    mod = namespace_of((kr,))
    xr = _raw_array(mod, x)
    inside = (j >= 0) & ~mod.isnan(xr)
    if mod is np and not anywhere(inside & np.isnan(raw(y))):
        return y  # finite values: nothing to mend
    at_point = inside & (take(kr, a) == xr)
    y = ufunc_where(at_point & mod.isnan(raw(y)), take(fp, a), y)
    nan = inside & ~at_point & mod.isnan(raw(y))
    y = ufunc_where(nan, slope * (x - take(xp, s + 1)) + take(fp, s + 1), y)
    return ufunc_where(nan & mod.isnan(raw(y)) & (take(fr, s) == take(fr, s + 1)), take(fp, s), y)


__all__ = ["interp"]
