"""The book's chapter-6 scripts run either way: on fastnet, or on the book's own code.

The scripts are stored once, in ``book_scripts/`` beside this module (its README says
what was changed in each), importing fastnet's modules as a user of the drop-in would.
``script_source(name, way)`` gives the text that runs:

* ``way="fastnet"``: the stored text as it is;
* ``way="reference"``: the book's code as published stands in for fastnet's modules
  (``REFERENCE_MODULES``): ``fastnet.reference``'s optimizers, util and Trainer, and its
  nets in float64 (``MultiLayerNet`` and ``MultiLayerNetExtend`` below), as the book's
  NumPy code computes: float32 images times float64 weights.

Both ways read the data through ``load_mnist`` below, the stand-in for the book's
``dataset/mnist.py``, pointed at a dataset by ``$FASTNET_BOOK_DATA``.  ``scale`` (under
1: a shorter run) rewrites each script's own length knob (``KNOBS``: iterations,
epochs, trials) and nothing else.  ``run_script`` runs one with matplotlib's Agg
backend, ``plt.show()`` saving the figure into a folder; ``main`` does so from the
command line of a process of its own, as ``fastnet bench --workload book-scripts`` runs
each (``CHILD``).
"""
import os
import re
import sys
from importlib import resources
from pathlib import Path

import numpy as np

from fastnet.reference import nets as reference_nets

# In the order of the book's chapter; the first six are the training scripts.
SCRIPTS = ["optimizer_compare_naive", "optimizer_compare_mnist", "weight_init_compare",
           "batch_norm_test", "batch_norm_gradient_check", "overfit_weight_decay",
           "overfit_dropout", "hyperparameter_optimization"]
TRAINING_SCRIPTS = ["optimizer_compare_mnist", "weight_init_compare", "batch_norm_test",
                    "overfit_weight_decay", "overfit_dropout", "hyperparameter_optimization"]
WAYS = ("reference", "fastnet")

# What stands in for each fastnet module the scripts import, on the reference way.
REFERENCE_MODULES = {
    "fastnet.nets": "fastnet.bench.book",  # fastnet.reference's nets in float64
    "fastnet.optimizers": "fastnet.reference.optimizers",
    "fastnet.util": "fastnet.reference.util",
    "fastnet.trainer": "fastnet.reference.trainer",
}
DATA_MODULE = "fastnet.bench.book"  # load_mnist, the same both ways

# Each script's length knobs: (the text with ``{}`` for the number, the book's number,
# the least a scaled run keeps).  optimizer_compare_naive (30 steps of a 2-D function)
# and batch_norm_gradient_check (one image) have none.
KNOBS = {
    "optimizer_compare_mnist": [("max_iterations = {}", 2000, 101)],
    "weight_init_compare": [("max_iterations = {}", 2000, 101)],
    "batch_norm_test": [("max_epochs = {}", 20, 2)],
    "overfit_weight_decay": [("max_epochs = {}", 201, 2)],
    "overfit_dropout": [("epochs={},", 301, 2)],
    "hyperparameter_optimization": [("optimization_trial = {}", 100, 2),
                                    ("epocs={})", 50, 2)],
}

DATASETS = ("auto", "mnist", "fashion-mnist", "mnist-test", "synthetic")
_IMPORT = re.compile(r"^from (fastnet\.[\w.]+) import ", re.MULTILINE)


def script_path(name):
    """The stored script ``name`` (a file inside the installed package)."""
    if name not in SCRIPTS:
        raise ValueError(f"unknown book script {name!r}; choose from {', '.join(SCRIPTS)}")
    return Path(str(resources.files(__package__).joinpath("book_scripts", f"{name}.py")))


def scaled(value, least, scale):
    """A knob's number in a run of ``scale`` (1: the book's)."""
    return value if scale == 1 else max(least, round(value * scale))


def script_source(name, way="fastnet", scale=1.0):
    """The text of script ``name`` that runs ``way``, its knobs scaled by ``scale``."""
    if way not in WAYS:
        raise ValueError(f"way must be one of {WAYS}, got {way!r}")
    source = script_path(name).read_text(encoding="utf-8")
    for module in _IMPORT.findall(source):
        if module != DATA_MODULE and module not in REFERENCE_MODULES:
            raise ValueError(f"{name}.py imports {module}, which has no stand-in on the "
                             f"reference way (REFERENCE_MODULES)")
    if way == "reference":
        source = _IMPORT.sub(lambda m: f"from {REFERENCE_MODULES.get(m[1], m[1])} import ",
                             source)
    for text, value, least in KNOBS.get(name, []):
        old = text.format(value)
        if source.count(old) != 1:
            raise ValueError(f"{name}.py: expected {old!r} once, found it "
                             f"{source.count(old)} times")
        source = source.replace(old, text.format(scaled(value, least, scale)))
    return source


def run_script(name, way, out_dir, scale=1.0):
    """Run script ``name`` in this process (as ``__main__``), ``plt.show()`` saving the
    current figure as ``OUT_DIR/<name>-<way>[-<n>].png``; returns the paths saved.

    The figure stays open after ``show`` (pyplot's current figure), so that a caller
    may look at what was drawn.  The text that ran is left as ``OUT_DIR/<name>-<way>.py``.
    """
    import runpy

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    script = out_dir / f"{name}-{way}.py"
    script.write_text(script_source(name, way, scale), encoding="utf-8")
    saved = []

    def show(*args, **kwargs):
        suffix = f"-{len(saved) + 1}" if saved else ""
        saved.append(out_dir / f"{name}-{way}{suffix}.png")
        plt.savefig(saved[-1])

    original_show = plt.show
    plt.show = show
    try:
        runpy.run_path(str(script), run_name="__main__")
    finally:
        plt.show = original_show
    return saved


# --------------------------------------------------------------------------- the book's code

class MultiLayerNet(reference_nets.MultiLayerNet):
    """The book's ``MultiLayerNet``: ``fastnet.reference``'s, in float64 by default."""

    def __init__(self, *args, dtype=np.float64, **kwargs):
        super().__init__(*args, dtype=dtype, **kwargs)


class MultiLayerNetExtend(reference_nets.MultiLayerNetExtend):
    """The book's ``MultiLayerNetExtend``: ``fastnet.reference``'s, in float64 by default."""

    def __init__(self, *args, dtype=np.float64, **kwargs):
        super().__init__(*args, dtype=dtype, **kwargs)


# --------------------------------------------------------------------------- the data

def load_mnist(normalize=True, flatten=True, one_hot_label=False):
    """The book's ``dataset.mnist.load_mnist``, on the dataset ``$FASTNET_BOOK_DATA`` names.

    ``mnist`` and ``fashion-mnist``: the full sets, found by ``fastnet.datasets`` (never
    downloaded here); ``mnist-test``: only MNIST's 10,000 test digits, the first 8,000
    as the training set and the last 2,000 as the test set; ``synthetic``: 10 noisy
    prototypes, 6,000 + 1,000 images; ``auto`` (the default): the first of these four
    that is at hand.  ``$FASTNET_BOOK_TRAIN_SIZE`` and ``$FASTNET_BOOK_TEST_SIZE`` keep
    only the first so many images of each set.  Images are float32, as the book's.
    """
    (x_train, t_train), (x_test, t_test), _ = load_dataset(os.environ.get("FASTNET_BOOK_DATA",
                                                                          "auto"))
    x_train, t_train = _head(x_train, t_train, "FASTNET_BOOK_TRAIN_SIZE")
    x_test, t_test = _head(x_test, t_test, "FASTNET_BOOK_TEST_SIZE")
    return tuple((_images(x, normalize, flatten), _labels(t, one_hot_label))
                 for x, t in ((x_train, t_train), (x_test, t_test)))


def load_dataset(name):
    """``(x_train, t_train), (x_test, t_test), name`` as uint8 ``(N, 784)`` images and
    int labels, for ``name`` in ``DATASETS`` (``auto`` resolved to the one found)."""
    from fastnet import datasets

    if name not in DATASETS:
        raise ValueError(f"FASTNET_BOOK_DATA must be one of {DATASETS}, got {name!r}")
    for candidate in (("mnist", "fashion-mnist", "mnist-test", "synthetic")
                      if name == "auto" else (name,)):
        try:
            if candidate == "synthetic":
                return (*_synthetic(), candidate)
            if candidate == "mnist-test":
                x, t = datasets.load_test_set("mnist", normalize=False)
                return (x[:8000], t[:8000]), (x[8000:], t[8000:]), candidate
            loader = datasets.load_mnist if candidate == "mnist" else datasets.load_fashion_mnist
            return (*loader(normalize=False, download=False), candidate)
        except datasets.DatasetNotFoundError:
            if name != "auto":
                raise
    raise AssertionError("unreachable: synthetic data is always at hand")


def _synthetic(n_train=6000, n_test=1000, seed=0):
    """Ten classes: a random blurred prototype each, plus noise, as uint8 images."""
    rng = np.random.default_rng(seed)
    prototypes = rng.random((10, 28, 28))
    for axis in (1, 2):  # a little smoothing, so that images have strokes, not salt
        prototypes = (prototypes + np.roll(prototypes, 1, axis) + np.roll(prototypes, -1, axis)) / 3
    prototypes = prototypes.reshape(10, 784)
    labels = rng.integers(0, 10, n_train + n_test)
    images = prototypes[labels] + 0.35 * rng.standard_normal((labels.size, 784))
    images = np.clip(images * 255, 0, 255).astype(np.uint8)
    return (images[:n_train], labels[:n_train]), (images[n_train:], labels[n_train:])


def _head(x, t, variable):
    size = os.environ.get(variable)
    return (x, t) if not size else (x[:int(size)], t[:int(size)])


def _images(x, normalize, flatten):
    x = x.reshape(len(x), 784) if flatten else x.reshape(len(x), 1, 28, 28)
    return x.astype(np.float32) / 255.0 if normalize else x


def _labels(t, one_hot_label):
    return np.eye(10, dtype=np.float32)[t] if one_hot_label else t


# A process that runs one script: ``[sys.executable, *CHILD, NAME, WAY, OUT_DIR, SCALE]``.
# Not ``-m fastnet.bench.book``: the package imports this module first, and runpy would
# run a second copy of it.
CHILD = ["-c", "import sys; from fastnet.bench.book import main; main(sys.argv[1:])"]


def main(argv=None):
    """Command line ``NAME WAY OUT_DIR [SCALE]``: ``run_script`` (see ``CHILD``)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (3, 4):
        raise SystemExit("usage: NAME WAY OUT_DIR [SCALE] (fastnet.bench.book.main)")
    run_script(args[0], args[1], args[2], float(args[3]) if len(args) == 4 else 1.0)
