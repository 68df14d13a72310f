"""diffprog.nn: initializers, layers, losses and a small end-to-end training run.

Values are compared with plain NumPy references (conv2d and pooling with naive loops over
every output pixel), derivatives with `check_grads(order=2)`, the losses at logits of +-1e3
with closed forms, initializer statistics with their target variances. GPU tests (marked
`gpu`) run the same layers on CuPy and compare with the CPU.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from diffprog import nn
from backends import require_cupy
from diffprog.testing import check_grads

no_overflow = pytest.mark.filterwarnings("error::RuntimeWarning")


def rng(seed=0):
    return np.random.default_rng(seed)


# --- initializers
# name -> (initializer, target variance for a given (fan_in, fan_out))
VARIANCES = {
    "glorot_uniform": (nn.glorot_uniform, lambda fi, fo: 2.0 / (fi + fo)),
    "glorot_normal": (nn.glorot_normal, lambda fi, fo: 2.0 / (fi + fo)),
    "he_uniform": (nn.he_uniform, lambda fi, fo: 2.0 / fi),
    "he_normal": (nn.he_normal, lambda fi, fo: 2.0 / fi),
    "normal(0.3)": (nn.normal(0.3), lambda fi, fo: 0.09),
}


@pytest.mark.parametrize("name", VARIANCES)
@pytest.mark.parametrize("shape", [(300, 500), (64, 32, 5, 5)])
def test_initializer_statistics(name, shape):
    init, target = VARIANCES[name]
    W = init(rng(), shape)
    assert W.shape == shape and W.dtype == np.float32 and isinstance(W, np.ndarray)
    fan_in, fan_out = nn.fans(shape)
    assert abs(float(W.mean())) < 0.02 * math.sqrt(target(fan_in, fan_out)) * 5
    assert float(W.var()) == pytest.approx(target(fan_in, fan_out), rel=0.03)
    if "uniform" in name:  # bounded by sqrt(3 var) and filling the interval
        limit = math.sqrt(3 * target(fan_in, fan_out))
        assert float(abs(W).max()) <= limit * (1 + 1e-6)
        assert float(abs(W).max()) > 0.99 * limit


def test_fans():
    assert nn.fans((3, 5)) == (3, 5)  # dense W: (in, out)
    assert nn.fans((8, 4, 3, 2)) == (4 * 6, 8 * 6)  # conv W: (out, in, kh, kw)
    assert nn.fans((7,)) == (7, 7)


@pytest.mark.parametrize("name", VARIANCES)
def test_initializers_are_deterministic_and_dtype_independent(name):
    init = VARIANCES[name][0]
    a, b, c = init(rng(1), (4, 6)), init(rng(1), (4, 6)), init(rng(2), (4, 6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    d = init(rng(1), (4, 6), dtype=np.float64)
    assert d.dtype == np.float64
    np.testing.assert_array_equal(d.astype(np.float32), a)  # drawn in float64, then cast


def test_constant_initializers():
    z, o = nn.zeros(rng(), (2, 3)), nn.ones(None, 4, np.float64)
    assert z.dtype == np.float32 and z.shape == (2, 3) and not z.any()
    assert o.dtype == np.float64 and o.tolist() == [1.0] * 4


def test_initializer_errors():
    with pytest.raises(TypeError, match=r"numpy.random.Generator.*default_rng"):
        nn.glorot_uniform(0, (2, 2))
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        nn.he_normal(np.random.RandomState(0), (2, 2))
    with pytest.raises(TypeError, match="floating dtype"):
        nn.glorot_uniform(rng(), (2, 2), dtype=np.int32)
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        nn.he_uniform(rng(), (2, 2), device="tpu")
    with pytest.raises(ValueError, match="shape"):
        nn.normal(1.0)(rng(), (2, -1))
    with pytest.raises(ValueError, match="stddev"):
        nn.normal(-1.0)
    with pytest.raises(ValueError, match="at least an input and an output"):
        nn.mlp_init(rng(), [3])
    with pytest.raises(ValueError, match="out_features"):
        nn.dense_init(rng(), 3, 0)
    with pytest.raises(ValueError, match="kernel_size"):
        nn.conv2d_init(rng(), 1, 2, (3, 0))


def test_gpu_device_without_cupy_is_a_clear_error():
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(RuntimeError, match="needs CuPy"):
            nn.glorot_uniform(rng(), (2, 2), device="gpu")
    else:
        pytest.skip("CuPy is importable here; the gpu tests cover device='gpu'")


def test_builders():
    p = nn.mlp_init(rng(), [3, 5, 2], dtype=np.float64)
    assert list(p) == ["layers"] and len(p["layers"]) == 2
    assert [(l["W"].shape, l["b"].shape) for l in p["layers"]] == [((3, 5), (5,)), ((5, 2), (2,))]
    assert all(l["W"].dtype == np.float64 and not l["b"].any() for l in p["layers"])
    q = nn.mlp_init(rng(), [3, 5, 2], dtype=np.float64)
    dp.tree.map(np.testing.assert_array_equal, p, q)

    d = nn.dense_init(rng(), 2, 3, w_init=nn.normal(1.0), b_init=nn.ones)
    assert list(d) == ["W", "b"] and d["b"].tolist() == [1.0, 1.0, 1.0]
    c = nn.conv2d_init(rng(), 3, 8, (3, 5))
    assert c["W"].shape == (8, 3, 3, 5) and c["b"].shape == (8,) and c["W"].dtype == np.float32
    ln = nn.layer_norm_init(4, dtype=np.float64)
    assert ln["scale"].tolist() == [1.0] * 4 and ln["bias"].tolist() == [0.0] * 4
    e = nn.embedding_init(rng(), 1000, 50)["table"]
    assert e.shape == (1000, 50) and float(e.std()) == pytest.approx(1.0, rel=0.03)


# --- NumPy references
def conv2d_ref(x, W, b, stride, pads):
    (pt, pb), (pl, pr) = pads
    x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    N, _, H, Wd = x.shape
    O, _, kh, kw = W.shape
    Ho, Wo = (H - kh) // stride[0] + 1, (Wd - kw) // stride[1] + 1
    out = np.zeros((N, O, Ho, Wo))
    for n in range(N):
        for o in range(O):
            for i in range(Ho):
                for j in range(Wo):
                    r, c = i * stride[0], j * stride[1]
                    out[n, o, i, j] = np.sum(x[n, :, r : r + kh, c : c + kw] * W[o]) + b[o]
    return out


def pool_ref(x, window, stride, reduce):
    N, C, H, W = x.shape
    Ho, Wo = (H - window) // stride + 1, (W - window) // stride + 1
    out = np.zeros((N, C, Ho, Wo))
    for i in range(Ho):
        for j in range(Wo):
            r, c = i * stride, j * stride
            out[:, :, i, j] = reduce(x[:, :, r : r + window, c : c + window], axis=(2, 3))
    return out


# --- layers: values
def test_dense_and_mlp_values():
    p = nn.mlp_init(rng(), [3, 4, 2], dtype=np.float64)
    p["layers"][0]["b"] = rng(5).normal(size=4)
    x = rng(1).normal(size=(5, 3))
    h = np.tanh(x @ p["layers"][0]["W"] + p["layers"][0]["b"])
    ref = h @ p["layers"][1]["W"] + p["layers"][1]["b"]
    np.testing.assert_allclose(
        nn.dense(p["layers"][0], x), x @ p["layers"][0]["W"] + p["layers"][0]["b"]
    )
    np.testing.assert_allclose(nn.mlp(p, x), ref)
    np.testing.assert_allclose(nn.mlp(p, x, final_activation=nn.sigmoid), 1 / (1 + np.exp(-ref)))
    relu_ref = np.maximum(x @ p["layers"][0]["W"] + p["layers"][0]["b"], 0) @ p["layers"][1]["W"]
    np.testing.assert_allclose(nn.mlp(p, x, activation=nn.relu), relu_ref + p["layers"][1]["b"])


CONV_CASES = [  # (stride, padding, explicit pads for the reference)
    (1, 0, ((0, 0), (0, 0))),
    (1, 1, ((1, 1), (1, 1))),
    (1, "same", ((1, 1), (1, 1))),
    (1, "valid", ((0, 0), (0, 0))),
    (2, 0, ((0, 0), (0, 0))),
    (2, 1, ((1, 1), (1, 1))),
    (2, "same", ((1, 1), (1, 1))),  # 7x7, k=3, s=2: total 2 -> (1, 1)
    ((1, 2), ((0, 1), (2, 0)), ((0, 1), (2, 0))),
]


@pytest.mark.parametrize("stride,padding,pads", CONV_CASES)
def test_conv2d_matches_naive_loops(stride, padding, pads):
    x = rng(1).normal(size=(2, 3, 7, 7))
    p = nn.conv2d_init(rng(2), 3, 4, 3, b_init=nn.normal(1.0), dtype=np.float64)
    out = nn.conv2d(p, x, stride=stride, padding=padding)
    st = (stride, stride) if isinstance(stride, int) else stride
    np.testing.assert_allclose(out, conv2d_ref(x, p["W"], p["b"], st, pads), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("kernel", [(1, 1), (2, 3), (4, 4)])
def test_conv2d_same_padding(stride, kernel):
    x = rng(3).normal(size=(1, 2, 6, 7))
    p = nn.conv2d_init(rng(4), 2, 3, kernel, b_init=nn.normal(1.0), dtype=np.float64)
    out = nn.conv2d(p, x, stride=stride, padding="same")
    assert out.shape == (1, 3, math.ceil(6 / stride), math.ceil(7 / stride))
    pads = []  # TensorFlow's rule: total padding split, the odd pixel at the bottom/right
    for n, k in zip((6, 7), kernel):
        total = max((math.ceil(n / stride) - 1) * stride + k - n, 0)
        pads.append((total // 2, total - total // 2))
    np.testing.assert_allclose(
        out, conv2d_ref(x, p["W"], p["b"], (stride, stride), pads), atol=1e-12
    )


@pytest.mark.parametrize("size", [(0, 5), (4, 0)])
def test_conv2d_same_padding_of_empty_images(size):
    # "same" promises ceil(H / s) x ceil(W / s): 0 rows of a 0-row image (raised "smaller
    # than the window"), eagerly, under dp.jit and dp.vmap, with zero gradients
    x = np.zeros((2, 1) + size)
    p = nn.conv2d_init(rng(), 1, 3, (2, 3), dtype=np.float64)
    want = (2, 3, math.ceil(size[0] / 2), math.ceil(size[1] / 2))
    conv = lambda p, x: nn.conv2d(p, x, 2, "same")
    assert conv(p, x).shape == dp.jit(conv)(p, x).shape == want
    assert dp.vmap(lambda x: conv(p, x[None]))(x).shape == (2, 1) + want[1:]
    grads = dp.grad(lambda p: dnp.sum(conv(p, x)))(p)
    assert not grads["W"].any() and not grads["b"].any()
    with pytest.raises(ValueError, match=r"input is (0x\d+|\d+x0), smaller than the 2x3 window"):
        nn.conv2d(p, x, 2, "valid")


def test_conv2d_keeps_float32():
    p = nn.conv2d_init(rng(), 1, 2, 3)
    out = nn.conv2d(p, rng(1).normal(size=(1, 1, 5, 5)).astype(np.float32), padding="same")
    assert out.dtype == np.float32 and out.shape == (1, 2, 5, 5)


@pytest.mark.parametrize("window,stride", [(2, None), (2, 1), (3, 2)])
def test_pooling_matches_naive_loops(window, stride):
    x = rng(1).normal(size=(2, 3, 7, 6))
    s = window if stride is None else stride
    np.testing.assert_allclose(nn.max_pool2d(x, window, stride), pool_ref(x, window, s, np.max))
    np.testing.assert_allclose(nn.avg_pool2d(x, window, stride), pool_ref(x, window, s, np.mean))


def test_flatten_layer_norm_embedding_values():
    x = rng(1).normal(size=(2, 3, 4))
    np.testing.assert_array_equal(nn.flatten(x), x.reshape(2, 12))
    p = {"scale": rng(2).normal(size=4), "bias": rng(3).normal(size=4)}
    ref = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
    np.testing.assert_allclose(nn.layer_norm(p, x), ref * p["scale"] + p["bias"], rtol=1e-12)
    table = rng(4).normal(size=(5, 3))
    ids = np.array([[0, 4], [4, 2]])
    np.testing.assert_array_equal(nn.embedding({"table": table}, ids), table[ids])


def test_activations():
    x = np.linspace(-4, 4, 17)
    assert nn.relu is dnp.relu and nn.tanh is dnp.tanh and nn.sigmoid is dnp.sigmoid
    assert nn.softplus is dnp.softplus
    exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
    formula = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(nn.gelu(x), formula, rtol=1e-14)
    np.testing.assert_allclose(nn.gelu(x), exact, atol=1e-3)  # the approximation is close


def test_dropout():
    x = np.ones((200, 500))
    assert nn.dropout(x, 0.3, None, train=False) is x
    assert nn.dropout(x, 0.0, rng(), train=True) is x
    y = nn.dropout(x, 0.3, rng(7), train=True)
    assert set(np.unique(y).tolist()) == {0.0, 1 / 0.7}
    assert float((y == 0).mean()) == pytest.approx(0.3, abs=0.01)
    assert float(y.mean()) == pytest.approx(1.0, abs=0.02)  # inverted scaling keeps the mean
    np.testing.assert_array_equal(y, nn.dropout(x, 0.3, rng(7), train=True))
    assert not nn.dropout(x, 1.0, rng(), train=True).any()
    z = nn.dropout(np.ones(4, np.float32), 0.5, rng(), train=True)
    assert z.dtype == np.float32
    with pytest.raises(ValueError, match=r"rate.*\[0, 1\]"):
        nn.dropout(x, 1.5, rng(), train=True)
    with pytest.raises(TypeError, match="numpy.random.Generator"):
        nn.dropout(x, 0.5, 0, train=True)


def test_traced_hyperparameters():
    # label_smoothing and dropout's rate and train given as dp.jit arguments (staged values,
    # were refused as "not in [0, 1]"), one per example under dp.vmap, and differentiated.
    logits, labels = f64(5, 3), np.array([0, 2, 1, 1, 0])
    sce = nn.softmax_cross_entropy
    want = {s: float(sce(logits, labels, s)) for s in (0.0, 0.2, 0.3, 1.0)}
    for fuse in (True, False):
        f = dp.jit(sce, fuse=fuse)
        for s, key in ((0.0, 0.0), (0.3, 0.3), (np.float32(0.2), 0.2), (np.array(1.0), 1.0)):
            assert float(f(logits, labels, s)) == pytest.approx(want[key], rel=1e-6)
        assert float(f(logits, labels, 0.3)) == pytest.approx(want[0.3], rel=1e-12)  # replay
        with pytest.raises(ValueError, match=r"label_smoothing` must be in \[0, 1\].*1.5"):
            f(logits, labels, 1.5)
        step = dp.jit(lambda x, r, t: nn.dropout(x, r, None, t), fuse=fuse)
        x = f64(4, 6)
        np.testing.assert_array_equal(step(x, 0.5, False), x)
        with pytest.raises(ValueError, match=r"rate` must be in \[0, 1\]"):
            step(x, -0.5, False)
    got = dp.vmap(lambda s: sce(logits, labels, s))(np.array([0.0, 0.2, 1.0]))
    np.testing.assert_allclose(got, [want[0.0], want[0.2], want[1.0]], rtol=1e-12)
    check_grads(lambda s: sce(logits, labels, s), (np.array(0.3),), order=2)
    # the loss is linear in label_smoothing: the same slope at 0 (the classes the target
    # gives no weight there still count), eagerly and under dp.jit
    slope = float(sce(logits, labels, 1.0) - sce(logits, labels, 0.0))
    for d in (dp.grad(sce, argnums=2), dp.jit(dp.grad(sce, argnums=2))):
        assert [float(d(logits, labels, s)) for s in (0.0, 0.5)] == pytest.approx([slope] * 2)
    with pytest.raises(TypeError, match=r"label_smoothing` must be a real number.*ndarray"):
        sce(logits, labels, np.array([0.1, 0.2]))
    with pytest.raises(TypeError, match=r"rate` must be a real number.*str"):
        nn.dropout(logits, "0.5", rng(), True)


# --- layers: derivatives
def f64(*shape, seed=0):
    return rng(seed).normal(size=shape)


def test_grads_dense_mlp():
    p = nn.mlp_init(rng(), [3, 4, 2], dtype=np.float64)
    x = f64(2, 3, seed=1)
    check_grads(lambda p, x: nn.dense(p, x), (p["layers"][0], x), order=2)
    check_grads(lambda p, x: nn.mlp(p, x), (p, x), order=2)
    check_grads(lambda p, x: nn.mlp(p, x, nn.gelu, nn.softplus), (p, x), order=2)


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, "same"), (2, 1), (2, "valid")])
def test_grads_conv2d(stride, padding):
    p = nn.conv2d_init(rng(), 2, 3, 3, b_init=nn.normal(1.0), dtype=np.float64)
    check_grads(
        lambda p, x: nn.conv2d(p, x, stride, padding), (p, f64(2, 2, 5, 5, seed=1)), order=2
    )


def test_grads_pooling_flatten():
    x = f64(2, 2, 5, 5, seed=1)  # continuous random values: no ties in the max
    check_grads(lambda x: nn.max_pool2d(x, 2, 1), (x,), order=2)
    check_grads(lambda x: nn.max_pool2d(x, 3, 2), (x,), order=2)
    check_grads(lambda x: nn.avg_pool2d(x, 2), (x,), order=2)
    check_grads(lambda x: nn.flatten(x) ** 2, (x,), order=2)


def test_dropout_with_a_traced_rate():
    """A traced rate (differentiated, one per example under dp.vmap, staged by dp.jit): the
    survivors' scale 1 / (1 - rate) carries the slope (grad raised TracerConversionError, and
    per-example rates BatchedControlFlowError); rate 1 keeps nothing, with slope 0, not NaN."""
    x = f64(3, 4)
    keep = rng(5).random(x.shape) >= 0.3
    value = lambda r: dnp.sum(nn.dropout(x, r, rng(5), True))  # noqa: E731
    assert dp.grad(value)(0.3) == pytest.approx(np.sum(x * keep) / 0.7**2, rel=1e-12)
    assert dp.grad(value)(np.float32(1.0)) == 0.0
    rates = np.array([0.2, 0.3, 0.6])
    g = rng(6)
    got = dp.vmap(lambda r: nn.dropout(x, r, g, True))(rates)
    g = rng(6)
    np.testing.assert_array_equal(got, np.stack([nn.dropout(x, r, g, True) for r in rates]))
    ends = dp.vmap(lambda r: nn.dropout(x, r, rng(6), True))(np.array([0.0, 1.0]))
    np.testing.assert_array_equal(ends, [x, np.zeros_like(x)])


def test_grads_layer_norm_embedding_dropout_gelu():
    p = {"scale": f64(4, seed=2), "bias": f64(4, seed=3)}
    check_grads(nn.layer_norm, (p, f64(3, 4, seed=1)), order=2)
    ids = np.array([[0, 2, 2], [1, 0, 2]])  # repeated ids accumulate
    check_grads(lambda p: nn.embedding(p, ids) ** 2, ({"table": f64(3, 2)},), order=2)
    g = dp.grad(lambda t: dnp.sum(nn.embedding({"table": t}, ids)))(np.zeros((4, 2)))
    np.testing.assert_array_equal(g[:, 0], [2.0, 1.0, 3.0, 0.0])
    check_grads(lambda x: nn.dropout(x, 0.4, rng(3), True) ** 2, (f64(20),), order=2)
    check_grads(nn.gelu, (f64(6) * 3,), order=2)


def test_grads_losses():
    logits, labels = f64(4, 3), np.array([0, 2, 1, 2])
    check_grads(lambda z: nn.softmax_cross_entropy(z, labels), (logits,), order=2)
    check_grads(lambda z: nn.softmax_cross_entropy(z, labels, 0.1), (logits,), order=2)
    check_grads(nn.sigmoid_binary_cross_entropy, (f64(5), rng(1).uniform(size=5)), order=2)
    check_grads(nn.mse, (f64(2, 3), f64(2, 3, seed=1)), order=2)


def test_grads_keep_structure_and_dtype():
    p = nn.mlp_init(rng(), [2, 3, 2])
    x, y = rng(1).normal(size=(4, 2)).astype(np.float32), np.array([0, 1, 1, 0])
    g = dp.grad(lambda p: nn.softmax_cross_entropy(nn.mlp(p, x), y))(p)
    assert dp.tree.structure(g) == dp.tree.structure(p)
    assert all(
        a.dtype == np.float32 and a.shape == b.shape
        for a, b in zip(dp.tree.leaves(g), dp.tree.leaves(p))
    )


# --- losses: values and stability
def test_loss_values():
    z, y = f64(4, 3), np.array([0, 2, 1, 2])
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    assert float(nn.softmax_cross_entropy(z, y)) == pytest.approx(-logp[np.arange(4), y].mean())
    t = np.full((4, 3), 0.2 / 3) + 0.8 * np.eye(3)[y]
    assert float(nn.softmax_cross_entropy(z, y, 0.2)) == pytest.approx(-(t * logp).sum(-1).mean())
    z1, t1 = f64(5), rng(1).uniform(size=5)
    s = 1 / (1 + np.exp(-z1))
    ref = -(t1 * np.log(s) + (1 - t1) * np.log(1 - s)).mean()
    assert float(nn.sigmoid_binary_cross_entropy(z1, t1)) == pytest.approx(ref)
    assert float(nn.mse(z1, t1)) == pytest.approx(((z1 - t1) ** 2).mean())
    z3 = np.zeros((2, 5, 3))  # extra batch axes: mean over all of them
    assert float(nn.softmax_cross_entropy(z3, np.zeros((2, 5), int))) == pytest.approx(np.log(3))


@no_overflow
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_losses_at_large_logits(dtype):
    z = np.array([[1e3, -1e3, 0.0]] * 3, dtype)
    y = np.array([0, 1, 2])
    loss, g = dp.value_and_grad(lambda z: nn.softmax_cross_entropy(z, y))(z)
    assert float(loss) == 1000.0  # rows: 0, 2000, 1000
    np.testing.assert_array_equal(g, np.array([[0, 0, 0], [1, -1, 0], [1, 0, -1]], dtype) / 3)
    assert g.dtype == dtype
    h = dp.hessian(lambda z: nn.softmax_cross_entropy(z, y))(z)
    assert np.isfinite(h).all() and not h.any()  # softmax is saturated: curvature 0
    # label smoothing 0.3 over K=3, one row [1e3, -1e3, 0] with label 0: logp = [0, -2000, -1000]
    ls = nn.softmax_cross_entropy(z[:1], y[:1], label_smoothing=0.3)
    assert float(ls) == pytest.approx(0.1 * 3000.0, rel=1e-6)

    zb, t = np.array([1e3, -1e3, 1e3, -1e3], dtype), np.array([1.0, 1.0, 0.0, 0.0], dtype)
    loss, g = dp.value_and_grad(nn.sigmoid_binary_cross_entropy)(zb, t)
    assert float(loss) == 500.0
    np.testing.assert_array_equal(g, np.array([0, -1, 1, 0], dtype) / 4)
    gg = dp.grad(lambda z: dnp.sum(dp.grad(nn.sigmoid_binary_cross_entropy)(z, t) ** 2))(zb)
    assert np.isfinite(gg).all()
    _, tangent = dp.jvp(lambda z: nn.softmax_cross_entropy(z, y), (z,), (np.ones_like(z),))
    assert float(tangent) == 0.0  # shifting every logit changes nothing


def test_accuracy():
    z = np.array([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    acc = nn.accuracy(z, np.array([0, 1, 1, 0]))
    assert acc == 0.75 and type(acc) is float
    assert nn.accuracy(np.array([2.0, -1.0, 0.5]), np.array([1, 0, 0])) == pytest.approx(2 / 3)
    seen = []
    dp.grad(lambda z: seen.append(nn.accuracy(z, np.array([0, 1, 1, 0]))) or dnp.sum(z))(z)
    assert seen == [0.75]  # works on traced logits too


# --- errors
def test_loss_errors():
    z = np.zeros((3, 4))
    with pytest.raises(TypeError, match="integer class indices.*float64"):
        nn.softmax_cross_entropy(z, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\).*\[4, -1\]"):
        nn.softmax_cross_entropy(z, np.array([0, 4, -1]))
    with pytest.raises(dp.StructureError, match=r"labels of shape \(3,\).*batch sizes differ"):
        nn.softmax_cross_entropy(z, np.array([0, 1]))
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.softmax_cross_entropy(z, np.array([0, 1, 2]), label_smoothing=2.0)
    with pytest.raises(dp.StructureError, match=r"pred has shape \(3, 4\).*\(4,\)"):
        nn.mse(z, np.zeros(4))
    with pytest.raises(dp.StructureError, match="logits has shape"):
        nn.sigmoid_binary_cross_entropy(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(IndexError, match=r"ids must lie in \[0, 3\)"):
        nn.embedding({"table": np.zeros((3, 2))}, np.array([0, 3]))


def test_layer_errors_name_the_parameter():
    p = nn.mlp_init(rng(), [3, 4, 2])
    p["layers"][1]["W"] = np.zeros((5, 2), np.float32)
    with pytest.raises(
        dp.StructureError, match=r"params\['layers'\]\[1\]\['W'\] of shape \(5, 2\)"
    ):
        nn.mlp(p, np.zeros((2, 3), np.float32))
    with pytest.raises(dp.StructureError, match=r"needs the key 'b'.*\['W'\]"):
        nn.dense({"W": np.zeros((2, 2))}, np.zeros(2))
    c = nn.conv2d_init(rng(), 3, 4, 3)
    with pytest.raises(dp.StructureError, match=r"C = x.shape\[1\] = 2"):
        nn.conv2d(c, np.zeros((1, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        nn.conv2d(c, np.zeros((3, 5, 5), np.float32))
    with pytest.raises(ValueError, match="padding"):
        nn.conv2d(c, np.zeros((1, 3, 5, 5), np.float32), padding="full")
    with pytest.raises(ValueError, match="smaller than the 3x3 window"):
        nn.conv2d(c, np.zeros((1, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match="stride"):
        nn.max_pool2d(np.zeros((1, 1, 4, 4)), 2, stride=0)
    with pytest.raises(dp.StructureError, match=r"params\['scale'\] has shape \(3,\)"):
        nn.layer_norm(nn.layer_norm_init(3), np.zeros((2, 4)))


# --- training end to end
def test_tiny_mlp_learns_a_separable_problem():
    r = rng(0)  # XOR of the signs, kept away from the axes: separable, but not linearly
    x = r.uniform(0.2, 1.0, size=(64, 2)) * r.choice([-1.0, 1.0], size=(64, 2))
    x = x.astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(np.int64)
    params = nn.mlp_init(rng(1), [2, 16, 2])

    def loss(p):
        return nn.softmax_cross_entropy(nn.mlp(p, x), y)

    step = dp.value_and_grad(loss)
    first = None
    for _ in range(300):
        value, grads = step(params)
        first = float(value) if first is None else first
        params = dp.tree.map(lambda p, g: p - 0.5 * g, params, grads)
    assert nn.accuracy(nn.mlp(params, x), y) == 1.0
    assert float(loss(params)) < 0.1 * first
    assert all(a.dtype == np.float32 for a in dp.tree.leaves(params))


# --- GPU
@pytest.mark.gpu
def test_gpu_layers_match_cpu():
    cp = require_cupy()
    p = nn.conv2d_init(rng(), 2, 3, 3, dtype=np.float64)
    pg = nn.conv2d_init(rng(), 2, 3, 3, dtype=np.float64, device="gpu")
    assert isinstance(pg["W"], cp.ndarray) and isinstance(pg["b"], cp.ndarray)
    x = f64(2, 2, 6, 6)
    xg = cp.asarray(x)
    np.testing.assert_allclose(nn.conv2d(pg, xg, 2, "same").get(), nn.conv2d(p, x, 2, "same"))
    np.testing.assert_allclose(nn.max_pool2d(xg, 2).get(), nn.max_pool2d(x, 2))
    y = np.array([0, 2])

    def loss(p, x):
        h = nn.flatten(nn.avg_pool2d(nn.conv2d(p, x, padding=1), 2))
        h = nn.dropout(h, 0.5, rng(3), True)
        return nn.softmax_cross_entropy(h[:, :3], y) + nn.mse(h, h * 0.5)

    g_cpu = dp.grad(loss)(p, x)
    g_gpu = dp.grad(loss)(pg, xg)
    assert isinstance(g_gpu["W"], cp.ndarray)
    np.testing.assert_allclose(g_gpu["W"].get(), g_cpu["W"], rtol=1e-10)
    assert nn.accuracy(cp.asarray(f64(4, 3)), cp.asarray([0, 1, 2, 0])) == nn.accuracy(
        f64(4, 3), np.array([0, 1, 2, 0])
    )


def test_cross_entropy_with_masked_classes():
    """Logits of -inf (classes masked out) the labels give no weight: -log p(label), finite,
    with finite gradients, eager and jitted, as PyTorch's and optax's integer-label losses;
    0 * -inf made the loss and its gradient NaN. With label smoothing every class has
    weight, and a masked one makes the loss inf."""
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        x = rng.standard_normal((16, 7)).astype(dtype)
        y = rng.integers(0, 7, 16)
        x[rng.random(x.shape) < 0.4] = -np.inf
        x[np.arange(16), y] = 1.0
        logp = x.astype(np.float64) - np.log(np.sum(np.exp(x.astype(np.float64)), axis=-1,
                                                    keepdims=True))
        want = -np.mean(logp[np.arange(16), y])
        loss = lambda x: nn.softmax_cross_entropy(x, y)  # noqa: B023, E731
        for f in (loss, dp.jit(loss), dp.jit(loss, fuse=False)):
            assert float(f(x)) == pytest.approx(want, rel=1e-6 if dtype == np.float32 else 1e-14)
        g = dp.grad(loss)(x)
        np.testing.assert_allclose(g, (np.exp(logp) - np.eye(7)[y]) / 16, atol=1e-7)
        assert float(nn.softmax_cross_entropy(x, y, label_smoothing=0.1)) == np.inf
