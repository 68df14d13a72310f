"""Values chosen elementwise by conditions, under NumPy's names: select and nan_to_num
(`where` itself is in elementwise.py).

Owns: `select` (the first true condition's choice, else the default: a chain of `where`,
so each choice and the default receive the gradient exactly where they are chosen) and
`nan_to_num` (NaN and the infinities replaced: gradient 1 where x is kept, and to traced
replacement values where they are used). Dtypes follow NumPy's promotion, Python scalars
weakly.
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import namespace_of
from ..core.trace import Tracer, as_scalar, raw, unwrapped
from .complex_parts import imag, real
from .elementwise import ufunc_where, where
from .manipulation import getitem
from .joins import as_array, cast

_PYTHON_SCALARS = (int, float, complex)


def _in_dtype(x: Any, dtype: np.dtype) -> Any:
    """`x` (a traced value or an array) in `dtype`; a Python scalar stays one (weakly typed,
    it takes the dtype of the arrays beside it, on their device)."""
    if isinstance(x, Tracer):
        return cast(x, dtype)
    if type(x) in _PYTHON_SCALARS:
        return x
    return x if x.dtype == dtype else x.astype(dtype)


def select(condlist: Any, choicelist: Any, default: Any = 0) -> Any:
    """`numpy.select`: where `condlist[i]` is the first true condition, `choicelist[i]`;
    where none is, `default`. Differentiable in the choices and the default.

    >>> import numpy as np
    >>> from diffprog.numpy.conditional import select
    >>> x = np.arange(6.0)
    >>> select([x < 3, x > 4], [x, x ** 2], 42.0)
    array([ 0.,  1.,  2., 42., 42., 25.])
    """
    if len(condlist) != len(choicelist):
        raise ValueError("list of cases must be same length as list of conditions")
    if len(condlist) == 0:
        raise ValueError("select with an empty condition list is not possible")
    choices = [c if type(c) in _PYTHON_SCALARS else as_array(c) for c in choicelist]
    default = default if type(default) in _PYTHON_SCALARS else as_array(default)
    try:
        dtype = np.result_type(*(c if type(c) in _PYTHON_SCALARS else c.dtype
                                 for c in [*choices, default]))  # fmt: skip
    except TypeError as e:
        raise TypeError(f"Choicelist and default value do not have a common dtype: {e}") from None
    conds = []
    for i, cond in enumerate(condlist):
        cond = raw(as_array(cond))
        if cond.dtype != np.bool_:
            raise TypeError(f"invalid entry {i} in condlist: should be boolean ndarray")
        conds.append(cond)
    result = _in_dtype(default, dtype)  # each where broadcasts: the result has every shape
    for i, (cond, choice) in enumerate(zip(conds[::-1], choices[::-1])):  # (the last one
        pick = where if i == len(conds) - 1 else ufunc_where  # NumPy's: an array, 0-d too)
        result = pick(cond, _in_dtype(choice, dtype), result)
    return result if result.dtype == dtype else result.astype(dtype)  # Python scalars only


def nan_to_num(x: Any, copy: bool = True, nan: Any = 0.0, posinf: Any = None,
               neginf: Any = None) -> Any:  # fmt: skip
    """`numpy.nan_to_num`: NaN becomes `nan`, +inf `posinf` and -inf `neginf` (by default
    the largest and the most negative finite value of the dtype); integers pass unchanged.
    The gradient is 1 where x is kept, 0 where it is replaced (and flows to traced
    replacement values where they are used).

    >>> import numpy as np
    >>> from diffprog.numpy.conditional import nan_to_num
    >>> nan_to_num(np.array([np.nan, np.inf, -np.inf, 1.5]), posinf=9.0)
    array([ 0.00000000e+000,  9.00000000e+000, -1.79769313e+308,  1.50000000e+000])
    """
    x = as_array(x)
    r = as_scalar(raw(x))  # (a watched Python float: NumPy's scalar of it)
    if r.dtype.kind == "c":  # NumPy's: the real and imaginary parts apart
        parts = [nan_to_num(part(x), copy, nan, posinf, neginf) for part in (real, imag)]
        return parts[0] + 1j * parts[1]
    if r.dtype.kind != "f":
        r = r.copy() if copy else r
        return r[()] if r.ndim == 0 else r  # (NumPy's scalar of a 0-d array)
    info = np.finfo(r.dtype)
    posinf = info.max if posinf is None else posinf
    neginf = info.min if neginf is None else neginf
    xp = namespace_of((r,))
    is_inf = xp.isinf(r)
    out = ufunc_where(xp.isnan(r), nan, x)
    out = ufunc_where(is_inf & (r > 0), posinf, out)
    out = ufunc_where(is_inf & (r < 0), neginf, out)
    out = out if out.dtype == r.dtype else out.astype(r.dtype)
    return getitem(out, ()) if type(unwrapped(out)) is np.ndarray and out.ndim == 0 else out  # (as
    # NumPy's: the scalar of a 0-d array)


__all__ = ["nan_to_num", "select"]
