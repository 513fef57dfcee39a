"""The book's nets on compiled kernels, with a fused training step.

``MultiLayerNet`` and ``MultiLayerNetExtend`` are the book's nets of ``fastnet._book``
(arguments, weight init, layer by layer; shared with their ``fastnet.reference.nets``
namesakes, the NumPy oracle) built from ``fastnet.layers``.  The book's calls run compiled whole-net
passes: ``gradient()`` one fused forward and backward (``network.mlp_train_step``),
``predict``/``loss``/``accuracy`` one inference pass over chunks of rows,
``numerical_gradient()`` one float64 call, and ``optimizer.update(net.params, grads)``
one pass over the arena.  On top,
``train_step(x, t, optimizer)`` runs forward, backward and update of the whole net in
two kernel calls:

* every parameter lives in one flat arena, laid out by ``fastnet.arena.NetLayout``
  (the decayed weights first, then biases, then the normalization's parameters);
  ``params[key]`` and the layers hold views into it, so the book's dict still works
  and an optimizer sees one contiguous block (``params`` and ``grads`` are
  ``fastnet.arena.ArenaDict`` instances, which carry their arena to the optimizer);
* gradients, running statistics and per-batch workspaces are arenas too, allocated
  once per batch size, so a step allocates nothing but a few small arrays;
* the optimizer's fused ``update_flat`` folds weight decay into its single pass, and
  plain SGD takes no pass at all: the weight-gradient GEMM applies it (``beta = 1``);
* every normalization of ``MultiLayerNetExtend(normalization=...)`` runs inside the
  fused kernels: batch, layer, group, instance and switchable norm (layer, group and
  instance norm are one group-norm kernel) and weight norm (its effective weights
  formed before, its gradients of v and g after; its ``numerical_gradient()`` runs the
  layers, in the net's dtype);
* an array the user re-binds (``net.params['W1'] = loaded``, or a batch- or
  switchable-norm layer's ``running_mean``) is checked and copied into the arenas
  before the next forward pass or step, where the book's layers would keep using the
  old one; ``net.params`` and its arrays stay the net's, so an array taken from it
  before (``saved = net.params['W1']``, a view of the arena) shows the values copied
  in, where the book's would keep the old ones: keep a ``.copy()``.
"""
from collections import OrderedDict

import numpy as np

from . import _book, _validate, layers, optimizers
from .arena import (
    RUNNING_NORMALIZATIONS,
    ArenaDict,
    NetLayout,
    aligned_empty,
    aligned_zeros,
)
from .kernels import activations, network, normalization

# The prefixes of the keys of the layers that keep running statistics
RUNNING_LAYERS = tuple(_book.NORMALIZATION_LAYERS[name] for name in RUNNING_NORMALIZATIONS)
# the layers with an ``eps`` of their own (batch norm's is the book's constant)
EPS_LAYERS = tuple(key for name, key in _book.NORMALIZATION_LAYERS.items() if name != "batch")
INFERENCE_CHUNK = 2048  # rows per inference pass: a workspace of 2 x 2048 x widest layer
NUMERICAL_H = 1e-4  # the book's step of central differences


_FIXED_LAYERS = ("a fastnet net's layers are fixed when it is built: its compiled passes "
                "would not run a replaced, added or removed layer.  Build the net with "
                "other arguments (activation=, use_batchnorm=...), or subclass it and "
                "override predict, loss and gradient")


class _FixedLayers(OrderedDict):
    """A fused net's ``layers``: the book's ordered dict of its layers, whose entries
    cannot be replaced, added or removed, since the compiled passes run the net as
    built and would ignore the change (a swapped-in ``Sigmoid`` never ran)."""

    def __init__(self, items=()):
        for key, layer in dict(items).items():
            OrderedDict.__setitem__(self, key, layer)

    def _refuse(self, *args, **kwargs):
        raise TypeError(_FIXED_LAYERS)

    __setitem__ = __delitem__ = __ior__ = pop = popitem = clear = update = _refuse
    setdefault = move_to_end = _refuse

    def __reduce__(self):  # copies and pickles without the refused __setitem__
        return type(self), (list(self.items()),)

    def copy(self):
        """A plain ``OrderedDict`` of the layers, which may be changed (the net's may not)."""
        return OrderedDict(self)

    def __or__(self, other):
        return OrderedDict(self) | other


class _FusedNet:
    """The arena layout, the fused passes and ``train_step`` shared by both nets."""

    layers_module = layers
    use_batchnorm = use_dropout = False  # MultiLayerNetExtend's instances say otherwise
    normalization = groups = None

    @property
    def layers(self):
        """The book's ordered dict of the net's layers, fixed once built (``TypeError``
        for a change to it, or for another dict in its place: the compiled passes run
        the net as built)."""
        try:
            return self.__dict__["_layers"]
        except KeyError:
            raise AttributeError("layers") from None

    @layers.setter
    def layers(self, value):
        if "_layers" in self.__dict__:  # built: a saved net would not be what ran
            raise TypeError(_FIXED_LAYERS)
        self.__dict__["_layers"] = value  # the book's constructor, filling it

    @property
    def _norm_args(self):
        """The fused kernels' ``norm`` and ``bn_eps`` (weight norm: no hidden norm): the
        book's constant for batch norm, else the normalization layers' ``eps``, which
        may be set on the layers but one value for all of them, as the kernels take one
        (ValueError otherwise, and for a group norm layer's ``groups`` set to another
        count than the net's)."""
        eps = {}
        for key, layer in self._eps_layers:
            if self.normalization == "group" and layer.groups != self.groups:
                raise ValueError(f"layers[{key!r}].groups={layer.groups!r}: the net's fused "
                                 f"passes group its channels as built, groups={self.groups}")
            eps[key] = _validate.eps(layer.eps, f"layers[{key!r}].eps")
        if len(set(eps.values())) > 1:
            raise ValueError(f"the normalization layers' eps differ ("
                             f"{', '.join(f'{key}: {value}' for key, value in eps.items())}): "
                             f"the net's fused passes normalize every layer with one eps")
        eps = next(iter(eps.values()), layers.BN_EPS)
        return self._net_layout.norm, eps

    def _build_arenas(self):
        layout = self._net_layout = NetLayout(
            self.input_size, self.hidden_size_list, self.output_size,
            use_dropout=self.use_dropout, normalization=self.normalization, groups=self.groups)
        assert ({key: shape for key, (_, shape) in layout.views.items()}
                == {key: p.shape for key, p in self.params.items()}), "NetLayout disagrees"
        self._views, self._n_decayed = layout.views, layout.n_decayed
        self._layout, self._dims = layout.table, layout.dims
        self._arena = aligned_empty(layout.size, self.dtype)
        self._grad_arena = aligned_zeros(layout.size, self.dtype)
        params = layout.params(self._arena)
        for key, view in params.views.items():
            view[...] = self.params[key]
        self.params = params
        self._bound = self.params.views
        self.grads = layout.params(self._grad_arena)
        self._running = aligned_zeros(layout.running_size, self.dtype)
        if self.normalization == "weight":
            self._build_weight_norm(layout.kernel)
        self.__dict__["_layers"] = _FixedLayers(self.layers)
        self._dropouts = [layer for key, layer in self.layers.items() if key.startswith("Dropout")]
        self._running_layers = [layer for key, layer in self.layers.items()
                                if key.startswith(RUNNING_LAYERS)]
        self._eps_layers = [(key, layer) for key, layer in self.layers.items()
                            if key.startswith(EPS_LAYERS)]
        # batch- or switchable-norm layer -> its (running_mean, running_var)
        self._running_views = dict(zip(self._running_layers, layout.running(self._running)))
        self._bind_params()
        self._workspaces = {}
        self._infer_ws = None
        self._no_sgd = np.empty(0, self.dtype)

    def _build_weight_norm(self, kernel_layout):
        """Weight norm's fused path: the kernels run a plain net on ``W = g v / ||v||``
        and ``b``, kept in arenas of their own laid out by ``kernel_layout``
        (``NetLayout.kernel``), formed in one call before each pass; their gradients of W
        and b are turned into those of ``v``, ``g`` and ``b`` in one call after
        (``normalization.weight_norm_layers`` and ``weight_norm_layers_backward``)."""
        self._kernel_params = kernel_layout.params(aligned_empty(kernel_layout.size, self.dtype))
        self._kernel_grads = kernel_layout.params(aligned_zeros(kernel_layout.size, self.dtype))
        n_layers = self.hidden_layer_num + 1
        self._weight_norm_table = np.array(
            [[self._views[f"{name}{i}"][0] for name in "vgb"]
             + [kernel_layout.views[f"{name}{i}"][0] for name in "Wb"]
             for i in range(1, n_layers + 1)], np.int64)
        self._norms = np.empty(int(self._dims[1:].sum()), self.dtype)

    def _kernel_arenas(self):
        """The parameter and gradient arenas the fused kernels run on, the effective
        weights of weight norm formed first."""
        if self.normalization != "weight":
            return self._arena, self._grad_arena
        normalization.weight_norm_layers(self._dims, self._weight_norm_table, self._arena,
                                         self._kernel_params.arena, self._norms)
        return self._kernel_params.arena, self._kernel_grads.arena

    def _weight_norm_grads(self, weight_decay):
        """The gradients of v, g and b from the kernels' of W and b, ``lambda g`` added to
        g's (``0.5 lambda sum(W^2)`` is ``0.5 lambda sum(g^2)``)."""
        normalization.weight_norm_layers_backward(
            self._dims, self._weight_norm_table, self._arena, self._kernel_grads.arena,
            self._norms, float(weight_decay), self._grad_arena)  # an int 0 would compile anew

    def __setstate__(self, state):
        """A copy (``copy.deepcopy``, pickle) gets arenas of its own, built as at
        construction from the copied parameters and running statistics: the copied
        ``params`` arrays and layers no longer share the copied arenas' memory, and
        binding them again would train one set of arrays and report another."""
        state = dict(state)
        if "layers" in state:  # pickled by a fastnet before layers was a property
            state["_layers"] = state.pop("layers")
        super().__setstate__(state)
        running = [(bn, bn.running_mean, bn.running_var) for bn in self._running_layers]
        self._build_arenas()
        for bn, mean, var in running:
            for view, value in zip(self._running_views[bn], (mean, var)):
                if value is not None:
                    view[...] = value

    def __copy__(self):
        """``copy.copy``: a net sharing everything with this one (parameters, layers,
        arenas), as a shallow copy of the book's net shares its params and layers;
        ``copy.deepcopy`` makes an independent one."""
        copied = object.__new__(type(self))
        copied.__dict__.update(self.__dict__)
        return copied

    def _bind_params(self):
        """Point ``params``, every layer and the running statistics at the arenas."""
        self.params.update(self._bound)
        self._owners = []  # (params key, its layer, the layer's attribute, the view)
        for key, view in self._bound.items():
            layer, attr = self._layer_of(key)
            setattr(layer, attr, view)
            self._owners.append((key, layer, attr, view))
        for bn, (running_mean, running_var) in self._running_views.items():
            bn.running_mean, bn.running_var = running_mean, running_var

    def _sync_params(self):
        """Copy into the arenas whatever the user re-bound (an entry of ``params``, else
        the layer attribute it is bound to, such as ``layers['Affine1'].W``; a batch- or
        switchable-norm layer's running statistics), then bind everything to them
        again.  The values are checked first (real numbers of the entry's shape that fit
        the net's dtype: ValueError or TypeError naming the entry, nothing changed).
        They are copied into the arenas in place, so that every other array and dict a
        user holds (``params = net.params``) stays the net's; unlike the book's net, an
        array taken from ``params`` before (``saved = net.params['W1']``) is a view of
        the arena and shows the values copied in: keep a ``.copy()``."""
        rebound = []  # (the view, the array given, checked; None: zeros)
        for key, layer, attr, view in self._owners:
            if self.params[key] is not view:
                rebound.append((view, _validate.real_array(self.params[key], view,
                                                           f"params[{key!r}]")))
            elif getattr(layer, attr) is not view:
                rebound.append((view, _validate.real_array(
                    getattr(layer, attr), view, f"the layer's {attr} ({key})")))
        for bn, views in self._running_views.items():
            if bn.running_mean is None:  # the book's layer then starts both again from 0
                bn.running_var = None
            for name, view in zip(("running_mean", "running_var"), views):
                given = getattr(bn, name)
                if given is not view:
                    rebound.append((view, None if given is None
                                    else _validate.real_array(given, view, name)))
        for view, value in rebound:
            view[...] = 0 if value is None else value
        if rebound:
            self._bind_params()

    def _forward(self, x, train_flg):
        self._sync_params()  # unlike the book's layers, see params re-bound since
        self._dropout_ratios()  # checked as the fused passes check them (inverted refused)
        return super()._forward(x, train_flg)

    def _workspace(self, n):
        if n not in self._workspaces:
            self._workspaces = {n: self._net_layout.workspace(n, self.dtype)}
        return self._workspaces[n]

    def _rows(self, x, dtype=None):
        """``x`` as C-contiguous (N, input_size) rows of ``dtype`` (the net's), converted
        as the book's ``np.asarray(x, dtype)`` would."""
        dtype = dtype or self.dtype
        x = _validate.real_values(x, "x")
        if x.dtype not in _validate.FLOAT_DTYPES:  # ints (image bytes), bools, objects
            x = np.asarray(x, dtype=dtype)
        x = _validate.float_array(x, "x", dtype)  # float64 past float32's range refused
        if x.ndim == 1 and self.input_size != 1:  # the book's (N, 1) rows of one feature
            raise ValueError(f"x must have one row per sample, shape (N, {self.input_size}) "
                             f"or (N, ...), got shape {x.shape} (one sample: x[None])")
        x = x.reshape(x.shape[0], -1)
        self._check_features(x)
        return x

    def _check_features(self, x):
        if x.shape[1] != self.input_size:
            raise ValueError(f"x has {x.shape[1]} features per sample, the net expects "
                             f"{self.input_size}")

    def _penalty(self):
        """``0.5 * lambda * sum(W^2)`` over every weight matrix."""
        decay = self.weight_decay_lambda
        weights = self._arena[:self._n_decayed]
        return 0.5 * decay * float(np.dot(weights, weights)) if decay else 0.0

    def _training_args(self):
        """The running statistics' momenta (batch or switchable norm), dropout's ratios
        and the dropout layers' next stream keys."""
        # checked as the layers check them: they are attributes a user may set
        return (np.array([_validate.momentum(bn.momentum) for bn in self._running_layers],
                         np.float64),
                self._dropout_ratios(),
                np.array([_book.stream_key(d.seed, d.step) for d in self._dropouts], np.uint64))

    def _dropout_ratios(self):
        """The dropout layers' ratios (float64), checked; ValueError for a layer set to
        ``inverted``, which the fused passes do not run (they run the book's dropout)."""
        if any(d.inverted for d in self._dropouts):
            raise ValueError("a Dropout layer of the net has inverted=True: the net's fused "
                             "passes run the book's dropout (kept units unscaled, inference "
                             "scaled by 1 - dropout_ratio)")
        return np.array([_validate.dropout_ratio(d.dropout_ratio) for d in self._dropouts],
                        np.float64)

    def _check_batch(self, x):
        """Switchable norm refuses training batches of one sample, as its layer does
        (whose batch statistics would normalize every unit's single value to 0)."""
        if self.normalization == "switchable":
            _validate.batch_statistics("SwitchableNormalization", x.shape[0], x.shape)

    def _forward_backward(self, x, labels, sgd, weight_decay):
        """The fused kernel on one mini-batch (params already synced); returns the mean
        cross-entropy.  Dropout layers advance one step and get the masks drawn (views
        into the workspace, overwritten by the next pass)."""
        self._check_batch(x)
        momenta, ratios, keys = self._training_args()
        norm, eps = self._norm_args
        if not self.grads.intact():  # entries the user re-bound or removed: the views again
            self.grads.clear()
            self.grads.update(self.grads.views)
        for d in self._dropouts:
            d.step += 1
        ws = self._workspace(x.shape[0])
        weight_norm = self.normalization == "weight"
        loss = network.mlp_train_step(
            x, labels, self._dims, self._layout, activations.CODES[self.activation],
            *self._kernel_arenas(), self._running, norm, momenta, eps, ratios, keys, sgd,
            0.0 if weight_norm else weight_decay, ws["acts"], ws["xns"], ws["stds"],
            ws["stats"], ws["masks"], ws["scratch"], ws["logits"])
        if weight_norm:
            self._weight_norm_grads(weight_decay)
        for d, mask in zip(self._dropouts, ws["mask_views"]):
            d.mask = mask
        return loss

    def train_step(self, x, t, optimizer):
        """Forward, backward and ``optimizer`` update on one mini-batch, fused.

        Returns the mini-batch loss (with weight decay) computed in the forward pass,
        that is before the update (the book's Trainer recomputes it after).  Dropout
        and batch norm run in training mode, exactly as ``gradient()`` does.
        ``optimizer`` is a ``fastnet.optimizers`` instance (its ``update_flat`` over the
        arena, hyperparameters and state checked before the pass moves anything) or
        any object with the book's ``update(params, grads)``, which is called with
        ``params`` and ``grads`` where a subclass of fastnet's overrides ``update`` (and
        not ``update_flat``).  ``fastnet.optimizers.SGD``
        itself steps inside the backward pass: each weight matrix is updated by the
        GEMM that would have computed its gradient, so the weight entries of ``grads``
        are not written by such a step (biases, gammas and betas are).  ``x`` is taken
        as ``gradient()`` takes it: (N, input_size) or (N, ...) rows of any real dtype,
        converted to the net's.
        """
        if not callable(getattr(optimizer, "update", None)):
            raise TypeError(f"optimizer must be a fastnet.optimizers instance or an object "
                            f"with the book's update(params, grads), got {optimizer!r:.80}")
        x = self._rows(x)  # as gradient() takes it (uint8 images too, as the book)
        labels = _validate.labels(t, x.shape[0], self.output_size)
        self._sync_params()
        decay = self.weight_decay_lambda
        penalty = self._penalty()
        # The book's SGD, and nothing else, steps inside the kernel (see network.py),
        # where the kernel's weights are the net's.
        if type(optimizer) is optimizers.SGD and self.normalization != "weight":
            # refused before the pass moves anything
            lr_decay = optimizer._begin_flat_step(self.dtype, decay)
            return self._forward_backward(x, labels, lr_decay, 0.0) + penalty
        if not isinstance(optimizer, optimizers._FusedUpdate):
            loss = self._forward_backward(x, labels, self._no_sgd, 0.0) + penalty
            if decay:
                self._grad_arena[:self._n_decayed] += decay * self._arena[:self._n_decayed]
            optimizer.update(self.params, self.grads)
            return loss
        if type(optimizer).update_flat is not optimizers._FusedUpdate.update_flat:
            # a subclass's own update_flat (clipping the gradients, say) takes the step
            loss = self._forward_backward(x, labels, self._no_sgd, 0.0) + penalty
            optimizer.update_flat(self._arena, self._grad_arena, self._views, decay,
                                  self._n_decayed)
            return loss
        if type(optimizer).update is not optimizers._FusedUpdate.update:
            # a subclass's own update, as the book's Trainer would call it
            loss = self._forward_backward(x, labels, self._no_sgd, decay) + penalty
            optimizer.update(self.params, self.grads)
            return loss
        # fastnet's: refused before the pass, not after it has moved the running statistics
        states = optimizer._state_arenas(self._arena, self._views)
        scalars = optimizer._begin_flat_step(self.dtype, decay)
        try:
            loss = self._forward_backward(x, labels, self._no_sgd, 0.0) + penalty
        except BaseException:
            optimizer._cancel_step()
            raise
        optimizer._step_flat(self._arena, self._grad_arena, states, scalars,
                             self._n_decayed if decay else 0)
        return loss

    def gradient(self, x, t):
        """The gradient of the training loss by backpropagation, keyed like ``params``.

        One fused forward and backward pass in training mode (batch norm updates its
        running statistics, each Dropout layer draws its next mask, as the book's
        layer-by-layer pass does); ``lambda * W`` is added to every weight gradient.
        Returns ``net.grads``: the same dict every call, whose arrays are views into the
        gradient arena, overwritten by the next ``gradient()`` or ``train_step()``
        (copy them to keep them).  ``last_layer.loss`` holds the batch's cross-entropy
        and each Dropout layer's ``mask`` its mask; the other layers' saved inputs and
        gradients (``Affine.dW``...) are not written.  Handing ``net.params`` and this
        dict to a ``fastnet.optimizers`` optimizer updates the arena in one pass.
        """
        x = self._rows(x)
        labels = _validate.labels(t, x.shape[0], self.output_size)
        self._sync_params()
        self.last_layer.loss = self._forward_backward(x, labels, self._no_sgd,
                                                      self.weight_decay_lambda)
        return self.grads

    def numerical_gradient(self, x, t):
        """The gradient of the training loss by central differences (h = 1e-4), keyed
        like ``params``: float64 arrays, computed in float64 whatever the net's dtype, in
        one compiled call (two training forward passes per parameter).

        Unlike the book's, whose every evaluation draws new dropout masks and moves the
        running statistics, every evaluation uses the masks that the next ``gradient()``
        draws, so that the two compare directly, and the net is left as it was (dropout
        steps and running statistics included).

        Weight norm is the exception: its ``v`` and ``g`` are differentiated through the
        layers, one Python evaluation per entry, in the net's dtype (a float32 net's
        differences from ``gradient()`` are then 1e-4 to 1e-3, not the book's 1e-7; build
        the net with ``dtype=np.float64`` to check it).
        """
        if self.normalization == "weight":  # the kernel's are W's
            return self._layer_numerical_gradient(x, t)
        x = self._rows(x, np.float64)
        labels = _validate.labels(t, x.shape[0], self.output_size)
        self._check_batch(x)
        self._sync_params()
        params = self._arena.astype(np.float64)
        grads = np.empty_like(params)
        ws = self._net_layout.workspace(x.shape[0], np.float64)
        momenta, ratios, keys = self._training_args()
        norm, eps = self._norm_args
        network.mlp_numerical_gradient(
            x, labels, self._dims, self._layout, activations.CODES[self.activation], params,
            self._running.astype(np.float64), norm, momenta, eps, ratios, keys,
            self.weight_decay_lambda, self._n_decayed, NUMERICAL_H, ws["acts"], ws["xns"],
            ws["stds"], ws["stats"], ws["masks"], ws["scratch"], ws["logits"], grads)
        return dict(ArenaDict(grads, self._views))

    def _layer_numerical_gradient(self, x, t):
        """``numerical_gradient()`` through the layers, in the net's dtype (weight norm's:
        the fused kernels differentiate W, not v and g): each evaluation rewinds the
        dropout layers to their current step (weight norm keeps no running statistics)."""
        x = self._rows(x)
        labels = _validate.labels(t, x.shape[0], self.output_size)
        steps = [d.step for d in self._dropouts]

        def rewound_loss(_):
            for dropout, step in zip(self._dropouts, steps):
                dropout.step = step
            return self._loss(x, labels, True)

        grads = {key: _book.numerical_gradient(rewound_loss, self.params[key]).astype(np.float64)
                 for key in self.params}
        for dropout, step in zip(self._dropouts, steps):
            dropout.step = step
        return grads

    # ---------------------------------------------------------------- inference

    def _inference(self, rows):
        """The inference kernels' arguments after ``x``, with workspaces for up to
        ``rows`` rows per chunk (grown, never shrunk, across calls)."""
        self._sync_params()
        rows = min(rows, INFERENCE_CHUNK)
        if self._infer_ws is None or self._infer_ws[0] < rows:
            self._infer_ws = (rows, *self._net_layout.inference_workspace(rows, self.dtype))
        _, stds, scratch, _ = self._infer_ws
        scales = (1 - self._dropout_ratios()).astype(self.dtype)
        return (self._dims, self._layout, activations.CODES[self.activation],
                self._kernel_arenas()[0], self._running, *self._norm_args, scales,
                INFERENCE_CHUNK, stds, scratch)

    def _trains_differently(self, train_flg):
        return train_flg and (self._net_layout.keeps_running or self.use_dropout)

    def predict(self, x, train_flg=False):
        """The logits of ``x``.  Inference mode (batch norm's running statistics,
        dropout's ``* (1 - ratio)``) runs one compiled pass, ``INFERENCE_CHUNK`` rows at
        a time; ``train_flg=True`` (``MultiLayerNetExtend``) runs the training layers."""
        if self._trains_differently(train_flg):
            return self._forward(self._rows(x), train_flg)
        x = self._rows(x)
        out = np.empty((x.shape[0], self.output_size), self.dtype)
        network.mlp_predict(x, *self._inference(x.shape[0]), out)
        return out

    def _predict_overridden(self):
        """Whether a subclass overrides ``predict``, which ``loss`` and ``accuracy`` then
        call as the book's do, instead of their compiled passes."""
        return type(self).predict is not _FusedNet.predict

    def loss(self, x, t, train_flg=False):
        """Cross-entropy of ``predict(x, train_flg)`` against ``t`` plus the weight decay."""
        if self._predict_overridden():
            y = self.predict(x, train_flg) if train_flg else self.predict(x)
            return self.last_layer.forward(y, t) + self._penalty()
        if self._trains_differently(train_flg):
            return self._loss(self._rows(x), t, train_flg)
        x = self._rows(x)
        labels = _validate.labels(t, x.shape[0], self.output_size)
        return network.mlp_cross_entropy(x, labels, *self._inference(x.shape[0]),
                                         self._infer_ws[3]) + self._penalty()

    def accuracy(self, x, t):
        """The fraction of samples whose largest logit is the label (``t``: labels or
        one-hot), from one compiled inference pass (a subclass's ``predict``, where one
        overrides it).  ``t`` is checked as ``loss`` and
        ``gradient`` check it (ValueError or TypeError naming what was expected)."""
        x = self._rows(x)
        t = _validate.labels(t, x.shape[0], self.output_size)
        if self._predict_overridden():
            y = np.argmax(self.predict(x), axis=1)
        else:
            y = np.empty(x.shape[0], np.int64)
            network.mlp_predict_labels(x, *self._inference(x.shape[0]), self._infer_ws[3], y)
        return np.sum(y == t) / float(x.shape[0])


class MultiLayerNet(_FusedNet, _book.LayerNet):
    __doc__ = _book.LayerNet.__doc__

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0, *, dtype=np.float32,
                 seed=None, rng=None):
        super().__init__(input_size, hidden_size_list, output_size, activation,
                         weight_init_std, weight_decay_lambda, dtype=dtype, seed=seed, rng=rng)
        self._build_arenas()


class MultiLayerNetExtend(_FusedNet, _book.LayerNetExtend):
    __doc__ = _book.LayerNetExtend.__doc__

    def __init__(self, input_size, hidden_size_list, output_size, activation="relu",
                 weight_init_std="relu", weight_decay_lambda=0, use_dropout=False,
                 dropout_ration=0.5, use_batchnorm=False, *, dropout_ratio=None,
                 normalization=None, groups=2, dtype=np.float32, seed=None, rng=None):
        super().__init__(input_size, hidden_size_list, output_size, activation,
                         weight_init_std, weight_decay_lambda, use_dropout, dropout_ration,
                         use_batchnorm, dropout_ratio=dropout_ratio,
                         normalization=normalization, groups=groups, dtype=dtype, seed=seed,
                         rng=rng)
        self._build_arenas()

    def estimate_population_statistics(self, x_train, batch_size):
        """Set batch norm's test-time statistics to the paper's population estimate
        (Ioffe and Szegedy 2015, Algorithm 2): over the whole batches of ``m =
        batch_size`` consecutive rows of ``x_train``, in training mode, ``running_mean =
        mean of the batch means`` and ``running_var = m / (m - 1) * mean of the batch
        variances``.  Dropout runs as in training (each layer's ``step`` advances);
        weights, gammas and betas are not changed.  ValueError without batch norm, for
        ``batch_size`` < 2, or for fewer than ``batch_size`` samples.
        """
        # The statistics come from the batch-norm kernel: with momentum 0 a training pass
        # leaves each batch's statistics in the running-statistics arena; they are summed
        # in float64 and the estimate is written back into the arena, where inference
        # reads it.
        m = batch_size
        x = self._rows(x_train)
        n_batches = _book.population_batches(self.use_batchnorm, len(x), m)
        momenta = [bn.momentum for bn in self._running_layers]
        self._sync_params()  # what the user re-bound, then the state a failure restores
        running, steps = self._running.copy(), [d.step for d in self._dropouts]
        sums = np.zeros(self._running.size)
        try:
            for bn in self._running_layers:
                bn.momentum = 0.0
            for i in range(n_batches):
                self._forward(x[i * m:(i + 1) * m], True)
                sums += self._running
        except BaseException:  # a refused pass or Ctrl-C: the net as it was
            self._running[...] = running
            for dropout, step in zip(self._dropouts, steps):
                dropout.step = step
            raise
        finally:
            for bn, momentum in zip(self._running_layers, momenta):
                bn.momentum = momentum
        half = sums.size // 2  # the means, then the variances
        self._running[:half] = sums[:half] / n_batches
        self._running[half:] = m / (m - 1) * (sums[half:] / n_batches)
