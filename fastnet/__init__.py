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

from .threads import get_num_threads, set_num_threads, threading_info  # noqa: E402

__all__ = ["get_num_threads", "set_num_threads", "threading_info", "__version__"]
