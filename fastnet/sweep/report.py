"""The plots of a sweep (``fastnet sweep plot``): learning curves of the best trials,
the score against each searched parameter, and parallel coordinates.

    from fastnet.sweep import SweepStore
    from fastnet.sweep.report import plot_all
    with SweepStore.open("hpo.db", readonly=True) as store:
        paths = plot_all(store, "figures/", top=20)

``plot_all`` writes ``<db stem>-curves.png``, ``<db stem>-scores.png`` and
``<db stem>-parallel.png``; ``curves_figure``, ``scores_figure`` and
``parallel_figure`` build each one as a matplotlib ``Figure`` (no pyplot, so no global
state), which the ``hpo`` experiment and the tests use directly.

A trial's score is its final validation accuracy (``TrialResult.score``): done and
pruned trials have one (a pruned trial's is its accuracy when it was stopped),
diverged and failed trials have none.  "The best" are the trials with a score, highest
first, ties to the lower index, as ``fastnet sweep show`` ranks them.
"""
import math
import os
from pathlib import Path

import numpy as np

from .space import Choice, Space

__all__ = ["best_trials", "curves_figure", "parallel_figure", "plot_all", "scores_figure"]

COLUMNS = 5  # panels per row of the learning-curve grid, as the book's figure 6-24
SCORE = "final validation accuracy"
SHORT_NAMES = {"hidden_size_list": "hidden", "weight_init_std": "init",
               "use_batchnorm": "bn", "use_dropout": "dropout", "dropout_ratio": "drop",
               "weight_decay_lambda": "wd", "mini_batch_size": "batch",
               "hidden_layers": "layers", "hidden_size": "width", "decay_rate": "decay",
               "optimizer": "opt", "activation": "act", "momentum": "mom"}
"""The names the panel titles of the curve grid use, to keep them short."""


def best_trials(results):
    """The trials of ``results`` that have a score, best first (ties: lower index)."""
    return sorted((r for r in results if r.score is not None),
                  key=lambda r: (-r.score, r.index))


def plot_all(store, out, top=20):
    """Write the three figures of the sweep in ``store`` into the folder ``out``
    (made if missing) as PNG files; return their paths: ``<stem>-curves.png``
    (``curves_figure`` of the best ``top``), ``<stem>-scores.png`` (``scores_figure``)
    and ``<stem>-parallel.png`` (``parallel_figure``), ``<stem>`` the store file's name
    without its suffix.  Raises ``ValueError`` when the store holds no finished trial
    (nothing is written then) or ``top`` is not a positive integer."""
    _check_top(top)
    results = store.results()
    if not results:
        raise ValueError(f"no finished trial in {store.path}")
    space = Space.from_json(store.spec["space"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(os.fspath(store.path)).stem
    figures = {"curves": curves_figure(results, space.dimensions, top=top),
               "scores": scores_figure(results, space),
               "parallel": parallel_figure(results, space)}
    paths = []
    for name, fig in figures.items():
        path = out / f"{stem}-{name}.png"
        fig.savefig(path, dpi=100)
        paths.append(path)
    return paths


def _check_top(top):
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top must be a positive integer, got {top!r}")


def figure(**kwargs):
    """``fastnet.experiments.shared.figure``: a Figure without pyplot.  Imported when
    first drawing, as the ``hpo`` experiment imports this module."""
    from ..experiments.shared import figure

    return figure(**kwargs)


# ---------------------------------------------------------------- learning curves

def curves_figure(results, dimensions=(), top=20, columns=COLUMNS):
    """The book's figure 6-24: the learning curves of the ``top`` best trials of
    ``results`` on a grid of ``columns`` panels a row, best first (left to right, top
    to bottom).  Each panel shows one trial's validation (solid) and training (dashed)
    accuracy against the epoch, on axes shared by all panels (0 to 1, and every
    trial's epochs: a pruned trial's curves stop where it was stopped); its title is
    "Best-k: trial i" with its score and the values of ``dimensions`` (the searched
    parameters) in short.  With fewer trials the grid has as many panels as there are
    trials; with none that has a score, one panel says so."""
    _check_top(top)
    best = best_trials(results)[:top]
    if not best:
        fig = figure(figsize=(7, 3), layout="constrained")
        _empty(fig.add_subplot(), f"no trial with a score: {_status_counts(results)}")
        return fig
    rows = math.ceil(len(best) / columns)
    width = min(len(best), columns)
    fig = figure(figsize=(2.8 * width, 0.6 + 2.6 * rows), layout="constrained")
    axes = fig.subplots(rows, width, sharex=True, sharey=True, squeeze=False).ravel()
    fig.suptitle(f"best {len(best)} of {len(results)} trials: validation (solid) and "
                 f"training (dashed) accuracy against epoch")
    for k, (ax, r) in enumerate(zip(axes, best), 1):
        marker = "o" if len(r.epochs) < 4 else None  # a trial pruned at the first rung
        ax.plot(r.epochs, r.val_acc, color="C0", marker=marker, ms=3, label="validation")
        ax.plot(r.epochs, r.train_acc, "--", color="C1", marker=marker, ms=3, label="training")
        pruned = ", pruned" if r.status == "pruned" else ""
        ax.set_title(f"Best-{k}: trial {r.index} (val {r.score:.3f}{pruned})\n"
                     + _short_config(r.config, dimensions), fontsize=8)
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(best):]:
        ax.set_axis_off()
    for ax in axes[::width]:
        ax.set_ylabel("accuracy", fontsize=8)
    for ax in axes[len(best) - width:len(best)]:  # the lowest panel of each column
        ax.set_xlabel("epoch", fontsize=8)
        ax.xaxis.set_tick_params(labelbottom=True)
    return fig


def _short_config(config, dimensions, per_line=3):
    """``dimensions``' values in ``config`` as "name value" items, ``per_line`` a line."""
    items = [f"{SHORT_NAMES.get(name, name)} {_short(config.get(name))}" for name in dimensions]
    return "\n".join(", ".join(items[i:i + per_line]) for i in range(0, len(items), per_line))


def _short(value):
    """A configuration value in a few characters: floats to 2 significant digits,
    except that a value just below 1 (a momentum, a beta) keeps 2 digits of 1 - value;
    hidden layer lists as 100x4 or 100-50."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return str(value)
    if isinstance(value, float):
        if 0.9 <= value < 1:
            digits = max(2, 1 - math.floor(math.log10(1 - value) + 1e-9))
            return f"{value:.{digits}f}".rstrip("0")
        return f"{value:.2g}"
    if isinstance(value, list):
        if value and all(size == value[0] for size in value):
            return f"{value[0]}x{len(value)}"
        return "-".join(map(str, value))
    return str(value)


def _status_counts(results):
    counts = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))


def _empty(ax, text):
    ax.set_axis_off()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, transform=ax.transAxes)


# ------------------------------------------------------------- score by parameter

def scores_figure(results, space):
    """The final validation accuracy of every trial against each searched parameter
    of ``space`` (a ``Space``), one panel per dimension, sharing the accuracy axis.

    The x axis is the one the parameter was sampled on, over its whole range: log for
    a log-uniform or log-int range, ``1 - value`` on a log axis for a one-minus-log
    range (the label says so), linear for a uniform or int range, and the options side
    by side for a choice, points jittered sideways so that they do not hide each
    other.  Done trials are
    filled circles, pruned trials hollow circles at the accuracy they had when
    stopped, diverged and failed trials red x's along the bottom.  When the sweep has
    more than one round (coarse to fine), points are coloured by round, with a legend.
    A sweep that searched no parameter gets one panel of the accuracy by trial index,
    titled so."""
    results = sorted(results, key=lambda r: r.index)
    rounds = sorted({r.round for r in results if r.round is not None})
    colour = {round_: f"C{k % 10}" for k, round_ in enumerate(rounds)}
    dimensions = space.dimensions
    panels = max(1, len(dimensions))
    columns = min(panels, 3)
    rows = math.ceil(panels / columns)
    fig = figure(figsize=(max(6.5, 1.0 + 4.2 * columns), 1.2 + 3.4 * rows),
                 layout="constrained")
    axes = fig.subplots(rows, columns, sharey=True, squeeze=False).ravel()
    scored = [r.score for r in results if r.score is not None]
    low, high = (min(scored), max(scored)) if scored else (0.0, 1.0)
    pad = max(high - low, 0.02) * 0.08
    lost = any(r.score is None for r in results)
    ylim = (low - (2.5 if lost else 1.0) * pad, high + pad)  # room for the x's if any
    bottom = low - 1.5 * pad  # where the diverged and failed trials go
    if dimensions:
        fig.suptitle(f"{SCORE} of {len(results)} trials against "
                     + ("each searched parameter" if len(dimensions) > 1 else dimensions[0]))
        for ax, name in zip(axes, dimensions):
            xs = _scatter_x(ax, name, space.params[name], results)
            _scatter(ax, xs, results, colour, bottom)
    else:
        fig.suptitle(f"the sweep searched no parameter (every trial has the same "
                     f"configuration)\n{SCORE} by trial")
        ax = axes[0]
        _scatter(ax, [r.index for r in results], results, colour, bottom)
        ax.set_xlabel("trial")
    for ax in axes[len(dimensions) or 1:]:
        ax.set_axis_off()
    for ax in axes[::columns]:
        ax.set_ylabel(SCORE)
    axes[0].set_ylim(*ylim)
    handles = _legend_handles(axes[0], results, colour if len(rounds) > 1 else {})
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 6),
               fontsize=9, frameon=False)
    return fig


def _scatter_x(ax, name, dist, results):
    """Set up ``ax`` for parameter ``name`` sampled from ``dist``; return each trial's x."""
    values = [r.config.get(name) for r in results]
    ax.grid(alpha=0.3)
    if isinstance(dist, Choice):
        options = list(dist.options)
        jitter = np.random.default_rng(0).uniform(-0.25, 0.25, len(values))
        xs = [_option_index(options, v) + j for v, j in zip(values, jitter)]
        labels = [_short(option) for option in options]
        ax.set_xticks(range(len(options)), labels,
                      rotation=30 if sum(map(len, labels)) > 30 else 0)
        ax.set_xlim(-0.6, len(options) - 0.4)
        ax.set_xlabel(f"{name} (choice)")
        ax.grid(False, axis="x")
        return xs
    if dist.scale == "one_minus_log":
        _log_axis(ax, 1.0 - dist.high, 1.0 - dist.low)
        ax.set_xlabel(f"1 - {name} (log scale)")
        return [None if v is None else 1.0 - v for v in values]
    if dist.scale == "log":
        _log_axis(ax, dist.low, dist.high)
        ax.set_xlabel(f"{name} (log scale)")
    else:
        margin = (dist.high - dist.low) * 0.03
        ax.set_xlim(dist.low - margin, dist.high + margin)
        ax.set_xlabel(name)
    return values


def _log_axis(ax, low, high):
    """A log x axis from ``low`` to ``high`` (the searched range, a little wider); over
    less than two decades its ticks are plain numbers at 1, 2 and 5 times the powers of
    ten (matplotlib would label the minor ticks 3x10^1, 4x10^1, ..., overlapping)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    margin = (high / low) ** 0.03
    ax.set_xlim(low / margin, high * margin)
    if high / low < 100:
        ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())


def _option_index(options, value):
    for k, option in enumerate(options):
        if option == value and isinstance(option, bool) == isinstance(value, bool):
            return k
    return float("nan")  # not an option: a config from another space


def _scatter(ax, xs, results, colour, bottom):
    """Points of ``results`` at ``xs``: by status (module doc) and coloured by round."""
    for round_ in {r.round for r in results}:
        c = colour.get(round_, "C0") if len(colour) > 1 else "C0"
        for status, style in (("done", {"color": c}),
                               ("pruned", {"facecolors": "none", "edgecolors": c})):
            points = [(x, r.score) for x, r in zip(xs, results)
                      if r.round == round_ and r.status == status and x is not None
                      and r.score is not None]
            if points:
                ax.scatter(*zip(*points), s=22, linewidths=1, alpha=0.85, **style)
    lost = [x for x, r in zip(xs, results) if r.score is None and x is not None]
    if lost:
        ax.scatter(lost, [bottom] * len(lost), marker="x", color="red", s=26, linewidths=1.2)


def _legend_handles(ax, results, colour):
    """Legend entries: one per round (when coloured), then the status markers in use."""
    from matplotlib.lines import Line2D

    def marker(label, **style):
        return Line2D([], [], linestyle="none", markersize=6, label=label, **style)

    handles = [marker(f"round {round_}" + (" (coarse)" if k == 0 else ""), marker="o",
                      color=c) for k, (round_, c) in enumerate(colour.items())]
    statuses = {r.status for r in results}
    grey = "C0" if not colour else "0.35"
    if "done" in statuses:
        handles.append(marker("done", marker="o", color=grey))
    if "pruned" in statuses:
        handles.append(marker("pruned (accuracy when stopped)", marker="o",
                              markerfacecolor="none", markeredgecolor=grey))
    lost = sorted(statuses & {"diverged", "failed"})
    if lost:
        handles.append(marker(" or ".join(lost) + " (no score)", marker="x", color="red"))
    return handles


# ------------------------------------------------------------ parallel coordinates

def parallel_figure(results, space):
    """Parallel coordinates: one vertical axis per searched parameter of ``space``,
    then one for the score; each trial with a score (done or pruned) is a line through
    its values, every axis normalized to [0, 1] on the scale the parameter was sampled
    on (log, 1 - value on a log axis, linear; a choice's options evenly spaced), the
    score axis from the lowest to the highest score.  Lines are coloured by score (a
    colorbar says how), the best drawn last, on top, and thicker.  Diverged and failed
    trials have no score and are left out (the title counts them)."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    ranked = best_trials(results)[::-1]  # worst first, so the best end on top
    dimensions = space.dimensions
    fig = figure(figsize=(max(6.0, 2.0 + 1.9 * (len(dimensions) + 1)), 5.2),
                 layout="constrained")
    ax = fig.add_subplot()
    lost = len(results) - len(ranked)
    fig.suptitle(f"parallel coordinates of {len(ranked)} trials"
                 + (f" ({lost} diverged or failed, not drawn)" if lost else ""))
    if not dimensions:
        fig.suptitle("the sweep searched no parameter: no parallel coordinates")
        _empty(ax, "every trial has the same configuration\n(its scores: the scores figure)")
        return fig
    if not ranked:
        _empty(ax, f"no trial with a score: {_status_counts(results)}")
        return fig
    scores = np.array([r.score for r in ranked])
    low, high = scores.min(), scores.max()
    score_unit = (scores - low) / (high - low) if high > low else np.full(len(scores), 0.5)
    columns = [[_unit(space.params[name], r.config.get(name)) for r in ranked]
               for name in dimensions] + [score_unit]
    u = np.array(columns, dtype=float).T  # trials x axes
    axis_x = np.arange(u.shape[1])
    norm = Normalize(low, high if high > low else low + 1e-9)
    cmap = colormaps["viridis"]
    rank = np.arange(len(ranked)) / max(len(ranked) - 1, 1)  # 0 worst .. 1 best
    lines = LineCollection([np.column_stack([axis_x, row]) for row in u],
                           colors=cmap(norm(scores)), linewidths=0.6 + 1.6 * rank ** 4,
                           alpha=0.75)
    ax.add_collection(lines)
    for j, name in enumerate(dimensions):
        _axis_ticks(ax, j, space.params[name])
    for position, value in ((0.0, low), (1.0, high)):
        ax.text(axis_x[-1] + 0.04, position, f"{value:.3f}", ha="left", va="center",
                fontsize=8)
    for x in axis_x:
        ax.axvline(x, color="0.3", linewidth=1, zorder=0)
    ax.set_xticks(axis_x, [_axis_label(name, space.params[name]) for name in dimensions]
                  + ["score\n(val acc)"], fontsize=9)
    ax.set_xlim(-0.35, axis_x[-1] + 0.35)
    ax.set_ylim(-0.06, 1.06)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=SCORE, shrink=0.9, pad=0.02)
    return fig


def _unit(dist, value):
    """``value`` on [0, 1] along the axis ``dist`` is sampled on (NaN if not one of
    its values): a range through ``to_unit``, a choice's options evenly from 0 to 1."""
    if isinstance(dist, Choice):
        k = _option_index(list(dist.options), value)
        return 0.5 if len(dist.options) == 1 else k / (len(dist.options) - 1)
    try:
        return dist.to_unit(value)
    except ValueError:
        return float("nan")


def _axis_ticks(ax, j, dist):
    """The values of a few points of axis ``j``, written to its left."""
    if isinstance(dist, Choice):
        ticks = [(_unit(dist, option), _short(option)) for option in dist.options]
    else:
        ends = [dist.low, dist.from_unit(0.5), dist.high]
        ticks = {_unit(dist, v): _tick(v, dist.scale) for v in ends}.items()
    for position, text in ticks:
        ax.text(j - 0.04, position, text, ha="right", va="center", fontsize=8,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.7, "pad": 1})


def _tick(value, scale):
    if scale == "one_minus_log":
        return _short(float(value))
    if isinstance(value, int):
        return str(value)
    return f"{value:.2g}" if scale == "log" else f"{value:.3g}"


def _axis_label(name, dist):
    if isinstance(dist, Choice):
        return name
    return name + {"log": "\n(log)", "one_minus_log": "\n(log of 1 - value)"}.get(dist.scale, "")
