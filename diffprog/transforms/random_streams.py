"""What a traced function can draw random numbers from, and where each stream stands.

Owns: finding the NumPy random generators a function may draw from (NumPy's global one, those
among its arguments, in its closure and in the globals its code names), reading and restoring
their positions, and comparing two positions. dp.jit uses them to see that a recording drew
(a replay would repeat the draws), dp.checkpoint to draw the forward pass's numbers again in
its recomputation.
Layer L5: imports numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

GENERATORS = (np.random.Generator, np.random.RandomState)


def draw_state(g: Any) -> Any:
    """Where a random generator (np.random itself: the global one) stands in its stream."""
    if isinstance(g, np.random.Generator):
        return g.bit_generator.state
    return g.get_state(legacy=False)


def generators_of(f: Callable[..., Any], leaves: list[Any]) -> list[Any]:
    """The random generators `f` may draw from that can be seen: NumPy's global one, those
    among its arguments (`leaves`), in its closure and in the globals its code names (not
    those of the functions it calls)."""
    seen = list(leaves)
    while f is not None:  # f, and the function it wraps (functools.wraps: dp.vmap's)
        seen += [c.cell_contents for c in getattr(f, "__closure__", None) or () if _filled(c)]
        code, names = getattr(f, "__code__", None), getattr(f, "__globals__", {})
        seen += [names[n] for n in code.co_names if n in names] if code is not None else []
        f = getattr(f, "__wrapped__", None)
    found = [np.random]
    for g in seen:
        if isinstance(g, GENERATORS) and not any(g is h for h in found):
            found.append(g)
    return found


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # a cell not yet bound
        return False
    return True


def set_draw_state(g: Any, state: Any) -> None:
    """Put a random generator back where `draw_state` found it."""
    if isinstance(g, np.random.Generator):
        g.bit_generator.state = state
    else:
        g.set_state(state)


def same_state(a: Any, b: Any) -> bool:
    """Whether two positions `draw_state` read are the same (nested dicts of arrays)."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, np.ndarray):
        return bool(np.array_equal(a, b))
    return bool(a == b)
