"""A run killed with SIGKILL mid-epoch resumes to the same result; two processes (torchrun, gloo) agree
with one, and only the main process writes."""
from __future__ import annotations

import json
import sys

import pytest

from tests.helpers import cli, killed_at, run_args, without_timings

from .conftest import build_tiny_model

pytestmark = pytest.mark.slow  # every case runs the CLI in fresh processes


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_sigkill_mid_epoch_then_resume_gives_the_same_metrics(tiny_models, reviews_csv, tmp_path, strategy):
    model = tiny_models["bert"]
    extra = {"strategy": strategy, "training.checkpoint_every": 5}
    whole = cli(run_args(model, reviews_csv, tmp_path / "whole", **extra), tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "killed"
    # killed at step 17: epoch 2 of 3 (12 steps per epoch), 2 steps after a checkpoint
    killed_at(17, run_args(model, reviews_csv, out, **extra), tmp_path)
    folder = out / "sentiment-minilm"
    state = json.loads((folder / "checkpoints" / "last" / "trainer_state.json").read_text())
    assert (state["step"], state["epoch"], state["batch"]) == (15, 1, 3)
    assert not (folder / "metrics.json").exists()
    from safetensors import safe_open

    with safe_open(str(folder / "checkpoints" / "last" / "model.safetensors"), framework="pt") as f:
        held = set(f.keys())
    if strategy == "lora":  # the checkpoint holds what trains: the adapter and the head, not the frozen base
        assert {k for k in held if "lora_" not in k} == {f"net.base_model.model.classifier.modules_to_save.default.{w}"
                                                         for w in ("weight", "bias")} and len(held) == 14
    else:
        assert "net.bert.embeddings.word_embeddings.weight" in held

    resumed = cli(["run", "sentiment-minilm", "--resume", str(folder)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from step 15" in resumed.stdout
    a = json.loads((tmp_path / "whole" / "sentiment-minilm" / "metrics.json").read_text())
    b = json.loads((folder / "metrics.json").read_text())
    assert without_timings(a) == without_timings(b)
    log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == list(range(1, 37))  # no step lost or logged twice
    whole_log = (tmp_path / "whole" / "sentiment-minilm" / "train_log.jsonl").read_text().splitlines()
    untimed = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]  # noqa: E731
    assert untimed(map(json.loads, whole_log)) == untimed(log)
    assert all("seconds" in r for r in log if "eval" in r)


def test_resume_of_a_finished_run_is_refused(tiny_models, reviews_csv, tmp_path):
    done = cli(run_args(tiny_models["bert"], reviews_csv, tmp_path, **{"training.epochs": 1}), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    again = cli(["run", "sentiment-minilm", "--resume", str(tmp_path / "sentiment-minilm")], tmp_path)
    assert again.returncode == 2 and "already finished" in again.stderr


@pytest.mark.parametrize("strategy", ["full", "head"])
def test_two_processes_agree_with_one_and_only_main_writes(tmp_path, reviews_csv, strategy):
    # no dropout: the two processes' RNG streams differ, everything else must agree
    model = build_tiny_model(tmp_path / "models", "bert-nodropout")
    extra = {"strategy": strategy, "training.epochs": 2, "pooling": "mean" if strategy == "head" else "native"}
    one = cli(run_args(model, reviews_csv, tmp_path / "one", **extra), tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = cli(run_args(model, reviews_csv, tmp_path / "two", **extra), tmp_path, runner=torchrun)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("run folder:") == 1  # only the main process prints and writes

    assert [p.name for p in (tmp_path / "two").iterdir()] == ["sentiment-minilm"]
    a = json.loads((tmp_path / "one" / "sentiment-minilm" / "metrics.json").read_text())
    b = json.loads((tmp_path / "two" / "sentiment-minilm" / "metrics.json").read_text())
    # stated tolerance: gradients are averaged over the same 8 examples in a different reduction order
    assert a["test"]["accuracy"] == b["test"]["accuracy"] and a["test"]["n"] == b["test"]["n"] == 12
    assert b["test"]["confusion_matrix"] == a["test"]["confusion_matrix"]
    assert abs(a["validation"]["loss"] - b["validation"]["loss"]) < 1e-4
    assert a["examples_seen"] == b["examples_seen"] and a["steps"] == b["steps"]
    log_b = (tmp_path / "two" / "sentiment-minilm" / "train_log.jsonl").read_text().splitlines()
    log_a = (tmp_path / "one" / "sentiment-minilm" / "train_log.jsonl").read_text().splitlines()
    assert len(log_a) == len(log_b)  # each step logged once, not once per process
    for x, y in zip(map(json.loads, log_a), map(json.loads, log_b)):
        if "loss" in x:
            assert abs(x["loss"] - y["loss"]) < 1e-4, (x, y)
