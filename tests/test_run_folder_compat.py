"""Run folders written by an earlier nlptransfer (tests/fixtures, made by make_old_run.py) load, predict, and
evaluate exactly as they did then: a single-task and a multi-task run."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from nlptransfer.cli import main
from nlptransfer.inference import TextClassifier

from .conftest import write_csv

FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXPECTED = json.loads((FIXTURES / "old_run_expected.json").read_text())
RUNS = {"old_run": "old_run_data.csv", "old_multitask_run": "old_multitask_run_data.csv"}


def _expected_probs(name: str) -> dict[str, np.ndarray]:
    return {task: np.array(p) for task, p in EXPECTED[name]["probabilities"].items()}


@pytest.mark.parametrize("name", list(RUNS))
def test_an_old_run_folder_predicts_the_probabilities_it_gave(name):
    clf = TextClassifier.load(FIXTURES / name)
    expected = _expected_probs(name)
    probs = clf.predict_proba(EXPECTED["texts"])
    probs = probs if isinstance(probs, dict) else {"label": probs}
    assert list(probs) == list(expected)
    for task, p in expected.items():
        np.testing.assert_allclose(probs[task], p, rtol=0, atol=1e-6)
    predicted = clf.predict(EXPECTED["texts"])
    names = {task: (clf.tasks or {"label": clf.label_map})[task].names for task in expected}
    for i, one in enumerate(predicted):
        per_task = one if isinstance(one, dict) else {"label": one}
        assert {t: p.label for t, p in per_task.items()} == {t: names[t][int(p[i].argmax())]
                                                            for t, p in expected.items()}


@pytest.mark.parametrize("name", list(RUNS))
def test_an_old_run_folder_predicts_and_evaluates_through_the_cli(name, tmp_path, capsys):
    texts = [t for t in EXPECTED["texts"] if t]
    rows = [i for i, t in enumerate(EXPECTED["texts"]) if t]
    given = write_csv(tmp_path / "texts.csv", [(t, "") for t in texts], header=("text", "note"))
    assert main(["predict", str(FIXTURES / name), "--input", str(given), "--output", str(tmp_path / "pred.csv")]) == 0
    with open(tmp_path / "pred.csv", newline="", encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    assert [r["text"] for r in written] == texts
    for task, p in _expected_probs(name).items():
        names = [c for c in written[0] if c.startswith("prob_") and (task == "label" or c.startswith(f"prob_{task}_"))]
        assert len(names) == p.shape[1]
        got = np.array([[float(r[c]) for c in names] for r in written])
        np.testing.assert_allclose(got, p[rows], rtol=0, atol=1e-6)

    out = tmp_path / "eval.json"
    assert main(["evaluate", str(FIXTURES / name), "--data", str(FIXTURES / RUNS[name]), "--output", str(out)]) == 0
    assert "accuracy" in capsys.readouterr().out
    scores, expected = json.loads(out.read_text()), EXPECTED[name]["evaluate"]
    assert {k: scores[k] for k in ("n", "accuracy", "macro_f1")} == pytest.approx(
        {k: expected[k] for k in ("n", "accuracy", "macro_f1")}, abs=1e-12)
    for task, want in expected.get("tasks", {"": expected}).items():
        got = scores["tasks"][task] if task else scores
        assert got["confusion_matrix"]["matrix"] == want["confusion_matrix"]
        assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-12)
