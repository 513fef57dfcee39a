"""Dropout with masks from a counter-based generator (the book's non-inverted form).

Element ``i`` is kept when ``u_i > ratio``, ``u_i`` being number ``i`` of the stream
whose 64-bit key the caller derives from (seed, step) with
``fastnet.reference.random.stream_key``; see that module for the generator.  Each
element's draw depends only on (key, i), so the mask is identical on any thread count.
"""
import numpy as np
from numba import prange

from ._jit import inline, serial_and_parallel

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)


@inline
def mix64(z):
    z = (z ^ (z >> np.uint64(30))) * M1
    z = (z ^ (z >> np.uint64(27))) * M2
    return z ^ (z >> np.uint64(31))


@inline
def uniform(key, i):
    """Number ``i`` of stream ``key``: a multiple of 2**-24 in [0, 1)."""
    bits = mix64(key + np.uint64(i + 1) * GOLDEN) >> np.uint64(40)
    return np.float64(bits) * 2.0**-24


@serial_and_parallel
def dropout_forward(x, key, ratio, mask, out):
    """``mask = u > ratio`` and ``out = x * mask`` (flat arrays)."""
    for i in prange(x.size):
        mask[i] = uniform(key, i) > ratio
        out[i] = x[i] if mask[i] else x[i] * 0  # x * mask: NaN and inf give NaN, as in NumPy
