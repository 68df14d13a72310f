"""Which array library a value belongs to: NumPy on the CPU, CuPy on a GPU.

Owns: `namespace_of(args)`, the `xp` every kernel receives, chosen from the data (the type of
the raw arrays, seen through tracers), never from a global flag; the check that one
operation's CuPy arrays all live on one GPU (`DeviceMismatchError` otherwise); running code
where its data is (`run_kernel` for a kernel, `device_scope` for raw CuPy code: CuPy itself
runs everything on the current GPU) and creating arrays there (`zeros_like`, `ones_like`,
`asarray_like`); the guarded lazy import of CuPy (`AVAILABLE`); `to_device`, which moves the
arrays of a pytree. Python and NumPy scalars belong to no device and defer to the arrays
beside them (CuPy takes NumPy scalars as kernel arguments); so do 0-d NumPy arrays beside
CuPy arrays (NumPy's where and reductions make them of scalars): `run_kernel` hands them to
CuPy as NumPy scalars, which CuPy takes where it refuses a NumPy array.
Layer L1: imports numpy, the stdlib, diffprog.errors and diffprog.tree; CuPy only when present.
"""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterable
from types import ModuleType
from typing import Any, ContextManager

import numpy as np

from .. import tree as tree_util
from ..errors import DeviceMismatchError

#: Whether CuPy can be imported here. Computed without importing it (importing costs ~1 s).
AVAILABLE: bool = importlib.util.find_spec("cupy") is not None

_MISSING: Any = object()

# type -> array module (None: a Python scalar, which belongs to no device). Filled lazily so
# the hot path is one dict lookup per argument.
_MODULE_OF_TYPE: dict[type, ModuleType | None] = {
    float: None,
    int: None,
    bool: None,
    complex: None,
    np.ndarray: np,
}


def _module_of_type(t: type) -> ModuleType | None:
    mod = _MODULE_OF_TYPE.get(t, _MISSING)
    if mod is _MISSING:
        if t in _UNWRAP:  # a tracer: the array inside decides, so never cached as None
            return None
        root = t.__module__.partition(".")[0]
        if issubclass(t, np.generic):  # a NumPy scalar: a host value, like a Python float
            mod = None
        elif root == "numpy":
            mod = np
        elif root == "cupy" and AVAILABLE:
            import cupy

            mod = cupy
        else:
            mod = None
        _MODULE_OF_TYPE[t] = mod
    return mod  # type: ignore[return-value]



# Wrapper types (tracers) and how to reach the array inside; registered by the core, which
# this layer may not import.
_UNWRAP: dict[type, Any] = {}


def register_wrapper(cls: type, unwrap: Any) -> None:
    """Let `namespace_of` see through instances of `cls` with `unwrap(instance)`."""
    _UNWRAP[cls] = unwrap


def namespace_of(args: tuple | list) -> ModuleType:
    """The array module of the arrays in `args` (NumPy if there are none).

    >>> import numpy as np
    >>> namespace_of((np.ones(2), 3.0)) is np
    True

    For CuPy values being staged by dp.jit (types registered with `register_staged`), a
    `DispatchingNamespace`: CuPy's functions refuse objects that are not CuPy arrays.
    """
    mod = _module_and_gpu(args)[0]
    if mod is not np and _STAGED and any(type(a) in _STAGED for a in args):
        return DispatchingNamespace(mod, np)
    return mod


_STAGED: set[type] = set()


def register_staged(cls: type) -> None:
    """Mark `cls` (dp.jit's staged values) as handled by `DispatchingNamespace` on CuPy."""
    _STAGED.add(cls)


#: NumPy's functions that make an array from shapes and numbers alone: nothing for NumPy to
#: dispatch on, so NumPy's own would make a host array (those that also take data, such as
#: asarray or linspace, stay NumPy's, which hands staged data on)
_CREATION = frozenset({"arange", "empty", "zeros", "ones", "full", "eye", "identity", "tri",
                       "indices", "tril_indices", "triu_indices", "diag_indices"})  # fmt: skip


class DispatchingNamespace:
    """An array module for code computing on staged values (dp.jit) of another library: each
    function is NumPy's function of that name, which hands the call to the values' own
    `__array_function__` / `__array_ufunc__` (where it is recorded, to run the library's
    function at replay); everything else (dtypes, constants, submodules' other members) is
    the library's own."""

    def __init__(self, mod: ModuleType, numpy_mod: ModuleType) -> None:
        self._mod, self._numpy = mod, numpy_mod

    def __getattr__(self, name: str) -> Any:
        theirs, ours = getattr(self._mod, name), getattr(self._numpy, name, None)
        if isinstance(theirs, ModuleType) and isinstance(ours, ModuleType):
            return DispatchingNamespace(theirs, ours)
        if name in _CREATION:  # no operand to dispatch on: NumPy's would make a host array
            return theirs
        if callable(ours) and not isinstance(ours, type):
            return ours
        return theirs


def run_kernel(impl: Any, args: tuple | list, params: dict) -> Any:
    """`impl(xp, *args, **params)` with `xp = namespace_of(args)`, on the device of `args`.

    CuPy runs every kernel on the current GPU and allocates its results there, whatever
    GPU its inputs are on; diffprog's rule is that an operation runs where its arrays are,
    so for arrays on another GPU that GPU is made current for the kernel (a no-op for NumPy
    and for arrays on the current GPU).
    """
    xp, gpu = _module_and_gpu(args)
    if xp is not np:
        args = host_scalars(args)
    if gpu is None or gpu == xp.cuda.runtime.getDevice():
        return impl(xp, *args, **params)
    with xp.cuda.Device(gpu):
        return impl(xp, *args, **params)


def host_scalars(values: tuple | list) -> tuple | list:
    """`values` of an operation on CuPy arrays with each 0-d NumPy array among them as a
    NumPy scalar: as CuPy's kernels take it, and as the derivative rules' raw arithmetic
    must see it beside CuPy arrays (CuPy refuses NumPy arrays, 0-d ones too)."""
    if not any(type(v) is np.ndarray and v.ndim == 0 for v in values):
        return values
    return [v[()] if type(v) is np.ndarray and v.ndim == 0 else v for v in values]


def on_device(values: tuple | list) -> bool:
    """Whether `values` (seen through tracers) hold CuPy arrays."""
    return _module_and_gpu(values)[0] is not np


_NO_SCOPE = contextlib.nullcontext()


def device_scope(values: Iterable[Any]) -> ContextManager[Any]:
    """Where CuPy code on `values` must run: a context making the GPU of the first CuPy array
    among them (tracers seen through) the current device when it is not already; a no-op
    for NumPy. For the raw array arithmetic outside kernels (backward rules, optimizer
    updates), which CuPy would otherwise run on whatever GPU is current."""
    for v in values:
        if type(v) is np.ndarray:  # the common case, first
            continue
        v = _unwrapped(v)
        mod = _MODULE_OF_TYPE.get(type(v), _MISSING)
        if mod is _MISSING:
            mod = _module_of_type(type(v))
        if mod is None or mod is np:
            continue
        gpu = v.device.id
        return _NO_SCOPE if gpu == mod.cuda.runtime.getDevice() else mod.cuda.Device(gpu)
    return _NO_SCOPE


def zeros_like(ref: Any) -> Any:
    """Zeros of `ref`'s shape and dtype, on its device."""
    return run_kernel(lambda xp, r: xp.zeros_like(r), (_unwrapped(ref),), {})


def ones_like(ref: Any) -> Any:
    """Ones of `ref`'s shape and dtype, on its device."""
    return run_kernel(lambda xp, r: xp.ones_like(r), (_unwrapped(ref),), {})


def asarray_like(x: Any, ref: Any, dtype: Any = None) -> Any:
    """`x` (host data: numbers, lists, NumPy values) as an array of `ref`'s module, on its
    device (a host-to-device copy for CuPy), of `dtype` if given."""
    return run_kernel(lambda xp, r: xp.asarray(x, dtype=dtype), (_unwrapped(ref),), {})


def _module_and_gpu(args: tuple | list) -> tuple[ModuleType, int | None]:
    """The array module of `args` and, for CuPy, the one GPU of its arrays."""
    found = None
    for a in args:
        mod = _MODULE_OF_TYPE.get(type(a), _MISSING)  # the hot path: one lookup per argument
        if mod is _MISSING:
            mod = _module_of_value(a)
        if mod is None or mod is found:
            continue
        if found is not None:
            if _zero_d_host_arrays_only(args):  # host scalars beside device arrays
                found = found if mod is np else mod
                continue
            raise DeviceMismatchError(
                f"one operation mixes arrays from {_where(found, args)} and "
                f"{_where(mod, args)}; move them to one device first with "
                "dp.to_device(tree, 'cpu' or 'gpu:N')"
            )
        found = mod
    if found is None or found is np:
        return np, None
    return found, _one_gpu(args)  # CuPy: every array on one GPU (off the NumPy hot path)


def _zero_d_host_arrays_only(args: tuple | list) -> bool:
    """Whether every NumPy array among `args` (seen through tracers) is 0-d."""
    values = [_unwrapped(a) for a in args]
    return all(v.ndim == 0 for v in values if isinstance(v, np.ndarray))


def _one_gpu(args: tuple | list) -> int | None:
    """The GPU of the CuPy arrays in `args` (None if there are none); DeviceMismatchError
    if they live on more than one."""
    first = None
    for a in args:
        device = getattr(_unwrapped(a), "device", None)
        index = getattr(device, "id", None)
        if index is None:
            continue
        if first is None:
            first = index
        elif index != first:
            raise DeviceMismatchError(
                f"one operation mixes arrays from GPU {first} (CuPy) and GPU {index} (CuPy); "
                "move them to one device first with dp.to_device(tree, 'gpu:N')"
            )
    return first


def _where(mod: ModuleType, args: tuple | list) -> str:
    """`device_name` of `mod`, with the GPU of the first CuPy array in `args` if any."""
    for a in args:
        value = _unwrapped(a)
        if _module_of_type(type(value)) is mod:
            return device_name(mod, getattr(getattr(value, "device", None), "id", None))
    return device_name(mod)


def _unwrapped(a: Any) -> Any:
    unwrap = _UNWRAP.get(type(a))
    while unwrap is not None:
        a = unwrap(a)
        unwrap = _UNWRAP.get(type(a))
    return a


def _module_of_value(a: Any) -> ModuleType | None:
    """The slow path: a type seen for the first time, or a tracer (never cached by type,
    since the array inside decides)."""
    return _module_of_type(type(_unwrapped(a)))


def other_device(value: Any, ref: Any) -> tuple[str, str] | None:
    """(where `value` lives, where `ref` lives) when those differ, else None. A host scalar
    (a Python number, a NumPy scalar or 0-d array) goes anywhere: None."""
    value, ref = _unwrapped(value), _unwrapped(ref)
    if type(value) is type(ref) is np.ndarray:  # (the common case, first)
        return None
    if not is_array(value) or isinstance(value, np.generic) or type(value) is np.ndarray and value.ndim == 0:
        return None
    places = []
    for x in (value, ref):
        mod = _module_of_type(type(x)) or np
        places.append(device_name(mod, getattr(getattr(x, "device", None), "id", None) if mod is not np else None))
    return None if places[0] == places[1] else (places[0], places[1])


def device_name(mod: ModuleType, gpu: int | None = None) -> str:
    """How errors name a device: "the CPU (NumPy)", "GPU 1 (CuPy)" (or "the GPU (CuPy)")."""
    if mod.__name__ != "cupy":
        return "the CPU (NumPy)"
    return "the GPU (CuPy)" if gpu is None else f"GPU {gpu} (CuPy)"


def is_array(x: Any) -> bool:
    """True for NumPy/CuPy arrays and NumPy scalars (values with .shape and .dtype)."""
    if isinstance(x, np.generic):
        return True
    return _module_of_type(type(x)) is not None and hasattr(x, "shape") and hasattr(x, "dtype")


def to_device(tree: Any, device: str) -> Any:
    """Every NumPy/CuPy array leaf of `tree` moved to `device` ("cpu", "gpu" or "gpu:N");
    structure, dtypes and every other leaf (Python floats included) are kept.

    >>> import numpy as np
    >>> to_device({"w": np.ones(2), "n": 3}, "cpu")
    {'w': array([1., 1.]), 'n': 3}
    """
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "gpu") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise ValueError(f"device must be 'cpu', 'gpu' or 'gpu:N', got {device!r}")
    if kind == "cpu":
        return tree_util.map(lambda x: x.get() if _is_cupy(x) else x, tree)
    if not AVAILABLE:
        raise RuntimeError(
            "device 'gpu' needs CuPy, which is not installed: pip install -e '.[cuda12]' (or "
            "'.[cuda13]') on a machine with an NVIDIA GPU"
        )
    import cupy

    def move(x: Any) -> Any:
        if isinstance(x, (np.ndarray, np.generic)) or _is_cupy(x):
            with cupy.cuda.Device(int(index or 0)):
                return cupy.asarray(x)
        return x

    return tree_util.map(move, tree)


def _is_cupy(x: Any) -> bool:
    return type(x).__module__.partition(".")[0] == "cupy"


def host_copy(x: Any) -> np.ndarray:
    """A copy of `x` (a NumPy or CuPy array, or a number) as a NumPy array on the host: a
    CuPy array copied with `.get()` (a synchronisation; NumPy may not convert it itself)."""
    return x.get() if _is_cupy(x) else np.array(x)
