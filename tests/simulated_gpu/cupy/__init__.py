"""A simulated CuPy for machines without a GPU: NumPy arrays behind CuPy's rules.

The gpu tests run against it in CI (tests/test_simulated_gpu.py puts this folder first on
the path of a pytest subprocess), so the CuPy code paths of diffprog run on every commit, not
only where a CUDA device is. It models what diffprog must get right and NumPy alone would not
check, more strictly than CuPy where that is the safer side:

- Device arrays are their own type (`cupy.ndarray`, module "cupy"), not NumPy arrays:
  `numpy.asarray(x)` and every NumPy function or ufunc given one raise TypeError, as CuPy's
  implicit-conversion guard does (CuPy would dispatch some NumPy functions; here none are).
- Moving data is explicit and counted (`transfers`): `.get()`, `asnumpy`, `float`, `int`,
  `bool`, `.item()`, `.tolist()` and printing copy to the host (a synchronisation: under
  `cupyx.allow_synchronize(False)` they raise `cupyx.DeviceSynchronized`); `asarray` and
  friends of host data copy to the device, as do NumPy index arrays in indexing,
  `take_along_axis` and `ufunc.at`. Any other CuPy kernel given a NumPy array (0-d too)
  raises TypeError; NumPy and Python scalars are taken as kernel arguments.
- CuPy 14.2's signatures where they are narrower than NumPy's (`REFUSED_KEYWORDS`; sort
  kinds; `ufunc.reduce` only for add and multiply; `ufunc.at` dtypes; no ufunc `where=`).
- Two GPUs (`cuda.runtime.getDeviceCount() == 2`) and a current device (`cuda.Device(n)` as
  a context manager): every operation runs on the current device, allocates its results
  there, and raises ValueError when an array it reads lives on another one (CuPy without
  peer access), so code must run each kernel where its data is.
- Reductions give 0-d device arrays, never NumPy scalars.
- `ElementwiseKernel` compiles its C++ with the host's g++ and runs it (_native.py); streams,
  private memory pools and CUDA graph capture are modelled strictly (_capture.py: a
  synchronisation, a host copy or a default-pool allocation during a capture raises, and a
  launched graph re-runs its kernels on the memory they had).
Checked against the cupy-cuda13x 14.2.0 wheel's source and signatures. Not modelled: the
rest of CuPy's API gaps (names in `NOT_IN_CUPY` are refused), asynchrony (streams order
nothing: every kernel runs at once), GPU rounding, peer access between GPUs.
"""

from __future__ import annotations

import contextlib
import operator
from typing import Any, Callable, Iterator

import numpy as _np

from . import _capture

__version__ = "14.2.0+simulated"

DEVICE_COUNT = 2
_current = [0]  # the current device (a stack of one; Device restores the previous one)

#: Host <-> device copies so far: `transfers["to_host"]`, `transfers["to_device"]`.
transfers = {"to_host": 0, "to_device": 0}
_sync_allowed = [True]  # cupyx.allow_synchronize

#: NumPy functions CuPy 14 does not have (refused here as AttributeError).
NOT_IN_CUPY = frozenset({"asmatrix", "matrix", "busday_count", "round_"})

#: Keyword arguments NumPy takes and CuPy 14.2 refuses with TypeError (functions and the
#: ndarray methods of the same name).
REFUSED_KEYWORDS = {
    "sum": {"where", "initial"}, "prod": {"where", "initial"}, "mean": {"where"},
    "max": {"where", "initial"}, "amax": {"where", "initial"}, "min": {"where", "initial"},
    "amin": {"where", "initial"}, "clip": {"min", "max"}, "broadcast_to": {"subok"},
    "einsum": {"out", "order", "casting"}, "take": {"mode"}, "cholesky": {"upper"},
    "pinv": {"hermitian", "rtol"}, "svd": {"hermitian"}, "count_nonzero": {"keepdims"},
    "astype": {"casting", "subok"}, "sort": {"order", "stable"}, "argsort": {"order", "stable"},
}  # fmt: skip

# Functions taking host data (copied to the device, counted): creation, and the indexing
# routines that convert NumPy index arrays themselves.
# Functions that read only their arguments' shapes and dtypes: any device (the result is
# made on the current one).
_METADATA_ONLY = frozenset({"zeros_like", "ones_like", "empty_like", "shape", "ndim",
                            "result_type"})  # fmt: skip
_HOST_INPUT = frozenset({"asarray", "array", "asanyarray", "ascontiguousarray", "einsum",
                         "take_along_axis", "at"})  # fmt: skip


class DeviceSynchronized(RuntimeError):
    """Raised (as cupyx.DeviceSynchronized) by a synchronisation under
    allow_synchronize(False)."""


def _to_host(what: str) -> None:
    _capture.refuse(what)
    if not _sync_allowed[0]:
        raise DeviceSynchronized(f"device synchronization was detected ({what})")
    transfers["to_host"] += 1


def _on_current_device(gpu: int) -> None:
    if gpu != _current[0]:
        raise ValueError(
            f"The device where the array resides ({gpu}) is different from the current "
            f"device ({_current[0]}). Peer access is unavailable between these devices."
        )


def _unwrap(value: Any, host_ok: bool, any_device: bool = False) -> Any:
    """The NumPy data behind `value` (recursing into lists and tuples) for one kernel on
    the current device (`any_device`: a function reading only shapes and dtypes)."""
    if type(value) is ndarray:
        if not any_device:
            _on_current_device(value._gpu)
        return value._a
    if isinstance(value, _np.ndarray):
        if not host_ok:
            raise TypeError(f"Unsupported type {type(value)}")
        _capture.refuse("a host-to-device copy")
        transfers["to_device"] += 1
        return value
    if type(value) in (list, tuple):
        return type(value)(_unwrap(v, host_ok, any_device) for v in value)
    if hasattr(value, "__array_ufunc__") and not isinstance(value, _np.generic):
        raise TypeError(f"Unsupported type {type(value)}")  # another library's array
    return value


def _wrap(value: Any) -> Any:
    """Results on the current device: arrays and NumPy scalars become 0-d or n-d device
    arrays; tuples (named ones too) and lists are rebuilt around them."""
    if isinstance(value, (_np.ndarray, _np.generic)):
        out = ndarray.__new__(ndarray)
        out._a = _np.asarray(value)
        out._gpu = _current[0]
        return out
    if isinstance(value, tuple):
        items = [_wrap(v) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)
    if isinstance(value, list):
        return [_wrap(v) for v in value]
    return value


def _check_signature(name: str, kwargs: dict) -> None:
    refused = REFUSED_KEYWORDS.get(name, set()).intersection(kwargs)
    if refused:
        raise TypeError(f"cupy {name}() got unsupported keyword argument(s) {sorted(refused)}")
    if name in ("sort", "argsort") and kwargs.get("kind") not in (None, "stable"):
        raise ValueError("kind can only be None or 'stable'")


def _kernel(fn: Callable[..., Any], args: tuple, kwargs: dict, host_ok: bool = False,
            any_device: bool = False) -> Any:  # fmt: skip
    """`fn` run on the data of device arrays `args`, `kwargs`; its results as device arrays.
    During a CUDA graph capture it is recorded too (see _capture), and computed on the
    capture's buffers (garbage) without NumPy's warnings: a GPU computes nothing then."""
    raw_args = _unwrap(args, host_ok, any_device)
    raw_kwargs = {k: _unwrap(v, host_ok, any_device) for k, v in kwargs.items()}
    capturing = _capture.capturing() is not None
    with _np.errstate(all="ignore") if capturing else contextlib.nullcontext():
        result = _wrap(fn(*raw_args, **raw_kwargs))
    if capturing:
        read = [a for a in _leaves((raw_args, raw_kwargs)) if isinstance(a, _np.ndarray)]
        new = [r for r in _leaves(result) if type(r) is ndarray and r._a.base is None
               and not any(_np.may_share_memory(r._a, a) for a in read)]  # fmt: skip
        _capture.record(lambda: fn(*_unwrap(args, host_ok, True),
                                   **{k: _unwrap(v, host_ok, True) for k, v in kwargs.items()}),
                        result, new)  # fmt: skip
    return result


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


class _Flags:
    def __init__(self, flags: Any) -> None:
        self.c_contiguous = flags.c_contiguous
        self.f_contiguous = flags.f_contiguous
        self.owndata = flags.owndata


class ndarray:  # noqa: N801  (CuPy's name)
    """A device array: NumPy data `_a` on simulated GPU `_gpu`."""

    __slots__ = ("_a", "_gpu")
    __array_priority__ = 100.0
    __array_ufunc__ = None  # NumPy ufuncs refuse it (binary operators defer to ours)
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, shape: Any, dtype: Any = float, memptr: Any = None, strides: Any = None,
                 order: str = "C") -> None:
        self._a = _np.empty(shape, dtype, order=order)
        self._gpu = _current[0]

    # -- metadata (no kernel, no transfer)
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    itemsize = property(lambda self: self._a.itemsize)
    nbytes = property(lambda self: self._a.nbytes)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: _Flags(self._a.flags))  # CuPy's three (no `writeable`)
    device = property(lambda self: cuda.Device(self._gpu))
    T = property(lambda self: _kernel(lambda a: a.T, (self,), {}))
    mT = property(lambda self: _kernel(lambda a: a.mT, (self,), {}))
    real = property(lambda self: _kernel(lambda a: a.real, (self,), {}))
    imag = property(lambda self: _kernel(lambda a: a.imag, (self,), {}))

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self) -> Iterator[ndarray]:
        for i in range(len(self)):
            yield self[i]

    # -- copies to the host (synchronisations)
    def get(self, stream: Any = None, order: str = "C", out: Any = None) -> _np.ndarray:
        _to_host("get")
        return self._a.copy()

    def item(self) -> Any:
        _to_host("item")
        return self._a.item()

    def tolist(self) -> Any:
        _to_host("tolist")
        return self._a.tolist()

    def tobytes(self, order: str = "C") -> bytes:
        _to_host("tobytes")
        return self._a.tobytes(order)

    def _scalar(self, convert: Callable[[Any], Any], what: str) -> Any:
        _to_host(what)
        return convert(self._a)

    __float__ = lambda self: self._scalar(float, "float")  # noqa: E731
    __int__ = lambda self: self._scalar(int, "int")  # noqa: E731
    __index__ = lambda self: self._scalar(operator.index, "index")  # noqa: E731
    __complex__ = lambda self: self._scalar(complex, "complex")  # noqa: E731
    __bool__ = lambda self: self._scalar(bool, "bool")  # noqa: E731
    __repr__ = lambda self: self._scalar(repr, "repr")  # noqa: E731
    __str__ = lambda self: self._scalar(str, "str")  # noqa: E731
    __format__ = lambda self, spec: self._scalar(lambda a: format(a, spec), "format")  # noqa: E731

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. Please use `.get()` to "
            "construct a NumPy array explicitly."
        )

    # -- kernels
    def __getitem__(self, key: Any) -> Any:
        return _kernel(operator.getitem, (self, key), {}, host_ok=True)

    def __setitem__(self, key: Any, value: Any) -> None:
        _kernel(operator.setitem, (self, key, value), {}, host_ok=True)

    def __copy__(self) -> ndarray:
        return self.copy()

    def __deepcopy__(self, memo: Any) -> ndarray:
        return self.copy()

    def __getattr__(self, name: str) -> Any:  # the other ndarray methods, as kernels
        if name.startswith("__") or name in ndarray.__slots__:
            raise AttributeError(name)
        method = getattr(self._a, name)
        if not callable(method):
            return method

        def kernel(*args: Any, **kwargs: Any) -> Any:
            _check_signature(name, kwargs)
            return _kernel(lambda a, *args, **kwargs: getattr(a, name)(*args, **kwargs),
                           (self, *args), kwargs)

        return kernel


def _operator(fn: Callable[..., Any], ufunc: Any = None, swap: bool = False) -> Callable[..., Any]:
    """An operator method. As CuPy's: an operand of another library that implements
    __array_ufunc__ is offered the operation (through NumPy's ufunc, which CuPy's
    __array_ufunc__ declines for types it does not know); one that sets it to None gets
    NotImplemented, so Python tries its reflected method."""

    def method(self: ndarray, *other: Any) -> Any:
        if other and type(other[0]) is not ndarray and hasattr(other[0], "__array_ufunc__"):
            theirs = other[0].__array_ufunc__
            if theirs is None:
                return NotImplemented
            if not isinstance(other[0], (_np.ndarray, _np.generic)):
                inputs = (other[0], self) if swap else (self, other[0])
                return theirs(ufunc, "__call__", *inputs)
        return _kernel(fn, (other[0], self) if swap else (self, *other), {})

    return method


def _inplace(fn: Callable[..., Any]) -> Callable[..., Any]:
    def method(self: ndarray, other: Any) -> ndarray:
        _kernel(fn, (self, other), {})
        return self

    return method


_BINARY = {"add": "add", "sub": "subtract", "mul": "multiply", "truediv": "true_divide",
           "floordiv": "floor_divide", "mod": "remainder", "pow": "power", "matmul": "matmul",
           "and": "bitwise_and", "or": "bitwise_or", "xor": "bitwise_xor",
           "lshift": "left_shift", "rshift": "right_shift"}  # fmt: skip
_COMPARE = {"lt": "less", "le": "less_equal", "gt": "greater", "ge": "greater_equal",
            "eq": "equal", "ne": "not_equal"}  # fmt: skip
for _name, _ufunc in _BINARY.items():
    _fn = getattr(operator, _name + "_" if _name in ("and", "or") else _name)
    setattr(ndarray, f"__{_name}__", _operator(_fn, getattr(_np, _ufunc)))
    setattr(ndarray, f"__r{_name}__", _operator(_fn, getattr(_np, _ufunc), swap=True))
    setattr(ndarray, f"__i{_name}__", _inplace(getattr(operator, "i" + _name)))
for _name, _ufunc in _COMPARE.items():
    setattr(ndarray, f"__{_name}__", _operator(getattr(operator, _name), getattr(_np, _ufunc)))
for _name in ("neg", "pos", "abs", "invert"):
    setattr(ndarray, f"__{_name}__", _operator(getattr(operator, _name)))


class _Function:
    """A NumPy function run as a CuPy one."""

    def __init__(self, fn: Callable[..., Any], name: str) -> None:
        self._fn = fn
        self.__name__ = name
        self._host_ok = name in _HOST_INPUT

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        _check_signature(self.__name__, kwargs)
        if self.__name__ == "take_along_axis" and len(args) + len(kwargs) < 3:
            raise TypeError("take_along_axis() missing required argument 'axis'")
        if self.__name__ in ("asarray", "array") and args and type(args[0]) is ndarray:
            a = args[0]  # on another GPU: copied to the current one (CuPy copies peer to peer)
            moved = _wrap(a._a.copy() if a._gpu != _current[0] else a._a)
            return moved if not kwargs.get("dtype") else moved.astype(kwargs["dtype"])
        if self._host_ok and args and type(args[0]) in (list, tuple, float, int, bool):
            _capture.refuse("a host-to-device copy")
            transfers["to_device"] += 1  # host data given as Python values
        return _kernel(self._fn, args, kwargs, self._host_ok, self.__name__ in _METADATA_ONLY)


class _Ufunc(_Function):
    """A NumPy ufunc run as a CuPy one, with its methods."""

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._fn, name)
        if not callable(attr):
            return attr
        if name in ("reduce", "accumulate") and self.__name__ not in ("add", "multiply"):
            raise NotImplementedError(f"cupy.{self.__name__}.{name} is not supported")

        def method(*args: Any, **kwargs: Any) -> Any:
            target = args[0] if args else None
            if name == "at" and type(target) is ndarray and target.dtype not in _AT_DTYPES:
                raise TypeError(f"cupy.{self.__name__}.at does not support {target.dtype}")
            return _kernel(attr, args, kwargs, host_ok=name == "at")

        return method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if "where" in kwargs:
            raise TypeError("Wrong arguments: where= is not supported by CuPy ufuncs")
        return _kernel(self._fn, args, kwargs)


_AT_DTYPES = {_np.dtype(t) for t in ("int32", "float16", "float32", "float64", "uint32", "uint64")}


class _Namespace:
    """A NumPy submodule (linalg, random, fft) run as CuPy's."""

    def __init__(self, module: Any, name: str) -> None:
        self._module = module
        self.__name__ = name

    def __getattr__(self, name: str) -> Any:
        return _simulated(getattr(self._module, name), name)


def _simulated(target: Any, name: str) -> Any:
    if isinstance(target, _np.ufunc):
        return _Ufunc(target, name)
    if isinstance(target, type) or not callable(target):
        return target  # dtypes, scalar types, constants
    return _Function(target, name)


def __getattr__(name: str) -> Any:  # module attributes: NumPy's, run as kernels
    if name.startswith("__") or name in NOT_IN_CUPY:
        raise AttributeError(f"module 'cupy' has no attribute {name!r}")
    value = _simulated(getattr(_np, name), name)
    globals()[name] = value
    return value


linalg = _Namespace(_np.linalg, "cupy.linalg")
fft = _Namespace(_np.fft, "cupy.fft")
random = _Namespace(_np.random, "cupy.random")


def asnumpy(a: Any, stream: Any = None, order: str = "C", out: Any = None) -> _np.ndarray:
    return a.get() if type(a) is ndarray else _np.asarray(a)


def get_array_module(*args: Any) -> Any:
    import sys

    return sys.modules[__name__] if any(type(a) is ndarray for a in args) else _np


class _Runtime:
    @staticmethod
    def getDeviceCount() -> int:  # noqa: N802  (CUDA's name)
        return DEVICE_COUNT

    @staticmethod
    def getDevice() -> int:  # noqa: N802
        return _current[0]

    @staticmethod
    def setDevice(n: int) -> None:  # noqa: N802
        _current[0] = int(n)

    @staticmethod
    def runtimeGetVersion() -> int:  # noqa: N802
        return 13000

    @staticmethod
    def getDeviceProperties(n: int) -> dict[str, Any]:  # noqa: N802
        return {"name": b"Simulated GPU (NumPy)", "totalGlobalMem": 0,
                "multiProcessorCount": 0}


class _Device:
    """cupy.cuda.Device: `id`; a context manager making it the current device."""

    def __init__(self, device: Any = None) -> None:
        self.id = _current[0] if device is None else int(device)
        if not 0 <= self.id < DEVICE_COUNT:
            raise RuntimeError(f"cudaErrorInvalidDevice: invalid device ordinal {self.id}")
        self._previous: list[int] = []

    def __enter__(self) -> _Device:
        self._previous.append(_current[0])
        _current[0] = self.id
        return self

    def __exit__(self, *exc: Any) -> None:
        _current[0] = self._previous.pop()

    def use(self) -> None:
        _current[0] = self.id

    def synchronize(self) -> None:
        _capture.refuse("Device.synchronize")
        if not _sync_allowed[0]:
            raise DeviceSynchronized("device synchronization was detected (Device.synchronize)")

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _Device) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<CUDA Device {self.id}>"


class cuda:  # noqa: N801  (a namespace, as CuPy's submodule)
    Device = _Device
    runtime = _Runtime
    get_current_stream = staticmethod(lambda: _capture._current_stream[0])
    Stream = _capture.Stream
    Graph = _capture.Graph
    MemoryPool = _capture.MemoryPool
    using_allocator = staticmethod(_capture.using_allocator)


def get_default_memory_pool() -> _capture.MemoryPool:
    return _capture.DEFAULT_POOL


@contextlib.contextmanager
def _allow_synchronize(allow: bool) -> Iterator[None]:
    previous = _sync_allowed[0]
    _sync_allowed[0] = bool(allow)
    try:
        yield
    finally:
        _sync_allowed[0] = previous


from ._native import ElementwiseKernel, ReductionKernel  # noqa: F401  (last: they use ndarray)
