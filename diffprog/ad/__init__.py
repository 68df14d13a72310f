"""Automatic differentiation over the core: the tape and reverse sweep, forward mode (L3)."""
