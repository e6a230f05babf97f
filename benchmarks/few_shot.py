"""Few-shot and zero-shot, side by side in one run: SetFit 1.2 (the PyPI package, its documented few-shot defaults:
batch 16, 1 epoch, 20 iterations; the same embedded all-MiniLM-L6-v2 body) against nlptransfer's `contrastive`
(recipe few-shot-minilm), `head`, `full` and `zero_shot`, at k labelled rows per class, several seeds.

    pip install setfit==1.2.0        # or: pip install -e ".[bench]"
    python benchmarks/few_shot.py                                   # SST-2 and kitchen, 8/16/32/64 per class, 3 seeds
    python benchmarks/few_shot.py --data sst2 --sizes 8 --seeds 42 --methods setfit,contrastive   # a quick look
    python benchmarks/few_shot.py --table        # the table of every row saved so far, from several runs
    python benchmarks/few_shot.py --data sst2 --sizes 32,64 --methods contrastive,setfit --held-out 2000 \
        --min-words 12 --set contrastive.lr=2e-5  # choose a recipe's settings on held-out rows, never on the test rows

Data: SST-2 (../shared/data/sst2: k per class drawn from train.tsv, accuracy on dev.tsv) and the kitchen domain of
../shared/data/amazon-domains (its labelled.csv shuffled with seed 0: k per class drawn from the first half, accuracy
on the second half). max_length 128 everywhere. Each seed draws its own rows; every method sees the same rows.
Seconds: SetFit's model load + `Trainer.train()`; nlptransfer's whole `finetune` call (load, tokenize, train, save the
run folder), so ours also pays for what SetFit does not do. Prints, per data set and size, accuracy mean and standard
deviation over the seeds and mean seconds; merges each row into benchmarks/results/few_shot.json as it is measured (a
row of the same data set, size, seed and method replaces the saved one), so a grid too long for one sitting runs size
by size, and a run stopped part way keeps what it measured. With --held-out N, accuracy is on N rows of the training
pool that no seed draws from (the pool shuffled with seed 7; with --min-words W only rows of at least W words: SST-2's
training pool is mostly short phrases, a median of 7 words against 19 in dev, and 12 words or more make held-out rows
on which SetFit and contrastive differ as they do on dev), not on the test rows: the way few-shot-minilm's settings were
chosen (--set gives nlptransfer's methods recipe overrides); those rows are printed, never saved.
"""
from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
RESULTS = HERE / "results" / "few_shot.json"
#: zero_shot's label descriptions: untuned (the obvious words) and tuned by hand on SST-2 dev (reported as such)
UNTUNED = {"sst2": {"0": "a negative review", "1": "a positive review"},
           "kitchen": {"negative": "a negative review", "positive": "a positive review"}}
TUNED = {"0": ["i hated this film", "a bad, boring film", "terrible, boring and awful"],
         "1": ["i loved this film", "a good, entertaining film", "wonderful, brilliant and moving"]}


def _rows(path: Path, delimiter: str, text: str, label: str) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [(r[text], str(r[label])) for r in csv.DictReader(f, delimiter=delimiter)]


def load(name: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(pool to draw training rows from, test rows) of a data set."""
    if name == "sst2":
        return (_rows(SHARED / "sst2" / "train.tsv", "\t", "sentence", "label"),
                _rows(SHARED / "sst2" / "dev.tsv", "\t", "sentence", "label"))
    rows = _rows(SHARED / "amazon-domains" / "kitchen" / "labelled.csv", ",", "text", "label")
    random.Random(0).shuffle(rows)
    return rows[:len(rows) // 2], rows[len(rows) // 2:]


def draw(pool: list[tuple[str, str]], k: int, seed: int) -> list[tuple[str, str]]:
    """k rows of each label, seeded."""
    rng = random.Random(seed)
    out = []
    for label in sorted({y for _, y in pool}):
        out += rng.sample([r for r in pool if r[1] == label], k)
    rng.shuffle(out)
    return out


def write(rows, path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def run_setfit(train, test, seed: int, max_length: int, out: str) -> tuple[float, float]:
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from nlptransfer.models import embedded_path

    started = time.perf_counter()
    model = SetFitModel.from_pretrained(str(embedded_path()))
    # SetFit 1.2 applies TrainingArguments.max_length to its head phase only: its pair training and predict use the
    # body's max_seq_length (256 for all-MiniLM-L6-v2), so both sides see max_length tokens only when it is set here
    model.model_body.max_seq_length = max_length
    args = TrainingArguments(batch_size=16, num_epochs=1, num_iterations=20, seed=seed, max_length=max_length,
                             output_dir=out)  # its checkpoints, in the temporary folder (not the working directory)
    names = sorted({y for _, y in train})  # kitchen's labels are words: SetFit gets their positions
    trainer = Trainer(model=model, args=args, train_dataset=Dataset.from_dict(
        {"text": [t for t, _ in train], "label": [names.index(y) for _, y in train]}))
    trainer.train()
    seconds = time.perf_counter() - started
    predicted = model.predict([t for t, _ in test], batch_size=64)
    return sum(names[int(p)] == y for p, (_, y) in zip(list(predicted), test)) / len(test), seconds


def run_ours(method: str, name: str, train_file: Path, test_file: Path, seed: int, max_length: int, out: str,
             extra: dict | None = None) -> tuple[float, float]:
    import nlptransfer

    recipe = {"contrastive": "few-shot-minilm", "head": "sentiment-minilm-head", "full": "sentiment-minilm",
              "zero_shot": "zero-shot-minilm", "zero_shot_tuned": "zero-shot-minilm"}[method]
    overrides = {"training.seed": seed, "training.progress": False, "data.max_length": max_length,
                 "data.val_fraction": 0, "data.test_fraction": 0, "output.dir": out,
                 "output.name": f"{method}-{train_file.stem}-{seed}", "task": "classification"}
    if method.startswith("zero_shot"):
        overrides["labels.descriptions"] = TUNED if method == "zero_shot_tuned" else UNTUNED[name]
    overrides.update(extra or {})
    started = time.perf_counter()
    run = nlptransfer.finetune(recipe, data=str(train_file), overrides=overrides)
    seconds = time.perf_counter() - started
    return nlptransfer.evaluate_run(run.path, str(test_file))["accuracy"], seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="sst2,kitchen")
    parser.add_argument("--sizes", default="8,16,32,64", help="labelled rows per class")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--methods", default="setfit,contrastive,head,full,zero_shot,zero_shot_tuned")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--table", action="store_true", help="print the table of the saved rows and stop")
    parser.add_argument("--held-out", type=int, default=0, metavar="N",
                        help="score on N held-out rows of the training pool, not the test rows (not saved)")
    parser.add_argument("--min-words", type=int, default=0, metavar="W",
                        help="with --held-out: hold out only rows of at least W words (SST-2's training pool is "
                             "mostly short phrases, its dev set whole sentences)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a recipe override for nlptransfer's methods (repeatable)")
    args = parser.parse_args()
    from nlptransfer.recipe import overrides
    extra = overrides(args.set)
    trial = bool(args.held_out or extra)  # choosing settings: its rows are printed, never saved
    if args.table:
        if not RESULTS.exists():
            raise SystemExit(f"no results yet: {RESULTS} is written by a run")
        return table(_saved(), args.max_length)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.data.split(","):
            if not (SHARED / ("sst2" if name == "sst2" else "amazon-domains")).exists():
                raise SystemExit(f"{name}: data not found under {SHARED}")
            pool, test = load(name)
            if args.held_out:
                if args.held_out > len(pool) // 2:
                    raise SystemExit(f"--held-out {args.held_out}: {name}'s training pool has {len(pool)} rows, and "
                                     f"at most half of them may be held out")
                pool = pool[:]
                random.Random(7).shuffle(pool)
                long = [i for i, (text, _) in enumerate(pool) if len(text.split()) >= args.min_words]
                if len(long) < args.held_out:
                    raise SystemExit(f"--min-words {args.min_words}: {name}'s training pool has {len(long)} rows "
                                     f"that long, fewer than --held-out {args.held_out}")
                held = set(long[:args.held_out])
                test, pool = [pool[i] for i in sorted(held)], [r for i, r in enumerate(pool) if i not in held]
            test_file = write(test, Path(tmp) / f"{name}-test.csv")
            for k in [int(s) for s in args.sizes.split(",")]:
                for seed in [int(s) for s in args.seeds.split(",")]:
                    train = draw(pool, k, seed)
                    train_file = write(train, Path(tmp) / f"{name}-{k}-{seed}.csv")
                    for method in args.methods.split(","):
                        if method.startswith("zero_shot") and (name != "sst2" and method == "zero_shot_tuned"):
                            continue  # the tuned descriptions are SST-2's (movie reviews)
                        if method == "setfit":
                            accuracy, seconds = run_setfit(train, test, seed, args.max_length,
                                                           str(Path(tmp) / "setfit"))
                        else:
                            accuracy, seconds = run_ours(method, name, train_file, test_file, seed, args.max_length,
                                                         str(Path(tmp) / "runs"), extra)
                        row = {"data": name, "per_class": k, "seed": seed, "method": method,
                               "accuracy": round(accuracy, 4), "seconds": round(seconds, 1)}
                        if trial:
                            row.update(held_out=args.held_out, min_words=args.min_words, set=args.set)
                        results.append(row)
                        print(json.dumps(row), file=sys.stderr, flush=True)
                        if not trial:
                            _save(row)  # as it goes: a run stopped part way keeps the rows it measured
    table(results, args.max_length)
    if trial:
        print(f"(accuracy on {args.held_out} held-out rows of the training pool"
              + (f" of at least {args.min_words} words" if args.min_words else "") + ", not the test rows; "
              if args.held_out
              else "(", f"overrides: {', '.join(args.set) or 'none'}; not saved)", sep="")


def _saved() -> list[dict]:
    return json.loads(RESULTS.read_text()) if RESULTS.exists() else []


def _save(row: dict) -> None:
    """Merge one row into the results file (it replaces a saved row of the same data set, size, seed and method)."""
    key = ("data", "per_class", "seed", "method")
    saved = [r for r in _saved() if [r[k] for k in key] != [row[k] for k in key]]
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(saved + [row], indent=2))


def difference(results: list[dict], name: str, k: int) -> str:
    """contrastive's accuracy minus SetFit's in points, paired by seed (each seed draws the same rows for both): the
    mean of the differences and its standard error (their standard deviation / sqrt(seeds)), over the seeds both
    have. A gap within about two standard errors is a tie: the seeds cannot tell the two apart."""
    by = {m: {r["seed"]: r["accuracy"] for r in results if (r["data"], r["per_class"], r["method"]) == (name, k, m)}
          for m in ("contrastive", "setfit")}
    gaps = [100 * (by["contrastive"][s] - by["setfit"][s]) for s in sorted(by["contrastive"].keys() & by["setfit"])]
    if not gaps:
        return ""
    error = statistics.stdev(gaps) / len(gaps) ** 0.5 if len(gaps) > 1 else float("nan")
    return f"{statistics.mean(gaps):+.2f} ({error:.2f}), {len(gaps)} seeds"


def table(results: list[dict], max_length: int) -> None:
    """Accuracy mean (standard deviation) and mean seconds, per data set and size (rows) and method (columns)."""
    seeds = ",".join(str(s) for s in sorted({r["seed"] for r in results}))
    print(f"\nfew-shot, embedded all-MiniLM-L6-v2, max_length {max_length}, seeds {seeds}; accuracy mean "
          "(standard deviation) over the seeds; seconds: mean per run (SetFit: load + train; nlptransfer: the whole "
          "finetune call)")
    methods = list(dict.fromkeys(r["method"] for r in results))
    ratio = {"setfit", "contrastive"} <= set(methods)
    print("| data | per class | " + " | ".join(methods)
          + (" | contrastive / setfit seconds | contrastive - setfit, points (standard error) |" if ratio else " |"))
    print("|---|---|" + "---|" * (len(methods) + 2 * ratio))
    for name in dict.fromkeys(r["data"] for r in results):
        for k in sorted({r["per_class"] for r in results if r["data"] == name}):
            cells = []
            for method in methods:
                rows = [r for r in results if (r["data"], r["per_class"], r["method"]) == (name, k, method)]
                if not rows:
                    cells.append("")
                    continue
                acc = [r["accuracy"] for r in rows]
                spread = statistics.stdev(acc) if len(acc) > 1 else 0.0
                cells.append(f"{statistics.mean(acc):.3f} ({spread:.3f}), "
                             f"{statistics.mean(r['seconds'] for r in rows):.0f} s")
            if ratio:
                seconds = {m: [r["seconds"] for r in results if (r["data"], r["per_class"], r["method"]) == (name, k, m)]
                           for m in ("contrastive", "setfit")}
                cells.append(f"{statistics.mean(seconds['contrastive']) / statistics.mean(seconds['setfit']):.2f}"
                             if all(seconds.values()) else "")
                cells.append(difference(results, name, k))
            print(f"| {name} | {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
