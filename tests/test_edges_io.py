"""Trust at the edges of checkpoints and of the transform boundary (the issue's items).

1. dp.load refuses a FIFO, a directory or a device at once, naming the path and what it is
   (and dp.save refuses to replace one).
2. A killed dp.save leaves a temporary named after its writer, which the next save of that
   file removes once the writer is dead (never while it lives); an exception, KeyboardInterrupt
   included, removes dp.save's own temporary.
3. A failed write (ENOSPC, EFBIG, ...) raises an OSError with its errno that names the user's
   path and says nothing was written; the temporary is gone, the old checkpoint intact.
4. dp.save into a missing folder names the user's path and says the folder does not exist.
5. dp.load(path, like=tree) gives exactly like's structure and leaf types (and devices),
   and a mismatch raises StructureError naming the key path and both sides.
6. An unregistered dataclass holding floats in a differentiated position raises
   UnsupportedLeafError naming its key path and dp.tree.register_dataclass.
"""

from __future__ import annotations

import collections
import dataclasses
import errno
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from backends import require_cupy
from diffprog.errors import CheckpointError, StructureError, UnsupportedLeafError


@dp.tree.register_dataclass
@dataclasses.dataclass
class Dense:
    W: object
    b: object
    act: str = dataclasses.field(default="tanh", metadata={"static": True})


@dataclasses.dataclass
class Params:  # not registered: dp.tree sees one opaque leaf
    w: object


@dataclasses.dataclass
class Config:  # not registered, no floating values: a constant like a string
    depth: int
    name: str


# ---------------------------------------------------------------- 6. unregistered dataclasses


def _loss(p, *rest):
    return dnp.sum(p["lin"].w * 2.0) + dnp.sum(p["b"])


def _tape_watch(p):
    with dp.Tape() as tape:
        tape.watch(p)


_PARAMS = {"lin": Params(np.ones(2)), "b": np.zeros(2)}


@pytest.mark.parametrize("entry", [
    lambda: dp.grad(_loss)(_PARAMS),
    lambda: dp.value_and_grad(_loss)(_PARAMS),
    lambda: dp.vjp(_loss, _PARAMS),
    lambda: dp.jvp(_loss, (_PARAMS,), (_PARAMS,)),
    lambda: dp.hessian(_loss)(_PARAMS),
    lambda: dp.jacfwd(_loss)(_PARAMS),
    lambda: _tape_watch(_PARAMS),
    lambda: dp.grad(_loss)({"lin": Params([np.ones(2)]), "b": np.zeros(2)}),  # nested
    lambda: dp.grad(_loss)({"lin": Params(0.5), "b": np.zeros(2)}),  # a Python float
], ids=["grad", "value_and_grad", "vjp", "jvp", "hessian", "jacfwd", "Tape.watch",
        "nested", "python-float"])
def test_item6_unregistered_dataclass_holding_floats_is_refused(entry):
    with pytest.raises(UnsupportedLeafError) as caught:
        entry()
    message = str(caught.value)
    assert "['lin']" in message and "Params" in message, message
    assert "dp.tree.register_dataclass(Params)" in message, message


def _tape_target():
    with dp.Tape() as tape:
        x = tape.watch(np.ones(2))
        y = Params(x * 2.0)
    return tape.gradient(y, x)


@pytest.mark.parametrize("entry", [
    lambda: dp.vjp(lambda x: {"lin": Params(x * 2.0)}, np.ones(2)),
    lambda: dp.jacrev(lambda x: {"lin": Params(x * 2.0)})(np.ones(2)),
    lambda: dp.jvp(lambda x: {"lin": Params(x * 2.0)}, (np.ones(2),), (np.ones(2),)),
    lambda: _tape_target(),
], ids=["vjp", "jacrev", "jvp", "Tape.gradient"])
def test_item6_unregistered_dataclass_output_holding_tracers_is_refused(entry):
    """Outputs too: traced values inside an opaque leaf would get zero or None derivatives."""
    with pytest.raises(UnsupportedLeafError, match=r"Params holds floating values.*"
                       r"dp\.tree\.register_dataclass\(Params\)"):
        entry()


def test_item6_a_dataclass_of_constants_stays_a_constant():
    """A config object of ints and strings is a constant, like a string leaf; one holding
    floats is refused even where the function does not use it; registered, it is
    differentiated field by field."""
    p = {"b": np.ones(2), "cfg": Config(2, "mlp"), "ids": Params(np.arange(2))}  # int array
    g = dp.grad(lambda p: dnp.sum(p["b"]) * p["cfg"].depth)(p)
    assert g["cfg"] is None and g["ids"] is None and g["b"].tolist() == [2.0, 2.0]
    with pytest.raises(UnsupportedLeafError, match=r"x\['p'\]"):
        dp.grad(lambda x: 1.0)({"p": Params(np.ones(1))})
    dp.tree.register_dataclass(Scaled)
    g = dp.grad(lambda s: dnp.sum(s.w * s.w))(Scaled(np.array([1.0, 2.0])))
    assert type(g) is Scaled and g.w.tolist() == [2.0, 4.0]


@dataclasses.dataclass
class Scaled:
    w: object
