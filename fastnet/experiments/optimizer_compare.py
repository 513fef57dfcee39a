"""SGD, Momentum, AdaGrad, Adam, RMSprop and Nesterov training the same 784-100x4-10
net on MNIST (the book's ``optimizer_compare_mnist.py``, figure 6-9).

The adaptive methods and the momentum family drive the loss down much faster than
plain SGD; the book finds AdaGrad slightly ahead.  Every optimizer keeps its default
hyperparameters, as in the book.
"""
from .shared import compare_loss_curves

NAME = "optimizers"
TITLE = "six optimizers training 784-100x4-10"
SETTINGS = {"iterations": 2000, "batch_size": 128, "report_every": 100}
QUICK_SETTINGS = {"iterations": 60, "report_every": 20}

MARKERS = {"SGD": "o", "Momentum": "x", "AdaGrad": "s", "Adam": "D", "RMSprop": "^",
           "Nesterov": "v"}


def run(ctx, cfg):
    train, _ = ctx.data()
    runs = {name: (ctx.backend.nets.MultiLayerNet(train[0].shape[1], [100] * 4, 10,
                                                   seed=ctx.seed),
                   name, {}, marker)
            for name, marker in MARKERS.items()}
    return compare_loss_curves(ctx, cfg, NAME, runs, ylim=(0, 1))
