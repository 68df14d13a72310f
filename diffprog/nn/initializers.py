"""Parameter initializers and model builders of diffprog.nn: nested dicts of fresh arrays.

Owns: the initializers `glorot_uniform`, `glorot_normal`, `he_uniform`, `he_normal`,
`normal(stddev)`, `zeros`, `ones`, each an `init(rng, shape, dtype=np.float32, device="cpu")`
drawing from an explicit `numpy.random.Generator` (never a global seed); and the builders
`dense_init`, `mlp_init`, `conv2d_init`, `layer_norm_init`, `embedding_init` returning the
params the layer functions in `diffprog.nn` read. Random values are drawn on the host in
float64 (so a seed gives the same numbers in every dtype) and then cast and placed on the
device ('cpu': NumPy, 'gpu': CuPy).

Fans: a 2-D shape is (fan_in, fan_out), as a dense layer's W (x @ W); a shape of 3 or more
axes is (out, in, *kernel) as a conv2d W, so fan_in = in * prod(kernel) and fan_out = out *
prod(kernel); a 1-D shape has fan_in = fan_out = its length.
Layer L6: imports numpy and diffprog.nn._util.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from itertools import pairwise
from typing import Any

import numpy as np

from ._util import check_rng, float_dtype, pair, place

Init = Callable[..., Any]


def _shape(shape: Any, where: str) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if not all(isinstance(d, (int, np.integer)) and d >= 0 for d in dims):
        raise ValueError(f"{where}: `shape` must be a tuple of non-negative ints, got {shape!r}")
    return tuple(int(d) for d in dims)


def fans(shape: Sequence[int]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of this shape (see the module docstring).

    >>> from diffprog.nn import fans
    >>> fans((3, 5)), fans((8, 4, 3, 3))
    ((3, 5), (36, 72))
    """
    shape = tuple(shape)
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _random(name: str, draw: Callable[[np.random.Generator, tuple, tuple], np.ndarray]) -> Init:
    def init(
        rng: np.random.Generator, shape: Any, dtype: Any = np.float32, device: str = "cpu"
    ) -> Any:
        check_rng(rng, name)
        dims = _shape(shape, name)
        dt = float_dtype(dtype, name)
        fan_in, fan_out = fans(dims)
        if min(fan_in, fan_out) <= 0 and name != "normal":
            raise ValueError(f"{name}: shape {dims} has a zero fan; give every axis a size >= 1")
        return place(draw(rng, dims, (fan_in, fan_out)).astype(dt), device, name)

    init.__name__ = init.__qualname__ = name
    return init


def _uniform(rng: np.random.Generator, dims: tuple, limit: float) -> np.ndarray:
    return rng.uniform(-limit, limit, size=dims)


glorot_uniform = _random(
    "glorot_uniform", lambda rng, dims, f: _uniform(rng, dims, math.sqrt(6.0 / (f[0] + f[1])))
)
glorot_uniform.__doc__ = """Uniform on [-l, l] with l = sqrt(6 / (fan_in + fan_out)) (Xavier).

    >>> from diffprog import nn
    >>> W = nn.glorot_uniform(np.random.default_rng(0), (3, 5))
    >>> W.shape, W.dtype, bool(abs(W).max() <= np.sqrt(6 / 8))
    ((3, 5), dtype('float32'), True)
    """
glorot_normal = _random(
    "glorot_normal", lambda rng, dims, f: rng.normal(0.0, math.sqrt(2.0 / (f[0] + f[1])), dims)
)
glorot_normal.__doc__ = """Normal with mean 0 and variance 2 / (fan_in + fan_out) (not truncated).

    >>> from diffprog import nn
    >>> nn.glorot_normal(np.random.default_rng(0), (4, 4), np.float64).dtype
    dtype('float64')
    """
he_uniform = _random("he_uniform", lambda rng, dims, f: _uniform(rng, dims, math.sqrt(6.0 / f[0])))
he_uniform.__doc__ = """Uniform on [-l, l] with l = sqrt(6 / fan_in) (Kaiming, for ReLU nets).

    >>> from diffprog import nn
    >>> nn.he_uniform(np.random.default_rng(0), (8, 4, 3, 3)).shape
    (8, 4, 3, 3)
    """
he_normal = _random("he_normal", lambda rng, dims, f: rng.normal(0.0, math.sqrt(2.0 / f[0]), dims))
he_normal.__doc__ = """Normal with mean 0 and variance 2 / fan_in (Kaiming, not truncated).

    >>> from diffprog import nn
    >>> nn.he_normal(np.random.default_rng(0), 6).shape
    (6,)
    """


def normal(stddev: float = 1e-2) -> Init:
    """An initializer drawing from N(0, stddev**2), whatever the shape.

    >>> from diffprog import nn
    >>> init = nn.normal(0.5)
    >>> float(init(np.random.default_rng(0), (20000,), np.float64).std())  # doctest: +ELLIPSIS
    0.50...
    """
    if not (isinstance(stddev, (int, float, np.floating)) and stddev >= 0):
        raise ValueError(f"normal: `stddev` must be a non-negative number, got {stddev!r}")
    return _random("normal", lambda rng, dims, f: rng.normal(0.0, float(stddev), dims))


def _constant(name: str, value: float) -> Init:
    def init(rng: Any, shape: Any, dtype: Any = np.float32, device: str = "cpu") -> Any:
        if rng is not None:
            check_rng(rng, name)
        return place(np.full(_shape(shape, name), value, dtype=np.dtype(dtype)), device, name)

    init.__name__ = init.__qualname__ = name
    return init


zeros = _constant("zeros", 0.0)
zeros.__doc__ = """All zeros (`rng` is accepted for a uniform signature and unused; None works).

    >>> from diffprog import nn
    >>> nn.zeros(None, (2,))
    array([0., 0.], dtype=float32)
    """
ones = _constant("ones", 1.0)
ones.__doc__ = """All ones (`rng` is accepted for a uniform signature and unused; None works).

    >>> from diffprog import nn
    >>> nn.ones(None, 2, np.float64)
    array([1., 1.])
    """


# --- model builders ----------------------------------------------------------------------------
def _positive(where: str, **sizes: Any) -> None:
    for name, n in sizes.items():
        if not isinstance(n, (int, np.integer)) or n <= 0:
            raise ValueError(f"{where}: `{name}` must be a positive int, got {n!r}")


def dense_init(
    rng: np.random.Generator,
    in_features: int,
    out_features: int,
    *,
    w_init: Init = glorot_uniform,
    b_init: Init = zeros,
    dtype: Any = np.float32,
    device: str = "cpu",
) -> dict:
    """Params of `dense`: {"W": (in_features, out_features), "b": (out_features,)}.

    >>> from diffprog import nn
    >>> p = nn.dense_init(np.random.default_rng(0), 3, 2)
    >>> p["W"].shape, p["b"].shape, p["W"].dtype
    ((3, 2), (2,), dtype('float32'))
    """
    check_rng(rng, "dense_init")
    _positive("dense_init", in_features=in_features, out_features=out_features)
    return {
        "W": w_init(rng, (in_features, out_features), dtype=dtype, device=device),
        "b": b_init(rng, (out_features,), dtype=dtype, device=device),
    }


def mlp_init(
    rng: np.random.Generator,
    sizes: Sequence[int],
    *,
    w_init: Init = glorot_uniform,
    b_init: Init = zeros,
    dtype: Any = np.float32,
    device: str = "cpu",
) -> dict:
    """Params of `mlp`: {"layers": [dense params, ...]}, one layer per consecutive pair of
    `sizes` (input size first, output size last).

    >>> from diffprog import nn
    >>> p = nn.mlp_init(np.random.default_rng(0), [2, 8, 3])
    >>> [layer["W"].shape for layer in p["layers"]]
    [(2, 8), (8, 3)]
    """
    sizes = list(sizes)
    if len(sizes) < 2:
        raise ValueError(
            f"mlp_init: `sizes` needs at least an input and an output size, got {sizes!r}"
        )
    kw = {"w_init": w_init, "b_init": b_init, "dtype": dtype, "device": device}
    return {"layers": [dense_init(rng, a, b, **kw) for a, b in pairwise(sizes)]}


def conv2d_init(
    rng: np.random.Generator,
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, int],
    *,
    w_init: Init = glorot_uniform,
    b_init: Init = zeros,
    dtype: Any = np.float32,
    device: str = "cpu",
) -> dict:
    """Params of `conv2d`: {"W": (out_channels, in_channels, kh, kw), "b": (out_channels,)}.

    >>> from diffprog import nn
    >>> p = nn.conv2d_init(np.random.default_rng(0), 3, 8, 5)
    >>> p["W"].shape, p["b"].shape
    ((8, 3, 5, 5), (8,))
    """
    check_rng(rng, "conv2d_init")
    _positive("conv2d_init", in_channels=in_channels, out_channels=out_channels)
    kh, kw = pair(kernel_size, "kernel_size", "conv2d_init")
    return {
        "W": w_init(rng, (out_channels, in_channels, kh, kw), dtype=dtype, device=device),
        "b": b_init(rng, (out_channels,), dtype=dtype, device=device),
    }


def layer_norm_init(features: int, *, dtype: Any = np.float32, device: str = "cpu") -> dict:
    """Params of `layer_norm`: {"scale": ones(features), "bias": zeros(features)}.

    >>> from diffprog import nn
    >>> nn.layer_norm_init(3)
    {'scale': array([1., 1., 1.], dtype=float32), 'bias': array([0., 0., 0.], dtype=float32)}
    """
    _positive("layer_norm_init", features=features)
    float_dtype(dtype, "layer_norm_init")
    return {
        "scale": ones(None, (features,), dtype=dtype, device=device),
        "bias": zeros(None, (features,), dtype=dtype, device=device),
    }


def embedding_init(
    rng: np.random.Generator,
    vocab_size: int,
    dim: int,
    *,
    init: Init | None = None,
    dtype: Any = np.float32,
    device: str = "cpu",
) -> dict:
    """Params of `embedding`: {"table": (vocab_size, dim)}, drawn from N(0, 1) unless `init`
    says otherwise.

    >>> from diffprog import nn
    >>> nn.embedding_init(np.random.default_rng(0), 10, 4)["table"].shape
    (10, 4)
    """
    check_rng(rng, "embedding_init")
    _positive("embedding_init", vocab_size=vocab_size, dim=dim)
    init = normal(1.0) if init is None else init
    return {"table": init(rng, (vocab_size, dim), dtype=dtype, device=device)}
