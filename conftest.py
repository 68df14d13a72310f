"""pytest set-up shared by the tests and the docstring examples."""

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace.update(np=np, dp=dp, dnp=dnp)
