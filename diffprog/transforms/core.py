"""The transforms users call: grad, value_and_grad, vjp, jvp, stop_gradient.

Owns: running a function on a fresh reverse trace with chosen arguments watched
(`_record`), the scalar-output rule of `grad`, the cotangent checks of `vjp`, and `has_aux`.
Each call opens its own trace, so transforms nest freely: an inner transform's backward pass
is recorded by the outer one (graph extension).
Layer L5: imports L0-L4.
"""

from __future__ import annotations

import functools
import inspect
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import tree
from ..ad.batching import anywhere
from ..ad.boundary import CONSTANT, Watched, adjoint_like, leaf_kind, own_value, refuse_opaque_floats
from ..ad.forward import JVPTrace, JVPTracer
from ..ad.reverse import ReverseTrace, ReverseTracer, backward
from ..backend import asarray_like, device_scope, is_array, ones_like, other_device
from ..core.edge import astype
from ..core.gc_pause import Hold, gc_paused
from ..core.primitive import NUMPY_SCALAR_TYPES
from ..core.trace import Trace, Tracer, as_scalar, numpy_store_unwrapped, open_trace, raw, unwrapped
from ..errors import DeviceMismatchError, NonScalarOutputError, StructureError, UnsupportedLeafError


def grad(
    f: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False,
    holomorphic: bool = False,
) -> Callable[..., Any]:
    """The gradient of a real-scalar-valued `f` with respect to argument(s) `argnums`.

    The gradient has exactly the structure, types and dtypes of the argument. For a complex
    argument z = x + iy it is JAX's: df/dx - i df/dy, the conjugate of the steepest-ascent
    direction, so gradient descent steps by `z -= lr * conj(grad)`. With `holomorphic=True`
    f's output is a complex scalar, the seed is 1, and the result is f'(z).

    >>> import diffprog as dp
    >>> dp.grad(lambda p: p["w"] ** 2 * p["n"])({"w": 3.0, "n": 2})
    {'w': 12.0, 'n': None}
    >>> dp.grad(lambda z: z ** 3, holomorphic=True)(1j)
    (-3+0j)
    """
    value_and_grad_f = value_and_grad(f, argnums, has_aux, holomorphic)

    @functools.wraps(f)
    def grad_f(*args: Any, **kwargs: Any) -> Any:
        value, g = value_and_grad_f(*args, **kwargs)
        return (g, value[1]) if has_aux else g

    return grad_f


def value_and_grad(
    f: Callable[..., Any], argnums: int | Sequence[int] = 0, has_aux: bool = False,
    holomorphic: bool = False,
) -> Callable[..., Any]:
    """Like `grad`, returning `(value, grad)` (or `((value, aux), grad)` with has_aux).

    >>> import diffprog as dp
    >>> dp.value_and_grad(lambda x: x * x)(3.0)
    (np.float64(9.0), 6.0)
    """

    @functools.wraps(f)
    def value_and_grad_f(*args: Any, **kwargs: Any) -> Any:
        # The cyclic collector stays paused from recording to the adjoints, and resumes once
        # the tape is freed (when _value_and_grad returns): resumed in between, as recording
        # and sweeping each pause it, its next pass would walk every record of the live tape
        # (16-40 ms of a 300 ms gradient of a 100,000-op chain).
        with gc_paused():
            return _value_and_grad(f, argnums, has_aux, holomorphic, args, kwargs)

    return value_and_grad_f


def _value_and_grad(
    f: Callable[..., Any], argnums: int | Sequence[int], has_aux: bool, holomorphic: bool,
    args: tuple, kwargs: dict[str, Any],
) -> Any:
    nums = _argnums(argnums, f, len(args), "dp.grad")
    trace, inputs, out, aux = _record(f, args, kwargs, nums, has_aux, "dp.grad", require_float=True)
    if holomorphic:
        _require_complex_inputs(inputs, f)
    seed = _scalar_seed(trace, out, f, holomorphic)
    cts = backward(trace.tape, [] if seed is None else [(out.slot, seed)])
    grads = [w.adjoint(cts) for w in inputs]
    value = own_value(trace, out)
    grad = grads[0] if isinstance(argnums, int) else tuple(grads)
    return ((value, aux) if has_aux else value), grad


def vjp(f: Callable[..., Any], *primals: Any, has_aux: bool = False) -> tuple[Any, ...]:
    """`(out, vjp_fn)`, or `(out, vjp_fn, aux)`; `vjp_fn(cotangent)` returns one adjoint per
    primal. `out` and the cotangent may be any pytree; the cotangent has out's structure.

    >>> import numpy as np, diffprog as dp
    >>> out, vjp_fn = dp.vjp(lambda x: {"y": 2 * x}, np.ones(2))
    >>> vjp_fn({"y": np.array([1.0, 3.0])})
    (array([2., 6.]),)

    The backward pass runs later, on values saved now: the primal outputs returned are copies
    (changing them cannot reach the saved values), and changing an input array in place
    before calling vjp_fn raises an error instead of giving a wrong gradient.
    """
    # The collector stays paused from recording to vjp_fn's first call (see core.gc_pause:
    # the hold ends then, when vjp_fn is dropped, or after a grace period).
    hold = Hold()
    try:
        trace, inputs, out, aux = _record(f, primals, {}, range(len(primals)), has_aux, "dp.vjp")
        out_leaves, out_def = tree.flatten(out)
        refuse_opaque_floats(out_leaves, out, "dp.vjp: the output")
        primal_out = tree.unflatten(out_def, [_copied(own_value(trace, x)) for x in out_leaves])
        aux = tree.map(_copied, aux)
        fingerprints = [w.fingerprints() for w in inputs]
    except BaseException:
        hold.release()
        raise

    def vjp_fn(cotangent: Any) -> tuple[Any, ...]:
        try:
            for i, (w, prints) in enumerate(zip(inputs, fingerprints)):
                w.check_unchanged(prints, f"dp.vjp: primal {i}")
            seeds = cotangent_seeds(trace, out, cotangent)
            cts = backward(trace.tape, seeds)
            return tuple(w.adjoint(cts) for w in inputs)
        finally:
            hold.release()

    return (primal_out, vjp_fn, aux) if has_aux else (primal_out, vjp_fn)


def jvp(
    f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any], has_aux: bool = False
) -> tuple[Any, ...]:
    """Forward mode, one pass: `(out, tangent_out)` (or `(out, tangent_out, aux)`), where
    tangent_out = J(primals) @ tangents. `primals` and `tangents` are tuples of pytrees of one
    structure; a None tangent leaf is a zero. A floating primal's tangent is cast to its dtype.
    A constant primal leaf (an int, a bool, an integer or bool array, a string, None) takes
    None or zeros, and a nonzero tangent for it raises (it would be ignored: cast the primal
    to float to differentiate with respect to it). Constant outputs get None tangents.

    >>> import numpy as np, diffprog as dp, diffprog.numpy as dnp
    >>> dp.jvp(dnp.sin, (0.0,), (2.0,))
    (np.float64(0.0), np.float64(2.0))
    """
    return run_jvp(f, primals, tangents, has_aux, "dp.jvp")


def run_jvp(
    f: Callable[..., Any], primals: Sequence[Any], tangents: Sequence[Any], has_aux: bool,
    origin: str,
) -> tuple[Any, ...]:
    """`jvp`, its errors naming `origin` (the transform the user called: dp.jvp, dp.hvp)."""
    primals, tangents = as_tuples(origin, primals, tangents)
    if len(primals) != len(tangents):
        raise StructureError(
            f"{origin} got {len(primals)} primal(s) but {len(tangents)} tangent(s); pass one "
            "tangent pytree per primal"
        )
    tangent_leaves = []
    for i, (p, t) in enumerate(zip(primals, tangents)):
        leaves, t_def = tree.flatten(t)
        p_leaves, p_def = tree.flatten(p)
        if t_def != p_def:
            raise StructureError(
                f"{origin}: the tangent for primal {i} has structure {t_def}, but the primal has "
                f"structure {p_def}"
            )
        for j, (pl, tl) in enumerate(zip(p_leaves, leaves)):
            if tl is not None and not (  # floating leaves first: arrays, and dp.hvp's tracers
                    (type(pl) is np.ndarray or isinstance(pl, Tracer)) and pl.dtype.kind in "fc"):
                _check_constant_tangent(tl, pl, lambda: f"primal {i}{tree.leaf_paths(p)[j]}", origin)  # noqa: B023
        tangent_leaves.append(leaves)

    def tracer_maker(trace: JVPTrace, i: int) -> Callable[[int, Any], Any]:
        def wrap(j: int, value: Any) -> Any:
            t = tangent_leaves[i][j]
            if t is None:  # unperturbed: still traced, with a symbolic zero tangent
                return trace.lift(value, None)
            r = raw(value)
            if type(t) is type(r) is np.ndarray and t.shape == r.shape and t.dtype == r.dtype:
                return trace.lift(value, t)  # the common case: an array just like its primal
            path = lambda: tree.leaf_paths(primals[i])[j]  # noqa: E731
            _check_direction(t, r, lambda: (f"{origin}: the tangent for primal {i}{path()}", f"primal {i}{path()}"))
            if not isinstance(t, Tracer):
                t = _direction_like(t, r)
            like = as_scalar(raw(value))  # a Python float primal: a float64 scalar's shape
            if as_scalar(raw(t)).dtype.kind == "c" and like.dtype.kind != "c":
                raise UnsupportedLeafError(
                    f"{origin}: the tangent for primal {i}{path()} is complex "
                    f"but the primal is real (dtype {like.dtype}); pass a real tangent"
                )
            if tuple(t.shape) != tuple(like.shape):
                raise StructureError(
                    f"{origin}: the tangent for primal {i}{path()} has shape {tuple(t.shape)}, "
                    f"but the primal has shape {tuple(like.shape)}"
                )
            return trace.lift(value, t if t.dtype == like.dtype else astype(t, dtype=like.dtype))

        return wrap

    trace, _, out, aux = _record(
        f, primals, {}, range(len(primals)), has_aux, origin, JVPTrace, tracer_maker
    )
    out_leaves, out_def = tree.flatten(out)
    refuse_opaque_floats(out_leaves, out, f"{origin}: the output")
    primal_out = tree.unflatten(out_def, [own_value(trace, x) for x in out_leaves])
    tangent_out = tree.unflatten(out_def, [_tangent_of(trace, x) for x in out_leaves])
    return (primal_out, tangent_out, aux) if has_aux else (primal_out, tangent_out)


def _check_constant_tangent(t: Any, leaf: Any, where: Callable[[], str], origin: str) -> None:
    """A tangent given for a constant primal leaf (an int, a bool, an integer or bool array,
    a string...) must be zeros: the leaf is not differentiated, so anything else would be
    ignored without a word (JAX refuses all but a float0 tangent; zeros of any numeric dtype
    are accepted here, as None is). Floating leaves pass (their tangents are checked when
    they are traced); so do leaves `leaf_kind` refuses, which Watched reports."""
    try:
        if leaf_kind(leaf) is not CONSTANT:
            return
    except UnsupportedLeafError:
        return
    value = unwrapped(leaf)
    numeric = isinstance(value, (bool, int, np.integer, np.bool_)) or (
        is_array(value) and value.dtype.kind in "biu")  # fmt: skip
    what = _constant_described(value)
    data = unwrapped(t)
    if not _numbers(data):
        raise UnsupportedLeafError(
            f"{origin}: the tangent for {where()} is {_described(t)}, not numbers, and "
            f"{where()} is {what}, a constant: pass None as its tangent"
        )
    if numeric:
        places = other_device(t, leaf)
        if places is not None:
            raise DeviceMismatchError(
                f"{origin}: the tangent for {where()} is on {places[0]}, but the primal is on "
                f"{places[1]}; pass None as the tangent of a constant (or zeros on its device)"
            )
        if tuple(np.shape(data)) != tuple(np.shape(value)):
            raise StructureError(
                f"{origin}: the tangent for {where()} has shape {tuple(np.shape(data))}, but "
                f"the primal has shape {tuple(np.shape(value))}"
            )
    nonzero = raw(t) != 0  # raw: under dp.vmap every example's tangent; under dp.jit a guard
    if nonzero if type(nonzero) is bool else anywhere(nonzero):
        t_what = (f"dtype {data.dtype}" if hasattr(data, "dtype")
                  else f"a Python {type(data).__name__}")  # fmt: skip
        if not numeric:
            fix = "nothing can differentiate with respect to it"
        elif is_array(value) and not isinstance(value, np.generic):
            fix = "pass it as a float array (x.astype(float)) to differentiate with respect to it"
        else:
            fix = f"pass it as a float ({float(value)!r}) to differentiate with respect to it"
        raise UnsupportedLeafError(
            f"{origin}: the tangent for {where()} is nonzero ({t_what}), but {where()} is "
            f"{what}, a constant with no tangent, so this tangent would be ignored. Pass None "
            f"(or zeros) as its tangent{'; or ' if numeric else ': '}{fix}"
        )


def _constant_described(value: Any) -> str:
    """A constant primal leaf as errors describe it: its type, dtype, shape."""
    if type(value) in (bool, int):
        return f"the Python {type(value).__name__} {value!r}"
    if value is None:
        return "None"
    if isinstance(value, np.generic):
        return f"a NumPy {type(value).__name__} (dtype {value.dtype})"
    if is_array(value):
        return f"an array of dtype {value.dtype} and shape {tuple(value.shape)}"
    return _described(value)


def stop_gradient(x: Any) -> Any:
    """`x` (any pytree) as a constant for every transform: its value, no derivative.

    >>> import diffprog as dp
    >>> dp.grad(lambda x: x * dp.stop_gradient(x))(3.0)
    3.0
    """
    return tree.map(raw, x)


# --- shared machinery ----------------------------------------------------------------------
def _record(
    f: Callable[..., Any],
    args: Sequence[Any],
    kwargs: dict[str, Any],
    argnums: Sequence[int],
    has_aux: bool,
    origin: str,
    trace_type: type[Trace] = ReverseTrace,
    tracer_maker: Callable[[Any, int], Callable[[int, Any], Any]] = lambda trace, i: (
        lambda _, v: trace.watch(v)
    ),
    require_float: bool = False,
) -> tuple[Any, list[Watched], Any, Any]:
    """Run `f(*args, **kwargs)` on a new trace with `args[i]` watched for i in argnums.

    `tracer_maker(trace, i)` gives the `wrap(leaf_index, value)` that makes argument i's
    tracers (reverse mode: `trace.watch`). Returns (trace, watched inputs, output, aux).
    With `require_float`, watched arguments holding integers but no floating leaf at all are
    refused before f runs (see `refuse_integer_arguments`).
    f runs with the GPU of its arguments current (the forward-mode rules and f's own CuPy
    code compute on raw arrays, which CuPy runs on the current GPU).
    """
    flat = [tree.flatten(a) for a in args]  # (once: for the device and for Watched)
    with device_scope(itertools.chain.from_iterable(leaves for leaves, _ in flat)), \
            open_trace(trace_type, origin) as trace:
        args = list(args)
        inputs = []
        for i in argnums:
            watched = Watched(args[i], tracer_maker(trace, i), lambda i=i: _arg_name(f, i),
                              flat[i])
            args[i] = watched.tree
            inputs.append(watched)
        if require_float and all(t is None for w in inputs for t in w.tracers):
            refuse_integer_arguments(f, [w.tree for w in inputs], argnums, origin)
        with numpy_store_unwrapped():
            result = f(*args, **kwargs)
    if not has_aux:
        return trace, inputs, result, None
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise TypeError(
            f"{origin}(f, has_aux=True) needs f to return a pair (output, aux); "
            f"{_name(f)} returned {type(result).__name__}"
        )
    out, aux = result
    return trace, inputs, out, tree.map(lambda x: own_value(trace, x), aux)


def _argnums(argnums: int | Sequence[int], f: Callable[..., Any], nargs: int, origin: str) -> tuple[int, ...]:
    if type(argnums) is int and 0 <= argnums < nargs:  # the common case, first
        return (argnums,)
    if isinstance(argnums, int):
        nums: tuple = (argnums,)
    elif isinstance(argnums, (tuple, list)) and all(isinstance(n, int) for n in argnums):
        nums = tuple(argnums)
    else:
        raise TypeError(f"{origin}: argnums={argnums!r}: argnums must be an int or a tuple of ints")
    for n in nums:
        if not -nargs <= n < nargs:
            hint = (" The differentiated argument must be positional: pass it positionally, "
                    "f(x), not f(x=x)." if nargs == 0 else "")  # fmt: skip
            raise ValueError(
                f"{origin}: argnums={argnums!r} does not name a positional argument of this call "
                f"to {_name(f)}, which has {nargs} positional argument(s).{hint}"
            )
    nums = tuple(n % nargs for n in nums)
    if len(set(nums)) != len(nums):
        raise ValueError(f"{origin}: argnums={argnums!r} names an argument twice")
    return nums


def refuse_integer_arguments(
    f: Callable[..., Any], chosen: Sequence[Any], argnums: Sequence[int], origin: str
) -> None:
    """Called when no leaf of the `chosen` arguments (args[argnums]) is floating: raise,
    naming the first integer or bool
    leaf, which the caller surely meant to differentiate (`dp.grad(f)(3)`). An int leaf
    beside float leaves stays a constant with a None adjoint (API.md); leaves such as None
    or strings alone pass (their adjoints are None)."""
    for arg, i in zip(chosen, argnums):
        for path, leaf in tree.flatten_with_path(arg)[0]:
            value = raw(leaf)
            dtype = getattr(value, "dtype", None)
            if isinstance(value, (bool, int, np.integer, np.bool_)):
                origin_kind = "Python" if type(value) in (bool, int) else "NumPy"
                what = f"the {origin_kind} {type(value).__name__} {value}"
                fix = f"pass {float(value)!r} (a float)" if type(value) is int else "pass a float"
            elif dtype is not None and dtype.kind in "biu" and is_array(value):
                what = f"an array of dtype {dtype} and shape {tuple(value.shape)}"
                fix = "pass a float array, e.g. x.astype(float)"
            else:
                continue
            name = _arg_name(f, i)
            label = f"argument {i}" + ("" if name.startswith("argument") else f" ({name})")
            raise UnsupportedLeafError(
                f"{origin}: {label}{tree.keystr(path)} is {what}, "
                f"which has no gradient, and no argument differentiated here holds a float; "
                f"{fix} to differentiate with respect to it (an integer beside float leaves "
                "is a constant, its adjoint None)"
            )


def _scalar_seed(trace: ReverseTrace, out: Any, f: Callable[..., Any], holomorphic: bool) -> Any:
    """The seed cotangent (ones) for grad's output, after checking it is a real scalar (a
    complex one with `holomorphic`).

    None when the output does not depend on the watched inputs (all adjoints are zeros).
    """
    own = isinstance(out, ReverseTracer) and out._trace is trace
    if own and not holomorphic:  # the common case, first: a NumPy real scalar (a mean)
        value = out.value
        if type(value) in NUMPY_SCALAR_TYPES and value.dtype.kind == "f":
            return np.array(1, value.dtype)  # (np.ones_like(value), a 0-d array)
    value = unwrapped(out)
    if holomorphic:
        return _holomorphic_seed(own, value, f)
    if type(value) is float:  # a Python float: a watched one passed through, or a constant
        return np.float64(1.0) if own else None
    hint = (
        "grad needs f to return a real scalar (size 1). Reduce the output first (e.g. "
        "dnp.sum or .mean()), or use dp.vjp / dp.jacrev for a non-scalar output"
    )
    if isinstance(value, (bool, int)):
        raise NonScalarOutputError(
            f"{_name(f)} returned a non-floating value (a Python {type(value).__name__}), which "
            f"has no real gradient. {hint}"
        )
    if not is_array(value):
        raise NonScalarOutputError(f"{_name(f)} returned a {type(value).__name__}. {hint}")
    if value.dtype.kind == "c":
        raise NonScalarOutputError(
            f"{_name(f)} returned a complex value (dtype {value.dtype}): grad needs a real "
            "output (e.g. dnp.abs(z) ** 2 or dnp.real(z)), or holomorphic=True for a "
            "holomorphic f (then the result is f'(z))"
        )
    if value.dtype.kind != "f":
        raise NonScalarOutputError(
            f"{_name(f)} returned a non-floating value (dtype {value.dtype}), which has no "
            f"real gradient. {hint}"
        )
    if value.size != 1:
        raise NonScalarOutputError(f"{_name(f)} returned an array of shape {value.shape}. {hint}")
    if not own:
        return None
    return ones_like(raw(out))


def _holomorphic_seed(own: bool, value: Any, f: Callable[..., Any]) -> Any:
    """The seed 1 (complex) of grad(f, holomorphic=True), after checking f's output is a
    complex scalar."""
    dtype = getattr(as_scalar(value), "dtype", None)
    if dtype is None or dtype.kind != "c" or as_scalar(value).size != 1:
        what = (f"dtype {dtype}, shape {tuple(value.shape)}" if dtype is not None
                else type(value).__name__)
        raise NonScalarOutputError(
            f"grad(holomorphic=True) needs {_name(f)} to return a complex scalar; it returned "
            f"a value of {what}. For a real output, drop holomorphic=True"
        )
    return ones_like(raw(as_scalar(value))) if own else None


def _require_complex_inputs(inputs: list[Watched], f: Callable[..., Any]) -> None:
    """grad(holomorphic=True) differentiates complex arguments only (as JAX)."""
    for w in inputs:
        for j, (leaf, t) in enumerate(zip(w.leaves, w.tracers)):
            dtype = None if t is None else as_scalar(unwrapped(leaf)).dtype
            if dtype is not None and dtype.kind != "c":
                path = tree.keystr(tree.flatten_with_path(w.tree)[0][j][0])
                raise UnsupportedLeafError(
                    f"grad(holomorphic=True) of {_name(f)}: the argument leaf {path or '(x)'} "
                    f"is real (dtype {dtype}); a holomorphic derivative needs complex inputs: "
                    "pass x.astype(complex)"
                )


def cotangent_seeds(
    trace: ReverseTrace, out: Any, cotangent: Any, what: str = "the cotangent passed to vjp_fn",
    noun: str = "output",
) -> list[tuple[int, Any]]:
    """(slot, cotangent) pairs seeding the sweep from `cotangent`, a pytree like `out`;
    structure, shapes and dtypes are checked (dtypes converted) leaf by leaf."""
    out_leaves, out_def = tree.flatten(out)
    ct_leaves, ct_def = tree.flatten(cotangent)
    if ct_def != out_def:
        raise StructureError(
            f"{what} has structure {ct_def}, but the {noun} has structure {out_def}; they "
            "must match"
        )
    seeds = []
    for i, (o, c) in enumerate(zip(out_leaves, ct_leaves)):
        if c is None or not (isinstance(o, ReverseTracer) and o._trace is trace):
            continue
        names = lambda: _entry(what, noun, tree.keystr(tree.flatten_with_path(out)[0][i][0]))  # noqa: B023, E731
        _check_direction(c, o, names)
        shape = getattr(c, "shape", ())
        if tuple(shape) != tuple(o.shape):
            entry, of = names()
            raise StructureError(
                f"{entry} has shape {tuple(shape)}, but the {of} has shape {tuple(o.shape)}"
            )
        if np.iscomplexobj(unwrapped(c)) and o.dtype.kind != "c":
            entry, of = names()
            raise UnsupportedLeafError(
                f"{entry} is complex but the {of} is real (dtype {o.dtype}); pass a real "
                f"cotangent (its real part, if that is meant)"
            )
        if not hasattr(c, "dtype"):
            c = _direction_like(c, raw(o.value), dtype=o.dtype)
        elif c.dtype != o.dtype:
            c = astype(c, dtype=o.dtype)
        seeds.append((o.slot, c))
    return seeds


def _entry(what: str, noun: str, path: str) -> tuple[str, str]:
    return (f"{what}: the entry for {noun}{path}" if path else what), f"{noun}{path}"


def _check_direction(d: Any, ref: Any, names: Callable[[], tuple[str, str]]) -> None:
    """A tangent or cotangent `d` is numbers (a number, or an array of numbers), living where
    its primal or output `ref` does (a host scalar goes anywhere); else an error naming both
    (`names()`: what `d` is, what `ref` is)."""
    if not _numbers(unwrapped(d)):  # (a traced Python float is a number too)
        what, of = names()
        raise UnsupportedLeafError(
            f"{what} is {_described(d)}, not numbers; pass a number or an array of numbers "
            f"like the {of}"
        )
    places = other_device(d, ref)
    if places is not None:
        what, of = names()
        raise DeviceMismatchError(
            f"{what} is on {places[0]}, but the {of} is on {places[1]}; move it there first "
            "with dp.to_device (nothing in diffprog copies between devices unasked)"
        )


def _numbers(value: Any) -> bool:
    """Whether `value` (unwrapped) is a number or an array of numbers: a direction can be."""
    dtype = getattr(value, "dtype", None)
    return isinstance(value, (bool, int, float, complex)) or dtype is not None and np.dtype(dtype).kind in "biufc"


def _described(x: Any) -> str:
    dtype = getattr(x, "dtype", None)
    if dtype is not None:
        return f"an array of dtype {dtype}"
    name = type(x).__name__
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name} ({x!r:.40})"


def _direction_like(d: Any, ref: Any, dtype: Any = None) -> Any:
    """A tangent or cotangent `d` given as numbers as an array of `ref`'s module and device,
    or a NumPy scalar where `ref` is a host scalar (a Python float primal is a NumPy scalar
    where dp.jit stages it): a scalar goes anywhere, a 0-d NumPy array does not mix with
    CuPy's arrays."""
    d = asarray_like(d, ref, dtype)
    if isinstance(unwrapped(ref), (float, np.generic)) and type(d) is np.ndarray:
        return d[()]
    return d


def _copied(x: Any) -> Any:
    """A NumPy/CuPy array handed to the user is a copy of the one the tape saved."""
    if isinstance(x, np.ndarray) or type(x).__module__.startswith("cupy"):
        with device_scope((x,)):  # CuPy copies to the current GPU, not the array's
            return x.copy()
    return x


def as_tuples(origin: str, *groups: Any) -> tuple[tuple, ...]:
    """`primals`, `tangents`... as tuples; a bare array or number is refused with a hint."""
    for g in groups:
        if not isinstance(g, (tuple, list)):
            raise TypeError(
                f"{origin} takes tuples of arguments: pass (x,) and (v,), not x and v "
                f"(got a {type(g).__name__})"
            )
    return tuple(tuple(g) for g in groups)


def _tangent_of(trace: JVPTrace, x: Any) -> Any:
    if isinstance(x, JVPTracer) and x._trace is trace:
        return adjoint_like(x.tangent, x.value)  # a symbolic zero becomes real zeros
    return adjoint_like(None, x)  # real zeros for a floating output, None for a constant


def _arg_name(f: Callable[..., Any], i: int) -> str:
    try:
        params = list(inspect.signature(f).parameters.values())
        if i < len(params) and params[i].kind in (params[i].POSITIONAL_ONLY, params[i].POSITIONAL_OR_KEYWORD):
            return params[i].name
    except (TypeError, ValueError):
        pass
    return f"argument {i}"


def _name(f: Callable[..., Any]) -> str:
    return getattr(f, "__qualname__", None) or repr(f)
