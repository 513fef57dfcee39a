"""NumPy's and Numba's private attributes that fastnet reads (``fastnet/_upstream.py``),
and the Numba hooks the JIT cache relies on: an upgrade that moves one fails here,
by name, rather than making fastnet slower or its cache unsafe in silence."""
import os

import numba
import numpy as np
from numba.core import event
from numba.core.dispatcher import Dispatcher

from fastnet import _upstream
from fastnet.kernels import blas, jit, softmax


def test_numpy_core_extension_exports_numpy_blas():
    path = _upstream.numpy_core_extension_path()
    assert os.path.isfile(path)
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
        assert blas.BACKEND == "numpy-cblas", "NumPy 2 wheels export scipy_cblas_?gemm64_"


def test_numba_cache_dir_of_a_cached_and_an_uncached_kernel():
    assert os.path.isdir(_upstream.numba_cache_dir(softmax.softmax))
    assert _upstream.numba_cache_dir(numba.njit(lambda x: x)) is None


def test_numba_compiles_through_the_dispatchers_compile_method():
    """The cache's lock wraps ``Dispatcher.compile``: Numba must call it (as an
    attribute of the instance) both for a call from Python and for a callee, and
    announce a real compilation (not a cache load) with the ``numba:compile`` event."""
    seen, events = [], []

    class Record(event.Listener):
        def on_start(self, ev):
            events.append(ev.data["dispatcher"])

        def on_end(self, ev):
            pass

    def spy(dispatcher):
        compile_ = dispatcher.compile

        def compile(sig):
            seen.append(dispatcher)
            return compile_(sig)
        dispatcher.compile = compile
        return dispatcher

    callee = spy(numba.njit(lambda x: x + 1))
    caller = spy(numba.njit(lambda x: callee(x) * 2))
    with event.install_listener("numba:compile", Record()):
        assert caller(1.0) == 4.0
    assert seen[:2] == [caller, callee]
    assert events == [caller, callee]
    assert isinstance(softmax.softmax, Dispatcher) and softmax.softmax in jit.KERNELS


def test_multiprocessing_spawn_still_reads_the_inheriting_flag():
    """``_upstream.importing_main_in_spawned_child`` reads the flag that
    ``multiprocessing.spawn``'s own check of an unguarded main module reads."""
    import inspect
    import multiprocessing.spawn

    from fastnet import _upstream
    assert "_inheriting" in inspect.getsource(multiprocessing.spawn._check_not_importing_main)
    assert _upstream.importing_main_in_spawned_child() is False


def _compile_with_an_inlined_callee_of_many_blocks():
    """A fresh njit caller of a fresh ``inline="always"`` callee whose IR has a dozen
    blocks, compiled and run once; returns its result."""
    @numba.njit(inline="always")
    def callee(v):
        for _ in range(3):
            if v > 1.0:
                v = v - 1.0
            if v < -1.0:
                v = v + 1.0
            if v > 0.5:
                v = v * 0.5
            if v < -0.5:
                v = v * 0.5
        return v

    @numba.njit
    def caller(v):
        return callee(v) + callee(-v)

    return caller(7.0)


def test_numbas_inliner_copies_a_callees_scope_once_per_copy(monkeypatch):
    """``_upstream.share_scope_in_inlined_copies`` (installed by ``fastnet.kernels.jit``):
    the inliner copies the callee's scope once for each of its two copies of the IR, not
    once per block, and the inlined code computes the same."""
    import copy

    from numba.core import inline_closurecall, ir

    copies = []

    def counting_deepcopy(self, memo):
        copies.append(self)
        new = object.__new__(ir.Scope)
        memo[id(self)] = new
        for name, value in self.__dict__.items():
            setattr(new, name, copy.deepcopy(value, memo))
        return new

    monkeypatch.setattr(ir.Scope, "__deepcopy__", counting_deepcopy, raising=False)
    patched = inline_closurecall.InlineWorker.inline_ir
    assert patched.shares_scope
    _upstream.share_scope_in_inlined_copies()  # idempotent
    assert inline_closurecall.InlineWorker.inline_ir is patched
    assert _compile_with_an_inlined_callee_of_many_blocks() == 0.0
    # two inlined calls, two copies of the callee each, each copy its scope and the
    # scope's (empty) parent
    assert len(copies) == 2 * 2 * 2
    copies.clear()
    monkeypatch.setattr(inline_closurecall.InlineWorker, "inline_ir", patched.__wrapped__)
    assert _compile_with_an_inlined_callee_of_many_blocks() == 0.0
    assert len(copies) >= 10 * 2 * 2 * 2  # Numba's own: once per block (a dozen here)
