"""One run of ``fastnet bench``: each workload's implementations built, measured side by
side, their ratios computed and held against the targets."""
import gc
import tempfile
import time

from . import harness
from .book_workload import book_scripts_workload
from .experiment_workload import experiment_all_workload
from .memory_workload import MEMORY_WORKLOADS, memory_workload
from .norm_workload import (
    NORM_LAYERS,
    affine_step,
    copy_step,
    has_torch_module,
    layer_step,
    norm_data,
)
from .report import TARGETS
from .sweep_workload import (
    sweep_dask_workload,
    sweep_halving_workload,
    sweep_hpo_workload,
    sweep_overhead_workload,
)
from .torch_worker import POPULATION_VARIANTS, TorchWorker
from .workloads import (
    ACCURACY_NET,
    ACCURACY_ROWS,
    INPUT_SIZE,
    NETS,
    OUTPUT_SIZE,
    POPULATIONS,
    STARTUP_FASTNET,
    STARTUP_TORCH,
    accuracy_floor_step,
    accuracy_step,
    adam_data,
    book_step,
    copy_kernels,
    fastnet_step,
    gemm_floor_njit_step,
    gemm_floor_step,
    make_batch,
    make_population_batches,
    population_floor_step,
    population_step,
    sequential_step,
    split_arena,
)

SWEEP_WORKLOADS = ["sweep-hpo", "sweep-overhead", "sweep-dask", "sweep-halving"]
# Issue 11's numbers: each normalization layer alone, and the net with layer norm.
NORMALIZATION_WORKLOADS = [*NORM_LAYERS, "ln-sgd"]
WORKLOADS = [*(n for n in NETS if n not in NORMALIZATION_WORKLOADS), *POPULATIONS,
             *MEMORY_WORKLOADS, "adam-update", "accuracy-10k", "startup", "leak",
             "book-scripts", "experiment-all", *SWEEP_WORKLOADS, *NORMALIZATION_WORKLOADS]
# Names that select several workloads.
WORKLOAD_GROUPS = {"normalization": NORMALIZATION_WORKLOADS}
# Run when no workload is named: all but the book's scripts (half an hour or more), the
# experiments (minutes at the book's settings), the sweeps (minutes each; sweep-halving
# hours), the normalization group (a dozen) and the populations that have no target
# (twelve in all, each K steps of a net; their memory workloads likewise).
OPT_IN = ("book-scripts", "experiment-all")
DEFAULT_WORKLOADS = [name for name in WORKLOADS if name not in OPT_IN
                     and name not in SWEEP_WORKLOADS and name not in NORMALIZATION_WORKLOADS
                     and (name not in POPULATIONS and name not in MEMORY_WORKLOADS
                          or name in TARGETS)]


def _result(description, unit, implementations, notes, skipped, ratios):
    """One workload's entry of the report (``targets`` are added by ``run``)."""
    return {"description": description, "unit": unit, "implementations": implementations,
            "notes": notes, "skipped": skipped, "ratios": ratios}


def _ratio(a, b):
    return None if a is None or b is None or not b else a / b


def _train_workload(name, worker, settings, progress):
    from fastnet.kernels import blas

    spec = NETS[name]
    x, t = make_batch(spec.batch)
    samplers = {"fastnet": harness.local(fastnet_step(spec, x, t)),
                "fastnet-book-path": harness.local(book_step(spec, x, t, "fastnet")),
                "reference": harness.local(book_step(spec, x, t))}
    notes = {"fastnet-book-path": "optimizer.update(net.params, net.gradient(x, t))"}
    skipped = {}
    worker.add_to(name, samplers, notes, skipped)
    samplers["gemm-floor"] = harness.local(gemm_floor_step(spec, x))
    samplers["gemm-floor-njit"] = harness.local(gemm_floor_njit_step(spec, x))
    notes["gemm-floor"] = "NumPy's BLAS"
    notes["gemm-floor-njit"] = f"compiled fastnet blas.gemm ({blas.BACKEND})"
    ms = harness.measure(samplers, settings, progress)
    med = {k: v["median"] for k, v in ms.items()}
    ratios = {
        "speedup_vs_torch": _ratio(med.get("torch"), med["fastnet"]),
        "speedup_vs_reference": _ratio(med["reference"], med["fastnet"]),
        "book_path_over_fused": _ratio(med["fastnet-book-path"], med["fastnet"]),
        # against the faster of the two floors: the same GEMMs, either is a lower bound
        "fastnet_over_floor": _ratio(med["fastnet"], min(med["gemm-floor"],
                                                         med["gemm-floor-njit"])),
        "fastnet_over_floor_njit": _ratio(med["fastnet"], med["gemm-floor-njit"]),
        # the most any implementation on this BLAS could gain: the other's time / the floor
        "ceiling_vs_torch": _ratio(med.get("torch"), med["gemm-floor"]),
        "ceiling_vs_reference": _ratio(med["reference"], med["gemm-floor"]),
    }
    return _result(spec.describe(), "ms/step", ms, notes, skipped, ratios)


def _accuracy_workload(settings, progress):
    """``net.accuracy`` on 10,000 MNIST-shaped images against its GEMMs alone."""
    from fastnet.kernels import blas
    from fastnet.nets import INFERENCE_CHUNK

    spec = ACCURACY_NET
    x, t = make_batch(ACCURACY_ROWS)
    samplers = {"fastnet": harness.local(accuracy_step(spec, x, t)),
                "gemm-floor": harness.local(accuracy_floor_step(spec, x))}
    notes = {"gemm-floor": f"each layer's forward GEMM per chunk of {INFERENCE_CHUNK:,} rows, "
                           f"compiled fastnet blas.gemm ({blas.BACKEND})"}
    ms = harness.measure(samplers, settings, progress)
    med = {k: v["median"] for k, v in ms.items()}
    ratios = {"fastnet_over_floor": _ratio(med["fastnet"], med["gemm-floor"])}
    net = spec.describe().split(",")[0]
    return _result(f"net.accuracy(x, t) of {net} on {ACCURACY_ROWS:,} float32 images "
                   f"(784 features)", "ms/call", ms, notes, {}, ratios)


def _population_workload(name, worker, settings, progress):
    """K members stepped together against K sequential fused steps, PyTorch's batched
    versions and the GEMM floor, all on one shared mini-batch; ``population-per-member``
    steps each member on its own mini-batch (a sweep's case)."""
    spec = POPULATIONS[name]
    xs, ts = make_population_batches(spec)
    x, t = xs[0], ts[0]
    samplers = {"population": harness.local(population_step(spec, x, t)),
                "population-per-member": harness.local(population_step(spec, xs, ts)),
                "sequential": harness.local(sequential_step(spec, x, t))}
    notes = {"population-per-member": "one mini-batch per member, (K, N, D)",
             "sequential": f"{spec.k} x net.train_step"}
    skipped = {}
    for variant in POPULATION_VARIANTS:
        worker.add_to(name, samplers, notes, skipped, variant)
    samplers["gemm-floor"] = harness.local(population_floor_step(spec, x))
    notes["gemm-floor"] = ("each member's GEMMs, compiled fastnet blas.gemm, members "
                           "shared among the threads as the population shares them")
    samplers["gemm-floor-serial"] = harness.local(population_floor_step(spec, x, False))
    notes["gemm-floor-serial"] = "the same GEMMs one member after another, BLAS on every thread"
    ms = harness.measure(samplers, settings, progress)
    med = {k: v["median"] for k, v in ms.items()}
    torch_best = min((med[v] for v in POPULATION_VARIANTS if v in med), default=None)
    ratios = {
        "speedup_vs_sequential": _ratio(med["sequential"], med["population"]),
        "speedup_vs_torch": _ratio(torch_best, med["population"]),
        "population_over_floor": _ratio(med["population"], med["gemm-floor"]),
        "population_over_serial_floor": _ratio(med["population"], med["gemm-floor-serial"]),
        "per_member_batches_over_shared": _ratio(med["population-per-member"],
                                                 med["population"]),
        "ms_per_member": med["population"] / spec.k,
    }
    return _result(spec.describe(), "ms/step", ms, notes, skipped, ratios)


def _adam_update_workload(worker, settings, progress):
    import numpy as np

    from fastnet import optimizers
    from fastnet.reference import optimizers as reference_optimizers

    views, n_decayed, params, grads = adam_data()
    fast = optimizers.Adam(lr=0.001)
    samplers = {"fastnet": harness.local(
        lambda: fast.update_flat(params, grads, views, 0.0, n_decayed))}
    ref_params, ref_grads = split_arena(params, views), split_arena(grads, views)
    ref = reference_optimizers.Adam(lr=0.001)
    samplers["reference"] = harness.local(lambda: ref.update(ref_params, ref_grads))
    notes, skipped = {}, {}
    worker.add_to("adam-update", samplers, notes, skipped)

    serial, parallel = copy_kernels()
    copy_arrays = [params.copy(), grads.copy(), np.zeros_like(params), np.zeros_like(params)]
    samplers["copy-floor"] = harness.local(lambda: parallel(*copy_arrays))
    samplers["copy-floor-1t"] = harness.local(lambda: serial(*copy_arrays))
    notes["copy-floor"] = "compiled, parallel, same bytes as Adam (read 4 arrays, write 3)"
    notes["copy-floor-1t"] = "the same copy on one thread"
    ms = harness.measure(samplers, settings, progress)
    med = {k: v["median"] for k, v in ms.items()}
    floor = min(med["copy-floor"], med["copy-floor-1t"])
    ratios = {"fastnet_over_torch": _ratio(med["fastnet"], med.get("torch")),
              "speedup_vs_reference": _ratio(med["reference"], med["fastnet"]),
              "fastnet_over_copy_floor": _ratio(med["fastnet"], floor)}
    n_bytes = params.size * params.itemsize * 7
    return _result(f"Adam update of {params.size:,} float32 params ({INPUT_SIZE}-1024-1024-"
                   f"{OUTPUT_SIZE} net); {n_bytes / 1e6:.0f} MB moved per step",
                   "ms/step", ms, notes, skipped, ratios)


def _norm_layer_workload(name, worker, settings, progress):
    spec = NORM_LAYERS[name]
    x, dout = norm_data(spec)
    samplers = {"fastnet": harness.local(layer_step(spec, x, dout)),
                "reference": harness.local(layer_step(spec, x, dout, "fastnet.reference"))}
    notes, skipped = {}, {}
    if has_torch_module(spec):
        worker.add_to(name, samplers, notes, skipped)
    else:
        skipped["torch"] = "torch has no switchable normalization: the reference is the comparator"
    samplers["copy"] = harness.local(copy_step(x, dout))
    notes["copy"] = "np.copyto x->y and dout->dx: the bytes the layer must move"
    if spec.layer == "weight":
        samplers["affine"] = harness.local(affine_step(spec, x, dout))
        notes["affine"] = "fastnet's Affine alone (the GEMMs), no target"
    ms = harness.measure(samplers, settings, progress)
    med = {k: v["median"] for k, v in ms.items()}
    ratios = {"speedup_vs_torch": _ratio(med.get("torch"), med["fastnet"]),
              "speedup_vs_reference": _ratio(med["reference"], med["fastnet"]),
              "fastnet_over_copy": _ratio(med["fastnet"], med["copy"])}
    if "affine" in med:
        ratios["fastnet_over_affine"] = _ratio(med["fastnet"], med["affine"])
    n_bytes = (x.nbytes + dout.nbytes) * 2
    return _result(f"{spec.describe()}; the copy moves {n_bytes / 1e3:.0f} kB", "ms/step",
                   ms, notes, skipped, ratios)


def _startup_workload(use_torch, n_threads, settings, torch_policy, progress):
    env = harness.child_env(n_threads)
    harness.run_child(STARTUP_FASTNET, env)  # make sure the cache is built for this source
    torch = use_torch and harness.has_module("torch")
    runs = {"fastnet warm": [], "torch": [] if torch else None}
    phases = {}
    torch_env = harness.torch_env(n_threads, torch_policy)
    for _ in range(settings["startup_runs"]):
        wall, phases["fastnet warm"] = harness.run_child(STARTUP_FASTNET, env)
        runs["fastnet warm"].append(wall)
        if torch:
            wall, phases["torch"] = harness.run_child(STARTUP_TORCH.format(threads=n_threads),
                                                      torch_env)
            runs["torch"].append(wall)
    for _ in range(settings["cold_runs"]):
        progress("  cold start: compiling every kernel into an empty cache (about a minute)")
        with tempfile.TemporaryDirectory(prefix="fastnet-cold-") as cache:
            wall, phases["fastnet cold"] = harness.run_child(
                STARTUP_FASTNET, harness.child_env(n_threads, NUMBA_CACHE_DIR=cache))
        runs.setdefault("fastnet cold", []).append(wall)
    implementations = {name: harness.summary(walls, 1, scale=1.0)
                       for name, walls in runs.items() if walls}
    for name, summary in implementations.items():
        summary["phases"] = {k: round(v, 4) for k, v in phases[name].items()}
    med = {k: v["median"] for k, v in implementations.items()}
    ratios = {"warm_s": med["fastnet warm"], "cold_s": med.get("fastnet cold"),
              "torch_s": med.get("torch")}
    skipped = {}
    if not torch:
        skipped["torch"] = "left out (--no-torch)" if not use_torch else "torch is not importable"
    if not settings["cold_runs"]:
        skipped["fastnet cold"] = "not run with --quick (about a minute)"
    return _result("new process: import, build the mlp net, first train step (whole "
                   "process wall time)", "s", implementations, {}, skipped, ratios)


def _leak_workload(settings, progress):
    spec = NETS["mlp-sgd"]
    x, t = make_batch(spec.batch)
    step = fastnet_step(spec, x, t)
    for _ in range(min(200, settings["leak_steps"])):
        step()
    gc.collect()
    before = harness.rss_mb()
    steps = settings["leak_steps"]
    start = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - start
    gc.collect()
    after = harness.rss_mb()
    growth = None if before is None else after - before
    description = f"RSS growth over {steps:,} fastnet train steps of mlp-sgd"
    if before is None:
        description += " (not measured: psutil is not installed, see the bench extra)"
    return _result(description, "MB", {}, {}, {},
                   {"rss_growth_mb": growth, "rss_before_mb": before, "rss_after_mb": after,
                    "steps": steps, "ms_per_step": elapsed / steps * 1e3})


def run(workloads, n_threads, settings, use_torch=True, torch_policy="default",
        progress=lambda text: None):
    """Run ``workloads``; returns ``{"meta": ..., "settings": ..., "workloads": {name:
    result}}``."""
    import fastnet.nets  # noqa: F401  (loads the kernels before the threads are set)
    harness.set_threads(n_threads)
    timed_by_worker = [w for w in workloads if w in NETS or w in NORM_LAYERS
                       or w in POPULATIONS or w == "adam-update"]
    worker = TorchWorker(n_threads, torch_policy, enabled=use_torch and bool(timed_by_worker),
                         reason=("left out (--no-torch)" if not use_torch else
                                 None if timed_by_worker else "no step workload selected"))
    try:
        meta = harness.environment(n_threads)
        meta.update(torch=None, torch_note=worker.reason)
        if worker.info:
            meta.update(torch=worker.info["version"], torch_threads=worker.info["threads"],
                        torch_omp_wait_policy=worker.info["omp_wait_policy"],
                        torch_threadpools=worker.info["threadpools"])
        results = {}
        for name in workloads:
            progress(f"{name} ...")
            if name in NETS:
                result = _train_workload(name, worker, settings, progress)
            elif name in POPULATIONS:
                result = _population_workload(name, worker, settings, progress)
            elif name in MEMORY_WORKLOADS:
                result = memory_workload(name, n_threads, progress)
            elif name == "adam-update":
                result = _adam_update_workload(worker, settings, progress)
            elif name == "accuracy-10k":
                result = _accuracy_workload(settings, progress)
            elif name in NORM_LAYERS:
                result = _norm_layer_workload(name, worker, settings, progress)
            elif name == "startup":
                result = _startup_workload(use_torch, n_threads, settings, torch_policy,
                                           progress)
            elif name == "experiment-all":
                result = experiment_all_workload(settings, progress)
            elif name == "leak":
                result = _leak_workload(settings, progress)
            elif name == "sweep-hpo":
                result = sweep_hpo_workload(n_threads, settings, use_torch, progress)
            elif name == "sweep-overhead":
                result = sweep_overhead_workload(n_threads, settings, progress)
            elif name == "sweep-dask":
                result = sweep_dask_workload(n_threads, settings, progress)
            elif name == "sweep-halving":
                result = sweep_halving_workload(n_threads, settings, use_torch, progress)
            else:
                result = book_scripts_workload(n_threads, settings, progress)
            result["targets"] = [t.report(result["ratios"].get(t.metric))
                                 for t in TARGETS.get(name, [])]
            results[name] = result
    finally:
        worker.close()
    meta["load_average_after"] = harness.load_average()
    return {"meta": meta, "settings": settings, "workloads": results}
