"""The public Python functions: finetune a recipe on a file (and report on it when asked), evaluate a run, predict
with a run. Thin: each calls the stage that does the work."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from . import recipe as recipes
import numpy as np

from .data import LabelMap, load_splits, read_texts
from .errors import DataError, RunError
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

            build_report(run.path, splits=run.splits, trust_remote_code=run.recipe.trust_remote_code)
    return run


def evaluate_run(run_path: str | Path, data: str, *, text_columns: list[str] | None = None,
                 label_column: str | None = None, trust_remote_code: bool = False) -> dict:
    """Metrics of a finished run on a labelled file (all of its rows; it may hold a single class)."""
    clf = TextClassifier.load(run_path, trust_remote_code=trust_remote_code)
    given = clf.recipe.data
    used = _columns_used(Path(run_path), data)
    spec = dataclasses.replace(
        given, train=str(data), validation=None, test=None, val_fraction=0.0, test_fraction=0.0,
        text_columns=list(text_columns or given.text_columns or used.get("text_columns") or []) or None,
        label_column=label_column or given.label_column or used.get("label_column"),
        labels=list(clf.label_map.names), drop_invalid=False, format=None, delimiter=None)
    splits = load_splits(spec, purpose="evaluate")
    probs = clf.predict_proba(splits.train.texts)
    result = classification_metrics(splits.train.labels, probs.argmax(1), clf.label_map.names, probs)
    result["data_report"] = splits.report.to_dict()
    return result


def _columns_used(folder: Path, data: str) -> dict:
    """The text and label columns the run inferred (its data_report.json), where `data` has them too."""
    from .data import read_table
    from .errors import DataError

    path = folder / "data_report.json"
    if not path.is_file():
        return {}
    inferred = json.loads(path.read_text(encoding="utf-8")).get("inferred", {})
    found = {"text_columns": inferred.get("text_columns", {}).get("columns"),
             "label_column": inferred.get("label_column", {}).get("column")}
    try:
        columns = {str(c) for c in read_table(data).frame.columns}
    except DataError:
        return {}  # load_splits says what is wrong with the file
    return {k: v for k, v in found.items()
            if v and set([v] if isinstance(v, str) else v) <= columns}


#: output formats of predict_file, by file extension
OUTPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}


def predict_file(run_path: str | Path, input_path: str, output_path: str, *,
                 text_columns: list[str] | None = None, batch_size: int = 64, backend: str = "torch",
                 trust_remote_code: bool = False) -> int:
    """Write every input row, its columns as they were, with the predicted label and the probability of each label
    to `output_path` (.csv, .tsv, .jsonl or .parquet); returns the row count. Rows without text get no prediction."""
    out = Path(output_path)
    fmt = _output_format(out)
    if batch_size < 1:
        raise RunError(f"batch size must be at least 1, got {batch_size}")
    clf = TextClassifier.load(run_path, backend=backend, trust_remote_code=trust_remote_code)
    texts, table = read_texts(input_path, text_columns=text_columns)
    logger.info(f"read {len(texts)} rows of {input_path} ({table.format}"
                + (f", {table.encoding}" if table.encoding else "") + ")")
    names = clf.label_map.names
    added = ["predicted", *[f"prob_{n}" for n in names]]
    taken = [c for c in added if c in map(str, table.frame.columns)]
    if taken:
        raise DataError(f"{input_path} already has columns named {', '.join(taken)}: they would be overwritten; "
                        "rename them first")
    has_text = [i for i, t in enumerate(texts) if t]
    empty = len(texts) - len(has_text)
    if empty:
        rows = [i + 1 for i, t in enumerate(texts) if not t]
        logger.warning(f"{empty} of {len(texts)} rows have no text (rows {', '.join(map(str, rows[:8]))}"
                       f"{' ...' if len(rows) > 8 else ''}): they are written without a prediction")
    probs = np.full((len(texts), len(names)), np.nan)
    probs[has_text] = clf.predict_proba([texts[i] for i in has_text], batch_size)
    frame = table.frame.copy()
    with_text = set(has_text)
    frame["predicted"] = [names[int(p.argmax())] if i in with_text else None for i, p in enumerate(probs)]
    for j, name in enumerate(names):
        frame[f"prob_{name}"] = probs[:, j].round(6)
    _write_frame(frame, out, fmt)
    return len(frame)


def _output_format(out: Path) -> str:
    if out.is_dir():
        raise RunError(f"--output {out} is a folder: give a file name, e.g. {out / 'predicted.csv'}")
    fmt = OUTPUT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise RunError(f"cannot tell the output format from {out.name!r}: end the name with "
                       f"{', '.join(OUTPUT_FORMATS)}")
    return fmt


def _write_frame(frame, out: Path, fmt: str) -> None:
    """Write `frame` to `out` atomically in `fmt`."""
    from .run import atomic_write_bytes, atomic_write_text

    if fmt == "parquet":
        import io

        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        atomic_write_bytes(out, buffer.getvalue())
    elif fmt == "jsonl":
        atomic_write_text(out, frame.to_json(orient="records", lines=True, force_ascii=False))
    else:
        atomic_write_text(out, frame.to_csv(index=False, sep="\t" if fmt == "tsv" else ","))


__all__ = ["finetune", "evaluate_run", "predict_file", "TrainedRun", "TextClassifier", "LabelMap"]
