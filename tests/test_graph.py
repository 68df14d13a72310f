"""dp.make_graph: the recorded tape as a summary and as Graphviz DOT text."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp


def test_summary_counts_records_primitives_and_saved_bytes():
    graph = dp.make_graph(lambda x, y: dnp.sum(dnp.sin(x) * y + x))(np.ones(4), np.ones(4))
    assert graph.count_by_primitive() == {"sin": 1, "multiply": 1, "add": 1, "sum": 1}
    # x, y, sin(x), sin(x)*y, the sum's input and output: 5 arrays of 4 float64 and a scalar
    assert graph.saved_bytes() == 5 * 32 + 8
    assert str(graph).startswith("Graph: 4 records on 2 inputs, 0 recorded from a backward pass")


def test_dot_has_inputs_constants_and_labelled_operations():
    dot = dp.make_graph(lambda x: dnp.sum(x @ np.ones((3, 2)) * 2.0))(np.ones((5, 3))).to_dot()
    assert dot.startswith("digraph diffprog {") and dot.endswith("}")
    assert 'label="input 0"' in dot
    assert 'label="matmul\\n5x2"' in dot and 'label="sum\\nscalar"' in dot
    assert 'label="const 3x2"' in dot and 'label="const scalar"' in dot
    assert "n0 -> n1;" in dot


def test_a_recorded_backward_pass_is_drawn_dashed_with_source_lines():
    def f(x):
        g = dp.grad(lambda z: dnp.sum(dnp.tanh(z) * x))(x)  # graph extension
        return dnp.sum(g * g)

    graph = dp.make_graph(f)(np.ones(3))
    assert graph.backward_slots
    dot = graph.to_dot()
    dashed = re.findall(r'n(\d+) \[shape=box, style="filled,dashed"', dot)
    assert {int(s) for s in dashed} == graph.backward_slots
    assert "test_graph.py" in dot  # tooltips name the user's line


def test_a_huge_tape_is_summarised_without_recursion():
    def chain(x):
        for _ in range(100_000):
            x = x * 1.0000001
        return x

    graph = dp.make_graph(chain)(1.0)
    assert len(graph.records) == 100_000
    dot = graph.to_dot(max_records=1000)
    assert dot.count("shape=box") == 1000 and "... 99000 more records ..." in dot


@pytest.mark.skipif(importlib.util.find_spec("graphviz") is not None, reason="graphviz installed")
def test_render_without_graphviz_says_what_to_install():
    with pytest.raises(ImportError, match="pip install graphviz"):
        dp.make_graph(lambda x: x * 2.0)(1.0).render("/tmp/never.png")
