"""K nets of one architecture trained together: one call steps every member.

Member k's parameters, gradients and optimizer state are row k of ``(K, size)`` arenas
laid out as one net's (``fastnet.arena.NetLayout``); its running statistics are row k of
``running``.  Each member runs ``network.mlp_train_step`` on its own rows and then its
own optimizer update, with its own hyperparameters, one member after the other inside
this call: no Python between the K steps, and bitwise the arithmetic of one net's
``train_step`` with the same optimizer (the same kernels, scalars and order), so a
member that diverges leaves the others as they would be alone.

``x`` is ``(1, N, D)`` (every member on the same mini-batch) or ``(K, N, D)`` (one
mini-batch per member); ``labels`` likewise.  Or ``x`` is a whole training set
``(1, M, D)`` and each member gathers its own mini-batch's rows inside the call (a
sweep's members each follow their own data order), one member at a time into one
(N, D) buffer that stays in cache, instead of a (K, N, D) copy made beforehand.  The workspaces are one net's, reused by
each member in turn.  Every kernel steps or evaluates the members ``first`` to
``last - 1`` only, so that threads can share a population's members (each thread with
workspaces of its own, see ``fastnet.population``).

The optimizers (``OPTIMIZER_CODES``) and their per-member scalars ``hyper[k]`` are
those of ``fastnet.optimizers``' ``_begin_flat_step`` (Adam's bias-corrected step size
included), in the arenas' dtype; ``states`` is ``(S, K, size)``, S the optimizer's
number of state arrays (0 for SGD).  SGD steps inside the backward pass, as one net's
``train_step`` does: ``hyper[k] = (lr,)``.
"""
import numpy as np

from . import optimizers
from .jit import jit
from .network import mlp_cross_entropy, mlp_predict, mlp_predict_labels, mlp_train_step

SGD, MOMENTUM, NESTEROV, ADAGRAD, RMSPROP, ADAM, ADAMW = range(7)
OPTIMIZER_CODES = {"SGD": SGD, "Momentum": MOMENTUM, "Nesterov": NESTEROV,
                   "AdaGrad": ADAGRAD, "RMSprop": RMSPROP, "Adam": ADAM, "AdamW": ADAMW}


@jit
def update(kind, p, g, states, k, h, wd):
    """Member k's optimizer step over ``p``/``g`` (a slice of its arenas; ``states``
    sliced alike), scalars ``h``, L2 term ``wd`` folded into the gradient."""
    if kind == MOMENTUM:
        optimizers.momentum(p, g, states[0, k], h[0], h[1], wd)
    elif kind == NESTEROV:
        optimizers.nesterov(p, g, states[0, k], h[0], h[1], h[2], h[3], wd)
    elif kind == ADAGRAD:
        optimizers.adagrad(p, g, states[0, k], h[0], h[1], wd)
    elif kind == RMSPROP:
        optimizers.rmsprop(p, g, states[0, k], h[0], h[1], h[2], h[3], wd)
    elif kind == ADAM:
        optimizers.adam(p, g, states[0, k], states[1, k], h[0], h[1], h[2], h[3], wd)
    elif kind == ADAMW:
        optimizers.adamw(p, g, states[0, k], states[1, k], h[0], h[1], h[2], h[3], h[4],
                         h[5], h[6], wd)


@jit
def population_train_step(x, labels, rows, dims, layout, act, params, grads, running,
                          norm, bn_momenta, bn_eps, dropout_ratios, keys, kind, hyper, states,
                          weight_decay, n_decayed, acts, xns, stds, stats, masks, scratch,
                          logits, x_rows, label_rows, losses, first, last):
    """One training step of members ``first`` to ``last - 1``: ``losses[k]`` receives
    member k's mean cross-entropy (before its update, without the weight-decay term).

    ``rows`` is ``(0, 0)``, or ``(K, N)``: then member k's mini-batch is rows
    ``rows[k]`` of ``x[0]`` and ``labels[0]`` (a training set), gathered into the
    workspaces ``x_rows`` (N, D) and ``label_rows`` (N,) before its step.
    ``dropout_ratios`` and ``keys`` are ``(K, hidden layers)`` (``(K, 0)`` without
    dropout), ``weight_decay[k]`` member k's lambda; the rest as in the module doc and
    ``network.mlp_train_step``.
    """
    no_sgd = hyper[0, :0]
    sgd = np.empty(2, params.dtype)
    for k in range(first, last):
        if rows.shape[0]:
            for i in range(rows.shape[1]):
                row = rows[k, i]
                for j in range(x.shape[2]):  # a loop: a slice copy compiles slower
                    x_rows[i, j] = x[0, row, j]
                label_rows[i] = labels[0, row]
            xk, tk = x_rows, label_rows
        else:
            xk = x[k if x.shape[0] > 1 else 0]
            tk = labels[k if labels.shape[0] > 1 else 0]
        wd = weight_decay[k]
        p, g = params[k], grads[k]
        if kind == SGD:
            sgd[0] = hyper[k, 0]
            sgd[1] = wd
            losses[k] = mlp_train_step(xk, tk, dims, layout, act, p, g, running[k], norm,
                                       bn_momenta, bn_eps, dropout_ratios[k], keys[k], sgd,
                                       0.0, acts, xns, stds, stats, masks, scratch, logits)
            continue
        losses[k] = mlp_train_step(xk, tk, dims, layout, act, p, g, running[k], norm,
                                   bn_momenta, bn_eps, dropout_ratios[k], keys[k], no_sgd, 0.0,
                                   acts, xns, stds, stats, masks, scratch, logits)
        if wd:  # as ``update_flat``: the decayed weights, then the rest
            update(kind, p[:n_decayed], g[:n_decayed], states[:, :, :n_decayed], k,
                   hyper[k], wd)
            update(kind, p[n_decayed:], g[n_decayed:], states[:, :, n_decayed:], k,
                   hyper[k], wd - wd)  # a zero of the arenas' dtype (wd * 0 is float64)
        else:
            update(kind, p, g, states, k, hyper[k], wd)


@jit
def population_predict(x, dims, layout, act, params, running, norm, bn_eps, dropout_scales,
                       chunk, stds, scratch, out, first, last):
    """``out[k] = member k's logits`` in inference mode (``network.mlp_predict``) for k
    in ``first`` to ``last - 1``, ``x`` ``(1, N, D)`` or ``(K, N, D)``,
    ``dropout_scales`` ``(K, hidden layers)``."""
    for k in range(first, last):
        mlp_predict(x[k if x.shape[0] > 1 else 0], dims, layout, act, params[k], running[k],
                    norm, bn_eps, dropout_scales[k], chunk, stds, scratch, out[k])


@jit
def population_predict_labels(x, dims, layout, act, params, running, norm, bn_eps,
                              dropout_scales, chunk, stds, scratch, logits, out, first,
                              last):
    """``out[k] = argmax of member k's logits`` (``network.mlp_predict_labels``) for k in
    ``first`` to ``last - 1``."""
    for k in range(first, last):
        mlp_predict_labels(x[k if x.shape[0] > 1 else 0], dims, layout, act, params[k],
                           running[k], norm, bn_eps, dropout_scales[k], chunk, stds, scratch,
                           logits, out[k])


@jit
def population_cross_entropy(x, labels, dims, layout, act, params, running, norm, bn_eps,
                             dropout_scales, chunk, stds, scratch, logits, out, first, last):
    """``out[k] = member k's mean cross-entropy`` in inference mode
    (``network.mlp_cross_entropy``) for k in ``first`` to ``last - 1``, ``labels``
    ``(1, N)`` or ``(K, N)``."""
    for k in range(first, last):
        out[k] = mlp_cross_entropy(x[k if x.shape[0] > 1 else 0],
                                   labels[k if labels.shape[0] > 1 else 0], dims, layout,
                                   act, params[k], running[k], norm, bn_eps, dropout_scales[k],
                                   chunk, stds, scratch, logits)
