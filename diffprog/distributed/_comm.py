"""The communicator behind `dp.distributed`: MPI found lazily, or a world of one process.

Owns: the lazy import of mpi4py (importing diffprog never imports it), the module's
communicator and its rank and size, the fallback to a single process when mpi4py is not
installed and no MPI launcher started this process, and aborting the whole job when one
rank fails (`guard`, the excepthook installed by `init`).
Layer L6: imports the standard library and, inside functions only, mpi4py.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from types import TracebackType
from typing import Any

#: Variables MPI launchers set in every process they start, with the job's size.
_LAUNCHER_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "MPI_LOCALNRANKS")
#: MPI_Abort tears the job down at once, and the launcher may drop what a rank printed just
#: before; this pause lets it forward the traceback first.
_ABORT_DELAY_S = 0.5


class _State:
    comm: Any = None  # an mpi4py communicator; None: a single process without MPI
    rank = 0
    size = 1
    ready = False
    hook: Any = None  # the excepthook init() replaced, while ours is installed


_STATE = _State()


def _launched_size() -> int:
    """The job size an MPI launcher announced in the environment (1 if none did)."""
    for name in _LAUNCHER_SIZE_VARS:
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value)
    return 1


def mpi() -> Any:
    """mpi4py's `MPI` module, imported (and MPI initialized) on first use."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(
            "dp.distributed needs mpi4py and an MPI library to run on more than one process: "
            "pip install -e '.[mpi]' (mpi4py and MPICH), or mpi4py built against your "
            f"cluster's MPI ({e})"
        ) from None
    return MPI


def init(comm: Any = None, *, abort_on_error: bool = True) -> tuple[int, int]:
    """Start (or join) the job and return ``(rank, world_size)``.

    Uses mpi4py's ``COMM_WORLD`` (or the communicator ``comm``). Without mpi4py, a process
    that no MPI launcher started is a world of one (rank 0 of 1), so the same script runs
    with plain ``python``. With ``abort_on_error`` and more than one process, an uncaught
    exception on any rank prints ``rank R: <traceback>`` and aborts every rank (instead of
    leaving the others waiting forever in a collective). Calling it again re-initializes
    with the given communicator.

    >>> dp.distributed.init()
    (0, 1)
    """
    if comm is None:
        try:
            comm = mpi().COMM_WORLD
        except ImportError:
            if _launched_size() > 1:
                raise
            comm = None
    _STATE.comm = comm
    _STATE.rank = 0 if comm is None else comm.Get_rank()
    _STATE.size = 1 if comm is None else comm.Get_size()
    _STATE.ready = True
    if abort_on_error and _STATE.size > 1 and _STATE.hook is None:
        _STATE.hook = sys.excepthook
        sys.excepthook = _abort_hook
    elif not abort_on_error and _STATE.hook is not None:
        sys.excepthook, _STATE.hook = _STATE.hook, None
    return _STATE.rank, _STATE.size


def state() -> _State:
    if not _STATE.ready:
        init()
    return _STATE


def rank() -> int:
    """This process's rank, 0 to ``world_size() - 1`` (initializes on first use).

    >>> dp.distributed.rank()
    0
    """
    return state().rank


def world_size() -> int:
    """How many processes take part (1 without MPI; initializes on first use).

    >>> dp.distributed.world_size()
    1
    """
    return state().size


def abort(exc: BaseException | None = None, code: int = 1) -> None:
    """Print ``rank R: <traceback of exc>`` to stderr and end every rank of the job."""
    st = state()
    lines = traceback.format_exception(type(exc), exc, exc.__traceback__) if exc else []
    text = "".join(lines).rstrip("\n").splitlines() + [
        f"aborting all {st.size} processes (MPI_Abort) because rank {st.rank} failed"]
    sys.stdout.flush()
    sys.stderr.write("".join(f"rank {st.rank}: {line}\n" for line in text))
    sys.stderr.flush()
    if st.comm is not None:
        time.sleep(_ABORT_DELAY_S)  # let the launcher forward this output before it kills us
        st.comm.Abort(code)  # MPICH's may return before the launcher ends this process
    os._exit(code)


def _abort_hook(kind: type, exc: BaseException, tb: TracebackType | None) -> None:
    if _STATE.size > 1 and not issubclass(kind, KeyboardInterrupt):
        abort(exc.with_traceback(tb))
    (_STATE.hook or sys.__excepthook__)(kind, exc, tb)


class guard:
    """A context manager and decorator: an exception inside it on any rank prints
    ``rank R: <traceback>`` and aborts the whole job, so no rank waits forever for a
    failed one. In a world of one process the exception propagates unchanged.

    >>> with dp.distributed.guard():
    ...     loss = 0.5
    >>> @dp.distributed.guard()
    ... def step(x):
    ...     return 2 * x
    >>> step(3)
    6
    """

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        if exc is not None and state().size > 1 and not isinstance(exc, GeneratorExit):
            abort(exc)
        return False

    def __call__(self, fn: Any) -> Any:
        import functools

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return fn(*args, **kwargs)

        return wrapper
