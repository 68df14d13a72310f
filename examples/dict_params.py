"""Differentiate a function of a dict that mixes floats, arrays, ints and strings.

The gradient has exactly the structure of the dict: floats get float gradients, arrays get
arrays of the same shape and dtype, and the int and str entries (constants) get None.

Run: python examples/dict_params.py
"""

import argparse

import numpy as np

import diffprog as dp
import diffprog.numpy as dnp


def energy(params):
    """A spring chain: `n_springs` and `name` steer the computation but are not differentiated."""
    positions = params["positions"]
    total = 0.0
    for i in range(params["n_springs"]):  # an int leaf used as a loop bound
        stretch = positions[i + 1] - positions[i] - params["rest_length"]
        total = total + 0.5 * params["stiffness"][i] * stretch**2
    if params["name"] == "with gravity":  # a str leaf used in an if
        total = total + params["g"] * dnp.sum(positions)
    return total


def main(smoke: bool = False) -> dict:
    params = {
        "name": "with gravity",
        "n_springs": 3,
        "positions": np.array([0.0, 1.2, 1.9, 3.1]),
        "stiffness": np.array([10.0, 12.0, 8.0], dtype=np.float32),
        "rest_length": 1.0,
        "g": 9.81,
    }
    value, grads = dp.value_and_grad(energy)(params)
    print(f"energy = {float(value):.4f}")
    for path, g in dp.tree.flatten_with_path(grads)[0]:
        kind = "None (a constant)" if g is None else f"{type(g).__name__} {np.round(g, 4)}"
        print(f"  d energy / d params{dp.tree.keystr(path):16} = {kind}")
    assert list(grads) == list(params) and grads["name"] is None and grads["n_springs"] is None
    assert grads["stiffness"].dtype == np.float32 and isinstance(grads["g"], float)
    return grads


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a quick run for the tests")
    main(parser.parse_args().smoke)
