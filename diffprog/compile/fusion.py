"""Fusion: groups of elementwise nodes of a graph, each run as one compiled loop.

Owns: `fuse(graph, xp)`, which partitions the graph's nodes into groups a loop can compute
per element (compile.kernels says which: arithmetic, comparisons, where, casts, libm
functions, with broadcasting; a `sum` or `sum_to_shape` of the loop's values ends a group as
an accumulator), compiles each group worth it into one kernel (a numba loop for NumPy,
compile.kernels; a CuPy ElementwiseKernel for CuPy, compile.cuda_kernels), checks that kernel
once against the unfused operations on sample data, and returns the graph with one `Fused`
node per group, scheduled in a topological order that keeps the recorded order wherever it
can.

The partition into groups is compile.partition's. On the GPU a sum stays in a group only as
its one result (a ReductionKernel); other sums run as CuPy reductions of the group's outputs.
A group numba cannot compile, or whose kernel disagrees with NumPy, is partitioned again
without its function calls (exp, maximum, ...), or without its nodes if it had none.
A kernel returns its small results of one shape and dtype as one stacked array (numba boxes
each array it returns); kernels built after it read the stack as it is, and a `row` node
takes a row out for any other reader. A `fit_adjoint` of a kernel's own result (the adjoint
of a leaf, made its leaf's array) is dropped: that result is already a new writable array.
Layer L3 (beside ad/): imports compile.ir, compile.partition and the kernel writers.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np

from . import cuda_kernels, kernels
from .ir import Const, Fused, Graph, Guard, Node, Var, substitute
from .partition import Group, Partition

#: validation tolerances (rtol, atol as a fraction of the largest |value|) per dtype
TOLERANCE = {np.dtype(np.float64): (1e-12, 1e-12), np.dtype(np.float32): (1e-5, 1e-6)}


def fuse(graph: Graph, xp: Any = np) -> Graph:
    """`graph` with its fusible groups as `Fused` nodes (the input graph is not changed):
    numba loops for NumPy (`xp`), CuPy ElementwiseKernels for CuPy."""
    gpu = xp is not np
    scalar_op = cuda_kernels.scalar_op if gpu else kernels.scalar_op
    refused: set[int] = set()
    readers: dict[int, list[int]] = {}  # var id -> body positions reading it (-1: an output)
    for i, item in enumerate(graph.body):
        for v in item.inputs():
            readers.setdefault(v.id, []).append(i)
    for o in graph.outputs:
        if type(o) is Var:
            readers.setdefault(o.id, []).append(-1)
    while True:
        groups = Partition(graph.body, refused, scalar_op, gpu).groups
        if gpu:
            for g in groups:
                _one_final_sum(graph.body, g, readers)
        groups = [g for g in groups if g.worth_it(gpu)]
        nodes, failed = [], []
        built = _Built(graph)
        for g in groups:
            node = _build_gpu(graph, g, readers, xp) if gpu else _build(graph, g, readers, built)
            (nodes if node is not None else failed).append((g, node))
        if not failed:
            place = {i: g for g, _ in nodes for i in (*g.members, *g.guards)}
            units = [(g, [node, *_row_nodes(node, g, built, readers, place)]) for g, node in nodes]
            return _without_fits(_schedule(graph, units))
        for g, _ in failed:  # its libm calls first, then (if it had none) all of it
            calls = [i for i in g.members if scalar_op(graph.body[i]) not in kernels.PLAIN]
            refused.update(calls or g.members)


class _Row:
    """The primitive of a node taking one row of a fused kernel's stacked outputs (for a
    reader that is not a fused kernel: those read the stack itself)."""

    name = "row"
    multiple_results = False

    @staticmethod
    def impl(xp: Any, stack: Any, *, row: int) -> Any:
        return stack[row]


class _Built:
    """What building the groups made: the fused nodes, and for the outputs they return
    stacked, which stack and row each is in."""

    def __init__(self, graph: Graph) -> None:
        self.rows: dict[int, tuple[Var, int]] = {}  # row var id -> (stack Var, row)
        self.took: dict[int, set[int]] = {}  # group index -> row var ids it reads as stacks
        ids = [v.id for v in graph.inputs] + [o.id for n in graph.body if type(n) is Node for o in n.outs]
        self.next_id = max(ids, default=0) + 1

    def stack_var(self, rows: list[Var]) -> Var:
        """A Var for the stack of `rows` (same shape and dtype), recorded in `rows`."""
        stack = Var.__new__(Var)
        first = rows[0]
        stack.id, stack.kind, stack.layout = self.next_id, "array", "C"
        stack.shape, stack.dtype = (len(rows), *first.shape), first.dtype
        self.next_id += 1
        for k, v in enumerate(rows):
            self.rows[v.id] = (stack, k)
        return stack


def _build(graph: Graph, g: Group, readers: dict[int, list[int]], built: _Built) -> Node | None:
    """The fused node of group `g`, or None when its kernel cannot be made or is wrong.
    Operands another kernel returned stacked are read from the stack."""
    body = graph.body
    members = [body[i] for i in g.members]
    made = {o.id for m in members for o in m.outs}
    inside = set(g.members) | set(g.guards)
    outs = [m.outs[0] for m in members
            if any(r not in inside for r in readers.get(m.outs[0].id, ()))]  # fmt: skip
    args: list[Any] = []
    arg_of: dict[int, int] = {}  # id of an argument -> its position
    stacked: dict[int, tuple[Var, int]] = {}  # row var id -> (stack, row): read from the stack
    loop = kernels.Loop(g.shape, outputs=len(outs),
                        alone={k for k, o in enumerate(outs) if -1 in readers.get(o.id, ())},
                        fortran={k for k, o in enumerate(outs) if o.layout.startswith("F")})
    temps: dict[int, tuple[str, np.dtype]] = {}
    for m in members:
        for a in m.args:
            key = a.id if type(a) is Var else id(a)
            if key in temps or (type(a) is Var and a.id in made):
                continue
            if type(a) is Const and type(a.value) in (float, int, bool):
                continue  # a literal
            if type(a) is Const and np.ndim(a.value) == 0:
                a = Const(np.asarray(a.value)[()])
            shape = (a.shape if type(a) is Var else np.shape(a.value)) or None
            source, row = a, None
            if type(a) is Var and a.id in built.rows:
                source, row = built.rows[a.id]
                stacked[a.id] = (source, row)
            if id(source) not in arg_of:
                arg_of[id(source)] = len(args)
                args.append(source)
            temps[key] = (f"x{len(loop.inputs)}", kernels.dtype_of(a))
            loop.inputs.append((shape, kernels.dtype_of(a), arg_of[id(source)], row))
    position = {o.id: k for k, o in enumerate(outs)}
    vmath = _write(loop, members, temps, position)
    if vmath and not kernels.vectorizes(loop):  # a scalar loop: libm's calls are faster
        for k in vmath:  # than vmath's
            op = kernels.scalar_op(members[k])
            loop.lines[k] = f"t{k} = {kernels.expression(op, members[k], temps, vector=False)}"
    guards = [body[i] for i in g.guards]
    loop.guards = [(_truth(*temps[guard.var.id]), bool(guard.expected)) for guard in guards]
    source = kernels.kernel_source(loop)
    kernel = kernels.compile_kernel(source)
    bundles = kernels.bundles(loop)
    if kernel is None:
        return None
    if source not in _agreed:  # one source, one computation: checked once per process
        if not agrees(kernel, members, args, outs, bundles, stacked):
            return None
        _agreed.add(source)
    built.took[g.index] = set(stacked)
    results = [outs[group[0]] if len(group) == 1 else built.stack_var([outs[k] for k in group])
               for group in bundles]  # fmt: skip
    return Node(Fused(members, guards, kernel, source, bundles), {}, args, results,
                members[0].site, all(m.backward for m in members))  # fmt: skip


def _truth(temp: str, dtype: np.dtype) -> str:
    """The bool `bool(temp)` is (a guard may test a float's truth: NaN is true)."""
    return temp if dtype == np.bool_ else f"({temp} != 0)"


def _write(loop: kernels.Loop, members: list[Node], temps: dict,
           position: dict[int, int]) -> list[int]:  # fmt: skip
    """Write the members' statements (line k: member k's), stores and sums into `loop`
    (`temps`: the loaded values; `position`: output var id -> its index), exp, log, ... as
    compile.vmath's; returns the positions of those lines."""
    loop.lines, loop.stores, loop.sums = [], [], []
    vmath = []
    for k, m in enumerate(members):
        op = kernels.scalar_op(m)
        out = m.outs[0]
        temp = f"t{k}"
        if op in ("sum", "sum_to_shape"):
            src = m.args[0]
            value = kernels.operand_expr(src, src.dtype, temps)
            loop.lines.append(f"{temp} = {kernels.cast(value, src.dtype, np.dtype(np.float64))}")
            loop.sums.append((position[out.id], temp, _sum_index(m, loop.shape), out.dtype))
            continue
        line = f"{temp} = {kernels.expression(op, m, temps)}"
        if "vmath." in line:
            vmath.append(k)
        loop.lines.append(line)
        temps[out.id] = (temp, out.dtype)
        if out.id in position:
            loop.stores.append((position[out.id], temp, out.shape, out.dtype))
    return vmath


def _one_final_sum(body: list, g: Group, readers: dict[int, list[int]]) -> None:
    """On the GPU a sum stays in its group only as the group's one result (a ReductionKernel
    computes it); other sums leave it, as CuPy reductions of the group's outputs."""
    sums = [i for i in g.members if body[i].prim.name in ("sum", "sum_to_shape")]
    inside = set(g.members)
    read = [i for i in g.members if any(r not in inside for r in readers.get(body[i].outs[0].id, ()))]
    if sums and not (len(sums) == 1 and read == sums == g.members[-1:]):
        g.members = [i for i in g.members if i not in sums]


def _build_gpu(graph: Graph, g: Group, readers: dict[int, list[int]], xp: Any) -> Node | None:
    """The fused node of group `g` on the GPU (a CuPy ElementwiseKernel), or None when its
    kernel cannot be made or is wrong."""
    members = [graph.body[i] for i in g.members]
    inside = set(g.members)
    outs = [m.outs[0] for m in members
            if any(r not in inside for r in readers.get(m.outs[0].id, ()))]  # fmt: skip
    made = cuda_kernels.group_kernel(members, outs)
    if made is None:
        return None
    args, kernel = made
    bundles = [[k] for k in range(len(outs))]
    if kernel.source not in _agreed:
        if not agrees(kernel, members, args, outs, bundles, {}, xp):
            return None
        _agreed.add(kernel.source)
    return Node(Fused(members, [], kernel, kernel.source, bundles), {}, args, outs,
                members[0].site, all(m.backward for m in members))  # fmt: skip


def _row_nodes(node: Node, g: Group, built: _Built, readers: dict[int, list[int]],
               place: dict[int, Group]) -> list[Node]:  # fmt: skip
    """Nodes taking the rows of `node`'s stacks that a reader needs as arrays of their own
    (an unfused node, a guard, an output, a kernel built before this one)."""
    out = []
    for group, result in zip(node.prim.bundles, node.outs):
        if len(group) == 1:
            continue
        for v in node.prim.members:
            v = v.outs[0]
            if built.rows.get(v.id, (None,))[0] is not result:
                continue
            needed = any(r == -1 or r not in place or v.id not in built.took.get(place[r].index, ())
                         for r in readers.get(v.id, ()) if place.get(r) is not g)  # fmt: skip
            if needed:
                row = built.rows[v.id][1]
                out.append(Node(_Row, {"row": row}, [result], [v], node.site, node.backward))
    return out


_agreed: set[str] = set()  # sources whose kernels agreed with NumPy


def _sum_index(node: Node, loop: tuple) -> tuple:
    """Per dimension of the sum's result: the loop dimension it follows, or None (size 1)."""
    if node.prim.name == "sum_to_shape":
        shape = node.params["shape"]
        lead = len(loop) - len(shape)
        return tuple(None if n == 1 and loop[lead + k] != 1 else lead + k for k, n in enumerate(shape))
    axes = {a % len(loop) for a in node.params["axis"]}
    keep = node.params["keepdims"]
    return tuple(None if d in axes else d for d in range(len(loop)) if keep or d not in axes)


def sample(a: Any, rng: np.random.Generator) -> Any:
    """A value like operand `a`: magnitudes in [0.5, 1.5], either sign (a log or root of
    a negative one is NaN on both sides)."""
    if type(a) is Const:
        return a.value
    signs = rng.choice([-1.0, 1.0], size=a.shape)
    if a.kind == "float":
        return float(signs * rng.uniform(0.5, 1.5))
    if a.dtype == np.bool_:
        value = rng.random(a.shape) < 0.5
    else:
        value = (signs * rng.uniform(0.5, 1.5, a.shape)).astype(a.dtype)
    if a.kind == "scalar":
        return value[()]
    return _laid_out(value, a.layout)


def _laid_out(value: np.ndarray, layout: str) -> np.ndarray:
    """`value` in memory laid out as `layout` says (Var.layout), so the kernel numba compiles
    for the sample is the one the replay calls."""
    if layout.startswith("F"):
        value = np.asfortranarray(value)
    elif layout.startswith("A") and value.ndim:
        wide = np.empty((*value.shape[:-1], 2 * value.shape[-1]), value.dtype)
        wide[..., ::2] = value
        value = wide[..., ::2]
    if layout.endswith("r"):
        value.flags.writeable = False
    return value


def kernel_args(values: list) -> list:
    """Operands as a kernel takes them: 0-d arrays as their scalar."""
    return [v[()] if type(v) is np.ndarray and v.ndim == 0 else v for v in values]


def unbundle(results: tuple, bundles: list[list[int]]) -> list:
    """The kernel's results one per output (a stack split into its rows)."""
    outs: list[Any] = [None] * sum(map(len, bundles))
    for group, value in zip(bundles, results):
        for k, out in enumerate(group):
            outs[out] = value[k] if len(group) > 1 else value
    return outs


def agrees(kernel: Any, members: list[Node], args: list, outs: list[Var],
            bundles: list[list[int]], stacked: dict[int, tuple[Var, int]], xp: Any = np) -> bool:  # fmt: skip
    """Whether the kernel computes what the members do (run on `xp`), on sample data
    (compiling it)."""
    rng = np.random.default_rng(0)
    values = {}
    for a in args:
        value = sample(a, rng)
        if xp is not np and type(a) is Var and a.kind == "array":
            value = xp.asarray(value)
        values[a.id if type(a) is Var else id(a)] = value
    inputs = [values[a.id if type(a) is Var else id(a)] for a in args]
    for row_id, (stack, row) in stacked.items():
        values[row_id] = values[stack.id][row]
    with np.errstate(all="ignore"):
        for m in members:
            operands = [values[a.id] if type(a) is Var else a.value for a in m.args]
            values[m.outs[0].id] = m.prim.impl(xp, *operands, **m.params)
        try:
            got = unbundle(kernel(*(kernel_args(inputs) if xp is np else inputs)), bundles)
        except Exception:  # noqa: BLE001 - it could not be compiled: stays unfused
            return False
    host = np.asarray if xp is np else xp.asnumpy
    for o, value in zip(outs, got):
        want = host(values[o.id])
        value = host(value).astype(o.dtype, copy=False)
        if value.shape != want.shape or value.dtype != want.dtype:
            return False
        if o.dtype == np.bool_:
            if not np.array_equal(value, want):
                return False
            continue
        rtol, atol = TOLERANCE[o.dtype]
        finite = np.abs(want[np.isfinite(want)])
        scale = float(finite.max()) if finite.size else 0.0
        if not np.isclose(value, want, rtol=rtol, atol=atol * scale, equal_nan=True).all():
            return False
    return True


def _without_fits(graph: Graph) -> Graph:
    """`graph` without the `fit_adjoint` nodes (an adjoint as its leaf's array) of a kernel's
    own results: a kernel's result is a new writable array, which that node returns as it is."""
    fresh = {o.id for n in graph.body if type(n) is Node and type(n.prim) is Fused for o in n.outs}
    renamed: dict[int, Var] = {}
    for n in graph.body:
        if (type(n) is Node and n.prim.name == "fit_adjoint" and n.params.get("kind") == "array"
                and type(n.args[0]) is Var and n.args[0].id in fresh):  # fmt: skip
            a, out = n.args[0], n.outs[0]
            if (a.kind, a.shape, a.dtype) == (out.kind, out.shape, out.dtype):
                renamed[out.id] = a
    if not renamed:
        return graph

    def get(v: Var) -> Var:
        return renamed.get(v.id, v)

    body = []
    for item in graph.body:
        if type(item) is Guard:
            body.append(Guard(get(item.var), item.how, item.expected, item.site))
        elif not item.outs or item.outs[0].id not in renamed:  # (a kernel may only check guards)
            body.append(Node(item.prim, substitute(item.params, get), substitute(item.args, get),
                             item.outs, item.site, item.backward))  # fmt: skip
    return Graph(list(graph.inputs), body, [substitute(o, get) for o in graph.outputs])


def _schedule(graph: Graph, fused: list[tuple[Group, list[Node]]]) -> Graph:
    """The body with each group replaced by its nodes (the fused node, then the rows taken
    from its stacks), in a topological order that takes the earliest recorded item first."""
    body = graph.body
    unit_of: dict[int, int] = {}  # body position -> unit (its first position)
    items: dict[int, list] = {}
    for g, nodes in fused:
        first = min(g.members)
        for i in (*g.members, *g.guards):
            unit_of[i] = first
        items[first] = nodes
    for i, item in enumerate(body):
        if i not in unit_of:
            unit_of[i] = i
            items[i] = [item]
    maker: dict[int, int] = {}  # var id -> unit
    for i, item in enumerate(body):
        if type(item) is Node:
            for o in item.outs:
                maker[o.id] = unit_of[i]
    waits: dict[int, set[int]] = {u: set() for u in items}
    for i, item in enumerate(body):
        u = unit_of[i]
        for v in item.inputs():
            m = maker.get(v.id)
            if m is not None and m != u:
                waits[u].add(m)
    wakes: dict[int, list[int]] = {u: [] for u in items}
    for u, before in waits.items():
        for m in before:
            wakes[m].append(u)
    ready = [u for u, before in waits.items() if not before]
    heapq.heapify(ready)
    order = []
    while ready:
        u = heapq.heappop(ready)
        order.extend(items[u])
        for w in wakes[u]:
            waits[w].discard(u)
            if not waits[w]:
                heapq.heappush(ready, w)
    if len(order) != sum(map(len, items.values())):
        raise AssertionError("fusion made a cycle")  # the partition rules out
    return Graph(list(graph.inputs), order, list(graph.outputs))
