"""Early stopping for sweeps: successive halving and the median rule.

Both decide at *rungs*, fixed epochs, and both are rung-synchronous: the trials of one
bracket (``bracket_size`` consecutive trials of a round) all reach rung ``k`` before
any of them is cut there, and a cut looks only at the bracket's validation accuracies
at that rung.  So which trials are pruned depends on the trials' results alone, never
on which worker finished first: a sweep prunes the same trials on 1 worker or 100,
and again after a crash and resume.  (Optuna's and Ray Tune's asynchronous pruners
decide against whatever happened to finish before; that is faster to start but not
reproducible.)

A pruner is ``rungs(max_epochs) -> list of epochs`` (each below ``max_epochs``) and
``survivors(entries) -> set of indices``, where ``entries`` is a list of
``(index, score)`` of the bracket's trials that reached the rung (score: validation
accuracy, higher is better).
"""
import math
import statistics


class SuccessiveHalving:
    """Successive halving (Jamieson and Talwalkar 2016, "Non-stochastic best arm
    identification and hyperparameter optimization"; the synchronous rung of Li et
    al. 2018, "Hyperband").

    Rungs at ``min_epochs * reduction_factor**k`` epochs below a trial's last epoch; at
    each, the best ``ceil(n / reduction_factor)`` of the ``n`` trials there go on (ties:
    the lower index) and the others are pruned.  Names as Optuna's
    ``SuccessiveHalvingPruner``: ``min_resource`` is ``min_epochs``.

    Raises ``ValueError`` for ``min_epochs <= 0`` or ``reduction_factor < 2``.
    """

    name = "halving"

    def __init__(self, min_epochs=1.0, reduction_factor=3):
        if not min_epochs > 0:
            raise ValueError(f"min_epochs must be > 0, got {min_epochs!r}")
        if not reduction_factor >= 2:
            raise ValueError(f"reduction_factor must be >= 2, got {reduction_factor!r}")
        self.min_epochs, self.reduction_factor = float(min_epochs), reduction_factor

    def rungs(self, max_epochs):
        out, epoch = [], self.min_epochs
        while epoch < max_epochs - 1e-9:
            out.append(epoch)
            epoch *= self.reduction_factor
        return out

    def survivors(self, entries):
        ranked = sorted(entries, key=lambda e: (-e[1], e[0]))
        return {index for index, _ in ranked[:math.ceil(len(ranked) / self.reduction_factor)]}

    def to_json(self):
        return {"name": self.name, "min_epochs": self.min_epochs,
                "reduction_factor": self.reduction_factor}


class MedianPruner:
    """The median stopping rule (Golovin et al. 2017, "Google Vizier", section 3.2.2),
    as Optuna's ``MedianPruner``: at each rung, a trial whose validation accuracy is
    below the median of the accuracies there of the bracket's trials with lower
    indices is pruned, once at least ``n_startup_trials`` of those are there.  Rungs
    every ``interval_epochs`` epochs from ``n_warmup_epochs + interval_epochs``.

    Raises ``ValueError`` for a negative count or warm-up, or ``interval_epochs <= 0``.
    """

    name = "median"

    def __init__(self, n_startup_trials=5, n_warmup_epochs=0.0, interval_epochs=1.0):
        if n_startup_trials < 0 or n_warmup_epochs < 0:
            raise ValueError(f"n_startup_trials and n_warmup_epochs must be >= 0, got "
                             f"{n_startup_trials!r} and {n_warmup_epochs!r}")
        if not interval_epochs > 0:
            raise ValueError(f"interval_epochs must be > 0, got {interval_epochs!r}")
        self.n_startup_trials = int(n_startup_trials)
        self.n_warmup_epochs, self.interval_epochs = float(n_warmup_epochs), float(interval_epochs)

    def rungs(self, max_epochs):
        out, k = [], 1
        while (epoch := self.n_warmup_epochs + k * self.interval_epochs) < max_epochs - 1e-9:
            out.append(epoch)
            k += 1
        return out

    def survivors(self, entries):
        kept, earlier = set(), []
        for index, score in sorted(entries):
            if len(earlier) < self.n_startup_trials or score >= statistics.median(earlier):
                kept.add(index)
            earlier.append(score)
        return kept

    def to_json(self):
        return {"name": self.name, "n_startup_trials": self.n_startup_trials,
                "n_warmup_epochs": self.n_warmup_epochs, "interval_epochs": self.interval_epochs}


PRUNERS = {cls.name: cls for cls in (SuccessiveHalving, MedianPruner)}


def make_pruner(spec):
    """A pruner from ``None`` (no pruning), a name ('halving', 'median'), a pruner, or
    its ``to_json()`` dict.  Raises ``ValueError`` for an unknown name."""
    if spec is None or hasattr(spec, "survivors"):
        return spec
    params = {}
    if isinstance(spec, dict):
        params = {k: v for k, v in spec.items() if k != "name"}
        spec = spec.get("name")
    if spec not in PRUNERS:
        raise ValueError(f"unknown pruner {spec!r}; choose one of {sorted(PRUNERS)} or none")
    return PRUNERS[spec](**params)
