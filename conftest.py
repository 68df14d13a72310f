"""pytest set-up shared by the tests and the docstring examples.

With DIFFPROG_SIMULATED_GPU set (tests/test_simulated_gpu.py), the simulated CuPy in
tests/simulated_gpu is put first on the path before diffprog is imported, so the gpu tests
run on it."""

import os
import sys
from pathlib import Path

import numpy as np
import pytest

if os.environ.get("DIFFPROG_SIMULATED_GPU"):
    sys.path.insert(0, str(Path(__file__).parent / "tests" / "simulated_gpu"))
    import cupy

    assert "simulated" in cupy.__version__, "the simulated CuPy must be the one imported"

import diffprog as dp  # noqa: E402
import diffprog.numpy as dnp  # noqa: E402


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace.update(np=np, dp=dp, dnp=dnp)
