"""dp.distributed: collectives over pytrees, sharding, broadcast and failure behaviour.

Three ways this file runs:
- ``python -m pytest tests/test_distributed.py``: the single-process tests (with or without
  mpi4py: without it, diffprog falls back to a world of one process); where mpi4py and an
  ``mpiexec`` are installed, also the tests that launch 2-process jobs in a subprocess
  (a failing rank aborts the job; the example trains data-parallel).
- ``mpiexec -n 2 python -m pytest tests/test_distributed.py``: the same single-process tests on
  both ranks (every rank passes the same trees, so collectives return them unchanged) plus the
  tests marked ``two_ranks``: exact means and sums, bit-identical training equal to one
  process on the whole batch, broadcast, and mismatched trees across ranks.
A rank that stopped early would leave the other waiting in a collective: so every test makes
all its collective calls first and asserts afterwards (and .ci/run bounds the job's time).
"""

from __future__ import annotations

import collections
import importlib.util
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

import diffprog as dp
from diffprog.distributed import _trees
from diffprog.errors import StructureError, UnsupportedLeafError

ROOT = pathlib.Path(__file__).resolve().parents[1]
HAVE_MPI4PY = importlib.util.find_spec("mpi4py") is not None
RANK, WORLD = dp.distributed.init()
MPIEXEC = shutil.which("mpiexec", path=os.pathsep.join(
    [str(pathlib.Path(sys.executable).parent), os.environ.get("PATH", "")]))  # fmt: skip

two_ranks = pytest.mark.skipif(
    WORLD != 2,
    reason="needs 2 MPI processes: mpiexec -n 2 python -m pytest tests/test_distributed.py")
launches_jobs = pytest.mark.skipif(
    WORLD != 1 or not HAVE_MPI4PY or MPIEXEC is None,
    reason="needs mpi4py and mpiexec (pip install -e '.[mpi]'), outside an MPI job")

Pair = collections.namedtuple("Pair", "first second")


def clean_env() -> dict:
    """This environment without the variables of an MPI job this process may belong to."""
    prefixes = ("PMI_", "PMIX_", "OMPI_", "MPI_LOCAL", "HYDRA_")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


def same_on_every_rank(value) -> bool:
    """True on every rank iff every rank passed the same bytes (False on every rank if not)."""
    from mpi4py import MPI

    return len(set(MPI.COMM_WORLD.allgather(value))) == 1


def tree_bytes(tree) -> bytes:
    return b"".join(np.ascontiguousarray(x).tobytes() for x in dp.tree.leaves(tree)
                    if x is not None)


# ------------------------------------------------------------ any number of ranks


def test_importing_diffprog_does_not_import_mpi4py():
    code = "import sys, diffprog; assert 'mpi4py' not in sys.modules, 'mpi4py was imported'"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env=clean_env(), timeout=120)
    assert done.returncode == 0, done.stderr


def test_without_mpi4py_a_plain_process_is_a_world_of_one_and_a_launched_one_fails():
    code = ("import sys; sys.modules['mpi4py'] = None\n"  # makes `import mpi4py` fail
            "import numpy as np, diffprog as dp\n"
            "print(dp.distributed.init(), dp.distributed.allreduce_mean({'w': 2.0}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env=clean_env(), timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "(0, 1) {'w': 2.0}", done.stderr
    launched = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=False, timeout=120,
                              env={**clean_env(), "PMI_SIZE": "2", "PMI_RANK": "0"})
    assert launched.returncode != 0
    assert "ImportError: dp.distributed needs mpi4py" in launched.stderr
    assert "pip install -e '.[mpi]'" in launched.stderr


def test_allreduce_mean_keeps_structure_types_dtypes_and_passes_none():
    grads = {
        "b": np.arange(6, dtype=np.float32).reshape(2, 3).T,  # not contiguous
        "a": [0.25, None, np.float32(1.5)],
        "half": np.array([1.0, 2.5], dtype=np.float16),
        "pair": Pair(np.float64(3.0), np.array(4.0)),
        "empty": np.zeros((0, 3)),
        "complex": np.array([1 + 2j]),
    }
    out = dp.distributed.allreduce_mean(grads)
    assert list(out) == list(grads)  # the caller's key order
    assert dp.tree.structure(out) == dp.tree.structure(grads)
    assert type(out["a"][0]) is float and out["a"][0] == 0.25
    assert out["a"][1] is None
    assert type(out["a"][2]) is np.float32 and out["a"][2] == 1.5
    assert type(out["pair"]) is Pair and type(out["pair"].first) is np.float64
    for got, want in zip(dp.tree.leaves(out), dp.tree.leaves(grads)):
        if isinstance(want, np.ndarray):
            assert got.dtype == want.dtype and got.shape == want.shape
            np.testing.assert_array_equal(got, want)
            assert not np.shares_memory(got, want)
    np.testing.assert_array_equal(grads["b"], np.arange(6, dtype=np.float32).reshape(2, 3).T)


def test_allreduce_sum_takes_counts():
    out = dp.distributed.allreduce_sum({"correct": 7, "hist": np.array([1, 2], np.int32), "l": 0.5})
    assert out == {"correct": 7 * WORLD, "hist": out["hist"], "l": 0.5 * WORLD}
    assert type(out["correct"]) is int and out["hist"].dtype == np.int32
    np.testing.assert_array_equal(out["hist"], np.array([1, 2]) * WORLD)


@pytest.mark.parametrize("leaf, spelled", [
    (3, "a Python int"), (True, "a Python bool"), (np.arange(3), "a int64 array of shape (3,)"),
    ("relu", "a builtins.str"),
])  # fmt: skip
def test_allreduce_mean_refuses_constants_naming_the_path(leaf, spelled):
    with pytest.raises(UnsupportedLeafError) as info:
        dp.distributed.allreduce_mean({"layers": [{"W": np.ones(2), "x": leaf}]})
    message = str(info.value)
    assert f"the leaf at ['layers'][0]['x'] is {spelled}" in message
    assert "passes None through" in message


def test_allreduce_mean_refuses_traced_values():
    def f(w):
        dp.distributed.allreduce_mean({"w": w})
        return w

    with pytest.raises(UnsupportedLeafError, match=r"the leaf at \['w'\] is a value traced by "
                       r"dp.grad; .*call dp.distributed.allreduce_mean outside"):
        dp.grad(f)(1.0)
    with pytest.raises(UnsupportedLeafError, match=r"traced by dp.vmap; .*broadcast outside"):
        dp.vmap(dp.distributed.broadcast)(np.ones((2, 3)))


def test_collectives_inside_jit_run_eagerly_on_the_real_values():
    # They used to be refused as "a diffprog.ad.staging.StagingTracer" leaf ("give constants
    # None"); now the jitted step runs them on the real values, eagerly at every call.
    def step(w, x):
        w = dp.distributed.broadcast(w)
        grads = dp.grad(lambda w: ((x @ w) ** 2).sum())(w)
        return dp.distributed.allreduce_mean({"w": grads, "n": None})

    jitted = dp.jit(step)
    w = np.ones(3, np.float32)
    with pytest.warns(RuntimeWarning, match="called dp.distributed.broadcast, "
                      "dp.distributed.allreduce_mean while recording"):
        first = jitted(w, np.ones((2, 3), np.float32))
    second = jitted(w, np.full((2, 3), 2.0, np.float32))  # eager: the new data counts
    want_first, want_second = step(w, np.ones((2, 3), np.float32)), step(w, np.full((2, 3), 2.0, np.float32))
    assert first["n"] is None and first["w"].dtype == np.float32
    np.testing.assert_array_equal(first["w"], want_first["w"])
    np.testing.assert_array_equal(second["w"], want_second["w"])
    assert jitted.stats["eager_calls"] == 1 and jitted.stats["replays"] == 0


def test_shard_exact_and_covers_each_global_batch():
    order = np.random.default_rng(0).permutation(23)
    parts = [dp.distributed.shard(order, rank=r, world_size=3) for r in range(3)]
    np.testing.assert_array_equal(parts[1], order[1::3][:7])
    assert [len(p) for p in parts] == [7, 7, 7]  # 23 // 3: every rank takes as many steps
    local, batch = 2, 6  # a global batch of 6 is 2 per rank
    for s in range(7 // local):
        taken = np.concatenate([p[s * local : (s + 1) * local] for p in parts])
        assert sorted(taken) == sorted(order[s * batch : (s + 1) * batch])
    assert dp.distributed.shard(list(range(5)), rank=0, world_size=2) == [0, 2]
    mine = dp.distributed.shard(np.arange(10))
    np.testing.assert_array_equal(mine, np.arange(10)[RANK::WORLD][: 10 // WORLD])
    with pytest.raises(ValueError, match="need 0 <= rank < world_size, got rank=2"):
        dp.distributed.shard(order, rank=2, world_size=2)


def test_broadcast_of_equal_trees_and_a_bad_root():
    tree = {"p": {"w": np.arange(3.0)}, "opt": dp.optim.adam(0.1).init({"w": np.arange(3.0)}),
            "name": "run-1", "lr": 0.1}
    out = dp.distributed.broadcast(tree)
    assert dp.tree.structure(out) == dp.tree.structure(tree)
    assert tree_bytes(out) == tree_bytes(tree) and out["name"] == "run-1" and out["lr"] == 0.1
    with pytest.raises(ValueError, match=f"root must be a rank from 0 to {WORLD - 1}, got 5"):
        dp.distributed.broadcast(tree, root=5)


def test_guard_lets_the_error_through_in_a_world_of_one():
    if WORLD != 1:
        pytest.skip("in a job of several processes guard() aborts it")
    with pytest.raises(KeyError), dp.distributed.guard():
        raise KeyError("k")


def test_first_difference_names_the_path_and_both_values():
    a = ("{...}", [("['a']", ("dict",), ("float", "float64", ())),
                   ("['b']", ("dict",), ("array", "float32", (2,)))])
    missing = ("{...}", [("['b']", ("dict",), ("array", "float32", (2,)))])
    assert _trees.first_difference(a, missing, 1) == (
        "the trees differ across ranks, first at ['a']: rank 0 has a Python float there, "
        "rank 1 has nothing")
    longer = ("{...}", a[1] + [("['c']", ("dict",), ("none", "", ()))])
    assert "first at ['c']: rank 0 has nothing there, rank 3 has None" in (
        _trees.first_difference(a, longer, 3))


# ------------------------------------------------------------ two ranks


@two_ranks
def test_allreduce_exact_means_and_sums_on_two_ranks():
    r = RANK
    grads = {"W": np.full((2, 3), r + 1.0, np.float32), "b": None, "s": float(r),
             "x": np.arange(3.0) * r, "h": np.float16(r), "k": [np.float32(2 * r + 1)]}
    out = dp.distributed.allreduce_mean(grads)
    total = dp.distributed.allreduce_sum({"n": 10 * (r + 1), "a": np.array([r, 1], np.int32)})
    np.testing.assert_array_equal(out["W"], np.full((2, 3), 1.5, np.float32))
    assert out["W"].dtype == np.float32 and out["b"] is None
    assert type(out["s"]) is float and out["s"] == 0.5
    np.testing.assert_array_equal(out["x"], [0.0, 0.5, 1.0])
    assert type(out["h"]) is np.float16 and out["h"] == 0.5 and out["k"] == [np.float32(2.0)]
    assert total["n"] == 30 and total["a"].tolist() == [1, 2]


def loss_fn(params, x, labels):
    logits = dp.nn.mlp(params["mlp"], x, activation=dp.nn.tanh) * params["scale"]
    return dp.nn.softmax_cross_entropy(logits, labels)


@two_ranks
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
def test_two_ranks_on_half_batches_match_one_process_on_the_whole_batch(dtype, rtol):
    data = np.random.default_rng(1)
    steps, batch = 6, 16
    xs = data.standard_normal((steps, batch, 5)).astype(dtype)
    ys = data.integers(0, 3, size=(steps, batch))
    # a different initialization on each rank: broadcast makes rank 0's the start
    params = {"mlp": dp.nn.mlp_init(np.random.default_rng(10 + RANK), [5, 8, 3], dtype=dtype),
              "scale": 1.0, "frozen": True}  # fmt: skip
    opt = dp.optim.adam(0.05)
    params, state = dp.distributed.broadcast((params, opt.init(params)))
    reference = dp.tree.map(np.copy, params)
    ref_state = opt.init(reference)
    step = dp.value_and_grad(loss_fn)
    identical, trained = [], []
    for s in range(steps):
        mine = dp.distributed.shard(np.arange(batch))  # this rank's half of the batch
        _, grads = step(params, xs[s][mine], ys[s][mine])
        grads = dp.distributed.allreduce_mean(grads)
        updates, state = opt.update(grads, state, params)
        params = dp.optim.apply_updates(params, updates)
        identical.append(same_on_every_rank(tree_bytes((params, state))))
        _, whole = step(reference, xs[s], ys[s])
        updates, ref_state = opt.update(whole, ref_state, reference)
        reference = dp.optim.apply_updates(reference, updates)
        trained.append((grads, params, reference))
    assert identical == [True] * steps, "the ranks' parameters differ after some step"
    for s, (grads, params, reference) in enumerate(trained):
        assert grads["frozen"] is None and params["frozen"] is True
        assert type(params["scale"]) is float
        for got, want in zip(dp.tree.leaves(params), dp.tree.leaves(reference)):
            np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol, err_msg=f"step {s}")
    assert not np.allclose(trained[-1][1]["mlp"]["layers"][0]["W"],
                           trained[0][1]["mlp"]["layers"][0]["W"])  # it did train


@two_ranks
@pytest.mark.parametrize("root", [0, 1])
def test_broadcast_gives_every_rank_the_roots_values(root):
    params = {"w": np.full((2, 2), RANK, np.float32), "flags": np.array([RANK == 0, True]),
              "note": f"rank {RANK}", "lr": 0.1 * (RANK + 1), "n": np.int64(RANK)}
    state = dp.optim.adam(0.1).init(params["w"])
    out = dp.distributed.broadcast({"params": params, "state": state}, root=root)
    identical = same_on_every_rank(tree_bytes(out))
    assert out["params"]["note"] == f"rank {root}" and out["params"]["lr"] == 0.1 * (root + 1)
    np.testing.assert_array_equal(out["params"]["w"], np.full((2, 2), root, np.float32))
    assert out["params"]["w"].dtype == np.float32 and out["params"]["n"] == root
    np.testing.assert_array_equal(out["params"]["flags"], [root == 0, True])
    assert identical


@two_ranks
@pytest.mark.parametrize("mine, expected", [
    (lambda r: {"layers": [{"W": np.zeros((3, 2 + r))}]},
     ("first at ['layers'][0]['W']: rank 0 has a float64 array of shape (3, 2), "
      "rank 1 has a float64 array of shape (3, 3)")),
    (lambda r: {"a": np.zeros(2, np.float64 if r else np.float32), "b": 1.0},
     "first at ['a']: rank 0 has a float32 array of shape (2,), rank 1 has a float64 array"),
    (lambda r: {"w": 1.0, ("z" if r else "b"): 2.0},
     "first at ['b']: rank 0 has a Python float there, rank 1 has nothing"),
    (lambda r: {"w": [1.0, 2.0] if r else (1.0, 2.0)},
     "first at ['w'][0]: its containers are dict > tuple on rank 0 but dict > list on rank 1"),
    (lambda r: {"w": 1.0, "g": None if r else 2.0},
     "first at ['g']: rank 0 has a Python float, rank 1 has None"),
])  # fmt: skip
def test_mismatched_trees_raise_on_every_rank_naming_the_first_difference(mine, expected):
    raised = []
    for collective in (dp.distributed.allreduce_mean, dp.distributed.broadcast):
        try:
            collective(mine(RANK))
        except StructureError as e:
            raised.append(str(e))
    assert len(raised) == 2, f"no StructureError from {2 - len(raised)} collective(s)"
    for message in raised:
        assert expected in message
        assert "same structure, shapes and dtypes" in message


# ------------------------------------------------------------ jobs launched from here


@launches_jobs
@pytest.mark.parametrize("mode", ["guard", "uncaught"])
def test_a_failing_rank_aborts_the_job_showing_rank_and_error(mode):
    job = [MPIEXEC, "-n", "2", sys.executable, str(ROOT / "tests/distributed_job.py"), mode]
    started = time.monotonic()
    done = subprocess.run(job, capture_output=True, text=True, check=False, env=clean_env(),
                          timeout=120)
    assert time.monotonic() - started < 30, "rank 0 was left waiting instead of aborted"
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "got past the collective" not in output
    assert "rank 1: ValueError: rank 1 fails on purpose" in output, output
    assert "rank 1: Traceback (most recent call last):" in output
    assert "aborting all 2 processes (MPI_Abort) because rank 1 failed" in output


@launches_jobs
def test_example_trains_data_parallel_on_two_processes(tmp_path):
    if any(importlib.util.find_spec(m) is None for m in ("sklearn", "tqdm", "matplotlib")):
        pytest.skip("the example needs the examples extra: pip install -e '.[examples]'")
    done = subprocess.run([MPIEXEC, "-n", "2", sys.executable, str(ROOT / "examples/train_mlp.py"),
                           "--distributed", "--smoke", "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, check=False, env=clean_env(), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "data-parallel on 2 process(es): global batch 64 (32 per process)" in done.stdout
    assert done.stdout.count("test accuracy") == 1  # rank 0 reports, writes and reloads
    assert (tmp_path / "train_mlp.safetensors").exists()
