"""Fused kernels: the source of one numba loop per group of elementwise nodes, compiled once.

Owns: the scalar forms of the elementwise primitives (`scalar_op(node)`: which nodes a loop
can compute per element, and how), `kernel_source(...)`, which writes one group as a Python
function of explicit loops over the output shape with broadcast loads and scalar math, and
`compile_kernel(source)`, which compiles it with numba and caches it: in this process by
source text, and on disk as a module `diffprog_kernel_<sha>.py` under `$DIFFPROG_CACHE_DIR`
(default `~/.cache/diffprog/kernels`; `off` disables it) compiled with numba's own cache, so
another process loads the machine code instead of compiling again.

A kernel reads its extents from its inputs' shapes, so one source serves every size with the
same pattern of broadcast (size-1) dimensions. Every temporary has the dtype its node had
when recorded: an operand whose dtype differs is cast first, Python numbers become literals
of the dtype they combine with (as NumPy's weak scalars do), so float32 stays float32.
Sums accumulate in float64 and are cast at the end; a sum along the innermost loop adds in a
register whose adds LLVM may reorder (SIMD lanes: `_ACCUMULATE`).
Layer L3 (beside ad/): imports numpy, numba (when installed) and compile.ir / codegen.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..backend import is_array
from .codegen import ufunc_of
from .ir import Const, Node, Var

AVAILABLE = importlib.util.find_spec("numba") is not None

#: Python operators as the ufuncs they are on NumPy values
_OPERATORS = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "divide",
              "neg": "negative", "pos": "positive", "abs": "absolute", "pow": "power",
              "lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal",
              "eq": "equal", "ne": "not_equal"}  # fmt: skip

#: scalar forms of ufuncs: `{0}`, `{1}` are the operands (already of the computing dtype)
_FORMS = {
    "add": "({0} + {1})", "subtract": "({0} - {1})", "multiply": "({0} * {1})",
    "divide": "({0} / {1})", "negative": "(-{0})", "positive": "(+{0})",
    "absolute": "abs({0})", "fabs": "abs({0})", "square": "({0} * {0})",
    "less": "({0} < {1})", "less_equal": "({0} <= {1})", "greater": "({0} > {1})",
    "greater_equal": "({0} >= {1})", "equal": "({0} == {1})", "not_equal": "({0} != {1})",
    "logical_and": "({0} and {1})", "logical_or": "({0} or {1})", "logical_not": "(not {0})",
    "where": "({1} if {0} else {2})",
}  # fmt: skip

#: operations written as Python operators and expressions (no function call)
PLAIN = set(_FORMS) | {"astype", "sum", "sum_to_shape"}

#: ufuncs numba computes on scalars with NumPy's semantics (NaN, inf, signed zeros: tested)
_NUMPY_SCALAR = {
    "sqrt", "reciprocal", "floor", "ceil", "trunc", "rint", "sign", "isnan", "isinf",
    "isfinite", "signbit", "maximum", "minimum", "fmax", "fmin", "copysign",
    "exp", "expm1", "exp2", "log", "log1p", "log2", "log10", "cbrt", "sin", "cos", "tan",
    "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh",
    "arctan2", "hypot", "logaddexp", "logaddexp2", "power",
}  # fmt: skip

#: ufuncs a loop that vectorizes (`vectorizes`) computes with compile.vmath's functions
#: instead of libm's
VMATH = {"exp", "expm1", "log", "log1p", "tanh"}
#: ... in float32 arithmetic for float32 (the others compute in float64 and round)
VMATH_FLOAT32 = {"exp": "exp32"}
#: (ufunc, dtype) whose vmath function beats NumPy's SIMD loop on big arrays: fused into
#: loops of any size (benchmarks/vmath_speed.py; the others are slower than NumPy's there)
VMATH_BIG = {("exp", np.dtype(np.float64)), ("tanh", np.dtype(np.float64)),
             ("exp", np.dtype(np.float32))}  # fmt: skip

#: ufuncs that call libm per element: numba's loop is several times slower than NumPy's SIMD
#: one, so they are fused only into small loops (where the call overhead dominates)
TRANSCENDENTAL = {
    "exp", "expm1", "exp2", "log", "log1p", "log2", "log10", "cbrt", "sin", "cos", "tan",
    "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "arcsinh", "arccosh", "arctanh",
    "arctan2", "hypot", "logaddexp", "logaddexp2", "power",
}  # fmt: skip

#: ufuncs with a bool result from operands of another dtype: computed in the operands'
#: common dtype (comparisons, tests of a float); logical ones compute in bool
_PREDICATES = {"less", "less_equal", "greater", "greater_equal", "equal", "not_equal",
               "isnan", "isinf", "isfinite", "signbit"}  # fmt: skip
_LOGICAL = {"logical_and", "logical_or", "logical_not"}

#: dtypes a fused loop computes in
DTYPES = (np.dtype(np.float64), np.dtype(np.float32), np.dtype(np.bool_))

_CAST = {np.dtype(np.float64): "np.float64", np.dtype(np.float32): "np.float32",
         np.dtype(np.bool_): "np.bool_"}  # fmt: skip


def small_loops_only(op: str, node: Node) -> bool:
    """Whether `node`, computing `op`, joins only small loops (a libm call, or a vmath
    function slower than NumPy's SIMD loop at its dtype)."""
    if op not in TRANSCENDENTAL:
        return False
    return (op, compute_dtype(op, node)) not in VMATH_BIG


def scalar_op(node: Node, gpu: bool = False) -> str | None:
    """The name of the per-element operation `node` computes ("add", "exp", "where",
    "astype", "sum", "sum_to_shape"), or None when a fused loop cannot compute it (`gpu`:
    a CuPy kernel's, whose constant operands may be CuPy arrays)."""
    name = node.prim.name
    if name == "operator":
        op = _OPERATORS.get(node.params["op"])
    elif name in ("where", "ufunc_where") and len(node.args) == 3 and not node.params:
        op = "where"
    elif name in ("astype", "sum", "sum_to_shape"):
        op = name
    else:
        op = ufunc_of(node.prim) if not node.params else None
    if op is None or not (op in _FORMS or op in _NUMPY_SCALAR or op in ("astype", "sum", "sum_to_shape")):
        return None
    if any(not _fusible_operand(a, gpu) for a in node.args) or len(node.outs) != 1:
        return None
    out = node.outs[0]
    if out.kind not in ("array", "scalar") or out.dtype not in DTYPES:
        return None
    if op in ("sum", "sum_to_shape") and (out.dtype == np.bool_ or node.args[0].dtype != out.dtype):
        return None
    return op


def _fusible_operand(a: Any, gpu: bool) -> bool:
    if type(a) is Var:
        return a.kind in ("float", "bool") or (a.kind != "int" and a.dtype in DTYPES)
    v = a.value
    if type(v) in (float, int, bool):
        return True
    if not gpu and not isinstance(v, (np.ndarray, np.generic)):
        return False  # a CuPy constant of a program whose inputs are all on the host
    return is_array(v) and v.dtype in DTYPES


def is_weak(a: Any) -> bool:
    """A Python number: it takes the dtype of what it combines with (NEP 50)."""
    if type(a) is Var:
        return a.kind in ("float", "int", "bool")
    return type(a.value) in (float, int, bool)


def dtype_of(a: Any) -> np.dtype:
    if type(a) is Var:
        return a.dtype
    return a.value.dtype if hasattr(a.value, "dtype") else np.asarray(a.value).dtype


def literal(value: Any, dtype: np.dtype) -> str:
    """`value` as exact source text of a scalar of `dtype`."""
    if dtype == np.bool_:
        return repr(bool(value))
    v = float(value)
    text = repr(v) if math.isfinite(v) else ("np.nan" if math.isnan(v) else ("np.inf" if v > 0 else "-np.inf"))
    return text if dtype == np.float64 else f"np.float32({text})"


def cast(expr: str, have: np.dtype, want: np.dtype) -> str:
    if have == want:
        return expr
    if want == np.bool_:
        return f"({expr} != 0)"
    return f"{_CAST[want]}({expr})"


@dataclass
class Loop:
    """What a kernel computes, in the terms its source needs.

    `shape`: the loop's extents; `inputs`: per loaded value `x<k>`, (its shape, or None for
    a scalar; its dtype; the argument it comes from; its row there, or None when the
    argument is the value itself rather than a stack of them); `lines`: per-element statements over `x<k>` (the loaded arguments) defining
    `t<k>`; `stores`: (output index, temp, shape, dtype); `sums`: (output index, temp, index map:
    per output dim the loop dim it follows or None for size 1, dtype); `guards`:
    (temp, the bool it must have) per guard (a scalar kernel's); `alone`: outputs never
    stacked (the program's results: arrays of their own, as unfused); `fortran`: outputs
    stored column-major (F), never stacked: the loop then runs in F order (its first
    dimension innermost); `outputs`: number of outputs.
    """

    shape: tuple
    inputs: list = field(default_factory=list)
    lines: list = field(default_factory=list)
    stores: list = field(default_factory=list)
    sums: list = field(default_factory=list)
    guards: list = field(default_factory=list)
    outputs: int = 0
    alone: set = field(default_factory=set)
    fortran: set = field(default_factory=set)


#: LLVM's loop vectorizer, not knowing whether a kernel's arrays overlap, checks at run time
#: each pair of an array the loop stores into and another it stores into or loads from; a
#: loop needing more checks than this stays scalar (LLVM's vectorize-memory-check-threshold;
#: measured: 15 stores and 1 load vectorize, 16 do not; 10 stores and 6 loads do, 9 do not)
MEMORY_CHECKS_MAX = 128
#: the fewest elements along a loop's innermost dimension for its vector body to run (one
#: 512-bit vector of float64, two 256-bit ones): a shorter loop runs in the scalar remainder
VECTOR_MIN_EXTENT = 8


def vectorizes(loop: Loop) -> bool:
    """Whether LLVM's loop vectorizer runs `loop`'s innermost loop on SIMD registers. Only
    there do compile.vmath's functions (straight-line arithmetic, several elements at once)
    beat libm's calls; in a scalar loop each element waits on the longer latency of vmath's
    polynomials: W1's forward kernels store 96 values per element, too many to check, and
    ran 1.6x slower with vmath. A 16-element chain of exp, log and tanh, ns per call
    (benchmarks/vmath_speed.py --rule): vectorized, vmath 4.5 and libm 17.5; storing every
    value (scalar), vmath 25 and libm 18."""
    order = _order(loop)
    if not order or loop.shape[order[-1]] < VECTOR_MIN_EXTENT:
        return False
    loads = sum(shape is not None for shape, *_ in loop.inputs)
    stores = len(loop.stores) + sum(1 for *_, index, _ in loop.sums if index and order[-1] in index)
    return stores * (stores - 1) // 2 + stores * loads <= MEMORY_CHECKS_MAX


def _order(loop: Loop) -> list[int]:
    """The loop's dimensions of more than one element, outermost first."""
    dims = [d for d, n in enumerate(loop.shape) if n != 1]
    return dims[::-1] if loop.fortran else dims


def _index(shape: tuple, loop: tuple) -> str:
    """The broadcast index of an array of `shape` in the loop (right-aligned, 0 on size 1)."""
    lead = len(loop) - len(shape)
    parts = ["0" if n == 1 else f"i{lead + k}" for k, n in enumerate(shape)]
    return ", ".join(parts) + ("," if len(parts) == 1 else "")


def kernel_source(loop: Loop) -> str:
    """The Python source of `kernel(*args) -> (one result per `bundles(loop)` group...,
    [the failed guard or -1])`."""
    L = loop.shape
    n_args = 1 + max((arg for *_, arg, _ in loop.inputs), default=-1)
    signature = f"def kernel({', '.join(f'a{k}' for k in range(n_args))}):"
    chained = False  # whether a sum accumulates in a register along the innermost loop
    body: list[str] = []
    extent: dict[int, str] = {}
    for shape, _, arg, row in loop.inputs:
        if shape is None:
            continue
        lead = len(L) - len(shape)
        for d, n in enumerate(shape):
            if n != 1 and lead + d not in extent:
                extent[lead + d] = f"a{arg}.shape[{d + (row is not None)}]"
    dims = [d for d, n in enumerate(L) if n != 1]
    for d in dims:
        body.append(f"n{d} = {extent[d]}")

    def shape_src(shape: tuple, reverse: bool = False) -> str:
        lead = len(L) - len(shape)
        parts = ["1" if n == 1 else f"n{lead + k}" for k, n in enumerate(shape)]
        parts = parts[::-1] if reverse else parts
        return "(" + ", ".join(parts) + ("," if len(parts) == 1 else "") + ")"

    groups = bundles(loop)
    place = {out: (g[0], k, len(g)) for g in groups for k, out in enumerate(g)}
    result: dict[int, str] = {}  # first output of a group -> what the kernel returns for it
    for out, temp, shape, dtype in loop.stores:
        first, k, n = place[out]
        if not L:
            result[out] = temp
        elif out in loop.fortran:  # an F array: the C array of the reversed shape, transposed
            body.append(f"o{out} = np.empty({shape_src(shape, reverse=True)}, {_CAST[dtype]}).T")
            result[out] = f"o{out}"
        elif k == 0:
            stack = f"{n}, " if n > 1 else ""
            body.append(f"o{out} = np.empty(({stack}{shape_src(shape)[1:]}, {_CAST[dtype]})")
            result[out] = f"o{out}"
    for out, temp, index, dtype in loop.sums:
        if index:
            extents = ["1" if d is None or L[d] == 1 else f"n{d}" for d in index]
            body.append(f"r{out} = np.zeros(({''.join(e + ', ' for e in extents)}), np.float64)")
            result[out] = f"r{out}" if dtype == np.float64 else f"r{out}.astype({_CAST[dtype]})"
        else:
            body.append(f"r{out} = 0.0")
            result[out] = f"r{out}" if dtype == np.float64 else f"{_CAST[dtype]}(r{out})"
    results = [result[g[0]] for g in groups]
    if loop.guards:
        body.append("failed = -1")
    inner: list[str] = []
    for k, (shape, _, arg, row) in enumerate(loop.inputs):
        if shape is None:
            inner.append(f"x{k} = a{arg}")
        else:
            inner.append(f"x{k} = a{arg}[{'' if row is None else f'{row}, '}{_index(shape, L)}]")
    inner += loop.lines
    for out, temp, shape, _ in loop.stores:
        first, k, n = place[out]
        if L:
            inner.append(f"o{first}[{f'{k}, ' if n > 1 else ''}{_index(shape, L)}] = {temp}")
    order = _order(loop)
    before: list[str] = []  # around the innermost loop: sums that do not follow it
    after: list[str] = []
    for out, temp, index, _ in loop.sums:
        if index:
            idx = ", ".join("0" if d is None else f"i{d}" for d in index)
            cell = f"r{out}[{idx}{',' if len(index) == 1 else ''}]"
            if order and order[-1] not in index:  # one cell along the innermost loop: a
                before.append(f"acc{out} = 0.0")  # register, not a chain of stores
                inner.append(f"acc{out} = accumulate(acc{out}, {temp})")
                after.append(f"{cell} += acc{out}")
                chained = True
            else:
                inner.append(f"{cell} += {temp}")
        else:
            inner.append(f"r{out} = accumulate(r{out}, {temp})")
            chained = True
    # the first guard that fails, without a branch per guard: each `if` made blocks, and
    # numba's analyses cost blocks times variables (W2's first call: 14.4 -> 6.9 s CPU)
    for g, (temp, expected) in reversed(list(enumerate(loop.guards))):
        inner.append(f"failed += ({g} - failed) * ({'not ' if expected else ''}{temp})")
    body += [f"i{d} = 0" for d, n in enumerate(L) if n == 1]
    indent = ""
    for k, d in enumerate(order):
        if k == len(order) - 1:
            body += [indent + line for line in before]
        body.append(f"{indent}for i{d} in range(n{d}):")
        indent += "    "
    body += [indent + line for line in inner]
    body += [indent[4:] + line for line in after]
    results += ["failed"] if loop.guards else []
    body.append("return (" + "".join(r + ", " for r in results) + ")")
    head = ["import numpy as np", *(["import numba"] if chained else []), *vmath_import(loop.lines),
            "", "", *(_ACCUMULATE if chained else []), signature]  # fmt: skip
    return "\n".join(head + ["    " + line for line in body]) + "\n"


def vmath_import(lines: list) -> list[str]:
    """The import of compile.vmath if `lines` call it, with the hash of its source: a kernel
    cached on disk is compiled again when vmath changes (numba's cache checks only the
    kernel's own file)."""
    if not any("vmath." in line for line in lines):
        return []
    global _vmath_version
    if _vmath_version is None:
        text = (Path(__file__).parent / "vmath.py").read_bytes()
        _vmath_version = hashlib.sha256(text).hexdigest()[:16]
    return [f"from diffprog.compile import vmath  # version {_vmath_version}"]


_vmath_version: str | None = None

#: the add of a sum accumulated in a register, compiled with LLVM's reassociation allowed (on
#: this add alone: numba inlines it with its flags; the loop's other arithmetic stays exact)
#: so that the loop vectorizer splits the chain of dependent adds into SIMD lanes: a
#: 128x256 F array's column sums 12 -> 5.5 us. The sum then rounds as another summation
#: order does (NumPy's own is pairwise along a contiguous axis, serial across others)
_ACCUMULATE = ["@numba.njit(fastmath={'reassoc'})", "def accumulate(total, term):",
               "    return total + term", "", ""]  # fmt: skip

#: outputs of at most this many elements are returned stacked, one array per shape and dtype
#: (numba boxes each array it returns: about 0.4 us each, more than a small loop costs)
BUNDLE_MAX_SIZE = 4096


def bundles(loop: Loop) -> list[list[int]]:
    """The kernel's results: groups of outputs, in order of their first one. An array loop's
    small stored outputs of one shape and dtype are one group (returned as a stack of
    them); every other output is a group of its own."""
    groups: dict[Any, list[int]] = {}
    for out, _, shape, dtype in loop.stores:
        small = (loop.shape and math.prod(shape) <= BUNDLE_MAX_SIZE and out not in loop.alone
                 and out not in loop.fortran)
        groups.setdefault((shape, dtype) if small else ("alone", out), []).append(out)
    for out, *_ in loop.sums:
        groups[("alone", out)] = [out]
    return sorted(groups.values())


# --- compiling and caching ---------------------------------------------------------------
_compiled: dict[str, Any] = {}  # source -> numba dispatcher (None: numba could not compile it)


def cache_dir() -> Path | None:
    """Where compiled kernels are kept between processes (None: the disk cache is off)."""
    where = os.environ.get("DIFFPROG_CACHE_DIR", "")
    if where.lower() == "off":
        return None
    return Path(where) if where else Path.home() / ".cache" / "diffprog" / "kernels"


def compile_kernel(source: str) -> Any:
    """The numba dispatcher of `source`'s `kernel` (compiled lazily on the first call), or
    None if it cannot be made."""
    if source in _compiled:
        return _compiled[source]
    import numba

    options = {"error_model": "numpy", "nogil": True}
    folder = cache_dir()
    module = None
    if folder is not None:
        try:
            module = _load(folder, source)
        except OSError:  # the cache folder cannot be written: compile in memory
            module = None
    try:
        if module is None:
            namespace: dict[str, Any] = {}
            exec(compile(source, "<diffprog kernel>", "exec"), namespace)  # noqa: S102
            fn = numba.njit(**options)(namespace["kernel"])
        else:
            fn = numba.njit(cache=True, **options)(module.kernel)
    except Exception:  # noqa: BLE001 - the group stays unfused
        fn = None
    _compiled[source] = fn
    return fn


def _load(folder: Path, source: str) -> Any:
    """The module of `source`, written once to a file of its hash (numba caches by file)."""
    name = "diffprog_kernel_" + hashlib.sha256(source.encode()).hexdigest()[:24]
    path = folder / f"{name}.py"
    if not path.exists() or path.read_text() != source:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f"{name}.{os.getpid()}.tmp"
        tmp.write_text(source)
        os.replace(tmp, path)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    sys.modules[name] = module
    return module


def operand_expr(a: Any, compute: np.dtype, temps: dict[int, tuple[str, np.dtype]]) -> str:
    """Source for operand `a` as a scalar of dtype `compute`: a temp, a loaded input or a
    literal (`temps`: var id or id() of a constant -> (name, dtype))."""
    if type(a) is Const and type(a.value) in (float, int, bool):
        return literal(a.value, compute)
    key = a.id if type(a) is Var else id(a)
    name, have = temps[key]
    if is_weak(a):  # a Python float Var: NumPy casts it to the array's dtype
        return cast(name, np.dtype(np.float64) if a.kind == "float" else have, compute)
    return cast(name, have, compute)


def compute_dtype(op: str, node: Node) -> np.dtype:
    """The dtype `node` computes in: its result's, or for a comparison its operands' common
    dtype (Python numbers are weak: they take the array's)."""
    if op in _PREDICATES:
        strong = [dtype_of(a) for a in node.args if not is_weak(a)]
        return np.result_type(*strong) if strong else np.dtype(np.float64)
    if op in _LOGICAL:
        return np.dtype(np.bool_)
    return node.outs[0].dtype


def squares(node: Node) -> bool:
    """Whether a power node's exponent is the constant number 2 (not an array of them)."""
    e = node.args[1]
    return type(e) is Const and isinstance(e.value, (int, float, np.generic)) and e.value == 2


def expression(op: str, node: Node, temps: dict, vector: bool = True) -> str:
    """The scalar expression of one elementwise node (not a sum), in a loop that runs on SIMD
    registers (`vector`: compile.vmath's functions) or not (libm's, whose scalar calls have
    the shorter latency: see `vectorizes`)."""
    out = node.outs[0].dtype
    compute = compute_dtype(op, node)
    if op == "where":
        args = [operand_expr(node.args[0], np.dtype(np.bool_), temps)]
        args += [operand_expr(a, out, temps) for a in node.args[1:]]
        return _FORMS["where"].format(*args)
    if op == "astype":
        return operand_expr(node.args[0], out, temps)
    args = [operand_expr(a, compute, temps) for a in node.args]
    if op in _FORMS:
        expr = _FORMS[op].format(*args)
    elif op == "power" and squares(node):
        expr = f"({args[0]} * {args[0]})"  # NumPy's own fast path: exact
    elif op in VMATH and vector:
        fn = VMATH_FLOAT32.get(op, op) if compute == np.float32 else op
        expr = f"vmath.{fn}({args[0]})"  # (a float64 of a float32: rounded by _as)
    else:
        expr = f"np.{op}({', '.join(args)})"
    return expr if out == np.bool_ else _as(expr, out)


def _as(expr: str, dtype: np.dtype) -> str:
    """A float32 result kept float32 (numba widens some mixed forms)."""
    return f"np.float32({expr})" if dtype == np.float32 else expr
