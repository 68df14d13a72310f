"""diffprog.nn (`dp.nn`): neural-network building blocks as pure functions over nested dicts.

>>> import numpy as np, diffprog as dp
>>> from diffprog import nn
>>> rng = np.random.default_rng(0)
>>> params = nn.mlp_init(rng, [2, 16, 2])
>>> x, y = rng.normal(size=(8, 2)).astype(np.float32), np.array([0, 1] * 4)
>>> loss = lambda p: nn.softmax_cross_entropy(nn.mlp(p, x), y)
>>> grads = dp.grad(loss)(params)
>>> params = dp.tree.map(lambda p, g: p - 0.1 * g, params, grads)
>>> [layer["W"].dtype for layer in params["layers"]]
[dtype('float32'), dtype('float32')]

Owns: `initializers` (glorot/he/normal/zeros/ones drawing from an explicit
numpy.random.Generator, and the builders dense_init, mlp_init, conv2d_init, layer_norm_init,
embedding_init), `layers` (dense, mlp, flatten, layer_norm, embedding, dropout, activations),
`conv` (conv2d via im2col, max_pool2d, avg_pool2d) and `losses` (softmax_cross_entropy,
sigmoid_binary_cross_entropy, mse, accuracy). Params are plain nested dicts/lists of arrays,
so every transform, `dp.tree.map` and the optimisers apply to them directly; all layer code is
written with `diffprog.numpy`, so it runs on NumPy, CuPy and tracers.
Layer L6: built only on the public API below it (diffprog.tree, diffprog.numpy,
diffprog.backend, diffprog.errors) and numpy; CuPy only for device='gpu'.
"""

from __future__ import annotations

from .conv import avg_pool2d, conv2d, max_pool2d
from .initializers import (
    conv2d_init,
    dense_init,
    embedding_init,
    fans,
    glorot_normal,
    glorot_uniform,
    he_normal,
    he_uniform,
    layer_norm_init,
    mlp_init,
    normal,
    ones,
    zeros,
)
from .layers import (
    dense,
    dropout,
    embedding,
    flatten,
    gelu,
    layer_norm,
    log_softmax,
    mlp,
    relu,
    sigmoid,
    softmax,
    softplus,
    tanh,
)
from .losses import accuracy, mse, sigmoid_binary_cross_entropy, softmax_cross_entropy

__all__ = [
    "accuracy", "avg_pool2d", "conv2d", "conv2d_init", "dense", "dense_init", "dropout",
    "embedding", "embedding_init", "fans", "flatten", "gelu", "glorot_normal", "glorot_uniform",
    "he_normal", "he_uniform", "layer_norm", "layer_norm_init", "log_softmax", "max_pool2d",
    "mlp", "mlp_init", "mse", "normal", "ones", "relu", "sigmoid",
    "sigmoid_binary_cross_entropy", "softmax", "softmax_cross_entropy", "softplus", "tanh",
    "zeros",
]  # fmt: skip
