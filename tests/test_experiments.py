"""The chapter-6 experiments (``fastnet experiment``), each in its ``--quick`` form.

Data: ``$FASTNET_MNIST_DIR`` when set (CI points it at the real 10k MNIST test digits,
so the experiments take the documented fallback split), else a small fake MNIST of
learnable patterns written as IDX files.  Downloads are pointed at a closed local
port, so nothing leaves the machine.
"""
import csv
import errno
import gzip
import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from fastnet import threads
from fastnet.cli import main
from fastnet.datasets import DatasetNotFoundError, load_dataset
from fastnet.experiments import EXPERIMENTS
from fastnet.experiments.shared import Context, get_backend

FILES = {  # what each experiment writes into --out
    "optimizer-paths": ["optimizer-paths.png", "optimizer-paths.csv"],
    "optimizers": ["optimizers.png", "optimizers.csv"],
    "activations": ["activations-sigmoid.png", "activations-tanh.png",
                    "activations-relu.png", "activations.csv"],
    "init": ["init.png", "init.csv"],
    "batchnorm": ["batchnorm.png", "batchnorm.csv"],
    "overfit": ["overfit.png", "overfit.csv"],
    "hpo": ["hpo.png", "hpo.json"],
    "normalization": ["normalization.png", "normalization-scales.csv", "normalization-batch.csv"],
}


def write_idx(path, array):
    """``array`` (uint8) as a gzipped IDX file, the MNIST format."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    path.write_bytes(gzip.compress(header + array.astype(np.uint8).tobytes()))


def write_fake_mnist(folder, n_train=600, n_test=200, splits=("train", "t10k"), seed=0):
    """Noisy 28x28 images with a bright block whose position encodes the label."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in zip(("train", "t10k"), (n_train, n_test)):
        if split not in splits:
            continue
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 80, (n, 28, 28))
        for image, label in zip(images, labels):
            row, col = divmod(int(label), 5)
            image[4 + 12 * row:12 + 12 * row, 2 + 5 * col:6 + 5 * col] = 255
        write_idx(folder / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{split}-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory):
    if os.environ.get("FASTNET_MNIST_DIR"):
        return Path(os.environ["FASTNET_MNIST_DIR"])
    return write_fake_mnist(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Quick runs are too small to gain from threads, and on a busy machine two BLAS
    threads per process oversubscribe the cores and slow everything down."""
    before = threads.get_num_threads()
    threads.set_num_threads(1)
    yield
    threads.set_num_threads(before)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """A private dataset cache, no $FASTNET_DATA, and mirrors that refuse at once."""
    monkeypatch.setenv("FASTNET_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("FASTNET_DATA", raising=False)
    monkeypatch.setenv("FASTNET_MNIST_MIRRORS", "http://127.0.0.1:9/")


def experiment(name, out, data_dir, *options):
    return main(["experiment", name, "--quick", "--out", str(out), "--data-dir", str(data_dir),
                 *options])


def test_all_quick_writes_every_figure_and_curve(mnist_dir, tmp_path, capsys):
    assert experiment("all", tmp_path / "out", mnist_dir) == 0
    stdout = capsys.readouterr().out
    for name, files in FILES.items():
        assert f"=== {name}:" in stdout and f"--- {name}: wall time" in stdout
        for filename in files:
            path = tmp_path / "out" / filename
            assert path.stat().st_size > 1000 if filename.endswith(".png") else path.stat().st_size
    assert stdout.count("QUICK MODE") == len(EXPERIMENTS)
    with open(tmp_path / "out" / "summary.csv") as summary:
        rows = list(csv.DictReader(summary))
    assert [row["experiment"] for row in rows] == list(EXPERIMENTS)
    assert all(float(row["wall_s"]) > 0 for row in rows)

    with open(tmp_path / "out" / "optimizers.csv") as curves:
        rows = list(csv.DictReader(curves))
    assert len(rows) == EXPERIMENTS["optimizers"].QUICK_SETTINGS["iterations"]
    assert {"SGD", "Momentum", "AdaGrad", "Adam", "RMSprop", "Nesterov"} <= set(rows[0])
    trials = json.loads((tmp_path / "out" / "hpo.json").read_text())["trials"]
    assert len(trials) == EXPERIMENTS["hpo"].QUICK_SETTINGS["trials"]
    assert all(1e-6 <= t["lr"] <= 1e-2 and 1e-8 <= t["weight_decay"] <= 1e-4 for t in trials)


def test_reference_backend_quick(mnist_dir, tmp_path, capsys):
    assert experiment("overfit", tmp_path, mnist_dir, "--backend", "reference") == 0
    assert "[backend: reference]" in capsys.readouterr().out
    assert all((tmp_path / filename).is_file() for filename in FILES["overfit"])


def test_optimizer_paths_agree_across_backends(tmp_path, mnist_dir):
    for backend in ("fastnet", "reference"):
        assert experiment("optimizer-paths", tmp_path / backend, mnist_dir,
                          "--backend", backend) == 0
    fast, ref = ((tmp_path / b / "optimizer-paths.csv").read_text().splitlines()
                 for b in ("fastnet", "reference"))
    assert len(fast) == 1 + 4 * 31
    for fast_row, ref_row in zip(fast[1:], ref[1:]):
        name, step, *xy = fast_row.split(",")
        assert ref_row.split(",")[:2] == [name, step]
        np.testing.assert_allclose([float(v) for v in xy],
                                   [float(v) for v in ref_row.split(",")[2:]], atol=1e-5)


def test_mnist_fallback_splits_the_test_digits(tmp_path, capsys):
    folder = write_fake_mnist(tmp_path / "only-test", n_test=100, splits=("t10k",))
    (x_train, t_train), (x_test, t_test), description = load_dataset("mnist", folder)
    assert (len(x_train), len(t_train), len(x_test), len(t_test)) == (80, 80, 20, 20)
    assert x_train.dtype == np.float32 and x_train.shape[1] == 784 and x_train.max() == 1
    assert "MNIST FALLBACK" in description and "MNIST FALLBACK" in capsys.readouterr().err


def test_missing_dataset_is_reported(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError):
        load_dataset("mnist", tmp_path / "empty")
    assert experiment("init", tmp_path, tmp_path / "empty") == 1
    assert "fastnet experiment: error: MNIST not found" in capsys.readouterr().err


def test_quick_settings_scale_down_known_settings():
    for module in EXPERIMENTS.values():
        assert set(module.QUICK_SETTINGS) <= set(module.SETTINGS), module.NAME


def test_a_failed_write_keeps_the_previous_file_and_names_it(tmp_path, file_size_limit):
    ctx = Context(get_backend("reference"), tmp_path / "out")
    umask = os.umask(0o027)
    try:
        ctx.write_csv("curve.csv", ["x"], [(1,)])
        ctx.write_json("trials.json", {"trials": []})
    finally:
        os.umask(umask)
    # the umask's mode, as open() gives, not mkstemp's 0600
    assert {stat.S_IMODE(path.stat().st_mode) for path in ctx.written} == {0o640}
    before = {path.name: path.read_bytes() for path in ctx.written}
    for write, filename in ((lambda: ctx.write_csv("curve.csv", ["x"], [(i,) for i in range(9999)]),
                             "curve.csv"),
                            (lambda: ctx.write_json("trials.json", {"trials": list(range(9999))}),
                             "trials.json")):
        with file_size_limit(1000), pytest.raises(OSError) as failed:
            write()
        assert failed.value.filename == str(tmp_path / "out" / filename)
    assert {path.name: path.read_bytes() for path in (tmp_path / "out").iterdir()} == before
    assert len(ctx.written) == 2  # the failed writes are not listed as written


def test_a_failed_figure_keeps_the_previous_one_and_the_error_names_it(tmp_path, mnist_dir,
                                                                         capsys, file_size_limit):
    assert experiment("optimizer-paths", tmp_path, mnist_dir) == 0
    before = {name: (tmp_path / name).read_bytes() for name in FILES["optimizer-paths"]}
    capsys.readouterr()
    with file_size_limit(1000):
        status = experiment("optimizer-paths", tmp_path, mnist_dir)
    assert status == 1
    too_large = f"[Errno {errno.EFBIG}] {os.strerror(errno.EFBIG)}"
    assert capsys.readouterr().err == (f"fastnet experiment: error: {too_large}: "
                                       f"'{tmp_path / 'optimizer-paths.png'}'\n")
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend"):
        get_backend("cuda")
