"""Atomic file writes (write a temp file, then rename: readers see the old file or the whole new one), the
temporary names they use and the debris killed processes leave, permissions as the umask gives, and reading JSON and
digests of files. A failed write is one RunError naming what was written."""
from __future__ import annotations

import errno
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


def file_digests(folder: Path, leave_out: tuple[str, ...] = ()) -> dict[str, str]:
    """The sha256 of every file under `folder` (but those named in `leave_out`), by its path relative to it."""
    return {p.relative_to(folder).as_posix(): sha256_file(p) for p in sorted(Path(folder).rglob("*"))
            if p.is_file() and p.relative_to(folder).as_posix() not in leave_out}


def digest_problem(folder: Path, parts: dict[str, str]) -> tuple[Path, str] | None:
    """The first file of `parts` (relative path: sha256) under `folder` that is missing or whose bytes differ, as
    (its path, "missing" or "damaged"); None when every one matches."""
    for name, digest in parts.items():
        path = Path(folder) / name
        if not path.is_file():
            return path, "missing"
        if sha256_file(path) != digest:
            return path, "damaged"
    return None


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


def temp_writer(name: str) -> int | None:
    """The process id in a temp_path name when that process may still be writing it (it runs on this host, or the
    name is another host's); None for a name temp_path did not make, or one a dead process of this host left."""
    found = _TEMP.match(name)
    if not found or found["host"] == _HOST and not _pid_alive(int(found["pid"])):
        return None
    return int(found["pid"])


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
            remove_path(entry)
            removed.append(entry.name)
    return removed


def remove_path(path: Path) -> None:
    """Remove the file, symbolic link or folder at `path` (a link itself, never what it points to); what cannot be
    removed is left."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        Path(path).unlink(missing_ok=True)


def replace_path(new: Path, path: Path) -> None:
    """Put the file or folder `new` at `path` in one rename, over what is there (a file, a folder, a symbolic link:
    never followed); a folder replaced is renamed to a fresh temporary name first, then removed."""
    if os.path.isdir(new) and os.path.lexists(path):
        old = temp_path(path)
        os.replace(path, old)
        os.replace(new, path)
        remove_path(old)
    else:
        if os.path.isdir(path) and not os.path.islink(path):
            remove_path(path)
        os.replace(new, path)


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
    replace_path(tmp, path)
