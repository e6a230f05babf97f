"""Multi-task against single-task on the Amazon multi-domain data (../shared/data/amazon-domains), with the embedded
MiniLM: the four domains' labelled reviews pooled into one file with two label columns, sentiment (positive /
negative) and domain (books, dvd, electronics, kitchen, from the folder each review came from).

    python benchmarks/multitask.py                          # 3 seeds, 1 epoch, max_length 128
    python benchmarks/multitask.py --seeds 42 --rows 300    # a quick look: 300 reviews per domain

For each seed: one multi-task run (`data.label_columns: [sentiment, domain]`; 10% validation and 10% test carved,
stratified on sentiment), then its report (`nlptransfer report`), which trains the same recipe on each task alone on
the very rows the multi-task run had (its train, validation and test splits) and compares the two models on the same
test rows: accuracy, the paired bootstrap interval of the difference, McNemar's p, and the verdict (sharing helped /
hurt / no clear difference). Prints a row per seed and task, the means over seeds, and the wall times; writes
benchmarks/results/multitask.json. The pooled file goes to a temporary folder, never into the repository.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "amazon-domains"
DOMAINS = ["books", "dvd", "electronics", "kitchen"]


def pooled(folder: Path, rows: int | None) -> Path:
    """The four domains' labelled reviews in one CSV: text, sentiment, domain (with `rows`, that many of each domain,
    evenly spaced through its file, which lists its positive reviews first)."""
    path = folder / "amazon-pooled.csv"
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["text", "sentiment", "domain"])
        for domain in DOMAINS:
            with open(DATA / domain / "labelled.csv", newline="", encoding="utf-8") as f:
                reviews = list(csv.DictReader(f))
            if rows is not None and rows < len(reviews):
                reviews = [reviews[i * len(reviews) // rows] for i in range(rows)]
            writer.writerows([row["text"], row["label"], domain] for row in reviews)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--strategy", default="full")
    parser.add_argument("--weighting", default="fixed", help="training.task_weighting: fixed or uncertainty")
    parser.add_argument("--rows", type=int, default=None, help="reviews per domain (default: all, about 1,960)")
    parser.add_argument("--out", default=str(HERE / "results" / "multitask.json"))
    args = parser.parse_args()
    if not DATA.is_dir():
        sys.exit(f"{DATA} is not here: this benchmark needs ../shared/data/amazon-domains")

    import nlptransfer
    from nlptransfer.report import build_report

    results = []
    with tempfile.TemporaryDirectory(prefix="nlptransfer-multitask-") as tmp:
        data = pooled(Path(tmp), args.rows)
        for seed in [int(s) for s in args.seeds.split(",")]:
            started = time.perf_counter()
            run = nlptransfer.finetune("sentiment-minilm", data=str(data), overrides={
                "task": "classification", "strategy": args.strategy, "data.label_columns": ["sentiment", "domain"],
                "data.max_length": args.max_length, "training.epochs": args.epochs,
                "training.batch_size": args.batch_size, "training.seed": seed, "training.progress": False,
                "training.task_weighting": args.weighting, "output.dir": str(Path(tmp) / "runs"),
                "output.name": f"seed-{seed}"})
            trained = time.perf_counter() - started
            report = build_report(run.path)
            results.append({"seed": seed, "multi_task_seconds": round(trained, 1),
                            "report_seconds": report["seconds"], "tasks": report["tasks"]})
            print(f"seed {seed}: multi-task run {trained:.0f} s, each task alone + comparison {report['seconds']:.0f} s",
                  flush=True)
    print(table(results))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"settings": vars(args), "results": results}, indent=2) + "\n")
    print(f"wrote {out}")


def table(results: list[dict]) -> str:
    """A row per seed and task, then each task's mean over the seeds."""
    lines = ["| seed | task | test rows | multi-task acc | alone acc | difference [95% interval] | McNemar p | "
             "verdict |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        for task, t in r["tasks"].items():
            d = t["difference"]
            lines.append(f"| {r['seed']} | {task} | {t['multi_task']['n']} | {t['multi_task']['accuracy']:.4f} | "
                         f"{t['single_task']['accuracy']:.4f} | {d['estimate']:+.4f} [{d['low']:+.4f}, "
                         f"{d['high']:+.4f}] | {t['mcnemar']['p_value']:.3g} | {t['verdict']} |")
    for task in results[0]["tasks"]:
        multi = [r["tasks"][task]["multi_task"]["accuracy"] for r in results]
        alone = [r["tasks"][task]["single_task"]["accuracy"] for r in results]
        spread = lambda xs: f" (std {statistics.stdev(xs):.4f})" if len(xs) > 1 else ""  # noqa: E731
        verdicts = ", ".join(r["tasks"][task]["verdict"] for r in results)
        lines.append(f"| mean of {len(results)} | {task} | | {statistics.mean(multi):.4f}{spread(multi)} | "
                     f"{statistics.mean(alone):.4f}{spread(alone)} | "
                     f"{statistics.mean(multi) - statistics.mean(alone):+.4f} | | {verdicts} |")
    seconds = [r["multi_task_seconds"] for r in results]
    lines.append(f"\nmulti-task training: {statistics.mean(seconds):.0f} s a seed; both single-task trainings and the "
                 f"comparison: {statistics.mean(r['report_seconds'] for r in results):.0f} s a seed")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
