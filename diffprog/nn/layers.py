"""Pure layer functions of diffprog.nn over the params its builders make: dense, mlp,
layer_norm, embedding, dropout, flatten, and the activations (relu, tanh, sigmoid, softplus,
gelu, softmax, log_softmax).

Owns: these functions. Each takes params and data and returns an array; nothing is stored.
They are written with `diffprog.numpy` only, so they run on NumPy arrays, CuPy arrays and
tracers alike, and check shapes up front with errors naming the parameter's path.
Layer L6: imports numpy, diffprog.backend, diffprog.numpy, diffprog.errors, diffprog.nn._util,
and core.trace's Tracer and ad.batching's per_example (dropout).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

import diffprog.numpy as dnp

from ..backend import asarray_like, device_scope
from ..ad.batching import per_example
from ..core.trace import Tracer
from ..errors import StructureError
from ._util import check_rng, int_labels, leaf, out_of_range, path, probability, shape_of, xp_of

relu = dnp.relu
tanh = dnp.tanh
sigmoid = dnp.sigmoid
softplus = dnp.softplus
softmax = dnp.softmax
log_softmax = dnp.log_softmax

_GELU_C = math.sqrt(2.0 / math.pi)


def gelu(x: Any) -> Any:
    """GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).

    >>> from diffprog import nn
    >>> nn.gelu(np.array([-1.0, 0.0, 1.0])).round(4)
    array([-0.1588,  0.    ,  0.8412])
    """
    return 0.5 * x * (1.0 + dnp.tanh(_GELU_C * (x + 0.044715 * (x * x * x))))


def _dense(params: Any, x: Any, root: str) -> Any:
    W = leaf(params, "W", root, "dense")
    b = leaf(params, "b", root, "dense")
    xs, ws, bs = shape_of(x), shape_of(W), shape_of(b)
    if len(ws) != 2 or len(xs) < 1 or xs[-1] != ws[0] or bs != (ws[1],):
        raise StructureError(
            f"dense: x of shape {xs} does not fit {path(root, 'W')} of shape {ws} and "
            f"{path(root, 'b')} of shape {bs}; W must be (in_features, out_features) with "
            f"in_features = x.shape[-1], and b (out_features,)"
        )
    return dnp.matmul(x, W) + b


def dense(params: dict, x: Any) -> Any:
    """x @ W + b, for x of shape (..., in_features).

    >>> from diffprog import nn
    >>> p = {"W": np.array([[1.0], [2.0]]), "b": np.array([0.5])}
    >>> nn.dense(p, np.array([[1.0, 1.0]]))
    array([[3.5]])
    """
    return _dense(params, x, "params")


def mlp(
    params: dict,
    x: Any,
    activation: Callable[[Any], Any] = dnp.tanh,
    final_activation: Callable[[Any], Any] | None = None,
) -> Any:
    """Dense layers params["layers"] in turn, `activation` between them and
    `final_activation` (if any) after the last.

    >>> from diffprog import nn
    >>> p = nn.mlp_init(np.random.default_rng(0), [2, 4, 3])
    >>> nn.mlp(p, np.ones((5, 2), np.float32), activation=nn.relu).shape
    (5, 3)
    """
    layers = leaf(params, "layers", "params", "mlp")
    if not isinstance(layers, (list, tuple)) or not layers:
        raise StructureError(
            f"mlp: params['layers'] must be a non-empty list of dense params, "
            f"got {type(layers).__name__}"
        )
    h = x
    for i, layer in enumerate(layers):
        h = _dense(layer, h, path("params", "layers", i))
        if i < len(layers) - 1:
            h = activation(h)
    return h if final_activation is None else final_activation(h)


def flatten(x: Any) -> Any:
    """Keep the leading (batch) axis and flatten the rest: (N, ...) -> (N, prod(...)).

    >>> from diffprog import nn
    >>> nn.flatten(np.zeros((2, 3, 4, 5))).shape
    (2, 60)
    """
    shape = shape_of(x)
    if len(shape) < 1:
        raise ValueError("flatten: x needs a leading batch axis, got a scalar")
    return dnp.reshape(x, (shape[0], math.prod(shape[1:])))


def layer_norm(params: dict, x: Any, eps: float = 1e-5) -> Any:
    """Normalise the last axis to mean 0 and variance 1 (biased variance, plus `eps`), then
    scale and shift: (x - mean) / sqrt(var + eps) * scale + bias.

    >>> from diffprog import nn
    >>> y = nn.layer_norm(nn.layer_norm_init(4), np.array([[1.0, 2.0, 3.0, 4.0]], np.float32))
    >>> y.round(3)
    array([[-1.342, -0.447,  0.447,  1.342]], dtype=float32)
    """
    scale = leaf(params, "scale", "params", "layer_norm")
    bias = leaf(params, "bias", "params", "layer_norm")
    xs = shape_of(x)
    for name, v in (("scale", scale), ("bias", bias)):
        if not xs or shape_of(v) != (xs[-1],):
            raise StructureError(
                f"layer_norm: params['{name}'] has shape {shape_of(v)} but x "
                f"has shape {xs}; it must be (x.shape[-1],)"
            )
    mean = dnp.mean(x, axis=-1, keepdims=True)
    centred = x - mean
    var = dnp.mean(centred * centred, axis=-1, keepdims=True)
    return centred / dnp.sqrt(var + eps) * scale + bias


def embedding(params: dict, ids: Any) -> Any:
    """Rows of params["table"] picked by integer `ids`: shape ids.shape + (dim,).

    >>> from diffprog import nn
    >>> nn.embedding({"table": np.array([[0.0, 1.0], [2.0, 3.0]])}, np.array([1, 1, 0]))
    array([[2., 3.],
           [2., 3.],
           [0., 1.]])
    """
    table = leaf(params, "table", "params", "embedding")
    ts = shape_of(table)
    if len(ts) != 2:
        raise StructureError(
            f"embedding: params['table'] must be (vocab_size, dim), got shape {ts}"
        )
    ids = int_labels(ids, "ids", "embedding")
    bad = out_of_range(ids, ts[0])
    if bad:
        raise IndexError(
            f"embedding: ids must lie in [0, {ts[0]}) for a table of {ts[0]} rows; got {bad}"
        )
    out = dnp.take(table, ids, axis=0)
    xp = xp_of(table)
    if xp is not np:  # CuPy ids are not read on the host (a sync): out of range gives NaN rows
        with device_scope((table,)):
            ids = xp.asarray(ids)
            out = dnp.where(((ids >= 0) & (ids < ts[0]))[..., None], out, xp.nan)
    return out


def dropout(x: Any, rate: float, rng: np.random.Generator | None, train: bool) -> Any:
    """Inverted dropout: while training, zero each element with probability `rate` (drawn
    from the explicit `rng`) and scale the survivors by 1 / (1 - rate), so the expectation
    is unchanged; the identity when not training (then rng may be None). Under dp.vmap each
    example gets its own mask: the numbers a loop over the examples would draw, in order.
    A traced `rate` (a dp.jit argument, one per example under dp.vmap) is differentiable:
    the mask is drawn as for a number, and only the survivors' scale depends on it.

    >>> from diffprog import nn
    >>> x = np.ones(6)
    >>> nn.dropout(x, 0.5, np.random.default_rng(0), train=True)
    array([2., 0., 0., 0., 2., 2.])
    >>> nn.dropout(x, 0.5, None, train=False) is x
    True
    """
    rate = probability(rate, "rate", "dropout")
    traced_bool = isinstance(train, Tracer) and train.shape == () and train.dtype == np.bool_
    if not (isinstance(train, (bool, np.bool_)) or traced_bool):
        raise TypeError(
            f"dropout: `train` must be a bool, got {type(train).__name__}; "
            "pass train=True while training and train=False to evaluate"
        )
    traced_rate = isinstance(rate, Tracer)
    if not train or (not traced_rate and rate == 0.0):
        return x
    check_rng(rng, "dropout")
    if not traced_rate and rate == 1.0:
        return x * 0.0
    keep = per_example(lambda shape: asarray_like(rng.random(shape), x), shape_of(x)) >= rate
    dtype = getattr(x, "dtype", np.dtype(np.float64))
    if traced_rate:  # (1 - rate) kept away from 0: at rate 1 nothing is kept, scale 1
        scale = 1.0 / dnp.where(rate < 1.0, 1.0 - rate, 1.0)
    else:
        scale = 1.0 / (1.0 - rate)
    return x * (keep * scale).astype(dtype)
