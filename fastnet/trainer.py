"""The book's Trainer, stepping with the nets' fused ``train_step``.

The loop, arguments, lists and reports are the book's (``fastnet._book.TrainerLoop``,
shared with ``fastnet.reference.trainer.Trainer``, the NumPy oracle); the optimizer
comes from ``fastnet.optimizers`` and each step is one ``network.train_step`` when the
network has one (any book-style network without it is trained through ``gradient()``
and ``update()``).
"""
from . import _book, optimizers

_LOSS_NOTE = """
    ``train_loss_list`` holds each step's mini-batch loss from the training pass itself,
    before the update (dropout's masks applied, batch norm on the batch's statistics);
    the book's Trainer computes ``network.loss`` again after the update, in inference
    mode, a second forward pass per step.  For nets with dropout or batch norm the two
    differ (with dropout the book's is lower); accuracies are the book's.
"""


class Trainer(_book.TrainerLoop):
    __doc__ = (_book.TrainerLoop.__doc__ or "").rstrip() + "\n" + _LOSS_NOTE  # -OO: None
    optimizers_module = optimizers

    def _step(self, x_batch, t_batch):
        train_step = getattr(self.network, "train_step", None)
        if train_step is None:
            return super()._step(x_batch, t_batch)
        return train_step(x_batch, t_batch, self.optimizer)
