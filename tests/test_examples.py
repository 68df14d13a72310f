"""Every example runs (in --smoke mode where it has one) as a user would run it."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest

EXAMPLES = sorted((pathlib.Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path):
    args = [sys.executable, str(path)]
    if "--smoke" in path.read_text():
        args.append("--smoke")
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=path.parent)
    assert done.returncode == 0, f"{path.name} failed:\n{done.stdout}\n{done.stderr}"
