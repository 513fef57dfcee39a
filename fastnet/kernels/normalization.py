"""The normalizations beside batch norm: group norm (and its two special cases, layer
norm and instance norm), switchable norm and weight norm.

Group norm works on a C-contiguous (N, G, C/G, S) view of the input: N samples, G
groups of C/G channels, S positions per channel (H*W; 1 for (N, C) input).  Each
(sample, group) is normalized over its (C/G) * S values:

    mu, var = mean and biased variance of the group   (one pass, shifted data)
    std = sqrt(var + eps);  xn = (x - mu) / std;  out = gamma[c] xn + beta[c]
    backward: dbeta[c] = sum(dout), dgamma[c] = sum(dout xn) over samples and positions,
              dxn = gamma[c] dout,  dx = (dxn - mean(dxn) - xn mean(dxn xn)) / std
              (means over the group)

Layer norm is G = 1 (the whole sample), instance norm G = C (one channel).

Switchable norm works on an (N, C, S) view and mixes three statistics per (n, c):
instance (over the S positions), layer (over the C*S values of the sample) and batch
(over the N*S values of the channel), ``mu = sum_k w_k mu_k``, ``var = sum_k w'_k
var_k``.  The layer and batch statistics are formed from the instance ones by the law
of total variance (``var_ln = mean_c(var_in + (mu_in - mu_ln)^2)``), never as ``E[x^2]
- E[x]^2``.

Every sum is formed in float64, in an order fixed by the shapes alone: the compiler
may not reorder a sum (no ``reassoc``, see ``config.FASTMATH``), so a kernel rounds
alike in its own build, in its parallel build and in the copy a fused kernel compiles
into itself, whatever the process compiled or loaded before.  The sums along a row (a
group's statistics, a channel's or a sample's sums in backward) run as eight
interleaved partial sums held in one vector, combined pairwise (``moments``,
``run_sums``, through ``lanes.lane_sums``).  Group norm's parallel builds split the
samples (forward) or fixed chunks of ``ROWS_PER_TASK`` samples whose partial sums are
added in chunk order (backward); switchable norm forms its sums in a serial pass and
runs only the element-wise passes in parallel.  Each kernel's serial and parallel
builds agree bitwise (tested), on any number of threads.
"""
import math

import numpy as np
from numba import prange

from .jit import inline, jit, serial_and_parallel
from .lanes import LANES, lane_sums

# Row of the (2, N, C) / (2, N) / (2, C) statistics arrays, and entry of the three-way
# mixing weights.
MEAN, VAR = 0, 1
INSTANCE, LAYER, BATCH = 0, 1, 2
ROWS_PER_TASK = 8  # samples per task of a parallel pass (a fixed count: thread-count independent)


# ------------------------------------------------------------------ shared passes

@inline
def n_chunks(n):
    return (n + ROWS_PER_TASK - 1) // ROWS_PER_TASK


@inline
def channel(row, c, s):
    """Channel ``c`` of a row of channels of ``s`` positions each."""
    return row[c * s:(c + 1) * s]


@inline
def normalize_run(x, mu, inv, scale, shift, xn, out):
    """``xn = (x - mu) inv`` and ``out = scale xn + shift`` over a run of values with
    scalar statistics and affine parameters (scalars, not array reads: loads LLVM must
    assume the stores change); ``out`` reads ``xn`` back, as
    ``batchnorm.normalize_row`` does."""
    for k in range(x.shape[0]):
        xn[k] = (x[k] - mu) * inv
        out[k] = scale * xn[k] + shift


@inline
def normalize_channels(x, s, mean, std, gamma, beta, xn, out):
    """``xn = (x - mean[c]) / std[c]`` and ``out = gamma[c] xn + beta[c]`` over a row of
    channels of ``s`` positions each.  One flat loop where ``s == 1``, so that it
    vectorises."""
    if s == 1:
        for c in range(gamma.shape[0]):
            xn[c] = (x[c] - mean[c]) / std[c]
            out[c] = gamma[c] * xn[c] + beta[c]
    else:
        for c in range(gamma.shape[0]):
            # a slice per channel (an index from c * s may be negative to Numba, whose
            # wraparound check then keeps the loop from vectorising: 9x slower)
            normalize_run(channel(x, c, s), mean[c], 1 / std[c], gamma[c], beta[c],
                          channel(xn, c, s), channel(out, c, s))


@inline
def moments(xs, k):
    """``sum(xs - k)`` and ``sum((xs - k)^2)`` over the 1-D ``xs``, in float64, in an
    order fixed by the length alone: ``lanes.lane_sums`` over the first ``len - len %
    LANES`` elements, then the rest in order (see the module doc: no sum may leave its
    order to the compiler)."""
    n = xs.shape[0]
    body = n - n % LANES
    total, squares = lane_sums(xs, k, xs, k, body)
    for m in range(body, n):
        t = xs[m] - k
        total += t
        squares += t * t
    return total, squares


@inline
def run_sums(d, xn):
    """``sum(d)`` and ``sum(d xn)`` over a run of values, in float64 (the products too),
    in the order of ``moments``.  ``xn`` must be at least as long as ``d`` (not checked:
    every caller passes two runs of one length)."""
    n = d.shape[0]
    body = n - n % LANES
    d_sum, dxn_sum = lane_sums(d, 0.0, xn, 0.0, body)
    for m in range(body, n):
        d_sum += d[m]
        dxn_sum += np.float64(d[m]) * xn[m]
    return d_sum, dxn_sum


@inline
def channel_sums(dout, xn, s, d_sums, dxn_sums):
    """Over a row of channels of ``s`` positions each: adds each channel's ``sum(dout)``
    to ``d_sums[c]`` and its ``sum(dout xn)`` to ``dxn_sums[c]`` (float64)."""
    if s == 1:
        for c in range(d_sums.shape[0]):
            d_sums[c] += dout[c]
            dxn_sums[c] += np.float64(dout[c]) * xn[c]  # as run_sums: products in float64
    else:
        for c in range(d_sums.shape[0]):
            d_sum, dxn_sum = run_sums(channel(dout, c, s), channel(xn, c, s))
            d_sums[c] += d_sum
            dxn_sums[c] += dxn_sum


@inline
def scaled_channels(a, b, s, coef, out):
    """``out = coef[0, c] a + (coef[1, c] b + coef[2, c])`` over rows of channels of ``s``
    positions each, in float64, so that no float32 rounding falls between terms that
    cancel.  One expression per element: no fast-math flag lets LLVM regroup it, so
    every build rounds it alike (``config.FASTMATH``)."""
    if s == 1:
        for c in range(coef.shape[1]):
            out[c] = coef[0, c] * a[c] + (coef[1, c] * np.float64(b[c]) + coef[2, c])
    else:
        for c in range(coef.shape[1]):
            alpha, beta, constant = coef[0, c], coef[1, c], coef[2, c]  # see normalize_channels
            ac, bc, outc = channel(a, c, s), channel(b, c, s), channel(out, c, s)
            for k in range(s):
                outc[k] = alpha * ac[k] + (beta * np.float64(bc[k]) + constant)


# ------------------------------------------------------------------ group norm

@inline
def group_statistics(xs, eps):
    """The mean and ``sqrt(var + eps)`` (biased variance) of the values ``xs`` (1-D), in
    float64, in one pass over the values shifted by the first of them: ``var =
    mean((x - k)^2) - mean(x - k)^2`` with ``k = xs[0]``.  As ``k`` is one of the values,
    ``(mean - k)^2 <= size var``, so the subtraction loses at most ``log2(size)`` bits of
    the float64 sums' 53 (Chan, Golub and LeVeque 1983, "Algorithms for computing the
    sample variance", the shifted data algorithm)."""
    size = xs.shape[0]
    k = np.float64(xs[0])
    total, squares = moments(xs, k)
    shift = total / size
    var = max(squares / size - shift * shift, 0.0)
    return k + shift, math.sqrt(var + eps)


@serial_and_parallel(min_size="GROUP_NORM_PARALLEL_MIN_SIZE")
def group_norm_forward(x, s, gamma, beta, eps, xn, std, out):
    """``x``, ``xn``, ``out`` (N, G, M): the M = (C/G) * S values of each group, channel
    after channel, ``s`` positions each; ``gamma``, ``beta`` (C,); ``std`` (N, G).
    Each sample (in parallel in the parallel build): each group's statistics, then its
    normalization."""
    n, groups, size = x.shape
    per_group = size // s
    for i in prange(n):
        for g in range(groups):
            mu, sd = group_statistics(x[i, g], eps)
            std[i, g] = sd
            inv = 1 / std[i, g]
            first = g * per_group
            xs, xns, outs = x[i, g], xn[i, g], out[i, g]
            if s == 1:
                for c in range(per_group):
                    xns[c] = (xs[c] - mu) * inv
                    outs[c] = gamma[first + c] * xns[c] + beta[first + c]
            else:
                for c in range(per_group):
                    normalize_run(channel(xs, c, s), mu, inv, gamma[first + c],
                                  beta[first + c], channel(xns, c, s),
                                  channel(outs, c, s))


@inline
def features_backward(dout, xn, std, gamma, start, stop, partial, stage, dx):
    """``group_norm_backward`` of samples ``start .. stop - 1`` of input without positions
    (``s == 1``, M = C/G): adds their ``dout`` and ``dout xn`` per channel to
    ``partial[0]`` and ``partial[1]`` (C,), and writes their ``dx``.  ``stage`` (M,)
    holds a group's ``gamma dout`` for its two sums."""
    groups, size = dout.shape[1], dout.shape[2]
    for i in range(start, stop):
        for g in range(groups):
            first, last = g * size, (g + 1) * size
            # slices, not indices from first + c (see normalize_channels)
            d_sums, dxn_sums = partial[0, first:last], partial[1, first:last]
            ds, xns, dxs, gammas = dout[i, g], xn[i, g], dx[i, g], gamma[first:last]
            for c in range(size):
                dv = np.float64(ds[c])
                d_sums[c] += dv
                dxn_sums[c] += dv * xns[c]
                stage[c] = gammas[c] * dv
            weighted, weighted_xn = run_sums(stage, xns)  # sum(gamma dout), sum(gamma dout xn)
            inv = 1 / std[i, g]
            spread, constant = -inv * (weighted_xn / size), -inv * (weighted / size)
            # in float64, the xn and constant terms bracketed, gamma too: no float32
            # rounding between terms that cancel (a group of one value: dx = 0 up to
            # the float64 rounding); written in one expression, as no fast-math flag
            # lets LLVM regroup it
            for c in range(size):
                dxs[c] = (inv * np.float64(gammas[c])) * ds[c] + (spread * xns[c] + constant)


@inline
def channels_backward(dout, s, xn, std, gamma, start, stop, partial, dx):
    """``features_backward`` for input with ``s > 1`` positions per channel (M = (C/G)
    s): the same sums, per channel over its positions."""
    groups, size = dout.shape[1], dout.shape[2]
    per_group = size // s
    for i in range(start, stop):
        for g in range(groups):
            first, last = g * per_group, (g + 1) * per_group
            d_sums, dxn_sums = partial[0, first:last], partial[1, first:last]
            ds, xns, dxs, gammas = dout[i, g], xn[i, g], dx[i, g], gamma[first:last]
            weighted = 0.0  # sum(gamma dout) over the group
            weighted_xn = 0.0  # sum(gamma dout xn)
            for c in range(per_group):
                d_sum, dxn_sum = run_sums(channel(ds, c, s), channel(xns, c, s))
                d_sums[c] += d_sum
                dxn_sums[c] += dxn_sum
                weighted += gammas[c] * d_sum
                weighted_xn += gammas[c] * dxn_sum
            inv = 1 / std[i, g]
            spread, constant = -inv * (weighted_xn / size), -inv * (weighted / size)
            for c in range(per_group):  # as in features_backward
                scale = inv * np.float64(gammas[c])
                dc, xnc, dxc = channel(ds, c, s), channel(xns, c, s), channel(dxs, c, s)
                for k in range(s):
                    dxc[k] = scale * dc[k] + (spread * xnc[k] + constant)


@serial_and_parallel(min_size="GROUP_NORM_PARALLEL_MIN_SIZE")
def group_norm_backward(dout, s, xn, std, gamma, dgamma, dbeta, dx):
    """``dgamma``, ``dbeta`` (C,) and ``dx`` (N, G, M) of ``group_norm_forward``:
    ``dx = (gamma dout - mean(gamma dout) - xn mean(gamma dout xn)) / std``.

    Samples in chunks of ``ROWS_PER_TASK``: each chunk sums its samples' ``dout`` and
    ``dout xn`` per channel, and the chunks' sums are added in chunk order (pairwise
    sums of a kind, shorter chains than one running sum over the batch).  The chunks
    run in parallel in the parallel build; their count does not depend on the threads'.
    Input with and without positions runs as two loops: one loop holding both forms
    ran 1.1-3.6x slower on either (float32 (128, 100) and (64, 16, 8, 8); 2 cores)."""
    n, groups, size = dout.shape
    per_group = size // s
    chunks = n_chunks(n)
    partial = np.zeros((chunks, 2, groups * per_group))  # per chunk: dbeta, dgamma
    if s == 1:
        stages = np.empty((chunks, size))
        for chunk in prange(chunks):
            features_backward(dout, xn, std, gamma, chunk * ROWS_PER_TASK,
                              min(n, (chunk + 1) * ROWS_PER_TASK), partial[chunk],
                              stages[chunk], dx)
    else:
        for chunk in prange(chunks):
            channels_backward(dout, s, xn, std, gamma, chunk * ROWS_PER_TASK,
                              min(n, (chunk + 1) * ROWS_PER_TASK), partial[chunk], dx)
    for ch in range(groups * per_group):
        d_sum = 0.0
        dxn_sum = 0.0
        for chunk in range(chunks):
            d_sum += partial[chunk, 0, ch]
            dxn_sum += partial[chunk, 1, ch]
        dbeta[ch] = d_sum
        dgamma[ch] = dxn_sum


# ------------------------------------------------------------------ switchable norm

@inline
def sample_statistics(x, s, inst, layer):
    """For each sample i of ``x`` (N, C * S): ``inst[:, i, c]`` the mean and variance of
    each channel over its ``s`` positions, ``layer[:, i]`` those of the whole sample
    (pooled from the channels' by the law of total variance,
    ``(sum_c var_c + sum_c (mean_c - mean)^2) / C``)."""
    c_count = inst.shape[2]
    for i in range(inst.shape[1]):
        if s == 1:
            for c in range(c_count):
                inst[MEAN, i, c] = x[i, c]
                inst[VAR, i, c] = 0.0
        else:
            for c in range(c_count):
                xc = channel(x[i], c, s)  # see normalize_channels
                # two passes (the mean, then the squares about it); LLVM drops the
                # unused half of each call's sums as dead code (checked in the IR)
                mean = moments(xc, 0.0)[0] / s
                squares = moments(xc, mean)[1]
                inst[MEAN, i, c] = mean
                inst[VAR, i, c] = squares / s
        mean = moments(inst[MEAN, i], 0.0)[0] / c_count
        spread = moments(inst[VAR, i], 0.0)[0] + moments(inst[MEAN, i], mean)[1]
        layer[MEAN, i] = mean
        layer[VAR, i] = spread / c_count


@inline
def batch_statistics(inst, batch):
    """``batch[:, c]``: the mean and variance of channel c over the batch, pooled from
    ``inst`` as in ``sample_statistics``, samples in order (a row of channels at a time,
    so that the loops vectorise)."""
    n, c_count = inst.shape[1], inst.shape[2]
    batch[:, :] = 0.0
    for i in range(n):
        for c in range(c_count):
            batch[MEAN, c] += inst[MEAN, i, c]
    for c in range(c_count):
        batch[MEAN, c] /= n
    for i in range(n):
        for c in range(c_count):
            t = inst[MEAN, i, c] - batch[MEAN, c]
            batch[VAR, c] += inst[VAR, i, c] + t * t
    for c in range(c_count):
        batch[VAR, c] /= n


@inline
def mix_statistics(inst, layer, batch_mean, batch_var, w_mean, w_var, eps, mean, std):
    """The mixed ``mean`` and ``std`` (N, C) of every channel of every sample."""
    for i in range(inst.shape[1]):
        for c in range(inst.shape[2]):
            mean[i, c] = (w_mean[INSTANCE] * inst[MEAN, i, c] + w_mean[LAYER] * layer[MEAN, i]
                          + w_mean[BATCH] * batch_mean[c])
            var = (w_var[INSTANCE] * inst[VAR, i, c] + w_var[LAYER] * layer[VAR, i]
                   + w_var[BATCH] * batch_var[c])
            std[i, c] = math.sqrt(var + eps)


@serial_and_parallel
def switchable_forward_train(x, s, gamma, beta, w_mean, w_var, eps, momentum, running_mean,
                             running_var, inst, layer, batch, mean, std, xn, out):
    """Training forward of switchable norm on ``x`` (N, C * S), channel after channel,
    ``s`` positions each.

    ``w_mean``, ``w_var`` (3,): the softmax mixing weights of the (instance, layer,
    batch) statistics (instance 0 for (N, C) input).  Writes ``inst`` (2, N, C),
    ``layer`` (2, N), ``batch`` (2, C) (mean, variance), the mixed ``mean`` and ``std``
    (N, C), ``xn`` and ``out`` (N, C * S); ``running = momentum running + (1 - momentum)
    batch`` for the mean and the biased variance.
    """
    sample_statistics(x, s, inst, layer)
    batch_statistics(inst, batch)
    for c in range(gamma.shape[0]):
        running_mean[c] = momentum * running_mean[c] + (1 - momentum) * batch[MEAN, c]
        running_var[c] = momentum * running_var[c] + (1 - momentum) * batch[VAR, c]
    mix_statistics(inst, layer, batch[MEAN], batch[VAR], w_mean, w_var, eps, mean, std)
    for i in prange(x.shape[0]):
        normalize_channels(x[i], s, mean[i], std[i], gamma, beta, xn[i], out[i])


@serial_and_parallel
def switchable_forward_infer(x, s, gamma, beta, w_mean, w_var, eps, running_mean,
                             running_var, out):
    """Inference forward: the batch statistics replaced by the running ones."""
    n, c_count = x.shape[0], gamma.shape[0]
    inst = np.empty((2, n, c_count))
    layer = np.empty((2, n))
    mean = np.empty((n, c_count))
    std = np.empty((n, c_count))
    xn = np.empty_like(x)
    sample_statistics(x, s, inst, layer)
    mix_statistics(inst, layer, running_mean, running_var, w_mean, w_var, eps, mean, std)
    for i in prange(n):
        normalize_channels(x[i], s, mean[i], std[i], gamma, beta, xn[i], out[i])


@serial_and_parallel
def switchable_backward(dout, s, xn, gamma, w_mean, w_var, inst, layer, batch, mean, std,
                        dgamma, dbeta, dw_mean, dw_var, dx):
    """``dgamma``, ``dbeta``, ``dx`` and the gradients of the loss with respect to the
    mixing *weights* (not their logits), ``dw_mean`` and ``dw_var`` (3,), of
    ``switchable_forward_train``.

    With ``g = gamma dout``, per (n, c): ``dmu = -sum_s(g) / std`` and ``dvar =
    -sum_s(g xn) / (2 std^2)``; each statistic k is a mean (variance) over a set A_k of
    values, whose gradient is ``1/|A_k|`` (``2 (x - mu_k) / |A_k|``) times its share
    ``d_k mu`` (``d_k var``) of ``dmu`` (``dvar``).  With ``x - mu_k = std xn + (mu -
    mu_k)`` (no cancellation where the mean is large):

        dx = g / std + sum_k [d_k mu / |A_k| + 2 (std xn + mu - mu_k) d_k var / |A_k|]
    """
    n, c_count = inst.shape[1], inst.shape[2]
    sums = np.zeros((2, c_count))  # dbeta, dgamma
    row = np.empty((2, c_count))
    dstat = np.empty((2, n, c_count))  # d loss / d (mixed mean, mixed variance)
    for i in range(n):
        row[:, :] = 0.0
        channel_sums(dout[i], xn[i], s, row[0], row[1])
        for c in range(c_count):
            sums[0, c] += row[0, c]
            sums[1, c] += row[1, c]
            dstat[MEAN, i, c] = -gamma[c] * row[0, c] / std[i, c]
            dstat[VAR, i, c] = -0.5 * gamma[c] * row[1, c] / (std[i, c] * std[i, c])
    for c in range(c_count):
        dbeta[c] = sums[0, c]
        dgamma[c] = sums[1, c]

    # The gradients of the layer (per sample) and batch (per channel) statistics, and
    # of the weights.
    d_layer = np.empty((2, n))
    d_batch = np.zeros((2, c_count))
    dw = np.zeros((2, 3))
    for m in range(2):
        for i in range(n):
            for c in range(c_count):
                d_batch[m, c] += dstat[m, i, c]
            total, weighted_inst = run_sums(dstat[m, i], inst[m, i])
            weighted_batch = run_sums(dstat[m, i], batch[m])[1]
            d_layer[m, i] = total
            dw[m, INSTANCE] += weighted_inst
            dw[m, LAYER] += total * layer[m, i]
            dw[m, BATCH] += weighted_batch
    for k in range(3):
        dw_mean[k] = dw[MEAN, k]
        dw_var[k] = dw[VAR, k]

    # dx = a dout + b xn + constant per (n, c), the coefficients formed here, serially
    per_inst, per_layer, per_batch = 1.0 / s, 1.0 / (c_count * s), 1.0 / (n * s)
    # (a few arrays per loop, the per-sample terms in scalars: a loop over a dozen
    # arrays that LLVM must check for overlap at run time does not vectorise)
    coef = np.empty((n, 3, c_count))
    bn_var = np.empty(c_count)
    bn_mean = np.empty(c_count)
    for c in range(c_count):
        bn_var[c] = 2 * w_var[BATCH] * d_batch[VAR, c] * per_batch
        bn_mean[c] = w_mean[BATCH] * d_batch[MEAN, c] * per_batch
    for i in range(n):
        ln_var = 2 * w_var[LAYER] * d_layer[VAR, i] * per_layer
        ln_mean = w_mean[LAYER] * d_layer[MEAN, i] * per_layer
        layer_mean = layer[MEAN, i]
        # coef[i, 0] holds the instance terms until the last loop replaces them
        in_var, scale, spread, shift = coef[i, 0], coef[i, 0], coef[i, 1], coef[i, 2]
        for c in range(c_count):
            shift[c] = (w_mean[INSTANCE] * dstat[MEAN, i, c] * per_inst + ln_mean + bn_mean[c]
                        + (mean[i, c] - layer_mean) * ln_var
                        + (mean[i, c] - batch[MEAN, c]) * bn_var[c])
        for c in range(c_count):
            in_var[c] = 2 * w_var[INSTANCE] * dstat[VAR, i, c] * per_inst
        for c in range(c_count):
            shift[c] += (mean[i, c] - inst[MEAN, i, c]) * in_var[c]
            spread[c] = std[i, c] * (in_var[c] + ln_var + bn_var[c])
        for c in range(c_count):
            scale[c] = gamma[c] / std[i, c]
    for i in prange(n):
        scaled_channels(dout[i], xn[i], s, coef[i], dx[i])


# ------------------------------------------------------------------ weight norm

@inline
def column_dots(a, b):
    """``sum(a * b, axis=0)`` of two (K, D) arrays in float64, rows in order."""
    dots = np.zeros(a.shape[1])
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            dots[j] += a[i, j] * b[i, j]
    return dots


@jit
def weight_norm_weight(v, g, norms, w):
    """``norms[j] = ||v[:, j]||`` and ``w = g v / norms`` column by column; v, w (K, D)."""
    k_count, d = v.shape
    squares = column_dots(v, v)
    for j in range(d):
        norms[j] = math.sqrt(squares[j])
    for i in range(k_count):
        for j in range(d):
            w[i, j] = g[j] * (v[i, j] / norms[j])


@jit
def weight_norm_backward(dw, v, g, norms, dv, dg):
    """From ``dw``, the gradient of ``w = g v / ||v||``: ``dg = sum_i dw v / ||v||`` and
    ``dv = (g / ||v||) (dw - dg v / ||v||)`` per column."""
    k_count, d = v.shape
    dots = column_dots(dw, v)
    for j in range(d):
        dg[j] = dots[j] / norms[j]
    for i in range(k_count):
        for j in range(d):
            dv[i, j] = (g[j] / norms[j]) * (dw[i, j] - dg[j] * v[i, j] / norms[j])


# Columns of ``weight_norm_layers``' table: a layer's v, g and b in the weight-norm net's
# arena, then its W and b in the plain net's arena that the fused kernels run on
V_OFFSET, G_OFFSET, B_OFFSET, W_PLAIN, B_PLAIN = range(5)


@jit
def weight_norm_layers(dims, table, params, plain, norms):
    """Every layer's effective weights at once: ``W = g v / ||v||`` (``weight_norm_weight``)
    and ``b`` copied, from a weight-norm net's ``params`` arena into the plain net's
    ``plain`` arena, at the offsets of ``table`` (one row per layer, columns ``V_OFFSET``
    ..``B_PLAIN``); ``dims`` (L + 1,) are the widths from input to output, and ``norms``
    (sum of ``dims[1:]``) receives each layer's column norms ``||v||``, layer after
    layer."""
    start = 0
    for l in range(dims.size - 1):
        k, d = dims[l], dims[l + 1]
        row = table[l]
        weight_norm_weight(params[row[V_OFFSET]:row[V_OFFSET] + k * d].reshape((k, d)),
                           params[row[G_OFFSET]:row[G_OFFSET] + d], norms[start:start + d],
                           plain[row[W_PLAIN]:row[W_PLAIN] + k * d].reshape((k, d)))
        plain[row[B_PLAIN]:row[B_PLAIN] + d] = params[row[B_OFFSET]:row[B_OFFSET] + d]
        start += d


@jit
def weight_norm_layers_backward(dims, table, params, plain_grads, norms, weight_decay, grads):
    """The gradients of every layer's v, g and b in the weight-norm net's ``grads`` arena
    (laid out as ``params``) from the plain net's gradients of W and b in ``plain_grads``
    (``weight_norm_backward``); ``weight_decay * g`` is added to g's, the gradient of
    ``0.5 lambda sum(W^2) = 0.5 lambda sum(g^2)``.  Arguments as ``weight_norm_layers``."""
    start = 0
    for l in range(dims.size - 1):
        k, d = dims[l], dims[l + 1]
        row = table[l]
        g = params[row[G_OFFSET]:row[G_OFFSET] + d]
        dg = grads[row[G_OFFSET]:row[G_OFFSET] + d]
        weight_norm_backward(
            plain_grads[row[W_PLAIN]:row[W_PLAIN] + k * d].reshape((k, d)),
            params[row[V_OFFSET]:row[V_OFFSET] + k * d].reshape((k, d)), g,
            norms[start:start + d], grads[row[V_OFFSET]:row[V_OFFSET] + k * d].reshape((k, d)),
            dg)
        if weight_decay != 0:
            for j in range(d):
                dg[j] += weight_decay * g[j]
        grads[row[B_OFFSET]:row[B_OFFSET] + d] = plain_grads[row[B_PLAIN]:row[B_PLAIN] + d]
        start += d
