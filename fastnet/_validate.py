"""Input checks shared by the wrappers: each runs once per call, before a kernel.

Kernels trust their inputs (shapes, dtypes, contiguity, label range); everything that
could make one read or write out of bounds is rejected here with a message that names
what was expected.
"""
import math
import numbers
import os

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def float_dtype(dtype):
    """``dtype`` as a NumPy dtype, which must be float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from err
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def float_array(x, name, dtype=None, min_ndim=1):
    """``x`` as a C-contiguous float32/float64 array with at least one row.

    With ``dtype`` given, a float32/float64 ``x`` of the other precision is converted
    (ValueError where a finite value does not fit it); integer, boolean, float16 or
    object input is a TypeError either way (scale image bytes to [0, 1] floats first).
    """
    arr = np.asarray(x)
    if arr.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a float32 or float64 array, got dtype {arr.dtype}")
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {arr.shape}")
    if arr.ndim and arr.shape[0] == 0 or arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); a batch needs at least one sample")
    # Not ``np.ascontiguousarray``: it turns a 0-d array into shape (1,).
    if dtype is None or arr.dtype == dtype:  # no conversion: nothing can overflow
        return np.asarray(arr, order="C")
    # (np.errstate costs a microsecond: only where a conversion runs)
    return _converted(arr, dtype, name, "; scale it, or use a float64 net")


def _converted(arr, dtype, name, advice=""):
    """``arr`` as a C-contiguous array of ``dtype``; ValueError naming ``name`` where a
    finite value does not fit it (float64 values past float32's range: not silently
    inf)."""
    try:
        with np.errstate(over="raise"):
            return np.asarray(arr, dtype=dtype, order="C")
    except FloatingPointError:
        raise ValueError(f"{name} has values beyond the range of {np.dtype(dtype)} (largest "
                         f"{np.finfo(dtype).max:.3g}){advice}") from None


def real_values(x, name):
    """``np.asarray(x)``, refused (TypeError) where it is complex: a conversion to float
    would drop the imaginary part with only a warning.  (An object array converts
    element by element, or fails there with NumPy's error.)"""
    arr = np.asarray(x)
    if arr.dtype.kind == "c":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


# Below these magnitudes a Python float rounds to a finite value of the dtype: float32's
# largest value plus half its last step, 2**128 - 2**103, already rounds (to even) to inf.
_FITS_BELOW = {np.dtype(np.float32): 2.0 ** 128 - 2.0 ** 103, np.dtype(np.float64): math.inf}


def fit_in(values, dtype, what):
    """``values`` (numbers) as an array of ``dtype``; ValueError naming ``what`` where
    one does not fit (a learning rate of 1e308 is inf in float32)."""
    limit = _FITS_BELOW.get(np.dtype(dtype), 0.0)  # 0: any other dtype, the long way
    if all(type(value) is float and -limit < value < limit for value in values):
        return np.array(values, dtype)  # the optimizers' per-step case, in a microsecond
    with np.errstate(over="ignore"):
        arr = np.array(values, dtype)
    if not np.isfinite(arr).all():
        values = list(values)
        said = f"={values[0]!r} does not" if len(values) == 1 else f" {values} do not"
        raise ValueError(f"{what}{said} fit {np.dtype(dtype).name} (a value overflows to "
                         f"inf)")
    return arr


def real_array(values, like, name):
    """``values`` as an array of ``like``'s shape and dtype (a float dtype): TypeError
    where they are not real numbers (complex, strings, objects), ValueError for another
    shape or a value past the dtype's range (1e300 is inf in float32)."""
    arr = real_values(values, name)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    same_shape(arr, like.shape, name)
    return _converted(arr, like.dtype, name)


def same_shape(arr, shape, name):
    if arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    return arr


def labels(t, n, n_classes):
    """Class indices (N,) int64 from labels (N,) or one-hot targets (N, C)."""
    t = np.asarray(t)
    if t.ndim == 2 and t.shape == (n, n_classes):
        if not np.all((t == 0) | (t == 1)) or not np.all(t.sum(axis=1) == 1):
            raise ValueError("one-hot targets t must hold a single 1 per row and 0 elsewhere")
        return np.ascontiguousarray(t.argmax(axis=1), dtype=np.int64)
    if t.ndim != 1 or t.shape[0] != n:
        raise ValueError(f"t must be class indices of shape ({n},) or one-hot of shape "
                         f"({n}, {n_classes}), got shape {t.shape}")
    if t.dtype.kind not in "iu":
        raise TypeError(f"class indices t must be integers, got dtype {t.dtype}")
    if t.size and (t.min() < 0 or t.max() >= n_classes):
        raise ValueError(f"class indices t must lie in [0, {n_classes}), "
                         f"got values from {t.min()} to {t.max()}")
    return np.ascontiguousarray(t, dtype=np.int64)


def positive_int(value, name, none=True):
    """``value`` as an int, which must be a whole number >= 1 (an integral float such as
    100.0 too; not a bool), or None where ``none``."""
    if value is None and none:
        return None
    whole = isinstance(value, numbers.Integral) or (
        isinstance(value, numbers.Real) and np.isfinite(value) and float(value).is_integer())
    if isinstance(value, bool) or not whole or value < 1:
        raise ValueError(f"{name} must be a positive integer{' or None' if none else ''}, "
                         f"got {value!r}")
    return int(value)


def is_real_number(value):
    """A real number: a Python or NumPy int or float (not a bool), or a 0-d array of one
    (what ``np.where`` or a reduction gives)."""
    if type(value) is float or type(value) is int:  # the common case, without ABCs
        return True
    if isinstance(value, np.ndarray):
        return value.ndim == 0 and value.dtype.kind in "iuf"
    return isinstance(value, numbers.Real) and not isinstance(value, bool | np.bool_)


def _finite(value):
    """``math.isfinite``, False for an int too large for a float (10**400)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def real_scalar(value, name, low=None, high=None, low_open=False, high_open=True):
    """A finite float within [low, high) (bounds optional; openness configurable).

    TypeError for a value that is not a real number (``is_real_number``), ValueError for
    one that is not finite or out of range."""
    if not is_real_number(value):
        raise TypeError(f"{name} must be a finite real number, got {value!r}")
    if not _finite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and (value > high or (high_open and value == high)):
        raise ValueError(f"{name} must be {'<' if high_open else '<='} {high}, got {value}")
    return value


# The layers' hyperparameters, checked wherever they are read (the layers' forward, the
# nets' and populations' fused steps): they are attributes a user may set at any time.
def momentum(value):
    """A running statistics' momentum: a finite real in [0, 1]."""
    return real_scalar(value, "momentum", 0, 1, high_open=False)


def dropout_ratio(value):
    """A dropout ratio: a finite real in [0, 1]."""
    return real_scalar(value, "dropout_ratio", 0, 1, high_open=False)


def eps(value, name="eps"):
    """A normalization's epsilon: a finite real > 0."""
    return real_scalar(value, name, 0, low_open=True)


def batch_statistics(name, values, shape):
    """Batch statistics need two values per feature: ``values`` of them, in an input of
    ``shape`` to the layer (or net) ``name``."""
    if values < 2:
        raise ValueError(f"{name} in training needs at least 2 values per feature over the "
                         f"batch (batch statistics of one value normalize it to 0), got x of "
                         f"shape {shape}")


def physical_memory():
    """This machine's physical memory in bytes, or None where the system does not say."""
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not POSIX, or the name unknown
        return None
    return pages * size if pages > 0 and size > 0 else None  # -1: indeterminate


def fits_in_memory(nbytes, what):
    """``MemoryError`` naming ``what`` where ``nbytes`` exceed this machine's physical
    memory.  Linux grants such an allocation (it overcommits) and then kills the process
    that writes it with SIGKILL, which says nothing: a typo in a size (``--hidden
    3000000``) must be a message instead."""
    total = physical_memory()
    if total is not None and nbytes > total:
        raise MemoryError(f"{what} needs {nbytes / 2**30:,.1f} GiB, more than this "
                          f"machine's {total / 2**30:,.1f} GiB of memory")
