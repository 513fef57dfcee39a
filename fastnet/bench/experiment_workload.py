"""The ``experiment-all`` workload (issue 8): ``fastnet experiment all`` against every
GEMM it runs, timed back to back.

The experiments run in this process, on fastnet's backend, with a ``GemmRecorder``
wrapped around the nets' and the population's public methods: each outermost call
logs the net's layer sizes and the rows it was given, nothing in the product is
instrumented.  The calls give the GEMMs (``workloads.forward_gemms`` and
``backward_gemms``: a training call's forward and backward, an inference call's
forward in ``nets.INFERENCE_CHUNK`` rows at a time where the fused kernels run it),
which ``workloads.gemm_list_step`` then runs back to back through ``blas.gemm``: a net's
on BLAS's threads, as the net runs them; a population's as the population runs its
members, shared among fastnet's threads with BLAS single-threaded
(``fastnet.threads.run_shares``), so that the floor stays a lower bound of either.

Differences from the command: the hyperparameter search trains in this process
(``workers=1``) where the command starts a worker process per core, the figures and
curves go to a temporary folder, the printing goes nowhere, and the data is loaded,
and every experiment run once at its quick settings (compiling what a cold kernel
cache lacks), before the clock starts.  The GEMMs of ``activation_histograms`` (NumPy's ``@`` on
bare arrays, no net) and the optimizer paths (no GEMM) are not fastnet's and are not
recorded.
"""
import contextlib
import functools
import io
import itertools
import tempfile
import threading
import time
from collections import Counter, namedtuple
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from . import harness
from .workloads import backward_gemms, forward_gemms, gemm_list_step

NET_METHODS = ("train_step", "gradient", "loss", "accuracy", "predict")
POPULATION_METHODS = ("train_step", "loss", "accuracy", "predict")
TRAINING = ("train_step", "gradient")
# One recorded call: the net's layer sizes, the rows it was given, its members (1 for a
# net), whether it trains, its inference chunk (None: all rows at once), and whether it
# is a population's.
Call = namedtuple("Call", "dims rows members training chunk population")


def _net_call(net, method, args, kwargs):
    """The ``Call`` of one call of a net's ``method``."""
    from fastnet.arena import RUNNING_NORMALIZATIONS
    from fastnet.nets import INFERENCE_CHUNK

    x = np.asarray(args[0])
    dims = (net.input_size, *net.hidden_size_list, net.output_size)
    training = method in TRAINING
    flag_at = {"predict": 1, "loss": 2}.get(method)  # train_flg's position, if it has one
    train_mode = kwargs.get("train_flg", args[flag_at] if flag_at and len(args) > flag_at
                            else False)
    # the fused kernels infer in chunks; training mode (the layers) does not
    chunked = not training and not (
        train_mode and (net.normalization in RUNNING_NORMALIZATIONS or net.use_dropout))
    return Call(dims, x.shape[0], 1, training, INFERENCE_CHUNK if chunked else None, False)


def _population_call(pop, method, args, kwargs):
    """The ``Call`` of a ``Population`` call: one entry for its K members."""
    from fastnet.nets import INFERENCE_CHUNK

    x = np.shape(args[0])
    rows = kwargs.get("rows", args[2] if len(args) > 2 else None)
    n = np.shape(rows)[1] if rows is not None else x[-2] if len(x) == 3 else x[0]
    training = method == "train_step"
    return Call(tuple(pop.layout.dims), n, len(pop), training,
                None if training else INFERENCE_CHUNK, True)


class GemmRecorder(contextlib.AbstractContextManager):
    """While entered, the public methods of ``MultiLayerNet``, ``MultiLayerNetExtend``
    and ``Population`` are wrapped so that each outermost call (not the calls one
    method makes to another) is counted in ``calls``, and in ``sections[section]`` for
    the ``section`` being recorded (set it to name a part of the run, such as an
    experiment); ``gemms()`` is their list."""

    def __init__(self):
        self.calls = Counter()
        self.section = None
        self.sections = {}
        self._saved = []
        self._depth = threading.local()

    def _wrap(self, cls, name, describe):
        original = cls.__dict__.get(name)
        method = getattr(cls, name)

        @functools.wraps(method)
        def recorded(obj, *args, **kwargs):
            depth = getattr(self._depth, "value", 0)
            if depth == 0:
                call = describe(obj, name, args, kwargs)
                self.calls[call] += 1
                self.sections.setdefault(self.section, Counter())[call] += 1
            self._depth.value = depth + 1
            try:
                return method(obj, *args, **kwargs)
            finally:
                self._depth.value = depth
        self._saved.append((cls, name, original))
        setattr(cls, name, recorded)

    def __enter__(self):
        from fastnet.nets import MultiLayerNet, MultiLayerNetExtend
        from fastnet.population import Population

        for cls in (MultiLayerNet, MultiLayerNetExtend):
            for name in NET_METHODS:
                self._wrap(cls, name, _net_call)
        for name in POPULATION_METHODS:
            self._wrap(Population, name, _population_call)
        return self

    def __exit__(self, *exc):
        for cls, name, original in reversed(self._saved):
            if original is None:
                delattr(cls, name)  # inherited again
            else:
                setattr(cls, name, original)
        self._saved.clear()

    def _calls(self, section):
        return (self.calls if section is None else self.sections.get(section, {})).items()

    def gemms(self, section=None):
        """The GEMMs of every recorded net call (or of ``section``'s only; not the
        populations', see ``member_gemms``) as ``gemm_list_step`` rows, (G, 5) int64."""
        rows = [row for call, count in self._calls(section) if not call.population
                for row in _call_gemms(call) * count]
        return np.array(rows, np.int64).reshape(-1, 5)

    def member_gemms(self, section=None):
        """The GEMMs of every recorded population call (or of ``section``'s only), one
        (G, 5) int64 array of ``gemm_list_step`` rows per member and call: the units a
        population shares among its threads."""
        return [np.array(_call_gemms(call), np.int64).reshape(-1, 5)
                for call, count in self._calls(section) if call.population
                for _ in range(call.members * count)]


def _call_gemms(call):
    """One member's GEMMs of ``call``: its forward, and its backward if it trains."""
    gemms = forward_gemms(call.dims, call.rows, call.chunk)
    return gemms + backward_gemms(call.dims, call.rows) if call.training else gemms


def gemm_floor(recorder, section, n_threads):
    """A zero-argument function that runs ``section``'s GEMMs as fastnet runs them: the
    nets' back to back on BLAS's threads, then the populations' members in
    ``n_threads`` shares at once, BLAS single-threaded (``threads.run_shares``; each
    share a contiguous run of members, with operand buffers of its own)."""
    from fastnet import threads

    nets = gemm_list_step(recorder.gemms(section))
    units = recorder.member_gemms(section)
    shares = min(n_threads, len(units))
    bounds = [len(units) * j // shares for j in range(shares + 1)] if units else []
    members = [gemm_list_step(np.concatenate(units[first:last]))
               for first, last in itertools.pairwise(bounds)]

    def floor():
        nets()
        if members:
            threads.run_shares(lambda first, last, j: members[j](), len(members),
                               len(members))
    return floor


def experiment_dataset():
    """MNIST where its files are at hand, else Fashion-MNIST (nothing is downloaded)."""
    from fastnet.datasets import LOADERS, DatasetNotFoundError

    for name, loader in LOADERS.items():
        with contextlib.suppress(DatasetNotFoundError):
            loader(download=False)
            return name
    raise DatasetNotFoundError("experiment-all needs MNIST or Fashion-MNIST at hand")


def run_experiments(quick):
    """Every experiment of ``fastnet experiment all`` in this process on fastnet's
    backend (the quick settings when ``quick``; the search on one worker), with a
    ``GemmRecorder`` whose sections are the experiments' names; returns the wall seconds
    (in all, and per experiment), the recorder and the dataset's name."""
    from fastnet.experiments import EXPERIMENTS
    from fastnet.experiments.shared import Context, get_backend

    dataset = experiment_dataset()
    with tempfile.TemporaryDirectory(prefix="fastnet-bench-exp-") as out:
        ctx = Context(get_backend("fastnet"), Path(out), dataset=dataset, quick=quick)
        with contextlib.redirect_stdout(io.StringIO()):
            ctx.data()
            recorder = GemmRecorder()
            start = time.perf_counter()
            each = {}
            with recorder:
                for name, module in EXPERIMENTS.items():
                    settings = {**module.SETTINGS, **(module.QUICK_SETTINGS if quick else {})}
                    if "workers" in settings:
                        settings["workers"] = 1
                    recorder.section = name
                    began = time.perf_counter()
                    module.run(ctx, SimpleNamespace(**settings))
                    each[name] = time.perf_counter() - began
            seconds = time.perf_counter() - start
    return seconds, each, recorder, dataset


def experiment_all_workload(settings, progress):
    """``fastnet experiment all`` (in this process, once) against its GEMMs back to back
    (median of ``experiment_floor_runs`` runs), in all and experiment by experiment
    (the ratios ``<experiment>_over_floor``: where the time beyond the GEMMs goes)."""
    from fastnet import threads
    from fastnet.kernels import blas

    quick = settings.get("quick", False)
    # Once at the quick settings first, untimed: every kernel the experiments call is
    # then compiled (or loaded from the cache) before the clock starts.
    progress("  warm-up: every experiment at the quick settings")
    run_experiments(True)
    progress("  running every experiment" + (" (quick settings)" if quick else ""))
    seconds, each, recorder, dataset = run_experiments(quick)
    gemms = np.concatenate([recorder.gemms(), *recorder.member_gemms()])
    n_threads = threads.get_num_threads()
    floors = {name: harness.local(gemm_floor(recorder, name, n_threads))
              for name in each if name in recorder.sections}
    for floor in floors.values():
        floor(1)  # compiles
    runs = [{name: floor(1) for name, floor in floors.items()}
            for _ in range(settings["experiment_floor_runs"])]
    floor_runs = [sum(run.values()) for run in runs]
    implementations = {"fastnet": harness.summary([seconds], 1, scale=1.0),
                       "gemm-floor": harness.summary(floor_runs, 1, scale=1.0)}
    floor_s = implementations["gemm-floor"]["median"]
    by_experiment = {f"{name}_over_floor": seconds_of / float(np.median([r[name] for r in runs]))
                     for name, seconds_of in each.items() if name in floors}
    flops = 2 * float(np.sum(np.prod(gemms[:, :3].astype(np.float64), axis=1)))
    notes = {"fastnet": f"{sum(recorder.calls.values()):,} calls of the nets' methods",
             "gemm-floor": f"{len(gemms):,} GEMMs, {flops / 1e9:.2f} GFLOP, compiled "
                           f"fastnet blas.gemm ({blas.BACKEND}); populations' members "
                           f"on {n_threads} threads at once"}
    ratios = {"fastnet_over_floor": seconds / floor_s if floor_s else None,
              "floor_share": floor_s / seconds if seconds else None,
              "gemm_count": len(gemms), "recorded_calls": sum(recorder.calls.values()),
              **by_experiment, **{f"{name}_s": value for name, value in each.items()}}
    return {"description": (f"fastnet experiment all in this process on {dataset}"
                            + (", quick settings" if quick else ", the book's settings")
                            + "; hpo on one worker; wall s"),
            "unit": "s", "implementations": implementations, "notes": notes,
            "skipped": {}, "ratios": ratios}
