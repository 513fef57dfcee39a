"""The book's chapter-6 scripts, stored once in ``fastnet/bench/book_scripts/`` and run
unchanged but for their import lines (the drop-in contract), on fastnet and on the
book's code (``fastnet.bench.book``); and the ``book-scripts`` workload of ``fastnet
bench`` that times the two (``fastnet.bench.book_workload``)."""
import json
import re

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from fastnet import bench
from fastnet.bench import book, book_workload, harness

FASTNET_IMPORT = re.compile(r"^from (fastnet\.[\w.]+) import .+  # book: from "
                            r"(common|dataset)\.\w+ import .+$", re.MULTILINE)


def data_for_tests():
    """MNIST's test digits where they are at hand, else the synthetic images."""
    try:
        return book.load_dataset("mnist-test")[2]
    except FileNotFoundError:
        return "synthetic"


# --------------------------------------------------------------------------- the scripts

def drawn_paths(tmp_path, way):
    """Run optimizer_compare_naive ``way``; each subplot's title and path as drawn."""
    plt.close("all")
    try:
        saved = book.run_script("optimizer_compare_naive", way, tmp_path)
        return saved, {ax.get_title(): ax.lines[0].get_xydata() for ax in plt.gcf().axes}
    finally:
        plt.close("all")


def test_optimizer_compare_naive_draws_the_books_paths(tmp_path):
    """It moves Python floats ``params = {'x': -7.0, 'y': 2.0}`` with each optimizer,
    and must draw the reference's paths."""
    saved, paths = drawn_paths(tmp_path / "fastnet", "fastnet")
    _, reference = drawn_paths(tmp_path / "reference", "reference")
    assert list(paths) == ["SGD", "Momentum", "AdaGrad", "Adam"] == list(reference)
    for title, path in paths.items():
        assert path.shape == (30, 2), title
        np.testing.assert_allclose(path, reference[title], rtol=1e-12, atol=1e-12,
                                   err_msg=title)
        np.testing.assert_array_equal(path[0], [-7.0, 2.0])
        # every optimizer heads for the minimum of x**2 / 20 + y**2 at the origin
        assert np.hypot(*path[-1]) < 0.5 * np.hypot(-7.0, 2.0), title
    png = saved[0].read_bytes()
    assert saved == [tmp_path / "fastnet" / "optimizer_compare_naive-fastnet.png"]
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


@pytest.mark.parametrize("name", book.SCRIPTS)
def test_only_the_imports_differ(name):
    """Every import of the book's modules became one of fastnet's, the book's line kept
    as a comment; the reference way swaps exactly those lines."""
    stored = book.script_path(name).read_text(encoding="utf-8")
    assert book.script_source(name, "fastnet") == stored
    imports = FASTNET_IMPORT.findall(stored)
    assert imports and not re.search(r"^from (common|dataset)\b", stored, re.MULTILINE)
    assert stored.count("plt.show()") == (0 if name == "batch_norm_gradient_check" else 1)
    reference = book.script_source(name, "reference")
    differ = [(a, b) for a, b in zip(stored.splitlines(), reference.splitlines()) if a != b]
    swapped = [module for module, _ in imports if module in book.REFERENCE_MODULES]
    assert len(differ) == len(swapped)
    for (fast_line, ref_line), module in zip(differ, swapped):
        assert ref_line == fast_line.replace(module, book.REFERENCE_MODULES[module], 1)


def test_knobs_scale_the_scripts_length_only():
    full = book.script_source("hyperparameter_optimization", "fastnet")
    short = book.script_source("hyperparameter_optimization", "fastnet", scale=0.05)
    assert "optimization_trial = 100" in full and "epocs=50)" in full
    assert "optimization_trial = 5" in short and "epocs=2)" in short
    assert len(full.splitlines()) == len(short.splitlines())
    assert "max_iterations = 101" in book.script_source("optimizer_compare_mnist", scale=0.01)
    assert book.scaled(20, 2, 0.001) == 2 and book.scaled(301, 2, 1) == 301
    with pytest.raises(ValueError, match="unknown book script"):
        book.script_source("nope")
    with pytest.raises(ValueError, match="way must be one of"):
        book.script_source("batch_norm_test", "torch")


def test_the_books_code_is_float64():
    net = book.MultiLayerNetExtend(784, [10], 10, use_batchnorm=True, seed=0)
    assert {p.dtype for p in net.params.values()} == {np.dtype(np.float64)}
    assert book.MultiLayerNet(784, [10], 10, dtype=np.float32).params["W1"].dtype == np.float32


def test_load_mnist_stand_in(monkeypatch):
    monkeypatch.setenv("FASTNET_BOOK_DATA", "synthetic")
    monkeypatch.setenv("FASTNET_BOOK_TRAIN_SIZE", "300")
    monkeypatch.setenv("FASTNET_BOOK_TEST_SIZE", "50")
    (x, t), (x_test, t_test) = book.load_mnist(normalize=True)
    assert x.shape == (300, 784) and x.dtype == np.float32 and 0 <= x.min() <= x.max() <= 1
    assert t.shape == (300,) and set(np.unique(t)) <= set(range(10))
    assert x_test.shape == (50, 784) and t_test.shape == (50,)
    (x, t), _ = book.load_mnist(normalize=False, flatten=False, one_hot_label=True)
    assert x.shape == (300, 1, 28, 28) and x.dtype == np.uint8 and t.shape == (300, 10)
    monkeypatch.setenv("FASTNET_BOOK_DATA", "cifar")
    with pytest.raises(ValueError, match="FASTNET_BOOK_DATA must be one of"):
        book.load_mnist()


@pytest.mark.slow
@pytest.mark.parametrize("way", book.WAYS)
@pytest.mark.parametrize("name", book.SCRIPTS)
def test_script_runs_to_completion(name, way, tmp_path):
    """Each script, in a process of its own, at the least length its knobs allow."""
    env = harness.child_env(2, FASTNET_BOOK_DATA=data_for_tests(), FASTNET_BOOK_TEST_SIZE="300",
                            MPLBACKEND="Agg")
    _, stdout = book_workload.run_script_process(name, way, tmp_path, 0.001, env)
    results = book_workload.parse_output(name, stdout)
    assert (tmp_path / f"{name}-{way}.py").is_file()
    if name == "batch_norm_gradient_check":
        assert set(results) == {f"grad diff {k}" for k in (
            "W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2", "W3", "b3")}
        assert all(0 <= v < 1 for v in results.values())
        return
    assert (tmp_path / f"{name}-{way}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    expected = {
        "optimizer_compare_naive": set(),
        "optimizer_compare_mnist": {"loss SGD", "loss Momentum", "loss AdaGrad", "loss Adam"},
        "weight_init_compare": {"loss std=0.01", "loss Xavier", "loss He"},
        "batch_norm_test": {"mean final train acc", "mean final train acc (batch norm)",
                            "weight scales"},
        "overfit_weight_decay": {"epochs", "train acc", "test acc"},
        "overfit_dropout": {"epochs", "train acc", "test acc", "final test acc"},
        "hyperparameter_optimization": {"best val acc", "trials"},
    }[name]
    assert set(results) == expected
    assert all(np.isfinite(v) for v in results.values())


# --------------------------------------------------------------------------- parsing

BLOCKS = ("===========iteration:0===========\nstd=0.01:2.30\nXavier:2.2\nHe:2.0\n"
          "===========iteration:100===========\nstd=0.01:2.31\nXavier:1.0\nHe:0.5\n")
SCALES = ("============== 1/16 ==============\nepoch:0 | 0.1 - 0.2\nepoch:1 | 0.3 - 0.9\n"
          "============== 2/16 ==============\nepoch:0 | 0.1 - 0.1\nepoch:1 | 0.5 - 0.7\n")
EPOCHS = "epoch:0, train acc:0.1, test acc:0.12\nepoch:1, train acc:0.5, test acc:0.4\n"
TRAINER = ("train loss:2.3\n=== epoch:1, train acc:0.2, test acc:0.25 ===\ntrain loss:2.2\n"
           "=============== Final Test Accuracy ===============\ntest acc:0.3\n")
SEARCH = ("val acc:0.1 | lr:1e-05, weight decay:1e-07\n"
          "val acc:0.7 | lr:0.005, weight decay:2e-06\n"
          "=========== Hyper-Parameter Optimization Result ===========\n"
          "Best-1(val acc:0.7) | lr:0.005, weight decay:2e-06\n")
PRINTED = {
    "weight_init_compare": (BLOCKS, {"loss std=0.01": 2.305, "loss Xavier": 1.6,
                                     "loss He": 1.25}),
    "batch_norm_test": (SCALES, {"mean final train acc": 0.4,
                                 "mean final train acc (batch norm)": 0.8,
                                 "weight scales": 2.0}),
    "batch_norm_gradient_check": ("W1:1.5e-10\nb1:2e-09\n",
                                  {"grad diff W1": 1.5e-10, "grad diff b1": 2e-09}),
    "overfit_weight_decay": (EPOCHS, {"epochs": 1.0, "train acc": 0.5, "test acc": 0.4}),
    "overfit_dropout": (TRAINER, {"epochs": 1.0, "train acc": 0.2, "test acc": 0.25,
                                  "final test acc": 0.3}),
    "hyperparameter_optimization": (SEARCH, {"best val acc": 0.7, "trials": 2.0}),
    "optimizer_compare_naive": ("", {}),
}


@pytest.mark.parametrize("name", sorted(PRINTED))
def test_parse_output(name):
    stdout, expected = PRINTED[name]
    results = book_workload.parse_output(name, stdout)
    assert results.keys() == expected.keys()
    for key, value in expected.items():
        assert results[key] == pytest.approx(value), key


def test_compare():
    checks = book_workload.compare("overfit_weight_decay", {"train acc": 0.99, "test acc": 0.75},
                                   {"train acc": 0.87, "test acc": 0.67, "epochs": 3.0})
    assert [(c["metric"], c["agree"]) for c in checks] == [("train acc", True),
                                                          ("test acc", False)]
    checks = book_workload.compare("weight_init_compare", {"loss He": 0.2, "loss Xavier": 0.3},
                                   {"loss He": 0.3})
    assert [(c["metric"], c["agree"]) for c in checks] == [("loss He", True),
                                                          ("loss Xavier", False)]
    checks = book_workload.compare(
        "batch_norm_gradient_check",
        {"grad diff W1": 1e-9, "grad diff b3": 2e-7, "grad diff beta2": 0.061},
        {"grad diff W1": 0.5, "grad diff b3": 1.5e-4, "grad diff beta2": 0.0495})
    assert [(c["metric"], c["agree"]) for c in checks] == [
        ("grad diff W1", False), ("grad diff b3", True), ("grad diff beta2", True)]


def runs(metric, values, **others):
    """Synthetic runs of a script: one ``parse_output`` dict per value of ``metric``."""
    return [{metric: v, **others} for v in values]


BOOK = [0.683, 0.643, 0.650, 0.671, 0.659, 0.648, 0.662, 0.676, 0.655, 0.667]
SAME = [0.661, 0.672, 0.648, 0.655, 0.679, 0.644, 0.666, 0.652, 0.670, 0.658]


def test_compare_runs_equal():
    checks = book_workload.compare_runs("overfit_dropout", runs("train acc", BOOK, epochs=3.0),
                                        runs("train acc", SAME, epochs=3.0))
    assert len(checks) == 1
    check = checks[0]
    assert check["metric"] == "train acc" and check["test"] == "Welch"
    assert check["reference"] == pytest.approx(np.mean(BOOK))
    assert check["fastnet_sd"] == pytest.approx(np.std(SAME, ddof=1))
    assert check["n_reference"] == check["n_fastnet"] == 10
    assert check["p_value"] > 0.5 and not check["significant"] and check["agree"]
    assert check["tolerance"] == pytest.approx(
        book_workload.PRACTICAL_FRACTION * book_workload.CHECKS["overfit_dropout"]["train acc"])


def test_compare_runs_shifted():
    """Fifteen points lower, far outside the spread and the practical size: differ."""
    shifted = [v - 0.15 for v in SAME]
    [check] = book_workload.compare_runs("overfit_dropout", runs("train acc", BOOK),
                                         runs("train acc", shifted))
    assert check["p_value"] < 1e-6 and check["significant"] and not check["agree"]


def test_compare_runs_shifted_within_the_practical_size():
    """A shift of 1.5 points is significant at ten runs but under half the bound of 16
    points: agree, as are float32's 1e-4 against float64's 1e-7 in the gradient check."""
    shifted = [v - 0.015 for v in SAME]
    [check] = book_workload.compare_runs("overfit_dropout", runs("train acc", BOOK),
                                         runs("train acc", shifted))
    assert check["significant"] and check["agree"]
    [check] = book_workload.compare_runs("batch_norm_gradient_check",
                                         runs("grad diff W1", [1e-7, 1.1e-7, 0.9e-7]),
                                         runs("grad diff W1", [1e-4, 1.02e-4, 0.98e-4]))
    assert check["significant"] and check["agree"]
    assert check["tolerance"] == pytest.approx(0.5 * (1e-3 + 0.5 * 1e-4))


def test_compare_runs_constant_and_missing():
    """Runs that all print the same value (no variance to test) and a metric one run
    did not print (disagrees, as in the one-pair check)."""
    [check] = book_workload.compare_runs("overfit_weight_decay", runs("train acc", [1.0] * 3),
                                         runs("train acc", [1.0] * 3))
    assert check["p_value"] == 1.0 and check["agree"]
    [check] = book_workload.compare_runs("overfit_weight_decay", runs("train acc", [1.0] * 3),
                                         runs("train acc", [0.5] * 3))
    assert check["p_value"] == 0.0 and not check["agree"]
    fastnet = runs("train acc", [0.97, 0.98, 0.99])
    del fastnet[1]["train acc"]
    [check] = book_workload.compare_runs("overfit_weight_decay",
                                         runs("train acc", [0.97, 0.98, 0.99]), fastnet)
    assert check["n_fastnet"] == 2 and check["p_value"] is None and not check["agree"]


@pytest.mark.parametrize("n", [1, 2])
def test_compare_runs_falls_back_to_one_pair(n):
    """Under ``MIN_RUNS`` runs a way, the last run of each is compared as ``compare`` does."""
    reference = runs("train acc", [0.5] * (n - 1) + [0.99], **{"test acc": 0.75})
    fastnet = runs("train acc", [0.5] * (n - 1) + [0.87], **{"test acc": 0.67})
    checks = book_workload.compare_runs("overfit_weight_decay", reference, fastnet)
    assert [(c["metric"], c["agree"], c["test"]) for c in checks] == [
        ("train acc", True, "one pair"), ("test acc", False, "one pair")]
    assert all(c["p_value"] is None and c["n_reference"] == 1 for c in checks)
    assert book_workload.compare_runs("overfit_weight_decay", [], fastnet) == []


def test_by_metric_keeps_every_run():
    assert book_workload.by_metric([{"a": 1.0, "b": 2.0}, {"a": 3.0}]) == {
        "a": [1.0, 3.0], "b": [2.0, None]}


# The run-to-run standard deviations the one-pair bounds come from (book_workload's
# docstring: 8 runs each way on Fashion-MNIST, pooled over both ways); a bound is
# 3 sqrt(2) of one, the difference of two runs, rounded to the point.
MEASURED_SD = {("overfit_weight_decay", "train acc"): 0.03434,
               ("overfit_weight_decay", "test acc"): 0.01613,
               ("overfit_dropout", "train acc"): 0.03844,
               ("overfit_dropout", "test acc"): 0.03323,
               ("overfit_dropout", "final test acc"): 0.03303}


@pytest.mark.parametrize(("name", "metric"), list(MEASURED_SD))
def test_overfitting_bounds_are_three_sd_of_a_difference(name, metric):
    sd = MEASURED_SD[name, metric]
    assert book_workload.CHECKS[name][metric] == round(3 * np.sqrt(2) * sd, 2)
    assert set(book_workload.CHECKS[name]) == {m for n, m in MEASURED_SD if n == name}


def test_failed_and_silent_scripts_disagree():
    """A script that failed, and a checked script whose runs printed none of its checked
    results, count as disagreeing; an unchecked script that ran agrees."""
    names = ["overfit_weight_decay", "overfit_dropout", "optimizer_compare_naive",
             "batch_norm_test"]
    walls = {name: {way: [1.0] for way in book.WAYS} for name in names}
    walls["batch_norm_test"] = {way: [] for way in book.WAYS}
    results = {name: {way: [{}] for way in book.WAYS} for name in names}
    results["overfit_dropout"] = {way: runs("train acc", [0.6], **{"test acc": 0.55,
                                                                   "final test acc": 0.55})
                                  for way in book.WAYS}
    figures = {name: {way: [] for way in book.WAYS} for name in names}
    failed = {"batch_norm_test": "batch_norm_test (fastnet) failed"}

    def judged(scale=1.0):
        return book_workload._result(names, "synthetic", {"book_scale": scale, "book_runs": 1},
                                     walls, results, figures, failed)

    result = judged()
    scripts = result["scripts"]
    assert scripts["overfit_weight_decay"]["agree"] is False
    assert scripts["overfit_dropout"]["agree"] is True
    assert scripts["optimizer_compare_naive"]["agree"] is True
    assert scripts["batch_norm_test"]["speedup"] is None
    assert result["ratios"]["scripts_disagreeing"] == 2.0
    assert judged(0.05)["ratios"]["scripts_disagreeing"] == 1.0  # --quick: the failure
    for way in book.WAYS:  # one checked result that neither way printed
        del results["overfit_dropout"][way][0]["final test acc"]
    assert judged()["scripts"]["overfit_dropout"]["agree"] is False
    failed.clear()
    assert judged(0.05)["ratios"]["scripts_disagreeing"] is None


def test_report_shows_the_runs():
    entry = {"checks": book_workload.compare_runs("overfit_dropout", runs("train acc", BOOK[:3]),
                                                  runs("train acc", SAME[:4])),
             "results": {"reference": {"train acc": BOOK[:3]},
                         "fastnet": {"train acc": SAME[:4]}}}
    meta = {**harness.environment(1), "torch": None, "torch_note": "not installed"}
    result = {"description": "synthetic", "unit": "s", "implementations": {}, "notes": {},
              "skipped": {}, "ratios": {}, "targets": [], "scripts": {"overfit_dropout": entry}}
    text = bench.format_report({"meta": meta, "workloads": {"book-scripts": result}})
    lines = text.splitlines()
    at = lines.index("book-scripts: synthetic") + 1
    assert lines[at].startswith("  overfit_dropout: train acc: reference 0.6587 sd 0.02136 "
                                "(n 3), fastnet 0.659 sd 0.01017 (n 4); Welch p 0.98")
    assert lines[at].endswith("practical size 0.08: agree")
    assert lines[at + 1] == "      runs: reference 0.683 0.643 0.65; fastnet 0.661 0.672 0.648 0.655"


# --------------------------------------------------------------------------- the workload

@pytest.mark.slow
def test_book_scripts_workload_json(capsys, tmp_path):
    scripts = ["optimizer_compare_naive", "overfit_weight_decay"]
    assert bench.main(["--quick", "--json", "--no-torch", "--workload", "book-scripts",
                       "--book-scripts", ",".join(scripts), "--book-scale", "0.001",
                       "--book-data", data_for_tests(), "--book-out", str(tmp_path)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["settings"]["book_scripts"] == scripts
    result = report["workloads"]["book-scripts"]
    assert {"description", "unit", "implementations", "notes", "skipped", "ratios",
            "targets", "scripts"} <= set(result)
    assert result["unit"] == "s"
    assert set(result["implementations"]) == {f"{n} {w}" for n in scripts for w in book.WAYS}
    for summary in result["implementations"].values():
        assert summary["samples"] == 1 and 0 < summary["min"] <= summary["median"]
    ratios = result["ratios"]
    assert all(ratios[f"speedup_{n}"] > 0 for n in scripts)
    assert ratios["speedup_selected"] > 0 and ratios["speedup_total"] is None
    assert ratios["scripts_disagreeing"] is None and "agreement" in result["skipped"]
    assert [t["metric"] for t in result["targets"]] == [
        t.metric for t in bench.TARGETS["book-scripts"]]
    status = {t["metric"]: t["status"] for t in result["targets"]}
    assert status["speedup_batch_norm_test"] == "SKIP" == status["speedup_total"]
    assert status["speedup_overfit_weight_decay"] in ("PASS", "MISS")
    entry = result["scripts"]["overfit_weight_decay"]
    assert {c["metric"] for c in entry["checks"]} == {"train acc", "test acc"}
    assert entry["figures"] == {w: [f"overfit_weight_decay-{w}.png"] for w in book.WAYS}
    assert (tmp_path / "overfit_weight_decay-reference.py").is_file()
    assert "book-scripts" in bench.format_report(report)


def test_book_scripts_targets_and_default():
    targets = {t.metric: (t.op, t.threshold) for t in bench.TARGETS["book-scripts"]}
    assert targets["speedup_total"] == (">=", 4.5)
    assert targets["speedup_batch_norm_gradient_check"] == (">=", 5.0)
    assert all(targets[f"speedup_{n}"] == (">=", 3.5) for n in book.TRAINING_SCRIPTS)
    assert "book-scripts" in bench.WORKLOADS
    from fastnet.bench.cli import _selected, build_parser
    assert "book-scripts" not in _selected(build_parser(), None)


def test_unknown_book_script_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(["--workload", "book-scripts", "--book-scripts", "nope"])
    assert exc.value.code == 2
    assert "unknown book script nope" in capsys.readouterr().err


def test_child_command_line(capsys):
    """``book.main`` (the command line of ``book.CHILD``) says how to call it."""
    with pytest.raises(SystemExit, match="usage: NAME WAY OUT_DIR"):
        book.main(["x"])
