"""One place for every Numba option and every path fastnet uses.

Kernels never hard-code ``fastmath=`` or ``parallel=``; they take ``JIT`` or
``PARALLEL_JIT`` from here.  The fastmath *set* leaves out ``nnan`` and ``ninf`` so a
kernel can still see a NaN or an Inf, and ``contract`` so that no multiply-add is fused
into an FMA in one build of a kernel and not in another: the serial and parallel builds
then round alike.  It leaves out ``arcp`` (``x / n`` turned into ``x * (1 / n)``) for the
same reason: batch norm's backward rounded ``dx`` differently in its serial and parallel
builds once ``reassoc`` was gone.  And it leaves out ``reassoc``: with it LLVM
vectorises a sum in an order of its choosing, and a kernel that a fused kernel calls is
compiled a second time inside its caller, so the same sum rounded one way in the
kernel's own build and another way in the caller's copy, and which copy a call reached
depended on what the process had compiled or loaded before (a float64 layer-norm net's
last bits changed with the process's history).  Without it every sum runs in the order
its source writes; the long sums along a row write their vector partial sums out
(``kernels.lanes``).
"""
import os
from pathlib import Path

import platformdirs

FASTMATH = frozenset({"nsz", "afn"})

JIT = {"cache": True, "nogil": True, "fastmath": set(FASTMATH), "error_model": "numpy"}
PARALLEL_JIT = dict(JIT, parallel=True)

# Rows per chunk of a parallel reduction over the batch.  Partial sums are formed per
# chunk and added in chunk order, so the result does not depend on the thread count.
REDUCE_CHUNK = 256

# Byte boundary every arena (parameters, gradients, optimizer state, workspaces) starts
# on: a cache line.  NumPy's own allocations are 16-byte aligned, and an AVX-512 loop
# whose loads straddle cache lines runs up to 3x slower (measured on 2 cores: Adam over
# a 784-100x4-10 net's 110k parameters, 96 us with 16-byte-aligned arenas, 32 us with
# 64-byte-aligned ones).
ALIGNMENT = 64

# Zero-filled arenas of at least this many bytes are memory mappings of their own, in
# 4 kB pages that become resident only once written (``arena.aligned_zeros``); the size
# from which NumPy asks for transparent huge pages.
LAZY_ZEROS_MIN_BYTES = 1 << 22

# Element-wise passes smaller than this run serially: waking the thread pool costs
# more than the pass itself (measured on 2 cores: the SGD update of the 110k parameters
# of a 784-100x4-10 net takes 17 us serially, 28-80 us on two threads).
PARALLEL_MIN_SIZE = 1 << 17

# Group norm's (and layer and instance norm's) kernels go parallel sooner, from this
# many elements: their per-element work is larger (measured on 2 cores, minimum of 9:
# forward and backward of (64, 16, 8, 8) float32 layer norm, 23 and 34 us serially, 17
# and 29 us on two threads; (32, 16, 8, 8) about even; (128, 100) 9 and 14 us serially,
# 9 and 22 us on two threads).
GROUP_NORM_PARALLEL_MIN_SIZE = 1 << 16


def user_cache_dir():
    """fastnet's per-user cache folder: ``$FASTNET_CACHE_DIR`` if set, else the platform's
    convention through ``platformdirs`` (``$XDG_CACHE_HOME/fastnet``, default
    ``~/.cache/fastnet``, on Linux; ``~/Library/Caches/fastnet`` on macOS;
    ``%LOCALAPPDATA%\\fastnet\\Cache`` on Windows)."""
    explicit = os.environ.get("FASTNET_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    return Path(platformdirs.user_cache_dir("fastnet", appauthor=False))
