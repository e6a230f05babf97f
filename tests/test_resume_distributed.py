"""A run killed with SIGKILL mid-epoch resumes to the same result; two processes (torchrun, gloo) agree
with one, and only the main process writes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from .conftest import build_tiny_model

ROOT = Path(__file__).resolve().parents[1]
TIMINGS = {"train_seconds", "total_seconds"}


def _env() -> dict:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("CUDA_VISIBLE_DEVICES", None)
    return env


def _cli(args: list[str], cwd: Path, runner: list[str] | None = None, timeout: int = 300):
    cmd = (runner or [sys.executable]) + ["-m", "nlptransfer", *args]
    return subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)


def _args(model: Path, data: Path, out: Path, **extra) -> list[str]:
    values = {"model": model, "output.dir": out, "training.epochs": 3, "training.batch_size": 8,
              "training.progress": "false", "data.max_length": 32, **extra}
    return ["run", "sentiment-minilm", "--data", str(data), *[f"{k}={v}" for k, v in values.items()]]


def _killed_at(step: int, args: list[str], cwd: Path) -> None:
    """Run the CLI with `args`, SIGKILLed right after optimizer step `step` is logged (KILLER); check it was."""
    killer = cwd / "killer.py"
    killer.write_text(KILLER.format(step=step))
    killed = subprocess.run([sys.executable, str(killer), *args], cwd=cwd, env=_env(), capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -9, killed.stderr[-3000:]


def _without_timings(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMINGS}


KILLER = textwrap.dedent("""
    # Runs the real CLI, but SIGKILLs this process right after optimizer step {step} is logged.
    import os, signal, sys
    from nlptransfer import run as run_module
    from nlptransfer.cli import main

    original = run_module.RunFolder.append_log
    def append_log(self, record):
        original(self, record)
        if record.get("step") == {step} and "loss" in record:
            os.kill(os.getpid(), signal.SIGKILL)
    run_module.RunFolder.append_log = append_log
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_sigkill_mid_epoch_then_resume_gives_the_same_metrics(tiny_models, reviews_csv, tmp_path, strategy):
    model = tiny_models["bert"]
    extra = {"strategy": strategy, "training.checkpoint_every": 5}
    whole = _cli(_args(model, reviews_csv, tmp_path / "whole", **extra), tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]

    out = tmp_path / "killed"
    # killed at step 17: epoch 2 of 3 (12 steps per epoch), 2 steps after a checkpoint
    _killed_at(17, _args(model, reviews_csv, out, **extra), tmp_path)
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

    resumed = _cli(["run", "sentiment-minilm", "--resume", str(folder)], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from step 15" in resumed.stdout
    a = json.loads((tmp_path / "whole" / "sentiment-minilm" / "metrics.json").read_text())
    b = json.loads((folder / "metrics.json").read_text())
    assert _without_timings(a) == _without_timings(b)
    log = [json.loads(line) for line in (folder / "train_log.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in log if "loss" in r]
    assert steps == list(range(1, 37))  # no step lost or logged twice
    whole_log = (tmp_path / "whole" / "sentiment-minilm" / "train_log.jsonl").read_text().splitlines()
    untimed = lambda records: [{k: v for k, v in r.items() if k != "seconds"} for r in records]  # noqa: E731
    assert untimed(map(json.loads, whole_log)) == untimed(log)
    assert all("seconds" in r for r in log if "eval" in r)


def test_resume_of_a_finished_run_is_refused(tiny_models, reviews_csv, tmp_path):
    done = _cli(_args(tiny_models["bert"], reviews_csv, tmp_path, **{"training.epochs": 1}), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    again = _cli(["run", "sentiment-minilm", "--resume", str(tmp_path / "sentiment-minilm")], tmp_path)
    assert again.returncode == 2 and "already finished" in again.stderr


@pytest.mark.parametrize("strategy", ["full", "head"])
def test_two_processes_agree_with_one_and_only_main_writes(tmp_path, reviews_csv, strategy):
    # no dropout: the two processes' RNG streams differ, everything else must agree
    model = build_tiny_model(tmp_path / "models", "bert-nodropout")
    extra = {"strategy": strategy, "training.epochs": 2, "pooling": "mean" if strategy == "head" else "native"}
    one = _cli(_args(model, reviews_csv, tmp_path / "one", **extra), tmp_path)
    assert one.returncode == 0, one.stderr[-3000:]
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    two = _cli(_args(model, reviews_csv, tmp_path / "two", **extra), tmp_path, runner=torchrun)
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
