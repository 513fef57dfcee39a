"""Softmax with cross-entropy, the book's loss:

    y = softmax(x) row-wise,   loss = -sum_i log(y[i, t_i] + 1e-7) / N,
    dx = (y - onehot(t)) * scale            (scale = dout / N)

Labels are class indices; one-hot targets are turned into indices by the wrapper.
Per-row work is independent; the loss is summed over rows in order, in float64.
"""
import math

from .jit import inline, jit

LOG_EPS = 1e-7


@inline
def softmax_row(x, i, y):
    """``y[i] = softmax(x[i])`` (max-shifted, so large logits do not overflow)."""
    d = x.shape[1]
    m = x[i, 0]
    for j in range(1, d):
        if x[i, j] > m:
            m = x[i, j]
    total = 0.0
    for j in range(d):
        e = math.exp(x[i, j] - m)
        y[i, j] = e
        total += e
    inv = 1.0 / total
    for j in range(d):
        y[i, j] *= inv


@jit
def softmax(x, y):
    """``y = softmax(x)`` row-wise; x, y (N, C)."""
    for i in range(x.shape[0]):
        softmax_row(x, i, y)


@jit
def softmax_cross_entropy(x, labels, y):
    """Stores ``y = softmax(x)`` and returns the mean cross-entropy against ``labels``."""
    loss = 0.0
    for i in range(x.shape[0]):
        softmax_row(x, i, y)
        loss -= math.log(y[i, labels[i]] + LOG_EPS)
    return loss / x.shape[0]


@jit
def cross_entropy_grad(y, labels, scale, dx):
    """``dx = (y - onehot(labels)) * scale``."""
    for i in range(y.shape[0]):
        for j in range(y.shape[1]):
            dx[i, j] = y[i, j] * scale
        dx[i, labels[i]] -= scale


@jit
def softmax_cross_entropy_grad(x, labels, scale, dx):
    """Forward and gradient in one pass: returns the mean loss, writes
    ``dx = (softmax(x) - onehot(labels)) * scale``."""
    loss = 0.0
    for i in range(x.shape[0]):
        softmax_row(x, i, dx)
        loss -= math.log(dx[i, labels[i]] + LOG_EPS)
        for j in range(x.shape[1]):
            dx[i, j] *= scale
        dx[i, labels[i]] -= scale
    return loss / x.shape[0]
