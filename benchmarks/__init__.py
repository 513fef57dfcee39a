"""asv benchmarks of fastnet against its NumPy reference and PyTorch (see README.md).

One module per area, each benchmark parametrized over ``implementation`` so that the
speed-up shows in one table.  Shared data and model builders live here; nothing in
this module is a benchmark.

The suite runs in an existing interpreter (``asv run --python=same``), which installs
nothing: the fastnet measured is the importable one (an install, or a checkout on
``PYTHONPATH``), else the checkout that holds this folder.
"""
import importlib
import importlib.util
import itertools
import math
import os
import sys

import numpy as np

if importlib.util.find_spec("fastnet") is None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Imported once here, in asv's fork server, so every benchmark process starts with them.
import fastnet.layers
import fastnet.nets
import fastnet.optimizers
import fastnet.reference  # noqa: F401

INPUT_SIZE, OUTPUT_SIZE = 784, 10

# The headline nets of ``fastnet bench``: class, hidden sizes, batch, optimizer, lr, extras.
NETS = {
    "mlp-sgd": ("MultiLayerNet", [100] * 4, 128, "SGD", 0.01, {}),
    "mlp-adam": ("MultiLayerNet", [100] * 4, 128, "Adam", 0.001, {}),
    "bn-sgd": ("MultiLayerNetExtend", [100] * 5, 100, "SGD", 0.01, {"use_batchnorm": True}),
    "dropout-sgd": ("MultiLayerNetExtend", [100] * 6, 100, "SGD", 0.01,
                    {"use_dropout": True, "dropout_ratio": 0.2}),
    "wide-adam": ("MultiLayerNet", [1024, 1024], 256, "Adam", 0.001, {}),
}


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


def torch_optimizer(torch, name, params, **hyper):
    """``torch.optim.<name>(params, **hyper)``, fused where this build supports it."""
    cls = getattr(torch.optim, name)
    params = list(params)
    for flavour in ({"fused": True}, {"foreach": True}, {}):
        try:
            optimizer = cls(params, **hyper, **flavour)
        except (RuntimeError, TypeError, ValueError):
            continue
        if flavour.get("fused"):  # some builds accept the flag and fail at the first step
            saved_grads = [p.grad for p in params]
            try:
                for p in params:
                    p.grad = torch.zeros_like(p)
                cls(params, **hyper, **flavour).step()
            except (RuntimeError, TypeError, ValueError):
                continue
            finally:
                for p, g in zip(params, saved_grads):
                    p.grad = g
        return optimizer
    raise NotImplementedError(f"torch.optim.{name} rejects {hyper}")


def torch_model(torch, hidden, use_batchnorm=False, use_dropout=False, dropout_ratio=0.5):
    """The book's MultiLayerNet(Extend) in torch.nn (float32, ReLU)."""
    nn = torch.nn
    modules, fan_in = [], INPUT_SIZE
    for width in hidden:
        modules.append(nn.Linear(fan_in, width))
        if use_batchnorm:
            modules.append(nn.BatchNorm1d(width, eps=1e-6, momentum=0.1))
        modules.append(nn.ReLU())
        if use_dropout:
            modules.append(nn.Dropout(dropout_ratio))
        fan_in = width
    modules.append(nn.Linear(fan_in, OUTPUT_SIZE))
    return nn.Sequential(*modules).train()


def train_step(implementation, net_name, x, t):
    """A zero-argument training step of the headline net ``net_name``."""
    cls_name, hidden, _, opt_name, lr, extra = NETS[net_name]
    if implementation == "torch":
        torch = require_torch()
        torch.manual_seed(0)
        model = torch_model(torch, hidden, **extra)
        optimizer = torch_optimizer(torch, opt_name, model.parameters(), lr=lr)
        xt, tt = torch.from_numpy(x), torch.from_numpy(t).long()
        loss_fn = torch.nn.functional.cross_entropy

        def step():
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(xt), tt).backward()
            optimizer.step()
        return step

    if implementation == "reference":
        from fastnet.reference import nets, optimizers
    else:
        from fastnet import nets, optimizers
    net = getattr(nets, cls_name)(INPUT_SIZE, hidden, OUTPUT_SIZE, seed=0, **extra)
    optimizer = getattr(optimizers, opt_name)(lr=lr)
    if implementation == "fastnet":
        return lambda: net.train_step(x, t, optimizer)

    def step():  # the book's loop: reference, or fastnet's layers one by one
        optimizer.update(net.params, net.gradient(x, t))
    return step


def rss_mb():
    """Resident set size of this process in MB (Linux; else psutil; else None)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss / 2**20
