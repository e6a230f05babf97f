"""The exceptions nlptransfer raises for problems a user can fix; the CLI prints them without a traceback."""
from __future__ import annotations


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
