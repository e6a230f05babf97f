"""The guide notebooks (notebooks/transfer-report, few-shot, domain-adaptation), executed as a user would run them:
in a fresh folder holding examples/, offline, with the embedded MiniLM; each writes runs/<name>/results.json."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.helpers import ROOT

NOTEBOOKS = ("transfer-report", "few-shot", "domain-adaptation")


def execute(name: str, tmp_path: Path, monkeypatch) -> tuple[dict, list]:
    """Run notebooks/NAME.ipynb from tmp_path/notebooks (examples/ beside it, as in the repository); returns its
    results.json and its executed code cells."""
    import nbformat
    from nbclient import NotebookClient

    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    folder = tmp_path / "notebooks"
    folder.mkdir()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))  # this checkout
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    results = json.loads((folder / "runs" / name / "results.json").read_text())
    return results, [cell for cell in nb.cells if cell.cell_type == "code"]


def images(cells: list) -> int:
    """How many PNG images the executed cells show."""
    return sum("image/png" in o.get("data", {}) for cell in cells for o in cell.get("outputs", []))


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_saved_without_outputs_on_the_python3_kernel_and_says_so(name):
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    assert all(not cell.get("outputs") and cell.get("execution_count") is None
               for cell in nb.cells if cell.cell_type == "code")
    first = nb.cells[0]
    assert first.cell_type == "markdown" and "saved without outputs" in first.source
    assert "tests/test_notebooks.py" in first.source


@pytest.mark.slow
def test_transfer_report_notebook_shows_the_verdict_and_the_reports_figures(tmp_path, monkeypatch):
    results, cells = execute("transfer-report", tmp_path, monkeypatch)
    assert results["verdict"] in ("positive transfer", "negative transfer", "no clear difference")
    for key in ("transfer_accuracy", "baseline_accuracy", "zero_shot_accuracy", "linear_probe_accuracy"):
        assert 0.0 <= results[key] <= 1.0, key
    assert results["transfer_accuracy"] >= 0.75  # head on the sample: 0.917 measured
    assert results["figures"] == sorted(["indicators", "learning_curve", "training_curves", "confusion",
                                         "reliability"])
    rows = results["learning_curve_rows"]
    assert len(rows) == 3 and rows == sorted(rows) and rows[0] >= 1
    assert images(cells) == 6  # the report's five figures and the learning curve drawn from report.json
    shown = "".join(o.get("text", "") for cell in cells for o in cell.get("outputs", []) if o.get("name") == "stdout")
    assert f"Did transfer help? {results['verdict']}" in shown


@pytest.mark.slow
def test_few_shot_notebook_compares_contrastive_head_and_zero_shot(tmp_path, monkeypatch):
    results, cells = execute("few-shot", tmp_path, monkeypatch)
    assert results["rows_per_class"] == 8 and results["test_rows"] == 80
    accuracy = results["accuracy"]
    assert set(accuracy) == {"zero_shot", "head", "contrastive"}
    assert all(0.0 <= value <= 1.0 for value in accuracy.values())
    assert accuracy["contrastive"] >= 0.8 and accuracy["head"] >= 0.65 and accuracy["zero_shot"] >= 0.55
    assert images(cells) == 1


@pytest.mark.slow
def test_domain_adaptation_notebook_pretrains_then_compares_plain_and_adapted(tmp_path, monkeypatch):
    results, cells = execute("domain-adaptation", tmp_path, monkeypatch)
    loss = results["masked_lm_loss"]
    assert results["pretraining_steps"] == 8 and results["target_texts"] == 160
    assert 0 < loss["after"] < loss["before"]
    assert set(results["accuracy"]) == {"plain", "adapted"}
    for scores in results["accuracy"].values():
        assert set(scores) == {"source_test", "target"}
        assert all(0.5 <= value <= 1.0 for value in scores.values())
    assert (tmp_path / "notebooks" / "runs" / "domain-adaptation" / "sentiment-minilm-head-encoder" / "encoder").is_dir()
    assert images(cells) == 1
