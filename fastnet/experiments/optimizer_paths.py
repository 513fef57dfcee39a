"""SGD, Momentum, AdaGrad and Adam on f(x, y) = x**2 / 20 + y**2 (the book's
``optimizer_compare_naive.py``, figure 6-8).

The function is stretched along x, so its gradient barely points at the minimum
(0, 0): SGD zig-zags across the valley, Momentum rolls like a ball in a bowl, AdaGrad
damps the steep y direction at once and Adam combines the two.
"""
import numpy as np

from .shared import figure

NAME = "optimizer-paths"
TITLE = "optimizer paths on f(x, y) = x^2/20 + y^2"
SETTINGS = {"steps": 30}
QUICK_SETTINGS = {}

START = (-7.0, 2.0)
LEARNING_RATES = {"SGD": 0.95, "Momentum": 0.1, "AdaGrad": 1.5, "Adam": 0.3}


def f(x, y):
    return x ** 2 / 20.0 + y ** 2


def df(x, y):
    return x / 10.0, 2.0 * y


def descend(optimizer, steps):
    """The ``steps + 1`` points ``optimizer`` visits from ``START``, as an array (n, 2).
    The parameters are Python floats, as in the book's ``optimizer_compare_naive.py``."""
    params = {"x": START[0], "y": START[1]}
    path = [START]
    for _ in range(steps):
        gx, gy = df(params["x"], params["y"])
        optimizer.update(params, {"x": gx, "y": gy})
        path.append((params["x"], params["y"]))
    return np.array(path)


def run(ctx, cfg):
    make = ctx.backend.optimizers.make_optimizer
    paths = {name: descend(make(name, lr=lr), cfg.steps) for name, lr in LEARNING_RATES.items()}
    for name, path in paths.items():
        x, y = path[-1]
        print(f"{name:>8} (lr {LEARNING_RATES[name]}): after {cfg.steps} steps at "
              f"({x:+.4f}, {y:+.4f}), f = {f(x, y):.3g}")

    X, Y = np.meshgrid(np.arange(-10, 10, 0.05), np.arange(-5, 5, 0.05))
    Z = f(X, Y)
    Z[Z > 7] = 0  # the book's trick: contours only near the minimum
    fig = figure(figsize=(9, 8), layout="constrained")
    for i, (name, path) in enumerate(paths.items(), start=1):
        ax = fig.add_subplot(2, 2, i)
        ax.plot(path[:, 0], path[:, 1], "o-", color="red", markersize=3)
        ax.contour(X, Y, Z)
        ax.plot(0, 0, "+", markersize=12)
        ax.set(xlim=(-10, 10), ylim=(-10, 10), title=name, xlabel="x", ylabel="y")
    ctx.save_figure(fig, f"{NAME}.png")
    ctx.write_csv(f"{NAME}.csv", ["optimizer", "step", "x", "y"],
                  [(name, step, x, y) for name, path in paths.items()
                   for step, (x, y) in enumerate(path)])
    return "final f: " + ", ".join(f"{name} {f(*path[-1]):.2g}" for name, path in paths.items())
