"""The public Python functions: finetune a recipe on a file (and report on it when asked), evaluate a run, predict
with a run. Thin: each calls the stage that does the work."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from . import recipe as recipes
from .data import LabelMap, load_splits, read_texts
from .inference import TextClassifier
from .logs import get_logger
from .metrics import classification_metrics
from .pipeline import TrainedRun
from .recipe import Recipe
from .train.events import Listener

logger = get_logger(__name__)


class _ReportPlan(Listener):
    """Announces the report's extra work once the data is read, before any of it starts."""

    def on_data(self, recipe: Recipe, splits) -> None:
        if recipe.report.enabled:
            from .report import plan

            logger.info(plan(recipe, splits).describe())


def finetune(recipe: str | Recipe = "sentiment-minilm", data: str | None = None, *,
             overrides: list[str] | dict[str, Any] | None = None, resume: bool | str = False,
             listeners: list[Listener] | None = None) -> TrainedRun:
    """Run a recipe on a data file end to end (and write its transfer report when report.enabled); returns the
    finished run (folder + test metrics). Messages go to the "nlptransfer" logger."""
    from . import pipeline

    resolved = recipes.resolve(recipe, data, overrides)
    run = pipeline.train(resolved, resume=resume, listeners=[_ReportPlan(), *(listeners or [])])
    if run.recipe.report.enabled and run.main_process:
        if run.processes > 1:  # its extra trainings would run on one process while the rest wait
            logger.info(f"report: not made in a multi-process run; make it with `nlptransfer report {run.path}`")
        else:
            from .report import build_report

            build_report(run.path, splits=run.splits)
    return run


def evaluate_run(run_path: str | Path, data: str, *, text_columns: list[str] | None = None,
                 label_column: str | None = None) -> dict:
    """Metrics of a finished run on a labelled file (all of its rows)."""
    clf = TextClassifier.load(run_path)
    given = clf.recipe.data
    spec = dataclasses.replace(given, train=str(data), validation=None, test=None, val_fraction=0.0,
                               test_fraction=0.0, text_columns=list(text_columns or given.text_columns or []) or None,
                               label_column=label_column or given.label_column, labels=list(clf.label_map.names),
                               drop_invalid=False, format=None, delimiter=None)
    splits = load_splits(spec, purpose="evaluate")
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
