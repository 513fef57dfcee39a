"""Random search for the learning rate and weight decay (the book's
``hyperparameter_optimization.py``, figure 6-24).

500 training images, 20% of them held out for validation, a 784-100x6-10 net, SGD,
batch 100, 50 epochs per trial, 100 trials with lr = 10^U(-6, -2) and weight decay =
10^U(-8, -4).  The best trials have learning rates around 1e-3 to 1e-2; weight decay
matters much less in that range.

Trials are independent, so they run in a process pool.  Workers are spawned (not
forked: a forked OpenMP runtime can deadlock), each with one Numba and one BLAS
thread, and only after a short trial in the parent has compiled every kernel into
Numba's cache, so that the workers load it instead of all writing it at once.
"""
import os
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from multiprocessing import get_context

import numpy as np

from ..threads import set_num_threads
from ..util import shuffle_dataset
from .shared import child_seeds, figure, get_backend, train_epochs

NAME = "hpo"
TITLE = "random search of learning rate and weight decay, 784-100x6-10"
SETTINGS = {"train_size": 500, "trials": 100, "epochs": 50, "workers": os.cpu_count() or 1}
QUICK_SETTINGS = {"train_size": 250, "trials": 4, "epochs": 3}

VALIDATION_SHARE = 0.2
GRID = (4, 5)  # rows, columns of the best trials drawn


def trial(backend_name, train, validation, epochs, lr, weight_decay, seed):
    """Train one net; return its validation and training accuracy per epoch."""
    backend = get_backend(backend_name)
    network = backend.nets.MultiLayerNet(train[0].shape[1], [100] * 6, 10,
                                         weight_decay_lambda=weight_decay, seed=seed)
    trainer = train_epochs(backend, network, train, validation, epochs=epochs, lr=lr,
                           seed=seed)
    return trainer.test_acc_list, trainer.train_acc_list


def run_trials(backend_name, train, validation, epochs, settings, workers):
    """Yield each trial's accuracies, in the order of ``settings`` (lr, weight decay,
    seed), from a pool of ``workers`` processes when that is more than one."""
    run_trial = partial(trial, backend_name, train, validation, epochs)
    if workers <= 1:
        yield from (run_trial(*setting) for setting in settings)
        return
    trial(backend_name, train, validation, 1, *settings[0])  # compiles: see module doc
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=set_num_threads, initargs=(1,)) as pool:
        yield from pool.map(run_trial, *zip(*settings))


def run(ctx, cfg):
    (x_train, t_train), _ = ctx.data()
    x, t = shuffle_dataset(x_train[:cfg.train_size], t_train[:cfg.train_size], seed=ctx.seed)
    n_validation = int(len(x) * VALIDATION_SHARE)
    validation, train = (x[:n_validation], t[:n_validation]), (x[n_validation:], t[n_validation:])
    rng = np.random.default_rng(ctx.seed)
    lrs = 10 ** rng.uniform(-6, -2, cfg.trials)
    weight_decays = 10 ** rng.uniform(-8, -4, cfg.trials)
    settings = list(zip(lrs, weight_decays, child_seeds(ctx.seed, cfg.trials)))
    workers = min(cfg.workers, cfg.trials)
    print(f"{cfg.trials} trials of {cfg.epochs} epochs on {len(train[0])} training / "
          f"{n_validation} validation images, {workers} worker process(es)", flush=True)

    trials = []
    for (lr, weight_decay, _), (val_acc, train_acc) in zip(settings, run_trials(
            ctx.backend.name, train, validation, cfg.epochs, settings, workers)):
        print(f"val acc:{val_acc[-1]:.3f} | lr:{lr:.3g}, weight decay:{weight_decay:.3g}",
              flush=True)
        trials.append({"lr": lr, "weight_decay": weight_decay, "val_acc": val_acc,
                       "train_acc": train_acc})
    trials.sort(key=lambda result: result["val_acc"][-1], reverse=True)
    ctx.write_json(f"{NAME}.json", {"validation_images": n_validation,
                                    "training_images": len(train[0]), "trials": trials})
    best = trials[:GRID[0] * GRID[1]]
    draw_best(ctx, best)
    lr_range = min(r["lr"] for r in best), max(r["lr"] for r in best)
    return (f"best val acc {best[0]['val_acc'][-1]:.3f} at lr {best[0]['lr']:.2g}; best "
            f"{len(best)} lrs span {lr_range[0]:.2g}..{lr_range[1]:.2g}")


def draw_best(ctx, best):
    """Print the ``best`` trials and draw their curves on the ``GRID``, as the book."""
    print("=========== Hyper-Parameter Optimization Result ===========")
    fig = figure(figsize=(14, 10), layout="constrained")
    fig.suptitle("best trials: validation (solid) and training (dashed) accuracy")
    for i, result in enumerate(best):
        print(f"Best-{i + 1}(val acc:{result['val_acc'][-1]:.3f}) | lr:{result['lr']:.3g}, "
              f"weight decay:{result['weight_decay']:.3g}")
        ax = fig.add_subplot(*GRID, i + 1)
        epochs = np.arange(len(result["val_acc"]))
        ax.plot(epochs, result["val_acc"])
        ax.plot(epochs, result["train_acc"], "--")
        ax.set_title(f"Best-{i + 1}: lr {result['lr']:.2g}, wd {result['weight_decay']:.1g}",
                     fontsize=9)
        ax.set(ylim=(0, 1), xticks=[])
    ctx.save_figure(fig, f"{NAME}.png")
