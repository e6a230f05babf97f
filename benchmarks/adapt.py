"""Domain adaptation on the Amazon multi-domain benchmark (../shared/data/amazon-domains): source-only against each
adaptation method, on source->target pairs, with the embedded MiniLM.

    python benchmarks/adapt.py                  # the four hardest pairs: source_only and mmd 3 seeds, mlm and mlm+ce 1
    python benchmarks/adapt.py --pairs all      # all 12 pairs (hours on 2 cores)

Methods: source_only; mmd and mlm+ce (adapt.method, weight --weight / --mlm-weight); mlm (`nlptransfer.adapt`:
masked-LM pretraining on the target texts, once per target with the first seed, the encoder then shared by every
source and seed that adapts to that target, as a user would: `model: <folder>/encoder`; so its seeds vary the
classifier's training, not the pretraining); mlm>mlm+ce (UDALM's full recipe: the mlm encoder,
then the mlm+ce objective).

Protocol (transductive, as most BERT UDA papers): train on <source>/labelled.csv (its own 10% validation split
chooses the checkpoint, 10% test split measures forgetting), adapt with the target's labelled texts with their labels
removed (`--pool unlabelled` uses <target>/unlabelled.csv instead: lowercased and PTB-tokenized, see the data
README), score on <target>/labelled.csv (`evaluate_run`: labels used for the score only). Prints target accuracy
(mean and range over seeds), source test accuracy, and wall time; writes benchmarks/results/adapt.json.
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
HARDEST = ["books:electronics", "dvd:electronics", "electronics:books", "dvd:kitchen"]
DOMAINS = ["books", "dvd", "electronics", "kitchen"]


def _pool(target: str, kind: str, folder: Path) -> str:
    if kind == "unlabelled":
        return str(DATA / target / "unlabelled.csv")
    path = folder / f"{target}-texts.csv"
    with open(DATA / target / "labelled.csv", newline="", encoding="utf-8") as f, \
            open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["text"])
        for row in csv.DictReader(f):
            writer.writerow([row["text"]])
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", default=",".join(HARDEST), help="source:target,... or 'all'")
    parser.add_argument("--methods", default="source_only,mmd,mlm,mlm+ce")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16,
                        help="training.batch_size (the recipe's is 32: at 1 epoch its seeds spread over 9 points)")
    parser.add_argument("--weight", type=float, default=0.1, help="adapt.weight (lambda) for mmd")
    parser.add_argument("--mlm-weight", type=float, default=0.1, help="adapt.weight for mlm+ce (UDALM's is 1.0)")
    parser.add_argument("--mlm-epochs", type=float, default=2, help="adapt.epochs of the masked-LM pretraining")
    parser.add_argument("--head-warmup", type=int, default=0, help="adapt.head_warmup_steps of the pretraining")
    parser.add_argument("--ce-head-warmup", type=int, default=112,
                        help="adapt.head_warmup_steps of mlm+ce (the new masked-LM head alone, before the joint loop)")
    parser.add_argument("--single-seed", default="mlm,mlm+ce", help="methods run with the first seed only")
    parser.add_argument("--reuse", help="a file of earlier result rows (this script's JSON lines on stderr, or "
                        "results/adapt.json) whose (pair, method, seed) rows of --reuse-methods are taken as they are")
    parser.add_argument("--reuse-methods", default="source_only", help="methods whose earlier rows may be reused")
    parser.add_argument("--ramp", action="store_true", help="adapt.ramp: the mmd / mlm+ce weight grows from 0")
    parser.add_argument("--strategy", default="full")
    parser.add_argument("--pool", choices=["labelled", "unlabelled"], default="labelled")
    parser.add_argument("--keep", help="keep the run folders under this folder (default: a temporary one)")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"amazon-domains not found at {DATA}")
    import nlptransfer

    pairs = ([f"{s}:{t}" for s in DOMAINS for t in DOMAINS if s != t] if args.pairs == "all"
             else args.pairs.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    results, encoders = [], {}  # target -> (encoder folder, pretraining seconds, masked-LM losses)
    earlier = {}
    if args.reuse:
        text = Path(args.reuse).read_text()
        rows = json.loads(text) if text.lstrip().startswith("[") else [
            json.loads(line) for line in text.splitlines() if line.startswith("{")]
        earlier = {(r["pair"], r["method"], r["seed"]): r for r in rows if r["method"] in args.reuse_methods.split(",")}
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or str(Path(tmp) / "runs")
        for pair in pairs:
            source, target = pair.split(":")
            pool = _pool(target, args.pool, Path(tmp))
            for method in args.methods.split(","):
                for seed in (seeds[:1] if method in args.single_seed.split(",") else seeds):
                    if (pair, method, seed) in earlier:
                        results.append({**earlier[(pair, method, seed)], "reused": True})
                        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
                        continue
                    overrides = {"training.epochs": args.epochs, "training.seed": seed, "training.progress": False,
                                 "training.batch_size": args.batch_size,
                                 "strategy": args.strategy, "data.max_length": args.max_length,
                                 "output.dir": out, "output.name": f"{pair}-{method}-{seed}"}
                    pretrained = 0.0
                    if method.startswith("mlm>") or method == "mlm":
                        if target not in encoders:
                            started = time.perf_counter()
                            folder = nlptransfer.adapt_encoder("sentiment-minilm", pool, overrides={
                                **{k: v for k, v in overrides.items() if k != "output.name"},
                                "training.seed": seeds[0], "output.name": f"{target}-encoder",
                                "adapt.epochs": args.mlm_epochs,
                                "adapt.head_warmup_steps": args.head_warmup})
                            losses = json.loads((folder / "metrics.json").read_text())["masked_lm_loss"]
                            encoders[target] = (str(folder / "encoder"), time.perf_counter() - started, losses)
                        encoder, pretrained, losses = encoders[target]
                        print(f"{target} encoder: masked-LM loss {losses['before']} -> "
                              f"{losses['after']}, {pretrained:.0f} s", file=sys.stderr, flush=True)
                        overrides["model"] = encoder
                    in_loop = method.split(">")[-1]
                    if in_loop in ("mmd", "mlm+ce"):
                        if in_loop == "mlm+ce" and method == in_loop:
                            overrides["adapt.head_warmup_steps"] = args.ce_head_warmup
                        overrides.update({"adapt.target": pool, "adapt.method": in_loop, "adapt.ramp": args.ramp,
                                          "adapt.weight": args.weight if in_loop == "mmd" else args.mlm_weight})
                    started = time.perf_counter()
                    run = nlptransfer.finetune("sentiment-minilm", data=str(DATA / source / "labelled.csv"),
                                               overrides=overrides)
                    target_acc = nlptransfer.evaluate_run(run.path, str(DATA / target / "labelled.csv"))["accuracy"]
                    row = {"pair": pair, "method": method, "seed": seed, "target_accuracy": target_acc,
                           "source_accuracy": run.metrics["test"]["accuracy"],
                           "seconds": round(time.perf_counter() - started + pretrained, 1),
                           "pretraining_seconds": round(pretrained, 1)}
                    results.append(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"\namazon-domains, embedded MiniLM, strategy {args.strategy}, {args.epochs:g} epochs, batch "
          f"{args.batch_size}, max_length {args.max_length}, pool {args.pool}, mmd weight {args.weight:g}, mlm+ce weight {args.mlm_weight:g}, "
          f"masked-LM pretraining {args.mlm_epochs:g} epochs (head warm-up {args.head_warmup} steps), mlm+ce head "
          f"warm-up {args.ce_head_warmup} steps, seeds {args.seeds} ({args.single_seed or 'none'}: the first only)")
    print("seconds: training (and, for mlm, the target's pretraining, shared by the sources that adapt to it)")
    print("| pair | method | target accuracy (mean [min, max]) | source test accuracy | seconds |")
    print("|---|---|---|---|---|")
    for pair in pairs:
        for method in args.methods.split(","):
            rows = [r for r in results if r["pair"] == pair and r["method"] == method]
            acc = [r["target_accuracy"] for r in rows]
            print(f"| {pair} | {method} | {100 * statistics.mean(acc):.2f} [{100 * min(acc):.2f}, {100 * max(acc):.2f}] "
                  f"| {100 * statistics.mean(r['source_accuracy'] for r in rows):.2f} "
                  f"| {statistics.mean(r['seconds'] for r in rows):.0f} |")
    def mean_of(method, pair, key):
        return statistics.mean(r[key] for r in results if r["method"] == method and r["pair"] == pair)

    for method in args.methods.split(","):
        mean = statistics.mean(mean_of(method, pair, "target_accuracy") for pair in pairs)
        line = f"mean target accuracy over the pairs, {method}: {100 * mean:.2f}"
        if method != "source_only" and "source_only" in args.methods.split(","):
            gains = [mean_of(method, p, "target_accuracy") - mean_of("source_only", p, "target_accuracy") for p in pairs]
            forgetting = [mean_of(method, p, "source_accuracy") - mean_of("source_only", p, "source_accuracy")
                          for p in pairs]
            worst = min(range(len(pairs)), key=gains.__getitem__)
            line += (f"; gain over source-only {100 * statistics.mean(gains):+.2f} points (worst pair {pairs[worst]} "
                     f"{100 * gains[worst]:+.2f}); source test accuracy change (forgetting) "
                     f"{100 * statistics.mean(forgetting):+.2f} points")
        print(line)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "adapt.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
