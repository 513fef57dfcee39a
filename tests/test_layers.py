"""fastnet.layers and the layer kernels against the NumPy reference, driven by
``cases.LAYER_CASES`` (see cases.py for what a case and a trace are)."""
import math

import numpy as np
import pytest
from cases import (
    DTYPES,
    LAYER_CASES,
    LAYERS,
    PARAM_GRADS,
    assert_bitwise_equal,
    assert_traces_close,
    forward,
    kernel_trace,
    layer_trace,
    make_inputs,
    reference_trace,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from fastnet import config
from fastnet import layers as fast_layers
from fastnet.kernels import activations, dropout, normalization
from fastnet.kernels.jit import pick
from fastnet.reference import layers as reference_layers
from fastnet.reference.functions import numerical_gradient
from fastnet.reference.random import counter_uniform, stream_key


def SERIAL(kernel):
    return kernel


def PARALLEL(kernel):
    return kernel.parallel_version
PARALLEL_LAYERS = [pytest.param(c, id=c.id) for c in LAYER_CASES if c.parallel]


def check_against_reference(case, inputs, dtype):
    if inputs.xs[0].shape[0] < case.min_batch:
        layer = case.make(fast_layers, inputs.kwargs)
        with pytest.raises(ValueError, match="in training needs at least 2 values per feature"):
            forward(layer, case, inputs.xs[0], inputs.targets[0], True)
        return
    if inputs.xs[0][0].size < case.min_group:
        layer = case.make(fast_layers, inputs.kwargs)
        with pytest.raises(ValueError, match="normalizes groups of one value each"):
            forward(layer, case, inputs.xs[0], inputs.targets[0], True)
        return
    desired = reference_trace(case, reference_layers, inputs)
    actual = layer_trace(case, fast_layers, inputs)
    assert set(actual) == set(desired)
    if case.exact:
        for name in desired:
            assert_array_equal(actual[name], desired[name], err_msg=name)
            assert actual[name].dtype == desired[name].dtype, name
    else:
        assert_traces_close(actual, desired, dtype)


# ------------------------------------------------------------------ class vs reference

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LAYERS)
def test_layer_matches_reference(case, dtype):
    check_against_reference(case, make_inputs(case, dtype), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LAYERS)
def test_batch_of_one(case, dtype):
    check_against_reference(case, make_inputs(case, dtype, n=1, d=5, seed=3), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LAYERS)
@settings(max_examples=8, deadline=None, derandomize=True)
@given(n=st.integers(1, 64), d=st.integers(1, 40), seed=st.integers(0, 2**32 - 1))
def test_any_shape(case, dtype, n, d, seed):
    check_against_reference(case, make_inputs(case, dtype, n=n, d=d, seed=seed), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", PARALLEL_LAYERS)
def test_parallel_sized_input_matches_reference(case, dtype):
    """Inputs of at least ``PARALLEL_MIN_SIZE`` elements take the parallel builds."""
    features = math.prod(case.input_shape(1, 64)[1:])
    n = -(-config.PARALLEL_MIN_SIZE // features)
    assert n * features >= config.PARALLEL_MIN_SIZE
    check_against_reference(case, make_inputs(case, dtype, n=n, d=64, seed=5), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_batchnorm_backward_takes_a_flattened_dout_as_the_books_layer_does(dtype):
    """The book's layer reshapes a 4-D dout to (N, C*H*W) and takes a 2-D one as it is."""
    rng = np.random.default_rng(0)
    x, dout = rng.standard_normal((2, 4, 3, 2, 2)).astype(dtype)
    layer = fast_layers.BatchNormalization(np.ones(12, dtype), np.zeros(12, dtype))
    layer.forward(x)
    dx = layer.backward(dout)
    assert_array_equal(layer.backward(dout.reshape(4, 12)), dx)
    assert dx.shape == x.shape


@pytest.mark.parametrize("shape, logits_set_later", [((4, 3, 2, 2), None),
                                                      ((4, 3), np.zeros(3))],
                         ids=["4d-then-none", "2d-then-three"])
def test_switchable_backward_differentiates_the_forwards_mixing_weights(shape,
                                                                        logits_set_later):
    """The mixing-weight gradients have the forward's statistics count (3 for 4-D input,
    2 for 2-D), whatever ``mean_weight`` was set to after it (sized from it before)."""
    rng = np.random.default_rng(1)
    x, dout = rng.standard_normal((2, *shape))
    grads = []
    for reset in (False, True):
        layer = fast_layers.SwitchableNormalization(np.ones(3), np.zeros(3))
        layer.forward(x)
        if reset:
            layer.mean_weight = layer.var_weight = logits_set_later
        dx = layer.backward(dout)
        grads.append((dx, layer.dmean_weight, layer.dvar_weight))
    for before, after in zip(*grads):
        assert_array_equal(after, before)
    assert grads[0][1].shape == (3 if len(shape) > 2 else 2,)


@pytest.mark.parametrize("kernel, minimum", [
    (activations.relu_forward, "PARALLEL_MIN_SIZE"),
    (normalization.group_norm_forward, "GROUP_NORM_PARALLEL_MIN_SIZE"),
    (normalization.group_norm_backward, "GROUP_NORM_PARALLEL_MIN_SIZE")])
def test_pick_chooses_the_build_by_size(kernel, minimum, monkeypatch):
    size = getattr(config, minimum)
    assert pick(kernel, size) is kernel.parallel_version
    assert pick(kernel, size - 1) is kernel
    monkeypatch.setattr(config, minimum, size + 1)  # read at each call
    assert pick(kernel, size) is kernel


# ------------------------------------------------------------------ kernels

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LAYERS)
def test_kernels_match_reference(case, dtype):
    inputs = make_inputs(case, dtype)
    desired = reference_trace(case, reference_layers, inputs)
    assert_traces_close(kernel_trace(case, SERIAL, inputs), desired, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", PARALLEL_LAYERS)
def test_serial_and_parallel_builds_agree_bitwise(case, dtype):
    # 300 rows: more than one batch-norm reduction chunk (config.REDUCE_CHUNK = 256).
    inputs = make_inputs(case, dtype, n=config.REDUCE_CHUNK + 44, d=37, seed=11)
    serial = case.kernels(SERIAL, inputs, case)
    parallel = case.kernels(PARALLEL, inputs, case)
    assert set(serial) == set(parallel)
    for name in serial:
        assert_bitwise_equal(parallel[name], serial[name], name)


# ------------------------------------------------------------------ memory layout

def fortran(a):
    return np.asfortranarray(a)


def transposed(a):
    """The same values through a transposed view of a C array (reversed strides)."""
    return np.ascontiguousarray(a.T).T


def strided(a):
    """The same values, every other element of a twice-as-wide array."""
    if a.ndim == 0:
        return a
    wide = np.full(a.shape[:-1] + (2 * a.shape[-1],), 7, a.dtype)
    wide[..., ::2] = a
    return wide[..., ::2]


def reversed_view(a):
    """The same values with negative strides."""
    return np.flip(np.flip(a).copy())


LAYOUTS = [fortran, transposed, strided, reversed_view]


def relayout(inputs, layout):
    def convert(v):
        return layout(v) if isinstance(v, np.ndarray) and v.ndim else v

    return type(inputs)([convert(x) for x in inputs.xs], [convert(d) for d in inputs.douts],
                        [convert(t) for t in inputs.targets],
                        {k: convert(v) for k, v in inputs.kwargs.items()})


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LAYERS)
def test_non_contiguous_inputs_give_the_right_answer(case, dtype, layout):
    inputs = make_inputs(case, dtype, n=6, d=4, seed=7)
    other = relayout(inputs, layout)
    assert not other.xs[0].flags.c_contiguous
    desired = reference_trace(case, reference_layers, inputs)
    assert_traces_close(layer_trace(case, fast_layers, other), desired, dtype)


# ------------------------------------------------------------------ no aliasing

def arrays_in(inputs):
    found = list(inputs.xs) + list(inputs.douts) + list(inputs.targets)
    # The running statistics are the layer's own state, updated in place by design
    # (the nets bind them to views of their running-statistics arena).
    found += [v for k, v in inputs.kwargs.items() if k not in ("running_mean", "running_var")]
    return [a for a in found if isinstance(a, np.ndarray)]


@pytest.mark.parametrize("case", LAYERS)
def test_outputs_never_alias_or_modify_caller_arrays(case):
    inputs = make_inputs(case, np.float64, seed=2)
    held = arrays_in(inputs)
    before = [a.copy() for a in held]
    layer = getattr(fast_layers, case.layer)(**inputs.kwargs)  # the caller's own arrays
    outputs = []
    for k, flag in enumerate(case.passes):
        outputs.append(forward(layer, case, inputs.xs[k], inputs.targets[k], flag))
        if flag is not False:
            outputs.append(layer.backward(inputs.douts[k]))
    for a, b in zip(held, before):
        assert_array_equal(a, b)
    for out in outputs:
        if isinstance(out, np.ndarray):
            assert not any(np.shares_memory(out, a) for a in held)


@pytest.mark.parametrize("dtype", DTYPES)
def test_relu_backward_leaves_dout_alone(dtype):
    layer = fast_layers.Relu()
    x = np.array([[-1.0, 2.0, 0.0], [3.0, -4.0, 5.0]], dtype)
    dout = np.array([[10.0, 20.0, 30.0], [40.0, 50.0, 60.0]], dtype)
    kept = dout.copy()
    layer.forward(x)
    dx = layer.backward(dout)
    assert_array_equal(dout, kept)
    assert_array_equal(dx, [[0, 20, 0], [40, 0, 60]])
    assert dx.dtype == dtype and not np.shares_memory(dx, dout)


def test_affine_sees_in_place_updates_of_its_parameters():
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
    x = rng.standard_normal((2, 4))
    layer = fast_layers.Affine(W, b)
    assert layer.W is W and layer.b is b
    layer.forward(x)
    W *= 2.0
    b += 1.0
    assert_allclose(layer.forward(x), x @ W + b, rtol=1e-12)


def test_weight_normalization_writes_its_own_weight_array_again():
    """Each forward computes W = g v / ||v|| into the array of the pass before (no new
    4 MB array a pass for a 1024 x 1024 layer), backward differentiates at that W, and an
    array the caller assigned to W is left alone."""
    rng = np.random.default_rng(0)
    v, g, b = rng.standard_normal((4, 3)), rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    x, dout = rng.standard_normal((2, 4)), rng.standard_normal((2, 3))
    layer = fast_layers.WeightNormalization(v, g, b)
    layer.forward(x)
    first = layer.W
    v *= rng.uniform(0.5, 2, v.shape)  # a step of the optimizer, in place
    expected = g * v / np.linalg.norm(v, axis=0)
    assert_allclose(layer.forward(x), x @ expected + b, rtol=1e-12)
    assert layer.W is first
    assert_allclose(layer.W, expected, rtol=1e-12)
    assert_allclose(layer.backward(dout), dout @ expected.T, rtol=1e-12)
    mine = np.zeros((4, 3))
    layer.W = mine
    layer.forward(x)
    assert layer.W is not mine and not mine.any()
    assert_allclose(layer.W, expected, rtol=1e-12)


def test_weight_normalization_never_writes_a_v_that_is_its_weight_array():
    rng = np.random.default_rng(1)
    layer = fast_layers.WeightNormalization(rng.standard_normal((4, 3)), np.ones(3), np.zeros(3))
    x = rng.standard_normal((2, 4))
    layer.forward(x)
    layer.v, layer.g = layer.W, np.full(3, 5.0)  # v is now the last pass's weight array
    v = layer.v.copy()
    expected = 5.0 * v / np.linalg.norm(v, axis=0)
    assert_allclose(layer.forward(x), x @ expected, rtol=1e-12)
    assert_array_equal(layer.v, v)
    assert not np.shares_memory(layer.W, layer.v)


def test_weight_normalization_backward_after_a_refused_input_raises():
    rng = np.random.default_rng(2)
    layer = fast_layers.WeightNormalization(rng.standard_normal((4, 3)), np.ones(3), np.zeros(3))
    layer.forward(rng.standard_normal((2, 4)))
    with pytest.raises(ValueError, match="x has 5 features per sample"):
        layer.forward(np.ones((2, 5)))
    with pytest.raises(RuntimeError, match="after a forward that raised"):
        layer.backward(np.ones((2, 3)))
    layer.forward(rng.standard_normal((2, 4)))
    layer.backward(np.ones((2, 3)))
    dW, db, dv = layer.dW, layer.db, layer.dv
    layer.v = np.ones((4, 2))
    with pytest.raises(ValueError, match="v changed since forward"):
        layer.backward(np.ones((2, 3)))
    assert layer.dW is dW and layer.db is db and layer.dv is dv  # nothing set


def test_dropout_mask_is_the_counter_stream_at_any_step():
    fast, ref = fast_layers.Dropout(0.35, seed=99), reference_layers.Dropout(0.35, seed=99)
    fast.step = ref.step = 17
    x = np.ones((13, 11), np.float32)
    assert_array_equal(fast.forward(x), ref.forward(x))
    assert_array_equal(fast.mask, counter_uniform(99, 17, x.size).reshape(x.shape) >= 0.35)
    assert fast.step == ref.step == 18
    assert 0.5 < fast.mask.mean() < 0.8


# ------------------------------------------------------------------ dropout's edge rates

BUILDS = [pytest.param(SERIAL, id="serial"), pytest.param(PARALLEL, id="parallel")]
# Stream (3, 0) has a draw below 2**-24 at 2600227, and 4 such draws in its first 2**25:
# the 24-bit uniforms this generator had before made them exactly 0, and ratio 0
# dropped them.
TINY_DRAW_SEED, TINY_DRAW_AT = 3, 2600227


def kernel_dropout(build, x, ratio, seed=TINY_DRAW_SEED, step=0):
    """``(mask, out)`` of the dropout kernel's ``build`` over the flat array ``x``."""
    out, mask = np.empty_like(x), np.empty(x.shape, bool)
    build(dropout.dropout_forward)(x, stream_key(seed, step), ratio, x.dtype.type(1), mask,
                                   out)
    return mask, out


def test_the_edge_rate_stream_has_a_draw_the_old_generator_made_zero():
    u = counter_uniform(TINY_DRAW_SEED, 0, TINY_DRAW_AT + 1)
    assert 0 < u[TINY_DRAW_AT] < 2.0**-24


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_ratio_0_drops_nothing(build, dtype):
    x = np.random.default_rng(1).standard_normal(1 << 22).astype(dtype)
    mask, out = kernel_dropout(build, x, 0.0)
    assert mask.all()
    assert_array_equal(out, x)


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_ratio_1_drops_everything(build, dtype):
    x = np.random.default_rng(2).standard_normal(1 << 22).astype(dtype)
    mask, out = kernel_dropout(build, x, 1.0)
    assert not mask.any()
    assert not out.any()


@pytest.mark.parametrize("module", [fast_layers, reference_layers])
def test_dropout_layer_at_the_edge_rates(module):
    x = np.random.default_rng(3).standard_normal((64, 33))
    keep_all, drop_all = module.Dropout(0, seed=1), module.Dropout(1, seed=1)
    assert keep_all.dropout_ratio == 0.0 and type(keep_all.dropout_ratio) is float
    assert_array_equal(keep_all.forward(x), x)
    assert_array_equal(keep_all.forward(x, train_flg=False), x)
    assert_array_equal(keep_all.backward(x), x)
    assert not drop_all.forward(x).any() and not drop_all.mask.any()
    assert not drop_all.forward(x, train_flg=False).any()
    assert not drop_all.backward(x).any()


@pytest.mark.parametrize("build", BUILDS)
def test_dropout_rate_is_honoured(build):
    n, ratio = 1 << 22, 0.3
    mask, _ = kernel_dropout(build, np.ones(n, np.float32), ratio, seed=8)
    # kept ~ Binomial(n, 1 - ratio): 6 standard deviations, about 5600 of 2.9 million
    assert abs(int(mask.sum()) - n * (1 - ratio)) < 6 * math.sqrt(n * ratio * (1 - ratio))


def test_dropout_tiny_rate_is_honoured():
    # 2**25 draws at ratio 1e-9: 0.034 drops expected, 2 or more with probability 6e-4
    # (the 24-bit generator dropped 4 of this stream's, at any ratio up to 2**-24).
    mask, _ = kernel_dropout(PARALLEL, np.ones(1 << 25, np.float32), 1e-9)
    assert np.count_nonzero(~mask) <= 1


@pytest.mark.parametrize("build", BUILDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_kernel_and_reference_agree_bitwise_at_any_ratio(build, dtype):
    """The kernel keeps ``u >= ratio``, as exact as in float64 for either dtype: also
    where the ratio equals a draw, lies one float64 step to either side of it (which a
    comparison in float32 would round onto the draw), or is below 2**-53."""
    n, seed, step = 5000, 17, 4
    u = counter_uniform(seed, step, n)
    x = np.random.default_rng(4).standard_normal(n).astype(dtype)
    draw = u[1234]
    for ratio in (0.0, 5e-324, 2.0**-54, 2.0**-53, 1e-9, 0.3, 0.5, draw,
                  np.nextafter(draw, 0), np.nextafter(draw, 1), 1 - 2.0**-53, 1.0):
        mask, out = kernel_dropout(build, x, float(ratio), seed, step)
        assert_array_equal(mask, u >= ratio, err_msg=repr(ratio))
        assert_array_equal(out, x * mask, err_msg=repr(ratio))
        layer = reference_layers.Dropout(ratio, seed=seed)
        layer.step = step
        assert_array_equal(layer.forward(x), out, err_msg=repr(ratio))
        assert_array_equal(layer.mask, mask, err_msg=repr(ratio))
    assert kernel_dropout(build, x, float(draw), seed, step)[0][1234]
    assert not kernel_dropout(build, x, float(np.nextafter(draw, 1)), seed, step)[0][1234]


@pytest.mark.parametrize("module", [fast_layers, reference_layers])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ratio", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_inverted_dropout_mask_and_scale_exactly(module, dtype, ratio):
    """The book's mask of the same (seed, step); kept elements times ``1 / (1 - ratio)``
    rounded to the dtype (0 at ratio 1), dropped ones 0; a copy of x at test time."""
    x = np.random.default_rng(6).standard_normal((40, 25)).astype(dtype)
    dout = np.random.default_rng(7).standard_normal((40, 25)).astype(dtype)
    inverted, book = (module.Dropout(ratio, seed=5, inverted=flag) for flag in (True, False))
    scale = dtype.type(1 / (1 - ratio)) if ratio < 1 else dtype.type(0)
    assert inverted.inverted and not book.inverted
    assert inverted.kept_scale == (1 / (1 - ratio) if ratio < 1 else 0.0)
    for step in range(3):
        out, book_out = inverted.forward(x), book.forward(x)
        assert_array_equal(inverted.mask, book.mask)
        u = counter_uniform(5, step, x.size).reshape(x.shape)
        assert_array_equal(inverted.mask, u >= ratio)
        assert out.dtype == dtype and inverted.step == step + 1
        # exact values (0 and -0 alike): x * scale rounded once in the dtype
        assert_array_equal(out, np.where(inverted.mask, x * scale, 0))
        assert_array_equal(book_out, np.where(book.mask, x, 0))
        dx = inverted.backward(dout)
        assert dx.dtype == dtype
        assert_array_equal(dx, np.where(inverted.mask, dout * scale, 0))
    test_out = inverted.forward(x, train_flg=False)
    assert_array_equal(test_out, x)
    assert test_out is not x and inverted.step == 3


@pytest.mark.parametrize("module", [fast_layers, reference_layers])
@pytest.mark.parametrize("ratio", [0.2, 0.5, 0.8])
def test_inverted_dropout_keeps_the_expectation(module, ratio):
    """``E[out] = x`` in training: over 2**20 ones, the mean output is 1 within 6
    standard deviations, ``6 sqrt(ratio / ((1 - ratio) n))``, and so is each kept
    fraction's complement; at test time the output is x itself."""
    n = 1 << 20
    layer = module.Dropout(ratio, seed=11, inverted=True)
    out = layer.forward(np.ones(n, np.float32))
    assert abs(float(out.mean(dtype=np.float64)) - 1) < 6 * math.sqrt(ratio / ((1 - ratio) * n))
    assert abs(float(layer.mask.mean()) - (1 - ratio)) < 6 * math.sqrt(ratio * (1 - ratio) / n)
    assert set(np.unique(out)) == {0.0, np.float32(1 / (1 - ratio))}
    assert_array_equal(layer.forward(np.ones(n, np.float32), train_flg=False), np.ones(n))


# ------------------------------------------------------------------ numerical gradients

@pytest.mark.parametrize("case", LAYERS)
def test_backward_matches_numerical_gradient(case):
    inputs = make_inputs(case, np.float64, n=4, d=3, seed=4)
    layer = case.make(fast_layers, inputs.kwargs)
    x, t, dout = inputs.xs[0], inputs.targets[0], inputs.douts[0]
    flag = None if case.passes[0] is None else True

    def objective(_):
        if isinstance(layer, fast_layers.Dropout):
            layer.step = 0  # the same mask at every evaluation
        return float(np.sum(forward(layer, case, x, t, flag) * dout))

    numeric = {"x": numerical_gradient(objective, x)}
    for name in PARAM_GRADS:
        if name in inputs.kwargs:
            numeric[name] = numerical_gradient(objective, getattr(layer, name))
    objective(None)
    analytic = {"x": layer.backward(dout)}
    analytic.update({name: getattr(layer, PARAM_GRADS[name]) for name in numeric if name != "x"})
    for name, expected in numeric.items():
        assert_allclose(analytic[name], expected, rtol=case.grad_rtol, atol=1e-8, err_msg=name)
    # dx is not all 0 (the check above is not vacuous), but where dropout drops everything
    drops_everything = isinstance(layer, fast_layers.Dropout) and layer.dropout_ratio == 1
    assert (np.abs(numeric["x"]).max() > 0) != drops_everything


# ------------------------------------------------------------------ statistics

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("offset", [0.0, 1e3, -1e6])
@pytest.mark.parametrize("size", [2, 100, 4096])
def test_group_statistics_survive_a_large_mean(dtype, offset, size):
    """The one-pass shifted-data variance (``group_statistics``) against NumPy's two-pass
    one in float64, on samples whose mean dwarfs their spread, outliers included."""
    rng = np.random.default_rng(size)
    x = (offset + rng.standard_normal((3, size)) * 0.01).astype(dtype)
    x[1, -1] += 5.0  # the shift (the first value) far from the mean of the other samples
    x[2, 0] -= 5.0  # and the first value itself an outlier
    layer = fast_layers.LayerNormalization(np.ones(size, dtype), np.zeros(size, dtype))
    out = layer.forward(x)
    exact = x.astype(np.float64)
    mean, var = exact.mean(axis=1, keepdims=True), exact.var(axis=1, keepdims=True)
    std = np.sqrt(var + layer.eps)
    # float64: shifting by the first value, an outlier 5 from the mean of values that
    # spread 0.01, cancels about 12 of the sums' 53 bits (at most log2(size), see
    # group_statistics); measured 1.6e-12 at size 4096 and offset 1e3 in the fixed order
    # of eight partial sums, 9e-12 with one running sum
    assert_allclose(layer.std.reshape(3, 1), std, rtol=1e-11 if dtype == np.float64 else 1e-6)
    # x - mean itself loses the bits of the mean's last place (both sides do), relative
    # to the spread: float64's last place of 1e6 is 1e-10, 1e-8 of the spread.
    atol = 1e-6 + 8 * np.finfo(np.float64).eps * abs(offset) / 0.01
    assert_allclose(out, (exact - mean) / std, rtol=1e-6, atol=atol)


# ------------------------------------------------------------------ PyTorch, a second opinion

TORCH_NORMS = {
    "layer": (lambda g, b: fast_layers.LayerNormalization(g, b), (6, 10),
              lambda F, t, w, b: F.layer_norm(t, (10,), w, b, 1e-6)),
    "group": (lambda g, b: fast_layers.GroupNormalization(g, b, 2), (6, 4, 3, 3),
              lambda F, t, w, b: F.group_norm(t, 2, w, b, 1e-6)),
    "instance": (lambda g, b: fast_layers.InstanceNormalization(g, b), (6, 4, 3, 3),
                 lambda F, t, w, b: F.instance_norm(t, weight=w, bias=b, eps=1e-6)),
}


@pytest.mark.parametrize("name", list(TORCH_NORMS))
def test_normalization_agrees_with_torch(name):
    torch = pytest.importorskip("torch")
    make, shape, theirs = TORCH_NORMS[name]
    rng = np.random.default_rng(9)
    x, dout = rng.standard_normal(shape) + 0.5, rng.standard_normal(shape)
    gamma, beta = 1 + 0.3 * rng.standard_normal(shape[1]), rng.standard_normal(shape[1])
    layer = make(gamma, beta)
    out = layer.forward(x)
    dx = layer.backward(dout)
    t, w, b = (torch.tensor(a, requires_grad=True) for a in (x, gamma, beta))
    expected = theirs(torch.nn.functional, t, w, b)
    expected.backward(torch.tensor(dout))
    for ours, torch_value in ((out, expected), (dx, t.grad), (layer.dgamma, w.grad),
                              (layer.dbeta, b.grad)):
        assert_allclose(ours, torch_value.detach().numpy(), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("module", [fast_layers, reference_layers], ids=["fastnet", "reference"])
def test_switchable_defaults_each_mixing_logit_alone(module):
    """A given ``var_weight`` is kept when ``mean_weight`` is left None (zeros), and the
    other way round: the same output as both given."""
    x = np.random.default_rng(0).standard_normal((4, 3, 2, 2))
    logits = np.array([2.0, -1.0, 0.5])

    def out(**kwargs):
        return module.SwitchableNormalization(np.ones(3), np.zeros(3), **kwargs).forward(x)

    both = out(mean_weight=np.zeros(3), var_weight=logits)
    assert_allclose(out(var_weight=logits), both, rtol=1e-12)
    assert_allclose(out(mean_weight=logits), out(mean_weight=logits, var_weight=np.zeros(3)),
                    rtol=1e-12)
    assert not np.allclose(out(), both)


@pytest.mark.parametrize("name", ["BatchNormalization", "SwitchableNormalization"])
def test_backward_after_an_inference_forward_is_the_training_forwards(name):
    """An inference forward on another batch between a training forward and backward
    leaves backward the training pass's gradient (the reference's, without the inference
    pass; the book's batch norm fails reshaping dx to the inference batch's shape)."""
    rng = np.random.default_rng(1)
    x, dout, other = (rng.standard_normal(shape) for shape in ((6, 4, 2), (6, 4, 2), (3, 4, 2)))
    width = 4 if name == "SwitchableNormalization" else 8
    grads = []
    for module, infer in ((fast_layers, True), (reference_layers, False)):
        layer = getattr(module, name)(np.ones(width), np.zeros(width))
        layer.forward(x, True)
        if infer:
            layer.forward(other, False)
        grads.append((layer.backward(dout), layer.dgamma, layer.dbeta))
    for actual, desired in zip(*grads):
        assert actual.shape == desired.shape
        assert_allclose(actual, desired, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("b", [0.5, np.float64(0.5), np.full((1, 4), 0.5), np.full(1, 0.5)],
                         ids=["float", "numpy-scalar", "row", "one"])
def test_affine_takes_a_bias_the_book_broadcasts(b):
    """The book's ``x @ W + b`` broadcasts b; db is (D,) as the book's ``sum(dout, 0)``."""
    rng = np.random.default_rng(4)
    x, W, dout = rng.standard_normal((3, 5)), rng.standard_normal((5, 4)), rng.standard_normal((3, 4))
    results = []
    for module in (fast_layers, reference_layers):
        layer = module.Affine(W, b)
        results.append((layer.forward(x), layer.backward(dout), layer.dW, layer.db))
    for actual, desired in zip(*results):
        assert actual.shape == desired.shape
        assert_allclose(actual, desired, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ refused passes

def _refused_forward_cases():
    rng = np.random.default_rng(0)
    ones, zeros = np.ones(6), np.zeros(6)
    yield "layer-eps", fast_layers.LayerNormalization(ones, zeros), "eps", -1.0
    yield "group-eps", fast_layers.GroupNormalization(ones, zeros, 2), "eps", 0.0
    yield ("instance-eps", fast_layers.InstanceNormalization(np.ones(3), np.zeros(3)),
           "eps", np.nan)
    yield ("switchable-eps", fast_layers.SwitchableNormalization(ones, zeros), "eps", -1.0)
    yield ("switchable-momentum", fast_layers.SwitchableNormalization(ones, zeros),
           "momentum", 2.0)
    yield "batch-momentum", fast_layers.BatchNormalization(ones, zeros), "momentum", -1.0
    yield "dropout-ratio", fast_layers.Dropout(0.3, seed=1), "dropout_ratio", 2.0
    yield "affine-width", fast_layers.Affine(rng.standard_normal((6, 4)), np.zeros(4)), None, None


@pytest.mark.parametrize("name, layer, attr, bad",
                         [pytest.param(*case, id=case[0]) for case in _refused_forward_cases()])
def test_a_refused_forward_leaves_the_last_pass_for_backward(name, layer, attr, bad):
    """A forward refused for a hyperparameter set out of range (or an input of another
    width) raises before it replaces what backward needs: backward then still returns
    the last accepted pass's gradient (once it was uninitialised memory or NaN)."""
    rng = np.random.default_rng(1)
    shape = (4, 3, 2) if name.startswith("instance") else (4, 6)
    x = rng.standard_normal(shape)
    train = () if name.startswith("affine") else (True,)
    out = layer.forward(x, *train)
    dout = rng.standard_normal(out.shape)
    expected = layer.backward(dout)
    if attr is None:
        with pytest.raises(ValueError, match="features per sample"):
            layer.forward(rng.standard_normal((4, 5)))
    else:
        good = getattr(layer, attr)
        setattr(layer, attr, bad)
        with pytest.raises(ValueError, match=attr):
            layer.forward(x, *train)
        setattr(layer, attr, good)
    assert_array_equal(layer.backward(dout), expected)


def test_weight_norm_names_g_and_b_per_output_unit():
    layer = fast_layers.WeightNormalization(np.ones((4, 3)), np.ones(2), np.zeros(3))
    with pytest.raises(ValueError, match=r"g must have shape \(3,\), got \(2,\): one value for "
                                         r"each of the 3 output units \(columns of v\)"):
        layer.forward(np.ones((2, 4)))
