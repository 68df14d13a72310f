"""NumPy's index tricks that build arrays: `r_` and `c_`, differentiable in traced entries.

Owns: `r_[...]` and `c_[...]` with NumPy's rules: slices are ranges (`start:stop:step`,
arange; a complex step `n*1j` asks for n points, linspace, differentiable in traced start
and stop), scalars and arrays join along the axis after being given `ndmin` dimensions
(1 for r_, 2 for c_, new axes placed as `trans1d` says), and a leading string directive
'axis', 'axis,ndmin' or 'axis,ndmin,trans1d' changes these. One dtype for all, as NumPy
promotes (Python scalars weakly). The matrix directives 'r' and 'c' (numpy.matrix) are not
supported. `s_` and `index_exp` are NumPy's own (they build index tuples, not arrays).
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import asarray_like, namespace_of
from ..core.trace import Tracer, raw
from .creation import arange, array, linspace
from .joins import as_array, as_array_beside, concatenate, holds_arrays
from .manipulation import swapaxes, transpose

_SCALARS = (int, float, complex, np.generic)  # NumPy's ScalarType, less str and bytes


class AxisConcatenator:
    """`numpy.lib.index_tricks.AxisConcatenator` over diffprog.numpy: `self[...]` joins."""

    __slots__ = ("axis", "ndmin", "trans1d")

    def __init__(self, axis: int = 0, ndmin: int = 1, trans1d: int = -1) -> None:
        self.axis, self.ndmin, self.trans1d = axis, ndmin, trans1d

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            raise NotImplementedError(
                "the matrix-building form r_['1, 2; 3, 4'] (numpy.matrix) is not supported")
        key = key if isinstance(key, tuple) else (key,)
        axis, ndmin, trans1d = self.axis, self.ndmin, self.trans1d
        # ranges and scalars are made beside the first traced or GPU entry, on its device
        ref = _device_reference(key)
        objs, weak = [], []
        for k, item in enumerate(key):
            if isinstance(item, str):
                if k != 0:
                    raise ValueError("special directives must be the first entry.")
                axis, ndmin, trans1d = _directive(item, axis, ndmin, trans1d)
                continue
            if isinstance(item, slice):
                obj = _range(item)
                if ref is not None and not isinstance(obj, Tracer):
                    obj = asarray_like(obj, raw(ref))
                if ndmin > 1:
                    obj = array(obj, copy=None, ndmin=ndmin)
                    if trans1d != -1:
                        obj = swapaxes(obj, -1, trans1d)
                weak.append(obj.dtype)
            elif isinstance(item, _SCALARS):
                obj = item if ref is None else as_array_beside(item, ref)
                weak.append(item)  # a Python scalar takes part in promotion weakly
            else:
                obj = as_array(item)
                item_ndim = len(obj.shape)
                obj = array(obj, copy=None, ndmin=ndmin)
                if trans1d != -1 and item_ndim < ndmin:
                    k2, k1 = ndmin - item_ndim, trans1d
                    k1 += k2 + 1 if k1 < 0 else 0
                    axes = list(range(ndmin))
                    obj = transpose(obj, axes[:k1] + axes[k2:] + axes[k1:k2])
                weak.append(obj.dtype)
            objs.append(obj)
        dtype = np.result_type(*weak) if weak else None
        objs = [array(obj, copy=None, ndmin=ndmin, dtype=dtype) for obj in objs]
        return concatenate(objs, axis=axis)

    def __len__(self) -> int:
        return 0


def _device_reference(key: tuple) -> Any:
    """The first traced value or GPU array among the entries (and the slices' ends), if any."""
    for item in key:
        for x in (item.start, item.stop) if isinstance(item, slice) else (item,):
            if isinstance(x, Tracer) or holds_arrays(x):
                return as_array(x)
            if hasattr(x, "shape") and not isinstance(x, np.generic) and namespace_of((x,)) is not np:
                return x
    return None


def _directive(item: str, axis: int, ndmin: int, trans1d: int) -> tuple[int, int, int]:
    """The settings a string directive 'axis[,ndmin[,trans1d]]' asks for."""
    if item in ("r", "c"):
        raise NotImplementedError(
            f"the directive {item!r} makes a numpy.matrix, which diffprog does not support; "
            "build an array and reshape it instead")  # fmt: skip
    parts = item.split(",")
    try:
        values = [int(p) for p in parts]
    except ValueError as e:
        raise ValueError(f"unknown special directive {item!r}") from e
    if len(values) > 3 or len(values) == 0:
        raise ValueError(f"unknown special directive {item!r}")
    if len(values) == 1:
        return values[0], ndmin, trans1d
    return values[0], values[1], values[2] if len(values) == 3 else trans1d


def _range(item: slice) -> Any:
    start = 0 if item.start is None else item.start
    step = 1 if item.step is None else item.step
    if isinstance(step, (complex, np.complexfloating)):
        return linspace(start, item.stop, num=int(abs(step)))
    return arange(start, item.stop, step)


class RClass(AxisConcatenator):
    """`numpy.r_`: join along the first axis (entries at least 1-D).

    >>> import diffprog as dp, numpy as np
    >>> from diffprog.numpy import r_
    >>> r_[np.array([1.0, 2.0]), 0.0, 0:2]
    array([1., 2., 0., 0., 1.])
    >>> dp.grad(lambda a: (r_[a, 2.0 * a, 0:3] ** 2).sum())(1.0)
    10.0
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(0)


class CClass(AxisConcatenator):
    """`numpy.c_`: join along the last axis (entries at least 2-D, 1-D ones as columns).

    >>> import numpy as np
    >>> from diffprog.numpy import c_
    >>> c_[np.array([1.0, 2.0]), np.array([3.0, 4.0])]
    array([[1., 3.],
           [2., 4.]])
    """

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(-1, ndmin=2, trans1d=0)


r_ = RClass()
c_ = CClass()
s_ = np.s_
index_exp = np.index_exp

__all__ = ["c_", "index_exp", "r_", "s_"]
