"""The book's Trainer, stepping with the nets' fused ``train_step``.

The loop, arguments, lists and reports are the book's (``fastnet._book.TrainerLoop``,
shared with ``fastnet.reference.trainer.Trainer``, the NumPy oracle); the optimizer
comes from ``fastnet.optimizers`` and each step is one ``network.train_step`` when the
network has one (any book-style network without it is trained through ``gradient()``
and ``update()``).  The recorded training loss is the mini-batch loss of the forward
pass, before the update; the book computes it again after the update, which costs a
second forward pass.
"""
from . import _book, optimizers


class Trainer(_book.TrainerLoop):
    __doc__ = _book.TrainerLoop.__doc__
    optimizers_module = optimizers

    def _step(self, x_batch, t_batch):
        train_step = getattr(self.network, "train_step", None)
        if train_step is None:
            return super()._step(x_batch, t_batch)
        return train_step(x_batch, t_batch, self.optimizer)
