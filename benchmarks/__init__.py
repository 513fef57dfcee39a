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

# The headline nets and the torch builders are ``fastnet bench``'s.
from fastnet.bench import (INPUT_SIZE, NETS, OUTPUT_SIZE, book_step,  # noqa: E402,F401
                           fastnet_step, torch_model, torch_optimizer, torch_step)


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


def train_step(implementation, net_name, x, t):
    """A zero-argument training step of the headline net ``net_name``: ``fastnet`` (the
    fused ``train_step``), ``fastnet-layers`` (the book's loop on fastnet's layers),
    ``reference`` or ``torch``."""
    spec = NETS[net_name]
    if implementation == "torch":
        return torch_step(require_torch(), spec, x, t)[0]
    if implementation == "fastnet":
        return fastnet_step(spec, x, t)
    return book_step(spec, x, t, "fastnet" if implementation == "fastnet-layers"
                     else "fastnet.reference")


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
