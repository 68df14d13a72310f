"""Random differentiable programs for the fuzz tests (tests/test_fuzz.py): a Hypothesis
strategy, `programs()`, drawing a pytree of parameters and a straight-line-with-control-flow
Python function over it, written as source text so that a failure prints a runnable script.

How a program is built: the parameters are drawn first (containers, leaf kinds and shapes
from Hypothesis, values from a NumPy generator seeded by Hypothesis, so values never shrink
onto ties or kinks). Each step then draws an op and its operands among the values computed
so far, and runs it at once on the concrete values: an op whose result would sit near a kink
or a singularity (a tie in max, |x| small in abs, a branch condition near its threshold, an
ill-conditioned matrix, ...) or whose result is large is replaced by a smooth op, so the
derivatives checked are those of a function smooth around the parameters. The generated
program is the same code whether its inputs are arrays or tracers.
"""

from __future__ import annotations

import collections
import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from hypothesis import strategies as st

import diffprog as dp
import diffprog.numpy as dnp

Pair = collections.namedtuple("Pair", ["a", "b"])

# Helpers every program may call; part of the printed script, so it stays runnable.
HEADER = '''\
Pair = collections.namedtuple("Pair", ["a", "b"])


@dp.custom_jvp
def logcosh(x):
    return dnp.logaddexp(x, -x) - math.log(2.0)


@logcosh.defjvp
def _logcosh_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return logcosh(x), dnp.tanh(x) * t


def nest(a, n):
    return a if n == 0 else nest(dnp.sin(a) + 0.5 * a, n - 1)


smooth_block = dp.checkpoint(lambda a: dnp.sin(a) * a + dnp.tanh(a))
'''

SHAPES = [(), (2,), (3,), (1,), (2, 3), (3, 2), (1, 3), (2, 1), (3, 3), (2, 2), (2, 1, 3), (2, 3, 2)]
KEYS = ["w", "b", "z", "alpha", "layers", "a", "scale", "mid"]
MAX_SIZE, MAX_ABS = 36, 30.0


@dataclass
class Program:
    """A drawn program: `fn(params)` and its source `body`."""

    params: Any
    body: str
    fn: Any
    n_ops: int
    ops: list[str]

    def script(self) -> str:
        """A standalone script reproducing the program and its check."""
        return (
            "import collections, math\nimport numpy as np\nimport diffprog as dp\n"
            "import diffprog.numpy as dnp\nfrom diffprog.testing import check_grads\n\n"
            f"{HEADER}\n\n{self.body}\n\nparams = {literal(self.params)}\n"
            "check_grads(f, (params,), order=2)\n"
        )

    def __repr__(self) -> str:
        return f"Program(ops={self.ops})\n{self.script()}"


def literal(x: Any) -> str:
    """Python source that rebuilds `x` exactly (arrays via tolist, so floats round-trip)."""
    if isinstance(x, Pair):
        return f"Pair(a={literal(x.a)}, b={literal(x.b)})"
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k!r}: {literal(v)}" for k, v in x.items()) + "}"
    if isinstance(x, list):
        return "[" + ", ".join(literal(v) for v in x) + "]"
    if isinstance(x, tuple):
        return "(" + "".join(f"{literal(v)}, " for v in x) + ")"
    if isinstance(x, np.ndarray):
        return f"np.array({x.tolist()!r}, dtype=np.{x.dtype.name})"
    if isinstance(x, np.generic):
        return f"np.{x.dtype.name}({x.item()!r})"
    return repr(x)


# --- parameters ------------------------------------------------------------------------------
def _params(draw: Any, rng: np.random.Generator, dtypes: tuple, depth: int, floats: bool) -> Any:
    kind = draw(st.sampled_from(["leaf", "leaf", "dict", "list", "tuple", "pair"])) if depth else "leaf"
    if kind == "leaf":
        kinds = ["array", "array", "float", "scalar", "int", "str"]
        leaf = draw(st.sampled_from(kinds if floats else kinds[:2] + kinds[3:]))
        dtype = np.dtype(draw(st.sampled_from(dtypes)))
        if leaf == "array":
            return rng.normal(size=draw(st.sampled_from(SHAPES))).astype(dtype)
        if leaf == "scalar":
            return dtype.type(rng.normal())
        if leaf == "float":
            return float(rng.normal())
        return int(rng.integers(0, 4)) if leaf == "int" else str(rng.choice(["a", "b"]))
    if kind == "pair":
        return Pair(*(_params(draw, rng, dtypes, depth - 1, floats) for _ in range(2)))
    n = draw(st.integers(1, 3))
    kids = [_params(draw, rng, dtypes, depth - 1, floats) for _ in range(n)]
    if kind == "dict":
        keys = draw(st.lists(st.sampled_from(KEYS), min_size=n, max_size=n, unique=True))
        return dict(zip(keys, kids))
    return kids if kind == "list" else tuple(kids)


def _paths(tree: Any, prefix: str = "p") -> list[tuple[str, Any]]:
    """(source expression, leaf) for every leaf, in dp.tree order."""
    if isinstance(tree, Pair):
        return _paths(tree.a, prefix + ".a") + _paths(tree.b, prefix + ".b")
    if isinstance(tree, dict):
        return [x for k in sorted(tree) for x in _paths(tree[k], f"{prefix}[{k!r}]")]
    if isinstance(tree, (list, tuple)):
        return [x for i, v in enumerate(tree) for x in _paths(v, f"{prefix}[{i}]")]
    return [(prefix, tree)]


def _is_float(x: Any) -> bool:
    return type(x) is float or (isinstance(x, (np.ndarray, np.generic)) and x.dtype.kind == "f")


# --- the builder: emits source lines and runs them on concrete values ---------------------
class Builder:
    def __init__(self, rng: np.random.Generator, params: Any, margin: float) -> None:
        self.rng, self.margin = rng, margin
        self.allow_casts = False
        self.ns: dict[str, Any] = {"np": np, "dp": dp, "dnp": dnp, "math": math,
                                   "collections": collections, "p": params}  # fmt: skip
        exec(HEADER, self.ns)  # noqa: S102  (programs are source text by design)
        self.lines: list[str] = []
        self.env: list[str] = []
        self.ops: list[str] = []
        self.paths = _paths(params)
        self.target = "v0"

    # values
    def val(self, name_or_expr: str) -> np.ndarray:
        return np.asarray(eval(name_or_expr, self.ns), dtype=np.float64)

    def shape(self, name: str) -> tuple[int, ...]:
        return np.shape(self.ns[name])

    def pick(self, pred: Any = None, among: list[str] | None = None) -> str | None:
        ok = [n for n in (self.env if among is None else among) if pred is None or pred(self.shape(n))]
        return self.choice(ok) if ok else None

    def pick_pair(self, pred: Any) -> tuple[str, str] | None:
        pairs = [(a, b) for a in self.env for b in self.env if pred(self.shape(a), self.shape(b))]
        return self.choice(pairs) if pairs else None

    def is_array(self, name: str) -> bool:  # dnp's products want arrays, not Python floats
        return type(self.ns[name]) is not float

    # random choices (a NumPy generator: uniform, where Hypothesis would favour the first)
    def choice(self, seq: Any) -> Any:
        seq = list(seq)
        return seq[int(self.rng.integers(len(seq)))]

    def int(self, lo: int, hi: int) -> int:
        return int(self.rng.integers(lo, hi + 1))

    def flip(self) -> bool:
        return bool(self.rng.integers(2))

    def permutation(self, seq: Any) -> list:
        return [list(seq)[i] for i in self.rng.permutation(len(list(seq)))]

    def lit(self, lo: float, hi: float) -> float:
        return round(float(self.rng.uniform(lo, hi)), 2)

    def far(self, values: Any, point: float = 0.0) -> bool:
        """No element of `values` within the margin of `point` (kinks stay out of reach)."""
        return bool(np.all(np.abs(np.asarray(values, dtype=np.float64) - point) > self.margin))

    # committing
    def try_emit(self, name: str, code: str | list[str]) -> bool:
        target = f"v{len(self.env)}"
        lines = [f"{target} = {code}"] if isinstance(code, str) else [
            line.replace("OUT", target) for line in code]  # fmt: skip
        try:
            exec("\n".join(lines), self.ns)  # noqa: S102  (programs are source text by design)
        except Exception as e:  # a generator bug, not a diffprog one: show the op
            raise AssertionError(f"fuzz op {name} emitted invalid code {lines}: {e!r}") from e
        value = self.ns[target]
        arr = np.asarray(value)
        if arr.dtype.kind != "f" or arr.ndim > 3 or arr.size > MAX_SIZE or arr.size == 0:
            return False
        if not np.all(np.isfinite(arr)) or np.max(np.abs(arr)) > MAX_ABS:
            return False
        self.lines += lines
        self.env.append(target)
        self.ops.append(name)
        return True


def _axis(b: Builder, ndim: int, single: bool = False) -> Any:
    """An axis argument for an array of `ndim` dims: None, an int (maybe negative) or a tuple."""
    if single:
        return b.int(-ndim, ndim - 1)
    kind = b.choice(["none", "int", "tuple"])
    if kind == "none":
        return None
    if kind == "int":
        return b.int(-ndim, ndim - 1)
    return tuple(int(a) for a in b.rng.permutation(ndim)[: b.int(1, ndim)])


def _gap_ok(b: Builder, x: np.ndarray, axis: Any, which: str = "both") -> bool:
    """The extremum along `axis` is unique by the margin (max/min/sort stay put)."""
    axes = tuple(range(x.ndim)) if axis is None else (axis,) if isinstance(axis, int) else axis
    axes = tuple(a % max(x.ndim, 1) for a in axes)
    moved = np.moveaxis(x, axes, tuple(range(-len(axes), 0))) if x.ndim else x
    flat = np.sort(np.reshape(moved, moved.shape[: moved.ndim - len(axes)] + (-1,)), axis=-1)
    if flat.shape[-1] < 2:
        return True
    d = np.diff(flat, axis=-1)
    if which == "all":
        return bool(np.all(d > b.margin))
    return bool(np.all(d[..., -1] > b.margin) and np.all(d[..., 0] > b.margin))


def _bcast(a: tuple, c: tuple) -> bool:
    try:
        s = np.broadcast_shapes(a, c)
    except ValueError:
        return False
    return len(s) <= 3 and math.prod(s) <= MAX_SIZE


# --- ops: each returns code (an expression, or lines assigning OUT) or None ---------------
SMOOTH = ["dnp.sin({})", "dnp.tanh({})", "{} * 2.0", "dnp.exp(dnp.tanh({}))", "{} * {}",
          "dnp.sigmoid({})", "dnp.cos({}) + {}"]  # fmt: skip


def _smooth(b: Builder, x: str) -> str:
    return b.choice(SMOOTH).format(x, x)


def _unary(template: str, guard: Any = None, fallback: str | None = None) -> Any:
    def op(b: Builder) -> Any:
        x = b.pick()
        if guard is None or guard(b, b.val(x)):
            return template.format(x=x)
        return None if fallback is None else fallback.format(x=x)

    return op


def _binary(template: str, guard: Any = None, fallback: str | None = None) -> Any:
    def op(b: Builder) -> Any:
        x = b.pick()
        y = b.pick(lambda s: _bcast(s, b.shape(x)))
        if guard is None or guard(b, b.val(x), b.val(y)):
            return template.format(x=x, y=y)
        return None if fallback is None else fallback.format(x=x, y=y)

    return op


def _clip(b: Builder) -> Any:
    x = b.pick()
    lo = b.lit(-1.5, 0.5)
    hi = round(lo + b.lit(0.2, 2.0), 2)
    ok = b.far(b.val(x), lo) and b.far(b.val(x), hi)
    return f"dnp.clip({x}, {lo}, {hi})" if ok else None


def _where_const(b: Builder) -> Any:
    x = b.pick()
    y = b.pick(lambda s: _bcast(s, b.shape(x)))
    shape = np.broadcast_shapes(b.shape(x), b.shape(y))
    mask = b.rng.integers(2, size=shape).astype(bool)
    return f"dnp.where(np.array({mask.tolist()!r}), {x}, {y})"


def _where_data(b: Builder) -> Any:
    c = b.pick()
    x = b.pick(lambda s: _bcast(s, b.shape(c)))
    y = b.pick(lambda s: _bcast(s, np.broadcast_shapes(b.shape(c), b.shape(x))))
    t = b.lit(-1.0, 1.0)
    return f"dnp.where({c} > {t}, {x}, {y})" if b.far(b.val(c), t) else None


def _reduction(fn: str, guard: Any = None, method: bool = False) -> Any:
    def op(b: Builder) -> Any:
        x = b.pick(lambda s: len(s) >= 1)
        if x is None:
            return None
        axis, keep = _axis(b, len(b.shape(x))), b.flip()
        if guard is not None and not guard(b, b.val(x), axis):
            return None
        if method:
            return f"{x}.{fn}(axis={axis!r}, keepdims={keep})"
        return f"dnp.{fn}({x}, axis={axis!r}, keepdims={keep})"

    return op


def _std(b: Builder, x: np.ndarray, axis: Any) -> bool:
    return bool(np.all(np.var(x, axis=axis) > 0.05))


def _cumulative(fn: str) -> Any:
    def op(b: Builder) -> Any:
        x = b.pick(lambda s: len(s) >= 1)
        return None if x is None else f"dnp.{fn}({x}, axis={_axis(b, len(b.shape(x)), True)})"

    return op


def _softmax(fn: str) -> Any:
    def op(b: Builder) -> Any:
        x = b.pick(lambda s: len(s) >= 1)
        return None if x is None else f"dnp.{fn}({x}, axis={_axis(b, len(b.shape(x)), True)})"

    return op


def _reshape(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) >= 1)
    if x is None:
        return None
    n = math.prod(b.shape(x))
    shapes = [s for r in (1, 2, 3) for s in itertools.product(range(1, n + 1), repeat=r)
              if math.prod(s) == n]  # fmt: skip
    s = list(b.choice(shapes))
    if b.flip():
        s[b.int(0, len(s) - 1)] = -1
    return b.choice([f"dnp.reshape({x}, {tuple(s)})", f"{x}.reshape({tuple(s)})"])


def _transpose(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) >= 2)
    if x is None:
        return None
    perm = b.permutation(range(len(b.shape(x))))
    return b.choice([f"dnp.transpose({x}, {tuple(perm)})", f"{x}.T",
                                   f"dnp.swapaxes({x}, 0, -1)", f"dnp.moveaxis({x}, 0, -1)"])  # fmt: skip


def _expand_squeeze(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) >= 1)
    if x is None:
        return None
    s = b.shape(x)
    if 1 in s and b.flip():
        return f"dnp.squeeze({x}, {s.index(1)})"
    if len(s) < 3:
        return f"dnp.expand_dims({x}, {b.int(-len(s) - 1, len(s))})"
    return f"dnp.ravel({x})"


def _slice_index(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) >= 1)
    if x is None:
        return None
    parts = []
    for n in b.shape(x):
        kind = b.choice(["all", "int", "slice", "rev", "none"])
        parts.append({"all": ":", "int": str(b.int(-n, n - 1)),
                      "slice": f"{b.int(0, n - 1)}:", "rev": "::-1",
                      "none": "None, :"}[kind])  # fmt: skip
    return f"{x}[{', '.join(parts)}]"


def _advanced_index(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) >= 1)
    if x is None:
        return None
    n = b.shape(x)[0]
    kind = b.choice(["list", "mask", "take", "last"])
    if kind == "mask":
        mask = [bool(v) for v in b.rng.integers(2, size=n)]
        mask[b.int(0, n - 1)] = True
        return f"{x}[np.array({mask!r})]"
    idx = [b.int(-n, n - 1) for _ in range(b.int(1, 4))]
    if kind == "take":
        axis = b.int(0, len(b.shape(x)) - 1)
        m = b.shape(x)[axis]
        return f"dnp.take({x}, {[i % m for i in idx]!r}, axis={axis})"
    return f"{x}[{idx!r}]" if kind == "list" else f"{x}[..., {[i % b.shape(x)[-1] for i in idx]!r}]"


def _join(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) >= 1)
    if x is None:
        return None
    sx = b.shape(x)
    if b.flip():
        y = b.pick(lambda s: s == sx)
        return f"dnp.stack([{x}, {y}], axis={b.int(-len(sx) - 1, len(sx))})"
    axis = b.int(0, len(sx) - 1)
    y = b.pick(lambda s: len(s) == len(sx) and all(a == c for i, (a, c) in enumerate(zip(s, sx)) if i != axis))
    return f"dnp.concatenate([{x}, {y}, {x}], axis={axis})"


def _rearrange(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) >= 1)
    if x is None:
        return None
    nd = len(b.shape(x))
    a = b.int(0, nd - 1)
    return b.choice([
        f"dnp.flip({x}, {a})", f"dnp.roll({x}, {b.int(-3, 3)}, axis={a})",
        f"dnp.tile({x}, 2)", f"dnp.repeat({x}, 2, axis={a})",
        f"dnp.broadcast_to({x}, (2,) + {x}.shape)", f"dnp.pad({x}, 1)"])  # fmt: skip


def _matrix_parts(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) >= 2)
    if x is None:
        return None
    return b.choice([f"dnp.triu({x})", f"dnp.tril({x}, -1) + {x}",
                                   f"dnp.diagonal({x})", f"dnp.trace({x})"])  # fmt: skip


def _setitem(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) >= 1)
    if x is None:
        return None
    n = b.shape(x)[0]
    y = b.pick(lambda s: _bcast(s, b.shape(x)[1:]) and np.broadcast_shapes(s, b.shape(x)[1:]) == b.shape(x)[1:])
    if y is None:
        return None
    i = b.int(-n, n - 1)
    return [f"OUT = {x} * 1.0", f"OUT[{i}] = dnp.sin({y})"]


def _sort(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) >= 1)
    if x is None:
        return None
    axis = b.int(-len(b.shape(x)), len(b.shape(x)) - 1)
    return f"dnp.sort({x}, axis={axis})" if _gap_ok(b, b.val(x), axis, "all") else None


def _matmul(b: Builder) -> Any:
    def ok(s: tuple, t: tuple) -> bool:
        if not s or not t:
            return False
        try:
            r = np.matmul(np.zeros(s), np.zeros(t)).shape
        except ValueError:
            return False
        return math.prod(r) <= MAX_SIZE
    pair = b.pick_pair(ok)
    if pair is None:
        x = b.pick(lambda s: len(s) >= 1)
        return None if x is None else f"{x} @ dnp.swapaxes({x}, -1, -2)" if len(b.shape(x)) >= 2 else f"{x} @ {x}"
    x, y = pair
    return b.choice([f"{x} @ {y}", f"dnp.matmul({x}, {y})"])


def _products(b: Builder) -> Any:
    kind = b.choice(["dot", "outer", "inner", "tensordot", "kron", "vdot"])
    arrays = [n for n in b.env if b.is_array(n)]  # (Python floats: see test_fuzz's xfails)
    if not arrays:
        return None
    x = b.pick(among=arrays)
    sx = b.shape(x)
    if kind == "outer":
        y = b.pick(lambda s: math.prod(s) * math.prod(sx) <= MAX_SIZE, arrays)
        return None if y is None else f"dnp.outer({x}, {y})"
    if kind == "kron":
        y = b.pick(lambda s: len(s) == len(sx) and math.prod(s) * math.prod(sx) <= MAX_SIZE, arrays)
        return None if y is None else f"dnp.kron({x}, {y})"
    if kind == "vdot":
        y = b.pick(lambda s: math.prod(s) == math.prod(sx), arrays)
        return f"dnp.vdot({x}, {y})"
    if kind == "inner":
        y = b.pick(lambda s: (not s or not sx or s[-1] == sx[-1]) and len(s) + len(sx) <= 4, arrays)
        return None if y is None else f"dnp.inner({x}, {y})"
    if kind == "dot":
        y = b.pick(lambda s: not s or not sx or (s[-2 if len(s) > 1 else 0] == sx[-1] and len(s) + len(sx) <= 4), arrays)
        return None if y is None else f"dnp.dot({x}, {y})"
    k = b.int(0, min(2, len(sx)))
    y = b.pick(lambda s: tuple(s[:k]) == tuple(sx[len(sx) - k:]) and len(s) + len(sx) - 2 * k <= 3, arrays)
    return None if y is None else f"dnp.tensordot({x}, {y}, axes={k})"


def _einsum(b: Builder) -> Any:
    letters = iter("abcdefg")
    x = b.pick(lambda s: len(s) >= 1)
    if x is None:
        return None
    sx = b.shape(x)
    lx = [next(letters) for _ in sx]
    operands, subs, dims = [x], ["".join(lx)], dict(zip(lx, sx))
    if b.flip():
        y = b.pick(lambda s: len(s) >= 1)
        ly = []
        for n in b.shape(y):
            same = [c for c in lx if dims[c] == n and c not in ly]
            ly.append(b.choice(same) if same and b.flip() else next(letters))
            dims[ly[-1]] = n
        operands.append(y)
        subs.append("".join(ly))
    out = b.permutation(sorted(dims))[: b.int(0, min(3, len(dims)))]
    return f"dnp.einsum({','.join(subs) + '->' + ''.join(out)!r}, {', '.join(operands)})"


def _linalg(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) >= 2 and s[-1] == s[-2] and s[-1] > 1)
    if x is None:
        return None
    n = b.shape(x)[-1]
    m = f"(dnp.eye({n}) * 3.0 + 0.2 * {x})"
    sym = f"({x} + dnp.swapaxes({x}, -1, -2))"
    kind = b.choice(["solve", "inv", "det", "slogdet", "cholesky", "eigvalsh",
                                   "eigh", "svdvals", "norm"])  # fmt: skip
    if kind in ("solve", "inv", "det", "slogdet") and np.max(np.linalg.cond(b.val(m))) > 50:
        return None
    if kind in ("eigvalsh", "eigh") and not _gap_ok(b, np.linalg.eigvalsh(b.val(sym)), -1, "all"):
        return None
    if kind == "svdvals":
        s = np.linalg.svd(b.val(x), compute_uv=False)
        if not (_gap_ok(b, s, -1, "all") and np.all(s > b.margin)):
            return None
    return {
        "solve": f"dnp.linalg.solve({m}, {x})", "inv": f"dnp.linalg.inv({m})",
        "det": f"dnp.linalg.det({m})", "slogdet": f"dnp.linalg.slogdet({m})[1]",
        "cholesky": f"dnp.linalg.cholesky({x} @ dnp.swapaxes({x}, -1, -2) + dnp.eye({n}))",
        "eigvalsh": f"dnp.linalg.eigvalsh({sym})", "eigh": f"dnp.linalg.eigh({sym})[1] ** 2",
        "svdvals": f"dnp.linalg.svdvals({x})", "norm": f"dnp.linalg.norm({x} + 2.0)",
    }[kind]


def _numpy_protocol(b: Builder) -> Any:
    x = b.pick()
    return b.choice([f"np.sin({x})", f"np.exp(np.tanh({x}))", f"np.multiply({x}, {x})",
                                   f"np.sum({x})", f"np.add({x}, 1.5)"])  # fmt: skip


# --- control flow ----------------------------------------------------------------------------
def _if_data(b: Builder) -> Any:
    x = b.pick()
    s = float(np.sum(b.val(x)))
    t = round(s - 0.5 if b.flip() else s + 0.5, 2)
    return [f"if dnp.sum({x}) > {t}:", f"    OUT = {_smooth(b, x)}", "else:",
            f"    OUT = {_smooth(b, x)}"]  # fmt: skip


def _if_constant(b: Builder) -> Any:
    x = b.pick()
    consts = [(path, v) for path, v in b.paths if isinstance(v, (int, str)) and not isinstance(v, bool)]
    if not consts:
        return None
    path, v = b.choice(consts)
    test = f"{path} == 'a'" if isinstance(v, str) else f"{path} > 1"
    return [f"if {test}:", f"    OUT = {_smooth(b, x)}", "else:", f"    OUT = {_smooth(b, x)}"]


def _for_loop(b: Builder) -> Any:
    x = b.pick()
    ints = [path for path, v in b.paths if type(v) is int]
    count = b.choice(ints) if ints and b.flip() else str(b.int(0, 3))
    return [f"OUT = {x}", f"for i in range({count}):", f"    OUT = dnp.sin(OUT) * 0.7 + 0.1 * i * {x}"]


def _while_loop(b: Builder) -> Any:
    x = b.pick()
    value, sizes = b.val(x), []
    for _ in range(4):  # max |OUT| after 0, 1, 2, 3 passes
        sizes.append(float(np.max(np.abs(value))))
        value = value * 0.5 + 0.1 * np.tanh(value)
    if sizes[0] < 0.1:
        return None
    k = b.int(0, 3)  # stop after k passes: sizes[k] < T < sizes[k - 1]
    t = sizes[0] * 1.5 if k == 0 else math.sqrt(sizes[k] * sizes[k - 1])
    return [f"OUT = {x}", f"while dnp.max(dnp.abs(OUT)) > {t:.6g}:",
            "    OUT = OUT * 0.5 + 0.1 * dnp.tanh(OUT)"]  # fmt: skip


def _data_count_loop(b: Builder) -> Any:
    x = b.pick()
    s = abs(float(np.sum(b.val(x))))
    if min(s % 1.0, 1.0 - s % 1.0) < 0.05:
        return None
    return [f"OUT = {x}", f"for _ in range(int(abs(dnp.sum({x}))) % 3 + 1):",
            "    OUT = dnp.tanh(OUT) + 0.3 * OUT"]  # fmt: skip


def _rows(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) >= 1)
    if x is None:
        return None
    return [f"OUT = 0.0 * {x}[0]", f"for row in {x}:", "    OUT = OUT + dnp.sin(row) * row"]


def _user_functions(b: Builder) -> Any:
    x = b.pick()
    return b.choice([f"logcosh({x})", f"nest({x}, {b.int(0, 3)})",
                                   f"smooth_block({x})"])  # fmt: skip


# --- more of the API: splits and joins, selections, statistics, methods, in-place updates ---
def _split_join(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) >= 1 and s[0] >= 2)
    if x is None:
        return None
    nd = len(b.shape(x))
    return b.choice([
        f"dnp.array_split({x}, 2, axis=0)[{b.int(0, 1)}]", f"dnp.split({x}, [1], axis=0)[1]",
        f"dnp.hstack([{x}, {x}])", f"dnp.vstack([{x}, {x} * 2.0])",
        f"dnp.atleast_2d({x})" if nd < 3 else f"dnp.atleast_3d({x})",
        f"dnp.rot90({x})" if nd >= 2 else f"dnp.flip({x})",
        f"dnp.roll({x}, 1)", f"dnp.flip({x})"])  # fmt: skip


def _selections(b: Builder) -> Any:
    kind = b.choice(["fmax", "fmin", "copysign", "mask_values", "take_along", "clip_one"])
    x = b.pick()
    vx = b.val(x)
    if kind in ("fmax", "fmin"):
        y = b.pick(lambda s: _bcast(s, b.shape(x)))
        return f"dnp.{kind}({x}, {y})" if b.far(vx - b.val(y)) else None
    if kind == "copysign":
        y = b.pick(lambda s: _bcast(s, b.shape(x)))
        return f"dnp.copysign({x}, {y})" if b.far(vx) and b.far(b.val(y)) else None
    if kind == "clip_one":
        t = b.lit(-1.0, 1.0)
        return f"dnp.clip({x}, {b.choice(['min', 'max'])}={t})" if b.far(vx, t) else None
    if not b.shape(x):
        return None
    if kind == "mask_values":
        t = b.lit(-1.0, 1.0)
        ok = b.far(vx, t) and np.any(vx > t)
        return f"{x}[{x} > {t}]" if ok else None
    axis = b.int(0, len(b.shape(x)) - 1)  # x sorted along axis through argsort: needs gaps
    if not _gap_ok(b, vx, axis, "all"):
        return None
    return f"dnp.take_along_axis({x}, dnp.argsort({x}, axis={axis}), axis={axis})"


def _statistics(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) >= 1)
    if x is None:
        return None
    nd = len(b.shape(x))
    a = b.int(-nd, nd - 1)
    w = b.pick(lambda s: s == b.shape(x))
    kind = b.choice(["average", "nansum", "nanmean", "var_ddof", "norm_axis", "norm_ord",
                     "cumsum_flat", "mean_method", "max_method", "std_method"])  # fmt: skip
    if kind in ("var_ddof", "std_method") and (b.shape(x)[a] < 2 or np.min(np.var(b.val(x), axis=a)) < 0.05):
        return None
    if kind == "max_method" and not _gap_ok(b, b.val(x), a):
        return None
    if kind in ("norm_axis", "norm_ord") and np.min(np.abs(b.val(x))) < b.margin:
        return None
    return {
        "average": f"dnp.average({x}, axis={a}, weights=dnp.exp(dnp.tanh({w})))",
        "nansum": f"dnp.nansum({x}, axis={a})", "nanmean": f"dnp.nanmean({x}, axis={a}, keepdims=True)",
        "var_ddof": f"dnp.var({x}, axis={a}, ddof=1)",
        "norm_axis": f"dnp.linalg.norm({x}, axis={a})",
        "norm_ord": f"dnp.linalg.norm(dnp.ravel({x}), ord={b.choice([1, 3, 2.5])})",
        "cumsum_flat": f"dnp.cumsum({x})", "mean_method": f"{x}.mean(axis={a})",
        "max_method": f"{x}.max(axis={a})", "std_method": f"{x}.std(axis={a})",
    }[kind]


def _operators(b: Builder) -> Any:
    x = b.pick()
    y = b.pick(lambda s: _bcast(s, b.shape(x)))
    kind = b.choice(["pow", "rsub", "rdiv", "abs", "augmented", "pos", "matT", "eye"])
    vx = b.val(x)
    if kind == "abs" and not b.far(vx):
        return None
    if kind in ("matT", "eye") and len(b.shape(x)) < 2:
        return None
    if kind == "augmented":  # no alias of OUT exists (aliases: see test_fuzz's xfails)
        if np.broadcast_shapes(b.shape(x), b.shape(y)) != b.shape(x) or not b.is_array(x):
            return None
        return [f"OUT = {x} * 1.0", f"OUT += {y}", f"OUT *= dnp.tanh({y})", "OUT -= 0.5"]
    n = b.shape(x)[-2] if len(b.shape(x)) >= 2 else 1
    return {
        "pow": f"({x} * {x} + 0.5) ** ({y} * 0.5)", "rsub": f"2.0 - {x} / 2",
        "rdiv": f"1.5 / ({y} * {y} + 1.0) - {x}", "abs": f"abs({x})",
        "pos": f"+{x} * dnp.positive({y})", "matT": f"{x}.mT @ {x}",
        "eye": f"dnp.eye({n}) @ {x} + dnp.ones_like({x}) * dnp.zeros_like({x})",
    }[kind]


def _more_unary(b: Builder) -> Any:
    x = b.pick()
    kind = b.choice(["exp2", "logaddexp2", "deg2rad", "true_divide", "fabs", "arccos", "arccosh",
                     "float_power", "full_like", "tensordot_lists"])  # fmt: skip
    vx = b.val(x)
    if kind == "fabs" and not b.far(vx):
        return None
    if kind == "tensordot_lists":
        if len(b.shape(x)) < 2:
            return None
        return f"dnp.tensordot({x}, {x}, axes=([0, 1], [0, 1]))"
    return {
        "exp2": f"dnp.exp2(dnp.tanh({x}))", "logaddexp2": f"dnp.logaddexp2({x}, 0.5)",
        "deg2rad": f"dnp.sin(dnp.deg2rad({x} * 60.0))", "true_divide": f"dnp.true_divide({x}, 3.0)",
        "fabs": f"dnp.fabs({x})", "arccos": f"dnp.arccos(0.9 * dnp.tanh({x}))",
        "arccosh": f"dnp.arccosh({x} * {x} + 1.5)",
        "float_power": f"dnp.float_power({x} * {x} + 1.0, 0.7)",
        "full_like": f"{x} * dnp.full_like({x}, 1.5)",
    }[kind]


def _in_place(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) >= 1)
    if x is None:
        return None
    sx = b.shape(x)
    kind = b.choice(["slice", "mask", "add_at", "sort", "column"])
    if kind == "mask":
        t = b.lit(-1.0, 1.0)
        return [f"OUT = {x} * 1.0", f"OUT[OUT > {t}] = 0.5"] if b.far(b.val(x), t) else None
    if kind == "add_at":
        idx = [b.int(0, sx[0] - 1) for _ in range(3)]
        return [f"OUT = dnp.sin({x})", f"np.add.at(OUT, {idx!r}, 1.5 * OUT[0])"]
    if kind == "sort":
        if not _gap_ok(b, b.val(x), -1, "all"):
            return None
        return [f"OUT = {x} * 1.0", "OUT.sort()"]
    if kind == "column" and len(sx) >= 2:
        part = (sx[0],) + sx[2:]  # the shape of OUT[:, 0]
        y = b.pick(lambda s: _bcast(s, part) and np.broadcast_shapes(s, part) == part)
        return None if y is None else [f"OUT = {x} * 1.0", f"OUT[:, 0] = {y}"]
    y = b.pick(lambda s: _bcast(s, (1,) + sx[1:]) and np.broadcast_shapes(s, (1,) + sx[1:]) == (1,) + sx[1:])
    return None if y is None else [f"OUT = dnp.cos({x})", f"OUT[:1] = OUT[:1] * {y}"]


def _more_linalg(b: Builder) -> Any:
    x = b.pick(lambda s: len(s) == 2 and s[0] == s[1] and s[0] > 1)
    if x is None:
        return None
    n = b.shape(x)[0]
    m = f"(dnp.eye({n}) * 3.0 + 0.2 * {x})"
    if np.linalg.cond(b.val(m)) > 50:
        return None
    kind = b.choice(["matrix_power", "pinv", "multi_dot", "cross", "diag", "svd"])
    if kind == "svd":
        s = np.linalg.svd(b.val(x), compute_uv=False)
        if not (_gap_ok(b, s, -1, "all") and np.all(s > b.margin)):
            return None
    return {
        "matrix_power": f"dnp.linalg.matrix_power({m}, 3)", "pinv": f"dnp.linalg.pinv({m})",
        "multi_dot": f"dnp.linalg.multi_dot([{x}, {m}, {x}])",
        "cross": f"dnp.cross({x}, {x}[::-1])" if n == 3 else f"dnp.diag(dnp.diag({x}))",
        "diag": f"dnp.diag({x}) + dnp.diag({x}, 1)[0]", "svd": f"dnp.linalg.svd({x})[1]",
    }[kind]


def _casts(b: Builder) -> Any:
    arrays = [n for n in b.env if b.is_array(n)]
    if not b.allow_casts or not arrays:
        return None
    x = b.pick(among=arrays)
    return b.choice([f"{x}.astype(np.float32)", f"{x}.astype(np.float64)",
                     f"{x}.astype(np.float32) * {b.pick(lambda s: _bcast(s, b.shape(x)))}"])  # fmt: skip


def _pos(b: Builder, x: np.ndarray) -> bool:
    return bool(np.min(x) > 0.2)


def _small(limit: float) -> Any:
    return lambda b, x: bool(np.max(np.abs(x)) < limit)


def _away(b: Builder, x: np.ndarray, y: np.ndarray | None = None) -> bool:
    return b.far(x if y is None else x - y)


def _gap(b: Builder, x: np.ndarray, axis: Any) -> bool:
    return _gap_ok(b, x, axis)


OPS: dict[str, Any] = {
    "add": _binary("{x} + {y}"), "subtract": _binary("dnp.subtract({x}, {y})"),
    "multiply": _binary("{x} * {y}"), "sin": _unary("dnp.sin({x})"), "cos": _unary("dnp.cos({x})"),
    "tanh": _unary("dnp.tanh({x})"), "negative": _unary("-{x}"),
    "exp": _unary("dnp.exp({x})", _small(3.0), "dnp.exp(dnp.tanh({x}))"),
    "log": _unary("dnp.log({x})", _pos, "dnp.log(dnp.softplus({x}) + 0.1)"),
    "sqrt": _unary("dnp.sqrt({x})", _pos, "dnp.sqrt({x} * {x} + 1.0)"),
    "sigmoid": _unary("dnp.sigmoid({x})"), "softplus": _unary("dnp.softplus({x})"),
    "square": _unary("dnp.square({x})", _small(5.0)), "cube": _unary("{x} ** 3", _small(3.0)),
    "float_power": _unary("({x} * {x} + 0.5) ** 1.5", _small(5.0)),
    "rpower": _unary("2.0 ** {x}", _small(4.0)), "arctan": _unary("dnp.arctan({x})"),
    "sinh": _unary("dnp.sinh({x})", _small(3.0)), "cosh": _unary("dnp.cosh({x})", _small(3.0)),
    "expm1": _unary("dnp.expm1({x})", _small(3.0)),
    "log1p": _unary("dnp.log1p({x})", lambda b, x: bool(np.min(x) > -0.7), "dnp.log1p({x} * {x})"),
    "reciprocal": _unary("dnp.reciprocal({x})", lambda b, x: bool(np.min(np.abs(x)) > 0.3),
                         "1.0 / ({x} * {x} + 1.0)"),
    "abs": _unary("dnp.abs({x})", _away), "relu": _unary("dnp.relu({x})", _away),
    "sinc": _unary("dnp.sinc({x})"), "arcsinh": _unary("dnp.arcsinh({x})"),
    "arcsin": _unary("dnp.arcsin({x})", _small(0.8), "dnp.arcsin(0.8 * dnp.tanh({x}))"),
    "arctanh": _unary("dnp.arctanh({x})", _small(0.8), "dnp.arctanh(0.8 * dnp.tanh({x}))"),
    "log2": _unary("dnp.log2({x} * {x} + 1.0)"), "log10": _unary("dnp.log10({x} * {x} + 0.5)"),
    "cbrt": _unary("dnp.cbrt({x})", lambda b, x: bool(np.min(np.abs(x)) > 0.2), "dnp.cbrt({x} * {x} + 1.0)"),
    "tan": _unary("dnp.tan({x})", _small(1.2), "dnp.tan(dnp.tanh({x}))"),
    "mod": _unary("dnp.mod({x}, 1.7)", lambda b, x: b.far(np.abs((x / 1.7 + 0.5) % 1.0 - 0.5))),
    "clip": _clip,
    "divide": _binary("{x} / {y}", lambda b, x, y: bool(np.min(np.abs(y)) > 0.3),
                      "{x} / ({y} * {y} + 1.0)"),
    "maximum": _binary("dnp.maximum({x}, {y})", _away), "minimum": _binary("dnp.minimum({x}, {y})", _away),
    "power": _binary("dnp.power({x} * {x} + 0.5, {y})", lambda b, x, y: bool(np.max(np.abs(y)) < 3)),
    "hypot": _binary("dnp.hypot({x}, {y})", lambda b, x, y: bool(np.min(np.hypot(x, y)) > 0.2)),
    "arctan2": _binary("dnp.arctan2({x}, {y})", lambda b, x, y: bool(  # off 0 and the branch cut
        np.min(np.hypot(x, y)) > 0.3 and np.all((np.abs(x) > b.margin) | (y > 0)))),
    "logaddexp": _binary("dnp.logaddexp({x}, {y})"),
    "where_const": _where_const, "where_data": _where_data,
    "sum": _reduction("sum"), "mean": _reduction("mean"), "sum_method": _reduction("sum", method=True),
    "max": _reduction("max", _gap), "min": _reduction("min", _gap),
    "prod": _reduction("prod"), "var": _reduction("var"), "std": _reduction("std", _std),
    "logsumexp": _reduction("logsumexp"), "ptp": _reduction("ptp", _gap),
    "cumsum": _cumulative("cumsum"), "cumprod": _cumulative("cumprod"),
    "softmax": _softmax("softmax"), "log_softmax": _softmax("log_softmax"),
    "reshape": _reshape, "transpose": _transpose, "expand_squeeze": _expand_squeeze,
    "slice": _slice_index, "advanced_index": _advanced_index, "join": _join,
    "rearrange": _rearrange, "matrix_parts": _matrix_parts, "setitem": _setitem, "sort": _sort,
    "matmul": _matmul, "products": _products, "einsum": _einsum, "linalg": _linalg,
    "numpy_protocol": _numpy_protocol, "user_functions": _user_functions,
    "if_data": _if_data, "if_constant": _if_constant, "for_loop": _for_loop,
    "while_loop": _while_loop, "data_count_loop": _data_count_loop, "rows": _rows,
    "split_join": _split_join, "selections": _selections, "statistics": _statistics,
    "operators": _operators, "more_unary": _more_unary, "in_place": _in_place,
    "more_linalg": _more_linalg, "casts": _casts,
}  # fmt: skip


# --- the strategy ----------------------------------------------------------------------------
@st.composite
def programs(draw: Any, dtypes: tuple = ("float64",), min_ops: int = 5, max_ops: int = 15,
             margin: float = 0.02, casts: bool = False, python_floats: bool = True) -> Program:  # fmt: skip
    """A random `Program` over a random parameter pytree (leaves of `dtypes`, plus Python
    floats, ints and strs); `margin` keeps kinks that far away; `casts` allows astype."""
    seeds = [draw(st.integers(0, 2**32 - 1)) for _ in range(2)]
    rng = np.random.default_rng(seeds)
    params = _params(draw, rng, dtypes, draw(st.integers(1, 3)), python_floats)
    if not any(_is_float(x) for _, x in _paths(params)):
        params = {"x": rng.normal(size=draw(st.sampled_from(SHAPES))).astype(dtypes[0]), "rest": params}
    b = Builder(rng, params, margin)
    b.allow_casts = casts
    for path, leaf in b.paths:
        if _is_float(leaf) and draw(st.integers(0, 4)):  # now and then a leaf goes unused
            b.try_emit("read", path)
    if not b.env:
        b.try_emit("read", next(path for path, leaf in b.paths if _is_float(leaf)))
    n_ops = b.int(min_ops, max_ops)
    for _ in range(n_ops):
        name = b.choice(sorted(OPS))
        code = OPS[name](b)
        if code is None or not b.try_emit(name, code):
            b.try_emit("sin (fallback)", f"dnp.sin({b.pick()})")
    out = draw(st.sampled_from(["scalar", "last", "tree"]))
    last = b.env[-1]
    ret = {"scalar": f"dnp.sum({last}) + dnp.mean(dnp.tanh({b.pick()}))", "last": last,
           "tree": f"{{'y': {last}, 'z': ({b.pick()}, 3), 'n': None}}"}[out]  # fmt: skip
    body = "def f(p):\n" + "".join(f"    {line}\n" for line in b.lines) + f"    return {ret}\n"
    ns = dict(b.ns)
    exec(body, ns)  # noqa: S102  (programs are source text by design)
    return Program(params, body, ns["f"], sum(op != "read" for op in b.ops), b.ops)
