"""The ``fastnet`` command: train a net, run the chapter-6 experiments, benchmark.

    fastnet train --hidden 100,100 --optimizer adam --epochs 5 --save net.npz
    fastnet train --normalization group --groups 4 --save group.npz
    fastnet train --load net.npz --epochs 0          # evaluate a saved net
    fastnet experiment all --dataset fashion-mnist --out results
    fastnet bench ...                                # see fastnet bench --help
    fastnet cache build                              # compile every kernel ahead of time
    fastnet sweep run --db s.db --param lr=1e-4:1e-1:log   # see fastnet sweep --help

``--save`` and ``--load`` read and write nets with ``fastnet.io.save_net`` and
``load_net``; the file format (an ``.npz`` archive, no pickle) is documented there.

An error is one line on stderr, exit status 1 (130 for Ctrl-C); with the environment
variable ``FASTNET_DEBUG`` set, an error raised by the library (not the command's own
checks) keeps its traceback.
"""
import argparse
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import __version__, _book, _files, datasets
from .datasets import LOADERS, load_dataset
from .experiments import EXPERIMENTS
from .experiments.shared import (
    BACKENDS,
    Context,
    get_backend,
    run_experiment,
)
from .io import load_net, save_net
from .sweep.cli import SweepCommandError, existing_folder
from .sweep.cli import add_parser as add_sweep_parser

ACTIVATIONS = tuple(_book.ACTIVATION_LAYERS)
INIT_NAMES = _book.HE_NAMES + _book.XAVIER_NAMES
OPTIMIZERS = tuple(_book.OPTIMIZER_CLASSES)
NORMALIZATIONS = _book.NORMALIZATIONS
DEFAULT_HIDDEN = [100, 100, 100, 100]
# Flags that fix the architecture: with --load they default to the file's values.
# --batchnorm before --normalization, which it sets: a mismatch names the flag given.
ARCHITECTURE = {"hidden": "hidden_size_list", "activation": "activation",
                "batchnorm": "use_batchnorm", "normalization": "normalization",
                "groups": "groups", "dropout": "dropout_ratio"}


class CommandError(Exception):
    """A failure to report in one line, without a traceback (exit status 1)."""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["bench"]:  # bench parses its own arguments
        from .bench import main as bench_main
        return bench_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        status = args.run(args)
        sys.stdout.flush()  # a closed pipe shows here, not at exit
        return status
    # ValueError: the library's word on bad input (a corrupt dataset file, a batch too
    # small for switchable norm...), in one line as the command's own errors
    except (CommandError, SweepCommandError, datasets.DatasetNotFoundError,
            ValueError) as err:
        if os.environ.get("FASTNET_DEBUG") and not isinstance(err, CommandError):
            raise  # the traceback, for a bug report
        message = str(err)
        if isinstance(err, datasets.DatasetNotFoundError):  # the library's advice, as flags
            message = message.replace("pass data_dir=<folder>", "pass --data-dir <folder>")
        print(f"fastnet {args.command}: error: {message}", file=sys.stderr)
        return getattr(err, "status", 1)
    except MemoryError as err:
        if os.environ.get("FASTNET_DEBUG"):
            raise
        print(f"fastnet {args.command}: error: out of memory ({str(err) or 'no detail'}); "
              f"smaller sizes or fewer images", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"fastnet {args.command}: interrupted", file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports it
    except BrokenPipeError:
        if not _stdout_closed():  # another pipe or socket broke: not the reader's choice
            raise
        _stdout_to_devnull()  # `| head` stopped reading: it has what it wanted
        return 1
    except OSError as err:  # a file the command writes or reads, or stdout itself
        if os.environ.get("FASTNET_DEBUG"):
            raise
        what = str(err)
        try:
            sys.stdout.flush()
        except OSError:  # stdout cannot take what it holds (a full disk): not at exit either
            _stdout_to_devnull()
            what = f"cannot write standard output: {err.strerror or err}"
        print(f"fastnet {args.command}: error: {what}", file=sys.stderr)
        return 1


def _stdout_closed():
    """Whether stdout is a pipe whose reader has gone (poll reports an error on it)."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), no descriptor
        return False


def _stdout_to_devnull():
    """Send what stdout still holds, and will be given, nowhere: for a pipe whose reader
    is gone, instead of a traceback at exit (Python's signal module documentation,
    "Note on SIGPIPE")."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _check_writable(path, flag, folder=False):
    """CommandError unless ``path``, given by ``flag``, can be written (see
    ``_files.unwritable``): checked before a long run, whose result would otherwise be
    lost at its end."""
    problem = _files.unwritable(path, flag, folder=folder)
    if problem:
        raise CommandError(problem)


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastnet", description="Fast training of the nets of 'Deep Learning from "
        "Scratch', chapter 6.")
    parser.add_argument("--version", action="version", version=f"fastnet {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_train_parser(commands)
    _add_experiment_parser(commands)
    _add_cache_parser(commands)
    add_sweep_parser(commands)
    commands.add_parser("bench", add_help=False, help="benchmarks of the kernels against "
                        "the NumPy reference (fastnet bench --help)")
    return parser


def _add_data_arguments(parser):
    parser.add_argument("--backend", choices=list(BACKENDS), default="fastnet",
                        help="fastnet's kernels or the plain NumPy reference (default fastnet)")
    parser.add_argument("--dataset", choices=list(LOADERS), default="mnist",
                        help="default mnist")
    parser.add_argument("--data-dir", metavar="DIR", type=existing_folder,
                        help="folder holding the four IDX files (default: searched, "
                        "see fastnet.datasets)")
    parser.add_argument("--seed", type=_count(0), default=0, help="default 0")


def _add_train_parser(commands):
    p = commands.add_parser("train", help="train one fully connected net",
                            description="Train one fully connected net and report the "
                            "train/test accuracy per epoch: the line 'epoch k' is measured "
                            "after the last step of epoch k (an epoch is train-size / "
                            "batch-size steps, at least 1; the run is int(epochs x that) "
                            "steps, as the book's Trainer counts them, so the last epoch "
                            "may be cut short), and 'final' after the last step.")
    p.set_defaults(run=train)
    net = p.add_argument_group("network (with --load: taken from the file)")
    net.add_argument("--hidden", type=_sizes, action="append", metavar="N[,N...]",
                     help="hidden layer sizes, comma-separated or repeated "
                     f"(default {','.join(map(str, DEFAULT_HIDDEN))})")
    net.add_argument("--activation", type=str.lower, choices=ACTIVATIONS, help="default relu")
    net.add_argument("--init", type=_init, default="relu", metavar="relu|he|sigmoid|xavier|STD",
                     help="weight init: He, Xavier or a std (default relu = He; "
                     "ignored with --load)")
    net.add_argument("--normalization", type=str.lower, choices=NORMALIZATIONS,
                     help="after each hidden Affine: batch, layer, group, instance or "
                     "switchable norm; weight: weight norm of every Affine (default none)")
    net.add_argument("--groups", type=_count(1), metavar="N",
                     help="group norm's groups, instance norm's channels; must divide every "
                     "hidden size (default 2)")
    net.add_argument("--batchnorm", action="store_true", default=None,
                     help="the book's name for --normalization batch")
    net.add_argument("--dropout", type=_dropout_ratio, metavar="RATIO",
                     help="dropout after each hidden activation")
    net.add_argument("--dtype", choices=("float32", "float64"), help="default float32, or "
                     "the file's with --load")
    fit = p.add_argument_group("training")
    fit.add_argument("--optimizer", type=str.lower, choices=OPTIMIZERS, default="sgd",
                     help="default sgd (any case: Adam, adam)")
    fit.add_argument("--lr", type=_positive, help="learning rate (default: the optimizer's)")
    fit.add_argument("--momentum", type=_fraction,
                     help="momentum of momentum/nesterov (default 0.9)")
    fit.add_argument("--weight-decay", type=_nonnegative, default=0.0, metavar="LAMBDA",
                     help="L2 weight decay, in the loss (default 0; with adamw, leave it "
                     "at 0 and use --decoupled-weight-decay)")
    fit.add_argument("--decoupled-weight-decay", type=_nonnegative, metavar="LAMBDA",
                     help="adamw's decoupled weight decay (default 0.01)")
    fit.add_argument("--epochs", type=_count(0), default=20, help="default 20; 0 only "
                     "evaluates")
    fit.add_argument("--batch-size", type=_count(1), default=100, help="default 100")
    data = p.add_argument_group("data")
    _add_data_arguments(data)
    data.add_argument("--train-size", type=_count(1), metavar="N",
                      help="train on the first N training images only")
    data.add_argument("--test-size", type=_count(1), metavar="N",
                      help="test on the first N test images only")
    files = p.add_argument_group("files")
    files.add_argument("--save", metavar="PATH.npz",  # as typed: a trailing / is a folder
                       help="save the trained net (never overwrites without --force)")
    files.add_argument("--load", type=Path, metavar="PATH.npz",
                       help="start from a net saved with --save")
    files.add_argument("--force", action="store_true", help="let --save overwrite")


def _add_experiment_parser(commands):
    p = commands.add_parser("experiment", help="run the book's chapter-6 experiments",
                            description="Run an experiment of chapter 6; each prints its "
                            "numbers and writes a PNG figure and its curves (CSV/JSON).")
    p.set_defaults(run=experiment)
    p.add_argument("name", choices=[*EXPERIMENTS, "all"], metavar="NAME",
                   help=f"one of {', '.join(EXPERIMENTS)}, or all")
    p.add_argument("--out", type=Path, default=Path("fastnet-out"), metavar="DIR",
                   help="where figures and curves go (default ./fastnet-out)")
    p.add_argument("--quick", action="store_true",
                   help="scaled-down settings (fewer iterations, epochs and trials)")
    _add_data_arguments(p)


def _add_cache_parser(commands):
    p = commands.add_parser(
        "cache", help="the JIT cache: build it ahead of time, show it, clear it",
        description="Kernels compile on first use and are cached on disk. 'build' "
        "compiles every kernel in both dtypes ahead of time (a Docker image, a "
        "cluster's workers); 'info' shows where the cache is; 'clear' empties it.")
    p.set_defaults(run=cache_command)
    p.add_argument("action", choices=["build", "info", "clear"])
    p.add_argument("--dtype", choices=["float32", "float64"], action="append",
                   help="with build: only this dtype (repeatable; default both)")


# --- argument types: each raises ArgumentTypeError, so argparse exits with status 2

def _number(text, kind=float):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
    if kind is float and not np.isfinite(value):  # an int is finite, however large
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _real(check, requirement):
    """An argument type: a float for which ``check`` holds."""
    def parse(text):
        value = _number(text)
        if not check(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value
    return parse


_positive = _real(lambda v: v > 0, "> 0")
_nonnegative = _real(lambda v: v >= 0, ">= 0")
_fraction = _real(lambda v: 0 <= v < 1, "in [0, 1)")
_dropout_ratio = _real(lambda v: 0 < v < 1, "in (0, 1)")


def _count(low):
    def count(text):
        value = _number(text, int)
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {text}")
        return value
    return count


def _sizes(text):
    return [_count(1)(size) for size in text.split(",")]


def _init(text):
    if text.lower() in INIT_NAMES:
        return text.lower()
    try:
        return _positive(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be {', '.join(INIT_NAMES)} or a std > 0, "
                                         f"got {text!r}") from None


# --- fastnet train

def train(args):
    if args.save is not None:
        _check_writable(args.save, "--save")
    if args.save is not None and os.path.lexists(args.save) and not args.force:  # a link too
        raise CommandError(f"{args.save} exists; pass --force to overwrite it")
    if args.momentum is not None and args.optimizer not in ("momentum", "nesterov"):
        raise CommandError(f"--momentum applies to momentum and nesterov, not {args.optimizer}")
    if args.decoupled_weight_decay is not None and args.optimizer != "adamw":
        raise CommandError(f"--decoupled-weight-decay applies to adamw, not {args.optimizer}")
    if args.optimizer == "adamw" and args.weight_decay:
        print("fastnet train: warning: --weight-decay with adamw adds the book's L2 term to "
              "the gradients, through Adam's moments, besides adamw's own decay "
              "(--decoupled-weight-decay, default 0.01): both apply", file=sys.stderr)
    _check_normalization(args)
    backend = get_backend(args.backend)
    # the net (a file to --load, sizes and --groups checked) before the data, which may
    # take a download
    network = (load_network(args.load, backend, args) if args.load
               else new_network(backend, args))
    (x_train, t_train), (x_test, t_test), description = load_dataset(args.dataset,
                                                                    args.data_dir)
    x_train, t_train = _first(x_train, t_train, args.train_size, "--train-size", "training")
    x_test, t_test = _first(x_test, t_test, args.test_size, "--test-size", "test")
    norm = getattr(network, "normalization", None)  # the file's, with --load
    if norm in ("batch", "switchable") and min(args.batch_size, len(x_train)) < 2:
        raise CommandError(f"{norm} norm needs mini-batches of at least 2 images (one "
                           f"image normalizes every unit to 0): raise "
                           f"{'--batch-size' if args.batch_size < 2 else '--train-size'}")
    if network.input_size != x_train.shape[1] or network.output_size != 10:
        raise CommandError(f"the net maps {network.input_size} inputs to "
                           f"{network.output_size} classes; {args.dataset} has "
                           f"{x_train.shape[1]} pixels and 10 classes")
    optimizer_param = {k: v for k, v in (("lr", args.lr), ("momentum", args.momentum),
                                         ("weight_decay", args.decoupled_weight_decay))
                       if v is not None}
    trainer = _epoch_end_trainer(backend.trainer.Trainer)(
        network, x_train, t_train, x_test, t_test, epochs=args.epochs,
        mini_batch_size=args.batch_size, optimizer=args.optimizer,
        optimizer_param=optimizer_param, verbose=False, seed=args.seed)
    say = _Output(args.save)
    say(f"data: {description}; using {len(x_train):,} train / {len(x_test):,} test\n"
        f"net: {_describe(network)}; {args.optimizer} {optimizer_param or '(defaults)'}, "
        f"{args.epochs} epochs of batch {_batch(args.batch_size, len(x_train))}; "
        f"backend {backend.name}")

    start = time.perf_counter()
    _fit(trainer, say)
    if not all(np.isfinite(p).all() for p in network.params.values()):  # the last update's
        raise CommandError("training diverged: the parameters are not finite after the "
                           "last step; try a smaller --lr or --init (nothing was saved)")
    say(f"final: train acc {network.accuracy(x_train, t_train):.4f}, test acc "
        f"{network.accuracy(x_test, t_test):.4f} ({time.perf_counter() - start:.1f} s)")
    if args.save is not None:
        save_network(network, args.save, args.force)
        say(f"saved to {args.save}")
    if say.failed:
        raise CommandError(f"{say.failed}; the net was saved to {args.save}")
    return 0


def _batch(batch_size, train_size):
    """The mini-batch size a step takes, said as the header says it."""
    if batch_size <= train_size:
        return f"{batch_size}"
    return f"{train_size} (all the training images; --batch-size {batch_size})"


class _Output:
    """Lines to stdout, flushed.  Where stdout's reader is gone (``| head``) or stdout
    cannot be written (a full disk) and the run has a net to ``save``, the run goes on
    quietly to save it (said once on stderr; a full stdout then fails the command once
    saved); without one, the command ends as it ends for any other error."""

    def __init__(self, save):
        self.save = save
        self.failed = None  # why stdout could not be written (not a closed pipe)

    def __call__(self, text):
        try:
            print(text, flush=True)
        except OSError as err:
            if isinstance(err, BrokenPipeError):
                if not self.save:
                    raise
                why = "stdout was closed"
            else:  # a full disk: the user's log is cut short, which the status says
                self.failed = why = f"cannot write standard output ({err.strerror or err})"
                if not self.save:
                    _stdout_to_devnull()
                    raise CommandError(why) from None
            _stdout_to_devnull()
            print(f"fastnet train: {why}; training on to save {self.save}", file=sys.stderr)
            self.save = None  # said once; stdout goes nowhere from now on


def cache_command(args):
    from . import cache
    if args.dtype and args.action != "build":
        raise CommandError("--dtype goes with build only")
    if args.action == "build":
        try:
            seconds = cache.build(args.dtype or cache.DTYPES)
        except RuntimeError as err:
            raise CommandError(str(err)) from None
        print(f"compiled or loaded every kernel in {seconds:.1f} s")
    elif args.action == "clear":
        cache.clear()
    state = cache.info()
    if not state["jit"]:
        print("no cache: NUMBA_DISABLE_JIT=1 runs the kernels as Python, uncompiled")
    elif state["folder"] is None:
        print("no cache: kernels compile in every process (set NUMBA_CACHE_DIR to a "
              "writable folder)")
    else:
        print(f"cache: {state['folder']}\n{state['files']} files, "
              f"{state['bytes'] / 2**20:.1f} MiB, "
              f"{'current' if state['current'] else 'empty or of another version'}")
    return 0


def _describe(network):
    """Like ``784-100-100-10 relu, group norm (4 groups), dropout 0.2, float32``."""
    sizes = [network.input_size, *network.hidden_size_list, network.output_size]
    norm = getattr(network, "normalization", None)
    unit = {"group": "group", "instance": "channel"}.get(norm)
    count = f" ({network.groups} {unit}{'s' * (network.groups != 1)})" if unit else ""
    return ("-".join(map(str, sizes)) + f" {network.activation}"
            + (f", {norm} norm{count}" if norm else "")
            + (f", dropout {network.dropout_ratio}" if network.use_dropout else "")
            + f", {network.dtype}")


def _first(x, t, n, flag, kind):
    if n is None:
        return x, t
    if n > len(x):
        raise CommandError(f"{flag} {n} exceeds the {len(x):,} {kind} images")
    return x[:n], t[:n]


def _epoch_end_trainer(trainer_class):
    """``trainer_class`` recording the accuracies after the last step of each epoch of
    ``train_size / mini_batch_size`` steps (at least 1), so that ``current_epoch`` is
    the epochs trained; the book's Trainer records them where the step count is a
    multiple of that, which a fractional count of steps an epoch seldom is (a batch of
    128 of 1,000 images: once in 16 epochs).  The last epoch, which the book's step
    count ``int(epochs * train_size / mini_batch_size)`` may cut short, is recorded
    after the last step."""
    class EpochEndTrainer(trainer_class):
        def _records_accuracy(self):
            done = self.current_iter + 1
            if self.batch_size >= self.train_size or done == self.max_iter:
                return True
            return done * self.batch_size // self.train_size > \
                (done - 1) * self.batch_size // self.train_size

    return EpochEndTrainer


def _fit(trainer, say):
    """Run ``trainer`` step by step: accuracies through ``say`` (stdout), a tqdm bar on
    stderr that is drawn only when stderr is a terminal, so that logs stay clean."""
    with tqdm(total=trainer.max_iter, unit="step", leave=False, disable=None,
              file=sys.stderr) as bar:
        for _ in range(trainer.max_iter):
            recorded = len(trainer.train_acc_list)
            trainer.train_step()
            if not math.isfinite(trainer.train_loss_list[-1]):  # nothing to report or save
                raise CommandError(
                    f"training diverged: the loss was {trainer.train_loss_list[-1]} at step "
                    f"{trainer.current_iter} of {trainer.max_iter}; try a smaller --lr or "
                    f"--init (nothing was saved)")
            if len(trainer.train_acc_list) > recorded:
                with bar.external_write_mode():  # the bar cleared, then drawn again
                    say(f"epoch {trainer.current_epoch:>3}: train acc "
                        f"{trainer.train_acc_list[-1]:.4f}, test acc "
                        f"{trainer.test_acc_list[-1]:.4f}, loss "
                        f"{trainer.train_loss_list[-1]:.4f}")
            bar.update()


def _check_normalization(args):
    """``--batchnorm`` agrees with ``--normalization``; ``args.normalization`` is set
    from either.  ``--groups`` goes with group and instance norm."""
    if args.batchnorm:
        if args.normalization not in (None, "batch"):
            raise CommandError(f"--batchnorm is --normalization batch; it conflicts with "
                               f"--normalization {args.normalization}")
        args.normalization = "batch"
    grouped = args.normalization in ("group", "instance")
    if args.groups is not None and not (grouped or args.load):  # --load: checked there
        raise CommandError("--groups applies to --normalization group and instance")


def new_network(backend, args):
    hidden = _flatten(args.hidden) or DEFAULT_HIDDEN
    groups = {} if args.groups is None else {"groups": args.groups}
    try:
        _book.check_normalized_sizes(args.normalization, args.groups or 2, hidden)
    except ValueError as err:
        raise CommandError(str(err).replace("groups=", "--groups ", 1)) from None
    return backend.nets.MultiLayerNetExtend(
        784, hidden, 10, activation=args.activation or "relu",
        weight_init_std=args.init, weight_decay_lambda=args.weight_decay,
        use_dropout=args.dropout is not None, dropout_ratio=args.dropout or 0.5,
        normalization=args.normalization, dtype=args.dtype or np.float32, seed=args.seed,
        **groups)


def _flatten(lists):
    return [size for sizes in lists or () for size in sizes]


# --- saved nets (the format: fastnet.io)

def save_network(network, path, force):
    """``fastnet.io.save_net``, its refusal to overwrite reported in one line."""
    try:
        save_net(network, path, overwrite=force)
    except FileExistsError:
        raise CommandError(f"{path} appeared while training; pass --force to overwrite "
                           "it") from None


def load_network(path, backend, args):
    """The net saved at ``path``; architecture flags in ``args`` must agree with it."""
    try:
        network = load_net(path, dtype=args.dtype, net_class=backend.nets.MultiLayerNetExtend,
                           weight_decay_lambda=args.weight_decay, seed=args.seed)
    except OSError as err:
        raise CommandError(f"cannot read {path}: {err.strerror or err}") from None
    except ValueError as err:
        raise CommandError(str(err)) from None
    architecture = {"hidden_size_list": network.hidden_size_list,
                    "activation": network.activation,
                    "normalization": network.normalization or "none",
                    "groups": network.groups,
                    "use_batchnorm": network.use_batchnorm,
                    "dropout_ratio": network.dropout_ratio if network.use_dropout else None}
    given = {"hidden": _flatten(args.hidden) or None, "activation": args.activation,
             "normalization": args.normalization, "groups": args.groups,
             "batchnorm": args.batchnorm, "dropout": args.dropout}
    if args.groups is not None and network.normalization not in ("group", "instance"):
        raise CommandError(f"--groups applies to group and instance norm; the net in {path} "
                           f"has normalization {architecture['normalization']}")
    for flag, key in ARCHITECTURE.items():
        if given[flag] is not None and given[flag] != architecture[key]:
            raise CommandError(f"--{flag} {_show(given[flag])} does not match the net in "
                               f"{path} ({key} {_show(architecture[key])}); leave it out "
                               "to use the file's")
    return network


def _show(value):
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


# --- fastnet experiment

def experiment(args):
    _check_writable(args.out, "--out", folder=True)
    ctx = Context(get_backend(args.backend), args.out, dataset=args.dataset,
                  data_dir=args.data_dir, seed=args.seed, quick=args.quick)
    names = list(EXPERIMENTS) if args.name == "all" else [args.name]
    results = [run_experiment(EXPERIMENTS[name], ctx) for name in names]
    if len(results) > 1:
        print(f"{'experiment':<16} {'wall s':>8}  summary ({ctx.backend.name} backend"
              + (", QUICK mode" if args.quick else "") + ")")
        for result in results:
            print(f"{result.name:<16} {result.seconds:8.1f}  {result.summary}")
        print(f"{'total':<16} {sum(r.seconds for r in results):8.1f}")
        ctx.write_csv("summary.csv", ["experiment", "backend", "quick", "wall_s", "summary"],
                      [(r.name, ctx.backend.name, args.quick, r.seconds, r.summary)
                       for r in results])
    print("wrote " + ", ".join(str(path) for path in ctx.written))
    return 0
