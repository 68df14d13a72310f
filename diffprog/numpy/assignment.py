"""Item assignment on traced arrays: `x[index] = v`, `np.copyto(x, v)`.

Owns: `setitem` (the tracer's `__setitem__`) and `copyto`, NumPy's names for writing into an
array. Both go through `views.assign`, so a write into a view reaches its base and every
other view of it, as in NumPy, and is recorded without copying the array (inplace.py).
Repeated advanced indices follow NumPy: the last write wins, and only the winning elements
of v receive gradient. Writing a traced value into a plain NumPy array is refused with what
to do instead.
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..backend import namespace_of
from ..core.trace import Tracer, full_error, numpy_frame
from ..errors import TracerConversionError
from .manipulation import index_tuple
from .views import assign


def setitem(x: Tracer, index: Any, value: Any) -> None:
    """`x[index] = value` on a tracer: recorded, and seen by every view of `x`'s data."""
    assign(x, index_tuple(index), value)


def copyto(dst: Any, src: Any, casting: str = "same_kind", where: Any = True) -> None:
    """`numpy.copyto(dst, src)`: `src` broadcast into the traced array `dst` (where=True only);
    with neither traced, NumPy's (CuPy's) own copyto."""
    if not isinstance(dst, Tracer) and not isinstance(src, Tracer):
        return namespace_of((dst,)).copyto(dst, src, casting=casting, where=where)
    if not isinstance(dst, Tracer):
        frame = numpy_frame()
        if frame is not None and frame.f_code.co_name in ("full", "full_like"):
            raise full_error(frame.f_code.co_name)
        raise TracerConversionError(
            "numpy.copyto(dst, src) with `dst` a plain NumPy array and `src` traced would drop "
            "src's gradient; make dst a traced array (e.g. dst = dnp.zeros_like(src)) or use "
            "the value src directly"
        )
    if where is not True:
        raise NotImplementedError("copyto: the where= option is not supported on traced arrays")
    if casting not in ("same_kind", "unsafe"):
        raise NotImplementedError(f"copyto: casting={casting!r} is not supported on traced arrays")
    dtype = getattr(src, "dtype", None)
    if dtype is None and not isinstance(src, (list, tuple)):  # a Python number
        dtype = np.result_type(src)
    if casting == "same_kind" and dtype is not None and not np.can_cast(dtype, dst.dtype, casting):
        raise TypeError(f"Cannot cast array data from {np.dtype(dtype)!r} to "
                        f"{np.dtype(dst.dtype)!r} according to the rule 'same_kind' (NumPy's "
                        "refusal; casting='unsafe' keeps the real part)")  # fmt: skip
    assign(dst, (Ellipsis,), src)

