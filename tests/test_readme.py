"""The README stays true: the tour's printed output is what examples/tour.py prints."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_tour_output_in_readme_is_current():
    readme = (ROOT / "README.md").read_text()
    marker = "`python examples/tour.py` runs this and prints:\n\n```\n"
    start = readme.index(marker) + len(marker)
    shown = readme[start : readme.index("```", start)]
    printed = subprocess.run([sys.executable, str(ROOT / "examples" / "tour.py")],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert printed == shown
