"""From a graph to a replay: straight-line Python that calls the kernels directly.

Owns: `generate(graph, xp)`, which writes the graph as the source of one Python function
`replay(inputs) -> outputs` and compiles it. Each node is one line: a ufunc primitive becomes
a Python operator where the operator is that ufunc on NumPy values (`a * b`), else a direct
call of NumPy's (or CuPy's) ufunc; a Python operator the program applied stays one; a
transpose, reshape or getitem of an array is that method or subscript (`x.transpose(axes)`;
on NumPy a gather at constant integer arrays `x.take(flat positions)`); on NumPy a mean of a
float array is `u_add_reduce(x, axis=..., keepdims=...) / n`, its own computation; every
other primitive is a call of its kernel (`impl(xp, *args, **params)`) with its static params
bound as globals: no `bind`, no tracers, no dictionaries per op. Each guard is one `if` that
raises `GuardFailed` when the program would take another path. A fused node (compile.fusion)
is one call of its kernel, with the guards it checks inside. A matrix product whose result
compile.layout chose column-major (`Var.layout` "F") is written `u_matmul(b.T, a.T).T`.

Memory planning: variables live in reused local names (a name is rebound as soon as its
value is dead, which frees it); a result whose left operand is a dying array this replay
made takes its memory (`a *= b`), and a big ufunc result a dead one's of its shape, dtype
and memory order (`out=`), so a replay allocates about as much as its live set. An array
a kernel or view took is never reused (the kernel may have returned a view of it), nor is an input or an output.
`ufunc_of` finds the primitives that are one ufunc.
Layer L3 (beside ad/): imports L0-L2 (backend.host_copy for guards on CuPy values) and compile.ir.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..backend import host_copy
from .ir import Const, Fused, Graph, Guard, Node, Var, has_refs


class GuardFailed(Exception):
    """A replay reached a guard whose recorded value does not hold this time."""

    def __init__(self, index: int) -> None:
        super().__init__(index)
        self.index = index  # the guard's position in graph.guards()


#: Python's operators (`operator` module names) as written in source
OPERATOR_SYMBOLS = {
    "add": "+", "sub": "-", "mul": "*", "truediv": "/", "floordiv": "//", "mod": "%",
    "pow": "**", "matmul": "@", "and_": "&", "or_": "|", "xor": "^", "lshift": "<<",
    "rshift": ">>", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "eq": "==", "ne": "!=",
    "neg": "-", "pos": "+", "invert": "~", "abs": "abs",
}  # fmt: skip

#: ufuncs that Python's operators on NumPy arrays and scalars call, with identical results
#: (correctly rounded IEEE operations; not `power`, whose scalar path differs in the last bit)
_SAME_AS_OPERATOR = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/",
                     "true_divide": "/", "negative": "-"}  # fmt: skip

#: operators whose augmented form (`a += b`) writes the same values into `a`'s memory
_AUGMENTABLE = {"+", "-", "*", "/"}

#: Python operators (on NumPy values) that are these ufuncs (so may write into a buffer)
_OPERATOR_UFUNCS = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "divide",
                    "neg": "negative"}  # fmt: skip

#: primitives that are one method or subscript of their array operand (a view of it),
#: written as such on arrays: no kernel call (its params are the format's fields)
_ARRAY_FORMS = {"transpose": "{x}.transpose({axes})", "reshape": "{x}.reshape({shape})",
                "getitem": "{x}[{index}]"}  # fmt: skip

#: Arrays at least this big are written into dead buffers of the same shape and dtype
#: (smaller ones: allocating is cheaper than passing `out=`).
OUT_MIN_SIZE = 1024

_ufuncs: dict[Any, str | None] = {}


class _Probe:
    """A stand-in `xp` that records which function a kernel calls, with which operands."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def __getattr__(self, name: str) -> Callable[..., str]:
        def call(*args: Any, **kwargs: Any) -> str:
            self.calls.append((name, args, kwargs))
            return "result"

        return call


def ufunc_of(prim: Any) -> str | None:
    """The NumPy ufunc name when `prim`'s kernel is exactly `xp.<ufunc>(*operands)`, else None.

    Found once per primitive by running its kernel on a probe namespace and placeholders.
    """
    try:
        return _ufuncs[prim]
    except (KeyError, TypeError):
        pass
    name = None
    impl = getattr(prim, "impl", None)
    code = getattr(impl, "__code__", None)
    if code is not None and not code.co_kwonlyargcount and not code.co_flags & 0x0C:
        n = code.co_argcount - 1
        probe, operands = _Probe(), tuple(f"operand{i}" for i in range(n))
        try:
            result = impl(probe, *operands)
        except Exception:  # noqa: BLE001 - the kernel does more than call one function
            result = None
        if result == "result" and len(probe.calls) == 1:
            fn, args, kwargs = probe.calls[0]
            if args == operands and not kwargs and isinstance(getattr(np, fn, None), np.ufunc):
                name = fn
    _ufuncs[prim] = name
    return name


def _host_array_equal(value: Any, expected: np.ndarray) -> bool:
    """Whether `value` (a CuPy array: copied to the host, as the recording read it) equals
    the value the recording read."""
    return bool(np.array_equal(host_copy(value), expected))


def generate(graph: Graph, xp: Any) -> Callable[[list], list]:
    """Compile `graph` into `replay(inputs) -> outputs` for the array module `xp`."""
    return _Writer(graph, xp).compile()


class _Writer:
    def __init__(self, graph: Graph, xp: Any) -> None:
        self.graph = graph
        self.globals: dict[str, Any] = {"xp": xp, "GuardFailed": GuardFailed, "math": math,
                                        "array_equal": np.array_equal if xp is np else _host_array_equal}  # fmt: skip
        self.ids = itertools.count()
        self.slot_of: dict[int, str] = {}  # var id -> local name holding it
        self.free: list[str] = []  # local names whose value is dead
        self.pool: dict[tuple, list[str]] = {}  # _buffer_key -> names of dead owned buffers
        self.owned: set[int] = set()  # vars that are fresh arrays made by this replay
        self.names = itertools.count()
        self.vars = {v.id: v for v in graph.inputs}
        self.vars.update({v.id: v for n in graph.body if type(n) is Node for v in n.outs})

    def constant(self, value: Any, stem: str = "c") -> str:
        name = f"{stem}{next(self.ids)}"
        self.globals[name] = value
        return name

    def ref(self, a: Any) -> str:
        if type(a) is Var:
            return self.slot_of[a.id]
        value = a.value if type(a) is Const else a
        if type(value) in (int, bool, type(None)) or (type(value) is float and math.isfinite(value)):
            return repr(value)
        return self.constant(value)

    def expr(self, value: Any) -> str:
        """Source for a params value: Vars inside tuples, lists and slices become their names."""
        if not has_refs(value):
            if type(value) in (int, bool, type(None)) or type(value) is float:
                return self.ref(value)
            return self.constant(value, "p")
        t = type(value)
        if t is Var:
            return self.slot_of[value.id]
        if t is slice:
            return f"slice({self.expr(value.start)}, {self.expr(value.stop)}, {self.expr(value.step)})"
        items = "".join(self.expr(v) + ", " for v in value)
        return f"({items})" if t is tuple else f"[{items}]"

    def new_slot(self, var: Var, reuse: str | None = None) -> str:
        name = reuse or (self.free.pop() if self.free else f"s{next(self.names)}")
        self.slot_of[var.id] = name
        return name

    def compile(self) -> Callable[[list], list]:
        g = self.graph
        last_use = _last_uses(g)
        dying: dict[int, list[int]] = {}  # item index -> the variables it reads last
        for var_id, last in last_use.items():
            dying.setdefault(last, []).append(var_id)
        outputs = {o.id for o in g.outputs if type(o) is Var}
        lines = ["def replay(inputs):"]
        if g.inputs:
            lines.append("    " + "".join(self.new_slot(v) + ", " for v in g.inputs) + "= inputs")
        guard_index = 0
        for i, item in enumerate(g.body):
            if type(item) is Guard:
                lines.append("    " + self.guard(item, guard_index))
                guard_index += 1
            elif type(item.prim) is Fused:
                lines.append("    " + self.fused(item, guard_index))
                guard_index += len(item.prim.guards)
            else:
                lines.append("    " + self.node(item, i, last_use, outputs))
            self.release(dying.get(i, ()), outputs)
        lines.append("    return [" + "".join(self.ref(o) + ", " for o in g.outputs) + "]")
        source = "\n".join(lines)
        code = compile(source, "<diffprog replay>", "exec")
        exec(code, self.globals)  # noqa: S102 - our own generated source
        replay = self.globals["replay"]
        replay.source = source  # type: ignore[attr-defined]
        return replay

    def guard(self, guard: Guard, index: int) -> str:
        v = self.slot_of[guard.var.id]
        e = guard.expected
        if guard.how == "bool":
            test = f"not {v}" if e else v
        elif guard.how in ("int", "index"):
            test = f"int({v}) != {e!r}"
        elif guard.how == "shape":
            test = f"{v}.shape != {e!r}"
        elif guard.how == "float":
            test = f"not math.isnan({v})" if e != e else f"float({v}) != {self.ref(e)}"
        else:  # "value": the whole array was read
            test = f"not array_equal({v}, {self.constant(e)})"
        return f"if {test}: raise GuardFailed({index})"

    def node(self, node: Node, index: int, last_use: dict[int, int], outputs: set[int]) -> str:
        form = _ARRAY_FORMS.get(node.prim.name)
        x = node.args[0] if len(node.args) == 1 else None
        if form and type(x) is Var and x.kind == "array":
            return self.view(node, form)
        if node.prim.name == "mean" and self.globals["xp"] is np and _float_mean(node):
            return self.mean(node)
        args = [self.ref(a) for a in node.args]
        numpy_operand = any(type(a) is Var and a.kind in ("array", "scalar") for a in node.args)
        if node.prim.name == "operator":  # a Python operator applied as the program did
            op = node.params["op"]
            ufunc = _OPERATOR_UFUNCS.get(op) if numpy_operand else None
            symbol = OPERATOR_SYMBOLS[op]
        else:
            ufunc = ufunc_of(node.prim) if not node.params else None
            symbol = _SAME_AS_OPERATOR.get(ufunc) if numpy_operand else None
        if ufunc is None and symbol is None:
            return self.kernel_call(node, args)
        out = node.outs[0]
        if (ufunc == "matmul" or symbol == "@") and out.layout[:1] == "F" and len(out.shape) == 2:
            return self.transposed_product(node, args, index, last_use, outputs)
        first = node.args[0]
        if (symbol in _AUGMENTABLE and len(args) == 2 and type(first) is Var
                and self.dies_here(first, out, index, last_use, outputs)):  # fmt: skip
            # the left operand's buffer dies here: `a op= b` writes the result into it
            name = self.slot_of.pop(first.id)
            self.owned.discard(first.id)
            self.slot_of[out.id] = name
            self.owned.add(out.id)
            return f"{name} {symbol}= {args[1]}"
        buffer = self.buffer_for(out, node, index, last_use, outputs) if ufunc else None
        target = self.new_slot(out, buffer)
        if out.kind == "array" and out.shape:
            self.owned.add(out.id)  # a ufunc's result: fresh memory this replay may reuse
        if buffer or symbol is None:
            fn = f"u_{ufunc}"  # the ufunc bound as a global: no attribute lookup per call
            self.globals[fn] = getattr(self.globals["xp"], ufunc)
            return f"{target} = {fn}({', '.join(args)}" + (f", out={buffer})" if buffer else ")")
        if symbol == "abs":
            return f"{target} = abs({args[0]})"
        if len(args) == 1:
            return f"{target} = {symbol}{args[0]}"
        return f"{target} = {args[0]} {symbol} {args[1]}"

    def transposed_product(self, node: Node, args: list[str], index: int,
                           last_use: dict[int, int], outputs: set[int]) -> str:  # fmt: skip
        """`a @ b` as compile.layout chose it: `(b.T @ a.T).T`, an F result (into a dead F
        buffer's memory when there is one)."""
        out = node.outs[0]
        buffer = self.buffer_for(out, node, index, last_use, outputs)
        target = self.new_slot(out, buffer)
        self.owned.add(out.id)
        self.globals["u_matmul"] = self.globals["xp"].matmul
        into = f", out={buffer}.T" if buffer else ""
        return f"{target} = u_matmul({args[1]}.T, {args[0]}.T{into}).T"

    def dies_here(self, a: Var, out: Var, index: int, last_use: dict[int, int],
                  outputs: set[int]) -> bool:  # fmt: skip
        """Whether `a` is a buffer this replay made, which nothing else can see (no kernel
        took it: one may have returned a view of it), read for the last time by item
        `index`, with `out`'s shape and dtype: its memory may hold `out`."""
        return (a.id in self.owned and last_use.get(a.id) == index and a.id not in outputs
                and out.kind == "array" and _buffer_key(a) == _buffer_key(out))  # fmt: skip

    def fused(self, node: Node, guard_index: int) -> str:
        """`outs..., = kernel(operands)` for a fused node, its results given the types the
        unfused nodes give (a NumPy scalar, a 0-d array), then its guards' verdict. A GPU
        kernel takes device arrays as they are and returns new ones of the right dtypes."""
        kernel = self.constant(node.prim.kernel, "f")
        numpy = self.globals["xp"] is np
        args = [self.ref(a) + ("[()]" if numpy and type(a) is Var and a.kind == "array" and not a.shape else "")
                for a in node.args]  # fmt: skip
        targets = [self.new_slot(o) for o in node.outs]
        failed = ["failed"] if node.prim.guards else []
        lines = [f"{''.join(t + ', ' for t in targets + failed)}= {kernel}({', '.join(args)})"]
        for group, o, t in zip(node.prim.bundles, node.outs, targets):
            if not numpy:
                if o.shape:  # a new device array no one else holds
                    self.owned.add(o.id)
            elif o.kind == "scalar":
                lines.append(f"{t} = {self.constant(o.dtype.type, 'd')}({t})")
            elif not o.shape:
                lines.append(f"{t} = xp.asarray({t}, dtype={self.constant(o.dtype, 'd')})")
            elif len(group) == 1:  # a fresh array no one else holds (not a stack: its rows
                self.owned.add(o.id)  # may outlive it)
        if failed:
            lines.append(f"if failed >= 0: raise GuardFailed({guard_index} + failed)")
        return "\n    ".join(lines)

    def view(self, node: Node, form: str) -> str:
        """`out = x.transpose(axes)` (an `_ARRAY_FORMS` entry): a view of `x`, which stops
        being a buffer this replay may reuse. A gather at one constant integer array per
        dimension is `x.take(flat positions)` on NumPy: the same values, without advanced
        indexing's set-up (1.7 -> 0.8 us for 128 rows' labels; 7 -> 3 us with cold caches)."""
        x = node.args[0]
        self.owned.discard(x.id)
        flat = _flat_index(node.params["index"], x.shape) if node.prim.name == "getitem" else None
        if flat is not None and self.globals["xp"] is np:
            source = f"{self.slot_of[x.id]}.take({self.constant(flat, 'p')})"
        else:
            fields = {k: self.expr(v) for k, v in node.params.items()}
            source = form.format(x=self.slot_of[x.id], **fields)
        return f"{self.new_slot(node.outs[0])} = {source}"

    def mean(self, node: Node) -> str:
        """A mean of a float array as NumPy computes it (`x.sum(axis, keepdims) / n`), without
        the Python layers of the kernel and of `ndarray.sum` (3.2 -> 1.5 us on 128 values; 14
        -> 7 us with cold caches): `u_add_reduce(x, axis=..., keepdims=...) / n`."""
        x = node.args[0]
        axis, keepdims = node.params["axis"], node.params["keepdims"]
        self.globals["u_add_reduce"] = np.add.reduce
        n = math.prod(x.shape[a] for a in axis)
        total = f"u_add_reduce({self.slot_of[x.id]}, axis={axis!r}, keepdims={keepdims!r})"
        return f"{self.new_slot(node.outs[0])} = {total} / {n}"

    def kernel_call(self, node: Node, args: list[str]) -> str:
        """`outs = impl(xp, *args, **params)`: the kernel called directly. Its operands stop
        being buffers this replay may reuse: the kernel may have returned a view of them."""
        for v in node.inputs():
            self.owned.discard(v.id)
        kernel = self.constant(node.prim.impl, "k")
        params = "".join(f", {k}={self.expr(v)}" for k, v in node.params.items())
        call = f"{kernel}(xp{''.join(', ' + a for a in args)}{params})"
        targets = [self.new_slot(o) for o in node.outs]
        if node.prim.multiple_results:
            return f"{''.join(t + ', ' for t in targets)}= {call}"
        return f"{targets[0]} = {call}"

    def buffer_for(self, out: Var, node: Node, index: int, last_use: dict[int, int],
                   outputs: set[int]) -> str | None:  # fmt: skip
        """A dead buffer this ufunc may write its result into (memory planning), or None."""
        if out.kind != "array" or math.prod(out.shape) < OUT_MIN_SIZE:
            return None
        key = _buffer_key(out)
        for a in node.args:  # an operand dying here: write in place
            if type(a) is Var and self.dies_here(a, out, index, last_use, outputs):
                self.owned.discard(a.id)
                return self.slot_of.pop(a.id)
        pool = self.pool.get(key)
        return pool.pop() if pool else None

    def release(self, dying: list[int], outputs: set[int]) -> None:
        """Free the names of the variables `dying` (their last use was the item just written)."""
        for var_id in dying:
            if var_id in outputs or var_id not in self.slot_of:
                continue
            name = self.slot_of.pop(var_id)
            if var_id in self.owned:
                self.owned.discard(var_id)
                var = self.vars[var_id]
                self.pool.setdefault(_buffer_key(var), []).append(name)
            else:
                self.free.append(name)


def _float_mean(node: Node) -> bool:
    """Whether `node` is diffprog.numpy's mean (over some axes) of a non-empty float array."""
    x = node.args[0] if len(node.args) == 1 else None
    if type(x) is not Var or x.kind != "array" or x.dtype not in (np.float32, np.float64):
        return False
    axis = node.params.get("axis")
    return (set(node.params) == {"axis", "keepdims"} and type(axis) is tuple
            and type(node.params["keepdims"]) is bool and math.prod(x.shape[a] for a in axis) > 0)


def _flat_index(index: Any, shape: tuple) -> np.ndarray | None:
    """The flat (C order) positions that `x[index]` gathers from an `x` of `shape` when
    `index` is one constant integer array per dimension (at least two), in bounds and
    broadcastable; else None (the subscript stays, raising as it would)."""
    if type(index) is not tuple or len(index) != len(shape) or len(shape) < 2:
        return None
    if not all(type(i) is np.ndarray and i.dtype.kind in "iu" for i in index):
        return None
    if not all(((-n <= i) & (i < n)).all() for i, n in zip(index, shape)):
        return None
    wide = [i.astype(np.intp) for i in index]  # i + n in the index's dtype could overflow
    positions = tuple(np.where(i < 0, i + n, i) for i, n in zip(wide, shape))
    try:
        return np.ravel_multi_index(positions, shape)
    except ValueError:  # not broadcastable
        return None


def _buffer_key(var: Var) -> tuple:
    """What a buffer must share with a result to hold it: shape, dtype and memory order
    (a result written into a buffer takes its order)."""
    return var.shape, var.dtype, var.layout[:1]


def _last_uses(graph: Graph) -> dict[int, int]:
    """var id -> index of the last body item that reads it (definitions count as uses, so a
    value nobody reads is freed right after it is made)."""
    last: dict[int, int] = {}
    for i, item in enumerate(graph.body):
        for v in item.inputs():
            last[v.id] = i
        if type(item) is Node:
            for v in item.outs:
                last.setdefault(v.id, i)
    return last
