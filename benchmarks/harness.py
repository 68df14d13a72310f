"""Timing and verification machinery shared by the benchmark workloads.

Owns `Impl` (one implementation of one workload: a zero-argument call returning its
outputs), `verify` (an implementation's outputs against the hand-written reference, leaf by
leaf, as NumPy), `measure` (all implementations of a workload timed interleaved, rotating
their order every round, so drift on a noisy machine hits all alike; medians over rounds),
and `to_numpy` (NumPy/CuPy/JAX/PyTorch outputs to NumPy). Imports: numpy and the standard
library only.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def _no_sync(out: Any) -> None:
    return None


@dataclass
class Impl:
    """One implementation of a workload.

    `fn()` runs it once and returns `(value, derivative)` in its own types; `sync(out)` waits
    for asynchronous work (a GPU stream, JAX's dispatch) so the clock sees it finish.
    `role` is 'hand' (the hand-written reference), 'tape', 'graph' (diffprog's two reverse
    modes), 'peer', or 'grad' (a gradient timed only as the denominator of an HVP's ratio);
    `pair` names the gradient implementation an HVP is compared with. `skip` says why an
    implementation cannot run this workload at all (it is reported, not run).
    """

    name: str
    fn: Callable[[], Any]
    role: str = "peer"
    sync: Callable[[Any], None] = _no_sync
    pair: str | None = None
    skip: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def to_numpy(tree: Any) -> Any:
    """A pytree of NumPy/CuPy/JAX/PyTorch arrays or scalars as NumPy arrays (same nesting)."""
    if isinstance(tree, dict):
        return {k: to_numpy(v) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(to_numpy(v) for v in tree)
    if hasattr(tree, "detach"):  # torch.Tensor
        tree = tree.detach().cpu().numpy()
    elif type(tree).__module__.startswith("cupy"):
        tree = tree.get()
    return np.asarray(tree)


def _leaves(tree: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(tree, dict):
        return [leaf for k in sorted(tree) for leaf in _leaves(tree[k], f"{path}[{k!r}]")]
    if isinstance(tree, (list, tuple)):
        return [leaf for i, v in enumerate(tree) for leaf in _leaves(v, f"{path}[{i}]")]
    return [(path, tree)]


def max_rel_error(out: Any, ref: Any) -> tuple[float, str]:
    """The largest max|out - ref| / max|ref| over the leaves, and the worst leaf's path."""
    got, want = _leaves(to_numpy(out)), _leaves(to_numpy(ref))
    if [p for p, _ in got] != [p for p, _ in want]:
        raise AssertionError(
            f"output structure {[p for p, _ in got]} differs from the reference's "
            f"{[p for p, _ in want]}"
        )
    worst, where = 0.0, ""
    for (path, a), (_, b) in zip(got, want):
        if a.shape != b.shape:
            raise AssertionError(f"output{path} has shape {a.shape}, reference {b.shape}")
        a, b = a.astype(np.float64), b.astype(np.float64)
        if not np.all(np.isfinite(a)):
            return float("inf"), path
        scale = float(np.max(np.abs(b))) if b.size else 0.0
        err = float(np.max(np.abs(a - b))) / max(scale, 1e-300) if b.size else 0.0
        if err > worst:
            worst, where = err, path
    return worst, where


def run_once(impl: Impl) -> Any:
    out = impl.fn()
    impl.sync(out)
    return out


def verify(impl: Impl, ref: Any, tol: float) -> tuple[bool, float, str]:
    """Run `impl` once and compare its outputs with `ref`: (passed, error, message)."""
    try:
        out = run_once(impl)
        err, where = max_rel_error(out, ref)
    except Exception as e:  # noqa: BLE001 - any failure is a result to report, not a crash
        return False, float("nan"), f"{type(e).__name__}: {_first_line(e)}"
    if err <= tol:
        return True, err, ""
    return False, err, f"relative error {err:.2e} > {tol:.0e} at output{where}"


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0][:160] if text else ""


def _timed(impl: Impl, number: int) -> float:
    out = None
    t0 = time.perf_counter()
    for _ in range(number):
        out = impl.fn()
    impl.sync(out)
    return time.perf_counter() - t0


def _warm(impl: Impl, seconds: float) -> None:
    """Call `impl` untimed for at least `seconds` (at least once)."""
    out = None
    start = time.perf_counter()
    while True:
        out = impl.fn()
        if time.perf_counter() - start >= seconds:
            break
    impl.sync(out)


def measure(impls: list[Impl], repeats: int, min_sample_s: float = 2e-3,
            warm_s: float | None = None) -> dict[str, list[float]]:  # fmt: skip
    """Seconds per call of each implementation, `repeats` samples each, taken interleaved.

    Each sample is `warm_s` seconds of untimed calls (default: 10 x `min_sample_s`, at
    least one call), then `number` back-to-back calls timed (enough for `min_sample_s`, so
    timer resolution does not matter) and divided: the steady state of a loop that calls the
    implementation, as a training loop does, not its first calls after another
    implementation or the collector ran. One untimed call is not enough for that: after
    `gc.collect()` (about 50 ms of pointer chasing here) W3's first call is about 30% slower
    than its steady state, the second 7-9%, and it takes 5-8 calls to come within 2%; a
    5 ms busy loop, a 5 ms sleep or a sum over 128 MB do the same, less (benchmarks/warmup.py).
    The order of the implementations rotates every round. The cyclic garbage collector runs
    between samples, before the warm-up, not inside them.
    """
    warm_s = 10 * min_sample_s if warm_s is None else warm_s
    numbers = {}
    for impl in impls:  # warm up (caches, JIT compilation) and calibrate
        run_once(impl)
        t = _timed(impl, 1)
        numbers[impl.name] = max(1, min(10_000, int(min_sample_s / max(t, 1e-9))))
    samples: dict[str, list[float]] = {impl.name: [] for impl in impls}
    for r in range(repeats):
        k = r % len(impls)
        for impl in impls[k:] + impls[:k]:
            gc.collect()
            _warm(impl, warm_s)
            n = numbers[impl.name]
            samples[impl.name].append(_timed(impl, n) / n)
    return samples


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def format_time(s: float | None) -> str:
    if s is None or math.isnan(s):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if s >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"
