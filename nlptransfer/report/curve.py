"""The learning curve: transfer and baseline trained on stratified, seeded fractions of the same training split."""
from __future__ import annotations

import csv
import tempfile
import time
from pathlib import Path

from ..data import LabelledTexts, Splits
from ..logs import get_logger, quiet
from ..recipe import Recipe
from .baseline import fit_baseline, scores, stratified_subset, subset

logger = get_logger(__name__)


def _write(path: Path, part: LabelledTexts, names: tuple[str, ...]) -> str:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([text, names[label]] for text, label in zip(part.texts, part.labels))
    return str(path)


def split_recipe(recipe: Recipe, splits: Splits, train: LabelledTexts, folder: Path, name: str) -> Recipe:
    """The same recipe on exactly these rows: the splits written as CSV files, nothing carved or re-split."""
    names = splits.label_map.names
    files = {"train": _write(folder / f"{name}-train.csv", train, names),
             "validation": _write(folder / "validation.csv", splits.validation, names) if splits.validation else None,
             "test": _write(folder / "test.csv", splits.test, names) if splits.test else None}
    return recipe.replace(**{
        "data.train": files["train"], "data.validation": files["validation"], "data.test": files["test"],
        "data.format": "csv", "data.header": True, "data.encoding": "utf-8", "data.delimiter": None,
        "data.text_columns": ["text"], "data.label_column": "label", "data.labels": list(names),
        "data.val_fraction": 0.0, "data.test_fraction": 0.0, "data.drop_invalid": False,
        "report.enabled": False, "training.progress": False, "output.dir": str(folder), "output.name": name,
    })


def transfer_score(recipe: Recipe) -> dict:
    """Fine-tune `recipe` (quietly) and return its test accuracy, macro-F1 and training seconds."""
    from ..pipeline import train

    with quiet():
        run = train(recipe)
    test = run.metrics["test"]
    return {"accuracy": test["accuracy"], "macro_f1": test["macro_f1"], "train_seconds": run.metrics["train_seconds"]}


def learning_curve(recipe: Recipe, splits: Splits, full_transfer: dict, full_baseline: dict) -> list[dict]:
    """Test scores of transfer and baseline at each of the recipe's report.learning_curve fractions."""
    seed, metric = recipe.training.seed, recipe.training.metric
    n_labels = len(splits.label_map)
    points = []
    with tempfile.TemporaryDirectory(prefix="nlptransfer-curve-") as tmp:
        for fraction in sorted(set(recipe.report.learning_curve)):
            if fraction >= 1:
                points.append({"fraction": 1.0, "train_rows": len(splits.train), "transfer": full_transfer,
                               "baseline": full_baseline})
                continue
            started = time.perf_counter()
            part = subset(splits.train, stratified_subset(splits.train.labels, fraction, seed))
            base = fit_baseline(part, splits.validation, splits.test, n_labels, metric, seed)
            base_scores = {**scores(splits.test.labels, base.test_probs.argmax(1)),
                           "train_seconds": round(base.train_seconds, 3)}
            transfer = transfer_score(split_recipe(recipe, splits, part, Path(tmp), f"fraction-{fraction:g}"))
            points.append({"fraction": fraction, "train_rows": len(part), "transfer": transfer,
                           "baseline": base_scores})
            logger.info(f"report: learning curve at {fraction:.0%} ({len(part)} rows): transfer {transfer[metric]:.4f}, "
                f"baseline {base_scores[metric]:.4f} ({time.perf_counter() - started:.0f} s)")
    return points
