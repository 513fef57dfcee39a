"""How ``fastnet bench`` measures: threads, timing, memory, child processes, environment.

``measure`` times several samplers in rounds, round-robin (the starting one rotates
each round), so that noise on a shared machine hits all of them alike, and reports the
median time per call of each.  A sampler is ``sample(k)``: run the step ``k`` times,
return the seconds taken (``local`` makes one of a function of this process; the torch
worker's run in another process).
"""
import ast
import contextlib
import gc
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

# Seconds of measurement per workload, and the target length of one timed sample.
# ``gap_s``: a pause before each sample, longer than BLAS threads spin after a call
# (OpenBLAS: 2**28 cycles, about 0.1 s), so that one implementation's idle pool does not
# take cores from the next one's (a 16-thread step was measured up to 4x slower).
# ``book_*``: the book-scripts workload (``book_workload``): the scripts' length knobs
# scaled by ``book_scale``, each run ``book_runs`` times each way, on ``book_data``
# (``book.DATASETS``), test sets cut to ``book_test_size`` images (None: whole).
# ``sweep_*``, ``overhead_*``, ``halving_*``: the sweep workloads (``sweep_workload``):
# the HPO sweep's trials, epochs and images, the overhead run's trials, the halving
# sweep's trials and Fashion-MNIST images (``halving_train_size`` None: all but the
# ``halving_validation`` held out).  ``experiment_floor_runs``: timings of experiment-all's
# GEMM floor (the experiments run once).
SWEEP_FULL = {"sweep_trials": 100, "sweep_epochs": 50, "sweep_train": 400,
              "sweep_validation": 100, "sweep_reference": True, "sweep_old_style": True,
              "overhead_trials": 1000,
              "halving_trials": 1000, "halving_train_size": None, "halving_validation": 10_000,
              "optuna_procs": None}
SWEEP_QUICK = {**SWEEP_FULL, "sweep_trials": 4, "sweep_epochs": 2, "overhead_trials": 50,
               "halving_trials": 12, "halving_train_size": 2_000, "halving_validation": 500}
FULL = {"seconds": 20.0, "min_rounds": 15, "sample_s": 0.2, "gap_s": 0.15, "warm_s": 0.5,
        "startup_runs": 5, "cold_runs": 1, "leak_steps": 10_000,
        "book_scale": 1.0, "book_runs": 1, "book_data": "auto", "book_test_size": None,
        "experiment_floor_runs": 5, **SWEEP_FULL}
QUICK = {"seconds": 1.0, "min_rounds": 4, "sample_s": 0.03, "gap_s": 0.12, "warm_s": 0.15,
         "startup_runs": 1, "cold_runs": 0, "leak_steps": 2_000,
         "book_scale": 0.05, "book_runs": 1, "book_data": "auto", "book_test_size": 2_000,
         "experiment_floor_runs": 2, **SWEEP_QUICK}


# --------------------------------------------------------------------------- threads

def set_threads(n):
    """The same thread count for Numba, every BLAS and every OpenMP runtime loaded."""
    import threadpoolctl

    from fastnet import threads

    threads.set_num_threads(n)  # Numba's pool and every BLAS
    threadpoolctl.threadpool_limits(limits=n)  # and any other OpenMP runtime


def threadpools():
    """threadpoolctl's view of the thread pools loaded in this process."""
    import threadpoolctl

    return [{key: info.get(key) for key in ("user_api", "internal_api", "prefix", "version",
                                            "num_threads", "threading_layer", "architecture",
                                            "filepath")}
            for info in threadpoolctl.threadpool_info()]


def default_threads():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def load_average():
    """1-minute load average: above the core count, other processes share the cores."""
    with contextlib.suppress(AttributeError, OSError):
        return round(os.getloadavg()[0], 2)
    return None


def _cpu_model():
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


_OPENBLAS_CHOICE = """
import json, numpy, threadpoolctl
print(json.dumps(sorted({i["architecture"] for i in threadpoolctl.threadpool_info()
                         if i["internal_api"] == "openblas" and i.get("architecture")})))
"""


def openblas_own_choice():
    """The kernels OpenBLAS picks for this CPU when ``OPENBLAS_CORETYPE`` does not name
    them (read in a child process without it), or None where it is not set or the child
    fails."""
    if not os.environ.get("OPENBLAS_CORETYPE"):
        return None
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    try:
        done = subprocess.run([sys.executable, "-c", _OPENBLAS_CHOICE], env=env, text=True,
                              capture_output=True, timeout=60, check=True)
        return ", ".join(json.loads(done.stdout))
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def environment(n_threads):
    """Versions, machine, threads and thread pools of this process (Numba's pool is
    started first, so that it shows)."""
    import numba

    import fastnet

    from .workloads import copy_kernels

    copy_kernels()[1](*[np.zeros(4, np.float32) for _ in range(4)])  # start Numba's pool
    return {
        "fastnet": fastnet.__version__, "numpy": np.__version__, "numba": numba.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu": _cpu_model(), "cores": default_threads(), "threads": n_threads,
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": numba.threading_layer(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "openblas_own_choice": openblas_own_choice(),
        "load_average": load_average(),
        "threadpools": threadpools(),
    }


# --------------------------------------------------------------------------- timing

def local(fn):
    """A sampler of ``fn``: ``sample(k)`` runs it ``k`` times, returns the seconds taken."""
    def sample(k):
        gc.disable()
        try:
            start = time.perf_counter()
            for _ in range(k):
                fn()
            return time.perf_counter() - start
        finally:
            gc.enable()
    return sample


def measure(samplers, settings, progress):
    """Median time per call (ms) of each sampler, sampled round-robin."""
    names = list(samplers)
    inner = {}
    for name in names:
        sample = samplers[name]
        sample(1)  # first call: allocations, lazy state
        count, elapsed = 0, 0.0
        while count < 3 or elapsed < settings["warm_s"]:
            elapsed += sample(1)
            count += 1
        inner[name] = max(1, round(settings["sample_s"] / (elapsed / count)))
    samples = {name: [] for name in names}
    gc.collect()
    deadline = time.perf_counter() + settings["seconds"]
    rounds = 0
    while rounds < settings["min_rounds"] or (time.perf_counter() < deadline and rounds < 2000):
        shift = rounds % len(names)
        for name in names[shift:] + names[:shift]:
            time.sleep(settings["gap_s"])
            samples[name].append(samplers[name](inner[name]) / inner[name])
        rounds += 1
    progress(f"  {rounds} rounds")
    return {name: summary(samples[name], inner[name]) for name in names}


def summary(seconds, steps_per_sample, scale=1e3):
    """Median, quartiles and minimum of ``seconds`` (times ``scale``: ms by default)."""
    values = np.asarray(seconds) * scale
    return {"median": float(np.median(values)), "p25": float(np.percentile(values, 25)),
            "p75": float(np.percentile(values, 75)), "min": float(values.min()),
            "samples": len(values), "steps_per_sample": steps_per_sample}


# --------------------------------------------------------------------------- memory

def rss_mb():
    """Resident set size of this process in MB, or None without psutil (the ``bench``
    extra)."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss / 2**20


# --------------------------------------------------------------------------- child processes

def has_module(name):
    """Whether ``name`` is importable (False where ``sys.modules`` blocks it)."""
    if name in sys.modules and sys.modules[name] is None:  # import blocked
        return False
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def child_env(n_threads, **extra):
    """The environment of a child process: this fastnet importable, ``n_threads`` for
    every pool, plus ``extra``."""
    import fastnet

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnet.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS", "FASTNET_NUM_THREADS", "FASTNET_BENCH_THREADS"):
        env[var] = str(n_threads)
    env.update(extra)
    return env


def torch_env(n_threads, policy):
    """The environment of a torch user's process: without fastnet's
    ``OMP_WAIT_POLICY=PASSIVE`` unless ``policy`` is ``"inherit"`` (see ``torch_worker``)."""
    env = child_env(n_threads)
    if policy == "default" and env.get("OMP_WAIT_POLICY") == "PASSIVE":
        del env["OMP_WAIT_POLICY"]
    return env


def run_child(code, env):
    """Wall seconds of ``python -c code`` and the dict it printed last."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"child process failed:\n{proc.stderr[-2000:]}")
    return wall, ast.literal_eval(proc.stdout.strip().splitlines()[-1])
