"""strategy zero_shot and pooling embedding on tiny random models: probabilities are softmax(cosine / temperature)
against the label descriptions, computed independently here; no label column needed; self-training; messages."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
import yaml

import nlptransfer
from nlptransfer.errors import DataError, RecipeError

from .conftest import quick_overrides, sentiment_rows, write_csv

TEXTS = ["good great lovely", "bad awful terrible", "the movie was good", "the phone was bad", "it was very boring",
         "a really superb film", "this product is broken", "quite a wonderful story"]
DESCRIBED = {"negative": "bad awful terrible", "positive": "good great lovely"}


def _zero_shot(model, out, **extra):
    return {**quick_overrides(model, out), "strategy": "zero_shot", "pooling": "embedding", **extra}


def _texts_csv(path, texts=TEXTS, product=True):
    """Texts without labels, beside a category column (not labels: none of its values is a described label)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review", "product"][:1 + product])
        w.writerows([t, ("phone", "book")[i % 2]][:1 + product] for i, t in enumerate(texts))
    return path


def _embed(model_path, texts, max_length=32, tokenizer=None) -> np.ndarray:
    """Masked-mean, L2-normalised last hidden states from plain transformers (the reference, not nlptransfer)."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer or model_path)
    model = AutoModel.from_pretrained(model_path).eval()
    with torch.no_grad():
        batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        mean = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(mean, dim=-1).numpy()


def _read_predictions(run):
    with open(run / "predictions.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_a_file_without_labels_gets_softmax_cosine_over_the_descriptions(tiny_models, tmp_path):
    model = tiny_models["bert"]
    data = _texts_csv(tmp_path / "texts.csv")
    run = nlptransfer.finetune("zero-shot-minilm", data=str(data), overrides=_zero_shot(
        model, tmp_path / "runs", **{"labels.descriptions": DESCRIBED, "labels.temperature": 0.1}))
    names = json.loads((run.path / "labels.json").read_text())["id2label"]
    assert [names["0"], names["1"]] == ["negative", "positive"]  # the descriptions' order
    texts, labels = _embed(model, TEXTS), _embed(model, list(DESCRIBED.values()))
    expected = torch.softmax(torch.from_numpy(texts @ labels.T / 0.1), 1).numpy()
    rows = _read_predictions(run.path)
    assert [r["text"] for r in rows] == TEXTS and "gold" not in rows[0]
    got = np.array([[float(r["prob_negative"]), float(r["prob_positive"])] for r in rows])
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert [r["predicted"] for r in rows][:2] == ["positive", "negative"]  # a text equal to a description: cosine 1
    assert run.metrics["steps"] == 0 and run.metrics["texts"] == len(TEXTS) and "test" not in run.metrics
    assert run.metrics["self_training"] is None
    reloaded = nlptransfer.TextClassifier.load(run.path).predict_proba(TEXTS)
    np.testing.assert_allclose(reloaded, expected, atol=1e-5)


def test_changing_a_description_changes_the_prediction_as_expected(tiny_models, tmp_path):
    model, data = tiny_models["bert"], _texts_csv(tmp_path / "texts.csv")

    def predicted(descriptions, name):
        run = nlptransfer.finetune("zero-shot-minilm", data=str(data), overrides=_zero_shot(
            model, tmp_path / "runs", **{"labels.descriptions": descriptions, "output.name": name}))
        return [r["predicted"] for r in _read_predictions(run.path)]

    first = predicted(DESCRIBED, "as-given")
    swapped = predicted({"negative": DESCRIBED["positive"], "positive": DESCRIBED["negative"]}, "swapped")
    assert first[:2] == ["positive", "negative"] and swapped[:2] == ["negative", "positive"]
    assert swapped == [{"negative": "positive", "positive": "negative"}[p] for p in first]  # two labels: mirrored
    # a list of descriptions: their embeddings averaged, so the text equal to one of them is still nearest to it
    listed = predicted({"negative": ["bad awful terrible", "bad awful terrible"], "positive": [DESCRIBED["positive"]]},
                       "listed")
    assert listed == first


def test_a_labelled_file_is_scored_but_never_trained_on(tiny_models, tmp_path, reviews_csv):
    model = tiny_models["bert"]
    run = nlptransfer.finetune("zero-shot-minilm", data=str(reviews_csv), overrides=_zero_shot(
        model, tmp_path / "runs", **{"labels.descriptions": {"positive": "good great excellent"}}))
    assert run.metrics["steps"] == 0 and run.metrics["test"]["n"] == 12 and run.metrics["validation"]["n"] == 12
    clf = run.classifier()
    head = clf.model.net.classifier.weight.detach().numpy()
    expected = _embed(model, ["negative", "good great excellent"]) / 0.05  # "negative" undescribed: its name
    np.testing.assert_allclose(head, expected, atol=1e-5)
    rows = _read_predictions(run.path)
    accuracy = np.mean([r["gold"] == r["predicted"] for r in rows])
    assert abs(accuracy - run.metrics["test"]["accuracy"]) < 1e-9


def test_self_training_fits_the_head_on_balanced_confident_pseudo_labels(tiny_models, tmp_path):
    model = tiny_models["bert"]
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(200, seed=3))
    over = _zero_shot(model, tmp_path / "runs", **{
        "labels.descriptions": {"negative": "bad awful terrible poor", "positive": "good great excellent lovely"},
        "labels.self_train": True, "labels.confidence": 0.5, "training.epochs": 5, "training.lr": 0.05})
    run = nlptransfer.finetune("zero-shot-minilm", data=str(data), overrides=over)
    pseudo = run.metrics["self_training"]
    assert pseudo["texts"] == 160 and pseudo["per_label"]["negative"] == pseudo["per_label"]["positive"] > 0
    assert pseudo["used"] == 2 * pseudo["per_label"]["negative"]
    assert run.metrics["steps"] == 5 * -(-pseudo["used"] // 8)  # trained on the pseudo-labelled rows alone
    assert run.metrics["best_step"] == 0  # no validation split chose: labels never train or choose
    zero = nlptransfer.finetune("zero-shot-minilm", data=str(data), overrides={**over, "labels.self_train": False})
    trained = run.classifier().model.net.classifier.weight.detach()
    assert not torch.allclose(trained, zero.classifier().model.net.classifier.weight.detach())
    rows = _read_predictions(run.path)
    got = np.array([[float(r["prob_negative"]), float(r["prob_positive"])] for r in rows])
    np.testing.assert_allclose(run.classifier().predict_proba([r["text"] for r in rows]), got, atol=1e-5)


def test_self_training_that_finds_no_confident_text_of_a_label_says_what_to_change(tiny_models, tmp_path,
                                                                                     reviews_csv):
    over = _zero_shot(tiny_models["bert"], tmp_path / "runs", **{"labels.self_train": True,
                                                                 "labels.confidence": 0.999})
    with pytest.raises(DataError, match=r"no training text is predicted .* probability >= 0.999 .*labels.confidence"):
        nlptransfer.finetune("zero-shot-minilm", data=str(reviews_csv), overrides=over)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_messages_for_what_zero_shot_cannot_do(tiny_models, tmp_path, reviews_csv):
    model, data = tiny_models["bert"], _texts_csv(tmp_path / "texts.csv", product=False)
    with pytest.raises(DataError, match=r"has no label column, so the labels must be named.*labels.descriptions"):
        nlptransfer.finetune("zero-shot-minilm", data=str(data), overrides=_zero_shot(model, tmp_path / "runs"))
    with pytest.raises(RecipeError, match=r"strategy zero_shot needs pooling: embedding \(got 'native'\)"):
        nlptransfer.finetune("zero-shot-minilm", data=str(data), overrides={
            **_zero_shot(model, tmp_path / "runs"), "pooling": "native"})
    with pytest.raises(RecipeError, match=r"labels.descriptions names 'positve', which the data's labels "
                                          r"\(negative, positive\) lack"):
        nlptransfer.finetune("zero-shot-minilm", data=str(reviews_csv), overrides=_zero_shot(
            model, tmp_path / "runs", **{"labels.descriptions": {"positve": "good"}}))
    with pytest.raises(RecipeError, match=r"labels.descriptions.positive must be a text or a list of texts"):
        nlptransfer.finetune("zero-shot-minilm", data=str(reviews_csv), overrides=_zero_shot(
            model, tmp_path / "runs", **{"labels.descriptions": {"positive": 3}}))
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("kind", ["bert", "roberta", "distilbert", "deberta-v2", "electra", "xlm-roberta"])
def test_embedding_pooling_is_the_output_layer_on_the_normalised_mean(tiny_models, tmp_path, reviews_csv, kind):
    """Every family: what the run predicts is the head's output layer on the normalised mean of the token states,
    and the parts of the head it does not read (pooler, dense, pre-classifier) are frozen (no unused trained weight)."""
    from nlptransfer import models
    from nlptransfer.architectures import final_linear
    from nlptransfer.data import LabelMap
    from nlptransfer.recipe import load
    from nlptransfer.strategies import get_strategy

    model = tiny_models[kind]
    run = nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv), overrides={
        **quick_overrides(model, tmp_path / "runs"), "pooling": "embedding", "training.epochs": 1})
    clf = run.classifier()
    layer = final_linear(clf.model.net)
    texts = ["good great lovely", "the phone was bad"]
    embedded = torch.from_numpy(_embed(run.path / "model", texts, tokenizer=model))
    reference = embedded @ layer.weight.detach().T + layer.bias.detach()
    np.testing.assert_allclose(clf.predict_proba(texts), torch.softmax(reference, 1).numpy(), atol=1e-5)

    recipe = load("sentiment-minilm", {"model": str(model), "pooling": "embedding"})
    net, new = models.load_classifier(models.resolve(str(model)), LabelMap(["negative", "positive"]))
    prepared = get_strategy("full").prepare(net, recipe, new)
    trained = {n for n, p in net.named_parameters() if p.requires_grad}
    output = final_linear(net)
    in_head = {n for n, _ in net.named_parameters() if n.split(".")[0] in ("classifier", "pre_classifier", "pooler")}
    assert in_head & trained == {n for n, p in net.named_parameters() if p is output.weight or p is output.bias}
    assert not any(".pooler." in n for n in trained) and prepared.trainable == sum(
        p.numel() for p in net.parameters() if p.requires_grad)


def test_cli_run_on_a_file_without_labels_and_the_report_refusal(tiny_models, tmp_path, capsys):
    from nlptransfer.cli import main

    data = _texts_csv(tmp_path / "texts.csv")
    common = ["--data", str(data), f"model={tiny_models['bert']}", f"output.dir={tmp_path / 'runs'}",
              "training.progress=false", "data.max_length=32",
              "labels.descriptions={negative: bad awful terrible, positive: good great lovely}"]
    code = main(["run", "zero-shot-minilm", "--report", *common])
    err = capsys.readouterr().err
    assert code == 2 and "the report compares test scores against labels, and the data has no label column" in err
    assert not (tmp_path / "runs").exists()
    assert main(["run", "zero-shot-minilm", *common]) == 0
    printed = capsys.readouterr().out
    assert f"{len(TEXTS)} texts without labels: their predictions are in" in printed
    assert (tmp_path / "runs" / "zero-shot-minilm" / "predictions.csv").exists()


@pytest.mark.slow
def test_report_and_compare_treat_zero_shot_like_any_strategy(tiny_models, reviews_csv, tmp_path, capsys):
    from nlptransfer.cli import main

    common = ["--data", str(reviews_csv), f"model={tiny_models['bert']}", "training.epochs=1", "training.batch_size=8",
              "training.progress=false", "data.max_length=32", "labels.descriptions={positive: good great excellent}"]
    assert main(["run", "zero-shot-minilm", "--report", f"output.dir={tmp_path / 'runs'}",
                 "report.learning_curve=[0.5, 1.0]", "report.latency_texts=5", *common]) == 0
    report = json.loads((tmp_path / "runs" / "zero-shot-minilm" / "report" / "report.json").read_text())
    metrics = json.loads((tmp_path / "runs" / "zero-shot-minilm" / "metrics.json").read_text())
    assert report["strategy"] == "zero_shot" and report["final"]["transfer"]["accuracy"] == metrics["test"]["accuracy"]
    assert report["verdict"] in ("positive transfer", "negative transfer", "no clear difference")
    assert report["knowledge_alone"]["label_texts"] == {"negative": "negative", "positive": "good great excellent"}
    capsys.readouterr()
    assert main(["compare", "--strategies", "head,zero_shot", "sentiment-minilm", f"output.dir={tmp_path}",
                 *common]) == 0
    folder = tmp_path / "compare-sentiment-minilm"
    saved = yaml.safe_load((folder / "zero_shot" / "recipe.yaml").read_text())
    assert saved["pooling"] == "embedding" and saved["strategy"] == "zero_shot"
    rows = json.loads((folder / "compare.json").read_text())["rows"]
    assert [r["name"] for r in rows] == ["head", "zero_shot", "tf-idf baseline"]
    assert rows[1]["accuracy"] == json.loads((folder / "zero_shot" / "metrics.json").read_text())["test"]["accuracy"]


@pytest.mark.slow
def test_a_zero_shot_run_exports_to_onnx_and_pushes_like_any_run(tiny_models, tmp_path):
    """The ONNX export and a folder-hub push both check themselves against the run's predictions.csv (here the texts
    of a file without labels): they pass, and the pulled classifier predicts as the run does."""
    from nlptransfer.publish.export import export_onnx
    from nlptransfer.publish.push import push

    data = _texts_csv(tmp_path / "texts.csv")
    run = nlptransfer.finetune("zero-shot-minilm", data=str(data), overrides=_zero_shot(
        tiny_models["bert"], tmp_path / "runs", **{"labels.descriptions": DESCRIBED}))
    check = export_onnx(run.path)
    assert check["onnx"]["max_abs_prob_diff"] <= 1e-4 and check["onnx"]["label_agreement"] == 1.0
    (tmp_path / "hub").mkdir()
    push(run.path, "team/zero-shot", hub=tmp_path / "hub")
    pulled = nlptransfer.TextClassifier.from_pretrained("team/zero-shot", hub=tmp_path / "hub")
    np.testing.assert_allclose(pulled.predict_proba(TEXTS), run.classifier().predict_proba(TEXTS), atol=1e-5)
    card = (tmp_path / "hub" / "team" / "zero-shot").rglob("README.md")
    assert any("normalised mean (sentence embedding)" in p.read_text() for p in card)


def test_a_model_that_predicts_one_class_for_every_row_is_said_to_in_the_run_and_in_evaluate(tiny_models, tmp_path,
                                                                                             reviews_csv, capsys):
    """Two labels with the same description: equal probabilities, so the first label for every row."""
    from nlptransfer.cli import main

    from .conftest import captured_messages

    with captured_messages() as lines:
        same = {"labels.descriptions": {"negative": "it was", "positive": "it was"}}
        run = nlptransfer.finetune("zero-shot-minilm", data=str(reviews_csv),
                                   overrides=_zero_shot(tiny_models["bert"], tmp_path / "runs", **same))
    test = run.metrics["test"]
    assert test["confusion_matrix"]["matrix"][1][1] == 0 and test["n"] == 12
    said = (f"test: the model predicts 'negative' for all 12 rows: its accuracy {test['accuracy']:.4f} is that class's "
            f"share, nothing learnt from the texts")
    assert said in "\n".join(lines)
    stored = json.loads((run.path / "metrics.json").read_text())["warnings"]  # and kept with the scores
    assert len(stored) == 1 and stored[0].startswith(said) and stored == run.metrics["warnings"]
    capsys.readouterr()
    assert main(["evaluate", str(run.path), "--data", str(reviews_csv), "--output", str(tmp_path / "eval.json")]) == 0
    err = capsys.readouterr().err
    assert "warning: the model predicts 'negative' for all 120 rows: its accuracy 0.5000 is that class's share" in err
    evaluated = json.loads((tmp_path / "eval.json").read_text())["warnings"]
    assert len(evaluated) == 1 and evaluated[0].startswith("the model predicts 'negative' for all 120 rows")
