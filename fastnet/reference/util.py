"""The book's plotting and data helpers, in plain NumPy."""
import numpy as np

from .random import resolve_rng


def smooth_curve(x):
    """``x`` smoothed by an 11-wide Kaiser window (beta 2), the book's function: the same
    length as ``x`` for 11 values or more (fewer give a shorter result, as the book's).

    The signal is padded with its own reflections at both ends so the window never
    runs off it (http://glowingpython.blogspot.jp/2012/02/convolution-with-numpy.html).
    """
    window_len = 11
    s = np.r_[x[window_len - 1:0:-1], x, x[-1:-window_len:-1]]
    w = np.kaiser(window_len, 2)
    y = np.convolve(w / w.sum(), s, mode="valid")
    return y[5:len(y) - 5]


def shuffle_dataset(x, t, *, seed=None, rng=None):
    """``(x[p], t[p])`` for one random permutation ``p`` of the samples.

    With neither ``seed`` nor ``rng`` the permutation comes from the global
    ``np.random`` state, as in the book; otherwise see ``resolve_rng``.
    """
    if len(x) != len(t):
        raise ValueError(f"x and t must have the same length, got {len(x)} and {len(t)}")
    source = np.random if seed is None and rng is None else resolve_rng(seed, rng)
    permutation = source.permutation(len(x))
    return x[permutation], t[permutation]
