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
"""
import numpy as np

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix64(z):
    """SplitMix64 finaliser over uint64 (scalars or arrays, wrapping arithmetic)."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def stream_key(seed, step):
    """The 64-bit key of stream ``(seed, step)``; both must be non-negative ints."""
    with np.errstate(over="ignore"):
        return mix64(np.uint64(seed) * GOLDEN + mix64(np.uint64(step) + GOLDEN))


def counter_uniform(seed, step, n):
    """``n`` uniforms in [0, 1) (float64, multiples of 2**-53) of stream ``(seed, step)``."""
    key = stream_key(seed, step)
    with np.errstate(over="ignore"):
        counters = key + (np.arange(n, dtype=np.uint64) + np.uint64(1)) * GOLDEN
    return (mix64(counters) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def resolve_rng(seed=None, rng=None):
    """The Generator a net or trainer draws from.

    An explicit ``rng`` wins, then ``seed``.  With neither, the seed is drawn from
    NumPy's global state, so a book script that calls ``np.random.seed(0)`` first is
    still reproducible.
    """
    if rng is not None:
        if seed is not None:
            raise ValueError("give either seed= or rng=, not both")
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
        return rng
    if seed is None:
        seed = np.random.randint(0, 2**31 - 1)
    return np.random.default_rng(seed)


def draw_seed(rng):
    """A fresh non-negative 63-bit seed from ``rng`` (for a Dropout layer's stream)."""
    return int(rng.integers(0, 2**63 - 1))
