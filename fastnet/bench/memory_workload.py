"""Issue 10's memory bound: a population's peak RSS within 1.2x of K times one net's
arenas plus the shared batch (the ``pop*-memory`` workloads, one per population).

Each measurement runs in a new process (``population_memory`` starts it,
``peak_growth`` runs there), so that nothing this process allocated counts.  The child
imports fastnet and compiles the step by training a population of the same depth,
optimizer and batch size but 4-unit hidden layers, one member per thread, so that
compiled code, the share threads and their BLAS buffers are in place; it hands freed
heap memory back to the system (glibc's ``malloc_trim``: what compiling freed would
otherwise be reused unseen, and a cold kernel cache measured 12% less than a warm one)
and resets the peak (Linux: "5" written to ``/proc/self/clear_refs`` sets ``VmHWM`` to
``VmRSS``); then it makes the batch, builds the workload's population and runs its
train steps.  The growth is ``VmHWM`` then minus ``VmRSS`` before.  Where the peak
cannot be reset (no ``clear_refs``: not Linux, or a kernel without it), the peak is the
largest RSS read after the population is built and after each step, which misses what
a step allocates and frees inside it; the result says which (``peak_source``).

The bound's base (``expected_mb``) is issue 10's: K times one net's arenas, from its
``NetLayout`` (parameters, gradients, the optimizer's state arenas: SGD none, Adam two;
running statistics), plus the batch, x and t.  K nets trained alone would also hold a
training workspace each, where a population keeps one per thread:
``peak_rss_over_arenas_and_workspaces`` credits those too.
"""
import ctypes
import gc

import numpy as np

from . import harness
from .workloads import INPUT_SIZE, OUTPUT_SIZE, POPULATIONS, make_batch

# Issue 10's populations measured for memory: every population workload, "-memory" added.
MEMORY_WORKLOADS = {f"{name}-memory": name for name in POPULATIONS}
STEPS = 10  # train steps of the measured population (workspaces exist after the first)
CLEAR_REFS = "/proc/self/clear_refs"


def _status_mb(field):
    """``field`` of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MB, or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**10  # kB
    except OSError:
        pass
    return None


def _trim_heap():
    """Hand freed heap memory back to the system (glibc's ``malloc_trim``), so that what
    compiling or loading the kernels freed is not reused, unseen, by the measured
    population (a cold and a warm kernel cache then measure alike); False where there
    is no glibc."""
    try:
        return bool(ctypes.CDLL("libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def _reset_peak():
    """Whether the peak RSS (``VmHWM``) could be reset to the current RSS."""
    try:
        with open(CLEAR_REFS, "w") as handle:
            handle.write("5")
    except OSError:
        return False
    return _status_mb("VmHWM") is not None


def net_arena_bytes(hidden, batch, optimizer, dtype=np.float32):
    """``{"arenas": ..., "workspace": ...}``: the bytes of one 784-``hidden``-10 net
    trained alone by ``optimizer`` (a ``fastnet.optimizers`` name) on batches of
    ``batch`` rows: its parameter, gradient, optimizer-state and running-statistics
    arenas, and its training workspace (``NetLayout.workspace``)."""
    from fastnet import optimizers
    from fastnet.arena import NetLayout

    layout = NetLayout(INPUT_SIZE, list(hidden), OUTPUT_SIZE)
    itemsize = np.dtype(dtype).itemsize
    n_states = len(optimizers.OPTIMIZERS[optimizer.lower()].state_names)
    arenas = ((2 + n_states) * layout.size + layout.running_size) * itemsize
    workspace = sum(a.nbytes for a in layout.workspace(batch, dtype).values()
                    if isinstance(a, np.ndarray))
    return {"arenas": arenas, "workspace": workspace}


def peak_growth(k, hidden, batch, optimizer, lr, steps=STEPS):
    """In this process (a fresh one): the peak RSS growth of building ``k`` members of
    784-``hidden``-10 and running ``steps`` train steps on one shared batch of ``batch``
    rows, in MB, with the bytes it is held against (see the module's doc)."""
    from fastnet import threads
    from fastnet.population import Population

    shares = threads.get_num_threads()
    warm = Population(INPUT_SIZE, [4] * len(hidden), OUTPUT_SIZE,
                      [{"seed": i, "lr": lr} for i in range(shares)], optimizer)
    for _ in range(2):
        warm.train_step(*make_batch(batch))
    del warm
    gc.collect()
    _trim_heap()
    reset = _reset_peak()
    baseline = _status_mb("VmRSS") if reset else harness.rss_mb()
    x, t = make_batch(batch)  # counted in the growth, as in the bound
    pop = Population(INPUT_SIZE, list(hidden), OUTPUT_SIZE,
                     [{"seed": i, "lr": lr} for i in range(k)], optimizer)
    sampled = [harness.rss_mb()]
    for _ in range(steps):
        losses = pop.train_step(x, t)
        sampled.append(harness.rss_mb())
    peak = (_status_mb("VmHWM") if reset
            else max((s for s in sampled if s is not None), default=None))
    one = net_arena_bytes(hidden, batch, optimizer)
    mb = 2**20
    return {"k": k, "steps": steps, "threads": shares,
            "peak_source": "VmHWM after clear_refs" if reset else "largest sampled RSS",
            "baseline_mb": baseline, "peak_mb": peak,
            "growth_mb": None if peak is None or baseline is None else peak - baseline,
            "arenas_mb": k * one["arenas"] / mb, "workspaces_mb": k * one["workspace"] / mb,
            "batch_mb": (x.nbytes + t.nbytes) / mb,
            "finite": bool(np.isfinite(losses).all())}


def population_memory(spec, n_threads, steps=STEPS):
    """``peak_growth`` of ``spec`` (a ``workloads.PopulationSpec``) in a new process
    with ``n_threads`` threads; its dict, with ``expected_mb`` (issue 10's bound: K nets'
    arenas, and the batch) and ``peak_rss_over_arenas`` (growth / expected), and
    ``peak_rss_over_arenas_and_workspaces`` (the same, K nets' training workspaces
    credited too)."""
    net = spec.net
    code = (f"from fastnet.bench.memory_workload import peak_growth\n"
            f"print(peak_growth({spec.k}, {tuple(net.hidden)!r}, {net.batch}, "
            f"{net.optimizer!r}, {net.lr!r}, {steps}))")
    _, result = harness.run_child(code, harness.child_env(n_threads))
    result["expected_mb"] = result["arenas_mb"] + result["batch_mb"]
    growth = result["growth_mb"]
    result["peak_rss_over_arenas"] = None if growth is None else growth / result["expected_mb"]
    # K nets trained alone would each hold a workspace too (a population keeps one per
    # thread): the ratio with those credited
    result["peak_rss_over_arenas_and_workspaces"] = None if growth is None else growth / (
        result["expected_mb"] + result["workspaces_mb"])
    return result


def memory_workload(name, n_threads, progress):
    """The ``name`` (a key of ``MEMORY_WORKLOADS``) entry of the report."""
    spec = POPULATIONS[MEMORY_WORKLOADS[name]]
    progress(f"  a new process: {spec.k} members, {STEPS} train steps")
    result = population_memory(spec, n_threads)
    ratios = {key: result[key] for key in (
        "peak_rss_over_arenas", "peak_rss_over_arenas_and_workspaces", "growth_mb",
        "expected_mb", "arenas_mb", "workspaces_mb", "batch_mb", "baseline_mb", "peak_mb")}
    description = (f"peak RSS growth of {spec.k} x {spec.net.describe()}: built, "
                   f"{STEPS} train steps on one shared batch, in a new process (peak: "
                   f"{result['peak_source']}); against K nets' arenas (params, grads, "
                   f"optimizer state, running statistics) + the batch")
    if not result["finite"]:
        description += " (a member's loss was not finite)"
    return {"description": description, "unit": "MB", "implementations": {}, "notes": {},
            "skipped": {}, "ratios": ratios}

