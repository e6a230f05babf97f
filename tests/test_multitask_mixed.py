"""Multi-task runs that mix kinds (data.task_kinds): a single-label task beside a multi-label task of label lists, on
one encoder; every stage reads the multi-label task's 0/1 rows in its slots of the batch, and every surface gives
its label lists."""
from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

import nlptransfer
from nlptransfer.data import DataSpec, load_multitask_splits
from nlptransfer.data.schema import MISSING
from nlptransfer.errors import DataError, RecipeError
from nlptransfer.inference import TextClassifier
from nlptransfer.recipe import load as load_recipe
from tests.helpers import cli as _cli, killed_at as _killed_at, run_args as _args, without_timings as _without_timings

from .conftest import NEGATIVE, POSITIVE, quick_overrides, write_csv
from .test_serve import server

TOPICS = {"tech": ["phone", "camera"], "media": ["book", "film"], "story": ["story", "movie"]}
PLAIN = ["the", "a", "this", "that", "it", "was", "is", "very", "really", "quite", "so", "and"]
KINDS = {"topics": "multi_label"}
#: the multi-label task first: the splits are carved by iterative stratification on it, and its map is labels.json's
#: top-level one (weighed 3x: with equal weights the tiny random model learns the sentiment alone and gives every text
#: every topic)
COLUMNS = ["topics", "sentiment"]


def mixed_rows(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """n texts with a sentiment word and a word of each of their topics (any number, none included) among filler;
    topics joined by '|'; every 7th row lacks its sentiment label."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        sentiment = ("positive", "negative")[i % 2]
        topics = [t for j, t in enumerate(TOPICS) if (i >> (j + 1)) % 2 == 1 or rng.random() < 0.05]
        words = rng.sample(PLAIN, 3) + [rng.choice(POSITIVE[:3] if sentiment == "positive" else NEGATIVE[:3])]
        words += [rng.choice(TOPICS[t]) for t in topics]
        rng.shuffle(words)
        rows.append((" ".join(words) + f" {i}", "" if i % 7 == 3 else sentiment, "|".join(topics)))
    return rows


def overrides(model: Path, out: Path, **extra) -> dict:
    return quick_overrides(model, out, **{"task": "classification", "data.label_columns": COLUMNS,
                                          "data.task_kinds": KINDS, "training.lr": 1e-3, "training.epochs": 12,
                                          "training.task_weights": {"topics": 3.0}, **extra})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("mixed") / "reviews.csv", mixed_rows(240), ("text", "sentiment", "topics"))


@pytest.fixture(scope="module")
def runs(tiny_models, data, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("mixed_runs")
    return {name: nlptransfer.finetune("sentiment-minilm", data=str(data), overrides=overrides(
        tiny_models["bert"], out, **{"output.name": name, **extra})).path
        for name, extra in {"full": {}, "lora": {"strategy": "lora", "training.lr": 1e-2, "peft.r": 4}}.items()}


def _predictions(run: Path) -> list[dict]:
    with open(run / "predictions.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_label_list_column_is_one_multi_label_task_beside_a_single_label_one(data):
    splits = load_multitask_splits(DataSpec(train=str(data), label_columns=["sentiment", "topics"], task_kinds=KINDS))
    assert {t: (m.kind, m.separator) for t, m in splits.tasks.items()} == {
        "sentiment": ("single_label", None), "topics": ("multi_label", "|")}
    assert list(splits.tasks["topics"].names) == ["media", "story", "tech"]
    rows = {text: (s, t) for text, s, t in mixed_rows(240)}
    for text, (sentiment, topics) in zip(splits.train.texts, splits.train.labels):
        want_s, want_t = rows[text]
        assert sentiment == (MISSING if not want_s else ["negative", "positive"].index(want_s))
        assert topics == [int(n in want_t.split("|")) for n in ["media", "story", "tech"]]
    report = splits.report.to_dict()
    assert report["inferred"]["label_separator (topics)"]["column"] == "|"
    topics = report["tasks"]["topics"]
    train = [rows[t][1].split("|") for t in splits.train.texts]
    assert topics["class_balance"]["train"] == {n: sum(n in t for t in train) for n in ["media", "story", "tech"]}
    assert topics["missing"]["train"] == 0  # an empty cell is the empty set: every row is labelled for the task
    sizes, counts = np.unique([len([x for x in t if x]) for t in train], return_counts=True)
    assert topics["labels_per_text"]["train"] == {str(k): int(c) for k, c in zip(sizes, counts)}
    lines = "\n".join(splits.report.describe())
    assert "topics, labels per text: 0:" in lines and "label separator (topics): '|'" in lines
    alone = splits.task_split("topics")  # the rows and 0/1 rows the report trains the task alone on
    assert alone.label_map.kind == "multi_label" and len(alone.train) == len(splits.train)


def test_the_cache_gives_back_the_same_nested_rows(data, tmp_path):
    from nlptransfer.data.store import load_splits_cached

    spec = DataSpec(train=str(data), label_columns=COLUMNS, task_kinds=KINDS)
    first = load_splits_cached(spec, 42, None, tmp_path)
    again = load_splits_cached(spec, 42, None, tmp_path)
    assert "cached" in json.dumps(again.report.files) or again is not first
    for name in ("train", "validation", "test"):
        assert list(getattr(again, name).labels) == list(getattr(first, name).labels)
        assert list(getattr(again, name).texts) == list(getattr(first, name).texts)
    assert {t: m.to_dict() for t, m in again.tasks.items()} == {t: m.to_dict() for t, m in first.tasks.items()}


def test_per_label_checks_name_the_task(tmp_path):
    rows = mixed_rows(60) + [("brand new words 1", "positive", "tech|gadgets")]
    path = write_csv(tmp_path / "r.csv", rows, ("text", "sentiment", "topics"))
    test = write_csv(tmp_path / "t.csv", [("odd one", "positive", "sport")] + mixed_rows(20, 5)[:5],
                     ("text", "sentiment", "topics"))
    with pytest.raises(DataError) as e:
        load_multitask_splits(DataSpec(train=str(path), test=str(test), label_columns=["sentiment", "topics"],
                                       task_kinds=KINDS, labels=None, val_fraction=0.1))
    problems = "\n".join(e.value.problems)
    assert "test, task 'topics': labels never seen in training: 'sport' (1 rows)" in problems, problems


def test_python_callers_get_the_same_refusals_and_large_files_are_not_streamed(data, tmp_path):
    with pytest.raises(DataError, match="data.task_kinds: 'colour' is not in data.label_columns"):
        load_multitask_splits(DataSpec(train=str(data), label_columns=COLUMNS, task_kinds={"colour": "multi_label"}))
    with pytest.raises(DataError, match="'multi' is no task kind"):
        load_multitask_splits(DataSpec(train=str(data), label_columns=COLUMNS, task_kinds={"topics": "multi"}))
    from nlptransfer.data.streamed import load_splits_streamed

    with pytest.raises(DataError, match="reads its files whole, not in chunks"):
        load_splits_streamed(DataSpec(train=str(data), label_columns=COLUMNS, task_kinds=KINDS), 42, tmp_path / "s")
    assert not (tmp_path / "s").exists()


def test_a_list_column_read_as_classes_gets_a_hint_naming_task_kinds(data):
    splits = load_multitask_splits(DataSpec(train=str(data), label_columns=["sentiment", "topics"], drop_invalid=True))
    assert any("'topics' cells look like lists of labels" in h and "data.task_kinds={topics: multi_label}" in h
               and "data.label_separator='|'" in h for h in splits.report.hints), splits.report.hints


@pytest.mark.parametrize("change, message", [
    ({"data.task_kinds": {"colour": "multi_label"}}, "data.task_kinds names 'colour', not in data.label_columns"),
    ({"data.task_kinds": {"topics": "multi"}}, "data.task_kinds: topics: 'multi' is no task kind; choose from"),
    ({"data.label_columns": None, "data.task_kinds": KINDS}, "data.task_kinds sets the kind of each task of a multi-"),
    ({"data.task_kinds": None, "data.label_separator": "|"}, "data.label_separator is a multi-label setting"),
    ({"evaluation.threshold": 1.5}, "evaluation.threshold must be in (0, 1)"),
])
def test_the_recipe_refuses_what_task_kinds_cannot_say(change, message):
    base = {"task": "classification", "data.label_columns": ["sentiment", "topics"], "data.task_kinds": KINDS}
    with pytest.raises(RecipeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_recipe("multitask-minilm", {**base, **change})


def test_the_loss_is_each_kinds_term_over_its_slots():
    from nlptransfer.data import LabelMap
    from nlptransfer.objectives.registry import Losses, ObjectiveContext
    from nlptransfer.tasks import run_tasks
    from nlptransfer.train.settings import LoopSettings

    tasks = run_tasks(None, {"sentiment": LabelMap(["negative", "positive"]),
                             "topics": LabelMap(["media", "story", "tech"], "multi_label")})
    settings = LoopSettings.from_recipe(load_recipe("multitask-minilm", {"data.label_columns": ["sentiment", "topics"],
                                                                         "data.task_kinds": KINDS}))
    losses = Losses({"cross_entropy": 1.0}, ObjectiveContext(settings, 2, None, "cpu", tasks))
    loss = lambda outputs, batch: losses(outputs, batch)[1]  # noqa: E731
    logits = {"sentiment": torch.tensor([[2.0, -1.0], [0.5, 0.1], [0.0, 1.0]]),
              "topics": torch.tensor([[3.0, -2.0, 0.5], [-1.0, 1.0, 0.0], [0.2, 0.2, -3.0]])}
    labels = torch.tensor([[0, 1, 0, 0], [MISSING, 0, 1, 1], [1, 0, 0, 0]])  # sentiment, then topics' 3 slots
    from nlptransfer.batching import label_tensor
    assert torch.equal(label_tensor([[0, [1, 0, 0]], [MISSING, [0, 1, 1]], [1, [0, 0, 0]]]), labels)
    terms = loss({"logits": logits}, {"labels": labels, "task_totals": torch.tensor([2.0, 3.0])})
    want_s = torch.nn.functional.cross_entropy(logits["sentiment"][[0, 2]], torch.tensor([0, 1]))
    want_t = torch.nn.functional.binary_cross_entropy_with_logits(logits["topics"], labels[:, 1:].float())
    assert terms["cross_entropy[sentiment]"].item() == pytest.approx(want_s.item(), rel=1e-6)
    assert terms["cross_entropy[topics]"].item() == pytest.approx(want_t.item(), rel=1e-6)


@pytest.mark.slow
def test_a_mixed_run_learns_both_tasks_and_every_file_says_so(runs, data):
    run = runs["full"]
    labels = json.loads((run / "labels.json").read_text())
    topics = labels["tasks"]["topics"]
    assert topics["kind"] == "multi_label" and topics["separator"] == "|" and set(topics["thresholds"]) == {
        "media", "story", "tech"}
    assert labels["tasks"]["sentiment"].get("kind", "single_label") == "single_label"
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]["tasks"]
    gold = np.array([[int(n in r["gold_topics"].split("|")) for n in ("media", "story", "tech")]
                     for r in _predictions(run)])
    every = 2 * gold.sum() / (gold.sum() + gold.size)  # the micro-F1 of giving every text every topic
    assert test["sentiment"]["accuracy"] >= 0.85 and test["topics"]["micro_f1"] >= every + 0.05, (test, every)
    assert {"micro_f1", "macro_f1", "subset_accuracy", "hamming_loss", "per_class", "lrap"} <= set(test["topics"])
    assert test["topics"]["thresholds"] == topics["thresholds"]
    chosen = metrics["thresholds"]["tasks"]["topics"]
    assert chosen["source"] == "validation" and [chosen["labels"][n]["threshold"] for n in ("media", "story", "tech")
                                                 ] == [topics["thresholds"][n] for n in ("media", "story", "tech")]
    rows = _predictions(run)
    assert list(rows[0]) == ["text", "gold_topics", "predicted_topics", "prob_topics_media", "prob_topics_story",
                             "prob_topics_tech", "gold_sentiment", "predicted_sentiment", "prob_sentiment_negative",
                             "prob_sentiment_positive"]
    assert labels["id2label"] == topics["id2label"] and labels["thresholds"] == topics["thresholds"]
    given = {text: t for text, _, t in mixed_rows(240)}
    assert all(r["gold_topics"] == "|".join(sorted(given[r["text"]].split("|"), key=["media", "story", "tech"].index))
               if given[r["text"]] else r["gold_topics"] == "" for r in rows)
    right = sum(r["predicted_topics"] == r["gold_topics"] for r in rows) / len(rows)
    assert right == pytest.approx(test["topics"]["subset_accuracy"])


@pytest.mark.slow
@pytest.mark.parametrize("name", ["full", "lora"])
def test_a_reload_predicts_the_run_s_label_sets(runs, name):
    run = runs[name]
    rows = _predictions(run)
    clf = TextClassifier.load(run)
    assert clf.tasks["topics"].thresholds is not None  # labels.json's maps, not the config's names alone
    got = clf.predict([r["text"] for r in rows])
    for r, p in zip(rows, got):
        assert p["topics"].labels == [x for x in r["predicted_topics"].split("|") if x]
        assert p["sentiment"].label == r["predicted_sentiment"]
        assert p["topics"].probabilities["tech"] == pytest.approx(float(r["prob_topics_tech"]), abs=1e-5)


@pytest.mark.slow
def test_evaluate_and_predict_read_the_list_column_as_the_run_did(runs, data, tmp_path):
    from nlptransfer.api import evaluate_run

    run = runs["full"]
    metrics = json.loads((run / "metrics.json").read_text())["test"]["tasks"]
    test_rows = [(r["text"], r["gold_sentiment"], r["gold_topics"]) for r in _predictions(run)]
    path = write_csv(tmp_path / "test.csv", test_rows, ("text", "sentiment", "topics"))
    scored = evaluate_run(run, str(path))
    assert scored["tasks"]["topics"]["micro_f1"] == pytest.approx(metrics["topics"]["micro_f1"])
    assert scored["tasks"]["sentiment"]["accuracy"] == pytest.approx(metrics["sentiment"]["accuracy"])
    out = tmp_path / "predicted.csv"
    done = _cli(["predict", str(run), "--input", str(path), "--output", str(out)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out, newline="", encoding="utf-8") as f:
        predicted = list(csv.DictReader(f))
    assert [r["predicted_topics"] for r in predicted] == [r["predicted_topics"] for r in _predictions(run)]
    done = _cli(["evaluate", str(run), "--data", str(path)], tmp_path)
    assert done.returncode == 0 and "micro-F1" in done.stdout, done.stdout + done.stderr[-2000:]


@pytest.mark.slow
def test_the_server_returns_each_task_s_labels(runs):
    run = runs["full"]
    texts = ["great phone book", "awful film"]
    with server(run) as (url, _):
        answer = httpx.post(url + "/v1/predict", json={"texts": texts}, timeout=30).json()
        meta = httpx.get(url + "/metadata", timeout=30).json()
    expected = TextClassifier.load(run).predict(texts)
    for got, want in zip(answer["predictions"], expected):
        assert got["tasks"]["topics"]["labels"] == want["topics"].labels
        assert got["tasks"]["sentiment"]["label"] == want["sentiment"].label
    assert meta["task_kinds"] == {"sentiment": "single_label", "topics": "multi_label"}
    assert set(meta["task_thresholds"]["topics"]) == {"media", "story", "tech"}


@pytest.mark.slow
def test_the_report_compares_the_multi_label_task_on_micro_f1(runs):
    from nlptransfer.report import build_report

    report = build_report(runs["full"])
    metrics = json.loads((runs["full"] / "metrics.json").read_text())["test"]["tasks"]
    topics = report["tasks"]["topics"]
    assert topics["score"] == "micro_f1" and topics["mcnemar"] is None
    assert topics["multi_task"]["micro_f1"] == pytest.approx(metrics["topics"]["micro_f1"])
    d = topics["difference"]
    assert d["estimate"] == pytest.approx(topics["multi_task"]["micro_f1"] - topics["single_task"]["micro_f1"])
    assert report["tasks"]["sentiment"]["score"] == "accuracy" and report["tasks"]["sentiment"]["mcnemar"]
    assert "| topics | " in (runs["full"] / "report" / "report.md").read_text()


@pytest.mark.slow
def test_a_killed_mixed_run_resumes_to_the_same_metrics(tiny_models, data, tmp_path):
    args = {"task": "classification", "data.label_columns": "[topics,sentiment]",
            "data.task_kinds": "{topics: multi_label}", "training.lr": 1e-3, "training.epochs": 2,
            "training.checkpoint_every": 5, "training.class_weights": "true"}
    whole = _cli(_args(tiny_models["bert"], data, tmp_path / "whole", **args), tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    folder = tmp_path / "killed" / "sentiment-minilm"
    _killed_at(17, _args(tiny_models["bert"], data, tmp_path / "killed", **args), tmp_path)
    resumed = _cli(["run", "sentiment-minilm", "--resume", str(folder)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from step 15" in resumed.stdout
    a = json.loads((tmp_path / "whole" / "sentiment-minilm" / "metrics.json").read_text())
    b = json.loads((folder / "metrics.json").read_text())
    assert _without_timings(a) == _without_timings(b) and "micro_f1" in b["test"]["tasks"]["topics"]


def test_the_head_strategy_trains_a_mixed_run_on_cached_features(tiny_models, data, tmp_path):
    run = nlptransfer.finetune("sentiment-minilm", data=str(data), overrides=overrides(
        tiny_models["distilbert"], tmp_path, **{"strategy": "head", "training.lr": 5e-2, "training.epochs": 3})).path
    test = json.loads((run / "metrics.json").read_text())["test"]["tasks"]
    assert set(test) == {"sentiment", "topics"} and "micro_f1" in test["topics"]
    clf = TextClassifier.load(run)
    rows = _predictions(run)
    assert [p["topics"].label for p in clf.predict([r["text"] for r in rows])] == [r["predicted_topics"] for r in rows]


@pytest.mark.slow
def test_a_pushed_mixed_run_predicts_the_same_label_sets_and_its_card_says_how(runs, tmp_path):
    hub = tmp_path / "hub"
    hub.mkdir()
    nlptransfer.push(runs["lora"], "team/mixed", hub=hub)
    clf = TextClassifier.from_pretrained("team/mixed", hub=hub)
    texts = [r["text"] for r in _predictions(runs["lora"])]
    assert [p["topics"].labels for p in clf.predict(texts)] == [
        p["topics"].labels for p in TextClassifier.load(runs["lora"]).predict(texts)]
    card = next(hub.rglob("README.md")).read_text()
    topics = card.split("### topics")[1].split("###")[0]
    metrics = json.loads((runs["lora"] / "metrics.json").read_text())["test"]["tasks"]["topics"]
    assert f"micro-F1 {metrics['micro_f1']:.4f}" in topics and "| label | threshold |" in topics
    assert "any number of them for `topics`, each at or above its threshold" in card
