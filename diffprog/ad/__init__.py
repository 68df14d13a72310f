"""Transforms over the core: the tape and reverse sweep, forward mode, staging for dp.jit,
batching for dp.vmap (L3)."""
