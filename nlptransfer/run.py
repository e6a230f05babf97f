"""RunFolder: the on-disk layout of a run; every file is written atomically (write a temp file, then rename)."""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import RunError

LAYOUT = {
    "recipe": "recipe.yaml",
    "model": "model",
    "adapter": "adapter",
    "tokenizer": "tokenizer",
    "labels": "labels.json",
    "data_report": "data_report.json",
    "metrics": "metrics.json",
    "predictions": "predictions.csv",
    "log": "train_log.jsonl",
    "checkpoints": "checkpoints",
    "onnx": "onnx",  # optional: `nlptransfer export RUN --onnx`
}


def update_digest(digest, path: Path):
    """Feed the bytes of the file at `path` to a hashlib object (in 1 MiB blocks); returns it."""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest


def sha256_file(path: Path) -> str:
    """The sha256 of one file's bytes, in hex."""
    import hashlib

    return update_digest(hashlib.sha256(), path).hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temp folder beside `path`; on success it replaces `path` in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = path.with_name(f".{path.name}.old")
    if path.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(path, old)
    os.replace(tmp, path)
    shutil.rmtree(old, ignore_errors=True)


class RunFolder:
    """A run's folder: named paths for every file, atomic writers, and the training log."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunFolder('{self.root}')"

    def path(self, key: str) -> Path:
        """The path of a layout entry (see LAYOUT)."""
        return self.root / LAYOUT[key]

    @classmethod
    def new(cls, parent: str | Path, name: str) -> "RunFolder":
        """A new, empty run folder under `parent`, named `name` or `name-2`, `name-3`... if taken."""
        parent = Path(parent)
        candidate, n = parent / name, 1
        while candidate.exists():
            n += 1
            candidate = parent / f"{name}-{n}"
        candidate.mkdir(parents=True)
        return cls(candidate)

    @classmethod
    def existing(cls, root: str | Path, need: tuple[str, ...] = ("labels", "recipe")) -> "RunFolder":
        """An existing run folder, checked to hold `need`; RunError says what is missing."""
        run = cls(root)
        if not run.root.is_dir():
            raise RunError(f"run folder not found: {root}")
        missing = [LAYOUT[k] for k in need if not run.path(k).exists()]
        if missing:
            raise RunError(f"{root} is not a complete run folder: missing {', '.join(missing)}")
        return run

    @property
    def weights_dir(self) -> Path:
        """The adapter/ folder for adapter runs, else model/."""
        return self.path("adapter") if self.path("adapter").exists() else self.path("model")

    @property
    def is_complete(self) -> bool:
        return self.path("metrics").exists()

    def write_text(self, key: str, text: str) -> None:
        atomic_write_text(self.path(key), text)

    def write_json(self, key: str, data: Any) -> None:
        atomic_write_json(self.path(key), data)

    def read_json(self, key: str) -> Any:
        return json.loads(self.path(key).read_text(encoding="utf-8"))

    def write_csv(self, key: str, header: list[str], rows: list[list[Any]]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(rows)
        atomic_write_text(self.path(key), buffer.getvalue())

    def append_log(self, record: dict) -> None:
        """Append one JSON line to train_log.jsonl."""
        with open(self.path("log"), "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def read_log(self) -> list[dict]:
        path = self.path("log")
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def truncate_log(self, step: int) -> None:
        """Keep only log records up to `step` (a resumed run replays the steps after its checkpoint)."""
        kept = [r for r in self.read_log() if r.get("step", 0) <= step]
        atomic_write_text(self.path("log"), "".join(json.dumps(r) + "\n" for r in kept))

    def save_weights(self, net, tokenizer, is_adapter: bool) -> None:
        """Save the model (or adapter with its head) and tokenizer, each folder replaced atomically."""
        with atomic_dir(self.path("adapter" if is_adapter else "model")) as tmp:
            net.save_pretrained(tmp, safe_serialization=True)
        with atomic_dir(self.path("tokenizer")) as tmp:
            tokenizer.save_pretrained(tmp)
