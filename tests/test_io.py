"""Tests for diffprog.io: checkpoints in safetensors (structure JSON in the header metadata)."""

from __future__ import annotations

import collections
import dataclasses
import enum
import json
import math
import os
import re
import stat
import struct
import sys
import time
import warnings
import zlib

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import diffprog as dp
import diffprog.io as dio
from backends import require_cupy
from diffprog.errors import DiffprogError, UnsupportedLeafError

Point = collections.namedtuple("Point", ["x", "y"])
AdamState = collections.namedtuple("AdamState", ["count", "mu", "nu"])


@dp.tree.register_dataclass
@dataclasses.dataclass(frozen=True)
class Dense:
    W: object
    b: object
    act: str = dataclasses.field(default="relu", metadata={"static": True})
    shape: tuple = dataclasses.field(default=(2, 3), metadata={"static": True})


@dataclasses.dataclass
class Unregistered:
    a: int


class Color(enum.IntEnum):
    RED = 1


# ---------------------------------------------------------------- helpers


def same_bits(a, b) -> bool:
    if type(a) is float:
        return struct.pack(">d", a) == struct.pack(">d", b)
    return a == b


def assert_identical(a, b, where="root"):
    """Same container types, key order and key types, dtypes, shapes and bits."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, dict):
        assert len(a) == len(b), where
        assert all(type(x) is type(y) and (same_bits(x, y) or (math.isnan(x) and math.isnan(y))
                                           if type(x) is float else x == y)
                   for x, y in zip(a, b)), (where, list(a), list(b))
        if isinstance(a, collections.defaultdict):
            assert a.default_factory is b.default_factory
        for (_, x), (_, y) in zip(a.items(), b.items()):
            assert_identical(x, y, where)
    elif isinstance(a, tuple) and hasattr(a, "_fields"):
        assert a._fields == b._fields
        for x, y in zip(a, b):
            assert_identical(x, y, where)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for x, y in zip(a, b):
            assert_identical(x, y, where)
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and a.shape == b.shape, (where, a.dtype, b.dtype)
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), where
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_identical(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif type(a) is float:
        assert same_bits(a, b), (where, a, b)
    elif type(a) is complex:
        assert same_bits(a.real, b.real) and same_bits(a.imag, b.imag), (where, a, b)
    else:
        assert a == b, (where, a, b)


def roundtrip(tmp_path, tree, name="ckpt.safetensors"):
    path = tmp_path / name
    dio.save(path, tree)
    out = dio.load(path)
    assert_identical(tree, out)
    return out


def neg_nan_with_payload() -> float:
    return struct.unpack(">d", bytes.fromhex("fff8000000001234"))[0]


def write_checkpoint(path, node, tensors=None, **meta_overrides):
    """A file in our format with a hand-written tree description (valid checksum)."""
    text = node if isinstance(node, str) else json.dumps(node)
    meta = {"diffprog.version": "1", "diffprog.tree": text,
            "diffprog.crc32": str(zlib.crc32(text.encode()))}
    meta.update(meta_overrides)
    safetensors.numpy.save_file(tensors or {}, str(path), metadata=meta)


def write_raw(path, header, data=b""):
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + data)


NONE = {"k": "none"}


def array_node(name, a, **extra):
    return {"k": "array", "t": name, "dtype": a.dtype.name, "shape": list(a.shape),
            "crc32": zlib.crc32(a.reshape(-1).view(np.uint8)), **extra}


# ---------------------------------------------------------------- leaves

SCALARS = [
    None, True, False, 0, -1, 2**200 + 1, -(2**521), 0.0, -0.0, 1.5, 5e-324, math.inf, -math.inf,
    math.nan, neg_nan_with_payload(), complex(1, -0.0), complex(math.nan, -math.inf), "",
    "héllo ☃ \x00 \"quotes\" \\", "lone \ud800 surrogate",
]
NP_DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
             "float16", "float32", "float64", "complex64", "complex128"]


@pytest.mark.parametrize("leaf", SCALARS, ids=repr)
def test_python_leaf_roundtrips_exactly(tmp_path, leaf):
    roundtrip(tmp_path, leaf)
    roundtrip(tmp_path, {"x": [leaf, (leaf,)]})


@pytest.mark.parametrize("dtype", NP_DTYPES)
def test_arrays_and_numpy_scalars_keep_dtype_shape_and_bits(tmp_path, dtype):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 256, size=24 * np.dtype(dtype).itemsize, dtype=np.uint8)
    a = raw.view(dtype) if dtype != "bool" else raw % 2 == 1  # every bit pattern, NaNs included
    tree = {"full": a.reshape(2, 3, -1), "zero_d": np.asarray(a[0]), "empty": a[:0].reshape(3, 0, 2),
            "scalar": a[1], "strided": a.reshape(4, -1)[::2, ::-1]}
    out = roundtrip(tmp_path, tree)
    assert type(out["scalar"]) is np.dtype(dtype).type and out["zero_d"].shape == ()
    assert all(v.flags.writeable for v in out.values() if isinstance(v, np.ndarray))


def test_big_endian_array_is_stored_with_its_values(tmp_path):
    a = np.arange(5, dtype=">f4") / 3
    dio.save(tmp_path / "c", {"a": a})
    out = dio.load(tmp_path / "c")["a"]
    assert out.dtype == np.float32 and out.tobytes() == a.astype("<f4").tobytes()


def test_memmap_is_saved_as_an_array(tmp_path):
    m = np.memmap(tmp_path / "m.bin", dtype="float32", mode="w+", shape=(3,))
    m[:] = [1, 2, 3]
    dio.save(tmp_path / "c", [m])
    out = dio.load(tmp_path / "c")[0]
    assert type(out) is np.ndarray and out.tolist() == [1, 2, 3]


# ---------------------------------------------------------------- containers


def test_dict_key_order_and_key_types(tmp_path):
    tree = {"z": 1, 3: 2, 2**80: 3, -1.5: 4, math.nan: 5, True: 6, None: 7, "a": {}, "": []}
    out = roundtrip(tmp_path, tree)
    assert [type(k) for k in out] == [type(k) for k in tree]


def test_every_container_kind_nested_deeply(tmp_path):
    dd = collections.defaultdict(list, {"b": [1], "a": (2.0,)})
    tree = {
        "od": collections.OrderedDict([("y", Point(np.float32(1), [None])), ("x", ())]),
        "dd": dd, "dd_none": collections.defaultdict(None, {1: 2}),
        "dd_int": collections.defaultdict(int), "dense": Dense(np.ones((2, 3)), np.zeros(3), "tanh"),
        "empty": [[], (), {}, collections.OrderedDict(), Point((), {})],
    }
    for _ in range(40):
        tree = [tree, (Point(tree if _ == 0 else 1, {"k": np.int8(_)}),)]
    out = roundtrip(tmp_path, tree)
    inner = out
    for _ in range(40):
        inner = inner[0]
    assert inner["dense"].act == "tanh" and inner["dd"].default_factory is list
    inner["dd"]["new"].append(1)  # still a working defaultdict


def test_equal_keystrs_do_not_collide(tmp_path):
    tree = {"a": np.ones(1), "['a']": np.zeros(1), 1: np.full(1, 2.0), "1": np.full(1, 3.0)}
    roundtrip(tmp_path, [tree, {"x": tree}])


leaf_st = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_subnormal=True),
    st.complex_numbers(allow_nan=True), st.text(max_size=6),
    hnp.arrays(st.sampled_from(NP_DTYPES), hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                                           max_side=3)),
    hnp.from_dtype(np.dtype("float32")).map(np.float32),
    hnp.from_dtype(np.dtype("int64")).map(np.int64),
)
key_st = st.one_of(st.text(max_size=4), st.integers(), st.floats(allow_nan=False), st.booleans(),
                   st.none())
tree_st = st.recursive(
    leaf_st,
    lambda kids: st.one_of(
        st.lists(kids, max_size=3), st.lists(kids, max_size=3).map(tuple),
        st.dictionaries(key_st, kids, max_size=3),
        st.dictionaries(key_st, kids, max_size=3).map(collections.OrderedDict),
        st.dictionaries(key_st, kids, max_size=3).map(
            lambda d: collections.defaultdict(dict, d)),
        st.tuples(kids, kids).map(lambda t: Point(*t)),
        st.tuples(kids, kids).map(lambda t: Dense(*t)),
    ),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=tree_st)
def test_random_trees_roundtrip(tmp_path, tree):
    roundtrip(tmp_path, tree)


# ---------------------------------------------------------------- optimizer state / resume


def adam_step(params, grads, state, lr=1e-2, b1=0.9, b2=0.999, eps=1e-8):
    count = state.count + 1
    mu = {k: b1 * state.mu[k] + (1 - b1) * grads[k] for k in params}
    nu = {k: b2 * state.nu[k] + (1 - b2) * grads[k] ** 2 for k in params}
    new = {k: params[k] - lr * (mu[k] / (1 - b1**count)) / (np.sqrt(nu[k] / (1 - b2**count)) + eps)
           for k in params}
    return new, AdamState(count, mu, nu)


def test_optimizer_state_roundtrip_resumes_training_bit_for_bit(tmp_path):
    rng = np.random.default_rng(1)
    target = {"W": rng.standard_normal((3, 4)).astype(np.float32), "b": rng.standard_normal(4)}
    params = {"W": np.zeros((3, 4), np.float32), "b": np.zeros(4)}
    state = AdamState(np.int32(0), {k: np.zeros_like(v) for k, v in params.items()},
                      {k: np.zeros_like(v) for k, v in params.items()})

    def run(params, state, n):
        for _ in range(n):
            params, state = adam_step(params, {k: params[k] - target[k] for k in params}, state)
        return params, state

    straight = run(params, state, 10)
    p5, s5 = run(params, state, 5)
    dio.save(tmp_path / "ckpt", {"params": p5, "opt": s5, "step": 5, "rng": "pcg64"})
    ck = dio.load(tmp_path / "ckpt")
    assert type(ck["opt"]) is AdamState and type(ck["opt"].count) is np.int32
    assert ck["opt"].count == 5 and ck["step"] == 5
    assert_identical(run(ck["params"], ck["opt"], 5), straight)


# ---------------------------------------------------------------- namedtuple / dataclass types


def test_local_namedtuple_is_rebuilt_with_a_warning(tmp_path):
    Local = collections.namedtuple("Local", ["a", "b"])
    dio.save(tmp_path / "c", {"s": Local(1, np.ones(2))})
    with pytest.warns(UserWarning, match=r"Local is not imported.*\['s'\]"):
        out = dio.load(tmp_path / "c")["s"]
    assert out._fields == ("a", "b") and out.a == 1 and out.b.tolist() == [1.0, 1.0]


def test_namedtuple_with_changed_fields_is_rebuilt(tmp_path, monkeypatch):
    dio.save(tmp_path / "c", Point(1, 2))
    monkeypatch.setattr(sys.modules[__name__], "Point", collections.namedtuple("Point", "x y z"))
    with pytest.warns(UserWarning, match="now has fields"):
        out = dio.load(tmp_path / "c")
    assert out._fields == ("x", "y") and tuple(out) == (1, 2)


def test_saved_types_are_found_only_in_imported_modules_and_nothing_is_imported(
        tmp_path, monkeypatch):
    marker = tmp_path / "imported.txt"
    (tmp_path / "evil_mod_for_io_test.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "import collections\nT = collections.namedtuple('T', 'a')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    node = {"k": "namedtuple", "type": ["evil_mod_for_io_test", "T"], "fields": ["a"],
            "c": [{"k": "none"}]}
    write_checkpoint(tmp_path / "c", node)
    with pytest.warns(UserWarning, match="not imported"):
        out = dio.load(tmp_path / "c")
    assert out == (None,) and not marker.exists() and "evil_mod_for_io_test" not in sys.modules
    node = {"k": "dataclass", "type": ["evil_mod_for_io_test", "D"], "c": [], "static": []}
    write_checkpoint(tmp_path / "c", node)
    with pytest.raises(dio.CheckpointError, match="not imported"):
        dio.load(tmp_path / "c")
    assert not marker.exists()


@pytest.mark.parametrize("module,qualname", [
    ("os", "system"), ("subprocess", "Popen"), ("builtins", "eval"), ("builtins", "tuple"),
    (__name__, "Dense"), (__name__, "np.ndarray"),
])
def test_namedtuple_type_pointing_at_a_non_namedtuple_is_refused(tmp_path, monkeypatch,
                                                                 module, qualname):
    import subprocess
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: calls.append(a))
    node = {"k": "namedtuple", "type": [module, qualname], "fields": ["a"],
            "c": [{"k": "str", "v": "echo pwned"}]}
    write_checkpoint(tmp_path / "c", node)
    with pytest.raises(dio.CheckpointError, match=rf"{tmp_path}.*not a namedtuple class"):
        dio.load(tmp_path / "c")
    assert calls == []


def test_dataclass_type_must_be_a_registered_dataclass_with_the_same_fields(tmp_path):
    base = {"k": "dataclass", "c": [["a", {"k": "int", "v": "0x1"}]], "static": []}
    for qualname, msg in [("Unregistered", "not registered"), ("Point", "not a dataclass"),
                          ("Dense", "now has fields")]:
        write_checkpoint(tmp_path / "c", {**base, "type": [__name__, qualname]})
        with pytest.raises(dio.CheckpointError, match=msg):
            dio.load(tmp_path / "c")


def test_load_onto_a_device(tmp_path):
    dio.save(tmp_path / "c", {"w": np.ones(2), "n": 3})
    out = dio.load(tmp_path / "c", device="cpu")
    assert type(out["w"]) is np.ndarray and out["n"] == 3
    with pytest.raises(ValueError, match="device must be"):
        dio.load(tmp_path / "c", device="tpu")


# ---------------------------------------------------------------- save-time errors


class Pair:
    def __init__(self, a, b):
        self.a, self.b = a, b


dp.tree.register_node(Pair, lambda p: ((p.a, p.b), None), lambda aux, ch: Pair(*ch))


@pytest.mark.parametrize("bad,what", [
    (lambda x: x, "function"), (object(), "object"), (Color.RED, "Color"), (b"bytes", "bytes"),
    (np.array(["a"]), "dtype <U1"), (np.array([None], dtype=object), "dtype object"),
    (np.datetime64("2020-01-01"), "datetime64"), (np.ones(2, dtype=[("a", "f4")]), "dtype"),
    (np.ma.masked_array([1.0], mask=[True]), "MaskedArray"), (Unregistered(1), "register_dataclass"),
    (Pair(1, 2), "custom pytree node"), ({(1, 2): 3}, r"key \(1, 2\)"),
    (collections.defaultdict(lambda: 0), "default_factory"), ({1, 2}, "set"),
])
def test_unsupported_values_name_their_key_path(tmp_path, bad, what):
    tree = {"layers": [{"W": np.ones(2)}, Point(x=0.0, y={"q": bad})]}
    with pytest.raises(UnsupportedLeafError, match=re.escape("['layers'][1].y['q']") + ".*" + what):
        dio.save(tmp_path / "c", tree)
    assert not any(tmp_path.iterdir())  # nothing written, no temp file left behind


def test_error_paths_are_spelled_like_dp_tree_keystr(tmp_path):
    def f(x):
        return x

    tree = collections.OrderedDict(a=[{1.5: Dense(W=(None, f), b=0)}])
    (path,) = [p for p, v in dp.tree.flatten_with_path(tree)[0] if v is f]
    with pytest.raises(UnsupportedLeafError, match=re.escape(dp.tree.keystr(path))):
        dio.save(tmp_path / "c", tree)


def test_extended_precision_is_refused(tmp_path):
    if np.dtype(np.longdouble).itemsize == 8:
        pytest.skip("longdouble is float64 here")
    with pytest.raises(UnsupportedLeafError, match="dtype"):
        dio.save(tmp_path / "c", np.ones(2, np.longdouble))


def test_saving_a_traced_value_says_so(tmp_path):
    def loss(p):
        dio.save(tmp_path / "c", p)
        return (p["w"] ** 2).sum()

    with pytest.raises(UnsupportedLeafError, match=r"\['w'\].*traced value"):
        dp.grad(loss)({"w": np.ones(2)})


# ---------------------------------------------------------------- atomic writes


def test_failed_write_leaves_the_old_file_and_no_temp_file(tmp_path, monkeypatch):
    dio.save(tmp_path / "c", {"v": 1})
    os.chmod(tmp_path / "c", 0o640)

    real_write = os.write

    def boom(fd, data):  # dp.save writes through os.write: the first call writes a bit, fails
        real_write(fd, b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(os, "write", boom)
    with pytest.raises(OSError, match="disk full"):
        dio.save(tmp_path / "c", {"v": 2})
    monkeypatch.undo()
    assert dio.load(tmp_path / "c") == {"v": 1} and os.listdir(tmp_path) == ["c"]
    dio.save(tmp_path / "c", {"v": 3})
    assert dio.load(tmp_path / "c") == {"v": 3} and os.listdir(tmp_path) == ["c"]
    assert stat.S_IMODE(os.stat(tmp_path / "c").st_mode) == 0o640  # overwrite keeps the mode


def test_new_file_mode_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        dio.save(str(tmp_path / "c"), [])
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "c").st_mode) == 0o640


# ---------------------------------------------------------------- damaged files


@pytest.fixture
def saved(tmp_path):
    tree = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "s": AdamState(3, {"m": 1.5}, [])}
    path = tmp_path / "good.safetensors"
    dio.save(path, tree)
    return path, tree, path.read_bytes()


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        dio.load(tmp_path / "nope")


def test_truncated_files_raise(saved, tmp_path):
    _, _, data = saved
    hlen = struct.unpack("<Q", data[:8])[0]
    for cut in sorted({0, 1, 7, 8, 9, 8 + hlen // 2, 8 + hlen - 1, 8 + hlen, 8 + hlen + 5,
                       len(data) - 1}):
        bad = tmp_path / f"cut{cut}"
        bad.write_bytes(data[:cut])
        with pytest.raises(dio.CheckpointError, match=rf"{bad}: not a valid safetensors file"):
            dio.load(bad)


def test_every_flipped_header_byte_raises_or_changes_nothing(saved, tmp_path):
    _, tree, data = saved
    hlen = struct.unpack("<Q", data[:8])[0]
    bad = tmp_path / "bad"
    raised = 0
    for i in range(8 + hlen):
        for flip in (0x01, 0x20):
            b = bytearray(data)
            b[i] ^= flip
            bad.write_bytes(bytes(b))
            try:
                out = dio.load(bad)
            except dio.CheckpointError as e:
                assert str(bad) in str(e)
                raised += 1
            else:  # e.g. the case of a hex digit in a \\u escape: same text, same tree
                assert_identical(out, tree)
    assert raised > 1.9 * (8 + hlen)


def test_flipped_tensor_bytes_fail_the_checksum(saved, tmp_path):
    _, _, data = saved
    for i in (len(data) - 24, len(data) - 1):
        b = bytearray(data)
        b[i] ^= 0x10
        (tmp_path / "bad").write_bytes(bytes(b))
        with pytest.raises(dio.CheckpointError, match=r"\['w'\].*checksum"):
            dio.load(tmp_path / "bad")


def test_foreign_and_malformed_safetensors_files(tmp_path):
    p = tmp_path / "c"
    safetensors.numpy.save_file({"a": np.ones(2)}, str(p))
    with pytest.raises(dio.CheckpointError, match="not a diffprog checkpoint"):
        dio.load(p)
    for header, data in [
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
          "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, 12),  # overlap
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, 12),  # trailing bytes
        ({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 80]}}, 8),  # past the end
        ({"a": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}, 8),
        ({"__metadata__": {"diffprog.tree": {"k": "none"}}}, 0),  # metadata must be strings
    ]:
        write_raw(p, header, b"\0" * data)
        with pytest.raises(dio.CheckpointError, match="not a valid safetensors"):
            dio.load(p)


def test_unsupported_tensor_dtype_in_a_hand_made_file(tmp_path):
    node = {"k": "array", "t": "a", "dtype": "bfloat16", "shape": [2], "crc32": 0}
    meta = {"diffprog.version": "1", "diffprog.tree": json.dumps(node),
            "diffprog.crc32": str(zlib.crc32(json.dumps(node).encode()))}
    write_raw(tmp_path / "c", {"a": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]},
                               "__metadata__": meta}, b"\0" * 4)
    with pytest.raises(dio.CheckpointError, match="cannot read tensor 'a'"):
        dio.load(tmp_path / "c")


A = np.arange(4.0)


@pytest.mark.parametrize("node,tensors,msg", [
    ([1, 2], {}, "expected a node object"),
    ({"k": ["list"]}, {}, "expected a node object"),
    ({"k": "pickle", "v": "cos\nsystem\n"}, {}, "expected a node object"),
    ({"k": "none", "extra": 1}, {}, "must have the fields"),
    ({"k": "list"}, {}, "must have the fields"),
    ({"k": "int", "v": "12"}, {}, "bad int"),
    ({"k": "int", "v": "__import__('os')"}, {}, "bad int"),
    ({"k": "float", "v": 1.0}, {}, "bad float"),
    ({"k": "bool", "v": 1}, {}, "bad bool value"),
    ({"k": "list", "c": {"a": NONE}}, {}, "not a list"),
    ({"k": "dict", "items": [[{"k": "list", "c": []}, NONE]]}, {}, "bad key"),
    ({"k": "dict", "items": [[{"k": "int", "v": "0x1"}, NONE], [{"k": "bool", "v": True}, NONE]]},
     {}, "duplicate dict key"),
    ({"k": "ddict", "items": [], "factory": "os.system"}, {}, "factory"),
    ({"k": "ddict", "items": [], "factory": "eval"}, {}, "factory"),
    ({"k": "namedtuple", "type": ["os", "system"], "fields": ["__class__"], "c": [NONE]}, {},
     "field names"),
    ({"k": "namedtuple", "type": ["os;rm -rf", "x"], "fields": ["a"], "c": [NONE]}, {},
     "not a valid type name"),
    ({"k": "namedtuple", "type": [__name__, "Point"], "fields": ["x", "y"], "c": [NONE]}, {},
     "wrong number"),
    (array_node("b", A), {"a": A}, "tensor 'b', which is not in the file"),
    ({"k": "list", "c": [array_node("a", A), array_node("a", A)]},
     {"a": A}, "referenced twice"),
    (NONE, {"a": A}, r"tensors \['a'\] are in the file but not in the tree"),
    ({**array_node("a", A), "dtype": "float32"}, {"a": A}, "float64.4. in the file"),
    ({**array_node("a", A), "shape": [2, 2]}, {"a": A}, "in the file but"),
    ({**array_node("a", A), "crc32": 1}, {"a": A}, "checksum"),
    ({**array_node("a", A), "k": "scalar"}, {"a": A}, "0-d tensor"),
    (array_node("a", A, view="object"), {"a": A}, "bad view"),
    ("[" * 100_000 + "]" * 100_000, {}, "nested too deeply"),
    ('{"k": "none", "k": "none"}', {}, "not valid JSON.*duplicate"),
    ('{"k": "float", "v": NaN}', {}, "not valid JSON"),
    ("{not json", {}, "not valid JSON"),
])
def test_hand_crafted_tree_descriptions_are_rejected(tmp_path, node, tensors, msg):
    write_checkpoint(tmp_path / "c", node, tensors)
    with pytest.raises(dio.CheckpointError, match=msg) as err:
        dio.load(tmp_path / "c")
    assert isinstance(err.value, (ValueError, DiffprogError)) and str(tmp_path / "c") in str(err.value)


json_st = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
    | st.sampled_from(["none", "list", "dict", "ddict", "namedtuple", "array", "k", "c", "t"]),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
        st.sampled_from(["k", "v", "c", "items", "t", "type", "fields", "factory", "static"]),
        kids, max_size=4),
    max_leaves=10,
)


def _mutate(node, data):
    """Replace one randomly chosen sub-value of a JSON document by random JSON."""
    if isinstance(node, (list, dict)) and node and data.draw(st.booleans()):
        keys = list(range(len(node))) if isinstance(node, list) else sorted(node)
        k = data.draw(st.sampled_from(keys))
        node[k] = _mutate(node[k], data)
        return node
    return data.draw(json_st)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_tree_descriptions_raise_checkpoint_error_or_load(tmp_path, data):
    a = np.arange(3.0)
    good = {"k": "dict", "items": [
        [{"k": "str", "v": "p"}, {"k": "namedtuple", "type": [__name__, "Point"],
                                  "fields": ["x", "y"], "c": [array_node("a", a), NONE]}],
        [{"k": "int", "v": "0x2"}, {"k": "ddict", "factory": "list", "items": []}],
    ]}
    write_checkpoint(tmp_path / "c", _mutate(json.loads(json.dumps(good)), data), {"a": a})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dio.load(tmp_path / "c")
        except dio.CheckpointError:
            pass


def test_tree_checksum_and_version_are_checked(tmp_path):
    write_checkpoint(tmp_path / "c", NONE, **{"diffprog.crc32": "0"})
    with pytest.raises(dio.CheckpointError, match="checksum"):
        dio.load(tmp_path / "c")
    write_checkpoint(tmp_path / "c", NONE, **{"diffprog.version": "2"})
    with pytest.raises(dio.CheckpointError, match="version '2'"):
        dio.load(tmp_path / "c")


# ---------------------------------------------------------------- size / speed


def test_large_array_roundtrip_is_fast(tmp_path):
    big = np.random.default_rng(0).standard_normal(50_000_000 // 8)  # 50 MB
    start = time.perf_counter()
    dio.save(tmp_path / "big", {"big": big, "step": 1})
    out = dio.load(tmp_path / "big")
    elapsed = time.perf_counter() - start
    assert out["big"].tobytes() == big.tobytes() and elapsed < 5.0, elapsed


# ---------------------------------------------------------------- GPU


@pytest.mark.gpu
def test_cupy_arrays_are_saved_from_the_host(tmp_path):
    cupy = require_cupy()
    x = cupy.arange(6, dtype=cupy.float32).reshape(2, 3)
    dio.save(tmp_path / "g", {"x": x, "zero_d": cupy.asarray(2.5)})
    out = dio.load(tmp_path / "g")
    assert type(out["x"]) is np.ndarray and out["x"].tobytes() == x.get().tobytes()
    assert out["zero_d"].shape == () and out["zero_d"] == 2.5
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        on_gpu = dio.load(tmp_path / "g", device="gpu")
    assert isinstance(on_gpu["x"], cupy.ndarray) and (on_gpu["x"] == x).all()


# ---------------------------------------------------------------- inside dp.jit, big-endian like


def test_load_inside_jit_reads_the_file_at_every_call(tmp_path):
    # A replay used to return the array the recording read: the old checkpoint, silently.
    path = tmp_path / "c"

    @dp.jit
    def scaled(x):
        return (dio.load(path)["w"] * x).sum()

    dio.save(path, {"w": np.ones(3)})
    with pytest.warns(RuntimeWarning, match="called dp.(load|save) while recording"):
        assert scaled(np.ones(3)) == 3.0
    dio.save(path, {"w": np.full(3, 2.0)})
    assert scaled(np.ones(3)) == 6.0
    assert scaled.stats["replays"] == 0 and scaled.stats["eager_calls"] == 1
    assert scaled.last_eager_reason == "it calls dp.load"
    with pytest.raises(ValueError, match="cannot be recorded: it calls dp.load"):
        scaled.lower(np.ones(3))


def test_save_inside_jit_writes_at_every_call(tmp_path):
    # A replay used to skip the save: the file a later call should have written was missing.
    path = tmp_path / "c"

    # A value the recording staged used to be refused ("a StagingTracer"): its value is saved.
    path = tmp_path / "c"

    @dp.jit
    def step(x):
        dio.save(path, {"done": True, "y": x * 2.0})
        return x * 2.0

    with pytest.warns(RuntimeWarning, match="called dp.(load|save) while recording"):
        step(np.ones(2))
    np.testing.assert_array_equal(dio.load(path)["y"], [2.0, 2.0])
    path.unlink()
    np.testing.assert_array_equal(step(np.full(2, 3.0)), [6.0, 6.0])
    out = dio.load(path)
    assert out["done"] is True
    np.testing.assert_array_equal(out["y"], [6.0, 6.0])


def test_big_endian_like_array_loads_in_its_byte_order(tmp_path):
    # like= used to refuse a big-endian array: "the file has a int32 array, like has >i4".
    like = {"a": np.arange(4, dtype=">i4"), "z": np.array(2.5, ">f8")}
    dio.save(tmp_path / "c", like)
    out = dio.load(tmp_path / "c", like=like)
    for k in like:
        assert out[k].dtype == like[k].dtype and out[k].shape == like[k].shape
        np.testing.assert_array_equal(out[k], like[k])
    with pytest.raises(dp.StructureError, match=r"\['a'\].*like has a >f4 array"):
        dio.load(tmp_path / "c", like={**like, "a": np.zeros(4, ">f4")})
