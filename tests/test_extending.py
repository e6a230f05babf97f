"""Extending nlptransfer without editing it: a strategy and an objective registered from this file (or offered by an
installed plugin package) run end to end through the CLI; a second batch stream is a pure function of (seed, epoch)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from nlptransfer.adaptation import register_adapt_method
from nlptransfer.cli import main
from nlptransfer.errors import RecipeError, RegistryError
from nlptransfer.model import HEAD
from nlptransfer.objectives import register_objective
from nlptransfer.registry import SECTIONS, Section
from nlptransfer.strategies import encoder_layers, find_strategy, head_modules, prepared, register_strategy
from tests.helpers import run_args

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


@dataclass(frozen=True)
class TopBiases:
    """The toy plugin's own recipe section, `top_biases:`."""

    layers: int = 1  #: encoder layers (from the top) whose biases train


def prepare_top_biases(net, recipe, new_weights):
    """The toy strategy with settings of its own: the biases of the top `top_biases.layers` layers (and the head)."""
    head, layers = head_modules(net, new_weights), encoder_layers(net)
    prefix = next(n for n, m in net.named_modules() if m is layers)
    top = tuple(f"{prefix}.{i}." for i in range(len(layers) - recipe.top_biases.layers, len(layers)))
    for name, param in net.named_parameters():
        param.requires_grad = (name.endswith(".bias") and name.startswith(top)) or any(
            name.startswith(h + ".") for h in head)
    return prepared(net, recipe)


def _check_top_biases(recipe) -> list[str]:
    layers = recipe.top_biases.layers
    return [] if layers >= 1 else [f"top_biases.layers must be at least 1, got {layers}"]


def register_sectioned_toy() -> None:
    """Registered by the plugin package only: a section registered in this process would join every recipe the
    other tests write."""
    register_strategy("top_biases", prepare=prepare_top_biases, default_lr=1e-2,
                      section=Section("top_biases", TopBiases, _check_top_biases))


def _run_args(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return run_args(model, data, out, *extra, **{"training.epochs": 2})


def _log(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]


@pytest.mark.slow
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
import tests.test_extending  # registers the toys on import
tests.test_extending.register_sectioned_toy()
"""


def _plugin_site(tmp_path: Path) -> Path:
    """A folder holding an installed plugin package (toy_plugin) that offers the toys through entry points."""
    site = tmp_path / "site"
    (site / "toy_plugin").mkdir(parents=True)
    (site / "toy_plugin" / "__init__.py").write_text(PLUGIN.format(root=str(ROOT)))
    info = site / "toy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[nlptransfer.strategies]\nbias_only = toy_plugin\n"
                                           "top_biases = toy_plugin\n\n[nlptransfer.objectives]\nlogit_l2 = toy_plugin\n")
    return site


def _plugin_env(site: Path | None) -> dict:
    path = [str(site), str(ROOT)] if site else [str(ROOT)]
    return dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(path))


def _plugin_cli(args: list, site: Path | None, *runner: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *(runner or ("-m", "nlptransfer")), *map(str, args)], capture_output=True,
                          text=True, env=_plugin_env(site), timeout=600)


@pytest.mark.slow
def test_an_installed_plugin_package_registers_its_strategy_for_the_cli(tiny_models, reviews_csv, tmp_path):
    site = _plugin_site(tmp_path)
    args = _run_args(tiny_models["bert"], reviews_csv, tmp_path / "out", "strategy=bias_only",
                     "training.objectives.logit_l2=0.1")
    done = _plugin_cli(args, site)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((tmp_path / "out" / "sentiment-minilm" / "metrics.json").read_text())
    assert metrics["strategy"] == "bias_only"
    assert set(_log(tmp_path / "out" / "sentiment-minilm")[0]["terms"]) == {"cross_entropy", "logit_l2"}
    without = _plugin_cli(args, None)
    assert without.returncode == 2 and "unknown strategy 'bias_only'" in without.stderr


@pytest.mark.slow  # nine CLI processes: about 3 minutes on 2 cores
def test_a_plugin_strategy_with_its_own_section_validates_runs_and_resumes_through_the_cli(tiny_models, reviews_csv,
                                                                                         tmp_path):
    from safetensors.torch import load_file

    from tests.helpers import KILLER, without_timings

    site, model = _plugin_site(tmp_path), tiny_models["bert"]
    check = ["recipes", "validate", "sentiment-minilm", "strategy=top_biases"]
    valid = _plugin_cli([*check, "top_biases.layers=2"], site)
    assert valid.returncode == 0 and "sentiment-minilm: valid (" in valid.stdout, valid.stderr[-3000:]
    for change, message in [("top_biases.layers=0", "top_biases.layers must be at least 1, got 0"),
                            ("top_biases.layerz=1", "unknown key 'top_biases.layerz' (did you mean 'layers'?); "
                                                    "valid keys here: layers")]:
        refused = _plugin_cli([*check, change], site)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr[-3000:]
    assert "unknown key 'top_biases'" in _plugin_cli([*check, "top_biases.layers=1"], None).stderr

    extra = ("strategy=top_biases", "top_biases.layers=1", "training.checkpoint_every=5")
    whole = _plugin_cli(_run_args(model, reviews_csv, tmp_path / "whole", *extra), site)
    assert whole.returncode == 0, whole.stderr[-3000:]
    folder = tmp_path / "whole" / "sentiment-minilm"
    assert "top_biases:\n  layers: 1\n" in (folder / "recipe.yaml").read_text()
    top = f"encoder.layer.{json.loads((model / 'config.json').read_text())['num_hidden_layers'] - 1}."
    base, trained = load_file(str(model / "model.safetensors")), load_file(str(folder / "model" / "model.safetensors"))
    biases = sum(v.numel() for k, v in base.items() if k.startswith(top) and k.endswith(".bias"))
    assert json.loads((folder / "metrics.json").read_text())["trainable_parameters"] == biases + 32 * 2 + 2
    changed = {k for k in base if not torch.equal(base[k], trained["bert." + k])}
    assert changed and all(k.startswith(top) and k.endswith(".bias") for k in changed)

    killer = tmp_path / "killer.py"
    killer.write_text(KILLER.format(step=17))  # 12 steps an epoch: killed in the second, its checkpoint at step 15
    killed = _plugin_cli(_run_args(model, reviews_csv, tmp_path / "killed", *extra), site, str(killer))
    assert killed.returncode == -9, killed.stderr[-3000:]
    resumed_folder = tmp_path / "killed" / "sentiment-minilm"
    resumed = _plugin_cli(["run", "sentiment-minilm", "--resume", resumed_folder], site)
    assert resumed.returncode == 0 and "resumed from step 15" in resumed.stdout, resumed.stderr[-3000:]
    assert without_timings(json.loads((resumed_folder / "metrics.json").read_text())) == without_timings(
        json.loads((folder / "metrics.json").read_text()))
    # prediction needs no strategy: the folder predicts without the plugin, its section kept as it was saved
    out = tmp_path / "pred.csv"
    predicted = _plugin_cli(["predict", folder, "--input", reviews_csv, "--output", out], None)
    assert predicted.returncode == 0 and len(out.read_text().splitlines()) == 121, predicted.stderr[-3000:]


def _cross_entropy_again(context):
    return lambda outputs, batch: {}


def test_a_second_registration_of_a_name_is_refused_naming_both_and_registers_nothing():
    here = "tests.test_extending"
    with pytest.raises(RegistryError, match=r"strategy 'head' is registered twice: by nlptransfer\.strategies\.frozen\."
                                            rf"prepare_head and again by {here}\.prepare_bias_only"):
        register_strategy("head", prepare=prepare_bias_only, default_lr=1e-2)
    with pytest.raises(RegistryError, match=r"objective 'cross_entropy' is registered twice: by nlptransfer\.objectives"
                                            rf"\.cross_entropy\._cross_entropy and again by {here}\._cross_entropy_again"):
        register_objective("cross_entropy", _cross_entropy_again)
    with pytest.raises(RegistryError, match=rf"adaptation method 'mmd' is registered twice: by nlptransfer\.adaptation "
                                            rf"and again by {here}"):
        register_adapt_method("mmd", None)
    with pytest.raises(RegistryError, match=r"recipe section 'labels' is registered twice: by strategy zero_shot "
                                            r"\(nlptransfer\.strategies\.zero_shot\.prepare_zero_shot\) and again by "
                                            rf"strategy bias_again \({here}\.prepare_bias_only\)"):
        register_strategy("bias_again", prepare=prepare_bias_only, default_lr=1e-2, section=Section("labels", TopBiases))
    assert find_strategy("bias_again") is None  # refused whole: no strategy without its section
    assert find_strategy("head").prepare.__module__ == "nlptransfer.strategies.frozen"
    from nlptransfer import recipe as recipes

    assert recipes.load("sentiment-minilm", {"labels.temperature": 0.1}).labels.temperature == 0.1


def test_a_section_named_as_a_key_of_the_recipe_itself_is_refused(monkeypatch):
    from nlptransfer import recipe as recipes

    monkeypatch.setattr(SECTIONS, "_entries", {**SECTIONS._entries, "training": Section("training", TopBiases)})
    monkeypatch.setattr(SECTIONS, "_origins", {**SECTIONS._origins, "training": "strategy toy (toy.prepare)"})
    with pytest.raises(RegistryError, match="recipe section 'training' is registered by strategy toy \\(toy.prepare\\), "
                                            "but it is a key of the recipe itself"):
        recipes.load("sentiment-minilm")


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
