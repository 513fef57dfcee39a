"""fastnet.sweep.store: creating, reopening and resuming a sweep file; the errors for
files that are not sweeps or hold another spec (which leave the file as it was);
idempotent records, attempts, exact round trips, CSV/JSON export; a reader beside the
writer; a writer killed with SIGKILL at random moments loses nothing it committed."""
import csv
import dataclasses
import io
import json
import math
import os
import random
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fastnet.sweep.store import (
    CodeChangedError,
    NotASweepError,
    SpecMismatchError,
    SweepStore,
    SweepStoreError,
    TrialResult,
)

SPEC = {"space": {"lr": {"log_uniform": [1e-4, 0.1]}}, "sampler": "sobol", "seed": 3}
COUNTS = {"running": 0, "done": 0, "pruned": 0, "diverged": 0, "failed": 0}
FOREIGN_SQL = "CREATE TABLE meta (key TEXT, value TEXT); INSERT INTO meta VALUES ('format', 'x')"


def result(index, status="done", **fields):
    """A complete result whose values are a function of ``index``."""
    config = {"lr": 10 ** (-1 - index / 7), "hidden_size_list": [100] * (1 + index % 3),
              "optimizer": "Adam"}
    values = {"round": index % 3, "config": config, "seed": 2**63 - 1 - index,
              "status": status, "epochs": [0.5, 1.0], "train_loss": [2.3, 1.0 / (index + 3)],
              "train_acc": [0.1, 0.9], "val_loss": [2.2, 0.1 + 0.2], "val_acc": [0.2, 1 / 3],
              "val_acc_final": 1 / 3 + index * 1e-17, "val_loss_final": 0.1 + 0.2,
              "wall_time": index * 0.001, "host": "node-1", "attempts": 1, "error": None}
    return TrialResult(index, **{**values, **fields})


def snapshot(path):
    """The bytes and mtime of ``path``, after which a write would change the mtime."""
    state = path.read_bytes(), os.stat(path).st_mtime_ns
    time.sleep(0.01)
    return state


@pytest.fixture
def store(tmp_path):
    with SweepStore.create(tmp_path / "sweep.db", SPEC) as store:
        yield store


def test_create_makes_an_empty_sweep_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sweep.db"
    with SweepStore.create(path, {"seed": 3, "hidden": (100, 100)}) as store:
        assert store.spec == {"hidden": [100, 100], "seed": 3}
        assert store.count() == COUNTS
        assert store.results() == []
    assert os.listdir(tmp_path) == ["sweep.db"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert dict(conn.execute("SELECT key, value FROM meta")) == {
        "format": "fastnet-sweep", "version": "1", "spec": '{"hidden": [100, 100], "seed": 3}'}
    conn.close()


def test_create_refuses_an_existing_file_and_leaves_it_as_it_was(tmp_path):
    path = tmp_path / "sweep.db"
    path.write_text("mine\n")
    before = snapshot(path)
    with pytest.raises(FileExistsError) as error:
        SweepStore.create(path, SPEC)
    assert str(error.value) == f"[Errno 17] refusing to overwrite an existing file: '{path}'"
    assert snapshot(path) == before and os.listdir(tmp_path) == ["sweep.db"]


@pytest.mark.parametrize("readonly", [False, True])
def test_open_of_a_missing_file_creates_nothing(tmp_path, readonly):
    path = tmp_path / "sweep.db"
    with pytest.raises(FileNotFoundError) as error:
        SweepStore.open(path, readonly=readonly)
    assert str(error.value) == f"[Errno 2] no such sweep file: '{path}'"
    assert os.listdir(tmp_path) == []


def test_create_or_open_resumes_with_the_same_spec(tmp_path):
    path = tmp_path / "sweep.db"
    with SweepStore.create_or_open(path, SPEC) as store:
        store.record([result(0), result(1)])
    # The same spec in another key order, with a tuple for a list: canonically equal.
    same = {"seed": 3, "sampler": "sobol", "space": {"lr": {"log_uniform": (1e-4, 0.1)}}}
    with SweepStore.create_or_open(path, same) as store:
        assert store.results() == [result(0), result(1)]
        store.record([result(2)])
    with SweepStore.open(path) as store:
        assert {r.index for r in store.results()} == {0, 1, 2} and store.spec == SPEC


def test_a_spec_equal_in_value_resumes(tmp_path):
    """2 and 2.0 are one value (a sweep stored by a version that kept --epochs' 2.0)."""
    path = tmp_path / "sweep.db"
    with SweepStore.create_or_open(path, {**SPEC, "epochs": 2.0}) as store:
        store.record([result(0)])
    with SweepStore.create_or_open(path, {**SPEC, "epochs": 2}) as store:
        assert store.results() == [result(0)]
    with pytest.raises(SpecMismatchError, match="at key 'seed': stored 3, given 4"):
        SweepStore.open(path, {**SPEC, "epochs": 2, "seed": 4})  # not the equal epochs


@pytest.mark.parametrize("given, key, stored_text, given_text", [
    ({**SPEC, "seed": 4}, "seed", "3", "4"),
    ({**SPEC, "sampler": "random", "seed": 4}, "sampler", '"sobol"', '"random"'),
    # named down to the object that holds the difference
    ({**SPEC, "space": {"lr": {"log_uniform": [1e-5, 0.1]}}}, "space.lr.log_uniform",
     "[0.0001, 0.1]", "[1e-05, 0.1]"),
    ({**SPEC, "space": {"lr": {"log_uniform": [1e-4, 0.1]}, "momentum": 0.5}},
     "space.momentum", "absent", "0.5"),
    ({**SPEC, "trials": 4}, "trials", "absent",
     "4; a sweep's trial count is part of it: more trials need a new file"),
    ({**SPEC, "rounds": 2}, "rounds", "absent", "2"),
    ({"sampler": "sobol", "space": SPEC["space"]}, "seed", "3", "absent"),
    ({**SPEC, "seed": True}, "seed", "3", "true"),
])
@pytest.mark.parametrize("readonly", [False, True])
def test_a_different_spec_is_refused_naming_the_first_differing_key(
        tmp_path, given, key, stored_text, given_text, readonly):
    path = tmp_path / "sweep.db"
    with SweepStore.create(path, SPEC) as store:
        store.record([result(0)])
    before = snapshot(path)
    opener = (lambda: SweepStore.open(path, given, readonly=True)) if readonly else (
        lambda: SweepStore.create_or_open(path, given))
    with pytest.raises(SpecMismatchError) as error:
        opener()
    assert str(error.value) == (f"{path}: the spec differs from the sweep's at key "
                                f"{key!r}: stored {stored_text}, given {given_text}")
    assert isinstance(error.value, SweepStoreError)
    assert snapshot(path) == before


CODE = {"fastnet": "0.1.0", "sources": "3d171a265229", "numpy": "2.4.6", "numba": "0.68.1",
        "blas": "openblas 0.3.31 SkylakeX"}


def test_the_code_that_began_a_sweep_is_recorded_and_checked_on_resume(tmp_path):
    path = tmp_path / "sweep.db"
    with SweepStore.create_or_open(path, SPEC, CODE) as store:
        assert store.code == CODE
        store.record([result(0)])
    with SweepStore.create_or_open(path, SPEC, dict(reversed(CODE.items()))) as store:
        store.record([result(1)])  # the same code, in another key order
    before = snapshot(path)
    other = {**CODE, "sources": "0123456789ab", "blas": "openblas 0.3.31 Haswell"}
    for opener in (lambda: SweepStore.create_or_open(path, SPEC, other),
                   lambda: SweepStore.open(path, SPEC, readonly=True, code=other)):
        with pytest.raises(CodeChangedError) as error:
            opener()
        assert str(error.value) == (
            f"{path}: the sweep was begun by other code than this (blas \"openblas 0.3.31 "
            f"SkylakeX\" -> \"openblas 0.3.31 Haswell\"; sources \"3d171a265229\" -> "
            f"\"0123456789ab\"): trials run now need not give the bits an uninterrupted run "
            f"gives; finish it with the code that began it, or resume anyway "
            f"(allow_code_change=True, --allow-code-change)")
        assert isinstance(error.value, SweepStoreError)
    assert snapshot(path) == before
    with SweepStore.create_or_open(path, SPEC, other, allow_code_change=True) as store:
        assert store.code == CODE  # what began it, still
        assert {r.index for r in store.results()} == {0, 1}
    with SweepStore.open(path, SPEC) as store:  # no code given: nothing to check
        assert store.code == CODE


@pytest.mark.parametrize("stored", ["null", '"a string"', "[1, 2]", "not json"])
def test_a_damaged_code_record_is_refused_in_one_line(tmp_path, stored):
    path = tmp_path / "sweep.db"
    SweepStore.create(path, SPEC, CODE).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'code'", (stored,))
    conn.close()
    before = snapshot(path)
    message = (f"{path}: the meta table's code record is not a JSON object (got "
               f"{stored!r}): the file was changed by hand or damaged")
    with pytest.raises(SweepStoreError) as error:
        SweepStore.create_or_open(path, SPEC, CODE)
    assert str(error.value) == message
    with SweepStore.open(path, readonly=True) as store:  # show, export: not checked
        assert store.spec == SPEC
        with pytest.raises(SweepStoreError, match="code record is not a JSON object"):
            store.code  # noqa: B018
    assert snapshot(path) == before


def test_the_code_record_is_compared_by_content(tmp_path):
    path = tmp_path / "sweep.db"
    SweepStore.create(path, SPEC, CODE).close()
    with sqlite3.connect(path) as conn:  # the same record, written in another key order
        conn.execute("UPDATE meta SET value = ? WHERE key = 'code'",
                     (json.dumps(dict(reversed(CODE.items()))),))
    conn.close()
    with SweepStore.create_or_open(path, SPEC, CODE) as store:
        assert store.code == CODE


def test_a_sweep_without_recorded_code_resumes_under_any(tmp_path):
    path = tmp_path / "sweep.db"
    with SweepStore.create(path, SPEC) as store:
        assert store.code is None
    with SweepStore.create_or_open(path, SPEC, CODE) as store:
        assert store.code is None


def write_sqlite(path, script):
    conn = sqlite3.connect(path)
    conn.executescript(script)
    conn.close()


NOT_A_SQLITE = "not a fastnet sweep (file is not a database)"
NOT_OURS = ("not a fastnet sweep (an SQLite database without the meta table of format "
            "'fastnet-sweep' and the trials table)")


@pytest.mark.parametrize("make, message", [
    (lambda path: path.write_text("index,round\n0,0\n" * 100), NOT_A_SQLITE),
    (lambda path: path.write_bytes(b""), NOT_OURS),
    (lambda path: write_sqlite(path, "CREATE TABLE trials (x); INSERT INTO trials VALUES (1)"),
     NOT_OURS),
    (lambda path: write_sqlite(path, FOREIGN_SQL + "; CREATE TABLE trials (x)"), NOT_OURS),
    (lambda path: write_sqlite(path, "CREATE TABLE meta (k, v); CREATE TABLE trials (x)"),
     "not a fastnet sweep (no such column: key)"),
], ids=["text", "empty", "other-sqlite", "other-meta-format", "other-meta-columns"])
@pytest.mark.parametrize("how", ["open", "readonly", "create_or_open"])
def test_a_file_that_is_not_a_sweep_is_refused_and_left_as_it_was(tmp_path, make, message,
                                                                  how):
    path = tmp_path / "sweep.db"
    make(path)
    before = snapshot(path)
    with pytest.raises(NotASweepError) as error:
        if how == "create_or_open":
            SweepStore.create_or_open(path, SPEC)
        else:
            SweepStore.open(path, SPEC, readonly=how == "readonly")
    assert str(error.value) == f"{path}: {message}"
    assert snapshot(path) == before and os.listdir(tmp_path) == ["sweep.db"]


def test_a_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "sweep.db"
    SweepStore.create(path, SPEC).close()
    write_sqlite(path, "UPDATE meta SET value = '2' WHERE key = 'version'")
    before = snapshot(path)
    with pytest.raises(SweepStoreError) as error:
        SweepStore.open(path, SPEC)
    assert str(error.value) == (f"{path}: sweep format version 2, but this fastnet reads "
                                "version 1; a newer fastnet wrote it")
    assert snapshot(path) == before


def test_record_writes_a_terminal_trial_once(store):
    assert store.record([result(0), result(1, "pruned"), result(0, "failed")]) == 2
    assert store.record([result(1, "failed", error="late"), result(2)]) == 1
    assert store.record([]) == 0
    assert store.results() == [result(0), result(1, "pruned"), result(2)]
    assert store.count() == {**COUNTS, "done": 2, "pruned": 1}


def test_record_of_a_bad_batch_writes_none_of_it(store):
    with pytest.raises(ValueError, match="^trial 1: status 'running' is not one of done, "
                                         "pruned, diverged, failed$"):
        store.record([result(0), result(1, "running")])
    with pytest.raises(TypeError, match="not JSON serializable"):
        store.record([result(0), result(1, config={"lr": object()})])
    assert store.count()["done"] == 0 and store.results() == []


def test_mark_running_counts_attempts_and_leaves_terminal_trials_alone(store):
    store.mark_running([0, 1, 2], "node-1")
    store.mark_running([1, 2], "node-2")
    store.mark_running([2], "node-3")
    running = store.results("running")
    assert [(r.index, r.host, r.attempts) for r in running] == [
        (0, "node-1", 1), (1, "node-2", 2), (2, "node-3", 3)]
    assert running[0] == TrialResult(0, None, {}, None, "running", host="node-1")
    assert {r.index for r in store.results()} == set() and store.count()["running"] == 3

    # The store's count wins over a result's smaller one, a larger one over the store's.
    store.record([result(1), result(2, attempts=7), result(3)])
    assert [(r.index, r.attempts) for r in store.results()] == [(1, 2), (2, 7), (3, 1)]
    store.mark_running([1, 3], "node-4")
    assert store.results() == [result(1, attempts=2), result(2, attempts=7), result(3)]
    assert store.count() == {**COUNTS, "running": 1, "done": 3}


def test_results_are_ordered_by_index_and_read_back_exactly(store):
    specials = [math.nan, math.inf, -math.inf, -0.0, 5e-324, 0.1 + 0.2, 1 / 3, 1e308]
    recorded = [result(i, ("done", "pruned", "diverged", "failed")[i % 4],
                       val_acc_final=None if i % 4 == 3 else specials[i % 8],
                       val_loss_final=specials[(i + 1) % 8], wall_time=specials[(i + 3) % 8],
                       val_loss=specials, error="boom\n\"quoted\", x" if i % 4 == 3 else None)
                for i in range(17)]
    store.record(recorded[::-1][:9])
    store.record(recorded[::-1][9:])
    got = store.results()
    assert [r.index for r in got] == list(range(17))
    for mine, theirs in zip(recorded, got):
        # JSON text: NaN equals NaN, -0.0 differs from 0.0, floats are written by repr.
        assert (json.dumps(dataclasses.asdict(mine), sort_keys=True)
                == json.dumps(dataclasses.asdict(theirs), sort_keys=True))
    assert [r.index for r in store.results("diverged")] == [2, 6, 10, 14]
    assert math.isnan(got[0].score) and got[1].score == math.inf
    assert got[2].score is None and got[3].score is None  # diverged, failed
    with pytest.raises(ValueError, match="^status 'finished' is not one of running, done, "):
        store.results("finished")


def recorded_mix(store):
    """Trials 0..11 of every state, with a NaN score, ties and a running trial; as
    ``results()`` reads them back."""
    statuses = ["done", "pruned", "diverged", "failed", "done", "pruned"] * 2
    scores = [0.5, 0.9, None, None, 0.7, 0.5, math.nan, 0.9, None, None, 0.5, 0.95]
    store.record([result(i, status, val_acc_final=score)
                  for i, (status, score) in enumerate(zip(statuses, scores)) if i != 8])
    store.mark_running([8, 12], "node-1")
    return store.results()


def as_json(results):
    """``results`` as JSON text: a NaN score equals NaN."""
    return json.dumps([dataclasses.asdict(r) for r in results])


def test_results_read_a_range_of_indices_and_a_limit(store):
    everything = recorded_mix(store)
    assert [r.index for r in everything] == [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11]
    assert as_json(store.results(start=3, end=7)) == as_json(everything[3:7])
    assert store.results(start=7, end=10) == [everything[7], everything[8]]  # 8 running
    assert store.results(end=0) == [] and store.results(start=100) == []
    # past SQLite's integers (OverflowError): no trial lies there
    assert as_json(store.results(end=2**70, limit=2**64)) == as_json(everything)
    assert store.results(start=2**64) == [] and len(store.top(2**70)) == 7  # NaN left out
    assert store.count(end=2**80) == store.count()
    assert as_json(store.results("done", start=1, limit=2)) == as_json(everything[4:7:2])
    assert [(r.index, r.status) for r in store.results("running", end=np.int64(9))] == [
        (8, "running")]
    for bad, error, message in [({"start": -1}, ValueError, "start must be >= 0, got -1"),
                                ({"end": 1.5}, TypeError, "end must be an int, got 1.5"),
                                ({"limit": True}, TypeError, "limit must be an int, got True")]:
        with pytest.raises(error, match=f"^{re.escape(message)}$"):
            store.results(**bad)


def test_history_is_what_samplers_read_of_the_trials_below_end(store):
    everything = recorded_mix(store)
    for end in (0, 5, 9, 13):
        expected = [(r.index, r.config, r.score) for r in everything if r.index < end]
        assert json.dumps(store.history(end)) == json.dumps(expected)  # NaN equals NaN


def test_top_ranks_the_trials_with_a_score(store):
    everything = recorded_mix(store)
    for end in (None, 6, 12):
        for done_first in (False, True):
            scored = [r for r in everything if r.score is not None and not math.isnan(r.score)
                      if end is None or r.index < end]
            scored.sort(key=lambda r: (done_first and r.status != "done", -r.score, r.index))
            for n in (0, 1, 3, 20):
                assert store.top(n, end=end, done_first=done_first) == scored[:n]
    assert [r.index for r in store.top(4)] == [11, 1, 7, 4]  # the tie 0.9: 1 before 7
    assert [r.index for r in store.top(4, done_first=True)] == [4, 0, 10, 11]


def test_count_counts_the_trials_below_end(store):
    recorded_mix(store)
    assert store.count() == {"running": 2, "done": 4, "pruned": 4, "diverged": 1, "failed": 2}
    assert store.count(end=8) == {"running": 0, "done": 3, "pruned": 3, "diverged": 1,
                                  "failed": 1}


def test_export_csv_writes_one_row_per_terminal_trial(store):
    store.mark_running([0, 1, 2, 3], "node-1")
    store.record([result(1, val_acc_final=0.1 + 0.2, val_loss_final=math.nan),
                  result(0, "failed", val_acc_final=None, val_loss_final=None,
                         config={"lr": 1e-05, "optimizer": "SGD, with \"momentum\"",
                                 "use_batchnorm": True}),
                  result(2, "pruned", val_acc_final=1 / 3, val_loss_final=math.inf)])
    lr1, lr2 = repr(10 ** (-1 - 1 / 7)), repr(10 ** (-1 - 2 / 7))
    out = io.StringIO()
    store.export("csv", out)
    assert out.getvalue() == (
        "index,round,status,hidden_size_list,lr,optimizer,use_batchnorm,val_acc,val_loss\n"
        '0,0,failed,,1e-05,"SGD, with ""momentum""",true,,\n'
        f'1,1,done,"[100, 100]",{lr1},Adam,,0.30000000000000004,NaN\n'
        f'2,2,pruned,"[100, 100, 100]",{lr2},Adam,,0.3333333333333333,Infinity\n')
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [float(row["val_acc"] or "nan") for row in rows[1:]] == [0.1 + 0.2, 1 / 3]
    assert [json.loads(row["lr"]) for row in rows] == [1e-05, 10 ** (-1 - 1 / 7),
                                                        10 ** (-1 - 2 / 7)]

    out = io.StringIO()
    store.export("csv", out, columns=["lr", "momentum"])
    assert out.getvalue().splitlines() == [
        "index,round,status,lr,momentum,val_acc,val_loss",
        "0,0,failed,1e-05,,,", f"1,1,done,{lr1},,0.30000000000000004,NaN",
        f"2,2,pruned,{lr2},,0.3333333333333333,Infinity"]


def test_export_json_writes_every_field_of_each_terminal_trial(store):
    recorded = [result(0), result(1, "diverged", val_acc_final=None, val_loss_final=math.nan)]
    store.record(recorded)
    store.mark_running([2], "node-1")
    out = io.StringIO()
    store.export("json", out)
    text = out.getvalue()
    assert text.endswith("]\n")
    # Every field in the dataclass's order; configs as stored, keys sorted.
    assert text == json.dumps([{**dataclasses.asdict(r), "config": dict(sorted(r.config.items()))}
                               for r in recorded]) + "\n"
    assert TrialResult(**json.loads(text)[0]) == recorded[0]


def test_export_refuses_unknown_formats_and_columns_for_json(store):
    with pytest.raises(ValueError, match="^export: fmt 'xml' is not 'csv' or 'json'$"):
        store.export("xml", io.StringIO())
    with pytest.raises(ValueError, match="^export: columns are for fmt='csv' only$"):
        store.export("json", io.StringIO(), columns=["lr"])


def test_a_readonly_store_reads_and_refuses_writes(tmp_path):
    path = tmp_path / "sweep.db"
    with SweepStore.create(path, SPEC) as writer:
        writer.record([result(0)])
        with SweepStore.open(path, SPEC, readonly=True) as reader:
            writer.record([result(1)])  # seen by the reader's next query
            assert {r.index for r in reader.results()} == {0, 1}
            for write in (lambda: reader.record([result(2)]),
                          lambda: reader.mark_running([2], "node-1")):
                with pytest.raises(SweepStoreError, match=f"^{re.escape(str(path))}: "
                                                          "opened readonly$"):
                    write()
    with SweepStore.open(path, readonly=True) as reader:  # with no writer left
        assert reader.results() == [result(0), result(1)]


def test_a_reader_beside_the_writer_sees_whole_transactions(tmp_path):
    path = tmp_path / "sweep.db"
    writer = SweepStore.create(path, SPEC)
    batches, size = 60, 7
    seen, failures, reading = [], [], threading.Event()

    def read():
        try:
            with SweepStore.open(path, SPEC, readonly=True) as reader:
                while not seen or seen[-1] < batches * size:
                    indices = [r.index for r in reader.results()]
                    assert indices == list(range(len(indices)))
                    assert len(indices) % size == 0 and reader.count()["done"] >= len(indices)
                    seen.append(len(indices))
                    reading.set()
        except BaseException as error:  # noqa: BLE001 - handed to the main thread
            failures.append(error)
            reading.set()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    reading.wait(timeout=60)
    for b in range(batches):
        writer.mark_running(range(b * size, (b + 1) * size), "node-1")
        assert writer.record([result(i) for i in range(b * size, (b + 1) * size)]) == size
    thread.join(timeout=60)
    writer.close()
    assert not failures and not thread.is_alive()
    assert seen == sorted(seen) and len(set(seen)) > 2


CHILD = """
import sys
from fastnet.sweep.store import SweepStore, TrialResult
spec = {"seed": 1}
with SweepStore.create_or_open(sys.argv[1], spec) as store:
    i = max({r.index for r in store.results()}, default=-1) + 1
    while True:
        batch = range(i, i + 1 + i % 3)
        store.mark_running(batch, "child")
        store.record([TrialResult(j, 0, {"lr": 1 / (j + 7)}, j, "done", [1.0], [0.5], [0.6],
                                  [0.7], [j / 3], j / 3, 1 / (j + 1), 0.25, "child")
                      for j in batch])
        print(*batch, flush=True)
        i = batch[-1] + 1
"""


def run_child_and_kill(path, lines, rng):
    """Start a recording child, SIGKILL it after ``lines`` lines (0: at a random
    moment of its start), and return the indices it reported committed."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reported = []
    if lines == 0:
        time.sleep(rng.uniform(0.0, 0.5))
    for _ in range(lines):
        line = child.stdout.readline()
        assert line, child.stderr.read()
        reported += map(int, line.split())
    time.sleep(rng.uniform(0.0, 0.003))
    child.kill()  # SIGKILL
    out, _ = child.communicate()
    assert child.returncode == -9
    return reported + [int(i) for i in out.split()]


@pytest.mark.slow
def test_a_writer_killed_at_random_moments_loses_nothing_it_committed(tmp_path):
    path = tmp_path / "sweep.db"
    rng = random.Random(9)
    batch_ends, end = set(), 0  # after the child's batches [0], [1, 2], [3], [4, 5], ...
    while end < 10**5:
        batch_ends.add(end)
        end += 1 + end % 3
    committed, indices = [], []
    for lines in [0, rng.randint(5, 50), rng.randint(50, 300), rng.randint(1, 20),
                  rng.randint(100, 400)]:
        reported = run_child_and_kill(path, lines, rng)
        assert reported[:1] in ([], [len(indices)])  # went on where the last one stopped
        committed += reported
        if not path.exists():  # killed before create published the file
            assert committed == []  # and at most a temporary file (a dot file) is left
            assert [p for p in tmp_path.iterdir() if not p.name.startswith(".")] == []
            continue
        with sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            indices = [i for (i,) in conn.execute(
                "SELECT \"index\" FROM trials WHERE status = 'done' ORDER BY \"index\"")]
        conn.close()
        assert indices == list(range(len(indices)))  # each index once
        assert len(indices) in batch_ends  # whole transactions only
        assert set(committed) <= set(indices) and len(committed) == len(set(committed))
        with SweepStore.open(path, {"seed": 1}, readonly=True) as store:
            for r in store.results():
                assert (r.config, r.val_acc_final, r.val_loss_final) == (
                    {"lr": 1 / (r.index + 7)}, r.index / 3, 1 / (r.index + 1))
            running = [r.index for r in store.results("running")]
            assert running in ([], list(range(len(indices), len(indices) + len(running))))
    assert len(committed) > 150  # recording went on after every kill


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder this process cannot write into (root ignores the mode bits: there, the
    immutable attribute), which the test fills first."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        yield folder, lambda: folder.chmod(0o555)
        folder.chmod(0o755)
        return
    locked = []

    def lock():
        done = subprocess.run(["chattr", "+i", str(folder)], capture_output=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot make a folder read-only as root here: {done.stderr!r}")
        locked.append(folder)

    yield folder, lock
    for path in locked:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_finished_sweep_reads_from_a_folder_that_cannot_be_written(read_only_folder):
    """SQLite cannot make the WAL index beside a sweep there: 'unable to open database
    file' made show, export and plot call the sweep no fastnet sweep."""
    folder, lock = read_only_folder
    path = folder / "sweep.db"
    with SweepStore.create(path, SPEC) as store:
        store.record([result(i) for i in range(3)])
    lock()
    assert not os.access(folder, os.W_OK)
    with SweepStore.open(path, readonly=True) as store:
        assert store.spec == SPEC and [r.index for r in store.results()] == [0, 1, 2]
        assert store.results()[2] == result(2)
    assert sorted(p.name for p in folder.iterdir()) == ["sweep.db"]
