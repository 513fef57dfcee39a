"""The flat arenas of a net: ``NetLayout`` places every array, ``ArenaDict`` names it.

A net keeps its parameters and its gradients each in one flat arena; ``net.params``
and ``net.grads`` are ``ArenaDict`` instances, plain dicts to the book's code
(``params['W1']`` is an array, shaped as the book's), that also carry the arena.  An
optimizer given two of them updates the whole arena in one pass instead of one pass
per key, as long as ``intact()`` says the dict still holds the views it was made with.

``NetLayout`` is the one place that decides a net's arenas' layout: ``fastnet.nets``
(one net, arenas ``(size,)``), ``fastnet.population`` (K nets, arenas ``(K, size)``),
the benchmarks and the tests all take their offsets from it; ``layout_of`` and ``pack``
lay out any other set of arrays (what ``update_flat`` takes) the same way.
"""
import contextlib
import math
import mmap
import operator

import numpy as np

from . import _validate, config
from ._book import NORMALIZATIONS
from .kernels import network


def _count(shape):
    """The element count of ``shape`` (an int or a sequence of ints), refused as NumPy
    refuses it: ``TypeError`` for a non-integer, ``ValueError`` for a negative one."""
    try:
        dims = tuple(map(operator.index, shape if np.iterable(shape) else (shape,)))
    except TypeError:
        raise TypeError(f"a shape is an int or a sequence of ints, got {shape!r}") from None
    if any(d < 0 for d in dims):
        raise ValueError(f"negative dimensions are not allowed, got shape {shape}")
    return math.prod(dims)


def _aligned(shape, dtype, allocate):
    dtype = np.dtype(dtype)
    count = _count(shape)
    raw = allocate(count * dtype.itemsize + config.ALIGNMENT, np.uint8)
    start = -raw.ctypes.data % config.ALIGNMENT
    return raw[start:start + count * dtype.itemsize].view(dtype).reshape(shape)


def aligned_empty(shape, dtype):
    """``np.empty(shape, dtype)`` whose data starts on a ``config.ALIGNMENT``-byte
    boundary (a cache line), C-contiguous; the arenas' allocator.  (An empty result has
    no data, and NumPy may point it anywhere.)"""
    return _aligned(shape, dtype, np.empty)


def aligned_copy(a):
    """A C-contiguous copy of the array ``a`` whose data starts as ``aligned_empty``'s."""
    out = aligned_empty(a.shape, a.dtype)
    out[...] = a
    return out


def aligned_zeros(shape, dtype):
    """``np.zeros(shape, dtype)``, aligned as ``aligned_empty``.

    One of at least ``config.LAZY_ZEROS_MIN_BYTES`` is an anonymous memory mapping of
    its own (page-aligned), advised against transparent huge pages where the system
    has them: its zero pages count in the resident memory only once written, 4 kB at a
    time.  NumPy asks for huge pages on arrays of 4 MB or more, and then one write
    makes 2 MB resident: an SGD step writes only the bias gradients of a population's
    gradient arena (the weights are updated inside the backward pass), and huge pages
    made 4 to 6 MB of its 6.9 MB resident (16 members of 784-100x4-10)."""
    dtype = np.dtype(dtype)
    count = _count(shape)
    if count * dtype.itemsize < config.LAZY_ZEROS_MIN_BYTES:
        return _aligned(shape, dtype, np.zeros)
    # private: a process forked later gets its own copy on write, not a shared mapping
    # (Python's default for anonymous memory on Unix is MAP_SHARED)
    private = {"flags": mmap.MAP_PRIVATE} if hasattr(mmap, "MAP_PRIVATE") else {}
    try:
        pages = mmap.mmap(-1, count * dtype.itemsize, **private)
    except (OSError, OverflowError):  # no room: NumPy's own error (MemoryError) then
        return _aligned(shape, dtype, np.zeros)
    if hasattr(mmap, "MADV_NOHUGEPAGE"):  # Linux; refused by a kernel without THP
        with contextlib.suppress(OSError):
            pages.madvise(mmap.MADV_NOHUGEPAGE)
    return np.frombuffer(pages, dtype, count).reshape(shape)

# The normalizations that keep running statistics of the batch for inference
RUNNING_NORMALIZATIONS = ("batch", "switchable")


class ArenaDict(dict):
    """``{key: arena[offset:offset + size].reshape(shape)}`` for ``layout``'s
    ``key -> (offset, shape)``; ``arena``, ``layout`` and ``views`` stay attached."""

    def __init__(self, arena, layout):
        self.arena = arena
        self.layout = layout
        self.views = {key: arena[offset:offset + math.prod(shape)].reshape(shape)
                      for key, (offset, shape) in layout.items()}
        super().__init__(self.views)

    def intact(self):
        """Whether every entry is still its view into ``arena`` (none re-bound, added or
        removed), so that a pass over ``arena`` is a pass over the dict's arrays.

        Identity checks only; the ``base`` check catches a copy of the dict (``copy``,
        ``pickle``) whose arrays no longer share the arena's memory (NumPy points a view's
        ``base`` at the array that owns the memory: the arena, or the buffer
        ``aligned_empty`` cut the arena from)."""
        if len(self) != len(self.views):
            return False
        owner = self.arena if self.arena.base is None else self.arena.base
        for key, view in self.views.items():
            if self.get(key) is not view or view.base is not owner:
                return False
        return True


def layout_of(shapes):
    """``({key: (offset, shape)}, size)``: arrays of ``shapes`` (key -> shape, in this
    order) placed one after another in a flat arena of ``size`` elements."""
    layout, offset = {}, 0
    for key, shape in shapes.items():
        layout[key] = (offset, tuple(shape))
        offset += math.prod(shape)
    return layout, offset


def pack(arrays, dtype=None):
    """``(arena, layout)``: a new flat arena holding copies of ``arrays`` (key -> array,
    in order; ``dtype`` default: theirs, promoted) and its ``layout_of``."""
    layout, size = layout_of({key: np.shape(a) for key, a in arrays.items()})
    arena = aligned_empty(size, dtype or np.result_type(*arrays.values()))
    for key, view in ArenaDict(arena, layout).items():
        view[...] = arrays[key]
    return arena, layout


class NetLayout:
    """Where each array of a ``MultiLayerNetExtend``-shaped net lives in its flat arenas.

    ``views``: parameter key -> ``(offset, shape)`` in the parameter (and gradient)
    arena: first the ``n_decayed`` elements that weight decay applies to (``W1..WL``;
    weight norm: ``g1..gL``), then the biases ``b1..bL``, then weight norm's ``v1..vL``
    or the hidden layers' normalization parameters key by key (``gamma1..``, ``beta1..``;
    switchable norm's ``mean_weight1..``, ``var_weight1..`` after), so that an optimizer
    decays a prefix of the arena; ``size``: the arena's length.  The running statistics
    arena holds every batch- or switchable-norm layer's means, then every one's
    variances (``running_size`` elements; ``keeps_running``: whether there are any).
    ``dims`` are the widths from input to output.

    ``norm`` is the compiled step's normalization code
    (``fastnet.kernels.network.NORM_CODES``).  ``kernel`` is the
    layout of the arena the fused kernels run on: this one, or for weight norm a plain
    net's (``W1..WL``, ``b1..bL``), where the effective weights ``W = g v / ||v||`` are
    formed before each pass.  ``table`` is the compiled step's per-layer row of offsets
    (``fastnet.kernels.network``'s columns: W and b into ``kernel``'s arena, gamma and
    beta of the normalization, switchable norm's mixing logits, running mean and
    variance of batch and switchable norm) and of the group-norm family's groups and
    positions per channel (layer norm: 1 and 1; group norm: ``groups`` and 1; instance
    norm: ``groups`` and D / groups); zeros where a layer has no such array.

    One layout serves one net (arenas of shape ``(size,)``) or a population of K nets of
    the architecture (``(K, size)``: member k's arena is row k); ``params(arena)`` and
    ``running(arena)`` name the views of one net's arena (a population's row).  Sizes
    are positive integers (ValueError otherwise).  ``normalization`` is one of
    ``fastnet._book.NORMALIZATIONS`` or None (``use_batchnorm=True`` is
    ``'batch'``); ``groups`` is instance norm's number of channels per hidden layer.
    """

    def __init__(self, input_size, hidden_size_list, output_size, use_batchnorm=False,
                 use_dropout=False, *, normalization=None, groups=2):
        if use_batchnorm and normalization not in (None, "batch"):
            raise ValueError(f"use_batchnorm=True and normalization={normalization!r} "
                             f"conflict; give only normalization")
        normalization = "batch" if use_batchnorm else normalization
        if normalization is not None and normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be None or one of {NORMALIZATIONS}, "
                             f"got {normalization!r}")
        input_size = _validate.positive_int(input_size, "input_size", none=False)
        output_size = _validate.positive_int(output_size, "output_size", none=False)
        widths = [_validate.positive_int(width, "hidden size", none=False)
                  for width in hidden_size_list]
        self.hidden_size_list = widths
        self.normalization, self.groups = normalization, groups
        self.use_batchnorm, self.use_dropout = normalization == "batch", bool(use_dropout)
        self.keeps_running = normalization in RUNNING_NORMALIZATIONS
        self.norm = network.NORM_CODES.get(normalization, network.NO_NORM)
        self.dims = np.array([input_size] + widths + [output_size], np.int64)
        n_layers = len(widths) + 1
        weights = {f"W{i}": (int(self.dims[i - 1]), int(self.dims[i]))
                   for i in range(1, n_layers + 1)}
        biases = {f"b{i}": (int(self.dims[i]),) for i in range(1, n_layers + 1)}
        if normalization == "weight":
            decayed = {f"g{i}": (int(self.dims[i]),) for i in range(1, n_layers + 1)}
            shapes = {**decayed, **biases, **{f"v{i}": shape for i, shape
                                             in enumerate(weights.values(), 1)}}
        else:
            decayed = weights
            shapes = {**weights, **biases}
        self.n_decayed = sum(math.prod(s) for s in decayed.values())
        if normalization not in (None, "weight"):
            # instance norm: one gamma and beta per channel; switchable norm: the two
            # (layer, batch) mixing logits of the mean and of the variance
            sizes = [groups] * len(widths) if normalization == "instance" else widths
            per_layer = {"gamma": sizes, "beta": sizes}
            if normalization == "switchable":
                per_layer.update(mean_weight=[2] * len(widths), var_weight=[2] * len(widths))
            shapes.update({f"{name}{i}": (size,) for name, sizes in per_layer.items()
                           for i, size in enumerate(sizes, 1)})
        self.views, self.size = layout_of(shapes)
        self.running_size = 2 * sum(widths) if self.keeps_running else 0
        if normalization == "weight":
            self.kernel = NetLayout(input_size, widths, output_size, use_dropout=use_dropout)
            self.table = self.kernel.table
            return
        self.kernel = self
        self.table = np.zeros((n_layers, network.LAYOUT_COLUMNS), np.int64)
        for i in range(1, n_layers + 1):
            row = {network.W: self.views[f"W{i}"][0], network.B: self.views[f"b{i}"][0]}
            hidden = i < n_layers
            if self.norm != network.NO_NORM and hidden:
                row.update({network.GAMMA: self.views[f"gamma{i}"][0],
                            network.BETA: self.views[f"beta{i}"][0]})
            if self.keeps_running and hidden:
                start = sum(widths[:i - 1])
                row.update({network.RUNNING_MEAN: start,
                            network.RUNNING_VAR: sum(widths) + start})
            if self.norm == network.GROUP_NORM and hidden:
                groups, positions = self._groups_and_positions(widths[i - 1])
                row.update({network.GROUPS: groups, network.POSITIONS: positions})
            if self.norm == network.SWITCHABLE_NORM and hidden:
                row.update({network.MEAN_WEIGHT: self.views[f"mean_weight{i}"][0],
                            network.VAR_WEIGHT: self.views[f"var_weight{i}"][0]})
            for column, value in row.items():
                self.table[i - 1, column] = value

    def _groups_and_positions(self, width):
        """The group-norm family's view of a hidden layer of ``width`` units: its groups
        and each channel's positions (see ``fastnet.kernels.network``)."""
        if self.normalization == "layer":
            return 1, 1
        if self.normalization == "group":
            return self.groups, 1
        return self.groups, width // self.groups  # instance norm

    def params(self, arena):
        """``ArenaDict`` of the parameter views into one net's ``arena`` (``(size,)``)."""
        return ArenaDict(arena, self.views)

    def running(self, arena):
        """``[(running_mean, running_var)]`` views per batch- or switchable-norm layer into
        one net's running-statistics ``arena`` (empty without either)."""
        if not self.keeps_running:
            return []
        half = self.running_size // 2
        out, start = [], 0
        for width in self.hidden_size_list:
            out.append((arena[start:start + width], arena[half + start:half + start + width]))
            start += width
        return out

    def workspace(self, n, dtype):
        """The fused training step's workspaces for a batch of ``n`` rows (see
        ``fastnet.kernels.network.mlp_train_step``); ``mask_views`` are the dropout
        masks per hidden layer, shaped (n, width)."""
        widths = self.hidden_size_list
        hidden = sum(widths)
        normed = self.norm != network.NO_NORM
        grouped = self.norm == network.GROUP_NORM
        ws = {"acts": aligned_empty(n * hidden, dtype),
              "xns": aligned_empty(n * hidden if normed else 0, dtype),
              # per feature (batch norm) or per sample and group (the group-norm
              # family), layer after layer
              "stds": aligned_empty(n * int(self.table[:-1, network.GROUPS].sum())
                                    if grouped else hidden, dtype),
              # switchable norm's statistics (``network.switchable_stats_width``)
              "stats": aligned_empty(sum(4 * n * d + 2 * n + 2 * d + 6 for d in widths)
                                     if self.norm == network.SWITCHABLE_NORM else 0,
                                     np.float64),
              "masks": aligned_empty(n * hidden if self.use_dropout else 0, bool),
              "scratch": aligned_empty((2, n * max(widths, default=0)), dtype),
              "logits": aligned_empty((n, int(self.dims[-1])), dtype)}
        ws["mask_views"], offset = [], 0
        for width in widths if self.use_dropout else ():
            ws["mask_views"].append(ws["masks"][offset:offset + n * width].reshape(n, width))
            offset += n * width
        return ws

    def inference_workspace(self, rows, dtype):
        """``(stds, scratch, logits)``: the inference kernels' workspaces for chunks of up
        to ``rows`` rows (see ``fastnet.kernels.network.mlp_predict_labels``)."""
        widths = self.hidden_size_list
        return (aligned_empty(sum(widths), dtype),
                aligned_empty((2, rows * max(widths, default=0)), dtype),
                aligned_empty((rows, int(self.dims[-1])), dtype))
