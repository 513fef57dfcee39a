"""Weight init std 0.01 vs Xavier vs He for a 784-100x4-10 ReLU net trained by SGD on
MNIST (the book's ``weight_init_compare.py``, figure 6-15).

With std 0.01 the signal vanishes and the net does not learn at all; He, made for
ReLU, learns fastest; Xavier learns, more slowly.
"""
from .shared import compare_loss_curves

NAME = "init"
TITLE = "weight init std 0.01 vs Xavier vs He, 784-100x4-10 ReLU, SGD lr 0.01"
SETTINGS = {"iterations": 2000, "batch_size": 128, "report_every": 100}
QUICK_SETTINGS = {"iterations": 60, "report_every": 20}

WEIGHT_INIT = {"std=0.01": (0.01, "o"), "Xavier": ("sigmoid", "s"), "He": ("relu", "D")}


def run(ctx, cfg):
    train, _ = ctx.data()
    runs = {name: (ctx.backend.nets.MultiLayerNet(train[0].shape[1], [100] * 4, 10,
                                                   weight_init_std=std, seed=ctx.seed),
                   "sgd", {"lr": 0.01}, marker)
            for name, (std, marker) in WEIGHT_INIT.items()}
    return compare_loss_curves(ctx, cfg, NAME, runs, ylim=(0, 2.5))
