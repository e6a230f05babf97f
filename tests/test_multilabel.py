"""Multi-label runs (task: multi_label): any number of labels per text, read from list cells or 0/1 columns, checked
per label, split by iterative stratification, trained with a sigmoid per label, thresholds tuned per label on
validation and used by every surface (predict, evaluate, serve, the folder hub, the merged export, ONNX)."""
from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.metrics import f1_score

import nlptransfer
from nlptransfer.data import DataSpec, load_splits
from nlptransfer.errors import DataError, RecipeError
from nlptransfer.inference import TextClassifier
from nlptransfer.multilabel_metrics import multi_label_metrics, tune_thresholds
from tests.helpers import cli as _cli, killed_at as _killed_at, run_args as _args, without_timings as _without_timings

from .conftest import FILLER, NEGATIVE, POSITIVE, quick_overrides
from .test_serve import server

#: each label and the word that signals it
LABELS = {"billing": POSITIVE[0], "cancel": POSITIVE[1], "delivery": NEGATIVE[0], "price": NEGATIVE[1]}
PLAIN = [w for w in FILLER if w not in set(POSITIVE + NEGATIVE)]


def label_rows(n: int, seed: int = 0, rare: str | None = None, rare_every: int = 0) -> list[tuple[str, list[str]]]:
    """n texts, each with 0-3 of LABELS (its words among filler), every text distinct; `rare` is added only to
    every `rare_every`-th text."""
    rng = random.Random(seed)
    rows = []
    names = [n for n in LABELS if n != rare]
    for i in range(n):
        chosen = sorted(rng.sample(names, rng.choice([0, 1, 1, 2, 2, 3])))
        if rare and rare_every and i % rare_every == 0:
            chosen = sorted(chosen + [rare])
        words = rng.sample(PLAIN, 3) + [LABELS[x] for x in chosen]
        rng.shuffle(words)
        rows.append((" ".join(words) + f" {i}", chosen))
    return rows


def write_lists(path: Path, rows, separator: str = ",", json_cells: bool = False) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "topics"])
        for text, labels in rows:
            w.writerow([text, json.dumps(labels) if json_cells else separator.join(labels)])
    return path


def write_columns(path: Path, rows, on: str = "1", off: str = "0", names=tuple(LABELS)) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", *names])
        for text, labels in rows:
            w.writerow([text, *[on if n in labels else off for n in names]])
    return path


def read(path: Path, **settings):
    spec = DataSpec(train=str(path), cache=False, **settings)
    return load_splits(spec, seed=3, kind="multi_label")


# ---------------------------------------------------------------- reading and checks


def test_every_reading_form_gives_the_same_label_matrix(tmp_path):
    rows = label_rows(120)
    forms = {
        "comma": read(write_lists(tmp_path / "a.csv", rows), label_column="topics"),
        "semicolon": read(write_lists(tmp_path / "b.csv", rows, "; "), label_column="topics"),
        "bar, given": read(write_lists(tmp_path / "c.csv", rows, "|"), label_column="topics", label_separator="|"),
        "json": read(write_lists(tmp_path / "d.csv", rows, json_cells=True), label_column="topics"),
        "0/1 columns": read(write_columns(tmp_path / "e.csv", rows), label_columns=list(LABELS)),
        "true/false columns": read(write_columns(tmp_path / "f.csv", rows, "true", "False"),
                                   label_columns=list(LABELS)),
    }
    first = forms["comma"]
    assert first.label_map.names == tuple(sorted(LABELS)) and first.label_map.kind == "multi_label"
    for name, splits in forms.items():
        assert splits.label_map.names == first.label_map.names, name
        for split in ("train", "validation", "test"):
            assert getattr(splits, split).texts == getattr(first, split).texts, (name, split)
            assert getattr(splits, split).labels == getattr(first, split).labels, (name, split)
    by_text = dict(rows)
    for text, matrix_row in zip(first.train.texts, first.train.labels):
        assert [n for n, on in zip(first.label_map.names, matrix_row) if on] == by_text[text]
    empty = sum(1 for _, labels in rows if not labels)
    assert empty and sum(v.get("0", 0) for v in first.report.labels_per_text.values()) == empty  # valid rows, counted
    assert forms["semicolon"].label_map.separator == ";" and first.label_map.separator == ","
    assert "label_separator" in forms["semicolon"].report.inferred


def test_a_column_of_lists_read_as_one_label_is_hinted(tmp_path):
    path = write_lists(tmp_path / "lists.csv", [(t, labels or ["billing"]) for t, labels in label_rows(120)])
    with pytest.raises(DataError) as e:  # each distinct list is a class: too many, too small to split
        load_splits(DataSpec(train=str(path), label_column="topics", cache=False), seed=3)
    hint = next(h for h in e.value.report.hints if "look like lists" in h)
    assert "'topics'" in hint and "task=multi_label" in hint and "data.label_separator=','" in hint


def test_zero_one_columns_read_as_one_label_are_hinted(tmp_path):
    path = write_columns(tmp_path / "columns.csv", label_rows(120))
    splits = load_splits(DataSpec(train=str(path), text_columns=["text"], cache=False), seed=3)
    assert splits.report.inferred["label_column"]["column"] == "billing"  # one of them, as a single label
    hint = next(h for h in splits.report.hints if "hold only 0/1 values" in h)
    assert "task=multi_label 'data.label_columns=[billing, cancel, delivery, price]'" in hint


def test_per_label_problems_name_the_label(tmp_path):
    rows = label_rows(120)
    rows[5] = (rows[5][0], ["billing", "rarest"])
    rows[9] = (rows[9][0], ["rarest"])
    with pytest.raises(DataError) as e:
        read(write_lists(tmp_path / "rare.csv", rows), label_column="topics")
    assert any("label too small to split: 'rarest' has 2 row(s) in train" in p for p in e.value.problems), \
        e.value.problems

    train = write_lists(tmp_path / "train.csv", label_rows(120))
    test = write_lists(tmp_path / "test.csv", [(f"other text {i}", ["billing", "refund"]) for i in range(3)])
    with pytest.raises(DataError) as e:
        read(train, label_column="topics", test=str(test))
    assert any("labels never seen in training: 'refund' (3 rows)" in p for p in e.value.problems), e.value.problems

    bad = write_columns(tmp_path / "bad.csv", label_rows(60))
    bad.write_bytes(bad.read_bytes().replace(b",1\r\n", b",2\r\n", 1))
    with pytest.raises(DataError) as e:
        read(bad, label_columns=list(LABELS))
    assert any("cannot be read as a set" in p and "=2" in p for p in e.value.problems), e.value.problems

    twice = label_rows(120)
    twice[7] = (twice[3][0], sorted(set(twice[3][1]) ^ {"price"}))  # the same text, another label set
    with pytest.raises(DataError) as e:
        read(write_lists(tmp_path / "twice.csv", twice), label_column="topics")
    assert any("appear with different labels (2 rows: rows 4, 8)" in p for p in e.value.problems), e.value.problems


def test_leaks_and_co_occurrence_are_judged_per_label(tmp_path):
    rows = [(t, labels + ["extra"] if "billing" in labels else labels) for t, labels in label_rows(160)]
    path = tmp_path / "leaky.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "topics", "agent"])
        for i, (text, labels) in enumerate(rows):  # agent is filled exactly for delivery texts
            w.writerow([text, ",".join(labels), "amy" if "delivery" in labels else ""])
    splits = read(path, label_column="topics")
    assert [(leak["column"], leak["task"]) for leak in splits.report.leaks] == [("agent", "delivery")]
    assert any("'billing' and 'extra' are on for exactly the same" in h for h in splits.report.hints)
    with pytest.raises(DataError) as e:
        read(path, label_column="topics", text_columns=["text", "agent"])
    assert any("'agent', which gives the label away" in p for p in e.value.problems)


def test_iterative_stratification_keeps_every_label_in_every_split(tmp_path):
    rows = label_rows(200, rare="cancel", rare_every=16)  # 13 texts hold the rare label
    splits = read(write_lists(tmp_path / "rare.csv", rows), label_column="topics")
    balance = splits.report.class_balance
    assert balance["train"]["cancel"] + balance["validation"]["cancel"] + balance["test"]["cancel"] == 13
    assert all(balance[s][n] > 0 for s in ("train", "validation", "test") for n in LABELS), balance
    assert (len(splits.validation), len(splits.test)) == (20, 20)
    again = read(write_lists(tmp_path / "again.csv", rows), label_column="topics")
    assert again.test.texts == splits.test.texts  # seeded: the same rows for the same file and seed


@pytest.mark.parametrize("change, message", [
    ({"strategy": "contrastive", "pooling": "embedding"}, "strategy contrastive trains on pairs"),
    ({"strategy": "zero_shot", "pooling": "embedding"}, "strategy zero_shot picks the one label"),
    ({"data.label_bins": {"low": [0, 1]}}, "data.label_bins maps one label per row"),
    ({"evaluation.threshold": 1.5}, "evaluation.threshold must be in (0, 1)"),
])
def test_recipe_refuses_what_multi_label_cannot_do(change, message):
    with pytest.raises(RecipeError) as e:
        nlptransfer.load_recipe("sentiment-minilm", {"task": "multi_label", **change})
    assert message in str(e.value)
    with pytest.raises(RecipeError, match="micro_f1 is a multi-label metric"):
        nlptransfer.load_recipe("sentiment-minilm", {"training.metric": "micro_f1"})


# ---------------------------------------------------------------- a run, and every surface


def ml_overrides(model: Path, out: Path, **extra) -> dict:
    return quick_overrides(model, out, **{"task": "multi_label", "data.label_column": "topics", "training.lr": 2e-3,
                                          "training.epochs": 10, "training.metric": "micro_f1", **extra})


@pytest.fixture(scope="module")
def ml_data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ml")
    return {"train": write_lists(root / "train.csv", label_rows(240, seed=1), ";"),
            "test": write_lists(root / "test.csv", label_rows(60, seed=2), ";")}


@pytest.fixture(scope="module")
def ml_run(tiny_models, ml_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("ml-runs")
    return nlptransfer.finetune("sentiment-minilm", data=str(ml_data["train"]), overrides=ml_overrides(
        tiny_models["bert"], out, **{"data.test": str(ml_data["test"])}))


def test_a_run_learns_label_sets_and_tunes_thresholds_on_validation(ml_run):
    folder, metrics = Path(ml_run.path), ml_run.metrics
    labels = json.loads((folder / "labels.json").read_text())
    assert labels["kind"] == "multi_label" and labels["separator"] == ";"
    names = [labels["id2label"][str(i)] for i in range(len(labels["id2label"]))]
    # the thresholds are those that maximise micro-F1 (the run's training.metric) on the validation split
    splits = ml_run.splits
    clf = ml_run.classifier()
    val_probs = clf.predict_proba(list(splits.validation.texts))
    expected, _ = tune_thresholds(np.asarray(splits.validation.labels), val_probs, objective="micro_f1")
    assert [labels["thresholds"][n] for n in names] == pytest.approx(expected.tolist())
    chosen = metrics["thresholds"]
    assert chosen["source"] == "validation" and chosen["rows"] == len(splits.validation)
    assert chosen["objective"] == "micro_f1" and "to maximise micro-F1 over all labels" in chosen["summary"]
    assert "thresholds chosen on" in chosen["summary"]
    # test metrics: the scorer's, equal to scikit-learn's on the predictions the run wrote
    test = metrics["test"]
    assert test["micro_f1"] > 0.6, test
    with open(folder / "predictions.csv", newline="") as f:
        written = list(csv.DictReader(f))
    gold = np.array([[int(n in r["gold"].split(";")) for n in names] for r in written])
    predicted = np.array([[int(n in r["predicted"].split(";")) for n in names] for r in written])
    probs = np.array([[float(r[f"prob_{n}"]) for n in names] for r in written])
    thresholds = np.array([labels["thresholds"][n] for n in names])
    assert (predicted == (probs >= thresholds)).all()
    assert test["micro_f1"] == pytest.approx(f1_score(gold, predicted, average="micro", zero_division=0))
    assert test["macro_f1"] == pytest.approx(f1_score(gold, predicted, average="macro", zero_division=0))
    assert {k: test[k] for k in ("micro_f1", "hamming_loss", "lrap")} == pytest.approx(
        {k: multi_label_metrics(gold, probs, thresholds, names)[k] for k in ("micro_f1", "hamming_loss", "lrap")},
        abs=1e-5)
    assert test["per_class"][names[0]]["threshold"] == thresholds[0]


def test_thresholds_change_predictions_as_stated(ml_run):
    clf = ml_run.classifier()
    texts = ["the a " + LABELS["billing"], "the it so"]
    probs = clf.predict_proba(texts)
    predictions = clf.predict(texts)
    for p, row in zip(predictions, probs):
        wanted = [n for n, x, t in zip(clf.label_map.names, row, clf.label_map.thresholds) if x >= t]
        assert p.labels == wanted and p.label == ";".join(wanted)
    everything = TextClassifier(clf.model, clf.tokenizer, clf.label_map.with_thresholds([0.0] * 4), clf.max_length,
                                clf.recipe)
    nothing = TextClassifier(clf.model, clf.tokenizer, clf.label_map.with_thresholds([1.0] * 4), clf.max_length,
                             clf.recipe)
    assert [p.labels for p in everything.predict(texts)] == [list(clf.label_map.names)] * 2
    assert [p.labels for p in nothing.predict(texts)] == [[], []]


def test_one_global_threshold_from_the_recipe(tiny_models, ml_data, tmp_path):
    run = nlptransfer.finetune("sentiment-minilm", data=str(ml_data["train"]), overrides=ml_overrides(
        tiny_models["bert"], tmp_path, **{"evaluation.threshold": 0.3, "training.epochs": 1}))
    labels = json.loads((Path(run.path) / "labels.json").read_text())
    assert set(labels["thresholds"].values()) == {0.3}
    assert run.metrics["thresholds"]["source"] == "evaluation.threshold"


def test_evaluate_and_predict_read_and_write_label_lists(ml_run, ml_data, tmp_path, capsys):
    from nlptransfer.cli import main

    scored = nlptransfer.evaluate_run(ml_run.path, str(ml_data["test"]))
    for key in ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss", "lrap"):
        assert scored[key] == pytest.approx(ml_run.metrics["test"][key]), key
    assert main(["evaluate", str(ml_run.path), "--data", str(ml_data["test"])]) == 0
    printed = capsys.readouterr().out
    assert f"micro-F1 {scored['micro_f1']:.4f}" in printed and "threshold" in printed
    out = tmp_path / "predicted.csv"
    assert nlptransfer.predict_file(ml_run.path, str(ml_data["test"]), str(out)) == 60
    with open(out, newline="") as f:
        written = list(csv.DictReader(f))
    expected = ml_run.classifier().predict([r["text"] for r in written])
    assert [r["predicted"] for r in written] == [p.label for p in expected]
    assert set(written[0]) >= {"text", "topics", "predicted", *[f"prob_{n}" for n in LABELS]}


@pytest.mark.slow
def test_reloads_predict_the_same_label_sets(ml_run, tmp_path):
    texts = [f"the a {LABELS['billing']} {LABELS['price']}", "so it", f"{LABELS['delivery']} very"]
    expected = [p.labels for p in ml_run.classifier().predict(texts)]
    hub = tmp_path / "hub"
    hub.mkdir()
    nlptransfer.push(ml_run.path, "team/tickets", hub=hub)
    pulled = TextClassifier.from_pretrained("team/tickets", hub=hub)
    assert [p.labels for p in pulled.predict(texts)] == expected
    card = (Path(nlptransfer.pull("team/tickets", hub=hub)) / "README.md").read_text()
    assert "micro-F1" in card and "threshold" in card
    nlptransfer.export_onnx(ml_run.path)
    for backend in ("onnx", "onnx-int8"):
        got = TextClassifier.load(ml_run.path, backend=backend).predict(texts)
        if backend == "onnx":
            assert [p.labels for p in got] == expected


@pytest.mark.slow
def test_the_merged_export_is_a_multi_label_transformers_pipeline(ml_run, tmp_path):
    out = tmp_path / "merged"
    nlptransfer.export_merged(ml_run.path, out)
    assert json.loads((out / "config.json").read_text())["problem_type"] == "multi_label_classification"
    texts = [f"the a {LABELS['billing']} {LABELS['price']}", "so it"]
    script = ("import json, sys\nfrom transformers import pipeline\n"
              f"p = pipeline('text-classification', model={str(out)!r}, top_k=None)\n"
              f"print(json.dumps(p({texts!r})))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    scores = json.loads(done.stdout.strip().splitlines()[-1])
    probs = ml_run.classifier().predict_proba(texts)
    names = ml_run.classifier().label_map.names
    for row, expected in zip(scores, probs):
        got = {s["label"]: s["score"] for s in row}
        assert [got[n] for n in names] == pytest.approx(expected.tolist(), abs=1e-5)  # a sigmoid per label


@pytest.mark.slow
def test_serve_returns_label_lists(ml_run):
    texts = [f"the a {LABELS['billing']} {LABELS['price']}", "so it"]
    expected = ml_run.classifier().predict(texts)
    with server(Path(ml_run.path)) as (url, _):
        answer = httpx.post(url + "/v1/predict", json={"texts": texts}, timeout=30).json()
        info = httpx.get(url + "/metadata", timeout=30).json()
    got = answer["predictions"]
    assert [p["labels"] for p in got] == [p.labels for p in expected]
    assert [p["label"] for p in got] == [p.label for p in expected]
    assert info["kind"] == "multi_label" and set(info["thresholds"]) == set(LABELS)


def test_positive_weights_per_label(tiny_models, ml_data, tmp_path):
    from nlptransfer.tasks import task_kind
    from nlptransfer.tasks.kind import Task
    from nlptransfer.data import LabelMap

    task = Task("t", ("t",), LabelMap(["a", "b", "c"], "multi_label"), "multi_label")
    weights = task_kind("multi_label").class_weights(task, [[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]])
    assert weights.tolist() == [1 / 3, 3.0, 1.0]  # negatives / positives; a label no row holds: 1
    run = nlptransfer.finetune("sentiment-minilm", data=str(ml_data["train"]), overrides=ml_overrides(
        tiny_models["bert"], tmp_path, **{"training.class_weights": True, "training.epochs": 1}))
    assert np.isfinite(run.metrics["test"]["loss"])


@pytest.mark.slow
def test_a_killed_run_resumes_to_the_same_metrics(tiny_models, ml_data, tmp_path):
    settings = {"task": "multi_label", "data.label_column": "topics", "training.epochs": 2, "training.lr": 2e-3,
                "training.metric": "micro_f1"}
    whole = _cli(_args(tiny_models["bert"], ml_data["train"], tmp_path / "whole", **settings), tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    folder = tmp_path / "killed" / "sentiment-minilm"
    _killed_at(30, _args(tiny_models["bert"], ml_data["train"], tmp_path / "killed", **settings), tmp_path)
    resumed = _cli(["run", "sentiment-minilm", "--resume", str(folder)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a = json.loads((tmp_path / "whole" / "sentiment-minilm" / "metrics.json").read_text())
    b = json.loads((folder / "metrics.json").read_text())
    assert _without_timings(a)["test"] == _without_timings(b)["test"]
    assert (tmp_path / "whole" / "sentiment-minilm" / "labels.json").read_text() == (folder / "labels.json").read_text()


@pytest.mark.slow
def test_two_processes_agree_with_one(tmp_path, ml_data):
    from .conftest import build_tiny_model

    model = build_tiny_model(tmp_path / "models", "bert-nodropout")  # the processes' RNG streams differ
    settings = {"task": "multi_label", "data.label_column": "topics", "training.epochs": 2, "training.lr": 2e-3,
                "training.metric": "micro_f1"}
    one = _cli(_args(model, ml_data["train"], tmp_path / "one", **settings), tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = _cli(_args(model, ml_data["train"], tmp_path / "two", **settings), tmp_path, runner=torchrun)
    assert two.returncode == 0, two.stderr[-3000:]
    a, b = (json.loads((tmp_path / d / "sentiment-minilm" / "metrics.json").read_text()) for d in ("one", "two"))
    # stated tolerance: gradients averaged over the same examples in another reduction order
    assert abs(a["validation"]["loss"] - b["validation"]["loss"]) < 1e-4
    assert a["test"]["micro_f1"] == pytest.approx(b["test"]["micro_f1"], abs=1e-9)
    assert a["thresholds"]["labels"] == b["thresholds"]["labels"]
    assert a["examples_seen"] == b["examples_seen"] and a["steps"] == b["steps"]


def test_drift_watches_each_labels_rate():
    from nlptransfer.inference.profile import Profile
    from nlptransfer.serve.drift import DriftMonitor

    profile = Profile(["a", "b"], [0.5, 0.1], [0.0] * 9 + [1.0], np.zeros((0, 4), np.float32), 400, "validation",
                      "multi_label")
    steady, shifted = DriftMonitor(profile), DriftMonitor(profile)
    for i in range(200):  # a on half the texts, b on a tenth: as the reference; then b on every other text
        steady.observe((i % 2, int(i % 10 == 0)), 0.9, None)
        shifted.observe((i % 2, i % 2), 0.9, None)
    calm, alarm = steady.update(), shifted.update()
    assert not calm["alarm"] and calm["label_rates"]["b"]["live"] == pytest.approx(0.1)
    assert alarm["alarm"] and alarm["label_rates"]["b"]["live"] == pytest.approx(0.5)
    assert alarm["label_psi"] == alarm["label_rates"]["b"]["psi"] > 0.25 > alarm["label_rates"]["a"]["psi"]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["head", "top_k", "lora", "ia3"])
def test_every_strategy_trains_a_multi_label_head(tiny_models, ml_data, tmp_path, strategy):
    extra = {"strategy": strategy, "training.epochs": 2, "training.lr": None}
    if strategy == "head":
        extra["pooling"] = "mean"
    run = nlptransfer.finetune("sentiment-minilm", data=str(ml_data["train"]), overrides=ml_overrides(
        tiny_models["bert"], tmp_path, **extra))
    labels = json.loads((Path(run.path) / "labels.json").read_text())
    assert labels["kind"] == "multi_label" and len(labels["thresholds"]) == 4
    assert set(run.metrics["test"]["per_class"]) == set(LABELS) and run.metrics["test"]["n"] == 24
    reloaded = TextClassifier.load(run.path).predict_proba(["the a " + LABELS["billing"]])
    assert reloaded.shape == (1, 4) and ((reloaded > 0) & (reloaded < 1)).all()  # a sigmoid per label


@pytest.mark.slow
def test_compare_ranks_strategies_on_micro_f1(tiny_models, ml_data, tmp_path):
    from nlptransfer.report.compare import compare_strategies

    result = compare_strategies("sentiment-minilm", str(ml_data["train"]), ["head", "full"], ml_overrides(
        tiny_models["bert"], tmp_path, **{"training.epochs": 2, "training.lr": None, "pooling": "mean"}))
    assert result["metric"] == "micro_f1"
    rows = {r["name"]: r for r in result["rows"]}
    assert set(rows) == {"head", "full", "tf-idf baseline"}
    for name in ("head", "full"):
        metrics = json.loads((Path(rows[name]["run"]) / "metrics.json").read_text())
        assert rows[name]["micro_f1"] == metrics["test"]["micro_f1"]
    assert 0 < rows["tf-idf baseline"]["micro_f1"] <= 1
    best = max(rows.values(), key=lambda r: r["micro_f1"])
    assert best["pareto"]["trainable_parameters"] or best["pareto"]["train_seconds"] or best["pareto"]["both"]
    assert "micro-F1" in (Path(result["folder"]) / "compare.md").read_text()
