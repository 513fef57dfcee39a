"""Compiled kernels: pure functions over C-contiguous arrays, one module per family.

No validation happens here (the wrappers in ``fastnet.layers``, ``fastnet.optimizers``
and ``fastnet.nets`` check every input once); a kernel trusts its shapes.  How kernels
are compiled and cached: ``jit.py``.
"""
from . import (activations, affine, batchnorm, blas, dropout, jit, lanes, network,
               normalization, optimizers, population, softmax)

__all__ = ["activations", "affine", "batchnorm", "blas", "dropout", "jit", "lanes",
           "network", "normalization", "optimizers", "population", "softmax"]

# Every kernel module is imported above, so the cache stamp is taken from the sources
# this process runs, not from files edited later while it runs (see jit.py).
jit.sources_digest()
