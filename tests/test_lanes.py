"""``kernels.lanes.lane_sums`` and the row sums built on it (``normalization.moments``,
``normalization.run_sums``): bitwise the order they document, against plain Python
float64 arithmetic in that order, on contiguous and strided rows of both dtypes."""
import os
import subprocess
import sys

import numba
import numpy as np
import pytest

from fastnet import config, layers
from fastnet.kernels import lanes, normalization
from fastnet.kernels.lanes import LANES, lane_sums

LENGTHS = [0, 1, 7, 8, 9, 16, 100, 1024, 1031]


@numba.njit(fastmath=set(config.FASTMATH))  # as the kernels: their flags reach its adds
def compiled_lane_sums(a, a_shift, b, b_shift, body):  # an intrinsic runs compiled only
    return lane_sums(a, a_shift, b, b_shift, body)


def test_no_fastmath_flag_may_reorder_or_fuse_a_sum():
    assert not config.FASTMATH & {"reassoc", "arcp", "contract", "fast"}


def in_documented_order(a, a_shift, b, b_shift):
    """``(sum(a - a_shift), sum((a - a_shift)(b - b_shift)))`` in float64: element m of
    the first ``len - len % LANES`` into partial m % LANES, in order; the partials
    combined pairwise; then the remaining elements in order.  Python floats: one IEEE
    add or multiply per operator."""
    ta = [float(v) - a_shift for v in a.astype(np.float64)]
    tb = [float(v) - b_shift for v in b.astype(np.float64)]
    body = len(ta) - len(ta) % LANES
    sums, products = [0.0] * LANES, [0.0] * LANES
    for m in range(body):
        sums[m % LANES] += ta[m]
        products[m % LANES] += ta[m] * tb[m]

    def pairwise(terms):
        while len(terms) > 1:
            terms = [terms[k] + terms[k + 1] for k in range(0, len(terms), 2)]
        return terms[0]

    total, product = pairwise(sums), pairwise(products)
    for m in range(body, len(ta)):
        total += ta[m]
        product += ta[m] * tb[m]
    return total, product


def rows(n, dtype, layout, seed):
    """Two rows of ``n`` values spanning several magnitudes: contiguous, every other
    element of a wider array, or reversed (a negative stride)."""
    rng = np.random.default_rng(seed)
    wide = (rng.standard_normal((2, 2 * n)) * 10.0 ** rng.integers(-3, 4, (2, 2 * n)))
    wide = wide.astype(dtype)
    if layout == "strided":
        return wide[0, ::2], wide[1, ::2]
    if layout == "reversed":
        return wide[0, n - 1::-1] if n else wide[0, :0], wide[1, :n][::-1]
    return wide[0, :n], wide[1, :n]


@pytest.mark.parametrize("layout", ["contiguous", "strided", "reversed"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", LENGTHS)
def test_row_sums_follow_the_documented_order_bitwise(n, dtype, layout):
    a, b = rows(n, dtype, layout, seed=n)
    assert len(a) == len(b) == n
    shift = float(a[0]) if n else 0.0
    expected = in_documented_order(a, shift, a, shift)
    assert normalization.moments(a, shift) == expected
    assert normalization.run_sums(a, b) == in_documented_order(a, 0.0, b, 0.0)
    body = n - n % LANES
    assert compiled_lane_sums(a, shift, b, 0.5, body) == in_documented_order(a[:body], shift,
                                                                    b[:body], 0.5)
    # the Python form that NUMBA_DISABLE_JIT=1 runs
    assert lanes._lane_sums_python(a, shift, b, 0.5, body) == in_documented_order(
        a[:body], shift, b[:body], 0.5)


def test_row_sums_carry_nan_and_inf_through():
    a = np.arange(20, dtype=np.float32)
    a[3] = np.inf
    total, squares = normalization.moments(a, 0.0)
    assert total == np.inf and squares == np.inf
    a[11] = np.nan
    assert all(np.isnan(normalization.moments(a, 0.0)))
    a[3], a[11] = 1.0, 1.0
    a[18] = -np.inf  # in the tail: added after the partial sums
    assert normalization.run_sums(a, np.ones(20, np.float32)) == (-np.inf, -np.inf)


def test_lane_sums_refuses_what_it_cannot_sum():
    with pytest.raises(numba.TypingError):
        compiled_lane_sums(np.zeros((2, 8)), 0.0, np.zeros((2, 8)), 0.0, 0)  # not rows
    with pytest.raises(numba.TypingError):
        compiled_lane_sums(np.zeros(8, np.int64), 0.0, np.zeros(8), 0.0, 0)  # not floats


def test_lane_sums_reads_unaligned_rows():
    raw = np.frombuffer(np.arange(9, dtype=np.float64).tobytes() + bytes(1), np.uint8)
    unaligned = raw[1:65].view(np.float64)  # 8 float64 starting one byte in
    assert not unaligned.flags.aligned
    expected = in_documented_order(unaligned, 0.0, unaligned, 0.0)
    assert compiled_lane_sums(unaligned, 0.0, unaligned, 0.0, 8) == expected


NORM_LAYERS = {
    "group": lambda: layers.GroupNormalization(np.linspace(0.5, 2, 6), np.linspace(-1, 1, 6),
                                               groups=3),
    "layer": lambda: layers.LayerNormalization(np.linspace(0.5, 2, 6), np.linspace(-1, 1, 6)),
    "instance": lambda: layers.InstanceNormalization(np.linspace(0.5, 2, 6),
                                                     np.linspace(-1, 1, 6)),
}


def norm_outputs(x, dout):
    """Each of group, layer and instance norm's forward and backward on ``x``."""
    out = {}
    for name, make in NORM_LAYERS.items():
        layer = make()
        out[name] = layer.forward(x, train_flg=True)
        out[name + "-dx"] = layer.backward(dout)
    return out


def test_the_norms_that_use_lane_sums_run_with_the_jit_disabled(tmp_path):
    """With ``NUMBA_DISABLE_JIT=1`` the kernels run as Python, where ``lane_sums`` (an
    intrinsic) cannot: its Python form computes the same as the compiled one."""
    rng = np.random.default_rng(5)
    x, dout = rng.standard_normal((2, 4, 6, 3, 3))
    np.savez(tmp_path / "in.npz", x=x, dout=dout)
    script = ("import numpy as np, sys; sys.path.insert(0, sys.argv[1]); "
              "import test_lanes as t; from fastnet.kernels import lanes; "
              "assert lanes.lane_sums is lanes._lane_sums_python; "
              "a = np.load(sys.argv[2]); np.savez(sys.argv[3], **t.norm_outputs(a['x'], a['dout']))")
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    subprocess.run([sys.executable, "-c", script, os.path.dirname(__file__),
                    tmp_path / "in.npz", tmp_path / "out.npz"], env=env, check=True, timeout=120)
    uncompiled = np.load(tmp_path / "out.npz")
    compiled = norm_outputs(x, dout)
    assert sorted(uncompiled) == sorted(compiled)
    for name, value in compiled.items():
        np.testing.assert_allclose(uncompiled[name], value, rtol=1e-12, atol=1e-12, err_msg=name)
