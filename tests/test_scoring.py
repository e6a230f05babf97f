"""The one scorer: its block is metrics.json's layout and numbers for fixed gold and logits; `run` and `evaluate`
give identical metrics (slices included) on the same test file, and evaluate reads it as the run did (drop_invalid
drops and counts)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import nlptransfer
from nlptransfer.data.schema import MISSING, LabelMap
from nlptransfer.data.problems import CONFLICT
from nlptransfer.scoring import Scoring, score
from nlptransfer.tasks import decode, run_tasks

from .conftest import captured_messages, quick_overrides, sentiment_rows, write_csv

LOGITS = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0], [0.5, 0.0, 1.5], [1.0, 0.2, 0.0], [0.0, 0.0, 2.0],
                   [0.3, 1.2, 0.0]])
GOLD = [0, 1, 2, 0, 0, 2]  # predicted: 0 1 2 0 2 1
NAMES = ["neg", "neu", "pos"]


def test_one_task_block_is_metrics_json_layout_and_numbers():
    tasks = run_tasks(NAMES, column="sentiment")
    outputs = decode(tasks, {"label": LOGITS})
    block = score(tasks, GOLD, outputs, logits={"label": LOGITS}, slices={"src": list("aaabbb")},
                  scoring=Scoring(seed=7, extra=("weighted_f1",), ordinal=True))
    assert list(block) == ["accuracy", "macro_f1", "n", "per_class", "confusion_matrix", "ece", "loss",
                           "ordinal_error", "weighted_f1", "slices"]
    assert block["accuracy"] == pytest.approx(4 / 6) and block["macro_f1"] == pytest.approx(0.6555555555555556)
    assert block["per_class"]["neg"] == {"precision": 1.0, "recall": pytest.approx(2 / 3), "f1": pytest.approx(0.8),
                                         "support": 3}
    assert block["confusion_matrix"] == {"labels": NAMES, "matrix": [[2, 0, 1], [0, 1, 0], [0, 1, 1]]}
    assert block["ece"] == pytest.approx(0.2671145069983772, abs=1e-12)
    assert block["loss"] == pytest.approx(0.9596151002465682, abs=1e-7)
    assert block["ordinal_error"] == 0.5  # |0-2| + |2-1| over 6 rows
    assert block["weighted_f1"] == pytest.approx((3 * 0.8 + 1 * 2 / 3 + 2 * 0.5) / 6)
    (sliced,) = block["slices"]
    assert sliced["slices"]["b"] == {"n": 3, "accuracy": pytest.approx(1 / 3), "macro_f1": pytest.approx(1 / 3),
                                     "recall": {"neg": 0.5, "pos": 0.0}}
    assert sliced["gap"] == {"metric": "accuracy", "between": ["a", "b"], "estimate": pytest.approx(2 / 3),
                             "low": 0.0, "high": 1.0, "level": 0.95, "resamples": 1000, "seed": 7}
    assert "loss" not in score(tasks, GOLD, outputs)  # probabilities alone: no loss


def test_multi_task_block_scores_each_task_on_its_labelled_rows_with_means():
    second = np.array([[1.0, 0], [0, 1], [0, 2], [1, 1.5], [3, 0], [0, 0.5]])
    tasks = run_tasks(None, {"tone": LabelMap(NAMES), "topic": LabelMap(["x", "y"])})
    labels = [[g, t] for g, t in zip(GOLD, [0, MISSING, 1, 1, MISSING, 0])]
    logits = {"tone": LOGITS, "topic": second}
    block = score(tasks, labels, decode(tasks, logits), logits=logits, scoring=Scoring(ordinal=True))
    assert list(block) == ["tasks", "accuracy", "macro_f1", "loss", "n"] and block["n"] == 6
    topic = block["tasks"]["topic"]
    assert topic["n"] == 4 and topic["accuracy"] == 0.75 and topic["macro_f1"] == pytest.approx(0.7333333333333334)
    assert topic["confusion_matrix"]["matrix"] == [[1, 1], [0, 2]]
    assert topic["loss"] == pytest.approx(0.4720859167303522, abs=1e-7) and "ordinal_error" not in topic
    assert block["accuracy"] == pytest.approx((4 / 6 + 0.75) / 2)
    assert block["loss"] == pytest.approx((0.9596151002465682 + 0.4720859167303522) / 2, abs=1e-7)


@pytest.fixture(scope="module")
def run_and_test_file(tiny_models, tmp_path_factory):
    """A run with its own test file (slice column, two rows with one text and two labels) under drop_invalid,
    seed 7."""
    tmp = tmp_path_factory.mktemp("scoring")
    rows = [(t, y, ("web", "app")[i % 3 == 0]) for i, (t, y) in enumerate(sentiment_rows(160))]
    train = write_csv(tmp / "train.csv", rows[:120], header=("text", "label", "channel"))
    clash = rows[120][0]
    test = write_csv(tmp / "test.csv", rows[120:] + [(clash, "negative", "web")], header=("text", "label", "channel"))
    run = nlptransfer.finetune("sentiment-minilm", data=str(train), overrides=quick_overrides(
        tiny_models["bert"], tmp, **{"data.test": str(test), "data.slice_columns": ["channel"],
                                     "data.drop_invalid": True, "training.seed": 7}))
    return run, test


def test_run_and_evaluate_give_identical_metrics_slices_included(run_and_test_file):
    run, test = run_and_test_file
    evaluated = nlptransfer.evaluate_run(run.path, str(test))
    tested = json.loads((run.path / "metrics.json").read_text())["test"]
    assert tested["slices"][0]["gap"]["seed"] == 7 and tested["slices"][0]["gap"]["low"] is not None
    assert {k: v for k, v in tested.items() if k != "loss"} == {
        k: v for k, v in evaluated.items() if k not in ("warnings", "data_report")}
    assert tested["n"] == 39 and "ordinal_error" in tested  # 41 rows, the clashing two dropped


def test_evaluate_drops_and_counts_what_the_run_dropped(run_and_test_file):
    run, test = run_and_test_file
    with captured_messages() as lines:
        evaluated = nlptransfer.evaluate_run(run.path, str(test))
    assert f"dropped 2 rows of {test} (data.drop_invalid, as the run did): {CONFLICT}" in lines
    ran = json.loads((run.path / "data_report.json").read_text())
    assert ran["dropped"]["test"] == {CONFLICT: 2}
    assert evaluated["data_report"]["dropped"]["train"] == {CONFLICT: 2} and evaluated["n"] == 39
    with pytest.raises(nlptransfer.errors.DataError, match="fix or remove them"):  # the run's recipe, overridden
        nlptransfer.evaluate_run(run.path, str(test), changes={"data.drop_invalid": False})
