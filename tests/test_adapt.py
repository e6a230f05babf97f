"""Domain adaptation (recipe `adapt:`) on tiny models: the multi-kernel MMD term, masked-LM pretraining into a
reusable encoder (`nlptransfer adapt`), the UDALM mlm+ce term, the target stream inside the one loop (trained, logged,
resumed exactly, two processes as one), the report's and compare's adaptation parts, and clear refusals. The
amazon-domains benchmark is benchmarks/adapt.py."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import nlptransfer
from nlptransfer.errors import NlpTransferError
from nlptransfer.objectives.mmd import mk_mmd
from nlptransfer.recipe import from_dict
from tests.helpers import cli, killed_at, run_args, without_timings

from .conftest import quick_overrides, sentiment_rows, write_csv


def test_mmd_is_zero_for_identical_batches_and_grows_with_the_shift():
    torch.manual_seed(0)
    source = torch.randn(24, 16)
    assert float(mk_mmd(source, source.clone())) == pytest.approx(0.0, abs=1e-6)
    shifts = [float(mk_mmd(source, torch.randn(24, 16) + shift)) for shift in (0.0, 0.5, 1.0, 3.0)]
    assert shifts == sorted(shifts) and shifts[0] < 0.1 < shifts[-1]
    # invariant to a common scale (the median heuristic follows the data)
    assert float(mk_mmd(10 * source, 10 * (source + 1))) == pytest.approx(float(mk_mmd(source, source + 1)), rel=1e-4)


@pytest.fixture()
def target_csv(tmp_path):
    """Unlabelled texts of another 'domain': the same words with a marker word the source never shows."""
    return write_csv(tmp_path / "target.csv", [(f"plot {t} plot", "") for t, _ in sentiment_rows(40, seed=9)],
                     header=("review", "x"))


def _log(run):
    return [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines() if '"step"' in line]


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["top_k", "lora"])
def test_an_adapted_run_trains_on_both_streams_and_logs_the_mmd_term(tiny_models, reviews_csv, target_csv, tmp_path,
                                                                      strategy):
    run = nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv), overrides=quick_overrides(
        tiny_models["bert"], tmp_path / "out", strategy=strategy, **{"adapt.target": str(target_csv),
                                                                     "adapt.weight": 0.5, "training.epochs": 2}))
    steps = [r for r in _log(run.path) if "terms" in r]
    assert steps and all(set(r["terms"]) == {"cross_entropy", "mmd"} for r in steps)
    assert all(r["terms"]["mmd"] >= 0 for r in steps)
    for r in steps:  # the logged loss is cross-entropy + weight x mmd
        assert r["loss"] == pytest.approx(r["terms"]["cross_entropy"] + 0.5 * r["terms"]["mmd"], abs=2e-6)
    saved = (run.path / "recipe.yaml").read_text()
    assert "target: " + str(target_csv) in saved and "mmd" not in saved.split("objectives:")[1].split("\n")[1]


def test_the_mmd_gradient_reaches_exactly_the_parameters_the_strategy_trains(tiny_models, target_csv):
    from nlptransfer import models
    from nlptransfer.data import LabelMap
    from nlptransfer.objectives.mmd import mk_mmd
    from nlptransfer.strategies import get_strategy

    recipe = from_dict({"model": str(tiny_models["bert"]), "strategy": "top_k", "top_k": 1})
    base = models.resolve(recipe.model)
    net, new = models.load_classifier(base, LabelMap(("negative", "positive")))
    prepared = get_strategy("top_k").prepare(net, recipe, new)
    model = prepared.model.train()
    torch.manual_seed(0)
    ids, mask = torch.randint(5, 30, (6, 9)), torch.ones(6, 9, dtype=torch.long)
    source = model(input_ids=ids, attention_mask=mask, return_features=True)["features"]
    target = model(input_ids=ids.flip(1), attention_mask=mask, return_features=True)["features"]
    mk_mmd(source, target).backward()
    moved = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert moved and moved <= trainable
    assert any(".layer.2." in n for n in moved)  # the top encoder layer moves
    assert not any(".layer.0." in n or "embeddings" in n for n in moved)  # frozen layers do not


@pytest.mark.slow
def test_a_resumed_adapted_run_ends_where_an_uninterrupted_one_does(tiny_models, reviews_csv, target_csv, tmp_path):
    """SIGKILL two steps after a checkpoint, resume: the same target batches come back (the stream is a pure
    function of seed, epoch and position), so the log and metrics equal an uninterrupted run's."""
    model = tiny_models["bert"]
    extra = {"strategy": "full", "training.checkpoint_every": 5, "adapt.target": target_csv}
    whole = cli(run_args(model, reviews_csv, tmp_path / "whole", **extra), tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    out = tmp_path / "killed"
    killed_at(17, run_args(model, reviews_csv, out, **extra), tmp_path)
    folder = out / "sentiment-minilm"
    resumed = cli(["run", "sentiment-minilm", "--resume", str(folder)], tmp_path)
    assert resumed.returncode == 0 and "resumed from step 15" in resumed.stdout, resumed.stderr[-3000:]
    a, b = _log(tmp_path / "whole" / "sentiment-minilm"), _log(folder)
    untimed = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]  # noqa: E731
    assert untimed(a) == untimed(b) and all("mmd" in r["terms"] for r in b if "terms" in r)
    assert without_timings(json.loads((folder / "metrics.json").read_text())) == without_timings(
        json.loads((tmp_path / "whole" / "sentiment-minilm" / "metrics.json").read_text()))


def test_adapting_refuses_a_head_strategy_and_a_target_file_without_texts(tiny_models, reviews_csv, tmp_path):
    for method in ("mmd", "mlm+ce"):
        with pytest.raises(NlpTransferError, match="strategy 'head' trains only the classifier.*or adapt.method mlm"):
            from_dict({"strategy": "head", "adapt": {"target": "t.csv", "method": method}})
    assert from_dict({"strategy": "head", "adapt": {"target": "t.csv", "method": "mlm"}}).adapt.method == "mlm"
    with pytest.raises(NlpTransferError, match="adapt.method must be one of mmd, mlm, mlm\\+ce, got 'dann'"):
        from_dict({"adapt": {"target": "t.csv", "method": "dann"}})
    with pytest.raises(NlpTransferError, match="training.objectives names mlm and adapt.method mlm\\+ce adds it too"):
        from_dict({"adapt": {"target": "t.csv", "method": "mlm+ce"},
                   "training": {"objectives": {"cross_entropy": 1.0, "mlm": 0.5}}})
    with pytest.raises(NlpTransferError, match="adapt.mask_rate must be in \\(0, 1\\), got 1.5"):
        from_dict({"adapt": {"target": "t.csv", "method": "mlm", "mask_rate": 1.5}})
    empty = write_csv(tmp_path / "empty.csv", [("", "")] * 3, header=("text", "x"))
    out = tmp_path / "out"
    with pytest.raises(NlpTransferError, match="non-empty texts"):
        nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv), overrides=quick_overrides(
            tiny_models["bert"], out, strategy="full", **{"adapt.target": str(empty)}))
    assert not out.exists() or not any(out.iterdir())  # no half-made run folder


@pytest.mark.slow
def test_the_target_test_file_is_scored_after_training_and_never_trains(tiny_models, reviews_csv, target_csv,
                                                                       tmp_path):
    labelled = write_csv(tmp_path / "target_test.csv", [(f"plot {t} plot", y) for t, y in sentiment_rows(30, seed=21)])
    overrides = quick_overrides(tiny_models["bert"], tmp_path / "out", strategy="full",
                                **{"adapt.target": str(target_csv), "adapt.target_test": str(labelled)})
    run = nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv), overrides=overrides)
    saved = json.loads((run.path / "metrics.json").read_text())
    scored = nlptransfer.evaluate_run(run.path, str(labelled))
    assert saved["target_test"]["file"] == str(labelled) and saved == run.metrics
    assert saved["target_test"]["accuracy"] == scored["accuracy"] and saved["target_test"]["n"] == 30
    assert len(run.splits.train.texts) < 120 and not any("plot" in t for t in run.splits.train.texts)  # source only
    missing = quick_overrides(tiny_models["bert"], tmp_path / "out2", strategy="full",
                              **{"adapt.target": str(target_csv), "adapt.target_test": str(tmp_path / "nope.csv")})
    with pytest.raises(NlpTransferError, match="adapt.target_test .*nope.csv not found"):
        nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv), overrides=missing)
    assert not (tmp_path / "out2").exists() or not any((tmp_path / "out2").iterdir())


def test_masking_is_bert_style_seeded_per_text_and_never_touches_padding_or_special_tokens(tiny_models):
    from transformers import AutoTokenizer

    from nlptransfer.batching import MaskingCollator

    tokenizer = AutoTokenizer.from_pretrained(tiny_models["bert"])
    texts = [t for t, _ in sentiment_rows(200, seed=3)]
    items = [{"input_ids": tokenizer(t)["input_ids"]} for t in texts]
    collate = MaskingCollator(tokenizer, 0.15, seed=7)
    batch = collate(items)
    again = collate(items)
    assert all(torch.equal(batch[k], again[k]) for k in batch)  # a pure function of the texts, seed and epoch
    assert not torch.equal(MaskingCollator(tokenizer, 0.15, seed=8)(items)["mlm_mask"], batch["mlm_mask"])
    collate.epoch = 1
    assert not torch.equal(collate(items)["mlm_mask"], batch["mlm_mask"])  # each epoch masks anew
    collate.epoch = 0
    half = collate(items[:7])  # a text's masks do not depend on the batch it is in (N processes mask as one)
    width = half["input_ids"].shape[1]
    assert torch.equal(half["mlm_mask"], batch["mlm_mask"][:7, :width])
    assert torch.equal(half["input_ids"], batch["input_ids"][:7, :width])
    original = collate.pad(items)["input_ids"]
    chosen = batch["mlm_mask"]
    special = torch.isin(original, torch.tensor(tokenizer.all_special_ids))
    real = batch["attention_mask"].bool() & ~special
    assert not (chosen & ~real).any()  # never padding, [CLS] or [SEP]
    assert abs(chosen.sum().item() / real.sum().item() - 0.15) < 0.03
    assert torch.equal(batch["labels"][chosen], original[chosen]) and (batch["labels"][~chosen] == -100).all()
    assert torch.equal(batch["input_ids"][~chosen], original[~chosen])
    to_mask = (batch["input_ids"][chosen] == tokenizer.mask_token_id).float().mean().item()
    kept = (batch["input_ids"][chosen] == original[chosen]).float().mean().item()
    assert 0.72 < to_mask < 0.88 and 0.04 < kept < 0.2  # 80% [MASK], 10% random, 10% as they were


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(next(folder.glob("*.safetensors"))))


@pytest.mark.slow
def test_nlptransfer_adapt_saves_an_encoder_that_learned_the_target_and_that_a_recipe_then_loads(
        tiny_models, reviews_csv, target_csv, tmp_path):
    out = tmp_path / "enc"
    done = cli(["adapt", "sentiment-minilm", "--target", str(target_csv), "--output", str(out),
                f"model={tiny_models['bert']}", "data.max_length=32", "training.batch_size=8", "adapt.epochs=12",
                "adapt.lr=0.003", "training.progress=false"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = out / "sentiment-minilm-encoder"
    assert f"model={folder / 'encoder'}" in done.stdout
    metrics = json.loads((folder / "metrics.json").read_text())
    assert (metrics["texts"], metrics["held_out"], metrics["new_head_weights"] > 0) == (36, 4, True)
    assert metrics["steps"] == 12 * 5  # 36 texts in batches of 8, 12 epochs
    losses = metrics["masked_lm_loss"]
    assert losses["after"] < losses["before"] - 0.2  # the held-out target texts are predicted better
    encoder = folder / "encoder"
    assert {"config.json", "tokenizer_config.json"} <= {p.name for p in encoder.iterdir()}
    saved = _weights(encoder)
    assert any(k.startswith("cls.") for k in saved)  # the masked-LM head comes along for a second adaptation
    assert not any("pooler" in k for k in saved)  # the encoder moved: a classifier makes a new pooler, like its head
    base = _weights(tiny_models["bert"])
    layer = "encoder.layer.2.output.dense.weight"
    assert not torch.equal(saved[f"bert.{layer}"], base[layer])  # the encoder moved
    run = nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv), overrides=quick_overrides(
        encoder, tmp_path / "out", strategy="head", **{"training.epochs": 1}))
    trained = _weights(run.path / "model")
    assert torch.equal(trained[f"bert.{layer}"], saved[f"bert.{layer}"])  # head: the adapted encoder, unchanged


def test_head_warmup_holds_the_encoder_still_while_the_new_masked_lm_head_trains(tiny_models, target_csv, tmp_path):
    folder = nlptransfer.adapt_encoder("sentiment-minilm", str(target_csv), overrides={
        "model": str(tiny_models["bert"]), "output.dir": str(tmp_path), "data.max_length": 32,
        "training.batch_size": 8, "adapt.steps": 6, "adapt.head_warmup_steps": 6, "training.progress": False})
    saved, base = _weights(folder / "encoder"), _weights(tiny_models["bert"])
    assert json.loads((folder / "metrics.json").read_text())["steps"] == 6
    assert all(torch.equal(saved[f"bert.{k}"], v) for k, v in base.items() if not k.startswith("pooler"))
    assert not torch.equal(saved["cls.predictions.transform.dense.weight"],
                           _weights(nlptransfer.adapt_encoder("sentiment-minilm", str(target_csv), overrides={
                               "model": str(tiny_models["bert"]), "output.dir": str(tmp_path), "data.max_length": 32,
                               "training.batch_size": 8, "adapt.steps": 1, "adapt.lr": 1e-9,
                               "training.progress": False}) / "encoder")["cls.predictions.transform.dense.weight"])


@pytest.mark.parametrize("kind", ["roberta", "distilbert", "electra", "deberta-v2"])
def test_the_masked_lm_head_path_gives_the_models_own_logits(tiny_models, kind):
    from transformers import AutoModelForMaskedLM

    from nlptransfer.model import MaskedLM

    net = AutoModelForMaskedLM.from_pretrained(tiny_models[kind]).eval()
    ids, mask = torch.randint(5, 30, (3, 7)), torch.ones(3, 7, dtype=torch.long)
    chosen = torch.zeros(3, 7, dtype=torch.bool)
    chosen[:, 2], chosen[1, 4] = True, True
    with torch.no_grad():
        ours = MaskedLM(net)(input_ids=ids, attention_mask=mask, mlm_mask=chosen)["mlm_logits"]
        theirs = net(input_ids=ids, attention_mask=mask).logits[chosen]
    assert ours.shape == (4, net.config.vocab_size) and torch.allclose(ours, theirs, atol=1e-5)


@pytest.mark.slow
def test_mlm_ce_adds_the_target_masked_lm_loss_and_its_gradient_reaches_only_what_trains(
        tiny_models, reviews_csv, target_csv, tmp_path):
    run = nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv), overrides=quick_overrides(
        tiny_models["bert"], tmp_path / "out", strategy="top_k", top_k=1,
        **{"adapt.target": str(target_csv), "adapt.method": "mlm+ce", "adapt.weight": 0.5}))
    steps = [r for r in _log(run.path) if "terms" in r]
    assert steps and all(set(r["terms"]) == {"cross_entropy", "mlm"} for r in steps)
    for r in steps:
        assert r["loss"] == pytest.approx(r["terms"]["cross_entropy"] + 0.5 * r["terms"]["mlm"], abs=2e-6)
    assert not any("cls." in k for k in _weights(run.path / "model"))  # the masked-LM head only helped training

    from nlptransfer import models
    from nlptransfer.adapt import attach_mlm_head
    from nlptransfer.batching import MaskingCollator
    from nlptransfer.data import LabelMap
    from nlptransfer.objectives.mlm import _mlm
    from nlptransfer.strategies import get_strategy

    recipe = from_dict({"model": str(tiny_models["bert"]), "strategy": "top_k", "top_k": 1,
                        "adapt": {"target": str(target_csv), "method": "mlm+ce"}})
    base = models.resolve(recipe.model)
    net, new = models.load_classifier(base, LabelMap(("negative", "positive")))
    prepared = get_strategy("top_k").prepare(net, recipe, new)
    attach_mlm_head(prepared, base, recipe)
    model = prepared.model.train()
    tokenizer = models.load_tokenizer(base)
    batch = MaskingCollator(tokenizer, 0.3, seed=1)([{"input_ids": tokenizer(t)["input_ids"]}
                                                       for t, _ in sentiment_rows(8, seed=4)])
    outputs = model(**{k: v for k, v in batch.items() if k != "labels"})
    _mlm(None)(outputs, batch)["mlm"].backward()
    moved = {n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    trained = {id(p) for g in prepared.param_groups for p in g["params"]}
    assert moved and all(id(dict(model.named_parameters())[n]) in trained for n in moved)
    assert any(".layer.2." in n for n in moved) and any(n.startswith("mlm_head.") for n in moved)
    assert not any(".layer.0." in n or "embeddings" in n for n in moved)  # frozen, even the tied decoder


@pytest.mark.slow
@pytest.mark.parametrize("method,kill", [("mlm", 7), ("mlm+ce", 17)])
def test_a_killed_masked_lm_run_resumes_exactly(tiny_models, reviews_csv, target_csv, tmp_path, method, kill):
    """mlm: killed inside its pretraining (step 7 of 12, checkpoint at 5); mlm+ce: in the classification loop. The
    resumed run ends with the metrics and log of an uninterrupted one."""
    model = tiny_models["bert"]
    extra = {"strategy": "full", "training.checkpoint_every": 5, "adapt.target": target_csv, "adapt.method": method,
             "adapt.steps": 12, "training.epochs": 2}
    whole = cli(run_args(model, reviews_csv, tmp_path / "whole", **extra), tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    out = tmp_path / "killed"
    killed_at(kill, run_args(model, reviews_csv, out, **extra), tmp_path)
    folder, reference = out / "sentiment-minilm", tmp_path / "whole" / "sentiment-minilm"
    assert not (folder / "metrics.json").exists()
    resumed = cli(["run", "sentiment-minilm", "--resume", str(folder)], tmp_path)
    assert resumed.returncode == 0 and f"resumed from step {kill // 5 * 5}" in resumed.stdout, resumed.stderr[-3000:]
    untimed = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]  # noqa: E731
    assert untimed(_log(folder)) == untimed(_log(reference))
    assert without_timings(json.loads((folder / "metrics.json").read_text())) == without_timings(
        json.loads((reference / "metrics.json").read_text()))
    if method == "mlm":
        assert untimed(_log(folder / "adapt")) == untimed(_log(reference / "adapt"))
        drop = lambda m: {k: v for k, v in m.items() if "seconds" not in k}  # noqa: E731
        assert drop(json.loads((folder / "adapt" / "metrics.json").read_text())) == drop(
            json.loads((reference / "adapt" / "metrics.json").read_text()))


def test_domain_distance_is_near_zero_for_one_domain_and_large_for_two():
    from nlptransfer.report.adaptation import domain_distance

    rng = np.random.default_rng(0)
    same = domain_distance(rng.normal(size=(200, 16)), rng.normal(size=(200, 16)), seed=1)
    apart = domain_distance(rng.normal(size=(200, 16)), rng.normal(size=(200, 16)) + 1.5, seed=1)
    assert same["mmd"] < 0.02 and abs(same["proxy_a_distance"]) < 0.4
    assert apart["mmd"] > 10 * same["mmd"] and apart["proxy_a_distance"] > 1.6
    assert same["texts"] == 200


@pytest.mark.slow
def test_the_report_of_an_adapted_run_compares_it_with_source_only_on_both_domains(
        tiny_models, reviews_csv, target_csv, tmp_path):
    labelled = write_csv(tmp_path / "target_test.csv", [(f"plot {t} plot", y) for t, y in sentiment_rows(30, seed=21)])
    run = nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv), overrides=quick_overrides(
        tiny_models["bert"], tmp_path / "out", strategy="full",
        **{"adapt.target": str(target_csv), "adapt.target_test": str(labelled), "adapt.method": "mlm+ce",
           "report.enabled": True, "report.learning_curve": [1.0]}))
    report = json.loads((run.path / "report" / "report.json").read_text())
    section = report["adaptation"]
    target = section["target_test"]
    assert target["adapted"]["accuracy"] == pytest.approx(run.metrics["target_test"]["accuracy"])
    assert target["adapted"]["n"] == 30 and section["source"]["adapted"]["n"] == run.metrics["test"]["n"]
    assert section["source"]["adapted"]["accuracy"] == pytest.approx(run.metrics["test"]["accuracy"])
    assert target["verdict"] in ("positive", "negative", "no clear difference")
    diff = target["difference"]
    assert diff["estimate"] == pytest.approx(target["adapted"]["accuracy"] - target["source_only"]["accuracy"])
    assert diff["low"] <= diff["estimate"] <= diff["high"]
    for model in ("source_only", "adapted"):
        assert set(section["domain_distance"][model]) == {"mmd", "proxy_a_distance", "texts"}
    assert "source-domain validation accuracy" in section["selection_rule"]
    markdown = (run.path / "report" / "report.md").read_text()
    assert "## Domain adaptation (mlm+ce" in markdown and "a drop is forgetting" in markdown
    assert "Domain adaptation (mlm+ce" in (run.path / "report" / "report.html").read_text()


@pytest.mark.slow
def test_a_ramped_weight_grows_from_zero_with_training_progress(tiny_models, reviews_csv, target_csv, tmp_path):
    from nlptransfer.objectives.registry import ramp

    assert ramp(0.0) == 0.0 and ramp(0.5) == pytest.approx(0.98661, abs=1e-5) and ramp(1.0) > 0.9999
    run = nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv), overrides=quick_overrides(
        tiny_models["bert"], tmp_path / "out", strategy="top_k",
        **{"adapt.target": str(target_csv), "adapt.weight": 2.0, "adapt.ramp": True, "training.epochs": 1}))
    steps = [r for r in _log(run.path) if "terms" in r]
    total = steps[-1]["step"]
    for r in steps:  # the loss of step k is computed at progress (k - 1) / total
        weight = 2.0 * ramp((r["step"] - 1) / total)
        assert r["loss"] == pytest.approx(r["terms"]["cross_entropy"] + weight * r["terms"]["mmd"], abs=2e-6)
    assert steps[0]["loss"] == pytest.approx(steps[0]["terms"]["cross_entropy"], abs=2e-6)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mlm", "mlm+ce"])
def test_two_processes_adapt_as_one_does(tmp_path, reviews_csv, target_csv, method):
    """torchrun with 2 processes (gloo): the same masks (a text's own), the same steps and the losses of one process
    (no dropout: the processes' RNG streams differ), and only the main process writes. Tolerance: each process
    averages over its own masked tokens, and the two halves of a batch hold different numbers of them, so the
    pretraining loss (a mean of two means) is within 3% of one process's (the mlm+ce target batch is not split)."""
    import sys

    from .conftest import build_tiny_model
    model = build_tiny_model(tmp_path / "models", "bert-nodropout")
    longer = write_csv(tmp_path / "longer.csv", [(f"plot {t} plot {t} plot {t}", "") for t, _ in sentiment_rows(40, 9)],
                       header=("review", "x"))
    extra = {"strategy": "full", "training.epochs": 2, "adapt.target": longer, "adapt.method": method,
             "adapt.steps": 6, "adapt.mask_rate": 0.3}
    one = cli(run_args(model, reviews_csv, tmp_path / "one", **extra), tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = cli(run_args(model, reviews_csv, tmp_path / "two", **extra), tmp_path, runner=torchrun)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("run folder:") == 1 and [p.name for p in (tmp_path / "two").iterdir()] == ["sentiment-minilm"]
    a, b = tmp_path / "one" / "sentiment-minilm", tmp_path / "two" / "sentiment-minilm"
    pairs = [(a / "adapt", b / "adapt", 0.03), (a, b, 0.03)] if method == "mlm" else [(a, b, 1e-4)]
    for one_folder, two_folder, tolerance in pairs:
        log_a, log_b = _log(one_folder), _log(two_folder)
        assert [r["step"] for r in log_a] == [r["step"] for r in log_b] and log_a
        for x, y in zip(log_a, log_b):
            if "loss" in x:
                assert abs(x["loss"] - y["loss"]) <= tolerance * x["loss"], (x, y)
                assert set(x.get("terms", {})) == set(y.get("terms", {}))
    ma, mb = json.loads((a / "metrics.json").read_text()), json.loads((b / "metrics.json").read_text())
    assert ma["steps"] == mb["steps"] and ma["test"]["n"] == mb["test"]["n"]
    if method == "mlm+ce":
        assert ma["test"]["confusion_matrix"] == mb["test"]["confusion_matrix"]


@pytest.mark.slow
def test_nlptransfer_adapt_resumes_a_killed_pretraining_to_the_same_encoder(tiny_models, target_csv, tmp_path):
    args = lambda out: ["adapt", "sentiment-minilm", "--target", str(target_csv), "--output", str(out),  # noqa: E731
                        f"model={tiny_models['bert']}", "data.max_length=32", "training.batch_size=8",
                        "adapt.steps=12", "training.checkpoint_every=5", "training.progress=false"]
    whole = cli(args(tmp_path / "whole"), tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed_at(8, args(tmp_path / "killed"), tmp_path)
    folder = tmp_path / "killed" / "sentiment-minilm-encoder"
    assert not (folder / "encoder").exists() and not (folder / "metrics.json").exists()
    resumed = cli(["adapt", "sentiment-minilm", "--resume", str(folder)], tmp_path)
    assert resumed.returncode == 0 and "resumed from step 5" in resumed.stdout, resumed.stderr[-3000:]
    a, b = _weights(tmp_path / "whole" / "sentiment-minilm-encoder" / "encoder"), _weights(folder / "encoder")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    again = cli(["adapt", "sentiment-minilm", "--resume", str(folder)], tmp_path)
    assert again.returncode == 2 and "already finished" in again.stderr


@pytest.mark.slow
def test_compare_selects_an_adaptation_weight_by_source_validation_only(tiny_models, reviews_csv, target_csv,
                                                                       tmp_path, capsys):
    from nlptransfer.cli import main

    labelled = write_csv(tmp_path / "target_test.csv", [(f"plot {t} plot", y) for t, y in sentiment_rows(30, seed=21)])
    code = main(["compare", "--data", str(reviews_csv), "--strategies", "full", "--adapt-weights", "0,0.5",
                 "sentiment-minilm", f"model={tiny_models['bert']}", f"output.dir={tmp_path}", "training.epochs=1",
                 "training.batch_size=8", "data.max_length=32", f"adapt.target={target_csv}",
                 f"adapt.target_test={labelled}"])
    printed = capsys.readouterr().out
    assert code == 0
    result = json.loads((tmp_path / "compare-sentiment-minilm" / "compare.json").read_text())
    rows = [r for r in result["rows"] if r["kind"] == "transfer"]
    assert [r["name"] for r in rows] == ["full weight=0", "full weight=0.5"]
    best = max(rows, key=lambda r: r["validation"])  # ties: the first, as max keeps it
    assert result["selected"] == best["name"] and [bool(r.get("selected")) for r in rows] == [r is best for r in rows]
    for r in rows:
        saved = json.loads((Path(r["run"]) / "metrics.json").read_text())
        assert r["validation"] == saved["validation"]["accuracy"] and 0 <= r["target_test_accuracy"] <= 1
    assert "no target label is used" in result["selection_rule"] and "Selected without target labels" in printed
    with pytest.raises(SystemExit) as refused:
        main(["compare", "--adapt-weights", "x,1", "--data", str(reviews_csv)])
    assert refused.value.code == 2 and "comma-separated numbers" in capsys.readouterr().err


@pytest.mark.slow
def test_mlm_ce_warms_up_a_new_head_alone_before_the_joint_loop(tiny_models, reviews_csv, target_csv, tmp_path):
    run = nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv), overrides=quick_overrides(
        tiny_models["bert"], tmp_path / "out", strategy="full", **{
            "adapt.target": str(target_csv), "adapt.method": "mlm+ce", "adapt.head_warmup_steps": 60,
            "adapt.lr": 0.05, "training.epochs": 1}))
    warmed = json.loads((run.path / "adapt" / "metrics.json").read_text())
    assert (warmed["method"], warmed["steps"]) == ("mlm+ce", 60)
    assert warmed["masked_lm_loss"]["after"] < warmed["masked_lm_loss"]["before"] - 0.2  # the head learned
    base, encoder = _weights(tiny_models["bert"]), _weights(run.path / "adapt" / "encoder")
    assert all(torch.equal(encoder[f"bert.{k}"], v) for k, v in base.items())  # the pooler kept too
    first = [r["terms"]["mlm"] for r in _log(run.path) if "terms" in r][:3]
    assert np.mean(first) < warmed["masked_lm_loss"]["before"] - 0.1  # the joint loop starts from the warmed head
