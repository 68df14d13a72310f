"""Elementary functions as pure numba scalar functions that vectorize inside fused loops.

Owns: `exp`, `expm1`, `log`, `log1p` and `tanh` of one float64 or float32 scalar (a float32
argument is computed in float64 and its float64 result is rounded by the caller: one more
rounding, within 0.5 ulp of float32 and 2^-20 of it), and `exp32`, float32's exp in float32
arithmetic (twice the SIMD lanes; within 1 ulp), with NumPy's semantics for NaN, +-inf,
+-0, overflow, underflow to subnormals and zero, and log's zero and negative arguments.
libm's scalar calls stop LLVM's loop vectorizer; these are straight-line arithmetic (integer
bit operations for 2^k and exponents, selects instead of branches, llvm.fma), so a loop that
calls them runs on SIMD registers. Error bounds in float64, checked against mpmath by
tests/test_vmath.py: exp, expm1, log, log1p at most 1 ulp; tanh at most 1.5 ulp measured
(1.45 over 1.5 million points; the sum of its rounding errors bounds it below 2 ulp; NumPy's
own: 1.2 ulp). A tanh within 1 ulp (two more error terms carried) took 1.3x the time of this
one: in a fused bias add + tanh 0.91x NumPy's two calls, against 0.72x.

Algorithms (textbook; coefficients fitted by scripts/fit_vmath.py): exp, expm1 and tanh
reduce y = k ln2 + r_hi + r_lo, |r_hi| <= ln2/2 exact (one fma with ln2 rounded) and r_lo
tiny; expm1(r) = r + r^2 q(r) with a near-minimax q of degree 10. exp scales 1 + expm1(r) by
2^k in two exact steps (overflow and subnormal results round once); expm1 sums 2^k (1 + p)
- 1 with the rounding errors carried (Knuth's two-sum); tanh|x| = h / (h + 1),
h = expm1(2|x|) / 2, with h + 1 kept exactly as a pair and the quotient corrected by its
exact residual. log and log1p split u = 2^k (1 + f), sqrt(1/2) <= 1 + f < sqrt(2), and use
log(1 + f) = 2s + s z P(z), s = f / (2 + f), z = s^2 (fdlibm's arrangement, a fitted P of
degree 6); log1p adds the rounding error c of u = 1 + x as c / u to the small terms. exp32
is exp in float32 with a q of degree 4, the rounding error of 1 + r carried.
Layer L3 (beside ad/): imports numpy and numba only; compile.kernels' sources call it.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

#: the functions this module computes (by their NumPy ufunc names)
FUNCTIONS = frozenset({"exp", "expm1", "log", "log1p", "tanh"})

_jit = numba.njit(error_model="numpy", nogil=True)  # numpy's model: no division checks


def _bitcast(out):
    """The code of an intrinsic reading its argument's bits as `out` (a type of its width)."""

    def codegen(context, builder, _signature, args):
        return builder.bitcast(args[0], context.get_value_type(out))

    return codegen


@intrinsic
def _bits(_typingctx, x):
    """The IEEE bits of a float64 (float32) as an int64 (int32)."""
    out = types.int64 if x == types.float64 else types.int32
    return out(x), _bitcast(out)


@intrinsic
def _float(_typingctx, i):
    """The float64 (float32) of IEEE bits given as an int64 (int32)."""
    out = types.float64 if i == types.int64 else types.float32
    return out(i), _bitcast(out)


@intrinsic
def _fma(_typingctx, a, _b, _c):
    """a * b + c rounded once (llvm.fma: one instruction where the CPU has FMA)."""

    def codegen(context, builder, _signature, args):
        return builder.fma(*args)

    return a(a, a, a), codegen


_LN2 = 0.6931471805599453  # ln2 rounded: k * _LN2 subtracted by one fma is exact (|k| <= 1100)
_LN2_TAIL = 2.3190468138462996e-17  # ln2 - _LN2
_INV_LN2 = 1.4426950408889634
_SHIFT = 6755399441055744.0  # 1.5 * 2^52: y + _SHIFT rounds y to an integer, in its low bits
_SHIFT_BITS = 0x4338000000000000
_MANTISSA = 0x000FFFFFFFFFFFFF
_SIGN = -0x8000000000000000
_TINY = 2.0**-60  # below this, expm1(x) and log1p(x) round to x
_SMALLEST_NORMAL = 2.2250738585072014e-308
_LN2_HI = 6.93147180369123816490e-01  # ln2's leading 32 bits, for log: k * _LN2_HI is exact
_LN2_LO = 1.90821492927058770002e-10  # ln2 - _LN2_HI

# expm1(r) = r + r^2 q(r) on |r| <= ln2/2 (scripts/fit_vmath.py; relative error 2^-59.9)
_Q0, _Q1, _Q2, _Q3 = 0.5, 0.16666666666666677, 0.04166666666666651, 0.008333333333321691
_Q4, _Q5, _Q6 = 0.0013888888888962383, 0.00019841269885967624, 2.4801587172516868e-05
_Q7, _Q8, _Q9 = 2.7557244372610456e-06, 2.755740266027507e-07, 2.510897939709204e-08
_Q10 = 2.0875324799789896e-09
# log(1 + f) = 2s + s z P(z) on z <= ((sqrt2 - 1) / (sqrt2 + 1))^2 (relative error 2^-58.9)
_P0, _P1, _P2, _P3 = 0.6666666666666734, 0.3999999999941429, 0.2857142874248112, 0.22222198562927126
_P4, _P5, _P6 = 0.18183564892637785, 0.15314035230023607, 0.14796111032335324


@_jit
def _pow2(k):
    """2.0**k for an int64 -1022 <= k <= 1023."""
    return _float((k + 1023) << 52)


@_jit
def _reduce(y):
    """(k, r_hi, r_lo) with y = k ln2 + r_hi + r_lo, |r_hi| <= ln2/2 exact and |r_lo| <=
    2.6e-14 (for |y| < 746: a multiple of ulp(y) minus k * _LN2 fits in 53 bits)."""
    shifted = _fma(y, _INV_LN2, _SHIFT)
    kf = shifted - _SHIFT
    return _bits(shifted) - _SHIFT_BITS, _fma(-kf, _LN2, y), -kf * _LN2_TAIL


@_jit
def _q(r):
    q = _fma(r, _Q10, _Q9)
    q = _fma(r, q, _Q8)
    q = _fma(r, q, _Q7)
    q = _fma(r, q, _Q6)
    q = _fma(r, q, _Q5)
    q = _fma(r, q, _Q4)
    q = _fma(r, q, _Q3)
    q = _fma(r, q, _Q2)
    q = _fma(r, q, _Q1)
    return _fma(r, q, _Q0)


@_jit
def _expm1_reduced(y):
    """(k, p, p_lo): expm1(y) = 2^k (1 + p + p_lo) - 1, |p_lo| <= ulp(p), for |y| < 746."""
    k, rh, rl = _reduce(y)
    u = rh * rh * _q(rh)
    p = rh + u
    return k, p, ((rh - p) + u) + rl * (1.0 + p)  # e^(rh + rl) = e^rh (1 + rl)


@_jit
def _clamp(x, lo, hi):
    """x limited to [lo, hi] (NaN stays NaN: every step below carries it to the result)."""
    y = hi if x > hi else x  # noqa: FURB136 - selects, with NaN's semantics spelled out
    return lo if y < lo else y  # noqa: FURB136


@_jit
def exp(x):
    x = np.float64(x)
    k, rh, rl = _reduce(_clamp(x, -746.0, 710.0))
    r = rh + rl
    e = 1.0 + _fma(r * r, _q(r), r)
    k1 = k >> 1
    return e * _pow2(k1) * _pow2(k - k1)  # two exact steps: overflow and subnormals round once


@_jit
def expm1(x):
    x = np.float64(x)
    k, p, pl = _expm1_reduced(_clamp(x, -40.0, 710.0))
    half = _pow2(k - 1)  # 2^k / 2: k <= 1024
    a = half * p  # exact
    c = half - 0.5
    h = a + c
    b = h - a
    lo = ((a - (h - b)) + (c - b)) + (half * pl + ((half - c) - 0.5))  # Knuth's two-sum; c's
    return 2.0 * (h + lo) if abs(x) >= _TINY else x  # rounding (k > 53); +-0, subnormals, NaN


@_jit
def _log_reduced(u, lo, k0):
    """log(2^k0 u) + lo for a positive normal u and a small lo (log1p's correction)."""
    ix = _bits(u) + 0x00095F6200000000  # (0x3ff00000 - 0x3fe6a09e) << 32: 1 + f < sqrt2
    k = (ix >> 52) - 1023
    f = _float((ix & _MANTISSA) + 0x3FE6A09E00000000) - 1.0  # exact
    s = f / (2.0 + f)
    z = s * s
    r = _fma(z, _P6, _P5)
    r = _fma(z, r, _P4)
    r = _fma(z, r, _P3)
    r = _fma(z, r, _P2)
    r = _fma(z, r, _P1)
    r = z * _fma(z, r, _P0)
    hfsq = 0.5 * f * f
    dk = _float(k + k0 + _SHIFT_BITS) - _SHIFT
    return dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + (dk * _LN2_LO + lo))) - f)


@_jit
def log(x):
    x = np.float64(x)
    small = x < _SMALLEST_NORMAL
    y = x * 18014398509481984.0 if small else x  # 2^54: subnormals made normal
    z = _log_reduced(y if y > 0.0 else 1.0, 0.0, -54 if small else 0)
    z = -np.inf if x == 0.0 else z
    z = np.nan if x < 0.0 else z
    return z if x < np.inf else x + x  # inf, NaN


@_jit
def log1p(x):
    x = np.float64(x)
    u = 1.0 + x
    b = u - 1.0
    c = (1.0 - (u - b)) + (x - b)  # u + c = 1 + x exactly
    u = u if u > 0.0 and u < np.inf else 1.0
    z = _log_reduced(u, c / u, 0)  # log(u + c) = log(u) + c/u (c/u < 2^-52)
    z = -np.inf if x == -1.0 else z
    z = np.nan if x < -1.0 else z
    z = x + x if x == np.inf else z
    return z if abs(x) >= _TINY else x  # also +-0, subnormals and NaN


@_jit
def tanh(x):
    x = np.float64(x)
    y = 2.0 * abs(x)
    k, rh, rl = _reduce(40.0 if y > 40.0 else y)  # noqa: FURB136 - 2|x| = k ln2 + rh + rl
    p = _fma(rh * rh, _q(rh), _fma(rl, rh, rl)) + rh  # expm1(rh + rl): |rl| < 2^-49 here
    half = _pow2(k - 1)
    h = _fma(half, p, half - 0.5)  # expm1(2|x|) / 2
    # tanh|x| = h / (h + 1): the denominator as dh + dl exactly, the quotient corrected
    dh = h + 1.0
    dl = (1.0 - dh) + h
    inv = 1.0 / dh
    q = h * inv
    z = _fma(_fma(-q, dl, _fma(-q, dh, h)), inv, q)
    return _float(_bits(z) | (_bits(x) & _SIGN))


# --- float32 in float32 arithmetic (SIMD registers hold twice as many) --------------------
_F = np.float32
_LN2_F, _LN2_TAIL_F = _F(0.6931471805599453), _F(-1.904654e-09)  # ln2 - _LN2_F
_INV_LN2_F, _SHIFT_F, _SHIFT_BITS_F = _F(1.4426950408889634), _F(12582912.0), 0x4B400000
_ONE_F, _LO_F, _HI_F = _F(1.0), _F(-104.0), _F(89.0)
# e^r = 1 + r + r^2 q(r) on |r| <= ln2/2 (scripts/fit_vmath.py; relative error 2^-28.3)
_QF0, _QF1, _QF2 = _F(0.4999999341158079), _F(0.16666520098859688), _F(0.04166839439582432)
_QF3, _QF4 = _F(0.00836878124293598), _F(0.0013814458215308273)


@_jit
def _pow2_f(k):
    """np.float32(2.0**k) for an int -126 <= k <= 127."""
    return _float(np.int32((k + 127) << 23))


@_jit
def exp32(x):
    """exp of a float32 in float32 arithmetic: within 1 ulp (tests/test_vmath.py)."""
    y = _HI_F if x > _HI_F else x  # noqa: FURB136 - selects; NaN stays NaN
    y = _LO_F if y < _LO_F else y  # noqa: FURB136
    shifted = _fma(y, _INV_LN2_F, _SHIFT_F)
    kf = shifted - _SHIFT_F
    r = _fma(-kf, _LN2_TAIL_F, _fma(-kf, _LN2_F, y))  # the first step exact, as exp's
    q = _fma(r, _fma(r, _fma(r, _fma(r, _QF4, _QF3), _QF2), _QF1), _QF0)
    eh = _ONE_F + r
    e = eh + _fma(r * r, q, (_ONE_F - eh) + r)  # 1 + r's rounding error carried
    k = np.int64(_bits(shifted)) - _SHIFT_BITS_F
    k1 = k >> 1
    return e * _pow2_f(k1) * _pow2_f(k - k1)  # two exact steps: one rounding at most
