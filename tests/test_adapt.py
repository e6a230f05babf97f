"""Domain adaptation (recipe `adapt:`): the multi-kernel MMD term on tiny models, the target stream inside the one
loop (trained, logged, resumed exactly), and clear refusals. The amazon-domains benchmark is benchmarks/adapt.py."""
from __future__ import annotations

import json

import pytest
import torch

import nlptransfer
from nlptransfer.errors import NlpTransferError
from nlptransfer.objectives.mmd import mk_mmd
from nlptransfer.recipe import from_dict

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


def test_a_resumed_adapted_run_ends_where_an_uninterrupted_one_does(tiny_models, reviews_csv, target_csv, tmp_path):
    """SIGKILL two steps after a checkpoint, resume: the same target batches come back (the stream is a pure
    function of seed, epoch and position), so the log and metrics equal an uninterrupted run's."""
    import subprocess
    import sys

    from .test_resume_distributed import KILLER, _args, _cli, _env, _without_timings

    model = tiny_models["bert"]
    extra = {"strategy": "full", "training.checkpoint_every": 5, "adapt.target": target_csv}
    whole = _cli(_args(model, reviews_csv, tmp_path / "whole", **extra), tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    killer = tmp_path / "killer.py"
    killer.write_text(KILLER.format(step=17))
    out = tmp_path / "killed"
    killed = subprocess.run([sys.executable, str(killer), *_args(model, reviews_csv, out, **extra)], cwd=tmp_path,
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr[-3000:]
    folder = out / "sentiment-minilm"
    resumed = _cli(["run", "sentiment-minilm", "--resume", str(folder)], tmp_path)
    assert resumed.returncode == 0 and "resumed from step 15" in resumed.stdout, resumed.stderr[-3000:]
    a, b = _log(tmp_path / "whole" / "sentiment-minilm"), _log(folder)
    untimed = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]  # noqa: E731
    assert untimed(a) == untimed(b) and all("mmd" in r["terms"] for r in b if "terms" in r)
    assert _without_timings(json.loads((folder / "metrics.json").read_text())) == _without_timings(
        json.loads((tmp_path / "whole" / "sentiment-minilm" / "metrics.json").read_text()))


def test_adapting_refuses_a_head_strategy_and_a_target_file_without_texts(tiny_models, reviews_csv, tmp_path):
    with pytest.raises(NlpTransferError, match="strategy 'head' trains only the classifier"):
        from_dict({"strategy": "head", "adapt": {"target": "t.csv"}})
    with pytest.raises(NlpTransferError, match="adapt.method must be one of mmd, got 'mlm'"):
        from_dict({"adapt": {"target": "t.csv", "method": "mlm"}})
    empty = write_csv(tmp_path / "empty.csv", [("", "")] * 3, header=("text", "x"))
    out = tmp_path / "out"
    with pytest.raises(NlpTransferError, match="non-empty texts"):
        nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv), overrides=quick_overrides(
            tiny_models["bert"], out, strategy="full", **{"adapt.target": str(empty)}))
    assert not out.exists() or not any(out.iterdir())  # no half-made run folder


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
