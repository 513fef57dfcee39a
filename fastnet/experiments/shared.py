"""What the chapter-6 experiments share: backends, data, training, output files, timing.

An experiment is a module with ``NAME``, ``TITLE``, ``SETTINGS`` (the book's),
``QUICK_SETTINGS`` (the overrides of a scaled-down run) and ``run(ctx, cfg)``, which
prints its numbers, writes a figure and its curves through ``ctx`` and returns a
one-line summary.  ``run_experiment`` picks the settings and times the run.
"""
import csv
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from types import ModuleType, SimpleNamespace

import numpy as np

from .. import _files
from ..datasets import load_dataset
from ..util import smooth_curve

BACKENDS = {"fastnet": "fastnet", "reference": "fastnet.reference"}


@dataclass(frozen=True)
class Backend:
    """The modules one implementation provides: ``fastnet`` or its NumPy ``reference``."""

    name: str
    nets: ModuleType
    optimizers: ModuleType
    trainer: ModuleType
    layers: ModuleType


def get_backend(name):
    """The ``Backend`` called ``name`` (a key of ``BACKENDS``)."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")
    modules = {part: import_module(f"{BACKENDS[name]}.{part}")
               for part in ("nets", "optimizers", "trainer", "layers")}
    return Backend(name, **modules)


def figure(**kwargs):
    """A matplotlib ``Figure`` that renders with Agg; no pyplot, so no global state."""
    from matplotlib.figure import Figure  # deferred: only drawing needs matplotlib
    return Figure(**kwargs)


def child_seeds(seed, n):
    """``n`` independent integer seeds derived from ``seed``."""
    return [int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(n)]


def train_epochs(backend, network, train, test, *, epochs, lr, seed, batch_size=100,
                 optimizer="sgd"):
    """``network`` trained by the backend's ``Trainer`` (quietly); returns the trainer."""
    trainer = backend.trainer.Trainer(network, *train, *test, epochs=epochs,
                                      mini_batch_size=batch_size, optimizer=optimizer,
                                      optimizer_param={"lr": lr}, verbose=False, seed=seed)
    trainer.train()
    return trainer


def compare_loss_curves(ctx, cfg, name, runs, ylim):
    """The book's loss race: train each net of ``runs`` (label -> ``(network,
    optimizer name, optimizer params, plot marker)``) on the same mini-batches, in
    lock step, for ``cfg.iterations`` steps of ``cfg.batch_size``.

    Prints every net's mini-batch loss each ``cfg.report_every`` iterations, as the
    book does, plots the smoothed losses, writes ``name``.png/.csv and returns the
    summary line (final smoothed loss and test accuracy per net).  The loss is the
    one the backend's Trainer records: the reference's is computed after the update,
    as in the book, fastnet's in the fused step's forward pass, before it.
    """
    train, test = ctx.data()
    # The Trainer's own per-epoch accuracies go unused here: 1,000 samples keep them cheap.
    trainers = {label: ctx.backend.trainer.Trainer(
        network, *train, *test, mini_batch_size=cfg.batch_size, optimizer=optimizer,
        optimizer_param=params, evaluate_sample_num_per_epoch=1000, verbose=False,
        seed=ctx.seed) for label, (network, optimizer, params, _) in runs.items()}
    for i in range(cfg.iterations):
        for trainer in trainers.values():
            trainer.train_step()
        if i % cfg.report_every == 0:
            print(f"=========== iteration:{i} ===========")
            for label, trainer in trainers.items():
                print(f"{label}:{trainer.train_loss_list[-1]:.6f}")
    losses = {label: np.asarray(t.train_loss_list, float) for label, t in trainers.items()}
    smoothed = _save_loss_curves(ctx, name, losses, {k: run[3] for k, run in runs.items()},
                                 ylim)
    accuracy = {label: t.network.accuracy(*test) for label, t in trainers.items()}
    return ("smoothed final loss " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in smoothed.items())
            + "; test acc " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()))


def _save_loss_curves(ctx, name, losses, markers, ylim):
    """Plot the smoothed ``losses`` (label -> per-iteration loss) into ``name``.png,
    write raw and smoothed into ``name``.csv, and return the smoothed curves."""
    smoothed = {label: smooth_curve(loss) for label, loss in losses.items()}
    iterations = np.arange(len(next(iter(losses.values()))))
    fig = figure(figsize=(7, 5), layout="constrained")
    ax = fig.add_subplot()
    for label, curve in smoothed.items():
        ax.plot(iterations, curve, marker=markers[label],
                markevery=max(len(iterations) // 20, 1), label=label)
    # the book's limits, raised where a curve would lie above them all along (a short
    # --quick run, an optimizer that has not come down yet): every curve is drawn
    lows = [float(np.min(curve[np.isfinite(curve)])) for curve in smoothed.values()
            if np.isfinite(curve).any()]
    ylim = (ylim[0], max(ylim[1], 1.1 * max(lows))) if lows else ylim
    ax.set(xlabel="iterations", ylabel="loss (smoothed)", ylim=ylim, title=ctx.dataset)
    ax.legend()
    ctx.save_figure(fig, f"{name}.png")
    ctx.write_csv(f"{name}.csv", ["iteration", *losses, *(f"{k} smoothed" for k in smoothed)],
                  [(i, *values) for i, values in
                   enumerate(zip(*losses.values(), *smoothed.values()))])
    return smoothed


@dataclass
class Context:
    """Where an experiment gets its backend, data and seed, and puts its files."""

    backend: Backend
    out_dir: Path
    dataset: str = "mnist"
    data_dir: str | None = None
    seed: int = 0
    quick: bool = False
    written: list = field(default_factory=list)
    _data: tuple | None = field(default=None, repr=False)

    def data(self):
        """``(x_train, t_train), (x_test, t_test)``, loaded on first use."""
        if self._data is None:
            start = time.perf_counter()
            train, test, description = load_dataset(self.dataset, self.data_dir)
            print(f"data: {description} (loaded in {time.perf_counter() - start:.1f} s)")
            self._data = train, test
        return self._data

    def path(self, filename):
        """Where ``filename`` goes in ``out_dir`` (made if missing)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / filename

    @contextmanager
    def _output(self, filename, mode="wb", **options):
        """``filename`` in ``out_dir``, written whole or not at all (the previous file
        stays if the write fails, and the error names the file); listed in ``written``
        once complete."""
        path = self.path(filename)
        with _files.atomic_file(path, mode, **options) as out:
            yield out
        self.written.append(path)

    def save_figure(self, fig, filename):
        with self._output(filename) as out:
            fig.savefig(out, format=Path(filename).suffix[1:], dpi=100)

    def write_csv(self, filename, header, rows):
        with self._output(filename, "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(header)
            writer.writerows([_cell(value) for value in row] for row in rows)

    def write_json(self, filename, obj):
        with self._output(filename, "w") as out:
            json.dump(obj, out, indent=1)


def _cell(value):
    return f"{value:.6g}" if isinstance(value, (float, np.floating)) else value


@dataclass(frozen=True)
class Result:
    name: str
    seconds: float
    summary: str


def run_experiment(module, ctx):
    """Run one experiment module with the book's (or, in quick mode, its scaled-down)
    settings; print and return its summary and wall time."""
    print(f"=== {module.NAME}: {module.TITLE} [backend: {ctx.backend.name}] ===", flush=True)
    settings = dict(module.SETTINGS)
    if ctx.quick:
        settings.update(module.QUICK_SETTINGS)
        changed = ", ".join(f"{k}={v}" for k, v in module.QUICK_SETTINGS.items())
        print("QUICK MODE: scaled down, not the book's settings"
              + (f" ({changed})" if changed else " (the book's settings are quick already)"))
    start = time.perf_counter()
    summary = module.run(ctx, SimpleNamespace(**settings))
    seconds = time.perf_counter() - start
    print(f"--- {module.NAME}: {summary}\n--- {module.NAME}: wall time {seconds:.1f} s\n",
          flush=True)
    return Result(module.NAME, seconds, summary)
