"""The gpu tests, run on the simulated CuPy (tests/simulated_gpu) on every machine.

A machine without a GPU skips the gpu tests; this runs all of them in a pytest subprocess
where the simulated CuPy (NumPy data behind CuPy's rules: no implicit host conversion,
synchronisations that raise under cupyx.allow_synchronize(False), two GPUs and a current
device) is the `cupy` imported. They must all run and pass: a skip there would mean a GPU
code path that CI no longer exercises. On a real GPU the same tests also run directly,
against CuPy itself (and tests/test_cupy_rules.py checks the simulator's rules there).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_gpu_test_passes_on_the_simulated_gpu():
    env = dict(os.environ, DIFFPROG_SIMULATED_GPU="1")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider", "-rs",
         "tests"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    out = run.stdout + run.stderr
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    assert run.returncode == 0, f"gpu tests on the simulated CuPy failed:\n{out[-6000:]}"
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 50, summary
    assert "skipped" not in summary, f"gpu tests skipped on the simulated CuPy:\n{out[-3000:]}"


def test_the_simulated_kernels_need_a_compiler_and_say_so(tmp_path, monkeypatch):
    """Without g++ the simulated ElementwiseKernel fails with a clear message (the CI
    machines have one: the gpu tests above then run every generated kernel)."""
    import importlib.util

    import pytest

    spec = importlib.util.spec_from_file_location(
        "simulated_native", ROOT / "tests" / "simulated_gpu" / "cupy" / "_native.py")
    native = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(native)
    monkeypatch.setenv("DIFFPROG_SIMULATED_KERNELS", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler")
    with pytest.raises(RuntimeError, match="no g\\+\\+ was found"):
        native.compile_source('extern "C" void k() {}')
    monkeypatch.delenv("CXX")
    with pytest.raises(native.CompileException, match="not_declared_anywhere"):
        native.compile_source('extern "C" void k() { not_declared_anywhere(); }')
    assert native.compile_source('extern "C" void k() {}').exists()
