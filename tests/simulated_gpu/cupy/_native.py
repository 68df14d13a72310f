"""`cupy.ElementwiseKernel` and `cupy.ReductionKernel` for the simulated CuPy: the C++
really runs.

The operation CuPy would compile for the GPU is wrapped in a C++ loop over the broadcast
elements, compiled with the host's g++ into a shared library (cached on disk by source,
under $DIFFPROG_SIMULATED_KERNELS or the temp folder) and called through ctypes on the NumPy
data. So a kernel's source is tested for real (it compiles, its names and types are C++'s,
it computes the right values), not compared as text. CUDA's math functions of the same names
(`tanhf`, `exp`, `isnan`, ...) are those of <cmath>; GPU rounding is not modelled.

CuPy's rules kept: typed in and out params (an array of another dtype raises TypeError,
scalars are cast to the param's type), inputs broadcast together, outputs allocated with
the broadcast shape on the current device (or given, of exactly that shape), one result
returned as it is and several as a tuple, the kernel compiled on its first call (a compile
error raises then, with the compiler's message).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

#: CuPy's param type names -> (NumPy dtype, C++ type)
TYPES = {"float64": (np.float64, "double"), "float32": (np.float32, "float"),
         "bool": (np.bool_, "bool"), "int32": (np.int32, "int32_t"),
         "int64": (np.int64, "int64_t")}  # fmt: skip

_HEADER = """#include <cmath>
#include <cstdint>
using std::isnan; using std::isinf; using std::isfinite; using std::signbit;
#define __device__
#define __forceinline__ inline
"""


class CompileException(RuntimeError):
    """A kernel's source did not compile (cupy.cuda.compiler.CompileException)."""


def _params(text: str) -> list[tuple[str, str]]:
    """(type, name) per param of 'float64 x, float32 y'."""
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        words = part.split()
        if len(words) != 2 or words[0] not in TYPES:
            raise NotImplementedError(f"the simulated CuPy takes typed params of {sorted(TYPES)} "
                                      f"only, got {part!r}")  # fmt: skip
        out.append((words[0], words[1]))
    return out


class ElementwiseKernel:
    """cupy.ElementwiseKernel(in_params, out_params, operation, name)."""

    _SIZES = 1  # the compiled loop's size arguments: the number of elements

    def __init__(self, in_params: str, out_params: str, operation: str, name: str = "kernel",
                 reduce_dims: bool = True, preamble: str = "", **options: Any) -> None:  # fmt: skip
        self.in_params, self.out_params = _params(in_params), _params(out_params)
        self.operation, self.name, self.preamble = operation, name, preamble
        self._libraries: dict[tuple, Any] = {}  # which params are scalars -> loaded function

    def __call__(self, *args: Any, size: int | None = None, **kwargs: Any) -> Any:
        import cupy

        n_in, n_out = len(self.in_params), len(self.out_params)
        if len(args) not in (n_in, n_in + n_out):
            raise TypeError(f"Wrong number of arguments for {self.name!r}")
        _check_inputs(cupy, self.in_params + self.out_params, args)
        shapes = [a.shape for a in args if type(a) is cupy.ndarray]
        if not shapes and size is None:
            raise ValueError("Loop size is undecided")
        shape = np.broadcast_shapes(*shapes) if shapes else (size,)
        outs = list(args[n_in:])
        for o in outs:
            if type(o) is not cupy.ndarray:
                raise TypeError(f"an output must be a cupy.ndarray, got {type(o)}")
            if o.shape != shape:
                raise ValueError("Out shape is mismatched")
        scalars = tuple(type(a) is not cupy.ndarray for a in args[:n_in])
        made = cupy._kernel(lambda *raw: self._run(raw, scalars, shape), args, {})
        made = outs or made  # given outputs: written in place
        return made[0] if n_out == 1 else tuple(made)

    def _run(self, raw: tuple, scalars: tuple, shape: tuple) -> list:
        """The kernel on the NumPy data `raw` (the inputs, then any given outputs): the
        outputs, new arrays unless given."""
        n_in = len(self.in_params)
        results = [np.empty(shape, TYPES[kind][0]) for kind, _ in self.out_params]
        buffers = []
        for (kind, _), a, scalar in zip(self.in_params, raw, scalars):
            if scalar:  # cast to the param's type, read as element 0
                buffers.append(np.asarray(a, TYPES[kind][0]).reshape(1))
            else:
                buffers.append(np.ascontiguousarray(np.broadcast_to(a, shape)))
        pointers = (ctypes.c_void_p * len(buffers + results))(
            *[b.ctypes.data for b in buffers + results])
        self._library(scalars)(pointers, ctypes.c_longlong(int(np.prod(shape, dtype=np.int64))))
        for out, r in zip(raw[n_in:], results):
            out[...] = r
        return list(raw[n_in:]) or results

    def source(self, scalars: tuple) -> str:
        """The C++ of the loop, for inputs that are scalars where `scalars` says."""
        lines = [_HEADER, self.preamble, f'extern "C" void {self.name}(void** p, long long n) {{',
                 "  for (long long i = 0; i < n; ++i) {"]  # fmt: skip
        k = 0
        for (kind, name), scalar in zip(self.in_params, scalars):
            ctype = TYPES[kind][1]
            lines.append(f"    const {ctype} {name} = static_cast<const {ctype}*>(p[{k}])"
                         f"[{'0' if scalar else 'i'}];")  # fmt: skip
            k += 1
        for kind, name in self.out_params:
            ctype = TYPES[kind][1]
            lines.append(f"    {ctype}& {name} = static_cast<{ctype}*>(p[{k}])[i];")
            k += 1
        lines += ["    {", self.operation, "    }", "  }", "}", ""]
        return "\n".join(lines)

    def _library(self, scalars: tuple) -> Any:
        run = self._libraries.get(scalars)
        if run is None:
            library = ctypes.CDLL(str(compile_source(self.source(scalars))))
            run = self._libraries[scalars] = getattr(library, self.name)
            run.argtypes = [ctypes.c_void_p] + [ctypes.c_longlong] * self._SIZES
            run.restype = None
        return run


class ReductionKernel:
    """cupy.ReductionKernel(in_params, out_params, map_expr, reduce_expr, post_map_expr,
    identity, name, reduce_type=None, preamble=''): the map expression per element of the
    broadcast inputs, folded with `reduce_expr` (of `a` and `b`) from `identity` in
    `reduce_type` over `axis`, then `post_map_expr` (of `a`) writes the output."""

    def __init__(self, in_params: str, out_params: str, map_expr: str, reduce_expr: str,
                 post_map_expr: str, identity: Any, name: str = "reduce_kernel",
                 reduce_type: str | None = None, reduce_dims: bool = True, preamble: str = "",
                 options: tuple = ()) -> None:  # fmt: skip
        self.in_params, self.out_params = _params(in_params), _params(out_params)
        if len(self.out_params) != 1:
            raise NotImplementedError("the simulated ReductionKernel has one output")
        self.map_expr, self.reduce_expr, self.post_map_expr = map_expr, reduce_expr, post_map_expr
        self.identity, self.name, self.preamble = identity, name, preamble
        self.reduce_type = reduce_type or TYPES[self.out_params[0][0]][1]
        self._libraries: dict[tuple, Any] = {}

    def __call__(self, *args: Any, axis: Any = None, keepdims: bool = False, **kwargs: Any) -> Any:
        import cupy

        if len(args) != len(self.in_params):
            raise TypeError(f"Wrong number of arguments for {self.name}")
        _check_inputs(cupy, self.in_params, args)
        shapes = [a.shape for a in args if type(a) is cupy.ndarray]
        if not shapes:
            raise ValueError("Loop size is undecided.")
        shape = np.broadcast_shapes(*shapes)
        axes = tuple(range(len(shape))) if axis is None else tuple(
            sorted(a % len(shape) for a in ((axis,) if isinstance(axis, int) else axis)))
        scalars = tuple(type(a) is not cupy.ndarray for a in args)
        return cupy._kernel(lambda *raw: self._run(raw, scalars, shape, axes, keepdims), args, {})

    def _run(self, raw: tuple, scalars: tuple, shape: tuple, axes: tuple, keepdims: bool) -> Any:
        kept = [d for d in range(len(shape)) if d not in axes]
        n_out = int(np.prod([shape[d] for d in kept], dtype=np.int64))
        n_red = int(np.prod([shape[d] for d in axes], dtype=np.int64))
        buffers = []  # each input as (kept elements, reduced elements), contiguous
        for (kind, _), a, scalar in zip(self.in_params, raw, scalars):
            if scalar:
                buffers.append(np.asarray(a, TYPES[kind][0]).reshape(1))
            else:
                full = np.broadcast_to(a, shape).transpose(kept + list(axes))
                buffers.append(np.ascontiguousarray(full).reshape(-1))
        kind = self.out_params[0][0]
        result = np.empty(n_out, TYPES[kind][0])
        pointers = (ctypes.c_void_p * (len(buffers) + 1))(
            *[b.ctypes.data for b in [*buffers, result]])
        self._library(scalars)(pointers, ctypes.c_longlong(n_out), ctypes.c_longlong(n_red))
        out_shape = [1 if d in axes else n for d, n in enumerate(shape)] if keepdims else \
            [shape[d] for d in kept]
        return result.reshape(out_shape)

    def source(self, scalars: tuple) -> str:
        rt = self.reduce_type
        lines = [_HEADER, self.preamble,
                 f'extern "C" void {self.name}(void** p, long long n_out, long long n_red) {{',
                 "  for (long long o = 0; o < n_out; ++o) {",
                 f"    {rt} acc = ({rt})({self.identity});",
                 "    for (long long k = 0; k < n_red; ++k) {",
                 "      const long long i = o * n_red + k;"]  # fmt: skip
        for k, ((kind, name), scalar) in enumerate(zip(self.in_params, scalars)):
            ctype = TYPES[kind][1]
            lines.append(f"      const {ctype} {name} = static_cast<const {ctype}*>(p[{k}])"
                         f"[{'0' if scalar else 'i'}];")  # fmt: skip
        lines += [f"      const {rt} b = ({rt})({self.map_expr});",
                  f"      const {rt} a = acc;",
                  f"      acc = ({self.reduce_expr});",
                  "    }"]  # fmt: skip
        kind, name = self.out_params[0]
        ctype = TYPES[kind][1]
        lines += [f"    {ctype}& {name} = static_cast<{ctype}*>(p[{len(self.in_params)}])[o];",
                  f"    const {rt} a = acc;", f"    {self.post_map_expr};", "  }", "}", ""]  # fmt: skip
        return "\n".join(lines)

    _SIZES = 2  # outputs, and elements reduced into each
    _library = ElementwiseKernel._library


def _check_inputs(cupy: Any, params: list, args: tuple) -> None:
    """CuPy's rules for kernel arguments: device arrays on the current device, of the
    param's dtype; scalars; no NumPy arrays."""
    for (kind, name), a in zip(params, args):
        if type(a) is cupy.ndarray:
            cupy._on_current_device(a._gpu)
            if a.dtype != TYPES[kind][0]:
                raise TypeError(f"Type is mismatched. {(name, a.dtype.name, kind)}")
        elif isinstance(a, np.ndarray) or hasattr(a, "__cuda_array_interface__"):
            raise TypeError(f"Unsupported type {type(a)}")


#: how every kernel is compiled (the precompiled header too: g++ uses it only if they match)
_FLAGS = ["-O2", "-std=c++17", "-fPIC", "-fno-fast-math"]


def compile_source(source: str) -> Path:
    """The shared library of C++ `source`, compiled once (cached by source on disk). A
    source that starts with the kernels' common header includes it precompiled (parsing
    <cmath> is most of a small kernel's compile time)."""
    folder = Path(os.environ.get("DIFFPROG_SIMULATED_KERNELS")
                  or Path(tempfile.gettempdir()) / f"diffprog-simulated-kernels-{os.getuid()}")  # fmt: skip
    digest = hashlib.sha256(source.encode()).hexdigest()[:32]
    library = folder / f"k{digest}.so"
    if library.exists():
        return library
    compiler = shutil.which(os.environ.get("CXX", "g++"))
    if compiler is None:
        raise RuntimeError(
            "the simulated CuPy runs ElementwiseKernel sources by compiling them with the "
            "host's C++ compiler, and no g++ was found on PATH (nor $CXX): install one "
            "(apt-get install g++) or point $CXX at it")  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    text = source
    if source.startswith(_HEADER):
        text = f'#include "{_precompiled_header(compiler, folder)}"\n' + source[len(_HEADER):]
    cpp = folder / f"k{digest}.{os.getpid()}.cpp"
    cpp.write_text(text)
    tmp = folder / f"k{digest}.{os.getpid()}.so"
    run = subprocess.run([compiler, *_FLAGS, "-shared", "-I", str(folder), "-o", str(tmp), str(cpp)],
                         check=False, capture_output=True, text=True)  # fmt: skip
    cpp.unlink()
    if run.returncode:
        raise CompileException(f"the kernel's C++ did not compile:\n{run.stderr[-3000:]}\n"
                               f"--- source ---\n{source}")  # fmt: skip
    os.replace(tmp, library)
    return library


def _precompiled_header(compiler: str, folder: Path) -> str:
    """The name of the kernels' common header in `folder`, precompiled there once."""
    name = "h" + hashlib.sha256((_HEADER + compiler + " ".join(_FLAGS)).encode()).hexdigest()[:16] + ".h"
    gch = folder / f"{name}.gch"
    if not gch.exists():
        tmp = folder / f"{name}.{os.getpid()}"
        tmp.write_text(_HEADER)
        os.replace(tmp, folder / name)  # whole, for a process compiling against it now
        tmp = folder / f"{name}.{os.getpid()}.gch"
        run = subprocess.run([compiler, *_FLAGS, "-x", "c++-header", str(folder / name), "-o", str(tmp)],
                             check=False, capture_output=True, text=True)  # fmt: skip
        if run.returncode:  # the kernels include the header as it is
            return name
        os.replace(tmp, gch)
    return name
