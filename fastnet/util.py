"""The book's ``common/util.py`` helpers ``smooth_curve`` and ``shuffle_dataset``.

Not hot paths, so they are the NumPy reference implementations.
"""
from .reference.util import shuffle_dataset, smooth_curve

__all__ = ["shuffle_dataset", "smooth_curve"]
