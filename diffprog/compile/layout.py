"""Matrix-product forms, and the memory layouts they lead to, chosen per replay (NumPy).

Owns: `choose_forms(graph)`. A product `a @ b` of 2-D float matrices can also be computed as
`(b.T @ a.T).T`: the same BLAS routine on the transposed problem, whose result is
column-major (F). Which is faster depends on the BLAS, its kernels and the shapes (OpenBLAS
0.3.31's Haswell kernels: 128x256 @ 256x256 about 10% faster transposed; its SkylakeX
kernels: the plain form). Each product of MIN_FLOPS to MAX_FLOPS whose F result could only
reach products, 2-D transposes, sums to 1-D and elementwise operations whose results do
the same (never an output, never another reader: no copy back to pay) is timed once in both
forms on sample operands of its shapes, dtype and layouts (interleaved; cached per process
by that key). An elementwise node the result's layout reaches (a reader of its shape,
theirs, ...) that combines it with an operand of its shape laid out the other way (as far as
known: values laid out before and what follows from them, not a product still to be laid
out) reads one of them across its rows: each form is charged that, the time of a transposing
copy of the result's shape (measured once per shape and dtype; 128x256 float64: 26 us, about
what such a reader loses, against a product whose two forms differ by 1 us). The transposed
form is kept when it then costs less by MARGIN; within MARGIN, the form most such nodes match.

Layouts then follow the graph as NumPy gives them: an elementwise result is F when every
operand of its shape is F (a fused kernel then loops and stores in F order: compile.kernels),
a 2-D transpose swaps C and F. Any other reader of a value whose layout changed, and the
graph's outputs, get it in its recorded layout (one `xp.ascontiguousarray` copy per value,
made where F spread through elementwise results to such a reader): results are laid out
as eager ones are. `Var.layout` carries the decisions to fusion and the code generator (which writes
a product whose result is F in the transposed form, and reuses buffers of the same layout
only). `DIFFPROG_MATMUL_FORM=plain` or `transposed` replaces the timing (tests).
Layer L3 (beside ad/): imports L0-L2 (core.primitive) and compile.ir, codegen, kernels.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

import numpy as np

from ..core.primitive import Primitive
from .codegen import ufunc_of
from .ir import Graph, Node, Var, substitute
from .kernels import dtype_of, scalar_op

#: products of fewer flops are not worth timing; of more, timing costs more than a ms
MIN_FLOPS, MAX_FLOPS = 64_000, 50_000_000
#: the transposed form must be this much faster (its best time against the plain one's)
MARGIN = 0.03
#: the largest array whose transposing copy is timed as it is (a bigger one: a sample's, scaled)
ACROSS_SAMPLE = 1 << 20

#: a value brought back to C order for a reader that expects the recorded layout
_recorded = Primitive("ascontiguousarray", lambda xp, x: xp.ascontiguousarray(x))

_timed: dict[tuple, tuple] = {}  # (shapes, dtype, layouts) -> (plain, transposed) seconds
_across: dict[tuple, float] = {}  # (shape, dtype) -> seconds to read such an array across rows


def choose_forms(graph: Graph) -> Graph:
    """`graph` with the faster form of each product chosen (module docstring). Its
    variables' layouts are updated in place; a new graph when conversions were needed."""
    if not any(type(item) is Node and _is_product(item) for item in graph.body):
        return graph  # nothing to choose (an elementwise chain): no walk
    forced = _forced_form()
    readers: dict[int, list[Node]] = {}
    producer: dict[int, Node] = {}
    for item in graph.body:
        for v in item.inputs():
            readers.setdefault(v.id, []).append(item)
        if type(item) is Node:
            producer.update((o.id, item) for o in item.outs)
    outputs = {o.id for o in graph.outputs if type(o) is Var}
    recorded: dict[int, str] = {}  # var id -> its recorded layout, for the vars changed
    body: list[Any] = []
    back: dict[int, Var] = {}  # changed var id -> the same value in its recorded layout
    made = [o.id for n in graph.body if type(n) is Node for o in n.outs]
    next_id = 1 + max([v.id for v in graph.inputs] + made, default=0)

    def as_recorded(v: Var) -> Var:
        nonlocal next_id
        if v.id not in back:
            copy = Var.__new__(Var)
            copy.id, copy.shape, copy.dtype, copy.kind = next_id, v.shape, v.dtype, v.kind
            copy.layout = recorded[v.id]
            next_id += 1
            body.append(Node(_recorded, {}, [v], [copy]))
            back[v.id] = copy
        return back[v.id]

    for item in graph.body:
        if type(item) is not Node:
            body.append(item)
            continue
        layout = _layout_after(item, recorded)
        if layout is None:  # a reader that expects its operands as recorded
            item = _reading(item, recorded, as_recorded)
        elif _is_product(item) and _candidate(item, readers, outputs):
            better = forced == "transposed" if forced else _transposed_better(item, readers, producer)
            layout = "F" if better else "C"
        out = item.outs[0] if len(item.outs) == 1 else None
        if layout and out is not None and layout != out.layout[:1]:
            recorded[out.id] = out.layout
            out.layout = layout + out.layout[1:]
        for o in item.outs:  # laid out: its layout is known from now on
            producer.pop(o.id, None)
        body.append(item)
    if not recorded:
        return graph
    outs = [as_recorded(o) if type(o) is Var and o.id in recorded else o for o in graph.outputs]
    return Graph(list(graph.inputs), body, outs)


def _reading(node: Node, changed: dict[int, str], as_recorded: Any) -> Node:
    """`node` reading its changed operands (params included) in their recorded layouts."""

    def get(v: Var) -> Var:
        return as_recorded(v) if v.id in changed else v

    params = {k: substitute(v, get) for k, v in node.params.items()}
    args = [get(a) if type(a) is Var else a for a in node.args]
    return Node(node.prim, params, args, node.outs, node.site, node.backward)


def _is_product(node: Node) -> bool:
    """Whether `node` is NumPy's `matmul` of two operands (as a function or as `@`)."""
    if node.prim.name == "operator":
        return node.params["op"] == "matmul"
    return not node.params and ufunc_of(node.prim) == "matmul" and len(node.args) == 2


def _elementwise(node: Node) -> bool:
    """Whether `node` computes per element, as NumPy's ufuncs (fused or not) do."""
    if len(node.outs) != 1:
        return False
    op = scalar_op(node) or (ufunc_of(node.prim) if not node.params else None)
    return op is not None and op not in ("sum", "sum_to_shape", "matmul")


def _shape(a: Any) -> tuple:
    return a.shape if type(a) is Var else np.shape(a.value)


def _layout_of(a: Any) -> str:
    """"C", "F", "A" (other strides) or, for a constant, "B" when it is a broadcast view
    (a zero stride: NumPy's ufuncs follow their other operands' order)."""
    if type(a) is Var:
        return a.layout[:1]
    flags = getattr(a.value, "flags", None)
    if flags is None:
        return ""
    if 0 in a.value.strides and a.value.size > 1:
        return "B"
    return "C" if flags.c_contiguous else "F" if flags.f_contiguous else "A"


def _layout_after(node: Node, changed: dict[int, str]) -> str | None:
    """The layout of `node`'s result given its operands' (current) layouts: "C" or "F";
    "" when it does not depend on them (nothing changed, a scalar, a reduction to 1-D);
    None when `node` must read its changed operands as recorded."""
    touched = [v for v in node.inputs() if v.id in changed]
    if _is_product(node):  # NumPy's product writes a new C array (whichever layouts it
        out = node.outs[0]  # reads); a scalar or a vector has no order to change
        return "C" if out.kind == "array" and _two_dims(out.shape) else ""
    if not touched:
        return ""
    out = node.outs[0] if len(node.outs) == 1 else None
    if out is not None and scalar_op(node) in ("sum", "sum_to_shape"):
        return "" if not _two_dims(out.shape) else None  # a result whose layout is moot
    if out is None or out.kind != "array":
        return None
    if node.prim.name == "transpose" and len(out.shape) == 2 and node.args[0].kind == "array":
        return {"C": "F", "F": "C"}.get(node.args[0].layout[:1])
    if not _elementwise(node):
        return None
    full = [_layout_of(a) for a in node.args if _shape(a) == out.shape and _layout_of(a) != "B"]
    if any(lay not in ("C", "F") for lay in full):
        return None  # NumPy's choice for strided operands is its own: keep the recorded ones
    return "F" if full and all(lay == "F" for lay in full) and _two_dims(out.shape) else "C"


def _two_dims(shape: tuple) -> bool:
    """Whether C and F order differ for this shape (at least two dimensions above 1)."""
    return sum(n > 1 for n in shape) >= 2


def _candidate(node: Node, readers: dict[int, list[Node]], outputs: set[int]) -> bool:
    """Whether the product's form may be chosen: 2-D float operands in C or F order, flops
    in range, a result whose F order cannot reach an output or a reader that wants its
    operands as recorded (a copy back would cost what the form saves)."""
    a, b = node.args
    out = node.outs[0]
    if len(out.shape) != 2 or not _two_dims(out.shape) or out.dtype not in (np.float32, np.float64):
        return False
    if any(len(_shape(x)) != 2 or _layout_of(x) not in ("C", "F") or dtype_of(x) != out.dtype
           for x in (a, b)):  # fmt: skip
        return False
    return MIN_FLOPS <= _flops(node) <= MAX_FLOPS and _stays_inside(out, readers, outputs, 32)


def _stays_inside(v: Var, readers: dict[int, list[Node]], outputs: set[int], budget: int) -> bool:
    """Whether an F `v` reaches only products, transposes, sums to a shape whose order is
    moot and elementwise operations whose results (which may be F) do the same, within
    `budget` elementwise results."""
    todo, seen = [v], {v.id}
    while todo:
        v = todo.pop()
        if v.id in outputs:
            return False
        for r in readers.get(v.id, ()):
            if type(r) is not Node:
                continue  # a guard reads values, in any layout
            if _is_product(r) or (r.prim.name == "transpose" and r.args[0] is v):
                continue
            if scalar_op(r) in ("sum", "sum_to_shape") and not _two_dims(r.outs[0].shape):
                continue
            if not _elementwise(r):
                return False
            out = r.outs[0]
            if _two_dims(out.shape) and out.id not in seen:
                budget -= 1
                if budget < 0:
                    return False
                seen.add(out.id)
                todo.append(out)
    return True


def _flops(node: Node) -> int:
    (m, k), n = _shape(node.args[0]), node.outs[0].shape[1]
    return 2 * m * k * n


def _forced_form() -> str:
    """"plain" or "transposed" as DIFFPROG_MATMUL_FORM says, or "" (time both forms)."""
    forced = os.environ.get("DIFFPROG_MATMUL_FORM", "")
    if forced not in ("", "plain", "transposed"):
        raise ValueError(f"DIFFPROG_MATMUL_FORM={forced!r}: expected 'plain', 'transposed' "
                         "or unset (time both forms)")
    return forced


def _transposed_better(node: Node, readers: dict[int, list[Node]],
                        producer: dict[int, Node]) -> bool:  # fmt: skip
    """Whether the transposed form costs less by MARGIN, its readers' strided reads counted
    (module docstring); within MARGIN, whether more of its readers would rather have F."""
    plain, transposed = _times(node)
    want_f, want_c = _mixed_readers(node.outs[0], readers, producer)
    if want_f or want_c:
        across = _across_seconds(node.outs[0])
        plain, transposed = plain + want_f * across, transposed + want_c * across
    if transposed < plain * (1 - MARGIN):
        return True
    if transposed > plain * (1 + MARGIN):
        return False
    return want_f > want_c


def _mixed_readers(out: Var, readers: dict[int, list[Node]],
                   producer: dict[int, Node]) -> tuple[int, int]:  # fmt: skip
    """(how many of the elementwise nodes `out`'s layout reaches (its readers of its shape,
    theirs, ...) also read an operand of that shape that is F, how many one that is C), as
    far as those layouts are known (`_predicted`)."""
    want = {"F": 0, "C": 0}
    todo, reached, seen = [out], {out.id}, set()
    while todo and len(seen) < 32:
        for r in readers.get(todo.pop().id, ()):
            if type(r) is not Node or id(r) in seen or not _elementwise(r):
                continue
            seen.add(id(r))
            if r.outs[0].shape != out.shape:
                continue
            layouts = {_predicted(a, producer, 8) for a in r.args
                       if type(a) is Var and a.id not in reached and a.shape == out.shape}  # fmt: skip
            for lay in layouts & {"F", "C"}:
                want[lay] += 1
            reached.add(r.outs[0].id)
            todo.append(r.outs[0])
    return want["F"], want["C"]


def _predicted(v: Var, producer: dict[int, Node], depth: int) -> str:
    """`v`'s layout: as it is for an input or a value laid out already (not in `producer`),
    as its elementwise producer will give it looking `depth` such nodes back, or "" when
    that is not known yet (made from a product or another node not laid out yet)."""
    node = producer.get(v.id)
    if node is None:
        return v.layout[:1]
    if depth == 0 or not _elementwise(node):
        return ""
    full = [_predicted(a, producer, depth - 1) if type(a) is Var else _layout_of(a)
            for a in node.args if _shape(a) == v.shape and _layout_of(a) != "B"]
    if "" in full:
        return ""
    return "F" if full and all(lay == "F" for lay in full) else "C"


def _times(node: Node) -> tuple[float, float]:
    """Best times of the plain and the transposed form, on sample operands like `node`'s
    (both forms writing into a buffer, as a replay does)."""
    a, b = node.args
    shapes = (_shape(a), _shape(b))
    key = (shapes, node.outs[0].dtype.str, _layout_of(a), _layout_of(b))
    if key in _timed:
        return _timed[key]
    rng = np.random.default_rng(0)
    ops = []
    for shape, lay in zip(shapes, key[2:]):
        x = rng.standard_normal(shape).astype(node.outs[0].dtype)
        ops.append(np.asfortranarray(x) if lay == "F" else x)
    x, y = ops
    plain_out = np.empty((shapes[0][0], shapes[1][1]), x.dtype)
    trans_out = np.empty((shapes[1][1], shapes[0][0]), x.dtype)
    number = max(1, 2_000_000 // _flops(node))  # a sample of at least ~20 us
    best = [math.inf, math.inf]
    for _ in range(6):  # interleaved: a busy moment slows both forms alike
        for form in (0, 1):
            start = time.perf_counter()
            for _ in range(number):
                if form:
                    np.matmul(y.T, x.T, out=trans_out)
                else:
                    np.matmul(x, y, out=plain_out)
            best[form] = min(best[form], time.perf_counter() - start)
    _timed[key] = (best[0] / number, best[1] / number)
    return _timed[key]


def _across_seconds(v: Var) -> float:
    """Best time of a transposing copy of an array like `v`: what an elementwise operation
    loses reading it across its rows (NumPy's and a fused kernel's alike). Beyond
    ACROSS_SAMPLE elements, that of a square sample of that size, scaled by the size."""
    key = (v.shape, v.dtype.str)
    if key not in _across:
        size = math.prod(v.shape)
        side = math.isqrt(ACROSS_SAMPLE)
        shape = v.shape if size <= ACROSS_SAMPLE else (side, side)
        x = np.asfortranarray(np.ones(shape, v.dtype))
        number = max(1, 100_000 // x.size)
        best = math.inf
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(number):
                np.ascontiguousarray(x)
            best = min(best, time.perf_counter() - start)
        _across[key] = best / number * size / x.size
    return _across[key]
