"""A model's reference profile: what its outputs and inputs looked like on held-out texts when it was trained (the
predicted-label mix, the confidence histogram, and the pooled embeddings of a sample of texts). A server compares
live traffic with it to raise drift alarms. Written into the run folder by training (reference.json and
reference.safetensors); for an older run it is computed from its test predictions when first needed."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fsio import atomic_write_bytes, atomic_write_json, read_json_file

PROFILE_FILE = "reference.json"
EMBEDDINGS_FILE = "reference.safetensors"
#: texts whose embeddings are kept, at most
SAMPLE = 300
#: confidence histogram bins over [0, 1]
BINS = 10
#: texts the mix and histogram come from, at most (a seeded sample of more)
TEXTS = 2000


@dataclass
class Profile:
    """The reference a live window is compared with."""

    labels: list[str]
    label_mix: list[float]  #: share of each label among the predictions (multi_label: the share of texts with it)
    confidence: list[float]  #: share of predictions in each of BINS equal confidence bins over [0, 1]
    embeddings: np.ndarray  #: [texts, hidden] pooled features of a sample of the texts
    texts: int  #: how many texts the mix and histogram come from
    source: str  #: which texts: validation, test or a sample of train
    kind: str = "single_label"  #: the task kind of the labels (multi_label: label_mix holds each label's rate)

    def to_json(self) -> dict:
        return {"labels": self.labels, "label_mix": self.label_mix, "confidence_bins": BINS,
                "confidence": self.confidence, "texts": self.texts, "embedded": int(len(self.embeddings)),
                "source": self.source, **({"kind": self.kind} if self.kind != "single_label" else {})}


def mix(predicted: np.ndarray, n_labels: int) -> list[float]:
    """The share of each label id among `predicted`."""
    counts = np.bincount(np.asarray(predicted, dtype=np.int64), minlength=n_labels).astype(float)
    return (counts / max(counts.sum(), 1)).tolist()


def histogram(confidence: np.ndarray) -> list[float]:
    """The share of `confidence` values in each of BINS equal bins over [0, 1]."""
    counts, _ = np.histogram(np.clip(confidence, 0, 1), bins=BINS, range=(0.0, 1.0))
    return (counts / max(counts.sum(), 1)).tolist()


def build_profile(classifier, texts: list[str], source: str, seed: int = 0) -> Profile:
    """The profile of `classifier` on `texts` (up to TEXTS of them for the mix and histogram, a seeded sample of
    SAMPLE embedded)."""
    rng = np.random.default_rng(seed)
    if len(texts) > TEXTS:
        texts = [texts[i] for i in sorted(rng.choice(len(texts), TEXTS, replace=False))]
    probs = classifier.predict_proba(texts)
    if isinstance(probs, dict):  # a multi-task model: its first task's (the one the server's drift follows)
        probs = next(iter(probs.values()))
    sample = [texts[i] for i in sorted(rng.choice(len(texts), min(SAMPLE, len(texts)), replace=False))]
    names = list(classifier.label_map.names)
    task = next(iter(classifier.all_tasks.values()))
    if task.labels.kind == "multi_label":  # each label's rate among the texts
        label_mix = task.kind.predicted(probs, task).mean(0).tolist() if len(probs) else [0.0] * len(names)
    else:
        label_mix = mix(probs.argmax(1), len(names))
    return Profile(names, label_mix, histogram(probs.max(1)), classifier.embed(sample).astype(np.float32), len(texts),
                   source, task.labels.kind)


def save_profile(profile: Profile, folder: Path) -> None:
    """reference.json and reference.safetensors in `folder`, each written atomically."""
    from safetensors.numpy import save

    atomic_write_bytes(Path(folder) / EMBEDDINGS_FILE, save({"embeddings": np.ascontiguousarray(profile.embeddings)}))
    atomic_write_json(Path(folder) / PROFILE_FILE, profile.to_json())


def load_profile(folder: Path) -> Profile | None:
    """The profile saved in a run or repo folder, or None when it has none."""
    from safetensors.numpy import load_file

    folder = Path(folder)
    if not (folder / PROFILE_FILE).is_file() or not (folder / EMBEDDINGS_FILE).is_file():
        return None
    data = read_json_file(folder / PROFILE_FILE)
    return Profile(data["labels"], data["label_mix"], data["confidence"],
                   load_file(str(folder / EMBEDDINGS_FILE))["embeddings"], data["texts"], data["source"],
                   data.get("kind", "single_label"))


def profile_for(classifier, folder: Path) -> Profile | None:
    """The saved profile of a folder, or one computed from its test predictions (a run made before profiles were
    saved); None when neither is there."""
    saved = load_profile(folder)
    if saved is not None:
        return saved
    predictions = Path(folder) / "predictions.csv"
    if not predictions.is_file():
        return None
    with open(predictions, newline="", encoding="utf-8") as f:
        texts = [row["text"] for row in csv.DictReader(f)]
    return build_profile(classifier, texts, "test predictions (computed on first use)") if texts else None
