"""The core of the tracer: traces, tracers, primitives, `bind`, symbolic zeros (layer L2)."""
