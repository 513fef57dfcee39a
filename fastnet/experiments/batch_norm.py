"""Training accuracy with and without batch normalization over 16 weight scales (the
book's ``batch_norm_test.py``, figure 6-18).

1,000 training images, a 784-100x5-10 net, SGD lr 0.01, batch 100, 20 epochs.  With
batch norm the net learns fast at almost every scale; without it, learning stalls
for most scales, too large or too small.
"""
import numpy as np

from .shared import figure, train_epochs

NAME = "batchnorm"
TITLE = "batch normalization across 16 weight scales, 784-100x5-10"
SETTINGS = {"train_size": 1000, "test_size": 1000, "scales": 16, "epochs": 20}
QUICK_SETTINGS = {"train_size": 200, "test_size": 200, "scales": 4, "epochs": 3}


def run(ctx, cfg):
    (x_train, t_train), (x_test, t_test) = ctx.data()
    train = x_train[:cfg.train_size], t_train[:cfg.train_size]
    test = x_test[:cfg.test_size], t_test[:cfg.test_size]
    scales = np.logspace(0, -4, num=cfg.scales)
    curves = {}
    for i, scale in enumerate(scales):
        for use_batchnorm in (True, False):
            network = ctx.backend.nets.MultiLayerNetExtend(
                train[0].shape[1], [100] * 5, 10, weight_init_std=scale,
                use_batchnorm=use_batchnorm, seed=ctx.seed)
            trainer = train_epochs(ctx.backend, network, train, test, epochs=cfg.epochs,
                                   lr=0.01, seed=ctx.seed)
            curves[scale, use_batchnorm] = trainer.train_acc_list
        print(f"{i + 1:>2}/{len(scales)} W: {scale:.3g}  train acc with batch norm "
              f"{curves[scale, True][-1]:.3f}, without {curves[scale, False][-1]:.3f}",
              flush=True)

    side = int(np.ceil(np.sqrt(len(scales))))
    fig = figure(figsize=(12, 10), layout="constrained")
    fig.suptitle(f"training accuracy on {cfg.train_size} images: batch norm (solid) vs "
                 "normal (dashed)")
    epochs = np.arange(cfg.epochs)
    for i, scale in enumerate(scales):
        ax = fig.add_subplot(side, side, i + 1)
        ax.plot(epochs, curves[scale, True], label="Batch Normalization")
        ax.plot(epochs, curves[scale, False], "--", label="Normal (without BatchNorm)")
        ax.set(title=f"W: {scale:.3g}", ylim=(0, 1))
        if i == len(scales) - 1:
            ax.legend(loc="lower right", fontsize=8)
    ctx.save_figure(fig, f"{NAME}.png")
    ctx.write_csv(f"{NAME}.csv", ["weight_scale", "epoch", "train_acc_batchnorm",
                                  "train_acc_normal"],
                  [(scale, epoch, curves[scale, True][epoch], curves[scale, False][epoch])
                   for scale in scales for epoch in epochs])

    ahead = sum(curves[s, True][-1] > curves[s, False][-1] for s in scales)
    mean = {bn: np.mean([curves[s, bn][-1] for s in scales]) for bn in (True, False)}
    return (f"batch norm ahead at {ahead}/{len(scales)} scales; mean final train acc "
            f"{mean[True]:.3f} with, {mean[False]:.3f} without")
