"""Hyperparameter sweeps (``fastnet sweep``): random, quasi-random, grid and
coarse-to-fine search over any argument of the nets, optimizers and trainer, trained
on every core or a Dask cluster, pruned by successive halving or the median rule,
stored in SQLite and resumable exactly after a crash.

    from fastnet import sweep
    results = sweep.run({"lr": sweep.log_uniform(1e-6, 1e-2),
                         "weight_decay_lambda": sweep.log_uniform(1e-8, 1e-4),
                         "hidden_size_list": [100] * 6, "epochs": 50},
                        trials=100, data=sweep.data_spec("mnist", 400, 100), db="hpo.db")

One module per role: ``space`` (distributions and the searchable parameters),
``samplers``, ``store`` (SQLite), ``trial`` (training one trial, resumable),
``pruners``, ``executors`` (local processes, Dask), ``run`` (the coordinator), ``data``,
``report`` (plots) and ``cli``.  ``space``, ``samplers`` and ``store`` import neither
the kernels nor the nets, so a coordinator that only records starts fast.
"""
from .data import data_spec
from .executors import WorkersDidNotStart
from .pruners import MedianPruner, SuccessiveHalving
from .run import SweepInterrupted, code_identity, run
from .samplers import CoarseToFineSampler, GridSampler, RandomSampler, Sampler, SobolSampler
from .space import (
    Space,
    choice,
    int_uniform,
    log_int,
    log_uniform,
    one_minus_log_uniform,
    uniform,
)
from .store import (
    CodeChangedError,
    NotASweepError,
    SpecMismatchError,
    SweepStore,
    SweepStoreError,
    TrialResult,
)

__all__ = ["CoarseToFineSampler", "CodeChangedError", "GridSampler", "MedianPruner",
           "NotASweepError", "RandomSampler", "Sampler", "SobolSampler", "Space",
           "SpecMismatchError", "SuccessiveHalving", "SweepInterrupted", "SweepStore",
           "SweepStoreError", "TrialResult", "WorkersDidNotStart", "choice", "code_identity",
           "data_spec", "int_uniform", "log_int", "log_uniform", "one_minus_log_uniform",
           "run", "uniform"]
