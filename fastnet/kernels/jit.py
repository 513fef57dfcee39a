"""How kernels are compiled and cached: the decorators every kernel module uses.

Kernels compile lazily, as Numba does: a process compiles only the kernels, and the
signatures of them, that it calls, and caches each on disk (next to the sources, or in
the user's cache folder when the install is read-only; ``NUMBA_CACHE_DIR`` overrides
both).  Two guarantees on top of Numba's cache:

* **One process at a time.**  Every compilation, and every load of a cached kernel,
  runs under an inter-process file lock in the cache folder (``filelock``), so
  processes started together on a cold cache (a sweep, a test run) never write the
  same cache files at once: one compiles, the others wait and then load its result.
* **Never a stale kernel.**  Numba checks a cached kernel against its own source file
  only, so a kernel whose module did not change would be loaded with the old copy of a
  changed callee from another module.  The cache folder therefore carries a stamp keyed
  by the fastnet version, the BLAS the kernels call and the sources of every kernel
  module as this process imported them.  Whoever compiles first under a new stamp
  deletes every cached kernel and writes the stamp; a process of other sources that
  finds the stamp changed does the same, so the cache only ever holds kernels of one
  version.

The first compilation in a process prints one line to stderr, and so does a wait of
more than ``LOCK_NOTICE_S`` seconds for another process's lock.  Where no cache folder
is writable at all, kernels compile in every process (with one warning saying how to
enable caching).  Numba uses a cache folder only where it can write: a cache built
ahead of time (``fastnet cache build``) serves the users who can write to it, or
``NUMBA_CACHE_DIR`` pointed at a writable copy.
"""
import contextlib
import functools
import glob
import hashlib
import os
import sys
import types
import warnings

import filelock
import numba
import numpy as np
from numba.core import event
from numba.core.compiler_lock import global_compiler_lock
from numba.core.dispatcher import Dispatcher

from .. import __version__, _upstream, config, threads

STAMP_SUFFIX = ".built"
LOCK_NAME = "fastnet-jit.lock"
LOCK_NOTICE_S = 5  # a wait on the lock longer than this is announced
KERNELS = []  # every cached dispatcher, serial and parallel builds

# A fifth less compile time, the same code (see its docstring); where Numba has moved what
# it patches, compiles are only slower, and tests/test_upstream.py fails by name.
with contextlib.suppress(_upstream.UpstreamChanged):
    _upstream.share_scope_in_inlined_copies()


def jit(fn):
    """Compile ``fn`` serially with the project's options (cached, fastmath set)."""
    return _cached(fn, config.JIT)


def inline(fn):
    """A scalar helper compiled into its callers (no call overhead, no own cache)."""
    return numba.njit(inline="always", fastmath=set(config.FASTMATH))(fn)


def serial_and_parallel(fn=None, *, min_size="PARALLEL_MIN_SIZE"):
    """Compile ``fn`` twice: as written (``prange`` runs as ``range``) and parallel.

    Small arrays take the serial version, because waking the thread pool costs more
    than the work; ``pick`` chooses by size: the parallel build from the number of
    elements that ``min_size`` names in ``config`` (read at each call;
    ``@serial_and_parallel(min_size="...")`` for a kernel whose crossover lies
    elsewhere than ``PARALLEL_MIN_SIZE``).  Both versions execute the same
    arithmetic in the same order per element, so they agree bitwise.  The parallel
    copy gets its own qualified name so Numba's on-disk cache keeps the two apart.
    """
    if fn is None:
        return functools.partial(serial_and_parallel, min_size=min_size)
    twin = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_parallel",
                              fn.__defaults__, fn.__closure__)
    twin.__qualname__ = fn.__qualname__ + "_parallel"
    twin.__doc__ = fn.__doc__
    serial = _cached(fn, config.JIT)
    serial.parallel_version = _cached(twin, config.PARALLEL_JIT)
    getattr(config, min_size)  # an AttributeError now for a name config lacks
    serial.parallel_min_size = min_size
    return serial


def pick(kernel, size):
    """The serial or the parallel build of ``kernel`` for a pass over ``size`` elements;
    the parallel build behind a process-wide lock where Numba's threading layer is not
    thread-safe (see ``fastnet.threads``)."""
    if size < getattr(config, kernel.parallel_min_size):
        return kernel
    if threads.parallel_kernels_threadsafe():
        return kernel.parallel_version
    return threads.one_at_a_time(kernel.parallel_version)


def _cached(fn, options):
    """``numba.njit(**options)(fn)`` whose compilations run under the cache's lock."""
    try:
        dispatcher = numba.njit(**options)(fn)
    except RuntimeError as err:  # Numba: "cannot cache function ...: no locator available"
        if "no locator available" not in str(err):
            raise
        _warn_uncached()
        dispatcher = numba.njit(**dict(options, cache=False))(fn)
    if not isinstance(dispatcher, Dispatcher):  # NUMBA_DISABLE_JIT=1: the plain function
        return _as_python(fn)
    compile_unlocked = dispatcher.compile

    def compile(sig):
        # Numba's compiler lock first, as Numba's own nested compilations take it:
        # one order of the two locks, so two threads cannot deadlock on them.
        with global_compiler_lock, _locked_cache(dispatcher):
            return compile_unlocked(sig)

    dispatcher.compile = compile
    KERNELS.append(dispatcher)
    return dispatcher


def _as_python(fn):
    """``fn`` run as Python (``NUMBA_DISABLE_JIT=1``) with NumPy's overflow warnings off,
    as compiled code has none: the dropout streams' hash multiplies uint64 scalars modulo
    2**64 by design, and a warning there is an error under ``python -W error``."""
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with np.errstate(over="ignore"):
            return fn(*args, **kwargs)

    return run


@functools.cache  # once per process
def _warn_uncached():
    warnings.warn(
        "fastnet: Numba finds no writable folder to cache fastnet's kernels in (neither "
        "the package's folder nor the user's cache folder); kernels are compiled in every "
        "process.  Set NUMBA_CACHE_DIR to a writable folder to cache them.",
        RuntimeWarning, stacklevel=4)


def cache_dir():
    """The folder of fastnet's cached kernels, or None where nothing is cached."""
    from . import softmax  # any kernel of this folder: they share one cache folder

    if numba.config.DISABLE_JIT:
        return None
    return _upstream.numba_cache_dir(softmax.softmax)


@functools.cache
def _file_lock(folder):
    os.makedirs(folder, exist_ok=True)
    # Reentrant within a thread (a kernel's compilation compiles its callees); one lock
    # file descriptor per thread, so other threads of this process wait like processes.
    return filelock.FileLock(os.path.join(folder, LOCK_NAME), thread_local=True)


def locked():
    """The cache folder's inter-process lock (reentrant), for work on the folder itself;
    a context that does nothing where nothing is cached."""
    folder = cache_dir()
    return _file_lock(folder) if folder else contextlib.nullcontext()


@contextlib.contextmanager
def _locked_cache(dispatcher):
    """The cache folder's lock, with the folder made current on entry (see the module's
    docstring): a folder without this version's stamp is emptied and stamped."""
    folder = _upstream.numba_cache_dir(dispatcher)
    if folder is None:
        yield
        return
    lock = _file_lock(folder)
    try:
        lock.acquire(timeout=LOCK_NOTICE_S)
    except filelock.Timeout:
        print(f"fastnet: waiting for another process's lock on the kernel cache {folder} "
              f"({LOCK_NAME})...", file=sys.stderr, flush=True)
        lock.acquire()
    try:
        stamp = stamp_path(folder)
        if not os.path.exists(stamp):
            clear_cache(folder)
            with open(stamp, "w") as handle:
                handle.write(f"{sys.executable}\n")
        yield
    finally:
        lock.release()


@functools.cache
def sources_digest():
    """SHA-1 of every kernel module's source, the config module and the GEMM backend,
    as they are the first time this is called: ``fastnet.kernels`` calls it right
    after importing every kernel module, so the stamp describes the code this process
    compiles even if the files change while it runs."""
    from . import blas  # here, not at the top: blas itself is compiled with this module

    digest = hashlib.sha1(blas.BACKEND.encode())
    here = os.path.dirname(os.path.abspath(__file__))
    for path in [config.__file__, *sorted(glob.glob(os.path.join(here, "*.py")))]:
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()[:12]


def stamp_path(folder):
    """The stamp of this fastnet's kernels in cache folder ``folder``."""
    # Not Numba's nor Python's version: Numba's index checks its own version, and its
    # file names carry Python's, so interpreters sharing one folder do not collide.
    tag = f"fastnet-{__version__}-{sources_digest()}"
    return os.path.join(folder, tag + STAMP_SUFFIX)


def clear_cache(folder=None):
    """Delete every cached kernel and stamp in ``folder`` (default: ``cache_dir()``).

    Call it under the cache's lock, or where no other process uses the cache."""
    folder = folder or cache_dir()
    if folder is None:
        return
    for pattern in ("*.nbi", "*.nbc", "fastnet-*" + STAMP_SUFFIX):
        for path in glob.glob(os.path.join(folder, pattern)):
            os.remove(path)


class _AnnounceFirstCompile(event.Listener):
    """Prints one line to stderr when this process first compiles a fastnet kernel
    (a load from the cache is not a compilation)."""

    announced = False

    def on_start(self, ev):
        if not self.announced and ev.data["dispatcher"] in KERNELS:
            type(self).announced = True
            where = _upstream.numba_cache_dir(ev.data["dispatcher"])
            note = f"cached in {where}" if where else "not cached"
            print(f"fastnet: compiling kernels on first use ({note})...", file=sys.stderr,
                  flush=True)

    def on_end(self, ev):
        pass


event.register("numba:compile", _AnnounceFirstCompile())
