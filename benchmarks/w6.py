"""W6: W1's chain at 10^5 and 10^6 ops: time, peak memory, and that it works at all.

Owns running each case in a fresh Python process, so its peak resident set size is its own:
VmHWM from /proc/self/status on Linux, not `getrusage(RUSAGE_SELF).ru_maxrss`, because Linux
carries ru_maxrss over from the parent across fork + exec (a child of a 1 GB run.py reports
at least 1 GB); ru_maxrss only where /proc is missing. Memory is reported
as that peak minus the peak of a baseline process that imported the same libraries and built
the same input but ran nothing: what the forward + backward pass itself cost. Each child
saves its gradient, which the parent compares with the hand-written one (so here the check
comes after the timing). A crash, a MemoryError or a timeout is a result, reported with
status 'error'; a wrong gradient is 'FAILED'. dp.jit runs the chains up to `JIT_MAX_OPS`:
its time is the replay's, its first call (record, optimize, compile) is reported apart, and
its peak memory includes that first call.
Run by run.py; `python benchmarks/w6.py --child IMPL N DEVICE REPEATS OUT` is one case.
Imports: the standard library; the children import numpy, diffprog and the peer measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
IMPLS = ("hand", "tape", "graph", "jit", "torch", "autograd")
JAX_REASON = "not run: eager costs ~100x a tape per op (W1); jit would unroll every op"
#: dp.jit runs only chains up to this length: its first call records, optimizes and compiles
#: every op (about 15-30 s at 10^5 ops), which at 10^6 would take most of the run
JIT_MAX_OPS = 100_000
JIT_REASON = f"not run: the first call records and compiles every op (run up to {JIT_MAX_OPS:,})"


def peak_rss_kb() -> int:
    """This process's peak resident set size in KiB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS


def _child(impl: str, n: int, device: str, repeats: int, out: str) -> None:
    import impls
    import numpy as np
    import peers
    from harness import run_once, to_numpy
    from workloads import chain_input

    xp = np
    if device == "gpu":
        import cupy as xp
    x = chain_input(16, xp)
    if impl in ("torch", "autograd"):
        loaded, _, skipped = peers.load([impl], device)
        if not loaded:
            sys.exit(f"{impl}: {skipped[impl]}")
        case = loaded[0].w1(x, n)[0]
    else:  # dp.jit's first call (record, optimize, compile) happens here, untimed
        case = impls.w1(x, n, xp, jit=impl == "jit")[("hand", "tape", "graph", "jit").index(impl)]
    times, result = [], None
    for _ in range(repeats):
        result = None  # free the previous run's results before the next one starts
        t0 = time.perf_counter()
        result = run_once(case)
        times.append(time.perf_counter() - t0)
    np.save(out, to_numpy(result[1]))
    report = {"rss_kb": peak_rss_kb(), "times": times, **case.info}
    if device == "gpu":
        report["gpu_pool_bytes"] = xp.get_default_memory_pool().total_bytes()
    print("W6RESULT " + json.dumps(report))


def _spawn(impl: str, n: int, device: str, repeats: int, out: str, timeout: float) -> dict:
    cmd = [sys.executable, os.path.join(HERE, "w6.py"), "--child", impl, str(n), device,
           str(repeats), out]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=HERE, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("W6RESULT "):
            return json.loads(line[len("W6RESULT "):])
    tail = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    if proc.returncode < 0:
        tail = f"killed by signal {-proc.returncode} (out of memory?)"
    return {"error": tail[:200]}


def run(sizes: list[int], names: list[str], device: str, repeats: int, timeout: float,
        labels: dict[str, str], tol: float = 1e-7) -> list[dict]:
    """Rows for W6: every implementation in `names` at every size in `sizes`."""
    import numpy as np
    from harness import max_rel_error

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        # Baselines: the same imports and input, and one 8-op run to load anything lazy.
        base = {name: _spawn(name, 8, device, 1, os.path.join(tmp, f"{name}-base.npy"), timeout)
                for name in names}
        for n in sizes:
            reps = repeats if n <= 100_000 else 1
            results = {}
            for name in names:
                if name == "jit" and n > JIT_MAX_OPS:
                    continue
                out = os.path.join(tmp, f"{name}-{n}.npy")
                results[name] = r = _spawn(name, n, device, reps, out, timeout)
                r["grad"] = out if "error" not in r else None
            ref = results["hand"]["grad"] if "hand" in results else None
            hand_t = _median(results.get("hand", {}).get("times"))
            for name in names:
                row = {"workload": f"W6 {_count(n)}", "impl": labels[name], "ops": n,
                       "role": name if name in ("hand", "tape", "graph", "jit") else "peer"}
                if name not in results:
                    row.update(status="n/a", reason=JIT_REASON)
                    rows.append(row)
                    continue
                r, b = results[name], base[name]
                if "error" in r or "error" in b:  # a result ("does it work at all?")
                    row.update(status="error", reason=r.get("error") or b.get("error"))
                    rows.append(row)
                    continue
                t = _median(r["times"])
                row.update(status="ok", seconds=t, samples=len(r["times"]), min_s=min(r["times"]),
                           us_per_op=t / n * 1e6,
                           peak_mb=(r["rss_kb"] - b["rss_kb"]) / 1024.0,
                           ratio=t / hand_t if hand_t else None)
                if "first_call_s" in r:
                    row["first_call_s"] = r["first_call_s"]
                if "gpu_pool_bytes" in r:
                    row["gpu_pool_mb"] = r["gpu_pool_bytes"] / 2**20
                if ref is not None and name != "hand":
                    err, where = max_rel_error(np.load(r["grad"]), np.load(ref))
                    row["max_rel_err"] = err
                    if not err <= tol:
                        row.update(status="FAILED",
                                   reason=f"gradient off by {err:.2e} (relative) at {where}")
                rows.append(row)
    return rows


def _median(xs: list[float] | None) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[len(xs) // 2] if len(xs) % 2 else 0.5 * (xs[len(xs) // 2 - 1] + xs[len(xs) // 2])


def _count(n: int) -> str:
    for div, suffix in ((1_000_000, "M"), (1_000, "k")):
        if n >= div and n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--child":
        sys.path.insert(0, HERE)
        _child(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6])
    else:
        sys.exit("w6.py is run by run.py: python benchmarks/run.py --workloads W6")
