"""The graph a staging trace records: variables, operations, guards, in execution order.

Owns: `Var` (a value the program computed or received, with the shape, dtype and Python type
it had when recorded), `Const` (a value captured from outside: a number, an array from a
closure), `Node` (one primitive applied to variables and constants, with its static params),
`Guard` (a concrete value the program read from a traced one to steer Python: a `bool` behind
an `if`, an `int` behind a loop bound; the replay checks it), `Fused` (the primitive of a node
that runs a group of elementwise nodes, and the guards on them, as one kernel), and `Graph`, which holds them as
a straight-line program with inputs and outputs. The graph is a Wengert list like the tape:
execution order is a topological order.

Static params may hold variables (an index tuple with a traced index array): `refs_in`
finds them and `substitute` rebuilds params with values, so passes and the code generator
see every use of a variable.
Layer L3 (beside ad/): imports L0-L2.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


class Var:
    """One value of the recorded program. `kind` is "float", "int", "bool" or "complex" (a
    Python number), "scalar" (a NumPy scalar) or "array"; shape and dtype are those seen
    while recording, and for an array its memory `layout`: "C" or "F" (contiguous) or "A"
    (any strides), with "r" after it when it was read-only (a compiled kernel is made for
    these)."""

    __slots__ = ("id", "shape", "dtype", "kind", "layout")

    def __init__(self, id: int, value: Any) -> None:  # noqa: A002
        self.id = id
        t = type(value)
        self.layout = ""
        if t is float or t is int or t is bool or t is complex:
            self.kind, self.shape, self.dtype = t.__name__, (), np.dtype(t)
        else:
            self.kind = "scalar" if isinstance(value, np.generic) else "array"
            self.shape, self.dtype = tuple(value.shape), value.dtype
            flags = getattr(value, "flags", None)
            if self.kind == "array" and flags is not None:
                self.layout = ("C" if flags.c_contiguous else "F" if flags.f_contiguous else "A") + (
                    "" if getattr(flags, "writeable", True) else "r")

    @property
    def name(self) -> str:
        return f"v{self.id}"

    def describe(self) -> str:
        if self.kind in ("float", "int", "bool", "complex"):
            return self.kind
        dims = "x".join(map(str, self.shape)) or "scalar"
        return f"{self.dtype}[{dims}]"

    def __repr__(self) -> str:
        return f"{self.name}:{self.describe()}"


class Const:
    """A value from outside the graph: a Python number, a NumPy or CuPy array, anything a
    kernel takes as a constant operand. Held by reference."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def describe(self) -> str:
        v = self.value
        if hasattr(v, "shape") and getattr(v, "ndim", 0) > 0:
            return f"const {v.dtype}[{'x'.join(map(str, v.shape))}]"
        return f"const {v!r}"

    def __repr__(self) -> str:
        return self.describe()


class Node:
    """`outs = prim(*args, **params)`; `site` is the user's line that made it, `backward`
    whether a derivative rule made it (a recorded backward pass)."""

    __slots__ = ("prim", "params", "args", "outs", "site", "backward")

    def __init__(self, prim: Any, params: dict, args: list, outs: list[Var], site: str = "",
                 backward: bool = False) -> None:  # fmt: skip
        self.prim = prim
        self.params = params
        self.args = args
        self.outs = outs
        self.site = site
        self.backward = backward

    def inputs(self) -> Iterator[Var]:
        """Every variable this node reads: its operands and those inside its params."""
        for a in self.args:
            if type(a) is Var:
                yield a
        for v in self.params.values():
            yield from refs_in(v)

    def __repr__(self) -> str:
        outs = ", ".join(map(repr, self.outs))
        args = ", ".join(a.name if type(a) is Var else a.describe() for a in self.args)
        params = "".join(f", {k}={_show(v)}" for k, v in self.params.items())
        return f"{outs} = {self.prim.name}({args}{params})"


class Guard:
    """A concrete value read from `var` while recording: `check(value) == expected` must
    hold at replay, or the recorded path is not the one the program takes this time.
    `how` names the read ("bool", "int", "index", "float", "value", or "shape": a shape the
    data decided, such as a boolean mask's selection)."""

    __slots__ = ("var", "how", "expected", "site")

    def __init__(self, var: Var, how: str, expected: Any, site: str) -> None:
        self.var = var
        self.how = how
        self.expected = expected
        self.site = site

    def inputs(self) -> Iterator[Var]:
        yield self.var

    def __repr__(self) -> str:
        shown = "<array>" if isinstance(self.expected, np.ndarray) else repr(self.expected)
        return f"guard {self.how}({self.var.name}) == {shown}"


class Fused:
    """The primitive of a node that computes `members` (Nodes) as one compiled `kernel`:
    the node's args are the values the members read from outside, its outs the members'
    results read outside, one per group of `bundles` (positions in the list of those
    results): the result itself, or for a group of several small arrays of one shape and
    dtype a stack of them (another kernel reads it as it is). `guards` (on a scalar kernel's
    values) are checked inside it."""

    __slots__ = ("members", "guards", "kernel", "source", "bundles")
    name = "fused"
    multiple_results = True

    def __init__(self, members: list[Node], guards: list[Guard], kernel: Any, source: str,
                 bundles: list[list[int]]) -> None:  # fmt: skip
        self.members = members
        self.guards = guards
        self.kernel = kernel
        self.source = source
        self.bundles = bundles


class Graph:
    """A recorded program: `inputs` (Vars), `body` (Nodes and Guards in execution order),
    `outputs` (Vars or Consts, the flattened result)."""

    def __init__(self, inputs: list[Var], body: list, outputs: list) -> None:
        self.inputs = inputs
        self.body = body
        self.outputs = outputs

    def nodes(self) -> list[Node]:
        return [n for n in self.body if type(n) is Node]

    def guards(self) -> list[Guard]:
        """Every guard in execution order, those a fused kernel checks included."""
        out = []
        for item in self.body:
            if type(item) is Guard:
                out.append(item)
            elif type(item.prim) is Fused:
                out.extend(item.prim.guards)
        return out

    def text(self) -> str:
        """The program, one line per node or guard, with the user's line beside it."""
        lines = [f"inputs: {', '.join(map(repr, self.inputs))}"]
        for item in self.body:
            lines.extend(_lines(item, "  "))
        outs = ", ".join(o.name if type(o) is Var else o.describe() for o in self.outputs)
        lines.append(f"outputs: {outs}")
        return "\n".join(lines)

    def to_dot(self) -> str:
        """Graphviz DOT text, drawn as dp.make_graph draws a tape: inputs as ellipses,
        operations as boxes (dashed and shaded when a derivative rule made them), constants
        in grey; guards as diamonds."""
        out = ["digraph diffprog {", "  rankdir=TB;", '  node [fontname="Helvetica"];']
        made: dict[int, str] = {}
        for i, v in enumerate(self.inputs):
            made[v.id] = f"i{i}"
            out.append(f'  i{i} [shape=ellipse, style=filled, fillcolor="#d8ecff", '
                       f'label="input {i}\\n{v.describe()}"];')  # fmt: skip
        for k, item in enumerate(self.body):
            name = f"n{k}"
            if type(item) is Guard:
                out.append(f'  {name} [shape=diamond, label="guard {item.how}\\n'
                           f'{_show(item.expected)}", tooltip="{item.site}"];')  # fmt: skip
            else:
                style = ('style="filled,dashed", fillcolor="#ffe9c6"' if item.backward
                         else 'style=filled, fillcolor="#f2f2f2"')  # fmt: skip
                label = f"{item.prim.name}\\n{item.outs[0].describe()}" if item.outs else item.prim.name
                out.append(f'  {name} [shape=box, {style}, label="{label}", tooltip="{item.site}"];')
                for o in item.outs:
                    made[o.id] = name
            for v in item.inputs():
                out.append(f"  {made[v.id]} -> {name};")
        for j, o in enumerate(self.outputs):
            out.append(f'  o{j} [shape=ellipse, label="output {j}"];')
            if type(o) is Var:
                out.append(f"  {made[o.id]} -> o{j};")
        out.append("}")
        return "\n".join(out)

    def __str__(self) -> str:
        return self.text()


def _lines(item: Any, indent: str) -> list[str]:
    """One item as text lines; a fused node as its outputs, then its members indented."""
    if type(item) is Node and type(item.prim) is Fused:
        outs = ", ".join(map(repr, item.outs))
        head = [f"{indent}{outs} = (one kernel:)"]
        inner = sorted([*item.prim.members, *item.prim.guards], key=_order)
        return head + [line for m in inner for line in _lines(m, indent + "    ")]
    tag = "  (backward)" if type(item) is Node and item.backward else ""
    site = f"    # {item.site}" if item.site else ""
    return [f"{indent}{item!r}{tag}{site}"]


def _order(item: Any) -> int:
    """Recording order: a node by its first output, a guard by the value it reads."""
    return item.outs[0].id if type(item) is Node else item.var.id + 0.5  # type: ignore[return-value]


def refs_in(value: Any) -> Iterator[Var]:
    """The Vars inside a param value (tuples, lists and slices are searched)."""
    t = type(value)
    if t is Var:
        yield value
    elif t is tuple or t is list:
        for v in value:
            yield from refs_in(v)
    elif t is slice:
        yield from refs_in((value.start, value.stop, value.step))
    elif t is dict:
        yield from refs_in(list(value.values()))


def substitute(value: Any, get: Callable[[Any], Any], cls: type = Var) -> Any:
    """`value` with every instance of `cls` inside (a Var, by default) replaced by `get(it)`;
    tuples, lists, slices and dicts are rebuilt around them."""
    t = type(value)
    if t is cls:
        return get(value)
    if t is tuple or t is list:
        return t(substitute(v, get, cls) for v in value)
    if t is slice:
        return slice(*(substitute(v, get, cls) for v in (value.start, value.stop, value.step)))
    if t is dict:
        return {k: substitute(v, get, cls) for k, v in value.items()}
    return value


def has_refs(value: Any) -> bool:
    return next(refs_in(value), None) is not None


def _show(v: Any) -> str:
    if type(v) is Var:
        return v.name
    if isinstance(v, np.ndarray):
        return f"<array {v.dtype}{list(v.shape)}>"
    if type(v) is tuple:
        return "(" + ", ".join(map(_show, v)) + ("," if len(v) == 1 else "") + ")"
    return repr(v)
