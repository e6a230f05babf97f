"""Classification metrics computed locally: accuracy, macro-F1, per-class P/R/F1, confusion matrix, calibration."""
from __future__ import annotations

import numpy as np


def confusion(gold: list[int] | np.ndarray, predicted: list[int] | np.ndarray, n_labels: int) -> np.ndarray:
    """Confusion matrix: rows are gold labels, columns predicted labels."""
    matrix = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(matrix, (np.asarray(gold, dtype=np.int64), np.asarray(predicted, dtype=np.int64)), 1)
    return matrix


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a, dtype=float), where=b > 0)


def expected_calibration_error(probs: np.ndarray, gold: np.ndarray, bins: int = 10) -> float:
    """ECE: the bin-weighted gap between confidence and accuracy of the top prediction."""
    if len(gold) == 0:
        return 0.0
    confidence = probs.max(1)
    correct = (probs.argmax(1) == gold).astype(float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        in_bin = which == b
        if in_bin.any():
            ece += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(ece)


def classification_metrics(gold, predicted, names: list[str] | tuple[str, ...], probs=None) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix and (with probs) ECE."""
    gold, predicted = np.asarray(gold, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    matrix = confusion(gold, predicted, len(names))
    tp = np.diag(matrix).astype(float)
    precision = _safe_div(tp, matrix.sum(0).astype(float))
    recall = _safe_div(tp, matrix.sum(1).astype(float))
    f1 = _safe_div(2 * precision * recall, precision + recall)
    support = matrix.sum(1)
    present = support > 0  # macro-F1 over the labels that occur in the gold set
    result = {
        "accuracy": float((gold == predicted).mean()) if len(gold) else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "n": int(len(gold)),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                   "support": int(support[i])}
            for i, name in enumerate(names)
        },
        "confusion_matrix": {"labels": list(names), "matrix": matrix.tolist()},
    }
    if probs is not None:
        result["ece"] = expected_calibration_error(np.asarray(probs, dtype=float), gold)
    return result


def ordinal_error(gold: list[int], predicted: list[int]) -> float:
    """Mean absolute distance between gold and predicted label positions (ordered sentiment labels)."""
    if not gold:
        return 0.0
    return float(sum(abs(g - p) for g, p in zip(gold, predicted)) / len(gold))
