"""Multi-task runs (data.label_columns): one encoder, a head per task, a masked loss per task; every file, API and
command that reads a run handles every task; the report answers "did sharing help?" per task."""
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
import torch

import nlptransfer
from nlptransfer.data.schema import MISSING
from nlptransfer.errors import RecipeError, RunError
from nlptransfer.inference import TextClassifier
from tests.helpers import cli as _cli, killed_at as _killed_at, run_args as _args, without_timings as _without_timings

from .conftest import FILLER, NEGATIVE, POSITIVE, build_tiny_model, quick_overrides, write_csv
from .test_serve import server

TASKS = ["sentiment", "topic"]
TOPIC_WORDS = {"tech": ["phone", "camera"], "media": ["book", "film"]}
PLAIN = [w for w in FILLER if w not in {"phone", "camera", "book", "film", "movie", "story", "product"}]


def multitask_rows(n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """n texts with one of three sentiment words and a topic word among filler; every 7th lacks its sentiment label
    and every 11th (that has one) its topic label. (With all ten sentiment words, a tiny random model learns the
    topic first and never the sentiment: sharing hurts there, as the report would say.)"""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        sentiment, topic = ("positive", "negative")[i % 2], ("tech", "media")[(i // 2) % 2]
        words = rng.sample(PLAIN, 4) + [rng.choice(POSITIVE[:3] if sentiment == "positive" else NEGATIVE[:3]),
                                        rng.choice(TOPIC_WORDS[topic])]
        rng.shuffle(words)
        if i % 7 == 3:
            sentiment = ""
        elif i % 11 == 5:
            topic = ""
        rows.append((" ".join(words) + f" {i}", sentiment, topic))
    return rows


def write_rows(path: Path, rows, header=("text", *TASKS)) -> Path:
    return write_csv(path, rows, header)


def overrides(model: Path, out: Path, **extra) -> dict:
    return quick_overrides(model, out, **{"task": "classification", "data.label_columns": TASKS, "training.lr": 1e-3,
                                          "training.epochs": 12, **extra})


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_rows(tmp_path_factory.mktemp("multitask") / "reviews.csv", multitask_rows(200))


@pytest.fixture(scope="module")
def runs(tiny_models, data, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("multitask_runs")
    made = {}
    for name, extra in {"full": {}, "lora": {"strategy": "lora", "training.lr": 1e-2, "peft.r": 4},
                        "uncertainty": {"training.task_weighting": "uncertainty", "training.epochs": 4}}.items():
        made[name] = nlptransfer.finetune("sentiment-minilm", data=str(data), overrides=overrides(
            tiny_models["bert"], out, **{"output.name": name, **extra})).path
    return made


def _predictions(run: Path) -> list[dict]:
    with open(run / "predictions.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _saved_probs(run: Path, task: str, names) -> np.ndarray:
    return np.array([[float(r[f"prob_{task}_{n}"]) for n in names] for r in _predictions(run)])


@pytest.mark.slow
def test_two_label_columns_train_one_head_each_and_every_file_says_so(runs, data):
    run = runs["full"]
    labels = json.loads((run / "labels.json").read_text())
    assert {t: list(m["label2id"]) for t, m in labels["tasks"].items()} == {
        "sentiment": ["negative", "positive"], "topic": ["media", "tech"]}
    assert labels["id2label"] == labels["tasks"]["sentiment"]["id2label"]  # a one-map reader sees the first task
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert list(test["tasks"]) == TASKS
    for scores in test["tasks"].values():
        assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "loss", "ece"} <= set(scores)
    assert test["accuracy"] == pytest.approx(np.mean([test["tasks"][t]["accuracy"] for t in TASKS]))
    assert test["tasks"]["topic"]["accuracy"] >= 0.9  # the tiny model learns both
    assert test["tasks"]["sentiment"]["accuracy"] >= 0.9
    # a row without one label still trains the other task, and the report counts it per task
    report = json.loads((run / "data_report.json").read_text())
    rows = multitask_rows(200)
    assert sum(report["tasks"]["sentiment"]["missing"].values()) == sum(1 for r in rows if not r[1]) == 29
    assert sum(report["tasks"]["topic"]["missing"].values()) == sum(1 for r in rows if not r[2]) == 15
    assert sum(report["rows_used"].values()) == 200
    header = list(_predictions(run)[0])
    assert header == ["text", "gold_sentiment", "predicted_sentiment", "prob_sentiment_negative",
                      "prob_sentiment_positive", "gold_topic", "predicted_topic", "prob_topic_media", "prob_topic_tech"]


@pytest.mark.slow
def test_each_tasks_metrics_are_those_of_its_labelled_test_rows(runs):
    from sklearn.metrics import confusion_matrix, f1_score

    run = runs["full"]
    test = json.loads((run / "metrics.json").read_text())["test"]
    rows = _predictions(run)
    for task in TASKS:
        labelled = [r for r in rows if r[f"gold_{task}"]]
        assert 0 < len(labelled) < len(rows) or task == "topic"
        gold = [r[f"gold_{task}"] for r in labelled]
        predicted = [r[f"predicted_{task}"] for r in labelled]
        scores = test["tasks"][task]
        names = scores["confusion_matrix"]["labels"]
        assert scores["n"] == len(labelled)
        assert scores["accuracy"] == pytest.approx(np.mean([g == p for g, p in zip(gold, predicted)]))
        assert scores["macro_f1"] == pytest.approx(f1_score(gold, predicted, average="macro"))
        assert scores["confusion_matrix"]["matrix"] == confusion_matrix(gold, predicted, labels=names).tolist()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["full", "lora", "uncertainty"])
def test_a_reload_gives_identical_predictions_for_every_task(runs, name):
    run = runs[name]
    clf = TextClassifier.load(run)
    texts = [r["text"] for r in _predictions(run)]
    probs = clf.predict_proba(texts)
    assert list(probs) == TASKS and list(clf.tasks) == TASKS
    for task in TASKS:
        assert np.abs(probs[task] - _saved_probs(run, task, clf.tasks[task].names)).max() < 1e-5
    one = clf.predict(texts[0])
    assert set(one) == set(TASKS) and one["topic"].label == max(one["topic"].probabilities,
                                                                key=one["topic"].probabilities.get)


def test_tasks_keep_their_order_through_config_json_when_the_first_sorts_last(tiny_models, data, tmp_path):
    """transformers writes config.json with sorted keys: the tasks are saved as pairs, so a run whose first label column
    sorts after another reloads with its tasks in order, each with its own head's probabilities."""
    run = nlptransfer.finetune("sentiment-minilm", data=str(data), overrides=overrides(
        tiny_models["bert"], tmp_path, **{"data.label_columns": ["topic", "sentiment"], "training.epochs": 1})).path
    clf = TextClassifier.load(run)
    assert list(clf.tasks) == ["topic", "sentiment"] and list(clf.label_map.names) == ["media", "tech"]
    probs = clf.predict_proba([r["text"] for r in _predictions(run)])
    for task in ("topic", "sentiment"):
        assert np.abs(probs[task] - _saved_probs(run, task, clf.tasks[task].names)).max() < 1e-5


@pytest.mark.slow
def test_lora_saves_every_head_with_the_adapter(runs):
    from safetensors.torch import load_file

    keys = set(load_file(str(runs["lora"] / "adapter" / "adapter_model.safetensors")))
    assert any(".classifier." in k for k in keys)
    assert any(k.startswith("base_model.model.task_heads.") and k.endswith("weight") for k in keys)
    assert not (runs["lora"] / "model").exists()


@pytest.mark.slow
def test_learned_task_weights_train_and_are_saved(runs):
    from safetensors.torch import load_file

    weights = load_file(str(runs["uncertainty"] / "model" / "model.safetensors"))["task_weights.log_vars"]
    assert weights.shape == (2,) and torch.all(weights != 0)  # they started at 0
    log = [json.loads(line) for line in (runs["uncertainty"] / "train_log.jsonl").read_text().splitlines()]
    terms = [r["terms"] for r in log if "terms" in r]
    assert set(terms[-1]) == {"cross_entropy[sentiment]", "cross_entropy[topic]"}


def _model_and_losses(model_path: Path, **recipe_changes):
    from nlptransfer import models
    from nlptransfer.data import LabelMap
    from nlptransfer.objectives import Losses, ObjectiveContext
    from nlptransfer.recipe import load
    from nlptransfer.strategies import get_strategy
    from nlptransfer.train.settings import LoopSettings

    tasks = {"sentiment": LabelMap(["negative", "positive"]), "topic": LabelMap(["media", "tech", "other"])}
    recipe = load("sentiment-minilm", {"task": "classification", "data.label_columns": TASKS, "model": str(model_path),
                                       **recipe_changes})
    torch.manual_seed(0)
    net, new = models.load_classifier(models.resolve(str(model_path)), tasks["sentiment"], tasks=tasks)
    prepared = get_strategy("full").prepare(net, recipe, new)
    context = ObjectiveContext(LoopSettings.from_recipe(recipe), 2, None, "cpu")
    return prepared.model.eval(), Losses(recipe.training.objectives, context)


def _grads(model, losses, ids, labels) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad()
    total, _ = losses(model(input_ids=ids, attention_mask=torch.ones_like(ids)), {"labels": torch.tensor(labels)})
    total.backward()
    heads = {"sentiment": model.core.classifier.weight, "topic": model.core.task_heads.heads[0].classifier_of_task.weight}
    return float(total.detach()), {task: w.grad.clone() for task, w in heads.items()}


def test_a_row_without_a_label_only_trains_the_other_task(tiny_models):
    model, losses = _model_and_losses(tiny_models["bert"])
    ids = torch.tensor([[2, 5, 16, 30, 3], [2, 8, 20, 31, 3]])
    # no row has a topic label: the topic head gets no gradient, the sentiment head does
    _, grads = _grads(model, losses, ids, [[0, MISSING], [1, MISSING]])
    assert torch.all(grads["topic"] == 0) and grads["sentiment"].abs().sum() > 0
    # row 2 lacks its sentiment label: the sentiment head's gradient is that of row 1 alone
    _, mixed = _grads(model, losses, ids, [[1, 2], [MISSING, 0]])
    _, alone = _grads(model, losses, ids[:1], [[1, MISSING]])
    assert torch.allclose(mixed["sentiment"], alone["sentiment"], atol=1e-6)
    assert mixed["topic"].abs().sum() > 0
    # and the loss is each task's mean over its labelled rows, summed with the task weights
    model.zero_grad()
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids))["logits"]
        total, terms = losses({"logits": logits}, {"labels": torch.tensor([[1, 2], [MISSING, 0]])})
    ce = torch.nn.functional.cross_entropy
    assert float(terms["cross_entropy[sentiment]"]) == pytest.approx(float(ce(logits["sentiment"][:1], torch.tensor([1]))))
    assert float(terms["cross_entropy[topic]"]) == pytest.approx(float(ce(logits["topic"], torch.tensor([2, 0]))))
    weighted, _ = _model_and_losses(tiny_models["bert"], **{"training.task_weights": {"topic": 0.25}})[1](
        {"logits": logits}, {"labels": torch.tensor([[1, 2], [MISSING, 0]])})
    assert float(weighted) == pytest.approx(float(terms["cross_entropy[sentiment]"] + 0.25 * terms["cross_entropy[topic]"]))
    assert float(total) == pytest.approx(sum(float(v) for v in terms.values()))


@pytest.mark.parametrize("strategy, kind", [("head", "distilbert"), ("top_k", "roberta"), ("full", "deberta-v2"),
                                            ("ia3", "electra")])
def test_every_strategy_and_architecture_trains_and_reloads_two_tasks(tiny_models, data, tmp_path, strategy, kind):
    lr = {"head": 3e-2, "top_k": 1e-3, "full": 1e-3, "ia3": 3e-2}[strategy]
    extra = {"training.class_weights": True} if strategy == "head" else {}  # weighted per task, over its rows
    run = nlptransfer.finetune("sentiment-minilm", data=str(data), overrides=overrides(
        tiny_models[kind], tmp_path, **{"strategy": strategy, "training.lr": lr, "training.epochs": 2, **extra})).path
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert list(test["tasks"]) == TASKS
    clf = TextClassifier.load(run)
    texts = [r["text"] for r in _predictions(run)]
    for task, probs in clf.predict_proba(texts).items():
        assert np.abs(probs - _saved_probs(run, task, clf.tasks[task].names)).max() < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_a_killed_run_resumes_to_the_same_metrics(tiny_models, data, tmp_path, strategy):
    args = {"task": "classification", "data.label_columns": "[sentiment,topic]", "training.lr": 1e-3,
            "training.epochs": 2, "training.checkpoint_every": 5, "strategy": strategy}
    whole = _cli(_args(tiny_models["bert"], data, tmp_path / "whole", **args), tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    folder = tmp_path / "killed" / "sentiment-minilm"
    _killed_at(17, _args(tiny_models["bert"], data, tmp_path / "killed", **args), tmp_path)
    assert not (folder / "metrics.json").exists()
    resumed = _cli(["run", "sentiment-minilm", "--resume", str(folder)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from step 15" in resumed.stdout
    a = json.loads((tmp_path / "whole" / "sentiment-minilm" / "metrics.json").read_text())
    b = json.loads((folder / "metrics.json").read_text())
    assert _without_timings(a) == _without_timings(b) and list(b["test"]["tasks"]) == TASKS


@pytest.mark.slow
def test_two_processes_agree_with_one(tmp_path, data):
    model = build_tiny_model(tmp_path / "models", "bert-nodropout")
    args = {"task": "classification", "data.label_columns": "[sentiment,topic]", "training.lr": 1e-3,
            "training.epochs": 2}
    one = _cli(_args(model, data, tmp_path / "one", **args), tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = _cli(_args(model, data, tmp_path / "two", **args), tmp_path, runner=torchrun)
    assert two.returncode == 0, two.stderr[-3000:]
    a = json.loads((tmp_path / "one" / "sentiment-minilm" / "metrics.json").read_text())
    b = json.loads((tmp_path / "two" / "sentiment-minilm" / "metrics.json").read_text())
    for task in TASKS:  # stated tolerance: the same gradients, averaged in another order
        assert a["test"]["tasks"][task]["confusion_matrix"] == b["test"]["tasks"][task]["confusion_matrix"]
        assert abs(a["validation"]["tasks"][task]["loss"] - b["validation"]["tasks"][task]["loss"]) < 1e-4
    assert a["steps"] == b["steps"] and a["examples_seen"] == b["examples_seen"]


@pytest.mark.slow
def test_predict_writes_every_tasks_label_and_probabilities(runs, tmp_path):
    texts = ["great phone", "awful book", "the film was superb"]
    source = write_rows(tmp_path / "in.csv", [(t,) for t in texts], header=("text",))
    done = subprocess.run([sys.executable, "-m", "nlptransfer", "predict", str(runs["full"]), "--input", str(source),
                           "--output", str(tmp_path / "out.csv")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["text", "predicted_sentiment", "prob_sentiment_negative", "prob_sentiment_positive",
                             "predicted_topic", "prob_topic_media", "prob_topic_tech"]
    expected = TextClassifier.load(runs["full"]).predict(texts)
    for row, want in zip(rows, expected):
        for task in TASKS:
            assert row[f"predicted_{task}"] == want[task].label
            for label, p in want[task].probabilities.items():
                assert float(row[f"prob_{task}_{label}"]) == pytest.approx(p, abs=1e-6)


@pytest.mark.slow
def test_evaluate_scores_every_task_the_file_has(runs, tmp_path):
    from nlptransfer.api import evaluate_run

    rows = multitask_rows(60, seed=3)
    both = evaluate_run(runs["full"], str(write_rows(tmp_path / "both.csv", rows)))
    assert list(both["tasks"]) == TASKS and both["tasks_missing"] == []
    assert both["tasks"]["sentiment"]["n"] == sum(1 for r in rows if r[1])
    only = evaluate_run(runs["full"], str(write_rows(tmp_path / "topic.csv", [(t, c) for t, _, c in rows if c],
                                                     header=("text", "topic"))))
    assert list(only["tasks"]) == ["topic"] and only["tasks_missing"] == ["sentiment"]
    assert only["tasks"]["topic"] == both["tasks"]["topic"]
    with pytest.raises(RecipeError, match="multi-task run: it scores every one of its label columns"):
        evaluate_run(runs["full"], str(tmp_path / "both.csv"), label_column="topic")
    done = subprocess.run([sys.executable, "-m", "nlptransfer", "evaluate", str(runs["full"]), "--data",
                           str(tmp_path / "topic.csv")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "topic:" in done.stdout and "not scored (no such column" in done.stdout and "sentiment" in done.stdout


@pytest.mark.slow
def test_export_refuses_with_a_clear_message(runs, tmp_path):
    from nlptransfer.publish.export import export_merged, export_onnx

    for run in (runs["full"], runs["lora"]):
        with pytest.raises(RunError, match="multi-task run .*plain transformers model has one classification head"):
            export_merged(run, tmp_path / "merged")
        with pytest.raises(RunError, match="multi-task run .*ONNX export is not supported"):
            export_onnx(run)
        assert not (tmp_path / "merged").exists() and not (run / "onnx").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["full", "lora"])
def test_push_carries_every_head_and_a_card_section_per_task(runs, tmp_path, name):
    hub = tmp_path / "hub"
    hub.mkdir()
    nlptransfer.push(runs[name], f"team/{name}", hub=hub)
    clf = TextClassifier.from_pretrained(f"team/{name}", hub=hub)
    texts = [r["text"] for r in _predictions(runs[name])]
    expected = TextClassifier.load(runs[name]).predict_proba(texts)
    assert all(np.abs(clf.predict_proba(texts)[task] - expected[task]).max() < 1e-5 for task in TASKS)
    card = next(hub.rglob("README.md")).read_text()
    metrics = json.loads((runs[name] / "metrics.json").read_text())["test"]
    for task in TASKS:
        section = card.split(f"### {task}")[1].split("###")[0]
        assert f"accuracy {metrics['tasks'][task]['accuracy']:.4f}" in section
    assert "one shared encoder with a head for each of 2 tasks" in card and "export RUN --merge" not in card
    front = card.split("---")[1]
    assert f"value: {round(metrics['tasks']['topic']['accuracy'], 4)}" in front and "Test accuracy (topic)" in front


@pytest.mark.slow
def test_the_server_returns_every_task(runs):
    with server(runs["full"]) as (url, _):
        answer = httpx.post(url + "/v1/predict", json={"texts": ["great phone", "awful book"]}, timeout=30).json()
        meta = httpx.get(url + "/metadata", timeout=30).json()
    expected = TextClassifier.load(runs["full"]).predict(["great phone", "awful book"])
    for got, want in zip(answer["predictions"], expected):
        assert list(got["tasks"]) == TASKS
        for task in TASKS:
            assert got["tasks"][task]["label"] == want[task].label
            assert got["tasks"][task]["score"] == pytest.approx(want[task].score, abs=1e-5)
        assert got["label"] == got["tasks"]["sentiment"]["label"]  # the first task's, for one-task clients
    assert meta["tasks"] == {"sentiment": ["negative", "positive"], "topic": ["media", "tech"]}


@pytest.mark.slow
def test_the_report_says_per_task_whether_sharing_helped(runs):
    from nlptransfer.report import build_report
    from nlptransfer.report.multitask import VERDICTS

    report = build_report(runs["full"])
    saved = json.loads((runs["full"] / "report" / "report.json").read_text())
    assert saved["tasks"].keys() == report["tasks"].keys() == set(TASKS)
    metrics = json.loads((runs["full"] / "metrics.json").read_text())["test"]["tasks"]
    for task, result in report["tasks"].items():
        assert result["verdict"] in VERDICTS.values()
        assert result["multi_task"]["accuracy"] == pytest.approx(metrics[task]["accuracy"])
        assert result["multi_task"]["n"] == result["single_task"]["n"] == metrics[task]["n"] == result["rows"]["test"]
        d = result["difference"]
        assert d["low"] <= d["estimate"] <= d["high"]
        assert d["estimate"] == pytest.approx(result["multi_task"]["accuracy"] - result["single_task"]["accuracy"])
        assert 0 <= result["mcnemar"]["p_value"] <= 1
    markdown = (runs["full"] / "report" / "report.md").read_text()
    assert all(f"| {task} |" in markdown for task in TASKS) and "sharing helped if" in markdown
    assert (runs["full"] / "report" / "report.html").is_file()


@pytest.mark.parametrize("change, message", [
    ({"strategy": "zero_shot", "pooling": "embedding"}, "strategy zero_shot cannot train several label columns"),
    ({"strategy": "contrastive", "pooling": "embedding"}, "strategy contrastive cannot train several label columns"),
    ({"data.label_map": {"a": "b"}}, "data.label_map applies to a single label column"),
    ({"training.task_weights": {"colour": 2.0}}, "training.task_weights names 'colour', not in data.label_columns"),
    ({"training.task_weighting": "dynamic"}, "training.task_weighting must be fixed or uncertainty"),
    ({"task": "sentiment"}, "task: sentiment (ordered labels) is for one label column"),
    ({"data.label_columns": ["sentiment", "sentiment"]}, "data.label_columns names a column twice"),
])
def test_the_recipe_refuses_what_a_multi_task_run_cannot_do(change, message):
    from nlptransfer.recipe import load

    with pytest.raises(RecipeError) as error:
        load("sentiment-minilm", {"task": "classification", "data.label_columns": TASKS, **change})
    assert message in str(error.value)


def test_compare_refuses_a_multi_task_recipe_with_what_to_do_instead(tiny_models, data, tmp_path):
    from nlptransfer.report import compare_strategies

    with pytest.raises(RecipeError, match="compare ranks strategies against one tf-idf baseline on one label column"):
        compare_strategies("sentiment-minilm", str(data), ["head", "full"],
                           overrides=overrides(tiny_models["bert"], tmp_path))
    assert not any(tmp_path.iterdir())
