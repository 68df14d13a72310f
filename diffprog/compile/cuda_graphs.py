"""CUDA-graph replays: a replay on CuPy captured once as a CUDA graph, then relaunched.

Owns: `capture_blocker(graph)` (why a graph's replay cannot be captured, or None) and
`GraphReplay`, which captures a replay on a stream of its own and relaunches it: each call
copies the inputs into fixed device buffers (device to device, on the current stream),
launches the graph on the current stream and copies the outputs into new arrays. One launch
replaces one Python call and one kernel launch per operation. A call on another stream than
the last one waits for the last one's work first (they share the buffers).

Every allocation the capture makes comes from a memory pool the GraphReplay owns, and keeps
as long as it lives: a block freed during the capture is still written by every launch,
so CuPy's shared pool must never hand it to anyone else. The capture runs in CuPy's default
(relaxed) mode, in which that pool may grow.

What cannot be captured: a guard (Python reading a value to choose its path is a
synchronisation, and a graph takes one path), and Python numbers or NumPy scalars among the
inputs or outputs (host values: a graph keeps the value it was captured with; dp.optim's
step count is one in a state made from host params). Anything that synchronises or copies to or
from the host during the capture makes CUDA refuse it: the caller then replays uncaptured.
Layer L3 (beside ad/): imports compile.ir; CuPy is the `xp` it is given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..backend import is_array
from .ir import Graph, Var


def capture_blocker(graph: Graph) -> str | None:
    """Why `graph`'s replay cannot be captured as a CUDA graph, or None if it can be."""
    guards = graph.guards()
    if guards:
        return (f"its {len(guards)} guard(s) read values on the host (the first at "
                f"{guards[0].site or 'an unknown line'})")  # fmt: skip
    for v in graph.inputs:
        if v.kind != "array":
            return f"an input is {_host_kind(v)} (a graph would keep its first value)"
    for o in graph.outputs:
        if type(o) is Var and o.kind != "array":
            return f"an output is {_host_kind(o)} (a graph would keep its first value)"
    return None


def _host_kind(v: Var) -> str:
    return f"a NumPy {v.dtype} scalar" if v.kind == "scalar" else f"a Python {v.kind}"


class GraphReplay:
    """`replay` captured as a CUDA graph on CuPy (`xp`) with inputs like `inputs` (on the
    current device); calling it runs the graph on new inputs. Raises what CuPy raises when
    the replay cannot be captured."""

    def __init__(self, replay: Callable[[list], list], xp: Any, inputs: list) -> None:
        cuda = xp.cuda
        self.copyto = xp.copyto
        self.current_stream = cuda.get_current_stream
        self.pool = cuda.MemoryPool()  # the graph's memory: never handed to anyone else
        self.stream = cuda.Stream(non_blocking=True)
        with cuda.using_allocator(self.pool.malloc):
            self.buffers = [xp.empty_like(x) for x in inputs]
            with self.stream:
                self.stream.begin_capture()
                try:
                    self.outputs = replay(self.buffers)
                finally:  # ends the capture also when the replay raised
                    self.graph = self.stream.end_capture()

        self.last: tuple[int, Any] | None = None  # the stream of the last call, its end

    def __call__(self, inputs: list) -> list:
        stream = self.current_stream()
        if self.last is not None and self.last[0] != stream.ptr:  # its buffers may be in use
            stream.wait_event(self.last[1])
        for buffer, x in zip(self.buffers, inputs):
            self.copyto(buffer, x)
        self.graph.launch(stream=stream)
        outputs = [o.copy() if is_array(o) else o for o in self.outputs]
        self.last = (stream.ptr, stream.record())
        return outputs
