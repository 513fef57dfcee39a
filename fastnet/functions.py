"""The book's ``common/functions.py``: activations and losses on NumPy arrays.

These are not hot paths (the layers call compiled kernels), so they are simply the
NumPy reference implementations.
"""
from .reference.functions import (
    cross_entropy_error,
    identity_function,
    mean_squared_error,
    numerical_gradient,
    relu,
    relu_grad,
    sigmoid,
    sigmoid_grad,
    softmax,
    softmax_loss,
    step_function,
    sum_squared_error,
)

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
