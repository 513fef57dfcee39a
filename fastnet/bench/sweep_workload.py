"""``fastnet bench``'s sweep workloads (issue 9): ``sweep-hpo``, ``sweep-overhead``,
``sweep-dask`` and ``sweep-halving``.

Each is measured once per run (one sweep is seconds to minutes), every implementation
in the same run so that the ratios compare like with like:

* ``sweep-hpo``: the book's HPO (784-100x6-10, 400 training / 100 validation images,
  50 epochs, batch 100, SGD, accuracy on both sets after every epoch, lr 10^U(-6,-2),
  weight decay 10^U(-8,-4)) as a ``fastnet.sweep.run`` on the local executor (one
  worker per core, one thread each); its FLOP floor (``hpo_flops`` / the large-sgemm
  rate measured in the run); Optuna driving PyTorch on the same configurations
  (``optuna_worker``: 2 processes x 1 thread, journal file storage); the NumPy
  reference (``backend="reference"``); the old-style baseline (``old_style_hpo``: the
  pre-sweep ``experiment hpo``, one Trainer per trial in a spawned process pool).
* ``sweep-overhead``: ``overhead_trials`` one-step trainings of a tiny net as a sweep
  on one in-process worker, minus the same trainings back to back
  (``trial.run_units`` on the same chunks of ``executors.MAX_CHUNK`` trials, which
  train as populations as in the sweep): the store, scheduling and sampling per
  trial.  And the store's absorption rate (``record_rate``): ``SweepStore.record`` of
  HPO-shaped results in the coordinator's chunks, with the ``mark_running`` writes.
* ``sweep-dask``: the HPO sweep on a ``distributed.LocalCluster(n_workers=2,
  threads_per_worker=1)`` against the local executor (cluster start-up not timed).
* ``sweep-halving``: a sweep of 784-100x4-10 on Fashion-MNIST's training set (10,000
  of it held out to validate), up to 2 epochs per trial, successive halving (rungs at
  2/9 and 2/3 of an epoch, reduction factor 3), against Optuna + PyTorch with
  ``SuccessiveHalvingPruner`` at the same rungs and on the same configurations:
  trials per hour and best validation accuracy of each; and each side's FLOP floor (the
  GEMM FLOPs of the steps and evaluations it ran / the large-sgemm rate), as the
  pruners choose differently how far each trial trains.

Times are wall times of whole sweeps as a user sees them: worker start-up (process
spawn, imports, kernels loaded from the JIT cache) included on both sides.  A warm-up
sweep of two trials first makes sure fastnet's kernels are in the cache.
"""
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from . import harness

HPO = {"hidden": [100] * 6, "train": 400, "validation": 100, "epochs": 50, "batch": 100,
       "trials": 100, "lr": (1e-6, 1e-2), "weight_decay": (1e-8, 1e-4)}
HALVING = {"hidden": [100] * 4, "validation": 10_000, "epochs": 2, "batch": 100,
           "trials": 1000, "lr": (1e-4, 1.0), "weight_decay": (1e-8, 1e-4),
           "min_epochs": 2 / 9, "reduction_factor": 3, "train_eval": 10_000}
OVERHEAD = {"hidden": [10], "features": 20, "batch": 10, "trials": 1000}
RECORD_BATCH = 16  # results per transaction: the coordinator commits at least this many together
SGEMM_N = 2048
SEED = 0


# --------------------------------------------------------------------------- FLOPs

def train_flops(sizes, n):
    """GEMM FLOPs of training steps on ``n`` images of a net of layer ``sizes``:
    forward (2 n in out per layer), weight gradients (the same) and input gradients of
    every layer but the first (nothing needs the gradient of the images)."""
    forward = forward_flops(sizes, n)
    backward_x = forward_flops(sizes[1:], n)
    return 2 * forward + backward_x


def forward_flops(sizes, n):
    """GEMM FLOPs of a forward pass of ``n`` images."""
    return sum(2 * n * a * b for a, b in itertools.pairwise(sizes))


def hpo_flops(hidden=HPO["hidden"], n_train=HPO["train"], n_val=HPO["validation"],
              epochs=HPO["epochs"], batch=HPO["batch"], inputs=784, classes=10):
    """Exact GEMM FLOPs of one HPO trial: each epoch trains on ``n_train // batch``
    whole batches and evaluates the training and validation sets once."""
    sizes = [inputs, *hidden, classes]
    steps = max(n_train // batch, 1)
    per_epoch = train_flops(sizes, steps * min(batch, n_train)) + forward_flops(sizes, n_train + n_val)
    return epochs * per_epoch


def halving_flops(steps, evaluations, batch, n_eval, hidden=HALVING["hidden"], inputs=784,
                  classes=10):
    """GEMM FLOPs of a sweep's work: ``steps`` training steps of ``batch`` images and
    ``evaluations`` forward passes over ``n_eval`` images (the training-evaluation and
    validation sets together), summed over its trials."""
    sizes = [inputs, *hidden, classes]
    return train_flops(sizes, steps * batch) + evaluations * forward_flops(sizes, n_eval)


def sweep_work(results, per_epoch):
    """``(steps, evaluations)`` of a sweep's ``results``: each trial's steps up to its
    last evaluation (a diverged trial's steps after it are not counted, as the Optuna
    worker counts a failed trial's) and its count of evaluations."""
    from fastnet.sweep.trial import epoch_step

    return (sum(epoch_step(r.epochs[-1], per_epoch) for r in results if r.epochs),
            sum(len(r.epochs) for r in results))


def sgemm_rate(n=SGEMM_N, repeats=7):
    """FLOP/s of an ``n``^3 float32 ``np.matmul`` on this process's BLAS threads (the
    median of ``repeats`` after one warm-up)."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    out = np.empty((n, n), np.float32)
    np.matmul(a, b, out=out)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times)


# --------------------------------------------------------------------------- data

def hpo_data(settings):
    """``((x_train, t_train), (x_val, t_val))`` of the HPO workload: shuffled first
    images of the dataset's training set, as ``fastnet experiment hpo`` takes them;
    the description of the data."""
    from fastnet.datasets import load_dataset
    from fastnet.util import shuffle_dataset

    name = settings.get("sweep_dataset", "mnist")
    # the tests' folder of MNIST's test digits, where no other copy is configured
    data_dir = os.environ.get("FASTNET_MNIST_DIR") if name == "mnist" else None
    try:
        (x, t), _, description = load_dataset(name)
    except FileNotFoundError:
        if not data_dir:
            raise
        (x, t), _, description = load_dataset(name, data_dir)
    n_train, n_val = settings["sweep_train"], settings["sweep_validation"]
    x, t = shuffle_dataset(x[:n_train + n_val], t[:n_train + n_val], seed=SEED)
    return ((x[n_val:], t[n_val:]), (x[:n_val], t[:n_val])), description


def _hpo_space(epochs):
    from fastnet import sweep

    return {"hidden_size_list": HPO["hidden"], "optimizer": "SGD",
            "mini_batch_size": HPO["batch"], "epochs": epochs,
            "lr": sweep.log_uniform(*HPO["lr"]),
            "weight_decay_lambda": sweep.log_uniform(*HPO["weight_decay"])}


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def _best(results, status=None):
    """The best final validation accuracy of ``results`` (of those with ``status``)."""
    scores = [r.score for r in results if r.score is not None and status in (None, r.status)]
    return max(scores) if scores else None


def _states(results):
    out = {}
    for r in results:
        out[r.status] = out.get(r.status, 0) + 1
    return out


def _warm_up(data, space, workers):
    """Trials of ``space`` for 1 epoch on ``workers``, alone and as a population (chunks
    of 1 and of 2): every kernel a sweep of it runs, in the JIT cache."""
    from fastnet import sweep

    for chunk_size in (1, 2):
        sweep.run({**space, "epochs": 1}, 2, data, workers=min(2, workers),
                  threads_per_worker=1, chunk_size=chunk_size, progress=False)


def _one(wall):
    """A single timed run as a report entry (seconds)."""
    return harness.summary([wall], 1, scale=1.0)


def _ratio(a, b):
    return None if a is None or b is None or not b else a / b


# --------------------------------------------------------------------------- Optuna

def optuna_skip_reason(use_torch):
    if not use_torch:
        return "left out (--no-torch)"
    missing = [m for m in ("torch", "optuna") if not harness.has_module(m)]
    return f"{' and '.join(missing)} not importable" if missing else None


def run_optuna(trial_data, configs, hidden, batch, evals, procs, n_threads, pruner=None,
               lr_range=HPO["lr"], wd_range=HPO["weight_decay"]):
    """Run ``optuna_worker`` on ``configs`` (``[{"lr", "weight_decay"}]``); its result
    dict (``wall_s``, ``states``, ``best_val_acc``...)."""
    with tempfile.TemporaryDirectory(prefix="fastnet-optuna-") as tmp:
        tmp = Path(tmp)
        np.savez(tmp / "data.npz", **{name: getattr(trial_data, name) for name in (
            "x_train", "t_train", "x_val", "t_val", "x_train_eval", "t_train_eval")})
        job = {"data": str(tmp / "data.npz"), "journal": str(tmp / "journal.log"),
               "hidden": list(hidden), "batch": batch, "evals": evals, "procs": procs,
               "configs": configs, "pruner": pruner, "lr_range": list(lr_range),
               "wd_range": list(wd_range)}
        (tmp / "job.json").write_text(json.dumps(job))
        env = harness.torch_env(1, "default")
        proc = subprocess.run([sys.executable, str(Path(__file__).with_name("optuna_worker.py")),
                               str(tmp / "job.json")], env=env, capture_output=True,
                              text=True, check=False, timeout=6 * 3600)
    if proc.returncode:
        raise RuntimeError(f"optuna_worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _configs(results):
    return [{"lr": r.config["lr"], "weight_decay": r.config["weight_decay_lambda"]}
            for r in results]


def _epoch_evals(trial_data, batch, epochs):
    per_epoch = max(len(trial_data.x_train) // batch, 1)
    return [[per_epoch * e, e] for e in range(1, epochs + 1)]


# --------------------------------------------------------------------------- old style

def _old_style_trial(train, val, epochs, lr, weight_decay, seed):
    """One trial as ``fastnet experiment hpo`` ran it before ``fastnet.sweep``: the
    book's Trainer on fastnet, the last validation accuracy."""
    from fastnet.experiments.shared import get_backend, train_epochs
    from fastnet.nets import MultiLayerNet

    net = MultiLayerNet(train[0].shape[1], HPO["hidden"], 10, weight_decay_lambda=weight_decay,
                        seed=seed)
    trainer = train_epochs(get_backend("fastnet"), net, train, val, epochs=epochs, lr=lr,
                           seed=seed, batch_size=HPO["batch"])
    return trainer.test_acc_list[-1]


def old_style_hpo(train, val, epochs, results, workers):
    """The pre-sweep ``experiment hpo`` (commit 03b9d27^): a spawned process pool of
    ``workers`` one-thread processes, one trial per task, on ``results``'
    configurations; the final validation accuracies."""
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial
    from multiprocessing import get_context

    from fastnet.threads import set_num_threads

    lrs = [r.config["lr"] for r in results]
    decays = [r.config["weight_decay_lambda"] for r in results]
    seeds = [r.seed % 2**32 for r in results]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                             initializer=set_num_threads, initargs=(1,)) as pool:
        return list(pool.map(partial(_old_style_trial, train, val, epochs), lrs, decays, seeds))


# --------------------------------------------------------------------------- workloads

def _result(description, implementations, notes, skipped, ratios, extra=None):
    out = {"description": description, "unit": "s", "implementations": implementations,
           "notes": notes, "skipped": skipped, "ratios": ratios}
    out.update(extra or {})
    return out


def sweep_hpo_workload(n_threads, settings, use_torch, progress):
    from fastnet import sweep
    from fastnet.sweep.data import load

    (train, val), description = hpo_data(settings)
    trials, epochs = settings["sweep_trials"], settings["sweep_epochs"]
    space = _hpo_space(epochs)
    progress("  warm-up (2 trials, 1 epoch)")
    _warm_up((train, val), space, n_threads)
    impls, notes, skipped = {}, {}, {}

    rate = sgemm_rate()
    flops = trials * hpo_flops(n_train=len(train[0]), n_val=len(val[0]), epochs=epochs)
    floor = flops / rate
    impls["gemm-floor"] = _one(floor)
    notes["gemm-floor"] = (f"{flops / 1e9:.1f} GFLOP / {rate / 1e9:.1f} GFLOP/s "
                           f"({SGEMM_N}^3 sgemm, {n_threads} threads)")

    progress(f"  fastnet: {trials} trials, {n_threads} workers x 1 thread")
    wall, results = _timed(lambda: sweep.run(space, trials, (train, val), workers=n_threads,
                                             threads_per_worker=1, seed=SEED, progress=False))
    impls["fastnet"] = _one(wall)
    notes["fastnet"] = f"best val acc {_best(results):.3f}, {_states(results)}"

    reason = optuna_skip_reason(use_torch)
    if reason:
        skipped["optuna+torch"] = reason
    else:
        procs = settings.get("optuna_procs") or n_threads
        progress(f"  optuna+torch: {trials} trials, {procs} processes x 1 thread")
        trial_data = load((train, val))
        out = run_optuna(trial_data, _configs(results), HPO["hidden"], HPO["batch"],
                         _epoch_evals(trial_data, HPO["batch"], epochs), procs, n_threads)
        impls["optuna+torch"] = _one(out["wall_s"])
        notes["optuna+torch"] = (f"best val acc {out['best_val_acc']:.3f}, {out['states']}, "
                                 f"optuna {out['optuna']}, journal file storage")

    if settings.get("sweep_reference", True):
        progress(f"  reference: {trials} trials")
        wall_ref, ref = _timed(lambda: sweep.run(space, trials, (train, val), workers=n_threads,
                                                 threads_per_worker=1, seed=SEED,
                                                 backend="reference", progress=False))
        impls["reference"] = _one(wall_ref)
        notes["reference"] = f"NumPy oracle, best val acc {_best(ref):.3f}"
    else:
        skipped["reference"] = "left out (--sweep-no-reference)"
    if settings.get("sweep_old_style", True):
        progress(f"  old-style: {trials} trials in a process pool")
        wall_old, old = _timed(lambda: old_style_hpo(train, val, epochs, results, n_threads))
        impls["old-style"] = _one(wall_old)
        notes["old-style"] = (f"pre-sweep experiment hpo: Trainer per trial in a spawned "
                              f"pool, best val acc {max(old):.3f}")

    med = {k: v["median"] for k, v in impls.items()}
    ratios = {"fastnet_over_floor": _ratio(med["fastnet"], med["gemm-floor"]),
              "optuna_torch_over_fastnet": _ratio(med.get("optuna+torch"), med["fastnet"]),
              "reference_over_fastnet": _ratio(med.get("reference"), med["fastnet"]),
              "old_style_over_fastnet": _ratio(med.get("old-style"), med["fastnet"]),
              "gflop_per_trial": flops / trials / 1e9, "sgemm_gflops": rate / 1e9}
    desc = (f"HPO sweep, {trials} trials of 784-{'x'.join(map(str, HPO['hidden'][:1]))}"
            f"x{len(HPO['hidden'])}-10, {len(train[0])} train / {len(val[0])} val images "
            f"({description}), {epochs} epochs, batch {HPO['batch']}, SGD; one run each")
    return _result(desc, impls, notes, skipped, ratios)


def _overhead_data():
    rng = np.random.default_rng(0)
    n, d = OVERHEAD["batch"], OVERHEAD["features"]
    return ((rng.random((n, d), dtype=np.float32), rng.integers(0, 10, n)),
            (rng.random((n, d), dtype=np.float32), rng.integers(0, 10, n)))


def record_rate(n_results=1000, batch=RECORD_BATCH, epochs=HPO["epochs"]):
    """Results per second that ``SweepStore.record`` absorbs, HPO-shaped (``epochs``
    evaluations each), in batches of ``batch`` as the coordinator records them; and the
    rate with the trials' ``mark_running`` transactions as a sweep commits them, one per
    submitted chunk of ``executors.MAX_CHUNK`` (the target's rate)."""
    from fastnet.sweep.executors import MAX_CHUNK
    from fastnet.sweep.store import SweepStore, TrialResult

    curve = [0.5] * epochs
    results = [TrialResult(index=i, round=0, config={"lr": 1e-3, "weight_decay_lambda": 1e-6,
                                                     "hidden_size_list": HPO["hidden"]},
                           seed=i, status="done", epochs=list(range(1, epochs + 1)),
                           train_loss=curve, train_acc=curve, val_loss=curve, val_acc=curve,
                           val_acc_final=0.5, val_loss_final=0.5, wall_time=1.0, host="bench")
               for i in range(n_results)]
    chunks = [results[i:i + batch] for i in range(0, n_results, batch)]
    with tempfile.TemporaryDirectory(prefix="fastnet-store-") as tmp:
        with SweepStore.create(Path(tmp) / "a.db", {"bench": "record"}) as store:
            record_s = 0.0
            for chunk in chunks:
                store.mark_running([r.index for r in chunk], "bench")
                start = time.perf_counter()
                store.record(chunk)
                record_s += time.perf_counter() - start
        with SweepStore.create(Path(tmp) / "b.db", {"bench": "record"}) as store:
            start = time.perf_counter()
            for chunk in chunks:
                for first in range(0, len(chunk), MAX_CHUNK):
                    store.mark_running([r.index for r in chunk[first:first + MAX_CHUNK]],
                                       "bench")
                store.record(chunk)
            both_s = time.perf_counter() - start
    return n_results / record_s, n_results / both_s


def sweep_overhead_workload(n_threads, settings, progress):
    from fastnet import sweep
    from fastnet.sweep import samplers, trial
    from fastnet.sweep.data import load
    from fastnet.sweep.executors import MAX_CHUNK

    data = _overhead_data()
    trials = settings["overhead_trials"]
    space = {"hidden_size_list": OVERHEAD["hidden"], "optimizer": "SGD",
             "mini_batch_size": OVERHEAD["batch"], "epochs": 1,
             "lr": sweep.log_uniform(1e-3, 1e-1)}
    _warm_up(data, space, 1)  # the kernels of trials alone and as populations, for both sides
    trial_data = load(data)
    sampler = samplers.RandomSampler(sweep.Space(space), SEED)
    units = [trial.Unit(i, sampler.sample(i), samplers.trial_seed(SEED, i), 1, (1,))
             for i in range(trials)]
    from fastnet.threads import get_num_threads, set_num_threads

    before = get_num_threads()
    set_num_threads(1)
    try:
        progress(f"  {trials} one-step trainings back to back")
        bare, _ = _timed(lambda: [trial.run_units(units[i:i + MAX_CHUNK], trial_data)
                                  for i in range(0, trials, MAX_CHUNK)])
    finally:
        set_num_threads(before)
    progress(f"  the same {trials} trials as a sweep (one in-process worker)")
    wall, results = _timed(lambda: sweep.run(space, trials, data, workers=1,
                                             threads_per_worker=1, seed=SEED,
                                             chunk_size=MAX_CHUNK, progress=False))
    progress(f"  the same as a sweep on {n_threads} local worker processes")
    wall_local, _ = _timed(lambda: sweep.run(space, trials, data, workers=n_threads,
                                             threads_per_worker=1, seed=SEED, progress=False))
    progress("  store: record rate")
    rate, rate_with_mark = record_rate(max(1000, settings.get("record_results", 1000)))
    impls = {"back-to-back": _one(bare), "sweep in-process": _one(wall),
             f"sweep {n_threads} workers": _one(wall_local)}
    notes = {"back-to-back": f"trial.run_units on chunks of {MAX_CHUNK}, one thread, no "
                             "store/sampler/executor",
             "sweep in-process": f"fastnet.sweep.run(workers=1, chunk_size={MAX_CHUNK}), "
                                 f"{_states(results)}",
             f"sweep {n_threads} workers": "local executor, process start-up included"}
    ratios = {"overhead_ms_per_trial": (wall - bare) / trials * 1e3,
              "local_pool_ms_per_trial": wall_local / trials * 1e3,
              "bare_ms_per_trial": bare / trials * 1e3,
              "record_results_per_s": rate, "record_with_mark_running_per_s": rate_with_mark}
    desc = (f"sweep overhead: {trials} one-step trials ({OVERHEAD['features']} features, "
            f"hidden {OVERHEAD['hidden']}, train = batch = {OVERHEAD['batch']}); store: "
            f"SweepStore.record of 1,000+ 50-epoch results in chunks of {RECORD_BATCH}")
    return _result(desc, impls, notes, {}, ratios)


def sweep_dask_workload(n_threads, settings, progress):
    from fastnet import sweep

    if not harness.has_module("distributed"):
        return _result("HPO sweep, Dask LocalCluster vs local executor", {}, {},
                       {"dask": "distributed not importable (pip install 'fastnet[distributed]')"},
                       {"dask_over_local": None})
    import distributed

    (train, val), description = hpo_data(settings)
    trials, epochs = settings["sweep_trials"], settings["sweep_epochs"]
    space = _hpo_space(epochs)
    _warm_up((train, val), space, n_threads)
    workers = settings.get("dask_workers", 2)
    progress(f"  local executor: {trials} trials, {workers} workers x 1 thread")
    local_wall, local = _timed(lambda: sweep.run(space, trials, (train, val), workers=workers,
                                                 threads_per_worker=1, seed=SEED, progress=False))
    progress(f"  dask LocalCluster(n_workers={workers}, threads_per_worker=1)")
    start = time.perf_counter()
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        cluster_s = time.perf_counter() - start
        dask_wall, remote = _timed(lambda: sweep.run(space, trials, (train, val), client=client,
                                                     threads_per_worker=1, seed=SEED,
                                                     progress=False))
    same = [r.val_acc for r in local] == [r.val_acc for r in remote]
    impls = {"local": _one(local_wall), "dask": _one(dask_wall)}
    notes = {"local": f"best val acc {_best(local):.3f}",
             "dask": (f"best val acc {_best(remote):.3f}; cluster start-up not timed; "
                      f"results {'identical' if same else 'DIFFER'} to local")}
    ratios = {"dask_over_local": dask_wall / local_wall,
              "dask_with_cluster_start_over_local": (dask_wall + cluster_s) / local_wall,
              "cluster_start_s": cluster_s, "results_identical": float(same)}
    desc = (f"HPO sweep ({trials} trials, {epochs} epochs, {description}) on "
            f"distributed.LocalCluster({workers} workers x 1 thread) vs the local executor")
    return _result(desc, impls, notes, {}, ratios)


def halving_spec(settings):
    from fastnet import sweep

    return sweep.data_spec("fashion-mnist", settings.get("halving_train_size"),
                           settings["halving_validation"], HALVING["train_eval"], SEED)


def sweep_halving_workload(n_threads, settings, use_torch, progress):
    from fastnet import sweep
    from fastnet.sweep.data import load

    spec = halving_spec(settings)
    trials, epochs = settings["halving_trials"], HALVING["epochs"]
    space = {"hidden_size_list": HALVING["hidden"], "optimizer": "SGD",
             "mini_batch_size": HALVING["batch"], "epochs": epochs,
             "lr": sweep.log_uniform(*HALVING["lr"]),
             "weight_decay_lambda": sweep.log_uniform(*HALVING["weight_decay"])}
    pruner = sweep.SuccessiveHalving(HALVING["min_epochs"], HALVING["reduction_factor"])
    trial_data = load(spec)
    per_epoch = max(len(trial_data.x_train) // HALVING["batch"], 1)
    n_eval = len(trial_data.x_val) + len(trial_data.x_train_eval)
    _warm_up(spec, space, n_threads)
    rate = sgemm_rate()
    progress(f"  fastnet: {trials} trials, successive halving, {n_threads} workers x 1 thread")
    wall, results = _timed(lambda: sweep.run(space, trials, spec, pruner=pruner,
                                             workers=n_threads, threads_per_worker=1,
                                             seed=SEED, progress=False))
    best = _best(results, "done")  # as Optuna's best: trials that trained to the end
    steps, evaluations = sweep_work(results, per_epoch)
    flops = halving_flops(steps, evaluations, HALVING["batch"], n_eval)
    impls = {"fastnet": _one(wall), "fastnet-floor": _one(flops / rate)}
    notes = {"fastnet": (f"best val acc {best:.4f} (of trials done), {_states(results)}, "
                         f"{steps:,} steps, {evaluations} evaluations"),
             "fastnet-floor": (f"fastnet's work: {flops / 1e9:.0f} GFLOP / {rate / 1e9:.1f} "
                               f"GFLOP/s ({SGEMM_N}^3 sgemm, {n_threads} threads)")}
    skipped = {}
    ratios = {"fastnet_trials_per_hour": trials / wall * 3600, "fastnet_best_val_acc": best,
              "fastnet_over_floor": wall * rate / flops, "sgemm_gflops": rate / 1e9}
    reason = optuna_skip_reason(use_torch)
    if reason:
        skipped["optuna+torch"] = reason
    else:
        ninths = [2, 6, 9, 18]  # 2/9, 2/3, 1 and 2 epochs, the sweep's evaluations
        evals = [[int(per_epoch * k / 9 + 1e-9), k] for k in ninths]
        procs = settings.get("optuna_procs") or n_threads
        progress(f"  optuna+torch: {trials} trials, SuccessiveHalvingPruner, {procs} processes")
        out = run_optuna(trial_data, _configs(results), HALVING["hidden"], HALVING["batch"],
                         evals, procs, n_threads,
                         pruner={"min_resource": 2, "reduction_factor": HALVING["reduction_factor"]},
                         lr_range=HALVING["lr"], wd_range=HALVING["weight_decay"])
        optuna_flops = halving_flops(out["steps"], out["evaluations"], HALVING["batch"], n_eval)
        impls["optuna+torch"] = _one(out["wall_s"])
        impls["optuna+torch-floor"] = _one(optuna_flops / rate)
        notes["optuna+torch"] = (f"best val acc {out['best_val_acc']:.4f}, {out['states']}, "
                                 f"{out['steps']:,} steps, {out['evaluations']} evaluations")
        notes["optuna+torch-floor"] = f"Optuna's work: {optuna_flops / 1e9:.0f} GFLOP"
        ratios["optuna_trials_per_hour"] = trials / out["wall_s"] * 3600
        ratios["optuna_over_floor"] = out["wall_s"] * rate / optuna_flops
        # time per GEMM FLOP of work done, Optuna's over fastnet's: the speed ratio with
        # the pruners' different choices of what to train taken out
        ratios["optuna_over_fastnet_per_flop"] = ((out["wall_s"] / optuna_flops)
                                                  / (wall / flops))
        ratios["optuna_best_val_acc"] = out["best_val_acc"]
        ratios["trials_per_hour_vs_optuna"] = out["wall_s"] / wall
        if out["best_val_acc"] is not None and best is not None:
            # the difference rounded to 1e-9, far below one image in 10,000, so that
            # 0.8641 - 0.8591 reads 0.5 points, not 0.5000000000000004
            ratios["best_acc_gap_points"] = 100 * round(out["best_val_acc"] - best, 9)
    scaled = "" if trials == HALVING["trials"] else f" (SCALED DOWN from {HALVING['trials']})"
    desc = (f"successive halving sweep, {trials} trials{scaled} of 784-100x4-10 on "
            f"Fashion-MNIST ({len(trial_data.x_train):,} train / {len(trial_data.x_val):,} "
            f"val images), up to {epochs} epochs, rungs 2/9 and 2/3 epoch, eta 3; "
            f"trials per hour and best val acc")
    return _result(desc, impls, notes, skipped, ratios)
