"""The book's Trainer, stepping with the nets' fused ``train_step``.

The loop, arguments, lists and reports are the book's (``fastnet._book.TrainerLoop``,
shared with ``fastnet.reference.trainer.Trainer``, the NumPy oracle); the optimizer
comes from ``fastnet.optimizers`` and each step is one ``network.train_step`` when the
network has one and its class overrides none of the methods the book's step calls (any
other book-style network is trained through ``gradient()`` and ``update()``).
"""
from . import _book, optimizers

_LOSS_NOTE = """
    ``train_loss_list`` holds each step's mini-batch loss from the training pass itself,
    before the update (dropout's masks applied, batch norm on the batch's statistics);
    the book's Trainer computes ``network.loss`` again after the update, in inference
    mode, a second forward pass per step.  So the two lists differ for every net, by
    one step's progress (and by the mode, with dropout or batch norm: with dropout the
    book's is lower); accuracies are the book's.  A network whose class overrides
    ``gradient``, ``loss`` or ``predict`` of the class that gives it ``train_step`` is
    stepped the book's way (``gradient``, ``optimizer.update``, ``loss`` after it), so
    that its own methods run; an optimizer that overrides ``update`` is called by
    ``train_step`` itself.
"""


def _fused_step_is_the_books(network):
    """Whether ``network.train_step`` computes what the book's step would with this
    network: it has one, and no subclass overrides the methods the book's step calls
    (below the class that defines ``train_step``)."""
    cls = type(network)
    owner = next((c for c in cls.__mro__ if "train_step" in vars(c)), None)
    return owner is not None and all(getattr(cls, name, None) is getattr(owner, name, None)
                                     for name in ("gradient", "loss", "predict"))


class Trainer(_book.TrainerLoop):
    __doc__ = (_book.TrainerLoop.__doc__ or "").rstrip() + "\n" + _LOSS_NOTE  # -OO: None
    optimizers_module = optimizers

    def _step(self, x_batch, t_batch):
        if not _fused_step_is_the_books(self.network):
            return super()._step(x_batch, t_batch)
        return self.network.train_step(x_batch, t_batch, self.optimizer)
