"""Running tests on every available array backend: NumPy always, CuPy where a CUDA device is.

Owns: `require_cupy` (the one check for CuPy and a CUDA device; it skips with the reason),
`BACKENDS` (the `backend` fixture's parameters, in tests/conftest.py: "numpy", and "cupy"
marked `gpu`), `Backend` (moving inputs there and checking results: CuPy arrays on the GPU,
equal to NumPy's within the dtype's tolerance), and `on_gpu`, which turns a table test
parametrized per case into one gpu-marked test running every case on CuPy, so a table costs
one skipped id on a machine without a GPU, not one per case; and `under_jit`, which runs every
case of a table under dp.jit instead (`check_jit`: values, VJP, JVP and HVP of each function
jitted, equal to the eager ones on a recording, a replay and moved inputs), and one case per
function again with fused kernels (each kernel costs a numba compile); and
`under_jit_on_gpu`, which runs one case per function under dp.jit on CuPy (fused CuPy
kernels, CUDA-graph replays; `GpuJitBackend`) against eager NumPy.
"""

from __future__ import annotations

import itertools
import warnings
import zlib
from typing import Any, Callable

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.testing import check_grads

# "cupy:1": the arrays on GPU 1 while GPU 0 stays current (CuPy would run raw arithmetic on
# GPU 0): every kernel, rule and creation must follow the data.
BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu),
            pytest.param("cupy:1", marks=pytest.mark.gpu)]


def require_cupy(devices: int = 1) -> Any:
    """The cupy module, or a skip saying why it cannot run here (no CuPy, too few GPUs)."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed (pip install -e '.[cuda12]')")
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001  (no driver, no device: CUDA says so in its own way)
        pytest.skip(f"no CUDA device ({type(e).__name__}: {e})")
    if count < devices:
        pytest.skip(f"needs {devices} CUDA device(s), found {count}")
    return cupy


def _wide(dtype: Any) -> bool:
    """Double precision (complex128 too; complex64 has float32 parts)."""
    dtype = np.dtype(dtype)
    return dtype.itemsize // (2 if dtype.kind == "c" else 1) >= 8


def _tolerance(dtype: Any) -> dict[str, float]:
    # GPU kernels round differently (fused multiply-add, other reduction orders, other libm).
    return {"rtol": 1e-9, "atol": 1e-12} if _wide(dtype) else {"rtol": 1e-4, "atol": 1e-5}


def _same_tolerance(dtype: Any) -> dict[str, float]:
    return {"rtol": 1e-12 if _wide(dtype) else 1e-6}


class Backend:
    """One array library under test: `put` moves host inputs there, `check` compares."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.gpu = int(name.partition(":")[2] or 0) if name != "numpy" else None
        self.xp = np if name == "numpy" else require_cupy(devices=self.gpu + 1)

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"

    def put(self, tree: Any) -> Any:
        return tree if self.name == "numpy" else dp.to_device(tree, f"gpu:{self.gpu}")

    def check(self, got: Any, want: Any) -> None:
        """`got` (computed here) has `want`'s structure; each array leaf of `got` is one of
        this backend's arrays, of `want`'s dtype and shape, equal within the dtype's tolerance."""
        assert dp.tree.structure(got) == dp.tree.structure(want), (got, want)
        for g, w in zip(dp.tree.leaves(got), dp.tree.leaves(want)):
            if not hasattr(w, "dtype"):  # None, a Python number: the same on every backend
                assert type(g) is type(w) and (w is None or g == pytest.approx(w, rel=1e-9))
                continue
            if self.gpu is not None:
                assert isinstance(g, self.xp.ndarray), f"expected a CuPy array, got {type(g)}"
                assert g.device.id == self.gpu, f"expected GPU {self.gpu}, got {g.device}"
                g = g.get()
            assert g.dtype == w.dtype and g.shape == np.shape(w), (g.dtype, w.dtype, g.shape)
            np.testing.assert_allclose(g, w, **_tolerance(w.dtype))

    def check_grads(self, f: Callable[..., Any], args: tuple, **kw: Any) -> None:
        """`dp.testing.check_grads(f, args)` on this backend; on CuPy, also f's value and a
        VJP compared with NumPy's."""
        if self.name == "numpy":
            check_grads(f, args, **kw)
            return
        moved = self.put(args)
        with self.xp.cuda.Device(self.gpu):  # f's own CuPy code follows CuPy's current device
            self.check(f(*moved), f(*args))
        out, pullback = dp.vjp(f, *args)
        u = dp.tree.map(lambda o: np.ones_like(o) if hasattr(o, "dtype") else 1.0, out)
        self.check(dp.vjp(f, *moved)[1](self.put(u)), pullback(u))
        check_grads(f, moved, **kw)


def _cases(test: Callable[..., Any]) -> list[dict[str, Any]]:
    """The keyword arguments of every case of `test`'s parametrize marks."""
    grids = []  # (argument names, one tuple of values per case) per parametrize mark
    for mark in getattr(test, "pytestmark", []):
        if mark.name == "parametrize":
            argnames, argvalues = mark.args[:2]
            if isinstance(argnames, str):
                argnames = argnames.split(",")
            names = [n.strip() for n in argnames]
            rows = [tuple(v.values) if hasattr(v, "marks")  # a pytest.param(...)
                    else tuple(v) if len(names) > 1 else (v,) for v in argvalues]
            grids.append((names, rows))
    return [{n: v for (names, _), vs in zip(grids, combo) for n, v in zip(names, vs)}
            for combo in itertools.product(*(rows for _, rows in grids))]


#: the most cases of one table run with fused kernels (each kernel costs a numba compile)
FUSED_CASES = 8


def _sample(cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One case per function (`name`) of a table, the k-th function's k-th case (cycling
    through shapes and dtypes), at most FUSED_CASES of them spread over the table."""
    by_name: dict[Any, list[dict[str, Any]]] = {}
    for case in cases:
        by_name.setdefault(repr(case.get("name")), []).append(case)
    picked = [group[k % len(group)] for k, group in enumerate(by_name.values())]
    step = -(-len(picked) // FUSED_CASES)
    return picked[::step]


def _run_every_case(test: Callable[..., Any], backend: Any, where: str, sample: bool = False) -> None:
    """`test` on every case with `backend` (with `sample`: on `_sample` of them); the
    failures reported together, each named."""
    failures, cases = [], _cases(test)
    cases = _sample(cases) if sample else cases
    for kwargs in cases:
        try:
            test(**kwargs, backend=backend)
        except pytest.skip.Exception:
            continue
        except Exception as e:  # noqa: BLE001  (reported below, every case at once)
            failures.append(f"{kwargs}: {type(e).__name__}: {str(e)[:300]}")
    assert not failures, f"{len(failures)} of {len(cases)} cases fail {where}:\n" + "\n".join(
        failures
    )


def _table_test(test: Callable[..., Any], suffix: str, doc: str,
                runs: Callable[[Any], list[tuple[Any, str, bool]]],
                backends: list[str] | None = None, gpu: bool = False) -> Callable[..., Any]:
    """One test, `<test's name>_<suffix>`, running every case of `test`'s table (its
    parametrize marks) for each `(backend, where, sample)` that `runs(backend)` gives (see
    `_run_every_case`), with the table's own NumPy deprecations silenced: parametrized over
    the `backend` fixture with `backends`, gpu-marked with `gpu`. `doc` names the table
    `{}`."""

    def every_case(backend: Any = None) -> None:
        with warnings.catch_warnings():  # the table's own NumPy deprecations, met again here
            warnings.simplefilter("ignore", DeprecationWarning)
            for on, where, sample in runs(backend):
                _run_every_case(test, on, where, sample)

    if backends:
        def run(backend: Backend) -> None:
            every_case(backend)

        run = pytest.mark.parametrize("backend", backends, indirect=True)(run)
    else:
        def run() -> None:
            every_case()

    if gpu:
        run = pytest.mark.gpu(run)
    run.__name__ = f"{test.__name__}_{suffix}"
    run.__doc__ = doc.format(test.__name__)
    return run


def on_gpu(test: Callable[..., Any]) -> Callable[..., Any]:
    """A gpu-marked test running `test` on CuPy for every combination of its parametrize
    marks (`test` takes `backend=NUMPY` as a default, so its own ids run on NumPy only).
    The failures are collected and reported together, naming each case."""
    return _table_test(test, "on_gpu", "Every case of {} on CuPy, compared with NumPy.",
                       lambda backend: [(backend, "on CuPy", False)],
                       backends=["cupy", "cupy:1"], gpu=True)


def under_jit(test: Callable[..., Any]) -> Callable[..., Any]:
    """One test running every case of `test` under dp.jit (see `JitBackend`), and one case
    per function again with fused kernels."""
    return _table_test(test, "under_jit", "Every case of {} under dp.jit, compared with eager "
                       "calls; one case per function with fused kernels.",
                       lambda _: [(JIT, "under dp.jit", False),
                                  (FUSED_JIT, "under dp.jit with fused kernels", True)])


class JitBackend(Backend):
    """NumPy, with every function checked under dp.jit: its value, a VJP, a JVP and an HVP,
    each jitted, equal to the eager ones on the recording call, on a replay, and on inputs
    scaled by 1.001 (which may take another path: a guard must catch it)."""

    def __init__(self, fuse: bool = False) -> None:
        self.name, self.gpu, self.xp, self.fuse = "jit", None, np, fuse

    def check_grads(self, f: Callable[..., Any], args: tuple, **kw: Any) -> None:
        check_jit(f, args, fuse=self.fuse)


def check_jit(f: Callable[..., Any], args: tuple, fuse: bool = False, narrow: bool = False) -> None:
    """f's value, VJP, JVP and HVP under dp.jit equal the eager ones (see JitBackend); with
    `fuse`, the VJP and HVP replayed with fused kernels (each costs a numba compile), within
    float32's tolerance everywhere if `narrow` (f computes in float32 somewhere: its float64
    results carry float32's rounding, which fused and unfused kernels round differently)."""
    u, t = _directions(f, args)
    programs = _programs(f, u, t)
    scaled = _scaled(args)
    # the magnitude of each program's terms: its directions times local derivatives of order 1
    terms = {"value": 0.0, "vjp": result_scale(u), "jvp": result_scale(t),
             "hvp": result_scale(u) * result_scale(t)}  # fmt: skip
    for name, program in programs.items():
        if fuse and name not in ("vjp", "hvp"):  # the others' nodes are among theirs
            continue
        jitted = dp.jit(program, fuse=fuse)
        for call in (args, args, scaled):
            want = program(*call)
            got = jitted(*call)
            try:
                _same(got, want, fuse, narrow, terms[name])
            except AssertionError as e:
                raise AssertionError(f"dp.jit of the {name}: {e}") from None
        assert jitted.stats["replays"] >= 1, f"dp.jit of the {name} never replayed: {jitted.stats}"


def _directions(f: Callable[..., Any], args: tuple) -> tuple[Any, Any]:
    """A cotangent for f's outputs and a tangent for its arguments: random, drawn afresh for
    each case (seeded by `case_seed`), each entry at least 0.5 in size, so a wrong sign or
    scale shows in a scalar output's path too; complex leaves get complex directions."""
    rng = np.random.default_rng(case_seed(f, args))
    draw = lambda shape: (lambda x: x + np.copysign(0.5, x))(rng.normal(size=shape))  # noqa: E731
    like = lambda tree: dp.tree.map(  # noqa: E731
        lambda a: (draw(np.shape(a)) + (1j * draw(np.shape(a)) if a.dtype.kind == "c" else 0)
                   ).astype(a.dtype) if hasattr(a, "dtype") and a.dtype.kind in "fc"
        else float(draw(())) if isinstance(a, float) else None, tree)  # fmt: skip
    return like(f(*args)), like(args)


def case_seed(f: Callable[..., Any], args: tuple) -> int:
    """A seed that differs between cases and is the same on every run: from f's name, code
    and the names it calls, the plain values it closes over (an axis, a keyword) and the bytes of `args`."""
    plain = (int, float, complex, str, bytes, type(None))
    code = getattr(f, "__code__", None)
    parts = [getattr(f, "__qualname__", type(f).__name__)]
    if code is not None:
        parts += [code.co_code, code.co_names, [c for c in code.co_consts if isinstance(c, plain)]]
    parts += [v for v in (c.cell_contents for c in getattr(f, "__closure__", None) or ())
              if isinstance(v, plain) or type(v) is tuple and all(isinstance(e, plain) for e in v)]
    parts += [np.asarray(a).tobytes() + str(np.asarray(a).dtype).encode()
              if isinstance(a, (np.ndarray, np.generic, float, int)) else type(a).__name__
              for a in dp.tree.leaves(args)]  # fmt: skip
    return zlib.crc32(repr(parts).encode())


def _programs(f: Callable[..., Any], u: Any, t: Any) -> dict[str, Callable[..., Any]]:
    """f's value, its VJP with cotangent `u`, its JVP along `t` and the HVP (along `t`) of
    its outputs weighted by `u`, each a function of f's arguments."""
    weighted = lambda *a: sum(dnp.real(dnp.sum(o * w)) for o, w in  # noqa: E731
                              zip(dp.tree.leaves(f(*a)), dp.tree.leaves(u)) if w is not None)
    return {
        "value": f,
        "vjp": lambda *a: dp.vjp(f, *a)[1](u),
        "jvp": lambda *a: dp.jvp(f, a, t),
        "hvp": lambda *a: dp.hvp(weighted, a, t),
    }


def _scaled(args: tuple) -> tuple:
    """`args` with its float arrays and numbers times 1.001 (a replay may take another path)."""
    return dp.tree.map(lambda a: a * 1.001 if isinstance(a, (float, np.ndarray)) and
                       np.asarray(a).dtype.kind in "fc" else a, args)  # fmt: skip


def under_jit_on_gpu(test: Callable[..., Any]) -> Callable[..., Any]:
    """A gpu-marked test running one case per function of `test`'s table (at most
    FUSED_CASES) under dp.jit on CuPy, with fused kernels and CUDA-graph replays (see
    GpuJitBackend)."""
    return _table_test(test, "under_jit_on_gpu", "One case per function of {} under dp.jit "
                       "on CuPy (fused kernels, CUDA graphs), compared with eager NumPy.",
                       lambda _: [(GpuJitBackend(), "under dp.jit on CuPy", True)], gpu=True)


class GpuJitBackend(Backend):
    """CuPy (GPU 0), with every function's VJP and HVP checked under dp.jit with fused CuPy
    kernels and CUDA-graph replays: on the recording call, a replay and a call on inputs
    scaled by 1.001 (the second replay: captured and launched as a CUDA graph unless a
    guard sends it elsewhere), each equal to NumPy's eager result within the GPU tolerance."""

    def __init__(self) -> None:
        super().__init__("cupy")

    def check_grads(self, f: Callable[..., Any], args: tuple, **kw: Any) -> None:
        u, t = _directions(f, args)
        want, got = _programs(f, u, t), _programs(f, self.put(u), self.put(t))
        for name in ("vjp", "hvp"):
            jitted = dp.jit(got[name])
            for call in (args, args, _scaled(args)):
                try:
                    self.check(jitted(*self.put(call)), want[name](*call))
                except AssertionError as e:
                    raise AssertionError(f"dp.jit on CuPy of the {name}: {e}") from None
            assert jitted.stats["replays"] >= 1, f"dp.jit of the {name} never replayed: {jitted.stats}"


def check_on_cupy(f: Callable[..., Any], args: tuple) -> None:
    """f's value, VJP, JVP and HVP (see `_programs`) with `args` moved to CuPy equal NumPy's,
    eagerly and (the VJP and HVP) under dp.jit on a recording and a replay. Each direction is
    where its value is: on CuPy, or a host scalar for a Python float or a value of host
    scalars alone (a CuPy cotangent for it would be the caller's mixing, and a 0-d NumPy one
    a host constant, which dp.jit's replay on CuPy refuses)."""
    backend = Backend("cupy")
    moved = backend.put(args)
    u, t = _directions(f, args)
    here = dp.tree.map(lambda d, v: backend.put(d) if isinstance(v, backend.xp.ndarray) else
                       d[()] if isinstance(v, np.generic) else d, (u, t), (f(*moved), moved))
    want, got = _programs(f, u, t), _programs(f, *here)
    for name, program in want.items():
        runs = [got[name]] + ([dp.jit(got[name])] * 2 if name in ("vjp", "hvp") else [])
        for run in runs:
            try:
                _close_to_host(backend.xp, run(*moved), program(*args))
            except AssertionError as e:
                where = "under dp.jit: " if run is not got[name] else ": "
                raise AssertionError(f"the {name} on CuPy {where}{e}") from None
        assert len(runs) == 1 or runs[1].stats["replays"] == 1, (runs[1].stats,
                                                                runs[1].last_eager_reason)


def _close_to_host(cp: Any, got: Any, want: Any) -> None:
    """`got` (computed on CuPy) has `want`'s structure; each leaf is a CuPy array where want's
    is a NumPy array or scalar (or that very type: a value of host scalars alone stays on the
    host), else of want's type; of want's dtype and shape, equal within its tolerance."""
    assert dp.tree.structure(got) == dp.tree.structure(want), (got, want)
    for g, w in zip(dp.tree.leaves(got), dp.tree.leaves(want)):
        if isinstance(g, cp.ndarray):
            assert isinstance(w, (np.ndarray, np.generic)), (type(g), type(w))
            g = g.get()
        else:
            assert type(g) is type(w), (type(g), type(w))
        if hasattr(w, "dtype"):
            assert g.dtype == w.dtype and np.shape(g) == np.shape(w), (g.dtype, w.dtype)
        if hasattr(w, "dtype") or isinstance(w, (float, complex)):
            np.testing.assert_allclose(g, w, **_tolerance(np.result_type(w)))
        else:  # None, an int, a string: the very value
            assert g == w, (g, w)


def _same(got: Any, want: Any, fused: bool = False, narrow: bool = False,
          terms: float = 0.0) -> None:  # fmt: skip
    """`got` equals `want`: types, dtypes, shapes; values exactly but for the last bits, or
    with `fused` to `assert_fused_close`'s tolerance, scaled by the larger of the whole
    result's magnitude and `terms` (a bound on the magnitude of the terms summed)."""
    assert dp.tree.structure(got) == dp.tree.structure(want), (got, want)
    scale = max(result_scale(want), terms)
    for g, w in zip(dp.tree.leaves(got), dp.tree.leaves(want)):
        assert type(g) is type(w), (type(g), type(w))
        if hasattr(w, "dtype"):
            assert g.dtype == w.dtype and np.shape(g) == np.shape(w), (g.dtype, w.dtype)
        numeric = hasattr(w, "dtype") or isinstance(w, float)
        if fused and numeric and np.result_type(w).kind in "fc":
            assert_fused_close(g, w, narrow, scale)
        elif numeric:
            # the same kernels on the same values; a sum over memory laid out or aligned
            # otherwise may round differently in the last bits
            np.testing.assert_allclose(g, w, atol=0, **_same_tolerance(np.result_type(w)))
        else:  # None, an int, a string: the very value
            assert g == w, (g, w)


def result_scale(tree: Any) -> float:
    """The largest finite |entry| over the float and complex leaves of `tree` (0 if none)."""
    sizes = [np.abs(a[np.isfinite(a)]).max(initial=0.0) for a in map(np.asarray,
             dp.tree.leaves(tree)) if a.dtype.kind in "fc"]  # fmt: skip
    return float(max(sizes, default=0.0))


def assert_fused_close(got: Any, want: Any, narrow: bool = False, scale: Any = None) -> None:
    """A fused kernel's result equals NumPy's to float rounding: libm, diffprog's own vector
    functions (compile.vmath, tanh within 1.5 ulp) and NumPy's SIMD ones differ in the last
    bits, sums accumulate in another order (and in float64). float64: rtol 1e-12 (4500
    ulps); float32: rtol 1e-5 (170 ulps); plus an atol of rtol times `scale`.

    Why an atol, and relative to what. A result that is small because terms cancel carries
    the rounding of the terms, not its own. Every mismatch the random-mode fuzz found
    (DIFFPROG_FUZZ_RANDOM=1; tests/test_fuzz.py's last regressions) is such. The VJP of
    sum(expm1(log_softmax(x))), a constant (sum(softmax) - n), is cos(x) * (g - s * sum(g))
    with terms of 5.6e-4 that NumPy cancels to 0 and the fused kernel to 1.1e-19, one ulp of
    the terms (an earlier session's arctan2(v, v), -7.9e-21 for 0, is alike: its partials
    x / (x^2 + y^2) and -y / (x^2 + y^2) cancel). The HVP of mean(tanh(v)) at v of 5 to 7
    holds 1 - tanh(v)^2 ~ 2e-6, where 1 and tanh^2 cancel, so tanh's 1-ulp difference
    becomes up to 4e-12 relative in those entries; in float32 (tanh(g) 39 ulps below 1, and
    NumPy's float32 tanh 1 ulp off the rounded value the kernel gets) 2.6%: 2.2e-6 in an
    entry of 8.7e-5 whose cancelled terms are u t g'^2 ~ 19. A kernel's error is then a
    few ulps of the terms it combines, so `scale` bounds them: each term of a VJP is the
    cotangent u times a product of local derivatives, of an HVP u times the tangent t times
    one. `check_jit` passes |u| and |u| |t| as `terms` to `_same`, which takes the larger of
    that and the largest finite |entry| of the whole result (`result_scale`: a leaf that is
    zero by cancellation next to others, derivatives larger than 1). Where the whole result
    cancels (a function of sum(softmax(x)) alone: a VJP of 0, fused up to 9e-20, one ulp of
    its terms u * s of 5e-4) only the directions bound it. The checked programs keep values
    of order 1 (the fuzz replaces steps near singularities or with large values), but not
    every product of local derivatives (g'^2 = 27 above): atol is rtol times the scale, the
    precision a result of terms of that size has when they do not cancel, which leaves room
    for products up to rtol / ulp (float32: about 100). Not the inputs' scale: a function
    whose values are all tiny keeps a tight tolerance. By default (`scale` None) the leaf's
    own largest |entry|. `narrow` (computed through float32 from values of order 1 or
    more, whose rounding a cancellation leaves in a small result): float32's, with the
    scale at least 1."""
    wide = _wide(np.result_type(want)) and not narrow  # (complex64 has float32 parts)
    scale = result_scale(want) if scale is None else scale
    scale = max(scale, 1.0 if narrow else 0.0)
    rtol = 1e-12 if wide else 1e-5
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * scale)


NUMPY = Backend("numpy")
JIT = JitBackend()
FUSED_JIT = JitBackend(fuse=True)


def under_vmap(test: Callable[..., Any]) -> Callable[..., Any]:
    """One test running every case of `test` under dp.vmap (see `VmapBackend`)."""
    return _table_test(test, "under_vmap", "Every case of {} under dp.vmap, compared with a "
                       "loop.", lambda _: [(VMAP, "under dp.vmap", False)])


class VmapBackend(Backend):
    """NumPy, with every function checked under dp.vmap: its value, a VJP and a JVP on a
    batch of three examples (its float arrays scaled differently) equal the loop's, and the
    VJP of the batched function equals each example's."""

    def __init__(self) -> None:
        self.name, self.gpu, self.xp = "vmap", None, np

    def check_grads(self, f: Callable[..., Any], args: tuple, **kw: Any) -> None:
        check_vmap(f, args)


def check_vmap(f: Callable[..., Any], args: tuple) -> None:
    """f (and its VJP and JVP) under dp.vmap on a batch of 3 examples equal a loop over them.
    Float and complex arrays and scalars are batched; Python numbers, integer arrays and the
    rest are shared (with none batched, the batch is three copies: axis_size=3)."""
    rng = np.random.default_rng(11)
    batched = lambda a: (isinstance(a, (np.ndarray, np.inexact))  # noqa: E731
                         and a.dtype.kind in "fc")
    axes = dp.tree.map(lambda a: 0 if batched(a) else None, args)
    examples = [dp.tree.map(lambda a, s=s: a * s if batched(a) else a, args)
                for s in (1.0, 0.9, 1.1)]  # fmt: skip
    batch = dp.tree.map(lambda a, *more: np.stack([a, *more]) if batched(a) else a,
                        *examples)  # fmt: skip
    like = lambda tree: dp.tree.map(  # noqa: E731
        lambda a: (rng.normal(size=np.shape(a)) + (1j * rng.normal(size=np.shape(a)) if
                   np.asarray(a).dtype.kind == "c" else 0)).astype(a.dtype)
        if hasattr(a, "dtype") and np.asarray(a).dtype.kind in "fc"
        else float(rng.normal()) if isinstance(a, float) else None, tree)  # fmt: skip
    u, t = like(f(*args)), like(args)
    programs = {
        "value": f,
        "vjp": lambda *a: dp.vjp(f, *a)[1](u),
        "jvp": lambda *a: dp.jvp(f, a, t)[1],
    }
    vmap = lambda g: dp.vmap(g, in_axes=tuple(axes), axis_size=3)  # noqa: E731
    wide = all(_wide(a.dtype) for a in dp.tree.leaves(args)  # every inexact array double
               if isinstance(a, (np.ndarray, np.generic)) and a.dtype.kind in "fc")
    for name, program in programs.items():
        got = vmap(program)(*batch)
        want = [program(*e) for e in examples]
        try:
            _same_batch(got, want, wide=wide)
        except AssertionError as e:
            raise AssertionError(f"dp.vmap of the {name}: {e}") from None
    # the VJP of the batched function: each example's own cotangent pulled back
    us = [like(f(*e)) for e in examples]
    stacked_u = dp.tree.map(lambda *xs: None if xs[0] is None else np.stack(
        [np.asarray(x) for x in xs]), *us, is_leaf=lambda x: x is None)  # fmt: skip
    got = dp.vjp(vmap(f), *batch)[1](stacked_u)
    want = [dp.vjp(f, *e)[1](w) for e, w in zip(examples, us)]
    for g, ax, *ws in zip(dp.tree.leaves(got), dp.tree.leaves(axes), *map(dp.tree.leaves, want)):
        if ws[0] is None:
            continue
        total = np.stack([np.asarray(w) for w in ws]) if ax == 0 else sum(np.asarray(w) for w in ws)
        np.testing.assert_allclose(np.asarray(g), total, rtol=1e-6 if wide else 1e-5,
                                   atol=1e-9 if wide else 1e-6 * np.abs(total).max(initial=1.0),
                                   err_msg="the VJP of dp.vmap(f)")  # fmt: skip


def _same_batch(got: Any, want: list, wide: bool) -> None:
    """`got` (a batched result) equals the results `want` of each example, stacked (to
    float32's tolerance unless `wide`: every input float64)."""
    leaves = [dp.tree.leaves(w) for w in want]
    got_leaves = dp.tree.leaves(got)
    assert len(got_leaves) == len(leaves[0]), (dp.tree.structure(got), dp.tree.structure(want[0]))
    for k, g in enumerate(got_leaves):
        ws = [ls[k] for ls in leaves]
        if ws[0] is None or isinstance(ws[0], str):
            assert all(w == g for w in ws), (g, ws)
            continue
        stacked = np.stack([np.asarray(w) for w in ws])
        g = np.asarray(g)
        assert g.shape == stacked.shape, (g.shape, stacked.shape)
        if stacked.dtype.kind in "fc":
            assert g.dtype == stacked.dtype, (g.dtype, stacked.dtype)
            wide = wide and stacked.dtype.itemsize >= 8
            np.testing.assert_allclose(g, stacked, rtol=1e-9 if wide else 1e-5,
                                       atol=1e-12 if wide else 1e-6)  # fmt: skip
        else:
            np.testing.assert_array_equal(g, stacked)


VMAP = VmapBackend()
