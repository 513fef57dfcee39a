"""Training one trial of a sweep, resumable at any step, evaluated at planned epochs.

A trial is a configuration (``fastnet.sweep.space``'s canonical names), a seed and the
sweep's data.  Its training is a pure function of those: the net starts from
``MultiLayerNetExtend(..., seed=net_seed)`` and step ``s`` trains on the slice ``j`` of
epoch ``e``'s permutation (``e, j = divmod(s, steps_per_epoch)``), drawn from
``SeedSequence([order_seed, e])``, with the learning rate ``lr * schedule(e)`` where
the configuration has an ``lr_schedule`` (per epoch, as the Trainer applies it).  So a
trial stopped at a rung and continued later from its ``Checkpoint`` (parameters,
running statistics, dropout streams, optimizer state; the schedule's position is the
step) ends bit for bit where an uninterrupted run ends, and a trial trained again
from scratch after a crash retraces the same steps.

**Thread-count independence.**  OpenBLAS's last bits can depend on how many threads
split a GEMM (AVX-512 kernels: an inner dimension over 448 that is not a multiple of 32,
such as MNIST's 784; AVX2 kernels: most products).  So a trial trains with BLAS
single-threaded (``fastnet.threads.blas_single_threaded``), as a population's members
do, and Numba's kernels on the worker's threads, which reduce in fixed chunks: its
curve is the same bit for bit on any thread count, alone or in a population.  A sweep's
cores go to whole trials instead: workers, and a population's members (a trial alone
on a worker of several threads steps 1.3-1.4x slower than with BLAS on all of them).

Recorded per evaluation: the cross-entropy (without the weight-decay term, so that
trials with different decays compare) and the accuracy on the validation set and on
the training-evaluation set (the training images, or a fixed subset of them), from one
inference pass over each.
"""
import importlib
import math
import numbers
import socket
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

from .. import _validate
from ..schedules import make_schedule
from .space import OPTIMIZER_HYPERPARAMETERS, schedule_spec

# The configuration entries MultiLayerNetExtend takes as keyword arguments, and the
# defaults of those a configuration made before they were searchable lacks.
NET_OPTIONS = ("activation", "weight_init_std", "weight_decay_lambda", "use_dropout",
               "dropout_ratio", "use_batchnorm")
NEWER_NET_OPTIONS = {"normalization": None, "groups": 2}
# The book's names of each optimizer's state (dicts keyed like ``params``).
OPTIMIZER_STATE = {"SGD": (), "Momentum": ("v",), "Nesterov": ("v",), "AdaGrad": ("h",),
                   "RMSprop": ("h",), "Adam": ("m", "v"), "AdamW": ("m", "v")}


@dataclass(frozen=True)
class TrialData:
    """The arrays every trial of a sweep trains and is evaluated on.

    ``x_*``: C-contiguous float arrays ``(N, input_size)`` of ``dtype``, copies of
    the images given; ``t_*``: int64 class indices ``(N,)``.
    ``*_eval`` is the part of the training set evaluated at each planned epoch.
    """

    x_train: np.ndarray
    t_train: np.ndarray
    x_val: np.ndarray
    t_val: np.ndarray
    x_train_eval: np.ndarray
    t_train_eval: np.ndarray
    input_size: int
    output_size: int

    @classmethod
    def from_arrays(cls, train, validation, train_eval_size=None, dtype=np.float32,
                    output_size=None):
        """Copy and convert ``train = (x, t)`` and ``validation = (x, t)``: ``x`` of shape
        (N, D) (or (N, ...), flattened), ``t`` class indices (N,) or (N, 1), or one-hot
        (N, C) (a single 1 per row).  ``train_eval_size``: how many of the first
        training images are evaluated (a positive integer, default all).
        ``output_size``: the class count (a positive integer; default the one-hot width
        or the largest label + 1).  Raises ``ValueError`` for empty sets or images
        without features, mismatched lengths or feature counts, labels that are not
        class indices in ``0 .. output_size - 1`` (naming the first bad one), images
        with NaN or infinite values (in ``dtype``: 1e39 overflows float32), and a
        ``train_eval_size`` or ``output_size`` that is not a positive integer;
        ``TypeError`` for complex images (and NumPy's error for images that do not
        convert to ``dtype``)."""
        train_eval_size = _validate.positive_int(train_eval_size, "train_eval_size")
        output_size = _validate.positive_int(output_size, "output_size")
        arrays, widths = [], []
        for name, (x, t) in (("training", train), ("validation", validation)):
            x = _validate.real_values(x, f"the {name} images")
            t = np.asarray(t)
            if x.ndim < 2 or len(x) == 0 or x[0].size == 0:
                raise ValueError(f"the {name} images must be a non-empty array (N, D), "
                                 f"got shape {x.shape}")
            if t.ndim == 2 and t.shape[1] > 1:  # one-hot rows
                widths.append(t.shape[1])
                try:
                    t = _validate.labels(t, len(x), t.shape[1])
                except ValueError as err:
                    raise ValueError(f"the {name} labels: {err}") from None
            elif t.ndim == 2 and t.shape[1] == 1:  # a column of class indices
                t = t[:, 0]
            if t.shape != (len(x),):
                raise ValueError(f"the {name} labels must have shape ({len(x)},) or "
                                 f"({len(x)}, C), got {np.shape(t)}")
            arrays.append((x.reshape(len(x), -1), _class_indices(t, name, output_size)))
        (x, t), (xv, tv) = arrays
        if x.shape[1] != xv.shape[1]:
            raise ValueError(f"training images have {x.shape[1]} features, validation "
                             f"images {xv.shape[1]}")
        classes = output_size or max([*widths, int(max(t.max(), tv.max())) + 1])
        with np.errstate(over="ignore"):  # an overflow to inf is refused just below
            x, xv = (np.array(a, dtype=dtype, order="C") for a in (x, xv))
        for name, images in (("training", x), ("validation", xv)):
            finite = np.isfinite(images).all(axis=1)
            if not finite.all():  # every trial would diverge on them
                raise ValueError(f"the {name} images hold NaN or infinite values (in "
                                 f"{np.dtype(dtype).name}), the first in image "
                                 f"{np.flatnonzero(~finite)[0]}")
        n_eval = len(x) if train_eval_size is None else min(train_eval_size, len(x))
        return cls(x, t, xv, tv, x[:n_eval], t[:n_eval], x.shape[1], classes)


def _class_indices(t, name, output_size):
    """``t`` (N,) as int64 class indices; ValueError naming the first value that is not
    an integer from 0 (below ``output_size`` when given)."""
    try:
        labels = t.astype(np.int64)
        bad = (labels != t) | (labels < 0)
        if output_size is not None:
            bad |= labels >= output_size
    except (TypeError, ValueError):  # None or text among them: the first that is no number
        bad = np.array([isinstance(v, bool) or not isinstance(v, numbers.Real)
                        for v in t.tolist()]) | (not t.size)
    if bad.any():
        below = "" if output_size is None else f" below output_size={output_size}"
        first = int(np.argmax(bad))
        raise ValueError(f"the {name} labels must be class indices, integers from 0{below}; "
                         f"got {t.tolist()[first]!r} at index {first}")
    return labels


def steps_per_epoch(n_train, batch_size):
    """Mini-batches per epoch: whole batches of a permutation (at least one, of all
    images, when there are fewer than ``batch_size``)."""
    return max(n_train // batch_size, 1)


def epoch_step(epoch, per_epoch):
    """The step count at which ``epoch`` (a float) ends, as the book's Trainer counts:
    ``int(epoch * steps_per_epoch)``."""
    return int(epoch * per_epoch + 1e-9)


@dataclass
class Checkpoint:
    """A trial's training state after ``step`` steps (arrays are copies)."""

    step: int
    params: dict
    running: list
    dropout_steps: list
    optimizer_state: dict
    optimizer_iter: object = None


@dataclass
class Unit:
    """Work for a worker: train trial ``index`` from ``checkpoint`` (None: from scratch)
    to ``stop_epoch``, evaluating at each of ``eval_epochs`` in between."""

    index: int
    config: dict
    seed: int
    stop_epoch: float
    eval_epochs: tuple
    checkpoint: Checkpoint = None


@dataclass
class Outcome:
    """What training a ``Unit`` gave: the evaluations in its range, and either a
    ``checkpoint`` to continue from (``status == 'running'``: it reached its stop
    epoch before the trial's last) or a final status."""

    index: int
    status: str
    epochs: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    wall_time: float = 0.0
    host: str = ""
    error: str = None
    checkpoint: Checkpoint = None


def _net_seeds(seed):
    net_seed, order_seed = np.random.SeedSequence(seed).generate_state(2, np.uint64)
    return int(net_seed >> np.uint64(1)), int(order_seed)


BACKENDS = {"fastnet": "fastnet", "reference": "fastnet.reference"}


def build(config, seed, data, dtype=np.float32, backend="fastnet"):
    """The net and optimizer of trial ``(config, seed)`` on ``data``'s input,
    from ``backend``: 'fastnet' (the fused step) or 'reference' (the NumPy oracle)."""
    nets = importlib.import_module(f"{BACKENDS[backend]}.nets")
    optimizers = importlib.import_module(f"{BACKENDS[backend]}.optimizers")

    net_seed, _ = _net_seeds(seed)
    args = (data.output_size,)
    kwargs = {key: config[key] for key in NET_OPTIONS}
    kwargs.update({key: config.get(key, default) for key, default in NEWER_NET_OPTIONS.items()})
    hidden = config["hidden_size_list"]  # Space.complete applied hidden_size/_layers
    net = nets.MultiLayerNetExtend(data.input_size, hidden, *args, seed=net_seed, dtype=dtype, **kwargs)
    name = config["optimizer"]
    hyper = {keyword: config[key] for key, keyword in OPTIMIZER_HYPERPARAMETERS[name].items()
             if config.get(key) is not None}  # None (a config made before): its default
    return net, optimizers.make_optimizer(name, **hyper)


def _layers(net, kind):
    """``net``'s layers of ``kind`` ('BatchNorm', 'Dropout'), in order."""
    return [layer for key, layer in net.layers.items() if key.startswith(kind)]


def _with_running_statistics(net):
    """``net``'s layers that keep running statistics (batch and switchable norm), in order."""
    return [layer for layer in net.layers.values() if hasattr(layer, "running_mean")]


def checkpoint(net, optimizer, step):
    """A copy of ``net``'s and ``optimizer``'s training state after ``step`` steps."""
    state = {name: {key: np.array(value) for key, value in getattr(optimizer, name).items()}
             for name in OPTIMIZER_STATE[type(optimizer).__name__]}
    return Checkpoint(step, {key: np.array(value) for key, value in net.params.items()},
                      [(np.array(layer.running_mean), np.array(layer.running_var))
                       for layer in _with_running_statistics(net)],
                      [d.step for d in _layers(net, "Dropout")], state, getattr(optimizer, "iter", None))


def restore(net, optimizer, ckpt):
    """Put ``ckpt``'s state into a freshly built ``net`` and ``optimizer``."""
    for key, value in ckpt.params.items():
        net.params[key][...] = value
    for layer, stats in zip(_with_running_statistics(net), ckpt.running):
        for name, value in zip(("running_mean", "running_var"), stats):
            if getattr(layer, name) is None:  # made at the first forward: make it now
                setattr(layer, name, value.copy())
            else:
                getattr(layer, name)[...] = value
    for d, step in zip(_layers(net, "Dropout"), ckpt.dropout_steps):
        d.step = step
    for name, values in ckpt.optimizer_state.items():
        getattr(optimizer, name).update({key: v.copy() for key, v in values.items()})
    if ckpt.optimizer_iter is not None:
        optimizer.iter = ckpt.optimizer_iter


def evaluate(net, x, t):
    """Mean cross-entropy (float64, no weight decay) and accuracy of ``net`` on
    ``(x, t)`` from one inference pass."""
    return evaluate_logits(net.predict(x), t)


def evaluate_logits(logits, t):
    """Mean cross-entropy (float64) and accuracy of ``logits`` (N, C) for labels ``t``
    (N,): two floats; of ``logits`` (K, N, C), K nets' logits: two arrays of K.  Logits
    of a net that diverged give a non-finite loss (its 'diverged' status), not a NumPy
    warning."""
    logits = logits.astype(np.float64)
    top = logits.max(axis=-1)
    with np.errstate(over="ignore", invalid="ignore"):
        log_z = top + np.log(np.exp(logits - top[..., None]).sum(axis=-1))
        loss = np.mean(log_z - logits[..., np.arange(len(t)), t], axis=-1)
    acc = np.mean(np.argmax(logits, axis=-1) == t, axis=-1)
    return (float(loss), float(acc)) if logits.ndim == 2 else (loss, acc)


class _Order:
    """The mini-batch index slices of one trial: epoch ``e``'s permutation comes from
    ``SeedSequence([order_seed, e])``, so any step's batch is known without the ones
    before it."""

    def __init__(self, order_seed, n, batch_size):
        self.seed, self.n, self.batch = order_seed, n, min(batch_size, n)
        self.per_epoch = steps_per_epoch(n, batch_size)
        self._epoch, self._perm = None, None

    def batch_at(self, step):
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, epoch]))
            self._epoch, self._perm = epoch, rng.permutation(self.n)
        return self._perm[j * self.batch:(j + 1) * self.batch]


def train_unit(unit, data, dtype=np.float32, backend="fastnet"):
    """Train ``unit`` on ``data``, with BLAS single-threaded and Numba's kernels on the
    calling thread's threads; never raises for a failing trial (the ``Outcome`` says
    'failed' with the error) and stops at the first non-finite loss ('diverged'; the
    overflows on the way there are that status, not NumPy warnings)."""
    from ..threads import blas_single_threaded

    start = time.perf_counter()
    out = Outcome(unit.index, "running", host=socket.gethostname())
    try:
        with (blas_single_threaded(),  # as a population's member (see the module doc)
              np.errstate(over="ignore", invalid="ignore")):
            _train(unit, data, dtype, backend, out)
    except Exception as err:  # noqa: BLE001 (a trial's bug must not stop the sweep)
        _fail(out, err)
    out.wall_time = time.perf_counter() - start
    return out


def _train(unit, data, dtype, backend, out):
    config = unit.config
    net, optimizer = build(config, unit.seed, data, dtype, backend)
    order = _Order(_net_seeds(unit.seed)[1], len(data.x_train), config["mini_batch_size"])
    if unit.checkpoint is not None:
        restore(net, optimizer, unit.checkpoint)
    step, evals = _plan(unit, order.per_epoch)
    spec = schedule_spec(config)
    schedule, lr0 = (make_schedule(**spec), optimizer.lr) if spec else (None, None)
    x, t = data.x_train, data.t_train
    for eval_step, epoch in evals:
        while step < eval_step:
            if schedule is not None:  # per epoch, as the Trainer applies it
                optimizer.lr = lr0 * schedule(step // order.per_epoch)
            rows = order.batch_at(step)
            loss = _step(net, x[rows], t[rows], optimizer)
            step += 1
            if not math.isfinite(loss):
                out.status, out.error = "diverged", _why_diverged("training", loss,
                                                                  f"at step {step}")
                return
        for prefix, (xs, ts) in (("train", (data.x_train_eval, data.t_train_eval)),
                                 ("val", (data.x_val, data.t_val))):
            loss, acc = evaluate(net, xs, ts)
            getattr(out, f"{prefix}_loss").append(loss)
            getattr(out, f"{prefix}_acc").append(acc)
        out.epochs.append(float(epoch))
        if not math.isfinite(out.val_loss[-1]):
            out.status, out.error = "diverged", _why_diverged(
                "validation", out.val_loss[-1], f"after epoch {epoch:g}")
            return
    if unit.stop_epoch < config["epochs"]:
        out.checkpoint = checkpoint(net, optimizer, step)
    else:
        out.status = "done"


def _why_diverged(what, loss, when):
    """A diverged trial's ``error``: which loss stopped being finite, and when."""
    return f"the {what} loss was {loss} {when}"


def _plan(unit, per_epoch):
    """``unit``'s first step and its evaluations, ``(step count, epoch)`` pairs in order:
    each of its ``eval_epochs`` after its checkpoint up to its stop epoch, and that."""
    step = unit.checkpoint.step if unit.checkpoint is not None else 0
    stop = epoch_step(unit.stop_epoch, per_epoch)
    if stop == 0:  # no step to train, no curve to record
        what = ("epochs is" if unit.stop_epoch >= unit.config["epochs"] else
                "epochs, the pruner's rung (--min-epochs), is")
        raise ValueError(f"{unit.stop_epoch:g} {what} less than one step ({per_epoch} "
                         f"steps an epoch): train for at least {1 / per_epoch:.3g} epochs")
    return step, sorted({epoch_step(e, per_epoch): e for e in (*unit.eval_epochs, unit.stop_epoch)
                         if step < epoch_step(e, per_epoch) <= stop}.items())


def _step(net, x, t, optimizer):
    """One training step; the mini-batch loss where the net's fused step gives it (the
    reference's book path does not: its divergence shows at the next evaluation)."""
    if hasattr(net, "train_step"):
        return net.train_step(x, t, optimizer)
    optimizer.update(net.params, net.gradient(x, t))
    return 0.0


def run_units(units, data, dtype=np.float32, backend="fastnet", threads=None):
    """Train ``units`` (a worker's chunk); their ``Outcome`` list, in order.

    Units that can step together (``population_key``: one architecture, optimizer,
    batch size and step range) train as one ``fastnet.population.Population`` on
    ``threads`` threads (None: the calling thread's ``fastnet.get_num_threads()``),
    the others one by one.  A trial's results are the same either way, bit for bit
    (see ``train_population``)."""
    groups = {}
    for unit in units:
        key = population_key(unit, backend)
        groups.setdefault(key if key is not None else ("alone", unit.index), []).append(unit)
    outcomes = {}
    for key, group in groups.items():
        if key[0] == "alone" or len(group) == 1:
            outcomes.update((u.index, train_unit(u, data, dtype, backend)) for u in group)
        else:
            outcomes.update((o.index, o) for o in train_population(group, data, dtype,
                                                                    threads))
    return [outcomes[unit.index] for unit in units]


def population_key(unit, backend="fastnet"):
    """What trials must share to step as one population: the net's shape and options
    (group and instance norm's groups among them), the optimizer, the batch size, the
    epochs, and the unit's step range and evaluations; None for a unit that trains
    alone (the reference backend, a normalization the population's compiled step does
    not run, a learning-rate schedule)."""
    from ..population import NORMALIZATIONS

    config = unit.config
    if (backend != "fastnet" or config.get("normalization") not in NORMALIZATIONS
            or schedule_spec(config)):
        return None
    grouped = config.get("normalization") in ("group", "instance")
    return ("population", tuple(config["hidden_size_list"]), config["activation"],
            config["use_batchnorm"], config.get("normalization"),
            config.get("groups") if grouped else None, config["use_dropout"],
            config["optimizer"], config["mini_batch_size"], config["epochs"],
            unit.checkpoint.step if unit.checkpoint is not None else 0, unit.stop_epoch,
            tuple(unit.eval_epochs))


def train_population(units, data, dtype=np.float32, threads=None):
    """Train ``units`` (one ``population_key``) together; their ``Outcome`` list.

    Each trial's net and optimizer are built (and restored) as ``train_unit`` builds
    them, then stepped as members of one ``fastnet.population.Population``, each on its
    own mini-batches (gathered in the compiled step).  A member computes what its net
    alone computes with BLAS single-threaded, as ``train_unit`` trains it, so a trial's
    curve is the same bit for bit whichever way it trained, on any ``threads``.  A member whose loss is not finite is recorded diverged
    and dropped, the others go on; a trial that fails to build fails alone; an error
    while stepping fails the members still training.  Each trial's wall time is its
    share of the group's."""
    from ..population import Population

    start = time.perf_counter()
    outs = [Outcome(u.index, "running", host=socket.gethostname()) for u in units]
    members, live = [], []
    for i, unit in enumerate(units):
        try:
            net, optimizer = build(unit.config, unit.seed, data, dtype)
            if unit.checkpoint is not None:
                restore(net, optimizer, unit.checkpoint)
        except Exception as err:  # noqa: BLE001 (as train_unit: the trial fails alone)
            _fail(outs[i], err)
            continue
        members.append((net, optimizer))
        live.append(i)
    try:
        if live:
            _train_members(units, live, Population.from_members(members, threads), data,
                           outs)
    except Exception as err:  # noqa: BLE001
        for out in outs:
            if out.status == "running" and out.checkpoint is None:
                _fail(out, err)
    share = (time.perf_counter() - start) / len(units)
    for out in outs:
        out.wall_time = share
    return outs


def _fail(out, err):
    out.status = "failed"
    out.error = "".join(traceback.format_exception_only(type(err), err)).strip()
    out.checkpoint = None


def _train_members(units, live, population, data, outs):
    """Step ``population`` (members: ``units[i]`` for i in ``live``) through the units'
    common plan, recording into ``outs``."""
    orders = [_Order(_net_seeds(units[i].seed)[1], len(data.x_train),
                     units[i].config["mini_batch_size"]) for i in live]
    step, evals = _plan(units[0], orders[0].per_epoch)

    def drop(losses, what, when):
        """Stop the live members whose ``what`` loss (``losses``, in live order) is not
        finite, saying so ``when``."""
        nonlocal live, orders
        finite = np.isfinite(losses)
        for k in np.flatnonzero(~finite):
            outs[live[k]].status = "diverged"
            outs[live[k]].error = _why_diverged(what, float(losses[k]), when)
        if finite.any() and not finite.all():
            population.keep(finite)
        live = [i for i, ok in zip(live, finite) if ok]
        orders = [order for order, ok in zip(orders, finite) if ok]

    for eval_step, epoch in evals:
        while step < eval_step and live:
            rows = np.stack([order.batch_at(step) for order in orders])
            losses = population.train_step(data.x_train, data.t_train, rows=rows)
            step += 1
            if not np.isfinite(losses).all():
                drop(losses, "training", f"at step {step}")
        if not live:
            return
        for prefix, (xs, ts) in (("train", (data.x_train_eval, data.t_train_eval)),
                                 ("val", (data.x_val, data.t_val))):
            losses, accs = evaluate_logits(population.predict(xs), ts)
            for i, loss, acc in zip(live, losses.tolist(), accs.tolist()):
                getattr(outs[i], f"{prefix}_loss").append(loss)
                getattr(outs[i], f"{prefix}_acc").append(acc)
        for i in live:
            outs[i].epochs.append(float(epoch))
        drop(np.array([outs[i].val_loss[-1] for i in live]), "validation",
             f"after epoch {epoch:g}")
        if not live:
            return
    for k, i in enumerate(live):
        if units[i].stop_epoch < units[i].config["epochs"]:
            outs[i].checkpoint = checkpoint(population.member(k),
                                            population.member_optimizer(k), step)
        else:
            outs[i].status = "done"
