"""Random search for the learning rate and weight decay (the book's
``hyperparameter_optimization.py``, figure 6-24), run by ``fastnet.sweep``.

500 training images, 20% of them held out for validation, a 784-100x6-10 net, SGD,
batch 100, 50 epochs per trial, 100 trials with lr = 10^U(-6, -2) and weight decay =
10^U(-8, -4), accuracy on both sets after every epoch.  The best trials have learning
rates around 1e-3 to 1e-2; weight decay matters much less in that range.

The trials are a ``fastnet.sweep.run`` on one worker process per core (one thread
each); with ``--backend reference`` they train on the NumPy oracle instead.
"""
import os

from .. import sweep
from ..sweep.report import best_trials, curves_figure
from ..util import shuffle_dataset

NAME = "hpo"
TITLE = "random search of learning rate and weight decay, 784-100x6-10"
SETTINGS = {"train_size": 500, "trials": 100, "epochs": 50, "workers": os.cpu_count() or 1}
QUICK_SETTINGS = {"train_size": 250, "trials": 4, "epochs": 3}

VALIDATION_SHARE = 0.2
GRID = (4, 5)  # rows, columns of the best trials drawn
SPACE = {"hidden_size_list": [100] * 6, "optimizer": "SGD", "mini_batch_size": 100,
         "lr": sweep.log_uniform(1e-6, 1e-2),
         "weight_decay_lambda": sweep.log_uniform(1e-8, 1e-4)}


def run_sweep(backend_name, train, validation, epochs, trials, workers, seed):
    """The book's search as a sweep: its ``TrialResult`` list, ordered by index."""
    return sweep.run({**SPACE, "epochs": epochs}, trials, (train, validation), seed=seed,
               workers=min(workers, trials), backend=backend_name, progress=None)


def run(ctx, cfg):
    (x_train, t_train), _ = ctx.data()
    x, t = shuffle_dataset(x_train[:cfg.train_size], t_train[:cfg.train_size], seed=ctx.seed)
    n_validation = int(len(x) * VALIDATION_SHARE)
    validation, train = (x[:n_validation], t[:n_validation]), (x[n_validation:], t[n_validation:])
    workers = min(cfg.workers, cfg.trials)
    print(f"{cfg.trials} trials of {cfg.epochs} epochs on {len(train[0])} training / "
          f"{n_validation} validation images, {workers} worker process(es)", flush=True)
    results = run_sweep(ctx.backend.name, train, validation, cfg.epochs, cfg.trials,
                        workers, ctx.seed)
    for r in results:
        lr, weight_decay = r.config["lr"], r.config["weight_decay_lambda"]
        print(f"val acc:{r.val_acc[-1] if r.val_acc else float('nan'):.3f} | lr:{lr:.3g}, "
              f"weight decay:{weight_decay:.3g} ({r.status})", flush=True)
    ranked = best_trials(results)  # diverged and failed trials have no score
    trials = [{"lr": r.config["lr"], "weight_decay": r.config["weight_decay_lambda"],
               "status": r.status, "val_acc": r.val_acc, "train_acc": r.train_acc}
              for r in ranked + [r for r in results if r.score is None]]
    ctx.write_json(f"{NAME}.json", {"validation_images": n_validation,
                                    "training_images": len(train[0]), "trials": trials})
    best = ranked[:GRID[0] * GRID[1]]
    draw_best(ctx, results, best)
    if not best:
        return f"no trial with a score ({len(results)} diverged or failed)"
    lrs = [r.config["lr"] for r in best]
    return (f"best val acc {best[0].score:.3f} at lr {lrs[0]:.2g}; best "
            f"{len(best)} lrs span {min(lrs):.2g}..{max(lrs):.2g}")


def draw_best(ctx, results, best):
    """Print the ``best`` trials of ``results`` and draw their curves on the ``GRID``,
    as the book, with ``fastnet sweep plot``'s ``report.curves_figure``."""
    print("=========== Hyper-Parameter Optimization Result ===========")
    for i, r in enumerate(best):
        print(f"Best-{i + 1}(val acc:{r.score:.3f}) | lr:{r.config['lr']:.3g}, "
              f"weight decay:{r.config['weight_decay_lambda']:.3g}")
    fig = curves_figure(results, sweep.Space(SPACE).dimensions, top=GRID[0] * GRID[1],
                        columns=GRID[1])
    ctx.save_figure(fig, f"{NAME}.png")
