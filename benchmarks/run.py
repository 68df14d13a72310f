"""diffprog's benchmarks: `python benchmarks/run.py` (see README, "Benchmarks").

Workloads W1-W6 (`workloads.py`), each run by diffprog in plain tape mode and in
graph-extension mode (`impls.py`), by a hand-written NumPy (or, with `--device gpu`, CuPy)
forward + backward of the same math, and by the peers that are installed (`peers.py`): all
in one process, every implementation's output verified against the hand-written one before
it is timed, then timed interleaved (`harness.py`), medians of many repeats. W6 runs each case
in a fresh process (`w6.py`) for its peak memory. Prints a table with the targets, writes
`results/latest.json` and `results/latest.png` (a bar chart of the ratios). Exits 1 if any
implementation's output failed verification.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time

import numpy as np

# PyTorch's OpenMP workers otherwise spin after every parallel region, competing with NumPy's
# BLAS threads in this one process; on a machine with few cores that turns a 3 us op into
# milliseconds. Passive waiting costs each parallel region a wake-up instead. Set before any
# peer is imported; an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import impls
import machine
import peers as peer_lib
import report
import w6
from harness import measure, median, run_once, to_numpy, verify
from workloads import chain_input, loop_input, mlp_problem

WORKLOADS = ("W1", "W2", "W3", "W4", "W5", "W6")
# Sizes: the (full), a smoke test of the whole command (--quick: W1-W3 and W5 at full
# size, W4 and W6 smaller), and a test-suite size (--tiny).
SIZES = {
    "full": {"W1": 1000, "W2": 1000, "W3": ((64, 256, 256, 10), 128),
             "W4": ((1024, 4096, 4096, 1024), 512), "W6": (100_000, 1_000_000)},
    "quick": {"W1": 1000, "W2": 1000, "W3": ((64, 256, 256, 10), 128),
              "W4": ((256, 1024, 1024, 256), 128), "W6": (10_000, 100_000)},
    "tiny": {"W1": 96, "W2": 100, "W3": ((8, 16, 16, 4), 8),
             "W4": ((16, 32, 32, 8), 8), "W6": (800, 8_000)},
}
for _sizes in SIZES.values():
    _sizes["W5"] = _sizes["W3"]  # W5 differentiates W3's loss twice
REPEATS = {"full": 51, "quick": 5, "tiny": 3}
THREAD_ENV = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "OPENBLAS_CORETYPE", "XLA_FLAGS")
NOISY = 2.0  # hand-written median / best above this flags the workload's timings as disturbed
TOL = {"float64": 1e-7, "float32": 2e-3}  # max |error| / max |reference|, per output leaf


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                    help="gpu: CuPy arrays, against hand-written CuPy")
    ap.add_argument("--no-malloc-tuning", action="store_true",
                    help="keep glibc's default malloc thresholds (see machine.tune_malloc)")
    ap.add_argument("--quick", action="store_true",
                    help="few repeats, W4 and W6 smaller: a smoke test of the whole command")
    ap.add_argument("--tiny", action="store_true",
                    help="tiny sizes and 3 repeats (the test suite's run); no verdict means much")
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help="comma-separated subset of " + ",".join(WORKLOADS))
    ap.add_argument("--repeats", type=int, default=None,
                    help="timed samples per implementation (W4 takes a fifth, at least 3)")
    ap.add_argument("--peers", default=",".join(peer_lib.NAMES),
                    help="peers to try, comma-separated, or 'none' (missing ones are skipped)")
    ap.add_argument("--out", default=os.path.join(HERE, "results"),
                    help="folder for latest.json and latest.png")
    args = ap.parse_args(argv)
    args.mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    args.workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    unknown = sorted(set(args.workloads) - set(WORKLOADS))
    if unknown:
        ap.error(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    args.peers = [] if args.peers == "none" else [p.strip() for p in args.peers.split(",")]
    bad = sorted(set(args.peers) - set(peer_lib.NAMES))
    if bad:
        ap.error(f"unknown peer(s) {bad}; choose from {list(peer_lib.NAMES)} or 'none'")
    return args


def build(key: str, size, xp, peers: list) -> tuple[list, float, int | None]:
    """(implementations, tolerance, op count or None) for workload `key`."""
    if key in ("W1", "W2"):
        x = chain_input(16, xp) if key == "W1" else loop_input(xp)
        make = impls.w1 if key == "W1" else impls.w2
        return make(x, size, xp) + [i for p in peers for i in getattr(p, key.lower())(x, size)], \
            TOL["float64"], size
    sizes, batch = size
    dtype = "float32" if key == "W4" else "float64"
    problem = mlp_problem(sizes, batch, dtype, xp)
    if key == "W5":
        return impls.w5(problem, xp) + [i for p in peers for i in p.w5(problem)], 1e-6, None
    return impls.w3(problem, xp) + [i for p in peers for i in p.w3(problem)], TOL[dtype], None


def run_workload(key: str, size, xp, peers: list, repeats: int, min_sample_s: float) -> list:
    candidates, tol, ops = build(key, size, xp, peers)
    # The hand-written outputs every other output is checked against: W5 has two, its HVP
    # and the gradient its ratio is taken to ('grad').
    refs = {_kind(i): to_numpy(run_once(i)) for i in candidates if _is_hand(i.name)}
    rows, timed = [], []
    for impl in candidates:
        row = {"workload": key, "impl": impl.name, "role": impl.role, "pair": impl.pair,
               **impl.info}
        rows.append(row)
        if impl.skip:
            row.update(status="n/a", reason=impl.skip)
            continue
        ok, err, msg = verify(impl, refs[_kind(impl)], tol)
        row.update(status="ok" if ok else "FAILED", max_rel_err=err, reason=msg or None)
        if ok:
            timed.append(impl)
    samples = measure(timed, repeats, min_sample_s) if timed else {}
    by_name = {r["impl"]: r for r in rows}
    for name, xs in samples.items():  # a median far above the best: the machine was busy
        if _is_hand(name) and len(xs) >= 3 and median(xs) > NOISY * min(xs):
            for r in rows:
                r["noisy"] = True
    for name, xs in samples.items():
        by_name[name].update(seconds=median(xs), samples=len(xs), min_s=min(xs), max_s=max(xs))
        if ops:
            by_name[name]["ops"] = ops
            by_name[name]["us_per_op"] = median(xs) / ops * 1e6
    for row in rows:
        hand = next((r for r in rows if _is_hand(r["impl"]) and _kind(r) == _kind(row)), None)
        if "seconds" in row and hand and "seconds" in hand:
            row["ratio"] = row["seconds"] / hand["seconds"]
        pair = by_name.get(row["pair"]) if row["pair"] else None
        if "seconds" in row and pair and "seconds" in pair:
            row["pair_ratio"] = row["seconds"] / pair["seconds"]
    return rows


def _kind(impl_or_row) -> str:
    role = impl_or_row["role"] if isinstance(impl_or_row, dict) else impl_or_row.role
    return "grad" if role == "grad" else "main"


def _is_hand(name: str) -> bool:
    return name.startswith("hand-written")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    t_start = time.perf_counter()
    tuned = False if args.no_malloc_tuning else machine.tune_malloc()
    xp = np
    if args.device == "gpu":
        try:
            import cupy as xp
        except ImportError:
            print("--device gpu needs CuPy: pip install -e '.[cuda12]' (or cuda13)")
            return 2
    sizes, repeats = SIZES[args.mode], args.repeats or REPEATS[args.mode]
    peers, versions, skipped = peer_lib.load(args.peers, args.device)
    info = machine.info(args.device, versions)
    print(machine.line(info))
    env = {k: os.environ.get(k) for k in THREAD_ENV + tuple(machine.MALLOC_ENV)}
    env["malloc_tuned"] = str(tuned)
    print("  " + " ".join(f"{k}={v}" for k, v in env.items() if v is not None))
    if info["load_average"][0] > 0.5:
        print(f"  note: load average {info['load_average'][0]:.2f} before starting: the CPU "
              "has been busy, timings may be noisy")
    for name, why in skipped.items():
        print(f"  peer {name} skipped: {why}")
    min_sample_s = 2e-3 if args.mode == "full" else 5e-4
    gc.collect()
    gc.freeze()  # setup's objects out of the collector's way: collections stay cheap
    rows = []
    for key in (w for w in WORKLOADS if w in args.workloads and w != "W6"):
        t0 = time.perf_counter()
        n = max(3, repeats // 5) if key == "W4" else repeats
        rows += run_workload(key, sizes[key], xp, peers, n, min_sample_s)
        print(f"  {key} done in {time.perf_counter() - t0:.1f} s", flush=True)
    if "W6" in args.workloads:
        t0 = time.perf_counter()
        # PyTorch and autograd are tapes too: W6 runs them; JAX is reported as not run.
        w6_peers = [p for p in peers if p.key in ("torch", "autograd")]
        names = ["hand", "tape", "graph", "jit"] + [p.key for p in w6_peers]
        labels = {"hand": impls.hand_name(xp), "tape": "diffprog tape",
                  "graph": "diffprog graph extension", "jit": "diffprog jit",
                  **{p.key: p.label for p in w6_peers}}
        rows += w6.run(list(sizes["W6"]), names, args.device, 3 if args.mode == "full" else 1,
                       timeout=600.0 if args.mode == "full" else 60.0, labels=labels)
        if any(p.key == "jax" for p in peers):
            rows.append({"workload": f"W6 {w6._count(sizes['W6'][-1])}", "impl": "JAX",
                         "role": "peer", "status": "n/a", "reason": w6.JAX_REASON})
        print(f"  W6 done in {time.perf_counter() - t0:.1f} s", flush=True)
    report.apply_targets(rows, args.device)
    print()
    print(report.table(rows, args.mode))
    noisy = sorted({r["workload"] for r in rows if r.get("noisy")})
    if noisy:
        print(f"\nwarning: in {', '.join(noisy)} the hand-written median is over {NOISY:g}x its "
              "best: other processes disturbed the timings (often multithreaded BLAS waiting for "
              "a busy core). Compare the best column, or rerun on a quiet machine or with "
              "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1.")
    os.makedirs(args.out, exist_ok=True)
    result = {
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join([os.path.basename(sys.executable), "benchmarks/run.py",
                             *(argv if argv is not None else sys.argv[1:])]),
        "mode": args.mode, "device": args.device, "repeats": repeats,
        "sizes": {k: v for k, v in sizes.items() if k in args.workloads},
        "machine": info, "peers_skipped": skipped,
        "seconds_total": time.perf_counter() - t_start,
        "load_average_end": list(os.getloadavg()),
        "env": env,
        "rows": rows,
    }
    json_path = os.path.join(args.out, "latest.json")
    with open(json_path, "w") as f:
        json.dump(result, f, indent=1, default=_jsonable)
    png = report.chart(rows, machine.line(info), os.path.join(args.out, "latest.png"))
    print(f"\nwrote {json_path}" + (f" and {png}" if png else " (no chart: matplotlib missing)"))
    failed = [r for r in rows if r["status"] == "FAILED"]
    for r in failed:
        print(f"FAILED verification: {r['workload']} {r['impl']}: {r.get('reason')}")
    return 1 if failed else 0


def _jsonable(x):
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    return str(x)


if __name__ == "__main__":
    sys.exit(main())
