"""Push a finished run to a hub: stage its repo folder, check that the folder reloads to the run's predictions,
write the model card, then commit it to the Hugging Face Hub or a folder hub (nothing is uploaded when the check
fails)."""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from ..logs import get_logger
from ..errors import HubError
from ..hub import REPO_META, FolderHub, check_repo_id, check_revision, files_of, hub_error, safe_url
from ..fsio import atomic_write_json, atomic_write_text, make_dir, remove_stale_temps, temp_path
from ..run import RunFolder
from .card import check_license, model_card
from .repo_folder import check_reproduces, stage

logger = get_logger(__name__)
KEEP_ON_HUB = {".gitattributes"}  #: files a push never deletes from a Hugging Face repo


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


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def push(run: str | Path, repo: str, *, hub: str | Path | None = None, revision: str | None = None,
         private: bool = False, license: str = "apache-2.0", token: str | None = None,
         trust_remote_code: bool = False) -> PushResult:
    """Check, then upload a finished run to `repo` on the Hugging Face Hub (or on the folder hub `hub`)."""
    repo, revision, license = check_repo_id(repo), check_revision(revision), check_license(license)
    folder = RunFolder.existing(run, need=("labels", "recipe", "tokenizer", "metrics"))
    target = FolderHub(hub) if hub is not None else None
    if target is None:
        from huggingface_hub import constants

        if constants.is_offline_mode():  # fail before the check, not after it
            raise HubError(f"cannot push {repo} to the Hugging Face Hub: offline mode is on (HF_HUB_OFFLINE is set); "
                           f"unset it, or push to a folder hub with --hub PATH")
    scratch = Path(tempfile.gettempdir())
    remove_stale_temps(scratch, "nlptransfer-push")  # what killed pushes of this host left behind
    staged = make_dir(temp_path(scratch / "nlptransfer-push"))  # never inside the run folder
    try:
        meta = stage(folder, staged)
        check = check_reproduces(staged, folder, trust_remote_code)
        meta["max_length"] = check.pop("max_length")  # tokens per text as loading resolves it
        meta["check"] = check
        atomic_write_json(staged / REPO_META, meta)
        card = model_card(staged, repo, revision, str(hub) if hub is not None else None, license, check)
        atomic_write_text(staged / "README.md", card)
        files = files_of(staged)
        logger.info(f"checked: reloaded in a fresh model, the folder reproduces the run's probabilities on {check['rows']} "
            f"test texts (max difference {check['max_abs_diff']:.1e}, tolerance {check['tolerance']:g})")
        logger.info(f"pushing {len(files)} files ({_size(sum(s for _, s in files))}) of {folder.root} to {repo}@{revision or 'main'}:")
        for name, size in files:
            logger.info(f"  {name:32} {_size(size):>10}")
        message = f"nlptransfer push of {folder.root.name} ({meta['strategy']})"
        if target is not None:
            if private:
                logger.info("note: --private means nothing on a folder hub: its folder's permissions decide who reads it")
            commit, where = target.commit(repo, staged, revision or "main", message), f"folder hub {target.root}"
        else:
            commit, where = _push_hf(repo, staged, revision, private, token, message)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    logger.info(f"pushed {repo}@{revision or 'main'} to {where}: commit {commit[:12]}, {_size(sum(s for _, s in files))}")
    return PushResult(repo, revision or "main", where, commit, files, check)


def _push_hf(repo: str, folder: Path, revision: str | None, private: bool, token: str | None,
             message: str) -> tuple[str, str]:
    """One commit to the Hugging Face Hub holding exactly the files of `folder` (stale files deleted)."""
    import httpx2
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi(token=token)
    where = safe_url(api.endpoint)
    try:
        api.create_repo(repo, private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo, branch=revision, exist_ok=True)  # starts from main; main stays as it is
        names = [name for name, _ in files_of(folder)]
        stale = sorted(set(api.list_repo_files(repo, revision=revision)) - set(names) - KEEP_ON_HUB)
        operations = [CommitOperationAdd(path_in_repo=n, path_or_fileobj=str(folder / n)) for n in names]
        operations += [CommitOperationDelete(path_in_repo=n) for n in stale]
        info = api.create_commit(repo, operations, commit_message=message, revision=revision)
    except (OSError, ValueError, httpx2.HTTPError) as e:
        raise hub_error(e, f"push of {repo} to {where}", token) from None
    return info.oid, where
