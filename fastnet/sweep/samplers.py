"""Samplers: the configuration trial ``index`` of a sweep trains.

Random search rather than a grid (course notes 7.1: with one important and one
unimportant parameter, 25 random trials try 25 values of the important one, a 5 x 5
grid only 5), Sobol points for the same with less clumping, a grid where it is wanted,
and coarse to fine: zoom into the region of the best trials and sample it again.

A sample depends only on (seed, index) and, for coarse to fine, the finished trials of
the earlier rounds, never on the order of the calls: a coordinator may resume, retry
or hand out trials in any order and get the same configurations.  Samplers draw points
of the unit cube, one axis per ``space.dimensions``, and ``Space.config_from_unit``
turns a point into a configuration.  Nothing here imports the kernels or the nets.
"""
import bisect
import math
import numbers

import numpy as np

from .space import Choice, Space

__all__ = ["trial_seed", "Sampler", "RandomSampler", "SobolSampler", "GridSampler",
           "CoarseToFineSampler", "sampler_from_json"]


def _whole(value, name, minimum=0):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def trial_seed(sweep_seed, index):
    """The seed of trial ``index``: a non-negative int < 2**63, from
    ``np.random.SeedSequence([sweep_seed, index])``.  ValueError unless both are
    ints >= 0."""
    sequence = np.random.SeedSequence([_whole(sweep_seed, "sweep_seed"), _whole(index, "index")])
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))


class Sampler:
    """The protocol every sampler follows.

    ``sample(index, history=())`` is the complete configuration of trial ``index``;
    ``history`` holds finished trials as ``(index, config, score)``, score higher =
    better and None or NaN for a diverged or failed trial; only coarse to fine reads it.
    ``round_of(index)`` and ``round_start(r)`` place trials in rounds (one round, 0,
    but for coarse to fine); ``to_json()`` is undone by ``sampler_from_json(d, space)``.
    The random and Sobol samplers give ``unit(index)``, the point of the unit cube
    behind trial ``index``, which the default ``sample`` turns into a configuration.
    """

    kind = None   # the JSON "type"

    def __init__(self, space, **settings):
        if not isinstance(space, Space):
            raise ValueError(f"space must be a fastnet.sweep.space.Space, got {space!r}")
        self.space = space
        self.settings = settings

    def __repr__(self):
        return f"{type(self).__name__}({self.settings})"

    def round_of(self, index):
        _whole(index, "index")
        return 0

    def round_start(self, r):
        if r != 0:
            raise ValueError(f"r must be 0 ({type(self).__name__} has one round), got {r!r}")
        return 0

    def sample(self, index, history=()):
        return self.space.config_from_unit(self.unit(index))

    def to_json(self):
        return {"type": self.kind, **self.settings}


class RandomSampler(Sampler):
    """Trial i at a uniform random point of the unit cube, drawn from its own stream
    (a child of ``SeedSequence([seed, i])``, so not the stream ``trial_seed`` makes the
    trial's weights from)."""

    kind = "random"

    def __init__(self, space, seed):
        super().__init__(space, seed=_whole(seed, "seed"))

    def unit(self, index):
        """The point of trial ``index``, an array of ``len(space.dimensions)`` in [0, 1)."""
        sequence = np.random.SeedSequence([self.settings["seed"], _whole(index, "index")],
                                          spawn_key=(0,))
        return np.random.default_rng(sequence).random(len(self.space.dimensions))


class SobolSampler(Sampler):
    """Trial i at point i of the scrambled Sobol sequence
    ``scipy.stats.qmc.Sobol(d, scramble=True, seed=seed)``, d the number of dimensions.
    The first 2**m trials, for any m, are a balanced design (a (t, m, d)-net)."""

    kind = "sobol"
    _FIRST_BLOCK = 64

    def __init__(self, space, seed):
        super().__init__(space, seed=_whole(seed, "seed"))
        from scipy.stats import qmc  # 1 s to import: only where Sobol points are drawn

        self._engine = qmc.Sobol(len(space.dimensions), scramble=True, seed=self.settings["seed"])
        self._points = np.empty((0, len(space.dimensions)))

    def unit(self, index):
        """Point ``index`` of the sequence.  The points drawn so far are kept; more are
        drawn up to the next power of two (a first draw of any other size makes scipy
        warn that it is unbalanced), so asking in any order costs O(1) a point."""
        index = _whole(index, "index")
        if index >= len(self._points):
            size = max(self._FIRST_BLOCK, 1 << index.bit_length())
            self._points = np.vstack([self._points, self._engine.random(size - len(self._points))])
        return self._points[index].copy()


class GridSampler(Sampler):
    """Trial i at point i of the grid, the product of every dimension's
    ``grid(points_per_dimension)`` (a choice: all its options) in C order, the last
    dimension varying fastest; ``len(sampler)`` is the number of points."""

    kind = "grid"

    def __init__(self, space, points_per_dimension):
        super().__init__(space, points_per_dimension=_whole(
            points_per_dimension, "points_per_dimension", 1))
        self.axes = [space.params[name].grid(points_per_dimension) for name in space.dimensions]

    def __len__(self):
        return math.prod(len(axis) for axis in self.axes)

    def sample(self, index, history=()):
        index = _whole(index, "index")
        if index >= len(self):
            raise ValueError(f"index must be < {len(self)} (the grid's size), got {index}")
        values = {}
        for name, axis in reversed(list(zip(self.space.dimensions, self.axes))):
            index, k = divmod(index, len(axis))
            values[name] = axis[k]
        return self.space.complete({**self.space.constants, **values})


_BASES = {"sobol": SobolSampler, "random": RandomSampler}


class CoarseToFineSampler(Sampler):
    """``rounds`` rounds of ``round_size`` trials, or (``trials`` given instead of
    ``round_size``) ``trials`` split over the rounds as evenly as they go, a later round
    taking one more where they do not, each round zoomed into the best ``top_k`` trials
    of all earlier rounds (course notes 7.1, coarse to fine).

    Round 0 is the ``base`` sampler ('sobol' or 'random') over the whole space.  Trial
    i of round r > 0 takes point i of the same base sampler, mapped into a box of the
    unit cube: per numeric dimension, from the lowest to the highest ``to_unit`` of the
    top-k, widened by ``margin`` times that width on each side and clipped to [0, 1];
    per choice dimension, only the options the top-k used.  ``top_k`` >= 2: the box of
    one trial is a point, every later trial would repeat it.  The top-k are the trials
    of ``history`` from earlier rounds with the highest scores (ties: the lower index
    first), None and NaN scores left out; with none left, the box is the whole cube.
    ``len(sampler)`` is ``rounds * round_size``, or ``trials``.
    """

    kind = "coarse_to_fine"

    def __init__(self, space, seed, rounds, round_size=None, top_k=3, margin=0.1,
                 base="sobol", *, trials=None):
        if (isinstance(margin, bool) or not isinstance(margin, numbers.Real)
                or not 0 <= margin < math.inf):
            raise ValueError(f"margin must be a finite number >= 0, got {margin!r}")
        if base not in _BASES:
            raise ValueError(f"base must be one of {', '.join(map(repr, _BASES))}, got {base!r}")
        rounds = _whole(rounds, "rounds", 1)
        if (round_size is None) == (trials is None):
            raise ValueError("give round_size or trials (split over the rounds), not both")
        if trials is None:
            size = {"round_size": _whole(round_size, "round_size", 1)}
            sizes = [size["round_size"]] * rounds
        else:
            size = {"trials": _whole(trials, "trials", 1)}
            if trials < rounds:
                raise ValueError(f"trials={trials} cannot fill rounds={rounds}: give at "
                                 f"least one trial a round")
            fewer, more = divmod(trials, rounds)
            sizes = [fewer + (r >= rounds - more) for r in range(rounds)]
        super().__init__(space, seed=_whole(seed, "seed"), rounds=rounds, **size,
                         top_k=_whole(top_k, "top_k", 2), margin=float(margin), base=base)
        self._starts = [sum(sizes[:r]) for r in range(rounds + 1)]  # round r's first index
        self._base = _BASES[base](space, seed)
        self._last_box = None  # (history, (its length, end), box) of the last sample

    def __len__(self):
        return self._starts[-1]

    def round_of(self, index):
        index = _whole(index, "index")
        if index >= len(self):
            raise ValueError(f"index must be < {len(self)} (the sampler's points), got {index}")
        return bisect.bisect_right(self._starts, index) - 1

    def round_start(self, r):
        if _whole(r, "r") >= self.settings["rounds"]:
            raise ValueError(f"r must be < {self.settings['rounds']} (the number of rounds), "
                             f"got {r}")
        return self._starts[r]

    def sample(self, index, history=()):
        r = self.round_of(index)
        point = self._base.unit(index)
        box = self._box(history, self.round_start(r)) if r else None
        return self.space.config_from_unit(self._into(point, box) if box else point)

    def _box(self, history, end):
        """The box of the best trials of ``history`` below ``end`` (``_box_of``), kept
        for the next call with the same list of the same length: a round's trials
        all read one history, which sorting for each trial made the coordinator's
        bottleneck (21 ms a trial with 10,000 trials in it)."""
        if not isinstance(history, list | tuple):  # read once: nothing to keep
            return self._box_of(self._top_k(history, end))
        key = (len(history), end)
        if self._last_box is None or self._last_box[0] is not history \
                or self._last_box[1] != key:
            self._last_box = (history, key, self._box_of(self._top_k(history, end)))
        return self._last_box[2]

    def _top_k(self, history, end):
        """The configs of the best trials with an index below ``end``."""
        scored = [(-score, index, config) for index, config, score in history
                  if index < end and score is not None and not math.isnan(score)]
        scored.sort(key=lambda entry: entry[:2])
        return [config for _, _, config in scored[:self.settings["top_k"]]]

    def _box_of(self, best):
        """Per dimension, the options the ``best`` configs used (a choice: their units,
        sorted) or the ``(low, high)`` of their units widened by the margin; None
        without any best config."""
        if not best:
            return None
        margin, box = self.settings["margin"], []
        for name in self.space.dimensions:
            distribution = self.space.params[name]
            units = sorted({distribution.to_unit(config[name]) for config in best})
            if isinstance(distribution, Choice):
                box.append(units)
                continue
            widen = margin * (units[-1] - units[0])
            box.append((max(units[0] - widen, 0.0), min(units[-1] + widen, 1.0)))
        return box

    def _into(self, point, box):
        """``point`` (in [0, 1)^d) mapped into ``box`` (``_box_of``)."""
        mapped = []
        for v, extent in zip(point, box):
            if isinstance(extent, list):  # a choice's options
                mapped.append(extent[min(int(v * len(extent)), len(extent) - 1)])
            else:
                low, high = extent
                mapped.append(low + v * (high - low))
        return mapped


_SAMPLERS = {cls.kind: cls for cls in (RandomSampler, SobolSampler, GridSampler,
                                       CoarseToFineSampler)}


def sampler_from_json(d, space):
    """The sampler ``to_json`` wrote, over ``space``."""
    if not isinstance(d, dict):
        raise ValueError(f"a sampler must be a dict with a 'type', got {d!r}")
    settings = dict(d)
    kind = settings.pop("type", None)
    if kind not in _SAMPLERS:
        raise ValueError(f"unknown sampler type {kind!r}; known: {', '.join(_SAMPLERS)}")
    try:
        return _SAMPLERS[kind](space, **settings)
    except TypeError as err:   # a setting missing or unknown
        raise ValueError(f"{kind} sampler: {err}") from None
