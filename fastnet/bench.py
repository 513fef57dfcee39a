"""The headline benchmarks side by side in one run: ``fastnet bench``.

Each workload builds every implementation on the same inputs, then times them in
rounds, round-robin (the starting implementation rotates each round), so that noise
on a shared machine hits all of them alike; the table shows the median time per
step, the ratios and the targets of issue 3 with PASS or MISS.

Implementations of a training step:

* ``fastnet``: ``net.train_step(x, t, optimizer)`` with a ``fastnet.optimizers`` optimizer;
* ``reference``: the NumPy oracle, the book's ``grads = net.gradient(x, t)`` then
  ``optimizer.update(net.params, grads)``;
* ``torch``: the same model in ``torch.nn`` (float32; ``torch.optim`` with
  ``fused=True`` where the build supports it), when torch is importable;
* ``gemm-floor``: only the GEMMs of the step (one per layer forward, two per layer
  backward but one for the first layer), as NumPy ``np.matmul(out=)`` into
  preallocated arrays: what a step costs with nothing but BLAS;
* ``gemm-floor-njit``: the same GEMMs from one compiled function, through fastnet's
  compiled ``blas.gemm`` (NumPy's BLAS where it exposes CBLAS, else Numba's ``np.dot``
  and SciPy's BLAS), without Python in between.

torch runs in a worker process of its own, driven sample by sample from the same
round-robin loop (it sleeps while the others run, and they sleep while it runs).  In
one process the two OpenMP runtimes cannot both run as their users run them: torch
loads its libgomp into the global symbol scope, so Numba's pool picks it up; without
fastnet's ``OMP_WAIT_POLICY=PASSIVE`` that pool spins against BLAS's threads (a
fastnet step was measured 10x slower on 16 cores), with it torch runs 2-4x slower.
The worker gets the environment of a torch user: no ``OMP_WAIT_POLICY``, unless
``--torch-omp-wait-policy inherit``.

Every thread pool gets ``--threads`` threads (all cores by default): Numba's, each
BLAS (threadpoolctl) and torch's.  Run ``python -m fastnet.bench --help``; ``--json``
prints the results for machines.
"""
import argparse
import contextlib
import gc
import importlib
import importlib.util
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np

INPUT_SIZE, OUTPUT_SIZE = 784, 10
WIDE_HIDDEN = (1024, 1024)

# Seconds of measurement per workload, and the target length of one timed sample.
# ``gap_s``: a pause before each sample, longer than BLAS threads spin after a call
# (OpenBLAS: 2**28 cycles, about 0.1 s), so that one implementation's idle pool does not
# take cores from the next one's (a 16-thread step was measured up to 4x slower).
FULL = {"seconds": 20.0, "min_rounds": 15, "sample_s": 0.2, "gap_s": 0.15, "warm_s": 0.5,
        "startup_runs": 5, "cold_runs": 1, "leak_steps": 10_000}
QUICK = {"seconds": 1.0, "min_rounds": 4, "sample_s": 0.03, "gap_s": 0.12, "warm_s": 0.15,
         "startup_runs": 1, "cold_runs": 0, "leak_steps": 2_000}
LEAK_TARGET_MB = 1.0  # not from the issue: growth over the leak run that still counts as flat


@dataclass
class NetSpec:
    """A headline training workload."""

    net: str                    # MultiLayerNet or MultiLayerNetExtend
    hidden: tuple
    batch: int
    optimizer: str              # SGD or Adam
    lr: float
    extend: dict = field(default_factory=dict)  # use_batchnorm / use_dropout, dropout_ratio

    def describe(self):
        sizes = [INPUT_SIZE, *self.hidden, OUTPUT_SIZE]
        text = "-".join(map(str, sizes))
        if len(set(self.hidden)) == 1 and len(self.hidden) > 2:
            text = f"{INPUT_SIZE}-{self.hidden[0]}x{len(self.hidden)}-{OUTPUT_SIZE}"
        extra = "".join(f" {k}={v}" for k, v in self.extend.items())
        return f"{self.net} {text}{extra}, batch {self.batch}, {self.optimizer}(lr={self.lr})"


@dataclass
class Target:
    metric: str        # a key of the workload's ratios
    op: str            # ">=" or "<="
    threshold: float
    label: str

    def status(self, value):
        if value is None or not math.isfinite(value):
            return "SKIP"
        ok = value >= self.threshold if self.op == ">=" else value <= self.threshold
        return "PASS" if ok else "MISS"

    def report(self, value):
        return {"metric": self.metric, "label": self.label, "op": self.op,
                "threshold": self.threshold, "value": value, "status": self.status(value)}


NETS = {
    "mlp-sgd": NetSpec("MultiLayerNet", (100,) * 4, 128, "SGD", 0.01),
    "mlp-adam": NetSpec("MultiLayerNet", (100,) * 4, 128, "Adam", 0.001),
    "bn-sgd": NetSpec("MultiLayerNetExtend", (100,) * 5, 100, "SGD", 0.01,
                      {"use_batchnorm": True}),
    "dropout-sgd": NetSpec("MultiLayerNetExtend", (100,) * 6, 100, "SGD", 0.01,
                           {"use_dropout": True, "dropout_ratio": 0.2}),
    "wide-adam": NetSpec("MultiLayerNet", WIDE_HIDDEN, 256, "Adam", 0.001),
}

_MLP_TARGETS = [Target("speedup_vs_torch", ">=", 2.0, "fastnet vs torch (x faster)"),
                Target("speedup_vs_reference", ">=", 5.0, "fastnet vs reference (x faster)"),
                Target("fastnet_over_floor", "<=", 1.2, "fastnet / gemm-floor (time)")]
TARGETS = {
    "mlp-sgd": _MLP_TARGETS,
    "mlp-adam": _MLP_TARGETS,
    "bn-sgd": [Target("speedup_vs_torch", ">=", 2.5, "fastnet vs torch (x faster)")],
    "dropout-sgd": [Target("speedup_vs_torch", ">=", 2.5, "fastnet vs torch (x faster)")],
    "wide-adam": [Target("speedup_vs_torch", ">=", 1.5, "fastnet vs torch (x faster)"),
                  Target("fastnet_over_floor", "<=", 1.15, "fastnet / gemm-floor (time)")],
    "adam-update": [Target("fastnet_over_torch", "<=", 0.8, "fastnet / torch (time)"),
                    Target("fastnet_over_copy_floor", "<=", 1.25, "fastnet / copy-floor (time)")],
    "startup": [Target("warm_s", "<=", 1.5, "warm start, whole process (s)")],
    "leak": [Target("rss_growth_mb", "<=", LEAK_TARGET_MB, "RSS growth (MB; threshold ours)")],
}
WORKLOADS = [*NETS, "adam-update", "startup", "leak"]


# --------------------------------------------------------------------------- threads

def _set_threads(n):
    """The same thread count for Numba and every BLAS and OpenMP runtime loaded."""
    import numba
    import scipy.linalg.cython_blas  # noqa: F401  (the BLAS of Numba's np.dot: load it to limit it)
    import threadpoolctl

    if _has_module("fastnet.threads"):
        threads = importlib.import_module("fastnet.threads")
        if hasattr(threads, "set_num_threads"):
            threads.set_num_threads(n)
    numba.set_num_threads(n)
    threadpoolctl.threadpool_limits(limits=n)


def _threadpools():
    import threadpoolctl

    return [{key: info.get(key) for key in ("user_api", "internal_api", "prefix", "version",
                                            "num_threads", "threading_layer", "architecture",
                                            "filepath")}
            for info in threadpoolctl.threadpool_info()]


def _has_module(name):
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _default_threads():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _load_average():
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


def _environment(n_threads, worker):
    import numba

    import fastnet

    _copy_kernels()[1](*[np.zeros(4, np.float32) for _ in range(4)])  # start Numba's pool
    meta = {
        "fastnet": fastnet.__version__, "numpy": np.__version__, "numba": numba.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu": _cpu_model(), "cores": _default_threads(), "threads": n_threads,
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": numba.threading_layer(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average": _load_average(),
        "threadpools": _threadpools(),
        "torch": None, "torch_note": worker.reason,
    }
    if worker.info:
        meta.update(torch=worker.info["version"], torch_threads=worker.info["threads"],
                    torch_omp_wait_policy=worker.info["omp_wait_policy"],
                    torch_threadpools=worker.info["threadpools"])
    return meta


# --------------------------------------------------------------------------- timing

def _local(fn):
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


def _measure(samplers, settings, progress):
    """Median time per call of each sampler (see ``_local``), sampled round-robin."""
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
    return {name: _summary(samples[name], inner[name]) for name in names}


def _summary(seconds, steps_per_sample, scale=1e3):
    values = np.asarray(seconds) * scale
    return {"median": float(np.median(values)), "p25": float(np.percentile(values, 25)),
            "p75": float(np.percentile(values, 75)), "min": float(values.min()),
            "samples": len(values), "steps_per_sample": steps_per_sample}


# --------------------------------------------------------------------------- training steps

def _batch(batch, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((batch, INPUT_SIZE), dtype=np.float32)
    t = rng.integers(0, OUTPUT_SIZE, batch)
    return x, t


def fastnet_step(spec, x, t):
    """fastnet's fused step of ``spec``: ``net.train_step(x, t, optimizer)``."""
    from fastnet import nets, optimizers

    net = getattr(nets, spec.net)(INPUT_SIZE, list(spec.hidden), OUTPUT_SIZE, seed=0,
                                  **spec.extend)
    optimizer = getattr(optimizers, spec.optimizer)(lr=spec.lr)
    return lambda: net.train_step(x, t, optimizer)


def book_step(spec, x, t, package="fastnet.reference"):
    """The book's step, ``optimizer.update(net.params, net.gradient(x, t))``, on the
    nets and optimizers of ``package`` (the NumPy reference, or fastnet's layers)."""
    nets = importlib.import_module(f"{package}.nets")
    optimizers = importlib.import_module(f"{package}.optimizers")
    net = getattr(nets, spec.net)(INPUT_SIZE, list(spec.hidden), OUTPUT_SIZE, seed=0,
                                  **spec.extend)
    optimizer = getattr(optimizers, spec.optimizer)(lr=spec.lr)

    def step():
        optimizer.update(net.params, net.gradient(x, t))
    return step


def torch_model(torch, hidden, use_batchnorm=False, use_dropout=False, dropout_ratio=0.5):
    """The book's MultiLayerNet(Extend) in torch.nn: [Linear, (BatchNorm1d), ReLU,
    (Dropout)] per hidden layer, then Linear (float32)."""
    nn = torch.nn
    modules, fan_in = [], INPUT_SIZE
    for width in hidden:
        modules.append(nn.Linear(fan_in, width))
        if use_batchnorm:
            modules.append(nn.BatchNorm1d(width, eps=1e-6, momentum=0.1))  # the book's 0.9
        modules.append(nn.ReLU())
        if use_dropout:
            modules.append(nn.Dropout(dropout_ratio))
        fan_in = width
    modules.append(nn.Linear(fan_in, OUTPUT_SIZE))
    return nn.Sequential(*modules).train()


def torch_optimizer(torch, name, params, **hyper):
    """``torch.optim.<name>(params, **hyper)`` fused when this build supports it (else
    foreach), and which of the two it is."""
    cls = getattr(torch.optim, name)
    params = list(params)
    for flavour in ("fused", "foreach"):
        try:
            optimizer = cls(params, **hyper, **{flavour: True})
            if flavour == "fused":  # some builds accept the flag and fail at the first step
                saved = [(p.detach().clone(), p.grad) for p in params]
                for p in params:
                    p.grad = torch.zeros_like(p)
                optimizer.step()
                with torch.no_grad():
                    for p, (value, grad) in zip(params, saved):
                        p.copy_(value)
                        p.grad = grad
                optimizer = cls(params, **hyper, fused=True)
            return optimizer, flavour
        except (RuntimeError, TypeError, ValueError):
            continue
    return cls(params, **hyper), "for-loop"


def torch_step(torch, spec, x, t):
    """A torch training step of ``spec`` and a note on the optimizer's flavour."""
    torch.manual_seed(0)
    model = torch_model(torch, spec.hidden, **spec.extend)
    optimizer, flavour = torch_optimizer(torch, spec.optimizer, model.parameters(),
                                         lr=spec.lr)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t).long()
    cross_entropy = torch.nn.functional.cross_entropy

    def step():
        optimizer.zero_grad(set_to_none=True)
        cross_entropy(model(xt), tt).backward()
        optimizer.step()
    return step, f"{flavour} {spec.optimizer}"


def _floor_arrays(spec, x, seed=1):
    rng = np.random.default_rng(seed)
    dims = [INPUT_SIZE, *spec.hidden, OUTPUT_SIZE]
    n = x.shape[0]
    weights = [(rng.standard_normal((a, b)) / math.sqrt(a)).astype(np.float32)
               for a, b in itertools.pairwise(dims)]
    dlogits = (rng.standard_normal((n, OUTPUT_SIZE)) / n).astype(np.float32)
    return dims, weights, dlogits


def _gemm_floor_step(spec, x):
    """The step's GEMMs alone: NumPy matmuls into preallocated outputs."""
    dims, weights, dlogits = _floor_arrays(spec, x)
    n = x.shape[0]
    acts = [x] + [np.empty((n, d), np.float32) for d in dims[1:]]
    wgrads = [np.empty_like(w) for w in weights]
    dacts = [None] + [np.empty((n, d), np.float32) for d in dims[1:-1]]
    matmul = np.matmul

    def step():
        for layer, w in enumerate(weights):
            matmul(acts[layer], w, out=acts[layer + 1])
        dz = dlogits
        for layer in range(len(weights) - 1, -1, -1):
            matmul(acts[layer].T, dz, out=wgrads[layer])
            if layer:
                matmul(dz, weights[layer].T, out=dacts[layer])
                dz = dacts[layer]
    return step


_KERNELS = {}


def _gemm_chain_kernel():
    if "gemm_chain" not in _KERNELS:
        import numba

        from . import config
        from .kernels.blas import gemm

        # Not cached: Numba would not see a change to blas.gemm, inlined from another module.
        @numba.njit(**dict(config.JIT, cache=False))
        def gemm_chain(x, dims, weights, wgrads, acts, scratch, dlogits):
            n = x.shape[0]
            n_layers = dims.size - 1
            h = x
            w_off, a_off = 0, 0
            for layer in range(n_layers):
                d_in, d = dims[layer], dims[layer + 1]
                out = acts[a_off:a_off + n * d].reshape((n, d))
                gemm(h, weights[w_off:w_off + d_in * d].reshape((d_in, d)), out)
                h = out
                w_off += d_in * d
                a_off += n * d
            dz = dlogits
            a_off -= n * dims[n_layers]
            for layer in range(n_layers - 1, -1, -1):
                d_in, d = dims[layer], dims[layer + 1]
                w_off -= d_in * d
                h_in = x if layer == 0 else acts[a_off - n * d_in:a_off].reshape((n, d_in))
                gemm(h_in.T, dz, wgrads[w_off:w_off + d_in * d].reshape((d_in, d)))
                if layer > 0:
                    dh = scratch[layer % 2, :n * d_in].reshape((n, d_in))
                    gemm(dz, weights[w_off:w_off + d_in * d].reshape((d_in, d)).T, dh)
                    dz = dh
                    a_off -= n * d_in

        _KERNELS["gemm_chain"] = gemm_chain
    return _KERNELS["gemm_chain"]


def _gemm_backend():
    from .kernels import blas
    return blas.BACKEND


def _gemm_floor_njit_step(spec, x):
    """The same GEMMs from one compiled function, through fastnet's ``blas.gemm``."""
    dims, weights, dlogits = _floor_arrays(spec, x)
    n = x.shape[0]
    flat_w = np.concatenate([w.ravel() for w in weights])
    wgrads = np.empty_like(flat_w)
    acts = np.empty(n * sum(dims[1:]), np.float32)
    scratch = np.empty((2, n * max(dims[1:-1])), np.float32)
    dims = np.array(dims, np.int64)
    kernel = _gemm_chain_kernel()
    return lambda: kernel(x, dims, flat_w, wgrads, acts, scratch, dlogits)


def _train_workload(name, worker, settings, progress):
    spec = NETS[name]
    x, t = _batch(spec.batch)
    samplers = {"fastnet": _local(fastnet_step(spec, x, t)),
                "reference": _local(book_step(spec, x, t))}
    notes, skipped = {}, {}
    worker.add_to(name, samplers, notes, skipped)
    samplers["gemm-floor"] = _local(_gemm_floor_step(spec, x))
    samplers["gemm-floor-njit"] = _local(_gemm_floor_njit_step(spec, x))
    notes["gemm-floor"] = "NumPy's BLAS"
    notes["gemm-floor-njit"] = f"compiled fastnet blas.gemm ({_gemm_backend()}), no target"
    ms = _measure(samplers, settings, progress)
    med = {k: v["median"] for k, v in ms.items()}
    ratios = {
        "speedup_vs_torch": _ratio(med.get("torch"), med["fastnet"]),
        "speedup_vs_reference": _ratio(med["reference"], med["fastnet"]),
        "fastnet_over_floor": _ratio(med["fastnet"], med["gemm-floor"]),
        "fastnet_over_floor_njit": _ratio(med["fastnet"], med["gemm-floor-njit"]),
        # the most any implementation on this BLAS could gain: the other's time / the floor
        "ceiling_vs_torch": _ratio(med.get("torch"), med["gemm-floor"]),
        "ceiling_vs_reference": _ratio(med["reference"], med["gemm-floor"]),
    }
    return _result(spec.describe(), "ms/step", ms, notes, skipped, ratios)


def _result(description, unit, implementations, notes, skipped, ratios):
    """One workload's entry of the report (``targets`` are added by ``run``)."""
    return {"description": description, "unit": unit, "implementations": implementations,
            "notes": notes, "skipped": skipped, "ratios": ratios}


def _ratio(a, b):
    return None if a is None or b is None or not b else a / b


# --------------------------------------------------------------------------- Adam alone

def _copy_kernels():
    """A copy of Adam's traffic: read p, g, m, v; write p, m, v (serial and parallel)."""
    if "copy" not in _KERNELS:
        import numba

        from . import config

        def rotate(p, g, m, v):
            for i in numba.prange(p.size):
                old = p[i]
                p[i] = m[i]
                m[i] = v[i]
                v[i] = old + g[i]

        _KERNELS["copy"] = (numba.njit(**config.JIT)(rotate),
                            numba.njit(**config.PARALLEL_JIT)(rotate))
    return _KERNELS["copy"]


def _adam_data():
    """The 2x1024 net's parameters as one arena (weights first) and its gradients."""
    from fastnet.reference import nets as reference_nets

    net = reference_nets.MultiLayerNet(INPUT_SIZE, list(WIDE_HIDDEN), OUTPUT_SIZE, seed=0)
    keys = sorted(net.params, key=lambda k: (not k.startswith("W"), k))
    views, offset = {}, 0
    for key in keys:
        views[key] = (offset, net.params[key].shape)
        offset += net.params[key].size
    n_decayed = sum(net.params[k].size for k in keys if k.startswith("W"))
    params = np.concatenate([net.params[k].ravel() for k in keys])
    rng = np.random.default_rng(2)
    grads = (rng.standard_normal(params.size) * 1e-2).astype(np.float32)
    return views, n_decayed, params, grads


def _split(arena, views):
    """Copies of the per-key arrays of an arena."""
    return {k: arena[o:o + math.prod(s)].reshape(s).copy() for k, (o, s) in views.items()}


def _torch_adam_step(torch):
    views, _, params, grads = _adam_data()
    grad_dict = _split(grads, views)
    tensors = [torch.from_numpy(p) for p in _split(params, views).values()]
    optimizer, flavour = torch_optimizer(torch, "Adam", tensors, lr=0.001)
    for tensor, key in zip(tensors, views):
        tensor.grad = torch.from_numpy(grad_dict[key])
    return optimizer.step, f"{flavour} Adam, grads preset"


def _adam_update_workload(worker, settings, progress):
    from fastnet import optimizers
    from fastnet.reference import optimizers as reference_optimizers

    views, n_decayed, params, grads = _adam_data()
    fast = optimizers.Adam(lr=0.001)
    samplers = {"fastnet": _local(lambda: fast.update_flat(params, grads, views, 0.0,
                                                           n_decayed))}
    ref_params, ref_grads = _split(params, views), _split(grads, views)
    ref = reference_optimizers.Adam(lr=0.001)
    samplers["reference"] = _local(lambda: ref.update(ref_params, ref_grads))
    notes, skipped = {}, {}
    worker.add_to("adam-update", samplers, notes, skipped)

    serial, parallel = _copy_kernels()
    copy_arrays = [params.copy(), grads.copy(), np.zeros_like(params), np.zeros_like(params)]
    samplers["copy-floor"] = _local(lambda: parallel(*copy_arrays))
    samplers["copy-floor-1t"] = _local(lambda: serial(*copy_arrays))
    notes["copy-floor"] = "compiled, parallel, same bytes as Adam (read 4 arrays, write 3)"
    notes["copy-floor-1t"] = "the same copy on one thread"
    ms = _measure(samplers, settings, progress)
    med = {k: v["median"] for k, v in ms.items()}
    floor = min(med["copy-floor"], med["copy-floor-1t"])
    ratios = {"fastnet_over_torch": _ratio(med["fastnet"], med.get("torch")),
              "speedup_vs_reference": _ratio(med["reference"], med["fastnet"]),
              "fastnet_over_copy_floor": _ratio(med["fastnet"], floor)}
    n_bytes = params.size * params.itemsize * 7
    return _result(f"Adam update of {params.size:,} float32 params ({INPUT_SIZE}-1024-1024-"
                   f"{OUTPUT_SIZE} net); {n_bytes / 1e6:.0f} MB moved per step",
                   "ms/step", ms, notes, skipped, ratios)


# --------------------------------------------------------------------------- torch worker

def _torch_env(n_threads, policy):
    """The environment of a torch user's process (see the module docstring)."""
    env = _child_env(n_threads)
    if policy == "default" and env.get("OMP_WAIT_POLICY") == "PASSIVE":
        del env["OMP_WAIT_POLICY"]
    return env


def _torch_available():
    if "torch" in sys.modules and sys.modules["torch"] is None:  # import blocked
        return False
    return _has_module("torch")


class TorchWorker:
    """torch in a process of its own, timed sample by sample: ``add_to`` builds a
    workload there and adds a sampler whose ``sample(k)`` has the worker run ``k`` steps
    and returns the seconds the worker measured (pipe latency is not timed)."""

    def __init__(self, n_threads, policy, enabled=True, reason=None):
        self.proc, self.info, self.reason = None, None, reason
        if not enabled:
            return
        if not _torch_available():
            self.reason = "torch is not importable"
            return
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115  (closed in close())
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _WORKER_START],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True,
            env=_torch_env(n_threads, policy))
        self.info = self._call(op="info")
        if self.info is None:
            self.close()

    def _call(self, **message):
        if self.proc is None:
            return None
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self._stderr.seek(0)
            tail = self._stderr.read()[-1500:].strip()
            self.reason = f"the torch worker died: {tail or 'no message'}"
            self.close()
            return None
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"torch worker: {reply['error']}")
        return reply

    def add_to(self, workload, samplers, notes, skipped):
        """Build ``workload`` in the worker and add its sampler, or say why not."""
        reply = self._call(op="build", workload=workload)
        if reply is None:
            skipped["torch"] = self.reason
            return
        samplers["torch"] = self._sample
        notes["torch"] = reply["note"]

    def _sample(self, k):
        reply = self._call(op="run", k=k)
        if reply is None:
            raise RuntimeError(self.reason)
        return reply["seconds"]

    def close(self):
        if self.proc is not None:
            with contextlib.suppress(OSError, ValueError):
                self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc = None
            self._stderr.close()


# torch first: its OpenMP runtime reads OMP_WAIT_POLICY as it loads, before importing
# fastnet sets it.
_WORKER_START = """import os
policy = os.environ.get("OMP_WAIT_POLICY")
import torch
import fastnet.bench
fastnet.bench._torch_worker_main(policy)
"""


def _torch_worker_main(policy):
    """The worker's loop: one JSON request per line on stdin, one reply per line."""
    import torch

    reply_to = sys.stdout
    sys.stdout = sys.stderr  # nothing but replies on the pipe
    torch.set_num_threads(int(os.environ["FASTNET_BENCH_THREADS"]))
    step = None
    for line in sys.stdin:
        message = json.loads(line)
        try:
            if message["op"] == "info":
                reply = {"version": torch.__version__, "threads": torch.get_num_threads(),
                         "omp_wait_policy": policy or "unset", "threadpools": _threadpools()}
            elif message["op"] == "build":
                name = message["workload"]
                if name == "adam-update":
                    step, note = _torch_adam_step(torch)
                else:
                    spec = NETS[name]
                    step, note = torch_step(torch, spec, *_batch(spec.batch))
                reply = {"note": note}
            else:
                reply = {"seconds": _local(step)(message["k"])}
        except Exception as exc:  # noqa: BLE001  (any failure goes to the parent, which raises it)
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        reply_to.write(json.dumps(reply) + "\n")
        reply_to.flush()


# --------------------------------------------------------------------------- startup

STARTUP_FASTNET = """
import time
start = time.perf_counter()
import numpy as np
from fastnet.nets import MultiLayerNet
from fastnet.optimizers import SGD
imported = time.perf_counter()
net = MultiLayerNet(784, [100] * 4, 10, seed=0)
optimizer = SGD(lr=0.01)
rng = np.random.default_rng(0)
x, t = rng.random((128, 784), dtype=np.float32), rng.integers(0, 10, 128)
built = time.perf_counter()
net.train_step(x, t, optimizer)
done = time.perf_counter()
print({"import": imported - start, "build": built - imported, "first_step": done - built})
"""

STARTUP_TORCH = """
import time
start = time.perf_counter()
import torch
imported = time.perf_counter()
torch.set_num_threads({threads})
torch.manual_seed(0)
layers, fan_in = [], 784
for width in [100] * 4:
    layers += [torch.nn.Linear(fan_in, width), torch.nn.ReLU()]
    fan_in = width
model = torch.nn.Sequential(*layers, torch.nn.Linear(fan_in, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
x, t = torch.rand(128, 784), torch.randint(0, 10, (128,))
built = time.perf_counter()
optimizer.zero_grad()
torch.nn.functional.cross_entropy(model(x), t).backward()
optimizer.step()
done = time.perf_counter()
print({{"import": imported - start, "build": built - imported, "first_step": done - built}})
"""


def _child_env(n_threads, **extra):
    import fastnet

    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastnet.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MKL_NUM_THREADS", "FASTNET_NUM_THREADS", "FASTNET_BENCH_THREADS"):
        env[var] = str(n_threads)
    env.update(extra)
    return env


def _run_child(code, env):
    """Wall seconds of ``python -c code`` and the phases it printed."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=900, check=False)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(f"startup child failed:\n{proc.stderr[-2000:]}")
    import ast
    return wall, ast.literal_eval(proc.stdout.strip().splitlines()[-1])


def _startup_workload(use_torch, n_threads, settings, torch_policy, progress):
    env = _child_env(n_threads)
    _run_child(STARTUP_FASTNET, env)  # make sure the cache is built for this source
    torch = use_torch and _torch_available()
    runs = {"fastnet warm": [], "torch": [] if torch else None}
    phases = {}
    torch_env = _torch_env(n_threads, torch_policy)
    for _ in range(settings["startup_runs"]):
        wall, phases["fastnet warm"] = _run_child(STARTUP_FASTNET, env)
        runs["fastnet warm"].append(wall)
        if torch:
            wall, phases["torch"] = _run_child(STARTUP_TORCH.format(threads=n_threads), torch_env)
            runs["torch"].append(wall)
    for _ in range(settings["cold_runs"]):
        progress("  cold start: compiling every kernel into an empty cache (about a minute)")
        with tempfile.TemporaryDirectory(prefix="fastnet-cold-") as cache:
            wall, phases["fastnet cold"] = _run_child(
                STARTUP_FASTNET, _child_env(n_threads, NUMBA_CACHE_DIR=cache))
        runs.setdefault("fastnet cold", []).append(wall)
    implementations = {name: _summary(walls, 1, scale=1.0)
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


# --------------------------------------------------------------------------- leak check

def _rss_mb():
    with contextlib.suppress(OSError, ValueError), open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    with contextlib.suppress(ImportError):
        import psutil
        return psutil.Process().memory_info().rss / 2**20
    return None


def _leak_workload(settings, progress):
    spec = NETS["mlp-sgd"]
    x, t = _batch(spec.batch)
    step = fastnet_step(spec, x, t)
    for _ in range(min(200, settings["leak_steps"])):
        step()
    gc.collect()
    before = _rss_mb()
    steps = settings["leak_steps"]
    start = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - start
    gc.collect()
    after = _rss_mb()
    growth = None if before is None else after - before
    return _result(f"RSS growth over {steps:,} fastnet train steps of mlp-sgd", "MB", {}, {},
                   {}, {"rss_growth_mb": growth, "rss_before_mb": before,
                        "rss_after_mb": after, "steps": steps,
                        "ms_per_step": elapsed / steps * 1e3})


# --------------------------------------------------------------------------- report

def _fmt(value, unit):
    if value is None:
        return "-"
    return f"{value:.3f}" if unit != "s" else f"{value:.2f}"


def _pool_lines(pools):
    lines = []
    for lib in pools:
        where = lib["filepath"] or ""
        owner = (where.split("site-packages/")[-1].split("/")[0] if "site-packages" in where
                 else os.path.dirname(where))
        extra = ", ".join(f"{k} {lib[k]}" for k in ("threading_layer", "architecture") if lib[k])
        lines.append(f"    {lib['user_api']:6s} {lib['internal_api']:9s} "
                     f"{lib['version'] or '':14s} {lib['num_threads']} threads  "
                     f"{os.path.basename(where)} ({owner})" + (f"; {extra}" if extra else ""))
    return lines


def _header_lines(meta):
    torch_threads = f"; torch {meta['torch_threads']}" if meta.get("torch") else ""
    lines = [
        (f"fastnet bench: fastnet {meta['fastnet']}, numpy {meta['numpy']}, numba "
         f"{meta['numba']}, torch {meta['torch'] or '-'}, python {meta['python']}"),
        f"machine: {meta['cpu']}, {meta['cores']} cores usable; {meta['platform']}",
        (f"load average: {meta['load_average']} before, {meta.get('load_average_after')} "
         f"after (above {meta['cores']}, other processes took cores: ratios hold better "
         f"than times)"),
        (f"threads: {meta['threads']} (numba {meta['numba_threads']}, threading layer "
         f"{meta['numba_threading_layer']}{torch_threads})"),
        (f"this process (fastnet, reference, floors): OMP_WAIT_POLICY="
         f"{meta['omp_wait_policy']}; thread pools:"),
    ]
    lines += _pool_lines(meta["threadpools"])
    if meta.get("torch"):
        lines.append(f"torch's worker process: OMP_WAIT_POLICY={meta['torch_omp_wait_policy']};"
                     f" thread pools:")
        lines += _pool_lines(meta["torch_threadpools"])
    else:
        lines.append(f"torch: {meta['torch_note']}")
    return lines


def _workload_lines(name, result):
    unit = result["unit"]
    lines = [f"{name}: {result['description']}"]
    if result["implementations"]:
        lines.append(f"  {'implementation':17s} {'median ' + unit:>12s} {'p25..p75':>19s}"
                     f"  samples")
        for impl, s in result["implementations"].items():
            note = result["notes"].get(impl, "")
            spread = f"{_fmt(s['p25'], unit)}..{_fmt(s['p75'], unit)}"
            lines.append(f"  {impl:17s} {_fmt(s['median'], unit):>12s} {spread:>19s}  "
                         f"{s['samples']}x{s['steps_per_sample']}" + (f"  ({note})" if note else ""))
    for impl, why in result["skipped"].items():
        lines.append(f"  {impl:17s} {'skipped':>12s}  ({why})")
    shown = {t.metric for t in TARGETS.get(name, [])}
    extras = [f"{k} {v:.3g}" for k, v in result["ratios"].items()
              if k not in shown and v is not None]
    if extras:
        lines.append("  also: " + ", ".join(extras))
    return lines


def _summary_lines(results):
    lines = [f"{'workload':12s} {'measure':34s} {'value':>8s} {'target':>9s}  status"]
    for name, result in results.items():
        for target in result["targets"]:
            value = target["value"]
            lines.append(f"{name:12s} {target['label']:34s} "
                         f"{'-' if value is None else f'{value:.2f}':>8s} "
                         f"{target['op'] + ' ' + format(target['threshold'], 'g'):>9s}  "
                         f"{target['status']}")
    return lines


def format_report(report):
    """The human-readable table of a ``run`` result (or of its saved JSON)."""
    lines = _header_lines(report["meta"]) + [""]
    for name, result in report["workloads"].items():
        lines += _workload_lines(name, result) + [""]
    lines += _summary_lines(report["workloads"])
    return "\n".join(lines)


# --------------------------------------------------------------------------- main

def build_parser():
    parser = argparse.ArgumentParser(
        prog="fastnet bench",
        description="Time fastnet against the NumPy reference, PyTorch and the GEMM/copy "
                    "floors, side by side in one process, and check the targets of issue 3.")
    parser.add_argument("--workload", action="append", metavar="NAME",
                        help=f"run only this workload (repeatable, or comma-separated): "
                             f"{', '.join(WORKLOADS)}")
    parser.add_argument("--quick", action="store_true",
                        help="a ~40 s version: shorter timing, no cold start, a short leak run")
    parser.add_argument("--json", action="store_true",
                        help="print the results as JSON on stdout (progress goes to stderr)")
    parser.add_argument("--save", metavar="PATH",
                        help="also write the JSON results to PATH")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for Numba, BLAS and torch (default: every usable core)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="measurement time per workload (default 20, 1 with --quick)")
    parser.add_argument("--gap", type=float, default=None,
                        help="pause in seconds before each timed sample, for idle thread "
                             "pools to go to sleep (default 0.15, 0.12 with --quick)")
    parser.add_argument("--leak-steps", type=int, default=None,
                        help="train steps of the leak check (default 10000, 2000 with --quick)")
    parser.add_argument("--no-torch", action="store_true", help="leave torch out")
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
        return list(WORKLOADS)
    names = [n.strip() for item in requested for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    return [n for n in WORKLOADS if n in names]


def run(workloads, n_threads, settings, use_torch=True, torch_policy="default",
        progress=lambda text: None):
    """Run ``workloads``; returns ``{"meta": ..., "workloads": {name: result}}``."""
    import fastnet.nets  # noqa: F401  (loads the kernels before the threads are set)
    _set_threads(n_threads)
    timed_by_worker = [w for w in workloads if w in NETS or w == "adam-update"]
    worker = TorchWorker(n_threads, torch_policy, enabled=use_torch and bool(timed_by_worker),
                         reason=("left out (--no-torch)" if not use_torch else
                                 None if timed_by_worker else "no step workload selected"))
    try:
        meta = _environment(n_threads, worker)
        results = {}
        for name in workloads:
            progress(f"{name} ...")
            if name in NETS:
                result = _train_workload(name, worker, settings, progress)
            elif name == "adam-update":
                result = _adam_update_workload(worker, settings, progress)
            elif name == "startup":
                result = _startup_workload(use_torch, n_threads, settings, torch_policy,
                                           progress)
            else:
                result = _leak_workload(settings, progress)
            result["targets"] = [t.report(result["ratios"].get(t.metric))
                                 for t in TARGETS.get(name, [])]
            results[name] = result
    finally:
        worker.close()
    meta["load_average_after"] = _load_average()
    return {"meta": meta, "settings": settings, "workloads": results}


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    workloads = _selected(parser, args.workload)
    n_threads = args.threads if args.threads is not None else _default_threads()
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

    def progress(text):
        print(text, file=sys.stderr, flush=True)

    report = run(workloads, n_threads, settings, use_torch=not args.no_torch,
                 torch_policy=args.torch_omp_wait_policy, progress=progress)
    if args.save:
        with open(args.save, "w") as handle:
            json.dump(report, handle, indent=1)
    if args.json:
        json.dump(report, sys.stdout, indent=1)
        print()
    else:
        print(format_report(report))
    missed = any(t["status"] == "MISS" for r in report["workloads"].values()
                 for t in r["targets"])
    return 1 if args.fail_on_miss and missed else 0


if __name__ == "__main__":
    sys.exit(main())
