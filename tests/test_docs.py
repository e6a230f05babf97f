"""The README's commands, the quickstart notebook, and both entry points, executed as a user would."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, cli_env


def readme_commands() -> list[str]:
    """The shell commands of the README's fenced bash blocks, in order (comments dropped)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


def test_readme_first_commands_are_install_run_and_test_and_ci_runs_the_test_command():
    install, run, test = readme_commands()[:3]
    assert install == 'pip install torch==2.13.0 && pip install -e ".[dev]"'
    assert run == "nlptransfer run sentiment-minilm --data examples/reviews.csv"
    assert test == "python -m pytest -q"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert test in ci  # CI runs exactly the README's test command
    assert any(line.startswith("pip install") and "torch==2.13.0" in line and '-e ".[dev]"' in line for line in ci)


@pytest.mark.slow
def test_readme_install_and_main_job_run_offline(tmp_path):
    install, run, _ = readme_commands()[:3]
    done = subprocess.run(install, shell=True, cwd=ROOT, env=cli_env(one_thread=False), capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    # the main job, exactly as written, from a folder that has the shipped examples/ (keeps runs/ out of the repo)
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    done = subprocess.run(run, shell=True, cwd=tmp_path, env=cli_env(one_thread=False), capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = tmp_path / "runs" / "sentiment-minilm"
    assert f"run folder: {Path('runs') / 'sentiment-minilm'}" in done.stdout
    assert "text column: 'review' (inferred" in done.stdout and "label column: 'label' (inferred" in done.stdout
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["model"] == "minilm" and metrics["test"]["n"] == 24
    assert metrics["test"]["accuracy"] >= 0.8, metrics["test"]  # the pretrained model learns the sample reviews
    assert (folder / "model" / "model.safetensors").exists()


@pytest.mark.slow
def test_python_dash_m_and_console_script_both_work():
    for cmd in ([sys.executable, "-m", "nlptransfer", "recipes", "list"], [shutil.which("nlptransfer"), "recipes", "list"]):
        assert cmd[0], "the nlptransfer console script is not installed"
        done = subprocess.run(cmd, capture_output=True, text=True, env=cli_env(one_thread=False), timeout=120)
        assert done.returncode == 0, done.stderr
        names = [line.split()[0] for line in done.stdout.splitlines()]
        assert "sentiment-minilm" in names and "sentiment-minilm-lora" in names
    bad = subprocess.run([sys.executable, "-m", "nlptransfer", "recipes", "show", "sentimnet-minilm"],
                         capture_output=True, text=True, env=cli_env(one_thread=False), timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: no recipe named 'sentimnet-minilm'")
    assert "sentiment-minilm" in bad.stderr


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(ROOT / "notebooks" / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    def shown(o) -> str:  # what the user reads: printed text and results (stderr carries progress bars)
        return o.get("text", "") if o.get("name") == "stdout" else o.get("data", {}).get("text/plain", "")

    outputs = ["".join(shown(o) for o in cell.get("outputs", [])) for cell in nb.cells if cell.cell_type == "code"]
    assert "(240, 3)" in outputs[0]
    assert "metrics.json" in outputs[2] and "predictions.csv" in outputs[2]
    accuracy = float(re.search(r"test accuracy ([0-9.]+)", outputs[3]).group(1))
    assert accuracy >= 0.75
    lines = outputs[4].strip().splitlines()
    assert lines[0].split()[0] == "positive" and lines[1].split()[0] == "negative"
