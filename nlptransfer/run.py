"""RunFolder: the on-disk layout of a run; every file is written atomically (write a temp file, then rename)."""
from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import secrets
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator

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
    "reference": "reference.json",  # the reference profile drift is measured against (inference/profile.py)
    "reference_embeddings": "reference.safetensors",
    "encoder": "encoder",  # `nlptransfer adapt` (masked-LM pretraining): the adapted encoder, a model folder
    "adapt": "adapt",  # adapt.method mlm: the run's masked-LM pretraining, itself a run folder with its encoder/
    "body": "body",  # strategy contrastive: the encoder trained on pairs, itself a run folder with its encoder/
}


#: errno values that mean the disk cannot take the write
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


@contextmanager
def writing(what) -> Iterator[None]:
    """Within: a failed write (full disk, no permission, read-only file system; also as torch's and safetensors'
    own errors) becomes one RunError naming `what`."""
    try:
        yield
    except OSError as e:
        hint = " (the disk is full: free some space and run again)" if e.errno in _DISK_FULL else ""
        raise RunError(f"cannot write {what}: {e.strerror or e}{hint}") from None
    except Exception as e:  # torch: RuntimeError "... file write failed"; safetensors: SafetensorError "No space left"
        text = str(e)
        if type(e).__name__ in ("RuntimeError", "SafetensorError") and any(
                k in text for k in ("No space left", "write failed", "StorageFull", "Disk quota")):
            raise RunError(f"cannot write {what}: the disk is full or the write failed ({text.splitlines()[0][:200]}); "
                           "free some space and run again") from None
        raise


def read_json_file(path: Path) -> Any:
    """The JSON data in `path`; RunError naming the file when it cannot be read or is not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunError(f"{path} is damaged: it is not valid JSON ({e}); restore it, or run again") from None
    except OSError as e:
        raise RunError(f"cannot read {path}: {e.strerror or e}") from None


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


_HOST = re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname())[:40] or "host"
#: a temporary name made by temp_path: .NAME.HOST.PID.RANDOM.tmp
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")


def temp_path(path: Path) -> Path:
    """A fresh temporary name beside `path`, naming this host and process (so its debris can be found later)."""
    return path.with_name(f".{path.name}.{_HOST}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


_MODES: dict[str, int] = {}


def default_modes() -> tuple[int, int]:
    """The permission bits the process umask gives a new file and a new folder (found once, by making one of each:
    reading the umask would mean changing it, which is not safe with threads)."""
    if not _MODES:
        probe = temp_path(Path(os.environ.get("TMPDIR", "/tmp")) / "nlptransfer-umask")
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        _MODES["file"] = probe.stat().st_mode & 0o777
        probe.unlink()
        os.mkdir(probe, 0o777)
        _MODES["dir"] = probe.stat().st_mode & 0o777
        probe.rmdir()
    return _MODES["file"], _MODES["dir"]


def apply_umask(folder: Path) -> None:
    """Give `folder` and everything under it the permissions the umask gives new files and folders (libraries such
    as safetensors write owner-only files)."""
    file_mode, dir_mode = default_modes()
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(dir_mode if path.is_dir() else file_mode)


def make_dir(path: Path) -> Path:
    """Create the folder `path` with the permissions the process umask gives (unlike mkdtemp's 0700)."""
    os.mkdir(path, 0o777)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(folder: Path, name: str | None = None) -> list[str]:
    """Remove the temp_path-named files and folders in `folder` (of `name` only, when given) that processes of this
    host left behind when they were killed; returns their names. Another host's temporaries are never touched."""
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        found = _TEMP.match(entry.name)
        if (found and found["host"] == _HOST and (name is None or found["name"] == name)
                and not _pid_alive(int(found["pid"]))):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed.append(entry.name)
    return removed


def is_temporary(name: str) -> bool:
    """True for names made by temp_path (and other dot-files: never a user's entry)."""
    return name.startswith(".")


@contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A file to write `path` through, bit by bit: readers see the old file or the whole new one, never a part (with
    the permissions the process umask gives). A full disk or a denied write is one RunError; an error inside leaves
    nothing behind."""
    tmp = temp_path(path)
    try:
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            with os.fdopen(fd, "wb") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically: see atomic_file."""
    with atomic_file(path) as f:
        f.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` atomically: see atomic_write_bytes."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    atomic_write_text(path, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


@contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Yield a temp folder beside `path`; on success it replaces `path` in one rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_dir(temp_path(path))
    try:
        yield tmp
        apply_umask(tmp)
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
        parent.mkdir(parents=True, exist_ok=True)
        n = 1
        while True:  # mkdir claims a name atomically: concurrent callers each get their own
            candidate = parent / (name if n == 1 else f"{name}-{n}")
            try:
                make_dir(candidate)
                return cls(candidate)
            except FileExistsError:
                n += 1

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

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Within: this process holds the folder's exclusive lock (checkpoints/.lock); RunError at once when another
        process holds it. The system drops the lock when the process ends, even when it is killed."""
        from filelock import FileLock, Timeout

        path = self.path("checkpoints") / ".lock"
        with writing(path):
            path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise RunError(f"{self.root} is in use: another process is training in it (it holds {path}); wait for it "
                           "to finish, or stop it first") from None
        try:
            yield
        finally:
            lock.release()

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
        """A JSON file of the run; RunError when it is damaged (not JSON)."""
        return read_json_file(self.path(key))

    def write_csv(self, key: str, header: list[str], rows: list[list[Any]]) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(header)
        writer.writerows(rows)
        atomic_write_text(self.path(key), buffer.getvalue())

    def append_log(self, record: dict) -> None:
        """Append one JSON line to train_log.jsonl."""
        with writing(self.path("log")), open(self.path("log"), "a", encoding="utf-8") as f:
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
        with writing(self.path("adapter" if is_adapter else "model")):
            with atomic_dir(self.path("adapter" if is_adapter else "model")) as tmp:
                net.save_pretrained(tmp, safe_serialization=True)
        with writing(self.path("tokenizer")), atomic_dir(self.path("tokenizer")) as tmp:
            tokenizer.save_pretrained(tmp)
