"""The architecture's layers hold: a module imports only from its own layer or below.

L0 tree, errors (stdlib + optree) < L1 backend < L2 core < L3 ad < L4 numpy < L5 transforms
< L6 testing, nn, optim, io (built on the public API) < the package's __init__. Imports are read with `ast`,
so a violation anywhere, even inside a function, fails here.
"""

from __future__ import annotations

import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "diffprog"

LAYERS = {
    "diffprog.errors": 0,
    "diffprog.tree": 0,
    "diffprog.backend": 1,
    "diffprog.core": 2,
    "diffprog.ad": 3,
    "diffprog.compile": 3,  # the graph IR, its passes and code generator, beside ad/ (staging)
    "diffprog.numpy": 4,
    "diffprog.transforms": 5,
    "diffprog.testing": 6,
    "diffprog.nn": 6,
    "diffprog.optim": 6,
    "diffprog.io": 6,
    "diffprog.distributed": 6,
    "diffprog.debug": 5,
    "diffprog.graph": 5,
    "diffprog": 7,  # the package __init__ re-exports everything
}
THIRD_PARTY_FROM_LAYER = {
    "optree": 0, "typing_extensions": 0, "numpy": 1, "cupy": 1, "cupyx": 1, "safetensors": 6, "graphviz": 5, "mpi4py": 6,
    "numba": 3,
}  # fmt: skip


def layer_of(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        name = ".".join(parts[:n])
        if name in LAYERS:
            return LAYERS[name]
    raise KeyError(f"{module} is in no layer; add it to LAYERS in tests/test_layering.py")


def module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: pathlib.Path) -> list[str]:
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                # `from . import tree` imports the submodule diffprog.tree
                found += [f"{target}.{a.name}" if not node.module else target for a in node.names]
            else:
                found.append(node.module or "")
    return found


MODULES = sorted(ROOT.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT.parent)))
def test_imports_go_downward_only(path):
    source = module_name(path)
    mine = layer_of(source)
    for target in imports_of(path):
        top = target.split(".")[0]
        if top == "diffprog":
            assert layer_of(target) <= mine, f"{source} (L{mine}) imports {target} (L{layer_of(target)})"
        elif top in THIRD_PARTY_FROM_LAYER:
            assert THIRD_PARTY_FROM_LAYER[top] <= mine, f"{source} (L{mine}) imports {top}"
        else:
            assert top in sys.stdlib_module_names or top == "__future__", f"{source} imports {top}"


def test_every_module_has_a_docstring():
    missing = [str(p) for p in MODULES if not ast.get_docstring(ast.parse(p.read_text()))]
    assert not missing, f"modules without a docstring: {missing}"
