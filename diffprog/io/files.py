"""Checkpoint files on disk: only regular files, atomic writes, temporaries that name their writer.

Owns `check_regular` (a directory, FIFO, device or socket is refused before anything opens it:
opening a FIFO would block until a writer comes) and `write_atomically` (the safetensors bytes
go to a temporary in the target's folder, are synced, then renamed over the target; a reader
sees the old file or the new one, never a torn one). The temporary is named
``.{name}.{host}-{pid}.{random}.tmp`` so that a save can remove the temporaries of the same
target that killed saves left behind (same host, process gone) and never one that a live
process is still writing. The bytes are written here with ``os.write`` (safetensors' own
writer makes temporaries of its own that nothing could attribute, and hides the errno), so
any failure to write raises an OSError with its errno that names the user's path and says that
nothing was written; the temporary is removed on any exception, KeyboardInterrupt included.

Layer L6: imports diffprog.errors, numpy and the stdlib.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import socket
import stat
import struct
import tempfile
import zlib

import numpy as np

from ..errors import CheckpointError

__all__ = ["check_regular", "write_atomically"]

#: safetensors' names of the dtypes diffprog stores (complex128 travels as float64 pairs)
_DTYPES = {"bool": "BOOL", "int8": "I8", "uint8": "U8", "int16": "I16", "uint16": "U16",
           "int32": "I32", "uint32": "U32", "int64": "I64", "uint64": "U64", "float16": "F16",
           "float32": "F32", "float64": "F64", "complex64": "C64"}
_SPECIAL = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
            (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
            (stat.S_ISSOCK, "a socket"))
_CHUNK = 1 << 24  # bytes per os.write: a KeyboardInterrupt is seen between two chunks
_STEM = 100  # characters of the target's name kept in its temporaries' names


def check_regular(path: str, mode: int, what_then: str) -> None:
    """Raise if ``mode`` (of ``path``) is not a regular file's: IsADirectoryError for a
    directory, CheckpointError for a FIFO, device or socket; ``what_then`` ends the message."""
    for test, kind in _SPECIAL:
        if test(mode):
            message = f"{path} is {kind}, not a checkpoint file; {what_then}"
            if kind == "a directory":
                raise IsADirectoryError(errno.EISDIR, message)
            raise CheckpointError(message)


def write_atomically(path: str, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write a safetensors file with ``tensors`` (little-endian, C-contiguous) and
    ``metadata`` to ``path``: completely or not at all."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:  # missing: fine; a missing folder is reported below
        mode = stat.S_IFREG
    check_regular(path, mode, "dp.save does not replace it")
    folder = os.path.dirname(os.path.abspath(path))
    stem = os.path.basename(path)[:_STEM]
    host = _host()
    _remove_dead_temporaries(folder, stem, host)
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{stem}.{host}-{os.getpid()}.", suffix=".tmp",
                                    dir=folder)
    except OSError as e:
        raise _write_error(e, path) from None
    try:
        try:
            _write_safetensors(fd, tensors, metadata)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.chmod(temp, _mode_for(path))
        os.replace(temp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(e, OSError):
            raise _write_error(e, path) from None
        raise
    with contextlib.suppress(OSError, AttributeError):  # make the rename durable (POSIX)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def _write_safetensors(fd: int, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """The safetensors layout: the header's length (u64, little-endian), the JSON header
    (padded with spaces to 8 bytes), then the tensors' bytes back to back, the most aligned
    dtypes first so that every tensor is aligned (as safetensors' own writer does)."""
    order = sorted(tensors, key=lambda name: (-tensors[name].dtype.alignment, name))
    header: dict[str, object] = {"__metadata__": metadata}
    start = 0
    for name in order:
        a = tensors[name]
        header[name] = {"dtype": _DTYPES[a.dtype.name], "shape": list(a.shape),
                        "data_offsets": [start, start + a.nbytes]}
        start += a.nbytes
    text = json.dumps(header, ensure_ascii=False, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    _write_all(fd, struct.pack("<Q", len(text)) + text)
    for name in order:
        _write_all(fd, tensors[name].reshape(-1).view(np.uint8))


def _write_all(fd: int, data: object) -> None:
    view = memoryview(data)  # type: ignore[arg-type]
    while view:
        view = view[os.write(fd, view[:_CHUNK]):]


def _mode_for(path: str) -> int:
    """An overwritten file's mode is kept; a new file's follows the umask."""
    if os.path.exists(path):
        return stat.S_IMODE(os.stat(path).st_mode)
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


def _host() -> str:
    """This machine, in 8 hex digits: a pid means nothing on another host sharing the folder."""
    return f"{zlib.crc32(socket.gethostname().encode('utf-8', 'replace')):08x}"


def _remove_dead_temporaries(folder: str, stem: str, host: str) -> None:
    """Remove the temporaries of this target that processes of this host left when they died."""
    prefix = f".{stem}.{host}-"
    pattern = re.compile(re.escape(prefix) + r"([0-9]+)\.[a-z0-9_]+\.tmp")
    try:
        with os.scandir(folder) as entries:
            dead = [e.path for e in entries if e.name.startswith(prefix)
                    and (m := pattern.fullmatch(e.name)) and not _alive(int(m.group(1)))
                    and e.is_file(follow_symlinks=False)]
    except OSError:
        return  # a folder we cannot list: mkstemp will say what is wrong
    for name in dead:
        with contextlib.suppress(OSError):
            os.unlink(name)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` of this host may still be running (when unsure: yes)."""
    if pid <= 0 or pid == os.getpid() or os.name != "posix":  # Windows' os.kill terminates
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # EPERM: it exists, as another user's process
        return True
    return True


def _write_error(e: OSError, path: str) -> OSError:
    """``e`` (a failure while writing) as the error the user sees: same errno (and so the
    same OSError subclass), naming ``path`` rather than the temporary, and what to do."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        why = (f"{folder} is not a folder" if os.path.exists(folder) else
               f"the folder {folder} does not exist (dp.save does not create folders; "
               f"os.makedirs(folder, exist_ok=True) first)")
    else:
        why = e.strerror or str(e)
    message = (f"dp.save could not write the checkpoint: {why}; nothing was written, the "
               f"previous file (if any) is intact")
    if e.errno is None:
        return OSError(f"{message}: {path!r}")
    return OSError(e.errno, message, path)
