"""The package's loggers. Every module logs through a child of logging.getLogger("nlptransfer"); only the CLI
attaches handlers. `quiet()` silences nlptransfer's messages within a block (the nested trainings of a report or
a comparison) for the current thread or task only, so it is safe in a multi-threaded server."""
from __future__ import annotations

import contextvars
import logging
from contextlib import contextmanager
from typing import Iterator

_QUIET = contextvars.ContextVar("nlptransfer_quiet", default=False)


class _UnlessQuiet(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or not _QUIET.get()


_FILTER = _UnlessQuiet()


def get_logger(name: str) -> logging.Logger:
    """The logger of module `name` (a child of "nlptransfer"), silenced below WARNING inside quiet()."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


@contextmanager
def quiet() -> Iterator[None]:
    """Within: nlptransfer logs no info messages in this thread or task (warnings still show)."""
    token = _QUIET.set(True)
    try:
        yield
    finally:
        _QUIET.reset(token)
