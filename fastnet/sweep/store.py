"""The store of a sweep: one SQLite file that holds its spec and every trial's result.

``SweepStore.create(path, spec)`` makes the file, ``SweepStore.open(path, spec)``
reopens it (resume), ``SweepStore.open(path, readonly=True)`` reads it while a sweep
writes (``fastnet sweep show/export``).  The coordinator of a sweep is its only writer.
Plain ``sqlite3``; nothing here imports NumPy, Numba or fastnet's kernels.

Schema (format ``'fastnet-sweep'``, version 1)::

    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        -- rows: format = 'fastnet-sweep', version = '1',
        --       spec = json.dumps(spec, sort_keys=True),
        --       code = json.dumps(code, sort_keys=True) (the code that began the sweep,
        --              kept as it is by resumes; absent in files of fastnet before it,
        --              and where none was given)
    CREATE TABLE trials (
        "index"        INTEGER PRIMARY KEY,  -- trial number
        round          INTEGER,              -- NULL while only marked running
        status         TEXT NOT NULL,        -- 'running', 'done', 'pruned', 'diverged', 'failed'
        config         TEXT NOT NULL,        -- JSON object, keys sorted ('{}' while running)
        seed           INTEGER,              -- NULL while only marked running
        epochs         TEXT NOT NULL,        -- JSON lists, one item per evaluation
        train_loss     TEXT NOT NULL,
        train_acc      TEXT NOT NULL,
        val_loss       TEXT NOT NULL,
        val_acc        TEXT NOT NULL,
        val_acc_final,                       -- floats: no declared type, as REAL would
        val_loss_final,                      --   turn -0.0 into 0; NULL for None, and
        wall_time      NOT NULL,             --   NaN as the text 'NaN'; seconds
        host           TEXT NOT NULL,
        attempts       INTEGER NOT NULL,     -- 1 + how often it was marked running again
        error          TEXT);

Floats go through ``repr`` (JSON) or SQLite's 8-byte REAL, so every value reads back
exactly as it was recorded, NaN, infinities and -0.0 included.

Durability: every ``record`` and ``mark_running`` is one transaction, so a crash
(``kill -9``) at any moment leaves the file intact, with every call that returned
present and none half done; the file is in WAL mode with ``synchronous=FULL``, so each
commit is on disk (fsync) before the call returns.  A new file is built under a
temporary name and linked into place complete, so ``path`` never holds a half-made
store.  Readers open with ``mode=ro`` and neither block the writer nor wait for it.
"""
import csv
import errno
import json
import math
import numbers
import os
import secrets
import sqlite3
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TextIO

FORMAT = "fastnet-sweep"
VERSION = 1
TERMINAL = ("done", "pruned", "diverged", "failed")
STATUSES = ("running",) + TERMINAL
SCORED = ("done", "pruned")  # the states whose trials have a score (TrialResult.score)
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE trials (
        "index" INTEGER PRIMARY KEY, round INTEGER, status TEXT NOT NULL,
        config TEXT NOT NULL, seed INTEGER, epochs TEXT NOT NULL,
        train_loss TEXT NOT NULL, train_acc TEXT NOT NULL, val_loss TEXT NOT NULL,
        val_acc TEXT NOT NULL, val_acc_final, val_loss_final,
        wall_time NOT NULL, host TEXT NOT NULL, attempts INTEGER NOT NULL,
        error TEXT)""",
)


class SweepStoreError(Exception):
    """A sweep file that cannot be used as asked; the message is one line naming it."""


class NotASweepError(SweepStoreError):
    """The file is not SQLite, or is SQLite without the meta table of a fastnet sweep."""


class SpecMismatchError(SweepStoreError):
    """The spec given to ``open`` is not the one the sweep was created with.  ``key`` is
    the dotted path of the first entry that differs (``'data.train_eval'``), or None."""

    def __init__(self, message, key=None):
        super().__init__(message)
        self.key = key


class CodeChangedError(SweepStoreError):
    """The code given to ``open`` is not the code that began the sweep (``code``)."""


@dataclass
class TrialResult:
    """One trial's outcome, as the coordinator records it.

    ``status`` is one of ``TERMINAL``; ``'running'`` exists only in the store, for a
    trial marked running and not yet recorded (then ``round`` and ``seed`` are None and
    the config and curves empty).  ``epochs`` lists the (possibly fractional) epoch of
    each evaluation, and ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc`` one
    value per evaluation.  Every field is JSON-able: ``dataclasses.asdict(result)`` is
    the JSON form and ``TrialResult(**obj)`` reads it back.
    """
    index: int
    round: int | None
    config: dict
    seed: int | None
    status: str
    epochs: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    val_acc_final: float | None = None
    val_loss_final: float | None = None
    wall_time: float = 0.0
    host: str = ""
    attempts: int = 1
    error: str | None = None

    @property
    def score(self):
        """The final validation accuracy; None for a diverged or failed trial."""
        return self.val_acc_final if self.status in SCORED else None


_FIELDS = tuple(f.name for f in fields(TrialResult))
_JSON_FIELDS = frozenset(("config", "epochs", "train_loss", "train_acc", "val_loss", "val_acc"))
_FLOAT_FIELDS = frozenset(("val_acc_final", "val_loss_final", "wall_time"))
_COLUMNS = ", ".join(f'"{name}"' for name in _FIELDS)
_INSERT = f"INSERT INTO trials ({_COLUMNS}) VALUES ({', '.join('?' * len(_FIELDS))})"
# A terminal row is final: re-recording it, or marking it running, changes nothing.
_RECORD = (_INSERT + ' ON CONFLICT ("index") DO UPDATE SET '
           + ", ".join(f'"{name}" = excluded."{name}"' for name in _FIELDS
                       if name not in ("index", "attempts"))
           + ", attempts = max(trials.attempts, excluded.attempts)"
           + " WHERE trials.status = 'running'")
_MARK_RUNNING = (_INSERT + ' ON CONFLICT ("index") DO UPDATE SET status = \'running\','
                 " host = excluded.host, attempts = trials.attempts + 1"
                 " WHERE trials.status = 'running'")


def _to_sql(name, value):
    if name in _JSON_FIELDS:
        return json.dumps(value, sort_keys=True)
    if name in _FLOAT_FIELDS and value is not None:
        return "NaN" if math.isnan(value) else float(value)  # SQLite stores NaN as NULL
    return value


def _from_sql(name, value):
    if name in _JSON_FIELDS:
        return json.loads(value)
    if name in _FLOAT_FIELDS and isinstance(value, str):
        return float(value)
    return value


def _row(result):
    return tuple(_to_sql(name, getattr(result, name)) for name in _FIELDS)


def _result(row):
    return TrialResult(*(_from_sql(name, value) for name, value in zip(_FIELDS, row)))


_SQLITE_MAX = 2**63 - 1  # SQLite's largest integer


def _index(value, name):
    """An int >= 0 for a query (a trial index, a bound or a count)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return min(int(value), _SQLITE_MAX)  # as far as SQLite counts: no trial lies past it


def _where(condition, start, end, args=()):
    """``condition`` and the index bounds ``[start, end)`` (end None: none), as a
    WHERE clause and its arguments."""
    where, args = f'({condition}) AND "index" >= ?', (*args, _index(start, "start"))
    if end is not None:
        where, args = where + ' AND "index" < ?', (*args, _index(end, "end"))
    return where, args


def _canonical(spec, what="spec"):
    """``spec`` as canonical JSON text (``TypeError`` unless a JSON-able dict)."""
    if not isinstance(spec, dict):
        raise TypeError(f"a sweep {what} is a dict, got {type(spec).__name__}")
    return json.dumps(spec, sort_keys=True)


def _values(obj):
    """A JSON value as compared: ``2`` and ``2.0`` alike (a sweep begun with ``--epochs
    2``, stored as 2.0 by earlier versions, resumes as ``--param epochs=2``), ``true``
    unlike ``1``."""
    if isinstance(obj, bool):
        return ("bool", obj)
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    if isinstance(obj, dict):
        return {key: _values(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_values(value) for value in obj]
    return obj


def _text(spec, key):
    return json.dumps(spec[key], sort_keys=True) if key in spec else "absent"


def _differing(stored, given):
    """The keys (sorted) where two JSON objects (dicts) differ, with each one's text."""
    return [(key, _text(stored, key), _text(given, key))
            for key in sorted(stored.keys() | given.keys())
            if key not in stored or key not in given
            or _values(stored[key]) != _values(given[key])]


def _spec_mismatch(path, stored, given):
    """The error naming the first key (sorted) where two different specs differ, down
    to the innermost object that holds the difference (``'sampler.seed'``).  An object's
    kind (``type``, ``name``) first, since it gives the other entries their meaning; a
    digest (``*_sha256``) last, since it differs with what it digests."""
    stored, given, path_of_key = json.loads(stored), json.loads(given), []
    while True:
        key, was, now = min(_differing(stored, given), key=lambda differing: (
            differing[0].endswith("_sha256"), differing[0] not in ("type", "name")))
        path_of_key.append(key)
        if not (isinstance(stored.get(key), dict) and isinstance(given.get(key), dict)):
            break
        stored, given = stored[key], given[key]
    key = ".".join(path_of_key)
    hint = ("; a sweep's trial count is part of it: more trials need a new file"
            if key == "trials" else "")
    return SpecMismatchError(f"{path}: the spec differs from the sweep's at key {key!r}: "
                             f"stored {was}, given {now}{hint}", key)


def _code_changed(path, stored, given):
    """The error naming every key where the code that began a sweep and the code given
    (``open``'s ``code``; both dicts) differ."""
    changes = "; ".join(f"{key} {was} -> {now}" for key, was, now in _differing(stored, given))
    return CodeChangedError(
        f"{path}: the sweep was begun by other code than this ({changes}): trials run now "
        f"need not give the bits an uninterrupted run gives; finish it with the code that "
        f"began it, or resume anyway (allow_code_change=True, --allow-code-change)")


def _connect(path, mode, immutable=False):
    """A connection to ``path`` opened with the URI ``mode`` ('ro', 'rw'), and
    ``immutable=1`` when asked (SQLite then neither locks nor reads the WAL)."""
    uri = f"{Path(path).absolute().as_uri()}?mode={mode}{'&immutable=1' * immutable}"
    conn = sqlite3.connect(uri, uri=True)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def _reader(path):
    """A read-only connection to ``path``.  Reading a WAL file takes its shared-memory
    index beside it (``<path>-shm``), which SQLite cannot make in a folder this process
    may not write: there, the file is opened immutable, which reads what the last
    checkpoint wrote into it (all of a finished sweep; a writer that could write there
    would have made the index)."""
    conn = _connect(path, "ro")
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as error:  # "unable to open database file" is the index
        if (not isinstance(error, sqlite3.OperationalError)
                or os.access(os.path.dirname(os.path.abspath(path)), os.W_OK)):
            return conn  # another cause ("file is not a database"...), which _check names
        conn.close()
        return _connect(path, "ro", immutable=True)
    return conn


def _check(conn, path, spec, code=None):
    """The stored spec (canonical JSON) after checking that ``conn`` holds a fastnet
    sweep of this version and, when given, the spec ``spec`` and the code ``code``
    (where the file records one); reads only."""
    try:
        tables = {name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        meta = dict(conn.execute("SELECT key, value FROM meta")) if "meta" in tables else {}
    except sqlite3.DatabaseError as error:  # "file is not a database", a foreign meta
        raise NotASweepError(f"{path}: not a fastnet sweep ({error})") from None
    if meta.get("format") != FORMAT or "trials" not in tables:
        raise NotASweepError(f"{path}: not a fastnet sweep (an SQLite database without "
                             f"the meta table of format {FORMAT!r} and the trials table)")
    if meta.get("version") != str(VERSION):
        raise SweepStoreError(f"{path}: sweep format version {meta.get('version')}, but this "
                              f"fastnet reads version {VERSION}; a newer fastnet wrote it")
    try:
        stored = json.loads(meta["spec"]) if "spec" in meta else None
    except (ValueError, TypeError):  # not JSON, or not text at all
        stored = None
    if not isinstance(stored, dict):
        raise NotASweepError(f"{path}: a damaged fastnet sweep (its spec is missing or not "
                             f"a JSON object)")
    given = meta["spec"] if spec is None else _canonical(spec)
    if _values(json.loads(given)) != _values(stored):
        raise _spec_mismatch(path, meta["spec"], given)
    if code is not None and "code" in meta:
        stored, given = _stored_code(path, meta["code"]), json.loads(_canonical(code, "code"))
        if stored != given:
            raise _code_changed(path, stored, given)
    return meta["spec"]


def _stored_code(path, text):
    """The code record of a sweep file, a dict; ``SweepStoreError`` for anything else."""
    try:
        code = json.loads(text)
    except ValueError:
        code = None
    if not isinstance(code, dict):
        raise SweepStoreError(f"{path}: the meta table's code record is not a JSON object "
                              f"(got {text[:60]!r}): the file was changed by hand or damaged")
    return code


def _publish(tmp, path):
    """Give the complete file ``tmp`` the name ``path``, refusing an existing one."""
    exists = FileExistsError(errno.EEXIST, "refusing to overwrite an existing file", path)
    try:
        os.link(tmp, path)  # fails if path exists, with no window between check and write
    except FileExistsError:
        raise exists from None
    except OSError:  # a file system without hard links: check, then rename
        if os.path.exists(path):
            raise exists from None
        os.replace(tmp, path)


class SweepStore:
    """A sweep's SQLite file (schema and durability: see the module doc).

    Make one with ``create``, ``open`` or ``create_or_open``; ``close`` it (or use it as
    a context manager).  ``spec`` is the sweep's spec as stored (canonical JSON read
    back: tuples are lists).  Writes on a store opened ``readonly`` raise
    ``SweepStoreError``.
    """

    def __init__(self, conn, path, spec_json, readonly):
        self._conn = conn
        self.path = path
        self.spec = json.loads(spec_json)
        self.readonly = readonly

    @classmethod
    def create(cls, path, spec: dict, code: dict | None = None) -> "SweepStore":
        """A new, empty sweep at ``path`` with the spec ``spec`` (a JSON-able dict) and,
        when given, ``code``: what trains its trials (a JSON-able dict, such as
        ``fastnet.sweep.code_identity()``), which ``open`` can check on resume.

        Raises ``FileExistsError`` if ``path`` exists (it is left as it was) and
        ``TypeError`` for a spec or code that is not a JSON-able dict.
        """
        path = os.fspath(path)
        spec_json = _canonical(spec)
        meta = [("format", FORMAT), ("version", str(VERSION)), ("spec", spec_json)]
        if code is not None:
            meta.append(("code", _canonical(code, "code")))
        tmp = os.path.join(os.path.dirname(path) or ".",
                           f".{os.path.basename(path)}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
        open(tmp, "xb").close()  # "x": never reuse a file someone else made
        try:
            conn = _connect(tmp, "rw")
            try:
                conn.execute("PRAGMA journal_mode = WAL")  # stored in the file
                conn.execute("PRAGMA synchronous = FULL")
                with conn:
                    for statement in _SCHEMA:
                        conn.execute(statement)
                    conn.executemany("INSERT INTO meta VALUES (?, ?)", meta)
            finally:
                conn.close()  # checkpoints: the file alone holds everything
            _publish(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return cls.open(path)

    @classmethod
    def open(cls, path, spec: dict | None = None, readonly=False,
             code: dict | None = None) -> "SweepStore":
        """The existing sweep at ``path``; ``readonly`` for a reader beside the writer.

        Raises ``FileNotFoundError`` for a missing ``path`` (no file is created),
        ``NotASweepError`` for a file that is not a fastnet sweep,
        ``SweepStoreError`` for a newer format version, ``SpecMismatchError``
        when ``spec`` is given and differs from the stored one (compared as canonical
        JSON; the message names the first differing top-level key), and
        ``CodeChangedError`` when ``code`` is given and differs from the code the file
        records (a file that records none is not checked; the message names every
        differing key).  A refused open writes nothing to the file.
        """
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "no such sweep file", path)
        if os.path.isdir(path):
            raise NotASweepError(f"{path} is a directory, not a fastnet sweep file")
        conn = _reader(path) if readonly else _connect(path, "rw")
        try:
            spec_json = _check(conn, path, spec, code)
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")  # in case a tool turned it off
                conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        return cls(conn, path, spec_json, readonly)

    @classmethod
    def create_or_open(cls, path, spec, code=None, allow_code_change=False) -> "SweepStore":
        """Resume: ``open(path, spec, code=code)`` if ``path`` exists (the code not
        checked with ``allow_code_change``), else ``create(path, spec, code)``."""
        if not os.path.exists(path):
            try:
                return cls.create(path, spec, code)
            except FileExistsError:  # made meanwhile
                pass
        return cls.open(path, spec, code=None if allow_code_change else code)

    @property
    def code(self):
        """The code that began the sweep, as ``create`` recorded it; None if not recorded.
        ``SweepStoreError`` for a record that is not a JSON object."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'code'").fetchone()
        return _stored_code(self.path, row[0]) if row else None

    def mark_running(self, indices, host) -> None:
        """Mark trials ``indices`` running on ``host``, in one transaction.

        A new trial gets ``attempts`` 1, one already running ``attempts + 1``
        (a retry); a trial in a terminal state is left as it is.
        """
        rows = [_row(TrialResult(index, None, {}, None, "running", host=host))
                for index in indices]
        with self._writing():
            self._conn.executemany(_MARK_RUNNING, rows)

    def record(self, results: list[TrialResult]) -> int:
        """Store terminal ``results`` in one transaction; return how many were new.

        A trial already terminal (recorded before, or earlier in ``results``) is not
        written again.  ``attempts`` becomes the larger of the result's and the store's
        count.  Raises ``ValueError`` for a non-terminal status and ``TypeError`` for a
        value that is not JSON-able; then nothing of ``results`` is written.
        """
        rows = []
        for result in results:
            if result.status not in TERMINAL:
                raise ValueError(f"trial {result.index}: status {result.status!r} is not "
                                 f"one of {', '.join(TERMINAL)}")
            rows.append(_row(result))
        with self._writing():
            return self._conn.executemany(_RECORD, rows).rowcount

    def results(self, status=None, start=0, end=None, limit=None) -> list[TrialResult]:
        """Every terminal trial with an index in ``[start, end)`` (``end`` None: no
        bound), ordered by index; with ``status`` (a name of ``STATUSES``, 'running'
        included) only the trials in that state; with ``limit``, the first ``limit``.
        ``ValueError`` for an unknown status, ``TypeError`` for a bound or limit that is
        not an int."""
        return list(self._results(status, start, end, limit))

    def history(self, end) -> list[tuple]:
        """``(index, config, score)`` of each terminal trial below ``end``, ordered by
        index: what a sampler reads (``fastnet.sweep.samplers``), without the curves."""
        where, args = _where("status != 'running'", 0, end)
        rows = self._conn.execute('SELECT "index", config, status, val_acc_final FROM '
                                  f'trials WHERE {where} ORDER BY "index"', args)
        return [(index, json.loads(config), _from_sql("val_acc_final", score)
                 if status in SCORED else None) for index, config, status, score in rows]

    def top(self, n, end=None, done_first=False) -> list[TrialResult]:
        """The ``n`` trials below ``end`` (None: every one) with the highest scores
        (``TrialResult.score``; NaN left out), ties the lower index first; with
        ``done_first``, every done trial before the pruned ones (a pruned trial's score
        is from an earlier epoch)."""
        where, args = _where(f"status IN {SCORED} AND typeof(val_acc_final) != 'text' "
                             "AND val_acc_final IS NOT NULL", 0, end)
        order = "status != 'done', " if done_first else ""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM trials WHERE {where} "
            f'ORDER BY {order}val_acc_final DESC, "index" LIMIT ?', (*args, _index(n, "n")))
        return [_result(row) for row in rows]

    def count(self, end=None) -> dict[str, int]:
        """How many trials (below ``end``, None: every one) are in each state: every
        name of ``STATUSES``, 0 included."""
        counts = dict.fromkeys(STATUSES, 0)
        where, args = _where("1", 0, end)
        counts.update(self._conn.execute(
            f"SELECT status, count(*) FROM trials WHERE {where} GROUP BY status", args))
        return counts

    def export(self, fmt: str, out: TextIO, columns: list[str] | None = None) -> None:
        """Write the terminal trials to the text stream ``out``, ordered by index.

        ``fmt='csv'``: header ``index,round,status,<columns>,val_acc,val_loss`` (the
        last two are the final validation accuracy and loss), lines ending in ``\\n``.
        ``columns`` are the config keys to write (default: every key of any exported
        config, sorted); strings are written as they are, None and a missing key as an
        empty cell, other values as JSON (floats as ``repr``, so they read back exactly).
        ``fmt='json'``: a list of objects with every ``TrialResult`` field (curves
        included); ``columns`` must then be None.  Raises ``ValueError`` otherwise.
        """
        if fmt == "json":
            if columns is not None:
                raise ValueError("export: columns are for fmt='csv' only")
            # a trial at a time: a sweep of millions of trials is not held in memory
            out.write("[")
            out.writelines((", " if k else "") + json.dumps(asdict(result))
                           for k, result in enumerate(self._results()))
            out.write("]\n")
        elif fmt == "csv":
            if columns is None:
                columns = sorted({key for (config,) in self._conn.execute(
                    "SELECT config FROM trials WHERE status != 'running'")
                    for key in json.loads(config)})
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(["index", "round", "status", *columns, "val_acc", "val_loss"])
            for r in self._results():
                values = [r.config.get(key) for key in columns]
                writer.writerow([r.index, r.round, r.status, *map(_cell, values),
                                 _cell(r.val_acc_final), _cell(r.val_loss_final)])
        else:
            raise ValueError(f"export: fmt {fmt!r} is not 'csv' or 'json'")

    def close(self):
        """Close the file (a writer's close folds the WAL into it); idempotent."""
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def _results(self, status=None, start=0, end=None, limit=None):
        """``results``, read a trial at a time."""
        if status is None:
            where, args = "status != 'running'", ()
        elif status in STATUSES:
            where, args = "status = ?", (status,)
        else:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        where, args = _where(where, start, end, args)
        limit = -1 if limit is None else _index(limit, "limit")  # SQLite's "no limit"
        rows = self._conn.execute(
            f'SELECT {_COLUMNS} FROM trials WHERE {where} ORDER BY "index" LIMIT ?',
            (*args, limit))
        return map(_result, rows)

    def _writing(self):
        """The write transaction (``with conn:``); refused for a readonly store."""
        if self.readonly:
            raise SweepStoreError(f"{self.path}: opened readonly")
        return self._conn


def _cell(value):
    """A CSV cell: a string as it is, None empty, anything else its JSON."""
    if isinstance(value, str):
        return value
    return "" if value is None else json.dumps(value, sort_keys=True)
