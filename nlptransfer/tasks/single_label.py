"""The single_label kind: each row has one label of a fixed set; softmax over the head, cross-entropy, accuracy and
macro-F1, argmax decides; tf-idf + logistic regression is the from-scratch baseline; right/wrong per row is what two
models are compared on."""
from __future__ import annotations

import numpy as np

from .. import metrics as m
from ..data.schema import MISSING
from .kind import Task, TaskKind, register_task_kind


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of logits [rows, labels]."""
    shifted = logits - logits.max(1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(1, keepdims=True)


def masked_cross_entropy(logits, labels, weight=None, total=None):
    """The mean cross-entropy over the rows whose label is not MISSING (class-weighted mean with `weight`), or the
    summed loss over `total` (the loop's count for the whole step's batch, when processes share it); 0, still joined
    to the graph, for a batch with none of them (a plain mean would be NaN)."""
    import torch.nn.functional as F

    summed = F.cross_entropy(logits, labels, weight=weight, ignore_index=MISSING, reduction="sum")
    if total is None:
        present = labels != MISSING
        total = weight[labels[present]].sum() if weight is not None else present.sum()
    return summed / total.float().clamp(min=1e-12)  # no labelled row: 0 / tiny = 0


class SingleLabel(TaskKind):
    """One label per row, out of the task's label map."""

    name = "single_label"

    def encode(self, task: Task, cell: str) -> int:
        return task.labels.id(cell)

    def output_size(self, task: Task) -> int:
        return len(task.labels)

    def loss(self, logits, gold, weight=None, total=None, masked: bool = True):
        """Cross-entropy; `masked` False: every row has a label (a one-task batch), the plain (weighted) mean."""
        if not masked:
            import torch.nn.functional as F

            return F.cross_entropy(logits, gold, weight=weight)
        return masked_cross_entropy(logits, gold, weight, total)

    def decode(self, logits: np.ndarray) -> np.ndarray:
        return softmax(logits)

    def predicted(self, outputs: np.ndarray, task: Task | None = None) -> np.ndarray:
        return outputs.argmax(1)

    def metrics(self, task: Task, gold: np.ndarray, outputs: np.ndarray) -> dict:
        return m.classification_metrics(gold, self.predicted(outputs), task.labels.names, outputs)

    def loss_value(self, logits: np.ndarray, gold: np.ndarray) -> float:
        import torch

        if not len(gold):
            return 0.0
        return float(torch.nn.functional.cross_entropy(torch.from_numpy(logits),
                                                       torch.from_numpy(np.asarray(gold, dtype=np.int64))))

    def extra_metrics(self, task: Task, wanted: list[str], gold: np.ndarray, outputs: np.ndarray,
                      modules: dict | None) -> dict:
        return m.extra_metrics(wanted, gold, self.predicted(outputs), task.labels.names, outputs, modules)

    def slice_metrics(self, task: Task, gold: np.ndarray, outputs: np.ndarray, values: list, column: str,
                      seed: int, resamples: int = 1000, level: float = 0.95) -> dict:
        return m.slice_metrics(gold, self.predicted(outputs), task.labels.names, values, column, resamples, seed,
                               level)

    def stratify_key(self, gold: np.ndarray) -> np.ndarray:
        return np.asarray(gold)

    def baseline(self, C: float, seed: int):
        """tf-idf over word 1-2-grams and character 2-5-grams, then logistic regression."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion, Pipeline

        features = FeatureUnion([
            ("words", TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1)),
        ])
        return Pipeline([("features", features), ("model", LogisticRegression(C=C, max_iter=2000, random_state=seed))])

    def baseline_outputs(self, model, texts: list[str], task: Task) -> np.ndarray:
        """Class probabilities [texts, labels] (columns of labels unseen in training are 0)."""
        out = np.zeros((len(texts), len(task.labels)))
        out[:, model.named_steps["model"].classes_] = model.predict_proba(texts)
        return out

    def verdict_statistic(self, gold: np.ndarray, outputs: np.ndarray, task: Task | None = None) -> np.ndarray:
        return self.predicted(outputs) == np.asarray(gold)

    def class_weights(self, task: Task, labels: list) -> np.ndarray:
        """Inverse class frequency, averaging 1 over the rows."""
        counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=len(task.labels)).astype(float)
        return np.where(counts > 0, len(labels) / (len(task.labels) * np.maximum(counts, 1)), 0.0)

    def warning(self, scores: dict) -> str | None:
        return m.majority_warning(scores)

    def mistakes(self, task: Task, gold: np.ndarray, outputs: np.ndarray, texts: list[str], k: int) -> list[dict]:
        """The k wrong predictions with the highest probability, with the probability given to the gold label."""
        names, gold = task.labels.names, np.asarray(gold)
        predicted = outputs.argmax(1)
        wrong = np.flatnonzero(predicted != gold)
        wrong = wrong[np.argsort(-outputs[wrong, predicted[wrong]], kind="stable")][:k]
        return [{"text": texts[i], "gold": names[gold[i]], "predicted": names[predicted[i]],
                 "confidence": round(float(outputs[i, predicted[i]]), 4),
                 "gold_probability": round(float(outputs[i, gold[i]]), 4)} for i in wrong]

    def collapsed(self, task: Task, gold: np.ndarray, outputs: np.ndarray) -> str | None:
        predicted = set(np.asarray(outputs).argmax(1).tolist())
        if len(predicted) == 1 and len(set(np.asarray(gold).tolist())) > 1:
            return f"the transfer model predicts '{task.labels.names[predicted.pop()]}' for every test text"
        return None


register_task_kind(SingleLabel.name, SingleLabel())
