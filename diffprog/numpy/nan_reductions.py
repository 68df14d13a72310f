"""NumPy's NaN-ignoring reductions: nansum, nanmean, nanprod, nanmax, nanmin, nanvar, nanstd.

Owns: each one's NumPy semantics on top of reductions.py. A NaN entry is replaced by the
reduction's neutral value through `ufunc_where` (0 for sums, 1 for products, -inf / +inf for
max / min), so it gets a zero gradient, to every order, and the other entries the gradient
of the reduction of what is left. A slice left with no entry: nansum is 0 and nanprod 1, as
in NumPy; nanmean is NaN; nanmax / nanmin (without initial=) are NaN with NumPy's
RuntimeWarning "All-NaN slice encountered", and nanvar / nanstd NaN wherever the degrees of
freedom (entries left - ddof) are <= 0, with NumPy's "Degrees of freedom <= 0 for slice.";
the gradient of such a NaN is zero. Integer and boolean arrays have no NaN: they get the
plain reduction (NumPy's result dtypes). The warnings are raised while the values are
computed (eagerly, and when dp.jit records), not on dp.jit's replays.
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..ad.batching import anywhere
from ..core.trace import as_scalar, raw, user_stacklevel
from ._define import axes_of
from .elementwise import bitwise_and, isnan, ufunc_where
from .joins import as_array
from .reductions import (
    abs_squared, in_dtype, masked, max, mean, min, prod, refuse_options, root, selected_count,
    std, sum, sum_over, var, where_mask,
)  # fmt: skip


def _present(a: Any) -> Any:
    """The constant mask of a's entries that are not NaN; None if a cannot hold a NaN."""
    return ~isnan(a) if as_scalar(raw(a)).dtype.kind in "fc" else None


def _warn_where(bad: Any, message: str) -> None:
    """NumPy's RuntimeWarning `message` if `bad` (a constant mask of result entries) is true
    anywhere, attributed to the caller's line (the first frame outside diffprog)."""
    if anywhere(bad):
        warnings.warn(message, RuntimeWarning, stacklevel=user_stacklevel())


def nansum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None,
           keepdims: bool = False, initial: Any = None, where: Any = None) -> Any:  # fmt: skip
    """`numpy.nansum`, with `initial=` and `where=`: NaNs count as zero and get zero gradient.

    >>> import diffprog as dp, numpy as np
    >>> from diffprog.numpy import nansum
    >>> dp.grad(nansum)(np.array([1.0, np.nan, 2.0]))
    array([1., 0., 1.])
    """
    refuse_options("nansum", out=out)
    a = as_array(a)
    present = _present(a)
    return sum(masked(a, present, 0), axis, dtype, keepdims=keepdims, initial=initial,
               where=where)  # fmt: skip


def nanmean(a: Any, axis: Any = None, dtype: Any = None, out: Any = None,
            keepdims: bool = False, *, where: Any = None) -> Any:  # fmt: skip
    """`numpy.nanmean`, with `where=`: the mean of the non-NaN (selected) entries; NaNs get
    zero gradient."""
    refuse_options("nanmean", out=out)
    a = in_dtype("nanmean", as_array(a), dtype, kinds="fc")
    present = _present(a)
    if present is None:
        return mean(a, axis, keepdims=keepdims, where=where)
    axes = axes_of(axis, len(a.shape), zero_d="nothing")
    mask = where_mask("nanmean", where, a)
    selected = present if mask is None else bitwise_and(mask, present)
    count = selected_count(selected, a, axes, keepdims)
    return nansum(a, axes, keepdims=keepdims, where=mask) / count


def nanprod(a: Any, axis: Any = None, dtype: Any = None, out: Any = None,
            keepdims: bool = False, initial: Any = None, where: Any = None) -> Any:  # fmt: skip
    """`numpy.nanprod`, with `initial=` and `where=`: NaNs count as one and get zero
    gradient; the others get the product of the other non-NaN entries (exact with zeros).

    >>> import diffprog as dp, numpy as np
    >>> from diffprog.numpy import nanprod
    >>> dp.grad(nanprod)(np.array([2.0, np.nan, 3.0]))
    array([3., 0., 2.])
    """
    refuse_options("nanprod", out=out)
    a = as_array(a)
    return prod(masked(a, _present(a), 1), axis, dtype, keepdims=keepdims, initial=initial,
                where=where)  # fmt: skip


def _nan_extremum(name: str, reduce: Any, fill: float, a: Any, axis: Any, out: Any,
                  keepdims: bool, initial: Any, where: Any) -> Any:  # fmt: skip
    refuse_options(name, out=out)
    a = as_array(a)
    present = _present(a)
    m = reduce(masked(a, present, fill), axis, keepdims=keepdims, initial=initial, where=where)
    if present is None or initial is not None:  # (with initial=, an empty slice is initial)
        return m
    empty = sum(present, axis, keepdims=keepdims) == 0
    _warn_where(empty, "All-NaN slice encountered")
    return ufunc_where(empty, np.nan, m)


def nanmax(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False,
           initial: Any = None, where: Any = None) -> Any:  # fmt: skip
    """`numpy.nanmax`, with `initial=` and `where=`: the maximum of the non-NaN entries (ties
    share the gradient, NaNs get none); an all-NaN slice is NaN, with NumPy's warning.

    >>> import diffprog as dp, numpy as np
    >>> from diffprog.numpy import nanmax
    >>> dp.grad(nanmax)(np.array([1.0, np.nan, 3.0]))
    array([0., 0., 1.])
    """
    return _nan_extremum("nanmax", max, -np.inf, a, axis, out, keepdims, initial, where)


def nanmin(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False,
           initial: Any = None, where: Any = None) -> Any:  # fmt: skip
    """`numpy.nanmin`, with `initial=` and `where=` (see nanmax)."""
    return _nan_extremum("nanmin", min, np.inf, a, axis, out, keepdims, initial, where)


def _nan_moment(name: str, a: Any, axis: Any, ddof: Any, keepdims: bool,
                where: Any) -> tuple[Any, Any]:  # fmt: skip
    """(the variance of a's non-NaN selected entries, finite everywhere, the constant mask of
    the result entries whose degrees of freedom are <= 0, which NumPy makes NaN)."""
    axes = axes_of(axis, len(a.shape), zero_d="nothing")  # (NumPy's, as nanmean's)
    mask = where_mask(name, where, a)
    present = _present(a)
    selected = present if mask is None else bitwise_and(mask, present)
    a = masked(a, selected, 0)
    k = selected_count(selected, a, axes, True)
    d = masked(a - sum_over(a, axis=axes, keepdims=True) / ufunc_where(k > 0, k, 1), selected, 0)
    dof = selected_count(selected, a, axes, keepdims) - ddof
    bad = dof <= 0
    _warn_where(bad, "Degrees of freedom <= 0 for slice.")
    variance = sum_over(abs_squared(d), axis=axes, keepdims=keepdims) / ufunc_where(bad, 1, dof)
    return variance, bad


def nanvar(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: Any = 0,
           keepdims: bool = False, *, where: Any = None) -> Any:  # fmt: skip
    """`numpy.nanvar`, with `where=`: the variance of the non-NaN (selected) entries, divided
    by their number - ddof; NaN where that is <= 0 (with NumPy's warning). NaNs get zero
    gradient."""
    refuse_options("nanvar", dtype=dtype, out=out)
    a = as_array(a)
    if _present(a) is None:
        return var(a, axis, ddof=ddof, keepdims=keepdims, where=where)
    variance, bad = _nan_moment("nanvar", a, axis, ddof, keepdims, where)
    return ufunc_where(bad, np.nan, variance)


def nanstd(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: Any = 0,
           keepdims: bool = False, *, where: Any = None) -> Any:  # fmt: skip
    """`numpy.nanstd`: sqrt(nanvar), with `where=`; the gradient where the variance is 0 is 0,
    as std's."""
    refuse_options("nanstd", dtype=dtype, out=out)
    a = as_array(a)
    if _present(a) is None:
        return std(a, axis, ddof=ddof, keepdims=keepdims, where=where)
    variance, bad = _nan_moment("nanstd", a, axis, ddof, keepdims, where)
    return ufunc_where(bad, np.nan, root(variance, p=2))

__all__ = ["nanmax", "nanmean", "nanmin", "nanprod", "nanstd", "nansum", "nanvar"]
