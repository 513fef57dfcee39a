"""The kernels' GEMM (``fastnet.kernels.blas.gemm``) against NumPy's matmul."""
import numba
import numpy as np
import pytest

import fastnet
from fastnet.kernels import blas

from cases import DTYPES, assert_close


@numba.njit
def gemm(a, b, out):
    blas.gemm(a, b, out)


@numba.njit
def gemm_update(a, b, alpha, beta, out):
    blas.gemm_update(a, b, alpha, beta, out)


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# (m, k, n) with the edge shapes: a single row, column or inner dimension
SHAPES = [(128, 784, 100), (1, 5, 3), (4, 1, 6), (7, 3, 1), (1, 1, 1)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("transpose_a", [False, True])
@pytest.mark.parametrize("transpose_b", [False, True])
def test_gemm_matches_matmul(shape, transpose_a, transpose_b, dtype, rng):
    m, k, n = shape
    a = rng.standard_normal((k, m) if transpose_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if transpose_b else (k, n)).astype(dtype)
    a, b = (a.T if transpose_a else a), (b.T if transpose_b else b)
    out = np.full((m, n), np.nan, dtype)
    gemm(a, b, out)
    assert_close(out, (a.astype(np.float64) @ b.astype(np.float64)).astype(dtype), dtype, "a @ b")


@pytest.mark.parametrize("dtype", DTYPES)
def test_gemm_ignores_the_stride_of_a_length_1_dimension(dtype):
    a = np.arange(1.0, 4.0, dtype=dtype)[None, :]  # strides (0, itemsize)
    b = np.arange(6.0, dtype=dtype).reshape(3, 2)
    out = np.full((1, 2), np.nan, dtype)
    gemm(a, b, out)
    assert_close(out, a @ b, dtype, "a @ b")
    out_t = np.full((2, 1), np.nan, dtype)
    gemm(b.T, a.T, out_t)
    assert_close(out_t, (a @ b).T, dtype, "b.T @ a.T")


@pytest.mark.filterwarnings("ignore::numba.NumbaPerformanceWarning")  # non-contiguous, as meant
def test_gemm_takes_other_strides_through_np_dot(rng):
    wide = rng.standard_normal((6, 10))
    a, b = wide[:, ::2], wide[:5, 1::2]  # neither row- nor column-contiguous
    out = np.empty((6, 5))
    gemm(a, b, out)
    np.testing.assert_allclose(out, a @ b, rtol=1e-12)


@pytest.mark.filterwarnings("ignore::numba.NumbaPerformanceWarning")  # the strided case
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("strided", [False, True], ids=["cblas", "np.dot"])
def test_gemm_update_scales_and_accumulates(strided, dtype, rng):
    """``out = alpha a @ b + beta out``, the SGD step of the fused net (beta = 1 - lr wd)."""
    wide = rng.standard_normal((6, 10)).astype(dtype)
    a = wide[:, ::2] if strided else np.ascontiguousarray(wide[:, :5])
    b = rng.standard_normal((5, 4)).astype(dtype)
    start = rng.standard_normal((6, 4)).astype(dtype)
    expected = -0.1 * (a.astype(np.float64) @ b) + 0.99 * start
    out = start.copy()
    gemm_update(a, b, dtype.type(-0.1), dtype.type(0.99), out)
    assert_close(out, expected.astype(dtype), dtype, "alpha a @ b + beta out")
    out = np.full((6, 4), np.nan, dtype)  # beta = 0: out is not read
    gemm_update(a, b, dtype.type(2.0), dtype.type(0.0), out)
    assert_close(out, (2.0 * (a.astype(np.float64) @ b)).astype(dtype), dtype, "2 a @ b")


def test_gemm_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes do not match"):
        gemm(np.ones((2, 3)), np.ones((4, 5)), np.empty((2, 5)))
    with pytest.raises(ValueError, match="shapes do not match"):
        gemm(np.ones((2, 3)), np.ones((3, 5)), np.empty((2, 4)))


def test_backend_is_numpys_blas_where_it_exports_cblas(monkeypatch):
    found = blas._numpy_cblas()
    assert blas.BACKEND == ("numpy-cblas" if found else "numba-np.dot")
    monkeypatch.setattr(blas, "_SYMBOLS", {"s": ("no_such_sgemm",), "d": ("no_such_dgemm",)})
    assert blas._numpy_cblas() is None


def test_threading_info_names_the_gemm_backend():
    info = fastnet.threading_info()
    assert info["gemm"] == blas.BACKEND
    assert info["blas"] and all(library["threads"] >= 1 for library in info["blas"])
