"""The multi_label kind: each row holds any number of the task's labels (a 0/1 row [labels]); a sigmoid per label
and binary cross-entropy (positive weights per label with training.class_weights); a label is predicted at or above
its threshold (tuned per label on validation, saved in labels.json); micro-, macro- and sample-F1, subset accuracy,
Hamming loss, LRAP and per-label scores; tf-idf + one-vs-rest logistic regression is the from-scratch baseline, and
two models are compared on micro-F1 over the same texts."""
from __future__ import annotations

import numpy as np

from .. import multilabel_metrics as mm
from .kind import Task, TaskKind, register_task_kind


#: validation rows holding a label before its threshold is tuned (fewer: it keeps 0.5)
MIN_POSITIVES = 5


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Element-wise logistic function, stable for large |logits|."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(logits, dtype=np.float64)))


def thresholds_of(task: Task | None, width: int) -> np.ndarray:
    """The task's thresholds (0.5 each when not tuned, or without a task)."""
    found = getattr(getattr(task, "labels", None), "thresholds", None)
    return np.asarray(found if found is not None else [0.5] * width, dtype=np.float64)


class MultiLabel(TaskKind):
    """Any number of labels per row, out of the task's label map."""

    name = "multi_label"
    tunes = True
    report_scores = ("micro_f1", "macro_f1")
    weighs_rows = False

    def width(self, task: Task) -> int:
        return len(task.labels)

    def encode(self, task: Task, cell) -> list[int]:
        chosen = set(cell)
        unknown = chosen - set(task.labels.names)
        if unknown:
            raise KeyError(sorted(unknown)[0])
        return [int(n in chosen) for n in task.labels.names]

    def output_size(self, task: Task) -> int:
        return len(task.labels)

    def slot_gold(self, slots):
        return slots  # the 0/1 row itself

    def gold(self, column: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        matrix = np.asarray(column, dtype=np.int64)
        return matrix, np.arange(len(matrix))  # every row is labelled (an empty set is a label set)

    def loss(self, logits, gold, weight=None, total=None, masked: bool = True):
        """The mean binary cross-entropy over rows and labels; `weight`: each label's positive weight. With `total`
        (a multi-task step's rows over the processes), each row's mean over its labels summed over `total`."""
        import torch.nn.functional as F

        if total is None:
            return F.binary_cross_entropy_with_logits(logits, gold.to(logits.dtype), pos_weight=weight)
        rows = F.binary_cross_entropy_with_logits(logits, gold.to(logits.dtype), pos_weight=weight, reduction="none")
        return rows.mean(1).sum() / total.float().clamp(min=1e-12)

    def decode(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(logits)

    def predicted(self, outputs: np.ndarray, task: Task | None = None) -> np.ndarray:
        """A 0/1 row per text: each label at or above its threshold."""
        outputs = np.asarray(outputs)
        return mm.predicted_sets(outputs, thresholds_of(task, outputs.shape[1]))

    def metrics(self, task: Task, gold: np.ndarray, outputs: np.ndarray) -> dict:
        return mm.multi_label_metrics(np.asarray(gold).reshape(-1, len(task.labels)), outputs,
                                      thresholds_of(task, len(task.labels)), list(task.labels.names))

    def loss_value(self, logits: np.ndarray, gold: np.ndarray) -> float:
        import torch

        if not len(gold):
            return 0.0
        return float(self.loss(torch.from_numpy(np.asarray(logits, dtype=np.float32)), torch.from_numpy(gold)))

    def extra_metrics(self, task: Task, wanted: list[str], gold: np.ndarray, outputs: np.ndarray,
                      modules: dict | None) -> dict:
        return {}  # the recipe check refuses evaluation.metrics with task multi_label

    def slice_metrics(self, task: Task, gold: np.ndarray, outputs: np.ndarray, values: list, column: str,
                      seed: int, resamples: int = 1000, level: float = 0.95) -> dict:
        """Micro- and macro-F1 for every value of a column, and the largest micro-F1 gap between two of them."""
        values = np.asarray([str(v) for v in values], dtype=object)
        slices = {}
        for value in sorted(set(values)):
            rows = values == value
            m = self.metrics(task, np.asarray(gold)[rows], np.asarray(outputs)[rows])
            slices[value] = {"n": m["n"], "micro_f1": m["micro_f1"], "macro_f1": m["macro_f1"]}
        result = {"column": column, "slices": slices, "gap": None}
        if len(slices) >= 2:
            best = max(slices, key=lambda v: (slices[v]["micro_f1"], v))
            worst = min(slices, key=lambda v: (slices[v]["micro_f1"], v))
            result["gap"] = {"metric": "micro_f1", "between": [best, worst],
                             "estimate": slices[best]["micro_f1"] - slices[worst]["micro_f1"]}
        return result

    def stratify_key(self, gold: np.ndarray) -> np.ndarray:
        return np.asarray(gold)  # the label matrix: data.carve.iterative stratifies on it

    def baseline(self, C: float, seed: int):
        """tf-idf over word 1-2-grams and character 2-5-grams, then one logistic regression per label."""
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.pipeline import Pipeline

        from .single_label import SingleLabel

        single = SingleLabel().baseline(C, seed)
        return Pipeline([("features", single.named_steps["features"]),
                         ("model", OneVsRestClassifier(single.named_steps["model"]))])

    def baseline_outputs(self, model, texts: list[str], task: Task) -> np.ndarray:
        """Each label's probability [texts, labels]."""
        return np.asarray(model.predict_proba(texts), dtype=np.float64).reshape(len(texts), len(task.labels))

    def verdict_statistic(self, gold: np.ndarray, outputs: np.ndarray, task: Task | None = None) -> np.ndarray:
        """Per text: (true positives, false positives, false negatives) over its labels; micro-F1 sums them."""
        return mm.row_counts(np.asarray(gold), self.predicted(outputs, task))

    def class_weights(self, task: Task, labels: list) -> np.ndarray:
        """Each label's positive weight: its negative rows over its positive rows (1 for a label no row holds)."""
        matrix = np.asarray(labels, dtype=np.float64).reshape(-1, len(task.labels))
        positive = matrix.sum(0)
        return np.where(positive > 0, (len(matrix) - positive) / np.maximum(positive, 1), 1.0)

    def tune(self, task: Task, gold, outputs, threshold: float | None, objective: str = "label_f1"):
        """Each label's threshold: evaluation.threshold, else chosen on the validation split to maximise `objective`:
        each label's F1 (label_f1: so macro-F1), or micro-F1 over every label at once (micro_f1); 0.5 for a label
        with fewer than MIN_POSITIVES positive validation rows, or without a validation split."""
        names, width = list(task.labels.names), len(task.labels)
        if threshold is not None or outputs is None:
            value = 0.5 if threshold is None else float(threshold)
            why = "evaluation.threshold" if threshold is not None else "no validation split to choose them on"
            chosen = {"source": why, "rows": 0, "labels": {n: {"threshold": value} for n in names},
                      "summary": f"thresholds: {value:g} for every label ({why})"}
            return task.labels.with_thresholds([value] * width), chosen
        values, records = mm.tune_thresholds(np.asarray(gold), np.asarray(outputs), MIN_POSITIVES, objective)
        labels = {n: {k: r[k] for k in ("threshold", "positives", "tuned", "f1", "f1_at_0_5")}
                  for n, r in zip(names, records)}
        kept = [n for n in names if not labels[n]["tuned"]]
        aim = "micro-F1 over all labels" if objective == "micro_f1" else "each label's F1"
        summary = (f"thresholds chosen on {len(gold)} validation rows to maximise {aim}: "
                   + ", ".join(f"{n} {labels[n]['threshold']:g}" for n in names if labels[n]["tuned"])
                   + (f"; kept 0.5 (fewer than {MIN_POSITIVES} validation positives): {', '.join(kept)}" if kept
                      else ""))
        chosen = {"source": "validation", "objective": objective, "rows": int(len(gold)),
                  "min_positives": MIN_POSITIVES, "labels": labels, "summary": summary}
        return task.labels.with_thresholds(values), chosen

    def warning(self, scores: dict) -> str | None:
        if scores.get("n") and scores.get("micro_f1", 1.0) == 0.0:
            return ("micro-F1 is 0: the model predicts no label right (more epochs or rows, "
                    "training.class_weights=true, or the strategy's own training.lr may help)")
        return None

    def mistakes(self, task: Task, gold: np.ndarray, outputs: np.ndarray, texts: list[str], k: int) -> list[dict]:
        """The k wrong label decisions (a label on that the text lacks, or off that it holds) with the highest
        probability of the wrong decision (p for a false positive, 1 - p for a false negative)."""
        names, outputs = task.labels.names, np.asarray(outputs, dtype=np.float64)
        gold, predicted = np.asarray(gold).astype(bool), self.predicted(outputs, task).astype(bool)
        rows, labels = np.nonzero(gold != predicted)
        confidence = np.where(predicted[rows, labels], outputs[rows, labels], 1 - outputs[rows, labels])
        order = np.argsort(-confidence, kind="stable")[:k]
        joined = (task.labels.separator or ",").join
        return [{"text": texts[i], "label": names[j],
                 "error": "false positive" if predicted[i, j] else "false negative",
                 "gold": joined(n for n, on in zip(names, gold[i]) if on),
                 "predicted": joined(n for n, on in zip(names, predicted[i]) if on),
                 "probability": round(float(outputs[i, j]), 4), "confidence": round(float(confidence[o]), 4),
                 "gold_probability": round(float(1 - confidence[o]), 4),
                 "threshold": float(thresholds_of(task, len(names))[j])}
                for o, i, j in ((o, int(rows[o]), int(labels[o])) for o in order)]

    def collapsed(self, task: Task, gold: np.ndarray, outputs: np.ndarray) -> str | None:
        predicted, gold = self.predicted(outputs, task), np.asarray(gold)
        if len(predicted) and not predicted.any() and gold.any():
            return "the transfer model predicts no label for any test text"
        if len(predicted) > 1 and (predicted == predicted[0]).all() and not (gold == gold[0]).all():
            on = [n for n, v in zip(task.labels.names, predicted[0]) if v]
            return f"the transfer model predicts the same labels ({', '.join(on)}) for every test text"
        return None


register_task_kind(MultiLabel.name, MultiLabel())
