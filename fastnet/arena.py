"""``ArenaDict``: a dict of named views into one flat array.

A net keeps its parameters and its gradients each in one flat arena; ``net.params``
and ``net.grads`` are ``ArenaDict`` instances, plain dicts to the book's code
(``params['W1']`` is an array, shaped as the book's), that also carry the arena.  An
optimizer given two of them updates the whole arena in one pass instead of one pass
per key, as long as ``intact()`` says the dict still holds the views it was made with.
"""
import math


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
        ``pickle``) whose arrays no longer share the arena's memory."""
        if len(self) != len(self.views):
            return False
        for key, view in self.views.items():
            if self.get(key) is not view or view.base is not self.arena:
                return False
        return True
