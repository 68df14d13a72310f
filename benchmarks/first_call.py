"""Where dp.jit's first call goes: a per-phase breakdown of record, optimize and compile.

Owns the first-call measurement of W1, W2, W5 (the HVP) and W6 (100,000 ops): each case runs
in a fresh Python process with its own kernel disk cache (`DIFFPROG_CACHE_DIR`), first with
the folder empty (cold: numba compiles every kernel and writes it to disk), then in a second
process on the same folder (warm: numba loads the machine code). In the child, the phases
are timed by wrapping the functions that do them (each wrapper's time excludes the wrapped
phases called inside it, so the phases add up to the first call), in wall and CPU time:

  record       running f eagerly under the staging trace (dp.jit's own bookkeeping included)
  passes       compile.passes.optimize;    layout: compile.layout (matrix-product forms)
  partition    compile.partition's grouping; kernel source: compile.kernels.kernel_source
  fusion       the rest of compile.fusion (building the fused nodes, scheduling)
  check        running each new kernel's members unfused on sample data (fusion.agrees)
  numba front  numba's bytecode analysis and untyped passes (and its dispatcher glue)
  numba typing numba's type inference and the other typed passes
  numba lower  numba's lowering to LLVM IR (NativeLowering without the two below)
  LLVM opt     LLVM's function and module optimisation passes
  LLVM codegen LLVM's machine-code emission (ExecutionEngine.finalize_object)
  disk cache   writing the kernel's module (compile.kernels._load) and numba's index and
               object file, or reading them back (numba.core.caching)
  rows         compile.rows (softmax rows) without the numba phases inside it
  replay src   compile.codegen.generate: the replay's straight-line Python

The first replay (the second call) and the median of later replays are timed apart. `import
numba` is timed before the first call (a process pays it once; it is not in the phases).

    python benchmarks/first_call.py                       # W1, W2, W5, W6: cold, then warm
    python benchmarks/first_call.py --workloads W1 --json out.json

Run it on a quiet machine (it prints the load average); BLAS runs on one thread.
Imports: the standard library; the children import numpy, numba, diffprog and workloads.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKLOADS = ("W1", "W2", "W5", "W6")
PHASES = ("record", "passes", "layout", "partition", "kernel source", "fusion", "check",
          "numba front", "numba typing", "numba lower", "LLVM opt", "LLVM codegen",
          "disk cache", "rows", "replay src")  # fmt: skip


class Clock:
    """Exclusive wall and CPU time per phase: a phase entered inside another is charged to
    itself only."""

    def __init__(self) -> None:
        self.wall = dict.fromkeys(PHASES, 0.0)
        self.cpu = dict.fromkeys(PHASES, 0.0)
        self.stack: list[list] = []  # [phase, wall start, cpu start, children wall, children cpu]
        self.lowered = 0  # functions numba compiled (kernels and what they call)

    def wrap(self, owner, attr: str, phase: str | None = None, by_pass: bool = False) -> None:
        """Charge `owner.attr`'s calls to `phase` (`by_pass`: numba's PassManager._runPass,
        charged by the pass it runs)."""
        fn = getattr(owner, attr)
        clock = self

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            name = _numba_phase(args[2]) if by_pass else phase
            clock.lowered += name == "numba lower"
            clock.stack.append([name, time.perf_counter(), time.process_time(), 0.0, 0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                name, w0, c0, cw, cc = clock.stack.pop()
                w, c = time.perf_counter() - w0, time.process_time() - c0
                self.wall[name] += w - cw
                self.cpu[name] += c - cc
                if clock.stack:
                    clock.stack[-1][3] += w
                    clock.stack[-1][4] += c

        setattr(owner, attr, timed)


def _numba_phase(pss) -> str:
    name = type(pss).__name__
    if name == "NativeLowering":
        return "numba lower"
    module = type(pss).__module__.rsplit(".", 1)[-1]
    return "numba typing" if module == "typed_passes" else "numba front"


def _instrument(clock: Clock) -> None:
    from numba.core import caching, codegen, compiler_machinery, dispatcher

    from diffprog.compile import fusion, kernels, layout, partition, rows

    jit = importlib.import_module("diffprog.transforms.jit")  # the module, not dp.jit

    clock.wrap(jit.Jitted, "record", "record")
    clock.wrap(jit, "optimize", "passes")
    clock.wrap(layout, "choose_forms", "layout")
    clock.wrap(partition.Partition, "__init__", "partition")
    clock.wrap(kernels, "kernel_source", "kernel source")
    clock.wrap(fusion, "fuse", "fusion")
    clock.wrap(fusion, "agrees", "check")
    clock.wrap(kernels, "_load", "disk cache")
    clock.wrap(rows, "fuse_rows", "rows")
    clock.wrap(jit, "generate", "replay src")
    clock.wrap(dispatcher.Dispatcher, "_compile_for_args", "numba front")
    clock.wrap(compiler_machinery.PassManager, "_runPass", by_pass=True)
    clock.wrap(codegen.CPUCodeLibrary, "_optimize_functions", "LLVM opt")
    clock.wrap(codegen.CPUCodeLibrary, "_optimize_final_module", "LLVM opt")
    clock.wrap(codegen.JITCodeLibrary, "_finalize_specific", "LLVM codegen")
    clock.wrap(caching.Cache, "save_overload", "disk cache")
    clock.wrap(caching.Cache, "load_overload", "disk cache")


def _workload(name: str, tiny: bool = False):
    """(the function dp.jit compiles, its arguments) of workload `name` (`tiny`: small
    sizes, for the test suite's smoke run)."""
    import impls
    import numpy as np
    from workloads import chain, chain_input, loop, loop_input, mlp_problem

    import diffprog as dp
    import diffprog.numpy as dnp

    if name in ("W1", "W6"):
        n = 96 if tiny else 1000 if name == "W1" else 100_000
        return dp.value_and_grad(lambda x: dnp.sum(chain(x, n, dnp))), (chain_input(16),)
    if name == "W2":
        return dp.value_and_grad(lambda x: loop(x, 100 if tiny else 1000, dnp)), (loop_input(),)
    if name == "W5":
        params, x, labels, rows, v = mlp_problem((8, 16, 16, 4) if tiny else (64, 256, 256, 10), 8 if tiny else 128,
                                          np.float64)
        loss = impls.dnp_mlp_loss(x, labels, rows)
        return (lambda p, v: impls._value_hvp(loss, p, v)), (params, v)
    raise ValueError(f"unknown workload {name!r}; choose from {', '.join(WORKLOADS)}")


def _child(name: str, replays: int, tiny: bool) -> dict:
    """One first call of workload `name` in this process, phase by phase."""
    t0, c0 = time.perf_counter(), time.process_time()
    import numba  # noqa: F401 - its import, timed apart

    report = {"import numba": [time.perf_counter() - t0, time.process_time() - c0]}
    import diffprog as dp

    fn, args = _workload(name, tiny)
    clock = Clock()
    _instrument(clock)
    jitted = dp.jit(fn)
    t0, c0 = time.perf_counter(), time.process_time()
    jitted(*args)
    report["first call"] = [time.perf_counter() - t0, time.process_time() - c0]
    report["phases"] = {p: [clock.wall[p], clock.cpu[p]] for p in PHASES}
    t0, c0 = time.perf_counter(), time.process_time()
    jitted(*args)
    report["first replay"] = [time.perf_counter() - t0, time.process_time() - c0]
    times = []
    for _ in range(replays):
        t0 = time.perf_counter()
        jitted(*args)
        times.append(time.perf_counter() - t0)
    report["replay median"] = sorted(times)[len(times) // 2]
    report["peak rss MB"] = _peak_rss_kb() / 1024
    lowered = jitted.lower(*args)
    report["numba compiled"] = clock.lowered
    report["kernels"] = sum(1 for n in lowered.graph.body
                            if type(getattr(n, "prim", None)).__name__ == "Fused")
    return report


def _peak_rss_kb() -> int:
    with open("/proc/self/status") as f:  # VmHWM: this process's peak (Linux)
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def _spawn(name: str, cache: str, replays: int, tiny: bool) -> dict:
    env = dict(os.environ, DIFFPROG_CACHE_DIR=cache, OPENBLAS_NUM_THREADS="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")  # fmt: skip
    cmd = [sys.executable, os.path.abspath(__file__), "--child", name, str(replays)]
    cmd += ["--tiny"] if tiny else []
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE, env=env, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith("FIRSTCALL "):
            return json.loads(line[len("FIRSTCALL "):])
    raise RuntimeError(f"{name}: the child failed:\n{proc.stderr[-2000:]}")


def _print(name: str, how: str, r: dict) -> None:
    first_w, first_c = r["first call"]
    print(f"{name} {how}: first call {first_w:.2f} s wall, {first_c:.2f} s CPU; "
          f"{r['kernels']} kernels ({r['numba compiled']} numba compilations); import numba {r['import numba'][0]:.2f} s; first replay "
          f"{r['first replay'][0] * 1e3:.2f} ms, later replays {r['replay median'] * 1e3:.3f} ms; "
          f"peak RSS {r['peak rss MB']:.0f} MB")
    rest = first_w - sum(w for w, _ in r["phases"].values())
    for phase, (w, c) in r["phases"].items():
        if w >= 0.0005:
            print(f"    {phase:<14}{w:8.3f} s wall {c:8.3f} s CPU  {100 * w / first_w:5.1f}%")
    print(f"    {'(other)':<14}{rest:8.3f} s wall")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--replays", type=int, default=20, help="replays timed after the first")
    parser.add_argument("--json", help="write every measurement to this file")
    parser.add_argument("--tiny", action="store_true", help="small sizes: a smoke test")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("FIRSTCALL " + json.dumps(_child(args.child[0], int(args.child[1]), args.tiny)))
        return
    print(f"load average {os.getloadavg()[0]:.2f} at the start")
    results = {}
    for name in args.workloads.split(","):
        with tempfile.TemporaryDirectory() as cache:
            replays = 3 if name == "W6" else args.replays
            results[name] = {how: _spawn(name, cache, replays, args.tiny) for how in ("cold", "warm")}
        for how in ("cold", "warm"):
            _print(name, how, results[name][how])
    print(f"load average {os.getloadavg()[0]:.2f} at the end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.path[:0] = [HERE, os.path.dirname(HERE)]  # this checkout's diffprog, not an installed one
    main()
