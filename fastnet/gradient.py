"""The book's ``common/gradient.py``: ``numerical_gradient(f, x)`` by central differences.

Not a hot path (it exists to check backpropagation), so it is the NumPy reference.
"""
from .reference.functions import numerical_gradient

__all__ = ["numerical_gradient"]
