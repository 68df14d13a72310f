"""Fit the polynomial coefficients of diffprog/compile/vmath.py (run once; prints them).

Each polynomial is a near-minimax fit of a smooth function on an interval: weighted least
squares on Chebyshev nodes, computed in mpmath at 50 digits, then reweighted (Lawson's
iteration) toward equal ripple of the weighted error, which is the error the function's
result sees. Usage: python scripts/fit_vmath.py
"""

from __future__ import annotations

import mpmath as mp

mp.mp.dps = 50


def fit(g, weight, lo, hi, degree, nodes=400, rounds=30):
    """Coefficients c[0..degree] (low first) of P with max |weight(v) (P(v) - g(v))| near
    its minimum over [lo, hi], and that maximum estimated on the nodes."""
    vs = [
        (lo + hi) / 2 + (hi - lo) / 2 * mp.cos(mp.pi * (k + mp.mpf(0.5)) / nodes)
        for k in range(nodes)
    ]
    gs = [g(v) for v in vs]
    ws = [weight(v) for v in vs]
    lawson = [mp.mpf(1)] * nodes
    for _ in range(rounds):
        a = mp.matrix(nodes, degree + 1)
        b = mp.matrix(nodes, 1)
        for i, v in enumerate(vs):
            s = ws[i] * mp.sqrt(lawson[i])
            for j in range(degree + 1):
                a[i, j] = s * v**j
            b[i] = s * gs[i]
        c, _ = mp.qr_solve(a, b)
        errs = [abs(ws[i] * (mp.polyval(list(c)[::-1], vs[i]) - gs[i])) for i in range(nodes)]
        total = sum(lawson[i] * errs[i] for i in range(nodes))
        lawson = [lawson[i] * errs[i] / total for i in range(nodes)]
    coefs = [float(x) for x in c]
    worst = max(
        abs(ws[i] * (mp.polyval([mp.mpf(x) for x in coefs][::-1], vs[i]) - gs[i]))
        for i in range(nodes)
    )
    return coefs, worst


def main() -> None:
    ln2_2 = mp.log(2) / 2 * mp.mpf("1.0001")  # |r| after exp's reduction, with a margin

    # expm1(r) = r + r^2 q(r): the error r^2 dq, relative to expm1(r)
    def q(r):
        return (mp.expm1(r) - r) / r**2 if r != 0 else mp.mpf(0.5)

    for deg in (8, 9, 10):
        c, err = fit(q, lambda r: r**2 / abs(mp.expm1(r)) if r else 0, -ln2_2, ln2_2, deg)
        print(
            f"expm1 q degree {deg}: weighted error {float(err):.3g} (2^{float(mp.log(err, 2)):.1f})"
        )
        print("   ", c)

    # log1p(f) = 2s + s z P(z), s = f/(2+f), z = s^2, |s| <= (sqrt2-1)/(sqrt2+1): error s z dP
    # relative to 2s
    zmax = ((mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)) ** 2 * mp.mpf("1.0001")

    def p(z):
        if z == 0:
            return mp.mpf(2) / 3
        s = mp.sqrt(z)
        return (2 * mp.atanh(s) - 2 * s) / (s * z)

    for deg in (5, 6, 7):
        c, err = fit(p, lambda z: z / 2, mp.mpf(0), zmax, deg)
        print(
            f"log P degree {deg}: weighted error {float(err):.3g} (2^{float(mp.log(err, 2)):.1f})"
        )
        print("   ", c)

    # float32's exp: e^r = 1 + r + r^2 q(r), the error r^2 dq relative to e^r
    a = mp.log(2) / 2 * mp.mpf("1.001")
    for deg in (3, 4):
        c, err = fit(q, lambda r: r**2 / mp.exp(r), -a, a, deg)
        print(f"exp32 q degree {deg}: weighted error 2^{float(mp.log(err, 2)):.1f}")
        print("   ", c)


if __name__ == "__main__":
    main()
