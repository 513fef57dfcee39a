"""Dropout with masks from a counter-based generator (the book's non-inverted form).

Element ``i`` is kept when ``u_i > ratio``, ``u_i`` being number ``i`` of the stream
whose 64-bit key the caller derives from (seed, step) with
``fastnet.reference.random.stream_key``; see that module for the generator.  Each
element's draw depends only on (key, i), so the mask is identical on any thread count.
"""
import numpy as np
from numba import prange

from .activations import IDENTITY, RELU, activate
from .jit import inline, serial_and_parallel

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


@inline
def store_kept(y, key, ratio, i, mask, out):
    """``mask[i] = u_i > ratio`` and ``out[i] = y * mask[i]``."""
    keep = uniform(key, i) > ratio
    mask[i] = keep
    out[i] = y if keep else y * 0  # y * mask: NaN and inf give NaN, as in NumPy


@serial_and_parallel
def dropout_forward(x, act, key, ratio, mask, out):
    """``mask = u > ratio`` and ``out = act(x) * mask`` (flat arrays; ``out`` apart from
    ``x``, as an in-place pass does not vectorise).

    The activation (``IDENTITY`` for the Dropout layer alone) is fused in so that a
    net's activation and dropout take one pass.  The identity and ReLU get loops of
    their own: LLVM leaves a loop that tests ``act`` per element unvectorised.
    """
    if act == IDENTITY:
        for i in prange(x.size):
            store_kept(x[i], key, ratio, i, mask, out)
    elif act == RELU:
        for i in prange(x.size):
            store_kept(x[i] if x[i] > 0 else x[i] * 0, key, ratio, i, mask, out)
    else:
        for i in prange(x.size):
            store_kept(activate(x[i], act), key, ratio, i, mask, out)
