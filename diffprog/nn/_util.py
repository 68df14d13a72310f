"""Shared checks and helpers of diffprog.nn: argument validation with clear messages, the
array module of (possibly traced) data, device placement of new arrays, key paths.

Owns: nothing public. Layer L6: imports numpy, diffprog.tree, diffprog.numpy,
diffprog.backend (namespace_of, to_device) and diffprog.errors.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

import diffprog.numpy as dnp

from ..ad.batching import all_examples, everywhere
from ..backend import namespace_of, to_device
from ..errors import StructureError
from ..tree import keystr

DEVICES = ("cpu", "gpu")


def xp_of(*values: Any) -> ModuleType:
    """The array module (numpy or cupy) holding the data of `values`, traced or not.

    A tracer's data is reached through `dnp.zeros_like`, a constant of the tracer's module
    (inside a transform itself a tracer, which `namespace_of` sees through).
    """
    raws = []
    for v in values:
        if hasattr(v, "shape") and hasattr(v, "dtype") and not _is_plain_array(v):
            v = dnp.zeros_like(v, shape=())
        raws.append(v)
    return namespace_of(tuple(raws))


def _is_plain_array(v: Any) -> bool:
    return type(v).__module__.partition(".")[0] in ("numpy", "cupy")


def check_rng(rng: Any, where: str) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            f"{where}: `rng` must be a numpy.random.Generator, got {type(rng).__name__} "
            f"{rng!r}; pass one explicitly, e.g. rng = np.random.default_rng(0)"
        )
    return rng


def check_device(device: Any, where: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"{where}: unknown device {device!r}; use 'cpu' (NumPy) or 'gpu' (CuPy)")
    return device


def place(array: np.ndarray, device: str, where: str) -> Any:
    """A NumPy array moved to `device` ('cpu': as is; 'gpu': a CuPy array on GPU 0)."""
    check_device(device, where)
    return array if device == "cpu" else to_device(array, "gpu")


def probability(value: Any, name: str, where: str) -> Any:
    """`value` after checking it is a real number in [0, 1]: a Python or NumPy number, a 0-d
    array, or a traced one (a dp.jit argument: the check is a guard of the recording; one
    per example under dp.vmap; differentiable), which is returned as it is."""
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    is_0d = kind is not None and kind in "fiu" and shape_of(value) == ()
    if isinstance(value, (bool, np.bool_)) or not (isinstance(value, (int, float)) or is_0d):
        raise TypeError(
            f"{where}: `{name}` must be a real number in [0, 1], got {type(value).__name__} "
            f"{value!r}"
        )
    inside = (value >= 0.0) & (value <= 1.0)
    if not (everywhere(inside) if hasattr(inside, "all") else inside):
        raise ValueError(f"{where}: `{name}` must be in [0, 1], got {value!r}")
    return value


def float_dtype(dtype: Any, where: str) -> np.dtype:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{where}: {dtype!r} is not a dtype; use e.g. np.float32") from None
    if dt.kind != "f":
        raise TypeError(
            f"{where}: parameters must have a floating dtype to be trained, got {dt}; "
            "use np.float32 (the default) or np.float64"
        )
    return dt


def pair(value: Any, name: str, where: str) -> tuple[int, int]:
    """An int or a pair of ints as a pair of positive ints."""
    values = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 for v in values):
        raise ValueError(
            f"{where}: `{name}` must be a positive int or a pair of them, got {value!r}"
        )
    return int(values[0]), int(values[1])


def path(root: str, *keys: Any) -> str:
    """`params['layers'][0]['W']` from 'params' and the keys."""
    return root + keystr(keys)


def leaf(params: Any, key: str, root: str, where: str) -> Any:
    """params[key], with an error naming the path and the keys present when it is missing."""
    if not isinstance(params, dict) or key not in params:
        have = sorted(params) if isinstance(params, dict) else type(params).__name__
        raise StructureError(
            f"{where}: {root} needs the key {key!r} (as built by the matching *_init "
            f"function), but has {have}"
        )
    return params[key]


def shape_of(x: Any) -> tuple[int, ...]:
    return tuple(getattr(x, "shape", np.shape(x)))


def int_labels(labels: Any, name: str, where: str) -> Any:
    """`labels` as an integer array on its own device (lists and numbers become NumPy arrays),
    after checking its dtype; nothing is copied between host and device."""
    if isinstance(labels, (list, tuple, int, np.integer)):
        labels = np.asarray(labels)
    if not hasattr(labels, "dtype"):
        raise TypeError(f"{where}: `{name}` must be an integer array, got {type(labels).__name__}")
    if labels.dtype.kind not in "iu":
        raise TypeError(
            f"{where}: `{name}` must hold integer class indices, got dtype {labels.dtype} "
            f"(shape {tuple(labels.shape)}); convert with labels.astype(int) (one-hot targets: "
            "take argmax over the class axis first)"
        )
    return labels


def out_of_range(labels: Any, n: int) -> list:
    """Up to 5 values of the NumPy integer array `labels` outside [0, n). CuPy labels are not
    checked here (reading them would synchronise with the GPU): the callers turn their
    out-of-range entries into NaN on the device instead. Under dp.vmap, every example's."""
    labels = all_examples(labels)
    if type(labels).__module__.startswith("cupy") or not labels.size:
        return []
    if labels.min() >= 0 and labels.max() < n:
        return []
    return labels[(labels < 0) | (labels >= n)][:5].tolist()
