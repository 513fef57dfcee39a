"""Who owns the cores, and when.

fastnet runs two thread pools: BLAS's (for the GEMMs: NumPy's OpenBLAS, which
compiled code calls too, see ``fastnet.kernels.blas``; SciPy's where NumPy's has no
CBLAS to call) and Numba's (for the parallel builds of the element-wise kernels).
They take turns and never overlap:

* GEMMs own the cores.  Every other pass of a training step over (batch x width)
  arrays is serial compiled code between two BLAS calls: waking a second pool costs
  more than such a pass, and two pools spinning at once on few cores was measured to
  make a step ~100x slower.
* Passes over large arrays (at least ``config.PARALLEL_MIN_SIZE`` elements: the
  optimizer update of a big net, batch norm or dropout on big batches) take Numba's
  pool, between GEMMs.
* An idle pool must sleep instead of spinning: TBB's workers sleep after a short
  spin (an Adam step of a 784-1024-1024-10 net took ~7 ms on 2 cores under TBB as
  under a passive OpenMP pool); for an OpenMP pool (a user's ``NUMBA_THREADING_LAYER=omp``) ``fastnet`` sets
  ``OMP_WAIT_POLICY=PASSIVE`` before it starts (unless set by the user).

Numba's pool is a *threading layer* (Numba's docs, "The Threading Layers"), chosen
when the first parallel kernel runs.  Only TBB's is both fork-safe (a worker forked by
``multiprocessing`` can run parallel kernels) and thread-safe (several threads may run
parallel kernels at once, as Dask's threaded workers do); GNU OpenMP's kills a forked
child that reaches a parallel kernel, and workqueue aborts when two threads enter it.
So fastnet asks Numba for ``tbb``, then ``workqueue``, then ``omp``
(``NUMBA_THREADING_LAYER_PRIORITY``), loading the ``tbb`` wheel's runtime first (pip
puts it where the dynamic loader does not look in a virtual environment, numba#6108).
Without TBB, workqueue is taken, with a warning, and fastnet runs parallel kernels one
at a time across threads (``pick`` in ``fastnet.kernels.jit``).  A layer the user names
(``NUMBA_THREADING_LAYER`` or ``..._PRIORITY``) is honoured as it is (with the
``tbb`` wheel loaded, so that ``tbb`` or ``safe`` find it).

``set_num_threads(n)`` gives both pools the same ``n``.  For parallel sweeps, run
``workers x n <= cores``: e.g. 2 workers with ``set_num_threads(1)`` on 2 cores.  The
environment variable ``FASTNET_NUM_THREADS`` applies ``set_num_threads`` at import.
"""
import ctypes
import functools
import importlib.metadata
import os
import sys
import threading
import warnings

import numba
import threadpoolctl

# Safest first: TBB is fork- and thread-safe, workqueue fork-safe only (fastnet then
# serializes parallel kernels), GNU OpenMP thread-safe only.
LAYER_PRIORITY = ("tbb", "workqueue", "omp")
# The names Numba loads TBB's runtime by, where the ``tbb`` wheel exists for Numba.
_TBB_RUNTIME = {"linux": "libtbb.so.12", "win32": "tbb12.dll"}


def set_num_threads(n):
    """Use ``n`` threads for BLAS (every loaded BLAS library) and for Numba kernels."""
    n = int(n)
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"n must be between 1 and {numba.config.NUMBA_NUM_THREADS} "
                         f"(NUMBA_NUM_THREADS), got {n}")
    import scipy.linalg  # noqa: F401  (load SciPy's BLAS, which np.dot in compiled code calls)
    numba.set_num_threads(n)
    threadpoolctl.threadpool_limits(limits=n, user_api="blas")


def get_num_threads():
    """The number of threads Numba kernels use (BLAS is set alongside)."""
    return numba.get_num_threads()


def _load_tbb_wheel():
    """Load the ``tbb`` wheel's runtime by its path, so that Numba's load by name finds
    it already loaded; the path, or None without the wheel (or on failure)."""
    name = _TBB_RUNTIME.get(sys.platform)
    try:
        files = importlib.metadata.files("tbb") or []
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in files:
        if file.name == name:
            path = os.path.normpath(file.locate())
            try:
                ctypes.CDLL(path)
            except OSError:
                return None
            return path
    return None


def _user_chose_layer():
    """Whether the user named Numba's threading layer or its priority (a priority equal
    to fastnet's was set by fastnet, in this process or in a parent)."""
    priority = os.environ.get("NUMBA_THREADING_LAYER_PRIORITY")
    return ("NUMBA_THREADING_LAYER" in os.environ
            or numba.config.THREADING_LAYER != "default"
            or priority not in (None, " ".join(LAYER_PRIORITY)))


def _choose_threading_layer():
    """Set Numba's layer priority to ``LAYER_PRIORITY`` (in the environment as well, for
    Numba's config reloads and for child processes) unless the user chose, and load the
    ``tbb`` wheel (which a user's ``tbb`` or ``safe`` needs as well); the path of the
    TBB runtime loaded, or None."""
    if not _USER_CHOSE_LAYER:
        os.environ["NUMBA_THREADING_LAYER_PRIORITY"] = " ".join(LAYER_PRIORITY)
        numba.config.THREADING_LAYER_PRIORITY = list(LAYER_PRIORITY)
    return _load_tbb_wheel()


def _unlock_in_child():
    # A fork taken while another thread held the lock must not leave the child locked.
    global _one_at_a_time
    _one_at_a_time = threading.Lock()


@functools.cache
def parallel_kernels_threadsafe():
    """Whether threads may run parallel kernels at once: False under Numba's workqueue
    layer.  Starts Numba's threading layer if no parallel kernel has run yet."""
    numba.get_num_threads()  # starts the layer
    if numba.threading_layer() != "workqueue":
        return True
    if not _USER_CHOSE_LAYER:
        warnings.warn(
            "fastnet: TBB was not found (pip install tbb), so Numba's parallel kernels run "
            "on its workqueue threading layer: fork-safe, but not thread-safe, so fastnet "
            "runs them one at a time across threads.  Set NUMBA_THREADING_LAYER to choose "
            "a layer yourself.", RuntimeWarning, stacklevel=3)
    return False


@functools.cache
def one_at_a_time(kernel):
    """``kernel`` called under one process-wide lock."""
    def call(*args):
        with _one_at_a_time:
            return kernel(*args)
    call.__wrapped__ = kernel
    return call


def threading_info():
    """What runs where: Numba's threading layer and threads, the BLAS the compiled GEMMs
    call (``gemm``, see ``fastnet.kernels.blas``), and each BLAS library."""
    import scipy.linalg  # noqa: F401

    from .kernels import blas
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        layer = "not started"
    return {
        "numba_threading_layer": layer,
        "tbb_runtime": TBB_RUNTIME,
        "numba_threads": numba.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "gemm": blas.BACKEND,
        "blas": [{"library": info["filepath"], "version": info.get("version"),
                  "threads": info["num_threads"]}
                 for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"],
    }


_USER_CHOSE_LAYER = _user_chose_layer()
TBB_RUNTIME = _choose_threading_layer()
_one_at_a_time = threading.Lock()
if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_unlock_in_child)

if os.environ.get("FASTNET_NUM_THREADS"):
    set_num_threads(os.environ["FASTNET_NUM_THREADS"])
