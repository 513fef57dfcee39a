"""Dropout with masks from a counter-based generator: the book's form (kept elements
unchanged) and the inverted one (kept elements times ``scale = 1 / (1 - ratio)``).

Element ``i`` is kept when ``u_i >= ratio``, ``u_i`` being number ``i`` of the stream
whose 64-bit key the caller derives from (seed, step) with
``fastnet._book.stream_key``; see ``fastnet.reference.random`` for the generator.  Each
element's draw depends only on (key, i), so the mask is identical on any thread count.

``u_i = m_i * 2**-53`` is a float64 multiple of 2**-53 in [0, 1), ``m_i`` the top 53
bits of the mix, and the test is exact whatever the data's dtype, so
``P(keep) = P(u >= ratio) = 1 - ratio`` to within 2**-53: ratio 0 keeps every element
and ratio 1 drops every one.  (The book's ``np.random.rand(*x.shape) > ratio``
differs only where ``u == ratio``, which makes it drop a draw of exactly 0 at ratio 0.)

The kernel tests the integer instead of the float: scaling by 2**53 is exact, and
``m_i`` is an integer, so ``u_i >= ratio`` if and only if ``m_i >= ceil(ratio * 2**53)``,
bit for bit the float64 comparison of the NumPy oracle.  That saves a uint64-to-float64
conversion per element, which made the float32 pass about 10% slower (2 shared cores).
"""
import numpy as np
from numba import prange

from .activations import IDENTITY, RELU, activate, relu
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
def draw53(key, i):
    """Number ``i`` of stream ``key`` as the integer ``m_i = mix64(key + (i + 1) G) >> 11``
    in [0, 2**53); the uniform is ``u_i = m_i * 2**-53``."""
    return mix64(key + np.uint64(i + 1) * GOLDEN) >> np.uint64(11)


@inline
def keep_threshold(ratio):
    """``ceil(ratio * 2**53)``: ``m_i`` reaches it exactly where ``u_i >= ratio`` (ratio a
    float64 in [0, 1]; 0 for ratio 0, 2**53, above every draw, for ratio 1)."""
    return np.uint64(np.ceil(np.float64(ratio) * 2.0**53))


@inline
def store_kept(y, key, threshold, i, scale, mask, out):
    """``mask[i] = u_i >= ratio`` and ``out[i] = y * mask[i] * scale``."""
    keep = draw53(key, i) >= threshold
    mask[i] = keep
    out[i] = y * scale if keep else y * 0  # y * mask: NaN and inf give NaN, as in NumPy


@serial_and_parallel
def dropout_forward(x, key, ratio, scale, mask, out):
    """The Dropout layer: ``mask = u >= ratio`` and ``out = x * mask * scale`` (flat
    arrays; ``scale`` as in ``activation_dropout_forward``)."""
    threshold = keep_threshold(ratio)
    for i in prange(x.size):
        store_kept(x[i], key, threshold, i, scale, mask, out)


@serial_and_parallel
def activation_dropout_forward(x, act, key, ratio, scale, mask, out):
    """``mask = u >= ratio`` and ``out = act(x) * mask * scale`` (flat arrays of
    ``x.size`` elements, ``ratio`` a float in [0, 1], ``scale`` a scalar of ``x``'s dtype:
    1 for the book's dropout, ``1 / (1 - ratio)`` for inverted dropout; ``out`` apart
    from ``x``, as an in-place pass does not vectorise).

    The activation is fused in so that a net's activation and dropout take one pass
    (``dropout_forward`` is the Dropout layer alone).  The identity and ReLU get loops of
    their own: LLVM leaves a loop that tests ``act`` per element unvectorised.
    """
    threshold = keep_threshold(ratio)
    if act == IDENTITY:
        for i in prange(x.size):
            store_kept(x[i], key, threshold, i, scale, mask, out)
    elif act == RELU:
        for i in prange(x.size):
            store_kept(relu(x[i]), key, threshold, i, scale, mask, out)
    else:
        for i in prange(x.size):
            store_kept(activate(x[i], act), key, threshold, i, scale, mask, out)


@serial_and_parallel
def dropout_backward(dout, mask, scale, dx):
    """The Dropout layer's backward: ``dx = dout * mask * scale`` (flat arrays; ``scale``
    in ``dout``'s dtype, as in ``dropout_forward``: 1 for the book's dropout)."""
    for i in prange(dout.size):
        dx[i] = dout[i] * scale if mask[i] else dout[i] * 0
