"""End to end on tiny random models: every strategy through the Python API and the CLI, the run folder
as a contract, reload with identical predictions, determinism, errors."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import nlptransfer
from nlptransfer.cli import main
from nlptransfer.inference import TextClassifier

from .conftest import captured_messages, quick_overrides, sentiment_rows, write_csv

STRATEGIES = ["head", "top_k", "full", "lora", "ia3"]
RUN_FILES = {"recipe.yaml", "tokenizer", "labels.json", "data_report.json", "metrics.json", "predictions.csv",
             "train_log.jsonl", "checkpoints", "reference.json", "reference.safetensors"}


def _finetune(tiny_models, kind, strategy, data, out, **extra):
    overrides = quick_overrides(tiny_models[kind], out, strategy=strategy, **extra)
    if strategy == "head":
        overrides.setdefault("training.lr", 1e-2)
    if strategy == "top_k":
        overrides.setdefault("top_k", 1)
    return nlptransfer.finetune("sentiment-minilm", data=str(data), overrides=overrides)


def _predictions_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("kind", ["bert", "roberta"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_api_runs_every_strategy_and_reloads_identically(tiny_models, reviews_csv, tmp_path, kind, strategy):
    run = _finetune(tiny_models, kind, strategy, reviews_csv, tmp_path)
    weights = "adapter" if strategy in ("lora", "ia3") else "model"
    assert {p.name for p in run.path.iterdir()} == RUN_FILES | {weights}
    assert (run.path / weights / ("adapter_model.safetensors" if weights == "adapter" else "model.safetensors")).exists()

    m = json.loads((run.path / "metrics.json").read_text())
    assert m == run.metrics
    assert m["strategy"] == strategy and m["test"]["n"] == 12
    assert set(m["test"]) >= {"accuracy", "macro_f1", "per_class", "confusion_matrix", "ece", "ordinal_error"}
    assert sum(map(sum, m["test"]["confusion_matrix"]["matrix"])) == 12
    if strategy == "full":
        assert m["trainable_parameters"] == m["total_parameters"]
    else:
        assert 0 < m["trainable_parameters"] < m["total_parameters"] / 2
    saved = yaml.safe_load((run.path / "recipe.yaml").read_text())
    assert saved["strategy"] == strategy and saved["training"]["seed"] == 42
    assert json.loads((run.path / "labels.json").read_text())["id2label"] == {"0": "negative", "1": "positive"}
    log = [json.loads(line) for line in (run.path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == list(range(1, m["steps"] + 1))
    assert len([r for r in log if "eval" in r]) == 3  # one evaluation per epoch

    rows = _predictions_csv(run.path / "predictions.csv")
    assert len(rows) == 12 and set(rows[0]) == {"text", "gold", "predicted", "prob_negative", "prob_positive"}
    clf = TextClassifier.load(run.path)
    probs = clf.predict_proba([r["text"] for r in rows])
    saved_probs = np.array([[float(r["prob_negative"]), float(r["prob_positive"])] for r in rows])
    np.testing.assert_allclose(probs, saved_probs, atol=2e-6)
    one = clf.predict(rows[0]["text"])
    assert one.label == rows[0]["predicted"] and one.score == pytest.approx(max(probs[0]), abs=1e-6)
    if strategy in ("lora", "ia3"):  # adapters are merged into the base weights for prediction: same outputs
        from peft import PeftModel

        unmerged = TextClassifier.load(run.path, merge=False)
        import peft
        from packaging.version import Version

        # PEFT before 0.22 cannot merge IA3 beside a RoBERTa head (its classifier's dense layer); 0.22 can
        mergeable = not (strategy == "ia3" and kind == "roberta") or Version(peft.__version__) >= Version("0.22")
        assert isinstance(unmerged.model.net, PeftModel) and isinstance(clf.model.net, PeftModel) != mergeable
        np.testing.assert_allclose(unmerged.predict_proba([r["text"] for r in rows]), probs, rtol=0, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["full", "head"])
def test_tiny_model_learns_the_signal(tiny_models, reviews_csv, tmp_path, strategy):
    lr = {"full": 1e-3, "head": 3e-2}[strategy]
    extra = {"pooling": "mean"} if strategy == "head" else {}  # a random frozen [CLS] carries little
    run = _finetune(tiny_models, "bert", strategy, reviews_csv, tmp_path,
                    **{"training.epochs": 15, "training.lr": lr, **extra})
    assert run.metrics["validation"]["accuracy"] >= 0.75, run.metrics["validation"]


@pytest.mark.parametrize("strategy", ["lora", "ia3"])
def test_adapter_weights_train_and_the_loss_falls(tiny_models, reviews_csv, tmp_path, strategy):
    from safetensors.torch import load_file

    run = _finetune(tiny_models, "bert", strategy, reviews_csv, tmp_path,
                    **{"training.epochs": 20, "training.lr": {"lora": 1e-2, "ia3": 3e-2}[strategy], "pooling": "mean"})
    log = [json.loads(line) for line in (run.path / "train_log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    first, last = np.mean(losses[:12]), np.mean(losses[-12:])  # first and last epoch
    # IA3 only rescales a random tiny model's activations, so its fall is small (measured: 0.699 -> 0.672)
    assert last < first - {"lora": 0.1, "ia3": 0.015}[strategy], (first, last)
    saved = load_file(str(run.path / "adapter" / "adapter_model.safetensors"))
    if strategy == "lora":  # lora_B starts at zero: non-zero means the adapter trained
        assert all(v.abs().max() > 0 for k, v in saved.items() if "lora_B" in k)
    else:  # IA3 vectors start at one
        assert any((v - 1).abs().max() > 1e-3 for k, v in saved.items() if "ia3_l" in k)
    assert any("classifier" in k for k in saved)  # the trained head is saved with the adapter


@pytest.mark.parametrize("kind", ["distilbert", "deberta-v2", "electra", "xlm-roberta"])
def test_other_architectures_with_presets(tiny_models, reviews_csv, tmp_path, kind):
    for strategy, extra in (("lora", {}), ("ia3", {}), ("head", {"pooling": "mean"}), ("top_k", {"top_k": 1})):
        run = _finetune(tiny_models, kind, strategy, reviews_csv, tmp_path / strategy,
                        **{"training.epochs": 1, **extra})
        probs = run.classifier().predict_proba(["good movie", "bad movie"])
        assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1)
        assert run.metrics["trainable_parameters"] < run.metrics["total_parameters"]


def test_length_sorted_batched_prediction_equals_the_plain_model_one_text_at_a_time(tiny_models, reviews_csv,
                                                                                   tmp_path):
    import torch

    run = _finetune(tiny_models, "bert", "full", reviews_csv, tmp_path, **{"training.epochs": 1})
    clf = run.classifier()
    texts = [t for t, _ in sentiment_rows(30, seed=9)] + ["ok", "word " * 50]  # short, long, truncated
    fast = clf.predict_proba(texts, batch_size=8)
    with torch.no_grad():
        plain = np.concatenate([torch.softmax(clf.model.net(**clf.tokenizer([t], truncation=True, max_length=clf.max_length,
                                                                           return_tensors="pt")).logits, -1).numpy()
                                for t in texts])
    assert np.abs(plain - plain.mean(0)).max() > 1e-5  # rows differ by 10x the tolerance: order matters
    np.testing.assert_allclose(fast, plain, rtol=0, atol=1e-6)


def test_same_seed_same_metrics(tiny_models, reviews_csv, tmp_path):
    a = _finetune(tiny_models, "bert", "full", reviews_csv, tmp_path / "a")
    b = _finetune(tiny_models, "bert", "full", reviews_csv, tmp_path / "b")
    c = _finetune(tiny_models, "bert", "full", reviews_csv, tmp_path / "c", **{"training.seed": 7})
    assert a.metrics["test"] == b.metrics["test"]
    assert a.metrics["validation"] == b.metrics["validation"]
    assert a.metrics["validation"]["loss"] != c.metrics["validation"]["loss"]


def _step_losses(run) -> list[float]:
    return [r["loss"] for r in map(json.loads, (run.path / "train_log.jsonl").read_text().splitlines()) if "loss" in r]


@pytest.mark.parametrize("pooling", ["mean", "native"])
def test_cached_features_train_exactly_like_the_plain_path(tiny_models, reviews_csv, tmp_path, pooling):
    cached = _finetune(tiny_models, "bert", "head", reviews_csv, tmp_path / "cached", pooling=pooling)
    plain = _finetune(tiny_models, "bert", "head", reviews_csv, tmp_path / "plain", pooling=pooling,
                      **{"training.cache_features": False})
    np.testing.assert_allclose(_step_losses(cached), _step_losses(plain), rtol=0, atol=3e-6)
    assert cached.metrics["test"]["accuracy"] == plain.metrics["test"]["accuracy"]


@pytest.mark.parametrize("kind, pooling", [("bert", "native"), ("bert", "mean"), ("roberta", "native"),
                                           ("distilbert", "native"), ("electra", "native"), ("xlm-roberta", "native")])
def test_cached_layer_states_train_top_k_exactly_like_the_plain_path(tiny_models, reviews_csv, tmp_path, monkeypatch,
                                                                     kind, pooling):
    from nlptransfer.train import cache

    calls = []
    real = cache.cache_states
    monkeypatch.setattr(cache, "cache_states", lambda *a, **k: calls.append(len(a[1])) or real(*a, **k))
    cached = _finetune(tiny_models, kind, "top_k", reviews_csv, tmp_path / "cached", pooling=pooling)
    assert calls == [96, 12]  # the cache was built: train and validation rows
    plain = _finetune(tiny_models, kind, "top_k", reviews_csv, tmp_path / "plain", pooling=pooling,
                      **{"training.cache_features": False})
    assert len(calls) == 2
    # a tiny random model's losses stay near ln 2: the tolerances are far below what skipping a layer changes (~1e-5)
    np.testing.assert_allclose(_step_losses(cached), _step_losses(plain), rtol=0, atol=3e-6)  # logged to 6 decimals
    assert cached.metrics["test"]["accuracy"] == plain.metrics["test"]["accuracy"]
    np.testing.assert_allclose(cached.classifier().predict_proba(["good movie", "a dull film"]),
                               plain.classifier().predict_proba(["good movie", "a dull film"]), rtol=0, atol=1e-6)


def test_top_k_runs_its_frozen_layers_each_step_when_their_output_would_not_fit(tiny_models, reviews_csv, tmp_path,
                                                                                 monkeypatch):
    from nlptransfer.train import cache

    monkeypatch.setattr(cache, "STATES_MEMORY_SHARE", 0.0)
    with captured_messages() as said:
        run = nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv),
                                   overrides=quick_overrides(tiny_models["bert"], tmp_path, strategy="top_k", top_k=1))
    assert any(s.startswith("not caching the frozen layers' output: it would take") for s in said)
    assert len(_step_losses(run)) == run.metrics["steps"]


def test_early_stopping_and_eval_every(tiny_models, reviews_csv, tmp_path):
    run = _finetune(tiny_models, "bert", "full", reviews_csv, tmp_path, **{
        "training.epochs": 20, "training.eval_every": 3, "training.early_stopping": 2, "training.lr": 1e-6})
    log = [json.loads(line) for line in (run.path / "train_log.jsonl").read_text().splitlines()]
    evals = [r for r in log if "eval" in r]
    assert [r["step"] for r in evals] == list(range(3, 3 * len(evals) + 1, 3))
    assert run.metrics["steps"] < 20 * 12  # stopped early
    best = max(e["eval"]["accuracy"] for e in evals)
    assert run.metrics["validation"]["accuracy"] == best


def test_cli_runs_every_strategy_predicts_and_evaluates(tiny_models, reviews_csv, tmp_path, capsys):
    model = tiny_models["bert"]
    unlabeled = write_csv(tmp_path / "new.csv", [(t, "") for t, _ in sentiment_rows(10, seed=5)], header=("text", "x"))
    for strategy in STRATEGIES:
        out = tmp_path / strategy
        code = main(["run", "sentiment-minilm", "--data", str(reviews_csv), f"model={model}", f"strategy={strategy}",
                     f"output.dir={out}", "training.epochs=1", "training.batch_size=8", "training.progress=false"])
        assert code == 0
        run_dir = out / "sentiment-minilm"
        captured = capsys.readouterr()
        printed = captured.out
        assert "trainable of" in printed and f"run folder: {run_dir}" in printed
        # the full fine-tuning recipe's lr 5e-5 kept under another strategy: far from head's and ia3's own
        warned = {"head": "200x below strategy head's usual 0.01", "ia3": "60x below strategy ia3's usual 0.003"}
        assert (warned.get(strategy, "no warning") in captured.out + captured.err) == (strategy in warned)
        assert ("training.lr 5e-05 is" in captured.out + captured.err) == (strategy in warned)
        stored = json.loads((run_dir / "metrics.json").read_text())["warnings"]  # kept with the scores too
        assert [w for w in stored if w.startswith("training.lr")] == (
            [w for w in stored if warned[strategy] in w] if strategy in warned else [])
        assert len([w for w in stored if w.startswith("training.lr")]) == (strategy in warned)
        assert main(["predict", str(run_dir), "--input", str(unlabeled), "--output", str(out / "pred.csv")]) == 0
        rows = _predictions_csv(out / "pred.csv")
        assert len(rows) == 10 and {"text", "predicted", "prob_negative", "prob_positive"} <= set(rows[0])
        expected = TextClassifier.load(run_dir).predict([r["text"] for r in rows])
        assert [r["predicted"] for r in rows] == [p.label for p in expected]
        assert main(["evaluate", str(run_dir), "--data", str(reviews_csv), "--output", str(out / "eval.json")]) == 0
        assert json.loads((out / "eval.json").read_text())["n"] == 120
        assert "accuracy" in capsys.readouterr().out


def test_second_run_gets_a_new_folder(tiny_models, reviews_csv, tmp_path):
    first = _finetune(tiny_models, "bert", "head", reviews_csv, tmp_path, **{"training.epochs": 1})
    second = _finetune(tiny_models, "bert", "head", reviews_csv, tmp_path, **{"training.epochs": 1})
    assert (first.path.name, second.path.name) == ("sentiment-minilm", "sentiment-minilm-2")
    assert (first.path / "metrics.json").exists()


def test_a_second_run_over_the_same_files_reads_its_splits_and_token_ids_from_the_cache(tiny_models, reviews_csv,
                                                                                       tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("NLPTRANSFER_CACHE", str(cache))
    runs, said = [], []
    for extra in ({}, {}, {"data.cache": False}):
        with captured_messages() as lines:
            runs.append(_finetune(tiny_models, "bert", "full", reviews_csv, tmp_path, **{"training.epochs": 1}, **extra))
        said.append([line for line in lines if line.startswith(("tokenized: ", "data: ", "label column", "text col"))])
    rows = len(reviews_csv.read_text().splitlines()) - 1
    first, second, off = said
    assert first[0].startswith("label column: 'label' (inferred: ") and not any(s.startswith("data: ") for s in first)
    assert first[-1].startswith(f"tokenized: train tokenized, validation tokenized, test tokenized ({rows:,} texts, ")
    assert second[0].startswith("data: read, checked and split as by an earlier run with the same files and settings")
    assert second[1:3] == first[:2]  # the inferred columns, said again
    assert second[-1].startswith(f"tokenized: cached ({rows:,} texts, ")
    assert off[-1].endswith("cache off)") and not any(s.startswith("data: ") for s in off)
    assert len(list((cache / "tokens").glob("*.arrow"))) == 3 and len(list((cache / "splits").iterdir())) == 1
    reports = [(run.path / "data_report.json").read_text() for run in runs]
    assert reports[0] == reports[1] == reports[2]
    assert _step_losses(runs[0]) == _step_losses(runs[1]) == _step_losses(runs[2])  # cached trains as read
    assert _predictions_csv(runs[0].path / "predictions.csv") == _predictions_csv(runs[1].path / "predictions.csv")
    capsys.readouterr()  # what the runs printed (the command line's logging, when a test before set it up)
    main(["cache"])
    shown = capsys.readouterr().out
    assert shown.startswith(f"cache: {cache} (") and "  splits        1 entries" in shown and "  tokens        3 entries" in shown
    assert main(["cache", "--clear"]) == 0 and not (cache / "splits").exists() and not (cache / "tokens").exists()
    changed = tmp_path / "reviews.csv"  # one more row: another file, read again
    changed.write_text(reviews_csv.read_text() + "a good film indeed,positive\n", encoding="utf-8")
    with captured_messages() as lines:
        _finetune(tiny_models, "bert", "full", changed, tmp_path, **{"training.epochs": 1})
    assert not any(line.startswith("data: ") for line in lines) and len(list((cache / "splits").iterdir())) == 1


@pytest.mark.parametrize("args, message", [
    (["run", "sentiment-minilm", "--data", "missing.csv"], "missing.csv"),
    (["run", "nope", "--data", "x.csv"], "no recipe named 'nope'"),
    (["run", "sentiment-minilm", "--data", "x.csv", "training.lrr=1"], "unknown key 'training.lrr'"),
    (["run", "sentiment-minilm", "--data", "{data}", "model=/no/such/model"], "neither a known alias"),
    (["run", "sentiment-minilm", "--data", "{data}", "model=someone/not-a-model"], "could not fetch model 'someone/not-a-model'"),
    (["predict", "/no/run", "--input", "x.csv", "--output", "y.csv"], "run folder not found: /no/run"),
    (["run", "sentiment-minilm", "--data", "{data}", "data.label_column=lable", "data.text_columns=[txt]"],
     "2 problems with the data:\n  - train file {data}: data.text_columns: column 'txt' not found; did you mean 'text'?"),
])
def test_cli_errors_are_one_message_and_exit_2(args, message, reviews_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code = main([a.replace("{data}", str(reviews_csv)) for a in args])
    err = capsys.readouterr().err
    message = message.replace("{data}", str(reviews_csv))
    assert code == 2
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()  # bad input leaves no run folder behind


def test_model_not_found_lists_what_is_available_offline(tiny_models, reviews_csv, tmp_path):
    from nlptransfer.errors import ModelNotFound

    with pytest.raises(ModelNotFound) as e:
        nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv),
                             overrides={"model": "someone/not-a-model", "output.dir": str(tmp_path)})
    assert "offline" in str(e.value) and "minilm (embedded all-MiniLM-L6-v2)" in str(e.value)


def test_jsonl_joined_columns_integer_labels_truncation_and_accumulation(tiny_models, tmp_path):
    rows = sentiment_rows(90, seed=3)
    path = tmp_path / "reviews.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i, (text, label) in enumerate(rows):
            body = text + (" really" * 80 if i % 10 == 0 else "")  # every tenth text is longer than 32 tokens
            f.write(json.dumps({"title": "the film", "body": body, "stars": 1 if label == "positive" else 0}) + "\n")
    code = main(["run", "sentiment-minilm", "--data", str(path), f"model={tiny_models['bert']}", f"output.dir={tmp_path}",
                 "data.text_columns=[title,body]", "data.label_column=stars", "data.max_length=32",
                 "training.epochs=2", "training.batch_size=4", "training.grad_accum=3", "training.class_weights=true",
                 "training.progress=false"])
    assert code == 0
    run = tmp_path / "sentiment-minilm"
    assert json.loads((run / "labels.json").read_text())["id2label"] == {"0": "0", "1": "1"}
    report = json.loads((run / "data_report.json").read_text())
    assert report["rows_used"] == {"train": 72, "validation": 9, "test": 9}
    assert sum(report["truncated"].values()) == 9 and report["truncated"]["train"] >= 5
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 2 * 6  # 18 batches of 4 per epoch, one update per 3 batches
    assert metrics["examples_seen"] == 2 * 72
    preds = _predictions_csv(run / "predictions.csv")
    assert preds[0]["text"].startswith("the film\n") and set(preds[0]) >= {"prob_0", "prob_1"}


def test_a_dataset_dict_a_saved_data_set_folder_and_an_offline_hub_id(tiny_models, tmp_path, monkeypatch, capsys):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("NLPTRANSFER_CACHE", str(tmp_path / "cache"))
    rows = sentiment_rows(90, seed=3)
    features = datasets.Features({"text": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["negative", "positive"])})

    def part(chunk):
        return datasets.Dataset.from_dict({"text": [t for t, _ in chunk], "label": [y for _, y in chunk]},
                                          features=features)

    data = datasets.DatasetDict({"train": part(rows[:60]), "dev": part(rows[60:75]), "test": part(rows[75:]),
                                 "unsupervised": part(rows[:5])})
    with captured_messages() as said:
        run = nlptransfer.finetune("sentiment-minilm", data=data, overrides=quick_overrides(
            tiny_models["bert"], tmp_path / "a", strategy="full", **{"training.epochs": 1}))
    assert "data set splits left out (only train, validation and test are used): unsupervised" in said
    report = json.loads((run.path / "data_report.json").read_text())
    assert report["rows_used"] == {"train": 60, "validation": 15, "test": 15}
    assert {Path(report["files"][s]["path"]).name for s in ("train", "validation", "test")} == {
        "train.parquet", "validation.parquet", "test.parquet"}
    assert sorted(report["class_balance"]["train"]) == ["negative", "positive"]  # the ClassLabel's names, not 0 / 1
    assert set(run.recipe.data.train.split("/")[:-1]) >= {"cache", "datasets"}

    data.save_to_disk(str(tmp_path / "saved"))
    assert main(["run", "sentiment-minilm", "--data", str(tmp_path / "saved"),
                 *[f"{k}={v}" for k, v in quick_overrides(tiny_models["bert"], tmp_path / "b", strategy="full",
                                                          **{"training.epochs": 1}).items()]]) == 0
    again = json.loads((tmp_path / "b" / "sentiment-minilm" / "metrics.json").read_text())
    assert again["test"]["accuracy"] == run.metrics["test"]["accuracy"]  # the same rows, the same seed
    capsys.readouterr()
    assert main(["check", "sentiment-minilm", "--data", "hf://datasets/nobody/nothing:plain"]) == 2
    err = capsys.readouterr().err
    assert "could not load the hub data set 'nobody/nothing' (config 'plain') with datasets.load_dataset" in err
    assert "pass the folder Dataset.save_to_disk wrote" in err and len(err.strip().splitlines()) == 1


def test_a_run_is_named_stages_in_order_and_a_failure_after_the_folder_removes_it_when_nothing_resumes():
    from nlptransfer.pipeline import STAGES

    assert [s.name for s in STAGES] == ["resume", "data", "model", "folder", "encoder", "fit", "thresholds", "test",
                                        "save"]
    assert [s.name for s in STAGES if s.removes_half_made] == ["folder", "encoder", "fit", "thresholds", "test"]


def test_the_loop_settings_come_from_the_recipe_and_adaptation_adds_its_term_to_a_copy():
    from nlptransfer.adapt import loop_settings
    from nlptransfer.recipe import load
    from nlptransfer.train.settings import LoopSettings

    recipe = load("sentiment-minilm", {"training.epochs": 2, "training.batch_size": 8, "training.eval_every": 5,
                                       "training.metric": "macro_f1", "adapt.method": "mmd", "adapt.ramp": True,
                                       "adapt.weight": 0.25})
    settings = LoopSettings.from_recipe(recipe)
    assert (settings.epochs, settings.batch_size, settings.eval_every, settings.metric) == (2, 8, 5, "macro_f1")
    assert (settings.objectives, settings.ramped, settings.seed) == ({"cross_entropy": 1.0}, "mmd", 42)
    assert loop_settings(recipe, settings) is settings  # no adapt.target: nothing to add
    adapted = loop_settings(recipe.replace(**{"adapt.target": "target.csv"}), settings)
    assert adapted.objectives == {"cross_entropy": 1.0, "mmd": 0.25} and settings.objectives == {"cross_entropy": 1.0}


def test_an_encoder_stage_name_is_registered_once():
    import nlptransfer.fewshot  # noqa: F401  registers "pairs"
    from nlptransfer.errors import RecipeError, RegistryError
    from nlptransfer.train.encoder_stage import get_encoder_stage, register_encoder_stage

    assert get_encoder_stage("pairs") is nlptransfer.fewshot.body_stage
    with pytest.raises(RegistryError, match=r"encoder stage 'pairs' is registered twice: by nlptransfer\.fewshot\."
                                            r"body_stage and again by tests\.test_pipeline\..*<lambda>"):
        register_encoder_stage("pairs", lambda ctx: None)
    with pytest.raises(RecipeError, match="no encoder stage 'nope' is registered \\(known: pairs"):
        get_encoder_stage("nope")
