"""Multi-label metrics computed locally (defined as scikit-learn does), per-label thresholds, bootstrap of micro-F1."""
from __future__ import annotations

import numpy as np

from .metrics import expected_calibration_error

#: the thresholds `tune_thresholds` tries, 0.05 to 0.95 by 0.05
GRID = np.round(np.arange(1, 20) * 0.05, 2)
#: rows of a [rows, K, K] comparison block in the label-ranking average precision
_LRAP_CHUNK = 1024


def predicted_sets(probs: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """The predicted label sets as an int 0/1 matrix [n, K]: probs >= thresholds."""
    probs = np.asarray(probs, dtype=float)
    return (probs >= np.asarray(thresholds, dtype=float)).astype(np.int64)


def row_counts(gold: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """Per row (true positives, false positives, false negatives) summed over the labels: int [n, 3]."""
    gold, predicted = np.asarray(gold).astype(bool), np.asarray(predicted).astype(bool)
    return np.stack([(gold & predicted).sum(1), (~gold & predicted).sum(1), (gold & ~predicted).sum(1)],
                    1).astype(np.int64)


def _f1(tp, fp, fn) -> np.ndarray:
    """2tp / (2tp + fp + fn), 0 where the denominator is 0 (sklearn's zero_division=0)."""
    tp, fp, fn = (np.asarray(x, dtype=float) for x in (tp, fp, fn))
    den = 2 * tp + fp + fn
    return np.divide(2 * tp, den, out=np.zeros_like(den), where=den > 0)


def _ratio(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.zeros_like(b), where=b > 0)


def label_ranking_average_precision(gold: np.ndarray, probs: np.ndarray) -> float:
    """LRAP as sklearn's label_ranking_average_precision_score: a row whose gold set is empty or holds every label
    scores 1; tied scores rank as the worst of the tie ("max" ranks)."""
    gold, probs = np.asarray(gold).astype(bool), np.asarray(probs, dtype=float)
    n, k = gold.shape
    if n == 0:
        return 0.0
    total = 0.0
    for start in range(0, n, _LRAP_CHUNK):
        g, p = gold[start:start + _LRAP_CHUNK], probs[start:start + _LRAP_CHUNK]
        at_least = p[:, None, :] >= p[:, :, None]  # [rows, j, k]: label k scores at least as high as label j
        rank = at_least.sum(2)
        rank_among_gold = (at_least & g[:, None, :]).sum(2)
        positives = g.sum(1)
        per_row = _ratio((_ratio(rank_among_gold, rank) * g).sum(1), positives)
        per_row[(positives == 0) | (positives == k)] = 1.0
        total += float(per_row.sum())
    return total / n


def _binary_ece(gold_k: np.ndarray, probs_k: np.ndarray) -> float:
    """10-bin ECE of one label's binary probability (metrics.expected_calibration_error on [1 - p, p])."""
    return expected_calibration_error(np.stack([1 - probs_k, probs_k], 1), gold_k.astype(np.int64))


def multi_label_metrics(gold: np.ndarray, probs: np.ndarray, thresholds: np.ndarray, names) -> dict:
    """The metrics block of a multi-label task: subset accuracy, micro/macro/samples F1, Hamming loss, LRAP, ECE,
    per label precision/recall/F1/support/ECE/threshold, and the thresholds (JSON-ready Python numbers)."""
    names = list(names)
    k = len(names)
    gold = np.asarray(gold).reshape(-1, k).astype(np.int64)
    probs = np.asarray(probs, dtype=float).reshape(-1, k)
    thresholds = np.asarray(thresholds, dtype=float).reshape(k)
    if gold.shape != probs.shape:
        raise ValueError(f"gold {gold.shape} and probs {probs.shape} differ in shape")
    n = len(gold)
    predicted = predicted_sets(probs, thresholds)
    g, p = gold.astype(bool), predicted.astype(bool)
    tp, fp, fn = (g & p).sum(0), (~g & p).sum(0), (g & ~p).sum(0)
    f1 = _f1(tp, fp, fn)
    per_label_ece = [_binary_ece(gold[:, j], probs[:, j]) for j in range(k)]
    counts = row_counts(gold, predicted)
    subset = float((gold == predicted).all(1).mean()) if n else 0.0
    return {
        "accuracy": subset,
        "subset_accuracy": subset,
        "micro_f1": float(_f1(tp.sum(), fp.sum(), fn.sum())) if n else 0.0,
        "macro_f1": float(f1.mean()) if n and k else 0.0,
        "samples_f1": float(_f1(counts[:, 0], counts[:, 1], counts[:, 2]).mean()) if n else 0.0,
        "hamming_loss": float((gold != predicted).mean()) if n and k else 0.0,
        "lrap": label_ranking_average_precision(gold, probs),
        "ece": float(np.mean(per_label_ece)) if k else 0.0,
        "n": int(n),
        "per_class": {
            name: {"precision": float(_ratio(tp[j], tp[j] + fp[j])), "recall": float(_ratio(tp[j], tp[j] + fn[j])),
                   "f1": float(f1[j]), "support": int(tp[j] + fn[j]), "ece": float(per_label_ece[j]),
                   "threshold": float(thresholds[j])}
            for j, name in enumerate(names)
        },
        "thresholds": {name: float(thresholds[j]) for j, name in enumerate(names)},
    }


#: what thresholds may maximise: each label's F1 (so macro-F1), or micro-F1 over every label at once
OBJECTIVES = ("label_f1", "micro_f1")


def tune_thresholds(gold, probs, min_positives: int = 5, objective: str = "label_f1") -> tuple[np.ndarray, list[dict]]:
    """Per label the threshold of GRID that maximises that label's F1 (ties toward 0.5, then the lower one), or 0.5
    for a label with fewer than `min_positives` positive rows; with one record per label of how it was chosen.
    objective micro_f1: the thresholds that maximise micro-F1 together instead (coordinate ascent from 0.5, label by
    label, until no threshold changes), which leaves a label at 0.5 when lowering it adds more false positives
    over all labels than true ones."""
    probs = np.asarray(probs, dtype=float)
    gold = np.asarray(gold).reshape(probs.shape).astype(bool)
    n, k = probs.shape
    above = probs[:, :, None] >= GRID  # [n, K, grid]
    tp = (above & gold[:, :, None]).sum(0)
    fp = (above & ~gold[:, :, None]).sum(0)
    fn = gold.sum(0)[:, None] - tp
    f1 = _f1(tp, fp, fn)  # [K, grid]
    half = int(np.argmin(np.abs(GRID - 0.5)))
    # rank: best F1 first, then nearest 0.5, then the lower threshold (integer counts: exact comparisons)
    distance = np.abs(np.arange(len(GRID)) - half)
    thresholds, records = np.full(k, 0.5), []
    for j in range(k):
        positives = int(gold[:, j].sum())
        tuned = positives >= min_positives
        best = half
        if tuned:
            top = f1[j].max()
            candidates = np.flatnonzero(np.isclose(f1[j], top, rtol=0, atol=1e-12))
            best = int(candidates[np.lexsort((candidates, distance[candidates]))[0]])
            thresholds[j] = float(GRID[best])
        records.append({"label_index": j, "threshold": float(thresholds[j]), "positives": positives, "rows": int(n),
                        "f1": float(f1[j, best]), "f1_at_0_5": float(f1[j, half]), "tuned": bool(tuned)})
    if objective == "micro_f1":
        chosen = _micro_ascent(tp, fp, fn, [r["tuned"] for r in records], half, distance)
        for j, c in enumerate(chosen):
            thresholds[j] = float(GRID[c])
            records[j].update(threshold=float(GRID[c]), f1=float(f1[j, c]))
    return thresholds, records


def _micro_ascent(tp, fp, fn, tunable: list[bool], half: int, distance: np.ndarray, passes: int = 20) -> list[int]:
    """Grid indices, one per label, that maximise micro-F1 together: from 0.5, each tunable label in turn takes the
    index that maximises micro-F1 given the others (ties toward 0.5, then the lower), until a pass changes none."""
    chosen = [half] * len(tunable)
    order = np.arange(tp.shape[1])
    for _ in range(passes):
        changed = False
        for j in np.flatnonzero(tunable):
            rest = np.array([tp[i, c] for i, c in enumerate(chosen) if i != j]).sum(), \
                np.array([fp[i, c] for i, c in enumerate(chosen) if i != j]).sum(), \
                np.array([fn[i, c] for i, c in enumerate(chosen) if i != j]).sum()
            micro = _f1(tp[j] + rest[0], fp[j] + rest[1], fn[j] + rest[2])
            candidates = np.flatnonzero(np.isclose(micro, micro.max(), rtol=0, atol=1e-12))
            best = int(candidates[np.lexsort((order[candidates], distance[candidates]))[0]])
            if best != chosen[j] and micro[best] > micro[chosen[j]] + 1e-12:
                chosen[j], changed = best, True
        if not changed:
            break
    return chosen


def micro_f1_of_sums(sums: np.ndarray) -> np.ndarray:
    """Micro-F1 from summed (tp, fp, fn) along the last axis."""
    return _f1(sums[..., 0], sums[..., 1], sums[..., 2])
