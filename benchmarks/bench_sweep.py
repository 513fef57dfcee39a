"""Sweeps (``fastnet.sweep``, issue 9): a small HPO-shaped sweep end to end, and the
rate at which the store absorbs results.

``SweepHPO``: 20 trials of the book's HPO net (784-100x6-10, SGD, batch 100, lr
10^U(-6,-2), weight decay 10^U(-8,-4), accuracy on both sets every epoch) on 400
training / 100 validation MNIST-shaped images (random, so nothing is downloaded),
``epochs`` per trial, one worker process per core of one thread each, on fastnet or on
the NumPy reference backend.  Each sample is a whole ``fastnet.sweep.run``, worker
start-up included (the kernels come from the JIT cache, filled in ``setup``).
``fastnet bench --workload sweep-hpo`` runs the full 100-trial, 50-epoch version
against Optuna + PyTorch and the GEMM floor.

``SweepStoreRecord``: ``SweepStore.record`` of 1,000 HPO-shaped results (50 epochs of
curves each) in the coordinator's chunks of 16, each chunk marked running first, as a
sweep does: the time (store creation included) and, as a track, results per second
of ``record`` alone.

A commit without ``fastnet.sweep`` skips both (``NotImplementedError`` in ``setup``).
"""
import os
import tempfile
import time
from pathlib import Path

from .common import batch, fastnet_api

HIDDEN, N_TRAIN, N_VAL, BATCH, TRIALS = [100] * 6, 400, 100, 100, 20
N_RESULTS, CHUNK, EPOCHS = 1000, 16, 50


def _cores():
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class SweepHPO:
    params = (["fastnet", "reference"], [10])
    param_names = ("implementation", "epochs")
    number = 1
    repeat = (1, 5, 60.0)
    warmup_time = 0
    timeout = 900

    def setup(self, implementation, epochs):
        run = fastnet_api("fastnet.sweep", "run")
        log_uniform = fastnet_api("fastnet.sweep", "log_uniform")
        self.data = (batch(N_TRAIN, seed=0), batch(N_VAL, seed=1))
        self.space = {"hidden_size_list": HIDDEN, "optimizer": "SGD",
                      "mini_batch_size": BATCH, "epochs": epochs,
                      "lr": log_uniform(1e-6, 1e-2),
                      "weight_decay_lambda": log_uniform(1e-8, 1e-4)}
        self.run = run
        self.workers = _cores()
        # the kernels into the JIT cache, for the worker processes to load: trials alone
        # and as a population (chunks of 1 and of 2)
        for chunk_size in (1, 2):
            run({**self.space, "epochs": 1}, 2, self.data, workers=1, backend=implementation,
                chunk_size=chunk_size, progress=False)

    def time_sweep_20_trials(self, implementation, epochs):
        self.run(self.space, TRIALS, self.data, workers=self.workers, threads_per_worker=1,
                 backend=implementation, progress=False)


class SweepStoreRecord:
    params = ([N_RESULTS],)
    param_names = ("results",)
    number = 1
    repeat = (3, 10, 20.0)
    warmup_time = 0

    def setup(self, n):
        store = fastnet_api("fastnet.sweep", "SweepStore")
        result = fastnet_api("fastnet.sweep", "TrialResult")
        curve = [0.5] * EPOCHS
        results = [result(index=i, round=0, seed=i, status="done",
                          config={"lr": 1e-3, "weight_decay_lambda": 1e-6,
                                  "hidden_size_list": HIDDEN},
                          epochs=list(range(1, EPOCHS + 1)), train_loss=curve,
                          train_acc=curve, val_loss=curve, val_acc=curve, val_acc_final=0.5,
                          val_loss_final=0.5, wall_time=1.0, host="bench")
                   for i in range(n)]
        self.chunks = [results[i:i + CHUNK] for i in range(0, n, CHUNK)]
        self.store_class = store
        self.tmp = tempfile.TemporaryDirectory(prefix="fastnet-asv-store-")
        self.count = 0

    def teardown(self, n):
        self.tmp.cleanup()

    def _new_store(self):
        self.count += 1
        return self.store_class.create(Path(self.tmp.name) / f"{self.count}.db",
                                       {"bench": "record"})

    def time_mark_and_record(self, n):
        with self._new_store() as store:
            for chunk in self.chunks:
                store.mark_running([r.index for r in chunk], "bench")
                store.record(chunk)

    def track_record_rate(self, n):
        with self._new_store() as store:
            seconds = 0.0
            for chunk in self.chunks:
                store.mark_running([r.index for r in chunk], "bench")
                start = time.perf_counter()
                store.record(chunk)
                seconds += time.perf_counter() - start
        return n / seconds

    track_record_rate.unit = "results/s"
