"""Affine layers: GEMMs through BLAS (``np.dot`` with ``out=``) and the cheap work
fused into one pass over the GEMM output.

forward:  out = act(x @ W + b)                (bias and activation in the epilogue)
backward: dz  = dout * act'(y),  db = sum_rows(dz)   (one pass), then
          dW  = x.T @ dz,  dx = dz @ W.T       (BLAS)

Every kernel here is serial: the parallelism is BLAS's (see ``fastnet.threads``).
"""
import numpy as np

from .activations import IDENTITY, activate, activation_grad
from ._jit import inline, jit


@inline
def bias_activation(z, b, act):
    """In place over the rows of ``z``: ``z = act(z + b)``."""
    n, d = z.shape
    for i in range(n):
        for j in range(d):
            z[i, j] = activate(z[i, j] + b[j], act)


@inline
def activation_grad_colsum(dout, y, act, keep, dz, db):
    """``dz = dout * act'(y) * keep`` and ``db = dz.sum(axis=0)`` in one pass over the rows.

    ``keep`` is a flat dropout mask, or empty for none.  ``dz`` may be ``dout`` (in
    place); with the identity and no mask it is not written at all.  Rows are added in
    order, so the sum does not depend on how work is split.
    """
    n, d = dout.shape
    db[:] = 0
    for i in range(n):
        for j in range(d):
            g = dout[i, j]
            if act != IDENTITY:
                g = g * activation_grad(y[i, j], act)
            if keep.size and not keep[i * d + j]:
                g = g * 0
            if act != IDENTITY or keep.size:
                dz[i, j] = g
            db[j] += g


@jit
def affine_forward(x, W, b, act, out):
    """``out = act(x @ W + b)``; x (N, K), W (K, D), b (D,), out (N, D)."""
    np.dot(x, W, out)
    bias_activation(out, b, act)


@jit
def affine_backward(dout, x, W, y, act, keep, dz, dW, db, dx):
    """Gradients of ``y = act(x @ W + b) * keep``.

    ``dz`` receives ``dout * act'(y) * keep`` (pass ``dout`` itself when act is the
    identity and ``keep`` empty), ``dW = x.T @ dz``, ``db = sum_rows(dz)`` and, if
    ``dx`` has rows, ``dx = dz @ W.T``.
    """
    activation_grad_colsum(dout, y, act, keep, dz, db)
    np.dot(x.T, dz, dW)
    if dx.shape[0]:
        np.dot(dz, W.T, dx)

