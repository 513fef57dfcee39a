"""fastnet.sweep.report: the three figures of a sweep (learning curves of the best
trials, score against each parameter, parallel coordinates) on synthetic stores, their
axes and panels, the PNG files of ``plot_all`` and ``fastnet sweep plot``."""
import math
import struct

import numpy as np
import pytest
from matplotlib.collections import LineCollection

from fastnet.cli import main
from fastnet.sweep import (
    Space,
    SweepStore,
    TrialResult,
    choice,
    int_uniform,
    log_int,
    log_uniform,
    one_minus_log_uniform,
)
from fastnet.sweep.report import (
    best_trials,
    curves_figure,
    parallel_figure,
    plot_all,
    scores_figure,
)

SPACE = Space({"lr": log_uniform(1e-5, 1e-1), "weight_decay_lambda": log_uniform(1e-8, 1e-3),
               "momentum": one_minus_log_uniform(0.5, 0.999),
               "hidden_size": int_uniform(50, 200), "mini_batch_size": log_int(16, 256),
               "optimizer": choice(["SGD", "Momentum", "Adam"]), "epochs": 10})
DIMENSIONS = ("hidden_size", "lr", "mini_batch_size", "momentum", "optimizer",
              "weight_decay_lambda")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def synthetic_results(n=60, rounds=3, epochs=10, seed=0):
    """``n`` trials of ``SPACE`` in ``rounds`` coarse-to-fine rounds with plausible
    curves: accuracy best near lr 1e-2.5, trials with lr > 0.03 diverge, every 7th
    trial is pruned after 1 or 3 epochs and trial 5 fails."""
    rng = np.random.default_rng(seed)
    per_round = math.ceil(n / rounds)
    results = []
    for i in range(n):
        round_ = i // per_round
        width = 1.0 / (1 + round_)  # later rounds zoom in
        u = np.clip(0.55 + (rng.random(len(DIMENSIONS)) - 0.5) * 2 * width * 0.55, 0, 1)
        if round_ == 0:
            u = rng.random(len(DIMENSIONS))
        config = SPACE.config_from_unit(u)
        lr = config["lr"]
        final = 0.1 + 0.85 * math.exp(-0.6 * (math.log10(lr) + 2.5) ** 2) - rng.random() * 0.03
        stop = epochs
        status = "done"
        if i == 5:
            status, stop = "failed", 0
        elif lr > 0.03:
            status, stop = "diverged", int(rng.integers(1, 4))
        elif i % 7 == 3:
            status, stop = "pruned", (1, 3)[i % 2]
        ep = [float(e) for e in range(1, stop + 1)]
        val = [0.1 + (final - 0.1) * (1 - math.exp(-e / 2.5)) for e in ep]
        train = [min(1.0, v + 0.02 * e) for v, e in zip(val, ep)]
        loss = [2.3 * (1 - v) for v in val]
        if status == "diverged":
            loss[-1] = val[-1] = float("nan")
        results.append(TrialResult(
            i, round_, config, 1000 + i, status, ep, loss, train, loss, val,
            val_acc_final=val[-1] if val else None, val_loss_final=loss[-1] if loss else None,
            wall_time=1.0, host="test", error="boom" if status == "failed" else None))
    return results


def make_store(tmp_path, results, space=SPACE, name="sweep.db"):
    store = SweepStore.create(tmp_path / name, {"space": space.to_json(), "trials": len(results)})
    store.record(results)
    return store


def png_size(path):
    """(width, height) of the PNG at ``path``, after checking its signature."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def visible(fig):
    return [ax for ax in fig.axes if ax.axison]


def test_plot_all_writes_three_pngs_named_after_the_db(tmp_path):
    with make_store(tmp_path, synthetic_results(), name="hpo.db") as store:
        paths = plot_all(store, tmp_path / "figs" / "new", top=20)
    assert [p.name for p in paths] == ["hpo-curves.png", "hpo-scores.png", "hpo-parallel.png"]
    for path in paths:
        assert path.parent == tmp_path / "figs" / "new"
        width, height = png_size(path)
        assert 500 <= width <= 3000 and 300 <= height <= 3000
        assert path.stat().st_size > 10_000


def test_best_trials_ranks_scored_trials_best_first_ties_to_lower_index():
    results = synthetic_results()
    best = best_trials(results)
    assert {r.status for r in best} == {"done", "pruned"}
    assert len(best) == sum(r.score is not None for r in results)
    keys = [(-r.score, r.index) for r in best]
    assert keys == sorted(keys)
    tie = [TrialResult(3, 0, {}, 0, "done", val_acc_final=0.5),
           TrialResult(1, 0, {}, 0, "done", val_acc_final=0.5)]
    assert [r.index for r in best_trials(tie)] == [1, 3]


def test_curves_grid_of_the_best_top_trials():
    results = synthetic_results()
    fig = curves_figure(results, SPACE.dimensions, top=12)
    axes = visible(fig)
    assert len(axes) == 12 and len(fig.axes) == 15  # 3 rows x 5, the last 3 hidden
    best = best_trials(results)[:12]
    for k, (ax, r) in enumerate(zip(axes, best), 1):
        solid, dashed = ax.get_lines()
        assert len(ax.get_lines()) == 2
        assert solid.get_linestyle() == "-" and dashed.get_linestyle() == "--"
        assert list(solid.get_ydata()) == r.val_acc and list(dashed.get_ydata()) == r.train_acc
        assert list(solid.get_xdata()) == r.epochs
        assert ax.get_title().startswith(f"Best-{k}: trial {r.index} ")
        assert "lr " in ax.get_title() and "mom " in ax.get_title()
        assert ax.get_ylim() == (0, 1)


def test_curves_with_fewer_trials_than_top():
    results = synthetic_results(n=8, rounds=1)
    scored = len(best_trials(results))
    fig = curves_figure(results, SPACE.dimensions, top=20)
    assert len(visible(fig)) == scored < 20
    assert len(fig.axes) == 5 * math.ceil(scored / 5)


def test_curves_of_a_single_trial_is_one_panel():
    fig = curves_figure(synthetic_results(n=1, rounds=1), SPACE.dimensions, top=20)
    assert len(fig.axes) == 1 and len(fig.axes[0].get_lines()) == 2


def test_scores_axes_follow_the_sampled_scales():
    results = synthetic_results()
    fig = scores_figure(results, SPACE)
    axes = visible(fig)
    assert len(axes) == len(SPACE.dimensions) == 6
    by_dim = dict(zip(SPACE.dimensions, axes))
    assert by_dim["lr"].get_xscale() == "log"
    assert by_dim["weight_decay_lambda"].get_xscale() == "log"
    assert by_dim["mini_batch_size"].get_xscale() == "log"  # log_int
    assert by_dim["hidden_size"].get_xscale() == "linear"
    assert by_dim["momentum"].get_xscale() == "log"
    assert by_dim["momentum"].get_xlabel().startswith("1 - momentum")
    assert "log" in by_dim["momentum"].get_xlabel()
    optimizer = by_dim["optimizer"]
    assert [t.get_text() for t in optimizer.get_xticklabels()] == ["SGD", "Momentum", "Adam"]
    # one-minus-log: the points sit at 1 - momentum
    xs = np.concatenate([c.get_offsets()[:, 0] for c in by_dim["momentum"].collections])
    momenta = [r.config["momentum"] for r in results]
    assert np.all(xs > 0) and np.isclose(xs.min(), 1 - max(momenta))


def test_scores_mark_statuses_and_colour_rounds():
    results = synthetic_results()
    fig = scores_figure(results, SPACE)
    ax = visible(fig)[0]
    points = sum(len(c.get_offsets()) for c in ax.collections)
    assert points == len(results)  # every trial once, diverged and failed included
    red = [c for c in ax.collections if len(c.get_offsets())
           and np.allclose(c.get_edgecolors()[0][:3], (1, 0, 0))]
    assert sum(len(c.get_offsets()) for c in red) == sum(r.score is None for r in results)
    hollow = [c for c in ax.collections if len(c.get_facecolors()) == 0]
    assert sum(len(c.get_offsets()) for c in hollow) == sum(r.status == "pruned" for r in results)
    bottom = ax.get_ylim()[0]
    lowest = min(r.score for r in results if r.score is not None)
    assert all(bottom < y < lowest for c in red for y in c.get_offsets()[:, 1])
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[:3] == ["round 0 (coarse)", "round 1", "round 2"]
    assert "pruned (accuracy when stopped)" in legend
    assert "diverged or failed (no score)" in legend


def test_scores_of_a_single_round_have_no_round_legend():
    fig = scores_figure(synthetic_results(n=20, rounds=1), SPACE)
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert not any(text.startswith("round") for text in legend)


def test_scores_without_dimensions_say_so(tmp_path):
    space = Space({"lr": 0.01, "epochs": 10})
    results = [TrialResult(i, 0, space.complete(space.constants), i, "done", [1.0], [1.0],
                           [0.5 + i / 100], [1.0], [0.5 + i / 100], val_acc_final=0.5 + i / 100)
               for i in range(5)]
    fig = scores_figure(results, space)
    assert "searched no parameter" in fig.get_suptitle()
    assert len(visible(fig)) == 1
    assert "searched no parameter" in parallel_figure(results, space).get_suptitle()
    with make_store(tmp_path, results, space) as store:
        paths = plot_all(store, tmp_path)
    assert all(png_size(path) for path in paths)


def test_parallel_coordinates_one_line_per_scored_trial_best_on_top():
    results = synthetic_results()
    fig = parallel_figure(results, SPACE)
    ax = fig.axes[0]
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    segments = lines.get_segments()
    best = best_trials(results)
    assert len(segments) == len(best)
    assert all(len(seg) == len(SPACE.dimensions) + 1 for seg in segments)
    values = np.array([seg[:, 1] for seg in segments])
    assert np.nanmin(values) >= 0 and np.nanmax(values) <= 1
    assert values[-1, -1] == 1 and values[0, -1] == 0  # the best drawn last
    assert not np.isnan(values).any()
    assert len(fig.axes) == 2  # the plot and its colorbar
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[-1].startswith("score") and labels[1] == "lr\n(log)"
    assert "diverged or failed" in fig.get_suptitle()


def test_parallel_axes_are_normalized_on_the_sampled_scale():
    results = synthetic_results()
    fig = parallel_figure(results, SPACE)
    (lines,) = [c for c in fig.axes[0].collections if isinstance(c, LineCollection)]
    best = best_trials(results)[::-1]
    j = SPACE.dimensions.index("momentum")
    for seg, r in zip(lines.get_segments(), best):
        assert seg[j, 1] == pytest.approx(SPACE.params["momentum"].to_unit(r.config["momentum"]))
    k = SPACE.dimensions.index("optimizer")
    assert {seg[k, 1] for seg in lines.get_segments()} <= {0.0, 0.5, 1.0}


def test_an_empty_store_is_refused_and_nothing_written(tmp_path):
    with (make_store(tmp_path, []) as store,
          pytest.raises(ValueError, match=r"no finished trial in .*sweep\.db")):
        plot_all(store, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_top_must_be_positive(tmp_path):
    with (make_store(tmp_path, synthetic_results(n=5, rounds=1)) as store,
          pytest.raises(ValueError, match="top must be a positive integer")):
        plot_all(store, tmp_path, top=0)


def test_only_diverged_trials_still_plot(tmp_path):
    results = [r for r in synthetic_results() if r.score is None]
    with make_store(tmp_path, results) as store:
        paths = plot_all(store, tmp_path)
    assert len(paths) == 3 and all(png_size(path) for path in paths)


def test_cli_sweep_plot(tmp_path, capsys):
    make_store(tmp_path, synthetic_results(n=30), name="cli.db").close()
    out = tmp_path / "plots"
    assert main(["sweep", "plot", "--db", str(tmp_path / "cli.db"), "--out", str(out),
                 "--top", "10"]) == 0
    printed = capsys.readouterr().out
    for name in ("cli-curves.png", "cli-scores.png", "cli-parallel.png"):
        assert str(out / name) in printed
        assert png_size(out / name)


def test_cli_sweep_plot_of_an_empty_sweep_is_one_line(tmp_path, capsys):
    make_store(tmp_path, [], name="empty.db").close()
    assert main(["sweep", "plot", "--db", str(tmp_path / "empty.db"),
                 "--out", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert "no finished trial in" in err and "\n" not in err


def test_hpo_experiment_draws_the_same_grid(capsys):
    """``fastnet experiment hpo`` draws its 4 x 5 grid with ``curves_figure``."""
    from fastnet.experiments import hyperparameter_search as hpo

    space = Space(hpo.SPACE)
    results = [TrialResult(**{**vars(r), "config": space.config_from_unit([0.3 + i / 100, 0.5])})
               for i, r in enumerate(synthetic_results(n=30, rounds=1))]
    saved = {}

    class Context:
        def save_figure(self, fig, filename):
            saved[filename] = fig

    best = best_trials(results)[:20]
    hpo.draw_best(Context(), results, best)
    fig = saved["hpo.png"]
    axes = visible(fig)
    assert len(axes) == 20 and len(fig.axes) == 20
    assert axes[0].get_subplotspec().get_geometry()[:2] == (4, 5)
    assert axes[0].get_title().startswith(f"Best-1: trial {best[0].index} ")
    assert "lr " in axes[0].get_title() and "wd " in axes[0].get_title()
    assert capsys.readouterr().out.count("| lr:") == 20


@pytest.mark.parametrize("first", ["fastnet.sweep.report", "fastnet.experiments"])
def test_report_and_experiments_import_in_either_order(first):
    """hpo imports report, report draws with experiments.shared: no import cycle."""
    import subprocess
    import sys

    code = f"import {first}, fastnet.sweep.report, fastnet.experiments.hyperparameter_search"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_sweep_plot_into_a_file_is_one_line(tmp_path, capsys):
    make_store(tmp_path, synthetic_results(n=5, rounds=1), name="s.db").close()
    (tmp_path / "file").write_text("")
    assert main(["sweep", "plot", "--db", str(tmp_path / "s.db"),
                 "--out", str(tmp_path / "file")]) == 1
    err = capsys.readouterr().err.strip()
    assert "file" in err and "\n" not in err
