"""The public Python functions: finetune a recipe on a file (and report on it when asked), evaluate a run, predict
with a run. Thin: each calls the stage that does the work."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from . import recipe as recipes
import numpy as np

from .data import LabelMap, load_splits
from .data.cells import spreadsheet_safe
from .data.read import refuse_same_file, row_list
from .data.readers import cut_texts
from .data.schema import MAX_TEXT_CHARS
from .data.unlabelled import iter_texts
from .errors import DataError, RecipeError, RunError
from .inference import TextClassifier
from .inference.classifier import label_texts
from .logs import get_logger
from .pipeline import TrainedRun
from .recipe import Recipe
from .fsio import read_json_file
from .scoring import Scoring, score, warnings_of
from .tasks import run_tasks
from .train.events import Listener

logger = get_logger(__name__)


class _ReportPlan(Listener):
    """Announces the report's extra work once the data is read, before any of it starts."""

    def on_data(self, recipe: Recipe, splits) -> None:
        if recipe.report.enabled:
            from .report import plan

            logger.info(plan(recipe, splits).describe())


def resolve_data(recipe: str | Recipe, data: Any, overrides) -> Recipe:
    """The recipe with `overrides`, reading `data`: a file path, or a data set (a datasets.Dataset / DatasetDict,
    a Dataset.save_to_disk folder, hf://datasets/NAME[:config]) written once as Parquet files in the cache."""
    from .data.sources import data_settings

    settings = data_settings(data) if data is not None else None
    if settings is None:
        return recipes.resolve(recipe, None if data is None else str(data), overrides)
    return recipes.resolve(recipe, None, overrides).replace(**settings)


def finetune(recipe: str | Recipe = "sentiment-minilm", data: Any = None, *,
             overrides: list[str] | dict[str, Any] | None = None, resume: bool | str = False,
             listeners: list[Listener] | None = None) -> TrainedRun:
    """Run a recipe on a data file (or a data set: see resolve_data) end to end (and write its transfer report when
    report.enabled); returns the finished run (folder + test metrics). Messages go to the "nlptransfer" logger."""
    from . import pipeline

    resolved = resolve_data(recipe, data, overrides)
    run = pipeline.train(resolved, resume=resume, listeners=[_ReportPlan(), *(listeners or [])])
    if run.recipe.adapt.target_test and run.main_process:
        _score_target_test(run)
    if run.recipe.report.enabled and run.main_process:
        if run.processes > 1:  # its extra trainings would run on one process while the rest wait
            logger.info(f"report: not made in a multi-process run; make it with `nlptransfer report {run.path}`")
        else:
            from .report import build_report

            build_report(run.path, splits=run.splits, trust_remote_code=run.recipe.trust_remote_code)
    return run


def adapt_encoder(recipe: str | Recipe = "sentiment-minilm", target: str | None = None, *,
          overrides: list[str] | dict[str, Any] | None = None, resume: bool | str = False) -> Path:
    """Masked-LM pretraining of the recipe's encoder on the target domain's unlabelled texts (`target`, else the
    recipe's adapt.target), alone: returns the run folder, whose encoder/ any recipe can start from
    (`model: <folder>/encoder`)."""
    from . import pipeline

    resolved = recipes.resolve(recipe, None, overrides)
    if target is not None:
        resolved = resolved.replace(**{"adapt.target": str(target), "adapt.method": "mlm"})
    return pipeline.pretrain_encoder(resolved, resume=resume)


def _score_target_test(run: TrainedRun) -> None:
    """Metrics on the adapted-to domain's labelled file (adapt.target_test), into metrics.json as `target_test`:
    evaluation only, read after training and model selection are done."""
    from .run import RunFolder

    path = run.recipe.adapt.target_test
    scores = evaluate_run(run.path, path, trust_remote_code=run.recipe.trust_remote_code)
    scores.pop("data_report", None)
    run.metrics["target_test"] = {"file": str(path), **scores}
    RunFolder.existing(run.path).write_json("metrics", run.metrics)
    logger.info(f"target domain test ({path}; its labels used for this score only): accuracy "
                f"{scores['accuracy']:.4f}, macro-F1 {scores['macro_f1']:.4f}")


def evaluate_run(run_path: str | Path, data: str, *, text_columns: list[str] | None = None,
                 label_column: str | None = None, trust_remote_code: bool = False, changes: dict | None = None,
                 slice_by: list[str] | None = None) -> dict:
    """Metrics of a finished run on a labelled file (all of its rows; it may hold a single class), read as the run
    read its data (data.drop_invalid included: dropped rows are counted in "data_report") unless `changes` (data.*
    keys) say otherwise; metrics per value of the `slice_by` columns, else of the run's data.slice_columns the file
    has. The scorer and seed are the run's, so
    the run's own test file gives the run's test metrics. A multi-task run's: each task the file has a column of."""
    clf = TextClassifier.load(run_path, trust_remote_code=trust_remote_code)
    spec = reading_spec(Path(run_path), clf.recipe, data, changes)
    if clf.tasks and label_column:
        raise RecipeError(f"{run_path} is a multi-task run: it scores every one of its label columns "
                          f"({', '.join(clf.tasks)}) the file has; leave out --label-column")
    spec = dataclasses.replace(spec, train=str(data), validation=None, test=None, val_fraction=0.0, test_fraction=0.0,
                               text_columns=list(text_columns) if text_columns else spec.text_columns,
                               slice_columns=list(slice_by) if slice_by else _run_slices(clf.recipe, spec, data))
    splits = _evaluation_splits(clf, spec, label_column)
    for reason, count in splits.report.dropped.get("train", {}).items():  # the file is read as one split
        logger.info(f"dropped {count} rows of {data} (data.drop_invalid, as the run did): {reason}")
    # the run's label maps (a multi-label task's thresholds), for the tasks the file has, in the file's row order
    tasks = run_tasks({t: clf.tasks[t] for t in splits.tasks} if splits.tasks else clf.label_map,
                      column=label_column or spec.label_column)
    outputs = clf.predict_proba(splits.train.texts)
    result = score(tasks, splits.train.labels, outputs if clf.tasks else {next(iter(tasks)): outputs},
                   slices=splits.train.slices, scoring=Scoring.of(clf.recipe))
    if clf.tasks:
        result["tasks_missing"] = [task for task in clf.tasks if task not in splits.tasks]
    result["warnings"] = warnings_of(tasks, result)
    result["data_report"] = splits.report.to_dict()
    return result


def _run_slices(recipe: Recipe, spec, path: str) -> list[str] | None:
    """The slice columns of a run's recipe (data.slice_columns) that the file to evaluate has."""
    from .data import read_table

    if spec.slice_columns or not recipe.data.slice_columns:
        return spec.slice_columns
    try:
        columns = {str(c) for c in read_table(path, spec.format, spec.header, spec.encoding,
                                              spec.delimiter).frame.columns}
    except DataError:
        return None  # reading it again says what is wrong with it
    return [c for c in recipe.data.slice_columns if c in columns] or None


def _evaluation_splits(clf: TextClassifier, spec, label_column: str | None):
    """The file to evaluate, read whole as one split with the run's labels (a multi-task run's: the tasks whose
    column it has); label lists split by the separator the run read (unless the changes name one)."""
    if clf.tasks:
        from .data import load_multitask_splits

        known = {task: list(m.names) for task, m in clf.tasks.items()}
        kinds = {task: m.kind for task, m in clf.tasks.items() if m.kind != "single_label"} or None
        separators = {m.separator for m in clf.tasks.values() if m.kind == "multi_label"}
        separator = spec.label_separator or (separators.pop() if len(separators) == 1 else None)
        return load_multitask_splits(dataclasses.replace(spec, label_columns=list(clf.tasks), label_column=None,
                                                         task_kinds=kinds, label_separator=separator),
                                     purpose="evaluate", known=known)
    listed = clf.label_map.kind == "multi_label" and not spec.label_columns  # a column of label lists
    return load_splits(dataclasses.replace(spec, label_column=label_column or spec.label_column,
                                           labels=list(clf.label_map.names),
                                           label_separator=spec.label_separator or (
                                               clf.label_map.separator if listed else None)),
                       purpose="evaluate", kind=clf.label_map.kind)


def reading_spec(folder: Path, recipe: Recipe, path: str, changes: dict | None = None):
    """How to read `path` for a run: the run's own reading settings (delimiter, encoding, header, format, when the
    file has the training file's format), its text and label columns (given, or as it inferred them, when the
    file has them) and what it drops (data.drop_invalid), then `changes` (data.* keys)."""
    from .data import DataSpec
    from .data.read import detect_format, iter_table
    from .errors import DataError

    given = recipe.data
    same = False
    try:
        same = bool(given.train) and detect_format(Path(path), None) == detect_format(Path(given.train), given.format)
    except DataError:
        pass
    spec = DataSpec(format=given.format if same else None, delimiter=given.delimiter if same else None,
                    encoding=given.encoding if same else None, header=given.header if same else None,
                    text_columns=given.text_columns, label_column=given.label_column, join_with=given.join_with,
                    label_map=given.label_map, label_bins=given.label_bins, drop_invalid=given.drop_invalid,
                    max_drop_fraction=given.max_drop_fraction, label_separator=given.label_separator,
                    label_columns=given.label_columns if recipe.task == "multi_label" else None)
    wrong = [k for k in (changes or {}) if not k.startswith("data.")]
    if wrong:
        raise RecipeError(f"only data.* settings say how to read a file here, got: {', '.join(wrong)}")
    spec = dataclasses.replace(spec, **{k[len("data."):]: v for k, v in (changes or {}).items()})
    report_path = folder / "data_report.json"
    if not report_path.is_file() or (spec.text_columns and spec.label_column):
        return spec
    inferred = read_json_file(report_path).get("inferred", {})
    try:
        first = next(iter_table(path, spec.format, spec.header, spec.encoding, spec.delimiter, rows=1000))
        columns = {str(c) for c in first.frame.columns}  # the first chunk's: a large file is not read whole here
    except (DataError, StopIteration):
        return spec  # reading it again says what is wrong with it
    texts = inferred.get("text_columns", {}).get("columns")
    label = inferred.get("label_column", {}).get("column")
    return dataclasses.replace(
        spec, text_columns=spec.text_columns or (texts if texts and set(texts) <= columns else None),
        label_column=spec.label_column or (label if label in columns else None))


#: output formats of predict_file, by file extension
OUTPUT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet"}


def predict_file(run_path: str | Path, input_path: str, output_path: str, *,
                 text_columns: list[str] | None = None, batch_size: int = 64, backend: str = "torch",
                 trust_remote_code: bool = False, changes: dict | None = None, rows: int = 50_000,
                 keep_formulas: bool = False) -> int:
    """Write every input row, its columns as they were, with the predicted label and the probability of each label
    to `output_path` (.csv, .tsv, .jsonl or .parquet); returns the row count. Rows without text get no prediction.
    In CSV/TSV, text cells a spreadsheet would run as formulas get a leading ' unless `keep_formulas`
    (data.cells); texts longer than MAX_TEXT_CHARS are cut to it before predicting.
    The input is read as the run read its data (and with its text columns) unless `changes` (data.* keys) say
    otherwise. It is read and written `rows` rows at a time (memory bounded by that, not by the file), into a file
    beside `output_path` renamed onto it at the end: a failure leaves no partial output."""
    out = Path(output_path)
    fmt = _output_format(out)
    refuse_same_file(input_path, out)
    if batch_size < 1:
        raise RunError(f"batch size must be at least 1, got {batch_size}")
    clf = TextClassifier.load(run_path, backend=backend, trust_remote_code=trust_remote_code)
    chunks = iter_texts(input_path, reading_spec(Path(run_path), clf.recipe, input_path, changes),
                        text_columns=text_columns, rows=rows)
    heads = _output_columns(clf)
    added = [c for predicted, prob, _ in heads.values() for c in (predicted, *prob)]
    total, empty, cut, table = 0, [], [], None
    with _FrameWriter(out, fmt, keep_formulas) as writer:
        for texts, table in chunks:
            if total == 0:
                taken = [c for c in added if c in map(str, table.frame.columns)]
                if taken:
                    raise DataError(f"{input_path} already has columns named {', '.join(taken)}: they would be "
                                    "overwritten; rename them first")
            texts, long = cut_texts(texts)
            cut += [total + i + 1 for i in long]
            has_text = [i for i, t in enumerate(texts) if t]
            writer.empty += len(texts) - len(has_text)
            empty += [total + i + 1 for i, t in enumerate(texts) if not t][:max(0, 8 - len(empty))]
            given = clf.predict_proba([texts[i] for i in has_text], batch_size)
            given = given if clf.tasks else {next(iter(heads)): given}
            frame = table.frame.copy()
            with_text = set(has_text)
            for task, (predicted, prob, names) in heads.items():
                probs = np.full((len(texts), len(names)), np.nan)
                probs[has_text] = given[task]
                shown = iter(label_texts(given[task], clf.all_tasks[task] if clf.tasks else
                                         next(iter(clf.all_tasks.values()))))
                frame[predicted] = [next(shown) if i in with_text else None for i in range(len(texts))]
                for j, column in enumerate(prob):
                    frame[column] = probs[:, j].round(6)
            writer.write(frame)
            total += len(texts)
    logger.info(f"read {total} rows of {input_path} ({table.format}"
                + (f", {table.encoding}" if table.encoding else "") + ")")
    if cut:
        logger.warning(f"{len(cut)} texts longer than {MAX_TEXT_CHARS:,} characters were cut to them before predicting"
                       f" ({row_list(cut)})")
    if writer.empty:
        logger.warning(f"{writer.empty} of {total} rows have no text (rows {', '.join(map(str, empty))}"
                       f"{' ...' if writer.empty > len(empty) else ''}): they are written without a prediction")
    return total


def _output_columns(clf: TextClassifier) -> dict[str, tuple[str, list[str], tuple[str, ...]]]:
    """The columns predict adds, per head: (predicted, [probability per label], label names). One task: predicted
    and prob_LABEL; a multi-task model's: predicted_TASK and prob_TASK_LABEL for each task."""
    from .model import HEAD

    if not clf.tasks:
        names = clf.label_map.names
        return {HEAD: ("predicted", [f"prob_{n}" for n in names], names)}
    return {task: (f"predicted_{task}", [f"prob_{task}_{n}" for n in m.names], m.names) for task, m in clf.tasks.items()}


def _output_format(out: Path) -> str:
    if out.is_dir():
        raise RunError(f"--output {out} is a folder: give a file name, e.g. {out / 'predicted.csv'}")
    fmt = OUTPUT_FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise RunError(f"cannot tell the output format from {out.name!r}: end the name with "
                       f"{', '.join(OUTPUT_FORMATS)}")
    return fmt


class _FrameWriter:
    """Writes DataFrames one after another into one file of `fmt` (CSV/TSV with one header row, JSONL, Parquet with
    the first frame's schema), atomically: the file appears whole when the block ends without an error, else not at
    all (fsio.atomic_file)."""

    def __init__(self, out: Path, fmt: str, keep_formulas: bool = False):
        self.out, self.fmt, self.file, self.parquet, self.rows, self.empty = out, fmt, None, None, 0, 0
        self.keep_formulas = keep_formulas

    def __enter__(self) -> "_FrameWriter":
        from .fsio import atomic_file

        self._atomic = atomic_file(self.out)
        self.file = self._atomic.__enter__()
        return self

    def write(self, frame) -> None:
        if self.fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            if self.parquet is None:
                table = pa.Table.from_pandas(frame, preserve_index=False)
                self.parquet = pq.ParquetWriter(self.file, table.schema)
            else:
                try:
                    table = pa.Table.from_pandas(frame, schema=self.parquet.schema, preserve_index=False)
                except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
                    raise DataError(f"cannot write {self.out.name}: rows from {self.rows + 1} on do not fit the column "
                                    f"types of the rows before them ({e}); write .csv or .jsonl instead")
            self.parquet.write_table(table)
        elif self.fmt == "jsonl":
            self.file.write(frame.to_json(orient="records", lines=True, force_ascii=False).encode("utf-8"))
        else:
            text = spreadsheet_safe(frame, self.keep_formulas).to_csv(index=False, header=self.rows == 0,
                                                                      sep="\t" if self.fmt == "tsv" else ",")
            self.file.write(text.encode("utf-8"))
        self.rows += len(frame)

    def __exit__(self, kind, error, trace) -> bool:
        if self.parquet is not None:
            try:
                self.parquet.close()  # writes the Parquet footer
            except Exception as e:
                if kind is None:  # a file without its footer must not appear: the write fails as a whole
                    self._atomic.__exit__(type(e), e, e.__traceback__)
                    raise
        return self._atomic.__exit__(kind, error, trace)


__all__ = ["finetune", "evaluate_run", "predict_file", "TrainedRun", "TextClassifier", "LabelMap"]
