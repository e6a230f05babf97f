"""Where nlptransfer keeps what it can make again: the data stage's results, token ids, data sets as Parquet.

An entry (a file or a folder in a kind's folder) is trusted only as written: it carries the sha256 of its files, and
is read only when they match, it is owned by this user and nobody else can write to it (not a symbolic link, no write
bit for group or others); otherwise the log says which entry and why, and it is made again. A run holds a shared lock
(flock) on each entry it reads for as long as it reads it; `clear` removes only the entries no run holds."""
from __future__ import annotations

import errno
import json
import os
import stat
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import RunError
from .logs import get_logger

logger = get_logger(__name__)

DIGESTS = "sha256.json"  #: a folder entry's file of its files' sha256; a file entry's is NAME.sha256.json beside it


def cache_root() -> Path:
    """The cache folder: $NLPTRANSFER_CACHE, else $XDG_CACHE_HOME/nlptransfer (~/.cache/nlptransfer)."""
    if os.environ.get("NLPTRANSFER_CACHE"):
        return Path(os.environ["NLPTRANSFER_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "nlptransfer"


class Hold:
    """A lock on a cache entry (an open descriptor of it under flock), released when closed or garbage-collected:
    whatever reads the entry keeps its Hold."""

    def __init__(self, fd: int):
        self.fd = fd
        self._close = weakref.finalize(self, os.close, fd)

    def close(self) -> None:
        self._close()

    def __reduce__(self):
        return _no_hold, ()  # a copy or another process holds nothing: the lock stays with its process


def _no_hold() -> None:
    return None


def lock(path: Path, exclusive: bool = False, wait: bool = True) -> Hold:
    """A Hold of the file or folder at `path` (a symbolic link is refused: OSError ELOOP); BlockingIOError when
    `wait` is False and another process holds a conflicting lock."""
    import fcntl  # POSIX: flock locks go when their process ends, even when it is killed

    flags = os.O_RDONLY | os.O_NOFOLLOW | (os.O_DIRECTORY if os.path.isdir(path) and not os.path.islink(path) else 0)
    hold = Hold(os.open(path, flags))
    try:
        fcntl.flock(hold.fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB))
    except BaseException:
        hold.close()
        raise
    return hold


def untrusted(info: os.stat_result) -> str | None:
    """Why a file or folder with this (l)stat cannot be trusted: a symbolic link, another user's, writable by group
    or others; None when it can."""
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if info.st_uid != os.getuid():
        return f"is owned by another user (uid {info.st_uid})"
    if info.st_mode & 0o022:
        return f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):o})"
    return None


def kind_folder(folder: Path) -> Path:
    """`folder` (a kind of entries: splits, tokens ...), made if missing, with what killed runs left in it removed;
    RunError when another user owns it (or it is a link to another's): a cache can be no one else's."""
    from .fsio import remove_stale_temps

    try:
        folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    except OSError:
        return folder  # a read-only cache: writing an entry fails later, as it would, and never stops a run
    for info in (os.lstat(folder), os.stat(folder)):
        if info.st_uid != os.getuid():
            raise RunError(f"the cache folder {folder} is owned by another user (uid {info.st_uid}): its entries "
                           "cannot be trusted; set NLPTRANSFER_CACHE to a folder of your own, or data.cache=false")
    mode = stat.S_IMODE(os.stat(folder).st_mode)
    if mode & 0o022:  # ours, made under a looser umask: then only this user may add an entry
        folder.chmod(mode & ~0o022)
    remove_stale_temps(folder)
    return folder


@dataclass
class Entry:
    """One cache entry: a file or (`folder`) a folder at `path`, its files' sha256 recorded beside (a file) or in (a
    folder) it; `hold` is the lock a successful open or build took."""

    path: Path
    folder: bool
    hold: Hold | None = None

    @property
    def digests(self) -> Path:
        """Where the entry's sha256 are: inside a folder entry, beside a file entry."""
        return self.path / DIGESTS if self.folder else self.path.with_name(f"{self.path.name}.{DIGESTS}")

    def open(self) -> Hold | None:
        """The entry held (a shared lock) when it is there and can be trusted; None when it is not there, or (the log
        says which and why) when it cannot be trusted: the caller makes it again (build)."""
        if not os.path.lexists(self.path):
            return None
        try:
            hold = lock(self.path)
        except OSError as e:
            links = os.path.islink(self.path) or e.errno == errno.ELOOP
            reason = "is a symbolic link" if links else f"cannot be read ({e.strerror or e})"
        else:
            try:
                now = os.lstat(self.path)
            except FileNotFoundError:  # cleared while this waited for its lock
                hold.close()
                return None
            held = os.fstat(hold.fd)
            if (held.st_ino, held.st_dev) != (now.st_ino, now.st_dev):  # replaced meanwhile
                hold.close()
                return self.open()
            reason = self._problem(held)
            if reason is None:
                self.hold = hold
                return hold
            hold.close()
        logger.warning(f"cache: {self.path} is not used: it {reason}; made again")
        return None

    def _problem(self, info: os.stat_result) -> str | None:
        """Why the entry (whose stat is `info`) cannot be trusted, or None."""
        from .fsio import digest_problem

        if (reason := untrusted(info)) is not None:
            return reason
        if self.folder != stat.S_ISDIR(info.st_mode):
            return "is a file where a folder belongs" if self.folder else "is a folder where a file belongs"
        folder = self.path if self.folder else self.path.parent
        if not os.path.lexists(self.digests):
            return f"has no {self.digests.name} (written without digests, or damaged)"
        files = list(self.path.iterdir()) if self.folder else [self.digests]
        for file in files:
            if (reason := untrusted(os.lstat(file))) is not None or not file.is_file():
                return f"holds {file.name}, which {reason or 'is not a file'}"
        try:
            parts = json.loads(self.digests.read_text(encoding="utf-8"))
            if not isinstance(parts, dict) or not self.folder and set(parts) != {self.path.name}:
                raise ValueError("not this entry's")
        except (OSError, ValueError) as e:
            return f"has damaged digests ({self.digests.name}: {e})"
        unlisted = sorted({f.name for f in files} - {DIGESTS} - set(parts)) if self.folder else []
        if unlisted:
            return f"holds {unlisted[0]}, which its digests do not list"
        found = digest_problem(folder, parts)
        if found is not None:
            path, what = found
            return (f"lacks {path.name}" if what == "missing"
                    else f"has a {path.name} whose sha256 differs from the one recorded when it was written")
        return None

    @contextmanager
    def build(self) -> Iterator[Path]:
        """A temporary path beside the entry to write it at (a folder entry's folder made); on success the files'
        sha256 are recorded, their write bits for group and others cleared, and a shared lock taken (`hold`) before
        it replaces the entry in one rename (over anything there, a link or another's entry included)."""
        from .fsio import atomic_write_json, file_digests, make_dir, remove_path, replace_path, sha256_file, temp_path

        temp = temp_path(self.path)
        for attempt in (0, 1):  # a --clear running now may remove the kind's folder once
            try:
                self.path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
                if self.folder:
                    make_dir(temp)
                break
            except FileNotFoundError:
                if attempt:
                    raise
        try:
            yield temp
            hold = lock(temp)
            if self.folder:
                (temp / DIGESTS).write_text(json.dumps(file_digests(temp)), encoding="utf-8")
            else:  # before the rename: the digests of an entry that is there may change, never go missing
                atomic_write_json(self.digests, {self.path.name: sha256_file(temp)})
            for path in [temp, *temp.rglob("*")] if self.folder else [temp, self.digests]:
                path.chmod(stat.S_IMODE(os.lstat(path).st_mode) & ~0o022)
            replace_path(temp, self.path)
        except BaseException:
            remove_path(temp)
            raise
        self.hold = hold


def clear(folder: Path) -> tuple[int, list[str]]:
    """Remove every entry of the kind's `folder` that no run holds (a shared lock) and what killed runs left; returns
    how many were removed and, for each one kept, a line saying which and why. The folder goes when empty."""
    from .fsio import remove_path, temp_writer

    removed, kept = 0, []
    names = sorted(os.listdir(folder)) if folder.is_dir() else []
    for name in names:
        path = folder / name
        if name.endswith(f".{DIGESTS}"):
            continue  # goes with its entry
        writer = temp_writer(name)
        if writer is not None:
            kept.append(f"{path}: a run in progress (process {writer}) is writing it")
            continue
        try:
            hold = lock(path, exclusive=True, wait=False) if not os.path.islink(path) else None
        except BlockingIOError:
            kept.append(f"{path}: a run in progress uses it; clear again when it has finished")
            continue
        except OSError:
            hold = None  # cannot be opened (another's, unreadable): removed if it can be
        try:
            remove_path(path)
            (folder / f"{name}.{DIGESTS}").unlink(missing_ok=True)
        finally:
            if hold is not None:
                hold.close()
        if os.path.lexists(path):
            kept.append(f"{path}: it could not be removed (another user's, or a read-only folder)")
        else:
            removed += 1
    for name in names:  # digests whose entry is gone
        if name.endswith(f".{DIGESTS}") and not os.path.lexists(folder / name[:-len(DIGESTS) - 1]):
            (folder / name).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass
    return removed, kept
