"""Differentially private SGD (DP-SGD) on scikit-learn's digits, with dp.vmap.

DP-SGD needs each example's own gradient: it is clipped to norm at most C, the clipped
gradients are summed, Gaussian noise of scale sigma * C is added, and the sum is averaged.
`dp.vmap(dp.grad(loss), in_axes=(None, 0, 0))` gives all the per-example gradients of a
batch in one call: `loss` is written for one example, and every leaf of the result gets a
batch axis in front. The first batch is checked against a loop of dp.grad calls.

Run: python examples/dp_sgd_digits.py [--epochs 30] [--clip 1.0] [--noise 1.0] [--smoke]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits

import diffprog as dp
import diffprog.numpy as dnp


def loss(params, image, label):
    """Cross-entropy of one example: an image of 64 pixels, an integer label."""
    logits = dp.nn.mlp(params, image, activation=dp.nn.relu)
    return -dnp.log_softmax(logits)[label]


per_example_grads = dp.vmap(dp.grad(loss), in_axes=(None, 0, 0))


def clipped_noisy_mean(grads, clip, noise, rng):
    """DP-SGD's gradient: each example's gradient scaled to norm <= clip, summed, plus
    N(0, (noise * clip)^2) noise, divided by the batch size. Also each example's norm."""
    leaves, treedef = dp.tree.flatten(grads)
    batch = leaves[0].shape[0]
    norms = np.sqrt(sum(np.sum(g.reshape(batch, -1) ** 2, axis=1) for g in leaves))
    scale = np.minimum(1.0, clip / np.maximum(norms, 1e-12))
    noisy = [(np.tensordot(scale, g, axes=1) + noise * clip * rng.normal(size=g.shape[1:]))
             / batch for g in leaves]  # fmt: skip
    return dp.tree.unflatten(treedef, [n.astype(g.dtype) for n, g in zip(noisy, leaves)]), norms


def accuracy(params, images, labels):
    return float(np.mean(np.argmax(dp.nn.mlp(params, images, activation=dp.nn.relu), 1) == labels))


def main(epochs: int = 30, clip: float = 1.0, noise: float = 1.0, smoke: bool = False) -> float:
    digits = load_digits()
    images, labels = (digits.data / 16.0).astype(np.float32), digits.target
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))
    test, train = order[:360], order[360:]
    if smoke:
        train, epochs = train[:256], 1
    params = dp.nn.mlp_init(rng, [64, 64, 10])
    optimizer = dp.optim.adam(1e-2)
    state = optimizer.init(params)
    batch = 64

    first = per_example_grads(params, images[train[:8]], labels[train[:8]])
    looped = [dp.grad(loss)(params, images[i], labels[i]) for i in train[:8]]
    for g, *each in zip(dp.tree.leaves(first), *map(dp.tree.leaves, looped)):
        np.testing.assert_allclose(g, np.stack(each), rtol=1e-5, atol=1e-7)

    start = time.perf_counter()
    clipped = []
    for epoch in range(epochs):
        for b in range(0, len(train) - batch + 1, batch):
            idx = train[b : b + batch]
            grads = per_example_grads(params, images[idx], labels[idx])
            noisy, norms = clipped_noisy_mean(grads, clip, noise, rng)
            clipped.append(float(np.mean(norms > clip)))
            updates, state = optimizer.update(noisy, state, params)
            params = dp.optim.apply_updates(params, updates)
        train = rng.permutation(train)
    seconds = time.perf_counter() - start
    acc = accuracy(params, images[test], labels[test])
    print(f"DP-SGD (clip {clip}, noise multiplier {noise}, batch {batch}): {epochs} epoch(s) in "
          f"{seconds:.1f} s; {np.mean(clipped):.0%} of per-example gradients clipped; "
          f"test accuracy {acc:.3f}")  # fmt: skip
    return acc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--clip", type=float, default=1.0)
    parser.add_argument("--noise", type=float, default=1.0)
    parser.add_argument("--smoke", action="store_true", help="one short epoch")
    args = parser.parse_args()
    main(args.epochs, args.clip, args.noise, args.smoke)
