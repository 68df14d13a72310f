"""Benchmark: diffprog.tree (optree, C++) flatten+unflatten vs a naive pure-Python version.

Run: python benchmarks/tree_flatten.py
Prints microseconds per flatten+unflatten round trip for each implementation and the ratio.
"""

import os
import sys
import timeit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from diffprog import tree  # noqa: E402


def naive_flatten(t):
    """Recursive flatten of dict (sorted keys), list, tuple; returns (leaves, spec)."""
    leaves = []

    def rec(x):
        if isinstance(x, dict):
            keys = sorted(x)
            return ("dict", tuple(x), keys, [rec(x[k]) for k in keys])
        if isinstance(x, (list, tuple)):
            return (type(x), None, None, [rec(c) for c in x])
        leaves.append(x)
        return None

    return leaves, rec(t)


def naive_unflatten(spec, leaves):
    it = iter(leaves)

    def rec(s):
        if s is None:
            return next(it)
        kind, order, keys, kids = s
        if kind == "dict":
            built = dict(zip(keys, [rec(k) for k in kids]))
            return {k: built[k] for k in order}
        return kind(rec(k) for k in kids)

    return rec(spec)


def per_call_us(fn, number):
    best = min(timeit.repeat(fn, number=number, repeat=5))
    return best / number * 1e6


def bench(name, t, number):
    def dp_roundtrip():
        leaves, treedef = tree.flatten(t)
        return tree.unflatten(treedef, leaves)

    def naive_roundtrip():
        leaves, spec = naive_flatten(t)
        return naive_unflatten(spec, leaves)

    assert dp_roundtrip() == naive_roundtrip() == t
    dp_us = per_call_us(dp_roundtrip, number)
    naive_us = per_call_us(naive_roundtrip, number)
    print(f"{name:<34} {dp_us:>10.2f} {naive_us:>10.2f} {naive_us / dp_us:>9.1f}x")


def main():
    params = {f"layer{i}": {"W": float(i), "b": float(-i)} for i in range(100)}
    small = {"x": 1.0, "y": (2.0, 3.0)}
    print(f"{'tree (flatten+unflatten, us/call)':<34} {'diffprog':>10} {'naive':>10} {'speedup':>10}")
    bench("(a) 100-layer params, 200 leaves", params, number=2000)
    bench("(b) small tree, 3 leaves", small, number=50000)


if __name__ == "__main__":
    main()
