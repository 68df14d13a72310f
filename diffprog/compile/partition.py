"""The partition of a graph into groups of elementwise nodes, each to run as one loop.

Owns: `Partition(body, refused, scalar_op, gpu).groups`, the groups (`Group`: body positions,
loop shape, dependencies, accumulators) that compile.fusion compiles, and the limits on them.
A node joins a group that computes one of its operands, or a recent sibling group over the
same loop (the many elementwise nodes of a backward pass read the same forward values; over
a loop of MIN_PAIR_SIZE elements or more, only a sibling that already loads one of its
operands: another would store the node's value early, long before its reader), when that
makes no cycle: every value carries the set of groups it depends on (a Python int as a
bitset), and a node may not join a group that one of its outside operands depends on. A
group read from outside is sealed: a node that would make it depend on anything new may no
longer join (whoever read it saw its dependencies). Over a loop of MIN_PAIR_SIZE elements or
more, a node of the backward pass joins no forward group (the forward kernel would store its
value long before the backward pass reads it: tanh's 1 - t*t beside t). A guard (`bool` of
a value) on a scalar group's value joins it (checked inside the kernel). A group is worth a
kernel with at least 3 operations, or 2 over at least 1024 elements, or 1 that broadcasts an
array over at least 1024 elements (NumPy's loop pays per row: a bias add takes twice a
kernel's time); libm functions (exp, tanh, ...) join only loops of at most 64 elements
(NumPy's SIMD loops beat numba's scalar calls beyond), except those compile.vmath computes
faster than NumPy (kernels.small_loops_only). On the GPU a group is worth a kernel from 2 operations (each
saves a launch), every member's result has the loop's shape, libm functions join any loop,
a sibling joins whatever its operands, and guards stay outside.
Layer L3 (beside ad/): imports compile.ir and compile.kernels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import kernels
from .ir import Guard, Node, Var

#: the most operations in one kernel
MAX_OPS = 256
#: a group of fewer operations is not worth a kernel ...
MIN_OPS = 3
#: ... unless it has 2 over at least this many elements
MIN_PAIR_SIZE = 1024
#: libm functions are fused only into loops of at most this many elements
TRANSCENDENTAL_MAX_SIZE = 64
#: how many recent groups a node tries to join as a sibling
RECENT = 4

class Group:
    __slots__ = ("backward", "broadcasts", "deps", "guards", "index", "libm", "loads", "members",
                 "sealed", "shape", "sums")  # fmt: skip

    def __init__(self, index: int, shape: tuple) -> None:
        self.index = index
        self.members: list[int] = []  # body positions
        self.shape = shape  # the loop's extents
        self.deps = 0  # the groups this one depends on (bitset)
        self.sealed = False  # read from outside: may not gain dependencies
        self.sums: set[int] = set()  # var ids of its accumulators (not readable inside)
        self.libm = False
        self.guards: list[int] = []  # body positions of the guards it checks
        self.loads: set[int] = set()  # var ids of the values it reads from outside
        self.broadcasts = False  # an operation of it broadcasts an array operand
        self.backward = False  # its first member is the backward pass's

    def worth_it(self, gpu: bool) -> bool:
        n, big = len(self.members), math.prod(self.shape) >= MIN_PAIR_SIZE
        lone = n == 1 and big and self.broadcasts and not gpu  # CuPy broadcasts in one launch
        return n >= MIN_OPS or (n >= 2 and (gpu or big)) or lone



class Partition:
    """Groups of body positions (see the module docstring). On the GPU (`gpu`), every
    member's result has the loop's shape (CuPy's kernels write whole outputs), guards stay
    outside (a host read) and libm functions join loops of any size."""

    def __init__(self, body: list, refused: set[int], scalar_op: Any, gpu: bool) -> None:
        self.group_of: dict[int, Group] = {}  # var id -> the group computing it
        self.deps: dict[int, int] = {}  # var id -> groups it depends on (unfused values)
        self.groups: list[Group] = []
        self.gpu = gpu
        for i, item in enumerate(body):
            if type(item) is Guard:
                g = self.group_of.get(item.var.id)
                if (g is not None and g.shape == () and item.how == "bool" and i not in refused
                        and not gpu):  # fmt: skip
                    g.guards.append(i)
                else:
                    self.read(item.var)
                continue
            op = scalar_op(item) if i not in refused else None
            if op is None or not self.place(i, item, op):
                d = 0
                for v in item.inputs():
                    self.read(v)
                    d |= self.deps_of(v)
                for o in item.outs:
                    self.deps[o.id] = d

    def deps_of(self, v: Var) -> int:
        g = self.group_of.get(v.id)
        return self.deps.get(v.id, 0) if g is None else g.deps | (1 << g.index)

    def read(self, v: Var) -> None:
        g = self.group_of.get(v.id)
        if g is not None:
            g.sealed = True

    def place(self, i: int, node: Node, op: str) -> bool:
        """Put node `i` into a group (an existing one, or a new one); False if none fits."""
        summing = op in ("sum", "sum_to_shape")
        if summing and (type(node.args[0]) is not Var or not node.args[0].shape):
            return False
        size = math.prod(node.args[0].shape if summing else node.outs[0].shape)
        small = self.gpu or size < MIN_PAIR_SIZE  # (the GPU's loops count as small here)
        tried = []
        for v in reversed(node.args):
            g = self.group_of.get(v.id) if type(v) is Var else None
            if g is not None and g not in tried:
                tried.append(g)
        for g in self.groups[-RECENT:][::-1]:  # siblings: over a big CPU loop, only one
            if g not in tried and (small or any(  # loading an operand
                    type(v) is Var and v.id in g.loads for v in node.args)):  # fmt: skip
                tried.append(g)
        if not small and node.backward:  # the backward pass's nodes stay out of big forward
            tried = [g for g in tried if g.backward]  # loops: stored long before their reader
        for g in tried:
            fit = self.fits(g, node, op, summing)
            if fit is not None:
                self.join(g, i, node, op, *fit)
                return True
        g = Group(len(self.groups), node.args[0].shape if summing else node.outs[0].shape)
        g.backward = node.backward
        fit = self.fits(g, node, op, summing)
        if fit is None:
            return False
        self.groups.append(g)
        self.join(g, i, node, op, *fit)
        return True

    def fits(self, g: Group, node: Node, op: str, summing: bool) -> tuple | None:
        """(loop shape, new dependencies) if `node` may join `g`, else None."""
        if len(g.members) >= MAX_OPS:
            return None
        out = node.outs[0].shape
        if summing:
            if node.args[0].shape != g.shape:
                return None
            shape = g.shape
        else:
            if (out == ()) != (g.shape == ()):
                return None  # scalar loops and array loops stay apart
            try:
                shape = np.broadcast_shapes(g.shape, out)
            except ValueError:
                return None
            if shape != g.shape and g.sums:
                return None  # the accumulators sum over the loop as it is
        if self.gpu and not summing and out != g.shape:
            return None
        if (not self.gpu and (g.libm or kernels.small_loops_only(op, node))
                and math.prod(shape) > TRANSCENDENTAL_MAX_SIZE):  # fmt: skip
            return None
        new = 0
        for v in node.inputs():
            if self.group_of.get(v.id) is g:
                if v.id in g.sums:
                    return None  # an accumulator is complete only after the loop
                continue
            d = self.deps_of(v)
            if d >> g.index & 1:
                return None  # g -> ... -> v -> node: joining would make a cycle
            new |= d
        if g.sealed and new & ~g.deps:
            return None
        return shape, new

    def join(self, g: Group, i: int, node: Node, op: str, shape: tuple, new: int) -> None:
        g.members.append(i)
        g.shape = shape
        g.deps |= new
        g.libm = g.libm or kernels.small_loops_only(op, node)
        for v in node.inputs():
            if self.group_of.get(v.id) is not g:
                self.read(v)
                g.loads.add(v.id)
        out = node.outs[0]
        self.group_of[out.id] = g
        if op in ("sum", "sum_to_shape"):
            g.sums.add(out.id)
        else:
            shapes = [a.shape if type(a) is Var else np.shape(a.value) for a in node.args]
            g.broadcasts = g.broadcasts or any(s != out.shape and math.prod(s) > 1 for s in shapes)
