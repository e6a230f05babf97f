"""The optional ONNX Runtime path: export checked against PyTorch, predictions within a stated tolerance."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import nlptransfer
from nlptransfer.inference import TextClassifier
from nlptransfer.cli import main

from .conftest import quick_overrides, sentiment_rows, write_csv

pytest.importorskip("onnxruntime", reason="the ONNX path needs nlptransfer[onnx]")

#: float32 ONNX vs PyTorch: the same arithmetic, so float rounding only
FLOAT32_ATOL = 1e-5
#: int8 weights move this tiny model's probabilities by 5e-4 to 3e-2 depending on the trained weights (measured
#: on two trainings that differ only in their dropout masks); all-MiniLM on SST-2: see benchmarks/
INT8_ATOL = 0.06


@pytest.fixture(scope="module")
def trained(tiny_models, reviews_csv, tmp_path_factory):
    """A tiny BERT that learned the signal (confident probabilities, so a tolerance on them means something)."""
    out = tmp_path_factory.mktemp("onnx_run")
    return nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv),
                                overrides=quick_overrides(tiny_models["bert"], out, **{"training.lr": 1e-3,
                                                                                      "training.epochs": 15}))


@pytest.mark.slow
def test_export_writes_checked_float32_and_int8_models(trained):
    check = nlptransfer.export_onnx(trained.path)
    folder = trained.path / "onnx"
    assert {p.name for p in folder.iterdir()} == {"model.onnx", "model.int8.onnx", "check.json"}
    assert json.loads((folder / "check.json").read_text()) == check
    assert check["onnx"]["max_abs_prob_diff"] <= FLOAT32_ATOL and check["onnx"]["label_agreement"] == 1.0
    assert check["onnx-int8"]["max_abs_prob_diff"] <= INT8_ATOL
    assert (folder / "model.int8.onnx").stat().st_size < (folder / "model.onnx").stat().st_size


@pytest.mark.slow
def test_onnx_backends_predict_like_pytorch_on_every_shape(trained):
    if not (trained.path / "onnx").exists():
        nlptransfer.export_onnx(trained.path)
    texts = [t for t, _ in sentiment_rows(40, seed=11)] + ["good", "a " * 60 + "bad"]  # 1 token to truncated
    torch_probs = TextClassifier.load(trained.path).predict_proba(texts, batch_size=7)
    assert np.abs(torch_probs - 0.5).max() > 2 * INT8_ATOL  # the probabilities move: the tolerances have teeth
    fp32 = TextClassifier.load(trained.path, backend="onnx").predict_proba(texts, batch_size=7)
    np.testing.assert_allclose(fp32, torch_probs, rtol=0, atol=FLOAT32_ATOL)
    int8 = TextClassifier.load(trained.path, backend="onnx-int8").predict_proba(texts, batch_size=7)
    np.testing.assert_allclose(int8, torch_probs, rtol=0, atol=INT8_ATOL)
    assert (int8.argmax(1) == torch_probs.argmax(1)).mean() >= 0.95
    assert not np.array_equal(int8, fp32)  # it really is a different (quantized) model


@pytest.mark.slow
def test_cli_export_and_predict_with_onnx(trained, tmp_path, capsys):
    data = write_csv(tmp_path / "new.csv", [(t, "") for t, _ in sentiment_rows(15, seed=3)], header=("text", "x"))
    assert main(["export", str(trained.path), "--onnx"]) == 0
    assert "int8 within" in capsys.readouterr().out
    outputs = {}
    for backend in ("torch", "onnx", "onnx-int8"):
        out = tmp_path / f"{backend}.csv"
        assert main(["predict", str(trained.path), "--input", str(data), "--output", str(out), "--backend", backend]) == 0
        with open(out, newline="", encoding="utf-8") as f:
            outputs[backend] = list(csv.DictReader(f))
    assert [r["predicted"] for r in outputs["onnx"]] == [r["predicted"] for r in outputs["torch"]]
    np.testing.assert_allclose([float(r["prob_positive"]) for r in outputs["onnx"]],
                               [float(r["prob_positive"]) for r in outputs["torch"]], atol=2e-6)


def test_onnx_errors_are_one_clear_message(tiny_models, reviews_csv, tmp_path, capsys):
    run = nlptransfer.finetune("sentiment-minilm", data=str(reviews_csv),
                               overrides=quick_overrides(tiny_models["bert"], tmp_path, **{"training.epochs": 1}))
    data = write_csv(tmp_path / "new.csv", [("fine", "")], header=("text", "x"))
    assert main(["predict", str(run.path), "--input", str(data), "--output", str(tmp_path / "o.csv"),
                 "--backend", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "onnx/model.onnx not found: run `nlptransfer export" in err and "--onnx` first" in err
    assert not (tmp_path / "o.csv").exists()
    assert main(["export", str(run.path)]) == 2
    assert "say what to export: --merge OUT" in capsys.readouterr().err


@pytest.mark.slow
def test_onnx_export_gives_the_pooled_features_and_cut_batches_predict_the_same(trained):
    """The export's second output is the pooled features PyTorch gives (the server's drift monitor reads them), and
    a batch cut into length-sorted sub-batches predicts what the whole padded batch predicts, on both backends."""
    if not (trained.path / "onnx").exists():
        nlptransfer.export_onnx(trained.path)
    clf = TextClassifier.load(trained.path)
    ids = clf.encode([t for t, _ in sentiment_rows(30, seed=12)] + ["good", "a " * 60 + "bad"]).input_ids
    probs, features = clf.batch_outputs(ids)
    assert features.shape == (len(ids), clf.model.core.config.hidden_size)
    for backend, atol in (("torch", 1e-6), ("onnx", FLOAT32_ATOL)):
        other = clf if backend == "torch" else TextClassifier.load(trained.path, backend=backend)
        assert backend == "torch" or other.backend.gives_features
        for overhead in (8, 1e6):  # several sub-batches; one, sorted by length
            cut_probs, cut_features = other.batch_outputs(ids, overhead_tokens=overhead)
            np.testing.assert_allclose(cut_probs, probs, rtol=0, atol=atol)
            np.testing.assert_allclose(cut_features, features, rtol=0, atol=1e-4)
    assert clf.calibrate() > 0  # a pass costs more than its tokens
