"""Multi-label metrics against scikit-learn's, per-label thresholds, the paired bootstrap of micro-F1, and iterative
stratification against single-label stratification on rare labels."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.metrics import (accuracy_score, f1_score, hamming_loss, label_ranking_average_precision_score,
                             precision_recall_fscore_support)

from nlptransfer.data.carve import iterative, stratified
from nlptransfer.multilabel_metrics import (GRID, multi_label_metrics, predicted_sets,
                                            row_counts, tune_thresholds)
from nlptransfer.report.stats import Interval, paired_bootstrap_micro_f1

KEYS = {"accuracy", "subset_accuracy", "micro_f1", "macro_f1", "samples_f1", "hamming_loss", "lrap", "ece", "n",
        "per_class", "thresholds"}
NAMES = ["billing", "cancellation", "delivery", "refund", "other"]


def _random_case(seed: int, n: int = 60, k: int = 5):
    rng = np.random.default_rng(seed)
    gold = (rng.random((n, k)) < 0.35).astype(int)
    probs = np.clip(0.6 * gold + 0.6 * rng.random((n, k)) - 0.1, 0, 1)
    return gold, probs


def _cases():
    for seed in (0, 1, 2):
        yield f"random-{seed}", *_random_case(seed), np.full(5, 0.5)
    gold, probs = _random_case(3)
    yield "uneven thresholds", gold, probs, np.array([0.2, 0.35, 0.5, 0.65, 0.8])
    gold, probs = _random_case(4)
    gold[7], gold[8], probs[8] = 0, 0, 0.1  # rows with no gold label (row 8: none predicted either)
    gold[9], probs[9] = 1, 0.9  # a row with every label, all predicted
    yield "empty and full gold rows", gold, probs, np.full(5, 0.5)
    gold, probs = _random_case(5)
    gold[:, 2] = 0  # a label never present ...
    probs[:, 3] = np.minimum(probs[:, 3], 0.4)  # ... and one never predicted
    gold[:, 4] = 0
    probs[:, 4] = 0.2  # a label neither present nor predicted
    yield "labels never present", gold, probs, np.full(5, 0.5)
    gold, probs = _random_case(6)
    yield "tied scores", gold, np.round(probs * 4) / 4, np.full(5, 0.5)


@pytest.mark.parametrize("name,gold,probs,thresholds", list(_cases()), ids=[c[0] for c in _cases()])
def test_every_metric_equals_scikit_learns(name, gold, probs, thresholds):
    block = multi_label_metrics(gold, probs, thresholds, NAMES)
    predicted = (probs >= thresholds).astype(int)
    assert set(block) == KEYS
    assert block["accuracy"] == block["subset_accuracy"] == pytest.approx(accuracy_score(gold, predicted), abs=1e-12)
    for average in ("micro", "macro", "samples"):
        assert block[f"{average}_f1"] == pytest.approx(
            f1_score(gold, predicted, average=average, zero_division=0), abs=1e-12), average
    assert block["hamming_loss"] == pytest.approx(hamming_loss(gold, predicted), abs=1e-12)
    assert block["lrap"] == pytest.approx(label_ranking_average_precision_score(gold, probs), abs=1e-12)
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, average=None, zero_division=0)
    for j, label in enumerate(NAMES):
        per = block["per_class"][label]
        assert (per["precision"], per["recall"], per["f1"]) == pytest.approx(
            (precision[j], recall[j], f1[j]), abs=1e-12), label
        assert per["support"] == support[j]
        assert per["threshold"] == block["thresholds"][label] == thresholds[j]
    assert block["n"] == len(gold)
    assert block["ece"] == pytest.approx(np.mean([block["per_class"][x]["ece"] for x in NAMES]), abs=1e-12)


def test_the_block_holds_only_python_numbers_and_is_json():
    block = multi_label_metrics(*_random_case(0), np.full(5, 0.5), NAMES)
    assert all(type(block[k]) is float for k in KEYS - {"n", "per_class", "thresholds"}) and type(block["n"]) is int
    per = block["per_class"]["billing"]
    assert type(per["support"]) is int and all(type(per[k]) is float for k in set(per) - {"support"})
    assert json.loads(json.dumps(block)) == block


def test_a_row_with_no_gold_and_no_predicted_label_scores_0_in_samples_f1_as_sklearn():
    gold = np.array([[0, 0], [1, 0]])
    block = multi_label_metrics(gold, np.array([[0.1, 0.1], [0.9, 0.1]]), np.full(2, 0.5), ["a", "b"])
    assert block["samples_f1"] == 0.5 == f1_score(gold, gold, average="samples", zero_division=0)
    assert block["macro_f1"] == 0.5  # label b: no gold, none predicted: F1 0, averaged over both labels


def test_no_rows_give_zeros_without_an_exception():
    block = multi_label_metrics(np.zeros((0, 3), int), np.zeros((0, 3)), np.array([0.3, 0.5, 0.7]), ["a", "b", "c"])
    assert set(block) == KEYS and block["n"] == 0
    assert all(block[k] == 0.0 for k in KEYS - {"n", "per_class", "thresholds"})
    assert block["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "ece": 0.0,
                                       "threshold": 0.7}
    assert block["thresholds"] == {"a": 0.3, "b": 0.5, "c": 0.7}


def test_per_label_ece_is_the_binned_gap_of_that_labels_probability():
    gold = np.array([[1, 0]] * 8 + [[0, 1]] * 2)
    probs = np.array([[0.9, 0.3]] * 10)  # label a: confidence 0.9, right 8 of 10; label b: confidence 0.7, right 8/10
    block = multi_label_metrics(gold, probs, np.full(2, 0.5), ["a", "b"])
    assert block["per_class"]["a"]["ece"] == pytest.approx(0.1)
    assert block["per_class"]["b"]["ece"] == pytest.approx(0.1)
    assert block["ece"] == pytest.approx(0.1)


def test_predicted_sets_and_row_counts():
    probs = np.array([[0.2, 0.6, 0.5], [0.9, 0.1, 0.49]])
    predicted = predicted_sets(probs, np.array([0.5, 0.5, 0.5]))
    assert predicted.tolist() == [[0, 1, 1], [1, 0, 0]] and predicted.dtype.kind == "i"
    assert predicted_sets(probs, np.array([0.1, 0.7, 0.5])).tolist() == [[1, 0, 1], [1, 0, 0]]
    gold = np.array([[1, 1, 0], [1, 0, 1]])
    assert row_counts(gold, predicted).tolist() == [[1, 1, 1], [1, 0, 1]]


def _tuning_case():
    """Label 0 separates best at 0.3, label 1 at 0.7, label 2 has 4 positives, label 3 separates anywhere in
    (0.3, 0.65]: the tie goes to 0.5."""
    rng = np.random.default_rng(0)
    n = 100
    gold = np.zeros((n, 4), int)
    probs = np.zeros((n, 4))
    gold[:30, 0] = 1
    probs[:, 0] = np.where(gold[:, 0], rng.uniform(0.30, 0.45, n), rng.uniform(0.0, 0.27, n))
    gold[:40, 1] = 1
    probs[:, 1] = np.where(gold[:, 1], rng.uniform(0.70, 0.95, n), rng.uniform(0.0, 0.68, n))
    gold[:4, 2] = 1
    probs[:, 2] = np.where(gold[:, 2], 0.2, 0.1)  # tuning would pick 0.15 or 0.2; too few positives to trust
    gold[:50, 3] = 1
    probs[:, 3] = np.where(gold[:, 3], 0.66, 0.26)
    return gold, probs


def test_tuning_finds_each_labels_best_threshold_and_keeps_0_5_for_a_rare_label():
    gold, probs = _tuning_case()
    thresholds, records = tune_thresholds(gold, probs)
    assert thresholds.tolist() == [0.3, 0.7, 0.5, 0.5]
    assert [r["tuned"] for r in records] == [True, True, False, True]
    assert [r["positives"] for r in records] == [30, 40, 4, 50]
    assert all(r["rows"] == 100 and r["label_index"] == j for j, r in enumerate(records))
    assert [r["f1"] for r in records[:2]] == [1.0, 1.0] and records[3]["f1"] == 1.0
    assert records[0]["f1_at_0_5"] == 0.0 and records[1]["f1_at_0_5"] < 1.0
    assert records[2]["f1"] == records[2]["f1_at_0_5"] == 0.0
    assert tune_thresholds(gold, probs, min_positives=4)[0][2] in (0.15, 0.2)  # now it may be tuned


def test_changing_thresholds_changes_predictions_as_stated():
    gold, probs = _tuning_case()
    tuned, _ = tune_thresholds(gold, probs)
    at_half, at_tuned = predicted_sets(probs, np.full(4, 0.5)), predicted_sets(probs, tuned)
    assert at_tuned[:, 0].tolist() == gold[:, 0].tolist() and at_half[:, 0].sum() == 0  # 0.30-0.45 now predicted
    assert at_tuned[:, 1].tolist() == gold[:, 1].tolist()
    assert (at_half[:, 1] & ~gold[:, 1].astype(bool)).sum() > 0  # 0.5-0.68 false positives dropped at 0.7
    assert (at_tuned[:, 2:] == at_half[:, 2:]).all()
    block = multi_label_metrics(gold, probs, tuned, ["a", "b", "c", "d"])
    assert block["per_class"]["a"]["f1"] == block["per_class"]["b"]["f1"] == 1.0
    assert block["thresholds"] == {"a": 0.3, "b": 0.7, "c": 0.5, "d": 0.5}


def test_the_grid_is_0_05_to_0_95():
    assert GRID.tolist() == [round(0.05 * i, 2) for i in range(1, 20)]


def _two_systems(seed: int = 0):
    gold, probs = _random_case(seed, n=80)
    rng = np.random.default_rng(seed + 100)
    return gold, predicted_sets(probs, np.full(5, 0.5)), predicted_sets(probs + rng.normal(0, 0.2, probs.shape), 0.5)


def test_bootstrap_estimate_is_the_micro_f1_difference_and_draws_rows_as_stats_does():
    gold, a, b = _two_systems()
    interval = paired_bootstrap_micro_f1(gold, a, b, resamples=300, seed=7, level=0.9)
    assert isinstance(interval, Interval) and (interval.resamples, interval.seed, interval.level) == (300, 7, 0.9)
    assert interval.estimate == pytest.approx(f1_score(gold, a, average="micro") - f1_score(gold, b, average="micro"),
                                              abs=1e-12)
    rng, diffs = np.random.default_rng(7), []
    for start in range(0, 300, 200):  # stats.paired_bootstrap's draws: chunks of 200 resamples
        for rows in rng.integers(0, len(gold), size=(min(200, 300 - start), len(gold))):
            diffs.append(f1_score(gold[rows], a[rows], average="micro") - f1_score(gold[rows], b[rows], average="micro"))
    assert (interval.low, interval.high) == pytest.approx(tuple(np.percentile(diffs, [5, 95])), abs=1e-12)
    assert interval.low < interval.estimate < interval.high


def test_bootstrap_of_identical_predictions_is_0_and_the_seed_fixes_the_interval():
    gold, a, b = _two_systems(1)
    same = paired_bootstrap_micro_f1(gold, a, a, resamples=200)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)
    assert paired_bootstrap_micro_f1(gold, a, b, resamples=400, seed=3) == paired_bootstrap_micro_f1(
        gold, a, b, resamples=400, seed=3)
    assert paired_bootstrap_micro_f1(gold, a, b, resamples=400, seed=3) != paired_bootstrap_micro_f1(
        gold, a, b, resamples=400, seed=4)
    with pytest.raises(ValueError, match="at least one row"):
        paired_bootstrap_micro_f1(gold[:0], a[:0], b[:0])


def _rare_label_file(rows: int = 201, seed: int = 0) -> np.ndarray:
    """6 labels: four common ones, two rare (5 and 6 positive rows), and about a fifth of the rows with no label."""
    rng = np.random.default_rng(seed)
    matrix = (rng.random((rows, 6)) < [0.4, 0.3, 0.25, 0.2, 0, 0]).astype(int)
    matrix[rng.choice(rows, 5, replace=False), 4] = 1
    matrix[rng.choice(rows, 6, replace=False), 5] = 1
    return matrix


FRACTIONS = [("test", 0.15), ("validation", 0.15)]


def test_iterative_keeps_every_label_in_every_split_where_single_label_stratification_loses_a_rare_one():
    matrix = _rare_label_file()
    by_first_label = stratified(matrix[:, 0], FRACTIONS, seed=0)
    assert min(matrix[by_first_label[s]][:, 4:].sum(0).min() for s in ("test", "validation")) == 0
    for seed in range(5):
        for name, rows in iterative(matrix, FRACTIONS, seed=seed).items():
            assert (matrix[rows].sum(0) > 0).all(), (seed, name)
            assert (matrix[rows].sum(1) == 0).sum() >= 3, f"{name}: label-less rows are spread too"


def test_iterative_sizes_partition_and_seed():
    matrix = _rare_label_file()
    splits = iterative(matrix, FRACTIONS, seed=0)
    assert {k: len(v) for k, v in splits.items()} == {"test": math.ceil(0.15 * 201), "validation": 31,
                                                      "train": 201 - 62}
    assert sorted(np.concatenate(list(splits.values())).tolist()) == list(range(201))
    assert all((np.diff(v) > 0).all() for v in splits.values())
    again = iterative(matrix, FRACTIONS, seed=0)
    assert all(np.array_equal(splits[k], again[k]) for k in splits)
    other = iterative(matrix, FRACTIONS, seed=1)
    assert any(not np.array_equal(splits[k], other[k]) for k in splits)
    one_label = iterative(matrix[:, :1], [("test", 0.1)], seed=0)  # a single column works too
    assert len(one_label["test"]) == 21 and 0 < matrix[one_label["test"], 0].sum() < 21


def test_iterative_spreads_label_less_rows_as_it_spreads_a_label():
    rng = np.random.default_rng(0)
    matrix = (rng.random((1000, 5)) < [0.5, 0.4, 0.3, 0.3, 0.2]).astype(int)
    matrix[rng.random(1000) < 0.05] = 0
    none = matrix.sum(1) == 0  # 152 rows: 15.2 expected in each 10% split (iterstrat alone gave 9 to 25)
    for seed in range(3):
        splits = iterative(matrix, [("test", 0.1), ("validation", 0.1)], seed=seed)
        assert all(abs(none[splits[s]].sum() - 15.2) <= 3 for s in ("test", "validation")), seed


@pytest.mark.parametrize("fractions", [[("test", 0.5), ("validation", 0.5)], [("test", 0.0)], [("test", 1.0)]])
def test_iterative_says_when_a_split_cannot_be_carved(fractions):
    with pytest.raises(ValueError, match="cannot carve the"):
        iterative(_rare_label_file(rows=20), fractions, seed=0)



def test_micro_objective_keeps_a_rare_labels_threshold_where_lowering_it_costs_micro_f1():
    # label 0: common and well separated; label 1: rare, its few positives scored low among many negatives
    rng = np.random.default_rng(5)
    n = 400
    gold = np.zeros((n, 2), int)
    gold[:200, 0] = 1
    gold[:8, 1] = 1
    probs = np.zeros((n, 2))
    probs[:, 0] = np.where(gold[:, 0] == 1, rng.uniform(0.55, 0.95, n), rng.uniform(0.05, 0.45, n))
    probs[:, 1] = np.where(gold[:, 1] == 1, 0.12, rng.uniform(0.0, 0.16, n))
    per_label, _ = tune_thresholds(gold, probs)
    joint, records = tune_thresholds(gold, probs, objective="micro_f1")
    assert per_label[1] < 0.5  # the rare label's own F1 is best low (its F1 at 0.5 is 0)
    assert joint[1] == 0.5 and joint[0] == pytest.approx(0.5)  # micro-F1: lowering it adds more false positives
    micro = lambda t: f1_score(gold, predicted_sets(probs, t), average="micro", zero_division=0)  # noqa: E731
    assert micro(joint) >= micro(per_label) and micro(joint) >= micro(np.full(2, 0.5))
    assert records[1]["tuned"] and records[1]["threshold"] == 0.5


def test_micro_objective_is_the_best_micro_f1_of_the_grid_on_a_small_case():
    rng = np.random.default_rng(11)
    gold = (rng.random((60, 2)) < 0.3).astype(int)
    probs = np.clip(gold * 0.3 + rng.random((60, 2)) * 0.7, 0, 1)
    joint, _ = tune_thresholds(gold, probs, min_positives=1, objective="micro_f1")
    micro = lambda t: f1_score(gold, predicted_sets(probs, t), average="micro", zero_division=0)  # noqa: E731
    best = max(micro(np.array([a, b])) for a in GRID for b in GRID)  # every pair of the grid
    assert micro(joint) == pytest.approx(best)
