"""The book's Trainer in plain NumPy: the oracle for ``fastnet.trainer``.

Optimizers are made through the class attribute ``optimizers_module`` and one
training step (forward, backward, update) is the method ``_step``, so a faster
subclass replaces just those.
"""
import math

import numpy as np

from .. import schedules
from . import optimizers as reference_optimizers
from .random import resolve_rng


class Trainer:
    """Mini-batch training of ``network`` with book-style progress reports.

    One epoch is ``iter_per_epoch = max(train_size / mini_batch_size, 1)`` steps and
    training runs ``int(epochs * iter_per_epoch)`` steps.  At every step whose count
    is a multiple of ``iter_per_epoch`` (the start of an epoch; with a fractional
    ``iter_per_epoch`` that is rarer, as in the book) the train and test accuracies
    are appended to ``train_acc_list`` and ``test_acc_list``, on at most
    ``evaluate_sample_num_per_epoch`` random samples of each.

    Unlike the book, mini-batches are drawn without replacement: consecutive slices
    of a random permutation, reshuffled when fewer than a batch remain.  All
    sampling uses ``self.rng = resolve_rng(seed, rng)``.

    ``lr_schedule`` (not in the book) is a ``fastnet.schedules`` schedule, its spec dict
    (``{"name": "step_decay", "step_size": 5}``) or any callable ``epoch -> multiplier``:
    it is applied per epoch, not per step.  Before each step the optimizer's ``lr`` is
    set to ``lr0 * lr_schedule(epoch)``, ``lr0`` being the optimizer's learning rate
    when made and ``epoch = floor(step / iter_per_epoch)`` (0 during the first epoch).

    ``population_statistics=True`` (not in the book) replaces batch norm's running
    averages, after the last step and before the final test accuracy, by the paper's
    population estimate: ``network.estimate_population_statistics(x_train, m)`` with
    ``m = min(mini_batch_size, train_size)``, which must be at least 2.  The network
    must have batch norm (``MultiLayerNetExtend(..., use_batchnorm=True)``).  The
    per-epoch accuracies are measured with the running averages as before.
    """

    optimizers_module = reference_optimizers

    def __init__(self, network, x_train, t_train, x_test, t_test, epochs=20,
                 mini_batch_size=100, optimizer="SGD",
                 optimizer_param={"lr": 0.01},  # noqa: B006 (the book's; only read, never changed)
                 evaluate_sample_num_per_epoch=None, verbose=True, *, lr_schedule=None,
                 population_statistics=False, seed=None, rng=None):
        for name, x, t in (("train", x_train, t_train), ("test", x_test, t_test)):
            if len(x) != len(t):
                raise ValueError(f"x_{name} and t_{name} have different lengths: "
                                 f"{len(x)} and {len(t)}")
        if len(x_train) == 0:
            raise ValueError("x_train is empty")
        if mini_batch_size < 1:
            raise ValueError(f"mini_batch_size must be >= 1, got {mini_batch_size!r}")
        if evaluate_sample_num_per_epoch is not None and evaluate_sample_num_per_epoch < 1:
            raise ValueError(f"evaluate_sample_num_per_epoch must be None or >= 1, "
                             f"got {evaluate_sample_num_per_epoch!r}")
        if population_statistics and not getattr(network, "use_batchnorm", False):
            raise ValueError("population_statistics=True needs a network with batch "
                             "normalization (MultiLayerNetExtend(..., use_batchnorm=True))")
        if population_statistics and min(mini_batch_size, len(x_train)) < 2:
            raise ValueError(f"population_statistics=True needs batches of at least 2 "
                             f"samples, got {min(mini_batch_size, len(x_train))}")
        self.network = network
        self.population_statistics = population_statistics
        self.verbose = verbose
        self.x_train, self.t_train = x_train, t_train
        self.x_test, self.t_test = x_test, t_test
        self.epochs = epochs
        self.batch_size = mini_batch_size
        self.evaluate_sample_num_per_epoch = evaluate_sample_num_per_epoch
        self.optimizer = self.optimizers_module.make_optimizer(optimizer, **optimizer_param)
        self.lr_schedule = schedules.as_schedule(lr_schedule)
        self.initial_lr = self.optimizer.lr
        self.rng = resolve_rng(seed, rng)

        self.train_size = len(x_train)
        self.iter_per_epoch = max(self.train_size / mini_batch_size, 1)
        self.max_iter = int(epochs * self.iter_per_epoch)
        self.current_iter = 0
        self.current_epoch = 0
        self._order = np.empty(0, dtype=np.intp)  # the permutation being sliced
        self._cursor = 0

        self.train_loss_list = []
        self.train_acc_list = []
        self.test_acc_list = []

    def _next_batch(self):
        if self._cursor + self.batch_size > len(self._order):
            self._order = self.rng.permutation(self.train_size)
            self._cursor = 0
        batch = self._order[self._cursor:self._cursor + self.batch_size]
        self._cursor += self.batch_size
        return batch

    def _step(self, x_batch, t_batch):
        """One update of the network on one mini-batch; returns the loss after it."""
        grads = self.network.gradient(x_batch, t_batch)
        self.optimizer.update(self.network.params, grads)
        return self.network.loss(x_batch, t_batch)

    def _sample(self, x, t):
        """At most ``evaluate_sample_num_per_epoch`` random samples of ``(x, t)``."""
        n = self.evaluate_sample_num_per_epoch
        if n is None or n >= len(x):
            return x, t
        chosen = self.rng.choice(len(x), size=n, replace=False)
        return x[chosen], t[chosen]

    def train_step(self):
        if self.lr_schedule is not None:
            epoch = math.floor(self.current_iter / self.iter_per_epoch)
            self.optimizer.lr = self.initial_lr * self.lr_schedule(epoch)
        batch = self._next_batch()
        loss = self._step(self.x_train[batch], self.t_train[batch])
        self.train_loss_list.append(loss)
        if self.verbose:
            print("train loss:" + str(loss))

        if self.current_iter % self.iter_per_epoch == 0:
            self.current_epoch += 1
            train_acc = self.network.accuracy(*self._sample(self.x_train, self.t_train))
            test_acc = self.network.accuracy(*self._sample(self.x_test, self.t_test))
            self.train_acc_list.append(train_acc)
            self.test_acc_list.append(test_acc)
            if self.verbose:
                print("=== epoch:" + str(self.current_epoch) + ", train acc:"
                      + str(train_acc) + ", test acc:" + str(test_acc) + " ===")
        self.current_iter += 1

    def train(self):
        for _ in range(self.max_iter):
            self.train_step()
        if self.population_statistics:
            self.network.estimate_population_statistics(
                self.x_train, min(self.batch_size, self.train_size))

        test_acc = self.network.accuracy(self.x_test, self.t_test)
        if self.verbose:
            print("=============== Final Test Accuracy ===============")
            print("test acc:" + str(test_acc))
