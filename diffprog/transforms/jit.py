"""dp.jit: record a function once under guards, optimize the graph, replay it.

Owns: `jit` and `Jitted`. A call is keyed by its signature: the tree structure of the
arguments, the type, shape, dtype and device of every array leaf and Python float (these are
the graph's inputs), and the value of every other leaf and of the static arguments (these are
constants of the recording). The first call with a new signature runs `f` eagerly under a
staging trace (ad.staging), which records every primitive, the backward pass of any
transform inside included, and every concrete value Python read (the guards); the graph is
optimized (compile.passes), each matrix product given its faster BLAS form on NumPy
arrays (compile.layout), its elementwise chains fused into numba loops on NumPy arrays
and CuPy ElementwiseKernels on CuPy ones (compile.fusion), its small softmax / log_softmax
on NumPy arrays into one numba loop each (compile.rows; `fuse=False`, or numba missing on
NumPy, skips both) and compiled to straight-line Python (compile.codegen).

Later calls replay it. A guard that fails means the program takes another path this time:
the call tries the other recorded variants of its signature, and else records a new one
(the recording's result is the eager result, so every call is right). After `max_variants`
variants a signature runs eagerly, with one warning naming the guard and its line. A replay
that raises runs the call again eagerly, so errors come from the user's line as usual.

Arrays read from outside the arguments (closures, globals) are constants of the recording;
an in-place change to one of them is detected at the next call (each NumPy constant the
function's own code handed to an operation is compared with a copy of its bytes, or with a
checksum past SNAPSHOT_BYTES of copies) and the call records anew. One that reached the
traced values only through a computation on constants (`x * np.exp(w)`) is not seen: the
graph holds that computation's result.
Randomness comes in through the arguments: draw outside and pass the numbers in. A replay
cannot draw: if `f` draws from NumPy's global generator or from a Generator among its
arguments while it is recorded, its signature runs eagerly from then on, with a warning
(one in f's closure, or a global f names, is seen too; one used only by the functions f
calls is not: its draws would be replayed as constants). So does one that calls dp.load,
dp.save or a collective of dp.distributed (ad.staging.note_side_effect): a replay would not
read or write the file, or communicate, again, and would return what the recording got.
Inside another transform, or under dp.debug_nans, `f` runs inline, as it is.
Layer L5: imports L0-L4.
"""

from __future__ import annotations

import functools
import inspect
import types
import warnings
import zlib
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from .. import tree
from ..ad.staging import StagingTrace, StagingTracer
from ..backend import device_scope, is_array, namespace_of
from ..compile import cuda_graphs, fusion, kernels, layout, rows
from ..compile.codegen import GuardFailed, generate
from ..compile.ir import Const, Graph
from ..compile.passes import optimize
from ..core.gc_pause import gc_paused
from ..core.trace import Tracer, open_trace, tracing
from ..debug import debug_nans_on
from .random_streams import draw_state, generators_of, same_state


def jit(
    f: Callable[..., Any] | None = None,
    *,
    static_argnums: int | Sequence[int] = (),
    static_argnames: str | Sequence[str] = (),
    max_variants: int = 8,
    fuse: bool = True,
    cuda_graph: bool = True,
) -> Any:
    """`f` recorded once per signature and replayed: same results, less Python per call.

    Usable as `dp.jit(f)`, `@dp.jit` or `@dp.jit(static_argnums=1)`. Static arguments are
    part of the signature by value (they must be hashable); so are Python ints, bools and
    strings anywhere in the arguments. `jitted.lower(*args)` shows the optimized graph;
    `jitted.stats` counts recordings, replays and guard failures. With `fuse` (the default),
    groups of elementwise operations run as one compiled loop each (compile.fusion): on
    NumPy arrays a numba loop (`pip install diffprog[jit]`, else the replay runs unfused,
    with one warning), on CuPy arrays a CuPy ElementwiseKernel. With `cuda_graph` (the
    default), a replay on CuPy is captured as a CUDA graph at its second replay and
    relaunched from then on (compile.cuda_graphs; `stats["graph_replays"]` counts them,
    `last_uncaptured_reason` says why the last replay ran without one).

    >>> import numpy as np, diffprog as dp, diffprog.numpy as dnp
    >>> step = dp.jit(dp.value_and_grad(lambda w: dnp.sum(dnp.sin(w) * w)))
    >>> value, grad = step(np.zeros(3))
    >>> value, grad = step(np.ones(3))  # replayed
    >>> step.stats["recordings"], step.stats["replays"]
    (1, 1)
    """
    options = (static_argnums, static_argnames, max_variants, fuse, cuda_graph)
    if f is None:
        return lambda g: Jitted(g, *options)
    return Jitted(f, *options)


class Variant:
    """One recorded path: its optimized graph, its replay, and how to rebuild the output."""

    __slots__ = ("graph", "replay", "out_def", "constants", "copies", "xp", "replays",
                 "captured", "uncaptured", "eager_aliases")  # fmt: skip

    def __init__(self, graph: Graph, xp: Any, out_def: Any, constants: list, fuse: bool,
                 cuda_graph: bool, eager_aliases: set) -> None:  # fmt: skip
        self.graph = optimize(graph, xp)
        if fuse and (xp is not np or fusion_available()):  # numba for NumPy; CuPy's own kernels
            if xp is np:  # the kernels follow the layouts the products' forms give
                self.graph = layout.choose_forms(self.graph)
            self.graph = fusion.fuse(self.graph, xp)
            if xp is np:
                self.graph = rows.fuse_rows(self.graph)
        self.replay = generate(self.graph, xp)
        self.out_def = out_def
        self.constants = []  # (array, whether its bytes are copied, its fingerprint)
        room = SNAPSHOT_BYTES
        for c in constants:
            copy = c.nbytes <= room
            room -= c.nbytes if copy else 0
            self.constants.append((c, copy, _fingerprint(c, copy)))
        #: outputs that are constant arrays: copied per call, as eager makes new ones
        self.copies = [i for i, o in enumerate(self.graph.outputs)
                       if type(o) is Const and is_array(o.value)]  # fmt: skip
        #: which outputs shared memory with an input or an earlier output in the eager call
        #: (None once the first replay has added those that share more to `copies`)
        self.eager_aliases: set | None = eager_aliases
        self.xp, self.replays = xp, 0
        self.captured: cuda_graphs.GraphReplay | None = None
        #: why replays run without a CUDA graph ("" while one may still be captured)
        self.uncaptured = ("not on CuPy" if xp is np else "turned off (cuda_graph=False)"
                           if not cuda_graph else cuda_graphs.capture_blocker(self.graph) or "")  # fmt: skip

    def constants_unchanged(self) -> bool:
        return all(_fingerprint(c, copy) == before for c, copy, before in self.constants)

    def run(self, inputs: list) -> Any:
        out = self.launch(inputs)
        if self.eager_aliases is not None:  # the first replay: an output that is (a view of)
            # an input or another output where eager's was not, since the optimizer merged or
            # removed what made it new (x * 1, a repeated x * 2), is copied on every replay
            more = aliases(inputs, out, exact=False) - self.eager_aliases
            self.copies = sorted(set(self.copies) | {i for _, i in more})
            self.eager_aliases = None
        for i in self.copies:
            out[i] = out[i].copy()
        return tree.unflatten(self.out_def, out)

    def launch(self, inputs: list) -> list:
        """The replay's outputs: from its CUDA graph, captured at the second replay, where it
        can be (the first compiles CuPy's kernels, which a capture cannot do)."""
        if self.captured is not None:
            return self.captured(inputs)
        self.replays += 1
        if self.uncaptured or self.replays < 2:
            return self.replay(inputs)
        try:
            self.captured = cuda_graphs.GraphReplay(self.replay, self.xp, inputs)
        except Exception as e:  # noqa: BLE001 - CUDA refused it: replays run uncaptured
            self.uncaptured = f"capturing it raised {type(e).__name__}: {e}"
            return self.replay(inputs)
        return self.captured(inputs)


class Signature:
    """Everything of one call that a replay cannot change: structure, static values, and
    the avals (type, shape, dtype, device) of its input leaves."""

    __slots__ = ("key", "inputs", "leaves", "treedef", "xp")

    def __init__(self, jitted: Jitted, args: tuple, kwargs: dict) -> None:
        nums, names = jitted.static_positions(len(args)), jitted.static_argnames
        if nums or names:
            static_args = tuple((i, _typed(args[i])) for i in nums if 0 <= i < len(args))
            static_kw = tuple(sorted((k, _typed(v)) for k, v in kwargs.items() if k in names))
            dynamic = (tuple(None if i in nums else a for i, a in enumerate(args)),
                       {k: v for k, v in kwargs.items() if k not in names})  # fmt: skip
        else:  # (the common case, without the scans)
            static_args, static_kw, dynamic = (), (), (args, kwargs)
        self.leaves, self.treedef = tree.flatten(dynamic)
        parts: list[Any] = []
        self.inputs = []
        numpy_only = True
        for i, leaf in enumerate(self.leaves):
            t = type(leaf)
            if t is np.ndarray:
                parts.append((t, leaf.shape, leaf.dtype, "cpu"))
                self.inputs.append(i)
            elif t is float or t is complex:  # Python numbers a replay takes as inputs
                parts.append(t)
                self.inputs.append(i)
            elif is_array(leaf):
                parts.append((t, leaf.shape, leaf.dtype, _device(leaf)))
                self.inputs.append(i)
                numpy_only = False
            else:
                parts.append((t, leaf))
        self.key = (self.treedef, tuple(parts), static_args, static_kw)
        try:
            hash(self.key)
        except TypeError:
            raise TypeError(_unhashable(jitted, args, kwargs, self)) from None
        self.xp = np if numpy_only else namespace_of([self.leaves[i] for i in self.inputs])

    def input_values(self) -> list:
        return [self.leaves[i] for i in self.inputs]

    def rebuild(self, jitted: Jitted, args: tuple, kwargs: dict, leaves: list) -> tuple:
        """The call's (args, kwargs) with the dynamic leaves replaced by `leaves`."""
        dyn_args, dyn_kwargs = tree.unflatten(self.treedef, leaves)
        static = jitted.static_positions(len(args))
        new_args = tuple(a if i in static else d
                         for i, (a, d) in enumerate(zip(args, dyn_args)))  # fmt: skip
        return new_args, {**kwargs, **dyn_kwargs}


class Entry:
    """The variants recorded for one signature, most recently replayed first."""

    __slots__ = ("variants", "eager", "last_failure")

    def __init__(self) -> None:
        self.variants: list[Variant] = []
        self.eager = False
        self.last_failure = ""


class Jitted:
    """A jitted function: call it like `f`. See `jit`."""

    def __init__(self, f: Callable[..., Any], static_argnums: Any, static_argnames: Any,
                 max_variants: int, fuse: bool = True, cuda_graph: bool = True) -> None:  # fmt: skip
        functools.update_wrapper(self, f)
        self.f = f
        nums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        names = (static_argnames,) if isinstance(static_argnames, str) else tuple(static_argnames)
        self.static_argnums, self.static_argnames = _both_ways(f, nums, names)
        self.all_static_nonnegative = all(i >= 0 for i in self.static_argnums)
        if max_variants < 1:
            raise ValueError(f"dp.jit: max_variants must be at least 1, got {max_variants}")
        self.max_variants = max_variants
        self.fuse, self.cuda_graph = fuse, cuda_graph
        self.cache: dict[Any, Entry] = {}
        self.stats = {"recordings": 0, "replays": 0, "guard_failures": 0, "eager_calls": 0,
                      "graph_replays": 0}  # fmt: skip
        #: why the last call that ran eagerly did so
        self.last_eager_reason = ""
        #: why the last replay on CuPy did not launch a CUDA graph ("" if it did)
        self.last_uncaptured_reason = ""

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        """`@dp.jit` on a method: the instance is the call's first argument (a pytree if its
        class is registered, else a constant of the recording, keyed by its hash)."""
        return self if instance is None else types.MethodType(self, instance)

    def static_positions(self, n_args: int) -> tuple[int, ...]:
        """`static_argnums` as positions in a call with `n_args` positional arguments
        (negative ones count from the end, as in Python's indexing)."""
        if self.all_static_nonnegative:  # (the common case, without the scan)
            return self.static_argnums
        return tuple(i + n_args if i < 0 else i for i in self.static_argnums)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if tracing() or debug_nans_on():  # inside another transform: run inline, as it is
            return self.f(*args, **kwargs)
        sig = Signature(self, args, kwargs)
        entry = self.cache.get(sig.key)
        if entry is None:
            entry = self.cache[sig.key] = Entry()
        if entry.eager:
            self.stats["eager_calls"] += 1
            return self.f(*args, **kwargs)
        inputs = sig.input_values()
        for i, variant in enumerate(entry.variants):
            if not variant.constants_unchanged():
                del entry.variants[i]
                break
            try:
                if sig.xp is np:  # no device to choose
                    out = variant.run(inputs)
                else:
                    with device_scope(inputs):
                        out = variant.run(inputs)
            except GuardFailed as e:
                self.stats["guard_failures"] += 1
                guard = variant.graph.guards()[e.index]
                entry.last_failure = f"{guard.how}() of a traced value at {guard.site or 'an unknown line'}"
                continue
            except Exception as e:  # noqa: BLE001 - the eager call raises it from the user's line
                self.stats["eager_calls"] += 1
                self.last_eager_reason = f"the replay raised {type(e).__name__}: {e}"
                return self.f(*args, **kwargs)
            self.stats["replays"] += 1
            if variant.captured is not None:
                self.stats["graph_replays"] += 1
            self.last_uncaptured_reason = variant.uncaptured or (
                "" if variant.captured else "captured at the next replay")
            if i:
                entry.variants.insert(0, entry.variants.pop(i))
            return out
        if len(entry.variants) >= self.max_variants:
            entry.eager = True
            warnings.warn(
                f"dp.jit({_name(self.f)}) recorded {len(entry.variants)} variants for one "
                f"signature and the program took yet another path: the guard that failed last "
                f"is {entry.last_failure}. From now on this signature runs eagerly. Guards come "
                "from Python reading traced values (if/while on them, int(), float(), .item(), "
                "np.asarray); dnp.where computes both branches without a guard",
                RuntimeWarning,
                stacklevel=2,
            )
            self.stats["eager_calls"] += 1
            self.last_eager_reason = f"too many variants; the last guard that failed: {entry.last_failure}"
            return self.f(*args, **kwargs)
        variant, out = self.record(sig, args, kwargs)
        if isinstance(variant, Unreplayable):
            entry.eager = True
            self.last_eager_reason = variant.reason
            warnings.warn(f"dp.jit({_name(self.f)}) {variant.warning}", RuntimeWarning,
                          stacklevel=2)
            return out
        entry.variants.insert(0, variant)
        return out

    def record(self, sig: Signature, args: tuple, kwargs: dict
               ) -> tuple[Variant | Unreplayable, Any]:
        """Run f eagerly under a staging trace: (the new variant, the call's result). In
        place of the variant, why it cannot be replayed when f drew random numbers from
        NumPy's global generator or from a Generator among its arguments (replaying would
        repeat those draws), or did what a replay would not do again (read or write a
        checkpoint, communicate: ad.staging.note_side_effect). The collector
        pauses meanwhile: its passes would walk every node of the graph being optimized
        and compiled, again and again (W6's 100,000-op chain: about 40% of a warm first
        call)."""
        with gc_paused():
            return self._record(sig, args, kwargs)

    def _record(self, sig: Signature, args: tuple, kwargs: dict
                ) -> tuple[Variant | Unreplayable, Any]:
        self.stats["recordings"] += 1
        static = [args[i] for i in self.static_positions(len(args)) if 0 <= i < len(args)]
        generators = generators_of(self.f, sig.leaves + static + list(kwargs.values()))
        before = [draw_state(g) for g in generators]
        with device_scope(sig.input_values()), open_trace(StagingTrace, "dp.jit") as trace:
            leaves = list(sig.leaves)
            for i in sig.inputs:
                leaves[i] = trace.new_input(leaves[i])
            call_args, call_kwargs = sig.rebuild(self, args, kwargs, leaves)
            out = self.f(*call_args, **call_kwargs)
            out_leaves, out_def = tree.flatten(out)
            outputs, values = [], []
            for leaf in out_leaves:
                if type(leaf) is StagingTracer and leaf._trace is trace:
                    outputs.append(leaf.var)
                    values.append(leaf.value)
                elif isinstance(leaf, Tracer):
                    raise leaf._trace.escaped_error()
                else:  # a constant: the graph keeps it, the caller gets a copy
                    outputs.append(Const(leaf))
                    values.append(leaf.copy() if hasattr(leaf, "copy") and is_array(leaf) else leaf)
        result = tree.unflatten(out_def, values)
        drew = [g for g, state in zip(generators, before) if not same_state(draw_state(g), state)]
        if drew:  # a replay would repeat the recording's draws
            return _DRAWS, result
        if trace.side_effects:  # a replay would not do them again
            return _side_effects(trace.side_effects), result
        graph = Graph(trace.inputs, trace.body, outputs)
        with device_scope(sig.input_values()):  # fusion checks its kernels on the inputs' GPU
            xp = sig.xp if sig.xp is not np else _module_of_constants(graph)
            variant = Variant(graph, xp, out_def, _user_constants(graph), self.fuse,
                              self.cuda_graph, aliases(sig.input_values(), values, exact=True))  # fmt: skip
            return variant, result

    def lower(self, *args: Any, **kwargs: Any) -> Lowered:
        """Record `f` on these arguments and show the result: `.text()`, `.to_dot()`,
        `.source` (the generated replay)."""
        sig = Signature(self, args, kwargs)
        variant, _ = self.record(sig, args, kwargs)
        self.stats["recordings"] -= 1  # a look, not a recording of the cache
        if isinstance(variant, Unreplayable):
            raise ValueError(f"dp.jit({_name(self.f)}) cannot be recorded: {variant.reason} "
                             f"({variant.advice})")
        return Lowered(variant)

    def __repr__(self) -> str:
        return f"<dp.jit of {_name(self.f)}: {self.stats}>"


class Lowered:
    """What dp.jit made of one call: the optimized graph and its generated replay."""

    def __init__(self, variant: Variant) -> None:
        self.graph = variant.graph
        self.source: str = variant.replay.source  # type: ignore[attr-defined]

    def text(self) -> str:
        return self.graph.text()

    def to_dot(self) -> str:
        return self.graph.to_dot()

    def __str__(self) -> str:
        return self.text()


class Unreplayable(NamedTuple):
    """Why a recording cannot be replayed: `reason` (step.last_eager_reason), the `warning`
    that says so (after "dp.jit(f) ") and the `advice` lower() gives."""

    reason: str
    warning: str
    advice: str


_DRAWS = Unreplayable(
    "it draws random numbers",
    "drew random numbers while recording (from NumPy's global generator or a Generator "
    "among its arguments, in its closure or in a global it names): a replay would repeat "
    "the same draws, so this signature runs eagerly. Draw outside the jitted function and "
    "pass the numbers in as an argument",
    "pass them in as an argument")


def _side_effects(calls: list[str]) -> Unreplayable:
    """Why a recording that made `calls` (dp.load, dp.save, dp.distributed's collectives)
    cannot be replayed: a replay would return what the recording read, and not do them."""
    names = ", ".join(dict.fromkeys(calls))
    advice = ("call it outside the jitted function: load before and pass the tree in as an "
              "argument; save, or reduce across processes, what it returns")
    return Unreplayable(
        f"it calls {names}",
        f"called {names} while recording: a replay would not do that again (read or write "
        f"the file, communicate with the other processes) and would return what the "
        f"recording got, so this signature runs eagerly. To replay it, {advice}",
        advice)


_warned_no_numba = False


def fusion_available() -> bool:
    """Whether numba is there to fuse with; the first time it is not, one warning."""
    global _warned_no_numba
    if kernels.AVAILABLE:
        return True
    if not _warned_no_numba:
        _warned_no_numba = True
        warnings.warn("dp.jit: numba is not installed, so replays run unfused (one NumPy call "
                      "per operation); install diffprog[jit] for fused kernels",
                      RuntimeWarning, stacklevel=4)  # fmt: skip
    return False


def _module_of_constants(graph: Graph) -> Any:
    """The array module of a graph whose inputs are all on the host (NumPy arrays, Python
    numbers): CuPy's if it computes with a CuPy array it read from outside, else NumPy."""
    for node in graph.nodes():
        for a in node.args:
            if type(a) is Const and is_array(a.value) and not isinstance(a.value, (np.ndarray, np.generic)):
                return namespace_of([a.value])
    return np


def _user_constants(graph: Graph) -> list:
    """The NumPy arrays the forward program read from outside its arguments (derivative
    rules' constants are made from shapes alone and are not checked)."""
    seen: dict[int, Any] = {}
    for node in graph.nodes():
        if not node.backward:
            for a in node.args:
                if type(a) is Const and type(a.value) is np.ndarray:  # 0-d ones too
                    seen[id(a.value)] = a.value
    return list(seen.values())


#: a variant compares its closed-over constants with copies of their bytes, up to this many
#: bytes of copies (a copy and a memcmp: ~1.5 us for 64 kB, 7x faster than a CRC-32), and
#: the constants beyond that with a CRC-32 of each (no copy)
SNAPSHOT_BYTES = 1 << 22


def aliases(inputs: list, outputs: list, exact: bool) -> set[tuple[int, int]]:
    """(j, i) for each output i whose memory overlaps input j (j < 0: -1 - j) or output j
    < i, found by sorting the arrays' address ranges; `exact` confirms a NumPy overlap
    with np.shares_memory (two interleaved views overlap without sharing)."""
    spans = []  # (low, high, who, the array)
    for who, values in ((-1, inputs), (1, outputs)):
        for k, a in enumerate(values):
            span = _address_range(a)
            if span is not None:
                spans.append((*span, -1 - k if who < 0 else k, a))
    spans.sort(key=lambda s: s[0])
    found = set()
    for n, (low, high, who, a) in enumerate(spans):
        for low2, high2, who2, b in spans[n + 1:]:
            if low2 >= high:
                break
            if exact and type(a) is np.ndarray and type(b) is np.ndarray and not np.shares_memory(a, b):
                continue
            j, i = sorted((who, who2))  # (an input's index is negative: always j)
            if i >= 0:
                found.add((j, i))
    return found


def _address_range(a: Any) -> tuple[int, int] | None:
    """The addresses [low, high) of an array's elements (None: not an array, or empty)."""
    if not is_array(a) or isinstance(a, np.generic) or a.size == 0:
        return None
    if type(a) is np.ndarray:
        start = a.__array_interface__["data"][0]
    else:  # CuPy's device pointer (unknown: no overlap is found)
        start = getattr(getattr(a, "data", None), "ptr", None)
        if start is None:
            return None
    low = start + sum((n - 1) * s for n, s in zip(a.shape, a.strides) if s < 0)
    high = start + sum((n - 1) * s for n, s in zip(a.shape, a.strides) if s > 0) + a.itemsize
    return low, high


def _both_ways(f: Callable[..., Any], nums: tuple, names: tuple) -> tuple[tuple, tuple]:
    """static_argnums and static_argnames, each completed with the other's parameters that
    can be passed both ways (as JAX does): a static argument passed by keyword, or a static
    name passed by position, stays static."""
    try:
        params = list(inspect.signature(f).parameters.values())
    except (TypeError, ValueError):  # no signature to read (a builtin)
        return nums, names
    both = [p.name if p.kind is p.POSITIONAL_OR_KEYWORD else None for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]  # fmt: skip
    more_names = tuple(both[i] for i in nums if -len(both) <= i < len(both) and both[i] is not None)
    more_nums = tuple(i for i, name in enumerate(both) if name is not None and name in names)
    return (nums + tuple(i for i in more_nums if i not in nums),
            names + tuple(n for n in more_names if n not in names))  # fmt: skip


def _typed(value: Any) -> Any:
    """A static argument as a signature key: its value and its type, within tuples too (1,
    1.0 and True are equal and hash alike, but f may tell them apart)."""
    if isinstance(value, tuple):
        return type(value), tuple(_typed(v) for v in value)
    return type(value), value


def _fingerprint(a: np.ndarray, copy: bool) -> bytes | int:
    """What `a` holds (its bytes, or their CRC-32), to tell later whether it was changed."""
    return a.tobytes() if copy else zlib.crc32(np.ascontiguousarray(a).view(np.uint8))


def _device(x: Any) -> Any:
    device = getattr(x, "device", None)
    return getattr(device, "id", "cpu")


def _name(f: Any) -> str:
    return getattr(f, "__qualname__", None) or repr(f)


def _unhashable(jitted: Jitted, args: tuple, kwargs: dict, sig: Signature) -> str:
    for i in jitted.static_positions(len(args)):
        if 0 <= i < len(args):
            try:
                hash(args[i])
            except TypeError:
                return (f"dp.jit({_name(jitted.f)}): static argument {i} is a {type(args[i]).__name__}, "
                        "which is not hashable; static arguments are part of the signature by "
                        "value: pass a hashable one (a tuple instead of a list), or make it an "
                        "ordinary argument")  # fmt: skip
    paths = tree.flatten_with_path(tree.unflatten(sig.treedef, sig.leaves))[0]
    for path, leaf in paths:
        if type(leaf) is not float and not is_array(leaf):
            try:
                hash(leaf)
            except TypeError:
                return (f"dp.jit({_name(jitted.f)}): the argument leaf {tree.keystr(path)} is a "
                        f"{type(leaf).__name__}, which is neither an array nor hashable; "
                        "register its type as a pytree node (dp.tree.register_node or "
                        "register_dataclass), or pass it through static_argnums")  # fmt: skip
    return f"dp.jit({_name(jitted.f)}): an argument is not hashable"
