"""Overfitting of a 784-100x6-10 net on 300 training images, and two cures (the book's
``overfit_weight_decay.py`` and ``overfit_dropout.py``, figures 6-20, 6-21 and 6-23).

Without regularization the training accuracy reaches 100% while the test accuracy
stays far below; weight decay (lambda 0.1) and dropout (ratio 0.2) narrow that gap.
"""
import numpy as np

from .shared import figure, train_epochs

NAME = "overfit"
TITLE = "overfitting of 784-100x6-10 on 300 images; weight decay; dropout"
SETTINGS = {"train_size": 300, "test_size": None, "epochs": 201, "dropout_epochs": 301}
QUICK_SETTINGS = {"train_size": 100, "test_size": 200, "epochs": 6, "dropout_epochs": 9}

VARIANTS = {  # label: (MultiLayerNetExtend keyword arguments, epochs setting)
    "no regularization": ({}, "epochs"),
    "weight decay 0.1": ({"weight_decay_lambda": 0.1}, "epochs"),
    "dropout 0.2": ({"use_dropout": True, "dropout_ratio": 0.2}, "dropout_epochs"),
}


def run(ctx, cfg):
    (x_train, t_train), (x_test, t_test) = ctx.data()
    train = x_train[:cfg.train_size], t_train[:cfg.train_size]
    test = x_test[:cfg.test_size], t_test[:cfg.test_size]
    curves = {}
    for label, (options, epochs) in VARIANTS.items():
        network = ctx.backend.nets.MultiLayerNetExtend(train[0].shape[1], [100] * 6, 10,
                                                       seed=ctx.seed, **options)
        trainer = train_epochs(ctx.backend, network, train, test,
                               epochs=getattr(cfg, epochs), lr=0.01, seed=ctx.seed)
        curves[label] = trainer.train_acc_list, trainer.test_acc_list
        print(f"{label:>17}: train acc {curves[label][0][-1]:.3f}, test acc "
              f"{curves[label][1][-1]:.3f}, gap {curves[label][0][-1] - curves[label][1][-1]:.3f}",
              flush=True)

    fig = figure(figsize=(15, 4.5), layout="constrained")
    axes = fig.subplots(1, len(curves), sharey=True)
    for ax, (label, (train_acc, test_acc)) in zip(axes, curves.items()):
        epochs = np.arange(len(train_acc))
        ax.plot(epochs, train_acc, marker="o", markevery=10, label="train")
        ax.plot(epochs, test_acc, marker="s", markevery=10, label="test")
        ax.set(title=label, xlabel="epochs", ylabel="accuracy", ylim=(0, 1))
        ax.legend(loc="lower right")
    ctx.save_figure(fig, f"{NAME}.png")
    ctx.write_csv(f"{NAME}.csv", ["variant", "epoch", "train_acc", "test_acc"],
                  [(label, epoch, train_acc[epoch], test_acc[epoch])
                   for label, (train_acc, test_acc) in curves.items()
                   for epoch in range(len(train_acc))])
    return "train/test acc " + ", ".join(
        f"{label} {train_acc[-1]:.2f}/{test_acc[-1]:.2f}"
        for label, (train_acc, test_acc) in curves.items())
