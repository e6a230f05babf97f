"""Train a recipe: data -> model -> strategy -> cache -> fit -> test -> run folder, the stages in order. It never
reports or publishes; listeners see its events (the data once read, every step and evaluation)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import models
from .batching import Encoded, tokenize
from .data import Splits, load_splits
from .errors import RunError
from .logs import get_logger
from .metrics import ordinal_error
from .recipe import Recipe, read_saved
from .run import RunFolder
from .strategies import get_strategy
from .train.events import Listener, ProgressBar, RunLog, notify

logger = get_logger(__name__)


@dataclass
class TrainedRun:
    """A finished run: its folder and test metrics; `.classifier()` loads it for prediction."""

    path: Path
    metrics: dict
    recipe: Recipe | None = field(default=None, repr=False)  #: the resolved recipe it ran
    splits: Splits | None = field(default=None, repr=False)  #: the data it trained and was tested on
    main_process: bool = field(default=True, repr=False)  #: this process wrote the folder
    processes: int = field(default=1, repr=False)

    def classifier(self):
        """The trained model as a TextClassifier."""
        from .inference import TextClassifier

        return TextClassifier.load(self.path)


def load_data(recipe: Recipe) -> Splits:
    """The train/validation/test splits a run of `recipe` uses (the same files and seed give the same rows)."""
    return load_splits(recipe.data, seed=recipe.training.seed)


def train(recipe: Recipe, *, resume: bool | str | Path = False, listeners: Sequence[Listener] = ()) -> TrainedRun:
    """Run `recipe` end to end and write its run folder; `resume`: continue the recipe's interrupted run (True) or
    the one in that folder, exactly as it was configured."""
    from accelerate.utils import set_seed

    from .train.loop import make_accelerator

    started = time.perf_counter()
    accelerator = make_accelerator(recipe)
    main = accelerator.is_main_process
    listeners = list(listeners) if main else []  # only the main process's listeners see events (and write)
    run, resuming = (_open_run(recipe, resume, accelerator) if resume else (None, False))
    if run is not None:
        recipe = read_saved(run.path("recipe")) if run.path("recipe").exists() else recipe
        if not resuming and main:
            run.truncate_log(0)  # killed before its first checkpoint: start over in the same folder
    set_seed(recipe.training.seed)
    splits = load_data(recipe)
    for line in splits.report.summary_lines():
        logger.info(line)
    notify(listeners, "on_data", recipe, splits)

    base = models.resolve(recipe.model, recipe.model_revision)
    tokenizer = models.load_tokenizer(base, recipe.trust_remote_code)
    config = models.load_config(base, recipe.trust_remote_code)
    encoded = _encode(tokenizer, config, recipe, splits)
    if run is None:  # created only once the data and model checked out: bad input leaves no folder behind
        run, resuming = _open_run(recipe, False, accelerator)
    listeners += _run_listeners(recipe, run, main)
    if main:
        run.write_text("recipe", recipe.to_yaml())
        run.write_json("labels", splits.label_map.to_dict())
        run.write_json("data_report", splits.report.to_dict())

    strategy = get_strategy(recipe.strategy)
    net, new_weights = models.load_classifier(base, splits.label_map, recipe.trust_remote_code)
    prepared = strategy.prepare(net, recipe, new_weights)
    logger.info(f"model {recipe.model} ({config.model_type}), strategy {recipe.strategy}: "
                f"{prepared.trainable:,} trainable of {prepared.total:,} parameters "
                f"({100 * prepared.trainable / prepared.total:.2f}%)")
    result = _fit(prepared, strategy.cacheable, encoded, recipe, splits, tokenizer, accelerator, run, resuming,
                  listeners)

    metrics = {"strategy": recipe.strategy, "model": recipe.model,
               "trainable_parameters": prepared.trainable, "total_parameters": prepared.total,
               "validation": result.best, "best_step": result.best_step, "steps": result.steps,
               "examples_seen": result.examples_seen, "train_seconds": round(result.train_seconds, 3)}
    probs = _test(result.model, encoded, recipe, splits, tokenizer, accelerator, metrics)
    metrics["total_seconds"] = round(time.perf_counter() - started, 3)
    if main:
        run.save_weights(result.model.net, tokenizer, strategy.adapter)
        if probs is not None:
            _write_predictions(run, splits, probs)
        run.write_json("metrics", metrics)
        _say_metrics(metrics, run)
    accelerator.wait_for_everyone()
    return TrainedRun(run.root, metrics, recipe, splits, main, accelerator.num_processes)


def _run_listeners(recipe: Recipe, run: RunFolder, main: bool) -> list[Listener]:
    """The run's own listeners, on the main process only: the run log and the progress bar."""
    if not main:
        return []
    return [RunLog(run)] + ([ProgressBar()] if recipe.training.progress else [])


def _open_run(recipe: Recipe, resume: bool | str | Path, accelerator) -> tuple[RunFolder, bool]:
    """The run folder (new, or the one to resume), agreed across processes, and whether it has a checkpoint."""
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


def _encode(tokenizer, config, recipe: Recipe, splits: Splits) -> dict[str, Encoded]:
    """Token ids of every split, cut at the recipe's (or the model's) limit; truncations counted in the report."""
    limit = models.max_length(tokenizer, config, recipe.data.max_length)
    encoded = {name: tokenize(tokenizer, part.texts, limit, part.labels)
               for name, part in (("train", splits.train), ("validation", splits.validation), ("test", splits.test))
               if part is not None}
    splits.report.truncated = {name: e.truncated for name, e in encoded.items()}
    truncated = sum(splits.report.truncated.values())
    if truncated:
        logger.info(f"truncated {truncated} texts to {limit} tokens ({splits.report.truncated})")
    return encoded


def _fit(prepared, cacheable, encoded, recipe, splits, tokenizer, accelerator, run, resuming, listeners):
    """The frozen part's output cached where the strategy allows it, then the loop."""
    from .train.cache import cache_inputs
    from .train.loop import fit

    t = recipe.training
    pad_id = tokenizer.pad_token_id or 0
    parts = {name: encoded[name] for name in ("train", "validation") if name in encoded}
    if t.cache_features:
        parts = cache_inputs(prepared.model, cacheable, parts, t.eval_batch_size, pad_id, accelerator.device)
    return fit(prepared, parts["train"], parts.get("validation"), recipe, splits.label_map.names, pad_id,
               accelerator, run, resume=resuming, listeners=listeners)


def _test(model, encoded, recipe, splits, tokenizer, accelerator, metrics: dict) -> np.ndarray | None:
    """Test metrics into `metrics`; returns the test probabilities (None without a test split)."""
    from .inference.loader import eval_loader
    from .train.loop import evaluate

    if "test" not in encoded:
        return None
    model = model.to(accelerator.device)
    loader = accelerator.prepare(eval_loader(encoded["test"], recipe.training.eval_batch_size,
                                             tokenizer.pad_token_id or 0))
    test, probs = evaluate(model, loader, splits.test.labels, splits.label_map.names, accelerator)
    if recipe.task == "sentiment":
        test["ordinal_error"] = ordinal_error(splits.test.labels, probs.argmax(1).tolist())
    metrics["test"] = test
    return probs


def _write_predictions(run: RunFolder, splits: Splits, probs: np.ndarray) -> None:
    names = splits.label_map.names
    rows = [[text, names[gold], names[int(p.argmax())], *[f"{x:.6f}" for x in p]]
            for text, gold, p in zip(splits.test.texts, splits.test.labels, probs)]
    run.write_csv("predictions", ["text", "gold", "predicted", *[f"prob_{n}" for n in names]], rows)


def _say_metrics(metrics: dict, run: RunFolder) -> None:
    test = metrics.get("test")
    if test:
        logger.info(f"test: accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} on {test['n']} rows")
    elif metrics.get("validation"):
        logger.info(f"validation: accuracy {metrics['validation']['accuracy']:.4f} (no test split)")
    logger.info(f"run folder: {run.root}")
