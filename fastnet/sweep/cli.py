"""``fastnet sweep``: run (or resume), show, plot and export hyperparameter sweeps.

    fastnet sweep run --db hpo.db --trials 100 --epochs 50 --train-size 400 \\
        --validation 100 --param lr=1e-6:1e-2:log --param weight_decay=1e-8:1e-4:log \\
        --param hidden=100x6
    fastnet sweep show --db hpo.db --top 20
    fastnet sweep plot --db hpo.db --out figures/
    fastnet sweep export --db hpo.db --format csv --out hpo.csv

Running ``run`` again with the same arguments on the same ``--db`` resumes the sweep;
other arguments on an existing ``--db`` are refused, and the file is left as it was.
"""
import argparse
import errno
import functools
import json
import os
import re
import shutil
import signal
import sqlite3
import sys
import threading
import time
import warnings
from pathlib import Path

from .store import SweepStore, SweepStoreError


class SweepCommandError(Exception):
    """A sweep command that cannot go on: one line for the user, and the exit
    ``status`` (128 + the signal for an interruption, as a shell reports it: 130 for
    Ctrl-C, 143 for SIGTERM; else 1)."""

    def __init__(self, message, status=1):
        super().__init__(message)
        self.status = status


def add_parser(commands):
    """Add ``sweep`` and its verbs to the ``fastnet`` command's subparsers."""
    sweep = commands.add_parser("sweep", help="hyperparameter sweeps: run, show, plot, export",
                                description=(__doc__ or "").split("\n\n")[0].strip(),  # -OO: None
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    verbs = sweep.add_subparsers(dest="verb", required=True, metavar="VERB")
    _add_run(verbs)
    show = verbs.add_parser("show", help="the best trials as a table")
    show.set_defaults(run=show_command)
    _add_db(show)
    show.add_argument("--top", type=_positive_int, default=10, metavar="N",
                      help="the N trials of highest final validation accuracy, finished "
                      "ones first (default 10)")
    plot = verbs.add_parser("plot", help="learning curves, score against each parameter, "
                            "parallel coordinates (PNG)")
    plot.set_defaults(run=plot_command)
    _add_db(plot)
    plot.add_argument("--out", type=Path, default=Path("."), metavar="DIR",
                      help="folder for the PNG files (default .)")
    plot.add_argument("--top", type=_positive_int, default=20, metavar="N",
                      help="learning curves of the best N trials (default 20)")
    export = verbs.add_parser("export", help="one row per trial, CSV or JSON")
    export.set_defaults(run=export_command)
    _add_db(export)
    export.add_argument("--format", choices=("csv", "json"), default="csv",
                        help="default csv (json: every field, the curves included)")
    export.add_argument("--out", type=Path, metavar="FILE",
                        help="default standard output; an existing file is replaced whole "
                        "(keeping its permissions) once the export is complete")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def _count_or_fraction(text):
    """An image count ('100') or a fraction below 1 ('0.2'); '1.0' is refused as
    ambiguous."""
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be a count (an integer >= 1) or a fraction in "
                                         f"(0, 1), got {text}")
    return value


def _add_db(parser, required=True):
    parser.add_argument("--db", type=Path, required=required, metavar="FILE",
                        help="the sweep's SQLite file")


def _add_run(verbs):
    from .run import SAMPLERS

    p = verbs.add_parser(
        "run", help="run a sweep, or resume it",
        description="Sample --trials configurations of the search space, train them on "
        "every core and record each in --db as it ends.  The same command again "
        "resumes.  --param NAME=LOW:HIGH[:linear|log|one-minus-log|int|log-int], "
        "NAME=A,B,C:choice or NAME=VALUE (repeatable); names are MultiLayerNetExtend's, "
        "the optimizers' and the trainer's (lr, momentum, beta1, beta2, decay_rate, "
        "weight_decay (L2 in the loss), decoupled_weight_decay (AdamW's), hidden (100x4 or "
        "100-50; or hidden_size and hidden_layers, searched apart), activation, weight_init_std, batchnorm, normalization (batch, layer, "
        "group, instance, weight, switchable or none), groups, dropout, dropout_ratio, "
        "optimizer (sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw), lr_schedule "
        "(step, exponential, inverse_time, cosine or none; per epoch) with step_size, gamma, "
        "lr_decay_rate, decay_steps, alpha, batch_size, epochs (at most a million)).  A "
        "range of an integer parameter draws integers.")
    p.set_defaults(run=run_command)
    _add_db(p)
    p.add_argument("--param", action="append", default=[], metavar="SPEC",
                   help="a searched parameter or a constant (repeatable)")
    p.add_argument("--trials", type=_positive_int, default=100, help="default 100")
    p.add_argument("--epochs", type=float, help="epochs per trial (default 20; or "
                   "--param epochs=...)")
    p.add_argument("--seed", type=int, default=0, help="the sweep's seed (default 0)")
    data = p.add_argument_group("data (held out of the dataset's training set)")
    data.add_argument("--dataset", default="mnist", help="mnist or fashion-mnist "
                      "(default mnist)")
    data.add_argument("--data-dir", metavar="DIR", type=existing_folder,
                      help="folder of the IDX files")
    data.add_argument("--train-size", type=int, metavar="N", help="training images "
                      "(default: all not validating)")
    data.add_argument("--validation", type=_count_or_fraction, default=0.2,
                      metavar="N|FRACTION", help="validation images (an integer), or a "
                      "fraction below 1 (default 0.2)")
    data.add_argument("--train-eval", type=int, metavar="N", help="training images "
                      "evaluated each epoch (default all)")
    search = p.add_argument_group("search")
    search.add_argument("--sampler", choices=SAMPLERS, default="random", help="default random")
    search.add_argument("--rounds", type=_positive_int,
                        help="coarse-to-fine rounds (default 3; only with --sampler "
                             "coarse-to-fine)")
    search.add_argument("--prune", choices=("none", "halving", "median"), default="none",
                        help="successive halving (--min-epochs, --reduction-factor) or the "
                        "median rule (a rung each epoch, after 5 trials; Python: "
                        "fastnet.sweep.pruners.MedianPruner) (default none)")
    search.add_argument("--min-epochs", type=float,
                        help="halving: the first rung, in epochs (fractions too; default 1)")
    search.add_argument("--reduction-factor", type=int,
                        help="halving: keep 1/this at each rung (default 3)")
    search.add_argument("--bracket-size", type=int, default=100,
                        help="trials pruned together (default 100)")
    run = p.add_argument_group("execution")
    run.add_argument("--executor", choices=("local", "dask"),
                     help="default: dask with --scheduler, else local")
    run.add_argument("--scheduler", metavar="ADDRESS", help="Dask scheduler (tcp://host:port; "
                     "implies --executor dask; without it, dask starts a local cluster)")
    run.add_argument("--workers", type=_positive_int, help="local worker processes (default: "
                     "one per core; at most one per trial)")
    run.add_argument("--threads-per-worker", type=_positive_int, help="Numba threads per "
                     "worker (default 1; one worker: every core); BLAS runs single-threaded "
                     "in each trial")
    run.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                     help="default float32")
    run.add_argument("--allow-code-change", action="store_true",
                     help="resume a sweep that another fastnet, NumPy, Numba or BLAS began "
                     "(refused by default: its new trials need not give the bits an "
                     "uninterrupted run gives)")


def _space(args):
    from .space import Space, parse_param

    params, spelled = {}, {}
    for text in args.param:
        name, value = parse_param(text)
        key = text.partition("=")[0]
        if name in spelled:
            also = "" if key == spelled[name] else f", as {spelled[name]!r} and {key!r}"
            raise ValueError(f"{key} is given twice{also} (--param {text!r})")
        params[key], spelled[name] = value, key
    if args.epochs is not None:
        if "epochs" in spelled:
            raise ValueError("give the epochs once: --epochs or --param epochs=...")
        params["epochs"] = args.epochs
    return Space(params)


def _reading(command):
    """``command`` (run, show, plot, export) with a stored configuration or curve that
    is not JSON said in one line naming the file."""
    @functools.wraps(command)
    def read(args):
        try:
            return command(args)
        except json.JSONDecodeError as err:
            raise _damaged(args.db, err) from err
    return read


def _damaged(db, err):
    return SweepCommandError(f"{db}: a damaged sweep file (a stored value is not JSON: "
                             f"{err})")


@_reading
def run_command(args):
    from ..datasets import DatasetNotFoundError
    from .data import data_spec
    from .pruners import MedianPruner, SuccessiveHalving
    from .run import SweepInterrupted, make_sampler, run

    try:
        space = _space(args)
        spec = data_spec(args.dataset, args.train_size, args.validation, args.train_eval,
                         args.seed)
        halving = {name: value for name, value in (("min_epochs", args.min_epochs), (
            "reduction_factor", args.reduction_factor)) if value is not None}
        if halving and args.prune != "halving":
            raise ValueError(f"{' and '.join(map(FLAGS.get, halving))} "
                             f"{'set' if len(halving) > 1 else 'sets'} successive halving's "
                             f"rungs: give --prune halving, or leave "
                             f"{'them' if len(halving) > 1 else 'it'} out")
        pruner = {"none": None, "halving": SuccessiveHalving(**halving),
                  "median": MedianPruner()}[args.prune]
        if args.rounds is not None and args.sampler != "coarse-to-fine":
            raise ValueError("--rounds sets coarse to fine's rounds: give --sampler "
                             "coarse-to-fine, or leave it out")
        rounds = {} if args.rounds is None else {"rounds": args.rounds}
        sampler = make_sampler(args.sampler, space, args.seed, args.trials, **rounds)
    except ValueError as err:
        raise SweepCommandError(_flag_names(err)) from err
    spec["data_dir"] = args.data_dir
    start = time.perf_counter()
    # kill: stop as Ctrl-C does, pool closed; the caller's handler back afterwards (only
    # the main thread may set one; None: a handler not set from Python)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            run(space, args.trials, spec, sampler=sampler, pruner=pruner, db=args.db,
                seed=args.seed, executor=args.executor, scheduler=args.scheduler,
                workers=args.workers, threads_per_worker=args.threads_per_worker,
                bracket_size=args.bracket_size, dtype=args.dtype, progress=None,
                allow_code_change=args.allow_code_change, return_results=False)
    except json.JSONDecodeError:  # a trial's stored configuration or curve: _reading's
        raise
    except (ValueError, SweepStoreError, SweepInterrupted) as err:
        flag = _flag_of_key(getattr(err, "key", None))
        raise SweepCommandError(_flag_names(err) + (f"; set by {flag}" if flag else "")) \
            from err
    except ConnectionError as err:  # the Dask scheduler's, not the file's
        raise SweepCommandError(str(err)) from err
    except DatasetNotFoundError:  # the data's, not the file's: the command says it
        raise
    except (OSError, sqlite3.Error) as err:
        raise SweepCommandError(f"{args.db}: {err}") from err
    except KeyboardInterrupt as stop:
        status = 128 + getattr(stop, "signum", signal.SIGINT)  # as a shell reports it
        if not Path(args.db).exists():
            raise SweepCommandError("interrupted before the sweep began: nothing was "
                                    "recorded", status) from None
        raise SweepCommandError(f"interrupted; what ended is recorded in {args.db}: run the "
                                "same command to resume", status) from None
    finally:
        if main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
    store = _open(args.db)  # the summary is read from the file, not held in memory
    try:
        counts = {status: n for status, n in sorted(store.count(end=args.trials).items())
                  if n and status != "running"}
        print(f"{sum(counts.values())} trials in {args.db} ("
              + ", ".join(f"{n} {status}" for status, n in counts.items())
              + f"); this run {time.perf_counter() - start:.1f} s")
        _print_summary(store, 10, _columns(space), end=args.trials)
    finally:
        store.close()
    if counts.keys() == {"failed"}:
        raise SweepCommandError(f"every trial of the sweep in {args.db} failed")
    return 0


# The Python names of run's options that the library's messages start with or spell as
# keywords (``trials=2``), as flags.
FLAGS = {name: "--" + name.replace("_", "-") for name in (
    "train_size", "train_eval", "validation", "min_epochs", "reduction_factor",
    "bracket_size", "rounds", "seed", "trials", "workers", "threads_per_worker",
    "executor", "scheduler")}
# a keyword starts the message or follows a space or "(" (not a path's "/trials=5/")
_KEYWORD = re.compile(r"(?<![^\s(])([a-z_]+)=('[^']*'|[^\s,;:)]+)")


def _flag_names(err):
    """``err``'s message with the Python names of ``FLAGS`` spelled as the command's
    flags: the name it starts with (``train_size must be ...``: ``--train-size must be
    ...``) and keywords (``trials=2 cannot fill rounds=3``: ``--trials 2 cannot fill
    --rounds 3``)."""
    message = str(err)
    name = message.split(" ", 1)[0]
    if name in FLAGS:
        message = FLAGS[name] + message[len(name):]
    return _KEYWORD.sub(lambda keyword: f"{FLAGS[keyword[1]]} {keyword[2].strip(chr(39))}"
                        if keyword[1] in FLAGS else keyword[0], message)


# The flags that set each entry of a sweep's spec, for a resume's spec mismatch; keys
# not here (the sampler's top_k and margin, the backend) are set from Python only.
SPEC_FLAGS = {"trials": "--trials", "seed": "--seed", "sampler": "--sampler",
              "sampler.seed": "--seed", "sampler.rounds": "--rounds",
              "sampler.trials": "--trials", "sampler.type": "--sampler",
              "sampler.base": "--sampler", "pruner": "--prune", "pruner.name": "--prune",
              "pruner.min_epochs": "--min-epochs",
              "pruner.reduction_factor": "--reduction-factor",
              "bracket_size": "--bracket-size", "dtype": "--dtype",
              "data.dataset": "--dataset", "data.train_size": "--train-size",
              "data.validation": "--validation", "data.train_eval": "--train-eval",
              "data.split_seed": "--seed",
              "data.arrays_sha256": "the files read (--data-dir, $FASTNET_DATA)",
              "space": "--param", "space.epochs": "--epochs or --param epochs"}


def _flag_of_key(key):
    """The flag that sets the spec entry ``key`` (``'space.lr'``: ``--param lr``), or
    None."""
    if key is None:
        return None
    if key in SPEC_FLAGS:
        return SPEC_FLAGS[key]
    if key.startswith("space."):
        return f"--param {key.split('.')[1]}"
    return None


def existing_folder(text):
    """``--data-dir``'s type: a folder that exists (a typo was searched past, and the
    dataset found elsewhere)."""
    path = os.path.expanduser(text)  # as the loader reads it: --data-dir=~/mnist
    if not os.path.isdir(path):
        raise argparse.ArgumentTypeError(
            f"{'not a folder' if os.path.exists(path) else 'no such folder'}: {text!r}")
    return text


class _Terminated(KeyboardInterrupt):
    """SIGTERM, stopping the run as Ctrl-C does; the command exits 128 + 15."""

    signum = signal.SIGTERM


def _interrupt(signum, frame):
    raise _Terminated


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A warning of a sweep command as one line for the user, without the source line."""
    print(f"fastnet sweep: warning: {_flag_names(message)}", file=sys.stderr)


def _open(path):
    """The sweep at ``path``, read-only, for show, plot and export."""
    try:
        store = SweepStore.open(path, readonly=True)
    except (SweepStoreError, FileNotFoundError) as err:
        raise SweepCommandError(str(err)) from err
    except (OSError, sqlite3.Error) as err:
        raise SweepCommandError(f"{path}: {err}") from err
    missing = {"space", "trials"} - store.spec.keys()
    if missing:
        store.close()
        raise SweepCommandError(f"{path}: not a sweep of fastnet sweep run (its spec lacks "
                                f"{', '.join(sorted(missing))})")
    return store




@_reading
def show_command(args):
    from .space import Space

    store = _open(args.db)
    try:
        print(_progress(store.count(), store.spec["trials"]))
        _print_summary(store, args.top, _columns(Space.from_json(store.spec["space"])))
    finally:
        store.close()
    return 0


def _print_summary(store, top, columns, end=None):
    """The table of the ``top`` best trials of ``store`` below ``end`` (None: every
    one), and the first failed trial's error where any failed (they have no score, so
    they are not in the table)."""
    ranked = store.top(top, end=end, done_first=True)
    if ranked:
        _print_table(ranked, columns)
    else:  # not a header over nothing
        print("no trial has a score to rank (only done and pruned trials have one)")
    failed = store.count(end=end)["failed"]
    if failed:
        first = store.results("failed", end=end, limit=1)[0]
        print(f"{failed} failed; the first, trial {first.index}: {first.error} "
              f"(every error: fastnet sweep export --format json)")


def _progress(counts, total):
    """``'7 of 10 trials recorded (5 done, 2 pruned), 1 running, 2 pending'``: the
    store's ``count()`` against the sweep's ``total``."""
    ended = {status: n for status, n in counts.items() if status != "running" and n}
    recorded = sum(ended.values())
    pending = max(total - recorded - counts["running"], 0)
    detail = ", ".join(f"{n} {status}" for status, n in ended.items())
    # "running": marked so by a run, which may have ended since (killed); the same run
    # command trains them again
    return (f"{recorded} of {total} trials recorded" + (f" ({detail})" if detail else "")
            + f", {counts['running']} running or interrupted, {pending} pending")


def _columns(space):
    """The configuration entries a table shows: the sampled parameters, and where the
    optimizer is sampled, the learning rate and AdamW's decay if the space does not set
    them (each trial has its optimizer's own)."""
    from .space import OPTIMIZER_DEFAULTS

    columns = list(space.dimensions)
    if "optimizer" in space.dimensions:
        used = {key for name in space.params["optimizer"].options
                for key in OPTIMIZER_DEFAULTS[name]}
        columns += sorted(used - set(space.params))
    return columns


def _print_table(ranked, columns):
    """``ranked`` trials (``SweepStore.top``) in a table: rank, trial, status, scores,
    epochs and the configuration's ``columns``."""
    # "epochs" is a parameter where the space samples it: the epochs reached are "trained"
    header = ["rank", "trial", "status", "val_acc", "val_loss",
              "trained" if "epochs" in columns else "epochs", *columns]
    rows = [[str(k), str(r.index), r.status, f"{r.score:.4f}", f"{r.val_loss_final:.4f}",
             _cell(float(r.epochs[-1])), *(_cell(r.config.get(d)) for d in columns)]
            for k, r in enumerate(ranked, 1)]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.rjust(w) for cell, w in zip(row, widths)))


def _cell(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "-".join(map(str, value))
    return str(value)


@_reading
def plot_command(args):
    from .report import plot_all

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise SweepCommandError(f"--out {args.out} is a file; plot writes its PNG files "
                                f"into a folder (made if missing)")
    store = _open(args.db)
    try:
        paths = plot_all(store, args.out, top=args.top)
    except json.JSONDecodeError:
        raise  # a damaged file: _reading
    except (OSError, ValueError) as err:  # an --out that is a file, an empty sweep, a bad --top
        raise SweepCommandError(str(err)) from err
    finally:
        store.close()
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def _same_file(out, db):
    """Whether writing ``out`` would replace the SQLite file ``db`` or one of its
    companions (the write-ahead log, the shared memory, the lock)."""
    out = os.path.realpath(out)
    return any(out == os.path.realpath(f"{db}{suffix}")
               for suffix in ("", "-wal", "-shm", "-journal", ".lock"))


def _export_to(store, fmt, columns, path):
    """Export into ``path``: a regular file (through a symbolic link, its target) is
    written beside and renamed over, so that it never holds half an export (a file
    replaced keeps its permission bits; its other hard links keep the old content);
    anything else (a pipe, a device), and whatever ``/dev/stdout`` or ``/proc/.../fd``
    names, is written directly, as given."""
    target = Path(os.path.realpath(path))
    if target.is_dir():
        raise IsADirectoryError(errno.EISDIR, "a folder, --out names a file")
    descriptor = str(Path(path).absolute()).startswith(("/dev/", "/proc/"))
    if os.path.exists(path) and (descriptor or not target.is_file()):
        # appending: reopening /dev/stdout truncates the file a shell's >> appends to
        with open(path, "a", newline="", encoding="utf-8") as out:
            store.export(fmt, out, columns)
        return
    partial = target.with_name(f".{target.name}.partial")
    try:
        with open(partial, "w", newline="", encoding="utf-8") as out:
            store.export(fmt, out, columns)
        if target.is_file():
            shutil.copymode(target, partial)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)


@_reading
def export_command(args):
    from .space import Space

    store = _open(args.db)
    try:
        # CSV: the sampled parameters (and lr where the optimizer is); JSON: every
        # field, curves included
        columns = _columns(Space.from_json(store.spec["space"]))
        columns = columns if args.format == "csv" else None
        if args.out is None:  # a closed pipe (`| head`): fastnet.cli.main
            store.export(args.format, sys.stdout, columns)
        else:
            if _same_file(args.out, args.db):
                raise SweepCommandError(f"--out {args.out} would replace the sweep file "
                                        f"{args.db} (or its log, shared memory or lock): "
                                        f"export to another file")
            try:
                _export_to(store, args.format, columns, args.out)
            except OSError as err:
                raise SweepCommandError(f"cannot write {args.out}: {err.strerror or err}") from err
    finally:
        store.close()
    return 0
