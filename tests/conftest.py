"""For every test: fastnet's user cache (parsed datasets, downloads) in a folder of this
test session, never the user's own.  A test that parses a made-up MNIST would otherwise
leave it in ``~/.cache/fastnet`` for every later ``load_mnist()`` to find.

And two threads on a machine of one core: the tests compare one thread with two (a
seed's results do not depend on the thread count), and Numba refuses more threads than
``NUMBA_NUM_THREADS``, which defaults to the cores the process may use.  So where that
is one, the tests' processes may start two (set before Numba is imported), and this one
starts with one, as a user's would.

And ``file_size_limit``, for the tests of a write that fails midway."""
import contextlib
import os
import signal

import pytest

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
if "NUMBA_NUM_THREADS" not in os.environ and CORES < 2:
    os.environ["NUMBA_NUM_THREADS"] = "2"
    from fastnet.threads import set_num_threads

    set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def private_user_cache(tmp_path_factory):
    patch = pytest.MonkeyPatch()
    patch.setenv("FASTNET_CACHE_DIR", str(tmp_path_factory.mktemp("fastnet-user-cache")))
    yield
    patch.undo()


@pytest.fixture
def file_size_limit():
    """``with file_size_limit(n):``, writes past ``n`` bytes of a file fail with EFBIG,
    as under ``ulimit -f`` (SIGXFSZ, which would end the process, is ignored)."""
    resource = pytest.importorskip("resource")

    @contextlib.contextmanager
    def limit(n_bytes):
        before = resource.getrlimit(resource.RLIMIT_FSIZE)
        handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, before[1]))
        try:
            yield
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, before)
            signal.signal(signal.SIGXFSZ, handler)
    return limit
