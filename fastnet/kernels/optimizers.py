"""Fused optimizer updates: one pass over flat (1-D) arrays that reads the parameter,
its gradient and the optimizer state once and writes them once.

Every kernel takes ``wd``, an L2 weight decay folded into the gradient,
``g = grad + wd * p``; pass 0 for none.  Scalars arrive in the arrays' dtype, and the
coefficients that combine hyperparameters (``1 - b1``, ``(1 + mu) lr``...) are formed by
the caller, as the NumPy reference forms them in Python, so float32 updates run in
float32 and round like the reference.  The formulas are the book's:

    SGD       p -= lr g
    Momentum  v = mu v - lr g;  p += v
    Nesterov  p += mu^2 v;  p -= (1 + mu) lr g;  v = mu v - lr g
    AdaGrad   h += g^2;  p -= lr g / (sqrt(h) + eps)
    RMSprop   h = rho h + (1 - rho) g^2;  p -= lr g / (sqrt(h) + eps)
    Adam      m += (1 - b1)(g - m);  v += (1 - b2)(g^2 - v);  p -= lr_t m / (sqrt(v) + eps)
              with lr_t = lr sqrt(1 - b2^t) / (1 - b1^t), computed by the caller
    AdamW     m += (1 - b1)(g - m);  v += (1 - b2)(g^2 - v);
              p -= lr (m / c1 / (sqrt(v / c2) + eps) + decay p)
              with c1 = 1 - b1^t, c2 = 1 - b2^t (Loshchilov and Hutter's decoupled decay,
              not through g; ``wd`` is still the L2 term folded into g)
"""
import math

from numba import prange

from .jit import serial_and_parallel


@serial_and_parallel
def sgd(p, g, lr, wd):
    for i in prange(p.size):
        p[i] -= lr * (g[i] + wd * p[i])


@serial_and_parallel
def momentum(p, g, v, lr, mu, wd):
    for i in prange(p.size):
        v[i] = mu * v[i] - lr * (g[i] + wd * p[i])
        p[i] += v[i]


@serial_and_parallel
def nesterov(p, g, v, lr, mu, mu_squared, lr_times_one_plus_mu, wd):
    for i in prange(p.size):
        gi = g[i] + wd * p[i]
        p[i] += mu_squared * v[i]
        p[i] -= lr_times_one_plus_mu * gi
        v[i] = mu * v[i] - lr * gi


@serial_and_parallel
def adagrad(p, g, h, lr, eps, wd):
    for i in prange(p.size):
        gi = g[i] + wd * p[i]
        h[i] += gi * gi
        p[i] -= lr * gi / (math.sqrt(h[i]) + eps)


@serial_and_parallel
def rmsprop(p, g, h, lr, rho, one_minus_rho, eps, wd):
    for i in prange(p.size):
        gi = g[i] + wd * p[i]
        h[i] = rho * h[i] + one_minus_rho * gi * gi
        p[i] -= lr * gi / (math.sqrt(h[i]) + eps)


@serial_and_parallel
def adam(p, g, m, v, lr_t, one_minus_beta1, one_minus_beta2, eps, wd):
    for i in prange(p.size):
        gi = g[i] + wd * p[i]
        m[i] += one_minus_beta1 * (gi - m[i])
        v[i] += one_minus_beta2 * (gi * gi - v[i])
        p[i] -= lr_t * m[i] / (math.sqrt(v[i]) + eps)


@serial_and_parallel
def adamw(p, g, m, v, lr, one_minus_beta1, one_minus_beta2, correction1, correction2, eps,
          decay, wd):
    for i in prange(p.size):
        gi = g[i] + wd * p[i]
        m[i] += one_minus_beta1 * (gi - m[i])
        v[i] += one_minus_beta2 * (gi * gi - v[i])
        p[i] -= lr * (m[i] / correction1 / (math.sqrt(v[i] / correction2) + eps) + decay * p[i])
