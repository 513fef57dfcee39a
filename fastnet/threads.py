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
  optimizer update of a big net, batch norm or dropout on big batches;
  ``config.GROUP_NORM_PARALLEL_MIN_SIZE`` for the group-norm family's layers) take
  Numba's pool, between GEMMs.
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

A third way of sharing the cores is for work made of independent items that each call
BLAS, a population's members: ``run_shares`` gives each thread whole items with BLAS
single-threaded (small GEMMs split poorly over cores), and an item's bits then do not
depend on the thread count.

``set_num_threads(n)`` gives both pools the same ``n``.  For parallel sweeps, run
``workers x n <= cores``: e.g. 2 workers with ``set_num_threads(1)`` on 2 cores.  The
environment variable ``FASTNET_NUM_THREADS`` applies ``set_num_threads`` at import.
"""
import concurrent.futures
import contextlib
import ctypes
import functools
import importlib.metadata
import numbers
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
    """Use ``n`` threads for BLAS (every loaded BLAS library) and for Numba kernels.

    BLAS's count is the process's; Numba's, and with it ``get_num_threads`` and what
    a ``Population`` with ``num_threads=None`` uses, is the calling thread's (Numba's
    rule: each thread starts with ``NUMBA_NUM_THREADS``).  So a worker thread that
    calls this sets BLAS for everyone and Numba for itself.  Inside a
    ``blas_single_threaded`` block, BLAS's ``n`` applies when the block ends.
    TypeError for an ``n`` that is not an integer (2.9 was taken as 2), ValueError for
    one out of range."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be an integer, got {n!r}")
    n = int(n)
    if not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(f"n must be between 1 and {numba.config.NUMBA_NUM_THREADS} "
                         f"(NUMBA_NUM_THREADS), got {n}")
    numba.set_num_threads(n)
    global _blas_after
    with _blas_lock:
        if _blas_users:  # in blas_single_threaded: n applies after it
            _blas_after = n
        else:
            _blas_limit(n)


def get_num_threads():
    """The number of threads Numba kernels use in the calling thread (BLAS is set
    alongside, process-wide; see ``set_num_threads``)."""
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
    # A fork taken while another thread held a lock must not leave the child locked, and
    # the parent's helper threads do not exist in the child.  Neither do the parent's
    # blas_single_threaded blocks: none is open in the child (their exits there change
    # nothing), and BLAS keeps the counts of the fork.  (No threadpoolctl call here:
    # another thread may have held its lock at the fork.)
    global _one_at_a_time, _blas_lock, _blas_users, _blas_limiter, _blas_after, _pool
    global _pool_size
    _one_at_a_time = threading.Lock()
    _blas_lock = threading.Lock()
    _blas_users, _blas_limiter, _blas_after = 0, None, None
    _pool, _pool_size = None, 0


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


@functools.cache
def _blas_controller():
    """threadpoolctl's controller of every BLAS library: NumPy's, and SciPy's, which
    ``np.dot`` in compiled code calls (loaded first)."""
    import scipy.linalg  # noqa: F401
    return threadpoolctl.ThreadpoolController()


def _clear_blas_control():
    # threadpoolctl (3.8+) lets one thread only, the first to set a limit, change a
    # process-wide OpenBLAS pool, and silently ignores the others, so that threads do
    # not fight over it.  fastnet's changes are serialized under ``_blas_lock``; the
    # thread making one clears that control before, to be heard, and after, so that no
    # other thread's threadpoolctl call (a user's own) is then ignored.
    clear = getattr(getattr(threadpoolctl, "OpenBLASController", None),
                    "clear_controlling_thread", None)
    if clear is not None:
        clear(force=True)


def _blas_limit(n):
    """Every BLAS library's thread count set to ``n`` (under ``_blas_lock``); the
    threadpoolctl limiter that restores the counts before."""
    _clear_blas_control()
    try:
        return _blas_controller().limit(limits=n, user_api="blas")
    finally:
        _clear_blas_control()


def _blas_restore(limiter, after):
    """BLAS's counts from before ``limiter`` back, then ``after`` threads unless None
    (under ``_blas_lock``)."""
    _clear_blas_control()
    try:
        limiter.restore_original_limits()
    finally:
        _clear_blas_control()
    if after is not None:
        _blas_limit(after)


@contextlib.contextmanager
def blas_single_threaded():
    """Every BLAS library single-threaded inside the block, process-wide, and restored
    when the last of the blocks open at once (in any thread) ends, whatever it raised;
    a ``set_num_threads`` made meanwhile applies then.  A child forked inside a block
    has no block open and keeps the counts of the fork (single-threaded): its
    ``set_num_threads`` applies at once.  Process-wide for pthreads OpenBLAS (NumPy's
    and SciPy's wheels); MKL and OpenMP builds of OpenBLAS take thread counts per
    thread, and there the block limits the thread that opened it only.

    OpenBLAS's last bits can depend on how it splits a GEMM among its threads, so
    within such a block a GEMM's result does not depend on the thread count (seen:
    AVX2 kernels, on AVX2 CPUs or under ``OPENBLAS_CORETYPE=Haswell``, differ in about
    5% of the elements of a float32 (512, 100) x (100, 512) product between 1 and 2
    threads).  ``run_shares`` runs in one; a sweep's trial trains in one
    (``fastnet.sweep.trial``)."""
    global _blas_users, _blas_limiter, _blas_after
    pid = os.getpid()
    with _blas_lock:
        if _blas_users == 0:
            _blas_limiter = _blas_limit(1)
        _blas_users += 1
    try:
        yield
    finally:
        if os.getpid() == pid:  # not a child forked inside (see _unlock_in_child)
            with _blas_lock:
                _blas_users -= 1
                if _blas_users == 0:
                    _blas_restore(_blas_limiter, _blas_after)
                    _blas_limiter, _blas_after = None, None


def _submit(call, bounds):
    """``call`` of shares 1.. of ``bounds`` submitted to the process's pool of helper
    threads (made on first use, grown when asked for more); their futures.  Under the
    lock, so that no other thread retires the pool between its growth and these
    submissions (a retired pool still runs what it was given)."""
    global _pool, _pool_size
    workers = len(bounds) - 2
    with _blas_lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = concurrent.futures.ThreadPoolExecutor(workers, "fastnet-share")
            _pool_size = workers
        return [_pool.submit(call, bounds[j], bounds[j + 1], j)
                for j in range(1, len(bounds) - 1)]


def run_shares(call, n, shares):
    """``call(first, last, j)`` for ``shares`` contiguous shares ``[first, last)`` of
    ``range(n)`` at once, share 0 on the calling thread and the others on helper
    threads, with every BLAS library single-threaded meanwhile (restored after the
    last concurrent ``run_shares`` ends, whatever it raised).

    For work made of independent items that each call BLAS (a population's members):
    the cores then run whole items at once instead of splitting each small GEMM, and
    an item's arithmetic does not depend on ``shares`` or on the machine's thread
    count.  ``call`` must release the GIL (fastnet's compiled kernels do).  The BLAS
    limit is process-wide, so other threads' GEMMs run single-threaded meanwhile too.
    The first exception raised by a share is raised after every share has ended.
    """
    shares = max(1, min(int(shares), n))
    bounds = [n * j // shares for j in range(shares + 1)]
    with blas_single_threaded():
        futures = _submit(call, bounds) if shares > 1 else []
        try:
            call(bounds[0], bounds[1], 0)
        finally:
            concurrent.futures.wait(futures)
        for future in futures:
            future.result()


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
_blas_lock = threading.Lock()  # guards the BLAS limit's users and the helper pool
_blas_users, _blas_limiter, _blas_after = 0, None, None
_pool, _pool_size = None, 0
if hasattr(os, "register_at_fork"):  # not on Windows, which does not fork
    os.register_at_fork(after_in_child=_unlock_in_child)

if _setting := os.environ.get("FASTNET_NUM_THREADS"):  # said at import: name the variable
    try:
        _count = int(_setting)
    except ValueError:
        raise ValueError(f"FASTNET_NUM_THREADS={_setting!r}: not an integer") from None
    try:
        set_num_threads(_count)
    except ValueError as err:
        raise ValueError(f"FASTNET_NUM_THREADS={_setting!r}: "
                         f"{str(err).removeprefix('n ')}") from None
