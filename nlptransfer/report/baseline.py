"""The from-scratch baseline: tf-idf over word and character n-grams with logistic regression (scikit-learn)."""
from __future__ import annotations

import dataclasses
import math
import pickle
import time
from dataclasses import dataclass

import numpy as np

from ..data import LabelledTexts
from ..sections import threshold_objective
from ..tasks import DEFAULT_KIND, Task, run_tasks, task_kind

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
    #: a kind that tunes (multi_label): the task with the baseline's own thresholds, how they were chosen, and the
    #: validation scores at 0.5 (the thresholds a run's log scores validation with while it trains)
    task: Task | None = None
    thresholds: dict | None = None
    validation_untuned: dict | None = None

    @property
    def trainable_parameters(self) -> int:
        """Coefficients and intercepts of the logistic regression(s)."""
        model = self.pipeline.named_steps["model"]
        return int(sum(m.coef_.size + m.intercept_.size for m in getattr(model, "estimators_", [model])))

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


def _scalars(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if isinstance(v, float)}


def fit_tuned_baseline(train: LabelledTexts, validation: LabelledTexts | None, test: LabelledTexts | None,
                       task: Task, metric: str, seed: int = 0, threshold: float | None = None) -> BaselineResult:
    """The baseline of a kind that tunes thresholds (multi_label: tf-idf + one-vs-rest logistic regression): fitted on
    `train` for each C, its thresholds tuned on `validation` as the run tuned its own (`kind.tune`, or `threshold` for
    every label), C chosen by `metric` at those thresholds (the first C without a validation split)."""
    kind = task.kind
    started = time.perf_counter()
    has_validation = validation is not None and len(validation) > 0
    grid = C_GRID if has_validation else C_GRID[:1]
    gold_val = kind.gold(validation.labels)[0] if has_validation else None
    best = None
    for C in grid:
        pipeline = kind.baseline(C, seed).fit(train.texts, np.asarray(train.labels))
        outputs = kind.baseline_outputs(pipeline, validation.texts, task) if has_validation else None
        labels, chosen = kind.tune(task, gold_val, outputs, threshold, threshold_objective(metric))
        tuned = dataclasses.replace(task, labels=labels)
        val = _scalars(kind.metrics(tuned, gold_val, outputs)) if has_validation else None
        if best is None or (val is not None and val[metric] > best[2][metric]):
            untuned = _scalars(kind.metrics(task, gold_val, outputs)) if has_validation else None
            best = (pipeline, C, val, tuned, chosen, untuned)
    seconds = time.perf_counter() - started
    pipeline, C, val, tuned, chosen, untuned = best
    test_probs = kind.baseline_outputs(pipeline, test.texts, task) if test is not None else None
    return BaselineResult(pipeline, C, seconds, len(grid), val, test_probs, tuned, chosen, untuned)


def label_set_subset(matrix, fraction: float, seed: int) -> list[int]:
    """Sorted row indices of a seeded subset of a 0/1 label matrix [rows, K] by iterative stratification
    (ceil(fraction x rows) rows), with one more row added for each label the train rows hold and the subset lacks."""
    from ..data.carve import iterative

    matrix = np.asarray(matrix).reshape(len(matrix), -1).astype(bool)
    if fraction >= 1 or not 0 < math.ceil(fraction * len(matrix)) < len(matrix):
        return list(range(len(matrix)))
    chosen = set(iterative(matrix, [("subset", fraction)], seed)["subset"].tolist())
    rng = np.random.default_rng(seed)
    for label in range(matrix.shape[1]):
        holders = np.flatnonzero(matrix[:, label])
        if len(holders) and not matrix[sorted(chosen), label].any():
            chosen.add(int(rng.choice(holders)))
    return sorted(chosen)


def training_subset(task: Task, labels: list, fraction: float, seed: int) -> list[int]:
    """The rows of a learning-curve fraction: stratified on the task kind's key (iterative stratification on a label
    matrix, each class's share on class ids)."""
    key = task.kind.stratify_key(np.asarray(labels))
    if key.ndim == 2:
        return label_set_subset(key, fraction, seed)
    return stratified_subset(labels, fraction, seed)


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


def fit_run_baseline(recipe, splits, task: Task) -> BaselineResult:
    """The from-scratch baseline on the run's splits: C chosen on validation by training.metric; a kind that tunes
    (multi_label) gets its thresholds tuned on validation as the run's were."""
    metric, seed = recipe.training.metric, recipe.training.seed
    if task.kind.tunes:
        return fit_tuned_baseline(splits.train, splits.validation, splits.test, task, metric, seed,
                                  recipe.evaluation.threshold)
    return fit_baseline(splits.train, splits.validation, splits.test, len(splits.label_map), metric, seed)
