"""The one place where fastnet reads NumPy's, Numba's and multiprocessing's private
attributes.

Each read is guarded: where an upgrade has moved the attribute, the function raises
``UpstreamChanged`` naming what it looked for, and ``tests/test_upstream.py`` fails
loudly, instead of fastnet silently taking a slower or wrong path.
"""
import multiprocessing

import numba
import numpy as np


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
