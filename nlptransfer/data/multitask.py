"""The data stage of a multi-task run (data.label_columns): one task per label column, each row with a label for some
of them. The same reading, checks and splits as split.load_splits, per task, collecting every problem into one
DataError; the splits are carved stratified on the first task."""
from __future__ import annotations

import pandas as pd

from ..errors import DataError
from ..logs import get_logger
from .checks import conflicting, drop_share_problems, leaking_columns, text_key
from .columns import infer_text_columns, missing_column, run_on_columns
from .labels import sort_labels
from .read import Table, cell_text
from .schema import MISSING, DataReport, DataSpec, LabelledTexts, LabelMap, Splits
from .split import (CONFLICT, DUPLICATE, EVALUATION, IN_TRAIN, IN_TRAIN_CONFLICT, NO_TRAIN, SLICE, TRAINING, Words,
                    _add_slices, _read, _split_sizes_problem, clash_problem, empty_problem, in_train_problem,
                    leak_problems, single_class_problem, small_classes_problem, stratified, table_rows,
                    unknown_labels_problem)

logger = get_logger(__name__)

TASK = "task:"  #: prefix of the frame columns that carry each task's label ("" where a row has none)
EMPTY_TEXT = "empty or missing text"
NO_LABEL = "no label in any label column"
#: the stratum of the rows without a label of the first task, when the split is carved
UNLABELLED_STRATUM = "\x00missing"
#: settings of a single label column, which a multi-task run does not take
SINGLE_COLUMN = ("label_column", "label_map", "label_bins", "labels")


def load_multitask_splits(spec: DataSpec, seed: int = 42, purpose: str = "train",
                          known: dict[str, list[str]] | None = None) -> Splits:
    """Read, check and split the data files of a multi-task run (one task per column of data.label_columns); raises
    one DataError listing every problem found (with the report so far). Each split's labels hold one id per task
    and row, MISSING where the row has no label for that task. purpose "evaluate": a task whose column is not in the
    file is left out, and `known` gives the label names each task was trained on (task -> names in id order)."""
    _refuse_settings(spec)
    if not spec.train:
        raise DataError(NO_TRAIN)
    problems: list[str] = []
    report = DataReport()

    def stop():
        report.problems = list(problems)
        raise DataError(problems, report)

    words = EVALUATION if purpose == "evaluate" else TRAINING
    files = {"train": spec.train, "validation": spec.validation, "test": spec.test}
    tables = {name: t for name, path in files.items() if path for t in [_read(spec, path, problems)] if t is not None}
    for name, table in tables.items():
        report.files[name] = table.info()
    if "train" not in tables:
        stop()
    tasks = list(spec.label_columns)
    if purpose == "evaluate":
        tasks = _tasks_in_file(tables["train"], tasks, report, problems, words)
    text_columns = _text_columns(spec, tables["train"], report, problems, words)
    frames = _task_frames(tables, text_columns, tasks, spec.join_with, problems, words)
    if "train" not in frames:
        stop()
    # go on with what can be checked, so one message lists every problem
    _add_slices(frames, tables, spec.slice_columns or [], problems, words)
    _check_rows(frames, tasks, spec.drop_invalid, report, problems, words)
    names = {task: _task_labels(frames, task, (known or {}).get(task), purpose, problems, words) for task in tasks}
    if purpose == "train":
        _check_leaks(spec, tables["train"], frames["train"], text_columns, tasks, report, problems)
    _check_clashes(frames, tasks, spec.drop_invalid, report, problems, words)
    _check_in_train(frames, tasks, spec.drop_invalid, report, problems)
    carve = [(n, f) for n, f in (("test", spec.test_fraction), ("validation", spec.val_fraction))
             if not files[n] and f > 0]  # a given file is never carved, even when it could not be read
    if carve:
        _drop_duplicates_before_carving(frames, tasks, carve, report, problems)
    if spec.drop_invalid:
        problems += drop_share_problems({n: len(t.frame) for n, t in tables.items()}, report.dropped,
                                        spec.max_drop_fraction)
    if problems:
        stop()
    if carve:
        _carve(frames, tasks[0], carve, seed, report)
    return _splits(frames, tasks, names, report)


def _refuse_settings(spec: DataSpec) -> None:
    """One DataError for settings this stage cannot take: too few label columns, or a single label column's
    settings (the recipe check refuses them too: this is a safety net for Python callers)."""
    columns = list(spec.label_columns or [])
    problems = []
    if not columns:
        problems.append("data.label_columns names no label column")
    if len(set(columns)) != len(columns):
        problems.append(f"data.label_columns names a column twice: {columns}")
    joined = [c for c in spec.text_columns or [] if c in columns]
    if joined:
        problems.append(f"data.text_columns joins the label column(s) {', '.join(map(repr, joined))}: the model would "
                        "read the labels it is to predict; remove them from data.text_columns")
    single = [f"data.{key}" for key in SINGLE_COLUMN if getattr(spec, key)]
    if single:
        problems.append(f"{', '.join(single)} {'applies' if len(single) == 1 else 'apply'} to a single label column; "
                        "with data.label_columns (multi-task) leave them out (each task's labels are its column's "
                        "values)")
    if problems:
        raise DataError(problems)


def _tasks_in_file(table: Table, tasks: list[str], report: DataReport, problems: list[str], words: Words
                   ) -> list[str]:
    """The tasks whose label column the file to evaluate has (the others are not scored, and said so); a problem
    when it has none."""
    columns = [str(c) for c in table.frame.columns]
    present = [t for t in tasks if t in columns]
    absent = [t for t in tasks if t not in columns]
    if not present:
        problems.append(f"{words.file('train')} {table.path}: none of the run's label columns ({', '.join(tasks)}) "
                        f"is in it (columns: {', '.join(columns)}): it needs at least one to score the run")
    elif absent:
        which = "that task is" if len(absent) == 1 else "those tasks are"
        why = f"{', '.join(map(repr, absent))} not in {table.path}: {which} not scored"
        report.inferred["tasks"] = {"columns": present, "reason": why}
        logger.info(f"tasks scored: {', '.join(present)} ({why})")
    return present


def _text_columns(spec: DataSpec, train: Table, report: DataReport, problems: list[str], words: Words) -> list[str]:
    """data.text_columns, or the text column inferred from the training file (never a label column); a hint when
    texts ran on into unnamed columns after them."""
    if spec.text_columns:
        columns = list(spec.text_columns)
    else:
        columns, why = infer_text_columns(train.frame, set(spec.label_columns))
        if not columns:
            problems.append(f"cannot infer the text column of {train.path} ({why}): set {words.text_key}")
        else:
            report.inferred["text_columns"] = {"columns": columns, "reason": why}
            logger.info(f"text column: '{columns[0]}' (inferred: {why})")
    if columns and (hint := run_on_columns(train.frame, columns, set(spec.label_columns))) is not None:
        report.hints.append(hint)
    return columns


def _task_frames(tables: dict[str, Table], text_columns: list[str], tasks: list[str], join_with: str,
                 problems: list[str], words: Words) -> dict[str, pd.DataFrame]:
    """Each file's text, row and task label columns; a file missing one of those columns is a problem (a label
    column missing from the file to evaluate was dealt with already) and is not checked further."""
    frames = {}
    for name, table in tables.items():
        columns = [str(c) for c in table.frame.columns]
        missing = [missing_column(c, columns, words.text_key) for c in text_columns if c not in columns]
        missing += [missing_column(c, columns, "data.label_columns") for c in tasks if c not in columns]
        problems += [f"{words.file(name)} {table.path}: {m}" for m in missing]
        if text_columns and tasks and not missing:
            frame = table_rows(table, text_columns, None, join_with).drop(columns="label")
            frames[name] = frame.assign(**{TASK + t: table.frame[t].map(cell_text).str.strip().tolist() for t in tasks})
    return frames


def _labels(frame: pd.DataFrame, tasks: list[str]) -> pd.DataFrame:
    return frame[[TASK + t for t in tasks]]


def _check_rows(frames: dict[str, pd.DataFrame], tasks: list[str], drop: bool, report: DataReport,
                problems: list[str], words: Words) -> None:
    """Rows with an empty text, or with no label for any task: a problem, or dropped and counted. A row without the
    label of some tasks is fine: it trains the others."""
    checks = [(lambda f: f["text"] == "", "an empty or missing text", EMPTY_TEXT),
              (lambda f: (_labels(f, tasks) == "").all(axis=1), "no label in any of the label columns", NO_LABEL)]
    for name, frame in list(frames.items()):
        for find, what, reason in checks:
            bad = find(frame)
            if bad.any() and drop:
                report.drop(name, reason, int(bad.sum()))
                frame = frame[~bad]
            elif bad.any():
                problems.append(empty_problem(words, name, int(bad.sum()), what, frame.loc[bad, "row"].tolist()))
        frames[name] = frame


def _task_labels(frames: dict[str, pd.DataFrame], task: str, given: list[str] | None, purpose: str,
                 problems: list[str], words: Words) -> list[str]:
    """The task's label names in id order (`given`, else its training labels sorted); labels outside them, and a
    training file with fewer than two of its classes, are problems naming the task."""
    column = TASK + task
    train_labels = set(frames["train"][column]) - {""}
    known = set(given) if given else train_labels
    for name, frame in frames.items():
        labels = frame[column]
        unknown = labels[(labels != "") & ~labels.isin(known)]
        if len(unknown):
            problems.append(unknown_labels_problem(words, name, unknown.value_counts(), given, purpose, task=task))
    if purpose == "train" and len(train_labels) == 1:
        problems.append(single_class_problem(next(iter(train_labels)), task=task))
    elif purpose == "train" and not train_labels:
        problems.append(f"train, task '{task}' has no labels: column '{task}' is empty in every row; fill it, or "
                        "leave it out of data.label_columns")
    return list(given) if given else sort_labels(train_labels)


def _check_leaks(spec: DataSpec, table: Table, frame: pd.DataFrame, text_columns: list[str], tasks: list[str],
                 report: DataReport, problems: list[str]) -> None:
    """Per task, on the training rows labelled for it: columns that give its label away (report.leaks, each with its
    task; a problem when joined into the texts). No label column is a candidate."""
    for task in tasks:
        labelled = frame[frame[TASK + task] != ""]
        source = table.frame.iloc[[r - 1 for r in labelled["row"]]]
        leaks = [{**leak, "task": task}
                 for leak in leaking_columns(source, labelled[TASK + task], set(spec.label_columns))]
        report.leaks += leaks
        problems += leak_problems(leaks, text_columns, spec.allow_leaks, task=task)


def _check_clashes(frames: dict[str, pd.DataFrame], tasks: list[str], drop: bool, report: DataReport,
                   problems: list[str], words: Words) -> None:
    """Texts (whitespace aside) with different labels of one task within a file: a problem per task, or the rows
    dropped (once, whatever the number of tasks they clash in) and counted."""
    for name, frame in list(frames.items()):
        clashes = pd.Series(False, index=frame.index)
        for task in tasks:
            rows = frame[(frame["text"] != "") & (frame[TASK + task] != "")]
            clash = conflicting(pd.DataFrame({"text": rows["text"], "label": rows[TASK + task]}))
            clash = clash.reindex(frame.index, fill_value=False)
            if clash.any() and not drop:
                problems.append(clash_problem(words, name, text_key(frame.loc[clash, "text"]).nunique(),
                                              int(clash.sum()), frame.loc[clash, "row"].tolist(), task=task))
            clashes |= clash
        if drop and clashes.any():
            report.drop(name, CONFLICT, int(clashes.sum()))
            frames[name] = frame[~clashes]


def _check_in_train(frames: dict[str, pd.DataFrame], tasks: list[str], drop: bool, report: DataReport,
                    problems: list[str]) -> None:
    """Validation/test texts also in train: IN_TRAIN, or IN_TRAIN_CONFLICT where a task's label differs (both rows
    labelled for it); each a problem, or dropped and counted."""
    train = frames["train"]
    train_keys = text_key(train["text"])
    seen = {task: dict(zip(train_keys[train[TASK + task] != ""], train.loc[train[TASK + task] != "", TASK + task]))
            for task in tasks}
    for name in ("validation", "test"):
        frame = frames.get(name)
        if frame is None:
            continue
        keys = text_key(frame["text"])
        shared = keys.isin(set(train_keys)) & (keys != "")
        other = pd.Series(False, index=frame.index)
        for task in tasks:
            theirs, ours = keys.map(seen[task]), frame[TASK + task]
            other |= shared & (ours != "") & theirs.notna() & (theirs != ours)
        for mask, reason in ((shared & ~other, IN_TRAIN), (other, IN_TRAIN_CONFLICT)):
            if mask.any() and drop:
                report.drop(name, reason, int(mask.sum()))
            elif mask.any():
                problems.append(in_train_problem(name, reason, int(mask.sum()), frame.loc[mask, "row"].tolist()))
        if drop:
            frames[name] = frame[~shared]


def _drop_duplicates_before_carving(frames: dict[str, pd.DataFrame], tasks: list[str], carve: list[tuple[str, float]],
                                    report: DataReport, problems: list[str]) -> None:
    """Keep the first of rows sharing a text, whitespace aside (so no text lands in two splits); check every task's
    classes can be split: the first task's as split.load_splits does (the split is stratified on it), the others'
    for classes too small to be in every split."""
    pool = frames["train"]
    pool = pool[(pool["text"] != "") & (_labels(pool, tasks) != "").any(axis=1)]  # invalid rows: a problem already
    duplicated = text_key(pool["text"]).duplicated(keep="first")
    report.drop("train", DUPLICATE, int(duplicated.sum()))
    frames["train"] = pool = pool[~duplicated]
    for i, task in enumerate(tasks):
        labels = pool[TASK + task]
        counts = labels[labels != ""].value_counts()
        if len(counts) > 1:  # fewer classes: a problem of its own (or nothing to stratify, evaluating)
            problems.extend((_split_sizes_problem if i == 0 else small_classes_problem)(counts, carve, task=task))


def _carve(frames: dict[str, pd.DataFrame], task: str, carve: list[tuple[str, float]], seed: int,
           report: DataReport) -> None:
    """Seeded validation/test splits carved from train, stratified on `task`'s labels; its unlabelled rows are a
    stratum of their own, or, too few to be one (fewer than the splits need), part of its most common class's."""
    train = frames["train"]
    labels = train[TASK + task]
    unlabelled = labels == ""
    if unlabelled.any():
        few = unlabelled.sum() < len(carve) + 1 and (~unlabelled).any()
        labels = labels.where(~unlabelled, labels[~unlabelled].value_counts().index[0] if few else UNLABELLED_STRATUM)
    try:
        frames.update({k: train.iloc[v] for k, v in stratified(labels.to_numpy(), carve, seed).items()})
    except ValueError as e:  # large fractions of tiny classes: sklearn cannot stratify what is left
        report.problems = [f"cannot make stratified splits of {len(train)} train rows (on task '{task}'): {e}; "
                           f"lower data.val_fraction / data.test_fraction, or add rows"]
        raise DataError(report.problems, report)
    for name, fraction in carve:
        report.files[name] = {"made_from": "train", "fraction": fraction, "seed": seed}


def _splits(frames: dict[str, pd.DataFrame], tasks: list[str], names: dict[str, list[str]], report: DataReport
            ) -> Splits:
    """The splits with one label id per task and row (MISSING where the row has no label for the task), and each
    task's class balance and unlabelled rows in report.tasks."""
    maps = {task: LabelMap(names[task]) for task in tasks}
    report.tasks = {task: {"column": task, "class_balance": {}, "missing": {}} for task in tasks}
    splits = {}
    for name in ("train", "validation", "test"):
        frame = frames.get(name)
        if frame is None:
            splits[name] = None
            continue
        ids = [[MISSING if x == "" else maps[t].id(x) for x in frame[TASK + t]] for t in tasks]
        slices = {c[len(SLICE):]: frame[c].tolist() for c in frame.columns if str(c).startswith(SLICE)}
        splits[name] = LabelledTexts(frame["text"].tolist(), [list(row) for row in zip(*ids)], frame["row"].tolist(),
                                     slices)
        report.rows_used[name] = len(frame)
        for task in tasks:
            counts = frame[TASK + task].value_counts()
            report.tasks[task]["class_balance"][name] = {n: int(counts.get(n, 0)) for n in names[task]}
            report.tasks[task]["missing"][name] = int(counts.get("", 0))
    return Splits(splits["train"], splits["validation"], splits["test"], maps[tasks[0]], report, tasks=maps)
