"""Push a finished run to a hub and load it back anywhere: the Hugging Face Hub (through huggingface_hub: endpoint
and token from HF_ENDPOINT, HF_TOKEN or a saved login) or a folder hub (any local or mounted directory)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .card import model_card
from .errors import HubError
from .repo_folder import META, check_reproduces, export_merged, stage
from .run import RunFolder, atomic_dir, atomic_write_json, atomic_write_text

REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_TOKEN_LIKE = re.compile(r"hf_[A-Za-z0-9]{20,}")
KEEP_ON_HUB = {".gitattributes"}  #: files a push never deletes from a Hugging Face repo

__all__ = ["push", "pull", "load", "locate", "export_merged", "PushResult", "FolderHub", "check_repo_id"]


@dataclass
class PushResult:
    """What a push uploaded: where, which commit, every file with its size, and the reproduction check."""

    repo: str
    revision: str
    where: str
    commit: str
    files: list[tuple[str, int]] = field(default_factory=list)
    check: dict = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


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


def _scrub(text: str, token: str | None) -> str:
    """`text` without any token: the one given, the ones in the environment, or anything shaped like one."""
    for secret in (token, os.environ.get("HF_TOKEN"), os.environ.get("HUGGING_FACE_HUB_TOKEN")):
        if secret and len(secret) >= 4:
            text = text.replace(secret, "***")
    return _TOKEN_LIKE.sub("hf_***", text)


def _safe_url(url: str) -> str:
    """`url` without user:password@."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.hostname + (f":{parts.port}" if parts.port else ""))) if parts.hostname else url


def _hub_error(error: Exception, action: str, token: str | None) -> HubError:
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
    return HubError(_scrub(f"{action} failed: {why}", token))


def _files(folder: Path) -> list[tuple[str, int]]:
    return [(p.relative_to(folder).as_posix(), p.stat().st_size) for p in sorted(folder.rglob("*")) if p.is_file()]


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def push(run: str | Path, repo: str, *, hub: str | Path | None = None, revision: str | None = None,
         private: bool = False, license: str = "apache-2.0", token: str | None = None, log=print) -> PushResult:
    """Check, then upload a finished run to `repo` on the Hugging Face Hub (or on the folder hub `hub`)."""
    repo, revision = check_repo_id(repo), check_revision(revision)
    folder = RunFolder.existing(run, need=("labels", "recipe", "tokenizer", "metrics"))
    target = FolderHub(hub) if hub is not None else None
    if target is None:
        from huggingface_hub import constants

        if constants.is_offline_mode():  # fail before the check, not after it
            raise HubError(f"cannot push {repo} to the Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE is set); "
                           f"unset it, or push to a folder hub with --hub PATH")
    with tempfile.TemporaryDirectory(prefix="nlptransfer-push-") as tmp:  # never inside the run folder
        staged = Path(tmp)
        meta = stage(folder, staged)
        check = check_reproduces(staged, folder)
        meta["max_length"] = check.pop("max_length")  # tokens per text as loading resolves it
        meta["check"] = check
        atomic_write_json(staged / META, meta)
        card = model_card(staged, repo, revision, str(hub) if hub is not None else None, license, check)
        atomic_write_text(staged / "README.md", card)
        files = _files(staged)
        log(f"checked: reloaded in a fresh model, the folder reproduces the run's probabilities on {check['rows']} "
            f"test texts (max difference {check['max_abs_diff']:.1e}, tolerance {check['tolerance']:g})")
        log(f"pushing {len(files)} files ({_size(sum(s for _, s in files))}) of {folder.root} to {repo}@{revision or 'main'}:")
        for name, size in files:
            log(f"  {name:32} {_size(size):>10}")
        message = f"nlptransfer push of {folder.root.name} ({meta['strategy']})"
        if target is not None:
            if private:
                log("note: --private means nothing on a folder hub: its folder's permissions decide who reads it")
            commit, where = target.commit(repo, staged, revision or "main", message), f"folder hub {target.root}"
        else:
            commit, where = _push_hf(repo, staged, revision, private, token, message)
    log(f"pushed {repo}@{revision or 'main'} to {where}: commit {commit[:12]}, {_size(sum(s for _, s in files))}")
    return PushResult(repo, revision or "main", where, commit, files, check)


def _push_hf(repo: str, folder: Path, revision: str | None, private: bool, token: str | None,
             message: str) -> tuple[str, str]:
    """One commit to the Hugging Face Hub holding exactly the files of `folder` (stale files deleted)."""
    import httpx2
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi(token=token)
    where = _safe_url(api.endpoint)
    try:
        api.create_repo(repo, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo, branch=revision, exist_ok=True)  # starts from main; main stays as it is
        names = [name for name, _ in _files(folder)]
        stale = sorted(set(api.list_repo_files(repo, revision=revision)) - set(names) - KEEP_ON_HUB)
        operations = [CommitOperationAdd(path_in_repo=n, path_or_fileobj=str(folder / n)) for n in names]
        operations += [CommitOperationDelete(path_in_repo=n) for n in stale]
        info = api.create_commit(repo, operations, commit_message=message, revision=revision)
    except (OSError, ValueError, httpx2.HTTPError) as e:
        raise _hub_error(e, f"push of {repo} to {where}", token) from None
    return info.oid, where


def pull(repo: str, *, hub: str | Path | None = None, revision: str | None = None, token: str | None = None) -> Path:
    """A local folder holding the repo's files at `revision` (Hugging Face cache, or the folder hub's snapshot)."""
    repo, revision = check_repo_id(repo), check_revision(revision)
    if hub is not None:
        folder = FolderHub(hub).resolve(repo, revision)
    else:
        import httpx2
        from huggingface_hub import HfApi, snapshot_download

        where = _safe_url(HfApi().endpoint)
        try:
            folder = Path(snapshot_download(repo, revision=revision, token=token))
        except (OSError, ValueError, httpx2.HTTPError) as e:
            raise _hub_error(e, f"download of {repo}@{revision or 'main'} from {where}", token) from None
    if not (folder / META).is_file():
        raise HubError(f"{repo} has no {META}: it was not published by nlptransfer push")
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


def load(source: str | Path, *, revision: str | None = None, hub: str | Path | None = None,
         token: str | None = None, device: str | None = None):
    """A TextClassifier from a run folder, a repo folder, or a hub repo NAMESPACE/NAME (`hub=`: a folder hub)."""
    from .classifier import TextClassifier

    return TextClassifier.load(locate(source, revision=revision, hub=hub, token=token), device)


class FolderHub:
    """A directory used as a hub: ROOT/NAMESPACE/NAME/ holds refs/<branch> (a commit id), snapshots/<commit>/
    (the files, hub layout) and commits/<commit>.json (parent, message, time, sha256 of every file)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise HubError(f"folder hub {root} does not exist or is not a folder: create (or mount) it first")

    def _ref(self, repo_dir: Path, revision: str) -> str | None:
        path = repo_dir / "refs" / revision
        return path.read_text(encoding="utf-8").strip() if path.is_file() else None

    def commit(self, repo: str, folder: Path, revision: str, message: str) -> str:
        """Store `folder` as a new commit of `repo` on branch `revision` (a new branch starts from main)."""
        repo_dir = self.root / check_repo_id(repo)
        try:
            repo_dir.mkdir(parents=True, exist_ok=True)
            record = {"parent": self._ref(repo_dir, revision) or self._ref(repo_dir, "main"), "revision": revision,
                      "message": message, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                      "files": {name: {"size": size, "sha256": _sha256(folder / name)} for name, size in _files(folder)}}
            commit = hashlib.sha1(json.dumps(record, sort_keys=True).encode() + os.urandom(8)).hexdigest()
            with atomic_dir(repo_dir / "snapshots" / commit) as tmp:
                shutil.copytree(folder, tmp, dirs_exist_ok=True)
            atomic_write_json(repo_dir / "commits" / f"{commit}.json", record)
            atomic_write_text(repo_dir / "refs" / revision, commit + "\n")  # the ref moves last: readers never see half
        except OSError as e:
            raise HubError(f"cannot write to folder hub {self.root}: {e.strerror or e}") from None
        return commit

    def resolve(self, repo: str, revision: str | None = None) -> Path:
        """The snapshot folder of `repo` at `revision` (branch or commit id; default main), checked against its record."""
        repo_dir = self.root / check_repo_id(repo)
        if not repo_dir.is_dir():
            raise HubError(f"no repo {repo} in folder hub {self.root}")
        rev = revision or "main"
        commit = self._ref(repo_dir, rev) if REVISION.fullmatch(rev) else None
        if commit is None and _COMMIT.fullmatch(rev) and (repo_dir / "snapshots" / rev).is_dir():
            commit = rev
        if commit is None:
            branches = sorted(p.name for p in (repo_dir / "refs").glob("*")) if (repo_dir / "refs").is_dir() else []
            raise HubError(f"{repo} has no revision {rev!r} in folder hub {self.root} (branches: {', '.join(branches) or 'none'})")
        snapshot = repo_dir / "snapshots" / commit
        record = json.loads((repo_dir / "commits" / f"{commit}.json").read_text(encoding="utf-8"))
        for name, info in record["files"].items():
            if not (snapshot / name).is_file() or _sha256(snapshot / name) != info["sha256"]:
                raise HubError(f"{repo}@{rev} in folder hub {self.root} is damaged: {name} is missing or changed")
        return snapshot


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
