"""Multi-label, side by side in one run: nlptransfer `full` and `lora` against the transformers `Trainer`
(`problem_type="multi_label_classification"`) on identical splits, and SetFit 1.2 one-vs-rest against nlptransfer's
`head` at 8 and 32 examples per label, on SemEval-2018 Task 1 E-c (English tweets, 11 emotions as 0/1 columns).

    pip install setfit==1.2.0 iterative-stratification      # SetFit for its column; the splits need iterstrat
    python benchmarks/multilabel.py                          # 3 seeds, every system
    python benchmarks/multilabel.py --systems full,lora      # part of the grid; the rows merge into the JSON
    python benchmarks/multilabel.py --table                  # the table of the rows saved with these settings
    python benchmarks/multilabel.py --rows 400 --seeds 42 --epochs 1 --systems trainer,setfit   # a quick look

Data: ../shared/data/semeval2018-ec. Its dev file (886 tweets) is the test split. For each seed, 10% of the train file
(6,838 tweets; with --rows R, R of them evenly spaced through it) is carved as validation by iterative stratification
(`MultilabelStratifiedShuffleSplit`, random_state=seed); train, validation and test go to a temporary folder as TSV
(Tweet + the 11 label columns), so every system reads identical rows. max_length 128 everywhere.

- nlptransfer full / lora: `nlptransfer run` (a subprocess) with the recipes `multilabel-minilm` (or --recipe) and
  `multilabel-minilm-lora`, `data.label_columns` = the 11 emotions, validation and test files given. Its scores are
  its metrics.json (thresholds as the run chose them on validation) and, from its predictions.csv, every label at 0.5.
- Trainer: `AutoModelForSequenceClassification` from the embedded all-MiniLM-L6-v2, 11 outputs, float labels, the
  full recipe's epochs, batch size, learning rate, warmup fraction, weight decay and gradient clipping; scored at 0.5
  and with per-label thresholds tuned on its own validation probabilities by `tune_thresholds`, the function
  nlptransfer uses, so the gain of tuning shows apart from the training.
- SetFit 1.2 (`multi_target_strategy="one-vs-rest"`, its few-shot defaults as in few_shot.py: batch 16, 1 epoch, 20
  iterations) against nlptransfer's `multilabel-minilm-head` recipe (frozen features + head; `contrastive` refuses
  multi-label) on the same sampled rows: per seed, labels from rarest to commonest in the train split, each gets rows
  positive for it drawn (random.Random(seed)) from those not drawn yet until the drawn rows hold N of its positives;
  so each label has at least N, common labels more, and a tweet with no emotion is never drawn. SetFit is scored with
  its predict (0.5) and, as an extra row, with thresholds tuned on validation; head as its run chose, and at 0.5.

Seconds: train = the training loop only (each Trainer.train(); nlptransfer's `train_seconds` from metrics.json: its
loop with the validation passes it makes; `head` computes its frozen features before it); whole = load to test
probabilities (nlptransfer: the subprocess's wall time, which also saves the run folder). Prints the table (mean ± sd
over seeds), the gain of threshold tuning and the targets (full's micro-F1 >= the Trainer's with tuned thresholds,
in <= 2/3 of its train seconds); merges per-seed rows into benchmarks/results/multilabel.json as they are measured.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "semeval2018-ec"
RESULTS = HERE / "results" / "multilabel.json"
LABELS = ["anger", "anticipation", "disgust", "fear", "joy", "love", "optimism", "pessimism", "sadness", "surprise",
          "trust"]
SYSTEMS = ("full", "lora", "trainer", "setfit", "head")
TUNED, HALF = "tuned on validation", "0.5"
#: the Trainer's and SetFit's extra row: each label's threshold at its own best F1 (what maximises macro-F1)
PER_LABEL = "each label's F1 on validation"
KEY = ("seed", "system", "strategy", "examples", "thresholds", "rows", "epochs", "max_length")


def read(path: Path) -> list[tuple[str, list[int]]]:
    """(tweet, [11 0/1]) per row of a SemEval E-c file (TSV, CRLF, no quoting)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [(r["Tweet"], [int(r[k]) for k in LABELS]) for r in csv.DictReader(f, delimiter="\t",
                                                                                quoting=csv.QUOTE_NONE)]


def distinct(rows: list) -> tuple[list, int]:
    """The rows with each text (whitespace aside) once: a text repeated with the same labels keeps its first row, one
    repeated with other labels (label noise) is left out; and how many rows went. Every system trains on the result:
    nlptransfer refuses label noise and a validation text also in train, so the carving must not make them."""
    by_text: dict[str, list] = {}
    for text, y in rows:
        by_text.setdefault(" ".join(text.split()), []).append((text, y))
    kept = [same[0] for same in by_text.values() if all(y == same[0][1] for _, y in same)]
    return kept, len(rows) - len(kept)


def write(rows: list[tuple[str, list[int]]], path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["Tweet", *LABELS])
        w.writerows([text, *y] for text, y in rows)
    return path


def carve(rows: list, seed: int) -> tuple[list, list]:
    """(train, validation): 10% carved by iterative stratification, seeded."""
    from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit

    gold = np.array([y for _, y in rows])
    train, val = next(MultilabelStratifiedShuffleSplit(n_splits=1, test_size=0.1, random_state=seed)
                      .split(np.zeros((len(rows), 1)), gold))
    return [rows[i] for i in sorted(train)], [rows[i] for i in sorted(val)]


def sample(rows: list, n: int, seed: int) -> list:
    """Rows drawn so each label has at least n positive rows among them (greedy over labels, rarest first)."""
    rng = random.Random(seed)
    chosen: list[int] = []
    have = [0] * len(LABELS)
    for k in sorted(range(len(LABELS)), key=lambda k: (sum(y[k] for _, y in rows), k)):
        taken = set(chosen)
        pool = [i for i, (_, y) in enumerate(rows) if y[k] and i not in taken]
        rng.shuffle(pool)
        for i in pool[:max(0, n - have[k])]:
            chosen.append(i)
            have = [h + v for h, v in zip(have, rows[i][1])]
    rng.shuffle(chosen)
    return [rows[i] for i in chosen]


def scores(gold, probs, thresholds) -> dict:
    """The figures of a row, by nlptransfer's multi-label scorer."""
    from nlptransfer.multilabel_metrics import multi_label_metrics

    m = multi_label_metrics(np.asarray(gold), np.asarray(probs), np.asarray(thresholds, dtype=float), LABELS)
    return {k: round(m[k], 4) for k in ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss")}


def tuned(gold, probs, recipe: str = "multilabel-minilm", objective: str | None = None):
    """Per-label thresholds tuned on validation, as nlptransfer tunes them for `recipe` (to maximise its
    training.metric: micro-F1 over all labels for the shipped multi-label recipes)."""
    from nlptransfer.multilabel_metrics import tune_thresholds
    from nlptransfer.recipe import load
    from nlptransfer.sections import threshold_objective

    objective = objective or threshold_objective(load(recipe).training.metric)
    return tune_thresholds(np.asarray(gold), np.asarray(probs), 5, objective)[0]


def full_settings(recipe: str, epochs: float | None) -> dict:
    """The training settings of the full recipe, which the Trainer copies."""
    from nlptransfer.recipe import load

    t = load(recipe).training
    return {"recipe": recipe, "epochs": epochs or t.epochs, "batch_size": t.batch_size, "lr": t.lr,
            "warmup_fraction": t.warmup_fraction, "weight_decay": t.weight_decay, "max_grad_norm": t.max_grad_norm}


def run_trainer(train, val, test, seed: int, s: dict, max_length: int, out: str) -> tuple:
    """(validation probabilities, test probabilities, train seconds, whole seconds) of the Trainer anchor."""
    import torch
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    from nlptransfer.models import embedded_path

    started = time.perf_counter()
    path = str(embedded_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoded = tokenizer([t for t, _ in train], truncation=True, max_length=max_length)
    dataset = [{"input_ids": i, "attention_mask": m, "labels": [float(v) for v in y]}
               for i, m, (_, y) in zip(encoded["input_ids"], encoded["attention_mask"], train)]
    model = AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(LABELS), problem_type="multi_label_classification",
        id2label=dict(enumerate(LABELS)), label2id={k: i for i, k in enumerate(LABELS)})
    args = TrainingArguments(output_dir=out, per_device_train_batch_size=s["batch_size"], learning_rate=s["lr"],
                             num_train_epochs=s["epochs"], warmup_steps=s["warmup_fraction"],
                             weight_decay=s["weight_decay"], max_grad_norm=s["max_grad_norm"], seed=seed,
                             logging_strategy="no", save_strategy="no", eval_strategy="no", report_to="none")
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer))
    begun = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - begun
    model.eval()

    @torch.no_grad()
    def probs(rows):
        out = []
        for i in range(0, len(rows), 64):
            b = tokenizer([t for t, _ in rows[i:i + 64]], truncation=True, max_length=max_length, padding=True,
                          return_tensors="pt").to(model.device)
            out.append(torch.sigmoid(model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
                                     .float()).cpu().numpy())
        return np.concatenate(out)

    val_probs, test_probs = probs(val), probs(test)
    return val_probs, test_probs, train_seconds, time.perf_counter() - started


def setfit_blocked() -> str | None:
    """Why SetFit 1.2 cannot run here, or None."""
    try:
        import setfit
    except Exception as e:  # not installed, or its import fails against this transformers
        return f"setfit does not import: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if not setfit.__version__.startswith("1.2."):
        return f"setfit {setfit.__version__} is installed, not 1.2"
    return None


def run_setfit(train, val, test, seed: int, max_length: int, out: str) -> tuple:
    """(validation probabilities, test probabilities, train seconds, whole seconds) of SetFit one-vs-rest."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from nlptransfer.models import embedded_path

    started = time.perf_counter()
    model = SetFitModel.from_pretrained(str(embedded_path()), multi_target_strategy="one-vs-rest")
    model.model_body.max_seq_length = max_length  # as in few_shot.py: SetFit's pairs and predict read this one
    args = TrainingArguments(batch_size=16, num_epochs=1, num_iterations=20, seed=seed, max_length=max_length,
                             output_dir=out, report_to="none")
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict(
        {"text": [t for t, _ in train], "label": [list(y) for _, y in train]}))
    begun = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - begun
    val_probs, test_probs = (np.asarray(model.predict_proba([t for t, _ in rows], batch_size=64, as_numpy=True))
                             for rows in (val, test))
    return val_probs, test_probs, train_seconds, time.perf_counter() - started


def run_nlptransfer(recipe: str, name: str, files: dict, seed: int, max_length: int, epochs: float | None,
                    out: Path) -> dict:
    """nlptransfer run in a subprocess: {"block": its test metrics, "probs": test probabilities from
    predictions.csv (None if it has no prob_<label> columns), "train_seconds", "whole_seconds"}; or {"failed": why}."""
    cmd = [sys.executable, "-m", "nlptransfer", "run", recipe, "--data", str(files["train"]),
           "--validation", str(files["validation"]), "--test", str(files["test"]), "--output", str(out),
           "--name", name, "task=multi_label", f"data.label_columns=[{', '.join(LABELS)}]",
           "data.text_columns=[Tweet]", f"data.max_length={max_length}", f"training.seed={seed}",
           "training.progress=false", *([f"training.epochs={epochs}"] if epochs else [])]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(HERE.parent), os.environ.get("PYTHONPATH"))
                                                      if p))  # this checkout's nlptransfer, as the script imports
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    whole = time.perf_counter() - started
    if done.returncode:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"failed": f"exit {done.returncode}: " + " / ".join(tail).replace("|", "/")[:300]}
    metrics = json.loads((out / name / "metrics.json").read_text())
    test = metrics["test"]
    blocks = [test] if "micro_f1" in test else [b for b in (test.get("tasks") or {}).values() if "micro_f1" in b]
    if len(blocks) != 1:
        return {"failed": f"metrics.json has no single multi-label test block (keys: {sorted(test)})"}
    with open(out / name / "predictions.csv", newline="", encoding="utf-8") as f:
        predictions = list(csv.DictReader(f))
    probs = None
    if predictions and all(f"prob_{k}" in predictions[0] for k in LABELS):
        probs = np.array([[float(r[f"prob_{k}"]) for k in LABELS] for r in predictions])
    from nlptransfer import TextClassifier

    with open(files["validation"], newline="", encoding="utf-8") as f:  # as write() wrote it
        val = [(r["Tweet"], [int(r[k]) for k in LABELS]) for r in csv.DictReader(f, delimiter="\t")]
    val_probs = TextClassifier.load(out / name).predict_proba([t for t, _ in val])  # for the per-label-F1 row
    return {"block": blocks[0], "probs": probs, "train_seconds": metrics["train_seconds"], "whole_seconds": whole,
            "val": val, "val_probs": val_probs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"any of {', '.join(SYSTEMS)}")
    parser.add_argument("--sizes", default="8,32", help="positive rows per label for setfit and head")
    parser.add_argument("--rows", type=int, default=None, help="train rows before carving (default: all 6,838)")
    parser.add_argument("--epochs", type=float, default=None,
                        help="epochs of full, lora and the Trainer (default: the recipes'); not SetFit's or head's")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--recipe", default="multilabel-minilm",
                        help="full fine-tuning recipe: nlptransfer full runs it, the Trainer copies its settings")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--table", action="store_true", help="print the table of the saved rows and stop")
    args = parser.parse_args()
    systems = args.systems.split(",")
    if set(systems) - set(SYSTEMS):
        sys.exit(f"--systems: unknown {', '.join(sorted(set(systems) - set(SYSTEMS)))}; choose from {SYSTEMS}")
    if not DATA.is_dir():
        sys.exit(f"{DATA} is not here: this benchmark needs ../shared/data/semeval2018-ec")
    settings = {"rows": args.rows, "epochs": args.epochs, "max_length": args.max_length}
    out = Path(args.out)
    if args.table:
        return report([r for r in _saved(out) if all(r.get(k) == v for k, v in settings.items())])
    trainer_settings = full_settings(args.recipe, args.epochs) if "trainer" in systems else None
    blocked = setfit_blocked() if "setfit" in systems else None
    if blocked:
        print(f"SetFit 1.2 blocked: {blocked}", file=sys.stderr)
    pool, test = read(DATA / "2018-E-c-En-train.txt"), read(DATA / "2018-E-c-En-dev.txt")
    pool, removed = distinct(pool)
    print(f"train file: {removed} rows left out for every system (a text repeated, whitespace aside, with other "
          "labels)", flush=True)
    if args.rows and args.rows < len(pool):
        pool = [pool[i * len(pool) // args.rows] for i in range(args.rows)]

    def keep(seed, system, strategy, examples, thresholds, train_rows, figures, train_s=None, whole_s=None, **extra):
        row = {"seed": seed, "system": system, "strategy": strategy, "examples": examples, "thresholds": thresholds,
               **settings, "train_rows": train_rows, **figures, "train_seconds": train_s and round(train_s, 1),
               "whole_seconds": whole_s and round(whole_s, 1), **extra}
        _save(out, row)
        print(json.dumps(row), file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="nlptransfer-multilabel-") as tmp:
        folder = Path(tmp)
        test_file = write(test, folder / "test.tsv")
        gold = [y for _, y in test]
        for seed in [int(s) for s in args.seeds.split(",")]:
            train, val = carve(pool, seed)
            files = {"train": write(train, folder / f"train-{seed}.tsv"),
                     "validation": write(val, folder / f"validation-{seed}.tsv"), "test": test_file}
            n = len(train)
            for system, recipe in (("full", args.recipe), ("lora", "multilabel-minilm-lora")):
                if system in systems:
                    r = run_nlptransfer(recipe, f"{system}-{seed}", files, seed, args.max_length, args.epochs,
                                        folder / "runs")
                    _keep_ours(keep, r, seed, system, "all", n, gold)
            if "trainer" in systems:
                _keep_pair(keep, seed, "Trainer", "full", "all", n, gold, val, run_trainer(
                    train, val, test, seed, trainer_settings, args.max_length, str(folder / "trainer")))
            for size in [int(s) for s in args.sizes.split(",")] if {"setfit", "head"} & set(systems) else []:
                drawn = sample(train, size, seed)
                examples = f"{size} per label"
                if "setfit" in systems and blocked:
                    keep(seed, "SetFit 1.2", "one-vs-rest", examples, HALF, len(drawn), {}, blocked=blocked)
                elif "setfit" in systems:
                    _keep_pair(keep, seed, "SetFit 1.2", "one-vs-rest", examples, len(drawn), gold, val,
                               run_setfit(drawn, val, test, seed, args.max_length, str(folder / "setfit")))
                if "head" in systems:
                    drawn_files = dict(files, train=write(drawn, folder / f"train-{seed}-{size}.tsv"))
                    r = run_nlptransfer("multilabel-minilm-head", f"head-{seed}-{size}", drawn_files, seed,
                                        args.max_length, None, folder / "runs")
                    _keep_ours(keep, r, seed, "head", examples, len(drawn), gold)
    report([r for r in _saved(out) if all(r.get(k) == v for k, v in settings.items())])


def _keep_pair(keep, seed: int, system: str, strategy: str, examples: str, n: int, gold, val, result: tuple) -> None:
    """A model's rows at 0.5 and with per-label thresholds tuned on its own validation probabilities."""
    val_probs, test_probs, train_s, whole_s = result
    gold_val = [y for _, y in val]
    for thresholds, t in ((HALF, [0.5] * len(LABELS)), (TUNED, tuned(gold_val, val_probs)),
                          (PER_LABEL, tuned(gold_val, val_probs, objective="label_f1"))):
        keep(seed, system, strategy, examples, thresholds, n, scores(gold, test_probs, t), train_s, whole_s)


def _keep_ours(keep, r: dict, seed: int, strategy: str, examples: str, train_rows: int, gold) -> None:
    """An nlptransfer run's rows: its own thresholds (metrics.json), and every label at 0.5 (predictions.csv)."""
    if "failed" in r:
        print(f"nlptransfer {strategy}, seed {seed}: {r['failed']}", file=sys.stderr)
        return keep(seed, "nlptransfer", strategy, examples, TUNED, train_rows, {}, failed=r["failed"])
    b = r["block"]
    figures = {k: round(b[k], 4) for k in ("micro_f1", "macro_f1", "samples_f1", "subset_accuracy", "hamming_loss")}
    keep(seed, "nlptransfer", strategy, examples, TUNED, train_rows, figures, r["train_seconds"], r["whole_seconds"],
         chosen=b.get("thresholds"))
    if r["probs"] is not None and len(r["probs"]) == len(gold):
        keep(seed, "nlptransfer", strategy, examples, HALF, train_rows, scores(gold, r["probs"], [0.5] * len(LABELS)),
             r["train_seconds"], r["whole_seconds"])
        each = tuned([y for _, y in r["val"]], r["val_probs"], objective="label_f1")
        keep(seed, "nlptransfer", strategy, examples, PER_LABEL, train_rows, scores(gold, r["probs"], each),
             r["train_seconds"], r["whole_seconds"])


def _saved(out: Path) -> list[dict]:
    return json.loads(out.read_text())["rows"] if out.exists() else []


def _save(out: Path, row: dict) -> None:
    """Merge one row into the results file, as it is measured (a run stopped part way keeps what it measured)."""
    rows = [r for r in _saved(out) if [r.get(k) for k in KEY] != [row.get(k) for k in KEY]]
    out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"python": platform.python_version(), "cpu": platform.processor() or platform.machine(),
               "cpus": os.cpu_count()}
    out.write_text(json.dumps({"machine": machine, "rows": rows + [row]}, indent=2) + "\n")


def _mean_sd(xs: list[float]) -> str:
    return f"{statistics.mean(xs):.4f} ± {statistics.stdev(xs) if len(xs) > 1 else 0.0:.4f}"


def report(rows: list[dict]) -> None:
    """The table (a row per system, strategy, examples and thresholds), the gain of tuning, the targets."""
    seeds = ",".join(str(s) for s in sorted({r["seed"] for r in rows}))
    print(f"\nSemEval-2018 E-c (test: its 886 dev tweets), embedded all-MiniLM-L6-v2, seeds {seeds}; F1 mean ± sd "
          "over the seeds; seconds: mean per run (train: the training loop; whole: load to test probabilities)")
    print("| system | strategy | examples | thresholds | micro-F1 | macro-F1 | train s | whole s |")
    print("|---|---|---|---|---|---|---|---|")
    for g in dict.fromkeys(_group(r) for r in rows):
        rs = [r for r in rows if _group(r) == g]
        ok = [r for r in rs if "micro_f1" in r]
        why = next((r.get("blocked") or r.get("failed") for r in rs if "micro_f1" not in r), None)
        if not ok:
            print(f"| {' | '.join(g)} | {'blocked' if rs[0].get('blocked') else 'failed'}: {why} | | | |")
            continue
        seconds = [statistics.mean(r[k] for r in ok) if all(r[k] is not None for r in ok) else None
                   for k in ("train_seconds", "whole_seconds")]
        print(f"| {' | '.join(g)} | {_mean_sd([r['micro_f1'] for r in ok])} | {_mean_sd([r['macro_f1'] for r in ok])}"
              f" | {' | '.join('' if s is None else f'{s:.0f}' for s in seconds)} |"
              + (f" ({len(ok)} of {len(rs)} seeds; {why})" if why else ""))
    for system, strategy in (("Trainer", "full"), ("nlptransfer", "full")):
        gain = _paired(rows, (system, strategy, "all", TUNED), (system, strategy, "all", HALF))
        if gain:
            print(f"threshold tuning, {system} {strategy}: micro-F1 {gain['micro_f1']}, macro-F1 {gain['macro_f1']} "
                  f"(tuned minus 0.5, mean ± sd over {gain['seeds']} seeds)")
    for line in targets(rows):
        print(line)


def _paired(rows: list[dict], a: tuple, b: tuple) -> dict | None:
    """Mean ± sd over seeds of a's figures minus b's (the seeds both have)."""
    by = [{r["seed"]: r for r in rows if _group(r) == g and "micro_f1" in r} for g in (a, b)]
    seeds = sorted(by[0].keys() & by[1].keys())
    if not seeds:
        return None
    diff = {k: [by[0][s][k] - by[1][s][k] for s in seeds] for k in ("micro_f1", "macro_f1")}
    return {k: f"{statistics.mean(v):+.4f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.4f}"
            for k, v in diff.items()} | {"seeds": len(seeds)}


def targets(rows: list[dict]) -> list[str]:
    """The issue's targets, nlptransfer full against the Trainer, both with tuned thresholds: met / not met."""
    def mean(system, key):
        xs = [r[key] for r in rows if _group(r) == (system, "full", "all", TUNED) and r.get(key) is not None]
        return statistics.mean(xs) if xs else None

    (f1, f1_t), (sec, sec_t) = [(mean("nlptransfer", k), mean("Trainer", k)) for k in ("micro_f1", "train_seconds")]
    missing = "not measured (needs full and trainer)"
    return ["target micro-F1 >= the Trainer's (tuned thresholds): " + (missing if None in (f1, f1_t) else
            f"{'met' if f1 >= f1_t else 'not met'} ({f1:.4f} vs {f1_t:.4f})"),
            "target train seconds <= 2/3 of the Trainer's: " + (missing if None in (sec, sec_t) else
            f"{'met' if sec <= 2 / 3 * sec_t else 'not met'} ({sec:.0f} s vs {sec_t:.0f} s, ratio {sec / sec_t:.2f})")]


def _group(r: dict) -> tuple:
    return r["system"], r["strategy"], r["examples"], r["thresholds"]


if __name__ == "__main__":
    main()
