"""Streams, memory pools and CUDA-graph capture for the simulated CuPy.

A capture is modelled as strictly as a device enforces it, and stricter where a real device
would go on silently with a wrong result:
- `Stream.begin_capture()` (not on the null stream) starts recording every kernel run while
  that stream is current; each is still computed (for the shapes of its results), and at
  `end_capture()` every array allocated during the capture is filled with garbage, as a
  captured kernel has not run: a program that reads a capture's results without launching
  its graph gets garbage, as on a GPU.
- `Graph.launch()` runs the recorded kernels again, in order, on the memory they had: each
  writes its results into the arrays the capture made. So a graph that kept a value from
  capture time (a Python number baked into a kernel) replays it, and tests see it.
- During a capture, a synchronisation or a copy between host and device raises
  `StreamCaptureUnsupported` (cudaErrorStreamCaptureUnsupported), and so does an allocation
  from CuPy's default memory pool: after the capture that pool would hand the block to
  others while the graph still writes it (a real device corrupts memory silently). Allocate
  from a pool the graph's owner keeps (`cupy.cuda.using_allocator(pool.malloc)`); launching a
  graph whose pool was freed raises.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np


class StreamCaptureUnsupported(RuntimeError):
    """cudaErrorStreamCaptureUnsupported: an operation not permitted while capturing."""


class MemoryPool:
    """cupy.cuda.MemoryPool: a pool that `using_allocator(pool.malloc)` allocates from."""

    def malloc(self, size: int) -> Any:
        raise NotImplementedError("the simulated MemoryPool is used through using_allocator")

    def free_all_blocks(self) -> None:
        pass


DEFAULT_POOL = MemoryPool()
_allocator: list[Any] = [None]  # the bound `malloc` in use (None: the default pool's)


@contextlib.contextmanager
def using_allocator(allocator: Any = None) -> Iterator[None]:
    previous = _allocator[0]
    _allocator[0] = allocator
    try:
        yield
    finally:
        _allocator[0] = previous


class _Capture:
    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.kernels: list[tuple[Callable[[], Any], Any]] = []  # (run again, its results)
        self.allocated: list[Any] = []  # arrays made during the capture
        self.pools: list[Any] = []  # weak references to the private pools it allocated from
        self.error = ""  # what invalidated it


_capture: list[_Capture | None] = [None]


def capturing() -> _Capture | None:
    """The capture recording the kernels run now (its stream is current), or None."""
    c = _capture[0]
    return c if c is not None and _current_stream[0] is c.stream else None


def refuse(what: str) -> None:
    """Raise if `what` (a synchronisation, a host <-> device copy) happens during a capture."""
    if _capture[0] is not None:
        _invalidate(f"operation not permitted when stream is capturing ({what})")


def _invalidate(message: str) -> None:
    """Raise `message`; the capture is invalid from now on (end_capture raises)."""
    _capture[0].error = _capture[0].error or message
    raise StreamCaptureUnsupported(message)


def record(run: Callable[[], Any], results: Any, new_arrays: list) -> None:
    """A kernel run during the capture: how to run it again, the results it wrote, and the
    arrays it allocated (from the allocator in use: a private pool, else refused)."""
    c = capturing()
    if new_arrays:
        malloc = _allocator[0]
        pool = getattr(malloc, "__self__", None)
        if not isinstance(pool, MemoryPool) or pool is DEFAULT_POOL:
            _invalidate(
                "an allocation from CuPy's default memory pool during a CUDA graph capture: after "
                "the capture the pool would hand the block to others while the graph still "
                "writes it; allocate from a pool the graph's owner keeps "
                "(cupy.cuda.using_allocator(pool.malloc))")  # fmt: skip
        if all(ref() is not pool for ref in c.pools):
            c.pools.append(weakref.ref(pool))
        c.allocated += new_arrays
    c.kernels.append((run, results))


class Graph:
    """cupy.cuda.Graph: the kernels of one capture, launched again on their memory."""

    def __init__(self, capture: _Capture) -> None:
        self._kernels = capture.kernels
        self._pools = capture.pools

    def launch(self, stream: Any = None) -> None:
        refuse("graph launch inside a capture")
        if any(ref() is None for ref in self._pools):
            raise RuntimeError("the memory pool this graph allocated from was freed: its "
                               "blocks may now hold other arrays")  # fmt: skip
        for run, results in self._kernels:
            _write(results, run())


def _write(results: Any, values: Any) -> None:
    """Write a kernel's new `values` into the arrays it returned when captured."""
    if hasattr(results, "_a"):
        if results._a is not values:
            np.copyto(results._a, values)
    elif isinstance(results, (tuple, list)):
        for r, v in zip(results, values):
            _write(r, v)


class Stream:
    """cupy.cuda.Stream: a context manager making it current; begin/end_capture."""

    def __init__(self, null: bool = False, non_blocking: bool = False, ptds: bool = False,
                 priority: Any = None) -> None:  # fmt: skip
        self.ptr = 0 if null else id(self)
        self._previous: list[Stream] = []

    def __enter__(self) -> Stream:
        self._previous.append(_current_stream[0])
        _current_stream[0] = self
        return self

    def __exit__(self, *exc: Any) -> None:
        _current_stream[0] = self._previous.pop()

    def use(self) -> Stream:
        _current_stream[0] = self
        return self

    def synchronize(self) -> None:
        refuse("Stream.synchronize")

    def record(self, event: Any = None) -> Any:
        """An event marking the work queued so far (every kernel here has run already)."""
        return event if event is not None else object()

    def wait_event(self, event: Any) -> None:
        """Later work on this stream waits for `event` (here: it has happened)."""

    def is_capturing(self) -> bool:
        return _capture[0] is not None and _capture[0].stream is self

    def begin_capture(self, mode: Any = None) -> None:
        if self.ptr == 0:
            raise RuntimeError("cannot capture on the default (legacy) stream")
        if _capture[0] is not None:
            raise StreamCaptureUnsupported("a capture is already in progress")
        _capture[0] = _Capture(self)

    def end_capture(self) -> Graph:
        c = _capture[0]
        if c is None or c.stream is not self:
            raise RuntimeError("cudaErrorStreamCaptureInvalidated: the stream is not capturing")
        _capture[0] = None
        if c.error:
            raise RuntimeError(f"cudaErrorStreamCaptureInvalidated: {c.error}")
        for a in c.allocated:  # the kernels were captured, not run: their outputs hold garbage
            a._a[...] = np.nan if a._a.dtype.kind in "fc" else 1
        return Graph(c)


Stream.null = Stream(null=True)
_current_stream: list[Stream] = [Stream.null]
