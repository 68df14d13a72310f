"""compile.vmath: every function within its stated error bound of mpmath's exact value, on
samples over its whole domain (log-uniform magnitudes of both signs, region boundaries,
subnormals, overflow and underflow thresholds), NumPy's special values exactly, float32
through float64, and loops over them vectorized (packed SIMD arithmetic, no libm calls)."""

from __future__ import annotations

import re

import numpy as np
import pytest

numba = pytest.importorskip("numba")
mpmath = pytest.importorskip("mpmath")

from diffprog.compile import kernels, vmath

#: the stated bounds, in units in the last place of the correctly rounded result
BOUND_ULP = {"exp": 1.0, "expm1": 1.0, "log": 1.0, "log1p": 1.0, "tanh": 1.5}
EXACT = {"exp": mpmath.exp, "expm1": mpmath.expm1, "log": mpmath.log, "log1p": mpmath.log1p,
         "tanh": mpmath.tanh}  # fmt: skip
TINY = 2.0**-1074


def loop(name: str, dtype):
    """A numba loop over an array calling vmath's `name` as a fused kernel does."""
    f = getattr(vmath, kernels.VMATH_FLOAT32.get(name, name) if dtype == np.float32 else name)
    if dtype == np.float32:

        def body(a, out):
            for i in range(a.size):
                out[i] = np.float32(f(a[i]))
    else:

        def body(a, out):
            for i in range(a.size):
                out[i] = f(a[i])

    return numba.njit(error_model="numpy")(body)


_loops: dict = {}


def run(name: str, x: np.ndarray) -> np.ndarray:
    key = (name, x.dtype)
    if key not in _loops:
        _loops[key] = loop(name, x.dtype.type)
    out = np.empty_like(x)
    _loops[key](x, out)
    return out


def sample(name: str, n: int, rng) -> np.ndarray:
    """Log-uniform magnitudes of both signs over the whole float64 range, the function's
    own working range and its region boundaries."""
    mag = np.exp(rng.uniform(np.log(TINY), np.log(1.7e308), n))
    parts = [mag * rng.choice([-1.0, 1.0], n), rng.uniform(-4, 4, n)]
    ln2 = np.log(2.0)
    edges = {
        "exp": [709.782712893384, -745.1332191019411, -708.3964185322641, 0.5 * ln2, 0.0],
        "expm1": [709.782712893384, -37.42994775023705, 0.5 * ln2, -0.5 * ln2, 1e-5],
        "log": [1.0, np.sqrt(2.0), np.sqrt(0.5), 2.2250738585072014e-308, 2.0],
        "log1p": [0.0, -0.5, np.sqrt(2.0) - 1, np.sqrt(0.5) - 1, -1.0 + 1e-12, 1e-5],
        "tanh": [0.17328679513998632, 0.5 * ln2, 19.06154746539849, 18.0, 1e-5, 1.5 * ln2],
    }[name]
    for e in edges:  # the edge, its neighbours and a few ulps around it
        parts.append(e * (1.0 + rng.uniform(-1e-6, 1e-6, 20)))
        parts.append(np.nextafter(e, [np.inf, -np.inf]))
    if name in ("exp", "expm1"):
        parts.append(rng.uniform(-750.0, 712.0, n))
    if name == "tanh":
        parts.append(np.exp(rng.uniform(np.log(1e-9), np.log(25.0), n)))
    if name in ("log", "log1p"):
        parts.append(np.exp(rng.uniform(-745.0, 709.0, n)))
        parts.append(1.0 + rng.uniform(-1e-3, 1e-3, n))
        parts.append(rng.uniform(-1.0, 1.0, n))
    return np.concatenate(parts)


def ulp_errors(name: str, x: np.ndarray, got: np.ndarray, dtype) -> np.ndarray:
    """|got - exact| in ulps of the exact value rounded to `dtype` (NaN where the exact
    value is not real: those must be NaN)."""
    info = np.finfo(dtype)
    smallest = float(info.smallest_subnormal)
    errs = np.empty(len(x))
    with mpmath.workdps(40):
        for i, (xi, gi) in enumerate(zip(x.tolist(), got.tolist())):
            try:
                exact = EXACT[name](mpmath.mpf(xi))
            except ValueError:  # log(0)
                exact = mpmath.ninf
            if isinstance(exact, mpmath.mpc) or mpmath.isnan(exact):
                assert np.isnan(gi), (name, xi, gi)
                errs[i] = 0.0
                continue
            rounded = float(dtype(float(exact))) if mpmath.isfinite(exact) else float(exact)
            if np.isinf(rounded) or np.isinf(gi):
                errs[i] = 0.0 if gi == rounded else np.inf
                continue
            ulp = max(float(np.spacing(dtype(abs(rounded)))), smallest)
            errs[i] = float(abs(mpmath.mpf(gi) - exact) / mpmath.mpf(ulp))
    return errs


@pytest.mark.parametrize("name", sorted(vmath.FUNCTIONS))
def test_within_bound_of_exact_float64(name):
    rng = np.random.default_rng(sorted(vmath.FUNCTIONS).index(name))
    x = sample(name, 400, rng)
    errs = ulp_errors(name, x, run(name, x), np.float64)
    worst = int(np.argmax(errs))
    assert errs[worst] <= BOUND_ULP[name], (name, x[worst], errs[worst])


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # magnitudes beyond float32's range
@pytest.mark.parametrize("name", sorted(vmath.FUNCTIONS))
def test_within_bound_of_exact_float32(name):
    """Computed in float64 and rounded: one rounding, 0.5 ulp and a bit; in float32
    arithmetic (kernels.VMATH_FLOAT32): 1 ulp."""
    rng = np.random.default_rng(10 + sorted(vmath.FUNCTIONS).index(name))
    x = sample(name, 400 if name in kernels.VMATH_FLOAT32 else 200, rng).astype(np.float32)
    errs = ulp_errors(name, x.astype(np.float64), run(name, x), np.float32)
    worst = int(np.argmax(errs))
    bound = 1.0 if name in kernels.VMATH_FLOAT32 else 0.5 + 2.0**-20
    assert errs[worst] <= bound, (name, x[worst], errs[worst])


SPECIAL = np.array([np.nan, -np.nan, np.inf, -np.inf, 0.0, -0.0, 5e-324, -5e-324, 1e-310,
                    -1e-310, 2.2250738585072014e-308, 1.0, -1.0, 1e308, -1e308, 710.0, -746.0,
                    709.79, -745.2, 40.0, -40.0, 20.0, -20.0, 1e-300, -1e-300])  # fmt: skip


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(vmath.FUNCTIONS))
def test_special_values_as_numpy(name, dtype):
    x = SPECIAL.astype(dtype)
    got, want = run(name, x), getattr(np, name)(x)
    special = ~np.isfinite(want) | (want == 0) | (np.abs(want) == 1)
    assert np.array_equal(np.isnan(got), np.isnan(want)), (x, got, want)
    same = got[special] == want[special]
    assert np.all(same | np.isnan(want[special])), (x[special], got[special], want[special])
    assert np.array_equal(
        np.signbit(got[special & ~np.isnan(want)]), np.signbit(want[special & ~np.isnan(want)])
    ), (x, got, want)


def test_kernels_use_vmath_for_its_functions():
    assert kernels.VMATH == vmath.FUNCTIONS and {op for op, _ in kernels.VMATH_BIG} <= kernels.VMATH
    assert all(hasattr(vmath, fn) for fn in kernels.VMATH_FLOAT32.values())


def _host_has_x86_fma() -> bool:
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    return all(features.get(f, False) for f in ("avx2", "fma"))


@pytest.mark.skipif(not _host_has_x86_fma(), reason="the SIMD check reads x86 assembly with "
                    "AVX2 and FMA (elsewhere llvm.fma may be a libm call: right, but slow)")
@pytest.mark.parametrize(
    "name, dtype",
    [
        *((n, np.float64) for n in sorted(vmath.FUNCTIONS)),
        *((n, np.float32) for n in kernels.VMATH_FLOAT32),
    ],
)
def test_loops_vectorize(name, dtype):
    x = np.linspace(0.5, 2.0, 1000).astype(dtype)
    run(name, x)
    asm = next(iter(_loops[(name, x.dtype)].inspect_asm().values()))
    packed = re.findall(r"\b\w+p[sd]\s+%[xyz]mm", asm)
    calls = [line for line in asm.splitlines() if re.search(rf"call.*\b({name}f?|fmaf?)\b", line)]
    assert len(packed) > 20 and not calls, (len(packed), calls)
