"""The command line of ``fastnet bench`` (also ``python -m fastnet.bench``)."""
import argparse
import math
import sys

from .. import _files
from .book import DATASETS, SCRIPTS
from .harness import FULL, QUICK, default_threads
from .report import format_report, write_json
from .runner import DEFAULT_WORKLOADS, WORKLOAD_GROUPS, WORKLOADS, run

_BOOK = ["book-scripts"]
_SWEEPS = ["sweep-hpo", "sweep-dask"]
# The options that only some workloads take, and those workloads (as --help says):
# given without any of them, an option would do nothing, which is refused.
OPTION_WORKLOADS = {
    "--leak-steps": ["leak"],
    "--book-scripts": _BOOK, "--book-scale": _BOOK, "--book-runs": _BOOK,
    "--book-data": _BOOK, "--book-out": _BOOK,
    "--sweep-trials": _SWEEPS, "--sweep-epochs": _SWEEPS,
    "--sweep-no-reference": ["sweep-hpo"],
    "--overhead-trials": ["sweep-overhead"],
    "--halving-trials": ["sweep-halving"], "--halving-train-size": ["sweep-halving"],
    "--optuna-procs": ["sweep-hpo", "sweep-halving"],
}


def _number(low, low_open, kind=float):
    """An argparse type: a finite ``kind`` above ``low`` (or at it, unless ``low_open``)."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or (low_open and value == low):
            bound = f"> {low}" if low_open else f">= {low}"
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"expected {what} {bound}, got {text!r}")
        return value
    return parse


def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastnet bench",
        description="Time fastnet against the NumPy reference, PyTorch and the GEMM/copy "
                    "floors, side by side in one run, and check the ratios against their targets.")
    parser.add_argument("--workload", action="append", metavar="NAME",
                        help=f"run only this workload (repeatable, or comma-separated): "
                             f"{', '.join(WORKLOADS)}, or a group of them: "
                             f"{', '.join(WORKLOAD_GROUPS)} (default: all but book-scripts, "
                             f"experiment-all, the sweep-* and the normalization "
                             f"workloads)")
    parser.add_argument("--quick", action="store_true",
                        help="a ~40 s version: shorter timing, no cold start, a short leak run; "
                             "book-scripts: each script's length x0.05, test sets of 2,000 "
                             "(some minutes)")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON on stdout (progress goes to stderr)")
    parser.add_argument("--save", metavar="PATH",
                        help="also write the JSON results to PATH")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for Numba, BLAS and torch (default: every usable core)")
    parser.add_argument("--seconds", type=_number(0, low_open=True), default=None,
                        help="measurement time per workload (default 20, 1 with --quick)")
    parser.add_argument("--gap", type=_number(0, low_open=False), default=None,
                        help="pause in seconds before each timed sample, for idle thread "
                             "pools to go to sleep (default 0.15, 0.12 with --quick)")
    parser.add_argument("--leak-steps", type=_number(1, low_open=False, kind=int), default=None,
                        help="leak: train steps of the check (default 10000, 2000 with "
                             "--quick)")
    parser.add_argument("--book-scripts", metavar="NAMES",
                        help=f"book-scripts: run only these scripts (comma-separated): "
                             f"{', '.join(SCRIPTS)}")
    parser.add_argument("--book-scale", type=float, default=None,
                        help="book-scripts: scale of each script's iterations/epochs/trials "
                             "(default 1, the book's; 0.05 with --quick)")
    parser.add_argument("--book-runs", type=int, default=None,
                        help="book-scripts: runs of each script each way (default 1); from 3, "
                             "the results are compared by Welch's t-test")
    parser.add_argument("--book-data", choices=DATASETS, default=None,
                        help="book-scripts: the data load_mnist gives the scripts (default "
                             "auto: MNIST, else Fashion-MNIST, else MNIST's test digits, "
                             "else synthetic)")
    parser.add_argument("--book-out", metavar="DIR",
                        help="book-scripts: keep the figures and the scripts as run in DIR")
    positive = _number(1, low_open=False, kind=int)
    parser.add_argument("--sweep-trials", type=positive, default=None,
                        help="sweep-hpo, sweep-dask: trials (default 100, 4 with --quick)")
    parser.add_argument("--sweep-epochs", type=positive, default=None,
                        help="sweep-hpo, sweep-dask: epochs per trial (default 50, 2 with --quick)")
    parser.add_argument("--sweep-no-reference", action="store_true",
                        help="sweep-hpo: leave the NumPy reference's sweep out")
    parser.add_argument("--overhead-trials", type=positive, default=None,
                        help="sweep-overhead: one-step trials (default 1000, 50 with --quick)")
    parser.add_argument("--halving-trials", type=positive, default=None,
                        help="sweep-halving: trials (default 1000, the issue's; 12 with "
                             "--quick); fewer is reported as scaled down")
    parser.add_argument("--halving-train-size", type=positive, default=None,
                        help="sweep-halving: Fashion-MNIST training images (default all "
                             "50,000 left after the 10,000 validation images; 2,000 with --quick)")
    parser.add_argument("--optuna-procs", type=positive, default=None,
                        help="sweep-hpo, sweep-halving: Optuna's processes of one torch thread "
                             "each (default: --threads)")
    parser.add_argument("--no-torch", action="store_true",
                        help="leave torch (and Optuna + torch) out")
    parser.add_argument("--torch-omp-wait-policy", choices=("default", "inherit"),
                        default="default",
                        help="'default': torch's process runs without fastnet's "
                             "OMP_WAIT_POLICY=PASSIVE, as a torch user's does; 'inherit': "
                             "with it")
    parser.add_argument("--fail-on-miss", action="store_true",
                        help="exit with status 1 if any target is missed")
    return parser


def _selected(parser, requested):
    if not requested:
        return list(DEFAULT_WORKLOADS)
    names = [n.strip() for item in requested for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS and n not in WORKLOAD_GROUPS]
    if unknown or not names:
        parser.error((f"unknown workload {', '.join(unknown)}" if unknown
                      else "--workload names no workload")
                     + f"; choose from {', '.join([*WORKLOADS, *WORKLOAD_GROUPS])}")
    names = [m for n in names for m in WORKLOAD_GROUPS.get(n, [n])]
    return [n for n in WORKLOADS if n in names]


def _check_options_apply(parser, args, workloads):
    """A parser error naming the options given for workloads none of which is selected."""
    unused = {}  # the workloads an option is for -> the unused options given for them
    for flag, targets in OPTION_WORKLOADS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value not in (None, False) and not set(targets) & set(workloads):
            unused.setdefault(tuple(targets), []).append(flag)
    if unused:
        parser.error("; ".join(
            f"{', '.join(flags)}: only for the workload {targets[0]}, which is not selected"
            if len(targets) == 1 else f"{', '.join(flags)}: only for the workloads "
            f"{', '.join(targets)}, none of which is selected"
            for targets, flags in unused.items()) + " (--workload)")


def _check_writable(parser, args):
    """A parser error unless --save and --book-out can be written: checked before the
    run, whose results would otherwise be lost at its end."""
    for problem in (args.save is not None and _files.unwritable(args.save, "--save"),
                    args.book_out is not None
                    and _files.unwritable(args.book_out, "--book-out", folder=True)):
        if problem:
            parser.error(problem)


def _save(report, path):
    """Write ``report``'s JSON to ``path`` whole, or leave what was there; 0, or 1 with
    a line on stderr naming the file."""
    try:
        with _files.atomic_file(path, "w") as handle:
            write_json(report, handle)
    except OSError as err:
        print(f"fastnet bench: error: --save: the results are printed above but not "
              f"saved: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    workloads = _selected(parser, args.workload)
    _check_options_apply(parser, args, workloads)
    n_threads = args.threads if args.threads is not None else default_threads()
    import numba
    if not 1 <= n_threads <= numba.config.NUMBA_NUM_THREADS:
        parser.error(f"--threads must be between 1 and {numba.config.NUMBA_NUM_THREADS} "
                     f"(NUMBA_NUM_THREADS), got {n_threads}")
    settings = {**(QUICK if args.quick else FULL), "quick": args.quick}
    if args.seconds is not None:
        settings["seconds"] = args.seconds
    if args.gap is not None:
        settings["gap_s"] = args.gap
    if args.leak_steps is not None:
        settings["leak_steps"] = args.leak_steps
    if args.book_scripts:
        names = [n.strip() for n in args.book_scripts.split(",") if n.strip()]
        unknown = [n for n in names if n not in SCRIPTS]
        if unknown:
            parser.error(f"unknown book script {', '.join(unknown)}; choose from "
                         f"{', '.join(SCRIPTS)}")
        settings["book_scripts"] = [n for n in SCRIPTS if n in names]
    for option in ("book_scale", "book_runs", "book_data", "book_out", "sweep_trials",
                   "sweep_epochs", "overhead_trials", "halving_trials", "halving_train_size",
                   "optuna_procs"):
        if getattr(args, option) is not None:
            settings[option] = getattr(args, option)
    if args.sweep_no_reference:
        settings["sweep_reference"] = False
    if not 0 < settings["book_scale"] <= 1 or settings["book_runs"] < 1:
        parser.error("--book-scale must be in (0, 1] and --book-runs at least 1")
    _check_writable(parser, args)

    def progress(text):
        print(text, file=sys.stderr, flush=True)

    report = run(workloads, n_threads, settings, use_torch=not args.no_torch,
                 torch_policy=args.torch_omp_wait_policy, progress=progress)
    if args.json:
        write_json(report, sys.stdout)
        print()
    else:
        print(format_report(report))
    sys.stdout.flush()  # printed before the save, which may fail
    saved = _save(report, args.save) if args.save is not None else 0
    missed = any(t["status"] == "MISS" for r in report["workloads"].values()
                 for t in r["targets"])
    return 1 if saved or args.fail_on_miss and missed else 0
