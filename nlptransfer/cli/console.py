"""How the command line prints: nlptransfer's messages to stdout, the libraries' own messages off. Only the CLI
configures logging; the library adds no handler."""
from __future__ import annotations

import logging
import os
import sys


class _Stdout(logging.StreamHandler):
    """A handler writing to whatever sys.stdout is when a message is emitted (it may be replaced after set-up)."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


class _Messages(logging.Formatter):
    """Info as the plain message; warnings and worse prefixed with their level."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text if record.levelno < logging.WARNING else f"{record.levelname.lower()}: {text}"


def configure_logging() -> None:
    """nlptransfer's messages to stdout (info on the main process, warnings only on the others); transformers'
    own messages and weight-loading bars off (we report what matters ourselves)."""
    logger = logging.getLogger("nlptransfer")
    if not any(isinstance(h, _Stdout) for h in logger.handlers):
        handler = _Stdout()
        handler.setFormatter(_Messages("%(message)s"))
        logger.addHandler(handler)
    main_process = os.environ.get("RANK", "0") == "0"
    logger.setLevel(logging.INFO if main_process else logging.WARNING)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" in sys.modules:  # imported already (by a caller of main): set it directly
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
    else:  # read when transformers is first imported, which stays off the start-up path
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    # a masked-LM checkpoint ties its decoder to the word embeddings: Accelerate says at every save that it stored the
    # shared tensor once, and the model ties it again on load (the resume tests check that it is exact)
    logging.getLogger("accelerate.utils.other").setLevel(logging.ERROR)
