"""Batch normalisation over the rows of an (N, D) array (the wrapper flattens
(N, C, H, W) input to (N, C*H*W), as the book does).

    mu, var = mean and biased variance of each column
    std = sqrt(var + eps);  xn = (x - mu) / std;  out = gamma xn + beta
    running = momentum running + (1 - momentum) batch_stat
    backward: dbeta = sum(dout), dgamma = sum(dout xn),
              dx = gamma / std (dout - (dbeta + xn dgamma) / N)

Column sums are accumulated in float64 per fixed chunk of ``config.REDUCE_CHUNK`` rows
and the chunks added in order: the same bits on any number of threads.  The variance is
one pass of shifted sums (shift = the first row, so ``E[t^2] - E[t]^2`` cancels little).

``batchnorm_forward_train``, ``batchnorm_forward_infer`` and ``batchnorm_backward`` are
the BatchNormalization layer alone; ``batchnorm_act_forward_train`` and
``batchnorm_infer_act`` fuse in an activation, for the nets' whole-net kernels.
"""
import math

import numpy as np
from numba import prange

from ..config import REDUCE_CHUNK
from .activations import IDENTITY, activate_row
from .jit import inline, serial_and_parallel


@inline
def chunk_sums(a, b, shift, c, partial):
    """Rows of chunk ``c``: ``partial[c] = (sum(a - shift), sum((a - shift) (b - shift)))``."""
    for i in range(c * REDUCE_CHUNK, min(a.shape[0], (c + 1) * REDUCE_CHUNK)):
        for j in range(a.shape[1]):
            t = a[i, j] - shift[j]
            partial[c, 0, j] += t
            partial[c, 1, j] += t * (b[i, j] - shift[j])


@inline
def in_chunk_order(partial):
    total = partial[0].copy()
    for c in range(1, partial.shape[0]):
        total += partial[c]
    return total


@inline
def normalize_row(x, i, mean, std, gamma, beta, xn, out):
    """``xn[i] = (x[i] - mean) / std``, ``out[i] = gamma xn[i] + beta`` (xn may be out)."""
    for j in range(x.shape[1]):
        xn[i, j] = (x[i, j] - mean[j]) / std[j]
        out[i, j] = gamma[j] * xn[i, j] + beta[j]


@inline
def forward_train(x, gamma, beta, eps, momentum, running_mean, running_var, act, xn, std,
                  out):
    """The training forward of ``batchnorm_forward_train`` and of
    ``batchnorm_act_forward_train``, ``act`` applied to the output row by row (its
    ``prange`` loops, inlined, run in parallel in the callers' parallel builds)."""
    n, d = x.shape
    n_chunks = (n + REDUCE_CHUNK - 1) // REDUCE_CHUNK
    shift = x[0].copy()
    partial = np.zeros((n_chunks, 2, d))
    for c in prange(n_chunks):
        chunk_sums(x, x, shift, c, partial)
    sums = in_chunk_order(partial)
    mean = np.empty(d)
    for j in range(d):
        shifted_mean = sums[0, j] / n
        var = max(sums[1, j] / n - shifted_mean * shifted_mean, 0.0)
        mean[j] = shift[j] + shifted_mean
        std[j] = math.sqrt(var + eps)
        running_mean[j] = momentum * running_mean[j] + (1 - momentum) * mean[j]
        running_var[j] = momentum * running_var[j] + (1 - momentum) * var
    for i in prange(n):
        normalize_row(x, i, mean, std, gamma, beta, xn, out)
        activate_row(out, i, act)


@serial_and_parallel
def batchnorm_forward_train(x, gamma, beta, eps, momentum, running_mean, running_var, xn,
                            std, out):
    """The BatchNormalization layer's training forward: batch statistics, running
    update, ``xn``, ``std`` and ``out = gamma xn + beta`` (``xn`` and ``out`` apart from
    ``x``: an in-place pass does not vectorise)."""
    forward_train(x, gamma, beta, eps, momentum, running_mean, running_var, IDENTITY, xn,
                  std, out)


@serial_and_parallel
def batchnorm_act_forward_train(x, gamma, beta, eps, momentum, running_mean, running_var,
                                act, xn, std, out):
    """``batchnorm_forward_train`` with an activation fused in: ``out = act(gamma xn +
    beta)``, for a net's whole-net kernel."""
    forward_train(x, gamma, beta, eps, momentum, running_mean, running_var, act, xn, std,
                  out)


@inline
def batchnorm_infer_act(z, gamma, beta, mean, std, act, out):
    """``out = act(gamma (z - mean) / std + beta)``, a row at a time (``std`` is
    ``sqrt(running_var + eps)``; ``out`` apart from ``z``, so that the row vectorises):
    a net's inference pass."""
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            out[i, j] = gamma[j] * ((z[i, j] - mean[j]) / std[j]) + beta[j]
        activate_row(out, i, act)


@serial_and_parallel
def batchnorm_forward_infer(x, gamma, beta, running_mean, running_var, eps, out):
    """Inference forward with the running statistics."""
    std = np.sqrt(running_var + eps)
    # Not ``normalize_row(..., out, out)``: with ``xn is out`` the serial and the
    # parallel build compile the row differently and disagree in the last bit.
    for i in prange(x.shape[0]):
        for j in range(x.shape[1]):
            out[i, j] = gamma[j] * ((x[i, j] - running_mean[j]) / std[j]) + beta[j]


@serial_and_parallel
def batchnorm_backward(dout, xn, std, gamma, dgamma, dbeta, dx):
    """``dgamma``, ``dbeta`` and ``dx`` of the training forward (``dx`` apart from ``dout``
    and ``xn``: an in-place pass does not vectorise)."""
    n, d = dout.shape
    n_chunks = (n + REDUCE_CHUNK - 1) // REDUCE_CHUNK
    partial = np.zeros((n_chunks, 2, d))
    no_shift = np.zeros(d, dout.dtype)
    for c in prange(n_chunks):
        chunk_sums(dout, xn, no_shift, c, partial)
    sums = in_chunk_order(partial)
    for j in range(d):  # a loop, not ``dbeta[:] = ...``: see blas.dot_update
        dbeta[j] = sums[0, j]
        dgamma[j] = sums[1, j]
    scale = gamma / std
    for i in prange(n):
        for j in range(d):
            dx[i, j] = scale[j] * (dout[i, j] - (sums[0, j] + xn[i, j] * sums[1, j]) / n)
