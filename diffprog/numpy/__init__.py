"""diffprog.numpy: differentiable functions under NumPy's names and signatures (layer L4).

>>> import numpy as np, diffprog as dp, diffprog.numpy as dnp
>>> dp.grad(lambda x: dnp.sum(dnp.exp(x)))(np.zeros(3))
array([1., 1., 1.])

Every function here accepts NumPy/CuPy arrays, Python numbers and tracers; called on
tracers it is recorded for differentiation, called on plain arrays it just computes.
Importing this package installs arithmetic and NumPy's protocols on tracers.
"""

from __future__ import annotations

import sys
from typing import Any

from . import methods as _methods
from .assignment import setitem
from .elementwise import (
    abs,
    absolute,
    add,
    clip,
    cos,
    divide,
    equal,
    exp,
    greater,
    greater_equal,
    isfinite,
    isinf,
    isnan,
    less,
    less_equal,
    log,
    maximum,
    minimum,
    multiply,
    negative,
    nonzero,
    not_equal,
    power,
    sign,
    sin,
    sqrt,
    square,
    subtract,
    tanh,
    true_divide,
    where,
)
from .nn import log_softmax, logsumexp, relu, sigmoid, softmax, softplus
from .products import dot, matmul
from .reductions import amax, amin, max, mean, min, sum
from .manipulation import (
    broadcast_to,
    concatenate,
    expand_dims,
    getitem,
    moveaxis,
    reshape,
    squeeze,
    stack,
    swapaxes,
    transpose,
)


def shape(a: Any) -> tuple[int, ...]:
    """`numpy.shape`."""
    return tuple(a.shape) if hasattr(a, "shape") else ()


def ndim(a: Any) -> int:
    """`numpy.ndim`."""
    return len(shape(a))


__all__ = [
    "abs", "absolute", "add", "amax", "amin", "broadcast_to", "clip", "concatenate", "cos",
    "divide", "dot", "equal", "exp", "expand_dims", "greater", "greater_equal", "isfinite",
    "isinf", "isnan", "less", "less_equal", "log", "log_softmax", "logsumexp", "matmul", "max",
    "maximum", "mean", "min", "minimum", "moveaxis", "multiply", "ndim", "negative", "nonzero",
    "not_equal", "power", "relu", "reshape", "shape", "sigmoid", "sign", "sin", "softmax",
    "softplus", "sqrt", "square", "squeeze", "stack", "subtract", "sum", "swapaxes", "tanh",
    "transpose", "true_divide", "where", "getitem",
]  # fmt: skip

_methods.install(sys.modules[__name__])
