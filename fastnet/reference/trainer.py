"""The book's Trainer in plain NumPy: the oracle for ``fastnet.trainer``.

The loop (batches, accuracies, reports) is ``fastnet._book.TrainerLoop``, shared with
``fastnet.trainer``; here each step is the book's ``gradient()``, ``update()``,
``loss()`` with the optimizers of ``fastnet.reference.optimizers``.
"""
from .. import _book
from . import optimizers as reference_optimizers


class Trainer(_book.TrainerLoop):
    __doc__ = _book.TrainerLoop.__doc__
    optimizers_module = reference_optimizers
