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

def train_step(implementation, net_name, x, t):
    """A zero-argument training step of the headline net ``net_name``: ``fastnet`` (the
    fused ``train_step``), ``fastnet-layers`` (the book's loop on fastnet's layers),
    ``reference`` or ``torch``."""
    spec = NETS[net_name]
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
        net = fastnet_api(f"{package}.nets", spec.net)(INPUT_SIZE, list(spec.hidden),
                                                        OUTPUT_SIZE, seed=0, **dict(spec.extend))
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
