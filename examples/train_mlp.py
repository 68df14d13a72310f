"""Train an MLP, given as nested dict params, on scikit-learn's handwritten digits.

1,797 8x8 images, a held-out test split, Adam, a progress bar, a loss/accuracy plot and a
checkpoint saved and reloaded. Reaches >= 97% test accuracy in well under a minute on 2 CPU
cores.

Run: python examples/train_mlp.py [--epochs 40] [--device cpu|gpu] [--out-dir DIR] [--smoke]
Data-parallel on N processes (pip install -e ".[mpi]"):
     mpiexec -n N python examples/train_mlp.py --distributed
each process takes batch-size / N of every batch and the gradients are averaged with
dp.distributed.allreduce_mean, so every process ends each step with the same parameters.
"""

from __future__ import annotations

import argparse
import contextlib
import pathlib
import time

import numpy as np
from sklearn.datasets import load_digits
from tqdm import tqdm

import diffprog as dp


def load_data(seed: int) -> tuple[np.ndarray, ...]:
    """Digits as float32 in [0, 1], split 80/20 into train and test, stratified by class."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), dtype=bool)
    for label in range(10):
        members = np.flatnonzero(y == label)
        test[rng.choice(members, size=len(members) // 5, replace=False)] = True
    return x[~test], y[~test], x[test], y[test]


def loss_fn(params, x, labels):
    logits = dp.nn.mlp(params, x, activation=dp.nn.relu)
    return dp.nn.softmax_cross_entropy(logits, labels)


def evaluate(params, x, labels) -> float:
    return dp.nn.accuracy(dp.nn.mlp(params, x, activation=dp.nn.relu), labels)


def plot(history: dict, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(history["epoch"], history["loss"], marker=".")
    ax_loss.set(xlabel="epoch", ylabel="mean training loss", yscale="log", title="loss")
    ax_acc.plot(history["epoch"], history["test_accuracy"], marker=".", color="tab:green")
    ax_acc.set(xlabel="epoch", ylabel="test accuracy", title="held-out accuracy", ylim=(0.8, 1.0))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--out-dir", type=pathlib.Path, default=pathlib.Path("train_mlp_output"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--smoke", action="store_true", help="1 epoch on a subset, for tests")
    parser.add_argument("--distributed", action="store_true",
                        help="data-parallel over the processes of mpiexec -n N (needs mpi4py)")
    args = parser.parse_args(argv)
    rank, world = dp.distributed.init() if args.distributed else (0, 1)
    if args.batch_size % world:
        parser.error(f"--batch-size {args.batch_size} must be a multiple of the {world} "
                     "processes")
    local_batch = args.batch_size // world
    if args.smoke:
        args.epochs = 1
    args.out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    x_train, y_train, x_test, y_test = load_data(args.seed)
    if args.smoke:
        x_train, y_train = x_train[:256], y_train[:256]
    data = dp.to_device((x_train, y_train, x_test, y_test), args.device)
    x_train, y_train, x_test, y_test = data
    rng = np.random.default_rng(args.seed)
    params = dp.nn.mlp_init(rng, [64, 128, 64, 10], dtype=np.float32, device=args.device)
    optimizer = dp.optim.adam(args.lr)
    state = optimizer.init(params)
    if args.distributed:  # every rank starts from rank 0's bits
        params, state = dp.distributed.broadcast((params, state))
    step = dp.value_and_grad(loss_fn)
    guard = dp.distributed.guard if args.distributed else contextlib.nullcontext
    step_seconds: list[float] = []  # each training step, and the allreduce within it
    comm_seconds: list[float] = []
    samples_after_first_epoch = 0  # the throughput leaves out the warm-up of epoch 1

    history: dict = {"epoch": [], "loss": [], "test_accuracy": []}
    per_rank = len(y_train) // world
    batches_per_epoch = int(np.ceil(per_rank / local_batch))
    with tqdm(total=args.epochs * batches_per_epoch, unit="step",
              disable=None if rank == 0 else True) as bar:
        for epoch in range(1, args.epochs + 1):
            order = rng.permutation(len(y_train))  # the same on every rank: the same seed
            if args.distributed:
                order = dp.distributed.shard(order)  # this rank's share of every batch
            losses = []
            for start in range(0, len(order), local_batch):
                batch = order[start : start + local_batch]
                tick = time.perf_counter()
                with guard():  # under --distributed, an error on one rank ends them all
                    loss, grads = step(params, x_train[batch], y_train[batch])
                    if args.distributed:
                        sent = time.perf_counter()
                        grads = dp.distributed.allreduce_mean(grads)
                        comm_seconds.append(time.perf_counter() - sent)
                    updates, state = optimizer.update(grads, state, params)
                    params = dp.optim.apply_updates(params, updates)
                step_seconds.append(time.perf_counter() - tick)
                if epoch > 1:
                    samples_after_first_epoch += len(batch) * world
                losses.append(float(loss))
                bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.4f}")
                bar.update()
            epoch_loss = float(np.mean(losses))
            if args.distributed:  # the mean over ranks of their mean losses
                epoch_loss = dp.distributed.allreduce_mean(epoch_loss)
            history["epoch"].append(epoch)
            history["loss"].append(epoch_loss)
            history["test_accuracy"].append(evaluate(params, x_test, y_test))

    accuracy = history["test_accuracy"][-1]
    if args.distributed and rank == 0:
        later = sum(step_seconds[batches_per_epoch:])
        rate = f"{samples_after_first_epoch / later:.0f} samples/s" if later else "-"
        print(f"data-parallel on {world} process(es): global batch {args.batch_size} "
              f"({local_batch} per process), {rate} in training steps after the first epoch; "
              f"per step (median) {1e3 * np.median(step_seconds):.3f} ms, of which "
              f"{1e3 * np.median(comm_seconds):.3f} ms in allreduce_mean")
    if rank != 0:  # the other ranks hold the same parameters; rank 0 writes the outputs
        return accuracy
    plot(history, args.out_dir / "train_mlp.png")

    # A checkpoint of everything needed to resume: params, optimizer state, progress.
    checkpoint = args.out_dir / "train_mlp.safetensors"
    dp.save(checkpoint, {"params": dp.to_device(params, "cpu"),
                         "opt_state": dp.to_device(state, "cpu"), "epoch": args.epochs})  # fmt: skip
    restored = dp.load(checkpoint)
    reloaded = dp.to_device(restored["params"], args.device)
    assert restored["epoch"] == args.epochs
    assert evaluate(reloaded, x_test, y_test) == accuracy, "the checkpoint changed the model"

    seconds = time.perf_counter() - started
    print(f"test accuracy {accuracy:.4f} after {args.epochs} epochs in {seconds:.1f} s "
          f"({args.device}); plot {args.out_dir / 'train_mlp.png'}, checkpoint {checkpoint} "
          "(reloaded: same accuracy)")  # fmt: skip
    if not args.smoke:
        assert accuracy >= 0.97, f"test accuracy {accuracy:.4f} is below 0.97"
    return accuracy


if __name__ == "__main__":
    main()
