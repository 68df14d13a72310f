"""The transforms on every backend, devices never mixed, and no hidden host-device transfers.

Each transform test runs once per `backend` (tests/conftest.py): on NumPy, and on CuPy
(marked `gpu`, skipped without a CUDA device), where inputs are moved with dp.to_device and
every result must be a CuPy array equal to NumPy's. The gpu tests below also prove that a
training step, a backward pass (tape and graph extension), forward mode and an HVP never
synchronise with the GPU, and that mixing devices in one operation raises naming both.
"""

from __future__ import annotations

import types
import warnings

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from backends import require_cupy
from diffprog import backend as B
from diffprog import nn
from diffprog.errors import DeviceMismatchError


def mlp_params(dtype=np.float64):
    rng = np.random.default_rng(0)
    return {
        "layers": [{"W": rng.normal(size=(3, 5)).astype(dtype), "b": np.zeros(5, dtype)},
                   {"W": rng.normal(size=(5, 4)).astype(dtype), "b": np.full(4, 0.1, dtype)}],
        "scale": 1.5,  # a Python float: its adjoint is a Python float
        "train": True,  # a constant: its adjoint is None
    }  # fmt: skip


def data(dtype=np.float64):
    rng = np.random.default_rng(1)
    return rng.normal(size=(6, 3)).astype(dtype), np.array([0, 1, 2, 3, 1, 0])


def loss(params, x, y):
    h = x
    for layer in params["layers"]:
        h = dnp.tanh(h @ layer["W"] + layer["b"])
    return nn.softmax_cross_entropy(params["scale"] * h, y)


def same(backend, f, *host_args):
    """f on `backend` (arguments moved there) gives what f gives on the host arguments."""
    backend.check(f(*backend.put(host_args)), f(*host_args))


def test_value_and_grad_of_dict_params(backend):
    same(backend, dp.value_and_grad(loss), mlp_params(), *data())
    same(backend, dp.grad(loss, argnums=(0, 1)), mlp_params(np.float32), *data(np.float32))


def test_vjp_with_pytree_output(backend):
    def f(p, x):
        return {"h": dnp.sin(x @ p["W"]), "s": dnp.sum(p["b"] ** 2)}

    def pulled(p, x, ct):
        out, pullback = dp.vjp(f, p, x)
        return out, pullback(ct)

    p = mlp_params()["layers"][0]
    x = data()[0]
    same(backend, pulled, p, x, {"h": np.ones((6, 5)), "s": np.float64(2.0)})


def test_jvp_and_hvp(backend):
    p, (x, y) = mlp_params(), data()
    tangent = dp.tree.map(lambda a: a * 0.5 if isinstance(a, np.ndarray) else None, p)
    tangent["scale"] = 1.0
    same(backend, lambda p, t, x, y: dp.jvp(lambda q: loss(q, x, y), (p,), (t,)), p, tangent, x, y)
    same(backend, lambda p, t, x: dp.hvp(lambda q: loss(q, x, y), (p,), (t,)), p, tangent, x)


def test_hessian_and_grad_of_grad(backend):
    def f(w):
        return dnp.sum(dnp.exp(w) * w ** 3)

    w = np.array([0.3, -0.7, 1.1])
    same(backend, dp.hessian(f), w)
    same(backend, dp.grad(lambda w: dnp.sum(dp.grad(f)(w) ** 2)), w)


def test_checkpoint_and_custom_vjp_over_dict_params(backend):
    @dp.custom_vjp
    def affine(p, x):
        return x @ p["W"] + p["b"]

    def fwd(p, x):
        return affine(p, x), (p, x)

    def bwd(res, g):
        p, x = res
        return {"W": x.T @ g, "b": dnp.sum(g, axis=0)}, g @ p["W"].T

    affine.defvjp(fwd, bwd)
    block = dp.checkpoint(lambda p, x: dnp.tanh(affine(p, x)))
    p, x = mlp_params()["layers"][0], data()[0]
    same(backend, dp.value_and_grad(lambda p, x: dnp.sum(block(p, x) ** 2), argnums=(0, 1)), p, x)


def test_nested_tapes(backend):
    def second(x):
        with dp.Tape() as outer:
            x = outer.watch(x)
            with dp.Tape() as inner:
                y = inner.watch(x)
                z = dnp.sum(dnp.sin(y) * y)
            g = inner.gradient(z, y)
            s = dnp.sum(g * g)
        return outer.gradient(s, x)  # graph extension: the inner gradient was recorded

    same(backend, second, np.array([0.2, 1.4, -0.6]))


def test_numpy_scalars_defer_to_the_arrays_beside_them():
    """NumPy scalars are host values like Python floats: they join CuPy arrays' operations
    (a watched Python float reaches the VJP rules as one) and never pick the device."""
    assert B.namespace_of((np.float64(2.0),)) is np
    assert B.namespace_of((np.float32(2.0), np.ones(2))) is np
    assert B.is_array(np.float64(2.0)) and not B.is_array(2.0)


def test_placement_helpers_on_numpy():
    """On the CPU the device helpers are plain NumPy (no context, no copies)."""
    ref = np.ones(2, np.float32)
    assert B.device_scope([1.0, ref, np.float64(2.0)]) is B.device_scope([])
    assert B.run_kernel(lambda xp, a: xp.exp(a), (ref,), {}).dtype == np.float32
    made = B.asarray_like([1, 2], ref, dtype=np.float32)
    assert type(made) is np.ndarray and made.dtype == np.float32
    assert B.zeros_like(ref).tolist() == [0.0, 0.0] and B.ones_like(ref).dtype == np.float32
    joined = dnp.concatenate([ref, [3.0]])  # a list beside an array joins as that array
    assert type(joined) is np.ndarray and joined.tolist() == [1.0, 1.0, 3.0]


def test_two_gpus_in_one_operation_are_named():
    """The CuPy branch of the device check, on stand-ins with `.device.id` (runs on CPU)."""
    on = [types.SimpleNamespace(device=types.SimpleNamespace(id=i)) for i in (0, 0, 1)]
    B._one_gpu([on[0], 2.0, on[1]])  # one GPU: fine
    with pytest.raises(DeviceMismatchError, match=r"GPU 0 \(CuPy\) and GPU 1 \(CuPy\).*gpu:N"):
        B._one_gpu(on)
    assert B.device_name(np) == "the CPU (NumPy)"


# ------------------------------------------------------------------------------ GPU only


@pytest.mark.gpu
def test_mixing_numpy_and_cupy_raises_naming_both():
    cp = require_cupy()
    with pytest.raises(DeviceMismatchError, match=r"the CPU \(NumPy\) and GPU 0 \(CuPy\)"):
        dnp.add(np.ones(2), cp.ones(2))
    w = dp.to_device(np.ones(3), "gpu")
    with pytest.raises(DeviceMismatchError, match="CPU"):
        dp.grad(lambda w: dnp.sum(w * np.arange(3.0)))(w)
    assert float(dnp.sum(w * np.float64(2.0))) == 6.0  # a NumPy scalar is no device


@pytest.mark.gpu
def test_a_0d_numpy_array_beside_cupy_arrays_is_a_host_scalar():
    """NumPy's where (and dnp.where, which is NumPy's exactly) makes a 0-d array of scalars;
    beside CuPy arrays it is a host scalar, as a NumPy scalar is: eager, in both modes'
    derivatives, and under dp.jit. A 0-d leaf's adjoint is a 0-d NumPy array."""
    cp = require_cupy()
    x = np.linspace(-1.0, 1.0, 3)
    s = dnp.where(True, 1.5, 2.0)
    assert type(s) is np.ndarray and s.shape == ()
    r = dnp.multiply(cp.asarray(x), s)
    assert type(r) is cp.ndarray
    np.testing.assert_array_equal(r.get(), 1.5 * x)

    def f(s, x):
        return dnp.sum(x * dnp.where(s > 0, s * s, 2.0) * x)

    g = dp.grad(f, argnums=(0, 1))(np.array(2.0), cp.asarray(x))
    assert type(g[0]) is np.ndarray and g[0].shape == () and type(g[1]) is cp.ndarray
    np.testing.assert_allclose(g[0], 4.0 * np.sum(x * x))
    np.testing.assert_allclose(g[1].get(), 8.0 * x)
    _, t = dp.jvp(f, (np.array(2.0), cp.asarray(x)), (np.array(1.0), cp.zeros(3)))
    np.testing.assert_allclose(float(t), 4.0 * np.sum(x * x))
    jitted = dp.jit(lambda x: x * dnp.where(x[0] < 0, 1.5, 2.0))
    np.testing.assert_array_equal(jitted(cp.asarray(x)).get(), 1.5 * x)


@pytest.mark.gpu
def test_mixing_two_gpus_raises_naming_both():
    require_cupy(devices=2)
    a, b = dp.to_device(np.ones(2), "gpu:0"), dp.to_device(np.ones(2), "gpu:1")
    assert a.device.id == 0 and b.device.id == 1
    with pytest.raises(DeviceMismatchError, match=r"GPU 0 \(CuPy\) and GPU 1 \(CuPy\)"):
        dnp.add(a, b)
    with pytest.raises(DeviceMismatchError, match=r"GPU 1 \(CuPy\) and GPU 0 \(CuPy\)"):
        dp.grad(lambda b: dnp.sum(b * a))(b)
    g = dp.grad(lambda b: dnp.sum(b * b))(b)  # all on GPU 1: stays there
    assert g.device.id == 1


@pytest.mark.gpu
def test_vmap_and_jacobians_follow_their_data_to_a_gpu_not_current():
    """Nothing made current first: per-example gradients (of an empty batch too), an output
    shared by every example, and the Jacobians of a pytree holding a Python float run on GPU
    1 and leave every result there (they ran code on GPU 0, which CuPy refuses)."""
    require_cupy(devices=2)
    xs, empty = dp.to_device((np.ones((4, 3), np.float32), np.ones((0, 3), np.float32)), "gpu:1")
    p = dp.to_device({"w": np.arange(1.0, 4.0, dtype=np.float32), "s": 2.0}, "gpu:1")
    per_example = dp.vmap(dp.grad(lambda x: dnp.sum(x**2)))
    results = [per_example(xs), per_example(empty), dp.vmap(lambda x: (dnp.sum(x), p["w"]))(xs),
               dp.jacfwd(lambda p: p["w"] * p["s"])(p), dp.jacrev(lambda p: p["w"] * p["s"])(p),
               dp.hessian(lambda p: dnp.sum(p["w"] ** 3) * p["s"])(p)]  # fmt: skip
    # (a derivative with respect to the Python float by itself is a Python float, as grad's)
    assert type(results[5]["s"]["s"]) is float
    assert all(leaf.device.id == 1 for leaf in dp.tree.leaves(results) if type(leaf) is not float)
    np.testing.assert_array_equal(results[0].get(), np.full((4, 3), 2.0))
    assert results[1].shape == (0, 3) and results[2][1].shape == (4, 3)
    for jacobian in results[3:5]:
        np.testing.assert_array_equal(jacobian["s"].get(), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(results[5]["w"]["w"].get(), np.diag([12.0, 24.0, 36.0]))


@pytest.mark.gpu
def test_tangents_and_cotangents_on_another_device_are_refused_naming_both():
    """A tangent or cotangent array lives where its primal or output does (they were
    copied silently, or the adjoint came back on the cotangent's GPU); a host scalar goes
    anywhere."""
    cp = require_cupy(devices=2)
    x, on_0 = dp.to_device(np.ones(3), "gpu:1"), dp.to_device(np.ones(3), "gpu:0")
    f = lambda x: x * 2.0  # noqa: E731
    _, vjp_fn = dp.vjp(f, x)
    for wrong, where in ((on_0, r"GPU 0 \(CuPy\)"), (np.ones(3), r"the CPU \(NumPy\)")):
        with pytest.raises(DeviceMismatchError, match=rf"tangent for primal 0 is on {where}, but the primal 0 is on GPU 1"):
            dp.jvp(f, (x,), (wrong,))
        with pytest.raises(DeviceMismatchError, match=rf"cotangent passed to vjp_fn is on {where}, but the output is on GPU 1"):
            vjp_fn(wrong)
        with pytest.raises(DeviceMismatchError, match=rf"tangent for primal 0 is on {where}"):
            dp.hvp(lambda x: dnp.sum(x**3), (x,), (wrong,))
    with pytest.raises(DeviceMismatchError, match=r"on GPU 1 \(CuPy\), but the output is on the CPU"):
        dp.vjp(f, np.ones(3))[1](x)
    (g,) = dp.vjp(lambda x: dnp.sum(x), x)[1](np.float64(2.0))  # a host scalar goes anywhere
    assert g.device.id == 1 and float(dp.jvp(lambda x: dnp.sum(x), (x,), (x,))[1].get()) == 3.0
    assert isinstance(g, cp.ndarray)


@pytest.mark.gpu
@pytest.mark.parametrize("gpu", [0, 1])
def test_no_hidden_transfers_in_training_backward_forward_and_hvp(gpu):
    """Under cupyx.allow_synchronize(False) any device synchronisation (a device-to-host copy:
    bool/float/int/.item()/.get()/np.asarray of a CuPy array) raises DeviceSynchronized. On
    GPU 1 nothing is made current first: the step must follow its data there. On the
    simulated CuPy (tests/simulated_gpu), host-to-device copies are counted too: none."""
    cp = require_cupy(devices=gpu + 1)
    cupyx = pytest.importorskip("cupyx")
    if not hasattr(cupyx, "allow_synchronize"):
        pytest.skip("this CuPy has no cupyx.allow_synchronize (deprecated in v10)")
    host = mlp_params(np.float32)
    del host["scale"]  # a Python float leaf's adjoint is a Python float: a sync, by design
    params = dp.to_device(host, f"gpu:{gpu}")
    x, y = dp.to_device(data(np.float32), f"gpu:{gpu}")

    def f(p, x, y):
        h = x
        for layer in p["layers"]:
            h = dnp.tanh(h @ layer["W"] + layer["b"])
        return nn.softmax_cross_entropy(h, y)

    opt = dp.optim.adam(dp.optim.warmup_cosine_decay(0.0, 1e-2, 1, 10))  # counts on the GPU
    state = opt.init(params)
    step = dp.value_and_grad(f)
    step(params, x, y)  # compile the kernels outside the check
    with cp.cuda.Device(gpu):
        tangent = dp.tree.map(lambda a: a * 0.5 if hasattr(a, "device") else None, params)
    sent = dict(getattr(cp, "transfers", {}))  # the simulator's host <-> device counts
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # allow_synchronize is experimental / deprecated
        with cupyx.allow_synchronize(False):
            with pytest.raises(cupyx.DeviceSynchronized):  # the check does catch a sync
                float(dnp.sum(x))
            value, grads = step(params, x, y)  # tape backprop
            updates, state = opt.update(grads, state, params)
            params = dp.optim.apply_updates(params, updates)
            _, hv = dp.hvp(lambda p: f(p, x, y), (params,), (tangent,))  # fwd over rev
            _, t_out = dp.jvp(lambda p: f(p, x, y), (params,), (tangent,))  # forward mode
            gg = dp.grad(lambda p: dnp.sum(dp.grad(f)(p, x, y)["layers"][0]["W"] ** 2))(params)
    assert getattr(cp, "transfers", {}) == sent, "a host <-> device copy in the step"
    for leaf in dp.tree.leaves((value, grads, params, state, hv, t_out, gg)):
        if isinstance(leaf, np.generic):  # the optimizer's step count: a host scalar
            continue
        assert not isinstance(leaf, np.ndarray), type(leaf)
        assert not hasattr(leaf, "device") or leaf.device.id == gpu, leaf.device
    assert isinstance(grads["layers"][0]["W"], cp.ndarray) and np.isfinite(float(value))


@pytest.mark.gpu
def test_asking_whether_a_tracer_is_an_array_does_not_hide_the_array_inside():
    """backend.is_array of a tracer (dp.optim asks it of a staged learning rate) cached the
    tracer's type as 'no array module', and from then on namespace_of looked past every
    tracer of that type: dp.jit on CuPy made tril's mask on the host (DeviceMismatchError)."""
    cp = require_cupy()
    x = np.arange(6.0).reshape(3, 2)

    def f(a):
        B.is_array(a)  # as dp.optim asks of a staged value
        return dnp.sum(dnp.tril(a) ** 2 + a)

    for program in (f, dp.grad(f)):
        for transform in (lambda g: g, dp.jit):
            got = transform(program)(cp.asarray(x))
            assert isinstance(got, cp.ndarray)
            np.testing.assert_allclose(cp.asnumpy(got), program(x), rtol=1e-12)


def test_host_scalars_turns_only_0d_numpy_arrays_into_scalars():
    """The values an op on CuPy arrays hands its rules: a 0-d NumPy array becomes a NumPy
    scalar; every other value, a NumPy array of any other shape included, is passed as is
    (the same object, not a view of it)."""
    a, z, f = np.ones((2, 3)), np.array(2.5), 1.5
    got = B.host_scalars([a, z, f])
    assert got[0] is a and got[2] is f and type(got[1]) is np.float64 and got[1] == 2.5
    values = (a, f)
    assert B.host_scalars(values) is values
