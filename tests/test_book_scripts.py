"""The book's chapter-6 scripts, stored once in ``fastnet/bench/book_scripts/`` and run
unchanged but for their import lines (the drop-in contract), on fastnet and on the
book's code (``fastnet.bench.book``)."""
import re

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from fastnet.bench import book

FASTNET_IMPORT = re.compile(r"^from (fastnet\.[\w.]+) import .+  # book: from "
                            r"(common|dataset)\.\w+ import .+$", re.MULTILINE)


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


def test_child_command_line(capsys):
    """``book.main`` (the command line of ``book.CHILD``) says how to call it."""
    with pytest.raises(SystemExit, match="usage: NAME WAY OUT_DIR"):
        book.main(["x"])
