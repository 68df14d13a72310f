"""Running tests on every available array backend: NumPy always, CuPy where a CUDA device is.

Owns: `require_cupy` (the one check for CuPy and a CUDA device; it skips with the reason),
`BACKENDS` (the `backend` fixture's parameters, in tests/conftest.py: "numpy", and "cupy"
marked `gpu`), `Backend` (moving inputs there and checking results: CuPy arrays on the GPU,
equal to NumPy's within the dtype's tolerance), and `on_gpu`, which turns a table test
parametrized per case into one gpu-marked test running every case on CuPy, so a table costs
one skipped id on a machine without a GPU, not one per case.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable

import numpy as np
import pytest

import diffprog as dp
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


def _tolerance(dtype: Any) -> dict[str, float]:
    # GPU kernels round differently (fused multiply-add, other reduction orders, other libm).
    wide = np.dtype(dtype).itemsize >= 8
    return {"rtol": 1e-9, "atol": 1e-12} if wide else {"rtol": 1e-4, "atol": 1e-5}


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


def on_gpu(test: Callable[..., Any]) -> Callable[..., Any]:
    """A gpu-marked test running `test` on CuPy for every combination of its parametrize
    marks (`test` takes `backend=NUMPY` as a default, so its own ids run on NumPy only).
    The failures are collected and reported together, naming each case."""
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

    @pytest.mark.gpu
    @pytest.mark.parametrize("backend", ["cupy", "cupy:1"], indirect=True)
    def run(backend: Backend) -> None:
        failures, count = [], 0
        for combo in itertools.product(*(rows for _, rows in grids)):
            kwargs = {n: v for (names, _), vs in zip(grids, combo) for n, v in zip(names, vs)}
            count += 1
            try:
                test(**kwargs, backend=backend)
            except pytest.skip.Exception:
                continue
            except Exception as e:  # noqa: BLE001  (reported below, every case at once)
                failures.append(f"{kwargs}: {type(e).__name__}: {str(e)[:300]}")
        assert not failures, f"{len(failures)} of {count} cases fail on CuPy:\n" + "\n".join(
            failures
        )

    run.__name__ = f"{test.__name__}_on_gpu"
    run.__doc__ = f"Every case of {test.__name__} on CuPy, compared with NumPy."
    return run


NUMPY = Backend("numpy")
