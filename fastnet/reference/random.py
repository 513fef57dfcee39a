"""Counter-based random numbers: the oracle for the uniforms of ``fastnet.kernels.dropout``.

Number ``i`` of stream ``(seed, step)`` is a pure function of the three integers, so
any thread can compute any element and a mask is the same on 1 or 16 threads.  The
mixer is SplitMix64's finaliser (Steele, Lea and Flood 2014):

    key = mix64(seed * G + mix64(step + G))
    u_i = (mix64(key + (i + 1) * G) >> 11) * 2**-53        G = 0x9E3779B97F4A7C15

``u_i`` is a multiple of 2**-53 in [0, 1), the top 53 bits of the mix: every such
multiple is a float64 (the conversion and the scaling are exact), so the kernel and
this oracle give bitwise the same numbers, and ``P(u_i < r)`` is ``r`` to within 2**-53
for any float64 ``r`` in [0, 1] (exactly ``r`` for ``r`` a multiple of 2**-53).  The
uniforms are float64 whatever the data's dtype: rounded to float32 they would lose that
resolution (and could round up to 1.0).

The mixer, the key and the seed handling are ``fastnet._book``'s (the product derives
its kernels' keys with the same ``stream_key``); the uniforms are this module's.
"""
import numpy as np

from .._book import GOLDEN, draw_seed, mix64, resolve_rng, stream_key

__all__ = ["GOLDEN", "counter_uniform", "draw_seed", "mix64", "resolve_rng", "stream_key"]


def counter_uniform(seed, step, n):
    """``n`` uniforms in [0, 1) (float64, multiples of 2**-53) of stream ``(seed, step)``."""
    key = stream_key(seed, step)
    with np.errstate(over="ignore"):
        counters = key + (np.arange(n, dtype=np.uint64) + np.uint64(1)) * GOLDEN
    return (mix64(counters) >> np.uint64(11)).astype(np.float64) * 2.0**-53
