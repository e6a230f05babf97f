"""The public Python functions: finetune a recipe on a file, evaluate a run, predict with a run."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import models
from . import recipe as recipes
from .batching import tokenize
from .classifier import TextClassifier
from .data import DataSpec, LabelMap, Splits, load_splits, read_texts
from .errors import RunError
from .metrics import classification_metrics
from .recipe import Recipe
from .run import RunFolder
from .tasks import ordinal_error


@dataclass
class TrainedRun:
    """A finished run: its folder and test metrics; `.classifier()` loads it for prediction."""

    path: Path
    metrics: dict

    def classifier(self) -> TextClassifier:
        return TextClassifier.load(self.path)


def _data_spec(recipe: Recipe) -> DataSpec:
    d = recipe.data
    if not d.train:
        from .errors import DataError

        raise DataError("no training data: pass --data FILE (or data=... in Python, or data.train in the recipe)")
    return DataSpec(
        train=d.train, validation=d.validation, test=d.test, format=d.format,
        text_columns=tuple(d.text_columns) if d.text_columns else None, label_column=d.label_column,
        header=d.header, encoding=d.encoding, delimiter=d.delimiter,
        labels=tuple(d.labels) if d.labels else None, val_fraction=d.val_fraction,
        test_fraction=d.test_fraction, drop_invalid=d.drop_invalid, seed=recipe.training.seed,
    )


def recipe_splits(recipe: Recipe, log: Callable[[str], None] = lambda s: None) -> Splits:
    """The train/validation/test splits a run of `recipe` uses (the same files and seed give the same rows)."""
    return load_splits(_data_spec(recipe), log=log)


def _resolve_recipe(recipe: str | Recipe, data: str | None, overrides) -> Recipe:
    if isinstance(recipe, Recipe):
        loaded = recipe.replace(**dict(overrides)) if isinstance(overrides, dict) and overrides else recipe
        if overrides and not isinstance(overrides, dict):
            loaded = loaded.replace(**dict(recipes.parse_override(o) for o in overrides))
    else:
        loaded = recipes.load(recipe, overrides)
    return loaded.replace(**{"data.train": str(data)}) if data is not None else loaded


def _open_run(recipe: Recipe, resume: bool | str, accelerator) -> tuple[RunFolder, bool]:
    """The run folder (new, or the one to resume), agreed across processes."""
    from accelerate.utils import broadcast_object_list

    out = recipe.output
    name = out.name or recipe.name
    chosen = [None]
    if accelerator.is_main_process:
        if resume:
            root = Path(resume) if isinstance(resume, (str, Path)) and not isinstance(resume, bool) else Path(out.dir) / name
            run = RunFolder.existing(root, need=("recipe",))
            if run.is_complete:
                raise RunError(f"{root} already finished (metrics.json exists); nothing to resume")
            chosen = [str(run.root)]
        else:
            chosen = [str(RunFolder.new(out.dir, name).root)]
    broadcast_object_list(chosen)
    run = RunFolder(chosen[0])
    return run, bool(resume) and (run.path("checkpoints") / "last").exists()


def finetune(recipe: str | Recipe = "sentiment-minilm", data: str | None = None, *,
             overrides: list[str] | dict[str, Any] | None = None, resume: bool | str = False,
             log: Callable[[str], None] = print) -> TrainedRun:
    """Run a recipe on a data file end to end; returns the finished run (folder + test metrics)."""
    from accelerate.utils import set_seed

    from .strategies import prepare
    from .train import evaluate, eval_loader, fit, make_accelerator

    started = time.perf_counter()
    resolved = _resolve_recipe(recipe, data, overrides)
    accelerator = make_accelerator(resolved)
    say = log if accelerator.is_main_process else (lambda s: None)
    if resume:  # a resumed run continues exactly as it was configured
        run, resuming = _open_run(resolved, resume, accelerator)
        resolved = recipes.read_saved(run.path("recipe")) if run.path("recipe").exists() else resolved
        if not resuming and accelerator.is_main_process:
            run.truncate_log(0)  # killed before its first checkpoint: start over in the same folder
    t = resolved.training
    set_seed(t.seed)
    splits = load_splits(_data_spec(resolved), log=say)
    for line in splits.report.summary_lines():
        say(line)
    if resolved.report.enabled:  # the report's extra work, announced before any of it starts
        from .report import plan

        say(plan(resolved, splits).describe())

    base = models.resolve(resolved.model, resolved.model_revision)
    tokenizer = models.load_tokenizer(base, resolved.trust_remote_code)
    config = models.load_config(base, resolved.trust_remote_code)
    limit = models.max_length(tokenizer, config, resolved.data.max_length)
    encoded = {name: tokenize(tokenizer, part.texts, limit, part.labels)
               for name, part in (("train", splits.train), ("validation", splits.validation), ("test", splits.test))
               if part is not None}
    splits.report.truncated = {name: e.truncated for name, e in encoded.items()}
    truncated = sum(splits.report.truncated.values())
    if truncated:
        say(f"truncated {truncated} texts to {limit} tokens ({splits.report.truncated})")
    if not resume:  # created only once the data and model checked out: bad input leaves no folder behind
        run, resuming = _open_run(resolved, False, accelerator)

    if accelerator.is_main_process:
        run.write_text("recipe", resolved.to_yaml())
        run.write_json("labels", splits.label_map.to_dict())
        run.write_json("data_report", splits.report.to_dict())
    net, new_weights = models.load_classifier(base, splits.label_map, resolved.trust_remote_code)
    prepared = prepare(net, resolved, new_weights)
    say(f"model {resolved.model} ({config.model_type}), strategy {resolved.strategy}: "
        f"{prepared.trainable:,} trainable of {prepared.total:,} parameters "
        f"({100 * prepared.trainable / prepared.total:.2f}%)")
    pad_id = tokenizer.pad_token_id or 0
    result = fit(prepared, encoded["train"], encoded.get("validation"), resolved, splits.label_map.names, pad_id,
                 accelerator, run, resume=resuming, log=say)

    metrics = {"strategy": resolved.strategy, "model": resolved.model,
               "trainable_parameters": prepared.trainable, "total_parameters": prepared.total,
               "validation": result.best, "best_step": result.best_step, "steps": result.steps,
               "examples_seen": result.examples_seen, "train_seconds": round(result.train_seconds, 3)}
    predictions = None
    if "test" in encoded:
        model = result.model.to(accelerator.device)
        loader = accelerator.prepare(eval_loader(encoded["test"], t.eval_batch_size, pad_id))
        test, probs = evaluate(model, loader, splits.test.labels, splits.label_map.names, accelerator)
        if resolved.task == "sentiment":
            test["ordinal_error"] = ordinal_error(splits.test.labels, probs.argmax(1).tolist())
        metrics["test"] = test
        predictions = probs
    metrics["total_seconds"] = round(time.perf_counter() - started, 3)
    if accelerator.is_main_process:
        run.save_weights(result.model.net, tokenizer, resolved.is_peft)
        if predictions is not None:
            _write_predictions(run, splits, predictions)
        run.write_json("metrics", metrics)
        _say_metrics(say, metrics, run)
        if resolved.report.enabled:
            from .report import build_report

            if accelerator.num_processes > 1:  # its extra trainings would run on one process while the rest wait
                say(f"report: not made in a multi-process run; make it with `nlptransfer report {run.root}`")
            else:
                build_report(run.root, splits=splits, log=say)
    accelerator.wait_for_everyone()
    return TrainedRun(run.root, metrics)


def _write_predictions(run: RunFolder, splits: Splits, probs: np.ndarray) -> None:
    names = splits.label_map.names
    rows = [[text, names[gold], names[int(p.argmax())], *[f"{x:.6f}" for x in p]]
            for text, gold, p in zip(splits.test.texts, splits.test.labels, probs)]
    run.write_csv("predictions", ["text", "gold", "predicted", *[f"prob_{n}" for n in names]], rows)


def _say_metrics(say, metrics: dict, run: RunFolder) -> None:
    test = metrics.get("test")
    if test:
        say(f"test: accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} on {test['n']} rows")
    elif metrics.get("validation"):
        say(f"validation: accuracy {metrics['validation']['accuracy']:.4f} (no test split)")
    say(f"run folder: {run.root}")


def evaluate_run(run_path: str | Path, data: str, *, text_columns: list[str] | None = None,
                 label_column: str | None = None) -> dict:
    """Metrics of a finished run on a labelled file (all of its rows)."""
    clf = TextClassifier.load(run_path)
    recipe = clf.recipe
    spec = DataSpec(train=str(data), text_columns=tuple(text_columns) if text_columns else (
        tuple(recipe.data.text_columns) if recipe.data.text_columns else None),
        label_column=label_column or recipe.data.label_column, labels=clf.label_map.names,
        val_fraction=0.0, test_fraction=0.0, encoding=recipe.data.encoding, header=recipe.data.header)
    splits = load_splits(spec)
    probs = clf.predict_proba(splits.train.texts)
    result = classification_metrics(splits.train.labels, probs.argmax(1), clf.label_map.names, probs)
    result["data_report"] = splits.report.to_dict()
    return result


def predict_file(run_path: str | Path, input_path: str, output_path: str, *,
                 text_columns: list[str] | None = None, batch_size: int = 64, backend: str = "torch") -> int:
    """Write the input rows with predicted label and probabilities to `output_path`; returns the row count."""
    from .run import atomic_write_text

    clf = TextClassifier.load(run_path, backend=backend)
    texts, frame = read_texts(input_path, text_columns=text_columns)
    probs = clf.predict_proba(texts, batch_size)
    names = clf.label_map.names
    frame = frame.copy()
    frame["predicted"] = [names[int(i)] for i in probs.argmax(1)]
    for j, name in enumerate(names):
        frame[f"prob_{name}"] = probs[:, j].round(6)
    out = Path(output_path)
    if out.suffix == ".jsonl":
        text = frame.to_json(orient="records", lines=True, force_ascii=False)
    else:
        text = frame.to_csv(index=False, sep="\t" if out.suffix == ".tsv" else ",")
    atomic_write_text(out, text)
    return len(frame)


__all__ = ["finetune", "evaluate_run", "predict_file", "TrainedRun", "TextClassifier", "LabelMap"]
