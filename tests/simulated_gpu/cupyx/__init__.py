"""The part of cupyx that diffprog and its tests use, for the simulated CuPy beside it:
`scatter_add` (a kernel on the current device), `allow_synchronize` and
`DeviceSynchronized` (see cupy/__init__.py)."""

from __future__ import annotations

from typing import Any

import numpy as np

import cupy
from cupy import DeviceSynchronized  # noqa: F401  (cupyx's name for it)
from cupy import _allow_synchronize as allow_synchronize  # noqa: F401
from cupy import _kernel


def scatter_add(a: Any, slices: Any, value: Any) -> None:
    """a[slices] += value, adding every repeated index (np.add.at)."""
    if type(a) is not cupy.ndarray:
        raise TypeError(f"scatter_add takes a cupy.ndarray, got {type(a)}")
    _kernel(np.add.at, (a, slices, value), {}, host_ok=True)
