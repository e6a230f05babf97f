"""The transfer report of a multi-label run: the baseline is tf-idf + one-vs-rest logistic regression with its own
thresholds tuned on validation, the verdict a paired bootstrap of micro-F1 over texts (no McNemar), the learning
curve's subsets hold every label, and the page shows micro-F1 and a per-label table in place of confusion matrices."""
from __future__ import annotations

import csv
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import f1_score

import nlptransfer
from nlptransfer.data import LabelMap
from nlptransfer.multilabel_metrics import tune_thresholds
from nlptransfer.report.baseline import label_set_subset, training_subset
from nlptransfer.report.build import caveats
from nlptransfer.report.stats import Interval, paired_bootstrap_micro_f1, paired_comparison, verdict, verdict_rule
from nlptransfer.tasks import run_tasks, task_kind

from .conftest import captured_messages
from .test_multilabel import label_rows, ml_overrides, write_lists

VERDICTS = {"positive transfer", "negative transfer", "no clear difference"}


# ---------------------------------------------------------------- pieces, without a model


def test_the_verdict_of_counts_is_the_micro_f1_interval_alone():
    rng = np.random.default_rng(0)
    gold = rng.integers(0, 2, (80, 4))
    good, noisy = gold.copy(), np.where(rng.random((80, 4)) < 0.4, 1 - gold, gold)
    kind = task_kind("multi_label")
    a, b = kind.verdict_statistic(gold, good.astype(float)), kind.verdict_statistic(gold, noisy.astype(float))
    interval, test = paired_comparison(a, b, 500, 3, 0.9)
    assert test is None and interval == paired_bootstrap_micro_f1(gold, good, noisy, 500, 3, 0.9)
    assert interval.low > 0 and verdict(interval, None) == "positive transfer"
    assert verdict(Interval(-0.1, -0.2, -0.01, 0.95, 10, 0), None) == "negative transfer"
    assert verdict(Interval(0.1, -0.01, 0.2, 0.95, 10, 0), None) == "no clear difference"
    rule = verdict_rule(0.95, 0.05, "micro_f1")
    assert "micro-F1" in rule and "no McNemar test" in rule and "p <" not in rule
    right, wrong = np.array([1, 1, 0, 1] * 5, bool), np.array([0, 1, 0, 0] * 5, bool)
    assert paired_comparison(right, wrong, 100)[1] is not None  # right/wrong rows keep McNemar


def test_label_set_subsets_hold_every_label_where_a_plain_sample_would_not():
    names = ["billing", "cancel", "delivery", "price"]
    rows = label_rows(200, seed=4, rare="cancel", rare_every=50)  # 4 texts hold 'cancel'
    matrix = np.array([[int(n in labels) for n in names] for _, labels in rows])
    assert matrix[:, 1].sum() == 4
    plain = sorted(random.Random(1).sample(range(200), 10))
    assert not matrix[plain, 1].any()  # a plain 5% sample misses the rare label
    for fraction in (0.05, 0.2, 0.5):
        for seed in (0, 1, 2):
            chosen = label_set_subset(matrix, fraction, seed)
            assert chosen == sorted(set(chosen)) and matrix[chosen].sum(0).all(), (fraction, seed)
            assert len(chosen) <= int(np.ceil(fraction * 200)) + 4
    assert label_set_subset(matrix, 0.2, 7) == label_set_subset(matrix, 0.2, 7) != label_set_subset(matrix, 0.2, 8)
    assert label_set_subset(matrix, 1.0, 0) == list(range(200))
    task = next(iter(run_tasks(LabelMap(names, "multi_label")).values()))
    assert training_subset(task, matrix.tolist(), 0.2, 7) == label_set_subset(matrix, 0.2, 7)


def test_a_model_that_predicts_no_label_is_a_caveat():
    names = ("a", "b", "c")
    task = next(iter(run_tasks(LabelMap(names, "multi_label")).values()))
    gold = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]])
    notes = caveats(np.full((3, 3), 0.1), gold, names, [], "micro_f1", {}, task)
    assert notes and notes[0].startswith("the transfer model predicts no label for any test text: it is under-trained")
    assert caveats(gold * 0.9, gold, names, [], "micro_f1", {}, task) == []


# ---------------------------------------------------------------- a report of a tiny-model run


@pytest.fixture(scope="module")
def ml_report(tiny_models, tmp_path_factory):
    """A multi-label tiny-model run with its report (learning curve at 25% and 100%): texts whose labels are keywords,
which tf-idf reads exactly and a tiny random BERT learns only partly (negative transfer, by design)."""
    root = tmp_path_factory.mktemp("ml-report")
    train = write_lists(root / "train.csv", label_rows(240, seed=1), ";")
    # every 5th test text's 'price' toggled: gold the words do not give, so that no model scores 1
    test = write_lists(root / "test.csv", [(text, sorted(set(labels) ^ {"price"}) if i % 5 == 0 else labels)
                                           for i, (text, labels) in enumerate(label_rows(60, seed=2))], ";")
    with captured_messages() as lines:
        run = nlptransfer.finetune("sentiment-minilm", data=str(train), overrides=ml_overrides(
            tiny_models["bert"], root / "runs", **{"data.test": str(test), "report.enabled": True,
                                                     "report.learning_curve": [0.25, 1.0], "report.latency_texts": 5,
                                                     "report.bootstrap": 500}))
    return run, lines


def _written(folder: Path, names) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with open(folder / "predictions.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    gold = np.array([[int(n in r["gold"].split(";")) for n in names] for r in rows])
    predicted = np.array([[int(n in r["predicted"].split(";")) for n in names] for r in rows])
    probs = np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows])
    return gold, predicted, probs


@pytest.mark.slow
def test_multi_label_report_baseline_verdict_and_interval(ml_report):
    run, lines = ml_report
    folder = Path(run.path)
    report = json.loads((folder / "report" / "report.json").read_text())
    names = report["labels"]
    splits = run.splits
    gold, predicted_t, _ = _written(folder, names)
    final, test = report["final"], run.metrics["test"]
    assert report["scores"] == ["micro_f1", "macro_f1"] and report["metric"] == "micro_f1"
    assert final["transfer"]["micro_f1"] == test["micro_f1"] and final["transfer"]["macro_f1"] == test["macro_f1"]
    assert "confusion" not in final and set(final["per_label"]["transfer"]) == set(names)
    assert final["mcnemar"] is None and "no McNemar test" in report["rule"]

    # the baseline, rebuilt from its chosen C: thresholds tuned on validation; scores equal scikit-learn's
    base = report["baseline"]
    assert "one-vs-rest logistic regression" in base["method"] and base["C_grid"] == [10.0, 1.0, 100.0]
    kind = task_kind("multi_label")
    pipeline = kind.baseline(base["C"], 42).fit(splits.train.texts, np.asarray(splits.train.labels))
    task = next(iter(run_tasks(LabelMap(names, "multi_label")).values()))
    val_probs = kind.baseline_outputs(pipeline, splits.validation.texts, task)
    expected, _ = tune_thresholds(np.asarray(splits.validation.labels), val_probs)
    thresholds = np.array([report["thresholds"]["baseline"][n] for n in names])
    assert thresholds.tolist() == pytest.approx(expected.tolist())
    predicted_b = (kind.baseline_outputs(pipeline, splits.test.texts, task) >= thresholds).astype(int)
    assert final["baseline"]["micro_f1"] == pytest.approx(f1_score(gold, predicted_b, average="micro", zero_division=0))
    assert final["baseline"]["macro_f1"] == pytest.approx(f1_score(gold, predicted_b, average="macro", zero_division=0))
    assert base["validation"]["micro_f1"] >= 0 and report["thresholds"]["transfer"] == json.loads(
        (folder / "labels.json").read_text())["thresholds"]

    # the verdict: a paired bootstrap of micro-F1 over the test texts, decided by the interval alone
    d = final["difference"]
    again = paired_bootstrap_micro_f1(gold, predicted_t, predicted_b, 500, 42, 0.95)
    assert (d["estimate"], d["low"], d["high"]) == pytest.approx((again.estimate, again.low, again.high))
    assert d["estimate"] == pytest.approx(final["transfer"]["micro_f1"] - final["baseline"]["micro_f1"])
    assert report["verdict"] == verdict(again, None) == "negative transfer"  # tf-idf reads the keywords; a tiny
    assert d["high"] < 0  # random BERT trained 10 epochs does not
    t, b = final["transfer"]["micro_f1"], final["baseline"]["micro_f1"]
    assert final["error_reduction_percent"] == pytest.approx(100 * ((1 - b) - (1 - t)) / (1 - b))

    # indicators: a tuned probe, no zero-shot (said why), time to the baseline's validation micro-F1 at 0.5
    k = report["knowledge_alone"]
    assert k["zero_shot"] is None and "zero_shot refuses task multi_label" in k["zero_shot_left_out"]
    assert 0 <= k["linear_probe"]["micro_f1"] <= 1 and "thresholds" in k["linear_probe"]
    assert report["time_to_baseline"]["reached"] in (True, False)
    assert "0.5 per label" in report["time_to_baseline"]["target_thresholds"]
    assert set(report["kpi"]["transfer"]) >= {"micro_f1", "macro_f1", "throughput_per_s", "cost_per_1000"}
    assert report["kpi"]["baseline"]["trainable_parameters"] > 0
    assert report["cost"]["encoded_texts"] == len(splits.train) + len(splits.validation) + len(splits.test)

    # mistakes: the most confident wrong label decisions
    mistakes = report["mistakes"]
    assert mistakes and [m["confidence"] for m in mistakes] == sorted((m["confidence"] for m in mistakes), reverse=True)
    for m in mistakes:
        row = list(splits.test.texts).index(m["text"])
        j = names.index(m["label"])
        assert predicted_t[row, j] != gold[row, j]
        assert m["error"] == ("false positive" if predicted_t[row, j] else "false negative")


@pytest.mark.slow
def test_multi_label_learning_curve_and_page(ml_report):
    run, lines = ml_report
    folder = Path(run.path)
    report = json.loads((folder / "report" / "report.json").read_text())
    splits, names = run.splits, report["labels"]
    task = next(iter(run_tasks(LabelMap(names, "multi_label")).values()))
    rows = training_subset(task, splits.train.labels, 0.25, 42)
    assert np.asarray(splits.train.labels)[rows].sum(0).all()  # every label in the 25% subset
    curve = report["learning_curve"]
    assert [(p["fraction"], p["train_rows"]) for p in curve] == [(0.25, len(rows)), (1.0, len(splits.train))]
    assert set(curve[0]["transfer"]) == {"micro_f1", "macro_f1", "train_seconds"}
    assert curve[-1]["baseline"]["micro_f1"] == report["final"]["baseline"]["micro_f1"]
    assert any(line.startswith("## Did transfer help? **") for line in lines)

    page = (folder / "report" / "report.html").read_text()
    assert "micro-F1" in page and "Per label (test; transfer / baseline)" in page
    assert "onfusion" not in page and "fig-confusion" not in page
    assert set(re.findall(r'<img id="(fig-[a-z_]+)"', page)) == {"fig-indicators", "fig-learning_curve",
                                                                 "fig-training_curves", "fig-reliability"}
    md = (folder / "report" / "report.md").read_text()
    assert "| micro-F1 |" in md and "## Per label" in md and "| text | label | error |" in md
