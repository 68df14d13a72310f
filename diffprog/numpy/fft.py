"""diffprog.numpy.fft: NumPy's discrete Fourier transforms with derivative rules.

Owns three primitives and the functions built on them: `c2c` (fftn / ifftn over axes),
`rfft` (real input, half spectrum along one axis) and `irfft` (half spectrum to a real
signal of n points along one axis). fft, ifft, fft2, ifft2, fftn, ifftn, rfft, irfft,
rfft2, irfft2, rfftn, irfftn, hfft and ihfft compose them with crops and zero pads (`n=` /
`s=`; an axis named twice in `axes` is transformed twice, as in NumPy); fftshift and
ifftshift are rolls; fftfreq and rfftfreq are constants
(differentiable in a traced `d`).

Each transform is R-linear, so its JVP is itself applied to the tangent, and its VJP is its
transpose under <a, b> = Re sum(a * b) (JAX's convention, see complex_parts.py): the DFT
matrix is symmetric, so c2c's VJP is the same transform with the same norm; rfft's is the
forward transform of the cotangent zero-padded to n points (the sweep keeps its real part
for the real input); irfft's weights the inverse transform of the cotangent by 1 at the
zero (and, for even n, the Nyquist) bin and 2 elsewhere, the bins irfft counts twice.
Layer L4: imports L0-L2 and other L4 modules.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from ..core.primitive import Primitive
from ..core.trace import Tracer
from ._define import index_axis
from .batching import along_axes
from .complex_parts import conjugate
from .indexing import pad
from .joins import concatenate
from .manipulation import as_array, getitem, roll

_NORMS = ("backward", "ortho", "forward")
_SWAPPED = {"backward": "forward", "ortho": "ortho", "forward": "backward"}


def _c2c_impl(xp: Any, x: Any, *, axes: tuple[int, ...], norm: str, inverse: bool) -> Any:
    return (xp.fft.ifftn if inverse else xp.fft.fftn)(x, axes=axes, norm=norm)


c2c = Primitive("fftn", _c2c_impl)
c2c.defvjp(lambda g, ans, x, **p: c2c(g, **p))  # the DFT matrix is symmetric
c2c.defjvp(lambda t, ans, x, **p: c2c(t, **p))

_rfft = Primitive("rfft", lambda xp, x, *, axis, norm: xp.fft.rfft(x, axis=axis, norm=norm))
_rfft.defvjp(lambda g, ans, x, *, axis, norm: c2c(
    _fit(g, x.shape[axis], axis), axes=(axis,), norm=norm, inverse=False))
_rfft.defjvp(lambda t, ans, x, *, axis, norm: _rfft(t, axis=axis, norm=norm))


def _irfft_vjp(g: Any, ans: Any, y: Any, *, axis: int, n: int, norm: str) -> Any:
    """Bin k of the inverse transform of g, weighted by how often irfft counts bin k."""
    m = y.shape[axis]
    c = _fit(c2c(g, axes=(axis,), norm=norm, inverse=True), m, axis)
    last = m - 1 if n % 2 == 0 and m > 1 else m  # an even n's Nyquist bin counts once
    parts = [_take(c, 0, 1, axis), 2.0 * _take(c, 1, last, axis), _take(c, last, m, axis)]
    return concatenate([p for p in parts if p.shape[axis]], axis=axis)


_irfft = Primitive("irfft", lambda xp, y, *, axis, n, norm: xp.fft.irfft(y, n=n, axis=axis,
                                                                         norm=norm))  # fmt: skip
_irfft.defvjp(_irfft_vjp)
_irfft.defjvp(lambda t, ans, y, *, axis, n, norm: _irfft(t, axis=axis, n=n, norm=norm))
along_axes(c2c, names=("axes",))
along_axes(_rfft, _irfft)


# --- the functions, under NumPy's names --------------------------------------------------------
def fft(a: Any, n: int | None = None, axis: int = -1,
        norm: str | None = None, out: Any = None) -> Any:
    """`numpy.fft.fft`: the discrete Fourier transform along `axis` (cropped or zero-padded
    to `n` points).

    >>> import numpy as np, diffprog as dp, diffprog.numpy as dnp
    >>> dnp.fft.fft(np.array([1.0, 0.0, 0.0, 0.0]))
    array([1.+0.j, 1.+0.j, 1.+0.j, 1.+0.j])
    """
    return _fftn_of(a, _sizes(n), (axis,), norm, out, False, "fft")


def ifft(a: Any, n: int | None = None, axis: int = -1,
         norm: str | None = None, out: Any = None) -> Any:
    """`numpy.fft.ifft`: the inverse of fft along `axis`."""
    return _fftn_of(a, _sizes(n), (axis,), norm, out, True, "ifft")


def fft2(a: Any, s: Any = None, axes: Any = (-2, -1),
         norm: str | None = None, out: Any = None) -> Any:
    """`numpy.fft.fft2`: fftn over the last two axes."""
    return _fftn_of(a, s, axes, norm, out, False, "fft2")


def ifft2(a: Any, s: Any = None, axes: Any = (-2, -1),
          norm: str | None = None, out: Any = None) -> Any:
    """`numpy.fft.ifft2`: ifftn over the last two axes."""
    return _fftn_of(a, s, axes, norm, out, True, "ifft2")


def fftn(a: Any, s: Any = None, axes: Any = None,
         norm: str | None = None, out: Any = None) -> Any:
    """`numpy.fft.fftn`: the transform over `axes` (all, or the last len(s)), each cropped or
    zero-padded to the size in `s`."""
    return _fftn_of(a, s, axes, norm, out, False, "fftn")


def ifftn(a: Any, s: Any = None, axes: Any = None,
          norm: str | None = None, out: Any = None) -> Any:
    """`numpy.fft.ifftn`: the inverse of fftn."""
    return _fftn_of(a, s, axes, norm, out, True, "ifftn")


def rfft(a: Any, n: int | None = None, axis: int = -1,
         norm: str | None = None, out: Any = None) -> Any:
    """`numpy.fft.rfft`: the transform of a real signal, its n // 2 + 1 non-negative
    frequencies."""
    return rfftn(a, _sizes(n), (axis,), norm, out)


def irfft(a: Any, n: int | None = None, axis: int = -1,
          norm: str | None = None, out: Any = None) -> Any:
    """`numpy.fft.irfft`: the real signal of `n` points (default 2 (m - 1)) whose rfft is the
    half spectrum `a` (the imaginary parts of its zero and Nyquist bins are ignored)."""
    return irfftn(a, _sizes(n), (axis,), norm, out)


def rfftn(a: Any, s: Any = None, axes: Any = None,
          norm: str | None = None, out: Any = None) -> Any:
    """`numpy.fft.rfftn`: rfft over the last of `axes`, then fft over the others."""
    _no_out("rfftn", out)
    a = as_array(a)
    axes, sizes = _axes_and_sizes(a, s, axes, "rfftn")
    norm = _norm(norm)
    y = _rfft(_fit(a, sizes[-1], axes[-1]), axis=axes[-1], norm=norm)
    return _c2c_along(y, axes[:-1], sizes[:-1], norm, inverse=False, last_first=True)


def irfftn(a: Any, s: Any = None, axes: Any = None,
           norm: str | None = None, out: Any = None) -> Any:
    """`numpy.fft.irfftn`: ifft over all but the last of `axes`, then irfft over the last
    (to s[-1] points, default 2 (m - 1))."""
    _no_out("irfftn", out)
    a = as_array(a)
    axes, sizes = _axes_and_sizes(a, s, axes, "irfftn")
    if s is None:
        sizes = sizes[:-1] + (2 * (a.shape[axes[-1]] - 1),)
    if sizes[-1] < 1:
        raise ValueError(f"irfftn: invalid number of data points ({sizes[-1]}) specified")
    norm = _norm(norm)
    a = _c2c_along(a, axes[:-1], sizes[:-1], norm, inverse=True, last_first=False)
    a = _fit(a, sizes[-1] // 2 + 1, axes[-1])
    return _irfft(a, axis=axes[-1], n=sizes[-1], norm=norm)


def rfft2(a: Any, s: Any = None, axes: Any = (-2, -1),
          norm: str | None = None, out: Any = None) -> Any:
    """`numpy.fft.rfft2`: rfftn over the last two axes."""
    return rfftn(a, s, axes, norm, out)


def irfft2(a: Any, s: Any = None, axes: Any = (-2, -1),
           norm: str | None = None, out: Any = None) -> Any:
    """`numpy.fft.irfft2`: irfftn over the last two axes."""
    return irfftn(a, s, axes, norm, out)


def hfft(a: Any, n: int | None = None, axis: int = -1,
         norm: str | None = None, out: Any = None) -> Any:
    """`numpy.fft.hfft`: the real spectrum of a signal with Hermitian symmetry given by its
    first half `a`: irfft(conj(a)) with the norm's direction swapped."""
    return irfft(conjugate(as_array(a)), n, axis, _SWAPPED[_norm(norm)], out)


def ihfft(a: Any, n: int | None = None, axis: int = -1,
          norm: str | None = None, out: Any = None) -> Any:
    """`numpy.fft.ihfft`: the inverse of hfft, conj(rfft(a)) with the norm's direction
    swapped."""
    return conjugate(rfft(a, n, axis, _SWAPPED[_norm(norm)], out))


def fftshift(x: Any, axes: Any = None) -> Any:
    """`numpy.fft.fftshift`: the zero frequency moved to the centre (a roll)."""
    return _shift(x, axes, 1)


def ifftshift(x: Any, axes: Any = None) -> Any:
    """`numpy.fft.ifftshift`: the inverse of fftshift."""
    return _shift(x, axes, -1)


def fftfreq(n: int, d: Any = 1.0, device: Any = None) -> Any:
    """`numpy.fft.fftfreq`: the sample frequencies of fft (a constant; a traced spacing `d`
    is differentiated)."""
    return _freq(np.fft.fftfreq, n, d, device)


def rfftfreq(n: int, d: Any = 1.0, device: Any = None) -> Any:
    """`numpy.fft.rfftfreq`: the sample frequencies of rfft."""
    return _freq(np.fft.rfftfreq, n, d, device)


# --- helpers -----------------------------------------------------------------------------------
def _fftn_of(a: Any, s: Any, axes: Any, norm: Any, out: Any, inverse: bool, name: str) -> Any:
    _no_out(name, out)
    a = as_array(a)
    axes, sizes = _axes_and_sizes(a, s, axes, name)
    return _c2c_along(a, axes, sizes, _norm(norm), inverse, last_first=True)


def _c2c_along(a: Any, axes: tuple[int, ...], sizes: tuple[int, ...], norm: str, inverse: bool,
               last_first: bool) -> Any:  # fmt: skip
    """The transforms along `axes`, each after cropping or padding its axis to its size: one
    c2c over all of them when they are distinct; else one per axis, in NumPy's order (the
    last axis first for fftn and rfftn, the first first for irfftn), since an axis named
    twice is transformed twice, each time at its own size."""
    if len(set(axes)) == len(axes):
        for ax, size in zip(axes, sizes):
            a = _fit(a, size, ax)
        return c2c(a, axes=axes, norm=norm, inverse=inverse) if axes else a
    order = tuple(zip(axes, sizes))
    for ax, size in reversed(order) if last_first else order:
        a = c2c(_fit(a, size, ax), axes=(ax,), norm=norm, inverse=inverse)
    return a


def _axes_and_sizes(a: Any, s: Any, axes: Any, name: str
                    ) -> tuple[tuple[int, ...], tuple[int, ...]]:  # fmt: skip
    """NumPy's defaults: axes all (or the last len(s)); sizes the axes' lengths (also where
    s says -1). An axis may be named more than once, as in NumPy."""
    ndim = len(a.shape)
    if axes is None:
        axes = tuple(range(ndim)) if s is None else tuple(range(ndim - len(s), ndim))
    axes = _axis_list(axes, ndim) if ndim else ()
    if not axes:
        raise ValueError(f"{name}: no axes to transform (an array of shape {tuple(a.shape)})")
    if s is None:
        return axes, tuple(a.shape[ax] for ax in axes)
    sizes = tuple(operator.index(n) for n in s)
    if len(sizes) != len(axes):
        raise ValueError(f"{name}: s={tuple(s)} and axes={axes} have different lengths")
    sizes = tuple(a.shape[ax] if n == -1 else n for ax, n in zip(axes, sizes))
    if any(n < 1 for n in sizes):
        raise ValueError(f"{name}: invalid number of data points in s={sizes}; each must be "
                         ">= 1")
    return axes, sizes


def _fit(a: Any, n: int, axis: int) -> Any:
    """`a` cropped or zero-padded to `n` entries along `axis` (as NumPy's `n=`)."""
    size = a.shape[axis]
    if n == size:
        return a
    if n < size:
        return _take(a, 0, n, axis)
    widths = [(0, 0)] * len(a.shape)
    widths[axis] = (0, n - size)
    return pad(a, widths)


def _sizes(n: Any) -> tuple[int] | None:
    """The `s` of a 1-D transform's `n` (which, unlike s, has no -1 for the whole axis)."""
    if n is None:
        return None
    if operator.index(n) < 1:
        raise ValueError(f"Invalid number of FFT data points ({n}) specified.")
    return (operator.index(n),)


def _axis_list(axes: Any, ndim: int) -> tuple[int, ...]:
    """`axes` (an int or a sequence) as non-negative ints in the order given, repeats kept."""
    axes = (axes,) if isinstance(axes, (int, np.integer)) else tuple(axes)
    return tuple(index_axis(ax, ndim) for ax in axes)


def _take(a: Any, start: int, stop: int, axis: int) -> Any:
    return getitem(a, (slice(None),) * axis + (slice(start, stop),))


def _norm(norm: Any) -> str:
    if norm is None:
        return "backward"
    if norm not in _NORMS:
        raise ValueError(f"Invalid norm value {norm!r}; should be one of {_NORMS} or None")
    return norm


def _no_out(name: str, out: Any) -> None:
    if out is not None:
        raise TypeError(f"numpy.fft.{name}: the `out=` option is not supported (diffprog never "
                        "writes in place)")  # fmt: skip


def _shift(x: Any, axes: Any, sign: int) -> Any:
    x = as_array(x)
    ndim = len(x.shape)
    shifts: dict[int, int] = {}  # an axis named twice is rolled twice, as in NumPy
    for ax in tuple(range(ndim)) if axes is None else _axis_list(axes, ndim):
        shifts[ax] = shifts.get(ax, 0) + sign * (x.shape[ax] // 2)
    return roll(x, tuple(shifts.values()), tuple(shifts))


def _freq(numpy_freq: Any, n: int, d: Any, device: Any) -> Any:
    if device not in (None, "cpu"):
        raise ValueError(f"fftfreq: device={device!r}: the frequencies are a NumPy array; move "
                         "them with dp.to_device")  # fmt: skip
    if isinstance(d, Tracer):
        return numpy_freq(operator.index(n)) / d
    return numpy_freq(operator.index(n), d)


__all__ = ["fft", "fft2", "fftfreq", "fftn", "fftshift", "hfft", "ifft", "ifft2", "ifftn",
           "ifftshift", "ihfft", "irfft", "irfft2", "irfftn", "rfft", "rfft2", "rfftfreq",
           "rfftn"]  # fmt: skip
