"""Static graphs (layer L3, beside ad/): `ir` (the graph a staging trace records), `passes`
(the optimizations run on it), `fusion` and `kernels` (groups of elementwise nodes run as one
numba loop each), `codegen` (the straight-line Python replay made from it)."""
