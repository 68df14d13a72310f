"""Fuzzed complex programs: random straight-line programs over complex and real parameters
mixing holomorphic functions, the non-holomorphic parts (conj, real, imag, abs, angle, a
write through x.real), casts, FFTs, products, reductions, var and norm, and linalg, checked against central differences in both modes
to second order and under dp.jit. Each program is drawn from a seed (its test id) and each
step is run at once on the concrete values: a step that would land near a kink, a branch
cut or a singularity, or produce a large value, is replaced by a smooth one (as
tests/fuzz_programs.py does for real programs)."""

from __future__ import annotations

import numpy as np
import pytest

import diffprog.numpy as dnp
from backends import check_jit
from diffprog.testing import check_grads

# x.astype(float) of a complex x: NumPy warns when the programs run untraced
pytestmark = pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
SHAPES = [(3,), (2, 3), (3, 3), (4,)]


def _away(x, lo=0.15):  # every entry at least `lo` from 0
    return bool(np.all(np.abs(np.asarray(x)) > lo))


def _off_cut(x):  # away from the negative real axis (log, sqrt, angle) and from 0
    x = np.asarray(x)
    return _away(x, 0.2) and bool(np.all((x.real > 0.1) | (np.abs(x.imag) > 0.1)))


# name -> (function, guard on the operand's value)
UNARY = {
    "exp": (lambda x: dnp.exp(0.3 * x), None),
    "sin": (dnp.sin, None),
    "tanh": (lambda x: dnp.tanh(0.3 * x), None),
    "square": (lambda x: x * x, None),
    "conj": (dnp.conj, None),
    "real": (dnp.real, None),
    "imag": (lambda x: x.imag, None),
    "abs": (dnp.abs, _away),
    "angle": (dnp.angle, _off_cut),
    "log": (dnp.log, _off_cut),
    "sqrt": (np.sqrt, _off_cut),
    "reciprocal": (lambda x: 1.0 / x, lambda x: _away(x, 0.3)),
    "to_complex": (lambda x: x.astype(np.complex128) * (1 - 0.5j), None),
    "to_real": (lambda x: x.astype(np.float64), None),
    "fft": (lambda x: dnp.fft.fft(x, norm="ortho"), lambda x: np.ndim(x) >= 1),
    "ifft_axis0": (lambda x: np.fft.ifft(x, axis=0), lambda x: np.ndim(x) >= 1),
    "rfft": (lambda x: dnp.fft.rfft(dnp.real(x), n=4), lambda x: np.ndim(x) >= 1),
    "irfft": (lambda x: dnp.fft.irfft(x, n=5), lambda x: np.ndim(x) >= 1),
    "fftshift": (dnp.fft.fftshift, None),
    "sum": (lambda x: dnp.sum(x, axis=-1), lambda x: np.ndim(x) >= 1),
    "cumsum": (lambda x: dnp.cumsum(x, axis=0), lambda x: np.ndim(x) >= 1),
    "mean_abs2": (lambda x: dnp.mean(dnp.abs(x) ** 2), None),
    "flip": (lambda x: x[::-1] if np.ndim(x) else x, None),
    "T": (lambda x: x.T, None),
    "power_complex": (lambda x: x ** (0.7 + 0.2j), _off_cut),
    "arcsinh": (dnp.arcsinh, lambda x: _away(np.asarray(x) ** 2 + 1, 0.3)),
    "log1p": (dnp.log1p, lambda x: _off_cut(np.asarray(x) + 1)),
    "sign": (dnp.sign, _away),
    "var": (lambda x: dnp.var(x, axis=-1), lambda x: np.ndim(x) >= 1),
    "norm": (lambda x: dnp.linalg.norm(x, axis=0),
             lambda x: np.ndim(x) >= 1 and _away(np.linalg.norm(x, axis=0), 0.2)),
    "prod": (lambda x: dnp.prod(x, axis=0), lambda x: np.ndim(x) >= 1),
    "fft2": (lambda x: dnp.fft.fft2(x, norm="ortho"), lambda x: np.ndim(x) == 2),
    "rfftn": (lambda x: dnp.fft.rfftn(dnp.real(x), s=(3,) * np.ndim(x), norm="ortho"),
              lambda x: np.ndim(x) >= 1),
    "irfftn_axis_twice": (lambda x: dnp.fft.irfftn(x, axes=(0, 0)),
                          lambda x: np.ndim(x) >= 1 and np.shape(x)[0] > 1),
    "hfft": (lambda x: dnp.fft.hfft(x, n=4, norm="forward"), lambda x: np.ndim(x) >= 1),
    "ihfft": (lambda x: dnp.fft.ihfft(dnp.real(x)), lambda x: np.ndim(x) >= 1),
    "inv": (lambda x: dnp.linalg.inv(x + 3 * np.eye(len(x))), lambda x: _square(x)),
    "det": (dnp.linalg.det, lambda x: _square(x)),
    "eigvalsh": (lambda x: dnp.linalg.eigvalsh(x + dnp.conj(x.T)), lambda x: _square(x)),
    "svdvals": (lambda x: dnp.linalg.svd(x, compute_uv=False),
                lambda x: np.ndim(x) == 2 and _away(np.linalg.svd(x, compute_uv=False), 0.1)),
    "write_real_part": (lambda x: _written_real_part(x), None),
}
BINARY = {
    "add": (lambda x, y: x + y, None),
    "subtract": (lambda x, y: x - y, None),
    "multiply": (lambda x, y: x * y, None),
    "divide": (lambda x, y: x / y, lambda x, y: _away(y, 0.3)),
    "vdot": (dnp.vdot, lambda x, y: np.size(x) == np.size(y)),
    "matmul": (lambda x, y: x @ y, lambda x, y: np.ndim(x) >= 1 and np.ndim(y) >= 1
               and np.shape(x)[-1] == np.shape(y)[-2 if np.ndim(y) > 1 else 0]),  # fmt: skip
    "where": (lambda x, y: dnp.where(dnp.real(x) > 0, x, y),
              lambda x, y: bool(np.all(np.abs(np.real(x)) > 0.1))),  # fmt: skip
    "power_complex": (lambda x, y: x ** (0.3 * y), lambda x, y: _off_cut(x)),
    "solve": (lambda x, y: dnp.linalg.solve(x + 3 * np.eye(len(x)), y),
              lambda x, y: _square(x) and np.shape(y)[:1] == np.shape(x)[:1]),
    "outer": (dnp.outer, lambda x, y: np.size(x) * np.size(y) <= 36),
}


def _square(x):
    return np.ndim(x) == 2 and np.shape(x)[0] == np.shape(x)[1]


def _written_real_part(x):  # a write through x.real (a view, as in NumPy)
    w = x * 1.0
    if np.ndim(w) and np.iscomplexobj(w):
        w.real[..., :1] = dnp.imag(x[..., :1]) * 2
    return w


def _draw(seed):
    """(params, steps): the parameters and a list of (op, operand indices) that run on them."""
    rng = np.random.default_rng(seed)
    params = {}
    for key in ("z", "w", "x")[: rng.integers(2, 4)]:
        shape = SHAPES[rng.integers(len(SHAPES))]
        value = rng.normal(size=shape) + (1j * rng.normal(size=shape) if key != "x" else 0)
        params[key] = value
    values = [params[k] for k in sorted(params)]
    steps = []
    for _ in range(int(rng.integers(4, 9))):
        binary = rng.random() < 0.4
        table = BINARY if binary else UNARY
        names = sorted(table)
        for _attempt in range(20):
            name = names[rng.integers(len(names))]
            fn, guard = table[name]
            args = [int(rng.integers(len(values))) for _ in range(2 if binary else 1)]
            operands = [values[i] for i in args]
            try:
                if guard is not None and not guard(*operands):
                    continue
                out = fn(*operands)
            except ValueError:  # shapes that do not broadcast
                continue
            if np.all(np.isfinite(out)) and np.max(np.abs(out), initial=0.0) < 30:
                steps.append((table, name, args))
                values.append(out)
                break
    return params, steps


def _program(steps):
    def run(params):
        values = [params[k] for k in sorted(params)]
        for table, name, args in steps:
            values.append(table[name][0](*(values[i] for i in args)))
        return values[-1], values[len(params)]  # the last value and the first step's

    return run


@pytest.mark.parametrize("seed", range(60))
def test_random_complex_programs(seed):
    params, steps = _draw(seed)
    f = _program(steps)
    try:
        check_grads(f, (params,), order=2)
    except AssertionError as e:
        raise AssertionError(f"seed {seed}: {[(n, a) for _, n, a in steps]}: {e}") from None


@pytest.mark.parametrize("seed", range(0, 60, 5))
def test_random_complex_programs_under_jit(seed):
    params, steps = _draw(seed)
    check_jit(_program(steps), (params,))
