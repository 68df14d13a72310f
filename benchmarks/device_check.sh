#!/usr/bin/env bash
# The GPU check of issue 16 (fused CuPy kernels, CUDA-graph replays), prepared for a lent
# GPU machine (the `device` tool's nvidia-h200: python3 3.12 with cupy-cuda13x, numba, numpy,
# pytest; no network, no optree). About 6 minutes; progress on stdout, logs under $OUT.
#
# 1. Here, once, with network, from the repository root (the checkout the device tool sends:
#    the session's own, not a helper's worktree):
#        bash benchmarks/device_check.sh --fetch-wheels
#    downloads the wheels of optree and typing_extensions for CPython 3.12 on x86-64 Linux
#    (about 0.5 MB) into .whl/ and adds /.whl/ to
#    .git/info/exclude (the wheels travel through `carry`, not git).
# 2. On the device (run, from the repository root):
#        run(command="bash benchmarks/device_check.sh", carry=[".whl"], timeout_s=480)
#    It installs the wheels into /tmp/site (no index, no network), puts the repository on
#    PYTHONPATH (diffprog runs from the source tree), checks for a CUDA device, then runs
#      a. the fusion and CUDA-graph gpu tests on real CuPy (test_cupy_rules, test_gpu_fusion,
#         test_cuda_graphs, test_jit), at most 2.5 min (CuPy compiles each kernel once);
#      b. benchmarks/run.py --device gpu, W1-W4 with the jit columns (with and without the
#         CUDA graph), at most 2.5 min: the issue's targets are W1 jit <= 2.5 us/op and W3/W4 jit
#         <= 1.05x hand-written CuPy;
#      c. the rest of the gpu suite (pytest -m gpu), in what is left of 6 minutes.
#    Each step has a time limit; a step that fails or times out is reported and the next
#    runs. Logs: $OUT/tests-fusion.log, $OUT/bench.log (+ bench/latest.json, latest.png),
#    $OUT/tests-gpu.log, $OUT/summary.txt.
# Exit status: 0 all passed; 1 a step failed; 3 no CUDA device here (nothing checked).
# Off the device, to try the script: PYTHON picks the interpreter (default python3), a
# PYTHONPATH given is kept after the script's own, WHEEL_DIR replaces .whl, SITE replaces
# /tmp/site, BENCH_ARGS replaces the benchmark's sizes (default "--workloads W1,W2,W3,W4
# --repeats 15"). Through all steps on the simulated CuPy:
#   PYTHON=.venv/bin/python PYTHONPATH=$PWD/tests/simulated_gpu DIFFPROG_SIMULATED_GPU=1 \
#     BENCH_ARGS="--tiny --workloads W1,W3,W4" bash benchmarks/device_check.sh
set -u
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
SITE=${SITE:-/tmp/site}  # where the wheels are installed
WHL=${WHEEL_DIR:-.whl}  # where they are
WHEELS="optree==0.20.0 typing_extensions==4.16.0"  # not on the device image (optree), or too old maybe

if [ "${1:-}" = "--fetch-wheels" ]; then
  exclude=$(git rev-parse --git-path info/exclude)
  mkdir -p "$(dirname "$exclude")"
  grep -qxF "/.whl/" "$exclude" 2>/dev/null || echo "/.whl/" >> "$exclude"
  exec python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl $WHEELS
fi

export PYTHONUNBUFFERED=1
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
start=$(date +%s)
say() { echo "== [$(( $(date +%s) - start ))s] $*" | tee -a "$OUT/summary.txt"; }
status=0

if ls "$WHL"/*.whl >/dev/null 2>&1; then
  say "installing $(ls "$WHL" | tr '\n' ' ')into $SITE"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHL"/*.whl || { say "installing the wheels failed"; exit 1; }
  export PYTHONPATH=$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}
else
  say "no wheels in $WHL/ (see --fetch-wheels): using the interpreter's own packages"
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi

"$PY" - <<'EOF' 2>&1 | tee -a "$OUT/summary.txt"
import sys
try:
    import cupy
    n = cupy.cuda.runtime.getDeviceCount()
    props = cupy.cuda.runtime.getDeviceProperties(0)
    print(f"CuPy {cupy.__version__}, {n} CUDA device(s): {props['name'].decode()}, "
          f"CUDA runtime {cupy.cuda.runtime.runtimeGetVersion()}")
except Exception as e:  # no CuPy, no driver, no device
    print(f"no CUDA device: {type(e).__name__}: {e}")
    sys.exit(3)
import diffprog, numba, numpy, optree
print(f"Python {sys.version.split()[0]}, NumPy {numpy.__version__}, numba {numba.__version__}, "
      f"optree {optree.__version__}, diffprog from {diffprog.__file__}")
EOF
case ${PIPESTATUS[0]} in
  0) ;;
  3) say "no CUDA device: the GPU checks did not run"; exit 3 ;;
  *) say "the environment check failed (see above)"; exit 1 ;;
esac

step() {  # step NAME SECONDS LOG COMMAND...
  local name=$1 limit=$2 log=$3; shift 3
  say "$name (at most ${limit}s, log $log)"
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$log" 2>&1
  local rc=$?
  tail -n 25 "$OUT/$log"
  if [ $rc -eq 0 ]; then say "$name: passed"; else
    say "$name: FAILED (exit $rc$( [ $rc -ge 124 ] && echo ', time limit' ))"; status=1; fi
}

FUSION_TESTS="tests/test_cupy_rules.py tests/test_gpu_fusion.py tests/test_cuda_graphs.py tests/test_jit.py"
step "fusion and CUDA-graph tests on CuPy" 150 tests-fusion.log \
  "$PY" -m pytest -q -m gpu -p no:cacheprovider -rs $FUSION_TESTS
step "benchmarks W1-W4 on the GPU" 150 bench.log \
  "$PY" benchmarks/run.py --device gpu ${BENCH_ARGS:---workloads W1,W2,W3,W4 --repeats 15} \
  --peers none --out "$OUT/bench"
left=$(( 360 - ($(date +%s) - start) ))
if [ $left -gt 30 ]; then
  ignore=$(for t in $FUSION_TESTS; do printf -- "--ignore=%s " "$t"; done)
  step "the rest of the gpu tests" $left tests-gpu.log \
    "$PY" -m pytest -q -m gpu -p no:cacheprovider -rs $ignore tests
else
  say "no time left for the rest of the gpu tests"
fi
say "done: status $status (logs in $OUT)"
exit $status
