"""Compiled kernels: pure functions over C-contiguous arrays, one module per family.

No validation happens here (the wrappers in ``fastnet.layers``, ``fastnet.optimizers``
and ``fastnet.nets`` check every input once); a kernel trusts its shapes.  How kernels
are compiled and cached: ``jit.py``.
"""
