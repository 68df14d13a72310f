"""diffprog: derivatives of ordinary Python programs over NumPy and CuPy arrays.

>>> import diffprog as dp
>>> dp.grad(lambda params: params["w"] * params["w"] + 1.0)({"w": 3.0})
{'w': 6.0}

The public surface: transforms (`grad`, `value_and_grad`, `vjp`, `jvp`, `jacrev`, `jacfwd`,
`hessian`, `hvp`, `Tape`, `custom_vjp`, `custom_jvp`, `checkpoint`, `stop_gradient`, `jit`,
`vmap`), pytrees
(`dp.tree`), differentiable NumPy (`diffprog.numpy`), gradient checking (`dp.testing`) and
NaN hunting (`dp.debug_nans`), tape introspection (`dp.make_graph`), and training: layers,
initializers and losses (`dp.nn`), optimizers (`dp.optim`).
"""

# diffprog.numpy installs tracer arithmetic on import; distributed imports mpi4py lazily
from . import distributed, nn, numpy, optim, testing, tree  # noqa: F401
from .backend import to_device
from .debug import debug_nans
from .graph import Graph, make_graph
from .io import load, save
from .errors import (
    BatchedControlFlowError,
    DeviceMismatchError,
    CheckpointError,
    DiffprogError,
    EscapedTracerError,
    NonFiniteError,
    NonScalarOutputError,
    StructureError,
    TracerConversionError,
    UnsupportedKeywordError,
    UnsupportedLeafError,
)
from .transforms import (
    Tape,
    checkpoint,
    custom_jvp,
    custom_vjp,
    grad,
    hessian,
    hvp,
    jacfwd,
    jacobian,
    jacrev,
    jit,
    jvp,
    stop_gradient,
    value_and_grad,
    vjp,
    vmap,
)

__version__ = "0.1.0"

__all__ = [
    "BatchedControlFlowError", "CheckpointError", "DeviceMismatchError", "DiffprogError",
    "EscapedTracerError", "Graph", "NonFiniteError", "NonScalarOutputError", "StructureError",
    "Tape", "TracerConversionError", "UnsupportedKeywordError", "UnsupportedLeafError",
    "checkpoint",
    "custom_jvp", "custom_vjp", "debug_nans", "distributed", "grad", "hessian", "hvp", "jacfwd",
    "jacobian", "jacrev", "jit", "jvp", "load", "make_graph", "nn", "numpy", "optim", "save",
    "stop_gradient", "testing", "to_device", "tree", "value_and_grad", "vjp", "vmap",
]  # fmt: skip
