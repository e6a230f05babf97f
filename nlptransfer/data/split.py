"""Turn the data files into checked train/validation/test splits, collecting every problem into one DataError."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..logs import get_logger
from ..errors import DataError
from .checks import conflicting, drop_share_problems, leaking_columns, text_key
from .columns import LABEL_NAMES, infer_label_column, infer_text_columns, missing_column, run_on_columns
from .labels import DROPPED_BY_MAP, NOT_BINNED, bins_problems, map_labels, numeric_hint, sort_labels
from .read import Table, cell_text, read_table, row_list
from .schema import DataReport, DataSpec, LabelledTexts, LabelMap, Splits

logger = get_logger(__name__)
FIX_ROWS = "fix them, or set data.drop_invalid=true to drop them (they are counted in the report)"


@dataclass(frozen=True)
class Words:
    """How messages name things: a training run's files and recipe keys, or an evaluation's file and flags."""

    first_file: str  #: what the main file is called
    fix_rows: str
    text_key: str
    label_key: str

    def split(self, name: str) -> str:
        return self.first_file if name == "train" else name

    def file(self, name: str) -> str:
        split = self.split(name)
        return split if split.endswith("file") else f"{split} file"


TRAINING = Words("train", FIX_ROWS, "data.text_columns", "data.label_column")
EVALUATION = Words("evaluation file", "fix or remove them", "--text-column", "--label-column")


def _read(spec: DataSpec, path: str, problems: list[str]) -> Table | None:
    try:
        table = read_table(path, spec.format, spec.header, spec.encoding, spec.delimiter)
    except DataError as e:
        problems.extend(e.problems)
        return None
    if len(table.frame) == 0:
        problems.append(f"{path} is empty: it has no data rows")
        return None
    return table


def _choose_columns(spec: DataSpec, tables: dict[str, Table], report: DataReport, problems: list[str],
                    words: Words = TRAINING, sample: pd.DataFrame | None = None):
    """The text columns and label column, named or inferred from the training file (from `sample`, its rows spread
    over a file read in chunks, when given), checked in every file."""
    train = tables.get("train")
    text_columns, label_column = list(spec.text_columns or []), spec.label_column
    if train is not None:
        columns = [str(c) for c in train.frame.columns]
        rows = train.frame if sample is None else sample
        if label_column is None:
            label_column, why = infer_label_column(rows, set(text_columns))
            if label_column is None:
                one = (f"; it read as one column: {train.reasons['delimiter']}"
                       if len(columns) == 1 and "delimiter" in train.reasons else "")
                problems.append(f"cannot infer the label column of {train.path} ({why}): set {words.label_key} "
                                f"(columns: {', '.join(columns)}){one}")
            else:
                report.inferred["label_column"] = {"column": label_column, "reason": why}
                logger.info(f"label column: '{label_column}' (inferred: {why})")
        if not text_columns:
            text_columns, why = infer_text_columns(rows, {label_column} if label_column else set())
            if not text_columns:
                problems.append(f"cannot infer the text column of {train.path} ({why}): set {words.text_key}")
            else:
                report.inferred["text_columns"] = {"columns": text_columns, "reason": why}
                logger.info(f"text column: '{text_columns[0]}' (inferred: {why})")
    if train is not None and text_columns:
        hint = run_on_columns(train.frame, text_columns, {label_column} if label_column else set())
        if hint is not None:
            report.hints.append(hint)
    for name, table in tables.items():
        columns = [str(c) for c in table.frame.columns]
        for column in text_columns:
            if column not in columns:
                problems.append(f"{words.file(name)} {table.path}: "
                                + missing_column(column, columns, words.text_key))
        if label_column and label_column not in columns:
            problems.append(f"{words.file(name)} {table.path}: "
                            + missing_column(label_column, columns, words.label_key))
    return text_columns, label_column


# The problems of the checks across rows, worded once for both stages (this one and data.streamed).

def unbinned_problem(name: str, count: int, values, rows: list[int]) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:5])
    return (f"{name}: {count} row(s) have a label no data.label_bins range holds ({shown}; {row_list(rows)}): widen the "
            "ranges, map them with data.label_map, or set data.drop_invalid=true to drop them")


def _of_task(where: str, task: str | None) -> str:
    """`where` (a split) naming a multi-task run's task: "train, task 'category'"; as given for None."""
    return where if task is None else f"{where}, task '{task}'"


def _task_prefix(task: str | None) -> str:
    """What starts a problem of a multi-task run's task: "task 'category': "; nothing for None."""
    return "" if task is None else f"task '{task}': "


def empty_problem(words: Words, name: str, count: int, what: str, rows: list[int]) -> str:
    return f"{words.split(name)}: {count} row(s) have {what} ({row_list(rows)}); {words.fix_rows}"


def unknown_labels_problem(words: Words, name: str, counts: pd.Series, given: list[str] | None, purpose: str,
                           task: str | None = None) -> str:
    """Labels outside the known ones, with their rows (`counts`, most first); `task`: the multi-task task they are
    of."""
    listed = ", ".join(f"'{k}' ({v} rows)" for k, v in counts.items())
    if purpose == "evaluate":
        where = f"the run was not trained on (it knows {', '.join(map(repr, given or []))})"
    else:
        where = f"not in data.labels {list(given)}" if given else "never seen in training"
    return f"{_of_task(words.split(name), task)}: labels {where}: {listed}"


def single_class_problem(label: str, task: str | None = None) -> str:
    return f"{_of_task('train', task)} has a single class '{label}': a classifier needs at least two labels"


def leak_problems(leaks: list[dict], text_columns: list[str], allowed: bool, task: str | None = None) -> list[str]:
    """A problem for each column joined into the texts that gives the label (of `task`) away (unless
    data.allow_leaks)."""
    prefix = _task_prefix(task)
    return [] if allowed else [
        f"{prefix}data.text_columns joins {leak['column']!r}, which gives the label away ({leak['why']}): the model "
        "would learn that column, not the texts; remove it from data.text_columns, or set data.allow_leaks=true if "
        "you mean it" for leak in leaks if leak["column"] in text_columns]


def clash_problem(words: Words, name: str, texts: int, count: int, rows: list[int], task: str | None = None) -> str:
    return (f"{_of_task(words.split(name), task)}: {texts} text(s) appear with different labels ({count} rows: "
            f"{row_list(rows)}): label noise; {words.fix_rows}")


def in_train_problem(name: str, reason: str, count: int, rows: list[int]) -> str:
    """Validation/test texts also in train: IN_TRAIN (a leak that inflates the score) or IN_TRAIN_CONFLICT (noise)."""
    other = reason == IN_TRAIN_CONFLICT
    what = "label noise, not a leak" if other else f"which inflates the {name} score"
    return (f"{name}: {count} text(s) also appear in train{' with another label' if other else ''} ({row_list(rows)}), "
            f"{what}; {FIX_ROWS}")


def small_classes_problem(counts: pd.Series, carve: list[tuple[str, float]], task: str | None = None) -> list[str]:
    """A problem naming the classes (of `task`) with fewer rows than the carved splits and train need, one each."""
    need = len(carve) + 1
    small = counts[counts < need]
    if not len(small):
        return []
    listed = ", ".join(f"'{k}' has {v}" for k, v in small.items())
    what = " and ".join(n for n, _ in carve)
    prefix = _task_prefix(task)
    return [f"{prefix}class too small to split: {listed} row(s) in train; making the {what} split(s) needs at "
            f"least {need} rows per class: add rows, supply data.validation/data.test files, "
            f"or set data.val_fraction / data.test_fraction to 0"]


def _split_sizes_problem(counts: pd.Series, carve: list[tuple[str, float]], task: str | None = None) -> list[str]:
    """Problems that make a stratified split impossible: tiny classes, or too few rows for every class (of the
    multi-task `task` the split is stratified on)."""
    problems = small_classes_problem(counts, carve, task)
    prefix = _task_prefix(task)
    n = int(counts.sum())
    for name, fraction in carve:
        size = math.ceil(fraction * n)
        if size < len(counts):
            problems.append(f"{prefix}a {name} split of {fraction:g} x {n} rows gives {size} rows for {len(counts)} "
                            f"classes: raise data.{'val' if name == 'validation' else 'test'}_fraction or add rows")
    return problems


def stratified(labels: np.ndarray, fractions: list[tuple[str, float]], seed: int) -> dict[str, np.ndarray]:
    """The sorted positions of each carved split (ceil(fraction x rows) rows, stratified by `labels`, seeded) and of
    the rows left for train: the rows sklearn's train_test_split(..., test_size=n, stratify=labels, random_state=seed)
    picks, one split after another (its StratifiedShuffleSplit step by step, on arrays: sklearn gathers the picked
    rows in a Python list, 40 bytes a row). Only the order of the label values matters (names, or their ranks in
    sorted order, give the same splits). Raises ValueError as sklearn does (too few rows or classes)."""
    from sklearn.model_selection._split import _approximate_mode, _validate_shuffle_split

    total = len(labels)
    parts, rest, rest_labels = {}, np.arange(total, dtype=np.int32 if total < 2**31 else np.int64), np.asarray(labels)
    for name, fraction in fractions:
        n_train, n_test = _validate_shuffle_split(len(rest), math.ceil(fraction * total), None, default_test_size=0.25)
        if rest_labels.dtype.kind in "iu":  # ranks: no inverse to build (y_indices sorts as they do)
            class_counts = np.bincount(rest_labels)
            classes = np.flatnonzero(class_counts)
            class_counts, y_indices = class_counts[classes], rest_labels
        else:
            classes, y_indices, class_counts = np.unique(rest_labels, return_inverse=True, return_counts=True)
        if np.min(class_counts) < 2:
            raise ValueError(f"The least populated classes in y have only 1 member, which is too few. The minimum "
                             f"number of groups for any class cannot be less than 2. Classes with too few members "
                             f"are: {classes[class_counts < 2].tolist()}")
        for what, n in (("train_size", n_train), ("test_size", n_test)):
            if n < len(classes):
                raise ValueError(f"The {what} = {n} should be greater or equal to the number of classes = "
                                 f"{len(classes)}")
        by_class = np.split(np.argsort(y_indices, kind="stable").astype(rest.dtype), np.cumsum(class_counts)[:-1])
        del y_indices
        rng = np.random.RandomState(seed)
        n_i = _approximate_mode(class_counts, n_train, rng)
        t_i = _approximate_mode(class_counts - n_i, n_test, rng)
        train, test = [], []
        for i, members in enumerate(by_class):
            picked = members.take(rng.permutation(class_counts[i]), mode="clip")
            train.append(picked[:n_i[i]])
            test.append(picked[n_i[i]:n_i[i] + t_i[i]])
        del by_class, picked
        train = rng.permutation(np.concatenate(train))
        test = rng.permutation(np.concatenate(test))
        rest, parts[name], rest_labels = rest[train], rest[test], rest_labels[train]
    parts["train"] = rest
    return {k: np.sort(v) for k, v in parts.items()}


def table_rows(table: Table, text_columns: list[str] | None, label_column: str | None, join_with: str
                ) -> pd.DataFrame:
    """Columns text, label, row (1-based data row); a column that could not be found is None throughout."""
    frame = table.frame
    texts: list = [None] * len(frame)
    if text_columns:
        parts = [frame[c].map(cell_text).str.strip().tolist() for c in text_columns]
        texts = [join_with.join(p for p in row if p) for row in zip(*parts)]
    labels = frame[label_column].map(cell_text).str.strip().tolist() if label_column else [None] * len(frame)
    return pd.DataFrame({"text": texts, "label": labels, "row": range(1, len(frame) + 1)})


NO_TRAIN = "no training data: pass --data FILE (or data=... in Python, or data.train in the recipe)"


def load_splits(spec: DataSpec, seed: int = 42, purpose: str = "train", unlabelled: list[str] | None = None
                ) -> Splits:
    """Read, check and split the data files (carved splits seeded by `seed`); raises one DataError listing every
    problem found (with the report so far). purpose "evaluate": the file is scored as a whole, may hold a single
    class, and messages name an evaluation's flags. `unlabelled` (a strategy that needs no labels: the label names
    it knows, maybe none): a training file with no label column named or inferred, or an inferred one that shares
    no value with those names, is read as texts: the train split alone, without labels, labelled by these names."""
    if not spec.train:
        raise DataError(NO_TRAIN)
    problems: list[str] = []
    report = DataReport()

    def stop():
        report.problems = list(problems)
        raise DataError(problems, report)

    files = {"train": spec.train, "validation": spec.validation, "test": spec.test}
    tables = {name: t for name, path in files.items() if path for t in [_read(spec, path, problems)] if t is not None}
    for name, table in tables.items():
        report.files[name] = table.info()
    if unlabelled is not None and "train" in tables and _without_labels(spec, tables["train"], unlabelled):
        return _texts_only(spec, tables["train"], unlabelled, report)
    words = EVALUATION if purpose == "evaluate" else TRAINING
    text_columns, label_column = _choose_columns(spec, tables, report, problems, words)
    if "train" not in tables:
        stop()
    # go on with what can be checked, so one message lists every problem
    frames = _frames(tables, text_columns, label_column, spec.join_with)
    _add_slices(frames, tables, spec.slice_columns or [], problems, words)
    if label_column:
        _map_labels(frames, spec, report, problems)
    _check_empty(frames, spec.drop_invalid, report, problems, words)
    if "train" not in frames:
        stop()
    names = _check_labels(frames, spec.labels, purpose, problems, words)
    if purpose == "train" and label_column and "train" in tables:
        _check_columns_and_labels(spec, tables["train"], frames["train"], text_columns, label_column, report,
                                  problems)
    _check_duplicates(frames, spec.drop_invalid, report, problems, words)
    carve = [(n, f) for n, f in (("test", spec.test_fraction), ("validation", spec.val_fraction))
             if not files[n] and f > 0]  # a given file is never carved, even when it could not be read
    if carve:
        _drop_duplicates_before_carving(frames, carve, report, problems)
    if spec.drop_invalid:
        problems += drop_share_problems({n: len(t.frame) for n, t in tables.items()}, report.dropped,
                                        spec.max_drop_fraction)
    if problems:
        stop()
    if carve:
        _carve(frames, carve, seed, report)
    return _splits(frames, names, report)


def _without_labels(spec: DataSpec, table: Table, names: list[str]) -> bool:
    """True when the training file has no label column: none named, and none inferred, or an inferred one not named
    like labels none of whose values is one of `names` (a category column of texts to classify zero-shot, not their
    labels; a column named like labels is always the labels, so a misspelt description is reported, not guessed)."""
    if spec.label_column is not None:
        return False
    column, _ = infer_label_column(table.frame, set(spec.text_columns or []))
    if column is None:
        return True
    if column.lower().strip() in LABEL_NAMES:
        return False
    values = set(table.frame[column].map(cell_text).str.strip())
    return bool(names) and not values & set(names)


def _texts_only(spec: DataSpec, table: Table, names: list[str], report: DataReport) -> Splits:
    """The training file's texts as the train split, without labels (and no validation or test split)."""
    if len(names) < 2:
        raise DataError(f"{table.path} has no label column, so the labels must be named: give each a description "
                        f"(labels.descriptions={{label: description, ...}}; at least two) or data.labels=[...]",
                        report)
    if spec.validation or spec.test:
        raise DataError(f"{table.path} has no label column: data.validation and data.test score a classifier "
                        f"against labels, so they need a labelled training file too (or leave them out)", report)
    columns = list(spec.text_columns or [])
    if not columns:
        columns, why = infer_text_columns(table.frame, set())
        if not columns:
            raise DataError(f"cannot infer the text column of {table.path} ({why}): set data.text_columns", report)
        report.inferred["text_columns"] = {"columns": columns, "reason": why}
    missing = [missing_column(c, [str(x) for x in table.frame.columns], "data.text_columns")
               for c in columns if c not in table.frame.columns]
    if missing:
        raise DataError([f"train file {table.path}: {m}" for m in missing], report)
    frame = table_rows(table, columns, None, spec.join_with)
    empty = frame["text"] == ""
    if empty.any() and not spec.drop_invalid:
        raise DataError(f"train: {int(empty.sum())} row(s) have an empty or missing text "
                        f"({row_list(frame.loc[empty, 'row'].tolist())}); {FIX_ROWS}", report)
    report.drop("train", "empty or missing text", int(empty.sum()))
    frame = frame[~empty]
    if not len(frame):
        raise DataError(f"{table.path} has no texts", report)
    report.rows_used["train"] = len(frame)
    report.inferred["labels"] = {"column": None, "reason": f"no label column: the texts are classified into "
                                                            f"{', '.join(names)}"}
    logger.info(f"{table.path}: {len(frame)} texts without labels, classified into {', '.join(names)}")
    return Splits(LabelledTexts(frame["text"].tolist(), None, frame["row"].tolist()), None, None, LabelMap(names),
                  report)


def _frames(tables: dict[str, Table], text_columns: list[str], label_column: str | None, join_with: str
            ) -> dict[str, pd.DataFrame]:
    """Each file's text, label and row columns, for the files that have at least one of the chosen columns."""
    frames = {}
    for name, t in tables.items():
        columns = set(map(str, t.frame.columns))
        has_text = bool(text_columns) and all(c in columns for c in text_columns)
        has_label = bool(label_column) and label_column in columns
        if has_text or has_label:
            frames[name] = table_rows(t, text_columns if has_text else None, label_column if has_label else None,
                                       join_with)
    return frames


SLICE = "slice:"  #: prefix of the frame columns that carry data.slice_columns


def _add_slices(frames: dict[str, pd.DataFrame], tables: dict[str, Table], columns: list[str], problems: list[str],
                words: Words) -> None:
    """Each row's value of every slice column (every file must have them)."""
    for name, frame in frames.items():
        table = tables[name]
        present = [str(c) for c in table.frame.columns]
        for column in columns:
            if column not in present:
                problems.append(f"{words.file(name)} {table.path}: "
                                + missing_column(column, present, "data.slice_columns"))
                continue
            frames[name] = frame = frame.assign(**{SLICE + column: table.frame[column].map(cell_text).tolist()})


def _map_labels(frames: dict[str, pd.DataFrame], spec: DataSpec, report: DataReport, problems: list[str]) -> None:
    """data.label_map, then data.label_bins: rows whose label is mapped to null are dropped and counted; a label no
    range holds is a problem (or, with drop_invalid, dropped and counted)."""
    if spec.label_bins:
        problems += bins_problems(spec.label_bins)
        if problems:
            return
    if not (spec.label_map or spec.label_bins):
        return
    for name, frame in list(frames.items()):
        if frame["label"].isna().any():
            continue
        labels, dropped = map_labels(frame["label"], spec.label_map, spec.label_bins)
        frame = frame.assign(label=labels)
        if dropped.get(DROPPED_BY_MAP):
            report.drop(name, DROPPED_BY_MAP, dropped[DROPPED_BY_MAP])
        unbinned = frame[frame["label"].isna() & ~frames[name]["label"].map(_mapped_to_null(spec.label_map))]
        if len(unbinned) and not spec.drop_invalid:
            problems.append(unbinned_problem(name, len(unbinned), frames[name].loc[unbinned.index, "label"].unique(),
                                             unbinned["row"].tolist()))
        elif len(unbinned):
            report.drop(name, NOT_BINNED, len(unbinned))
        frames[name] = frame[frame["label"].notna()]


def _mapped_to_null(label_map: dict | None):
    dropped = {str(k) for k, v in (label_map or {}).items() if v is None}
    return lambda label: label in dropped


def _check_columns_and_labels(spec: DataSpec, table: Table, frame: pd.DataFrame, text_columns: list[str],
                              label_column: str, report: DataReport, problems: list[str]) -> None:
    """Columns that give the label away (a problem when joined into the texts), and labels that look numeric."""
    source = table.frame.iloc[[r - 1 for r in frame["row"]]]
    report.leaks = leaking_columns(source, frame["label"], {label_column})  # texts: a value per row, never a leak
    problems += leak_problems(report.leaks, text_columns, spec.allow_leaks)
    if not spec.label_bins and not spec.labels:
        hint = numeric_hint(frame["label"].value_counts(sort=False).to_dict())
        if hint:
            report.hints.append(hint)


def _check_empty(frames: dict[str, pd.DataFrame], drop: bool, report: DataReport, problems: list[str],
                 words: Words) -> None:
    """Rows with an empty text or label: a problem, or dropped and counted."""
    checks = [("text", "an empty or missing text", "empty or missing text"), ("label", "a missing label", "missing label")]
    for name, frame in list(frames.items()):
        for column, what, reason in checks:
            bad = frame[frame[column] == ""]
            if len(bad) and drop:
                report.drop(name, reason, len(bad))
                frame = frame[frame[column] != ""]
            elif len(bad):
                problems.append(empty_problem(words, name, len(bad), what, bad["row"].tolist()))
        frames[name] = frame


def _check_labels(frames: dict[str, pd.DataFrame], given: list[str] | None, purpose: str, problems: list[str],
                  words: Words) -> list[str]:
    """The label names in id order; labels outside them, and a single training class, are problems."""
    train_labels = set(frames["train"]["label"].dropna()) - {""}
    known = set(given) if given else train_labels
    names = list(given) if given else sort_labels(train_labels)
    for name, frame in frames.items():
        if frame["label"].isna().any():
            continue
        unknown = frame[(frame["label"] != "") & ~frame["label"].isin(known)]
        if len(unknown):
            problems.append(unknown_labels_problem(words, name, unknown["label"].value_counts(), given, purpose))
    if purpose == "train" and len(train_labels) == 1:
        problems.append(single_class_problem(next(iter(train_labels))))
    return names


CONFLICT = "the same text as another row with another label (label noise)"
IN_TRAIN = "the same text as a training row (whitespace aside)"
IN_TRAIN_CONFLICT = "the same text as a training row, with another label (label noise)"
DUPLICATE = "the same text and label as an earlier row (kept the first, so no text is in two splits)"


def _check_duplicates(frames: dict[str, pd.DataFrame], drop: bool, report: DataReport, problems: list[str],
                      words: Words) -> None:
    """Texts (whitespace aside) with conflicting labels within a file, and validation/test texts also in train:
    each a problem, or dropped and counted. The same text with the same label twice in one file is no problem."""
    for name, frame in list(frames.items()):
        if not (frame["text"].notna().all() and frame["label"].notna().all()):
            continue
        clash = conflicting(frame[(frame["text"] != "") & (frame["label"] != "")]).reindex(frame.index, fill_value=False)
        if clash.any() and drop:
            report.drop(name, CONFLICT, int(clash.sum()))
            frames[name] = frame[~clash]
        elif clash.any():
            problems.append(clash_problem(words, name, text_key(frame.loc[clash, "text"]).nunique(),
                                          int(clash.sum()), frame.loc[clash, "row"].tolist()))
    train = frames["train"]
    if not (train["text"].notna().all() and train["label"].notna().all()):
        return
    seen = dict(zip(text_key(train["text"]), train["label"]))
    for name in ("validation", "test"):
        frame = frames.get(name)
        if frame is None or not (frame["text"].notna().all() and frame["label"].notna().all()):
            continue
        keys = text_key(frame["text"])
        shared = keys.isin(seen.keys()) & (keys != "")
        other = shared & (keys.map(seen) != frame["label"])
        for mask, reason in ((shared & ~other, IN_TRAIN), (other, IN_TRAIN_CONFLICT)):
            if mask.any() and drop:
                report.drop(name, reason, int(mask.sum()))
            elif mask.any():
                problems.append(in_train_problem(name, reason, int(mask.sum()), frame.loc[mask, "row"].tolist()))
        if drop:
            frames[name] = frame[~shared]


def _drop_duplicates_before_carving(frames: dict[str, pd.DataFrame], carve: list[tuple[str, float]],
                                    report: DataReport, problems: list[str]) -> None:
    """Keep the first of rows sharing a text, whitespace aside (so no text lands in two splits); check the classes
    can be split."""
    if not frames["train"]["text"].notna().all():  # no texts (column not found): nothing to split yet
        return
    pool = frames["train"]
    pool = pool[(pool["text"] != "") & (pool["label"] != "")]  # invalid rows: a problem already, not a class
    classes = pool["label"].nunique()
    duplicated = text_key(pool["text"]).duplicated(keep="first")
    report.drop("train", DUPLICATE, int(duplicated.sum()))
    frames["train"] = pool = pool[~duplicated]
    if pool["label"].notna().all() and classes > 1:
        problems.extend(_split_sizes_problem(pool["label"].value_counts(), carve))


def _carve(frames: dict[str, pd.DataFrame], carve: list[tuple[str, float]], seed: int, report: DataReport) -> None:
    """Stratified, seeded validation/test splits carved from train."""
    try:
        train = frames["train"]
        frames.update({k: train.iloc[v] for k, v in stratified(train["label"].to_numpy(), carve, seed).items()})
    except ValueError as e:  # large fractions of tiny classes: sklearn cannot stratify what is left
        raise DataError(f"cannot make stratified splits of {len(frames['train'])} train rows: {e}; "
                        f"lower data.val_fraction / data.test_fraction, or add rows")
    for name, _ in carve:
        report.files[name] = {"made_from": "train", "fraction": dict(carve)[name], "seed": seed}


def _splits(frames: dict[str, pd.DataFrame], names: list[str], report: DataReport) -> Splits:
    label_map = LabelMap(names)
    splits = {}
    for name in ("train", "validation", "test"):
        frame = frames.get(name)
        if frame is None:
            splits[name] = None
            continue
        slices = {c[len(SLICE):]: frame[c].tolist() for c in frame.columns if str(c).startswith(SLICE)}
        splits[name] = LabelledTexts(frame["text"].tolist(), [label_map.id(x) for x in frame["label"]],
                                     frame["row"].tolist(), slices)
        report.rows_used[name] = len(frame)
        counts = frame["label"].value_counts()
        report.class_balance[name] = {n: int(counts.get(n, 0)) for n in names}
    return Splits(splits["train"], splits["validation"], splits["test"], label_map, report)
