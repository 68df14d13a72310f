"""Complex numbers' parts under NumPy's names: real, imag, conj/conjugate, angle,
real_if_close, and the tests iscomplex, isreal, iscomplexobj, isrealobj.

Owns the rules of the functions that are not holomorphic, in JAX's convention: a VJP is the
transpose of the R-linear JVP under the pairing <a, b> = Re sum(a * b) (no conjugation),
so real's VJP is g, imag's -1j * g, conj's conj(g). (The holomorphic functions' rules are
the real ones, g * f'(z), unchanged; abs, in elementwise.py, uses `conj` from here.)
Rules use Python's operators on their arguments, so this module needs no other L4 module.
Layer L4: imports L0-L3.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ad.batching import everywhere
from ..core.primitive import Primitive
from ..core.trace import raw, unwrapped
from ._define import nondifferentiable
from .joins import as_ndarray

real = Primitive("real", lambda xp, x: xp.real(x))
real.defvjp(lambda g, ans, x: g)  # (the sweep keeps the real part for a real x)
real.defjvp(lambda t, ans, x: real(t))

imag = Primitive("imag", lambda xp, x: xp.imag(x))
imag.defvjp(lambda g, ans, x: g * -1j)  # Re(g Im t) = Re(-1j g t)
imag.defjvp(lambda t, ans, x: imag(t))

conjugate = Primitive("conjugate", lambda xp, x: xp.conjugate(x))
conjugate.defvjp(lambda g, ans, x: conjugate(g))
conjugate.defjvp(lambda t, ans, x: conjugate(t))
conj = conjugate

_angle = Primitive("angle", lambda xp, z, *, deg: xp.angle(z, deg=deg))
# d angle(z) = Im(dz / z) = Re(-1j dz / z) (in degrees: times 180 / pi)
_angle.defvjp(lambda g, ans, z, *, deg: g * (-1j * (180 / np.pi if deg else 1.0)) / z)
_angle.defjvp(lambda t, ans, z, *, deg: imag(t / z) * (180 / np.pi if deg else 1.0))


def angle(z: Any, deg: bool = False) -> Any:
    """`numpy.angle`: the argument of z in radians (degrees with deg=True). Its derivative
    Im(dz / z) is undefined at z = 0 (NaN there).

    >>> import numpy as np, diffprog as dp
    >>> float(dp.grad(lambda y: angle(1.0 + 1j * y))(0.0))  # d/dy atan(y) at 0
    1.0
    """
    return _angle(z, deg=bool(deg))


def real_if_close(a: Any, tol: float = 100) -> Any:
    """`numpy.real_if_close`: `real(a)` when every imaginary part is within `tol` machine
    epsilons of zero (decided on the value), else `a` unchanged. Differentiable either way:
    the derivative is that of the branch the value took (real keeps the real part).

    >>> import numpy as np
    >>> real_if_close(np.array([1 + 1e-16j, 2 + 0j]))
    array([1., 2.])
    """
    a = as_ndarray(a)  # (NumPy's asanyarray: an array, 0-d too)
    value = unwrapped(a)
    if value.dtype.kind != "c":
        return a
    if tol > 1:
        tol = float(np.finfo(value.dtype).eps) * tol
    # raw(a): under dp.jit a staged value, so the decision is a guard of the replay (a call
    # whose imaginary parts are not small records the other branch); under dp.vmap every
    # example decides together, as the one result type must be the batch's
    small = abs(imag(raw(a))) < tol
    return real(a) if (small if type(small) is bool else everywhere(small)) else a


iscomplex = nondifferentiable("iscomplex", lambda xp, x: xp.iscomplex(x))
isreal = nondifferentiable("isreal", lambda xp, x: xp.isreal(x))
#: the primitives here, all elementwise (elementwise.py gives them dp.vmap's elementwise rule:
#: batching.py is above this module)
PRIMITIVES = (real, imag, conjugate, _angle, iscomplex, isreal)


def iscomplexobj(x: Any) -> bool:
    """`numpy.iscomplexobj`: whether x has a complex type (its dtype, not its values)."""
    return bool(np.iscomplexobj(_like(x)))


def isrealobj(x: Any) -> bool:
    """`numpy.isrealobj`: whether x has no complex type."""
    return not iscomplexobj(x)


def _like(x: Any) -> Any:
    """Something with x's dtype that NumPy can read without touching traced data."""
    value = unwrapped(raw(x))
    dtype = getattr(value, "dtype", None)
    return np.empty(0, dtype) if dtype is not None else value


__all__ = ["angle", "conj", "conjugate", "imag", "iscomplex", "iscomplexobj", "isreal",
           "isrealobj", "real", "real_if_close"]  # fmt: skip
