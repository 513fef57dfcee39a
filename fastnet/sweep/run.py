"""The coordinator of a sweep: samples trials, hands chunks to an executor, prunes at
rungs and is the only writer of the store.

Resuming is running again: ``run`` opens the store (creating it, or checking that it
holds the same sweep), keeps every trial recorded there as done, pruned, diverged or
failed, and trains the others from scratch.  Ended trials are recorded together in one
transaction at least every ``FLUSH_SECONDS`` (and on the way out of an exception), so
a sweep killed at any moment loses only the trials that were running or had ended in
the last fraction of a second, and no trial is ever recorded twice.  Because a trial's
configuration, seed and training depend only on the sweep's specification and the
trial's index, and pruning decisions only on the results of a bracket (see
``fastnet.sweep.pruners``), a resumed or re-run sweep records what an uninterrupted
one records, on any number of workers and threads.  With the same code, that is: the
store records what trained its trials (``code_identity``) and a resume by other code is
refused unless allowed (``allow_code_change``).
"""
import collections
import contextlib
import errno
import functools
import hashlib
import math
import os
import socket
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .. import _validate
from . import data as sweep_data
from . import executors, pruners, samplers, trial
from .executors import SweepInterrupted
from .space import Choice, Space, without_defaults
from .store import SpecMismatchError, SweepStore, SweepStoreError, TrialResult
from .trial import BACKENDS, Unit

FORMAT = "fastnet-sweep-spec/1"
SAMPLERS = ("random", "sobol", "grid", "coarse-to-fine")
MAX_SUBMISSIONS = 3  # a chunk whose worker dies this often has its trials recorded as failed
# Group commit: ended trials are recorded together, at least every FLUSH_SECONDS
FLUSH_RESULTS = 256
FLUSH_SECONDS = 0.25


@functools.cache
def code_identity():
    """What, besides a sweep's spec, decides the bits of its trials, as a JSON-able dict:
    fastnet's version and a digest of every source file of its package (an editable
    install changes without a new version), NumPy's and Numba's versions, what the
    compiled GEMMs call (``fastnet.kernels.blas.BACKEND``), and NumPy's BLAS: its
    version and the kernels it runs on this CPU (OpenBLAS's ``architecture``, which
    ``OPENBLAS_CORETYPE`` sets), since those round differently.  Where threadpoolctl
    does not show which loaded BLAS is NumPy's (one outside ``numpy/`` and
    ``numpy.libs/``), the name and version NumPy was built with, without the kernels.
    This process's: the workers of a Dask cluster on other machines are not checked."""
    import numba
    import threadpoolctl

    from .. import __version__
    from ..kernels import blas as gemm

    package = Path(__file__).resolve().parents[1]
    digest = hashlib.sha1()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    numpy_dirs = (os.path.dirname(np.__file__), os.path.dirname(np.__file__) + ".libs")
    blas = [f"{info['internal_api']} {info['version']} {info.get('architecture') or ''}".strip()
            for info in threadpoolctl.threadpool_info()
            if info["user_api"] == "blas"
            and os.path.dirname(info["filepath"]).startswith(numpy_dirs)]
    if not blas:
        built = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = [f"{built.get('name')} {built.get('version')} (kernels unknown)"]
    return {"fastnet": __version__, "sources": digest.hexdigest()[:12],
            "numpy": np.__version__, "numba": numba.__version__, "gemm": gemm.BACKEND,
            "blas": blas[0]}


def make_sampler(name, space, seed, trials, rounds=3, top_k=None):
    """The sampler called ``name`` for ``trials`` trials (see ``SAMPLERS``): the grid
    takes ``round(trials ** (1 / dimensions))`` points per range (at least 2), and more
    where the grid then holds fewer than ``trials`` points, until it holds them or
    every value it can (``run`` warns of a grid it runs in part, and refuses more
    trials than the grid holds); coarse-to-fine splits the trials into ``rounds``
    rounds, as evenly as they go (a later round takes one more where they do not), and
    refines around the best ``top_k`` (default a tenth of a round, at least 3)."""
    if name == "random":
        return samplers.RandomSampler(space, seed)
    if name == "sobol":
        return samplers.SobolSampler(space, seed)
    if name == "grid":
        # round(trials ** (1 / d)) points per range, as sweeps begun before recorded it
        # (their resumes need the same grid); where that is too few, more, until the
        # grid holds the trials or every value it can (a choice's options, an integer
        # range's ints; a rounded log-int range may stall for a few steps and grow
        # again), or at most 4 per trial
        d = max(len(space.dimensions), 1)
        points = max(2, round(trials ** (1 / d)))
        grid = samplers.GridSampler(space, points)
        most = math.prod(_values_at_most(space.params[name]) for name in space.dimensions)
        while len(grid) < min(trials, most) and points < 4 * trials:
            points += 1
            grid = samplers.GridSampler(space, points)
        return grid
    if name == "coarse-to-fine":
        rounds = _validate.positive_int(rounds, "rounds", none=False)
        return samplers.CoarseToFineSampler(space, seed, rounds, trials=trials,
                                            top_k=top_k or max(3, trials // rounds // 10))
    raise ValueError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")


def _older_coarse_to_fine(db, sampler, space):
    """``sampler``, or the coarse-to-fine sampler of the sweep in ``db`` where an older
    fastnet began it with rounds of ``round_size`` trials (``CoarseToFineSampler``'s
    only form then) and ``sampler`` splits its trials into the same rounds: so that
    the same command resumes the sweep.  Where the rounds differ (the older split cut
    the last round short), ``SpecMismatchError`` says how to resume it."""
    if (db is None or not Path(db).is_file() or sampler.kind != "coarse_to_fine"
            or "trials" not in sampler.settings):
        return sampler
    try:
        with SweepStore.open(db, readonly=True) as stored:
            older = stored.spec.get("sampler")
    except (SweepStoreError, OSError):  # refused later, by name
        return sampler
    if not (isinstance(older, dict) and older.get("type") == "coarse_to_fine"
            and "round_size" in older):
        return sampler
    settings = {key: value for key, value in sampler.to_json().items() if key != "trials"}
    if {key: value for key, value in older.items() if key != "round_size"} != settings:
        return sampler  # another seed, top_k...: the spec check names it
    if older["round_size"] * older["rounds"] == sampler.settings["trials"]:
        return samplers.sampler_from_json(older, space)
    raise SpecMismatchError(
        f"{db}: an older fastnet began this sweep with coarse-to-fine rounds of "
        f"{older['round_size']} trials each, which this one makes of "
        f"{sampler.settings['trials']} trials only where they divide evenly: resume it "
        f"from Python with sampler=CoarseToFineSampler(space, seed, "
        f"{older.get('rounds')}, round_size={older['round_size']}, "
        f"top_k={older.get('top_k')})")


def _stored_spelling(db, spec, n_train=None):
    """``spec`` with the spelling of the sweep in ``db`` wherever the two spell the same
    sweep, so that the same command resumes it however either spelled it: a space that
    differs only in constants given at their defaults (``--param batch_size=100`` or
    not), and with ``n_train`` (the training images) a ``train_eval`` that evaluates
    every one of them (None, or a count of them or more)."""
    if db is None or not Path(db).is_file():
        return spec
    try:
        with SweepStore.open(db, readonly=True) as stored:
            older = stored.spec
    except (SweepStoreError, OSError):  # refused later, by name
        return spec
    spec = dict(spec)
    if isinstance(older.get("space"), dict) and (
            without_defaults(older["space"]) == without_defaults(spec["space"])):
        spec["space"] = older["space"]
    data, older_data = spec.get("data"), older.get("data")
    if (n_train is not None and isinstance(data, dict) and isinstance(older_data, dict)
            and all("train_eval" in d and _every_image(d["train_eval"], n_train)
                    for d in (data, older_data))):
        spec["data"] = {**data, "train_eval": older_data["train_eval"]}
    return spec


def _every_image(train_eval, n_train):
    """Whether a data spec's ``train_eval`` evaluates all ``n_train`` training images."""
    return train_eval is None or (isinstance(train_eval, int) and not isinstance(
        train_eval, bool) and train_eval >= n_train)


def _values_at_most(distribution):
    """How many distinct values a grid of ``distribution`` can hold (inf for a
    continuous range)."""
    if isinstance(distribution, Choice):
        return len(distribution.options)
    if distribution.integer:
        return int(distribution.high - distribution.low) + 1
    return math.inf


def _executor(kind, source, options, workers, threads, client, scheduler, trials):
    if kind == "dask":
        return executors.DaskExecutor(source, *options, client, scheduler, threads or 1)
    # no more processes than trials: a worker without one would only start and stop
    workers = min(workers or executors.default_workers(), trials)
    cores = executors.default_workers()
    if workers * (threads or 1) > cores:
        warnings.warn(f"{workers} workers x {threads or 1} threads oversubscribe this "
                      f"machine's {cores} cores: each step then waits for the others",
                      stacklevel=3)
    if workers == 1:
        return executors.InProcessExecutor(source, *options, threads)
    return executors.LocalExecutor(source, *options, workers, threads or 1)


def run(space, trials, data, *, sampler="random", pruner=None, db=None, seed=0,
        executor=None, workers=None, threads_per_worker=None, client=None,
        scheduler=None, chunk_size=None, bracket_size=100, dtype=np.float32,
        backend="fastnet", progress=True, allow_code_change=False, return_results=True):
    """Run (or resume) a sweep of ``trials`` trials; return its ``TrialResult`` list,
    ordered by index (``return_results=False``: None, the results only in ``db``,
    where ``SweepStore`` reads them a part at a time; for sweeps of millions of trials).

    ``space``: a ``Space`` or a dict of parameter -> distribution or constant.
    ``data``: a data spec (``fastnet.sweep.data.data_spec``) or ``((x_train, t_train),
    (x_val, t_val))``.  ``sampler``: a name in ``SAMPLERS`` or a sampler.  ``pruner``:
    None, 'halving', 'median' or a pruner (``fastnet.sweep.pruners``).  ``db``: the
    SQLite file (created, or resumed when it holds the same sweep; None: a temporary
    one).  ``executor``: 'local' (``workers`` processes, default one per core, at most
    one per trial, of ``threads_per_worker`` Numba threads, default 1; one worker trains
    in this process, on every core by default; a trial's BLAS is single-threaded, see
    ``fastnet.sweep.trial``) or 'dask' (``client=`` or ``scheduler=`` address, without
    either a local cluster); None (the default): 'dask' where ``client`` or
    ``scheduler`` is given, else 'local'.  ``bracket_size``: the trials
    pruned together.  ``backend``: 'fastnet' or 'reference' (the NumPy oracle, for
    comparisons).  ``progress``: a tqdm bar on stderr (None: only on a terminal).
    ``allow_code_change``: resume a sweep that other code began (``code_identity``
    differs from the one the store records), though its new trials may not give the
    bits an uninterrupted run gives.  The coordinator holds the trials in flight, not
    the recorded ones: its memory does not grow with ``trials`` (but for a
    coarse-to-fine round's history: the configurations and scores of the rounds
    before it).

    The data is loaded and checked, and the executor started, before the store is
    opened; then the store is locked (``<db>.lock``) for the run.  Raises ``ValueError``
    for a bad specification or data, ``SweepStoreError`` for a ``db`` that is not a
    sweep, holds another one, was begun by other code (``CodeChangedError``) or is in
    use by another run; none of them writes anything.
    ``SweepInterrupted`` when workers keep dying (what ended before is kept; run again
    to resume), ``WorkersDidNotStart`` (a ``SweepInterrupted``) when the local workers
    cannot start, with why.

    With ``workers`` > 1 the local executor spawns processes, which import the main
    module again: a script must call ``run`` under ``if __name__ == "__main__":``.  A
    spawned process that calls ``run`` while it imports the main module exits at once,
    and the sweep it belongs to raises ``WorkersDidNotStart`` saying so.
    """
    executors.exit_if_importing_main()
    space = space if isinstance(space, Space) else Space(space)
    for message in space.ignored():  # once per run, before anything trains
        warnings.warn(message, UserWarning, stacklevel=2)
    trials = _validate.positive_int(trials, "trials", none=False)
    bracket_size = _validate.positive_int(bracket_size, "bracket_size", none=False)
    chunk_size = _validate.positive_int(chunk_size, "chunk_size")
    if not return_results and db is None:
        raise ValueError("return_results=False keeps the results only in db: give db")
    sampler = sampler if hasattr(sampler, "sample") else make_sampler(sampler, space, seed, trials)
    sampler = _older_coarse_to_fine(db, sampler, space)
    if hasattr(sampler, "__len__") and len(sampler) < trials:
        raise ValueError(f"the {sampler.kind} sampler has {len(sampler)} points, fewer than "
                         f"the {trials} trials asked")
    if hasattr(sampler, "__len__") and len(sampler) > trials:
        warnings.warn(f"the {sampler.kind} sampler runs {trials} of its {len(sampler)} "
                      f"points (its first, in order): --trials {len(sampler)} for all of "
                      f"them", UserWarning, stacklevel=2)
    pruner = pruners.make_pruner(pruner)
    idle = _idle_pruner(space, pruner, bracket_size)
    if idle:
        warnings.warn(idle, UserWarning, stacklevel=2)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if executor is None:
        executor = "local" if client is None and scheduler is None else "dask"
    if executor not in ("local", "dask"):
        raise ValueError(f"unknown executor {executor!r}; choose 'local' or 'dask'")
    if executor == "local" and (client is not None or scheduler is not None):
        given = "a client" if client is not None else f"scheduler={scheduler!r}"
        raise ValueError(f"{given} needs executor='dask' (executor='local' runs on this "
                         f"machine)")
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}")
    for name, value in (("workers", workers), ("threads_per_worker", threads_per_worker)):
        _validate.positive_int(value, name)
    if executor == "local" and threads_per_worker is not None:
        import numba  # the local workers' Numba, whose thread pool is this size

        if threads_per_worker > numba.config.NUMBA_NUM_THREADS:
            raise ValueError(f"threads_per_worker must be at most "
                             f"{numba.config.NUMBA_NUM_THREADS} (NUMBA_NUM_THREADS, Numba's "
                             f"threads on this machine), got {threads_per_worker}")
    if db is not None and not Path(db).absolute().parent.is_dir():
        raise FileNotFoundError(errno.ENOENT, "no such folder for the sweep file",
                                str(Path(db).absolute().parent))
    spec = {"format": FORMAT, "space": space.to_json(), "sampler": sampler.to_json(),
            "trials": int(trials), "seed": int(seed),
            "pruner": pruner.to_json() if pruner else None, "bracket_size": int(bracket_size),
            "data": None, "dtype": dtype.name, "backend": backend}
    spec = _stored_spelling(db, spec)
    code = code_identity()
    checked = None if allow_code_change else code
    if db is not None and Path(db).exists():  # another sweep's file: refused before loading
        with SweepStore.open(db, readonly=True) as stored:
            SweepStore.open(db, {**spec, "data": stored.spec.get("data")}, readonly=True,
                            code=checked).close()
    loaded = sweep_data.load(data, dtype)  # checked here, before any file is written
    _check_steps(space, pruner, len(loaded.x_train))
    spec["data"] = sweep_data.describe(data, loaded)
    spec = _stored_spelling(db, spec, len(loaded.x_train))
    with contextlib.ExitStack() as stack:
        if db is None:
            db = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "sweep.db"
        source = data if isinstance(data, dict) else loaded
        pool = _executor(executor, source, (dtype, backend), workers, threads_per_worker,
                         client, scheduler, trials)
        # interrupted (Ctrl-C, a kill, an error): the workers stop at once
        stack.push(lambda kind, *_: pool.close(abort=kind is not None))
        if Path(db).exists():  # refuse another sweep's file before making its lock
            SweepStore.open(db, spec, readonly=True, code=checked).close()
        stack.enter_context(_only_run(db))
        store = SweepStore.create_or_open(db, spec, code, allow_code_change)
        stack.callback(store.close)
        coordinator = _Coordinator(store, sampler, pruner, int(trials), int(bracket_size),
                                   chunk_size, progress)
        if coordinator.unfinished():
            coordinator.run(pool)
        return store.results(end=trials) if return_results else None


def _longest(space):
    """The most epochs a trial of ``space`` trains."""
    epochs = space.values("epochs")
    return max(epochs) if epochs is not None else space.params["epochs"].high


def _idle_pruner(space, pruner, bracket_size):
    """Why ``pruner`` would prune no trial of this sweep, or None."""
    if pruner is None:
        return None
    if bracket_size == 1:
        return ("bracket_size 1: a pruner compares each trial with no other, so it prunes "
                "nothing")
    if not pruner.rungs(_longest(space)):
        return (f"the pruner has no rung before the longest trial's last epoch "
                f"({_longest(space):g}), so it prunes nothing")
    return None


def _check_steps(space, pruner, n_train):
    """ValueError where no trial of the space would record anything on ``n_train``
    images: the most epochs it takes (at the smallest batch) end before the first step,
    or the pruner's first rung, which every trial trained past it reaches, comes before
    it.  (Where only some of the epochs or batch sizes it takes do, those trials fail,
    saying why: ``trial``.)"""
    batches = space.values("mini_batch_size")
    if batches is None:
        return
    per_epoch = max(trial.steps_per_epoch(n_train, batch) for batch in batches)
    longest = _longest(space)
    ends = [(longest, f"a trial of {longest:g} epochs ends before its first step")]
    if pruner and (rungs := pruner.rungs(longest)):
        first = f"the pruner's first rung, at {rungs[0]:g} epochs, comes before the first step"
        ends.append((rungs[0], first))
    for end, what in ends:
        if trial.epoch_step(end, per_epoch) < 1:
            raise ValueError(f"{what}: {n_train} training images in mini-batches of "
                             f"{min(batches)} make {per_epoch} steps an epoch; train for "
                             f"at least {1 / per_epoch:.3g} epochs (--epochs, or the pruner's "
                             f"rungs: --min-epochs)")


@contextlib.contextmanager
def _only_run(db):
    """Hold ``<db>.lock`` for the run: a second run of the sweep would train it again."""
    import filelock

    with open(f"{db}.lock", "a"):  # an unwritable folder's OSError, which filelock
        pass  # would report as a lock held by another run
    lock = filelock.FileLock(f"{db}.lock")
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise SweepStoreError(f"{db}: in use by another run of this sweep (its lock "
                              f"{db}.lock is held); wait for it to end") from None
    try:
        yield
    finally:
        lock.release()


class _Live:
    """The coordinator's view of one unfinished trial."""

    def __init__(self, index, round_, config, seed, stops):
        self.index, self.round, self.config, self.seed = index, round_, config, seed
        self.stops = stops  # the epochs it trains to, one unit each: its rungs, then its end
        self.stage = 0
        self.curves = {"epochs": [], "train_loss": [], "train_acc": [], "val_loss": [],
                       "val_acc": []}
        self.wall_time = 0.0
        self.host = None
        self.checkpoint = None

    def add(self, outcome):
        for key, values in self.curves.items():
            values.extend(getattr(outcome, key))
        self.wall_time += outcome.wall_time
        self.host = outcome.host
        self.checkpoint = outcome.checkpoint

    def result(self, status, error=None):
        c = self.curves
        done = status in ("done", "pruned") and c["val_acc"]
        return TrialResult(
            index=self.index, round=self.round, config=self.config, seed=self.seed,
            status=status, epochs=c["epochs"], train_loss=c["train_loss"],
            train_acc=c["train_acc"], val_loss=c["val_loss"], val_acc=c["val_acc"],
            val_acc_final=c["val_acc"][-1] if done else None,
            val_loss_final=c["val_loss"][-1] if done else None,
            wall_time=self.wall_time, host=self.host or "", attempts=0, error=error)


class _Bracket:
    """Up to ``bracket_size`` consecutive trials of a round, pruned together at
    ``rungs``: ``waiting`` are the live trials training to rung number ``stage``,
    ``scores`` those of them that reached it, ``known`` the recorded results of its
    members (index -> ``TrialResult``: before this run, and as they end)."""

    def __init__(self, members, rungs, waiting, known):
        self.members, self.rungs, self.waiting, self.known = members, rungs, waiting, known
        self.stage, self.scores = 0, {}

    def complete(self):
        return bool(self.waiting) and self.waiting <= self.scores.keys()


class _Coordinator:
    def __init__(self, store, sampler, pruner, trials, bracket_size, chunk_size, progress):
        self.store, self.sampler, self.pruner = store, sampler, pruner
        self.trials, self.bracket_size, self.chunk_size = trials, bracket_size, chunk_size
        self.progress = progress
        # Only counts are kept of the recorded trials: each bracket reads its own as it
        # is sampled, so that a sweep of millions of trials is not held in memory
        self.recorded = sum(n for status, n in store.count(end=trials).items()
                            if status != "running")
        self.best = None  # the best score recorded, for the progress bar

    def unfinished(self):
        return self.recorded < self.trials

    def run(self, pool):
        from tqdm import tqdm

        self.pool = pool
        self.bar = tqdm(total=self.trials, initial=self.recorded, unit="trial",
                        disable=None if self.progress is None else not self.progress,
                        dynamic_ncols=True)
        self._show_best(self.store.top(1, end=self.trials))
        self.unsaved, self.saved_at = [], time.monotonic()
        self.in_flight = {}  # future -> (chunk, submissions)
        try:
            round_, start = 0, 0
            while start < self.trials:
                end = min(self._round_end(round_), self.trials)
                self._run_round(round_, start, end)
                self._flush()  # the next round's sampler reads these results
                round_, start = round_ + 1, end
        except BaseException:
            with contextlib.suppress(Exception):  # never hiding the interruption itself
                self._harvest()
            raise
        finally:
            self._flush()  # what ended before an interruption is kept
            self.bar.close()

    def _harvest(self):
        """On an interruption: take in the chunks that ended meanwhile, and cancel the
        others (a Dask cluster's tasks would run on)."""
        for future, _ in list(self.in_flight.items()):
            if future.done() and not future.cancelled() and future.exception() is None:
                self._absorb(future.result())
            else:
                future.cancel()

    def _round_end(self, round_):
        if round_ >= self.sampler.round_of(self.trials - 1):
            return self.trials
        return self.sampler.round_start(round_ + 1)

    def _run_round(self, round_, start, end):
        # Trials are sampled a bracket at a time, as the queue needs them: a round of
        # millions of trials begins at once and holds only the trials near the front
        self.history = self.store.history(end=start) if start else []
        self.round, self.round_end = round_, end
        self.next_bracket = iter(range(start, end, self.bracket_size))
        self.queue = collections.deque()
        self.by_index, self.brackets = {}, {}
        in_flight = self.in_flight = {}
        while self._refill() or in_flight:
            starting = []
            while len(in_flight) < self.pool.chunks_in_flight and self._refill():
                chunk = self._take_chunk()
                # a trial's first unit of this run; its later units (past a rung)
                # continue an attempt that is already marked running
                starting += [t.index for t in chunk if t.stage == 0]
                in_flight[self._submit(chunk)] = (chunk, 1)
            if starting:
                self.store.mark_running(starting, socket.gethostname())
            for future in self.pool.wait(in_flight):
                chunk, submissions = in_flight.pop(future)
                try:
                    outcomes = future.result()
                except Exception as err:  # a worker died: the chunk goes again, or we stop
                    if submissions >= MAX_SUBMISSIONS:  # not the trials' fault: stop, keep
                        raise SweepInterrupted(
                            f"the workers died {submissions} times on trials "
                            f"{[t.index for t in chunk]} ({err!r}); what ended is recorded, "
                            f"run the sweep again to resume") from err
                    self.store.mark_running([t.index for t in chunk], socket.gethostname())
                    in_flight[self._submit(chunk)] = (chunk, submissions + 1)
                    continue
                self._absorb(outcomes)

    def _refill(self):
        """Sample the round's next brackets into the queue until it holds enough for
        full chunks on every worker (or the round's every trial); whether it holds any."""
        ahead = max(self.bracket_size, 2 * self.pool.chunks_in_flight * (
            self.chunk_size or self.pool.max_chunk))
        while len(self.queue) < ahead and (first := next(self.next_bracket, None)) is not None:
            members = range(first, min(first + self.bracket_size, self.round_end))
            known = {r.index: r for r in self.store.results(start=first, end=members.stop)}
            mine = []
            for i in members:
                if i not in known:
                    config = self.sampler.sample(i, self.history)
                    rungs = self.pruner.rungs(config["epochs"]) if self.pruner else []
                    mine.append(_Live(i, self.round, config,
                                      samplers.trial_seed(self.spec_seed, i),
                                      [*rungs, config["epochs"]]))
            epochs = [t.config["epochs"] for t in mine]
            epochs += [r.config["epochs"] for r in known.values()]
            bracket = _Bracket(members, self.pruner.rungs(max(epochs)) if self.pruner else [],
                               {t.index for t in mine if len(t.stops) > 1}, known)
            self.queue.extend(mine)
            self.by_index.update({t.index: t for t in mine})
            self.brackets.update({t.index: bracket for t in mine})
        return bool(self.queue)

    @property
    def spec_seed(self):
        return self.store.spec["seed"]

    def _take_chunk(self):
        size = self.chunk_size or max(1, min(self.pool.max_chunk, math.ceil(
            len(self.queue) / (2 * self.pool.chunks_in_flight))))
        return [self.queue.popleft() for _ in range(min(size, len(self.queue)))]

    def _submit(self, chunk):
        units = [Unit(t.index, t.config, t.seed, t.stops[t.stage], _eval_epochs(t.stops),
                      t.checkpoint) for t in chunk]
        return self.pool.submit(units)

    def _absorb(self, outcomes):
        results = []
        for outcome in outcomes:
            t = self.by_index[outcome.index]
            t.add(outcome)
            bracket = self.brackets[t.index]
            if outcome.status == "running":
                bracket.scores[t.index] = t.curves["val_acc"][-1]
            else:
                results.append(t.result(outcome.status, outcome.error))
                bracket.waiting.discard(t.index)
            if bracket.complete():
                results += self._cut(bracket)
        self._record(results)

    def _cut(self, bracket):
        """Prune at ``bracket``'s current rung; queue the survivors' next units."""
        rung = bracket.rungs[bracket.stage]
        entries = [(i, bracket.scores[i]) for i in bracket.waiting]
        # Recorded trials that train past this rung count with their score there (a
        # resumed sweep's trials; the pruned and diverged of this one have none)
        entries += [(i, s) for i in bracket.members if (r := bracket.known.get(i))
                    if rung < r.config["epochs"] - 1e-9
                    if (s := _score_at(r, rung)) is not None]
        keep = self.pruner.survivors(entries)
        pruned, going_on = [], []
        for i in sorted(bracket.waiting):
            t = self.by_index[i]
            if i in keep:
                t.stage += 1
                going_on.append(t)
            else:
                pruned.append(t.result("pruned"))
        bracket.stage += 1
        bracket.scores = {}
        bracket.waiting = {t.index for t in going_on if t.stage < len(t.stops) - 1}
        self.queue.extendleft(reversed(going_on))  # first: their checkpoints free memory
        return pruned

    def _record(self, results):
        for r in results:
            self.brackets.pop(r.index).known[r.index] = r
            self.by_index.pop(r.index, None)
        self.unsaved += results
        if len(self.unsaved) >= FLUSH_RESULTS or time.monotonic() - self.saved_at > FLUSH_SECONDS:
            self._flush()
        if results:
            self.bar.update(len(results))
            self._show_best(results)

    def _flush(self):
        """Record the ended trials in one transaction (group commit: one fsync for many
        trials, so that the coordinator keeps up with a large cluster)."""
        if self.unsaved:
            self.store.record(self.unsaved)
        self.unsaved, self.saved_at = [], time.monotonic()

    def _show_best(self, results):
        """Show the best score so far, ``results`` taken in (not every trial recorded:
        a sweep of a million trials would read them all at each chunk)."""
        scores = [r.score for r in results if r.score is not None and not math.isnan(r.score)]
        if scores and (self.best is None or max(scores) > self.best):
            self.best = max(scores)
            self.bar.set_postfix_str(f"best val acc {self.best:.4f}", refresh=False)


def _eval_epochs(stops):
    """Every whole epoch up to the last stop, and the stops themselves."""
    return tuple(sorted({*range(1, int(stops[-1]) + 1), *stops}))


def _score_at(result, epoch):
    """``result``'s validation accuracy at ``epoch``, None where it did not get there."""
    for e, acc in zip(result.epochs, result.val_acc):
        if abs(e - epoch) < 1e-9:
            return acc
    return None
