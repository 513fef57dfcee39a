"""Affine layers: GEMMs through BLAS (``blas.gemm``) and the cheap work
fused into one pass over the GEMM output.

forward:  out = act(x @ W + b)                (bias and activation in the epilogue)
backward: dz  = dout * act'(y),  db = sum_rows(dz)   (one pass), then
          dW  = x.T @ dz,  dx = dz @ W.T       (BLAS)

``affine_forward`` and ``affine_backward`` are the Affine layer alone (no activation,
no mask); ``affine_act_forward`` and ``affine_act_backward`` fuse in an activation and
a dropout mask, for the nets' whole-net kernels.

Every kernel here is serial: the parallelism is BLAS's (see ``fastnet.threads``).
"""
from .activations import IDENTITY, RELU, activate_row, activation_grad
from .blas import gemm
from .jit import inline, jit


@inline
def bias_activation(z, b, act):
    """In place over the rows of ``z``: ``z = act(z + b)``, a row at a time."""
    n, d = z.shape
    for i in range(n):
        for j in range(d):
            z[i, j] += b[j]
        activate_row(z, i, act)


@inline
def column_sums(dout, db):
    """``db = dout.sum(axis=0)``, rows added in order."""
    n, d = dout.shape
    db[:] = 0
    for i in range(n):
        for j in range(d):
            db[j] += dout[i, j]


@inline
def activation_grad_colsum(dout, y, act, keep, dz, db):
    """``dz = dout * act'(y) * keep`` and ``db = dz.sum(axis=0)`` in one pass over the rows.

    ``keep`` is a flat dropout mask, or empty for none.  With the identity and no mask
    ``dz`` is not written at all (pass ``dout``); otherwise ``dz`` must not overlap
    ``dout`` or ``y``, so that the loop vectorises.  Rows are added in order, so the sum
    does not depend on how work is split.  The common cases get loops of their own (see
    ``activations.activate_row``).
    """
    n, d = dout.shape
    if act == IDENTITY and not keep.size:
        column_sums(dout, db)
        return
    db[:] = 0
    if keep.size:
        for i in range(n):
            for j in range(d):
                g = dout[i, j] * activation_grad(y[i, j], act)
                g = g if keep[i * d + j] else g * 0
                dz[i, j] = g
                db[j] += g
    elif act == RELU:
        for i in range(n):
            for j in range(d):
                g = dout[i, j] if y[i, j] > 0 else dout[i, j] * 0
                dz[i, j] = g
                db[j] += g
    else:
        for i in range(n):
            for j in range(d):
                g = dout[i, j] * activation_grad(y[i, j], act)
                dz[i, j] = g
                db[j] += g


@jit
def affine_forward(x, W, b, out):
    """The Affine layer: ``out = x @ W + b``; x (N, K), W (K, D), b (D,), out (N, D)."""
    gemm(x, W, out)
    bias_activation(out, b, IDENTITY)


@jit
def affine_backward(dout, x, W, dW, db, dx):
    """The Affine layer's gradients: ``dW = x.T @ dout``, ``db = sum_rows(dout)``,
    ``dx = dout @ W.T`` (dx (N, K), dW (K, D), db (D,))."""
    column_sums(dout, db)
    gemm(x.T, dout, dW)
    gemm(dout, W.T, dx)


@jit
def affine_act_forward(x, W, b, act, out):
    """``out = act(x @ W + b)``; x (N, K), W (K, D), b (D,), out (N, D)."""
    gemm(x, W, out)
    bias_activation(out, b, act)


@jit
def affine_act_backward(dout, x, W, y, act, keep, dz, dW, db, dx):
    """Gradients of ``y = act(x @ W + b) * keep``.

    ``dz`` receives ``dout * act'(y) * keep`` (pass ``dout`` itself when act is the
    identity and ``keep`` empty), ``dW = x.T @ dz``, ``db = sum_rows(dz)`` and, if
    ``dx`` has rows, ``dx = dz @ W.T``.
    """
    activation_grad_colsum(dout, y, act, keep, dz, db)
    gemm(x.T, dz, dW)
    if dx.shape[0]:
        gemm(dz, W.T, dx)

