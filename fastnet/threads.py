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
* An idle pool must sleep instead of spinning: ``fastnet`` sets
  ``OMP_WAIT_POLICY=PASSIVE`` for Numba's OpenMP pool before it starts (unless set by
  the user).

``set_num_threads(n)`` gives both pools the same ``n``.  For parallel sweeps, run
``workers x n <= cores``: e.g. 2 workers with ``set_num_threads(1)`` on 2 cores.  The
environment variable ``FASTNET_NUM_THREADS`` applies ``set_num_threads`` at import.
"""
import os

import numba
import threadpoolctl


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
        "numba_threads": numba.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "gemm": blas.BACKEND,
        "blas": [{"library": info["filepath"], "version": info.get("version"),
                  "threads": info["num_threads"]}
                 for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"],
    }


if os.environ.get("FASTNET_NUM_THREADS"):
    set_num_threads(os.environ["FASTNET_NUM_THREADS"])
