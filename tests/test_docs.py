"""The generated docs stay true: docs/numpy_coverage.md says `yes` exactly for the NumPy
functions and ufuncs that dispatch on tracers (rows of NumPy versions other than the one
installed are left alone)."""

from __future__ import annotations

import importlib.util
import pathlib
import re

DOCS = pathlib.Path(__file__).resolve().parents[1] / "docs"


def _generator():
    spec = importlib.util.spec_from_file_location("numpy_coverage", DOCS / "numpy_coverage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_numpy_coverage_table_is_current():
    written = dict(re.findall(r"^\| `([\w.]+)` \| (yes|with `like=x` only|-) \|$",
                              (DOCS / "numpy_coverage.md").read_text(), re.M))
    function_rows, ufunc_rows = _generator().rows()
    stale = [
        name
        for name, ok in function_rows + ufunc_rows
        if name in written and (written[name] != "-") != ok
    ]
    assert not stale, f"regenerate with `python docs/numpy_coverage.py`: {stale}"


def test_vmap_coverage_table_is_current():
    spec = importlib.util.spec_from_file_location("vmap_coverage", DOCS / "vmap_coverage.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (DOCS / "vmap_coverage.md").read_text() == module.text(), (
        "regenerate with `python docs/vmap_coverage.py`"
    )
