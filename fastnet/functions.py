"""The book's ``common/functions.py``: activations and losses on NumPy arrays.

These are not hot paths (the layers call compiled kernels) and fastnet has no compiled
version of them, so they are the NumPy reference's, re-exported: the one place, with
``fastnet.util``, where the product imports ``fastnet.reference`` (a second copy would
be code that nothing tests against).  ``numerical_gradient`` is ``fastnet._book``'s.
"""
from . import _book
from .reference.functions import (
    cross_entropy_error,
    identity_function,
    mean_squared_error,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    softmax,
    softmax_loss,
    step_function,
    sum_squared_error,
)

numerical_gradient = _book.numerical_gradient

__all__ = [
    "cross_entropy_error",
    "identity_function",
    "mean_squared_error",
    "numerical_gradient",
    "relu",
    "relu_grad",
    "sigmoid",
    "sigmoid_grad",
    "softmax",
    "softmax_loss",
    "step_function",
    "sum_squared_error",
]
