"""A whole multi-layer-perceptron training step (forward and backward) in one call.

The net is ``[Affine -> (BatchNorm) -> act -> (Dropout)] * (L-1) -> Affine ->
SoftmaxWithLoss``, the book's ``MultiLayerNetExtend``.  Parameters, gradients and
running statistics live in flat arenas; ``layout[l]`` holds the offsets of layer l's
``W, b, gamma, beta`` (into ``params``/``grads``) and ``running_mean, running_var``
(into ``running``).  Hidden activations, normalised values, stds and dropout masks live
in workspaces sized for the batch, laid out layer after layer.  Nothing is allocated
here but batch norm's small per-column and per-chunk arrays.

Dropout keeps ``h = y * mask`` in place of ``y``: wherever the mask keeps an element,
``h == y`` and the activation's gradient reads the same value.  Where it drops one,
``h == 0`` and the gradient must be zero: ReLU's and the sigmoid's gradients at 0 are
zero already, so only tanh (gradient 1 at 0) reads the mask in the backward pass.

Serial by design: BLAS (``blas.gemm``) owns the cores during the GEMMs, and every other
pass over these (batch x width) arrays is cheaper than waking a second thread pool.
"""
from . import optimizers
from .activations import IDENTITY, TANH
from .affine import activation_grad_colsum, affine_forward
from .batchnorm import batchnorm_backward, batchnorm_forward_train
from .blas import gemm, gemm_update
from .dropout import dropout_forward
from .jit import inline, jit
from .softmax import softmax_cross_entropy_grad

# The columns of ``layout``: offsets of each layer's arrays in the arenas.
W, B, GAMMA, BETA, RUNNING_MEAN, RUNNING_VAR = range(6)
LAYOUT_COLUMNS = 6


@inline
def view(arena, offset, rows, cols):
    return arena[offset:offset + rows * cols].reshape((rows, cols))


@jit
def mlp_train_step(x, labels, dims, layout, act, params, grads, running,
                   bn_momenta, bn_eps, dropout_ratios, keys, sgd, weight_decay,
                   acts, xns, stds, masks, scratch, logits):
    """Forward and backward of one mini-batch; returns the mean cross-entropy.

    ``grads`` receives every gradient; each weight matrix's has ``weight_decay * W``
    added (the book's ``gradient()``: pass the net's lambda), or none (pass 0 where the
    optimizer folds the decay into its own pass). With batch norm, ``bn_momenta[l]`` is
    hidden layer l's momentum and ``running`` is updated; without, ``bn_momenta`` is
    empty. With dropout, ``dropout_ratios[l]`` and ``keys[l]`` are hidden layer l's ratio
    and stream key; without, both are empty. ``sgd`` is empty, or ``(lr, weight_decay)``
    (``weight_decay`` is then not read) to apply the book's SGD in the backward
    pass: each weight matrix then takes its step inside the GEMM that would have made
    its gradient, ``W = (1 - lr wd) W - lr h^T dz`` (BLAS's ``beta = 1``), and that
    gradient is never written to ``grads``; biases, gammas and betas get their gradients
    and then ``p -= lr g``. ``scratch`` (2, N * widest hidden layer) holds what a hidden
    layer computes before its activation in the forward pass, and the back-propagated
    gradients in the backward pass, so that no pass reads and writes one buffer through
    two names (such a pass does not vectorise); ``logits`` ends holding
    d(loss)/d(logits).
    """
    n = x.shape[0]
    n_layers = dims.size - 1
    bn = bn_momenta.size > 0
    dropout = keys.size > 0
    h = x
    offset = 0
    std_offset = 0
    for l in range(n_layers - 1):
        d_in, d = dims[l], dims[l + 1]
        w = view(params, layout[l, W], d_in, d)
        b = params[layout[l, B]:layout[l, B] + d]
        out = view(acts, offset, n, d)
        # out = act(z) (* mask) with z = h W + b, normalised with batch norm; the
        # activation goes into the last pass before dropout, dropout into its own
        z = view(scratch[0], 0, n, d) if bn or dropout else out
        affine_forward(h, w, b, IDENTITY if bn or dropout else act, z)
        if bn:
            y = view(scratch[1], 0, n, d) if dropout else out
            batchnorm_forward_train(
                z, params[layout[l, GAMMA]:layout[l, GAMMA] + d],
                params[layout[l, BETA]:layout[l, BETA] + d], bn_eps, bn_momenta[l],
                running[layout[l, RUNNING_MEAN]:layout[l, RUNNING_MEAN] + d],
                running[layout[l, RUNNING_VAR]:layout[l, RUNNING_VAR] + d],
                IDENTITY if dropout else act, view(xns, offset, n, d),
                stds[std_offset:std_offset + d], y)
            z = y
        if dropout:
            dropout_forward(z.reshape(n * d), act, keys[l], dropout_ratios[l],
                            masks[offset:offset + n * d], acts[offset:offset + n * d])
        h = out
        offset += n * d
        std_offset += d

    last = n_layers - 1
    w = view(params, layout[last, W], dims[last], dims[last + 1])
    affine_forward(h, w, params[layout[last, B]:layout[last, B] + dims[last + 1]], 0, logits)
    loss = softmax_cross_entropy_grad(logits, labels, 1.0 / n, logits)

    no_mask = masks[:0]
    dz = logits
    dh_row = 0  # the scratch row that receives d(loss)/d(output of the layer below)
    for l in range(n_layers - 1, -1, -1):
        d_in, d = dims[l], dims[l + 1]
        gb = grads[layout[l, B]:layout[l, B] + d]
        if l < n_layers - 1:
            offset -= n * d
            std_offset -= d
            dh = view(scratch[dh_row], 0, n, d)
            dz = view(scratch[1 - dh_row], 0, n, d)
            keep = masks[offset:offset + n * d] if act == TANH else no_mask
            activation_grad_colsum(dh, view(acts, offset, n, d), act, keep, dz, gb)
            if bn:  # through the normalisation, back into the row dh is done with
                batchnorm_backward(
                    dz, view(xns, offset, n, d), stds[std_offset:std_offset + d],
                    params[layout[l, GAMMA]:layout[l, GAMMA] + d],
                    grads[layout[l, GAMMA]:layout[l, GAMMA] + d],
                    grads[layout[l, BETA]:layout[l, BETA] + d], dh)
                dz = dh
                activation_grad_colsum(dz, dz, IDENTITY, no_mask, dz, gb)
                dh_row = 1 - dh_row
        else:
            activation_grad_colsum(dz, dz, IDENTITY, no_mask, dz, gb)
        h_in = x if l == 0 else view(acts, offset - n * d_in, n, d_in)
        w = view(params, layout[l, W], d_in, d)
        if l > 0:
            gemm(dz, w.T, view(scratch[dh_row], 0, n, d_in))
        if sgd.size:  # after dx, which needs the old W
            lr, no_decay = sgd[0], sgd[0] * 0
            gemm_update(h_in.T, dz, -lr, 1 - lr * sgd[1], w)
            optimizers.sgd(params[layout[l, B]:layout[l, B] + d], gb, lr, no_decay)
            if bn and l < n_layers - 1:
                for column in (GAMMA, BETA):
                    optimizers.sgd(params[layout[l, column]:layout[l, column] + d],
                                   grads[layout[l, column]:layout[l, column] + d], lr, no_decay)
        elif weight_decay:  # gW = wd W + h^T dz: BLAS's beta = 1 adds the product
            gw = view(grads, layout[l, W], d_in, d)
            for i in range(d_in):
                for j in range(d):
                    gw[i, j] = weight_decay * w[i, j]
            gemm_update(h_in.T, dz, 1.0, 1.0, gw)
        else:
            gemm(h_in.T, dz, view(grads, layout[l, W], d_in, d))
    return loss
