"""The JIT cache from the outside: compile everything ahead of time, inspect, clear.

Kernels compile lazily on first use (``fastnet.kernels.jit`` says how they are cached
and locked).  ``build()`` (``fastnet cache build``) compiles every kernel a user of the
public API can reach, in both dtypes and both builds (serial, and parallel for large
arrays), by running the public classes themselves on small data: the signatures
compiled are the ones real calls use.  For a Docker image or a cluster's workers, run
it once where the cache lives.
"""
import glob
import os
import time

import numba
import numpy as np

from . import _validate, config, layers, nets, optimizers, population
from .kernels import jit

DTYPES = (np.float32, np.float64)


def build(dtypes=DTYPES):
    """Compile (or load from the cache) every kernel for ``dtypes``; returns seconds.

    Raises ``TypeError`` for a dtype other than float32 or float64, ``RuntimeError``
    where nothing would be kept: Numba's JIT is disabled, or no cache folder is writable.
    """
    dtypes = [_validate.float_dtype(d) for d in dtypes]
    if numba.config.DISABLE_JIT:
        raise RuntimeError("nothing to build: NUMBA_DISABLE_JIT=1 runs fastnet's kernels "
                           "as Python, uncompiled (unset it to compile and cache them)")
    if jit.cache_dir() is None:
        raise RuntimeError("no cache folder to build: Numba finds none writable for "
                           "fastnet's kernels (set NUMBA_CACHE_DIR to a writable folder)")
    started = time.perf_counter()
    for dtype in dtypes:
        # Element-wise passes take the parallel build from PARALLEL_MIN_SIZE elements.
        for n in (8, -(-config.PARALLEL_MIN_SIZE // 16)):
            _layers(np.random.default_rng(0).random((n, 16)).astype(dtype) - 0.5)
            _optimizers(n * 16, dtype)
        _nets(dtype)
    return time.perf_counter() - started


def _layers(x):
    n, d = x.shape
    dout = np.ones_like(x)
    for layer in (layers.Relu(), layers.Sigmoid(), layers.Tanh(), layers.Dropout(0.5),
                  layers.Dropout(0.5, inverted=True)):
        layer.forward(x)
        layer.backward(dout)
    ones, zeros = np.ones(d, x.dtype), np.zeros(d, x.dtype)
    # Layer norm compiles the group- and instance-norm kernels too (one kernel, 4-D views)
    for norm in (layers.BatchNormalization(ones, zeros), layers.LayerNormalization(ones, zeros),
                 layers.SwitchableNormalization(ones, zeros)):
        norm.forward(x)
        norm.backward(dout)
        norm.forward(x, train_flg=False)
    for affine in (layers.Affine(np.ones((d, 10), x.dtype), np.zeros(10, x.dtype)),
                   layers.WeightNormalization(np.ones((d, 10), x.dtype), np.ones(10, x.dtype),
                                              np.zeros(10, x.dtype))):
        loss = layers.SoftmaxWithLoss()
        loss.forward(affine.forward(x), np.arange(n) % 10)
        affine.backward(loss.backward())


def _optimizers(size, dtype):
    for cls in optimizers.OPTIMIZERS.values():
        optimizer = cls()
        optimizer.update({"W": np.zeros(size, dtype)}, {"W": np.ones(size, dtype)})


def _nets(dtype):
    x = np.random.default_rng(0).random((4, 6)).astype(dtype)
    t = np.arange(4) % 3
    net = nets.MultiLayerNetExtend(6, [5, 5], 3, use_batchnorm=True, use_dropout=True,
                                   weight_decay_lambda=0.1, dtype=dtype, seed=0)
    for optimizer in (optimizers.SGD(), optimizers.Adam()):
        net.train_step(x, t, optimizer)
    net.accuracy(x, t)
    net.predict(x)
    net.loss(x, t)
    net.gradient(x, t)
    net.numerical_gradient(x, t)
    # Weight norm's own passes, around the same fused step (every other normalization is
    # a code of that step, not a kernel of its own)
    weighted = nets.MultiLayerNetExtend(6, [5, 5], 3, normalization="weight", dtype=dtype,
                                        seed=0)
    weighted.train_step(x, t, optimizers.Adam())
    weighted.gradient(x, t)
    # One compiled step serves every optimizer (a code, not a type) and both batch forms.
    pop = population.Population(6, [5, 5], 3, [{"seed": 0, "weight_decay_lambda": 0.1}, {}],
                                "Adam", use_batchnorm=True, use_dropout=True, dtype=dtype)
    pop.train_step(x, t)
    pop.train_step(np.stack([x, x]), np.stack([t, t]))
    pop.predict(x)
    pop.loss(x, t)
    pop.accuracy(x, t)


def info():
    """Where the cache is and what it holds: a dict with ``jit`` (False where
    ``NUMBA_DISABLE_JIT=1`` runs the kernels as Python), ``folder`` (None where nothing
    is cached), ``current`` (whether the stamp of this fastnet is there), ``files`` and
    ``bytes`` (Numba's index and data files)."""
    folder = jit.cache_dir()
    if folder is None:
        return {"jit": not numba.config.DISABLE_JIT, "folder": None, "current": False,
                "files": 0, "bytes": 0}
    files = [p for pattern in ("*.nbi", "*.nbc") for p in glob.glob(os.path.join(folder, pattern))]
    return {"jit": True, "folder": folder, "current": os.path.exists(jit.stamp_path(folder)),
            "files": len(files), "bytes": sum(os.path.getsize(p) for p in files)}


def clear():
    """Delete every cached kernel (under the cache's lock); the next use compiles."""
    with jit.locked():
        jit.clear_cache()
