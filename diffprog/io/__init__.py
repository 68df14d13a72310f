"""Checkpoints: ``save(path, tree)`` and ``load(path, like=...)`` in the safetensors format.

Owns the public calls; the format is `codec` (a pytree as tensors plus a JSON description, no
pickle), the files are `files` (regular files only, atomic writes, temporaries that name
their writer, write errors that keep their errno) and loading into a given structure is
`like`. Inside dp.jit both run at every call, on the real values: the signature runs eagerly
(a replay would not read or write the file).

Layer L6: imports diffprog.tree, .errors, .backend, ad.staging (note_side_effect), numpy,
safetensors and the stdlib.
"""

from __future__ import annotations

import os
from typing import Any

import safetensors

from .. import tree as tree_util
from ..ad.staging import concrete, note_side_effect
from ..backend import to_device
from ..errors import CheckpointError
from .codec import FORMAT_VERSION, decode, encode
from .files import check_regular, write_atomically
from .like import fit

__all__ = ["FORMAT_VERSION", "CheckpointError", "load", "save"]


def save(path: str | os.PathLike, tree: Any) -> None:
    """Write ``tree`` to ``path`` (a safetensors file), atomically.

    The folder must exist (it is not created). The file is written to a temporary in that
    folder, then renamed over ``path``: a reader sees the old checkpoint or the new one. If
    writing fails (disk full, a missing folder...), an OSError with the system's errno names
    ``path``, nothing was written and the old checkpoint is intact. A temporary left by a save
    that was killed is removed by the next save of the same file once its process is gone.
    A path that is a directory, FIFO or device is refused, never replaced.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.safetensors")
    >>> dp.save(path, {"w": np.arange(3.0), "step": 7, "opt": (None, 0.5)})
    >>> dp.load(path)
    {'w': array([0., 1., 2.]), 'step': 7, 'opt': (None, 0.5)}
    """
    path = os.fspath(path)
    if note_side_effect("dp.save"):  # under dp.jit: a replay would not write the file
        tree = tree_util.map(concrete, tree)  # (so the call runs eagerly: save the values)
    tensors, metadata = encode(tree, f"save({path!r})")
    write_atomically(path, tensors, metadata)


def load(path: str | os.PathLike, device: str | None = None, *, like: Any = None) -> Any:
    """Read a tree written by :func:`save`: same containers, key order, dtypes and bits.

    Arrays come back as NumPy arrays, or on ``device`` ("cpu", "gpu", "gpu:N") if given.
    A damaged or foreign file raises :class:`CheckpointError` and runs no code from the file;
    a directory, FIFO or device is refused before it is opened.

    With ``like=tree`` (e.g. freshly initialized params, or an optimizer state) the result
    has exactly ``like``'s structure: its container types and dict key order, Python floats
    where it has Python floats, and each array on the device of ``like``'s array (NumPy or
    the same GPU). The file must match it: the same keys, lengths and kinds of containers
    and leaves, and arrays of the same dtypes and shapes; the first difference raises
    :class:`~diffprog.StructureError` naming its key path and both sides. ``like`` and
    ``device`` are not given together.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.safetensors")
    >>> dp.save(path, {"w": np.ones(2, "float32"), "b": 0.5})
    >>> dp.load(path, like={"b": 0.0, "w": np.zeros(2, "float32")})
    {'b': 0.5, 'w': array([1., 1.], dtype=float32)}
    >>> dp.load(path, like={"b": 0.0, "w": np.zeros(3, "float32")})
    Traceback (most recent call last):
    diffprog.errors.StructureError: ... at ['w']: the file has a float32 array of shape (2,), ...
    """
    path = os.fspath(path)
    if note_side_effect("dp.load"):  # under dp.jit: a replay would return what this read
        like = tree_util.map(concrete, like)  # (so the call runs eagerly)
    if like is not None and device is not None:
        raise ValueError("dp.load: give like= or device=, not both (with like=, each array "
                         "goes to the device of its like leaf)")
    check_regular(path, os.stat(path).st_mode, "dp.load reads checkpoint files only")
    with open(path, "rb"):  # an unreadable file raises its usual OSError
        pass
    try:
        handle = safetensors.safe_open(path, framework="numpy")
    except Exception as e:  # noqa: BLE001 - the Rust parser raises SafetensorError and others
        raise CheckpointError(f"{path}: not a valid safetensors file ({e})") from None
    with handle as f:
        result = decode(path, f, warn=like is None)
    if like is not None:
        return fit(result, like, path)
    return result if device is None else to_device(result, device)
