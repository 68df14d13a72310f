"""Random-program fuzzing: for hundreds of random programs over random parameter pytrees
(tests/fuzz_programs.py), reverse mode, forward mode and graph-extension second order agree
with central differences, adjoints have exactly the parameters' structure (None for int and
str leaves), grad, value_and_grad, the Tape, jacrev/jacfwd, hessian and hvp agree with vjp,
and dp.jit replays each program's value and derivatives exactly; dp.vmap of each equals a
loop; on CuPy (gpu-marked: 40 programs, params moved with dp.to_device), the value and
derivatives equal NumPy's, eagerly and under dp.jit. Then the regression tests for what
the fuzzing found, minimised.

The CI profile runs 500 float64 programs (plus 250 mixed-precision and 250 small ones for
the Jacobian transforms), derandomised, in about 6 s. `DIFFPROG_FUZZ_EXAMPLES=20000` runs a long profile;
`DIFFPROG_FUZZ_RANDOM=1` draws new programs on every run (see docs/reliability.md). A failure
prints a standalone script reproducing the program (Hypothesis' `note`).
"""

from __future__ import annotations

import os
import re
import zlib

import numpy as np
import pytest
from fuzz_programs import Pair, Program, programs
from hypothesis import HealthCheck, given, note, settings

import diffprog as dp
from backends import (assert_fused_close, check_jit, check_on_cupy, check_vmap, require_cupy,
                      result_scale)
import diffprog.numpy as dnp
from diffprog.testing import check_grads

EXAMPLES = int(os.environ.get("DIFFPROG_FUZZ_EXAMPLES", "500"))
RANDOM = os.environ.get("DIFFPROG_FUZZ_RANDOM", "") not in ("", "0")


def fuzz_settings(examples: int) -> settings:
    extra = {} if RANDOM else {"database": None}  # random runs keep failures in .hypothesis/
    return settings(
        max_examples=examples, derandomize=not RANDOM, deadline=None, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], **extra,
    )  # fmt: skip


# --- what is checked on every program ----------------------------------------------------------
def assert_adjoint_like(adj, param, path="params"):
    """`adj` has exactly param's structure; floating leaves keep type, dtype and shape,
    every other leaf (int, str) gets None."""
    if isinstance(param, (Pair, list, tuple, dict)):
        assert type(adj) is type(param), f"{path}: {type(adj).__name__} for {type(param).__name__}"
        if isinstance(param, dict):
            assert list(adj) == list(param), f"{path}: keys {list(adj)} for {list(param)}"
            for k in param:
                assert_adjoint_like(adj[k], param[k], f"{path}[{k!r}]")
        else:
            assert len(adj) == len(param), f"{path}: length {len(adj)} for {len(param)}"
            for i, (a, p) in enumerate(zip(adj, param)):
                assert_adjoint_like(a, p, f"{path}[{i}]")
    elif type(param) is float or isinstance(param, (np.ndarray, np.generic)) and param.dtype.kind == "f":
        assert type(adj) is type(param), f"{path}: {type(adj).__name__} for {type(param).__name__}"
        assert np.shape(adj) == np.shape(param) and np.asarray(adj).dtype == np.asarray(param).dtype, path
        assert np.all(np.isfinite(adj)), f"{path}: {adj}"
    else:
        assert adj is None, f"{path}: adjoint {adj!r} of the constant {param!r}"


def floating_tangents(params, scale=1.0):
    """params' floating leaves times `scale`, as tangents; None for the constants (int and str
    leaves), whose tangents must be None or zeros."""
    floating = lambda x: type(x) is float or isinstance(x, (np.ndarray, np.generic)) and x.dtype.kind == "f"  # noqa: E731
    return dp.tree.map(lambda x: x * scale if floating(x) else None, params)


def ones_like_output(out):
    def one(x):
        floating = type(x) is float or getattr(x, "dtype", np.dtype(object)).kind == "f"
        return np.ones_like(x) if floating and not isinstance(x, float) else 1.0 if floating else None

    return dp.tree.map(one, out)


def assert_trees_close(a, b, rtol, atol):
    la, lb = dp.tree.leaves(a), dp.tree.leaves(b)
    assert dp.tree.structure(a) == dp.tree.structure(b)
    for x, y in zip(la, lb):
        assert (x is None) == (y is None)
        if x is not None:
            np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=rtol, atol=atol)


def assert_same_values(traced, plain, rtol):
    assert dp.tree.structure(traced) == dp.tree.structure(plain)
    for path_x, y in zip(dp.tree.flatten_with_path(traced)[0], dp.tree.leaves(plain)):
        path, x = path_x
        where = f"output{dp.tree.keystr(path)}"
        assert np.shape(x) == np.shape(y), f"{where}: shape {np.shape(x)} traced, {np.shape(y)} plain"
        assert np.result_type(x) == np.result_type(y), f"{where}: dtype {np.result_type(x)} traced, {np.result_type(y)} plain"
        if x is not None and not isinstance(x, str):
            np.testing.assert_allclose(x, y, rtol=rtol, atol=rtol * 1e-3, err_msg=where)


def check_program(prog: Program, atol: float) -> None:
    note(prog.script())
    f, params = prog.fn, prog.params
    out, vjp_fn = dp.vjp(f, params)
    rtol = 1e-10 if atol < 1e-6 else 1e-5  # (rounding may differ: np.add.at adds in turn)
    assert_same_values(out, f(params), rtol)  # traced = untraced: values, shapes, dtypes
    assert_same_values(dp.jvp(f, (params,), (floating_tangents(params),))[0], out, rtol)
    ones = ones_like_output(out)
    (adj,) = vjp_fn(ones)
    assert_adjoint_like(adj, params)
    if np.ndim(out) == 0 and not isinstance(out, dict):  # a scalar: grad and value_and_grad
        value, g = dp.value_and_grad(f)(params)
        np.testing.assert_allclose(value, out, rtol=1e-14)
        assert_adjoint_like(g, params)
        assert_trees_close(g, adj, rtol, atol)
    with dp.Tape() as tape:
        watched = tape.watch(params)
        target = f(watched)
    assert_trees_close(tape.gradient(target, watched), adj, rtol, atol)
    if "casts" in prog.ops:  # rounded to float32 inside: float32's step and tolerance
        check_grads(f, (params,), order=2, eps=1e-3, rtol=2e-3, atol=atol)
    else:
        check_grads(f, (params,), order=2, atol=atol)


# --- the fuzz tests -------------------------------------------------------------------------------
@fuzz_settings(EXAMPLES)
@given(programs())
def test_random_programs_float64(prog):
    check_program(prog, atol=1e-9)


@fuzz_settings(max(EXAMPLES // 2, 10))
@given(programs(dtypes=("float32", "float64"), margin=0.1, casts=True, python_floats=False))
def test_random_programs_mixed_precision(prog):
    check_program(prog, atol=1e-4)


@fuzz_settings(max(EXAMPLES // 2, 10))
@given(programs(min_ops=3, max_ops=8))
def test_random_programs_jacobians_hessians(prog):
    """jacrev = jacfwd; for scalar outputs hessian = jacrev(grad), and hvp = forward over
    reverse = nested tapes."""
    note(prog.script())
    f, params = prog.fn, prog.params
    assert_trees_close(dp.jacrev(f)(params), dp.jacfwd(f)(params), 1e-10, 1e-12)
    out = f(params)
    if np.ndim(out) == 0 and not isinstance(out, dict):
        h = dp.hessian(f)(params)
        assert_trees_close(h, dp.jacrev(dp.grad(f))(params), 1e-10, 1e-12)
        v = floating_tangents(params, 0.5)
        value, (hv,) = dp.hvp(f, (params,), (v,))
        np.testing.assert_allclose(value, out, rtol=1e-14)
        expected = dp.jvp(dp.grad(f), (params,), (v,))[1]  # H v, H symmetric
        assert_trees_close(hv, expected, 1e-10, 1e-12)
        with dp.Tape() as outer:  # nested tapes: the inner gradient is recorded
            q = outer.watch(params)
            with dp.Tape() as inner:
                q2 = inner.watch(q)
                y = f(q2)
            g = dp.tree.leaves(inner.gradient(y, q2))
            s = sum(dnp.sum(a * b) for a, b in zip(g, dp.tree.leaves(v)) if b is not None)
        assert_trees_close(outer.gradient(s, q), expected, 1e-10, 1e-12)


@fuzz_settings(max(EXAMPLES // 5, 10))
@given(programs())
def test_random_programs_under_jit(prog):
    """dp.jit of each program's value, VJP, JVP and HVP equals the eager call, on the
    recording, a replay, and parameters moved by 0.1% (another path: a guard catches it);
    a quarter of the programs (by their text) again with fused kernels."""
    note(prog.script())
    check_jit(prog.fn, (prog.params,))
    if zlib.crc32(prog.body.encode()) % 4 == 0:
        check_jit(prog.fn, (prog.params,), fuse=True)


@fuzz_settings(max(EXAMPLES // 50, 5))
@given(programs(dtypes=("float32", "float64"), margin=0.1, casts=True, python_floats=False))
def test_random_mixed_precision_programs_under_fused_jit(prog):
    """dp.jit with fused kernels of programs mixing float32 and float64 (casts inside) equals
    the eager call (float32's tolerance throughout): this found a product's scalar result
    made an array, and a kernel of guards only crashing the fused graph's clean-up."""
    note(prog.script())
    check_jit(prog.fn, (prog.params,), fuse=True, narrow=True)


#: a selection by a mask of the data (fuzz_programs' mask_values)
DATA_MASK = re.compile(r"(v\d+)\[\1 > ")


@fuzz_settings(max(EXAMPLES // 5, 10))
@given(programs())
def test_random_programs_under_vmap(prog):
    """dp.vmap of each program's value, VJP and JVP on a batch of three parameter sets equals
    a loop over them, and the VJP of the batched program each set's own; a program whose
    Python `if`, `while` or loop count reads batched data cannot branch for all three at
    once, and says so (only such a program); nor can a selection by a mask of the data
    (`v[v > t]`: t is far from the drawn values, not always from the other sets' 0.9 and 1.1
    times them) give one shape for all three unless they select alike, and says so."""
    note(prog.script())
    vmap_or_its_refusal(prog)


def vmap_or_its_refusal(prog: Program) -> None:
    """check_vmap of `prog`, or the refusal it is allowed (see the test above)."""
    try:
        check_vmap(prog.fn, (prog.params,))
    except dp.BatchedControlFlowError as e:
        assert {"if_data", "while_loop", "data_count_loop"} & set(prog.ops), e
        assert "dnp.where" in str(e)
    except ValueError as e:
        if not (DATA_MASK.search(prog.body) and "the shape depends on the data" in str(e)):
            raise


#: host arrays in a program's own text (NumPy's functions and constants, dnp.eye without
#: like=): such a program mixes devices itself once its params are on a GPU
HOST_ARRAYS = re.compile(r"\bnp\.|dnp\.eye\(")


@pytest.mark.gpu
@fuzz_settings(40)  # each costs its fused CuPy kernels' compiles
@given(programs())
def test_random_programs_on_cupy(prog):
    """With its params on CuPy (dp.to_device), a program's value, VJP, JVP and HVP equal
    NumPy's, eagerly and under dp.jit; programs making host arrays themselves are left out."""
    require_cupy()
    if HOST_ARRAYS.search(prog.body):
        return
    note(prog.script())
    check_on_cupy(prog.fn, (prog.params,))


# --- regressions: what the fuzzing found, minimised (each fixed) --------------------------------
@pytest.mark.parametrize(
    "call, expected",
    [(lambda: dnp.dot(2.0, 3.0), 6.0), (lambda: dnp.outer(2.0, 3.0), [[6.0]]),
     (lambda: dnp.inner(2.0, 3.0), 6.0), (lambda: dnp.vdot(2.0, 3.0), 6.0),
     (lambda: dnp.kron(2.0, 3.0), 6.0), (lambda: dnp.tensordot(2.0, 3.0, axes=0), 6.0),
     (lambda: dnp.reshape(2.0, (1,)), [2.0]), (lambda: dnp.transpose(2.0), 2.0),
     (lambda: dnp.expand_dims(2.0, 0), [2.0]), (lambda: dnp.broadcast_to(2.0, (2,)), [2.0, 2.0]),
     (lambda: dnp.squeeze(2.0), 2.0)],
    ids=["dot", "outer", "inner", "vdot", "kron", "tensordot", "reshape", "transpose",
         "expand_dims", "broadcast_to", "squeeze"],
)  # fmt: skip
def test_dnp_functions_accept_python_floats(call, expected):
    np.testing.assert_array_equal(call(), expected)


def test_python_float_leaf_keeps_numpy_promotion():
    f = lambda p: p[0] * p[1]
    params = (0.5, np.ones(2, np.float32))
    assert f(params).dtype == np.float32
    assert dp.vjp(f, params)[0].dtype == np.float32
    assert dp.jvp(f, (params,), (params,))[0].dtype == np.float32


def test_modulo_and_floor_division_operators_on_tracers():
    assert dp.grad(lambda x: x % 1.5)(2.0) == 1.0
    assert dp.grad(lambda x: 5.0 % (x + 1.0) + x)(2.0) == 1.0 - 1.0  # 5 mod y = 5 - y: slope -1
    assert dp.grad(lambda x: (x // 1.5) * x)(2.0) == 1.0
    assert dp.grad(lambda x: divmod(x, 1.5)[1])(2.0) == 1.0


def test_copy_method_on_tracers():
    def f(x):
        y = x.copy()
        y[0] = 0.0
        return dnp.sum(y * x)

    np.testing.assert_array_equal(dp.grad(f)(np.array([1.0, 2.0])), [0.0, 4.0])


def test_augmented_assignment_through_an_alias_matches_numpy():
    def f(x):
        y = x * 1.0
        z = y  # an alias of y, as NumPy code often has
        z *= 2.0  # NumPy: y changes too
        return dnp.sum(y)

    x = np.array([1.0, 2.0])
    value, g = dp.value_and_grad(f)(x)
    assert value == f(x) == 6.0
    np.testing.assert_array_equal(g, [2.0, 2.0])


def test_check_grads_of_a_function_constant_up_to_rounding():
    check_grads(lambda x: dnp.sin(x) ** 2 + dnp.cos(x) ** 2, (np.array([0.3, -1.2, 0.7]),), order=2)


WHERE_ARGUMENTS = [  # (condition, x, y): scalars of each kind, 0-d arrays, arrays, mixed
    (True, 1.5, 2.0), (np.bool_(False), 1.5, np.float64(2.0)), (True, np.float32(1.5), 2.0),
    (np.array(True), 1.5, 2.0), (True, np.array(1.5, np.float32), 2), (False, 1, 2),
    (np.array([True, False]), 1.5, 2.0), (True, np.ones(2, np.float32), 2.0),
]


@pytest.mark.parametrize("args", WHERE_ARGUMENTS, ids=range(len(WHERE_ARGUMENTS)))
def test_where_is_numpys_exactly_and_its_derivatives_match_the_values(args):
    """dnp.where gives what numpy.where gives, type included (a 0-d array of scalars), eager
    and traced; its derivatives have its values' shapes (a ufunc's types: a scalar's
    derivatives are scalars, so they mix with CuPy arrays)."""
    want, got = np.where(*args), dnp.where(*args)
    assert (type(got), got.dtype, got.shape) == (type(want), want.dtype, want.shape)
    np.testing.assert_array_equal(got, want)
    c, x, y = args
    if np.asarray(x).dtype.kind == "f":
        out, vjp_fn = dp.vjp(lambda x: dnp.where(c, x, y), x)
        assert (type(out), out.dtype, out.shape) == (type(want), want.dtype, want.shape)
        out, tangent = dp.jvp(lambda x: dnp.where(c, x, y), (x,), (x,))
        assert np.shape(tangent) == want.shape
        np.testing.assert_array_equal(tangent, np.where(c, x, 0.0))
        (adjoint,) = vjp_fn(np.ones_like(want))
        assert type(adjoint) is type(x)
        selected = np.where(c, np.ones_like(want), 0.0)
        np.testing.assert_array_equal(adjoint, selected if np.ndim(x) else selected.sum())


def test_rules_built_on_where_keep_a_host_scalars_derivatives_scalars():
    """diffprog's own rules select with ufunc_where (a ufunc's convention: a scalar of
    scalars), so the derivatives of a host scalar stay scalars, as its values are."""
    assert type(dp.jvp(lambda s: dnp.maximum(s, 0.3), (0.7,), (0.5,))[1]) is np.float64
    assert type(dp.grad(lambda s: dnp.power(s * s + 0.5, s))(-0.1)) is float
    assert type(dnp.interp(0.5, [0.0, 1.0], [1.0, 3.0])) is type(np.interp(0.5, [0, 1], [1, 3]))
    assert type(dp.grad(lambda s: dnp.where(s > 0, s * s, -s))(0.5)) is float


SCALARS_MEET_DEVICE_ARRAYS = {  # f(x, s): x a (device) array, s a host scalar (its tangent 0.3)
    "where": lambda x, s: dnp.where(dnp.arctan(s) > -0.03, x, s),
    "maximum": lambda x, s: x * dnp.maximum(dnp.sum(x), dnp.relu(s)),
    "power": lambda x, s: x * dnp.power(s * s + 0.5, s),
    "sinc": lambda x, s: x * dnp.power(s * s + 0.5, dnp.sinc(dnp.sin(s))),
    "abs": lambda x, s: x * dnp.abs(s) * dnp.where(s > 0, s, 1.0),
    "where of scalars": lambda x, s: x * (dnp.where(s < 0, s * s, 2.0) * s) + dnp.where(True, s, x),
}


@pytest.mark.gpu
@pytest.mark.parametrize("name", sorted(SCALARS_MEET_DEVICE_ARRAYS))
def test_eager_derivatives_on_cupy_mixing_host_scalars(name):
    """Found by running the fuzzed programs on CuPy: a host scalar's tangent or cotangent (or
    a residual of its rules) was a 0-d NumPy array, which CuPy refuses beside its arrays."""
    cp = require_cupy()
    f, x, s = SCALARS_MEET_DEVICE_ARRAYS[name], np.linspace(-1.0, 1.0, 6).reshape(2, 3), -0.1
    scalar = lambda x, s: dnp.sum(f(x, s) * x)  # noqa: E731
    host = lambda tree: dp.tree.map(lambda a: cp.asnumpy(a) if isinstance(a, cp.ndarray) else a,
                                    tree)  # noqa: E731
    for program in (lambda x: dp.vjp(f, x, s)[1](x), lambda x: dp.jvp(f, (x, s), (x, 0.3)),
                    lambda x: dp.grad(scalar, argnums=(0, 1))(x, s),
                    lambda x: dp.hvp(scalar, (x, s), (x, 0.3))):
        want, got = program(x), host(program(cp.asarray(x)))
        assert dp.tree.structure(got) == dp.tree.structure(want)
        for g, w in zip(dp.tree.leaves(got), dp.tree.leaves(want)):
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)


def _constant_softmax_sum(p):  # sum(softmax(sin(a))) - 3: its gradient in a cancels to 0
    return dnp.sum(dnp.expm1(dnp.log_softmax(dnp.sin(p["a"]), axis=-1))) + dnp.tanh(p["b"])


def _saturated_tanh(p):  # tanh at 5 to 7: its derivatives hold 1 - tanh^2 ~ 2e-6
    v = dnp.abs(dnp.kron(p, p))
    return dnp.sum(dnp.cumsum(p, axis=0)) + dnp.mean(dnp.tanh(v @ dnp.swapaxes(v, -1, -2)))


def _of_softmax_sum_alone(p):  # every derivative is 0: the whole VJP cancels
    total = dnp.softmax(p[0], axis=1).sum(axis=None, keepdims=True) + 1.5
    return dnp.sum(total) + dnp.mean(dnp.tanh(total))


@pytest.mark.parametrize("f, params", [
    (_constant_softmax_sum, {"b": 0.1386, "a": np.array([0.02223323689767178, -0.4461996053356024,
                                                        -0.5676336368338148])}),
    (_of_softmax_sum_alone, (np.array([[1.0100376417873076, 0.2948108876971246,
                                        0.9144319496030892]]), 0.963)),
    (_saturated_tanh, np.array([[-0.49272339289676964, 0.7315365083636599, -1.3815340580870716],
                                [-0.24068375439648304, 1.352563393208241, -0.7973569711044293]])),
], ids=["vjp zero by cancellation", "every derivative zero", "hvp through 1 - tanh^2"])  # fmt: skip
def test_fused_results_small_by_cancellation_carry_their_terms_rounding(f, params):
    """Found by the random-mode fuzz: a fused VJP gave 1.1e-19 where NumPy's is 0 (terms of
    5.6e-4 cancel), one whose every leaf is 0 gave up to 9e-20, a fused HVP differed by
    4e-12 relative where 1 - tanh^2 cancels: the rounding of the cancelled terms, within
    backends.assert_fused_close's tolerance (relative to the whole result and to the
    directions' magnitude, not to the leaf)."""
    check_jit(f, (params,), fuse=True)


def test_fused_float32_hvp_through_1_minus_tanh_squared_near_1():
    """Found by the random-mode fuzz (mixed precision): tanh(g) 39 float32 ulps below 1,
    where NumPy's float32 tanh is 1 ulp off the rounded value the fused kernel computes: 1 -
    tanh^2 differs by 2.6%, 2.2e-6 in an HVP entry of 8.7e-5 whose cancelled terms are ~19
    (see backends.assert_fused_close)."""
    def f(p):
        a = dnp.logaddexp(dnp.relu(p), dnp.relu(p))
        return dnp.tanh(a * a)

    x = np.array([[-1.1820424, 0.25918445, -1.1084366], [-0.3165239, -0.62560487, 1.9221296]],
                 np.float32)  # fmt: skip
    check_jit(f, (x,), fuse=True, narrow=True)


def test_the_fused_tolerance_stays_tight_where_the_whole_result_is_tiny():
    tiny, whole = np.array([1e-20, 0.0]), (np.array([1e-20, 0.0]), np.array(1.0))
    assert_fused_close(tiny + [0.0, 1e-19], tiny, scale=result_scale(whole))  # beside a 1.0
    with pytest.raises(AssertionError):  # alone: its own scale
        assert_fused_close(tiny * 2, tiny)
    with pytest.raises(AssertionError):
        assert_fused_close(tiny + [0.0, 1e-11], tiny, scale=result_scale(whole))


def test_vmap_of_a_data_mask_selecting_unlike_says_so():
    """A random-mode run's program (minimised): the mask v0 > -0.79 selects one element of
    the first parameter set and none of the set 1.1 times it, which dp.vmap refuses with its
    error naming the data-dependent shape; the fuzz test takes that refusal."""
    body = "def f(p):\n    v0 = p\n    v1 = v0[v0 > -0.79]\n    return dnp.sum(v1) + dnp.sum(v0)\n"
    ns = {"dnp": dnp, "np": np}
    exec(body, ns)  # noqa: S102  (a fuzz program is source text by design)
    prog = Program(np.array([-1.03, -0.734]), body, ns["f"], 2, ["read", "selections"])
    with pytest.raises(ValueError, match="the shape depends on the data"):
        check_vmap(prog.fn, (prog.params,))
    vmap_or_its_refusal(prog)
