"""The kernels' GEMM: ``gemm(a, b, out)`` is ``out = a @ b`` through NumPy's own BLAS,
``gemm_update(a, b, alpha, beta, out)`` is ``out = alpha a @ b + beta out``.

Numba's ``np.dot`` calls SciPy's BLAS (``scipy.linalg.cython_blas``).  NumPy's wheels
bring an OpenBLAS of their own, often newer than SciPy's (here 0.3.31 against 0.3.30).
Calling it from compiled code measured 4-7% faster on the GEMMs of this project's
benchmark nets (paired runs, 2 cores).  It also leaves one BLAS thread pool working in
a process that mixes fastnet and NumPy; two pools were measured to double GEMM times.

At import, the 64-bit-integer CBLAS ``sgemm``/``dgemm`` are looked up in NumPy's BLAS
(``scipy_cblas_sgemm64_`` in NumPy 2 wheels, ``cblas_sgemm64_`` in NumPy 1.2x's).  LLVM
gets them under fixed names, so cached kernels link to them by name in every process.
Where they cannot be found through NumPy's extension module (Accelerate, MKL, a
32-bit-integer build; on Windows a module's dependencies are not searched), or where
``NUMBA_DISABLE_JIT=1`` runs the kernels as Python, ``gemm`` is Numba's ``np.dot``.  ``BACKEND`` says which; the JIT stamp includes it.
"""
import ctypes

import llvmlite.binding
import numba
import numpy as np
from numba import types

from .. import _upstream
from .jit import inline

ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112
_SYMBOLS = {"s": ("scipy_cblas_sgemm64_", "cblas_sgemm64_"),
            "d": ("scipy_cblas_dgemm64_", "cblas_dgemm64_")}


def _numpy_cblas():
    """Addresses of NumPy's ILP64 ``cblas_?gemm`` by prefix, or None."""
    try:
        library = ctypes.CDLL(_upstream.numpy_core_extension_path())
    except (_upstream.UpstreamChanged, OSError):
        return None
    found = {}
    for prefix, names in _SYMBOLS.items():
        for name in names:
            if hasattr(library, name):
                found[prefix] = ctypes.cast(getattr(library, name), ctypes.c_void_p).value
                break
    return found if len(found) == len(_SYMBOLS) else None


def _external(name, real):
    args = [types.int32] * 3 + [types.int64] * 3 + [real, types.voidptr, types.int64,
                                                    types.voidptr, types.int64, real,
                                                    types.voidptr, types.int64]
    return types.ExternalFunction(name, types.void(*args))


# With NUMBA_DISABLE_JIT=1 the kernels run as Python, where an ExternalFunction cannot
# be called: np.dot then.
_ADDRESSES = None if numba.config.DISABLE_JIT else _numpy_cblas()
BACKEND = "numpy-cblas" if _ADDRESSES else "numba-np.dot"

if _ADDRESSES:
    for prefix, address in _ADDRESSES.items():
        llvmlite.binding.add_symbol(f"fastnet_cblas_{prefix}gemm64", address)
    _sgemm = _external("fastnet_cblas_sgemm64", types.float32)
    _dgemm = _external("fastnet_cblas_dgemm64", types.float64)

    @inline
    def _operand(a):
        """(CBLAS transpose flag, leading dimension) of a row-major matrix or of the
        transpose of one; flag 0 for any other strides.  The stride of a dimension of
        length 1 is arbitrary in NumPy (``ones(3)[None]`` has strides ``(0, 8)``), and
        CBLAS refuses, without writing anything, a leading dimension below the row
        length: hence the ``max``."""
        item = a.itemsize
        if a.strides[1] == item or a.shape[1] == 1:
            return NO_TRANS, max(a.strides[0] // item, a.shape[1], 1)
        if a.strides[0] == item or a.shape[0] == 1:
            return TRANS, max(a.strides[1] // item, a.shape[0], 1)
        return 0, 0

    @inline
    def gemm_update(a, b, alpha, beta, out):
        """``out = alpha a @ b + beta out`` (``out`` is not read when ``beta == 0``): 2-D
        arrays of one float dtype; ``a`` and ``b`` C-contiguous or transposes of
        C-contiguous arrays, ``out`` C-contiguous (otherwise through ``np.dot``)."""
        m, k = a.shape
        n = b.shape[1]
        if b.shape[0] != k or out.shape[0] != m or out.shape[1] != n:
            raise ValueError("gemm: shapes do not match")
        trans_a, lda = _operand(a)
        trans_b, ldb = _operand(b)
        trans_out, ldc = _operand(out)
        if trans_a == 0 or trans_b == 0 or trans_out != NO_TRANS:
            dot_update(a, b, alpha, beta, out)
        elif out.itemsize == 4:
            _sgemm(ROW_MAJOR, trans_a, trans_b, m, n, k, alpha, a.ctypes, lda, b.ctypes, ldb,
                   beta, out.ctypes, ldc)
        else:
            _dgemm(ROW_MAJOR, trans_a, trans_b, m, n, k, alpha, a.ctypes, lda, b.ctypes, ldb,
                   beta, out.ctypes, ldc)
else:
    @inline
    def gemm_update(a, b, alpha, beta, out):
        """``out = alpha a @ b + beta out`` through Numba's ``np.dot`` (SciPy's BLAS)."""
        dot_update(a, b, alpha, beta, out)


@inline
def dot_update(a, b, alpha, beta, out):
    """``gemm_update`` through Numba's ``np.dot``: into ``out`` directly for the plain
    product, else through a temporary.  (Loops, not ``out[:, :] = ...``: Numba compiles a
    slice assignment's shape-mismatch message, seconds of compile time per kernel.)"""
    if alpha == 1 and beta == 0:
        np.dot(a, b, out)
        return
    product = np.dot(a, b)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            value = alpha * product[i, j]
            if beta != 0:
                value += beta * out[i, j]
            out[i, j] = value


@inline
def gemm(a, b, out):
    """``out = a @ b``."""
    gemm_update(a, b, 1.0, 0.0, out)
