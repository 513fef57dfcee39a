"""Build the JIT cache once per machine, never from several processes at once.

Numba compiles lazily and caches each kernel on disk (next to the sources, or in the
user's cache folder when the install is read-only).  Many processes starting together
on a cold cache (a sweep, a test run under xdist) would all compile and write the same
files; numba is not safe against that.  So on first use fastnet takes an exclusive
file lock, compiles every kernel for float32 and float64 (serial and parallel builds)
by running it on tiny arrays, and leaves a stamp beside numba's cache files.  Later
processes see the stamp and load compiled code lazily, without locking.
"""
import contextlib
import glob
import hashlib
import os
import sys
import time

import numba
import numpy as np

from .. import __version__, config
from . import activations, affine, batchnorm, blas, dropout, network, optimizers, softmax

def _cache_dir():
    return network.mlp_train_step._cache._cache_path


def _stamp_path():
    """The stamp's name changes with the kernels' sources, as numba's cache does, and
    with the BLAS the GEMMs are compiled against (``blas.BACKEND``)."""
    sources = hashlib.sha1(blas.BACKEND.encode())
    for module in (config, activations, affine, batchnorm, blas, dropout, network, optimizers,
                   softmax):
        with open(module.__file__, "rb") as handle:
            sources.update(handle.read())
    tag = (f"fastnet-{__version__}-{sources.hexdigest()[:12]}-numba-{numba.__version__}"
           f"-py{sys.version_info[0]}{sys.version_info[1]}")
    return os.path.join(_cache_dir(), tag + ".built")


@contextlib.contextmanager
def _exclusive_lock(path):
    """An inter-process lock on ``path`` (fcntl on POSIX, msvcrt on Windows)."""
    with open(path, "a+b") as handle:
        if os.name == "nt":
            import msvcrt
            handle.seek(0)
            while True:
                try:
                    msvcrt.locking(handle.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    time.sleep(0.1)
            try:
                yield
            finally:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        else:
            import fcntl
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _both(kernel):
    return (kernel, kernel.parallel_version)


def compile_all(dtype):
    """Run every kernel once on tiny ``dtype`` arrays of the types the wrappers pass."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 4)).astype(dtype)
    flat, out, mask = a.ravel(), np.empty(12, dtype), np.empty(12, bool)
    scalar = np.dtype(dtype).type
    for k in _both(activations.relu_forward):
        k(flat, out, mask)
    for k in _both(activations.zero_where):
        k(flat, mask, True, out)
    for k in _both(activations.activation_forward):
        k(flat, activations.RELU, out)
    for k in _both(activations.activation_backward):
        k(flat, flat, activations.RELU, out)
    for k in _both(dropout.dropout_forward):
        k(flat, activations.RELU, np.uint64(1), 0.5, mask, out)

    w, b, y, dz = a[:, :3].copy(), np.zeros(3, dtype), np.empty((3, 3), dtype), np.empty((3, 3), dtype)
    affine.affine_forward(a.T.copy(), w, b, activations.RELU, np.empty((4, 3), dtype))
    affine.affine_backward(y, a, a.T.copy(), y, activations.RELU, mask[:9], dz, np.empty((4, 3), dtype),
                           b.copy(), np.empty((3, 4), dtype))
    labels = np.zeros(3, np.int64)
    softmax.softmax(a, np.empty_like(a))
    softmax.softmax_cross_entropy(a, labels, np.empty_like(a))
    softmax.cross_entropy_grad(a, labels, 1.0, np.empty_like(a))
    softmax.softmax_cross_entropy_grad(a.copy(), labels, 1.0, np.empty_like(a))

    ones, zeros = np.ones(4, dtype), np.zeros(4, dtype)
    for k in _both(batchnorm.batchnorm_forward_train):
        k(a, ones, zeros, 1e-6, 0.9, zeros.copy(), zeros.copy(), activations.RELU,
          np.empty_like(a), ones.copy(), np.empty_like(a))
    for k in _both(batchnorm.batchnorm_forward_infer):
        k(a, ones, zeros, zeros, ones, 1e-6, np.empty_like(a))
    for k in _both(batchnorm.batchnorm_backward):
        k(a, a, ones, ones, zeros.copy(), zeros.copy(), np.empty_like(a))

    p, g, s1, s2 = (np.zeros(4, dtype) for _ in range(4))
    h = [scalar(0.1)] * 4
    for name, n_state, n_hyper in (("sgd", 0, 1), ("momentum", 1, 2), ("nesterov", 1, 4),
                                   ("adagrad", 1, 2), ("rmsprop", 1, 4), ("adam", 2, 4)):
        for k in _both(getattr(optimizers, name)):
            k(p, g, *[s1, s2][:n_state], *h[:n_hyper], scalar(0))

    for bn in (False, True):
        for drop in (False, True):
            _network_step(dtype, bn, drop)


def _network_step(dtype, bn, drop):
    """One fused step of a 4-3-3-2 net through ``network.mlp_train_step``."""
    dims = np.array([4, 3, 3, 2], np.int64)
    # W1 W2 W3 | b1 b2 b3 | gamma1 gamma2 | beta1 beta2; running means then variances
    layout = np.array([[0, 27, 35, 41, 0, 6], [12, 30, 38, 44, 3, 9], [21, 33, 0, 0, 0, 0]],
                      np.int64)
    params = np.full(47, 0.1, dtype)
    n, hidden = 2, 6
    network.mlp_train_step(
        np.ones((n, 4), dtype), np.zeros(n, np.int64), dims, layout, activations.RELU,
        params, np.zeros(47, dtype), np.zeros(12 if bn else 0, dtype),
        np.full(2 if bn else 0, 0.9), 1e-6, np.full(2 if drop else 0, 0.5),
        np.ones(2 if drop else 0, np.uint64), np.array([0.1, 0.01] if bn else [], dtype),
        np.empty(n * hidden, dtype),
        np.empty(n * hidden if bn else 0, dtype), np.empty(hidden, dtype),
        np.empty(n * hidden if drop else 0, bool), np.empty((2, n * 3), dtype),
        np.empty((n, 2), dtype))


def _clear_numba_cache():
    """Delete numba's cache files of the kernels before a build.

    Numba checks a cached function against its own source file only: a kernel whose
    module is unchanged but which calls a changed kernel of another module would be
    loaded as it was, with the old callee compiled into it.  The stamp changes with
    any kernel source, so a new stamp means every kernel is compiled afresh.
    """
    for pattern in ("*.nbi", "*.nbc"):
        for path in glob.glob(os.path.join(_cache_dir(), pattern)):
            os.remove(path)


def ensure_built():
    """Compile and cache every kernel once per machine, under an inter-process lock."""
    if os.environ.get("NUMBA_DISABLE_JIT") == "1":
        return
    stamp = _stamp_path()
    if not os.path.exists(stamp):
        os.makedirs(os.path.dirname(stamp), exist_ok=True)
        with _exclusive_lock(os.path.join(os.path.dirname(stamp), "fastnet-jit.lock")):
            if not os.path.exists(stamp):
                started = time.perf_counter()
                print("fastnet: compiling kernels for this machine (once)...", file=sys.stderr)
                _clear_numba_cache()
                for dtype in (np.float32, np.float64):
                    compile_all(dtype)
                for stale in glob.glob(os.path.join(os.path.dirname(stamp), "fastnet-*.built")):
                    os.remove(stale)
                with open(stamp, "w") as handle:
                    handle.write(f"built in {time.perf_counter() - started:.1f} s\n")
