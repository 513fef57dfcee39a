"""The one place where fastnet reads NumPy's, Numba's and multiprocessing's private
attributes, and patches one of Numba's (``share_scope_in_inlined_copies``).

Each read is guarded: where an upgrade has moved the attribute, the function raises
``UpstreamChanged`` naming what it looked for, and ``tests/test_upstream.py`` fails
loudly, instead of fastnet silently taking a slower or wrong path.
"""
import copy
import functools
import multiprocessing
import threading
import types

import numba
import numpy as np
from numba.core import inline_closurecall, ir


class UpstreamChanged(RuntimeError):
    """A private attribute of NumPy or Numba that fastnet reads is not where it was."""


def numpy_core_extension_path():
    """The file of NumPy's compiled core extension (``numpy._core._multiarray_umath``),
    which exports NumPy's BLAS symbols (used by ``fastnet.kernels.blas``)."""
    for core in ("_core", "core"):  # NumPy 2, NumPy 1.2x
        module = getattr(np, core, None)
        path = getattr(getattr(module, "_multiarray_umath", None), "__file__", None)
        if path:
            return path
    raise UpstreamChanged(
        f"numpy {np.__version__}: numpy._core._multiarray_umath.__file__ not found")


def numba_cache_dir(dispatcher):
    """The folder where Numba caches ``dispatcher``'s compiled code, or None when the
    dispatcher was built without ``cache=True`` (``Dispatcher._cache._cache_path``)."""
    cache = getattr(dispatcher, "_cache", None)
    if cache is None:
        raise UpstreamChanged(f"numba {numba.__version__}: Dispatcher._cache not found")
    if type(cache).__name__ == "NullCache":
        return None
    path = getattr(cache, "_cache_path", None)
    if not isinstance(path, str):
        raise UpstreamChanged(f"numba {numba.__version__}: FunctionCache._cache_path not found")
    return path


def importing_main_in_spawned_child():
    """Whether this is a spawned process still importing its parent's main module: the
    flag (``current_process()._inheriting``) behind multiprocessing's own
    "bootstrapping phase" error, which ``multiprocessing.spawn`` reads the same way
    (absent outside that phase)."""
    return bool(getattr(multiprocessing.current_process(), "_inheriting", False))


_inlining = threading.local()  # .memos: the memo of each scope, during one inline_ir


def _deepcopy_sharing_scope(x, memo=None):
    memos = getattr(_inlining, "memos", None)
    if memo is None and memos is not None and isinstance(x, ir.Block):
        memo = memos.setdefault(id(x.scope), {})  # the memo keeps x.scope alive: ids unique
    return copy.deepcopy(x, memo)


def share_scope_in_inlined_copies():
    """Make Numba's IR inliner copy a callee in time linear in its size.

    ``inline="always"`` (``fastnet.kernels.jit.inline``) inlines a callee's IR, and
    ``InlineWorker.inline_ir`` first deep-copies it twice, one block at a time, each
    block with a fresh memo.  Every block points to the function's one ``Scope``, which
    holds every variable of the function, so each block's copy copies the whole scope:
    time proportional to blocks x variables (numba/numba#8989).  For a plain net's
    first ``gradient``, ``loss`` and ``accuracy`` on an empty cache this cost a fifth of
    the compilation: 38 s against 31 s with this patch (2-core AVX-512 machine).  Here the blocks that
    share a scope are copied with one memo during each ``inline_ir`` call, so the scope
    is copied once per copy of the callee, and the copied blocks share it as the
    original blocks do (the inliner then renames the callee's variables in that scope;
    with per-block copies it renamed them in the first block's copy only).  The code
    Numba generates is unchanged: every kernel's output is bitwise the same (checked
    over fastnet's kernels, all normalizations, optimizers and both dtypes).

    Idempotent.  Raises ``UpstreamChanged`` where Numba's inliner no longer has the
    ``copy`` module and the ``InlineWorker.inline_ir`` method this patches.
    """
    worker = getattr(inline_closurecall, "InlineWorker", None)
    inline_ir = getattr(worker, "inline_ir", None)
    current = getattr(inline_closurecall, "copy", None)
    if getattr(inline_ir, "shares_scope", False):
        return
    if inline_ir is None or current is not copy:
        raise UpstreamChanged(f"numba {numba.__version__}: numba.core.inline_closurecall no "
                              f"longer has InlineWorker.inline_ir and the copy module")

    @functools.wraps(inline_ir)
    def patched(self, *args, **kwargs):
        outer = getattr(_inlining, "memos", None)
        _inlining.memos = {}
        try:
            return inline_ir(self, *args, **kwargs)
        finally:
            _inlining.memos = outer

    patched.shares_scope = True
    worker.inline_ir = patched
    names = {name: getattr(copy, name) for name in copy.__all__}
    inline_closurecall.copy = types.SimpleNamespace(**dict(names, deepcopy=_deepcopy_sharing_scope))
