"""Aim a bouncing ball: a simulation written as a plain Python while-loop with ifs,
differentiated end to end to find the launch angle and speed that land it on a target.

The ball flies with quadratic air drag and bounces off the ground (losing energy) twice;
we want its third landing at x = 25 m. diffprog records whatever the loop actually ran,
so the number of steps and the bounce branches need no special treatment; a few
Gauss-Newton steps on the gradient of the landing point find the launch.

Run: python examples/differentiable_simulation.py
"""

import argparse

import diffprog as dp
import diffprog.numpy as dnp

GRAVITY, DRAG, RESTITUTION, DT = 9.81, 0.02, 0.7, 0.005
TARGET, BOUNCES = 25.0, 2


def landing_x(launch):
    """Where the ball touches the ground for the (BOUNCES + 1)-th time."""
    angle, speed = launch["angle"], launch["speed"]
    x, y = 0.0, 0.0
    vx, vy = speed * dnp.cos(angle), speed * dnp.sin(angle)
    bounces = 0
    while True:
        v = dnp.sqrt(vx * vx + vy * vy)
        ax, ay = -DRAG * v * vx, -GRAVITY - DRAG * v * vy
        x_new, y_new = x + DT * vx, y + DT * vy
        vx, vy = vx + DT * ax, vy + DT * ay
        if y_new < 0.0:  # crossed the ground during this step: find where, smoothly
            landed_at = x + (x_new - x) * y / (y - y_new)
            if bounces == BOUNCES:
                return landed_at
            bounces += 1
            x, y, vy = landed_at, 0.0, -RESTITUTION * vy  # bounce
        else:
            x, y = x_new, y_new


def main(smoke: bool = False) -> dict:
    launch = {"angle": 0.4, "speed": 8.0}
    print(f"start: lands at x = {float(landing_x(launch)):.3f} m (target {TARGET} m)")
    scale = {"angle": 0.1, "speed": 1.0}  # a typical change of each parameter
    for step in range(2 if smoke else 8):
        x, grad = dp.value_and_grad(landing_x)(launch)
        # Gauss-Newton on the miss distance: the smallest (scaled) change that cancels it
        # to first order, d = -miss * S^2 g / (g . S^2 g).
        miss = float(x) - TARGET
        norm = sum(scale[k] ** 2 * grad[k] ** 2 for k in launch)
        launch = {k: launch[k] - miss * scale[k] ** 2 * grad[k] / norm for k in launch}
        print(f"step {step}: miss = {miss:+9.5f} m, d x/d angle = {grad['angle']:7.3f}, "
              f"d x/d speed = {grad['speed']:6.3f}")  # fmt: skip
    final = float(landing_x(launch))
    print(f"end: angle = {launch['angle']:.4f} rad, speed = {launch['speed']:.4f} m/s, "
          f"lands at x = {final:.4f} m")  # fmt: skip
    if not smoke:
        assert abs(final - TARGET) < 1e-3, final
    return launch


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a quick run for the tests")
    main(parser.parse_args().smoke)
