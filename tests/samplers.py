"""Input samplers shared by the op tests: values away from kinks and singularities, so that
central differences see a smooth function."""

from __future__ import annotations

import numpy as np


def normal(rng, shape):
    return rng.normal(size=shape)


def positive(rng, shape):
    return rng.uniform(0.5, 2.0, size=shape)


def away_from_zero(rng, shape):
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.3, 1.5, size=shape)


def distinct(rng, shape):
    """Values at least 0.1 apart (max/min/sort stay put under a perturbation)."""
    n = int(np.prod(shape, dtype=int))
    values = np.linspace(-1.5, 1.5, max(n, 1)) + rng.uniform(-0.02, 0.02, size=max(n, 1))
    return rng.permutation(values)[:n].reshape(shape)


def make(rng, sampler, shape, dtype):
    """A sample as an array of `dtype`; a 0-d one arrives as a NumPy scalar, as users pass.
    A complex one has both parts drawn from `sampler` (positive parts for `positive`: away
    from the branch cuts of log and sqrt)."""
    x = sampler(rng, shape)
    if np.dtype(dtype).kind == "c":
        x = x + 1j * sampler(rng, shape)
    x = np.asarray(x, dtype=dtype)
    return x if shape else dtype(x)
