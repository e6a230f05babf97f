"""Helpers of the tests that run nlptransfer in a fresh process: its environment, the CLI, the arguments of a quick
tiny-model run, a run killed mid-training."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: the metrics that are wall-clock times, so differ between two runs of one recipe
TIMINGS = {"train_seconds", "total_seconds"}

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


def cli_env(*, one_thread: bool = True, **extra: str) -> dict[str, str]:
    """The environment of a child process: offline, this checkout's code first, no GPU, one thread (so that several
    at once do not fight over the cores) unless `one_thread` is false; then `extra`."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if one_thread:
        env["OMP_NUM_THREADS"] = "1"
    env.pop("CUDA_VISIBLE_DEVICES", None)
    env.update(extra)
    return env


def cli(args: list, cwd: Path, *, runner: list[str] | None = None, timeout: int = 600,
        **env: str) -> subprocess.CompletedProcess:
    """`python -m nlptransfer ARGS` (under `runner`, e.g. torchrun, when given) in a fresh process, output captured."""
    cmd = (runner or [sys.executable]) + ["-m", "nlptransfer", *map(str, args)]
    return subprocess.run(cmd, cwd=cwd, env=cli_env(**env), capture_output=True, text=True, timeout=timeout)


def run_args(model: Path, data: Path, out: Path, *extra: str, **settings) -> list[str]:
    """CLI arguments of a quick tiny-model `run` (3 epochs, batches of 8, texts cut at 32 tokens); `settings` replace
    or add recipe keys, `extra` are appended as they are."""
    values = {"model": model, "output.dir": out, "training.epochs": 3, "training.batch_size": 8,
              "training.progress": "false", "data.max_length": 32, **settings}
    return ["run", "sentiment-minilm", "--data", str(data), *[f"{k}={v}" for k, v in values.items()], *extra]


def killed_at(step: int, args: list[str], cwd: Path, **env: str) -> None:
    """Run the CLI with `args`, SIGKILLed right after optimizer step `step` is logged (KILLER); check it was."""
    killer = cwd / "killer.py"
    killer.write_text(KILLER.format(step=step))
    killed = subprocess.run([sys.executable, str(killer), *map(str, args)], cwd=cwd, env=cli_env(**env),
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -9, killed.stderr[-3000:]


def without_timings(metrics: dict) -> dict:
    """`metrics` without its wall-clock times."""
    return {k: v for k, v in metrics.items() if k not in TIMINGS}
