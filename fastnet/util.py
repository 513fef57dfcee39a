"""The book's ``common/util.py`` helpers ``smooth_curve`` and ``shuffle_dataset``.

Not hot paths and without a compiled version, so they are the NumPy reference's,
re-exported (with ``fastnet.functions``, the product's one import of
``fastnet.reference``; see there).
"""
from .reference.util import shuffle_dataset, smooth_curve

__all__ = ["shuffle_dataset", "smooth_curve"]
