"""Where a sweep's chunks of trials train: this process, a local process pool, or Dask.

An executor takes a chunk (a list of ``trial.Unit``) and returns a future of its list
of ``trial.Outcome``.  Every worker sets its thread limits (``fastnet.set_num_threads``,
BLAS and Numba alike) before its first kernel runs, so that ``workers x threads``
never exceeds the cores: the local default is one process per core with one thread
each.  Workers load the sweep's data once (a ``DataSpec`` is loaded where the worker
runs; arrays are written once to a temporary file that each local worker reads, or
scattered once to a Dask cluster).
Spawned, not forked, local workers import the main module again, so a script that
starts more than one must do it under ``if __name__ == "__main__":``.  A worker that
finds ``run`` called while it imports the main module exits with
``UNGUARDED_MAIN_EXIT``, and the pool, which sees every worker ready before it takes
chunks, stops the sweep with ``WorkersDidNotStart`` saying so (likewise when the
initializer raises, with its error, or a worker is killed while it starts).  Arrays
reach the workers through a temporary file, not the spawned process's start-up pipe:
a child that dies before reading that pipe would block its parent's write forever.

A worker that dies (killed, out of memory) loses only its chunk: the local pool is
rebuilt and the chunk submitted again, and Dask's scheduler moves the task to another
worker.  A local worker whose coordinator dies (kill -9) exits within a second.  The
coordinator records each trial once, whoever trained it.
"""
import concurrent.futures as cf
import multiprocessing.context
import os
import pickle
import signal
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures.process import BrokenProcessPool

from .. import _upstream
from . import trial
from .data import load

_WORKER = {}  # this worker process's data and dtype, set once
# A pool keeps two chunks per worker in flight, of at most MAX_CHUNK trials: a chunk's
# trials come back (and are recorded) together, so a kill loses at most its chunks.
CHUNKS_PER_WORKER = 2
MAX_CHUNK = 8
# How a spawned worker exits when it finds the main module starting a sweep at import
UNGUARDED_MAIN_EXIT = 78  # EX_CONFIG of sysexits.h
GUARD_ADVICE = ('call fastnet.sweep.run under `if __name__ == "__main__":` ("Safe importing '
                'of main module" in the docs of Python\'s multiprocessing)')


class SweepInterrupted(RuntimeError):
    """The sweep stopped before its end (its workers keep dying, or cannot start); what
    ended is stored."""


class WorkersDidNotStart(SweepInterrupted):
    """The local pool's worker processes ended or failed before they were ready to
    train; the message says how, and what to do about a script without a main guard."""


def exit_if_importing_main():
    """Exit a spawned process that is still importing its parent's main module: there a
    call of ``run`` comes from a script without a main guard, and multiprocessing would
    refuse to start workers anyway, after the data had loaded for nothing.  The exit
    status ``UNGUARDED_MAIN_EXIT`` tells the coordinator why."""
    if _upstream.importing_main_in_spawned_child():
        raise SystemExit(UNGUARDED_MAIN_EXIT)


def _init_worker(threads, source, dtype, backend):
    from ..threads import set_num_threads

    set_num_threads(threads)
    _WORKER.update(data=load(source, dtype), dtype=dtype, backend=backend, threads=threads)


def _init_local_worker(coordinator, threads, source, dtype, backend):
    from tqdm import tqdm

    _exit_with_parent(coordinator)
    # A download's progress bar here would make tqdm's default lock, a multiprocessing
    # semaphore that a worker terminated by an interrupted sweep leaves behind (and
    # Python warns of at exit); a worker's bars need only a lock of its own threads.
    tqdm.set_lock(threading.RLock())
    try:
        if isinstance(source, str):  # the arrays, in the file the coordinator wrote
            with open(source, "rb") as file:
                source = pickle.load(file)
        _init_worker(threads, source, dtype, backend)
    except Exception as err:  # noqa: BLE001 (raised by every task: the coordinator sees it)
        _WORKER["error"] = err


def _check_started():
    if "error" in _WORKER:
        raise _WORKER["error"]


def _exit_with_parent(parent, interval=1.0):
    """End this worker once its parent (the coordinator) is gone: a coordinator killed
    with -9 cannot stop its pool, and the workers would wait for work forever."""
    def watch():
        while os.getppid() == parent:
            time.sleep(interval)
        os._exit(1)

    threading.Thread(target=watch, name="fastnet-parent-watch", daemon=True).start()


def _run_chunk(units):
    _check_started()
    return trial.run_units(units, _WORKER["data"], _WORKER["dtype"], _WORKER["backend"],
                           _WORKER["threads"])


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
        threads = threads or default_workers()
        set_num_threads(threads)
        self._args = (load(source, dtype), dtype, backend, threads)

    def submit(self, units):
        future = cf.Future()
        future.set_result(trial.run_units(units, *self._args))
        return future

    @staticmethod
    def wait(futures):
        return set(futures)

    def close(self, abort=False):
        self._set(self._restore)


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    """A spawned worker that ignores SIGINT from its first instruction: Ctrl-C in a
    terminal reaches the whole process group, and the coordinator, which handles it,
    terminates the workers (else each would print a KeyboardInterrupt traceback).  An
    ignored signal stays ignored across the exec, and Python keeps it so."""

    def start(self):
        if threading.current_thread() is not threading.main_thread():
            return super().start()  # only the main thread may set a handler
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            return super().start()
        finally:
            # None: a handler set outside Python, which Python cannot put back
            signal.signal(signal.SIGINT, signal.default_int_handler if previous is None
                          else previous)


class _SpawnContext(multiprocessing.context.SpawnContext):
    """The spawn context of ``_WorkerProcess``es, keeping the processes it starts: a
    broken pool does not say how its workers ended, their exit codes do."""

    def __init__(self):
        super().__init__()
        self.processes = []

    def Process(self, *args, **kwargs):
        process = _WorkerProcess(*args, **kwargs)
        self.processes.append(process)
        return process


def _start_failure(err, processes):
    """One line: why the workers ``processes`` of a pool did not start, ``err`` being
    what their first task raised."""
    if not isinstance(err, BrokenProcessPool):  # the initializer raised it
        return (f"the sweep's worker processes could not start: loading the data or "
                f"setting their threads raised {type(err).__name__}: {err}")
    codes = [p.exitcode for p in processes if p.exitcode is not None]
    if UNGUARDED_MAIN_EXIT in codes:
        main = getattr(sys.modules["__main__"], "__file__", None) or "the main module"
        return (f"the sweep's worker processes could not start: {main} starts the sweep "
                f"when imported, and each spawned worker imports it again; {GUARD_ADVICE}")
    # the pool terminates the survivors of a broken pool: the first other end is the cause
    code = next((c for c in codes if c != -signal.SIGTERM), codes[0] if codes else None)
    if code is None:
        how = "ended"
    elif code < 0:
        try:
            how = f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            how = f"was killed by signal {-code}"
    else:
        how = f"exited with status {code}"
    advice = f"; if the script's top level does more than define things, {GUARD_ADVICE}"
    return (f"a worker process of the sweep {how} before it was ready to train (its own "
            f"error, if any, is printed above){advice if code and code > 0 else ''}")


class LocalExecutor:
    """A pool of ``workers`` spawned processes with ``threads`` threads each
    (``workers * threads`` should not exceed the cores).  Spawned, not forked: a forked
    OpenMP or TBB runtime can deadlock.  Raises ``WorkersDidNotStart`` when the workers
    cannot start."""

    max_chunk = MAX_CHUNK

    def __init__(self, source, dtype, backend, workers, threads=1):
        self.workers = workers
        self.chunks_in_flight = CHUNKS_PER_WORKER * workers
        self._folder = None
        if not isinstance(source, dict):  # arrays: a file, not the start-up pipe
            self._folder = tempfile.TemporaryDirectory(prefix="fastnet-sweep-")
            path = os.path.join(self._folder.name, "data.pickle")
            with open(path, "wb") as file:
                pickle.dump(source, file, protocol=pickle.HIGHEST_PROTOCOL)
            source = path
        self._args = (os.getpid(), threads, source, dtype, backend)
        try:
            self._pool = self._new_pool()
        except BaseException:
            self._remove_data()
            raise

    def _new_pool(self):
        """A pool whose workers are ready: each one's first task waits for its
        initializer, so that a worker that cannot start stops the sweep at once, with
        why, instead of breaking pool after pool."""
        context = self._context = _SpawnContext()
        pool = cf.ProcessPoolExecutor(self.workers, mp_context=context,
                                      initializer=_init_local_worker, initargs=self._args)
        try:
            for future in [pool.submit(_check_started) for _ in range(self.workers)]:
                future.result()
        except Exception as err:  # noqa: BLE001 (any: the initializer's own error)
            pool.shutdown(wait=True, cancel_futures=True)  # joins the workers: exit codes
            cause = None if isinstance(err, BrokenProcessPool) else err  # its traceback
            raise WorkersDidNotStart(_start_failure(err, context.processes)) from cause
        except BaseException:  # Ctrl-C while they start: they ignore SIGINT, so stop them
            for process in context.processes:
                process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        return pool

    def _remove_data(self):
        if self._folder is not None:
            self._folder.cleanup()

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

    def close(self, abort=False):
        """Shut the pool down: after the chunks in flight when the sweep ended, or, with
        ``abort`` (an interruption), at once, its workers terminated (their chunks
        would only be trained again on resume)."""
        try:
            if abort:  # the pool then finds itself broken, and shuts down at once
                for process in self._context.processes:
                    process.terminate()
            self._pool.shutdown(wait=True, cancel_futures=True)
        finally:
            self._remove_data()


def _dask_run_chunk(source, key, units, threads, dtype, backend):
    """A Dask task: set up this worker for the sweep ``key`` on its first chunk, and the
    thread running it to ``threads`` (Numba's count is per thread, and Dask may run a
    later task on another thread)."""
    from ..threads import get_num_threads, set_num_threads

    if _WORKER.get("key") != key:
        _init_worker(threads, source, dtype, backend)
        _WORKER["key"] = key
    elif get_num_threads() != threads:
        set_num_threads(threads)
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
        try:
            self._client = client or distributed.Client(scheduler)
        except OSError as err:  # a timeout, a refused connection: the scheduler's fault
            raise ConnectionError(f"cannot connect to the Dask scheduler at {scheduler}: "
                                  f"{err}") from err
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

    def close(self, abort=False):  # an interruption: the coordinator cancels its tasks
        if self._own:
            self._client.close()
