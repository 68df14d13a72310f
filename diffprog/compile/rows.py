"""Row kernels: a small softmax or log_softmax along trailing axes as one numba loop.

Owns: `fuse_rows(graph)`, which replaces each softmax / log_softmax node of a float32 or
float64 array of at most ROW_MAX_SIZE elements, taken along its last axes, by a `Fused`
node whose kernel walks each row: its max (no shift when that is not finite, as the NumPy
kernel does), the sum of exp(x - max) in float64, then the row's results. NumPy's kernel
makes about ten calls, each costing more than the arithmetic on a 128 x 10 array (14 -> 9
us in W3's replay); beyond ROW_MAX_SIZE elements its SIMD exp beats numba's scalar one.
Each kernel is checked once against the NumPy kernel on sample data (fusion.agrees); a
node whose kernel cannot be made or disagrees stays as it is.
Layer L3 (beside ad/): imports compile.ir, compile.kernels and compile.fusion.
"""

from __future__ import annotations

import math

import numpy as np

from . import fusion, kernels
from .ir import Fused, Graph, Node, Var

#: the largest array a row kernel takes (numba's scalar exp is slower than NumPy's beyond)
ROW_MAX_SIZE = 2048
#: what each normalization does with a row, once its shift `m` is known (`o`: the result)
_ROW_BODIES = {
    "log_softmax": [
        "s = 0.0",
        "for j in range(n):",
        "    s += np.exp(x[r, j] - m)",
        "ls = {dtype}(np.log(s))",
        "for j in range(n):",
        "    o[r, j] = (x[r, j] - m) - ls",
    ],
    "softmax": [
        "s = 0.0",
        "for j in range(n):",
        "    e = np.exp(x[r, j] - m)",
        "    o[r, j] = e",
        "    s += e",
        "t = {dtype}(s)",
        "for j in range(n):",
        "    o[r, j] = o[r, j] / t",
    ],
}
_FLOATS = (np.dtype(np.float64), np.dtype(np.float32))
_checked: dict[str, bool] = {}  # source -> whether its kernel agreed with NumPy's


def row_kernel_source(name: str, axes: int, dtype: np.dtype) -> str:
    """The source of `kernel(a0) -> (result,)`: `name` of `a0` along its last `axes` axes."""
    width = " * ".join(f"a0.shape[{-k}]" for k in range(axes, 0, -1))
    cast = f"np.{np.dtype(dtype).name}"
    head = [
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
    ]
    body = ["    " + line.format(dtype=cast) for line in _ROW_BODIES[name]]
    lines = [*head, *body, "return (o.reshape(a0.shape),)"]
    return "import numpy as np\n\n\ndef kernel(a0):\n" + "".join(f"    {s}\n" for s in lines)


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
    if not axis or not trailing or not 0 < math.prod(x.shape) <= ROW_MAX_SIZE:
        return None
    source = row_kernel_source(node.prim.name, len(axis), x.dtype)
    kernel = kernels.compile_kernel(source)
    if kernel is None:
        return None
    if source not in _checked:
        _checked[source] = fusion.agrees(kernel, [node], [x], [out], [[0]], {})
    if not _checked[source]:
        return None
    return Node(Fused([node], [], kernel, source, [[0]]), {}, [x], [out], node.site, node.backward)

