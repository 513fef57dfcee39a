"""The book's batch-norm experiment extended to every normalization of the course notes
(section 7.8): training accuracy over weight scales, and test accuracy against the
batch size.

Part 1, as ``batch_norm_test.py`` (figure 6-18): 1,000 training images, a 784-100x5-10
net, SGD lr 0.01, batch 100, 20 epochs, at weight scales from 1 to 1e-4, for no
normalization and each of batch, layer, group (2 groups), instance (2 channels of 50),
weight and switchable normalization.

Part 2: the same net with He initialization, trained for a fixed number of epochs with
batch sizes 2 to 128 (SGD, lr 0.01 x batch / 100, the linear scaling rule), then tested
in inference mode.  Batch norm's statistics come from the mini-batch, so small batches
give noisy statistics and a running average unlike the training-time ones: its test
accuracy falls as the batch shrinks, while layer and group norm, which normalize each
sample on its own, do not depend on the batch (Wu and He 2018, "Group Normalization",
figure 1).
"""
import numpy as np

from .shared import figure, train_epochs

NAME = "normalization"
TITLE = "normalization methods across weight scales and batch sizes, 784-100x5-10"
SETTINGS = {"train_size": 1000, "test_size": 1000, "scales": 8, "epochs": 20,
            "batch_sizes": (2, 4, 8, 16, 32, 64, 128), "batch_epochs": 5}
QUICK_SETTINGS = {"train_size": 200, "test_size": 200, "scales": 3, "epochs": 2,
                  "batch_sizes": (4, 32), "batch_epochs": 1}

METHODS = (None, "batch", "layer", "group", "instance", "weight", "switchable")
LR = 0.01


def _label(method):
    return "none" if method is None else method


def _net(ctx, inputs, method, scale):
    return ctx.backend.nets.MultiLayerNetExtend(inputs, [100] * 5, 10, weight_init_std=scale,
                                                normalization=method, seed=ctx.seed)


def run(ctx, cfg):
    (x_train, t_train), (x_test, t_test) = ctx.data()
    train = x_train[:cfg.train_size], t_train[:cfg.train_size]
    test = x_test[:cfg.test_size], t_test[:cfg.test_size]
    inputs = train[0].shape[1]

    scales = np.logspace(0, -4, num=cfg.scales)
    by_scale = {}
    for scale in scales:
        for method in METHODS:
            trainer = train_epochs(ctx.backend, _net(ctx, inputs, method, scale), train, test,
                                   epochs=cfg.epochs, lr=LR, seed=ctx.seed)
            by_scale[scale, method] = trainer.train_acc_list[-1]
        print(f"W {scale:.3g}: final train acc " + ", ".join(
            f"{_label(m)} {by_scale[scale, m]:.3f}" for m in METHODS), flush=True)

    by_batch = {}
    for batch in cfg.batch_sizes:
        for method in METHODS:
            network = _net(ctx, inputs, method, "relu")
            train_epochs(ctx.backend, network, train, test, epochs=cfg.batch_epochs,
                         lr=LR * batch / 100, seed=ctx.seed, batch_size=batch)
            by_batch[batch, method] = network.accuracy(*test)
        print(f"batch {batch:>3}: test acc " + ", ".join(
            f"{_label(m)} {by_batch[batch, m]:.3f}" for m in METHODS), flush=True)

    fig = figure(figsize=(13, 5), layout="constrained")
    fig.suptitle("normalization methods, 784-100x5-10, SGD")
    ax1, ax2 = fig.subplots(1, 2)
    for i, method in enumerate(METHODS):
        style = "--" if method is None else "-"
        ax1.plot(scales, [by_scale[s, method] for s in scales], style, marker="o", ms=3,
                 color=f"C{i}", label=_label(method))
        ax2.plot(cfg.batch_sizes, [by_batch[b, method] for b in cfg.batch_sizes], style,
                 marker="o", ms=3, color=f"C{i}", label=_label(method))
    ax1.set(xscale="log", ylim=(0, 1.02), xlabel="weight init std",
            ylabel=f"training accuracy after {cfg.epochs} epochs",
            title=f"{cfg.train_size} images, batch 100")
    ax2.set(xscale="log", ylim=(0, 1.02), xlabel="batch size",
            ylabel=f"test accuracy after {cfg.batch_epochs} epochs",
            title="He init, lr 0.01 x batch / 100")
    ax2.set_xticks(cfg.batch_sizes, [str(b) for b in cfg.batch_sizes])
    ax2.set_xticks([], minor=True)  # a log axis within a decade labels its minor ticks
    ax1.legend(fontsize=8, loc="lower left")
    ctx.save_figure(fig, f"{NAME}.png")
    ctx.write_csv(f"{NAME}-scales.csv", ["weight_scale", "method", "train_acc"],
                  [(s, _label(m), by_scale[s, m]) for s in scales for m in METHODS])
    ctx.write_csv(f"{NAME}-batch.csv", ["batch_size", "method", "test_acc"],
                  [(b, _label(m), by_batch[b, m]) for b in cfg.batch_sizes for m in METHODS])

    small, large = cfg.batch_sizes[0], cfg.batch_sizes[-1]
    return (f"test acc at batch {small} / {large}: " + ", ".join(
        f"{_label(m)} {by_batch[small, m]:.2f}/{by_batch[large, m]:.2f}" for m in METHODS))
