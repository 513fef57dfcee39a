"""``fastnet sweep run|show|export``: kill -9 at random moments then the same command
again, the Dask executor, one-line refusals that leave the store alone, export and show.

Data: a small fake MNIST (tests/test_experiments.py's writer), or the real digits in
``$FASTNET_MNIST_DIR``.  Runs ``fastnet.cli.main`` in this process, and the command
killed with SIGKILL as ``python -m fastnet`` in a subprocess.
"""
import csv
import importlib
import io
import json
import os
import random
import re
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import VOLATILE

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
import test_experiments  # noqa: E402  (the fake-MNIST writer and the offline fixture)

from fastnet.cli import main  # noqa: E402
from fastnet.sweep.cli import SweepCommandError  # noqa: E402

offline = test_experiments.offline  # autouse: no downloads, a private cache

SWEEP = ["--train-size", "200", "--validation", "50", "--param", "hidden=20x2",
         "--param", "lr=1e-2:1:log", "--param", "momentum=0.5:0.99:one-minus-log",
         "--param", "optimizer=Momentum", "--param", "batch_size=40", "--epochs", "3",
         "--seed", "3", "--workers", "1"]


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    if os.environ.get("FASTNET_MNIST_DIR"):
        return Path(os.environ["FASTNET_MNIST_DIR"])
    return test_experiments.write_fake_mnist(tmp_path_factory.mktemp("mnist"), n_train=600,
                                             n_test=10)


def sweep(capsys, *args):
    """``fastnet sweep ARGS`` here: exit status, stdout, stderr."""
    status = main(["sweep", *map(str, args)])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def run_args(db, mnist_dir, trials, *extra):
    return ["run", "--db", db, "--data-dir", mnist_dir, "--trials", trials, *SWEEP, *extra]


def exported(capsys, db):
    """The sweep's CSV and JSON exports, the JSON without timing, host and attempts."""
    status, text, _ = sweep(capsys, "export", "--db", db, "--format", "csv")
    assert status == 0
    status, js, _ = sweep(capsys, "export", "--db", db, "--format", "json")
    assert status == 0
    rows = [{k: v for k, v in row.items() if k not in VOLATILE} for row in json.loads(js)]
    return text, rows


def rows_of(db):
    """Every row of the trials table, by index, and the integrity check's answer."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = {row[0]: row for row in conn.execute('SELECT * FROM trials ORDER BY "index"')}
        return rows, conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()


def subprocess_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.mark.slow
def test_kill_9_at_random_moments_then_the_same_command_again_loses_and_repeats_nothing(
        mnist_dir, tmp_path, capsys):
    # Seconds of training, so that four kills land before the end
    trials, longer = 300, ("--prune", "halving", "--epochs", "30", "--min-epochs", "10")
    reference = tmp_path / "reference.db"
    assert sweep(capsys, *run_args(reference, mnist_dir, trials, *longer))[0] == 0
    db = tmp_path / "killed.db"
    command = [sys.executable, "-m", "fastnet", "sweep",
               *map(str, run_args(db, mnist_dir, trials, *longer))]
    rng = random.Random(20261130)
    seen, kills, running_at_kill = {}, [], set()
    for k in range(4):
        child = subprocess.Popen(command, env=subprocess_env(), cwd=tmp_path,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while child.poll() is None and time.monotonic() < deadline:
            rows = rows_of(db)[0] if db.exists() else {}
            terminal = sum(row[2] != "running" for row in rows.values())
            if k == 0 and any(row[2] == "running" for row in rows.values()):
                break  # the first trials are training
            if k > 0 and terminal > len(seen):
                break  # this run has recorded something
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.05) if k == 0 else rng.uniform(0, 0.4))
        assert child.poll() is None, f"the sweep ended before kill {k + 1}: {child.stderr.read()}"
        child.send_signal(signal.SIGKILL)
        child.wait()
        child.stderr.close()
        rows, integrity = rows_of(db)
        assert integrity == [("ok",)]
        for index, row in seen.items():  # no finished trial lost or changed
            assert rows[index] == row
        seen = {i: row for i, row in rows.items() if row[2] != "running"}
        running_at_kill |= {i for i, row in rows.items() if row[2] == "running"}
        kills.append(len(seen))
    assert kills[0] < 5 and kills[-1] < trials, kills  # one kill among the first trials
    assert running_at_kill  # the kills interrupted trials in training
    finished = subprocess.run(command, env=subprocess_env(), cwd=tmp_path, capture_output=True,
                              text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr
    rows, integrity = rows_of(db)
    assert integrity == [("ok",)]
    assert sorted(rows) == list(range(trials))  # the count exact, every index once
    assert all(row[2] in ("done", "pruned") for row in rows.values())
    assert any(row[2] == "pruned" for row in rows.values())
    for index, row in seen.items():
        assert rows[index] == row
    assert max(row[14] for row in rows.values()) > 1  # some trial marked running again
    assert exported(capsys, db) == exported(capsys, reference)


def children(pid):
    """The pids of ``pid``'s child processes (Linux /proc)."""
    out = []
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[1]) == pid:
            out.append(int(status.parent.name))
    return out


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_the_workers_of_a_coordinator_killed_with_9_exit(mnist_dir, tmp_path):
    db = tmp_path / "orphans.db"
    args = run_args(db, mnist_dir, 400, "--epochs", "30")
    args[args.index("--workers") + 1] = "2"
    child = subprocess.Popen([sys.executable, "-m", "fastnet", "sweep", *map(str, args)],
                             env=subprocess_env(), cwd=tmp_path, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (db.exists() and any(r[2] == "running" for r in rows_of(db)[0].values())):
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    workers = children(child.pid)  # the pool's workers and multiprocessing's tracker
    assert len(workers) >= 2
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert_ended(workers)


def assert_ended(pids, wait=10):
    """The processes ``pids`` end within ``wait`` seconds (zombies count as ended)."""
    deadline = time.monotonic() + wait
    while any(Path(f"/proc/{pid}").exists() for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()
             and Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"]
    assert not alive, f"processes of the sweep still running: {alive}"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_an_interrupted_sweep_stops_at_once(signum, mnist_dir, tmp_path):
    """Ctrl-C (SIGINT to the process group, workers included) or a kill (SIGTERM): the
    coordinator stops its workers instead of waiting for their chunks (which a resume
    trains again anyway), without a warning, what ended recorded."""
    db = tmp_path / "interrupted.db"
    args = [str(a) for a in run_args(db, mnist_dir, 40, "--epochs", "200")]
    args[args.index("--workers") + 1] = "2"
    args[args.index("--train-size") + 1] = "500"
    args[args.index("hidden=20x2")] = "hidden=300x2"  # chunks of many seconds
    child = subprocess.Popen([sys.executable, "-m", "fastnet", "sweep", *args],
                             env=subprocess_env(), cwd=tmp_path, text=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
    deadline = time.monotonic() + 120
    while not (db.exists() and any(r[2] == "running" for r in rows_of(db)[0].values())):
        assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()
        time.sleep(0.05)
    workers = children(child.pid)
    signalled = time.monotonic()
    if signum == signal.SIGINT:
        os.killpg(child.pid, signum)
    else:
        child.send_signal(signum)
    stderr = child.communicate(timeout=120)[1]
    assert time.monotonic() - signalled < 10, "the sweep waited for its chunks"
    assert child.returncode == 128 + signum  # as a shell reports it (SIGTERM gave 130)
    assert "interrupted; what ended is recorded" in stderr, stderr
    assert "Warning" not in stderr and "Traceback" not in stderr, stderr
    assert_ended(workers)
    rows, integrity = rows_of(db)
    assert integrity == [("ok",)] and {row[2] for row in rows.values()} <= {"running", "done"}


@pytest.mark.slow
def test_the_dask_executor_records_the_local_table(mnist_dir, tmp_path, capsys, dask_cluster):
    local, remote = tmp_path / "local.db", tmp_path / "dask.db"
    assert sweep(capsys, *run_args(local, mnist_dir, 8, "--prune", "median"))[0] == 0
    status, out, err = sweep(capsys, *run_args(remote, mnist_dir, 8, "--prune", "median",
                                               "--executor", "dask", "--scheduler",
                                               dask_cluster.scheduler_address))
    assert status == 0, err
    assert out.startswith(f"8 trials in {remote}")
    assert exported(capsys, remote) == exported(capsys, local)


@pytest.fixture(scope="module")
def small_db(mnist_dir, tmp_path_factory):
    db = tmp_path_factory.mktemp("small") / "small.db"
    assert main(["sweep", *map(str, run_args(db, mnist_dir, 6, "--prune", "halving"))]) == 0
    return db


def changed_copy(db, path, sql):
    """A copy of the sweep file ``db`` at ``path``, changed by the statement ``sql``."""
    path.write_bytes(db.read_bytes())
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql)
    conn.close()
    return path


def unchanged(path):
    return path.read_bytes(), path.stat().st_mtime_ns


@pytest.mark.parametrize("change", [
    ["--seed", "4"], ["--param", "lr=1e-3:1:log"], ["--param", "lrr=1e-3:1:log"],
    ["--param", "lr=1:0.01:log"], ["--param", "weight_decay=0:0.1:log"],
    ["--param", "optimizer=:choice"], ["--trials", "7"], ["--sampler", "sobol"],
    ["--prune", "median"], ["--param", "batch_size=0"],
], ids=lambda change: " ".join(change))
def test_a_refused_run_says_why_in_one_line_and_leaves_the_store_alone(
        change, small_db, mnist_dir, capsys):
    before = unchanged(small_db)
    status, out, err = sweep(capsys, *changed(run_args(small_db, mnist_dir, 6, "--prune",
                                                       "halving"), change))
    assert status == 1 and out == ""
    assert err.startswith("fastnet sweep: error: ") and err.count("\n") == 1, err
    if change[1].endswith(":choice"):
        assert "optimizer: choice: needs at least one option" in err
    assert unchanged(small_db) == before
    assert not Path(f"{small_db}-wal").exists() or Path(f"{small_db}-wal").stat().st_size == 0


def changed(args, change):
    """``args`` with the flag and value ``change`` in place of the same flag (a --param of
    the same name), or added."""
    flag, value = change
    args = list(args)
    for at, arg in enumerate(args):
        if arg == flag and (flag != "--param" or args[at + 1].split("=")[0] == value.split("=")[0]):
            args[at + 1] = value
            return args
    return args + change


@pytest.mark.parametrize("change, key, flag", [
    (["--seed", "4"], "sampler.seed", "--seed"),
    (["--param", "lr=1e-3:1:log"], "space.lr.low", "--param lr"),
    (["--epochs", "4"], "space.epochs", "--epochs or --param epochs"),
    (["--trials", "7"], "trials", "--trials"),
    (["--prune", "median"], "pruner.name", "--prune"),
    (["--reduction-factor", "2"], "pruner.reduction_factor", "--reduction-factor"),
    (["--train-size", "150"], "data.train_size", "--train-size"),
    (["--train-eval", "100"], "data.train_eval", "--train-eval"),
    (["--dtype", "float64"], "dtype", "--dtype"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_a_resume_that_differs_names_the_flag_of_the_difference(
        change, key, flag, small_db, mnist_dir, capsys):
    status, _, err = sweep(capsys, *changed(run_args(small_db, mnist_dir, 6, "--prune",
                                                     "halving"), change))
    assert status == 1
    assert re.search(rf"the spec differs from the sweep's at key '{re.escape(key)}': .*; "
                     rf"set by {flag}\n\Z", err), err


@pytest.mark.parametrize("train_eval", ["200", "10000"])
def test_a_train_eval_of_every_training_image_resumes_a_sweep_begun_without(
        train_eval, small_db, mnist_dir, capsys):
    """--train-eval of the training images (200) or more is its default, all of them."""
    before = unchanged(small_db)
    status, out, err = sweep(capsys, *run_args(small_db, mnist_dir, 6, "--prune", "halving",
                                               "--train-eval", train_eval))
    assert status == 0 and out.startswith("6 trials in "), err
    assert unchanged(small_db)[0] == before[0]


@pytest.mark.parametrize("default", ["activation=relu", "weight_decay=0", "dropout=false",
                                     "weight_init_std=he"])
def test_a_parameter_given_at_its_default_or_left_out_is_the_same_sweep(
        default, small_db, mnist_dir, tmp_path, capsys):
    """Either spelling resumes the other's sweep (a resume was refused as 'stored absent,
    given "relu"'); another value is still refused."""
    before = unchanged(small_db)[0]
    args = run_args(small_db, mnist_dir, 6, "--prune", "halving")
    status, out, err = sweep(capsys, *args, "--param", default)
    assert status == 0 and out.startswith("6 trials in "), err
    assert unchanged(small_db)[0] == before
    db = tmp_path / "spelled.db"
    assert sweep(capsys, *run_args(db, mnist_dir, 2, "--param", default))[0] == 0
    before = unchanged(db)[0]
    status, out, err = sweep(capsys, *run_args(db, mnist_dir, 2))
    assert status == 0 and out.startswith("2 trials in "), err
    assert unchanged(db)[0] == before
    status, _, err = sweep(capsys, *args, "--param", "activation=tanh")
    assert status == 1 and "at key 'space.activation': stored absent, given \"tanh\"" in err


@pytest.mark.parametrize("first, second, other", [
    ("batchnorm=true", "normalization=batch", "normalization=layer"),
    ("weight_init_std=xavier", "weight_init_std=sigmoid", "weight_init_std=0.01"),
])
def test_two_spellings_of_one_constant_are_the_same_sweep(first, second, other, mnist_dir,
                                                          tmp_path, capsys):
    """Either spelling resumes the other's sweep, unchanged (the book's use_batchnorm
    and normalization='batch', 'xavier' and 'sigmoid' train the same nets; a resume was
    refused as 'stored absent, given "batch"'); another value is still refused."""
    for begun, resumed in ((first, second), (second, first)):
        db = tmp_path / f"{begun}.db"
        assert sweep(capsys, *run_args(db, mnist_dir, 2, "--param", begun))[0] == 0
        before = unchanged(db)[0]
        status, out, err = sweep(capsys, *run_args(db, mnist_dir, 2, "--param", resumed))
        assert status == 0 and out.startswith("2 trials in "), err
        assert unchanged(db)[0] == before
        status, _, err = sweep(capsys, *run_args(db, mnist_dir, 2, "--param", other))
        assert status == 1 and "the spec differs from the sweep's at key 'space." in err


def test_a_sweep_begun_with_train_eval_of_every_image_resumes_with_or_without_it(
        mnist_dir, tmp_path, capsys):
    """--train-eval 200 (every training image) is stored as given (as an older fastnet
    stored it too); the same command resumes it, and so does the command without it."""
    db = tmp_path / "older.db"
    assert sweep(capsys, *run_args(db, mnist_dir, 3, "--train-eval", "200"))[0] == 0
    before = unchanged(db)[0]
    for extra in (["--train-eval", "200"], []):
        status, out, err = sweep(capsys, *run_args(db, mnist_dir, 3, *extra))
        assert status == 0 and out.startswith("3 trials in "), err
    assert unchanged(db)[0] == before


def test_a_sweep_begun_by_other_code_needs_allow_code_change(
        small_db, mnist_dir, capsys, monkeypatch):
    before = unchanged(small_db)
    run_module = importlib.import_module("fastnet.sweep.run")  # fastnet.sweep.run is run()
    code = run_module.code_identity()
    monkeypatch.setattr(run_module, "code_identity", lambda: {**code, "numba": "0.1"})
    args = run_args(small_db, mnist_dir, 6, "--prune", "halving")
    status, out, err = sweep(capsys, *args)
    assert status == 1 and out == ""
    assert err.startswith("fastnet sweep: error: ") and err.count("\n") == 1, err
    assert f'(numba "{code["numba"]}" -> "0.1")' in err and "--allow-code-change" in err
    assert unchanged(small_db) == before
    status, out, err = sweep(capsys, *args, "--allow-code-change")
    assert status == 0 and out.startswith("6 trials in "), (out, err)


@pytest.mark.parametrize("change", [
    ["--param", "lr=0.1", "--param", "lr=0.2"], ["--param", "batch_size=50"],
    ["--param", "lr=1:0.01:log"], ["--param", "optimizer=:choice"],
], ids=lambda change: " ".join(change))
def test_a_refused_run_on_a_new_db_creates_nothing(change, mnist_dir, tmp_path, capsys):
    (tmp_path / "dbs").mkdir()
    db = tmp_path / "dbs" / "new.db"
    status, out, err = sweep(capsys, *run_args(db, mnist_dir, 6), *change)
    assert status == 1 and out == ""
    assert err.startswith("fastnet sweep: error: ") and err.count("\n") == 1, err
    assert list(db.parent.iterdir()) == []


@pytest.mark.parametrize("kind", ["text", "sqlite", "missing"])
@pytest.mark.parametrize("verb", ["run", "show", "export"])
def test_a_db_that_is_not_a_sweep_is_refused_in_one_line_and_left_alone(
        kind, verb, mnist_dir, tmp_path, capsys):
    db = tmp_path / "other.db"
    if kind == "text":
        db.write_text("not a sweep\n")
    elif kind == "sqlite":
        conn = sqlite3.connect(db)
        conn.execute("CREATE TABLE meta (key TEXT, value TEXT)")
        conn.execute("INSERT INTO meta VALUES ('format', 'something else')")
        conn.commit()
        conn.close()
    before = unchanged(db) if db.exists() else None
    args = run_args(db, mnist_dir, 2) if verb == "run" else [verb, "--db", db]
    status, out, err = sweep(capsys, *args)
    if kind == "missing" and verb == "run":
        assert status == 0 and db.exists()  # run creates the sweep
        return
    assert status == 1 and out == ""
    assert err.startswith("fastnet sweep: error: ") and err.count("\n") == 1, err
    assert str(db) in err
    if before is None:
        assert not db.exists()
    else:
        assert unchanged(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if before is None else ["other.db"])


def test_a_first_rung_before_the_first_step_is_refused_after_loading_the_data(
        mnist_dir, tmp_path, capsys):
    """200 images in batches of 40 make 5 steps an epoch: a rung at 0.1 epochs has no
    step to evaluate after.  (The data's own notices may come first on stderr.)"""
    (tmp_path / "dbs").mkdir()
    db = tmp_path / "dbs" / "new.db"
    status, out, err = sweep(capsys, *run_args(db, mnist_dir, 6), "--prune", "halving",
                             "--min-epochs", "0.1")
    assert status == 1 and out == ""
    assert err.splitlines()[-1] == (
        "fastnet sweep: error: the pruner's first rung, at 0.1 epochs, comes before the "
        "first step: 200 training images in mini-batches of 40 make 5 steps an epoch; "
        "train for at least 0.2 epochs (--epochs, or the pruner's rungs: --min-epochs)"), err
    assert list(db.parent.iterdir()) == []


@pytest.mark.parametrize("verb", ["run", "show", "export"])
def test_a_db_that_is_a_directory_is_refused_in_one_line(verb, mnist_dir, tmp_path, capsys):
    db = tmp_path / "sweeps"
    db.mkdir()
    args = run_args(db, mnist_dir, 2) if verb == "run" else [verb, "--db", db]
    status, out, err = sweep(capsys, *args)
    assert status == 1 and out == ""
    assert err == f"fastnet sweep: error: {db} is a directory, not a fastnet sweep file\n"
    assert list(db.iterdir()) == []


@pytest.mark.parametrize(("extra", "message"), [
    (["--train-size", "0"], "--train-size must be a positive integer"),
    (["--prune", "halving", "--min-epochs", "0"], "--min-epochs must be > 0, got 0.0"),
    (["--bracket-size", "0"], "--bracket-size must be a positive integer, got 0"),
    # options that did nothing, silently
    (["--min-epochs", "2"], ("--min-epochs sets successive halving's rungs: give --prune "
                             "halving, or leave it out")),
    (["--prune", "median", "--min-epochs", "2", "--reduction-factor", "9"],
     "--min-epochs and --reduction-factor set successive halving's rungs"),
    (["--rounds", "2"], ("--rounds sets coarse to fine's rounds: give --sampler "
                         "coarse-to-fine, or leave it out")),
    (["--epochs", "1e308"], "epochs must be a number in (0, 1000000], got 1e+308"),
    (["--validation", "0.0001", "--train-size", "200"],
     "--validation 0.0001 of 200 images is no image: hold out a larger fraction, or a count"),
    (["--workers", "1", "--threads-per-worker", "1000"],
     "--threads-per-worker must be at most"),
    # the library's keywords (trials=2, executor='local') spelled as flags
    (["--sampler", "coarse-to-fine", "--rounds", "3"],
     "--trials 2 cannot fill --rounds 3: give at least one trial a round"),
    (["--executor", "local", "--scheduler", "tcp://127.0.0.1:1"],
     ("--scheduler tcp://127.0.0.1:1 needs --executor dask (--executor local runs on "
      "this machine)")),
])
def test_errors_about_options_name_their_flags(extra, message, mnist_dir, tmp_path, capsys):
    args = run_args(tmp_path / "none.db", mnist_dir, 2)
    at = args.index("--train-size")
    args[at:at + 2] = []  # given again by some cases
    status, _, err = sweep(capsys, *args, *extra)
    # the last line: the real digits' fallback banner may come first
    assert status == 1 and err.splitlines()[-1].startswith(
        f"fastnet sweep: error: {message}"), err


def test_epochs_as_a_flag_or_as_a_param_is_one_sweep(mnist_dir, tmp_path, capsys):
    """``--epochs 3`` (read as 3.0) and ``--param epochs=3`` make the same spec: either
    resumes the other's sweep."""
    db = tmp_path / "epochs.db"
    assert sweep(capsys, *run_args(db, mnist_dir, 2))[0] == 0
    args = [str(a) for a in run_args(db, mnist_dir, 2)]
    at = args.index("--epochs")
    args[at:at + 2] = ["--param", "epochs=3"]
    status, out, err = sweep(capsys, *args)
    assert status == 0 and out.startswith(f"2 trials in {db} (2 done)"), err


@pytest.mark.parametrize("began", [False, True])
def test_an_interrupted_run_says_whether_anything_was_recorded(
        began, mnist_dir, tmp_path, capsys, monkeypatch):
    db = tmp_path / "interrupted.db"
    if began:
        assert sweep(capsys, *run_args(db, mnist_dir, 1))[0] == 0

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(importlib.import_module("fastnet.sweep.run"), "run", interrupted)
    status, out, err = sweep(capsys, *run_args(db, mnist_dir, 2))
    assert status == 130 and out == ""  # as a shell reports Ctrl-C
    assert err == ("fastnet sweep: error: " + (
        f"interrupted; what ended is recorded in {db}: run the same command to resume\n"
        if began else "interrupted before the sweep began: nothing was recorded\n"))


def test_show_says_why_trials_failed(mnist_dir, tmp_path, capsys):
    """A failed trial has no score for the table: a line gives the first error."""
    db = tmp_path / "failing.db"
    # 200 images in batches of 40: epochs under 0.2 end before the first step and fail
    args = run_args(db, mnist_dir, 4)
    at = args.index("--epochs")
    args[at:at + 2] = ["--param", "epochs=0.1:0.5"]
    assert sweep(capsys, *args)[0] == 0
    status, out, _ = sweep(capsys, "show", "--db", db)
    assert status == 0
    assert re.search(r"^\d failed; the first, trial \d: ValueError: 0\.1\d* epochs is less "
                     r"than one step .*export --format json\)$", out, re.MULTILINE), out


def test_a_run_whose_every_trial_failed_says_why_and_fails(mnist_dir, tmp_path, capsys):
    """It said "2 trials in x.db (2 failed)" and exited 0."""
    db = tmp_path / "failing.db"
    args = run_args(db, mnist_dir, 2)
    args[args.index("hidden=20x2")] = "hidden=99999999999"  # 570 TiB: every trial fails
    status, out, err = sweep(capsys, *args)
    assert status == 1 and out.startswith(f"2 trials in {db} (2 failed)"), (out, err)
    assert re.search(r"^2 failed; the first, trial 0: MemoryError: a net of 1 hidden layer "
                     r"and 79,499,999,999,215 float32 parameters needs .* GiB, more than "
                     r"this machine's", out, re.MULTILINE), out
    assert err.splitlines()[-1] == f"fastnet sweep: error: every trial of the sweep in {db} failed"


def test_a_dataset_not_found_is_not_blamed_on_the_db(tmp_path, capsys):
    """It read "fastnet sweep: error: x.db: MNIST not found ..."."""
    (tmp_path / "empty").mkdir()
    db = tmp_path / "x.db"
    status, _, err = sweep(capsys, "run", "--db", db, "--data-dir", tmp_path / "empty",
                           "--trials", 1, *SWEEP)
    assert status == 1 and "fastnet sweep: error: MNIST not found" in err, err
    assert "pass --data-dir <folder>" in err and not db.exists()


def test_export_over_a_file_keeps_its_permissions(small_db, tmp_path, capsys):
    out = tmp_path / "p.csv"
    out.write_text("OLD\n")
    out.chmod(0o600)
    status, _, _ = sweep(capsys, "export", "--db", small_db, "--out", out)
    assert status == 0 and stat.S_IMODE(out.stat().st_mode) == 0o600
    assert out.read_text().startswith("index,")


@pytest.mark.parametrize("suffix", ["", "-wal", ".lock"])
def test_export_refuses_to_write_over_the_sweep_file(suffix, small_db, capsys):
    before = unchanged(small_db)
    status, out, err = sweep(capsys, "export", "--db", small_db, "--out", f"{small_db}{suffix}")
    assert status == 1 and out == "" and "would replace the sweep file" in err
    assert unchanged(small_db) == before


@pytest.mark.parametrize("verb", ["show", "export"])
def test_output_into_a_closed_pipe_ends_quietly(verb, small_db):
    """``fastnet sweep show | head -1``, head gone before the table is written: exit
    status 1, no BrokenPipeError traceback or "Exception ignored" at exit."""
    proc = subprocess.Popen([sys.executable, "-m", "fastnet", "sweep", verb, "--db",
                             str(small_db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=subprocess_env())
    proc.stdout.close()  # before the process (still importing) writes a byte
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and err == "", err


def test_a_run_resuming_a_damaged_sweep_names_the_file(small_db, mnist_dir, tmp_path,
                                                       capsys):
    """It printed JSON's bare "Expecting property name enclosed in double quotes"."""
    db = changed_copy(small_db, tmp_path / "damaged.db",
                      "UPDATE trials SET config = '{x' WHERE \"index\" = 0")
    status, _, err = sweep(capsys, *run_args(db, mnist_dir, 6, "--prune", "halving"))
    assert status == 1 and err.startswith(f"fastnet sweep: error: {db}: a damaged sweep "
                                          f"file (a stored value is not JSON: "), err


@pytest.mark.parametrize("verb", ["show", "export", "plot"])
@pytest.mark.parametrize("damage, message", [
    ("DELETE FROM meta WHERE key = 'spec'", "a damaged fastnet sweep (its spec is missing"),
    ("UPDATE meta SET value = '{' WHERE key = 'spec'", "a damaged fastnet sweep (its spec"),
    ("UPDATE meta SET value = '{}' WHERE key = 'spec'",
     "not a sweep of fastnet sweep run (its spec lacks space, trials)"),
    ("UPDATE trials SET config = '{x' WHERE \"index\" = 0",
     "a damaged sweep file (a stored value is not JSON: "),
], ids=["no-spec", "spec-not-json", "spec-empty", "config-not-json"])
def test_a_damaged_sweep_file_is_one_line_naming_it(verb, damage, message, small_db,
                                                     tmp_path, capsys):
    db = changed_copy(small_db, tmp_path / "damaged.db", damage)
    extra = ["--out", str(tmp_path / "plots")] if verb == "plot" else []
    status, _, err = sweep(capsys, verb, "--db", db, *extra)
    assert status == 1 and err.startswith(f"fastnet sweep: error: {db}: {message}"), err
    assert err.count("\n") == 1


def test_plot_into_a_file_is_refused(small_db, tmp_path, capsys):
    out = tmp_path / "taken"
    out.write_text("mine")
    status, _, err = sweep(capsys, "plot", "--db", small_db, "--out", out)
    assert status == 1 and err == (f"fastnet sweep: error: --out {out} is a file; plot writes "
                                   f"its PNG files into a folder (made if missing)\n")
    assert out.read_text() == "mine"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("verb", ["show", "export"])
def test_output_onto_a_full_disk_is_one_line(verb, small_db):
    """stdout refusing what is written (``> /dev/full``): the error in one line."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "fastnet", "sweep", verb, "--db",
                               str(small_db)], stdout=full, stderr=subprocess.PIPE, text=True,
                              env=subprocess_env(), timeout=120, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("fastnet sweep: error: ") and proc.stderr.count("\n") == 1
    assert "No space left on device" in proc.stderr


def test_export_csv_and_json_to_stdout_and_to_a_file(small_db, tmp_path, capsys):
    from fastnet.sweep import SweepStore

    with SweepStore.open(small_db, readonly=True) as store:
        results = store.results()
    text, rows = exported(capsys, small_db)
    lines = list(csv.reader(io.StringIO(text)))
    sampled = ["lr", "momentum"]  # SWEEP's searched parameters, sorted
    assert lines[0] == ["index", "round", "status", *sampled, "val_acc", "val_loss"]
    assert [int(line[0]) for line in lines[1:]] == list(range(6))
    assert [line[2] for line in lines[1:]] == [r.status for r in results]
    for line, r in zip(lines[1:], results):  # every value reads back exactly
        cells = dict(zip(lines[0], line))
        for key, value in ((k, r.config[k]) for k in sampled):
            assert (cells[key] if isinstance(value, str) else json.loads(cells[key] or "null")
                    ) == value
        assert json.loads(cells["val_acc"]) == r.val_acc_final
        assert json.loads(cells["val_loss"]) == r.val_loss_final
    assert [row["config"] for row in rows] == [r.config for r in results]
    assert rows[0]["val_acc"] == results[0].val_acc
    for fmt, stdout in (("csv", text), ("json", None)):
        out = tmp_path / f"table.{fmt}"
        status, printed, _ = sweep(capsys, "export", "--db", small_db, "--format", fmt,
                                   "--out", out)
        assert status == 0 and printed == ""
        if stdout is not None:
            assert out.read_text() == stdout
        else:
            assert [{k: v for k, v in row.items() if k not in VOLATILE}
                    for row in json.loads(out.read_text())] == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv", "table.json"]


def test_export_writes_through_links_into_pipes_and_refuses_folders(small_db, tmp_path, capsys):
    """A symbolic link's target is written (the link kept), a FIFO is written into
    (not replaced by a file), a folder is refused; nothing is left beside them."""
    text = exported(capsys, small_db)[0]
    target, link = tmp_path / "real.csv", tmp_path / "link.csv"
    target.write_text("old")
    link.symlink_to(target)
    assert sweep(capsys, "export", "--db", small_db, "--out", link)[0] == 0
    assert link.is_symlink() and target.read_text() == text
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    assert sweep(capsys, "export", "--db", small_db, "--out", fifo)[0] == 0
    reader.join(timeout=60)
    assert received == [text] and stat.S_ISFIFO(os.stat(fifo).st_mode)
    for folder in (tmp_path, ""):
        status, _, err = sweep(capsys, "export", "--db", small_db, "--out", folder)
        assert status == 1 and "a folder, --out names a file" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "pipe", "real.csv"]


@pytest.mark.skipif(not Path("/dev/stdout").exists(), reason="needs /dev/stdout")
@pytest.mark.parametrize("into", ["pipe", "appended file"])
def test_export_to_dev_stdout_writes_what_stdout_is(into, small_db, tmp_path, capsys):
    """``--out /dev/stdout`` into a pipe, or into a file a shell appends to (``>>``):
    written there directly, the file's earlier lines kept."""
    text = exported(capsys, small_db)[0]
    command = [sys.executable, "-m", "fastnet", "sweep", "export", "--db", str(small_db),
               "--out", "/dev/stdout"]
    if into == "pipe":
        done = subprocess.run(command, capture_output=True, text=True, env=subprocess_env(),
                              timeout=120, check=False)
        assert done.returncode == 0 and done.stdout == text, done.stderr
        return
    log = tmp_path / "log.csv"
    log.write_text("earlier\n")
    with open(log, "a") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, text=True,
                              env=subprocess_env(), timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert log.read_text() == "earlier\n" + text


def test_show_prints_the_best_trials(small_db, capsys):
    from fastnet.sweep import SweepStore

    with SweepStore.open(small_db, readonly=True) as store:
        results = store.results()
    best = sorted((r for r in results if r.score is not None), key=lambda r: (-r.score, r.index))
    status, out, _ = sweep(capsys, "show", "--db", small_db, "--top", 3)
    lines = out.splitlines()
    assert status == 0 and len(lines) == 5
    pruned = sum(r.status == "pruned" for r in results)
    assert lines[0] == (f"6 of 6 trials recorded ({6 - pruned} done, {pruned} pruned), "
                        "0 running or interrupted, 0 pending")
    assert lines[1].split() == ["rank", "trial", "status", "val_acc", "val_loss", "epochs",
                                "lr", "momentum"]
    for rank, (line, r) in enumerate(zip(lines[2:], best), 1):
        cells = line.split()
        assert cells[:4] == [str(rank), str(r.index), r.status, f"{r.score:.4f}"]


def test_show_of_a_sweep_without_a_score_says_so(small_db, tmp_path, capsys):
    """Every trial diverged: a line, not a table header over nothing."""
    db = changed_copy(small_db, tmp_path / "diverged.db",
                      "UPDATE trials SET status = 'diverged', val_acc_final = NULL")
    status, out, _ = sweep(capsys, "show", "--db", db)
    assert status == 0 and out.splitlines() == [
        "6 of 6 trials recorded (6 diverged), 0 running or interrupted, 0 pending",
        "no trial has a score to rank (only done and pruned trials have one)"]


@pytest.mark.parametrize("counts, total, line", [
    ({"running": 0, "done": 0, "pruned": 0, "diverged": 0, "failed": 0}, 10,
     "0 of 10 trials recorded, 0 running or interrupted, 10 pending"),
    ({"running": 2, "done": 5, "pruned": 1, "diverged": 0, "failed": 1}, 10,
     "7 of 10 trials recorded (5 done, 1 pruned, 1 failed), 2 running or interrupted, 1 pending"),
    ({"running": 0, "done": 3, "pruned": 0, "diverged": 1, "failed": 0}, 4,
     "4 of 4 trials recorded (3 done, 1 diverged), 0 running or interrupted, 0 pending"),
])
def test_show_counts_the_recorded_running_and_pending_trials(counts, total, line):
    from fastnet.sweep.cli import _progress

    assert _progress(counts, total) == line


def test_show_of_a_sweep_in_progress(small_db, tmp_path, capsys):
    from fastnet.sweep import SweepStore

    db = changed_copy(small_db, tmp_path / "partial.db", 'DELETE FROM trials WHERE "index" >= 3')
    with SweepStore.open(db) as store:
        store.mark_running([3], "somewhere")
    status, out, _ = sweep(capsys, "show", "--db", db)
    assert status == 0 and out.splitlines()[0].startswith("3 of 6 trials recorded (")
    assert out.splitlines()[0].endswith("), 1 running or interrupted, 2 pending")


def test_a_parameter_no_trial_reads_is_warned_of_once_in_one_line(mnist_dir, tmp_path, capsys):
    args = run_args(tmp_path / "adam.db", mnist_dir, 2)
    args[args.index("optimizer=Momentum")] = "optimizer=adam"
    handler = signal.getsignal(signal.SIGTERM)
    status, _, err = sweep(capsys, *args)
    assert status == 0
    assert signal.getsignal(signal.SIGTERM) is handler  # the run's own is not left behind
    assert err == ("fastnet sweep: warning: momentum is given but no trial reads it: only "
                   "optimizer 'Momentum' or 'Nesterov' does, and this space's optimizer is "
                   "'Adam'\n")


def test_a_run_from_another_thread_than_the_main_one(mnist_dir, tmp_path, capsys):
    from concurrent.futures import ThreadPoolExecutor

    handler = signal.getsignal(signal.SIGTERM)
    with ThreadPoolExecutor(1) as pool:  # only the main thread may set a signal handler
        status = pool.submit(main, ["sweep", *map(str, run_args(tmp_path / "t.db", mnist_dir,
                                                                 2))]).result()
    assert status == 0 and capsys.readouterr().out.startswith(f"2 trials in {tmp_path}")
    assert signal.getsignal(signal.SIGTERM) is handler


def test_the_learning_rate_an_optimizer_chose_is_recorded_and_shown(
        mnist_dir, tmp_path, capsys):
    db = tmp_path / "optimizers.db"
    args = run_args(db, mnist_dir, 4, "--param", "batch_size=20")
    args[args.index("lr=1e-2:1:log")] = "optimizer=sgd,adamw:choice"
    args[args.index("optimizer=Momentum")] = "normalization=layer"
    args[args.index("momentum=0.5:0.99:one-minus-log")] = "lr_schedule=cosine"
    args[args.index("batch_size=40")] = "epochs=1"
    del args[args.index("--epochs"):args.index("--epochs") + 2]
    status, _, err = sweep(capsys, *args)
    assert status == 0 and err == ""
    text, rows = exported(capsys, db)
    lines = list(csv.reader(io.StringIO(text)))
    assert lines[0] == ["index", "round", "status", "optimizer", "decoupled_weight_decay", "lr",
                        "val_acc", "val_loss"]
    used = {"SGD": ["", "0.01"], "AdamW": ["0.01", "0.001"]}
    assert all(line[4:6] == used[line[3]] for line in lines[1:]) and len(lines) == 5
    assert {line[3] for line in lines[1:]} == {"SGD", "AdamW"}
    for row in rows:
        assert row["status"] == "done" and row["config"]["normalization"] == "layer"
        assert row["config"]["lr_schedule"] == "cosine_decay" and row["config"]["decay_steps"] == 1
    status, out, _ = sweep(capsys, "show", "--db", db)
    assert out.splitlines()[1].split()[-3:] == ["optimizer", "decoupled_weight_decay", "lr"]


def test_a_run_offline_with_only_the_parsed_cache_of_mnist(tmp_path, capsys):
    """The IDX files gone from the data folder and no mirror reachable: the sweep given
    that folder trains on the parsed cache."""
    from fastnet.datasets import load_mnist

    folder = test_experiments.write_fake_mnist(tmp_path / "mnist", n_train=300, n_test=10)
    load_mnist(data_dir=folder, download=False)  # writes the parsed cache
    for path in folder.iterdir():
        path.unlink()
    status, out, err = sweep(capsys, "run", "--db", tmp_path / "s.db", "--dataset", "mnist",
                             "--data-dir", folder, "--trials", 1, *SWEEP)
    assert status == 0, err
    assert "1 trials" in out and "FALLBACK" not in err


def test_a_path_that_spells_a_keyword_is_left_as_it_is(tmp_path, capsys):
    """Only the library's keywords become flags ('/trials=5/s.db' read
    '/--trials 5/s.db')."""
    folder = tmp_path / "trials=5"
    folder.mkdir()
    (folder / "s.db").write_text("x")
    status, _, err = sweep(capsys, "run", "--db", folder / "s.db", "--param", "lr=0.1")
    assert status == 1 and err.startswith(f"fastnet sweep: error: {folder / 's.db'}: "), err


def test_fastnet_debug_shows_the_library_frames_of_a_sweep_error(tmp_path, monkeypatch,
                                                                  capsys):
    """The command's one line keeps the library's error as its cause, which
    FASTNET_DEBUG=1 shows (the traceback ended in the command)."""
    args = ["sweep", "run", "--db", str(tmp_path / "s.db"), "--param", "lr=1e-2:1e-4:log"]
    assert main(args) == 1
    monkeypatch.setenv("FASTNET_DEBUG", "1")
    with pytest.raises(SweepCommandError) as info:
        main(args)
    assert isinstance(info.value.__cause__, ValueError)
    assert str(info.value) == str(info.value.__cause__) == (
        "lr: log_uniform: low must be < high, got low=0.01, high=0.0001")
    assert list(tmp_path.iterdir()) == []
