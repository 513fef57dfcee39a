"""``Population``: K nets of one architecture trained together, one kernel call a step.

The course notes' "caviar" strategy (section 7.3: train many models at once rather
than babysit one) on a CPU: a sweep trains hundreds of nets of one shape, each step a
chain of small GEMMs.  A population keeps its K members' parameters, gradients,
optimizer state and running statistics as rows of ``(K, size)`` arenas in one net's
layout (``fastnet.arena.NetLayout``), and ``train_step`` runs every member's forward,
backward and update in one compiled call (``fastnet.kernels.population``), so the
Python and dispatch cost of a step is paid once for K members.

Each member computes exactly what ``fastnet.nets.MultiLayerNetExtend.train_step`` with
its own config computes alone (the same kernels in the same order): member i starts
from the parameters and dropout streams of ``MultiLayerNetExtend(..., seed=...)`` with
its config, steps on its own mini-batch or on one shared by all, and a member that
diverges leaves the others untouched.  ``keep(mask)`` drops members (diverged, pruned)
and compacts the arenas, so that later steps cost only the survivors'.  ``member(i)``,
``member_optimizer(i)`` and ``set_member(i, net, optimizer)`` move one member's whole
training state out and in (checkpoints).

Where the time goes (784-100x4-10, batch 128, float32, one thread, this project's
2-core EPYC under other load, Nov 2026): a member's step is its GEMMs, and a population
saves only the Python and dispatch cost of K separate steps.  K = 16, SGD: population
0.76-0.78 ms per member, 16 sequential ``train_step`` calls 0.79-0.81, the members'
GEMMs alone 0.76 (K = 64: 0.77 against 0.77); Adam 0.83-0.85 against 0.89-0.91.  One
mini-batch per member costs 3-5% more than a shared one (``rows=`` gathers in the call;
a (K, N, D) stack made in Python costs 4-8% more).  One (N, 784) x (784, 100K) GEMM for
every member's first layer, possible only for a shared batch, measured 8-10% faster
than K (784, 100) GEMMs, some 6% of a step: not done, so that shared and per-member
batches run the same code.  So a population pays where the per-step overhead is a
large part of a step (small nets, small batches, many members) and not at all for big
widths, whose GEMMs dwarf it.
"""
import copy
import inspect

import numpy as np

from . import _book, _validate, nets, optimizers
from .arena import NetLayout
from .kernels import activations
from .kernels import population as kernels

NET_KEYS = ("seed", "weight_init_std", "weight_decay_lambda", "dropout_ratio")
# What a population's members may normalize with: what the compiled step runs in place
NORMALIZATIONS = (None, "batch", "layer")


def _layers(net, kind):
    return [layer for key, layer in net.layers.items() if key.startswith(kind)]


class Population:
    """K = ``len(configs)`` members of one architecture, trained on mini-batches of one size.

    Each config is a dict of member i's ``seed``, ``weight_init_std``,
    ``weight_decay_lambda`` and ``dropout_ratio`` (``MultiLayerNetExtend``'s arguments
    and defaults: None, 'relu', 0, 0.5) and the hyperparameters of ``optimizer`` (its
    class's arguments and defaults, e.g. ``lr``, ``momentum``, ``beta1``, ``beta2``,
    ``decay_rate``).  ``optimizer`` is one of ``fastnet.optimizers.OPTIMIZERS``'
    names (case-insensitive), the same for every member.  The other arguments are
    ``MultiLayerNetExtend``'s, shared by all; ``normalization`` is one of
    ``NORMALIZATIONS`` (None, 'batch' as ``use_batchnorm=True``, 'layer').

    ``indices`` holds each member's position in ``configs`` (``keep`` drops entries).
    """

    def __init__(self, input_size, hidden_size_list, output_size, configs, optimizer="SGD",
                 activation="relu", use_batchnorm=False, use_dropout=False, dtype=np.float32,
                 *, normalization=None):
        configs = [dict(c) for c in configs]
        if not configs:
            raise ValueError("configs is empty: a population needs at least one member")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"a population's normalization must be one of {NORMALIZATIONS} "
                             f"(what the compiled step runs), got {normalization!r}")
        optimizer_class = type(optimizers.make_optimizer(optimizer))
        self.optimizer = optimizer_class.__name__
        self._kind = kernels.OPTIMIZER_CODES[self.optimizer]
        hyper_keys = tuple(inspect.signature(optimizer_class.__init__).parameters)[1:]
        allowed = NET_KEYS + hyper_keys
        for i, config in enumerate(configs):
            unknown = sorted(set(config) - set(allowed))
            if unknown:
                raise ValueError(f"configs[{i}] has unknown keys {unknown}; a member of a "
                                 f"{self.optimizer} population takes {list(allowed)}")
        self.configs = configs
        # One member's net at a time, copied into its rows and dropped: the peak is the
        # population's arenas and one net.
        for i, config in enumerate(configs):
            net = nets.MultiLayerNetExtend(
                input_size, hidden_size_list, output_size, activation,
                config.get("weight_init_std", "relu"), config.get("weight_decay_lambda", 0),
                use_dropout, use_batchnorm=use_batchnorm, normalization=normalization,
                dropout_ratio=config.get("dropout_ratio", 0.5), dtype=dtype,
                seed=config.get("seed"))
            opt = optimizer_class(**{k: v for k, v in config.items() if k in hyper_keys})
            if i == 0:
                self._allocate(net, len(configs), optimizer_class)
            self.set_member(i, net, opt)
        self._workspaces = {}
        self._infer_ws = None

    def _allocate(self, first, k, optimizer_class):
        """The arenas of ``k`` members shaped as ``first``, a member's net."""
        self.input_size, self.output_size = first.input_size, first.output_size
        self.activation, self.dtype = first.activation, first.dtype
        self.layout = NetLayout(first.input_size, first.hidden_size_list, first.output_size,
                                use_dropout=first.use_dropout,
                                normalization=first.normalization)
        self._norm_eps = nets.fused_norm_eps(first.normalization)
        self._bn_momenta = np.array([bn.momentum for bn in _layers(first, "BatchNorm")],
                                    np.float64)
        size, n_dropout = self.layout.size, len(_layers(first, "Dropout"))
        self.indices = np.arange(k)
        self._params = np.empty((k, size), self.dtype)
        self._grads = np.zeros((k, size), self.dtype)
        self._running = np.zeros((k, self.layout.running_size), self.dtype)
        self._states = np.zeros((len(optimizer_class.state_names), k, size), self.dtype)
        self._lambdas = np.zeros(k)
        self._ratios = np.zeros((k, n_dropout))
        self._seeds = np.zeros((k, n_dropout), np.uint64)
        self._steps = np.zeros(k, np.uint64)
        self._optimizers = [None] * k

    def __len__(self):
        return self._params.shape[0]

    # ------------------------------------------------------------ members in and out

    def _check_index(self, i):
        if not -len(self) <= i < len(self):
            raise IndexError(f"member {i} out of range for a population of {len(self)}")
        return i % len(self)

    def set_member(self, i, net, optimizer=None):
        """Make member ``i`` continue from ``net`` (a ``fastnet.nets.MultiLayerNetExtend``
        of the population's architecture and dtype: parameters, running statistics,
        weight decay, dropout ratios and streams) and, when given, ``optimizer`` (of the
        population's kind: hyperparameters, state, step count); both are copied."""
        i = self._check_index(i)
        if optimizer is not None and type(optimizer) is not optimizers.OPTIMIZERS[
                self.optimizer.lower()]:
            raise TypeError(f"optimizer must be a fastnet.optimizers.{self.optimizer}, got "
                            f"{type(optimizer).__module__}.{type(optimizer).__name__}")
        if (not isinstance(net, nets.MultiLayerNetExtend) or net.dtype != self.dtype
                or net.activation != self.activation
                or net.normalization != self.layout.normalization
                or net.use_dropout != self.layout.use_dropout
                or NetLayout(net.input_size, net.hidden_size_list, net.output_size,
                             use_dropout=net.use_dropout, normalization=net.normalization,
                             groups=net.groups).views != self.layout.views):
            raise ValueError("net must be a fastnet.nets.MultiLayerNetExtend of the "
                             "population's architecture, normalization, activation and "
                             "dtype")
        for key, view in self.layout.params(self._params[i]).items():
            view[...] = net.params[key]
        for (mean, var), bn in zip(self.layout.running(self._running[i]),
                                   _layers(net, "BatchNorm")):
            mean[...], var[...] = bn.running_mean, bn.running_var
        dropouts = _layers(net, "Dropout")
        self._ratios[i] = [d.dropout_ratio for d in dropouts]
        self._seeds[i] = [d.seed for d in dropouts]
        self._steps[i] = dropouts[0].step if dropouts else 0
        self._lambdas[i] = net.weight_decay_lambda
        if optimizer is None:
            return
        kept = copy.copy(optimizer)
        for s, name in enumerate(kept.state_names):
            per_key = getattr(optimizer, name)
            for key, view in self.layout.params(self._states[s, i]).items():
                view[...] = per_key.get(key, 0)
            setattr(kept, name, {})  # the population's arenas hold the state
        kept.__dict__.pop("_arenas", None)
        self._optimizers[i] = kept

    def member(self, i):
        """Member ``i`` as a plain ``fastnet.nets.MultiLayerNetExtend``: a copy of its
        parameters, running statistics, weight decay and dropout streams, which trains
        on as the member would."""
        i = self._check_index(i)
        layout = self.layout
        ratio = float(self._ratios[i, 0]) if self._ratios.size else 0.5
        net = nets.MultiLayerNetExtend(
            self.input_size, layout.hidden_size_list, self.output_size, self.activation,
            weight_decay_lambda=float(self._lambdas[i]), use_dropout=layout.use_dropout,
            normalization=layout.normalization, dropout_ratio=ratio, dtype=self.dtype,
            seed=0)  # any seed: every parameter and stream is overwritten
        for key, view in layout.params(self._params[i]).items():
            net.params[key][...] = view
        for (mean, var), bn in zip(layout.running(self._running[i]), _layers(net, "BatchNorm")):
            bn.running_mean[...], bn.running_var[...] = mean, var
        for d, seed in zip(_layers(net, "Dropout"), self._seeds[i]):
            d.seed, d.step = int(seed), int(self._steps[i])
        return net

    def member_optimizer(self, i):
        """Member ``i``'s optimizer: a ``fastnet.optimizers`` instance with its
        hyperparameters, step count and state (per-key dicts of copies), which steps
        on as the member's would."""
        i = self._check_index(i)
        optimizer = copy.copy(self._optimizers[i])
        for s, name in enumerate(optimizer.state_names):
            setattr(optimizer, name, {key: view.copy() for key, view
                                      in self.layout.params(self._states[s, i]).items()})
        return optimizer

    def keep(self, mask):
        """Keep the members where ``mask`` (bool, shape (K,)) is True, in order, and
        drop the others (diverged, pruned); the arenas shrink, so later steps cost only
        the survivors', and each survivor continues exactly."""
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (len(self),):
            raise ValueError(f"mask must be a boolean array of shape ({len(self)},), got "
                             f"{mask.dtype} of shape {mask.shape}")
        if not mask.any():
            raise ValueError("mask keeps no member; a population needs at least one")
        self.indices = self.indices[mask]
        self._params, self._grads = self._params[mask], self._grads[mask]
        self._running, self._states = self._running[mask], self._states[:, mask]
        self._lambdas, self._ratios = self._lambdas[mask], self._ratios[mask]
        self._seeds, self._steps = self._seeds[mask], self._steps[mask]
        self._optimizers = [opt for opt, kept in zip(self._optimizers, mask) if kept]

    # ---------------------------------------------------------------------- training

    def _batches(self, x, t):
        """``x`` as (1 or K, N, D) rows of the population's dtype and ``t`` as (1 or K, N)
        int64 labels, checked."""
        x = _validate.float_array(x, "x", self.dtype)
        k, d = len(self), self.input_size
        if x.ndim not in (2, 3) or x.shape[-1] != d:
            raise ValueError(f"x must be (N, {d}), one mini-batch for every member, or "
                             f"({k}, N, {d}), one per member; got shape {x.shape}")
        if x.ndim == 2:
            return x[None], _validate.labels(t, x.shape[0], self.output_size)[None]
        if x.shape[0] != k:
            raise ValueError(f"x holds {x.shape[0]} mini-batches for {k} members")
        t = np.asarray(t)
        if t.ndim < 2 or t.shape[0] != k:
            raise ValueError(f"t must hold one row of labels per member, shape ({k}, "
                             f"{x.shape[1]}) (or one-hot ({k}, {x.shape[1]}, "
                             f"{self.output_size})), got shape {t.shape}")
        return x, np.stack([_validate.labels(row, x.shape[1], self.output_size) for row in t])

    def _penalties(self):
        """Each member's ``0.5 * lambda * sum(W^2)``, as one net's ``loss`` adds it."""
        weights = self._params[:, :self.layout.n_decayed]
        return np.array([0.5 * decay * float(np.dot(w, w)) if decay else 0.0
                         for decay, w in zip(self._lambdas, weights)])

    def _rows(self, rows, n_samples):
        rows = np.asarray(rows)
        if (rows.dtype.kind not in "iu" or rows.ndim != 2 or rows.shape[0] != len(self)
                or rows.shape[1] == 0):
            raise ValueError(f"rows must be integer indices of shape ({len(self)}, N), one "
                             f"mini-batch per member, got {rows.dtype} of shape {rows.shape}")
        if rows.min() < 0 or rows.max() >= n_samples:
            raise ValueError(f"rows must lie in [0, {n_samples}) (x has {n_samples} "
                             f"samples), got values from {rows.min()} to {rows.max()}")
        return np.ascontiguousarray(rows, dtype=np.int64)

    def train_step(self, x, t, rows=None):
        """Forward, backward and optimizer update of every member, in one compiled call.

        ``x``: (N, D), the same mini-batch for every member, or (K, N, D), member k's
        mini-batch ``x[k]``; ``t``: its labels (N,) or one-hot (N, C), or (K, N) /
        (K, N, C).  With ``rows`` ((K, N) integer indices), ``x`` (M, D) and ``t`` are
        a whole training set and member k's mini-batch is ``x[rows[k]], t[rows[k]]``,
        gathered inside the call (a sweep's members each follow their own data order).
        Returns each member's mini-batch loss (with weight decay, before the update),
        shape (K,), as one net's ``train_step`` returns it: a NaN there marks a diverged
        member (the others are unaffected; drop it with ``keep``).
        """
        if rows is not None and np.ndim(x) != 2:
            raise ValueError(f"with rows, x must be a training set of shape (M, "
                             f"{self.input_size}), got shape {np.shape(x)}")
        x, labels = self._batches(x, t)
        if rows is None:
            rows, n = np.empty((0, 0), np.int64), x.shape[1]
        else:
            rows = self._rows(rows, x.shape[1])
            n = rows.shape[1]
        if n not in self._workspaces:
            ws = self.layout.workspace(n, self.dtype)
            ws["x_rows"] = np.empty((n, self.input_size), self.dtype)  # for ``rows``
            ws["label_rows"] = np.empty(n, np.int64)
            self._workspaces = {n: ws}
        ws = self._workspaces[n]
        penalties = self._penalties()
        hyper = np.array([opt.kernel_scalars() for opt in self._optimizers], self.dtype)
        keys = _book.stream_key(self._seeds, self._steps[:, None])
        if self._seeds.size:
            self._steps += np.uint64(1)
        losses = np.empty(len(self))
        kernels.population_train_step(
            x, labels, rows, self.layout.dims, self.layout.table,
            activations.CODES[self.activation], self._params, self._grads, self._running,
            self.layout.norm, self._bn_momenta, self._norm_eps, self._ratios, keys, self._kind,
            hyper, self._states, self._lambdas.astype(self.dtype), self.layout.n_decayed,
            ws["acts"], ws["xns"], ws["stds"], ws["masks"], ws["scratch"], ws["logits"],
            ws["x_rows"], ws["label_rows"], losses)
        return losses + penalties

    # --------------------------------------------------------------------- inference

    def _inference(self, rows):
        """The inference kernels' arguments after ``x`` (as one net's), workspaces for up
        to ``rows`` rows per chunk, grown across calls."""
        rows = min(rows, nets.INFERENCE_CHUNK)
        if self._infer_ws is None or self._infer_ws[0] < rows:
            self._infer_ws = (rows, *self.layout.inference_workspace(rows, self.dtype))
        _, stds, scratch, _ = self._infer_ws
        return (self.layout.dims, self.layout.table, activations.CODES[self.activation],
                self._params, self._running, self.layout.norm, self._norm_eps,
                (1 - self._ratios).astype(self.dtype), nets.INFERENCE_CHUNK, stds, scratch)

    def predict(self, x):
        """Every member's logits of ``x`` in inference mode, shape (K, N, C); ``x`` is
        (N, D) for all or (K, N, D), one batch per member."""
        x = self._inputs(x)
        out = np.empty((len(self), x.shape[1], self.output_size), self.dtype)
        kernels.population_predict(x, *self._inference(x.shape[1]), out)
        return out

    def _inputs(self, x):
        x = _validate.float_array(x, "x", self.dtype)
        k, d = len(self), self.input_size
        if x.ndim not in (2, 3) or x.shape[-1] != d or x.ndim == 3 and x.shape[0] != k:
            raise ValueError(f"x must be (N, {d}), one batch for every member, or "
                             f"({k}, N, {d}), one per member; got shape {x.shape}")
        return x if x.ndim == 3 else x[None]

    def loss(self, x, t):
        """Every member's mean cross-entropy in inference mode plus its weight decay,
        shape (K,); ``x`` and ``t`` as in ``train_step``."""
        x, labels = self._batches(x, t)
        out = np.empty(len(self))
        args = self._inference(x.shape[1])
        kernels.population_cross_entropy(x, labels, *args, self._infer_ws[3], out)
        return out + self._penalties()

    def accuracy(self, x, t):
        """Every member's fraction of samples whose largest logit is the label, shape
        (K,); ``x`` and ``t`` as in ``train_step``."""
        x, labels = self._batches(x, t)
        y = np.empty((len(self), x.shape[1]), np.int64)
        args = self._inference(x.shape[1])
        kernels.population_predict_labels(x, *args, self._infer_ws[3], y)
        return np.sum(y == labels, axis=1) / float(x.shape[1])
