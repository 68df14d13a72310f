"""Shape and indexing functions (manipulation.py, indexing.py): values equal NumPy's, and both
modes agree with central differences to second order in float64 and float32."""

from __future__ import annotations

import types

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.numpy import indexing, joins, manipulation
from backends import NUMPY, on_gpu, under_jit, under_vmap
from diffprog.testing import check_grads

DTYPES = [np.float64, np.float32]
# The functions under test, side by side with NumPy's: `f(m, *args)` runs with m = D or np.
D = types.SimpleNamespace(**{n: getattr(m, n) for m in (indexing, joins, manipulation)
                             for n in m.__all__})  # fmt: skip
SORTED = np.array([[2, 0, 1, 1], [0, 0, 2, 1], [1, 2, 0, 0]])  # a take_along_axis index, repeats

# name: (f(m, *arrays), shapes of the arrays)
CASES = {
    "moveaxis_one": (lambda m, x: m.moveaxis(x, 0, -1), [(2, 3, 4)]),
    "moveaxis_seq": (lambda m, x: m.moveaxis(x, (0, 1), (-1, 0)), [(2, 3, 4)]),
    "moveaxis_list": (lambda m, x: m.moveaxis(x, [2, 0], [0, 1]), [(2, 3, 4)]),
    "flip_all": (lambda m, x: m.flip(x), [(2, 3, 4)]),
    "flip_0d": (lambda m, x: m.flip(x), [()]),
    "flip_1d": (lambda m, x: m.flip(x, 0), [(5,)]),
    "flip_neg": (lambda m, x: m.flip(x, -1), [(2, 3, 4)]),
    "flip_tuple": (lambda m, x: m.flip(x, (0, 2)), [(2, 3, 4)]),
    "fliplr": (lambda m, x: m.fliplr(x), [(2, 3)]),
    "fliplr_3d": (lambda m, x: m.fliplr(x), [(2, 3, 2)]),
    "flipud": (lambda m, x: m.flipud(x), [(3, 2)]),
    "flipud_1d": (lambda m, x: m.flipud(x), [(4,)]),
    "roll_flat": (lambda m, x: m.roll(x, 2), [(2, 3)]),
    "roll_flat_neg": (lambda m, x: m.roll(x, -7), [(2, 3)]),
    "roll_0d": (lambda m, x: m.roll(x, 3), [()]),
    "roll_axis": (lambda m, x: m.roll(x, -1, axis=1), [(2, 3, 4)]),
    "roll_big_shift": (lambda m, x: m.roll(x, 9, axis=-1), [(2, 3, 4)]),
    "roll_tuple": (lambda m, x: m.roll(x, (1, -2), axis=(0, 2)), [(2, 3, 4)]),
    "roll_same_axis": (lambda m, x: m.roll(x, (1, 1), axis=(1, 1)), [(2, 3, 4)]),
    "roll_shift_broadcast": (lambda m, x: m.roll(x, 1, axis=(0, -1)), [(2, 3, 4)]),
    "rot90": (lambda m, x: m.rot90(x), [(2, 3)]),
    "rot90_k2": (lambda m, x: m.rot90(x, 2), [(2, 3)]),
    "rot90_k3_axes": (lambda m, x: m.rot90(x, 3, axes=(1, 2)), [(2, 3, 4)]),
    "rot90_neg_k_neg_axes": (lambda m, x: m.rot90(x, -1, axes=(-1, 0)), [(2, 3, 4)]),
    "tile_int": (lambda m, x: m.tile(x, 2), [(3,)]),
    "tile_more_reps": (lambda m, x: m.tile(x, (2, 1, 2)), [(2, 3)]),
    "tile_fewer_reps": (lambda m, x: m.tile(x, (3,)), [(2, 3)]),
    "tile_0d": (lambda m, x: m.tile(x, (2, 3)), [()]),
    "tile_ones": (lambda m, x: m.tile(x, (1, 1, 1)), [(2, 3)]),
    "repeat_flat": (lambda m, x: m.repeat(x, 2), [(2, 3)]),
    "repeat_0d": (lambda m, x: m.repeat(x, 3), [()]),
    "repeat_axis": (lambda m, x: m.repeat(x, 3, axis=1), [(2, 3)]),
    "repeat_counts": (lambda m, x: m.repeat(x, [1, 0, 2], axis=-1), [(2, 3)]),
    "repeat_counts_flat": (lambda m, x: m.repeat(x, np.array([2, 1, 0, 3])), [(2, 2)]),
    "repeat_one_count": (lambda m, x: m.repeat(x, np.array([2]), axis=0), [(2, 3)]),
    "pad_constant": (lambda m, x: m.pad(x, 1), [(2, 3)]),
    "pad_constant_values": (lambda m, x: m.pad(x, ((1, 0), (2, 1)), constant_values=2.5), [(2, 3)]),
    "pad_constant_pairs": (lambda m, x: m.pad(x, (2, 1), constant_values=((1, 2), (3, 4), (5, 6))), [(2, 1, 3)]),
    "pad_edge": (lambda m, x: m.pad(x, (1, 2), mode="edge"), [(2, 3)]),
    "pad_edge_per_axis": (lambda m, x: m.pad(x, ((0, 0), (3, 1)), mode="edge"), [(2, 3)]),
    "pad_reflect": (lambda m, x: m.pad(x, 2, mode="reflect"), [(3, 4)]),
    "pad_reflect_wide": (lambda m, x: m.pad(x, (5, 7), mode="reflect"), [(3,)]),
    "pad_reflect_length1": (lambda m, x: m.pad(x, 2, mode="reflect"), [(1, 2)]),
    "pad_symmetric": (lambda m, x: m.pad(x, ((1, 3), (0, 2)), mode="symmetric"), [(2, 3)]),
    "pad_wrap": (lambda m, x: m.pad(x, (4, 1), mode="wrap"), [(3,)]),
    "pad_0d": (lambda m, x: m.pad(x, 2), [()]),
    "split_sections": (lambda m, x: m.split(x, 3), [(6,)]),
    "split_indices_axis": (lambda m, x: m.split(x, [1, 4], axis=1), [(2, 6)]),
    "split_negative_index": (lambda m, x: m.split(x, [-2], axis=-1), [(2, 5)]),
    "split_decreasing": (lambda m, x: m.split(x, [3, 1]), [(5, 2)]),
    "array_split_uneven": (lambda m, x: m.array_split(x, 4), [(7, 2)]),
    "array_split_more_than_length": (lambda m, x: m.array_split(x, 4, axis=1), [(2, 3)]),
    "array_split_out_of_range": (lambda m, x: m.array_split(x, [2, 10]), [(4,)]),
    "hsplit": (lambda m, x: m.hsplit(x, 2), [(3, 4)]),
    "hsplit_1d": (lambda m, x: m.hsplit(x, [1]), [(3,)]),
    "vsplit": (lambda m, x: m.vsplit(x, [1, 3]), [(4, 2)]),
    "dsplit": (lambda m, x: m.dsplit(x, 2), [(2, 1, 4)]),
    "ravel": (lambda m, x: m.ravel(x), [(2, 3)]),
    "ravel_0d": (lambda m, x: m.ravel(x), [()]),
    "atleast_1d": (lambda m, x: m.atleast_1d(x), [()]),
    "atleast_1d_many": (lambda m, x, y: m.atleast_1d(x, y), [(), (2, 3)]),
    "atleast_2d_0d": (lambda m, x: m.atleast_2d(x), [()]),
    "atleast_2d_1d": (lambda m, x: m.atleast_2d(x), [(3,)]),
    "atleast_2d_many": (lambda m, x, y, z: m.atleast_2d(x, y, z), [(3,), (2, 3), (1, 2, 3)]),
    "atleast_3d_0d": (lambda m, x: m.atleast_3d(x), [()]),
    "atleast_3d_1d": (lambda m, x: m.atleast_3d(x), [(3,)]),
    "atleast_3d_2d": (lambda m, x: m.atleast_3d(x), [(2, 3)]),
    "atleast_3d_many": (lambda m, x, y: m.atleast_3d(x, y), [(2, 3), (2, 3, 4, 1)]),
    "hstack_1d": (lambda m, x, y: m.hstack([x, y, x]), [(3,), (2,)]),
    "hstack_0d": (lambda m, x, y: m.hstack((x, y)), [(), (2,)]),
    "hstack_2d": (lambda m, x, y: m.hstack([x, y]), [(2, 3), (2, 1)]),
    "vstack_1d": (lambda m, x, y: m.vstack([x, y]), [(3,), (3,)]),
    "vstack_mixed": (lambda m, x, y: m.vstack([x, y]), [(2, 3), (3,)]),
    "row_stack": (lambda m, x, y: (m.row_stack if m is D else np.vstack)([x, y]), [(2, 3), (3,)]),
    "dstack_2d": (lambda m, x, y: m.dstack([x, y]), [(2, 3), (2, 3)]),
    "dstack_1d": (lambda m, x, y: m.dstack([x, y]), [(3,), (3,)]),
    "column_stack": (lambda m, x, y: m.column_stack([x, y]), [(3,), (3, 2)]),
    "column_stack_0d": (lambda m, x, y: m.column_stack([x, y]), [(), ()]),
    "concatenate_list_input": (lambda m, x: m.concatenate([x, [1.0, 2.0]]), [(3,)]),
    "unstack": (lambda m, x: m.unstack(x, axis=1), [(2, 3, 4)]),
    "unstack_default_axis": (lambda m, x: m.unstack(x), [(3, 2)]),
    "append_flat": (lambda m, x, y: m.append(x, y), [(2, 3), (4,)]),
    "append_axis": (lambda m, x, y: m.append(x, y, axis=1), [(2, 3), (2, 2)]),
    "append_scalar": (lambda m, x: m.append(x, 2.0), [(3,)]),
    "rollaxis": (lambda m, x: m.rollaxis(x, 2), [(2, 3, 4)]),
    "rollaxis_start": (lambda m, x: m.rollaxis(x, 0, 3), [(2, 3, 4)]),
    "rollaxis_negative": (lambda m, x: m.rollaxis(x, -1, -2), [(2, 3, 4)]),
    "rollaxis_in_place": (lambda m, x: m.rollaxis(x, 1, 2), [(2, 3, 4)]),
    "take_flat": (lambda m, x: m.take(x, [5, 0, 5]), [(2, 3)]),
    "take_axis0_repeats": (lambda m, x: m.take(x, [0, 2, 0, 0], axis=0), [(3, 2)]),
    "take_neg_axis_2d_indices": (lambda m, x: m.take(x, [[1, -1], [0, 1]], axis=-1), [(2, 3, 3)]),
    "take_scalar_index": (lambda m, x: m.take(x, 1, axis=1), [(2, 3)]),
    "take_empty": (lambda m, x: m.take(x, [], axis=0), [(2, 3)]),
    "take_along_axis_0": (lambda m, x: m.take_along_axis(x, SORTED[:2], axis=0), [(3, 4)]),
    "take_along_axis_last": (lambda m, x: m.take_along_axis(x, SORTED, axis=-1), [(3, 3)]),
    "take_along_axis_broadcast": (lambda m, x: m.take_along_axis(x, SORTED[:, :, None], 1), [(3, 4, 2)]),
    "take_along_axis_none": (lambda m, x: m.take_along_axis(x, np.array([5, 0, 0, 3]), axis=None), [(2, 3)]),
    "diag_1d": (lambda m, x: m.diag(x), [(3,)]),
    "diag_1d_k": (lambda m, x: m.diag(x, 2), [(3,)]),
    "diag_1d_neg_k": (lambda m, x: m.diag(x, k=-1), [(2,)]),
    "diag_2d": (lambda m, x: m.diag(x), [(3, 4)]),
    "diag_2d_k": (lambda m, x: m.diag(x, 1), [(3, 4)]),
    "diag_2d_neg_k": (lambda m, x: m.diag(x, -2), [(4, 3)]),
    "diagonal": (lambda m, x: m.diagonal(x), [(3, 4)]),
    "diagonal_offset": (lambda m, x: m.diagonal(x, 1), [(3, 3)]),
    "diagonal_axes": (lambda m, x: m.diagonal(x, -1, axis1=2, axis2=0), [(3, 2, 4)]),
    "diagonal_neg_axes": (lambda m, x: m.diagonal(x, 1, -1, -3), [(4, 2, 3)]),
    "diagonal_empty": (lambda m, x: m.diagonal(x, 5), [(3, 4)]),
    "trace": (lambda m, x: m.trace(x), [(3, 3)]),
    "trace_offset": (lambda m, x: m.trace(x, 1), [(3, 4)]),
    "trace_axes": (lambda m, x: m.trace(x, -1, axis1=1, axis2=2), [(2, 3, 4)]),
    "trace_neg_axes": (lambda m, x: m.trace(x, 0, -1, 0), [(3, 2, 3)]),
    "triu": (lambda m, x: m.triu(x), [(3, 4)]),
    "triu_k": (lambda m, x: m.triu(x, 1), [(4, 3)]),
    "triu_neg_k_batched": (lambda m, x: m.triu(x, -1), [(2, 3, 3)]),
    "triu_1d": (lambda m, x: m.triu(x, 1), [(3,)]),
    "tril": (lambda m, x: m.tril(x), [(3, 4)]),
    "tril_k": (lambda m, x: m.tril(x, 2), [(4, 3)]),
    "tril_neg_k_batched": (lambda m, x: m.tril(x, -1), [(2, 3, 3)]),
    "tril_1d": (lambda m, x: m.tril(x), [(3,)]),
}  # fmt: skip


def make(rng, shape, dtype):
    x = np.asarray(rng.normal(size=shape), dtype=dtype)
    return x if shape else dtype(x)  # a 0-d input arrives as a NumPy scalar


def _same(ours, theirs):
    """Equal values, shapes and dtypes, through lists and tuples of arrays."""
    if isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same(a, b)
        return
    assert np.shape(ours) == np.shape(theirs)
    assert np.asarray(ours).dtype == np.asarray(theirs).dtype
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(CASES))
def test_grads(name, dtype, backend=NUMPY):
    fn, shapes = CASES[name]
    rng = np.random.default_rng(7)
    args = tuple(make(rng, s, dtype) for s in shapes)
    # o * (o + 1) is nonlinear, so the second order goes through the transposes' own rules.
    backend.check_grads(lambda *a: dp.tree.map(lambda o: o * (o + 1.0), fn(D, *a)), args, order=2)


test_grads_on_gpu = on_gpu(test_grads)


@pytest.mark.parametrize("dtype", [*DTYPES, np.int64], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(CASES))
def test_values_match_numpy(name, dtype):
    fn, shapes = CASES[name]
    rng = np.random.default_rng(8)
    args = tuple(np.asarray(rng.integers(-9, 9, size=s), dtype=dtype) for s in shapes)
    _same(fn(D, *args), fn(np, *args))


# --- differentiable constant_values of pad -------------------------------------------------
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(
    "shapes", [((2, 3), ()), ((2, 3), (2,)), ((2, 1, 3), (3, 2)), ((3,), (1, 2))], ids=str
)
def test_pad_traced_constant_values(shapes, dtype):
    rng = np.random.default_rng(9)
    x, c = make(rng, shapes[0], dtype), make(rng, shapes[1], dtype)
    width = ((1, 2),) + ((2, 1),) * (len(shapes[0]) - 1)
    check_grads(lambda x, c: indexing.pad(x, width, constant_values=c), (x, c), order=2)
    out = dp.jvp(lambda c: indexing.pad(x, width, constant_values=c), (c,), (np.zeros_like(c),))[0]
    _same(out, np.pad(x, width, constant_values=c))


# --- the gradients themselves --------------------------------------------------------------
def test_take_accumulates_repeated_indices():
    g = dp.grad(lambda x: indexing.take(x, [0, 0, 2, 0]).sum())(np.ones(3))
    assert np.array_equal(g, [3.0, 0.0, 1.0])
    g = dp.grad(lambda x: manipulation.repeat(x, [3, 0, 1]).sum())(np.ones(3))
    assert np.array_equal(g, [3.0, 0.0, 1.0])


def test_split_pieces_are_independent():
    """A piece nobody uses gets zero cotangent; the others get theirs, in place."""
    split = indexing.split
    x = np.arange(6.0)
    g = dp.grad(lambda x: (indexing.split(x, 3)[1] ** 2).sum())(x)
    assert np.array_equal(g, [0.0, 0.0, 4.0, 6.0, 0.0, 0.0])
    g = dp.grad(lambda x: (split(x, [3, 1])[2] * 10.0).sum() + split(x, [3, 1])[0].sum())(x)
    assert np.array_equal(g, [1.0, 11.0, 11.0, 10.0, 10.0, 10.0])


def test_pad_gradient_counts_border_copies():
    g = dp.grad(lambda x: indexing.pad(x, (2, 1), mode="edge").sum())(np.ones(3))
    assert np.array_equal(g, [3.0, 1.0, 2.0])
    g = dp.grad(lambda x: indexing.pad(x, 1, constant_values=5.0).sum())(np.ones((2, 2)))
    assert np.array_equal(g, np.ones((2, 2)))


def test_diag_roundtrip_and_trace_gradient():
    x = np.arange(9.0).reshape(3, 3)
    assert np.array_equal(dp.grad(lambda x: indexing.trace(x, 1))(x), np.eye(3, k=1))
    assert np.array_equal(dp.grad(lambda v: indexing.diag(v, -1).sum())(np.ones(2)), np.ones(2))


def test_triangles_zero_infinities():
    """The discarded triangle is replaced, not multiplied by zero (no inf * 0 = nan)."""
    x = np.full((2, 2), np.inf)
    assert np.array_equal(indexing.triu(x), np.triu(x))
    assert np.array_equal(indexing.tril(x), np.tril(x))


# --- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda: indexing.take(np.ones(3), [0], mode="wrap"), NotImplementedError, "mode='wrap'"),
        (lambda: indexing.take(np.ones(3), [3]), IndexError, "out of bounds"),
        (lambda: indexing.take(np.ones(3), np.array([0.5])), IndexError, "integer"),
        (lambda: indexing.take_along_axis(np.ones((2, 3)), np.zeros(3, int), 1), ValueError, "same number"),
        (lambda: indexing.pad(np.ones(3), 1, mode="mean"), NotImplementedError, "mode='mean'"),
        (lambda: indexing.pad(np.ones(3), 1, mode="reflect", reflect_type="odd"), NotImplementedError, "odd"),
        (lambda: indexing.pad(np.ones(3), 1, mode="edge", constant_values=1), ValueError, "constant_values"),
        (lambda: indexing.pad(np.ones(3), -1), ValueError, "negative"),
        (lambda: indexing.pad(np.ones(0), 1, mode="edge"), ValueError, "empty axis"),
        (lambda: indexing.split(np.ones(5), 2), ValueError, "equal division"),
        (lambda: indexing.array_split(np.ones(5), 0), ValueError, "larger than 0"),
        (lambda: indexing.vsplit(np.ones(4), 2), ValueError, "2 or more"),
        (lambda: indexing.diag(np.ones((2, 2, 2))), ValueError, "1- or 2-d"),
        (lambda: indexing.diagonal(np.ones((2, 2)), 0, 1, -1), ValueError, "cannot be the same"),
        (lambda: indexing.trace(np.ones((2, 2)), dtype=np.float32), NotImplementedError, "dtype"),
        (lambda: manipulation.moveaxis(np.ones((2, 3)), (0, 1), 0), ValueError, "same number"),
        (lambda: manipulation.moveaxis(np.ones((2, 3)), 2, 0), IndexError, "out of bounds"),
        (lambda: manipulation.roll(np.ones((2, 3)), (1, 2, 3), (0, 1)), ValueError, "broadcast"),
        (lambda: manipulation.fliplr(np.ones(3)), ValueError, "2-d"),
        (lambda: manipulation.repeat(np.ones(3), [1, 2]), ValueError, "broadcast"),
        (lambda: manipulation.repeat(np.ones(3), -1), ValueError, "negative"),
        (lambda: manipulation.rot90(np.ones((2, 2)), axes=(0, 0)), ValueError, "repeated"),
        (lambda: manipulation.hstack([np.ones(2)], dtype=np.float32), NotImplementedError, "dtype"),
        (lambda: manipulation.rollaxis(np.ones((2, 3)), 0, 4), np.exceptions.AxisError, "start"),
        (lambda: joins.unstack(np.float64(1.0)), ValueError, "at least 1-d"),
    ],
)  # fmt: skip
def test_errors(call, error, words):
    with pytest.raises(error, match=words):
        call()

test_grads_under_jit = under_jit(test_grads)
test_grads_under_vmap = under_vmap(test_grads)


X23 = np.arange(6.0).reshape(2, 3)
ONE_AXIS = {  # functions of one axis, each given one NumPy refuses with a TypeError
    "concatenate (0, 1)": lambda m: m.concatenate([X23, X23], axis=(0, 1)),
    "concatenate True": lambda m: m.concatenate([X23, X23], axis=True),
    "stack (0, 1)": lambda m: m.stack([X23, X23], axis=(0, 1)),
    "roll 1.0": lambda m: m.roll(X23, 1, axis=1.0),
    "roll np.True_": lambda m: m.roll(X23, 1, axis=np.True_),
    "repeat True": lambda m: m.repeat(X23, 2, axis=True),
    "repeat (1,)": lambda m: m.repeat(X23, 2, axis=(1,)),
}


@pytest.mark.parametrize("case", ONE_AXIS)
def test_an_axis_numpy_refuses_is_a_type_error_not_its_first_entry(case):
    """A tuple given for one axis was taken as its first entry (concatenate, stack), True as
    1 and a float or np.True_ as an int (roll), where NumPy raises a TypeError."""
    with pytest.raises(TypeError):
        ONE_AXIS[case](np)
    with pytest.raises(TypeError, match="axis"):
        ONE_AXIS[case](dnp)


def test_axes_numpy_takes_still_work():
    """What NumPy's normalize_axis_index takes (True for 1 in stack and roll) and roll's
    repeated axes (their shifts add up)."""
    for f in (lambda m: m.stack([X23, X23], axis=True), lambda m: m.unstack(X23, axis=-1),
              lambda m: m.roll(X23, 1, axis=True), lambda m: m.roll(X23, (1, 2), axis=(1, 1)),
              lambda m: m.roll(X23, (1, -1), axis=[np.int8(0), -1])):
        want, got = f(np), f(dnp)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))
