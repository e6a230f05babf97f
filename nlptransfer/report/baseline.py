"""The from-scratch baseline: tf-idf over word and character n-grams with logistic regression (scikit-learn)."""
from __future__ import annotations

import pickle
import time
from dataclasses import dataclass

import numpy as np

from ..data import LabelledTexts
from ..tasks import DEFAULT_KIND, run_tasks, task_kind

#: Inverse regularisation strengths tried; the best on the validation split is kept (the first without one).
C_GRID = (10.0, 1.0, 100.0)


@dataclass
class BaselineResult:
    """A fitted baseline: the pipeline, its chosen C, fit time (with the search) and its scores."""

    pipeline: object
    C: float
    train_seconds: float
    fits: int
    validation: dict | None  # {"accuracy", "macro_f1"} of the chosen C
    test_probs: np.ndarray | None

    @property
    def trainable_parameters(self) -> int:
        """Coefficients and intercepts of the logistic regression."""
        model = self.pipeline.named_steps["model"]
        return int(model.coef_.size + model.intercept_.size)

    @property
    def artifact_bytes(self) -> int:
        """Bytes of the pickled pipeline (vocabulary, idf weights and coefficients)."""
        return len(pickle.dumps(self.pipeline))


def make_pipeline(C: float = 10.0, seed: int = 0):
    """An unfitted baseline of the task kind (single_label: tf-idf word 1-2-grams + character 2-5-grams → logistic
    regression)."""
    return task_kind(DEFAULT_KIND).baseline(C, seed)


def scores(gold, predicted) -> dict:
    """Accuracy and macro-F1 over the labels present in `gold` (as classification_metrics computes them)."""
    from ..metrics import classification_metrics

    n = int(max(max(gold, default=0), max(predicted, default=0))) + 1
    m = classification_metrics(gold, predicted, [str(i) for i in range(n)])
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}


def probabilities(pipeline, texts: list[str], n_labels: int) -> np.ndarray:
    """Class probabilities [texts, n_labels] (columns for labels unseen in training are 0)."""
    task = next(iter(run_tasks([str(i) for i in range(n_labels)]).values()))
    return task.kind.baseline_outputs(pipeline, texts, task)


def fit_baseline(train: LabelledTexts, validation: LabelledTexts | None, test: LabelledTexts | None,
                 n_labels: int, metric: str = "accuracy", seed: int = 0) -> BaselineResult:
    """Fit the baseline on `train`, choosing C on `validation` when there is one; score validation and test."""
    started = time.perf_counter()
    grid = C_GRID if validation is not None and len(validation) else C_GRID[:1]
    best = None
    for C in grid:
        pipeline = make_pipeline(C, seed).fit(train.texts, train.labels)
        val = None
        if validation is not None and len(validation):
            val = scores(validation.labels, probabilities(pipeline, validation.texts, n_labels).argmax(1))
        if best is None or (val is not None and val[metric] > best[2][metric]):
            best = (pipeline, C, val)
    seconds = time.perf_counter() - started
    pipeline, C, val = best
    test_probs = probabilities(pipeline, test.texts, n_labels) if test is not None else None
    return BaselineResult(pipeline, C, seconds, len(grid), val, test_probs)


def stratified_subset(labels: list[int], fraction: float, seed: int) -> list[int]:
    """Sorted row indices of a seeded subset keeping each class's share (at least one row per class)."""
    if fraction >= 1:
        return list(range(len(labels)))
    rng = np.random.default_rng(seed)
    labels_arr = np.asarray(labels)
    chosen: list[int] = []
    for label in np.unique(labels_arr):
        rows = np.flatnonzero(labels_arr == label)
        k = max(1, int(round(fraction * len(rows))))
        chosen += rng.permutation(rows)[:k].tolist()
    return sorted(chosen)


def subset(texts: LabelledTexts, indices: list[int]) -> LabelledTexts:
    """The rows `indices` of a split."""
    rows = texts.rows or list(range(1, len(texts) + 1))
    return LabelledTexts([texts.texts[i] for i in indices], [texts.labels[i] for i in indices],
                         [rows[i] for i in indices])
