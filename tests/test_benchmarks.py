"""The benchmark harness (benchmarks/run.py) runs end to end and verifies what it times.

A smoke test, not a performance test: `run.py --tiny` on W1, W2, W3 and W5 in a subprocess,
then every implementation's output must have passed verification against the hand-written
one and the JSON must be complete. Timings are never asserted. The hand-written formulas the
harness trusts as references are checked here against closed forms / finite differences.
"""

import importlib.util
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks")
# Loaded by path under a private name: benchmarks/ is not put on sys.path for the session.


def _load(name):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", os.path.join(BENCH, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


workloads, harness = _load("workloads"), _load("harness")


@pytest.fixture(scope="module")
def run_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    cmd = [sys.executable, os.path.join(BENCH, "run.py"), "--tiny", "--workloads",
           "W1,W2,W3,W5", "--out", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out / "latest.json") as f:
        return json.load(f), proc.stdout, out


def test_every_implementation_verified(run_result):
    result, stdout, _ = run_result
    rows = result["rows"]
    assert {r["workload"] for r in rows} == {"W1", "W2", "W3", "W5"}
    for r in rows:
        assert r["status"] in ("ok", "n/a"), r
        if r["status"] == "ok":
            assert r["max_rel_err"] <= 1e-6, r
            assert r["seconds"] > 0 and r["samples"] == 3, r
    names = {(r["workload"], r["impl"]) for r in rows}
    for w in ("W1", "W2", "W3"):
        for impl in ("hand-written NumPy", "diffprog tape", "diffprog graph extension"):
            assert (w, impl) in names
    assert ("W5", "diffprog dp.hvp (rev-over-fwd)") in names
    assert "diffprog tape" in stdout and "verdict" in stdout


def test_json_has_machine_targets_and_chart(run_result):
    result, _, out = run_result
    m = result["machine"]
    assert m["cpu"] and m["cores"] >= 1 and m["numpy"] == np.__version__
    assert result["mode"] == "tiny" and result["device"] == "cpu"
    targeted = [r for r in result["rows"] if "target" in r]
    assert {r["workload"] for r in targeted} == {"W1", "W2", "W3", "W5"}
    assert all(isinstance(r["passed"], bool) for r in targeted)
    pytest.importorskip("matplotlib")
    assert (out / "latest.png").stat().st_size > 1000


def test_unknown_workload_is_refused():
    cmd = [sys.executable, os.path.join(BENCH, "run.py"), "--workloads", "W9"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "unknown workload" in proc.stderr


def test_each_sample_follows_a_warm_up_of_its_own_implementation(monkeypatch):
    """measure() times a sample only after `warm_s` of untimed calls of that implementation
    (the first calls after other work run slow), the collector run before them."""
    calls = []
    monkeypatch.setattr(harness.gc, "collect", lambda: calls.append(("gc", time.perf_counter())))
    impls = [harness.Impl(name, lambda name=name: calls.append((name, time.perf_counter())))
             for name in ("a", "b")]  # fmt: skip
    samples = harness.measure(impls, repeats=3, min_sample_s=1e-4, warm_s=5e-3)
    assert [len(v) for v in samples.values()] == [3, 3]
    marks = [i for i, (name, _) in enumerate(calls) if name == "gc"]
    assert len(marks) == 6
    for start, end in zip(marks, marks[1:] + [len(calls)]):
        sample = calls[start + 1:end]
        assert {name for name, _ in sample} == {sample[0][0]}
        assert sample[-1][1] - sample[0][1] >= 5e-3, "no warm-up before the timed calls"
    assert [calls[i + 1][0] for i in marks] == ["a", "b", "b", "a", "a", "b"]  # rotated


def test_hand_written_chain_and_loop_gradients():
    x = workloads.chain_input(4)
    value, g = workloads.chain_hand(x, 16, np)
    assert np.isclose(value, workloads.chain(x, 16, np).sum())
    # two cycles of x -> 0.5 tanh(2 sin x): derivative by the chain rule, in closed form
    dy = lambda x: 0.5 * (1 - np.tanh(2 * np.sin(x)) ** 2) * 2 * np.cos(x)
    y1 = 0.5 * np.tanh(2 * np.sin(x))
    np.testing.assert_allclose(g, dy(x) * dy(y1), rtol=1e-12)
    x0 = workloads.loop_input()
    value, g = workloads.loop_hand(x0, 5, np)
    # 0.3 -> 0.45 -> 0.675 -> 1.0125 -> 1.51875 -> sin: four *1.5 then one sin
    assert np.isclose(value, np.sin(0.3 * 1.5**4))
    assert np.isclose(g, 1.5**4 * np.cos(0.3 * 1.5**4))


def test_hand_written_mlp_gradient_and_hvp_against_finite_differences():
    params, x, labels, rows, v = workloads.mlp_problem((3, 5, 4, 3), 6, "float64", seed=1)

    def loss(p):
        return workloads.mlp_hand(p, x, labels, rows, np)[0]

    def shifted(p, t):
        return {n: {k: p[n][k] + t * v[n][k] for k in p[n]} for n in p}

    value, grad = workloads.mlp_hand(params, x, labels, rows, np)
    eps = 1e-6
    fd = (loss(shifted(params, eps)) - loss(shifted(params, -eps))) / (2 * eps)
    dot = sum(np.sum(grad[n][k] * v[n][k]) for n in grad for k in grad[n])
    assert np.isclose(dot, fd, rtol=1e-6)
    value2, hv = workloads.mlp_hvp_hand(params, x, labels, rows, v, np)
    assert value2 == value
    g_plus = workloads.mlp_hand(shifted(params, eps), x, labels, rows, np)[1]
    g_minus = workloads.mlp_hand(shifted(params, -eps), x, labels, rows, np)[1]
    for n in hv:
        for k in hv[n]:
            np.testing.assert_allclose(hv[n][k], (g_plus[n][k] - g_minus[n][k]) / (2 * eps),
                                       rtol=1e-5, atol=1e-8)


def test_train_step_runs_and_checks_the_step_against_the_hand_written_one():
    cmd = [sys.executable, os.path.join(BENCH, "train_step.py"), "--sizes", "8,16,4",
           "--batch", "8", "--repeats", "3"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "x hand-written" in done.stdout and "diffprog" in done.stdout


def test_vmap_benchmark_checks_its_results():
    """benchmarks/vmap.py --smoke: dp.vmap's per-example gradients and Hessian equal the
    loops' (the script raises otherwise); timings are not asserted."""
    done = subprocess.run([sys.executable, os.path.join(BENCH, "vmap.py"), "--smoke"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "per-example gradients" in done.stdout and "hessian" in done.stdout


def test_the_device_check_stops_cleanly_without_a_gpu(tmp_path):
    """benchmarks/device_check.sh (the prepared GPU check) on a machine without CuPy: it
    says there is no CUDA device and exits 3, checking nothing. (Its steps ran through on
    the simulated CuPy when it was written; on a GPU it is run by hand, see its header.)"""
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is here: the device check would run for minutes")
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path), SITE=str(tmp_path / "site"),
               WHEEL_DIR=str(tmp_path / "no-wheels"))  # fmt: skip
    run = subprocess.run(["bash", os.path.join(BENCH, "device_check.sh")], env=env,
                         capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert run.returncode == 3, run.stdout + run.stderr
    assert "no CUDA device: the GPU checks did not run" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    assert (tmp_path / "summary.txt").exists()


def test_first_call_breakdown_adds_up_and_the_warm_run_loads_from_disk(tmp_path):
    """benchmarks/first_call.py --tiny on W2: each phase is charged once (they add up to at
    most the first call), the cold run types and compiles its kernels with numba, and the
    warm run, on the same kernel cache, loads them instead (no typing, no lowering)."""
    out = tmp_path / "first_call.json"
    cmd = [sys.executable, os.path.join(BENCH, "first_call.py"), "--tiny", "--workloads", "W2",
           "--replays", "2", "--json", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with open(out) as f:
        result = json.load(f)["W2"]
    cold, warm = result["cold"], result["warm"]
    for r in (cold, warm):
        assert r["kernels"] >= 1
        wall = sum(w for w, _ in r["phases"].values())
        assert 0 < wall <= r["first call"][0]
        assert r["phases"]["record"][0] > 0 and r["replay median"] > 0
    assert cold["phases"]["numba typing"][0] > 0 and cold["phases"]["numba lower"][0] > 0
    assert warm["phases"]["numba typing"][0] == warm["phases"]["numba lower"][0] == 0
    assert warm["phases"]["disk cache"][0] > 0
