"""A whole multi-layer-perceptron training step (forward and backward) in one call, its
central-difference gradient (``mlp_numerical_gradient``) and its inference forward pass
(``mlp_predict``, ``mlp_predict_labels``, ``mlp_cross_entropy``).

The net is ``[Affine -> (BatchNorm, GroupNorm or SwitchNorm) -> act -> (Dropout)] * (L-1)
-> Affine -> SoftmaxWithLoss``, the book's ``MultiLayerNetExtend`` (``norm``: ``NO_NORM``,
``BATCH_NORM``, ``GROUP_NORM`` or ``SWITCHABLE_NORM``).  ``GROUP_NORM`` is the family of
``normalization.group_norm_forward``: hidden layer l's D units viewed as
``layout[l, GROUPS]`` groups of D / groups values, each channel of them
``layout[l, POSITIONS]`` positions long, with one gamma and beta per channel:

* layer norm: one group, one position (gamma, beta: D);
* group norm (``groups=G``): G groups, one position (gamma, beta: D);
* instance norm (``groups=G``): G groups of one channel of D / G positions (gamma,
  beta: G).

``SWITCHABLE_NORM`` is ``normalization.switchable_forward_train`` (``_infer``,
``switchable_backward``) on the D units, channels of one position: the layer and the
batch statistics mixed by the softmax of the logits ``mean_weight``, ``var_weight`` (2,),
with running statistics as batch norm's.

Parameters, gradients and running statistics live in flat arenas; ``layout[l]`` holds
the offsets of layer l's ``W, b, gamma, beta`` and switchable norm's ``mean_weight,
var_weight`` (into ``params``/``grads``), ``running_mean, running_var`` (into
``running``), and the group-norm family's groups and positions.  Hidden activations,
normalised values, stds, switchable norm's float64 statistics and dropout masks live in
workspaces sized for the batch, laid out layer after layer (the group-norm family's
stds: one per sample and group).  Nothing is allocated here but the normalizations'
small per-column, per-group and per-chunk arrays (switchable norm's backward: a few of
batch x width).

Dropout keeps ``h = y * mask`` in place of ``y``: wherever the mask keeps an element,
``h == y`` and the activation's gradient reads the same value.  Where it drops one,
``h == 0`` and the gradient must be zero: ReLU's and the sigmoid's gradients at 0 are
zero already, so only tanh (gradient 1 at 0) reads the mask in the backward pass.

Inference runs ``chunk`` rows at a time through two scratch rows of (chunk x widest
hidden layer), so that a 10,000-image test set needs no more workspace than a batch.

Serial by design: BLAS (``blas.gemm``) owns the cores during the GEMMs, and every other
pass over these (batch x width) arrays is cheaper than waking a second thread pool.
"""
import math

import numpy as np

from . import optimizers
from .activations import IDENTITY, TANH, activate_row
from .affine import activation_grad_colsum, affine_act_forward, bias_activation
from .batchnorm import (
    batchnorm_act_forward_train,
    batchnorm_backward,
    batchnorm_infer_act,
)
from .blas import gemm, gemm_update
from .dropout import activation_dropout_forward
from .jit import inline, jit
from .normalization import (
    group_norm_backward,
    group_norm_forward,
    switchable_backward,
    switchable_forward_infer,
    switchable_forward_train,
)
from .softmax import LOG_EPS, softmax_cross_entropy_grad, softmax_row

# The columns of ``layout``: offsets of each layer's arrays in the arenas, the
# group-norm family's groups and positions per channel, then the offsets of switchable
# norm's mixing logits (zeros where a norm has no such array)
(W, B, GAMMA, BETA, RUNNING_MEAN, RUNNING_VAR, GROUPS, POSITIONS, MEAN_WEIGHT,
 VAR_WEIGHT) = range(10)
LAYOUT_COLUMNS = 10
# The normalization after each hidden Affine: layer, group and instance norm are one
# kernel (``GROUP_NORM``), told apart by ``layout``'s groups and positions
NO_NORM, BATCH_NORM, GROUP_NORM, SWITCHABLE_NORM = range(4)
NORM_CODES = {None: NO_NORM, "batch": BATCH_NORM, "layer": GROUP_NORM, "group": GROUP_NORM,
              "instance": GROUP_NORM, "switchable": SWITCHABLE_NORM}
MIXED = 2  # switchable norm's mixing logits per layer: (layer, batch)


@inline
def view(arena, offset, rows, cols):
    return arena[offset:offset + rows * cols].reshape((rows, cols))


@inline
def grouped(rows, groups):
    """``rows`` (N, D) viewed as (N, groups, D / groups)."""
    n, d = rows.shape
    return rows.reshape((n, groups, d // groups))


@inline
def activate_rows(out, act):
    """``out = act(out)`` in place, row by row (``activations.activate_row``)."""
    for i in range(out.shape[0]):
        activate_row(out, i, act)


@inline
def group_norm_rows(z, groups, positions, gamma, beta, eps, xn, std, act, out):
    """``out = act(gamma (z - mean) / std + beta)`` over each of the ``groups`` groups of
    each row of ``z`` (N, D), channels of ``positions`` values each (see the module
    docstring); ``xn`` (N, D) and ``std`` (N * groups,) kept."""
    n = z.shape[0]
    group_norm_forward(grouped(z, groups), positions, gamma, beta, eps, grouped(xn, groups),
                       std.reshape((n, groups)), grouped(out, groups))
    activate_rows(out, act)


@inline
def std_width(norm, layout, l, n, d):
    """Hidden layer l's entries in the ``stds`` workspace: per feature (batch norm), per
    sample and group (the group-norm family)."""
    return n * layout[l, GROUPS] if norm == GROUP_NORM else d


@inline
def norm_width(norm, layout, l, d):
    """The length of hidden layer l's gamma and beta: one per channel (D / positions) in
    the group-norm family, one per feature in batch norm."""
    return d // layout[l, POSITIONS] if norm == GROUP_NORM else d


@inline
def switchable_stats_width(norm, n, d):
    """A hidden layer's entries in the ``stats`` workspace (float64), for ``n`` rows of
    ``d`` units: switchable norm's instance (2, N, D), layer (2, N) and batch (2, D)
    statistics, mixed means and stds (N, D) each and mixing weights (2, 3); none for the
    other norms."""
    return 4 * n * d + 2 * n + 2 * d + 6 if norm == SWITCHABLE_NORM else 0


@inline
def switchable_stats(stats, offset, n, d):
    """Views of ``switchable_stats_width``'s arrays from ``stats[offset]``."""
    inst = stats[offset:offset + 2 * n * d].reshape((2, n, d))
    offset += 2 * n * d
    layer = stats[offset:offset + 2 * n].reshape((2, n))
    offset += 2 * n
    batch = stats[offset:offset + 2 * d].reshape((2, d))
    offset += 2 * d
    mean = view(stats, offset, n, d)
    std = view(stats, offset + n * d, n, d)
    weights = view(stats, offset + 2 * n * d, 2, 3)
    return inst, layer, batch, mean, std, weights


@inline
def mixing_weights(params, layout, l, weights):
    """``weights[0]``, ``weights[1]``: the (instance, layer, batch) weights of switchable
    norm's mean and variance in hidden layer l, ``(0, softmax(logits))`` in float64 (a
    unit has no positions, hence no instance statistics)."""
    for row, column in enumerate((MEAN_WEIGHT, VAR_WEIGHT)):
        logits = params[layout[l, column]:layout[l, column] + MIXED]
        top = max(logits[0], logits[1])
        e_layer = math.exp(np.float64(logits[0]) - top)
        e_batch = math.exp(np.float64(logits[1]) - top)
        weights[row, 0] = 0.0
        weights[row, 1] = e_layer / (e_layer + e_batch)
        weights[row, 2] = e_batch / (e_layer + e_batch)


@inline
def mixing_logit_grads(weights, dweights, grads, layout, l):
    """The gradients of hidden layer l's mixing logits from those of its weights,
    softmax's backward ``d logit_k = w_k (dw_k - sum_j w_j dw_j)``."""
    for row, column in enumerate((MEAN_WEIGHT, VAR_WEIGHT)):
        w, dw = weights[row], dweights[row]
        dot = w[0] * dw[0] + w[1] * dw[1] + w[2] * dw[2]
        for k in range(MIXED):
            grads[layout[l, column] + k] = w[k + 1] * (dw[k + 1] - dot)


@inline
def train_forward(x, labels, dims, layout, act, params, running, norm, momenta, bn_eps,
                  dropout_ratios, keys, acts, xns, stds, stats, masks, scratch, logits,
                  start, product):
    """The forward pass of ``mlp_train_step`` (arguments as there): returns the mean
    cross-entropy, leaves d(loss)/d(logits) in ``logits`` and, in the workspaces, what
    the backward pass reads.

    From layer ``start`` on (0: the whole pass), with ``product`` (N, dims[start + 1])
    standing for that layer's ``h @ W`` (an empty array, only with ``start`` 0: the
    GEMM); the layers below leave their entries of the workspaces as they are."""
    n = x.shape[0]
    n_layers = dims.size - 1
    bn = norm == BATCH_NORM
    normed = norm != NO_NORM
    dropout = keys.size > 0
    given = product.shape[0] > 0
    h = x
    offset = 0
    std_offset = 0
    stats_offset = 0
    for l in range(n_layers - 1):
        d_in, d = dims[l], dims[l + 1]
        if l < start:
            offset += n * d
            std_offset += std_width(norm, layout, l, n, d)
            stats_offset += switchable_stats_width(norm, n, d)
            continue
        w = view(params, layout[l, W], d_in, d)
        b = params[layout[l, B]:layout[l, B] + d]
        out = view(acts, offset, n, d)
        # out = act(z) (* mask) with z = h W + b, normalised; the activation goes into
        # the last pass before dropout, dropout into its own
        z = view(scratch[0], 0, n, d) if normed or dropout else out
        if l == start and given:
            z[:, :] = product
            bias_activation(z, b, IDENTITY if normed or dropout else act)
        else:
            affine_act_forward(h, w, b, IDENTITY if normed or dropout else act, z)
        if norm == GROUP_NORM:
            y = view(scratch[1], 0, n, d) if dropout else out
            width = norm_width(norm, layout, l, d)
            group_norm_rows(z, layout[l, GROUPS], layout[l, POSITIONS],
                            params[layout[l, GAMMA]:layout[l, GAMMA] + width],
                            params[layout[l, BETA]:layout[l, BETA] + width], bn_eps,
                            view(xns, offset, n, d),
                            stds[std_offset:std_offset + std_width(norm, layout, l, n, d)],
                            IDENTITY if dropout else act, y)
            z = y
        if norm == SWITCHABLE_NORM:
            y = view(scratch[1], 0, n, d) if dropout else out
            inst, layer, batch, mean, std, weights = switchable_stats(stats, stats_offset, n, d)
            mixing_weights(params, layout, l, weights)
            # one position per unit, an int64: see the last layer's call below
            switchable_forward_train(
                z, np.int64(1), params[layout[l, GAMMA]:layout[l, GAMMA] + d],
                params[layout[l, BETA]:layout[l, BETA] + d], weights[0], weights[1], bn_eps,
                momenta[l], running[layout[l, RUNNING_MEAN]:layout[l, RUNNING_MEAN] + d],
                running[layout[l, RUNNING_VAR]:layout[l, RUNNING_VAR] + d], inst, layer, batch,
                mean, std, view(xns, offset, n, d), y)
            activate_rows(y, IDENTITY if dropout else act)
            z = y
        if bn:
            y = view(scratch[1], 0, n, d) if dropout else out
            batchnorm_act_forward_train(
                z, params[layout[l, GAMMA]:layout[l, GAMMA] + d],
                params[layout[l, BETA]:layout[l, BETA] + d], bn_eps, momenta[l],
                running[layout[l, RUNNING_MEAN]:layout[l, RUNNING_MEAN] + d],
                running[layout[l, RUNNING_VAR]:layout[l, RUNNING_VAR] + d],
                IDENTITY if dropout else act, view(xns, offset, n, d),
                stds[std_offset:std_offset + d], y)
            z = y
        if dropout:
            activation_dropout_forward(z.reshape(n * d), act, keys[l], dropout_ratios[l],
                                       z.dtype.type(1), masks[offset:offset + n * d],
                                       acts[offset:offset + n * d])
        h = out
        offset += n * d
        std_offset += std_width(norm, layout, l, n, d)
        stats_offset += switchable_stats_width(norm, n, d)

    last = n_layers - 1
    w = view(params, layout[last, W], dims[last], dims[last + 1])
    b = params[layout[last, B]:layout[last, B] + dims[last + 1]]
    # An int64, not the literal 0: a literal argument compiles a second affine_act_forward
    # (about a second of a cold start) beside the one Python's calls use.
    if start == last and given:
        logits[:, :] = product
        bias_activation(logits, b, np.int64(IDENTITY))
    else:
        affine_act_forward(h, w, b, np.int64(IDENTITY), logits)
    return softmax_cross_entropy_grad(logits, labels, 1.0 / n, logits)


@jit
def mlp_train_step(x, labels, dims, layout, act, params, grads, running, norm,
                   momenta, bn_eps, dropout_ratios, keys, sgd, weight_decay,
                   acts, xns, stds, stats, masks, scratch, logits):
    """Forward and backward of one mini-batch; returns the mean cross-entropy.

    ``grads`` receives every gradient; each weight matrix's has ``weight_decay * W``
    added (the book's ``gradient()``: pass the net's lambda), or none (pass 0 where the
    optimizer folds the decay into its own pass). ``norm`` is the hidden layers'
    normalization, ``bn_eps`` its epsilon. With batch or switchable norm, ``momenta[l]``
    is hidden layer l's momentum of the running statistics and ``running`` is updated;
    without, ``momenta`` is empty. ``stats`` (float64) holds switchable norm's
    statistics, layer after layer (``switchable_stats_width``), and is empty for the
    other norms. With dropout, ``dropout_ratios[l]`` and ``keys[l]`` are hidden layer
    l's ratio and stream key; without, both are empty. ``sgd`` is empty, or ``(lr,
    weight_decay)`` (``weight_decay`` is then not read) to apply the book's SGD in the
    backward pass: each weight matrix then takes its step inside the GEMM that would
    have made its gradient, ``W = (1 - lr wd) W - lr h^T dz`` (BLAS's ``beta = 1``),
    and that gradient is never written to ``grads``; biases, gammas, betas and mixing
    logits get their gradients and then ``p -= lr g``. ``scratch`` (2, N * widest
    hidden layer) holds what a hidden
    layer computes before its activation in the forward pass, and the back-propagated
    gradients in the backward pass, so that no pass reads and writes one buffer through
    two names (such a pass does not vectorise); ``logits`` ends holding
    d(loss)/d(logits).
    """
    n = x.shape[0]
    n_layers = dims.size - 1
    normed = norm != NO_NORM
    loss = train_forward(x, labels, dims, layout, act, params, running, norm, momenta,
                         bn_eps, dropout_ratios, keys, acts, xns, stds, stats, masks, scratch,
                         logits, 0, logits[:0])
    offset = 0  # past the last hidden layer's entries in the workspaces
    std_offset = 0
    stats_offset = 0
    for l in range(n_layers - 1):
        offset += n * dims[l + 1]
        std_offset += std_width(norm, layout, l, n, dims[l + 1])
        stats_offset += switchable_stats_width(norm, n, dims[l + 1])

    no_mask = masks[:0]
    dz = logits
    dh_row = 0  # the scratch row that receives d(loss)/d(output of the layer below)
    for l in range(n_layers - 1, -1, -1):
        d_in, d = dims[l], dims[l + 1]
        gb = grads[layout[l, B]:layout[l, B] + d]
        if l < n_layers - 1:
            offset -= n * d
            std_offset -= std_width(norm, layout, l, n, d)
            stats_offset -= switchable_stats_width(norm, n, d)
            dh = view(scratch[dh_row], 0, n, d)
            dz = view(scratch[1 - dh_row], 0, n, d)
            keep = masks[offset:offset + n * d] if act == TANH else no_mask
            activation_grad_colsum(dh, view(acts, offset, n, d), act, keep, dz, gb)
            width = norm_width(norm, layout, l, d)
            gamma = params[layout[l, GAMMA]:layout[l, GAMMA] + width]
            dgamma = grads[layout[l, GAMMA]:layout[l, GAMMA] + width]
            dbeta = grads[layout[l, BETA]:layout[l, BETA] + width]
            # through the normalisation, back into the row dh is done with
            if norm == BATCH_NORM:
                batchnorm_backward(dz, view(xns, offset, n, d),
                                   stds[std_offset:std_offset + d], gamma, dgamma, dbeta, dh)
            elif norm == GROUP_NORM:
                groups = layout[l, GROUPS]
                group_norm_backward(grouped(dz, groups), layout[l, POSITIONS],
                                    grouped(view(xns, offset, n, d), groups),
                                    stds[std_offset:std_offset + n * groups].reshape(
                                        (n, groups)),
                                    gamma, dgamma, dbeta, grouped(dh, groups))
            elif norm == SWITCHABLE_NORM:
                inst, layer, batch, mean, std, weights = switchable_stats(stats, stats_offset,
                                                                          n, d)
                dweights = np.empty((2, 3))
                switchable_backward(dz, np.int64(1), view(xns, offset, n, d), gamma,
                                    weights[0], weights[1], inst, layer, batch, mean, std,
                                    dgamma, dbeta, dweights[0], dweights[1], dh)
                mixing_logit_grads(weights, dweights, grads, layout, l)
            if normed:
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
            if normed and l < n_layers - 1:
                width = norm_width(norm, layout, l, d)
                for column in (GAMMA, BETA):
                    optimizers.sgd(params[layout[l, column]:layout[l, column] + width],
                                   grads[layout[l, column]:layout[l, column] + width], lr,
                                   no_decay)
            if norm == SWITCHABLE_NORM and l < n_layers - 1:
                for column in (MEAN_WEIGHT, VAR_WEIGHT):
                    optimizers.sgd(params[layout[l, column]:layout[l, column] + MIXED],
                                   grads[layout[l, column]:layout[l, column] + MIXED], lr,
                                   no_decay)
        elif weight_decay:  # gW = wd W + h^T dz: BLAS's beta = 1 adds the product
            gw = view(grads, layout[l, W], d_in, d)
            for i in range(d_in):
                for j in range(d):
                    gw[i, j] = weight_decay * w[i, j]
            gemm_update(h_in.T, dz, 1.0, 1.0, gw)
        else:
            gemm(h_in.T, dz, view(grads, layout[l, W], d_in, d))
    return loss



@jit
def mlp_numerical_gradient(x, labels, dims, layout, act, params, running, norm, momenta,
                           bn_eps, dropout_ratios, keys, weight_decay, n_decayed, h,
                           acts, xns, stds, stats, masks, scratch, logits, grads):
    """``grads[i] = (L(p + h e_i) - L(p - h e_i)) / 2h`` for every element ``i`` of
    ``params`` (the book's central differences), ``L`` the training loss of
    ``train_forward`` plus ``0.5 weight_decay sum(W^2)`` over the first ``n_decayed``
    elements (the weights).  Other arguments as in ``mlp_train_step``; every evaluation
    uses the same dropout ``keys`` and updates ``running`` (pass a copy); each element of
    ``params`` is restored exactly after its two evaluations.

    An evaluation runs from the layer of the element it moves, on that layer's input
    and ``h @ W`` from one pass with nothing moved (the layers below do not change): an
    element of b, gamma, beta or the mixing logits leaves ``h @ W`` as it is, and
    ``W[r, j]`` moved by ``delta`` adds ``delta * h[:, r]`` to its column j.  So no
    evaluation runs its own layer's GEMM, which for MNIST's first layer is most of a
    pass.  (The last bits of a moved W's loss may differ from a whole pass's GEMM:
    about 1e-16 of the loss, far below central differences' own error.)"""
    n = x.shape[0]
    n_layers = dims.size - 1
    # the unmoved pass: each hidden layer's output (the next one's input), then h @ W
    train_forward(x, labels, dims, layout, act, params, running, norm, momenta, bn_eps,
                  dropout_ratios, keys, acts, xns, stds, stats, masks, scratch, logits, 0,
                  logits[:0])
    inputs = acts.copy()
    products = np.empty(n * dims[1:].sum(), params.dtype)
    input_at = np.zeros(n_layers, np.int64)  # layer l's input in ``inputs`` (l > 0)
    product_at = np.zeros(n_layers, np.int64)
    for l in range(1, n_layers):
        input_at[l] = input_at[l - 1] + (n * dims[l - 1] if l > 1 else 0)
        product_at[l] = product_at[l - 1] + n * dims[l]
    for l in range(n_layers):
        h_in = x if l == 0 else view(inputs, input_at[l], n, dims[l])
        gemm(h_in, view(params, layout[l, W], dims[l], dims[l + 1]),
             view(products, product_at[l], n, dims[l + 1]))
    # each array's first element and layer, in the arena's order: an element belongs
    # to the array that starts last at or before it
    arrays = [(layout[l, W], l) for l in range(n_layers)]
    arrays += [(layout[l, B], l) for l in range(n_layers)]
    if norm != NO_NORM:
        arrays += [(layout[l, column], l) for l in range(n_layers - 1)
                   for column in (GAMMA, BETA)]
    if norm == SWITCHABLE_NORM:
        arrays += [(layout[l, column], l) for l in range(n_layers - 1)
                   for column in (MEAN_WEIGHT, VAR_WEIGHT)]
    arrays.sort()
    moved = np.empty(n * dims[1:].max(), params.dtype)
    squares = 0.0
    for i in range(n_decayed):
        squares += params[i] * params[i]
    owner = -1
    for i in range(params.size):
        while owner + 1 < len(arrays) and arrays[owner + 1][0] <= i:
            owner += 1
        l = arrays[owner][1] if owner >= 0 else -1  # -1: not a parameter, a whole pass
        saved = params[i]
        plus = minus = 0.0
        for sign in (1.0, -1.0):
            params[i] = saved + sign * h
            start, product = 0, view(moved, 0, 0, 0)
            if l >= 0:
                d = dims[l + 1]
                start, product = l, view(moved, 0, n, d)
                product[:, :] = view(products, product_at[l], n, d)
                at = i - layout[l, W]
                if 0 <= at < dims[l] * d:
                    delta = params[i] - saved
                    h_in = x if l == 0 else view(inputs, input_at[l], n, dims[l])
                    for k in range(n):
                        product[k, at % d] += delta * h_in[k, at // d]
            loss = train_forward(x, labels, dims, layout, act, params, running, norm,
                                 momenta, bn_eps, dropout_ratios, keys, acts, xns, stds,
                                 stats, masks, scratch, logits, start, product)
            if sign > 0:
                plus = loss
            else:
                minus = loss
        params[i] = saved
        if weight_decay and i < n_decayed:  # the other entries' squares cancel
            others = squares - saved * saved
            plus += 0.5 * weight_decay * (others + (saved + h) * (saved + h))
            minus += 0.5 * weight_decay * (others + (saved - h) * (saved - h))
        grads[i] = (plus - minus) / (2 * h)

# ------------------------------------------------------------------ inference

@jit  # not inlined: compiled once for predict, predict_labels and cross_entropy
def infer_chunk(x, dims, layout, act, params, running, norm, eps, dropout_scales, stds,
                scratch, logits):
    """``logits = net(x)`` in inference mode for the rows of ``x`` (at most a chunk):
    batch norm with the running statistics (``stds`` already holds ``sqrt(var + eps)``),
    the group-norm family or switchable norm (the running statistics in place of the
    batch's), the activation, dropout's ``* (1 - ratio)``
    (``dropout_scales``, empty for none).

    Activations ping-pong between the two rows of ``scratch``: an affine layer writes
    the row its input is not in; batch norm then writes back into the input's row, free
    once the GEMM has read it, so that no pass reads and writes one buffer.
    """
    n = x.shape[0]
    n_layers = dims.size - 1
    normed = norm != NO_NORM
    h = x
    cur = 0  # the scratch row holding h (for the first layer: free)
    std_offset = 0
    for l in range(n_layers - 1):
        d_in, d = dims[l], dims[l + 1]
        w = view(params, layout[l, W], d_in, d)
        b = params[layout[l, B]:layout[l, B] + d]
        z = view(scratch[1 - cur], 0, n, d)
        affine_act_forward(h, w, b, IDENTITY if normed else act, z)
        if norm == GROUP_NORM:  # xn is not kept: out receives it, then the output
            out = view(scratch[cur], 0, n, d)
            width = norm_width(norm, layout, l, d)
            group_norm_rows(z, layout[l, GROUPS], layout[l, POSITIONS],
                            params[layout[l, GAMMA]:layout[l, GAMMA] + width],
                            params[layout[l, BETA]:layout[l, BETA] + width], eps, out,
                            np.empty(n * layout[l, GROUPS], out.dtype), act, out)
        elif norm == SWITCHABLE_NORM:
            out = view(scratch[cur], 0, n, d)
            weights = np.empty((2, 3))
            mixing_weights(params, layout, l, weights)
            switchable_forward_infer(
                z, np.int64(1), params[layout[l, GAMMA]:layout[l, GAMMA] + d],
                params[layout[l, BETA]:layout[l, BETA] + d], weights[0], weights[1], eps,
                running[layout[l, RUNNING_MEAN]:layout[l, RUNNING_MEAN] + d],
                running[layout[l, RUNNING_VAR]:layout[l, RUNNING_VAR] + d], out)
            activate_rows(out, act)
        elif norm == BATCH_NORM:
            out = view(scratch[cur], 0, n, d)
            batchnorm_infer_act(
                z, params[layout[l, GAMMA]:layout[l, GAMMA] + d],
                params[layout[l, BETA]:layout[l, BETA] + d],
                running[layout[l, RUNNING_MEAN]:layout[l, RUNNING_MEAN] + d],
                stds[std_offset:std_offset + d], act, out)
        else:
            out = z
            cur = 1 - cur
        if dropout_scales.size:
            scale = dropout_scales[l]
            for i in range(n):
                for j in range(d):
                    out[i, j] *= scale
        h = out
        std_offset += d
    last = n_layers - 1
    w = view(params, layout[last, W], dims[last], dims[last + 1])
    affine_act_forward(h, w, params[layout[last, B]:layout[last, B] + dims[last + 1]],
                       np.int64(IDENTITY), logits)  # an int64: see train_forward


@inline
def running_stds(dims, layout, running, norm, bn_eps, stds):
    """``stds = sqrt(running_var + eps)`` of every batch-norm layer, layer after layer."""
    if norm == BATCH_NORM:
        offset = 0
        for l in range(dims.size - 2):
            d = dims[l + 1]
            var = running[layout[l, RUNNING_VAR]:layout[l, RUNNING_VAR] + d]
            for j in range(d):
                stds[offset + j] = math.sqrt(var[j] + bn_eps)
            offset += d


@inline
def chunk_logits(x, start, chunk, dims, layout, act, params, running, norm, eps,
                 dropout_scales, stds, scratch, logits):
    """The logits of rows ``start:start + chunk`` of ``x`` (fewer at the end), written to
    and returned as the first rows of ``logits``."""
    rows = min(chunk, x.shape[0] - start)
    y = logits[:rows]
    infer_chunk(x[start:start + rows], dims, layout, act, params, running, norm, eps,
                dropout_scales, stds, scratch, y)
    return y


@jit
def mlp_predict(x, dims, layout, act, params, running, norm, bn_eps, dropout_scales, chunk,
                stds, scratch, out):
    """``out = net(x)``, the logits in inference mode, ``chunk`` rows at a time.

    ``norm`` and ``bn_eps`` as in ``mlp_train_step``; ``running`` is empty without batch
    or switchable norm; ``dropout_scales[l]`` is hidden layer l's
    ``1 - ratio`` (empty without dropout); ``stds`` (sum of hidden widths) and
    ``scratch`` (2, chunk * widest hidden layer) are workspaces.
    """
    running_stds(dims, layout, running, norm, bn_eps, stds)
    for start in range(0, x.shape[0], chunk):
        chunk_logits(x, start, chunk, dims, layout, act, params, running, norm, bn_eps,
                     dropout_scales, stds, scratch, out[start:])


@jit
def mlp_predict_labels(x, dims, layout, act, params, running, norm, bn_eps, dropout_scales,
                       chunk, stds, scratch, logits, out):
    """``out = argmax(net(x), axis=1)`` as ``np.argmax`` (the first largest logit, the
    first NaN if any); ``logits`` (chunk, classes) is a workspace, the rest as in
    ``mlp_predict``."""
    running_stds(dims, layout, running, norm, bn_eps, stds)
    for start in range(0, x.shape[0], chunk):
        y = chunk_logits(x, start, chunk, dims, layout, act, params, running, norm,
                         bn_eps, dropout_scales, stds, scratch, logits)
        for i in range(y.shape[0]):
            best = 0
            for j in range(1, y.shape[1]):
                if y[i, best] != y[i, best]:
                    break
                if y[i, j] > y[i, best] or y[i, j] != y[i, j]:
                    best = j
            out[start + i] = best


@jit
def mlp_cross_entropy(x, labels, dims, layout, act, params, running, norm, bn_eps,
                      dropout_scales, chunk, stds, scratch, logits):
    """The mean cross-entropy ``-sum(log(softmax(net(x))[i, t_i] + 1e-7)) / N`` in
    inference mode, summed in float64 in row order (as ``softmax_cross_entropy``);
    arguments as in ``mlp_predict_labels``."""
    running_stds(dims, layout, running, norm, bn_eps, stds)
    loss = 0.0
    for start in range(0, x.shape[0], chunk):
        y = chunk_logits(x, start, chunk, dims, layout, act, params, running, norm,
                         bn_eps, dropout_scales, stds, scratch, logits)
        for i in range(y.shape[0]):
            softmax_row(y, i, y)
            loss -= math.log(y[i, labels[start + i]] + LOG_EPS)
    return loss / x.shape[0]
