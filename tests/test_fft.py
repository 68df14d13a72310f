"""diffprog.numpy.fft: every transform against NumPy's values and against central
differences in both modes to second order, over n= / s= / axes / norm= variants, real and
complex inputs in double and single precision; on CuPy (one gpu-marked test) and under
dp.jit; np.fft.* on tracers dispatching; closed forms (Parseval) and the errors."""

from __future__ import annotations

import numpy as np
import pytest

import diffprog as dp
import diffprog.numpy as dnp
from backends import NUMPY, on_gpu, under_jit, under_vmap
from diffprog.testing import check_grads

F = dnp.fft
# name -> (function of (module, a), takes a real input?, shape)
CASES = {
    "fft": (lambda m, a: m.fft(a), False, (5,)),
    "fft_n_crop_axis0_ortho": (lambda m, a: m.fft(a, n=3, axis=0, norm="ortho"), False, (4, 3)),
    "fft_n_pad_forward": (lambda m, a: m.fft(a, n=7, norm="forward"), False, (2, 4)),
    "fft_of_real": (lambda m, a: m.fft(a), True, (2, 5)),
    "ifft": (lambda m, a: m.ifft(a, axis=0), False, (4, 3)),
    "ifft_n_ortho": (lambda m, a: m.ifft(a, n=6, norm="ortho"), False, (5,)),
    "fft2": (lambda m, a: m.fft2(a), False, (3, 4)),
    "fft2_s_axes": (lambda m, a: m.fft2(a, s=(2, 5), axes=(0, 2)), False, (3, 2, 4)),
    "ifft2_forward": (lambda m, a: m.ifft2(a, norm="forward"), False, (2, 3, 4)),
    "fftn": (lambda m, a: m.fftn(a), False, (2, 3, 2)),
    "fftn_s_axes": (lambda m, a: m.fftn(a, s=(4, 2), axes=(1, 0)), False, (3, 3)),
    "ifftn_ortho": (lambda m, a: m.ifftn(a, axes=(0, -1), norm="ortho"), False, (2, 3, 4)),
    "rfft": (lambda m, a: m.rfft(a), True, (6,)),
    "rfft_odd_n_axis0": (lambda m, a: m.rfft(a, n=5, axis=0, norm="ortho"), True, (4, 3)),
    "rfft_pad_forward": (lambda m, a: m.rfft(a, n=9, norm="forward"), True, (2, 6)),
    "irfft": (lambda m, a: m.irfft(a), False, (2, 4)),
    "irfft_odd_n": (lambda m, a: m.irfft(a, n=7), False, (4,)),
    "irfft_crop_axis0_ortho": (lambda m, a: m.irfft(a, n=4, axis=0, norm="ortho"), False, (5, 2)),
    "irfft_pad_forward": (lambda m, a: m.irfft(a, n=10, norm="forward"), False, (3,)),
    "irfft_of_real": (lambda m, a: m.irfft(a), True, (5,)),
    "rfftn": (lambda m, a: m.rfftn(a), True, (3, 4)),
    "rfftn_s_axes": (lambda m, a: m.rfftn(a, s=(3, 5), axes=(0, 1), norm="ortho"), True, (4, 4)),
    "rfft2": (lambda m, a: m.rfft2(a, s=(2, 3)), True, (3, 4)),
    "irfft2_forward": (lambda m, a: m.irfft2(a, norm="forward"), False, (2, 3, 3)),
    "irfftn": (lambda m, a: m.irfftn(a), False, (3, 3)),
    "irfftn_s_axes": (lambda m, a: m.irfftn(a, s=(2, 5), axes=(0, 2)), False, (3, 2, 4)),
    "hfft": (lambda m, a: m.hfft(a), False, (4,)),
    "hfft_odd_ortho": (lambda m, a: m.hfft(a, n=5, axis=0, norm="ortho"), False, (3, 2)),
    "ihfft": (lambda m, a: m.ihfft(a), True, (6,)),
    "ihfft_forward": (lambda m, a: m.ihfft(a, n=5, norm="forward"), True, (2, 4)),
    "fftshift": (lambda m, a: m.fftshift(a), False, (3, 4)),
    "ifftshift_axes": (lambda m, a: m.ifftshift(a, axes=1), True, (3, 5)),
    "roundtrip": (lambda m, a: m.irfft(m.rfft(a) * (0.5 - 1j), n=6), True, (2, 6)),
    # an axis named twice is transformed twice, each time to its own size (NumPy's order)
    "fftn_repeated_axis_s": (lambda m, a: m.fftn(a, s=(3, 5), axes=(0, 0)), False, (4, 3)),
    "ifft2_repeated_negative": (lambda m, a: m.ifft2(a, axes=(-1, 1), norm="ortho"), False, (2, 3)),
    "rfftn_repeated_axes": (lambda m, a: m.rfftn(a, s=(4, 3, 6), axes=(1, 0, 1)), True, (3, 5)),
    "irfftn_repeated_axes": (lambda m, a: m.irfftn(a, s=(3, 5, 4), axes=(0, 1, 0)), False, (2, 3)),
    "fftn_s_minus_one_whole_axis": (lambda m, a: m.fftn(a, s=(-1, 5), axes=(0, 1)), False, (3, 4)),
    "fftshift_repeated_axes": (lambda m, a: m.fftshift(a, axes=(1, -1, 0)), True, (3, 5)),
}  # fmt: skip
DTYPES = [np.float64, np.float32]


def _input(shape, real, dtype):
    rng = np.random.default_rng(sum(shape))
    a = rng.normal(size=shape)
    if not real:
        a = a + 1j * rng.normal(size=shape)
    return a.astype(dtype if real else np.result_type(dtype, np.complex64))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(CASES))
def test_fft(name, dtype, backend=NUMPY):
    f, real, shape = CASES[name]
    a = _input(shape, real, dtype)
    want = f(np.fft, a)
    got = f(F, a)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    backend.check_grads(lambda a: f(F, a), (a,), order=2)


test_fft_on_gpu = on_gpu(test_fft)
test_fft_under_jit = under_jit(test_fft)


def test_numpy_fft_on_tracers_dispatches():
    x = np.random.default_rng(1).normal(size=8)

    def f(x):
        spectrum = np.fft.rfft(x * np.hanning(8))
        return np.sum(np.abs(np.fft.irfft(spectrum * np.exp(-1j * np.fft.rfftfreq(8)), n=8)) ** 2)

    check_grads(f, (x,))
    np.testing.assert_allclose(f(x), dnp.sum(dnp.abs(F.irfft(F.rfft(x * np.hanning(8)) *
                               np.exp(-1j * np.fft.rfftfreq(8)), n=8)) ** 2))  # fmt: skip
    for name in ("fft", "ifft", "fft2", "fftn", "ifftn", "rfftn", "irfftn", "hfft", "ihfft",
                 "fftshift", "ifftshift"):  # fmt: skip
        check_grads(lambda x: dnp.real(getattr(np.fft, name)(x.reshape(2, 4)) ** 2), (x,), order=1)


def test_parseval_closed_form():
    """sum |fft(x)|^2 = n sum |x|^2: the gradient is 2 n conj(x) (JAX's convention)."""
    z = _input((6,), False, np.float64)
    g = dp.grad(lambda z: dnp.sum(dnp.abs(F.fft(z)) ** 2))(z)
    np.testing.assert_allclose(g, 2 * 6 * np.conj(z))
    x = z.real
    np.testing.assert_allclose(dp.grad(lambda x: dnp.sum(dnp.abs(F.fft(x, norm="ortho")) ** 2))(x),
                               2 * x)  # fmt: skip
    # holomorphic: d/dz_k of fft(z)_j is exp(-2 pi i jk / n)
    n = 6
    dft = np.exp(-2j * np.pi * np.outer(np.arange(n), np.arange(n)) / n)
    np.testing.assert_allclose(dp.jacfwd(F.fft, holomorphic=True)(z), dft, atol=1e-12)
    np.testing.assert_allclose(dp.jacrev(F.fft, holomorphic=True)(z), dft, atol=1e-12)


def test_frequencies_and_a_traced_spacing():
    assert np.array_equal(F.fftfreq(5, 0.1), np.fft.fftfreq(5, 0.1))
    assert np.array_equal(F.rfftfreq(6), np.fft.rfftfreq(6))
    g = dp.grad(lambda d: dnp.sum(F.fftfreq(4, d)))(0.5)
    np.testing.assert_allclose(g, -np.sum(np.fft.fftfreq(4)) / 0.25)


def test_vmap_of_fft_matches_a_loop():
    z = _input((3, 4, 5), False, np.float64)
    f = lambda a: F.irfft(F.fft(a, axis=0)[1:], n=6)  # noqa: E731
    np.testing.assert_allclose(dp.vmap(f)(z), np.stack([f(a) for a in z]), atol=1e-12)


def test_bad_arguments_are_named():
    a = np.ones(4)
    with pytest.raises(ValueError, match="Invalid norm value 'unit'"):
        F.fft(a, norm="unit")
    with pytest.raises(TypeError, match="numpy.fft.fft: the `out=` option is not supported"):
        F.fft(a, out=np.ones(4, complex))
    with pytest.raises(ValueError, match=r"s=\(2,\) and axes=\(0, 1\)"):
        F.fftn(np.ones((2, 2)), s=(2,), axes=(0, 1))
    with pytest.raises(ValueError, match="invalid number of data points"):
        F.irfft(np.ones(1))
    for n in (0, -1):  # (in s=, -1 is the whole axis; n has no such value, as in NumPy)
        with pytest.raises(ValueError, match=rf"Invalid number of FFT data points \({n}\)"):
            F.rfft(np.ones(4), n=n)
    with pytest.raises(ValueError, match="no axes to transform"):
        F.fft(np.float64(1.0))
test_fft_under_vmap = under_vmap(test_fft)
