"""The data stage at scale: today's path (an earlier commit, default the one before the Arrow token store) against this
one, on synthetic files of 100k, 1M and 3M rows.

    python benchmarks/data_scale.py                                  # short rows 100k/1M/3M, long 100k; old at 100k, 1M
    python benchmarks/data_scale.py --rows 100000 --kinds short      # a quick look
    python benchmarks/data_scale.py --train --predict                # also 200 training steps and predict at 1M rows

Files: `short` is SST-2's training sentences (../shared/data/sst2/train.tsv) each with a unique suffix (" #<row>"),
`long` the reviews of ../shared/data/amazon-domains (all four domains, labelled and unlabelled, labels from the
labelled ones) each with a unique suffix; written once under --scratch (never into the repository). Each measurement
runs in its own process (peak RSS is that process's), with the recipe sentiment-minilm (the embedded MiniLM's
tokenizer, max_length 128): read+check is `pipeline.load_data` (read, infer columns, check, split); tokenize is every
split's token ids (old: `batching.tokenize`; new: `tokens.tokenize_cached` into an empty cache); second run is
read+check+tokenize again over the same file (new: the token cache kept; old: it has none, so its first run's time);
footprint is a process that loads the model and no data. --train measures peak RSS of a run of 200 training steps of
strategy full (batch 32; validation and test 1% each so evaluation stays short); --predict that of `nlptransfer
predict` over the whole file with that run. The old code is the commit's tree (git archive) in a temporary folder,
imported in its own processes. Prints one table; writes benchmarks/results/data_scale.json.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"
SIZES = {"100k": 100_000, "1M": 1_000_000, "3M": 3_000_000}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------- files

def _source_rows(kind: str) -> list[tuple[str, str]]:
    if kind == "short":
        with open(SHARED / "sst2" / "train.tsv", encoding="utf-8", newline="") as f:
            return [(r["sentence"].strip(), r["label"]) for r in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)]
    rows = []
    for domain in sorted(p for p in (SHARED / "amazon-domains").iterdir() if p.is_dir()):
        for name in ("labelled.csv", "unlabelled.csv"):
            with open(domain / name, encoding="utf-8", newline="") as f:
                rows += [(r["text"].replace("\n", " "), r.get("label") or ("positive" if len(rows) % 2 else "negative"))
                         for r in csv.DictReader(f)]
    return rows


def make_file(kind: str, rows: int, scratch: Path) -> Path:
    path = scratch / f"{kind}_{rows}.csv"
    if path.exists():
        return path
    source = _source_rows(kind)
    scratch.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    with open(temp, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(rows):
            text, label = source[i % len(source)]
            w.writerow([f"{text} #{i}", label])
    temp.rename(path)
    return path


# ---------------------------------------------------------------- one measurement (in its own process)

def child(mode: str, path: str, cache: str, out: str) -> dict:
    os.environ["NLPTRANSFER_CACHE"] = cache
    # only the tree on PYTHONPATH: an editable install's finder would fill in modules the old tree lacks from this one
    sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
    import nlptransfer
    from nlptransfer import models, pipeline
    from nlptransfer.recipe import resolve

    recipe_file = str(ROOT / "recipes" / "sentiment-minilm.yaml")  # the same file for old and new code
    overrides = {"data.max_length": 128, "output.dir": out, "training.progress": False, "report.enabled": False}
    if mode == "footprint":
        base = models.resolve("minilm", None)
        from nlptransfer.data import LabelMap

        models.load_classifier(base, LabelMap(["negative", "positive"]), False)
        models.load_tokenizer(base, False)
        return {"peak_mb": _peak_mb()}
    if mode in ("data", "again"):
        recipe = resolve(recipe_file, path, overrides)
        started = time.perf_counter()
        splits = pipeline.load_data(recipe)
        read = time.perf_counter() - started
        tokenizer = models.load_tokenizer(models.resolve(recipe.model, None), False)
        started = time.perf_counter()
        parts = [p for p in (splits.train, splits.validation, splits.test) if p is not None]
        try:
            from nlptransfer.tokens import tokenize_cached as encode
        except ImportError:  # the old code
            from nlptransfer.batching import tokenize as encode
        encoded = [encode(tokenizer, p.texts, 128, p.labels) for p in parts]
        tok = time.perf_counter() - started
        return {"read_s": read, "tokenize_s": tok, "peak_mb": _peak_mb(), "rows": sum(len(e) for e in encoded),
                "cached": all(getattr(e, "cached", False) for e in encoded)}
    if mode == "train":
        rows = sum(1 for _ in open(path, encoding="utf-8")) - 1
        overrides.update({"training.epochs": 200 * 32 / (rows * 0.98), "training.batch_size": 32,
                          "data.val_fraction": 0.01, "data.test_fraction": 0.01, "training.eval_every": 0})
        started = time.perf_counter()
        run = nlptransfer.finetune(recipe_file, data=path, overrides=overrides)
        return {"train_s": time.perf_counter() - started, "peak_mb": _peak_mb(), "run": str(run.path)}
    if mode == "predict":
        run = json.loads(Path(out, "run.json").read_text())["run"]
        started = time.perf_counter()
        n = nlptransfer.predict_file(run, path, str(Path(out) / "predicted.csv"))
        return {"predict_s": time.perf_counter() - started, "peak_mb": _peak_mb(), "rows": n}
    raise SystemExit(f"unknown mode {mode}")


def measure(code: Path, mode: str, path: Path, cache: Path, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(code), "TOKENIZERS_PARALLELISM": "true", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, __file__, "--child", mode, str(path), str(cache), str(out)], env=env,
                          capture_output=True, text=True, cwd=tempfile.gettempdir())
    if done.returncode:
        return {"error": (done.stderr.strip().splitlines() or ["?"])[-1][:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def old_tree(ref: str, into: Path) -> Path:
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "nlptransfer", "recipes"], capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    (into / "nlptransfer" / "recipes").mkdir(exist_ok=True)  # the installed package maps recipes/ there
    for recipe in (into / "recipes").glob("*.yaml"):
        shutil.copy(recipe, into / "nlptransfer" / "recipes" / recipe.name)
    return into


# ---------------------------------------------------------------- the table

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="100000,1000000,3000000")
    ap.add_argument("--kinds", default="short,long")
    ap.add_argument("--old", default="2959be1~1", help="the commit of today's path (default: before this change)")
    ap.add_argument("--old-key", default="old", help="where the --old measurements go in the results (a second "
                    "baseline, e.g. the code the issue measured: --old dd5acd1~1 --old-key older)")
    ap.add_argument("--old-max-rows", type=int, default=1_000_000, help="today's path only up to this size")
    ap.add_argument("--long-max-rows", type=int, default=100_000, help="long reviews only up to this size")
    ap.add_argument("--train", action="store_true", help="peak RSS of 200 training steps (new path)")
    ap.add_argument("--predict", action="store_true", help="peak RSS of predict over the whole file (new path)")
    ap.add_argument("--run-rows", default="1000000", help="sizes (short rows) that --train and --predict measure at")
    ap.add_argument("--scratch", default=str(Path(tempfile.gettempdir()) / "nlptransfer-data-scale"))
    args = ap.parse_args()
    scratch = Path(args.scratch)
    results_path = HERE / "results" / "data_scale.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        old = old_tree(args.old, work / "old")
        footprint = measure(ROOT, "footprint", Path("-"), work / "c0", work / "o0")
        print(f"model footprint (MiniLM loaded, no data): {footprint}", flush=True)
        results["footprint_mb"] = footprint.get("peak_mb")
        for kind in args.kinds.split(","):
            for rows in map(int, args.rows.split(",")):
                if kind == "long" and rows > args.long_max_rows:
                    continue
                path = make_file(kind, rows, scratch)
                key = f"{kind}/{rows}"
                row = {"file_mb": path.stat().st_size / 2**20}
                cache = work / f"cache-{kind}-{rows}"
                if args.old_key == "old":  # else a second baseline alone: the other sides stay as measured before
                    row["new"] = measure(ROOT, "data", path, cache, work)
                    row["new_again"] = measure(ROOT, "again", path, cache, work)
                if rows <= args.old_max_rows:
                    row[args.old_key] = {**measure(old, "data", path, work / "old-cache", work), "ref": args.old}
                if (args.train or args.predict) and kind == "short" and str(rows) in args.run_rows.split(","):
                    out = work / f"run-{kind}-{rows}"
                    row["train"] = measure(ROOT, "train", path, cache, out)
                    if args.predict and "run" in row["train"]:
                        (out / "run.json").write_text(json.dumps({"run": row["train"]["run"]}))
                        row["predict"] = measure(ROOT, "predict", path, cache, out)
                    shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(cache, ignore_errors=True)
                results.setdefault("rows", {}).setdefault(key, {}).update(row)
                print(json.dumps({key: row}), flush=True)
                results_path.parent.mkdir(exist_ok=True)
                results_path.write_text(json.dumps(results, indent=1))
    print_table(results)


def _fmt(m: dict | None, key: str, unit: str = "s") -> str:
    if not m:
        return ""
    if "error" in m:
        return "failed"
    value = m.get(key)
    return "" if value is None else (f"{value:,.0f} MB" if unit == "MB" else f"{value:.1f} s")


def print_table(results: dict) -> None:
    print(f"\nmodel footprint: {results.get('footprint_mb') or 0:,.0f} MB; times on this machine ({os.cpu_count()} CPU cores)")
    print("| file | rows | path | read+check | tokenize | second run (data) | peak RSS (data) | peak RSS (200 steps) "
          "| peak RSS (predict) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key, row in results.get("rows", {}).items():
        kind, rows = key.split("/")
        for side in ("older", "old", "new"):
            m = row.get(side)
            if not m:
                continue
            again = row.get("new_again") if side == "new" else m
            second = "" if not again or "error" in again else f"{again['read_s'] + again['tokenize_s']:.1f} s"
            if side == "new" and again and "error" not in again:
                second += " (cached)" if again.get("cached") else " (not cached)"
            extra = [_fmt(row.get("train"), "peak_mb", "MB"), _fmt(row.get("predict"), "peak_mb", "MB")] \
                if side == "new" else ["", ""]
            name = "new" if side == "new" else f"before ({m.get('ref', '?')})"
            print(f"| {kind} ({row['file_mb']:.0f} MB) | {int(rows):,} | {name} | "
                  f"{_fmt(m, 'read_s')} | {_fmt(m, 'tokenize_s')} | {second} | {_fmt(m, 'peak_mb', 'MB')} | "
                  + " | ".join(extra) + " |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(*sys.argv[2:6])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--table":
        print_table(json.loads((HERE / "results" / "data_scale.json").read_text()))
    else:
        main()
