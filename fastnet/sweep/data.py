"""The data a sweep trains on: a named dataset split reproducibly, or arrays.

A *data spec* is a JSON-able dict that any worker can load by itself (a Dask worker
on another machine included), and that the store keeps, so that a resumed sweep
refuses other data::

    {"dataset": "mnist", "train_size": 400, "validation": 100, "train_eval": None,
     "split_seed": 0}

``validation`` images are held out of the dataset's training set (the book's
``hyperparameter_optimization.py`` holds out 20%): the first ``train_size +
validation`` training images are shuffled with ``split_seed``, the first
``validation`` of them validate and the rest train.  ``validation`` may be a fraction
(< 1) of those images.  ``train_size=None`` takes every remaining image.
``train_eval`` limits the training images evaluated at each epoch (``None``: all).
The dataset's test set is never used by a sweep.

Arrays given directly (``((x_train, t_train), (x_val, t_val))``) are identified in the
store by a SHA-256 fingerprint of their bytes.
"""
import functools
import hashlib
import json

import numpy as np

from .. import _validate
from .trial import TrialData

DATA_KEYS = ("dataset", "train_size", "validation", "train_eval", "split_seed")


def data_spec(dataset="mnist", train_size=None, validation=0.2, train_eval=None, split_seed=0):
    """A checked data spec (see the module doc).  Raises ``ValueError`` naming the bad
    entry: an unknown dataset, a non-positive size, a validation fraction outside (0,
    1)."""
    from ..datasets import LOADERS

    if dataset not in LOADERS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {sorted(LOADERS)}")
    train_size = _validate.positive_int(train_size, "train_size")
    train_eval = _validate.positive_int(train_eval, "train_eval")
    if isinstance(validation, float) and validation >= 1:
        raise ValueError(f"validation must be a fraction in (0, 1) or an integer count, got "
                         f"{validation!r}")
    if not (0 < validation < 1 or (int(validation) == validation and validation >= 1)):
        raise ValueError(f"validation must be a fraction in (0, 1) or a count >= 1, got "
                         f"{validation!r}")
    return {"dataset": dataset, "train_size": train_size, "validation": validation,
            "train_eval": train_eval, "split_seed": int(split_seed)}


def split(spec, x, t):
    """``(train, validation)`` of the images ``x`` and labels ``t`` by ``spec``.
    Raises ``ValueError`` when the dataset has too few images."""
    validation = spec["validation"]
    if validation < 1:
        total = len(x) if spec["train_size"] is None else round(spec["train_size"] / (1 - validation))
        n_val = round(total * validation)
    else:
        n_val = int(validation)
        total = len(x) if spec["train_size"] is None else spec["train_size"] + n_val
    if n_val < 1:
        raise ValueError(f"validation {validation!r} of {total:,} images is no image: hold out "
                         f"a larger fraction, or a count")
    if total > len(x) or total - n_val < 1:
        raise ValueError(f"{spec['dataset']} has {len(x):,} training images; the sweep asks "
                         f"for {total - n_val:,} to train and {n_val:,} to validate")
    order = np.random.default_rng(spec["split_seed"]).permutation(total)
    val, train = order[:n_val], order[n_val:]
    return (x[train], t[train]), (x[val], t[val])


@functools.lru_cache(maxsize=4)
def _load_named(key, dtype_name, data_dir):
    from ..datasets import load_dataset

    spec = json.loads(key)
    (x, t), _, _ = load_dataset(spec["dataset"], data_dir)
    train, validation = split(spec, x, t)
    return TrialData.from_arrays(train, validation, spec["train_eval"], np.dtype(dtype_name))


def _named(source):
    """The data spec of the dict ``source``, checked as ``data_spec`` checks one, with its
    defaults where ``source`` leaves entries out; ValueError for an unknown key."""
    unknown = sorted(set(source) - {*DATA_KEYS, "data_dir"})
    if unknown:
        raise ValueError(f"unknown data spec keys {unknown}; a data spec has "
                         f"{', '.join(DATA_KEYS)} (and data_dir)")
    return data_spec(**{k: source[k] for k in DATA_KEYS if k in source})


def load(source, dtype=np.float32, data_dir=None):
    """The ``TrialData`` of ``source``: a data spec (loaded once per process), a
    ``TrialData`` or ``(train, validation)`` arrays."""
    if isinstance(source, TrialData):
        return source
    if isinstance(source, dict):
        key = json.dumps(_named(source), sort_keys=True)
        return _load_named(key, np.dtype(dtype).name, source.get("data_dir", data_dir))
    pair = isinstance(source, tuple | list) and len(source) == 2 and all(
        isinstance(part, tuple | list) and len(part) == 2 for part in source)
    if not pair:
        raise TypeError(f"data must be a data spec (fastnet.sweep.data.data_spec), a "
                        f"TrialData, or ((x_train, t_train), (x_val, t_val)); got "
                        f"{type(source).__name__}")
    train, validation = source
    return TrialData.from_arrays(train, validation, dtype=dtype)


def describe(source, loaded):
    """What the store records of ``source``: the spec (for a named dataset) and the
    SHA-256 of the ``loaded`` arrays, so that a resume on other data (other files in
    another folder, the MNIST fallback then the real files) is refused."""
    digest = hashlib.sha256()
    for a in (loaded.x_train, loaded.t_train, loaded.x_val, loaded.t_val):
        digest.update(f"{a.dtype.str}{a.shape}".encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    named = _named(source) if isinstance(source, dict) else {}
    return {**named, "arrays_sha256": digest.hexdigest()}
