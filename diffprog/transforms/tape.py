"""The imperative tape: `with dp.Tape() as tape: x = tape.watch(x); y = f(x)`, then
`tape.gradient(y, x)`, in the manner of TensorFlow's GradientTape.

Owns: `Tape`, a reverse trace opened and closed by a `with` block, the values it watches,
and gradients of any pytree target with respect to any pytree of watched sources. Tapes
nest: an inner tape's `gradient`, taken while an outer tape is open, is recorded by the
outer one (graph extension), so second derivatives come from two tapes.
Layer L5: imports L0-L4 and transforms.core.
"""

from __future__ import annotations

import contextlib
from typing import Any

from .. import tree
from ..ad.boundary import Watched, adjoint_like, refuse_opaque_floats
from ..ad.reverse import ReverseTrace, ReverseTracer, backward, is_floating
from ..backend import ones_like
from ..core.gc_pause import Hold
from ..core.trace import Tracer, hidden, numpy_store_cause, open_trace, raw
from ..errors import DiffprogError
from .core import cotangent_seeds


class Tape:
    """Records the operations on watched values inside a `with` block.

    >>> import numpy as np, diffprog as dp
    >>> with dp.Tape() as tape:
    ...     x = tape.watch(np.array([1.0, 2.0]))
    ...     y = (x * x).sum()
    >>> tape.gradient(y, x)
    array([2., 4.])

    `persistent=True` allows several `gradient` calls (otherwise one, which frees the tape).
    """

    def __init__(self, persistent: bool = False) -> None:
        self.persistent = persistent
        self._trace: ReverseTrace | None = None
        self._context: contextlib.AbstractContextManager | None = None
        self._originals: dict[int, Any] = {}  # slot -> the leaf the user watched
        #: id(tracer) -> (the tracer, its slot when watched): `x[i] = v` rebinds the tracer
        #: to a new slot, but the adjoint wanted is the input's (as in dp.grad)
        self._watched: dict[int, tuple[Any, int]] = {}
        self._used = False
        self._hold: Hold | None = None  # the collector's pause, kept until gradient() runs

    def __enter__(self) -> Tape:
        if self._context is not None or self._used:
            raise DiffprogError("a dp.Tape can be entered once; make a new Tape")
        self._context = open_trace(ReverseTrace, "dp.Tape")
        self._trace = self._context.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._context is not None
        if exc[0] is None:  # see core.gc_pause: made before the recording's own pause ends
            self._hold = Hold()
        self._context.__exit__(*exc)
        cause = None if exc[1] is None else numpy_store_cause(exc[1])
        if cause is not None:  # NumPy's wrapper around our refusal of `a[i] = x`
            raise cause.with_traceback(exc[2]) from None

    def watch(self, value: Any) -> Any:
        """`value` (any pytree) with its floating leaves recorded from now on; use the
        returned value in the computation."""
        trace = self._trace
        if trace is None or not trace.alive:
            raise DiffprogError(
                "tape.watch() was called outside the tape's `with` block; watch values "
                "inside it: with dp.Tape() as tape: x = tape.watch(x); ..."
            )
        def wrap(i: int, v: Any) -> Any:
            if not (isinstance(v, ReverseTracer) and v._trace is trace):
                return trace.watch(v)
            if v.slot in self._originals:  # watched already: it stays itself
                return v
            raise DiffprogError(
                f"tape.watch: the value{tree.keystr(tree.flatten_with_path(value)[0][i][0])} "
                "was computed on this tape, and gradients are taken with respect to watched "
                "inputs only; watch the values it is computed from (or watch it before "
                "computing it)"
            )

        watched = Watched(value, wrap, lambda: "watched value")
        for leaf, tracer, slot in zip(watched.leaves, watched.tracers, watched.slots):
            if slot is not None and slot not in self._originals:
                self._originals[slot] = leaf
                self._watched[id(tracer)] = (tracer, slot)
        return watched.tree

    def gradient(self, target: Any, sources: Any, output_gradients: Any = None) -> Any:
        """d target / d sources, shaped like `sources` (a pytree of watched values).

        `target` may be any pytree; `output_gradients` (its structure) weighs its leaves,
        ones by default, so a non-scalar target gives the gradient of its sum.
        """
        trace = self._trace
        if trace is None:
            raise DiffprogError("tape.gradient() needs a tape that recorded something: use "
                                "it after `with dp.Tape() as tape:`")  # fmt: skip
        if self._used:
            raise DiffprogError(
                "this dp.Tape is not persistent and its gradient was already taken (that "
                "freed it); create it with dp.Tape(persistent=True) to call gradient() again"
            )
        target = tree.map(lambda t: _below_closed_tapes(t, trace), target)
        refuse_opaque_floats(tree.leaves(target), target, "tape.gradient: the target")
        if output_gradients is None:
            output_gradients = tree.map(_ones_or_none, target)
        seeds = cotangent_seeds(trace, target, output_gradients, "output_gradients", "target")
        try:
            with hidden(trace):  # the sweep runs below the open tape (custom rules allocate there)
                cts = backward(trace.tape, seeds)
        finally:
            if self._hold is not None:
                self._hold.release()
        if not self.persistent:
            self._used = True
            trace.tape = []  # free the records and their residuals
        return self._adjoints(trace, sources, cts)

    def _adjoints(self, trace: ReverseTrace, sources: Any, cts: list[Any]) -> Any:
        def adjoint(path: Any, s: Any) -> Any:
            if not is_floating(s):  # a constant: no adjoint
                return None
            if not (isinstance(s, ReverseTracer) and s._trace is trace):
                raise DiffprogError(
                    f"source{tree.keystr(path)} was not watched by this tape; pass values "
                    "returned by tape.watch(...)"
                )
            entry = self._watched.get(id(s))
            slot = entry[1] if entry is not None and entry[0] is s else s.slot
            if slot not in self._originals:
                raise DiffprogError(
                    f"source{tree.keystr(path)} was computed on the tape, not watched; take "
                    "gradients with respect to values returned by tape.watch(...)"
                )
            return adjoint_like(cts[slot], self._originals[slot])

        pairs, treedef = tree.flatten_with_path(sources)
        return tree.unflatten(treedef, [adjoint(p, s) for p, s in pairs])


def _below_closed_tapes(x: Any, trace: ReverseTrace) -> Any:
    """`x` without the layers of the closed traces above `trace`: a value an inner tape
    recorded, its block closed, is to the outer tape the value that tape recorded (it was
    taken for a constant, its gradient silently zero)."""
    while isinstance(x, Tracer) and x._trace.level > trace.level and not x._trace.alive:
        x = x.value
    return x


def _ones_or_none(t: Any) -> Any:
    if not is_floating(t):
        return None
    r = raw(t)
    return ones_like(r) if hasattr(r, "shape") else 1.0
