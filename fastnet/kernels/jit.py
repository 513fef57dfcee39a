"""How kernels are compiled: the two decorators every kernel module uses."""
import types

import numba

from .. import config


def jit(fn):
    """Compile ``fn`` serially with the project's options (cached, fastmath set)."""
    return numba.njit(**config.JIT)(fn)


def inline(fn):
    """A scalar helper compiled into its callers (no call overhead, no own cache)."""
    return numba.njit(inline="always", fastmath=set(config.FASTMATH))(fn)


def serial_and_parallel(fn):
    """Compile ``fn`` twice: as written (``prange`` runs as ``range``) and parallel.

    Small arrays take the serial version, because waking the thread pool costs more
    than the work; ``fastnet.kernels.pick`` chooses by size.  Both versions execute the
    same arithmetic in the same order per element, so they agree bitwise.  The parallel
    copy gets its own qualified name so Numba's on-disk cache keeps the two apart.
    """
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel",
                              fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_parallel"
    twin.__doc__ = fn.__doc__
    serial = numba.njit(**config.JIT)(fn)
    serial.parallel_version = numba.njit(**config.PARALLEL_JIT)(twin)
    return serial


def pick(kernel, size):
    """The serial or the parallel build of ``kernel`` for a pass over ``size`` elements."""
    return kernel.parallel_version if size >= config.PARALLEL_MIN_SIZE else kernel
