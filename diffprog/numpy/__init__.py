"""diffprog.numpy: differentiable functions under NumPy's names and signatures (layer L4).

>>> import numpy as np, diffprog as dp, diffprog.numpy as dnp
>>> dp.grad(lambda x: dnp.sum(dnp.exp(x)))(np.zeros(3))
array([1., 1., 1.])

Every function here accepts NumPy/CuPy arrays, Python numbers and tracers; called on
tracers it is recorded for differentiation, called on plain arrays it just computes.
`diffprog.numpy.linalg` mirrors `numpy.linalg`, `diffprog.numpy.fft` mirrors `numpy.fft`;
NumPy's constants e, inf, nan, newaxis and pi are here too. Each module below declares its public names in `__all__`; this package
re-exports them and installs arithmetic and NumPy's protocols on tracers.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from numpy import e, inf, nan, newaxis, pi  # noqa: F401  (NumPy's constants, re-exported)

from . import (  # noqa: F401  (re-exported: see __all__)
    assignment,
    complex_parts,
    conditional,
    creation,
    dispatch,
    differences,
    elementwise,
    fft,
    index_tricks,
    indexing,
    interpolation,
    joins,
    linalg,
    manipulation,
    methods,
    nan_reductions,
    nn,
    products,
    reductions,
    sorting,
    view_functions,
    views,
)
from .assignment import copyto, setitem  # noqa: F401
from .joins import as_array
from .complex_parts import *  # noqa: F403
from .conditional import *  # noqa: F403
from .creation import *  # noqa: F403
from .differences import *  # noqa: F403
from .elementwise import *  # noqa: F403
from .index_tricks import *  # noqa: F403
from .indexing import *  # noqa: F403
from .interpolation import *  # noqa: F403
from .joins import *  # noqa: F403
from .manipulation import *  # noqa: F403
from .nan_reductions import *  # noqa: F403
from .nn import *  # noqa: F403
from .products import *  # noqa: F403
from .reductions import *  # noqa: F403
from .sorting import *  # noqa: F403
from .view_functions import *  # noqa: F403  (after manipulation and indexing: views)


def shape(a: Any) -> tuple[int, ...]:
    """`numpy.shape` (of a nested list too)."""
    return tuple(as_array(a).shape)


def ndim(a: Any) -> int:
    """`numpy.ndim`."""
    return len(shape(a))


def size(a: Any) -> int:
    """`numpy.size` (of the whole array)."""
    n = 1
    for d in shape(a):
        n *= d
    return n


_MODULES = (complex_parts, conditional, creation, differences, elementwise, index_tricks, indexing,
            interpolation, joins, manipulation, nan_reductions, nn, products, reductions, sorting)
__all__ = sorted(
    {name for m in _MODULES for name in m.__all__ if name != "norm"}
    | {"copyto", "fft", "linalg", "ndim", "setitem", "shape", "size"}
    | {"e", "inf", "nan", "newaxis", "pi"}
)

# A NumPy keyword one of these functions lacks is refused by name (the primitives refuse it
# themselves, in Primitive.raise_named).
for _name in __all__:
    if isinstance(globals()[_name], types.FunctionType):
        globals()[_name] = dispatch.keyword_checked(globals()[_name], f"diffprog.numpy.{_name}")

methods.install(sys.modules[__name__])
