"""The model card (README.md of a pushed repo): hub metadata, then what the model does, its data, how it was
trained, how well it does, how to load it, and its limits."""
from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import yaml

from ..data.schema import tasks_from_json

from ..hub import REPO_META
from ..markdown import code, escape, fence, table
from ..recipe import from_dict
from ..strategies import find_strategy

EXAMPLE_TEXT = "An example text to classify."
#: the license identifiers the Hugging Face Hub accepts in a model card (huggingface.co/docs/hub/repositories-licenses)
HUB_LICENSES = (
    "apache-2.0", "mit", "openrail", "bigscience-openrail-m", "creativeml-openrail-m", "bigscience-bloom-rail-1.0",
    "bigcode-openrail-m", "afl-3.0", "artistic-2.0", "bsl-1.0", "bsd", "bsd-2-clause", "bsd-3-clause",
    "bsd-3-clause-clear", "c-uda", "cc", "cc0-1.0", "cc-by-2.0", "cc-by-2.5", "cc-by-3.0", "cc-by-4.0", "cc-by-sa-3.0",
    "cc-by-sa-4.0", "cc-by-nc-2.0", "cc-by-nc-3.0", "cc-by-nc-4.0", "cc-by-nd-4.0", "cc-by-nc-nd-3.0",
    "cc-by-nc-nd-4.0", "cc-by-nc-sa-2.0", "cc-by-nc-sa-3.0", "cc-by-nc-sa-4.0", "cdla-sharing-1.0",
    "cdla-permissive-1.0", "cdla-permissive-2.0", "wtfpl", "ecl-2.0", "epl-1.0", "epl-2.0", "etalab-2.0", "eupl-1.1",
    "agpl-3.0", "gfdl", "gpl", "gpl-2.0", "gpl-3.0", "lgpl", "lgpl-2.1", "lgpl-3.0", "isc", "lppl-1.3c", "ms-pl",
    "mpl-2.0", "odc-by", "odbl", "openrail++", "osl-3.0", "postgresql", "ofl-1.1", "ncsa", "unlicense", "zlib", "pddl",
    "lgpl-lr", "deepfloyd-if-license", "llama2", "gemma", "unknown", "other",
)


def check_license(license: str) -> str:
    """`license` if the Hub knows the identifier; else HubError listing the identifiers."""
    from ..errors import HubError

    if license not in HUB_LICENSES:
        import difflib

        close = difflib.get_close_matches(str(license), HUB_LICENSES, n=1)
        raise HubError(f"license {license!r} is not a Hugging Face Hub license identifier"
                       + (f" (did you mean '{close[0]}'?)" if close else "") + f"; use one of: {', '.join(HUB_LICENSES)}")
    return license


def _read(folder: Path, name: str):
    path = folder / name
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if name.endswith(".yaml") else json.loads(text)


def _evaluation(metrics: dict) -> tuple[str, dict]:
    """The split the card reports (test if there was one, else validation) and its metrics."""
    return ("test", metrics["test"]) if metrics.get("test") else ("validation", metrics.get("validation") or {})


def front_matter(meta: dict, metrics: dict, report: dict, repo: str, license: str) -> str:
    """YAML metadata a hub understands: base_model, library_name, pipeline_tag, license, tags, model-index."""
    from huggingface_hub import EvalResult, ModelCardData

    split, scores = _evaluation(metrics)
    dataset = Path(str(report.get("files", {}).get("train", {}).get("path") or "training data")).name
    fmt = report.get("files", {}).get("train", {}).get("format") or "custom"
    heads = scores.get("tasks") or {None: scores}  # a multi-task model: each task's, named
    results = [EvalResult(task_type="text-classification", task_name="Text Classification", dataset_type=fmt,
                          dataset_name=dataset, dataset_split=split, metric_type=kind,
                          metric_value=round(task_scores[key], 4), metric_args=args,
                          metric_name=f"{split.capitalize()} {label}" + (f" ({task})" if task else ""))
               for task, task_scores in heads.items()
               for key, kind, label, args in (("accuracy", "accuracy", "accuracy", None),
                                              ("micro_f1", "f1", "micro-F1", {"average": "micro"}),
                                              ("macro_f1", "f1", "macro-F1", {"average": "macro"}))
               if key in task_scores]
    tags = ["nlptransfer", "text-classification", meta["strategy"]] + (["peft"] if meta["kind"] == "adapter" else [])
    data = ModelCardData(base_model=meta["base_model"].get("hub_id"), license=license, model_name=repo, tags=tags,
                         library_name="peft" if meta["kind"] == "adapter" else "transformers",
                         pipeline_tag="text-classification", eval_results=results or None)
    return data.to_yaml()


def _base_line(base: dict) -> str:
    if base["source"] == "embedded":
        return (f"{code(base['hub_id'])} (nlptransfer's embedded default {code(base['name'])}, "
                f"{escape(base['revision'])})")
    if base["source"] == "hub":
        return f"{code(base['hub_id'])} at revision {code(base.get('revision') or 'unknown (not in the cache at push time)')}"
    sha = f" (weights sha256 {code(base['sha256'][:16])})" if base.get("sha256") else ""
    return f"the local model folder {code(base['name'])}{sha}"


def _data_section(report: dict, names: list[str]) -> str:
    if not report:
        return "No data report was saved with this run."
    train = report.get("files", {}).get("train", {})
    used = report.get("rows_used", {})
    lines = [f"From {code(Path(str(train.get('path', 'the training file'))).name)}: {train.get('rows_read', '?')} rows read, "
             f"{sum(used.values())} used (" + ", ".join(f"{k} {v}" for k, v in used.items()) + ")."]
    dropped = [f"- {count} {split} rows: {escape(reason)}" for split, reasons in report.get("dropped", {}).items()
               for reason, count in reasons.items()]
    lines.append("Dropped rows:\n" + "\n".join(dropped) if dropped else "No rows were dropped.")
    truncated = report.get("truncated") or {}
    lines.append(f"Texts cut to the token limit: {sum(truncated.values())} (" +
                 ", ".join(f"{k} {v}" for k, v in truncated.items()) + ").")
    balance = report.get("class_balance", {})
    splits = list(balance)
    if splits:
        lines.append("Class balance:\n\n" + table(["label"] + splits, [[n] + [balance[s].get(n, 0) for s in splits]
                                                                        for n in names]))
    return "\n\n".join(lines)


def _tasks_section(tasks: dict, metrics: dict, report: dict) -> str:
    """A multi-task model's section per task: its labels with their rows per split (and rows without its label),
    and its evaluation."""
    split, scores = _evaluation(metrics)
    parts = []
    for task, label_map in tasks.items():
        names = list(label_map.names)
        info = report.get("tasks", {}).get(task, {})
        balance, missing = info.get("class_balance", {}), info.get("missing", {})
        splits = list(balance)
        rows = [[n] + [balance[s].get(n, 0) for s in splits] for n in names]
        if any(missing.values()):
            rows.append(["(no label)"] + [missing.get(s, 0) for s in splits])
        task_scores = (scores.get("tasks") or {}).get(task) or {}
        parts += [f"### {escape(task)}", "",
                  f"{len(names)} labels: {', '.join(code(n) for n in names)}. Rows per split:", "",
                  table(["label"] + splits, rows), "",
                  _evaluation_section({split: task_scores}, names) if task_scores else "No held-out split: no metrics.",
                  ""]
    return "\n".join(parts)


def _training_section(meta: dict, recipe: dict, metrics: dict) -> str:
    t = recipe.get("training", {})
    strategy = meta["strategy"]
    found = find_strategy(strategy)
    described = found.description(from_dict(recipe)) if found is not None and recipe else ""
    detail = f" ({described})" if described else ""
    trainable, total = metrics.get("trainable_parameters"), metrics.get("total_parameters")
    share = f" ({100 * trainable / total:.2f}%)" if trainable and total else ""
    return "\n".join([
        f"- base model: {_base_line(meta['base_model'])}",
        f"- strategy: {code(strategy)}{escape(detail)}; task {code(meta['task'])}; pooling {code(meta['pooling'])}",
        f"- trainable parameters: {trainable:,} of {total:,}{share}" if trainable else "- trainable parameters: unknown",
        f"- max length: {meta['max_length']} tokens (longer texts are cut)",
        f"- epochs {t.get('epochs')}, batch size {t.get('batch_size')}, learning rate {t.get('lr') or 'strategy default'}, "
        f"seed {t.get('seed')}; {metrics.get('steps', '?')} optimizer steps in {metrics.get('train_seconds', '?')} s",
        f"- published as: {'a PEFT adapter with its trained head' if meta['kind'] == 'adapter' else 'the whole model (safetensors)'}",
    ])


def _evaluation_section(metrics: dict, names: list[str]) -> str:
    split, s = _evaluation(metrics)
    if not s:
        return "No held-out split: no metrics."
    lines = [f"On the {split} split ({s.get('n', '?')} rows): accuracy {s['accuracy']:.4f}, macro-F1 {s['macro_f1']:.4f}"
             + (f", expected calibration error {s['ece']:.4f}" if "ece" in s else "") + "."]
    if "micro_f1" in s:  # multi-label: a label is predicted at or above its threshold
        lines[0] = (f"On the {split} split ({s.get('n', '?')} rows, any number of labels each): micro-F1 "
                    f"{s['micro_f1']:.4f}, macro-F1 {s['macro_f1']:.4f}, sample-F1 {s['samples_f1']:.4f}, subset "
                    f"accuracy {s['subset_accuracy']:.4f}, Hamming loss {s['hamming_loss']:.4f}, label-ranking average "
                    f"precision {s['lrap']:.4f}. Each label is predicted at or above its threshold (the table's), chosen "
                    "on the validation split to maximise its F1.")
        lines.append(table(["label", "threshold", "precision", "recall", "F1", "support", "ECE"],
                           [[n, f"{c['threshold']:g}", f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}",
                             c["support"], f"{c['ece']:.3f}"] for n, c in s["per_class"].items()]))
        return "\n\n".join(lines)
    if s.get("per_class"):
        lines.append(table(["label", "precision", "recall", "F1", "support"],
                            [[n, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", c["support"]]
                             for n, c in s["per_class"].items()]))
    if s.get("confusion_matrix"):
        m = s["confusion_matrix"]
        lines.append("Confusion matrix (rows: true label, columns: predicted):\n\n" +
                     table(["true \\ predicted"] + m["labels"], [[n] + row for n, row in zip(m["labels"], m["matrix"])]))
    return "\n\n".join(lines)


def usage_snippet(repo: str, revision: str | None, hub: str | None) -> str:
    """The Python that loads this model and predicts (the card shows it; a test runs it)."""
    args = [json.dumps(repo)] + ([f"revision={json.dumps(revision)}"] if revision else []) + (
        [f"hub={json.dumps(str(hub))}"] if hub else [])
    return ("import nlptransfer\n\n"
            f"clf = nlptransfer.TextClassifier.from_pretrained({', '.join(args)})\n"
            f"print(clf.predict([{json.dumps(EXAMPLE_TEXT)}]))\n")


def _usage_section(meta: dict, repo: str, revision: str | None, hub: str | None, multitask: bool = False) -> str:
    cli = f"nlptransfer predict {repo} --input texts.csv --output predicted.csv"
    cli += (f" --revision {revision}" if revision else "") + (f" --hub {shlex.quote(str(hub))}" if hub else "")
    parts = ["With nlptransfer installed, which fetches the files, resolves the base model, "
             "applies the adapter and predicts as the trained model did:",
             fence(usage_snippet(repo, revision, hub), "python"), f"From the command line:\n\n{fence(cli, 'bash')}"]
    if multitask:
        parts.append("It predicts every task at once (`predict` gives each text a label per task). Plain transformers "
                     "has one classification head per model: load it with nlptransfer.")
    elif meta["kind"] == "model" and meta["pooling"] == "native" and not hub:
        parts.append("Plain transformers also works: `pipeline(\"text-classification\", model=\"" + repo + "\")`.")
    elif meta["kind"] == "adapter" and meta["pooling"] == "native":
        parts.append("For a standalone transformers model, merge the adapter from the run folder: "
                     "`nlptransfer export RUN --merge OUT`.")
    return "\n\n".join(parts)


def _limits_section(meta: dict, metrics: dict, report: dict) -> str:
    split, s = _evaluation(metrics)
    items = []
    if s.get("n"):
        margin = 1.96 * math.sqrt(max(s["accuracy"] * (1 - s["accuracy"]), 1e-12) / s["n"])
        source = ("held out from the training file" if report.get("files", {}).get(split, {}).get("made_from")
                  else "from a separate file")
        items.append(f"The metrics come from {s['n']} {split} rows {source}: accuracy is known to about "
                     f"±{margin:.2f} (95%), and only for texts like those.")
    items.append("It only knows the labels above; every text gets one of them, even when none fits.")
    items.append(f"Texts longer than {meta['max_length']} tokens are cut; the rest is not read.")
    if meta["kind"] == "adapter":
        base = meta["base_model"]
        where = "on this hub" if base["source"] == "hub" else (
            "installed with nlptransfer" if base["source"] == "embedded" else f"at {code(base['name'])} (a local folder)")
        items.append(f"The adapter needs its exact base model, {where}; loading checks it.")
    if meta["pooling"] != "native":
        items.append(f"It reads the {'normalised mean (sentence embedding)' if meta['pooling'] == 'embedding' else 'mean'}"
                     " of the token states: loading it with plain transformers (which reads the first token) gives "
                     "different predictions. Load it with nlptransfer.")
    items.append("Biases of the base model and of the training data carry over; check it on your own data first.")
    return "\n".join(f"- {i}" for i in items)


def model_card(folder: Path, repo: str, revision: str | None = None, hub: str | None = None,
               license: str = "apache-2.0", check: dict | None = None) -> str:
    """The README.md for the repo folder `folder` (already staged: META, labels, recipe, metrics, data report)."""
    meta, recipe = _read(folder, REPO_META), _read(folder, "recipe.yaml")
    metrics, report = _read(folder, "metrics.json"), _read(folder, "data_report.json")
    names = [meta["labels"][k] for k in sorted(meta["labels"], key=int)]
    tasks = tasks_from_json(_read(folder, "labels.json") or {})
    if tasks:
        return _multitask_card(folder, repo, revision, hub, license, check, tasks)
    counts = ((metrics.get("test") or {}).get("per_class") or {})
    labels = table(["id", "label", "test rows"], [[i, n, counts.get(n, {}).get("support", "-")] for i, n in enumerate(names)])
    verified = (f"\n\nBefore upload, this folder was reloaded in a fresh model and reproduced the trained model's "
                f"probabilities on {check['rows']} test texts (largest difference {check['max_abs_diff']:.1e}).") if check else ""
    kind = "a PEFT adapter (with its trained classification head)" if meta["kind"] == "adapter" else "a complete model"
    return "\n".join([
        "---", front_matter(meta, metrics, report, repo, license).rstrip("\n"), "---", "",
        f"# {escape(repo)}", "",
        f"A text classifier that gives each text one of {len(names)} labels ({', '.join(code(n) for n in names)}). "
        f"It was fine-tuned with nlptransfer "
        f"from {_base_line(meta['base_model'])} and is published as {kind}.{verified}", "",
        "## Labels", "", labels, "",
        "## Training data", "", _data_section(report, names), "",
        "## Training", "", _training_section(meta, recipe, metrics), "",
        "## Evaluation", "", _evaluation_section(metrics, names), "",
        "## How to use", "", _usage_section(meta, repo, revision, hub), "",
        "## Limits", "", _limits_section(meta, metrics, report), "",
    ])


def _multitask_card(folder: Path, repo: str, revision: str | None, hub: str | None, license: str, check: dict | None,
                    tasks: dict) -> str:
    """model_card for a multi-task model: a section per task (labels, rows, evaluation) in place of one label set."""
    meta, recipe = _read(folder, REPO_META), _read(folder, "recipe.yaml")
    metrics, report = _read(folder, "metrics.json"), _read(folder, "data_report.json")
    verified = (f"\n\nBefore upload, this folder was reloaded in a fresh model and reproduced the trained model's "
                f"probabilities of every task on {check['rows']} test texts (largest difference "
                f"{check['max_abs_diff']:.1e}).") if check else ""
    kind = "a PEFT adapter (with every task's trained head)" if meta["kind"] == "adapter" else "a complete model"
    split, scores = _evaluation(metrics)
    mean = (f" Over the {split} split, the tasks' mean accuracy is {scores['accuracy']:.4f} and mean macro-F1 "
            f"{scores['macro_f1']:.4f}." if scores.get("tasks") else "")
    return "\n".join([
        "---", front_matter(meta, metrics, report, repo, license).rstrip("\n"), "---", "",
        f"# {escape(repo)}", "",
        f"A multi-task text classifier: one shared encoder with a head for each of {len(tasks)} tasks "
        f"({', '.join(code(t) for t in tasks)}), each giving a text one of its own labels"
        + ("" if all(m.kind != "multi_label" for m in tasks.values()) else
           f" (any number of them for {', '.join(code(t) for t, m in tasks.items() if m.kind == 'multi_label')}, each "
           "at or above its threshold)") + ". It was fine-tuned with "
        f"nlptransfer from {_base_line(meta['base_model'])} and is published as {kind}.{mean}{verified}", "",
        "## Tasks", "", _tasks_section(tasks, metrics, report),
        "## Training data", "", _data_section(report, []), "",
        "## Training", "", _training_section(meta, recipe, metrics), "",
        "## How to use", "", _usage_section(meta, repo, revision, hub, multitask=True), "",
        "## Limits", "", _limits_section(meta, metrics, report), "",
    ])
