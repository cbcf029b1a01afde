"""The errors cnnlab raises on purpose for something the user can fix.

Every such error derives from :class:`UserError`, itself a ``ValueError``, so code
that catches ``ValueError`` keeps working. The ``cnnlab`` command reports a
``UserError`` (or a plain ``ValueError`` / ``OSError``) as one line,
``cnnlab CMD: error: ...``; anything else that escapes is a bug in cnnlab and is
reported as one ("internal error, please report it").

This module imports nothing, so every layer (registry, models, data, training, the
CLI) can use it without pulling in torch.
"""
from __future__ import annotations

import difflib

__all__ = ["UserError", "UnknownArgumentError"]


class UserError(ValueError):
    """Bad input a user gave (an argument, a file, a name): the message says what and how to fix it."""


class UnknownArgumentError(UserError, TypeError):
    """A function was given a keyword argument it does not take.

    Also a ``TypeError``, which is what Python raises for an unexpected keyword
    argument, so ``except TypeError`` keeps working.
    """

    def __init__(self, where: str, unknown, accepted):
        self.where = where
        self.unknown = tuple(unknown)
        self.accepted = tuple(sorted(accepted))
        names = ", ".join(repr(k) for k in self.unknown)
        close = [m for k in self.unknown for m in difflib.get_close_matches(k, self.accepted, n=1, cutoff=0.75)]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        super().__init__(f"{where}: unexpected argument(s) {names}; it accepts: {', '.join(self.accepted)}{hint}")
