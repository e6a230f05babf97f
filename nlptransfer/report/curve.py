"""The learning curve: transfer and baseline trained on stratified, seeded fractions of the same training split."""
from __future__ import annotations

import csv
import json
import tempfile
import time
from pathlib import Path

from ..data import LabelledTexts, Splits
from ..logs import get_logger, quiet
from ..recipe import Recipe
from ..tasks import Task
from .baseline import fit_baseline, fit_tuned_baseline, scores, stratified_subset, subset, training_subset

logger = get_logger(__name__)


def _cell(label, names: tuple[str, ...]) -> str:
    """A label cell: the label's name, or a 0/1 row's label set as a JSON list (names may hold any separator)."""
    if isinstance(label, (list, tuple)):
        return json.dumps([n for n, on in zip(names, label) if on], ensure_ascii=False)
    return names[label]


def _write(path: Path, part: LabelledTexts, names: tuple[str, ...]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([text, _cell(label, names)] for text, label in zip(part.texts, part.labels))
    return str(path)


def split_recipe(recipe: Recipe, splits: Splits, train: LabelledTexts, folder: Path, name: str) -> Recipe:
    """The same recipe on exactly these rows: the splits written as CSV files, nothing carved or re-split (a
    multi-label task's label sets as JSON lists in one column)."""
    names = splits.label_map.names
    sets = {"data.label_columns": None, "data.label_separator": None} if splits.label_map.kind == "multi_label" else {}
    files = {"train": _write(folder / f"{name}-train.csv", train, names),
             "validation": _write(folder / "validation.csv", splits.validation, names) if splits.validation else None,
             "test": _write(folder / "test.csv", splits.test, names) if splits.test else None}
    return recipe.replace(**{
        "data.train": files["train"], "data.validation": files["validation"], "data.test": files["test"],
        "data.format": "csv", "data.header": True, "data.encoding": "utf-8", "data.delimiter": None,
        "data.text_columns": ["text"], "data.label_column": "label", "data.labels": list(names),
        "data.val_fraction": 0.0, "data.test_fraction": 0.0, "data.drop_invalid": False,
        "report.enabled": False, "training.progress": False, "output.dir": str(folder), "output.name": name, **sets,
    })


def transfer_score(recipe: Recipe, keys: tuple[str, ...] = ("accuracy", "macro_f1")) -> dict:
    """Fine-tune `recipe` (quietly) and return its test scores `keys` and training seconds."""
    from ..pipeline import train

    with quiet():
        run = train(recipe)
    test = run.metrics["test"]
    return {**{k: test[k] for k in keys}, "train_seconds": run.metrics["train_seconds"]}


def _baseline_scores(recipe: Recipe, splits: Splits, part: LabelledTexts, task: Task | None) -> tuple[dict, float]:
    """The baseline fitted on `part`: its test scores (the task kind's report scores) and fit seconds."""
    seed, metric = recipe.training.seed, recipe.training.metric
    if task is None or not task.kind.tunes:
        base = fit_baseline(part, splits.validation, splits.test, len(splits.label_map), metric, seed)
        return scores(splits.test.labels, base.test_probs.argmax(1)), base.train_seconds
    base = fit_tuned_baseline(part, splits.validation, splits.test, task, metric, seed, recipe.evaluation.threshold)
    test = task.kind.metrics(base.task, task.kind.gold(splits.test.labels)[0], base.test_probs)
    return {k: test[k] for k in task.kind.report_scores}, base.train_seconds


def learning_curve(recipe: Recipe, splits: Splits, full_transfer: dict, full_baseline: dict,
                   task: Task | None = None) -> list[dict]:
    """Test scores of transfer and baseline at each of the recipe's report.learning_curve fractions (subsets that
    keep each class's share, or for a multi-label `task` iteratively stratified subsets that hold every label)."""
    seed, metric = recipe.training.seed, recipe.training.metric
    keys = task.kind.report_scores if task is not None else ("accuracy", "macro_f1")
    points = []
    with tempfile.TemporaryDirectory(prefix="nlptransfer-curve-") as tmp:
        for fraction in sorted(set(recipe.report.learning_curve)):
            if fraction >= 1:
                points.append({"fraction": 1.0, "train_rows": len(splits.train), "transfer": full_transfer,
                               "baseline": full_baseline})
                continue
            started = time.perf_counter()
            rows = (stratified_subset(splits.train.labels, fraction, seed) if task is None
                    else training_subset(task, splits.train.labels, fraction, seed))
            part = subset(splits.train, rows)
            base_scores, base_seconds = _baseline_scores(recipe, splits, part, task)
            base_scores["train_seconds"] = round(base_seconds, 3)
            transfer = transfer_score(split_recipe(recipe, splits, part, Path(tmp), f"fraction-{fraction:g}"), keys)
            points.append({"fraction": fraction, "train_rows": len(part), "transfer": transfer,
                           "baseline": base_scores})
            logger.info(f"report: learning curve at {fraction:.0%} ({len(part)} rows): transfer {transfer[metric]:.4f}, "
                f"baseline {base_scores[metric]:.4f} ({time.perf_counter() - started:.0f} s)")
    return points
