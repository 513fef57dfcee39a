"""The suite's own workloads and helpers: data, the headline nets, their train steps in
each implementation, torch.  Nothing in this module is a benchmark.

The suite runs against older commits of fastnet too (asv's history), so it uses only
fastnet's public classes (``fastnet.nets``, ``fastnet.optimizers``, ``fastnet.layers``,
``fastnet.reference``), never ``fastnet bench``'s code, which comes and goes with the
commit measured.  What a commit may lack (a kernel, a method) goes through
``fastnet_api`` or raises ``NotImplementedError`` in ``setup``: asv then skips that
benchmark instead of failing it.  The headline nets match ``fastnet bench``'s
(``fastnet/bench/workloads.py``), plus ``ln-sgd``, the layer-norm net of issue 11's
targets.
"""
import ctypes
import importlib
import itertools
import math
import os
import sys
from typing import NamedTuple

import numpy as np

INPUT_SIZE, OUTPUT_SIZE = 784, 10


class Net(NamedTuple):
    """A headline training workload: the book's net, its optimizer, the batch size."""

    net: str                    # MultiLayerNet or MultiLayerNetExtend
    hidden: tuple
    batch: int
    optimizer: str              # SGD or Adam
    lr: float
    extend: tuple = ()          # (keyword, value) pairs of MultiLayerNetExtend


NETS = {
    "mlp-sgd": Net("MultiLayerNet", (100,) * 4, 128, "SGD", 0.01),
    "mlp-adam": Net("MultiLayerNet", (100,) * 4, 128, "Adam", 0.001),
    "bn-sgd": Net("MultiLayerNetExtend", (100,) * 5, 100, "SGD", 0.01,
                  (("use_batchnorm", True),)),
    "dropout-sgd": Net("MultiLayerNetExtend", (100,) * 6, 100, "SGD", 0.01,
                       (("use_dropout", True), ("dropout_ratio", 0.2))),
    "ln-sgd": Net("MultiLayerNetExtend", (100,) * 5, 100, "SGD", 0.01,
                  (("normalization", "layer"),)),
    "wide-adam": Net("MultiLayerNet", (1024, 1024), 256, "Adam", 0.001),
}


# Issue 10's population workloads: K members of one of these, on one shared mini-batch.
POPULATION_NETS = {
    "mlp-sgd": NETS["mlp-sgd"],
    "mlp-adam": NETS["mlp-adam"],
    "deep-sgd": Net("MultiLayerNet", (100,) * 6, 100, "SGD", 0.01),
    "deep-adam": Net("MultiLayerNet", (100,) * 6, 100, "Adam", 0.001),
}


def fastnet_api(module, name):
    """``module.name`` of the fastnet measured, or ``NotImplementedError`` (asv's
    "skipped") where that commit has no such thing."""
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise NotImplementedError(f"this fastnet has no {module}.{name}: {exc}") from exc


# --------------------------------------------------------------------------- data

def batch(n, d=INPUT_SIZE, dtype=np.float32, seed=0):
    """MNIST-shaped inputs in [0, 1) and labels in [0, 10)."""
    rng = np.random.default_rng(seed)
    return rng.random((n, d)).astype(dtype), rng.integers(0, OUTPUT_SIZE, n)


def standard_normal(shape, dtype=np.float32, scale=1.0, seed=1):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(dtype)


def parse_shape(text):
    """'256x1024' -> (256, 1024)."""
    return tuple(int(v) for v in text.split("x"))


def net_params(hidden, dtype=np.float32, seed=2):
    """A book-style ``params`` dict of a 784-hidden-10 net (He init) and gradients."""
    sizes = [INPUT_SIZE, *hidden, OUTPUT_SIZE]
    params, grads = {}, {}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes), start=1):
        params[f"W{i}"] = standard_normal((fan_in, fan_out), dtype, math.sqrt(2 / fan_in), seed + i)
        params[f"b{i}"] = np.zeros(fan_out, dtype)
        grads[f"W{i}"] = standard_normal((fan_in, fan_out), dtype, 1e-2, seed + 100 + i)
        grads[f"b{i}"] = standard_normal(fan_out, dtype, 1e-2, seed + 200 + i)
    return params, grads


# --------------------------------------------------------------------------- memory

def status_bytes(field):
    """``field`` of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise KeyError(field)


def reset_peak_rss():
    """Hand freed heap memory back to the system (glibc's ``malloc_trim``, where there
    is one: what compiling freed is then not reused unseen) and set this process's peak
    RSS (``VmHWM``) to its RSS now ("5" written to ``/proc/self/clear_refs``), or
    ``NotImplementedError`` (asv's "skipped") where the kernel does not allow it (not
    Linux)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        status_bytes("VmHWM")
    except (OSError, KeyError) as exc:
        raise NotImplementedError(f"the peak RSS cannot be reset here: {exc}") from exc


# --------------------------------------------------------------------------- torch

def require_torch():
    """torch with as many threads as Numba, or NotImplementedError (asv's "skipped").

    fastnet sets ``OMP_WAIT_POLICY=PASSIVE`` for Numba's OpenMP pool; torch's own
    OpenMP runtime reads the variable when it loads and runs small ops several times
    slower with it, so torch is imported without it, as a torch user runs it.
    """
    saved = os.environ.get("OMP_WAIT_POLICY")
    hide = saved == "PASSIVE" and "torch" not in sys.modules
    if hide:
        del os.environ["OMP_WAIT_POLICY"]
    try:
        torch = importlib.import_module("torch")
    except Exception as exc:
        raise NotImplementedError(f"torch is not importable: {exc}") from exc
    finally:
        if hide:
            os.environ["OMP_WAIT_POLICY"] = saved
    import numba
    torch.set_num_threads(numba.get_num_threads())
    return torch


def torch_model(torch, hidden, use_batchnorm=False, use_dropout=False, dropout_ratio=0.5,
                normalization=None):
    """The book's MultiLayerNet(Extend) in torch.nn: [Linear, (BatchNorm1d or LayerNorm),
    ReLU, (Dropout)] per hidden layer, then Linear (float32)."""
    nn = torch.nn
    modules, fan_in = [], INPUT_SIZE
    for width in hidden:
        modules.append(nn.Linear(fan_in, width))
        if use_batchnorm:
            modules.append(nn.BatchNorm1d(width, eps=1e-6, momentum=0.1))  # the book's 0.9
        if normalization == "layer":
            modules.append(nn.LayerNorm(width, eps=1e-6))
        modules.append(nn.ReLU())
        if use_dropout:
            modules.append(nn.Dropout(dropout_ratio))
        fan_in = width
    modules.append(nn.Linear(fan_in, OUTPUT_SIZE))
    return nn.Sequential(*modules).train()


def torch_optimizer(torch, name, params, **hyper):
    """``torch.optim.<name>(params, **hyper)``, fused where this build runs it, else
    foreach; gradients set before the call are kept."""
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
            return optimizer
        except (RuntimeError, TypeError, ValueError):
            continue
    return cls(params, **hyper)


# --------------------------------------------------------------------------- train steps

def train_step(implementation, net_name, x, t, spec=None, seed=0):
    """A zero-argument training step of the headline net ``net_name`` (or of ``spec``):
    ``fastnet`` (the fused ``train_step``), ``fastnet-layers`` (the book's loop on
    fastnet's layers), ``reference`` or ``torch``; ``seed`` the net's."""
    spec = spec or NETS[net_name]
    if implementation == "torch":
        torch = require_torch()
        torch.manual_seed(0)
        model = torch_model(torch, spec.hidden, **dict(spec.extend))
        optimizer = torch_optimizer(torch, spec.optimizer, model.parameters(), lr=spec.lr)
        xt, tt = torch.from_numpy(x), torch.from_numpy(t).long()

        def torch_step():
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(xt), tt).backward()
            optimizer.step()
        return torch_step
    package = "fastnet.reference" if implementation == "reference" else "fastnet"
    try:
        net = fastnet_api(f"{package}.nets", spec.net)(
            INPUT_SIZE, list(spec.hidden), OUTPUT_SIZE, seed=seed, **dict(spec.extend))
    except TypeError as exc:  # a commit before one of the keywords
        raise NotImplementedError(f"this fastnet's {spec.net} refuses {spec.extend}") from exc
    optimizer = fastnet_api(f"{package}.optimizers", spec.optimizer)(lr=spec.lr)
    if implementation == "fastnet":
        if not hasattr(net, "train_step"):
            raise NotImplementedError("this fastnet has no fused train_step")
        return lambda: net.train_step(x, t, optimizer)

    def book_step():
        optimizer.update(net.params, net.gradient(x, t))
    return book_step


# --------------------------------------------------------------------------- populations

def population_step(implementation, net_name, k, x, t):
    """A zero-argument step of K members of ``POPULATION_NETS[net_name]`` on one shared
    mini-batch ``(x, t)``: ``population`` (``fastnet.population.Population.train_step``),
    ``population-per-member`` (the same, each member on its own mini-batch),
    ``sequential`` (K fused ``train_step`` calls), ``torch-vmap``
    (``torch.func.vmap`` over K stacked ``torch.nn`` models), ``torch-bmm``
    (``torch.baddbmm`` over (K, d_in, d_out) weight stacks) or ``gemm-floor`` (the K
    members' GEMMs as NumPy matmuls, back to back)."""
    spec = POPULATION_NETS[net_name]
    if implementation.startswith("population"):
        configs = [{"seed": i, "lr": spec.lr} for i in range(k)]
        population = fastnet_api("fastnet.population", "Population")(
            INPUT_SIZE, list(spec.hidden), OUTPUT_SIZE, configs, spec.optimizer)
        if implementation == "population-per-member":
            batches = [batch(len(x), seed=i) for i in range(k)]
            x, t = np.stack([b[0] for b in batches]), np.stack([b[1] for b in batches])
        return lambda: population.train_step(x, t)
    if implementation == "sequential":
        steps = [train_step("fastnet", net_name, x, t, spec, seed=i) for i in range(k)]
        return lambda: [step() for step in steps]
    if implementation == "gemm-floor":
        return _population_gemm_floor(spec, k, x)
    torch = require_torch()
    torch.manual_seed(0)
    xt = torch.from_numpy(x).expand(k, *x.shape)
    tt = torch.from_numpy(t).long().expand(k, len(t))
    cross_entropy = torch.nn.functional.cross_entropy
    if implementation == "torch-vmap":
        return _torch_vmap_step(torch, spec, k, xt, tt)
    dims = [INPUT_SIZE, *spec.hidden, OUTPUT_SIZE]
    weights = [(torch.randn(k, a, b) * math.sqrt(2 / a)).requires_grad_()
               for a, b in itertools.pairwise(dims)]
    biases = [torch.zeros(k, 1, b, requires_grad=True) for b in dims[1:]]
    optimizer = torch_optimizer(torch, spec.optimizer, weights + biases, lr=spec.lr)

    def bmm_step():
        optimizer.zero_grad(set_to_none=True)
        h = xt
        for layer, (w, b) in enumerate(zip(weights, biases)):
            h = torch.baddbmm(b, h, w)
            h = torch.relu(h) if layer < len(weights) - 1 else h
        (cross_entropy(h.reshape(-1, OUTPUT_SIZE), tt.reshape(-1), reduction="sum")
         / len(t)).backward()
        optimizer.step()
    return bmm_step


def _torch_vmap_step(torch, spec, k, xt, tt):
    import copy

    from torch.func import functional_call, grad_and_value, stack_module_state, vmap

    models = [torch_model(torch, spec.hidden) for _ in range(k)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def loss(p, b, xb, tb):
        return torch.nn.functional.cross_entropy(functional_call(base, (p, b), (xb,)), tb)

    grad_fn = vmap(grad_and_value(loss))
    optimizer = torch_optimizer(torch, spec.optimizer, params.values(), lr=spec.lr)

    def vmap_step():
        grads, _ = grad_fn(params, buffers, xt, tt)
        for name, p in params.items():
            p.grad = grads[name]
        optimizer.step()
    return vmap_step


def _population_gemm_floor(spec, k, x):
    """Each member's GEMMs (forward, weight gradients, back-propagated gradients but the
    first layer's) as NumPy matmuls into preallocated outputs."""
    dims = [INPUT_SIZE, *spec.hidden, OUTPUT_SIZE]
    n = len(x)
    members = []
    for i in range(k):
        weights = [standard_normal((a, b), scale=math.sqrt(1 / a), seed=10 * i + j)
                   for j, (a, b) in enumerate(itertools.pairwise(dims))]
        acts = [x] + [np.empty((n, d), np.float32) for d in dims[1:]]
        members.append((weights, acts, [np.empty_like(w) for w in weights],
                        [None] + [np.empty((n, d), np.float32) for d in dims[1:-1]],
                        standard_normal((n, OUTPUT_SIZE), scale=1 / n, seed=i)))

    def floor_step():
        for weights, acts, wgrads, dacts, dlogits in members:
            for layer, w in enumerate(weights):
                np.matmul(acts[layer], w, out=acts[layer + 1])
            dz = dlogits
            for layer in range(len(weights) - 1, -1, -1):
                np.matmul(acts[layer].T, dz, out=wgrads[layer])
                if layer:
                    np.matmul(dz, weights[layer].T, out=dacts[layer])
                    dz = dacts[layer]
    return floor_step
