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


def majority_warning(scores: dict) -> str | None:
    """What to say when scores (classification_metrics) are no better than the class balance: every row predicted as
    one class, or an accuracy no higher than always predicting the most common gold class; None otherwise, or when
    the gold rows hold a single class."""
    matrix = np.asarray(scores.get("confusion_matrix", {}).get("matrix", []))
    if matrix.ndim != 2 or matrix.sum() == 0 or (matrix.sum(1) > 0).sum() < 2:
        return None
    names, n = scores["confusion_matrix"]["labels"], int(matrix.sum())
    predicted, gold = matrix.sum(0), matrix.sum(1)
    if predicted.max() == n:
        label = names[int(predicted.argmax())]
        return (f"the model predicts '{label}' for all {n} rows: its accuracy {scores['accuracy']:.4f} is that "
                f"class's share, nothing learnt from the texts (more epochs or rows, training.class_weights=true, or "
                f"the strategy's own training.lr may help)")
    majority = gold.max() / n
    if scores["accuracy"] <= majority:
        return (f"accuracy {scores['accuracy']:.4f} is no better than always predicting "
                f"'{names[int(gold.argmax())]}' ({majority:.4f}, its share of the {n} rows)")
    return None


def slice_metrics(gold, predicted, names, values, column: str, resamples: int = 1000, seed: int = 0,
                  level: float = 0.95) -> dict:
    """Accuracy, macro-F1 and per-class recall for every value of a column (a slice of the rows), and the largest
    accuracy gap between two slices with its paired-free bootstrap interval (each slice resampled on its own)."""
    gold, predicted = np.asarray(gold, dtype=np.int64), np.asarray(predicted, dtype=np.int64)
    values = np.asarray([str(v) for v in values], dtype=object)
    slices = {}
    for value in sorted(set(values)):
        rows = values == value
        m = classification_metrics(gold[rows], predicted[rows], names)
        slices[value] = {"n": m["n"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                         "recall": {n: c["recall"] for n, c in m["per_class"].items() if c["support"]}}
    result = {"column": column, "slices": slices, "gap": None}
    if len(slices) < 2:
        return result
    best = max(slices, key=lambda v: (slices[v]["accuracy"], v))
    worst = min(slices, key=lambda v: (slices[v]["accuracy"], v))
    right = gold == predicted
    a, b = right[values == best], right[values == worst]
    rng = np.random.default_rng(seed)
    diffs = (a[rng.integers(0, len(a), (resamples, len(a)))].mean(1)
             - b[rng.integers(0, len(b), (resamples, len(b)))].mean(1))
    low, high = np.percentile(diffs, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    result["gap"] = {"metric": "accuracy", "between": [best, worst], "estimate": float(a.mean() - b.mean()),
                     "low": float(low), "high": float(high), "level": level, "resamples": resamples, "seed": seed}
    return result


#: metric names computed here, from classification_metrics (evaluation.metrics may name these or evaluate modules)
LOCAL_METRICS = ("accuracy", "macro_f1", "ece", "macro_precision", "macro_recall", "weighted_f1")


def _local(name: str, gold, predicted, names, probs) -> float:
    m = classification_metrics(gold, predicted, names, probs)
    per = [c for c in m["per_class"].values() if c["support"]]
    if name in ("accuracy", "macro_f1", "ece"):
        return m[name]
    if name == "weighted_f1":
        total = sum(c["support"] for c in per)
        return float(sum(c["f1"] * c["support"] for c in per) / total) if total else 0.0
    key = name.split("_", 1)[1]
    return float(np.mean([c[key] for c in per])) if per else 0.0


def load_metric(name: str):
    """An `evaluate` module by local path (a script, or its folder) or hub id; RecipeError saying why it cannot load
    (the package missing, offline, unknown id)."""
    from .errors import RecipeError

    try:
        import evaluate
    except ImportError:
        raise RecipeError(f"evaluation.metrics names {name!r}, an evaluate module: pip install evaluate "
                          f"(or nlptransfer[metrics]); local metrics need nothing: {', '.join(LOCAL_METRICS)}") from None
    try:
        return evaluate.load(name)
    except Exception as e:  # FileNotFoundError, ConnectionError, offline mode: all one message
        import os

        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
        why = "offline (HF_HUB_OFFLINE is set), and it is no local path" if offline else \
            f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
        raise RecipeError(f"cannot load the evaluate module {name!r}: {why}; give a local path to a metric script "
                          f"or folder, or a local metric: {', '.join(LOCAL_METRICS)}") from None


def extra_metrics(names_wanted: list[str], gold, predicted, label_names, probs=None, modules: dict | None = None
                  ) -> dict:
    """The metrics a recipe's evaluation.metrics asks for: local ones by name, evaluate modules by path or id
    (loaded with load_metric unless given in `modules`), each under its own name."""
    out = {}
    for name in names_wanted:
        if name in LOCAL_METRICS:
            out[name] = _local(name, gold, predicted, label_names, probs)
            continue
        module = (modules or {}).get(name) or load_metric(name)
        out[name] = module.compute(predictions=[int(p) for p in predicted], references=[int(g) for g in gold])
    return out
