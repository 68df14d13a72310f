"""Row kernels: a small softmax or log_softmax along trailing axes as one numba loop.

Owns: `fuse_rows(graph)`, which replaces each softmax / log_softmax node of a float32 or
float64 array of at most ROW_MAX_SIZE elements (SHORT_ROWS_MAX_SIZE in rows of at most
SHORT_ROW), taken along its last axes, by a `Fused` node whose kernel walks each row for
its max (no shift when that is not finite, as the NumPy kernel does) and shifted values
x - max, takes the exponentials of all of them in one flat loop (compile.vmath's exp,
vectorized, when that loop fills a SIMD vector: rows of 10 classes are too short for a
vector loop of their own), then each row's sum (in float64) and results (log_softmax: the
rows' logs in one more flat loop). NumPy's kernel makes about
ten calls, each costing more than the arithmetic on a 128 x 10 array: 11-12.7 us there,
7.3 with libm's exp per element, 2.5 with the flat vmath loops (log_softmax, float64:
benchmarks/row_kernels.py).
Each kernel is checked once against the NumPy kernel on sample data (fusion.agrees); a
node whose kernel cannot be made or disagrees stays as it is.
Layer L3 (beside ad/): imports compile.ir, compile.kernels and compile.fusion.
"""

from __future__ import annotations

import math

import numpy as np

from . import fusion, kernels
from .ir import Fused, Graph, Node, Var

#: the largest array a row kernel takes, and the largest of rows of at most SHORT_ROW
#: elements: NumPy pays per row, the kernel's row max is a scalar loop (NumPy's is SIMD),
#: so long rows gain little or lose (benchmarks/row_kernels.py, time against NumPy's:
#: 16 x 1024 float64 0.84x, float32 1.08x; 64 x 256 0.70x and 0.84x; 1024 x 10 0.45-0.67x
#: and 0.50-0.81x; 8192 x 10 float32 log_softmax 1.28x)
ROW_MAX_SIZE = 2048
SHORT_ROW = 256
SHORT_ROWS_MAX_SIZE = 16384
#: what each normalization does with the sum `s` of row `r`'s exponentials (float64), the
#: row's shifted values in `o` (the result: written in place); then after all rows, with
#: the sums kept in `t` (`{log}`: log's function)
_ROW_BODIES = {
    "log_softmax": ["t[r] = s"],
    "softmax": [
        "d = {dtype}(s)",
        "for j in range(n):",
        "    o[r, j] = o[r, j] / d",
    ],
}
_AFTER_ROWS = {
    "log_softmax": [
        "for r in range(rows):  # (vectorized: libm's log per row took a third of the time)",
        "    t[r] = {log}(t[r])",
        "for r in range(rows):",
        "    ls = {dtype}(t[r])",
        "    for j in range(n):",
        "        o[r, j] = o[r, j] - ls",
    ],
    "softmax": [],
}
_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))
_checked: dict[str, bool] = {}  # source -> whether its kernel agreed with NumPy's


def row_kernel_source(name: str, axes: int, dtype: np.dtype, vector: bool) -> str:
    """The source of `kernel(a0) -> (result,)`: `name` of `a0` along its last `axes` axes.
    Passes: each row's max and shifted values; the exponentials of all of them, one flat
    loop (`vector`: compile.vmath's exp, vectorized, else libm's); each row's sum and
    (softmax) results; log_softmax: the logs of the sums in one loop (vmath's where
    `vector`), then the results."""
    width = " * ".join(f"a0.shape[{-k}]" for k in range(axes, 0, -1))
    cast = f"np.{np.dtype(dtype).name}"
    fn = kernels.VMATH_FLOAT32.get("exp", "exp") if dtype == np.float32 else "exp"
    exp, log = (f"vmath.{fn}", "vmath.log") if vector else ("np.exp", "np.log")
    e = "f" if name == "softmax" else "e"  # softmax's exponentials are its results' start
    lines = [
        "x = np.ascontiguousarray(a0)",
        f"n = {width}",
        "rows = x.size // n",
        "x = x.reshape((rows, n))",
        f"o = np.empty((rows, n), {cast})",
        "for r in range(rows):",
        "    m = x[r, 0]",
        "    for j in range(1, n):",
        "        v = x[r, j]",
        "        if v > m:  # (a NaN makes the row NaN through its sum, as NumPy's does)",
        "            m = v",
        "    if not np.isfinite(m):",
        f"        m = {kernels.literal(0.0, np.dtype(dtype))}",
        "    for j in range(n):",
        "        o[r, j] = x[r, j] - m",
        "f = o.reshape(rows * n)",
        *([] if e == "f" else [f"e = np.empty(rows * n, {cast})"]),
        "for i in range(rows * n):",
        f"    {e}[i] = {cast}({exp}(f[i]))",
        *(["t = np.empty(rows, np.float64)"] if _AFTER_ROWS[name] else []),
        "for r in range(rows):",
        "    s = 0.0",
        "    for j in range(r * n, r * n + n):",
        f"        s += {e}[j]",
        *("    " + line.format(dtype=cast) for line in _ROW_BODIES[name]),
        *(line.format(dtype=cast, log=log) for line in _AFTER_ROWS[name]),
        "return (o.reshape(a0.shape),)",
    ]
    head = ["import numpy as np", *kernels.vmath_import(lines), "", "", "def kernel(a0):"]
    return "\n".join(head + ["    " + line for line in lines]) + "\n"


def fuse_rows(graph: Graph) -> Graph:
    """`graph` with its small softmax / log_softmax nodes as row kernels."""
    body = [_row_node(item) or item if type(item) is Node else item for item in graph.body]
    return Graph(list(graph.inputs), body, list(graph.outputs))


def _row_node(node: Node) -> Node | None:
    if node.prim.name not in _ROW_BODIES or len(node.args) != 1:
        return None
    x, out = node.args[0], node.outs[0]
    if type(x) is not Var or x.kind != "array" or x.dtype not in _FLOATS:
        return None
    axis = node.params["axis"]
    trailing = axis == tuple(range(len(x.shape) - len(axis), len(x.shape)))
    size, row = math.prod(x.shape), math.prod(x.shape[a] for a in axis)
    most = SHORT_ROWS_MAX_SIZE if row <= SHORT_ROW else ROW_MAX_SIZE
    if not axis or not trailing or not 0 < size <= most:
        return None
    vector = size >= kernels.VECTOR_MIN_EXTENT  # (the flat loops' extent)
    source = row_kernel_source(node.prim.name, len(axis), x.dtype, vector)
    kernel = kernels.compile_kernel(source)
    if kernel is None:
        return None
    if source not in _checked:
        _checked[source] = fusion.agrees(kernel, [node], [x], [out], [[0]], {})
    if not _checked[source]:
        return None
    return Node(Fused([node], [], kernel, source, [[0]]), {}, [x], [out], node.site, node.backward)

