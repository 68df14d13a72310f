"""Fit a damped multi-tone signal through a spectral (FFT) loss, with complex parameters.

A measured signal is a sum of damped complex exponentials c_k exp((-g_k + 2 pi i f_k) t)
plus noise, at known frequencies f_k. We recover the complex amplitudes c_k and the real
damping rates g_k by gradient descent on the misfit of the spectra: the loss compares
fft(model) with fft(measured) inside a band, so it is a real function of complex (c) and
real (g) parameters, and dp.grad returns, for c, df/dRe(c) - i df/dIm(c) (JAX's
convention). dp.optim.adam takes that gradient as it is: its steps are conjugated, so it
descends on complex parameters without any conj in user code.

Run: python examples/fft_signal_fit.py
"""

import argparse

import numpy as np

import diffprog as dp
import diffprog.numpy as dnp

N, RATE = 256, 64.0  # samples, samples per second
FREQS = np.array([3.0, 7.5, 12.0])  # Hz, known
TRUE = {"c": np.array([1.0 + 0.5j, -0.3 + 0.8j, 0.6 - 0.2j]), "g": np.array([0.4, 1.2, 0.8])}
BAND = np.abs(np.fft.fftfreq(N, 1 / RATE)) < 20.0  # the frequencies the loss compares


def model(params, t):
    """sum_k c_k exp((-g_k + 2 pi i f_k) t), at the times t."""
    rates = -params["g"] + 2j * np.pi * FREQS
    return dnp.sum(params["c"] * dnp.exp(t[:, None] * rates), axis=1)


def spectral_loss(params, t, measured_spectrum):
    misfit = (dnp.fft.fft(model(params, t)) - measured_spectrum) * BAND
    return dnp.sum(dnp.abs(misfit) ** 2) / N


def main(steps):
    rng = np.random.default_rng(0)
    t = np.arange(N) / RATE
    noise = 0.05 * (rng.normal(size=N) + 1j * rng.normal(size=N))
    measured_spectrum = np.fft.fft(model(TRUE, t) + noise)

    params = {"c": np.zeros(3, dtype=complex), "g": np.full(3, 0.5)}
    opt = dp.optim.adam(0.05)
    state = opt.init(params)
    loss_and_grad = dp.value_and_grad(spectral_loss)
    for step in range(steps + 1):
        loss, grads = loss_and_grad(params, t, measured_spectrum)
        if step % (steps // 5) == 0:
            print(f"step {step:4d}  loss {float(loss):.5f}")
        updates, state = opt.update(grads, state, params)
        params = dp.optim.apply_updates(params, updates)

    print("amplitudes:", np.round(params["c"], 2), " true:", TRUE["c"])
    print("damping:   ", np.round(params["g"], 2), " true:", TRUE["g"])
    if steps >= 400:  # the full run recovers the parameters to within the noise
        assert np.allclose(params["c"], TRUE["c"], atol=0.1), params["c"]
        assert np.allclose(params["g"], TRUE["g"], atol=0.15), params["g"]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="a short run (for the tests)")
    main(50 if parser.parse_args().smoke else 600)
