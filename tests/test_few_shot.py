"""strategy contrastive (few-shot, SetFit's method in the one loop) on tiny random models: pair sampling is balanced
and seeded, a batch encodes each text once, the pair loss has known answers and falls, the body can be an adapter,
a killed run resumes exactly, and the run folder reloads with identical predictions."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import nlptransfer
from nlptransfer.batching import TextPairs
from nlptransfer.tokens import Encoded
from nlptransfer.errors import RecipeError
from nlptransfer.objectives.pairs import cosine_pairs_loss
from tests.helpers import cli, killed_at

from .conftest import quick_overrides


def _few_shot(model, out, **extra):
    return {**quick_overrides(model, out), "data.test_fraction": 0.2, "contrastive.iterations": 4,
            "contrastive.lr": 1e-3, "contrastive.batch_size": 8, "training.epochs": 5, **extra}


def _pair_losses(run) -> list[float]:
    """The body stage's loss at each step, in order (checked to be each step once)."""
    log = [json.loads(line) for line in (run.path / "body" / "train_log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == list(range(1, len(steps) + 1))
    return [r["loss"] for r in log if "loss" in r]


def test_pairs_are_balanced_seeded_and_well_formed():
    labels = [0, 0, 0, 1, 1, 2]
    data = Encoded([[2, 5 + i, 3] for i in range(len(labels))], labels)
    pairs = TextPairs(data, iterations=3, seed=7, pad_id=0)
    assert len(pairs) == 2 * 3 * len(labels) and sum(pairs.labels) == len(pairs) / 2  # as many of each kind
    for a, b, target in pairs.pairs:
        assert (labels[a] == labels[b]) == (target == 1.0)
        assert a != b or labels.count(labels[a]) == 1  # a text is paired with itself only when alone in its label
    # every distinct pair comes before any repeats: 3 + 1 + 1 (label 2 alone) same-label pairs, 11 different-label
    same = [(a, b) for a, b, t in pairs.pairs if t == 1.0]
    other = [(a, b) for a, b, t in pairs.pairs if t == 0.0]
    assert len(set(same[:5])) == 5 and set(same) == {(0, 1), (0, 2), (1, 2), (3, 4), (5, 5)}
    assert len(set(other[:11])) == 11 and same[5:10] == same[:5] and other[11:18] == other[:7]
    assert TextPairs(data, 3, 7, 0).pairs == pairs.pairs and TextPairs(data, 3, 8, 0).pairs != pairs.pairs
    budget = TextPairs(data, 3, 7, 0, limit=10)
    assert len(budget) == 10 and set(budget.pairs) <= set(pairs.pairs)
    assert pairs.lengths == [6] * len(pairs)


def test_a_batch_holds_each_text_once_with_its_pairs_as_positions():
    data = Encoded([[2, 5, 3], [2, 6, 6, 3], [2, 7, 3], [2, 8, 9, 9, 3]], [0, 0, 1, 1])
    pairs = TextPairs(data, iterations=2, seed=0, pad_id=0)
    items = [pairs[i] for i in range(len(pairs))]
    batch = pairs.collate(items)
    rows = sorted({r for a, b, _ in pairs.pairs for r in (a, b)})
    assert batch["input_ids"].shape[0] == len(rows) == 4 < 2 * len(items)
    for (a, b, target), (i, j), t in zip(pairs.pairs, batch["pairs"].tolist(), batch["labels"].tolist()):
        width = len(data.input_ids[a])
        assert batch["input_ids"][i, :width].tolist() == data.input_ids[a] and t == target
        assert batch["input_ids"][j, :len(data.input_ids[b])].tolist() == data.input_ids[b]


def test_with_all_pairs_a_batch_learns_from_every_two_of_its_texts():
    data = Encoded([[2, 5, 3], [2, 6, 6, 3], [2, 7, 3], [2, 8, 9, 9, 3], [2, 4, 3]], [0, 0, 1, 1, 2])
    pairs = TextPairs(data, iterations=2, seed=0, pad_id=0, all_pairs=True)
    assert pairs.pairs == TextPairs(data, iterations=2, seed=0, pad_id=0).pairs  # the same draw chooses the texts
    items = [pairs[i] for i in range(3)]
    rows = sorted({r for it in items for r in it["pair"]})
    batch = pairs.collate(items)
    got = {(rows[i], rows[j]): t for (i, j), t in zip(batch["pairs"].tolist(), batch["labels"].tolist())}
    assert len(got) == len(rows) * (len(rows) - 1) // 2 > len(items)
    assert got == {(a, b): float(data.labels[a] == data.labels[b]) for a in rows for b in rows if a < b}
    alone = pairs.collate([{"pair": (4, 4), "target": 1.0}])  # one text alone in its label: paired with itself
    assert alone["pairs"].tolist() == [[0, 0]] and alone["labels"].tolist() == [1.0]


def test_the_pair_loss_has_known_answers():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [3.0, 0.0]])
    pairs = torch.tensor([[0, 2], [0, 1]])
    assert float(cosine_pairs_loss(x, pairs, torch.tensor([1.0, 0.0]))) == pytest.approx(0.0)
    assert float(cosine_pairs_loss(x, pairs, torch.tensor([0.0, 1.0]))) == pytest.approx(1.0)
    assert float(cosine_pairs_loss(x, torch.tensor([[0, 1]]), torch.tensor([0.5]))) == pytest.approx(0.25)
    # one same-label pair right (error 0) and three different-label pairs all wrong (error 1 each): each kind weighs
    # half, 0.5, not the plain mean 0.75
    y = torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0], [4.0, 0.0]])
    four = torch.tensor([[0, 1], [0, 2], [1, 2], [2, 3]])
    assert float(cosine_pairs_loss(y, four, torch.tensor([1.0, 0.0, 0.0, 0.0]))) == pytest.approx(0.5)


@pytest.mark.slow
def test_the_head_starts_as_the_nearest_class_centroid(tiny_models):
    from types import SimpleNamespace

    from transformers import AutoModelForSequenceClassification

    from nlptransfer.architectures import final_linear
    from nlptransfer.recipe import load
    from nlptransfer.strategies.contrastive import init_head

    net = AutoModelForSequenceClassification.from_pretrained(tiny_models["bert"], num_labels=3)
    features = torch.nn.functional.normalize(torch.randn(9, 1, net.config.hidden_size), dim=-1)
    labels = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    recipe = load("few-shot-minilm", {"labels.temperature": 0.1})
    init_head(SimpleNamespace(net=net), features, labels, recipe)
    layer = final_linear(net)
    centroids = torch.stack([torch.nn.functional.normalize(features[3 * k:3 * k + 3, 0].mean(0), dim=-1)
                             for k in range(3)])
    torch.testing.assert_close(layer.weight.detach(), centroids / 0.1)
    assert torch.equal(layer.bias.detach(), torch.zeros(3))
    probe = torch.nn.functional.normalize(centroids[1] + 0.1 * torch.randn_like(centroids[1]), dim=-1)
    assert int(layer(probe).argmax()) == int((centroids @ probe).argmax()) == 1


@pytest.mark.slow
def test_the_body_learns_from_pairs_then_the_head_alone_and_the_run_reloads(tiny_models, reviews_csv, tmp_path):
    model = tiny_models["bert"]
    run = nlptransfer.finetune("few-shot-minilm", data=str(reviews_csv), overrides=_few_shot(model, tmp_path / "runs"))
    body = json.loads((run.path / "body" / "metrics.json").read_text())
    assert body["pairs"] == 2 * 4 * 96 and body["same_label_pairs"] == 4 * 96 and body["steps"] == 96
    losses = _pair_losses(run)
    assert len(losses) == 96 and (body["loss"]["first"], body["loss"]["last"]) == (losses[0], losses[-1])
    assert np.mean(losses[-24:]) < 0.8 * np.mean(losses[:24])  # the pair loss falls (one batch's own is noisy)
    assert run.metrics["trainable_parameters"] == 2 * 32 + 2  # the head's output layer alone, on frozen features
    assert run.metrics["steps"] == 5 * 12
    with open(run.path / "predictions.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    clf = nlptransfer.TextClassifier.load(run.path)
    got = clf.predict_proba([r["text"] for r in rows])
    np.testing.assert_allclose(got, [[float(r["prob_negative"]), float(r["prob_positive"])] for r in rows], atol=1e-5)
    from transformers import AutoModel

    base = clf.model.core.base_model.state_dict()
    encoder = AutoModel.from_pretrained(run.path / "body" / "encoder").state_dict()
    assert encoder.keys() <= base.keys()
    assert all(torch.equal(base[k], v) for k, v in encoder.items())  # the head trained; the body stayed as saved
    start = AutoModel.from_pretrained(model).state_dict()
    assert not torch.equal(start["encoder.layer.0.attention.self.query.weight"],
                           encoder["encoder.layer.0.attention.self.query.weight"])  # the pairs moved the body


@pytest.mark.slow
def test_a_lora_body_trains_fewer_weights_and_is_merged_into_the_encoder(tiny_models, reviews_csv, tmp_path):
    model = tiny_models["bert"]
    run = nlptransfer.finetune("few-shot-minilm", data=str(reviews_csv), overrides=_few_shot(
        model, tmp_path / "runs", **{"contrastive.body": "lora", "contrastive.lr": 5e-3}))
    body = json.loads((run.path / "body" / "metrics.json").read_text())
    losses = _pair_losses(run)
    assert body["body"] == "lora" and np.mean(losses[-24:]) < 0.8 * np.mean(losses[:24])
    files = {p.name for p in (run.path / "body" / "encoder").iterdir()}
    assert "model.safetensors" in files and not any(n.startswith("adapter_") for n in files)
    assert (run.path / "model").is_dir() and not (run.path / "adapter").exists()


@pytest.mark.slow
def test_a_run_killed_in_the_body_stage_resumes_exactly(tiny_models, reviews_csv, tmp_path):
    model = tiny_models["bert"]
    values = {**_few_shot(model, tmp_path), "training.checkpoint_every": 10, "contrastive.iterations": 2}
    args = lambda out: ["run", "few-shot-minilm", "--data", str(reviews_csv),  # noqa: E731
                        *[f"{k}={v}" for k, v in {**values, "output.dir": out}.items()]]
    whole = cli(args(tmp_path / "whole"), tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed_at(23, args(tmp_path / "killed"), tmp_path)
    folder, reference = tmp_path / "killed" / "few-shot-minilm", tmp_path / "whole" / "few-shot-minilm"
    assert not (folder / "body" / "metrics.json").exists()
    resumed = cli(["run", "few-shot-minilm", "--resume", str(folder)], tmp_path)
    assert resumed.returncode == 0 and "resumed from step 20" in resumed.stdout, resumed.stderr[-3000:]

    def untimed(path):
        return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
                for line in path.read_text().splitlines()]

    assert untimed(folder / "body" / "train_log.jsonl") == untimed(reference / "body" / "train_log.jsonl")
    assert untimed(folder / "train_log.jsonl") == untimed(reference / "train_log.jsonl")
    test = lambda f: json.loads((f / "metrics.json").read_text())["test"]  # noqa: E731
    assert test(folder) == test(reference)


def test_messages(tiny_models, reviews_csv, tmp_path):
    model = tiny_models["bert"]
    with pytest.raises(RecipeError, match="contrastive.body must be full or an adapter strategy .*got 'head'"):
        nlptransfer.finetune("few-shot-minilm", data=str(reviews_csv), overrides=_few_shot(
            model, tmp_path / "runs", **{"contrastive.body": "head"}))
    with pytest.raises(RecipeError, match=r"strategy contrastive needs pooling: embedding \(got 'mean'\)"):
        nlptransfer.finetune("few-shot-minilm", data=str(reviews_csv), overrides=_few_shot(
            model, tmp_path / "runs", pooling="mean"))
    assert not (tmp_path / "runs").exists()
