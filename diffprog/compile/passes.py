"""Optimizations on a recorded graph, before it is turned into a replay.

Owns: `optimize(graph, xp)`, which applies, until nothing changes:
- algebraic identities (`x * 1`, `x + 0`, `x - 0`, `x / 1`, `-(-x)`, a transpose of a
  transpose, a reshape, cast, broadcast or sum to the shape and dtype the value already has):
  the node goes and its output is the operand, but only where that output would have had
  exactly the operand's shape, dtype and Python type, so values are bit for bit the same;
- constant folding: a node whose operands are all constants runs once, now, and a guard on
  its value goes (it held when recorded, and the value cannot change);
- common subexpressions: a node that repeats an earlier one (same primitive, params and
  operands) reuses its outputs;
- dead-code elimination: nodes no output and no guard reads go (the forward values the
  backward pass never reads, the cotangents of inputs nobody asked for).
Each pass returns a new body; variables are renamed through one substitution map.
Memory planning is the code generator's (compile.codegen), which knows the final order.
Layer L3 (beside ad/): imports L0-L2 and compile.ir.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .codegen import ufunc_of
from .ir import Const, Graph, Guard, Node, Var, substitute


def optimize(graph: Graph, xp: Any) -> Graph:
    """`graph` simplified (see the module docstring); the input graph is not changed."""
    body = list(graph.body)
    outputs = list(graph.outputs)
    while True:
        size = len(body)
        body, outputs = _rewrite(body, outputs, xp)
        body = _dead_code(body, outputs)
        if len(body) == size:
            return Graph(list(graph.inputs), body, outputs)


def _rewrite(body: list, outputs: list, xp: Any) -> tuple[list, list]:
    """Identities, constant folding and common subexpressions in one forward walk."""
    renamed: dict[int, Any] = {}  # var id -> the Var or Const that now stands for it

    def get(v: Var) -> Any:
        return renamed.get(v.id, v)

    seen: dict[Any, list[Var]] = {}
    producer: dict[int, Node] = {}  # var id -> the kept node that makes it
    new_body = []
    for item in body:
        if type(item) is Guard:
            var = get(item.var)
            if type(var) is Const:  # folded from constants: the value the recording read, for
                continue  # good (a changed outside array records anew), so the guard holds
            new_body.append(Guard(var, item.how, item.expected, item.site))
            continue
        node = Node(item.prim, {k: substitute(v, get) for k, v in item.params.items()},
                    [get(a) if type(a) is Var else a for a in item.args], item.outs,
                    item.site, item.backward)  # fmt: skip
        same = _identity(node, producer)
        if same is not None:
            renamed[node.outs[0].id] = same
            continue
        folded = _fold(node, xp)
        if folded is not None:
            for out, value in zip(node.outs, folded):
                renamed[out.id] = Const(value)
            continue
        key = _key(node)
        if key is not None:
            earlier = seen.get(key)
            if earlier is not None:
                for out, prev in zip(node.outs, earlier):
                    renamed[out.id] = prev
                continue
            seen[key] = node.outs
        new_body.append(node)
        for out in node.outs:
            producer[out.id] = node
    return new_body, [get(o) if type(o) is Var else o for o in outputs]


def _dead_code(body: list, outputs: list) -> list:
    live = {o.id for o in outputs if type(o) is Var}
    kept = []
    for item in reversed(body):
        if type(item) is Node and not any(o.id in live for o in item.outs):
            continue
        live.update(v.id for v in item.inputs())
        kept.append(item)
    kept.reverse()
    return kept


# --- identities ----------------------------------------------------------------------------
def _is_const(a: Any, number: float) -> bool:
    """True when `a` is a constant equal to `number` everywhere (a scalar or a small array)."""
    if type(a) is not Const:
        return False
    v = a.value
    if type(v) in (int, float) or isinstance(v, np.generic):
        return bool(v == number)
    if type(v) is np.ndarray and v.size <= 64:
        return bool(np.all(v == number))
    return False


def _same_as(out: Var, a: Any) -> Any:
    """`a` if it is a Var of exactly `out`'s kind, shape and dtype, else None."""
    if type(a) is Var and (a.kind, a.shape, a.dtype) == (out.kind, out.shape, out.dtype):
        return a
    return None


def _identity(node: Node, producer: dict[int, Node]) -> Any:
    """The value this node leaves unchanged (an operand, or the operand of the node that made
    its operand: `-(-x)`, a transpose undone), if any."""
    if len(node.outs) != 1:
        return None
    name, args, out = _name(node), node.args, node.outs[0]
    if name == "multiply" and len(args) == 2:
        for i in (0, 1):
            if _is_const(args[1 - i], 1):
                return _same_as(out, args[i])
    elif name == "add" and len(args) == 2:
        for i in (0, 1):
            if _is_const(args[1 - i], 0):
                return _same_as(out, args[i])
    elif name in ("subtract", "divide") and len(args) == 2:
        if _is_const(args[1], 0 if name == "subtract" else 1):
            return _same_as(out, args[0])
    elif name in ("reshape", "astype", "broadcast_to", "sum_to_shape") and len(args) == 1:
        return _same_as(out, args[0])
    elif name == "fit_adjoint" and node.params.get("kind") == "array" and type(args[0]) is Var:
        inner = producer.get(args[0].id)  # a ufunc's result owns its memory: nothing to fit
        if inner is not None and ufunc_of(inner.prim) is not None and not inner.params:
            return _same_as(out, args[0])
    elif name in ("negative", "transpose") and len(args) == 1 and type(args[0]) is Var:
        inner = producer.get(args[0].id)
        if inner is None or _name(inner) != name:
            return None
        if name == "transpose":
            first, second = inner.params["axes"], node.params["axes"]
            if tuple(first[i] for i in second) != tuple(range(len(second))):
                return None
        return _same_as(out, inner.args[0])
    return None


#: Python operators named as the primitives that compute the same
_OPERATOR_NAMES = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "divide",
                   "neg": "negative"}  # fmt: skip


def _name(node: Node) -> str:
    """The node's primitive name; a Python operator's as the primitive's (`mul`: multiply)."""
    if node.prim.name == "operator":
        return _OPERATOR_NAMES.get(node.params["op"], "operator")
    return node.prim.name


def _fold(node: Node, xp: Any) -> tuple | None:
    """The node's outputs computed now, if every operand is a constant."""
    if not node.args or any(type(a) is not Const for a in node.args):
        return None
    try:
        out = node.prim.impl(xp, *(a.value for a in node.args), **node.params)
    except Exception:  # noqa: BLE001 - let the replay raise it where the program did
        return None
    return tuple(out) if node.prim.multiple_results else (out,)


def _key(node: Node) -> Any:
    """A hashable identity of the computation, or None (unhashable params)."""
    parts = []
    for a in node.args:
        if type(a) is Var:
            parts.append(("v", a.id))
        elif type(a.value) in (int, float, bool):
            parts.append(("n", type(a.value), a.value))
        else:
            parts.append(("c", id(a.value)))
    try:
        params = tuple(sorted((k, _hashable(v)) for k, v in node.params.items()))
        key = (node.prim, tuple(parts), params)
        hash(key)
    except TypeError:
        return None
    return key


def _hashable(v: Any) -> Any:
    if type(v) is Var:
        return ("v", v.id)
    if type(v) in (tuple, list):
        return (type(v), tuple(_hashable(x) for x in v))
    if type(v) is slice:
        return ("slice", _hashable((v.start, v.stop, v.step)))
    if isinstance(v, np.ndarray):
        return ("array", id(v))
    if isinstance(v, np.dtype):
        return ("dtype", v.str)
    return v
