"""`check` gives the report a run writes, on every file shipped in examples/ and in ../shared/data (skipped with a
message when it is absent): the same data report when a run can start, the same problems when it cannot."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlptransfer.cli import main

from .conftest import SHARED_SST2

ROOT = Path(__file__).resolve().parents[1]
SHARED = SHARED_SST2.parent
FILES = sorted(p for p in (ROOT / "examples").iterdir() if p.suffix in (".csv", ".tsv", ".jsonl"))
SHARED_FILES = sorted(p for p in SHARED.rglob("*") if p.suffix in (".csv", ".tsv")) if SHARED.is_dir() else []


def _same_as_the_run(path: Path, model: Path, out: Path, capsys) -> None:
    args = ["--data", str(path), f"model={model}", "data.max_length=32"]
    code = main(["check", "sentiment-minilm", *args, "--json"])
    captured = capsys.readouterr()
    checked = json.loads(captured.out)
    ran = main(["run", "sentiment-minilm", *args, f"output.dir={out}", "training.epochs=0.01",
                "training.progress=false", "training.batch_size=64"])
    run_err = capsys.readouterr().err
    assert ran == code, run_err
    if code == 0:
        assert json.loads((out / "sentiment-minilm" / "data_report.json").read_text()) == checked
    else:
        assert checked["problems"] and all(problem in run_err for problem in checked["problems"])


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_check_on_the_shipped_examples_gives_the_run_report(tiny_models, tmp_path, capsys, path):
    _same_as_the_run(path, tiny_models["bert"], tmp_path, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("path", SHARED_FILES or [None], ids=[str(p.relative_to(SHARED)) for p in SHARED_FILES] or ["none"])
def test_check_on_the_shared_data_gives_the_run_report(tiny_models, tmp_path, capsys, path):
    if path is None:
        pytest.skip(f"../shared/data is not beside the repository ({SHARED}): the shared-data check test needs it")
    _same_as_the_run(path, tiny_models["bert"], tmp_path, capsys)


def test_check_reads_a_compressed_file_as_the_file_it_holds_and_refuses_a_binary_one(tmp_path, capsys):
    import gzip

    plain = ROOT / "examples" / "reviews.csv"
    packed = tmp_path / "reviews.csv"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    reports = []
    for path in (plain, packed):
        assert main(["check", "sentiment-minilm", "--data", str(path), "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        report["files"]["train"].pop("path")
        reports.append(report)
    assert reports[0] == reports[1] and reports[1]["files"]["train"]["encoding"] == "utf-8"
    binary = tmp_path / "model.csv"
    binary.write_bytes(b"\x00\x01binary\x00" * 100)
    assert main(["check", "sentiment-minilm", "--data", str(binary)]) == 2
    err = capsys.readouterr().err
    assert f"{binary} is binary (a NUL byte at offset 0), not a text file of CSV/TSV/JSONL" in err
    assert "Traceback" not in err
