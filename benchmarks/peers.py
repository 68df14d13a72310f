"""Peer libraries on the same workloads: PyTorch eager, HIPS autograd, JAX eager and jit.

Owns one adapter class per peer, each importing its library lazily (a missing library is a
reason to report, never an error) and building `harness.Impl`s for W1, W2, the MLP (W3/W4)
and its HVP (W5) from the same programs in `workloads.py`, written against the peer's array
module. Each peer is used as its users would: PyTorch with leaf tensors and
`torch.autograd.grad` (double backward for the HVP), autograd with `value_and_grad`
(reverse over reverse for the HVP), JAX with `value_and_grad` (and `jvp` of it for the HVP),
eagerly and under `jax.jit`. Imports: numpy and the sibling benchmark modules; torch,
autograd and jax only when asked for.
"""

from __future__ import annotations

from typing import Any

from harness import Impl, to_numpy
from workloads import chain, loop, mlp_loss

NAMES = ("torch", "autograd", "jax")


class Unavailable(Exception):
    """The peer cannot run here (not installed, or no GPU build for --device gpu)."""


def load(names: list[str], device: str) -> tuple[list[Any], dict[str, str], dict[str, str]]:
    """(peers, versions, skipped): the adapters that loaded, their library versions, and
    why each of the others did not."""
    peers, versions, skipped = [], {}, {}
    for name in names:
        try:
            peer = {"torch": TorchPeer, "autograd": AutogradPeer, "jax": JaxPeer}[name](device)
        except ImportError as e:
            skipped[name] = f"not installed ({e.name or e})"
        except Unavailable as e:
            skipped[name] = str(e)
        else:
            peers.append(peer)
            versions.update(peer.versions)
    return peers, versions, skipped


def _flat(params: dict) -> list[Any]:
    return [params[n][k] for n in sorted(params) for k in ("W", "b")]


def _unflat(names: list[str], leaves: list[Any]) -> dict:
    it = iter(leaves)
    return {n: {"W": next(it), "b": next(it)} for n in names}


class TorchPeer:
    key = "torch"

    def __init__(self, device: str) -> None:
        import torch

        if device == "gpu" and not torch.cuda.is_available():
            raise Unavailable("PyTorch has no CUDA device here (CPU build?)")
        self.torch, self.dev = torch, ("cuda" if device == "gpu" else "cpu")
        self.versions = {"torch": torch.__version__}
        self.label = "PyTorch eager" + (" CUDA" if device == "gpu" else " CPU")

    def sync(self, out: Any) -> None:
        if self.dev == "cuda":
            self.torch.cuda.synchronize()

    def _t(self, a: Any) -> Any:
        return self.torch.as_tensor(to_numpy(a), device=self.dev)

    def _vg(self, f, x: Any):
        def run():
            xx = x.detach().requires_grad_()
            y = f(xx)
            (g,) = self.torch.autograd.grad(y, xx)
            return y.detach(), g

        return run

    def w1(self, x: Any, n: int) -> list[Impl]:
        f = lambda x: chain(x, n, self.torch).sum()
        return [Impl(self.label, self._vg(f, self._t(x)), sync=self.sync)]

    def w2(self, x: Any, n: int) -> list[Impl]:
        return [Impl(self.label, self._vg(lambda x: loop(x, n, self.torch), self._t(x)),
                     sync=self.sync)]

    def _mlp(self, problem: tuple):
        torch = self.torch
        params, x, labels, rows, v = problem
        p = {n: {k: self._t(a) for k, a in d.items()} for n, d in params.items()}
        vflat = [self._t(a) for a in _flat(v)]
        x, labels, rows = self._t(x), self._t(labels), self._t(rows)
        names = sorted(p)

        def loss_of(leaves: list[Any]) -> Any:
            q = _unflat(names, leaves)
            return mlp_loss(q, x, labels, rows, torch, lambda z: torch.log_softmax(z, dim=-1))

        def grad():
            leaves = [a.detach().requires_grad_() for a in _flat(p)]
            loss = loss_of(leaves)
            return loss.detach(), _unflat(names, torch.autograd.grad(loss, leaves))

        def hvp():  # reverse over reverse (double backward), PyTorch's usual HVP
            leaves = [a.detach().requires_grad_() for a in _flat(p)]
            loss = loss_of(leaves)
            gs = torch.autograd.grad(loss, leaves, create_graph=True)
            dot = sum((g * w).sum() for g, w in zip(gs, vflat))
            return loss.detach(), _unflat(names, torch.autograd.grad(dot, leaves))

        return grad, hvp

    def w3(self, problem: tuple) -> list[Impl]:
        grad, _ = self._mlp(problem)
        return [Impl(self.label, grad, sync=self.sync)]

    def w5(self, problem: tuple) -> list[Impl]:
        grad, hvp = self._mlp(problem)
        gname = f"{self.label} gradient"
        return [Impl(f"{self.label} HVP (rev-over-rev)", hvp, sync=self.sync, pair=gname),
                Impl(gname, grad, role="grad", sync=self.sync)]


class AutogradPeer:
    key = "autograd"

    def __init__(self, device: str) -> None:
        import autograd
        import autograd.numpy as anp
        from autograd.differential_operators import grad_and_aux
        from autograd.scipy.special import logsumexp

        if device == "gpu":
            raise Unavailable("HIPS autograd runs on NumPy only (no GPU)")
        self.ag, self.anp, self.grad_and_aux = autograd, anp, grad_and_aux
        self.log_softmax = lambda z: z - logsumexp(z, axis=-1, keepdims=True)
        self.versions = {"autograd": _dist_version("autograd")}
        self.label = "HIPS autograd"

    def w1(self, x: Any, n: int) -> list[Impl]:
        vg = self.ag.value_and_grad(lambda x: self.anp.sum(chain(x, n, self.anp)))
        return [Impl(self.label, lambda: vg(x))]

    def w2(self, x: Any, n: int) -> list[Impl]:
        vg = self.ag.value_and_grad(lambda x: loop(x, n, self.anp))
        return [Impl(self.label, lambda: vg(x))]

    def _loss(self, problem: tuple):
        _, x, labels, rows, _ = problem
        return lambda p: mlp_loss(p, x, labels, rows, self.anp, self.log_softmax)

    def w3(self, problem: tuple) -> list[Impl]:
        vg = self.ag.value_and_grad(self._loss(problem))
        return [Impl(self.label, lambda: vg(problem[0]))]

    def w5(self, problem: tuple) -> list[Impl]:
        params, v = problem[0], problem[4]
        loss, anp = self._loss(problem), self.anp
        vg = self.ag.value_and_grad(loss)

        def vdot_and_loss(p: Any) -> tuple[Any, Any]:
            value, g = vg(p)
            dot = sum(anp.sum(g[n][k] * v[n][k]) for n in sorted(v) for k in ("W", "b"))
            return dot, value

        rr = self.grad_and_aux(vdot_and_loss)

        def hvp():
            hv, value = rr(params)
            return value, hv

        gname = f"{self.label} gradient"
        return [Impl(f"{self.label} HVP (rev-over-rev)", hvp, pair=gname),
                Impl(gname, lambda: vg(params), role="grad")]


class JaxPeer:
    key = "jax"
    label = "JAX"

    def __init__(self, device: str) -> None:
        import jax

        jax.config.update("jax_enable_x64", True)  # W1-W3 are float64
        import jax.numpy as jnp

        backend = "gpu" if device == "gpu" else "cpu"
        try:
            self.dev = jax.devices(backend)[0]
        except RuntimeError as e:
            raise Unavailable(f"JAX has no {backend} backend here ({e})") from None
        self.jax, self.jnp = jax, jnp
        self.versions = {"jax": jax.__version__, "jaxlib": _dist_version("jaxlib")}
        self.log_softmax = lambda z: jax.nn.log_softmax(z, axis=-1)

    def sync(self, out: Any) -> None:
        self.jax.block_until_ready(out)

    def _put(self, tree: Any) -> Any:
        return self.jax.device_put(to_numpy(tree), self.dev)

    def _both(self, f, args: tuple, name: str = "", pair: str | None = None,
              role: str = "peer", jit_skip: str | None = None) -> list[Impl]:
        jitted = self.jax.jit(f)
        g = f" {pair}" if pair else ""
        return [
            Impl(f"JAX eager{name}", lambda: f(*args), role=role, sync=self.sync,
                 pair=f"JAX eager{g}" if pair else None),
            Impl(f"JAX jit{name}", lambda: jitted(*args), role=role, sync=self.sync,
                 pair=f"JAX jit{g}" if pair else None, skip=jit_skip),
        ]

    def w1(self, x: Any, n: int) -> list[Impl]:
        f = self.jax.value_and_grad(lambda x: self.jnp.sum(chain(x, n, self.jnp)))
        return self._both(f, (self._put(x),))

    def w2(self, x: Any, n: int) -> list[Impl]:
        f = self.jax.value_and_grad(lambda x: loop(x, n, self.jnp))
        skip = "jax.jit cannot trace a data-dependent Python if (needs lax.cond)"
        return self._both(f, (self._put(x),), jit_skip=skip)

    def _loss(self):
        return lambda p, x, labels, rows: mlp_loss(p, x, labels, rows, self.jnp, self.log_softmax)

    def w3(self, problem: tuple) -> list[Impl]:
        params, x, labels, rows, _ = self._put(problem)
        return self._both(self.jax.value_and_grad(self._loss()), (params, x, labels, rows))

    def w5(self, problem: tuple) -> list[Impl]:
        params, x, labels, rows, v = self._put(problem)
        jax, loss = self.jax, self._loss()

        def hvp(p, v, x, labels, rows):  # forward over reverse, JAX's recommended HVP
            vg = jax.value_and_grad(lambda q: loss(q, x, labels, rows))
            (value, _), (_, hv) = jax.jvp(vg, (p,), (v,))
            return value, hv

        args = (params, x, labels, rows)
        return [*self._both(hvp, (params, v, x, labels, rows), " HVP (fwd-over-rev)", "gradient"),
                *self._both(jax.value_and_grad(loss), args, " gradient", role="grad")]


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"
