"""The book's activation, loss and numerical-gradient functions, in plain NumPy.

Everything follows the dtype of its input: float32 stays float32 (Python scalars
are weak under NumPy's promotion rules, so ``1 / (1 + x)`` does not upcast).
"""
import numpy as np

from .._book import numerical_gradient  # noqa: F401 (the book's, shared with fastnet.nets)


def identity_function(x):
    """``x`` itself (the output activation of a regression net)."""
    return x


def step_function(x):
    """1 where ``x > 0``, else 0, as int64 (the book's ``np.int`` is gone from NumPy)."""
    return np.asarray(x > 0, dtype=np.int64)


def sigmoid(x):
    """``1 / (1 + exp(-x))``.

    ``exp(-x)`` overflows to inf for very negative ``x``, which gives the right
    limit 0, so the overflow warning is silenced.
    """
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def sigmoid_grad(x):
    """``sigmoid(x) * (1 - sigmoid(x))``."""
    s = sigmoid(x)
    return (1 - s) * s


def relu(x):
    """``max(0, x)``."""
    return np.maximum(0, x)


def relu_grad(x):
    """1 where ``x >= 0``, else 0 (the book's ``np.zeros(x)`` is a bug: ``zeros_like``)."""
    grad = np.zeros_like(x)
    grad[x >= 0] = 1
    return grad


def softmax(x):
    """``exp(x - max) / sum(exp(x - max))`` along the last axis (1-D or 2-D ``x``).

    Subtracting the row maximum keeps ``exp`` from overflowing; it cancels out.
    """
    shifted = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=-1, keepdims=True)


def sum_squared_error(y, t):
    """``0.5 * sum((y - t)**2)``."""
    return 0.5 * np.sum((y - t) ** 2)


mean_squared_error = sum_squared_error  # the book's first name for it (it is not a mean)


def class_indices(y, t):
    """``t`` as class indices: one-hot rows (same size as ``y``) become their argmax."""
    return t.argmax(axis=-1) if t.size == y.size else t


def cross_entropy_error(y, t):
    """``-sum(log(y[i, t_i] + 1e-7)) / N`` for probabilities ``y`` (N, C) or (C,).

    ``t`` holds class indices (N,) or one-hot rows (N, C); 1-D ``y`` is one sample.
    """
    if y.ndim == 1:
        y = y.reshape(1, y.size)
        t = np.reshape(t, (1, -1))
    labels = class_indices(y, t).reshape(-1)
    batch_size = y.shape[0]
    return -np.sum(np.log(y[np.arange(batch_size), labels] + 1e-7)) / batch_size


def softmax_loss(X, t):
    """``cross_entropy_error(softmax(X), t)``."""
    return cross_entropy_error(softmax(X), t)
