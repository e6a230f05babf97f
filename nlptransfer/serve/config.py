"""The server's settings: plain dataclasses, importable without the server's extras (fastapi, uvicorn). A field whose
metadata has a "help" is a flag of `nlptransfer serve` (named after the field, or its "flag"); the command line
makes its flags from these fields."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..data.schema import MAX_TEXT_CHARS


def _flag(help: str, **more) -> dict:
    """Field metadata that makes the field a command-line flag."""
    return {"help": help, **more}


@dataclass(frozen=True)
class DriftSettings:
    """How live drift is measured and when it raises the alarm."""

    #: live texts compared (the most recent)
    window: int = field(default=500, metadata=_flag("live texts the drift test compares", flag="--drift-window"))
    #: PSI above this: drift
    psi_threshold: float = field(default=0.25, metadata=_flag("PSI above this raises the drift alarm",
                                                              flag="--drift-psi"))
    #: MMD p-value below this (and MMD^2 at least min_mmd): drift
    p_threshold: float = field(default=0.01, metadata=_flag(
        "MMD p-value below this (with MMD^2 of at least --drift-mmd) raises the drift alarm", flag="--drift-p"))
    #: the least MMD^2 between live and reference embeddings that counts as drift
    min_mmd: float = field(default=0.05, metadata=_flag("the least embedding MMD^2 that counts as drift",
                                                        flag="--drift-mmd"))
    embed_sample: int = 200  #: live embeddings kept for the MMD test (the most recent)
    #: permutations of the MMD test (random re-splits of the live and reference embeddings) behind its p-value
    permutations: int = 200
    every: int = 50  #: recompute after this many new texts ...
    interval_s: float = 5.0  #: ... and at most this often (an MMD test costs tens of ms; /v1/drift always recomputes)


@dataclass(frozen=True)
class ServeConfig:
    """How the server batches, limits and watches."""

    #: texts per model batch, at most
    max_batch_size: int = field(default=64, metadata=_flag("texts per batch (default %(default)s)"))
    #: tokens per model batch, at most (the sum over its texts)
    max_batch_tokens: int = field(default=16384, metadata=_flag(
        "tokens per batch, summed over its texts (default %(default)s)"))
    #: how long the first text of a batch waits for more
    max_wait_ms: float = field(default=5.0, metadata=_flag(
        "how long a batch's first text waits for more (default %(default)s)"))
    #: texts waiting, at most; beyond: 503 with Retry-After
    max_queue: int = field(default=1024, metadata=_flag("texts waiting, at most; beyond that 503 (default %(default)s)"))
    #: a request whose texts wait longer: 504
    timeout_s: float = field(default=30.0, metadata=_flag("seconds a request may wait: then 504", flag="--timeout"))
    #: texts per request, at most
    max_texts: int = field(default=256, metadata=_flag("texts per request (default %(default)s)"))
    max_chars: int = MAX_TEXT_CHARS  #: characters per text, at most (longer: 422); longer than the model's token limit: cut
    max_body_bytes: int = 4_000_000  #: request body, at most (larger: 413)
    #: name of the environment variable holding the API key (None: no key)
    api_key_env: str | None = field(default=None, metadata=_flag(
        "require 'Authorization: Bearer <the value of VAR>'", metavar="VAR"))
    #: JSONL file of predictions (rotated), off when None
    prediction_log: str | None = field(default=None, metadata=_flag(
        "log every prediction as JSONL (rotated)", metavar="FILE"))
    #: put the texts themselves in the prediction log (else their HMAC-SHA256)
    log_texts: bool = field(default=False, metadata=_flag(
        "put the texts in the prediction log (else their HMAC-SHA256)"))
    #: name of the environment variable holding the key of the prediction log's text hashes (None: a random key per
    #: server start)
    log_key_env: str | None = field(default=None, metadata=_flag(
        "key the prediction log's text hashes with the value of VAR (default: a random key per server start)",
        metavar="VAR"))
    log_max_bytes: int = 50_000_000
    log_backups: int = 5
    drift: DriftSettings = field(default_factory=DriftSettings)


def prediction_log_problem(path: str) -> str | None:
    """What stops the server from writing its prediction log at `path` (None when nothing does)."""
    file = Path(path)
    if file.is_symlink():
        return f"--prediction-log {path} is a symbolic link: give the path of a regular file"
    if file.is_dir():
        return f"--prediction-log {path} is a folder: give a file path in it"
    if not file.parent.is_dir():
        return f"--prediction-log {path}: the folder {file.parent} does not exist; create it first"
    if not os.access(file if file.exists() else file.parent, os.W_OK):
        return f"--prediction-log {path}: no permission to write there"
    return None
