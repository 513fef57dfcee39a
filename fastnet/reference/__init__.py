"""The NumPy reference implementation of fastnet: the correctness oracle.

Plain, obviously correct NumPy that follows the book's ``common/`` code, with the
book's class names, arguments and attributes.  The compiled kernels are tested against it and every
benchmark reports its speed-up over it.  It is shipped (not hidden in the tests) so
that users can compare too: ``from fastnet import reference`` then
``reference.nets.MultiLayerNet(...)`` is the same net on NumPy alone.

Submodules: ``functions``, ``layers``, ``optimizers``, ``nets``, ``trainer``,
``util`` and ``random`` (the counter-based uniforms behind dropout).
"""
from . import functions, layers, nets, optimizers, random, trainer, util

__all__ = ["functions", "layers", "nets", "optimizers", "random", "trainer", "util"]
