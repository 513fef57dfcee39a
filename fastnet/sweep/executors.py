"""Where a sweep's chunks of trials train: this process, a local process pool, or Dask.

An executor takes a chunk (a list of ``trial.Unit``) and returns a future of its list
of ``trial.Outcome``.  Every worker sets its thread limits (``fastnet.set_num_threads``,
BLAS and Numba alike) before its first kernel runs, so that ``workers x threads``
never exceeds the cores: the local default is one process per core with one thread
each.  Workers load the sweep's data once (a ``DataSpec`` is loaded where the worker
runs; arrays are shipped once per worker, or scattered once to a Dask cluster).
Spawned, not forked, local workers import the main module again, so a script that
starts more than one must do it under ``if __name__ == "__main__":``.

A worker that dies (killed, out of memory) loses only its chunk: the local pool is
rebuilt and the chunk submitted again, and Dask's scheduler moves the task to another
worker.  A local worker whose coordinator dies (kill -9) exits within a second.  The
coordinator records each trial once, whoever trained it.
"""
import concurrent.futures as cf
import multiprocessing
import os
import threading
import time
import uuid
from concurrent.futures.process import BrokenProcessPool

from . import trial
from .data import load

_WORKER = {}  # this worker process's data and dtype, set once
# A pool keeps two chunks per worker in flight, of at most MAX_CHUNK trials: a chunk's
# trials come back (and are recorded) together, so a kill loses at most its chunks.
CHUNKS_PER_WORKER = 2
MAX_CHUNK = 8


def _init_worker(threads, source, dtype, backend):
    from ..threads import set_num_threads

    set_num_threads(threads)
    _WORKER.update(data=load(source, dtype), dtype=dtype, backend=backend)


def _init_local_worker(coordinator, threads, source, dtype, backend):
    _exit_with_parent(coordinator)
    _init_worker(threads, source, dtype, backend)


def _exit_with_parent(parent, interval=1.0):
    """End this worker once its parent (the coordinator) is gone: a coordinator killed
    with -9 cannot stop its pool, and the workers would wait for work forever."""
    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="fastnet-parent-watch", daemon=True).start()


def _run_chunk(units):
    return trial.run_units(units, _WORKER["data"], _WORKER["dtype"], _WORKER["backend"])


def default_workers():
    """One worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class InProcessExecutor:
    """Trains chunks here, one after the other, with ``threads`` threads (restored on
    ``close``); the simplest and fastest start for one worker.  A chunk of up to
    ``MAX_CHUNK`` trials, so that trials of one shape train as a population whose
    members the threads share (``trial.run_units``); its trials are recorded when it
    ends."""

    workers = 1
    chunks_in_flight, max_chunk = 1, MAX_CHUNK

    def __init__(self, source, dtype, backend, threads=None):
        from ..threads import get_num_threads, set_num_threads

        self._restore = get_num_threads()
        self._set = set_num_threads
        set_num_threads(threads or default_workers())
        self._args = (load(source, dtype), dtype, backend)

    def submit(self, units):
        future = cf.Future()
        future.set_result(trial.run_units(units, *self._args))
        return future

    @staticmethod
    def wait(futures):
        return set(futures)

    def close(self):
        self._set(self._restore)


class LocalExecutor:
    """A pool of ``workers`` spawned processes with ``threads`` threads each
    (``workers * threads`` should not exceed the cores).  Spawned, not forked: a forked
    OpenMP or TBB runtime can deadlock."""

    max_chunk = MAX_CHUNK

    def __init__(self, source, dtype, backend, workers, threads=1):
        self.workers = workers
        self.chunks_in_flight = CHUNKS_PER_WORKER * workers
        self._args = (os.getpid(), threads, source, dtype, backend)
        self._pool = self._new_pool()

    def _new_pool(self):
        return cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                      initializer=_init_local_worker, initargs=self._args)

    def submit(self, units):
        try:
            return self._pool.submit(_run_chunk, units)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._new_pool()
            return self._pool.submit(_run_chunk, units)

    @staticmethod
    def wait(futures):
        return cf.wait(futures, return_when=cf.FIRST_COMPLETED).done

    def close(self):
        self._pool.shutdown(wait=True, cancel_futures=True)


def _dask_run_chunk(source, key, units, threads, dtype, backend):
    """A Dask task: set up this worker for the sweep ``key`` on its first chunk."""
    if _WORKER.get("key") != key:
        _init_worker(threads, source, dtype, backend)
        _WORKER["key"] = key
    return _run_chunk(units)


class DaskExecutor:
    """Chunks as tasks of a ``dask.distributed.Client`` (``client=``, or one made for
    ``scheduler`` address).  Each task sets ``threads`` threads in its worker process
    before it trains; run Dask workers with ``--nthreads 1`` (one task at a time per
    process) and as many processes as cores / ``threads``.  The data is scattered to
    every worker once.  Requires ``pip install "fastnet[distributed]"``."""

    def __init__(self, source, dtype, backend, client=None, scheduler=None, threads=1):
        try:
            import distributed
        except ImportError as err:
            raise ImportError('the Dask executor needs dask.distributed: '
                              'pip install "fastnet[distributed]"') from err
        self._distributed = distributed
        self._own = client is None
        self._client = client or distributed.Client(scheduler)
        info = self._client.scheduler_info()
        self.workers = max(1, sum(w.get("nthreads", 1) for w in info["workers"].values()))
        self.chunks_in_flight, self.max_chunk = CHUNKS_PER_WORKER * self.workers, MAX_CHUNK
        self._key = f"{uuid.uuid4()}"  # this sweep's setup, once per worker process
        if not isinstance(source, dict):  # arrays: once to every worker
            source = self._client.scatter(source, broadcast=True, hash=False)
        self._args = (threads, dtype, backend)
        self._source = source

    def submit(self, units):
        return self._client.submit(_dask_run_chunk, self._source, self._key, units,
                                   *self._args, pure=False)

    def wait(self, futures):
        return self._distributed.wait(list(futures), return_when="FIRST_COMPLETED").done

    def close(self):
        if self._own:
            self._client.close()
