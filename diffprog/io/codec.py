"""The checkpoint format: a pytree as safetensors tensors plus a JSON description.

Owns `encode(tree)` (the tensors and the header metadata for a tree) and `decode(path,
handle)` (the tree back from an open safetensors file). Array leaves (NumPy; CuPy is copied to
the host) are tensors named by their key path. The structure and all other leaves are JSON in
the header's ``__metadata__`` (``"diffprog.tree"``): dict (key order and key types),
OrderedDict, defaultdict (builtin factory), list, tuple, namedtuple, registered dataclasses;
``None``, ``bool``, ``int`` (any size), ``float``/``complex`` (exact bits), ``str``; NumPy
scalars are 0-d tensors. Tensor dtypes, shapes and CRC-32s and the JSON's CRC-32 are checked
on load. No pickle: decoding runs no code from the file. Types are found by module and qualname
among *already imported* modules, through ``__dict__``s only (nothing is imported); a namedtuple
not found, or whose fields changed, is rebuilt as a fresh namedtuple type with a warning.

Layer L6: imports diffprog.tree, .errors, .backend, numpy and the stdlib.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import keyword
import re
import struct
import sys
import types
import warnings
import zlib
from typing import Any

import numpy as np

from .. import tree as _tree
from ..backend import namespace_of
from ..errors import CheckpointError, UnsupportedLeafError

__all__ = ["FORMAT_VERSION", "decode", "encode"]

FORMAT_VERSION = "1"
_TREE, _VERSION, _CRC = "diffprog.tree", "diffprog.version", "diffprog.crc32"
_NATIVE = frozenset(("bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
                     "uint64", "float16", "float32", "float64", "complex64"))  # + complex128
_FACTORIES = {t.__name__: t for t in (list, dict, set, frozenset, tuple, int, float, complex,
                                      str, bytes, bool)}
_MAPPINGS = {dict: "dict", collections.OrderedDict: "odict", collections.defaultdict: "ddict"}
_INT_RE, _BITS_RE = re.compile(r"-?0x[0-9a-f]+"), re.compile(r"[0-9a-f]{16}")




def encode(tree: Any, where: str) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and the header metadata that store ``tree`` (``where`` names the call in
    errors)."""
    writer = _Writer()
    try:
        node = writer.encode(tree, "")
    except RecursionError:
        raise UnsupportedLeafError(f"{where}: the tree is nested too deeply "
                                   f"(or contains itself)") from None
    text = json.dumps(node, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return writer.tensors, {_VERSION: FORMAT_VERSION, _TREE: text,
                            _CRC: str(zlib.crc32(text.encode()))}


def _bits(x: float) -> str:
    return struct.pack(">d", x).hex()


def _unbits(s: str) -> float:
    return struct.unpack(">d", bytes.fromhex(s))[0]


def _crc(a: np.ndarray) -> int:
    return zlib.crc32(a.reshape(-1).view(np.uint8))


def _short(x: Any) -> str:
    try:
        r = repr(x)
    except Exception:  # noqa: BLE001 - repr of arbitrary objects may fail
        r = f"<{type(x).__name__}>"
    return r if len(r) <= 60 else r[:57] + "..."


def _is_namedtuple_class(cls: Any) -> bool:
    fields = getattr(cls, "_fields", None) if isinstance(cls, type) else None
    return (isinstance(fields, tuple) and issubclass(cls, tuple)  # type: ignore[arg-type]
            and all(type(f) is str for f in fields))


def _is_node(x: Any) -> bool:
    """Whether dp.tree flattens ``x`` one level (a container) rather than as a leaf."""
    pairs, _ = _tree.flatten_with_path(x, is_leaf=lambda y: y is not x)
    return not (len(pairs) == 1 and pairs[0][1] is x and not pairs[0][0])


_SIMPLE = {bool: lambda x: x, int: hex, float: _bits, str: lambda x: x,
           complex: lambda x: [_bits(x.real), _bits(x.imag)]}


class _Writer:
    def __init__(self) -> None:
        self.tensors: dict[str, np.ndarray] = {}

    def encode(self, x: Any, path: str) -> dict[str, Any]:
        t = type(x)
        if x is None:
            return {"k": "none"}
        if t in _SIMPLE:
            return {"k": t.__name__, "v": _SIMPLE[t](x)}
        if t is list or t is tuple:
            return {"k": t.__name__, "c": [self.encode(v, f"{path}[{i}]") for i, v in enumerate(x)]}
        if t in _MAPPINGS:
            return self.mapping(x, path)
        if _is_namedtuple_class(t):
            return {"k": "namedtuple", "type": [t.__module__, t.__qualname__],
                    "fields": list(t._fields),
                    "c": [self.encode(v, f"{path}.{f}") for f, v in zip(t._fields, x)]}
        if t is np.ndarray or t is np.memmap or isinstance(x, np.generic):
            return self.array(np.asarray(x), path,
                              "scalar" if isinstance(x, np.generic) else "array")
        if namespace_of((x,)) is not np and callable(getattr(x, "get", None)):
            return self.array(x.get(), path, "array")  # CuPy: copied to the host
        if dataclasses.is_dataclass(x) and not isinstance(x, type):
            return self.dataclass(x, path)
        return self.unsupported(x, path)

    def mapping(self, x: dict, path: str) -> dict[str, Any]:
        items = []
        for k, v in x.items():
            if not (k is None or type(k) in (bool, int, float, str)):
                raise UnsupportedLeafError(
                    f"save: dict at {path or 'the root'} has key {k!r} of type "
                    f"{type(k).__name__}; keys must be str, int, float, bool or None")
            items.append([self.encode(k, path), self.encode(v, f"{path}[{k!r}]")])
        node: dict[str, Any] = {"k": _MAPPINGS[type(x)], "items": items}
        if node["k"] == "ddict":
            f = x.default_factory  # type: ignore[attr-defined]
            if f is not None and _FACTORIES.get(getattr(f, "__name__", None)) is not f:
                raise UnsupportedLeafError(
                    f"save: defaultdict at {path or 'the root'} has default_factory {f!r}; "
                    f"only None or a builtin type ({', '.join(_FACTORIES)}) can be saved")
            node["factory"] = None if f is None else f.__name__
        return node

    def array(self, a: np.ndarray, path: str, kind: str) -> dict[str, Any]:
        dt, extra = a.dtype, {}
        if dt.name == "complex128" and dt.fields is None:
            shape = a.shape
            a = np.asarray(a, dtype="<c16", order="C").reshape(-1).view("<f8").reshape(shape + (2,))
            extra = {"view": "complex128"}
        elif dt.name in _NATIVE and dt.fields is None:
            a = np.asarray(a, dtype=dt.newbyteorder("<"), order="C")
        else:
            raise UnsupportedLeafError(
                f"save: {'array' if kind == 'array' else 'NumPy scalar'} at {path or 'the root'}"
                f" has dtype {dt}, which cannot be stored; use one of "
                f"{', '.join(sorted(_NATIVE))}, complex128")
        name = base = path.encode("utf-8", "backslashreplace").decode("utf-8")
        n = 1
        while name in self.tensors:
            n += 1
            name = f"{base}#{n}"
        self.tensors[name] = a
        return {"k": kind, "t": name, "dtype": a.dtype.name, "shape": list(a.shape),
                "crc32": _crc(a), **extra}

    def dataclass(self, x: Any, path: str) -> dict[str, Any]:
        cls, fields = type(x), dataclasses.fields(x)
        kids = [f.name for f in fields if not f.metadata.get("static", False)]
        if not _is_node(x):
            raise UnsupportedLeafError(
                f"save: leaf at {path or 'the root'} is a {cls.__qualname__} dataclass that is "
                f"not a pytree node; decorate it with dp.tree.register_dataclass")
        pairs, _ = _tree.flatten_with_path(x, is_leaf=lambda y: y is not x)
        if len(pairs) != len(kids) or any(v is not getattr(x, n) for (_, v), n in zip(pairs, kids)):
            return self.unsupported(x, path)  # registered with register_node, not as dataclass

        def encoded(static: bool) -> list[list[Any]]:
            return [[f.name, self.encode(getattr(x, f.name), f"{path}.{f.name}")]
                    for f in fields if f.metadata.get("static", False) == static]
        return {"k": "dataclass", "type": [cls.__module__, cls.__qualname__],
                "c": encoded(False), "static": encoded(True)}

    def unsupported(self, x: Any, path: str) -> dict[str, Any]:
        where = path or "the root"
        if _is_node(x):
            raise UnsupportedLeafError(
                f"save: node at {where} is a custom pytree node ({type(x).__qualname__}); only "
                f"dict, OrderedDict, defaultdict, list, tuple, namedtuple and registered "
                f"dataclasses can be saved; convert it to one of those first")
        hint = ("; a traced value: save outside the transformed function"
                if type(x).__module__.startswith("diffprog.") else "")
        raise UnsupportedLeafError(
            f"save: leaf at {where} is a {type(x).__module__}.{type(x).__qualname__} "
            f"({_short(x)}); only arrays, NumPy scalars, None, bool, int, float, complex and "
            f"str leaves can be saved; convert it or leave it out of the tree{hint}")


def decode(path: str, handle: Any, warn: bool = True) -> Any:
    """The tree stored in ``handle`` (an open ``safetensors.safe_open`` of ``path``); a
    damaged or foreign file raises CheckpointError. ``warn=False``: a namedtuple type that is
    not imported is rebuilt without a warning (the caller supplies the type)."""
    meta = handle.metadata() or {}
    if _TREE not in meta:
        raise CheckpointError(f"{path}: a safetensors file but not a diffprog checkpoint (no "
                              f"{_TREE!r} metadata); read it with safetensors directly")
    if meta.get(_VERSION) != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {meta.get(_VERSION)!r}; "
                              f"this diffprog reads version {FORMAT_VERSION!r}")
    text = meta[_TREE]
    if meta.get(_CRC) != str(zlib.crc32(text.encode("utf-8", "surrogatepass"))):
        raise CheckpointError(f"{path}: the tree description is corrupted (checksum mismatch)")
    reader = _Reader(path, handle, warn)
    try:
        result = reader.decode(json.loads(text, object_pairs_hook=_no_duplicates,
                                          parse_constant=_no_constant), "")
    except RecursionError:
        raise CheckpointError(f"{path}: the tree description is nested too deeply") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: the tree description is not valid JSON ({e})") from None
    unused = sorted(set(handle.keys()) - reader.used)
    if unused:
        raise CheckpointError(f"{path}: tensors {unused[:5]} are in the file but not in "
                              f"the tree description (corrupted or hand-edited file)")
    return result


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    if len(out := dict(pairs)) != len(pairs):
        raise json.JSONDecodeError("duplicate key in a JSON object", "", 0)
    return out


def _no_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"non-standard constant {name}", "", 0)


def _is_bits(v: Any) -> bool:
    return type(v) is str and _BITS_RE.fullmatch(v) is not None


_LEAVES = {  # kind -> (is the JSON value well formed?, build the leaf)
    "none": (lambda v: v is None, lambda v: None),
    "bool": (lambda v: type(v) is bool, lambda v: v),
    "int": (lambda v: type(v) is str and _INT_RE.fullmatch(v) is not None, lambda v: int(v, 16)),
    "float": (_is_bits, _unbits),
    "complex": (lambda v: type(v) is list and len(v) == 2 and all(map(_is_bits, v)),
                lambda v: complex(_unbits(v[0]), _unbits(v[1]))),
    "str": (lambda v: type(v) is str, lambda v: v),
}
_ARRAY_KEYS = {"k", "t", "dtype", "shape", "crc32"}
_NODE_KEYS = {**{k: {"k", "v"} for k in _LEAVES}, "none": {"k"}, "list": {"k", "c"},
              "tuple": {"k", "c"}, "dict": {"k", "items"}, "odict": {"k", "items"},
              "ddict": {"k", "items", "factory"}, "namedtuple": {"k", "type", "fields", "c"},
              "dataclass": {"k", "type", "c", "static"}, "array": _ARRAY_KEYS,
              "scalar": _ARRAY_KEYS}
_KEY_KINDS = ("none", "bool", "int", "float", "str")


class _Reader:
    def __init__(self, path: str, handle: Any, warn: bool) -> None:
        self.path, self.f, self.names, self.used = path, handle, set(handle.keys()), set()
        self.warn = warn

    def want(self, ok: Any, where: str, what: str) -> None:
        if not ok:
            raise CheckpointError(f"{self.path}: malformed tree description at "
                                  f"{where or 'the root'}: {what}")

    def decode(self, node: Any, path: str) -> Any:
        kind = node.get("k") if type(node) is dict else None
        self.want(type(kind) is str and kind in _NODE_KEYS, path, f"expected a node object, got {_short(node)}")
        need = _NODE_KEYS[kind]
        self.want(need <= set(node) <= need | ({"view"} if need is _ARRAY_KEYS else set()),
                  path, f"a {kind!r} node must have the fields {sorted(need)}")
        if kind in _LEAVES:
            valid, make = _LEAVES[kind]
            self.want(valid(node.get("v")), path, f"bad {kind} value {_short(node.get('v'))}")
            return make(node.get("v"))
        if kind in ("list", "tuple"):
            kids = [self.decode(c, f"{path}[{i}]") for i, c in enumerate(self.seq(node["c"], path))]
            return kids if kind == "list" else tuple(kids)
        if kind in ("namedtuple", "dataclass"):
            return getattr(self, kind)(node, path)
        return (self.array if need is _ARRAY_KEYS else self.mapping)(node, kind, path)

    def seq(self, kids: Any, path: str, pairs: bool = False) -> list[Any]:
        self.want(type(kids) is list, path, "children are not a list")
        self.want(not pairs or all(type(p) is list and len(p) == 2 for p in kids), path,
                  "expected a list of [key, value] pairs")
        return kids

    def mapping(self, node: dict[str, Any], kind: str, path: str) -> dict[Any, Any]:
        out: dict[Any, Any] = {} if kind == "dict" else collections.OrderedDict()
        if kind == "ddict":
            fac = node["factory"]
            self.want(fac is None or (type(fac) is str and fac in _FACTORIES), path,
                      f"defaultdict factory {_short(fac)} is not one of {sorted(_FACTORIES)}")
            out = collections.defaultdict(None if fac is None else _FACTORIES[fac])
        for k, v in self.seq(node["items"], path, pairs=True):
            self.want(type(k) is dict and k.get("k") in _KEY_KINDS, path, f"bad key {_short(k)}")
            key = self.decode(k, path)
            self.want(key not in out, path, f"duplicate dict key {key!r}")
            out[key] = self.decode(v, f"{path}[{key!r}]")
        return out

    def find_type(self, node: dict[str, Any], path: str) -> tuple[str, Any]:
        t = node["type"]
        self.want(type(t) is list and len(t) == 2 and all(type(s) is str for s in t), path,
                  "type must be [module, qualname]")
        module, qualname = t
        self.want(all(p.isidentifier() for p in module.split(".")) and all(
            p.isidentifier() or p == "<locals>" for p in qualname.split(".")), path,
            f"{module}:{qualname} is not a valid type name")
        obj = sys.modules.get(module)  # never import: importing runs the module's code
        for part in qualname.split("."):  # __dict__ lookups only: no __getattr__, no properties
            obj = vars(obj).get(part) if isinstance(obj, (types.ModuleType, type)) else None
        return f"{module}.{qualname}", obj

    def namedtuple(self, node: dict[str, Any], path: str) -> tuple:
        name, cls = self.find_type(node, path)
        fields = node["fields"]
        self.want(type(fields) is list and all(
            type(n) is str and n.isidentifier() and not keyword.iskeyword(n)
            and not n.startswith("_") for n in fields) and len(set(fields)) == len(fields),
            path, "bad namedtuple field names")
        kids = self.seq(node["c"], path)
        self.want(len(kids) == len(fields), path, "namedtuple has the wrong number of values")
        values = [self.decode(c, f"{path}.{n}") for n, c in zip(fields, kids)]
        self.want(cls is None or _is_namedtuple_class(cls), path,
                  f"{name} is {_short(cls)}, not a namedtuple class")
        if (cls is None or list(cls._fields) != fields) and self.warn:
            why = "is not imported" if cls is None else f"now has fields {cls._fields}"
            warnings.warn(f"{self.path}: namedtuple type {name} {why}; rebuilt {path or 'the root'}"
                          f" as a new namedtuple type with fields {fields} (import the module "
                          f"that defines the type before loading)", stacklevel=5)
        if cls is None or list(cls._fields) != fields:
            cls = collections.namedtuple(re.sub(r"\W", "_", name.rpartition(".")[2]), fields)
        return cls(*values)

    def dataclass(self, node: dict[str, Any], path: str) -> Any:
        name, cls = self.find_type(node, path)
        kids, static = self.seq(node["c"], path, True), self.seq(node["static"], path, True)
        self.want(isinstance(cls, type) and dataclasses.is_dataclass(cls), path,
                  f"dataclass {name} is " + ("not imported (import the module that defines it "
                                             "before loading)" if cls is None else
                                             f"{_short(cls)}, not a dataclass"))
        fields = dataclasses.fields(cls)
        has = ([n for n, _ in kids], [n for n, _ in static])
        want = tuple([f.name for f in fields if f.metadata.get("static", False) == s]
                     for s in (False, True))
        self.want(has == want, path, f"{name} now has fields {want[0]} and static fields "
                  f"{want[1]}; the file has {has[0]} and {has[1]}")
        obj = cls.__new__(cls)
        for field, sub in static + kids:
            object.__setattr__(obj, field, self.decode(sub, f"{path}.{field}"))
        self.want(_is_node(obj), path, f"{name} is not registered with dp.tree.register_dataclass")
        return obj

    def array(self, node: dict[str, Any], kind: str, path: str) -> Any:
        name, dtype, shape = node["t"], node["dtype"], node["shape"]
        self.want(type(name) is str and name in self.names, path,
                  f"refers to tensor {_short(name)}, which is not in the file")
        self.want(name not in self.used, path, f"tensor {name!r} is referenced twice")
        self.used.add(name)
        try:
            a = self.f.get_tensor(name)
        except Exception as e:  # noqa: BLE001 - unsupported dtype strings and the like
            raise CheckpointError(f"{self.path}: cannot read tensor {name!r} at "
                                  f"{path or 'the root'} ({e})") from None
        self.want(a.dtype.name == dtype and list(a.shape) == shape, path,
                  f"tensor {name!r} is {a.dtype.name}{list(a.shape)} in the file but "
                  f"{_short(dtype)}{_short(shape)} in the tree description")
        self.want(_crc(a) == node["crc32"], path,
                  f"the data of tensor {name!r} is corrupted (checksum mismatch)")
        if "view" in node:
            self.want(node["view"] == "complex128" and dtype == "float64" and a.ndim >= 1
                      and a.shape[-1] == 2, path, f"bad view {_short(node['view'])}")
            a = a.view(np.complex128).reshape(a.shape[:-1])
        if kind == "scalar":
            self.want(a.ndim == 0, path, "a NumPy scalar must be a 0-d tensor")
            return a[()]
        return a
