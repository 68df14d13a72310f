"""A short tour: the gradient of a function of a nested dict, with a loop and an if.

Run: python examples/tour.py
"""

import numpy as np

import diffprog as dp
import diffprog.numpy as dnp


def loss(params, x, y, l2=1e-3):
    """A two-layer network written as plain Python over a nested dict of parameters."""
    h = x
    for layer in params["layers"]:  # a loop over a list of dicts
        h = dnp.tanh(h @ layer["W"] + layer["b"])
    pred = params["scale"] * (h @ params["head"]["w"])
    err = pred - y
    if params["robust"]:  # an if on a constant (bool) leaf: Huber, else squared error
        err = dnp.where(abs(err) < 1.0, 0.5 * err**2, abs(err) - 0.5)
    else:
        err = 0.5 * err**2
    return dnp.mean(err) + l2 * sum(dnp.sum(layer["W"] ** 2) for layer in params["layers"])


rng = np.random.default_rng(0)
params = {
    "layers": [
        {"W": rng.normal(size=(3, 4)), "b": np.zeros(4)},
        {"W": rng.normal(size=(4, 4)), "b": np.zeros(4)},
    ],
    "head": {"w": rng.normal(size=4)},
    "scale": 1.0,  # a Python float: its adjoint is a Python float
    "robust": True,  # a bool leaf: a constant, its adjoint is None
}
x, y = rng.normal(size=(8, 3)), rng.normal(size=8)

value, grads = dp.value_and_grad(loss)(params, x, y)
print(f"loss = {float(value):.6f}")
for path, g in dp.tree.flatten_with_path(grads)[0]:
    shown = g if g is None or isinstance(g, float) else f"{type(g).__name__} {g.shape} {g.dtype}"
    print(f"  d loss / d params{dp.tree.keystr(path):20} {shown}")
print("  d loss / d params['head']['w'] =", np.round(grads["head"]["w"], 4))

# The gradient has exactly the structure of params: same containers, keys and order.
assert list(grads) == list(params) and grads["robust"] is None

# One step of gradient descent lowers the loss.
step = dp.tree.map(lambda p, g: p if g is None else p - 0.1 * g, params, grads)
print(f"after one step: loss = {float(loss(step, x, y)):.6f}")

# Second order through graph extension: d/dx of (d/dx x^3) = 6x.
print("d2/dx2 x**3 at 2.0 =", dp.grad(dp.grad(lambda x: x**3))(2.0))
