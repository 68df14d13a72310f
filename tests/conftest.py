"""Fixtures shared by the tests: `backend`, each test once on NumPy and once on CuPy (marked
`gpu`, skipped with the reason where CuPy or a CUDA device is missing); see tests/backends.py."""

import pytest

from backends import BACKENDS, Backend

# The simulated CuPy is a package named `cupy`: importing it for doctests would shadow CuPy.
collect_ignore = ["simulated_gpu"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    return Backend(request.param)
