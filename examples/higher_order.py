"""Second-order derivatives over dict parameters: Newton's method with dp.hessian, and
Hessian-vector products with dp.hvp (no Hessian formed).

Run: python examples/higher_order.py
"""

import argparse

import numpy as np

import diffprog as dp
import diffprog.numpy as dnp


def loss(params):
    """A smooth, strictly convex function of a dict of a matrix and a scalar."""
    w, s = params["w"], params["s"]
    return dnp.sum(dnp.exp(0.3 * w) - w) + dnp.sum((w @ np.array([1.0, -2.0])) ** 2) + (s - 2.0) ** 4 + s**2


def ravel(params):
    """The dict's floating leaves as one vector, and the function that undoes it."""
    leaves, treedef = dp.tree.flatten(params)
    shapes = [np.shape(x) for x in leaves]
    sizes = [int(np.prod(s)) for s in shapes]

    def unravel(vector):
        parts = np.split(vector, np.cumsum(sizes)[:-1])
        rebuilt = [p.reshape(s) if s else float(p[0]) for p, s in zip(parts, shapes)]
        return dp.tree.unflatten(treedef, rebuilt)

    return np.concatenate([np.ravel(x) for x in leaves]), unravel


def hessian_matrix(f, params):
    """dp.hessian nests input structure in input structure; lay it out as a matrix."""
    H = dp.hessian(f)(params)
    leaves = dp.tree.leaves(params)
    sizes = [int(np.prod(np.shape(x))) for x in leaves]
    rows = []
    for row_key, row_leaf in zip(sorted(params), leaves):
        blocks = [np.reshape(H[row_key][col_key], (int(np.size(row_leaf)), n))
                  for col_key, n in zip(sorted(params), sizes)]  # fmt: skip
        rows.append(np.concatenate(blocks, axis=1))
    return np.concatenate(rows, axis=0)


def main(smoke: bool = False) -> dict:
    params = {"w": np.array([[0.5, -0.3], [1.0, 0.2]]), "s": 0.0}
    for step in range(3 if smoke else 8):
        g, _ = ravel(dp.grad(loss)(params))
        x, unravel = ravel(params)
        params = unravel(x - np.linalg.solve(hessian_matrix(loss, params), g))
        print(f"Newton step {step + 1}: loss = {float(loss(params)):.12f}, |grad| = {np.linalg.norm(g):.2e}")

    # A Hessian-vector product costs about one gradient, and agrees with the full Hessian.
    v = {"w": np.ones((2, 2)), "s": 1.0}
    value, (hv,) = dp.hvp(loss, (params,), (v,))
    dense = hessian_matrix(loss, params) @ ravel(v)[0]
    print("H v by dp.hvp:     ", np.round(ravel(hv)[0], 6))
    print("H v by the Hessian:", np.round(dense, 6))
    assert np.allclose(ravel(hv)[0], dense)
    return params


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a quick run for the tests")
    main(parser.parse_args().smoke)
