"""Element-wise activations: scalar helpers fused into other kernels, and the passes
behind the stand-alone ``Relu``, ``Sigmoid`` and ``Tanh`` layers.

Gradients are written in terms of the activation's *output* ``y`` (what a forward pass
keeps): ReLU ``y > 0``, sigmoid ``y (1 - y)``, tanh ``1 - y^2``.
"""
import math

from numba import prange

from .jit import inline, serial_and_parallel

IDENTITY, RELU, SIGMOID, TANH = 0, 1, 2, 3
CODES = {"identity": IDENTITY, "relu": RELU, "sigmoid": SIGMOID, "tanh": TANH}


@inline
def relu(s):
    """The book's ReLU of one value, ``x[x <= 0] = 0``: 0 for -inf too (``s * 0`` would
    be NaN), NaN stays NaN."""
    return 0 if s <= 0 else s  # noqa: FURB136 (max(0, s) drops a NaN)


@inline
def activate(s, act):
    if act == RELU:
        return relu(s)
    if act == SIGMOID:
        return 1 / (1 + math.exp(-s))
    if act == TANH:
        return math.tanh(s)
    return s


@inline
def activation_grad(y, act):
    if act == RELU:
        return 1 if y > 0 else 0
    if act == SIGMOID:
        return y * (1 - y)
    if act == TANH:
        return 1 - y * y
    return 1


@inline
def activate_row(z, i, act):
    """``z[i] = act(z[i])`` in place, for one row of a 2-D array.

    The activation is branched on once, outside the loop: a loop that tests ``act``
    per element is left unvectorised by LLVM inside a large kernel.
    """
    if act == RELU:
        for j in range(z.shape[1]):
            z[i, j] = relu(z[i, j])
    elif act != IDENTITY:
        for j in range(z.shape[1]):
            z[i, j] = activate(z[i, j], act)


@serial_and_parallel
def relu_forward(x, out, mask):
    """``mask = x <= 0``; ``out = x`` with the masked entries zeroed (flat arrays)."""
    for i in prange(x.size):
        mask[i] = x[i] <= 0
        out[i] = 0 if mask[i] else x[i]


@serial_and_parallel
def relu_backward(dout, mask, dx):
    """``dx = dout`` with the entries where ``mask`` (``relu_forward``'s) zeroed."""
    for i in prange(dout.size):
        dx[i] = 0 if mask[i] else dout[i]


@inline
def activate_each(x, act, out):
    """``out = act(x)`` element-wise over flat arrays (the ``prange`` loop, inlined, runs
    in parallel in the callers' parallel builds)."""
    for i in prange(x.size):
        out[i] = activate(x[i], act)


@inline
def activation_grad_each(dout, y, act, dx):
    """``dx = dout * act'(y)`` element-wise over flat arrays, ``y`` the forward output."""
    for i in prange(dout.size):
        dx[i] = dout[i] * activation_grad(y[i], act)


@serial_and_parallel
def sigmoid_forward(x, out):
    """``out = 1 / (1 + exp(-x))`` (flat arrays)."""
    activate_each(x, SIGMOID, out)


@serial_and_parallel
def tanh_forward(x, out):
    """``out = tanh(x)`` (flat arrays)."""
    activate_each(x, TANH, out)


@serial_and_parallel
def sigmoid_backward(dout, out, dx):
    """``dx = dout * (1 - out) * out`` with ``out`` the forward's (flat arrays)."""
    activation_grad_each(dout, out, SIGMOID, dx)


@serial_and_parallel
def tanh_backward(dout, out, dx):
    """``dx = dout * (1 - out**2)`` with ``out`` the forward's (flat arrays)."""
    activation_grad_each(dout, out, TANH, dx)
