"""Extending nlptransfer without editing it: a strategy and an objective registered from this file (or offered by an
installed plugin package) run end to end through the CLI; a second batch stream is a pure function of (seed, epoch)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nlptransfer.cli import main
from nlptransfer.errors import RecipeError
from nlptransfer.model import HEAD
from nlptransfer.objectives import register_objective
from nlptransfer.strategies import head_modules, prepared, register_strategy

ROOT = Path(__file__).resolve().parents[1]


def prepare_bias_only(net, recipe, new_weights):
    """The toy strategy: only bias terms (and the new head) train."""
    head = head_modules(net, new_weights)
    for name, param in net.named_parameters():
        param.requires_grad = name.endswith(".bias") or any(name.startswith(h + ".") for h in head)
    return prepared(net, recipe)


def register_toys() -> None:
    register_strategy("bias_only", prepare=prepare_bias_only, default_lr=1e-2, describe=lambda r: "biases only")
    register_objective("logit_l2", lambda context: lambda outputs, batch: {
        "logit_l2": outputs["logits"][HEAD].float().pow(2).mean()})


register_toys()


def _run_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "sentiment-minilm", "--data", str(data), f"model={model}", f"output.dir={out}",
            "training.epochs=2", "training.batch_size=8", "training.progress=false", "data.max_length=32", *extra]


def _log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


def test_a_strategy_registered_here_trains_only_what_it_says_through_the_cli(tiny_models, reviews_csv, tmp_path,
                                                                             capsys):
    from safetensors.torch import load_file

    model = tiny_models["bert"]
    assert main(_run_args(model, reviews_csv, tmp_path, "strategy=bias_only")) == 0
    folder = tmp_path / "sentiment-minilm"
    printed = capsys.readouterr().out
    metrics = json.loads((folder / "metrics.json").read_text())
    base = load_file(str(model / "model.safetensors"))
    trained = load_file(str(folder / "model" / "model.safetensors"))
    biases = sum(v.numel() for k, v in base.items() if k.endswith(".bias") and "pooler" in k or
                 k.endswith(".bias") and k.startswith(("embeddings", "encoder")))
    assert metrics["strategy"] == "bias_only"
    assert metrics["trainable_parameters"] == biases + 32 * 2 + 2  # every encoder bias, plus the new classifier
    assert f"{metrics['trainable_parameters']:,} trainable of" in printed
    changed = {k for k in base if not torch.equal(base[k], trained["bert." + k])}
    assert changed and all(k.endswith(".bias") for k in changed)  # weights stayed exactly as they were
    assert len([r for r in _log(folder) if "loss" in r]) == metrics["steps"] == 24
    out = tmp_path / "pred.csv"
    assert main(["predict", str(folder), "--input", str(reviews_csv), "--output", str(out)]) == 0
    assert len(out.read_text().splitlines()) == 121


def test_an_objective_registered_here_adds_exactly_its_weighted_value_and_is_logged(tiny_models, reviews_csv,
                                                                                    tmp_path):
    model = tiny_models["bert"]
    assert main(_run_args(model, reviews_csv, tmp_path / "plain")) == 0
    assert main(_run_args(model, reviews_csv, tmp_path / "l2", "training.objectives.logit_l2=50")) == 0
    plain = [r for r in _log(tmp_path / "plain" / "sentiment-minilm") if "loss" in r]
    with_l2 = [r for r in _log(tmp_path / "l2" / "sentiment-minilm") if "loss" in r]
    assert "terms" not in plain[0]  # one term: the loss is the term
    assert all(set(r["terms"]) == {"cross_entropy", "logit_l2"} for r in with_l2)
    for r in with_l2:
        assert r["loss"] == pytest.approx(r["terms"]["cross_entropy"] + 50 * r["terms"]["logit_l2"], abs=3e-5)
    # the first step sees the same weights and batch: the penalty changes the loss by exactly its weighted value
    # (tolerances: the log keeps 6 decimals, and the term is multiplied by 50 after rounding)
    first = with_l2[0]
    assert first["terms"]["cross_entropy"] == pytest.approx(plain[0]["loss"], abs=1e-6)
    assert first["loss"] - plain[0]["loss"] == pytest.approx(50 * first["terms"]["logit_l2"], abs=3e-5)
    assert 50 * first["terms"]["logit_l2"] > 1e-3  # a real difference, far above the tolerance
    saved = (tmp_path / "l2" / "sentiment-minilm" / "recipe.yaml").read_text()
    assert "logit_l2: 50" in saved and "cross_entropy: 1.0" in saved


@pytest.mark.parametrize("change, message", [
    ({"training.objectives.logit_l3": 1.0}, "unknown objective 'training.objectives.logit_l3' (did you mean 'logit_l2'?)"),
    ({"training.objectives.logit_l2": -1.0}, "training.objectives.logit_l2 must be a weight of 0 or more, got -1.0"),
    ({"training.objectives": {}}, "training.objectives is empty"),
    ({"strategy": "bias_onyl"}, "unknown strategy 'bias_onyl' (did you mean 'bias_only'?)"),
])
def test_registered_names_are_checked_with_the_recipe(change, message):
    from nlptransfer import recipe as recipes

    with pytest.raises(RecipeError) as e:
        recipes.load("sentiment-minilm", change)
    assert message in str(e.value)


PLUGIN = """
import sys
sys.path.insert(0, {root!r})
from tests.test_extending import register_toys
register_toys()
"""


def test_an_installed_plugin_package_registers_its_strategy_for_the_cli(tiny_models, reviews_csv, tmp_path):
    site = tmp_path / "site"
    (site / "toy_plugin").mkdir(parents=True)
    (site / "toy_plugin" / "__init__.py").write_text(PLUGIN.format(root=str(ROOT)))
    info = site / "toy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[nlptransfer.strategies]\nbias_only = toy_plugin\n\n"
                                           "[nlptransfer.objectives]\nlogit_l2 = toy_plugin\n")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=os.pathsep.join([str(site), str(ROOT)]))
    args = _run_args(tiny_models["bert"], reviews_csv, tmp_path / "out", "strategy=bias_only",
                     "training.objectives.logit_l2=0.1")
    done = subprocess.run([sys.executable, "-m", "nlptransfer", *args], capture_output=True, text=True, env=env,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "out" / "sentiment-minilm" / "metrics.json").read_text())
    assert metrics["strategy"] == "bias_only"
    assert set(_log(tmp_path / "out" / "sentiment-minilm")[0]["terms"]) == {"cross_entropy", "logit_l2"}
    without = subprocess.run([sys.executable, "-m", "nlptransfer", *args], capture_output=True, text=True,
                             env=dict(env, PYTHONPATH=str(ROOT)), timeout=600)
    assert without.returncode == 2 and "unknown strategy 'bias_only'" in without.stderr


def test_a_second_batch_stream_is_a_pure_function_of_seed_epoch_and_position():
    from nlptransfer.batching import BatchStream, Collator
    from nlptransfer.tokens import Encoded

    data = Encoded([[2] + [5 + i % 7] * (1 + i % 9) + [3] for i in range(50)], None)

    def stream():
        return BatchStream(data, data.lengths, 8, Collator(0), seed=3)

    a, b = stream(), stream()
    walked = [a.batch(epoch, i) for epoch in range(2) for i in range(20)]  # 20 batches: the 7 of it cycle
    fresh = b.batch(1, 13)  # as a resumed run would ask, with nothing walked before
    assert torch.equal(fresh["input_ids"], walked[20 + 13]["input_ids"])
    seen = torch.cat([walked[i]["attention_mask"].sum(1) for i in range(7)])
    assert len(seen) == 50 and sorted(seen.tolist()) == sorted(data.lengths)  # each pass: every row once
    assert not torch.equal(walked[0]["input_ids"], walked[20]["input_ids"])  # another epoch, another order
    assert not torch.equal(stream().batch(0, 0)["input_ids"], BatchStream(data, data.lengths, 8, Collator(0),
                                                                          seed=4).batch(0, 0)["input_ids"])
