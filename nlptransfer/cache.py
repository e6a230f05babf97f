"""Where nlptransfer keeps what it can make again: the data stage's results, token ids, data sets as Parquet."""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache folder: $NLPTRANSFER_CACHE, else $XDG_CACHE_HOME/nlptransfer (~/.cache/nlptransfer)."""
    if os.environ.get("NLPTRANSFER_CACHE"):
        return Path(os.environ["NLPTRANSFER_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "nlptransfer"
