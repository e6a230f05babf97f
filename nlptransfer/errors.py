"""The exceptions nlptransfer raises for problems a user can fix (the CLI prints them without a traceback), and how
their messages quote a user's values."""
from __future__ import annotations

import reprlib

#: a quoted value shows at most this many characters of its own
QUOTE_LIMIT = 80


def _short_repr() -> reprlib.Repr:
    short = reprlib.Repr()  # bounded work however large or deeply nested the value: a few items of a few levels
    short.maxlevel, short.maxlist, short.maxtuple, short.maxdict, short.maxset = 2, 4, 4, 4, 4
    short.maxstring = short.maxother = QUOTE_LIMIT // 2
    return short


def shortened(text: str, limit: int = QUOTE_LIMIT) -> str:
    """`text` as it is, or its first `limit` characters and its length when longer (for names a message shows bare)."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def quoted(value: object, limit: int = QUOTE_LIMIT) -> str:
    """`value` as a message quotes it (its repr), cut to its first `limit` characters and its size when longer, e.g.
    'xxxx...'... (120,000 characters): a message never echoes a large value whole, nor expands a nested one."""
    if isinstance(value, str):
        return repr(value) if len(value) <= limit else f"{value[:limit]!r}... ({len(value):,} characters)"
    text = _short_repr().repr(value)
    size = len(value) if isinstance(value, (list, tuple, dict, set, frozenset)) else None
    if len(text) > limit:
        text = text[:limit] + "..."
    elif "..." not in text:
        return text
    return text if size is None else f"{text} ({size:,} item{'' if size == 1 else 's'})"


class NlpTransferError(Exception):
    """Base class: a problem with the user's input, recipe, model or hub, with a message saying how to fix it."""


class RecipeError(NlpTransferError):
    """The recipe (YAML or key=value overrides) is invalid."""


class DataError(NlpTransferError):
    """The data files cannot be used as given; the message lists every problem found."""

    def __init__(self, problems: list[str] | str, report=None):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        self.report = report  #: the data report so far (what was read and inferred), when the data stage made one
        if len(self.problems) == 1:
            text = self.problems[0]
        else:
            text = f"{len(self.problems)} problems with the data:\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(text)


class ModelNotFound(NlpTransferError):
    """A model name, alias or path could not be resolved to loadable weights."""


class HubError(NlpTransferError):
    """A push to or pull from a hub failed."""


class RunError(NlpTransferError):
    """A run folder is missing, incomplete or cannot be written."""


class RegistryError(NlpTransferError):
    """A strategy, objective, adaptation method or recipe section is registered under a name already taken."""
