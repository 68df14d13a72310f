"""Seeing what was recorded: `dp.make_graph(f)(*args)` traces `f` and returns its tape as a
`Graph`, with a printable summary, Graphviz DOT text and rendering.

Owns: `make_graph` and `Graph`. The summary counts records and primitives and the bytes the
tape holds for the backward pass; `to_dot()` draws inputs, constants and operations (boxes
labelled with the primitive and output shape), and draws records made by a backward pass
(graph extension, e.g. a `dp.grad` inside `f`) dashed and shaded, so the recorded backward
pass stands apart. Huge tapes are summarised: the DOT text keeps the first and last records
and one node standing for the rest. Nothing here is recursive in the tape's length.
Layer L5: imports L0-L4, transforms.core and debug (for source lines).
"""

from __future__ import annotations

import collections
import functools
import sys
import threading
from collections.abc import Callable
from typing import Any

from .ad import reverse
from .ad.reverse import EXTRA_OUTPUT, INPUT, ReverseTrace
from .core.trace import raw
from .debug import user_site
from .transforms.core import _record

class Graph:
    """A recorded tape. `str(graph)` is a summary; `to_dot()` is Graphviz DOT text."""

    def __init__(self, tape: list[Any], backward_slots: set[int], sites: dict[int, str]) -> None:
        self.tape = tape
        self.backward_slots = backward_slots
        self.sites = sites

    @property
    def records(self) -> list[tuple[int, Any]]:
        """(slot, record) of every operation, in execution order."""
        return [(i, r) for i, r in enumerate(self.tape) if r is not INPUT and r is not EXTRA_OUTPUT]

    def count_by_primitive(self) -> dict[str, int]:
        return dict(collections.Counter(r[0].name for _, r in self.records).most_common())

    def saved_bytes(self) -> int:
        """Bytes of the distinct arrays the tape keeps for the backward pass."""
        seen: dict[int, int] = {}
        for _, (_, _, vals, _, out) in self.records:
            for v in list(vals) + list(out if isinstance(out, tuple) else (out,)):
                r = raw(v)
                if hasattr(r, "nbytes"):
                    seen[id(r)] = int(r.nbytes)
        return sum(seen.values())

    def __str__(self) -> str:
        records = self.records
        inputs = sum(r is INPUT for r in self.tape)
        lines = [
            f"Graph: {len(records)} records on {inputs} inputs, "
            f"{len(self.backward_slots)} recorded from a backward pass, "
            f"{self.saved_bytes():,} bytes held for the backward pass",
        ]
        lines += [f"  {name:16} x {n}" for name, n in self.count_by_primitive().items()]
        return "\n".join(lines)

    __repr__ = __str__

    def to_dot(self, max_records: int = 2000) -> str:
        """Graphviz DOT text. Beyond `max_records`, the middle of the tape is one node."""
        records = self.records
        if len(records) > max_records:
            keep = max_records // 2
            shown = records[:keep] + records[-keep:]
            hidden = len(records) - 2 * keep
        else:
            shown, hidden = records, 0
        visible = {slot for slot, _ in shown}
        out = ["digraph diffprog {", "  rankdir=TB;", '  node [fontname="Helvetica"];']
        for slot, r in enumerate(self.tape):
            if r is INPUT:
                out.append(f'  n{slot} [shape=ellipse, style=filled, fillcolor="#d8ecff", '
                           f'label="input {slot}"];')  # fmt: skip
        if hidden:
            out.append(f'  hidden [shape=note, label="... {hidden} more records ..."];')
        constants = 0
        for slot, (prim, _, vals, slots, ans) in shown:
            first = ans[0] if isinstance(ans, tuple) else ans
            label = f"{prim.name}\\n{_shape_of(first)}"
            style = ('style="filled,dashed", fillcolor="#ffe9c6"' if slot in self.backward_slots
                     else 'style=filled, fillcolor="#f2f2f2"')  # fmt: skip
            tooltip = self.sites.get(slot, "").replace('"', "'")
            out.append(f'  n{slot} [shape=box, {style}, label="{label}", tooltip="{tooltip}"];')
            for s, v in zip(slots, vals):
                if s >= 0:
                    source = f"n{s}" if (s in visible or self.tape[s] is INPUT) else "hidden"
                    out.append(f"  {source} -> n{slot};")
                elif hasattr(raw(v), "shape") or isinstance(v, (int, float)):
                    constants += 1
                    out.append(f'  c{constants} [shape=plaintext, fontcolor="#777777", '
                               f'label="const {_shape_of(v)}"];')  # fmt: skip
                    out.append(f"  c{constants} -> n{slot} [color=\"#aaaaaa\"];")
        out.append("}")
        return "\n".join(out)

    def render(self, path: str, format: str = "png") -> str:  # noqa: A002
        """Write the graph as an image with the `graphviz` package (and Graphviz's dot)."""
        try:
            import graphviz
        except ImportError:
            raise ImportError(
                "Graph.render needs the graphviz package (pip install graphviz) and Graphviz's "
                "`dot` program; Graph.to_dot() gives the DOT text without them"
            ) from None
        return graphviz.Source(self.to_dot()).render(outfile=path, format=format, cleanup=True)


def make_graph(f: Callable[..., Any], argnums: Any = None) -> Callable[..., Graph]:
    """A function that traces `f` on its arguments and returns the recorded `Graph`.

    Floating leaves of every positional argument are watched (of `argnums` if given).

    >>> import numpy as np, diffprog as dp, diffprog.numpy as dnp
    >>> print(dp.make_graph(lambda x: dnp.sum(dnp.sin(x) * x))(np.ones(3)))
    Graph: 3 records on 1 inputs, 0 recorded from a backward pass, 80 bytes held for the backward pass
      sin              x 1
      multiply         x 1
      sum              x 1
    """

    @functools.wraps(f)
    def graph_of(*args: Any, **kwargs: Any) -> Graph:
        nums = range(len(args)) if argnums is None else ((argnums,) if isinstance(argnums, int) else argnums)
        me = threading.get_ident()
        notes: dict[int, tuple[set[int], dict[int, str]]] = {}  # id(trace) -> what we saw

        def observe(trace: ReverseTrace, slot: int) -> None:
            if trace.origin != "dp.make_graph" or threading.get_ident() != me:
                return
            backward_slots, sites = notes.setdefault(id(trace), (set(), {}))
            sites[slot] = user_site(sys._getframe(1))
            if _in_backward_sweep():
                backward_slots.add(slot)

        with reverse.observing(observe):
            trace, _, _, _ = _record(f, args, kwargs, nums, False, "dp.make_graph")
        backward_slots, sites = notes.get(id(trace), (set(), {}))
        return Graph(trace.tape, backward_slots, sites)

    return graph_of


def _in_backward_sweep() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code is reverse._sweep.__code__:
            return True
        frame = frame.f_back
    return False


def _shape_of(x: Any) -> str:
    shape = getattr(raw(x), "shape", None)
    return "scalar" if not shape else "x".join(str(n) for n in shape)
