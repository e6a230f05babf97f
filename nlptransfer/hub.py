"""Where published repos live, and how to reach them: the Hugging Face Hub (through huggingface_hub: endpoint and
token from HF_ENDPOINT, HF_TOKEN or a saved login) or a folder hub (any local or mounted directory). Repo ids and
revisions are checked here, errors become one HubError without secrets, and `pull`/`locate` fetch a repo folder.
Both sides use it: publish/ writes through it, inference/ reads through it."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .errors import HubError, quoted
from .fsio import atomic_dir, atomic_write_json, atomic_write_text, is_temporary, remove_stale_temps, sha256_file

REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
REPO_META = "nlptransfer.json"  #: the file that marks a repo folder published by nlptransfer (kind, base model, labels)
REPO_FORMAT = 1  #: the repo-folder format this version reads and writes
_TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{20,}")

__all__ = ["pull", "locate", "FolderHub", "check_repo_id", "check_revision", "hub_error", "files_of", "scrub", "safe_url",
           "REPO_META", "REPO_FORMAT"]


def files_of(folder: Path) -> list[tuple[str, int]]:
    """Every file under `folder`: (relative path, size), sorted."""
    return [(p.relative_to(folder).as_posix(), p.stat().st_size) for p in sorted(folder.rglob("*")) if p.is_file()]


def check_repo_id(repo: str) -> str:
    """`repo` if it is NAMESPACE/NAME as hubs accept it; else HubError saying what the shape must be."""
    if (not isinstance(repo, str) or not REPO_ID.fullmatch(repo) or "--" in repo or ".." in repo
            or repo.endswith((".git", "."))):
        raise HubError(f"repo id {repo!r} is not NAMESPACE/NAME: two parts joined by one '/', each of letters, digits, "
                       f"'-', '_' or '.' (no '--' or '..'), e.g. my-team/reviews-lora")
    return repo


def check_revision(revision: str | None) -> str | None:
    """`revision` if it is a usable branch name (or None); else HubError."""
    if revision is not None and (not REVISION.fullmatch(revision) or ".." in revision):
        raise HubError(f"revision {revision!r} is not a branch name: letters, digits, '-', '_' or '.', e.g. v2")
    return revision


def looks_like_repo_id(text: str) -> bool:
    """True for NAMESPACE/NAME that is not an existing local path."""
    return bool(REPO_ID.fullmatch(text)) and not Path(text).expanduser().exists()


def scrub(text: str, token: str | None) -> str:
    """`text` without any token: the one given, the ones in the environment, or anything shaped like one."""
    for secret in (token, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _TOKEN_LIKE.sub("hf_***", text)


def safe_url(url: str) -> str:
    """`url` without user:password@."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))) if parts.hostname else url


def hub_error(error: Exception, action: str, token: str | None) -> HubError:
    """A HubError a user can act on, for an error raised by huggingface_hub or its HTTP client."""
    import httpx2
    from huggingface_hub.errors import (HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    status = getattr(getattr(error, "response", None), "status_code", None)
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, OfflineModeIsEnabled):
        why = "offline mode is on (HF_HUB_OFFLINE is set): unset it to reach the hub"
    elif isinstance(error, LocalEntryNotFoundError) and "HF_HUB_OFFLINE" in str(error):
        why = "offline mode is on (HF_HUB_OFFLINE is set) and the repo is not in the local cache: unset it"
    elif isinstance(error, LocalEntryNotFoundError):
        why = "the hub cannot be reached and the files are not in the local cache"
    elif status == 401:
        why = "HTTP 401: not authenticated (no token, or an invalid one): set HF_TOKEN or run `hf auth login`"
    elif status == 403:
        why = "HTTP 403: the hub refused: this token may not write to that namespace (check its permissions)"
    elif isinstance(error, RevisionNotFoundError):
        why = "no such revision (branch, tag or commit) in that repo"
    elif isinstance(error, RepositoryNotFoundError) or status == 404:
        why = "HTTP 404: no such repo, or it is private and this token cannot read it"
    elif isinstance(error, HfHubHTTPError):
        why = f"HTTP {status}: {first}"
    elif isinstance(error, httpx2.TransportError):
        why = (f"network error ({type(error).__name__}: {first}): the connection failed or was dropped, so the "
               f"operation may not have completed; run it again (a repeated push changes nothing)")
    else:
        why = f"{type(error).__name__}: {first}"
    return HubError(scrub(f"{action} failed: {why}", token))


def pull(repo: str, *, hub: str | Path | None = None, revision: str | None = None, token: str | None = None) -> Path:
    """A local folder holding the repo's files at `revision` (Hugging Face cache, or the folder hub's snapshot)."""
    repo, revision = check_repo_id(repo), check_revision(revision)
    if hub is not None:
        folder = FolderHub(hub).resolve(repo, revision)
    else:
        import httpx2
        from huggingface_hub import HfApi, snapshot_download

        where = safe_url(HfApi().endpoint)
        try:
            folder = Path(snapshot_download(repo, revision=revision, token=token))
        except (OSError, ValueError, httpx2.HTTPError) as e:
            raise hub_error(e, f"download of {repo}@{revision or 'main'} from {where}", token) from None
    if not (folder / REPO_META).is_file():
        raise HubError(f"{repo} has no {REPO_META}: it was not published by nlptransfer push")
    return folder


def locate(source: str | Path, *, revision: str | None = None, hub: str | Path | None = None,
           token: str | None = None) -> Path:
    """The local folder for `source`: a run or repo folder as given, else the pulled repo NAMESPACE/NAME."""
    if hub is None and revision is None and not looks_like_repo_id(str(source)):
        return Path(source)  # a local folder (loading says if it is missing)
    try:
        return pull(str(source), hub=hub, revision=revision, token=token)
    except HubError as e:
        if hub is None and revision is None:  # maybe a mistyped relative run folder
            raise HubError(f"{e} (and there is no local folder {source})") from None
        raise


class FolderHub:
    """A directory used as a hub: ROOT/NAMESPACE/NAME/ holds refs/<branch> (a commit id), snapshots/<commit>/
    (the files, hub layout) and commits/<commit>.json (parent, message, time, sha256 of every file)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise HubError(f"folder hub {root} does not exist or is not a folder: create (or mount) it first")

    def _ref(self, repo_dir: Path, revision: str) -> str | None:
        path = repo_dir / "refs" / revision
        return path.read_bytes().decode("utf-8", "replace").strip() if path.is_file() else None

    def commit(self, repo: str, folder: Path, revision: str, message: str) -> str:
        """Store `folder` as a new commit of `repo` on branch `revision` (a new branch starts from main)."""
        repo_dir = self.root / check_repo_id(repo)
        try:
            repo_dir.mkdir(parents=True, exist_ok=True)
            for part in ("refs", "snapshots", "commits"):  # what killed pushes of this host left behind
                remove_stale_temps(repo_dir / part)
            record = {"parent": self._ref(repo_dir, revision) or self._ref(repo_dir, "main"), "revision": revision,
                      "message": message, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "files": {name: {"size": size, "sha256": sha256_file(folder / name)}
                                for name, size in files_of(folder)}}
            commit = hashlib.sha1(json.dumps(record, sort_keys=True).encode() + os.urandom(8)).hexdigest()
            with atomic_dir(repo_dir / "snapshots" / commit) as tmp:
                for name, _ in files_of(folder):  # plain copies: the umask decides who may read them
                    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(folder / name, tmp / name)
            atomic_write_json(repo_dir / "commits" / f"{commit}.json", record)
            atomic_write_text(repo_dir / "refs" / revision, commit + "\n")  # the ref moves last: readers never see half
        except OSError as e:
            raise HubError(f"cannot write to folder hub {self.root}: {e.strerror or e}") from None
        return commit

    def branches(self, repo: str) -> list[str]:
        """The branch names of `repo` (temporary files of interrupted writes are no branches)."""
        refs = self.root / check_repo_id(repo) / "refs"
        return sorted(p.name for p in refs.iterdir() if not is_temporary(p.name)) if refs.is_dir() else []

    def resolve(self, repo: str, revision: str | None = None) -> Path:
        """The snapshot folder of `repo` at `revision` (branch or commit id; default main), checked against its
        record: the files it lists, unchanged, and no other; HubError when the ref, the record or the snapshot is
        damaged."""
        repo_dir = self.root / check_repo_id(repo)
        if not repo_dir.is_dir():
            raise HubError(f"no repo {repo} in folder hub {self.root}")
        rev = revision or "main"
        commit = self._ref(repo_dir, rev) if REVISION.fullmatch(rev) else None
        if commit is None and _COMMIT.fullmatch(rev) and (repo_dir / "snapshots" / rev).is_dir():
            commit = rev
        if commit is None:
            branches = self.branches(repo)
            raise HubError(f"{repo} has no revision {rev!r} in folder hub {self.root} "
                           f"(branches: {', '.join(branches) or 'none'})")
        damaged = f"{repo}@{rev} in folder hub {self.root} is damaged:"
        if not _COMMIT.fullmatch(commit):  # a ref holds a commit id, never a path
            raise HubError(f"{damaged} refs/{rev} holds {quoted(commit)}, not a commit id (40 hex digits); push "
                           "again")
        snapshot = repo_dir / "snapshots" / commit
        if not snapshot.resolve().is_relative_to(self.root.resolve()):
            raise HubError(f"{damaged} snapshots/{commit} leads outside the hub")
        listed = _record_files(repo_dir / "commits" / f"{commit}.json", damaged)
        found = _plain_files(snapshot, damaged)
        for name in sorted(set(listed) | set(found)):
            if name not in found or sha256_file(found[name]) != listed.get(name):
                why = "is missing or changed" if name in listed else "is not in its commit record (planted?)"
                raise HubError(f"{damaged} {quoted(name)} {why}; push again")
        return snapshot


def _record_files(path: Path, damaged: str) -> dict[str, str]:
    """The files a commit record lists, {relative path: sha256}; HubError (after `damaged`) when it is missing or
    not a record."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HubError(f"{damaged} its commit record commits/{path.name} is missing; push again") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise HubError(f"{damaged} its commit record commits/{path.name} cannot be read as JSON "
                       f"({e}); push again") from None
    files = record.get("files") if isinstance(record, dict) else None
    if not isinstance(files, dict) or not all(isinstance(f, dict) and isinstance(f.get("sha256"), str)
                                              for f in files.values()):
        raise HubError(f"{damaged} its commit record commits/{path.name} lists no files with their sha256; push "
                       "again")
    return {name: info["sha256"] for name, info in files.items()}


def _plain_files(snapshot: Path, damaged: str) -> dict[str, Path]:
    """Every file in a snapshot folder by relative path; HubError (after `damaged`) for a link or anything but a
    plain file or folder (a commit writes plain copies)."""
    found = {}
    for folder, dirs, files in os.walk(snapshot):
        for name in dirs + files:
            path = Path(folder) / name
            relative = path.relative_to(snapshot).as_posix()
            if path.is_symlink() or not (path.is_dir() if name in dirs else path.is_file()):
                raise HubError(f"{damaged} {quoted(relative)} is a link or not a plain file; push again")
            if name in files:
                found[relative] = path
    return found
