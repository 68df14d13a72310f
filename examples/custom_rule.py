"""A numerically stable derivative with dp.custom_vjp, checked with dp.testing.check_grads.

The Euclidean norm |x| has gradient x / |x|, which the plain formula sqrt(sum(x^2)) gets as
0/0 = nan at x = 0, and which overflows for large x. `safe_norm` computes the value by
scaling and gives the subgradient 0 at the origin, through a custom rule.

Run: python examples/custom_rule.py
"""

import argparse

import numpy as np

import diffprog as dp
import diffprog.numpy as dnp
from diffprog.testing import check_grads


@dp.custom_vjp
def safe_norm(x):
    scale = dnp.max(dnp.abs(x))
    if scale == 0.0:
        return scale
    return scale * dnp.sqrt(dnp.sum((x / scale) ** 2))  # no overflow at |x| ~ 1e200


def safe_norm_fwd(x):
    n = safe_norm(x)
    return n, (x, n)


def safe_norm_bwd(residuals, g):
    x, n = residuals
    if n == 0.0:  # a comparison: float(n) would be refused on a traced n
        return (0.0 * x,)  # the subgradient at the origin
    return (g * x / n,)


safe_norm.defvjp(safe_norm_fwd, safe_norm_bwd)


def main(smoke: bool = False) -> None:
    x = np.array([3.0, -4.0])
    print("norm:", safe_norm(x), " gradient:", dp.grad(safe_norm)(x))

    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        naive = dp.grad(lambda x: dnp.sqrt(dnp.sum(x**2)))
        print("at 0:     naive", naive(np.zeros(2)), " safe", dp.grad(safe_norm)(np.zeros(2)))
        big = np.array([3e200, -4e200])
        print("at 1e200: naive", naive(big), " safe", dp.grad(safe_norm)(big))

    # The rule agrees with central differences, to second order (its bwd is differentiable).
    for trial in range(2 if smoke else 20):
        point = np.random.default_rng(trial).normal(size=3)
        check_grads(safe_norm, (point,), order=2, modes=("rev",))
    print("check_grads: the custom rule matches central differences to second order")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a quick run for the tests")
    main(parser.parse_args().smoke)
