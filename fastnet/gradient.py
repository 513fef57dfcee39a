"""The book's ``common/gradient.py``: ``numerical_gradient(f, x)`` by central differences.

Not a hot path (it exists to check backpropagation): plain NumPy, the one
implementation the nets and the reference share (``fastnet._book``).
"""
from . import _book

numerical_gradient = _book.numerical_gradient

__all__ = ["numerical_gradient"]
