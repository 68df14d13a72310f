"""A small convolutional network on scikit-learn's 8x8 digits, as nested structures.

The model is a list of layer dicts (conv, conv, dense), trained with Adam; the convolutions
are dp.nn.conv2d (im2col) and every gradient has the model's exact structure.

Run: python examples/cnn_digits.py [--epochs 15] [--smoke]
"""

import argparse
import time

import numpy as np
from sklearn.datasets import load_digits

import diffprog as dp


def init(rng):
    return {
        "convs": [dp.nn.conv2d_init(rng, 1, 8, 3), dp.nn.conv2d_init(rng, 8, 16, 3)],
        "head": dp.nn.dense_init(rng, 16 * 2 * 2, 10),
    }


def forward(model, images):
    h = images  # (batch, 1, 8, 8)
    for conv in model["convs"]:
        h = dp.nn.relu(dp.nn.conv2d(conv, h, padding="same"))
        h = dp.nn.max_pool2d(h, 2)  # 8x8 -> 4x4 -> 2x2
    return dp.nn.dense(model["head"], dp.nn.flatten(h))


def loss_fn(model, images, labels):
    return dp.nn.softmax_cross_entropy(forward(model, images), labels)


def main(smoke: bool = False, epochs: int = 15) -> float:
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]  # NCHW
    labels = digits.target
    rng = np.random.default_rng(0)
    order = rng.permutation(len(labels))
    test, train = order[:360], order[360:]
    if smoke:
        train, epochs = train[:128], 1

    model = init(rng)
    optimizer = dp.optim.adam(3e-3)
    state = optimizer.init(model)
    step = dp.value_and_grad(loss_fn)
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        losses = []
        for start in range(0, len(train), 64):
            batch = rng.permutation(train)[:64] if smoke else train[start : start + 64]
            loss, grads = step(model, images[batch], labels[batch])
            updates, state = optimizer.update(grads, state, model)
            model = dp.optim.apply_updates(model, updates)
            losses.append(float(loss))
        rng.shuffle(train)
        accuracy = dp.nn.accuracy(forward(model, images[test]), labels[test])
        print(f"epoch {epoch:2d}: loss {np.mean(losses):.4f}, test accuracy {accuracy:.4f}")
    print(f"{time.perf_counter() - started:.1f} s; the gradient of the model has its structure:",
          {k: type(v).__name__ for k, v in grads.items()})  # fmt: skip
    if not smoke:
        assert accuracy >= 0.95, accuracy
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--smoke", action="store_true", help="a quick run for the tests")
    args = parser.parse_args()
    main(args.smoke, args.epochs)
