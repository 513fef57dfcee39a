"""fastnet: Numba-compiled kernels for training small neural networks on CPUs.

A drop-in for the ``common/`` package of *Deep Learning from Scratch*; see README.md.
"""
import os

# Threading model (see fastnet/threads.py): BLAS owns the cores during GEMMs, Numba's
# pool during element-wise passes.  An idle pool must sleep, not spin, or the two pools
# fight over the cores; an OpenMP pool (if the user picks Numba's omp layer) reads this
# once, when it first starts.  fastnet.threads picks Numba's layer as it is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

__all__ = ["__version__", "get_num_threads", "set_num_threads", "threading_info"]
_THREADS = ("get_num_threads", "set_num_threads", "threading_info")


def __getattr__(name):
    """``fastnet.threads``' functions, imported on first use: ``import fastnet`` stays
    light (the ``fastnet`` command imports Numba under its Ctrl-C handler), and every
    kernel module imports ``fastnet.threads`` before its first kernel runs."""
    if name in _THREADS:
        from . import threads
        return getattr(threads, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_THREADS])
