"""The exception types diffprog raises on purpose.

Owns: one class per kind of user mistake, so callers can catch them precisely. Every class
subclasses the builtin a user would expect (TypeError, ValueError, RuntimeError), so code that
catches those keeps working. Layer L0: imports nothing from diffprog.
"""

from __future__ import annotations


class DiffprogError(Exception):
    """Base class of every error diffprog raises on purpose."""


class EscapedTracerError(DiffprogError, RuntimeError):
    """A traced value was used after the transform that created it returned."""


class NonScalarOutputError(DiffprogError, TypeError):
    """`grad` was asked to differentiate an output that is not a real scalar."""


class UnsupportedLeafError(DiffprogError, TypeError):
    """A leaf in a differentiated position has a type diffprog cannot differentiate."""


class TracerConversionError(DiffprogError, TypeError):
    """A traced value was about to leave the tape (np.asarray, a NumPy function we lack...)."""


class UnsupportedKeywordError(DiffprogError, TypeError, NotImplementedError):
    """A function got a keyword argument (one of NumPy's) that diffprog does not implement,
    or a value of one it does not implement (`dtype=` of a reduction): a TypeError, as for
    an unknown keyword, and a NotImplementedError."""


class StructureError(DiffprogError, ValueError):
    """Two pytrees that must have the same structure (or shapes) do not."""


class DeviceMismatchError(DiffprogError, ValueError):
    """One operation was given arrays that live on different devices."""


class NonFiniteError(DiffprogError, FloatingPointError):
    """Under dp.debug_nans(), an operation produced a NaN or an infinity from finite inputs."""


class CheckpointError(DiffprogError, ValueError):
    """A checkpoint file is truncated, corrupted, foreign or malicious; nothing was executed."""


class BatchedControlFlowError(DiffprogError, TypeError):
    """Under dp.vmap, Python control flow (`if x > 0`, bool(x), int(x)) met a value that
    differs between examples: one branch cannot be chosen for all of them."""
