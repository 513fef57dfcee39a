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

Threads share the members, not the GEMMs: ``num_threads`` threads (fastnet's thread
count by default) each step a contiguous share of the members with BLAS
single-threaded (``fastnet.threads.run_shares``).  A 784-100x4-10 step is a chain of
small GEMMs that two BLAS threads split poorly; two whole members at once on two cores
run close to twice one member's single-threaded rate.  And a member's arithmetic is
then that of its net trained alone with BLAS single-threaded, bit for bit, whatever the
thread count and the population's size: a sweep's results do not depend on the
machine.  (A net alone with multi-threaded BLAS can differ in the last bits: OpenBLAS
splits some GEMMs, a K = 784 one among them, differently by thread count.)

Where the time goes (784-100x4-10, batch 128, float32, 2 threads on this project's
2-core EPYC, Nov 30 2026, ``fastnet bench --workload pop4-mlp-sgd,pop16-mlp-sgd,...``):
a member's step is its GEMMs, and a population runs at the floor of those GEMMs shared
the same way among the threads.  K = 16, SGD: 6.76 ms a step of all 16, against 6.36
ms for their GEMMs alone (1.06), 7.80 ms for the same GEMMs one member after another on
both threads, and 8.92 ms for 16 ``train_step`` calls (1.32x); K = 64: 25.5 ms against
25.5 (1.00) and 36.3 (1.42x); K = 4: 1.22x.  Adam gains more (1.51x at K = 16, 1.62x
at K = 64): its update runs on every core too.  One mini-batch per member costs 4-6%
more than a shared one.  So a population pays on a multi-core machine wherever it has
at least as many members as threads; with one thread (a sweep's spawned one-thread
workers) it saves only the few percent of per-step dispatch, and with fewer members
than threads cores idle.  One (N, 784) x (784, 100K) GEMM for every member's first
layer, possible only for a shared batch, is not done, so that shared and per-member
batches run the same code.
"""
import copy
import inspect
import numbers
from collections.abc import Iterable, Mapping

import numpy as np

from . import _book, _validate, nets, optimizers, threads
from .arena import NetLayout, aligned_copy, aligned_empty, aligned_zeros
from .kernels import activations
from .kernels import population as kernels

NET_KEYS = ("seed", "weight_init_std", "weight_decay_lambda", "dropout_ratio")
# What a population's members may normalize with: what the compiled step runs in place
# (weight norm forms its weights outside the step, from arenas of its own)
NORMALIZATIONS = (None, "batch", "layer", "group", "instance", "switchable")


def _shared_norm_args(net):
    """What a population's members share of ``net``'s normalization layers: the fused
    passes' eps (ValueError where they differ) and the running statistics' momenta."""
    momenta = [_validate.momentum(bn.momentum) for bn in _layers(net, nets.RUNNING_LAYERS)]
    return net._norm_args[1], np.array(momenta, np.float64)


def _layers(net, kind):
    return [layer for key, layer in net.layers.items() if key.startswith(kind)]


def _class_name(obj):
    return f"{type(obj).__module__}.{type(obj).__name__}"


def _num_threads(num_threads):
    if num_threads is not None and (isinstance(num_threads, bool) or not isinstance(
            num_threads, numbers.Integral) or num_threads < 1):
        raise ValueError(f"num_threads must be a positive int or None (fastnet's thread "
                         f"count), got {num_threads!r}")
    return num_threads


class Population:
    """K = ``len(configs)`` members of one architecture, trained on mini-batches of one size.

    Each config is a dict of member i's ``seed``, ``weight_init_std``,
    ``weight_decay_lambda`` and ``dropout_ratio`` (``MultiLayerNetExtend``'s arguments
    and defaults: None, 'relu', 0, 0.5) and the hyperparameters of ``optimizer`` (its
    class's arguments and defaults, e.g. ``lr``, ``momentum``, ``beta1``, ``beta2``,
    ``decay_rate``).  ``optimizer`` is one of ``fastnet.optimizers.OPTIMIZERS``'
    names (case-insensitive), the same for every member.  The other arguments are
    ``MultiLayerNetExtend``'s, shared by all; ``normalization`` is one of
    ``NORMALIZATIONS`` (None, 'batch' as ``use_batchnorm=True``, 'layer', 'group',
    'instance', 'switchable'; not 'weight'), ``groups`` group norm's groups (instance
    norm's channels).

    ``num_threads`` (a positive int, or None for ``fastnet.get_num_threads()`` at each
    call) threads step and evaluate the members, each thread a share of them with BLAS
    single-threaded; results do not depend on it (see the module's doc).  While a call
    runs, BLAS is single-threaded for the whole process.

    ``indices`` holds each member's position in ``configs`` (``keep`` drops entries).

    Raises ValueError for empty or unknown configs, a normalization the compiled step
    does not run, or a bad ``num_threads``.
    """

    def __init__(self, input_size, hidden_size_list, output_size, configs, optimizer="SGD",
                 activation="relu", use_batchnorm=False, use_dropout=False, dtype=np.float32,
                 *, normalization=None, groups=2, num_threads=None):
        given = configs
        sequence = isinstance(given, Iterable) and not isinstance(given, Mapping | str)
        configs = list(given) if sequence else []  # a generator can be read once only
        if not sequence or not all(isinstance(c, Mapping) for c in configs):
            raise TypeError(f"configs must be a sequence of dicts, one per member, got "
                            f"{given!r:.80}")
        configs = [dict(c) for c in configs]
        self.num_threads = _num_threads(num_threads)
        if not configs:
            raise ValueError("configs is empty: a population needs at least one member")
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"a population's normalization must be one of {NORMALIZATIONS} "
                             f"(what the compiled step runs), got {normalization!r}")
        optimizer_class = type(optimizers.make_optimizer(optimizer))
        hyper_keys = tuple(inspect.signature(optimizer_class.__init__).parameters)[1:]
        allowed = NET_KEYS + hyper_keys
        for i, config in enumerate(configs):
            unknown = sorted(set(config) - set(allowed))
            if unknown:
                raise ValueError(f"configs[{i}] has unknown keys {unknown}; a member of a "
                                 f"{optimizer_class.__name__} population takes "
                                 f"{list(allowed)}")
        self.configs = configs
        # The arguments every member shares, refused as the population's (not configs[0]'s)
        nets.MultiLayerNetExtend(input_size, hidden_size_list, output_size, activation,
                                 use_dropout=use_dropout, use_batchnorm=use_batchnorm,
                                 normalization=normalization, groups=groups, dtype=dtype,
                                 seed=0)
        # One member's net at a time, copied into its rows and dropped: the peak is the
        # population's arenas and one net.
        self._fill(len(configs), (
            (nets.MultiLayerNetExtend(
                input_size, hidden_size_list, output_size, activation,
                config.get("weight_init_std", "relu"), config.get("weight_decay_lambda", 0),
                use_dropout, use_batchnorm=use_batchnorm, normalization=normalization,
                groups=groups, dropout_ratio=config.get("dropout_ratio", 0.5), dtype=dtype,
                seed=config.get("seed")),
             optimizer_class(**{k: v for k, v in config.items() if k in hyper_keys}))
            for config in configs))

    @classmethod
    def from_members(cls, members, num_threads=None):
        """A population whose member i continues from ``members[i]``, a pair of a
        ``fastnet.nets.MultiLayerNetExtend`` and a ``fastnet.optimizers`` optimizer
        (copied, as ``set_member`` copies them): for members built or restored
        elsewhere (a sweep's checkpoints).  The nets share one architecture,
        normalization (one of ``NORMALIZATIONS``, with its groups), activation and dtype,
        and the
        optimizers one class.  ``configs`` is None for each member.

        Raises ValueError for no members or nets that differ, TypeError for optimizers
        of different classes."""
        members = list(members)
        if not members:
            raise ValueError("members is empty: a population needs at least one member")
        for i, member in enumerate(members):
            if not isinstance(member, tuple | list) or len(member) != 2:
                raise TypeError(f"members[{i}] must be a (net, optimizer) pair, got "
                                f"{_class_name(member)}")
        net, optimizer = members[0]
        if (not isinstance(net, nets.MultiLayerNetExtend)
                or net.normalization not in NORMALIZATIONS):
            raise ValueError(f"members' nets must be fastnet.nets.MultiLayerNetExtend with a "
                             f"normalization in {NORMALIZATIONS}, got {_class_name(net)} "
                             f"with {getattr(net, 'normalization', None)!r}")
        for i, (_, other) in enumerate(members):
            if type(other) not in optimizers.OPTIMIZERS.values():
                raise TypeError(f"members[{i}]'s optimizer must be one of fastnet.optimizers' "
                                f"classes, got {_class_name(other)}")
            if type(other) is not type(optimizer):
                raise TypeError(f"members' optimizers must be instances of one "
                                f"fastnet.optimizers class ({_class_name(optimizer)}, "
                                f"members[0]'s), got {_class_name(other)} in members[{i}]")
        population = cls.__new__(cls)
        population.num_threads = _num_threads(num_threads)
        population.configs = [None] * len(members)
        population._fill(len(members), members, "members")
        return population

    def _fill(self, k, members, source="configs"):
        """Arenas for ``k`` members, filled from ``members``, (net, optimizer) pairs
        (made from ``source``, which an error names)."""
        # ``next``, not ``enumerate``, which keeps the pair it returned last: member i's
        # net is dropped before ``members`` makes the next one, one net at a time
        members = iter(members)
        for i in range(k):
            try:
                net, optimizer = next(members)  # configs: the member's net made here
                if i == 0:
                    self._allocate(net, k, type(optimizer))
                self.set_member(i, net, optimizer)
            except (TypeError, ValueError) as err:
                raise type(err)(f"{source}[{i}]: {err}") from None
            del net, optimizer
        self._workspaces = (0, [])  # (batch size, one training workspace per share)
        self._infer_ws = (0, [])  # (rows per chunk, one inference workspace per share)

    def _allocate(self, first, k, optimizer_class):
        """The arenas of ``k`` members shaped as ``first``, a member's net, stepped by
        ``optimizer_class``."""
        self.optimizer = optimizer_class.__name__
        self._kind = kernels.OPTIMIZER_CODES[self.optimizer]
        self.input_size, self.output_size = first.input_size, first.output_size
        self.activation, self.dtype = first.activation, first.dtype
        self.layout = NetLayout(first.input_size, first.hidden_size_list, first.output_size,
                                use_dropout=first.use_dropout,
                                normalization=first.normalization, groups=first.groups)
        # shared by the members: the normalization layers' eps and the momenta of the
        # layers with running statistics (batch or switchable norm)
        self._norm_eps, self._bn_momenta = _shared_norm_args(first)
        size, n_dropout = self.layout.size, len(_layers(first, "Dropout"))
        self.indices = np.arange(k)
        _validate.fits_in_memory(
            (2 + len(optimizer_class.state_names)) * k * size * self.dtype.itemsize,
            f"a population of {k:,} members of {size:,} {self.dtype.name} parameters (their "
            f"parameters, gradients and {optimizer_class.__name__} state)")
        self._params = aligned_empty((k, size), self.dtype)
        self._grads = aligned_zeros((k, size), self.dtype)
        self._running = aligned_zeros((k, self.layout.running_size), self.dtype)
        self._states = aligned_zeros((len(optimizer_class.state_names), k, size), self.dtype)
        self._lambdas = np.zeros(k)
        self._ratios = np.zeros((k, n_dropout))
        self._seeds = np.zeros((k, n_dropout), np.uint64)
        self._steps = np.zeros(k, np.uint64)
        self._optimizers = [None] * k

    def __len__(self):
        return self._params.shape[0]

    # ------------------------------------------------------------ members in and out

    def _check_index(self, i):
        if isinstance(i, bool) or not isinstance(i, numbers.Integral):
            raise TypeError(f"a member's index must be an int, got {i!r}")
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
        mismatch = self._mismatch(net)
        if mismatch is not None:
            raise ValueError(f"net must be a fastnet.nets.MultiLayerNetExtend of the "
                             f"population's architecture, normalization (and groups), "
                             f"activation and dtype: {mismatch}")
        # Everything checked before anything is written: a refused call leaves the member
        net._sync_params()  # params and running statistics re-bound by the user, checked
        eps, momenta = _shared_norm_args(net)
        if eps != self._norm_eps or not np.array_equal(momenta, self._bn_momenta):
            raise ValueError(f"net's normalization layers have eps={eps} and running "
                             f"statistics' momenta {momenta.tolist()}, the population's "
                             f"members share eps={self._norm_eps} and momenta "
                             f"{self._bn_momenta.tolist()}")
        dropouts = _layers(net, "Dropout")
        ratios = net._dropout_ratios()  # refuses an inverted Dropout layer, as the net does
        states = self._optimizer_states(optimizer) if optimizer is not None else None
        for key, view in self.layout.params(self._params[i]).items():
            view[...] = net.params[key]
        for (mean, var), bn in zip(self.layout.running(self._running[i]),
                                   _layers(net, nets.RUNNING_LAYERS)):
            mean[...], var[...] = bn.running_mean, bn.running_var
        self._ratios[i] = ratios
        self._seeds[i] = [d.seed for d in dropouts]
        self._steps[i] = dropouts[0].step if dropouts else 0
        self._lambdas[i] = net.weight_decay_lambda
        if optimizer is None:
            return
        kept = copy.copy(optimizer)
        for s, name in enumerate(kept.state_names):
            for key, view in self.layout.params(self._states[s, i]).items():
                view[...] = states[name].get(key, 0)
            setattr(kept, name, {})  # the population's arenas hold the state
        kept.__dict__.pop("_arenas", None)
        self._optimizers[i] = kept

    def _mismatch(self, net):
        """What ``net`` differs from the members in (for ``set_member``), or None."""
        if not isinstance(net, nets.MultiLayerNetExtend):
            return f"got a {type(net).__module__}.{type(net).__name__}"
        layout = self.layout
        for name, theirs, ours in (
                ("sizes", (net.input_size, list(net.hidden_size_list), net.output_size),
                 (self.input_size, layout.hidden_size_list, self.output_size)),
                ("dtype", np.dtype(net.dtype).name, np.dtype(self.dtype).name),
                ("activation", net.activation, self.activation),
                ("normalization", net.normalization, layout.normalization),
                ("use_dropout", net.use_dropout, layout.use_dropout),
                ("groups", net.groups if net.normalization in ("group", "instance") else None,
                 layout.groups if layout.normalization in ("group", "instance") else None)):
            if theirs != ours:
                return f"the net's {name} {theirs!r}, the population's {ours!r}"
        return None

    def _optimizer_states(self, optimizer):
        """``optimizer``'s state dicts by name, each entry an array of its parameter's
        shape (or a scalar); ValueError for an entry of another shape or parameter (the
        state of another architecture's net)."""
        shapes = {key: shape for key, (_, shape) in self.layout.views.items()}
        states = {}
        for name in optimizer.state_names:
            state = {key: np.asarray(value) for key, value in getattr(optimizer, name).items()}
            for key, value in state.items():
                if key not in shapes or value.shape not in ((), shapes[key]):
                    raise ValueError(
                        f"the optimizer's {name}[{key!r}] (shape {value.shape}) is not a state "
                        f"of the population's net (its parameters: "
                        f"{', '.join(f'{k} {v}' for k, v in shapes.items())}); was it "
                        f"trained on a net of another architecture?")
            states[name] = state
        return states

    def member(self, i):
        """Member ``i`` as a plain ``fastnet.nets.MultiLayerNetExtend``: a copy of its
        parameters, running statistics, weight decay and dropout streams, which trains
        on as the member would."""
        i = self._check_index(i)
        layout = self.layout
        net = nets.MultiLayerNetExtend(
            self.input_size, layout.hidden_size_list, self.output_size, self.activation,
            weight_decay_lambda=float(self._lambdas[i]), use_dropout=layout.use_dropout,
            normalization=layout.normalization, groups=layout.groups,
            dtype=self.dtype, seed=0)  # any seed: every parameter and stream is overwritten
        for key, view in layout.params(self._params[i]).items():
            net.params[key][...] = view
        for (mean, var), bn, momentum in zip(layout.running(self._running[i]),
                                             _layers(net, nets.RUNNING_LAYERS),
                                             self._bn_momenta):
            bn.running_mean[...], bn.running_var[...] = mean, var
            bn.momentum = float(momentum)
        for _, layer in net._eps_layers:
            layer.eps = self._norm_eps
        for d, seed, ratio in zip(_layers(net, "Dropout"), self._seeds[i], self._ratios[i]):
            d.seed, d.step, d.dropout_ratio = int(seed), int(self._steps[i]), float(ratio)
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
        self._params, self._grads = aligned_copy(self._params[mask]), aligned_copy(
            self._grads[mask])
        self._running = aligned_copy(self._running[mask])
        self._states = aligned_copy(self._states[:, mask])
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

    def _shares(self):
        """How many threads step members at once: ``num_threads``, or fastnet's thread
        count (``fastnet.threads.get_num_threads``), at most one per member."""
        wanted = self.num_threads or threads.get_num_threads()
        return min(wanted, len(self))

    def _training_workspaces(self, n, shares):
        """One training workspace for batches of ``n`` rows per share (kept across
        steps; a new batch size replaces them)."""
        if self._workspaces[0] != n:
            self._workspaces = (n, [])
        kept = self._workspaces[1]
        while len(kept) < shares:
            ws = self.layout.workspace(n, self.dtype)
            ws["x_rows"] = np.empty((n, self.input_size), self.dtype)  # for ``rows``
            ws["label_rows"] = np.empty(n, np.int64)
            kept.append(ws)
        return kept

    def _penalties(self, out, first, last):
        """``out[k] = 0.5 * lambda * sum(W^2)`` for members ``first`` to ``last - 1``, as
        one net's ``loss`` adds it (in a share of ``threads.run_shares``: the dot product
        is single-threaded there, so its bits do not depend on the thread count).  A
        member whose weights overflow gets an infinite penalty, and with it a loss that
        says so (``train_step``'s result), without a NumPy warning on any thread."""
        weights = self._params[:, :self.layout.n_decayed]
        with np.errstate(over="ignore", invalid="ignore"):
            for k in range(first, last):
                out[k] = (0.5 * self._lambdas[k] * float(np.dot(weights[k], weights[k]))
                          if self._lambdas[k] else 0.0)

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
        if self.layout.normalization == "switchable":  # as one net refuses it
            _validate.batch_statistics("SwitchableNormalization", n, (n, self.input_size))
        shares = self._shares()
        workspaces = self._training_workspaces(n, shares)
        lambdas = _validate.fit_in(self._lambdas, self.dtype,
                                   "the members' weight_decay_lambda")
        begun = []  # each member's optimizer begins its step (Adam counts it)...
        try:
            for i, opt in enumerate(self._optimizers):
                try:
                    begun.append(opt._begin_flat_step(self.dtype, 0.0)[:-1])
                except (TypeError, ValueError) as err:
                    raise type(err)(f"member {i}: {err}") from None
            hyper = np.stack(begun)
        except (TypeError, ValueError):  # ... and takes it back when one is refused
            for opt in self._optimizers[:len(begun)]:
                opt._cancel_step()
            raise
        keys = _book.stream_key(self._seeds, self._steps[:, None])
        if self._seeds.size:
            self._steps += np.uint64(1)
        losses, penalties = np.empty(len(self)), np.empty(len(self))

        def step(first, last, share):
            ws = workspaces[share]
            self._penalties(penalties, first, last)  # of the weights before the update
            kernels.population_train_step(
                x, labels, rows, self.layout.dims, self.layout.table,
                activations.CODES[self.activation], self._params, self._grads, self._running,
                self.layout.norm, self._bn_momenta, self._norm_eps, self._ratios, keys,
                self._kind, hyper, self._states, lambdas, self.layout.n_decayed, ws["acts"],
                ws["xns"], ws["stds"], ws["stats"], ws["masks"], ws["scratch"], ws["logits"],
                ws["x_rows"], ws["label_rows"], losses, first, last)

        threads.run_shares(step, len(self), shares)
        return losses + penalties

    # --------------------------------------------------------------------- inference

    def _inference(self, kernel, x, out, shares, labels=None, penalties=None,
                   with_logits=True):
        """``kernel`` (an inference kernel of ``fastnet.kernels.population``; one without
        a logits workspace when not ``with_logits``) over every member of ``x`` (1 or K,
        N, D) into ``out``, members shared between threads,
        each with workspaces for chunks of up to ``nets.INFERENCE_CHUNK`` rows (kept
        and grown across calls); ``penalties``, when given, receives the weight-decay
        terms."""
        rows = min(x.shape[1], nets.INFERENCE_CHUNK)
        if self._infer_ws[0] < rows:
            self._infer_ws = (rows, [])
        kept = self._infer_ws[1]
        while len(kept) < shares:
            kept.append(self.layout.inference_workspace(self._infer_ws[0], self.dtype))
        shared = (self.layout.dims, self.layout.table, activations.CODES[self.activation],
                  self._params, self._running, self.layout.norm, self._norm_eps,
                  (1 - self._ratios).astype(self.dtype), nets.INFERENCE_CHUNK)
        head = (x,) if labels is None else (x, labels)

        def evaluate(first, last, share):
            stds, scratch, logits = kept[share]
            tail = (stds, scratch, logits) if with_logits else (stds, scratch)
            kernel(*head, *shared, *tail, out, first, last)
            if penalties is not None:
                self._penalties(penalties, first, last)

        threads.run_shares(evaluate, len(self), shares)
        return out

    def predict(self, x):
        """Every member's logits of ``x`` in inference mode, shape (K, N, C); ``x`` is
        (N, D) for all or (K, N, D), one batch per member."""
        x = self._inputs(x)
        out = np.empty((len(self), x.shape[1], self.output_size), self.dtype)
        return self._inference(kernels.population_predict, x, out, self._shares(),
                               with_logits=False)

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
        penalties = np.empty(len(self))
        out = self._inference(kernels.population_cross_entropy, x, np.empty(len(self)),
                              self._shares(), labels, penalties)
        return out + penalties

    def accuracy(self, x, t):
        """Every member's fraction of samples whose largest logit is the label, shape
        (K,); ``x`` and ``t`` as in ``train_step``.  As the book's ``np.argmax``, a NaN
        logit counts as the largest: a diverged member's samples all go to their first
        NaN logit's class (class 0 where all are NaN), so its accuracy is no sign of
        divergence; its ``loss`` (NaN) is."""
        x, labels = self._batches(x, t)
        y = self._inference(kernels.population_predict_labels, x,
                            np.empty((len(self), x.shape[1]), np.int64), self._shares())
        return np.sum(y == labels, axis=1) / float(x.shape[1])
