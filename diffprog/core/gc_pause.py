"""Pausing Python's cyclic garbage collector while a tape is alive, without ever leaking it.

A tape creates many container objects and no reference cycles; with the collector running,
its passes walk every record of a live tape (12-40 ms per pass over a 100,000-op tape, about
a third of the per-op cost). So automatic collection pauses:

- for a block: `with gc_paused():` (a recording, a sweep, dp.grad's whole call);
- from a recording to its pullback: `Hold()`, made before the recording's own pause ends
  and kept by the pullback (dp.vjp's vjp_fn, a closed dp.Tape). A hold ends when released
  (the pullback's first sweep has returned or raised) or freed (the pullback dropped), and
  holds never keep the collector paused for more than `GRACE` seconds in a row: a watchdog
  thread then releases every hold, so pullbacks kept and never called (or a loop that
  always has one pending) cannot keep cyclic garbage from being collected.

Pauses nest across calls and threads; collection resumes when the last one ends (in a forked
child, at once: the parent's other threads are not there to end theirs). A pause
sets the automatic-collection threshold to 0 rather than calling gc.disable(): the
user's gc.enable()/gc.disable() stay theirs, gc.collect() still runs, and on resume the
threshold is restored only if it is still 0 (a user's gc.set_threshold meanwhile wins).
Layer L2: imports the standard library only.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
import time
from typing import Any

#: the longest stretch, in seconds, for which holds keep the collector paused (a pass over a
#: live tape costs milliseconds)
GRACE = 1.0

_lock = threading.RLock()  # re-entrant: a hold may be freed (and release itself) under it
_wake = threading.Condition(_lock)
_pauses = 0
_saved_threshold = 0  # the threshold the first pause replaced (0: collection was off already)
_held = 0  # how many holds are held
_held_since: float | None = None  # when _held last went from 0 to 1
_epoch = 0  # counts the watchdog's releases: a hold made before the last one is released
_watchdog: threading.Thread | None = None
_watchdog_idle = False


def _pause() -> None:  # with _lock held
    global _pauses, _saved_threshold
    if _pauses == 0:
        _saved_threshold = gc.get_threshold()[0]
        if _saved_threshold:
            gc.set_threshold(0)
    _pauses += 1


def _resume() -> None:  # with _lock held
    global _pauses
    if _pauses == 0:  # the end of a block entered before a fork, in the child (see below)
        return
    _pauses -= 1
    if _pauses == 0 and _saved_threshold and gc.get_threshold()[0] == 0:
        gc.set_threshold(_saved_threshold)


class gc_paused:  # noqa: N801 - used like a function: `with gc_paused():`
    """Pause automatic collection for a block. A class, not a generator context manager: it
    is entered several times per gradient."""

    __slots__ = ()

    def __enter__(self) -> None:
        with _lock:
            _pause()

    def __exit__(self, *exc: Any) -> None:
        with _lock:
            _resume()


class Hold:
    """A pause handed from a recording to its pullback; see the module docstring.

    >>> from diffprog.core.gc_pause import Hold
    >>> hold = Hold()  # before the recording's own pause ends
    >>> hold.release()  # when the pullback has swept (again: no effect)
    """

    __slots__ = ("epoch",)  # the watchdog epoch it was made in; None once released

    def __init__(self) -> None:
        global _held, _held_since, _watchdog
        with _lock:
            _pause()
            self.epoch = _epoch
            _held += 1
            if _held == 1:
                _held_since = time.monotonic()
                if _watchdog is None:
                    _watchdog = threading.Thread(target=_watch, name="diffprog-gc", daemon=True)
                    _watchdog.start()
                elif _watchdog_idle:
                    _wake.notify()

    def release(self) -> None:
        global _held, _held_since
        with _lock:
            if self.epoch != _epoch:  # released already, by itself or the watchdog
                return
            self.epoch = None
            _held -= 1
            if _held == 0:
                _held_since = None
            _resume()

    def __del__(self) -> None:
        if not sys.is_finalizing():  # at exit the watchdog, a daemon thread, may have been
            self.release()  # stopped holding _lock: waiting for it would hang the exit


def _watch() -> None:
    """The watchdog: once holds have kept the collector paused for GRACE seconds, release
    them all."""
    global _watchdog_idle
    with _lock:
        while True:
            _watchdog_idle = _held_since is None
            if _watchdog_idle:
                _wake.wait()
                continue
            delay = _held_since + GRACE - time.monotonic()
            if delay > 0:
                _wake.wait(delay)
                continue
            _release_all()


def _release_all() -> None:  # with _lock held
    global _epoch, _held, _held_since
    _epoch += 1
    for _ in range(_held):
        _resume()
    _held, _held_since = 0, None


def _after_fork_in_child() -> None:
    """A forked child has neither the watchdog nor the parent's other threads, whose pauses
    (recordings, sweeps) would never end there: start unpaused, every inherited hold
    released. A block the forking thread itself was in may end a pause of the child's early
    (collection resumes sooner, never later)."""
    global _lock, _wake, _watchdog, _pauses
    _lock = threading.RLock()
    _wake = threading.Condition(_lock)
    _watchdog = None
    _release_all()
    if _pauses and _saved_threshold and gc.get_threshold()[0] == 0:
        gc.set_threshold(_saved_threshold)
    _pauses = 0


os.register_at_fork(after_in_child=_after_fork_in_child)
