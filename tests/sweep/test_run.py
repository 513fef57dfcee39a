"""Whole sweeps through ``fastnet.sweep.run``: the same table on any number of workers
and threads, with and without pruning, for every sampler; on a Dask cluster, a worker
of which is killed mid-chunk; diverged trials; resuming after a crash inside."""
import importlib
import json
import os
import re
import sqlite3
import threading
import time
import warnings
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest
from conftest import learnable, local_cluster, table

from fastnet import sweep
from fastnet.sweep import executors, trial

run_module = importlib.import_module("fastnet.sweep.run")  # fastnet.sweep.run is run()

SPACE = {"lr": sweep.log_uniform(1e-2, 1.0), "momentum": sweep.one_minus_log_uniform(0.5, 0.99),
         "optimizer": "Momentum", "hidden_size_list": [20, 20], "mini_batch_size": 40,
         "epochs": 3}
TRIALS = 9  # the grid: 3 points per dimension
PRUNERS = {"none": None, "halving": sweep.SuccessiveHalving(1, 3),
           "median": sweep.MedianPruner(n_startup_trials=2)}


@pytest.fixture(scope="module")
def data():
    return learnable()


@pytest.fixture(scope="module")
def shared_pools():
    """Local executors made by ``run`` itself, kept open across the sweeps of this
    module: spawning two workers costs seconds, the pool's workers are the same for
    every sweep on the same data."""
    made = {}

    def executor(kind, source, options, workers, threads, client, scheduler, trials):
        key = (kind, workers, threads, options)
        if workers == 1:  # trains in this process: nothing to keep
            return real(kind, source, options, workers, threads, client, scheduler, trials)
        if key not in made:
            made[key] = real(kind, source, options, workers, threads, client, scheduler,
                             trials)
            made[key].close, made[key].really_close = (lambda abort=False: None), made[key].close
        return made[key]

    real = run_module._executor
    yield executor
    for pool in made.values():
        pool.really_close()


@pytest.mark.parametrize("pruner", PRUNERS)
@pytest.mark.parametrize("sampler", ["random", "sobol", "grid", "coarse-to-fine"])
def test_one_or_two_workers_of_one_or_two_threads_record_the_same_table(
        sampler, pruner, data, shared_pools, monkeypatch):
    monkeypatch.setattr(run_module, "_executor", shared_pools)
    tables = {}
    for workers in (1, 2):
        for threads in (1, 2):
            results = sweep.run(SPACE, TRIALS, data, sampler=sampler, pruner=PRUNERS[pruner],
                                seed=5, workers=workers, threads_per_worker=threads,
                                bracket_size=6, progress=False)
            tables[workers, threads] = table(results)
    first = tables[1, 1]
    assert [r["index"] for r in first] == list(range(TRIALS))
    assert {r["status"] for r in first} <= {"done", "pruned"}
    if pruner != "none":
        assert any(r["status"] == "pruned" for r in first)
    assert any(r["val_acc_final"] > 0.5 for r in first)  # the nets learn
    for key, other in tables.items():
        assert other == first, f"{key[0]} workers x {key[1]} threads"


def test_a_diverging_trial_is_recorded_with_its_configuration_and_the_sweep_goes_on(data):
    space = {**SPACE, "lr": sweep.choice([0.1, 1e6])}
    results = sweep.run(space, 8, data, seed=1, workers=1, progress=False)
    diverged = [r for r in results if r.status == "diverged"]
    done = [r for r in results if r.status == "done"]
    assert len(diverged) + len(done) == 8 and diverged and done
    assert all(r.config["lr"] == 1e6 and r.config["optimizer"] == "Momentum"
               and r.seed is not None and r.score is None for r in diverged)
    assert all(r.config["lr"] == 0.1 and len(r.epochs) == 3 for r in done)


def crash_after(submissions, monkeypatch):
    """Make the in-process executor raise "crash inside the sweep" after ``submissions``
    chunks; return its real ``submit``."""
    real_submit, calls = executors.InProcessExecutor.submit, []

    def crashing_submit(self, units):
        calls.append(units)
        if len(calls) > submissions:
            raise RuntimeError("crash inside the sweep")
        return real_submit(self, units)

    monkeypatch.setattr(executors.InProcessExecutor, "submit", crashing_submit)
    return real_submit


def test_an_exception_inside_then_running_again_gives_the_uninterrupted_table(
        data, tmp_path, monkeypatch):
    kwargs = dict(sampler="random", pruner="halving", seed=2, workers=1, chunk_size=2,
                  bracket_size=4, progress=False)
    whole = table(sweep.run(SPACE, 10, data, **kwargs))

    trained = []
    real_train = trial.train_unit
    monkeypatch.setattr(trial, "train_unit", lambda unit, *a: trained.append(unit.index)
                        or real_train(unit, *a))
    real_submit = crash_after(4, monkeypatch)
    db = tmp_path / "s.db"
    with pytest.raises(RuntimeError, match="crash inside"):
        sweep.run(SPACE, 10, data, db=db, **kwargs)
    with sweep.SweepStore.open(db) as store:
        before = store.results()
    assert 0 < len(before) < 10
    monkeypatch.setattr(executors.InProcessExecutor, "submit", real_submit)
    trained.clear()
    again = sweep.run(SPACE, 10, data, db=db, **kwargs)
    assert table(again) == whole
    assert not {r.index for r in before} & set(trained)  # recorded trials not retrained
    assert table(before) == [table(again)[r.index] for r in before]  # kept as they were
    with sweep.SweepStore.open(db) as store:
        assert store.count()["running"] == 0 and len(store.results()) == 10


@pytest.mark.slow
def test_a_dask_cluster_records_the_local_table(data, dask_client):
    kwargs = dict(sampler="sobol", pruner="halving", seed=4, bracket_size=6, progress=False)
    local = table(sweep.run(SPACE, TRIALS, data, workers=1, **kwargs))
    remote = table(sweep.run(SPACE, TRIALS, data, client=dask_client, **kwargs))
    assert remote == local


def _watch_and_kill(db, client, victim, killed):
    """Kill the worker process ``victim`` (address, pid) once the sweep in ``db`` has a
    recorded trial and ``victim`` is processing a chunk."""
    address, pid = victim
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if os.path.exists(db):
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                done = conn.execute("SELECT count(*) FROM trials WHERE status != 'running'"
                                    ).fetchone()[0]
            except sqlite3.DatabaseError:
                done = 0
            finally:
                conn.close()
            busy = client.processing().get(address, ())
            if done and busy:
                os.kill(pid, 9)
                killed.append((done, list(busy)))
                return
        time.sleep(0.05)


@pytest.fixture(params=["scheduler moves", "coordinator resubmits"])
def client_losing_a_worker(request):
    """A client of a cluster whose scheduler moves a dead worker's tasks to another
    (Dask's default), or of one that fails them at once (``allowed-failures`` 0), so
    that the coordinator must submit the chunk again."""
    import distributed

    if request.param == "scheduler moves":
        cluster, own = request.getfixturevalue("dask_cluster"), False
    else:
        cluster, own = local_cluster(**{"distributed.scheduler.allowed-failures": 0}), True
    try:
        with distributed.Client(cluster) as client:
            client.wait_for_workers(2, timeout=60)
            yield client
    finally:
        if own:
            cluster.close()


@pytest.mark.slow
def test_a_dask_worker_killed_mid_chunk_has_its_trials_run_again_and_recorded_once(
        data, client_losing_a_worker, tmp_path):
    dask_client = client_losing_a_worker
    space = {**SPACE, "epochs": 60}  # long enough to kill a worker mid-sweep
    kwargs = dict(sampler="random", seed=6, chunk_size=3, progress=False)
    undisturbed = table(sweep.run(space, 24, data, workers=1, **kwargs))
    pids = dask_client.run(os.getpid)
    victim = sorted(pids.items())[0]
    db, killed = tmp_path / "k.db", []
    killer = threading.Thread(target=_watch_and_kill, args=(str(db), dask_client, victim, killed))
    killer.start()
    try:
        results = sweep.run(space, 24, data, client=dask_client, db=db, **kwargs)
    finally:
        killer.join()
    assert killed, "the worker was not killed while the sweep ran"
    done_before, keys = killed[0]
    assert done_before < 24
    assert table(results) == undisturbed
    conn = sqlite3.connect(db)
    try:
        assert conn.execute('SELECT count(*), count(DISTINCT "index") FROM trials').fetchone() \
            == (24, 24)
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        conn.close()
    dask_client.wait_for_workers(2, timeout=60)
    assert victim[1] not in dask_client.run(os.getpid).values()  # the nanny made a new one
    # a chunk the victim was processing went to a worker again (the scheduler moved
    # it), or failed (Dask's allowed-failures spent) and the coordinator submitted it again
    story = dask_client.cluster.scheduler.story(*keys)
    assert any(sum(entry[0] == key and entry[2] == "processing" for entry in story) >= 2
               or any(entry[0] == key and entry[2] == "erred" for entry in story)
               for key in keys), story


def test_bad_data_is_refused_before_any_file_is_written(tmp_path):
    x, t = np.zeros((50, 784), np.float32), np.zeros(50, np.int64)
    db = tmp_path / "none.db"
    with pytest.raises(ValueError, match="the training images must be a non-empty array"):
        sweep.run(SPACE, 2, ((x[:0], t[:0]), (x, t)), db=db, workers=1, progress=False)
    assert not db.exists()


@pytest.mark.parametrize(("source", "error", "message"), [
    (None, TypeError, "data must be a data spec .* got NoneType"),
    (((np.zeros((3, 4)), np.zeros(3)),), TypeError, "data must be a data spec .* got tuple"),
    ({"datset": "mnist"}, ValueError, r"unknown data spec keys \['datset'\]"),
    ({"dataset": "mnist", "validation": 0}, ValueError, "validation must be a fraction"),
])
def test_data_that_is_not_data_is_refused_before_any_file(source, error, message, tmp_path):
    db = tmp_path / "none.db"
    with pytest.raises(error, match=message):
        sweep.run(SPACE, 2, source, db=db, workers=1, progress=False)
    assert not db.exists()


def test_a_dtype_other_than_float32_or_float64_is_refused_before_any_file(data, tmp_path):
    db = tmp_path / "none.db"
    with pytest.raises(ValueError, match="dtype must be float32 or float64, got float16"):
        sweep.run(SPACE, 2, data, db=db, workers=1, progress=False, dtype="float16")
    assert not db.exists()


@pytest.mark.parametrize(("trials", "size"), [(4, 4), (5, 9), (9, 9), (10, 16)])
def test_the_grid_grows_to_hold_the_trials_where_it_can(trials, size):
    """Two ranges: round(sqrt(trials)) points each, as before (resumes need the same
    grid), and more where that held too few (5 and 10 trials were refused); a grid of
    choices, or of an integer range's few values, cannot grow and stops growing."""
    space = sweep.Space({"lr": sweep.log_uniform(1e-3, 1), "momentum": sweep.uniform(0.5, 0.9)})
    assert len(run_module.make_sampler("grid", space, 0, trials)) == size
    choices = sweep.Space({"mini_batch_size": sweep.choice([50, 100])})
    assert len(run_module.make_sampler("grid", choices, 0, trials)) == 2
    few = sweep.Space({"mini_batch_size": sweep.int_uniform(32, 33)})
    assert len(run_module.make_sampler("grid", few, 0, trials)) == 2  # it hung here
    # rounded log-int points collide for a few steps (5 values at 6 or 7 points), then grow
    stalling = sweep.Space({"mini_batch_size": sweep.log_int(1, 6)})
    assert len(run_module.make_sampler("grid", stalling, 0, 6)) == 6
    mixed = sweep.Space({"lr": sweep.log_uniform(1e-3, 1), "epochs": sweep.choice([1, 2, 3, 4, 5])})
    assert len(run_module.make_sampler("grid", mixed, 0, 10)) == 15  # as before: 3 x 5


def test_chunks_ended_before_an_interruption_are_recorded(data, tmp_path, monkeypatch):
    """Interrupted while it waits, the coordinator takes in the chunks that had ended
    (here: three, each trained as it was submitted) before it stops; the interruption
    goes on to the caller."""
    class Interrupted(executors.InProcessExecutor):
        chunks_in_flight = 3

        def wait(self, futures):
            raise KeyboardInterrupt

    monkeypatch.setattr(run_module, "_executor", lambda kind, source, options, workers,
                        threads, client, scheduler, trials: Interrupted(source, *options,
                                                                        threads))
    db = tmp_path / "s.db"
    with pytest.raises(KeyboardInterrupt):
        sweep.run(SPACE, 6, data, db=db, chunk_size=1, progress=False)
    with sweep.SweepStore.open(db, readonly=True) as store:
        assert [(r.index, r.status) for r in store.results()] == [(i, "done") for i in range(3)]


def test_a_sweep_of_millions_of_trials_samples_only_what_its_workers_need_next(
        data, tmp_path, monkeypatch):
    """Trials are sampled a bracket at a time as the queue empties: a sweep of 10**7
    trials starts training at once (it sampled every configuration first, gigabytes of
    them, before the first step)."""
    class Interrupted(executors.InProcessExecutor):
        def wait(self, futures):  # the first chunk was trained as it was submitted
            raise KeyboardInterrupt

    sampled = []
    real_sample = sweep.RandomSampler.sample
    monkeypatch.setattr(sweep.RandomSampler, "sample", lambda self, index, history=(): (
        sampled.append(index), real_sample(self, index, history))[1])
    monkeypatch.setattr(run_module, "_executor", lambda kind, source, options, workers,
                        threads, client, scheduler, trials: Interrupted(source, *options,
                                                                        threads))
    db = tmp_path / "s.db"
    with pytest.raises(KeyboardInterrupt):
        sweep.run(SPACE, 10**7, data, db=db, bracket_size=10, chunk_size=4, progress=False)
    assert sampled == list(range(10))  # one bracket: more than the 2 chunks it wants
    with sweep.SweepStore.open(db, readonly=True) as store:
        assert [(r.index, r.status) for r in store.results()] == [(i, "done") for i in range(4)]


@pytest.mark.parametrize("name", ["trials", "bracket_size", "chunk_size", "workers",
                                  "threads_per_worker"])
@pytest.mark.parametrize("value", [True, 0, 2.5, float("nan"), float("inf"), "3"])
def test_counts_that_are_not_positive_integers_are_refused_by_name(name, value, data, tmp_path):
    kwargs = {"trials": 2, name: value}
    with pytest.raises(ValueError, match=f"^{name} must be a positive integer"):
        sweep.run(SPACE, data=data, db=tmp_path / "s.db", progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_no_more_workers_start_than_there_are_trials(data, monkeypatch):
    """Two workers for one trial: the second only started and stopped (100,000 workers
    for 3 trials spawned processes until killed)."""
    def refused(*args):
        raise AssertionError("a pool of worker processes for one trial")

    monkeypatch.setattr(executors, "LocalExecutor", refused)
    (result,) = sweep.run(SPACE, 1, data, workers=2, progress=False)
    assert result.status == "done"


def test_more_threads_than_numba_has_are_refused_before_the_data_loads(data, tmp_path):
    """fastnet.threads' "n must be between 1 and 2 (NUMBA_NUM_THREADS)" before, after
    the workers were started, and not naming the option."""
    import numba

    most = numba.config.NUMBA_NUM_THREADS
    with pytest.raises(ValueError, match=f"^threads_per_worker must be at most {most} "
                                         f"\\(NUMBA_NUM_THREADS"):
        sweep.run(SPACE, 2, data, db=tmp_path / "s.db", workers=1,
                  threads_per_worker=most + 1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_db_in_a_missing_folder_is_refused_before_the_data_loads(data, tmp_path,
                                                                   monkeypatch):
    """It failed on the lock file, after the data had loaded and the workers started."""
    monkeypatch.setattr(run_module.sweep_data, "load", None)  # not called
    with pytest.raises(FileNotFoundError, match="no such folder for the sweep file"):
        sweep.run(SPACE, 2, data, db=tmp_path / "nope" / "s.db", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_local_executor_with_a_dask_address_is_refused(data, tmp_path):
    with pytest.raises(ValueError, match=re.escape(
            "scheduler='tcp://127.0.0.1:1' needs executor='dask' (executor='local' runs on "
            "this machine)")):
        sweep.run(SPACE, 2, data, db=tmp_path / "s.db", executor="local",
                  scheduler="tcp://127.0.0.1:1", progress=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("options, message", [
    ({"pruner": sweep.SuccessiveHalving(5, 3)},
     (r"the pruner has no rung before the longest trial's last epoch \(3\), so it prunes "
      r"nothing")),
    ({"pruner": "halving", "bracket_size": 1},
     r"bracket_size 1: a pruner compares each trial with no other, so it prunes nothing"),
], ids=["first-rung-past-the-end", "brackets-of-one"])
def test_a_pruner_that_would_prune_nothing_is_warned_of(options, message, data):
    with pytest.warns(UserWarning, match=message):
        results = sweep.run(SPACE, 2, data, workers=1, progress=False, **options)
    assert [r.status for r in results] == ["done", "done"]


def test_a_grid_run_in_part_is_warned_of_and_a_grid_too_small_refused(data):
    with pytest.warns(UserWarning, match=r"the grid sampler runs 7 of its 9 points \(its "
                                         r"first, in order\): --trials 9 for all of them"):
        results = sweep.run({**SPACE, "epochs": 1}, 7, data, sampler="grid", workers=1,
                            progress=False)
    assert len(results) == 7
    with pytest.raises(ValueError, match="the grid sampler has 2 points, fewer than the 3"):
        sweep.run({**SPACE, "lr": 0.1, "momentum": sweep.choice([0.5, 0.9])}, 3, data,
                  sampler="grid", workers=1, progress=False)


def test_a_trial_trained_past_its_rungs_in_one_run_is_one_attempt(data):
    """``attempts`` counts the runs that started a trial (1 + retries), not its units."""
    results = sweep.run(SPACE, 6, data, workers=1, progress=False, bracket_size=6,
                        pruner=sweep.SuccessiveHalving(1, 3))
    assert any(r.status == "done" and r.epochs[-1] == 3 for r in results)
    assert [r.attempts for r in results] == [1] * 6


def test_trainings_shorter_than_one_step(tmp_path):
    """Constant epochs (or a pruner's first rung) before the first step are refused
    before any file; sampled epochs that fall there fail that trial alone, saying why,
    and the sweep ends (the coordinator crashed on a rung with nothing recorded)."""
    rng = np.random.default_rng(0)
    x, t = rng.random((130, 784), dtype=np.float32), rng.integers(0, 10, 130)
    data = ((x[:100], t[:100]), (x[100:], t[100:]))  # 4 steps an epoch in batches of 25
    space = {**SPACE, "mini_batch_size": 25, "epochs": 0.2}
    db = tmp_path / "none.db"
    with pytest.raises(ValueError, match="a trial of 0.2 epochs ends before its first step: "
                                         "100 training images in mini-batches of 25 make 4"):
        sweep.run(space, 2, data, db=db, workers=1, progress=False)
    with pytest.raises(ValueError, match="the pruner's first rung, at 0.1 epochs, comes"):
        sweep.run({**space, "epochs": 1}, 2, data, db=db, workers=1, progress=False,
                  pruner=sweep.SuccessiveHalving(0.1))
    assert not db.exists()
    results = sweep.run({**space, "epochs": sweep.uniform(0.1, 0.3)}, 4, data, workers=1,
                        progress=False)
    short = [r for r in results if r.config["epochs"] < 0.25]
    assert short and all(r.status == "failed" and "is less than one step" in r.error
                         for r in short)
    assert all(r.status == "done" for r in results if r.config["epochs"] >= 0.25)


@pytest.mark.parametrize("trials", [6, 5])
def test_a_coarse_to_fine_sweep_of_an_older_fastnet_resumes_where_its_rounds_agree(
        trials, data, tmp_path):
    """An older fastnet stored coarse-to-fine as rounds of ``round_size`` (ceil(trials /
    rounds), the last round cut short); the same command resumes it where that split is
    this one's, and says how to resume it where not."""
    db = tmp_path / "s.db"
    rounds, round_size = 3, -(-trials // 3)
    older = sweep.CoarseToFineSampler(sweep.Space(SPACE), 5, rounds, round_size, top_k=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the older sampler runs 5 of its 6 points
        done = sweep.run(SPACE, trials, data, db=db, sampler=older, seed=5, workers=1,
                         progress=False)
    if trials == rounds * round_size:
        again = sweep.run(SPACE, trials, data, db=db, sampler="coarse-to-fine", seed=5,
                          workers=1, progress=False)
        assert table(again) == table(done)
        return
    with pytest.raises(sweep.SpecMismatchError, match=(
            r"an older fastnet began this sweep with coarse-to-fine rounds of 2 trials "
            r"each, .* resume it from Python with sampler=CoarseToFineSampler\(space, "
            r"seed, 3, round_size=2, top_k=3\)")):
        sweep.run(SPACE, trials, data, db=db, sampler="coarse-to-fine", seed=5, workers=1,
                  progress=False)


def test_other_data_on_an_existing_sweep_is_refused(data, tmp_path):
    db = tmp_path / "s.db"
    sweep.run(SPACE, 2, data, db=db, workers=1, progress=False)
    (x, t), validation = data
    other = ((x[::-1].copy(), t[::-1].copy()), validation)
    before = db.read_bytes()
    with pytest.raises(sweep.SpecMismatchError, match=r"at key 'data\.arrays_sha256'"):
        sweep.run(SPACE, 2, other, db=db, workers=1, progress=False)
    assert db.read_bytes() == before


def test_a_sweep_begun_by_other_code_resumes_only_when_allowed(data, tmp_path, monkeypatch):
    """The store records run_module.code_identity(); another fastnet (here: other
    sources and another BLAS kernel set) is refused before anything is written, and
    resumes when allowed, keeping what was recorded."""
    db = tmp_path / "s.db"
    code = run_module.code_identity()
    assert set(code) == {"fastnet", "sources", "numpy", "numba", "gemm", "blas"}
    whole = sweep.run(SPACE, 3, data, db=db, workers=1, progress=False)
    with sqlite3.connect(db) as conn:
        conn.execute('DELETE FROM trials WHERE "index" = 2')
    with sweep.SweepStore.open(db, readonly=True) as store:
        assert store.code == code
    before = db.read_bytes()
    other = {**code, "sources": "0" * 12}
    monkeypatch.setattr(run_module, "code_identity", lambda: other)
    with pytest.raises(sweep.CodeChangedError, match=r"sources \"[0-9a-f]{12}\" -> \"0{12}\""):
        sweep.run(SPACE, 3, data, db=db, workers=1, progress=False)
    assert db.read_bytes() == before
    resumed = sweep.run(SPACE, 3, data, db=db, workers=1, progress=False,
                        allow_code_change=True)
    assert table(resumed) == table(whole)  # nothing changed but the digest
    with sweep.SweepStore.open(db, readonly=True) as store:
        assert store.code == code


def test_a_second_run_of_a_sweep_in_progress_is_refused(data, tmp_path, monkeypatch):
    db = tmp_path / "busy.db"
    started, release = threading.Event(), threading.Event()
    real = trial.train_unit

    def slow(unit, *args):
        started.set()
        release.wait(30)
        return real(unit, *args)

    monkeypatch.setattr(trial, "train_unit", slow)
    first = threading.Thread(target=sweep.run, args=(SPACE, 2, data),
                             kwargs={"db": db, "workers": 1, "progress": False})
    first.start()
    try:
        assert started.wait(30)
        with pytest.raises(sweep.SweepStoreError, match="in use by another run"):
            sweep.run(SPACE, 2, data, db=db, workers=1, progress=False)
    finally:
        release.set()
        first.join()
    assert len(sweep.SweepStore.open(db, readonly=True).results()) == 2


def test_workers_that_keep_dying_stop_the_sweep_without_failing_its_trials(
        data, tmp_path, monkeypatch):
    class Dying(executors.InProcessExecutor):
        def submit(self, units):
            raise_in = executors.cf.Future()
            raise_in.set_exception(BrokenProcessPool("a worker died"))
            return raise_in

    monkeypatch.setattr(executors, "InProcessExecutor", Dying)
    db = tmp_path / "dying.db"
    with pytest.raises(run_module.SweepInterrupted, match="the workers died 3 times"):
        sweep.run(SPACE, 2, data, db=db, workers=1, progress=False)
    store = sweep.SweepStore.open(db, readonly=True)
    assert store.results() == [] and store.count()["failed"] == 0


def test_a_parameter_no_trial_reads_is_warned_of_before_anything_runs(data):
    with pytest.warns(UserWarning, match="^momentum is given but no trial reads it: only "
                      "optimizer 'Momentum' or 'Nesterov' does, and this space's optimizer is "
                      "'Adam'$"), pytest.raises(ValueError, match="trials must be"):
        sweep.run({"optimizer": "adam", "momentum": 0.95}, 0, data)


# The parameters, and so the configurations, of the sweeps made before normalizations,
# AdamW and learning-rate schedules were searchable; lr was None where not searched.
BEFORE = ("hidden_size_list", "hidden_size", "hidden_layers", "activation", "weight_init_std",
          "use_batchnorm", "use_dropout", "dropout_ratio", "weight_decay_lambda", "optimizer",
          "lr", "momentum", "beta1", "beta2", "decay_rate", "mini_batch_size", "epochs")


def test_a_sweep_file_made_before_the_newer_parameters_resumes(data, tmp_path):
    """A file whose trials 0-2 were recorded in the old form (no newer keys, lr None)
    and whose other trials did not run: the same sweep resumes it, keeps those three
    as they are and records the others as a sweep of today does."""
    space = {**SPACE, "optimizer": sweep.choice(["Momentum", "Adam"])}
    del space["lr"]
    whole = sweep.run(space, 6, data, db=tmp_path / "whole.db", workers=1, progress=False)
    old = tmp_path / "old.db"
    old.write_bytes((tmp_path / "whole.db").read_bytes())
    with sqlite3.connect(old) as conn:
        conn.execute('DELETE FROM trials WHERE "index" >= 3')
        for index, config in conn.execute('SELECT "index", config FROM trials').fetchall():
            config = {k: v for k, v in json.loads(config).items() if k in BEFORE} | {"lr": None}
            conn.execute('UPDATE trials SET config = ? WHERE "index" = ?',
                         (json.dumps(config, sort_keys=True), index))
    with sweep.SweepStore.open(old, readonly=True) as store:
        aged = table(store.results())
    resumed = sweep.run(space, 6, data, db=old, workers=1, progress=False)
    assert table(resumed)[:3] == aged and table(resumed)[3:] == table(whole)[3:]
    assert [r.config["lr"] for r in whole] == [
        {"Momentum": 0.01, "Adam": 0.001}[r.config["optimizer"]] for r in whole]
    for a, b in zip(aged, table(whole)[:3]):  # the old trials trained as today's do
        assert {k: v for k, v in a.items() if k != "config"} == {
            k: v for k, v in b.items() if k != "config"}


class ListedSampler(sweep.Sampler):
    """docs/sweeps.md's sampler protocol: trial i is the i-th of a list of values."""

    kind = "listed"

    def __init__(self, space, lrs):
        super().__init__(space, lrs=list(lrs))

    def __len__(self):
        return len(self.settings["lrs"])

    def sample(self, index, history=()):
        return self.space.complete({**self.space.constants, "lr": self.settings["lrs"][index]})


def test_a_sampler_written_to_the_documented_protocol_runs_and_resumes(data, tmp_path):
    space = sweep.Space({**SPACE, "lr": sweep.log_uniform(1e-3, 1.0)})
    sampler = ListedSampler(space, [0.5, 0.05, 0.005])
    with pytest.raises(ValueError, match="the listed sampler has 3 points, fewer than the 4"):
        sweep.run(space, 4, data, sampler=sampler, workers=1, progress=False)
    db = tmp_path / "listed.db"
    results = sweep.run(space, 3, data, sampler=sampler, db=db, workers=1, progress=False)
    assert [r.config["lr"] for r in results] == [0.5, 0.05, 0.005]
    assert table(sweep.run(space, 3, data, sampler=sampler, db=db, progress=False)) == table(
        results)


def test_a_resumed_sweep_reads_its_recorded_trials_a_bracket_at_a_time(
        data, tmp_path, monkeypatch):
    """The coordinator keeps counts of the recorded trials, and reads each bracket's
    own as it samples it: it read every recorded trial, curves included, when it began
    and held each new one to the end (a sweep of millions of trials held them all)."""
    kwargs = {"sampler": "coarse-to-fine", "pruner": "halving", "seed": 2, "workers": 1,
              "chunk_size": 2, "bracket_size": 3, "progress": False}
    db = tmp_path / "s.db"
    real_submit = crash_after(6, monkeypatch)
    with pytest.raises(RuntimeError, match="crash inside"):
        sweep.run(SPACE, 12, data, db=db, **kwargs)
    monkeypatch.setattr(executors.InProcessExecutor, "submit", real_submit)
    read = []
    real_results = sweep.SweepStore.results
    monkeypatch.setattr(sweep.SweepStore, "results", lambda self, *a, **k: (
        read.append(got := real_results(self, *a, **k)), got)[1])
    assert sweep.run(SPACE, 12, data, db=db, return_results=False, **kwargs) is None
    assert read and max(len(got) for got in read) <= 3  # a bracket's, never all of them
    assert sum(len(got) for got in read) >= 3  # what the crashed run recorded was read
    whole = table(sweep.run(SPACE, 12, data, **kwargs))
    with sweep.SweepStore.open(db) as store:
        assert table(real_results(store)) == whole
    with pytest.raises(ValueError, match="return_results=False keeps the results only in "
                                         "db: give db"):
        sweep.run(SPACE, 12, data, return_results=False, **kwargs)
