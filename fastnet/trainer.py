"""The book's Trainer, stepping with the nets' fused ``train_step``.

Same arguments, lists and reports as ``fastnet.reference.trainer.Trainer``; the
optimizer comes from ``fastnet.optimizers`` and each step is one
``network.train_step`` when the network has one (any book-style network without it
is trained through ``gradient()`` and ``update()``).  The recorded training loss is
the mini-batch loss of the forward pass, before the update; the book computes it
again after the update, which costs a second forward pass.
"""
from . import optimizers
from .reference import trainer as reference


class Trainer(reference.Trainer):
    __doc__ = reference.Trainer.__doc__
    optimizers_module = optimizers

    def _step(self, x_batch, t_batch):
        train_step = getattr(self.network, "train_step", None)
        if train_step is None:
            return super()._step(x_batch, t_batch)
        return train_step(x_batch, t_batch, self.optimizer)
