"""GPU kernels for fused groups: one CuPy kernel per group of elementwise nodes.

Owns: `scalar_op(node)` (which nodes a GPU kernel computes: compile.kernels' elementwise
operations and sums on device arrays, less those without a C++ form here),
`group_kernel(members, outs)`, which writes a group that compile.partition made as the
C++ body of one `cupy.ElementwiseKernel` (typed in and out params; CuPy broadcasts the
inputs and allocates the outputs), or, for a group whose one result is a sum, as one
`cupy.ReductionKernel` (the group's statements a device function mapping each element to
its summand, accumulated in double over the sum's axes), and the cache of those kernels by
source text.

Every temporary has the dtype its node had when recorded, as in compile.kernels: an operand
of another dtype is cast first, a Python number (weak) becomes a literal or a float64 param
cast to the dtype it combines with, comparisons compute in their operands' common dtype and
give bool. float32 math calls the float functions of CUDA (`expf`, `tanhf`, ...), so float32
stays float32. NumPy's NaN rules are written out where C's differ (maximum, minimum, sign).
Layer L3 (beside ad/): imports numpy, CuPy (when a GPU program is fused) and compile.ir /
compile.kernels.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import numpy as np

from ..backend import is_array
from . import kernels
from .ir import Const, Node, Var

#: C++ types and CuPy param types of the dtypes a kernel computes in
_CTYPE = {np.dtype(np.float64): "double", np.dtype(np.float32): "float", np.dtype(np.bool_): "bool"}
_PARAM = {np.dtype(np.float64): "float64", np.dtype(np.float32): "float32",
          np.dtype(np.bool_): "bool"}  # fmt: skip

#: C++ expressions of ufuncs: `{0}`, `{1}`, `{2}` are operands (names, of the computing dtype)
_FORMS = {
    "add": "({0} + {1})", "subtract": "({0} - {1})", "multiply": "({0} * {1})",
    "divide": "({0} / {1})", "negative": "(-{0})", "positive": "(+{0})", "square": "({0} * {0})",
    "less": "({0} < {1})", "less_equal": "({0} <= {1})", "greater": "({0} > {1})",
    "greater_equal": "({0} >= {1})", "equal": "({0} == {1})", "not_equal": "({0} != {1})",
    "where": "({0} ? {1} : {2})",
    # NumPy's: a NaN operand wins (C's fmax/fmin would drop it)
    "maximum": "(({0} >= {1} || {0} != {0}) ? {0} : {1})",
    "minimum": "(({0} <= {1} || {0} != {0}) ? {0} : {1})",
    "sign": "({0} > 0 ? {one} : ({0} < 0 ? -{one} : ({0} == 0 ? {zero} : {0})))",
    "reciprocal": "({one} / {0})",
    "isnan": "isnan({0})", "isinf": "isinf({0})", "isfinite": "isfinite({0})",
    "signbit": "signbit({0})",
}  # fmt: skip

#: ufuncs that are one CUDA math function (its float form has an `f` after the name)
_FUNCTIONS = {
    "absolute": "fabs", "fabs": "fabs", "sqrt": "sqrt", "floor": "floor", "ceil": "ceil",
    "trunc": "trunc", "rint": "rint", "fmax": "fmax", "fmin": "fmin", "copysign": "copysign",
    "exp": "exp", "expm1": "expm1", "exp2": "exp2", "log": "log", "log1p": "log1p",
    "log2": "log2", "log10": "log10", "cbrt": "cbrt", "sin": "sin", "cos": "cos", "tan": "tan",
    "arcsin": "asin", "arccos": "acos", "arctan": "atan", "sinh": "sinh", "cosh": "cosh",
    "tanh": "tanh", "arcsinh": "asinh", "arccosh": "acosh", "arctanh": "atanh",
    "arctan2": "atan2", "hypot": "hypot", "power": "pow",
}  # fmt: skip


def scalar_op(node: Node) -> str | None:
    """The per-element operation `node` computes in a GPU kernel, or None: compile.kernels'
    scalar_op on a device array result, with a C++ form here."""
    op = kernels.scalar_op(node, gpu=True)
    if op is None or node.outs[0].kind != "array":
        return None
    return op if op in _FORMS or op in _FUNCTIONS or op in ("astype", "sum", "sum_to_shape") else None


def literal(value: Any, dtype: np.dtype) -> str:
    """`value` as a C++ constant of `dtype` (exact: the double literal is cast once; NaN and
    infinities as divisions, NVRTC having no <cmath> macros)."""
    if dtype == np.bool_:
        return "true" if value else "false"
    v = float(value)
    text = repr(v) if math.isfinite(v) else ("(0.0 / 0.0)" if math.isnan(v) else f"({'' if v > 0 else '-'}1.0 / 0.0)")
    return f"(({_CTYPE[dtype]}){text})"


def cast(expr: str, have: np.dtype, want: np.dtype) -> str:
    if have == want:
        return expr
    if want == np.bool_:
        return f"({expr} != 0)"
    return f"(({_CTYPE[want]}){expr})"


def operand(a: Any, compute: np.dtype, names: dict[int, tuple[str, np.dtype]]) -> str:
    """Operand `a` as C++ of dtype `compute`: a temporary, a param or a literal (`names`: var
    id or id() of a constant -> (name, dtype))."""
    if type(a) is Const and type(a.value) in (float, int, bool):
        return literal(a.value, compute)
    name, have = names[a.id if type(a) is Var else id(a)]
    return cast(name, have, compute)


def expression(op: str, node: Node, names: dict[int, tuple[str, np.dtype]]) -> str:
    """The C++ expression of one elementwise node."""
    out = node.outs[0].dtype
    compute = kernels.compute_dtype(op, node)
    if op == "where":
        args = [operand(node.args[0], np.dtype(np.bool_), names)]
        args += [operand(a, out, names) for a in node.args[1:]]
        return _FORMS["where"].format(*args)
    if op == "astype":
        return operand(node.args[0], out, names)
    args = [operand(a, compute, names) for a in node.args]
    if op == "power" and kernels.squares(node):
        return f"({args[0]} * {args[0]})"  # NumPy's own fast path: exact
    if op in _FORMS:
        return _FORMS[op].format(*args, one=literal(1, compute), zero=literal(0, compute))
    name = _FUNCTIONS[op] + ("f" if compute == np.float32 else "")
    return f"{name}({', '.join(args)})"


class GroupKernel:
    """One fused group as a CuPy kernel, compiled on its first call: `kernel(*args)` returns
    a tuple of its outputs. An ElementwiseKernel (`reduce` None: outputs of the loop's
    shape), or for a group whose one result is a sum a ReductionKernel (`reduce`: (axes,
    keepdims, the result's shape), its map a device function in `preamble`)."""

    def __init__(self, in_params: str, out_params: str, operation: str, preamble: str = "",
                 reduce: tuple | None = None) -> None:  # fmt: skip
        self.in_params, self.out_params, self.operation = in_params, out_params, operation
        self.preamble, self.reduce = preamble, reduce
        self.source = f"in: {in_params}\nout: {out_params}\n{preamble}{operation}\n{reduce}"
        self.name = "diffprog_fused_" + hashlib.sha256(self.source.encode()).hexdigest()[:16]
        self.compiled: Any = None

    def __call__(self, *args: Any) -> tuple:
        if self.compiled is None:
            self.compiled = _compiled(self)
        if self.reduce is None:
            result = self.compiled(*args)
            return result if type(result) is tuple else (result,)
        axes, keepdims, shape = self.reduce
        return (self.compiled(*args, axis=axes, keepdims=keepdims).reshape(shape),)


_cache: dict[str, Any] = {}  # source -> cupy.ElementwiseKernel or ReductionKernel


def _compiled(kernel: GroupKernel) -> Any:
    """The CuPy kernel of `kernel`'s source, made once per process (CuPy keeps the compiled
    binary on disk itself)."""
    made = _cache.get(kernel.source)
    if made is None:
        import cupy

        if kernel.reduce is None:
            made = cupy.ElementwiseKernel(kernel.in_params, kernel.out_params, kernel.operation,
                                          kernel.name)  # fmt: skip
        else:  # sums accumulate in double, as the CPU's kernels do
            result = kernel.out_params.split()[-1]
            ctype = _CTYPE[np.dtype(kernel.out_params.split()[0])]
            made = cupy.ReductionKernel(kernel.in_params, kernel.out_params, kernel.operation,
                                        "a + b", f"{result} = ({ctype})a", "0", kernel.name,
                                        reduce_type="double", preamble=kernel.preamble)  # fmt: skip
        _cache[kernel.source] = made
    return made


def group_kernel(members: list[Node], outs: list[Var]) -> tuple[list, GroupKernel] | None:
    """(its arguments: the Vars and Consts the group reads from outside, in the kernel's
    order; the kernel computing `outs`) for a group of nodes in execution order, the last a
    sum when it is the group's one result; None when it reads no device array (CuPy could
    not tell the loop's shape)."""
    made = {o.id for m in members for o in m.outs}
    args: list[Any] = []
    names: dict[int, tuple[str, np.dtype]] = {}
    params = []
    reads_an_array = False
    for m in members:
        for a in m.args:
            key = a.id if type(a) is Var else id(a)
            if key in names or key in made or (type(a) is Const and type(a.value) in (float, int, bool)):
                continue
            if type(a) is Const and type(a.value) is np.ndarray and a.value.ndim == 0:
                a = Const(np.asarray(a.value)[()])
            dtype = kernels.dtype_of(a)
            if type(a) is Var and a.kind == "float":  # weak: cast where it is used
                dtype = np.dtype(np.float64)
            reads_an_array = reads_an_array or (a.kind == "array" if type(a) is Var else is_array(a.value)
                                                and not isinstance(a.value, np.generic))  # fmt: skip
            name = f"x{len(args)}"
            names[key] = (name, dtype)
            params.append(f"{_PARAM[dtype]} {name}")
            args.append(a)
    if not reads_an_array:
        return None
    total = members[-1] if scalar_op(members[-1]) in ("sum", "sum_to_shape") else None
    lines = []
    for k, m in enumerate(members[:-1] if total else members):
        out = m.outs[0]
        lines.append(f"const {_CTYPE[out.dtype]} t{k} = {expression(scalar_op(m), m, names)};")
        names[out.id] = (f"t{k}", out.dtype)
    if total is None:
        position = {o.id: k for k, o in enumerate(outs)}
        lines += [f"o{position[o.id]} = {names[o.id][0]};" for o in outs]
        out_params = ", ".join(f"{_PARAM[o.dtype]} o{k}" for k, o in enumerate(outs))
        return args, GroupKernel(", ".join(params), out_params, "\n".join(lines))
    summand = total.args[0]
    signature = ", ".join(f"const {_CTYPE[dtype]} {name}" for (name, dtype) in
                          (names[a.id if type(a) is Var else id(a)] for a in args))  # fmt: skip
    lines.append(f"return (double){operand(summand, summand.dtype, names)};")
    preamble = "__device__ double group_map(" + signature + ") {\n" + "\n".join(lines) + "\n}\n"
    call = f"group_map({', '.join(names[a.id if type(a) is Var else id(a)][0] for a in args)})"
    out_params = f"{_PARAM[total.outs[0].dtype]} r"
    return args, GroupKernel(", ".join(params), out_params, call, preamble,
                             _reduction(total, summand.shape))  # fmt: skip


def _reduction(node: Node, loop: tuple) -> tuple:
    """(axes, keepdims, result shape) of a sum or sum_to_shape node over a loop's shape."""
    shape = node.outs[0].shape
    if node.prim.name == "sum":
        axes = tuple(sorted(a % len(loop) for a in node.params["axis"]))
        return axes, bool(node.params["keepdims"]), shape
    lead = len(loop) - len(shape)
    axes = tuple(range(lead)) + tuple(lead + k for k, n in enumerate(shape) if n == 1 and loop[lead + k] != 1)
    return axes, True, shape
