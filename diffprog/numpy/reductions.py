"""Reductions and statistics under NumPy's names: sum, mean, max, min, prod, var, std,
cumsum, cumprod, average, ptp, norm (numpy.linalg.norm), and the constant valued argmax,
argmin, count_nonzero, any, all (logsumexp lives in nn, sort in sorting, the nan* functions
in nan_reductions).

Owns: the reduction primitives and their rules. Public functions take Python numbers and
lists as NumPy does (`as_array`) and normalise `axis` once (`axes_of`), so rules always see a
sorted tuple of non-negative axes; the cotangent is brought back to the input's shape by
reshaping to the kept-dims shape and broadcasting. Rules read shapes and dtypes through
`as_scalar`, since a watched Python float stays a Python float. NumPy's `where=` is a
constant mask, or under dp.vmap one of each example (entries left out are replaced through
`where`, so they get zero gradient; max/min take it as a param, like an index) and
`initial=` a constant scalar in the result's dtype; max/min carry both to their rules.
Ties in max/min share the gradient equally. Products never divide by x: the product of the
other elements comes from exclusive cumulative products, and cumprod's rules are linear
recurrences solved by doubling in diffprog ops, so zeros are exact to every order.
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.exceptions import AxisError

from ..backend import asarray_like, namespace_of, run_kernel
from ..core.edge import astype, broadcast_to, sum_to_shape
from ..core.primitive import IndexedPrimitive, Primitive
from ..core.trace import Tracer, as_scalar, raw, unwrapped
from ..errors import UnsupportedKeywordError
from ._define import axes_of, kept_shape, nondifferentiable, one_axis
from ..ad.batching import Batched, anywhere, every, example_ndim, ndim, shifted
from .batching import aligned, along_axes, elementwise
from .complex_parts import conjugate, real
from .elementwise import abs as _abs
from .elementwise import maximum, ufunc_where
from .joins import as_array, concatenate
from .manipulation import broadcast_to as _broadcast, getitem, reshape, transpose


def spread(g: Any, x: Any, axes: tuple[int, ...], keepdims: bool) -> Any:
    """A reduction's cotangent `g` broadcast back over the reduced axes of `x`. Reduced
    leading axes need no reshape first: broadcasting adds them on the left."""
    if not keepdims and axes != tuple(range(len(axes))):
        g = reshape(g, kept_shape(x.shape, axes))
    return broadcast_to(g, shape=x.shape)


#: NumPy reduces a last axis row by row, at a fixed cost per row (a (4096, 10) max takes
#: 130 us, 25x its arithmetic); trailing axes of at most SHORT_ROW elements, over at least
#: MANY_ROWS rows, are reduced as a transposed copy along its first axis instead (20 us)
SHORT_ROW = 16
MANY_ROWS = 32


def short_rows(x: Any, axis: tuple[int, ...]) -> int:
    """The length of the rows `axis` (sorted) makes of float NumPy array `x` when they are
    trailing, short and many (see SHORT_ROW), else 0."""
    if type(x) is not np.ndarray or not axis or x.dtype.kind != "f":
        return 0
    nd, k = x.ndim, len(axis)
    if axis[0] != nd - k:
        return 0
    n = math.prod(x.shape[nd - k:])
    return n if 1 < n <= SHORT_ROW and x.size >= MANY_ROWS * n else 0


def rows_first(x: np.ndarray, n: int) -> np.ndarray:
    """`x`'s rows of length `n` as the columns of a C-contiguous (n, rows) array."""
    return np.ascontiguousarray(x.reshape(-1, n).T)


def _sum_impl(xp: Any, x: Any, *, axis: tuple[int, ...], keepdims: bool) -> Any:
    if type(x) is float:
        x = xp.asarray(x)
    return x.sum(axis=axis, keepdims=keepdims)  # the method: less wrapper than xp.sum


sum_over = Primitive("sum", _sum_impl)
sum_over.defvjp(lambda g, ans, x, *, axis, keepdims: spread(g, x, axis, keepdims))
sum_over.defjvp(lambda t, ans, x, *, axis, keepdims: sum_over(t, axis=axis, keepdims=keepdims))


def sum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None,  # noqa: A001
        keepdims: bool = False, initial: Any = None, where: Any = None) -> Any:  # fmt: skip
    """`numpy.sum`, with `dtype=` (the entries cast to it first, as NumPy's), `initial=`
    and `where=` (out= is refused by name).

    >>> import diffprog.numpy as dnp, numpy as np
    >>> dnp.sum(np.ones((2, 3)), axis=1)
    array([3., 3.])
    >>> dnp.sum(np.ones((2, 3)), axis=1, where=np.array([True, False, True]), initial=1.0)
    array([3., 3.])
    """
    refuse_options("sum", out=out)
    a = in_dtype("sum", as_array(a), dtype)
    axes = axes_of(axis, len(a.shape), zero_d="nothing")
    if initial is None and where is None:
        return sum_over(a, axis=axes, keepdims=keepdims)
    total = sum_over(masked(a, where_mask("sum", where, a), 0), axis=axes, keepdims=keepdims)
    return total if initial is None else total + _initial("sum", initial, total)


def _mean_impl(xp: Any, x: Any, *, axis: tuple[int, ...], keepdims: bool) -> Any:
    if type(x) is float:
        x = xp.asarray(x)
    n = _count(x.shape, axis)
    if x.dtype.kind in "biu":  # as NumPy: integers and booleans are summed in float64,
        return x.sum(axis=axis, keepdims=keepdims, dtype=xp.float64) / n
    if x.dtype == xp.float16:  # float16 in float32 (then cast back)
        return (x.sum(axis=axis, keepdims=keepdims, dtype=xp.float32) / n).astype(x.dtype)
    return x.sum(axis=axis, keepdims=keepdims) / n


# One record, not a sum and a division: the mean is in nearly every loss.
_mean = Primitive("mean", _mean_impl)
_mean.defvjp(
    lambda g, ans, x, *, axis, keepdims: spread(g / _count(x.shape, axis), x, axis, keepdims)
)
_mean.defjvp(lambda t, ans, x, *, axis, keepdims: _mean(t, axis=axis, keepdims=keepdims))


def mean(a: Any, axis: Any = None, dtype: Any = None, out: Any = None,
         keepdims: bool = False, *, where: Any = None) -> Any:  # fmt: skip
    """`numpy.mean`, with a floating `dtype=` (the entries cast to it first, as NumPy's) and
    `where=` (out= is refused by name). A group with no entry selected has mean NaN, as in
    NumPy, and gives its entries zero gradient."""
    refuse_options("mean", out=out)
    a = in_dtype("mean", as_array(a), dtype, kinds="fc")
    axes = axes_of(axis, len(a.shape))
    mask = where_mask("mean", where, a)
    if mask is None:
        return _mean(a, axis=axes, keepdims=keepdims)
    total = sum_over(masked(a, mask, 0), axis=axes, keepdims=keepdims)
    return total / selected_count(mask, a, axes, keepdims)


def _extremum_share(x: Any, ans: Any, axes: tuple[int, ...], keepdims: bool,
                    initial: Any = None, where: Any = None) -> Any:  # fmt: skip
    """Where x attains its max (or min): 1/k for each of k ties, elsewhere 0 (a constant
    array). An `initial` equal to the result is one of the k; entries outside `where` are not."""
    x, ans = as_scalar(raw(x)), as_scalar(raw(ans))
    if not keepdims:
        ans = ans.reshape(kept_shape(x.shape, axes))
    hit = x == ans
    if where is not None:
        hit = hit & where
    count = hit.sum(axis=axes, keepdims=True)
    if initial is not None:
        count = count + (ans == initial)
    return (hit / count).astype(x.dtype)


def _extremum_with_initial(xp: Any, x: Any, kernel: str, axis: tuple[int, ...], keepdims: bool,
                           initial: Any, where: Any) -> Any:  # fmt: skip
    """NumPy's max/min with initial= (and where=) on any backend (CuPy has neither)."""
    x = xp.asarray(x)
    if where is not None:
        x = xp.where(where, x, initial)
    if _count(x.shape, axis) == 0:  # every group is empty: the initial value alone
        shape = kept_shape(x.shape, axis) if keepdims else tuple(
            n for i, n in enumerate(x.shape) if i not in axis)  # fmt: skip
        return xp.full(shape, initial, dtype=x.dtype)[()]
    pair = xp.maximum if kernel == "max" else xp.minimum
    return pair(getattr(xp, kernel)(x, axis=axis, keepdims=keepdims), initial)


def _extremum(name: str, kernel: str) -> Primitive:
    def impl(xp: Any, x: Any, *, axis: tuple[int, ...], keepdims: bool, initial: Any = None,
             where: Any = None) -> Any:  # fmt: skip
        n = short_rows(x, axis) if initial is None else 0
        if n:  # the same values: max and min do not depend on the order
            lead = x.shape[: x.ndim - len(axis)]
            out = getattr(rows_first(x, n), kernel)(axis=0)
            return out.reshape(lead + (1,) * len(axis) if keepdims else lead)
        if initial is None:
            return getattr(xp, kernel)(x, axis=axis, keepdims=keepdims)
        return _extremum_with_initial(xp, x, kernel, axis, keepdims, initial, where)

    prim = IndexedPrimitive(name, impl)  # (a where= mask of each example's own: see _extremum_batch)
    prim.defvjp(
        lambda g, ans, x, *, axis, keepdims, **masking: spread(g, x, axis, keepdims)
        * _extremum_share(x, ans, axis, keepdims, **masking)
    )
    prim.defjvp(
        lambda t, ans, x, *, axis, keepdims, **masking: sum_over(
            t * _extremum_share(x, ans, axis, keepdims, **masking), axis=axis, keepdims=keepdims
        )
    )
    return prim


_max = _extremum("max", "max")
_min = _extremum("min", "min")


def _extremum_call(prim: Primitive, a: Any, axis: Any, keepdims: bool, initial: Any,
                   where: Any) -> Any:  # fmt: skip
    a = as_array(a)
    axes = axes_of(axis, len(a.shape), zero_d="nothing")
    mask = where_mask(prim.name, where, a)
    if initial is None:
        if mask is not None:  # NumPy's error
            raise ValueError(f"{prim.name}: reduction operation '{prim.name}imum' does not have an "
                             "identity, so to use a where mask one has to specify 'initial'")
        return prim(a, axis=axes, keepdims=keepdims)
    initial = _initial(prim.name, initial, a)
    return prim(a, axis=axes, keepdims=keepdims, initial=initial, where=mask)


def max(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False,  # noqa: A001
        initial: Any = None, where: Any = None) -> Any:  # fmt: skip
    """`numpy.max`, with `initial=` and `where=`; ties share the gradient equally (an
    `initial` equal to the maximum takes its share, which goes nowhere)."""
    refuse_options("max", out=out)
    return _extremum_call(_max, a, axis, keepdims, initial, where)


def min(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False,  # noqa: A001
        initial: Any = None, where: Any = None) -> Any:  # fmt: skip
    """`numpy.min`, with `initial=` and `where=`; ties share the gradient equally."""
    refuse_options("min", out=out)
    return _extremum_call(_min, a, axis, keepdims, initial, where)


amax, amin = max, min


# --- helpers -------------------------------------------------------------------------------
def where_mask(name: str, where: Any, a: Any) -> Any:
    """NumPy's `where=` of a reduction over `a`: None when every entry counts, else a constant
    boolean array on a's device that broadcasts to a's shape."""
    if where is None or where is True:
        return None
    ref = as_scalar(raw(a))
    mask = raw(where)
    if not (isinstance(mask, Tracer) and mask.batched):  # (one of each example: kept as it is)
        mask = asarray_like(mask, ref)
    if mask.dtype != bool:
        raise TypeError(f"{name}: where= must be a boolean mask, got dtype {mask.dtype}")
    try:
        fits = np.broadcast_shapes(mask.shape, ref.shape) == ref.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{name}: where= of shape {mask.shape} does not broadcast to the "
                         f"array's shape {ref.shape}")  # fmt: skip
    return mask


def masked(a: Any, mask: Any, fill: int) -> Any:
    """`a` with the entries outside `mask` replaced by `fill` (and given zero gradient)."""
    return a if mask is None else ufunc_where(mask, a, fill)


def selected_count(mask: Any, a: Any, axes: tuple[int, ...], keepdims: bool, ddof: int = 0) -> Any:
    """max(k - ddof, 0) for the k entries `mask` selects in each group of the reduction: a
    constant array in the dtype of a's mean (a's floating dtype, else float64)."""
    r = as_scalar(raw(a))
    k = sum_over(astype(broadcast_to(mask, shape=r.shape), dtype=r.dtype if r.dtype.kind == "f"
                    else np.dtype(np.float64)), axis=axes, keepdims=keepdims)  # fmt: skip
    return maximum(k - ddof, 0.0) if ddof else k


def _initial(name: str, initial: Any, like: Any) -> Any:
    """NumPy's `initial=`: a constant scalar, cast to the dtype of `like` as NumPy casts it."""
    if isinstance(initial, Tracer):
        raise TypeError(f"{name}: initial= must be a constant scalar, not a traced value; to "
                        "differentiate with respect to it, combine it with the reduction "
                        "(e.g. dnp.maximum(dnp.max(x), v) or dnp.sum(x) + v)")  # fmt: skip
    if np.ndim(initial) != 0:
        raise ValueError(f"{name}: initial= must be a scalar, got shape {np.shape(initial)}")
    if hasattr(initial, "item"):  # a 0-d array (perhaps on a GPU) as a host number
        initial = initial.item()
    return as_scalar(raw(like)).dtype.type(initial)


def in_dtype(name: str, a: Any, dtype: Any, kinds: str = "iufc") -> Any:
    """`a` cast to NumPy's `dtype=` of reduction `name` (None: `a` itself), as NumPy casts
    the entries before it reduces; a dtype of another kind than `kinds` (a boolean sum, an
    integer mean: NumPy's own rules) is refused by name."""
    if dtype is None:
        return a
    dtype = np.dtype(dtype)
    if dtype.kind not in kinds:
        raise UnsupportedKeywordError(f"{name}: dtype={dtype} is not supported (diffprog "
                                      f"implements dtype= of the kinds {kinds!r})")  # fmt: skip
    return a if as_scalar(raw(a)).dtype == dtype else astype(a, dtype=dtype)


def refuse_options(name: str, **options: Any) -> None:
    """UnsupportedKeywordError for the first of NumPy's `options` given (not None)."""
    for option, value in options.items():
        if value is not None:
            raise UnsupportedKeywordError(
                f"{name}: the `{option}` option is not supported (diffprog does not implement "
                f"this keyword argument of NumPy's; drop {option}=)")


def _count(shape: tuple[int, ...], axes: tuple[int, ...]) -> int:
    return math.prod(map(shape.__getitem__, axes))


def _take(x: Any, start: Any, stop: Any, axis: int, step: Any = None) -> Any:
    """x[..., start:stop:step, ...] along `axis` (a differentiable slice)."""
    return getitem(x, (slice(None),) * axis + (slice(start, stop, step),))


def _flip(x: Any, axis: int) -> Any:
    return _take(x, None, None, axis, -1)


def _constant(like: Any, shape: tuple, fill: Any, dtype: Any) -> Any:
    """A constant array of `fill` in the array module and on the device of the concrete
    value under `like` (under dp.jit on CuPy, a CuPy array: NumPy's `full` would not
    dispatch to the staged value and make a host one)."""
    return run_kernel(lambda xp, _: xp.full(shape, fill, dtype=dtype), (unwrapped(like),), {})


def _shift_in(x: Any, axis: int, fill: float) -> Any:
    """x moved one step along `axis`, the constant `fill` entering at the front."""
    r = raw(x)
    if r.shape[axis] == 0:
        return x
    head = _constant(x, kept_shape(r.shape, (axis,)), fill, r.dtype)
    return concatenate([head, _take(x, None, -1, axis)], axis)


def _linear_scan(a: Any, b: Any, axis: int) -> Any:
    """s with s[k] = a[k] * s[k-1] + b[k] along `axis` (s[-1] = 0, a[0] unused).

    Doubling (Hillis-Steele) over the affine maps s -> a s + b: log2(n) steps of products
    and sums in diffprog ops, no division, so it is exact at zeros and differentiable.
    """
    n, d = b.shape[axis], 1
    while d < n:
        a_tail = _take(a, d, None, axis)
        b = concatenate([_take(b, None, d, axis), a_tail * _take(b, None, n - d, axis)
                         + _take(b, d, None, axis)], axis)  # fmt: skip
        if 2 * d < n:
            a = concatenate([_take(a, None, d, axis), a_tail * _take(a, None, n - d, axis)], axis)
        d *= 2
    return b


# --- cumulative sums and products ----------------------------------------------------------
_cumsum = Primitive("cumsum", lambda xp, x, *, axis: xp.cumsum(x, axis=axis))
_cumsum.defvjp(lambda g, ans, x, *, axis: _flip(_cumsum(_flip(g, axis), axis=axis), axis))
_cumsum.defjvp(lambda t, ans, x, *, axis: _cumsum(t, axis=axis))


def _cumprod_vjp(g: Any, ans: Any, x: Any, *, axis: int) -> Any:
    # dx[j] = prod(x[:j]) * s[j] with s[j] = g[j] + x[j+1] s[j+1]: a reversed linear scan.
    xr = _flip(x, axis)
    s = _flip(_linear_scan(_shift_in(xr, axis, 1.0), _flip(g, axis), axis), axis)
    return _shift_in(ans, axis, 1.0) * s


_cumprod = Primitive("cumprod", lambda xp, x, *, axis: xp.cumprod(x, axis=axis))
_cumprod.defvjp(_cumprod_vjp)
# dy[k] = x[k] dy[k-1] + t[k] prod(x[:k])
_cumprod.defjvp(lambda t, ans, x, *, axis: _linear_scan(x, t * _shift_in(ans, axis, 1.0), axis))


def _cumulative(prim: Primitive, a: Any, axis: Any) -> Any:
    """`prim` along `axis`, an int (NumPy's TypeError for a tuple), or along the flattened
    array for None; a 0-d array is taken as 1-d, as NumPy does."""
    a = as_array(a)
    if axis is None:
        return prim(reshape(a, (-1,)), axis=0)
    axis = one_axis(prim.name, axis, len(a.shape), zero_d="one")
    return prim(reshape(a, (1,)) if not a.shape else a, axis=axis)


def cumsum(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    """`numpy.cumsum`; axis=None works on the flattened array.

    >>> import numpy as np
    >>> from diffprog.numpy.reductions import cumsum
    >>> cumsum(np.array([1.0, 2.0, 3.0]))
    array([1., 3., 6.])
    """
    refuse_options("cumsum", out=out)
    return _cumulative(_cumsum, in_dtype("cumsum", as_array(a), dtype), axis)


def cumprod(a: Any, axis: Any = None, dtype: Any = None, out: Any = None) -> Any:
    """`numpy.cumprod`; its gradient is exact where x has zeros (no division by x)."""
    refuse_options("cumprod", out=out)
    return _cumulative(_cumprod, in_dtype("cumprod", as_array(a), dtype), axis)


# --- prod ----------------------------------------------------------------------------------
def product_of_others(x: Any, axes: tuple[int, ...]) -> Any:
    """For each element of x, the product of the other elements of its reduction group:
    exclusive prefix times exclusive suffix products (no division, exact with zeros)."""
    nd = len(x.shape)
    perm = [i for i in range(nd) if i not in axes] + list(axes)
    xt = transpose(x, perm)
    lead = xt.shape[: nd - len(axes)]
    k = len(lead)
    flat = reshape(xt, lead + (_count(x.shape, axes),))
    left = _shift_in(_cumprod(flat, axis=k), k, 1.0)
    right = _flip(_shift_in(_cumprod(_flip(flat, k), axis=k), k, 1.0), k)
    return transpose(reshape(left * right, xt.shape), [perm.index(i) for i in range(nd)])


_prod = Primitive("prod", lambda xp, x, *, axis, keepdims: xp.prod(x, axis=axis, keepdims=keepdims))
_prod.defvjp(lambda g, ans, x, *, axis, keepdims:
             spread(g, x, axis, keepdims) * product_of_others(x, axis))  # fmt: skip
_prod.defjvp(lambda t, ans, x, *, axis, keepdims:
             sum_over(t * product_of_others(x, axis), axis=axis, keepdims=keepdims))  # fmt: skip


def prod(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, keepdims: bool = False,
         initial: Any = None, where: Any = None) -> Any:  # fmt: skip
    """`numpy.prod`, with `initial=` and `where=`; the gradient is the product of the other
    (selected) elements, exact with zeros.

    >>> import diffprog as dp, numpy as np
    >>> from diffprog.numpy.reductions import prod
    >>> dp.grad(prod)(np.array([2.0, 0.0, 3.0]))
    array([0., 6., 0.])
    """
    refuse_options("prod", out=out)
    a = in_dtype("prod", as_array(a), dtype)
    axes = axes_of(axis, len(a.shape), zero_d="nothing")
    p = _prod(masked(a, where_mask("prod", where, a), 1), axis=axes, keepdims=keepdims)
    return p if initial is None else p * _initial("prod", initial, p)


# --- roots: std and the p-norms ------------------------------------------------------------
def _root_slope(s: Any, ans: Any, p: float) -> Any:
    # d s**(1/p) / ds = ans / (p s), taken as 0 where s == 0 (see `std` and `norm`).
    nz = s != 0
    return ufunc_where(nz, ans / (p * ufunc_where(nz, s, 1.0)), 0.0)


root = Primitive("root", lambda xp, s, *, p: xp.sqrt(s) if p == 2 else xp.power(s, 1.0 / p))
root.defvjp(lambda g, ans, s, *, p: g * _root_slope(s, ans, p))
root.defjvp(lambda t, ans, s, *, p: t * _root_slope(s, ans, p))


# --- statistics ----------------------------------------------------------------------------
def var(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: int = 0,
        keepdims: bool = False, *, where: Any = None) -> Any:  # fmt: skip
    """`numpy.var`, with `where=`: mean squared deviation from the mean, divided by N - ddof
    (N the number of entries selected); for complex `a`, of |deviation|**2 (a real result)."""
    refuse_options("var", dtype=dtype, out=out)
    a = as_array(a)
    axes = axes_of(axis, len(a.shape))
    mask = where_mask("var", where, a)
    if mask is None:
        d = a - mean(a, axes, keepdims=True)
        dof = _count(a.shape, axes) - ddof  # a Python int: no dtype promotion
        return sum_over(abs_squared(d), axis=axes, keepdims=keepdims) / (dof if dof > 0 else 0)
    d = masked(a - mean(a, axes, keepdims=True, where=mask), mask, 0)
    count = selected_count(mask, a, axes, keepdims, ddof)
    return sum_over(abs_squared(d), axis=axes, keepdims=keepdims) / count


def abs_squared(x: Any) -> Any:
    """|x|^2 entrywise: x * x, or Re(x conj(x)) for a complex x (real, as NumPy's var and
    norm compute it; smooth at 0, unlike abs(x) ** 2)."""
    if as_scalar(raw(x)).dtype.kind != "c":
        return x * x
    return real(x * conjugate(x))


def std(a: Any, axis: Any = None, dtype: Any = None, out: Any = None, ddof: int = 0,
        keepdims: bool = False, *, where: Any = None) -> Any:  # fmt: skip
    """`numpy.std`, sqrt(var), with `where=`. Where the variance is exactly 0 the gradient is
    0 (a subgradient, like optax's safe_norm), not JAX's NaN (0 * inf from sqrt's slope)."""
    refuse_options("std", dtype=dtype, out=out)
    return root(var(a, axis, ddof=ddof, keepdims=keepdims, where=where), p=2)


def average(a: Any, axis: Any = None, weights: Any = None, returned: bool = False, *,
            keepdims: bool = False) -> Any:  # fmt: skip
    """`numpy.average`: sum(a * w) / sum(w), differentiable in both a and the weights.

    1-D weights go along an int `axis`; returned=True also returns sum(w) (as NumPy does).
    """
    a = as_array(a)
    nd = len(a.shape)
    axes = axes_of(axis, nd, sequence=True)  # (NumPy takes any sequence here)
    if weights is None:
        avg = mean(a, axes, keepdims=keepdims)
        scale = float(_count(a.shape, axes))
    else:
        w = as_array(weights)
        if w.shape != a.shape:
            if axis is None:
                raise TypeError("average: axis must be specified if a and weights differ in shape")
            if not isinstance(axis, int) or len(w.shape) != 1 or w.shape[0] != a.shape[axes[0]]:
                raise ValueError(f"average: weights must have a's shape, or be 1-D with the length"
                                 f" of a along an int axis (got {w.shape}, {a.shape}, axis={axis})")
            w = reshape(w, (w.shape[0],) + (1,) * (nd - 1 - axes[0]))
        w = _broadcast(w, a.shape)
        scale = sum_over(w, axis=axes, keepdims=keepdims)
        # NumPy's check; on a GPU it would wait for the device at every call, so there a zero
        # weight sum gives inf or NaN instead.
        if namespace_of((raw(scale),)) is np and anywhere(raw(scale) == 0):
            raise ZeroDivisionError("average: weights sum to zero, can't be normalized")
        avg = sum_over(a * w, axis=axes, keepdims=keepdims) / scale
    if not returned:
        return avg
    if weights is None:  # NumPy returns the count, in the result's dtype and shape
        r = raw(avg)
        scale = _constant(avg, r.shape, scale, r.dtype)
    return avg, scale


def ptp(a: Any, axis: Any = None, out: Any = None, keepdims: bool = False) -> Any:
    """`numpy.ptp`: max - min (ties share the gradient, as in max and min)."""
    refuse_options("ptp", out=out)
    a = as_array(a)
    return max(a, axis, keepdims=keepdims) - min(a, axis, keepdims=keepdims)


# --- numpy.linalg.norm ---------------------------------------------------------------------
def _two_norm(x: Any, axes: tuple[int, ...], keepdims: bool) -> Any:
    # The gradient x / |x| is 0 at x = 0 exactly (a subgradient; the derivative does not
    # exist there), as optax's safe_norm does: finite, so one zero row cannot poison a batch.
    return root(sum_over(abs_squared(x), axis=axes, keepdims=keepdims), p=2)


def _vector_norm(x: Any, ord: Any, axis: int, keepdims: bool) -> Any:  # noqa: A002
    kw = {"axis": (axis,), "keepdims": keepdims}
    if isinstance(ord, str):
        raise ValueError(f"norm: invalid norm order {ord!r} for vectors")
    if ord is None or ord == 2:
        return _two_norm(x, (axis,), keepdims)
    if ord == math.inf:
        return _max(_abs(x), **kw)
    if ord == -math.inf:
        return _min(_abs(x), **kw)
    if ord == 0:  # a count of the nonzero entries: a constant, in x's real dtype as in NumPy
        r = raw(x)
        return (r != 0).astype(r.real.dtype).sum(axis=axis, keepdims=keepdims)
    if ord == 1:
        return sum_over(_abs(x), **kw)
    return root(sum_over(_abs(x) ** float(ord), **kw), p=float(ord))


def _matrix_norm(x: Any, ord: Any, row: int, col: int, keepdims: bool) -> Any:  # noqa: A002
    if row == col:
        raise ValueError("norm: duplicate axes given")
    if ord in (2, -2, "nuc"):  # numpy.linalg's name for this function does them
        raise NotImplementedError(f"norm: ord={ord!r} for matrices (singular values) is "
                                  "diffprog.numpy.linalg.norm's")  # fmt: skip
    if ord is None or ord in ("fro", "f"):
        out = _two_norm(x, tuple(sorted((row, col))), keepdims=True)
    elif ord in (1, -1, math.inf, -math.inf):
        inner, outer = (row, col) if ord in (1, -1) else (col, row)  # sum over inner axis first
        pick = _max if ord > 0 else _min
        out = pick(sum_over(_abs(x), axis=(inner,), keepdims=True), axis=(outer,), keepdims=True)
    else:
        raise ValueError(f"norm: invalid norm order {ord!r} for matrices")
    return out if keepdims else reshape(out, tuple(n for i, n in enumerate(out.shape)
                                                   if i not in (row, col)))  # fmt: skip


def norm(x: Any, ord: Any = None, axis: Any = None, keepdims: bool = False) -> Any:  # noqa: A002
    """`numpy.linalg.norm` for vectors (ord None/2, 1, inf, -inf, 0 a count, any p) and
    matrices (None/'fro', 1, -1, inf, -inf; diffprog.numpy.linalg.norm adds 'nuc', 2, -2).

    The 2-norm's (and 'fro''s) gradient at x = 0 is 0; at a zero sum of |x|**p so is the
    p-norm's. Integer input is converted to float64, as NumPy does.

    >>> import diffprog as dp, numpy as np
    >>> from diffprog.numpy.reductions import norm
    >>> dp.grad(norm)(np.array([3.0, 4.0]))
    array([0.6, 0.8])
    """
    x = as_array(x)
    if as_scalar(raw(x)).dtype.kind not in "fc":
        x = raw(x).astype(np.float64)
    nd = len(x.shape)
    if axis is None:
        if ord is None or (ord in ("f", "fro") and nd == 2) or (ord == 2 and nd == 1):
            return _two_norm(x, tuple(range(nd)), keepdims)
        if nd not in (1, 2):
            raise ValueError("norm: improper number of dimensions to norm (give axis)")
        axis = tuple(range(nd))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axes:
        if not -nd <= a < nd:
            raise AxisError(f"norm: axis {a} is out of bounds for an array of dimension {nd}")
    axes = tuple(int(a) % nd for a in axes)
    if len(axes) == 1:
        return _vector_norm(x, ord, axes[0], keepdims)
    if len(axes) == 2:
        return _matrix_norm(x, ord, axes[0], axes[1], keepdims)
    raise ValueError("norm: improper number of dimensions to norm (axis must name 1 or 2 axes)")


# --- constant-valued: argmax, argmin, count_nonzero ----------------------------------------
_argmax = nondifferentiable("argmax", lambda xp, x, **kw: xp.argmax(x, **kw))
_argmin = nondifferentiable("argmin", lambda xp, x, **kw: xp.argmin(x, **kw))
_count_nonzero = nondifferentiable(  # NumPy gives a Python int for axis=None, keepdims=False
    "count_nonzero", lambda xp, x, *, axis, keepdims: xp.count_nonzero(x) if axis is None and
    not keepdims else (xp.asarray(x) != 0).sum(axis=axis, keepdims=keepdims, dtype=xp.intp))  # fmt: skip




def _arg_batch(prim: Primitive) -> Any:
    """dp.vmap's rule of argmax/argmin: axis=None indexes one example's flattened array."""

    def rule(size: int, batched: tuple, x: Any, *, axis: Any = None, keepdims: bool = False) -> Any:
        if axis is not None:
            return prim(x, axis=axis + 1 if axis >= 0 else axis, keepdims=keepdims)
        flat = prim(reshape(x, (size, -1)), axis=1)
        return reshape(flat, (size,) + (1,) * (ndim(x) - 1)) if keepdims else flat

    return rule


def _sum_to_shape_batch(size: int, batched: tuple, x: Any, *, shape: tuple) -> Any:
    lead = ndim(x) - 1 - len(shape)  # the leading axes of one example that the sum removes
    if lead > 0:
        x = sum_over(x, axis=tuple(range(1, lead + 1)), keepdims=False)
    return sum_to_shape(x, shape=(size,) + tuple(shape))


def _extremum_batch(prim: Primitive) -> Any:
    """dp.vmap's rule of max/min: the axes shifted past the batch axis; a where= mask of each
    example's own aligned with the batch (a shared one broadcasts as it is)."""

    def rule(size: int, batched: tuple, x: Any, *, axis: tuple[int, ...], keepdims: bool,
             **masking: Any) -> Any:  # fmt: skip
        rank = example_ndim(x, batched[0])
        if type(masking.get("where")) is Batched:
            masking["where"] = aligned(masking["where"].value, rank)
            x = every(x, batched[0], size)
        return prim(x, axis=shifted(axis, rank), keepdims=keepdims, **masking)

    return rule


# dp.vmap's rules of this module's primitives (and of the reverse sweep's sum_to_shape)
along_axes(sum_over, _mean, _prod, _cumsum, _cumprod, _count_nonzero)
_max.defbatch(_extremum_batch(_max))
_min.defbatch(_extremum_batch(_min))
elementwise(root)
_argmax.defbatch(_arg_batch(_argmax))
_argmin.defbatch(_arg_batch(_argmin))
sum_to_shape.defbatch(_sum_to_shape_batch)


def argmax(a: Any, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
    """`numpy.argmax`: the index of the (first) maximum, a constant int array."""
    refuse_options("argmax", out=out)
    return _argmax(as_array(a), axis=axis, keepdims=keepdims)


def argmin(a: Any, axis: Any = None, out: Any = None, *, keepdims: bool = False) -> Any:
    """`numpy.argmin`: the index of the (first) minimum, a constant int array."""
    refuse_options("argmin", out=out)
    return _argmin(as_array(a), axis=axis, keepdims=keepdims)


def count_nonzero(a: Any, axis: Any = None, *, keepdims: bool = False) -> Any:
    """`numpy.count_nonzero`: the number of nonzero entries, a constant."""
    a = as_array(a)
    return _count_nonzero(a, axis=None if axis is None else axes_of(axis, len(a.shape), "nothing"),
                          keepdims=keepdims)  # fmt: skip


def any(a: Any, axis: Any = None, *, keepdims: bool = False) -> Any:  # noqa: A001 - NumPy's name
    """`numpy.any`: whether some entry is nonzero (NaN counts), a constant."""
    return count_nonzero(a, axis, keepdims=keepdims) > 0


def all(a: Any, axis: Any = None, *, keepdims: bool = False) -> Any:  # noqa: A001 - NumPy's name
    """`numpy.all`: whether every entry is nonzero (NaN counts), a constant."""
    a = as_array(a)
    return count_nonzero(a == 0, axis, keepdims=keepdims) == 0


__all__ = [
    "sum", "mean", "max", "min", "amax", "amin", "prod", "cumsum", "cumprod", "var", "std",
    "average", "ptp", "norm", "argmax", "argmin", "count_nonzero", "any",
    "all",
]  # fmt: skip
