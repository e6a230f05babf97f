"""Real quality: the embedded pretrained MiniLM, fully fine-tuned on 2,000 SST-2 sentences, on the 872 dev ones."""
from __future__ import annotations

import json

import pytest

from nlptransfer.cli import main

from .conftest import SHARED_SST2


@pytest.mark.slow
def test_full_finetuning_of_minilm_on_sst2_2k_reaches_080_dev_accuracy(tmp_path, capsys):
    if not (SHARED_SST2 / "train_2k.tsv").exists():
        pytest.skip(f"SST-2 data not found at {SHARED_SST2}: the real-quality test needs ../shared/data/sst2")
    # all 2,000 sentences train (no validation split: the final model is scored); dev is the test split
    code = main(["run", "sentiment-minilm", "--data", str(SHARED_SST2 / "train_2k.tsv"),
                 f"data.test={SHARED_SST2 / 'dev.tsv'}", "data.test_fraction=0", "data.val_fraction=0",
                 "training.seed=42", "training.progress=false", f"output.dir={tmp_path}"])
    assert code == 0, capsys.readouterr().err
    metrics = json.loads((tmp_path / "sentiment-minilm" / "metrics.json").read_text())
    report = json.loads((tmp_path / "sentiment-minilm" / "data_report.json").read_text())
    assert report["rows_used"] == {"train": 2000, "test": 872} and report["dropped"] == {}
    assert metrics["test"]["n"] == 872
    assert metrics["test"]["accuracy"] >= 0.80, metrics["test"]
